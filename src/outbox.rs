//! A durable outbox for records Platform could not take right away (observe mode never blocks
//! and never loses a record). One JSON file per record under `<data dir>/outbox/`.
//!
//! Concurrency: a record is claimed by renaming it into `claimed/` under a name carrying the
//! claimer's pid; rename is atomic, so exactly one shim delivers it. A claim whose owner died is
//! put back. Delivery is idempotent on Platform's side (same idempotency key), so a crash between
//! "delivered" and "deleted" sends the same record again, never a second execution.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

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
    /// The seal of this entry's requests under `key`.
    fn seal_with(&self, key: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(b"maestro-sh outbox v1\0");
        m.update(self.execute.to_string().as_bytes());
        m.update(b"\0");
        m.update(self.record.to_string().as_bytes());
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// True when the seal was made under `key` (constant-time compare).
    fn sealed_by(&self, key: &[u8]) -> bool {
        let want = self.seal_with(key);
        want.len() == self.seal.len()
            && want
                .bytes()
                .zip(self.seal.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

pub struct Outbox {
    dir: PathBuf,
    key: Vec<u8>,
}

impl Outbox {
    /// The outbox under `data_dir`, sealing and checking records with `key` (the Platform
    /// token: what an agent without it cannot forge a seal for).
    pub fn new(data_dir: &Path, key: &[u8]) -> Outbox {
        Outbox {
            dir: data_dir.join("outbox"),
            key: key.to_vec(),
        }
    }

    fn claimed_dir(&self) -> PathBuf {
        self.dir.join("claimed")
    }

    /// Store `entry` durably (write, fsync, rename into place).
    pub fn push(&self, entry: &Entry) -> std::io::Result<PathBuf> {
        let mut entry = entry.clone();
        entry.seal = entry.seal_with(&self.key);
        fs::create_dir_all(&self.dir)?;
        let name = format!("{}-{}.json", unix_nanos(), crate::context::new_id(""));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&entry).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        let path = self.dir.join(name);
        fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Number of records waiting (claimed ones included).
    pub fn len(&self) -> usize {
        let count = |d: &Path| {
            fs::read_dir(d)
                .map(|it| {
                    it.flatten()
                        .filter(|e| is_record(&e.file_name().to_string_lossy()))
                        .count()
                })
                .unwrap_or(0)
        };
        count(&self.dir) + count(&self.claimed_dir())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deliver waiting records, oldest first, at most `max` of them and within `budget`.
    /// `deliver` returns `Ok` when Platform has the record; on `Err` the record is put back and
    /// flushing stops (Platform is likely still down). Returns how many were delivered.
    pub fn flush<E>(
        &self,
        max: usize,
        budget: Duration,
        mut deliver: impl FnMut(&Entry) -> Result<(), E>,
    ) -> usize {
        let start = Instant::now();
        self.recover_abandoned_claims();
        let Ok(read) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut names: Vec<String> = read
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_record(n))
            .collect();
        names.sort();
        let claimed = self.claimed_dir();
        if fs::create_dir_all(&claimed).is_err() {
            return 0;
        }
        let mut delivered = 0;
        for name in names.into_iter().take(max) {
            if start.elapsed() > budget {
                break;
            }
            let from = self.dir.join(&name);
            let mine = claimed.join(format!("{}.{name}", std::process::id()));
            if fs::rename(&from, &mine).is_err() {
                continue; // someone else claimed it
            }
            let entry = fs::read(&mine)
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                .filter(|e| e.sealed_by(&self.key));
            let Some(entry) = entry else {
                // Unreadable, or not sealed by us (planted or altered by someone else, or
                // spooled under another token): never sent; kept aside for a human rather
                // than retried forever.
                let _ = fs::rename(&mine, self.dir.join(format!("{name}.bad")));
                continue;
            };
            match deliver(&entry) {
                Ok(()) => {
                    let _ = fs::remove_file(&mine);
                    delivered += 1;
                }
                Err(_) => {
                    let _ = fs::rename(&mine, &from);
                    break;
                }
            }
        }
        delivered
    }

    /// Put back claims whose owner is no longer running.
    fn recover_abandoned_claims(&self) {
        let Ok(read) = fs::read_dir(self.claimed_dir()) else {
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
            let alive = pid as u32 == std::process::id() || unsafe { libc::kill(pid, 0) } == 0;
            if !alive {
                let _ = fs::rename(e.path(), self.dir.join(original));
            }
        }
    }
}

fn is_record(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.')
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
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

    #[test]
    fn only_records_sealed_under_our_key_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), b"our token");
        ob.push(&entry(1)).unwrap();
        let altered = ob.push(&entry(2)).unwrap();
        let mut e: Value = serde_json::from_slice(&fs::read(&altered).unwrap()).unwrap();
        e["execute"]["n"] = json!(99);
        fs::write(&altered, e.to_string()).unwrap();
        Outbox::new(dir.path(), b"another token")
            .push(&entry(3))
            .unwrap();
        let mut unsealed = entry(4);
        unsealed.seal = "00".repeat(32);
        fs::write(
            dir.path().join("outbox").join("0-planted.json"),
            serde_json::to_vec(&unsealed).unwrap(),
        )
        .unwrap();
        let mut seen = vec![];
        ob.flush(10, Duration::from_secs(5), |e| {
            seen.push(e.execute["n"].clone());
            Ok::<(), ()>(())
        });
        assert_eq!(seen, [json!(1)]);
        let bad = fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".bad"))
            .count();
        assert_eq!(bad, 3);
        assert!(ob.is_empty());
    }

    #[test]
    fn push_flush_in_order_and_retry_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), b"k");
        for n in 0..3 {
            ob.push(&entry(n)).unwrap();
        }
        assert_eq!(ob.len(), 3);
        // Platform down: nothing delivered, nothing lost.
        assert_eq!(ob.flush(10, Duration::from_secs(5), |_| Err(())), 0);
        assert_eq!(ob.len(), 3);
        let mut seen = vec![];
        let n = ob.flush(10, Duration::from_secs(5), |e| {
            seen.push(e.execute["n"].as_u64().unwrap());
            Ok::<(), ()>(())
        });
        assert_eq!((n, seen), (3, vec![0, 1, 2]));
        assert!(ob.is_empty());
    }

    #[test]
    fn abandoned_claims_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), b"k");
        let p = ob.push(&entry(7)).unwrap();
        fs::create_dir_all(ob.claimed_dir()).unwrap();
        // pid 0x7ffffffe is not running.
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        fs::rename(&p, ob.claimed_dir().join(format!("2147483646.{name}"))).unwrap();
        let mut got = 0;
        ob.flush(10, Duration::from_secs(5), |_| {
            got += 1;
            Ok::<(), ()>(())
        });
        assert_eq!(got, 1);
        assert!(ob.is_empty());
    }

    #[test]
    fn concurrent_flushers_deliver_each_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for n in 0..40 {
            Outbox::new(&root, b"k").push(&entry(n)).unwrap();
        }
        let delivered = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    Outbox::new(&root, b"k").flush(100, Duration::from_secs(10), |e| {
                        delivered
                            .lock()
                            .unwrap()
                            .push(e.execute["n"].as_u64().unwrap());
                        Ok::<(), ()>(())
                    })
                });
            }
        });
        let mut d = delivered.into_inner().unwrap();
        d.sort();
        assert_eq!(d, (0..40).collect::<Vec<_>>());
    }
}
