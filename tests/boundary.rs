//! The governed agent cannot get around governance (issue 9): runs at most once per tool call,
//! only a human approves, the token stays with maestro-sh, grants cannot be minted, and the
//! transport refuses what it cannot trust. The adversary is a process of the same user that can
//! run whatever a governed shell lets it run.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::approval::approval_platform;
use crate::support::platform::{stderr, wait_for, DevPlatform, Gov, REVIEWER_TOKEN, TOKEN};
use crate::support::protected::{
    am_root, as_nobody_via_exec, chmod, protected_install, run_as_nobody, NOBODY,
};

const EXECUTE: &str = "/toolexecution.v1.ToolExecutionService/ExecuteTool";
const GET: &str = "/toolexecution.v1.ToolExecutionService/GetToolExecution";
const LIST: &str = "/toolexecution.v1.ToolExecutionService/ListToolExecutions";
const RESUME: &str = "/toolexecution.v1.ToolExecutionService/ResumeToolExecution";
const RESOLVE: &str = "/approvals.v1.ApprovalService/ResolveApproval";
const PENDING: &str = "/approvals.v1.ApprovalService/ListPending";

/// Lines in the counter file: how many times the command ran.
fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .unwrap_or_default()
        .lines()
        .count()
}

/// A governed invocation of `step` that appends a line to `counter` when it runs (and touches
/// its own marker), then `rest`.
fn counted(url: &str, step: &str, counter: &Path, rest: &str) -> Gov {
    Gov::marked(
        Some(url),
        "governed",
        &format!("echo ran >> \"$COUNTER\"; {rest}"),
    )
    .env("MAESTRO_TOOL_CALL_ID", step)
    .env("COUNTER", counter)
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a pid (or -pgid) this test started.
    unsafe { libc::kill(pid, sig) };
}

// ---- 5. One tool call runs at most once -------------------------------------------------

#[test]
fn double_run_table_kill9_of_the_shim_then_retry() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let mut g = counted(&p.url, "call-kill9", &counter, "sleep 30");
    g.command().process_group(0);
    let mut child = g.spawn();
    wait_for("the first run", || runs(&counter) == 1);
    kill(child.id() as i32, libc::SIGKILL);
    let _ = child.wait();
    // The retry, as a client would make it after losing the shim.
    let mut again = counted(&p.url, "call-kill9", &counter, "sleep 30")
        .expect_refused("already_ran")
        .expect_stderr_lines(1)
        .expect_stderr_contains("new tool call id");
    let out = again.run();
    kill(-(child.id() as i32), libc::SIGKILL); // the orphaned `sleep`
    again.check(&out);
    assert_eq!(runs(&counter), 1);
}

#[test]
fn double_run_table_process_group_kill_then_retry() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let mut g = counted(&p.url, "call-pgkill", &counter, "sleep 30");
    g.command().process_group(0);
    let mut child = g.spawn();
    wait_for("the first run", || runs(&counter) == 1);
    kill(-(child.id() as i32), libc::SIGKILL);
    let _ = child.wait();
    counted(&p.url, "call-pgkill", &counter, "sleep 30")
        .expect_refused("already_ran")
        .expect_stderr_lines(1)
        .run_checked();
    assert_eq!(runs(&counter), 1);
    // Exactly one execution for the step.
    assert_eq!(p.timeline(json!({"stepId": "call-pgkill"})).len(), 1);
}

#[test]
fn double_run_table_eight_concurrent_invocations_of_one_step() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    // Separate processes, separate data dirs: Platform alone hands RUNNING once.
    let mut gs: Vec<Gov> = (0..8)
        .map(|_| {
            counted(&p.url, "call-eight", &counter, "true")
                .expect_refused("already_ran")
                .expect_stderr_lines(1)
        })
        .collect();
    let children: Vec<Child> = gs.iter_mut().map(Gov::spawn).collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert_eq!(runs(&counter), 1);
    let ok = outs.iter().filter(|o| o.status.code() == Some(0)).count();
    assert_eq!(ok, 1, "exactly one attempt runs");
    for (g, out) in gs.iter().zip(&outs) {
        if out.status.code() != Some(0) {
            g.check(out);
        }
    }
    assert_eq!(p.timeline(json!({"stepId": "call-eight"})).len(), 1);
}

