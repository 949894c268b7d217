//! Waiting for a human: Platform answered WAITING_APPROVAL. We show the request (sidecar and
//! terminal), wait for a decision from Platform (long-poll + GetApproval) or from Maestro's
//! approval UI (a JSON line on `MAESTRO_SH_DECISIONS_FD`), then resume the execution with the
//! resume token, or refuse. SIGINT/SIGTERM/SIGHUP abandon the request and we die by the signal.
//!
//! [`wait_adopted`] is the same wait for a request adopted from a killed run (adopt.rs): no
//! resume token (the killed run's guardian holds it and resumes), so it only waits for Platform
//! to show the execution RUNNING or ended.
//!
//! A watcher thread talks to Platform; the main thread multiplexes its reports, the decisions
//! fd and signals with `poll`, so a cancel is immediate even during a long-poll.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde_json::json;

use crate::config::{PlatformConfig, Secret};
use crate::context::Context;
use crate::decide::{get_request, refusal_for, same_execution, Allowed};
use crate::env::{Env, ProcessEnv};
use crate::events::{self, Sidecar};
use crate::outcome::{Outcome, Refusal};
use crate::platform::{jitter, CallError, Checked, Client};
use crate::wire::{self, ExecutionState};

pub const DECISIONS_FD_VAR: &str = "MAESTRO_SH_DECISIONS_FD";
pub const APPROVAL_TIMEOUT_VAR: &str = "MAESTRO_SH_APPROVAL_TIMEOUT_MS";
pub const HEARTBEAT_VAR: &str = "MAESTRO_SH_HEARTBEAT_MS";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Long-poll windows grow from the first to the last, jittered.
pub(crate) const FIRST_WINDOW: Duration = Duration::from_millis(500);
pub(crate) const LAST_WINDOW: Duration = Duration::from_secs(10);
const CANCEL_SIGNALS: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// What the watcher learned.
pub(crate) enum Report {
    Approved {
        by: Option<String>,
        reason: Option<String>,
    },
    Denied {
        by: Option<String>,
        reason: Option<String>,
    },
    Expired,
    /// Someone else resumed it; it is running now.
    Running,
    /// Ended without us (cancelled, failed, denied elsewhere).
    Ended(ExecutionState),
    /// Platform is not answering; the watcher keeps trying.
    Unreachable(String),
    Reachable,
    Fatal(Refusal),
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_cancel_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Wait for the decision on `execution` (state WAITING_APPROVAL).
pub fn wait(
    client: &Arc<Client>,
    cfg: &PlatformConfig,
    ctx: &Context,
    req: &wire::ExecuteToolRequest,
    execution: &Checked,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let env = ProcessEnv;
    let exec_id = execution.id.clone();
    let malformed = |what: &str| {
        Refusal::new(Outcome::PlatformMalformed, what.to_string()).with_execution(Some(&exec_id))
    };
    let wait_info = execution
        .raw
        .approval_wait
        .clone()
        .ok_or_else(|| malformed("WAITING_APPROVAL answer has no approvalWait"))?;
    let approval_id = wait_info
        .approval_request_id
        .clone()
        .filter(|s| !s.trim().is_empty());
    let approval_id =
        approval_id.ok_or_else(|| malformed("WAITING_APPROVAL answer has no approvalRequestId"))?;
    let token = wait_info
        .resume_token
        .clone()
        .filter(|s| !s.trim().is_empty())
        .map(Secret::new);
    let token = token.ok_or_else(|| {
        malformed("WAITING_APPROVAL answer has no resume token").with_approval(Some(&approval_id))
    })?;
    let refuse = |outcome: Outcome, reason: String| {
        Refusal::new(outcome, reason)
            .with_execution(Some(&exec_id))
            .with_approval(Some(&approval_id))
    };

    let timeout = duration_var(&env, APPROVAL_TIMEOUT_VAR, DEFAULT_TIMEOUT)
        .map_err(|e| refuse(Outcome::Misconfigured, e))?;
    let heartbeat = duration_var(&env, HEARTBEAT_VAR, DEFAULT_HEARTBEAT)
        .map_err(|e| refuse(Outcome::Misconfigured, e))?;
    let mut decisions = match open_decisions(&env) {
        Ok(d) => d,
        Err(e) => {
            crate::status::warn(&format!("{e}; waiting for a decision from Platform only"));
            None
        }
    };
    // Should we be killed while waiting, the guardian (which alone gets the token, in memory)
    // keeps the request for the agent's retry to adopt, or cancels it (guardian.rs).
    crate::guardian::waiting(
        &exec_id,
        &approval_id,
        token.expose(),
        wait_info.expires_at.as_deref(),
    );
    let _wait_over = WaitOver;
    let reason = wait_info.reason.clone().unwrap_or_default();
    let started = Instant::now();
    let deadline = started + timeout;

    sidecar.emit(
        events::APPROVAL_HIT,
        json!({
            "tool_call_id": ctx.step_id,
            "tool_execution_id": exec_id,
            "approval_request_id": approval_id,
            // Maestro's ApprovalHit shape: action and context from the request's labels, the
            // sanitized command, never the resume token.
            "action": req.metadata.get("maestro_action_description").map_or("Running command", String::as_str),
            "command": req.arguments.command,
            "decision_mode": "MAESTRO_DECISION_MODE_REQUIRE_APPROVAL",
            "context": {
                "tool_name": "bash",
                "display_name": req.metadata.get("maestro_display_name"),
                "summary_label": req.metadata.get("maestro_summary_label"),
                "args": {"command": req.arguments.command},
            },
            "occurred_at": events::rfc3339(SystemTime::now()),
            "status": "pending",
            "reason": crate::redact::redact_message(&crate::outcome::inert(&reason)).text,
            "risk_level": execution.raw.risk_level,
            "expires_at": wait_info.expires_at,
            "wait_deadline": events::rfc3339(SystemTime::now() + timeout),
            "source": "platform",
            "platform": {"source": "tool_execution", "toolExecutionId": exec_id, "approvalRequestId": approval_id},
        }),
    );
    let mut status = StatusLine::new(&exec_id, &approval_id, &reason);
    status.start();

    let (sig_read, _guard) = match SignalGuard::install() {
        Ok(x) => x,
        Err(e) => {
            return Err(refuse(
                Outcome::PlatformMalformed,
                format!("cannot watch for cancellation: {e}"),
            ))
        }
    };
    let (tx, rx) = mpsc::channel::<Report>();
    let (wake_read, wake_write) = nix::unistd::pipe().map_err(|e| {
        refuse(
            Outcome::PlatformMalformed,
            format!("cannot create a pipe: {e}"),
        )
    })?;
    spawn_watcher(
        client.clone(),
        cfg.clone(),
        exec_id.clone(),
        approval_id.clone(),
        tx,
        wake_write,
        deadline,
    );

    let mut last_heartbeat = Instant::now();
    let resolution = loop {
        let now = Instant::now();
        if now >= deadline {
            break Resolution::TimedOut;
        }
        if now.duration_since(last_heartbeat) >= heartbeat {
            last_heartbeat = now;
            sidecar.emit(
                events::HEARTBEAT,
                json!({
                    "tool_call_id": ctx.step_id,
                    "tool_execution_id": exec_id,
                    "approval_request_id": approval_id,
                    "status": "waiting_approval",
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                }),
            );
        }
        status.tick();

        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_secs(1))
            .min(heartbeat);
        let (sig_ready, wake_ready, decision_ready) =
            match wait_ready(&sig_read, &wake_read, decisions.as_ref(), wait) {
                Ok(r) => r,
                Err(e) => {
                    break Resolution::Fatal(refuse(
                        Outcome::PlatformMalformed,
                        format!("poll failed: {e}"),
                    ))
                }
            };
        if sig_ready {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(sig_read.as_raw_fd(), &mut b);
            let signo = i32::from(b[0]);
            status.finish("cancelled");
            abandon(client, &exec_id, &approval_id, &token, ctx, "cancelled");
            crate::guardian::done();
            let name = Signal::try_from(signo)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            let r = refuse(
                Outcome::Cancelled,
                format!("cancelled by {name} while waiting for approval"),
            );
            crate::status::line(crate::status::Kind::Refusal, &r.line());
            sidecar.emit_refusal(ctx, &r, None);
            crate::supervise::die_by_signal(signo, false);
        }
        if decision_ready {
            match read_decision(decisions.as_mut(), &approval_id) {
                DecisionLine::Decided {
                    approved,
                    by,
                    reason,
                } => {
                    let by = by.or_else(|| ctx.actor_id.clone());
                    break Resolution::Decided {
                        approved,
                        by,
                        reason,
                    };
                }
                DecisionLine::Closed => decisions = None,
                DecisionLine::Bad(msg) => crate::status::warn(&format!(
                    "ignored a decision line on {DECISIONS_FD_VAR}: {msg}"
                )),
            }
        }
        if wake_ready {
            let mut b = [0u8; 64];
            let _ = nix::unistd::read(wake_read.as_raw_fd(), &mut b);
        }
        let mut decided = None;
        while let Ok(report) = rx.try_recv() {
            match report {
                Report::Approved { by, reason } => {
                    decided = Some(Resolution::Decided {
                        approved: true,
                        by,
                        reason,
                    })
                }
                Report::Denied { by, reason } => {
                    decided = Some(Resolution::Decided {
                        approved: false,
                        by,
                        reason,
                    })
                }
                Report::Expired => decided = Some(Resolution::Expired),
                Report::Running => decided = Some(Resolution::Running),
                Report::Ended(state) => decided = Some(Resolution::Ended(state)),
                Report::Fatal(r) => decided = Some(Resolution::Fatal(r)),
                Report::Unreachable(msg) => {
                    status.note(&format!("Platform unreachable, still waiting: {msg}"))
                }
                Report::Reachable => status.note("Platform reachable again"),
            }
        }
        if let Some(d) = decided {
            break d;
        }
    };

