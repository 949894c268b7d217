//! A durable outbox for records Platform could not take right away (observe mode never blocks
//! and never loses a record). One JSON file per record under `<data dir>/outbox/`.
//!
//! Guarantees (issue 10, "The outbox never loses or wedges"):
//! - **Private.** The data dir must belong to the user (else refused: someone else could read or
//!   plant records); `outbox/` and `outbox/dead/` are 0700, records 0600, created with
//!   `O_EXCL | O_NOFOLLOW` and read through [`crate::fsread`] without following symlinks.
//! - **Atomic.** A record is written to a dot-temp file, fsynced, then renamed into place; a
//!   failed write (disk full) removes its temp file, and stale temp files (a writer killed
//!   mid-write) are swept after [`STALE_TEMP`].
//! - **Claimed with `flock`.** A flusher holds an exclusive lock on the record while delivering
//!   it; the kernel drops the lock when the process dies, so a crash never strands a record and
//!   pid reuse cannot fake an owner. After locking, a record already unlinked (delivered by the
//!   previous holder) is skipped.
//! - **Never wedged.** A record Platform rejects for good (4xx other than 408/429, or an answer
//!   that cannot be trusted) or that cannot be parsed is moved to `outbox/dead/` with a warning,
//!   and flushing goes on with the next one. Only "Platform unavailable" stops a flush.
//! - **Bounded.** At most [`MAX_RECORDS`] pending; beyond that the oldest is dropped, after a
//!   warning naming it.
//!
//! Delivery is idempotent on Platform's side (same idempotency key), so a crash between
//! "delivered" and "deleted" sends the same record again, never a second execution.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::fsread::{self, Follow};

/// Pending records kept at most; the oldest is dropped (after a warning) to make room.
pub const MAX_RECORDS: usize = 1000;
/// A temp file older than this was left by a writer that died mid-write.
pub const STALE_TEMP: Duration = Duration::from_secs(600);
/// The sidecar event type for outbox warnings (dead-lettered or dropped records).
pub const WARNING_EVENT: &str = "maestro.events.maestro_sh.outbox_warning";

/// A spooled record: the requests to replay, as JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub version: u32,
    /// The ExecuteTool request (observe metadata, same idempotency key).
    pub execute: Value,
    /// The RecordToolExecutionOutput request, without `executionId` (filled in on delivery).
    pub record: Value,
    /// HMAC-SHA256 (hex) of `execute` and `record` under the outbox key; set by `push`.
    #[serde(default)]
    pub seal: String,
}

impl Entry {
    /// The seal of this entry's requests under `key` (HMAC-SHA256, hex); [`Outbox::push`] sets
    /// it with the outbox's key.
    pub fn seal_with(&self, key: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(b"maestro-sh outbox v1\0");
        m.update(self.execute.to_string().as_bytes());
        m.update(b"\0");
        m.update(self.record.to_string().as_bytes());
        crate::context::hex(&m.finalize().into_bytes())
    }

    /// True when the seal was made under `key` (constant-time compare).
    fn sealed_by(&self, key: &[u8]) -> bool {
        let want = self.seal_with(key);
        bool::from(want.as_bytes().ct_eq(self.seal.as_bytes()))
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Platform has it (or had it already): delete the record.
    Delivered,
    /// Platform unavailable: keep the record and stop flushing.
    Retry,
    /// Platform rejected it for good: dead-letter it and go on.
    Rejected(String),
}

/// A warning worth an event: a record dead-lettered or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `dead_lettered` or `dropped`.
    pub kind: &'static str,
    pub record: String,
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "dropped" => write!(
                f,
                "outbox full ({MAX_RECORDS} records): dropped the oldest record {} ({})",
                self.record, self.reason
            ),
            _ => write!(
                f,
                "record {} moved to the dead-letter directory: {}",
                self.record, self.reason
            ),
        }
    }
}

/// The outbox could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("data dir {path} is owned by uid {owner}, not you (uid {me}); set MAESTRO_SH_DATA_DIR to a directory of your own")]
    NotOwned { path: String, owner: u32, me: u32 },
    #[error("{path} is not a directory; move it away or set MAESTRO_SH_DATA_DIR")]
    NotDirectory { path: String },
    #[error("{path} is accessible by group or others (mode {mode:o}); run: chmod 700 {path}")]
    NotPrivate { path: String, mode: u32 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
    key: Vec<u8>,
}

