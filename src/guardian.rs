//! The guardian: a small detached process that keeps Platform true when maestro-sh is killed.
//!
//! Maestro ends a tool call that outlives its timeout by SIGKILLing the whole process group;
//! nothing in that group can then record anything. So a governed (or recorded observe) execution
//! has a guardian from ExecuteTool to the final record: forked, put in a process group of its
//! own by maestro-sh at once (`setpgid`, so a group kill an instant later already misses it),
//! then in a new session (`setsid`; it forks once more for that on its own time, a group
//! leader cannot), so it is outside the caller's process group and session and survives the
//! group kill (re-parented like any orphan when maestro-sh exits). maestro-sh
//! tells it, over a private pipe, what stage it is in; the guardian sleeps until the pipe's end
//! of file (it is not woken for each stage), then reads them all. End of file without a "done"
//! means maestro-sh died without recording:
//!
//! - while the command ran: the guardian records the outcome (killed by SIGKILL, the duration
//!   so far), or spools it to the outbox when Platform does not take it;
//! - while waiting for an approval: it leaves the request open for the agent's retry to adopt
//!   (adopt.rs): approved once, run once. The adoption record it writes holds no secret: the
//!   resume token stays in the guardian's memory, and the guardian itself keeps watching
//!   Platform until the approval is decided or expires (long-polls backing off like the
//!   approval wait). When Platform reports a reviewer's approval, the guardian resumes the
//!   execution (RUNNING) and the adopting retry runs the command; if no retry adopts it within
//!   the adoption window ([`crate::adopt::WINDOW_VAR`]), the guardian claims the record itself
//!   and records the execution closed, not run, so Platform is never left with a stale
//!   RUNNING. A denial is passed on (Resume with `approved: false`); an expiry is left to
//!   Platform. Without a session to match a retry by, it cancels the request at once, so no
//!   reviewer approves what nobody waits for;
//! - while an adopting retry waited: it puts the adoption record back for the next retry (the
//!   first guardian still holds the token).
//!
//! The guardian holds credentials (the Platform client is in its memory), so it makes itself
//! non-dumpable (no core, no ptrace attach by the user's other processes) and prints nothing.
//! It is never started on the pass-through path.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::platform::Client;
use crate::supervise::Exit;
use crate::wire;

/// The write end of the pipe to the guardian, when there is one.
static PIPE: Mutex<Option<std::fs::File>> = Mutex::new(None);
/// Our child: the guardian, or the intermediate that forked it (reaped once we are done).
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// What the guardian needs to record in maestro-sh's stead.
pub struct Job<'a> {
    pub client: Arc<Client>,
    pub ctx: &'a Context,
    pub execute: &'a wire::ExecuteToolRequest,
    pub data_dir: Option<PathBuf>,
    /// What a retry must match to adopt an approval we abandon by dying (`None`: cancel it).
    pub adopt: Option<crate::adopt::Key>,
    pub cfg: &'a crate::config::PlatformConfig,
    /// How long an approved execution is kept for a retry to adopt ([`crate::adopt::window`]).
    pub adopt_window: Duration,
}

/// Start the guardian for `job`. Failure to start one is not fatal: the run goes on exactly as
/// before, only a group kill would leave the execution unrecorded.
pub fn spawn(job: Job<'_>) {
    let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return;
    };
    // SAFETY: single-threaded here (before the approval watcher starts); the child only detaches
    // (setsid, and fork when needed) before running the guardian.
    match unsafe { libc::fork() } {
        0 => unsafe {
            drop(write);
            // Out of the caller's session too. We fail when maestro-sh has already made us a
            // process group leader (below); our own child is not one, and takes over.
            if libc::setsid() < 0 {
                match libc::fork() {
                    0 => {
                        libc::setsid();
                    }
                    pid if pid > 0 => libc::_exit(0),
                    // Stay: in a process group of our own, in the caller's session.
                    _ => {}
                }
            }
            guard(read, job);
            libc::_exit(0)
        },
        pid if pid > 0 => {
            // Out of the caller's process group at once, before anything needs a guardian: on a
            // busy machine the child may not run for milliseconds, and a group SIGKILL meanwhile
            // would take it too. (Fails harmlessly if it has already left by `setsid`.) This is
            // why one fork from here is enough: the child detaches on its own time.
            unsafe { libc::setpgid(pid, pid) };
            CHILD.store(pid, std::sync::atomic::Ordering::SeqCst);
            drop(read);
            crate::supervise::sentinel_closes(write.as_raw_fd());
            if let Ok(mut slot) = PIPE.lock() {
                *slot = Some(std::fs::File::from(write));
            }
        }
        _ => {}
    }
}

