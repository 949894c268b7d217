//! Running the real shell as a supervised child (the governed and observed paths).
//!
//! The route (see README "After an allow"): the real shell is our child and stays in the
//! caller's process group and session, so the terminal's signals and Maestro's group kill reach
//! it directly, exactly as they reach a real bash. What a supervisor must then make exact:
//!
//! - **Signals sent to our pid alone** (`kill <pid>`) reach the shell once: forwarded.
//! - **Signals sent to the whole group** already reached the shell; forwarding them again would
//!   run a `trap` twice. A *sentinel* — a tiny child of ours in the same group that blocks every
//!   signal — tells the two apart: a group signal is queued to every member within one `kill`,
//!   members that joined the group later first, so by the time our handler runs it is pending
//!   in the sentinel; a signal for our pid alone never is.
//! - **Signals the command sends to `$PPID`** (which is us) are meant for the caller: relayed to
//!   our parent.
//! - **Stops**: when the shell stops (SIGTSTP/SIGSTOP/SIGTTIN/SIGTTOU), we stop by the same
//!   signal, so the caller's `waitpid(WUNTRACED)` sees it; when the caller continues us, we
//!   continue the shell. A SIGTSTP sent to our pid alone is forwarded, so the shell stops first.
//!   A SIGSTOP sent to our pid alone cannot be caught: the sentinel watches for it (our state
//!   turns `T` while the shell's does not, looked at every [`STOP_WATCH`]) and stops the shell
//!   too; when the caller continues us, we continue the shell.
//! - **SIGKILL of our pid**: the shell gets SIGKILL too (`PR_SET_PDEATHSIG`), and its own
//!   children live on, as they do when a real bash is killed.
//! - **Death by a signal**: we die by the same signal; when the shell dumped core we do too (the
//!   caller's wait status carries the core flag) but from a private directory, so our core never
//!   overwrites the real one (`core_pattern` relative to the cwd, the default).

use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::realshell::ExecPlan;

/// Signals relayed while the shell runs (besides the real-time ones). Stop signals from the
/// terminal reach the shell directly; sent to us alone they are forwarded, and the shell's stop
/// is then mirrored (see [`mirror_stop`]).
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGALRM,
    Signal::SIGPIPE,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGURG,
    Signal::SIGPWR,
];

static CHILD: AtomicI32 = AtomicI32::new(0);
static SENTINEL: AtomicI32 = AtomicI32::new(0);
static SELF_PID: AtomicI32 = AtomicI32::new(0);
/// The sentinel holds a pending group signal and must be replaced before the next one.
static SENTINEL_DIRTY: AtomicBool = AtomicBool::new(false);
/// An fd the sentinel must not keep open (the guardian's pipe: its EOF means we died).
static SENTINEL_CLOSES: AtomicI32 = AtomicI32::new(-1);
/// The sentinel's parent (us), for it to check it has not already outlived us.
static SENTINEL_PARENT: AtomicI32 = AtomicI32::new(0);

/// How often the sentinel looks whether we were stopped by a SIGSTOP sent to our pid alone.
pub const STOP_WATCH: Duration = Duration::from_millis(20);

/// What the sentinel and we share: one anonymous shared page, mapped before its first fork.
#[repr(C)]
struct Shared {
    /// The shell's pid once it is forked (0 before).
    child: AtomicI32,
    /// The sentinel stopped the shell because we were stopped.
    stopped_child: AtomicBool,
}

static SHARED: std::sync::atomic::AtomicPtr<Shared> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// The shared page, mapped on first use; `None` if it cannot be (the stop watch is then off).
fn shared() -> Option<&'static Shared> {
    let mut p = SHARED.load(Ordering::SeqCst);
    if p.is_null() {
        // SAFETY: a fresh anonymous mapping, zero-filled (a valid `Shared`), never unmapped.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if m == libc::MAP_FAILED {
            return None;
        }
        p = m.cast();
        SHARED.store(p, Ordering::SeqCst);
    }
    // SAFETY: mapped above, page-aligned, shared with the sentinel only through atomics.
    Some(unsafe { &*p })
}

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

