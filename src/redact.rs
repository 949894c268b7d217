//! Secret redaction for every text that leaves the process (request fields, metadata, events,
//! error lines). A secret becomes `[REDACTED:<kind>:<first 8 hex of sha256 of what was
//! removed>]` (platform-contract.md, section 4): readers learn what kind was removed, and equal
//! secrets correlate without being revealed.
//!
//! Two stages, in this order:
//! 1. Maestro's own sanitizer (`CREDENTIAL_PATTERN_DEFS` in its `safety/credential-patterns.ts`),
//!    reproduced rule for rule: each pattern in list order, over the text the previous ones
//!    left, the *whole* match replaced, kinds `api_key`, `aws_secret`, `private_key`,
//!    `jwt_token`, `password`, `generic_secret`. Where Maestro redacts, our output is Maestro's,
//!    byte for byte — including its quirks (a marker made by one rule can be swallowed by a
//!    later rule, e.g. `[REDACTED:aws_secret:…]` by the `secret[:=]…` password rule).
//! 2. Our extra rules, for what Maestro misses (GitLab, fine-grained GitHub and Slack webhook
//!    tokens, `--password x`, `mysql -p…`, `*_TOKEN=…`, high-entropy words, …). These keep the
//!    context and replace only the secret, in the same marker format and the same six kinds.
//!
//! Startup cost: no pattern is compiled until a cheap literal test says the text could hold a
//! match (`ghp_`, `AKIA`, `bearer`, `://`, a long run of token characters, …), and patterns are
//! compiled byte-oriented (ASCII classes and case folding, as JavaScript's non-`u` regexes
//! have), so a plain command compiles nothing and a command with secrets compiles only the
//! patterns it needs.
//!
//! JavaScript differences we accept (each only with non-ASCII text next to a secret): Maestro's
//! `\s` also covers non-ASCII spaces (see `js_space!`); `[^…]{8,}` counts bytes where
//! JavaScript counts UTF-16 units, so a short non-ASCII password may be redacted where Maestro
//! keeps it; a cut never splits a surrogate pair (JavaScript's can).

use std::sync::OnceLock;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::MatchKind;
use sha2::{Digest, Sha256};

/// Commands longer than this many UTF-16 units are cut (Maestro's sanitizer).
const COMMAND_MAX: usize = 1000;
/// A whole-base64 command is cut to this many units, suffix included.
const BASE64_MAX: usize = 200;
/// Operation summaries longer than this many UTF-16 units are cut.
const OPERATION_MAX: usize = 96;
/// Redact-then-look-again rounds; a second round almost never finds anything.
const MAX_ROUNDS: usize = 4;

/// Redacted text and the kinds of secret removed (one entry per removal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub kinds: Vec<String>,
    /// Where we departed from Maestro's output to keep markers clean (see [`NOTE_NESTED`],
    /// [`NOTE_MERGED`]); shown by `--explain`.
    pub notes: Vec<&'static str>,
    altered: bool,
}

/// A Maestro rule would have matched across a marker an earlier rule made, nesting markers
/// (`[REDACTED:aws_[REDACTED:…`) and swallowing the text after it; the first marker is kept.
pub const NOTE_NESTED: &str = "Maestro's sanitizer would nest one marker inside another here (a later rule matching an earlier rule's marker and the text after it); maestro-sh keeps the first marker and the text after it";
/// A Maestro rule's match ran over a shell separator (`;`, `|`, `&&`, …), which would merge
/// two commands into one marker; the marker stops before the separator.
pub const NOTE_MERGED: &str = "Maestro's sanitizer would swallow a shell separator into a marker here (merging two commands); maestro-sh ends the marker before the separator";

impl Redacted {
    /// True when the text differs from the input in any way: a secret removed, a control
    /// character dropped or the text cut (Maestro's `maestro_redacted_arguments`).
    pub fn changed(&self) -> bool {
        self.altered
    }
}

/// The inside of a character class for JavaScript's `\s`, ASCII part only: the patterns work
/// on bytes, so a non-ASCII space (NBSP, U+2028, …) counts as a non-space here, where
/// JavaScript would stop at it. Commands practically never hold one next to a secret.
macro_rules! js_space {
    () => {
        r"\t\n\x0B\x0C\r "
    };
}

