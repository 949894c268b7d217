//! Which mode applies: off (pure pass-through), observe (run, then record) or governed (ask
//! first). From the feature-flag snapshot, as Maestro reads it, plus an override variable that
//! can only make governance stricter. The kill switch always wins.
//!
//! This runs on the pass-through hot path: with no flags variable and no override it reads
//! nothing at all.

use serde::Deserialize;

use crate::env::Env;
use crate::local_policy::Action;

pub const FLAGS_PATH_VAR: &str = "EVALOPS_FEATURE_FLAGS_PATH";
/// Newer Maestro may evaluate its flags remotely at this service (platform-contract.md,
/// section 9). maestro-sh never calls it (no network before deciding pass-through); it reads
/// the snapshot file only, and says so when the service is configured without a snapshot.
pub const FLAGS_URL_VAR: &str = "EVALOPS_FEATURE_FLAGS_URL";
/// Manual and CI override: `observe` or `governed` (stricter only), `off` (only when the flags
/// agree).
pub const MODE_VAR: &str = "MAESTRO_SH_MODE";

pub const FLAG_OBSERVE: &str = "maestro.platform_runtime.agent_runtime_observe";
pub const FLAG_BRIDGE: &str = "maestro.platform_runtime.tool_execution_bridge";
pub const FLAG_KILL_SWITCH: &str = "platform.kill_switches.maestro.platform_runtime_bridge";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Off,
    Observe,
    Governed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Observe => "observe",
            Mode::Governed => "governed",
        }
    }
}

/// The mode for read-only and for mutating commands, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    pub read_only: Mode,
    pub mutating: Mode,
    pub reason: String,
    /// Platform's kill switch is on: nothing may be observed or governed.
    pub kill_switch: bool,
    /// The snapshot turns Maestro's own ToolExecution bridge on (kill switch off): Maestro may
    /// then govern a Bash call itself before spawning the shell (attach.rs).
    pub bridge_flag: bool,
}

impl Policy {
    /// The mode for a command of this kind, given the local policy file's decision for it:
    /// a `govern` rule raises it to governed (stricter only), except under Platform's kill
    /// switch, which always wins. `deny` is a refusal, decided before a mode matters.
    pub fn for_command(&self, read_only: bool, local: Option<Action>) -> Mode {
        if local == Some(Action::Govern) && !self.kill_switch {
            return Mode::Governed;
        }
        if read_only {
            self.read_only
        } else {
            self.mutating
        }
    }

    /// True when nothing can be observed or governed: the hot path.
    pub fn is_off(&self) -> bool {
        self.read_only == Mode::Off && self.mutating == Mode::Off
    }
}

/// A mode input we cannot read. Governance may be on, so the caller fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("{FLAGS_PATH_VAR}={path:?}: {problem}; fix the file or unset the variable")]
    Flags { path: String, problem: String },
    #[error("{MODE_VAR}={value:?} is not one of off, observe, governed; fix or unset it")]
    Override { value: String },
    /// The protected configuration's floor cannot be read (a setgid install only).
    #[error("protected configuration {path}: {problem}")]
    Floor { path: String, problem: String },
}

#[derive(Deserialize)]
struct Snapshot {
    #[serde(default)]
    flags: Vec<Flag>,
}

#[derive(Deserialize)]
struct Flag {
    key: String,
    #[serde(default)]
    enabled: serde_json::Value,
}

impl Policy {
    /// Decide the policy from the environment, raised to the operator's floor in a protected
    /// install (`"governance"` in the protected configuration). The floor lives in a file the
    /// user cannot write, so neither a flags snapshot the agent rewrote (kill switch included) nor
    /// the environment can lower it (SECURITY.md).
    pub fn from_env(env: &dyn Env) -> Result<Policy, ModeError> {
        let policy = from_flags_and_override(env)?;
        match crate::config::protected_floor() {
            Ok(floor) => Ok(with_floor(policy, floor)),
            Err((path, problem)) => Err(ModeError::Floor { path, problem }),
        }
    }
}

/// Raise `policy` to `floor` (stricter only); a floor above off overrides the kill switch.
pub fn with_floor(mut policy: Policy, floor: Option<Mode>) -> Policy {
    let Some(floor) = floor.filter(|f| *f > Mode::Off) else {
        return policy;
    };
    if floor > policy.read_only || floor > policy.mutating || policy.kill_switch {
        policy.read_only = policy.read_only.max(floor);
        policy.mutating = policy.mutating.max(floor);
        policy.kill_switch = false;
        policy.reason = format!(
            "{}; raised to {} by the protected configuration's \"governance\" (no flags \
             snapshot can lower it)",
            policy.reason,
            floor.as_str()
        );
    }
    policy
}

