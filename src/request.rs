//! Building the wire requests from the context and the subject: linkage, tool reference,
//! redacted arguments, risk, retry policy, idempotency key and the `maestro_*` metadata
//! (platform-contract.md, sections 2 and 4). Every text that leaves goes through `redact`.

use std::collections::BTreeMap;

use crate::context::Context;
use crate::mode::Mode;
use crate::redact;
use crate::subject::Subject;
use crate::supervise::Exit;
use crate::wire;

const METADATA_MAX: usize = 512;

/// The organization and workspace the request is for (from the Platform config).
#[derive(Debug, Clone, Copy)]
pub struct Tenant<'a> {
    pub organization_id: &'a str,
    pub workspace_id: &'a str,
}

/// Metadata values: C0 control characters become spaces, trimmed, cut to 512 chars
/// (509 + "..."), and redacted.
pub fn metadata_value(raw: &str) -> String {
    let redacted = redact::redact(raw).text;
    let clean: String = redacted
        .chars()
        .map(|c| {
            if (c as u32) < 0x20 || c == '\u{7f}' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() > METADATA_MAX {
        let mut cut: String = clean.chars().take(METADATA_MAX - 3).collect();
        cut.push_str("...");
        cut
    } else {
        clean.to_string()
    }
}

/// The ExecuteTool request for `subject` in `mode` (governed or observe).
pub fn execute_tool(
    ctx: &Context,
    tenant: Tenant<'_>,
    subject: &Subject,
    mode: Mode,
) -> wire::ExecuteToolRequest {
    let sanitized = redact::sanitize_command(&subject.command);
    let operation = redact::operation_summary(&sanitized.text);
    let read_only = subject.classification.read_only;
    let metadata = metadata(ctx, subject, mode, &sanitized, &operation);
    wire::ExecuteToolRequest {
        linkage: wire::Linkage {
            workspace_id: Some(tenant.workspace_id.to_string()),
            organization_id: Some(tenant.organization_id.to_string()),
            agent_id: Some(ctx.agent_id.clone()),
            run_id: ctx.agent_run_id.clone(),
            objective_id: ctx.objective_id.clone(),
            step_id: Some(ctx.step_id.clone()),
            actor_id: ctx.actor_id.clone(),
            surface: Some(ctx.surface.clone()),
            channel_id: ctx.channel_id.clone(),
            correlation_id: Some(ctx.correlation_id()),
            surface_type: Some("SURFACE_MAESTRO".into()),
        },
        tool: wire::ToolRef {
            namespace: "maestro".into(),
            name: "bash".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            capability: "maestro.tool.bash".into(),
            operation,
            idempotent: read_only,
            mutates_resource: !read_only,
        },
        connector: None,
        arguments: wire::Arguments {
            command: sanitized.text.clone(),
        },
        risk_level: subject.classification.risk.as_wire().into(),
        retry_policy: wire::RetryPolicy {
            max_attempts: 1,
            initial_delay_ms: 0,
            max_delay_ms: 0,
            allow_non_idempotent_retry: false,
        },
        idempotency_key: ctx.idempotency_key(),
        metadata,
        trace_context: ctx.traceparent.as_ref().map(|tp| wire::TraceContext {
            traceparent: tp.clone(),
            tracestate: ctx.tracestate.clone(),
        }),
    }
}

fn metadata(
    ctx: &Context,
    subject: &Subject,
    mode: Mode,
    sanitized: &redact::Redacted,
    operation: &str,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            let v = metadata_value(v);
            if !v.is_empty() {
                m.insert(k.to_string(), v);
            }
        }
    };
    let governed = mode == Mode::Governed;
    put(
        "maestro_bridge_mode",
        Some(if governed { "governed" } else { "observe" }),
    );
    put("maestro_tool_call_id", Some(&ctx.step_id));
    put("maestro_agent_run_id", ctx.agent_run_id.as_deref());
    put("maestro_agent_run_step_id", Some(&ctx.step_id));
    put("maestro_actor_id", ctx.actor_id.as_deref());
    put("maestro_correlation_id", Some(&ctx.correlation_id()));
    put("maestro_cwd", ctx.cwd.as_deref());
    put("maestro_workspace_root", ctx.workspace_root.as_deref());
    put("maestro_repository_root", ctx.repository_root.as_deref());
    put("maestro_repository", ctx.repository.as_deref());
    put("maestro_git_branch", ctx.branch.as_deref());
    put("maestro_git_commit", ctx.commit.as_deref());
    put("maestro_session_id", ctx.session_id.as_deref());
    put(
        "maestro_remote_runner_session_id",
        ctx.remote_runner_session_id.as_deref(),
    );
    put("maestro_display_name", Some("Bash"));
    put("maestro_summary_label", Some(operation));
    put(
        "maestro_action_description",
        Some(&format!("Run shell command: {operation}")),
    );
    put(
        "maestro_redacted_arguments",
        Some(if sanitized.changed() { "true" } else { "false" }),
    );
    put("maestro_tool_family", Some("bash"));
    put(
        "maestro_local_execution_authoritative",
        Some(if governed { "true" } else { "false" }),
    );
    // Our additions: how the command was read, for reviewers.
    put("maestro_sh_invocation", Some(subject.kind));
    put(
        "maestro_sh_read_only",
        Some(if subject.classification.read_only {
            "true"
        } else {
            "false"
        }),
    );
    put("maestro_sh_script_path", subject.script_path.as_deref());
    put("maestro_sh_script_sha256", subject.script_sha256.as_deref());
    put("maestro_sh_version", Some(env!("CARGO_PKG_VERSION")));
    m
}

/// `succeeded` for exit status 0, else `failed`.
pub fn local_outcome(exit: Exit) -> &'static str {
    if exit == Exit::Code(0) {
        "succeeded"
    } else {
        "failed"
    }
}

/// A one-line summary of how the command ended (no output: stdout/stderr stay the caller's).
pub fn exit_summary(exit: Exit) -> String {
    match exit {
        Exit::Code(c) => format!("exit status {c}"),
        Exit::Signal { .. } => format!("killed by {}", exit.signal_name().unwrap_or("a signal")),
    }
}

/// The RecordToolExecutionOutput request (without `executionId` when `execution_id` is empty;
/// the outbox fills it in on delivery).
pub fn record_output(
    ctx: &Context,
    execute: &wire::ExecuteToolRequest,
    execution_id: &str,
    exit: Exit,
    duration_ms: u64,
) -> wire::RecordToolExecutionOutputRequest {
    let outcome = local_outcome(exit);
    let summary = exit_summary(exit);
    let mut metadata = execute.metadata.clone();
    metadata.insert("maestro_local_outcome".into(), outcome.into());
    metadata.insert("maestro_tool_call_id".into(), ctx.step_id.clone());
    metadata.insert("maestro_local_output_summary".into(), summary.clone());
    metadata.insert("maestro_local_output_redactions".into(), "0".into());
    metadata.insert("maestro_exit_status".into(), exit.status().to_string());
    if let Some(sig) = exit.signal_name() {
        metadata.insert("maestro_signal".into(), sig.into());
    }
    wire::RecordToolExecutionOutputRequest {
        execution_id: execution_id.to_string(),
        output: wire::ToolOutput {
            safe_output: Some(serde_json::json!({
                "status": outcome,
                "tool_name": "bash",
                "tool_call_id": ctx.step_id,
                "summary": summary,
                "exit_status": exit.status(),
                "signal": exit.signal_name(),
            })),
            content_type: Some("application/json".into()),
            duration_ms: Some(duration_ms),
            ..Default::default()
        },
        metadata: Some(metadata),
    }
}
