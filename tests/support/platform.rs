//! A real `maestro-platform-dev` on 127.0.0.1:0 per test, and a builder for governed
//! maestro-sh runs against it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::expect::{Expect, Seen};

pub const TOKEN: &str = "dev-token-for-tests";
/// The reviewer credential (ResolveApproval, ListPending); the agent never holds it.
pub const REVIEWER_TOKEN: &str = "dev-reviewer-token-for-tests";
pub const ORG: &str = "org-test";
pub const WORKSPACE: &str = "ws-test";

/// The `maestro-platform-dev` binary, next to the `maestro-sh` under test (install.sh's test
/// takes both from that directory). It lives in its own workspace crate, so Cargo gives this
/// package no `CARGO_BIN_EXE_maestro-platform-dev`: the first call in a test process runs
/// `cargo build -p maestro-platform-dev` once, with the same target dir, target and profile as
/// maestro-sh, so the binary is never a stale one from an older build (a no-op when up to date;
/// `cargo test` at the root has usually built it already, for the crate's own tests).
pub fn platform_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_platform_bin).clone()
}

fn build_platform_bin() -> PathBuf {
    // <target dir>[/<triple>]/<profile dir>/maestro-sh
    let sh = Path::new(env!("CARGO_BIN_EXE_maestro-sh"));
    let profile_dir = sh.parent().expect("maestro-sh has a directory");
    let above = profile_dir.parent().expect("the profile dir has a parent");
    // Cargo keeps .rustc_info.json at the root of its target dir; anything else is a triple.
    let (target_dir, triple) = if above.join(".rustc_info.json").exists() {
        (above, None)
    } else {
        (
            above.parent().expect("the triple dir has a parent"),
            above.file_name(),
        )
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--locked", "--quiet", "-p", "maestro-platform-dev"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(custom) => {
            cmd.args(["--profile", custom]);
        }
        None => panic!("no profile directory in {}", sh.display()),
    }
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let out = cmd
        .output()
        .expect("run cargo to build maestro-platform-dev");
    assert!(
        out.status.success(),
        "cargo build -p maestro-platform-dev failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("maestro-platform-dev");
    assert!(
        bin.is_file(),
        "cargo built maestro-platform-dev, but not at {}",
        bin.display()
    );
    bin
}

/// A running local Platform; killed on drop.
pub struct DevPlatform {
    pub url: String,
    child: Child,
}

impl DevPlatform {
    pub fn start() -> DevPlatform {
        DevPlatform::start_with(&[])
    }

