//! Maestro's context for one tool call, read from env vars with the contract's precedence
//! lists (platform-contract.md, section 4).

use crate::env::Env;

/// The variable carrying Maestro's tool call id (the ToolExecution `stepId`).
pub const TOOL_CALL_ID_VAR: &str = "MAESTRO_TOOL_CALL_ID";

pub const ORGANIZATION_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID",
    "MAESTRO_TOOL_EXECUTION_ORGANIZATION_ID",
    "MAESTRO_EVALOPS_ORG_ID",
    "EVALOPS_ORGANIZATION_ID",
    "MAESTRO_ENTERPRISE_ORG_ID",
    // Maestro main after the recorded commit (platform-contract.md, section 9): appended, so
    // the recorded precedence of the names above is unchanged.
    "EVALOPS_ORG_ID",
    "MAESTRO_PLATFORM_ORGANIZATION_ID",
];
pub const WORKSPACE_VARS: &[&str] = &[
    "TOOL_EXECUTION_SERVICE_WORKSPACE_ID",
    "MAESTRO_TOOL_EXECUTION_WORKSPACE_ID",
    "MAESTRO_REMOTE_RUNNER_WORKSPACE_ID",
    "MAESTRO_EVALOPS_WORKSPACE_ID",
    "EVALOPS_WORKSPACE_ID",
    "MAESTRO_WORKSPACE_ID",
    // Maestro's Rust Platform client (section 9), appended.
    "MAESTRO_PLATFORM_WORKSPACE_ID",
];
/// When no workspace variable is set, Maestro's Platform client uses the organization id as the
/// workspace id, read from these variables only (its default organization list; the
/// ToolExecution-specific organization variables are not consulted for this fallback).
pub const WORKSPACE_FALLBACK_VARS: &[&str] = &[
    "MAESTRO_EVALOPS_ORG_ID",
    "EVALOPS_ORGANIZATION_ID",
    "MAESTRO_ENTERPRISE_ORG_ID",
    // Joins Maestro's default organization list in its newer code (section 9), appended.
    "EVALOPS_ORG_ID",
];

/// The workspace id as Maestro resolves it: [`WORKSPACE_VARS`], else [`WORKSPACE_FALLBACK_VARS`].
pub fn workspace_id(env: &dyn Env) -> Option<String> {
    env.first_value(WORKSPACE_VARS)
        .or_else(|| env.first_value(WORKSPACE_FALLBACK_VARS))
}
const WORKSPACE_ROOT_VARS: &[&str] = &["MAESTRO_WORKSPACE_ROOT", "WORKSPACE_ROOT"];
const REPOSITORY_ROOT_VARS: &[&str] = &[
    "MAESTRO_REPOSITORY_ROOT",
    "MAESTRO_REPO_ROOT",
    "GITHUB_WORKSPACE",
];
const REPOSITORY_VARS: &[&str] = &[
    "MAESTRO_GIT_REPOSITORY",
    "GITHUB_REPOSITORY",
    "CI_PROJECT_PATH",
];
const BRANCH_VARS: &[&str] = &[
    "MAESTRO_GIT_BRANCH",
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "VERCEL_GIT_COMMIT_REF",
];
const COMMIT_VARS: &[&str] = &[
    "MAESTRO_GIT_COMMIT",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "VERCEL_GIT_COMMIT_SHA",
];
const REMOTE_RUNNER_SESSION_VARS: &[&str] = &[
    "MAESTRO_REMOTE_RUNNER_SESSION_ID",
    "MAESTRO_RUNNER_SESSION_ID",
];

/// Everything we know about the tool call, before looking at the command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Context {
    pub organization_id: Option<String>,
    pub workspace_id: Option<String>,
    pub session_id: Option<String>,
    pub agent_run_id: Option<String>,
    /// Maestro's tool call id, or one we made (see `step_id_generated`).
    pub step_id: String,
    /// True when `MAESTRO_TOOL_CALL_ID` was absent and we made the id; it is then exported to
    /// the command so nested shells see the same step.
    pub step_id_generated: bool,
    pub agent_id: String,
    pub objective_id: Option<String>,
    pub actor_id: Option<String>,
    pub surface: String,
    pub channel_id: Option<String>,
    pub cwd: Option<String>,
    pub workspace_root: Option<String>,
    pub repository_root: Option<String>,
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub remote_runner_session_id: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// `tool.version` as Maestro reports it: `npm_package_version` (set when Maestro runs
    /// under an npm script, inherited by its shell), else absent. maestro-sh's own version is
    /// the metadata key `maestro_sh_version`.
    pub tool_version: Option<String>,
}

