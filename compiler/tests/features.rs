//! Compiling the policy features of issue 8 through the public API: groups synced from the
//! identity provider (membership from the inventory), Tailscale Services (virtual addresses
//! served by approved hosts), session recorders on the SSH action (and the refusal when
//! recording is enforced without a recorder), app connector configuration in the cap map.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_compiler::{auto_approved_routes, compile, Compiled, Inventory, InventoryErrorKind};
use serde_json::{json, Value};

const INVENTORY: &str = r#"{
    "users": [
        {"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["admin"], "groups": ["eng@example.com"]},
        {"id": 2, "name": "bob", "email": "bob@example.com", "roles": []}
    ],
    "nodes": [
        {"name": "alice-laptop", "user": "alice@example.com", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
        {"name": "bob-laptop", "user": "bob@example.com", "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
        {"name": "web-1", "user": null, "tags": ["tag:web"], "ipv4": "100.64.1.1", "ipv6": "fd7a:115c:a1e0::101"},
        {"name": "web-2", "user": null, "tags": ["tag:web"], "ipv4": "100.64.1.2", "ipv6": "fd7a:115c:a1e0::102"},
        {"name": "rec", "user": null, "tags": ["tag:rec"], "ipv4": "100.64.1.9", "ipv6": "fd7a:115c:a1e0::109"}
    ],
    "services": [{"name": "svc:web", "ipv4": "100.100.200.1", "hosts": ["web-1", "web-2"], "approved_hosts": ["web-2"]}],
    "tailnet": {"name": "example.com"}
}"#;

fn compiled(policy: &str) -> Compiled {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", policy, &options);
    let checked = parsed.unwrap_or_else(|d| panic!("refused: {:?}", d.0));
    compile(&checked.policy, &inventory)
}

fn filter(c: &Compiled, node: &str) -> Value {
    serde_json::to_value(c.filter_rules(node).unwrap()).unwrap()
}

#[test]
fn synced_group_members_come_from_the_inventory() {
    let c = compiled(
        r#"{"tagOwners": {"tag:web": ["group:eng@example.com"], "tag:rec": []},
            "grants": [{"src": ["group:eng@example.com"], "dst": ["tag:web"], "ip": ["tcp:22"]},
                       {"src": ["group:nobody@example.com"], "dst": ["tag:rec"], "ip": ["*"]}]}"#,
    );
    assert_eq!(
        filter(&c, "web-1")[0]["SrcIPs"],
        json!(["100.64.0.1", "fd7a:115c:a1e0::1"])
    );
    // No member listed: no source, so no rule (never "everyone").
    assert_eq!(filter(&c, "rec"), json!([]));
}

#[test]
fn inventory_groups_must_be_synced_group_names() {
    let bad = INVENTORY.replace(r#""groups": ["eng@example.com"]"#, r#""groups": ["eng"]"#);
    let err = Inventory::from_json(&bad).unwrap_err();
    assert_eq!(err.kind, InventoryErrorKind::InvalidGroup);
    assert!(
        err.message.contains("users[0].groups[0]"),
        "{}",
        err.message
    );
}

#[test]
fn service_addresses_are_served_by_approved_hosts() {
    let policy = r#"{"tagOwners": {"tag:web": [], "tag:rec": []},
        "grants": [{"src": ["bob@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]}]}"#;
    let c = compiled(policy);
    // web-2 is approved in the inventory; web-1 only advertises.
    assert_eq!(filter(&c, "web-1"), json!([]));
    assert_eq!(
        filter(&c, "web-2")[0]["DstPorts"],
        json!([{"IP": "100.100.200.1", "Ports": {"First": 443, "Last": 443}}])
    );
    // autoApprovers.services approves web-1 too.
    let approved = policy.replace(
        r#""grants""#,
        r#""autoApprovers": {"services": {"svc:web": ["tag:web"]}}, "grants""#,
    );
    let c = compiled(&approved);
    assert_eq!(filter(&c, "web-1")[0]["DstPorts"][0]["IP"], "100.100.200.1");
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let (_, parsed) = aclc_policy::parse_str("p", &approved, &Default::default());
    let routes = auto_approved_routes(&parsed.unwrap().policy, &inventory);
    assert_eq!(
        routes
            .get("web-1")
            .map(|r| r.iter().map(ToString::to_string).collect::<Vec<_>>()),
        Some(vec!["100.100.200.1/32".to_string()])
    );
    // An unknown service reaches nothing.
    let c = compiled(&policy.replace("svc:web", "svc:other"));
    assert_eq!(filter(&c, "web-2"), json!([]));
}

/// A service host is told which services it hosts, at which addresses
/// (`tailcfg.NodeAttrServiceHost`): the client accepts traffic to a service's addresses only
/// with it. An advertising host that is not approved is not told.
#[test]
fn service_hosts_carry_the_service_host_capability() {
    let policy = r#"{"tagOwners": {"tag:web": [], "tag:rec": []},
        "grants": [{"src": ["bob@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]}]}"#;
    let c = compiled(policy);
    let caps = |c: &Compiled, node: &str| c.node(node).unwrap().cap_map();
    assert_eq!(
        caps(&c, "web-2").get("service-host"),
        Some(&json!([{"svc:web": ["100.100.200.1"]}]))
    );
    assert_eq!(caps(&c, "web-1").get("service-host"), None);
    let approved = policy.replace(
        r#""grants""#,
        r#""autoApprovers": {"services": {"svc:web": ["tag:web"]}}, "grants""#,
    );
    assert_eq!(
        caps(&compiled(&approved), "web-1").get("service-host"),
        Some(&json!([{"svc:web": ["100.100.200.1"]}]))
    );
}

/// `autoApprovers.services` keyed by a tag the service carries approves hosts as the
/// service's own name does (real policies write `"tag:k8s": ["tag:k8s"]`); a tag the service
/// does not carry approves nothing.
#[test]
fn service_approvers_keyed_by_the_services_tag() {
    let policy = r#"{"tagOwners": {"tag:web": [], "tag:rec": [], "tag:svc": []},
        "autoApprovers": {"services": {"tag:svc": ["tag:web"]}},
        "grants": [{"src": ["bob@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]}]}"#;
    let tagged = INVENTORY.replace(
        r#""approved_hosts": ["web-2"]}"#,
        r#""approved_hosts": ["web-2"], "tags": ["tag:svc"]}"#,
    );
    let serving = |inventory: &str| {
        let inventory = Inventory::from_json(inventory).unwrap();
        let (_, parsed) = aclc_policy::parse_str("p", policy, &Default::default());
        let c = compile(&parsed.unwrap().policy, &inventory);
        filter(&c, "web-1")
    };
    assert_eq!(serving(&tagged)[0]["DstPorts"][0]["IP"], "100.100.200.1");
    assert_eq!(serving(INVENTORY), json!([]));
}

#[test]
fn services_are_validated_in_the_inventory() {
    for (from, to, kind) in [
        (
            r#""svc:web""#,
            r#""web""#,
            InventoryErrorKind::InvalidService,
        ),
        (
            r#""100.100.200.1""#,
            r#""100.64.0.1""#,
            InventoryErrorKind::DuplicateAddress,
        ),
        (
            r#"["web-1", "web-2"]"#,
            r#"["web-9"]"#,
            InventoryErrorKind::UnknownNode,
        ),
    ] {
        let err = Inventory::from_json(&INVENTORY.replace(from, to)).unwrap_err();
        assert_eq!(err.kind, kind, "{}", err.message);
    }
}

#[test]
fn recorders_and_enforced_recording() {
    let c = compiled(
        r#"{"tagOwners": {"tag:web": [], "tag:rec": [], "tag:none": []},
            "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"],
                     "recorder": ["tag:rec"]},
                    {"action": "check", "src": ["autogroup:member"], "dst": ["tag:rec"], "users": ["root"],
                     "recorder": ["tag:rec"], "enforceRecorder": true},
                    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:rec"], "users": ["ubuntu"],
                     "recorder": ["tag:none"], "enforceRecorder": true},
                    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["ubuntu"],
                     "enforceRecorder": true},
                    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["admin"],
                     "recorder": [], "enforceRecorder": true}]}"#,
    );
    let web = c.ssh_rules("web-1").unwrap();
    assert_eq!(web[0].action.recorders, ["100.64.1.9:80"]);
    // Not enforced: a failed recording lets the session go on.
    assert!(web[0].action.on_recording_failure.is_none());
    let rec = c.ssh_rules("rec").unwrap();
    assert!(rec[0].action.is_check());
    assert!(rec[0].action.on_recording_failure.is_some());
    // Enforced with no recorder device: refused, not admitted unrecorded.
    assert!(rec[1].action.reject && !rec[1].action.accept);
    let wire = serde_json::to_value(&rec[1].action).unwrap();
    assert_eq!(wire["reject"], true);
    assert!(wire["message"].is_string());
    // No recorder named (absent or `[]`): nothing is recorded, so nothing is enforced; the
    // session is admitted ("If no recorder is specified, the session is not recorded").
    for rule in &web[1..] {
        assert!(
            rule.action.accept && !rule.action.reject,
            "{:?}",
            rule.action
        );
        assert!(rule.action.recorders.is_empty());
        assert!(rule.action.on_recording_failure.is_none());
    }
    assert_eq!(web.len(), 3);
}

/// A `check` rule whose recording is enforced and has no recorder device refuses its logins
/// from where the check stood, before the accept rules: after them, a login an earlier
/// accept rule also lists was admitted unrecorded and without the check (found by a
/// differential of SSH answers against the compiled rules).
#[test]
fn a_refused_check_stays_before_the_accept_rules() {
    let c = compiled(
        r#"{"tagOwners": {"tag:web": [], "tag:none": []},
            "ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["ubuntu"]},
                    {"action": "check", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["ubuntu", "root"],
                     "recorder": ["tag:none"], "enforceRecorder": true}]}"#,
    );
    let web = c.ssh_rules("web-1").unwrap();
    assert_eq!(web.len(), 2);
    assert!(
        web[0].action.reject && !web[0].action.accept,
        "{:?}",
        web[0].action
    );
    assert!(web[1].action.accept, "{:?}", web[1].action);
}

/// "Tailscale will automatically ensure that traffic is permitted between Tailscale SSH
/// servers and the recorder nodes to which they send sessions" (Tailscale's session-recording
/// page): each rule's servers reach its recorders on TCP port 80 and are their peers, with no
/// rule written for it. Before, the recorder's filter was empty and it was no server's peer,
/// so recordings could not connect and enforced recording refused every session.
#[test]
fn ssh_servers_reach_their_recorders() {
    let peers = |c: &Compiled, node: &str| -> Vec<String> {
        let mut names: Vec<String> = c
            .node(node)
            .unwrap()
            .peers()
            .map(|p| p.name().to_string())
            .collect();
        names.sort();
        names
    };
    let c = compiled(
        r#"{"tagOwners": {"tag:web": [], "tag:rec": []},
            "grants": [{"src": ["alice@example.com"], "dst": ["tag:web"], "ip": ["tcp:22"]}],
            "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"],
                     "recorder": ["tag:rec"], "enforceRecorder": true},
                    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["ubuntu"],
                     "recorder": ["tag:rec"]},
                    {"action": "accept", "src": ["bob@example.com"], "dst": ["autogroup:self"], "users": ["bob"],
                     "recorder": ["tag:rec"]},
                    {"action": "accept", "src": ["alice@example.com"], "dst": ["autogroup:self"], "users": ["alice"]}]}"#,
    );
    // The web servers of the first two rules (once), and bob's own device of the third; not
    // alice's, whose rule records nothing.
    assert_eq!(
        filter(&c, "rec"),
        json!([
            {"SrcIPs": ["100.64.1.1", "100.64.1.2", "fd7a:115c:a1e0::101", "fd7a:115c:a1e0::102"],
             "DstPorts": [{"IP": "100.64.1.9", "Ports": {"First": 80, "Last": 80}},
                          {"IP": "fd7a:115c:a1e0::109", "Ports": {"First": 80, "Last": 80}}],
             "IPProto": [6]},
            {"SrcIPs": ["100.64.0.2", "fd7a:115c:a1e0::2"],
             "DstPorts": [{"IP": "100.64.1.9", "Ports": {"First": 80, "Last": 80}},
                          {"IP": "fd7a:115c:a1e0::109", "Ports": {"First": 80, "Last": 80}}],
             "IPProto": [6]}
        ])
    );
    assert_eq!(peers(&c, "rec"), ["bob-laptop", "web-1", "web-2"]);
    assert!(peers(&c, "web-1").contains(&"rec".to_string()));
    assert!(!peers(&c, "alice-laptop").contains(&"rec".to_string()));
    // Nothing more: the servers' own filters hold the written grant alone.
    assert_eq!(
        filter(&c, "web-1"),
        json!([{"SrcIPs": ["100.64.0.1", "fd7a:115c:a1e0::1"],
                "DstPorts": [{"IP": "100.64.1.1", "Ports": {"First": 22, "Last": 22}},
                             {"IP": "fd7a:115c:a1e0::101", "Ports": {"First": 22, "Last": 22}}],
                "IPProto": [6]}])
    );
    // Without a recorder, no such access.
    let plain = compiled(
        r#"{"tagOwners": {"tag:web": [], "tag:rec": []},
            "grants": [{"src": ["alice@example.com"], "dst": ["tag:web"], "ip": ["tcp:22"]}],
            "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"]}]}"#,
    );
    assert_eq!(filter(&plain, "rec"), json!([]));
    assert!(peers(&plain, "rec").is_empty());
}

