//! Classification and redaction timing (`cargo bench --bench classify`): a plain std loop,
//! printing the p50/p95/p99 distribution in microseconds.
//!
//! One-time costs can only be seen once per process, so `-- first-short`, `-- first-one-secret`
//! and `-- first-secrets` time just the first redaction of a short command, of a command with
//! one token, or of a 1 KB command full of secrets, and exit (run the bench binary several times for a distribution).

use std::time::{Duration, Instant};

use maestro_sh::classify::{classify_with, Classification, CleanConfig, Dialect};

/// Classify as maestro-sh does, in a world whose configuration names no programs.
fn classify(text: &str) -> Classification {
    classify_with(text, Dialect::Bash, &CleanConfig)
}
use maestro_sh::redact::sanitize_command;

fn one_kb_command() -> String {
    let parts: Vec<String> = (0..15)
        .map(|i| format!("git log --oneline -n 5 -- src/file{i}.rs | grep -v 'fixup' | head -3"))
        .collect();
    parts.join(" && ")
}

/// About 1 KB of commands carrying secrets of most kinds the redactor knows.
fn one_kb_with_secrets() -> String {
    [
        "curl -H 'Authorization: Bearer eyq8Zt2RbW0xKp4LmN7vQs' https://api.x.io",
        "export OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2NoP5qRs8tUv1wXy4z",
        "git clone https://deploy:S3cr3tP4ss@git.example.com/r.git",
        "psql postgres://admin:hunter2hunter2@db.internal:5432/app -c 'select 1'",
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls",
        "docker login -u me --password Pa55w0rd-Reg1stry registry.io",
        "echo ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12 | gh auth login --with-token",
        "MY_SERVICE_TOKEN=t0k3n-v4lue-8a7b6c ./deploy.sh",
        "mysql -u root -pMyS3cretPw! -h db prod",
        "echo Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O | base64 -d",
        "git log --oneline -n 5 -- src/main.rs | grep -v fixup | head -3",
        "cargo test --locked --test integration -- --nocapture",
        "find . -name '*.rs' -newer Cargo.lock -print | xargs wc -l | sort -n",
        "kubectl get pods -n prod -o wide | grep -v Completed",
        "curl -s -d token=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp https://slack.com/api",
        "rg --files-with-matches TODO src tests benches | sort | uniq -c | sort -rn | head",
    ]
    .join(" && ")
}

