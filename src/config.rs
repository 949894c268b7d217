//! Platform connection settings: base URL, token, organization, workspace, timeout, attempts
//! (platform-contract.md, section 1), and where the token comes from when Maestro has stripped
//! it from the environment (DESIGN.md, "Credentials").

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::context::{self, ORGANIZATION_VARS, WORKSPACE_VARS};
use crate::env::Env;

pub const URL_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_URL",
    "MAESTRO_TOOL_EXECUTION_SERVICE_URL",
    "MAESTRO_PLATFORM_BASE_URL",
    "MAESTRO_EVALOPS_BASE_URL",
    "EVALOPS_BASE_URL",
];
pub const TOKEN_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_TOKEN",
    "MAESTRO_TOOL_EXECUTION_SERVICE_TOKEN",
    "MAESTRO_EVALOPS_ACCESS_TOKEN",
    "EVALOPS_TOKEN",
];
const TIMEOUT_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_TIMEOUT_MS",
    "MAESTRO_TOOL_EXECUTION_SERVICE_TIMEOUT_MS",
];
const ATTEMPTS_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS",
    "MAESTRO_TOOL_EXECUTION_SERVICE_MAX_ATTEMPTS",
];
/// Names a credentials file; deliberately free of TOKEN/KEY/SECRET so Maestro passes it on.
pub const CREDENTIALS_FILE_VAR: &str = "MAESTRO_SH_CREDENTIALS_FILE";

const SERVICE_SUFFIX: &str = "/toolexecution.v1.ToolExecutionService";
const DEFAULT_TIMEOUT_MS: u64 = 2500;
const DEFAULT_ATTEMPTS: u32 = 2;

/// A credential. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The raw value, for the one place that needs it (the Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the token was found (for `--doctor`; never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(&'static str),
    File(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(v) => write!(f, "env {v}"),
            TokenSource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Everything needed to call Platform.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub base_url: String,
    pub token: Secret,
    pub token_source: TokenSource,
    pub organization_id: String,
    pub workspace_id: String,
    pub timeout: Duration,
    pub attempts: u32,
}

/// Why Platform cannot be called; each names the variable or file to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no Platform URL: set {}", URL_VARS[0])]
    MissingUrl,
    #[error("{var}={value:?} is not an http(s) URL; set it to the Platform base URL, e.g. https://platform.example.com")]
    BadUrl { var: &'static str, value: String },
    #[error("no Platform token: set {} or {} (a file readable only by you), or create {}", TOKEN_VARS[0], CREDENTIALS_FILE_VAR, .default_file)]
    MissingToken { default_file: String },
    #[error("credentials file {path}: {problem}")]
    CredentialsFile { path: String, problem: String },
    #[error("no organization id: set {}", ORGANIZATION_VARS[0])]
    MissingOrganization,
    #[error("no workspace id: set {}", WORKSPACE_VARS[0])]
    MissingWorkspace,
    #[error("{var}={value:?} is not a valid number ({range}); fix or unset it")]
    BadNumber {
        var: &'static str,
        value: String,
        range: &'static str,
    },
}

impl PlatformConfig {
    /// Read the configuration; the first problem found is returned.
    pub fn load(env: &dyn Env) -> Result<PlatformConfig, ConfigError> {
        let (var, raw) = env.first(URL_VARS).ok_or(ConfigError::MissingUrl)?;
        let base_url = normalize_base_url(&raw).ok_or(ConfigError::BadUrl { var, value: raw })?;
        let (token, token_source) = load_token(env)?;
        let organization_id = env
            .first_value(ORGANIZATION_VARS)
            .ok_or(ConfigError::MissingOrganization)?;
        // Maestro falls back to the organization id (default organization variables only).
        let workspace_id = context::workspace_id(env).ok_or(ConfigError::MissingWorkspace)?;
        let timeout_ms = number(
            env,
            TIMEOUT_VARS,
            DEFAULT_TIMEOUT_MS,
            1,
            120_000,
            "1..=120000 ms",
        )?;
        let attempts = number(env, ATTEMPTS_VARS, DEFAULT_ATTEMPTS.into(), 1, 10, "1..=10")? as u32;
        Ok(PlatformConfig {
            base_url,
            token,
            token_source,
            organization_id,
            workspace_id,
            timeout: Duration::from_millis(timeout_ms),
            attempts,
        })
    }
}

