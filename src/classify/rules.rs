//! Program rules: wrappers, nested shells and interpreters, the read-only allowlist with its
//! subcommand shapes, and the destructive (CRITICAL) shapes. Anything not recognised here is
//! mutating.

use super::walk::{Arg, Judgement, Walker};
use super::{sed, Risk};

/// Directories whose programs are the system's, so `/usr/bin/ls` may be judged as `ls`.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/bin",
];

/// Programs that fetch from the network (feeding an interpreter is remote code).
const FETCHERS: &[&str] = &["curl", "wget", "fetch", "http", "https", "aria2c", "lynx"];

const SHELLS: &[&str] = &[
    "bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish", "busybox", "rbash", "yash",
];

const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "pypy",
    "pypy3",
    "node",
    "nodejs",
    "deno",
    "bun",
    "perl",
    "ruby",
    "php",
    "lua",
    "luajit",
    "Rscript",
    "R",
    "osascript",
    "tclsh",
    "wish",
    "pwsh",
    "powershell",
    "julia",
    "groovy",
    "scala",
    "irb",
    "swift",
    "expect",
    "ts-node",
    "tsx",
];

/// Read-only whatever their arguments: no option of theirs writes files or runs commands.
const ALWAYS_READ_ONLY: &[&str] = &[
    "ls",
    "dir",
    "vdir",
    "cat",
    "head",
    "tail",
    "wc",
    "grep",
    "egrep",
    "fgrep",
    "pwd",
    "which",
    "whereis",
    "type",
    "echo",
    "printf",
    "true",
    "false",
    ":",
    "test",
    "[",
    "df",
    "du",
    "file",
    "stat",
    "id",
    "whoami",
    "uname",
    "arch",
    "nproc",
    "ps",
    "pgrep",
    "printenv",
    "cd",
    "pushd",
    "popd",
    "dirs",
    "basename",
    "dirname",
    "realpath",
    "readlink",
    "nl",
    "od",
    "hexdump",
    "strings",
    "cut",
    "tr",
    "comm",
    "diff",
    "cmp",
    "column",
    "fold",
    "fmt",
    "paste",
    "join",
    "expand",
    "unexpand",
    "rev",
    "tac",
    "seq",
    "sleep",
    "wait",
    "jq",
    "md5sum",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "b2sum",
    "cksum",
    "sum",
    "base64",
    "base32",
    "zcat",
    "bzcat",
    "xzcat",
    "zgrep",
    "free",
    "uptime",
    "lsof",
    "groups",
    "who",
    "w",
    "tty",
    "locale",
    "getconf",
    "cal",
    "expr",
    "factor",
    "numfmt",
    "lsblk",
    "exit",
    "return",
    "break",
    "continue",
    "shift",
    "read",
    "getopts",
    "jobs",
    "umask",
    "ulimit",
    "unset",
    "local",
    "export",
    "declare",
    "typeset",
    "readonly",
    "set",
    "disown",
    "caller",
    "times",
    "help",
    "let",
    "ag",
    "ack",
    "locate",
    "tokei",
    "cloc",
    "wc",
    "look",
    "host",
    "dig",
    "nslookup",
    "ping",
    "uniq-count",
];

/// Wrappers that run their operand as a command, and how many option arguments take values.
const TRANSPARENT_WRAPPERS: &[&str] = &[
    "command",
    "builtin",
    "exec",
    "time",
    "nice",
    "timeout",
    "stdbuf",
    "ionice",
    "setsid",
    "env",
    "xargs",
    "watch",
    "unbuffer",
    "caffeinate",
    "chrt",
    "taskset",
    "numactl",
    "nocache",
    "torsocks",
    "proxychains",
    "proxychains4",
    "firejail",
    "catchsegv",
    "strace",
    "ltrace",
];

/// Wrappers that change who or where the command runs: never read-only.
const PRIVILEGED_WRAPPERS: &[&str] = &[
    "sudo",
    "doas",
    "su",
    "chroot",
    "flock",
    "nohup",
    "runuser",
    "pkexec",
    "systemd-run",
    "unshare",
    "nsenter",
    "run0",
];

pub fn is_fetcher(program: &str) -> bool {
    FETCHERS.contains(&program)
}

/// Block devices and disks: writing to them destroys file systems.
pub fn is_block_device(path: &str) -> bool {
    let Some(dev) = path.strip_prefix("/dev/") else {
        return false;
    };
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "disk", "mapper/", "md", "dm-", "loop", "sr",
        "rdisk",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// Paths where a recursive permission or ownership change is a disaster.
fn is_root_like(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    matches!(
        p,
        "" | "/*"
            | "~"
            | "$HOME"
            | "/etc"
            | "/usr"
            | "/var"
            | "/bin"
            | "/sbin"
            | "/lib"
            | "/home"
            | "/root"
            | "/boot"
            | "/opt"
            | "/System"
            | "/Users"
    ) || path == "/"
        || path == "/*"
}

/// Variable assignments that change what later programs run or how the shell parses.
pub fn dangerous_assignment(name: &str, value: &Arg) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let pager_ok = matches!(value.plain(), Some("" | "cat" | "less" | "more"));
    let bad = upper.contains("PATH")
        || upper.starts_with("LD_")
        || upper.starts_with("DYLD_")
        || upper.starts_with("BASH_")
        || upper.starts_with("GIT_") && !(upper.ends_with("PAGER") && pager_ok)
        || upper.ends_with("_COMMAND")
        || upper.ends_with("ASKPASS")
        // git (and much else) reads its config from $XDG_CONFIG_HOME/git/config: hooks.
        || upper.starts_with("XDG_CONFIG")
        || upper.ends_with("EDITOR")
        || (upper.ends_with("PAGER") && !pager_ok)
        || matches!(
            upper.as_str(),
            "IFS"
                | "ENV"
                | "SHELLOPTS"
                | "BASHOPTS"
                | "PS4"
                | "VISUAL"
                | "LESSOPEN"
                | "LESSCLOSE"
                | "BROWSER"
                | "PERL5OPT"
                | "PYTHONSTARTUP"
                | "NODE_OPTIONS"
                | "RUBYOPT"
                | "SHELL"
                | "HOME"
                | "CDPATH"
                | "PROMPT_COMMAND"
        );
    bad.then(|| format!("sets {name}, which changes what later commands run"))
}

