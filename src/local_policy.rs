//! The optional local policy file: prefix rules in the spirit of Codex's execpolicy, layered
//! under Platform's decision. It can only make things stricter.
//!
//! Path: `MAESTRO_SH_POLICY_FILE` (no default). Format (JSON):
//!
//! ```json
//! {"rules": [
//!   {"prefix": ["git", "push"], "decision": "deny", "reason": "pushes go through CI"},
//!   {"prefix": ["terraform"], "decision": "govern"},
//!   {"prefix": ["npm", "test"], "decision": "observe"}
//! ]}
//! ```
//!
//! A rule matches a simple command when its program (after wrappers such as `env` or `sudo`
//! are stripped and paths resolved) equals `prefix[0]` and the words after it start with the
//! rest of `prefix`. Every simple command counts, nested ones included (`bash -c`, `$(...)`).
//! The strongest matching decision wins: `deny` (refuse without running, exit 126) >
//! `govern` (ask Platform first, whatever the flags say) > `observe` (no change: it can never
//! weaken what Platform or the flags decide).

use serde::Deserialize;

use crate::classify::Classification;
use crate::env::Env;

pub const POLICY_FILE_VAR: &str = "MAESTRO_SH_POLICY_FILE";

/// What a rule asks for, weakest first (serialized as the rule's `decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[serde(alias = "allow-observe", alias = "allow_observe", alias = "allow")]
    Observe,
    Govern,
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub prefix: Vec<String>,
    pub decision: Action,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicy {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// The strongest matching rule for a classification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub decision: Action,
    /// The rule's prefix, joined with spaces.
    pub rule: String,
    pub reason: String,
}

/// The policy file could not be used; governance may depend on it, so callers fail closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{POLICY_FILE_VAR}={path:?}: {problem}; fix the file or unset the variable")]
pub struct PolicyError {
    pub path: String,
    pub problem: String,
}

/// Load the policy named by `MAESTRO_SH_POLICY_FILE`; `Ok(None)` when the variable is unset.
pub fn load(env: &dyn Env) -> Result<Option<LocalPolicy>, PolicyError> {
    let Some(path) = env.first_value(&[POLICY_FILE_VAR]) else {
        return Ok(None);
    };
    let fail = |problem: String| PolicyError {
        path: path.clone(),
        problem,
    };
    let text = crate::fsread::read_config(std::path::Path::new(&path))
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let policy: LocalPolicy =
        serde_json::from_slice(&text).map_err(|e| fail(format!("not a policy file ({e})")))?;
    if let Some(r) = policy.rules.iter().find(|r| r.prefix.is_empty()) {
        return Err(fail(format!("a {:?} rule has an empty prefix", r.decision)));
    }
    Ok(Some(policy))
}

impl LocalPolicy {
    /// The strongest rule matching any simple command in `c`, if any.
    pub fn evaluate(&self, c: &Classification) -> Option<Verdict> {
        let mut best: Option<Verdict> = None;
        for cmd in &c.commands {
            let words = command_words(&cmd.program, &cmd.argv);
            for rule in &self.rules {
                let matches = rule.prefix.len() <= words.len()
                    && rule.prefix.iter().zip(&words).all(|(p, w)| p == w);
                if matches && best.as_ref().is_none_or(|b| rule.decision > b.decision) {
                    let joined = rule.prefix.join(" ");
                    best = Some(Verdict {
                        decision: rule.decision,
                        reason: rule
                            .reason
                            .clone()
                            .unwrap_or_else(|| format!("local policy rule {joined:?}")),
                        rule: joined,
                    });
                }
            }
        }
        best
    }
}

/// The program name followed by the words after it in argv (wrappers before it dropped).
fn command_words(program: &str, argv: &[String]) -> Vec<String> {
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let prog = base(program);
    let start = argv.iter().position(|w| base(w) == prog);
    let mut words = vec![prog];
    if let Some(i) = start {
        words.extend(argv.iter().skip(i + 1).cloned());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::env::MapEnv;

    fn policy(json: &str) -> LocalPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn strongest_rule_wins_and_wrappers_are_seen_through() {
        let p = policy(
            r#"{"rules":[{"prefix":["git","push"],"decision":"deny","reason":"no pushes"},
                {"prefix":["git"],"decision":"govern"},{"prefix":["ls"],"decision":"observe"}]}"#,
        );
        let v = p
            .evaluate(&classify("sudo -u me git push origin main"))
            .unwrap();
        assert_eq!(v.decision, Action::Deny);
        assert_eq!(v.reason, "no pushes");
        let v = p.evaluate(&classify("ls && bash -c 'git status'")).unwrap();
        assert_eq!(v.decision, Action::Govern);
        let v = p.evaluate(&classify("/bin/ls -la")).unwrap();
        assert_eq!(v.decision, Action::Observe);
        assert!(p.evaluate(&classify("cat x")).is_none());
    }

    #[test]
    fn load_fails_closed() {
        assert!(load(&MapEnv::default()).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        std::fs::write(&f, r#"{"rules":[{"prefix":[],"decision":"deny"}]}"#).unwrap();
        let env = MapEnv::from_pairs([(POLICY_FILE_VAR, f.to_str().unwrap())]);
        assert!(load(&env).is_err());
        std::fs::write(&f, r#"{"rules":[{"prefix":["x"],"decision":"allow-all"}]}"#).unwrap();
        assert!(load(&env).is_err());
        std::fs::write(
            &f,
            r#"{"rules":[{"prefix":["x"],"decision":"allow-observe"}]}"#,
        )
        .unwrap();
        assert!(load(&env).unwrap().is_some());
    }
}
