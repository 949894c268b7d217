//! Governed and observe runs against a real local Platform: every outcome row, the fault
//! table, modes and flags, nested shells, replay, the sidecar/timeline join, the outbox.

use serde_json::{json, Value};

use crate::support::platform::{flags_file, stderr, DevPlatform, Gov, ORG, WORKSPACE};

const DENY_POLICY: &str = r#"{"default":"allow","rules":[
  {"action":"deny","command_prefixes":["echo deny-me"],"reason":"deny-me is forbidden here"},
  {"action":"require_approval","command_prefixes":["echo approve-me"],"reason":"needs a human"}]}"#;

fn policy_file(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("policy.json");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn allowed_command_runs_once_and_is_recorded() {
    let p = DevPlatform::start();
    let mut g = Gov::marked(Some(&p.url), "governed", "echo out; echo err >&2; exit 3")
        .env("MAESTRO_TOOL_CALL_ID", "call-allow-1")
        .env("MAESTRO_SESSION_ID", "sess-1")
        .env("MAESTRO_AGENT_RUN_ID", "run-1")
        .expect_status(3)
        .expect_stdout("out\n")
        .expect_stderr("err\n")
        .expect_ran(true)
        .expect_outcome("allowed");
    g.run_checked();

    let execs = p.executions();
    assert_eq!(execs.len(), 1);
    let e = &execs[0];
    assert_eq!(e["state"], "TOOL_EXECUTION_STATE_FAILED");
    assert_eq!(e["linkage"]["stepId"], "call-allow-1");
    assert_eq!(e["linkage"]["runId"], "run-1");
    assert_eq!(e["output"]["safeOutput"]["exit_status"], 3);
    assert!(e["output"]["durationMs"].as_u64().is_some());
    assert_eq!(e["metadata"]["maestro_local_outcome"], "failed");

    let done = g.completed();
    assert_eq!(done["tool_execution_id"], e["id"]);
    assert_eq!(done["exit_status"], 3);
    assert_eq!(done["tool_call_id"], "call-allow-1");
}

/// (name, faults on ExecuteTool, expected outcome, runs?)
fn fault_table() -> Vec<(&'static str, Value, &'static str, bool)> {
    vec![
        (
            "5xx every time",
            json!([{"method": "ExecuteTool", "kind": "status", "status": 503}]),
            "platform_unavailable",
            false,
        ),
        (
            "5xx once then success",
            json!([{"method": "ExecuteTool", "kind": "status", "status": 500, "times": 1}]),
            "allowed",
            true,
        ),
        (
            "429 once then success",
            json!([{"method": "ExecuteTool", "kind": "status", "status": 429, "times": 1}]),
            "allowed",
            true,
        ),
        (
            "timeout",
            json!([{"method": "ExecuteTool", "kind": "delay", "delayMs": 4000}]),
            "platform_unavailable",
            false,
        ),
        (
            "malformed JSON",
            json!([{"method": "ExecuteTool", "kind": "malformed"}]),
            "platform_malformed",
            false,
        ),
        (
            "empty object",
            json!([{"method": "ExecuteTool", "kind": "empty"}]),
            "platform_malformed",
            false,
        ),
        (
            "connection drop",
            json!([{"method": "ExecuteTool", "kind": "drop"}]),
            "platform_unavailable",
            false,
        ),
        (
            "oversize body",
            json!([{"method": "ExecuteTool", "kind": "oversize"}]),
            "platform_malformed",
            false,
        ),
        (
            "unknown state",
            json!([{"method": "ExecuteTool", "kind": "unknown_state"}]),
            "platform_malformed",
            false,
        ),
        (
            "missing id",
            json!([{"method": "ExecuteTool", "kind": "missing_id"}]),
            "platform_malformed",
            false,
        ),
        (
            "400 from Platform",
            json!([{"method": "ExecuteTool", "kind": "status", "status": 400}]),
            "platform_malformed",
            false,
        ),
        (
            "404 from Platform",
            json!([{"method": "ExecuteTool", "kind": "status", "status": 404}]),
            "misconfigured",
            false,
        ),
    ]
}

#[test]
fn platform_faults_fail_closed() {
    let p = DevPlatform::start();
    for (name, faults, outcome, runs) in fault_table() {
        p.set_faults(faults);
        let g = Gov::marked(Some(&p.url), "governed", "echo ran")
            .env("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "800")
            .case(name);
        let mut g = if runs {
            g.expect_status(0).expect_ran(true).expect_outcome(outcome)
        } else {
            g.expect_refused(outcome)
                .expect_stderr_starts_with(&format!("maestro-sh: {outcome}: "))
                .expect_stderr_lines(1)
        };
        g.run_checked();
    }
    p.set_faults(json!([]));
    // "5xx once then success" made one execution, not two.
    let per_step: std::collections::HashMap<String, usize> =
        p.executions().iter().fold(Default::default(), |mut m, e| {
            *m.entry(e["linkage"]["stepId"].as_str().unwrap().to_string())
                .or_default() += 1;
            m
        });
    assert!(per_step.values().all(|n| *n == 1), "{per_step:?}");
}

#[test]
fn denied_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let p = DevPlatform::start_with(&["--policy", &policy_file(dir.path(), DENY_POLICY)]);
    let mut g = Gov::new(Some(&p.url), "governed", "echo deny-me; touch \"$MARKER\"")
        .expect_refused("denied")
        .expect_stderr_starts_with("maestro-sh: denied: deny-me is forbidden here;");
    let err = stderr(&g.run_checked());
    let id = p.executions()[0]["id"].as_str().unwrap().to_string();
    assert!(err.contains(&format!("tool_execution_id={id}")), "{err}");
    assert_eq!(g.completed()["tool_execution_id"], id.as_str());
}

#[test]
fn unauthorised_and_wrong_organization_are_misconfigured() {
    let p = DevPlatform::start();
    for (var, value, code) in [
        ("TOOL_EXECUTION_SERVICE_TOKEN", "wrong", "401"),
        ("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", "org-other", "403"),
    ] {
        Gov::marked(Some(&p.url), "governed", "true")
            .env(var, value)
            .case(var)
            .expect_refused("misconfigured")
            .expect_stderr_starts_with("maestro-sh: misconfigured: ")
            .expect_stderr_contains(code)
            .expect_stderr_lacks("wrong") // the token
            .run_checked();
    }
}

#[test]
fn platform_down_refuses() {
    Gov::marked(Some("http://127.0.0.1:9"), "governed", "true")
        .expect_refused("platform_unavailable")
        .expect_stderr_starts_with("maestro-sh: platform_unavailable: ")
        .run_checked();
}

#[test]
fn incomplete_config_names_the_variable() {
    for (drop, named) in [
        ("TOOL_EXECUTION_SERVICE_URL", "TOOL_EXECUTION_SERVICE_URL"),
        (
            "TOOL_EXECUTION_SERVICE_TOKEN",
            "MAESTRO_SH_CREDENTIALS_FILE",
        ),
        (
            "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID",
            "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID",
        ),
        (
            "TOOL_EXECUTION_SERVICE_WORKSPACE_ID",
            "TOOL_EXECUTION_SERVICE_WORKSPACE_ID",
        ),
    ] {
        Gov::marked(Some("http://127.0.0.1:9"), "governed", "true")
            .env_remove(drop)
            .case(drop)
            .expect_refused("misconfigured")
            .expect_stderr_starts_with("maestro-sh: misconfigured: ")
            .expect_stderr_contains(named)
            .run_checked();
    }
    // Bad values too.
    for (var, value) in [
        ("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "soon"),
        ("MAESTRO_SH_MODE", "loud"),
        ("TOOL_EXECUTION_SERVICE_URL", "ftp://x"),
    ] {
        Gov::marked(Some("http://127.0.0.1:9"), "governed", "true")
            .env(var, value)
            .case(var)
            .expect_refused("misconfigured")
            .expect_stderr_contains(var)
            .run_checked();
    }
}

#[test]
fn credentials_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds.json");
    std::fs::write(
        &creds,
        format!("{{\"token\": \"{}\"}}", crate::support::platform::TOKEN),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    Gov::marked(Some(&p.url), "governed", "true")
        .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
        .env("MAESTRO_SH_CREDENTIALS_FILE", &creds)
        .expect_refused("misconfigured")
        .expect_stderr_contains("chmod 600")
        .run_checked();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Gov::marked(Some(&p.url), "governed", "env")
        .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
        .env("MAESTRO_SH_CREDENTIALS_FILE", &creds)
        .expect_status(0)
        .expect_ran(true)
        .run_checked();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(crate::support::platform::TOKEN));
}

#[test]
fn flags_decide_the_mode_and_the_kill_switch_wins() {
    let p = DevPlatform::start();
    let dir = tempfile::tempdir().unwrap();
    let bridge = "maestro.platform_runtime.tool_execution_bridge";
    let observe = "maestro.platform_runtime.agent_runtime_observe";
    let kill = "platform.kill_switches.maestro.platform_runtime_bridge";
    // (flags, MAESTRO_SH_MODE, command, expected bridge mode recorded or None for pass-through)
    let cases: Vec<(Vec<&str>, &str, &str, Option<&str>)> = vec![
        (vec![], "", "touch \"$MARKER\"", None),
        (vec![bridge], "", "touch \"$MARKER\"", Some("governed")),
        (vec![bridge], "", "ls", Some("observe")),
        (vec![observe], "", "touch \"$MARKER\"", Some("observe")),
        (vec![bridge, kill], "", "touch \"$MARKER\"", None),
        (vec![kill], "governed", "touch \"$MARKER\"", None),
        (vec![bridge], "off", "touch \"$MARKER\"", Some("governed")),
        (vec![], "governed", "ls", Some("governed")),
    ];
    for (flags, mode, command, want) in cases {
        let before = p.requests_for("ExecuteTool").len();
        let flags_path = flags_file(dir.path(), &flags);
        let mut g =
            Gov::new(Some(&p.url), mode, command).env("EVALOPS_FEATURE_FLAGS_PATH", &flags_path);
        if mode.is_empty() {
            g = g.env_remove("MAESTRO_SH_MODE");
        }
        let out = g.run();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flags:?} {mode}: {}",
            stderr(&out)
        );
        let sent = p.requests_for("ExecuteTool");
        match want {
            None => assert_eq!(
                sent.len(),
                before,
                "{flags:?} {mode}: nothing may reach Platform"
            ),
            Some(m) => {
                assert_eq!(sent.len(), before + 1, "{flags:?} {mode}");
                assert_eq!(
                    sent.last().unwrap()["body"]["metadata"]["maestro_bridge_mode"],
                    m,
                    "{flags:?} {mode}"
                );
            }
        }
    }
}

