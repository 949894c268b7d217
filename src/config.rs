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
    // Maestro's Rust Platform client (platform-contract.md, section 9), appended. Like every
    // *TOKEN* variable, Maestro's shell policy strips it; it matters for CI and manual runs.
    "MAESTRO_PLATFORM_ACCESS_TOKEN",
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
/// `1`: allow sending the token over plain http to a non-loopback host (a lab only).
pub const ALLOW_INSECURE_HTTP_VAR: &str = "MAESTRO_SH_ALLOW_INSECURE_HTTP";
/// A PEM bundle of extra CA certificates for a private Platform (also `SSL_CERT_FILE`).
pub const CA_FILE_VARS: &[&str] = &["MAESTRO_SH_CA_FILE", "SSL_CERT_FILE"];

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
    /// The protected configuration (setgid install): unreadable by the governed command.
    Protected(PathBuf),
}

impl TokenSource {
    /// True when the governed command (same user) cannot read the token's source.
    pub fn is_protected(&self) -> bool {
        matches!(self, TokenSource::Protected(_))
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(v) => write!(f, "env {v}"),
            TokenSource::File(p) => write!(f, "file {}", p.display()),
            TokenSource::Protected(p) => write!(f, "protected file {}", p.display()),
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
    /// Extra CA certificates (PEM) trusted besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// The proxy for this URL from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, unless `NO_PROXY`
    /// (or loopback) exempts it.
    pub proxy: Option<String>,
}

/// Why Platform cannot be called; each names the variable or file to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no Platform URL: set {}", URL_VARS[0])]
    MissingUrl,
    #[error("{var}={value:?} is not an http(s) URL; set it to the Platform base URL, e.g. https://platform.example.com")]
    BadUrl { var: &'static str, value: String },
    #[error("no Platform token found (set {} or {}, a file readable only by you, or create {})", TOKEN_VARS[0], CREDENTIALS_FILE_VAR, .default_file)]
    MissingToken { default_file: String },
    #[error("credentials file {path}: {problem}")]
    CredentialsFile { path: String, problem: String },
    #[error("no organization id: set {}", ORGANIZATION_VARS[0])]
    MissingOrganization,
    #[error("no workspace id: set {}", WORKSPACE_VARS[0])]
    MissingWorkspace,
    #[error("{var}={value:?} would send the Platform token unencrypted to a host that is not this machine; use https://, or set {ALLOW_INSECURE_HTTP_VAR}=1 for a lab network")]
    InsecureUrl { var: &'static str, value: String },
    #[error("protected configuration {path}: {problem}")]
    Protected { path: String, problem: String },
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
        match crate::harden::protected() {
            crate::harden::Protected::No => {}
            crate::harden::Protected::Open { path, file } => {
                let text = read_protected(file)
                    .map_err(|e| protected_error(path, format!("cannot read it ({e})")))?;
                return PlatformConfig::from_protected(env, path, &text);
            }
            crate::harden::Protected::Unreadable { path, error } => {
                return Err(protected_error(
                    path,
                    format!("maestro-sh is installed setgid but cannot open it ({error}); run install.sh again as root"),
                ))
            }
        }
        let (var, raw) = env.first(URL_VARS).ok_or(ConfigError::MissingUrl)?;
        let base_url = normalize_base_url(&raw).ok_or(ConfigError::BadUrl {
            var,
            value: raw.clone(),
        })?;
        if !transport_allowed(
            &base_url,
            env.get(ALLOW_INSECURE_HTTP_VAR).as_deref() == Some("1"),
        ) {
            return Err(ConfigError::InsecureUrl { var, value: raw });
        }
        let (token, token_source) = load_token(env)?;
        let proxy = proxy_for(env, &base_url);
        let organization_id = env
            .first_value(ORGANIZATION_VARS)
            .ok_or(ConfigError::MissingOrganization)?;
        // Maestro falls back to the organization id (default organization variables only).
        let workspace_id = context::workspace_id(env).ok_or(ConfigError::MissingWorkspace)?;
        let (timeout_ms, attempts) = transport_limits(env)?;
        Ok(PlatformConfig {
            base_url,
            token,
            token_source,
            organization_id,
            workspace_id,
            timeout: Duration::from_millis(timeout_ms),
            attempts,
            ca_file: env.first_value(CA_FILE_VARS).map(PathBuf::from),
            proxy,
        })
    }

    /// The protected configuration (JSON: `url`, `token`, `organization_id`, `workspace_id`,
    /// optional `ca_file`, `allow_insecure_http`). The URL, tenant, token and CA come only from
    /// it; the environment still sets timeouts and attempts, which cannot leak the token.
    pub fn from_protected(
        env: &dyn Env,
        path: &Path,
        text: &str,
    ) -> Result<PlatformConfig, ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            url: String,
            token: String,
            organization_id: String,
            workspace_id: Option<String>,
            ca_file: Option<PathBuf>,
            #[serde(default)]
            allow_insecure_http: bool,
            /// Read by `protected_floor` (mode.rs); named here so the file's fields are one set.
            #[serde(default)]
            #[allow(dead_code)]
            governance: Option<String>,
        }
        // Never echo the file's text: serde's messages name fields and positions only.
        let f: File = serde_json::from_str(text).map_err(|e| {
            protected_error(
                path,
                format!(
                    "is not the expected JSON ({:?} error at line {} column {}; fields: url, token, organization_id, workspace_id, ca_file, allow_insecure_http, governance)",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let base_url = normalize_base_url(&f.url)
            .ok_or_else(|| protected_error(path, "\"url\" is not an http(s) URL".into()))?;
        // Plain http needs the explicit opt-in here even to loopback: any local process (the
        // agent's included) can listen on the port while the real service is not, and would
        // be handed the token; over https it cannot present the certificate (SECURITY.md).
        if !(base_url.starts_with("https://") || f.allow_insecure_http) {
            return Err(protected_error(
                path,
                "\"url\" is plain http, which any local process listening on that port (loopback included) would be handed the token over; use https or set \"allow_insecure_http\": true".into(),
            ));
        }
        let token = f.token.trim().to_string();
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(protected_error(
                path,
                "\"token\" is empty or not one word".into(),
            ));
        }
        let (timeout_ms, attempts) = transport_limits(env)?;
        Ok(PlatformConfig {
            token: Secret(token),
            token_source: TokenSource::Protected(path.to_path_buf()),
            workspace_id: f.workspace_id.unwrap_or_else(|| f.organization_id.clone()),
            organization_id: f.organization_id,
            timeout: Duration::from_millis(timeout_ms),
            attempts,
            // A proxy the environment names could read a plain-http request, token included:
            // in protected mode only https (whose certificate the agent cannot forge) is proxied.
            proxy: if base_url.starts_with("https://") {
                proxy_for(env, &base_url)
            } else {
                None
            },
            base_url,
            ca_file: f.ca_file,
        })
    }
}

/// The operator's governance floor in a protected install: `"governance"` in the protected
/// configuration (`off`, `observe` or `governed`; absent: none). `Ok(None)` when not started
/// setgid. An unreadable file or a bad value is an error (path, problem): governance may be
/// meant to be on, so the caller fails closed. Reads the already open descriptor only.
pub fn protected_floor() -> Result<Option<crate::mode::Mode>, (String, String)> {
    use crate::mode::Mode;
    let (path, file) = match crate::harden::protected() {
        crate::harden::Protected::No => return Ok(None),
        crate::harden::Protected::Open { path, file } => (path, file),
        // Governed runs refuse on their own (config load); the floor cannot be known.
        crate::harden::Protected::Unreadable { path, error } => {
            return Err((
                path.display().to_string(),
                format!("maestro-sh is installed setgid but cannot open it ({error}); run install.sh again as root"),
            ))
        }
    };
    #[derive(serde::Deserialize)]
    struct Floor {
        #[serde(default)]
        governance: Option<String>,
    }
    let fail = |problem: String| (path.display().to_string(), problem);
    let text = read_protected(file).map_err(|e| fail(format!("cannot read it ({e})")))?;
    // Never echo the file's text: it holds the token.
    let floor: Floor = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    match floor
        .governance
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(None),
        Some("off") => Ok(Some(Mode::Off)),
        Some("observe") => Ok(Some(Mode::Observe)),
        Some("governed") => Ok(Some(Mode::Governed)),
        Some(_) => Err(fail(
            "\"governance\" is not one of off, observe, governed".into(),
        )),
    }
}

fn protected_error(path: &Path, problem: String) -> ConfigError {
    ConfigError::Protected {
        path: path.display().to_string(),
        problem,
    }
}

/// The whole protected file from its start (the descriptor is shared, so positioned reads).
fn read_protected(file: &std::fs::File) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        let n = file.read_at(&mut buf[len..], len as u64)?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            return Err(std::io::Error::other("larger than 64 KiB"));
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| std::io::Error::other("not UTF-8"))
}

