//! The process entry: argv → context → classify → decide → run → report.
//!
//! The pass-through path (governance off, or a nested shell holding a grant for this step) does
//! only what deciding "pass-through" needs — env lookups and, when the variable is set, one small
//! flags file — and then `execve`s the real shell.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use crate::argv::{self, Invocation, Personality};
use crate::config::{PlatformConfig, TOKEN_VARS};
use crate::context::{self, Context, TOOL_CALL_ID_VAR};
use crate::decide::{Decider, WaitSettings};
use crate::env::{Env, ProcessEnv};
use crate::events::{
    self, Attempted, Completed, Ids, OutboxWarning, SafeArguments, Sidecar, SidecarTarget,
};
use crate::grant::{self, GRANT_VAR};
use crate::mode::{self, Mode};
use crate::outbox::{self, Outbox};
use crate::outcome::{Outcome, Refusal, REFUSED};
use crate::platform::Client;
use crate::realshell::{self, ExecPlan};
use crate::request::{self, Labels};
use crate::settings::{self, ModeInputs, Plan, Run, Settings};
use crate::subject::{self, Subject};
use crate::supervise;
use crate::wire;
use crate::{adopt, decide, guardian};

/// Exit status when no real shell can be found (as a shell reports "command not found").
const NO_SHELL: i32 = 127;
/// Variables the governed command never sees: Platform credentials (every alias, and the path
/// to a credentials file: the command must not be told where the token lives) and our sidecar
/// plumbing. A nested shell governed anew finds the token in the default credentials file or
/// the protected configuration, or refuses.
const NOT_INHERITED: &[&str] = &[
    events::EVENTS_FD_VAR,
    events::EVENTS_FILE_VAR,
    decide::DECISIONS_FD_VAR,
    crate::config::CREDENTIALS_FILE_VAR,
    "MAESTRO_PLATFORM_DEV_TOKEN",
    "MAESTRO_PLATFORM_DEV_REVIEWER_TOKEN",
];

/// Run maestro-sh with this process's argv and environment; returns the exit status only when
/// the real shell was not exec'd.
pub fn main() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Our own image re-exec'd only to die with a core (supervise::die_by_signal).
    supervise::dump_core_if_asked(&argv);
    // Before anything reads the environment or a secret: non-dumpable, and in a setgid
    // install the protected configuration opened and the group dropped.
    if let Err(e) = crate::harden::startup() {
        eprintln!("maestro-sh: {e}");
        return REFUSED;
    }
    let argv0 = argv
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("maestro-sh"));
    let args = argv.get(1..).unwrap_or_default();
    let personality = Personality::detect(&argv);

    // Only under our own name, and only options bash rejects, so no bash invocation changes.
    if personality == Personality::MaestroSh {
        // The detached record sender (crate::record), started by an earlier invocation.
        if args.len() == 1 && args[0] == crate::record::FLUSH_ARG {
            return crate::record::flush_command(&ProcessEnv);
        }
        if let Some(status) = crate::debug::dispatch(args) {
            return status;
        }
    }

    let env = ProcessEnv;
    let inputs = ModeInputs::read(&env);
    if inputs.governs_nothing() {
        // A flags service without a snapshot: say so rather than run silently ungoverned.
        if let Some(w) = mode::remote_flags_problem(&env) {
            crate::status::warn(&w);
        }
        return passthrough(personality, &argv);
    }
    // A shell nested inside a command we already decided for this step passes through.
    if let (Some(g), Some(step)) = (env.get(GRANT_VAR), env.first_value(&[TOOL_CALL_ID_VAR])) {
        if grant::verify(&g, &step) {
            return passthrough(personality, &argv);
        }
    }
    // Governance may be on and we cannot tell: refuse before parsing anything.
    if let Some(refusal) = inputs.problem() {
        return refuse_early(&env, refusal);
    }

    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut invocation = argv::parse(&argv0, args, terminal);
    invocation.personality = personality;
    let Some(subject) = subject::describe(&invocation, args) else {
        return passthrough(personality, &argv); // --version / --help: nothing runs
    };
    match settings::plan(&inputs, &subject.classification, || Settings::read(&env)) {
        Plan::PassThrough => passthrough(personality, &argv),
        Plan::Refuse(refusal) => refuse_early(&env, refusal),
        Plan::Run(run) => govern(&env, &invocation, &argv, subject, *run),
    }
}

