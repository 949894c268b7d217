//! Pass-through is byte-exact: every case runs under the real bash and under maestro-sh (by
//! path and through a `bash` link on PATH) and must give the same stdout, stderr and wait
//! status.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;

use crate::support::shell::{raw, Sh, Via};

/// (description, case) — all with governance off (no flags, no mode override). The process
/// module runs the same table governed.
pub fn table() -> Vec<(&'static str, Sh)> {
    let script_dir = tempfile::tempdir().unwrap().keep();
    let script = script_dir.join("script.sh");
    std::fs::write(&script, "echo \"script $0 args:$# [$1] [$2]\"\nexit 7\n").unwrap();
    let script = script.to_str().unwrap().to_owned();
    vec![
        ("exit 0", Sh::c("exit 0")),
        ("exit 1", Sh::c("exit 1")),
        ("exit 2 (syntax error)", Sh::c("if then fi")),
        ("exit 126", Sh::c("exit 126")),
        ("exit 127 (not found)", Sh::c("no-such-command-xyz")),
        ("exit 255", Sh::c("exit 255")),
        ("exit 300 wraps", Sh::c("exit 300")),
        ("false", Sh::c("false")),
        ("death by SIGTERM", Sh::c("kill -TERM $$")),
        ("death by SIGKILL", Sh::c("kill -KILL $$")),
        ("death by SIGINT", Sh::c("kill -INT $$")),
        ("death by SIGPIPE", Sh::c("kill -PIPE $$")),
        (
            "child killed by signal",
            Sh::c("x=$(sh -c 'kill -SEGV $$'); echo $?"),
        ),
        (
            "non-UTF-8 and NUL on stdout",
            Sh::c("printf 'a\\377\\000b\\n'"),
        ),
        ("stderr", Sh::c("echo out; echo err >&2; echo out2")),
        (
            "args with spaces",
            Sh::new(["-c", "printf '[%s]' \"$@\"", "name", "a b", "  c  "]),
        ),
        (
            "args with quotes",
            Sh::new(["-c", "printf '[%s]' \"$@\"", "n", "'\"'", "\\"]),
        ),
        (
            "args with newlines",
            Sh::new(["-c", "printf '[%s]' \"$@\"", "n", "a\nb", "\n"]),
        ),
        (
            "empty args",
            Sh::new(["-c", "printf '[%s]' \"$#\" \"$@\"", "", "", "x", ""]),
        ),
        (
            "invalid UTF-8 args",
            Sh::new([
                raw(b"-c"),
                raw(b"printf '[%s]' \"$0\" \"$@\""),
                raw(b"\xff\xfe"),
                raw(b"a\x80b"),
            ]),
        ),
        (
            "invalid UTF-8 command",
            Sh::new([raw(b"-c"), raw(b"echo \xc3\x28 \xff")]),
        ),
        (
            "$0 and $@ from -c CMD name a b",
            Sh::new(["-c", "echo \"$0|$1|$2|$#\"", "name", "a", "b"]),
        ),
        ("$0 without name", Sh::c("echo $0")),
        (
            "-lc",
            Sh::new(["-lc", "echo $0; shopt -q login_shell && echo login"])
                .env("HOME", "/nonexistent"),
        ),
        (
            "-c -l",
            Sh::new(["-c", "-l", "shopt -q login_shell && echo login"]).env("HOME", "/nonexistent"),
        ),
        (
            "-l -c",
            Sh::new(["-l", "-c", "shopt -q login_shell && echo login"]).env("HOME", "/nonexistent"),
        ),
        (
            "--login -c",
            Sh::new(["--login", "-c", "shopt login_shell"]).env("HOME", "/nonexistent"),
        ),
        ("-ec", Sh::new(["-ec", "false; echo not reached"])),
        (
            "-o pipefail -c",
            Sh::new(["-o", "pipefail", "-c", "false | true; echo $?"]),
        ),
        ("+O opt", Sh::new(["+O", "extglob", "-c", "shopt extglob"])),
        (
            "--norc --noprofile",
            Sh::new(["--norc", "--noprofile", "-c", "echo ok"]),
        ),
        ("--posix", Sh::new(["--posix", "-c", "set -o | grep posix"])),
        ("invalid option", Sh::new(["-Z", "-c", "echo no"])),
        ("-c without string", Sh::new(["-c"])),
        (
            "script file with args",
            Sh::new([script.as_str(), "one", "two words"]),
        ),
        ("missing script file", Sh::new(["/nonexistent/script.sh"])),
        (
            "script on stdin",
            Sh::new(Vec::<&str>::new()).stdin("echo from stdin; echo $#\nexit 4\n"),
        ),
        (
            "-s with args",
            Sh::new(["-s", "a", "b"]).stdin("echo \"$# $1 $2\"\n"),
        ),
        ("heredoc", Sh::c("cat <<EOF\nline $((1+2))\nEOF")),
        (
            "stdin read by command",
            Sh::c("read a b; echo \"[$b][$a]\"; cat").stdin("x y\nrest\n"),
        ),
        (
            "10 MB output",
            Sh::c("head -c 10000000 /dev/zero | tr '\\0' a"),
        ),
        (
            "environment unchanged",
            Sh::c("env | LC_ALL=C sort")
                .env("MY_VAR", "x y")
                .env("EMPTY", ""),
        ),
        (
            "env var with newline",
            Sh::c("printf '%s' \"$WEIRD\"").env("WEIRD", "a\nb=c"),
        ),
        ("cwd", Sh::c("pwd").cwd("/tmp")),
        ("umask", Sh::c("umask").umask(0o027)),
        (
            "extra fd 3 stays open",
            Sh::c("echo to-fd3 >&3 && readlink /proc/$$/fd/3 | sed 's/.*\\///'")
                .fd3(script_dir.join("fd3.txt")),
        ),
        (
            "process group and session",
            Sh::c("ps -o pgid=,sid= -p $$ | tr -s ' '"),
        ),
        (
            "parent pid is the caller",
            Sh::c("[ $PPID -gt 1 ] && echo ok"),
        ),
        (
            "signal mask and dispositions",
            Sh::c("grep -E '^Sig(Blk|Ign)' /proc/$$/status"),
        ),
        ("SHLVL and BASH", Sh::c("echo $SHLVL $BASH")),
        ("sh personality", Sh::c("echo $0").argv0("sh")),
        ("--version", Sh::new(["--version"])),
    ]
}

