//! The redactor on any text: no panic, never a marker inside another, idempotent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use maestro_sh::redact::{redact, redact_message, sanitize_command};

fuzz_target!(|text: &str| {
    let s = sanitize_command(text);
    // Marker-like text in the input is kept verbatim (a fuzzer finding: `[REDACTED:<key:0`
    // then reads as a marker around ours); the property is about markers we make.
    let visible: String = text.chars().filter(|c| !c.is_control() || *c == '\t' || *c == '\n' || *c == '\r').collect();
    let marker_in_input = visible.contains("[REDACTED");
    let mut rest = if marker_in_input { "" } else { s.text.as_str() };
    while let Some(i) = rest.find("[REDACTED:") {
        let after = &rest[i + 10..];
        let close = after.find(']').unwrap_or(after.len());
        assert!(!after[..close].contains('['), "nested marker: {:?}", s.text);
        rest = after;
    }
    let once = redact(text);
    assert_eq!(redact(&once.text).text, once.text);
    let m = redact_message(text);
    assert_eq!(redact_message(&m.text).text, m.text);
});
