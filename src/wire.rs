//! Wire types of the Platform contract (platform-contract.md): Connect unary JSON bodies for
//! ToolExecution and Approvals. Shared by the client and the local Platform; no HTTP here.
//!
//! Requests serialize camelCase in Maestro's key order with absent optionals omitted. Responses
//! accept camelCase and snake_case, and int64 values as numbers or strings (proto3 JSON), and
//! keep every field optional so the client can say exactly what is missing.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub const TOOL_EXECUTION_SERVICE: &str = "/toolexecution.v1.ToolExecutionService";
pub const EXECUTE_TOOL: &str = "/toolexecution.v1.ToolExecutionService/ExecuteTool";
pub const GET_TOOL_EXECUTION: &str = "/toolexecution.v1.ToolExecutionService/GetToolExecution";
pub const LIST_TOOL_EXECUTIONS: &str = "/toolexecution.v1.ToolExecutionService/ListToolExecutions";
pub const RESUME_TOOL_EXECUTION: &str =
    "/toolexecution.v1.ToolExecutionService/ResumeToolExecution";
pub const RECORD_TOOL_EXECUTION_OUTPUT: &str =
    "/toolexecution.v1.ToolExecutionService/RecordToolExecutionOutput";
pub const GET_APPROVAL: &str = "/approvals.v1.ApprovalService/GetApproval";
pub const RESOLVE_APPROVAL: &str = "/approvals.v1.ApprovalService/ResolveApproval";
pub const LIST_PENDING: &str = "/approvals.v1.ApprovalService/ListPending";

/// The order in which Maestro's bridge writes its `maestro_*` metadata keys (ExecuteTool, then
/// the keys its observe record and RecordToolExecutionOutput append). Metadata is a string map;
/// we keep it in a `BTreeMap` and write these keys first, in this order, so our bodies read like
/// Maestro's; any other key follows in sorted order.
pub const MAESTRO_METADATA_ORDER: &[&str] = &[
    "maestro_bridge_mode",
    "maestro_tool_call_id",
    // Newer Maestro (platform-contract.md, section 9): the tenant, before the run id.
    "organization_id",
    "workspace_id",
    "maestro_agent_run_id",
    "maestro_agent_run_step_id",
    "maestro_actor_id",
    "maestro_correlation_id",
    "maestro_cwd",
    "maestro_workspace_root",
    "maestro_repository_root",
    "maestro_repository",
    "maestro_git_branch",
    "maestro_git_commit",
    "maestro_session_id",
    "maestro_remote_runner_session_id",
    "maestro_display_name",
    "maestro_summary_label",
    "maestro_action_description",
    "maestro_redacted_arguments",
    "maestro_tool_family",
    "maestro_local_execution_authoritative",
    "maestro_local_outcome",
    "maestro_local_output_summary",
    "maestro_local_output_redactions",
];

/// Serialize a metadata map with [`MAESTRO_METADATA_ORDER`] keys first.
fn ser_metadata<S: serde::Serializer>(
    m: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(m.len()))?;
    for k in MAESTRO_METADATA_ORDER {
        if let Some(v) = m.get(*k) {
            out.serialize_entry(k, v)?;
        }
    }
    for (k, v) in m {
        if !MAESTRO_METADATA_ORDER.contains(&k.as_str()) {
            out.serialize_entry(k, v)?;
        }
    }
    out.end()
}

fn ser_opt_metadata<S: serde::Serializer>(
    m: &Option<BTreeMap<String, String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => ser_metadata(m, s),
        None => s.serialize_none(),
    }
}

/// ToolExecution states (full wire names carry the `TOOL_EXECUTION_STATE_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ExecutionState {
    Unspecified,
    Accepted,
    PolicyEvaluating,
    WaitingApproval,
    Running,
    Succeeded,
    Failed,
    Denied,
    Cancelled,
}

impl ExecutionState {
    pub const ALL: [ExecutionState; 9] = [
        ExecutionState::Unspecified,
        ExecutionState::Accepted,
        ExecutionState::PolicyEvaluating,
        ExecutionState::WaitingApproval,
        ExecutionState::Running,
        ExecutionState::Succeeded,
        ExecutionState::Failed,
        ExecutionState::Denied,
        ExecutionState::Cancelled,
    ];

