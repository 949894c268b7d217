//! Faults and hostile input (issue 10), against real processes: files that are FIFOs, script
//! operands that are pipes, a poisoned outbox, a stalled Platform in observe mode, rejected
//! records, and hostile Platform text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::approval::{approval_hit, approval_platform};
use crate::support::platform::{stderr, DevPlatform, Gov, ORG, TOKEN, WORKSPACE};

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Run with a watchdog: a hang fails the test instead of wedging the suite.
fn run_bounded(mut child: std::process::Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (out, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("maestro-sh still running after {limit:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn fifo_as_flags_policy_or_credentials_refuses_promptly_naming_the_file() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("a-fifo");
    mkfifo(&fifo);
    let cases: [(&str, &str); 3] = [
        ("EVALOPS_FEATURE_FLAGS_PATH", "feature-flag snapshot"),
        ("MAESTRO_SH_POLICY_FILE", "MAESTRO_SH_POLICY_FILE"),
        ("MAESTRO_SH_CREDENTIALS_FILE", "credentials"),
    ];
    for (var, what) in cases {
        let mut g = Gov::marked(Some(&p.url), "governed", "true")
            .env(var, &fifo)
            .case(var)
            .expect_refused("misconfigured")
            .expect_stderr_starts_with("maestro-sh: misconfigured: ")
            .expect_stderr_contains(fifo.display())
            .expect_stderr_contains("FIFO")
            .expect_stderr_contains(what)
            .expect_stderr_lines(1);
        if var == "MAESTRO_SH_CREDENTIALS_FILE" {
            g = g.env_remove("TOOL_EXECUTION_SERVICE_TOKEN");
        }
        let (out, took) = run_bounded(g.spawn(), Duration::from_secs(20));
        g.check(&out);
        assert!(took < Duration::from_secs(10), "{var}: took {took:?}");
    }
    // An oversize policy file and a device are refused the same way.
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 200 * 1024]).unwrap();
    for bad in [big.as_path(), Path::new("/dev/zero")] {
        let mut g = Gov::marked(Some(&p.url), "governed", "true")
            .env("MAESTRO_SH_POLICY_FILE", bad)
            .expect_refused("misconfigured")
            .expect_stderr_contains(bad.display());
        let (out, _) = run_bounded(g.spawn(), Duration::from_secs(20));
        g.check(&out);
    }
}

/// `outer` with `$MS` set to maestro-sh (or bash), in `mode`.
fn outer(shell: &Path, script: &str, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new("/bin/bash");
    c.arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("SH", shell)
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    run_bounded(child, Duration::from_secs(30)).0
}

fn maestro_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maestro-sh"))
}

#[test]
fn pipe_fifo_and_dev_stdin_script_operands_reach_bash_whole() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fifo = dir.path().join("script.fifo");
    mkfifo(&fifo);
    let script = "printf '%s\\n' one two; echo \"args:$#:$1\"; exit 5";
    let forms = [
        "\"$SH\" <(printf '%s' \"$S\") a1".to_string(),
        "printf '%s' \"$S\" | \"$SH\" /dev/stdin a1".to_string(),
        "printf '%s' \"$S\" | \"$SH\" /dev/fd/0 a1".to_string(),
        format!(
            "(printf '%s' \"$S\" > {f}) & \"$SH\" {f} a1; s=$?; wait; exit $s",
            f = fifo.display()
        ),
    ];
    let gov_env: Vec<(&str, String)> = vec![
        ("TOOL_EXECUTION_SERVICE_URL", p.url.clone()),
        ("TOOL_EXECUTION_SERVICE_TOKEN", TOKEN.into()),
        ("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", ORG.into()),
        ("TOOL_EXECUTION_SERVICE_WORKSPACE_ID", WORKSPACE.into()),
        ("MAESTRO_SH_DATA_DIR", data.display().to_string()),
        ("MAESTRO_SH_RECORD_WAIT_MS", "10000".into()),
        ("S", script.into()),
    ];
    for form in &forms {
        let base: Vec<(&str, &str)> = vec![("S", script)];
        let want = outer(Path::new("/bin/bash"), form, &base);
        assert_eq!(want.stdout, b"one\ntwo\nargs:1:a1\n", "{form}");
        assert_eq!(want.status.code(), Some(5));
        for mode in ["observe", "governed"] {
            let mut envs: Vec<(&str, &str)> =
                gov_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            envs.push(("MAESTRO_SH_MODE", mode));
            let got = outer(&maestro_sh(), form, &envs);
            assert_eq!(
                (got.stdout.as_slice(), got.status.code()),
                (want.stdout.as_slice(), want.status.code()),
                "{mode} {form}: {}",
                stderr(&got)
            );
        }
    }
    // Governed as unknown code: Platform saw a script it could not read, at high risk.
    let execs = p.requests_for("ExecuteTool");
    assert!(!execs.is_empty());
    for e in &execs {
        let risk = e["body"]["risk"]["level"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !risk.contains("LOW"),
            "an unread script was judged low risk: {}",
            e["body"]
        );
    }
}