/// About 100 KB of an agent-style script: loops, conditionals, functions, pipelines.
fn hundred_kb_script() -> String {
    let block = r#"
check_file() {
  local f="$1"
  if [ -f "$f" ]; then
    wc -l "$f" | awk '{print $1}'
  else
    echo "missing: $f" >&2
  fi
}
for f in src/*.rs; do
  n=$(grep -c 'fn ' "$f")
  echo "$f: $n functions"
  check_file "$f"
done
git log --oneline -20 -- src/ | head -5
find . -name '*.toml' -not -path './target/*' | sort | uniq -c
case "$mode" in
  fast) echo fast ;;
  *) echo slow ;;
esac
"#;
    block.repeat(100 * 1024 / block.len() + 1)
}

/// Adversarial shapes: deep nesting, long wrapper chains, many functions. Each must be
/// bounded (the cap makes them opaque quickly).
fn adversarial() -> Vec<(&'static str, String)> {
    let n = 120 * 1024;
    vec![
        (
            "nesting $( x5000",
            format!("{}ls{}", "$(".repeat(5000), ")".repeat(5000)),
        ),
        (
            "nesting { x5000",
            format!("{}ls{}", "{ ".repeat(5000), "; }".repeat(5000)),
        ),
        (
            "nesting if x3000",
            format!("{}ls{}", "if true; then ".repeat(3000), "; fi".repeat(3000)),
        ),
        ("case-pattern closes", "$(case a in a) ".repeat(n / 15)),
        ("120 KB of (", "(".repeat(n)),
        ("120 KB of \"$(", "\"$(".repeat(n / 3)),
        (
            "wrapper chain env x30000",
            format!("{}ls", "env ".repeat(n / 4)),
        ),
        (
            "find -exec chain",
            format!("find . {}", "-exec find . ".repeat(n / 14)),
        ),
        ("120 KB pipeline", "ls | ".repeat(n / 5) + "ls"),
        (
            "bash -c x40",
            format!("{}ls{}", "bash -c \"".repeat(40), "\"".repeat(40)),
        ),
        (
            "200 functions, fan-out 3",
            (0..200)
                .map(|i| format!("f{i}() {{ f{} ; f{} ; f{} ; }}; ", i + 1, i + 1, i + 1))
                .collect::<String>()
                + "f0",
        ),
    ]
}
/// The credential forms issue 10 added (curl -u, sshpass, docker login -p, htpasswd, .netrc,
/// PGPASSWORD, a private key block cut short).
const PASSWORD_FORMS: &str = "curl -u alice:s3cretPw https://x.io && sshpass -p hunter2 ssh h && docker login -u me -p Pa55w0rd r.io && htpasswd -nb alice pw123 && PGPASSWORD=abc psql -h db && printf 'machine h login u password p' > ~/.netrc && echo '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0w";

fn first_call(name: &str, text: &str) {
    let t = Instant::now();
    let r = sanitize_command(std::hint::black_box(text));
    let us = t.elapsed().as_secs_f64() * 1e6;
    std::hint::black_box(r);
    println!("first redaction, {name} ({} bytes): {us:.1}us", text.len());
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
    let secrets = one_kb_with_secrets();
    assert!(secrets.len() >= 1000, "{}", secrets.len());
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "first-short") {
        return first_call("short command", "git status");
    }
    if args.iter().any(|a| a == "first-one-secret") {
        return first_call(
            "one secret",
            "export GITHUB_TOKEN=ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12 && gh pr list",
        );
    }
    if args.iter().any(|a| a == "first-secrets") {
        return first_call("1 KB with secrets", &secrets);
    }
    if args.iter().any(|a| a == "first-passwords") {
        return first_call("password forms", PASSWORD_FORMS);
    }
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
    let script = hundred_kb_script();
    report(
        &format!("classify 100 KB script ({} bytes)", script.len()),
        time(50, || {
            std::hint::black_box(classify(std::hint::black_box(&script)));
        }),
    );
    let mut worst = (0.0f64, "");
    for (name, text) in adversarial() {
        let samples = time(5, || {
            std::hint::black_box(classify(std::hint::black_box(&text)));
        });
        let max = samples.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e6);
        if max > worst.0 {
            worst = (max, name);
        }
        report(&format!("adversarial: {name}"), samples);
        if name.contains("chain") || name.contains("pipeline") {
            // The bash parser's share, for comparison (flat shapes only: nested ones would
            // overflow the stack without our cap).
            let opts = brush_parser::ParserOptions::default();
            report(
                &format!("  parse only: {name}"),
                time(5, || {
                    let mut p =
                        brush_parser::Parser::new(std::io::Cursor::new(text.as_bytes()), &opts);
                    std::hint::black_box(p.parse_program().ok());
                }),
            );
        }
    }
    println!("worst adversarial shape: {} at {:.1}us", worst.1, worst.0);
    report(
        "redact+sanitize 1 KB",
        time(n, || {
            std::hint::black_box(sanitize_command(std::hint::black_box(&kb)));
        }),
    );
    report(
        "redact+sanitize 1 KB with secrets",
        time(n, || {
            std::hint::black_box(sanitize_command(std::hint::black_box(&secrets)));
        }),
    );
    report(
        "redact+sanitize password forms",
        time(n, || {
            std::hint::black_box(sanitize_command(std::hint::black_box(PASSWORD_FORMS)));
        }),
    );
    report(
        "redact+sanitize short command",
        time(n, || {
            std::hint::black_box(sanitize_command(std::hint::black_box("git status")));
        }),
    );
}
