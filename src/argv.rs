//! The bash command line model.
//!
//! We read the caller's argv the way bash reads it, to learn two things: *what* will run (the
//! command string, a script file, a script on stdin, an interactive session) and under which
//! name we were invoked. Nothing here ever changes what is passed on: the real shell always gets
//! the caller's argv, byte for byte.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The name we were started under, from the basename of argv[0].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// `bash` or `-bash`: stand in for bash.
    Bash,
    /// `sh` or `-sh`: stand in for the system `sh`.
    Sh,
    /// `maestro-sh` (or any other name): acts as bash, plus our debug options.
    MaestroSh,
}

impl Personality {
    /// The program name the real shell is looked up under.
    pub fn real_name(self) -> &'static str {
        match self {
            Personality::Sh => "sh",
            Personality::Bash | Personality::MaestroSh => "bash",
        }
    }

    /// The personality of this process: from the name it was executed by (the link name, the
    /// kernel's `AT_EXECFN`), else from argv[0]. `exec -a sh bash` runs the `bash` link with
    /// argv[0] `sh`: that is bash (which then, seeing `sh`, goes POSIX), not the system sh.
    /// Reading the auxiliary vector is a memory read, not a system call.
    pub fn detect(argv: &[OsString]) -> Personality {
        let argv0 = argv.first().map(OsString::as_os_str).unwrap_or_default();
        exec_fn()
            .and_then(|f| Personality::from_link_name(f, argv))
            .unwrap_or_else(|| Personality::from_argv0(argv0))
    }

    /// `bash` or `sh` from the executed path's basename, unless it is not a link to us but a
    /// script run through its `#!` line (the kernel then passes the script's path as
    /// `AT_EXECFN` and as one of the first two arguments).
    fn from_link_name(execfn: &OsStr, argv: &[OsString]) -> Option<Personality> {
        let bytes = execfn.as_bytes();
        let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
        let p = match base {
            b"bash" => Personality::Bash,
            b"sh" => Personality::Sh,
            _ => return None,
        };
        if argv.iter().skip(1).take(2).any(|a| a.as_os_str() == execfn) {
            return None;
        }
        Some(p)
    }

    /// Derive the personality from argv[0] (`-bash` is a login bash).
    pub fn from_argv0(argv0: &OsStr) -> Personality {
        let bytes = argv0.as_bytes();
        let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
        let base = base.strip_prefix(b"-").unwrap_or(base);
        match base {
            b"bash" => Personality::Bash,
            b"sh" => Personality::Sh,
            _ => Personality::MaestroSh,
        }
    }
}

/// The path this process was executed by (`AT_EXECFN`), when the kernel gave one.
fn exec_fn() -> Option<&'static OsStr> {
    // SAFETY: getauxval only reads the auxiliary vector; AT_EXECFN points at a NUL-terminated
    // string on the initial stack, which lives as long as the process.
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    let c = unsafe { std::ffi::CStr::from_ptr(ptr) };
    Some(OsStr::from_bytes(c.to_bytes()))
}

/// What the real shell is going to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `-c CMD [name [args...]]`.
    Command { text: OsString },
    /// A script file given as the first operand.
    ScriptFile { path: OsString },
    /// Commands read from stdin (`-s`, or no operand) that is not an interactive terminal.
    Stdin,
    /// An interactive shell (`-i`, or stdin and stderr are terminals).
    Interactive,
    /// Options that only print and exit (`--version`, `--help`): nothing runs.
    Informational,
    /// Something bash itself will reject (unknown option, `-c` without a string).
    Invalid { reason: String },
}

/// The parsed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub personality: Personality,
    pub kind: Kind,
    /// `-l`, `--login` or an argv[0] starting with `-`.
    pub login: bool,
}