fn number(
    env: &dyn Env,
    vars: &[&'static str],
    default: u64,
    min: u64,
    max: u64,
    range: &'static str,
) -> Result<u64, ConfigError> {
    match env.first(vars) {
        None => Ok(default),
        Some((var, value)) => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::BadNumber { var, value, range }),
        },
    }
}

/// Strip trailing slashes and a trailing service path (`/toolexecution.v1.ToolExecutionService`
/// with or without `/<Method>`); keep any other path prefix. `None` unless http(s).
pub fn normalize_base_url(raw: &str) -> Option<String> {
    let mut url = raw.trim().trim_end_matches('/').to_string();
    if let Some(idx) = url.rfind(SERVICE_SUFFIX) {
        let rest = &url[idx + SERVICE_SUFFIX.len()..];
        if rest.is_empty() || (rest.starts_with('/') && !rest[1..].contains('/')) {
            url.truncate(idx);
        }
    }
    let url = url.trim_end_matches('/').to_string();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    (!host.is_empty() && !host.starts_with('/')).then_some(url)
}

/// The default credentials file: `<config dir>/maestro-sh/credentials`.
pub fn default_credentials_file() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.config_dir().join("maestro-sh").join("credentials"))
}

fn load_token(env: &dyn Env) -> Result<(Secret, TokenSource), ConfigError> {
    if let Some((var, token)) = env.first(TOKEN_VARS) {
        return Ok((Secret(token), TokenSource::Env(var)));
    }
    if let Some(path) = env.first_value(&[CREDENTIALS_FILE_VAR]) {
        let path = PathBuf::from(path);
        return read_credentials(&path).map(|t| (t, TokenSource::File(path)));
    }
    let default = default_credentials_file();
    match &default {
        Some(path) if path.exists() => {
            read_credentials(path).map(|t| (t, TokenSource::File(path.clone())))
        }
        _ => Err(ConfigError::MissingToken {
            default_file: default
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.config/maestro-sh/credentials".into()),
        }),
    }
}

