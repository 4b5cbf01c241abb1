//! Every accepted case of the `nodeattrs` corpus category: each recorded node's full
//! capability map (the tailnet-state capabilities included, which the compiler models), its
//! addresses and every peer's AllowedIPs (`disable-ipv4` takes IPv4 away on both sides).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use serde_json::{Map, Value};

/// `null` and `[]` are the same capability value.
fn caps(v: &Value) -> Map<String, Value> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = if corpus_cases::is_empty(v) {
                        Value::Null
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn capability_maps_and_addresses_match_the_captures() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in corpus_cases::cases(&["nodeattrs"]) {
        let expect = &case["expect"];
        if expect["outcome"] != "accepted" {
            continue;
        }
        let id = case["id"].as_str().unwrap();
        let loaded = corpus_cases::load(&case).unwrap_or_else(|| panic!("{id}: refused"));
        for (name, want) in expect["nodes"].as_object().unwrap() {
            let got = serde_json::to_value(loaded.compiled.node(name).unwrap().to_wire()).unwrap();
            if caps(&want["cap_map"]) != caps(&got["cap_map"]) {
                failures.push(format!(
                    "{id}/{name}: cap_map\n  want {}\n  got  {}",
                    want["cap_map"], got["cap_map"]
                ));
            }
            for key in ["addresses", "allowed_ips"] {
                if sorted(&want[key]) != sorted(&got[key]) {
                    failures.push(format!("{id}/{name}: {key} {} != {}", want[key], got[key]));
                }
            }
            for (peer, wp) in want["peers"].as_object().unwrap() {
                let gp = &got["peers"][peer];
                if sorted(&wp["allowed_ips"]) != sorted(&gp["allowed_ips"]) {
                    failures.push(format!("{id}/{name}: peer {peer} allowed_ips"));
                }
                if caps(&wp["cap_map"]) != caps(&gp["cap_map"]) {
                    failures.push(format!("{id}/{name}: peer {peer} cap_map"));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} nodes checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
