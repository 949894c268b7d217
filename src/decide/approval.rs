//! Waiting for a human: Platform answered WAITING_APPROVAL. We show the request (sidecar and
//! terminal), wait for a decision from Platform (the [`watch`](super::watch) thread's long-polls
//! and GetApproval) or from Maestro's approval UI ([`decisions`](super::decisions)), then resume
//! the execution with the resume token, or refuse. SIGINT/SIGTERM/SIGHUP end the wait with a
//! `cancelled` refusal carrying the signal; the caller reports it and dies by that signal.
//!
//! The same wait serves a request adopted from a killed run (adopt.rs): we then hold no resume
//! token (the killed run's guardian does, and resumes on approval), so we wait for Platform to
//! show the execution RUNNING or ended; giving up puts the adoption record back for the next
//! retry instead of abandoning the request.
//!
//! The main thread multiplexes the watcher's reports, the decisions fd and signals with `poll`,
//! so a cancel is immediate even during a long-poll.

use std::fs::File;
use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::decisions::{self, DecisionLine, DECISIONS_FD_VAR};
use super::status_line::StatusLine;
use super::watch::{self, resume_until, Report, MAX_TIMEOUT};
use super::{refusal_for, same_execution, Allowed, Decider};
use crate::config::Secret;
use crate::env::{millis_var, Env};
use crate::events::{ApprovalHit, Heartbeat, Ids, Sidecar};
use crate::outcome::{Outcome, Refusal};
use crate::platform::Execution;
use crate::wire::{self, ExecutionState};

pub const APPROVAL_TIMEOUT_VAR: &str = "MAESTRO_SH_APPROVAL_TIMEOUT_MS";
pub const HEARTBEAT_VAR: &str = "MAESTRO_SH_HEARTBEAT_MS";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
const CANCEL_SIGNALS: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The approval wait's settings, read once before the first Platform call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSettings {
    /// How long we wait for a decision ([`APPROVAL_TIMEOUT_VAR`], default 15 min).
    pub timeout: Duration,
    /// How often a heartbeat event goes out while waiting ([`HEARTBEAT_VAR`], default 10 s).
    pub heartbeat: Duration,
    /// How long a guardian keeps an approved request for a retry to adopt
    /// (`MAESTRO_SH_ADOPT_WINDOW_MS`, default 5 min; adopt.rs).
    pub adopt_window: Duration,
}

impl WaitSettings {
    /// Read the three durations; the first bad one is an error naming its variable and range.
    pub fn read(env: &dyn Env) -> Result<WaitSettings, String> {
        Ok(WaitSettings {
            timeout: millis_var(env, APPROVAL_TIMEOUT_VAR, DEFAULT_TIMEOUT, MAX_TIMEOUT)?,
            heartbeat: millis_var(env, HEARTBEAT_VAR, DEFAULT_HEARTBEAT, MAX_TIMEOUT)?,
            adopt_window: crate::adopt::window(env)?,
        })
    }
}

impl Default for WaitSettings {
    fn default() -> WaitSettings {
        WaitSettings {
            timeout: DEFAULT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            adopt_window: crate::adopt::DEFAULT_WINDOW,
        }
    }
}

/// Who holds the request: this run (with the resume token) or a killed run's guardian.
enum Holder<'a> {
    Ours { token: Secret },
    Adopted { record: &'a crate::adopt::Record },
}

/// The request being waited on.
struct Request<'a> {
    exec_id: &'a str,
    approval_id: &'a str,
    holder: Holder<'a>,
}

impl Request<'_> {
    fn refuse(&self, outcome: Outcome, reason: String) -> Refusal {
        Refusal::new(outcome, reason)
            .with_execution(Some(self.exec_id))
            .with_approval(Some(self.approval_id))
    }

    fn allowed(&self) -> Allowed {
        Allowed {
            outcome: Outcome::Approved,
            execution_id: self.exec_id.to_string(),
            approval_request_id: Some(self.approval_id.to_string()),
        }
    }

    fn ids(&self, d: &Decider<'_>) -> Ids {
        Ids::new(&d.ctx.step_id)
            .execution(Some(self.exec_id))
            .approval(Some(self.approval_id))
    }
}

