//! Drives `aclc check`, `aclc compile` and `aclc test` on `testdata/features/postures.hujson`
//! with `posture-inventory.json`: device posture (Tailscale KB "Device posture management",
//! kb/1288) from the policy text to the wire output and the policy's own tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;

use common::{aclc_in, features, file, json, stderr, stdout};
use serde_json::{json, Value};

/// `aclc COMMAND postures.hujson --inventory posture-inventory.json EXTRA...` in the features
/// folder.
fn run(command: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        command,
        "postures.hujson",
        "--inventory",
        "posture-inventory.json",
    ];
    args.extend_from_slice(extra);
    aclc_in(&features(), &args, None)
}

const MAC: [&str; 2] = ["100.64.0.1", "fd7a:115c:a1e0::1"];

fn dst(port: u16) -> Value {
    json!([{"IP": "100.64.1.1", "Ports": {"First": port, "Last": port}},
           {"IP": "fd7a:115c:a1e0::101", "Ports": {"First": port, "Last": port}}])
}

#[test]
fn check_accepts_the_whole_grammar() {
    // Includes kb/1288's default `posture:latestMac`, whose last condition is the bare
    // attribute `node:tsAutoUpdate` (aclc used to refuse it).
    let o = run("check", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(json(&o), json!({"valid": true, "diagnostics": []}));
}

#[test]
fn compile_lists_only_devices_whose_posture_passes() {
    let o = run("compile", &["--node", "server", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let server = &json(&o)["nodes"]["server"];
    // The grant takes alice-mac (posture:recent) and alice-linux (posture:prod); the ACL takes
    // the default posture (alice-mac only). bob's laptop reports no posture: in neither.
    assert_eq!(
        server["packet_filter_rules"],
        json!([
            {"SrcIPs": ["100.64.0.1", "100.64.0.2", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::2"],
             "DstPorts": dst(443), "IPProto": [6]},
            {"SrcIPs": MAC, "DstPorts": dst(22)},
        ])
    );
    // SSH: posture:prod admits alice-linux only.
    let principals: Vec<&str> = server["ssh_rules"][0]["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodeIP"].as_str().unwrap())
        .collect();
    assert_eq!(principals, ["100.64.0.2", "fd7a:115c:a1e0::2"]);
    assert_eq!(server["ssh_rules"].as_array().unwrap().len(), 1);
    let mut peers: Vec<&String> = server["peers"].as_object().unwrap().keys().collect();
    peers.sort_unstable();
    assert_eq!(peers, ["alice-linux", "alice-mac"]);
}

#[test]
fn tests_use_inventory_posture_or_src_posture_attrs() {
    let o = run("test", &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for line in [
        "PASS postures.hujson:41: 100.64.0.2 -> tag:server:22 (tcp/udp): denied",
        "PASS postures.hujson:43: bob@example.com -> tag:server:443 (tcp/udp): denied",
        "PASS postures.hujson:44: bob@example.com -> tag:server:443 (tcp): allowed (allowed by postures.hujson:24)",
        "PASS postures.hujson:51: bob@example.com -> tag:server as root: allowed by an accept rule (postures.hujson:34)",
        "postures.hujson: 9 assertions, all passed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn a_failing_posture_assumption_refuses_the_policy() {
    // bob assumed on Windows fails both of the grant's postures, so an `accept` fails.
    let text = std::fs::read_to_string(features().join("postures.hujson")).unwrap();
    let text = text.replace(
        r#""srcPostureAttrs": {"node:os": "linux", "node:tsVersion": "1.82.1"}"#,
        r#""srcPostureAttrs": {"node:os": "windows", "node:tsVersion": "1.82.1"}"#,
    );
    let (dir, _) = file("postures.hujson", &text);
    std::fs::copy(
        features().join("posture-inventory.json"),
        dir.join("posture-inventory.json"),
    )
    .unwrap();
    let o = aclc_in(
        &dir,
        &[
            "test",
            "postures.hujson",
            "--inventory",
            "posture-inventory.json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(
            "FAIL postures.hujson:44: bob@example.com -> tag:server:443 (tcp): expected allowed, got denied"
        ),
        "{}",
        stdout(&o)
    );
}