/// Spooled records with Platform down, one of them poisoned: the good ones are delivered
/// exactly once, the poisoned one is dead-lettered with a warning event, nothing blocks.
#[test]
fn poison_record_is_dead_lettered_and_good_ones_delivered_once() {
    let p = DevPlatform::start();
    let data = tempfile::tempdir().unwrap();
    for n in 1..=4 {
        let mut g = Gov::new(Some("http://127.0.0.1:9"), "observe", "true")
            .env("MAESTRO_SH_DATA_DIR", data.path())
            .env("MAESTRO_TOOL_CALL_ID", format!("call-poison-{n}"));
        assert_eq!(g.run().status.code(), Some(0));
    }
    let outbox = data.path().join("outbox");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&outbox), 0o700);
    assert!(files.iter().all(|f| mode(f) == 0o600));
    // Poison the second-oldest: Platform answers 400 (tool.name is required).
    let mut v: Value = serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
    v["execute"]["tool"]["name"] = json!("");
    // Sealed again as maestro-sh would (the key is the token's authorization header): an
    // unsealed edit would be set aside before Platform sees it (outbox.rs).
    let mut entry: maestro_sh::outbox::Entry = serde_json::from_value(v).unwrap();
    entry.seal = entry.seal_with(format!("Bearer {TOKEN}").as_bytes());
    std::fs::write(&files[1], serde_json::to_vec(&entry).unwrap()).unwrap();

    let mut g = Gov::new(Some(&p.url), "observe", "true")
        .env("MAESTRO_SH_DATA_DIR", data.path())
        .env("MAESTRO_TOOL_CALL_ID", "call-poison-5");
    assert_eq!(g.run().status.code(), Some(0));
    let warnings = g.events_of("maestro_sh.outbox_warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["data"]["kind"], "dead_lettered");
    assert!(warnings[0]["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("HTTP 400"));

    let mut steps: Vec<String> = p
        .executions()
        .iter()
        .map(|e| e["linkage"]["stepId"].as_str().unwrap().to_string())
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            "call-poison-1",
            "call-poison-3",
            "call-poison-4",
            "call-poison-5"
        ]
    );
    assert_eq!(p.requests_for("RecordToolExecutionOutput").len(), 4);
    let left: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(std::fs::read_dir(outbox.join("dead")).unwrap().count(), 2); // record + reason
}

/// A data dir someone else owns is refused (records could be read or planted).
#[test]
fn foreign_data_dir_is_refused() {
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: running as root, every dir is ours");
        return;
    }
    let mut g =
        Gov::new(Some("http://127.0.0.1:9"), "observe", "echo ran").env("MAESTRO_SH_DATA_DIR", "/");
    let out = g.run();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"ran\n");
    let err = stderr(&out);
    assert!(
        err.contains("records cannot be spooled") && err.contains("not you"),
        "{err}"
    );
}

