//! maestro-sh: a drop-in bash that asks EvalOps Platform before running an agent's command.
//!
//! The flow, one module per arrow: [`argv`] → [`context`] → classify → decide → [`realshell`] /
//! [`supervise`] → [`events`].

pub mod argv;
pub mod config;
pub mod context;
pub mod debug;
pub mod entry;
pub mod env;
pub mod events;
pub mod grant;
pub mod mode;
pub mod outbox;
pub mod paths;
pub mod realshell;
pub mod supervise;
pub mod wire {}
