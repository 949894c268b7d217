//! Recording after the run without holding the caller (issue 10, "Observe never holds the
//! caller"; issue 12, "Observe records as Maestro sends them").
//!
//! Once the command has finished, maestro-sh waits at most [`record_wait`] (default
//! [`DEFAULT_RECORD_WAIT`]) for Platform to take the record, and no slow header, slow body or
//! stalled call can stretch that: the record is sent on this thread by a client bound to the
//! deadline (every attempt's timeout cut to what is left, `Client::until`) when nothing can
//! block past it, else on a thread of its own that is given up on at the deadline (a host name
//! not resolved yet: resolving has no timeout). What is not delivered by then
//! is spooled to the outbox and handed to a **detached sender**: `maestro-sh --flush-outbox`,
//! started in its own session (outside the caller's process group, so a timeout that kills the
//! group does not kill it), stdio on `/dev/null` and no other descriptor inherited (nobody
//! waits for it through a pipe). Delivery is idempotent (same idempotency key; a closed
//! execution gets no second Record), so a record sent both by the thread and the sender is
//! recorded once.
//!
//! A record Platform rejects for good (401/403/404, any 4xx other than 408/429) is never
//! spooled: one warning line, not retried.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::PlatformConfig;
use crate::env::Env;
use crate::outbox;
use crate::outbox::{Delivery, Entry, Outbox, Warning};
use crate::platform::{CallError, Client};
use crate::wire::{self, ExecutionState};

/// How long the caller may wait for the record after the command ended, in milliseconds.
pub const RECORD_WAIT_VAR: &str = "MAESTRO_SH_RECORD_WAIT_MS";
/// Default: 40 ms, so with spooling the exit comes within the 50 ms target.
pub const DEFAULT_RECORD_WAIT: Duration = Duration::from_millis(40);
/// The detached sender's whole budget.
const SENDER_BUDGET: Duration = Duration::from_secs(60);
/// Records one sender delivers at most.
const SENDER_MAX: usize = 512;
/// Records an invocation flushes inline (within its wait) after its own.
const INLINE_MAX: usize = 16;

/// The caller's wait, from `MAESTRO_SH_RECORD_WAIT_MS` (0–60000), else the default.
pub fn record_wait(env: &dyn Env) -> Duration {
    env.get(RECORD_WAIT_VAR)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(60_000)))
        .unwrap_or(DEFAULT_RECORD_WAIT)
}

/// What became of this invocation's record.
#[derive(Debug)]
pub struct Recorded {
    /// The execution id, when Platform answered in time.
    pub execution_id: Option<String>,
}

enum Msg {
    Own(Option<String>, Delivery),
    Flushed(Vec<Warning>),
}

/// Deliver `record` (observe: after the observed ExecuteTool; governed: for `execution_id`)
/// within `wait`, then flush a few spooled records in what is left of it. Prints at most one
/// warning line; `warn` hears of outbox warnings (a record dropped to make room: before it is
/// dropped). Never blocks longer than `wait` plus a spool write.
pub fn deliver(
    client: Arc<Client>,
    outbox: Option<Outbox>,
    execute: wire::ExecuteToolRequest,
    record: wire::RecordToolExecutionOutputRequest,
    execution_id: Option<String>,
    wait: Duration,
    warn: &mut dyn FnMut(Warning),
) -> Recorded {
    let deadline = Instant::now() + wait;
    let entry = spool_entry(&execute, &record);
    if let Some(bound) = client.until(deadline) {
        return deliver_here(
            &bound,
            outbox,
            &execute,
            record,
            execution_id,
            deadline,
            entry,
            warn,
        );
    }
    let (tx, rx) = mpsc::channel();
    let outbox_for_sender = outbox.clone();
    let sender = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || {
            crate::supervise::block_signals_on_this_thread();
            let (id, d) = send_record(&client, &execute, record, execution_id.as_deref());
            let ok = d == Delivery::Delivered;
            let _ = tx.send(Msg::Own(id, d));
            if !ok {
                return;
            }
            let mut warnings = vec![];
            if let Some(ob) = outbox_for_sender {
                let left = deadline.saturating_duration_since(Instant::now());
                ob.flush(
                    INLINE_MAX,
                    left,
                    |e| deliver_spooled(&client, e),
                    &mut |w| warnings.push(w),
                );
            }
            let _ = tx.send(Msg::Flushed(warnings));
        });
    let mut recorded = Recorded { execution_id: None };
    if sender.is_err() {
        // No thread: spool it; the next invocation or a sender delivers it.
        if let Some(ob) = &outbox {
            push(ob, entry.as_ref(), warn);
            spawn_sender();
        }
        return recorded;
    }
    let left = || deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left()) {
        Ok(Msg::Own(id, Delivery::Delivered)) => {
            recorded.execution_id = id;
            if let Ok(Msg::Flushed(w)) = rx.recv_timeout(left()) {
                w.into_iter().for_each(&mut *warn);
            }
            // Spooled records left over (more than one invocation flushes, or the wait ran
            // out): a sender takes them.
            if outbox.as_ref().is_some_and(|o| !o.is_empty()) {
                spawn_sender();
            }
        }
        Ok(Msg::Own(id, Delivery::Retry)) => {
            // Platform down (it answered fast, so it is not merely slow): keep the record for
            // the next invocation that reaches Platform.
            recorded.execution_id = id;
            if let Some(ob) = &outbox {
                push(ob, entry.as_ref(), warn);
            }
        }
        Ok(Msg::Own(id, Delivery::Rejected(why))) => {
            recorded.execution_id = id;
            rejected(&why);
        }
        Ok(Msg::Flushed(_)) | Err(_) => {
            // Platform is slow: spool and let a detached sender finish the job.
            if let Some(ob) = &outbox {
                push(ob, entry.as_ref(), warn);
                spawn_sender();
            }
        }
    }
    recorded
}

