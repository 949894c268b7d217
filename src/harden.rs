//! Keeping secrets inside this process (SECURITY.md).
//!
//! * Non-dumpable from the first instruction of `main`: `PR_SET_DUMPABLE` 0 makes
//!   `/proc/<pid>/{mem,environ,fd,exe}` and ptrace refuse every process of the same user that is
//!   not root, so neither the token (in our initial environment or in memory) nor a resume token
//!   can be read out of us by the command we run. `execve` resets the flag, so the real shell we
//!   exec (pass-through) or spawn (governed) is an ordinary process again.
//! * Protected install mode: when maestro-sh is installed setgid to a dedicated group that alone
//!   can read `<prefix>/etc/maestro-sh/platform.json` (install.sh), we open that file with the
//!   group, drop the group at once (`setresgid` to the real gid) and keep only the open,
//!   close-on-exec descriptor. The kernel starts a setgid process non-dumpable, so there is no
//!   window in which a process of the user can read us. URL, organization, workspace and CA
//!   come from the same file: an agent that could point us at its own listener would be handed
//!   the token.
//! * A setgid start is a "secure" one (AT_SECURE): the C library drops LD_*, TMPDIR and a few
//!   more variables from our environment. The kernel's copy of our initial environment
//!   (`/proc/self/environ`, which only we can read) is intact, so we restore it before anything
//!   reads the environment, and the shell sees exactly what it would have seen.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The protected configuration, relative to the directory of the running binary.
pub const PROTECTED_CONFIG_REL: &str = "../etc/maestro-sh/platform.json";

/// What start-up found about the protected configuration.
#[derive(Debug)]
pub enum Protected {
    /// Not started setgid: no protected configuration (the token, if any, is only hidden).
    No,
    /// Started setgid and opened the file with the group (now dropped).
    Open { path: PathBuf, file: File },
    /// Started setgid but the file could not be opened: governed runs refuse.
    Unreadable { path: PathBuf, error: String },
}

static PROTECTED: OnceLock<Protected> = OnceLock::new();

/// Call first thing in `main`, before any thread exists and before the environment is read.
/// Returns an error message when the process must not go on (cannot drop the group).
pub fn startup() -> Result<(), String> {
    // SAFETY: prctl with integer arguments; failure leaves us dumpable (reported by --doctor).
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: plain id getters.
    let (rgid, egid, ruid, euid) = unsafe {
        (
            libc::getgid(),
            libc::getegid(),
            libc::getuid(),
            libc::geteuid(),
        )
    };
    if ruid != euid {
        return Err(
            "maestro-sh must not be installed setuid (setgid to its own group only)".into(),
        );
    }
    if rgid == egid {
        let _ = PROTECTED.set(Protected::No);
        return Ok(());
    }
    restore_environment();
    let protected = open_protected();
    // SAFETY: setresgid with our own real gid: drop the group for good.
    if unsafe { libc::setresgid(rgid, rgid, rgid) } != 0 {
        return Err(format!(
            "cannot drop the setgid group: {}",
            std::io::Error::last_os_error()
        ));
    }
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let _ = PROTECTED.set(protected);
    Ok(())
}

fn open_protected() -> Protected {
    let path = match std::fs::read_link("/proc/self/exe") {
        Ok(exe) => exe
            .parent()
            .map(|d| d.join(PROTECTED_CONFIG_REL))
            .unwrap_or_default(),
        Err(e) => {
            return Protected::Unreadable {
                path: PathBuf::from("/proc/self/exe"),
                error: e.to_string(),
            }
        }
    };
    // std opens with O_CLOEXEC: the descriptor never reaches the shell.
    match File::open(&path) {
        Ok(file) => Protected::Open { path, file },
        Err(e) => Protected::Unreadable {
            path,
            error: e.to_string(),
        },
    }
}

/// Replace the environment with the kernel's copy of the one we were started with.
fn restore_environment() {
    // A non-dumpable process's /proc files belong to root, so even we cannot open our own
    // environ. We are still setgid here: ptrace and /proc access by a process of the user need
    // its gid to match ours (the group's), so being dumpable for this read exposes nothing.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    let raw = std::fs::read("/proc/self/environ");
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let Ok(raw) = raw else {
        return;
    };
    let wanted: Vec<(OsString, OsString)> = raw
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            (eq > 0).then(|| {
                (
                    OsString::from_vec(kv[..eq].to_vec()),
                    OsString::from_vec(kv[eq + 1..].to_vec()),
                )
            })
        })
        .collect();
    for (k, v) in wanted {
        if std::env::var_os(&k).is_none() {
            std::env::set_var(k, v);
        }
    }
}

/// What start-up found (`No` if `startup` was not called, e.g. in unit tests).
pub fn protected() -> &'static Protected {
    PROTECTED.get_or_init(|| Protected::No)
}

/// Is this process non-dumpable (for --doctor)?
pub fn non_dumpable() -> bool {
    // SAFETY: prctl query with no pointers.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 }
}