/// Replace this process with the real shell, argv and environment unchanged.
fn passthrough(personality: Personality, argv: &[OsString]) -> i32 {
    let shell = match realshell::shell_from_env(personality.real_name()) {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!("maestro-sh: {e}");
            return NO_SHELL;
        }
    };
    let err = shell.plan(argv).exec();
    eprintln!("maestro-sh: cannot execute {}: {err}", shell.path.display());
    ExecPlan::failure_status(err)
}

/// A refusal before the settings are read: report it with a best-effort context.
fn refuse_early(env: &dyn Env, refusal: Refusal) -> i32 {
    supervise::shield_sigpipe();
    let ctx = Context::from_env(env, || context::new_id("call_"));
    let mut sidecar = open_sidecar(&SidecarTarget::read(env), env, &ctx);
    report_refusal(&mut sidecar, &ctx, &refusal, None)
}

fn open_sidecar(target: &SidecarTarget, env: &dyn Env, ctx: &Context) -> Sidecar {
    Sidecar::open(target, env, ctx).unwrap_or_else(|e| {
        crate::status::warn(&format!("{e}; no sidecar events will be written"));
        Sidecar::none()
    })
}

/// Print the one stderr line, emit the closing events, and return 126 — or, for a wait
/// cancelled by a signal, die by that signal as bash would.
fn report_refusal(
    sidecar: &mut Sidecar,
    ctx: &Context,
    r: &Refusal,
    started: Option<Instant>,
) -> i32 {
    crate::status::line(crate::status::LineKind::Refusal, &r.line());
    let ms = started.map(|s| s.elapsed().as_millis() as u64);
    sidecar.emit_result(&Completed::refused(&ctx.step_id, r, ms));
    // Refused without Platform's answer to ExecuteTool: Platform may still have made the
    // execution; the guardian (if any) closes it out as not run once we are gone. Otherwise
    // nothing is left for it to record: we reported the refusal ourselves.
    let unanswered = r.tool_execution_id.is_none() && r.outcome == Outcome::PlatformUnavailable;
    if unanswered {
        guardian::gave_up_asking();
    } else {
        guardian::done();
    }
    if let Some(signo) = r.signal {
        supervise::die_by_signal(signo, false);
    }
    REFUSED
}

/// One observed or governed call, from the first event to the last.
struct Step<'a> {
    mode: Mode,
    settings: &'a Settings,
    ctx: Context,
    sidecar: Sidecar,
    /// Maestro's presentation of the call (request metadata and approval event).
    labels: Labels,
    client: Option<Arc<Client>>,
    /// The ExecuteTool request; `None` when nothing is sent (no Platform configuration in
    /// observe mode, or Maestro's bridge holds the call).
    execute: Option<wire::ExecuteToolRequest>,
    /// Maestro's own bridge execution of this call, adopted (attach.rs).
    attached: Option<crate::attach::Attached>,
    /// The record is Maestro's bridge's to make.
    bridge_holds: bool,
}

