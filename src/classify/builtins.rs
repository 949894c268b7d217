//! Bash builtins. Bash evaluates more than it seems: arithmetic (`let`, `declare -i`),
//! subscripts in names (`read 'a[$(cmd)]'`, `test -v`), namerefs (`declare -n`); builtins
//! that assign (`read`, `mapfile`, `printf -v`, `getopts`, `declare`...) are assignments, and
//! the variable rules apply to their targets; builtins that run or load code (`eval`,
//! `source`, `trap`, `mapfile -C`, `enable -f`, `complete -C`, `bind -x`, `fc`) run code.
//! Source: bash(1), "SHELL BUILTIN COMMANDS".

use super::options::{self, Spec};
use super::rules::{env_denied, nested_judgement, shell_variable_denied};
use super::walk::{is_identifier, literal_arith, Arg, Judgement, Walker};
use super::Risk;

/// `None` when `prog` is not a builtin handled here.
pub fn judge(w: &mut Walker, prog: &str, args: &[Arg]) -> Option<Judgement> {
    let no = |why: String| Some(Judgement::mutating(prog, Risk::High, why));
    let texts = || args.iter().filter_map(Arg::plain);
    match prog {
        "eval" => {
            if args.iter().any(Arg::is_dynamic) {
                let fetch = args.iter().any(|a| a.fetches);
                return Some(Judgement::mutating(
                    prog,
                    if fetch { Risk::Critical } else { Risk::High },
                    if fetch {
                        "evaluates downloaded code: remote code execution"
                    } else {
                        "evaluates text computed at run time"
                    },
                ));
            }
            let text = texts().collect::<Vec<_>>().join(" ");
            let e = w.nested(&text, "eval text");
            Some(nested_judgement(prog, e, "eval"))
        }
        "source" | "." => {
            let fetch = args.iter().any(|a| a.fetches)
                || texts().any(|p| !p.starts_with('-') && w.downloaded(p));
            Some(Judgement::mutating(
                prog,
                if fetch { Risk::Critical } else { Risk::High },
                if fetch {
                    "sources downloaded code: remote code execution"
                } else {
                    "sources a file whose content is unknown"
                },
            ))
        }
        "alias" => {
            if args
                .iter()
                .all(|a| a.plain().is_some_and(|t| !t.contains('=')))
            {
                Some(Judgement::ro(prog, "builtin alias: lists aliases"))
            } else {
                no("defines an alias (can rename commands)".into())
            }
        }
        "trap" => {
            let t: Vec<Option<&str>> = args.iter().map(Arg::plain).collect();
            if t.is_empty() || t.iter().all(|x| matches!(x, Some("-p" | "-l" | "-P"))) {
                return Some(Judgement::ro(prog, "builtin trap: lists traps"));
            }
            match t.first().copied().flatten() {
                Some(handler) if !handler.starts_with('-') => {
                    let e = w.nested(handler, "trap handler");
                    let mut j = nested_judgement(prog, e, "trap handler");
                    j.read_only = false;
                    j.risk = j.risk.max(Risk::High);
                    j.reason = format!("trap sets code to run later; {}", j.reason);
                    Some(j)
                }
                _ => no("trap with a computed handler".into()),
            }
        }
        "read" => assigns(
            prog,
            args,
            "-a= -d= -e -i= -n= -N= -p= -r -s -t= -u=",
            &["-a"],
            None,
        ),
        "mapfile" | "readarray" => assigns(prog, args, "@max=1 -d= -n= -O= -s= -t -u=", &[], None),
        "printf" => assigns(prog, args, "@order -v=", &["-v"], Some(0)),
        "getopts" => {
            let target = args.get(1).and_then(Arg::plain);
            match target.map(shell_variable_denied) {
                Some(None) => Some(Judgement::ro(
                    prog,
                    "builtin getopts: assigns a plain variable",
                )),
                Some(Some(why)) => no(why),
                None => no("getopts with a computed target".into()),
            }
        }
        "declare" | "typeset" | "local" | "export" | "readonly" => Some(declare(prog, args)),
        "unset" => {
            for a in args {
                match a.plain() {
                    Some("-f" | "-v" | "-n") => {}
                    Some(n) if is_identifier(n) => {}
                    _ => {
                        return no(format!(
                            "unset {}: a subscript or computed name is evaluated",
                            a.raw
                        ))
                    }
                }
            }
            Some(Judgement::ro(prog, "builtin unset: plain names"))
        }
        "set" => {
            let mut it = args.iter();
            while let Some(a) = it.next() {
                let Some(t) = a.plain() else {
                    return no("set with computed options".into());
                };
                if t == "--" || t == "-" {
                    break;
                }
                if !t.starts_with(['-', '+']) {
                    break; // positional parameters
                }
                let (flags, takes_name) = match t[1..].strip_suffix('o') {
                    Some(f) => (f, true),
                    None => (&t[1..], false),
                };
                if t.len() < 2 || flags.chars().any(|c| !"euxvfCnBbhm".contains(c)) {
                    return no(format!("set {t} not known to be harmless"));
                }
                if takes_name {
                    match it.next().and_then(Arg::plain) {
                        Some(
                            "pipefail" | "errexit" | "nounset" | "xtrace" | "noglob" | "noclobber"
                            | "verbose" | "noexec",
                        )
                        | None => {}
                        Some(o) => return no(format!("set -o {o} changes how later text is read")),
                    }
                }
            }
            Some(Judgement::ro(
                prog,
                "builtin set: shell options and positional parameters",
            ))
        }
        "shopt" => {
            if texts().any(|t| t.starts_with('-') && t.contains(['s', 'u']))
                || args.iter().any(Arg::is_dynamic)
            {
                no("shopt -s/-u changes how later text is parsed and expanded".into())
            } else {
                Some(Judgement::ro(prog, "builtin shopt: query"))
            }
        }
        "let" => {
            if args.iter().all(|a| a.plain().is_some_and(literal_arith)) {
                Some(Judgement::ro(prog, "let with literal arithmetic"))
            } else {
                no("let evaluates arithmetic on names and subscripts: code".into())
            }
        }
        "test" | "[" => Some(test(prog, args)),
        "hash" => {
            if args.iter().all(|a| {
                matches!(a.plain(), Some("-l" | "-t"))
                    || a.plain().is_some_and(|t| !t.starts_with('-'))
            }) && !texts().any(|t| t == "-p" || t == "-d" || t == "-r")
                && (args.is_empty() || texts().any(|t| t == "-t" || t == "-l"))
            {
                Some(Judgement::ro(prog, "builtin hash: query"))
            } else {
                no("hash changes command lookup".into())
            }
        }
        "ulimit" => {
            if args
                .iter()
                .all(|a| a.plain().is_some_and(|t| t.starts_with('-')))
            {
                Some(Judgement::ro(prog, "builtin ulimit: query"))
            } else {
                no("ulimit sets a limit".into())
            }
        }
        "history" if args.is_empty() => Some(Judgement::ro(prog, "builtin history: lists")),
        "enable" | "complete" | "compgen" | "compopt" | "bind" | "fc" | "history" | "coproc"
        | "suspend" | "logout" | "kill" => no(format!(
            "builtin {prog} loads, runs or changes code or processes"
        )),
        _ => None,
    }
}

