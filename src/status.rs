//! What maestro-sh itself writes on stderr, and when (`MAESTRO_SH_STATUS`).
//!
//! Under Maestro's bash tool stderr is part of the tool result: the model reads the command's
//! stdout, then its stderr, then `Exit code: N` (platform-contract.md, section 9). The
//! command's own output is never touched; this module decides only about *our* lines:
//!
//! | kind | example | why a model needs it |
//! |---|---|---|
//! | refusal | `maestro-sh: denied: …; <what to do next> (ids)` | the command did not run; without it the model sees only `Exit code: 126` |
//! | warning | a configuration problem (flags service without a snapshot, bad sidecar fd) | the operator asked for governance and is not getting it |
//! | wait | `maestro-sh: waiting for approval …` / `approval granted after …` / Platform unreachable notes | a person at a terminal watching the wait; appended to an approved command's output they only add noise for a model |
//!
//! `MAESTRO_SH_STATUS`:
//! - `auto` (default): refusals and warnings always; wait lines only when stderr is a
//!   terminal. A model then reads exactly what bash would have printed for every command
//!   that ran, and one actionable line for every command that did not.
//! - `always`: everything, also when stderr is not a terminal (logs, CI).
//! - `refusals`: the refusal line only (no warnings, no wait lines).
//! - `never`: nothing; exit status 126 and the sidecar still tell.
//!
//! An unknown value counts as `auto` (with a warning): a typo must not hide refusals.

use std::io::IsTerminal;
use std::sync::OnceLock;

pub const STATUS_VAR: &str = "MAESTRO_SH_STATUS";

/// The `MAESTRO_SH_STATUS` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Auto,
    Always,
    Refusals,
    Never,
}

/// A kind of line maestro-sh may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Refusal,
    Warning,
    Wait,
}

impl Status {
    /// Parse a value; `None` for an unknown one.
    pub fn parse(raw: &str) -> Option<Status> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Status::Auto),
            "always" => Some(Status::Always),
            "refusals" => Some(Status::Refusals),
            "never" => Some(Status::Never),
            _ => None,
        }
    }

    /// Whether a line of `kind` is written, given whether stderr is a terminal.
    pub fn shows(self, kind: LineKind, stderr_tty: bool) -> bool {
        match self {
            Status::Always => true,
            Status::Never => false,
            Status::Refusals => kind == LineKind::Refusal,
            Status::Auto => kind != LineKind::Wait || stderr_tty,
        }
    }
}

/// The setting of this process (read once; an env lookup, nothing else).
pub fn current() -> Status {
    static CURRENT: OnceLock<Status> = OnceLock::new();
    *CURRENT.get_or_init(|| {
        let raw = std::env::var(STATUS_VAR).unwrap_or_default();
        Status::parse(&raw).unwrap_or_else(|| {
            eprintln!(
                "maestro-sh: warning: {STATUS_VAR}={raw:?} is not one of auto, always, refusals, never; using auto"
            );
            Status::Auto
        })
    })
}

/// Whether a line of `kind` goes to stderr in this process.
pub fn shows(kind: LineKind) -> bool {
    current().shows(kind, std::io::stderr().is_terminal())
}

/// Write `line` (one line, no newline) on stderr when `kind` is shown.
pub fn line(kind: LineKind, line: &str) {
    if shows(kind) {
        eprintln!("{line}");
    }
}

/// `maestro-sh: warning: <msg>` when warnings are shown.
pub fn warn(msg: &str) {
    line(LineKind::Warning, &format!("maestro-sh: warning: {msg}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use LineKind::*;
        use Status::*;
        // (setting, kind, tty, shown)
        let cases = [
            (Auto, Refusal, false, true),
            (Auto, Warning, false, true),
            (Auto, Wait, false, false),
            (Auto, Wait, true, true),
            (Always, Wait, false, true),
            (Refusals, Refusal, false, true),
            (Refusals, Warning, true, false),
            (Refusals, Wait, true, false),
            (Never, Refusal, true, false),
            (Never, Warning, false, false),
        ];
        for (s, k, tty, want) in cases {
            assert_eq!(s.shows(k, tty), want, "{s:?} {k:?} tty={tty}");
        }
        assert_eq!(Status::parse(" Always "), Some(Always));
        assert_eq!(Status::parse(""), Some(Auto));
        assert_eq!(Status::parse("quiet"), None);
    }
}
