//! Starting `maestro-platform-dev serve` and reading the URL it prints once listening. Shared
//! with the dev crate's own tests (crates/maestro-platform-dev/tests/cli.rs includes this file
//! by path), so it uses std only.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawn `serve` (a `maestro-platform-dev serve …` command) with stdout piped and stderr
/// discarded, and read its first line: `http://127.0.0.1:PORT`, printed once it listens.
/// The child and that URL; panics (killing the child) if the line is anything else.
pub fn start(serve: &mut Command) -> (Child, String) {
    let mut child = serve
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start maestro-platform-dev");
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line);
    let url = line.trim().to_string();
    if read.is_err() || !url.starts_with("http://127.0.0.1:") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("maestro-platform-dev serve: unexpected first line {line:?} ({read:?})");
    }
    (child, url)
}
