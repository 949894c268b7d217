//! The local Platform's policy: allow, require approval or deny, by risk level, capability or
//! command prefix, first matching rule wins.

use serde::Deserialize;

use maestro_sh::wire::ExecuteToolRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    RequireApproval,
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub action: Action,
    #[serde(default)]
    pub risk_levels: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub command_prefixes: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_action")]
    pub default: Action,
    #[serde(default = "default_ttl")]
    pub approval_ttl_ms: u64,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn default_action() -> Action {
    Action::Allow
}

fn default_ttl() -> u64 {
    15 * 60 * 1000
}

impl Default for Policy {
    /// Without a file: CRITICAL needs a human, everything else is allowed.
    fn default() -> Policy {
        Policy {
            default: Action::Allow,
            approval_ttl_ms: default_ttl(),
            rules: vec![Rule {
                action: Action::RequireApproval,
                risk_levels: vec!["RISK_LEVEL_CRITICAL".into()],
                capabilities: vec![],
                command_prefixes: vec![],
                reason: Some("critical commands need a human approval".into()),
            }],
        }
    }
}

impl Policy {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Policy> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("policy file {} is not a valid policy", path.display()))
    }

    /// The action and reason for a request.
    pub fn evaluate(&self, req: &ExecuteToolRequest) -> (Action, String) {
        let command = req
            .arguments
            .command
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (i, rule) in self.rules.iter().enumerate() {
            let risk = rule.risk_levels.is_empty()
                || rule.risk_levels.iter().any(|r| r == &req.risk_level);
            let cap = rule.capabilities.is_empty()
                || rule.capabilities.iter().any(|c| c == &req.tool.capability);
            let prefix = rule.command_prefixes.is_empty()
                || rule
                    .command_prefixes
                    .iter()
                    .any(|p| command.starts_with(p.as_str()));
            if risk && cap && prefix {
                let reason = rule
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("policy rule {} ({:?})", i + 1, rule.action));
                return (rule.action, reason);
            }
        }
        (self.default, "policy default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cmd: &str, risk: &str) -> ExecuteToolRequest {
        let mut r = ExecuteToolRequest::default();
        r.arguments.command = cmd.into();
        r.risk_level = risk.into();
        r.tool.capability = "maestro.tool.bash".into();
        r
    }

    #[test]
    fn first_match_wins() {
        let p: Policy = serde_json::from_str(
            r#"{"default":"allow","rules":[
                {"action":"deny","command_prefixes":["rm "],"reason":"no rm"},
                {"action":"require_approval","risk_levels":["RISK_LEVEL_CRITICAL"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.evaluate(&req("rm  -rf x", "RISK_LEVEL_CRITICAL")),
            (Action::Deny, "no rm".into())
        );
        assert_eq!(
            p.evaluate(&req("git push -f", "RISK_LEVEL_CRITICAL")).0,
            Action::RequireApproval
        );
        assert_eq!(p.evaluate(&req("ls", "RISK_LEVEL_LOW")).0, Action::Allow);
        assert_eq!(
            Policy::default()
                .evaluate(&req("x", "RISK_LEVEL_CRITICAL"))
                .0,
            Action::RequireApproval
        );
    }
}
