//! Human approval against a real local Platform: the pending event, resolution by a second
//! process, resume, run once, record; denial, timeout, Platform down mid-wait, bad answers,
//! decisions from Maestro's UI, cancellation by signal and by process-group kill.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::approval::{
    approval_hit, approval_platform, approval_platform_with, files_under, review,
};
use crate::support::platform::{stderr, DevPlatform, Gov};

/// A governed run of a command that needs approval; it touches the marker only if it runs.
fn waiting(p: &DevPlatform, step: &str) -> Gov {
    Gov::new(
        Some(&p.url),
        "governed",
        "echo approve-me; touch \"$MARKER\"",
    )
    .env("MAESTRO_TOOL_CALL_ID", step)
    .env("MAESTRO_SESSION_ID", "sess-approval")
    .env("MAESTRO_AGENT_RUN_ID", "run-approval")
    .env("MAESTRO_SH_HEARTBEAT_MS", "200")
    // These tests read the wait's status lines, shown off a terminal only when asked.
    .env("MAESTRO_SH_STATUS", "always")
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

/// The resume token Platform handed out, as maestro-sh sent it back.
fn resume_tokens(p: &DevPlatform) -> Vec<String> {
    p.requests_for("ResumeToolExecution")
        .iter()
        .filter_map(|r| r["body"]["resumeToken"].as_str().map(str::to_string))
        .collect()
}

/// Nothing maestro-sh wrote anywhere contains `secret`.
fn assert_never_shown(g: &Gov, out: &Output, secret: &str) {
    assert!(!secret.is_empty());
    let mut texts = vec![
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(out),
    ];
    texts.extend(files_under(g.dir.path()).into_iter().map(|(_, text)| text));
    for t in texts {
        assert!(!t.contains(secret), "resume token leaked into {t}");
    }
}

fn states_of(p: &DevPlatform, exec_id: &str) -> Vec<String> {
    let entries = p.timeline(json!({"toolExecutionId": exec_id}));
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["to"].as_str())
        .map(|s| s.trim_start_matches("TOOL_EXECUTION_STATE_").to_string())
        .collect()
}

fn execution(p: &DevPlatform, exec_id: &str) -> Value {
    p.executions()
        .into_iter()
        .find(|e| e["id"] == exec_id)
        .unwrap_or_else(|| panic!("no execution {exec_id}"))
}

#[test]
fn approved_by_a_second_process_runs_once_and_joins_on_ids() {
    let (p, _policy) = approval_platform();
    let mut g = waiting(&p, "call-approve-1")
        .expect_status(0)
        .expect_stdout("approve-me\n")
        .expect_ran(true)
        .expect_stderr_contains("maestro-sh: waiting for approval")
        .expect_stderr_contains("approval granted by alice")
        .expect_outcome("approved");
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let exec_id = hit["tool_execution_id"].as_str().unwrap().to_string();
    let approval_id = hit["approval_request_id"].as_str().unwrap().to_string();
    assert_eq!(hit["tool_call_id"], "call-approve-1");
    assert_eq!(hit["reason"], "needs a human");
    assert!(hit["expires_at"].is_string(), "{hit}");
    // Maestro's ApprovalHit shape, with the sanitized command and never a resume token.
    assert_eq!(
        hit["decision_mode"],
        "MAESTRO_DECISION_MODE_REQUIRE_APPROVAL"
    );
    assert_eq!(hit["command"], "echo approve-me; touch \"$MARKER\"");
    assert_eq!(hit["context"]["args"]["command"], hit["command"]);
    assert_eq!(hit["context"]["tool_name"], "bash");
    assert!(
        hit["action"].as_str().unwrap().starts_with("Running "),
        "{hit}"
    );
    assert!(hit["occurred_at"].is_string(), "{hit}");
    assert!(!g.ran(), "ran before the approval");
    // Visible to Maestro's approval UI and to a person listing pending requests.
    assert!(p.pending().iter().any(|r| r["id"] == approval_id.as_str()));

    std::thread::sleep(Duration::from_millis(500)); // let a heartbeat or two go by
    review(&p, "approve", &approval_id, "alice", "looks fine");
    let out = finish(child);
    g.check(&out);

    let done = g.completed();
    assert_eq!(done["tool_execution_id"], exec_id.as_str());
    assert_eq!(done["approval_request_id"], approval_id.as_str());
    assert_eq!(done["exit_status"], 0);
    let kinds: Vec<String> = g
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.iter().any(|k| k.ends_with("heartbeat")),
        "no heartbeat while waiting: {kinds:?}"
    );

    // One execution; the resume carried the token; Platform shows the whole story.
    assert_eq!(p.executions().len(), 1);
    let resumes = p.requests_for("ResumeToolExecution");
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0]["body"]["approved"], true);
    assert_eq!(resumes[0]["body"]["executionId"], exec_id.as_str());
    assert_eq!(resumes[0]["body"]["decidedBy"], "alice");
    assert_eq!(
        states_of(&p, &exec_id),
        [
            "ACCEPTED",
            "POLICY_EVALUATING",
            "WAITING_APPROVAL",
            "RUNNING",
            "SUCCEEDED"
        ]
    );
    let e = execution(&p, &exec_id);
    assert_eq!(e["output"]["safeOutput"]["exit_status"], 0);
    assert_eq!(e["linkage"]["stepId"], "call-approve-1");

    let tokens = resume_tokens(&p);
    assert_never_shown(&g, &out, &tokens[0]);
}