#[test]
fn double_run_table_three_concurrent_under_one_approval() {
    let (p, _policy) = approval_platform();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let mut gs: Vec<Gov> = (0..3)
        .map(|_| {
            Gov::new(
                Some(&p.url),
                "governed",
                "echo approve-me; echo ran >> \"$COUNTER\"; touch \"$MARKER\"",
            )
            .env("MAESTRO_TOOL_CALL_ID", "call-three")
            .env("COUNTER", &counter)
            .expect_refused("already_ran")
            .expect_stderr_lines(1)
            .expect_stderr_contains("waiting for approval")
        })
        .collect();
    let mut children: Vec<Option<Child>> = gs.iter_mut().map(|g| Some(g.spawn())).collect();
    // The two that were not first are refused at once, without waiting for the approval.
    let mut refused = 0;
    wait_for("two refusals", || {
        for (g, c) in gs.iter().zip(children.iter_mut()) {
            if let Some(child) = c {
                if let Ok(Some(_)) = child.try_wait() {
                    g.check(&c.take().unwrap().wait_with_output().unwrap());
                    refused += 1;
                }
            }
        }
        refused == 2
    });
    let pending = p.pending();
    assert_eq!(pending.len(), 1);
    let id = pending[0]["id"].as_str().unwrap();
    let (status, _) = p.call_as(
        REVIEWER_TOKEN,
        RESOLVE,
        json!({"approvalRequestId": id, "decision": "DECISION_TYPE_APPROVED", "decidedBy": "alice"}),
    );
    assert_eq!(status, 200);
    let last = children.into_iter().flatten().next().unwrap();
    let out = last.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(runs(&counter), 1);
}

