// Helpers shared by the test modules; not every module uses every helper.
#![allow(dead_code)]

pub mod platform;
pub mod shell;
