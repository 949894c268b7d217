//! One Maestro tool call = one ToolExecution, also when Maestro's in-process bridge is on.
//!
//! When Maestro can reach Platform itself (its own token and the bridge flag), it governs a
//! Bash call *before* it spawns `$SHELL -c CMD`: ExecuteTool, an approval if Platform asks for
//! one, ResumeToolExecution, and only then the spawn. It does not export its tool call id, so
//! without this module maestro-sh opens a second execution with a step id of its own, and a
//! destructive command needs two approvals (platform-contract.md, section 9).
//!
//! Before asking Platform, a governed maestro-sh therefore looks (one ListToolExecutions call)
//! for the execution Maestro's bridge opened for this very call and, when one qualifies,
//! *adopts* it: its execution id and its step id (Maestro's tool call id, which then also
//! reaches nested shells and the sidecar). An execution qualifies only when every check holds:
//!
//! - it is RUNNING: Platform allowed it (directly, or after an approval and a resume). Maestro's
//!   bridge also runs on FAILED, CANCELLED or unknown states; those never qualify.
//! - it was opened by Maestro's governed bridge for a bash call: tool `maestro`/`bash`,
//!   capability `maestro.tool.bash` and, for a mutating command, `mutatesResource` (what our own
//!   request would name: Platform's policy may key on either, and an agent holding the agent
//!   credential could otherwise open a bridge-shaped execution under a capability its policy
//!   lets through, for us to adopt; SECURITY.md),
//!   `maestro_bridge_mode=governed`, `maestro_local_execution_authoritative=true`,
//!   `maestro_tool_family=bash`, a `maestro_tool_call_id` equal to its step id, and none of
//!   maestro-sh's own `maestro_sh_*` keys (another maestro-sh's execution is never adopted);
//! - same organization, workspace, agent and run as ours; the same session when we know ours;
//! - its `arguments.command` is byte for byte our sanitized command (both sides sanitize with
//!   Maestro's rules). A Platform whose answers carry no `arguments` never matches;
//! - its risk level is at least ours: if Maestro's simpler classifier under-rated the command,
//!   Platform's "allow" was for a lesser risk, so we ask Platform ourselves;
//! - it changed state within the window (`MAESTRO_SH_ATTACH_WINDOW_MS`, default 60 s): the
//!   bridge resumes or allows a call moments before it spawns the shell;
//! - a GetToolExecution right before running still says RUNNING for the same command, and no
//!   other maestro-sh on this machine adopted it (an `O_EXCL` claim file in the data dir).
//!
//! When nothing qualifies (or a lookup call fails) maestro-sh governs as before: the command
//! never runs on anything but a RUNNING execution that Platform itself reports.
//!
//! Recording stays with whoever opened the execution: Maestro's bridge records the tool
//! result (RecordToolExecutionOutput) once the shell exits, from the very text the model reads.
//! A record from us first would make Maestro's own record fail; a child execution would be the
//! second execution this module exists to avoid. The adopted ids go on the sidecar, where the
//! `tool_call.completed` event says `attached_to: "maestro_bridge"`.
//!
//! Cost: with `MAESTRO_SH_ATTACH=auto` (the default) the lookup happens only for governed
//! commands when the bridge flag is on in the flags snapshot (the flag that turns Maestro's
//! bridge on too). It is one List call, in addition to the ExecuteTool and Record a governed
//! command makes anyway. `on` looks for every governed command (Maestro's flags may come from
//! elsewhere), `off` never does, and `bridge` (the operator knows Maestro's own bridge is on)
//! looks like `on` and also leaves observe records to Maestro's bridge, which records every
//! observed call itself: otherwise a read-only call is recorded twice (no approval is involved,
//! but two executions). Pass-through and observe never look. When the caller gives
//! its tool call id (`MAESTRO_TOOL_CALL_ID`), only an execution for that step qualifies.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::PlatformConfig;
use crate::context::Context;
use crate::env::Env;
use crate::platform::Client;
use crate::wire::{self, ExecutionState, ToolExecution};

pub const ATTACH_VAR: &str = "MAESTRO_SH_ATTACH";
pub const ATTACH_WINDOW_VAR: &str = "MAESTRO_SH_ATTACH_WINDOW_MS";
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The capability our own ExecuteTool names (request.rs); an adopted execution must name it.
const BASH_CAPABILITY: &str = "maestro.tool.bash";
/// How many RUNNING bash executions one lookup reads.
const PAGE: u64 = 50;