impl Outbox {
    /// Open (creating) `<data_dir>/outbox`, refusing a data dir that is not the user's or an
    /// outbox that is not private. Records are sealed and checked with `key` (the Platform
    /// token: what an agent without it cannot forge a seal for), so a record planted or altered
    /// in the data dir is never sent with our credentials.
    pub fn open(data_dir: &Path, key: &[u8]) -> Result<Outbox, OutboxError> {
        let me = unsafe { libc::geteuid() };
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(data_dir).map_err(io_err(data_dir))?;
        let meta = fs::metadata(data_dir).map_err(io_err(data_dir))?;
        if !meta.is_dir() {
            return Err(OutboxError::NotDirectory {
                path: data_dir.display().to_string(),
            });
        }
        if meta.uid() != me {
            return Err(OutboxError::NotOwned {
                path: data_dir.display().to_string(),
                owner: meta.uid(),
                me,
            });
        }
        let ob = Outbox {
            dir: data_dir.join("outbox"),
            key: key.to_vec(),
        };
        for d in [ob.dir.clone(), ob.dead_dir()] {
            private_dir(&d, me)?;
        }
        Ok(ob)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dead_dir(&self) -> PathBuf {
        self.dir.join("dead")
    }

    /// Store `entry` durably (exclusive create, write, fsync, rename into place). When the
    /// outbox is full, `warn` hears about the oldest record before it is dropped.
    pub fn push(&self, entry: &Entry, warn: &mut dyn FnMut(Warning)) -> std::io::Result<PathBuf> {
        let mut entry = entry.clone();
        entry.seal = entry.seal_with(&self.key);
        let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        self.make_room(warn);
        let name = format!("{:032}-{}.json", unix_nanos(), crate::context::new_id(""));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let path = self.dir.join(name);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    /// Drop the oldest records (after warning) until one more fits under [`MAX_RECORDS`].
    fn make_room(&self, warn: &mut dyn FnMut(Warning)) {
        let names = self.pending();
        if names.len() < MAX_RECORDS {
            return;
        }
        for name in &names[..=names.len() - MAX_RECORDS] {
            warn(Warning {
                kind: "dropped",
                record: name.clone(),
                reason: "Platform has not taken records for a long time".into(),
            });
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    /// Pending record names, oldest first.
    fn pending(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| is_record(n))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Number of records waiting (dead letters not included).
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of dead-lettered records.
    pub fn dead_len(&self) -> usize {
        fs::read_dir(self.dead_dir())
            .map(|it| {
                it.flatten()
                    .filter(|e| is_record(&e.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Deliver waiting records, oldest first, at most `max` of them and within `budget`.
    /// A record rejected for good (or unreadable) is dead-lettered, `warn` is told, and the
    /// flush goes on; [`Delivery::Retry`] puts the record back and stops (Platform is likely
    /// still down). Returns how many were delivered.
    pub fn flush(
        &self,
        max: usize,
        budget: Duration,
        mut deliver: impl FnMut(&Entry) -> Delivery,
        warn: &mut dyn FnMut(Warning),
    ) -> usize {
        let start = Instant::now();
        self.sweep_stale_temps();
        self.recover_legacy_claims();
        let mut delivered = 0;
        for name in self.pending().into_iter().take(max) {
            if start.elapsed() > budget {
                break;
            }
            let path = self.dir.join(&name);
            let Ok((file, meta)) = fsread::open_regular(&path, Follow::No) else {
                continue; // gone (delivered by someone else) or not a record: leave it
            };
            // Claim: an exclusive lock, held until `file` is dropped (or we die).
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue; // another flusher has it
            }
            // The previous holder may have delivered and unlinked it while we waited.
            match file.metadata() {
                Ok(m) if m.nlink() > 0 => {}
                _ => continue,
            }
            // Read through a duplicate: `file` (and so the lock) stays open until we are done.
            let Ok(reader) = file.try_clone() else {
                continue;
            };
            let entry = fsread::read_open(reader, meta, &path, fsread::OUTBOX_CAP)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
                .and_then(|e| {
                    // Planted or altered by someone else, or spooled under another token:
                    // never sent with ours.
                    e.sealed_by(&self.key)
                        .then_some(e)
                        .ok_or_else(|| "not sealed under this Platform token".to_string())
                });
            let outcome = match &entry {
                Ok(entry) => deliver(entry),
                Err(e) => Delivery::Rejected(format!("unreadable record: {e}")),
            };
            match outcome {
                Delivery::Delivered => {
                    let _ = fs::remove_file(&path);
                    delivered += 1;
                }
                Delivery::Rejected(reason) => {
                    warn(Warning {
                        kind: "dead_lettered",
                        record: name.clone(),
                        reason: reason.clone(),
                    });
                    let dead = self.dead_dir().join(&name);
                    if fs::rename(&path, &dead).is_err() {
                        // Never leave it to block the queue.
                        let _ = fs::remove_file(&path);
                    } else {
                        // Why, next to it, for whoever looks (best effort).
                        let _ = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(dead.with_extension("reason"))
                            .and_then(|mut f| writeln!(f, "{reason}"));
                    }
                }
                Delivery::Retry => break,
            }
        }
        delivered
    }

    /// Remove temp files a writer left behind when it died mid-write.
    fn sweep_stale_temps(&self) {
        let Ok(read) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in read.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Earlier versions claimed by renaming into `claimed/<pid>.<name>`: put back those whose
    /// owner is gone, so an upgrade loses nothing.
    fn recover_legacy_claims(&self) {
        let Ok(read) = fs::read_dir(self.dir.join("claimed")) else {
            return;
        };
        for e in read.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((pid, original)) = name.split_once('.') else {
                continue;
            };
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            if pid > 0 && unsafe { libc::kill(pid, 0) } != 0 {
                let _ = fs::rename(e.path(), self.dir.join(original));
            }
        }
    }
}

/// Create `d` (0700) if needed and check it is a private directory of ours, not a symlink.
fn private_dir(d: &Path, me: u32) -> Result<(), OutboxError> {
    match fs::DirBuilder::new().mode(0o700).create(d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(d)(e)),
    }
    let meta = fs::symlink_metadata(d).map_err(io_err(d))?;
    if !meta.is_dir() {
        return Err(OutboxError::NotDirectory {
            path: d.display().to_string(),
        });
    }
    if meta.uid() != me {
        return Err(OutboxError::NotOwned {
            path: d.display().to_string(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(OutboxError::NotPrivate {
            path: d.display().to_string(),
            mode,
        });
    }
    Ok(())
}

fn is_record(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.')
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(n: u32) -> Entry {
        Entry {
            version: 1,
            execute: json!({"n": n}),
            record: json!({}),
            seal: String::new(),
        }
    }

    fn nowarn(_: Warning) {}

    #[test]
    fn only_records_sealed_under_our_key_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), b"our token").unwrap();
        ob.push(&entry(1), &mut nowarn).unwrap();
        let altered = ob.push(&entry(2), &mut nowarn).unwrap();
        let mut e: Value = serde_json::from_slice(&fs::read(&altered).unwrap()).unwrap();
        e["execute"]["n"] = json!(99);
        fs::write(&altered, e.to_string()).unwrap();
        Outbox::open(dir.path(), b"another token")
            .unwrap()
            .push(&entry(3), &mut nowarn)
            .unwrap();
        let mut unsealed = entry(4);
        unsealed.seal = "00".repeat(32);
        let planted = ob.dir().join(format!("{:032}-planted.json", u128::MAX / 2));
        fs::write(&planted, serde_json::to_vec(&unsealed).unwrap()).unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o600)).unwrap();
        let mut seen = vec![];
        let mut warnings = vec![];
        ob.flush(
            10,
            Duration::from_secs(5),
            |e| {
                seen.push(e.execute["n"].clone());
                Delivery::Delivered
            },
            &mut |w| warnings.push(w),
        );
        assert_eq!(seen, [json!(1)], "only our own, unaltered record is sent");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings.iter().all(|w| w.kind == "dead_lettered"
            && w.reason.contains("not sealed under this Platform token")));
        assert!(ob.is_empty());
        assert_eq!(ob.dead_len(), 3);
    }

    #[test]
    fn push_flush_in_order_and_retry_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), b"k").unwrap();
        for n in 0..3 {
            ob.push(&entry(n), &mut nowarn).unwrap();
        }
        assert_eq!(ob.len(), 3);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(ob.dir()), 0o700);
        let first = ob.dir().join(&ob.pending()[0]);
        assert_eq!(mode(&first), 0o600);
        // Platform down: nothing delivered, nothing lost.
        let n = ob.flush(10, Duration::from_secs(5), |_| Delivery::Retry, &mut nowarn);
        assert_eq!(n, 0);
        assert_eq!(ob.len(), 3);
        let mut seen = vec![];
        let n = ob.flush(
            10,
            Duration::from_secs(5),
            |e| {
                seen.push(e.execute["n"].as_u64().unwrap());
                Delivery::Delivered
            },
            &mut nowarn,
        );
        assert_eq!((n, seen), (3, vec![0, 1, 2]));
        assert!(ob.is_empty());
    }

