//! The engine operations (`engine_new`, `engine_apply`, `engine_map`, `engine_query`) on the
//! repository's examples: a sequence of events (a node joins, is retagged, leaves, the policy
//! is replaced ...) whose change sets and maps must be those of the engine used directly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use aclc_api::{Engine, OPS, QUESTIONS};
use aclc_compiler::engine::{self, ChangeSet, EngineOptions, Event, NodeRecord};
use aclc_compiler::Inventory;
use common::{call, example, kind};
use serde_json::{json, Value};

fn parse(policy: &str, inventory: &Inventory) -> aclc_policy::model::Policy {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..aclc_policy::Options::default()
    };
    aclc_api::shape::parse_policy("policy.hujson", policy.as_bytes(), &options)
        .checked
        .expect("a valid policy")
        .policy
}

/// The change set as `engine_apply` answers it.
fn expected(changes: &ChangeSet, before: &engine::Snapshot, after: &engine::Snapshot) -> Value {
    let changed: Vec<Value> = changes
        .changed
        .iter()
        .map(|(&id, c)| {
            let parts: Vec<&str> = [
                (c.packet_filter, "packet_filter"),
                (c.ssh_rules, "ssh_rules"),
                (c.peers, "peers"),
                (c.cap_map, "cap_map"),
                (c.own, "own"),
            ]
            .into_iter()
            .filter(|p| p.0)
            .map(|p| p.1)
            .collect();
            json!({"id": id, "name": after.name(id).unwrap(), "added": c.added, "parts": parts})
        })
        .collect();
    let removed: Vec<Value> = changes
        .removed
        .iter()
        .map(|&id| json!({"id": id, "name": before.name(id).unwrap()}))
        .collect();
    json!({"version": 1, "snapshot": after.version(), "changed": changed, "removed": removed})
}

fn node(id: u64, name: &str, user: Option<u64>, tags: &[&str], last: u8) -> NodeRecord {
    let record = match user {
        Some(user) => NodeRecord::owned(
            id,
            name,
            user,
            format!("100.64.3.{last}").parse().unwrap(),
            format!("fd7a:115c:a1e0::3:{last}").parse().unwrap(),
        ),
        None => NodeRecord::tagged(
            id,
            name,
            tags,
            format!("100.64.3.{last}").parse().unwrap(),
            format!("fd7a:115c:a1e0::3:{last}").parse().unwrap(),
        ),
    };
    record
}

#[test]
fn the_ops_are_listed() {
    for op in ["engine_new", "engine_apply", "engine_map", "engine_query"] {
        assert!(OPS.contains(&op), "{op}");
    }
    assert!(QUESTIONS.contains(&"ssh_decision"));
}

/// An engine used directly on the repository's examples, beside the policy and inventory
/// texts it was built from.
fn direct() -> (engine::Engine, String, String) {
    let inventory_text = example("inventory.json");
    let policy_text = example("policy.hujson");
    let inventory = Inventory::from_json(&inventory_text).unwrap();
    let engine = engine::Engine::new(
        Arc::new(parse(&policy_text, &inventory)),
        engine::TailnetState::from_inventory(&inventory),
        EngineOptions::default(),
    )
    .unwrap();
    (engine, policy_text, inventory_text)
}