#[test]
fn app_connector_configuration_reaches_the_cap_map() {
    let c = compiled(
        r#"{"tagOwners": {"tag:web": ["autogroup:admin"], "tag:rec": []},
            "nodeAttrs": [{"target": ["tag:web"], "app": {"tailscale.com/app-connectors": [
              {"name": "github", "connectors": ["tag:web"], "domains": ["github.com"]}]}}]}"#,
    );
    let caps = c.node("web-1").unwrap().cap_map();
    assert_eq!(
        serde_json::to_value(caps.get("tailscale.com/app-connectors")).unwrap(),
        json!([{"name": "github", "connectors": ["tag:web"], "domains": ["github.com"]}])
    );
    assert!(!c
        .node("bob-laptop")
        .unwrap()
        .cap_map()
        .contains_key("tailscale.com/app-connectors"));
}

/// `autogroup:self` in a `via` grant gives nothing: a user's own devices are reached directly,
/// never through a router. The self items ignored `via`, so each device got a rule open to
/// its owner's other devices (found by a hostile sweep), where the same grant naming the user
/// gave none. The grant's other destinations keep their `via` routing; the same grant without
/// `via` opens the devices.
#[test]
fn autogroup_self_through_via_gives_nothing() {
    let routed = compiled(
        r#"{"tagOwners": {"tag:web": [], "tag:rec": []},
            "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self", "10.0.0.0/8"],
                        "ip": ["tcp:22"], "via": ["tag:web"]},
                       {"src": ["autogroup:member"], "dst": ["autogroup:self"],
                        "app": {"example.com/cap/x": [{}]}, "via": ["tag:web"]}]}"#,
    );
    for node in ["alice-laptop", "bob-laptop"] {
        assert_eq!(filter(&routed, node), json!([]), "{node}");
    }
    let direct = compiled(
        r#"{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:22"]}]}"#,
    );
    assert_eq!(
        filter(&direct, "alice-laptop")[0]["SrcIPs"],
        json!(["100.64.0.1", "fd7a:115c:a1e0::1"])
    );
}