fn send(line: &str) {
    if let Ok(mut slot) = PIPE.lock() {
        if let Some(f) = slot.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// A field on the pipe: no tabs or newlines (ids and tokens never have them).
fn clean(s: &str) -> String {
    s.chars().filter(|c| *c != '\t' && *c != '\n').collect()
}

/// ExecuteTool is about to be sent (governed): killed before its answer, the guardian asks
/// again (the same idempotency key finds the same execution) and closes it out.
pub fn asking() {
    send("A\n");
}

/// We refused without ExecuteTool's answer (it did not come in time: `platform_unavailable`):
/// the guardian asks again once we are gone and closes out whatever Platform made of the
/// request, as not run (instead of [`done`]).
pub fn gave_up_asking() {
    send("U\n");
}

/// Platform accepted the call as execution `id`.
pub fn executed(id: &str) {
    send(&format!("E\t{}\n", clean(id)));
}

/// Waiting for approval `approval_id` on `exec_id` (expiring at `expires_at`); `token` lets
/// the guardian resume or cancel it. It crosses only this private pipe, to a non-dumpable
/// process that keeps it in memory.
pub fn waiting(exec_id: &str, approval_id: &str, token: &str, expires_at: Option<&str>) {
    send(&format!(
        "W\t{}\t{}\t{}\t{}\n",
        clean(exec_id),
        clean(approval_id),
        clean(token),
        clean(expires_at.unwrap_or_default())
    ));
}

/// We claimed `record` (adopt.rs) and wait on it: killed, the guardian puts it back.
pub fn adopted_wait(record: &crate::adopt::Record) {
    if let Ok(json) = serde_json::to_string(record) {
        send(&format!("J\t{json}\n"));
    }
}

/// The approval wait ended (decided, timed out, cancelled by us).
pub fn wait_over() {
    send("w\n");
}

/// Milliseconds on the system-wide monotonic clock (comparable between our processes).
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// The command starts now (stamped here: the guardian may read the line later).
pub fn running() {
    send(&format!("R\t{}\n", monotonic_ms()));
}

/// The final record is done: nothing left to do in our stead.
pub fn done() {
    send("D\n");
    // The intermediate, if the guardian needed one, has exited by now; never waited for.
    let child = CHILD.swap(0, std::sync::atomic::Ordering::SeqCst);
    if child > 0 {
        let mut status = 0;
        unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
    }
}

/// True when a guardian is running for this invocation (it got the pipe's write end).
pub fn present() -> bool {
    PIPE.lock().map(|p| p.is_some()).unwrap_or(false)
}

/// Remove `dir` once we have exited (our own core file, written there to spare the child's):
/// by the guardian when there is one, else by a small detached cleaner that waits for our end.
pub fn remove_after_exit(dir: &Path) {
    let has_guardian = present();
    match dir.to_str() {
        Some(d) if has_guardian => send(&format!("C\t{}\n", clean(d))),
        _ => spawn_cleaner(dir),
    }
}

/// Fork (twice, `setsid`) a process that removes `dir` when our end of a pipe closes.
fn spawn_cleaner(dir: &Path) {
    let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return;
    };
    // SAFETY: called on the way out, single-threaded; the children only read, remove, _exit.
    match unsafe { libc::fork() } {
        0 => unsafe {
            drop(write);
            libc::setsid();
            if libc::fork() == 0 {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                close_from(3, read.as_raw_fd());
                let mut f = std::fs::File::from(read);
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut f, &mut sink);
                let _ = std::fs::remove_dir_all(dir);
            }
            libc::_exit(0)
        },
        pid if pid > 0 => {
            drop(read);
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            // Held open until we die: its end of file is the cleaner's signal.
            std::mem::forget(write);
        }
        _ => {}
    }
}

