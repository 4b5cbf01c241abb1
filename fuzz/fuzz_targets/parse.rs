//! Fuzz target: any bytes through `source_from_bytes`, the HuJSON parser and the whole policy
//! pipeline must never panic, and the parser must accept everything `serde_json` accepts.
#![no_main]

use aclc_policy::{hujson, source_from_bytes, Limits, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let (source, decoding) = source_from_bytes("fuzz.hujson", data, &limits);
    let (doc, diagnostics) = hujson::parse(&source, &limits);

    // No document means an error says why; every span is a valid slice of the text.
    assert!(doc.is_some() || diagnostics.iter().any(|d| d.is_error()));
    for d in decoding.iter().chain(&diagnostics) {
        let (start, end) = (d.span.start as usize, d.span.end as usize);
        assert!(source.text().get(start..end).is_some(), "bad span {d:?}");
        // House style (no final period), but for Tailscale's words quoting a literal that
        // ends with one (`invalid literal: s.`).
        let quoted = d.message.starts_with("invalid literal: ");
        assert!(
            !d.message.is_empty() && (!d.message.ends_with('.') || quoted),
            "{d:?}"
        );
        assert!(!d.message.contains('\n'), "{d:?}");
    }

    // Whatever serde_json reads, the parser reads the same (duplicate keys aside).
    if let Ok(theirs) = serde_json::from_slice::<serde_json::Value>(data) {
        assert!(decoding.is_empty());
        assert!(
            diagnostics.iter().all(|d| d.code == "aclc::duplicate_key"),
            "serde_json accepts what the parser refuses: {diagnostics:?}"
        );
        let doc = doc.as_ref().expect("a document");
        if diagnostics.is_empty() {
            assert_eq!(doc.root.to_json(), theirs);
        }
    } else if let Some(doc) = &doc {
        let _ = doc.root.to_json();
    }

    // The whole pipeline: lowering and validation of whatever parsed.
    let _ = aclc_policy::parse(&source, &Options::default());
});
