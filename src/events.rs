//! The sidecar: JSON lines for Maestro, in its event bus's CloudEvents-style envelope
//! (platform-contract.md, section 7), on `MAESTRO_SH_EVENTS_FD` or appended to
//! `MAESTRO_SH_EVENTS_FILE`. The fd is marked close-on-exec, so the command never inherits it.
//! Under Maestro's bash tool only fds 0-2 reach the shell, so the file is the route there: many
//! maestro-sh processes may append to it at once, and each line is written whole (see `emit`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::context::{random_bytes, Context};
use crate::env::Env;
use crate::outcome::{Outcome, Refusal};
use crate::supervise::Exit;

pub const EVENTS_FD_VAR: &str = "MAESTRO_SH_EVENTS_FD";
pub const EVENTS_FILE_VAR: &str = "MAESTRO_SH_EVENTS_FILE";

pub const ATTEMPTED: &str = "maestro.events.tool_call.attempted";
pub const COMPLETED: &str = "maestro.events.tool_call.completed";
pub const APPROVAL_HIT: &str = "maestro.events.approval_hit";
pub const HEARTBEAT: &str = "maestro.events.tool_call.heartbeat";
/// Newer Maestro's catalog (platform-contract.md, section 9): a tool call that failed. We emit
/// it, with the same `ToolCallResult` data, right before `tool_call.completed` whenever the call
/// did not succeed: a refusal (the command did not run: DENIED or CANCELLED) or a run that
/// ended with a non-zero status or a signal (FAILED). `tool_call.completed` stays the one
/// closing event of every call, so readers of the recorded catalog see no change.
pub const FAILED: &str = "maestro.events.tool_call.failed";

/// Overrides the envelope's `source`, as it does for Maestro's event bus.
pub const SOURCE_VAR: &str = "MAESTRO_EVENT_BUS_SOURCE";
const DEFAULT_SOURCE: &str = "maestro-sh";

/// The proto message (maestro.v1) behind each of Maestro's event types, which names the data's
/// `@type` and the envelope's `extensions.dataschema`. Our heartbeat has none.
fn proto_message(event_type: &str) -> Option<&'static str> {
    match event_type {
        ATTEMPTED => Some("ToolCallAttempt"),
        COMPLETED | FAILED => Some("ToolCallResult"),
        APPROVAL_HIT => Some("ApprovalHit"),
        _ => None,
    }
}

/// Maestro's `MaestroToolCallStatus` for a command that ran: exit 0 succeeded, else failed.
pub fn run_status(exit: Exit) -> &'static str {
    if exit == Exit::Code(0) {
        "MAESTRO_TOOL_CALL_STATUS_SUCCEEDED"
    } else {
        "MAESTRO_TOOL_CALL_STATUS_FAILED"
    }
}

/// Maestro's `MaestroToolCallStatus` for a command that did not run: CANCELLED when the wait
/// was cancelled, otherwise DENIED (`governed_outcome` says why).
fn refused_status(outcome: Outcome) -> &'static str {
    if outcome == Outcome::Cancelled {
        "MAESTRO_TOOL_CALL_STATUS_CANCELLED"
    } else {
        "MAESTRO_TOOL_CALL_STATUS_DENIED"
    }
}

/// A duration as Maestro writes it: seconds with at most 3 decimals, trailing zeros dropped
/// (`1500` ms → `"1.5s"`, `0` → `"0s"`, `12` → `"0.012s"`).
pub fn duration_string(ms: u64) -> String {
    let frac = format!("{:03}", ms % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{frac}s", ms / 1000)
    }
}

/// A random (v4) UUID, the form of Maestro's event ids.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Where events go, as the environment names it (read once with the settings): an inherited
/// fd (`MAESTRO_SH_EVENTS_FD`), a file to append to (`MAESTRO_SH_EVENTS_FILE`), or nowhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarTarget {
    pub fd: Option<String>,
    pub file: Option<String>,
    /// The envelope's `source` ([`SOURCE_VAR`], default `maestro-sh`).
    pub source: Option<String>,
}

impl SidecarTarget {
    /// Read the three variables; nothing is opened yet.
    pub fn read(env: &dyn Env) -> SidecarTarget {
        SidecarTarget {
            fd: env.first_value(&[EVENTS_FD_VAR]),
            file: env.first_value(&[EVENTS_FILE_VAR]),
            source: env.first_value(&[SOURCE_VAR]),
        }
    }
}