    /// Start with extra `serve` arguments (e.g. `--policy FILE`).
    pub fn start_with(args: &[&str]) -> DevPlatform {
        let mut serve = Command::new(platform_bin());
        serve
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--token",
                TOKEN,
                "--reviewer-token",
                REVIEWER_TOKEN,
                "--org",
                ORG,
            ])
            .args(args);
        let (child, url) = super::serve::start(&mut serve);
        DevPlatform { url, child }
    }

    /// POST `body` to `path`; (HTTP status, JSON body).
    pub fn call(&self, path: &str, body: Value) -> (u16, Value) {
        self.call_as(TOKEN, path, body)
    }

    /// POST with the given bearer token (e.g. [`REVIEWER_TOKEN`]).
    pub fn call_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = ureq::post(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .set("X-Organization-ID", ORG)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        match resp {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("cannot reach the local Platform: {e}"),
        }
    }

    pub fn dev(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(&format!("/maestro.dev.v1.DevService/{method}"), body);
        assert_eq!(status, 200, "{method}: {v}");
        v
    }

    /// Inject faults (an operator hook: the reviewer credential).
    pub fn set_faults(&self, faults: Value) {
        let (status, v) = self.call_as(
            REVIEWER_TOKEN,
            "/maestro.dev.v1.DevService/SetFaults",
            json!({ "faults": faults }),
        );
        assert_eq!(status, 200, "SetFaults: {v}");
    }

    /// Every RPC received so far (dev RPCs excluded), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.dev("GetRequests", json!({}))["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn requests_for(&self, method: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == method)
            .collect()
    }

    pub fn timeline(&self, filter: Value) -> Vec<Value> {
        self.dev("GetTimeline", filter)["executions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn executions(&self) -> Vec<Value> {
        let (_, v) = self.call(
            "/toolexecution.v1.ToolExecutionService/ListToolExecutions",
            json!({"limit": 100}),
        );
        v["executions"].as_array().cloned().unwrap_or_default()
    }

    pub fn pending(&self) -> Vec<Value> {
        let (_, v) = self.call_as(
            REVIEWER_TOKEN,
            "/approvals.v1.ApprovalService/ListPending",
            json!({}),
        );
        v["requests"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for DevPlatform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One maestro-sh invocation under governance, with its own data dir, sidecar file and marker.
///
/// Expectations are declared on the builder (`.expect_refused("denied")`, `.expect_status(0)`,
/// `.expect_stderr_contains(…)`) and checked together by [`Gov::run_checked`] (or
/// [`Gov::check`] for a spawned run), with one message naming everything that failed.
pub struct Gov {
    pub dir: tempfile::TempDir,
    cmd: Command,
    /// The command text after `-c`, for failure messages.
    text: String,
    expect: Expect,
    /// Fds the child inherits (e.g. a decisions pipe's read end); closed here once it runs.
    handed_over: Vec<OwnedFd>,
}

impl Gov {
    /// `maestro-sh -c CMD` in `mode` against `url` (None: no Platform configured).
    pub fn new(url: Option<&str>, mode: &str, command: &str) -> Gov {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_maestro-sh"));
        cmd.args(["-c", command]).env_clear();
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir.path());
        cmd.env("MAESTRO_SH_MODE", mode)
            .env("MAESTRO_SH_DATA_DIR", dir.path().join("data"));
        cmd.env("MAESTRO_SH_EVENTS_FILE", dir.path().join("events.jsonl"));
        cmd.env("MARKER", dir.path().join("ran"));
        // Record inline (not via the detached sender) even on a loaded machine, so tests can
        // read Platform's requests right after exit; tests/faults.rs measures the default.
        cmd.env("MAESTRO_SH_RECORD_WAIT_MS", "10000");
        cmd.current_dir(dir.path());
        if let Some(url) = url {
            cmd.env("TOOL_EXECUTION_SERVICE_URL", url)
                .env("TOOL_EXECUTION_SERVICE_TOKEN", TOKEN)
                .env("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", ORG)
                .env("TOOL_EXECUTION_SERVICE_WORKSPACE_ID", WORKSPACE)
                .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "1500");
        }
        Gov {
            dir,
            cmd,
            text: command.to_string(),
            expect: Expect::default(),
            handed_over: Vec::new(),
        }
    }

    /// `touch $MARKER` then `rest`: the marker proves whether the command ran.
    pub fn marked(url: Option<&str>, mode: &str, rest: &str) -> Gov {
        Gov::new(url, mode, &format!("touch \"$MARKER\"; {rest}"))
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Gov {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Gov {
        self.cmd.env_remove(k);
        self
    }

    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    pub fn run(&mut self) -> Output {
        let out = self
            .cmd
            .stdin(Stdio::null())
            .output()
            .expect("run maestro-sh");
        self.handed_over.clear();
        out
    }

    pub fn spawn(&mut self) -> Child {
        let child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn maestro-sh");
        self.handed_over.clear();
        child
    }

    /// Run once and assert every declared expectation; the output, for further checks.
    #[track_caller]
    pub fn run_checked(&mut self) -> Output {
        let out = self.run();
        self.check(&out);
        out
    }

    /// Assert every declared expectation against `out`, a run of this invocation (spawned,
    /// or run another way, e.g. as another user).
    #[track_caller]
    pub fn check(&self, out: &Output) {
        assert!(
            !self.expect.is_empty(),
            "no expectations declared: nothing to check"
        );
        self.expect.assert(&Seen {
            command: format!("maestro-sh -c {:?}", self.text),
            out,
            outcome: self.completed()["governed_outcome"]
                .as_str()
                .map(str::to_string),
            ran: self.ran(),
            marked: self.text.contains("MARKER"),
        });
    }

    /// Names the case in failure messages (for tables of cases).
    pub fn case(mut self, name: impl std::fmt::Display) -> Gov {
        self.expect.case = Some(name.to_string());
        self
    }

    pub fn expect_status(mut self, code: i32) -> Gov {
        self.expect.status = Some(code);
        self
    }

    /// Death by signal `sig` (no exit status).
    pub fn expect_signal(mut self, sig: i32) -> Gov {
        self.expect.signal = Some(sig);
        self
    }

    /// The sidecar's last `tool_call.completed` event says `governed_outcome: outcome`.
    pub fn expect_outcome(mut self, outcome: &str) -> Gov {
        self.expect.outcome = Some(outcome.to_string());
        self
    }

    /// Whether the command ran: the marker file exists. The command must touch `$MARKER`.
    pub fn expect_ran(mut self, ran: bool) -> Gov {
        self.expect.ran = Some(ran);
        self
    }

    pub fn expect_stdout(mut self, stdout: impl AsRef<[u8]>) -> Gov {
        self.expect.stdout = Some(stdout.as_ref().to_vec());
        self
    }

    /// Exactly this on stderr.
    pub fn expect_stderr(mut self, stderr: &str) -> Gov {
        self.expect.stderr = Some(stderr.to_string());
        self
    }

    pub fn expect_stderr_starts_with(mut self, prefix: &str) -> Gov {
        self.expect.stderr_starts_with = Some(prefix.to_string());
        self
    }

    pub fn expect_stderr_contains(mut self, needle: impl std::fmt::Display) -> Gov {
        self.expect.stderr_contains.push(needle.to_string());
        self
    }

    pub fn expect_stderr_lacks(mut self, needle: impl std::fmt::Display) -> Gov {
        self.expect.stderr_lacks.push(needle.to_string());
        self
    }

    /// Exactly `n` lines on stderr (a refusal is one line unless the wait printed status).
    pub fn expect_stderr_lines(mut self, n: usize) -> Gov {
        self.expect.stderr_lines = Some(n);
        self
    }

    /// A refusal: exit 126, nothing on stdout, the refusal line `maestro-sh: OUTCOME: …` on
    /// stderr, the sidecar's outcome `outcome`, and the command did not run.
    pub fn expect_refused(self, outcome: &str) -> Gov {
        self.expect_status(126)
            .expect_stdout("")
            .expect_stderr_contains(format_args!("maestro-sh: {outcome}: "))
            .expect_outcome(outcome)
            .expect_ran(false)
    }

    /// Hand the child a pipe's read end as fd `fd` (Maestro's decisions fd); the write end.
    pub fn decisions_pipe(&mut self, fd: i32) -> OwnedFd {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        let raw = read.as_raw_fd();
        // SAFETY: dup2 is async-signal-safe; `raw` stays open until the child has run.
        unsafe {
            self.cmd.pre_exec(move || {
                if libc::dup2(raw, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.handed_over.push(read);
        write
    }

    pub fn ran(&self) -> bool {
        self.dir.path().join("ran").exists()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sidecar events written so far.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.dir.path().join("events.jsonl"))
    }

    /// Sidecar events of type `maestro.events.KIND`, in order.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        let kind = format!("maestro.events.{kind}");
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind.as_str())
            .collect()
    }

    /// The last `tool_call.completed` event's data.
    pub fn completed(&self) -> Value {
        self.events_of("tool_call.completed")
            .pop()
            .map_or(Value::Null, |mut e| e["data"].take())
    }
}

/// Wait (bounded: 30 s) until `cond` holds; `what` names it in the failure.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("sidecar line is not JSON ({e}): {l}"))
        })
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A feature-flag snapshot file with these flags enabled.
pub fn flags_file(dir: &Path, enabled: &[&str]) -> PathBuf {
    let path = dir.join("flags.json");
    let flags: Vec<Value> = enabled
        .iter()
        .map(|k| json!({"key": k, "enabled": true}))
        .collect();
    std::fs::write(
        &path,
        json!({"schema_version": 1, "flags": flags}).to_string(),
    )
    .unwrap();
    path
}
