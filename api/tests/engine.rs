//! The embedding API natively: every operation on the repository's examples, the handles'
//! life cycle and every error kind a caller can provoke.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use aclc_api::{Engine, OPS};
use common::{call, example, kind};
use serde_json::json;

#[test]
fn info_lists_every_op() {
    let mut engine = Engine::new();
    let info = call(&mut engine, json!({"version": 1, "op": "info"}));
    assert_eq!(info["aclc"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["ops"].as_array().unwrap().len(), OPS.len());
}

#[test]
fn check_is_the_cli_document_with_a_version() {
    let mut engine = Engine::new();
    let policy = example("policy.hujson");
    let valid = call(
        &mut engine,
        json!({"version": 1, "op": "check", "policy": policy}),
    );
    assert_eq!(valid["valid"], true);
    let broken = call(
        &mut engine,
        json!({"version": 1, "op": "check", "policy": example("invalid.hujson"),
               "name": "broken.hujson", "inventory": example("inventory.json")}),
    );
    assert_eq!(broken["valid"], false);
    let options = aclc_policy::Options::default();
    let direct = aclc_api::shape::check_policy(
        "broken.hujson",
        example("invalid.hujson").as_bytes(),
        &aclc_policy::Options {
            context: aclc_compiler::Inventory::from_json(&example("inventory.json"))
                .unwrap()
                .policy_context(),
            ..options
        },
        Some(&aclc_compiler::Inventory::from_json(&example("inventory.json")).unwrap()),
    );
    assert_eq!(
        broken["diagnostics"],
        serde_json::to_value(direct.to_json()).unwrap()["diagnostics"]
    );
    assert_eq!(broken["diagnostics"][0]["file"], "broken.hujson");
}

#[test]
fn fmt_formats_and_refuses_syntax_errors() {
    let mut engine = Engine::new();
    let out = call(
        &mut engine,
        json!({"version": 1, "op": "fmt", "policy": "{\"acls\":[]}"}),
    );
    assert_eq!(out["changed"], true);
    let again = call(
        &mut engine,
        json!({"version": 1, "op": "fmt", "policy": out["formatted"]}),
    );
    assert_eq!(again["changed"], false);
    let bad = call(
        &mut engine,
        json!({"version": 1, "op": "fmt", "policy": "{\"acls\": ["}),
    );
    assert_eq!(kind(&bad), "invalid");
    assert!(!bad["error"]["diagnostics"].as_array().unwrap().is_empty());
}

#[test]
fn handles_serve_node_maps_compiles_and_explanations_until_freed() {
    let mut engine = Engine::new();
    let (policy, inventory) = (example("policy.hujson"), example("inventory.json"));
    let whole = call(
        &mut engine,
        json!({"version": 1, "op": "compile", "policy": policy, "inventory": inventory}),
    );
    let loaded = call(
        &mut engine,
        json!({"version": 1, "op": "load", "policy": policy, "inventory": inventory}),
    );
    let handle = loaded["handle"].as_u64().unwrap();
    assert_eq!(engine.loaded(), 1);
    let names: Vec<&str> = whole["nodes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(loaded["nodes"], json!(names));
    for name in &names {
        let map = call(
            &mut engine,
            json!({"version": 1, "op": "node_map", "handle": handle, "node": name}),
        );
        assert_eq!(map["map"], whole["nodes"][name], "{name}");
    }
    let again = call(
        &mut engine,
        json!({"version": 1, "op": "compile", "handle": handle}),
    );
    assert_eq!(again["nodes"], whole["nodes"]);
    let one = call(
        &mut engine,
        json!({"version": 1, "op": "compile", "handle": handle, "nodes": ["web-1"]}),
    );
    assert_eq!(one["nodes"].as_object().unwrap().len(), 1);
    let allowed = call(
        &mut engine,
        json!({"version": 1, "op": "explain", "handle": handle,
               "src": "bob@example.com", "dst": "web-1:443"}),
    );
    assert_eq!(allowed["allowed"], true);
    assert_eq!(allowed["rules"][0]["line"], 27);
    let denied = call(
        &mut engine,
        json!({"version": 1, "op": "explain", "policy": policy, "inventory": inventory,
               "src": "bob@example.com", "dst": "db-1:5432"}),
    );
    assert_eq!(denied["allowed"], false);
    let ssh = call(
        &mut engine,
        json!({"version": 1, "op": "explain", "handle": handle,
               "src": "carol@example.com", "dst": "web-1", "user": "root"}),
    );
    assert!(ssh["reason"].is_string(), "{ssh}");
    let freed = call(
        &mut engine,
        json!({"version": 1, "op": "free", "handle": handle}),
    );
    assert_eq!(freed["freed"], handle);
    assert_eq!(engine.loaded(), 0);
    let gone = call(
        &mut engine,
        json!({"version": 1, "op": "node_map", "handle": handle, "node": "web-1"}),
    );
    assert_eq!(kind(&gone), "unknown_handle");
    let next = call(
        &mut engine,
        json!({"version": 1, "op": "load", "policy": policy, "inventory": inventory}),
    );
    assert_ne!(
        next["handle"].as_u64().unwrap(),
        handle,
        "handles are not reused"
    );
}

#[test]
fn test_reports_every_assertion_as_the_cli_does() {
    let mut engine = Engine::new();
    let (policy, inventory) = (example("policy.hujson"), example("inventory.json"));
    let report = call(
        &mut engine,
        json!({"version": 1, "op": "test", "policy": policy, "inventory": inventory}),
    );
    assert_eq!(report["passed"], true);
    let total = report["total"].as_u64().unwrap();
    assert!(total > 0);
    assert_eq!(report["results"].as_array().unwrap().len() as u64, total);
    assert_eq!(report["results"][0]["file"], "policy.hujson");
    let refused = call(
        &mut engine,
        json!({"version": 1, "op": "test", "policy": example("invalid.hujson"),
               "inventory": inventory}),
    );
    assert_eq!(kind(&refused), "refused");
    let no_inventory = call(
        &mut engine,
        json!({"version": 1, "op": "test", "policy": policy}),
    );
    assert_eq!(kind(&no_inventory), "bad_request");
}

#[test]
fn every_error_kind() {
    let mut engine = Engine::new();
    let (policy, inventory) = (example("policy.hujson"), example("inventory.json"));
    let loaded = call(
        &mut engine,
        json!({"version": 1, "op": "load", "policy": policy, "inventory": inventory}),
    );
    let handle = loaded["handle"].clone();
    let cases = [
        (json!("not an object"), "bad_request"),
        (json!({"op": "info"}), "bad_request"),
        (json!({"version": 2, "op": "info"}), "unsupported_version"),
        (json!({"version": 1}), "bad_request"),
        (json!({"version": 1, "op": "nope"}), "unknown_op"),
        (json!({"version": 1, "op": "check"}), "bad_request"),
        (
            json!({"version": 1, "op": "check", "policy": "{}", "polcy": 1}),
            "bad_request",
        ),
        (
            json!({"version": 1, "op": "compile", "policy": "{}"}),
            "bad_request",
        ),
        (
            json!({"version": 1, "op": "compile", "handle": handle, "policy": "{}"}),
            "bad_request",
        ),
        (
            json!({"version": 1, "op": "free", "handle": 99}),
            "unknown_handle",
        ),
        (
            json!({"version": 1, "op": "node_map", "handle": handle, "node": "nope"}),
            "unknown_node",
        ),
        (
            json!({"version": 1, "op": "compile", "handle": handle, "nodes": ["nope"]}),
            "unknown_node",
        ),
        (
            json!({"version": 1, "op": "check", "policy": "{}", "inventory": "[]"}),
            "invalid_inventory",
        ),
        (
            json!({"version": 1, "op": "compile", "policy": example("invalid.hujson"),
                   "inventory": inventory}),
            "refused",
        ),
        (
            json!({"version": 1, "op": "explain", "handle": handle,
                   "src": "nobody-at-all", "dst": "web-1:443"}),
            "query",
        ),
    ];
    for (request, expected) in cases {
        let response = call(&mut engine, request.clone());
        assert_eq!(kind(&response), expected, "{request} -> {response}");
        assert!(response["error"]["message"].is_string());
    }
    let text = engine.call(b"\xff\xfe");
    assert!(text.contains("\"kind\":\"bad_request\""), "{text}");
}

#[test]
fn diff_is_the_cli_document() {
    let mut engine = Engine::new();
    let old = example("policy.hujson");
    let new = old.replacen(r#""ip": ["tcp:5432"]"#, r#""ip": ["tcp:5432-5433"]"#, 1);
    assert_ne!(old, new);
    let answer = call(
        &mut engine,
        json!({"version": 1, "op": "diff", "old": old, "new": new,
               "inventory": example("inventory.json")}),
    );
    assert_eq!(answer["changed"], true, "{answer}");
    let gained = &answer["network"]["gained"][0];
    assert_eq!(gained["src"]["names"], json!(["web-1"]));
    assert_eq!(gained["dst"]["names"], json!(["db-1"]));
    assert_eq!(gained["ports"], "5433");
    assert_eq!(answer["network"]["lost"], json!([]));
    let same = call(
        &mut engine,
        json!({"version": 1, "op": "diff", "old": old, "new": old}),
    );
    assert_eq!(same["changed"], false);
    assert_eq!(same["policy"]["sections"], json!([]));
    let broken = call(
        &mut engine,
        json!({"version": 1, "op": "diff", "old": old, "new": "{\"acls\": ["}),
    );
    assert_eq!(kind(&broken), "refused");
}

/// `exit_node_filters` on `compile` and `engine_new`: `"all"` (the default) gives an approved
/// exit node every rule's destinations, `"internet"` only the internet's; anything else is
/// a bad request.
#[test]
fn exit_node_filters_choose_what_an_exit_node_receives() {
    let mut engine = Engine::new();
    let inventory = json!({
        "users": [{"id": 1, "name": "alice", "email": "alice@example.com", "roles": []}],
        "nodes": [
            {"name": "laptop", "user": "alice@example.com", "ipv4": "100.64.0.1"},
            {"name": "server", "tags": ["tag:server"], "ipv4": "100.64.0.2"},
            {"name": "exit", "tags": ["tag:exit"], "ipv4": "100.64.0.3",
             "routable_ips": ["0.0.0.0/0"], "approved_routes": ["0.0.0.0/0"]}
        ]
    });
    let policy = r#"{"tagOwners": {"tag:server": [], "tag:exit": []},
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:22"]}]}"#;
    let exit_filter = |engine: &mut Engine, extra: serde_json::Value| -> serde_json::Value {
        let mut request = json!({"version": 1, "op": "compile", "policy": policy,
                                 "inventory": inventory, "nodes": ["exit"]});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        let response = call(engine, request);
        response["nodes"]["exit"]["packet_filter_rules"].clone()
    };
    let all = exit_filter(&mut engine, json!({}));
    assert_eq!(all[0]["DstPorts"][0]["IP"], "100.64.0.2", "{all}");
    assert_eq!(
        exit_filter(&mut engine, json!({"exit_node_filters": "all"})),
        all
    );
    assert_eq!(
        exit_filter(&mut engine, json!({"exit_node_filters": "internet"})),
        json!([])
    );
    let bad = call(
        &mut engine,
        json!({"version": 1, "op": "compile", "policy": policy, "inventory": inventory,
               "exit_node_filters": "some"}),
    );
    assert_eq!(kind(&bad), "bad_request", "{bad}");
    let started = call(
        &mut engine,
        json!({"version": 1, "op": "engine_new", "policy": policy, "inventory": inventory,
               "exit_node_filters": "internet"}),
    );
    assert!(started["handle"].is_u64(), "{started}");
}
