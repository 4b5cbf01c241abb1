//! Posture gates end to end through `compile`: which devices a gated rule takes as sources,
//! in packet filters, app grants and SSH principals, and how `tests` / `sshTests` judge them.
//! Semantics from Tailscale's KB "Device posture management" (kb/1288): a rule's `srcPosture`
//! (else the policy's `defaultSrcPosture`) lists postures, any one of which admits a device;
//! a posture's conditions must all hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::inventory::Inventory;
use crate::{compile, run_tests, Compiled};

/// alice's mac passes `posture:latestMac` (kb/1288's default policy: macOS, stable track,
/// auto-update on); alice's linux box is on the unstable track; bob's laptop has no posture
/// data at all; server is the destination.
const INVENTORY: &str = r#"{
    "users": [
        {"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["owner"]},
        {"id": 2, "name": "bob", "email": "bob@example.com", "roles": []}
    ],
    "nodes": [
        {"name": "alice-mac", "user": "alice@example.com", "tags": [],
         "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
         "posture": {"node:os": "macos", "node:tsReleaseTrack": "stable",
                     "node:tsAutoUpdate": true, "node:tsVersion": "1.80.0"}},
        {"name": "alice-linux", "user": "alice@example.com", "tags": [],
         "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
         "posture": {"node:os": "linux", "node:tsReleaseTrack": "unstable",
                     "node:tsVersion": "1.9.0", "custom:tier": "prod"}},
        {"name": "bob-laptop", "user": "bob@example.com", "tags": [],
         "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3"},
        {"name": "server", "tags": ["tag:server"],
         "ipv4": "100.64.0.9", "ipv6": "fd7a:115c:a1e0::9"}
    ],
    "tailnet": {"name": "example.com"}
}"#;

const HEAD: &str = r#""tagOwners": {"tag:server": ["alice@example.com"]},
"postures": {
  "posture:latestMac": ["node:os == 'macos'", "node:tsReleaseTrack == 'stable'", "node:tsAutoUpdate"],
  "posture:recent": ["node:tsVersion >= '1.60'"],
  "posture:prod": ["custom:tier == 'prod'"],
  "posture:untracked": ["custom:tier NOT SET"]
},
"#;

fn policy(inventory: &Inventory, body: &str) -> aclc_policy::model::Policy {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let text = format!("{{{HEAD}{body}}}");
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &text, &options);
    match parsed {
        Ok(checked) => checked.policy,
        Err(d) => panic!("policy refused: {:?}", d.0),
    }
}

fn compiled_with(inventory: &str, body: &str) -> (aclc_policy::model::Policy, Compiled) {
    let inventory = Inventory::from_json(inventory).unwrap();
    let policy = policy(&inventory, body);
    let compiled = compile(&policy, &inventory);
    (policy, compiled)
}

/// The `SrcIPs` of each of `node`'s filter rules.
fn sources(c: &Compiled, node: &str) -> Vec<Vec<String>> {
    c.filter_rules(node)
        .unwrap()
        .iter()
        .map(|r| r.src_ips.iter().map(ToString::to_string).collect())
        .collect()
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

const MAC: [&str; 2] = ["100.64.0.1", "fd7a:115c:a1e0::1"];
const LINUX: [&str; 2] = ["100.64.0.2", "fd7a:115c:a1e0::2"];

#[test]
fn gated_grant_lets_through_only_the_matching_device() {
    let (_, c) = compiled_with(
        INVENTORY,
        r#""grants": [{"src": ["autogroup:member"], "dst": ["tag:server"], "ip": ["22"],
                       "srcPosture": ["posture:latestMac"]}]"#,
    );
    assert_eq!(sources(&c, "server"), vec![v(&MAC)]);
    // Only the passing device is a peer of the server through this rule.
    let server = c.node("server").unwrap();
    assert_eq!(server.peer_count(), 1);
}

#[test]
fn without_posture_data_a_gated_rule_lets_nothing_through() {
    // The same inventory with every `posture` removed: fail closed, no rule at all.
    let bare: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(INVENTORY).unwrap();
        for node in v["nodes"].as_array_mut().unwrap() {
            node.as_object_mut().unwrap().remove("posture");
        }
        v
    };
    let (_, c) = compiled_with(
        &bare.to_string(),
        r#""grants": [{"src": ["*"], "dst": ["tag:server"], "ip": ["22"],
                       "srcPosture": ["posture:latestMac", "posture:recent"]},
                      {"src": ["*"], "dst": ["tag:server"], "app": {"example.com/cap/x": [{}]},
                       "srcPosture": ["posture:recent"]}]"#,
    );
    assert_eq!(sources(&c, "server"), Vec::<Vec<String>>::new());
    assert_eq!(c.node("server").unwrap().peer_count(), 0);
}

