//! Programs judged by their tables (`tables.rs`) through the generic option parser, and the
//! few that need more than a table: `find` (an expression language), `sed` and `awk` (scripts),
//! `git` (global options, verbs, configuration facts), subcommand tools (kubectl, gh, docker,
//! cargo, npm, helm, go, pip, systemctl), `tar`/`unzip` (listing modes).

use super::options::{self, Parsed, Spec};
use super::rules::judge as judge_argv;
use super::walk::{Arg, Judgement, Walker};
use super::{sed, Risk};

/// Tools whose global options may appear after the verb (pflag/cobra, npm's nopt).
const INTERSPERSED: &[&str] = &["kubectl", "gh", "npm", "helm", "systemctl"];

/// `None` when no table or rule knows `prog`.
pub fn judge(w: &mut Walker, prog: &str, args: &[Arg], stdin_args: bool) -> Option<Judgement> {
    let special = matches!(
        prog,
        "find" | "sed" | "gsed" | "awk" | "gawk" | "mawk" | "nawk" | "git" | "tar" | "unzip"
    ) || is_tool(prog);
    if special && stdin_args {
        return Some(Judgement::mutating(
            prog,
            Risk::High,
            format!("{prog} receives words from input (they could be options)"),
        ));
    }
    Some(match prog {
        "find" => find(w, args),
        "sed" | "gsed" => sed_cmd(prog, args),
        "awk" | "gawk" | "mawk" | "nawk" => awk(prog, args),
        "git" => git(w, args),
        "tar" => tar(args),
        "unzip" => listing("unzip", args, &["-l", "-v", "-Z", "-t", "-p", "-c", "-z"]),
        // `rpm -i` installs; `-i` is "info" only in query mode.
        "rpm" => listing("rpm", args, &["-q", "--query"]),
        _ if is_tool(prog) => {
            let j = tool(prog, args);
            if j.read_only && matches!(prog, "kubectl" | "helm") {
                kube_fact(w, j)
            } else {
                j
            }
        }
        _ => {
            let spec = options::table(prog)?;
            simple(spec, args, stdin_args)
        }
    })
}

/// kubectl and helm run the kubeconfig's credential plugins: read-only only when the caller
/// knows the kubeconfig in effect names none.
fn kube_fact(w: &Walker, j: Judgement) -> Judgement {
    match w.facts.kube_config_runs_program() {
        Some(false) => Judgement::ro(&j.program, format!("{}; kubeconfig names no programs", j.reason)),
        Some(true) => Judgement::mutating(
            &j.program,
            Risk::High,
            format!("{}; but the kubeconfig names an exec credential plugin or auth provider, which it runs", j.reason),
        ),
        None => Judgement::mutating(
            &j.program,
            Risk::High,
            format!("{}; but the kubeconfig is not known to name no programs", j.reason),
        ),
    }
}

fn is_tool(prog: &str) -> bool {
    static TOOLS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let mut v: Vec<&str> = super::tables::VERBS
                .iter()
                .filter_map(|(k, _)| k.split_once(' ').map(|(t, _)| t))
                .collect();
            v.dedup();
            v
        })
        .contains(&prog)
}

fn table_err(e: String) -> String {
    format!("table {e} (not known to be read-only)")
}

/// A program judged by its table alone.
fn simple(spec: &'static Spec, args: &[Arg], stdin_args: bool) -> Judgement {
    let prog = spec.name;
    if stdin_args && !spec.pure {
        return Judgement::mutating(prog, Risk::High, format!("table {prog}: receives words from input, and not every option of {prog} is harmless"));
    }
    let checked = options::parse(spec, args, false)
        .and_then(|p| options::check_operands(spec, &p).map(|_| p));
    match checked {
        Ok(p) => Judgement::ro(prog, describe(prog, &p)),
        Err(e) => Judgement::mutating(prog, Risk::High, table_err(e)),
    }
}

fn describe(table: &str, p: &Parsed<'_>) -> String {
    if p.opts.is_empty() {
        format!("table {table}: no options; {} operand(s)", p.operands.len())
    } else {
        let names: Vec<&str> = p.opts.iter().map(|o| o.name.as_str()).collect();
        format!(
            "table {table}: options {} known-safe; {} operand(s)",
            names.join(" "),
            p.operands.len()
        )
    }
}

