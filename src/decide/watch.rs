//! Watching a waiting execution on Platform: long-polls on the execution and checks of the
//! approval, reported as they change, with backoff while Platform is unreachable. Used by the
//! approval wait (on a thread) and by the guardian.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::OwnedFd;

use super::{get_request, refusal_for, same_execution, Tenant, ToolExecutions};
use crate::outcome::Refusal;
use crate::platform::{jitter, CallError, Execution};
use crate::wire::{self, ExecutionState};

/// The longest approval wait, and the longest a guardian sees a request through.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Long-poll windows grow from the first to the last, jittered.
pub const FIRST_WINDOW: Duration = Duration::from_millis(500);
pub const LAST_WINDOW: Duration = Duration::from_secs(10);

/// What the watcher learned.
pub enum Report {
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

/// Resume calls at most after a decision (each one a client call with its own few attempts):
/// a Platform that stays down gets a bounded number of Resumes, not one a second for the rest
/// of the wait.
pub const RESUME_ROUNDS: u32 = 5;

/// Pauses between retries while Platform is unreachable during the wait: exponential from
/// [`Backoff::FIRST`] to [`Backoff::MAX`], "equal jitter" (half fixed, half random), so many
/// waiting shims do not retry in step.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(15);

    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// The next pause, never past `deadline`.
    pub fn pause(&mut self, deadline: Instant) -> Duration {
        let d = self.next / 2 + jitter(self.next / 2);
        self.next = (self.next * 2).min(Self::MAX);
        d.min(deadline.saturating_duration_since(Instant::now()))
    }
}

/// Resume, retrying while Platform is unreachable, at most [`RESUME_ROUNDS`] times with
/// backoff and never past `deadline`. The body is identical each time, and a repeated approval
/// of a running execution is answered as is.
pub fn resume_until(
    client: &(impl ToolExecutions + ?Sized),
    req: &wire::ResumeToolExecutionRequest,
    deadline: Instant,
) -> Result<Execution, CallError> {
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

/// What a watcher watches.
pub(super) struct Watched {
    pub exec_id: String,
    pub approval_id: String,
    /// We hold no resume token (see [`watch_once`]).
    pub adopted: bool,
    pub deadline: Instant,
}

/// The watcher: long-polls the execution and checks the approval, reporting what changes on
/// `tx` and writing a byte to `wake` after each report (the waiting thread polls it).
pub(super) fn spawn_watcher(
    client: Arc<dyn ToolExecutions>,
    tenant: Tenant,
    watched: Watched,
    tx: mpsc::Sender<Report>,
    wake: OwnedFd,
) {
    let Watched {
        exec_id,
        approval_id,
        adopted,
        deadline,
    } = watched;
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
            let step = watch_once(
                client.as_ref(),
                &tenant,
                &exec_id,
                &approval_id,
                window,
                adopted,
            );
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
pub fn watch_once(
    client: &(impl ToolExecutions + ?Sized),
    tenant: &Tenant,
    exec_id: &str,
    approval_id: &str,
    window: Duration,
    adopted: bool,
) -> Result<Option<Report>, CallError> {
    let get_approval = || {
        client.get_approval(&wire::GetApprovalRequest {
            approval_request_id: approval_id.to_string(),
            workspace_id: Some(tenant.workspace_id.clone()),
        })
    };
    let mut window = window;
    match approval_report(&get_approval()?) {
        Some(Report::Approved { .. }) if adopted => {
            // The guardian resumes within a round trip of seeing the approval: poll briefly, so
            // a resume that lands between this check and the long-poll costs a second at most.
            window = window.min(Duration::from_secs(1));
            // Maybe resumed already: a long-poll would wait for the *next* change.
            let now =
                client.get_tool_execution(&get_request(tenant, exec_id, 0), Duration::ZERO)?;
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
        &get_request(tenant, exec_id, window.as_millis() as u64),
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
