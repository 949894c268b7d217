//! maestro-sh never execs itself, however PATH, links and copies are arranged.

use assert_cmd::Command;
use predicates::prelude::*;
use std::os::unix::fs::symlink;

use crate::support::shell::{maestro_sh, shim_dir};

/// `bash -c 'echo ok:$0'` started from `dir`'s `bash`, with only PATH set; every case runs
/// under a timeout, so a recursion shows up as a failure instead of a hang.
fn bash_via(dir: &std::path::Path, path: String) -> Command {
    let mut cmd = Command::new(dir.join("bash"));
    cmd.env_clear().env("PATH", path).args(["-c", "echo ok:$0"]);
    cmd.timeout(std::time::Duration::from_secs(10));
    cmd
}

#[test]
fn shims_on_path_twice() {
    let shims = shim_dir().display().to_string();
    bash_via(shim_dir(), format!("{shims}:{shims}:/usr/bin:/bin"))
        .assert()
        .success()
        .stdout(format!("ok:{}\n", shim_dir().join("bash").display()));
}

#[test]
fn symlink_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    symlink(maestro_sh(), c.join("real-link")).unwrap();
    symlink(c.join("real-link"), b.join("bash")).unwrap();
    symlink(b.join("bash"), a.join("bash")).unwrap();
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        a.display(),
        b.display(),
        shim_dir().display()
    );
    bash_via(&a, path)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("ok:"));
}

#[test]
fn two_installed_copies() {
    // Two separate copies (different inodes, one renamed to `bash`), each first on PATH in turn.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(maestro_sh(), a.join("bash")).unwrap();
    std::fs::copy(maestro_sh(), b.join("maestro-sh")).unwrap();
    symlink(b.join("maestro-sh"), b.join("bash")).unwrap();
    for (first, path) in [
        (&a, format!("{}:{}:/usr/bin:/bin", a.display(), b.display())),
        (&b, format!("{}:{}:/usr/bin:/bin", b.display(), a.display())),
    ] {
        bash_via(first, path)
            .assert()
            .success()
            .stdout(predicate::str::starts_with("ok:"));
    }
}

#[test]
fn override_pointing_at_ourselves_is_refused() {
    for target in [maestro_sh(), shim_dir().join("bash")] {
        bash_via(shim_dir(), "/usr/bin:/bin".into())
            .env("MAESTRO_SH_REAL_SHELL", &target)
            .assert()
            .code(127)
            .stdout("")
            .stderr(
                predicate::str::contains("MAESTRO_SH_REAL_SHELL")
                    .and(predicate::str::contains("is maestro-sh itself")),
            );
    }
}

#[test]
fn override_to_missing_file_is_refused() {
    bash_via(shim_dir(), "/usr/bin:/bin".into())
        .env("MAESTRO_SH_REAL_SHELL", "/nonexistent/bash")
        .assert()
        .code(127)
        .stderr(predicate::str::contains(
            "MAESTRO_SH_REAL_SHELL=\"/nonexistent/bash\" is not an executable file",
        ));
}

#[test]
fn override_is_used() {
    bash_via(shim_dir(), "/usr/bin:/bin".into())
        .env("MAESTRO_SH_REAL_SHELL", "/bin/sh")
        .args(["-c", "echo $0"])
        .assert()
        .success();
}
