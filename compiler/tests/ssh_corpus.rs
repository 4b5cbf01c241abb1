//! Every accepted case of the `ssh` and `sshtest` corpus categories: each recorded node's SSH
//! rules, compared as `check.py` compares them (rule order kept, principals as a sorted
//! list, empty fields dropped).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use serde_json::{Map, Value};

fn normalise(rule: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in rule.as_object().unwrap() {
        if corpus_cases::is_empty(value) {
            continue;
        }
        let value = if key == "principals" {
            let mut list = value.as_array().unwrap().clone();
            list.sort_by_key(|p| p.to_string());
            Value::Array(list)
        } else {
            value.clone()
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn normalised(rules: &Value) -> Vec<Value> {
    rules
        .as_array()
        .map(|a| a.iter().map(normalise).collect())
        .unwrap_or_default()
}

#[test]
fn ssh_rules_match_the_captures() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in corpus_cases::cases(&["ssh", "sshtest"]) {
        let expect = &case["expect"];
        if expect["outcome"] != "accepted" {
            continue;
        }
        let id = case["id"].as_str().unwrap();
        let loaded = corpus_cases::load(&case).unwrap_or_else(|| panic!("{id}: refused"));
        let skip: Vec<&str> = expect["uncaptured_nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, want) in expect["nodes"].as_object().unwrap() {
            if skip.contains(&name.as_str()) {
                continue;
            }
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
