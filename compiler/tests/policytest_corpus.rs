//! Every corpus case with `tests` or `sshTests` (the `policytest` and `sshtest` categories):
//! the test runner must give Tailscale's verdict (a refusal recorded as `test(s) failed`
//! means some assertion fails; an accepted policy means all hold). Cases the policy crate
//! refuses are its concern and are skipped.

mod corpus_cases;

use aclc_compiler::run_tests;
use aclc_testkit::corpus;

#[test]
fn verdicts_match_tailscale() {
    let mut judged = 0;
    let mut failures = Vec::new();
    for case in corpus::cases(&["policytest", "sshtest"]) {
        let id = corpus::id(&case);
        let expect = &case["expect"];
        let Some(loaded) = corpus_cases::load(&case) else {
            assert_ne!(
                expect["tests"], "fail",
                "{id}: refused before its tests ran"
            );
            continue;
        };
        let report = run_tests(&loaded.policy, &loaded.compiled);
        let want_pass = expect["outcome"] == "accepted";
        if expect["outcome"] == "rejected" && expect["tests"] != "fail" {
            failures.push(format!(
                "{id}: accepted, but Tailscale refused it: {}",
                expect["error"]
            ));
            continue;
        }
        judged += 1;
        if report.passed() != want_pass {
            let lines: Vec<String> = report
                .results
                .iter()
                .map(|r| r.message(&loaded.source))
                .collect();
            failures.push(format!(
                "{id}: want {}, got {}:\n    {}",
                if want_pass { "pass" } else { "fail" },
                if report.passed() { "pass" } else { "fail" },
                lines.join("\n    ")
            ));
        }
        if want_pass && report.is_empty() {
            failures.push(format!("{id}: no assertion ran"));
        }
    }
    assert!(judged >= 70, "only {judged} cases judged");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
