//! Attacks by a hostile same-user agent (SECURITY.md), each driven through the real binaries.
//! Every test here is a door that was found open and closed, or (ignored) one that only the
//! operating system can close; SECURITY.md says which.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::platform::{flags_file, stderr, DevPlatform, Gov, ORG, WORKSPACE};
use crate::support::protected::{am_root, chmod, protected_install, run_as_nobody};

fn outbox_files(data: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join("outbox"))
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// The outbox is a directory of the user's: an agent can write records into it. Delivered as
/// they are, they would be sent to Platform under maestro-sh's credential (in protected mode a
/// token the agent cannot read): a signing oracle for any ExecuteTool and record the agent
/// shapes (another step, another command, another actor). Only records maestro-sh itself
/// spooled (sealed with a MAC under the token) may be sent; a forged or altered one is set
/// aside, never delivered, and does not block the genuine ones.
#[test]
fn a_record_planted_in_the_outbox_is_not_sent_with_our_token() {
    let p = DevPlatform::start();
    let data = tempfile::tempdir().unwrap();
    // Two genuine spooled records (Platform down).
    for step in ["call-rt-genuine", "call-rt-victim"] {
        let mut g = Gov::new(Some("http://127.0.0.1:9"), "observe", "true")
            .env("MAESTRO_SH_DATA_DIR", data.path())
            .env("MAESTRO_TOOL_CALL_ID", step);
        assert_eq!(g.run().status.code(), Some(0));
    }
    let files = outbox_files(data.path());
    assert_eq!(files.len(), 2, "{files:?}");
    // The agent rewrites one (another step, actor and command) and plants a copy under a new
    // name, as it can with any file of the user's.
    let victim = files
        .iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("call-rt-victim")
        })
        .unwrap();
    let mut entry: Value = serde_json::from_slice(&std::fs::read(victim).unwrap()).unwrap();
    entry["execute"]["linkage"]["stepId"] = "call-rt-forged".into();
    entry["execute"]["linkage"]["actorId"] = "someone-else".into();
    entry["execute"]["arguments"]["command"] = "echo forged by the agent".into();
    std::fs::write(victim, entry.to_string()).unwrap();
    entry["execute"]["linkage"]["stepId"] = "call-rt-planted".into();
    std::fs::write(
        data.path().join("outbox").join("0-planted.json"),
        entry.to_string(),
    )
    .unwrap();

    // Platform back: the next governed-by-observe run flushes the outbox.
    let mut g = Gov::new(Some(&p.url), "observe", "true")
        .env("MAESTRO_SH_DATA_DIR", data.path())
        .env("MAESTRO_TOOL_CALL_ID", "call-rt-flush");
    assert_eq!(g.run().status.code(), Some(0));

    let steps: Vec<String> = p
        .executions()
        .iter()
        .map(|e| {
            e["linkage"]["stepId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        !steps
            .iter()
            .any(|s| s == "call-rt-forged" || s == "call-rt-planted"),
        "a record the agent shaped was sent with our token: {steps:?}"
    );
    assert!(steps.iter().any(|s| s == "call-rt-genuine"), "{steps:?}");
    assert!(steps.iter().any(|s| s == "call-rt-flush"), "{steps:?}");
    // Nothing forged is left to be retried.
    let left: Vec<_> = outbox_files(data.path())
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A bridge-shaped execution the agent opened itself (it holds the agent credential: the
/// token is only hidden without protected mode) under another capability, which the
/// operator's policy does not hold for a human. Adopting it would run a CRITICAL command that
/// the policy says needs a reviewer: an execution is adopted only if Platform allowed it *as a
/// mutating `maestro.tool.bash` call*, the very tool our own request would name.
#[test]
fn an_execution_the_agent_opened_under_another_capability_is_not_adopted() {
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({"default": "allow", "rules": [{"action": "require_approval",
            "capabilities": ["maestro.tool.bash"], "risk_levels": ["RISK_LEVEL_CRITICAL"]}]})
        .to_string(),
    )
    .unwrap();
    let p = DevPlatform::start_with(&["--policy", policy.to_str().unwrap()]);
    // The agent predicts the command text of its next call: it must match byte for byte.
    let command = "rm -rf ./build && touch \"$MARKER\"";
    let step = "toolu_forged_1";
    let (status, v) = p.call(
        "/toolexecution.v1.ToolExecutionService/ExecuteTool",
        json!({
            "linkage": {"workspaceId": WORKSPACE, "organizationId": ORG, "agentId": "maestro",
                        "stepId": step, "surface": "maestro"},
            "tool": {"namespace": "maestro", "name": "bash",
                     "capability": "maestro.tool.shell_readonly", "operation": command,
                     "idempotent": false, "mutatesResource": true},
            "arguments": {"command": command},
            "riskLevel": "RISK_LEVEL_CRITICAL",
            "idempotencyKey": format!("agent:{step}"),
            "metadata": {"maestro_bridge_mode": "governed", "maestro_tool_call_id": step,
                         "maestro_tool_family": "bash",
                         "maestro_local_execution_authoritative": "true"},
        }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["execution"]["state"], "TOOL_EXECUTION_STATE_RUNNING",
        "{v}"
    );

    // The agent's next Bash call (Maestro exports no tool call id with its bridge on).
    // Ran, or not refused: the agent's own execution was adopted.
    let mut g = Gov::new(Some(&p.url), "governed", command)
        .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "1000")
        .env("MAESTRO_SH_ATTACH", "on")
        .expect_refused("approval_timeout");
    g.run_checked();
    assert!(g.completed()["attached_to"].is_null());
}

// ---- The flags snapshot: a file of the user's that turns governance off --------------------

const BRIDGE_FLAG: &str = "maestro.platform_runtime.tool_execution_bridge";
const KILL_SWITCH: &str = "platform.kill_switches.maestro.platform_runtime_bridge";
/// Maestro's flags snapshot is a file of the user's: an allowed command can write the kill
/// switch into it (or drop the governance flag), and every later call then runs ungoverned.
/// Without protected mode only the OS can stop that (SECURITY.md: keep the snapshot where the
/// user cannot write). In protected mode the operator sets a floor in the protected file
/// (`"governance": "governed"`), which no snapshot can lower.
#[test]
fn protected_mode_a_governance_floor_survives_a_kill_switch_the_agent_wrote() {
    if !am_root() {
        eprintln!("skipped: needs root to install setgid and run as another user (nobody)");
        return;
    }
    let p = DevPlatform::start();
    let command = "rm -rf ./build && touch \"$MARKER\"";
    for (floor, step) in [
        (None, "call-floor-none"),
        (Some("governed"), "call-floor-gov"),
    ] {
        let mut config = json!({"url": p.url, "token": crate::support::platform::TOKEN,
            "organization_id": ORG, "workspace_id": WORKSPACE, "allow_insecure_http": true});
        if let Some(f) = floor {
            config["governance"] = f.into();
        }
        let (_prefix, sh, _) = protected_install(&config);
        let g = Gov::new(None, "off", command)
            .env_remove("MAESTRO_SH_MODE")
            .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "1000")
            .env("MAESTRO_TOOL_CALL_ID", step);
        let mut g = match floor {
            // Documented: with no floor the kill switch wins, nothing is asked.
            None => g.expect_ran(true),
            // Ran, or not refused: the kill switch lowered the floor.
            Some(_) => g.expect_refused("approval_timeout"),
        };
        // The agent's earlier, allowed call rewrote the snapshot Maestro points at.
        let flags = flags_file(g.dir.path(), &[BRIDGE_FLAG, KILL_SWITCH]);
        chmod(&flags, 0o666);
        g = g.env("EVALOPS_FEATURE_FLAGS_PATH", &flags);
        let out = run_as_nobody(&sh, &mut g);
        g.check(&out);
        let asked = p.timeline(json!({"stepId": step})).len();
        assert_eq!(asked, usize::from(floor.is_some()), "{floor:?}");
    }
}

/// In protected mode the token must not reach a process of the user's. A plain-http loopback
/// URL does not ensure that: any local process can listen on the port whenever the real
/// service is not (restarting, killed by the agent, not started yet), and is handed the token
/// with the next call. Protected mode therefore wants https (the agent cannot present the
/// certificate) unless the operator opts in with `"allow_insecure_http": true`.
#[test]
fn protected_mode_plain_http_to_loopback_needs_the_explicit_opt_in() {
    if !am_root() {
        eprintln!("skipped: needs root to install setgid and run as another user (nobody)");
        return;
    }
    use std::io::Read;
    // The agent's listener, on the port the protected configuration names.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", squatter.local_addr().unwrap());
    squatter.set_nonblocking(true).unwrap();
    let (_prefix, sh, _) = protected_install(&json!({"url": url,
        "token": crate::support::platform::TOKEN, "organization_id": ORG,
        "workspace_id": WORKSPACE}));
    let mut g = Gov::marked(None, "governed", "true")
        .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "1000")
        .expect_refused("misconfigured")
        .expect_stderr_contains("allow_insecure_http");
    let out = run_as_nobody(&sh, &mut g);
    let mut heard = Vec::new();
    while let Ok((mut s, _)) = squatter.accept() {
        s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf) {
            heard.extend_from_slice(&buf[..n]);
        }
    }
    let heard = String::from_utf8_lossy(&heard);
    assert!(
        !heard.contains(crate::support::platform::TOKEN),
        "the token went to a listener on the loopback port: {heard}"
    );
    g.check(&out);
}