#[test]
fn a_reused_step_id_with_another_command_is_refused_and_says_so() {
    let p = DevPlatform::start();
    let mut first =
        Gov::marked(Some(&p.url), "governed", "exit 3").env("MAESTRO_TOOL_CALL_ID", "call-reused");
    assert_eq!(first.run().status.code(), Some(3));
    // A wrapper exporting one tool call id for a whole session: another command.
    Gov::marked(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-reused")
        .expect_refused("step_id_reused")
        .expect_stderr_lines(1)
        .expect_stderr_contains("different command")
        .run_checked();
    // The same command again: the replay outcome, with the recorded result.
    Gov::marked(Some(&p.url), "governed", "exit 3")
        .env("MAESTRO_TOOL_CALL_ID", "call-reused")
        .expect_refused("already_ran")
        .expect_stderr_lines(1)
        .expect_stderr_contains("exit status 3")
        .run_checked();
    assert_eq!(p.executions().len(), 1);
}

#[test]
fn a_platform_that_forgets_the_replay_flag_still_runs_a_step_once() {
    let p = DevPlatform::start();
    p.set_faults(json!([{"method": "ExecuteTool", "kind": "no_replay_flag"}]));
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    // Sequential: a retry after the first run.
    let mut first = counted(&p.url, "call-forgetful", &counter, "true");
    assert_eq!(first.run().status.code(), Some(0));
    counted(&p.url, "call-forgetful", &counter, "true")
        .expect_refused("already_ran")
        .expect_stderr_lines(1)
        .run_checked();
    // Concurrent: eight at once.
    let mut gs: Vec<Gov> = (0..8)
        .map(|_| {
            counted(&p.url, "call-forgetful-8", &counter, "true")
                .expect_refused("already_ran")
                .expect_stderr_lines(1)
        })
        .collect();
    let outs: Vec<Output> = gs
        .iter_mut()
        .map(Gov::spawn)
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert_eq!(
        outs.iter().filter(|o| o.status.code() == Some(0)).count(),
        1
    );
    for (g, out) in gs.iter().zip(&outs) {
        if out.status.code() != Some(0) {
            g.check(out);
        }
    }
    assert_eq!(runs(&counter), 2, "once per step");
}

#[test]
fn our_own_retry_after_a_lost_answer_still_runs_once() {
    let p = DevPlatform::start();
    p.set_faults(json!([{"method": "ExecuteTool", "kind": "drop_after", "times": 1}]));
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    counted(&p.url, "call-lost-answer", &counter, "true")
        .expect_status(0)
        .expect_ran(true)
        .expect_outcome("allowed")
        .run_checked();
    assert_eq!(runs(&counter), 1);
    // Two ExecuteTool requests (the lost one and the retry), one execution.
    assert_eq!(p.requests_for("ExecuteTool").len(), 2);
    assert_eq!(p.executions().len(), 1);
}

// ---- 3. Only a human approves ------------------------------------------------------------

/// A valid ExecuteTool body, as maestro-sh sends it, re-aimed at `step` and `command`.
fn execute_body(p: &DevPlatform, step: &str, command: &str) -> Value {
    let mut g =
        Gov::new(Some(&p.url), "governed", "true").env("MAESTRO_TOOL_CALL_ID", "call-template");
    assert_eq!(g.run().status.code(), Some(0));
    let mut body = p.requests_for("ExecuteTool")[0]["body"].clone();
    body["arguments"]["command"] = json!(command);
    body["linkage"]["stepId"] = json!(step);
    body["idempotencyKey"] = json!(format!("maestro:{step}"));
    body
}

#[test]
fn the_agent_credential_cannot_approve_and_no_answer_leaks_the_resume_token() {
    let (p, _policy) = approval_platform();
    let body = execute_body(&p, "call-self-approve", "echo approve-me && rm -rf /tmp/x");
    let (status, first) = p.call(EXECUTE, body.clone());
    assert_eq!(status, 200, "{first}");
    let exec = &first["execution"];
    assert_eq!(exec["state"], "TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    let exec_id = exec["id"].as_str().unwrap().to_string();
    let approval_id = exec["approvalWait"]["approvalRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = exec["approvalWait"]["resumeToken"]
        .as_str()
        .unwrap()
        .to_string();

    // No other answer carries the resume token: replay, Get, List.
    let (_, replay) = p.call(EXECUTE, body);
    assert_eq!(replay["idempotentReplay"], true);
    let (_, got) = p.call(GET, json!({"id": exec_id}));
    let (_, listed) = p.call(LIST, json!({}));
    for answer in [&replay, &got, &listed] {
        assert!(
            !answer.to_string().contains(&token),
            "resume token leaked: {answer}"
        );
        assert!(!answer.to_string().contains("resumeToken"), "{answer}");
    }

    // The agent's credential: no ResolveApproval, no ListPending, and a resume with the right
    // token is not an approval.
    let (status, e) = p.call(
        RESOLVE,
        json!({"approvalRequestId": approval_id, "decision": "DECISION_TYPE_APPROVED", "decidedBy": "reviewer@example.com"}),
    );
    assert_eq!(status, 403, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("reviewer credential"),
        "{e}"
    );
    let (status, _) = p.call(PENDING, json!({}));
    assert_eq!(status, 403);
    let resume = json!({"executionId": exec_id, "approvalRequestId": approval_id, "resumeToken": token, "approved": true, "decidedBy": "reviewer@example.com"});
    let (status, e) = p.call(RESUME, resume.clone());
    assert_eq!(status, 403, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not been approved by a reviewer"),
        "{e}"
    );
    let (_, got) = p.call(GET, json!({"id": exec_id}));
    assert_eq!(
        got["execution"]["state"],
        "TOOL_EXECUTION_STATE_WAITING_APPROVAL"
    );

    // A reviewer approves; `--by` is a label on the reviewer credential's decision.
    let (status, d) = p.call_as(
        REVIEWER_TOKEN,
        RESOLVE,
        json!({"approvalRequestId": approval_id, "decision": "DECISION_TYPE_APPROVED", "decidedBy": "alice"}),
    );
    assert_eq!(status, 200, "{d}");
    let (status, r) = p.call(RESUME, resume);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["execution"]["state"], "TOOL_EXECUTION_STATE_RUNNING");
    let t = p.timeline(json!({"toolExecutionId": exec_id}));
    let resolved: Vec<&Value> = t[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "dev.evalops.toolexecution.approval_resolved")
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["data"]["credential"], "reviewer");
    assert_eq!(resolved[0]["data"]["decidedBy"], "alice");
    // The reviewer credential cannot open executions.
    let (status, _) = p.call_as(REVIEWER_TOKEN, EXECUTE, json!({}));
    assert_eq!(status, 403);
    let _ = TOKEN;
}

// ---- 1. The token stays with maestro-sh --------------------------------------------------

/// What a hostile command tries from inside a governed run; one line per door that opened.
/// The control lines show the probe itself works on a dumpable process of the same user (the
/// probing shell, read from a subshell: an ancestor, so Yama's ptrace scope 1 allows it too).
fn probe(out: &Path) -> String {
    format!(
        r#"o={o}
env | grep -q '{t}' && echo env-has-token >>"$o"
env | grep -q MAESTRO_SH_CREDENTIALS_FILE && echo env-has-credentials-path >>"$o"
grep -qa '{t}' /proc/$PPID/environ 2>/dev/null && echo parent-environ-has-token >>"$o"
cat /proc/$PPID/environ >/dev/null 2>&1 && echo parent-environ-readable >>"$o"
( exec 3</proc/$PPID/mem ) 2>/dev/null && echo parent-mem-openable >>"$o"
( exec 3</proc/$$/mem ) 2>/dev/null && echo control-mem-openable >>"$o"
cat /proc/$$/environ >/dev/null 2>&1 && echo control-environ-readable >>"$o"
echo done >>"$o""#,
        o = out.display(),
        t = TOKEN
    )
}

/// A governed run of the probe as `nobody`, its report.
fn probe_as_nobody(p: &DevPlatform, with: impl FnOnce(Gov, &Path) -> Gov) -> String {
    let scratch = tempfile::tempdir().unwrap();
    chmod(scratch.path(), 0o777);
    let out = scratch.path().join("report");
    let g = Gov::new(Some(&p.url), "governed", &probe(&out));
    chmod(g.dir.path(), 0o777);
    let dir = g.dir.path().to_path_buf();
    let mut g = with(g, &dir).expect_status(0).expect_outcome("allowed");
    let run = run_as_nobody(Path::new(env!("CARGO_BIN_EXE_maestro-sh")), &mut g);
    g.check(&run);
    std::fs::read_to_string(&out).unwrap_or_default()
}

#[test]
fn control_the_probe_opens_the_doors_of_an_ordinary_parent() {
    if !am_root() {
        eprintln!("skipped: needs root to run the command as another user (nobody)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    chmod(scratch.path(), 0o777);
    let out = scratch.path().join("report");
    // The same probe under a plain bash parent holding the token in its environment.
    let mut cmd = std::process::Command::new("/bin/bash");
    cmd.args(["-c", "/bin/bash -c \"$PROBE\"; true"])
        .env_clear()
        .env("PROBE", probe(&out))
        .env("PATH", "/usr/bin:/bin")
        .env("EVALOPS_TOKEN", TOKEN);
    let status = as_nobody_via_exec(&mut cmd).status().unwrap();
    assert!(status.success());
    let report = std::fs::read_to_string(&out).unwrap();
    for door in [
        "env-has-token",
        "parent-environ-has-token",
        "parent-environ-readable",
        "parent-mem-openable",
    ] {
        assert!(report.contains(door), "{door} not in {report}");
    }
}

const CLEAN_REPORT: &str = "control-mem-openable\ncontrol-environ-readable\ndone\n";

#[test]
fn the_token_in_the_environment_is_not_visible_to_the_command() {
    if !am_root() {
        eprintln!("skipped: needs root to run the command as another user (nobody)");
        return;
    }
    let p = DevPlatform::start();
    let report = probe_as_nobody(&p, |g, _| {
        // Every alias Maestro's clients read, and our own grant (a read-only probe would be
        // observed; this one is governed because it writes).
        g.env("MAESTRO_PLATFORM_ACCESS_TOKEN", TOKEN)
            .env("EVALOPS_TOKEN", TOKEN)
    });
    assert_eq!(report, CLEAN_REPORT);
}

#[test]
fn the_credentials_file_path_is_not_passed_to_the_command() {
    if !am_root() {
        eprintln!("skipped: needs root to run the command as another user (nobody)");
        return;
    }
    let p = DevPlatform::start();
    let report = probe_as_nobody(&p, |g, dir| {
        let creds = dir.join("credentials");
        std::fs::write(&creds, format!("{TOKEN}\n")).unwrap();
        chmod(&creds, 0o600);
        std::os::unix::fs::chown(&creds, Some(NOBODY), Some(NOBODY)).unwrap();
        g.env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
            .env("MAESTRO_SH_CREDENTIALS_FILE", &creds)
    });
    assert_eq!(report, CLEAN_REPORT);
}

// ---- 6. Transport --------------------------------------------------------------------------

/// An address of this machine that is not loopback, if it has one (the outbound interface).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_connection() {
    // A listener on a non-loopback address of this machine counts connection attempts; where
    // there is none, TEST-NET-1 (never routed) stands in.
    let listener = non_loopback_ip().and_then(|ip| std::net::TcpListener::bind((ip, 0)).ok());
    let url = match &listener {
        Some(l) => format!("http://{}", l.local_addr().unwrap()),
        None => "http://192.0.2.1:9".to_string(),
    };
    if let Some(l) = &listener {
        l.set_nonblocking(true).unwrap();
    }
    let started = Instant::now();
    Gov::marked(Some(&url), "governed", "true")
        .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "20000")
        .expect_refused("misconfigured")
        .expect_stderr_lines(1)
        .expect_stderr_contains("TOOL_EXECUTION_SERVICE_URL=")
        .expect_stderr_contains("MAESTRO_SH_ALLOW_INSECURE_HTTP=1")
        .run_checked();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it tried to connect"
    );
    if let Some(l) = &listener {
        assert!(l.accept().is_err(), "a connection was made");
        // With the lab opt-in it does connect (so the listener would have seen the refused one).
        Gov::marked(Some(&url), "governed", "true")
            .env("MAESTRO_SH_ALLOW_INSECURE_HTTP", "1")
            .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "300")
            .env("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1")
            .expect_refused("platform_unavailable")
            .expect_stderr_lines(1)
            .run_checked();
        l.set_nonblocking(false).unwrap();
        assert!(l.accept().is_ok(), "the opted-in attempt did not connect");
    }
}

