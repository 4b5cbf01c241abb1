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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aclc_compiler::{compile, Inventory};
use serde_json::{json, Map, Value};

const CATEGORIES: [&str; 3] = ["acl", "routes", "grant"];

fn testdata() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance");
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// The accepted cases of our categories, sorted by id.
fn cases() -> Vec<Value> {
    let mut out = Vec::new();
    for category in CATEGORIES {
        let dir = testdata().join("cases").join(category);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let case: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                if case["expect"]["outcome"] == "accepted" {
                    out.push(case);
                }
            }
        }
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

// ---- check.py's normalisation -------------------------------------------------------------

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn norm_rule(rule: &Value) -> Value {
    let mut out = Map::new();
    for (key, val) in rule.as_object().unwrap() {
        if is_empty(val) {
            continue;
        }
        let val = match key.as_str() {
            "SrcIPs" => json!(sorted_strings(val)),
            "DstPorts" => {
                let mut list: Vec<Value> = val
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let d: Map<String, Value> = d
                            .as_object()
                            .unwrap()
                            .iter()
                            .filter(|(_, v)| !is_empty(v))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        Value::Object(d)
                    })
                    .collect();
                list.sort_by_key(|d| {
                    (
                        d["IP"].as_str().unwrap_or_default().to_string(),
                        d["Ports"]["First"].as_u64().unwrap_or(0),
                        d["Ports"]["Last"].as_u64().unwrap_or(0),
                    )
                });
                Value::Array(list)
            }
            "IPProto" => {
                let mut nums: Vec<u64> = val
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .collect();
                nums.sort_unstable();
                json!(nums)
            }
            "CapGrant" => Value::Array(
                val.as_array()
                    .unwrap()
                    .iter()
                    .map(|g| {
                        let g: Map<String, Value> = g
                            .as_object()
                            .unwrap()
                            .iter()
                            .filter(|(_, v)| !is_empty(v))
                            .map(|(k, v)| {
                                let v = if k == "Dsts" {
                                    json!(sorted_strings(v))
                                } else {
                                    v.clone()
                                };
                                (k.clone(), v)
                            })
                            .collect();
                        Value::Object(g)
                    })
                    .collect(),
            ),
            _ => val.clone(),
        };
        out.insert(key.clone(), val);
    }
    Value::Object(out)
}

fn rules(node: &Value, key: &str) -> Vec<Value> {
    node[key]
        .as_array()
        .map(|a| a.iter().map(norm_rule).collect())
        .unwrap_or_default()
}

fn norm_caps(v: &Value) -> BTreeMap<String, Value> {
    const STATE: [&str; 12] = [
        "default-auto-update",
        "https://tailscale.com/cap/file-sharing",
        "https://tailscale.com/cap/is-admin",
        "https://tailscale.com/cap/is-owner",
        "https://tailscale.com/cap/ssh",
        "https://tailscale.com/cap/tailnet-lock",
        "https://tailscale.com/cap/warn-funnel-no-https",
        "probe-udp-lifetime",
        "ssh-behavior-v1",
        "ssh-env-vars",
        "store-appc-routes",
        "tailnet-display-name",
    ];
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| {
                    !STATE.contains(&k.as_str())
                        && !k.starts_with("https://tailscale.com/cap/funnel-ports?")
                })
                .map(|(k, v)| (k.clone(), if is_empty(v) { Value::Null } else { v.clone() }))
                .collect()
        })
        .unwrap_or_default()
}