/// `tar`: only listing (`-t`/`--list`), old-style bundles (`tar tzf x`) included.
fn tar(args: &[Arg]) -> Judgement {
    let mut owned: Vec<Arg> = Vec::new();
    let args: &[Arg] = match args.first().and_then(Arg::plain) {
        Some(t)
            if !t.starts_with('-')
                && !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            owned.push(Arg::lit(&format!("-{t}")));
            owned.extend_from_slice(&args[1..]);
            &owned
        }
        _ => args,
    };
    // GNU tar opens an archive named `host:path` on `host` with rsh/ssh.
    let remote = args.windows(2).any(|w| {
        matches!(w[0].plain(), Some(o) if o.starts_with('-') && !o.starts_with("--") && o.ends_with('f'))
            && w[1].plain().is_none_or(|f| f.contains(':'))
    }) || args.iter().any(|a| {
        a.plain().is_some_and(|t| {
            t.starts_with("--file=") && t.contains(':')
                || t.starts_with('-') && !t.starts_with("--") && t.contains('f') && !t.ends_with('f') && t.contains(':')
        })
    });
    if remote {
        return Judgement::mutating(
            "tar",
            Risk::High,
            "tar archive name with a colon is opened on a remote host (rsh/ssh)",
        );
    }
    listing("tar", args, &["-t", "--list"])
}

/// A table program that is read-only only in one of its listing modes.
fn listing(prog: &'static str, args: &[Arg], modes: &[&str]) -> Judgement {
    let Some(spec) = options::table(prog) else {
        return Judgement::mutating(prog, Risk::High, "no table");
    };
    match options::parse(spec, args, false) {
        Ok(p) if modes.iter().any(|m| p.has(m)) => Judgement::ro(prog, describe(prog, &p)),
        Ok(_) => Judgement::mutating(
            prog,
            Risk::High,
            format!(
                "table {prog}: not in a listing mode ({}): extracts or writes",
                modes.join("/")
            ),
        ),
        Err(e) => Judgement::mutating(prog, Risk::High, table_err(e)),
    }
}

/// Subcommand tools: global options (table `"tool"`), then a verb (and sub-verb) with its own
/// table `"tool verb [sub]"`. Only listed verbs can be read-only: no "help/version" guesses.
fn tool(prog: &str, args: &[Arg]) -> Judgement {
    let empty = Spec::default();
    let global = options::table(prog).unwrap_or(&empty);
    let no = |why: String| Judgement::mutating(prog, Risk::High, why);
    let mut args = args;
    if prog == "cargo" {
        // `cargo +toolchain`: rustup picks the toolchain.
        if args
            .first()
            .and_then(Arg::plain)
            .is_some_and(|t| t.starts_with('+'))
        {
            args = &args[1..];
        }
    }
    let p = match options::parse(global, args, true) {
        Ok(p) => p,
        Err(e) => return no(table_err(e)),
    };
    let Some(verb_arg) = p.rest.first() else {
        if p.opts
            .iter()
            .any(|o| matches!(o.name.as_str(), "--version" | "-V" | "-v" | "--list"))
            && !p.opts.is_empty()
        {
            return Judgement::ro(prog, format!("table {prog}: version query"));
        }
        return no(format!("{prog} without a listed subcommand"));
    };
    let Some(verb) = verb_arg.plain() else {
        return no(format!("{prog} subcommand computed at run time"));
    };
    let after = &p.rest[1..];
    let sub = after.first().and_then(Arg::plain);
    let (key, rest) = match sub {
        Some(s) if options::table(&format!("{prog} {verb} {s}")).is_some() => {
            (format!("{prog} {verb} {s}"), &after[1..])
        }
        _ => (format!("{prog} {verb}"), after),
    };
    let Some(spec) = options::table(&key) else {
        return no(format!("{key} is not a listed read-only subcommand"));
    };
    let merged;
    let spec: &Spec = if INTERSPERSED.contains(&prog) {
        merged = spec.merged(global);
        &merged
    } else {
        spec
    };
    match options::parse(spec, rest, false)
        .and_then(|p| options::check_operands(spec, &p).map(|_| p))
    {
        // Without --no-deps cargo resolves dependencies: it may fetch and rewrite Cargo.lock.
        Ok(p) if key == "cargo metadata" && !p.has("--no-deps") => no(
            "cargo metadata without --no-deps resolves dependencies (network, Cargo.lock)".into(),
        ),
        Ok(p) => Judgement::ro(prog, describe(&key, &p)),
        Err(e) => no(format!("{key}: {}", table_err(e))),
    }
}

