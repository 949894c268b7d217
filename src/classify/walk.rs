//! The tree walk: parse with brush-parser, visit every node, turn each simple command into an
//! argv of [`Arg`]s and hand it to `rules::judge`. Substitutions found in any word are
//! classified as the commands they are.

use std::collections::HashMap;

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::ParserOptions;

use super::{rules, Classification, CommandVerdict, Risk};

/// Nested texts (`bash -c`, `eval`, substitutions) deeper than this are not followed.
const MAX_DEPTH: usize = 12;
/// Upper bound on simple commands judged (function calls can multiply work).
const MAX_COMMANDS: usize = 4096;
/// Bracket nesting beyond this is refused before parsing (the parser recurses).
const MAX_NESTING: usize = 128;

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

pub struct Walker {
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
pub fn classify_text(text: &str) -> Classification {
    let mut w = Walker {
        opts: ParserOptions::default(),
        functions: HashMap::new(),
        calling: Vec::new(),
        verdicts: Vec::new(),
        taints: Vec::new(),
        depth: 0,
        judged: 0,
    };
    let parse_error = w.text(text).err();
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

/// Deepest bracket nesting in `text`, counting `(`, `{`, `[` and backquote pairs crudely.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '(' | '{' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max + text.matches('`').count() / 2
}

impl Walker {
    fn taint(&mut self, risk: Risk, reason: impl Into<String>) {
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
        if self.depth >= MAX_DEPTH {
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

    fn text(&mut self, text: &str) -> Result<(), String> {
        if nesting(text) > MAX_NESTING {
            return Err("nesting too deep to analyse".into());
        }
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
        for cmd in &p.seq {
            let mark = self.mark();
            let runs_stdin = self.command(cmd);
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
        use ast::BinaryPredicate as B;
        use ast::ExtendedTestExpr as E;
        use ast::UnaryPredicate as U;
        match e {
            E::And(a, b) | E::Or(a, b) => {
                self.ext_test(a);
                self.ext_test(b);
            }
            E::Not(a) | E::Parenthesized(a) => self.ext_test(a),
            E::UnaryTest(op, w) => {
                let a = self.arg(&w.value);
                // `-v NAME[SUB]` evaluates the subscript as arithmetic.
                if matches!(op, U::ShellVariableIsSetAndAssigned)
                    && (a.is_dynamic() || a.text.as_deref().is_some_and(|t| t.contains('[')))
                {
                    self.taint(Risk::High, DEFERRED_ARITH);
                }
            }
            E::BinaryTest(op, a, b) => {
                let (a, b) = (self.arg(&a.value), self.arg(&b.value));
                // `-eq` and friends evaluate both operands as arithmetic expressions.
                let arithmetic = matches!(
                    op,
                    B::ArithmeticEqualTo
                        | B::ArithmeticNotEqualTo
                        | B::ArithmeticLessThan
                        | B::ArithmeticLessThanOrEqualTo
                        | B::ArithmeticGreaterThan
                        | B::ArithmeticGreaterThanOrEqualTo
                );
                if arithmetic
                    && [a, b].iter().any(|x| {
                        x.plain()
                            .is_none_or(|t| names_a_variable(t) || t.contains('['))
                    })
                {
                    self.taint(Risk::High, DEFERRED_ARITH);
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

    /// Arithmetic text. Substitutions inside it run; so can a variable it names: bash
    /// evaluates a variable's value as an expression in turn, and `a[$(cmd)]` there runs `cmd`
    /// (`x='a[$(rm -rf ~)]'; echo $((x))`). A name's value is not known before run time, so
    /// arithmetic that names a variable is not read-only.
    fn arith(&mut self, expr: &str) {
        if expr.contains("$(") || expr.contains('`') || expr.contains("${") {
            self.arg(expr);
        }
        if names_a_variable(expr) {
            self.taint(Risk::High, DEFERRED_ARITH);
        }
    }

    /// A simple command. Returns whether it runs code from stdin.
    fn simple(&mut self, s: &ast::SimpleCommand) -> bool {
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
        if self.judged >= MAX_COMMANDS {
            self.taint(Risk::High, "too many commands to analyse");
            return false;
        }
        self.judged += 1;

        let mut judgement = if argv.is_empty() {
            if assigns.is_empty() && redirect_findings.is_empty() {
                Judgement::ro("", "redirections only")
            } else {
                Judgement::ro("", "variable assignment")
            }
        } else {
            let name = argv[0].plain().map(str::to_string);
            match name.and_then(|n| self.functions.get(&n).cloned().map(|b| (n, b))) {
                Some((n, body)) => self.call_function(&n, &body),
                None => rules::judge(self, &argv),
            }
        };
        for (name, value) in &assigns {
            if let Some(why) = rules::dangerous_assignment(name, value) {
                judgement.read_only = false;
                judgement.risk = judgement.risk.max(Risk::High);
                judgement.reason = format!("{}; {why}", judgement.reason);
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
                        n.clone()
                    }
                };
                let value = match &a.value {
                    ast::AssignmentValue::Scalar(v) => self.arg(&v.value),
                    ast::AssignmentValue::Array(items) => {
                        let mut raw = Vec::new();
                        let mut dynamic = false;
                        for (k, v) in items {
                            if let Some(k) = k {
                                // `a=([SUB]=v)`: an indexed array's keys are arithmetic.
                                self.arith(&k.value);
                                self.arg(&k.value);
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
                    a.safe_prefix = !value.starts_with('-');
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
                    let inner = src
                        .strip_prefix("${")
                        .and_then(|s| s.strip_suffix('}'))
                        .unwrap_or("");
                    if inner.contains("$(") || inner.contains('`') || inner.contains("${") {
                        let sub = self.arg(inner);
                        a.fetches |= sub.fetches;
                    }
                    // `${x@P}` expands the value as a prompt (substitutions in it run);
                    // `${!x}` dereferences a name whose subscript is evaluated; subscripts,
                    // offsets and lengths are arithmetic on names.
                    if inner.contains("@P")
                        || inner.starts_with('!')
                        || (inner.contains('[') && names_a_variable(subscripts(inner)))
                        || offset_names_a_variable(inner)
                    {
                        self.taint(Risk::High, DEFERRED_ARITH);
                    }
                    if !quoted {
                        a.glob = true; // word splitting and globbing of the result
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

const DEFERRED_TEXT: &str = "a word holds a command substitution as text, which bash runs if it \
     evaluates the word later (arithmetic, array subscripts, ${x@P}, eval): governed as unknown code";
const DEFERRED_ARITH: &str = "bash evaluates a value here as an arithmetic expression or prompt, \
     and a variable's value can hold a command substitution (a[$(cmd)]) that then runs: governed \
     as unknown code";

/// Does arithmetic text name a variable (an identifier that is not part of a number)?
fn names_a_variable(expr: &str) -> bool {
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            // A number, with its base or hex digits (0x1F, 2#101, 64#Zz): not a name.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'#' || b[i] == b'_') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            return true;
        }
        i += 1;
    }
    false
}

/// The text inside the brackets of a parameter expansion (`a[i+1]` -> `i+1`); empty if none.
fn subscripts(inner: &str) -> &str {
    match (inner.find('['), inner.rfind(']')) {
        (Some(a), Some(b)) if b > a => &inner[a + 1..b],
        _ => "",
    }
}

/// `${x:off}` / `${x:off:len}` (not `${x:-w}`, `${x:=w}`, `${x:?w}`, `${x:+w}`): are offset or
/// length arithmetic on a name?
fn offset_names_a_variable(inner: &str) -> bool {
    let Some((_, rest)) = inner.split_once(':') else {
        return false;
    };
    if rest.starts_with(['-', '=', '?', '+']) {
        return false;
    }
    names_a_variable(rest)
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
        Some(WordPiece::Text(t)) | Some(WordPiece::SingleQuotedText(t)) => {
            !t.is_empty() && !t.starts_with('-')
        }
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
