//! Asking Platform: ExecuteTool, then — when Platform holds the call for a human — the approval
//! wait ([`approval`], with its watcher, decisions fd and status line as children). Everything
//! that is not a clear "run it" is a refusal: Maestro's bridge treats FAILED, CANCELLED, unknown
//! states and `{}` as allow; we do not.
//!
//! Deciding prints nothing but the approval status line and exits nothing: it returns
//! [`Allowed`] or a [`Refusal`] (a cancel signal included), and the caller reports and leaves.
//! It talks to Platform through [`ToolExecutions`], so it is testable with a scripted Platform.

pub mod approval;
pub mod decisions;
mod status_line;
pub mod watch;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::config::PlatformConfig;
use crate::context::Context;
use crate::events::Sidecar;
use crate::outcome::{Outcome, Refusal};
use crate::platform::{CallError, Client, Execution};
use crate::request::Labels;
use crate::wire::{self, ExecutionState};

pub use approval::WaitSettings;
pub use decisions::DECISIONS_FD_VAR;

/// The ToolExecution calls deciding makes (platform-contract.md, section 3). [`Client`] is the
/// real one; tests script their own.
pub trait ToolExecutions: Send + Sync {
    /// `ExecuteTool`: open (or replay) the execution for a request.
    fn execute_tool(
        &self,
        req: &wire::ExecuteToolRequest,
    ) -> Result<crate::platform::Answer, CallError>;
    /// `GetToolExecution`, long-polling up to `wait`.
    fn get_tool_execution(
        &self,
        req: &wire::GetToolExecutionRequest,
        wait: Duration,
    ) -> Result<Execution, CallError>;
    /// `GetApproval`.
    fn get_approval(
        &self,
        req: &wire::GetApprovalRequest,
    ) -> Result<wire::GetApprovalResponse, CallError>;
    /// `ResumeToolExecution` with the resume token.
    fn resume(&self, req: &wire::ResumeToolExecutionRequest) -> Result<Execution, CallError>;
    /// The budget of one call.
    fn timeout(&self) -> Duration;
}

impl ToolExecutions for Client {
    fn execute_tool(
        &self,
        req: &wire::ExecuteToolRequest,
    ) -> Result<crate::platform::Answer, CallError> {
        Client::execute_tool(self, req)
    }
    fn get_tool_execution(
        &self,
        req: &wire::GetToolExecutionRequest,
        wait: Duration,
    ) -> Result<Execution, CallError> {
        Client::get_tool_execution(self, req, wait)
    }
    fn get_approval(
        &self,
        req: &wire::GetApprovalRequest,
    ) -> Result<wire::GetApprovalResponse, CallError> {
        Client::get_approval(self, req)
    }
    fn resume(&self, req: &wire::ResumeToolExecutionRequest) -> Result<Execution, CallError> {
        Client::resume(self, req)
    }
    fn timeout(&self) -> Duration {
        Client::timeout(self)
    }
}

/// The organization and workspace every follow-up call names (from the Platform config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub organization_id: String,
    pub workspace_id: String,
}

impl From<&PlatformConfig> for Tenant {
    fn from(cfg: &PlatformConfig) -> Tenant {
        Tenant {
            organization_id: cfg.organization_id.clone(),
            workspace_id: cfg.workspace_id.clone(),
        }
    }
}

/// Platform said run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `Allowed`, or `Approved` after a human decision.
    pub outcome: Outcome,
    pub execution_id: String,
    pub approval_request_id: Option<String>,
}

/// Map a failed call to the outcome table.
pub fn refusal_for(err: &CallError) -> Refusal {
    let outcome = match err {
        CallError::Unavailable(_) => Outcome::PlatformUnavailable,
        e if e.is_config_problem() => Outcome::Misconfigured,
        _ => Outcome::PlatformMalformed,
    };
    Refusal::new(outcome, err.to_string())
}

