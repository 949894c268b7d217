//! All integration tests, one test binary: each module is one feature, each drives the real
//! binaries as processes.

mod support;

mod approval;
mod bats_parity;
mod boundary;
mod classify;
mod classify_kinds;
mod classify_props;
mod faults;
mod fuzz;
mod governed;
mod maestro;
mod passthrough;
mod process;
mod recursion;
mod redact;
mod redteam;
mod supervisor;
