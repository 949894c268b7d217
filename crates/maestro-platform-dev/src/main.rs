//! `maestro-platform-dev`: a small, faithful local EvalOps Platform speaking the ToolExecution
//! and Approvals Connect JSON contract, for the demo, the tests, and Maestro developers.
//!
//!     maestro-platform-dev serve --addr 127.0.0.1:0 [--policy FILE]   # prints its URL when ready
//!     maestro-platform-dev approve|deny APPROVAL_ID --url URL [--reason R] [--by LABEL]
//!     maestro-platform-dev pending --url URL
//!
//! Two credentials: the agent token (`--token`, what maestro-sh holds) and the reviewer token
//! (`--reviewer-token`, what the approve/deny/pending CLI sends). Only the reviewer credential
//! resolves approvals; `--by` is a label attached to that authenticated decision.
//!     maestro-platform-dev timeline --url URL [--run ID] [--session ID] [--step ID] [--json]

mod policy;
mod server;
mod store;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use maestro_sh::wire;

#[derive(Parser)]
#[command(
    name = "maestro-platform-dev",
    version,
    about = "A local EvalOps Platform (ToolExecution + Approvals) for maestro-sh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Platform API; prints `http://HOST:PORT` on stdout once listening.
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
        #[command(flatten)]
        creds: Credentials,
        /// Let ResumeToolExecution(approved) with the agent token approve a pending request by
        /// itself (Maestro's own approval UI as the human). Off: only a reviewer approves.
        #[arg(long)]
        trust_agent_approvals: bool,
        /// Policy file (JSON); default: CRITICAL needs approval, the rest is allowed.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Override the policy's approval expiry.
        #[arg(long)]
        approval_ttl_ms: Option<u64>,
    },
    /// Approve a pending approval request.
    Approve(Resolve),
    /// Deny a pending approval request.
    Deny(Resolve),
    /// List pending approval requests.
    Pending(Conn),
    /// Print the run timeline.
    Timeline {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        step: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The two credentials and the organization: what `serve` accepts, and what the client
/// commands send (the agent token for timeline, the reviewer token for approve, deny, pending).
#[derive(Args)]
struct Credentials {
    /// The agent's bearer token (what maestro-sh holds).
    #[arg(
        long,
        env = "MAESTRO_PLATFORM_DEV_TOKEN",
        default_value = "dev-token",
        hide_env_values = true
    )]
    token: String,
    /// The reviewers' bearer token (ResolveApproval, ListPending); must differ from --token.
    #[arg(
        long,
        env = "MAESTRO_PLATFORM_DEV_REVIEWER_TOKEN",
        default_value = "dev-reviewer-token",
        hide_env_values = true
    )]
    reviewer_token: String,
    /// Organization id, sent and required in X-Organization-ID.
    #[arg(long, env = "MAESTRO_PLATFORM_DEV_ORG", default_value = "org-dev")]
    org: String,
}

#[derive(Args)]
struct Conn {
    /// The Platform's base URL, as printed by `serve`.
    #[arg(long, env = "MAESTRO_PLATFORM_DEV_URL")]
    url: String,
    #[command(flatten)]
    creds: Credentials,
}

#[derive(Args)]
struct Resolve {
    approval_request_id: String,
    #[command(flatten)]
    conn: Conn,
    #[arg(long, default_value = "")]
    reason: String,
    /// A label for the reviewer, recorded with the decision (the credential is what counts).
    #[arg(long, default_value = "maestro-platform-dev-cli")]
    by: String,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("maestro-platform-dev: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            creds,
            trust_agent_approvals,
            policy,
            approval_ttl_ms,
        } => {
            if creds.token == creds.reviewer_token {
                bail!("--reviewer-token must differ from --token (the agent must not hold it)");
            }
            let store =
                store::Store::new(load_policy(policy, approval_ttl_ms)?, trust_agent_approvals);
            serve(&addr, store, creds)
        }
        Command::Approve(r) => resolve(r, "DECISION_TYPE_APPROVED"),
        Command::Deny(r) => resolve(r, "DECISION_TYPE_DENIED"),
        Command::Pending(conn) => pending(&conn),
        Command::Timeline {
            conn,
            run,
            session,
            step,
            json,
        } => timeline(&conn, run, session, step, json),
    }
}

fn load_policy(policy: Option<PathBuf>, ttl: Option<u64>) -> anyhow::Result<policy::Policy> {
    let mut policy = match &policy {
        Some(p) => policy::Policy::load(p)?,
        None => policy::Policy::default(),
    };
    if let Some(ttl) = ttl {
        policy.approval_ttl_ms = ttl;
    }
    Ok(policy)
}

