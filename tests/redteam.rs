//! Attacks by a hostile same-user agent (SECURITY.md), each driven through the real binaries.
//! Every test here is a door that was found open and closed, or (ignored) one that only the
//! operating system can close; SECURITY.md says which.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::platform::{stderr, DevPlatform, Gov, ORG, WORKSPACE};

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
    let mut g = Gov::new(Some(&p.url), "governed", command)
        .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "1000")
        .env("MAESTRO_SH_ATTACH", "on");
    let out = g.run();
    assert!(
        !g.ran(),
        "the agent's own execution was adopted: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_eq!(g.completed()["governed_outcome"], "approval_timeout");
    assert!(g.completed()["attached_to"].is_null());
}
