//! The debug surface, under the `maestro-sh` name only: long options that bash rejects, so no
//! valid bash invocation changes meaning.

use std::ffi::{OsStr, OsString};

use serde_json::json;

use crate::argv;
use crate::classify::policy::Decision;
use crate::config::PlatformConfig;
use crate::context::{self, Context};
use crate::env::{Env, ProcessEnv};
use crate::mode::{self, Mode};
use crate::platform::Client;
use crate::request::{self, Tenant};
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
    let policy = mode::decide(env);
    // The local policy file: what it matches and what that does to the mode.
    let local = crate::classify::policy::load(env)
        .map(|rules| rules.and_then(|r| r.evaluate(&subject.classification)));
    let local_decision = local
        .as_ref()
        .ok()
        .and_then(|v| v.as_ref())
        .map(|v| v.decision);
    let mode = policy
        .as_ref()
        .map(|p| p.for_command(subject.classification.read_only, local_decision))
        .unwrap_or(Mode::Governed);
    let cfg = PlatformConfig::load(env);
    let (org, ws) = match &cfg {
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
    let body_mode = if mode == Mode::Off {
        Mode::Governed
    } else {
        mode
    };
    let body = request::execute_tool(
        &ctx,
        Tenant {
            organization_id: &org,
            workspace_id: &ws,
        },
        &subject,
        &crate::redact::sanitize_command(&subject.command),
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
        "mode": match (&policy, &local) {
            (Err(_), _) | (_, Err(_)) => json!("misconfigured"),
            (_, Ok(Some(v))) if v.decision == Decision::Deny => json!("denied"),
            _ => json!(mode.as_str()),
        },
        "local_policy": match &local {
            Ok(v) => json!(v),
            Err(e) => json!({"error": e.to_string()}),
        },
        "mode_reason": match &policy { Ok(p) => p.reason.clone(), Err(e) => e.to_string() },
        "platform_config": match &cfg { Ok(_) => json!("complete"), Err(e) => json!(e.to_string()) },
        "request": {"path": wire::EXECUTE_TOOL, "body": body},
        // Where our redaction departs from Maestro's to keep markers clean.
        "redaction_notes": crate::redact::sanitize_command(&subject.command).notes,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    0
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
    let policy = mode::decide(env);
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
