//! Finding the real shell and running it. This is the only module that knows where the real
//! shell lives or how it is started: by `execve` (pass-through) or as a supervised child.
//!
//! Recursion is the danger: our shims are named `bash` and `sh`, so a PATH lookup can find us
//! (or another copy of us) again. Candidates are compared by file identity (device and inode,
//! after symlinks), by canonical name, and by content when the size matches ours.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Env var naming the real shell explicitly.
pub const REAL_SHELL_VAR: &str = "MAESTRO_SH_REAL_SHELL";

/// Where a shell is looked for after PATH.
const SYSTEM_DIRS: &[&str] = &["/bin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"];

/// Why no real shell could be used.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("{var}={path:?} is maestro-sh itself; point it at the real shell (e.g. /bin/bash)")]
    OverrideIsSelf { var: &'static str, path: PathBuf },
    #[error(
        "{var}={path:?} is not an executable file; point it at the real shell (e.g. /bin/bash)"
    )]
    OverrideNotExecutable { var: &'static str, path: PathBuf },
    #[error(
        "no real {name} found (searched PATH and {dirs}, skipping maestro-sh itself); \
         set {var} to the real shell's path"
    )]
    NotFound {
        name: String,
        dirs: String,
        var: &'static str,
    },
}

/// The identity of a file: what `stat` (following symlinks) says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
}

fn file_id(path: &Path) -> Option<FileId> {
    let meta = fs::metadata(path).ok()?;
    Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
    })
}

fn is_executable_file(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    fs::metadata(path).is_ok_and(|m| m.is_file())
        && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// This running binary, resolved once per lookup.
struct SelfImage {
    path: PathBuf,
    id: Option<FileId>,
}

impl SelfImage {
    fn current() -> SelfImage {
        let path = fs::read_link("/proc/self/exe")
            .or_else(|_| std::env::current_exe())
            .unwrap_or_default();
        let id = file_id(&path);
        SelfImage { path, id }
    }

    /// `None` when `candidate` is this binary or another copy of maestro-sh (or is missing); else what the candidate is, from the checks
    /// `is_us` makes anyway (its identity and its canonical name), so judging it costs no extra
    /// system call for a real shell.
    fn judge(&self, candidate: &Path) -> Option<Candidate> {
        let cid = file_id(candidate)?;
        if Some(cid) == self.id {
            return None;
        }
        let canon = fs::canonicalize(candidate).ok();
        let name = canon
            .as_deref()
            .and_then(Path::file_name)
            .map(OsStr::as_bytes)
            .unwrap_or_default();
        if name.starts_with(b"maestro-sh") {
            return None;
        }
        // A copy under another name: same size and same bytes. Sizes differ for any real shell,
        // so the content is read only in that rare case.
        if self.id.is_some_and(|me| me.size == cid.size) && same_content(&self.path, candidate) {
            return None;
        }
        Some(Candidate {
            multicall: name.starts_with(b"busybox") || name.starts_with(b"toybox"),
            // Real shells are binaries of hundreds of KiB; only a small file is looked into.
            script: cid.size < SCRIPT_MAX && starts_with_shebang(candidate),
        })
    }
}

/// What a candidate real shell is.
struct Candidate {
    /// A multi-call binary (busybox) that picks its applet from argv[0].
    multicall: bool,
    /// A `#!` script: a wrapper, which may exec maestro-sh again (see `wrapper_loop`).
    script: bool,
}

/// [`ExecPlan::raw`]: what `execve` needs, ready, so exec'ing allocates nothing.
pub struct RawExec<'a> {
    plan: &'a ExecPlan,
    argv: Vec<*const libc::c_char>,
    envp: Option<Vec<*const libc::c_char>>,
}

impl RawExec<'_> {
    /// [`ExecPlan::exec`] without allocating (async-signal-safe); returns the error.
    pub fn exec(&self) -> nix::Error {
        extern "C" {
            static environ: *const *const libc::c_char;
        }
        if self.plan.mark_wrapper {
            wrapper_loop::mark();
        }
        let envp = match &self.envp {
            Some(e) => e.as_ptr(),
            // SAFETY: the process environment, read (never changed) here.
            None => unsafe { environ },
        };
        // SAFETY: NUL-terminated strings owned by the plan, NULL-terminated pointer arrays.
        unsafe { libc::execve(self.plan.path.as_ptr(), self.argv.as_ptr(), envp) };
        nix::Error::last()
    }
}

/// Telling a wrapper script that execs maestro-sh again from one that does not, without a
/// visible trace: before exec'ing a `#!` candidate we set this process's timer slack (which
/// survives `execve` and which nothing observable depends on: 50 µs by default) to an odd
/// marker value. A maestro-sh that finds the marker on meeting a wrapper was exec'd through that
/// wrapper: it skips it (and any other) and puts the slack back (`0` restores the value the
/// caller gave us) before running the real shell. A wrapper that runs something else leaves
/// the marker in place: a timer slack of 50.017 µs instead of 50 µs. Only wrapper candidates
/// cost these calls; a real shell on PATH costs none.
mod wrapper_loop {
    /// The marker, in nanoseconds.
    const MARK: libc::c_ulong = 50_017;