/// Observe never holds the caller: whatever Platform does after the command (slow headers,
/// a body that stalls, a Record that hangs), the exit comes within the record wait (40 ms) plus
/// a spool write; the record is delivered once, later, by the detached sender.
#[test]
fn observe_exit_is_bounded_with_a_stalled_platform_and_delivered_later() {
    // Baseline: the same run with Platform unreachable (fails fast, spools).
    let base = {
        let mut g = Gov::new(Some("http://127.0.0.1:9"), "observe", "true")
            .env_remove("MAESTRO_SH_RECORD_WAIT_MS");
        let t = Instant::now();
        assert_eq!(g.run().status.code(), Some(0));
        t.elapsed()
    };
    let scenarios = [
        ("ExecuteTool", "delay"),
        ("ExecuteTool", "slow_body"),
        ("RecordToolExecutionOutput", "delay"),
    ];
    for (method, kind) in scenarios {
        let p = DevPlatform::start();
        p.set_faults(json!([{"method": method, "kind": kind, "delayMs": 2500, "times": 1}]));
        let mut g = Gov::new(Some(&p.url), "observe", "echo done; exit 3")
            .env_remove("MAESTRO_SH_RECORD_WAIT_MS")
            .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "10000")
            .env("MAESTRO_TOOL_CALL_ID", "call-stalled-1");
        let t = Instant::now();
        let out = g.run();
        let took = t.elapsed();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"done\n");
        // 40 ms wait + spool; generous slack for a loaded CI machine, far below the stall.
        assert!(
            took < base + Duration::from_millis(1200),
            "{method} {kind}: observe held the caller {took:?} (baseline {base:?})"
        );
        eprintln!("observe exit, {method} {kind}: {took:?} (Platform down: {base:?})");
        // Delivered exactly once, later.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let recorded = p
                .executions()
                .iter()
                .map(|e| e["state"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>();
            if recorded == ["TOOL_EXECUTION_STATE_FAILED"] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{method} {kind}: not delivered: {recorded:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Let the stalled request land too, then count: one execution, recorded once.
        std::thread::sleep(Duration::from_millis(3000));
        let execs = p.executions();
        assert_eq!(execs.len(), 1, "{execs:?}");
        assert_eq!(execs[0]["output"]["safeOutput"]["exit_status"], 3);
        assert_eq!(
            count_records(&g.data_dir()),
            0,
            "{method} {kind}: left in the outbox"
        );
    }
}

/// 401/403/404 in observe: one warning line, nothing spooled, nothing retried.
#[test]
fn observe_rejected_for_good_warns_once_and_is_not_spooled() {
    let p = DevPlatform::start();
    let mut g = Gov::new(Some(&p.url), "observe", "echo ok")
        .env("TOOL_EXECUTION_SERVICE_TOKEN", "wrong-token");
    let out = g.run();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"ok\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("401") && err.contains("not be retried"),
        "{err}"
    );
    // Redaction keeps the words: no marker in our own advice.
    assert!(!err.contains("[REDACTED"), "{err}");
    assert!(!g.data_dir().join("outbox").exists() || count_records(&g.data_dir()) == 0);

    // A Record Platform rejects for good is not spooled either.
    p.set_faults(json!([{"method": "RecordToolExecutionOutput", "kind": "status", "status": 400}]));
    let mut g = Gov::new(Some(&p.url), "observe", "true");
    let out = g.run();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("HTTP 400"), "{}", stderr(&out));
    assert_eq!(count_records(&g.data_dir()), 0);
}

fn count_records(data: &Path) -> usize {
    std::fs::read_dir(data.join("outbox"))
        .map(|it| {
            it.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
        })
        .unwrap_or(0)
}

/// Observe sends what Maestro sends: one ExecuteTool after the run with the local outcome, and
/// the Record only because Platform left the execution open (RUNNING).
#[test]
fn observe_records_as_maestro_sends_them() {
    let p = DevPlatform::start();
    let mut g =
        Gov::new(Some(&p.url), "observe", "exit 2").env("MAESTRO_TOOL_CALL_ID", "call-obs-shape");
    assert_eq!(g.run().status.code(), Some(2));
    let methods: Vec<String> = p
        .requests()
        .iter()
        .filter_map(|r| r["method"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        methods,
        ["ExecuteTool", "RecordToolExecutionOutput"],
        "{methods:?}"
    );
    let e = &p.requests_for("ExecuteTool")[0]["body"]["metadata"];
    assert_eq!(e["maestro_local_outcome"], "failed");
    assert_eq!(g.completed()["tool_execution_id"], p.executions()[0]["id"]);
}

/// Platform's text is inert: a hostile deny reason (newlines, ANSI escapes, 300 KB) arrives
/// as one short clean line on stderr and in the sidecar.
#[test]
fn hostile_platform_text_is_one_short_clean_line() {
    let dir = tempfile::tempdir().unwrap();
    let reason = format!(
        "line1\nline2\r\u{1b}[31mred\u{1b}[0m \u{1b}]0;pwned\u{7}\u{202e}{}",
        "x".repeat(300 * 1024)
    );
    let policy = json!({"default": "allow", "rules": [
        {"action": "deny", "command_prefixes": ["echo hostile"], "reason": reason},
        {"action": "require_approval", "command_prefixes": ["echo wait-hostile"], "reason": reason}]});
    let path = dir.path().join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let p = DevPlatform::start_with(&["--policy", path.to_str().unwrap()]);
    let mut g = Gov::new(Some(&p.url), "governed", "echo hostile; touch \"$MARKER\"")
        .expect_refused("denied")
        .expect_stderr_lines(1)
        .expect_stderr_contains("line1 line2 red x");
    let err = stderr(&g.run_checked());
    assert!(!err.contains('\u{1b}') && !err.contains('\r') && !err.contains('\u{202e}'));
    assert!(err.len() < 1024, "{} bytes", err.len());
    let data = g.completed().to_string();
    assert!(data.len() < 4096, "sidecar event {} bytes", data.len());
    assert!(!data.contains("\\u001b") && !data.contains("\\n"), "{data}");

    // The approval wait's lines (start, end, refusal) and its sidecar event: clean and short.
    let mut g = Gov::new(
        Some(&p.url),
        "governed",
        "echo wait-hostile; touch \"$MARKER\"",
    )
    .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "500")
    .env("MAESTRO_SH_STATUS", "always")
    .expect_refused("approval_timeout")
    .expect_stderr_contains("waiting for approval: line1 line2 red x");
    let err = stderr(&g.run_checked());
    for line in err.lines() {
        assert!(line.len() < 1024, "{} bytes: {line:.80}", line.len());
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
    }
    let events = serde_json::to_string(&g.events()).unwrap();
    assert!(events.len() < 8192, "sidecar {} bytes", events.len());
    assert!(!events.contains("\\u001b"), "{events}");
}