/// Block every signal on the calling thread; call first thing on each helper thread (the
/// classifier, the approval watcher, the record sender). A signal sent to our pid goes to a
/// thread that does not block it; while [`run`] starts the shell, the main thread blocks the
/// relayed ones (until the shell's pid is known), and a helper thread that took one then would
/// drop it. With every helper blocking everything, such a signal waits for the main thread.
pub fn block_signals_on_this_thread() {
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// Tell the sentinel (forked later) to close `fd`.
pub fn sentinel_closes(fd: i32) {
    SENTINEL_CLOSES.store(fd, Ordering::SeqCst);
}

/// Read up to `buf.len()` bytes of a small /proc file with async-signal-safe calls only.
fn read_proc(path: &[u8], buf: &mut [u8]) -> usize {
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    let mut n = 0;
    while n < buf.len() {
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    unsafe { libc::close(fd) };
    n
}

/// `/proc/<pid>/<leaf>\0` in `out`, without allocating.
fn proc_path<'a>(pid: i32, leaf: &[u8], out: &'a mut [u8; 48]) -> &'a [u8] {
    let mut digits = [0u8; 12];
    let mut i = digits.len();
    let mut v = pid.max(0) as u32;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = 0;
    for part in [b"/proc/" as &[u8], &digits[i..], b"/", leaf, b"\0"] {
        out[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    &out[..len]
}

/// Parent pid and state letter of `pid`, from `/proc/<pid>/stat`.
fn stat_of(pid: i32) -> Option<(i32, u8)> {
    let mut path = [0u8; 48];
    let mut buf = [0u8; 256];
    let n = read_proc(proc_path(pid, b"stat", &mut path), &mut buf);
    let buf = &buf[..n];
    // "pid (comm) S ppid ...": the command name may hold anything, so cut at the last ')'.
    let close = buf.iter().rposition(|&b| b == b')')?;
    let rest = buf.get(close + 2..)?;
    let state = *rest.first()?;
    let mut ppid: i32 = 0;
    for &b in rest.get(2..)? {
        if !b.is_ascii_digit() {
            break;
        }
        ppid = ppid.checked_mul(10)?.checked_add(i32::from(b - b'0'))?;
    }
    Some((ppid, state))
}

/// True when `sender` is `child` or one of its descendants (the command itself).
fn from_command(sender: i32, child: i32, me: i32) -> bool {
    let mut pid = sender;
    for _ in 0..64 {
        if pid == child {
            return true;
        }
        if pid <= 1 || pid == me {
            return false;
        }
        match stat_of(pid) {
            Some((ppid, _)) => pid = ppid,
            None => return false,
        }
    }
    false
}

/// True when `sig` is pending in the sentinel: it was sent to the whole process group.
fn sent_to_group(sig: i32) -> bool {
    let sentinel = SENTINEL.load(Ordering::SeqCst);
    if sentinel <= 0 || !(1..=64).contains(&sig) {
        return false;
    }
    let mut path = [0u8; 48];
    let mut buf = [0u8; 4096];
    let n = read_proc(proc_path(sentinel, b"status", &mut path), &mut buf);
    let text = &buf[..n];
    let bit = 1u64 << (sig - 1);
    [b"SigPnd:\t" as &[u8], b"ShdPnd:\t"].iter().any(|key| {
        let Some(at) = text.windows(key.len()).position(|w| w == *key) else {
            return false;
        };
        let mut mask = 0u64;
        for &b in &text[at + key.len()..] {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => break,
            };
            mask = (mask << 4) | u64::from(d);
        }
        mask & bit != 0
    })
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let me = SELF_PID.load(Ordering::SeqCst);
    // Running in the shell's process between its creation and its `execve` (it shares our
    // memory and, until the exec resets them, our handlers; see [`run`]): act as the default
    // disposition, which is what the shell starts with (a relayed signal is never one our
    // caller ignores: those are left ignored). Nothing shared is touched.
    let pid = unsafe { libc::getpid() };
    if pid != me {
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &default, std::ptr::null_mut());
            // Pending until this handler returns, then acted on by default.
            libc::kill(pid, sig);
        }
        return;
    }
    let (code, sender) = if info.is_null() {
        (libc::SI_USER, 0)
    } else {
        unsafe { ((*info).si_code, (*info).si_pid()) }
    };
    let child = CHILD.load(Ordering::SeqCst);
    // Sent to the group (or to every process), by a process or by the terminal: the shell has
    // its own copy already. (Checked first, so a terminal's Ctrl-C also marks the sentinel for
    // replacement and a later `kill -INT <our pid>` is not mistaken for a group signal.)
    if sent_to_group(sig) {
        SENTINEL_DIRTY.store(true, Ordering::SeqCst);
        return;
    }
    // Kernel-generated otherwise (a timer, our own broken pipe): about us alone.
    if code > 0 || child <= 0 || sender == me {
        return;
    }
    // `kill -USR1 $PPID` from the command: meant for whoever started the shell.
    if sender > 0 && from_command(sender, child, me) {
        let parent = unsafe { libc::getppid() };
        if parent > 1 {
            unsafe { libc::kill(parent, sig) };
        }
        return;
    }
    unsafe { libc::kill(child, sig) };
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

