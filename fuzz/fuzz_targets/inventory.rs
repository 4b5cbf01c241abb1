//! Fuzz target: any bytes as an inventory load or are refused without a panic; an accepted
//! inventory gives its policy context and warnings, and compiles the example policy.
#![no_main]

use aclc_compiler::{compile, Inventory};
use aclc_policy::{Options, Source};
use libfuzzer_sys::fuzz_target;

const POLICY: &str = include_str!("../../testdata/examples/policy.hujson");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inventory = match Inventory::from_json(text) {
        Ok(inventory) => inventory,
        Err(e) => {
            // The error says something, and counts what it did not say.
            assert!(!e.to_string().is_empty());
            let _ = e.more();
            return;
        }
    };
    let _ = inventory.warnings();
    let options = Options {
        context: inventory.policy_context(),
        ..Options::default()
    };
    let source = Source::new("policy.hujson", POLICY);
    // The example policy may be refused in this tailnet's context (its users' domains).
    let Ok(checked) = aclc_policy::parse(&source, &options) else {
        return;
    };
    let compiled = compile(&checked.policy, &inventory);
    for view in compiled.nodes() {
        serde_json::to_string(&view.to_wire()).unwrap();
    }
    let _ = aclc_compiler::run_tests(&checked.policy, &compiled);
});