/// A one-shot HTTP server answering every request with `status` and an allowing body; returns
/// its URL and the number of requests it saw.
fn redirecting_server(
    status: u16,
    location: &str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let location = location.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            count.fetch_add(1, Ordering::SeqCst);
            let answer =
                r#"{"execution":{"id":"te_redirected","state":"TOOL_EXECUTION_STATE_RUNNING"}}"#;
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn a_redirect_with_an_allowing_body_is_a_refusal_and_is_not_followed() {
    for status in [307u16, 302, 301, 308] {
        let (target, target_seen) = redirecting_server(200, "/");
        let (url, seen) = redirecting_server(
            status,
            &format!("{target}/toolexecution.v1.ToolExecutionService/ExecuteTool"),
        );
        Gov::marked(Some(&url), "governed", "true")
            .case(format!("HTTP {status}"))
            .expect_refused("platform_malformed")
            .expect_stderr_lines(1)
            .expect_stderr_contains(format!("HTTP {status}"))
            .expect_stderr_contains("redirects are not followed")
            .run_checked();
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(target_seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}

/// A test CA and a server certificate it signed for localhost / 127.0.0.1.
struct TestPki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

use std::sync::Arc;

fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "maestro-sh test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "platform.test".to_string(),
    ])
    .unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// Read one HTTP/1.1 request (head and Content-Length body) from `s`; None at EOF.
/// Path, headers, body.
type Request = (String, Vec<(String, String)>, Vec<u8>);

fn read_request(s: &mut impl std::io::Read) -> Option<Request> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

/// An https front for the local Platform: TLS with `pki`'s certificate, each request passed to
/// `backend` over plain http. Its URL.
fn tls_front(pki: &TestPki, backend: &str) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let config = pki.server.clone();
    let backend = backend.to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            let backend = backend.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                while let Some((path, headers, body)) = read_request(&mut tls) {
                    // Through a proxy the request line carries the absolute URL.
                    let path = match path.split_once("://") {
                        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
                        None => path,
                    };
                    let mut req = ureq::post(&format!("{backend}{path}"));
                    for (k, v) in &headers {
                        if ["authorization", "x-organization-id", "content-type"]
                            .contains(&k.to_ascii_lowercase().as_str())
                        {
                            req = req.set(k, v);
                        }
                    }
                    let (status, text) = match req.send_bytes(&body) {
                        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
                        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
                        Err(_) => (502, String::new()),
                    };
                    let _ = write!(
                        tls,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = tls.flush();
                }
            });
        }
    });
    url
}

