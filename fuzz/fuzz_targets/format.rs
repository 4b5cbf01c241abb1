//! Fuzz target: formatting never panics, and whatever formats formats again to itself and
//! still stands for the same value.
#![no_main]

use aclc_policy::{hujson, source_from_bytes, Limits, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let (source, diagnostics) = source_from_bytes("fuzz.hujson", data, &limits);
    if !diagnostics.is_empty() {
        return;
    }
    let Ok(once) = hujson::format(&source, &limits) else {
        return;
    };
    let again = Source::new("formatted.hujson", once.clone());
    let twice = hujson::format(&again, &limits).expect("formatted text formats");
    assert_eq!(twice, once, "not idempotent");
    let (before, _) = hujson::parse(&source, &limits);
    let (after, _) = hujson::parse(&again, &limits);
    assert_eq!(
        before.map(|d| d.root.to_json()),
        after.map(|d| d.root.to_json()),
        "the value changed"
    );
});
