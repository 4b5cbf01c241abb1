//! Tailscale's control server as recorded beside the conformance corpus: the recordings of
//! headscale's repository that the corpus does not hold (older captures of the same
//! scenarios, March to April 2026, held-back `policytest`/`sshtest` scenarios, and the
//! `nodeattrs` scenarios of the corpus' own series that it leaves out), in
//! `testdata/captures/` (its README says where each came from and how it was converted).
//! Every case is compiled through the library and compared as `check.py` compares: a refused
//! policy must be refused with the recorded message (or fail its tests), an accepted one must
//! give each recorded node its recorded packet filter and SSH rules (the older recordings hold
//! no peers, so only those are compared; the `nodeattrs` ones are compared in full, cap maps
//! and peers too), and a policy with `tests` must pass them.
//!
//! `KNOWN` lists the cases aclc does not reproduce, each with the reason; the test fails when
//! one of them starts passing (take it off the list) or any other case fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use std::path::PathBuf;

use aclc_compiler::compile;
use aclc_testkit::corpus::{self, compare};
use serde_json::Value;

/// Cases aclc does not reproduce, and why.
const KNOWN: [(&str, &str); 3] = [
    (
        "ssh-a7-old",
        "check-mode action recorded as `unused-server-url/.../from/$SRC_NODE_ID/...` with \
         forwarding flags and a session duration: a placeholder form rewritten after capture \
         (the corpus' check actions, captured later, are `https://unused/machine/ssh/action/...`)",
    ),
    (
        "ssh-a8-old",
        "the same rewritten check-mode action as ssh-a7-old",
    ),
    (
        "ssh-f2-old",
        "the same rewritten check-mode action as ssh-a7-old",
    ),
];

fn cases() -> Vec<Value> {
    let dir = aclc_testkit::workspace_root().join("testdata/captures/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().map(|f| corpus::read_case(f)).collect()
}

/// What is wrong with aclc's answer to `case` (empty: reproduced).
fn run_case(case: &Value) -> Vec<String> {
    let inventory = corpus_cases::inventory(case);
    let (_, parsed) = corpus_cases::parse(case, &inventory);
    let expect = &case["expect"];
    let refused = expect["outcome"] == "rejected";
    let checked = match parsed {
        Ok(checked) => checked,
        Err(found) => {
            let error = expect["error"].as_str().unwrap_or_default();
            return match refused && found.0.iter().any(|d| d.message.contains(error)) {
                true => Vec::new(),
                false => vec![format!(
                    "refused ({:?}), recorded {}",
                    found.0.first().map(|d| &d.message),
                    expect
                )],
            };
        }
    };
    let compiled = compile(&checked.policy, &inventory);
    let tests_pass = aclc_compiler::run_tests(&checked.policy, &compiled).passed();
    if refused {
        return match expect["tests"] == "fail" && !tests_pass {
            true => Vec::new(),
            false => vec![format!("accepted, recorded {}", expect["error"])],
        };
    }
    if !tests_pass {
        return vec!["its tests fail, recorded as passing".to_string()];
    }
    compare::compare_nodes(corpus::category(case), expect, |name| {
        compiled
            .node(name)
            .map(|view| serde_json::to_value(view.to_wire()).unwrap())
    })
    .into_iter()
    .map(|(_, message)| message)
    .collect()
}

#[test]
fn recordings_beside_the_corpus() {
    let cases = cases();
    assert!(cases.len() >= 124, "only {} cases found", cases.len());
    let mut unexpected = Vec::new();
    for case in &cases {
        let id = corpus::id(case);
        let problems = run_case(case);
        let known = KNOWN.iter().any(|(k, _)| *k == id);
        match (problems.is_empty(), known) {
            (true, true) => unexpected.push(format!("{id} now passes: take it off KNOWN")),
            (false, false) => unexpected.push(format!("{id}: {problems:?}")),
            _ => {}
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