/// A `via` rule lands on a carrier serving a route (subnet or exit) that overlaps the
/// destination, not on one whose own address the destination holds: a tag, a tailnet prefix
/// or `autogroup:tagged` naming the router opened the router itself, and `*` landed on a
/// carrier serving no route (found by a hostile sweep). `*` on a carrier serving a route is
/// put as written (the reference's lowering).
#[test]
fn via_rules_land_on_routers_by_their_routes() {
    let inventory = Inventory::from_json(
        r#"{"users": [{"id": 1, "name": "alice", "email": "alice@example.com", "roles": []}],
            "nodes": [
              {"name": "alice-laptop", "user": "alice@example.com", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
              {"name": "rtr", "user": null, "tags": ["tag:rtr"], "ipv4": "100.64.0.9", "ipv6": "fd7a:115c:a1e0::9",
               "routable_ips": ["10.1.0.0/16"], "approved_routes": ["10.1.0.0/16"]},
              {"name": "idle", "user": null, "tags": ["tag:idle"], "ipv4": "100.64.0.10", "ipv6": "fd7a:115c:a1e0::a"}
            ],
            "tailnet": {"name": "example.com"}}"#,
    )
    .unwrap();
    let compile_with = |grants: &str| {
        let policy = format!(
            r#"{{"tagOwners": {{"tag:rtr": [], "tag:idle": []}},
                "ipsets": {{"ipset:office": ["add 100.64.0.0/24", "add 10.1.0.0/16"]}},
                "grants": [{grants}]}}"#
        );
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let (_, parsed) = aclc_policy::parse_str("policy.hujson", &policy, &options);
        compile(&parsed.unwrap().policy, &inventory)
    };
    for dst in [
        r#""tag:rtr""#,
        r#""100.64.0.0/10""#,
        r#""autogroup:tagged""#,
    ] {
        let c = compile_with(&format!(
            r#"{{"src": ["alice@example.com"], "dst": [{dst}], "ip": ["tcp:22"], "via": ["tag:rtr"]}}"#
        ));
        assert_eq!(filter(&c, "rtr"), json!([]), "{dst}");
    }
    let c = compile_with(
        r#"{"src": ["alice@example.com"], "dst": ["*"], "ip": ["tcp:22"], "via": ["tag:rtr", "tag:idle"]},
           {"src": ["alice@example.com"], "dst": ["10.1.2.0/24"], "ip": ["tcp:80"], "via": ["tag:rtr"]}"#,
    );
    assert_eq!(filter(&c, "idle"), json!([]));
    let rtr = filter(&c, "rtr");
    assert_eq!(rtr[0]["DstPorts"][0]["IP"], json!("*"), "{rtr}");
    assert_eq!(rtr[0]["DstPorts"][1]["IP"], json!("10.1.2.0/24"), "{rtr}");
    // One destination holding both the router's tailnet prefix and its route (an IP set):
    // the router carries the route only. It took the whole set, which opened itself (found
    // by a fail-open review).
    let c = compile_with(
        r#"{"src": ["alice@example.com"], "dst": ["ipset:office"], "ip": ["tcp:23"], "via": ["tag:rtr"]}"#,
    );
    let rtr = filter(&c, "rtr");
    assert_eq!(
        rtr[0]["DstPorts"],
        json!([{"IP": "10.1.0.0/16", "Ports": {"First": 23, "Last": 23}}]),
        "{rtr}"
    );
}

