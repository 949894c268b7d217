//! What will run, in words Platform can judge: the command text (or a description of the script
//! or session), its classification, and for scripts their path and content digest.
//! "What is governed is what will run" (DESIGN.md, "Modes").

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileTypeExt;
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::argv::{Invocation, Kind};
use crate::classify::{self, Classification};

/// Scripts up to this size are read and classified; larger ones are unknown code.
pub const MAX_SCRIPT_CLASSIFY: u64 = 64 * 1024;
/// Content digests are computed over at most this much.
const MAX_SCRIPT_DIGEST: u64 = 64 * 1024 * 1024;

/// Nesting depth of `(` beyond which text is not parsed. The bash parser backtracks
/// exponentially on deep unclosed or mismatched subshells (found by fuzzing: 28 `(` then `&`
/// took 7 s, doubling with each `(`), which would hang maestro-sh before Platform is even
/// asked. Nobody nests 16 subshells; deeper text is governed as unknown code.
pub const MAX_PAREN_DEPTH: usize = 16;

/// Does `text` nest `(` deeper than [`MAX_PAREN_DEPTH`]? Quotes are not considered (a
/// parenthesis inside quotes counts too): erring this way only makes a command stricter.
fn too_deep(text: &str) -> bool {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_PAREN_DEPTH {
                    return true;
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn too_deep_reason() -> String {
    format!(
        "parentheses nested deeper than {MAX_PAREN_DEPTH}: not parsed (parsing could take minutes); unknown code"
    )
}

/// How long classification may take; past it the text is unknown code. The parser runs on its
/// own thread so a parser that loops (found by fuzzing: `cat <<$'\r'< ` never returns) cannot
/// hang maestro-sh; that thread is left behind and dies with the process.
pub const CLASSIFY_BUDGET: Duration = Duration::from_secs(2);

/// Run `f(text)` within [`CLASSIFY_BUDGET`].
fn bounded(text: &str, f: impl FnOnce(&str) -> Classification + Send + 'static) -> Classification {
    let (tx, rx) = mpsc::channel();
    let owned = text.to_string();
    let spawned = std::thread::Builder::new()
        .name("classify".into())
        // The main thread's stack size: the parser recurses on nesting.
        .stack_size(8 << 20)
        .spawn(move || {
            crate::supervise::block_signals_on_this_thread();
            let _ = tx.send(f(&owned));
        });
    if spawned.is_err() {
        // No thread to spare: classify here, unbounded only by time.
        return Classification::opaque("could not start the classifier thread; unknown code");
    }
    rx.recv_timeout(CLASSIFY_BUDGET).unwrap_or_else(|_| {
        Classification::opaque(format!(
            "not understood within {} s (the parser did not finish); unknown code",
            CLASSIFY_BUDGET.as_secs()
        ))
    })
}

/// Let every thread of this process allocate from the main heap. By default glibc gives each
/// new thread an arena of its own: 64 MiB of address space reserved, then grown a page at a
/// time with an `mprotect` each (~30 for one classification), for threads that live a few
/// milliseconds and never allocate concurrently with much. Called before the first thread
/// starts; never on the pass-through path.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a malloc tuning call with integer arguments.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Longest text [`plain_words`] classifies without the time bound.
const PLAIN_MAX: usize = 512;

/// Is `text` nothing but plain words (letters, digits, blanks and `-_./=,:@%+^~`), short?
/// Then it has no quoting, expansion, redirection, operator, glob, comment or here-document:
/// the parser reads it as one simple command, word by word, in time linear in its length (the
/// inputs that made the parser loop or backtrack all need here-documents, redirections or
/// parentheses). Such text (`git status`, `cargo build --release`, `true`) is classified on the
/// calling thread: starting a thread and waiting to be woken by it cost more than the parse,
/// on a busy machine far more.
fn plain_words(text: &str) -> bool {
    text.len() <= PLAIN_MAX
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b' ' | b'\t'
                        | b'-'
                        | b'_'
                        | b'.'
                        | b'/'
                        | b'='
                        | b','
                        | b':'
                        | b'@'
                        | b'%'
                        | b'+'
                        | b'^'
                        | b'~'
                )
        })
}

