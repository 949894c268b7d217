//! The debug surface, under the `maestro-sh` name only: long options that bash rejects, so no
//! valid bash invocation changes meaning.

use std::ffi::{OsStr, OsString};

use serde_json::json;

use crate::argv;
use crate::config::PlatformConfig;
use crate::context::{self, Context};
use crate::env::{Env, ProcessEnv};
use crate::mode::{self, Mode};
use crate::platform::Client;
use crate::request::{self, Tenant};
use crate::settings::{self, ModeInputs, Plan, Settings};
use crate::{realshell, subject, wire};

const USAGE: &str = "usage: maestro-sh --version | --doctor | --explain [bash options] -c COMMAND";

/// Handle `--version`, `--doctor`, `--explain` when they are the first argument. Returns the
/// exit status when handled, `None` to carry on as bash.
pub fn dispatch(args: &[OsString]) -> Option<i32> {
    match args.first()?.to_str()? {
        "--version" => {
            println!("maestro-sh {}", env!("CARGO_PKG_VERSION"));
            Some(0)
        }
        "--doctor" => Some(doctor(&ProcessEnv)),
        "--explain" => Some(explain(&ProcessEnv, &args[1..])),
        "--help" if args.len() == 1 => {
            println!("{USAGE}\nOtherwise maestro-sh takes bash's options and runs the real bash (see README).");
            Some(0)
        }
        _ => None,
    }
}

