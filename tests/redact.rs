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
    assert_eq!(&db[1], "github_token");
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
