//! Nodes with one address family (issue 12 item 3): IPv4-only and IPv6-only nodes, as
//! self-hosted control servers assign them, compiled next to dual-stack nodes. A node lists
//! only the addresses it has; others name it in their filters (`SrcIPs`, `DstPorts`,
//! `CapGrant.Dsts`) and SSH principals only by those; a peer's AllowedIPs hold its addresses
//! of the families both ends have; no unspecified address (`0.0.0.0`, `::`) appears anywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_compiler::{compile, Compiled, Inventory};
use serde_json::{json, Value};

const INVENTORY: &str = r#"{
    "users": [
        {"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["admin"]},
        {"id": 2, "name": "bob", "email": "bob@example.com", "roles": []}
    ],
    "nodes": [
        {"name": "dual", "user": "alice@example.com", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
        {"name": "v4only", "user": "alice@example.com", "ipv4": "100.64.0.2"},
        {"name": "v6only", "user": "bob@example.com", "ipv6": "fd7a:115c:a1e0::3"},
        {"name": "router", "tags": ["tag:router"], "ipv4": "100.64.0.4",
         "routable_ips": ["10.0.0.0/16"], "approved_routes": ["10.0.0.0/16"]},
        {"name": "server", "tags": ["tag:server"], "ipv6": "fd7a:115c:a1e0::5"}
    ],
    "tailnet": {"name": "example.com"}
}"#;

const POLICY: &str = r#"{
    "tagOwners": {"tag:router": ["autogroup:admin"], "tag:server": ["autogroup:admin"]},
    "acls": [
        {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:22,443"]},
        {"action": "accept", "src": ["bob@example.com"], "dst": ["10.0.0.0/16:*", "tag:router:53"]}
    ],
    "grants": [
        {"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:80"]},
        {"src": ["tag:router"], "dst": ["tag:server"], "app": {"example.com/cap/metrics": [{"port": 9100}]}}
    ],
    "ssh": [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]},
        {"action": "check", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["ubuntu"]}
    ]
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

fn wire(c: &Compiled, node: &str) -> Value {
    serde_json::to_value(c.node(node).unwrap().to_wire()).unwrap()
}

fn peers(c: &Compiled, node: &str) -> Value {
    wire(c, node)["peers"].clone()
}

/// Every string in a JSON value (keys and values).
fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings_of(x, out);
        }),
        _ => {}
    }
}

const NODES: [&str; 5] = ["dual", "v4only", "v6only", "router", "server"];

#[test]
fn no_unspecified_address_anywhere() {
    let c = compiled(POLICY);
    for node in NODES {
        let mut strings = Vec::new();
        strings_of(&wire(&c, node), &mut strings);
        for s in strings {
            let bare = s.split('/').next().unwrap_or(&s);
            let unspecified = bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_unspecified());
            assert!(!unspecified, "{node}: placeholder address {s}");
        }
        let view = c.node(node).unwrap();
        assert!(view.addrs().iter().all(|a| !a.is_unspecified()));
        for peer in view.peers() {
            assert!(peer
                .allowed_ips()
                .iter()
                .all(|n| !n.addr().is_unspecified()));
        }
    }
}