/// How a supervised run ended, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub exit: Exit,
    pub duration: Duration,
}

/// All signals we relay, real-time ones included.
fn relayed_numbers() -> Vec<i32> {
    let mut v: Vec<i32> = FORWARDED.iter().map(|&s| s as i32).collect();
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

/// Start the shell (`plan`) as our child, relay signals and stops while it runs, and wait for it.
///
/// The child starts with the signal mask and dispositions we inherited from our caller (our
/// handlers are reset by `execve`). Errors only when the child cannot be created; an exec
/// failure in the child becomes exit status 126/127, as a shell reports it.
///
/// The child is created `vfork`-style (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does): it
/// borrows our memory until its `execve`, so no page table is copied and nothing is copied on
/// write afterwards, and we are suspended until it has exec'd. Until then it runs only
/// async-signal-safe calls that allocate nothing, on a stack of its own.
pub fn run(plan: &ExecPlan) -> nix::Result<Ran> {
    SELF_PID.store(std::process::id() as i32, Ordering::SeqCst);
    let numbers = relayed_numbers();
    // Block what we relay until the child's pid is known, so nothing sent in between is lost
    // (a signal that arrived before `CHILD` was set used to be dropped).
    let mut raw_block: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigemptyset(&mut raw_block) };
    for &n in &numbers {
        unsafe { libc::sigaddset(&mut raw_block, n) };
    }
    let mut raw_old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw_block, &mut raw_old) };
    let previous = install_handlers(&numbers);
    let shared = shared();
    spawn_sentinel();
    let start = Instant::now();
    let exec = plan.raw();
    let args = ChildArgs {
        exec: &exec,
        mask: raw_old,
        parent: std::process::id() as i32,
    };
    // SAFETY: `child_main` runs on its own stack, calls only async-signal-safe functions,
    // allocates nothing, and ends in execve or a return (the exit system call); `args` outlives
    // it, since CLONE_VFORK suspends us until then.
    let arg = &args as *const ChildArgs as *mut libc::c_void;
    let pid = unsafe {
        libc::clone(
            child_main,
            CHILD_STACK.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    // A sandbox that refuses such a clone still lets us fork (a copy: the same steps apply).
    let pid = if pid < 0 && refused(nix::Error::last()) {
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(child_main(arg)) },
            pid => pid,
        }
    } else {
        pid
    };
    if pid < 0 {
        let e = nix::Error::last();
        restore(&previous);
        stop_sentinel();
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw_old, std::ptr::null_mut()) };
        return Err(e);
    }
    let child = Pid::from_raw(pid);
    CHILD.store(pid, Ordering::SeqCst);
    if let Some(sh) = shared {
        sh.child.store(pid, Ordering::SeqCst);
    }
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw_old, std::ptr::null_mut()) };
    let exit = wait_for(child);
    CHILD.store(0, Ordering::SeqCst);
    if let Some(sh) = shared {
        sh.child.store(0, Ordering::SeqCst);
    }
    restore(&previous);
    // Reaped, not only killed: once we exit, nothing of ours may be left in the caller's
    // process group (a caller that waited for us checks the group is empty: bats' Ctrl-C test).
    stop_sentinel();
    Ok(Ran {
        exit,
        duration: start.elapsed(),
    })
}