/// May the token travel to `base_url`? https always; plain http only to a loopback address
/// (`localhost`, 127.0.0.0/8, ::1), or anywhere with the explicit lab opt-in.
pub fn transport_allowed(base_url: &str, allow_insecure_http: bool) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => allow_insecure_http || is_loopback(&url),
        _ => false,
    }
}

/// The proxy to use for `base_url`, as curl reads the variables: `https_proxy`/`HTTPS_PROXY`
/// (or `http_proxy`/`HTTP_PROXY` for http), then `all_proxy`/`ALL_PROXY`; none for loopback
/// or a host matched by `NO_PROXY` (`*`, a host, or a domain suffix, with or without a dot).
pub fn proxy_for(env: &dyn Env, base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    if is_loopback(&url) {
        return None;
    }
    let host = url
        .host_str()?
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let no_proxy = env
        .first_value(&["no_proxy", "NO_PROXY"])
        .unwrap_or_default();
    let exempt = no_proxy.split(',').map(str::trim).any(|e| {
        let e = e.trim_start_matches('.').to_ascii_lowercase();
        let e = e.split(':').next().unwrap_or_default();
        e == "*" || (!e.is_empty() && (host == e || host.ends_with(&format!(".{e}"))))
    });
    if exempt {
        return None;
    }
    let vars: &[&'static str] = if url.scheme() == "https" {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
    };
    env.first_value(vars)
}