    pub fn came_through_wrapper() -> bool {
        let current = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        if current as libc::c_ulong == MARK {
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 0 as libc::c_ulong, 0, 0, 0) };
            return true;
        }
        false
    }

    pub fn mark() {
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, MARK, 0, 0, 0) };
    }
}

/// Files at least this big are not looked into for a `#!` line.
const SCRIPT_MAX: u64 = 64 * 1024;

fn starts_with_shebang(path: &Path) -> bool {
    let mut head = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"#!"
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (fs::File::open(a), fs::File::open(b)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Find the real shell for `name` (`bash` or `sh`).
///
/// Order: `$MAESTRO_SH_REAL_SHELL` (must exist and must not be us), then each PATH entry, then
/// [`SYSTEM_DIRS`]; any candidate that is maestro-sh is skipped, so we never exec ourselves, and
/// so is a `#!` wrapper that exec'd maestro-sh again (no exec or fork loop; `wrapper_loop`).
pub fn find(
    name: &str,
    override_path: Option<&OsStr>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, FindError> {
    find_shell(name, override_path, path_var).map(|s| s.path)
}

/// A real shell to run.
#[derive(Debug, Clone)]
pub struct Shell {
    pub path: PathBuf,
    /// It picks what to be from argv[0] (busybox): see [`Shell::argv`].
    pub multicall: bool,
    /// A `#!` wrapper met for the first time: exec it marked (see `wrapper_loop`), via
    /// [`Shell::plan`].
    pub wrapper: bool,
}

impl Shell {
    /// The exec of this shell with `argv` (see [`Shell::argv`]).
    pub fn plan(&self, argv: &[OsString]) -> ExecPlan {
        let mut plan = ExecPlan::new(&self.path, &self.argv(argv));
        plan.mark_wrapper = self.wrapper;
        plan
    }

    /// The argv to exec this shell with: the caller's, unchanged, except that a multi-call
    /// binary is given a name it answers to when argv[0] is not already `bash` or `sh` (e.g.
    /// `maestro-sh`, which busybox would reject as an applet): `sh`, the one shell applet every
    /// busybox with a shell has (`bash` is optional), keeping a login `-`.
    pub fn argv<'a>(&self, argv: &'a [OsString]) -> std::borrow::Cow<'a, [OsString]> {
        let Some(first) = argv.first() else {
            return argv.into();
        };
        let bytes = first.as_bytes();
        let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
        let login = base.first() == Some(&b'-');
        let base = base.strip_prefix(b"-").unwrap_or(base);
        if !self.multicall || base == b"bash" || base == b"sh" {
            return argv.into();
        }
        let mut v = argv.to_vec();
        v[0] = OsString::from(if login { "-sh" } else { "sh" });
        v.into()
    }
}

/// [`find`], telling also whether the shell is a multi-call binary.
pub fn find_shell(
    name: &str,
    override_path: Option<&OsStr>,
    path_var: Option<&OsStr>,
) -> Result<Shell, FindError> {
    let me = SelfImage::current();
    if let Some(raw) = override_path.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(raw);
        if !is_executable_file(&path) {
            return Err(FindError::OverrideNotExecutable {
                var: REAL_SHELL_VAR,
                path,
            });
        }
        let Some(judged) = me.judge(&path) else {
            return Err(FindError::OverrideIsSelf {
                var: REAL_SHELL_VAR,
                path,
            });
        };
        return Ok(Shell {
            path,
            multicall: judged.multicall,
            wrapper: false,
        });
    }
    let path_dirs = path_var
        .map(|p| {
            p.as_bytes()
                .split(|&b| b == b':')
                .map(|d| if d.is_empty() { b"." as &[u8] } else { d })
        })
        .into_iter()
        .flatten()
        .map(|d| PathBuf::from(OsStr::from_bytes(d)));
    let system_dirs = SYSTEM_DIRS.iter().map(PathBuf::from);
    for dir in path_dirs.chain(system_dirs) {
        let candidate = dir.join(name);
        if !is_executable_file(&candidate) {
            continue;
        }
        match me.judge(&candidate) {
            Some(c) if !c.script => {
                return Ok(Shell {
                    path: candidate,
                    multicall: c.multicall,
                    wrapper: false,
                })
            }
            // A `#!` wrapper: run it as the real bash would be found, unless it is how we got
            // here (it exec'd maestro-sh again): then skip it, or we would loop.
            Some(_) if !wrapper_loop::came_through_wrapper() => {
                return Ok(Shell {
                    path: candidate,
                    multicall: false,
                    wrapper: true,
                });
            }
            _ => {}
        }
    }
    Err(FindError::NotFound {
        name: name.to_string(),
        dirs: SYSTEM_DIRS.join(", "),
        var: REAL_SHELL_VAR,
    })
}

/// Find the real shell using this process's environment.
pub fn find_from_env(name: &str) -> Result<PathBuf, FindError> {
    shell_from_env(name).map(|s| s.path)
}

