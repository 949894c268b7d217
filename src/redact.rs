//! Secret redaction for every text that leaves the process (request fields, metadata, events,
//! error lines). A secret becomes `[REDACTED:<kind>:<first 8 hex of sha256 of the secret>]`
//! (platform-contract.md, section 4): readers learn what kind was removed, and equal secrets
//! correlate without being revealed.
//!
//! Patterns are compiled once, on first use, which only happens on the observe/governed path:
//! pass-through never redacts.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use sha2::{Digest, Sha256};

/// Commands longer than this many characters are cut (Maestro's sanitizer).
const COMMAND_MAX: usize = 1000;
const COMMAND_KEEP: usize = 977;
const OPERATION_MAX: usize = 96;

/// Redacted text and the kinds of secret removed (one entry per removal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub kinds: Vec<String>,
}

impl Redacted {
    /// True when anything was removed.
    pub fn changed(&self) -> bool {
        !self.kinds.is_empty()
    }
}

/// One pattern: `secret` names the capture group holding the secret (0 = whole match); the
/// rest of the match is kept.
struct Pattern {
    kind: &'static str,
    re: Regex,
    secret: usize,
}

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[REDACTED:[a-z0-9_]+:[0-9a-f]{8}\]").expect("marker pattern is valid")
});

/// Name fragments that say "this value is a secret".
const SECRET_NAME: &str = r"[A-Za-z0-9_.\-]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIALS?|AUTH)[A-Za-z0-9_]*";
/// A value: quoted, or a run of non-separator characters.
const VALUE: &str = r#"(?:"[^"\n]*"|'[^'\n]*'|[^\s'";&|)<>]+)"#;

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind: &'static str, re: &str, secret: usize| Pattern {
        kind,
        re: Regex::new(re).unwrap_or_else(|e| panic!("redaction pattern {kind} is invalid: {e}")),
        secret,
    };
    vec![
        p(
            "private_key",
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
            0,
        ),
        p(
            "private_key",
            r#"(?i)("private_key"\s*:\s*")((?:[^"\\]|\\.)+)""#,
            2,
        ),
        p(
            "auth_header",
            r#"(?i)((?:proxy-)?authorization\s*:\s*(?:bearer|basic|token|digest|negotiate|apikey)?\s*)([^\s'"]{4,})"#,
            2,
        ),
        p(
            "bearer_token",
            r"(?i)(\bbearer\s+)([A-Za-z0-9\-._~+/]{8,}=*)",
            2,
        ),
        p(
            "url_credentials",
            r#"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'"]*:)([^\s/@'"]+)@"#,
            2,
        ),
        p("github_token", r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b", 0),
        p("github_token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", 0),
        p(
            "gitlab_token",
            r"\bgl(?:pat|dt|rt|cbt|ptt|ft|oas)-[A-Za-z0-9_\-]{20,}",
            0,
        ),
        p("slack_token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", 0),
        p(
            "slack_webhook",
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
            0,
        ),
        p(
            "aws_access_key_id",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b",
            0,
        ),
        p(
            "aws_secret_access_key",
            r#"(?i)(aws_?secret_?access_?key["']?\s*[=:]\s*["']?)([A-Za-z0-9/+=]{40})"#,
            2,
        ),
        p("gcp_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", 0),
        p("gcp_oauth_token", r"\bya29\.[0-9A-Za-z_\-]{20,}", 0),
        p("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}", 0),
        p(
            "openai_key",
            r"\bsk-(?:proj-|svcacct-|admin-|live-)?[A-Za-z0-9_\-]{20,}",
            0,
        ),
        p(
            "stripe_key",
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
            0,
        ),
        p("stripe_key", r"\bwhsec_[A-Za-z0-9]{20,}", 0),
        p("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
        p("pypi_token", r"\bpypi-[A-Za-z0-9_\-]{40,}", 0),
        p(
            "jwt",
            r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}",
            0,
        ),
        p(
            "secret_flag",
            &format!(
                r"(?i)(--?(?:password|passwd|pass|token|secret|api-?key|access-?key|access-token|auth-token|client-secret|private-key|secret-key)(?:=|\s+))({VALUE})"
            ),
            2,
        ),
        p(
            "password",
            r"(\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n|;&]*?\s-p)([^\s'\x22]+)",
            2,
        ),
        p(
            "secret_assignment",
            &format!(r#"(?i)(\b{SECRET_NAME}["']?\s*[=:]\s*)({VALUE})"#),
            2,
        ),
        p("high_entropy", r"[A-Za-z0-9+/_\-]{32,}={0,2}", 0),
    ]
});

/// Redact every secret in `text`. Idempotent (redacting redacted text changes nothing) and
/// total: never panics, any UTF-8 input.
pub fn redact(text: &str) -> Redacted {
    redact_collect(text).0
}

