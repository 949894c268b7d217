//! The terminal status line of an approval wait: the request's details once, then a live line
//! on a TTY (two plain lines otherwise). Never stdout; only when `MAESTRO_SH_STATUS` shows wait
//! lines (by default: stderr is a terminal).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// The terminal status line: live on a TTY, two plain lines otherwise. Never stdout. Written
/// only when `MAESTRO_SH_STATUS` shows wait lines (by default: stderr is a terminal).
pub(super) struct StatusLine {
    tty: bool,
    show: bool,
    started: Instant,
    approval_id: String,
    /// Why Platform asks (redacted, cut), shown once when the wait starts.
    reason: String,
    /// `tool_execution_id=…, approval_request_id=…`, on the first and the last line.
    ids: String,
}

/// Columns of the terminal on stderr (80 when it cannot be told).
fn terminal_columns() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

impl StatusLine {
    pub(super) fn new(exec_id: &str, approval_id: &str, reason: &str) -> StatusLine {
        let reason = crate::redact::redact_message(reason).text;
        let reason = if reason.trim().is_empty() {
            "approval required".to_string()
        } else {
            crate::outcome::inert_max(&reason, 120)
        };
        // Platform's ids are inert too (no escapes on the terminal's status line).
        let (exec_id, approval_id) = (
            &crate::outcome::id_inert(exec_id),
            &crate::outcome::id_inert(approval_id),
        );
        StatusLine {
            tty: std::io::stderr().is_terminal(),
            show: crate::status::shows(crate::status::LineKind::Wait),
            started: Instant::now(),
            approval_id: approval_id.to_string(),
            reason,
            ids: format!("tool_execution_id={exec_id}, approval_request_id={approval_id}"),
        }
    }

    /// The details once, on their own line (a TTY or not), then the live line on a TTY.
    pub(super) fn start(&mut self) {
        if !self.show {
            return;
        }
        let where_ = if self.tty {
            "approve or deny it in EvalOps Platform; Ctrl-C cancels"
        } else {
            "approve or deny it in EvalOps Platform"
        };
        eprintln!(
            "maestro-sh: waiting for approval: {} ({}); {where_}",
            self.reason, self.ids
        );
        self.tick();
    }

    /// Redraw the live line, cut to the terminal's width so it never wraps (a wrapped line
    /// cannot be cleared with one carriage return).
    pub(super) fn tick(&mut self) {
        if !self.tty || !self.show {
            return;
        }
        let line = format!(
            "maestro-sh: waiting for approval {} ({}s) - approve in EvalOps Platform, Ctrl-C to cancel",
            self.approval_id,
            self.started.elapsed().as_secs(),
        );
        let width = terminal_columns().saturating_sub(1).max(20);
        let line: String = line.chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Erase the live line (TTY only), so the next line starts clean.
    fn clear(&self) {
        if self.tty && self.show {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }

    /// A one-off remark (Platform down, back again): on its own line.
    pub(super) fn note(&mut self, msg: &str) {
        if !self.show {
            return;
        }
        self.clear();
        eprintln!(
            "maestro-sh: {}",
            crate::redact::redact_message(&crate::outcome::inert(msg)).text
        );
    }

    pub(super) fn finish(&mut self, how: &str) {
        if !self.show {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.clear();
        eprintln!("maestro-sh: approval {how} after {secs:.1}s ({})", self.ids);
    }
}
