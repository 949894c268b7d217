//! Platform text made inert: one line, no escape or control character, bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use maestro_sh::outcome::{inert, MAX_PLATFORM_TEXT};

fuzz_target!(|text: &str| {
    let t = inert(text);
    assert!(t.chars().count() <= MAX_PLATFORM_TEXT, "{t:?}");
    assert!(!t.chars().any(|c| c.is_control()), "{t:?}");
});