/// Everything deciding needs besides the request, settled before the first call.
pub struct Decider<'a> {
    pub platform: Arc<dyn ToolExecutions>,
    pub tenant: Tenant,
    /// The step (tool call id) and actor, for events and the resume's `decidedBy` fallback.
    pub ctx: &'a Context,
    /// Maestro's presentation of the call, shown on the approval event.
    pub labels: &'a Labels,
    pub wait: WaitSettings,
    /// Maestro's approval UI (`MAESTRO_SH_DECISIONS_FD`), checked by the settings.
    pub decisions_fd: Option<RawFd>,
    /// Where the adoption record goes back when an adopted wait gives up (adopt.rs).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Decider<'_> {
    /// Governed: ask, wait if asked to, and return whether the command may run.
    pub fn ask(
        &self,
        req: &wire::ExecuteToolRequest,
        sidecar: &mut Sidecar,
    ) -> Result<Allowed, Refusal> {
        let platform = self.platform.as_ref();
        let decision = platform.execute_tool(req).map_err(|e| refusal_for(&e))?;
        // An idempotent replay is an execution some earlier invocation of this step started:
        // whatever its state, it is never our permission to run (at most once per tool call).
        // The one exception: our own earlier attempt (same invocation id), whose answer was
        // lost in transit and which our client retried; it is still ours to run if Platform
        // allowed it. An execution carrying another invocation's id is someone else's even if
        // Platform forgot the replay flag: that is our second guard, and costs no local state.
        let attempt = attempt_of(req, &decision.execution);
        let replayed = decision.idempotent_replay || attempt == Attempt::Other;
        if replayed
            && !(attempt == Attempt::Ours && decision.execution.state == ExecutionState::Running)
        {
            return Err(replay_refusal(req, &decision.execution));
        }
        let mut execution = decision.execution;
        // Decided states come straight back; ACCEPTED / POLICY_EVALUATING mean "not yet":
        // watch the execution until it moves, within the same budget as one call.
        let mut polls = 0;
        while matches!(
            execution.state,
            ExecutionState::Accepted | ExecutionState::PolicyEvaluating
        ) {
            polls += 1;
            if polls > 10 {
                return Err(Refusal::new(
                    Outcome::PlatformUnavailable,
                    format!(
                        "policy evaluation did not finish (state {})",
                        execution.state.as_wire()
                    ),
                )
                .with_execution(Some(&execution.id)));
            }
            let get = get_request(
                &self.tenant,
                &execution.id,
                platform.timeout().as_millis() as u64,
            );
            let next = platform
                .get_tool_execution(&get, platform.timeout())
                .map_err(|e| refusal_for(&e).with_execution(Some(&execution.id)))?;
            same_execution(&execution.id, &next)?;
            execution = next;
        }
        let id = execution.id.clone();
        match execution.state {
            ExecutionState::Running => Ok(Allowed {
                outcome: Outcome::Allowed,
                execution_id: id,
                approval_request_id: None,
            }),
            ExecutionState::WaitingApproval => approval::wait_fresh(self, req, &execution, sidecar),
            ExecutionState::Denied => {
                let reason = execution
                    .raw
                    .error_message
                    .as_deref()
                    .map(crate::outcome::inert)
                    .filter(|m| !m.trim().is_empty());
                Err(Refusal::new(
                    Outcome::Denied,
                    reason.unwrap_or_else(|| "Platform policy denied the command".into()),
                )
                .with_execution(Some(&id)))
            }
            other => Err(Refusal::new(
                Outcome::PlatformMalformed,
                format!(
                    "ExecuteTool answered state {}, which does not allow running",
                    other.as_wire(),
                ),
            )
            .with_execution(Some(&id))),
        }
    }

    /// Wait on an approval request left open by a killed run of this session and claimed for
    /// this one (adopt.rs); `execution` is Platform's view, already verified against `record`.
    pub fn wait_adopted(
        &self,
        req: &wire::ExecuteToolRequest,
        execution: &Execution,
        record: &crate::adopt::Record,
        sidecar: &mut Sidecar,
    ) -> Result<Allowed, Refusal> {
        approval::wait_adopted(self, req, execution, record, sidecar)
    }
}

/// Metadata key carrying the SHA-256 of the sanitized command (our addition to the request).
pub const COMMAND_DIGEST_KEY: &str = "maestro_sh_command_sha256";
/// Metadata key carrying a random id of this maestro-sh invocation (our addition).
pub const INVOCATION_KEY: &str = "maestro_sh_invocation_id";

/// Whose attempt opened the execution, by the invocation id Platform echoes in its metadata.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Ours,
    Other,
    /// Platform does not echo our metadata: only its replay flag tells.
    Unknown,
}

