//! Running the real shell as a supervised child (the governed and observed paths).
//!
//! The child stays in the caller's process group, so a terminal's signals and Maestro's
//! group kill reach it directly. Signals sent to us alone by `kill(pid)` are forwarded. When the
//! child dies by a signal we die by the same signal, so the caller's wait status is the same as
//! if it had run the real shell itself.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::realshell::ExecPlan;

/// Signals forwarded to the child. TSTP/TTIN/TTOU keep their default action: a stop of the
/// whole group stops us with the child, and SIGCONT resumes both.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGALRM,
];

static CHILD: AtomicI32 = AtomicI32::new(0);

/// The caller's SIGPIPE disposition while [`shield_sigpipe`] is in force (0: default, 1: ignored).
static CALLER_SIGPIPE_IGNORED: AtomicI32 = AtomicI32::new(-1);

/// Ignore SIGPIPE in this process for the rest of its life, remembering the caller's setting so
/// [`run`] hands it back to the child unchanged.
///
/// The governed path writes to pipes it does not own (the sidecar fd, Maestro's decisions
/// plumbing, its own wake-up pipes, sockets): a reader going away must be an error we handle, not
/// a death by SIGPIPE that the caller would mistake for the command's.
pub fn shield_sigpipe() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    if let Ok(old) = unsafe { signal::sigaction(Signal::SIGPIPE, &ignore) } {
        let ignored = i32::from(old.handler() == SigHandler::SigIgn);
        let _ = CALLER_SIGPIPE_IGNORED.compare_exchange(
            -1,
            ignored,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

/// In the forked child: put SIGPIPE back the way our caller had it.
fn restore_caller_sigpipe() {
    if CALLER_SIGPIPE_IGNORED.load(Ordering::SeqCst) == 0 {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        let _ = unsafe { signal::sigaction(Signal::SIGPIPE, &default) };
    }
}

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // A signal the kernel generated for the terminal's foreground group (Ctrl-C, hangup, window
    // change) already reached the child; forward only what was sent to us alone.
    let code = if info.is_null() {
        libc::SI_USER
    } else {
        unsafe { (*info).si_code }
    };
    if code == libc::SI_KERNEL {
        return;
    }
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        unsafe { libc::kill(child, sig) };
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal { signal: i32, core_dumped: bool },
}

impl Exit {
    /// The shell-style status: the code, or 128 + signal number.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal { signal, .. } => 128 + signal,
        }
    }

    /// Signal name (`SIGTERM`) when the child died by a signal.
    pub fn signal_name(self) -> Option<&'static str> {
        match self {
            Exit::Signal { signal, .. } => Signal::try_from(signal).ok().map(Signal::as_str),
            Exit::Code(_) => None,
        }
    }
}

/// Result of a supervised run.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub exit: Exit,
    pub duration: Duration,
}

/// Fork, exec `plan` in the child, forward signals while it runs, and wait for it.
///
/// The child starts with the signal mask and dispositions we inherited from our caller (our
/// forwarding handlers are reset by `execve`). Errors only when `fork` fails; an exec failure
/// in the child becomes exit status 126/127, as a shell reports it.
pub fn run(plan: &ExecPlan) -> nix::Result<Outcome> {
    let previous = install_forwarding();
    // Hold the forwarded signals from the fork until the child's pid is known: one sent to us
    // in between (the child may print before we are scheduled again) would otherwise find no
    // child to forward to and be lost. Pending, it is delivered once the mask is restored.
    let mut held = SigSet::empty();
    for sig in FORWARDED {
        held.add(*sig);
    }
    // The caller's mask is put back exactly (a signal it blocked stays blocked in the child).
    let mut caller_mask = SigSet::empty();
    let blocked = signal::pthread_sigmask(
        signal::SigmaskHow::SIG_BLOCK,
        Some(&held),
        Some(&mut caller_mask),
    )
    .is_ok();
    let unhold = || {
        if blocked {
            let _ =
                signal::pthread_sigmask(signal::SigmaskHow::SIG_SETMASK, Some(&caller_mask), None);
        }
    };
    let start = Instant::now();
    // SAFETY: the child only calls async-signal-safe functions (sigaction, sigprocmask, execve,
    // _exit); the plan's strings were allocated before the fork.
    match unsafe { fork() } {
        Err(e) => {
            unhold();
            restore(&previous);
            Err(e)
        }
        Ok(ForkResult::Child) => {
            // Our handlers go first, then the mask: a signal held since the fork meets the
            // caller's disposition, as it would have in the real shell.
            restore(&previous);
            restore_caller_sigpipe();
            unhold();
            let err = plan.exec();
            unsafe { libc::_exit(ExecPlan::failure_status(err)) }
        }
        Ok(ForkResult::Parent { child }) => {
            CHILD.store(child.as_raw(), Ordering::SeqCst);
            unhold();
            let exit = wait_for(child);
            CHILD.store(0, Ordering::SeqCst);
            restore(&previous);
            Ok(Outcome {
                exit,
                duration: start.elapsed(),
            })
        }
    }
}

fn install_forwarding() -> Vec<(Signal, SigAction)> {
    let action = SigAction::new(
        SigHandler::SigAction(forward),
        SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    FORWARDED
        .iter()
        .filter_map(|&sig| {
            // A signal our caller ignores stays ignored: the child inherits that too.
            let old = unsafe { signal::sigaction(sig, &action) }.ok()?;
            if old.handler() == SigHandler::SigIgn {
                let _ = unsafe { signal::sigaction(sig, &old) };
                return None;
            }
            Some((sig, old))
        })
        .collect()
}

fn restore(previous: &[(Signal, SigAction)]) {
    for (sig, old) in previous {
        let _ = unsafe { signal::sigaction(*sig, old) };
    }
}

fn wait_for(child: Pid) -> Exit {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Exit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, core_dumped)) => {
                return Exit::Signal {
                    signal: sig as i32,
                    core_dumped,
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            // ECHILD: someone else reaped it (cannot happen unless SIGCHLD is ignored by our
            // caller, in which case the kernel reaps it); report a generic failure.
            Err(_) => return Exit::Code(126),
        }
    }
}

/// Leave the process the way the child left: exit with its code, or die by its signal.
pub fn exit_like(exit: Exit) -> ! {
    match exit {
        Exit::Code(code) => std::process::exit(code),
        Exit::Signal {
            signal: signo,
            core_dumped,
        } => die_by_signal(signo, core_dumped),
    }
}

/// Die by `signo` with the default action. A core is written only when the child wrote one, so
/// the caller's wait status (including the core flag) matches.
pub fn die_by_signal(signo: i32, core_dumped: bool) -> ! {
    if let Ok(sig) = Signal::try_from(signo) {
        if !core_dumped {
            let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        }
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        let _ = unsafe { signal::sigaction(sig, &default) };
        let mut set = SigSet::empty();
        set.add(sig);
        let _ = set.thread_unblock();
        let _ = signal::raise(sig);
    }
    // Only signals whose default action is to continue or be ignored get here.
    std::process::exit(128 + signo)
}
