//! Every input of a run, read once and up front, then one plan shared by real runs and
//! `--explain` (ripgrep's flags → one settled value).
//!
//! Two stages, so the pass-through path stays a few environment lookups:
//! - [`ModeInputs`] says whether anything can be governed at all: the feature-flag snapshot,
//!   `MAESTRO_SH_MODE`, the protected configuration's floor and the local policy file. Read on
//!   every run, before the command is even parsed.
//! - [`Settings`] is everything else an observed or governed run uses (Platform configuration,
//!   approval wait, decisions fd, sidecar target, data dir, record wait, attachment). Read only
//!   when the plan is to observe or govern, and always before the first Platform call, so a bad
//!   value refuses before anything is sent (an approval request opened and then abandoned
//!   because a later setting was bad would be a trap for a reviewer).
//!
//! [`plan`] turns both and the command's classification into a [`Plan`]. It performs no
//! Platform call and starts no process.

use std::path::PathBuf;
use std::time::Duration;

use crate::attach;
use crate::classify::Classification;
use crate::config::{ConfigError, PlatformConfig};
use crate::decide::approval::WaitSettings;
use crate::decide::decisions;
use crate::env::Env;
use crate::events::SidecarTarget;
use crate::local_policy::{self, Action, LocalPolicy, PolicyError, Verdict};
use crate::mode::{self, Mode, ModeError, Policy};
use crate::outcome::{Outcome, Refusal};

/// The inputs that decide whether a command is governed (stage 1).
#[derive(Debug)]
pub struct ModeInputs {
    /// The flags snapshot and `MAESTRO_SH_MODE`, raised to the protected floor.
    pub policy: Result<Policy, ModeError>,
    /// The local policy file (`MAESTRO_SH_POLICY_FILE`); `Ok(None)` when unset.
    pub local: Result<Option<LocalPolicy>, PolicyError>,
}

impl ModeInputs {
    /// Read the mode inputs. With no flags snapshot, override or policy file set this is a few
    /// environment lookups and no file.
    pub fn read(env: &dyn Env) -> ModeInputs {
        ModeInputs {
            policy: mode::Policy::from_env(env),
            local: local_policy::load(env),
        }
    }

    /// True when no command can be observed or governed, whatever it is: the flags leave
    /// everything off and no policy file is set. The caller then passes through without
    /// parsing the command.
    pub fn governs_nothing(&self) -> bool {
        matches!(&self.policy, Ok(p) if p.is_off()) && matches!(self.local, Ok(None))
    }

    /// The first input that cannot be read, as the refusal it means: governance may be on and
    /// we cannot tell, so we fail closed.
    pub fn problem(&self) -> Option<Refusal> {
        self.readable_policy().err()
    }

    /// The flags policy, once every mode input could be read.
    fn readable_policy(&self) -> Result<&Policy, Refusal> {
        let message = match (&self.policy, &self.local) {
            (Ok(policy), Ok(_)) => return Ok(policy),
            (Err(e), _) => e.to_string(),
            (_, Err(e)) => e.to_string(),
        };
        Err(Refusal::new(Outcome::Misconfigured, message))
    }

    /// The strongest local policy rule matching `c`, if any.
    pub fn local_verdict(&self, c: &Classification) -> Option<Verdict> {
        self.local.as_ref().ok()?.as_ref()?.evaluate(c)
    }

    /// The mode for a command classified as `c`, or the refusal that stops it before anything
    /// is sent (an unreadable input, a local `deny` rule).
    pub fn mode_for(&self, c: &Classification) -> Result<Mode, Refusal> {
        let policy = self.readable_policy()?;
        let verdict = self.local_verdict(c);
        if let Some(v) = verdict.as_ref().filter(|v| v.decision == Action::Deny) {
            return Err(Refusal::new(
                Outcome::Denied,
                format!("local policy rule \"{}\": {}", v.rule, v.reason),
            ));
        }
        Ok(policy.for_command(c.read_only, verdict.map(|v| v.decision)))
    }
}

