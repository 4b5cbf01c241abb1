//! `aclc fmt` never changes what a policy means: for every conformance case, the formatted
//! policy gets the same verdict (accepted or refused, with the same diagnostic codes) and,
//! when accepted, compiles to exactly the same output for every node, and its tests give the
//! same results (issue 11: "fmt then check on every corpus policy changes no verdict and no
//! compile output").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use aclc_compiler::{compile, run_tests};
use aclc_policy::hujson::format;
use aclc_policy::{Limits, Source};
use aclc_testkit::corpus;

#[test]
fn formatting_changes_no_verdict_and_no_output() {
    let mut compared = 0;
    let mut compiled_nodes = 0;
    for case in corpus::all_cases() {
        let id = corpus::id(&case).to_string();
        let inventory = corpus_cases::inventory(&case);
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let original = Source::new("policy.hujson", corpus::policy_text(&case));
        let Ok(formatted_text) = format(&original, &Limits::default()) else {
            // Not well-formed HuJSON: nothing to format (fmt refuses it too).
            continue;
        };
        let formatted = Source::new("policy.hujson", formatted_text);
        let before = aclc_policy::parse(&original, &options);
        let after = aclc_policy::parse(&formatted, &options);
        compared += 1;
        match (before, after) {
            (Ok(a), Ok(b)) => {
                let codes =
                    |w: &[aclc_policy::Diagnostic]| w.iter().map(|d| d.code).collect::<Vec<_>>();
                assert_eq!(codes(&a.warnings), codes(&b.warnings), "{id}: warnings");
                let ca = compile(&a.policy, &inventory);
                let cb = compile(&b.policy, &inventory);
                for view in ca.nodes() {
                    let other = cb.node(view.name()).unwrap();
                    assert_eq!(
                        serde_json::to_value(view.to_wire()).unwrap(),
                        serde_json::to_value(other.to_wire()).unwrap(),
                        "{id}: node {}",
                        view.name()
                    );
                    compiled_nodes += 1;
                }
                let ta = run_tests(&a.policy, &ca);
                let tb = run_tests(&b.policy, &cb);
                let verdicts = |r: &aclc_compiler::TestReport| {
                    r.results
                        .iter()
                        .map(|t| (t.subject.clone(), t.passed))
                        .collect::<Vec<_>>()
                };
                assert_eq!(verdicts(&ta), verdicts(&tb), "{id}: tests");
            }
            (Err(a), Err(b)) => {
                let mut ca: Vec<_> = a.0.iter().map(|d| d.code).collect();
                let mut cb: Vec<_> = b.0.iter().map(|d| d.code).collect();
                ca.sort_unstable();
                cb.sort_unstable();
                assert_eq!(ca, cb, "{id}: refused with other codes");
            }
            (a, b) => panic!("{id}: verdict changed: {:?} -> {:?}", a.is_ok(), b.is_ok()),
        }
    }
    assert!(compared > 600, "only {compared} cases compared");
    assert!(
        compiled_nodes > 1000,
        "only {compiled_nodes} nodes compared"
    );
}
