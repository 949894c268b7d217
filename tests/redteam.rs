//! Attacks by a hostile same-user agent (SECURITY.md), each driven through the real binaries.
//! Every test here is a door that was found open and closed, or (ignored) one that only the
//! operating system can close; SECURITY.md says which.

use std::path::Path;

use serde_json::Value;

use crate::support::platform::{DevPlatform, Gov};

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
