//! The outcomes table (DESIGN.md): what happened, whether the command runs, the exit status,
//! the sidecar's `governed_outcome`, and the one stderr line a refusal prints.

use std::fmt::Write;

/// Exit status of every refusal.
pub const REFUSED: i32 = 126;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Observed,
    Allowed,
    Approved,
    Denied,
    ApprovalTimeout,
    PlatformUnavailable,
    PlatformMalformed,
    Misconfigured,
    Cancelled,
    /// ExecuteTool replayed an execution of this step that was already started (running,
    /// finished, waiting in another invocation): never permission to run again.
    AlreadyRan,
    /// The caller reused a step id (tool call id) for a different command.
    StepIdReused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Observed => "observed",
            Outcome::Allowed => "allowed",
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::ApprovalTimeout => "approval_timeout",
            Outcome::PlatformUnavailable => "platform_unavailable",
            Outcome::PlatformMalformed => "platform_malformed",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Cancelled => "cancelled",
            Outcome::AlreadyRan => "already_ran",
            Outcome::StepIdReused => "step_id_reused",
        }
    }

    /// Does the command run?
    pub fn runs(self) -> bool {
        matches!(
            self,
            Outcome::Observed | Outcome::Allowed | Outcome::Approved
        )
    }

    /// What to do about it, for the stderr line.
    fn advice(self) -> &'static str {
        match self {
            Outcome::Denied => "the command was not run; do not retry it unchanged: take another approach, or ask the user",
            // Not "approve it, then run it again": after our own timeout the request is
            // withdrawn, and after an expiry it is closed, so there is nothing left to approve
            // until the retry asks (or adopts a request a killed run left open).
            Outcome::ApprovalTimeout => "the command was not run; nobody approved it in time: tell the user it needs their approval in EvalOps Platform, then run it again (the retry waits for that approval)",
            Outcome::PlatformUnavailable => "the command was not run; retry later, or tell the user that Platform is unreachable (maestro-sh --doctor)",
            Outcome::PlatformMalformed => "the command was not run; Platform's answer could not be trusted: tell the user (maestro-sh --doctor)",
            Outcome::Misconfigured => "the command was not run; retrying will not help: tell the user to fix the configuration (maestro-sh --doctor)",
            Outcome::Cancelled => "the command was not run",
            Outcome::AlreadyRan => "the command was not run again; to run it again use a new tool call id (MAESTRO_TOOL_CALL_ID)",
            Outcome::StepIdReused => "the command was not run; give each command its own tool call id (MAESTRO_TOOL_CALL_ID)",
            Outcome::Observed | Outcome::Allowed | Outcome::Approved => "",
        }
    }
}

/// A refusal: the outcome, why, and the ids known so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: Outcome,
    pub reason: String,
    pub tool_execution_id: Option<String>,
    pub approval_request_id: Option<String>,
    /// The signal that cancelled the wait, when one did: the caller reports the refusal, then
    /// dies by it, as bash would.
    pub signal: Option<i32>,
}

impl Refusal {
    /// The reason is made inert and cut to [`MAX_REASON`] here, at the source, so every
    /// consumer (stderr line, sidecar, status line) gets clean, bounded text.
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Refusal {
        Refusal {
            outcome,
            reason: inert_max(&reason.into(), MAX_REASON),
            tool_execution_id: None,
            approval_request_id: None,
            signal: None,
        }
    }

    pub fn with_signal(mut self, signo: i32) -> Refusal {
        self.signal = Some(signo);
        self
    }

    pub fn with_execution(mut self, id: Option<&str>) -> Refusal {
        self.tool_execution_id = id.map(id_inert);
        self
    }

    pub fn with_approval(mut self, id: Option<&str>) -> Refusal {
        self.approval_request_id = id.map(id_inert);
        self
    }

    /// `maestro-sh: <outcome>: <reason>; <advice> (tool_execution_id=…, approval_request_id=…)`,
    /// one line, secrets redacted.
    pub fn line(&self) -> String {
        // Inert (cut, no escapes: the reason often quotes Platform), then secret values
        // redacted — values only, so the words of the message stay readable.
        let reason = crate::redact::redact_message(&inert_max(&self.reason, MAX_REASON)).text;
        let mut s = format!("maestro-sh: {}: {}", self.outcome.as_str(), reason.trim());
        let advice = self.outcome.advice();
        if !advice.is_empty() {
            let _ = write!(s, "; {advice}");
        }
        let _ = write!(
            s,
            " (tool_execution_id={}, approval_request_id={})",
            self.tool_execution_id
                .as_deref()
                .map_or("none".into(), id_inert),
            self.approval_request_id
                .as_deref()
                .map_or("none".into(), id_inert)
        );
        s
    }
}

