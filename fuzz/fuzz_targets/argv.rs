//! The argv model on any arguments (NUL-separated bytes; the first byte picks the name).
#![no_main]
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let name = ["bash", "sh", "maestro-sh", "-bash", "rbash"][usize::from(pick) % 5];
    let args: Vec<OsString> = rest
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    let _ = maestro_sh::argv::parse(name.as_ref(), &args, pick & 0x80 != 0);
});
