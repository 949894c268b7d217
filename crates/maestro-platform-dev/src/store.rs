//! Executions, approvals and the timeline: the local Platform's state machine.
//!
//! ACCEPTED → POLICY_EVALUATING → RUNNING | WAITING_APPROVAL | DENIED; WAITING_APPROVAL →
//! RUNNING (resumed, approved) | DENIED (resumed, denied) | CANCELLED (abandoned, expired);
//! RUNNING → SUCCEEDED | FAILED (output recorded). Every transition is a CloudEvent on the
//! timeline. Long-polls wait on a condition variable for the execution's version to change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use maestro_sh::wire::{self, ExecutionState};

use crate::policy::{Action, Policy};
use crate::server::Role;

/// A Connect error: HTTP status, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid(field: &str) -> ApiError {
        ApiError::new(400, "invalid_argument", format!("{field} is required"))
    }
    fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{what} {id} not found"))
    }
    fn precondition(message: impl Into<String>) -> ApiError {
        ApiError::new(409, "failed_precondition", message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

struct Execution {
    id: String,
    org: String,
    state: ExecutionState,
    request: wire::ExecuteToolRequest,
    error_message: Option<String>,
    approval_id: Option<String>,
    resume_token: Option<String>,
    output: Option<wire::ToolOutput>,
    metadata: BTreeMap<String, String>,
    created_at: SystemTime,
    updated_at: SystemTime,
    version: u64,
}

struct Approval {
    id: String,
    execution_id: String,
    reason: String,
    created_at: SystemTime,
    expires_at: SystemTime,
    decision: Option<wire::ApprovalDecision>,
}

#[derive(Default)]
struct Inner {
    executions: HashMap<String, Execution>,
    order: Vec<String>,
    by_key: HashMap<(String, String), String>,
    approvals: HashMap<String, Approval>,
    /// (execution id, CloudEvent), in order.
    events: Vec<(String, Value)>,
}

pub struct Store {
    inner: Mutex<Inner>,
    changed: Condvar,
    policy: Policy,
    /// Let ResumeToolExecution(approved) by the agent credential decide a pending approval
    /// itself (a deployment where Maestro's own approval UI is the human). Off by default:
    /// then only a reviewer's ResolveApproval can approve.
    trust_agent_approvals: bool,
}

/// Platform's timestamp form, `2026-11-29T20:34:17.123Z` (UTC, milliseconds truncated), as
/// maestro-sh writes them. Clamped to the range humantime formats (it panics before the epoch
/// and fails past year 9999), so a huge approval TTL cannot take the server down.
pub fn rfc3339(t: SystemTime) -> String {
    let last = SystemTime::UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(t.clamp(SystemTime::UNIX_EPOCH, last)).to_string()
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time string compare (`subtle`; a length difference is not hidden).
fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

impl Store {
    pub fn new(policy: Policy, trust_agent_approvals: bool) -> Store {
        Store {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            policy,
            trust_agent_approvals,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ExecuteTool. Returns the execution (with the resume token while waiting) and whether
    /// it was an idempotent replay.
    pub fn execute(
        &self,
        org: &str,
        req: wire::ExecuteToolRequest,
    ) -> ApiResult<(wire::ToolExecution, bool)> {
        if req.tool.name.is_empty() {
            return Err(ApiError::invalid("tool.name"));
        }
        if req.tool.namespace.is_empty() {
            return Err(ApiError::invalid("tool.namespace"));
        }
        if req.idempotency_key.is_empty() {
            return Err(ApiError::invalid("idempotencyKey"));
        }
        if req
            .linkage
            .step_id
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(ApiError::invalid("linkage.stepId"));
        }
        let mut inner = self.lock();
        let key = (org.to_string(), req.idempotency_key.clone());
        if let Some(id) = inner.by_key.get(&key).cloned() {
            expire_if_due(&mut inner, &id);
            let exec = &inner.executions[&id];
            // Never the resume token: only the attempt that opened the execution holds it, so
            // a replay (a retry, a concurrent attempt, an agent asking) cannot resume it.
            return Ok((view(exec, &inner, false), true));
        }
        let id = format!("te_{}", random_hex(8));
        let now = SystemTime::now();
        let observe =
            req.metadata.get("maestro_bridge_mode").map(String::as_str) == Some("observe");
        let (action, reason) = self.policy.evaluate(&req);
        let mut exec = Execution {
            id: id.clone(),
            org: org.to_string(),
            state: ExecutionState::Accepted,
            metadata: req.metadata.clone(),
            request: req,
            error_message: None,
            approval_id: None,
            resume_token: None,
            output: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut events = vec![transition(
            &exec,
            None,
            ExecutionState::Accepted,
            "execution accepted",
        )];
        set_state(&mut exec, ExecutionState::PolicyEvaluating);
        events.push(transition(
            &exec,
            Some(ExecutionState::Accepted),
            ExecutionState::PolicyEvaluating,
            "policy evaluating",
        ));
        let verdict = format!("policy verdict {action:?}: {reason}");
        let next = match action {
            _ if observe => ExecutionState::Running,
            Action::Allow => ExecutionState::Running,
            Action::Deny => ExecutionState::Denied,
            Action::RequireApproval => ExecutionState::WaitingApproval,
        };
        if next == ExecutionState::Denied {
            exec.error_message = Some(reason.clone());
        }
        if next == ExecutionState::WaitingApproval {
            let approval_id = format!("apr_{}", random_hex(8));
            exec.approval_id = Some(approval_id.clone());
            exec.resume_token = Some(random_hex(32));
            let ttl = Duration::from_millis(self.policy.approval_ttl_ms);
            inner.approvals.insert(
                approval_id.clone(),
                Approval {
                    id: approval_id.clone(),
                    execution_id: id.clone(),
                    reason: reason.clone(),
                    created_at: now,
                    expires_at: now + ttl,
                    decision: None,
                },
            );
        }
        let why = if observe {
            format!("observe mode, never held ({verdict})")
        } else {
            verdict
        };
        set_state(&mut exec, next);
        events.push(transition(
            &exec,
            Some(ExecutionState::PolicyEvaluating),
            next,
            &why,
        ));
        if next == ExecutionState::WaitingApproval {
            events.push(event(
                &exec,
                "approval_requested",
                json!({"reason": reason}),
            ));
        }
        let out = view(&exec, &inner, true);
        inner
            .events
            .extend(events.into_iter().map(|e| (id.clone(), e)));
        inner.by_key.insert(key, id.clone());
        inner.order.push(id.clone());
        inner.executions.insert(id, exec);
        Ok((out, false))
    }

    /// GetToolExecution: wait up to `wait` for the execution to change.
    pub fn get(&self, org: &str, id: &str, wait: Duration) -> ApiResult<wire::ToolExecution> {
        let deadline = Instant::now() + wait.min(Duration::from_secs(30));
        let mut inner = self.lock();
        let start_version = owned(&inner, org, id)?.version;
        loop {
            expire_if_due(&mut inner, id);
            let exec = owned(&inner, org, id)?;
            let now = Instant::now();
            if exec.version != start_version || now >= deadline {
                return Ok(view(exec, &inner, false));
            }
            let (guard, _) = self
                .changed
                .wait_timeout(inner, (deadline - now).min(Duration::from_millis(250)))
                .unwrap_or_else(|e| e.into_inner());
            inner = guard;
        }
    }

    pub fn list(
        &self,
        org: &str,
        req: &wire::ListToolExecutionsRequest,
    ) -> (Vec<wire::ToolExecution>, u64) {
        let inner = self.lock();
        let matches: Vec<&Execution> = inner
            .order
            .iter()
            .filter_map(|id| inner.executions.get(id))
            .filter(|e| e.org == org)
            .filter(|e| {
                req.workspace_id
                    .as_ref()
                    .is_none_or(|w| e.request.linkage.workspace_id.as_ref() == Some(w))
            })
            .filter(|e| {
                req.run_id
                    .as_ref()
                    .is_none_or(|r| e.request.linkage.run_id.as_ref() == Some(r))
            })
            .filter(|e| {
                req.agent_id
                    .as_ref()
                    .is_none_or(|a| e.request.linkage.agent_id.as_ref() == Some(a))
            })
            .filter(|e| {
                req.tool_name
                    .as_ref()
                    .is_none_or(|t| &e.request.tool.name == t)
            })
            .filter(|e| {
                req.tool_namespace
                    .as_ref()
                    .is_none_or(|t| &e.request.tool.namespace == t)
            })
            .filter(|e| req.state.as_ref().is_none_or(|s| e.state.as_wire() == s))
            .collect();
        let total = matches.len() as u64;
        let offset = req.offset.unwrap_or(0) as usize;
        let limit = req.limit.filter(|l| *l > 0).unwrap_or(50) as usize;
        let page = matches
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| view(e, &inner, false))
            .collect();
        (page, total)
    }

    pub fn resume(
        &self,
        org: &str,
        req: &wire::ResumeToolExecutionRequest,
        role: Role,
    ) -> ApiResult<wire::ToolExecution> {
        if req.execution_id.is_empty() {
            return Err(ApiError::invalid("executionId"));
        }
        let mut inner = self.lock();
        expire_if_due(&mut inner, &req.execution_id);
        let exec = owned(&inner, org, &req.execution_id)?;
        if exec.approval_id.as_deref() != Some(req.approval_request_id.as_str()) {
            return Err(ApiError::invalid(
                "approvalRequestId does not belong to this execution; approvalRequestId",
            ));
        }
        let token_ok = exec
            .resume_token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t, &req.resume_token));
        if !token_ok {
            return Err(ApiError::new(
                403,
                "permission_denied",
                "resume token does not match",
            ));
        }
        let state = exec.state;
        let approval = inner
            .approvals
            .get(&req.approval_request_id)
            .and_then(|a| a.decision.clone());
        match state {
            ExecutionState::WaitingApproval => {}
            ExecutionState::Running if req.approved => return Ok(view(exec, &inner, false)),
            other => {
                return Err(ApiError::precondition(format!(
                    "execution is {}, not waiting for approval",
                    other.as_wire()
                )))
            }
        }
        if req.approved
            && approval
                .as_ref()
                .and_then(|d| d.decision.as_deref())
                .is_some_and(|d| d != "DECISION_TYPE_APPROVED")
        {
            return Err(ApiError::precondition(
                "the approval request was not approved",
            ));
        }
        // Only a human approves: the resume token proves who opened the execution, not that
        // anyone reviewed it. Approving needs a reviewer's APPROVED decision first (unless the
        // deployment trusts the agent's approval UI); denying or abandoning needs none.
        if req.approved && approval.is_none() && !self.trust_agent_approvals {
            return Err(ApiError::new(
                403,
                "permission_denied",
                format!(
                    "approval request {} has not been approved by a reviewer; the {} credential cannot approve it",
                    req.approval_request_id,
                    role.as_str()
                ),
            ));
        }
        let cancelled = !req.approved && req.reason.as_deref() == Some("cancelled");
        let decision_type = if req.approved {
            "DECISION_TYPE_APPROVED"
        } else {
            "DECISION_TYPE_DENIED"
        };
        if approval.is_none() {
            decide(
                &mut inner,
                &req.approval_request_id,
                decision_type,
                &req.decided_by,
                req.reason.as_deref().unwrap_or_default(),
                role.as_str(),
            );
        }
        let next = if req.approved {
            ExecutionState::Running
        } else if cancelled {
            ExecutionState::Cancelled
        } else {
            ExecutionState::Denied
        };
        let why = format!(
            "resumed with the {} credential, decided by {}: {}",
            role.as_str(),
            if req.decided_by.is_empty() {
                "unknown"
            } else {
                &req.decided_by
            },
            if req.approved {
                "approved"
            } else if cancelled {
                "abandoned by the client"
            } else {
                "denied"
            }
        );
        let exec = inner
            .executions
            .get_mut(&req.execution_id)
            .expect("checked above");
        if next == ExecutionState::Denied {
            exec.error_message = Some(req.reason.clone().unwrap_or_else(|| "denied".into()));
        }
        if next == ExecutionState::Cancelled {
            exec.error_message = Some("abandoned by the client while waiting for approval".into());
        }
        set_state(exec, next);
        let ev = transition(exec, Some(state), next, &why);
        let id = exec.id.clone();
        inner.events.push((id, ev));
        let out = view(&inner.executions[&req.execution_id], &inner, false);
        drop(inner);
        self.changed.notify_all();
        Ok(out)
    }

    pub fn record(
        &self,
        org: &str,
        req: wire::RecordToolExecutionOutputRequest,
    ) -> ApiResult<wire::ToolExecution> {
        if req.execution_id.is_empty() {
            return Err(ApiError::invalid("executionId"));
        }
        let mut inner = self.lock();
        let exec = owned(&inner, org, &req.execution_id)?;
        let state = exec.state;
        if state.is_terminal() && exec.output.as_ref() == Some(&req.output) {
            return Ok(view(exec, &inner, false)); // a replayed record
        }
        if state != ExecutionState::Running {
            return Err(ApiError::precondition(format!(
                "execution is {}, not RUNNING",
                state.as_wire()
            )));
        }
        let status = req
            .output
            .safe_output
            .as_ref()
            .and_then(|o| o.get("status"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let local = req
            .metadata
            .as_ref()
            .and_then(|m| m.get("maestro_local_outcome"))
            .cloned();
        let succeeded = status.or(local).as_deref() == Some("succeeded");
        let next = if succeeded {
            ExecutionState::Succeeded
        } else {
            ExecutionState::Failed
        };
        let exec = inner
            .executions
            .get_mut(&req.execution_id)
            .expect("checked above");
        exec.output = Some(req.output);
        if let Some(m) = req.metadata {
            exec.metadata.extend(m);
        }
        set_state(exec, next);
        let ev_out = event(
            exec,
            "output_recorded",
            json!({"durationMs": exec.output.as_ref().and_then(|o| o.duration_ms)}),
        );
        let ev = transition(exec, Some(state), next, "output recorded");
        let id = exec.id.clone();
        inner.events.push((id.clone(), ev_out));
        inner.events.push((id, ev));
        let out = view(&inner.executions[&req.execution_id], &inner, false);
        drop(inner);
        self.changed.notify_all();
        Ok(out)
    }

    pub fn get_approval(
        &self,
        org: &str,
        approval_id: &str,
    ) -> ApiResult<wire::GetApprovalResponse> {
        let mut inner = self.lock();
        let exec_id = inner
            .approvals
            .get(approval_id)
            .map(|a| a.execution_id.clone())
            .ok_or_else(|| ApiError::not_found("approval request", approval_id))?;
        owned(&inner, org, &exec_id)?;
        expire_if_due(&mut inner, &exec_id);
        let a = &inner.approvals[approval_id];
        Ok(wire::GetApprovalResponse {
            approval_request: Some(approval_view(a, &inner)),
            decisions: Some(a.decision.iter().cloned().collect()),
            state: Some(approval_state(a).into()),
        })
    }

    pub fn resolve_approval(
        &self,
        org: &str,
        req: &wire::ResolveApprovalRequest,
        role: Role,
    ) -> ApiResult<wire::ApprovalDecision> {
        if role != Role::Reviewer {
            return Err(ApiError::new(
                403,
                "permission_denied",
                "only the reviewer credential resolves approvals",
            ));
        }
        let decision = match req.decision.as_str() {
            "DECISION_TYPE_APPROVED" | "APPROVED" | "approved" => "DECISION_TYPE_APPROVED",
            "DECISION_TYPE_DENIED" | "DENIED" | "denied" => "DECISION_TYPE_DENIED",
            _ => {
                return Err(ApiError::new(
                    400,
                    "invalid_argument",
                    "decision must be DECISION_TYPE_APPROVED or DECISION_TYPE_DENIED",
                ))
            }
        };
        let mut inner = self.lock();
        let exec_id = inner
            .approvals
            .get(&req.approval_request_id)
            .map(|a| a.execution_id.clone())
            .ok_or_else(|| ApiError::not_found("approval request", &req.approval_request_id))?;
        owned(&inner, org, &exec_id)?;
        expire_if_due(&mut inner, &exec_id);
        if let Some(d) = &inner.approvals[&req.approval_request_id].decision {
            return Err(ApiError::precondition(format!(
                "approval request already resolved ({})",
                d.decision.as_deref().unwrap_or("?")
            )));
        }
        let d = decide(
            &mut inner,
            &req.approval_request_id,
            decision,
            &req.decided_by,
            &req.reason,
            role.as_str(),
        );
        drop(inner);
        self.changed.notify_all();
        Ok(d)
    }

    pub fn list_pending(
        &self,
        org: &str,
        req: &wire::ListPendingRequest,
    ) -> (Vec<wire::ApprovalRequest>, u64) {
        let mut inner = self.lock();
        let ids: Vec<String> = inner.order.clone();
        for id in &ids {
            expire_if_due(&mut inner, id);
        }
        let mut pending: Vec<&Approval> = inner
            .approvals
            .values()
            .filter(|a| a.decision.is_none())
            .filter(|a| {
                inner
                    .executions
                    .get(&a.execution_id)
                    .is_some_and(|e| e.org == org && e.state == ExecutionState::WaitingApproval)
            })
            .filter(|a| {
                req.workspace_id.as_ref().is_none_or(|w| {
                    inner.executions[&a.execution_id]
                        .request
                        .linkage
                        .workspace_id
                        .as_ref()
                        == Some(w)
                })
            })
            .collect();
        pending.sort_by_key(|a| a.created_at);
        let total = pending.len() as u64;
        let page = pending
            .into_iter()
            .skip(req.offset.unwrap_or(0) as usize)
            .take(req.limit.filter(|l| *l > 0).unwrap_or(50) as usize)
            .map(|a| approval_view(a, &inner))
            .collect();
        (page, total)
    }

    /// Executions matching the filter, each with its ids and ordered events.
    pub fn timeline(&self, org: &str, filter: &Value) -> Value {
        let inner = self.lock();
        let want = |key: &str| {
            filter
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let executions: Vec<Value> = inner
            .order
            .iter()
            .filter_map(|id| inner.executions.get(id))
            .filter(|e| e.org == org)
            .filter(|e| {
                want("runId").is_none_or(|r| e.request.linkage.run_id.as_deref() == Some(r))
            })
            .filter(|e| {
                want("sessionId").is_none_or(|s| {
                    e.metadata.get("maestro_session_id").map(String::as_str) == Some(s)
                })
            })
            .filter(|e| {
                want("stepId").is_none_or(|s| e.request.linkage.step_id.as_deref() == Some(s))
            })
            .filter(|e| want("toolExecutionId").is_none_or(|t| e.id == t))
            .map(|e| {
                let events: Vec<Value> = inner
                    .events
                    .iter()
                    .filter(|(id, _)| id == &e.id)
                    .map(|(_, ev)| ev.clone())
                    .collect();
                json!({
                    "toolExecutionId": e.id,
                    "stepId": e.request.linkage.step_id,
                    "sessionId": e.metadata.get("maestro_session_id"),
                    "runId": e.request.linkage.run_id,
                    "approvalRequestId": e.approval_id,
                    "state": e.state.as_wire(),
                    "operation": e.request.tool.operation,
                    "riskLevel": e.request.risk_level,
                    "events": events,
                })
            })
            .collect();
        json!({ "executions": executions })
    }
}

fn owned<'a>(inner: &'a Inner, org: &str, id: &str) -> ApiResult<&'a Execution> {
    match inner.executions.get(id) {
        Some(e) if e.org == org => Ok(e),
        _ => Err(ApiError::not_found("tool execution", id)),
    }
}

fn set_state(exec: &mut Execution, state: ExecutionState) {
    exec.state = state;
    exec.updated_at = SystemTime::now();
    exec.version += 1;
}

/// Record a decision on an approval request (and wake the execution's long-polls).
fn decide(
    inner: &mut Inner,
    approval_id: &str,
    decision: &str,
    by: &str,
    reason: &str,
    credential: &str,
) -> wire::ApprovalDecision {
    let d = wire::ApprovalDecision {
        id: Some(format!("dec_{}", random_hex(8))),
        approval_request_id: Some(approval_id.to_string()),
        decision: Some(decision.to_string()),
        decided_by: Some(if by.is_empty() {
            "unknown".into()
        } else {
            by.to_string()
        }),
        reason: Some(reason.to_string()),
        decided_at: Some(rfc3339(SystemTime::now())),
    };
    let Some(a) = inner.approvals.get_mut(approval_id) else {
        return d;
    };
    a.decision = Some(d.clone());
    let exec_id = a.execution_id.clone();
    if let Some(exec) = inner.executions.get_mut(&exec_id) {
        exec.version += 1;
        let ev = event(
            exec,
            "approval_resolved",
            // `decidedBy` is a label; `credential` is who authenticated the decision.
            json!({"decision": decision, "decidedBy": d.decided_by, "credential": credential, "reason": reason}),
        );
        inner.events.push((exec_id, ev));
    }
    d
}

/// An approval past its expiry with no decision: record EXPIRED and cancel the execution.
fn expire_if_due(inner: &mut Inner, exec_id: &str) {
    let Some(exec) = inner.executions.get(exec_id) else {
        return;
    };
    let Some(approval_id) = exec.approval_id.clone() else {
        return;
    };
    let due = inner
        .approvals
        .get(&approval_id)
        .is_some_and(|a| a.decision.is_none() && SystemTime::now() > a.expires_at);
    if !due || exec.state != ExecutionState::WaitingApproval {
        return;
    }
    decide(
        inner,
        &approval_id,
        "DECISION_TYPE_EXPIRED",
        "maestro-platform-dev",
        "approval request expired",
        "platform",
    );
    let exec = inner.executions.get_mut(exec_id).expect("present");
    exec.error_message = Some("approval request expired".into());
    set_state(exec, ExecutionState::Cancelled);
    let ev = transition(
        exec,
        Some(ExecutionState::WaitingApproval),
        ExecutionState::Cancelled,
        "approval expired",
    );
    inner.events.push((exec_id.to_string(), ev));
}

fn approval_state(a: &Approval) -> &'static str {
    match a.decision.as_ref().and_then(|d| d.decision.as_deref()) {
        Some("DECISION_TYPE_APPROVED") => "APPROVAL_STATE_APPROVED",
        Some("DECISION_TYPE_DENIED") => "APPROVAL_STATE_DENIED",
        Some("DECISION_TYPE_EXPIRED") => "APPROVAL_STATE_EXPIRED",
        _ if SystemTime::now() > a.expires_at => "APPROVAL_STATE_EXPIRED",
        _ => "APPROVAL_STATE_PENDING",
    }
}

fn approval_view(a: &Approval, inner: &Inner) -> wire::ApprovalRequest {
    use base64::Engine as _;
    let exec = &inner.executions[&a.execution_id];
    let payload = json!({
        "toolExecutionId": exec.id,
        "operation": exec.request.tool.operation,
        "command": exec.request.arguments.command,
        "reason": a.reason,
        "expiresAt": rfc3339(a.expires_at),
    });
    wire::ApprovalRequest {
        id: Some(a.id.clone()),
        workspace_id: exec.request.linkage.workspace_id.clone(),
        approver_user_id: None,
        agent_id: exec.request.linkage.agent_id.clone(),
        surface: exec.request.linkage.surface.clone(),
        action_type: Some(exec.request.tool.capability.clone()),
        action_payload: Some(base64::engine::general_purpose::STANDARD.encode(payload.to_string())),
        risk_level: Some(exec.request.risk_level.clone()),
        context_json: Some(serde_json::to_string(&exec.request.linkage).unwrap_or_default()),
        created_at: Some(rfc3339(a.created_at)),
        updated_at: Some(rfc3339(
            a.decision
                .as_ref()
                .map(|_| SystemTime::now())
                .unwrap_or(a.created_at),
        )),
    }
}

/// The wire view of an execution; the resume token only when `with_token` (ExecuteTool answers).
fn view(e: &Execution, inner: &Inner, with_token: bool) -> wire::ToolExecution {
    let approval_wait = e
        .approval_id
        .as_ref()
        .filter(|_| e.state == ExecutionState::WaitingApproval)
        .map(|id| {
            let a = inner.approvals.get(id);
            wire::ApprovalWait {
                approval_request_id: Some(id.clone()),
                resume_token: if with_token {
                    e.resume_token.clone()
                } else {
                    None
                },
                reason: a.map(|a| a.reason.clone()),
                expires_at: a.map(|a| rfc3339(a.expires_at)),
            }
        });
    wire::ToolExecution {
        id: Some(e.id.clone()),
        state: Some(e.state.as_wire().into()),
        error_message: e.error_message.clone(),
        approval_wait,
        linkage: Some(e.request.linkage.clone()),
        tool: Some(e.request.tool.clone()),
        arguments: Some(e.request.arguments.clone()),
        risk_level: Some(e.request.risk_level.clone()),
        metadata: Some(e.metadata.clone()),
        output: e.output.clone(),
        created_at: Some(rfc3339(e.created_at)),
        updated_at: Some(rfc3339(e.updated_at)),
    }
}

fn event(e: &Execution, kind: &str, extra: Value) -> Value {
    let mut data = json!({
        "toolExecutionId": e.id,
        "stepId": e.request.linkage.step_id,
        "sessionId": e.metadata.get("maestro_session_id"),
        "runId": e.request.linkage.run_id,
        "approvalRequestId": e.approval_id,
    });
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    json!({
        "specversion": "1.0",
        "id": format!("ev_{}", random_hex(8)),
        "type": format!("dev.evalops.toolexecution.{kind}"),
        "source": "maestro-platform-dev",
        "subject": e.id,
        "time": rfc3339(SystemTime::now()),
        "datacontenttype": "application/json",
        "data": data,
    })
}

fn transition(
    e: &Execution,
    from: Option<ExecutionState>,
    to: ExecutionState,
    reason: &str,
) -> Value {
    event(
        e,
        "state_changed",
        json!({"from": from.map(|s| s.as_wire()), "to": to.as_wire(), "reason": reason}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_platforms_form() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        let t = at(1_795_984_457_123) + Duration::from_nanos(999_999);
        assert_eq!(rfc3339(t), "2026-11-29T20:34:17.123Z");
        assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(4_107_542_400_000)), "2100-03-01T00:00:00.000Z");
        // Out of range: clamped, not a panic.
        let far = at(253_402_300_799_999) + Duration::from_secs(86_400 * 365);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
    }
}
