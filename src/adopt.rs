//! Adopting an approval request left open by a killed run.
//!
//! Maestro's tool timeout (90 s by default) is usually shorter than a human takes to approve:
//! Maestro SIGKILLs the waiting maestro-sh, then the agent retries the same command. Cancelling
//! the request on the kill would make the human's approval useless and ask again; leaving it
//! open and unowned would make it a trap (approved, and nothing runs). So when maestro-sh dies
//! while waiting, its guardian keeps the request open and writes an *adoption record*; the next
//! governed invocation in the same session with the same command claims the record, checks with
//! Platform that it is that same execution (same organization, workspace, session and command
//! digest, still waiting or already resumed), and waits on it instead of asking again: approved
//! once, run once.
//!
//! The resume token never leaves the memory of the process that received it (issue 9: on the
//! real Platform a resume token with `approved: true` is the approval capability Maestro's own
//! approval UI uses, and the governed agent runs as our user, so it could read any file we
//! write). So the record holds only matching data (execution and approval ids, tenant, session,
//! command digest, expiry), and the token stays with the guardian, which keeps watching Platform
//! and resumes the execution itself once a reviewer approves *as Platform reports it*
//! (guardian.rs). The adopter only waits until Platform shows the execution RUNNING. A forged
//! or edited record can at most make a retry wait on an execution Platform confirms is this very
//! command in this very session.
//!
//! The record is claimed by an atomic rename, so exactly one process adopts it: a retry, or the
//! guardian itself when nobody adopted an approved (RUNNING) execution within the adoption
//! window (it then records it closed, not run). Without a session id there is no retry to
//! match, and the guardian cancels instead.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::context::hex;

use crate::config::PlatformConfig;
use crate::context::Context;
use crate::env::Env;
use crate::platform::Execution;
use crate::wire::{self, ExecutionState};

/// How long the guardian keeps an approved (RUNNING) execution for a retry to adopt before it
/// records it closed, not run (milliseconds).
pub const WINDOW_VAR: &str = "MAESTRO_SH_ADOPT_WINDOW_MS";
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The adoption window from [`WINDOW_VAR`] (default 5 minutes); out of 1..=24 h is an error
/// naming the variable.
pub fn window(env: &dyn Env) -> Result<Duration, String> {
    crate::env::millis_var(env, WINDOW_VAR, DEFAULT_WINDOW, MAX_WINDOW)
}

/// Metadata key carrying the command digest on the ExecuteTool request (and so on Platform).
pub use crate::decide::COMMAND_DIGEST_KEY;
/// The hex SHA-256 of the command as Platform sees it (sanitized): the digest ExecuteTool
/// carries under [`COMMAND_DIGEST_KEY`].
pub use crate::request::command_digest;

/// What a retry must match to adopt: tenant, session, command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub organization_id: String,
    pub workspace_id: String,
    pub session_id: String,
    pub command_digest: String,
}

impl Key {
    /// The key for this invocation; `None` without a session (nothing to match a retry by).
    pub fn new(cfg: &PlatformConfig, ctx: &Context, command_digest: &str) -> Option<Key> {
        let session = ctx.session_id.clone().filter(|s| !s.trim().is_empty())?;
        Some(Key {
            organization_id: cfg.organization_id.clone(),
            workspace_id: cfg.workspace_id.clone(),
            session_id: session,
            command_digest: command_digest.to_string(),
        })
    }

    /// The key a record was left under (its own matching data).
    pub fn of_record(record: &Record) -> Key {
        Key {
            organization_id: record.organization_id.clone(),
            workspace_id: record.workspace_id.clone(),
            session_id: record.session_id.clone(),
            command_digest: record.command_digest.clone(),
        }
    }

    /// The record's file name: a digest of the key, so no id reaches the file system as is.
    fn file_name(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            "v1",
            &self.organization_id,
            &self.workspace_id,
            &self.session_id,
            &self.command_digest,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex(&h.finalize())
    }
}

