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

use serde_json::Value;

/// A spooled record: the requests to replay, as JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub version: u32,
    /// The ExecuteTool request (observe metadata, same idempotency key).
    pub execute: Value,
    /// The RecordToolExecutionOutput request, without `executionId` (filled in on delivery).
    pub record: Value,
}

pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(data_dir: &Path) -> Outbox {
        Outbox {
            dir: data_dir.join("outbox"),
        }
    }

    fn claimed_dir(&self) -> PathBuf {
        self.dir.join("claimed")
    }

    /// Store `entry` durably (write, fsync, rename into place).
    pub fn push(&self, entry: &Entry) -> std::io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        let name = format!("{}-{}.json", unix_nanos(), crate::context::new_id(""));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
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
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
            let Some(entry) = entry else {
                // Unreadable: keep it aside for a human rather than retrying forever.
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
        }
    }

    #[test]
    fn push_flush_in_order_and_retry_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path());
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
        let ob = Outbox::new(dir.path());
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
            Outbox::new(&root).push(&entry(n)).unwrap();
        }
        let delivered = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    Outbox::new(&root).flush(100, Duration::from_secs(10), |e| {
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