/// A refusal's reason (ours, often quoting Platform's [`MAX_PLATFORM_TEXT`]) is cut to this.
pub const MAX_REASON: usize = 600;

/// An id from Platform, inert and at most 128 characters.
pub fn id_inert(id: &str) -> String {
    inert_max(id, 128)
}

/// Platform text (ids, reasons, error messages) is cut to this many characters before it
/// reaches stderr, the terminal status line or the sidecar.
pub const MAX_PLATFORM_TEXT: usize = 300;

/// Make untrusted text inert for a one-line message: escape sequences (CSI, OSC, other ESC
/// forms) removed, every other control character (C0, DEL, C1) and bidi override or isolate
/// replaced by a space, runs of spaces collapsed, and the result cut to [`MAX_PLATFORM_TEXT`]
/// characters (with `...`). The input is never scanned past a fixed multiple of the cap, so a
/// 300 KB reason costs no more than a short one.
pub fn inert(s: &str) -> String {
    inert_max(s, MAX_PLATFORM_TEXT)
}

/// [`inert`] with an explicit cap (ids use a shorter one).
pub fn inert_max(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut chars = s.chars().peekable();
    let mut count = 0usize;
    let mut truncated = false;
    let mut last_space = false;
    let mut scanned = 0usize;
    while let Some(c) = chars.next() {
        scanned += 1;
        if scanned > max * 64 {
            truncated = true;
            break;
        }
        let mut push = |c: char, out: &mut String| {
            if c == ' ' {
                if last_space || out.is_empty() {
                    return;
                }
                last_space = true;
            } else {
                last_space = false;
            }
            out.push(c);
            count += 1;
        };
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: ESC [ params... final byte in @..~
                Some('[') => {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC / DCS / PM / APC / SOS: up to BEL or ESC \\
                Some(']' | 'P' | '^' | '_' | 'X') => {
                    chars.next();
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Two-character escapes.
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => push(' ', &mut out),
            c if c.is_control() => push(' ', &mut out),
            c => push(c, &mut out),
        }
        if count > max {
            truncated = true;
            break;
        }
    }
    if truncated || count > max {
        let mut t: String = out.chars().take(max.saturating_sub(3)).collect();
        t.truncate(t.trim_end().len());
        t.push_str("...");
        return t;
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let r =
            Refusal::new(Outcome::Denied, "policy says no\nreally").with_execution(Some("te_1"));
        assert_eq!(
            r.line(),
            "maestro-sh: denied: policy says no really; the command was not run; do not retry it unchanged: take another approach, or ask the user (tool_execution_id=te_1, approval_request_id=none)"
        );
        assert!(!Outcome::Denied.runs() && Outcome::Approved.runs());
    }

    #[test]
    fn approval_timeout_advice_does_not_send_the_user_to_a_withdrawn_request() {
        // Seen under Maestro's real bash tool: after MAESTRO_SH_APPROVAL_TIMEOUT_MS the request
        // is cancelled on Platform, so "approve it, then run it again" pointed the user at a
        // request that was no longer pending. The advice must hold whether the request was
        // withdrawn, expired or left open for a retry: the retry is what waits for the approval.
        let line = Refusal::new(Outcome::ApprovalTimeout, "no decision within 2s").line();
        assert!(!line.contains("approve it in"), "{line}");
        assert!(
            line.contains("then run it again (the retry waits for that approval)"),
            "{line}"
        );
    }

    #[test]
    fn platform_text_is_inert() {
        let hostile = "ok\n\u{1b}[2J\u{1b}]0;title\u{7}\r\u{202e}evil\u{9b}x";
        assert_eq!(inert(hostile), "ok evil x");
        let big = "A".repeat(300_000);
        let t = inert(&big);
        assert_eq!(t.chars().count(), MAX_PLATFORM_TEXT);
        assert!(t.ends_with("..."));
        let r = Refusal::new(Outcome::Denied, format!("no\n{big}"))
            .with_execution(Some("te_\u{1b}[31mred\n"));
        let line = r.line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.len() < 1024, "{}", line.len());
        assert!(line.contains("tool_execution_id=te_red"), "{line}");
    }
}
