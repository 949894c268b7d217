//! Redaction: none of these realistic (fake) secrets may survive in anything that leaves the
//! process — the ExecuteTool body `--explain` prints, the requests a real local Platform
//! receives, and the sidecar events.

use serde_json::Value;

use crate::support::platform::{DevPlatform, Gov};

/// (command containing a secret, the secret that must not appear anywhere).
pub const SECRETS: &[(&str, &str)] = &[
    ("curl -H 'Authorization: Bearer eyq8Zt2RbW0xKp4LmN7vQs' https://api.x.io", "eyq8Zt2RbW0xKp4LmN7vQs"),
    ("curl -H \"Authorization: Basic dXNlcjpodW50ZXIyMjI=\" https://x.io", "dXNlcjpodW50ZXIyMjI="),
    ("curl -H 'authorization: token 9f8e7d6c5b4a39281706f5e4d3c2b1a0' x", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("git clone https://ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12@github.com/o/r", "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12"),
    ("gh auth login --with-token <<< gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("echo github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"),
    ("curl --header 'PRIVATE-TOKEN: glpat-xYz12AbC34dEf56GhI78jK' https://gitlab.com/api", "glpat-xYz12AbC34dEf56GhI78jK"),
    ("curl -d token=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx slack.com", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("curl -X POST https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX -d x", "hooks.slack.com/services/T0000"),
    ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls", "AKIAIOSFODNN7EXAMPLE"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("aws configure set aws_secret_access_key je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
    ("curl 'https://maps.googleapis.com/x?key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI'", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"),
    ("echo '{\"type\":\"service_account\",\"private_key\":\"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\"}' > sa.json", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
    ("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2NoP5qRs8tUv1wXy4z python app.py", "sk-proj-Ab3dEf6hIj9kLm2NoP5qRs8tUv1wXy4z"),
    ("curl -H 'x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345' https://api.anthropic.com", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
    ("stripe login --api-key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("curl -u rk_test_51HxYzAbCdEfGhIjKlMnOp: https://api.stripe.com", "rk_test_51HxYzAbCdEfGhIjKlMnOp"),
    ("curl -H 'Cookie: session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U' x", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("printf '%s' '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\nkd8a7s6d5f4g3h2j1k\n-----END RSA PRIVATE KEY-----' > id_rsa", "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM"),
    ("cat <<EOF > key.pem\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n-----END OPENSSH PRIVATE KEY-----\nEOF", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE"),
    ("git remote set-url origin https://deploy:S3cr3tP4ss!@git.example.com/r.git", "S3cr3tP4ss!"),
    ("psql postgres://admin:hunter2hunter2@db.internal:5432/app -c 'select 1'", "hunter2hunter2"),
    ("DATABASE_PASSWORD='c0rrect horse battery' ./migrate", "c0rrect horse battery"),
    ("MY_SERVICE_TOKEN=t0k3n-v4lue-8a7b6c ./deploy.sh", "t0k3n-v4lue-8a7b6c"),
    ("CLIENT_SECRET=\"qwerty-secret-999\" npm start", "qwerty-secret-999"),
    ("docker login -u me --password Pa55w0rd-Reg1stry registry.io", "Pa55w0rd-Reg1stry"),
    ("vault login --token=hvs.CAESIJ2x7Y8z9A0b1C2d3E4f5G6h", "hvs.CAESIJ2x7Y8z9A0b1C2d3E4f5G6h"),
    ("mysql -u root -pMyS3cretPw! -h db prod", "MyS3cretPw!"),
    ("echo Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O | base64 -d", "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1O"),
    ("npm config set //registry.npmjs.org/:_authToken npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
];

/// Exact outputs, worked out by hand from Maestro's sanitizer rules (its pattern list applied in
/// order over the text the previous patterns left, the whole match replaced by
/// `[REDACTED:<kind>:<8 hex of sha256 of the match>]`; control characters deleted; base64 blobs
/// and texts over 1000 units cut), digests by `printf '%s' '<match>' | sha256sum | cut -c1-8`.
/// Where Maestro nests markers (its `password` rule `secret[:=]…{8,}` swallowing the marker an
/// earlier rule left, `[REDACTED:aws_[REDACTED:password:…`, and the host after it), we keep the
/// first marker clean: the AWS key's own marker; for URL userinfo only the password.
/// The last two are secrets Maestro misses; our extra rules redact them in the same format.
const MAESTRO_TABLE: &[(&str, &str)] = &[
    (
        "curl -H \"Authorization: Bearer abc.def\" https://x.io",
        "curl -H \"Authorization: [REDACTED:generic_secret:df5c542f]\" https://x.io",
    ),
    (
        "export OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz123456",
        "export OPENAI_[REDACTED:api_key:b260d1cc]",
    ),
    (
        "git clone https://user:pass@host/x",
        "git clone https://user:[REDACTED:password:d74ff0ee]@host/x",
    ),
    (
        "psql postgres://u:p@h/db",
        "psql postgres://u:[REDACTED:password:148de9c5]@h/db",
    ),
    (
        "printf '%s' '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n-----END RSA PRIVATE KEY-----' > id_rsa",
        "printf '%s' '[REDACTED:private_key:3dee7675]' > id_rsa",
    ),
    (
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls",
        "AWS_ACCESS_KEY_ID=[REDACTED:aws_secret:1a5d44a2] aws s3 ls",
    ),
    (
        "docker login -u me --password Pa55w0rd-Reg1stry registry.io",
        "docker login -u me --[REDACTED:password:bea13a29] registry.io",
    ),
    (
        "curl -H 'Authorization: Basic dXNlcjpodW50ZXIyMjI=' x",
        "curl -H '[REDACTED:generic_secret:314b067e]' x",
    ),
    (
        "echo ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12",
        "echo [REDACTED:api_key:afb4c5c1]",
    ),
    (
        "export DATABASE_PASSWORD=hunter2hunter2",
        "export DATABASE_[REDACTED:password:aa16ca57]",
    ),
    (
        "curl \"https://x.io/f?sv=2021-08-06&sig=abcdEFGH1234%2B\"",
        "curl \"https://x.io/f[REDACTED:api_key:da5c0e5f][REDACTED:api_key:a8f1f9aa]\"",
    ),
    (
        "mongosh \"mongodb+srv://admin:pw@cluster0.x.net/db\"",
        "mongosh \"mongodb+srv://admin:[REDACTED:password:30c952fa]@cluster0.x.net/db\"",
    ),
    (
        "curl -d token=xoxb-123456789012-abcdefghij slack.com",
        "curl -d token=[REDACTED:api_key:565135a2] slack.com",
    ),
    (
        "curl -H 'Cookie: session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-x' x",
        "curl -H 'Cookie: session=[REDACTED:jwt_token:216cfba8]' x",
    ),
    ("ls\u{7} -la\u{7f}", "ls -la"),
    (
        "curl --header 'PRIVATE-TOKEN: glpat-xYz12AbC34dEf56GhI78jK' https://gitlab.com/api",
        "curl --header 'PRIVATE-TOKEN: [REDACTED:api_key:dd87b83f]' https://gitlab.com/api",
    ),
    (
        "MY_SERVICE_TOKEN=t0k3n-v4lue-8a7b6c ./deploy.sh",
        "MY_SERVICE_TOKEN=[REDACTED:generic_secret:db1b3756] ./deploy.sh",
    ),
];

#[test]
fn maestro_format_exact_outputs() {
    let long = format!("echo {}", "abc ".repeat(300));
    let blob = "QUJD".repeat(300);
    let cuts = [
        (
            long.clone(),
            format!("{}...[truncated:0b69c38f]", &long[..977]),
        ),
        (
            blob.clone(),
            format!("{}...[base64:7d16d0df]", &blob[..180]),
        ),
    ];
    let table = MAESTRO_TABLE
        .iter()
        .map(|(i, o)| (i.to_string(), o.to_string()))
        .chain(cuts);
    for (input, expected) in table {
        let s = maestro_sh::redact::sanitize_command(&input);
        assert_eq!(s.text, expected, "{input:?}");
        assert!(s.changed(), "{input:?}");
        let body = &explain(&input)["request"]["body"];
        assert_eq!(body["arguments"]["command"], expected, "{input:?}");
        assert_eq!(body["metadata"]["maestro_redacted_arguments"], "true");
    }
}

fn explain(cmd: &str) -> Value {
    crate::classify::explain(cmd)
}

#[test]
fn thirty_secrets_never_reach_the_request_body() {
    assert!(SECRETS.len() >= 30);
    for (cmd, secret) in SECRETS {
        let e = explain(cmd);
        let text = e.to_string();
        assert!(
            !text.contains(secret),
            "{secret:?} leaked from {cmd:?}:\n{e:#}"
        );
        let body = &e["request"]["body"];
        let command = body["arguments"]["command"].as_str().unwrap();
        assert!(command.contains("[REDACTED:"), "{cmd:?} → {command}");
        assert_eq!(
            body["metadata"]["maestro_redacted_arguments"], "true",
            "{cmd:?}"
        );
        let op = body["tool"]["operation"].as_str().unwrap();
        assert!(!op.contains(secret), "{op}");
    }
}

#[test]
fn marker_format_is_kind_and_stable_digest() {
    let a = explain("export GITHUB_TOKEN=ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12");
    let b = explain("echo ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12");
    let cmd_a = a["request"]["body"]["arguments"]["command"]
        .as_str()
        .unwrap()
        .to_string();
    let cmd_b = b["request"]["body"]["arguments"]["command"]
        .as_str()
        .unwrap()
        .to_string();
    let re = regex::Regex::new(r"\[REDACTED:([a-z_]+):([0-9a-f]{8})\]").unwrap();
    let da = re.captures(&cmd_a).unwrap();
    let db = re.captures(&cmd_b).unwrap();
    // Same secret, same digest, wherever it appears.
    assert_eq!(&da[2], &db[2], "{cmd_a} / {cmd_b}");
    assert_eq!(&db[1], "api_key");
}

#[test]
fn secrets_never_reach_platform_or_sidecar() {
    let p = DevPlatform::start();
    // Observe mode: the command runs (harmlessly: `true` first, secrets only in arguments),
    // then ExecuteTool and RecordToolExecutionOutput are sent.
    let picked: Vec<_> = SECRETS.iter().step_by(3).collect();
    for (cmd, secret) in &picked {
        let mut g = Gov::new(Some(&p.url), "observe", &format!("true || {cmd}"));
        let out = g.run();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = serde_json::to_string(&g.events()).unwrap();
        assert!(!events.contains(secret), "{secret} in sidecar events");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
    let sent = serde_json::to_string(&p.requests()).unwrap();
    assert!(sent.contains("[REDACTED:"), "requests were recorded");
    for (_, secret) in &picked {
        assert!(!sent.contains(secret), "{secret} reached Platform");
    }
}

/// The credential forms issue 10 names, exact outputs: only the value goes, the command's
/// shape stays. (Digests: `printf '%s' VALUE | sha256sum | cut -c1-8`.)
const PASSWORD_TABLE: &[(&str, &str)] = &[
    (
        "curl -u alice:s3cretPw https://x.io",
        "curl -u alice:[REDACTED:password:dc42b205] https://x.io",
    ),
    (
        "curl --user alice:pw https://x.io",
        "curl --user alice:[REDACTED:password:30c952fa] https://x.io",
    ),
    ("docker run -u 1000:1000 img", "docker run -u 1000:1000 img"),
    (
        "sshpass -p hunter2 ssh host",
        "sshpass -p [REDACTED:password:f52fbd32] ssh host",
    ),
    (
        "docker login -u me -p Pa55w0rd registry.io",
        "docker login -u me -p [REDACTED:password:590561e9] registry.io",
    ),
    (
        "htpasswd -nb alice pw123 && echo done",
        "htpasswd -nb alice [REDACTED:password:23d47445] && echo done",
    ),
    (
        "htpasswd -b .htpasswd alice pw123",
        "htpasswd -b .htpasswd alice [REDACTED:password:23d47445]",
    ),
    ("mysql -pX1y2z3 db", "mysql -p[REDACTED:password:c5f34bdd] db"),
    (
        "PGPASSWORD=abc psql -h db",
        "PGPASSWORD=[REDACTED:generic_secret:ba7816bf] psql -h db",
    ),
    (
        "git clone https://user:pass@host/x",
        "git clone https://user:[REDACTED:password:d74ff0ee]@host/x",
    ),
    (
        "curl -H 'Proxy-Authorization: Digest u1p2q3r4' x",
        "curl -H 'Proxy-Authorization: Digest [REDACTED:generic_secret:1107b969]' x",
    ),
    (
        "curl -H 'AUTHORIZATION: bearer abcdefgh12' x",
        "curl -H 'AUTHORIZATION: [REDACTED:generic_secret:03a0a498]' x",
    ),
    (
        "printf 'machine h login u password p' > ~/.netrc",
        "printf 'machine h login u password [REDACTED:password:148de9c5]' > ~/.netrc",
    ),
    (
        "echo '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----' > k",
        "echo '-----BEGIN ENCRYPTED PRIVATE KEY-----[REDACTED:private_key:81bddb78]-----END ENCRYPTED PRIVATE KEY-----' > k",
    ),
    (
        "export PASSWORD=hunter2hunter2; rm -rf /tmp/x",
        "export [REDACTED:password:aa16ca57]; rm -rf /tmp/x",
    ),
];

const NESTED: &str = "nest one marker inside another";
const MERGED: &str = "swallow a shell separator";

/// No marker inside another, and every `;`/`&&`/`|` of the input still there.
fn assert_clean(input: &str, out: &str) {
    let re = regex::Regex::new(r"\[REDACTED:[a-z_]*\[").unwrap();
    assert!(!re.is_match(out), "nested marker: {input:?} → {out:?}");
    let stripped = regex::Regex::new(r"\[REDACTED:[a-z_]+:[0-9a-f]{8}\]")
        .unwrap()
        .replace_all(out, "");
    assert!(!stripped.contains("[REDACTED"), "broken marker: {out:?}");
    for sep in [";", "&&", "||", "|"] {
        assert_eq!(
            input.matches(sep).count(),
            out.matches(sep).count(),
            "{sep:?} merged away: {input:?} → {out:?}"
        );
    }
}

#[test]
fn password_forms_redacted_to_clean_markers_in_explain() {
    for (input, expected) in PASSWORD_TABLE {
        let body = &explain(input)["request"]["body"];
        assert_eq!(body["arguments"]["command"], *expected, "{input:?}");
        assert_clean(input, expected);
    }
    // Departures from Maestro are explained.
    let e = explain("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls");
    assert!(e["redaction_notes"].to_string().contains(NESTED), "{e:#}");
    let e = explain("export PASSWORD=hunter2hunter2; rm -rf /tmp/x");
    assert!(e["redaction_notes"].to_string().contains(MERGED), "{e:#}");
    let e = explain("echo ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3s12");
    assert_eq!(e["redaction_notes"], serde_json::json!([]));
}

#[test]
fn no_nested_marker_no_merged_commands() {
    let seps = ["; echo next", " && echo next", " | cat", "&& true"];
    for (cmd, _) in SECRETS.iter().chain(PASSWORD_TABLE) {
        for sep in seps {
            let input = format!("{cmd}{sep}");
            let out = maestro_sh::redact::sanitize_command(&input).text;
            assert_clean(&input, &out);
        }
    }
}

#[test]
fn password_forms_never_reach_platform_or_sidecar() {
    let p = DevPlatform::start();
    let secrets = [
        ("curl -u alice:s3cretPw https://127.0.0.1:9", "s3cretPw"),
        ("sshpass -p hunter2x ssh host", "hunter2x"),
        ("docker login -p Pa55w0rd registry.io", "Pa55w0rd"),
        ("htpasswd -nb alice pw123xyz", "pw123xyz"),
        ("PGPASSWORD=abc9q psql -h db", "abc9q"),
        ("printf 'machine h login u password p4ss9' > n", "p4ss9"),
    ];
    for (cmd, secret) in secrets {
        let mut g = Gov::new(Some(&p.url), "observe", &format!("true || {cmd}"));
        let out = g.run();
        assert!(out.status.success());
        let events = serde_json::to_string(&g.events()).unwrap();
        assert!(!events.contains(secret), "{secret} in sidecar events");
        assert!(
            events.contains("[REDACTED:password:") || events.contains("[REDACTED:generic_secret:")
        );
    }
    let sent = serde_json::to_string(&p.requests()).unwrap();
    for (_, secret) in secrets {
        assert!(!sent.contains(secret), "{secret} reached Platform");
    }
}

/// Redaction never garbles our own messages or Platform's error text: a wrong token reads
/// "missing or invalid bearer token", not "[REDACTED:…] or invalid [REDACTED:…]".
#[test]
fn messages_keep_their_words() {
    let p = DevPlatform::start();
    let mut g = Gov::marked(Some(&p.url), "governed", "true")
        .env("TOOL_EXECUTION_SERVICE_TOKEN", "wrong-token")
        .expect_refused("misconfigured")
        .expect_stderr_contains("unauthenticated: missing or invalid bearer token")
        .expect_stderr_lacks("[REDACTED");
    g.run_checked();
    assert!(!g.completed()["error_message"]
        .to_string()
        .contains("[REDACTED"));
    let m = maestro_sh::redact::redact_message(
        "HTTP 400: password=hunter2 rejected for Bearer eyq8Zt2RbW0xKp4LmN7vQs",
    );
    assert!(
        !m.text.contains("hunter2") && !m.text.contains("eyq8Zt2"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("rejected for Bearer [REDACTED:"),
        "{}",
        m.text
    );
}
