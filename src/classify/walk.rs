//! The tree walk: parse with brush-parser, visit every node, turn each simple command into an
//! argv of [`Arg`]s and hand it to `rules::judge`. Substitutions found in any word are
//! classified as the commands they are.

use std::collections::HashMap;

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::ParserOptions;

use super::{critical, rules, Classification, CommandVerdict, Dialect, Facts, Risk};

/// Nested texts (`bash -c`, `eval`, substitutions) deeper than this are not followed.
const MAX_DEPTH: usize = 12;
/// Upper bound on simple commands judged (function calls can multiply work).
const MAX_COMMANDS: usize = 2048;
/// Upper bound on nested texts parsed (substitutions, `bash -c`, `eval`): each is a parser run.
const MAX_NESTED_TEXTS: usize = 512;
/// Nesting (brackets, substitutions, `if`/`while`/`for`/`case`... keywords) allowed across all
/// nested texts together, checked before the parser recurses. brush-parser 0.4's recursive
/// descent overflows an 8 MiB stack at about 500 levels of `{ }`/`if`/`while` in a debug build
/// (about 1,600 in release); a 2 MiB thread (test threads) holds about a quarter of that. 64
/// keeps well below both, with room for the walk; past it the text is opaque (mutating).
pub const MAX_NESTING: usize = 64;
/// Candidate working directories tracked for `cd` before `git` (see [`Walker::cwds`]).
const MAX_CWDS: usize = 8;
/// Why a word holding a quoted substitution is never read-only (see `Walker::arg`).
const DEFERRED_TEXT: &str =
    "holds a command substitution bash may run if it evaluates the text later; not read-only";

/// One word of a simple command, as far as it is known before run time.
#[derive(Debug, Clone, Default)]
pub struct Arg {
    /// The unquoted value when the word has no expansions; `None` when computed at run time.
    pub text: Option<String>,
    /// The source text of the word.
    pub raw: String,
    /// Unquoted glob or brace-expansion characters: the word may become other words.
    pub glob: bool,
    /// A substitution inside the word fetches from the network (`curl`, `wget`...).
    pub fetches: bool,
    /// The word cannot begin with `-` whatever it expands to (a static, non-dash prefix).
    pub safe_prefix: bool,
}

impl Arg {
    /// A static word.
    pub fn lit(s: &str) -> Arg {
        Arg {
            text: Some(s.to_string()),
            raw: s.to_string(),
            glob: false,
            fetches: false,
            safe_prefix: !s.starts_with('-'),
        }
    }

    /// The static value, if the word is static and free of globs.
    pub fn plain(&self) -> Option<&str> {
        if self.glob {
            None
        } else {
            self.text.as_deref()
        }
    }

    /// Could this word expand into an option (or several words)?
    pub fn is_dynamic(&self) -> bool {
        self.plain().is_none()
    }
}

/// Aggregated effect of part of the walk.
#[derive(Debug, Clone, Copy)]
pub struct Effect {
    pub read_only: bool,
    pub risk: Risk,
}

/// What the rules say about one simple command.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub program: String,
    pub read_only: bool,
    pub risk: Risk,
    pub reason: String,
    /// The program reads code from stdin (`sh`, `python` without a script): remote code when
    /// fed by a network fetch.
    pub runs_stdin: bool,
}

impl Judgement {
    pub fn ro(program: &str, reason: impl Into<String>) -> Judgement {
        Judgement {
            program: program.to_string(),
            read_only: true,
            risk: Risk::Low,
            reason: reason.into(),
            runs_stdin: false,
        }
    }

    pub fn mutating(program: &str, risk: Risk, reason: impl Into<String>) -> Judgement {
        Judgement {
            program: program.to_string(),
            read_only: false,
            risk: risk.max(Risk::High),
            reason: reason.into(),
            runs_stdin: false,
        }
    }
}

pub struct Walker<'f> {
    pub facts: &'f dyn Facts,
    /// Where commands may run relative to the caller's cwd: every static `cd` target seen so
    /// far, joined with every earlier candidate; `None` once a `cd` goes somewhere unknown.
    pub cwds: Option<Vec<String>>,
    /// Files a fetcher (`curl -o`, `wget -O`, `curl > f`) wrote; `"*"` for an unknown name.
    pub downloads: Vec<String>,
    /// Nesting used by the texts being walked (see [`MAX_NESTING`]).
    nest_used: usize,
    /// Effect of each function body, computed once (calls cannot multiply work).
    func_effects: HashMap<String, Effect>,
    exhausted: bool,
    /// Programs being judged inside one another (wrappers, `find -exec`, `xargs`).
    pub judge_depth: usize,
    /// Here-documents and here-strings seen that hold a destructive SQL statement.
    sql_inputs: usize,
    nested_texts: usize,
    opts: ParserOptions,
    functions: HashMap<String, ast::FunctionBody>,
    calling: Vec<String>,
    pub verdicts: Vec<CommandVerdict>,
    /// Findings outside simple commands: (risk, reason).
    pub taints: Vec<(Risk, String)>,
    depth: usize,
    judged: usize,
}

