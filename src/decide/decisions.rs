//! Maestro's approval UI, when wired: one JSON line per decision on `MAESTRO_SH_DECISIONS_FD`
//! (`{"approved": true|false, "decided_by"?, "reason"?, "approval_request_id"?}`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, RawFd};

use crate::env::Env;

pub const DECISIONS_FD_VAR: &str = "MAESTRO_SH_DECISIONS_FD";

/// One line from the decisions fd.
pub enum DecisionLine {
    Decided {
        approved: bool,
        by: Option<String>,
        reason: Option<String>,
    },
    Closed,
    Bad(String),
}

/// Read one line (at most 64 KiB) and parse it for approval request `approval_id`.
pub fn read_decision(decisions: Option<&mut BufReader<File>>, approval_id: &str) -> DecisionLine {
    let Some(reader) = decisions else {
        return DecisionLine::Closed;
    };
    let mut line = String::new();
    match Read::take(reader, 64 * 1024).read_line(&mut line) {
        Ok(0) => return DecisionLine::Closed,
        Ok(_) => {}
        Err(e) => return DecisionLine::Bad(format!("unreadable ({e})")),
    }
    parse_decision(&line, approval_id)
}

/// Parse one decision line: `{"approved": true|false, "decided_by"?: str, "reason"?: str,
/// "approval_request_id"?: str}` (camelCase keys accepted). Anything else is not a decision.
pub fn parse_decision(line: &str, approval_id: &str) -> DecisionLine {
    let v: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(e) => return DecisionLine::Bad(format!("not JSON ({e})")),
    };
    let field = |a: &str, b: &str| v.get(a).or_else(|| v.get(b));
    let approved = match field("approved", "approved") {
        Some(serde_json::Value::Bool(b)) => *b,
        _ => match field("decision", "decision").and_then(|d| d.as_str()) {
            Some("approved" | "DECISION_TYPE_APPROVED") => true,
            Some("denied" | "DECISION_TYPE_DENIED") => false,
            _ => return DecisionLine::Bad("needs \"approved\": true or false".into()),
        },
    };
    if let Some(id) = field("approval_request_id", "approvalRequestId") {
        if id.as_str() != Some(approval_id) {
            return DecisionLine::Bad(format!(
                "it is for approval request {id}, not {approval_id}"
            ));
        }
    }
    let text = |a: &str, b: &str| {
        field(a, b)
            .and_then(|x| x.as_str())
            .map(|s| crate::platform::truncate(s, 200))
    };
    DecisionLine::Decided {
        approved,
        by: text("decided_by", "decidedBy"),
        reason: text("reason", "reason"),
    }
}

/// `MAESTRO_SH_DECISIONS_FD`, checked: `Ok(None)` when unset; an error naming the variable
/// when it is not a number above 2 or not an open descriptor. Marks the fd close-on-exec at
/// once, so the command never inherits it, whether or not a wait follows.
pub fn fd_from_env(env: &dyn Env) -> Result<Option<RawFd>, String> {
    env.first_value(&[DECISIONS_FD_VAR])
        .map(|raw| crate::env::inherited_fd(DECISIONS_FD_VAR, &raw, ""))
        .transpose()
}

/// Take ownership of the checked decisions fd for the wait (at most once per process).
pub fn open(fd: RawFd) -> BufReader<File> {
    // SAFETY: the caller handed us this fd (MAESTRO_SH_DECISIONS_FD) for our exclusive use,
    // fd_from_env checked it is open, and the wait opens it once.
    BufReader::new(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod decision_line_fuzz {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[{}\\[\\]\":,a-z0-9 ]{0,48}",
            (
                prop_oneof![
                    Just(serde_json::json!(true)),
                    Just(serde_json::json!(false)),
                    Just(serde_json::json!("true")),
                    Just(serde_json::json!(1)),
                    Just(serde_json::json!(null)),
                ],
                prop_oneof![Just("apr_1"), Just("apr_2"), Just("")],
                any::<bool>(),
                prop_oneof![Just("approved"), Just("decision"), Just("Approved")],
            )
                .prop_map(|(v, id, with_id, key)| {
                    let mut o = serde_json::Map::new();
                    o.insert(key.into(), v);
                    if with_id {
                        o.insert("approval_request_id".into(), id.into());
                    }
                    serde_json::Value::Object(o).to_string()
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The decisions-fd line: never a panic, and "approved" only from a JSON object that
        /// says `"approved": true` (or decision approved) for this approval request.
        #[test]
        fn only_an_explicit_approval_approves(l in line()) {
            if let DecisionLine::Decided { approved: true, .. } = parse_decision(&l, "apr_1") {
                let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
                let explicit = v.get("approved") == Some(&serde_json::json!(true))
                    || matches!(
                        v.get("decision").and_then(|d| d.as_str()),
                        Some("approved" | "DECISION_TYPE_APPROVED")
                    );
                prop_assert!(explicit, "{l}");
                if let Some(id) = v.get("approval_request_id") {
                    prop_assert_eq!(id, &serde_json::json!("apr_1"));
                }
            }
        }
    }
}
