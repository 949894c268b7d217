// Helpers shared by the test modules; not every module uses every helper.
#![allow(dead_code)]

pub mod approval;
pub mod expect;
pub mod platform;
pub mod protected;
pub mod serve;
pub mod shell;