    let allowed = || Allowed {
        outcome: Outcome::Approved,
        execution_id: exec_id.clone(),
        approval_request_id: Some(approval_id.clone()),
    };
    match resolution {
        Resolution::Decided {
            approved: true,
            by,
            reason,
        } => {
            let req = resume_request(&exec_id, &approval_id, &token, true, by.clone(), reason);
            match resume_until(client, &req, deadline) {
                Ok(got) => {
                    same_execution(&exec_id, &got)
                        .map_err(|r| r.with_approval(Some(&approval_id)))?;
                    if got.state != ExecutionState::Running {
                        status.finish("failed");
                        return Err(refuse(
                            Outcome::PlatformMalformed,
                            format!(
                                "ResumeToolExecution answered state {} instead of RUNNING",
                                got.state.as_wire()
                            ),
                        ));
                    }
                    status.finish(&format!(
                        "granted{}",
                        by.as_deref()
                            .map(|b| format!(" by {b}"))
                            .unwrap_or_default()
                    ));
                    Ok(allowed())
                }
                Err(e) => {
                    status.finish("failed");
                    Err(refusal_for(&e)
                        .with_execution(Some(&exec_id))
                        .with_approval(Some(&approval_id)))
                }
            }
        }
        Resolution::Decided {
            approved: false,
            by,
            reason,
        } => {
            let req = resume_request(
                &exec_id,
                &approval_id,
                &token,
                false,
                by.clone(),
                reason.clone(),
            );
            let _ = client.resume(&req);
            status.finish("denied");
            Err(refuse(Outcome::Denied, denial(by, reason)))
        }
        Resolution::Running => {
            status.finish("granted");
            Ok(allowed())
        }
        Resolution::Expired => {
            status.finish("expired");
            Err(refuse(
                Outcome::ApprovalTimeout,
                "the approval request expired on Platform".into(),
            ))
        }
        Resolution::TimedOut => {
            status.finish("timed out");
            abandon(
                client,
                &exec_id,
                &approval_id,
                &token,
                ctx,
                "approval timed out",
            );
            Err(refuse(
                Outcome::ApprovalTimeout,
                format!(
                    "no decision within {}s ({APPROVAL_TIMEOUT_VAR})",
                    timeout.as_secs()
                ),
            ))
        }
        Resolution::Ended(state) => {
            let (finish, outcome, reason) = ended_while_waiting(state);
            status.finish(finish);
            Err(refuse(outcome, reason))
        }
        Resolution::Fatal(r) => {
            status.finish("failed");
            Err(r
                .with_execution(Some(&exec_id))
                .with_approval(Some(&approval_id)))
        }
    }
}

