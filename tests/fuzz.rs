//! Property tests over classify + redact (a modest case count keeps the suite fast on 2
//! cores; raise `PROPTEST_CASES` for a longer run): no panic on any input, redaction is
//! idempotent, and no text with a write redirection is ever read-only.

use maestro_sh::classify::{classify, classify_script};
use maestro_sh::redact::{operation_summary, redact, sanitize_command};
use proptest::prelude::*;

/// Shell-ish fragments, so generated text exercises the parser beyond its first error.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ls".to_string()),
        Just("cat f".to_string()),
        Just("git status".to_string()),
        Just("echo \"$(pwd)\"".to_string()),
        Just("rm -rf x".to_string()),
        Just("sed -n 1p f".to_string()),
        Just("find . -name '*.rs'".to_string()),
        Just("awk '{print $1}'".to_string()),
        Just("${x:-y}".to_string()),
        Just("$((1+2))".to_string()),
        Just("bash -c 'ls'".to_string()),
        Just("<(ls)".to_string()),
        Just("{ ls; }".to_string()),
        Just("( ls )".to_string()),
        Just("if true; then ls; fi".to_string()),
        Just("f() { ls; }".to_string()),
        Just("ghp_abcdefghijklmnopqrstuvwxyz0123456789".to_string()),
        Just("TOKEN=s3cr3t".to_string()),
        Just("--password hunter2".to_string()),
        Just("https://u:p@h/x".to_string()),
        "[a-zA-Z0-9_./-]{1,12}",
        "[ -~]{0,16}",
        "\\PC{0,8}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(" "),
        Just("; "),
        Just(" && "),
        Just(" | "),
        Just(" || "),
        Just("\n")
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec((fragment(), separator()), 0..8).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(f, s)| format!("{f}{s}"))
            .collect::<String>()
    })
}

/// Complete, well-quoted words from read-only programs: no comments, no here-docs.
fn safe_command() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-z0-9_.-]{1,8}",
        Just("'a b'".to_string()),
        Just("\"$HOME\"".to_string()),
        Just("2>&1".to_string()),
        Just("$(pwd)".to_string()),
    ];
    (
        prop_oneof![
            Just("ls"),
            Just("cat"),
            Just("echo"),
            Just("grep x"),
            Just("git status"),
            Just("head -n 3")
        ],
        prop::collection::vec(word, 0..4),
    )
        .prop_map(|(p, ws)| format!("{p} {}", ws.join(" ")))
}

fn write_op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(">"),
        Just(">>"),
        Just(">|"),
        Just("&>"),
        Just("&>>"),
        Just("2>"),
        Just("1>>"),
        Just("<>"),
        Just(">&"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn never_panics(t in text()) {
        let c = classify(&t);
        if c.parse_error.is_some() {
            prop_assert!(!c.read_only);
        }
        prop_assert!(!classify_script(Some(&t)).read_only);
        let r = sanitize_command(&t);
        let _ = operation_summary(&r.text);
    }

    #[test]
    fn arbitrary_unicode_never_panics(t in "\\PC{0,64}") {
        let _ = classify(&t);
        let _ = redact(&t);
    }

    #[test]
    fn redaction_is_idempotent(t in text()) {
        let once = redact(&t);
        let twice = redact(&once.text);
        prop_assert_eq!(&twice.text, &once.text);
        prop_assert!(!twice.changed(), "second pass redacted {:?}", twice.kinds);
    }

    #[test]
    fn write_redirections_are_never_read_only(
        before in prop::collection::vec((safe_command(), separator()), 0..3),
        cmd in safe_command(),
        op in write_op(),
        target in "[a-z][a-z0-9_.]{0,8}",
        after in prop::collection::vec((separator(), safe_command()), 0..3),
    ) {
        let mut t: String = before.into_iter().map(|(c, s)| format!("{c}{s}")).collect();
        t.push_str(&format!("{cmd} {op} {target}"));
        for (s, c) in after {
            t.push_str(s);
            t.push_str(&c);
        }
        let c = classify(&t);
        prop_assert!(!c.read_only, "{:?} judged read-only: {:?}", t, c.commands);
    }
}

// ---- Hostile input everywhere maestro-sh reads (issue 10, "Fuzzing") ----------------------

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use maestro_sh::env::MapEnv;
use serde_json::json;

