//! A local Platform that asks for approval, and the person and the UI that answer it: shared by
//! the approval, process, boundary and faults modules.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::platform::{platform_bin, stderr, DevPlatform, Gov, ORG, REVIEWER_TOKEN, TOKEN};

/// Every command starting `echo approve-me` needs a human; everything else is allowed.
pub const APPROVAL_POLICY: &str = r#"{"default":"allow","rules":[
  {"action":"require_approval","command_prefixes":["echo approve-me"],"reason":"needs a human"}]}"#;

/// A local Platform with [`APPROVAL_POLICY`]; keep the dir (the policy file) alive with it.
pub fn approval_platform() -> (DevPlatform, tempfile::TempDir) {
    approval_platform_with(&[])
}

/// [`approval_platform`] with extra `serve` arguments (`--approval-ttl-ms`, …).
pub fn approval_platform_with(args: &[&str]) -> (DevPlatform, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, APPROVAL_POLICY).unwrap();
    let mut all = vec!["--policy", policy.to_str().unwrap()];
    all.extend_from_slice(args);
    (DevPlatform::start_with(&all), dir)
}

/// Wait (bounded) until `g`'s sidecar shows the pending approval; its `approval_hit` data.
/// Fails at once if `child` (the run of `g`) exits first.
#[track_caller]
pub fn approval_hit(g: &Gov, child: &mut Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(mut e) = g.events_of("approval_hit").pop() {
            return e["data"].take();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("maestro-sh exited ({status}) before the approval was pending");
        }
        assert!(Instant::now() < deadline, "no approval_hit event in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `maestro-platform-dev approve|deny ID --by BY --reason REASON` from a second process, as a
/// person would (the reviewer credential).
#[track_caller]
pub fn review(p: &DevPlatform, verb: &str, approval_id: &str, by: &str, reason: &str) {
    let out = Command::new(platform_bin())
        .args([verb, approval_id, "--url", &p.url, "--by", by])
        .args(["--reason", reason])
        .env("MAESTRO_PLATFORM_DEV_TOKEN", TOKEN)
        .env("MAESTRO_PLATFORM_DEV_REVIEWER_TOKEN", REVIEWER_TOKEN)
        .env("MAESTRO_PLATFORM_DEV_ORG", ORG)
        .output()
        .unwrap();
    assert!(out.status.success(), "{verb}: {}", stderr(&out));
}

/// Files under `dir`, recursively, with their contents (unreadable ones as empty): where a
/// resume token must never be written.
pub fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}