fn from_flags_and_override(env: &dyn Env) -> Result<Policy, ModeError> {
    let flags = match env.first_value(&[FLAGS_PATH_VAR]) {
        None => Vec::new(),
        Some(path) => read_flags(&path)?,
    };
    // Maestro compares the snapshot's keys trimmed, so " key " counts as "key".
    let enabled = |key: &str| {
        flags
            .iter()
            .any(|f| f.key.trim() == key && f.enabled == serde_json::Value::Bool(true))
    };

    if enabled(FLAG_KILL_SWITCH) {
        return Ok(Policy {
            read_only: Mode::Off,
            mutating: Mode::Off,
            reason: format!("kill switch {FLAG_KILL_SWITCH} is on"),
            kill_switch: true,
            bridge_flag: false,
        });
    }
    let mut policy = if enabled(FLAG_BRIDGE) {
        Policy {
            read_only: Mode::Observe,
            mutating: Mode::Governed,
            reason: format!("flag {FLAG_BRIDGE}"),
            kill_switch: false,
            bridge_flag: true,
        }
    } else if enabled(FLAG_OBSERVE) {
        Policy {
            read_only: Mode::Observe,
            mutating: Mode::Observe,
            reason: format!("flag {FLAG_OBSERVE}"),
            kill_switch: false,
            bridge_flag: false,
        }
    } else {
        Policy {
            read_only: Mode::Off,
            mutating: Mode::Off,
            reason: "no governance flag is on".into(),
            kill_switch: false,
            bridge_flag: false,
        }
    };

    if let Some(value) = env.first_value(&[MODE_VAR]) {
        let forced = match value.to_ascii_lowercase().as_str() {
            "off" => Mode::Off,
            "observe" => Mode::Observe,
            "governed" => Mode::Governed,
            _ => return Err(ModeError::Override { value }),
        };
        // Stricter only: each class keeps the stronger of the two.
        if forced > policy.read_only || forced > policy.mutating {
            policy.read_only = policy.read_only.max(forced);
            policy.mutating = policy.mutating.max(forced);
            policy.reason = format!("{} raised by {MODE_VAR}={}", policy.reason, forced.as_str());
        } else if forced < policy.mutating {
            policy.reason = format!(
                "{} ({MODE_VAR}={} ignored: it cannot weaken governance)",
                policy.reason,
                forced.as_str()
            );
        }
    }
    Ok(policy)
}

/// The warning for a flags service configured without a snapshot file: Maestro may be
/// governing from remote flags while maestro-sh, seeing no snapshot, passes everything
/// through. `None` when there is nothing to say. Env lookups only (pass-through path).
pub fn remote_flags_problem(env: &dyn Env) -> Option<String> {
    let url = env.first_value(&[FLAGS_URL_VAR])?;
    if env.first_value(&[FLAGS_PATH_VAR]).is_some() {
        return None;
    }
    let url = crate::redact::redact(&url).text;
    Some(format!(
        "{FLAGS_URL_VAR}={url:?} is set but {FLAGS_PATH_VAR} is not: maestro-sh reads feature \
         flags only from a snapshot file and never calls a flags service, so commands run \
         ungoverned; set {FLAGS_PATH_VAR} to a snapshot of the flags (or {MODE_VAR}=governed)"
    ))
}

fn read_flags(path: &str) -> Result<Vec<Flag>, ModeError> {
    let fail = |problem: String| ModeError::Flags {
        path: path.to_string(),
        problem,
    };
    let text = crate::fsread::read_config(std::path::Path::new(path))
        .map_err(|e| fail(format!("cannot read the feature-flag snapshot: {e}")))?;
    let snapshot: Snapshot = serde_json::from_slice(&text)
        .map_err(|e| fail(format!("not a feature-flag snapshot ({e})")))?;
    Ok(snapshot.flags)
}

#[cfg(test)]
mod floor_tests {
    use super::*;

    fn killed() -> Policy {
        Policy {
            read_only: Mode::Off,
            mutating: Mode::Off,
            reason: "kill switch".into(),
            kill_switch: true,
            bridge_flag: false,
        }
    }