/// The `MAESTRO_SH_ATTACH` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Auto,
    On,
    Off,
    /// The operator says Maestro's own bridge is on here (its own token and flags): look for
    /// every governed command, and leave observe records to the bridge, which records every
    /// observed call itself after the tool result (one execution per read-only call too).
    Bridge,
}

/// Why the setting cannot be used (names the variable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{ATTACH_VAR}={0:?} is not one of auto, on, off, bridge; fix or unset it")]
    Attach(String),
    #[error(
        "{ATTACH_WINDOW_VAR}={0:?} is not a number of milliseconds in 1..=3600000; fix or unset it"
    )]
    Window(String),
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct Want<'a> {
    pub organization_id: &'a str,
    pub workspace_id: &'a str,
    pub agent_id: &'a str,
    pub run_id: Option<&'a str>,
    /// The tool call id we were given (`MAESTRO_TOOL_CALL_ID`), if any: the bridge's execution
    /// must then be for that very call.
    pub step_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// The sanitized command (`arguments.command` of our own request).
    pub command: &'a str,
    /// Our risk level (`RISK_LEVEL_*`).
    pub risk_level: &'a str,
    /// Our command mutates (not read-only): the execution must say so too.
    pub mutates: bool,
    pub window: Duration,
}

/// The execution adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub execution_id: String,
    /// Maestro's tool call id (the execution's step id).
    pub step_id: String,
}

/// Read `MAESTRO_SH_ATTACH` and the window.
pub fn settings(env: &dyn Env) -> Result<(Setting, Duration), SettingError> {
    let setting = match env.first_value(&[ATTACH_VAR]) {
        None => Setting::Auto,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "auto" => Setting::Auto,
            "on" => Setting::On,
            "off" => Setting::Off,
            "bridge" => Setting::Bridge,
            _ => return Err(SettingError::Attach(v)),
        },
    };
    let window = match env.first_value(&[ATTACH_WINDOW_VAR]) {
        None => DEFAULT_WINDOW,
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if (1..=3_600_000).contains(&ms) => Duration::from_millis(ms),
            _ => return Err(SettingError::Window(v)),
        },
    };
    Ok((setting, window))
}

/// Whether to look at all, for a governed command.
pub fn should_look(setting: Setting, bridge_flag_on: impl FnOnce() -> bool) -> bool {
    match setting {
        Setting::Off => false,
        Setting::On | Setting::Bridge => true,
        Setting::Auto => bridge_flag_on(),
    }
}

/// How to look for Maestro's own execution, from the settings (read once, up front).
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// `MAESTRO_SH_ATTACH` (a bad value was a warning and reads as `auto`).
    pub setting: Setting,
    pub window: Duration,
    /// The flags snapshot turns Maestro's bridge on (what `auto` looks at).
    pub bridge_flag_on: bool,
    /// Where attachment claims are kept (the data dir).
    pub claims: Option<&'a Path>,
}

/// For a governed command: decide whether to look, and look, through `client` (the guardian
/// forked later builds a client of its own, so a connection this lookup leaves pooled is
/// ExecuteTool's to reuse, never the guardian's).
pub fn for_command(
    lookup: &Lookup<'_>,
    client: &Client,
    cfg: &PlatformConfig,
    ctx: &Context,
    risk_level: &str,
    mutates: bool,
    sanitized_command: &str,
) -> Option<Attached> {
    if !should_look(lookup.setting, || lookup.bridge_flag_on) {
        return None;
    }
    let want = Want {
        organization_id: &cfg.organization_id,
        workspace_id: &cfg.workspace_id,
        agent_id: &ctx.agent_id,
        run_id: ctx.agent_run_id.as_deref(),
        step_id: (!ctx.step_id_generated).then_some(ctx.step_id.as_str()),
        session_id: ctx.session_id.as_deref(),
        command: sanitized_command,
        risk_level,
        mutates,
        window: lookup.window,
    };
    find(client, cfg, &want, lookup.claims)
}