/// An open approval request nobody waits for: matching data only, never the resume token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub execution_id: String,
    pub approval_request_id: String,
    pub organization_id: String,
    pub workspace_id: String,
    pub session_id: String,
    pub command_digest: String,
    /// The approval's expiry as Platform gave it (RFC 3339), when it gave one.
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl Record {
    /// The record for execution `execution_id` / approval `approval_request_id` under `key`.
    pub fn new(
        key: &Key,
        execution_id: &str,
        approval_request_id: &str,
        expires_at: Option<&str>,
    ) -> Record {
        Record {
            execution_id: execution_id.to_string(),
            approval_request_id: approval_request_id.to_string(),
            organization_id: key.organization_id.clone(),
            workspace_id: key.workspace_id.clone(),
            session_id: key.session_id.clone(),
            command_digest: key.command_digest.clone(),
            expires_at: expires_at.map(str::to_string),
        }
    }

    fn matches(&self, key: &Key) -> bool {
        self.organization_id == key.organization_id
            && self.workspace_id == key.workspace_id
            && self.session_id == key.session_id
            && self.command_digest == key.command_digest
    }
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("adopt")
}

/// The file of `record` under `key`: one per execution, so a newer record for the same
/// command never overwrites (and so orphans) an older one.
fn file_name(key: &Key, execution_id: &str) -> String {
    let exec = hex(&Sha256::digest(execution_id.as_bytes()));
    format!("{}.{}", key.file_name(), &exec[..16])
}

/// Leave `record` for a retry matching `key` (write privately, then rename into place).
pub fn leave(data_dir: &Path, key: &Key, record: &Record) -> std::io::Result<()> {
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let name = file_name(key, &record.execution_id);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Take the file `name` by an atomic rename (exactly one taker wins); read and delete it.
fn take(dir: &Path, name: &str) -> Option<Record> {
    let claimed = dir.join(format!(".{name}.claimed.{}", std::process::id()));
    std::fs::rename(dir.join(name), &claimed).ok()?;
    let bytes = std::fs::read(&claimed);
    let _ = std::fs::remove_file(&claimed);
    serde_json::from_slice(&bytes.ok()?).ok()
}

/// Claim a record left for `key`, if any: exactly one claimer wins each record; the file is
/// gone afterwards whatever it held. A record that does not name `key` is dropped.
pub fn claim(data_dir: &Path, key: &Key) -> Option<Record> {
    let dir = dir(data_dir);
    let prefix = format!("{}.", key.file_name());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        take(&dir, &name).filter(|r| r.matches(key) && file_name(key, &r.execution_id) == name)
    })
}

/// Claim the record of execution `execution_id` under `key` (the guardian closing what nobody
/// adopted): `true` when we won it, so no retry can adopt it any more.
pub fn claim_exact(data_dir: &Path, key: &Key, execution_id: &str) -> bool {
    take(&dir(data_dir), &file_name(key, execution_id)).is_some()
}

/// Platform's view of the recorded execution, as something to wait on: `Some` only when it is
/// the same execution and approval, organization, workspace, session and command, still
/// waiting for approval or already resumed (RUNNING: the guardian resumed it on a reviewer's
/// approval). Nothing here comes from the record alone.
pub fn verify(key: &Key, record: &Record, got: Execution) -> Option<Execution> {
    let linkage = got.raw.linkage.as_ref()?;
    let metadata = got.raw.metadata.as_ref()?;
    let same = got.id == record.execution_id
        && matches!(
            got.state,
            ExecutionState::WaitingApproval | ExecutionState::Running
        )
        && record.matches(key)
        && linkage.organization_id.as_deref() == Some(key.organization_id.as_str())
        && linkage.workspace_id.as_deref() == Some(key.workspace_id.as_str())
        && metadata.get("maestro_session_id").map(String::as_str) == Some(key.session_id.as_str())
        && metadata.get(COMMAND_DIGEST_KEY).map(String::as_str)
            == Some(key.command_digest.as_str());
    if !same {
        return None;
    }
    let other_approval = got
        .raw
        .approval_wait
        .as_ref()
        .and_then(|w| w.approval_request_id.as_deref())
        .is_some_and(|a| a != record.approval_request_id);
    (!other_approval).then_some(got)
}