/// Parse and classify a whole text.
pub fn classify_text(text: &str, dialect: Dialect, facts: &dyn Facts) -> Classification {
    let mut w = Walker {
        facts,
        cwds: Some(vec![".".to_string()]),
        downloads: Vec::new(),
        nest_used: 0,
        func_effects: HashMap::new(),
        exhausted: false,
        judge_depth: 0,
        sql_inputs: 0,
        nested_texts: 0,
        opts: ParserOptions::default(),
        functions: HashMap::new(),
        calling: Vec::new(),
        verdicts: Vec::new(),
        taints: Vec::new(),
        depth: 0,
        judged: 0,
    };
    let parse_error = match dialect {
        Dialect::Bash => w.text(text).err(),
        Dialect::Sh => {
            // The real `sh` reads this text: bash's reading holds only for plain words.
            // Its findings are recorded on the walker; a parse failure is one of them.
            w.nested_foreign(text, "sh");
            None
        }
    };
    let mut reasons: Vec<String> = w.taints.iter().map(|(_, r)| r.clone()).collect();
    let mut read_only =
        parse_error.is_none() && w.taints.is_empty() && w.verdicts.iter().all(|v| v.read_only);
    let mut risk = w
        .verdicts
        .iter()
        .map(|v| v.risk)
        .chain(w.taints.iter().map(|t| t.0))
        .max()
        .unwrap_or(Risk::Low);
    if let Some(e) = &parse_error {
        reasons.push(format!("not parseable as bash ({e}): treated as mutating"));
        risk = risk.max(Risk::High);
    }
    if !read_only {
        risk = risk.max(Risk::High);
    } else if risk > Risk::Low {
        read_only = false;
    }
    Classification {
        read_only,
        risk,
        commands: w.verdicts,
        reasons,
        parse_error,
    }
}

/// How deeply the parser will recurse for `text`, measured before parsing (brush-parser is a
/// recursive descent parser). A small lexer keeps a stack of what is open — `(`, `$(`, `{`,
/// `${`, `[`, backquotes, double quotes, and the compound keywords `if while until for select
/// case function` — and pops only on the matching close (`)` of a case pattern closes
/// nothing), so the count cannot be driven down while the parser's depth grows. Single-quoted
/// text and comments nest nothing. Linear time; returns the deepest stack seen.
pub fn nesting(text: &str) -> usize {
    #[derive(PartialEq, Clone, Copy)]
    enum F {
        Paren,
        Brace,
        Bracket,
        Back,
        Dq,
        Kw,
    }
    let b = text.as_bytes();
    let mut st: Vec<F> = Vec::new();
    let mut max = 0usize;
    let mut i = 0;
    let word_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let top = st.last().copied();
        if top == Some(F::Dq) {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    st.pop();
                }
                b'$' if matches!(b.get(i + 1), Some(b'(' | b'{')) => {
                    st.push(if b[i + 1] == b'(' { F::Paren } else { F::Brace });
                    i += 1;
                }
                b'`' => st.push(F::Back),
                _ => {}
            }
            max = max.max(st.len());
            i += 1;
            continue;
        }
        match c {
            b'\\' => i += 1,
            b'\'' => {
                while i + 1 < b.len() && b[i + 1] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'"' => st.push(F::Dq),
            b'#' if i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b';' | b'&' | b'|') => {
                while i + 1 < b.len() && b[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'(' => st.push(F::Paren),
            b'{' => st.push(F::Brace),
            b'[' => st.push(F::Bracket),
            b')' if top == Some(F::Paren) => {
                st.pop();
            }
            b'}' if top == Some(F::Brace) => {
                st.pop();
            }
            b']' if top == Some(F::Bracket) => {
                st.pop();
            }
            b'`' => {
                if top == Some(F::Back) {
                    st.pop();
                } else {
                    st.push(F::Back);
                }
            }
            c if c.is_ascii_lowercase() && (i == 0 || !word_char(b[i - 1])) => {
                let start = i;
                while i < b.len() && word_char(b[i]) {
                    i += 1;
                }
                match &text[start..i] {
                    "if" | "while" | "until" | "for" | "select" | "case" | "function" => {
                        st.push(F::Kw)
                    }
                    "fi" | "done" | "esac" if st.last() == Some(&F::Kw) => {
                        st.pop();
                    }
                    _ => {}
                }
                max = max.max(st.len());
                continue;
            }
            _ => {}
        }
        max = max.max(st.len());
        i += 1;
    }
    max
}

/// Text that every shell (dash, zsh, ksh, fish, busybox sh, bash) reads the same way: words of
/// plain characters, single quotes without backslashes, double quotes without `$ ` \ !`,
/// separated by blanks, `;`, `|`, `&&`, `||` and newlines. No expansions, globs, redirections,
/// comments or shell-specific syntax (`$'…'`, zsh `=cmd`, fish `(cmd)`/`{a,b}`/`^`).
pub fn plain_for_every_shell(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    let mut word_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == '\'' {
                        closed = true;
                        break;
                    }
                    if d == '\\' {
                        return false;
                    }
                }
                if !closed {
                    return false;
                }
                word_start = false;
            }
            '"' => {
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == '"' {
                        closed = true;
                        break;
                    }
                    if matches!(d, '$' | '`' | '\\' | '!') {
                        return false;
                    }
                }
                if !closed {
                    return false;
                }
                word_start = false;
            }
            ' ' | '\t' | '\n' | ';' | '|' => word_start = true,
            '&' => {
                if chars.peek() != Some(&'&') {
                    return false;
                }
                chars.next();
                word_start = true;
            }
            '=' if word_start => return false,
            c if c.is_ascii_alphanumeric()
                || matches!(c, '_' | '.' | '/' | ',' | ':' | '=' | '+' | '@' | '-') =>
            {
                word_start = false;
            }
            _ => return false,
        }
    }
    true
}

/// Is `expr` arithmetic that is a fixed literal (numbers and operators, no names, no
/// expansions)? Names are evaluated recursively by bash, and a value such as `a[$(cmd)]` runs
/// `cmd`, so anything else is code.
pub fn literal_arith(expr: &str) -> bool {
    expr.chars()
        .all(|c| c.is_ascii_digit() || c.is_whitespace() || "+-*/%()<>=!&|^~?:,".contains(c))
}

