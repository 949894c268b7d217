//! Command classification: is this bash text read-only, and how risky is it?
//!
//! The text is parsed as bash with `brush-parser` and the whole tree is walked (lists,
//! pipelines, compound commands, functions, substitutions in any word, here-documents,
//! redirections). Each simple command is normalised — wrappers such as `env`, `sudo` or `xargs`
//! stripped, paths resolved to the program name, nested shells and `eval` re-parsed — and judged
//! against a curated allowlist of read-only programs and subcommand shapes. Everything not on
//! the allowlist is mutating. The classifier never fails: text it cannot parse or fully
//! understand is mutating (HIGH), never read-only.
//!
//! It knows nothing about HTTP or modes; `policy` layers a local rules file on top.

mod builtins;
mod critical;
pub mod options;
mod programs;
mod rules;
mod sed;
pub mod tables;
mod walk;

pub use walk::{nesting, plain_for_every_shell, MAX_NESTING};

#[doc(hidden)]
pub use options::Spec;

/// Which shell reads the top-level text: `bash`, or the system `sh` (dash on Debian) when
/// maestro-sh runs as `sh`. Only plain text reads the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Bash,
    Sh,
}

/// What the classifier needs to know about the world, asked only when a command needs it
/// (the classifier itself reads no files, environment or network). Implemented by the caller
/// (`subject.rs`); answers may be cached there.
pub trait Facts {
    /// Could git, run with its working directory at `dir` (relative to the caller's cwd, or
    /// absolute; `"."` is the cwd), start a program named by its effective configuration or
    /// environment — `core.fsmonitor`, `core.pager`/`pager.*`, `diff.external`,
    /// `diff.*.textconv`/`command`, `filter.*`, `gpg.*`, `GIT_EXTERNAL_DIFF`, ...?
    /// `Some(false)` only when known not to; `None` when unknown (then git is not read-only).
    fn git_config_runs_program(&self, dir: &str) -> Option<bool>;

    /// Could kubectl or helm start a program named by the kubeconfig in effect (`$KUBECONFIG`
    /// or `~/.kube/config`): an `exec` credential plugin or an `auth-provider`?
    fn kube_config_runs_program(&self) -> Option<bool> {
        None
    }
}

/// Knows nothing: every fact is unknown, so nothing that depends on one is read-only.
pub struct NoFacts;

impl Facts for NoFacts {
    fn git_config_runs_program(&self, _dir: &str) -> Option<bool> {
        None
    }
}

/// A world where configuration names no programs (tests, benchmarks).
pub struct CleanConfig;

impl Facts for CleanConfig {
    fn git_config_runs_program(&self, _dir: &str) -> Option<bool> {
        Some(false)
    }

    fn kube_config_runs_program(&self) -> Option<bool> {
        Some(false)
    }
}

/// Risk levels as Platform names them (platform-contract.md, section 2). Bash uses LOW, HIGH
/// and CRITICAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    /// The wire name, e.g. `RISK_LEVEL_HIGH`.
    pub fn as_wire(self) -> &'static str {
        match self {
            Risk::Low => "RISK_LEVEL_LOW",
            Risk::Medium => "RISK_LEVEL_MEDIUM",
            Risk::High => "RISK_LEVEL_HIGH",
            Risk::Critical => "RISK_LEVEL_CRITICAL",
        }
    }
}

/// The verdict on one simple command after normalisation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandVerdict {
    /// The program that runs (after wrappers are stripped and paths resolved), or a
    /// description such as `<computed>` when it is not known before run time.
    pub program: String,
    /// The words as written (unquoted where static; raw source where computed).
    pub argv: Vec<String>,
    pub read_only: bool,
    pub risk: Risk,
    /// Why, in a few words.
    pub reason: String,
}

/// The verdict on a whole command text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Classification {
    /// True only when every part is known and on the read-only allowlist.
    pub read_only: bool,
    /// The highest risk of any part; LOW iff read-only.
    pub risk: Risk,
    /// Every simple command found, in walk order (nested ones included).
    pub commands: Vec<CommandVerdict>,
    /// Findings that are not a single simple command's verdict (redirections, parse problems,
    /// pipeline shapes such as `curl | sh`).
    pub reasons: Vec<String>,
    /// The parser's complaint when the text is not valid bash.
    pub parse_error: Option<String>,
}

impl Classification {
    /// Unknown code: mutating, HIGH, with `reason`.
    pub fn opaque(reason: impl Into<String>) -> Classification {
        Classification {
            read_only: false,
            risk: Risk::High,
            commands: Vec::new(),
            reasons: vec![reason.into()],
            parse_error: None,
        }
    }
}

/// Classify a `-c` command text as bash, judging the text alone: the world is assumed to hold
/// no configuration that names programs ([`CleanConfig`]), so this answers "is the *text*
/// read-only". maestro-sh itself never relies on that assumption: `subject.rs` calls
/// [`classify_with`] with facts it has checked (`worldfacts.rs`). Never panics; unparseable
/// text is mutating HIGH with `parse_error` set.
pub fn classify(text: &str) -> Classification {
    classify_with(text, Dialect::Bash, &CleanConfig)
}