/// Everything an observed or governed run reads from its environment (stage 2).
#[derive(Debug)]
pub struct Settings {
    /// Where Platform is and how to reach it (config.rs).
    pub platform: Result<PlatformConfig, ConfigError>,
    /// The approval wait's timeout and heartbeat and the adoption window.
    pub wait: Result<WaitSettings, String>,
    /// `MAESTRO_SH_DECISIONS_FD`: Maestro's approval UI, when it is wired (checked, not yet
    /// read). A bad value is a warning: decisions then come from Platform only.
    pub decisions_fd: Result<Option<std::os::fd::RawFd>, String>,
    /// Where sidecar events go.
    pub sidecar: SidecarTarget,
    /// Our own files (outbox, adoption records, grant key); `None` when no home is known.
    pub data_dir: Option<PathBuf>,
    /// How long the caller may wait for the record after the command ended.
    pub record_wait: Duration,
    /// `MAESTRO_SH_ATTACH` and its window. A bad value is a warning: governance happens
    /// either way, only the lookup of Maestro's own execution is at stake.
    pub attach: Result<(attach::Setting, Duration), attach::SettingError>,
}

impl Settings {
    /// Read every stage-2 input. Never fails: each problem is kept with its input, and
    /// [`plan`] decides what it means for the mode at hand.
    pub fn read(env: &dyn Env) -> Settings {
        Settings {
            platform: PlatformConfig::load(env),
            wait: WaitSettings::read(env),
            decisions_fd: decisions::fd_from_env(env),
            sidecar: SidecarTarget::read(env),
            data_dir: crate::paths::data_dir(env),
            record_wait: crate::record::record_wait(env),
            attach: attach::settings(env),
        }
    }

    /// Observe: the record is Maestro's bridge's to make (`MAESTRO_SH_ATTACH=bridge`).
    pub fn observe_left_to_bridge(&self) -> bool {
        matches!(self.attach, Ok((attach::Setting::Bridge, _)))
    }
}

/// What to do with a command.
#[derive(Debug)]
pub enum Plan {
    /// Execute the real shell untouched: nothing governs this command.
    PassThrough,
    /// Refuse before anything is sent to Platform.
    Refuse(Refusal),
    /// Observe or govern it.
    Run(Box<Run>),
}

/// An observed or governed run, with its settings checked for that mode.
#[derive(Debug)]
pub struct Run {
    /// [`Mode::Observe`] or [`Mode::Governed`].
    pub mode: Mode,
    /// The flags snapshot turns Maestro's own ToolExecution bridge on (attach.rs `auto`).
    pub bridge_flag_on: bool,
    pub settings: Settings,
    /// Problems that do not stop the run, to show once as warnings.
    pub warnings: Vec<String>,
}

