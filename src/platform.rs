//! The Platform client: Connect unary JSON over HTTP POST (platform-contract.md, section 1).
//! It knows the RPCs and their failure modes, nothing about shells.
//!
//! ureq (blocking, no async runtime, no threads) keeps a governed run small: one connection,
//! reused across the calls of one invocation; TLS (rustls) is set up only for https URLs.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::PlatformConfig;
use crate::wire::{self, ExecutionState, ToolExecution};

/// Largest response body we read; anything bigger is refused as malformed.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Pause before the first retry (before jitter), doubled for each further one, as Maestro does.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Cap on any pause between attempts, whether from backoff or from the server's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a call failed, in the terms the outcome table needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Connection refused or dropped, timeout, 408/429/5xx after every attempt.
    #[error("Platform unavailable: {0}")]
    Unavailable(String),
    /// Platform said no to the request itself (4xx): credentials, organization, arguments.
    #[error("Platform rejected {method} with HTTP {status} {code}: {message}")]
    Rejected {
        method: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// A 2xx answer we cannot trust: bad JSON, oversize, missing ids, unknown state.
    #[error("Platform answer malformed: {0}")]
    Malformed(String),
    /// The connection cannot be set up as configured (CA bundle, proxy): nothing was sent.
    #[error("cannot connect to Platform as configured: {0}")]
    Setup(String),
}

impl CallError {
    /// 401, 403 and 404 mean our configuration is wrong (token, organization, URL), as does a
    /// connection we cannot set up.
    pub fn is_config_problem(&self) -> bool {
        matches!(
            self,
            CallError::Rejected {
                status: 401 | 403 | 404,
                ..
            } | CallError::Setup(_)
        )
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// Why the agent could not be built as configured; every call fails with it.
    setup_error: Option<String>,
    base_url: String,
    authorization: String,
    organization_id: String,
    attempts: u32,
    timeout: Duration,
    /// No attempt runs, and no pause lasts, past this instant ([`Client::until`]).
    deadline: Option<Instant>,
    /// The agent's name resolutions (shared with it).
    resolutions: Arc<Resolutions>,
    /// No proxy, and the URL's host is an IP address: connecting resolves no name.
    no_name_to_resolve: bool,
}

/// The host names this process has resolved. ureq resolves before its deadline starts
/// counting, and a system resolver can stall for seconds; a call that must end by a deadline
/// therefore reuses what an earlier call resolved instead of asking again.
#[derive(Default)]
struct Resolutions {
    known: Mutex<HashMap<String, Vec<SocketAddr>>>,
    /// Answer a known name from `known` (set once a deadline-bound client exists).
    reuse: AtomicBool,
}

impl Resolutions {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        if self.reuse.load(Ordering::SeqCst) {
            if let Some(known) = self.known.lock().ok().and_then(|k| k.get(netloc).cloned()) {
                return Ok(known);
            }
        }
        let found: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if let Ok(mut known) = self.known.lock() {
            known.insert(netloc.to_string(), found.clone());
        }
        Ok(found)
    }

    fn any_known(&self) -> bool {
        self.known.lock().is_ok_and(|k| !k.is_empty())
    }
}

