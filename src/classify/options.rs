//! One generic option parser, GNU `getopt_long` style (getopt(3), "Extensions" and
//! getopt_long(3)), used for every program in the tables (`tables.rs`).
//!
//! A table is a line of readable tokens, written once per program:
//!
//! - `-x` a short flag, `-x=` a short option with a required value (`-xVAL` or `-x VAL`),
//!   `-x?` an optional value (attached only: `-xVAL`);
//! - `--long`, `--long=` (required: `--long=VAL` or `--long VAL`), `--long?` (optional:
//!   `--long=VAL` only);
//! - `@num` accepts `-NUM` (`head -20`); `@order` stops option parsing at the first operand
//!   (POSIX order, as for programs with subcommands or a format first, like `printf`);
//! - `@pure` asserts that *no* option of the program writes, deletes or runs anything, so a
//!   word computed at run time (a glob such as `*`, `$x`) may stand anywhere;
//! - `@max=N` at most N operands (`uniq IN OUT` writes OUT); `@plus` operands must start
//!   with `+` (`date +%F`, never `date MMDDhhmm`).
//!
//! Parsing is what the program does: bundled short flags (`-la`), attached values (`-ao file`
//! is `-a -o file`, `-Ffile`), any unambiguous prefix of a long option (`--lin=5` is
//! `--lines=5`), `--` ends options, `-` is an operand. Matching a prefix against the table's
//! *safe subset* is sound: a prefix that also fits an option outside the table is ambiguous to
//! getopt_long (an error, nothing runs), and one fitting only an outside option does not match
//! here. Anything not in the table — including options never heard of — is a rejection:
//! default-deny.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::walk::Arg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    No,
    Required,
    Optional,
}

/// A program's table, parsed from its line.
#[derive(Debug, Default)]
pub struct Spec {
    pub name: &'static str,
    shorts: Vec<(char, Takes)>,
    longs: Vec<(&'static str, Takes)>,
    pub num: bool,
    pub order: bool,
    pub pure: bool,
    pub max_operands: Option<usize>,
    pub plus_operands: bool,
    /// `@args`: no options at all; every word is an operand (`echo`, `true`).
    pub args_only: bool,
    /// `@go`: Go's flag package: `-name` and `--name` are the same long option, exact names
    /// only, no bundling.
    pub go: bool,
}

impl Spec {
    /// Parse a table line (see the module docs). Unknown `@` directives panic in tests only
    /// (the tables are compiled in; `tables_parse` checks every one).
    pub fn parse(name: &'static str, line: &'static str) -> Spec {
        let mut s = Spec {
            name,
            ..Spec::default()
        };
        for tok in line.split_whitespace() {
            if let Some(d) = tok.strip_prefix('@') {
                match d {
                    "num" => s.num = true,
                    "order" => s.order = true,
                    "pure" => s.pure = true,
                    "plus" => s.plus_operands = true,
                    "go" => s.go = true,
                    "args" => {
                        s.args_only = true;
                        s.pure = true;
                    }
                    _ => {
                        if let Some(n) = d.strip_prefix("max=").and_then(|n| n.parse().ok()) {
                            s.max_operands = Some(n);
                        } else {
                            debug_assert!(false, "table {name}: unknown directive {tok}");
                        }
                    }
                }
                continue;
            }
            let (body, takes) = if let Some(b) = tok.strip_suffix('=') {
                (b, Takes::Required)
            } else if let Some(b) = tok.strip_suffix('?') {
                (b, Takes::Optional)
            } else {
                (tok, Takes::No)
            };
            if let Some(l) = body.strip_prefix("--") {
                s.longs.push((l, takes));
            } else if s.go {
                s.longs.push((body.trim_start_matches('-'), takes));
            } else if let Some(c) = body.strip_prefix('-') {
                let mut cs = c.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => s.shorts.push((c, takes)),
                    _ => debug_assert!(false, "table {name}: bad short option {tok}"),
                }
            } else {
                debug_assert!(false, "table {name}: bad token {tok}");
            }
        }
        s
    }

    fn short(&self, c: char) -> Option<Takes> {
        self.shorts.iter().find(|(s, _)| *s == c).map(|(_, t)| *t)
    }

    /// Exact match only. getopt_long would also accept an unambiguous abbreviation, but an
    /// abbreviation of a listed option may itself be the exact name of an unlisted one
    /// (`rg --pre` vs `--pretty`), so abbreviations are reported and refused.
    fn long(&self, name: &str) -> Result<(&'static str, Takes), String> {
        if let Some((l, t)) = self.longs.iter().find(|(l, _)| *l == name) {
            return Ok((l, *t));
        }
        match self.longs.iter().find(|(l, _)| l.starts_with(name) && !name.is_empty()) {
            Some((l, _)) => Err(format!(
                "--{name} is an abbreviation (getopt_long would take it for --{l} or for an unlisted option)"
            )),
            None => Err(format!("--{name} is not in the table")),
        }
    }