#[test]
fn denied_by_a_person_does_not_run() {
    let (p, _policy) = approval_platform();
    let mut g = waiting(&p, "call-deny-1")
        .expect_refused("denied")
        .expect_stderr_contains("maestro-sh: denied: approval denied by bob: not on main");
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let approval_id = hit["approval_request_id"].as_str().unwrap();
    review(&p, "deny", approval_id, "bob", "not on main");
    let out = finish(child);
    g.check(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("approval_request_id={approval_id}")),
        "{err}"
    );
    let done = g.completed();
    assert_eq!(done["approval_request_id"], approval_id);
    let exec_id = hit["tool_execution_id"].as_str().unwrap();
    assert_eq!(
        execution(&p, exec_id)["state"],
        "TOOL_EXECUTION_STATE_DENIED"
    );
}

#[test]
fn no_decision_in_time_is_an_approval_timeout() {
    let (p, _policy) = approval_platform();
    // No session: no retry could pick the request up (process.rs has the case with one).
    let mut g = waiting(&p, "call-timeout-1")
        .env_remove("MAESTRO_SESSION_ID")
        .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "800")
        .expect_refused("approval_timeout")
        .expect_stderr_contains("MAESTRO_SH_APPROVAL_TIMEOUT_MS");
    g.run_checked();
    let done = g.completed();
    // Platform was told we gave up: nothing left waiting, and a late approval cannot run it.
    let exec_id = done["tool_execution_id"].as_str().unwrap();
    assert_ne!(
        execution(&p, exec_id)["state"],
        "TOOL_EXECUTION_STATE_WAITING_APPROVAL"
    );
    assert!(p.pending().is_empty(), "{:?}", p.pending());
}

#[test]
fn expiry_on_platform_is_an_approval_timeout() {
    let (p, _policy) = approval_platform_with(&["--approval-ttl-ms", "600"]);
    waiting(&p, "call-expire-1")
        .expect_refused("approval_timeout")
        .expect_stderr_contains("expired")
        .run_checked();
}

#[test]
fn bad_approval_timeout_variable_is_misconfigured() {
    let (p, _policy) = approval_platform();
    for bad in ["soon", "0", "-5", "99999999999"] {
        waiting(&p, &format!("call-badtimeout-{bad}"))
            .env("MAESTRO_SH_APPROVAL_TIMEOUT_MS", bad)
            .case(bad)
            .expect_refused("misconfigured")
            .expect_stderr_contains("MAESTRO_SH_APPROVAL_TIMEOUT_MS")
            .run_checked();
    }
}