impl Client {
    /// Redirects are never followed (a 3xx is a refusal, see `call`); proxies only as
    /// `cfg.proxy` says (never from ureq's own reading of the environment); TLS with the
    /// built-in roots plus `cfg.ca_file`, set up only for https URLs.
    pub fn new(cfg: &PlatformConfig) -> Client {
        let mut setup_error = None;
        let resolutions = Arc::new(Resolutions::default());
        let resolver = resolutions.clone();
        let mut builder = ureq::AgentBuilder::new()
            .resolver(move |netloc: &str| resolver.resolve(netloc))
            .timeout_connect(cfg.timeout)
            .timeout(cfg.timeout)
            .redirects(0)
            .try_proxy_from_env(false)
            .user_agent(concat!("maestro-sh/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = &cfg.proxy {
            match ureq::Proxy::new(proxy) {
                Ok(p) => builder = builder.proxy(p),
                Err(e) => setup_error = Some(format!("proxy {proxy:?}: {e}")),
            }
        }
        if cfg.base_url.starts_with("https://") {
            match crate::tls::client_config(cfg.ca_file.as_deref()) {
                Ok(tls) => builder = builder.tls_config(tls),
                Err(e) => setup_error = Some(e),
            }
        }
        let ip_host = url::Url::parse(&cfg.base_url)
            .is_ok_and(|u| matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))));
        Client {
            agent: builder.build(),
            setup_error,
            base_url: cfg.base_url.clone(),
            authorization: format!("Bearer {}", cfg.token.expose()),
            organization_id: cfg.organization_id.clone(),
            attempts: cfg.attempts,
            timeout: cfg.timeout,
            deadline: None,
            resolutions,
            no_name_to_resolve: ip_host && cfg.proxy.is_none(),
        }
    }

    /// This client, bound to end every call by `deadline`: each attempt's timeout (connect,
    /// send, answer and body: ureq's deadline) is cut to what is left, and no retry starts or
    /// pause lasts past it. `None` when a call could still block past it: resolving a host name
    /// has no timeout, so only a URL whose host is an address (and no proxy), or a name this
    /// process has already resolved (then reused), qualifies. Shares the connection pool.
    pub fn until(&self, deadline: Instant) -> Option<Client> {
        if self.setup_error.is_some() || !(self.no_name_to_resolve || self.resolutions.any_known())
        {
            return None;
        }
        self.resolutions.reuse.store(true, Ordering::SeqCst);
        Some(Client {
            agent: self.agent.clone(),
            setup_error: None,
            base_url: self.base_url.clone(),
            authorization: self.authorization.clone(),
            organization_id: self.organization_id.clone(),
            attempts: self.attempts,
            timeout: self.timeout,
            deadline: Some(deadline),
            resolutions: self.resolutions.clone(),
            no_name_to_resolve: self.no_name_to_resolve,
        })
    }

    /// Time left before the deadline, if bound to one ([`Client::until`]).
    fn left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// A key only a holder of the Platform token has (the authorization header's bytes): what
    /// spooled records are sealed with (outbox.rs), so a record planted by anyone without the
    /// token is never sent with it. Never logged.
    pub fn seal_key(&self) -> &[u8] {
        self.authorization.as_bytes()
    }

    /// Per-attempt timeout (for long-polls: wait budget plus this).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One unary call with the contract's headers and retries: identical body each attempt, only
    /// on connection errors, timeouts, 408, 429 and 5xx. `extra_wait` lengthens the per-attempt
    /// timeout (long-polls).
    pub fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        req: &Req,
        extra_wait: Duration,
    ) -> Result<Resp, CallError> {
        if let Some(e) = &self.setup_error {
            return Err(CallError::Setup(e.clone()));
        }
        let body = serde_json::to_string(req)
            .map_err(|e| CallError::Malformed(format!("cannot encode {method}: {e}")))?;
        let url = format!("{}{}", self.base_url, path);
        let mut last = CallError::Unavailable("no attempt made".into());
        for attempt in 1..=self.attempts {
            let mut timeout = self.timeout + extra_wait;
            if let Some(left) = self.left() {
                if left.is_zero() {
                    break;
                }
                timeout = timeout.min(left);
            }
            let started = Instant::now();
            let result = self
                .agent
                .post(&url)
                .timeout(timeout)
                .set("Authorization", &self.authorization)
                .set("Content-Type", "application/json")
                .set("X-Organization-ID", &self.organization_id)
                .set("Connect-Protocol-Version", "1")
                .send_string(&body);
            let retry_after = match result {
                Ok(resp) if (200..300).contains(&resp.status()) => match read_body(method, resp) {
                    Ok(buf) => return parse_body(method, &buf),
                    // The answer was cut off: like a dropped connection, worth another attempt
                    // (an ExecuteTool retry replays our own execution, crate::decide).
                    Err(e @ CallError::Unavailable(_)) => {
                        last = e;
                        None
                    }
                    Err(e) => return Err(e),
                },
                // A redirect (never followed) or any other non-2xx: a refusal, whatever the
                // body says — an allowing body behind a 3xx is not Platform's answer.
                Ok(resp) => {
                    let status = resp.status();
                    let location = resp.header("Location").map(|l| truncate(l, 120));
                    return Err(CallError::Rejected {
                        method,
                        status,
                        code: "redirect".into(),
                        message: match location {
                            Some(l) => format!("redirects are not followed (Location: {l}); set the URL Platform really serves"),
                            None => "not a 2xx answer".into(),
                        },
                    });
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let retry_after = server_retry_delay(
                        resp.header("Retry-After-Ms"),
                        resp.header("Retry-After"),
                    );
                    let (code, message) = error_body(resp);
                    // Maestro retries 408, 429 and every status from 500 up.
                    if !matches!(status, 408 | 429 | 500..) {
                        return Err(CallError::Rejected {
                            method,
                            status,
                            code,
                            message,
                        });
                    }
                    last = CallError::Unavailable(format!(
                        "{method} answered HTTP {status} {code}: {message}"
                    ));
                    retry_after
                }
                Err(ureq::Error::Transport(t)) => {
                    last = CallError::Unavailable(format!(
                        "{method} to {} failed after {} ms: {}",
                        self.base_url,
                        started.elapsed().as_millis(),
                        transport_reason(&t)
                    ));
                    None
                }
            };
            if attempt < self.attempts {
                // The server's delay is used as given (capped); our own backoff gets a little
                // jitter on top.
                let pause =
                    retry_after.unwrap_or_else(|| backoff(attempt) + jitter(RETRY_DELAY / 2));
                if self.left().is_some_and(|left| left <= pause) {
                    break;
                }
                std::thread::sleep(pause);
            }
        }
        Err(last)
    }

    pub fn execute_tool(&self, req: &wire::ExecuteToolRequest) -> Result<Answer, CallError> {
        let resp: wire::ExecuteToolResponse =
            self.call("ExecuteTool", wire::EXECUTE_TOOL, req, Duration::ZERO)?;
        let replay = resp.idempotent_replay.unwrap_or(false);
        let execution = resp
            .execution
            .ok_or_else(|| CallError::Malformed("ExecuteTool answer has no execution".into()))?;
        Ok(Answer {
            execution: validate(execution, "ExecuteTool")?,
            idempotent_replay: replay,
        })
    }

    /// Long-poll the execution for up to `wait` (capped at 30 s, as clients do).
    pub fn get_tool_execution(
        &self,
        req: &wire::GetToolExecutionRequest,
        wait: Duration,
    ) -> Result<Execution, CallError> {
        let wait = wait.min(Duration::from_secs(30));
        let resp: wire::ExecutionEnvelope =
            self.call("GetToolExecution", wire::GET_TOOL_EXECUTION, req, wait)?;
        envelope(resp, "GetToolExecution")
    }

    pub fn resume(&self, req: &wire::ResumeToolExecutionRequest) -> Result<Execution, CallError> {
        let resp: wire::ExecutionEnvelope = self.call(
            "ResumeToolExecution",
            wire::RESUME_TOOL_EXECUTION,
            req,
            Duration::ZERO,
        )?;
        envelope(resp, "ResumeToolExecution")
    }

    pub fn record_output(
        &self,
        req: &wire::RecordToolExecutionOutputRequest,
    ) -> Result<Execution, CallError> {
        let resp: wire::ExecutionEnvelope = self.call(
            "RecordToolExecutionOutput",
            wire::RECORD_TOOL_EXECUTION_OUTPUT,
            req,
            Duration::ZERO,
        )?;
        envelope(resp, "RecordToolExecutionOutput")
    }

    pub fn list_tool_executions(
        &self,
        req: &wire::ListToolExecutionsRequest,
    ) -> Result<wire::ListToolExecutionsResponse, CallError> {
        self.call(
            "ListToolExecutions",
            wire::LIST_TOOL_EXECUTIONS,
            req,
            Duration::ZERO,
        )
    }

    pub fn get_approval(
        &self,
        req: &wire::GetApprovalRequest,
    ) -> Result<wire::GetApprovalResponse, CallError> {
        self.call("GetApproval", wire::GET_APPROVAL, req, Duration::ZERO)
    }
}