/// Wait on an execution adopted from a killed run of this session (adopt.rs): `execution` is
/// Platform's view, already verified against `record`. We hold no resume token: the killed
/// run's guardian resumes the execution when a reviewer approves, so we wait until Platform
/// shows it RUNNING (allowed) or ended (refused). Given up (our own approval timeout, a cancel
/// signal, our death), the record is put back for the next retry; the guardian still owns the
/// approval.
pub fn wait_adopted(
    client: &Arc<Client>,
    cfg: &PlatformConfig,
    ctx: &Context,
    req: &wire::ExecuteToolRequest,
    execution: &Checked,
    record: &crate::adopt::Record,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let env = ProcessEnv;
    let exec_id = record.execution_id.clone();
    let approval_id = record.approval_request_id.clone();
    let refuse = |outcome: Outcome, reason: String| {
        Refusal::new(outcome, reason)
            .with_execution(Some(&exec_id))
            .with_approval(Some(&approval_id))
    };
    let allowed = || Allowed {
        outcome: Outcome::Approved,
        execution_id: exec_id.clone(),
        approval_request_id: Some(approval_id.clone()),
    };
    let timeout = duration_var(&env, APPROVAL_TIMEOUT_VAR, DEFAULT_TIMEOUT)
        .map_err(|e| refuse(Outcome::Misconfigured, e))?;
    let heartbeat = duration_var(&env, HEARTBEAT_VAR, DEFAULT_HEARTBEAT)
        .map_err(|e| refuse(Outcome::Misconfigured, e))?;
    // The caller told the guardian about the claim (killed, it puts the record back).
    let _wait_over = WaitOver;
    if execution.state == ExecutionState::Running {
        return Ok(allowed());
    }
    let wait_info = execution.raw.approval_wait.clone().unwrap_or_default();
    let reason = wait_info.reason.clone().unwrap_or_default();
    let started = Instant::now();
    let deadline = started + timeout;
    sidecar.emit(
        events::APPROVAL_HIT,
        json!({
            "tool_call_id": ctx.step_id,
            "tool_execution_id": exec_id,
            "approval_request_id": approval_id,
            "action": req.metadata.get("maestro_action_description").map_or("Running command", String::as_str),
            "command": req.arguments.command,
            "decision_mode": "MAESTRO_DECISION_MODE_REQUIRE_APPROVAL",
            "occurred_at": events::rfc3339(SystemTime::now()),
            "status": "pending",
            "reason": crate::redact::redact(&reason).text,
            "risk_level": execution.raw.risk_level,
            "expires_at": wait_info.expires_at.or_else(|| record.expires_at.clone()),
            "wait_deadline": events::rfc3339(SystemTime::now() + timeout),
            "source": "platform",
            "adopted": true,
            "platform": {"source": "tool_execution", "toolExecutionId": exec_id, "approvalRequestId": approval_id},
        }),
    );
    let mut status = StatusLine::new(&exec_id, &approval_id, &reason);
    status.start();
    let mut window = FIRST_WINDOW;
    let mut unreachable = false;
    let mut last_heartbeat = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            status.finish("timed out");
            if let Some(dir) = crate::paths::data_dir() {
                let key = crate::adopt::Key {
                    organization_id: record.organization_id.clone(),
                    workspace_id: record.workspace_id.clone(),
                    session_id: record.session_id.clone(),
                    command_digest: record.command_digest.clone(),
                };
                let _ = crate::adopt::leave(&dir, &key, record);
            }
            return Err(refuse(
                Outcome::ApprovalTimeout,
                format!(
                    "no decision within {}s ({APPROVAL_TIMEOUT_VAR}); the request stays open for a retry",
                    timeout.as_secs()
                ),
            ));
        }
        if now.duration_since(last_heartbeat) >= heartbeat {
            last_heartbeat = now;
            sidecar.emit(
                events::HEARTBEAT,
                json!({
                    "tool_call_id": ctx.step_id,
                    "tool_execution_id": exec_id,
                    "approval_request_id": approval_id,
                    "status": "waiting_approval",
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                }),
            );
        }
        status.tick();
        let left = deadline.saturating_duration_since(now);
        let report = match watch_once(
            client,
            cfg,
            &exec_id,
            &approval_id,
            window.min(left).min(heartbeat),
            true,
        ) {
            Ok(None) => {
                if std::mem::take(&mut unreachable) {
                    status.note("Platform reachable again");
                }
                window = (window * 2).min(LAST_WINDOW);
                continue;
            }
            Ok(Some(r)) => r,
            Err(CallError::Unavailable(msg)) => {
                if !std::mem::replace(&mut unreachable, true) {
                    status.note(&format!("Platform unreachable, still waiting: {msg}"));
                }
                std::thread::sleep(Duration::from_millis(500) + jitter(Duration::from_millis(500)));
                window = FIRST_WINDOW;
                continue;
            }
            Err(e) => Report::Fatal(refusal_for(&e)),
        };
        return match report {
            Report::Running => {
                status.finish("granted");
                Ok(allowed())
            }
            Report::Denied { by, reason } => {
                status.finish("denied");
                Err(refuse(Outcome::Denied, denial(by, reason)))
            }
            Report::Expired => {
                status.finish("expired");
                Err(refuse(
                    Outcome::ApprovalTimeout,
                    "the approval request expired on Platform".into(),
                ))
            }
            Report::Ended(ExecutionState::Cancelled) => {
                status.finish("cancelled");
                Err(refuse(
                    Outcome::Cancelled,
                    "the execution was cancelled while waiting for approval".into(),
                ))
            }
            Report::Ended(state) => {
                let (finish, outcome, reason) = ended_while_waiting(state);
                status.finish(finish);
                Err(refuse(outcome, reason))
            }
            Report::Fatal(r) => {
                status.finish("failed");
                Err(r
                    .with_execution(Some(&exec_id))
                    .with_approval(Some(&approval_id)))
            }
            // Not reported in adopted mode (see watch_once); nothing to resume with anyway.
            Report::Approved { .. } | Report::Unreachable(_) | Report::Reachable => continue,
        };
    }
}