impl Context {
    /// Read the context. `new_id` makes a step id when Maestro did not give one.
    pub fn from_env(env: &dyn Env, new_id: impl FnOnce() -> String) -> Context {
        let (step_id, step_id_generated) = match env.first_value(&[TOOL_CALL_ID_VAR]) {
            Some(id) => (id, false),
            None => (new_id(), true),
        };
        let workspace_root = env.first_value(WORKSPACE_ROOT_VARS);
        let cwd = env.first_value(&["MAESTRO_CWD"]).or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|d| d.to_str().map(str::to_owned))
        });
        Context {
            organization_id: env.first_value(ORGANIZATION_VARS),
            workspace_id: workspace_id(env),
            session_id: env.first_value(&["MAESTRO_SESSION_ID"]),
            agent_run_id: env.first_value(&["MAESTRO_AGENT_RUN_ID"]),
            step_id,
            step_id_generated,
            // Maestro: MAESTRO_AGENT_ID, then npm's package name (set when it runs under an npm
            // script, and inherited by its shell), then "maestro".
            agent_id: env
                .first_value(&["MAESTRO_AGENT_ID", "npm_package_name"])
                .unwrap_or_else(|| "maestro".into()),
            objective_id: env.first_value(&["MAESTRO_OBJECTIVE_ID"]),
            actor_id: env.first_value(&["MAESTRO_ACTOR_ID"]),
            surface: env
                .first_value(&["MAESTRO_SURFACE"])
                .unwrap_or_else(|| "maestro".into()),
            channel_id: env.first_value(&["MAESTRO_CHANNEL_ID"]),
            cwd,
            repository_root: env
                .first_value(REPOSITORY_ROOT_VARS)
                .or_else(|| workspace_root.clone()),
            workspace_root,
            repository: env.first_value(REPOSITORY_VARS),
            branch: env.first_value(BRANCH_VARS),
            commit: env.first_value(COMMIT_VARS),
            remote_runner_session_id: env.first_value(REMOTE_RUNNER_SESSION_VARS),
            traceparent: env.first_value(&["TRACEPARENT"]),
            tracestate: env.first_value(&["TRACESTATE"]),
            tool_version: env.first_value(&["npm_package_version"]),
        }
    }

    /// `<session id or "session">:<step id>`.
    pub fn correlation_id(&self) -> String {
        format!(
            "{}:{}",
            self.session_id.as_deref().unwrap_or("session"),
            self.step_id
        )
    }

    /// `maestro:<step id>`: one Maestro tool call is one ToolExecution, however often it is sent.
    pub fn idempotency_key(&self) -> String {
        format!("maestro:{}", self.step_id)
    }
}

/// `N` random bytes. Without an entropy source, the time and pid repeated: still unique per
/// process and moment, which is all ids need.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let seed: Vec<u8> = nanos
            .to_le_bytes()
            .into_iter()
            .chain(std::process::id().to_le_bytes())
            .collect();
        for (b, s) in bytes.iter_mut().zip(seed.iter().cycle()) {
            *b = *s;
        }
    }
    bytes
}

