//! The process entry: from argv to the real shell.

use std::ffi::OsString;
use std::io::IsTerminal;

use crate::argv::{self, Personality};
use crate::realshell::{self, ExecPlan};

/// Exit status when no real shell can be found (as a shell reports "command not found").
const NO_SHELL: i32 = 127;

/// Run maestro-sh with this process's argv and environment; returns the exit status only when
/// the real shell was not exec'd.
pub fn main() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let argv0 = argv
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("maestro-sh"));
    let args = argv.get(1..).unwrap_or_default();
    let personality = Personality::from_argv0(&argv0);

    // Only under our own name, and only options bash rejects, so no bash invocation changes.
    if personality == Personality::MaestroSh {
        if let Some(status) = crate::debug::dispatch(args) {
            return status;
        }
    }

    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let _invocation = argv::parse(&argv0, args, terminal);
    passthrough(personality, &argv)
}

/// Replace this process with the real shell, argv unchanged.
fn passthrough(personality: Personality, argv: &[OsString]) -> i32 {
    let shell = match realshell::find_from_env(personality.real_name()) {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!("maestro-sh: {e}");
            return NO_SHELL;
        }
    };
    let plan = ExecPlan::new(&shell, argv);
    let err = plan.exec();
    eprintln!("maestro-sh: cannot execute {}: {err}", shell.display());
    ExecPlan::failure_status(err)
}