/// [`deliver`] on this thread, with a client that cannot outlast `deadline`
/// ([`Client::until`]): no thread to start and no wake-up to wait for (the usual case: the
/// Platform's address is known by now). What the thread's answer told apart, the clock does:
/// an unavailable Platform that answered before the deadline is down (spool; the next
/// invocation delivers), one that made us wait for it is slow (spool and a detached sender).
#[allow(clippy::too_many_arguments)]
fn deliver_here(
    client: &Client,
    outbox: Option<Outbox>,
    execute: &wire::ExecuteToolRequest,
    record: wire::RecordToolExecutionOutputRequest,
    execution_id: Option<String>,
    deadline: Instant,
    entry: Option<Entry>,
    warn: &mut dyn FnMut(Warning),
) -> Recorded {
    let (id, delivery) = send_record(client, execute, record, execution_id.as_deref());
    let recorded = Recorded { execution_id: id };
    match delivery {
        Delivery::Delivered => {
            if let Some(ob) = &outbox {
                let left = deadline.saturating_duration_since(Instant::now());
                ob.flush(INLINE_MAX, left, |e| deliver_spooled(client, e), warn);
                // Spooled records left over: a sender takes them.
                if !ob.is_empty() {
                    spawn_sender();
                }
            }
        }
        Delivery::Retry => {
            if let Some(ob) = &outbox {
                push(ob, entry.as_ref(), warn);
                if Instant::now() >= deadline {
                    spawn_sender();
                }
            }
        }
        Delivery::Rejected(why) => rejected(&why),
    }
    recorded
}

fn rejected(why: &str) {
    eprintln!(
        "maestro-sh: warning: Platform rejected the record for good and it will not be retried: {}; fix the configuration (maestro-sh --doctor)",
        crate::redact::redact_message(&crate::outcome::inert(why)).text
    );
}

fn spool_entry(
    execute: &wire::ExecuteToolRequest,
    record: &wire::RecordToolExecutionOutputRequest,
) -> Option<Entry> {
    let mut record = serde_json::to_value(record).ok()?;
    // Filled in on delivery, from the replayed ExecuteTool.
    if let Some(o) = record.as_object_mut() {
        o.insert("executionId".into(), "".into());
    }
    Some(Entry {
        version: 1,
        execute: serde_json::to_value(execute).ok()?,
        record,
        // Set by Outbox::push.
        seal: String::new(),
    })
}

fn push(ob: &Outbox, entry: Option<&Entry>, warn: &mut dyn FnMut(Warning)) {
    let Some(entry) = entry else { return };
    if let Err(e) = ob.push(entry, warn) {
        eprintln!(
            "maestro-sh: warning: Platform did not take the record and it could not be spooled: {e}"
        );
    }
}

/// Start `maestro-sh --flush-outbox` detached: new session, stdio on /dev/null, no other
/// descriptors, not waited for. Best effort: if it cannot start, the next invocation flushes.
pub fn spawn_sender() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.arg0("maestro-sh")
        .arg(FLUSH_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove(crate::events::EVENTS_FD_VAR)
        .env_remove(crate::decide::DECISIONS_FD_VAR);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            // Inherit nothing but 0–2 (an events pipe held open would keep a reader waiting).
            for fd in 3..1024 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    // The child outlives us; it is reaped by init (or the caller's subreaper).
    let _ = cmd.spawn();
}

/// The hidden option that runs the detached sender.
pub const FLUSH_ARG: &str = "--flush-outbox";

/// `maestro-sh --flush-outbox`: deliver spooled records within [`SENDER_BUDGET`]. One sender
/// at a time per outbox (a lock file); a sender that finds the lock taken leaves the work to
/// the holder, and the holder looks again after releasing it, so a record spooled meanwhile is
/// never stranded. Exits 0 in every case (nobody reads its status).
pub fn flush_command(env: &dyn Env) -> i32 {
    use std::os::fd::AsRawFd;
    let Ok(cfg) = PlatformConfig::load(env) else {
        return 0;
    };
    let client = Client::new(&cfg);
    let Some(ob) =
        crate::paths::data_dir(env).and_then(|d| Outbox::open(&d, client.seal_key()).ok())
    else {
        return 0;
    };
    let start = Instant::now();
    loop {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(ob.dir().join(".sender.lock"));
        let Ok(lock) = lock else { return 0 };
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return 0; // another sender is at it
        }
        // Flush while that makes progress (a stalled Platform stops it; the next invocation
        // or sender tries again).
        let stalled = loop {
            let before = ob.len();
            if before == 0 {
                break false;
            }
            let left = SENDER_BUDGET.saturating_sub(start.elapsed());
            if left.is_zero() {
                break true;
            }
            ob.flush(
                SENDER_MAX,
                left,
                |e| deliver_spooled(&client, e),
                &mut |_| {},
            );
            if ob.len() >= before {
                break true;
            }
        };
        drop(lock);
        if stalled || ob.is_empty() {
            return 0;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn wait_from_env() {
        assert_eq!(
            record_wait(&MapEnv::from_pairs(Vec::<(String, String)>::new())),
            DEFAULT_RECORD_WAIT
        );
        assert_eq!(
            record_wait(&MapEnv::from_pairs([(RECORD_WAIT_VAR, "250")])),
            Duration::from_millis(250)
        );
        assert_eq!(
            record_wait(&MapEnv::from_pairs([(RECORD_WAIT_VAR, "junk")])),
            DEFAULT_RECORD_WAIT
        );
    }
}
