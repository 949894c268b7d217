//! The supervised path (observe and governed) must end exactly like the real bash: same exit
//! status, same death by signal, signals sent to maestro-sh reach the command.
//!
//! Observe mode without any Platform configuration runs the command under the supervisor and
//! records nothing, so these tests need no Platform.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::shell::{Sh, Via};

/// `case` under the supervisor (observe, no Platform) and under the real bash.
fn observed(case: Sh, dir: &std::path::Path) -> Sh {
    case.env("MAESTRO_SH_MODE", "observe")
        .env("MAESTRO_SH_DATA_DIR", dir)
}

fn no_core(cmd: &mut std::process::Command) {
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
}

#[test]
fn exit_codes_and_deaths_match_bash() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "exit 0",
        "exit 1",
        "exit 2",
        "exit 126",
        "exit 127",
        "exit 255",
        "exit 300",
        "kill -TERM $$",
        "kill -INT $$",
        "kill -KILL $$",
        "kill -SEGV $$",
        "kill -ABRT $$",
        "kill -PIPE $$",
        "kill -HUP $$",
        "kill -QUIT $$",
        "kill -USR1 $$",
        "echo out; echo err >&2; exit 5",
    ];
    for cmd in cases {
        let case = observed(Sh::c(cmd), dir.path());
        let mut want = case.command(Via::RealBash);
        no_core(&mut want);
        let want = want.stdin(Stdio::null()).output().unwrap();
        let mut got = case.command(Via::MaestroSh);
        no_core(&mut got);
        let got = got.stdin(Stdio::null()).output().unwrap();
        assert_eq!(
            got.status.into_raw(),
            want.status.into_raw(),
            "{cmd}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(got.stdout, want.stdout, "{cmd}");
        // Ours may add one warning line (nothing to record to); the command's own is unchanged.
        let stderr: String = String::from_utf8_lossy(&got.stderr)
            .lines()
            .filter(|l| !l.starts_with("maestro-sh: warning: observe mode cannot record"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(stderr, String::from_utf8_lossy(&want.stderr), "{cmd}");
    }
}

#[test]
fn signals_sent_to_the_supervisor_reach_the_command() {
    let dir = tempfile::tempdir().unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
        // `exec`: a SIGINT that reaches a non-interactive bash while it waits for a foreground
        // child is deferred until that child exits (bash does the same without maestro-sh), so
        // with `sleep 30; ...` the test raced bash's fork under load.
        let case = observed(Sh::c("echo ready; exec sleep 30"), dir.path());
        let mut cmd = case.command(Via::MaestroSh);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n");
        unsafe { libc::kill(child.id() as i32, sig) };
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "signal {sig} was not forwarded"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // bash waits for sleep, which dies by the forwarded signal; bash then dies by it too
        // (SIGINT: bash exits as if interrupted). Either way we end by that signal.
        assert_eq!(status.signal(), Some(sig), "signal {sig}: {status:?}");
    }
}

#[test]
fn environment_is_the_callers_plus_step_id_minus_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let case = observed(Sh::c("env | LC_ALL=C sort"), dir.path())
        .env("EVALOPS_TOKEN", "secret-token-value")
        .env("MAESTRO_TOOL_CALL_ID", "call-env-1")
        .env("KEEP_ME", "1");
    let out = case.run(Via::MaestroSh);
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(!env.contains("secret-token-value"), "{env}");
    assert!(
        env.contains("KEEP_ME=1") && env.contains("MAESTRO_TOOL_CALL_ID=call-env-1"),
        "{env}"
    );
    assert!(env.contains("MAESTRO_SH_GRANT=v1."), "{env}");
}

#[test]
fn generated_step_id_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let out = observed(Sh::c("echo \"$MAESTRO_TOOL_CALL_ID\""), dir.path())
        .env_remove("MAESTRO_TOOL_CALL_ID")
        .run(Via::MaestroSh);
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(id.starts_with("call_") && id.trim().len() == 29, "{id}");
}

/// The command's ignored and blocked signals are its caller's, whatever the supervisor does
/// for itself (it ignores SIGPIPE so a closed sidecar reader cannot kill it).
#[test]
fn signal_dispositions_reach_the_command_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let show = "grep -E '^Sig(Ign|Blk)' /proc/self/status";
    for ignore_pipe in [false, true] {
        let case = observed(Sh::c(show), dir.path());
        let run = |via| {
            let mut cmd = case.command(via);
            if ignore_pipe {
                crate::support::shell::ignoring_sigpipe(&mut cmd);
            }
            cmd.stdin(Stdio::null()).output().unwrap()
        };
        let want = run(Via::RealBash);
        let got = run(Via::MaestroSh);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&want.stdout),
            "SIGPIPE ignored by the caller: {ignore_pipe}"
        );
    }
}

/// A sidecar reader that went away is an error we report, not a death by SIGPIPE.
#[test]
fn closed_sidecar_pipe_does_not_kill_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&write);
    let case = observed(Sh::c("echo ran; exit 4"), dir.path()).env("MAESTRO_SH_EVENTS_FD", "3");
    let mut cmd = case.command(Via::MaestroSh);
    unsafe {
        cmd.pre_exec(move || {
            libc::dup2(raw, 3);
            Ok(())
        });
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    drop(write);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(out.stdout, b"ran\n");
}