#[test]
fn platform_down_mid_wait_then_back_resumes_and_runs_once() {
    let (p, _policy) = approval_platform();
    let mut g = waiting(&p, "call-flaky-1")
        .expect_status(0)
        .expect_ran(true)
        .expect_stderr_contains("Platform unreachable, still waiting")
        .expect_outcome("approved");
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let approval_id = hit["approval_request_id"].as_str().unwrap().to_string();
    p.set_faults(json!([
        {"method": "GetApproval", "kind": "status", "status": 503},
        {"method": "GetToolExecution", "kind": "drop"},
    ]));
    // ResolveApproval itself is not faulted: a person approves while the shim cannot see it.
    review(&p, "approve", &approval_id, "carol", "");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!g.ran(), "ran while Platform was unreachable");
    p.set_faults(json!([]));
    g.check(&finish(child));
    assert_eq!(p.executions().len(), 1);
    assert_eq!(p.requests_for("ResumeToolExecution").len(), 1);
}

#[test]
fn wrong_answers_during_the_wait_refuse() {
    // (name, faults set after the approval is pending, approve first?)
    let cases = [
        (
            "GetToolExecution about another execution",
            json!([{"method": "GetToolExecution", "kind": "wrong_id"}]),
            false,
        ),
        (
            "ResumeToolExecution about another execution",
            json!([{"method": "ResumeToolExecution", "kind": "wrong_id"}]),
            true,
        ),
        (
            "ResumeToolExecution in an unknown state",
            json!([{"method": "ResumeToolExecution", "kind": "unknown_state"}]),
            true,
        ),
        (
            "ResumeToolExecution malformed",
            json!([{"method": "ResumeToolExecution", "kind": "malformed"}]),
            true,
        ),
    ];
    for (name, faults, approve) in cases {
        let (p, _policy) = approval_platform();
        let mut g = waiting(&p, "call-wrong-1")
            .case(name)
            .expect_refused("platform_malformed");
        let mut child = g.spawn();
        let hit = approval_hit(&g, &mut child);
        p.set_faults(faults);
        if approve {
            review(
                &p,
                "approve",
                hit["approval_request_id"].as_str().unwrap(),
                "dave",
                "",
            );
        }
        g.check(&finish(child));
    }
}

#[test]
fn waiting_answer_without_resume_token_or_approval_id_refuses() {
    for kind in ["no_resume_token", "missing_id"] {
        let (p, _policy) = approval_platform();
        p.set_faults(json!([{"method": "ExecuteTool", "kind": kind}]));
        waiting(&p, "call-notoken-1")
            .case(kind)
            .expect_refused("platform_malformed")
            .run_checked();
    }
}