/// `find`: an expression language. Only listed tests and actions are read-only; `-exec`
/// runs its command (judged as a slice of the same argv); `-delete`, `-fprint*`, `-fls` and
/// anything unknown are not read-only.
fn find(w: &mut Walker, args: &[Arg]) -> Judgement {
    const FLAGS: &[&str] = &[
        "-print",
        "-print0",
        "-ls",
        "-prune",
        "-quit",
        "-true",
        "-false",
        "-empty",
        "-readable",
        "-writable",
        "-executable",
        "-nouser",
        "-nogroup",
        "-depth",
        "-mount",
        "-xdev",
        "-follow",
        "-noleaf",
        "-ignore_readdir_race",
        "-noignore_readdir_race",
        "-daystart",
        "-not",
        "!",
        "-a",
        "-and",
        "-o",
        "-or",
        ",",
        "(",
        ")",
        "-P",
        "-H",
        "-L",
    ];
    const VALUED: &[&str] = &[
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-iwholename",
        "-regex",
        "-iregex",
        "-regextype",
        "-type",
        "-xtype",
        "-size",
        "-perm",
        "-user",
        "-group",
        "-uid",
        "-gid",
        "-newer",
        "-anewer",
        "-cnewer",
        "-mtime",
        "-atime",
        "-ctime",
        "-mmin",
        "-amin",
        "-cmin",
        "-used",
        "-links",
        "-inum",
        "-samefile",
        "-lname",
        "-ilname",
        "-maxdepth",
        "-mindepth",
        "-printf",
        "-fstype",
        "-context",
        "-D",
        "-O",
    ];
    let mut i = 0;
    let mut starts = true;
    let mut worst: Option<Judgement> = None;
    let no = |why: String| Judgement::mutating("find", Risk::High, why);
    while i < args.len() {
        let a = &args[i];
        let Some(t) = a.plain() else {
            if starts && !a.safe_prefix {
                return no("find start path computed at run time (could be an action)".into());
            }
            if !starts {
                return no(format!(
                    "find expression word {} computed at run time",
                    a.raw
                ));
            }
            i += 1;
            continue;
        };
        if starts && !t.starts_with('-') && t != "(" && t != "!" {
            i += 1;
            continue;
        }
        starts = false;
        if FLAGS.contains(&t) {
            i += 1;
        } else if VALUED.contains(&t) || (t.starts_with("-newer") && t.len() == 8) {
            if i + 1 >= args.len() {
                return no(format!("find {t} without a value"));
            }
            i += 2;
        } else if matches!(t, "-exec" | "-execdir" | "-ok" | "-okdir") {
            let end = args[i + 1..]
                .iter()
                .position(|a| matches!(a.plain(), Some(";" | "+")))
                .map(|p| i + 1 + p)
                .unwrap_or(args.len());
            let inner = &args[i + 1..end];
            if inner.is_empty() {
                return no("find -exec without a command".into());
            }
            let j = judge_argv(w, inner, false);
            if !j.read_only {
                let risk = j.risk;
                let why = format!("find {t} runs {}: {}", j.program, j.reason);
                if worst.as_ref().is_none_or(|x| x.risk < risk) {
                    worst = Some(Judgement::mutating("find", risk, why));
                }
            }
            i = end + 1;
        } else {
            return no(format!(
                "find {t}: not a known read-only test or action (writes, deletes or unknown)"
            ));
        }
    }
    worst.unwrap_or_else(|| Judgement::ro("find", "find: only listed tests and actions"))
}

/// `awk`: the program text is scanned conservatively; only listed options.
fn awk(prog: &str, args: &[Arg]) -> Judgement {
    let spec = Spec::parse(
        "awk",
        "@order -F= -v= -e= -S -P -c -b --field-separator= --assign= --source= --sandbox --posix --traditional --characters-as-bytes",
    );
    let p = match options::parse(&spec, args, false) {
        Ok(p) => p,
        Err(e) => return Judgement::mutating(prog, Risk::High, table_err(e)),
    };
    let mut programs: Vec<Option<&str>> = p
        .opts
        .iter()
        .filter(|o| matches!(o.name.as_str(), "-e" | "--source"))
        .map(|o| o.value.as_ref().and_then(|v| v.text()))
        .collect();
    if programs.is_empty() {
        match p.operands.first() {
            Some(a) => programs.push(a.plain()),
            None => return Judgement::mutating(prog, Risk::High, "awk without a program"),
        }
    }
    for program in programs {
        match program {
            Some(text) if !awk_mutates(text) => {}
            Some(_) => {
                return Judgement::mutating(
                    prog,
                    Risk::High,
                    "awk program may run commands, write files or load code (system, |, >, @include, getline)",
                )
            }
            None => return Judgement::mutating(prog, Risk::High, "awk program computed at run time"),
        }
    }
    Judgement::ro(prog, "table awk: program only reads and prints")
}