/// A builtin whose operands (and the values of `target_opts`) are variable names it assigns.
/// `format_first`: printf's first operand is its format, not a target.
fn assigns(
    prog: &str,
    args: &[Arg],
    table: &'static str,
    target_opts: &[&str],
    format_first: Option<usize>,
) -> Option<Judgement> {
    let spec = Spec::parse(prog_static(prog), table);
    let p = match options::parse(&spec, args, false) {
        Ok(p) => p,
        Err(e) => return Some(Judgement::mutating(prog, Risk::High, format!("table {e}"))),
    };
    if let Err(e) = options::check_operands(&spec, &p) {
        return Some(Judgement::mutating(prog, Risk::High, format!("table {e}")));
    }
    let mut targets: Vec<Option<&str>> = p
        .opts
        .iter()
        .filter(|o| target_opts.contains(&o.name.as_str()))
        .map(|o| o.value.as_ref().and_then(|v| v.text()))
        .collect();
    if format_first.is_none() {
        targets.extend(p.operands.iter().map(|a| a.plain()));
    }
    for t in targets {
        let why = match t {
            Some(n) => shell_variable_denied(n),
            None => Some("assigns a variable whose name is computed".into()),
        };
        if let Some(why) = why {
            return Some(Judgement::mutating(
                prog,
                Risk::High,
                format!("builtin {prog}: {why}"),
            ));
        }
    }
    Some(Judgement::ro(
        prog,
        format!("builtin {prog}: table options; assigns plain variables only"),
    ))
}

fn prog_static(prog: &str) -> &'static str {
    match prog {
        "read" => "read",
        "printf" => "printf",
        "mapfile" => "mapfile",
        _ => "readarray",
    }
}