// ---- Classification: code bash runs from text the parser saw as data -----------------------

/// Bash evaluates array subscripts and arithmetic operands as expressions, and a substitution
/// inside one runs: `test -v 'a[$(cmd)]'` runs `cmd`. Read as plain text these looked
/// read-only (LOW), so with Maestro's bridge flag they were only observed — run with no
/// decision at all — and under any policy that lets LOW through they never met a reviewer.
/// Each form must be governed, its risk that of what it hides (here CRITICAL: held for a
/// human), and must not run.
#[test]
fn substitutions_hidden_in_subscripts_and_arithmetic_are_governed() {
    let p = DevPlatform::start();
    let hidden = "rm -rf ./build; touch \"$MARKER\"";
    let cases = [
        format!("test -v 'a[$({hidden})]'"),
        format!("[[ -v 'a[$({hidden})]' ]]"),
        format!("printf -v 'a[$({hidden})]' x"),
        format!("let 'a[$({hidden})]=1'"),
        format!("read 'a[$({hidden})]' <<< hi"),
        format!("x='a[$({hidden})]'; echo $((x))"),
        format!("x='$({hidden})'; echo ${{x@P}}"),
        format!("x='a[$({hidden})]'; [[ $x -eq 1 ]]"),
        // Built at run time: nothing to see in the text but the evaluation itself (HIGH).
        "d='$'; x=\"a[${d}(touch \\\"$MARKER\\\")]\"; echo $((x))".to_string(),
        "d='$'; x=\"a[${d}(touch \\\"$MARKER\\\")]\"; test -v \"$x\"".to_string(),
    ];
    let flags_dir = tempfile::tempdir().unwrap();
    let flags = flags_file(flags_dir.path(), &[BRIDGE_FLAG]);
    for (n, command) in cases.iter().enumerate() {
        let step = format!("call-hidden-{n}");
        let mut g = Gov::new(Some(&p.url), "off", command)
            .env_remove("MAESTRO_SH_MODE")
            .env("EVALOPS_FEATURE_FLAGS_PATH", &flags)
            .env("MAESTRO_SH_ATTACH", "off")
            .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "500")
            .env("MAESTRO_TOOL_CALL_ID", &step);
        let out = g.run();
        let done = g.completed();
        assert_ne!(
            done["governed_outcome"],
            "observed",
            "{command}: only observed: {}",
            stderr(&out)
        );
        let risk = g
            .events_of("tool_call.attempted")
            .first()
            .map(|e| e["data"]["risk_level"].clone())
            .unwrap_or_default();
        if command.contains("rm -rf") {
            assert_eq!(risk, "RISK_LEVEL_CRITICAL", "{command}");
            assert!(!g.ran(), "{command}: ran with no reviewer");
            assert_eq!(done["governed_outcome"], "approval_timeout", "{command}");
        } else {
            assert_eq!(risk, "RISK_LEVEL_HIGH", "{command}");
            assert_eq!(done["governed_outcome"], "allowed", "{command}");
        }
    }
    // Read-only commands are still only observed.
    let mut g = Gov::new(
        Some(&p.url),
        "off",
        "echo $((1+2)); ls ${HOME:-/tmp} >/dev/null",
    )
    .env_remove("MAESTRO_SH_MODE")
    .env("EVALOPS_FEATURE_FLAGS_PATH", &flags);
    assert_eq!(g.run().status.code(), Some(0));
    assert_eq!(g.completed()["governed_outcome"], "observed");
}

