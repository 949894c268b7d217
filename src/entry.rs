//! The process entry: argv → context → classify → decide → run → report.
//!
//! The pass-through path (governance off, or a nested shell holding a grant for this step) does
//! only what deciding "pass-through" needs — env lookups and, when the variable is set, one small
//! flags file — and then `execve`s the real shell.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::argv::{self, Invocation, Personality};
use crate::classify::policy::{self, Decision};
use crate::config::{PlatformConfig, TOKEN_VARS};
use crate::context::{self, Context, TOOL_CALL_ID_VAR};
use crate::env::{Env, ProcessEnv};
use crate::events::{self, Sidecar};
use crate::grant::{self, GRANT_VAR};
use crate::mode::{self, Mode};
use crate::outbox::{self, Outbox};
use crate::outcome::{Outcome, Refusal, REFUSED};
use crate::platform::Client;
use crate::realshell::{self, ExecPlan};
use crate::request::{self, Tenant};
use crate::subject::{self, Subject};
use crate::supervise;
use crate::{adopt, decide, guardian, paths};

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
    // A local policy file is a mode input too: with it set, classification always runs.
    let local_policy_set = env.get(policy::POLICY_FILE_VAR).is_some();
    let policy = match mode::decide(&env) {
        Ok(p) if p.is_off() && !local_policy_set => {
            // A flags service without a snapshot: say so rather than run silently ungoverned.
            if let Some(w) = mode::remote_flags_problem(&env) {
                crate::status::warn(&w);
            }
            return passthrough(personality, &argv);
        }
        Ok(p) => p,
        // Governance may be on and we cannot tell: refuse.
        Err(e) => return refuse_early(&env, Refusal::new(Outcome::Misconfigured, e.to_string())),
    };

    // A shell nested inside a command we already decided for this step passes through.
    if let (Some(g), Some(step)) = (env.get(GRANT_VAR), env.first_value(&[TOOL_CALL_ID_VAR])) {
        if grant::verify(&g, &step) {
            return passthrough(personality, &argv);
        }
    }

    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut invocation = argv::parse(&argv0, args, terminal);
    invocation.personality = personality;
    let Some(subject) = subject::describe(&invocation, args) else {
        return passthrough(personality, &argv); // --version / --help: nothing runs
    };
    let local = match local_rules(&env, &subject) {
        Ok(decision) => decision,
        Err(refusal) => return refuse_early(&env, refusal),
    };
    let mode = policy.for_command(subject.classification.read_only, local);
    if mode == Mode::Off {
        return passthrough(personality, &argv);
    }
    govern(&env, &invocation, &argv, subject, mode)
}