/// Builtins that take variable names (with subscripts, evaluated as arithmetic) or
/// arithmetic operands: `let`, `test -v`/`[ -v`, `printf -v`, `read`, `mapfile`, `declare` and
/// friends, `unset`, `wait -p`, `getopts`. A word that is computed at run time, holds a
/// subscript, or (for `let` and `declare -i`-like uses) names a variable can hold
/// `a[$(cmd)]`, which bash then runs; such a call is not read-only.
fn evaluates_names(prog: &str, args: &[Arg]) -> Option<String> {
    const NAME_TAKERS: &[&str] = &[
        "let",
        "read",
        "mapfile",
        "readarray",
        "declare",
        "typeset",
        "local",
        "export",
        "readonly",
        "unset",
        "getopts",
        "wait",
    ];
    let suspicious = |a: &Arg| match a.plain() {
        None => true,
        Some(t) => t.contains('['),
    };
    let why = || {
        Some(format!(
            "{prog} evaluates a variable name or arithmetic operand that may hold a command \
             substitution (a[$(cmd)]): governed as unknown code"
        ))
    };
    // `declare -i` (and `local -i`, `typeset -i`...): every later assignment to the name is
    // evaluated as arithmetic.
    let integer_attr = args.iter().any(|a| {
        a.plain()
            .is_some_and(|t| t.starts_with(['-', '+']) && t.contains('i'))
    });
    if integer_attr && ["declare", "typeset", "local", "readonly", "export"].contains(&prog) {
        return why();
    }
    match prog {
        "let" => args
            .iter()
            .any(|a| {
                a.plain()
                    .is_none_or(|t| t.chars().any(|c| c.is_ascii_alphabetic() || c == '_'))
            })
            .then(why)
            .flatten(),
        p if NAME_TAKERS.contains(&p) => args.iter().any(suspicious).then(why).flatten(),
        // `test -v NAME`, `[ -v NAME ]`, `printf -v NAME`: the operand after -v.
        "test" | "[" | "printf" => args
            .windows(2)
            .any(|w| w[0].plain() == Some("-v") && suspicious(&w[1]))
            .then(why)
            .flatten(),
        _ => None,
    }
}

/// Judge one simple command's argv (non-empty).
pub fn judge(w: &mut Walker, argv: &[Arg]) -> Judgement {
    let Some(first) = argv.first() else {
        return Judgement::ro("", "empty command");
    };
    let Some(name) = first.plain() else {
        return Judgement::mutating(
            "<computed>",
            Risk::High,
            format!("command name {} is computed at run time", first.raw),
        );
    };
    let (prog, trusted_path) = match name.rsplit_once('/') {
        Some((dir, base)) => {
            let dir = if dir.is_empty() { "/" } else { dir };
            (base.to_string(), SYSTEM_DIRS.contains(&dir))
        }
        None => (name.to_string(), true),
    };
    if prog.is_empty() {
        return Judgement::mutating(name, Risk::High, "runs a directory path");
    }
    let mut j = judge_program(w, &prog, argv);
    if !trusted_path {
        if j.read_only {
            j.reason = format!("{name} is not the system {prog}: unknown program");
        }
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
        j.program = name.to_string();
    }
    j
}

