//! Fuzz target: `aclc diff` on any accepted policy against the example policy never panics; a
//! policy against itself changes nothing (access and semantics); and what one direction gains
//! the other loses; and skipping the nodes no changed rule reaches reports exactly what
//! comparing every node does.
//!
//! Input: as `compile` (policy text, NUL, inventory JSON; the example inventory without a NUL).
#![no_main]

use aclc_compiler::diff::{access_diff, AccessDiff, DiffOptions, Side};
use aclc_compiler::{try_compile, Compiled};
use aclc_policy::model::Policy;
use aclc_policy::{Limits, Options, Source};
use libfuzzer_sys::fuzz_target;

const EXAMPLE: &str = include_str!("../../testdata/examples/policy.hujson");

fn side<'a>(source: &'a Source, policy: &'a Policy, compiled: &'a Compiled) -> Side<'a> {
    Side {
        policy,
        source,
        compiled,
    }
}

fn json(d: &AccessDiff) -> [serde_json::Value; 4] {
    let v = serde_json::to_value(d).unwrap();
    [
        v["network"].clone(),
        v["ssh"].clone(),
        v["peers"].clone(),
        v["capabilities"].clone(),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((source, policy, inventory)) = aclc_fuzz::load(data) else {
        return;
    };
    let limits = Limits::default();
    // The semantic diff against itself is empty.
    if let (Some(doc), _) = aclc_policy::hujson::parse(&source, &limits) {
        assert!(aclc_policy::diff::diff(&doc, &source, &doc, &source).is_empty());
    }
    let Ok(compiled) = try_compile(&policy, &inventory) else {
        return;
    };
    let options = DiffOptions::default();
    let me = side(&source, &policy, &compiled);
    assert!(
        access_diff(me, me, &options).is_empty(),
        "diff(P, P) is not empty"
    );
    let example_source = Source::new("example.hujson", EXAMPLE);
    let opts = Options {
        context: inventory.policy_context(),
        ..Options::default()
    };
    let Ok(example) = aclc_policy::parse(&example_source, &opts) else {
        return;
    };
    let Ok(example_compiled) = try_compile(&example.policy, &inventory) else {
        return;
    };
    let other = side(&example_source, &example.policy, &example_compiled);
    let forward = access_diff(other, me, &options);
    let backward = access_diff(me, other, &options);
    let mut full = DiffOptions::default();
    full.exhaustive = true;
    assert_eq!(
        json(&forward),
        json(&access_diff(other, me, &full)),
        "the fast path differs from comparing every node"
    );
    let (f, b) = (json(&forward), json(&backward));
    for (x, y) in f.iter().zip(&b) {
        assert_eq!(
            x["gained"], y["lost"],
            "gains one way are not losses the other"
        );
        assert_eq!(
            x["lost"], y["gained"],
            "losses one way are not gains the other"
        );
    }
});