fn attempt_of(req: &wire::ExecuteToolRequest, execution: &Execution) -> Attempt {
    let ours = req.metadata.get(INVOCATION_KEY);
    let theirs = execution
        .raw
        .metadata
        .as_ref()
        .and_then(|m| m.get(INVOCATION_KEY));
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => Attempt::Ours,
        (Some(_), Some(_)) => Attempt::Other,
        _ => Attempt::Unknown,
    }
}

/// Why a replayed execution does not let this invocation run: another command under the same
/// step id (`step_id_reused`), a denial (`denied`), or an attempt that already started
/// (`already_ran`, with what Platform recorded about it).
pub fn replay_refusal(req: &wire::ExecuteToolRequest, replayed: &Execution) -> Refusal {
    let step = req.linkage.step_id.as_deref().unwrap_or("?");
    let id = Some(replayed.id.as_str());
    let approval = replayed
        .raw
        .approval_wait
        .as_ref()
        .and_then(|w| w.approval_request_id.as_deref());
    let theirs = replayed
        .raw
        .metadata
        .as_ref()
        .and_then(|m| m.get(COMMAND_DIGEST_KEY));
    let ours = req.metadata.get(COMMAND_DIGEST_KEY);
    if let (Some(theirs), Some(ours)) = (theirs, ours) {
        if theirs != ours {
            return Refusal::new(
                Outcome::StepIdReused,
                format!(
                    "tool call id {step:?} was already used for a different command \
                     (execution {}, state {})",
                    replayed.id,
                    replayed.state.as_wire()
                ),
            )
            .with_execution(id)
            .with_approval(approval);
        }
    }
    let state = replayed.state;
    let what = match state {
        ExecutionState::Denied => {
            let why = replayed
                .raw
                .error_message
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or("Platform policy denied the command");
            return Refusal::new(
                Outcome::Denied,
                format!("{why} (tool call {step:?} was denied before)"),
            )
            .with_execution(id)
            .with_approval(approval);
        }
        ExecutionState::Running => {
            "is running in another invocation (or one that was killed)".to_string()
        }
        ExecutionState::Succeeded | ExecutionState::Failed => {
            format!("already ran{}", recorded_result(&replayed.raw))
        }
        ExecutionState::WaitingApproval => {
            "is waiting for approval in another invocation".to_string()
        }
        ExecutionState::Cancelled => "was cancelled earlier".to_string(),
        _ => "was already started by another invocation".to_string(),
    };
    Refusal::new(
        Outcome::AlreadyRan,
        format!(
            "tool call {step:?} {what} (Platform replayed execution state {})",
            state.as_wire()
        ),
    )
    .with_execution(id)
    .with_approval(approval)
}

/// `" (exit 3)"`-style note of the recorded result, when Platform has one.
fn recorded_result(execution: &wire::ToolExecution) -> String {
    let safe = execution
        .output
        .as_ref()
        .and_then(|o| o.safe_output.as_ref());
    let status = safe.and_then(|s| s.get("status")).and_then(|v| v.as_str());
    let exit = safe
        .and_then(|s| s.get("exit_status"))
        .and_then(|v| v.as_i64());
    match (status, exit) {
        (Some(s), Some(e)) => format!(" ({}, exit status {e})", crate::platform::truncate(s, 32)),
        (None, Some(e)) => format!(" (exit status {e})"),
        (Some(s), None) => format!(" ({})", crate::platform::truncate(s, 32)),
        (None, None) => String::new(),
    }
}

/// A follow-up answer must be about the execution we asked about.
pub fn same_execution(expected: &str, got: &Execution) -> Result<(), Refusal> {
    if got.id != expected {
        return Err(Refusal::new(
            Outcome::PlatformMalformed,
            format!(
                "Platform answered about execution {} instead of {expected}",
                got.id
            ),
        )
        .with_execution(Some(expected)));
    }
    Ok(())
}

/// `GetToolExecution` for execution `id` of `tenant`, long-polling up to `wait_ms`.
pub fn get_request(tenant: &Tenant, id: &str, wait_ms: u64) -> wire::GetToolExecutionRequest {
    wire::GetToolExecutionRequest {
        id: id.to_string(),
        organization_id: Some(tenant.organization_id.clone()),
        workspace_id: Some(tenant.workspace_id.clone()),
        wait_timeout_ms: Some(wait_ms),
    }
}

#[cfg(test)]
mod tests;