fn judge_program(w: &mut Walker, prog: &str, argv: &[Arg]) -> Judgement {
    let args = &argv[1..];
    let texts: Vec<Option<&str>> = args.iter().map(Arg::plain).collect();
    let has = |flag: &str| texts.contains(&Some(flag));
    // Any static word satisfying `p`; `starts(p)`: any static word beginning with `p`.
    let any_text = |p: &dyn Fn(&str) -> bool| texts.iter().flatten().any(|t| p(t));
    let starts = |prefix: &str| any_text(&|t| t.starts_with(prefix));
    let any_dynamic = || args.iter().any(|a| a.is_dynamic() && !a.safe_prefix);
    // Destructive shapes first: they decide the risk whatever else applies.
    if let Some(why) = critical_shape(prog, &texts) {
        return Judgement::mutating(prog, Risk::Critical, why);
    }

    if TRANSPARENT_WRAPPERS.contains(&prog) || PRIVILEGED_WRAPPERS.contains(&prog) {
        return wrapper(w, prog, argv);
    }
    if SHELLS.contains(&prog) {
        return shell(w, prog, args);
    }
    if INTERPRETERS.contains(&prog) || is_versioned_interpreter(prog) {
        return interpreter(prog, &texts);
    }
    if let Some(why) = evaluates_names(prog, args) {
        return Judgement::mutating(prog, Risk::High, why);
    }
    match prog {
        "eval" => {
            if args.iter().any(Arg::is_dynamic) {
                let fetch = args.iter().any(|a| a.fetches);
                return Judgement::mutating(
                    prog,
                    if fetch { Risk::Critical } else { Risk::High },
                    if fetch {
                        "evaluates downloaded code: remote code execution"
                    } else {
                        "evaluates text computed at run time"
                    },
                );
            }
            let text = texts
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let e = w.nested(&text, "eval text");
            return nested_judgement(prog, e, "eval");
        }
        "source" | "." => {
            let fetch = args.iter().any(|a| a.fetches);
            return Judgement::mutating(
                prog,
                if fetch { Risk::Critical } else { Risk::High },
                if fetch {
                    "sources downloaded code: remote code execution"
                } else {
                    "sources a file whose content is unknown"
                },
            );
        }
        "alias" => {
            if args.is_empty() || texts.iter().all(|t| t.is_some_and(|t| !t.contains('='))) {
                return Judgement::ro(prog, "lists aliases");
            }
            return Judgement::mutating(prog, Risk::High, "defines an alias (can rename commands)");
        }
        "trap" => {
            if args.is_empty() || has("-p") || has("-l") {
                return Judgement::ro(prog, "lists traps");
            }
            return match texts.first().copied().flatten() {
                Some(handler) if !handler.starts_with('-') => {
                    let e = w.nested(handler, "trap handler");
                    nested_judgement(prog, e, "trap handler")
                }
                _ => Judgement::mutating(prog, Risk::High, "trap with a computed handler"),
            };
        }
        "mapfile" | "readarray" => {
            if args
                .iter()
                .any(|a| a.plain().is_none_or(|t| t.starts_with("-C")))
            {
                return Judgement::mutating(prog, Risk::High, "runs a callback");
            }
            return Judgement::ro(prog, "reads lines into a variable");
        }
        "find" => return find(w, args),
        "fd" | "fdfind" => {
            if args.iter().any(|a| {
                a.plain().is_none_or(|t| {
                    matches!(t, "-x" | "-X" | "--exec" | "--exec-batch") || t.starts_with("--exec")
                })
            }) {
                return Judgement::mutating(prog, Risk::High, "fd runs commands (-x/--exec)");
            }
            return Judgement::ro(prog, "fd lists files");
        }
        "sed" | "gsed" => return sed_cmd(prog, args),
        "awk" | "gawk" | "mawk" | "nawk" | "busybox-awk" => return awk(prog, args),
        "git" => return git(prog, args),
        "sort" => {
            if any_dynamic()
                || starts("--output")
                || starts("--compress-program")
                || any_text(&|t| t.starts_with('-') && !t.starts_with("--") && t.contains('o'))
            {
                return Judgement::mutating(prog, Risk::High, "sort -o writes a file");
            }
            return Judgement::ro(prog, "sorts to stdout");
        }
        "uniq" => {
            let positional = texts
                .iter()
                .filter(|t| t.is_some_and(|t| !t.starts_with('-')))
                .count();
            if any_dynamic() || positional > 1 {
                return Judgement::mutating(prog, Risk::High, "uniq writes its second operand");
            }
            return Judgement::ro(prog, "filters to stdout");
        }
        "tee" => {
            let targets: Vec<_> = texts
                .iter()
                .filter(|t| t.is_none_or(|t| !t.starts_with('-')))
                .collect();
            if targets.iter().all(|t| **t == Some("/dev/null")) && !any_dynamic() {
                return Judgement::ro(prog, "tee to stdout only");
            }
            return Judgement::mutating(prog, Risk::High, "tee writes files");
        }
        "tree" => {
            if any_dynamic() || starts("-o") {
                return Judgement::mutating(prog, Risk::High, "tree -o writes a file");
            }
            return Judgement::ro(prog, "lists a tree");
        }
        "rg" | "ripgrep" => {
            if any_dynamic()
                || any_text(&|t| t.starts_with("--pre") && !t.starts_with("--pre-glob"))
            {
                return Judgement::mutating(prog, Risk::High, "rg --pre runs a command");
            }
            return Judgement::ro(prog, "searches files");
        }
        "date" => {
            // Setting the clock: `-s`, `--set`, or a bare MMDDhhmm operand, unless the
            // operand belongs to `-d`/`--date`/`-r` (which only print).
            let sets = any_text(&|t| {
                t == "-s" || t.starts_with("--set") || (!t.starts_with('-') && !t.starts_with('+'))
            });
            if any_dynamic() || sets && !has("-r") && !starts("--date") && !starts("-d") {
                return Judgement::mutating(prog, Risk::High, "date may set the clock");
            }
            return Judgement::ro(prog, "prints the date");
        }
        "hostname" => {
            if args.iter().all(|a| {
                a.plain().is_some_and(|t| t.starts_with('-'))
                    && !a
                        .plain()
                        .is_some_and(|t| t == "-F" || t.starts_with("--file"))
            }) {
                return Judgement::ro(prog, "prints the host name");
            }
            return Judgement::mutating(prog, Risk::High, "hostname NAME sets the host name");
        }
        "xxd" => {
            let positional = texts
                .iter()
                .filter(|t| t.is_some_and(|t| !t.starts_with('-')))
                .count();
            if any_dynamic() || has("-r") || has("-revert") || positional > 1 {
                return Judgement::mutating(prog, Risk::High, "xxd writes its output operand");
            }
            return Judgement::ro(prog, "hex dump to stdout");
        }
        "shuf" => {
            if any_dynamic() || starts("-o") || starts("--output") {
                return Judgement::mutating(prog, Risk::High, "shuf -o writes a file");
            }
            return Judgement::ro(prog, "shuffles to stdout");
        }
        "yq" => {
            if any_dynamic()
                || starts("--inplace")
                || any_text(&|t| t.starts_with('-') && !t.starts_with("--") && t.contains('i'))
            {
                return Judgement::mutating(prog, Risk::High, "yq -i edits in place");
            }
            return Judgement::ro(prog, "queries YAML");
        }
        "less" | "more" | "man" => {
            return Judgement::mutating(prog, Risk::High, "pagers can run commands");
        }
        _ => {}
    }
    if ALWAYS_READ_ONLY.contains(&prog) {
        if matches!(
            prog,
            "export" | "declare" | "typeset" | "local" | "readonly"
        ) {
            for a in args {
                if let Some((n, _)) = a.plain().and_then(|t| t.split_once('=')) {
                    if let Some(why) = dangerous_assignment(n, &Arg::lit("")) {
                        return Judgement::mutating(prog, Risk::High, why);
                    }
                } else if a.plain().is_none() {
                    return Judgement::mutating(
                        prog,
                        Risk::High,
                        "assigns a computed variable name",
                    );
                }
            }
        }
        return Judgement::ro(prog, format!("{prog} is on the read-only allowlist"));
    }
    if let Some(j) = tool_query(prog, &texts) {
        return j;
    }
    match prog {
        "rm" | "rmdir" | "unlink" | "shred" | "truncate" => {
            Judgement::mutating(prog, Risk::High, format!("{prog} deletes or destroys data"))
        }
        "kill" | "pkill" | "killall" => Judgement::mutating(prog, Risk::High, "signals processes"),
        _ => Judgement::mutating(
            prog,
            Risk::High,
            format!("{prog} is not on the read-only allowlist"),
        ),
    }
}

fn nested_judgement(prog: &str, e: super::walk::Effect, what: &str) -> Judgement {
    if e.read_only {
        Judgement::ro(prog, format!("{what}: every nested command is read-only"))
    } else {
        Judgement::mutating(prog, e.risk, format!("{what}: runs mutating commands"))
    }
}

