//! Adopting an approval request left open by a killed run.
//!
//! Maestro's tool timeout (90 s by default) is usually shorter than a human takes to approve:
//! Maestro SIGKILLs the waiting maestro-sh, then the agent retries the same command. Cancelling
//! the request on the kill would make the human's approval useless and ask again; leaving it
//! open and unowned would make it a trap (approved, and nothing runs). So when maestro-sh dies
//! while waiting, its guardian leaves the request open and writes an *adoption record*; the next
//! governed invocation in the same session with the same command claims the record, checks with
//! Platform that it is that same request (same organization, workspace, session and command
//! digest, still waiting), and waits on it instead of asking again: approved once, run once.
//!
//! A record holds the resume token (Platform's capability to resume that one execution), so it is
//! written like the grant key: a private file (0600) in the data dir, claimed by an atomic rename
//! so exactly one retry adopts it, deleted when read. Without a session id there is no retry to
//! match, and the guardian cancels instead.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::PlatformConfig;
use crate::context::Context;
use crate::platform::Checked;
use crate::wire::{self, ExecutionState};

/// Metadata key carrying the command digest on the ExecuteTool request (and so on Platform).
pub const COMMAND_DIGEST_KEY: &str = "maestro_sh_command_sha256";

/// The hex SHA-256 of the command as Platform sees it (sanitized).
pub fn command_digest(sanitized_command: &str) -> String {
    hex(&Sha256::digest(sanitized_command.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// An open approval request nobody waits for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub execution_id: String,
    pub approval_request_id: String,
    pub resume_token: String,
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("adopt")
}

/// Leave `record` for a retry matching `key` (write privately, then rename into place).
pub fn leave(data_dir: &Path, key: &Key, record: &Record) -> std::io::Result<()> {
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let name = key.file_name();
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

/// Claim the record left for `key`, if any: exactly one claimer wins the rename; the file is
/// gone afterwards whatever it held.
pub fn claim(data_dir: &Path, key: &Key) -> Option<Record> {
    let dir = dir(data_dir);
    let name = key.file_name();
    let claimed = dir.join(format!(".{name}.claimed.{}", std::process::id()));
    std::fs::rename(dir.join(&name), &claimed).ok()?;
    let bytes = std::fs::read(&claimed);
    let _ = std::fs::remove_file(&claimed);
    serde_json::from_slice(&bytes.ok()?).ok()
}

/// Platform's view of the recorded execution, as something to wait on: `Some` only when it is
/// the same organization, workspace, session and command, still waiting for approval.
pub fn verify(key: &Key, record: &Record, got: Checked) -> Option<Checked> {
    let linkage = got.raw.linkage.as_ref()?;
    let metadata = got.raw.metadata.as_ref()?;
    let same = got.id == record.execution_id
        && got.state == ExecutionState::WaitingApproval
        && linkage.organization_id.as_deref() == Some(key.organization_id.as_str())
        && linkage.workspace_id.as_deref() == Some(key.workspace_id.as_str())
        && metadata.get("maestro_session_id").map(String::as_str) == Some(key.session_id.as_str())
        && metadata.get(COMMAND_DIGEST_KEY).map(String::as_str)
            == Some(key.command_digest.as_str());
    if !same {
        return None;
    }
    let mut got = got;
    let mut wait = got.raw.approval_wait.take().unwrap_or_default();
    if wait
        .approval_request_id
        .as_deref()
        .is_some_and(|a| a != record.approval_request_id)
    {
        return None;
    }
    wait.approval_request_id = Some(record.approval_request_id.clone());
    wait.resume_token = Some(record.resume_token.clone());
    got.raw.approval_wait = Some(wait);
    Some(got)
}

/// The GetToolExecution request that checks a record (no long-poll).
pub fn get_request(cfg: &PlatformConfig, record: &Record) -> wire::GetToolExecutionRequest {
    crate::decide::get_request(cfg, &record.execution_id, 0)
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
        Record {
            execution_id: "te_1".into(),
            approval_request_id: "apr_1".into(),
            resume_token: "tok".into(),
        }
    }

    fn execution(state: ExecutionState, session: &str, digest: &str) -> Checked {
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("maestro_session_id".to_string(), session.to_string());
        metadata.insert(COMMAND_DIGEST_KEY.to_string(), digest.to_string());
        Checked {
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
        let file = dir(d.path()).join(key().file_name());
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
    }

    #[test]
    fn only_the_same_waiting_execution_is_adopted() {
        let digest = command_digest("echo hi");
        let ok = verify(
            &key(),
            &record(),
            execution(ExecutionState::WaitingApproval, "sess", &digest),
        )
        .unwrap();
        let wait = ok.raw.approval_wait.unwrap();
        assert_eq!(wait.resume_token.as_deref(), Some("tok"));
        assert_eq!(wait.approval_request_id.as_deref(), Some("apr_1"));
        for bad in [
            execution(ExecutionState::Running, "sess", &digest),
            execution(ExecutionState::WaitingApproval, "other", &digest),
            execution(
                ExecutionState::WaitingApproval,
                "sess",
                &command_digest("rm -rf /"),
            ),
        ] {
            assert!(verify(&key(), &record(), bad).is_none());
        }
    }
}