/// Wait for the decision on `execution` (state WAITING_APPROVAL), which this run opened.
pub(super) fn wait_fresh(
    d: &Decider<'_>,
    req: &wire::ExecuteToolRequest,
    execution: &Execution,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let exec_id = execution.id.as_str();
    let malformed = |what: &str| {
        Refusal::new(Outcome::PlatformMalformed, what.to_string()).with_execution(Some(exec_id))
    };
    let info = execution
        .raw
        .approval_wait
        .clone()
        .ok_or_else(|| malformed("WAITING_APPROVAL answer has no approvalWait"))?;
    let approval_id = info
        .approval_request_id
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| malformed("WAITING_APPROVAL answer has no approvalRequestId"))?;
    let token = info
        .resume_token
        .clone()
        .filter(|s| !s.trim().is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            malformed("WAITING_APPROVAL answer has no resume token")
                .with_approval(Some(&approval_id))
        })?;
    // Should we be killed while waiting, the guardian (which alone gets the token, in memory)
    // keeps the request for the agent's retry to adopt, or cancels it (guardian.rs).
    crate::guardian::waiting(
        exec_id,
        &approval_id,
        token.expose(),
        info.expires_at.as_deref(),
    );
    let request = Request {
        exec_id,
        approval_id: &approval_id,
        holder: Holder::Ours { token },
    };
    wait(d, req, execution, &info, request, sidecar)
}

/// Wait on an execution adopted from a killed run of this session (adopt.rs): `execution` is
/// Platform's view, already verified against `record`, and the caller told the guardian about
/// the claim.
pub(super) fn wait_adopted(
    d: &Decider<'_>,
    req: &wire::ExecuteToolRequest,
    execution: &Execution,
    record: &crate::adopt::Record,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let request = Request {
        exec_id: &record.execution_id,
        approval_id: &record.approval_request_id,
        holder: Holder::Adopted { record },
    };
    if execution.state == ExecutionState::Running {
        crate::guardian::wait_over();
        return Ok(request.allowed());
    }
    let mut info = execution.raw.approval_wait.clone().unwrap_or_default();
    info.expires_at = info.expires_at.or_else(|| record.expires_at.clone());
    wait(d, req, execution, &info, request, sidecar)
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
    Cancelled(i32),
    Fatal(Refusal),
}

/// The wait itself: show the request, then multiplex signals, the watcher and the decisions
/// fd until something decides, then finish accordingly.
fn wait(
    d: &Decider<'_>,
    req: &wire::ExecuteToolRequest,
    execution: &Execution,
    info: &wire::ApprovalWait,
    request: Request<'_>,
    sidecar: &mut Sidecar,
) -> Result<Allowed, Refusal> {
    let wait_over = WaitOver::new();
    let adopted = matches!(request.holder, Holder::Adopted { .. });
    let reason = info.reason.clone().unwrap_or_default();
    let started = Instant::now();
    let deadline = started + d.wait.timeout;
    sidecar.emit(&ApprovalHit::new(
        request.ids(d),
        d.labels,
        &req.arguments.command,
        &reason,
        execution
            .raw
            .risk_level
            .as_deref()
            .filter(|r| !r.is_empty()),
        info.expires_at.as_deref(),
        SystemTime::now() + d.wait.timeout,
        adopted,
    ));
    let mut status = StatusLine::new(request.exec_id, request.approval_id, &reason);
    status.start();

    let resolution = watch_until_decided(d, &request, deadline, &mut status, sidecar, started);
    finish(d, &request, resolution, deadline, &mut status, &wait_over)
}

