//! The local per-step journal: at most one run of a tool call on this machine, whatever
//! Platform answers.
//!
//! Platform's idempotent replay is the primary guard (a replay is never permission to run,
//! crate::decide::replay_refusal). This is the second one, for a Platform that forgets the
//! replay flag or hands RUNNING twice: before running, an allowed invocation creates
//! `<data dir>/steps/<sha256 of Platform URL, organization, workspace, idempotency key>` with
//! `O_EXCL`; the kernel lets exactly one creator win, and every later attempt is refused as
//! `already_ran`. The file is empty and named by a hash, so it reveals nothing but a count.
//! It lives in the user's data dir, so an agent running as the user can delete it: it guards
//! against retries and races, not against the agent (SECURITY.md).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What claiming a step found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This invocation is the first to run the step here.
    First,
    /// An earlier invocation already claimed it (path of its journal entry).
    Taken(PathBuf),
}

/// The journal entry for one step of one Platform tenant.
pub fn entry_path(data_dir: &Path, base_url: &str, org: &str, ws: &str, key: &str) -> PathBuf {
    let mut h = Sha256::new();
    for part in [base_url, org, ws, key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let name: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    data_dir.join("steps").join(name)
}

/// Claim the step: create its entry exclusively (mode 0600).
pub fn claim(entry: &Path) -> std::io::Result<Claim> {
    if let Some(dir) = entry.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(entry)
    {
        Ok(_) => Ok(Claim::First),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Claim::Taken(entry.to_path_buf()))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_claim_wins_among_racers() {
        let dir = tempfile::tempdir().unwrap();
        let entry = entry_path(dir.path(), "http://127.0.0.1:1", "o", "w", "maestro:s");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| claim(&entry).unwrap())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|c| *c == Claim::First)
                .count()
        });
        assert_eq!(wins, 1);
        assert_eq!(claim(&entry).unwrap(), Claim::Taken(entry.clone()));
        // Another tenant's same key is another step.
        let other = entry_path(dir.path(), "http://127.0.0.1:1", "o2", "w", "maestro:s");
        assert_ne!(other, entry);
        assert_eq!(claim(&other).unwrap(), Claim::First);
    }
}