/// Option values attached to their flag run commands too: `strace -o'|cmd'` pipes its trace
/// into `cmd` (run by a shell), and `git --config-env=core.fsmonitor=VAR status` takes a hook
/// from the environment. Both were read-only LOW, so only observed.
#[test]
fn attached_option_values_that_run_commands_are_governed() {
    let p = DevPlatform::start();
    let flags_dir = tempfile::tempdir().unwrap();
    let flags = flags_file(flags_dir.path(), &[BRIDGE_FLAG]);
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap()
    };
    git(&["init", "-q"]);
    for (n, command) in [
        format!(
            "cd '{}' && H='touch \"$MARKER\"' git --config-env=core.fsmonitor=H status",
            repo.path().display()
        ),
        "strace -o'|rm -rf ./build; touch \"$MARKER\"' true".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let mut g = Gov::new(Some(&p.url), "off", command)
            .env_remove("MAESTRO_SH_MODE")
            .env("EVALOPS_FEATURE_FLAGS_PATH", &flags)
            .env("MAESTRO_SH_ATTACH", "off")
            .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "500")
            .env("MAESTRO_TOOL_CALL_ID", format!("call-attached-{n}"));
        let out = g.run();
        assert_ne!(
            g.completed()["governed_outcome"],
            "observed",
            "{command}: only observed: {}",
            stderr(&out)
        );
        if command.contains("rm -rf") {
            assert!(!g.ran(), "{command}: ran with no reviewer");
        }
    }
}

/// The local Platform's fault injection changes how it answers every caller: with the agent
/// credential an agent could make it drop answers or forget replays. Only the reviewer
/// (operator) credential may; the read-only hooks stay open to both.
#[test]
fn the_agent_credential_cannot_inject_faults_into_the_local_platform() {
    use crate::support::platform::REVIEWER_TOKEN;
    let p = DevPlatform::start();
    for method in ["SetFaults", "Reset"] {
        let (status, v) = p.call(
            &format!("/maestro.dev.v1.DevService/{method}"),
            json!({"faults": [{"method": "ExecuteTool", "kind": "no_replay_flag"}]}),
        );
        assert_eq!(status, 403, "{method}: {v}");
        let (status, v) = p.call_as(
            REVIEWER_TOKEN,
            &format!("/maestro.dev.v1.DevService/{method}"),
            json!({"faults": []}),
        );
        assert_eq!(status, 200, "{method}: {v}");
    }
    let (status, _) = p.call("/maestro.dev.v1.DevService/GetTimeline", json!({}));
    assert_eq!(status, 200);
}
