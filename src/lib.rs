//! maestro-sh: a drop-in bash that asks EvalOps Platform before running an agent's command.
//!
//! The flow, one module per arrow: [`argv`] → [`settings`] (every input read once, and the one
//! [`settings::plan`]) → [`classify`] / [`subject`] → [`decide`] (ExecuteTool and the approval
//! wait) → [`supervise`] / [`realshell`] (run) → [`record`] → [`events`] (report). [`entry`]
//! composes them. The Platform client ([`platform`], [`wire`]) knows nothing of shells; the
//! classifier nothing of HTTP.

pub mod adopt;
pub mod argv;
pub mod attach;
pub mod classify;
pub mod config;
pub mod context;
pub mod debug;
pub mod decide;
pub mod entry;
pub mod env;
pub mod events;
pub mod fsread;
pub mod grant;
pub mod guardian;
pub mod harden;
pub mod local_policy;
pub mod mode;
pub mod outbox;
pub mod outcome;
pub mod paths;
pub mod platform;
pub mod realshell;
pub mod record;
pub mod redact;
pub mod request;
pub mod settings;
pub mod status;
pub mod subject;
pub mod supervise;
pub mod tls;
pub mod wire;
pub mod worldfacts;