/// A plain shell variable name (no subscript, which bash evaluates as arithmetic).
pub fn is_identifier(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Walker<'_> {
    pub fn taint(&mut self, risk: Risk, reason: impl Into<String>) {
        self.taints.push((risk.max(Risk::High), reason.into()));
    }

    /// A mark for [`Walker::effect_since`].
    pub fn mark(&self) -> (usize, usize) {
        (self.verdicts.len(), self.taints.len())
    }

    /// The combined effect of everything recorded since `mark`.
    pub fn effect_since(&self, mark: (usize, usize)) -> Effect {
        let vs = self.verdicts.get(mark.0..).unwrap_or_default();
        let ts = self.taints.get(mark.1..).unwrap_or_default();
        let read_only = ts.is_empty() && vs.iter().all(|v| v.read_only);
        let risk = vs
            .iter()
            .map(|v| v.risk)
            .chain(ts.iter().map(|t| t.0))
            .max()
            .unwrap_or(Risk::Low);
        Effect { read_only, risk }
    }

    /// `cd`/`pushd`/`popd`: where later commands may run. A static `cd DIR` adds DIR joined
    /// with every candidate (earlier ones stay: a subshell or a failed `cd` leaves them);
    /// anything else makes the directory unknown.
    pub fn note_cd(&mut self, prog: &str, args: &[Arg]) {
        let ops: Vec<&Arg> = args
            .iter()
            .filter(|a| a.plain().is_none_or(|t| t == "-" || !t.starts_with('-')))
            .collect();
        // `~` and `~/dir` are passed on as written: the caller knows the home directory.
        let tilde = |a: &Arg| {
            let r = a.raw.as_str();
            let rest = r.strip_prefix('~')?;
            (rest.is_empty()
                || rest.starts_with('/')
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)))
            .then(|| r.to_string())
        };
        let target: Option<String> = match (prog, ops.as_slice()) {
            ("cd", []) => Some("~".into()),
            ("cd", [a]) => match a.plain() {
                Some(t) if !t.is_empty() && t != "-" => Some(t.to_string()),
                Some(_) => None,
                None => tilde(a),
            },
            _ => None,
        };
        let target = target.as_deref();
        self.cwds = match (self.cwds.take(), target) {
            (Some(mut cwds), Some(t)) => {
                let new: Vec<String> = cwds.iter().map(|c| super::programs::join(c, t)).collect();
                for n in new {
                    if !cwds.contains(&n) {
                        cwds.push(n);
                    }
                }
                (cwds.len() <= MAX_CWDS).then_some(cwds)
            }
            _ => None,
        };
    }

    /// Was `path` written by a fetcher earlier in this text (or by one whose output name is
    /// unknown)?
    pub fn downloaded(&self, path: &str) -> bool {
        let norm = |p: &str| p.trim_start_matches("./").to_string();
        self.downloads
            .iter()
            .any(|d| d == "*" || norm(d) == norm(path))
    }

    /// Did anything recorded since `mark` fetch from the network?
    fn fetched_since(&self, mark: (usize, usize)) -> bool {
        self.verdicts
            .get(mark.0..)
            .unwrap_or_default()
            .iter()
            .any(|v| rules::is_fetcher(&v.program))
    }

    /// Parse and walk nested text (a `bash -c` string, `eval` arguments, a substitution).
    /// Returns its effect; a parse failure or excessive depth is recorded as a taint.
    pub fn nested(&mut self, text: &str, what: &str) -> Effect {
        let mark = self.mark();
        self.nested_texts += 1;
        if self.nested_texts > MAX_NESTED_TEXTS {
            if self.nested_texts == MAX_NESTED_TEXTS + 1 {
                self.taint(Risk::High, "too many nested texts to analyse: opaque");
            }
        } else if self.depth >= MAX_DEPTH {
            self.taint(Risk::High, format!("{what} nested too deeply to follow"));
        } else {
            self.depth += 1;
            if let Err(e) = self.text(text) {
                self.taint(Risk::High, format!("{what} is not parseable ({e})"));
            }
            self.depth -= 1;
        }
        self.effect_since(mark)
    }

    /// Text that another shell (dash, zsh, fish, a remote login shell...) will read. Only
    /// plain text is read the way bash would; anything else is opaque. Bash's reading is still
    /// walked to raise the risk (e.g. to CRITICAL), never to lower it.
    pub fn nested_foreign(&mut self, text: &str, shell: &str) -> Effect {
        let mark = self.mark();
        let e = self.nested(text, &format!("{shell} text"));
        if !plain_for_every_shell(text) && e.read_only {
            self.taint(
                Risk::High,
                format!("text for {shell} is not plain words: {shell} may read it differently from bash (opaque)"),
            );
        }
        self.effect_since(mark)
    }

    fn text(&mut self, text: &str) -> Result<(), String> {
        let n = nesting(text);
        if self.nest_used + n > MAX_NESTING {
            return Err(format!(
                "nesting too deep to analyse (over {MAX_NESTING} levels): opaque"
            ));
        }
        self.nest_used += n;
        let r = self.parse_and_walk(text);
        self.nest_used -= n;
        r
    }

    fn parse_and_walk(&mut self, text: &str) -> Result<(), String> {
        let mut p = brush_parser::Parser::new(std::io::Cursor::new(text.as_bytes()), &self.opts);
        let program = p.parse_program().map_err(|e| e.to_string())?;
        // Every function defined anywhere counts, wherever it is called (loops can call a
        // definition that appears later in the text).
        for cc in &program.complete_commands {
            self.collect_functions_list(cc);
        }
        for cc in &program.complete_commands {
            self.list(cc);
        }
        Ok(())
    }

    fn collect_functions_list(&mut self, list: &ast::CompoundList) {
        for item in &list.0 {
            let and_or = &item.0;
            for p in
                std::iter::once(&and_or.first).chain(and_or.additional.iter().map(|a| match a {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => p,
                }))
            {
                for cmd in &p.seq {
                    self.collect_functions_cmd(cmd);
                }
            }
        }
    }

    fn collect_functions_cmd(&mut self, cmd: &ast::Command) {
        match cmd {
            ast::Command::Function(f) => {
                let name = static_word(&f.fname.value, &self.opts);
                match name {
                    Some(n) => {
                        self.functions.insert(n, f.body.clone());
                    }
                    None => self.taint(Risk::High, "defines a function with a computed name"),
                }
                self.collect_functions_compound(&f.body.0);
            }
            ast::Command::Compound(c, _) => self.collect_functions_compound(c),
            _ => {}
        }
    }

    fn collect_functions_compound(&mut self, c: &ast::CompoundCommand) {
        for list in compound_lists(c) {
            self.collect_functions_list(list);
        }
    }

    fn list(&mut self, list: &ast::CompoundList) {
        for item in &list.0 {
            let and_or = &item.0;
            self.pipeline(&and_or.first);
            for a in &and_or.additional {
                match a {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p),
                }
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline) {
        let mut fetched = false;
        let mut sql = false;
        for cmd in &p.seq {
            let mark = self.mark();
            let sql_inputs = self.sql_inputs;
            let runs_stdin = self.command(cmd);
            // `echo 'DROP TABLE t' | psql`: the statement reaches the client on stdin.
            let stage = self.verdicts.get(mark.0..).unwrap_or_default();
            let client = stage.iter().any(|v| critical::is_sql_client(&v.program));
            let stage_sql = stage
                .iter()
                .any(|v| v.argv.iter().any(|w| critical::destructive_sql(w)));
            if sql && client {
                self.taint(
                    Risk::Critical,
                    "pipes a destructive statement (DROP/TRUNCATE/DELETE) into a database client",
                );
            }
            sql |= self.sql_inputs > sql_inputs || stage_sql;
            if fetched && runs_stdin {
                self.taint(
                    Risk::Critical,
                    "pipes downloaded content into an interpreter: remote code execution",
                );
            }
            fetched |= self.fetched_since(mark);
        }
    }

    /// Walk one command; returns whether it executes code read from stdin.
    fn command(&mut self, cmd: &ast::Command) -> bool {
        match cmd {
            ast::Command::Simple(s) => return self.simple(s),
            ast::Command::Compound(c, redirects) => {
                self.compound(c);
                if let Some(r) = redirects {
                    for io in &r.0 {
                        if let Some((risk, why)) = self.redirect(io) {
                            self.taint(risk, why);
                        }
                    }
                }
            }
            // Definitions are walked where they are called.
            ast::Command::Function(_) => {}
            ast::Command::ExtendedTest(t, redirects) => {
                self.ext_test(&t.expr);
                if let Some(r) = redirects {
                    for io in &r.0 {
                        if let Some((risk, why)) = self.redirect(io) {
                            self.taint(risk, why);
                        }
                    }
                }
            }
        }
        false
    }

    fn ext_test(&mut self, e: &ast::ExtendedTestExpr) {
        use ast::ExtendedTestExpr as E;
        match e {
            E::And(a, b) | E::Or(a, b) => {
                self.ext_test(a);
                self.ext_test(b);
            }
            E::Not(a) | E::Parenthesized(a) => self.ext_test(a),
            E::UnaryTest(op, w) => {
                let a = self.arg(&w.value);
                if matches!(
                    op,
                    ast::UnaryPredicate::ShellVariableIsSetAndAssigned
                        | ast::UnaryPredicate::ShellVariableIsSetAndNameRef
                ) && !a.plain().is_some_and(is_identifier)
                {
                    self.taint(
                        Risk::High,
                        format!("[[ -v {} ]] evaluates a subscript: code", w.value),
                    );
                }
            }
            E::BinaryTest(op, a, b) => {
                let x = self.arg(&a.value);
                let y = self.arg(&b.value);
                use ast::BinaryPredicate as B;
                if matches!(
                    op,
                    B::ArithmeticEqualTo
                        | B::ArithmeticNotEqualTo
                        | B::ArithmeticLessThan
                        | B::ArithmeticLessThanOrEqualTo
                        | B::ArithmeticGreaterThan
                        | B::ArithmeticGreaterThanOrEqualTo
                ) {
                    for (arg, w) in [(x, a), (y, b)] {
                        if !arg.plain().is_some_and(literal_arith) {
                            self.taint(
                                Risk::High,
                                format!(
                                    "[[ {op} ]] evaluates {} as arithmetic: code unless a literal",
                                    w.value
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    fn compound(&mut self, c: &ast::CompoundCommand) {
        use ast::CompoundCommand as C;
        match c {
            C::Arithmetic(a) => self.arith(&a.expr.value),
            C::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arith(&e.value);
                }
                self.list(&f.body.list);
            }
            C::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.arg(&w.value);
                }
                self.list(&f.body.list);
            }
            C::CaseClause(cc) => {
                self.arg(&cc.value.value);
                for item in &cc.cases {
                    for p in &item.patterns {
                        self.arg(&p.value);
                    }
                    if let Some(l) = &item.cmd {
                        self.list(l);
                    }
                }
            }
            C::Coprocess(co) => {
                self.command(&co.body);
            }
            other => {
                for l in compound_lists(other) {
                    self.list(l);
                }
            }
        }
    }

    /// Arithmetic text: bash evaluates names recursively (`a[$(cmd)]` in a value runs cmd), so
    /// anything but a fixed literal is code. Substitutions inside are walked too.
    pub fn arith(&mut self, expr: &str) {
        if expr.contains("$(") || expr.contains('`') || expr.contains("${") {
            self.arg(expr);
        }
        if !literal_arith(expr) {
            self.taint(
                Risk::High,
                format!("arithmetic {expr:?} is evaluated by bash (names, subscripts): code"),
            );
        }
    }

    /// A simple command. Returns whether it runs code from stdin.
    fn simple(&mut self, s: &ast::SimpleCommand) -> bool {
        if self.judged >= MAX_COMMANDS {
            if !self.exhausted {
                self.exhausted = true;
                self.taint(Risk::High, "too many commands to analyse");
            }
            return false;
        }
        self.judged += 1;
        let mut argv: Vec<Arg> = Vec::new();
        let mut assigns: Vec<(String, Arg)> = Vec::new();
        let mut redirect_findings: Vec<(Risk, String)> = Vec::new();
        if let Some(prefix) = &s.prefix {
            for item in &prefix.0 {
                self.prefix_item(item, &mut argv, &mut assigns, &mut redirect_findings);
            }
        }
        if let Some(w) = &s.word_or_name {
            let a = self.arg(&w.value);
            argv.push(a);
        }
        if let Some(suffix) = &s.suffix {
            for item in &suffix.0 {
                self.prefix_item(item, &mut argv, &mut assigns, &mut redirect_findings);
            }
        }
        use ast::CommandPrefixOrSuffixItem as I;
        let stdin_texts: Vec<String> = s
            .prefix
            .iter()
            .flat_map(|p| p.0.iter())
            .chain(s.suffix.iter().flat_map(|x| x.0.iter()))
            .filter_map(|item| match item {
                I::IoRedirect(ast::IoRedirect::HereDocument(_, d)) => Some(d.doc.value.clone()),
                I::IoRedirect(ast::IoRedirect::HereString(_, w)) => {
                    Some(static_word(&w.value, &self.opts).unwrap_or_else(|| w.value.clone()))
                }
                _ => None,
            })
            .collect();
        if stdin_texts.iter().any(|t| critical::destructive_sql(t)) {
            self.sql_inputs += 1;
        }
        let mut judgement = if argv.is_empty() {
            if assigns.is_empty() && redirect_findings.is_empty() {
                Judgement::ro("", "redirections only")
            } else {
                Judgement::ro("", "shell variable assignment")
            }
        } else {
            let name = argv[0].plain().map(str::to_string);
            match name.and_then(|n| self.functions.get(&n).cloned().map(|b| (n, b))) {
                Some((n, body)) => self.call_function(&n, &body),
                None => rules::judge(self, &argv, false),
            }
        };
        // With a command, assignments are its environment; without, shell variables (which
        // are still exported if they already were).
        let only_read = argv.first().and_then(Arg::plain) == Some("read");
        for (name, value) in &assigns {
            let why = if argv.is_empty() {
                rules::shell_variable_denied(name)
            } else if only_read && name == "IFS" {
                None
            } else {
                rules::env_denied(name, value)
            };
            if let Some(why) = why {
                judgement.read_only = false;
                judgement.risk = judgement.risk.max(Risk::High);
                judgement.reason = format!("{}; {why}", judgement.reason);
            }
        }
        if critical::is_sql_client(&judgement.program)
            && stdin_texts.iter().any(|t| critical::destructive_sql(t))
        {
            judgement.read_only = false;
            judgement.risk = Risk::Critical;
            judgement.reason = format!(
                "{}; a here-document or here-string feeds it a destructive statement",
                judgement.reason
            );
        }
        // `bash <<EOF … EOF`: a shell reading a here-document runs it (never read-only; its
        // content raises the risk, read as bash — for other shells that only over-approximates).
        if judgement.runs_stdin && !stdin_texts.is_empty() && !judgement.read_only {
            for t in &stdin_texts {
                let e = self.nested(t, "here-document for a shell");
                judgement.risk = judgement.risk.max(e.risk);
            }
        }
        if rules::is_fetcher(&judgement.program) {
            for (_, why) in &redirect_findings {
                if let Some(path) = why.strip_prefix("redirects output to file ") {
                    self.downloads.push(path.to_string());
                } else if why.starts_with("redirects output to a computed path") {
                    self.downloads.push("*".into());
                }
            }
        }
        for (risk, why) in redirect_findings {
            judgement.read_only = false;
            judgement.risk = judgement.risk.max(risk).max(Risk::High);
            judgement.reason = format!("{}; {why}", judgement.reason);
        }
        let runs_stdin = judgement.runs_stdin;
        let mut words: Vec<String> = assigns
            .iter()
            .map(|(n, v)| format!("{n}={}", v.text.as_deref().unwrap_or(&v.raw)))
            .collect();
        words.extend(
            argv.iter()
                .map(|a| a.text.clone().unwrap_or_else(|| a.raw.clone())),
        );
        self.verdicts.push(CommandVerdict {
            program: judgement.program,
            argv: words,
            read_only: judgement.read_only,
            risk: if judgement.read_only {
                Risk::Low
            } else {
                judgement.risk.max(Risk::High)
            },
            reason: judgement.reason.trim_start_matches("; ").to_string(),
        });
        runs_stdin
    }

    fn call_function(&mut self, name: &str, body: &ast::FunctionBody) -> Judgement {
        if self.calling.iter().any(|c| c == name) || self.calling.len() >= MAX_DEPTH {
            return Judgement::mutating(name, Risk::High, "recursive function call");
        }
        if let Some(e) = self.func_effects.get(name).copied() {
            return function_judgement(name, e);
        }
        self.calling.push(name.to_string());
        let mark = self.mark();
        self.compound(&body.0);
        if let Some(r) = &body.1 {
            for io in &r.0 {
                if let Some((risk, why)) = self.redirect(io) {
                    self.taint(risk, why);
                }
            }
        }
        self.calling.pop();
        let e = self.effect_since(mark);
        self.func_effects.insert(name.to_string(), e);
        function_judgement(name, e)
    }

    fn prefix_item(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        argv: &mut Vec<Arg>,
        assigns: &mut Vec<(String, Arg)>,
        redirects: &mut Vec<(Risk, String)>,
    ) {
        use ast::CommandPrefixOrSuffixItem as I;
        match item {
            I::IoRedirect(io) => {
                if let Some(f) = self.redirect(io) {
                    redirects.push(f);
                }
            }
            I::Word(w) => {
                let a = self.arg(&w.value);
                argv.push(a);
            }
            I::AssignmentWord(a, w) => {
                let name = match &a.name {
                    ast::AssignmentName::VariableName(n) => n.clone(),
                    ast::AssignmentName::ArrayElementName(n, idx) => {
                        self.arith(idx);
                        format!("{n}[{idx}]")
                    }
                };
                let value = match &a.value {
                    ast::AssignmentValue::Scalar(v) => self.arg(&v.value),
                    ast::AssignmentValue::Array(items) => {
                        let mut raw = Vec::new();
                        let mut dynamic = false;
                        for (k, v) in items {
                            if let Some(k) = k {
                                self.arg(&k.value);
                                // An indexed array's key is arithmetic.
                                let key = k.value.trim_start_matches('[').trim_end_matches(']');
                                if !literal_arith(key) {
                                    self.taint(
                                        Risk::High,
                                        format!("array key [{key}] may be evaluated as arithmetic: code"),
                                    );
                                }
                            }
                            let a = self.arg(&v.value);
                            dynamic |= a.text.is_none();
                            raw.push(v.value.clone());
                        }
                        let raw = raw.join(" ");
                        Arg {
                            text: (!dynamic).then(|| raw.clone()),
                            raw,
                            ..Arg::default()
                        }
                    }
                };
                if argv.is_empty() {
                    assigns.push((name, value));
                } else {
                    // After the command name it is an ordinary word (`declare x=1`).
                    argv.push(Arg {
                        text: value.text.as_ref().map(|v| format!("{name}={v}")),
                        raw: w.value.clone(),
                        glob: value.glob,
                        fetches: value.fetches,
                        safe_prefix: true,
                    });
                }
            }
            I::ProcessSubstitution(_, sub) => {
                let mark = self.mark();
                self.depth += 1;
                self.list(&sub.list);
                self.depth -= 1;
                let fetches = self.fetched_since(mark);
                argv.push(Arg {
                    text: None,
                    raw: "<(...)".into(),
                    glob: false,
                    fetches,
                    safe_prefix: true,
                });
            }
        }
    }

    /// Judge a redirection: `Some((risk, why))` when it writes somewhere that matters.
    fn redirect(&mut self, io: &ast::IoRedirect) -> Option<(Risk, String)> {
        use ast::IoFileRedirectKind as K;
        use ast::IoFileRedirectTarget as T;
        match io {
            ast::IoRedirect::File(_, kind, target) => {
                let writes = matches!(kind, K::Write | K::Append | K::Clobber | K::ReadAndWrite);
                match target {
                    T::Filename(w) => {
                        let a = self.arg(&w.value);
                        let path = a.plain().map(str::to_string);
                        if let Some(p) = &path {
                            if p.starts_with("/dev/tcp/") || p.starts_with("/dev/udp/") {
                                return Some((Risk::High, format!("opens a network socket {p}")));
                            }
                        }
                        if !writes {
                            return None;
                        }
                        write_target(path.as_deref(), &w.value)
                    }
                    T::Fd(_) => None,
                    T::Duplicate(w) => {
                        let a = self.arg(&w.value);
                        match a.plain() {
                            Some(t) if t == "-" || t.chars().all(|c| c.is_ascii_digit()) => None,
                            Some(t)
                                if t.strip_suffix('-').is_some_and(|d| {
                                    !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())
                                }) =>
                            {
                                None
                            }
                            // `>&file` sends stdout and stderr to a file.
                            _ if matches!(kind, K::DuplicateOutput) => {
                                write_target(a.plain(), &w.value)
                            }
                            _ => None,
                        }
                    }
                    T::ProcessSubstitution(_, sub) => {
                        self.depth += 1;
                        self.list(&sub.list);
                        self.depth -= 1;
                        None
                    }
                }
            }
            ast::IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    if let Ok(pieces) = word::parse_heredoc(&doc.doc.value, &self.opts) {
                        let mut a = Arg::default();
                        self.pieces(&pieces, &doc.doc.value, &mut a, &mut String::new(), true);
                    } else {
                        return Some((Risk::High, "here-document not parseable".into()));
                    }
                }
                None
            }
            ast::IoRedirect::HereString(_, w) => {
                self.arg(&w.value);
                None
            }
            ast::IoRedirect::OutputAndError(w, _) => {
                let a = self.arg(&w.value);
                write_target(a.plain(), &w.value)
            }
        }
    }

    /// Analyse one word: its static value if any, and walk every substitution inside it.
    pub fn arg(&mut self, raw: &str) -> Arg {
        // Most words are plain: nothing for bash to expand, quote or glob. Their value is
        // their text, without running the word parser (which dominates long inputs).
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+%@^#".contains(c);
        if !raw.is_empty() && raw.chars().all(plain) {
            return Arg::lit(raw);
        }
        let mut a = Arg {
            text: None,
            raw: raw.to_string(),
            glob: false,
            fetches: false,
            safe_prefix: false,
        };
        match word::parse(raw, &self.opts) {
            Ok(pieces) => {
                let mut value = String::new();
                let is_static = self.pieces(&pieces, raw, &mut a, &mut value, false);
                // Quoted text holding a substitution runs it if bash evaluates the word later:
                // as arithmetic or an array subscript (`test -v 'a[$(cmd)]'`, `let`,
                // `printf -v`, `read`, `declare`), by `${x@P}`, or through `eval`. Which builtin
                // option or later use does that is too wide to list: such a word is never
                // read-only, and what it would run counts towards the risk.
                if value.contains("$(") || value.contains('`') {
                    self.taint(Risk::High, DEFERRED_TEXT);
                    self.nested(&value, "text bash may evaluate later");
                }
                if is_static {
                    // The program sees the word up to a NUL byte (C strings).
                    if let Some(k) = value.find('\0') {
                        value.truncate(k);
                    }
                    // A glob word (`*.rs`) can expand to a file named `-o`: safe only behind a
                    // literal prefix.
                    a.safe_prefix = if a.glob {
                        value_prefix_safe(&pieces)
                    } else {
                        !value.starts_with('-')
                    };
                    a.text = Some(value);
                } else {
                    a.safe_prefix = value_prefix_safe(&pieces);
                }
            }
            Err(e) => self.taint(Risk::High, format!("word {raw:?} not parseable ({e})")),
        }
        a
    }

    /// Walk word pieces, appending static text to `value`. Returns true while every piece is
    /// static. `quoted` is true inside double quotes (no globbing there).
    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        raw: &str,
        a: &mut Arg,
        value: &mut String,
        quoted: bool,
    ) -> bool {
        let mut is_static = true;
        for p in pieces {
            match &p.piece {
                WordPiece::Text(t) => {
                    if !quoted && has_glob(t) {
                        a.glob = true;
                    }
                    if t.contains("$[") {
                        self.taint(Risk::High, "$[ ] arithmetic is evaluated by bash: code");
                    }
                    value.push_str(t);
                }
                WordPiece::SingleQuotedText(t) => value.push_str(t),
                WordPiece::AnsiCQuotedText(t) => match ansi_c(t) {
                    Some(s) => value.push_str(&s),
                    None => is_static = false,
                },
                WordPiece::EscapeSequence(e) => {
                    let rest = e.strip_prefix('\\').unwrap_or(e);
                    if quoted && !matches!(rest, "\"" | "\\" | "$" | "`" | "\n") {
                        value.push_str(e);
                    } else if rest != "\n" {
                        value.push_str(rest);
                    }
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    is_static &= self.pieces(inner, raw, a, value, true);
                }
                WordPiece::TildeExpansion(_) => {
                    // Expands to a home directory: known shape, not an option.
                    is_static = false;
                }
                WordPiece::ParameterExpansion(_) => {
                    is_static = false;
                    // Operands of `${x:-...}` and subscripts can hold substitutions.
                    let src = raw.get(p.start_index..p.end_index).unwrap_or(raw);
                    if let Err(why) = param_expansion_ok(src) {
                        self.taint(Risk::High, format!("{src}: {why}"));
                    }
                    let inner = src
                        .strip_prefix("${")
                        .and_then(|s| s.strip_suffix('}'))
                        .unwrap_or("");
                    if inner.contains("$(") || inner.contains('`') || inner.contains("${") {
                        let sub = self.arg(inner);
                        a.fetches |= sub.fetches;
                    }
                    // Word splitting and globbing of the result, unless it is a number.
                    let numeric =
                        matches!(src, "$#" | "$?" | "$$" | "$!") || src.starts_with("${#");
                    if !quoted && !numeric {
                        a.glob = true;
                    }
                }
                WordPiece::CommandSubstitution(cmd)
                | WordPiece::BackquotedCommandSubstitution(cmd) => {
                    is_static = false;
                    let mark = self.mark();
                    self.nested(cmd, "command substitution");
                    a.fetches |= self.fetched_since(mark);
                    if !quoted {
                        a.glob = true;
                    }
                }
                WordPiece::ArithmeticExpression(e) => {
                    is_static = false;
                    self.arith(&e.value);
                }
            }
        }
        is_static
    }
}

