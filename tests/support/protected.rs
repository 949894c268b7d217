//! Protected install mode under test: a setgid `maestro-sh` and a configuration only its group
//! reads (what install.sh --protect does as root), and runs as another user (`nobody`), for
//! the boundary and redteam modules. Tests using these need root; they skip themselves without.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::platform::Gov;

/// Run maestro-sh (and so the command) as `nobody`: root could read any process anyway.
pub const NOBODY: u32 = 65534;

/// A group nobody is not in; numeric, so the test needs no /etc/group entry.
pub const PROTECTED_GID: u32 = 4242;

pub fn am_root() -> bool {
    // SAFETY: plain id getter.
    unsafe { libc::geteuid() == 0 }
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A protected install under a temp prefix: `bin/maestro-sh` setgid to [`PROTECTED_GID`] and
/// `etc/maestro-sh/platform.json` (holding `config`) readable by that group only.
/// The prefix (keep it alive), the binary and the configuration file.
pub fn protected_install(config: &Value) -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::chown;
    let prefix = tempfile::tempdir().unwrap();
    chmod(prefix.path(), 0o755);
    let bin = prefix.path().join("bin");
    let etc = prefix.path().join("etc/maestro-sh");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let sh = bin.join("maestro-sh");
    std::fs::copy(env!("CARGO_BIN_EXE_maestro-sh"), &sh).unwrap();
    chown(&sh, Some(0), Some(PROTECTED_GID)).unwrap();
    chmod(&sh, 0o2755);
    let cfg = etc.join("platform.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    chown(&cfg, Some(0), Some(PROTECTED_GID)).unwrap();
    chmod(&cfg, 0o640);
    (prefix, sh, cfg)
}

/// `cmd` run as `nobody` through an `exec` from a shell: a process exec'd straight after the
/// uid change is non-dumpable whatever it does, which would make a probe prove nothing.
pub fn as_nobody_via_exec(cmd: &mut Command) -> Command {
    let mut run = Command::new("/bin/sh");
    run.arg("-c")
        .arg("exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            run.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        run.current_dir(dir);
    }
    run.uid(NOBODY).gid(NOBODY).stdin(Stdio::null());
    run
}

/// `g`'s command line and environment, run by the binary `sh` as `nobody` in `g`'s directory
/// (made writable for it).
pub fn run_as_nobody(sh: &Path, g: &mut Gov) -> Output {
    chmod(g.dir.path(), 0o777);
    let mut cmd = Command::new(sh);
    cmd.args(g.command().get_args().collect::<Vec<_>>());
    for (k, v) in g.command().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.current_dir(g.dir.path());
    as_nobody_via_exec(&mut cmd).output().unwrap()
}
