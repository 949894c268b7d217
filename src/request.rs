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

/// Maestro's presentation of its bash tool for one command, computed once from the sanitized
/// command and used on the request's metadata and the approval event alike: the tool's label
/// sentence-cased, "Ran <label>" and "Running <label>" ("Ran command" / "Running command"
/// when the command is blank).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// `Bash`.
    pub display_name: String,
    /// `Ran <label>`.
    pub summary_label: String,
    /// `Running <label>`.
    pub action_description: String,
}

impl Labels {
    /// The labels of `sanitized` (the command as Platform sees it).
    pub fn for_command(sanitized: &str) -> Labels {
        let mut label = js_label(sanitized, LABEL_MAX);
        if label.is_empty() {
            label = "command".into();
        }
        Labels {
            display_name: "Bash".into(),
            summary_label: format!("Ran {label}"),
            action_description: format!("Running {label}"),
        }
    }
}

/// Maestro's labels are cut at this many UTF-16 units ("Ran <command>", "Running <command>").
const LABEL_MAX: usize = 52;

/// `s` cut to at most `max` UTF-16 units (JavaScript string length) as `<prefix>...`, the prefix
/// right-trimmed, as Maestro cuts metadata values and labels. Never splits a character (where
/// JavaScript's `slice` could split a surrogate pair, the prefix stops one unit short).
fn js_ellipsize(s: &str, max: usize) -> String {
    if s.encode_utf16().count() <= max {
        return s.to_string();
    }
    let budget = max.saturating_sub(3);
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    format!("{}...", s[..end].trim_end_matches(redact::is_js_space))
}

/// Maestro's label form of a command: whitespace runs collapsed to one space, trimmed, and cut
/// to `max` UTF-16 units with "...".
fn js_label(s: &str, max: usize) -> String {
    let collapsed = s
        .split(redact::is_js_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    js_ellipsize(&collapsed, max)
}

/// Metadata values: redacted, C0 control characters and DEL become spaces, trimmed, and cut to
/// 512 UTF-16 units (prefix of at most 509, right-trimmed, + "..."), as Maestro does.
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
    js_ellipsize(clean.trim_matches(redact::is_js_space), METADATA_MAX)
}

