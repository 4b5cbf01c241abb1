//! Property tests of the compiler on random tailnets and policies: compiling never panics, a
//! node only receives rules that concern it, and the order of the inventory never shows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::IpAddr;

use aclc_compiler::{compile, Inventory};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{json, Value};

const USERS: [&str; 4] = [
    "u0@example.com",
    "u1@example.com",
    "u2@example.com",
    "u3@example.org",
];
const TAGS: [&str; 3] = ["tag:a", "tag:b", "tag:c"];
const ROUTES: [&str; 7] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.1.0/24",
    "fd00:1::/64",
    "0.0.0.0/0",
    "::/0",
];
/// Selectors usable as sources (and, but for `danger-all`, as destinations).
const SOURCES: [&str; 15] = [
    "*",
    "u0@example.com",
    "u1@example.com",
    "group:g1",
    "group:g2",
    "tag:a",
    "tag:b",
    "tag:c",
    "autogroup:member",
    "autogroup:tagged",
    "h1",
    "h2",
    "10.0.0.0/8",
    "100.64.0.0/12",
    "autogroup:danger-all",
];
/// Destination-only selectors.
const DESTINATIONS: [&str; 4] = ["autogroup:internet", "h3", "192.168.0.0/16", "8.8.8.0/24"];
const PORTS: [&str; 5] = ["*", "22", "80-90", "443,8443", "53"];
const IP_ENTRIES: [&str; 6] = ["*", "tcp:22", "udp:53", "icmp:*", "80", "tcp:1000-2000"];

prop_compose! {
    /// One node: owner or tags, advertised routes and which of them are approved.
    fn node_spec()(
        owner in prop::option::of(0..USERS.len()),
        tags in subsequence(TAGS.to_vec(), 1..=2),
        advertised in subsequence(ROUTES.to_vec(), 0..=3),
        approve_mask in any::<u8>(),
        host in any::<u16>(),
    ) -> (Option<usize>, Vec<&'static str>, Vec<&'static str>, Vec<&'static str>, u16) {
        let approved = advertised
            .iter()
            .enumerate()
            .filter(|(i, _)| approve_mask & (1 << i) != 0)
            .map(|(_, r)| *r)
            .collect();
        let tags = if owner.is_some() { Vec::new() } else { tags };
        (owner, tags, advertised, approved, host)
    }
}

prop_compose! {
    /// An inventory of 1-10 nodes, with a registration order that may leave nodes out.
    fn inventory()(nodes in prop::collection::vec(node_spec(), 1..10), order_seed in any::<u64>())
        -> Value
    {
        let nodes: Vec<Value> = nodes
            .iter()
            .enumerate()
            .map(|(i, (owner, tags, advertised, approved, host))| {
                let mut node = json!({
                    "name": format!("node{i}"),
                    "user": owner.map(|u| USERS[u]),
                    "tags": tags,
                    "ipv4": format!("100.{}.{}.{}", 64 + i, host >> 8, (host & 0xff).max(1)),
                    "ipv6": format!("fd7a:115c:a1e0::{:x}:{:x}", i + 1, host),
                    "routable_ips": advertised,
                    "approved_routes": approved,
                });
                // Some nodes have one address family (IPv4-only or IPv6-only pools).
                match host % 7 {
                    0 => node.as_object_mut().unwrap().remove("ipv6"),
                    1 => node.as_object_mut().unwrap().remove("ipv4"),
                    _ => None,
                };
                node
            })
            .collect();
        let mut order: Vec<String> = (0..nodes.len()).map(|i| format!("node{i}")).collect();
        // A cheap deterministic shuffle, dropping the last node now and then.
        let mut seed = order_seed;
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        if order_seed % 4 == 0 {
            order.pop();
        }
        json!({
            "users": USERS.iter().enumerate().map(|(i, e)| json!({
                "id": i + 1, "name": format!("u{i}"), "email": e,
                "roles": if i == 0 { vec!["owner", "admin"] } else { vec![] },
            })).collect::<Vec<_>>(),
            "nodes": nodes,
            "registration_order": order,
            "tailnet": {"name": "u0@example.com"},
        })
    }
}

fn selector() -> impl Strategy<Value = &'static str> {
    select(SOURCES.to_vec())
}

fn destination() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => select(SOURCES[..SOURCES.len() - 1].to_vec()),
        1 => select(DESTINATIONS.to_vec()),
    ]
}

