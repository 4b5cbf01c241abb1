//! Golden-corpus harness for the compiler library: every accepted case of the `acl`, `routes`
//! and `grant` categories goes through `aclc_policy::parse` and `aclc_compiler::compile`, and
//! each recorded node is compared with the normalisation of `check.py` (`compare_node`).
//!
//! The ratchet `testdata/conformance/compiler-lib.passing` lists case ids that must keep
//! passing; `ACLC_UPDATE_RATCHET=1 cargo test -p aclc-compiler --test corpus_compile` adds newly
//! passing ids (it never removes any). Refused cases are the policy crate's concern and are
//! skipped. This is the library-level view, handy for debugging without the binary; the
//! scored harness is `cli/tests/conformance.rs` (ratchet `compile.passing`), which drives
//! `aclc compile` on every case the way `check.py` does.
//!
//! The same run also checks `auto_approved_routes` against the recorded approvals, which are
//! the control plane's own answer (except in cases whose route state changed mid-capture).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use std::collections::{BTreeMap, BTreeSet};

use aclc_compiler::compile;
use aclc_testkit::corpus::{self, compare, Ratchet};
use serde_json::Value;

const CATEGORIES: [&str; 3] = ["acl", "routes", "grant"];

/// The accepted cases of our categories, sorted by id.
fn cases() -> Vec<Value> {
    corpus::cases(&CATEGORIES)
        .into_iter()
        .filter(|case| case["expect"]["outcome"] == "accepted")
        .collect()
}

/// Parse, compile and compare every captured node as `check.py`'s `compare_node` does.
fn run_case(case: &Value) -> Result<(), Vec<String>> {
    let inventory = corpus_cases::inventory(case);
    let (_, parsed) = corpus_cases::parse(case, &inventory);
    let checked = parsed.map_err(|d| {
        let first: Vec<String> = d.0.iter().take(3).map(|d| d.message.clone()).collect();
        vec![format!("policy refused: {first:?}")]
    })?;
    let compiled = compile(&checked.policy, &inventory);
    let problems = compare::compare_nodes(corpus::category(case), &case["expect"], |name| {
        compiled
            .node(name)
            .map(|view| serde_json::to_value(view.to_wire()).unwrap())
    });
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_iter().map(|(_, message)| message).collect())
    }
}

#[test]
fn compile_ratchet() {
    let cases = cases();
    assert!(cases.len() > 400, "only {} cases found", cases.len());
    let mut per_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut passing = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let id = corpus::id(case).to_string();
        let category = corpus::category(case).to_string();
        let entry = per_category.entry(category).or_default();
        entry.1 += 1;
        match run_case(case) {
            Ok(()) => {
                entry.0 += 1;
                passing.insert(id);
            }
            Err(problems) => failures.push((id, problems)),
        }
    }
    for (category, (ok, total)) in &per_category {
        println!("{category:12} {ok:4}/{total:<4} passed");
    }
    for (id, problems) in &failures {
        println!("FAIL {id}");
        for p in problems.iter().take(4) {
            println!("    {p}");
        }
    }

    let ratchet = Ratchet::open("compiler-lib.passing");
    let regressed = ratchet.regressions(&passing);
    ratchet.report_and_update(&passing);
    assert!(
        regressed.is_empty(),
        "cases in the ratchet no longer pass: {regressed:?}"
    );
}

#[test]
fn auto_approvers_reproduce_recorded_approvals() {
    let mut mismatches = Vec::new();
    for case in cases() {
        if !compare::is_empty(&case["expect"]["route_state_inconsistent"]) {
            continue;
        }
        let inventory = corpus_cases::inventory(&case);
        let (_, parsed) = corpus_cases::parse(&case, &inventory);
        let Ok(checked) = parsed else { continue };
        let approved = aclc_compiler::auto_approved_routes(&checked.policy, &inventory);
        for node in inventory.nodes() {
            let mut want: Vec<String> = node
                .approved_routes
                .iter()
                .map(ToString::to_string)
                .collect();
            let mut got: Vec<String> = approved
                .get(&node.name)
                .map(|r| r.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            want.sort();
            got.sort();
            if want != got {
                mismatches.push(format!(
                    "{} {}: want {want:?}, got {got:?}",
                    case["id"], node.name
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