/// The pause after failed attempt number `attempt` (1-based) when the server named none:
/// 100 ms, doubled per attempt, at most 1 s (Maestro's backoff).
fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    (RETRY_DELAY * factor).min(MAX_RETRY_AFTER)
}

/// The server's requested pause, as Maestro reads it: `Retry-After-Ms` (milliseconds) first,
/// then `Retry-After` in seconds (fractions allowed); only positive values count, rounded up
/// to whole milliseconds and capped at 1 s. (The HTTP-date form of `Retry-After` is not read:
/// we fall back to our backoff, which is within the same 1 s cap.)
fn server_retry_delay(retry_after_ms: Option<&str>, retry_after: Option<&str>) -> Option<Duration> {
    let ms = retry_after_ms
        .and_then(leading_number)
        .filter(|ms| *ms > 0.0)
        .or_else(|| {
            retry_after
                .and_then(leading_number)
                .filter(|s| *s > 0.0)
                .map(|s| s * 1000.0)
        })?;
    let cap = MAX_RETRY_AFTER.as_millis() as f64;
    Some(Duration::from_millis(ms.ceil().min(cap) as u64))
}

/// The decimal number a header value starts with (like JavaScript's `parseFloat`, without
/// exponents): `"1.5"`, `" 2s"` → 2.
fn leading_number(v: &str) -> Option<f64> {
    let v = v.trim_start();
    let mut end = 0;
    let mut dot = false;
    for (i, c) in v.char_indices() {
        match c {
            '0'..='9' => end = i + 1,
            '.' if !dot => dot = true,
            _ => break,
        }
    }
    v[..end].parse().ok()
}