/// The Kubernetes operator reads a grant's session recorders as addresses (`recorderAddrs`,
/// which Tailscale's control server fills from the `recorder` tags); without a recorder
/// device the value is passed on as written, and `enforceRecorder` makes the operator refuse.
#[test]
fn kubernetes_recorders_become_addresses() {
    let policy = |tag: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:web": [], "tag:rec": [], "tag:none": []}},
                "grants": [{{"src": ["bob@example.com"], "dst": ["tag:web"],
                    "app": {{"tailscale.com/cap/kubernetes": [
                        {{"impersonate": {{"groups": ["system:masters"]}}, "recorder": ["{tag}"], "enforceRecorder": true}},
                        {{"impersonate": {{"groups": ["viewers"]}}}}]}}}}]}}"#
        )
    };
    let value = |c: &Compiled| {
        filter(c, "web-1")[0]["CapGrant"][0]["CapMap"]["tailscale.com/cap/kubernetes"].clone()
    };
    let c = compiled(&policy("tag:rec"));
    assert_eq!(
        value(&c),
        json!([
            {"impersonate": {"groups": ["system:masters"]}, "recorder": ["tag:rec"],
             "enforceRecorder": true, "recorderAddrs": ["100.64.1.9:80"]},
            {"impersonate": {"groups": ["viewers"]}}
        ])
    );
    let c = compiled(&policy("tag:none"));
    assert_eq!(
        value(&c),
        json!([
            {"impersonate": {"groups": ["system:masters"]}, "recorder": ["tag:none"], "enforceRecorder": true},
            {"impersonate": {"groups": ["viewers"]}}
        ])
    );
}