/// What the guardian knows of maestro-sh's progress.
#[derive(Default)]
struct Stage {
    asked: bool,
    /// We refused before ExecuteTool's answer arrived: what Platform made was never run.
    gave_up: bool,
    execution_id: Option<String>,
    /// Execution, approval, resume token, expiry.
    waiting: Option<(String, String, crate::config::Secret, Option<String>)>,
    /// An adopted request we wait on (no token).
    adopted: Option<crate::adopt::Record>,
    /// When the command started, in [`monotonic_ms`].
    running_since: Option<u64>,
    done: bool,
    cleanup: Vec<PathBuf>,
}

impl Stage {
    fn apply(&mut self, line: &str) {
        let line = line.trim_end_matches('\n');
        if let Some(json) = line.strip_prefix("J\t") {
            self.adopted = serde_json::from_str(json).ok();
            return;
        }
        let mut parts = line.split('\t');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("A"), ..) => self.asked = true,
            (Some("U"), ..) => self.gave_up = true,
            (Some("E"), Some(id), _, _) => self.execution_id = Some(id.to_string()),
            (Some("W"), Some(e), Some(a), Some(t)) => {
                let expires = parts.next().filter(|x| !x.is_empty()).map(str::to_string);
                self.waiting = Some((e.into(), a.into(), crate::config::Secret::new(t), expires))
            }
            (Some("w"), ..) => {
                self.waiting = None;
                self.adopted = None;
            }
            (Some("R"), Some(ms), _, _) => self.running_since = ms.parse().ok(),
            (Some("D"), ..) => self.done = true,
            (Some("C"), Some(dir), _, _) => self.cleanup.push(PathBuf::from(dir)),
            _ => {}
        }
    }
}

/// The guardian process: detach, listen, and act on maestro-sh's death.
fn guard(read: OwnedFd, job: Job<'_>) {
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Hold none of the caller's files: its pipes must see end of file when the command's
        // side closes them, whatever we do.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let keep = read.as_raw_fd();
        close_from(3, keep);
        libc::chdir(c"/".as_ptr());
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let stage = read_stages(read);
    // End of file: maestro-sh has exited (its core, if any, is written by now).
    for dir in &stage.cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    // A wait still open at the end was handed over to us (our own approval timeout, see
    // decide::approval) or left by our death: see it through. Otherwise "done" means done.
    if stage.done && stage.waiting.is_none() {
        return;
    }
    // Work to do. A client of our own, built only now (off maestro-sh's path): the one we
    // were forked with may hold pooled connections whose sockets `close_from` closed (and
    // whose fd numbers anything we open may reuse).
    let job = Job {
        client: Arc::new(Client::new(job.cfg)),
        ..job
    };
    if let Some((exec_id, approval_id, token, expires)) = &stage.waiting {
        abandon_wait(
            &job,
            exec_id,
            approval_id,
            token.expose(),
            expires.as_deref(),
        );
    } else if let Some(record) = &stage.adopted {
        // The first guardian still watches it; the next retry may adopt it again.
        if let (Some(key), Some(dir)) = (&job.adopt, &job.data_dir) {
            let _ = crate::adopt::leave(dir, key, record);
        }
    } else if let Some(since) = stage.running_since {
        let ran = Duration::from_millis(monotonic_ms().saturating_sub(since));
        record_kill(&job, stage.execution_id.as_deref(), ran);
    } else if let Some(id) = &stage.execution_id {
        // Allowed, killed before the command started.
        record_kill(&job, Some(id), Duration::ZERO);
    } else if stage.asked {
        // Killed while ExecuteTool was in flight, or refused without its answer: the same
        // request (same idempotency key) finds the execution Platform made, if it made one,
        // which we then close out.
        closed_out_unanswered(&job, stage.gave_up);
    }
}

/// Read maestro-sh's stages until its end of the pipe closes. The guardian is not woken for
/// each stage (`poll` asks for no event: only the hang-up wakes it), so a short run costs it no
/// wake-up at all; once a second it takes what is there, so a writer never waits on a full
/// pipe however many stages a long run writes.
fn read_stages(read: OwnedFd) -> Stage {
    let fd = read.as_raw_fd();
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut file = std::fs::File::from(read);
    let mut stage = Stage::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut hangup = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        unsafe { libc::poll(&mut hangup, 1, 1000) };
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => {
                    // A last line without its newline still counts.
                    if !pending.is_empty() {
                        stage.apply(&String::from_utf8_lossy(&pending));
                    }
                    return stage;
                }
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        stage.apply(&String::from_utf8_lossy(&line));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return stage,
            }
        }
    }
}

