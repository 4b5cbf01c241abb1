//! SSH lowering through the public API: every user form (`root`, literal names,
//! `autogroup:nonroot`, `localpart:*@domain`), both actions (accept, check with its URL),
//! `acceptEnv`, `autogroup:self`, the source repetitions and the rule order, checked against
//! the exact wire JSON Tailscale sends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_compiler::wire::{SshAction, SshRule};
use aclc_compiler::{compile_with_options, CompileOptions, Compiled, Inventory};
use serde_json::{json, Value};

/// bob has the lower user id, so localpart rules list him first; carol's login is outside the
/// tailnet's domain; `multi` carries two tags.
const INVENTORY: &str = r#"{
    "users": [
        {"id": 2, "name": "alice", "email": "alice@example.com", "roles": ["owner", "admin"]},
        {"id": 1, "name": "bob", "email": "bob@example.com", "roles": []},
        {"id": 3, "name": "carol", "email": "carol@other.org", "roles": []}
    ],
    "nodes": [
        {"name": "alice-laptop", "user": "alice@example.com", "tags": [],
         "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1", "routable_ips": [], "approved_routes": []},
        {"name": "alice-phone", "user": "alice@example.com", "tags": [],
         "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4", "routable_ips": [], "approved_routes": []},
        {"name": "bob-laptop", "user": "bob@example.com", "tags": [],
         "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2", "routable_ips": [], "approved_routes": []},
        {"name": "carol-laptop", "user": "carol@other.org", "tags": [],
         "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3", "routable_ips": [], "approved_routes": []},
        {"name": "server", "user": null, "tags": ["tag:server"],
         "ipv4": "100.64.0.10", "ipv6": "fd7a:115c:a1e0::a", "routable_ips": [], "approved_routes": []},
        {"name": "multi", "user": null, "tags": ["tag:a", "tag:b"],
         "ipv4": "100.64.0.11", "ipv6": "fd7a:115c:a1e0::b", "routable_ips": [], "approved_routes": []}
    ],
    "registration_order": ["alice-laptop", "alice-phone", "bob-laptop", "carol-laptop", "server", "multi"],
    "tailnet": {"name": "example.com"}
}"#;

const TAG_OWNERS: &str = r#""tagOwners": {"tag:server": ["alice@example.com"],
    "tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"]}"#;

fn compiled_with(ssh: &str, options: &CompileOptions) -> Compiled {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let parse_options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let text = format!("{{{TAG_OWNERS}, \"ssh\": {ssh}}}");
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &text, &parse_options);
    let checked = match parsed {
        Ok(checked) => checked,
        Err(found) => panic!("policy refused: {:?}", found.0),
    };
    compile_with_options(&checked.policy, &inventory, options)
}

fn compiled(ssh: &str) -> Compiled {
    compiled_with(ssh, &CompileOptions::default())
}

/// A node's SSH rules as JSON, principals sorted.
fn rules(c: &Compiled, node: &str) -> Value {
    let rules: Vec<Value> = c
        .ssh_rules(node)
        .unwrap()
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap();
            let mut ips: Vec<String> = v["principals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["nodeIP"].as_str().unwrap().to_string())
                .collect();
            ips.sort();
            v["principals"] = json!(ips);
            v
        })
        .collect();
    Value::Array(rules)
}

fn accept() -> Value {
    json!({"accept": true, "allowAgentForwarding": true,
           "allowLocalPortForwarding": true, "allowRemotePortForwarding": true})
}

fn check(base: &str) -> Value {
    json!({"holdAndDelegate": format!(
        "{base}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER")})
}

const ALICE: [&str; 4] = [
    "100.64.0.1",
    "100.64.0.4",
    "fd7a:115c:a1e0::1",
    "fd7a:115c:a1e0::4",
];
const BOB: [&str; 2] = ["100.64.0.2", "fd7a:115c:a1e0::2"];
const CAROL: [&str; 2] = ["100.64.0.3", "fd7a:115c:a1e0::3"];

#[test]
fn root_literal_and_nonroot_users() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"],
             "users": ["root", "ubuntu", "autogroup:nonroot"]}]"#,
    );
    assert_eq!(
        rules(&c, "server"),
        json!([{"principals": ALICE, "action": accept(),
                "sshUsers": {"*": "=", "root": "root", "ubuntu": "ubuntu"}}])
    );
    // Nobody else is a destination.
    for node in ["alice-laptop", "bob-laptop", "multi"] {
        assert_eq!(rules(&c, node), json!([]), "{node}");
    }
}

