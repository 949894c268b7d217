//! Classification and redaction timing (`cargo bench --bench classify`): a plain std loop,
//! printing the p50/p95/p99 distribution in microseconds.

use std::time::{Duration, Instant};

use maestro_sh::classify::classify;
use maestro_sh::redact::sanitize_command;

fn one_kb_command() -> String {
    let parts: Vec<String> = (0..15)
        .map(|i| format!("git log --oneline -n 5 -- src/file{i}.rs | grep -v 'fixup' | head -3"))
        .collect();
    parts.join(" && ")
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    println!(
        "{name:<40} n={} p50={:>8.1}us p95={:>8.1}us p99={:>8.1}us max={:>8.1}us",
        samples.len(),
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}

fn time<F: FnMut()>(n: usize, mut f: F) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    let kb = one_kb_command();
    assert!(kb.len() >= 1024, "{}", kb.len());
    // First call pays the one-time costs (lazy regex compilation, parser caches).
    let t = Instant::now();
    let _ = sanitize_command(&kb);
    println!(
        "first redaction (compiles the patterns): {:.1}us",
        t.elapsed().as_secs_f64() * 1e6
    );
    let t = Instant::now();
    let c = classify(&kb);
    println!(
        "first classification: {:.1}us",
        t.elapsed().as_secs_f64() * 1e6
    );
    assert!(c.read_only);

    let n = 2000;
    report(
        &format!("classify 1 KB ({} bytes)", kb.len()),
        time(n, || {
            std::hint::black_box(classify(std::hint::black_box(&kb)));
        }),
    );
    let short = "git status && git diff --stat";
    report(
        "classify short command",
        time(n, || {
            std::hint::black_box(classify(std::hint::black_box(short)));
        }),
    );
    let nested = "bash -c \"eval 'find . -exec grep -l x {} \\; | xargs sed -n 1p'\"";
    report(
        "classify nested shells",
        time(n, || {
            std::hint::black_box(classify(std::hint::black_box(nested)));
        }),
    );
    report(
        "redact+sanitize 1 KB",
        time(n, || {
            std::hint::black_box(sanitize_command(std::hint::black_box(&kb)));
        }),
    );
}