/// Redact, and also return each removed secret with its marker.
fn redact_collect(text: &str) -> (Redacted, Vec<(String, String)>) {
    let mut kinds = Vec::new();
    let mut found = Vec::new();
    let mut current = text.to_string();
    // Iterate to a fixpoint so a second call finds nothing new.
    for _ in 0..4 {
        let before = kinds.len();
        for pat in PATTERNS.iter() {
            current = apply(pat, &current, &mut kinds, &mut found);
        }
        if kinds.len() == before {
            break;
        }
    }
    let r = Redacted {
        text: current,
        kinds,
    };
    (r, found)
}

/// Redact the words of one command line, judged together: a secret split across words
/// (`--password VALUE`) is found in the joined line and removed from every word holding it.
pub fn redact_words(words: &[String]) -> Vec<String> {
    let (_, mut found) = redact_collect(&words.join(" "));
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

fn apply(
    pat: &Pattern,
    text: &str,
    kinds: &mut Vec<String>,
    found: &mut Vec<(String, String)>,
) -> String {
    if !pat.re.is_match(text) {
        return text.to_string();
    }
    let markers: Vec<(usize, usize)> = MARKER
        .find_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect();
    pat.re
        .replace_all(text, |caps: &Captures| {
            let whole = caps.get(0).map_or("", |m| m.as_str());
            let Some(secret) = caps.get(pat.secret) else {
                return whole.to_string();
            };
            let (s, e) = (secret.start(), secret.end());
            let inside_marker = markers.iter().any(|(ms, me)| s < *me && *ms < e);
            if inside_marker || !worth_redacting(pat.kind, secret.as_str()) {
                return whole.to_string();
            }
            kinds.push(pat.kind.to_string());
            let m0 = caps.get(0).map_or(0, |m| m.start());
            let head = text.get(m0..s).unwrap_or("");
            let tail = text
                .get(e..caps.get(0).map_or(e, |m| m.end()))
                .unwrap_or("");
            let mark = marker(pat.kind, secret.as_str());
            found.push((secret.as_str().to_string(), mark.clone()));
            // A quoted value also appears unquoted once the shell has parsed the word.
            let unquoted = secret.as_str().trim_matches(|c| c == '"' || c == '\'');
            if unquoted.len() != secret.as_str().len() {
                found.push((unquoted.to_string(), mark.clone()));
            }
            format!("{head}{mark}{tail}")
        })
        .into_owned()
}

/// Filters that regexes cannot express: variable references are not secrets, and the
/// high-entropy rule needs mixed character classes and real entropy.
fn worth_redacting(kind: &str, secret: &str) -> bool {
    let unquoted = secret.trim_matches(|c| c == '"' || c == '\'');
    if unquoted.is_empty() {
        return false;
    }
    match kind {
        "secret_assignment" | "secret_flag" | "password" | "auth_header" => {
            // `$TOKEN`, `${TOKEN}`, `"$(cat file)"`: a reference, not the secret itself.
            let scheme = matches!(
                unquoted.to_ascii_lowercase().as_str(),
                "bearer" | "basic" | "token" | "digest" | "negotiate"
            );
            !(scheme || unquoted.starts_with('$') || unquoted.starts_with("[REDACTED"))
        }
        "high_entropy" => {
            let has = |f: fn(&char) -> bool| unquoted.chars().any(|c| f(&c));
            has(char::is_ascii_uppercase)
                && has(char::is_ascii_lowercase)
                && has(char::is_ascii_digit)
                && entropy(unquoted) >= 4.0
        }
        _ => true,
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

/// The command as it may leave: redacted, then cut like Maestro's sanitizer (over 1000
/// chars → the first 977 + `...[truncated:<8 hex of sha256 of the redacted text>]`).
pub fn sanitize_command(text: &str) -> Redacted {
    let mut r = redact(text);
    if r.text.chars().count() > COMMAND_MAX {
        let digest = hex8(&r.text);
        let mut cut: String = r.text.chars().take(COMMAND_KEEP).collect();
        cut.push_str(&format!("...[truncated:{digest}]"));
        r.text = cut;
    }
    r
}

/// One-line summary of already-redacted text: whitespace collapsed, at most 96 chars (93 +
/// "..."), "shell" when empty.
pub fn operation_summary(text: &str) -> String {
    let s = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        "shell".into()
    } else if s.chars().count() > OPERATION_MAX {
        format!(
            "{}...",
            s.chars().take(OPERATION_MAX - 3).collect::<String>()
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_digest() {
        let r = redact("export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert!(r.changed());
        assert!(!r.text.contains("ghp_abc"), "{}", r.text);
        assert!(
            r.text.starts_with("export GITHUB_TOKEN=[REDACTED:"),
            "{}",
            r.text
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
        ] {
            assert_eq!(redact(s).text, s, "{s}");
        }
    }

    #[test]
    fn truncation_and_summary() {
        let long = "x ".repeat(800);
        let s = sanitize_command(&long);
        assert!(s.text.contains("...[truncated:"));
        assert_eq!(
            s.text.chars().count(),
            977 + "...[truncated:12345678]".len()
        );
        assert_eq!(operation_summary("  "), "shell");
        let op = operation_summary(&"é".repeat(200));
        assert_eq!(op.chars().count(), 96);
        assert!(op.ends_with("..."));
    }
}