/// The ExecuteTool request for `subject` in `mode` (governed or observe); `sanitized` is
/// `redact::sanitize_command(&subject.command)` and `labels` its [`Labels`], computed once by
/// the caller, who also shows them on the sidecar.
pub fn execute_tool(
    ctx: &Context,
    tenant: Tenant<'_>,
    subject: &Subject,
    sanitized: &redact::Redacted,
    labels: &Labels,
    mode: Mode,
) -> wire::ExecuteToolRequest {
    let operation = redact::operation_summary(&sanitized.text);
    let read_only = subject.classification.read_only;
    let metadata = metadata(ctx, tenant, subject, mode, sanitized, labels);
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
            // Maestro: `process.env.npm_package_version`, omitted when unset.
            version: ctx.tool_version.clone(),
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
    tenant: Tenant<'_>,
    subject: &Subject,
    mode: Mode,
    sanitized: &redact::Redacted,
    labels: &Labels,
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
    // Maestro main after the recorded commit (platform-contract.md, section 9) adds the tenant
    // right before the run id; a Platform that predates it ignores unknown metadata keys.
    put("organization_id", Some(tenant.organization_id));
    put("workspace_id", Some(tenant.workspace_id));
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
    put("maestro_display_name", Some(&labels.display_name));
    put("maestro_summary_label", Some(&labels.summary_label));
    put(
        "maestro_action_description",
        Some(&labels.action_description),
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
    put("maestro_sh_invocation", Some(subject.kind.as_str()));
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
    // Lets a replay under the same step id tell "this command again" from "another command"
    // (crate::decide::replay_refusal), and is what a retry's adoption of an abandoned approval
    // is checked against (adopt.rs); of the sanitized text, so no secret is hashed.
    put(
        crate::decide::COMMAND_DIGEST_KEY,
        Some(&command_digest(&sanitized.text)),
    );
    put("maestro_sh_version", Some(env!("CARGO_PKG_VERSION")));
    // Random per invocation: a replay carrying our own id is our own earlier attempt whose
    // answer was lost (crate::decide), not another invocation of the step.
    put(
        crate::decide::INVOCATION_KEY,
        Some(&crate::context::new_id("msh_")),
    );
    m
}

/// Hex SHA-256 of the sanitized command text.
pub fn command_digest(sanitized: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::context::hex(&Sha256::digest(sanitized.as_bytes()))
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

/// The observe-mode ExecuteTool request (built in observe mode) once the command has run:
/// Maestro sends its observe record after the tool ran, with the local outcome, a one-line
/// output summary and the summary's redaction kinds ("none") in the metadata. We never see the
/// output, so the summary is how the command ended.
pub fn observed(execute: &wire::ExecuteToolRequest, exit: Exit) -> wire::ExecuteToolRequest {
    let mut req = execute.clone();
    let m = &mut req.metadata;
    m.insert("maestro_local_outcome".into(), local_outcome(exit).into());
    m.insert("maestro_local_output_summary".into(), exit_summary(exit));
    m.insert("maestro_local_output_redactions".into(), "none".into());
    req
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
    // Maestro: the ExecuteTool metadata plus the local outcome and the tool call id. (The
    // output summary and its redactions are observe-record keys, not added here.) Exit status
    // and signal are ours.
    let mut metadata = execute.metadata.clone();
    metadata.insert("maestro_local_outcome".into(), outcome.into());
    metadata.insert("maestro_tool_call_id".into(), ctx.step_id.clone());
    metadata.insert("maestro_exit_status".into(), exit.status().to_string());
    if let Some(sig) = exit.signal_name() {
        metadata.insert("maestro_signal".into(), sig.into());
    }
    // Maestro's safeOutput is {status, tool_name, tool_call_id, summary}; we add the exit
    // status and, only when there was one, the signal (no nulls).
    let mut safe_output = serde_json::json!({
        "status": outcome,
        "tool_name": "bash",
        "tool_call_id": ctx.step_id,
        "summary": summary,
        "exit_status": exit.status(),
    });
    if let Some(sig) = exit.signal_name() {
        safe_output["signal"] = sig.into();
    }
    wire::RecordToolExecutionOutputRequest {
        execution_id: execution_id.to_string(),
        output: wire::ToolOutput {
            safe_output: Some(safe_output),
            // Maestro always sends the summary's redaction kinds, an empty list when none.
            redactions: Some(serde_json::json!([])),
            content_type: Some("application/json".into()),
            duration_ms: Some(duration_ms),
            ..Default::default()
        },
        metadata: Some(metadata),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_metadata_values_are_cut_like_maestro() {
        assert_eq!(js_label("  ls \t -la\n ", LABEL_MAX), "ls -la");
        assert_eq!(js_label(" \n ", LABEL_MAX), "");
        let long = format!("echo {}", "a ".repeat(40));
        let l = js_label(&long, LABEL_MAX);
        // 49 units, right-trimmed ("... a a" ends in a space at 49), then "...".
        assert_eq!(l, format!("echo {}...", "a ".repeat(22).trim_end()));
        assert!(l.encode_utf16().count() <= LABEL_MAX);
        // JS whitespace: NBSP and U+FEFF collapse, U+0085 does not.
        assert_eq!(js_label("a\u{a0}\u{feff}b\u{85}c", 52), "a b\u{85}c");
        // Lengths are UTF-16 units: 300 astral chars are 600 units.
        let astral = "😀".repeat(300);
        let v = metadata_value(&astral);
        assert_eq!(v.encode_utf16().count(), 508 + 3);
        assert!(v.ends_with("..."));
        let v = metadata_value(&format!("{}  \u{1}{}", "x".repeat(507), "y".repeat(20)));
        assert_eq!(v, format!("{}...", "x".repeat(507)));
        assert_eq!(metadata_value(" \u{7f}a\u{0}b\u{feff}"), "a b");
        assert_eq!(metadata_value(&"z".repeat(512)), "z".repeat(512));
    }
}