/// Look for Maestro's bridge execution of this call and adopt it; `None` when none qualifies
/// or Platform could not tell (the caller then governs as usual).
pub fn find(
    client: &Client,
    cfg: &PlatformConfig,
    want: &Want<'_>,
    claims: Option<&Path>,
) -> Option<Attached> {
    let req = wire::ListToolExecutionsRequest {
        workspace_id: Some(want.workspace_id.to_string()),
        organization_id: Some(want.organization_id.to_string()),
        run_id: want.run_id.map(str::to_owned),
        agent_id: Some(want.agent_id.to_string()),
        tool_namespace: Some("maestro".into()),
        tool_name: Some("bash".into()),
        state: Some(ExecutionState::Running.as_wire().into()),
        limit: Some(PAGE),
        offset: None,
    };
    let listed = client.list_tool_executions(&req).ok()?;
    let now = SystemTime::now();
    let mut candidates: Vec<(SystemTime, Attached)> = listed
        .executions
        .iter()
        .filter_map(|e| qualifies(e, want, now))
        .collect();
    // The most recently changed first: the bridge allowed or resumed it moments ago.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, a) in candidates {
        // Read it once more right before running: still RUNNING, still this command.
        let get = crate::decide::get_request(&cfg.into(), &a.execution_id, 0);
        let still = client
            .get_tool_execution(&get, Duration::ZERO)
            .is_ok_and(|got| {
                got.id == a.execution_id && qualifies(&got.raw, want, SystemTime::now()).is_some()
            });
        // Then claim it: two shells running the same command adopt one execution each.
        if still && claims.is_none_or(|dir| claim(dir, &a.execution_id)) {
            return Some(a);
        }
    }
    None
}

/// Claim `id` for this process: the first maestro-sh on this machine to create the file wins.
/// Claims older than a day are swept on the way (they are a few bytes each).
fn claim(dir: &Path, id: &str) -> bool {
    let dir = dir.join("attached");
    if std::fs::create_dir_all(&dir).is_err() {
        return true; // no place to claim: Platform's RUNNING state is still required
    }
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || id.starts_with('.')
    {
        return false;
    }
    sweep(&dir);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(id))
        .is_ok()
}

fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = Duration::from_secs(24 * 3600);
    for e in entries.flatten().take(256) {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Rank of a `RISK_LEVEL_*` name (unknown and unspecified: 0).
fn risk_rank(level: &str) -> u8 {
    match level {
        "RISK_LEVEL_LOW" => 1,
        "RISK_LEVEL_MEDIUM" => 2,
        "RISK_LEVEL_HIGH" => 3,
        "RISK_LEVEL_CRITICAL" => 4,
        _ => 0,
    }
}

/// The checks of the module doc on one execution; its last change time and ids when it passes.
pub fn qualifies(
    e: &ToolExecution,
    want: &Want<'_>,
    now: SystemTime,
) -> Option<(SystemTime, Attached)> {
    let id = e.id.as_deref().filter(|id| !id.trim().is_empty())?;
    let state = ExecutionState::parse(e.state.as_deref()?)?;
    if state != ExecutionState::Running {
        return None;
    }
    let tool = e.tool.as_ref()?;
    if tool.namespace != "maestro"
        || tool.name != "bash"
        || tool.capability != BASH_CAPABILITY
        || (want.mutates && !tool.mutates_resource)
    {
        return None;
    }
    let l = e.linkage.as_ref()?;
    if l.workspace_id.as_deref() != Some(want.workspace_id)
        || l.organization_id
            .as_deref()
            .is_some_and(|o| o != want.organization_id)
        || l.agent_id.as_deref() != Some(want.agent_id)
        || l.run_id.as_deref() != want.run_id
    {
        return None;
    }
    let step = l.step_id.as_deref().filter(|s| !s.trim().is_empty())?;
    if want.step_id.is_some_and(|ours| ours != step) {
        return None;
    }
    let m = e.metadata.as_ref()?;
    let meta = |k: &str| m.get(k).map(String::as_str);
    if meta("maestro_bridge_mode") != Some("governed")
        || meta("maestro_local_execution_authoritative") != Some("true")
        || meta("maestro_tool_family") != Some("bash")
        || meta("maestro_tool_call_id") != Some(step)
        || m.keys().any(|k| k.starts_with("maestro_sh_"))
    {
        return None;
    }
    if let Some(session) = want.session_id {
        if meta("maestro_session_id") != Some(session) {
            return None;
        }
    }
    if e.arguments.as_ref()?.command != want.command {
        return None;
    }
    if risk_rank(e.risk_level.as_deref()?) < risk_rank(want.risk_level) {
        return None;
    }
    let changed = e
        .updated_at
        .as_deref()
        .or(e.created_at.as_deref())
        .and_then(parse_rfc3339)?;
    let age = now
        .duration_since(changed)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .ok()?;
    if age > want.window {
        return None;
    }
    Some((
        changed,
        Attached {
            execution_id: id.to_string(),
            step_id: step.to_string(),
        },
    ))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (proto3 JSON Timestamps are always UTC with `Z`; an offset
/// of `+00:00` is accepted too). Anything else: `None`, and the execution does not qualify.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let body = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once(['T', 't'])?;
    let num = |x: &str| -> Option<u64> {
        (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let mut d = date.splitn(3, '-');
    let (y, mo, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if !frac.is_empty() && num(frac).is_none() {
        return None;
    }
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    let days = days_from_civil(i64::try_from(y).ok()?, mo as u32, day as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use crate::events::rfc3339;
    use std::collections::BTreeMap;

    fn want(now: SystemTime) -> (Want<'static>, SystemTime) {
        (
            Want {
                organization_id: "org",
                workspace_id: "ws",
                agent_id: "maestro",
                run_id: Some("run-1"),
                step_id: None,
                session_id: None,
                command: "rm -rf build",
                risk_level: "RISK_LEVEL_CRITICAL",
                mutates: true,
                window: Duration::from_secs(60),
            },
            now,
        )
    }

    fn bridge_execution(now: SystemTime) -> ToolExecution {
        let metadata: BTreeMap<String, String> = [
            ("maestro_bridge_mode", "governed"),
            ("maestro_tool_call_id", "toolu_1"),
            ("maestro_session_id", "sess-1"),
            ("maestro_tool_family", "bash"),
            ("maestro_local_execution_authoritative", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ToolExecution {
            id: Some("te_1".into()),
            state: Some("TOOL_EXECUTION_STATE_RUNNING".into()),
            linkage: Some(wire::Linkage {
                workspace_id: Some("ws".into()),
                organization_id: Some("org".into()),
                agent_id: Some("maestro".into()),
                run_id: Some("run-1".into()),
                step_id: Some("toolu_1".into()),
                ..Default::default()
            }),
            tool: Some(wire::ToolRef {
                namespace: "maestro".into(),
                name: "bash".into(),
                capability: "maestro.tool.bash".into(),
                mutates_resource: true,
                ..Default::default()
            }),
            arguments: Some(wire::Arguments {
                command: "rm -rf build".into(),
            }),
            risk_level: Some("RISK_LEVEL_CRITICAL".into()),
            metadata: Some(metadata),
            updated_at: Some(rfc3339(now - Duration::from_secs(2))),
            ..Default::default()
        }
    }

    #[test]
    fn a_bridge_execution_qualifies_and_each_check_can_fail_it() {
        let now = SystemTime::now();
        let (w, now) = want(now);
        let good = bridge_execution(now);
        let (_, a) = qualifies(&good, &w, now).expect("qualifies");
        assert_eq!(a.execution_id, "te_1");
        assert_eq!(a.step_id, "toolu_1");

        type Edit = fn(&mut ToolExecution);
        let edits: Vec<(&str, Edit)> = vec![
            ("waiting", |e| {
                e.state = Some("TOOL_EXECUTION_STATE_WAITING_APPROVAL".into())
            }),
            ("failed", |e| {
                e.state = Some("TOOL_EXECUTION_STATE_FAILED".into())
            }),
            ("bare state", |e| e.state = Some("RUNNING".into())),
            ("other command", |e| {
                e.arguments.as_mut().unwrap().command = "rm -rf  build".into()
            }),
            ("no arguments", |e| e.arguments = None),
            ("lower risk", |e| {
                e.risk_level = Some("RISK_LEVEL_HIGH".into())
            }),
            ("other workspace", |e| {
                e.linkage.as_mut().unwrap().workspace_id = Some("x".into())
            }),
            ("other org", |e| {
                e.linkage.as_mut().unwrap().organization_id = Some("x".into())
            }),
            ("other run", |e| e.linkage.as_mut().unwrap().run_id = None),
            ("other agent", |e| {
                e.linkage.as_mut().unwrap().agent_id = Some("x".into())
            }),
            ("observe", |e| {
                e.metadata
                    .as_mut()
                    .unwrap()
                    .insert("maestro_bridge_mode".into(), "observe".into());
            }),
            ("opened by maestro-sh", |e| {
                e.metadata
                    .as_mut()
                    .unwrap()
                    .insert("maestro_sh_version".into(), "0.1.0".into());
            }),
            ("tool call id differs", |e| {
                e.metadata
                    .as_mut()
                    .unwrap()
                    .insert("maestro_tool_call_id".into(), "x".into());
            }),
            ("mcp", |e| e.tool.as_mut().unwrap().namespace = "mcp".into()),
            ("other capability", |e| {
                e.tool.as_mut().unwrap().capability = "maestro.tool.read".into()
            }),
            ("not mutating", |e| {
                e.tool.as_mut().unwrap().mutates_resource = false
            }),
            ("stale", |e| {
                e.updated_at = Some(rfc3339(SystemTime::now() - Duration::from_secs(600)))
            }),
            ("no time", |e| e.updated_at = None),
            ("bad time", |e| e.updated_at = Some("yesterday".into())),
        ];
        for (name, edit) in edits {
            let mut e = good.clone();
            edit(&mut e);
            assert!(qualifies(&e, &w, now).is_none(), "{name} must not qualify");
        }
        // Session: checked when we know ours.
        let w2 = Want {
            session_id: Some("sess-2"),
            ..w.clone()
        };
        assert!(qualifies(&good, &w2, now).is_none());
        let w3 = Want {
            session_id: Some("sess-1"),
            ..w.clone()
        };
        assert!(qualifies(&good, &w3, now).is_some());
        // A given tool call id must be the execution's.
        let w5 = Want {
            step_id: Some("toolu_2"),
            ..w.clone()
        };
        assert!(qualifies(&good, &w5, now).is_none());
        let w6 = Want {
            step_id: Some("toolu_1"),
            ..w.clone()
        };
        assert!(qualifies(&good, &w6, now).is_some());
        // A higher recorded risk than ours is fine.
        let w4 = Want {
            risk_level: "RISK_LEVEL_HIGH",
            ..w
        };
        assert!(qualifies(&good, &w4, now).is_some());
        // A read-only command of ours may adopt a read-only execution.
        let mut read_only = good.clone();
        read_only.tool.as_mut().unwrap().mutates_resource = false;
        let w7 = Want {
            mutates: false,
            ..w4
        };
        assert!(qualifies(&read_only, &w7, now).is_some());
    }

    #[test]
    fn timestamps_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        assert_eq!(
            parse_rfc3339("2026-11-18T11:06:40.123456789+00:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789))
        );
        for bad in [
            "",
            "2026-11-18",
            "2026-11-18T11:06:40",
            "2026-13-01T00:00:00Z",
            "2026-11-18T11:06:40+02:00",
            "x-y-zTa:b:cZ",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_and_when_to_look() {
        assert_eq!(
            settings(&MapEnv::default()).unwrap(),
            (Setting::Auto, DEFAULT_WINDOW)
        );
        assert!(settings(&MapEnv::from_pairs([(ATTACH_VAR, "maybe")]))
            .unwrap_err()
            .to_string()
            .contains(ATTACH_VAR));
        assert!(settings(&MapEnv::from_pairs([(ATTACH_WINDOW_VAR, "0")])).is_err());
        assert!(should_look(Setting::Auto, || true));
        assert!(!should_look(Setting::Auto, || false));
        assert!(should_look(Setting::On, || false));
        assert!(should_look(Setting::Bridge, || false));
        let bridge = MapEnv::from_pairs([(ATTACH_VAR, "Bridge")]);
        assert_eq!(settings(&bridge).unwrap().0, Setting::Bridge);
        assert!(!should_look(Setting::Off, || true));
    }

    #[test]
    fn claims_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        assert!(claim(dir.path(), "te_1"));
        assert!(!claim(dir.path(), "te_1"));
        assert!(claim(dir.path(), "te_2"));
        assert!(!claim(dir.path(), "../te_3"));
        assert!(!claim(dir.path(), ""));
    }
}