fn is_versioned_interpreter(prog: &str) -> bool {
    ["python", "pypy", "ruby", "perl", "php", "node", "lua"]
        .iter()
        .any(|p| {
            prog.strip_prefix(p)
                .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
}

/// Version and help queries of common tools, and their read-only subcommands.
fn tool_query(prog: &str, t: &[Option<&str>]) -> Option<Judgement> {
    let first = t.first().copied().flatten();
    let second = t.get(1).copied().flatten();
    if t.len() == 1
        && matches!(
            first,
            Some("--version" | "-V" | "version" | "-v" | "--help" | "help")
        )
    {
        return Some(Judgement::ro(prog, format!("{prog} version/help query")));
    }
    if t.iter().any(|x| x.is_none()) {
        return None;
    }
    let ro = match prog {
        "npm" | "pnpm" | "yarn" => matches!(
            first,
            Some(
                "ls" | "list"
                    | "view"
                    | "info"
                    | "outdated"
                    | "why"
                    | "explain"
                    | "root"
                    | "bin"
                    | "prefix"
            )
        ),
        "pip" | "pip3" => matches!(first, Some("list" | "show" | "freeze" | "check")),
        "cargo" => matches!(first, Some("--version" | "-V" | "version" | "--list")),
        "rustc" => matches!(first, Some("--version" | "-V" | "--print" | "-vV")),
        "go" => {
            matches!(first, Some("version" | "env")) && t.len() <= 2 && !t.contains(&Some("-w"))
        }
        "kubectl" => {
            matches!(
                first,
                Some(
                    "get"
                        | "describe"
                        | "logs"
                        | "explain"
                        | "version"
                        | "api-resources"
                        | "api-versions"
                        | "cluster-info"
                        | "top"
                )
            ) || (first == Some("config")
                && matches!(
                    second,
                    Some("view" | "get-contexts" | "current-context" | "get-clusters")
                ))
        }
        "docker" | "podman" => matches!(
            first,
            Some("ps" | "images" | "inspect" | "logs" | "version" | "info")
        ),
        "helm" => matches!(
            first,
            Some("list" | "ls" | "status" | "get" | "history" | "version")
        ),
        "terraform" | "tofu" => matches!(first, Some("version" | "show" | "output" | "providers")),
        "gh" => {
            matches!(
                first,
                Some("pr" | "issue" | "run" | "release" | "repo" | "workflow")
            ) && matches!(second, Some("list" | "view" | "status" | "diff" | "checks"))
                || (first == Some("auth") && second == Some("status"))
        }
        "systemctl" => matches!(
            first,
            Some("status" | "list-units" | "is-active" | "is-enabled" | "show")
        ),
        _ => false,
    };
    ro.then(|| {
        Judgement::ro(
            prog,
            format!("{prog} {} is a read-only query", first.unwrap_or("")),
        )
    })
}

/// Destructive or publishing shapes: `Some(reason)` makes the command CRITICAL.
fn critical_shape(prog: &str, t: &[Option<&str>]) -> Option<String> {
    let flags: Vec<&str> = t.iter().flatten().copied().collect();
    let first = flags.iter().find(|f| !f.starts_with('-')).copied();
    let short = |c: char| {
        flags
            .iter()
            .any(|f| f.starts_with('-') && !f.starts_with("--") && f.contains(c))
    };
    let long = |l: &str| {
        flags
            .iter()
            .any(|f| f == &l || f.starts_with(&format!("{l}=")))
    };
    let pos: Vec<&str> = flags
        .iter()
        .filter(|f| !f.starts_with('-'))
        .copied()
        .collect();
    match prog {
        "rm" => {
            let recursive = short('r') || short('R') || long("--recursive");
            let force = short('f') || long("--force");
            if (recursive && force) || long("--no-preserve-root") {
                return Some("recursive forced delete".into());
            }
            if recursive && pos.iter().any(|p| is_root_like(p)) {
                return Some("recursive delete of a system path".into());
            }
        }
        "git" => {
            let sub = git_subcommand(&flags);
            if sub == Some("push") {
                let after: Vec<&str> = flags
                    .iter()
                    .skip_while(|f| **f != "push")
                    .skip(1)
                    .copied()
                    .collect();
                if after.iter().any(|f| {
                    matches!(
                        *f,
                        "-f" | "--force" | "--mirror" | "--delete" | "-d" | "--prune"
                    ) || f.starts_with("--force")
                        || (f.starts_with('-')
                            && !f.starts_with("--")
                            && (f.contains('f') || f.contains('d')))
                        || (f.starts_with('+') && f.len() > 1)
                        || (f.starts_with(':') && f.len() > 1)
                }) {
                    return Some("force push / remote ref deletion".into());
                }
            }
            if sub == Some("clean")
                && (short('f') || long("--force"))
                && (short('d') || short('x') || short('X'))
            {
                return Some("git clean deletes untracked files and directories".into());
            }
            if sub == Some("filter-branch") || sub == Some("filter-repo") {
                return Some("rewrites repository history".into());
            }
        }
        "npm" | "pnpm" | "yarn" | "bun" if matches!(first, Some("publish" | "unpublish")) => {
            return Some(format!(
                "{prog} {} publishes a package",
                first.unwrap_or("")
            ));
        }
        "cargo" if matches!(first, Some("publish" | "yank" | "owner")) => {
            return Some("cargo publishes to a registry".into());
        }
        "twine" if first == Some("upload") => return Some("uploads a package to PyPI".into()),
        "poetry" | "uv" | "flit" | "hatch" | "pdm" if first == Some("publish") => {
            return Some("publishes a package".into());
        }
        "gem" if first == Some("push") || first == Some("yank") => {
            return Some("publishes a gem".into());
        }
        "docker" | "podman" if first == Some("push") => return Some("publishes an image".into()),
        "mvn" if flags.contains(&"deploy") => return Some("deploys artifacts".into()),
        "gradle" | "gradlew" if flags.iter().any(|f| f.starts_with("publish")) => {
            return Some("publishes artifacts".into());
        }
        "kubectl" | "oc" if matches!(first, Some("delete" | "drain" | "replace")) => {
            return Some(format!(
                "{prog} {} changes a cluster destructively",
                first.unwrap_or("")
            ));
        }
        "helm" if matches!(first, Some("uninstall" | "delete" | "del" | "un")) => {
            return Some("helm uninstall removes a release".into());
        }
        "terraform" | "tofu" | "terragrunt"
            if first == Some("destroy")
                || (first == Some("apply") && flags.contains(&"-destroy")) =>
        {
            return Some("destroys infrastructure".into());
        }
        "pulumi" if first == Some("destroy") => return Some("destroys infrastructure".into()),
        "aws"
            if flags
                .iter()
                .any(|f| f.starts_with("delete-") || f.starts_with("terminate-") || *f == "rb")
                || (flags.contains(&"s3")
                    && flags.contains(&"rm")
                    && flags.contains(&"--recursive")) =>
        {
            return Some("deletes cloud resources".into());
        }
        "gcloud" | "az" | "doctl" if flags.iter().any(|f| matches!(*f, "delete" | "destroy")) => {
            return Some("deletes cloud resources".into());
        }
        "dd" => {
            if let Some(of) = flags.iter().find_map(|f| f.strip_prefix("of=")) {
                if of.starts_with("/dev/")
                    && !matches!(of, "/dev/null" | "/dev/stdout" | "/dev/stderr")
                {
                    return Some(format!("dd writes to device {of}"));
                }
            }
        }
        "mkfs" | "mke2fs" | "mkswap" | "wipefs" | "fdisk" | "sfdisk" | "cfdisk" | "parted"
        | "blkdiscard" | "shred" | "diskutil" | "format" => {
            return Some(format!("{prog} destroys disk data"));
        }
        p if p.starts_with("mkfs.") => return Some(format!("{prog} formats a file system")),
        "chmod" | "chown" | "chgrp" => {
            let recursive = short('R') || long("--recursive");
            if recursive && pos.iter().skip(1).any(|p| is_root_like(p)) {
                return Some(format!("recursive {prog} of a system path"));
            }
        }
        "shutdown" | "reboot" | "halt" | "poweroff" => return Some("stops the machine".into()),
        "init" | "telinit" if matches!(first, Some("0" | "6")) => {
            return Some("stops the machine".into());
        }
        "kill" if flags.iter().any(|f| *f == "-1" || *f == "1") && flags.len() >= 2 => {
            return Some("kills every process or init".into());
        }
        "mv" if pos.iter().any(|p| *p == "/" || *p == "~") => {
            return Some("moves a root path".into());
        }
        _ => {}
    }
    let writes_device = flags
        .iter()
        .any(|f| is_block_device(f.trim_start_matches("of=")))
        && matches!(prog, "cp" | "cat" | "tee" | "pv" | "dd");
    writes_device.then(|| "writes to a block device".to_string())
}

/// Wrappers: strip options, judge the wrapped command, and keep its verdict (privileged
/// wrappers are never read-only).
fn wrapper(w: &mut Walker, prog: &str, argv: &[Arg]) -> Judgement {
    let args = &argv[1..];
    let privileged = PRIVILEGED_WRAPPERS.contains(&prog);
    let mut i = 0;
    let mut extra_dynamic = false;
    // Options taking a value, per wrapper.
    let valued: &[&str] = match prog {
        "env" => &["-u", "--unset", "-C", "--chdir", "-a", "--argv0"],
        "nice" => &["-n", "--adjustment"],
        "timeout" => &["-s", "--signal", "-k", "--kill-after"],
        "stdbuf" => &["-i", "-o", "-e"],
        "ionice" => &["-c", "-n", "--class", "--classdata"],
        "exec" => &["-a"],
        "time" => &["-f", "--format"],
        "sudo" => &[
            "-u", "-g", "-h", "-p", "-C", "-U", "-r", "-t", "-T", "-D", "--user", "--group",
            "--host", "--prompt", "--chdir",
        ],
        "doas" => &["-u", "-C"],
        "su" => &["-c", "-s", "-g", "-G", "--command", "--shell"],
        "xargs" => &[
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "-d",
            "-E",
            "-a",
            "--max-args",
            "--max-procs",
            "--delimiter",
            "--arg-file",
            "--max-lines",
            "--replace",
        ],
        "watch" => &["-n", "--interval", "-q", "--equexit"],
        "setsid" => &[],
        "flock" => &["-w", "--timeout", "-E", "--conflict-exit-code"],
        "chrt" | "taskset" | "numactl" => &["-p", "--pid", "-c", "--cpu-list"],
        "systemd-run" => &["-u", "--unit", "-p", "--property", "--uid", "--gid"],
        "runuser" => &["-u", "-g", "--user", "--group"],
        "strace" | "ltrace" => &["-o", "-e", "-p", "-s", "-u"],
        _ => &[],
    };
    // `time -o FILE`, `strace -o FILE` write files.
    let mut writes: Option<String> = None;
    let mut shell_text: Option<String> = None;
    while i < args.len() {
        let a = &args[i];
        let Some(t) = a.plain() else {
            if a.text.is_none() && i > 0 {
                break;
            }
            return Judgement::mutating(prog, Risk::High, format!("{prog} with computed options"));
        };
        if t == "--" {
            i += 1;
            break;
        }
        if prog == "env" && !t.starts_with('-') && t.contains('=') {
            if let Some((n, v)) = t.split_once('=') {
                if let Some(why) = dangerous_assignment(n, &Arg::lit(v)) {
                    return Judgement::mutating(prog, Risk::High, why);
                }
            }
            i += 1;
            continue;
        }
        if prog == "env" && (t == "-S" || t.starts_with("--split-string") || t.starts_with("-S")) {
            // `env -S 'cmd args'` splits a string into a command line.
            let rest = if t == "-S" || t == "--split-string" {
                args.get(i + 1).and_then(Arg::plain).map(str::to_string)
            } else {
                t.split_once('=')
                    .map(|(_, v)| v.to_string())
                    .or_else(|| t.strip_prefix("-S").map(str::to_string))
            };
            let mut text = rest.unwrap_or_default();
            for a in args.iter().skip(if t == "-S" || t == "--split-string" {
                i + 2
            } else {
                i + 1
            }) {
                text.push(' ');
                text.push_str(&a.raw);
            }
            let e = w.nested(&text, "env -S command line");
            return nested_judgement(prog, e, "env -S");
        }
        if prog == "su" && (t == "-c" || t == "--command") {
            shell_text = args
                .get(i + 1)
                .map(|a| a.plain().unwrap_or("$(computed)").to_string());
        }
        if prog == "flock" && (t == "-c" || t == "--command") {
            shell_text = args
                .get(i + 1)
                .map(|a| a.plain().unwrap_or("$(computed)").to_string());
        }
        if matches!(prog, "time" | "strace" | "ltrace") {
            // `-o FILE`, `-oFILE`, `-fo FILE`, `--output[=]FILE`; strace and ltrace run a
            // FILE that begins with `|` or `!` as a shell command.
            let short = !t.starts_with("--") && t.starts_with('-');
            let value = if t == "-o" || t == "--output" {
                Some(
                    args.get(i + 1)
                        .map_or("$(computed)", |a| a.plain().unwrap_or("$(computed)")),
                )
            } else if let Some(v) = t.strip_prefix("--output=") {
                Some(v)
            } else if short && t.contains('o') {
                // Clustered short options: the value is what follows `o`, or the next word.
                match t.split_once('o').map(|(_, v)| v) {
                    Some("") => Some(
                        args.get(i + 1)
                            .map_or("$(computed)", |a| a.plain().unwrap_or("$(computed)")),
                    ),
                    Some(v) => Some(v),
                    None => None,
                }
            } else {
                None
            };
            if let Some(v) = value {
                if prog != "time" && (v.starts_with('|') || v.starts_with('!')) {
                    let e = w.nested(&v[1..], &format!("{prog} -o command"));
                    let mut j = nested_judgement(prog, e, &format!("{prog} -o |command"));
                    j.read_only = false;
                    j.risk = j.risk.max(Risk::High);
                    return j;
                }
                writes = Some(format!("{prog} -o writes a file"));
            }
        }
        if prog == "xargs"
            && (t.starts_with("-i") || t.starts_with("-I") || t.starts_with("--replace"))
        {
            extra_dynamic = true;
        }
        if prog == "ionice" && (t == "-p" || t == "-P" || t == "-u") {
            return Judgement::mutating(prog, Risk::High, "changes another process's priority");
        }
        if prog == "command" && (t == "-v" || t == "-V") {
            return Judgement::ro(prog, "looks up a command");
        }
        if t.starts_with('-') && t.len() > 1 {
            if valued.contains(&t) {
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        // `timeout DURATION cmd`, `flock FILE cmd`, `chroot DIR cmd`, `taskset MASK cmd`.
        if matches!(prog, "timeout" | "flock" | "chroot" | "taskset") {
            // The first operand is the duration, lock file, root or mask.
            i += 1;
            if prog == "flock" {
                writes = Some("flock creates a lock file".into());
            }
        }
        break;
    }
    if let Some(text) = shell_text {
        let e = w.nested(&text, &format!("{prog} -c text"));
        let mut j = nested_judgement(prog, e, &format!("{prog} -c"));
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
        return j;
    }
    let rest = args.get(i..).unwrap_or_default();
    let mut j = if rest.is_empty() {
        match prog {
            "env" | "exec" | "time" | "nice" | "command" | "builtin" => {
                Judgement::ro(prog, format!("{prog} without a command"))
            }
            "xargs" => judge(w, &[Arg::lit("echo"), dynamic_arg()]),
            _ => Judgement::mutating(
                prog,
                Risk::High,
                format!("{prog} starts a shell or session"),
            ),
        }
    } else if prog == "watch" {
        // watch joins its arguments and runs them with `sh -c`.
        if rest.iter().any(Arg::is_dynamic) {
            Judgement::mutating(prog, Risk::High, "watch runs a computed command")
        } else {
            let text = rest
                .iter()
                .filter_map(Arg::plain)
                .collect::<Vec<_>>()
                .join(" ");
            let e = w.nested(&text, "watch command");
            nested_judgement(prog, e, "watch")
        }
    } else {
        let mut inner: Vec<Arg> = rest.to_vec();
        if prog == "xargs" || extra_dynamic {
            inner.push(dynamic_arg());
        }
        judge(w, &inner)
    };
    if let Some(why) = writes {
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
        j.reason = format!("{why}; {}", j.reason);
    }
    if privileged {
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
        j.reason = format!(
            "runs under {prog} (changed privileges or root); {}",
            j.reason
        );
    }
    if j.program.is_empty() {
        j.program = prog.to_string();
    }
    j
}

/// An argument known only at run time (from stdin for `xargs`).
fn dynamic_arg() -> Arg {
    Arg {
        text: None,
        raw: "<stdin>".into(),
        glob: true,
        fetches: false,
        safe_prefix: false,
    }
}

/// `bash -c TEXT` recurses; a shell reading a script or stdin is unknown code.
fn shell(w: &mut Walker, prog: &str, args: &[Arg]) -> Judgement {
    let mut i = 0;
    let mut has_c = false;
    let mut reads_stdin = false;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            if has_c {
                break;
            }
            let fetch = args[i].fetches;
            return Judgement::mutating(
                prog,
                if fetch { Risk::Critical } else { Risk::High },
                if fetch {
                    "runs downloaded code: remote code execution"
                } else {
                    "shell runs a computed script or options"
                },
            );
        };
        if t == "--" || t == "-" {
            i += 1;
            break;
        }
        if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
            if !t.starts_with("--") && t.contains('c') {
                has_c = true;
            }
            if t.starts_with('-') && !t.starts_with("--") && t.contains('s') {
                reads_stdin = true;
            }
            if matches!(t, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        break;
    }
    if prog == "busybox" {
        return Judgement::mutating(prog, Risk::High, "busybox runs any applet");
    }
    if has_c {
        return match args.get(i) {
            Some(a) => match a.plain() {
                Some(text) => {
                    let e = w.nested(text, &format!("{prog} -c text"));
                    let mut j = nested_judgement(prog, e, &format!("{prog} -c"));
                    j.program = prog.to_string();
                    j
                }
                None => Judgement::mutating(
                    prog,
                    if a.fetches {
                        Risk::Critical
                    } else {
                        Risk::High
                    },
                    if a.fetches {
                        "runs downloaded code: remote code execution"
                    } else {
                        "shell -c text computed at run time"
                    },
                ),
            },
            None => Judgement::mutating(prog, Risk::High, "shell -c without text"),
        };
    }
    if reads_stdin {
        i = args.len();
    }
    let fetch = args.get(i).is_some_and(|a| a.fetches);
    let mut j = Judgement::mutating(
        prog,
        if fetch { Risk::Critical } else { Risk::High },
        if fetch {
            "runs downloaded code: remote code execution"
        } else if i < args.len() {
            "runs a script file: unknown code"
        } else {
            "runs commands from stdin: unknown code"
        },
    );
    j.runs_stdin = i >= args.len() || args.get(i).and_then(Arg::plain) == Some("/dev/stdin");
    j
}

/// Interpreters: inline code or scripts are unknown code; version queries are read-only.
fn interpreter(prog: &str, t: &[Option<&str>]) -> Judgement {
    if t.len() == 1
        && matches!(
            t[0],
            Some("--version" | "-V" | "-v" | "--help" | "-h" | "version")
        )
    {
        return Judgement::ro(prog, format!("{prog} version query"));
    }
    let inline = t.iter().any(|a| {
        matches!(
            a,
            Some("-c" | "-e" | "-E" | "-r" | "--eval" | "-p" | "--print" | "-m")
        ) || a.is_some_and(|a| a.starts_with("-e") || a.starts_with("-c"))
    });
    let mut j = Judgement::mutating(
        prog,
        Risk::High,
        if inline {
            format!("{prog} runs inline code")
        } else {
            format!("{prog} runs a program: unknown code")
        },
    );
    let script = t.iter().any(|a| a.is_none_or(|a| !a.starts_with('-')));
    j.runs_stdin = !inline && (!script || t.contains(&Some("-")));
    j
}

fn find(w: &mut Walker, args: &[Arg]) -> Judgement {
    let mut i = 0;
    let mut mutating: Option<(Risk, String)> = None;
    let mut inner_read_only = true;
    let starts: Vec<&str> = args
        .iter()
        .take_while(|a| {
            a.plain()
                .is_some_and(|t| !t.starts_with('-') && t != "(" && t != "!")
        })
        .filter_map(Arg::plain)
        .collect();
    while i < args.len() {
        let a = &args[i];
        let Some(t) = a.plain() else {
            if !a.safe_prefix {
                return Judgement::mutating(
                    "find",
                    Risk::High,
                    "find with computed arguments (could be -delete/-exec)",
                );
            }
            i += 1;
            continue;
        };
        match t {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let end = args[i + 1..]
                    .iter()
                    .position(|a| matches!(a.plain(), Some(";" | "+")))
                    .map(|p| i + 1 + p)
                    .unwrap_or(args.len());
                let inner = &args[i + 1..end];
                if inner.is_empty() {
                    return Judgement::mutating("find", Risk::High, "find -exec without a command");
                }
                let mut inner = inner.to_vec();
                inner.push(dynamic_arg());
                let j = judge(w, &inner);
                if !j.read_only {
                    inner_read_only = false;
                    let r = mutating.as_ref().map_or(j.risk, |m| m.0.max(j.risk));
                    mutating = Some((r, format!("find {t} runs {}: {}", j.program, j.reason)));
                }
                i = end + 1;
            }
            "-delete" | "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                let root = starts.iter().any(|s| is_root_like(s));
                let r = if root && t == "-delete" {
                    Risk::Critical
                } else {
                    Risk::High
                };
                mutating = Some((
                    r.max(mutating.as_ref().map_or(Risk::High, |m| m.0)),
                    format!("find {t} deletes or writes files"),
                ));
                i += 1;
            }
            _ => i += 1,
        }
    }
    match mutating {
        Some((risk, why)) => Judgement::mutating("find", risk, why),
        None if inner_read_only => Judgement::ro("find", "find without -exec/-delete/-fprint"),
        None => Judgement::mutating("find", Risk::High, "find runs a mutating command"),
    }
}

fn sed_cmd(prog: &str, args: &[Arg]) -> Judgement {
    let mut scripts: Vec<String> = Vec::new();
    let mut i = 0;
    let mut positional_script = true;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            if !args[i].safe_prefix || positional_script {
                return Judgement::mutating(prog, Risk::High, "sed with computed arguments");
            }
            i += 1;
            continue;
        };
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            if long.starts_with("in-place") {
                return Judgement::mutating(prog, Risk::High, "sed --in-place edits files");
            }
            if let Some(s) = long.strip_prefix("expression=") {
                scripts.push(s.to_string());
                positional_script = false;
            } else if long == "expression" {
                scripts.push(
                    args.get(i + 1)
                        .and_then(Arg::plain)
                        .unwrap_or("w")
                        .to_string(),
                );
                positional_script = false;
                i += 1;
            } else if long.starts_with("file") {
                return Judgement::mutating(prog, Risk::High, "sed script from a file: unknown");
            } else if !matches!(
                long,
                "quiet"
                    | "silent"
                    | "regexp-extended"
                    | "separate"
                    | "unbuffered"
                    | "null-data"
                    | "posix"
                    | "debug"
                    | "sandbox"
                    | "follow-symlinks"
                    | "binary"
            ) && !long.starts_with("line-length")
            {
                return Judgement::mutating(
                    prog,
                    Risk::High,
                    format!("sed option --{long} not understood"),
                );
            }
            i += 1;
            continue;
        }
        if t.starts_with('-') && t.len() > 1 {
            let chars: Vec<char> = t[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                match chars[k] {
                    'n' | 'E' | 'r' | 's' | 'u' | 'z' | 'b' => k += 1,
                    'i' => {
                        return Judgement::mutating(prog, Risk::High, "sed -i edits files in place")
                    }
                    'f' => {
                        return Judgement::mutating(
                            prog,
                            Risk::High,
                            "sed script from a file: unknown",
                        )
                    }
                    'l' => {
                        if k + 1 == chars.len() {
                            i += 1;
                        }
                        k = chars.len();
                    }
                    'e' => {
                        let rest: String = chars[k + 1..].iter().collect();
                        if rest.is_empty() {
                            i += 1;
                            match args.get(i).and_then(Arg::plain) {
                                Some(s) => scripts.push(s.to_string()),
                                None => {
                                    return Judgement::mutating(
                                        prog,
                                        Risk::High,
                                        "sed -e with a computed script",
                                    )
                                }
                            }
                        } else {
                            scripts.push(rest);
                        }
                        positional_script = false;
                        k = chars.len();
                    }
                    c => {
                        return Judgement::mutating(
                            prog,
                            Risk::High,
                            format!("sed option -{c} not understood"),
                        )
                    }
                }
            }
            i += 1;
            continue;
        }
        if positional_script {
            scripts.push(t.to_string());
            positional_script = false;
        }
        i += 1;
    }
    if args[i.min(args.len())..]
        .iter()
        .any(|a| a.is_dynamic() && !a.safe_prefix)
    {
        return Judgement::mutating(prog, Risk::High, "sed with computed arguments");
    }
    if scripts.is_empty() && positional_script {
        return Judgement::mutating(prog, Risk::High, "sed without a script");
    }
    if scripts.iter().any(|s| sed::script_mutates(s)) {
        return Judgement::mutating(
            prog,
            Risk::High,
            "sed script writes files or runs commands (w/W/e)",
        );
    }
    Judgement::ro(prog, "sed script only prints")
}