/// A stack for a process that shares our memory (`CLONE_VM`): the shell's process until its
/// `execve`, or the sentinel. Never used by two processes at once (see the users).
#[repr(C, align(64))]
struct CloneStack<const N: usize>(std::cell::UnsafeCell<[u8; N]>);

// SAFETY: only ever handed to one process at a time, which alone touches it.
unsafe impl<const N: usize> Sync for CloneStack<N> {}

impl<const N: usize> CloneStack<N> {
    const fn new() -> Self {
        CloneStack(std::cell::UnsafeCell::new([0; N]))
    }

    /// The highest address, 64-byte aligned (stacks grow down).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the array.
        unsafe { self.0.get().cast::<u8>().add(N).cast() }
    }
}

/// Did a `clone` fail because it is not allowed here (a seccomp filter, an emulated kernel),
/// rather than for lack of resources? Then `fork` is tried instead.
fn refused(e: nix::Error) -> bool {
    matches!(
        e,
        nix::Error::EPERM | nix::Error::ENOSYS | nix::Error::EINVAL
    )
}

/// The shell's process runs on it from `clone` to `execve` (we are suspended meanwhile).
static CHILD_STACK: CloneStack<{ 64 * 1024 }> = CloneStack::new();

/// What the shell's process needs before its `execve`, prepared by us.
struct ChildArgs<'a> {
    exec: &'a crate::realshell::RawExec<'a>,
    /// The signal mask to exec with (our caller's).
    mask: libc::sigset_t,
    parent: i32,
}

/// The shell's process, from `clone` to `execve`: shares our memory, so only async-signal-safe
/// calls, no allocation, and a return (the exit system call) instead of `exit`.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `run` passes a `ChildArgs` that outlives this process's use of it.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // Our relay handlers need no resetting: `execve` resets them to the default, and a signal
    // that arrives before it is acted on by default (see `on_signal`). SIGPIPE we ignore for
    // ourselves; the shell gets the caller's setting.
    restore_caller_sigpipe();
    // Our death (SIGKILL of our pid) is the shell's death, as if the caller had killed the
    // real shell; its own children live on.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if unsafe { libc::getppid() } != args.parent {
        return 128 + libc::SIGKILL;
    }
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut()) };
    ExecPlan::failure_status(args.exec.exec())
}

fn install_handlers(numbers: &[i32]) -> Vec<(i32, libc::sigaction)> {
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    // No SA_RESTART: a signal interrupts `waitpid`, so a dirty sentinel is replaced at once.
    action.sa_flags = libc::SA_SIGINFO;
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // One relay at a time.
    for &n in numbers {
        unsafe { libc::sigaddset(&mut action.sa_mask, n) };
    }
    let caller_ignores_pipe = CALLER_SIGPIPE_IGNORED.load(Ordering::SeqCst) == 1;
    numbers
        .iter()
        .filter_map(|&n| {
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            if unsafe { libc::sigaction(n, &action, &mut old) } != 0 {
                return None;
            }
            // A signal our caller ignores stays ignored: the child inherits that too. (SIGPIPE
            // is ignored by us for our own sake; what counts is the caller's setting.)
            let ignored = if n == libc::SIGPIPE {
                caller_ignores_pipe
            } else {
                old.sa_sigaction == libc::SIG_IGN
            };
            if ignored {
                unsafe { libc::sigaction(n, &old, std::ptr::null_mut()) };
                return None;
            }
            Some((n, old))
        })
        .collect()
}

fn restore(previous: &[(i32, libc::sigaction)]) {
    for (n, old) in previous {
        unsafe { libc::sigaction(*n, old, std::ptr::null_mut()) };
    }
}

/// The sentinel's stack (it shares our memory). One sentinel at a time: a replaced one is
/// reaped before the next starts.
static SENTINEL_STACK: CloneStack<{ 16 * 1024 }> = CloneStack::new();

