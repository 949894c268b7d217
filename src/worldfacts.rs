//! The caller's side of [`classify::Facts`]: what the classifier may ask about the world,
//! answered lazily (only when a command needs it) and cached per directory.
//!
//! Git: read-only verbs still run programs named in the effective configuration
//! (git-config(1): `core.fsmonitor`, `core.pager`, `pager.<cmd>`, `diff.external`,
//! `diff.<driver>.textconv`/`.command`, `filter.<driver>.*`, `gpg.program`) or the environment
//! (`GIT_EXTERNAL_DIFF`, `GIT_PAGER`/`PAGER`, `GIT_EXEC_PATH`, `GIT_CONFIG_*`). The effective
//! config (system, global, repository, includes, `GIT_CONFIG_*`) is read with one `git config
//! --get-regexp` in that directory, the same discovery git itself does; anything unexpected
//! (no git, an error, too many directories) is "unknown", which keeps git from being read-only.

use std::cell::RefCell;
use std::process::{Command, Stdio};

use crate::classify::Facts;
use crate::env::Env;

/// Distinct directories asked about per command; more is "unknown".
const MAX_DIRS: usize = 4;

/// Keys that can name a program git runs for read-only verbs.
const GIT_KEYS: &str = r"^(core\.(fsmonitor|pager)|pager\..*|diff\..*|filter\..*|gpg\..*)$";

/// Environment variables that make git run something, or change which config applies in a
/// way a spawned `git config` would not see.
const GIT_ENV: &[&str] = &[
    "GIT_EXTERNAL_DIFF",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
];

/// Facts from the process environment and the file system.
pub struct WorldFacts<'e> {
    env: &'e dyn Env,
    cache: RefCell<Vec<(String, Option<bool>)>>,
}

impl<'e> WorldFacts<'e> {
    pub fn new(env: &'e dyn Env) -> WorldFacts<'e> {
        WorldFacts {
            env,
            cache: RefCell::new(Vec::new()),
        }
    }

    fn env_runs_program(&self) -> bool {
        let pager = |n: &str| {
            self.env
                .get(n)
                .is_some_and(|v| !matches!(v.trim(), "" | "cat"))
        };
        GIT_ENV
            .iter()
            .any(|n| self.env.get(n).is_some_and(|v| !v.is_empty()))
            || pager("GIT_PAGER")
            || pager("PAGER") && self.env.get("GIT_PAGER").is_none()
    }
}

/// Kubeconfig files larger than this are not read: unknown.
const MAX_KUBECONFIG: u64 = 1024 * 1024;

impl WorldFacts<'_> {
    /// The kubeconfig files in effect: `$KUBECONFIG` (colon-separated) or `~/.kube/config`.
    fn kubeconfigs(&self) -> Option<Vec<std::path::PathBuf>> {
        match self.env.get("KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(list) => Some(
                list.split(':')
                    .filter(|p| !p.is_empty())
                    .map(Into::into)
                    .collect(),
            ),
            None => {
                let home = self.env.get("HOME").filter(|h| h.starts_with('/'))?;
                Some(vec![std::path::Path::new(&home).join(".kube/config")])
            }
        }
    }
}

impl Facts for WorldFacts<'_> {
    fn kube_config_runs_program(&self) -> Option<bool> {
        let mut any = false;
        for path in self.kubeconfigs()? {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                // No file: nothing configured there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => return None,
            };
            if !meta.is_file() || meta.len() > MAX_KUBECONFIG {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            // Conservative: the keys anywhere in the text (YAML or JSON) count.
            any |= ["exec", "auth-provider", "authProvider"]
                .iter()
                .any(|k| text.contains(&format!("{k}:")) || text.contains(&format!("\"{k}\"")));
        }
        Some(any)
    }

    fn git_config_runs_program(&self, dir: &str) -> Option<bool> {
        if self.env_runs_program() {
            return Some(true);
        }
        if let Some((_, v)) = self.cache.borrow().iter().find(|(d, _)| d == dir) {
            return *v;
        }
        if self.cache.borrow().len() >= MAX_DIRS {
            return None;
        }
        let expanded;
        let real_dir = match dir.strip_prefix('~') {
            Some(rest) => {
                let home = self.env.get("HOME").filter(|h| h.starts_with('/'))?;
                expanded = format!("{home}{rest}");
                expanded.as_str()
            }
            None => dir,
        };
        let v = git_config_names_program(real_dir);
        self.cache.borrow_mut().push((dir.to_string(), v));
        v
    }
}