/// Retries are bounded: approved from Maestro's UI while Resume keeps failing, the shim makes
/// at most 5 Resume rounds (backoff with jitter) and refuses, instead of ~1,000 calls over the
/// wait.
#[test]
fn resume_retries_are_bounded_when_platform_keeps_failing() {
    use std::io::Write;
    let (p, _policy) = approval_platform();
    let mut g = Gov::new(
        Some(&p.url),
        "governed",
        "echo approve-me; touch \"$MARKER\"",
    )
    .env("MAESTRO_SH_DECISIONS_FD", "3")
    .env("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1")
    .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "900000")
    .expect_refused("platform_unavailable");
    let write = g.decisions_pipe(3);
    let mut child = g.spawn();
    approval_hit(&g, &mut child);
    p.set_faults(json!([{"method": "ResumeToolExecution", "kind": "status", "status": 503}]));
    let mut w = std::fs::File::from(write);
    writeln!(w, r#"{{"approved": true}}"#).unwrap();
    let t = Instant::now();
    let (out, _) = run_bounded(
        {
            // run_bounded wants a Child; reuse ours.
            let _ = child.stdin.take();
            child
        },
        Duration::from_secs(90),
    );
    g.check(&out);
    let resumes = p.requests_for("ResumeToolExecution").len();
    assert!((1..=5).contains(&resumes), "{resumes} Resume calls");
    eprintln!(
        "Resume calls with Platform failing: {resumes} in {:?}",
        t.elapsed()
    );
}