#[test]
fn decision_from_maestro_ui_on_the_decisions_fd() {
    // Maestro's UI is the human here: a deployment that trusts the agent's approvals.
    let (p, _policy) = approval_platform_with(&["--trust-agent-approvals"]);
    let mut g = waiting(&p, "call-ui-1")
        .env("MAESTRO_SH_DECISIONS_FD", "3")
        .env("MAESTRO_ACTOR_ID", "user-erin")
        .expect_status(0)
        .expect_ran(true)
        .expect_outcome("approved");
    let write = g.decisions_pipe(3);
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let mut w = std::fs::File::from(write);
    // Bad lines are reported and ignored, never taken as approval.
    writeln!(w, "yes please").unwrap();
    writeln!(w, r#"{{"approved": "true"}}"#).unwrap();
    writeln!(
        w,
        r#"{{"approved": true, "approval_request_id": "apr_someone_else"}}"#
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(!g.ran(), "a malformed decision line was taken as approval");
    writeln!(w, r#"{{"approved": true, "reason": "ok from the UI"}}"#).unwrap();
    let out = finish(child);
    g.check(&out);
    let err = stderr(&out);
    assert_eq!(
        err.matches("ignored a decision line on MAESTRO_SH_DECISIONS_FD")
            .count(),
        3,
        "{err}"
    );
    let resumes = p.requests_for("ResumeToolExecution");
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0]["body"]["approved"], true);
    assert_eq!(resumes[0]["body"]["decidedBy"], "user-erin");
    assert_eq!(resumes[0]["body"]["reason"], "ok from the UI");
    assert_eq!(
        resumes[0]["body"]["approvalRequestId"],
        hit["approval_request_id"]
    );
}

#[test]
fn denial_from_maestro_ui_on_the_decisions_fd() {
    let (p, _policy) = approval_platform();
    let mut g = waiting(&p, "call-ui-2")
        .env("MAESTRO_SH_DECISIONS_FD", "3")
        .expect_refused("denied");
    let write = g.decisions_pipe(3);
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let mut w = std::fs::File::from(write);
    writeln!(
        w,
        r#"{{"approved": false, "decided_by": "frank", "reason": "no"}}"#
    )
    .unwrap();
    g.check(&finish(child));
    let exec_id = hit["tool_execution_id"].as_str().unwrap();
    assert_eq!(
        execution(&p, exec_id)["state"],
        "TOOL_EXECUTION_STATE_DENIED"
    );
}

#[test]
fn bad_decisions_fd_variable_still_waits_for_platform() {
    let (p, _policy) = approval_platform();
    let mut g = waiting(&p, "call-ui-3")
        .env("MAESTRO_SH_DECISIONS_FD", "banana")
        .expect_status(0)
        .expect_stderr_contains("MAESTRO_SH_DECISIONS_FD")
        .expect_ran(true);
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    review(
        &p,
        "approve",
        hit["approval_request_id"].as_str().unwrap(),
        "gina",
        "",
    );
    g.check(&finish(child));
}

#[test]
fn a_signal_while_waiting_cancels_and_dies_by_it() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let (p, _policy) = approval_platform();
        let mut g = waiting(&p, &format!("call-cancel-{sig}"))
            .case(format!("signal {sig}"))
            .expect_signal(sig)
            .expect_ran(false)
            .expect_stderr_contains("maestro-sh: cancelled: ")
            .expect_outcome("cancelled");
        let mut child = g.spawn();
        let hit = approval_hit(&g, &mut child);
        unsafe { libc::kill(child.id() as i32, sig) };
        g.check(&finish(child));
        assert_eq!(
            g.completed()["approval_request_id"],
            hit["approval_request_id"]
        );
        // Platform shows the request abandoned, and a late approval cannot make it run.
        let exec_id = hit["tool_execution_id"].as_str().unwrap();
        assert_eq!(
            execution(&p, exec_id)["state"],
            "TOOL_EXECUTION_STATE_CANCELLED"
        );
        assert!(p.pending().is_empty());
    }
}

#[test]
fn process_group_kill_while_waiting_leaves_nothing_and_runs_nothing() {
    let (p, _policy) = approval_platform();
    // A short adoption window: the guardian, which resumes on the approval, then closes the
    // unadopted execution soon (process::…nobody_adopts…) instead of lingering after the test.
    let mut g = waiting(&p, "call-pgkill-1").env("MAESTRO_SH_ADOPT_WINDOW_MS", "1000");
    g.command().process_group(0);
    let mut child = g.spawn();
    let hit = approval_hit(&g, &mut child);
    let pgid = child.id() as i32;
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    let out = finish(child);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(crate::passthrough::processes_in_group(pgid).is_empty());
    // The request stays open for the agent's retry to adopt (process::…adopts…); approving
    // it with no retry runs nothing: the shim that held the command is gone.
    let id = hit["approval_request_id"].as_str().unwrap();
    assert!(p.pending().iter().any(|r| r["id"] == id));
    review(&p, "approve", id, "hank", "");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!g.ran());
}