    #[test]
    fn a_floor_beats_the_kill_switch_and_only_raises() {
        let p = with_floor(killed(), Some(Mode::Governed));
        assert_eq!((p.read_only, p.mutating), (Mode::Governed, Mode::Governed));
        assert!(!p.kill_switch);
        assert!(p.reason.contains("governance"), "{}", p.reason);
        assert_eq!(with_floor(killed(), None), killed());
        assert_eq!(with_floor(killed(), Some(Mode::Off)), killed());
        let bridge = Policy {
            read_only: Mode::Observe,
            mutating: Mode::Governed,
            reason: "bridge".into(),
            kill_switch: false,
            bridge_flag: true,
        };
        let p = with_floor(bridge.clone(), Some(Mode::Observe));
        assert_eq!(p, bridge);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn with_flags(
        flags: &[(&str, serde_json::Value)],
        mode: Option<&str>,
    ) -> Result<Policy, ModeError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.json");
        let flags: Vec<_> = flags
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "enabled": v}))
            .collect();
        std::fs::write(
            &path,
            serde_json::json!({"schema_version": 1, "flags": flags}).to_string(),
        )
        .unwrap();
        let mut pairs = vec![(FLAGS_PATH_VAR.to_string(), path.display().to_string())];
        if let Some(m) = mode {
            pairs.push((MODE_VAR.to_string(), m.to_string()));
        }
        Policy::from_env(&MapEnv::from_pairs(pairs))
    }

    fn modes(p: Policy) -> (Mode, Mode) {
        (p.read_only, p.mutating)
    }

    #[test]
    fn table() {
        use serde_json::json;
        use Mode::*;
        let t = json!(true);
        type Case<'a> = (
            Vec<(&'a str, serde_json::Value)>,
            Option<&'a str>,
            (Mode, Mode),
        );
        let cases: Vec<Case> = vec![
            (vec![], None, (Off, Off)),
            (vec![(FLAG_OBSERVE, t.clone())], None, (Observe, Observe)),
            (vec![(FLAG_BRIDGE, t.clone())], None, (Observe, Governed)),
            (vec![(FLAG_BRIDGE, json!("true"))], None, (Off, Off)),
            (vec![(FLAG_BRIDGE, json!(1))], None, (Off, Off)),
            // Keys are compared trimmed, as Maestro does.
            (
                vec![(
                    " maestro.platform_runtime.tool_execution_bridge\n",
                    t.clone(),
                )],
                None,
                (Observe, Governed),
            ),
            (
                vec![(FLAG_BRIDGE, t.clone()), (FLAG_KILL_SWITCH, t.clone())],
                None,
                (Off, Off),
            ),
            (
                vec![(FLAG_KILL_SWITCH, t.clone())],
                Some("governed"),
                (Off, Off),
            ),
            (vec![], Some("governed"), (Governed, Governed)),
            (vec![], Some("observe"), (Observe, Observe)),
            (
                vec![(FLAG_BRIDGE, t.clone())],
                Some("off"),
                (Observe, Governed),
            ),
            (
                vec![(FLAG_BRIDGE, t.clone())],
                Some("observe"),
                (Observe, Governed),
            ),
            (
                vec![(FLAG_OBSERVE, t.clone())],
                Some("governed"),
                (Governed, Governed),
            ),
        ];
        for (flags, mode, want) in cases {
            assert_eq!(
                modes(with_flags(&flags, mode).unwrap()),
                want,
                "{flags:?} {mode:?}"
            );
        }
    }

    #[test]
    fn unreadable_inputs_fail_closed() {
        let err = Policy::from_env(&MapEnv::from_pairs([(
            FLAGS_PATH_VAR,
            "/nonexistent/flags.json",
        )]))
        .unwrap_err();
        assert!(err.to_string().contains(FLAGS_PATH_VAR));
        assert!(matches!(
            with_flags(&[], Some("loud")),
            Err(ModeError::Override { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "{not json").unwrap();
        let err = Policy::from_env(&MapEnv::from_pairs([(
            FLAGS_PATH_VAR,
            path.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(
            err.to_string().contains("not a feature-flag snapshot"),
            "{err}"
        );
    }

    #[test]
    fn a_flags_service_without_a_snapshot_is_named() {
        let env = MapEnv::from_pairs([(FLAGS_URL_VAR, "https://flags.example.com")]);
        let w = remote_flags_problem(&env).unwrap();
        assert!(
            w.contains(FLAGS_URL_VAR) && w.contains(FLAGS_PATH_VAR),
            "{w}"
        );
        assert!(Policy::from_env(&env).unwrap().is_off());
        assert_eq!(remote_flags_problem(&MapEnv::default()), None);
        let both = MapEnv::from_pairs([(FLAGS_URL_VAR, "https://f"), (FLAGS_PATH_VAR, "/x")]);
        assert_eq!(remote_flags_problem(&both), None);
    }

    #[test]
    fn nothing_set_is_off() {
        assert!(Policy::from_env(&MapEnv::default()).unwrap().is_off());
    }
}