#[test]
fn https_with_a_private_ca_is_accepted_and_an_unknown_ca_refused() {
    let p = DevPlatform::start();
    let pki = test_pki();
    let url = tls_front(&pki, &p.url);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, test_pki().ca_pem).unwrap();

    for var in ["MAESTRO_SH_CA_FILE", "SSL_CERT_FILE"] {
        Gov::marked(Some(&url), "governed", "true")
            .env(var, &ca)
            .case(var)
            .expect_status(0)
            .expect_ran(true)
            .expect_outcome("allowed")
            .run_checked();
    }
    // Built-in roots only, or another CA: the certificate is not trusted; nothing runs.
    for ca in [None, Some(&other_ca)] {
        let mut g = Gov::marked(Some(&url), "governed", "true")
            .env("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1")
            .case(format!("CA file {ca:?}"))
            .expect_refused("platform_unavailable")
            .expect_stderr_lines(1)
            .expect_stderr_contains("invalid peer certificate");
        if let Some(ca) = ca {
            g = g.env("MAESTRO_SH_CA_FILE", ca);
        }
        g.run_checked();
    }
    // A CA file that is not PEM: misconfigured, said before any connection.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    Gov::marked(Some(&url), "governed", "true")
        .env("MAESTRO_SH_CA_FILE", &junk)
        .expect_refused("misconfigured")
        .expect_stderr_lines(1)
        .expect_stderr_contains("junk.pem")
        .run_checked();
    assert_eq!(p.executions().len(), 2);
}

// ---- 2. Protected install mode ---------------------------------------------------------------

