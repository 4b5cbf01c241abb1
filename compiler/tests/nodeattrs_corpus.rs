//! Every accepted case of the `nodeattrs` corpus category: each recorded node's full
//! capability map (the tailnet-state capabilities included, which the compiler models), its
//! addresses and every peer's AllowedIPs (`disable-ipv4` takes IPv4 away on both sides).

mod corpus_cases;

use aclc_testkit::corpus::{self, compare};

#[test]
fn capability_maps_and_addresses_match_the_captures() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in corpus::cases(&["nodeattrs"]) {
        let expect = &case["expect"];
        if expect["outcome"] != "accepted" {
            continue;
        }
        let id = corpus::id(&case);
        let loaded = corpus_cases::load(&case).unwrap_or_else(|| panic!("{id}: refused"));
        for (name, want) in expect["nodes"].as_object().unwrap() {
            let got = serde_json::to_value(loaded.compiled.node(name).unwrap().to_wire()).unwrap();
            if compare::all_caps(&want["cap_map"]) != compare::all_caps(&got["cap_map"]) {
                failures.push(format!(
                    "{id}/{name}: cap_map\n  want {}\n  got  {}",
                    want["cap_map"], got["cap_map"]
                ));
            }
            for key in ["addresses", "allowed_ips"] {
                if compare::sorted_list(&want[key]) != compare::sorted_list(&got[key]) {
                    failures.push(format!("{id}/{name}: {key} {} != {}", want[key], got[key]));
                }
            }
            for (peer, wp) in want["peers"].as_object().unwrap() {
                let gp = &got["peers"][peer];
                if compare::sorted_list(&wp["allowed_ips"])
                    != compare::sorted_list(&gp["allowed_ips"])
                {
                    failures.push(format!("{id}/{name}: peer {peer} allowed_ips"));
                }
                if compare::all_caps(&wp["cap_map"]) != compare::all_caps(&gp["cap_map"]) {
                    failures.push(format!("{id}/{name}: peer {peer} cap_map"));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} nodes checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
