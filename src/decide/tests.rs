//! Deciding against a scripted Platform: what comes back, which calls were made, and the typed
//! events the decision and the approval wait produce. No process, no network.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::env::MapEnv;
use crate::platform::Answer;

/// One wait at a time: the wait installs process-wide cancel handlers.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const TOKEN: &str = "rt_secret_resume_token";

/// A Platform holding one execution: `te_1`, waiting for approval `apr_1` until a reviewer
/// decides (`approval` becomes APPROVED/DENIED after `decide_after` GetApproval calls) or the
/// execution is resumed.
struct Scripted {
    first_state: &'static str,
    replay: bool,
    /// `APPROVAL_STATE_*` reported once `decide_after` GetApproval calls were made.
    verdict: Option<&'static str>,
    decide_after: usize,
    /// Someone else resumes the execution after this many GetToolExecution calls.
    runs_after: Option<usize>,
    calls: Mutex<Calls>,
}

#[derive(Default)]
struct Calls {
    get_approval: usize,
    get_execution: usize,
    resumes: Vec<wire::ResumeToolExecutionRequest>,
    state: Option<&'static str>,
}

impl Scripted {
    fn new(first_state: &'static str) -> Scripted {
        Scripted {
            first_state,
            replay: false,
            verdict: None,
            decide_after: 0,
            runs_after: None,
            calls: Mutex::new(Calls::default()),
        }
    }

    fn execution(&self, state: &str) -> Execution {
        let raw = wire::ToolExecution {
            id: Some("te_1".into()),
            state: Some(state.into()),
            risk_level: Some("RISK_LEVEL_HIGH".into()),
            approval_wait: Some(wire::ApprovalWait {
                approval_request_id: Some("apr_1".into()),
                resume_token: Some(TOKEN.into()),
                reason: Some("deletes files".into()),
                ..wire::ApprovalWait::default()
            }),
            ..wire::ToolExecution::default()
        };
        Execution {
            id: "te_1".into(),
            state: ExecutionState::parse(state).unwrap(),
            raw,
        }
    }

    fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap()
    }
}

impl ToolExecutions for Scripted {
    fn execute_tool(&self, _: &wire::ExecuteToolRequest) -> Result<Answer, CallError> {
        self.calls().state = Some(self.first_state);
        Ok(Answer {
            execution: self.execution(self.first_state),
            idempotent_replay: self.replay,
        })
    }

    fn get_tool_execution(
        &self,
        _: &wire::GetToolExecutionRequest,
        wait: Duration,
    ) -> Result<Execution, CallError> {
        // A short stand-in for the long-poll.
        std::thread::sleep(wait.min(Duration::from_millis(10)));
        let mut c = self.calls();
        c.get_execution += 1;
        if self.runs_after.is_some_and(|n| c.get_execution >= n) {
            c.state = Some("TOOL_EXECUTION_STATE_RUNNING");
        }
        let state = c.state.unwrap_or(self.first_state);
        drop(c);
        Ok(self.execution(state))
    }

    fn get_approval(
        &self,
        _: &wire::GetApprovalRequest,
    ) -> Result<wire::GetApprovalResponse, CallError> {
        let mut c = self.calls();
        c.get_approval += 1;
        let state = match self.verdict {
            Some(v) if c.get_approval > self.decide_after => v,
            _ => "APPROVAL_STATE_PENDING",
        };
        Ok(wire::GetApprovalResponse {
            state: Some(state.into()),
            ..wire::GetApprovalResponse::default()
        })
    }