prop_compose! {
    fn acl()(
        src in prop::collection::vec(selector(), 1..3),
        dst in prop::collection::vec((destination(), select(PORTS.to_vec())), 1..3),
        proto in select(vec!["", "tcp", "udp", "icmp"]),
        self_dst in any::<bool>(),
    ) -> Value {
        let user_like = src.iter().all(|s| s.contains('@') || s.starts_with("group:") || *s == "autogroup:member");
        let mut dst: Vec<String> = dst
            .iter()
            .map(|(d, p)| format!("{d}:{}", if proto == "icmp" { "*" } else { p }))
            .collect();
        if self_dst && user_like {
            dst.push("autogroup:self:*".to_string());
        }
        let mut acl = json!({"action": "accept", "src": src, "dst": dst});
        if !proto.is_empty() {
            acl["proto"] = json!(proto);
        }
        acl
    }
}

prop_compose! {
    fn grant()(
        src in prop::collection::vec(selector(), 1..3),
        dst in prop::collection::vec(destination(), 1..3),
        ip in prop::collection::vec(select(IP_ENTRIES.to_vec()), 0..3),
        app in select(vec!["", "example.com/cap/x", "tailscale.com/cap/drive", "tailscale.com/cap/relay"]),
        via in any::<bool>(),
        self_dst in any::<bool>(),
    ) -> Value {
        let user_like = src.iter().all(|s| s.contains('@') || s.starts_with("group:") || *s == "autogroup:member");
        let mut grant = json!({"src": src, "dst": dst});
        if via {
            grant["dst"] = json!(["10.1.0.0/16", "autogroup:internet"]);
            grant["via"] = json!(["tag:a"]);
        } else if self_dst && user_like {
            grant["dst"] = json!(["autogroup:self"]);
        }
        if !ip.is_empty() {
            grant["ip"] = json!(ip);
        }
        if !app.is_empty() && !via {
            grant["app"] = json!({app: [{}]});
            if let Some(dst) = grant["dst"].as_array_mut() {
                dst.retain(|d| d != "autogroup:internet");
                if dst.is_empty() {
                    dst.push(json!("*"));
                }
            }
        }
        if grant.get("ip").is_none() && grant.get("app").is_none() {
            grant["ip"] = json!(["*"]);
        }
        grant
    }
}

prop_compose! {
    fn policy()(
        acls in prop::option::of(prop::collection::vec(acl(), 0..4)),
        grants in prop::option::of(prop::collection::vec(grant(), 0..4)),
        g1 in subsequence(USERS[..3].to_vec(), 0..=3),
        g2 in subsequence(USERS[..3].to_vec(), 1..=2),
    ) -> String {
        let mut policy = json!({
            "groups": {"group:g1": g1, "group:g2": g2},
            "hosts": {"h1": "10.1.2.3", "h2": "10.1.0.0/16", "h3": "100.64.0.0/12"},
            "tagOwners": {"tag:a": ["u0@example.com"], "tag:b": ["u0@example.com"], "tag:c": ["group:g2"]},
            "autoApprovers": {
                "routes": {"10.0.0.0/8": ["tag:a"], "192.168.0.0/16": ["group:g2"]},
                "exitNode": ["tag:b"],
            },
        });
        if let Some(acls) = acls {
            policy["acls"] = json!(acls);
        }
        if let Some(grants) = grants {
            policy["grants"] = json!(grants);
        }
        policy.to_string()
    }
}

/// The policy and inventory, or `None` when the random policy is one Tailscale refuses.
fn build(policy: &str, inventory: &Value) -> Option<(aclc_policy::model::Policy, Inventory)> {
    let inventory = Inventory::from_json(&inventory.to_string()).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.json", policy, &options);
    Some((parsed.ok()?.policy, inventory))
}

/// The addresses of a wire string: `*`, bare IP, CIDR or range.
fn wire_nets(text: &str) -> Vec<IpNet> {
    if text == "*" {
        return vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return vec![IpNet::from(ip)];
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return vec![net];
    }
    let (a, b) = text.split_once('-').unwrap();
    let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => panic!("mixed range {text}"),
    }
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