/// Observe or govern `subject`: decide → run → record → report, and leave like the child.
fn govern(
    env: &dyn Env,
    invocation: &Invocation,
    argv: &[OsString],
    subject: Subject,
    run: Run,
) -> i32 {
    let started = Instant::now();
    supervise::shield_sigpipe();
    for w in &run.warnings {
        crate::status::warn(w);
    }
    let shell = match realshell::shell_from_env(invocation.personality.real_name()) {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!("maestro-sh: {e}");
            return NO_SHELL;
        }
    };
    let mut step = Step::open(env, &run, &subject);

    // Decide (governed only). Observe runs first and records after.
    let decided = match step.decide() {
        Ok(d) => d,
        Err(r) => return report_refusal(&mut step.sidecar, &step.ctx, &r, Some(started)),
    };

    // Run. The child gets our step id (and, for nested shells, a grant) and loses credentials.
    // Only a governed step grants: a shell inside an observed one is governed anew.
    let grant = (step.mode == Mode::Governed)
        .then(|| grant::issue(&step.ctx.step_id))
        .and_then(|g| {
            g.map_err(|e| crate::status::warn(&format!("nested shells will be governed anew: {e}")))
                .ok()
        });
    let plan = shell
        .plan(argv)
        .with_env(child_env(&step.ctx, grant.as_deref()));
    guardian::running();
    let ran = match supervise::run(&plan) {
        Ok(ran) => ran,
        Err(e) => {
            eprintln!("maestro-sh: cannot start {}: {e}", shell.path.display());
            guardian::done();
            return REFUSED;
        }
    };
    let duration_ms = ran.duration.as_millis() as u64;
    let execution_id = step.record(decided.execution_id.clone(), ran.exit, duration_ms);
    guardian::done();

    let ids = Ids::new(&step.ctx.step_id)
        .execution(execution_id.as_deref())
        .approval(decided.approval_request_id.as_deref());
    let mut done = Completed::ran(ids, decided.outcome, ran.exit, duration_ms);
    done.attached_to = step.bridge_holds.then_some("maestro_bridge");
    step.sidecar.emit_result(&done);
    drop(step);
    supervise::exit_like(ran.exit)
}

/// What deciding settled: how the command came to run, and Platform's ids.
struct Decided {
    outcome: Outcome,
    execution_id: Option<String>,
    approval_request_id: Option<String>,
}