#[test]
fn events_give_the_change_sets_of_the_engine() {
    let (mut direct, policy_text, inventory_text) = direct();
    let inventory = Inventory::from_json(&inventory_text).unwrap();
    let mut api = Engine::new();
    let started = call(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": policy_text, "inventory": inventory_text}),
    );
    let handle = started["handle"].as_u64().unwrap();
    assert_eq!(started["snapshot"], 0);
    let nodes: Vec<(u64, String)> = started["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap(),
                n["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let snapshot = direct.snapshot();
    let want: Vec<(u64, String)> = snapshot
        .node_ids()
        .map(|id| (id, snapshot.name(id).unwrap().to_string()))
        .collect();
    assert_eq!(nodes, want);
    assert_eq!(api.engines(), 1);

    let dave = node(100, "dave-laptop", Some(2), &[], 1);
    let dave_tagged = node(100, "dave-laptop", None, &["tag:web"], 1);
    let web = direct.node(4).unwrap().clone();
    let mut retagged = web.clone();
    retagged.tags = vec!["tag:db".to_string()];
    let new_policy = policy_text.replace("\"tag:web:80,443\"", "\"tag:web:443\"");
    assert_ne!(new_policy, policy_text);
    let steps: Vec<(Value, Event)> = vec![
        (
            json!({"type": "upsert_node", "node": serde_json::to_value(&dave).unwrap()}),
            Event::UpsertNode(dave.clone()),
        ),
        // The same node again: nothing changes.
        (
            json!({"type": "upsert_node", "node": serde_json::to_value(&dave).unwrap()}),
            Event::UpsertNode(dave.clone()),
        ),
        (
            json!({"type": "upsert_node", "node": serde_json::to_value(&dave_tagged).unwrap()}),
            Event::UpsertNode(dave_tagged.clone()),
        ),
        (
            json!({"type": "upsert_node", "node": serde_json::to_value(&retagged).unwrap()}),
            Event::UpsertNode(retagged.clone()),
        ),
        (
            json!({"type": "upsert_node", "node": serde_json::to_value(&web).unwrap()}),
            Event::UpsertNode(web.clone()),
        ),
        (
            json!({"type": "remove_node", "node": 100}),
            Event::RemoveNode(100),
        ),
        (
            json!({"type": "replace_policy", "policy": new_policy}),
            Event::ReplacePolicy(Arc::new(parse(&new_policy, &inventory))),
        ),
        (
            json!({"type": "set_online", "node": 6, "online": false}),
            Event::SetOnline {
                node: 6,
                online: false,
            },
        ),
        (
            json!({"type": "advertise_routes", "node": 6, "routes": ["192.168.10.0/24", "192.168.20.0/24"]}),
            Event::AdvertiseRoutes {
                node: 6,
                routes: vec![
                    "192.168.10.0/24".parse().unwrap(),
                    "192.168.20.0/24".parse().unwrap(),
                ],
            },
        ),
        (
            json!({"type": "upsert_user", "user": {"id": 4, "login": "dave@example.com", "name": "dave"}}),
            Event::UpsertUser(engine::UserRecord {
                id: 4,
                login: "dave@example.com".to_string(),
                name: "dave".to_string(),
                roles: Vec::new(),
                groups: Vec::new(),
            }),
        ),
        (
            json!({"type": "remove_user", "user": 2}),
            Event::RemoveUser(2),
        ),
        (
            json!({"type": "upsert_service", "service": {"name": "svc:web",
                "ipv4": "100.100.200.1", "hosts": [4], "approved_hosts": [4]}}),
            Event::UpsertService(engine::ServiceRecord {
                name: "svc:web".to_string(),
                ipv4: Some("100.100.200.1".parse().unwrap()),
                ipv6: None,
                hosts: vec![4],
                approved_hosts: vec![4],
                tags: Vec::new(),
            }),
        ),
        (
            json!({"type": "remove_service", "service": "svc:web"}),
            Event::RemoveService("svc:web".to_string()),
        ),
    ];
    let mut nonempty = 0;
    for (json_event, event) in steps {
        let before = direct.snapshot();
        let changes = direct.apply(event).unwrap();
        let after = direct.snapshot();
        let got = call(
            &mut api,
            json!({"version": 1, "op": "engine_apply", "handle": handle, "event": json_event}),
        );
        assert_eq!(
            got,
            expected(&changes, &before, &after),
            "event {json_event}"
        );
        if !changes.is_empty() {
            nonempty += 1;
        }
        // Every node's map is the engine's, by id and by name.
        for id in after.node_ids() {
            let want = serde_json::to_value(after.node(id).unwrap().to_wire()).unwrap();
            let by_id = call(
                &mut api,
                json!({"version": 1, "op": "engine_map", "handle": handle, "node": id}),
            );
            assert_eq!(by_id["map"], want, "node {id} after {json_event}");
            assert_eq!(by_id["node"], after.name(id).unwrap());
            let by_name = call(
                &mut api,
                json!({"version": 1, "op": "engine_map", "handle": handle,
                       "node": after.name(id).unwrap()}),
            );
            assert_eq!(by_name["id"], id);
            assert_eq!(by_name["map"], want);
        }
    }
    assert!(nonempty >= 6, "{nonempty} events changed something");

    let freed = call(
        &mut api,
        json!({"version": 1, "op": "free", "handle": handle}),
    );
    assert_eq!(freed["freed"], handle);
    assert_eq!(api.engines(), 0);
    let gone = call(
        &mut api,
        json!({"version": 1, "op": "engine_map", "handle": handle, "node": 1}),
    );
    assert_eq!(kind(&gone), "unknown_handle");
    // A second free names neither kind (it said "no policy is loaded" of an engine).
    let again = call(
        &mut api,
        json!({"version": 1, "op": "free", "handle": handle}),
    );
    assert_eq!(kind(&again), "unknown_handle");
    assert_eq!(
        again["error"]["message"],
        format!(
            "nothing is loaded under handle {handle} (no policy or engine: never loaded, or freed)"
        )
    );
}

fn started(api: &mut Engine) -> u64 {
    let response = call(
        api,
        json!({"version": 1, "op": "engine_new", "policy": example("policy.hujson"),
               "inventory": example("inventory.json")}),
    );
    response["handle"].as_u64().unwrap()
}

#[test]
fn refusals_change_nothing() {
    let mut api = Engine::new();
    let refused = call(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": example("invalid.hujson"),
               "inventory": example("inventory.json")}),
    );
    assert_eq!(kind(&refused), "refused");
    assert!(!refused["error"]["diagnostics"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(api.engines(), 0);

    let handle = started(&mut api);
    let map = |api: &mut Engine| {
        call(
            api,
            json!({"version": 1, "op": "engine_map", "handle": handle, "node": "web-1"}),
        )
    };
    let before = map(&mut api);
    let apply = |api: &mut Engine, event: Value| {
        call(
            api,
            json!({"version": 1, "op": "engine_apply", "handle": handle, "event": event}),
        )
    };
    // An invalid policy; a valid one whose tests fail (carol no longer reaches tag:db).
    let invalid = apply(
        &mut api,
        json!({"type": "replace_policy", "policy": example("invalid.hujson")}),
    );
    assert_eq!(kind(&invalid), "refused");
    let failing = example("policy.hujson").replace(
        r#"{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},"#,
        "",
    );
    let failing = apply(
        &mut api,
        json!({"type": "replace_policy", "policy": failing}),
    );
    assert_eq!(kind(&failing), "refused", "{failing}");
    // A valid policy the compiler refuses: one grant of 1,100 destinations by 1,000 ports
    // (1.1 million rule items, past the limit), located at the grant.
    let dsts: Vec<String> = (0..1100)
        .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
        .collect();
    let ports: Vec<String> = (1..=1000).map(|p| format!("tcp:{p}")).collect();
    let huge = json!({"grants": [{"src": ["*"], "dst": dsts, "ip": ports}]}).to_string();
    let huge = apply(&mut api, json!({"type": "replace_policy", "policy": huge}));
    assert_eq!(kind(&huge), "refused", "{huge}");
    let diagnostics = huge["error"]["diagnostics"].to_string();
    assert!(diagnostics.contains("compile_budget"), "{diagnostics}");
    let after = map(&mut api);
    assert_eq!(before["map"], after["map"]);

    // A duplicate name, an unknown node, an unknown owner.
    let mut dup = node(100, "web-1", None, &["tag:web"], 9);
    let dup_value = serde_json::to_value(&dup).unwrap();
    let duplicate = apply(&mut api, json!({"type": "upsert_node", "node": dup_value}));
    assert_eq!(kind(&duplicate), "invalid_tailnet", "{duplicate}");
    let unknown = apply(
        &mut api,
        json!({"type": "set_online", "node": 999, "online": false}),
    );
    assert_eq!(kind(&unknown), "unknown_node");
    dup.name = "orphan".to_string();
    dup.tags.clear();
    dup.user = Some(42);
    let orphan = apply(
        &mut api,
        json!({"type": "upsert_node", "node": serde_json::to_value(&dup).unwrap()}),
    );
    assert_eq!(kind(&orphan), "unknown_user");
    // Malformed events.
    for event in [
        json!({"type": "explode"}),
        json!({"type": "remove_node", "node": 1, "extra": true}),
        json!({"type": "set_online", "node": 1}),
    ] {
        assert_eq!(
            kind(&apply(&mut api, event.clone())),
            "bad_request",
            "{event}"
        );
    }
    assert_eq!(map(&mut api)["map"], before["map"]);

    let neither = call(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": example("policy.hujson")}),
    );
    assert_eq!(kind(&neither), "bad_request");
}

#[test]
fn state_in_the_engines_format() {
    let mut api = Engine::new();
    let state = json!({
        "users": [{"id": 1, "login": "alice@", "name": "Alice", "roles": ["admin"]},
                  {"id": 2, "login": "bob@"}],
        "nodes": [{"id": 10, "name": "laptop", "user": 1,
                   "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
                  {"id": 11, "name": "web", "tags": ["tag:web"],
                   "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"}],
        "tailnet": {"name": "example.com"}
    });
    let policy = r#"{"tagOwners": {"tag:web": ["bob@"]},
                     "acls": [{"action": "accept", "src": ["alice@"], "dst": ["tag:web:443"]}]}"#;
    let response = call(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": policy, "state": state,
               "approvals": "stored"}),
    );
    assert_eq!(
        response["nodes"],
        json!([{"id": 10, "name": "laptop"}, {"id": 11, "name": "web"}]),
        "{response}"
    );
    let handle = response["handle"].as_u64().unwrap();
    let web = call(
        &mut api,
        json!({"version": 1, "op": "engine_map", "handle": handle, "node": 11}),
    );
    assert_eq!(
        web["map"]["packet_filter_rules"][0]["SrcIPs"][0], "100.64.0.1",
        "{web}"
    );
    let may = call(
        &mut api,
        json!({"version": 1, "op": "engine_query", "handle": handle, "question": "may_apply_tag",
               "args": {"user": 2, "tag": "tag:web"}}),
    );
    assert_eq!(may["answer"], true, "{may}");
}