/// What ExecuteTool said.
#[derive(Debug, Clone)]
pub struct Answer {
    pub execution: Execution,
    pub idempotent_replay: bool,
}

/// An execution whose id and state have been checked.
#[derive(Debug, Clone)]
pub struct Execution {
    pub id: String,
    pub state: ExecutionState,
    pub raw: ToolExecution,
}

fn envelope(resp: wire::ExecutionEnvelope, method: &str) -> Result<Execution, CallError> {
    let execution = resp
        .execution
        .ok_or_else(|| CallError::Malformed(format!("{method} answer has no execution")))?;
    validate(execution, method)
}

/// Require a non-empty id and a known state; nothing else is trusted.
fn validate(execution: ToolExecution, method: &str) -> Result<Execution, CallError> {
    let id = execution.id.clone().filter(|id| !id.trim().is_empty());
    let id =
        id.ok_or_else(|| CallError::Malformed(format!("{method} answer has no execution id")))?;
    let raw_state = execution.state.clone().unwrap_or_default();
    let state = ExecutionState::parse(&raw_state).ok_or_else(|| {
        CallError::Malformed(format!(
            "{method} answer has unknown state {:?}",
            truncate(&raw_state, 64)
        ))
    })?;
    Ok(Execution {
        id,
        state,
        raw: execution,
    })
}

fn read_body(method: &str, resp: ureq::Response) -> Result<Vec<u8>, CallError> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CallError::Unavailable(format!("{method}: reading the answer failed: {e}")))?;
    if buf.len() as u64 > MAX_BODY {
        return Err(CallError::Malformed(format!(
            "{method} answer is larger than {MAX_BODY} bytes"
        )));
    }
    Ok(buf)
}

fn parse_body<T: DeserializeOwned>(method: &str, buf: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(buf).map_err(|e| {
        CallError::Malformed(format!("{method} answer is not the expected JSON ({e})"))
    })
}