fn serve(addr: &str, store: store::Store, creds: Credentials) -> anyhow::Result<()> {
    let Credentials {
        token,
        reviewer_token,
        org,
    } = creds;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux. tiny_http writes a
    // response's head and body separately; with Nagle on, the body waits for the client's
    // delayed ACK (~40 ms per call), which a real Platform does not cost.
    set_nodelay(&listener);
    let http = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| anyhow::anyhow!("cannot serve on {addr}: {e}"))?;
    let bound = http
        .server_addr()
        .to_ip()
        .context("listening address is not an IP address")?;
    // Ready: tests and the demo read this one line to find the port.
    let mut out = std::io::stdout().lock();
    writeln!(out, "http://{bound}")?;
    out.flush()?;
    drop(out);
    eprintln!("maestro-platform-dev: listening on http://{bound} (organization {org})");
    Arc::new(server::Server::new(store, token, reviewer_token, org)).run(http);
    Ok(())
}

fn set_nodelay(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the size we pass.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One call to the local Platform; a non-2xx answer becomes an error with its message.
fn call(conn: &Conn, path: &str, body: Value) -> anyhow::Result<Value> {
    call_as(conn, &conn.creds.token, path, body)
}

/// As the reviewer (approve, deny, pending).
fn call_reviewer(conn: &Conn, path: &str, body: Value) -> anyhow::Result<Value> {
    call_as(conn, &conn.creds.reviewer_token, path, body)
}

fn call_as(conn: &Conn, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let url = format!("{}{}", conn.url.trim_end_matches('/'), path);
    let resp = ureq::post(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .set("X-Organization-ID", &conn.creds.org)
        .set("Connect-Protocol-Version", "1")
        .send_string(&body.to_string());
    match resp {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            let e: wire::ConnectError = r.into_json().unwrap_or_default();
            bail!("{path} answered HTTP {code} {}: {}", e.code, e.message)
        }
        Err(e) => bail!("cannot reach {}: {e}", conn.url),
    }
}

fn resolve(r: Resolve, decision: &str) -> anyhow::Result<()> {
    let req = wire::ResolveApprovalRequest {
        approval_request_id: r.approval_request_id.clone(),
        decision: decision.into(),
        decided_by: r.by,
        reason: r.reason,
    };
    let out = call_reviewer(&r.conn, wire::RESOLVE_APPROVAL, serde_json::to_value(req)?)?;
    let d = &out["decision"];
    println!(
        "{} {} by {}",
        r.approval_request_id,
        d["decision"].as_str().unwrap_or(decision),
        d["decidedBy"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn pending(conn: &Conn) -> anyhow::Result<()> {
    let out = call_reviewer(conn, wire::LIST_PENDING, json!({}))?;
    let resp: wire::ListPendingResponse = serde_json::from_value(out)?;
    if resp.requests.is_empty() {
        println!("no pending approval requests");
    }
    for r in resp.requests {
        use base64::Engine as _;
        let payload = r
            .action_payload
            .as_deref()
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or_default();
        println!(
            "{}  tool_execution_id={}  risk={}  {}",
            r.id.unwrap_or_default(),
            payload["toolExecutionId"].as_str().unwrap_or("?"),
            r.risk_level.unwrap_or_default(),
            payload["operation"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn timeline(
    conn: &Conn,
    run: Option<String>,
    session: Option<String>,
    step: Option<String>,
    raw: bool,
) -> anyhow::Result<()> {
    let out = call(
        conn,
        &format!("{}/GetTimeline", server::DEV_SERVICE),
        json!({"runId": run, "sessionId": session, "stepId": step}),
    )?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for e in out["executions"].as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
        println!(
            "{}  step={} session={} run={} approval={}  {}  {}",
            s("toolExecutionId"),
            s("stepId"),
            s("sessionId"),
            s("runId"),
            s("approvalRequestId"),
            s("state").trim_start_matches("TOOL_EXECUTION_STATE_"),
            s("operation")
        );
        for ev in e["events"].as_array().into_iter().flatten() {
            let d = &ev["data"];
            let what = match (d["from"].as_str(), d["to"].as_str()) {
                (from, Some(to)) => format!(
                    "{} -> {}",
                    from.unwrap_or("(new)")
                        .trim_start_matches("TOOL_EXECUTION_STATE_"),
                    to.trim_start_matches("TOOL_EXECUTION_STATE_")
                ),
                _ => ev["type"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("dev.evalops.toolexecution.")
                    .to_string(),
            };
            // A decision says who made it: the label and the credential that authenticated it.
            let who = match (d["decision"].as_str(), d["credential"].as_str()) {
                (Some(decision), Some(cred)) => format!(
                    "{} by {} ({cred} credential) ",
                    decision.trim_start_matches("DECISION_TYPE_"),
                    d["decidedBy"].as_str().unwrap_or("?")
                ),
                _ => String::new(),
            };
            println!(
                "    {}  {what}  {who}{}",
                ev["time"].as_str().unwrap_or(""),
                d["reason"]
                    .as_str()
                    .or(d["decision"].as_str())
                    .unwrap_or("")
            );
        }
    }
    Ok(())
}
