//! HTTP: Connect unary JSON routing, bearer-token and organization checks, size limits, the
//! request log for wire tests, and fault injection. A thread per request, so long-polls never
//! hold up other calls.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tiny_http::{Header, Request, Response};

use maestro_sh::wire;

use crate::store::{ApiError, ApiResult, Store};

const MAX_REQUEST: u64 = 1024 * 1024;
pub const DEV_SERVICE: &str = "/maestro.dev.v1.DevService";

/// A fault to inject, from `SetFaults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// RPC method name (`ExecuteTool`, `GetApproval`, ...) or `*`.
    pub method: String,
    /// status | delay | malformed | drop | slow_body | oversize | unknown_state | missing_id | wrong_id |
    /// no_resume_token | empty | drop_after (handle the call, then drop the answer) |
    /// no_replay_flag (answer without `idempotentReplay`, as a forgetful Platform would)
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// How many matching requests it applies to; absent = all.
    #[serde(default)]
    pub times: Option<u32>,
}

const FAULT_KINDS: &[&str] = &[
    "status",
    "delay",
    "malformed",
    "drop",
    "slow_body",
    "oversize",
    "unknown_state",
    "missing_id",
    "wrong_id",
    "no_resume_token",
    "empty",
    "drop_after",
    "no_replay_flag",
];

/// Which credential a request carried. Roles are separate so that the governed agent, which
/// holds (at most) the agent credential, can never approve its own commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// maestro-sh: ExecuteTool, Get/List, Record, GetApproval, Resume with its resume token.
    Agent,
    /// A person: ResolveApproval, ListPending, GetApproval, Get/List (the approve/deny CLI).
    Reviewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
        }
    }
}

/// The RPCs each role may call. The dev service's read-only hooks (timeline, requests): both;
/// the ones that change how this Platform answers (`SetFaults`, `Reset`): the reviewer
/// (operator) credential only, so an agent holding the agent token cannot make it misbehave.
fn permitted(role: Role, path: &str) -> bool {
    if let Some(method) = path.strip_prefix(DEV_SERVICE) {
        return role == Role::Reviewer || matches!(method, "/GetTimeline" | "/GetRequests");
    }
    let common = [
        wire::GET_TOOL_EXECUTION,
        wire::LIST_TOOL_EXECUTIONS,
        wire::GET_APPROVAL,
    ];
    if common.contains(&path) {
        return true;
    }
    match role {
        Role::Agent => [
            wire::EXECUTE_TOOL,
            wire::RESUME_TOOL_EXECUTION,
            wire::RECORD_TOOL_EXECUTION_OUTPUT,
        ]
        .contains(&path),
        Role::Reviewer => [wire::RESOLVE_APPROVAL, wire::LIST_PENDING].contains(&path),
    }
}

pub struct Server {
    pub store: Store,
    pub token: String,
    pub reviewer_token: String,
    pub org: String,
    faults: Mutex<Vec<Fault>>,
    requests: Mutex<Vec<Value>>,
}