    fn resume(&self, req: &wire::ResumeToolExecutionRequest) -> Result<Execution, CallError> {
        let mut c = self.calls();
        c.resumes.push(req.clone());
        let state = if req.approved {
            "TOOL_EXECUTION_STATE_RUNNING"
        } else {
            "TOOL_EXECUTION_STATE_DENIED"
        };
        c.state = Some(state);
        drop(c);
        Ok(self.execution(state))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

struct Case {
    platform: Arc<Scripted>,
    ctx: Context,
    labels: crate::request::Labels,
    wait: WaitSettings,
    data_dir: Option<std::path::PathBuf>,
}

impl Case {
    fn new(platform: Scripted) -> Case {
        let env = MapEnv::from_pairs([("MAESTRO_TOOL_CALL_ID", "call_1")]);
        Case {
            platform: Arc::new(platform),
            ctx: Context::from_env(&env, || "call_1".into()),
            labels: crate::request::Labels::for_command("rm -rf build"),
            wait: WaitSettings {
                timeout: Duration::from_secs(20),
                heartbeat: Duration::from_secs(10),
                adopt_window: Duration::from_secs(60),
            },
            data_dir: None,
        }
    }

    fn decider(&self) -> Decider<'_> {
        Decider {
            platform: self.platform.clone(),
            tenant: Tenant {
                organization_id: "org".into(),
                workspace_id: "ws".into(),
            },
            ctx: &self.ctx,
            labels: &self.labels,
            wait: self.wait,
            decisions_fd: None,
            data_dir: self.data_dir.clone(),
        }
    }

    fn request(&self) -> wire::ExecuteToolRequest {
        wire::ExecuteToolRequest {
            arguments: wire::Arguments {
                command: "rm -rf build".into(),
            },
            ..wire::ExecuteToolRequest::default()
        }
    }

    /// Ask, and return the answer with the events' data (type, data) in order.
    fn ask(&self) -> (Result<Allowed, Refusal>, Vec<(String, Value)>) {
        let _one = serial();
        let mut sidecar = Sidecar::memory();
        let got = self.decider().ask(&self.request(), &mut sidecar);
        (got, events(&mut sidecar))
    }
}

fn events(sidecar: &mut Sidecar) -> Vec<(String, Value)> {
    sidecar
        .take_lines()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .collect()
}

fn no_token_in(events: &[(String, Value)]) {
    for (t, data) in events {
        assert!(!data.to_string().contains(TOKEN), "{t} leaks the token");
    }
}

#[test]
fn running_is_allowed_without_waiting_or_events() {
    let case = Case::new(Scripted::new("TOOL_EXECUTION_STATE_RUNNING"));
    let (got, events) = case.ask();
    assert_eq!(
        got.unwrap(),
        Allowed {
            outcome: Outcome::Allowed,
            execution_id: "te_1".into(),
            approval_request_id: None,
        }
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn an_approval_resumes_once_with_the_token_and_the_hit_event_names_the_ids() {
    let mut p = Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    p.verdict = Some("APPROVAL_STATE_APPROVED");
    p.decide_after = 2;
    let case = Case::new(p);
    let (got, events) = case.ask();
    let allowed = got.unwrap();
    assert_eq!(allowed.outcome, Outcome::Approved);
    assert_eq!(allowed.approval_request_id.as_deref(), Some("apr_1"));

    let resumes = case.platform.calls().resumes.clone();
    assert_eq!(resumes.len(), 1, "{resumes:?}");
    assert!(resumes[0].approved);
    assert_eq!(resumes[0].resume_token, TOKEN);

    assert_eq!(events.len(), 1, "{events:?}");
    let (t, hit) = &events[0];
    assert_eq!(t, crate::events::APPROVAL_HIT);
    assert_eq!(hit["tool_call_id"], "call_1");
    assert_eq!(hit["tool_execution_id"], "te_1");
    assert_eq!(hit["approval_request_id"], "apr_1");
    assert_eq!(hit["action"], "Running rm -rf build");
    assert_eq!(hit["context"]["summary_label"], "Ran rm -rf build");
    assert_eq!(hit["reason"], "deletes files");
    assert_eq!(hit["risk_level"], "RISK_LEVEL_HIGH");
    assert_eq!(hit["platform"]["approvalRequestId"], "apr_1");
    assert!(hit.get("adopted").is_none(), "{hit}");
    no_token_in(&events);
}

#[test]
fn a_denial_is_refused_and_passed_on_with_the_token() {
    let mut p = Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    p.verdict = Some("APPROVAL_STATE_DENIED");
    let case = Case::new(p);
    let (got, events) = case.ask();
    let r = got.unwrap_err();
    assert_eq!(r.outcome, Outcome::Denied);
    assert_eq!(r.tool_execution_id.as_deref(), Some("te_1"));
    assert_eq!(r.approval_request_id.as_deref(), Some("apr_1"));
    let resumes = case.platform.calls().resumes.clone();
    assert_eq!(resumes.len(), 1);
    assert!(!resumes[0].approved);
    no_token_in(&events);
}

#[test]
fn our_timeout_abandons_the_request_so_no_approval_dangles_and_heartbeats_went_out() {
    let mut case = Case::new(Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL"));
    case.wait.timeout = Duration::from_millis(400);
    case.wait.heartbeat = Duration::from_millis(100);
    let (got, events) = case.ask();
    let r = got.unwrap_err();
    assert_eq!(r.outcome, Outcome::ApprovalTimeout);
    assert!(
        r.reason.contains("MAESTRO_SH_APPROVAL_TIMEOUT_MS"),
        "{}",
        r.reason
    );
    let resumes = case.platform.calls().resumes.clone();
    assert_eq!(resumes.len(), 1, "abandoned once: {resumes:?}");
    assert!(!resumes[0].approved);
    assert_eq!(resumes[0].reason.as_deref(), Some("approval timed out"));

    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types[0], crate::events::APPROVAL_HIT);
    let beats: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == crate::events::HEARTBEAT)
        .map(|(_, d)| d)
        .collect();
    assert!(!beats.is_empty(), "{types:?}");
    for b in beats {
        assert_eq!(b["status"], "waiting_approval");
        assert_eq!(b["approval_request_id"], "apr_1");
        assert!(b["elapsed_ms"].as_u64().is_some());
    }
    no_token_in(&events);
}

#[test]
fn running_elsewhere_while_waiting_counts_as_granted() {
    let mut p = Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    p.runs_after = Some(2);
    let case = Case::new(p);
    let (got, _) = case.ask();
    assert_eq!(got.unwrap().outcome, Outcome::Approved);
    assert!(case.platform.calls().resumes.is_empty());
}

#[test]
fn a_replayed_execution_is_never_permission() {
    let mut p = Scripted::new("TOOL_EXECUTION_STATE_SUCCEEDED");
    p.replay = true;
    let case = Case::new(p);
    let (got, events) = case.ask();
    assert_eq!(got.unwrap_err().outcome, Outcome::AlreadyRan);
    assert!(events.is_empty());
}

#[test]
fn an_answer_without_a_resume_token_is_malformed() {
    struct NoToken(Scripted);
    impl ToolExecutions for NoToken {
        fn execute_tool(&self, r: &wire::ExecuteToolRequest) -> Result<Answer, CallError> {
            let mut d = self.0.execute_tool(r)?;
            if let Some(w) = d.execution.raw.approval_wait.as_mut() {
                w.resume_token = None;
            }
            Ok(d)
        }
        fn get_tool_execution(
            &self,
            r: &wire::GetToolExecutionRequest,
            w: Duration,
        ) -> Result<Execution, CallError> {
            self.0.get_tool_execution(r, w)
        }
        fn get_approval(
            &self,
            r: &wire::GetApprovalRequest,
        ) -> Result<wire::GetApprovalResponse, CallError> {
            self.0.get_approval(r)
        }
        fn resume(&self, r: &wire::ResumeToolExecutionRequest) -> Result<Execution, CallError> {
            self.0.resume(r)
        }
        fn timeout(&self) -> Duration {
            self.0.timeout()
        }
    }
    let case = Case::new(Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL"));
    let mut d = case.decider();
    d.platform = Arc::new(NoToken(Scripted::new(
        "TOOL_EXECUTION_STATE_WAITING_APPROVAL",
    )));
    let _one = serial();
    let mut sidecar = Sidecar::memory();
    let r = d.ask(&case.request(), &mut sidecar).unwrap_err();
    assert_eq!(r.outcome, Outcome::PlatformMalformed);
    assert!(r.reason.contains("resume token"), "{}", r.reason);
    assert!(sidecar.take_lines().is_empty());
}

fn adopted_record() -> crate::adopt::Record {
    crate::adopt::Record {
        organization_id: "org".into(),
        workspace_id: "ws".into(),
        session_id: "sess".into(),
        command_digest: "d".repeat(64),
        execution_id: "te_1".into(),
        approval_request_id: "apr_1".into(),
        expires_at: None,
    }
}

#[test]
fn an_adopted_wait_never_resumes_and_runs_once_platform_shows_running() {
    let mut p = Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    p.runs_after = Some(3);
    let case = Case::new(p);
    let _one = serial();
    let mut sidecar = Sidecar::memory();
    let execution = case
        .platform
        .execution("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    let got = case
        .decider()
        .wait_adopted(&case.request(), &execution, &adopted_record(), &mut sidecar)
        .unwrap();
    assert_eq!(got.outcome, Outcome::Approved);
    assert!(case.platform.calls().resumes.is_empty());
    let events = events(&mut sidecar);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["adopted"], true);
}

#[test]
fn an_adopted_wait_that_times_out_puts_the_record_back_for_the_next_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut case = Case::new(Scripted::new("TOOL_EXECUTION_STATE_WAITING_APPROVAL"));
    case.wait.timeout = Duration::from_millis(300);
    case.data_dir = Some(dir.path().to_path_buf());
    let _one = serial();
    let mut sidecar = Sidecar::memory();
    let execution = case
        .platform
        .execution("TOOL_EXECUTION_STATE_WAITING_APPROVAL");
    let record = adopted_record();
    let r = case
        .decider()
        .wait_adopted(&case.request(), &execution, &record, &mut sidecar)
        .unwrap_err();
    assert_eq!(r.outcome, Outcome::ApprovalTimeout);
    assert!(r.reason.contains("stays open for a retry"), "{}", r.reason);
    assert!(
        case.platform.calls().resumes.is_empty(),
        "never abandoned by us"
    );
    let key = crate::adopt::Key::of_record(&record);
    assert_eq!(crate::adopt::claim(dir.path(), &key), Some(record));
}