/// The refusal reason for an approval a person denied: who and why, when Platform says.
fn denial(by: Option<String>, reason: Option<String>) -> String {
    let who = by.map(|b| format!(" by {b}")).unwrap_or_default();
    let why = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!("approval denied{who}{why}")
}

/// An execution that left WAITING_APPROVAL for `state` without a decision we saw: the status
/// line's last word, the outcome and the reason. Denied is a denial; anything else is not a
/// state a waiting execution may move to on its own.
fn ended_while_waiting(state: ExecutionState) -> (&'static str, Outcome, String) {
    match state {
        ExecutionState::Denied => (
            "denied",
            Outcome::Denied,
            "the execution was denied while waiting for approval".into(),
        ),
        state => (
            "ended",
            Outcome::PlatformMalformed,
            format!(
                "the execution moved to {} while waiting for approval",
                state.as_wire()
            ),
        ),
    }
}

/// How the wait ended.
enum Resolution {
    Decided {
        approved: bool,
        by: Option<String>,
        reason: Option<String>,
    },
    Running,
    Expired,
    TimedOut,
    Ended(ExecutionState),
    Fatal(Refusal),
}

/// Wait up to `wait` for a signal, a watcher report or a decision line.
fn wait_ready(
    sig: &OwnedFd,
    wake: &OwnedFd,
    decisions: Option<&BufReader<File>>,
    wait: Duration,
) -> nix::Result<(bool, bool, bool)> {
    // A decision line may already sit in the reader's buffer.
    if decisions.is_some_and(|d| !d.buffer().is_empty()) {
        return Ok((false, false, true));
    }
    let mut fds = vec![
        PollFd::new(sig.as_fd(), PollFlags::POLLIN),
        PollFd::new(wake.as_fd(), PollFlags::POLLIN),
    ];
    if let Some(d) = decisions {
        fds.push(PollFd::new(d.get_ref().as_fd(), PollFlags::POLLIN));
    }
    let ms = u16::try_from(wait.as_millis()).unwrap_or(1000).max(1);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::Error::EINTR) => {}
        Err(e) => return Err(e),
    }
    let ready = |i: usize| {
        fds.get(i)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
    };
    Ok((ready(0), ready(1), ready(2)))
}

