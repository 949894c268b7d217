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
