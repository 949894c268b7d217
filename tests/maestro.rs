//! Under Maestro's own bash tool (issue 12): a harness that runs commands the way Maestro's
//! bash tool does (src/tools/bash.ts and shell-utils.ts in evalops/maestro;
//! platform-contract.md, sections 4b and 9) and builds the text the model reads, then checks
//! that maestro-sh gives bash's tool result for ordinary commands, attaches to Maestro's own
//! bridge execution instead of duplicating it, shows status lines per `MAESTRO_SH_STATUS`,
//! keeps the sidecar file whole under concurrent calls, and speaks the moving contract.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::platform::{
    flags_file, read_events, DevPlatform, Gov, ORG, REVIEWER_TOKEN, TOKEN, WORKSPACE,
};

/// Maestro's per-stream capture limit (`MAX_BUFFER`, 40 KiB).
const MAX_BUFFER: usize = 40 * 1024;
const BRIDGE_FLAG: &str = "maestro.platform_runtime.tool_execution_bridge";

/// What the model reads, and how the shell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ToolResult {
    text: String,
    /// `None` on death by a signal (Maestro prints `Exit code: null`).
    code: Option<i32>,
}

/// Maestro's bash tool: `$SHELL -c CMD`, detached (new session and process group), stdin
/// /dev/null, stdout and stderr piped, only fds 0-2 inherited, every variable whose name
/// contains TOKEN, KEY or SECRET (any case) removed, the whole group SIGKILLed on timeout.
struct BashTool {
    shell: PathBuf,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    timeout: Duration,
    /// argv[0]: Node's `spawn(shell, …)` passes the shell's path as given, and bash names
    /// itself by it in its own messages (`<argv0>: line 1: …: command not found`).
    argv0: Option<PathBuf>,
}

fn stripped_by_maestro(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    ["TOKEN", "KEY", "SECRET"].iter().any(|w| up.contains(w))
}

impl BashTool {
    fn new(shell: impl AsRef<Path>, cwd: &Path) -> BashTool {
        BashTool {
            shell: shell.as_ref().to_owned(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("HOME".into(), cwd.display().to_string()),
                ("LC_ALL".into(), "C".into()),
            ],
            cwd: cwd.to_owned(),
            timeout: Duration::from_secs(90),
            argv0: None,
        }
    }

    fn env(mut self, k: &str, v: impl AsRef<str>) -> BashTool {
        self.env.retain(|(n, _)| n != k);
        self.env.push((k.into(), v.as_ref().into()));
        self
    }