    /// This table plus `other`'s options (global options accepted after a subcommand).
    pub fn merged(&self, other: &Spec) -> Spec {
        Spec {
            name: self.name,
            shorts: self.shorts.iter().chain(&other.shorts).copied().collect(),
            longs: self.longs.iter().chain(&other.longs).copied().collect(),
            num: self.num,
            order: self.order,
            pure: self.pure,
            max_operands: self.max_operands,
            plus_operands: self.plus_operands,
            args_only: self.args_only,
            go: self.go,
        }
    }

    /// The short options that take no value, for property tests.
    pub fn short_flags(&self) -> Vec<String> {
        self.shorts
            .iter()
            .filter(|(_, t)| *t == Takes::No)
            .map(|(c, _)| format!("-{c}"))
            .collect()
    }

    /// Every option the table knows, for property tests.
    pub fn known(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shorts.iter().map(|(c, _)| format!("-{c}")).collect();
        v.extend(self.longs.iter().map(|(l, _)| format!("--{l}")));
        if self.go {
            v.extend(self.longs.iter().map(|(l, _)| format!("-{l}")));
        }
        v
    }
}

/// One parsed option: its canonical spelling and its value word, if any.
#[derive(Debug, Clone)]
pub struct Opt<'a> {
    pub name: String,
    pub value: Option<Value<'a>>,
}

/// An option's value: attached text, or the next word.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Attached(String),
    Word(&'a Arg),
}

impl Value<'_> {
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Attached(s) => Some(s),
            Value::Word(a) => a.plain(),
        }
    }
}

/// The words of a command, split the way the program splits them.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub opts: Vec<Opt<'a>>,
    pub operands: Vec<&'a Arg>,
    /// Index in the input just past the last word consumed (with `@order`, the first operand
    /// and everything after it are in `rest`).
    pub rest: &'a [Arg],
}

impl Parsed<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|o| o.name == name)
    }
    pub fn value(&self, name: &str) -> Option<&Value<'_>> {
        self.opts
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.value.as_ref())
    }
}

/// Parse `args` against `spec`. `Err` names the word that is not known to be read-only.
/// With `stop_at_operand`, the first operand ends parsing and it and the rest are returned in
/// `rest` (used for global options before a subcommand); otherwise `@order` decides.
pub fn parse<'a>(
    spec: &Spec,
    args: &'a [Arg],
    stop_at_operand: bool,
) -> Result<Parsed<'a>, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_operands = spec.args_only;
    while i < args.len() {
        let a = &args[i];
        let Some(t) = a.plain() else {
            // A computed word may become an option, or several words.
            if only_operands || a.safe_prefix || spec.pure {
                if stop_at_operand {
                    p.rest = &args[i..];
                    return Ok(p);
                }
                p.operands.push(a);
                i += 1;
                if spec.order {
                    only_operands = true;
                }
                continue;
            }
            return Err(format!(
                "{}: word {} is computed and could be an option",
                spec.name, a.raw
            ));
        };
        if only_operands || t == "-" || !t.starts_with('-') {
            if stop_at_operand {
                p.rest = &args[i..];
                return Ok(p);
            }
            p.operands.push(a);
            if spec.order {
                only_operands = true;
            }
            i += 1;
            continue;
        }
        if t == "--" {
            only_operands = true;
            i += 1;
            if stop_at_operand {
                p.rest = &args[i..];
                return Ok(p);
            }
            continue;
        }
        let long = t.strip_prefix("--").or_else(|| spec.go.then(|| &t[1..]));
        if let Some(long) = long {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let (full, takes) = if spec.go {
                spec.longs
                    .iter()
                    .find(|(l, _)| *l == name)
                    .copied()
                    .ok_or_else(|| format!("{}: -{name} is not in the table", spec.name))?
            } else {
                spec.long(name).map_err(|e| format!("{}: {e}", spec.name))?
            };
            let value = match (takes, attached) {
                (Takes::No, Some(_)) => {
                    return Err(format!("{}: --{full} takes no value", spec.name))
                }
                (Takes::No, None) | (Takes::Optional, None) => None,
                (_, Some(v)) => Some(Value::Attached(v.to_string())),
                (Takes::Required, None) => {
                    i += 1;
                    match args.get(i) {
                        Some(w) => Some(Value::Word(w)),
                        None => return Err(format!("{}: --{full} needs a value", spec.name)),
                    }
                }
            };
            p.opts.push(Opt {
                name: format!("--{full}"),
                value,
            });
            i += 1;
            continue;
        }
        let body = &t[1..];
        if spec.num && body.chars().all(|c| c.is_ascii_digit()) {
            p.opts.push(Opt {
                name: "-NUM".into(),
                value: Some(Value::Attached(body.to_string())),
            });
            i += 1;
            continue;
        }
        for (k, c) in body.char_indices() {
            let Some(takes) = spec.short(c) else {
                return Err(format!("{}: option -{c} is not in the table", spec.name));
            };
            let rest = &body[k + c.len_utf8()..];
            match takes {
                Takes::No => p.opts.push(Opt {
                    name: format!("-{c}"),
                    value: None,
                }),
                Takes::Optional => {
                    p.opts.push(Opt {
                        name: format!("-{c}"),
                        value: (!rest.is_empty()).then(|| Value::Attached(rest.to_string())),
                    });
                    break;
                }
                Takes::Required => {
                    let value = if rest.is_empty() {
                        i += 1;
                        match args.get(i) {
                            Some(w) => Value::Word(w),
                            None => return Err(format!("{}: -{c} needs a value", spec.name)),
                        }
                    } else {
                        Value::Attached(rest.to_string())
                    };
                    p.opts.push(Opt {
                        name: format!("-{c}"),
                        value: Some(value),
                    });
                    break;
                }
            }
        }
        i += 1;
    }
    p.rest = &args[args.len()..];
    Ok(p)
}