/// `declare`/`local`/`typeset`/`export`/`readonly`: `-n` (nameref) and `-i` (arithmetic on
/// every later assignment) are code; exported names follow the environment rule, others the
/// shell-variable rule.
fn declare(prog: &str, args: &[Arg]) -> Judgement {
    let no = |why: String| Judgement::mutating(prog, Risk::High, why);
    let mut export = prog == "export";
    for a in args {
        let t = a.plain();
        if let Some(t) = t {
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 && !t.contains('=') {
                if t[1..].chars().any(|c| !"aArxglutfFp".contains(c)) {
                    return no(format!("{prog} {t}: namerefs (-n), integer (-i) or unknown attributes evaluate code"));
                }
                export |= t.starts_with('-') && t.contains('x');
                // `export -f`, `declare -fx`: a function in the environment of child shells.
                if t.contains('f') && (export || prog == "export") {
                    return no(format!("{prog} {t} exports a function to child shells"));
                }
                continue;
            }
        }
        // The name: static text before `=`, or the raw source's (a computed value).
        let name = match t {
            Some(t) => t.split('=').next().unwrap_or(t).to_string(),
            None => match a.raw.split_once('=') {
                Some((n, _)) if is_identifier(n) => n.to_string(),
                _ => return no(format!("{prog} {}: computed name", a.raw)),
            },
        };
        let why = if export {
            env_denied(
                &name,
                a.plain()
                    .and_then(|t| t.split_once('='))
                    .map(|(_, v)| Arg::lit(v))
                    .as_ref()
                    .unwrap_or(&Arg {
                        raw: a.raw.clone(),
                        ..Arg::default()
                    }),
            )
        } else {
            None
        };
        if let Some(why) = why.or_else(|| shell_variable_denied(&name)) {
            return no(format!("builtin {prog}: {why}"));
        }
    }
    Judgement::ro(
        prog,
        format!("builtin {prog}: plain variables with harmless names"),
    )
}

/// `test`/`[`: `-v NAME` evaluates NAME's subscript; a computed word could become `-v`. Safe
/// shapes: all words static (with `-v` only before plain names), or computed words only as the
/// operand of a static unary test or either side of a static binary test.
fn test(prog: &str, args: &[Arg]) -> Judgement {
    let mut words: &[Arg] = args;
    if prog == "[" {
        match words.last().and_then(Arg::plain) {
            Some("]") => words = &words[..words.len() - 1],
            _ => return Judgement::mutating(prog, Risk::High, "[ without ]"),
        }
    }
    if words.iter().any(|a| a.text.is_none() && a.glob) {
        return Judgement::mutating(
            prog,
            Risk::High,
            format!("{prog}: an unquoted expansion can split into -v and a subscript"),
        );
    }
    let t: Vec<Option<&str>> = words.iter().map(Arg::plain).collect();
    let unary = |o: Option<&str>| {
        o.is_some_and(|o| {
            o.len() == 2 && o.starts_with('-') && "abcdefghknoprstuwxzGLNOS".contains(&o[1..])
        })
    };
    let binary = |o: Option<&str>| {
        matches!(
            o,
            Some(
                "=" | "=="
                    | "!="
                    | "<"
                    | ">"
                    | "-eq"
                    | "-ne"
                    | "-lt"
                    | "-le"
                    | "-gt"
                    | "-ge"
                    | "-nt"
                    | "-ot"
                    | "-ef"
            )
        )
    };
    let ok = match t.as_slice() {
        [] | [_] => true,
        [op, x] => {
            unary(*op)
                || *op == Some("!") && *x != Some("-v")
                || matches!(*op, Some("-v" | "-R")) && x.is_some_and(is_identifier)
        }
        [Some("!"), op, _] if unary(*op) => true,
        [_, op, _] => binary(*op),
        _ => {
            t.iter().all(Option::is_some)
                && t.windows(2)
                    .all(|p| p[0] != Some("-v") || p[1].is_some_and(is_identifier))
        }
    };
    let v_ok = t
        .windows(2)
        .all(|p| p[0] != Some("-v") && p[0] != Some("-R") || p[1].is_some_and(is_identifier));
    if ok && v_ok {
        Judgement::ro(prog, format!("builtin {prog}: tests without evaluation"))
    } else {
        Judgement::mutating(
            prog,
            Risk::High,
            format!("{prog}: -v evaluates a subscript, or a computed word could become -v"),
        )
    }
}