/// The per-attempt timeout (ms) and attempt count from `TOOL_EXECUTION_SERVICE_TIMEOUT_MS` /
/// `…_MAX_ATTEMPTS` and their aliases (platform-contract.md, section 1): defaults 2500 and 2,
/// bounded to 1..=120000 ms and 1..=10.
fn transport_limits(env: &dyn Env) -> Result<(u64, u32), ConfigError> {
    let timeout_ms = number(
        env,
        TIMEOUT_VARS,
        DEFAULT_TIMEOUT_MS,
        1,
        120_000,
        "1..=120000 ms",
    )?;
    let attempts = number(env, ATTEMPTS_VARS, DEFAULT_ATTEMPTS.into(), 1, 10, "1..=10")? as u32;
    Ok((timeout_ms, attempts))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
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
    fn plain_http_only_to_loopback_unless_opted_in() {
        for (url, ok) in [
            ("https://p.example.com", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.9.9.9", true),
            ("http://localhost:1", true),
            ("http://[::1]:1", true),
            ("http://192.0.2.1", false),
            ("http://p.example.com", false),
            ("http://localhost.example.com", false),
            ("http://127.0.0.1@evil.example.com", false),
        ] {
            assert_eq!(transport_allowed(url, false), ok, "{url}");
            assert!(transport_allowed(url, true), "{url}");
        }
        let mut pairs = full();
        pairs[0] = ("MAESTRO_PLATFORM_BASE_URL", "http://192.0.2.1/");
        let err = PlatformConfig::load(&MapEnv::from_pairs(pairs.clone())).unwrap_err();
        assert!(
            err.to_string().contains("MAESTRO_PLATFORM_BASE_URL"),
            "{err}"
        );
        assert!(err.to_string().contains(ALLOW_INSECURE_HTTP_VAR), "{err}");
        pairs.push((ALLOW_INSECURE_HTTP_VAR, "1"));
        assert!(PlatformConfig::load(&MapEnv::from_pairs(pairs)).is_ok());
    }

    #[test]
    fn proxies_follow_the_usual_variables() {
        let env = |pairs: &[(&'static str, &'static str)]| MapEnv::from_pairs(pairs.to_vec());
        let e = env(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "internal.example,.corp"),
        ]);
        assert_eq!(
            proxy_for(&e, "https://p.example.com").as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(proxy_for(&e, "https://p.internal.example"), None);
        assert_eq!(proxy_for(&e, "https://x.corp:8443"), None);
        assert_eq!(proxy_for(&e, "http://127.0.0.1:1"), None);
        assert_eq!(
            proxy_for(
                &env(&[("NO_PROXY", "*"), ("HTTPS_PROXY", "http://p:1")]),
                "https://a.b"
            ),
            None
        );
        assert_eq!(proxy_for(&env(&[]), "https://a.b"), None);
    }

    #[test]
    fn protected_configuration_ignores_the_environment() {
        let env = MapEnv::from_pairs(full());
        let path = Path::new("/opt/etc/maestro-sh/platform.json");
        let cfg = PlatformConfig::from_protected(
            &env,
            path,
            r#"{"url": "https://platform.example.com", "token": "real", "organization_id": "o", "workspace_id": "w"}"#,
        )
        .unwrap();
        assert_eq!(cfg.base_url, "https://platform.example.com");
        assert_eq!(cfg.token.expose(), "real");
        assert!(cfg.token_source.is_protected());
        assert_eq!(
            (cfg.organization_id.as_str(), cfg.workspace_id.as_str()),
            ("o", "w")
        );
        // Plain http (lab opt-in in the file) is never handed to a proxy the env names.
        let env_proxy = MapEnv::from_pairs(full().into_iter().chain([
            ("HTTP_PROXY", "http://agent-proxy:1"),
            ("HTTPS_PROXY", "http://agent-proxy:1"),
        ]));
        let lab = PlatformConfig::from_protected(
            &env_proxy,
            path,
            r#"{"url": "http://10.0.0.5", "token": "t", "organization_id": "o", "allow_insecure_http": true}"#,
        )
        .unwrap();
        assert_eq!(lab.proxy, None);
        let tls = PlatformConfig::from_protected(
            &env_proxy,
            path,
            r#"{"url": "https://p.example.com", "token": "t", "organization_id": "o"}"#,
        )
        .unwrap();
        assert_eq!(tls.proxy.as_deref(), Some("http://agent-proxy:1"));
        // Plain http to loopback wants the opt-in too: the port may be anyone's.
        let err = PlatformConfig::from_protected(
            &env,
            path,
            r#"{"url": "http://127.0.0.1:8080", "token": "t", "organization_id": "o"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("allow_insecure_http"), "{err}");
        // Errors never echo the file's text (it holds the token).
        for bad in [
            r#"{"url": "http://127.0.0.1:8080", "token": "sekrit", "organization_id": "o"}"#,
            r#"{"url": "http://192.0.2.1", "token": "sekrit", "organization_id": "o"}"#,
            r#"{"url": "https://x", "token": "sekrit", "organization_id": "o", "extra": 1}"#,
            "sekrit",
        ] {
            let err = PlatformConfig::from_protected(&env, path, bad)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("sekrit"), "{err}");
            assert!(err.contains("platform.json"), "{err}");
        }
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
