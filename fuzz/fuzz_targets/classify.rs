//! The classifier on any text: no panic; text that does not parse is never read-only.
#![no_main]
use libfuzzer_sys::fuzz_target;
use maestro_sh::classify::{classify, classify_script};

fuzz_target!(|text: &str| {
    // Deeper text is never parsed (subject.rs MAX_PAREN_DEPTH: the parser backtracks
    // exponentially on deep unclosed subshells, found by this target).
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 16 {
            return;
        }
    }
    let c = classify(text);
    if c.parse_error.is_some() {
        assert!(!c.read_only, "{text:?}");
    }
    assert!(!classify_script(Some(text)).read_only);
});
