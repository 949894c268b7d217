//! Nested shells: a shell started inside a command we governed passes straight through, so one
//! Maestro tool call is one ToolExecution.
//!
//! The decision travels in `MAESTRO_SH_GRANT`, bound to what a hand-set variable cannot fake:
//! the step id (a different `MAESTRO_TOOL_CALL_ID` is governed anew); the supervising process
//! (pid and start time), which must be a live ancestor of the nested shell and must be
//! maestro-sh (see `is_maestro_sh`), so a grant copied out of the process tree or kept after the
//! supervisor exited is worthless; and an HMAC under a per-user key. The key is read from the
//! user's home as the password database names it, never from a directory the environment
//! chooses (`MAESTRO_SH_DATA_DIR` would let a command verify against a key of its own), and
//! only if it is a regular file owned by the user, mode 0600, exactly 32 bytes, in a directory
//! owned by the user. Only governed steps issue grants: a shell inside an observed (read-only)
//! step is governed anew. What a same-user agent can still forge is in SECURITY.md.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const GRANT_VAR: &str = "MAESTRO_SH_GRANT";
const VERSION: &str = "v1";
/// How far up the process tree a nested shell may be from its supervisor.
const MAX_DEPTH: usize = 64;

const KEY_LEN: usize = 32;

/// The per-user key file: `<home from the password database>/.local/share/maestro-sh/grant.key`.
pub fn key_path() -> Option<PathBuf> {
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid).ok()??;
    Some(user.dir.join(".local/share/maestro-sh/grant.key"))
}

/// Why a key or its directory is not trusted.
fn untrusted(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::other(format!("{}: {why}; delete it", path.display()))
}

/// The directory must be ours and not writable by others.
fn check_dir(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(untrusted(dir, "not a directory"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(untrusted(dir, "the data directory is not owned by you"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(dir, "the data directory is writable by others"));
    }
    Ok(())
}

/// Read the key if it is trustworthy: a regular file (not a symlink) owned by us, mode 0600
/// (no group/other bits), exactly 32 bytes, in a directory of ours.
fn read_key(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(dir) = path.parent() {
        check_dir(dir)?;
    }
    // No symlink, and no blocking open of a planted FIFO: the type is checked on the descriptor.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(untrusted(path, "not owned by you"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(untrusted(
            path,
            "readable or writable by others (want mode 600)",
        ));
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(untrusted(path, "not a 32-byte key"));
    }
    let mut key = vec![0u8; KEY_LEN];
    f.read_exact(&mut key)?;
    Ok(key)
}

/// Read the key, creating it (random, mode 0600) on first use.
fn load_or_create_key(path: &Path) -> std::io::Result<Vec<u8>> {
    match read_key(path) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        check_dir(dir)?;
    }
    let mut key = vec![0u8; KEY_LEN];
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
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(e),
    }
}

fn mac(key: &[u8], step_id: &str, pid: u32, start: u64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(format!("{VERSION}\0{step_id}\0{pid}\0{start}").as_bytes());
    crate::context::hex(&m.finalize().into_bytes())
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
    if !is_ancestor(pid, start) || !is_maestro_sh(pid) {
        return false;
    }
    let Some(key) = key_path().and_then(|p| read_key(&p).ok()) else {
        return false;
    };
    let want = mac(&key, step_id, pid, start);
    // Constant-time compare (lengths are public: both are hex MACs).
    bool::from(want.as_bytes().ct_eq(tag.as_bytes()))
}

/// Is `pid` running the same program as we are? Where the kernel lets us see its executable
/// (`/proc/<pid>/exe`: dumpable, or we are root), it must be our own file (device and inode).
/// A maestro-sh supervisor is non-dumpable, so for a non-root user the link is closed; then
/// the next best evidence must hold: the process is non-dumpable (its /proc entry belongs to
/// root) and its command name is one maestro-sh runs under. SECURITY.md says what this leaves.
fn is_maestro_sh(pid: u32) -> bool {
    let Ok(ours) = std::fs::metadata("/proc/self/exe") else {
        return false;
    };
    match std::fs::metadata(format!("/proc/{pid}/exe")) {
        Ok(theirs) => theirs.dev() == ours.dev() && theirs.ino() == ours.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let non_dumpable = std::fs::metadata(format!("/proc/{pid}"))
                .is_ok_and(|m| m.uid() == 0 && nix::unistd::geteuid().as_raw() != 0);
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            non_dumpable && matches!(comm.trim_end(), "maestro-sh" | "bash" | "sh")
        }
        Err(_) => false,
    }
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
    fn untrustworthy_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grant.key");
        let set_mode =
            |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        // Wrong length.
        std::fs::write(&path, [7u8; 31]).unwrap();
        set_mode(&path, 0o600).unwrap();
        assert!(read_key(&path).unwrap_err().to_string().contains("32-byte"));
        // Readable by others.
        std::fs::write(&path, [7u8; 32]).unwrap();
        set_mode(&path, 0o644).unwrap();
        assert!(read_key(&path)
            .unwrap_err()
            .to_string()
            .contains("mode 600"));
        set_mode(&path, 0o600).unwrap();
        assert_eq!(read_key(&path).unwrap(), vec![7u8; 32]);
        // A symlink to a key is not the key.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read_key(&link).is_err());
        // A directory others can write to.
        set_mode(dir.path(), 0o777).unwrap();
        assert!(read_key(&path)
            .unwrap_err()
            .to_string()
            .contains("writable by others"));
        set_mode(dir.path(), 0o700).unwrap();
        // Not owned by us (root can hand it to someone else).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            assert!(read_key(&path)
                .unwrap_err()
                .to_string()
                .contains("not owned"));
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            assert!(read_key(&path)
                .unwrap_err()
                .to_string()
                .contains("not owned"));
        }
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