/// Is a parameter expansion (`$x`, `${...}`) free of evaluation? Subscripts, substring
/// offsets, indirection (`${!x}`), prompt expansion (`${x@P}`) and assignment (`${x:=v}`)
/// evaluate text as arithmetic or code, unless literal.
pub fn param_expansion_ok(src: &str) -> Result<(), String> {
    let Some(inner) = src.strip_prefix("${").and_then(|s| s.strip_suffix('}')) else {
        return Ok(()); // `$name`, `$1`, `$@`...
    };
    let (indirect, rest) = match inner.strip_prefix('!') {
        Some(r) if !r.is_empty() => (true, r),
        _ => (false, inner),
    };
    let rest = if !indirect {
        rest.strip_prefix('#')
            .filter(|r| !r.is_empty())
            .unwrap_or(rest)
    } else {
        rest
    };
    let name_len = match rest.chars().next() {
        Some(c) if c.is_ascii_digit() => rest.chars().take_while(char::is_ascii_digit).count(),
        Some(c) if "@*#?$!-".contains(c) => 1,
        Some(c) if c.is_ascii_alphabetic() || c == '_' => rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .count(),
        _ => 0,
    };
    let (_, mut ops) = rest.split_at(name_len.min(rest.len()));
    if let Some(sub) = ops.strip_prefix('[') {
        let Some(end) = sub.find(']') else {
            return Err("unterminated subscript".into());
        };
        let idx = &sub[..end];
        if !(idx == "@" || idx == "*" || (literal_arith(idx) && !idx.is_empty())) {
            return Err("a subscript is evaluated as arithmetic: code".into());
        }
        ops = &sub[end + 1..];
    }
    if indirect {
        return if ops.is_empty() && inner.ends_with("[@]")
            || inner.ends_with("[*]")
            || ops == "*"
            || ops == "@"
        {
            Ok(())
        } else {
            Err("indirect expansion evaluates a name taken from a value: code".into())
        };
    }
    if ops.is_empty() {
        return Ok(());
    }
    if let Some(t) = ops.strip_prefix('@') {
        return if matches!(t, "Q" | "E" | "U" | "u" | "L" | "a" | "K" | "k" | "A") {
            Ok(())
        } else {
            Err("@P and other transformations expand prompts or code".into())
        };
    }
    if let Some(t) = ops.strip_prefix(':') {
        if t.starts_with(['-', '+', '?']) {
            return Ok(());
        }
        if t.starts_with('=') {
            return Err("${x:=v} assigns a variable".into());
        }
        return if t
            .split(':')
            .all(|part| literal_arith(part) && !part.trim().is_empty())
        {
            Ok(())
        } else {
            Err("substring offset/length is evaluated as arithmetic: code".into())
        };
    }
    if ops.starts_with('=') {
        return Err("${x=v} assigns a variable".into());
    }
    if ops.starts_with(['-', '+', '?', '#', '%', '/', '^', ',']) {
        return Ok(());
    }
    Err("expansion not understood".into())
}