/// `check.py`'s `compare_node`: the parts that differ.
fn compare_node(name: &str, want: &Value, got: &Value, filters_only: bool) -> Vec<String> {
    let mut bad = Vec::new();
    if rules(want, "packet_filter_rules") != rules(got, "packet_filter_rules") {
        bad.push(format!("{name}: packet_filter_rules differ"));
    }
    if rules(want, "ssh_rules") != rules(got, "ssh_rules") {
        bad.push(format!("{name}: ssh_rules differ"));
    }
    if filters_only {
        return bad;
    }
    for key in ["addresses", "allowed_ips", "primary_routes"] {
        if sorted_strings(&want[key]) != sorted_strings(&got[key]) {
            bad.push(format!("{name}: {key} differ"));
        }
    }
    let empty = Map::new();
    let want_peers = want["peers"].as_object().unwrap_or(&empty);
    let got_peers = got["peers"].as_object().unwrap_or(&empty);
    let w: BTreeSet<&String> = want_peers.keys().collect();
    let g: BTreeSet<&String> = got_peers.keys().collect();
    if w != g {
        let missing: Vec<_> = w.difference(&g).collect();
        let extra: Vec<_> = g.difference(&w).collect();
        bad.push(format!(
            "{name}: peers differ (missing {missing:?}, extra {extra:?})"
        ));
    } else {
        for (peer, wp) in want_peers {
            let gp = &got_peers[peer];
            for key in ["allowed_ips", "primary_routes"] {
                if sorted_strings(&wp[key]) != sorted_strings(&gp[key]) {
                    bad.push(format!(
                        "{name}: peer {peer} {key} differ (want {}, got {})",
                        wp[key], gp[key]
                    ));
                }
            }
            if norm_caps(&wp["cap_map"]) != norm_caps(&gp["cap_map"]) {
                bad.push(format!("{name}: peer {peer} cap_map differs"));
            }
        }
    }
    bad
}

// ---- running a case -----------------------------------------------------------------------

fn inventory_of(case: &Value) -> Inventory {
    let mut inventory = case["topology"].clone();
    inventory["tailnet"] = case.get("tailnet").cloned().unwrap_or_else(|| json!({}));
    Inventory::from_json(&inventory.to_string()).unwrap()
}

fn run_case(case: &Value) -> Result<(), Vec<String>> {
    let inventory = inventory_of(case);
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) =
        aclc_policy::parse_str("policy", case["policy"]["text"].as_str().unwrap(), &options);
    let checked = parsed.map_err(|d| {
        let first: Vec<String> = d.0.iter().take(3).map(|d| d.message.clone()).collect();
        vec![format!("policy refused: {first:?}")]
    })?;
    let compiled = compile(&checked.policy, &inventory);
    let expect = &case["expect"];
    let skip: BTreeSet<&str> = expect["uncaptured_nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let filters_only = !is_empty(&expect["route_state_inconsistent"]);
    let mut problems = Vec::new();
    for (name, want) in expect["nodes"].as_object().unwrap() {
        if skip.contains(name.as_str()) {
            continue;
        }
        match compiled.node(name) {
            None => problems.push(format!("{name}: missing from output")),
            Some(view) => {
                let got = serde_json::to_value(view.to_wire()).unwrap();
                problems.extend(compare_node(name, want, &got, filters_only));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn read_ratchet(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
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
        let id = case["id"].as_str().unwrap().to_string();
        let category = case["category"].as_str().unwrap().to_string();
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

    let path = testdata().join("compiler-lib.passing");
    let listed = read_ratchet(&path);
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        listed,
        sorted,
        "{} must be sorted, without duplicates",
        path.display()
    );
    let listed: BTreeSet<String> = listed.into_iter().collect();
    let regressed: Vec<&String> = listed.difference(&passing).collect();
    let newly: Vec<&String> = passing.difference(&listed).collect();
    if std::env::var_os("ACLC_UPDATE_RATCHET").is_some_and(|v| v == "1") && !newly.is_empty() {
        let all: BTreeSet<&String> = listed.iter().chain(newly.iter().copied()).collect();
        let text: String = all.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(&path, text).unwrap();
        println!("added {} ids to {}", newly.len(), path.display());
    } else if !newly.is_empty() {
        println!(
            "{} cases pass but are not in {} (run with ACLC_UPDATE_RATCHET=1)",
            newly.len(),
            path.display()
        );
    }
    assert!(
        regressed.is_empty(),
        "cases in the ratchet no longer pass: {regressed:?}"
    );
}

#[test]
fn auto_approvers_reproduce_recorded_approvals() {
    let mut mismatches = Vec::new();
    for case in cases() {
        if !is_empty(&case["expect"]["route_state_inconsistent"]) {
            continue;
        }
        let inventory = inventory_of(&case);
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let (_, parsed) =
            aclc_policy::parse_str("policy", case["policy"]["text"].as_str().unwrap(), &options);
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