/// Plan a command classified as `c`: its mode from `inputs`, and for a mode other than off the
/// stage-2 settings (read by `read_settings`, called at most once) checked for that mode.
///
/// Governed fails closed: an unusable Platform configuration or approval setting refuses
/// (`misconfigured`) before the first call. Observe never blocks the command: the same
/// problems are warnings, and nothing is recorded when Platform cannot be called.
pub fn plan(
    inputs: &ModeInputs,
    c: &Classification,
    read_settings: impl FnOnce() -> Settings,
) -> Plan {
    let mode = match inputs.mode_for(c) {
        Ok(Mode::Off) => return Plan::PassThrough,
        Ok(mode) => mode,
        Err(r) => return Plan::Refuse(r),
    };
    let settings = read_settings();
    let mut warnings = Vec::new();
    match (&settings.platform, mode) {
        (Err(e), Mode::Governed) => {
            return Plan::Refuse(Refusal::new(Outcome::Misconfigured, e.to_string()))
        }
        (Err(e), _) if !settings.observe_left_to_bridge() => {
            warnings.push(format!("observe mode cannot record: {e}"))
        }
        _ => {}
    }
    if mode == Mode::Governed {
        if let Err(e) = &settings.wait {
            return Plan::Refuse(Refusal::new(Outcome::Misconfigured, e.clone()));
        }
        if let Err(e) = &settings.decisions_fd {
            warnings.push(format!("{e}; waiting for a decision from Platform only"));
        }
        if let Err(e) = &settings.attach {
            warnings.push(format!("{e}; not looking for Maestro's own execution"));
        }
    }
    let bridge_flag_on = matches!(&inputs.policy, Ok(p) if p.bridge_flag);
    Plan::Run(Box::new(Run {
        mode,
        bridge_flag_on,
        settings,
        warnings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use std::io::Write;

    const BRIDGE: &str =
        r#"{"flags":[{"key":"maestro.platform_runtime.tool_execution_bridge","enabled":true}]}"#;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    /// A complete Platform configuration on loopback, plus `extra`.
    fn env(extra: &[(&str, &str)]) -> MapEnv {
        let mut e = MapEnv::from_pairs([
            ("MAESTRO_EVALOPS_BASE_URL", "http://127.0.0.1:9"),
            ("MAESTRO_EVALOPS_ACCESS_TOKEN", "tok"),
            ("MAESTRO_EVALOPS_ORG_ID", "org"),
            ("MAESTRO_EVALOPS_WORKSPACE_ID", "ws"),
        ]);
        for (k, v) in extra {
            e.0.insert(k.to_string(), v.to_string());
        }
        e
    }

    fn plan_for(env: &MapEnv, command: &str) -> Plan {
        let inputs = ModeInputs::read(env);
        plan(&inputs, &crate::classify::classify(command), || {
            Settings::read(env)
        })
    }

    fn refusal(p: Plan) -> Refusal {
        match p {
            Plan::Refuse(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn run(p: Plan) -> Run {
        match p {
            Plan::Run(r) => *r,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_pass_through_without_reading_settings() {
        let e = env(&[]);
        let inputs = ModeInputs::read(&e);
        assert!(inputs.governs_nothing());
        let p = plan(&inputs, &crate::classify::classify("rm -rf x"), || {
            panic!("settings read for a pass-through")
        });
        assert!(matches!(p, Plan::PassThrough));
    }

    #[test]
    fn bridge_flag_observes_reads_and_governs_writes() {
        let flags = file(BRIDGE);
        let e = env(&[("EVALOPS_FEATURE_FLAGS_PATH", flags.path().to_str().unwrap())]);
        assert_eq!(run(plan_for(&e, "ls -la")).mode, Mode::Observe);
        let governed = run(plan_for(&e, "rm -rf build"));
        assert_eq!(governed.mode, Mode::Governed);
        assert!(governed.bridge_flag_on);
        assert!(governed.warnings.is_empty(), "{:?}", governed.warnings);
    }

    #[test]
    fn a_bad_wait_setting_refuses_governed_before_any_call_but_not_observe() {
        let e = env(&[
            ("MAESTRO_SH_MODE", "governed"),
            ("MAESTRO_SH_APPROVAL_TIMEOUT_MS", "soon"),
        ]);
        let r = refusal(plan_for(&e, "rm -rf build"));
        assert_eq!(r.outcome, Outcome::Misconfigured);
        assert!(
            r.reason.contains("MAESTRO_SH_APPROVAL_TIMEOUT_MS"),
            "{}",
            r.reason
        );

        let e = env(&[
            ("MAESTRO_SH_MODE", "observe"),
            ("MAESTRO_SH_HEARTBEAT_MS", "0"),
        ]);
        assert_eq!(run(plan_for(&e, "rm -rf build")).mode, Mode::Observe);
    }

    #[test]
    fn a_bad_adoption_window_refuses_governed() {
        let e = env(&[
            ("MAESTRO_SH_MODE", "governed"),
            ("MAESTRO_SH_ADOPT_WINDOW_MS", "-1"),
        ]);
        let r = refusal(plan_for(&e, "true"));
        assert!(
            r.reason.contains("MAESTRO_SH_ADOPT_WINDOW_MS"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn missing_platform_config_refuses_governed_and_warns_in_observe() {
        let mut e = env(&[("MAESTRO_SH_MODE", "governed")]);
        e.0.remove("MAESTRO_EVALOPS_BASE_URL");
        let r = refusal(plan_for(&e, "touch x"));
        assert_eq!(r.outcome, Outcome::Misconfigured);
        assert!(r.reason.contains("no Platform URL"), "{}", r.reason);

        e.0.insert("MAESTRO_SH_MODE".into(), "observe".into());
        let observed = run(plan_for(&e, "touch x"));
        assert_eq!(observed.mode, Mode::Observe);
        assert_eq!(observed.warnings.len(), 1, "{:?}", observed.warnings);
        assert!(observed.warnings[0].starts_with("observe mode cannot record"));

        // Left to Maestro's bridge: nothing of ours to record, nothing to warn about.
        e.0.insert("MAESTRO_SH_ATTACH".into(), "bridge".into());
        assert!(run(plan_for(&e, "touch x")).warnings.is_empty());
    }

    #[test]
    fn bad_side_settings_are_warnings_not_refusals() {
        let e = env(&[
            ("MAESTRO_SH_MODE", "governed"),
            ("MAESTRO_SH_DECISIONS_FD", "two"),
            ("MAESTRO_SH_ATTACH", "sometimes"),
        ]);
        let r = run(plan_for(&e, "make"));
        assert_eq!(r.mode, Mode::Governed);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("MAESTRO_SH_DECISIONS_FD"));
        assert!(r.warnings[1].contains("MAESTRO_SH_ATTACH"));
    }

    #[test]
    fn unreadable_mode_inputs_refuse() {
        let e = env(&[("MAESTRO_SH_MODE", "loud")]);
        assert!(!ModeInputs::read(&e).governs_nothing());
        assert!(refusal(plan_for(&e, "true"))
            .reason
            .contains("MAESTRO_SH_MODE"));

        let e = env(&[("EVALOPS_FEATURE_FLAGS_PATH", "/nonexistent/flags.json")]);
        let r = refusal(plan_for(&e, "true"));
        assert_eq!(r.outcome, Outcome::Misconfigured);
        assert!(
            r.reason.contains("EVALOPS_FEATURE_FLAGS_PATH"),
            "{}",
            r.reason
        );

        let e = env(&[("MAESTRO_SH_POLICY_FILE", "/nonexistent/policy.json")]);
        assert!(refusal(plan_for(&e, "true"))
            .reason
            .contains("MAESTRO_SH_POLICY_FILE"));
    }

    #[test]
    fn local_rules_deny_and_raise_but_never_beat_the_kill_switch() {
        let policy = file(
            r#"{"rules":[{"prefix":["git","push"],"decision":"deny","reason":"CI pushes"},
                        {"prefix":["terraform"],"decision":"govern"}]}"#,
        );
        let path = policy.path().to_str().unwrap();
        let e = env(&[("MAESTRO_SH_POLICY_FILE", path)]);
        let r = refusal(plan_for(&e, "cd x && git push origin main"));
        assert_eq!(r.outcome, Outcome::Denied);
        assert!(r.reason.contains("CI pushes"), "{}", r.reason);
        assert_eq!(run(plan_for(&e, "terraform plan")).mode, Mode::Governed);
        assert!(matches!(plan_for(&e, "ls"), Plan::PassThrough));

        let kill = file(
            r#"{"flags":[{"key":"platform.kill_switches.maestro.platform_runtime_bridge","enabled":true}]}"#,
        );
        let e = env(&[
            ("MAESTRO_SH_POLICY_FILE", path),
            ("EVALOPS_FEATURE_FLAGS_PATH", kill.path().to_str().unwrap()),
        ]);
        assert!(matches!(plan_for(&e, "terraform plan"), Plan::PassThrough));
        // A deny rule still refuses: it is ours, not Platform's.
        assert_eq!(refusal(plan_for(&e, "git push")).outcome, Outcome::Denied);
    }
}