/// Apply the local policy file (`MAESTRO_SH_POLICY_FILE`) to the subject: a `deny` or an
/// unusable file is a refusal; otherwise the strongest matching decision, if any.
fn local_rules(env: &dyn Env, subject: &Subject) -> Result<Option<Decision>, Refusal> {
    let rules =
        policy::load(env).map_err(|e| Refusal::new(Outcome::Misconfigured, e.to_string()))?;
    let verdict = rules.and_then(|r| r.evaluate(&subject.classification));
    match verdict {
        Some(v) if v.decision == Decision::Deny => Err(Refusal::new(
            Outcome::Denied,
            format!("local policy rule \"{}\": {}", v.rule, v.reason),
        )),
        other => Ok(other.map(|v| v.decision)),
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

/// A refusal before we even know the step: report it with a best-effort context.
fn refuse_early(env: &dyn Env, refusal: Refusal) -> i32 {
    supervise::shield_sigpipe();
    let ctx = Context::from_env(env, || context::new_id("call_"));
    let mut sidecar = open_sidecar(env, &ctx);
    report_refusal(&mut sidecar, &ctx, &refusal, None)
}

fn open_sidecar(env: &dyn Env, ctx: &Context) -> Sidecar {
    Sidecar::open(env, ctx).unwrap_or_else(|e| {
        crate::status::warn(&format!("{e}; no sidecar events will be written"));
        Sidecar::none()
    })
}

/// Print the one stderr line, emit the completed event, and return 126.
fn report_refusal(
    sidecar: &mut Sidecar,
    ctx: &Context,
    r: &Refusal,
    started: Option<Instant>,
) -> i32 {
    crate::status::line(crate::status::Kind::Refusal, &r.line());
    sidecar.emit_refusal(ctx, r, started.map(|s| s.elapsed().as_millis() as u64));
    // Nothing is left for the guardian (if any) to record: we reported the refusal ourselves.
    guardian::done();
    REFUSED
}

/// Observe or govern `subject`, run it when allowed, record, report, and leave like the child.
fn govern(
    env: &dyn Env,
    invocation: &Invocation,
    argv: &[OsString],
    subject: Subject,
    mode: Mode,
) -> i32 {
    let started = Instant::now();
    supervise::shield_sigpipe();
    let mut ctx = Context::from_env(env, || context::new_id("call_"));
    let mut sidecar = open_sidecar(env, &ctx);

    let cfg = match PlatformConfig::load(env) {
        Ok(cfg) => Some(cfg),
        Err(e) if mode == Mode::Governed => {
            return report_refusal(
                &mut sidecar,
                &ctx,
                &Refusal::new(Outcome::Misconfigured, e.to_string()),
                Some(started),
            );
        }
        Err(e) => {
            // Observe never blocks the command: run, and say why nothing is recorded (unless
            // the record is Maestro's bridge's to make: MAESTRO_SH_ATTACH=bridge).
            if !crate::attach::observe_left_to_bridge(env) {
                crate::status::warn(&format!("observe mode cannot record: {e}"));
            }
            None
        }
    };
    // Every setting the approval wait needs is checked before the first Platform call, so a bad
    // value refuses before an approval request is opened (and would dangle).
    if mode == Mode::Governed {
        if let Err(e) = crate::approval::check_settings(env) {
            return report_refusal(
                &mut sidecar,
                &ctx,
                &Refusal::new(Outcome::Misconfigured, e),
                Some(started),
            );
        }
    }
    let shell = match realshell::shell_from_env(invocation.personality.real_name()) {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!("maestro-sh: {e}");
            return NO_SHELL;
        }
    };
    let tenant = cfg.as_ref().map(|c| Tenant {
        organization_id: &c.organization_id,
        workspace_id: &c.workspace_id,
    });
    // What Platform and the sidecar may see of the command: sanitized once.
    let sanitized = crate::redact::sanitize_command(&subject.command);
    let client = cfg.as_ref().map(|c| Arc::new(Client::new(c)));
    // Maestro's own bridge may already govern this very call: adopt its execution and its
    // tool call id instead of opening a second one (attach.rs). Recording then stays with it.
    let attached = match (&client, &cfg) {
        (Some(client), Some(cfg)) if mode == Mode::Governed => crate::attach::for_command(
            env,
            client,
            cfg,
            &ctx,
            subject.classification.risk.as_wire(),
            !subject.classification.read_only,
            &sanitized.text,
        ),
        _ => None,
    };
    if let Some(a) = &attached {
        ctx.step_id = a.step_id.clone();
        sidecar.rebind(env, &ctx);
    }
    // Nothing to send when Maestro's bridge holds this call's execution: adopted, or (observe,
    // MAESTRO_SH_ATTACH=bridge) recorded by the bridge after the tool result.
    let bridge_holds =
        attached.is_some() || (mode == Mode::Observe && crate::attach::observe_left_to_bridge(env));
    let execute = tenant
        .filter(|_| !bridge_holds)
        .map(|t| request::execute_tool(&ctx, t, &subject, &sanitized, mode));

    sidecar.emit(
        events::ATTEMPTED,
        json!({
            "tool_call_id": ctx.step_id,
            "tool_namespace": "maestro",
            "tool_name": "bash",
            "tool_version": ctx.tool_version,
            "capability": "maestro.tool.bash",
            "mutates_resource": !subject.classification.read_only,
            "risk_level": subject.classification.risk.as_wire(),
            "safe_arguments": {"command": sanitized.text},
            "redactions": sanitized.kinds,
            "idempotency_key": ctx.idempotency_key(),
            "mode": mode.as_str(),
            "attached_to": bridge_holds.then_some("maestro_bridge"),
            "attempted_at": events::rfc3339(std::time::SystemTime::now()),
        }),
    );

    // From here to the final record a guardian outside the caller's process group records what
    // we cannot if the caller kills us (see guardian.rs).
    let adopt_key = cfg.as_ref().and_then(|c| {
        let digest = adopt::command_digest(&sanitized.text);
        adopt::Key::new(c, &ctx, &digest)
    });
    if let (Some(client), Some(execute), Some(cfg)) = (&client, &execute, &cfg) {
        guardian::spawn(guardian::Job {
            client: client.clone(),
            ctx: &ctx,
            execute,
            data_dir: paths::data_dir(),
            adopt: adopt_key.clone().filter(|_| mode == Mode::Governed),
            cfg,
            // Checked with the approval settings above; the default only outside governed mode.
            adopt_window: adopt::window(env).unwrap_or_default(),
        });
    }

    // Decide (governed only). Observe runs first and records after.
    let (outcome, mut execution_id, approval_id) = if let Some(a) = &attached {
        (Outcome::Allowed, Some(a.execution_id.clone()), None)
    } else if mode == Mode::Governed {
        let (Some(client), Some(execute), Some(cfg)) = (&client, &execute, &cfg) else {
            unreachable!("governed mode has a config")
        };
        // An approval request for this very command, left open by a run of this session that
        // was killed while waiting, is waited on again instead of asking anew (adopt.rs).
        let adopted = adopt_key
            .as_ref()
            .and_then(|k| adopt_open_request(client, cfg, k));
        if adopted.is_none() {
            guardian::asking();
        }
        let decided = match &adopted {
            Some((execution, record)) => {
                crate::status::line(
                    crate::status::Kind::Wait,
                    &format!(
                        "maestro-sh: adopting approval request left open by an earlier, killed \
                         run (tool_execution_id={})",
                        execution.id
                    ),
                );
                crate::approval::wait_adopted(
                    client,
                    cfg,
                    &ctx,
                    execute,
                    execution,
                    record,
                    &mut sidecar,
                )
            }
            None => decide::decide(client, cfg, &ctx, execute, &mut sidecar),
        };
        match decided {
            Ok(a) => {
                guardian::executed(&a.execution_id);
                (a.outcome, Some(a.execution_id), a.approval_request_id)
            }
            Err(r) => return report_refusal(&mut sidecar, &ctx, &r, Some(started)),
        }
    } else {
        (Outcome::Observed, None, None)
    };

    // Run. The child gets our step id (and, for nested shells, a grant) and loses credentials.
    // Only a governed step grants: a shell inside an observed one is governed anew.
    let grant = if mode == Mode::Governed {
        grant::issue(&ctx.step_id)
            .map_err(|e| crate::status::warn(&format!("nested shells will be governed anew: {e}")))
            .ok()
    } else {
        None
    };
    let plan = shell.plan(argv).with_env(child_env(&ctx, grant.as_deref()));
    guardian::running();
    let run = match supervise::run(&plan) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("maestro-sh: cannot start {}: {e}", shell.path.display());
            guardian::done();
            return REFUSED;
        }
    };
    let duration_ms = run.duration.as_millis() as u64;
    // Observe: like Maestro's, the ExecuteTool record is sent after the run and carries its
    // local outcome (request::observed); the spooled copy is the same request.
    let execute = match execute {
        Some(e) if mode == Mode::Observe => Some(request::observed(&e, run.exit)),
        other => other,
    };

    // Record. Never changes the command's status and never holds the caller more than the
    // record wait (crate::record): what Platform does not take by then is spooled and sent by
    // a detached sender.
    if let (Some(client), Some(execute)) = (client, &execute) {
        let outbox = paths::data_dir().and_then(|d| {
            Outbox::open(&d, client.seal_key())
                .map_err(|e| crate::status::warn(&format!("records cannot be spooled: {e}")))
                .ok()
        });
        let record = request::record_output(
            &ctx,
            execute,
            execution_id.as_deref().unwrap_or(""),
            run.exit,
            duration_ms,
        );
        // Outbox warnings become sidecar events as they happen (a drop: before the drop).
        let mut warn = |w: outbox::Warning| {
            sidecar.emit(
                outbox::WARNING_EVENT,
                json!({
                    "kind": w.kind,
                    "record": w.record,
                    "reason": crate::redact::redact_message(&crate::outcome::inert(&w.reason)).text,
                }),
            );
        };
        let recorded = crate::record::deliver(
            client,
            outbox,
            execute.clone(),
            record,
            execution_id.clone(),
            crate::record::record_wait(env),
            &mut warn,
        );
        if execution_id.is_none() {
            execution_id = recorded.execution_id;
        }
    }

    guardian::done();

    let done = json!({
        "tool_call_id": ctx.step_id,
        "tool_execution_id": execution_id,
        "approval_request_id": approval_id,
        "governed_outcome": outcome.as_str(),
        "attached_to": bridge_holds.then_some("maestro_bridge"),
        "status": events::run_status(run.exit),
        "exit_status": run.exit.status(),
        "signal": run.exit.signal_name(),
        "duration_ms": duration_ms,
        "duration": events::duration_string(duration_ms),
        "completed_at": events::rfc3339(std::time::SystemTime::now()),
    });
    sidecar.emit_result(done);
    drop(sidecar);
    supervise::exit_like(run.exit)
}

/// Claim and check an approval request a killed run of this session left for this command.
/// From the claim on, the guardian knows (killed, it puts the record back).
fn adopt_open_request(
    client: &Client,
    cfg: &PlatformConfig,
    key: &adopt::Key,
) -> Option<(crate::platform::Checked, adopt::Record)> {
    let dir = paths::data_dir()?;
    let record = adopt::claim(&dir, key)?;
    guardian::adopted_wait(&record);
    let checked =
        match client.get_tool_execution(&adopt::get_request(cfg, &record), client.timeout()) {
            Ok(got) => adopt::verify(key, &record, got),
            // Platform cannot say now: keep the record for the next retry (this one will be
            // refused as unavailable anyway).
            Err(crate::platform::CallError::Unavailable(_)) => {
                let _ = adopt::leave(&dir, key, &record);
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