/// One kind of sidecar event: its type and its data (Maestro's proto-JSON field names).
pub trait Event: Serialize {
    /// The CloudEvents `type`, e.g. [`ATTEMPTED`].
    const TYPE: &'static str;
}

/// The ids every event of a call carries, first in its data: the tool call (step) id, and
/// once Platform gave them, the execution and approval request ids. Absent ids are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ids {
    pub tool_call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_execution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_request_id: Option<String>,
}

impl Ids {
    pub fn new(tool_call_id: &str) -> Ids {
        Ids {
            tool_call_id: tool_call_id.to_string(),
            ..Ids::default()
        }
    }

    pub fn execution(mut self, id: Option<&str>) -> Ids {
        self.tool_execution_id = id.map(str::to_owned);
        self
    }

    pub fn approval(mut self, id: Option<&str>) -> Ids {
        self.approval_request_id = id.map(str::to_owned);
        self
    }
}

/// `{"command": …}`: the sanitized arguments.
#[derive(Debug, Clone, Serialize)]
pub struct SafeArguments<'a> {
    pub command: &'a str,
}

/// `maestro.events.tool_call.attempted` (Maestro's `ToolCallAttempt`), before deciding.
#[derive(Debug, Clone, Serialize)]
pub struct Attempted<'a> {
    #[serde(flatten)]
    pub ids: Ids,
    pub tool_namespace: &'static str,
    pub tool_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<&'a str>,
    pub capability: &'static str,
    pub mutates_resource: bool,
    pub risk_level: &'a str,
    pub safe_arguments: SafeArguments<'a>,
    pub redactions: &'a [String],
    pub idempotency_key: String,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<&'static str>,
    pub attempted_at: String,
}

impl Event for Attempted<'_> {
    const TYPE: &'static str = ATTEMPTED;
}

/// The tool's presentation on an approval event (Maestro's ApprovalHit `context`).
#[derive(Debug, Clone, Serialize)]
pub struct HitContext<'a> {
    pub tool_name: &'static str,
    pub display_name: &'a str,
    pub summary_label: &'a str,
    pub args: SafeArguments<'a>,
}

/// Platform's own ids of the approval, in its camelCase.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformRef {
    pub source: &'static str,
    pub tool_execution_id: String,
    pub approval_request_id: String,
}

/// `maestro.events.approval_hit` (Maestro's `ApprovalHit`): Platform holds the call for a
/// human. Never carries the resume token.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalHit<'a> {
    #[serde(flatten)]
    pub ids: Ids,
    pub action: &'a str,
    pub command: &'a str,
    pub decision_mode: &'static str,
    pub context: HitContext<'a>,
    pub occurred_at: String,
    pub status: &'static str,
    /// Platform's reason, inert and redacted.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<&'a str>,
    pub wait_deadline: String,
    pub source: &'static str,
    /// The request was left open by a killed run and adopted by this one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    pub platform: PlatformRef,
}

impl<'a> ApprovalHit<'a> {
    /// The event for a pending approval; `ids` must hold the execution and approval ids.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ids: Ids,
        labels: &'a crate::request::Labels,
        command: &'a str,
        reason: &str,
        risk_level: Option<&'a str>,
        expires_at: Option<&'a str>,
        wait_deadline: SystemTime,
        adopted: bool,
    ) -> ApprovalHit<'a> {
        let platform = PlatformRef {
            source: "tool_execution",
            tool_execution_id: ids.tool_execution_id.clone().unwrap_or_default(),
            approval_request_id: ids.approval_request_id.clone().unwrap_or_default(),
        };
        ApprovalHit {
            ids,
            action: &labels.action_description,
            command,
            decision_mode: "MAESTRO_DECISION_MODE_REQUIRE_APPROVAL",
            context: HitContext {
                tool_name: "bash",
                display_name: &labels.display_name,
                summary_label: &labels.summary_label,
                args: SafeArguments { command },
            },
            occurred_at: rfc3339(SystemTime::now()),
            status: "pending",
            reason: crate::redact::redact_message(&crate::outcome::inert(reason)).text,
            risk_level,
            expires_at,
            wait_deadline: rfc3339(wait_deadline),
            source: "platform",
            adopted,
            platform,
        }
    }
}

impl Event for ApprovalHit<'_> {
    const TYPE: &'static str = APPROVAL_HIT;
}

/// `maestro.events.tool_call.heartbeat`: still waiting.
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeat {
    #[serde(flatten)]
    pub ids: Ids,
    pub status: &'static str,
    pub elapsed_ms: u64,
}

