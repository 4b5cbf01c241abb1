//! Fuzz target: any policy and inventory the crates accept compile without a panic, twice to
//! the same output, and every node's packet filter reads back through the node-side matcher
//! without a skipped entry.
//!
//! Input: policy text, NUL, inventory JSON (see `aclc_fuzz::split`); without a NUL the
//! example inventory is used.
#![no_main]

use aclc_compiler::matcher::{LocalNetworks, Matcher, ParsedRules};
use aclc_compiler::{compile, Compiled};
use libfuzzer_sys::fuzz_target;

/// Every node's whole wire output, in node order.
fn wire(compiled: &Compiled) -> Vec<String> {
    compiled
        .nodes()
        .map(|view| serde_json::to_string(&view.to_wire()).unwrap())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((_, policy, inventory)) = aclc_fuzz::load(data) else {
        return;
    };
    let first = compile(&policy, &inventory);
    let second = compile(&policy, &inventory);
    assert_eq!(wire(&first), wire(&second), "compile is not deterministic");

    for view in first.nodes() {
        let json = serde_json::to_string(view.packet_filter_rules()).unwrap();
        let parsed = ParsedRules::from_json(&json)
            .unwrap_or_else(|e| panic!("{}: filter refused by the matcher: {e:?}", view.name()));
        assert!(
            parsed.problems().is_empty(),
            "{}: the matcher skips entries of its filter: {:?}",
            view.name(),
            parsed.problems()
        );
        let local = LocalNetworks {
            addresses: view.addrs(),
            routes: view.primary_routes().to_vec(),
        };
        let _ = Matcher::new(&parsed, &local);
    }
});
