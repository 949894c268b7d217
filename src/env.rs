//! Reading the environment through one seam, so the pure parts (context, config, mode) are
//! testable with a table instead of the process environment.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::time::Duration;

/// A source of environment variables.
pub trait Env {
    /// The value of `name`, `None` when unset. Non-UTF-8 values read as `None`: every variable we
    /// read is an identifier, URL, number or path we would not be able to use anyway.
    fn get(&self, name: &str) -> Option<String>;

    /// First non-empty (after trimming) value among `names`, with the name it came from.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, String)> {
        names.iter().find_map(|&n| {
            let v = self.get(n)?;
            let t = v.trim();
            (!t.is_empty()).then(|| (n, t.to_string()))
        })
    }

    /// First non-empty value among `names`.
    fn first_value(&self, names: &[&'static str]) -> Option<String> {
        self.first(names).map(|(_, v)| v)
    }
}

/// A duration in milliseconds from `var`: `default` when unset; a value that is not a number
/// of milliseconds in `1..=max` is an error naming the variable and the range.
pub fn millis_var(
    env: &dyn Env,
    var: &'static str,
    default: Duration,
    max: Duration,
) -> Result<Duration, String> {
    match env.first_value(&[var]) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 1 && Duration::from_millis(ms) <= max => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "{var}={v:?} is not a number of milliseconds in 1..={}; fix or unset it",
                max.as_millis()
            )),
        },
    }
}

/// The file descriptor named by `var`'s value `raw`, checked and marked close-on-exec (the
/// command must never inherit it): a number above 2 that is open in this process. The error
/// names the variable; `hint` (may be empty) says what to do instead.
pub fn inherited_fd(var: &'static str, raw: &str, hint: &str) -> Result<RawFd, String> {
    let fd: RawFd = raw
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| format!("{var}={raw:?} is not a file descriptor number above 2"))?;
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(format!("{var}={fd} is not an open file descriptor{hint}"));
    }
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    Ok(fd)
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed map, for tests and for `--explain` with overrides.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub BTreeMap<String, String>);

impl MapEnv {
    pub fn from_pairs<I: IntoIterator<Item = (K, V)>, K: Into<String>, V: Into<String>>(
        pairs: I,
    ) -> MapEnv {
        MapEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