impl<'a> Step<'a> {
    /// The context and sidecar, Maestro's own execution when it holds this call, the request,
    /// the `attempted` event, and from here to the final record a guardian outside the
    /// caller's process group that records what we cannot if the caller kills us.
    fn open(env: &dyn Env, run: &'a Run, subject: &Subject) -> Step<'a> {
        let (mode, settings) = (run.mode, &run.settings);
        let mut ctx = Context::from_env(env, || context::new_id("call_"));
        let mut sidecar = open_sidecar(&settings.sidecar, env, &ctx);
        let cfg = settings.platform.as_ref().ok();
        let client = cfg.map(|c| Arc::new(Client::new(c)));
        // What Platform and the sidecar may see of the command: sanitized once.
        let sanitized = crate::redact::sanitize_command(&subject.command);
        let labels = Labels::for_command(&sanitized.text);
        let classification = &subject.classification;
        // Maestro's own bridge may already govern this very call: adopt its execution and its
        // tool call id instead of opening a second one (attach.rs). Recording stays with it.
        let attached = match (&client, cfg) {
            (Some(client), Some(cfg)) if mode == Mode::Governed => {
                let (setting, window) = settings
                    .attach
                    .clone()
                    .unwrap_or((crate::attach::Setting::Auto, crate::attach::DEFAULT_WINDOW));
                let lookup = crate::attach::Lookup {
                    setting,
                    window,
                    bridge_flag_on: run.bridge_flag_on,
                    claims: settings.data_dir.as_deref(),
                };
                crate::attach::for_command(
                    &lookup,
                    client,
                    cfg,
                    &ctx,
                    classification.risk.as_wire(),
                    !classification.read_only,
                    &sanitized.text,
                )
            }
            _ => None,
        };
        if let Some(a) = &attached {
            ctx.step_id = a.step_id.clone();
            sidecar.rebind(env, &ctx);
        }
        // Nothing to send when Maestro's bridge holds this call's execution: adopted, or
        // (observe, MAESTRO_SH_ATTACH=bridge) recorded by the bridge after the tool result.
        let bridge_holds =
            attached.is_some() || (mode == Mode::Observe && settings.observe_left_to_bridge());
        let execute = cfg.filter(|_| !bridge_holds).map(|c| {
            let tenant = request::Tenant {
                organization_id: &c.organization_id,
                workspace_id: &c.workspace_id,
            };
            request::execute_tool(&ctx, tenant, subject, &sanitized, &labels, mode)
        });
        sidecar.emit(&Attempted {
            ids: Ids::new(&ctx.step_id),
            tool_namespace: "maestro",
            tool_name: "bash",
            tool_version: ctx.tool_version.as_deref(),
            capability: "maestro.tool.bash",
            mutates_resource: !classification.read_only,
            risk_level: classification.risk.as_wire(),
            safe_arguments: SafeArguments {
                command: &sanitized.text,
            },
            redactions: &sanitized.kinds,
            idempotency_key: ctx.idempotency_key(),
            mode: mode.as_str(),
            attached_to: bridge_holds.then_some("maestro_bridge"),
            attempted_at: events::rfc3339(std::time::SystemTime::now()),
        });
        let step = Step {
            mode,
            settings,
            ctx,
            sidecar,
            labels,
            client,
            execute,
            attached,
            bridge_holds,
        };
        if let (Some(client), Some(execute), Some(cfg)) = (&step.client, &step.execute, cfg) {
            guardian::spawn(guardian::Job {
                client: client.clone(),
                ctx: &step.ctx,
                execute,
                data_dir: settings.data_dir.clone(),
                adopt: step.adopt_key().filter(|_| mode == Mode::Governed),
                cfg,
                adopt_window: step.wait_settings().adopt_window,
            });
        }
        step
    }

    /// The approval wait's settings (checked by the plan in governed mode).
    fn wait_settings(&self) -> WaitSettings {
        self.settings.wait.clone().unwrap_or_default()
    }

    /// What a retry must match to adopt an approval request this call leaves open.
    fn adopt_key(&self) -> Option<adopt::Key> {
        let cfg = self.settings.platform.as_ref().ok()?;
        let command = &self.execute.as_ref()?.arguments.command;
        adopt::Key::new(cfg, &self.ctx, &adopt::command_digest(command))
    }

    /// Governed: Platform's answer (after an approval when it asks for one). Observe: run.
    fn decide(&mut self) -> Result<Decided, Refusal> {
        if let Some(a) = &self.attached {
            return Ok(Decided {
                outcome: Outcome::Allowed,
                execution_id: Some(a.execution_id.clone()),
                approval_request_id: None,
            });
        }
        if self.mode != Mode::Governed {
            return Ok(Decided {
                outcome: Outcome::Observed,
                execution_id: None,
                approval_request_id: None,
            });
        }
        let (Some(client), Some(execute), Ok(cfg)) =
            (&self.client, &self.execute, &self.settings.platform)
        else {
            // The plan refuses governed mode without a configuration; kept as a value.
            return Err(Refusal::new(
                Outcome::Misconfigured,
                "governed mode has no Platform configuration".to_string(),
            ));
        };
        let decider = Decider {
            platform: client.clone(),
            tenant: cfg.into(),
            ctx: &self.ctx,
            labels: &self.labels,
            wait: self.wait_settings(),
            decisions_fd: self.settings.decisions_fd.clone().ok().flatten(),
            data_dir: self.settings.data_dir.clone(),
        };
        // An approval request for this very command, left open by a run of this session that
        // was killed while waiting, is waited on again instead of asking anew (adopt.rs).
        let adopted = self
            .adopt_key()
            .and_then(|k| adopt_open_request(client, cfg, &k, self.settings.data_dir.as_deref()));
        let allowed = match &adopted {
            Some((execution, record)) => {
                crate::status::line(
                    crate::status::LineKind::Wait,
                    &format!(
                        "maestro-sh: adopting approval request left open by an earlier, killed \
                         run (tool_execution_id={})",
                        crate::outcome::id_inert(&execution.id)
                    ),
                );
                decider.wait_adopted(execute, execution, record, &mut self.sidecar)
            }
            None => {
                guardian::asking();
                decider.ask(execute, &mut self.sidecar)
            }
        }?;
        guardian::executed(&allowed.execution_id);
        Ok(Decided {
            outcome: allowed.outcome,
            execution_id: Some(allowed.execution_id),
            approval_request_id: allowed.approval_request_id,
        })
    }

    /// Record the run. Never changes the command's status and never holds the caller more
    /// than the record wait (crate::record): what Platform does not take by then is spooled
    /// and sent by a detached sender. Returns the execution id when known.
    fn record(
        &mut self,
        execution_id: Option<String>,
        exit: supervise::Exit,
        duration_ms: u64,
    ) -> Option<String> {
        let (Some(client), Some(execute)) = (&self.client, &self.execute) else {
            return execution_id;
        };
        // Observe: like Maestro's, the ExecuteTool record is sent after the run and carries
        // its local outcome (request::observed); the spooled copy is the same request.
        let execute = if self.mode == Mode::Observe {
            request::observed(execute, exit)
        } else {
            execute.clone()
        };
        let outbox = self.settings.data_dir.as_deref().and_then(|d| {
            Outbox::open(d, client.seal_key())
                .map_err(|e| crate::status::warn(&format!("records cannot be spooled: {e}")))
                .ok()
        });
        let record = request::record_output(
            &self.ctx,
            &execute,
            execution_id.as_deref().unwrap_or(""),
            exit,
            duration_ms,
        );
        let ids = Ids::new(&self.ctx.step_id).execution(execution_id.as_deref());
        let sidecar = &mut self.sidecar;
        // Outbox warnings become sidecar events as they happen (a drop: before the drop).
        let mut warn = |w: outbox::Warning| {
            sidecar.emit(&OutboxWarning {
                ids: ids.clone(),
                kind: w.kind,
                record: &w.record,
                reason: crate::redact::redact_message(&crate::outcome::inert(&w.reason)).text,
            });
        };
        let recorded = crate::record::deliver(
            client.clone(),
            outbox,
            execute,
            record,
            execution_id.clone(),
            self.settings.record_wait,
            &mut warn,
        );
        execution_id.or(recorded.execution_id)
    }
}

/// Claim and check an approval request a killed run of this session left for this command.
/// From the claim on, the guardian knows (killed, it puts the record back).
fn adopt_open_request(
    client: &Client,
    cfg: &PlatformConfig,
    key: &adopt::Key,
    data_dir: Option<&std::path::Path>,
) -> Option<(crate::platform::Execution, adopt::Record)> {
    let dir = data_dir?;
    let record = adopt::claim(dir, key)?;
    guardian::adopted_wait(&record);
    let checked =
        match client.get_tool_execution(&adopt::get_request(cfg, &record), client.timeout()) {
            Ok(got) => adopt::verify(key, &record, got),
            // Platform cannot say now: keep the record for the next retry (this one will be
            // refused as unavailable anyway).
            Err(crate::platform::CallError::Unavailable(_)) => {
                let _ = adopt::leave(dir, key, &record);
                None
            }
            Err(_) => None,
        };
    if checked.is_none() {
        guardian::wait_over();
    }
    checked.map(|c| (c, record))
}

/// The command's environment: ours, minus credentials and sidecar plumbing, plus the step id
/// (so nested shells share it) and the grant.
fn child_env(ctx: &Context, grant: Option<&str>) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !TOKEN_VARS.contains(&k.as_ref())
                && !NOT_INHERITED.contains(&k.as_ref())
                && k != GRANT_VAR
        })
        .collect();
    if ctx.step_id_generated {
        env.retain(|(k, _)| k != TOOL_CALL_ID_VAR);
        env.push((TOOL_CALL_ID_VAR.into(), ctx.step_id.clone().into()));
    }
    if let Some(g) = grant {
        env.push((GRANT_VAR.into(), g.into()));
    }
    env
}