/// git: global options (table `git`), the verb's table, operand rules for listing verbs,
/// and the configuration fact: read-only git verbs may still run programs named in git
/// config (pagers, fsmonitor, diff drivers, filters), so git is read-only only when the
/// caller knows the effective config for every directory git may run in names none.
fn git(w: &mut Walker, args: &[Arg]) -> Judgement {
    let prog = "git";
    let no = |why: String| Judgement::mutating(prog, Risk::High, why);
    let Some(global) = options::table("git") else {
        return no("no git table".into());
    };
    let p = match options::parse(global, args, true) {
        Ok(p) => p,
        Err(e) => return no(table_err(e)),
    };
    let mut dir: Option<String> = Some(".".into());
    for o in p.opts.iter().filter(|o| o.name == "-C") {
        dir = match (dir, o.value.as_ref().and_then(|v| v.text())) {
            (Some(d), Some(c)) => Some(join(&d, c)),
            _ => None,
        };
    }
    let Some(verb_arg) = p.rest.first() else {
        return if p.has("--version") {
            Judgement::ro(prog, "table git: --version")
        } else {
            no("git without a subcommand".into())
        };
    };
    let Some(verb) = verb_arg.plain() else {
        return no("git subcommand computed at run time".into());
    };
    let after = &p.rest[1..];
    let sub = after.first().and_then(Arg::plain);
    let with_subverbs = matches!(
        verb,
        "remote" | "stash" | "worktree" | "submodule" | "reflog" | "notes"
    );
    let (key, rest) = match sub {
        Some(s) if options::table(&format!("git {verb} {s}")).is_some() => {
            (format!("git {verb} {s}"), &after[1..])
        }
        Some(s) if with_subverbs && !s.starts_with('-') => {
            return no(format!(
                "git {verb} {s} is not a listed read-only subcommand"
            ))
        }
        _ => (format!("git {verb}"), after),
    };
    let Some(spec) = options::table(&key) else {
        return no(format!("{key} is not a listed read-only subcommand"));
    };
    let vp = match options::parse(spec, rest, false)
        .and_then(|p| options::check_operands(spec, &p).map(|_| p))
    {
        Ok(p) => p,
        Err(e) => return no(table_err(e)),
    };
    let n = vp.operands.len();
    let shape_ok = match key.as_str() {
        "git branch" | "git tag" => n == 0 || vp.has("--list") || vp.has("-l"),
        "git config" => {
            let mode = [
                "--get",
                "--get-all",
                "--get-regexp",
                "--get-urlmatch",
                "--get-color",
                "--get-colorbool",
            ]
            .iter()
            .any(|m| vp.has(m));
            let list = vp.has("--list") || vp.has("-l");
            let first = vp.operands.first().and_then(|a| a.plain());
            (mode && n <= 2)
                || (list && n == 0)
                || (!mode
                    && !list
                    && (n == 1 && first.is_some_and(|k| k.contains('.'))
                        || matches!(first, Some("get") if n == 2)
                        || matches!(first, Some("list")) && n == 1))
        }
        _ => true,
    };
    if !shape_ok {
        return no(format!(
            "{key}: operands create, delete or set (only listing is read-only)"
        ));
    }
    // The configuration fact, for every directory git may run in.
    let dirs: Option<Vec<String>> = match (&w.cwds, &dir) {
        (Some(cwds), Some(d)) => Some(cwds.iter().map(|c| join(c, d)).collect()),
        _ => None,
    };
    let Some(dirs) = dirs else {
        return no(format!(
            "{key}: the directory git runs in is not known, so neither is its configuration"
        ));
    };
    for d in &dirs {
        match w.facts.git_config_runs_program(d) {
            Some(false) => {}
            Some(true) => {
                return no(format!(
                    "{key}: git configuration for {d} names a program (pager, fsmonitor, diff driver, filter...) that git may run"
                ))
            }
            None => {
                return no(format!("{key}: git configuration for {d} not known to name no programs"))
            }
        }
    }
    Judgement::ro(
        prog,
        format!("{}; git config names no programs", describe(&key, &vp)),
    )
}

/// `base` joined with `path` (absolute paths replace).
pub fn join(base: &str, path: &str) -> String {
    if path.starts_with('/') || path.starts_with('~') || base == "." {
        path.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
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

/// Does an awk program run commands, write files or load code? Conservative: strings are
/// skipped; any pipe (`| "cmd"`, `"cmd" | getline`), `system`, `>` in a print statement, `@`
/// directives (`@include`, `@load`), `PROCINFO` or `ENVIRON` tricks count.
fn awk_mutates(p: &str) -> bool {
    let mut code = String::new();
    let mut in_str = false;
    let mut esc = false;
    let mut in_re = false;
    for c in p.chars() {
        // A `/regex/` where an operand cannot precede it (start, `(`, `,`, `{`, `;`, `!`, `~`,
        // `&`, `|`, newline) is a regular expression: its `|` is alternation.
        if in_re {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '/' {
                in_re = false;
                code.push_str("/RE/");
            }
            continue;
        }
        if !in_str && c == '/' {
            let prev = code.trim_end().chars().last();
            if prev.is_none_or(|p| "(,{;!~&|\n".contains(p)) {
                in_re = true;
                continue;
            }
        }
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
    if code.contains("system") || code.contains('@') || code.contains("PROCINFO") {
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