/// An approval wait nobody continues: leave it for the agent's retry (adopt.rs) and see it
/// through ourselves, or cancel it when there is nothing to match a retry by or the record
/// cannot be written.
fn abandon_wait(
    job: &Job<'_>,
    exec_id: &str,
    approval_id: &str,
    token: &str,
    expires: Option<&str>,
) {
    if let (Some(key), Some(dir)) = (&job.adopt, &job.data_dir) {
        let record = crate::adopt::Record::new(key, exec_id, approval_id, expires);
        if crate::adopt::leave(dir, key, &record).is_ok() {
            see_through(job, key, dir, &record, token);
            return;
        }
    }
    let _ = job.client.resume(&resume(
        exec_id,
        approval_id,
        token,
        false,
        None,
        Some("maestro-sh was killed while waiting for this approval (the caller gave up)".into()),
    ));
}

fn resume(
    exec_id: &str,
    approval_id: &str,
    token: &str,
    approved: bool,
    by: Option<String>,
    reason: Option<String>,
) -> wire::ResumeToolExecutionRequest {
    wire::ResumeToolExecutionRequest {
        execution_id: exec_id.to_string(),
        approval_request_id: approval_id.to_string(),
        resume_token: token.to_string(),
        approved,
        decided_by: by.unwrap_or_else(|| "maestro-sh".into()),
        reason,
    }
}

/// Until the approval expires: watch Platform for its resolution and act on it with the token
/// only we hold. Only Platform's word counts (GetApproval, GetToolExecution): nothing local an
/// agent could write makes us resume.
fn see_through(
    job: &Job<'_>,
    key: &crate::adopt::Key,
    dir: &Path,
    record: &crate::adopt::Record,
    token: &str,
) {
    use crate::decide::watch::{Report, FIRST_WINDOW, LAST_WINDOW, MAX_TIMEOUT};
    let exec_id = record.execution_id.as_str();
    let approval_id = record.approval_request_id.as_str();
    // Nothing runnable is left behind once the request is over.
    let drop_record = || {
        crate::adopt::claim_exact(dir, key, exec_id);
    };
    let left = record
        .expires_at
        .as_deref()
        .and_then(crate::attach::parse_rfc3339)
        // Already past: a last look (Platform may not have marked it yet), then done.
        .map(|t| {
            t.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                + Duration::from_secs(5)
        })
        .unwrap_or(MAX_TIMEOUT)
        .min(MAX_TIMEOUT);
    let deadline = Instant::now() + left;
    let mut window = FIRST_WINDOW;
    let mut unreachable = Duration::from_millis(500);
    while Instant::now() < deadline {
        let step = crate::decide::watch::watch_once(
            job.client.as_ref(),
            &job.cfg.into(),
            exec_id,
            approval_id,
            window.min(deadline.saturating_duration_since(Instant::now())),
            false,
        );
        if step.is_ok() {
            unreachable = Duration::from_millis(500);
        }
        match step {
            Ok(None) => window = (window * 2).min(LAST_WINDOW),
            Ok(Some(Report::Approved { by, reason })) => {
                let req = resume(exec_id, approval_id, token, true, by, reason);
                match crate::decide::watch::resume_until(job.client.as_ref(), &req, deadline) {
                    Ok(got) if got.state == wire::ExecutionState::Running => {
                        hold_for_adopter(job, key, dir, record)
                    }
                    _ => drop_record(),
                }
                return;
            }
            Ok(Some(Report::Running)) => return hold_for_adopter(job, key, dir, record),
            Ok(Some(Report::Denied { by, reason })) => {
                let _ = job
                    .client
                    .resume(&resume(exec_id, approval_id, token, false, by, reason));
                return drop_record();
            }
            Ok(Some(Report::Unreachable(_) | Report::Reachable)) => {}
            Ok(Some(_)) => return drop_record(),
            Err(crate::platform::CallError::Unavailable(_)) => {
                // Patient but light: nobody waits on us, so back off further than a waiter.
                let pause = unreachable + crate::platform::jitter(unreachable / 2);
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                unreachable = (unreachable * 2).min(Duration::from_secs(30));
                window = FIRST_WINDOW;
                continue;
            }
            Err(_) => return drop_record(),
        }
    }
    // Past the expiry: Platform expires it; nothing left for a retry.
    drop_record();
}