/// Resume calls at most after a decision (each one a client call with its own few attempts):
/// a Platform that stays down gets a bounded number of Resumes, not one a second for the rest
/// of the wait.
pub const RESUME_ROUNDS: u32 = 5;

/// Pauses between retries while Platform is unreachable during the wait: exponential from
/// [`Backoff::FIRST`] to [`Backoff::MAX`], "equal jitter" (half fixed, half random), so many
/// waiting shims do not retry in step.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(15);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The next pause, never past `deadline`.
    fn pause(&mut self, deadline: Instant) -> Duration {
        let d = self.next / 2 + jitter(self.next / 2);
        self.next = (self.next * 2).min(Self::MAX);
        d.min(deadline.saturating_duration_since(Instant::now()))
    }
}

/// Resume, retrying while Platform is unreachable, at most [`RESUME_ROUNDS`] times with
/// backoff and never past `deadline`. The body is identical each time, and a repeated approval
/// of a running execution is answered as is.
pub(crate) fn resume_until(
    client: &Client,
    req: &wire::ResumeToolExecutionRequest,
    deadline: Instant,
) -> Result<Checked, CallError> {
    let mut backoff = Backoff::new();
    let mut round = 1;
    loop {
        match client.resume(req) {
            Err(CallError::Unavailable(_))
                if round < RESUME_ROUNDS && Instant::now() + Duration::from_secs(1) < deadline =>
            {
                round += 1;
                std::thread::sleep(backoff.pause(deadline));
            }
            other => return other,
        }
    }
}

enum DecisionLine {
    Decided {
        approved: bool,
        by: Option<String>,
        reason: Option<String>,
    },
    Closed,
    Bad(String),
}

fn read_decision(decisions: Option<&mut BufReader<File>>, approval_id: &str) -> DecisionLine {
    let Some(reader) = decisions else {
        return DecisionLine::Closed;
    };
    let mut line = String::new();
    match Read::take(reader, 64 * 1024).read_line(&mut line) {
        Ok(0) => return DecisionLine::Closed,
        Ok(_) => {}
        Err(e) => return DecisionLine::Bad(format!("unreadable ({e})")),
    }
    parse_decision(&line, approval_id)
}

/// Parse one decision line: `{"approved": true|false, "decided_by"?: str, "reason"?: str,
/// "approval_request_id"?: str}` (camelCase keys accepted). Anything else is not a decision.
fn parse_decision(line: &str, approval_id: &str) -> DecisionLine {
    let v: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(e) => return DecisionLine::Bad(format!("not JSON ({e})")),
    };
    let field = |a: &str, b: &str| v.get(a).or_else(|| v.get(b));
    let approved = match field("approved", "approved") {
        Some(serde_json::Value::Bool(b)) => *b,
        _ => match field("decision", "decision").and_then(|d| d.as_str()) {
            Some("approved" | "DECISION_TYPE_APPROVED") => true,
            Some("denied" | "DECISION_TYPE_DENIED") => false,
            _ => return DecisionLine::Bad("needs \"approved\": true or false".into()),
        },
    };
    if let Some(id) = field("approval_request_id", "approvalRequestId") {
        if id.as_str() != Some(approval_id) {
            return DecisionLine::Bad(format!(
                "it is for approval request {id}, not {approval_id}"
            ));
        }
    }
    let text = |a: &str, b: &str| {
        field(a, b)
            .and_then(|x| x.as_str())
            .map(|s| crate::platform::truncate(s, 200))
    };
    DecisionLine::Decided {
        approved,
        by: text("decided_by", "decidedBy"),
        reason: text("reason", "reason"),
    }
}