#[test]
fn root_is_refused_unless_listed() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
             "users": ["ubuntu"]},
            {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
             "users": ["autogroup:nonroot"]}]"#,
    );
    assert_eq!(
        rules(&c, "server"),
        json!([
            {"principals": BOB, "action": accept(), "sshUsers": {"root": "", "ubuntu": "ubuntu"}},
            {"principals": BOB, "action": accept(), "sshUsers": {"*": "=", "root": ""}},
        ])
    );
}

#[test]
fn localpart_splits_the_rule_per_user_in_id_order() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["autogroup:member", "tag:a"], "dst": ["tag:server"],
             "users": ["localpart:*@example.com"]}]"#,
    );
    let multi = ["100.64.0.11", "fd7a:115c:a1e0::b"];
    assert_eq!(
        rules(&c, "server"),
        json!([
            {"principals": BOB, "action": accept(), "sshUsers": {"root": ""}},
            {"principals": BOB, "action": accept(), "sshUsers": {"bob": "bob"}},
            {"principals": ALICE, "action": accept(), "sshUsers": {"root": ""}},
            {"principals": ALICE, "action": accept(), "sshUsers": {"alice": "alice"}},
            // carol's login is not in example.com: only the common rule.
            {"principals": CAROL, "action": accept(), "sshUsers": {"root": ""}},
            // Tagged sources come last, with the common rule only.
            {"principals": multi, "action": accept(), "sshUsers": {"root": ""}},
        ])
    );
    // Each source device gets the rule too, scoped to its own user (or itself).
    assert_eq!(
        rules(&c, "alice-phone"),
        json!([
            {"principals": ALICE, "action": accept(), "sshUsers": {"root": ""}},
            {"principals": ALICE, "action": accept(), "sshUsers": {"alice": "alice"}},
        ])
    );
    assert_eq!(
        rules(&c, "carol-laptop"),
        json!([{"principals": CAROL, "action": accept(), "sshUsers": {"root": ""}}])
    );
    assert_eq!(
        rules(&c, "multi"),
        json!([{"principals": multi, "action": accept(), "sshUsers": {"root": ""}}])
    );
}

#[test]
fn localpart_with_other_users_keeps_them_in_the_common_rule() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
             "users": ["localpart:*@example.com", "root", "deploy"]}]"#,
    );
    assert_eq!(
        rules(&c, "server"),
        json!([
            {"principals": BOB, "action": accept(), "sshUsers": {"deploy": "deploy", "root": "root"}},
            {"principals": BOB, "action": accept(), "sshUsers": {"bob": "bob"}},
        ])
    );
}

#[test]
fn check_action_sends_the_control_url() {
    let ssh = r#"[{"action": "check", "src": ["bob@example.com"], "dst": ["tag:server"],
                   "users": ["root"], "checkPeriod": "1h"}]"#;
    let c = compiled(ssh);
    assert_eq!(
        rules(&c, "server"),
        json!([{"principals": BOB, "action": check("https://unused"), "sshUsers": {"root": "root"}}])
    );
    let mut options = CompileOptions::default();
    options.control_url = "https://login.example.com/".to_string();
    let c = compiled_with(ssh, &options);
    assert_eq!(
        rules(&c, "server")[0]["action"],
        check("https://login.example.com")
    );
}

#[test]
fn accept_env_is_copied_in_order() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"],
             "users": ["root"], "acceptEnv": ["GIT_*", "LANG", "X?"]}]"#,
    );
    assert_eq!(
        rules(&c, "server"),
        json!([{"principals": BOB, "action": accept(), "sshUsers": {"root": "root"},
                "acceptEnv": ["GIT_*", "LANG", "X?"]}])
    );
}

#[test]
fn check_rules_come_before_accept_rules() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:server"], "users": ["root"]},
            {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"]},
            {"action": "check", "src": ["bob@example.com"], "dst": ["tag:server"], "users": ["ubuntu"]}]"#,
    );
    assert_eq!(
        rules(&c, "server"),
        json!([
            {"principals": BOB, "action": check("https://unused"), "sshUsers": {"root": "", "ubuntu": "ubuntu"}},
            {"principals": BOB, "action": accept(), "sshUsers": {"root": "root"}},
            {"principals": ALICE, "action": accept(), "sshUsers": {"root": "root"}},
        ])
    );
}

#[test]
fn autogroup_self_narrows_to_the_owner() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"],
             "users": ["autogroup:nonroot"]}]"#,
    );
    let users = json!({"*": "=", "root": ""});
    for node in ["alice-laptop", "alice-phone"] {
        assert_eq!(
            rules(&c, node),
            json!([{"principals": ALICE, "action": accept(), "sshUsers": users}]),
            "{node}"
        );
    }
    assert_eq!(
        rules(&c, "bob-laptop"),
        json!([{"principals": BOB, "action": accept(), "sshUsers": users}])
    );
    assert_eq!(rules(&c, "server"), json!([]));
}