impl Heartbeat {
    /// A heartbeat while waiting for approval, `elapsed_ms` into the wait.
    pub fn waiting(ids: Ids, elapsed_ms: u64) -> Heartbeat {
        Heartbeat {
            ids,
            status: "waiting_approval",
            elapsed_ms,
        }
    }
}

impl Event for Heartbeat {
    const TYPE: &'static str = HEARTBEAT;
}

/// The closing event of every call, `maestro.events.tool_call.completed` (Maestro's
/// `ToolCallResult`); preceded by `tool_call.failed` with the same data when the call did not
/// succeed. One shape for a run and a refusal: a run has an exit status, a refusal an error.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    #[serde(flatten)]
    pub ids: Ids,
    pub governed_outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<&'static str>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    pub completed_at: String,
}

impl Completed {
    /// A command that ran and ended with `exit` after `duration_ms`.
    pub fn ran(ids: Ids, outcome: Outcome, exit: Exit, duration_ms: u64) -> Completed {
        Completed {
            ids,
            governed_outcome: outcome.as_str(),
            attached_to: None,
            status: run_status(exit),
            exit_status: Some(exit.status()),
            signal: exit.signal_name(),
            error_code: None,
            error_message: None,
            duration_ms: Some(duration_ms),
            duration: Some(duration_string(duration_ms)),
            completed_at: rfc3339(SystemTime::now()),
        }
    }

    /// A command that did not run: the refusal's outcome, ids and (redacted) reason, and how
    /// long deciding took when known.
    pub fn refused(step_id: &str, r: &Refusal, duration_ms: Option<u64>) -> Completed {
        let ids = Ids::new(step_id)
            .execution(r.tool_execution_id.as_deref())
            .approval(r.approval_request_id.as_deref());
        Completed {
            ids,
            governed_outcome: r.outcome.as_str(),
            attached_to: None,
            status: refused_status(r.outcome),
            exit_status: None,
            signal: None,
            error_code: Some(r.outcome.as_str()),
            error_message: Some(crate::redact::redact_message(&r.reason).text),
            duration_ms,
            duration: duration_ms.map(duration_string),
            completed_at: rfc3339(SystemTime::now()),
        }
    }

    fn succeeded(&self) -> bool {
        self.status == "MAESTRO_TOOL_CALL_STATUS_SUCCEEDED"
    }
}

impl Event for Completed {
    const TYPE: &'static str = COMPLETED;
}

/// The outbox's warning (a record spooled, dropped, dead-lettered), as it happens.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxWarning<'a> {
    #[serde(flatten)]
    pub ids: Ids,
    pub kind: &'a str,
    pub record: &'a str,
    /// Inert and redacted.
    pub reason: String,
}

impl Event for OutboxWarning<'_> {
    const TYPE: &'static str = crate::outbox::WARNING_EVENT;
}

/// Where the sidecar writes.
enum Out {
    File(File),
    /// Kept in memory (tests and embedders read them with [`Sidecar::take_lines`]).
    Memory(Vec<String>),
}

/// Where events go; a no-op when neither variable is set.
pub struct Sidecar {
    out: Option<Out>,
    tenant: Option<String>,
    source: String,
    correlation: Value,
}

impl Sidecar {
    /// A sidecar that writes nothing.
    pub fn none() -> Sidecar {
        Sidecar {
            out: None,
            tenant: None,
            source: DEFAULT_SOURCE.into(),
            correlation: Value::Null,
        }
    }

    /// A sidecar that keeps its lines in memory, for tests of what a step emits.
    pub fn memory() -> Sidecar {
        Sidecar {
            out: Some(Out::Memory(Vec::new())),
            ..Sidecar::none()
        }
    }

    /// The lines a [`Sidecar::memory`] kept so far (each one JSON envelope), emptied.
    pub fn take_lines(&mut self) -> Vec<String> {
        match &mut self.out {
            Some(Out::Memory(lines)) => std::mem::take(lines),
            _ => Vec::new(),
        }
    }