fn open_decisions(env: &dyn Env) -> Result<Option<BufReader<File>>, String> {
    let Some(raw) = env.first_value(&[DECISIONS_FD_VAR]) else {
        return Ok(None);
    };
    let fd: RawFd = raw.parse().ok().filter(|fd| *fd > 2).ok_or_else(|| {
        format!("{DECISIONS_FD_VAR}={raw:?} is not a file descriptor number above 2")
    })?;
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(format!(
            "{DECISIONS_FD_VAR}={fd} is not an open file descriptor"
        ));
    }
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    Ok(Some(BufReader::new(unsafe { File::from_raw_fd(fd) })))
}

/// Tells the guardian the wait is over, however it ends.
struct WaitOver;

impl Drop for WaitOver {
    fn drop(&mut self) {
        crate::guardian::wait_over();
    }
}

/// Check the approval wait's settings ([`APPROVAL_TIMEOUT_VAR`], [`HEARTBEAT_VAR`]) before the
/// first Platform call, so a bad value refuses before an approval is opened. The wait reads
/// them again under the same rules.
pub fn check_settings(env: &dyn Env) -> Result<(), String> {
    duration_var(env, APPROVAL_TIMEOUT_VAR, DEFAULT_TIMEOUT)?;
    duration_var(env, HEARTBEAT_VAR, DEFAULT_HEARTBEAT)?;
    crate::adopt::window(env)?;
    Ok(())
}

/// A duration in milliseconds from `var`, `default` when unset; out of 1..=24 h is an error
/// naming the variable.
fn duration_var(env: &dyn Env, var: &'static str, default: Duration) -> Result<Duration, String> {
    match env.first_value(&[var]) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 1 && Duration::from_millis(ms) <= MAX_TIMEOUT => {
                Ok(Duration::from_millis(ms))
            }
            _ => Err(format!(
                "{var}={v:?} is not a number of milliseconds in 1..={}; fix or unset it",
                MAX_TIMEOUT.as_millis()
            )),
        },
    }
}

/// Tell Platform we gave up on the request (best effort, short).
fn abandon(
    client: &Client,
    exec_id: &str,
    approval_id: &str,
    token: &Secret,
    ctx: &Context,
    reason: &str,
) {
    let _ = client.resume(&resume_request(
        exec_id,
        approval_id,
        token,
        false,
        ctx.actor_id.clone(),
        Some(reason.to_string()),
    ));
}

fn resume_request(
    exec_id: &str,
    approval_id: &str,
    token: &Secret,
    approved: bool,
    by: Option<String>,
    reason: Option<String>,
) -> wire::ResumeToolExecutionRequest {
    wire::ResumeToolExecutionRequest {
        execution_id: exec_id.to_string(),
        approval_request_id: approval_id.to_string(),
        resume_token: token.expose().to_string(),
        approved,
        decided_by: by.unwrap_or_else(|| "maestro-sh".into()),
        reason,
    }
}

/// Installs the cancel handlers for the wait and restores the old ones on drop.
struct SignalGuard {
    old: Vec<(Signal, SigAction)>,
    _write: OwnedFd,
}

impl SignalGuard {
    fn install() -> nix::Result<(OwnedFd, SignalGuard)> {
        let (r, w) = nix::unistd::pipe()?;
        for fd in [r.as_raw_fd(), w.as_raw_fd()] {
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            }
        }
        SIGNAL_PIPE.store(w.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_cancel_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let old = CANCEL_SIGNALS
            .iter()
            .filter_map(|&s| {
                unsafe { signal::sigaction(s, &action) }
                    .ok()
                    .map(|o| (s, o))
            })
            .collect();
        Ok((r, SignalGuard { old, _write: w }))
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (s, o) in &self.old {
            let _ = unsafe { signal::sigaction(*s, o) };
        }
        SIGNAL_PIPE.store(-1, Ordering::SeqCst);
    }
}