/// Start the sentinel: same process group, every signal blocked, dies with us.
///
/// It is a process sharing our memory (`clone(CLONE_VM)`, not `fork`): it only sleeps, so it
/// needs no memory of its own, and sharing ours costs no page-table copy and no copy-on-write
/// faults. It runs raw system calls only (no libc state, no errno), on its own stack.
fn spawn_sentinel() {
    // Read by the sentinel as it starts; changed only once it is reaped (a replacement).
    SENTINEL_PARENT.store(std::process::id() as i32, Ordering::SeqCst);
    // Everything blocked across the clone: the sentinel must never run our relay handler.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    // SAFETY: `sentinel_main` makes raw system calls only and never returns but by exiting.
    let pid = unsafe {
        libc::clone(
            sentinel_main,
            SENTINEL_STACK.top(),
            libc::CLONE_VM | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    };
    let pid = if pid < 0 && refused(nix::Error::last()) {
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(sentinel_main(std::ptr::null_mut())) },
            pid => pid,
        }
    } else {
        pid
    };
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    SENTINEL.store(pid.max(0), Ordering::SeqCst);
}

/// The sentinel: dies with us, drops the guardian's pipe, then sleeps with every signal
/// blocked (inherited) until killed. Raw `syscall`s: errno is touched only on failure, and
/// none of these fail.
extern "C" fn sentinel_main(_: *mut libc::c_void) -> libc::c_int {
    let parent = libc::c_long::from(SENTINEL_PARENT.load(Ordering::SeqCst));
    let closes = SENTINEL_CLOSES.load(Ordering::SeqCst);
    unsafe {
        let pdeathsig = (
            libc::PR_SET_PDEATHSIG as libc::c_long,
            libc::SIGKILL as libc::c_long,
        );
        libc::syscall(libc::SYS_prctl, pdeathsig.0, pdeathsig.1, 0 as libc::c_long);
        if libc::syscall(libc::SYS_getppid) != parent {
            return 0;
        }
        if closes >= 0 {
            libc::syscall(libc::SYS_close, closes as libc::c_long);
        }
        let nap = libc::timespec {
            tv_sec: 0,
            tv_nsec: STOP_WATCH.as_nanos() as libc::c_long,
        };
        let shared = SHARED.load(Ordering::SeqCst);
        loop {
            // No descriptors, the (all-blocking) mask as is: sleeps until killed, looking every
            // STOP_WATCH whether we were stopped (without the shared page: never).
            // A fresh copy each time: ppoll writes the time left back into it.
            let mut left = nap;
            let timeout = if shared.is_null() {
                std::ptr::null_mut()
            } else {
                &mut left as *mut libc::timespec
            };
            libc::syscall(
                libc::SYS_ppoll,
                std::ptr::null_mut::<libc::pollfd>(),
                0 as libc::c_long,
                timeout,
                std::ptr::null::<libc::sigset_t>(),
                0 as libc::c_long,
            );
            if !shared.is_null() {
                // SAFETY: the page is never unmapped, and we die with our parent.
                stop_the_shell_if_we_stopped(&*shared, parent as i32);
            }
        }
    }
}

/// One look of the sentinel: when we (`parent`) are stopped and the shell is not, stop the
/// shell (a SIGSTOP for our pid alone, which we cannot catch) and say so on the shared page.
/// Raw system calls and no allocation or panic: the sentinel shares our memory.
fn stop_the_shell_if_we_stopped(sh: &Shared, parent: i32) {
    let child = sh.child.load(Ordering::SeqCst);
    if child <= 0 || raw_state_of(parent) != Some(b'T') {
        return;
    }
    // Stopped by its own stop (which we mirror), or gone: nothing to do.
    if matches!(raw_state_of(child), Some(b'R' | b'S' | b'D')) {
        sh.stopped_child.store(true, Ordering::SeqCst);
        unsafe {
            libc::syscall(
                libc::SYS_kill,
                libc::c_long::from(child),
                libc::c_long::from(libc::SIGSTOP),
            )
        };
    }
}