/// The execution is RUNNING on a reviewer's approval: give a retry the adoption window to claim
/// it (and run it once); then claim it ourselves and record it closed, not run. While an
/// adopter holds the claim, it (and its own guardian) records the outcome.
fn hold_for_adopter(
    job: &Job<'_>,
    key: &crate::adopt::Key,
    dir: &Path,
    record: &crate::adopt::Record,
) {
    let exec_id = record.execution_id.as_str();
    // `Some(false)`: no longer RUNNING (the adopter recorded it); `None`: cannot tell.
    let still_running = |wait: Duration| -> Option<bool> {
        let req = crate::decide::get_request(&job.cfg.into(), exec_id, wait.as_millis() as u64);
        match job.client.get_tool_execution(&req, wait) {
            Ok(got) => Some(got.state == wire::ExecutionState::Running),
            Err(_) => {
                std::thread::sleep(wait.min(Duration::from_secs(1)));
                None
            }
        }
    };
    let window_end = Instant::now() + job.adopt_window;
    // Then as long again for a claimer that put the record back (Platform was unreachable).
    let give_up = window_end + job.adopt_window;
    loop {
        let now = Instant::now();
        if now >= window_end {
            if crate::adopt::claim_exact(dir, key, exec_id) {
                return close_unadopted(job, exec_id);
            }
            if now >= give_up {
                return;
            }
        }
        let until = if now < window_end {
            window_end
        } else {
            give_up
        };
        let wait = until
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), Duration::from_secs(10));
        if still_running(wait) == Some(false) {
            return;
        }
    }
}

/// Record an approved execution nobody adopted as closed without running (so it is not left
/// RUNNING), retrying briefly while Platform is unreachable.
fn close_unadopted(job: &Job<'_>, exec_id: &str) {
    let why = format!(
        "approved, but not run: maestro-sh was killed while waiting for the approval and no \
         retry of this command in this session adopted it within {} ms ({})",
        job.adopt_window.as_millis(),
        crate::adopt::WINDOW_VAR
    );
    close_not_run(job, exec_id, "not_adopted", &why);
}