    pub fn as_wire(self) -> &'static str {
        match self {
            ExecutionState::Unspecified => "TOOL_EXECUTION_STATE_UNSPECIFIED",
            ExecutionState::Accepted => "TOOL_EXECUTION_STATE_ACCEPTED",
            ExecutionState::PolicyEvaluating => "TOOL_EXECUTION_STATE_POLICY_EVALUATING",
            ExecutionState::WaitingApproval => "TOOL_EXECUTION_STATE_WAITING_APPROVAL",
            ExecutionState::Running => "TOOL_EXECUTION_STATE_RUNNING",
            ExecutionState::Succeeded => "TOOL_EXECUTION_STATE_SUCCEEDED",
            ExecutionState::Failed => "TOOL_EXECUTION_STATE_FAILED",
            ExecutionState::Denied => "TOOL_EXECUTION_STATE_DENIED",
            ExecutionState::Cancelled => "TOOL_EXECUTION_STATE_CANCELLED",
        }
    }

    /// The full wire name only; anything else (including bare `RUNNING`) is unknown.
    pub fn parse(s: &str) -> Option<ExecutionState> {
        ExecutionState::ALL.into_iter().find(|st| st.as_wire() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionState::Succeeded
                | ExecutionState::Failed
                | ExecutionState::Denied
                | ExecutionState::Cancelled
        )
    }
}

/// int64 as a JSON number or a decimal string.
fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Str(s)) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(de_opt_u64(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linkage {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "organization_id"
    )]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "agent_id")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "run_id")]
    pub run_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "objective_id"
    )]
    pub objective_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "step_id")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "actor_id")]
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "channel_id")]
    pub channel_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "correlation_id"
    )]
    pub correlation_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "surface_type"
    )]
    pub surface_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolRef {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub capability: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub idempotent: bool,
    #[serde(default, alias = "mutates_resource")]
    pub mutates_resource: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arguments {
    #[serde(default)]
    pub command: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default, alias = "max_attempts", deserialize_with = "de_u64")]
    pub max_attempts: u64,
    #[serde(default, alias = "initial_delay_ms", deserialize_with = "de_u64")]
    pub initial_delay_ms: u64,
    #[serde(default, alias = "max_delay_ms", deserialize_with = "de_u64")]
    pub max_delay_ms: u64,
    #[serde(default, alias = "allow_non_idempotent_retry")]
    pub allow_non_idempotent_retry: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// ExecuteTool request, keys in Maestro's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteToolRequest {
    #[serde(default)]
    pub linkage: Linkage,
    #[serde(default)]
    pub tool: ToolRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<serde_json::Value>,
    #[serde(default)]
    pub arguments: Arguments,
    #[serde(default, alias = "risk_level")]
    pub risk_level: String,
    #[serde(default, alias = "retry_policy")]
    pub retry_policy: RetryPolicy,
    #[serde(default, alias = "idempotency_key")]
    pub idempotency_key: String,
    #[serde(default, serialize_with = "ser_metadata")]
    pub metadata: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "trace_context"
    )]
    pub trace_context: Option<TraceContext>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalWait {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "approval_request_id"
    )]
    pub approval_request_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "resume_token"
    )]
    pub resume_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "expires_at")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "raw_output")]
    pub raw_output: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "safe_output"
    )]
    pub safe_output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposals: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redactions: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "content_type"
    )]
    pub content_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "output_digest"
    )]
    pub output_digest: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "duration_ms",
        deserialize_with = "de_opt_u64"
    )]
    pub duration_ms: Option<u64>,
}

/// A ToolExecution as Platform reports it. Every field is optional: the client validates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolExecution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "error_message"
    )]
    pub error_message: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "approval_wait"
    )]
    pub approval_wait: Option<ApprovalWait>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage: Option<Linkage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRef>,
    /// The (sanitized) arguments the execution was opened with. Lets a second governance layer
    /// tell which command an execution is for (attaching to Maestro's own bridge execution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "risk_level")]
    pub risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ToolOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "created_at")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "updated_at")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteToolResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<ToolExecution>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "idempotent_replay"
    )]
    pub idempotent_replay: Option<bool>,
}