/// Check the operand rules of a table after a successful parse.
pub fn check_operands(spec: &Spec, p: &Parsed<'_>) -> Result<(), String> {
    if let Some(max) = spec.max_operands {
        if p.operands.len() > max {
            return Err(format!(
                "{}: more than {max} operand(s) (the extra one is written or changes state)",
                spec.name
            ));
        }
        if p.operands.iter().any(|a| a.plain().is_none() && !spec.pure) {
            return Err(format!(
                "{}: computed operands could be more words",
                spec.name
            ));
        }
    }
    if spec.plus_operands
        && p.operands
            .iter()
            .any(|a| !a.plain().is_some_and(|t| t.starts_with('+')))
    {
        return Err(format!(
            "{}: an operand that does not start with + sets state",
            spec.name
        ));
    }
    Ok(())
}

/// Parsed tables by name, built once.
pub fn table(name: &str) -> Option<&'static Spec> {
    static TABLES: OnceLock<HashMap<&'static str, Spec>> = OnceLock::new();
    TABLES
        .get_or_init(|| {
            super::tables::SIMPLE
                .iter()
                .chain(super::tables::VERBS.iter())
                .map(|(n, l)| (*n, Spec::parse(n, l)))
                .collect()
        })
        .get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ws: &[&str]) -> Vec<Arg> {
        ws.iter().map(|w| Arg::lit(w)).collect()
    }

    #[test]
    fn getopt_long_shapes() {
        let s = Spec::parse("t", "-a -o= -F= -n? --output= --lines= --color? --all @num");
        let a = args(&[
            "-ao",
            "file",
            "-Fx",
            "--output=f",
            "--lines",
            "5",
            "--color",
            "-20",
            "-",
            "op",
        ]);
        let p = parse(&s, &a, false).unwrap();
        let names: Vec<_> = p.opts.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["-a", "-o", "-F", "--output", "--lines", "--color", "-NUM"]
        );
        assert_eq!(p.value("-o").unwrap().text(), Some("file"));
        assert_eq!(p.value("-F").unwrap().text(), Some("x"));
        assert_eq!(p.value("--lines").unwrap().text(), Some("5"));
        assert_eq!(p.operands.len(), 2);
        assert!(parse(&s, &args(&["--x"]), false).is_err());
        assert!(parse(&s, &args(&["-az"]), false).is_err());
        assert!(parse(&s, &args(&["--all=1"]), false).is_err());
        // `--` ends options.
        let dd = args(&["--", "-z"]);
        let p = parse(&s, &dd, false).unwrap();
        assert_eq!(p.operands.len(), 1);
        // Abbreviations are refused: `--pre` may be an unlisted option, not `--pretty`.
        let s = Spec::parse("t", "--check --pretty");
        for w in ["--c", "--ch", "--pre", "--o=x"] {
            assert!(parse(&s, &args(&[w]), false).is_err(), "{w}");
        }
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn every_table_parses() {
        for (name, line) in super::super::tables::SIMPLE
            .iter()
            .chain(super::super::tables::VERBS)
        {
            let s = Spec::parse(name, line);
            assert_eq!(s.name, *name);
        }
    }
}