    #[test]
    fn poison_record_is_dead_lettered_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), b"k").unwrap();
        for n in 0..4 {
            ob.push(&entry(n), &mut nowarn).unwrap();
        }
        // An unreadable record too.
        fs::write(
            ob.dir().join("00000000000000000000000000000000-x.json"),
            b"{nope",
        )
        .unwrap();
        let mut warnings = vec![];
        let mut seen = vec![];
        let n = ob.flush(
            10,
            Duration::from_secs(5),
            |e| {
                let n = e.execute["n"].as_u64().unwrap();
                if n == 1 {
                    return Delivery::Rejected("HTTP 400".into());
                }
                seen.push(n);
                Delivery::Delivered
            },
            &mut |w| warnings.push(w),
        );
        assert_eq!((n, seen), (3, vec![0, 2, 3]));
        assert!(ob.is_empty());
        assert_eq!(ob.dead_len(), 2);
        assert_eq!(warnings.len(), 2);
        assert!(warnings.iter().all(|w| w.kind == "dead_lettered"));
    }

    #[test]
    fn locked_record_is_skipped_and_unlinked_one_not_redelivered() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), b"k").unwrap();
        let p = ob.push(&entry(1), &mut nowarn).unwrap();
        let held = fs::File::open(&p).unwrap();
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let n = ob.flush(
            10,
            Duration::from_secs(5),
            |_| Delivery::Delivered,
            &mut nowarn,
        );
        assert_eq!(n, 0, "a claimed record is not delivered twice");
        drop(held); // the holder died: the kernel released the claim
        let n = ob.flush(
            10,
            Duration::from_secs(5),
            |_| Delivery::Delivered,
            &mut nowarn,
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn stale_temps_swept_and_bound_warns_before_dropping() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(dir.path(), b"k").unwrap();
        let tmp = ob.dir().join(".old.json.tmp");
        fs::write(&tmp, b"half").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(old)
            .unwrap();
        ob.flush(1, Duration::from_secs(1), |_| Delivery::Retry, &mut nowarn);
        assert!(!tmp.exists());
        // Fill to the bound with empty files (cheap), then push one more.
        for i in 0..MAX_RECORDS {
            fs::write(ob.dir().join(format!("{i:032}-f.json")), b"{}").unwrap();
        }
        let mut warnings = vec![];
        ob.push(&entry(9), &mut |w| warnings.push(w)).unwrap();
        assert_eq!(ob.len(), MAX_RECORDS);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].kind, "dropped");
        assert_eq!(warnings[0].record, format!("{:032}-f.json", 0));
    }

    #[test]
    fn foreign_or_open_outbox_refused() {
        let dir = tempfile::tempdir().unwrap();
        Outbox::open(dir.path(), b"k").unwrap();
        fs::set_permissions(dir.path().join("outbox"), fs::Permissions::from_mode(0o755)).unwrap();
        let e = Outbox::open(dir.path(), b"k").err().unwrap().to_string();
        assert!(e.contains("chmod 700"), "{e}");
        if unsafe { libc::geteuid() } != 0 {
            let e = Outbox::open(Path::new("/"), b"k")
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("not you"), "{e}");
        }
    }

    #[test]
    fn concurrent_flushers_deliver_each_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for n in 0..40 {
            Outbox::open(&root, b"k")
                .unwrap()
                .push(&entry(n), &mut nowarn)
                .unwrap();
        }
        let delivered = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    Outbox::open(&root, b"k").unwrap().flush(
                        100,
                        Duration::from_secs(10),
                        |e| {
                            delivered
                                .lock()
                                .unwrap()
                                .push(e.execute["n"].as_u64().unwrap());
                            Delivery::Delivered
                        },
                        &mut nowarn,
                    )
                });
            }
        });
        let mut d = delivered.into_inner().unwrap();
        d.sort();
        assert_eq!(d, (0..40).collect::<Vec<_>>());
    }
}