/// Read a token from a credentials file: either `{"token": "..."}` or the token alone. The file
/// must not be readable by group or others.
pub fn read_credentials(path: &Path) -> Result<Secret, ConfigError> {
    let fail = |problem: String| ConfigError::CredentialsFile {
        path: path.display().to_string(),
        problem,
    };
    // One descriptor for the permission check and the read (crate::fsread: no FIFO, capped).
    let (file, meta) = crate::fsread::open_regular(path, crate::fsread::Follow::Yes)
        .map_err(|e| fail(format!("cannot be used: {e}")))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "is readable by group or others (mode {:o}); run: chmod 600 {}",
            mode & 0o777,
            path.display()
        )));
    }
    let text = crate::fsread::read_open(file, meta, path, crate::fsread::CONFIG_CAP)
        .map_err(|e| fail(format!("cannot be used: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| fail("is not UTF-8 text".into()))?;
    let text = text.trim();
    let token = if text.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| fail(format!("is not valid JSON ({e})")))?;
        v.get("token")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| fail("has no string field \"token\"".into()))?
    } else {
        text.to_string()
    };
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(fail(
            "holds no token (expected {\"token\": \"...\"} or the token alone)".into(),
        ));
    }
    Ok(Secret(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn base_url_forms() {
        let cases = [
            ("https://p.example.com", Some("https://p.example.com")),
            ("https://p.example.com/", Some("https://p.example.com")),
            (
                "https://p.example.com/api//",
                Some("https://p.example.com/api"),
            ),
            (
                "https://p.example.com/toolexecution.v1.ToolExecutionService",
                Some("https://p.example.com"),
            ),
            (
                "https://p.example.com/x/toolexecution.v1.ToolExecutionService/ExecuteTool",
                Some("https://p.example.com/x"),
            ),
            (
                "http://127.0.0.1:8080/toolexecution.v1.ToolExecutionService/",
                Some("http://127.0.0.1:8080"),
            ),
            ("ftp://p", None),
            ("p.example.com", None),
            ("https://", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_base_url(raw).as_deref(), want, "{raw}");
        }
    }

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            ("MAESTRO_PLATFORM_BASE_URL", "http://127.0.0.1:1/"),
            ("EVALOPS_TOKEN", "tok"),
            ("EVALOPS_ORGANIZATION_ID", "org"),
            ("EVALOPS_WORKSPACE_ID", "ws"),
        ]
    }

    #[test]
    fn loads_with_defaults() {
        let cfg = PlatformConfig::load(&MapEnv::from_pairs(full())).unwrap();
        assert_eq!(cfg.base_url, "http://127.0.0.1:1");
        assert_eq!(cfg.token.expose(), "tok");
        assert_eq!(cfg.token_source, TokenSource::Env("EVALOPS_TOKEN"));
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert_eq!(cfg.attempts, 2);
        assert!(!format!("{cfg:?}").contains("tok\""));
    }

    #[test]
    fn each_missing_piece_is_named() {
        for (drop, want) in [
            ("MAESTRO_PLATFORM_BASE_URL", "TOOL_EXECUTION_SERVICE_URL"),
            (
                "EVALOPS_ORGANIZATION_ID",
                "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID",
            ),
            // (missing workspace: see workspace_falls_back_like_maestro)
        ] {
            let env = MapEnv::from_pairs(full().into_iter().filter(|(k, _)| *k != drop));
            let err = PlatformConfig::load(&env).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn workspace_falls_back_like_maestro() {
        // EVALOPS_ORGANIZATION_ID doubles as the workspace id when no workspace var is set.
        let env = MapEnv::from_pairs(
            full()
                .into_iter()
                .filter(|(k, _)| *k != "EVALOPS_WORKSPACE_ID"),
        );
        assert_eq!(PlatformConfig::load(&env).unwrap().workspace_id, "org");
        // The ToolExecution-specific organization variable is not a workspace fallback.
        let env = MapEnv::from_pairs(
            full()
                .into_iter()
                .filter(|(k, _)| !k.ends_with("_ID"))
                .chain([("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", "org")]),
        );
        let err = PlatformConfig::load(&env).unwrap_err();
        assert_eq!(err, ConfigError::MissingWorkspace);
        assert!(err
            .to_string()
            .contains("TOOL_EXECUTION_SERVICE_WORKSPACE_ID"));
    }

    #[test]
    fn bad_numbers_are_named() {
        let mut pairs = full();
        pairs.push(("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "soon"));
        let err = PlatformConfig::load(&MapEnv::from_pairs(pairs))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TOOL_EXECUTION_SERVICE_TIMEOUT_MS=\"soon\""),
            "{err}"
        );
    }

    #[test]
    fn credentials_file_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "{\"token\": \"filetok\"}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_credentials(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_credentials(&path).unwrap().expose(), "filetok");
        std::fs::write(&path, "plain-token\n").unwrap();
        assert_eq!(read_credentials(&path).unwrap().expose(), "plain-token");

        let mut pairs: Vec<(&str, String)> = full()
            .into_iter()
            .filter(|(k, _)| *k != "EVALOPS_TOKEN")
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        pairs.push((CREDENTIALS_FILE_VAR, path.display().to_string()));
        let cfg = PlatformConfig::load(&MapEnv::from_pairs(pairs)).unwrap();
        assert_eq!(cfg.token_source, TokenSource::File(path));
    }
}