    fn run(&self, command: &str) -> ToolResult {
        let mut cmd = Command::new(&self.shell);
        cmd.arg0(self.argv0.as_ref().unwrap_or(&self.shell));
        cmd.arg("-c")
            .arg(command)
            .env_clear()
            .current_dir(&self.cwd);
        cmd.env("SHELL", &self.shell);
        for (k, v) in &self.env {
            if !stripped_by_maestro(k) {
                cmd.env(k, v);
            }
        }
        // Node (libuv) gives a `pipe` stdio slot as one end of a Unix socketpair, not a pipe:
        // seen under the real tool (`/proc/$$/fd/1 -> socket:[…]`).
        let (out_ours, out_theirs) = UnixStream::pair().expect("socketpair for stdout");
        let (err_ours, err_theirs) = UnixStream::pair().expect("socketpair for stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(out_theirs)))
            .stderr(Stdio::from(OwnedFd::from(err_theirs)));
        unsafe {
            cmd.pre_exec(|| {
                // Node's `detached: true`: a new session, so a new process group.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Node passes stdio only: nothing above fd 2 reaches the shell.
                for fd in 3..1024 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn the shell");
        // The command holds the shell's ends until dropped: they must close here, or the
        // readers never see end of file.
        drop(cmd);
        let pid = child.id() as i32;
        let read = |mut r: UnixStream| {
            std::thread::spawn(move || {
                // Node appends a chunk while the buffer is under the limit.
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let mut truncated = false;
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if buf.len() < MAX_BUFFER => buf.extend_from_slice(&chunk[..n]),
                        Ok(_) => truncated = true,
                    }
                }
                (String::from_utf8_lossy(&buf).into_owned(), truncated)
            })
        };
        let out = read(out_ours);
        let err = read(err_ours);
        // Node's `close` event: the shell has exited *and* both streams are at end of file. The
        // timeout runs until then, so a background job still holding the output (`sleep 100 &`)
        // times the call out, as under Maestro; the kill goes to the group even when its
        // leader has already exited.
        let deadline = Instant::now() + self.timeout;
        let mut timed_out = false;
        loop {
            // Once reaped, `try_wait` answers the kept status again.
            let exited = child.try_wait().expect("wait").is_some();
            if exited && out.is_finished() && err.is_finished() {
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = child.wait().expect("wait");
        let (stdout, out_cut) = out.join().unwrap();
        let (stderr, err_cut) = err.join().unwrap();
        let code = status.code();
        // The text Maestro builds (bash.ts, "close" handler).
        let mut output = stdout;
        if !stderr.is_empty() {
            if !output.is_empty() {
                output.push('\n');
            }
            output.push_str(&stderr);
        }
        let mut cut = Vec::new();
        if out_cut {
            cut.push("stdout exceeded 40KB limit and was truncated");
        }
        if err_cut {
            cut.push("stderr exceeded 40KB limit and was truncated");
        }
        if !cut.is_empty() {
            output.push_str(&format!(
                "\n\n⚠️ Output truncated: {}. Consider piping output to a file or using head/tail.",
                cut.join("; ")
            ));
        }
        if timed_out {
            // `${effectiveTimeout}s`, a JavaScript number of seconds: 90, 0.5.
            output.push_str(&format!(
                "\n\n⏱️ Command timed out after {}s",
                self.timeout.as_secs_f64()
            ));
        } else if code != Some(0) {
            output.push_str(&format!(
                "\n\nExit code: {}",
                code.map_or("null".to_string(), |c| c.to_string())
            ));
        }
        let text = output
            .trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
            .to_string();
        ToolResult {
            text: if text.is_empty() {
                "Command executed successfully (no output)".into()
            } else {
                text
            },
            code,
        }
    }
}

/// A session under Maestro: a work dir (the commands' cwd) and a state dir (data dir, sidecar
/// file, credentials file, flags) kept apart, so `ls` sees the same files under both shells.
struct Session {
    work: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Session {
    fn new() -> Session {
        Session {
            work: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn events_file(&self) -> PathBuf {
        self.state.path().join("events.jsonl")
    }

    fn events(&self) -> Vec<Value> {
        read_events(&self.events_file())
    }

    fn marker(&self) -> PathBuf {
        self.state.path().join("ran")
    }

    /// The credential as it must reach a shell under Maestro: a private file, named by a
    /// variable Maestro does not strip.
    fn credentials(&self) -> PathBuf {
        let path = self.state.path().join("credentials");
        if !path.exists() {
            std::fs::write(&path, TOKEN).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        path
    }

    /// The real bash, as the reference. It runs with maestro-sh's path as argv[0], as it
    /// would if it were installed there: what differs is the program, not its name.
    fn bash(&self) -> BashTool {
        let mut b = BashTool::new("/bin/bash", self.work.path());
        b.argv0 = Some(env!("CARGO_BIN_EXE_maestro-sh").into());
        b
    }

    /// maestro-sh as `$SHELL`, configured for `p` in `mode` ("" = flags only), the way an
    /// operator sets it up under Maestro (every *TOKEN* variable set too, and stripped).
    fn maestro_sh(&self, p: Option<&DevPlatform>, mode: &str) -> BashTool {
        let mut t = BashTool::new(env!("CARGO_BIN_EXE_maestro-sh"), self.work.path())
            .env(
                "MAESTRO_SH_DATA_DIR",
                self.state.path().join("data").display().to_string(),
            )
            .env(
                "MAESTRO_SH_EVENTS_FILE",
                self.events_file().display().to_string(),
            )
            .env("MARKER", self.marker().display().to_string());
        if !mode.is_empty() {
            t = t.env("MAESTRO_SH_MODE", mode);
        }
        if let Some(p) = p {
            t = t
                .env("TOOL_EXECUTION_SERVICE_URL", &p.url)
                .env("TOOL_EXECUTION_SERVICE_TOKEN", TOKEN)
                .env(
                    "MAESTRO_SH_CREDENTIALS_FILE",
                    self.credentials().display().to_string(),
                )
                .env("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", ORG)
                .env("TOOL_EXECUTION_SERVICE_WORKSPACE_ID", WORKSPACE)
                .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "3000");
        }
        t
    }
}

/// Ordinary commands an agent runs. No output may depend on the shell's own pid, parent or
/// `$SHELL` (those are the process branch's differential suite).
const ORDINARY: &[&str] = &[
    "echo hello",
    "printf 'a\\nb'",
    "true",
    "false",
    "exit 3",
    "echo out; echo err >&2",
    "echo only-err >&2; exit 2",
    "cat /nonexistent/file",
    "ls -a",
    "pwd",
    "printf '%s\\n' one two three | sort -r | head -2",
    "seq 1 3000 | tail -3",
    "read line; echo \"[$line]\"",
    "test -t 0 || echo 'stdin is not a terminal'",
    "for i in 1 2 3; do echo \"$i\"; done; echo done >&2",
    "x=$(echo sub); echo \"$x\"",
    "sh -c 'kill -TERM $$'",
    "kill -KILL $$",
    "mkdir -p d && touch d/f && ls d && rm d/f && rmdir d",
    "printf '\\xff\\xfe bytes'",
    "nonexistent-command-xyz",
    "echo 'unterminated",
    // Found worth pinning under Maestro's real bash tool (scripts/maestro-bash-tool):
    "kill -SEGV $$",
    "cat; echo \"cat rc=$?\"",
    "wc -c",
    "trap 'echo got-TERM' TERM; kill -TERM 0; echo after-group",
    "trap 'echo got-HUP' HUP; kill -HUP $$; echo after-self",
    "sleep 5 >/dev/null 2>&1 & echo bg-started",
    "set -m; sleep 0.1 & wait; echo rc=$?",
    "exit 300",
    "echo -n",
    "head -c 30000 /dev/zero | tr '\\0' a",
    "test -S /dev/stdout && test -S /dev/stderr && echo both-sockets",
];

#[test]
fn tool_results_equal_bash_for_ordinary_commands() {
    let p = DevPlatform::start();
    let s = Session::new();
    let bash = s.bash();
    for mode in ["", "observe", "governed"] {
        let sh = s.maestro_sh(Some(&p), mode);
        for cmd in ORDINARY {
            let want = bash.run(cmd);
            let got = sh.run(cmd);
            assert_eq!(got, want, "mode {mode:?}, command {cmd:?}");
        }
    }
    // Observe and governed each recorded every command once; pass-through sent nothing.
    let per_mode = p.executions().iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(
            e["metadata"]["maestro_bridge_mode"]
                .as_str()
                .unwrap()
                .to_string(),
        )
        .or_insert(0) += 1;
        m
    });
    // The governed run of the read-only commands is governed too (MAESTRO_SH_MODE=governed).
    assert_eq!(
        per_mode.get("observe"),
        Some(&ORDINARY.len()),
        "{per_mode:?}"
    );
    assert_eq!(
        per_mode.get("governed"),
        Some(&ORDINARY.len()),
        "{per_mode:?}"
    );
}

#[test]
fn long_output_is_cut_the_same_way() {
    // Over 40 KiB on each stream: Maestro keeps what arrived while under the limit (chunk
    // boundaries vary from run to run), then says so. The kept text is a prefix of the output.
    let p = DevPlatform::start();
    let s = Session::new();
    let cmd = "seq 1 30000; seq 1 30000 >&2";
    let full: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    for (name, tool) in [
        ("bash", s.bash()),
        ("maestro-sh", s.maestro_sh(Some(&p), "governed")),
    ] {
        let r = tool.run(cmd);
        let note = "\n\n⚠️ Output truncated: stdout exceeded 40KB limit and was truncated; stderr exceeded 40KB limit and was truncated. Consider piping output to a file or using head/tail.";
        let kept = r
            .text
            .strip_suffix(note)
            .unwrap_or_else(|| panic!("{name}: no note"));
        // Stdout may end mid-line; Maestro adds one newline before stderr's "1\n2\n…".
        let at = MAX_BUFFER - 1 + kept[MAX_BUFFER - 1..].find("\n1\n2\n3\n4\n5\n").unwrap();
        let (out, err) = (&kept[..at], &kept[at + 1..]);
        assert!(full.starts_with(out) && out.len() >= MAX_BUFFER, "{name}");
        assert!(
            full.starts_with(err) && err.len() >= MAX_BUFFER - 8,
            "{name}"
        );
    }
}

#[test]
fn the_harness_behaves_like_maestro() {
    // Secret-named variables never reach the shell, fds above 2 are closed, stdin is
    // /dev/null, the shell leads its own session, and a timeout kills the whole group.
    let s = Session::new();
    let b = s
        .bash()
        .env("MY_API_KEY", "k")
        .env("github_token", "t")
        .env("CLIENT_SECRET_X", "s")
        .env("PLAIN", "p");
    let r = b.run("env | cut -d= -f1 | grep -iE 'key|token|secret|plain' | sort; ls /proc/self/fd | sort -n | head -5 | tr '\\n' ' '; echo; readlink /proc/self/fd/0; ps -o sid= -p $$ | tr -d ' '; echo $$");
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[0], "PLAIN", "{}", r.text);
    assert_eq!(
        lines[1].trim(),
        "0 1 2 3",
        "only fds 0-2 (3 is ls's own): {}",
        r.text
    );
    assert_eq!(lines[2], "/dev/null");
    assert_eq!(
        lines[3], lines[4],
        "the shell is its session's leader: {}",
        r.text
    );
    // stdout and stderr are sockets, as libuv makes them.
    assert_eq!(
        b.run("test -S /dev/stdout && test -S /dev/stderr && echo sockets")
            .text,
        "sockets"
    );
    let mut quick = s.bash();
    quick.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let r = quick.run("sleep 30 & sleep 30; echo never");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, None);
    assert_eq!(r.text, "⏱️ Command timed out after 0.5s");
}

#[test]
fn a_call_that_ends_only_by_the_timeout_reads_the_same() {
    // Maestro waits for `close` (exit and end of file on both streams): a background job that
    // keeps the output open, or a shell that stops itself, ends only by the group SIGKILL.
    let p = DevPlatform::start();
    let s = Session::new();
    // Long enough for a governed run to reach `echo` on a loaded machine.
    let quick = |mut t: BashTool| {
        t.timeout = Duration::from_millis(4500);
        t
    };
    for (cmd, want) in [
        (
            "sleep 4321 & echo started",
            "started\n\n\n⏱️ Command timed out after 4.5s",
        ),
        (
            "kill -STOP $$; echo resumed",
            "⏱️ Command timed out after 4.5s",
        ),
    ] {
        // The three shells side by side: each call lasts the whole timeout.
        let texts: Vec<(String, String)> = std::thread::scope(|scope| {
            let runs: Vec<_> = [
                ("bash", s.bash()),
                ("observe", s.maestro_sh(Some(&p), "observe")),
                ("governed", s.maestro_sh(Some(&p), "governed")),
            ]
            .into_iter()
            .map(|(name, t)| {
                let t = quick(t);
                scope.spawn(move || (name.to_string(), t.run(cmd).text))
            })
            .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (name, text) in texts {
            assert_eq!(text, want, "{name}: {cmd}");
        }
    }
    // The group kill reached the background job under every shell.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Command::new("pgrep")
        .args(["-f", "^sleep 4321$"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            Instant::now() < deadline,
            "a `sleep 4321` outlived the kill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Platform's view: the governed shell itself exited 0 before the kill (the job held the
    // output, not the shell), so that call is SUCCEEDED; the stopped shell was killed while
    // running, which the guardian records.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let governed: Vec<(String, String)> = p
            .executions()
            .iter()
            .filter(|e| e["metadata"]["maestro_bridge_mode"] == "governed")
            .map(|e| {
                (
                    e["arguments"]["command"].as_str().unwrap_or("").to_string(),
                    e["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let state = |c: &str| {
            governed
                .iter()
                .find(|(x, _)| x == c)
                .map(|(_, s)| s.clone())
        };
        if state("kill -STOP $$; echo resumed").as_deref() == Some("TOOL_EXECUTION_STATE_FAILED") {
            assert_eq!(
                state("sleep 4321 & echo started").as_deref(),
                Some("TOOL_EXECUTION_STATE_SUCCEEDED"),
                "{governed:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{governed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_approval_wait_killed_by_the_timeout_reads_as_a_timeout_and_the_retry_as_bash() {
    // Under the real tool with the default MAESTRO_SH_STATUS: the killed wait prints nothing of
    // ours (the model reads only Maestro's timeout line); the request stays open, and the
    // retry of the same command in the same session adopts it and reads exactly as bash.
    let p = DevPlatform::start();
    let s = Session::new();
    let command = "rm -rf ./build && touch \"$MARKER\" && echo removed";
    let sh = |timeout: Duration| {
        let mut t = s
            .maestro_sh(Some(&p), "governed")
            .env("MAESTRO_SESSION_ID", "sess-maestro-timeout");
        t.timeout = timeout;
        t
    };
    let first = sh(Duration::from_secs(10)).run(command);
    assert_eq!(first.text, "⏱️ Command timed out after 10s");
    assert!(!s.marker().exists());
    approve_what_the_killed_wait_left(&s, &p);
    let retry = sh(Duration::from_secs(90)).run(command);
    let want = s
        .bash()
        .env(
            "MARKER",
            s.state.path().join("bash-ran").display().to_string(),
        )
        .run(command);
    assert_eq!(retry, want);
    assert!(s.marker().exists(), "ran once, after the approval");
    assert_eq!(want.text, "removed");
    assert_eq!(p.requests_for("ExecuteTool").len(), 1, "one approval");
    assert_eq!(p.executions().len(), 1);
    assert!(p.pending().is_empty());
}

/// Known difference, kept as a reproduction for the process model (src/supervise.rs): under
/// observe and governed the shell is maestro-sh's child, so `$$` leads neither the process
/// group nor the session Maestro made, and `kill -- -$$` (a script killing its own group) fails
/// with "No such process"; the background job then keeps the output open and the call ends
/// only by Maestro's timeout. Run with `--ignored` to see it.
#[test]
#[ignore = "known difference: $$ is not the process-group leader under supervision"]
fn known_difference_kill_own_group_by_dollar_dollar() {
    let p = DevPlatform::start();
    let s = Session::new();
    let cmd = "sleep 30 & kill -- -$$; echo after";
    let mut bash = s.bash();
    bash.timeout = Duration::from_secs(5);
    let want = bash.run(cmd);
    assert_eq!(want.text, "Exit code: null");
    let mut sh = s.maestro_sh(Some(&p), "governed");
    sh.timeout = Duration::from_secs(5);
    assert_eq!(sh.run(cmd), want);
}

/// When ExecuteTool's answer does not arrive within the per-attempt timeout, maestro-sh refuses
/// (platform_unavailable, not run); the execution Platform made for the late request is then
/// closed out by the guardian (asked again with the same idempotency key, recorded not run),
/// so nothing stays RUNNING.
#[test]
fn a_late_execute_tool_answer_leaves_nothing_open() {
    let p = DevPlatform::start();
    let s = Session::new();
    p.set_faults(json!([{"method": "ExecuteTool", "kind": "delay", "delayMs": 3000}]));
    let r = s
        .maestro_sh(Some(&p), "governed")
        .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "500")
        .env("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1")
        .run("touch \"$MARKER\"");
    assert!(
        r.text.starts_with("maestro-sh: platform_unavailable: "),
        "{}",
        r.text
    );
    assert!(!s.marker().exists());
    p.set_faults(json!([]));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let open: Vec<Value> = p
            .executions()
            .into_iter()
            .filter(|e| {
                e["state"] == "TOOL_EXECUTION_STATE_RUNNING"
                    || e["state"] == "TOOL_EXECUTION_STATE_WAITING_APPROVAL"
            })
            .collect();
        if open.is_empty() && !p.executions().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left open: {open:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Closed as what it was: allowed, never run.
    let executions = p.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(
        executions[0]["output"]["safeOutput"]["status"], "not_run",
        "{executions:?}"
    );
}

/// With the bridge flag on (the production setup), the attach lookup (ListToolExecutions) runs
/// before ExecuteTool. It used to leave a pooled keep-alive connection in the Platform client
/// that the guardian, a fork that closes every fd but its pipe, then reused: a debug build
/// aborted right after writing the adoption record, so the reviewer's approval was never
/// resumed and the retry waited until killed too (Platform: WAITING_APPROVAL under an APPROVED
/// request). Seen only under the real tool's setup; `MAESTRO_SH_MODE=governed` makes no call
/// before the guardian starts.
#[test]
fn bridge_flag_guardian_sees_a_killed_wait_through() {
    let p = DevPlatform::start();
    let s = Session::new();
    let command = "rm -rf ./build && touch \"$MARKER\" && echo removed";
    let mut first = bridge_session(&s, &p)
        .env("MAESTRO_SESSION_ID", "sess-bridge-guardian")
        .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "600000");
    first.timeout = Duration::from_secs(10);
    assert_eq!(first.run(command).text, "⏱️ Command timed out after 10s");
    approve_what_the_killed_wait_left(&s, &p);
    // The first run's guardian (the only holder of the resume token) resumes it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.executions()[0]["state"] != "TOOL_EXECUTION_STATE_RUNNING" {
        assert!(
            Instant::now() < deadline,
            "approved, never resumed: {:?}",
            p.executions()[0]["state"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The retry adopts it and runs once.
    let retry = bridge_session(&s, &p)
        .env("MAESTRO_SESSION_ID", "sess-bridge-guardian")
        .run(command);
    assert_eq!(retry.text, "removed");
    assert!(s.marker().exists());
    assert_eq!(p.requests_for("ExecuteTool").len(), 1);
}

/// The same setup, killed while the command runs: the guardian records the kill, so nothing
/// is left RUNNING (it was, before the lookup got a client of its own).
#[test]
fn bridge_flag_guardian_records_a_kill_while_running() {
    let p = DevPlatform::start();
    let s = Session::new();
    let command = "touch \"$MARKER\"; sleep 30";
    let mut sh = bridge_session(&s, &p);
    sh.timeout = Duration::from_secs(8);
    assert_eq!(sh.run(command).text, "⏱️ Command timed out after 8s");
    assert!(s.marker().exists(), "it ran before the kill");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = &p.executions()[0];
        if e["state"] == "TOOL_EXECUTION_STATE_FAILED" {
            assert_eq!(
                e["output"]["safeOutput"]["summary"], "killed by SIGKILL",
                "{e}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not recorded: {e}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Maestro's bridge, in process, governs a Bash call before spawning the shell: ExecuteTool
/// with its own tool call id and metadata (Maestro's keys only, no `maestro_sh_*`).
fn bridge_execute(p: &DevPlatform, tool_call_id: &str, command: &str, risk: &str) -> Value {
    let (status, v) = p.call(
        "/toolexecution.v1.ToolExecutionService/ExecuteTool",
        json!({
            "linkage": {"workspaceId": WORKSPACE, "organizationId": ORG, "agentId": "maestro",
                        "stepId": tool_call_id, "surface": "maestro",
                        "correlationId": format!("session:{tool_call_id}")},
            "tool": {"namespace": "maestro", "name": "bash", "capability": "maestro.tool.bash",
                     "operation": command, "idempotent": false, "mutatesResource": true},
            "arguments": {"command": command},
            "riskLevel": risk,
            "retryPolicy": {"maxAttempts": 1, "initialDelayMs": 0, "maxDelayMs": 0,
                            "allowNonIdempotentRetry": false},
            "idempotencyKey": format!("maestro:{tool_call_id}"),
            "metadata": {
                "maestro_bridge_mode": "governed",
                "maestro_tool_call_id": tool_call_id,
                "maestro_agent_run_step_id": tool_call_id,
                "maestro_correlation_id": format!("session:{tool_call_id}"),
                "maestro_display_name": "Bash",
                "maestro_redacted_arguments": "false",
                "maestro_tool_family": "bash",
                "maestro_local_execution_authoritative": "true",
            },
        }),
    );
    assert_eq!(status, 200, "{v}");
    v["execution"].clone()
}

/// Maestro's approval UI said yes: the bridge resumes with the resume token.
fn bridge_resume(p: &DevPlatform, execution: &Value) {
    // A human approves first (the reviewer credential); only then does the agent's resume run it.
    let (status, v) = p.call_as(
        REVIEWER_TOKEN,
        "/approvals.v1.ApprovalService/ResolveApproval",
        json!({"approvalRequestId": execution["approvalWait"]["approvalRequestId"],
               "decision": "DECISION_TYPE_APPROVED", "decidedBy": "user", "reason": "ok"}),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = p.call(
        "/toolexecution.v1.ToolExecutionService/ResumeToolExecution",
        json!({
            "executionId": execution["id"],
            "approvalRequestId": execution["approvalWait"]["approvalRequestId"],
            "resumeToken": execution["approvalWait"]["resumeToken"],
            "approved": true,
            "decidedBy": "user",
        }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["execution"]["state"], "TOOL_EXECUTION_STATE_RUNNING");
}

fn bridge_session(s: &Session, p: &DevPlatform) -> BashTool {
    let flags = flags_file(s.state.path(), &[BRIDGE_FLAG]);
    s.maestro_sh(Some(p), "")
        .env("EVALOPS_FEATURE_FLAGS_PATH", flags.display().to_string())
        .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "1500")
}

#[test]
fn double_governance_attaches_one_execution_one_approval() {
    let p = DevPlatform::start();
    let s = Session::new();
    // Maestro classifies this CRITICAL too: Platform holds it for a human.
    let command = "rm -rf ./build && touch \"$MARKER\" && echo removed";
    let exec = bridge_execute(&p, "toolu_attach_1", command, "RISK_LEVEL_CRITICAL");
    assert_eq!(exec["state"], "TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    bridge_resume(&p, &exec);

    let r = bridge_session(&s, &p).run(command);
    assert_eq!(
        r,
        ToolResult {
            text: "removed".into(),
            code: Some(0)
        }
    );
    assert!(s.marker().exists());
    // One execution, one approval, nothing sent by maestro-sh but one List and one Get.
    assert_eq!(lookups(&p), 1);
    assert_eq!(p.requests_for("GetToolExecution").len(), 1);
    assert_eq!(p.executions().len(), 1);
    assert_eq!(p.requests_for("ExecuteTool").len(), 1);
    assert_eq!(p.requests_for("RecordToolExecutionOutput").len(), 0);
    assert!(p.pending().is_empty());
    let events = s.events();
    let done = events
        .iter()
        .rev()
        .find(|e| e["type"] == "maestro.events.tool_call.completed")
        .unwrap();
    let d = &done["data"];
    assert_eq!(d["tool_execution_id"], exec["id"]);
    assert_eq!(d["tool_call_id"], "toolu_attach_1");
    assert_eq!(d["correlation"]["agent_run_step_id"], "toolu_attach_1");
    assert_eq!(d["attached_to"], "maestro_bridge");
    assert_eq!(d["governed_outcome"], "allowed");
    assert_eq!(events[0]["data"]["tool_call_id"], "toolu_attach_1");

    // Recording stays with the bridge: its own record goes through.
    let (status, v) = p.call(
        "/toolexecution.v1.ToolExecutionService/RecordToolExecutionOutput",
        json!({"executionId": exec["id"], "output": {"safeOutput": {"status": "succeeded",
               "tool_name": "bash", "tool_call_id": "toolu_attach_1", "summary": "removed"}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["execution"]["state"], "TOOL_EXECUTION_STATE_SUCCEEDED");

    // A second call of the same command: the first execution is finished, so nothing to
    // adopt; maestro-sh governs it itself (and Platform holds it).
    let r = bridge_session(&s, &p).run(command);
    assert!(
        r.text.starts_with("maestro-sh: approval_timeout: "),
        "{}",
        r.text
    );
    assert_eq!(p.executions().len(), 2);
}

#[test]
fn two_calls_of_one_command_adopt_one_execution_each() {
    let p = DevPlatform::start();
    let s = Session::new();
    let command = "touch \"$MARKER\" && echo twin";
    let ids: HashSet<String> = ["toolu_twin_1", "toolu_twin_2"]
        .iter()
        .map(|id| {
            bridge_execute(&p, id, command, "RISK_LEVEL_HIGH")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let results: Vec<ToolResult> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let sh = bridge_session(&s, &p);
                scope.spawn(move || sh.run(command))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| r.text == "twin"), "{results:?}");
    assert_eq!(p.requests_for("ExecuteTool").len(), 2, "only the bridge's");
    let adopted: HashSet<String> = s
        .events()
        .iter()
        .filter(|e| e["type"] == "maestro.events.tool_call.completed")
        .map(|e| e["data"]["tool_execution_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(adopted, ids);
}

#[test]
fn nothing_is_adopted_that_platform_did_not_allow_for_this_command() {
    let p = DevPlatform::start();
    // (what the bridge opened, what the shell runs, the bridge's risk, resumed?)
    let cases = [
        // Still waiting for a human: not allowed yet.
        (
            "rm -rf ./w && touch \"$MARKER\"",
            "rm -rf ./w && touch \"$MARKER\"",
            "RISK_LEVEL_CRITICAL",
            false,
        ),
        // Allowed, but for another command.
        (
            "rm -rf ./x && echo other",
            "rm -rf ./y && touch \"$MARKER\"",
            "RISK_LEVEL_CRITICAL",
            true,
        ),
        // Allowed for this command at a lower risk than ours: Platform's allow was for HIGH.
        (
            "rm -rf ./z && touch \"$MARKER\"",
            "rm -rf ./z && touch \"$MARKER\"",
            "RISK_LEVEL_HIGH",
            false,
        ),
    ];
    for (i, (opened, runs, risk, resume)) in cases.iter().enumerate() {
        let s = Session::new();
        let before = p.executions().len();
        let exec = bridge_execute(&p, &format!("toolu_noattach_{i}"), opened, risk);
        if *resume {
            bridge_resume(&p, &exec);
        }
        let r = bridge_session(&s, &p).run(runs);
        assert!(!s.marker().exists(), "case {i} ran: {}", r.text);
        assert_eq!(r.code, Some(126), "case {i}: {}", r.text);
        assert!(
            r.text.starts_with("maestro-sh: approval_timeout: "),
            "case {i}: {}",
            r.text
        );
        assert!(
            r.text.ends_with("\n\nExit code: 126"),
            "case {i}: {}",
            r.text
        );
        // maestro-sh opened its own execution.
        assert_eq!(p.executions().len(), before + 2, "case {i}");
    }
    // Off: never looks.
    let s = Session::new();
    let before = lookups(&p);
    let r = bridge_session(&s, &p)
        .env("MAESTRO_SH_ATTACH", "off")
        .run("touch \"$MARKER\" && echo fine");
    assert_eq!(r.text, "fine");
    assert_eq!(lookups(&p), before);
}

#[test]
fn attaching_costs_nothing_without_the_bridge_flag_and_one_list_with_it() {
    let p = DevPlatform::start();
    let s = Session::new();
    // Governed by MAESTRO_SH_MODE only: Maestro's bridge is off, no lookup.
    let r = s.maestro_sh(Some(&p), "governed").run("touch \"$MARKER\"");
    assert_eq!(r.code, Some(0), "{}", r.text);
    assert_eq!(lookups(&p), 0);
    // Bridge flag on but nothing to adopt: one List, then governed as before.
    let r = bridge_session(&s, &p).run("touch \"$MARKER\" && echo ok");
    assert_eq!(r.text, "ok");
    assert_eq!(lookups(&p), 1);
    assert_eq!(p.executions().len(), 2);
    // Read-only commands (observed): no lookup.
    let r = bridge_session(&s, &p).run("ls");
    assert_eq!(r.code, Some(0), "{}", r.text);
    assert_eq!(lookups(&p), 1);
    // A caller that exports its tool call id: only the bridge's execution of that call is
    // adopted (and maestro-sh sends no ExecuteTool and no Record of its own).
    let command = "touch \"$MARKER\" && echo given";
    bridge_execute(&p, "toolu_given_other", command, "RISK_LEVEL_HIGH");
    let exec = bridge_execute(&p, "toolu_given_1", command, "RISK_LEVEL_HIGH");
    assert_eq!(exec["state"], "TOOL_EXECUTION_STATE_RUNNING");
    let (executes, records) = (
        p.requests_for("ExecuteTool").len(),
        p.requests_for("RecordToolExecutionOutput").len(),
    );
    let s = Session::new();
    let r = bridge_session(&s, &p)
        .env("MAESTRO_TOOL_CALL_ID", "toolu_given_1")
        .run(command);
    assert_eq!(r.text, "given");
    assert_eq!(lookups(&p), 2);
    assert_eq!(p.requests_for("ExecuteTool").len(), executes);
    assert_eq!(p.requests_for("RecordToolExecutionOutput").len(), records);
    let done = s.events().pop().unwrap();
    assert_eq!(done["data"]["tool_execution_id"], exec["id"]);
    assert_eq!(done["data"]["tool_call_id"], "toolu_given_1");
}

/// maestro-sh's lookups for a bridge execution (the test's own listings are not filtered on
/// RUNNING).
fn lookups(p: &DevPlatform) -> usize {
    p.requests_for("ListToolExecutions")
        .iter()
        .filter(|r| r["body"]["state"] == "TOOL_EXECUTION_STATE_RUNNING")
        .count()
}

#[test]
fn bridge_setting_leaves_observe_records_to_maestro() {
    let p = DevPlatform::start();
    let s = Session::new();
    let sh = bridge_session(&s, &p).env("MAESTRO_SH_ATTACH", "bridge");
    // Read-only under the bridge flag: observed, and the record is the bridge's to make.
    assert_eq!(sh.run("ls -a"), s.bash().run("ls -a"));
    assert_eq!(p.requests_for("ExecuteTool").len(), 0);
    assert_eq!(p.requests_for("RecordToolExecutionOutput").len(), 0);
    let done = s.events().pop().unwrap();
    assert_eq!(done["data"]["governed_outcome"], "observed");
    assert_eq!(done["data"]["attached_to"], "maestro_bridge");
    assert!(done["data"].get("tool_execution_id").is_none(), "{done}");
    // Without a Platform config of its own, nothing to warn about: the record is not ours.
    let alone = s
        .maestro_sh(None, "observe")
        .env("MAESTRO_SH_ATTACH", "bridge");
    assert_eq!(alone.run("echo hi"), s.bash().run("echo hi"));
    let r = s.maestro_sh(None, "observe").run("echo hi");
    assert!(
        r.text
            .starts_with("hi\n\nmaestro-sh: warning: observe mode cannot record: "),
        "{}",
        r.text
    );
    // Governed: still governed (nothing to adopt here), one execution of our own.
    let r = sh.run("touch \"$MARKER\" && echo governed");
    assert_eq!(r.text, "governed");
    assert_eq!(lookups(&p), 1);
    assert_eq!(p.requests_for("ExecuteTool").len(), 1);
}

/// Resolve an approval as a person would (Platform's ApprovalService).
fn approve_when_pending(p: &DevPlatform) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(r) = p.pending().first() {
            break r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no pending approval in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, v) = p.call_as(
        REVIEWER_TOKEN,
        "/approvals.v1.ApprovalService/ResolveApproval",
        json!({"approvalRequestId": id, "decision": "DECISION_TYPE_APPROVED",
               "decidedBy": "alice", "reason": "ok"}),
    );
    assert_eq!(status, 200, "{v}");
}

#[test]
fn status_lines_per_setting() {
    let p = DevPlatform::start();
    let command = "rm -rf ./gone && echo approved-output";
    // Approved after a wait: by default the model reads exactly bash's output; `always`
    // adds the wait's start and end lines after it.
    for (setting, extra) in [
        ("", false),
        ("auto", false),
        ("refusals", false),
        ("never", false),
        ("always", true),
    ] {
        let s = Session::new();
        let sh = s
            .maestro_sh(Some(&p), "governed")
            .env("MAESTRO_SH_STATUS", setting);
        let r = std::thread::scope(|scope| {
            let run = scope.spawn(|| sh.run(command));
            approve_when_pending(&p);
            run.join().unwrap()
        });
        if extra {
            let lines: Vec<&str> = r.text.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines[0], "approved-output", "{}", r.text);
            assert!(
                lines[1].starts_with("maestro-sh: waiting for approval: "),
                "{}",
                r.text
            );
            assert!(
                lines[2].starts_with("maestro-sh: approval granted by alice after "),
                "{}",
                r.text
            );
            assert_eq!(lines.len(), 3, "{}", r.text);
        } else {
            assert_eq!(
                r,
                ToolResult {
                    text: "approved-output".into(),
                    code: Some(0)
                },
                "{setting:?}"
            );
        }
    }
    // Refused: the one line, unless `never`.
    for (setting, shown) in [
        ("", true),
        ("auto", true),
        ("refusals", true),
        ("always", true),
        ("never", false),
    ] {
        let s = Session::new();
        let r = s
            .maestro_sh(Some(&p), "governed")
            .env("MAESTRO_SH_STATUS", setting)
            .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "300")
            .run("rm -rf ./kept && touch \"$MARKER\"");
        assert!(!s.marker().exists());
        assert_eq!(r.code, Some(126));
        if shown {
            let line = r
                .text
                .lines()
                .find(|l| l.starts_with("maestro-sh: approval_timeout: "))
                .unwrap_or_else(|| panic!("{setting:?}: {}", r.text));
            assert!(
                line.contains("tell the user it needs their approval"),
                "{line}"
            );
            assert!(line.contains("tool_execution_id=te_"), "{line}");
            assert_eq!(
                r.text
                    .lines()
                    .filter(|l| l.starts_with("maestro-sh:"))
                    .count(),
                if setting == "always" { 3 } else { 1 },
                "{setting:?}: {}",
                r.text
            );
        } else {
            assert_eq!(r.text, "Exit code: 126");
        }
        // Whatever the setting, the sidecar says what happened.
        let done = s
            .events()
            .into_iter()
            .rev()
            .find(|e| e["type"] == "maestro.events.tool_call.completed")
            .unwrap();
        assert_eq!(done["data"]["governed_outcome"], "approval_timeout");
    }
}

#[test]
fn sidecar_file_under_concurrent_calls_has_whole_lines_with_their_own_ids() {
    let p = DevPlatform::start();
    let s = Session::new();
    // Lines longer than PIPE_BUF (4096): every event carries the correlation's principal.
    let filler = "x".repeat(6000);
    const CALLS: usize = 16;
    let results: Vec<ToolResult> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..CALLS)
            .map(|i| {
                let sh = s
                    .maestro_sh(Some(&p), if i % 2 == 0 { "governed" } else { "observe" })
                    .env("MAESTRO_PRINCIPAL_ID", format!("p{i}-{filler}"))
                    // Every call's id must be on its line: give the record time under this load
                    // (by default an observe record late by 40 ms is left to a detached sender).
                    .env("MAESTRO_SH_RECORD_WAIT_MS", "10000");
                let cmd = format!("echo call-{i}");
                scope.spawn(move || sh.run(&cmd))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.text, format!("call-{i}"));
    }
    let text = std::fs::read_to_string(s.events_file()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("torn line ({e}): {}", &l[..l.len().min(200)]))
        })
        .collect();
    assert!(text.lines().all(|l| l.len() > 6000));
    let mut steps = HashSet::new();
    let mut execs = HashSet::new();
    for e in events
        .iter()
        .filter(|e| e["type"] == "maestro.events.tool_call.completed")
    {
        let d = &e["data"];
        assert!(
            steps.insert(d["tool_call_id"].as_str().unwrap().to_string()),
            "{d}"
        );
        assert!(
            execs.insert(d["tool_execution_id"].as_str().unwrap().to_string()),
            "{d}"
        );
        assert_eq!(d["correlation"]["agent_run_step_id"], d["tool_call_id"]);
    }
    assert_eq!(steps.len(), CALLS);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "maestro.events.tool_call.attempted")
            .count(),
        CALLS
    );
    let on_platform: HashSet<String> = p
        .executions()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(execs, on_platform);
}

#[test]
fn the_events_fd_cannot_reach_a_shell_under_maestro_and_the_warning_says_what_to_use() {
    let p = DevPlatform::start();
    let s = Session::new();
    let r = s
        .maestro_sh(Some(&p), "governed")
        .env("MAESTRO_SH_EVENTS_FD", "3")
        .run("echo out");
    // Both set: the fd is not open under Maestro, the file is used, and the line says so.
    assert!(r.text.starts_with("out\n\nmaestro-sh: warning: MAESTRO_SH_EVENTS_FD=3 is not an open file descriptor (Maestro's bash tool passes only fds 0-2"), "{}", r.text);
    assert!(
        r.text
            .contains("writing events to MAESTRO_SH_EVENTS_FILE instead"),
        "{}",
        r.text
    );
    assert!(s
        .events()
        .iter()
        .any(|e| e["type"] == "maestro.events.tool_call.completed"));
    // The fd alone: no events, and the warning names the file variable.
    let s = Session::new();
    let mut t = s
        .maestro_sh(Some(&p), "governed")
        .env("MAESTRO_SH_EVENTS_FD", "3");
    t.env.retain(|(k, _)| k != "MAESTRO_SH_EVENTS_FILE");
    let r = t.run("echo out");
    assert!(
        r.text.contains("under Maestro set MAESTRO_SH_EVENTS_FILE"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("no sidecar events will be written"),
        "{}",
        r.text
    );
    // Refusals show the line; `refusals` hides the warning.
    let r = t.env("MAESTRO_SH_STATUS", "refusals").run("echo out");
    assert_eq!(r.text, "out");
}

#[test]
fn failed_calls_get_tool_call_failed_before_completed() {
    let p = DevPlatform::start();
    for (cmd, mode, failed) in [
        ("true", "governed", false),
        ("exit 4", "governed", true),
        ("exit 4", "observe", true),
        ("kill -KILL $$", "governed", true),
    ] {
        let s = Session::new();
        s.maestro_sh(Some(&p), mode).run(cmd);
        let types: Vec<String> = s
            .events()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        let tail: Vec<&str> = types
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(String::as_str)
            .collect();
        if failed {
            assert_eq!(
                tail,
                [
                    "maestro.events.tool_call.failed",
                    "maestro.events.tool_call.completed"
                ],
                "{cmd}"
            );
            let ev = s.events();
            let (f, c) = (&ev[ev.len() - 2], &ev[ev.len() - 1]);
            assert_eq!(f["data"]["status"], "MAESTRO_TOOL_CALL_STATUS_FAILED");
            assert_eq!(
                f["data"]["tool_execution_id"],
                c["data"]["tool_execution_id"]
            );
            assert_eq!(
                f["extensions"]["dataschema"],
                "buf.build/evalops/proto/maestro.v1.ToolCallResult"
            );
        } else {
            assert!(
                !types.iter().any(|t| t.ends_with(".failed")),
                "{cmd}: {types:?}"
            );
        }
    }
    // A refusal: failed (DENIED), then completed.
    let s = Session::new();
    let r = s.maestro_sh(None, "governed").run("true");
    assert_eq!(r.code, Some(126));
    let ev = s.events();
    assert_eq!(ev[ev.len() - 2]["type"], "maestro.events.tool_call.failed");
    assert_eq!(
        ev[ev.len() - 2]["data"]["status"],
        "MAESTRO_TOOL_CALL_STATUS_DENIED"
    );
    assert_eq!(
        ev[ev.len() - 1]["data"]["governed_outcome"],
        "misconfigured"
    );
}

#[test]
fn new_metadata_keys_and_aliases_on_the_wire() {
    let p = DevPlatform::start();
    let body = |g: Gov| {
        g.expect_status(0).run_checked();
        p.requests_for("ExecuteTool").pop().unwrap()["body"].clone()
    };
    // The newer names alone: org from EVALOPS_ORG_ID, workspace and token from MAESTRO_PLATFORM_*.
    let g = Gov::new(Some(&p.url), "governed", "true")
        .env_remove("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID")
        .env_remove("TOOL_EXECUTION_SERVICE_WORKSPACE_ID")
        .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
        .env("EVALOPS_ORG_ID", ORG)
        .env("MAESTRO_PLATFORM_WORKSPACE_ID", "ws-platform")
        .env("MAESTRO_PLATFORM_ACCESS_TOKEN", TOKEN)
        .env("MAESTRO_AGENT_RUN_ID", "run-1")
        .env("npm_package_version", "0.42.0");
    let b = body(g);
    assert_eq!(b["linkage"]["organizationId"], ORG);
    assert_eq!(b["linkage"]["workspaceId"], "ws-platform");
    assert_eq!(b["tool"]["version"], "0.42.0");
    let m = b["metadata"].as_object().unwrap();
    assert_eq!(m["organization_id"], ORG);
    assert_eq!(m["workspace_id"], "ws-platform");
    assert_eq!(m["maestro_sh_version"], env!("CARGO_PKG_VERSION"));
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        keys[..5],
        [
            "maestro_bridge_mode",
            "maestro_tool_call_id",
            "organization_id",
            "workspace_id",
            "maestro_agent_run_id"
        ]
    );
    // The token never reaches the command.
    let mut g = Gov::new(Some(&p.url), "governed", "env")
        .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
        .env("MAESTRO_PLATFORM_ACCESS_TOKEN", TOKEN);
    let out = g.run();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    // Without npm_package_version, tool.version is absent (as Maestro sends it); without a run
    // id the tenant keys follow the tool call id directly.
    let b = body(Gov::new(Some(&p.url), "governed", "true"));
    assert!(b["tool"].get("version").is_none(), "{}", b["tool"]);
    let keys: Vec<String> = b["metadata"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys[2..4], ["organization_id", "workspace_id"]);
    // The recorded aliases keep their precedence over the new ones.
    let b = body(
        Gov::new(Some(&p.url), "governed", "true")
            .env_remove("TOOL_EXECUTION_SERVICE_WORKSPACE_ID")
            .env("EVALOPS_WORKSPACE_ID", "ws-old")
            .env("MAESTRO_PLATFORM_WORKSPACE_ID", "ws-new")
            .env("EVALOPS_ORG_ID", "org-new"),
    );
    assert_eq!(b["linkage"]["workspaceId"], "ws-old");
    assert_eq!(b["linkage"]["organizationId"], ORG);
    // Old readers: the recorded shape still parses (both shapes accepted).
    let sent: maestro_sh::wire::ExecuteToolRequest = serde_json::from_value(b.clone()).unwrap();
    assert_eq!(sent.metadata["workspace_id"], "ws-old");
}

#[test]
fn a_flags_service_without_a_snapshot_is_said_loudly() {
    let s = Session::new();
    let sh = s
        .maestro_sh(None, "")
        .env("EVALOPS_FEATURE_FLAGS_URL", "https://flags.example.invalid");
    let r = sh.run("echo hi");
    assert!(
        r.text
            .starts_with("hi\n\nmaestro-sh: warning: EVALOPS_FEATURE_FLAGS_URL="),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("set EVALOPS_FEATURE_FLAGS_PATH"),
        "{}",
        r.text
    );
    // No network and no events: pass-through stays pass-through.
    assert!(!s.events_file().exists());
    let out = Command::new(env!("CARGO_BIN_EXE_maestro-sh"))
        .arg("--doctor")
        .env("EVALOPS_FEATURE_FLAGS_URL", "https://flags.example.invalid")
        .env_remove("EVALOPS_FEATURE_FLAGS_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL feature flags: EVALOPS_FEATURE_FLAGS_URL"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// After a wait killed by the timeout: its guardian writes the adoption record and leaves the
/// one approval request open for the retry; a reviewer then approves it.
fn approve_what_the_killed_wait_left(s: &Session, p: &DevPlatform) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let adopt_dir = s.state.path().join("data").join("adopt");
    while std::fs::read_dir(&adopt_dir).map_or(true, |mut d| d.next().is_none()) {
        assert!(Instant::now() < deadline, "no adoption record written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pending = p.pending();
    assert_eq!(pending.len(), 1, "left open for the retry: {pending:?}");
    let (status, v) = p.call_as(
        REVIEWER_TOKEN,
        "/approvals.v1.ApprovalService/ResolveApproval",
        json!({"approvalRequestId": pending[0]["id"], "decision": "DECISION_TYPE_APPROVED",
               "decidedBy": "user", "reason": "ok"}),
    );
    assert_eq!(status, 200, "{v}");
}