/// JSON-ish bytes near a Platform answer: a valid shape with fields dropped, retyped or
/// mangled, plus raw garbage.
fn platform_body() -> impl Strategy<Value = Vec<u8>> {
    let state = prop_oneof![
        Just(json!("TOOL_EXECUTION_STATE_ALLOWED")),
        Just(json!("TOOL_EXECUTION_STATE_RUNNING")),
        Just(json!("TOOL_EXECUTION_STATE_DENIED")),
        Just(json!("TOOL_EXECUTION_STATE_FAILED")),
        Just(json!("TOOL_EXECUTION_STATE_CANCELLED")),
        Just(json!("TOOL_EXECUTION_STATE_UNSPECIFIED")),
        Just(json!("ALLOWED")),
        Just(json!("tool_execution_state_allowed")),
        Just(json!(" TOOL_EXECUTION_STATE_ALLOWED")),
        Just(json!(2)),
        Just(json!(null)),
        Just(json!(true)),
        "[ -~]{0,30}".prop_map(|s| json!(s)),
    ];
    let id = prop_oneof![
        Just(json!("te_1")),
        Just(json!("")),
        Just(json!("   ")),
        Just(json!(7)),
        Just(json!(null)),
        "\\PC{0,20}".prop_map(|s| json!(s)),
    ];
    let shaped = (state, id, any::<bool>(), any::<bool>(), any::<u8>()).prop_map(
        |(state, id, with_state, with_id, wrap)| {
            let mut exec = serde_json::Map::new();
            if with_state {
                exec.insert("state".into(), state);
            }
            if with_id {
                exec.insert("id".into(), id);
            }
            let v = match wrap % 5 {
                0 => json!({"execution": exec}),
                1 => json!({"execution": exec, "idempotentReplay": "yes"}),
                2 => json!(exec),
                3 => json!({"execution": [exec]}),
                _ => json!({"execution": exec, "padding": "x".repeat(64)}),
            };
            v.to_string().into_bytes()
        },
    );
    prop_oneof![
        4 => shaped,
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => "[{}\\[\\]\":,a-z0-9 ]{0,48}".prop_map(String::into_bytes),
    ]
}

/// A one-request-at-a-time HTTP server answering every request with the current body.
fn fake_platform(body: Arc<Mutex<Vec<u8>>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut req = vec![0u8; len];
                let _ = r.read_exact(&mut req);
                let b = body.lock().unwrap().clone();
                let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            );
                let _ = conn.write_all(&b);
            });
        }
    });
    url
}

