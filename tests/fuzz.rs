//! Property tests over classify + redact (a modest case count keeps the suite fast on 2
//! cores; raise `PROPTEST_CASES` for a longer run): no panic on any input, redaction is
//! idempotent, and no text with a write redirection is ever read-only.

use maestro_sh::classify::{classify, classify_script};
use maestro_sh::redact::{operation_summary, redact, sanitize_command};
use proptest::prelude::*;

/// Shell-ish fragments, so generated text exercises the parser beyond its first error.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ls".to_string()),
        Just("cat f".to_string()),
        Just("git status".to_string()),
        Just("echo \"$(pwd)\"".to_string()),
        Just("rm -rf x".to_string()),
        Just("sed -n 1p f".to_string()),
        Just("find . -name '*.rs'".to_string()),
        Just("awk '{print $1}'".to_string()),
        Just("${x:-y}".to_string()),
        Just("$((1+2))".to_string()),
        Just("bash -c 'ls'".to_string()),
        Just("<(ls)".to_string()),
        Just("{ ls; }".to_string()),
        Just("( ls )".to_string()),
        Just("if true; then ls; fi".to_string()),
        Just("f() { ls; }".to_string()),
        Just("ghp_abcdefghijklmnopqrstuvwxyz0123456789".to_string()),
        Just("TOKEN=s3cr3t".to_string()),
        Just("--password hunter2".to_string()),
        Just("https://u:p@h/x".to_string()),
        "[a-zA-Z0-9_./-]{1,12}",
        "[ -~]{0,16}",
        "\\PC{0,8}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(" "),
        Just("; "),
        Just(" && "),
        Just(" | "),
        Just(" || "),
        Just("\n")
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec((fragment(), separator()), 0..8).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(f, s)| format!("{f}{s}"))
            .collect::<String>()
    })
}

/// Complete, well-quoted words from read-only programs: no comments, no here-docs.
fn safe_command() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-z0-9_.-]{1,8}",
        Just("'a b'".to_string()),
        Just("\"$HOME\"".to_string()),
        Just("2>&1".to_string()),
        Just("$(pwd)".to_string()),
    ];
    (
        prop_oneof![
            Just("ls"),
            Just("cat"),
            Just("echo"),
            Just("grep x"),
            Just("git status"),
            Just("head -n 3")
        ],
        prop::collection::vec(word, 0..4),
    )
        .prop_map(|(p, ws)| format!("{p} {}", ws.join(" ")))
}

fn write_op() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(">"),
        Just(">>"),
        Just(">|"),
        Just("&>"),
        Just("&>>"),
        Just("2>"),
        Just("1>>"),
        Just("<>"),
        Just(">&"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn never_panics(t in text()) {
        let c = classify(&t);
        if c.parse_error.is_some() {
            prop_assert!(!c.read_only);
        }
        prop_assert!(!classify_script(Some(&t)).read_only);
        let r = sanitize_command(&t);
        let _ = operation_summary(&r.text);
    }

    #[test]
    fn arbitrary_unicode_never_panics(t in "\\PC{0,64}") {
        let _ = classify(&t);
        let _ = redact(&t);
    }

    #[test]
    fn redaction_is_idempotent(t in text()) {
        let once = redact(&t);
        let twice = redact(&once.text);
        prop_assert_eq!(&twice.text, &once.text);
        prop_assert!(!twice.changed(), "second pass redacted {:?}", twice.kinds);
    }

    #[test]
    fn write_redirections_are_never_read_only(
        before in prop::collection::vec((safe_command(), separator()), 0..3),
        cmd in safe_command(),
        op in write_op(),
        target in "[a-z][a-z0-9_.]{0,8}",
        after in prop::collection::vec((separator(), safe_command()), 0..3),
    ) {
        let mut t: String = before.into_iter().map(|(c, s)| format!("{c}{s}")).collect();
        t.push_str(&format!("{cmd} {op} {target}"));
        for (s, c) in after {
            t.push_str(s);
            t.push_str(&c);
        }
        let c = classify(&t);
        prop_assert!(!c.read_only, "{:?} judged read-only: {:?}", t, c.commands);
    }
}