#[test]
fn protected_mode_the_command_cannot_read_the_configuration_or_the_token() {
    if !am_root() {
        eprintln!("skipped: needs root to install setgid and run as another user (nobody)");
        return;
    }
    let p = DevPlatform::start();
    let config = json!({"url": p.url, "token": TOKEN, "organization_id": crate::support::platform::ORG,
        "workspace_id": crate::support::platform::WORKSPACE, "allow_insecure_http": true});
    let (_prefix, sh, cfg) = protected_install(&config);
    // An agent that points maestro-sh at its own listener gets nothing: the URL and tenant come
    // from the protected file, and no token is in the environment at all.
    let (decoy, decoy_seen) = redirecting_server(200, "/");
    let scratch = tempfile::tempdir().unwrap();
    chmod(scratch.path(), 0o777);
    let out = scratch.path().join("report");
    let probe = format!(
        "{}\ncat '{}' >/dev/null 2>&1 && echo config-readable >>'{}'\n[ -r '{}' ] && echo config-r >>'{}'\ntrue",
        probe(&out),
        cfg.display(),
        out.display(),
        cfg.display(),
        out.display()
    );
    let mut g = Gov::new(Some(&decoy), "governed", &probe)
        .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
        .env("TMPDIR", "/tmp/kept-for-the-command")
        .env("MAESTRO_TOOL_CALL_ID", "call-protected")
        .expect_status(0)
        .expect_outcome("allowed");
    let run = run_as_nobody(&sh, &mut g);
    g.check(&run);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), CLEAN_REPORT);
    assert_eq!(decoy_seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(p.timeline(json!({"stepId": "call-protected"})).len(), 1);

    // The C library drops TMPDIR & co. from a setgid process's environment; the command still
    // gets them (transparency), and the group is gone before the shell starts.
    let mut cmd = std::process::Command::new(&sh);
    cmd.args(["-c", "echo \"$TMPDIR $LD_LIBRARY_PATH\"; id -g; id -G"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", "/tmp/kept")
        .env("LD_LIBRARY_PATH", "/opt/kept")
        .env("MAESTRO_SH_MODE", "off");
    let run = as_nobody_via_exec(&mut cmd).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "/tmp/kept /opt/kept\n65534\n65534\n"
    );

    // --doctor says the token is protected.
    let mut cmd = std::process::Command::new(&sh);
    cmd.arg("--doctor")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MAESTRO_SH_MODE", "governed");
    let run = as_nobody_via_exec(&mut cmd).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("token custody: protected"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[test]
fn protected_mode_an_unreadable_configuration_fails_closed() {
    if !am_root() {
        eprintln!("skipped: needs root to install setgid and run as another user (nobody)");
        return;
    }
    let p = DevPlatform::start();
    let (_prefix, sh, cfg) = protected_install(&json!({"url": p.url}));
    std::fs::remove_file(&cfg).unwrap();
    let mut g = Gov::marked(Some(&p.url), "governed", "true")
        .expect_refused("misconfigured")
        .expect_stderr_lines(1)
        .expect_stderr_contains("platform.json");
    let run = run_as_nobody(&sh, &mut g);
    g.check(&run);
    assert_eq!(p.executions().len(), 0);
}

#[test]
fn doctor_says_an_environment_token_is_only_hidden() {
    let p = DevPlatform::start();
    let mut g = Gov::new(Some(&p.url), "governed", "true");
    let mut cmd = std::process::Command::new(g.command().get_program());
    cmd.arg("--doctor").env_clear();
    for (k, v) in g.command().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("token custody: hidden only"), "{text}");
    assert!(text.contains("maestro-sh is non-dumpable"), "{text}");
}

#[test]
fn install_sh_protect_sets_up_the_group_the_modes_and_says_so() {
    use std::os::unix::fs::MetadataExt;
    if !am_root() {
        eprintln!("skipped: install.sh --protect needs root");
        return;
    }
    let p = DevPlatform::start();
    let prefix = tempfile::tempdir().unwrap();
    chmod(prefix.path(), 0o755);
    let cfg = prefix.path().join("given.json");
    std::fs::write(
        &cfg,
        json!({"url": p.url, "token": TOKEN, "organization_id": crate::support::platform::ORG,
               "allow_insecure_http": true})
        .to_string(),
    )
    .unwrap();
    let dist = Path::new(env!("CARGO_BIN_EXE_maestro-sh"))
        .parent()
        .unwrap();
    let install = |args: &[&str]| {
        std::process::Command::new("sh")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
            .args(args)
            .arg("--prefix")
            .arg(prefix.path())
            .env("MAESTRO_SH_DIST", dist)
            .output()
            .unwrap()
    };
    let out = install(&[
        "--protect",
        "--group",
        "4242",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", stderr(&out));
    assert!(said.contains("setgid 4242 (mode 2755)"), "{said}");
    let sh = prefix.path().join("bin/maestro-sh");
    let conf = prefix.path().join("etc/maestro-sh/platform.json");
    let (m, c) = (
        std::fs::metadata(&sh).unwrap(),
        std::fs::metadata(&conf).unwrap(),
    );
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o2755, 0, 4242));
    assert_eq!((c.mode() & 0o777, c.uid(), c.gid()), (0o640, 0, 4242));
    // As the user: the file is unreadable, and --doctor says the token is protected.
    let mut doctor = std::process::Command::new(&sh);
    doctor
        .arg("--doctor")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MAESTRO_SH_MODE", "governed");
    let run = as_nobody_via_exec(&mut doctor).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("token custody: protected"), "{text}");
    assert!(
        text.contains("reachable and the token is accepted"),
        "{text}"
    );
    let mut cat = std::process::Command::new("cat");
    cat.arg(&conf);
    assert!(!as_nobody_via_exec(&mut cat).status().unwrap().success());
    // Uninstall removes what it installed, the protected file included.
    let out = install(&["--uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!sh.exists() && !conf.exists());
}

// ---- 4. Grants a command cannot mint -------------------------------------------------------

/// A grant forger, as an agent would write one: `python3 forge.py KEYFILE STEP PID`.
const FORGE_PY: &str = r#"import hashlib, hmac, sys
key = open(sys.argv[1], "rb").read()
step, pid = sys.argv[2], sys.argv[3]
start = open("/proc/%s/stat" % pid).read().rsplit(") ", 1)[1].split()[19]
msg = ("v1\0%s\0%s\0%s" % (step, pid, start)).encode()
print("v1.%s.%s.%s" % (pid, start, hmac.new(key, msg, hashlib.sha256).hexdigest()))
"#;

/// The real per-user grant key (created by a governed run if need be).
fn real_key_path(p: &DevPlatform) -> std::path::PathBuf {
    let home = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .dir;
    let mut g = Gov::new(Some(&p.url), "governed", "true");
    assert_eq!(g.run().status.code(), Some(0));
    home.join(".local/share/maestro-sh/grant.key")
}

fn executions_for(p: &DevPlatform, step: &str) -> usize {
    p.requests_for("ExecuteTool")
        .iter()
        .filter(|r| r["body"]["linkage"]["stepId"] == step)
        .count()
}

/// A governed outer step whose command runs `inner` with the shims first on PATH.
fn outer(p: &DevPlatform, step: &str, inner: &str, forge: &Path) -> Gov {
    let shims = crate::support::shell::shim_dir().display().to_string();
    let g = Gov::new(Some(&p.url), "governed", inner)
        .env("PATH", format!("{shims}:/usr/bin:/bin"))
        .env("MAESTRO_TOOL_CALL_ID", step)
        .env("FORGE", forge);
    // A nested shell governed anew finds the token where Maestro's shells must: the default
    // private credentials file (the command's environment has none).
    let creds = g.dir.path().join(".config/maestro-sh/credentials");
    std::fs::create_dir_all(creds.parent().unwrap()).unwrap();
    std::fs::write(&creds, TOKEN).unwrap();
    chmod(&creds, 0o600);
    g
}

#[test]
fn forged_grants_are_governed_anew() {
    if python3_missing() {
        return;
    }
    let p = DevPlatform::start();
    let tools = tempfile::tempdir().unwrap();
    let forge = tools.path().join("forge.py");
    std::fs::write(&forge, FORGE_PY).unwrap();
    let key = real_key_path(&p);

    // Control: the forger is right. With the real key, naming the live supervisor, for the
    // same step, the nested shell passes through (the documented limit, SECURITY.md).
    let mut g = outer(
        &p,
        "call-grant-control",
        &format!("g=$(python3 \"$FORGE\" {} call-grant-control $PPID) && MAESTRO_SH_GRANT=$g bash -c 'touch \"$MARKER\"'", key.display()),
        &forge,
    );
    assert_eq!(g.run().status.code(), Some(0));
    assert!(g.ran());
    assert_eq!(executions_for(&p, "call-grant-control"), 1);

    // 1. Wrong step: the supervisor's real grant, another tool call id.
    let mut g = outer(
        &p,
        "call-grant-1",
        "MAESTRO_TOOL_CALL_ID=call-grant-1b bash -c 'touch \"$MARKER\"'",
        &forge,
    );
    let out = g.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(executions_for(&p, "call-grant-1b"), 1);

    // 2. An ancestor that is not maestro-sh (this test process), with the real key.
    let me = std::process::id();
    let out = std::process::Command::new("python3")
        .arg(&forge)
        .arg(&key)
        .arg("call-grant-2")
        .arg(me.to_string())
        .output()
        .unwrap();
    let forged = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(forged.starts_with(&format!("v1.{me}.")), "{forged}");
    let mut g = Gov::marked(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-grant-2")
        .env("MAESTRO_SH_GRANT", &forged);
    assert_eq!(g.run().status.code(), Some(0));
    assert_eq!(executions_for(&p, "call-grant-2"), 1);

    // 3. A key of its own via MAESTRO_SH_DATA_DIR, naming the live supervisor, new step.
    let mut g = outer(
        &p,
        "call-grant-3",
        "own=$(mktemp -d) && head -c 32 /dev/urandom > $own/grant.key && chmod 600 $own/grant.key && \
         g=$(python3 \"$FORGE\" $own/grant.key call-grant-3b $PPID) && \
         MAESTRO_SH_DATA_DIR=$own MAESTRO_TOOL_CALL_ID=call-grant-3b MAESTRO_SH_GRANT=$g bash -c 'touch \"$MARKER\"'",
        &forge,
    );
    let out = g.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(executions_for(&p, "call-grant-3b"), 1);

    // 4. A real grant copied out, used after its supervisor exited (same step: a replay).
    let saved = tools.path().join("grant");
    let copy_out = format!("printf %s \"$MAESTRO_SH_GRANT\" > {}", saved.display());
    let mut g = Gov::marked(Some(&p.url), "governed", &copy_out)
        .env("MAESTRO_TOOL_CALL_ID", "call-grant-4");
    assert_eq!(g.run().status.code(), Some(0));
    let copied = std::fs::read_to_string(&saved).unwrap();
    assert!(copied.starts_with("v1."), "{copied}");
    Gov::marked(Some(&p.url), "governed", &copy_out)
        .env("MAESTRO_TOOL_CALL_ID", "call-grant-4")
        .env("MAESTRO_SH_GRANT", &copied)
        .expect_refused("already_ran")
        .expect_stderr_lines(1)
        .run_checked();
    assert_eq!(executions_for(&p, "call-grant-4"), 2);

    // 5. An observed (read-only) step hands out no grant at all.
    let dir = tempfile::tempdir().unwrap();
    let flags = crate::support::platform::flags_file(
        dir.path(),
        &["maestro.platform_runtime.tool_execution_bridge"],
    );
    let mut g = Gov::new(Some(&p.url), "governed", "env")
        .env_remove("MAESTRO_SH_MODE")
        .env("EVALOPS_FEATURE_FLAGS_PATH", &flags)
        .env("MAESTRO_TOOL_CALL_ID", "call-grant-5")
        .env("MAESTRO_SH_GRANT", &copied);
    let out = g.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(g.completed()["governed_outcome"], "observed");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("MAESTRO_SH_GRANT"));
}

fn python3_missing() -> bool {
    let missing = std::process::Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true);
    if missing {
        eprintln!("skipped: the grant forger needs python3");
    }
    missing
}

/// A CONNECT proxy that tunnels every request to `target` (whatever host it is asked for);
/// its URL and the CONNECT lines it received.
fn connect_proxy(target: std::net::SocketAddr) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let Some((target_line, _, _)) = read_request(&mut client) else {
                continue;
            };
            log.lock().unwrap().push(target_line);
            let Ok(upstream) = std::net::TcpStream::connect(target) else {
                continue;
            };
            let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c1, mut u1) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u1, &mut c1);
                let _ = c1.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (url, seen)
}

#[test]
fn https_goes_through_https_proxy_unless_no_proxy_names_the_host() {
    let p = DevPlatform::start();
    let pki = test_pki();
    let front = tls_front(&pki, &p.url);
    let port: u16 = front.rsplit(':').next().unwrap().parse().unwrap();
    let (proxy, seen) = connect_proxy(([127, 0, 0, 1], port).into());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // platform.test does not resolve: only the proxy can reach it.
    let url = "https://platform.test:443";
    Gov::marked(Some(url), "governed", "true")
        .env("MAESTRO_SH_CA_FILE", &ca)
        .env("HTTPS_PROXY", &proxy)
        .expect_status(0)
        .expect_ran(true)
        .run_checked();
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l == "platform.test:443"),
        "{:?}",
        seen.lock().unwrap()
    );
    let before = seen.lock().unwrap().len();
    Gov::marked(Some(url), "governed", "true")
        .env("MAESTRO_SH_CA_FILE", &ca)
        .env("https_proxy", &proxy)
        .env("NO_PROXY", "example.com,.test")
        .env("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1")
        .expect_refused("platform_unavailable")
        .expect_stderr_lines(1)
        .run_checked();
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "NO_PROXY was not honoured"
    );
}