fn env_of(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// What the body literally says, if it is the one shape that may allow.
fn literally_allows(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let e = &v["execution"];
    let id_ok = e["id"].as_str().is_some_and(|s| !s.trim().is_empty());
    let state_ok = matches!(
        e["state"].as_str(),
        Some("TOOL_EXECUTION_STATE_ALLOWED" | "TOOL_EXECUTION_STATE_RUNNING")
    );
    id_ok && state_ok
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The Platform response parser and the decision on it: no panic, and a command is allowed
    /// only when the answer literally says ALLOWED/RUNNING for a non-empty id.
    #[test]
    fn platform_answers_never_allow_unless_they_say_so(body in platform_body()) {
        static SERVER: std::sync::OnceLock<(String, Arc<Mutex<Vec<u8>>>)> = std::sync::OnceLock::new();
        let (url, slot) = SERVER.get_or_init(|| {
            let slot = Arc::new(Mutex::new(Vec::new()));
            (fake_platform(slot.clone()), slot)
        });
        // A waiting answer would start an approval wait; that path has its own tests.
        prop_assume!(!String::from_utf8_lossy(&body).contains("WAITING"));
        *slot.lock().unwrap() = body.clone();
        let env = env_of(&[
            ("TOOL_EXECUTION_SERVICE_URL", url),
            ("TOOL_EXECUTION_SERVICE_TOKEN", "t"),
            ("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", "o"),
            ("TOOL_EXECUTION_SERVICE_WORKSPACE_ID", "w"),
            ("TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS", "1"),
            ("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "3000"),
            ("MAESTRO_TOOL_CALL_ID", "call-fuzz"),
        ]);
        let cfg = maestro_sh::config::PlatformConfig::load(&env).unwrap();
        let client = Arc::new(maestro_sh::platform::Client::new(&cfg));
        let ctx = maestro_sh::context::Context::from_env(&env, || "call-fuzz".into());
        let subject = maestro_sh::subject::describe(
            &maestro_sh::argv::parse("bash".as_ref(), &["-c".into(), "true".into()], false),
            &["-c".into(), "true".into()],
        ).unwrap();
        let sanitized = sanitize_command(&subject.command);
        let labels = maestro_sh::request::Labels::for_command(&sanitized.text);
        let req = maestro_sh::request::execute_tool(
            &ctx,
            maestro_sh::request::Tenant { organization_id: "o", workspace_id: "w" },
            &subject,
            &sanitized,
            &labels,
            maestro_sh::mode::Mode::Governed,
        );
        let mut sidecar = maestro_sh::events::Sidecar::none();
        let decider = maestro_sh::decide::Decider {
            platform: client.clone(),
            tenant: (&cfg).into(),
            ctx: &ctx,
            labels: &labels,
            wait: maestro_sh::decide::WaitSettings::default(),
            decisions_fd: None,
            data_dir: None,
        };
        let got = decider.ask(&req, &mut sidecar);
        if got.is_ok() {
            prop_assert!(literally_allows(&body), "allowed on {:?}", String::from_utf8_lossy(&body));
        }
        if let Err(r) = got {
            let line = r.line();
            prop_assert!(!line.contains('\n') && line.len() < 2048);
        }
    }

    /// The flags snapshot: never a panic; anything that is not a JSON snapshot fails closed.
    #[test]
    fn flags_snapshot_fails_closed(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96),
        "[{}\\[\\]\":,a-z0-9. ]{0,64}".prop_map(String::into_bytes),
        Just(br#"{"flags":[{"key":"maestro.platform_runtime.agent_runtime_observe","enabled":"yes"}]}"#.to_vec()),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flags.json");
        std::fs::write(&p, &bytes).unwrap();
        let env = env_of(&[("EVALOPS_FEATURE_FLAGS_PATH", p.to_str().unwrap())]);
        let got = maestro_sh::mode::Policy::from_env(&env);
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            prop_assert!(got.is_err());
        }
    }

    /// The local policy: never a panic; malformed files are errors (the caller refuses).
    #[test]
    fn local_policy_fails_closed(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96),
        "[{}\\[\\]\":,a-z ]{0,64}".prop_map(String::into_bytes),
        (prop::collection::vec("[a-z ]{0,6}", 0..3), "[a-z_-]{0,8}").prop_map(|(p, d)| {
            json!({"rules": [{"prefix": p, "decision": d}]}).to_string().into_bytes()
        }),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.json");
        std::fs::write(&p, &bytes).unwrap();
        let env = env_of(&[("MAESTRO_SH_POLICY_FILE", p.to_str().unwrap())]);
        let got = maestro_sh::local_policy::load(&env);
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            prop_assert!(got.is_err());
        }
        if let Ok(Some(policy)) = got {
            let _ = policy.evaluate(&classify("git push origin main; rm -rf x"));
        }
    }

    /// The credentials file: never a panic; a token comes out only as one non-empty word.
    #[test]
    fn credentials_file_yields_a_word_or_an_error(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96),
        "[ -~\\n]{0,48}".prop_map(String::into_bytes),
        "[a-zA-Z0-9 \\n]{0,24}".prop_map(|t| json!({"token": t}).to_string().into_bytes()),
    ]) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials");
        std::fs::write(&p, &bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Ok(t) = maestro_sh::config::read_credentials(&p) {
            let t = t.expose();
            prop_assert!(!t.is_empty() && !t.contains(char::is_whitespace));
        }
    }

    /// The argv model: any bytes as arguments, under any name, never panic.
    #[test]
    fn argv_model_never_panics(
        argv0 in prop_oneof![Just("bash"), Just("sh"), Just("maestro-sh"), Just("/x/-bash"), Just("")],
        args in prop::collection::vec(prop_oneof![
            Just("-c".to_string()), Just("-s".to_string()), Just("-o".to_string()),
            Just("--".to_string()), Just("-".to_string()), Just("+o".to_string()),
            Just("--rcfile".to_string()), Just("-lic".to_string()), Just("--norc".to_string()),
            "-[a-zA-Z+]{1,4}", "[ -~]{0,8}",
        ], 0..6),
        raw in prop::collection::vec(any::<u8>(), 0..8),
        terminal in any::<bool>(),
    ) {
        use std::os::unix::ffi::OsStringExt;
        let mut os: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        os.push(std::ffi::OsString::from_vec(raw));
        let _ = maestro_sh::argv::parse(argv0.as_ref(), &os, terminal);
    }

    /// The redactor: never a marker inside another, never a broken one, messages idempotent.
    #[test]
    fn markers_never_nest(t in text()) {
        let r = sanitize_command(&t);
        prop_assert!(!r.text.contains("[REDACTED:[") && !regex_lite_nested(&r.text), "{:?} → {:?}", t, r.text);
        let m = maestro_sh::redact::redact_message(&t);
        prop_assert_eq!(maestro_sh::redact::redact_message(&m.text).text, m.text.clone());
        let _ = maestro_sh::outcome::inert(&t);
    }
}

/// `[REDACTED:<kind>` followed by another `[REDACTED:` before its closing `]`.
fn regex_lite_nested(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find("[REDACTED:") {
        let after = &rest[i + 10..];
        let close = after.find(']').unwrap_or(after.len());
        if after[..close].contains('[') {
            return true;
        }
        rest = after;
    }
    false
}