/// [`find_shell`] using this process's environment.
pub fn shell_from_env(name: &str) -> Result<Shell, FindError> {
    find_shell(
        name,
        std::env::var_os(REAL_SHELL_VAR).as_deref(),
        std::env::var_os("PATH").as_deref(),
    )
}

fn cstring(s: &OsStr) -> CString {
    // Arguments from argv and the environment cannot contain NUL; keep this total anyway.
    CString::new(s.as_bytes()).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).unwrap_or_default()
    })
}

/// A prepared `execve`: everything allocated up front so the call itself (possibly right
/// after `fork`) allocates nothing.
pub struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    /// `None`: keep the current environment.
    envp: Option<Vec<CString>>,
    /// Set the wrapper-loop marker right before `execve` (in the process that execs).
    mark_wrapper: bool,
}

impl ExecPlan {
    /// Run `shell` with exactly `argv` (argv[0] included, as the caller gave it).
    pub fn new(shell: &Path, argv: &[OsString]) -> ExecPlan {
        ExecPlan {
            path: cstring(shell.as_os_str()),
            argv: argv.iter().map(|a| cstring(a)).collect(),
            envp: None,
            mark_wrapper: false,
        }
    }

    /// Use this environment instead of the current one.
    pub fn with_env(mut self, env: impl IntoIterator<Item = (OsString, OsString)>) -> ExecPlan {
        self.envp = Some(
            env.into_iter()
                .map(|(k, v)| {
                    let mut kv = k.into_encoded_bytes();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_bytes());
                    cstring(OsStr::from_bytes(&kv))
                })
                .collect(),
        );
        self
    }

    /// Replace this process with the real shell. Returns only on failure.
    pub fn exec(&self) -> nix::Error {
        if self.mark_wrapper {
            wrapper_loop::mark();
        }
        let err = match &self.envp {
            Some(envp) => nix::unistd::execve(&self.path, &self.argv, envp),
            None => nix::unistd::execv(&self.path, &self.argv),
        };
        match err {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    /// The plan as the pointer arrays `execve` takes, built before a `vfork`-style spawn
    /// (crate::supervise) so that the child, which shares our memory, allocates nothing.
    pub fn raw(&self) -> RawExec<'_> {
        let pointers = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|s| s.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        RawExec {
            plan: self,
            argv: pointers(&self.argv),
            envp: self.envp.as_deref().map(pointers),
        }
    }

    /// The exit status a shell uses when it cannot execute a program.
    pub fn failure_status(err: nix::Error) -> i32 {
        if err == nix::Error::ENOENT {
            127
        } else {
            126
        }
    }

    pub fn path(&self) -> &CString {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_shell_from_path() {
        let found = find("sh", None, Some(OsStr::new("/nonexistent:/bin:/usr/bin"))).unwrap();
        assert!(found.ends_with("sh"));
    }

    #[test]
    fn wrapper_scripts_are_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("bash");
        fs::write(&wrapper, "#!/bin/sh\nexec maestro-sh \"$@\"\n").unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/bin:/usr/bin", dir.path().display());
        // Met for the first time, the wrapper is what PATH finds (as for the real bash)...
        let found = find_shell("bash", None, Some(OsStr::new(&path))).unwrap();
        assert_eq!(found.path, wrapper);
        assert!(found.wrapper);
        // ...and once it has brought us back (marked), it is skipped and the mark removed.
        wrapper_loop::mark();
        let found = find("bash", None, Some(OsStr::new(&path))).unwrap();
        assert_ne!(found, wrapper);
        assert!(found.ends_with("bash"));
        assert!(!wrapper_loop::came_through_wrapper());
    }

    #[test]
    fn a_multicall_shell_gets_a_name_it_answers_to() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let busybox = Shell {
            path: "/bin/sh".into(),
            multicall: true,
            wrapper: false,
        };
        let plain = Shell {
            path: "/bin/bash".into(),
            multicall: false,
            wrapper: false,
        };
        let argv = args(&["/opt/bin/maestro-sh", "-c", "x"]);
        assert_eq!(busybox.argv(&argv).as_ref(), args(&["sh", "-c", "x"]));
        assert_eq!(plain.argv(&argv).as_ref(), argv.as_slice());
        let login = args(&["-maestro-sh", "-c", "x"]);
        assert_eq!(busybox.argv(&login)[0], "-sh");
        let bash = args(&["bash", "-c", "x"]);
        assert_eq!(busybox.argv(&bash).as_ref(), bash.as_slice());
    }

    #[test]
    fn override_must_be_executable() {
        let err = find("bash", Some(OsStr::new("/nonexistent/bash")), None).unwrap_err();
        assert!(err.to_string().contains(REAL_SHELL_VAR));
    }

    #[test]
    fn missing_shell_names_the_variable() {
        let err = find("no-such-shell-name", None, Some(OsStr::new("/nonexistent"))).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no real no-such-shell-name found") && msg.contains(REAL_SHELL_VAR),
            "{msg}"
        );
    }
}