/// The GetToolExecution request that checks a record (no long-poll).
pub fn get_request(cfg: &PlatformConfig, record: &Record) -> wire::GetToolExecutionRequest {
    crate::decide::get_request(&cfg.into(), &record.execution_id, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Linkage, ToolExecution};

    fn key() -> Key {
        Key {
            organization_id: "org".into(),
            workspace_id: "ws".into(),
            session_id: "sess".into(),
            command_digest: command_digest("echo hi"),
        }
    }

    fn record() -> Record {
        Record::new(&key(), "te_1", "apr_1", Some("2026-01-01T00:00:00Z"))
    }

    fn execution(state: ExecutionState, session: &str, digest: &str) -> Execution {
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("maestro_session_id".to_string(), session.to_string());
        metadata.insert(COMMAND_DIGEST_KEY.to_string(), digest.to_string());
        Execution {
            id: "te_1".into(),
            state,
            raw: ToolExecution {
                id: Some("te_1".into()),
                linkage: Some(Linkage {
                    organization_id: Some("org".into()),
                    workspace_id: Some("ws".into()),
                    ..Default::default()
                }),
                metadata: Some(metadata),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_record_is_claimed_once_and_privately_stored() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        leave(d.path(), &key(), &record()).unwrap();
        let file = dir(d.path()).join(file_name(&key(), "te_1"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = Key {
            session_id: "other".into(),
            ..key()
        };
        assert_eq!(claim(d.path(), &other), None);
        assert_eq!(claim(d.path(), &key()), Some(record()));
        assert_eq!(claim(d.path(), &key()), None);
        assert_eq!(std::fs::read_dir(dir(d.path())).unwrap().count(), 0);
        // One file per execution; the guardian claims its own exactly.
        let second = Record::new(&key(), "te_2", "apr_2", None);
        leave(d.path(), &key(), &record()).unwrap();
        leave(d.path(), &key(), &second).unwrap();
        assert!(claim_exact(d.path(), &key(), "te_2"));
        assert!(!claim_exact(d.path(), &key(), "te_2"));
        assert_eq!(claim(d.path(), &key()), Some(record()));
    }

    #[test]
    fn a_record_for_another_key_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let forged = Record {
            session_id: "other".into(),
            ..record()
        };
        leave(d.path(), &key(), &forged).unwrap();
        assert_eq!(claim(d.path(), &key()), None);
        assert_eq!(std::fs::read_dir(dir(d.path())).unwrap().count(), 0);
    }

    #[test]
    fn only_the_same_waiting_or_resumed_execution_is_adopted() {
        let digest = command_digest("echo hi");
        for state in [ExecutionState::WaitingApproval, ExecutionState::Running] {
            let ok = verify(&key(), &record(), execution(state, "sess", &digest)).unwrap();
            assert_eq!(ok.id, "te_1");
            assert!(ok.raw.approval_wait.and_then(|w| w.resume_token).is_none());
        }
        for bad in [
            execution(ExecutionState::Succeeded, "sess", &digest),
            execution(ExecutionState::Cancelled, "sess", &digest),
            execution(ExecutionState::WaitingApproval, "other", &digest),
            execution(
                ExecutionState::WaitingApproval,
                "sess",
                &command_digest("rm -rf /"),
            ),
        ] {
            assert!(verify(&key(), &record(), bad).is_none());
        }
        let mut other = execution(ExecutionState::WaitingApproval, "sess", &digest);
        other.raw.approval_wait = Some(wire::ApprovalWait {
            approval_request_id: Some("apr_2".into()),
            ..Default::default()
        });
        assert!(verify(&key(), &record(), other).is_none());
    }

    #[test]
    fn a_record_holds_no_secret() {
        let json = serde_json::to_string(&record()).unwrap();
        assert!(!json.to_lowercase().contains("token"), "{json}");
    }

    #[test]
    fn the_window_is_read_and_checked() {
        let env = |v: Option<&str>| {
            crate::env::MapEnv::from_pairs(v.map(|v| (WINDOW_VAR, v.to_string())))
        };
        assert_eq!(window(&env(None)), Ok(DEFAULT_WINDOW));
        assert_eq!(window(&env(Some("1500"))), Ok(Duration::from_millis(1500)));
        for bad in ["0", "soon", "-1", "999999999999"] {
            assert!(window(&env(Some(bad))).unwrap_err().contains(WINDOW_VAR));
        }
    }
}