/// Lower-case hex of `bytes` (digests, MACs, ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random id with `prefix` (`call_…` for step ids).
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = random_bytes();
    format!("{prefix}{}", hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn precedence_and_defaults() {
        let env = MapEnv::from_pairs([
            ("EVALOPS_ORGANIZATION_ID", "org-low"),
            ("MAESTRO_EVALOPS_ORG_ID", "org-high"),
            ("MAESTRO_WORKSPACE_ID", "ws"),
            ("MAESTRO_TOOL_CALL_ID", " call-1 "),
            ("MAESTRO_SESSION_ID", "sess"),
            ("GITHUB_WORKSPACE", "/gh"),
            ("WORKSPACE_ROOT", "/ws"),
            ("MAESTRO_CWD", "/here"),
        ]);
        let ctx = Context::from_env(&env, || unreachable!());
        assert_eq!(ctx.organization_id.as_deref(), Some("org-high"));
        assert_eq!(ctx.workspace_id.as_deref(), Some("ws"));
        assert_eq!(ctx.step_id, "call-1");
        assert!(!ctx.step_id_generated);
        assert_eq!(ctx.agent_id, "maestro");
        assert_eq!(ctx.surface, "maestro");
        assert_eq!(ctx.repository_root.as_deref(), Some("/gh"));
        assert_eq!(ctx.workspace_root.as_deref(), Some("/ws"));
        assert_eq!(ctx.cwd.as_deref(), Some("/here"));
        assert_eq!(ctx.correlation_id(), "sess:call-1");
        assert_eq!(ctx.idempotency_key(), "maestro:call-1");
    }

    #[test]
    fn newer_names_come_after_the_recorded_ones() {
        let org = |pairs: &[(&str, &str)]| {
            Context::from_env(&MapEnv::from_pairs(pairs.iter().copied()), || "s".into())
        };
        let c = org(&[
            ("EVALOPS_ORG_ID", "o-new"),
            ("npm_package_version", "1.2.3"),
        ]);
        assert_eq!(c.organization_id.as_deref(), Some("o-new"));
        // Maestro's default organization list doubles as the workspace.
        assert_eq!(c.workspace_id.as_deref(), Some("o-new"));
        assert_eq!(c.tool_version.as_deref(), Some("1.2.3"));
        let c = org(&[
            ("MAESTRO_PLATFORM_ORGANIZATION_ID", "o-rust"),
            ("EVALOPS_ORG_ID", "o-new"),
            ("MAESTRO_ENTERPRISE_ORG_ID", "o-old"),
            ("MAESTRO_PLATFORM_WORKSPACE_ID", "w-rust"),
            ("MAESTRO_WORKSPACE_ID", "w-old"),
        ]);
        assert_eq!(c.organization_id.as_deref(), Some("o-old"));
        assert_eq!(c.workspace_id.as_deref(), Some("w-old"));
        let c = org(&[
            ("MAESTRO_PLATFORM_ORGANIZATION_ID", "o-rust"),
            ("EVALOPS_ORG_ID", "o-new"),
            ("MAESTRO_PLATFORM_WORKSPACE_ID", "w-rust"),
        ]);
        assert_eq!(c.organization_id.as_deref(), Some("o-new"));
        assert_eq!(c.workspace_id.as_deref(), Some("w-rust"));
        assert_eq!(c.tool_version, None);
        // The recorded lists keep their order; the new names are appended.
        assert_eq!(
            &ORGANIZATION_VARS[..5],
            &[
                "TOOL_EXECUTION_SERVICE_ORGANIZATION_ID",
                "MAESTRO_TOOL_EXECUTION_ORGANIZATION_ID",
                "MAESTRO_EVALOPS_ORG_ID",
                "EVALOPS_ORGANIZATION_ID",
                "MAESTRO_ENTERPRISE_ORG_ID",
            ]
        );
        assert_eq!(
            WORKSPACE_VARS.last(),
            Some(&"MAESTRO_PLATFORM_WORKSPACE_ID")
        );
        assert_eq!(
            crate::config::TOKEN_VARS.last(),
            Some(&"MAESTRO_PLATFORM_ACCESS_TOKEN")
        );
    }

    #[test]
    fn generated_step_id() {
        let ctx = Context::from_env(&MapEnv::default(), || new_id("call_"));
        assert!(ctx.step_id_generated);
        assert!(ctx.step_id.starts_with("call_") && ctx.step_id.len() == 29);
        assert_eq!(ctx.correlation_id(), format!("session:{}", ctx.step_id));
        assert_ne!(new_id("x"), new_id("x"));
    }

    #[test]
    fn repository_root_falls_back_to_workspace_root() {
        let ctx = Context::from_env(
            &MapEnv::from_pairs([("MAESTRO_WORKSPACE_ROOT", "/w")]),
            || "s".into(),
        );
        assert_eq!(ctx.repository_root.as_deref(), Some("/w"));
    }

    #[test]
    fn workspace_falls_back_to_default_organization_vars_and_agent_to_npm_name() {
        let ctx = Context::from_env(
            &MapEnv::from_pairs([
                ("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", "org-te"),
                ("MAESTRO_ENTERPRISE_ORG_ID", "org-ent"),
                ("npm_package_name", "@evalops/maestro"),
            ]),
            || "s".into(),
        );
        assert_eq!(ctx.organization_id.as_deref(), Some("org-te"));
        assert_eq!(ctx.workspace_id.as_deref(), Some("org-ent"));
        assert_eq!(ctx.agent_id, "@evalops/maestro");
        let only_te = MapEnv::from_pairs([("TOOL_EXECUTION_SERVICE_ORGANIZATION_ID", "o")]);
        assert_eq!(workspace_id(&only_te), None);
    }
}