/// The verdict on a call of function `name` whose body has effect `e`.
fn function_judgement(name: &str, e: Effect) -> Judgement {
    if e.read_only {
        Judgement::ro(
            name,
            format!("calls function {name}, whose body is read-only"),
        )
    } else {
        Judgement::mutating(
            name,
            e.risk,
            format!("calls function {name}, whose body mutates"),
        )
    }
}

/// The compound lists directly inside a compound command.
fn compound_lists(c: &ast::CompoundCommand) -> Vec<&ast::CompoundList> {
    use ast::CompoundCommand as C;
    match c {
        C::BraceGroup(b) => vec![&b.list],
        C::Subshell(s) => vec![&s.list],
        C::ForClause(f) => vec![&f.body.list],
        C::ArithmeticForClause(f) => vec![&f.body.list],
        C::CaseClause(cc) => cc.cases.iter().filter_map(|i| i.cmd.as_ref()).collect(),
        C::IfClause(i) => {
            let mut v = vec![&i.condition, &i.then];
            for e in i.elses.iter().flatten() {
                if let Some(c) = &e.condition {
                    v.push(c);
                }
                v.push(&e.body);
            }
            v
        }
        C::WhileClause(w) | C::UntilClause(w) => vec![&w.0, &w.1.list],
        C::Arithmetic(_) | C::Coprocess(_) => vec![],
    }
}