/// Maestro's `[':"\s=]+` separator between a secret's name and its value.
macro_rules! js_sep {
    () => {
        concat!(r#"[':"="#, js_space!(), "]+")
    };
}

/// One redaction rule.
struct Rule {
    /// The kind written in the marker.
    kind: &'static str,
    /// The pattern (compiled with Unicode off; non-ASCII classes say `(?:…)`).
    source: &'static str,
    /// The capture group holding the secret value (0 = the whole match). Maestro's rules
    /// always replace the whole match and use the group only for `redact_words`; extra rules
    /// replace just this group.
    group: usize,
    /// Cheap test: false when the text cannot contain a match, so the pattern is not compiled.
    gate: fn(&Hay) -> bool,
    /// Extra rules only: which filter applies (see `worth_redacting`).
    filter: Filter,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    /// Always redact.
    None,
    /// A name=value or flag value: `$VAR` references and auth scheme words are not secrets;
    /// the kind is the rule's (`password`) when the name says "pass", else `generic_secret`.
    Named,
    /// A value after a header or URL: references are not secrets.
    Reference,
    /// A bare word: needs mixed case, digits and high entropy.
    Entropy,
}

/// One of Maestro's own rules: the whole match goes, unfiltered.
const fn maestro(
    kind: &'static str,
    source: &'static str,
    group: usize,
    gate: fn(&Hay) -> bool,
) -> Rule {
    extra(kind, source, group, gate, Filter::None)
}

const fn extra(
    kind: &'static str,
    source: &'static str,
    group: usize,
    gate: fn(&Hay) -> bool,
    filter: Filter,
) -> Rule {
    Rule {
        kind,
        source,
        group,
        gate,
        filter,
    }
}

/// Maestro's `CREDENTIAL_PATTERN_DEFS`, in its order, with its flags (`(?i)` where it has `i`).
static MAESTRO: [Rule; 28] = [
    // API keys.
    maestro(
        "api_key",
        concat!(
            r"(?i)(?:api[_-]?key|apikey|api[_-]?token)",
            js_sep!(),
            r#"['"]?([a-zA-Z0-9_-]{20,})"#
        ),
        1,
        |h| h.has_ci("api"),
    ),
    maestro("api_key", r"sk-[a-zA-Z0-9]{20,}", 0, |h| h.has("sk-")),
    maestro("api_key", r"sk-ant-[a-zA-Z0-9_-]{20,}", 0, |h| {
        h.has("sk-ant-")
    }),
    maestro("api_key", r"gh[pousr]_[a-zA-Z0-9]{36,}", 0, |h| {
        h.any(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"])
    }),
    maestro("api_key", r"xox[baprs]-[a-zA-Z0-9-]{10,}", 0, |h| {
        h.has("xox")
    }),
    maestro(
        "api_key",
        r"(?:sk|pk)_(?:live|test)_[a-zA-Z0-9]{20,}",
        0,
        |h| h.any(&["_live_", "_test_"]),
    ),
    // AWS.
    maestro("aws_secret", r"AKIA[A-Z0-9]{16}", 0, |h| h.has("AKIA")),
    maestro(
        "aws_secret",
        concat!(
            r"(?i)(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?key)",
            js_sep!(),
            r#"['"]?([a-zA-Z0-9/+=]{40})"#
        ),
        1,
        |h| h.has_ci("secret"),
    ),
    // Private keys.
    maestro(
        "private_key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----(?s:.)+?-----END (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----",
        0,
        |h| h.has("-----BEGIN "),
    ),
    maestro(
        "private_key",
        r"-----BEGIN PGP PRIVATE KEY BLOCK-----(?s:.)+?-----END PGP PRIVATE KEY BLOCK-----",
        0,
        |h| h.has("-----BEGIN PGP"),
    ),
    // JWT.
    maestro(
        "jwt_token",
        r"eyJ[a-zA-Z0-9_-]*\.eyJ[a-zA-Z0-9_-]*\.[a-zA-Z0-9_-]*",
        0,
        |h| h.has("eyJ"),
    ),
    // Passwords.
    // Maestro replaces the whole `://user:pass@`, and its next rule then always nests a marker
    // over that one and the host after it (NOTE_NESTED): never clean, so we keep the context
    // and replace only the password (Filter::Reference marks a value-only Maestro rule).
    extra(
        "password",
        r"://(?:[^:])+:((?:[^@])+)@",
        1,
        |h| h.has("://") && h.has("@"),
        Filter::Reference,
    ),
    maestro(
        "password",
        concat!(
            r"(?i)(?:password|passwd|pwd|secret)",
            js_sep!(),
            r#"['"]?((?:[^'""#,
            js_space!(),
            "]){8,})"
        ),
        1,
        // The one rule that can match inside an earlier rule's marker (`aws_secret:…`,
        // `password:…`: eight hex digits and `]` make its eight characters).
        |h| {
            h.any_ci(&["passw", "pwd", "secret"])
                || h.made.contains("secret")
                || h.made.contains("password")
        },
    ),
    // Generic secrets.
    maestro(
        "generic_secret",
        concat!(r"(?i)Bearer(?:[", js_space!(), r"])+([a-zA-Z0-9_.-]+)"),
        1,
        |h| h.has_ci("bearer"),
    ),
    maestro(
        "generic_secret",
        concat!(
            r#"(?i)Authorization(?:[':""#,
            js_space!(),
            r#"])+['"]?(?:Basic|Bearer|Token)(?:["#,
            js_space!(),
            r"])+([a-zA-Z0-9_./+=-]+)"
        ),
        1,
        |h| h.has_ci("authorization"),
    ),
    // Google.
    maestro("api_key", r"ya29\.[a-zA-Z0-9_-]{20,}", 0, |h| {
        h.has("ya29.")
    }),
    maestro("api_key", r"AIza[a-zA-Z0-9_-]{35}", 0, |h| h.has("AIza")),
    maestro("api_key", r"1//[a-zA-Z0-9_-]{40,}", 0, |h| h.has("1//")),
    // Azure.
    maestro(
        "api_key",
        r"(?i)[?&](?:sv|sig|se|sp)=([a-zA-Z0-9%_-]{10,})",
        1,
        |h| (h.has("?") || h.has("&")) && h.any_ci(&["sv=", "sig=", "se=", "sp="]),
    ),
    maestro(
        "api_key",
        r"(?i)(?:AccountKey|SharedAccessKey)=([a-zA-Z0-9+/=]{40,})",
        1,
        |h| h.any_ci(&["accountkey=", "sharedaccesskey="]),
    ),
    maestro(
        "api_key",
        concat!(
            r"(?i)(?:client[_-]?secret|azure[_-]?secret)",
            js_sep!(),
            r#"['"]?([a-zA-Z0-9~_.-]{32,})"#
        ),
        1,
        |h| h.has_ci("secret"),
    ),
    // Base64- and hex-encoded secrets.
    maestro(
        "api_key",
        concat!(
            r"(?i)(?:api[_-]?key|token|secret|password)",
            js_sep!(),
            r#"['"]?([A-Za-z0-9+/=]{24,})"#
        ),
        1,
        |h| h.any_ci(&["api", "token", "secret", "password"]),
    ),
    maestro(
        "generic_secret",
        concat!(
            r"(?i)(?:secret|key|token)",
            js_sep!(),
            r#"['"]?([a-fA-F0-9]{32,})"#
        ),
        1,
        |h| h.any_ci(&["secret", "key", "token"]),
    ),
    // Database URLs.
    maestro(
        "generic_secret",
        concat!(r"(?i)mongodb(?:\+srv)?://(?:[^", js_space!(), "])+"),
        0,
        |h| h.has_ci("mongodb"),
    ),
    maestro(
        "generic_secret",
        concat!(r"(?i)postgres(?:ql)?://(?:[^", js_space!(), "])+"),
        0,
        |h| h.has_ci("postgres"),
    ),
    maestro(
        "generic_secret",
        concat!(r"(?i)mysql://(?:[^", js_space!(), "])+"),
        0,
        |h| h.has_ci("mysql://"),
    ),
    // Registries.
    maestro("api_key", r"npm_[a-zA-Z0-9]{36}", 0, |h| h.has("npm_")),
    maestro("api_key", r"pypi-[a-zA-Z0-9]{60,}", 0, |h| h.has("pypi-")),
];

/// Name fragments that say "this value is a secret".
macro_rules! secret_name {
    () => {
        r"[A-Za-z0-9_.\-]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIALS?|AUTH)[A-Za-z0-9_]*"
    };
}

/// A shell value: quoted, or a run of non-separator characters.
macro_rules! shell_value {
    () => {
        r#"(?:"(?:[^"\n])*"|'(?:[^'\n])*'|(?:[^\s'";&|)<>])+)"#
    };
}

/// What Maestro misses, run on what its rules left. Group 1 or 2 is the secret; the rest of
/// the match stays.
static EXTRA: [Rule; 30] = [
    extra(
        "private_key",
        r#"(?i)("private_key"\s*:\s*")((?:(?:[^"\\])|\\(?s:.))+)""#,
        2,
        |h| h.has_ci("\"private_key\""),
        Filter::None,
    ),
    extra(
        "generic_secret",
        r#"(?i)((?:proxy-)?authorization\s*:\s*(?:bearer|basic|token|digest|negotiate|apikey)?\s*)((?:[^\s'"]){4,})"#,
        2,
        |h| h.has_ci("authorization"),
        Filter::Reference,
    ),
    extra(
        "generic_secret",
        r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]{8,}=*)",
        2,
        |h| h.has_ci("bearer"),
        Filter::None,
    ),
    extra(
        "password",
        r#"([A-Za-z][A-Za-z0-9+.\-]*://(?:[^\s/:@'"])*:)((?:[^\s/@'"])+)@"#,
        2,
        |h| h.has("://") && h.has("@"),
        Filter::Reference,
    ),
    extra(
        "api_key",
        r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b",
        0,
        |h| h.any(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
        0,
        |h| h.has("github_pat_"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bgl(?:pat|dt|rt|cbt|ptt|ft|oas)-[A-Za-z0-9_\-]{20,}",
        0,
        |h| {
            h.any(&[
                "glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "gloas-",
            ])
        },
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bxox[abposre]-[A-Za-z0-9\-]{10,}",
        0,
        |h| h.has("xox"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
        0,
        |h| h.has("hooks.slack.com"),
        Filter::None,
    ),
    extra(
        "aws_secret",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b",
        0,
        |h| {
            h.any(&[
                "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA",
            ])
        },
        Filter::None,
    ),
    extra(
        "aws_secret",
        r#"(?i)(aws_?secret_?access_?key["']?\s*[=:]\s*["']?)([A-Za-z0-9/+=]{40})"#,
        2,
        |h| h.has_ci("secret"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bAIza[0-9A-Za-z_\-]{35}",
        0,
        |h| h.has("AIza"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bya29\.[0-9A-Za-z_\-]{20,}",
        0,
        |h| h.has("ya29."),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
        0,
        |h| h.has("sk-ant-"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bsk-(?:proj-|svcacct-|admin-|live-)?[A-Za-z0-9_\-]{20,}",
        0,
        |h| h.has("sk-"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
        0,
        |h| h.any(&["_live_", "_test_"]),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bwhsec_[A-Za-z0-9]{20,}",
        0,
        |h| h.has("whsec_"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bnpm_[A-Za-z0-9]{36}\b",
        0,
        |h| h.has("npm_"),
        Filter::None,
    ),
    extra(
        "api_key",
        r"\bpypi-[A-Za-z0-9_\-]{40,}",
        0,
        |h| h.has("pypi-"),
        Filter::None,
    ),
    extra(
        "jwt_token",
        r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}",
        0,
        |h| h.has("eyJ"),
        Filter::None,
    ),
    // A private key block Maestro's rule misses (ENCRYPTED, other labels, or cut before its
    // END line): the body goes, the BEGIN/END lines stay.
    extra(
        "private_key",
        r#"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)((?s:.)*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|['"]|\z)"#,
        2,
        |h| h.has("PRIVATE KEY"),
        Filter::None,
    ),
    // `curl -u user:pass`, `--user user:pass`, `-uuser:pass`: the password after the colon.
    // (curl only: `docker run -u 1000:1000` is a uid:gid.)
    extra(
        "password",
        r#"(\bcurl\b(?:[^\n|;&])*?\s(?:-u\s*|--user(?:=|\s+))['"]?(?:[^\s:'"])*:)((?:[^\s'"])+)"#,
        2,
        |h| h.has("curl") && (h.has("-u") || h.has("--user")),
        Filter::Reference,
    ),
    // `sshpass -p secret` / `-psecret`.
    extra(
        "password",
        concat!(r"(\bsshpass\b(?:[^\n|;&])*?\s-p\s*)(", shell_value!(), ")"),
        2,
        |h| h.has("sshpass"),
        Filter::Reference,
    ),
    // `docker login -p secret` (and podman, nerdctl, buildah, skopeo).
    extra(
        "password",
        concat!(
            r"(\b(?:docker|podman|nerdctl|buildah|skopeo)\s+login\b(?:[^\n|;&])*?\s-p\s*)(",
            shell_value!(),
            ")"
        ),
        2,
        |h| h.has("login") && h.has("-p"),
        Filter::Reference,
    ),
    // `htpasswd -b [-c] file user pass`, `htpasswd -nb user pass`: the last operand.
    extra(
        "password",
        concat!(
            r#"(\bhtpasswd(?:\s+-[A-Za-z]+)*?\s+-[A-Za-z]*b[A-Za-z]*(?:\s+-[A-Za-z]+)*\s+(?:[^\s\-;&|'"](?:[^\s;&|])*\s+){1,2})("#,
            shell_value!(),
            ")"
        ),
        2,
        |h| h.has("htpasswd"),
        Filter::Reference,
    ),
    // `.netrc` lines: `machine h login u password p`, `default login u password p`.
    extra(
        "password",
        r#"(\b(?:machine\s+(?:[^\s])+|default)\s+(?:login\s+(?:[^\s])+\s+)?(?:account\s+(?:[^\s])+\s+)?password\s+)((?:[^\s'"\\])+)"#,
        2,
        |h| h.has("password") && (h.has("machine") || h.has("default")),
        Filter::Reference,
    ),
    extra(
        "password",
        concat!(
            r"(?i)(--?(?:password|passwd|pass|token|secret|api-?key|access-?key|access-token|auth-token|client-secret|private-key|secret-key)(?:=|\s+))(",
            shell_value!(),
            ")"
        ),
        2,
        |h| h.has("-") && h.any_ci(&["pass", "token", "secret", "key"]),
        Filter::Named,
    ),
    extra(
        "password",
        r#"(\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b(?:[^\n|;&])*?\s-p)((?:[^\s'"])+)"#,
        2,
        |h| h.any_ci(&["mysql", "mariadb"]),
        Filter::Reference,
    ),
    extra(
        "generic_secret",
        concat!(
            r#"(?i)(\b"#,
            secret_name!(),
            r#"["']?\s*[=:]\s*)("#,
            shell_value!(),
            ")"
        ),
        2,
        |h| {
            (h.has("=") || h.has(":"))
                && h.any_ci(&["token", "secret", "pass", "key", "credential", "auth"])
        },
        Filter::Named,
    ),
    extra(
        "generic_secret",
        r"[A-Za-z0-9+/_\-]{32,}={0,2}",
        0,
        |h| h.long_run,
        Filter::Entropy,
    ),
];

/// Compiled patterns, each compiled the first time its gate opens.
static MAESTRO_RE: [OnceLock<Regex>; 28] = [const { OnceLock::new() }; 28];
static EXTRA_RE: [OnceLock<Regex>; 30] = [const { OnceLock::new() }; 30];

fn compiled<'a>(slot: &'a OnceLock<Regex>, rule: &Rule) -> &'a Regex {
    slot.get_or_init(|| {
        // What `regex::bytes::Regex` builds, minus the engines whose construction dominates a
        // first call (every governed command is a fresh process, so a pattern is compiled
        // about once per search): the one-pass DFA, the lazy DFA (it needs a second, reversed
        // NFA) and the literal prefilter (extracting literals from `(?i)` patterns costs more
        // than the search it saves on command-sized texts). The bounded backtracker and the
        // PikeVM cost next to nothing to build and find the same leftmost-first matches.
        let config = meta::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .utf8_empty(false)
            .onepass(false)
            .hybrid(false)
            .auto_prefilter(false);
        meta::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build(rule.source)
            // The sources are constants, all compiled by the unit tests.
            .unwrap_or_else(|e| panic!("redaction pattern {:?} is invalid: {e}", rule.source))
    })
}

/// What the gates look at: the text of the round, lowercased once, plus the markers made so far
/// in the round (Maestro's password rule can match inside an earlier rule's marker).
struct Hay<'a> {
    text: &'a str,
    lower: String,
    made: String,
    /// A run of 32 or more token characters (the high-entropy rule's minimum) holding an
    /// uppercase letter, a lowercase letter and a digit: the rule matches whole runs, and keeps
    /// any match without all three (`worth_redacting`), so without such a run it cannot redact
    /// and is not compiled (a hex digest or a lowercase id in the metadata used to compile it).
    long_run: bool,
}

impl<'a> Hay<'a> {
    fn new(text: &'a str) -> Self {
        let (mut run, mut classes) = (0usize, 0u8);
        let mut long_run = false;
        for b in text.bytes().chain(std::iter::once(b' ')) {
            if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-') {
                run += 1;
                classes |= match b {
                    b'A'..=b'Z' => 1,
                    b'a'..=b'z' => 2,
                    b'0'..=b'9' => 4,
                    _ => 0,
                };
            } else {
                if run >= 32 && classes == 7 {
                    long_run = true;
                    break;
                }
                (run, classes) = (0, 0);
            }
        }
        Hay {
            text,
            lower: text.to_ascii_lowercase(),
            made: String::new(),
            long_run,
        }
    }

    /// Case-sensitive literal, in the round's input. A match can span markers made earlier in
    /// the round, but its literal cannot come from one (no gate literal holds `[` or `]`, and
    /// the marker words lead nowhere but in the password rule, which looks at `made` itself).
    fn has(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    fn any(&self, needles: &[&str]) -> bool {
        needles.iter().any(|n| self.has(n))
    }

    /// ASCII case-insensitive literal (`needle` in lowercase), in the round's input.
    fn has_ci(&self, needle: &str) -> bool {
        self.lower.contains(needle)
    }

    fn any_ci(&self, needles: &[&str]) -> bool {
        needles.iter().any(|n| self.has_ci(n))
    }
}

/// Redact every secret in `text`. Idempotent (redacting redacted text changes nothing, and no
/// existing `[REDACTED:…]` marker is ever touched) and total: never panics, any UTF-8 input.
pub fn redact(text: &str) -> Redacted {
    redact_collect(text, Stage::Both).0
}

/// Redact a message (maestro-sh's own advice, Platform's error text): values, never the words
/// around them. Only the context-keeping rules run, and a plain lowercase word is never taken
/// for a secret, so "missing or invalid bearer token" and "HTTP 401 unauthenticated: missing"
/// stay readable while `Bearer eyJ…`, `password=…` or `ghp_…` values are still removed.
pub fn redact_message(text: &str) -> Redacted {
    redact_collect(text, Stage::Values).0
}

/// Which rules run: Maestro's then ours (commands), or ours only, words spared (messages).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Both,
    Values,
}

/// Redact, and also return each removed secret (and its value part) with its marker.
fn redact_collect(text: &str, stage: Stage) -> (Redacted, Vec<(String, String)>) {
    let mut kinds = Vec::new();
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let mut current = text.to_string();
    for _ in 0..MAX_ROUNDS {
        let before = kinds.len();
        current = round(&current, stage, &mut kinds, &mut found, &mut notes);
        if kinds.len() == before {
            break;
        }
    }
    notes.dedup();
    let altered = current != text;
    let r = Redacted {
        text: current,
        kinds,
        notes,
        altered,
    };
    (r, found)
}

/// Where a Maestro rule's match must end so it never swallows a shell separator: the first
/// `;`, `|`, `` ` ``, `<`, `>`, `)`, `$(`, or an `&` that is an operator (`&&`, `&` before a
/// space or the end) — not one inside a URL's query. Offsets within `m`; never 0.
fn separator_cut(m: &str) -> Option<usize> {
    let b = m.as_bytes();
    (1..b.len()).find(|&i| match b[i] {
        b';' | b'|' | b'`' | b'<' | b'>' | b')' => true,
        b'$' => b.get(i + 1) == Some(&b'('),
        b'&' => matches!(b.get(i + 1), None | Some(b'&' | b' ' | b'\t' | b'\n')),
        _ => false,
    })
}

/// One pass of both stages over `text`.
fn round(
    text: &str,
    stage: Stage,
    kinds: &mut Vec<String>,
    found: &mut Vec<(String, String)>,
    notes: &mut Vec<&'static str>,
) -> String {
    let mut hay = Hay::new(text);
    // Markers are never touched: those in the input, and (unlike Maestro, which lets a later
    // rule match across an earlier rule's marker) those made in this pass.
    let input_markers = marker_spans(text).len();
    let mut protected = marker_spans(text);
    let mut current = text.to_string();
    for (rule, slot) in MAESTRO.iter().zip(&MAESTRO_RE) {
        if stage == Stage::Values || !(rule.gate)(&hay) {
            continue;
        }
        let re = compiled(slot, rule);
        let mut skipped = false;
        let current_text = current.clone();
        let replaced = replace(&current, re, &mut protected, &mut skipped, |groups| {
            if rule.filter == Filter::Reference {
                // Value-only: keep the match around the secret.
                let (w0, w1, _) = groups[0]?;
                let (s0, s1, value) = (*groups.get(rule.group)?)?;
                let mark = marker(rule.kind, value);
                found.push((value.to_string(), mark.clone()));
                kinds.push(rule.kind.to_string());
                hay.made.push_str(&mark);
                notes.push(NOTE_NESTED);
                return Some(format!(
                    "{}{mark}{}",
                    current_text.get(w0..s0)?,
                    current_text.get(s1..w1)?
                ));
            }
            let whole = groups[0]?.2;
            // Never swallow a separator: the marker covers the match up to it.
            let (removed, rest) = match separator_cut(whole) {
                Some(i) => {
                    notes.push(NOTE_MERGED);
                    whole.split_at(i)
                }
                None => (whole, ""),
            };
            let mark = marker(rule.kind, removed);
            found.push((removed.to_string(), mark.clone()));
            if let Some(Some(value)) = groups.get(rule.group).filter(|_| rule.group > 0) {
                let value = value.2;
                let value = separator_cut(value).map_or(value, |i| &value[..i]);
                found.push((value.to_string(), mark.clone()));
            }
            kinds.push(rule.kind.to_string());
            hay.made.push_str(&mark);
            Some(format!("{mark}{rest}"))
        });
        if skipped && input_markers == 0 {
            notes.push(NOTE_NESTED);
        }
        if let Some(r) = replaced {
            current = r;
            protected = marker_spans(&current);
        }
    }
    for (rule, slot) in EXTRA.iter().zip(&EXTRA_RE) {
        if !(rule.gate)(&hay) {
            continue;
        }
        let re = compiled(slot, rule);
        let mut protected = marker_spans(&current);
        let replaced = replace(&current, re, &mut protected, &mut false, |groups| {
            let (w0, w1, _) = groups[0]?;
            let (s0, s1, secret) = (*groups.get(rule.group)?)?;
            let head = current.get(w0..s0)?;
            let tail = current.get(s1..w1)?;
            // Messages: after "bearer" / "authorization" or a prose "name: ", a plain
            // lowercase word is a word ("bearer token", "unauthenticated: missing"), not a
            // value; `password=abc` is still a value.
            if stage == Stage::Values && secret.bytes().all(|b| b.is_ascii_lowercase()) {
                let h = head.to_ascii_lowercase();
                let prose = h.trim_end().ends_with(':') && h.ends_with(' ');
                if prose || h.contains("bearer") || h.contains("authorization") {
                    return None;
                }
            }
            let kind = worth_redacting(rule, head, secret)?;
            let mark = marker(kind, secret);
            found.push((secret.to_string(), mark.clone()));
            // A quoted value also appears unquoted once the shell has parsed the word.
            let unquoted = secret.trim_matches(|c| c == '"' || c == '\'');
            if unquoted.len() != secret.len() {
                found.push((unquoted.to_string(), mark.clone()));
            }
            kinds.push(kind.to_string());
            Some(format!("{head}{mark}{tail}"))
        });
        if let Some(r) = replaced {
            current = r;
        }
    }
    current
}

/// A capture group: byte span and text.
type Group<'t> = (usize, usize, &'t str);

/// Replace the matches of `re` in `text` that touch no `protected` span with what `f` returns
/// (`None` keeps the match). Returns `None` when nothing was replaced; otherwise the new text,
/// with `protected` moved to its new offsets.
fn replace<'t>(
    text: &'t str,
    re: &Regex,
    protected: &mut [(usize, usize)],
    skipped: &mut bool,
    mut f: impl FnMut(&[Option<Group<'t>>]) -> Option<String>,
) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    // (end of the replaced match in `text`, growth of the text up to there)
    let mut shifts: Vec<(usize, isize)> = Vec::new();
    let mut growth = 0isize;
    let mut groups = Vec::new();
    for caps in re.captures_iter(text.as_bytes()) {
        let Some(m) = caps.get_match() else { continue };
        if protected.iter().any(|&(s, e)| m.start() < e && s < m.end()) {
            *skipped = true;
            continue;
        }
        // Byte offsets; a group off a character boundary (never expected) reads as absent.
        groups.clear();
        groups.extend((0..caps.group_len()).map(|i| {
            caps.get_group(i)
                .and_then(|g| Some((g.start, g.end, text.get(g.range())?)))
        }));
        if groups[0].is_none() {
            continue;
        }
        let Some(new) = f(&groups) else { continue };
        out.push_str(&text[last..m.start()]);
        out.push_str(&new);
        last = m.end();
        growth += new.len() as isize - (m.end() - m.start()) as isize;
        shifts.push((m.end(), growth));
    }
    if shifts.is_empty() {
        return None;
    }
    out.push_str(&text[last..]);
    for span in protected.iter_mut() {
        // Spans never overlap a replaced match, so each lies wholly after some number of them.
        let g = shifts
            .iter()
            .take_while(|(end, _)| *end <= span.0)
            .last()
            .map_or(0, |(_, g)| *g);
        span.0 = span.0.saturating_add_signed(g);
        span.1 = span.1.saturating_add_signed(g);
    }
    Some(out)
}

/// Byte spans of the markers in `text`: well-formed ones (`[REDACTED:<[a-z0-9_]+>:<8 hex>]`),
/// and one cut short at the end of the text (optionally followed by the "..." of a cut), as in
/// a label or metadata value cut inside a marker: its pieces (`api_key:…`) are not secrets.
fn marker_spans(text: &str) -> Vec<(usize, usize)> {
    const OPEN: &str = "[REDACTED:";
    let b = text.as_bytes();
    let is_kind = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_';
    let is_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(OPEN).map(|i| i + from) {
        let mut j = i + OPEN.len();
        let kind_start = j;
        while j < b.len() && is_kind(b[j]) {
            j += 1;
        }
        let well_formed = j > kind_start
            && b.get(j) == Some(&b':')
            && b.len() >= j + 10
            && b[j + 1..j + 9].iter().all(|c| is_hex(*c))
            && b[j + 9] == b']';
        if well_formed {
            spans.push((i, j + 10));
            from = j + 10;
            continue;
        }
        if b.get(j) == Some(&b':') {
            j += 1;
            let hex_start = j;
            while j < b.len() && j < hex_start + 8 && is_hex(b[j]) {
                j += 1;
            }
        }
        if matches!(&text[j..], "" | "...") {
            spans.push((i, b.len()));
            break;
        }
        from = i + 1;
    }
    spans
}

/// Filters the extra rules' regexes cannot express: variable references are not secrets, and
/// the high-entropy rule needs mixed character classes and real entropy. Returns the kind to
/// write, or `None` to keep the text.
fn worth_redacting(rule: &Rule, head: &str, secret: &str) -> Option<&'static str> {
    let unquoted = secret.trim_matches(|c| c == '"' || c == '\'');
    if unquoted.is_empty() || unquoted.starts_with("[REDACTED") {
        return None;
    }
    match rule.filter {
        Filter::None => Some(rule.kind),
        Filter::Named | Filter::Reference => {
            // `$TOKEN`, `${TOKEN}`, `"$(cat file)"`: a reference, not the secret itself.
            let scheme = matches!(
                unquoted.to_ascii_lowercase().as_str(),
                "bearer" | "basic" | "token" | "digest" | "negotiate"
            );
            if scheme || unquoted.starts_with('$') {
                return None;
            }
            if rule.filter == Filter::Named && !head.to_ascii_lowercase().contains("pass") {
                return Some("generic_secret");
            }
            Some(rule.kind)
        }
        Filter::Entropy => {
            let has = |f: fn(&char) -> bool| unquoted.chars().any(|c| f(&c));
            let mixed = has(char::is_ascii_uppercase)
                && has(char::is_ascii_lowercase)
                && has(char::is_ascii_digit);
            (mixed && entropy(unquoted) >= 4.0).then_some(rule.kind)
        }
    }
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

/// First 8 hex digits of the SHA-256 of `data`'s UTF-8 (Maestro's `createHash("sha256")`).
fn hex8(data: &str) -> String {
    Sha256::digest(data.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn marker(kind: &str, secret: &str) -> String {
    format!("[REDACTED:{kind}:{}]", hex8(secret))
}

/// Maestro's control characters: C0 but tab, LF and CR, and DEL.
fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` of at most `units` UTF-16 units that ends on a character boundary.
fn utf16_prefix(s: &str, units: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return &s[..i];
        }
    }
    s
}

/// Maestro's `truncateWithHash`: `value` cut so that, with `...[<reason>:<8 hex of sha256 of
/// value>]` appended, it is `max` UTF-16 units long (the prefix is not trimmed).
fn cut_with_hash(value: &str, max: usize, reason: &str) -> String {
    let suffix = format!("...[{reason}:{}]", hex8(value));
    let keep = max.saturating_sub(utf16_len(&suffix));
    if keep == 0 {
        return suffix[3..].to_string();
    }
    format!("{}{suffix}", utf16_prefix(value, keep))
}

/// The command as it may leave, exactly as Maestro's sanitizer writes it (with our extra rules
/// on top): control characters (C0 but tab, LF, CR; and DEL) deleted, secrets redacted, a
/// command that is one base64 blob of over 1000 characters cut to 180 + `...[base64:<8 hex>]`,
/// and anything still over 1000 UTF-16 units cut to 977 + `...[truncated:<8 hex of sha256 of
/// the redacted text>]`. `changed()` is true whenever the result differs from `text`.
pub fn sanitize_command(text: &str) -> Redacted {
    let clean: String = text.chars().filter(|c| !is_control(*c)).collect();
    let mut r = redact(&clean);
    let is_blob = |s: &str| {
        s.len() > COMMAND_MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    if is_blob(&r.text) {
        r.text = cut_with_hash(&r.text, BASE64_MAX, "base64");
    }
    if utf16_len(&r.text) > COMMAND_MAX {
        r.text = cut_with_hash(&r.text, COMMAND_MAX, "truncated");
    }
    r.altered = r.text != text;
    r
}

/// JavaScript's `\s` (and `String.prototype.trim`'s whitespace), which Maestro's formatting
/// uses. It differs from Rust's `char::is_whitespace` in U+FEFF (space in JS) and U+0085 (not).
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Maestro's operation summary, built from already-sanitized text: runs of JavaScript
/// whitespace become one space, trimmed; over 96 UTF-16 units → the first 93, right-trimmed,
/// + "..."; "shell" only when the text is empty.
pub fn operation_summary(text: &str) -> String {
    if text.is_empty() {
        return "shell".into();
    }
    let s = text
        .split(is_js_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if utf16_len(&s) <= OPERATION_MAX {
        return s;
    }
    let head = utf16_prefix(&s, OPERATION_MAX - 3).trim_end_matches(is_js_space);
    format!("{head}...")
}

/// Redact the words of one command line, judged together: a secret split across words
/// (`--password VALUE`) is found in the joined line and removed from every word holding it.
pub fn redact_words(words: &[String]) -> Vec<String> {
    let (_, mut found) = redact_collect(&words.join(" "), Stage::Both);
    found.sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
    words
        .iter()
        .map(|w| {
            let mut w = redact(w).text;
            for (secret, marker) in &found {
                if secret.len() >= 4 && w.contains(secret.as_str()) {
                    w = w.replace(secret.as_str(), marker);
                }
            }
            w
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for (rule, slot) in MAESTRO.iter().zip(&MAESTRO_RE) {
            compiled(slot, rule);
        }
        for (rule, slot) in EXTRA.iter().zip(&EXTRA_RE) {
            compiled(slot, rule);
        }
    }

    #[test]
    fn the_entropy_rule_is_gated_by_a_run_it_could_redact() {
        let digest = "0123456789abcdef".repeat(4);
        let mixed = "Zx9Qw3Er5Ty7Ui1Op2As4Df6Gh8Jk0LmN";
        // Too uniform for the rule to keep: the gate stays shut (nothing compiled).
        assert!(!Hay::new(&digest).long_run);
        assert!(!Hay::new(&format!("x={digest} {}", digest.to_uppercase())).long_run);
        // Mixed classes across two runs are not one run.
        assert!(!Hay::new(&format!("{} {}", "a1".repeat(16), "B".repeat(32))).long_run);
        // A run it could redact, wherever it is (the last one included).
        assert!(Hay::new(mixed).long_run);
        assert!(Hay::new(&format!("{digest} --key={mixed}")).long_run);
        assert!(redact(&format!("curl -H x:{mixed}"))
            .text
            .contains("[REDACTED:"));
        assert_eq!(
            redact(&format!("sha {digest}")).text,
            format!("sha {digest}")
        );
    }

    #[test]
    fn format_and_digest() {
        let r = redact("export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert!(r.changed());
        assert_eq!(
            r.text,
            format!(
                "export GITHUB_TOKEN=[REDACTED:api_key:{}]",
                hex8("ghp_abcdefghijklmnopqrstuvwxyz0123456789")
            )
        );
        let again = redact(&r.text);
        assert_eq!(again.text, r.text);
        assert!(!again.changed());
    }

    #[test]
    fn references_and_ordinary_text_survive() {
        for s in [
            "curl -H \"Authorization: Bearer $GITHUB_TOKEN\" https://api.github.com",
            "git log --oneline -n 5",
            "git show 3f786850e387550fdab836ed7e6dc881de23001b",
            "ls src/classify/walk.rs",
            "echo $API_KEY",
            "cargo test --locked",
            "export TOKEN=$OTHER",
            "docker login --password \"$PW\" r.io",
            "mysql -u root -p\"$DB_PW\" db",
        ] {
            let r = redact(s);
            assert_eq!(r.text, s, "{s}");
            assert!(!r.changed());
        }
    }

    #[test]
    fn markers_are_found_and_never_touched() {
        let m = "[REDACTED:password:0123abcd]";
        assert_eq!(marker_spans(m), vec![(0, m.len())]);
        assert_eq!(
            marker_spans("[REDACTED:aws_[REDACTED:password:0123abcd]"),
            vec![(14, 42)]
        );
        assert!(marker_spans("[REDACTED:x:0123abcg]").is_empty());
        assert!(marker_spans("[REDACTED:password=hunter2hunter2").is_empty());
        assert_eq!(marker_spans("a [REDACTED:api_key:0a..."), vec![(2, 25)]);
        assert_eq!(marker_spans("a [REDACTED:api"), vec![(2, 15)]);
        assert_eq!(
            redact("Ran curl -H 'Authorization: Bearer [REDACTED:api_key:...").text,
            "Ran curl -H 'Authorization: Bearer [REDACTED:api_key:..."
        );
        for s in [
            format!("echo password={m}"),
            format!("curl -H 'Authorization: Bearer {m}'"),
            format!("export SECRET_KEY={m} x"),
        ] {
            assert_eq!(redact(&s).text, s);
        }
    }

    #[test]
    fn control_characters_and_cuts() {
        let s = sanitize_command("ls\u{1}\u{7f} -la\t\r\n");
        assert_eq!(s.text, "ls -la\t\r\n");
        assert!(s.changed() && s.kinds.is_empty());
        assert!(!sanitize_command("ls -la").changed());

        let long = "x ".repeat(800);
        let s = sanitize_command(&long);
        assert!(s.changed() && s.kinds.is_empty());
        assert_eq!(
            s.text,
            format!("{}...[truncated:{}]", &long[..977], hex8(&long))
        );
        assert_eq!(s.text.len(), 1000);

        let blob = "QUJD".repeat(300);
        let s = sanitize_command(&blob);
        assert_eq!(
            s.text,
            format!("{}...[base64:{}]", &blob[..180], hex8(&blob))
        );

        // A cut never splits a character: 976 units of 'a', then a pair straddling unit 977.
        let astral = format!("{}😀{}", "a".repeat(976), "b".repeat(100));
        let s = sanitize_command(&astral);
        assert!(s.text.starts_with(&"a".repeat(976)));
        assert!(
            s.text[976..].starts_with("...[truncated:"),
            "{}",
            &s.text[970..]
        );
    }

    #[test]
    fn summary() {
        assert_eq!(operation_summary(""), "shell");
        assert_eq!(operation_summary(" \n "), "");
        assert_eq!(operation_summary("  ls \t -la\n "), "ls -la");
        assert_eq!(operation_summary("a\u{a0}\u{feff}b\u{85}c"), "a b\u{85}c");
        let op = operation_summary(&"é".repeat(200));
        assert_eq!(op.chars().count(), 96);
        assert!(op.ends_with("..."));
        let op = operation_summary(&format!("{} {}", "a".repeat(92), "b".repeat(10)));
        assert_eq!(op, format!("{}...", "a".repeat(92)));
        let op = operation_summary(&"😀".repeat(60));
        assert_eq!(op, format!("{}...", "😀".repeat(46)));
    }

    #[test]
    fn words_are_redacted_jointly() {
        let words: Vec<String> = ["docker", "login", "--password", "Pa55w0rd-Reg1stry", "r.io"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = redact_words(&words);
        assert!(!out.iter().any(|w| w.contains("Pa55w0rd")), "{out:?}");
        assert_eq!(out[0], "docker");
        assert!(out[3].starts_with("[REDACTED:password:"), "{out:?}");
    }
}