fn git_config_names_program(dir: &str) -> Option<bool> {
    // git cannot run there: `cd DIR` or `git -C DIR` fails and nothing runs. (Anything in the
    // same command that would create DIR is not read-only itself.)
    if !std::path::Path::new(dir).is_dir() {
        return Some(false);
    }
    let out = match Command::new("git")
        .args(["-C", dir, "config", "--null", "--get-regexp", GIT_KEYS])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => out,
        // No git: a git command cannot run, so it runs no configured program either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    match out.status.code() {
        // No key matched.
        Some(1) if out.stdout.is_empty() => Some(false),
        Some(0) => Some(parse_entries(&out.stdout)),
        _ => None,
    }
}

/// `key\nvalue\0` entries: does any name a program?
pub fn parse_entries(out: &[u8]) -> bool {
    out.split(|&b| b == 0).filter(|e| !e.is_empty()).any(|e| {
        let e = String::from_utf8_lossy(e);
        let (key, value) = e.split_once('\n').unwrap_or((&e, ""));
        names_program(&key.to_ascii_lowercase(), value.trim())
    })
}

fn names_program(key: &str, value: &str) -> bool {
    let off = matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "false" | "no" | "off" | "0"
    );
    if key == "core.fsmonitor" {
        return !off;
    }
    if key == "core.pager" || key.starts_with("pager.") {
        return !(off || value == "cat" || value.eq_ignore_ascii_case("true"));
    }
    if key.starts_with("diff.") {
        return key == "diff.external" || key.ends_with(".textconv") || key.ends_with(".command");
    }
    if key.starts_with("filter.") {
        // The standard Git LFS install is a known program, not repository-chosen code.
        return !(key.ends_with(".required")
            || matches!(
                value,
                "git-lfs clean -- %f" | "git-lfs smudge -- %f" | "git-lfs filter-process"
            ));
    }
    if key.starts_with("gpg.") {
        return key.ends_with(".program") || key == "gpg.program";
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn entries() {
        assert!(!parse_entries(
            b"core.fsmonitor\nfalse\0diff.renames\ntrue\0"
        ));
        assert!(parse_entries(b"core.pager\nsh -c x\0"));
        assert!(parse_entries(b"diff.x.textconv\nx\0"));
        assert!(!parse_entries(
            b"filter.lfs.process\ngit-lfs filter-process\0filter.lfs.required\ntrue\0"
        ));
        assert!(parse_entries(b"filter.evil.clean\nrm -rf x\0"));
        assert!(parse_entries(b"core.fsmonitor\n.git/hooks/x\0"));
    }

    #[test]
    fn kubeconfig_plugins_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "users:\n- name: u\n  user:\n    token: x\n").unwrap();
        let p = f.to_str().unwrap().to_string();
        let env = MapEnv::from_pairs([("KUBECONFIG", p.as_str())]);
        assert_eq!(
            WorldFacts::new(&env).kube_config_runs_program(),
            Some(false)
        );
        std::fs::write(&f, "users:\n- user:\n    exec:\n      command: aws\n").unwrap();
        assert_eq!(WorldFacts::new(&env).kube_config_runs_program(), Some(true));
        let missing = format!("{}/none", dir.path().display());
        let env = MapEnv::from_pairs([("KUBECONFIG", missing.as_str())]);
        assert_eq!(
            WorldFacts::new(&env).kube_config_runs_program(),
            Some(false)
        );
    }

    #[test]
    fn repository_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap()
        };
        if !git(&["init", "-q"]).status.success() {
            return; // no git on this machine: nothing to read
        }
        let env = MapEnv::default();
        let d = dir.path().to_str().unwrap();
        let clean = WorldFacts::new(&env).git_config_runs_program(d);
        // A global config may name one; a fresh repository alone does not.
        assert!(clean.is_some());
        git(&["config", "core.fsmonitor", "touch /tmp/pwned"]);
        assert_eq!(WorldFacts::new(&env).git_config_runs_program(d), Some(true));
        let env = MapEnv::from_pairs([("GIT_EXTERNAL_DIFF", "/x")]);
        assert_eq!(
            WorldFacts::new(&env).git_config_runs_program("."),
            Some(true)
        );
        // git cannot run in a missing directory, so it runs nothing there.
        assert_eq!(
            WorldFacts::new(&MapEnv::default()).git_config_runs_program("/nonexistent/x"),
            Some(false)
        );
        // Past the per-command bound, unknown.
        let empty = MapEnv::default();
        let f = WorldFacts::new(&empty);
        for d in ["/", "/tmp", "/usr", "/etc"] {
            f.git_config_runs_program(d);
        }
        assert_eq!(f.git_config_runs_program(d), None);
    }
}