#[test]
fn nested_shells_share_the_decision_of_their_step() {
    let p = DevPlatform::start();
    let shims = crate::support::shell::shim_dir().display().to_string();
    // Same step: the inner bash passes through; one execution.
    let mut g = Gov::new(
        Some(&p.url),
        "governed",
        "bash -c 'sh -c \"touch $MARKER\"'",
    )
    .env("PATH", format!("{shims}:/usr/bin:/bin"))
    .env("MAESTRO_TOOL_CALL_ID", "call-nested-1")
    .expect_status(0)
    .expect_ran(true);
    g.run_checked();
    assert_eq!(p.executions().len(), 1);

    // A new step inside is governed anew. The token never reaches the command's environment,
    // nor does the credentials file's path, so the inner shim finds it the way Maestro's shells
    // must: in the default private credentials file ($HOME/.config/maestro-sh/credentials).
    let mut g = Gov::new(
        Some(&p.url),
        "governed",
        "MAESTRO_TOOL_CALL_ID=call-nested-3 bash -c 'touch $MARKER'",
    )
    .env("PATH", format!("{shims}:/usr/bin:/bin"))
    .env("MAESTRO_TOOL_CALL_ID", "call-nested-2")
    .env_remove("TOOL_EXECUTION_SERVICE_TOKEN")
    .expect_status(0)
    .expect_ran(true);
    let creds = g.dir.path().join(".config/maestro-sh/credentials");
    std::fs::create_dir_all(creds.parent().unwrap()).unwrap();
    std::fs::write(&creds, crate::support::platform::TOKEN).unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    g.run_checked();
    let steps: Vec<String> = p
        .executions()
        .iter()
        .map(|e| e["linkage"]["stepId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"call-nested-2".to_string())
            && steps.contains(&"call-nested-3".to_string()),
        "{steps:?}"
    );

    // A grant set by hand does not skip governance.
    let before = p.executions().len();
    let mut g = Gov::marked(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-nested-4")
        .env("MAESTRO_SH_GRANT", format!("v1.1.1.{}", "0".repeat(64)));
    assert_eq!(g.run().status.code(), Some(0));
    assert_eq!(p.executions().len(), before + 1);
}

#[test]
fn a_retried_step_replays_and_never_runs_twice() {
    let p = DevPlatform::start();
    let mut first =
        Gov::marked(Some(&p.url), "governed", "true").env("MAESTRO_TOOL_CALL_ID", "call-replay-1");
    assert_eq!(first.run().status.code(), Some(0));
    Gov::marked(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-replay-1")
        .expect_refused("already_ran")
        .expect_stderr_contains("already ran")
        .run_checked();
    assert_eq!(p.executions().len(), 1);
}

#[test]
fn sidecar_and_timeline_join_on_ids() {
    let p = DevPlatform::start();
    let mut g = Gov::marked(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-join-1")
        .env("MAESTRO_SESSION_ID", "sess-join")
        .env("MAESTRO_AGENT_RUN_ID", "run-join");
    assert_eq!(g.run().status.code(), Some(0));
    let done = g.completed();
    let id = done["tool_execution_id"].as_str().unwrap();
    let entries = p.timeline(json!({"toolExecutionId": id}));
    assert_eq!(entries.len(), 1);
    let t = &entries[0];
    assert_eq!(t["stepId"], done["tool_call_id"]);
    assert_eq!(t["sessionId"], done["correlation"]["session_id"]);
    assert_eq!(t["runId"], done["correlation"]["agent_run_id"]);
    let states: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["to"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "TOOL_EXECUTION_STATE_ACCEPTED",
            "TOOL_EXECUTION_STATE_POLICY_EVALUATING",
            "TOOL_EXECUTION_STATE_RUNNING",
            "TOOL_EXECUTION_STATE_SUCCEEDED"
        ]
    );
    // The attempted event came first, with the same step.
    let events = g.events();
    assert_eq!(events[0]["type"], "maestro.events.tool_call.attempted");
    assert_eq!(events[0]["data"]["tool_call_id"], "call-join-1");
    assert_eq!(events[0]["spec_version"], "1.0");
}

#[test]
fn observe_with_platform_down_spools_and_delivers_exactly_once() {
    let p = DevPlatform::start();
    let data = tempfile::tempdir().unwrap();
    // Platform down: the command's status is unaffected and the record is spooled.
    let mut g = Gov::new(
        Some("http://127.0.0.1:9"),
        "observe",
        "echo observed; exit 7",
    )
    .env("MAESTRO_SH_DATA_DIR", data.path())
    .env("MAESTRO_TOOL_CALL_ID", "call-spool-1");
    let out = g.run();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, b"observed\n");
    assert_eq!(g.completed()["governed_outcome"], "observed");
    assert_eq!(
        std::fs::read_dir(data.path().join("outbox"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count(),
        1
    );

    // Platform back: the next invocation delivers its own record and the spooled one.
    for step in ["call-spool-2", "call-spool-3"] {
        let mut g = Gov::new(Some(&p.url), "observe", "true")
            .env("MAESTRO_SH_DATA_DIR", data.path())
            .env("MAESTRO_TOOL_CALL_ID", step);
        assert_eq!(g.run().status.code(), Some(0));
    }
    let execs = p.executions();
    let mut steps: Vec<&str> = execs
        .iter()
        .map(|e| e["linkage"]["stepId"].as_str().unwrap())
        .collect();
    steps.sort();
    assert_eq!(steps, ["call-spool-1", "call-spool-2", "call-spool-3"]);
    let spooled = execs
        .iter()
        .find(|e| e["linkage"]["stepId"] == "call-spool-1")
        .unwrap();
    assert_eq!(spooled["state"], "TOOL_EXECUTION_STATE_FAILED");
    assert_eq!(spooled["output"]["safeOutput"]["exit_status"], 7);
    assert_eq!(p.requests_for("RecordToolExecutionOutput").len(), 3);
}

#[test]
fn wire_conformance_of_execute_tool() {
    let p = DevPlatform::start();
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let commands = [
        "true",
        "ls -la",
        &format!("GITHUB_TOKEN={secret} true"),
        "echo   spaced\tout\n  text",
        &format!("curl -H 'Authorization: Bearer {secret}' http://127.0.0.1:9 || true"),
    ];
    for (i, cmd) in commands.iter().enumerate() {
        let step = format!("call-wire-{i}");
        let mut g = Gov::new(Some(&p.url), "governed", cmd)
            .env("MAESTRO_TOOL_CALL_ID", &step)
            .env("MAESTRO_SESSION_ID", "sess-w")
            .env("MAESTRO_AGENT_RUN_ID", "run-w")
            .env("MAESTRO_ACTOR_ID", "actor-w")
            .env("MAESTRO_AGENT_ID", "agent-w")
            .env("MAESTRO_OBJECTIVE_ID", "obj-w")
            .env("MAESTRO_CHANNEL_ID", "chan-w")
            .env("MAESTRO_SURFACE", "cli")
            .env("MAESTRO_WORKSPACE_ROOT", "/repo")
            .env("MAESTRO_GIT_BRANCH", "main")
            .env("MAESTRO_GIT_COMMIT", "abc123")
            .env("GITHUB_REPOSITORY", "evalops/x");
        g.run();
        let sent = p.requests_for("ExecuteTool");
        let req = sent.last().unwrap();
        let h = &req["headers"];
        assert_eq!(h["Authorization"], "Bearer <redacted>");
        assert_eq!(h["X-Organization-ID"], ORG);
        assert_eq!(h["Connect-Protocol-Version"], "1");
        assert_eq!(h["Content-Type"], "application/json");
        // Maestro's header order (HTTP-level headers such as Host may come before or between).
        let order: Vec<String> = req["headerOrder"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_ascii_lowercase())
            .filter(|n| {
                [
                    "authorization",
                    "content-type",
                    "x-organization-id",
                    "connect-protocol-version",
                ]
                .contains(&n.as_str())
            })
            .collect();
        assert_eq!(
            order,
            [
                "authorization",
                "content-type",
                "x-organization-id",
                "connect-protocol-version"
            ]
        );
        let b = &req["body"];
        let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "linkage",
                "tool",
                "arguments",
                "riskLevel",
                "retryPolicy",
                "idempotencyKey",
                "metadata"
            ]
        );
        assert_eq!(
            b["linkage"],
            json!({"workspaceId": WORKSPACE, "organizationId": ORG, "agentId": "agent-w", "runId": "run-w", "objectiveId": "obj-w",
                   "stepId": step, "actorId": "actor-w", "surface": "cli", "channelId": "chan-w",
                   "correlationId": format!("sess-w:{step}"), "surfaceType": "SURFACE_MAESTRO"})
        );
        assert_eq!(b["tool"]["namespace"], "maestro");
        assert_eq!(b["tool"]["name"], "bash");
        assert_eq!(b["tool"]["capability"], "maestro.tool.bash");
        assert_eq!(
            b["tool"]["idempotent"],
            !b["tool"]["mutatesResource"].as_bool().unwrap()
        );
        let op = b["tool"]["operation"].as_str().unwrap();
        assert!(
            op.len() <= 96 && !op.contains('\n') && !op.contains("  "),
            "{op}"
        );
        assert_eq!(
            b["retryPolicy"],
            json!({"maxAttempts": 1, "initialDelayMs": 0, "maxDelayMs": 0, "allowNonIdempotentRetry": false})
        );
        assert_eq!(b["idempotencyKey"], format!("maestro:{step}"));
        assert!(b["riskLevel"].as_str().unwrap().starts_with("RISK_LEVEL_"));
        // Every key of Maestro's, in Maestro's order (checked below), ours (maestro_sh_*) after.
        let m = &b["metadata"];
        assert_eq!(m["maestro_repository_root"], "/repo");
        assert_eq!(m["maestro_local_execution_authoritative"], "true");
        // Metadata keys in Maestro's order, ours (maestro_sh_*) after.
        let mkeys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        let maestro_keys: Vec<&str> = mkeys
            .iter()
            .copied()
            .filter(|k| !k.starts_with("maestro_sh_"))
            .collect();
        assert_eq!(
            maestro_keys,
            [
                "maestro_bridge_mode",
                "maestro_tool_call_id",
                "organization_id",
                "workspace_id",
                "maestro_agent_run_id",
                "maestro_agent_run_step_id",
                "maestro_actor_id",
                "maestro_correlation_id",
                "maestro_cwd",
                "maestro_workspace_root",
                "maestro_repository_root",
                "maestro_repository",
                "maestro_git_branch",
                "maestro_git_commit",
                "maestro_session_id",
                "maestro_display_name",
                "maestro_summary_label",
                "maestro_action_description",
                "maestro_redacted_arguments",
                "maestro_tool_family",
                "maestro_local_execution_authoritative",
            ],
            "{cmd}"
        );
        assert!(mkeys[maestro_keys.len()..]
            .iter()
            .all(|k| k.starts_with("maestro_sh_")));
        // Maestro's presentation of a bash call: "Bash", "Ran <cmd>", "Running <cmd>" (the
        // sanitized command, whitespace collapsed, cut at 52 UTF-16 units).
        assert_eq!(m["maestro_display_name"], "Bash");
        let summary = m["maestro_summary_label"].as_str().unwrap();
        let action = m["maestro_action_description"].as_str().unwrap();
        assert!(
            summary.starts_with("Ran ") && summary.encode_utf16().count() <= 56,
            "{summary}"
        );
        assert_eq!(action, summary.replacen("Ran ", "Running ", 1));
        if i == 3 {
            assert_eq!(summary, "Ran echo spaced out text");
        }
        let whole = req.to_string();
        assert!(!whole.contains(secret), "secret leaked for {cmd}: {whole}");
        if cmd.contains(secret) {
            assert_eq!(m["maestro_redacted_arguments"], "true");
            assert!(b["arguments"]["command"]
                .as_str()
                .unwrap()
                .contains("[REDACTED:"));
        }
    }
}

#[test]
fn wire_conformance_of_records_sidecar_and_fallbacks() {
    let p = DevPlatform::start();

    // Observe: the ExecuteTool record carries the local outcome, summary and redactions.
    let mut g =
        Gov::new(Some(&p.url), "observe", "exit 3").env("MAESTRO_TOOL_CALL_ID", "call-rec-obs");
    assert_eq!(g.run().status.code(), Some(3));
    let exec = p.requests_for("ExecuteTool").pop().unwrap();
    let m = &exec["body"]["metadata"];
    assert_eq!(m["maestro_bridge_mode"], "observe");
    assert_eq!(m["maestro_local_execution_authoritative"], "false");
    assert_eq!(m["maestro_local_outcome"], "failed");
    assert_eq!(m["maestro_local_output_summary"], "exit status 3");
    assert_eq!(m["maestro_local_output_redactions"], "none");
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    assert!(at("maestro_local_execution_authoritative") < at("maestro_local_outcome"));
    assert!(at("maestro_local_outcome") < at("maestro_local_output_summary"));
    assert!(at("maestro_local_output_summary") < at("maestro_local_output_redactions"));

    // Governed: RecordToolExecutionOutput is the ExecuteTool metadata plus the local outcome;
    // output in Maestro's shape (redactions always a list, no null fields).
    let mut g =
        Gov::new(Some(&p.url), "governed", "true").env("MAESTRO_TOOL_CALL_ID", "call-rec-gov");
    assert_eq!(g.run().status.code(), Some(0));
    let rec = p.requests_for("RecordToolExecutionOutput").pop().unwrap();
    let b = &rec["body"];
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["executionId", "output", "metadata"]);
    let out = &b["output"];
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["safeOutput", "redactions", "contentType", "durationMs"]
    );
    assert_eq!(out["redactions"], json!([]));
    assert_eq!(out["contentType"], "application/json");
    let so = out["safeOutput"].as_object().unwrap();
    let keys: Vec<&String> = so.keys().take(4).collect();
    assert_eq!(keys, ["status", "tool_name", "tool_call_id", "summary"]);
    assert_eq!(so["status"], "succeeded");
    assert_eq!(so["tool_call_id"], "call-rec-gov");
    assert!(so.values().all(|v| !v.is_null()), "{out}");
    let m = &b["metadata"];
    assert_eq!(m["maestro_bridge_mode"], "governed");
    assert_eq!(m["maestro_local_outcome"], "succeeded");
    assert_eq!(m["maestro_tool_call_id"], "call-rec-gov");
    assert!(m.get("maestro_local_output_summary").is_none(), "{m}");
    assert!(m.get("maestro_local_output_redactions").is_none(), "{m}");
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys[0], "maestro_bridge_mode");
    let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    assert_eq!(
        at("maestro_local_outcome"),
        at("maestro_local_execution_authoritative") + 1
    );

    // Sidecar: Maestro's event-bus envelope and ToolCallResult data.
    let events = g.events();
    assert!(events.len() >= 2);
    for e in &events {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "spec_version",
                "id",
                "type",
                "source",
                "subject",
                "time",
                "data_content_type",
                "tenant_id",
                "data",
                "extensions"
            ],
            "{e}"
        );
        let id = e["id"].as_str().unwrap();
        assert!(id.len() == 36 && id.as_bytes()[14] == b'4', "{id}");
        assert_eq!(e["subject"], e["type"]);
        assert_eq!(e["tenant_id"], ORG);
        assert_eq!(e["data_content_type"], "application/protobuf");
        let corr = e["data"]["correlation"].as_object().unwrap();
        assert!(corr.values().all(|v| !v.is_null()), "{e}");
        assert_eq!(corr["session_id"], "unknown");
        assert_eq!(corr["workspace_id"], WORKSPACE);
        assert_eq!(corr["agent_run_step_id"], "call-rec-gov");
    }
    let attempted = &events[0];
    assert_eq!(attempted["type"], "maestro.events.tool_call.attempted");
    assert_eq!(
        attempted["data"]["@type"],
        "type.googleapis.com/maestro.v1.ToolCallAttempt"
    );
    assert_eq!(attempted["time"], attempted["data"]["attempted_at"]);
    let done = events.last().unwrap();
    assert_eq!(done["type"], "maestro.events.tool_call.completed");
    assert_eq!(
        done["extensions"]["dataschema"],
        "buf.build/evalops/proto/maestro.v1.ToolCallResult"
    );
    let d = &done["data"];
    assert_eq!(d.as_object().unwrap().keys().next_back().unwrap(), "@type");
    assert_eq!(d["@type"], "type.googleapis.com/maestro.v1.ToolCallResult");
    assert_eq!(d["status"], "MAESTRO_TOOL_CALL_STATUS_SUCCEEDED");
    assert_eq!(done["time"], d["completed_at"]);
    let dur = d["duration"].as_str().unwrap();
    let secs = dur.strip_suffix('s').unwrap();
    assert!(
        secs.parse::<f64>().is_ok() && !(secs.contains('.') && secs.ends_with('0')),
        "{dur}"
    );

    // A refusal is DENIED on the sidecar.
    let mut g = Gov::new(Some("http://127.0.0.1:9"), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-rec-down")
        .expect_status(126)
        .expect_outcome("platform_unavailable");
    g.run_checked();
    assert_eq!(g.completed()["status"], "MAESTRO_TOOL_CALL_STATUS_DENIED");

    // No workspace variable: the organization id from Maestro's default organization variables
    // is the workspace; the agent id falls back to npm's package name.
    let mut g = Gov::new(Some(&p.url), "governed", "true")
        .env("MAESTRO_TOOL_CALL_ID", "call-rec-fallback")
        .env_remove("TOOL_EXECUTION_SERVICE_WORKSPACE_ID")
        .env("EVALOPS_ORGANIZATION_ID", ORG)
        .env("npm_package_name", "@evalops/maestro");
    assert_eq!(g.run().status.code(), Some(0));
    let l = &p.requests_for("ExecuteTool").pop().unwrap()["body"]["linkage"];
    assert_eq!(l["workspaceId"], ORG);
    assert_eq!(l["agentId"], "@evalops/maestro");

    // Flag keys are compared trimmed, as Maestro does: a padded bridge flag governs.
    let flags = g.dir.path().join("flags.json");
    std::fs::write(
        &flags,
        json!({"schema_version": 1, "flags": [
            {"key": " maestro.platform_runtime.tool_execution_bridge ", "enabled": true}]})
        .to_string(),
    )
    .unwrap();
    let before = p.requests_for("ExecuteTool").len();
    let mut g = Gov::new(Some(&p.url), "off", "touch \"$MARKER\"")
        .env("MAESTRO_TOOL_CALL_ID", "call-rec-flag")
        .env("EVALOPS_FEATURE_FLAGS_PATH", &flags);
    assert_eq!(g.run().status.code(), Some(0));
    let sent = p.requests_for("ExecuteTool");
    assert_eq!(sent.len(), before + 1);
    assert_eq!(
        sent[before]["body"]["metadata"]["maestro_bridge_mode"],
        "governed"
    );
}