#[test]
fn questions_are_the_snapshots_answers() {
    let mut api = Engine::new();
    let handle = started(&mut api);
    let mut ask = |question: &str, args: Value| {
        call(
            &mut api,
            json!({"version": 1, "op": "engine_query", "handle": handle,
                   "question": question, "args": args}),
        )
    };
    // Users: alice (owner, admin), bob, carol (group:ops); nodes 1..7 in registration order.
    assert_eq!(
        ask("may_apply_tag", json!({"user": 2, "tag": "tag:web"}))["answer"],
        false
    );
    assert_eq!(
        ask("may_apply_tag", json!({"user": 3, "tag": "tag:web"}))["answer"],
        true
    );
    assert_eq!(
        ask(
            "may_apply_tag",
            json!({"node": "carol-desktop", "tag": "tag:db"})
        )["answer"],
        true
    );
    assert_eq!(
        ask("may_apply_tag", json!({"user": 3, "tag": "tag:nope"}))["answer"],
        false
    );
    assert_eq!(
        ask(
            "auto_approves",
            json!({"node": "office-router", "route": "192.168.10.0/25"})
        )["answer"],
        true
    );
    assert_eq!(
        ask(
            "auto_approves",
            json!({"node": "office-router", "route": "0.0.0.0/0"})
        )["answer"],
        false
    );
    assert_eq!(
        ask("auto_approved", json!({"node": "exit-1"}))["answer"],
        json!(["0.0.0.0/0", "::/0"])
    );
    let without = example("policy.hujson").replace(r#""exitNode": ["tag:exit"],"#, "");
    let lost = ask("approvals_lost", json!({"policy": without}));
    // exit-1's routes are approved in its record: nothing is lost.
    assert_eq!(lost["answer"], json!([]), "{lost}");

    let ssh = ask(
        "ssh_decision",
        json!({"src": "carol-desktop", "dst": "web-1", "login": "root"}),
    );
    assert_eq!(ssh["answer"]["action"], "check", "{ssh}");
    assert_eq!(ssh["answer"]["check_period"], "12h0m0s");
    assert_eq!(ssh["answer"]["rule"]["index"], 0);
    assert_eq!(ssh["answer"]["local_user"], "root");
    let denied = ask(
        "ssh_decision",
        json!({"src": "bob-laptop", "dst": "web-1", "login": "root"}),
    );
    assert_eq!(denied["answer"], json!({"action": "denied"}));

    let flow = ask(
        "explain_flow",
        json!({"src": "alice-laptop", "dst": "web-1", "port": 443}),
    );
    assert_eq!(flow["answer"]["allowed"], true, "{flow}");
    assert_eq!(flow["answer"]["rules"][0]["file"], "policy.hujson");
    let blocked = ask(
        "explain_flow",
        json!({"src": "alice-laptop", "dst": 5, "port": 5432}),
    );
    assert_eq!(blocked["answer"]["allowed"], false);

    let router = ask(
        "peer_impact",
        json!({"node": 6, "after": {"id": 6, "name": "office-router", "tags": ["tag:router"],
               "ipv4": "100.64.2.1", "ipv6": "fd7a:115c:a1e0::201",
               "advertised_routes": ["192.168.10.0/24"], "approved_routes": ["192.168.10.0/24"],
               "online": false}}),
    );
    assert_eq!(router["answer"], json!(["router"]), "{router}");
    let joins = ask(
        "peer_impact",
        json!({"after": {"id": 50, "name": "x", "user": 1, "ipv4": "100.64.9.9",
               "ipv6": "fd7a:115c:a1e0::909"}}),
    );
    assert_eq!(joins["answer"], json!(["membership"]));

    assert_eq!(kind(&ask("what", json!({}))), "bad_request");
    assert_eq!(
        kind(&ask("auto_approved", json!({"node": "nobody"}))),
        "unknown_node"
    );
    assert_eq!(
        kind(&ask("auto_approved", json!({"node": 1, "typo": 1}))),
        "bad_request"
    );
}

#[test]
fn a_refused_policy_stores_no_approval() {
    let mut api = Engine::new();
    let state = json!({
        "users": [{"id": 1, "login": "alice@"}],
        "nodes": [{"id": 10, "name": "laptop", "user": 1,
                   "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
                  {"id": 11, "name": "router", "tags": ["tag:router"],
                   "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
                   "advertised_routes": ["10.0.0.0/16"]}]
    });
    let base = r#"{"tagOwners": {"tag:router": ["alice@"]},
                   "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;
    let started = call(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": base, "state": state,
               "approvals": "stored"}),
    );
    let handle = started["handle"].as_u64().unwrap();
    let laptop = |api: &mut Engine| {
        call(
            api,
            json!({"version": 1, "op": "engine_map", "handle": handle, "node": "laptop"}),
        )["map"]
            .to_string()
    };
    assert!(!laptop(&mut api).contains("10.0.0.0/16"));
    // Approves the route, but its test fails: refused, and nothing is stored.
    let approving_failing = r#"{"tagOwners": {"tag:router": ["alice@"]},
        "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
        "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        "tests": [{"src": "alice@", "deny": ["router:22"]}]}"#;
    let refused = call(
        &mut api,
        json!({"version": 1, "op": "engine_apply", "handle": handle,
               "event": {"type": "replace_policy", "policy": approving_failing}}),
    );
    assert_eq!(kind(&refused), "refused", "{refused}");
    assert!(!laptop(&mut api).contains("10.0.0.0/16"));
    // The same without the failing test is accepted, and the approval stored.
    let approving = approving_failing.replace(
        r#""tests": [{"src": "alice@", "deny": ["router:22"]}]"#,
        r#""tests": []"#,
    );
    let accepted = call(
        &mut api,
        json!({"version": 1, "op": "engine_apply", "handle": handle,
               "event": {"type": "replace_policy", "policy": approving}}),
    );
    assert!(
        !accepted["changed"].as_array().unwrap().is_empty(),
        "{accepted}"
    );
    assert!(laptop(&mut api).contains("10.0.0.0/16"));
    // Back to the first policy: the stored approval stays.
    call(
        &mut api,
        json!({"version": 1, "op": "engine_apply", "handle": handle,
               "event": {"type": "replace_policy", "policy": base}}),
    );
    assert!(laptop(&mut api).contains("10.0.0.0/16"));
}