impl Server {
    pub fn new(store: Store, token: String, reviewer_token: String, org: String) -> Server {
        Server {
            store,
            token,
            reviewer_token,
            org,
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Serve forever on `http`.
    pub fn run(self: Arc<Self>, http: tiny_http::Server) {
        for request in http.incoming_requests() {
            let me = self.clone();
            std::thread::spawn(move || me.handle(request));
        }
    }

    fn handle(&self, mut request: Request) {
        let started = Instant::now();
        let path = request.url().to_string();
        let method = request.method().to_string();
        if method == "GET" && path == "/healthz" {
            let _ = request.respond(Response::from_string("ok"));
            return;
        }
        let rpc = path.rsplit('/').next().unwrap_or_default().to_string();
        let result = self.authorize(&request).and_then(|role| {
            if method != "POST" {
                return Err(ApiError::new(405, "unimplemented", "use POST"));
            }
            if !permitted(role, &path) {
                return Err(ApiError::new(
                    403,
                    "permission_denied",
                    format!(
                        "the {} credential may not call {rpc}{}",
                        role.as_str(),
                        if role == Role::Agent {
                            "; approvals are resolved with the reviewer credential"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            read_body(&mut request).map(|b| (role, b))
        });
        let (role, body) = match result {
            Ok(b) => b,
            Err(e) => return finish(request, &method, &path, started, Err(e)),
        };
        if !path.starts_with(DEV_SERVICE) {
            self.log_request(&rpc, &path, &request, &body);
        }
        let fault = self.take_fault(&rpc);
        if let Some(f) = &fault {
            match f.kind.as_str() {
                "delay" => std::thread::sleep(Duration::from_millis(f.delay_ms.unwrap_or(1000))),
                "status" => {
                    let status = f.status.unwrap_or(503);
                    let code = if status >= 500 {
                        "unavailable"
                    } else {
                        "failed_precondition"
                    };
                    return finish(
                        request,
                        &method,
                        &path,
                        started,
                        Err(ApiError::new(status, code, "injected fault")),
                    );
                }
                "malformed" => {
                    return raw(request, &method, &path, started, 200, b"{not json".to_vec())
                }
                "empty" => return raw(request, &method, &path, started, 200, b"{}".to_vec()),
                "oversize" => {
                    let pad = "x".repeat(5 * 1024 * 1024);
                    return raw(
                        request,
                        &method,
                        &path,
                        started,
                        200,
                        json!({ "padding": pad }).to_string().into_bytes(),
                    );
                }
                "drop" => {
                    // Promise a body, send half of nothing, and close: a dropped connection.
                    let mut w = request.into_writer();
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exec");
                    let _ = w.flush();
                    eprintln!(
                        "{method} {path} dropped (fault) {}ms",
                        started.elapsed().as_millis()
                    );
                    return;
                }
                "slow_body" => {
                    // Headers at once, then a body that stalls for `delayMs` and never
                    // completes: a slow body, as opposed to `delay` (slow headers).
                    let mut w = request.into_writer();
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exec");
                    let _ = w.flush();
                    std::thread::sleep(Duration::from_millis(f.delay_ms.unwrap_or(1000)));
                    return;
                }
                _ => {}
            }
        }
        let mut answer = self.route(&path, body, role);
        if fault.as_ref().is_some_and(|f| f.kind == "drop_after") {
            // The call took effect; the client never learns it (a lost answer).
            let mut w = request.into_writer();
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exec");
            let _ = w.flush();
            eprintln!("{method} {path} handled, answer dropped (fault)");
            return;
        }
        if let (Ok(v), Some(f)) = (&mut answer, &fault) {
            rewrite(v, &f.kind);
        }
        finish(request, &method, &path, started, answer)
    }

    fn authorize(&self, request: &Request) -> ApiResult<Role> {
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let bearer =
            header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
        let role = match bearer {
            Some(t) if constant_time_eq(&t, &self.token) => Role::Agent,
            Some(t) if constant_time_eq(&t, &self.reviewer_token) => Role::Reviewer,
            _ => {
                return Err(ApiError::new(
                    401,
                    "unauthenticated",
                    "missing or invalid bearer token",
                ))
            }
        };
        if header("X-Organization-ID").as_deref() != Some(self.org.as_str()) {
            return Err(ApiError::new(
                403,
                "permission_denied",
                "X-Organization-ID does not match this token's organization",
            ));
        }
        Ok(role)
    }

    fn log_request(&self, rpc: &str, path: &str, request: &Request, body: &Value) {
        let mut headers = serde_json::Map::new();
        for h in request.headers() {
            let name = h.field.as_str().as_str().to_string();
            let value = if h.field.equiv("Authorization") {
                "Bearer <redacted>".to_string()
            } else {
                h.value.as_str().to_string()
            };
            headers.insert(name, json!(value));
        }
        let mut body = body.clone();
        if body.get("resumeToken").is_some() {
            body["resumeToken"] = json!("<redacted>");
        }
        let order: Vec<&str> = request
            .headers()
            .iter()
            .map(|h| h.field.as_str().as_str())
            .collect();
        let entry = json!({"method": rpc, "path": path, "headers": headers, "headerOrder": order, "body": body});
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    fn take_fault(&self, rpc: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let i = faults
            .iter()
            .position(|f| (f.method == rpc || f.method == "*") && f.times != Some(0))?;
        let f = faults[i].clone();
        if let Some(t) = faults[i].times.as_mut() {
            *t -= 1;
        }
        Some(f)
    }

    fn route(&self, path: &str, body: Value, role: Role) -> ApiResult<Value> {
        let org = self.org.as_str();
        check_body_org(&body, org)?;
        let out = match path {
            wire::EXECUTE_TOOL => {
                let (execution, replay) = self.store.execute(org, parse(body)?)?;
                json!({"execution": execution, "idempotentReplay": replay})
            }
            wire::GET_TOOL_EXECUTION => {
                let req: wire::GetToolExecutionRequest = parse(body)?;
                if req.id.is_empty() {
                    return Err(ApiError::invalid("id"));
                }
                let wait = Duration::from_millis(req.wait_timeout_ms.unwrap_or(0));
                json!({"execution": self.store.get(org, &req.id, wait)?})
            }
            wire::LIST_TOOL_EXECUTIONS => {
                let (executions, total) = self.store.list(org, &parse(body)?);
                json!({"executions": executions, "total": total})
            }
            wire::RESUME_TOOL_EXECUTION => {
                json!({"execution": self.store.resume(org, &parse(body)?, role)?})
            }
            wire::RECORD_TOOL_EXECUTION_OUTPUT => {
                json!({"execution": self.store.record(org, parse(body)?)?})
            }
            wire::GET_APPROVAL => {
                let req: wire::GetApprovalRequest = parse(body)?;
                serde_json::to_value(self.store.get_approval(org, &req.approval_request_id)?)
                    .unwrap_or_default()
            }
            wire::RESOLVE_APPROVAL => {
                json!({"decision": self.store.resolve_approval(org, &parse(body)?, role)?})
            }
            wire::LIST_PENDING => {
                let (requests, total) = self.store.list_pending(org, &parse(body)?);
                json!({"requests": requests, "total": total})
            }
            p if p == format!("{DEV_SERVICE}/GetTimeline") => self.store.timeline(org, &body),
            p if p == format!("{DEV_SERVICE}/GetRequests") => {
                json!({"requests": *self.requests.lock().unwrap_or_else(|e| e.into_inner())})
            }
            p if p == format!("{DEV_SERVICE}/SetFaults") => {
                #[derive(Deserialize)]
                struct SetFaults {
                    #[serde(default)]
                    faults: Vec<Fault>,
                }
                let set: SetFaults = parse(body)?;
                if let Some(bad) = set
                    .faults
                    .iter()
                    .find(|f| !FAULT_KINDS.contains(&f.kind.as_str()))
                {
                    return Err(ApiError::new(
                        400,
                        "invalid_argument",
                        format!(
                            "unknown fault kind {:?}; one of {}",
                            bad.kind,
                            FAULT_KINDS.join(", ")
                        ),
                    ));
                }
                *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = set.faults;
                json!({})
            }
            p if p == format!("{DEV_SERVICE}/Reset") => {
                self.faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                self.requests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                json!({})
            }
            _ => {
                return Err(ApiError::new(
                    404,
                    "unimplemented",
                    format!("no such method {path}"),
                ))
            }
        };
        Ok(out)
    }
}

/// A body naming another organization is refused.
fn check_body_org(body: &Value, org: &str) -> ApiResult<()> {
    let named = body
        .pointer("/linkage/organizationId")
        .or_else(|| body.get("organizationId"))
        .and_then(Value::as_str);
    match named {
        Some(o) if !o.is_empty() && o != org => Err(ApiError::new(
            403,
            "permission_denied",
            format!("organization {o} is not this token's organization"),
        )),
        _ => Ok(()),
    }
}

fn parse<T: DeserializeOwned>(body: Value) -> ApiResult<T> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::new(400, "invalid_argument", format!("malformed request: {e}")))
}

fn read_body(request: &mut Request) -> ApiResult<Value> {
    let mut buf = Vec::new();
    request
        .as_reader()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::new(400, "invalid_argument", format!("cannot read body: {e}")))?;
    if buf.len() as u64 > MAX_REQUEST {
        return Err(ApiError::new(
            413,
            "resource_exhausted",
            "request body larger than 1 MiB",
        ));
    }
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| ApiError::new(400, "invalid_argument", format!("body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::new(
            400,
            "invalid_argument",
            "body must be a JSON object",
        ));
    }
    Ok(v)
}

/// Post-process a good answer for the rewriting faults.
fn rewrite(v: &mut Value, kind: &str) {
    if kind == "no_replay_flag" {
        if let Some(o) = v.as_object_mut() {
            o.remove("idempotentReplay");
        }
    }
    let Some(exec) = v.get_mut("execution").and_then(Value::as_object_mut) else {
        return;
    };
    match kind {
        "unknown_state" => {
            exec.insert("state".into(), json!("TOOL_EXECUTION_STATE_BOGUS"));
        }
        "missing_id" => {
            exec.remove("id");
        }
        "wrong_id" => {
            exec.insert("id".into(), json!("te_not_the_one_you_asked_for"));
        }
        "no_resume_token" => {
            if let Some(w) = exec.get_mut("approvalWait").and_then(Value::as_object_mut) {
                w.remove("resumeToken");
            }
        }
        _ => {}
    }
}

fn json_header() -> Header {
    Header::from_bytes("Content-Type", "application/json").expect("static header")
}

fn finish(request: Request, method: &str, path: &str, started: Instant, answer: ApiResult<Value>) {
    let (status, body) = match answer {
        Ok(v) => (200, v.to_string()),
        Err(e) => (
            e.status,
            json!({"code": e.code, "message": e.message}).to_string(),
        ),
    };
    eprintln!(
        "{method} {path} {status} {}ms",
        started.elapsed().as_millis()
    );
    let _ = request.respond(
        Response::from_string(body)
            .with_status_code(status)
            .with_header(json_header()),
    );
}

fn raw(request: Request, method: &str, path: &str, started: Instant, status: u16, body: Vec<u8>) {
    eprintln!(
        "{method} {path} {status} (fault) {}ms",
        started.elapsed().as_millis()
    );
    let _ = request.respond(
        Response::from_data(body)
            .with_status_code(status)
            .with_header(json_header()),
    );
}

/// Constant-time string compare (`subtle`; a length difference is not hidden).
fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}