/// Disk full: the record cannot be spooled; the command's status is unaffected, one warning
/// says so, and no temp file is left behind. Needs a small tmpfs: mounted in a user+mount
/// namespace (`unshare -rm`); skipped with a message where that is not allowed.
#[test]
fn disk_full_spool_fails_cleanly() {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\"",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot mount a tmpfs here (unshare -rm not permitted)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
set -u
mount -t tmpfs -o size=64k tmpfs "$D" || exit 90
mkdir -p "$D/data/outbox" && chmod 700 "$D/data" "$D/data/outbox"
# Fill the disk.
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null
"$SH" -c 'echo ran; exit 4' >"$OUT/full.out" 2>"$OUT/full.err"; echo "status $?" >>"$OUT/full.out"
ls -A "$D/data/outbox" >"$OUT/full.ls"
rm -f "$D/fill"
"$SH" -c 'exit 0' 2>"$OUT/free.err"
ls "$D/data/outbox" | grep -c '\.json$' >"$OUT/free.count"
"#;
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let st = Command::new("unshare")
        .args(["-rm", "bash", "-c", script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("D", &mnt)
        .env("OUT", &out_dir)
        .env("SH", maestro_sh())
        .env("MAESTRO_SH_MODE", "observe")
        .env("MAESTRO_SH_DATA_DIR", mnt.join("data"))
        .env("TOOL_EXECUTION_SERVICE_URL", "http://127.0.0.1:9")
        .env("TOOL_EXECUTION_SERVICE_TOKEN", TOKEN)
        .env("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", ORG)
        .env("TOOL_EXECUTION_SERVICE_WORKSPACE_ID", WORKSPACE)
        .status()
        .unwrap();
    assert!(st.success(), "{st:?}");
    let read = |n: &str| std::fs::read_to_string(out_dir.join(n)).unwrap();
    assert_eq!(read("full.out"), "ran\nstatus 4\n");
    let err = read("full.err");
    assert!(
        err.contains("could not be spooled") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.matches("could not be spooled").count(), 1, "{err}");
    let listing = read("full.ls");
    assert!(
        !listing.contains(".tmp") && !listing.contains(".json"),
        "temp file or record left behind: {listing}"
    );
    assert_eq!(read("free.count").trim(), "1", "{}", read("free.err"));
}

/// Load (opt-in: `MAESTRO_SH_LOAD=1 cargo test --test integration faults::load -- --nocapture`):
/// 200 concurrent governed shims (allow, deny, approval granted by a reviewer process) and 50
/// observe shims with Platform down, then Platform reachable: exact counts, no hang, and each
/// sidecar carries its own ids.
#[test]
fn load_200_governed_and_50_observe() {
    if std::env::var_os("MAESTRO_SH_LOAD").is_none() {
        eprintln!("skipped: set MAESTRO_SH_LOAD=1 to run the load test");
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":"allow","rules":[
  {"action":"deny","command_prefixes":["echo deny-me"],"reason":"no"},
  {"action":"require_approval","command_prefixes":["echo approve-me"],"reason":"needs a human"}]}"#,
    )
    .unwrap();
    let p = DevPlatform::start_with(&["--policy", policy.to_str().unwrap()]);
    let kind = |i: usize| match i % 5 {
        0 => "deny-me",
        1 => "approve-me",
        _ => "allow-me",
    };
    let mut govs: Vec<(usize, Gov, std::process::Child)> = (0..200)
        .map(|i| {
            let mut g = Gov::new(
                Some(&p.url),
                "governed",
                &format!("echo {} {i}; touch \"$MARKER\"", kind(i)),
            )
            .env("MAESTRO_TOOL_CALL_ID", format!("call-load-{i}"));
            let c = g.spawn();
            (i, g, c)
        })
        .collect();
    // 50 observe shims with Platform down, sharing one outbox.
    let obs_data = dir.path().join("obs-data");
    let mut observers: Vec<(Gov, std::process::Child)> = (0..50)
        .map(|i| {
            let mut g = Gov::new(Some("http://127.0.0.1:9"), "observe", "true")
                .env("MAESTRO_SH_DATA_DIR", &obs_data)
                .env("MAESTRO_TOOL_CALL_ID", format!("call-obs-{i}"));
            let c = g.spawn();
            (g, c)
        })
        .collect();
    // The reviewer: a separate process per decision, as a person using the CLI would.
    let mut approved = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while approved.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "approvals did not all appear: {}",
            approved.len()
        );
        for req in p.pending() {
            let id = req["id"].as_str().unwrap_or_default().to_string();
            if id.is_empty() || approved.contains(&id) {
                continue;
            }
            let st = Command::new(crate::support::platform::platform_bin())
                .args([
                    "approve", &id, "--url", &p.url, "--by", "reviewer", "--reason", "ok",
                ])
                .env("MAESTRO_PLATFORM_DEV_TOKEN", TOKEN)
                .env("MAESTRO_PLATFORM_DEV_ORG", ORG)
                .output()
                .unwrap();
            assert!(st.status.success(), "{}", stderr(&st));
            approved.insert(id);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, g, c) in govs.drain(..) {
        let (out, _) = run_bounded(c, Duration::from_secs(600));
        let want = if kind(i) == "deny-me" { 126 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{i}: {}", stderr(&out));
        assert_eq!(g.ran(), want == 0, "{i}");
        let done = g.completed();
        assert_eq!(done["tool_call_id"], format!("call-load-{i}"));
        let id = done["tool_execution_id"].as_str().unwrap().to_string();
        assert!(
            ids.insert(id),
            "{i}: a sidecar carries another call's execution id"
        );
    }
    for (_, c) in observers.drain(..) {
        let (out, _) = run_bounded(c, Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(0));
    }
    let spooled = count_records(&obs_data);
    assert_eq!(
        spooled, 50,
        "observe records spooled while Platform was down"
    );
    // Platform reachable: the next observe call delivers its own record and the spooled ones.
    let mut g = Gov::new(Some(&p.url), "observe", "true")
        .env("MAESTRO_SH_DATA_DIR", &obs_data)
        .env("MAESTRO_TOOL_CALL_ID", "call-obs-up");
    assert_eq!(g.run().status.code(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_records(&obs_data) > 0 {
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {}",
            count_records(&obs_data)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, v) = p.call(
        "/toolexecution.v1.ToolExecutionService/ListToolExecutions",
        json!({"limit": 1000}),
    );
    let execs = v["executions"].as_array().cloned().unwrap_or_default();
    let count = |prefix: &str, state: &str| {
        execs
            .iter()
            .filter(|e| {
                e["linkage"]["stepId"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(prefix)
                    && e["state"] == state
            })
            .count()
    };
    let ok = "TOOL_EXECUTION_STATE_SUCCEEDED";
    assert_eq!(execs.len(), 251, "executions");
    assert_eq!(
        count("call-load-", ok),
        160,
        "allowed + approved ran and were recorded"
    );
    assert_eq!(count("call-load-", "TOOL_EXECUTION_STATE_DENIED"), 40);
    assert_eq!(count("call-obs-", ok), 51);
    assert_eq!(
        p.requests_for("RecordToolExecutionOutput").len(),
        211,
        "records"
    );
    eprintln!(
        "load: 200 governed (120 allow, 40 deny, 40 approved by a reviewer process) + 50 observe \
         spooled while Platform was down and delivered after: {} executions, {} records, \
         {} ResumeToolExecution, in {:?}",
        execs.len(),
        p.requests_for("RecordToolExecutionOutput").len(),
        p.requests_for("ResumeToolExecution").len(),
        start.elapsed()
    );
}

/// A full outbox (1000 records) drops its oldest record only after a warning event says so.
#[test]
fn full_outbox_warns_before_dropping_the_oldest() {
    let data = tempfile::tempdir().unwrap();
    let outbox = data.path().join("outbox");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&outbox)
            .unwrap();
    }
    for i in 0..1000 {
        std::fs::write(outbox.join(format!("{i:032}-old.json")), b"{}").unwrap();
    }
    let mut g = Gov::new(Some("http://127.0.0.1:9"), "observe", "true")
        .env("MAESTRO_SH_DATA_DIR", data.path());
    assert_eq!(g.run().status.code(), Some(0));
    let warnings = g.events_of("maestro_sh.outbox_warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["data"]["kind"], "dropped");
    assert_eq!(warnings[0]["data"]["record"], format!("{:032}-old.json", 0));
    assert_eq!(count_records(data.path()), 1000);
    assert!(!outbox.join(format!("{:032}-old.json", 0)).exists());
}

/// `maestro-sh --explain -c TEXT` (flags and mode from the test's environment removed), under
/// the watchdog `limit`: its JSON verdict and how long it took.
fn explain_bounded(text: &str, limit: Duration) -> (Value, Duration) {
    let mut c = Command::new(maestro_sh());
    c.args(["--explain", "-c", text])
        .env_remove("EVALOPS_FEATURE_FLAGS_PATH")
        .env_remove("MAESTRO_SH_MODE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, took) = run_bounded(c.spawn().unwrap(), limit);
    let verdict = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--explain printed no JSON ({e}): {}", stderr(&out)));
    (verdict, took)
}

/// Found by fuzzing: deep unclosed parentheses made the bash parser backtrack exponentially
/// (28 `(` then `&`: 7 s, doubling per `(`). Such text is now unknown code, decided at once.
#[test]
fn deep_parentheses_do_not_hang_classification() {
    for text in [
        format!("{}&", "(".repeat(60)),
        format!("{};{}", "(".repeat(60), ")".repeat(60)),
        format!("{}x", "( ".repeat(60)),
    ] {
        let (v, took) = explain_bounded(&text, Duration::from_secs(20));
        assert!(took < Duration::from_secs(5), "{took:?} for {text:?}");
        assert_eq!(v["read_only"], false);
        assert!(
            v["reasons"].to_string().contains("nested deeper than 16"),
            "{v}"
        );
    }
    // Also found by fuzzing: the parser never returns on this one. Classification has a
    // budget (2 s); past it the text is unknown code.
    let (v, took) = explain_bounded("cat <<\r< ", Duration::from_secs(30));
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(v["read_only"], false);
    assert!(
        v["reasons"]
            .to_string()
            .contains("not understood within 2 s"),
        "{v}"
    );
}
