//! The sidecar: JSON lines for Maestro, in its event bus's CloudEvents-style envelope
//! (platform-contract.md, section 7), on `MAESTRO_SH_EVENTS_FD` or appended to
//! `MAESTRO_SH_EVENTS_FILE`. The fd is marked close-on-exec, so the command never inherits it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::context::{new_id, Context};
use crate::env::Env;

pub const EVENTS_FD_VAR: &str = "MAESTRO_SH_EVENTS_FD";
pub const EVENTS_FILE_VAR: &str = "MAESTRO_SH_EVENTS_FILE";

pub const ATTEMPTED: &str = "maestro.events.tool_call.attempted";
pub const COMPLETED: &str = "maestro.events.tool_call.completed";
pub const APPROVAL_HIT: &str = "maestro.events.approval_hit";
pub const HEARTBEAT: &str = "maestro.events.tool_call.heartbeat";

/// Where events go; a no-op when neither variable is set.
pub struct Sidecar {
    out: Option<File>,
    tenant: Option<String>,
    correlation: Value,
}

impl Sidecar {
    /// A sidecar that writes nothing.
    pub fn none() -> Sidecar {
        Sidecar {
            out: None,
            tenant: None,
            correlation: Value::Null,
        }
    }

    /// Open the sidecar named by the environment. A bad value is an error naming the variable;
    /// the caller reports it and carries on without events.
    pub fn open(env: &dyn Env, ctx: &Context) -> Result<Sidecar, String> {
        let out = if let Some(raw) = env.first_value(&[EVENTS_FD_VAR]) {
            Some(open_fd(&raw)?)
        } else if let Some(path) = env.first_value(&[EVENTS_FILE_VAR]) {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| {
                    format!("{EVENTS_FILE_VAR}={path:?} cannot be opened for append ({e})")
                })?;
            Some(file)
        } else {
            None
        };
        Ok(Sidecar {
            out,
            tenant: ctx.organization_id.clone(),
            correlation: correlation(ctx),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Write one event of `event_type` whose data is `fields` plus `correlation`. Write errors
    /// are ignored: the reader going away must not change what the command does.
    pub fn emit(&mut self, event_type: &str, fields: Value) {
        let Some(out) = self.out.as_mut() else { return };
        let mut data = Map::new();
        data.insert("correlation".into(), self.correlation.clone());
        if let Value::Object(f) = fields {
            data.extend(f.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut envelope = json!({
            "spec_version": "1.0",
            "id": new_id("evt_"),
            "type": event_type,
            "source": "maestro-sh",
            "subject": event_type,
            "time": rfc3339(SystemTime::now()),
            "data_content_type": "application/json",
            "data": data,
            "extensions": {"dataschema": format!("https://schemas.evalops.dev/{event_type}")},
        });
        if let Some(t) = &self.tenant {
            envelope["tenant_id"] = json!(t);
        }
        let mut line = envelope.to_string();
        line.push('\n');
        // One write per line, so concurrent writers to the same pipe or file do not interleave.
        let _ = out.write_all(line.as_bytes());
    }
}

fn open_fd(raw: &str) -> Result<File, String> {
    let fd: RawFd = raw.parse().ok().filter(|fd| *fd > 2).ok_or_else(|| {
        format!("{EVENTS_FD_VAR}={raw:?} is not a file descriptor number above 2")
    })?;
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(format!(
            "{EVENTS_FD_VAR}={fd} is not an open file descriptor"
        ));
    }
    // The command must not inherit it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    // SAFETY: the caller handed us this fd for our exclusive use as the sidecar.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn correlation(ctx: &Context) -> Value {
    json!({
        "organization_id": ctx.organization_id,
        "workspace_id": ctx.workspace_id,
        "session_id": ctx.session_id,
        "agent_run_id": ctx.agent_run_id,
        "agent_run_step_id": ctx.step_id,
        "agent_id": ctx.agent_id,
        "actor_id": ctx.actor_id,
        "request_id": ctx.correlation_id(),
        "trace_id": ctx.traceparent.as_deref().and_then(|t| t.split('-').nth(1)),
        "remote_runner_session_id": ctx.remote_runner_session_id,
    })
}

/// `2026-01-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn bad_fd_is_named() {
        assert!(open_fd("x").unwrap_err().contains(EVENTS_FD_VAR));
        assert!(open_fd("1").unwrap_err().contains("above 2"));
        assert!(open_fd("987")
            .unwrap_err()
            .contains("not an open file descriptor"));
    }
}