/// The state letter of `pid` from `/proc/<pid>/stat`, read with raw system calls only (no
/// libc state, no errno): safe in the sentinel, which shares our memory.
fn raw_state_of(pid: i32) -> Option<u8> {
    let mut path = [0u8; 48];
    let path = proc_path(pid, b"stat", &mut path);
    let mut buf = [0u8; 256];
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::c_long::from(libc::AT_FDCWD),
            path.as_ptr(),
            libc::c_long::from(libc::O_RDONLY | libc::O_CLOEXEC),
        )
    };
    if fd < 0 {
        return None;
    }
    let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
    unsafe { libc::syscall(libc::SYS_close, fd) };
    let buf = buf.get(..usize::try_from(n).ok()?)?;
    // "pid (comm) S ...": the command name may hold anything, so cut at the last ')'.
    let close = buf.iter().rposition(|&b| b == b')')?;
    buf.get(close + 2).copied()
}

/// Kill and reap the sentinel: mid-run, so no zombies pile up; at the end of the run, so it has
/// left the caller's process group before we exit.
fn stop_sentinel() {
    let pid = SENTINEL.swap(0, Ordering::SeqCst);
    if pid > 0 {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = waitpid(Pid::from_raw(pid), None);
    }
}

fn wait_for(child: Pid) -> Exit {
    loop {
        if SENTINEL_DIRTY.swap(false, Ordering::SeqCst) {
            stop_sentinel();
            spawn_sentinel();
        }
        match waitpid(child, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(_, code)) => return Exit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, core_dumped)) => {
                return Exit::Signal {
                    signal: sig as i32,
                    core_dumped,
                }
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                // The sentinel stopped the shell because we were stopped; we run again, so the
                // caller continued us: continue the shell (if it still is stopped).
                if sig == Signal::SIGSTOP
                    && shared().is_some_and(|sh| sh.stopped_child.swap(false, Ordering::SeqCst))
                {
                    if stat_of(child.as_raw()).is_some_and(|(_, state)| state == b'T') {
                        let _ = signal::kill(child, Signal::SIGCONT);
                    }
                    continue;
                }
                mirror_stop(child, sig)
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            // ECHILD: someone else reaped it (cannot happen unless SIGCHLD is ignored by our
            // caller, in which case the kernel reaps it); report a generic failure.
            Err(_) => return Exit::Code(126),
        }
    }
}

/// The shell stopped by `sig`: stop ourselves by the same signal, so our caller sees the stop;
/// once continued, continue the shell if it is still stopped.
fn mirror_stop(child: Pid, sig: Signal) {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let old = unsafe { signal::sigaction(sig, &default) }.ok();
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    // SIGSTOP always stops; a terminal stop signal is discarded by the kernel for an orphaned
    // process group, and then the shell could not have stopped by it either.
    let _ = signal::raise(sig);
    if let Some(old) = old {
        let _ = unsafe { signal::sigaction(sig, &old) };
    }
    if stat_of(child.as_raw()).is_some_and(|(_, state)| state == b'T') {
        let _ = signal::kill(child, Signal::SIGCONT);
    }
}