/// `--explain [bash options] -c CMD`: what would be decided and sent. Sends nothing.
fn explain(env: &dyn Env, args: &[OsString]) -> i32 {
    if args.is_empty() {
        eprintln!("maestro-sh: --explain needs a command; {USAGE}");
        return 2;
    }
    let inv = argv::parse(OsStr::new("maestro-sh"), args, false);
    let Some(subject) = subject::describe(&inv, args) else {
        println!("{}", json!({"invocation": "informational", "runs": false}));
        return 0;
    };
    let ctx = Context::from_env(env, || "<generated at run time>".into());
    // The very plan a real run makes (settings.rs), so the two cannot drift.
    let inputs = ModeInputs::read(env);
    let verdict = inputs.local_verdict(&subject.classification);
    let plan = settings::plan(&inputs, &subject.classification, || Settings::read(env));
    let (mode, refusal) = match &plan {
        Plan::PassThrough => (json!(Mode::Off.as_str()), None),
        Plan::Refuse(r) => (json!(r.outcome.as_str()), Some(r.line())),
        Plan::Run(run) => (json!(run.mode.as_str()), None),
    };
    let warnings = match &plan {
        Plan::Run(run) => run.warnings.clone(),
        _ => Vec::new(),
    };
    // The request a governed run would send, even when this one passes through.
    let settings = match plan {
        Plan::Run(run) => run.settings,
        _ => Settings::read(env),
    };
    let (org, ws) = match &settings.platform {
        Ok(c) => (c.organization_id.clone(), c.workspace_id.clone()),
        Err(_) => (
            ctx.organization_id
                .clone()
                .unwrap_or_else(|| "<organization>".into()),
            ctx.workspace_id
                .clone()
                .unwrap_or_else(|| "<workspace>".into()),
        ),
    };
    let body_mode = match mode.as_str() {
        Some("observe") => Mode::Observe,
        _ => Mode::Governed,
    };
    let sanitized = crate::redact::sanitize_command(&subject.command);
    let body = request::execute_tool(
        &ctx,
        Tenant {
            organization_id: &org,
            workspace_id: &ws,
        },
        &subject,
        &sanitized,
        &request::Labels::for_command(&sanitized.text),
        body_mode,
    );
    let redact_argv = |c: &crate::classify::CommandVerdict| {
        json!({
            "program": c.program,
            "argv": crate::redact::redact_words(&c.argv),
            "read_only": c.read_only,
            "risk": c.risk.as_wire(),
            "reason": c.reason,
        })
    };
    let out = json!({
        "invocation": subject.kind,
        "commands": subject.classification.commands.iter().map(redact_argv).collect::<Vec<_>>(),
        "read_only": subject.classification.read_only,
        "risk": subject.classification.risk.as_wire(),
        "reasons": subject.classification.reasons,
        "parse_error": subject.classification.parse_error,
        "mode": mode,
        "refusal": refusal,
        "warnings": warnings,
        "local_policy": match &inputs.local {
            Ok(_) => json!(verdict),
            Err(e) => json!({"error": e.to_string()}),
        },
        "mode_reason": match &inputs.policy { Ok(p) => p.reason.clone(), Err(e) => e.to_string() },
        "platform_config": match &settings.platform { Ok(_) => json!("complete"), Err(e) => json!(e.to_string()) },
        "request": {"path": wire::EXECUTE_TOOL, "body": body},
        // Where our redaction departs from Maestro's to keep markers clean.
        "redaction_notes": sanitized.notes,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    0
}

/// `--doctor` lines about running under Maestro's bash tool: where sidecar events go, what
/// maestro-sh writes on stderr, and whether it attaches to Maestro's own bridge executions.
fn parity_lines(env: &dyn Env, line: &mut dyn FnMut(bool, &str, String)) {
    use crate::events::{EVENTS_FD_VAR, EVENTS_FILE_VAR};
    let fd = env.first_value(&[EVENTS_FD_VAR]);
    let file = env.first_value(&[EVENTS_FILE_VAR]);
    match (fd, file) {
        (Some(fd), file) => {
            let open = fd
                .parse::<i32>()
                .ok()
                .filter(|n| *n > 2)
                .is_some_and(|n| unsafe { libc::fcntl(n, libc::F_GETFD) } >= 0);
            let fallback = file.map(|f| format!("; events go to {EVENTS_FILE_VAR}={f}"));
            line(
                open || fallback.is_some(),
                "sidecar",
                if open {
                    format!("{EVENTS_FD_VAR}={fd}")
                } else {
                    format!(
                        "{EVENTS_FD_VAR}={fd} is not an open fd above 2 (Maestro's bash tool passes only fds 0-2; use {EVENTS_FILE_VAR}){}",
                        fallback.unwrap_or_default()
                    )
                },
            )
        }
        (None, Some(f)) => line(
            true,
            "sidecar",
            format!("appended to {f} ({EVENTS_FILE_VAR})"),
        ),
        (None, None) => line(
            true,
            "sidecar",
            format!("none (under Maestro set {EVENTS_FILE_VAR})"),
        ),
    }
    let status = env
        .first_value(&[crate::status::STATUS_VAR])
        .unwrap_or_else(|| "auto".into());
    line(
        crate::status::Status::parse(&status).is_some(),
        "stderr status lines",
        format!("{}={status}", crate::status::STATUS_VAR),
    );
    match crate::attach::settings(env) {
        Ok((setting, window)) => line(
            true,
            "attach to Maestro's bridge",
            format!(
                "{}={} (looks now: {}), window {} ms",
                crate::attach::ATTACH_VAR,
                format!("{setting:?}").to_ascii_lowercase(),
                match setting {
                    crate::attach::Setting::Off => "never",
                    crate::attach::Setting::On => "for every governed command",
                    crate::attach::Setting::Bridge =>
                        "for every governed command; observe records left to Maestro's bridge",
                    crate::attach::Setting::Auto
                        if mode::Policy::from_env(env).is_ok_and(|p| p.bridge_flag) =>
                        "for governed commands without MAESTRO_TOOL_CALL_ID",
                    crate::attach::Setting::Auto => "no, the bridge flag is off",
                },
                window.as_millis()
            ),
        ),
        Err(e) => line(false, "attach to Maestro's bridge", e.to_string()),
    }
}

/// `--doctor`: one line per check; exit 0 when everything needed for the current mode works.
fn doctor(env: &dyn Env) -> i32 {
    let mut ok = true;
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        println!("{} {what}: {detail}", if good { "ok  " } else { "FAIL" });
    };
    match realshell::find_from_env("bash") {
        Ok(p) => line(
            true,
            "real bash",
            format!("{} (maestro-sh itself is skipped)", p.display()),
        ),
        Err(e) => line(false, "real bash", e.to_string()),
    }
    let policy = mode::Policy::from_env(env);
    match &policy {
        Ok(p) => line(
            true,
            "mode",
            format!(
                "read-only commands: {}, mutating: {} ({})",
                p.read_only.as_str(),
                p.mutating.as_str(),
                p.reason
            ),
        ),
        Err(e) => line(false, "mode", e.to_string()),
    }
    // A flags service without a snapshot: Maestro may govern while we pass through.
    match mode::remote_flags_problem(env) {
        Some(w) => line(false, "feature flags", w),
        None if env.first_value(&[mode::FLAGS_URL_VAR]).is_some() => line(
            true,
            "feature flags",
            format!(
                "from the snapshot file ({} is not called)",
                mode::FLAGS_URL_VAR
            ),
        ),
        None => {}
    }
    parity_lines(env, &mut line);
    let needs_platform = policy.as_ref().map(|p| !p.is_off()).unwrap_or(true);
    let ctx = Context::from_env(env, || context::new_id("call_"));
    line(
        true,
        "step id",
        if ctx.step_id_generated {
            format!(
                "none given ({}); a new one per command",
                context::TOOL_CALL_ID_VAR
            )
        } else {
            ctx.step_id.clone()
        },
    );
    match PlatformConfig::load(env) {
        Err(e) => line(
            !needs_platform,
            "platform config",
            format!(
                "{e}{}",
                if needs_platform {
                    ""
                } else {
                    " (not needed: governance is off)"
                }
            ),
        ),
        Ok(cfg) => {
            line(
                true,
                "platform config",
                format!(
                    "{} org={} workspace={} token from {}",
                    cfg.base_url, cfg.organization_id, cfg.workspace_id, cfg.token_source
                ),
            );
            line(true, "token custody", token_custody(&cfg.token_source));
            let client = Client::new(&cfg);
            let req = wire::ListToolExecutionsRequest {
                workspace_id: Some(cfg.workspace_id.clone()),
                organization_id: Some(cfg.organization_id.clone()),
                limit: Some(1),
                ..Default::default()
            };
            match client.list_tool_executions(&req) {
                Ok(_) => line(
                    true,
                    "platform",
                    "reachable and the token is accepted".into(),
                ),
                Err(e) => line(
                    false,
                    "platform",
                    crate::redact::redact_message(&e.to_string()).text,
                ),
            }
        }
    }
    if ok {
        0
    } else {
        1
    }
}

/// Whether the governed command could read the token (SECURITY.md).
fn token_custody(source: &crate::config::TokenSource) -> String {
    let dump = if crate::harden::non_dumpable() {
        "maestro-sh is non-dumpable"
    } else {
        "WARNING: maestro-sh could not make itself non-dumpable"
    };
    if source.is_protected() {
        format!("protected: only maestro-sh's setgid group reads {source}; the governed command, running as you, cannot ({dump})")
    } else {
        format!("hidden only: the governed command's environment never has it and {dump}, but {source} is readable by every process of your user, the agent's included; install.sh run as root sets up protected mode")
    }
}