#[test]
fn differential_suite() {
    let cases = table();
    assert!(cases.len() >= 40);
    for (name, case) in &cases {
        eprintln!("case: {name}");
        case.assert_same();
    }
}

#[test]
fn sh_link_runs_the_system_sh() {
    let args = ["-c", "echo $0; kill -TERM $$"];
    let want = std::process::Command::new("/bin/sh")
        .arg0("sh")
        .args(args)
        .output()
        .unwrap();
    let got = std::process::Command::new(crate::support::shell::shim_dir().join("sh"))
        .arg0("sh")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(got.status.into_raw(), want.status.into_raw());
    assert_eq!(got.stdout, want.stdout);
}

#[test]
fn ignored_sigpipe_stays_ignored() {
    // A caller that ignores SIGPIPE must see the shell inherit that, as with the real bash.
    let case = Sh::c("grep -E '^SigIgn' /proc/$$/status");
    let run = |via| {
        let mut cmd = case.command(via);
        crate::support::shell::ignoring_sigpipe(&mut cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let want = run(Via::RealBash);
    assert_eq!(run(Via::MaestroSh).stdout, want.stdout);
    assert_eq!(run(Via::BashLink).stdout, want.stdout);
}

#[test]
fn process_group_kill_leaves_nothing_alive() {
    for via in [Via::MaestroSh, Via::BashLink] {
        let case = Sh::c("sleep 300 & sleep 300 & echo started; wait");
        let mut cmd = case.command(via);
        cmd.process_group(0)
            .stdout(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let pgid = child.id() as i32;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "started\n");
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Orphans are reparented and reaped; give the kernel a moment, then look for survivors.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let alive = processes_in_group(pgid);
            if alive.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still alive in group {pgid}: {alive:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Pids (not zombies) whose process group is `pgid`.
pub fn processes_in_group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            out.push(pid);
        }
    }
    out
}