/// `{ execution }`: the answer of Get, Resume and Record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<ToolExecution>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetToolExecutionRequest {
    #[serde(default)]
    pub id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "organization_id"
    )]
    pub organization_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "wait_timeout_ms",
        deserialize_with = "de_opt_u64"
    )]
    pub wait_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolExecutionsRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "organization_id"
    )]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "run_id")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "agent_id")]
    pub agent_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "tool_namespace"
    )]
    pub tool_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "tool_name")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub limit: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListToolExecutionsResponse {
    #[serde(default)]
    pub executions: Vec<ToolExecution>,
    #[serde(default, deserialize_with = "de_u64")]
    pub total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeToolExecutionRequest {
    #[serde(default, alias = "execution_id")]
    pub execution_id: String,
    #[serde(default, alias = "approval_request_id")]
    pub approval_request_id: String,
    #[serde(default, alias = "resume_token")]
    pub resume_token: String,
    #[serde(default)]
    pub approved: bool,
    #[serde(default, alias = "decided_by")]
    pub decided_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordToolExecutionOutputRequest {
    #[serde(default, alias = "execution_id")]
    pub execution_id: String,
    #[serde(default)]
    pub output: ToolOutput,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_metadata"
    )]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

// ---- approvals.v1.ApprovalService ----

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "approver_user_id"
    )]
    pub approver_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "agent_id")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "action_type"
    )]
    pub action_type: Option<String>,
    /// bytes, base64 in JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "action_payload"
    )]
    pub action_payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "risk_level")]
    pub risk_level: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "context_json"
    )]
    pub context_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "created_at")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "updated_at")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "approval_request_id"
    )]
    pub approval_request_id: Option<String>,
    /// `DECISION_TYPE_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "decided_by")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "decided_at")]
    pub decided_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetApprovalRequest {
    #[serde(default, alias = "approval_request_id")]
    pub approval_request_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetApprovalResponse {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "approval_request"
    )]
    pub approval_request: Option<ApprovalRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<ApprovalDecision>>,
    /// `APPROVAL_STATE_*` (pending, approved, denied, expired, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveApprovalRequest {
    #[serde(default, alias = "approval_request_id")]
    pub approval_request_id: String,
    #[serde(default)]
    pub decision: String,
    #[serde(default, alias = "decided_by")]
    pub decided_by: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveApprovalResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPendingRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "workspace_id"
    )]
    pub workspace_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub limit: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPendingResponse {
    #[serde(default)]
    pub requests: Vec<ApprovalRequest>,
    #[serde(default, deserialize_with = "de_u64")]
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_request_keys_in_contract_order() {
        let req = ExecuteToolRequest {
            linkage: Linkage {
                step_id: Some("s".into()),
                workspace_id: Some("w".into()),
                ..Default::default()
            },
            tool: ToolRef {
                namespace: "maestro".into(),
                name: "bash".into(),
                ..Default::default()
            },
            risk_level: "RISK_LEVEL_LOW".into(),
            idempotency_key: "maestro:s".into(),
            ..Default::default()
        };
        let s = serde_json::to_string(&req).unwrap();
        let order = [
            "\"linkage\"",
            "\"tool\"",
            "\"arguments\"",
            "\"riskLevel\"",
            "\"retryPolicy\"",
            "\"idempotencyKey\"",
            "\"metadata\"",
        ];
        let pos: Vec<usize> = order.iter().map(|k| s.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{s}");
        assert!(
            s.starts_with("{\"linkage\":{\"workspaceId\":\"w\",\"stepId\":\"s\"}"),
            "{s}"
        );
        assert!(!s.contains("connector") && !s.contains("traceContext") && !s.contains("version"));
    }

    #[test]
    fn metadata_keys_in_maestro_order_then_sorted() {
        let metadata: BTreeMap<String, String> = [
            "zz_extra",
            "maestro_tool_family",
            "maestro_local_outcome",
            "maestro_bridge_mode",
            "maestro_cwd",
            "aa_extra",
        ]
        .iter()
        .map(|k| (k.to_string(), "v".to_string()))
        .collect();
        let req = RecordToolExecutionOutputRequest {
            metadata: Some(metadata.clone()),
            ..Default::default()
        };
        let v = serde_json::to_value(&req).unwrap();
        let keys: Vec<&String> = v["metadata"].as_object().unwrap().keys().collect();
        let want = [
            "maestro_bridge_mode",
            "maestro_cwd",
            "maestro_tool_family",
            "maestro_local_outcome",
            "aa_extra",
            "zz_extra",
        ];
        assert_eq!(keys, want);
        // Round trip (outbox) keeps the content.
        let back: RecordToolExecutionOutputRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.metadata, Some(metadata));
    }

    #[test]
    fn responses_accept_both_casings_and_string_int64() {
        let snake = r#"{"execution":{"id":"te_1","state":"TOOL_EXECUTION_STATE_WAITING_APPROVAL",
            "approval_wait":{"approval_request_id":"apr_1","resume_token":"t","reason":"r"},
            "error_message":"e","output":{"duration_ms":"42"}},"idempotent_replay":true}"#;
        let r: ExecuteToolResponse = serde_json::from_str(snake).unwrap();
        let e = r.execution.unwrap();
        assert_eq!(
            e.approval_wait.unwrap().approval_request_id.as_deref(),
            Some("apr_1")
        );
        assert_eq!(e.output.unwrap().duration_ms, Some(42));
        assert_eq!(r.idempotent_replay, Some(true));
        let camel: GetToolExecutionRequest =
            serde_json::from_str(r#"{"id":"x","waitTimeoutMs":"500"}"#).unwrap();
        assert_eq!(camel.wait_timeout_ms, Some(500));
        let empty: ExecuteToolResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.execution.is_none());
    }

    #[test]
    fn states_parse_full_names_only() {
        for st in ExecutionState::ALL {
            assert_eq!(ExecutionState::parse(st.as_wire()), Some(st));
        }
        assert_eq!(ExecutionState::parse("RUNNING"), None);
        assert_eq!(ExecutionState::parse("TOOL_EXECUTION_STATE_BOGUS"), None);
    }
}
