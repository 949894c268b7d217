//! Nested shells: a shell started inside a command we already governed or observed passes
//! straight through, so one Maestro tool call is one ToolExecution.
//!
//! The decision travels in `MAESTRO_SH_GRANT`, bound to three things a hand-set variable cannot
//! fake: the step id (a different `MAESTRO_TOOL_CALL_ID` is governed anew), the supervising
//! maestro-sh process (pid and start time; it must be an ancestor of the nested shell, so a
//! grant copied out of the process tree is worthless), and an HMAC under a per-user key kept in
//! a file readable only by the user.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const GRANT_VAR: &str = "MAESTRO_SH_GRANT";
const VERSION: &str = "v1";
/// How far up the process tree a nested shell may be from its supervisor.
const MAX_DEPTH: usize = 64;

/// The per-user key file, in the data dir.
pub fn key_path() -> Option<PathBuf> {
    crate::paths::data_dir().map(|d| d.join("grant.key"))
}

/// Read the key, creating it (random, mode 0600) on first use.
fn load_or_create_key(path: &Path) -> std::io::Result<Vec<u8>> {
    // Our own file in our own dir: no symlink, regular, tiny (crate::fsread).
    match crate::fsread::read_capped(path, 64, crate::fsread::Follow::No)
        .map_err(std::io::Error::from)
    {
        Ok(key) if key.len() == 32 => return check_private(path).map(|_| key),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is not a 32-byte key; delete it",
                path.display()
            )))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = vec![0u8; 32];
    getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    // Write under a unique name, then link into place: exactly one creator wins, and nobody
    // ever reads a half-written key.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            crate::fsread::read_capped(path, 64, crate::fsread::Follow::No).map_err(Into::into)
        }
        Err(e) => Err(e),
    }
}

fn check_private(path: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is readable by others; delete it",
            path.display()
        )));
    }
    Ok(())
}

fn mac(key: &[u8], step_id: &str, pid: u32, start: u64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(format!("{VERSION}\0{step_id}\0{pid}\0{start}").as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The process start time (clock ticks since boot) from `/proc/<pid>/stat`.
fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 19)
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_field(pid, 1).map(|p| p as u32)
}

/// Field `n` (0-based) after the `(comm)` part of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(n)?.parse().ok()
}

/// Issue a grant for `step_id`, held by this (supervising) process.
pub fn issue(step_id: &str) -> std::io::Result<String> {
    let path =
        key_path().ok_or_else(|| std::io::Error::other("no home directory for the grant key"))?;
    let key = load_or_create_key(&path)?;
    let pid = std::process::id();
    let start =
        start_time(pid).ok_or_else(|| std::io::Error::other("cannot read /proc/self/stat"))?;
    Ok(format!(
        "{VERSION}.{pid}.{start}.{}",
        mac(&key, step_id, pid, start)
    ))
}

/// True when `grant` was issued for `step_id` by a live maestro-sh that is our ancestor.
pub fn verify(grant: &str, step_id: &str) -> bool {
    let mut parts = grant.split('.');
    let (Some(VERSION), Some(pid), Some(start), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if !is_ancestor(pid, start) {
        return false;
    }
    let Some(key) =
        key_path().and_then(|p| crate::fsread::read_capped(&p, 64, crate::fsread::Follow::No).ok())
    else {
        return false;
    };
    let want = mac(&key, step_id, pid, start);
    // Constant-time compare.
    want.len() == tag.len()
        && want
            .bytes()
            .zip(tag.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn is_ancestor(pid: u32, start: u64) -> bool {
    let mut cur = std::process::id();
    for _ in 0..MAX_DEPTH {
        let Some(parent) = parent_of(cur) else {
            return false;
        };
        if parent == pid {
            return start_time(pid) == Some(start);
        }
        if parent <= 1 {
            return false;
        }
        cur = parent;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("grant.key");
        let k1 = load_or_create_key(&path).unwrap();
        let k2 = load_or_create_key(&path).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn malformed_grants_are_rejected() {
        for g in [
            "",
            "v1",
            "v1.1.2",
            "v2.1.2.ab",
            "v1.x.2.ab",
            "v1.1.2.ab.c",
            "1",
        ] {
            assert!(!verify(g, "step"), "{g}");
        }
    }

    #[test]
    fn a_grant_held_by_a_non_ancestor_is_rejected() {
        // Our own pid is not our ancestor.
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        assert!(!verify(&format!("v1.{pid}.{start}.00"), "step"));
        assert!(parent_of(pid).is_some());
    }
}