/// Record execution `exec_id` closed without running (FAILED, safe output status `not_run`,
/// `maestro_not_run_reason` = `reason`, `why` as the summary), retrying for a few seconds.
fn close_not_run(job: &Job<'_>, exec_id: &str, reason: &str, why: &str) {
    let mut metadata = job.execute.metadata.clone();
    metadata.insert("maestro_local_outcome".into(), "not_run".into());
    metadata.insert("maestro_tool_call_id".into(), job.ctx.step_id.clone());
    metadata.insert("maestro_not_run_reason".into(), reason.into());
    let req = wire::RecordToolExecutionOutputRequest {
        execution_id: exec_id.to_string(),
        output: wire::ToolOutput {
            safe_output: Some(serde_json::json!({
                "status": "not_run",
                "tool_name": "bash",
                "tool_call_id": job.ctx.step_id,
                "summary": why,
            })),
            redactions: Some(serde_json::json!([])),
            content_type: Some("application/json".into()),
            duration_ms: Some(0),
            ..Default::default()
        },
        metadata: Some(metadata),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while job.client.record_output(&req).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// ExecuteTool was sent and its answer never read: ask again and close the execution out —
/// as killed (we died), or as not run when we refused without the answer (`gave_up`).
fn closed_out_unanswered(job: &Job<'_>, gave_up: bool) {
    // Platform was slow or unreachable a moment ago: keep asking for a while (nobody waits
    // for us), with the same backoff as the approval watcher.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut backoff = crate::decide::watch::Backoff::new();
    let decision = loop {
        match job.client.execute_tool(job.execute) {
            Ok(decision) => break decision,
            Err(crate::platform::CallError::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(backoff.pause(deadline));
            }
            Err(_) => return,
        }
    };
    let execution = decision.execution;
    match execution.state {
        wire::ExecutionState::Running if gave_up => close_not_run(
            job,
            &execution.id,
            "unanswered",
            "allowed, but not run: ExecuteTool's answer did not reach maestro-sh in time, so it \
             refused the command (platform_unavailable)",
        ),
        wire::ExecutionState::Running => {
            record_kill(job, Some(&execution.id), Duration::ZERO);
        }
        wire::ExecutionState::WaitingApproval => {
            let wait = execution.raw.approval_wait.as_ref();
            let approval = wait.and_then(|w| w.approval_request_id.as_deref());
            let token = wait.and_then(|w| w.resume_token.as_deref());
            let expires = wait.and_then(|w| w.expires_at.as_deref());
            if let (Some(approval), Some(token)) = (approval, token) {
                abandon_wait(job, &execution.id, approval, token, expires);
            }
        }
        _ => {}
    }
}

/// Record "killed by SIGKILL" for the execution (announcing it first in observe mode), retrying
/// briefly, then spooling it to the outbox.
fn record_kill(job: &Job<'_>, execution_id: Option<&str>, ran: Duration) {
    let exit = Exit::Signal {
        signal: libc::SIGKILL,
        core_dumped: false,
    };
    let duration_ms = ran.as_millis() as u64;
    let execute = match execution_id {
        Some(_) => job.execute.clone(),
        None => crate::request::observed(job.execute, exit),
    };
    // Observe (no execution id yet): one ExecuteTool carrying the outcome, then the Record only
    // if Platform leaves it open (record::send_record, as Maestro sends it).
    // Generous: nobody waits for us, and a spooled record waits for the next invocation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = crate::request::record_output(
            job.ctx,
            &execute,
            execution_id.unwrap_or(""),
            exit,
            duration_ms,
        );
        match crate::record::send_record(&job.client, &execute, record, execution_id).1 {
            crate::outbox::Delivery::Retry
                if Instant::now() + Duration::from_secs(1) < deadline =>
            {
                std::thread::sleep(Duration::from_millis(500));
            }
            crate::outbox::Delivery::Retry => break,
            // Delivered, or rejected for good: nothing left to keep.
            _ => return,
        }
    }
    let Some(dir) = &job.data_dir else { return };
    let record = crate::request::record_output(job.ctx, &execute, "", exit, duration_ms);
    if let (Ok(execute), Ok(record), Ok(outbox)) = (
        serde_json::to_value(&execute),
        serde_json::to_value(&record),
        crate::outbox::Outbox::open(dir, job.client.seal_key()),
    ) {
        let _ = outbox.push(
            &crate::outbox::Entry {
                version: 1,
                execute,
                record,
                seal: String::new(),
            },
            &mut |_| {},
        );
    }
}

/// Close every fd from `first` up, except `keep`.
unsafe fn close_from(first: i32, keep: i32) {
    let ranges = [(first, keep - 1), (keep + 1, i32::MAX)];
    for (lo, hi) in ranges {
        if lo > hi {
            continue;
        }
        let r = libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32);
        if r != 0 {
            for fd in lo..hi.min(4096) {
                libc::close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_follows_the_messages() {
        let mut s = Stage::default();
        s.apply("E\texec-1\n");
        s.apply("W\texec-1\tapr-1\ttok en\t2026-01-01T00:00:00Z\n");
        assert_eq!(s.execution_id.as_deref(), Some("exec-1"));
        let (e, a, t, x) = s.waiting.as_ref().unwrap();
        assert_eq!(
            (e.as_str(), a.as_str(), t.expose(), x.as_deref()),
            ("exec-1", "apr-1", "tok en", Some("2026-01-01T00:00:00Z"))
        );
        s.apply("w\n");
        let key = crate::adopt::Key {
            organization_id: "o".into(),
            workspace_id: "w".into(),
            session_id: "s".into(),
            command_digest: "d".into(),
        };
        let record = crate::adopt::Record::new(&key, "exec-1", "apr-1", None);
        s.apply(&format!("J\t{}\n", serde_json::to_string(&record).unwrap()));
        assert_eq!(s.adopted.as_ref(), Some(&record));
        s.apply("w\n");
        assert!(s.waiting.is_none() && s.adopted.is_none());
        s.apply("R\t1234\n");
        assert!(s.running_since == Some(1234) && !s.done);
        s.apply("C\t/tmp/x\n");
        s.apply("D\n");
        assert!(s.done);
        assert_eq!(s.cleanup, vec![PathBuf::from("/tmp/x")]);
        s.apply("garbage");
        assert_eq!(clean("a\tb\nc"), "abc");
    }
}