#[test]
fn a_batch_is_one_change() {
    let (mut direct, policy_text, _) = direct();
    let mut api = Engine::new();
    let handle = started(&mut api);
    let dave = node(100, "dave-laptop", Some(2), &[], 1);
    let erin = node(101, "erin-web", None, &["tag:web"], 2);
    let events = json!([
        {"type": "upsert_node", "node": serde_json::to_value(&dave).unwrap()},
        {"type": "upsert_node", "node": serde_json::to_value(&erin).unwrap()},
        {"type": "remove_node", "node": 100},
    ]);
    let before = direct.snapshot();
    let changes = direct
        .apply_batch([
            Event::UpsertNode(dave.clone()),
            Event::UpsertNode(erin),
            Event::RemoveNode(100),
        ])
        .unwrap();
    let after = direct.snapshot();
    let got = call(
        &mut api,
        json!({"version": 1, "op": "engine_apply", "handle": handle, "events": events}),
    );
    assert_eq!(got, expected(&changes, &before, &after));
    // dave joined and left within the batch: no change names him.
    assert!(!got.to_string().contains("dave-laptop"), "{got}");
    let map = |api: &mut Engine| {
        call(
            api,
            json!({"version": 1, "op": "engine_map", "handle": handle, "node": "erin-web"}),
        )
    };
    let erin_map = map(&mut api);
    // A refused event refuses the whole batch, and says which.
    let refused = call(
        &mut api,
        json!({"version": 1, "op": "engine_apply", "handle": handle, "events": [
            {"type": "remove_node", "node": 101},
            {"type": "upsert_node", "node": serde_json::to_value(node(102, "x", Some(99), &[], 3)).unwrap()},
        ]}),
    );
    assert_eq!(kind(&refused), "unknown_user", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1]: "),
        "{refused}"
    );
    assert_eq!(map(&mut api), erin_map);
    // A policy is replaced on its own; `event` and `events` together are refused.
    for bad in [
        json!({"events": [{"type": "replace_policy", "policy": policy_text}]}),
        json!({"event": {"type": "remove_node", "node": 101}, "events": []}),
        json!({}),
    ] {
        let mut request = json!({"version": 1, "op": "engine_apply", "handle": handle});
        for (k, v) in bad.as_object().unwrap() {
            request[k] = v.clone();
        }
        let answer = call(&mut api, request);
        assert_eq!(kind(&answer), "bad_request", "{answer}");
    }
    assert_eq!(map(&mut api), erin_map);
}