#[test]
fn postures_are_ored_and_star_becomes_the_passing_devices() {
    // `*` under a gate is the passing devices, not the tailnet ranges; an IP source has no
    // device and therefore no posture, so it never passes (fail closed).
    let (_, c) = compiled_with(
        INVENTORY,
        r#""grants": [{"src": ["*", "192.0.2.1", "100.64.0.3"], "dst": ["tag:server"], "ip": ["22"],
                       "srcPosture": ["posture:latestMac", "posture:prod"]}]"#,
    );
    let mut both = v(&MAC);
    both.extend(v(&LINUX));
    both.sort();
    assert_eq!(sources(&c, "server"), vec![both]);
}

#[test]
fn version_gate_orders_versions_component_wise() {
    // alice-mac runs 1.80.0, alice-linux 1.9.0: only 1.80.0 >= 1.60.
    let (_, c) = compiled_with(
        INVENTORY,
        r#""acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:443"],
                     "srcPosture": ["posture:recent"]}]"#,
    );
    assert_eq!(sources(&c, "server"), vec![v(&MAC)]);
}

#[test]
fn default_src_posture_applies_unless_a_rule_has_its_own() {
    let (_, c) = compiled_with(
        INVENTORY,
        r#""defaultSrcPosture": ["posture:latestMac"],
           "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:22"]},
                    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:80"],
                     "srcPosture": ["posture:untracked"]}]"#,
    );
    // Rule 1 takes the default (alice-mac); rule 2's own posture replaces it: the devices
    // without `custom:tier` (alice-mac and bob-laptop).
    let mut untracked = v(&MAC);
    untracked.extend(v(&["100.64.0.3", "fd7a:115c:a1e0::3"]));
    untracked.sort();
    assert_eq!(sources(&c, "server"), vec![v(&MAC), untracked]);
}

#[test]
fn gated_self_rules_keep_only_passing_devices() {
    let (_, c) = compiled_with(
        INVENTORY,
        r#""acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"],
                     "srcPosture": ["posture:prod"]}]"#,
    );
    // alice's devices accept from alice-linux only; bob's laptop from nobody.
    assert_eq!(sources(&c, "alice-mac"), vec![v(&LINUX)]);
    assert_eq!(sources(&c, "bob-laptop"), Vec::<Vec<String>>::new());
}

#[test]
fn gated_ssh_rules_list_only_passing_principals() {
    let (_, c) = compiled_with(
        INVENTORY,
        r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"],
                    "users": ["root"], "srcPosture": ["posture:latestMac"]},
                   {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
                    "users": ["bob"], "srcPosture": ["posture:recent"]}]"#,
    );
    let rules = c.ssh_rules("server").unwrap();
    let principals: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            r.principals
                .iter()
                .filter_map(|p| p.node_ip().map(str::to_string))
                .collect()
        })
        .collect();
    // bob's laptop has no tsVersion: the second rule has no source and is not sent.
    assert_eq!(principals, vec![v(&MAC)]);
}

#[test]
fn tests_use_the_inventory_or_the_assumed_attributes() {
    let (policy, c) = compiled_with(
        INVENTORY,
        r#""grants": [{"src": ["autogroup:member"], "dst": ["tag:server"], "ip": ["22"],
                       "srcPosture": ["posture:latestMac"]}],
           "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"],
                    "users": ["root"], "srcPosture": ["posture:latestMac"]}],
           "tests": [
             {"src": "100.64.0.1", "accept": ["tag:server:22"]},
             {"src": "100.64.0.2", "deny": ["tag:server:22"]},
             {"src": "bob@example.com", "deny": ["tag:server:22"]},
             {"src": "bob@example.com", "accept": ["tag:server:22"],
              "srcPostureAttrs": {"node:os": "macos", "node:tsReleaseTrack": "stable", "node:tsAutoUpdate": true}},
             {"src": "100.64.0.1", "deny": ["tag:server:22"],
              "srcPostureAttrs": {"node:os": "macos", "node:tsReleaseTrack": "stable"}}
           ],
           "sshTests": [
             {"src": "100.64.0.2", "dst": ["tag:server"], "deny": ["root"]},
             {"src": "bob@example.com", "dst": ["tag:server"], "deny": ["root"]},
             {"src": "bob@example.com", "dst": ["tag:server"], "accept": ["root"],
              "srcPostureAttrs": {"node:os": "macos", "node:tsReleaseTrack": "stable", "node:tsAutoUpdate": true}},
             {"src": "100.64.0.1", "dst": ["tag:server"], "accept": ["root"]},
             {"src": "100.64.0.1", "dst": ["tag:server"], "deny": ["root"],
              "srcPostureAttrs": {"node:os": "linux"}}
           ]"#,
    );
    let report = run_tests(&policy, &c);
    let failures: Vec<String> = report
        .failures()
        .map(|f| format!("{} {:?}", f.subject, f.outcome))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(report.results.len(), 10);
}