fn awk(prog: &str, args: &[Arg]) -> Judgement {
    let mut i = 0;
    let mut program: Option<&str> = None;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            return Judgement::mutating(prog, Risk::High, "awk with computed arguments");
        };
        if t == "--" {
            i += 1;
            break;
        }
        if t == "-f" || t.starts_with("--file") || t.starts_with("-f") {
            return Judgement::mutating(prog, Risk::High, "awk program from a file: unknown");
        }
        if t == "-i"
            || t.starts_with("--include")
            || t.starts_with("-i")
            || t.starts_with("-l")
            || t.starts_with("--load")
            || t.starts_with("-E")
            || t.starts_with("--exec")
        {
            return Judgement::mutating(
                prog,
                Risk::High,
                "awk loads extensions or in-place editing",
            );
        }
        if matches!(t, "-F" | "-v" | "--assign" | "--field-separator") {
            i += 2;
            continue;
        }
        if t.starts_with('-') && t.len() > 1 {
            i += 1;
            continue;
        }
        program = Some(t);
        break;
    }
    if program.is_none() {
        program = args.get(i).and_then(Arg::plain);
    }
    let Some(p) = program else {
        return Judgement::mutating(prog, Risk::High, "awk without a readable program");
    };
    if awk_mutates(p) {
        return Judgement::mutating(
            prog,
            Risk::High,
            "awk program runs commands or writes files (system, |, print >)",
        );
    }
    Judgement::ro(prog, "awk program only reads and prints")
}