#[test]
fn a_node_lists_only_the_addresses_it_has() {
    let c = compiled(POLICY);
    let own = |n: &str| {
        let w = wire(&c, n);
        (w["addresses"].clone(), w["allowed_ips"].clone())
    };
    assert_eq!(
        own("dual"),
        (
            json!(["100.64.0.1/32", "fd7a:115c:a1e0::1/128"]),
            json!(["100.64.0.1/32", "fd7a:115c:a1e0::1/128"])
        )
    );
    assert_eq!(
        own("v4only"),
        (json!(["100.64.0.2/32"]), json!(["100.64.0.2/32"]))
    );
    assert_eq!(
        own("v6only"),
        (
            json!(["fd7a:115c:a1e0::3/128"]),
            json!(["fd7a:115c:a1e0::3/128"])
        )
    );
    assert_eq!(
        own("router"),
        (
            json!(["100.64.0.4/32"]),
            json!(["100.64.0.4/32", "10.0.0.0/16"])
        )
    );
    // The public API: `addrs` has what the node has; `addresses` keeps its two-element
    // shape with the unspecified address for a missing family.
    let v6 = c.node("v6only").unwrap();
    assert_eq!(
        v6.addrs(),
        ["fd7a:115c:a1e0::3".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        v6.addresses(),
        [
            "0.0.0.0".parse::<std::net::IpAddr>().unwrap(),
            "fd7a:115c:a1e0::3".parse().unwrap()
        ]
    );
}

#[test]
fn peers_see_the_families_both_ends_have() {
    let c = compiled(POLICY);
    assert_eq!(
        peers(&c, "dual"),
        json!({
            "server": {"allowed_ips": ["fd7a:115c:a1e0::5/128"]},
            "v4only": {"allowed_ips": ["100.64.0.2/32"]}
        })
    );
    // An IPv4-only viewer does not see IPv6 addresses; a peer with no family in common has
    // no address in its AllowedIPs (it stays a peer: the policy lets them talk).
    assert_eq!(
        peers(&c, "v4only"),
        json!({
            "dual": {"allowed_ips": ["100.64.0.1/32"]},
            "server": {"allowed_ips": []}
        })
    );
    // Subnet routes are carried whatever the families of the two nodes.
    assert_eq!(
        peers(&c, "v6only"),
        json!({
            "router": {"allowed_ips": ["10.0.0.0/16"], "primary_routes": ["10.0.0.0/16"]}
        })
    );
    assert_eq!(
        peers(&c, "server"),
        json!({
            "dual": {"allowed_ips": ["fd7a:115c:a1e0::1/128"]},
            "router": {"allowed_ips": []},
            "v4only": {"allowed_ips": []}
        })
    );
    let server = c.node("server").unwrap();
    let dual = server.peers().find(|p| p.name() == "dual").unwrap();
    assert_eq!(dual.addrs().len(), 2);
    assert_eq!(
        dual.allowed_ips(),
        ["fd7a:115c:a1e0::1/128".parse::<ipnet::IpNet>().unwrap()]
    );
}

#[test]
fn filters_name_nodes_by_the_addresses_they_have() {
    let c = compiled(POLICY);
    let port = |ip: &str, p: u16| json!({"IP": ip, "Ports": {"First": p, "Last": p}});
    // autogroup:self: alice's two devices (one dual-stack, one IPv4-only) as sources, each
    // destination by its own addresses.
    let self_rule = |dsts: Value| {
        json!([{
            "SrcIPs": ["100.64.0.1", "100.64.0.2", "fd7a:115c:a1e0::1"],
            "DstPorts": dsts,
            "IPProto": [6]
        }])
    };
    assert_eq!(
        wire(&c, "dual")["packet_filter_rules"],
        self_rule(json!([
            port("100.64.0.1", 80),
            port("fd7a:115c:a1e0::1", 80)
        ]))
    );
    assert_eq!(
        wire(&c, "v4only")["packet_filter_rules"],
        self_rule(json!([port("100.64.0.2", 80)]))
    );
    assert_eq!(
        wire(&c, "v6only")["packet_filter_rules"],
        json!([{
            "SrcIPs": ["fd7a:115c:a1e0::3"],
            "DstPorts": [port("fd7a:115c:a1e0::3", 80)],
            "IPProto": [6]
        }])
    );
    // An IPv4-only router: its own address and the route.
    let all = json!({"First": 0, "Last": 65535});
    assert_eq!(
        wire(&c, "router")["packet_filter_rules"],
        json!([{
            "SrcIPs": ["fd7a:115c:a1e0::3"],
            "DstPorts": [{"IP": "10.0.0.0/16", "Ports": all}, port("100.64.0.4", 53)]
        }])
    );
    // An IPv6-only server: an app grant from the IPv4-only router, ACL ports on its one
    // address.
    assert_eq!(
        wire(&c, "server")["packet_filter_rules"],
        json!([
            {
                "SrcIPs": ["100.64.0.4"],
                "CapGrant": [{
                    "Dsts": ["fd7a:115c:a1e0::5/128"],
                    "CapMap": {"example.com/cap/metrics": [{"port": 9100}]}
                }]
            },
            {
                "SrcIPs": ["100.64.0.1", "100.64.0.2", "fd7a:115c:a1e0::1"],
                "DstPorts": [port("fd7a:115c:a1e0::5", 22), port("fd7a:115c:a1e0::5", 443)]
            }
        ])
    );
}

#[test]
fn ssh_principals_are_the_addresses_devices_have() {
    let c = compiled(POLICY);
    let principals = |node: &str| wire(&c, node)["ssh_rules"][0]["principals"].clone();
    let alice = json!([
        {"nodeIP": "100.64.0.1"},
        {"nodeIP": "fd7a:115c:a1e0::1"},
        {"nodeIP": "100.64.0.2"}
    ]);
    assert_eq!(principals("dual"), alice);
    assert_eq!(principals("v4only"), alice);
    assert_eq!(principals("server"), alice);
    assert_eq!(
        principals("v6only"),
        json!([{"nodeIP": "fd7a:115c:a1e0::3"}])
    );
}

#[test]
fn recorders_are_reached_on_the_address_they_have() {
    let c = compiled(
        r#"{
        "tagOwners": {"tag:router": ["autogroup:admin"], "tag:server": ["autogroup:admin"]},
        "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}],
        "ssh": [
            {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:router"], "users": ["root"],
             "recorder": ["tag:server"]}
        ]
    }"#,
    );
    let rules = wire(&c, "router")["ssh_rules"].clone();
    assert_eq!(
        rules[0]["action"]["recorders"],
        json!(["[fd7a:115c:a1e0::5]:80"])
    );
}

#[test]
fn the_wildcard_reaches_single_family_nodes_by_their_addresses() {
    let c = compiled(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#);
    // Every node is everyone's peer; AllowedIPs still follow the families.
    assert_eq!(
        peers(&c, "v6only"),
        json!({
            "dual": {"allowed_ips": ["fd7a:115c:a1e0::1/128"]},
            "router": {"allowed_ips": ["10.0.0.0/16"], "primary_routes": ["10.0.0.0/16"]},
            "server": {"allowed_ips": ["fd7a:115c:a1e0::5/128"]},
            "v4only": {"allowed_ips": []}
        })
    );
}
