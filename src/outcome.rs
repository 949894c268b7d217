//! The outcomes table (DESIGN.md): what happened, whether the command runs, the exit status,
//! the sidecar's `governed_outcome`, and the one stderr line a refusal prints.

use std::fmt::Write;

/// Exit status of every refusal.
pub const REFUSED: i32 = 126;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Observed,
    Allowed,
    Approved,
    Denied,
    ApprovalTimeout,
    PlatformUnavailable,
    PlatformMalformed,
    Misconfigured,
    Cancelled,
    /// ExecuteTool replayed an execution of this step that was already started (running,
    /// finished, waiting in another invocation): never permission to run again.
    AlreadyRan,
    /// The caller reused a step id (tool call id) for a different command.
    StepIdReused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Observed => "observed",
            Outcome::Allowed => "allowed",
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::ApprovalTimeout => "approval_timeout",
            Outcome::PlatformUnavailable => "platform_unavailable",
            Outcome::PlatformMalformed => "platform_malformed",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Cancelled => "cancelled",
            Outcome::AlreadyRan => "already_ran",
            Outcome::StepIdReused => "step_id_reused",
        }
    }

    /// Does the command run?
    pub fn runs(self) -> bool {
        matches!(
            self,
            Outcome::Observed | Outcome::Allowed | Outcome::Approved
        )
    }

    /// What to do about it, for the stderr line.
    fn advice(self) -> &'static str {
        match self {
            Outcome::Denied => "the command was not run; do not retry it unchanged: take another approach, or ask the user",
            Outcome::ApprovalTimeout => "the command was not run; nobody decided in time: ask the user to approve it in EvalOps Platform, then run it again",
            Outcome::PlatformUnavailable => "the command was not run; retry later, or tell the user that Platform is unreachable (maestro-sh --doctor)",
            Outcome::PlatformMalformed => "the command was not run; Platform's answer could not be trusted: tell the user (maestro-sh --doctor)",
            Outcome::Misconfigured => "the command was not run; retrying will not help: tell the user to fix the configuration (maestro-sh --doctor)",
            Outcome::Cancelled => "the command was not run",
            Outcome::AlreadyRan => "the command was not run again; to run it again use a new tool call id (MAESTRO_TOOL_CALL_ID)",
            Outcome::StepIdReused => "the command was not run; give each command its own tool call id (MAESTRO_TOOL_CALL_ID)",
            Outcome::Observed | Outcome::Allowed | Outcome::Approved => "",
        }
    }
}

/// A refusal: the outcome, why, and the ids known so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: Outcome,
    pub reason: String,
    pub tool_execution_id: Option<String>,
    pub approval_request_id: Option<String>,
}

impl Refusal {
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Refusal {
        Refusal {
            outcome,
            reason: reason.into(),
            tool_execution_id: None,
            approval_request_id: None,
        }
    }

    pub fn with_execution(mut self, id: Option<&str>) -> Refusal {
        self.tool_execution_id = id.map(str::to_owned);
        self
    }

    pub fn with_approval(mut self, id: Option<&str>) -> Refusal {
        self.approval_request_id = id.map(str::to_owned);
        self
    }

    /// `maestro-sh: <outcome>: <reason>; <advice> (tool_execution_id=…, approval_request_id=…)`,
    /// one line, secrets redacted.
    pub fn line(&self) -> String {
        let reason = crate::redact::redact(&self.reason).text;
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut s = format!("maestro-sh: {}: {}", self.outcome.as_str(), reason.trim());
        let advice = self.outcome.advice();
        if !advice.is_empty() {
            let _ = write!(s, "; {advice}");
        }
        let _ = write!(
            s,
            " (tool_execution_id={}, approval_request_id={})",
            self.tool_execution_id.as_deref().unwrap_or("none"),
            self.approval_request_id.as_deref().unwrap_or("none")
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let r =
            Refusal::new(Outcome::Denied, "policy says no\nreally").with_execution(Some("te_1"));
        assert_eq!(
            r.line(),
            "maestro-sh: denied: policy says no really; the command was not run; do not retry it unchanged: take another approach, or ask the user (tool_execution_id=te_1, approval_request_id=none)"
        );
        assert!(!Outcome::Denied.runs() && Outcome::Approved.runs());
    }
}