/// The static value of a word with no expansions, for names.
fn static_word(raw: &str, opts: &ParserOptions) -> Option<String> {
    let pieces = word::parse(raw, opts).ok()?;
    let mut out = String::new();
    for p in pieces {
        match p.piece {
            WordPiece::Text(t) if !has_glob(&t) => out.push_str(&t),
            WordPiece::SingleQuotedText(t) => out.push_str(&t),
            WordPiece::EscapeSequence(e) => out.push_str(e.strip_prefix('\\').unwrap_or(&e)),
            _ => return None,
        }
    }
    Some(out)
}

/// Can a partly computed word start with `-`? Safe only if its first piece is static text
/// that does not start with a dash.
fn value_prefix_safe(pieces: &[WordPieceWithSource]) -> bool {
    match pieces.first().map(|p| &p.piece) {
        // Unquoted, a leading glob or brace can match or make a word such as `-o`.
        Some(WordPiece::Text(t)) => {
            !t.is_empty() && !t.starts_with(['-', '*', '?', '[', '{', '@', '+', '!'])
        }
        Some(WordPiece::SingleQuotedText(t)) => !t.is_empty() && !t.starts_with('-'),
        Some(WordPiece::DoubleQuotedSequence(inner)) => value_prefix_safe(inner),
        _ => false,
    }
}