/// Does an awk program run commands or write files? Conservative: strings are skipped; any
/// pipe, `system`, or `>` after `print`/`printf` in the same statement counts.
fn awk_mutates(p: &str) -> bool {
    let mut code = String::new();
    let mut in_str = false;
    let mut esc = false;
    for c in p.chars() {
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
                code.push('"');
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        code.push(c);
    }
    if code.contains("system") || code.contains("@load") || code.contains("PROCINFO") {
        return true;
    }
    if code.replace("||", "").contains('|') {
        return true;
    }
    for stmt in code.split([';', '{', '}', '\n']) {
        if let Some(pos) = stmt.find("print") {
            if stmt[pos..].contains('>') {
                return true;
            }
        }
    }
    false
}

/// The git subcommand after global options.
fn git_subcommand<'a>(flags: &[&'a str]) -> Option<&'a str> {
    let mut i = 0;
    while i < flags.len() {
        let f = flags[i];
        if matches!(
            f,
            "-C" | "-c"
                | "--git-dir"
                | "--work-tree"
                | "--namespace"
                | "--exec-path"
                | "--config-env"
        ) {
            i += 2;
            continue;
        }
        if f.starts_with('-') {
            i += 1;
            continue;
        }
        return Some(f);
    }
    None
}

fn git(prog: &str, args: &[Arg]) -> Judgement {
    let mut i = 0;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            return Judgement::mutating(prog, Risk::High, "git with computed options");
        };
        match t {
            "-c" | "--config-env" => {
                return Judgement::mutating(
                    prog,
                    Risk::High,
                    "git -c sets config that can run commands",
                )
            }
            "-C" | "--git-dir" | "--work-tree" | "--namespace" => i += 2,
            _ if t.starts_with("--exec-path=")
                || t.starts_with("--config-env=")
                || t.starts_with("-c") =>
            {
                return Judgement::mutating(prog, Risk::High, "git option changes what runs")
            }
            _ if t.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let Some(sub_arg) = args.get(i) else {
        return Judgement::ro(prog, "git without a subcommand prints help");
    };
    let Some(sub) = sub_arg.plain() else {
        return Judgement::mutating(prog, Risk::High, "git subcommand computed at run time");
    };
    let rest = &args[i + 1..];
    let rt: Vec<Option<&str>> = rest.iter().map(Arg::plain).collect();
    let dynamic = rest.iter().any(|a| a.is_dynamic() && !a.safe_prefix);
    let has = |f: &str| rt.contains(&Some(f));
    let starts = |p: &str| rt.iter().any(|t| t.is_some_and(|t| t.starts_with(p)));
    let positional: Vec<&str> = rt
        .iter()
        .flatten()
        .filter(|t| !t.starts_with('-'))
        .copied()
        .collect();
    let ok = |why: &str| Judgement::ro(prog, format!("git {sub}: {why}"));
    let no = |why: &str| Judgement::mutating(prog, Risk::High, format!("git {sub}: {why}"));
    if dynamic {
        return no("computed arguments could be write options");
    }
    match sub {
        "status" | "log" | "show" | "diff" | "whatchanged" | "shortlog" | "describe"
        | "rev-parse" | "rev-list" | "ls-files" | "ls-tree" | "ls-remote" | "cat-file"
        | "blame" | "annotate" | "merge-base" | "name-rev" | "for-each-ref" | "show-ref"
        | "count-objects" | "help" | "version" | "check-ignore" | "check-attr" | "var"
        | "range-diff" | "cherry" | "diff-tree" | "diff-index" | "diff-files" | "verify-commit"
        | "verify-tag" | "show-branch" | "grep" | "--version" => {
            if starts("--output") {
                no("--output writes a file")
            } else if sub == "grep" && (starts("-O") || starts("--open-files-in-pager")) {
                no("-O runs a pager command")
            } else if sub == "ls-remote" && starts("--upload-pack") {
                no("--upload-pack runs a command")
            } else {
                ok("read-only subcommand")
            }
        }
        "branch" => {
            let writes = rt.iter().flatten().any(|t| {
                matches!(
                    *t,
                    "-d" | "-D"
                        | "-m"
                        | "-M"
                        | "-c"
                        | "-C"
                        | "-f"
                        | "--force"
                        | "--delete"
                        | "--move"
                        | "--copy"
                        | "-u"
                        | "--unset-upstream"
                        | "--edit-description"
                        | "--track"
                        | "-t"
                ) || t.starts_with("--set-upstream")
            });
            let list = has("--list")
                || has("-l")
                || has("-a") && positional.is_empty()
                || positional.is_empty();
            if writes || !list {
                no("creates, deletes or renames branches")
            } else {
                ok("lists branches")
            }
        }
        "tag" => {
            let writes = rt.iter().flatten().any(|t| {
                matches!(
                    *t,
                    "-d" | "--delete"
                        | "-a"
                        | "-s"
                        | "-f"
                        | "-m"
                        | "-F"
                        | "-u"
                        | "--annotate"
                        | "--sign"
                        | "--force"
                )
            });
            if writes || !(positional.is_empty() || has("-l") || has("--list")) {
                no("creates or deletes tags")
            } else {
                ok("lists tags")
            }
        }
        "remote" => match positional.first() {
            None | Some(&"show") | Some(&"get-url") => ok("shows remotes"),
            _ => no("changes remotes"),
        },
        "stash" => match positional.first() {
            Some(&"list") | Some(&"show") => ok("shows stashes"),
            _ => no("changes the stash"),
        },
        "worktree" => match positional.first() {
            Some(&"list") => ok("lists worktrees"),
            _ => no("changes worktrees"),
        },
        "submodule" => match positional.first() {
            Some(&"status") | Some(&"summary") => ok("shows submodules"),
            _ => no("changes submodules"),
        },
        "reflog" => match positional.first() {
            None | Some(&"show") => ok("shows the reflog"),
            _ => no("changes the reflog"),
        },
        "notes" => match positional.first() {
            None | Some(&"list") | Some(&"show") => ok("shows notes"),
            _ => no("changes notes"),
        },
        "symbolic-ref" if positional.len() <= 1 && !has("-d") && !has("--delete") => {
            ok("reads a ref")
        }
        "config" => {
            let read = rt.iter().flatten().any(|t| {
                matches!(
                    *t,
                    "--get"
                        | "--get-all"
                        | "--get-regexp"
                        | "--list"
                        | "-l"
                        | "--get-urlmatch"
                        | "get"
                        | "list"
                )
            });
            let write = rt.iter().flatten().any(|t| {
                matches!(
                    *t,
                    "--add"
                        | "--unset"
                        | "--unset-all"
                        | "--replace-all"
                        | "--edit"
                        | "-e"
                        | "--rename-section"
                        | "--remove-section"
                        | "set"
                        | "unset"
                        | "edit"
                )
            });
            if read && !write {
                ok("reads config")
            } else {
                no("writes config")
            }
        }
        _ => no("not a read-only git subcommand"),
    }
}
