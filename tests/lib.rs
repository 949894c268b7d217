//! All integration tests, one test binary: each module is one feature, each drives the real
//! binaries as processes.

mod support;

mod approval;
mod classify;
mod faults;
mod fuzz;
mod governed;
mod passthrough;
mod recursion;
mod redact;
mod supervisor;