/// Raise `sig` on ourselves with its default action, unblocked: the kernel's own death (or
/// stop) by that signal, as the caller's wait status will show it.
fn raise_by_default(sig: Signal) {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let _ = unsafe { signal::sigaction(sig, &default) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = signal::raise(sig);
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
/// the caller's wait status (including the core flag) matches; it is written from a private
/// directory so it cannot overwrite the child's (see [`core_elsewhere`]).
pub fn die_by_signal(signo: i32, core_dumped: bool) -> ! {
    if let Ok(sig) = Signal::try_from(signo) {
        if !core_dumped || !core_elsewhere() {
            let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        } else if crate::harden::non_dumpable() {
            // We are non-dumpable (our memory holds secrets), so the kernel would write no
            // core and the caller would miss the core flag. A fresh image of ourselves holds
            // none and is dumpable again: it dies by the signal in our place, same pid.
            reexec_to_dump_core(signo);
        }
        raise_by_default(sig);
    }
    // Only signals whose default action is to continue or be ignored get here.
    std::process::exit(128 + signo)
}

/// argv[0] and argv[1] of the image [`die_by_signal`] execs to dump a core without secrets.
const DUMP_CORE_ARGV0: &std::ffi::CStr = c"maestro-sh-dump-core";
const DUMP_CORE_ARG: &std::ffi::CStr = c"--maestro-sh-dump-core";

/// Replace this process with a fresh image of maestro-sh that only dies by `signo` (see
/// [`dump_core_if_asked`]); returns only if the exec failed.
fn reexec_to_dump_core(signo: i32) {
    let signo = std::ffi::CString::new(signo.to_string()).unwrap_or_default();
    let argv = [
        DUMP_CORE_ARGV0.as_ptr(),
        DUMP_CORE_ARG.as_ptr(),
        signo.as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null()];
    // The pipes to the guardian or the core-directory cleaner signal our death by closing:
    // they must stay open across this exec until the new image has dumped its core.
    for fd in 3..1024 {
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    // The signal must not stay blocked or ignored across the exec.
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    let _ = all.thread_unblock();
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
}

/// When this process is the image [`die_by_signal`] exec'd (argv `maestro-sh-dump-core
/// --maestro-sh-dump-core SIGNO`), die by that signal with a core, before anything else runs:
/// the pid, cwd (a private directory) and `RLIMIT_CORE` are the dying maestro-sh's. Any other
/// argv returns at once (one comparison on the pass-through path).
pub fn dump_core_if_asked(argv: &[std::ffi::OsString]) {
    let [argv0, arg, signo] = argv else { return };
    if argv0.as_bytes() != DUMP_CORE_ARGV0.to_bytes() || arg.as_bytes() != DUMP_CORE_ARG.to_bytes()
    {
        return;
    }
    let Some(sig) = signo
        .to_str()
        .and_then(|s| s.parse::<i32>().ok())
        .and_then(|n| Signal::try_from(n).ok())
    else {
        std::process::exit(1)
    };
    raise_by_default(sig);
    std::process::exit(128 + sig as i32)
}

/// Where our own core would go must not be where the child's went. With a `core_pattern`
/// relative to the cwd (the kernel default, `core`), move to a fresh private directory; with an
/// absolute pattern naming the pid, ours has another name. Otherwise (an absolute pattern
/// without the pid, or a pipe to a crash collector, which would file a second report) dump
/// nothing: false, and the caller's wait status lacks the core flag.
fn core_elsewhere() -> bool {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim_end();
    if pattern.starts_with('|') || pattern.is_empty() {
        return false;
    }
    if pattern.starts_with('/') {
        return pattern.contains("%p") || pattern.contains("%P");
    }
    let dir = std::env::temp_dir().join(format!("maestro-sh-core.{}", std::process::id()));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok()
        && std::env::set_current_dir(&dir).is_ok()
        && {
            crate::guardian::remove_after_exit(&dir);
            true
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_built_without_allocating() {
        let mut buf = [0u8; 48];
        assert_eq!(proc_path(1234, b"stat", &mut buf), b"/proc/1234/stat\0");
        assert_eq!(proc_path(0, b"status", &mut buf), b"/proc/0/status\0");
    }

    #[test]
    fn the_sentinel_shows_signals_sent_to_it() {
        spawn_sentinel();
        let pid = SENTINEL.load(Ordering::SeqCst);
        assert!(pid > 0);
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        // The signal is queued before kill returns; blocked, it stays pending.
        assert!(sent_to_group(libc::SIGUSR1));
        assert!(!sent_to_group(libc::SIGUSR2));
        assert!(!sent_to_group(0) && !sent_to_group(65));
        stop_sentinel();
        assert!(!sent_to_group(libc::SIGUSR1));
    }

    #[test]
    fn our_own_stat_is_read() {
        let me = std::process::id() as i32;
        let (ppid, state) = stat_of(me).unwrap();
        assert_eq!(ppid, unsafe { libc::getppid() });
        assert!(state.is_ascii_uppercase(), "{state}");
        assert!(from_command(me, me, 0));
        assert!(!from_command(ppid, me, 0));
    }
}