fn watch_until_decided(
    d: &Decider<'_>,
    request: &Request<'_>,
    deadline: Instant,
    status: &mut StatusLine,
    sidecar: &mut Sidecar,
    started: Instant,
) -> Resolution {
    let fatal = |what: String| Resolution::Fatal(Refusal::new(Outcome::PlatformMalformed, what));
    let (sig_read, _guard) = match SignalGuard::install() {
        Ok(x) => x,
        Err(e) => return fatal(format!("cannot watch for cancellation: {e}")),
    };
    let (wake_read, wake_write) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return fatal(format!("cannot create a pipe: {e}")),
    };
    let adopted = matches!(request.holder, Holder::Adopted { .. });
    // Maestro's UI can decide only a request we can resume, i.e. one we hold the token of.
    let mut decisions: Option<BufReader<File>> =
        d.decisions_fd.filter(|_| !adopted).map(decisions::open);
    let (tx, rx) = mpsc::channel::<Report>();
    watch::spawn_watcher(
        d.platform.clone(),
        d.tenant.clone(),
        watch::Watched {
            exec_id: request.exec_id.to_string(),
            approval_id: request.approval_id.to_string(),
            adopted,
            deadline,
        },
        tx,
        wake_write,
    );
    let heartbeat = d.wait.heartbeat;
    let mut last_heartbeat = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Resolution::TimedOut;
        }
        if now.duration_since(last_heartbeat) >= heartbeat {
            last_heartbeat = now;
            sidecar.emit(&Heartbeat::waiting(
                request.ids(d),
                started.elapsed().as_millis() as u64,
            ));
        }
        status.tick();
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_secs(1))
            .min(heartbeat);
        let (sig_ready, wake_ready, decision_ready) =
            match wait_ready(&sig_read, &wake_read, decisions.as_ref(), wait) {
                Ok(r) => r,
                Err(e) => return fatal(format!("poll failed: {e}")),
            };
        if sig_ready {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(sig_read.as_raw_fd(), &mut b);
            return Resolution::Cancelled(i32::from(b[0]));
        }
        if decision_ready {
            match decisions::read_decision(decisions.as_mut(), request.approval_id) {
                DecisionLine::Decided {
                    approved,
                    by,
                    reason,
                } => {
                    let by = by.or_else(|| d.ctx.actor_id.clone());
                    return Resolution::Decided {
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
        while let Ok(report) = rx.try_recv() {
            let decided = match report {
                Report::Approved { by, reason } => Resolution::Decided {
                    approved: true,
                    by,
                    reason,
                },
                Report::Denied { by, reason } => Resolution::Decided {
                    approved: false,
                    by,
                    reason,
                },
                Report::Expired => Resolution::Expired,
                Report::Running => Resolution::Running,
                Report::Ended(state) => Resolution::Ended(state),
                Report::Fatal(r) => Resolution::Fatal(r),
                Report::Unreachable(msg) => {
                    status.note(&format!("Platform unreachable, still waiting: {msg}"));
                    continue;
                }
                Report::Reachable => {
                    status.note("Platform reachable again");
                    continue;
                }
            };
            return decided;
        }
    }
}

/// Act on how the wait ended: resume or abandon our request, or put an adopted one back.
fn finish(
    d: &Decider<'_>,
    request: &Request<'_>,
    resolution: Resolution,
    deadline: Instant,
    status: &mut StatusLine,
    wait_over: &WaitOver,
) -> Result<Allowed, Refusal> {
    let platform = d.platform.as_ref();
    // As Maestro writes durations: 1500 ms is "1.5s", not "1s".
    let timeout = crate::events::duration_string(d.wait.timeout.as_millis() as u64);
    match (resolution, &request.holder) {
        (
            Resolution::Decided {
                approved: true,
                by,
                reason,
            },
            Holder::Ours { token },
        ) => {
            let resume = resume_request(request, token, true, by.clone(), reason);
            let got = resume_until(platform, &resume, deadline).map_err(|e| {
                status.finish("failed");
                refusal_for(&e)
                    .with_execution(Some(request.exec_id))
                    .with_approval(Some(request.approval_id))
            })?;
            same_execution(request.exec_id, &got)
                .map_err(|r| r.with_approval(Some(request.approval_id)))?;
            if got.state != ExecutionState::Running {
                status.finish("failed");
                return Err(request.refuse(
                    Outcome::PlatformMalformed,
                    format!(
                        "ResumeToolExecution answered state {} instead of RUNNING",
                        got.state.as_wire()
                    ),
                ));
            }
            let by = by.map(|b| format!(" by {b}")).unwrap_or_default();
            status.finish(&format!("granted{by}"));
            Ok(request.allowed())
        }
        // An adopted request is resumed by the killed run's guardian, never by us: an
        // approval is news only once Platform shows it RUNNING (the watcher says so).
        (Resolution::Decided { approved: true, .. }, Holder::Adopted { .. }) => {
            status.finish("failed");
            Err(request.refuse(
                Outcome::PlatformMalformed,
                "an approval for an adopted request was reported before it ran".into(),
            ))
        }
        (
            Resolution::Decided {
                approved: false,
                by,
                reason,
            },
            holder,
        ) => {
            if let Holder::Ours { token } = holder {
                let _ = platform.resume(&resume_request(
                    request,
                    token,
                    false,
                    by.clone(),
                    reason.clone(),
                ));
            }
            status.finish("denied");
            Err(request.refuse(Outcome::Denied, denial(by, reason)))
        }
        (Resolution::Running, _) => {
            status.finish("granted");
            Ok(request.allowed())
        }
        (Resolution::Expired, _) => {
            status.finish("expired");
            Err(request.refuse(
                Outcome::ApprovalTimeout,
                "the approval request expired on Platform".into(),
            ))
        }
        (Resolution::TimedOut, holder) => {
            status.finish("timed out");
            // Our own timeout, like Maestro's kill: a human may still decide, and the agent's
            // retry of this command in this session then picks the decision up (adopt.rs).
            // The guardian keeps the request (it alone holds the token from here on).
            if matches!(holder, Holder::Ours { .. }) && can_hand_over(d) {
                wait_over.armed.set(false);
                return Err(request.refuse(
                    Outcome::ApprovalTimeout,
                    format!(
                        "no decision within {timeout} ({APPROVAL_TIMEOUT_VAR}); the request \
                         stays open for a retry of this command in this session"
                    ),
                ));
            }
            let left = give_up(d, request, holder, "approval timed out");
            Err(request.refuse(
                Outcome::ApprovalTimeout,
                format!("no decision within {timeout} ({APPROVAL_TIMEOUT_VAR}){left}"),
            ))
        }
        (Resolution::Cancelled(signo), holder) => {
            status.finish("cancelled");
            give_up(d, request, holder, "cancelled");
            let name = Signal::try_from(signo)
                .map(|s| s.as_str())
                .unwrap_or("a signal");
            Err(request
                .refuse(
                    Outcome::Cancelled,
                    format!("cancelled by {name} while waiting for approval"),
                )
                .with_signal(signo))
        }
        (Resolution::Ended(state), _) => {
            let (how, outcome, reason) = ended_while_waiting(state);
            status.finish(how);
            Err(request.refuse(outcome, reason))
        }
        (Resolution::Fatal(r), _) => {
            status.finish("failed");
            Err(r
                .with_execution(Some(request.exec_id))
                .with_approval(Some(request.approval_id)))
        }
    }
}

/// Whether a wait we time out on can be left to the guardian: one is running, and a retry can
/// find the request (a session to match it by, a data dir for the adoption record).
fn can_hand_over(d: &Decider<'_>) -> bool {
    crate::guardian::present()
        && d.data_dir.is_some()
        && d.ctx
            .session_id
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
}

/// We stop waiting without a decision. Our own request is abandoned on Platform (a denial
/// with `reason`, best effort) so no reviewer approves a command nobody waits for; an adopted
/// one is put back for the next retry (its guardian still owns it). Returns the note for the
/// refusal's reason.
fn give_up(d: &Decider<'_>, request: &Request<'_>, holder: &Holder<'_>, reason: &str) -> String {
    match holder {
        Holder::Ours { token } => {
            let _ = d.platform.resume(&resume_request(
                request,
                token,
                false,
                d.ctx.actor_id.clone(),
                Some(reason.to_string()),
            ));
            String::new()
        }
        Holder::Adopted { record } => {
            if let Some(dir) = &d.data_dir {
                let _ = crate::adopt::leave(dir, &crate::adopt::Key::of_record(record), record);
            }
            "; the request stays open for a retry".into()
        }
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
/// line's last word, the outcome and the reason. Denied is a denial and cancelled a cancel;
/// anything else is not a state a waiting execution may move to on its own.
fn ended_while_waiting(state: ExecutionState) -> (&'static str, Outcome, String) {
    match state {
        ExecutionState::Denied => (
            "denied",
            Outcome::Denied,
            "the execution was denied while waiting for approval".into(),
        ),
        ExecutionState::Cancelled => (
            "cancelled",
            Outcome::Cancelled,
            "the execution was cancelled while waiting for approval".into(),
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

fn resume_request(
    request: &Request<'_>,
    token: &Secret,
    approved: bool,
    by: Option<String>,
    reason: Option<String>,
) -> wire::ResumeToolExecutionRequest {
    wire::ResumeToolExecutionRequest {
        execution_id: request.exec_id.to_string(),
        approval_request_id: request.approval_id.to_string(),
        resume_token: token.expose().to_string(),
        approved,
        decided_by: by.unwrap_or_else(|| "maestro-sh".into()),
        reason,
    }
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

/// Tells the guardian the wait is over, however it ends.
/// Disarmed when the wait is handed over to the guardian, which then keeps it.
struct WaitOver {
    armed: std::cell::Cell<bool>,
}

impl WaitOver {
    fn new() -> WaitOver {
        WaitOver {
            armed: std::cell::Cell::new(true),
        }
    }
}

impl Drop for WaitOver {
    fn drop(&mut self) {
        if self.armed.get() {
            crate::guardian::wait_over();
        }
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_cancel_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
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
