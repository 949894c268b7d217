//! Reading the environment through one seam, so the pure parts (context, config, mode) are
//! testable with a table instead of the process environment.

use std::collections::BTreeMap;

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