    /// Open the sidecar `target` names. A bad value is an error naming the variable; the
    /// caller reports it and carries on without events. `env` gives the correlation context.
    pub fn open(target: &SidecarTarget, env: &dyn Env, ctx: &Context) -> Result<Sidecar, String> {
        let fd = match target.fd.as_deref().map(open_fd) {
            // Both set and the fd unusable (as under Maestro, which passes only fds 0-2): the
            // file still works, so use it and say why the fd was not.
            Some(Err(e)) if target.file.is_some() => {
                crate::status::warn(&format!("{e}; writing events to {EVENTS_FILE_VAR} instead"));
                None
            }
            other => other.transpose()?,
        };
        let out = if fd.is_some() {
            fd
        } else if let Some(path) = &target.file {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| {
                    format!("{EVENTS_FILE_VAR}={path:?} cannot be opened for append ({e})")
                })?;
            Some(file)
        } else {
            None
        };
        Ok(Sidecar {
            out: out.map(Out::File),
            tenant: ctx.organization_id.clone(),
            source: target
                .source
                .clone()
                .unwrap_or_else(|| DEFAULT_SOURCE.into()),
            correlation: correlation(env, ctx),
        })
    }

    /// Recompute the envelope's tenant and correlation after the context changed (a step id
    /// adopted from Maestro's own bridge execution).
    pub fn rebind(&mut self, env: &dyn Env, ctx: &Context) {
        self.tenant = ctx.organization_id.clone();
        self.correlation = correlation(env, ctx);
    }

    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Write one event. Write errors are ignored: the reader going away must not change what
    /// the command does.
    pub fn emit<E: Event>(&mut self, event: &E) {
        if self.out.is_none() {
            return;
        }
        if let Ok(fields) = serde_json::to_value(event) {
            self.emit_value(E::TYPE, fields);
        }
    }

    /// The closing events of a call: `tool_call.failed` first when it did not succeed, then
    /// `tool_call.completed`, both with the same data.
    pub fn emit_result(&mut self, done: &Completed) {
        if !done.succeeded() {
            if let Ok(fields) = serde_json::to_value(done) {
                self.emit_value(FAILED, fields);
            }
        }
        self.emit(done);
    }

    /// Write one event of `event_type` whose data is `fields` plus `correlation`.
    ///
    /// The envelope follows Maestro's event bus: keys in its order, a UUID id, `time` equal to
    /// the data's own timestamp, proto-JSON data (`@type` last) with `data_content_type`
    /// "application/protobuf" and a `buf.build` dataschema.
    fn emit_value(&mut self, event_type: &str, fields: Value) {
        let Some(out) = self.out.as_mut() else { return };
        let mut data = Map::new();
        data.insert("correlation".into(), self.correlation.clone());
        if let Value::Object(f) = fields {
            data.extend(f.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let time = ["attempted_at", "completed_at", "occurred_at"]
            .iter()
            .find_map(|k| data.get(*k).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| rfc3339(SystemTime::now()));
        let message = proto_message(event_type);
        if let Some(m) = message {
            data.insert(
                "@type".into(),
                json!(format!("type.googleapis.com/maestro.v1.{m}")),
            );
        }
        let mut envelope = Map::new();
        envelope.insert("spec_version".into(), json!("1.0"));
        envelope.insert("id".into(), json!(uuid_v4()));
        envelope.insert("type".into(), json!(event_type));
        envelope.insert("source".into(), json!(self.source));
        envelope.insert("subject".into(), json!(event_type));
        envelope.insert("time".into(), json!(time));
        envelope.insert(
            "data_content_type".into(),
            json!(if message.is_some() {
                "application/protobuf"
            } else {
                "application/json"
            }),
        );
        if let Some(t) = &self.tenant {
            envelope.insert("tenant_id".into(), json!(t));
        }
        envelope.insert("data".into(), Value::Object(data));
        envelope.insert(
            "extensions".into(),
            json!({"dataschema": match message {
                Some(m) => format!("buf.build/evalops/proto/maestro.v1.{m}"),
                None => format!("https://schemas.evalops.dev/{event_type}"),
            }}),
        );
        let mut line = Value::Object(envelope).to_string();
        match out {
            Out::Memory(lines) => lines.push(line),
            Out::File(out) => {
                line.push('\n');
                // Many maestro-sh processes may append to one file (parallel tool calls): the
                // file is O_APPEND, the line goes out in one write(), and an exclusive flock
                // around it keeps lines whole even when a line is longer than PIPE_BUF or a
                // write comes back short. (flock is advisory and may fail on a pipe: the write
                // happens anyway.)
                let fd = out.as_raw_fd();
                let locked = unsafe { libc::flock(fd, libc::LOCK_EX) } == 0;
                let _ = out.write_all(line.as_bytes());
                if locked {
                    unsafe { libc::flock(fd, libc::LOCK_UN) };
                }
            }
        }
    }
}

fn open_fd(raw: &str) -> Result<File, String> {
    let fd = crate::env::inherited_fd(
        EVENTS_FD_VAR,
        raw,
        &format!(
            " (Maestro's bash tool passes only fds 0-2 to the shell; under Maestro set \
             {EVENTS_FILE_VAR} to a file to append to instead)"
        ),
    )?;
    // SAFETY: the caller handed us this fd for our exclusive use as the sidecar.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Maestro's `MaestroCorrelation`, absent values omitted. `workspace_id` and `session_id` are
/// always present there: the workspace falls back to `$PWD` then the cwd, the session to
/// "unknown". `request_id` is `MAESTRO_REQUEST_ID`, else our correlation id; `trace_id` is
/// `TRACE_ID` / `OTEL_TRACE_ID`, else the trace id of `TRACEPARENT`.
fn correlation(env: &dyn Env, ctx: &Context) -> Value {
    let workspace = ctx
        .workspace_id
        .clone()
        .or_else(|| env.first_value(&["PWD"]))
        .or_else(|| {
            std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string())
        });
    let trace_id = env.first_value(&["TRACE_ID", "OTEL_TRACE_ID"]).or_else(|| {
        ctx.traceparent
            .as_deref()
            .and_then(|t| t.split('-').nth(1))
            .map(str::to_owned)
    });
    let fields: [(&str, Option<String>); 13] = [
        ("organization_id", ctx.organization_id.clone()),
        ("workspace_id", workspace),
        (
            "session_id",
            Some(ctx.session_id.clone().unwrap_or_else(|| "unknown".into())),
        ),
        ("agent_run_id", ctx.agent_run_id.clone()),
        ("agent_run_step_id", Some(ctx.step_id.clone())),
        ("agent_id", Some(ctx.agent_id.clone())),
        ("actor_id", ctx.actor_id.clone()),
        ("principal_id", env.first_value(&["MAESTRO_PRINCIPAL_ID"])),
        ("trace_id", trace_id),
        (
            "request_id",
            Some(
                env.first_value(&["MAESTRO_REQUEST_ID"])
                    .unwrap_or_else(|| ctx.correlation_id()),
            ),
        ),
        (
            "remote_runner_session_id",
            ctx.remote_runner_session_id.clone(),
        ),
        ("objective_id", ctx.objective_id.clone()),
        (
            "conversation_id",
            env.first_value(&["MAESTRO_CONVERSATION_ID"]),
        ),
    ];
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), json!(v))))
            .collect(),
    )
}

