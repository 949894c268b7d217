//! Asking Platform: ExecuteTool, then — when Platform holds the call for a human — the approval
//! wait. Everything that is not a clear "run it" is a refusal: Maestro's bridge treats FAILED,
//! CANCELLED, unknown states and `{}` as allow; we do not.

use std::sync::Arc;

use crate::config::PlatformConfig;
use crate::context::Context;
use crate::events::Sidecar;
use crate::outbox;
use crate::outcome::{Outcome, Refusal};
use crate::platform::{CallError, Checked, Client};
use crate::wire::{self, ExecutionState};

pub use crate::approval::DECISIONS_FD_VAR;

/// Platform said run it.
#[derive(Debug, Clone)]
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

/// Governed: ask, wait if asked to, and return whether the command may run.
pub fn decide(
    client: &Arc<Client>,
    cfg: &PlatformConfig,
    ctx: &Context,
    req: &wire::ExecuteToolRequest,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let decision = client.execute_tool(req).map_err(|e| refusal_for(&e))?;
    // An idempotent replay is an execution some earlier invocation of this step started:
    // whatever its state, it is never our permission to run (at most once per tool call).
    // The one exception: our own earlier attempt (same invocation id), whose answer was lost
    // in transit and which our client retried; it is still ours to run if Platform allowed it.
    // An execution carrying another invocation's id is someone else's even if Platform forgot
    // the replay flag: that is our second guard, and costs no local state.
    let attempt = attempt_of(req, &decision.execution);
    let replayed = decision.idempotent_replay || attempt == Attempt::Other;
    if replayed
        && !(attempt == Attempt::Ours && decision.execution.state == ExecutionState::Running)
    {
        return Err(replay_refusal(req, &decision.execution));
    }
    let mut execution = decision.execution;
    // Decided states come straight back; ACCEPTED / POLICY_EVALUATING mean "not yet": watch the
    // execution until it moves, within the same budget as one call.
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
        let get = get_request(cfg, &execution.id, client.timeout().as_millis() as u64);
        let next = client
            .get_tool_execution(&get, client.timeout())
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
        ExecutionState::WaitingApproval => {
            crate::approval::wait(client, cfg, ctx, req, &execution, sidecar)
        }
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

fn attempt_of(req: &wire::ExecuteToolRequest, execution: &Checked) -> Attempt {
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
pub fn replay_refusal(req: &wire::ExecuteToolRequest, replayed: &Checked) -> Refusal {
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
pub fn same_execution(expected: &str, got: &Checked) -> Result<(), Refusal> {
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

pub fn get_request(cfg: &PlatformConfig, id: &str, wait_ms: u64) -> wire::GetToolExecutionRequest {
    wire::GetToolExecutionRequest {
        id: id.to_string(),
        organization_id: Some(cfg.organization_id.clone()),
        workspace_id: Some(cfg.workspace_id.clone()),
        wait_timeout_ms: Some(wait_ms),
    }
}

/// What a failed record call means for the outbox: unavailable → keep and retry later; 409 →
/// Platform has it already; anything else (4xx other than 408/429, an untrustworthy answer) →
/// rejected for good, never retried.
pub fn delivery_of(err: &CallError) -> outbox::Delivery {
    match err {
        CallError::Unavailable(_) => outbox::Delivery::Retry,
        CallError::Rejected { status: 409, .. } => outbox::Delivery::Delivered,
        e => outbox::Delivery::Rejected(e.to_string()),
    }
}

/// Send a record as Maestro does. Observe (`execution_id` = None): one ExecuteTool after the
/// run, carrying the `maestro_local_*` outcome keys; RecordToolExecutionOutput follows only
/// when Platform's answer leaves the execution open (ACCEPTED / RUNNING) — a closed execution
/// has nothing left to record. Governed: the Record for the execution Platform allowed.
/// Returns the execution id when known, and how the delivery ended.
pub fn send_record(
    client: &Client,
    execute: &wire::ExecuteToolRequest,
    record: wire::RecordToolExecutionOutputRequest,
    execution_id: Option<&str>,
) -> (Option<String>, outbox::Delivery) {
    let (id, open) = match execution_id {
        Some(id) => (id.to_string(), true),
        None => match client.execute_tool(execute) {
            Ok(d) => {
                let open = matches!(
                    d.execution.state,
                    ExecutionState::Accepted | ExecutionState::Running
                );
                (d.execution.id, open)
            }
            Err(e) => return (None, delivery_of(&e)),
        },
    };
    if !open {
        return (Some(id), outbox::Delivery::Delivered);
    }
    let mut record = record;
    record.execution_id = id.clone();
    match client.record_output(&record) {
        Ok(_) => (Some(id), outbox::Delivery::Delivered),
        Err(e) => (Some(id), delivery_of(&e)),
    }
}

/// Deliver one spooled record: replay ExecuteTool (same idempotency key, so the same
/// execution), then record its output if Platform still holds the execution open.
pub fn deliver_spooled(client: &Client, entry: &outbox::Entry) -> outbox::Delivery {
    let execute: wire::ExecuteToolRequest = match serde_json::from_value(entry.execute.clone()) {
        Ok(e) => e,
        Err(e) => return outbox::Delivery::Rejected(format!("spooled request: {e}")),
    };
    let record: wire::RecordToolExecutionOutputRequest =
        match serde_json::from_value(entry.record.clone()) {
            Ok(r) => r,
            Err(e) => return outbox::Delivery::Rejected(format!("spooled record: {e}")),
        };
    send_record(client, &execute, record, None).1
}