/// [`classify::classify_with`] for text read by `dialect`, with facts about this machine's
/// configuration (`worldfacts.rs`), unless the text is too deep to parse in bounded time;
/// bounded, unless it is [`plain_words`].
fn classify_command(text: &str, dialect: classify::Dialect) -> Classification {
    if too_deep(text) {
        return Classification::opaque(too_deep_reason());
    }
    let classify = move |t: &str| {
        let facts = crate::worldfacts::WorldFacts::new(&crate::env::ProcessEnv);
        classify::classify_with(t, dialect, &facts)
    };
    if plain_words(text) {
        return classify(text);
    }
    bounded(text, classify)
}

/// [`classify::classify_script`], with the same bound.
fn classify_script(text: Option<&str>) -> Classification {
    match text {
        Some(t) if too_deep(t) => {
            let mut c = classify::classify_script(None);
            c.reasons.push(too_deep_reason());
            c
        }
        Some(t) => bounded(t, |t| classify::classify_script(Some(t))),
        None => classify::classify_script(None),
    }
}

/// What kind of thing will run, as Platform's reviewers see it (`maestro_sh_invocation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// `-c CMD`.
    Command,
    /// A script file operand.
    ScriptFile,
    /// Commands read from stdin.
    StdinScript,
    /// An interactive session.
    Interactive,
    /// An invocation bash itself will reject.
    Invalid,
}

