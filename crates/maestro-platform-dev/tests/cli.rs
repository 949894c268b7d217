//! The binary's own front door: `serve` prints its URL once listening and answers the contract
//! there; a bad flag is refused. (maestro-sh's integration tests drive it in depth; having an
//! integration test here also makes `cargo test` build the binary before any test runs.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

// The root package's helper for starting `serve` and reading its URL (std only).
#[path = "../../../tests/support/serve.rs"]
mod serve;

const BIN: &str = env!("CARGO_BIN_EXE_maestro-platform-dev");

#[test]
fn serve_prints_its_url_and_refuses_a_missing_token() {
    let (mut child, url) = serve::start(
        Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--token", "t-agent"])
            .args(["--reviewer-token", "t-reviewer", "--org", "org-cli"]),
    );
    let addr = url.strip_prefix("http://").unwrap_or_default().to_string();
    let answer = (|| {
        let mut s = TcpStream::connect(&addr).ok()?;
        let body = "{}";
        write!(
            s,
            "POST {} HTTP/1.1\r\n\
             Host: {addr}\r\nContent-Type: application/json\r\nX-Organization-ID: org-cli\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            maestro_sh::wire::GET_TOOL_EXECUTION,
            body.len(),
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let answer = answer.expect("the URL it printed accepts a request");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("unauthenticated"), "{answer}");
}

#[test]
fn an_unknown_flag_is_refused_with_usage() {
    let out = Command::new(BIN)
        .args(["serve", "--no-such-flag"])
        .output()
        .expect("run maestro-platform-dev");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-such-flag"), "{err}");
}