/// Unquoted characters that make bash expand a word into other words (globs, brace
/// expansion, extglob).
fn has_glob(t: &str) -> bool {
    let bracket = t.find('[').is_some_and(|i| t[i + 1..].contains(']'));
    let extglob = ["?(", "*(", "+(", "@(", "!("].iter().any(|p| t.contains(p));
    t.contains(['*', '?'])
        || bracket
        || extglob
        || (t.contains('{') && (t.contains(',') || t.contains("..")))
}

/// Decode an ANSI-C quoted string (`$'...'`); `None` for escapes we do not model.
fn ansi_c(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        // Bash ends a `$'…'` string at a NUL it produces (`$'-del\0ete'x` is `-delx`).
        if out.contains('\0') {
            break;
        }
        let e = chars.next()?;
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            continue;
        }
        let (radix, max) = match e {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 3),
            _ => return None,
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < max {
            match chars.peek() {
                Some(d) if d.is_digit(radix) => {
                    digits.push(*d);
                    chars.next();
                }
                _ => break,
            }
        }
        let n = u32::from_str_radix(&digits, radix).ok()?;
        if n == 0 {
            break;
        }
        out.push(char::from_u32(n)?);
    }
    Some(out)
}

/// A write to `path` (static) or to a computed target (`raw`).
fn write_target(path: Option<&str>, raw: &str) -> Option<(Risk, String)> {
    match path {
        Some("/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2") => None,
        Some(p) if rules::is_block_device(p) => {
            Some((Risk::Critical, format!("writes to block device {p}")))
        }
        Some(p @ "/proc/sysrq-trigger") => Some((
            Risk::Critical,
            format!("writes to {p} (reboot, power off, crash)"),
        )),
        Some(p) => Some((Risk::High, format!("redirects output to file {p}"))),
        None => Some((
            Risk::High,
            format!("redirects output to a computed path {raw}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_c_decodes() {
        assert_eq!(ansi_c(r"\x72m").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"\162m").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"\u0072m").as_deref(), Some("rm"));
        assert_eq!(ansi_c(r"\q"), None);
    }
}
