//! Fuzz target: the policy's `tests` and `sshTests` run against the compiled tailnet without a
//! panic, and every verdict can be described and serialised. What `check_test_shapes` reports
//! without an inventory fails with this one too (it claims no inventory can change it).
//!
//! Input: policy text, NUL, inventory JSON (see `aclc_fuzz::split`); without a NUL the
//! example inventory is used.
#![no_main]

use aclc_compiler::{check_test_shapes, compile, run_tests};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((source, policy, inventory)) = aclc_fuzz::load(data) else {
        return;
    };
    let compiled = compile(&policy, &inventory);
    let report = run_tests(&policy, &compiled);
    for result in &report.results {
        let _ = result.message(&source);
    }
    if !report.passed() {
        assert!(report.failures().next().is_some());
        let _ = report.refusal_message(&source);
    }
    serde_json::to_string(&report).unwrap();
    for shape in check_test_shapes(&policy).results {
        // The same test fails (at that assertion, or as a whole when its source already
        // fails with this inventory).
        let failed = report
            .results
            .iter()
            .any(|r| r.kind == shape.kind && r.test == shape.test && !r.passed);
        assert!(
            failed,
            "fails without an inventory but not with one: {}",
            shape.message(&source)
        );
    }
});