proptest! {
    #![proptest_config(ProptestConfig { max_global_rejects: 100_000, ..ProptestConfig::default() })]

    /// Compiling never panics, and every rule a node gets names one of its addresses or a
    /// route it serves (or `*`).
    #[test]
    fn rules_concern_their_node(policy in policy(), inventory in inventory()) {
        let Some((policy, inventory)) = build(&policy, &inventory) else {
            return Err(TestCaseError::reject("policy refused"));
        };
        let compiled = compile(&policy, &inventory);
        for view in compiled.nodes() {
            let own: Vec<IpNet> = view.allowed_ips();
            for rule in view.packet_filter_rules() {
                let dsts: Vec<&str> = rule
                    .dst_ports
                    .iter()
                    .map(|d| &*d.ip)
                    .chain(rule.cap_grant.iter().flat_map(|g| g.dsts.iter().map(|d| &**d)))
                    .collect();
                prop_assert!(!dsts.is_empty(), "{}: empty rule {rule:?}", view.name());
                let hits = dsts.iter().any(|d| {
                    *d == "*" || wire_nets(d).iter().any(|n| own.iter().any(|o| overlap(n, o)))
                });
                prop_assert!(hits, "{}: rule misses the node: {rule:?} (own {own:?})", view.name());
            }
            // Serialising never fails either.
            serde_json::to_string(&view.to_wire()).unwrap();
        }
    }

    /// Reordering the inventory's nodes and users changes nothing in the output.
    #[test]
    fn inventory_order_does_not_matter(policy in policy(), inventory in inventory(), seed in any::<u64>()) {
        let mut shuffled = inventory.clone();
        let nodes = shuffled["nodes"].as_array_mut().unwrap();
        let len = nodes.len();
        let mut s = seed;
        for i in (1..len).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            nodes.swap(i, (s >> 33) as usize % (i + 1));
        }
        shuffled["users"].as_array_mut().unwrap().reverse();
        let Some((policy_a, inventory_a)) = build(&policy, &inventory) else {
            return Err(TestCaseError::reject("policy refused"));
        };
        let (policy_b, inventory_b) = build(&policy, &shuffled).unwrap();
        let a = compile(&policy_a, &inventory_a);
        let b = compile(&policy_b, &inventory_b);
        let names_a: Vec<&str> = a.node_names().collect();
        let names_b: Vec<&str> = b.node_names().collect();
        prop_assert_eq!(&names_a, &names_b);
        for name in names_a {
            let wa = serde_json::to_value(a.node(name).unwrap().to_wire()).unwrap();
            let wb = serde_json::to_value(b.node(name).unwrap().to_wire()).unwrap();
            prop_assert_eq!(wa, wb, "node {}", name);
        }
    }
}

/// Test sources: addresses (some of them nodes' in the generated tailnets), a host, a user,
/// a group, a tag.
const TEST_SOURCES: [&str; 7] = [
    "10.1.2.3",
    "100.64.0.1",
    "100.65.0.1",
    "h1",
    "u0@example.com",
    "group:g1",
    "tag:a",
];
/// Test destinations.
const TEST_DESTINATIONS: [&str; 7] = [
    "10.1.2.3:22",
    "h1:80",
    "100.64.0.1:22",
    "100.65.1.1:443",
    "192.168.1.1:53",
    "8.8.8.8:53",
    "tag:a:22",
];

prop_compose! {
    /// A policy of the generator above with `tests` between those endpoints.
    fn policy_with_tests()(
        policy in policy(),
        tests in prop::collection::vec(
            (
                select(TEST_SOURCES.to_vec()),
                subsequence(TEST_DESTINATIONS.to_vec(), 0..=2),
                subsequence(TEST_DESTINATIONS.to_vec(), 0..=2),
            ),
            1..4,
        ),
    ) -> String {
        let mut policy: Value = serde_json::from_str(&policy).unwrap();
        policy["tests"] = tests
            .into_iter()
            .map(|(src, accept, deny)| json!({"src": src, "accept": accept, "deny": deny}))
            .collect();
        policy.to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What `check` refuses without an inventory (`check_test_shapes`: malformed tests,
    /// undefined names, and `deny` assertions the rules break with no node at all) fails on
    /// every tailnet: here, on random ones. A tailnet's nodes only add to what rules allow.
    #[test]
    fn test_failures_without_an_inventory_fail_on_every_tailnet(
        policy in policy_with_tests(),
        inventory in inventory(),
    ) {
        // The first two nodes take addresses the tests write (the generator's are random).
        let mut inventory = inventory;
        for (i, address) in ["100.64.0.1", "100.65.0.1"].iter().enumerate() {
            if let Some(node) = inventory["nodes"].get_mut(i) {
                node["ipv4"] = json!(address);
            }
        }
        let Some((policy, inventory)) = build(&policy, &inventory) else {
            return Ok(());
        };
        let report = aclc_compiler::run_tests(&policy, &compile(&policy, &inventory));
        for shape in aclc_compiler::check_test_shapes(&policy).results {
            let failed = report
                .results
                .iter()
                .any(|r| r.kind == shape.kind && r.test == shape.test && !r.passed);
            prop_assert!(failed, "fails without an inventory only: {:?}", shape);
        }
    }
}