/// The watcher: long-polls the execution and checks the approval, reporting what changes.
fn spawn_watcher(
    client: Arc<Client>,
    cfg: PlatformConfig,
    exec_id: String,
    approval_id: String,
    tx: mpsc::Sender<Report>,
    wake: OwnedFd,
    deadline: Instant,
) {
    std::thread::spawn(move || {
        crate::supervise::block_signals_on_this_thread();
        let send = |r: Report| {
            let ok = tx.send(r).is_ok();
            let _ = nix::unistd::write(&wake, b"!");
            ok
        };
        let mut window = FIRST_WINDOW;
        let mut unreachable = false;
        let mut backoff = Backoff::new();
        while Instant::now() < deadline {
            let step = watch_once(&client, &cfg, &exec_id, &approval_id, window, false);
            let report = match step {
                Ok(None) => {
                    backoff = Backoff::new();
                    if unreachable {
                        unreachable = false;
                        if !send(Report::Reachable) {
                            return;
                        }
                    }
                    window = (window * 2).min(LAST_WINDOW);
                    continue;
                }
                Ok(Some(r)) => r,
                Err(CallError::Unavailable(msg)) => {
                    if !unreachable {
                        unreachable = true;
                        if !send(Report::Unreachable(msg)) {
                            return;
                        }
                    }
                    std::thread::sleep(backoff.pause(deadline));
                    window = FIRST_WINDOW;
                    continue;
                }
                Err(e) => Report::Fatal(refusal_for(&e)),
            };
            send(report);
            return;
        }
    });
}

/// One round: the approval's state, then a long-poll on the execution. `Ok(None)`: no change.
/// `adopted`: we hold no resume token (the guardian resumes on approval), so an approval is no
/// news until the execution shows RUNNING.
pub(crate) fn watch_once(
    client: &Client,
    cfg: &PlatformConfig,
    exec_id: &str,
    approval_id: &str,
    window: Duration,
    adopted: bool,
) -> Result<Option<Report>, CallError> {
    let get_approval = || {
        client.get_approval(&wire::GetApprovalRequest {
            approval_request_id: approval_id.to_string(),
            workspace_id: Some(cfg.workspace_id.clone()),
        })
    };
    let mut window = window;
    match approval_report(&get_approval()?) {
        Some(Report::Approved { .. }) if adopted => {
            // The guardian resumes within a round trip of seeing the approval: poll briefly, so
            // a resume that lands between this check and the long-poll costs a second at most.
            window = window.min(Duration::from_secs(1));
            // Maybe resumed already: a long-poll would wait for the *next* change.
            let now = client.get_tool_execution(&get_request(cfg, exec_id, 0), Duration::ZERO)?;
            if let Err(r) = same_execution(exec_id, &now) {
                return Ok(Some(Report::Fatal(r)));
            }
            if now.state == ExecutionState::Running {
                return Ok(Some(Report::Running));
            }
        }
        Some(r) => return Ok(Some(r)),
        None => {}
    }
    let window = window + jitter(window / 4);
    let got = client.get_tool_execution(
        &get_request(cfg, exec_id, window.as_millis() as u64),
        window,
    )?;
    if let Err(r) = same_execution(exec_id, &got) {
        return Ok(Some(Report::Fatal(r)));
    }
    Ok(match got.state {
        ExecutionState::WaitingApproval
        | ExecutionState::Accepted
        | ExecutionState::PolicyEvaluating => None,
        ExecutionState::Running => Some(Report::Running),
        // Ended without us: the approval says why (expired, denied) when it was the cause.
        other => {
            let why = get_approval().ok().as_ref().and_then(approval_report);
            Some(match why {
                Some(r @ (Report::Expired | Report::Denied { .. })) => r,
                _ => Report::Ended(other),
            })
        }
    })
}

/// A decided approval, from its state or its latest decision.
fn approval_report(a: &wire::GetApprovalResponse) -> Option<Report> {
    let decision = a.decisions.iter().flatten().last();
    let by = decision.and_then(|d| d.decided_by.clone());
    let reason = decision.and_then(|d| d.reason.clone());
    let kind = decision
        .and_then(|d| d.decision.clone())
        .unwrap_or_default();
    let state = a.state.clone().unwrap_or_default();
    if kind.ends_with("APPROVED") || state.ends_with("APPROVED") {
        Some(Report::Approved { by, reason })
    } else if kind.ends_with("DENIED") || state.ends_with("DENIED") {
        Some(Report::Denied { by, reason })
    } else if kind.ends_with("EXPIRED") || state.ends_with("EXPIRED") {
        Some(Report::Expired)
    } else {
        None
    }
}

/// The terminal status line: live on a TTY, two plain lines otherwise. Never stdout. Written
/// only when `MAESTRO_SH_STATUS` shows wait lines (by default: stderr is a terminal).
struct StatusLine {
    tty: bool,
    show: bool,
    started: Instant,
    approval_id: String,
    /// Why Platform asks (redacted, cut), shown once when the wait starts.
    reason: String,
    /// `tool_execution_id=…, approval_request_id=…`, on the first and the last line.
    ids: String,
}

