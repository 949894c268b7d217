//! Program rules: wrappers, nested shells and interpreters, remote execution, the
//! environment allow-list, and dispatch to the builtins, the per-program tables
//! (`programs.rs`, `tables.rs`) and the destructive shapes (`critical.rs`). Anything not
//! recognised is mutating.

use super::walk::{is_identifier, Arg, Effect, Judgement, Walker};
use super::{builtins, critical, options, programs, Risk};

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

pub use super::critical::is_block_device;

/// Environment variables that change nothing a program loads or runs (locale, time zone,
/// colour and terminal size). Any other variable set for a command may (`XDG_CONFIG_HOME`,
/// `PERL5LIB`, `KUBECONFIG`, `GIT_*`, `LD_*`, `BASH_ENV`, `PS4`...): default-deny.
const HARMLESS_ENV: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "FORCE_COLOR",
    "COLUMNS",
    "LINES",
    "TERM",
    "COLORTERM",
    "GREP_COLOR",
    "GREP_COLORS",
    "LS_COLORS",
    "GIT_TERMINAL_PROMPT",
    "RUST_BACKTRACE",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
];

/// Pagers whose only harmless value is `cat` (or empty: no pager).
const PAGER_VARS: &[&str] = &[
    "PAGER",
    "GIT_PAGER",
    "GH_PAGER",
    "SYSTEMD_PAGER",
    "MANPAGER",
];

/// Lowercase variables that programs read from the environment.
const LOWERCASE_ENV: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "no_proxy",
];

/// Why setting `name` in a command's environment is not read-only, if it is not.
pub fn env_denied(name: &str, value: &Arg) -> Option<String> {
    if name.starts_with("LC_") && is_identifier(name) || HARMLESS_ENV.contains(&name) {
        return None;
    }
    if PAGER_VARS.contains(&name) && matches!(value.plain(), Some("" | "cat")) {
        return None;
    }
    Some(format!(
        "sets {name} for a program: not on the list of harmless environment variables"
    ))
}

/// Why assigning shell variable `name` (no command: `x=1`, `read x`, `printf -v x`) is not
/// read-only, if it is not. A shell variable reaches programs only if it is already exported;
/// programs read upper-case names (and the lower-case proxy variables), so a lower-case name
/// is harmless and an upper-case one must be on the harmless list. Subscripts (`a[i]`) are
/// arithmetic: code.
pub fn shell_variable_denied(name: &str) -> Option<String> {
    if !is_identifier(name) {
        return Some(format!(
            "assigns {name}: a subscript or computed name is evaluated by bash"
        ));
    }
    let lower = name.chars().any(|c| c.is_ascii_lowercase());
    if lower && !LOWERCASE_ENV.contains(&name) || env_denied(name, &Arg::lit("x")).is_none() {
        return None;
    }
    Some(format!(
        "assigns {name}, which (if exported) changes what later programs load or run"
    ))
}

/// Judge one simple command's argv (non-empty). `stdin_args`: the program also receives
/// words known only at run time, appended by `xargs` (they may be options).
pub fn judge(w: &mut Walker, argv: &[Arg], stdin_args: bool) -> Judgement {
    if w.judge_depth >= MAX_WRAPPERS {
        return Judgement::mutating(
            argv.first().map_or("", |a| a.raw.as_str()),
            Risk::High,
            format!("more than {MAX_WRAPPERS} wrappers inside one another: opaque"),
        );
    }
    w.judge_depth += 1;
    let j = judge_inner(w, argv, stdin_args);
    w.judge_depth -= 1;
    j
}

/// Wrappers (`env nice timeout xargs ...`, `find -exec`) followed inside one another.
const MAX_WRAPPERS: usize = 32;

