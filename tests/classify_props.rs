//! Property tests for the classifier (issue 8): default-deny for options, bounded cost and no
//! crash on adversarial shapes. Classification runs on a thread with the 8 MiB stack of a
//! process's main thread, where maestro-sh classifies.

use std::time::{Duration, Instant};

use maestro_sh::classify::{classify_with, options, tables, CleanConfig, Dialect, MAX_NESTING};
use proptest::prelude::*;

/// Generous for a debug build on a loaded 2-core machine; release is far below 50 ms.
const BOUND: Duration = Duration::from_secs(3);

fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("classifier panicked")
}

fn timed(text: String) -> (bool, Duration) {
    on_big_stack(move || {
        let t = Instant::now();
        let c = classify_with(&text, Dialect::Bash, &CleanConfig);
        (c.read_only, t.elapsed())
    })
}

/// Every table: the base command (`prog`, `tool verb`).
fn bases() -> Vec<(String, &'static options::Spec)> {
    tables::SIMPLE
        .iter()
        .chain(tables::VERBS)
        .filter_map(|(name, _)| {
            let spec = options::table(name)?;
            (!spec.args_only).then(|| (name.to_string(), spec))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn an_unknown_option_is_never_read_only(
        long in "[a-z][a-z-]{2,14}",
        short in "[A-Za-z0-9]",
        value in prop::option::of("[a-z0-9]{1,6}"),
    ) {
        for (base, spec) in bases() {
            let mut known = spec.known();
            // A tool's global options are known after its verb too.
            if let Some(g) = base.split_once(' ').and_then(|(tool, _)| options::table(tool)) {
                known.extend(g.known());
            }
            let mut opts = Vec::new();
            let l = format!("--{long}");
            if !known.iter().any(|k| k == &l) {
                opts.push(match &value { Some(v) => format!("{l}={v}"), None => l });
            }
            let s = format!("-{short}");
            let numeric = spec.num && short.chars().all(|c| c.is_ascii_digit());
            if !(known.contains(&s) || numeric) {
                opts.push(s.clone());
                // Bundled after a known flag, too.
                if let Some(k) = spec.short_flags().first() {
                    opts.push(format!("{k}{short}"));
                }
            }
            for o in opts {
                let cmd = format!("{base} {o}");
                let c = classify_with(&cmd, Dialect::Bash, &CleanConfig);
                prop_assert!(!c.read_only, "{cmd:?} judged read-only: {:?}", c.commands);
            }
        }
    }

    #[test]
    fn deep_nesting_is_bounded_and_opaque(
        kinds in prop::collection::vec(0usize..9, 1..600),
    ) {
        let (open, close): (Vec<&str>, Vec<&str>) = kinds
            .iter()
            .map(|k| match k {
                0 => ("echo $(", ")"),
                1 => ("(", ")"),
                2 => ("{ ", "; }"),
                3 => ("if true; then ", "; fi"),
                4 => ("while true; do ", "; done"),
                5 => ("echo ${x:-", "}"),
                6 => ("echo $((1+", "))"),
                7 => ("case a in a) ", ";; esac"),
                _ => ("for i in 1; do ", "; done"),
            })
            .unzip();
        let mut text: String = open.concat();
        text.push_str("ls");
        text.extend(close.iter().rev().copied());
        let depth = kinds.len();
        let (read_only, took) = timed(text);
        prop_assert!(took < BOUND, "depth {depth} took {took:?}");
        if depth > MAX_NESTING {
            prop_assert!(!read_only, "depth {depth} past the cap must be opaque");
        }
    }

    #[test]
    fn long_wrapper_chains_are_bounded(
        chain in prop::collection::vec(0usize..7, 1..3000),
    ) {
        let words = ["nice", "env", "timeout 5", "command", "time", "stdbuf -o0", "xargs"];
        let mut text: String = chain.iter().map(|k| format!("{} ", words[*k])).collect();
        text.push_str("ls");
        let (_, took) = timed(text);
        prop_assert!(took < BOUND, "chain of {} took {took:?}", chain.len());
    }
}

#[test]
fn adversarial_shapes_are_bounded() {
    let n = 120 * 1024;
    let cases: Vec<(&str, String)> = vec![
        (
            "deep subst",
            format!("{}ls{}", "$(".repeat(5000), ")".repeat(5000)),
        ),
        (
            "deep brace",
            format!("{}ls{}", "{ ".repeat(5000), "; }".repeat(5000)),
        ),
        (
            "deep if",
            format!("{}ls{}", "if true; then ".repeat(3000), "; fi".repeat(3000)),
        ),
        ("case closes", "$(case a in a) ".repeat(2000)),
        ("unclosed", "(".repeat(n)),
        ("brackets", "[".repeat(n)),
        ("quotes", "\"$(".repeat(n / 3)),
        ("wrappers", format!("{}ls", "env ".repeat(n / 4))),
        (
            "find exec",
            format!("find . {}", "-exec find . ".repeat(n / 14)),
        ),
        ("pipeline", "ls | ".repeat(n / 5) + "ls"),
        ("words", format!("ls {}", "a ".repeat(n / 2))),
        (
            "functions",
            (0..200)
                .map(|i| format!("f{i}() {{ f{} ; f{} ; f{} ; }}; ", i + 1, i + 1, i + 1))
                .collect::<String>()
                + "f0",
        ),
        (
            "bash -c",
            format!("{}ls{}", "bash -c \"".repeat(40), "\"".repeat(40)),
        ),
        (
            "arith",
            format!("echo $(({}1{}))", "(".repeat(5000), ")".repeat(5000)),
        ),
        (
            "params",
            format!("echo {}x{}", "${x:-".repeat(5000), "}".repeat(5000)),
        ),
    ];
    for (name, text) in cases {
        let len = text.len();
        let (read_only, took) = timed(text);
        assert!(took < BOUND, "{name} ({len} bytes) took {took:?}");
        if name != "words" && name != "pipeline" {
            assert!(!read_only, "{name} must not be read-only");
        }
    }
}

#[test]
#[ignore]
fn scaling_probe() {
    let block = "check_file() {\n  local f=\"$1\"\n  if [ -f \"$f\" ]; then\n    wc -l \"$f\" | awk '{print $1}'\n  fi\n}\nfor f in src/*.rs; do\n  n=$(grep -c 'fn ' \"$f\")\n  echo \"$f: $n\"\n  check_file \"$f\"\ndone\ngit log --oneline -20 -- src/ | head -5\n";
    for n in [10, 40, 160, 640] {
        let text = block.repeat(n);
        let t = Instant::now();
        let _ = classify_with(&text, Dialect::Bash, &CleanConfig);
        let total = t.elapsed();
        let opts = brush_parser::ParserOptions::default();
        let t = Instant::now();
        let mut p = brush_parser::Parser::new(std::io::Cursor::new(text.as_bytes()), &opts);
        let _ = p.parse_program();
        println!(
            "n={n} bytes={} total={total:?} parse={:?}",
            text.len(),
            t.elapsed()
        );
    }
}
