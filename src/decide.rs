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
                "ExecuteTool answered state {}{}, which does not allow running",
                other.as_wire(),
                if decision.idempotent_replay {
                    " on replay (this step already ran; use a new MAESTRO_TOOL_CALL_ID)"
                } else {
                    ""
                }
            ),
        )
        .with_execution(Some(&id))),
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