impl SubjectKind {
    /// The wire name (`command`, `script_file`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Command => "command",
            SubjectKind::ScriptFile => "script_file",
            SubjectKind::StdinScript => "stdin_script",
            SubjectKind::Interactive => "interactive",
            SubjectKind::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Subject {
    /// `command`, `script_file`, `stdin_script`, `interactive` or `invalid`.
    pub kind: SubjectKind,
    /// The command text (lossy UTF-8), or a shell-quoted description of the invocation.
    pub command: String,
    pub classification: Classification,
    pub script_path: Option<String>,
    pub script_sha256: Option<String>,
}

/// Describe the invocation; `None` when nothing runs (`--version`, `--help`).
pub fn describe(inv: &Invocation, args: &[OsString]) -> Option<Subject> {
    // Governed and observed runs only get here; before their first thread.
    one_malloc_arena();
    let quoted = || shell_words::join(args.iter().map(|a| a.to_string_lossy().into_owned()));
    let name = inv.personality.real_name();
    let subject = match &inv.kind {
        Kind::Informational => return None,
        Kind::Command { text } => {
            let command = text.to_string_lossy().into_owned();
            // The `sh` personality runs the real sh: its text is read the way sh reads it.
            let dialect = match inv.personality {
                crate::argv::Personality::Sh => classify::Dialect::Sh,
                _ => classify::Dialect::Bash,
            };
            let classification = classify_command(&command, dialect);
            Subject {
                kind: SubjectKind::Command,
                command,
                classification,
                script_path: None,
                script_sha256: None,
            }
        }
        Kind::ScriptFile { path } => {
            // Only a regular file is read (crate::fsread): a pipe, FIFO, `/dev/stdin` or
            // `/dev/fd/N` operand (`bash <(...)`) would lose bytes bash must get, or hang; it
            // stays unread and is governed as unknown code. Symlinks are followed (scripts are
            // often linked); bash opens the same path after us.
            let read =
                crate::fsread::open_regular(std::path::Path::new(path), crate::fsread::Follow::Yes)
                    .ok()
                    .map(|(f, _)| read_script(f, false));
            let (text, digest) = read.unwrap_or((None, None));
            Subject {
                kind: SubjectKind::ScriptFile,
                command: format!("{name} {}", quoted()),
                classification: classify_script(text.as_deref()),
                script_path: Some(path.to_string_lossy().into_owned()),
                script_sha256: digest,
            }
        }
        Kind::Stdin => {
            let (text, digest) = read_stdin_script();
            Subject {
                kind: SubjectKind::StdinScript,
                command: format!("{name} {} <script on stdin>", quoted()).replace("  ", " "),
                classification: classify_script(text.as_deref()),
                script_path: None,
                script_sha256: digest,
            }
        }
        Kind::Interactive => Subject {
            kind: SubjectKind::Interactive,
            command: format!("{name} {} (interactive session)", quoted()).replace("  ", " "),
            classification: classify_script(None),
            script_path: None,
            script_sha256: None,
        },
        Kind::Invalid { reason } => Subject {
            kind: SubjectKind::Invalid,
            command: format!("{name} {}", quoted()),
            classification: {
                let mut c = classify_script(None);
                c.reasons.push(format!(
                    "bash will reject this invocation ({reason}); governed as opaque"
                ));
                c
            },
            script_path: None,
            script_sha256: None,
        },
    };
    Some(subject)
}

/// Read a script for classification and digest. With `rewind`, seek back to where it started,
/// so the real shell reads exactly what it would have.
fn read_script(mut f: std::fs::File, rewind: bool) -> (Option<String>, Option<String>) {
    let start = if rewind {
        f.stream_position().ok()
    } else {
        Some(0)
    };
    let Some(start) = start else {
        return (None, None);
    };
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut complete = false;
    while total < MAX_SCRIPT_DIGEST {
        match f.read(&mut buf) {
            Ok(0) => {
                complete = true;
                break;
            }
            Ok(n) => {
                hasher.update(&buf[..n]);
                if total < MAX_SCRIPT_CLASSIFY {
                    head.extend_from_slice(&buf[..n]);
                }
                total += n as u64;
            }
            Err(_) => break,
        }
    }
    if rewind && f.seek(SeekFrom::Start(start)).is_err() {
        return (None, None);
    }
    let digest = complete.then(|| crate::context::hex(&hasher.finalize()));
    let text = (complete && total <= MAX_SCRIPT_CLASSIFY)
        .then(|| String::from_utf8_lossy(&head).into_owned());
    (text, digest)
}

/// A script on stdin is read only when stdin is a regular file (then rewound). A pipe cannot be
/// read without taking bytes from the shell, so it stays unread: unknown code.
fn read_stdin_script() -> (Option<String>, Option<String>) {
    // SAFETY: fd 0 is borrowed for the duration of this call and never closed (ManuallyDrop).
    let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let Ok(meta) = f.metadata() else {
        return (None, None);
    };
    if !meta.file_type().is_file() || meta.file_type().is_fifo() {
        return (None, None);
    }
    let Ok(dup) = f.try_clone() else {
        return (None, None);
    };
    read_script(dup, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_words_skip_the_time_bound() {
        for plain in [
            "true",
            "git status",
            "cargo build --release -p x",
            "ls -la /tmp ~/x",
            "a=b c",
        ] {
            assert!(plain_words(plain), "{plain}");
        }
        let long = "word ".repeat(PLAIN_MAX / 5 + 1);
        for not in [
            "cat <<$'\r'< ",
            "echo 'x'",
            "a | b",
            "a; b",
            "a && b",
            "$(x)",
            "x > y",
            "(x)",
            "{ x; }",
            "echo *",
            "x # y",
            "a\nb",
            "a\\b",
            "\u{e9}",
            long.as_str(),
        ] {
            assert!(!plain_words(not), "{not:?}");
        }
    }

    #[test]
    fn plain_words_are_classified_as_with_the_bound() {
        for text in ["true", "rm -rf /", "git push --force origin main", "ls -la"] {
            let inline = classify_command(text, classify::Dialect::Bash);
            let threaded = bounded(text, |t| {
                let facts = crate::worldfacts::WorldFacts::new(&crate::env::ProcessEnv);
                classify::classify_with(t, classify::Dialect::Bash, &facts)
            });
            assert_eq!(
                (inline.read_only, inline.risk, &inline.reasons),
                (threaded.read_only, threaded.risk, &threaded.reasons),
                "{text}"
            );
        }
    }
}