/// The Connect error body's code and message, if any (bounded, single line).
fn error_body(resp: ureq::Response) -> (String, String) {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut buf);
    match serde_json::from_slice::<wire::ConnectError>(&buf) {
        Ok(e) => (truncate(&e.code, 64), truncate(&e.message, 200)),
        Err(_) => ("unknown".into(), "no Connect error body".into()),
    }
}

fn transport_reason(t: &ureq::Transport) -> String {
    // The kind, the message and the cause chain (the TLS certificate error says what to fix),
    // each part once: ureq's message often repeats its kind, and a cause its message.
    let mut parts: Vec<String> = vec![t.kind().to_string()];
    if let Some(m) = t.message() {
        parts.push(m.to_string());
    }
    let mut cause = std::error::Error::source(t);
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    let mut s = String::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() || s.contains(part) {
            continue;
        }
        // A part that already says all we have (a message that starts with the kind).
        if !s.is_empty() && part.contains(s.as_str()) {
            s = part.to_string();
            continue;
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(part);
    }
    truncate(&s, 300)
}

/// One line of at most `max` chars, control characters replaced.
pub fn truncate(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut t: String = clean.chars().take(max.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// A random duration in `[0, max)`.
pub fn jitter(max: Duration) -> Duration {
    let b: [u8; 4] = crate::context::random_bytes();
    let frac = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    max.mul_f64(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PlatformConfig {
        let env = crate::env::MapEnv::from_pairs([
            ("MAESTRO_PLATFORM_BASE_URL", url),
            ("EVALOPS_TOKEN", "tok"),
            ("EVALOPS_ORGANIZATION_ID", "org"),
            ("EVALOPS_WORKSPACE_ID", "ws"),
            ("TOOL_EXECUTION_SERVICE_TIMEOUT_MS", "10000"),
        ]);
        PlatformConfig::load(&env).unwrap()
    }

    #[test]
    fn a_deadline_bound_call_ends_by_its_deadline() {
        // A Platform that accepts the connection and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let client = Client::new(&config(&url));
        let bound = client
            .until(Instant::now() + Duration::from_millis(150))
            .expect("an address needs no name resolution");
        let started = Instant::now();
        let got = bound.get_approval(&wire::GetApprovalRequest::default());
        let took = started.elapsed();
        assert!(matches!(got, Err(CallError::Unavailable(_))), "{got:?}");
        // Not the 10 s per attempt timeout, nor the retries: the deadline (generous slack).
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(held);
    }

    #[test]
    fn a_host_name_not_yet_resolved_is_not_deadline_bound() {
        let client = Client::new(&config("https://platform.invalid:8080"));
        assert!(client.until(Instant::now()).is_none());
        let client = Client::new(&config("http://[::1]:9"));
        assert!(client.until(Instant::now()).is_some());
    }

    #[test]
    fn retry_delays_follow_maestro() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(1), ms(100));
        assert_eq!(backoff(2), ms(200));
        assert_eq!(backoff(4), ms(800));
        assert_eq!(backoff(5), ms(1000));
        assert_eq!(backoff(40), ms(1000));
        assert_eq!(server_retry_delay(None, Some("0.25")), Some(ms(250)));
        assert_eq!(server_retry_delay(None, Some("1")), Some(ms(1000)));
        assert_eq!(server_retry_delay(None, Some("120")), Some(ms(1000)));
        assert_eq!(server_retry_delay(Some("42.1"), Some("1")), Some(ms(43)));
        assert_eq!(server_retry_delay(Some("0"), Some("0.5")), Some(ms(500)));
        // Zero, negative, dates and junk: no server delay (our backoff applies).
        assert_eq!(server_retry_delay(None, Some("0")), None);
        assert_eq!(server_retry_delay(None, Some("-1")), None);
        assert_eq!(
            server_retry_delay(None, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(server_retry_delay(None, None), None);
        assert_eq!(leading_number(" 2s"), Some(2.0));
        assert_eq!(leading_number(".5"), Some(0.5));
    }
}