/// `autogroup:member` as an SSH destination admits each source only to its own user's
/// devices (Tailscale never lets a user SSH into another user's device, kb/1337): the same
/// rules as `autogroup:self`, whatever the sources, and beside a tag the tag's devices keep
/// every source.
#[test]
fn autogroup_member_destination_admits_only_the_owner() {
    for src in [
        r#"["autogroup:member"]"#,
        r#"["alice@example.com"]"#,
        r#"["alice@example.com", "bob@example.com"]"#,
    ] {
        let rule = |dst: &str| {
            format!(r#"[{{"action": "accept", "src": {src}, "dst": {dst}, "users": ["root"]}}]"#)
        };
        let member = compiled(&rule(r#"["autogroup:member", "tag:server"]"#));
        let own = compiled(&rule(r#"["autogroup:self", "tag:server"]"#));
        for node in [
            "alice-laptop",
            "alice-phone",
            "bob-laptop",
            "carol-laptop",
            "server",
        ] {
            assert_eq!(rules(&member, node), rules(&own, node), "{src} {node}");
        }
    }
    // alice alone never reaches bob's laptop; the server takes her.
    let c = compiled(
        r#"[{"action": "accept", "src": ["alice@example.com"], "dst": ["autogroup:member", "tag:server"],
             "users": ["root"]}]"#,
    );
    assert_eq!(rules(&c, "bob-laptop"), json!([]));
    assert_eq!(
        rules(&c, "alice-phone"),
        json!([{"principals": ALICE, "action": accept(), "sshUsers": {"root": "root"}}])
    );
    assert_eq!(
        rules(&c, "server"),
        json!([{"principals": ALICE, "action": accept(), "sshUsers": {"root": "root"}}])
    );
}

#[test]
fn autogroup_tagged_lists_a_device_once_per_tag() {
    let c = compiled(
        r#"[{"action": "accept", "src": ["autogroup:tagged"], "dst": ["tag:server"], "users": ["root"]}]"#,
    );
    let r = rules(&c, "server");
    assert_eq!(
        r[0]["principals"],
        json!([
            "100.64.0.10",
            "100.64.0.11",
            "100.64.0.11",
            "fd7a:115c:a1e0::a",
            "fd7a:115c:a1e0::b",
            "fd7a:115c:a1e0::b"
        ])
    );
    // Named by its tag, the device is listed once.
    let c = compiled(
        r#"[{"action": "accept", "src": ["tag:a", "tag:b"], "dst": ["tag:server"], "users": ["root"]}]"#,
    );
    assert_eq!(
        rules(&c, "server")[0]["principals"],
        json!(["100.64.0.11", "fd7a:115c:a1e0::b"])
    );
}

#[test]
fn empty_sources_and_sections_give_no_rules() {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let (_, parsed) = aclc_policy::parse_str("p", "{}", &aclc_policy::Options::default());
    let c = aclc_compiler::compile(&parsed.unwrap().policy, &inventory);
    assert_eq!(c.ssh_rules("server").unwrap(), Vec::<SshRule>::new());
    assert!(c.ssh_rules("no-such-node").is_none());
    let c = compiled("[]");
    assert_eq!(rules(&c, "server"), json!([]));
}

#[test]
fn wire_form_round_trips() {
    let c = compiled(
        r#"[{"action": "check", "src": ["bob@example.com"], "dst": ["tag:server"], "users": ["root"]}]"#,
    );
    let node = c.node("server").unwrap().to_wire();
    assert_eq!(node.ssh_rules.len(), 1);
    let text = serde_json::to_string(&node.ssh_rules[0]).unwrap();
    assert_eq!(
        text,
        r#"{"principals":[{"nodeIP":"100.64.0.2"},{"nodeIP":"fd7a:115c:a1e0::2"}],"sshUsers":{"root":"root"},"action":{"holdAndDelegate":"https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER"}}"#
    );
    let back: SshRule = serde_json::from_str(&text).unwrap();
    assert_eq!(back, node.ssh_rules[0]);
    assert!(back.action.is_check());
    let with_null: SshRule = serde_json::from_str(
        r#"{"principals":[],"sshUsers":{},"action":{"accept":true},"acceptEnv":null}"#,
    )
    .unwrap();
    assert!(with_null.accept_env.is_empty());
    assert_eq!(
        with_null.action,
        SshAction {
            accept: true,
            ..SshAction::default()
        }
    );
}
