//! Every accepted case of the `ssh` and `sshtest` corpus categories: each recorded node's SSH
//! rules, compared as `check.py` compares them (rule order kept, principals as a sorted
//! list, empty fields dropped).

mod corpus_cases;

use aclc_testkit::corpus::{self, compare};
use serde_json::Value;

#[test]
fn ssh_rules_match_the_captures() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let normalised = |rules: &Value| compare::norm_list(rules, compare::norm_ssh_rule);
    for case in corpus::cases(&["ssh", "sshtest"]) {
        let expect = &case["expect"];
        if expect["outcome"] != "accepted" {
            continue;
        }
        let id = corpus::id(&case);
        let loaded = corpus_cases::load(&case).unwrap_or_else(|| panic!("{id}: refused"));
        for (name, want) in compare::captured_nodes(expect) {
            let got = serde_json::to_value(loaded.compiled.ssh_rules(name).unwrap()).unwrap();
            if normalised(&want["ssh_rules"]) != normalised(&got) {
                failures.push(format!(
                    "{id}/{name}:\n  want {}\n  got  {}",
                    want["ssh_rules"], got
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} nodes checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