/// `2026-01-02T03:04:05.678Z`: UTC, milliseconds (truncated), as Platform's timestamps.
/// Clamped to 1970-01-01T00:00:00.000Z..=9999-12-31T23:59:59.999Z, the range humantime formats
/// (it panics before the epoch and fails past year 9999); no caller's clock comes near either end.
pub fn rfc3339(t: SystemTime) -> String {
    let last = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(t.clamp(SystemTime::UNIX_EPOCH, last)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        // Fixed instants the former hand-written formatter (Hinnant's civil_from_days) gave,
        // which humantime must reproduce byte for byte: sub-millisecond digits are truncated.
        let at = |ms: u64, ns: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(ms) + Duration::from_nanos(ns))
        };
        assert_eq!(at(1_795_984_457_123, 999_999), "2026-11-29T20:34:17.123Z");
        assert_eq!(at(4_107_542_399_999, 0), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(4_107_542_400_000, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(1_709_164_800_007, 0), "2024-02-29T00:00:00.007Z");
        assert_eq!(at(946_684_799_999, 0), "1999-12-31T23:59:59.999Z");
        assert_eq!(at(253_402_300_799_999, 0), "9999-12-31T23:59:59.999Z");
        // Out of range: clamped, not a panic.
        assert_eq!(at(253_402_300_800_000, 0), "9999-12-31T23:59:59.999Z");
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn durations_and_ids_look_like_maestro() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(12), "0.012s");
        assert_eq!(duration_string(1500), "1.5s");
        assert_eq!(duration_string(2000), "2s");
        assert_eq!(duration_string(61_230), "61.23s");
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn bad_fd_is_named() {
        assert!(open_fd("x").unwrap_err().contains(EVENTS_FD_VAR));
        assert!(open_fd("1").unwrap_err().contains("above 2"));
        assert!(open_fd("987")
            .unwrap_err()
            .contains("not an open file descriptor"));
    }
}