/// Bash long options that take no argument.
const LONG_FLAGS: &[&str] = &[
    "--login",
    "--norc",
    "--noprofile",
    "--posix",
    "--verbose",
    "--noediting",
    "--restricted",
    "--debugger",
    "--dump-strings",
    "--dump-po-strings",
    "--wordexp",
    "--protected",
    "--pretty-print",
];
/// Bash long options that take the next word as their argument.
const LONG_WITH_ARG: &[&str] = &["--rcfile", "--init-file"];
/// Long options after which bash prints something and exits.
const LONG_INFO: &[&str] = &["--version", "--help"];
/// Single-letter options bash accepts (set flags plus the invocation-only ones).
const SHORT_FLAGS: &[u8] = b"abefhkmnptuvxBCEHPTilrsD";

/// Parse `args` (argv without argv[0]) as bash would, given the invocation name.
///
/// `stdin_is_tty` decides between [`Kind::Stdin`] and [`Kind::Interactive`] when no command
/// string or script operand is given, as bash does (it also requires stderr to be a terminal).
pub fn parse(argv0: &OsStr, args: &[OsString], terminal: bool) -> Invocation {
    let personality = Personality::from_argv0(argv0);
    let mut login = argv0.as_bytes().first() == Some(&b'-');
    let mut command_flag = false;
    let mut stdin_flag = false;
    let mut interactive = false;
    let mut i = 0;

    // Long options come first; bash stops looking for them at the first other word.
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if !arg.starts_with("--") || arg == "--" {
            break;
        }
        if arg == "--login" {
            login = true;
        } else if LONG_INFO.contains(&arg) {
            return Invocation {
                personality,
                kind: Kind::Informational,
                login,
            };
        } else if LONG_WITH_ARG.contains(&arg) {
            i += 1;
        } else if !LONG_FLAGS.contains(&arg) {
            let reason = format!("{arg}: invalid option");
            return Invocation {
                personality,
                kind: Kind::Invalid { reason },
                login,
            };
        }
        i += 1;
    }

    // Then single-letter options, possibly clustered (`-lc`, `-ec`), `+`-forms, and `-o`/`-O`
    // which take the next word.
    while let Some(arg) = args.get(i) {
        let bytes = arg.as_bytes();
        if bytes == b"-" || bytes == b"--" {
            i += 1;
            break;
        }
        let Some((&sign, letters)) = bytes.split_first() else {
            break;
        };
        if (sign != b'-' && sign != b'+') || letters.is_empty() {
            break;
        }
        i += 1;
        for &letter in letters {
            match letter {
                b'c' if sign == b'-' => command_flag = true,
                b's' if sign == b'-' => stdin_flag = true,
                b'i' if sign == b'-' => interactive = true,
                b'l' if sign == b'-' => login = true,
                // `-o`/`-O` with no following word just lists options; skip the word if any.
                b'o' | b'O' => i += 1,
                l if SHORT_FLAGS.contains(&l) => {}
                l => {
                    let reason = format!("{}{}: invalid option", sign as char, l as char);
                    return Invocation {
                        personality,
                        kind: Kind::Invalid { reason },
                        login,
                    };
                }
            }
        }
    }

    let operand = args.get(i);
    let kind = if command_flag {
        match operand {
            Some(text) => Kind::Command { text: text.clone() },
            None => Kind::Invalid {
                reason: "-c: option requires an argument".into(),
            },
        }
    } else if interactive {
        Kind::Interactive
    } else if let (Some(path), false) = (operand, stdin_flag) {
        Kind::ScriptFile { path: path.clone() }
    } else if terminal {
        Kind::Interactive
    } else {
        Kind::Stdin
    };
    Invocation {
        personality,
        kind,
        login,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(argv0: &str, args: &[&str]) -> Invocation {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(OsStr::new(argv0), &args, false)
    }

    fn cmd(text: &str) -> Kind {
        Kind::Command { text: text.into() }
    }

    #[test]
    fn command_forms() {
        let cases: &[(&[&str], Kind, bool)] = &[
            (&["-c", "ls"], cmd("ls"), false),
            (&["-lc", "ls"], cmd("ls"), true),
            (&["-cl", "ls"], cmd("ls"), true),
            (&["-c", "-l", "ls"], cmd("ls"), true),
            (&["-l", "-c", "ls"], cmd("ls"), true),
            (&["--login", "-c", "ls"], cmd("ls"), true),
            (&["-ec", "ls", "name", "a"], cmd("ls"), false),
            (&["-o", "pipefail", "-c", "ls"], cmd("ls"), false),
            (&["+O", "extglob", "-c", "ls"], cmd("ls"), false),
            (&["--norc", "--noprofile", "-c", "ls"], cmd("ls"), false),
            (&["--rcfile", "x", "-c", "ls"], cmd("ls"), false),
            (&["-c", "--", "x"], cmd("x"), false),
            (&["-c", "-x", "ls"], cmd("ls"), false),
        ];
        for (args, kind, login) in cases {
            let inv = p("bash", args);
            assert_eq!(&inv.kind, kind, "{args:?}");
            assert_eq!(inv.login, *login, "{args:?}");
        }
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            p("bash", &["script.sh", "a"]).kind,
            Kind::ScriptFile {
                path: "script.sh".into()
            }
        );
        assert_eq!(
            p("bash", &["--", "-script"]).kind,
            Kind::ScriptFile {
                path: "-script".into()
            }
        );
        assert_eq!(p("bash", &["-s", "a", "b"]).kind, Kind::Stdin);
        assert_eq!(p("bash", &[]).kind, Kind::Stdin);
        assert_eq!(p("bash", &["-i"]).kind, Kind::Interactive);
        assert_eq!(p("bash", &["--version"]).kind, Kind::Informational);
        assert!(matches!(p("bash", &["-c"]).kind, Kind::Invalid { .. }));
        assert!(matches!(
            p("bash", &["-Z", "-c", "ls"]).kind,
            Kind::Invalid { .. }
        ));
        assert!(matches!(p("bash", &["--bogus"]).kind, Kind::Invalid { .. }));
        let args = vec![OsString::from("--norc")];
        assert_eq!(
            parse(OsStr::new("bash"), &args, true).kind,
            Kind::Interactive
        );
    }

    #[test]
    fn personalities() {
        assert_eq!(p("/usr/bin/bash", &[]).personality, Personality::Bash);
        assert!(p("-bash", &[]).login);
        assert_eq!(p("-sh", &[]).personality, Personality::Sh);
        assert_eq!(
            p("/opt/x/maestro-sh", &[]).personality,
            Personality::MaestroSh
        );
        assert_eq!(Personality::MaestroSh.real_name(), "bash");
    }

    #[test]
    fn personality_comes_from_the_link_name() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let link = |f: &str, a: &[&str]| Personality::from_link_name(OsStr::new(f), &v(a));
        // `exec -a sh bash`: the bash link, argv[0] sh.
        assert_eq!(
            link("/shims/bash", &["sh", "-c", "x"]),
            Some(Personality::Bash)
        );
        assert_eq!(
            link("/shims/sh", &["bash", "-c", "x"]),
            Some(Personality::Sh)
        );
        assert_eq!(link("/opt/maestro-sh", &["bash", "-c", "x"]), None);
        // A script named `sh` run through `#!/shims/bash`.
        assert_eq!(link("/x/sh", &["/shims/bash", "/x/sh", "a"]), None);
        assert_eq!(link("/x/sh", &["/shims/bash", "-e", "/x/sh"]), None);
        // The test binary was not executed as bash or sh.
        assert_eq!(
            Personality::detect(&v(&["-bash"])),
            Personality::Bash,
            "falls back to argv[0]"
        );
    }

    #[test]
    fn non_utf8_command_survives() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'e', b'c', b'h', b'o', b' ', 0xff, 0xfe]);
        let inv = parse(
            OsStr::new("bash"),
            &[OsString::from("-c"), raw.clone()],
            false,
        );
        assert_eq!(inv.kind, Kind::Command { text: raw });
    }
}