thread_local! {
    /// Set while this thread classifies: a panic inside the parser prints nothing.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wrap the panic hook once so that it stays silent on a thread in [`QUIET_PANICS`].
fn quiet_panics_install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// Classify text read by `dialect`, with `facts` answering questions about the world (use
/// [`NoFacts`] when nothing can be checked: then nothing that depends on a fact is read-only).
///
/// The parser is a third-party crate that may `unwrap` on input nobody tried; a panic inside
/// it must become "not understood" (governed as mutating), not an abort that leaves the user
/// without the one-line refusal. (The release profile unwinds for this reason.)
pub fn classify_with(text: &str, dialect: Dialect, facts: &dyn Facts) -> Classification {
    // Silence the panic message of this thread only, for the duration: the verdict carries it
    // instead. (Swapping the process-wide hook would also swallow other threads' panics.)
    quiet_panics_install();
    QUIET_PANICS.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        walk::classify_text(text, dialect, facts)
    }));
    QUIET_PANICS.with(|q| q.set(false));
    match result {
        Ok(c) => c,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let mut c = Classification::opaque(format!(
                "the bash parser failed on this text ({what}); governed as unknown code"
            ));
            c.parse_error = Some(format!("parser panicked: {what}"));
            c
        }
    }
}

/// Classify a script file or a script on stdin. A script is unknown code governed as one
/// command: `None` (unread: too large, a pipe, unreadable) is mutating HIGH; `Some(text)` is
/// classified so its contents can raise the risk (e.g. to CRITICAL), but the result is never
/// read-only, because what runs is a file that can change between reading and running.
pub fn classify_script(text: Option<&str>) -> Classification {
    let Some(text) = text else {
        return Classification::opaque("runs a script whose content is not known: unknown code");
    };
    let mut c = classify(text);
    c.read_only = false;
    c.risk = c.risk.max(Risk::High);
    c.reasons
        .push("a script runs as one unit of unknown code; never read-only".into());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_never_read_only() {
        let c = classify_script(Some("ls"));
        assert!(!c.read_only);
        assert_eq!(c.risk, Risk::High);
        let c = classify_script(Some("rm -rf /"));
        assert_eq!(c.risk, Risk::Critical);
        let c = classify_script(None);
        assert!(!c.read_only && c.risk == Risk::High);
    }

    #[test]
    fn deferred_evaluation_is_never_read_only() {
        for text in [
            "test -v 'a[$(touch p)]'",
            "[ -v 'a[$(touch p)]' ]",
            "[[ -v 'a[$(touch p)]' ]]",
            "printf -v 'a[$(touch p)]' x",
            "let 'a[$(touch p)]=1'",
            "read 'a[$(touch p)]' <<< hi",
            "declare 'a[$(touch p)]=1'",
            "echo '`touch p`'",
            "x='$(touch p)'; echo ${x@P}",
            "x=\"a[\\$(touch p)]\"; echo ${!x}",
            "d='$'; x=\"a[${d}(touch p)]\"; echo $((x))",
            "d='$'; x=\"a[${d}(touch p)]\"; echo $[x]",
            "d='$'; x=\"a[${d}(touch p)]\"; (( x ))",
            "d='$'; x=\"a[${d}(touch p)]\"; [[ $x -eq 1 ]]",
            "d='$'; x=\"a[${d}(touch p)]\"; [[ x -lt 1 ]]",
            "d='$'; x=\"a[${d}(touch p)]\"; test -v \"$x\"",
            "d='$'; x=\"a[${d}(touch p)]\"; printf -v \"$x\" y",
            "d='$'; x=\"a[${d}(touch p)]\"; echo ${a[x]} ${s:x}",
            "d='$'; x=\"a[${d}(touch p)]\"; b[x]=1",
            "d='$'; x=\"a[${d}(touch p)]\"; b=([x]=1)",
            "declare -i y; y=x",
            "let x",
        ] {
            let c = classify(text);
            assert!(!c.read_only, "{text}: {c:?}");
        }
        // Its risk is what it hides.
        assert_eq!(classify("test -v 'a[$(rm -rf /)]'").risk, Risk::Critical);
        for text in [
            "echo $((1+2))",
            "ls ${HOME:-/tmp}",
            "a=(1 2); echo ${a[@]} ${#a[@]} ${a[0]}",
            "[[ 3 -gt 2 ]]",
            "test -v HOME",
            "read -r line < /dev/null",
            "b=([0]=1 [1]=2)",
        ] {
            let c = classify(text);
            assert!(c.read_only, "{text}: {c:?}");
        }
    }

    #[test]
    fn attached_option_values_that_run_commands_are_governed() {
        for (text, risk) in [
            ("strace -o'|rm -rf /' ls", Risk::Critical),
            ("strace -fo'!rm -rf /' ls", Risk::Critical),
            ("ltrace --output='|rm -rf /' ls", Risk::Critical),
            ("strace -oout ls", Risk::High),
            ("XDG_CONFIG_HOME=/tmp/x git status", Risk::High),
            (
                "X='rm -rf /' git --config-env=core.fsmonitor=X status",
                Risk::High,
            ),
        ] {
            let c = classify(text);
            assert!(!c.read_only && c.risk == risk, "{text}: {c:?}");
        }
        assert!(classify("strace -f -c ls").read_only);
    }

    #[test]
    fn wire_names() {
        assert_eq!(Risk::Critical.as_wire(), "RISK_LEVEL_CRITICAL");
        assert!(Risk::Low < Risk::High);
    }
}