fn judge_inner(w: &mut Walker, argv: &[Arg], stdin_args: bool) -> Judgement {
    let Some(first) = argv.first() else {
        return Judgement::ro("", "empty command");
    };
    let Some(name) = first.plain() else {
        let mut j = Judgement::mutating(
            "<computed>",
            if first.fetches {
                Risk::Critical
            } else {
                Risk::High
            },
            format!("command name {} is computed at run time", first.raw),
        );
        // `curl … | $SHELL`: an unknown program may read its stdin as code.
        j.runs_stdin = true;
        return j;
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
    if !trusted_path && w.downloaded(name) {
        return Judgement::mutating(
            name,
            Risk::Critical,
            "runs a downloaded file: remote code execution",
        );
    }
    let mut j = judge_program(w, &prog, argv, stdin_args);
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

fn judge_program(w: &mut Walker, prog: &str, argv: &[Arg], stdin_args: bool) -> Judgement {
    let args = &argv[1..];
    if let Some(why) = critical::shape(prog, args) {
        return Judgement::mutating(prog, Risk::Critical, why);
    }
    if TRANSPARENT_WRAPPERS.contains(&prog) || PRIVILEGED_WRAPPERS.contains(&prog) {
        return wrapper(w, prog, argv, stdin_args);
    }
    if prog == "busybox" {
        // `busybox sh`, `busybox rm -rf x`: the applet, with busybox's own options (not the
        // tables'), so never read-only.
        let mut j = match args.first().and_then(Arg::plain) {
            Some(_) => judge(w, args, stdin_args),
            None => Judgement::mutating(prog, Risk::High, "busybox applet computed at run time"),
        };
        if j.read_only {
            j.reason = format!(
                "busybox applet (options differ from the tables); {}",
                j.reason
            );
        }
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
        return j;
    }
    if SHELLS.contains(&prog) {
        return shell(w, prog, args);
    }
    if INTERPRETERS.contains(&prog) || is_versioned_interpreter(prog) {
        return interpreter(w, prog, args);
    }
    if let Some(j) = remote(w, prog, args) {
        return j;
    }
    if matches!(prog, "cd" | "pushd" | "popd") {
        w.note_cd(prog, args);
    }
    if let Some(j) = builtins::judge(w, prog, args) {
        return if stdin_args && j.read_only {
            Judgement::mutating(
                prog,
                Risk::High,
                format!("{prog} receives words from input"),
            )
        } else {
            j
        };
    }
    // `git clone URL && ./install.sh`: what a clone brings is downloaded code too.
    let clones = match prog {
        "git" | "gh" | "hg" => args.iter().any(|a| a.plain() == Some("clone")),
        "svn" => args
            .iter()
            .any(|a| matches!(a.plain(), Some("checkout" | "co" | "export"))),
        _ => false,
    };
    if clones {
        w.downloads.push("*".into());
    }
    if is_fetcher(prog) {
        record_downloads(w, prog, args);
        return Judgement::mutating(prog, Risk::High, format!("{prog} reaches the network"));
    }
    if let Some(j) = programs::judge(w, prog, args, stdin_args) {
        return j;
    }
    match prog {
        "rm" | "rmdir" | "unlink" | "shred" | "truncate" => {
            Judgement::mutating(prog, Risk::High, format!("{prog} deletes or destroys data"))
        }
        "kill" | "pkill" | "killall" => Judgement::mutating(prog, Risk::High, "signals processes"),
        "npx" | "pnpx" | "bunx" | "uvx" => {
            // Runs a package's program: judged for risk (`npx vsce publish`), never read-only.
            let mut j = match args
                .iter()
                .position(|a| a.plain().is_none_or(|t| !t.starts_with('-')))
            {
                Some(k) => judge(w, &args[k..], stdin_args),
                None => Judgement::mutating(prog, Risk::High, "no package"),
            };
            j.read_only = false;
            j.risk = j.risk.max(Risk::High);
            j.reason = format!("{prog} downloads and runs a package; {}", j.reason);
            j
        }
        _ => Judgement::mutating(
            prog,
            Risk::High,
            format!("{prog} is not on the read-only allowlist (no table)"),
        ),
    }
}

pub fn nested_judgement(prog: &str, e: Effect, what: &str) -> Judgement {
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

/// `curl -o f`, `wget URL`: remember what was written, so running it later is remote code.
fn record_downloads(w: &mut Walker, prog: &str, args: &[Arg]) {
    let mut i = 0;
    let mut wrote_named = false;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            i += 1;
            continue;
        };
        let value = |i: usize, rest: &str| -> Option<String> {
            if rest.is_empty() {
                args.get(i + 1)
                    .map(|a| a.plain().unwrap_or("*").to_string())
            } else {
                Some(rest.trim_start_matches('=').to_string())
            }
        };
        let (out, remote_name) = match prog {
            "curl" => {
                if let Some(r) = t.strip_prefix("--output") {
                    (value(i, r), false)
                } else if t.starts_with("--remote-name") {
                    (None, true)
                } else if t.starts_with('-') && !t.starts_with("--") {
                    match t[1..].find(['o', 'O']) {
                        Some(k) if t.as_bytes()[k + 1] == b'o' => (value(i, &t[k + 2..]), false),
                        Some(_) => (None, true),
                        None => (None, false),
                    }
                } else {
                    (None, false)
                }
            }
            "wget" => {
                if let Some(r) = t.strip_prefix("--output-document") {
                    (value(i, r), false)
                } else if t.starts_with('-') && !t.starts_with("--") {
                    match t[1..].find('O') {
                        Some(k) => (value(i, &t[k + 2..]), false),
                        None => (None, false),
                    }
                } else {
                    (None, false)
                }
            }
            _ => (None, true),
        };
        if let Some(o) = out {
            if o != "-" {
                w.downloads.push(o);
            }
            wrote_named = true;
        }
        if remote_name {
            w.downloads.push("*".into());
        }
        i += 1;
    }
    if prog == "wget" && !wrote_named {
        w.downloads.push("*".into());
    }
}

/// Remote execution: `ssh host CMD` (the remote login shell reads CMD: opaque unless plain),
/// `kubectl exec POD -- CMD`, `docker exec CTR CMD`. Never read-only; the remote command's
/// risk counts (`ssh h 'rm -rf /srv'` is CRITICAL).
fn remote(w: &mut Walker, prog: &str, args: &[Arg]) -> Option<Judgement> {
    let (what, inner): (String, Option<&[Arg]>) = match prog {
        "ssh" => {
            let spec = options::Spec::parse(
                "ssh",
                "-4 -6 -A -a -C -f -G -g -K -k -M -N -n -q -s -T -t -V -v -X -x -Y -y -B= -b= -c= -D= -E= -e= -F= -I= -i= -J= -L= -l= -m= -O= -o= -P= -p= -Q= -R= -S= -W= -w=",
            );
            let p = match options::parse(&spec, args, true) {
                Ok(p) => p,
                Err(e) => return Some(Judgement::mutating(prog, Risk::High, e)),
            };
            let cmd = p.rest.get(1..).unwrap_or_default();
            if cmd.is_empty() {
                return Some(Judgement::mutating(
                    prog,
                    Risk::High,
                    "opens a remote session",
                ));
            }
            let text = cmd
                .iter()
                .map(|a| a.text.as_deref().unwrap_or(&a.raw))
                .collect::<Vec<_>>()
                .join(" ");
            let fetch = cmd.iter().any(|a| a.fetches);
            let e = w.nested_foreign(&text, "the remote shell");
            let risk = if fetch { Risk::Critical } else { e.risk };
            return Some(Judgement::mutating(
                prog,
                risk,
                "runs a command on a remote host (remote shell text; opaque unless plain)",
            ));
        }
        "kubectl" | "oc" => {
            let verbs: Vec<&str> = args
                .iter()
                .filter_map(Arg::plain)
                .filter(|t| !t.starts_with('-'))
                .take(3)
                .collect();
            if !verbs
                .iter()
                .any(|v| matches!(*v, "exec" | "debug" | "run" | "attach"))
            {
                return None;
            }
            let k = args.iter().position(|a| a.plain() == Some("--"));
            (
                format!("{prog} runs a command in a container"),
                k.map(|k| &args[k + 1..]),
            )
        }
        "docker" | "podman" | "nerdctl" => {
            let v = args
                .iter()
                .position(|a| matches!(a.plain(), Some("exec" | "run")))?;
            let spec = options::Spec::parse(
                "container exec",
                "-d -i -t --detach --interactive --tty --privileged --rm -e= --env= -u= --user= -w= --workdir= --env-file= --detach-keys= --name= -v= --volume= --network= --entrypoint= -p= --publish= --platform= --pull=",
            );
            let inner = options::parse(&spec, &args[v + 1..], true)
                .ok()
                .and_then(|p| p.rest.get(1..));
            (format!("{prog} runs a command in a container"), inner)
        }
        _ => return None,
    };
    let mut j = match inner {
        Some(cmd) if !cmd.is_empty() => {
            let j = judge(w, cmd, false);
            Judgement::mutating(
                prog,
                j.risk,
                format!("{what}: {} ({})", j.program, j.reason),
            )
        }
        _ => Judgement::mutating(prog, Risk::High, what),
    };
    j.read_only = false;
    Some(j)
}

/// Wrappers: strip options, judge the wrapped command (a slice of the same argv: no copies,
/// so chains stay linear), and keep its verdict. Privileged wrappers are never read-only; an
/// option the wrapper table does not know makes the result not read-only (its value could be
/// the word taken for the command).
fn wrapper(w: &mut Walker, prog: &str, argv: &[Arg], stdin_args: bool) -> Judgement {
    let args = &argv[1..];
    let privileged = PRIVILEGED_WRAPPERS.contains(&prog);
    let mut i = 0;
    let mut extra_dynamic = stdin_args || prog == "xargs";
    // Options taking a value, and flags, per wrapper.
    let (valued, flags): (&[&str], &[&str]) = match prog {
        "env" => (
            &["-u", "--unset", "-C", "--chdir", "-a", "--argv0"],
            &[
                "-i",
                "--ignore-environment",
                "-0",
                "--null",
                "-v",
                "--debug",
                "-",
            ],
        ),
        "nice" => (&["-n", "--adjustment"], &[]),
        "timeout" => (
            &["-s", "--signal", "-k", "--kill-after"],
            &["--preserve-status", "--foreground", "-v", "--verbose"],
        ),
        "stdbuf" => (&["-i", "-o", "-e"], &[]),
        "ionice" => (&["-c", "-n", "--class", "--classdata"], &["-t"]),
        "exec" => (&["-a"], &["-c", "-l"]),
        "time" => (
            &["-f", "--format"],
            &["-p", "-v", "--portability", "--verbose"],
        ),
        "command" => (&[], &["-p"]),
        "builtin" => (&[], &[]),
        "sudo" => (
            &[
                "-u", "-g", "-h", "-p", "-C", "-U", "-r", "-t", "-T", "-D", "--user", "--group",
                "--host", "--prompt", "--chdir",
            ],
            &[
                "-E",
                "-H",
                "-n",
                "-S",
                "-b",
                "-i",
                "-s",
                "-k",
                "-K",
                "-P",
                "--preserve-env",
                "--non-interactive",
                "--stdin",
                "--login",
                "--shell",
            ],
        ),
        "doas" => (&["-u", "-C"], &["-n", "-s"]),
        "su" => (
            &["-c", "-s", "-g", "-G", "--command", "--shell"],
            &["-", "-l", "--login", "-m", "-p"],
        ),
        "xargs" => (
            &[
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
            &[
                "-0",
                "--null",
                "-r",
                "--no-run-if-empty",
                "-t",
                "--verbose",
                "-x",
                "--exit",
            ],
        ),
        "watch" => (
            &["-n", "--interval", "-q", "--equexit"],
            &[
                "-t",
                "-d",
                "-c",
                "-x",
                "-e",
                "-g",
                "-b",
                "--no-title",
                "--differences",
                "--color",
                "--exec",
                "--errexit",
                "--chgexit",
                "--beep",
                "--precise",
            ],
        ),
        "flock" => (
            &["-w", "--timeout", "-E", "--conflict-exit-code"],
            &[
                "-s",
                "-x",
                "-n",
                "-u",
                "-o",
                "--shared",
                "--exclusive",
                "--nonblock",
                "--unlock",
                "--close",
            ],
        ),
        "chrt" | "taskset" | "numactl" => (&["-p", "--pid", "-c", "--cpu-list"], &[]),
        "systemd-run" => (
            &["-u", "--unit", "-p", "--property", "--uid", "--gid"],
            &["--user", "--scope", "-t", "--pty", "--wait", "-q"],
        ),
        "runuser" => (&["-u", "-g", "--user", "--group"], &["-l", "--login"]),
        "strace" | "ltrace" => (
            &["-o", "-e", "-p", "-s", "-u"],
            &["-f", "-ff", "-c", "-t", "-tt", "-T"],
        ),
        _ => (&[], &[]),
    };
    let mut unknown_option: Option<String> = None;
    // `time -o FILE`, `strace -o FILE` write files.
    let mut writes: Option<String> = None;
    let mut shell_text: Option<(String, &Arg)> = None;
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
                if let Some(why) = env_denied(n, &Arg::lit(v)) {
                    unknown_option.get_or_insert(why);
                }
            }
            i += 1;
            continue;
        }
        if prog == "env" && (t.starts_with("-C") || t.starts_with("--chdir")) {
            w.cwds = None;
        }
        if prog == "env"
            && (t.starts_with("--split-string") || t.starts_with("-S") || t.starts_with("-vS"))
        {
            // `env -S 'cmd args'` splits a string into a command line.
            let split_at = if t == "-S" || t == "--split-string" {
                i + 2
            } else {
                i + 1
            };
            let rest = if t == "-S" || t == "--split-string" {
                args.get(i + 1)
                    .map(|a| a.text.clone().unwrap_or_else(|| a.raw.clone()))
            } else {
                t.split_once('=')
                    .map(|(_, v)| v.to_string())
                    .or_else(|| t.split_once('S').map(|(_, v)| v.to_string()))
            };
            let mut text = rest.unwrap_or_default();
            for a in args.iter().skip(split_at) {
                text.push(' ');
                text.push_str(&a.raw);
            }
            let e = w.nested(&text, "env -S command line");
            let mut j = nested_judgement(prog, e, "env -S");
            j.read_only = false;
            j.risk = j.risk.max(Risk::High);
            return j;
        }
        if matches!(prog, "su" | "flock") && (t == "-c" || t == "--command") {
            if let Some(a) = args.get(i + 1) {
                shell_text = Some((a.plain().unwrap_or("$(computed)").to_string(), a));
            }
        }
        if matches!(prog, "time" | "strace" | "ltrace") {
            // `-o FILE` writes a file, however it is spelled (`-o F`, `-oF`, `-fo F`,
            // `--output=F`); strace and ltrace pipe to a command when FILE starts with `|`
            // or `!`. A short bundle holding `o` is read as `-o` (stricter, never looser).
            let value = if t == "-o" || t == "--output" {
                Some(args.get(i + 1).map_or(String::new(), |a| {
                    a.text.clone().unwrap_or_else(|| a.raw.clone())
                }))
            } else if let Some(v) = t.strip_prefix("--output=") {
                Some(v.to_string())
            } else if t.starts_with('-') && !t.starts_with("--") && t[1..].contains('o') {
                let v = &t[t[1..].find('o').map_or(t.len(), |k| k + 2)..];
                Some(if v.is_empty() {
                    args.get(i + 1).map_or(String::new(), |a| {
                        a.text.clone().unwrap_or_else(|| a.raw.clone())
                    })
                } else {
                    v.to_string()
                })
            } else {
                None
            };
            if let Some(v) = value {
                if prog != "time" && (v.starts_with('|') || v.starts_with('!')) {
                    let e = w.nested(&v[1..], "trace output command");
                    let mut j = nested_judgement(prog, e, "trace output pipe");
                    j.read_only = false;
                    j.risk = j.risk.max(Risk::High);
                    j.reason = format!("{prog} -o pipes its output to a command; {}", j.reason);
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
            return Judgement::ro(prog, "builtin command -v/-V: looks up a command");
        }
        if t.starts_with('-') && t.len() > 1 {
            let opt = t.split('=').next().unwrap_or(t);
            if valued.contains(&t) {
                i += 2;
                continue;
            }
            let attached = valued.iter().any(|v| {
                (v.starts_with("--") && opt == *v && t.contains('='))
                    || (!v.starts_with("--") && t.len() > 2 && t.starts_with(v))
            });
            if !attached && !flags.contains(&t) {
                unknown_option.get_or_insert(format!(
                    "{prog}: option {t} is not in its table (could take the next word)"
                ));
            }
            i += 1;
            continue;
        }
        // `timeout DURATION cmd`, `flock FILE cmd`, `chroot DIR cmd`, `taskset MASK cmd`.
        if matches!(prog, "timeout" | "flock" | "chroot" | "taskset") {
            i += 1;
            if prog == "flock" {
                writes = Some("flock creates a lock file".into());
            }
        }
        break;
    }
    if let Some((text, a)) = shell_text {
        // su and flock run the text with a shell that is not necessarily bash.
        let e = w.nested_foreign(&text, &format!("{prog} -c"));
        let risk = if a.fetches { Risk::Critical } else { e.risk };
        return Judgement::mutating(prog, risk, format!("{prog} -c runs shell text"));
    }
    let rest = args.get(i..).unwrap_or_default();
    let mut j = if rest.is_empty() {
        match prog {
            "env" | "exec" | "time" | "nice" | "command" | "builtin" => {
                Judgement::ro(prog, format!("{prog} without a command"))
            }
            "xargs" => judge(w, &[Arg::lit("echo")], true),
            _ => Judgement::mutating(
                prog,
                Risk::High,
                format!("{prog} starts a shell or session"),
            ),
        }
    } else if prog == "watch" {
        // watch joins its arguments and runs them with `sh -c` (not bash).
        let text = rest
            .iter()
            .map(|a| a.text.as_deref().unwrap_or(&a.raw))
            .collect::<Vec<_>>()
            .join(" ");
        let e = w.nested_foreign(&text, "watch (sh -c)");
        nested_judgement(prog, e, "watch")
    } else {
        judge(w, rest, extra_dynamic)
    };
    if let Some(why) = unknown_option {
        if j.read_only {
            j.reason = format!("{why}; {}", j.reason);
        }
        j.read_only = false;
        j.risk = j.risk.max(Risk::High);
    }
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

/// Shells. `bash -c TEXT` is parsed as bash; `-c` text for any other shell (dash as `sh`,
/// zsh, ksh, fish, busybox sh...) is read the same only when plain. Options that load
/// configuration (`-l`, `-i`, `--rcfile`) or change parsing (`-O extglob`) are not read-only.
/// A shell reading a script or stdin is unknown code.
fn shell(w: &mut Walker, prog: &str, args: &[Arg]) -> Judgement {
    let is_bash = matches!(prog, "bash" | "rbash");
    let mut i = 0;
    let mut has_c = false;
    let mut reads_stdin = false;
    let mut odd_option: Option<String> = None;
    while i < args.len() {
        let Some(t) = args[i].plain() else {
            if has_c {
                break;
            }
            let fetch = args[i].fetches;
            let mut j = Judgement::mutating(
                prog,
                if fetch { Risk::Critical } else { Risk::High },
                if fetch {
                    "runs downloaded code: remote code execution"
                } else {
                    "shell runs a computed script or options"
                },
            );
            j.runs_stdin = true;
            return j;
        };
        if t == "--" || t == "-" {
            i += 1;
            break;
        }
        if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
            if t.starts_with("--") {
                if !matches!(t, "--norc" | "--noprofile" | "--posix") {
                    odd_option.get_or_insert(format!("{prog} {t}"));
                }
                i += if matches!(t, "--rcfile" | "--init-file") {
                    2
                } else {
                    1
                };
                continue;
            }
            let body = &t[1..];
            if body.contains('c') {
                has_c = true;
            }
            if t.starts_with('-') && body.contains('s') {
                reads_stdin = true;
            }
            if body.chars().any(|c| !"ceuxvfo".contains(c)) {
                odd_option.get_or_insert(format!("{prog} {t} (login, interactive or other mode)"));
            }
            if body.contains('o') || body.contains('O') {
                let v = args.get(i + 1).and_then(Arg::plain);
                if !matches!(
                    v,
                    Some("pipefail" | "errexit" | "nounset" | "xtrace" | "noglob" | "noclobber")
                ) {
                    odd_option.get_or_insert(format!("{prog} {t} {}", v.unwrap_or("?")));
                }
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        break;
    }
    if has_c {
        let Some(a) = args.get(i) else {
            return Judgement::mutating(prog, Risk::High, "shell -c without text");
        };
        let Some(text) = a.plain() else {
            return Judgement::mutating(
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
            );
        };
        let e = if is_bash {
            w.nested(text, &format!("{prog} -c text"))
        } else {
            w.nested_foreign(text, prog)
        };
        let mut j = nested_judgement(prog, e, &format!("{prog} -c"));
        if let Some(why) = odd_option {
            j.read_only = false;
            j.risk = j.risk.max(Risk::High);
            j.reason = format!("{why}; {}", j.reason);
        }
        return j;
    }
    if reads_stdin {
        i = args.len();
    }
    let operand = args.get(i);
    let fetch = operand.is_some_and(|a| a.fetches)
        || operand
            .and_then(Arg::plain)
            .is_some_and(|p| w.downloaded(p));
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

/// Interpreters: inline code or scripts are unknown code; only a lone version query is
/// read-only. A script that was downloaded (or read from a download) is remote code.
fn interpreter(w: &mut Walker, prog: &str, args: &[Arg]) -> Judgement {
    let t: Vec<Option<&str>> = args.iter().map(Arg::plain).collect();
    let base = prog.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if t.len() == 1 {
        let ok = match t[0] {
            Some("--version") => true,
            Some("-V") => matches!(base, "python" | "pypy"),
            Some("-v") => matches!(base, "node" | "nodejs" | "perl" | "php" | "bun" | "deno"),
            _ => false,
        };
        if ok {
            return Judgement::ro(prog, format!("{prog} version query"));
        }
    }
    let fetch = args.iter().any(|a| a.fetches)
        || t.iter()
            .flatten()
            .any(|p| !p.starts_with('-') && w.downloaded(p));
    if fetch {
        return Judgement::mutating(
            prog,
            Risk::Critical,
            "runs downloaded code: remote code execution",
        );
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