/// Columns of the terminal on stderr (80 when it cannot be told).
fn terminal_columns() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

impl StatusLine {
    fn new(exec_id: &str, approval_id: &str, reason: &str) -> StatusLine {
        let reason = crate::redact::redact_message(reason).text;
        let reason = if reason.trim().is_empty() {
            "approval required".to_string()
        } else {
            crate::outcome::inert_max(&reason, 120)
        };
        // Platform's ids are inert too (no escapes on the terminal's status line).
        let (exec_id, approval_id) = (
            &crate::outcome::id_inert(exec_id),
            &crate::outcome::id_inert(approval_id),
        );
        StatusLine {
            tty: std::io::stderr().is_terminal(),
            show: crate::status::shows(crate::status::Kind::Wait),
            started: Instant::now(),
            approval_id: approval_id.to_string(),
            reason,
            ids: format!("tool_execution_id={exec_id}, approval_request_id={approval_id}"),
        }
    }

    /// The details once, on their own line (a TTY or not), then the live line on a TTY.
    fn start(&mut self) {
        if !self.show {
            return;
        }
        let where_ = if self.tty {
            "approve or deny it in EvalOps Platform; Ctrl-C cancels"
        } else {
            "approve or deny it in EvalOps Platform"
        };
        eprintln!(
            "maestro-sh: waiting for approval: {} ({}); {where_}",
            self.reason, self.ids
        );
        self.tick();
    }

    /// Redraw the live line, cut to the terminal's width so it never wraps (a wrapped line
    /// cannot be cleared with one carriage return).
    fn tick(&mut self) {
        if !self.tty || !self.show {
            return;
        }
        let line = format!(
            "maestro-sh: waiting for approval {} ({}s) - approve in EvalOps Platform, Ctrl-C to cancel",
            self.approval_id,
            self.started.elapsed().as_secs(),
        );
        let width = terminal_columns().saturating_sub(1).max(20);
        let line: String = line.chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Erase the live line (TTY only), so the next line starts clean.
    fn clear(&self) {
        if self.tty && self.show {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }

    /// A one-off remark (Platform down, back again): on its own line.
    fn note(&mut self, msg: &str) {
        if !self.show {
            return;
        }
        self.clear();
        eprintln!(
            "maestro-sh: {}",
            crate::redact::redact_message(&crate::outcome::inert(msg)).text
        );
    }

    fn finish(&mut self, how: &str) {
        if !self.show {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.clear();
        eprintln!("maestro-sh: approval {how} after {secs:.1}s ({})", self.ids);
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_grows_jittered_capped_and_stops_at_the_deadline() {
        let mut b = Backoff::new();
        let far = Instant::now() + Duration::from_secs(3600);
        let mut total = Duration::ZERO;
        for round in 0..20u32 {
            let cap = (Backoff::FIRST * 2u32.pow(round.min(10))).min(Backoff::MAX);
            let d = b.pause(far);
            assert!(d >= cap / 2 && d <= cap, "round {round}: {d:?} vs {cap:?}");
            total += d;
        }
        // 15 minutes of outage: tens of rounds, not a thousand.
        assert!(total > Duration::from_secs(150));
        assert_eq!(b.pause(Instant::now()), Duration::ZERO);
    }
}

#[cfg(test)]
mod decision_line_fuzz {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[{}\\[\\]\":,a-z0-9 ]{0,48}",
            (
                prop_oneof![
                    Just(serde_json::json!(true)),
                    Just(serde_json::json!(false)),
                    Just(serde_json::json!("true")),
                    Just(serde_json::json!(1)),
                    Just(serde_json::json!(null)),
                ],
                prop_oneof![Just("apr_1"), Just("apr_2"), Just("")],
                any::<bool>(),
                prop_oneof![Just("approved"), Just("decision"), Just("Approved")],
            )
                .prop_map(|(v, id, with_id, key)| {
                    let mut o = serde_json::Map::new();
                    o.insert(key.into(), v);
                    if with_id {
                        o.insert("approval_request_id".into(), id.into());
                    }
                    serde_json::Value::Object(o).to_string()
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The decisions-fd line: never a panic, and "approved" only from a JSON object that
        /// says `"approved": true` (or decision approved) for this approval request.
        #[test]
        fn only_an_explicit_approval_approves(l in line()) {
            if let DecisionLine::Decided { approved: true, .. } = parse_decision(&l, "apr_1") {
                let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
                let explicit = v.get("approved") == Some(&serde_json::json!(true))
                    || matches!(
                        v.get("decision").and_then(|d| d.as_str()),
                        Some("approved" | "DECISION_TYPE_APPROVED")
                    );
                prop_assert!(explicit, "{l}");
                if let Some(id) = v.get("approval_request_id") {
                    prop_assert_eq!(id, &serde_json::json!("apr_1"));
                }
            }
        }
    }
}
