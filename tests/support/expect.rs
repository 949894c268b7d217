//! Declared expectations of one governed run, checked in one place (just's `Test` style): the
//! test states what must hold before the run, and one failure message lists every expectation
//! that did not, with the command, its status, stdout, stderr, marker and sidecar outcome.

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

/// What a run must show. Unset fields are not checked.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Expect {
    /// A name for the case in failure messages (loops over tables).
    pub case: Option<String>,
    pub status: Option<i32>,
    pub signal: Option<i32>,
    /// The last `tool_call.completed` event's `governed_outcome`.
    pub outcome: Option<String>,
    /// Whether the marker file exists (the command ran).
    pub ran: Option<bool>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<String>,
    pub stderr_starts_with: Option<String>,
    pub stderr_contains: Vec<String>,
    pub stderr_lacks: Vec<String>,
    pub stderr_lines: Option<usize>,
}

/// What the run showed, as far as the expectations look.
pub struct Seen<'a> {
    /// `maestro-sh -c …` as run.
    pub command: String,
    pub out: &'a Output,
    pub outcome: Option<String>,
    pub ran: bool,
    /// Whether the command text mentions `$MARKER`: without it `ran` proves nothing.
    pub marked: bool,
}

impl Expect {
    /// Nothing to check (a case name alone is not an expectation).
    pub fn is_empty(&self) -> bool {
        Expect {
            case: None,
            ..self.clone()
        } == Expect::default()
    }

    /// Every expectation that `seen` does not meet, one line each.
    pub fn failures(&self, seen: &Seen) -> Vec<String> {
        let out = seen.out;
        let err = String::from_utf8_lossy(&out.stderr);
        let mut failed = Vec::new();
        if let Some(code) = self.status {
            if out.status.code() != Some(code) {
                failed.push(format!("exit status: expected {code}, got {}", out.status));
            }
        }
        if let Some(sig) = self.signal {
            if out.status.signal() != Some(sig) {
                failed.push(format!("death by signal {sig}, got {}", out.status));
            }
        }
        if let Some(want) = &self.outcome {
            if seen.outcome.as_deref() != Some(want.as_str()) {
                failed.push(format!(
                    "sidecar outcome: expected {want:?}, got {:?}",
                    seen.outcome
                ));
            }
        }
        if let Some(want) = self.ran {
            if !seen.marked {
                failed.push(
                    "ran: the command never touches $MARKER, so the marker proves nothing"
                        .to_string(),
                );
            } else if seen.ran != want {
                failed.push(format!(
                    "ran: expected the command {}to run, it {}",
                    if want { "" } else { "not " },
                    if seen.ran { "ran" } else { "did not" }
                ));
            }
        }
        if let Some(want) = &self.stdout {
            if &out.stdout != want {
                failed.push(format!(
                    "stdout: expected {:?}",
                    String::from_utf8_lossy(want)
                ));
            }
        }
        if let Some(want) = &self.stderr {
            if err != want.as_str() {
                failed.push(format!("stderr: expected {want:?}"));
            }
        }
        if let Some(prefix) = &self.stderr_starts_with {
            if !err.starts_with(prefix.as_str()) {
                failed.push(format!("stderr starts with {prefix:?}"));
            }
        }
        for needle in &self.stderr_contains {
            if !err.contains(needle.as_str()) {
                failed.push(format!("stderr contains {needle:?}"));
            }
        }
        for needle in &self.stderr_lacks {
            if err.contains(needle.as_str()) {
                failed.push(format!("stderr does not contain {needle:?}"));
            }
        }
        if let Some(n) = self.stderr_lines {
            let got = err.lines().count();
            if got != n {
                failed.push(format!("stderr has {n} line(s), got {got}"));
            }
        }
        failed
    }

    /// Panic with one readable message if any expectation fails.
    #[track_caller]
    pub fn assert(&self, seen: &Seen) {
        let failed = self.failures(seen);
        if failed.is_empty() {
            return;
        }
        let mut msg = String::new();
        let case = self
            .case
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        let _ = writeln!(
            msg,
            "{}{case}: {} expectation(s) failed:",
            seen.command,
            failed.len()
        );
        for f in &failed {
            let _ = writeln!(msg, "  - {f}");
        }
        let _ = writeln!(msg, "status: {}", seen.out.status);
        let _ = writeln!(msg, "sidecar outcome: {:?}", seen.outcome);
        let _ = writeln!(msg, "ran (marker): {}", seen.ran);
        let _ = writeln!(msg, "stdout: {}", shown(&seen.out.stdout));
        let _ = write!(msg, "stderr: {}", shown(&seen.out.stderr));
        panic!("{msg}");
    }
}

/// Bytes as text for a failure message, cut at 2000 characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(2000).collect();
    if cut.len() < text.len() {
        cut.push_str("…(cut)");
    }
    format!("{cut:?}")
}

/// The checker itself: each kind of expectation can fail, and a run that meets them passes.
#[test]
fn expectations_fail_when_unmet_and_pass_when_met() {
    let out = Output {
        status: std::process::ExitStatus::from_raw(126 << 8),
        stdout: Vec::new(),
        stderr: b"maestro-sh: denied: no\n".to_vec(),
    };
    let seen = |outcome: &str, ran, marked| Seen {
        command: "maestro-sh -c true".into(),
        out: &out,
        outcome: Some(outcome.into()),
        ran,
        marked,
    };
    let refused = Expect {
        status: Some(126),
        outcome: Some("denied".into()),
        ran: Some(false),
        stdout: Some(Vec::new()),
        stderr_starts_with: Some("maestro-sh: denied: ".into()),
        stderr_contains: vec!["no".into()],
        stderr_lacks: vec!["token".into()],
        stderr_lines: Some(1),
        ..Expect::default()
    };
    assert_eq!(
        refused.failures(&seen("denied", false, true)),
        Vec::<String>::new()
    );
    assert_eq!(refused.failures(&seen("allowed", false, true)).len(), 1);
    assert_eq!(refused.failures(&seen("denied", true, true)).len(), 1);
    // Without $MARKER in the command, "did not run" proves nothing and is not taken.
    assert_eq!(refused.failures(&seen("denied", false, false)).len(), 1);
    let other = Expect {
        status: Some(0),
        signal: Some(9),
        stdout: Some(b"x".to_vec()),
        stderr: Some(String::new()),
        stderr_starts_with: Some("x".into()),
        stderr_contains: vec!["absent".into()],
        stderr_lacks: vec!["denied".into()],
        stderr_lines: Some(2),
        ..Expect::default()
    };
    assert_eq!(other.failures(&seen("denied", false, true)).len(), 8);
    assert!(Expect::default().is_empty());
    assert!(!refused.is_empty());
}
