//! A small builder for running one shell invocation three ways — the real bash, maestro-sh by
//! its own path, and maestro-sh through a `bash` link on PATH — and comparing them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The real bash the differential suite compares against.
pub const REAL_BASH: &str = "/bin/bash";

pub fn maestro_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maestro-sh"))
}

/// A directory holding `bash` and `sh` symlinks to maestro-sh, like the installed shims.
pub fn shim_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["bash", "sh"] {
            std::os::unix::fs::symlink(maestro_sh(), dir.path().join(name)).expect("symlink");
        }
        dir
    })
    .path()
}

/// A PATH with the shims first, then the system's.
pub fn shimmed_path() -> OsString {
    let mut p = shim_dir().as_os_str().to_owned();
    p.push(":/usr/local/bin:/usr/bin:/bin");
    p
}

/// How a case is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `/bin/bash` with argv[0] `bash`.
    RealBash,
    /// maestro-sh by its path with argv[0] `bash`.
    MaestroSh,
    /// `bash` resolved through PATH, which finds the shim link.
    BashLink,
}

/// One invocation: argv after argv[0], stdin bytes, extra env, cwd, umask, an extra fd 3.
#[derive(Debug, Clone, Default)]
pub struct Sh {
    pub args: Vec<OsString>,
    pub stdin: Vec<u8>,
    pub env: Vec<(OsString, OsString)>,
    pub env_remove: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub umask: Option<u32>,
    pub fd3: Option<PathBuf>,
    pub argv0: Option<OsString>,
}

impl Sh {
    pub fn new<I, S>(args: I) -> Sh
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Sh {
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            ..Sh::default()
        }
    }

    /// `-c CMD`.
    pub fn c(cmd: &str) -> Sh {
        Sh::new(["-c", cmd])
    }

    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Sh {
        self.stdin = bytes.as_ref().to_vec();
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Sh {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Sh {
        self.env_remove.push(k.as_ref().to_owned());
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Sh {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn umask(mut self, mask: u32) -> Sh {
        self.umask = Some(mask);
        self
    }

    pub fn fd3(mut self, file: impl AsRef<Path>) -> Sh {
        self.fd3 = Some(file.as_ref().to_owned());
        self
    }

    pub fn argv0(mut self, a: impl AsRef<OsStr>) -> Sh {
        self.argv0 = Some(a.as_ref().to_owned());
        self
    }

    /// The `Command` for this case started `via`, with a fixed, minimal base environment.
    pub fn command(&self, via: Via) -> Command {
        let mut cmd = match via {
            Via::RealBash => Command::new(REAL_BASH),
            Via::MaestroSh => Command::new(maestro_sh()),
            Via::BashLink => Command::new(shim_dir().join("bash")),
        };
        cmd.arg0(self.argv0.clone().unwrap_or_else(|| "bash".into()));
        cmd.args(&self.args);
        cmd.env_clear();
        cmd.env("PATH", shimmed_path());
        cmd.env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        );
        cmd.env("LC_ALL", "C");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let umask = self.umask;
        let fd3 = self.fd3.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open fd3 file")
        });
        unsafe {
            cmd.pre_exec(move || {
                if let Some(mask) = umask {
                    libc::umask(mask as libc::mode_t);
                }
                if let Some(f) = &fd3 {
                    use std::os::fd::AsRawFd;
                    if libc::dup2(f.as_raw_fd(), 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd
    }

    /// Run `via`, feeding stdin, collecting everything.
    pub fn run(&self, via: Via) -> Output {
        run_with_stdin(self.command(via), &self.stdin)
    }

    /// Run under the real bash and both maestro-sh forms; assert identical stdout, stderr and
    /// wait status. Returns the real bash's output.
    pub fn assert_same(&self) -> Output {
        let expected = self.run(Via::RealBash);
        for via in [Via::MaestroSh, Via::BashLink] {
            let got = self.run(via);
            assert_eq!(
                got.status.into_raw(),
                expected.status.into_raw(),
                "wait status differs via {via:?} for {:?}\nstderr: {}",
                self.args,
                String::from_utf8_lossy(&got.stderr)
            );
            assert!(
                got.stdout == expected.stdout,
                "stdout differs via {via:?} for {:?}:\n got {:?}\nwant {:?}",
                self.args,
                preview(&got.stdout),
                preview(&expected.stdout)
            );
            assert!(
                got.stderr == expected.stderr,
                "stderr differs via {via:?} for {:?}:\n got {:?}\nwant {:?}",
                self.args,
                preview(&got.stderr),
                preview(&expected.stderr)
            );
        }
        expected
    }
}

/// Spawn `cmd`, write `stdin` from a thread (so large outputs cannot deadlock), collect output.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    if bytes.len() > 400 {
        format!("{s}... ({} bytes)", bytes.len())
    } else {
        s
    }
}

/// An argument of raw bytes (for non-UTF-8 cases).
pub fn raw(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_owned()
}

/// Start `cmd` with SIGPIPE ignored, as some callers (Python, Node) start their children.
pub fn ignoring_sigpipe(cmd: &mut Command) -> &mut Command {
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd
}
