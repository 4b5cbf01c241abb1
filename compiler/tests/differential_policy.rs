//! Differential test of the whole pipeline against the policy's meaning: on random small
//! policies and tailnets, each node's compiled packet filter, read by the node-side
//! [`Matcher`], allows exactly the flows the naive policy-level reference
//! (`policy_reference/`) allows: it never lets through what the policy denies (fail open) nor
//! refuses what it grants. Flows go between node addresses and from a few other addresses
//! (hosts, prefixes, the outside), over TCP, UDP and SCTP ports, ICMP echo and GRE.
//!
//! Scope: what `policy_reference` models (`acls`, grants' `ip`, app grants as no access,
//! users, `user:*@domain`, groups, tags, hosts, IPs, prefixes, IP sets, `autogroup:member`,
//! `autogroup:tagged`, `autogroup:danger-all`, `autogroup:self`) and subnet routes (approved
//! or not; flows to an address behind a route are checked at every node serving it). Out
//! of scope, never generated: `via`, postures, `autogroup:internet` and exit nodes,
//! `autoApprovers`, Tailscale Services, role autogroups, synced groups.
//!
//! `ACLC_DIFF_CASES` sets the number of random cases (default 300, a few seconds); a
//! million runs in the background in release mode:
//! `ACLC_DIFF_CASES=1000000 cargo test --release -p aclc-compiler --test differential_policy`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod policy_reference;

use std::net::IpAddr;
use std::time::Instant;

use aclc_compiler::matcher::{Flow, LocalNetworks, Matcher, Packet, ParsedRules};
use aclc_compiler::{compile, Inventory};
use ipnet::IpNet;
use policy_reference::{Query, Reference};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{Config, FileFailurePersistence, TestError, TestRunner};
use serde_json::{json, Value};

const USERS: [&str; 4] = [
    "u0@example.com",
    "u1@example.com",
    "u2@example.com",
    "u3@example.org",
];
const TAGS: [&str; 3] = ["tag:a", "tag:b", "tag:c"];
/// IP set entries: addresses and prefixes around the nodes' own (`100.64.0.1` ...), hosts,
/// ranges, and the other set.
const SET_ENTRIES: [&str; 10] = [
    "100.64.0.2",
    "100.64.0.0/30",
    "100.64.0.0/29",
    "100.64.0.3-100.64.0.6",
    "h1",
    "h3",
    "10.1.2.3",
    "fd7a:115c:a1e0::/125",
    "fd7a:115c:a1e0::3",
    "100.64.0.0/10",
];
/// Selectors usable on either side.
const SELECTORS: [&str; 20] = [
    "*",
    "u0@example.com",
    "u1@example.com",
    "u3@example.org",
    "user:*@example.com",
    "group:g1",
    "group:g2",
    "tag:a",
    "tag:b",
    "tag:c",
    "autogroup:member",
    "autogroup:tagged",
    "h1",
    "h2",
    "h3",
    "h4",
    "ipset:s1",
    "ipset:s2",
    "100.64.0.4",
    "100.64.0.0/31",
];
const PORTS: [&str; 7] = ["*", "22", "80-90", "443,8443", "53", "1000-2000", "1-65535"];
/// Grant `ip` entries.
const IP_ENTRIES: [&str; 10] = [
    "*",
    "tcp:22",
    "udp:53",
    "icmp:*",
    "80",
    "tcp:1000-2000",
    "sctp:22",
    "22-25",
    "gre:*",
    "udp:*",
];
/// The (protocol, port) of every flow tried; ICMP (1 or 58, by family) is an echo request.
const PROBES: [(u8, u16); 18] = [
    (6, 0),
    (6, 22),
    (6, 25),
    (6, 53),
    (6, 80),
    (6, 90),
    (6, 91),
    (6, 443),
    (6, 1000),
    (6, 2001),
    (6, 8443),
    (6, 65535),
    (17, 53),
    (17, 1500),
    (132, 22),
    (132, 80),
    (1, 0),
    (47, 0),
];
/// Sources that are no node's address (some behind routes).
const OUTSIDE: [&str; 7] = [
    "10.1.2.3",
    "10.9.9.9",
    "100.64.0.200",
    "8.8.8.8",
    "fd7a:115c:a1e0::99",
    "192.168.1.5",
    "fd00:1::5",
];

/// Subnet routes nodes may advertise (nested and overlapping, both families).
const ROUTES: [&str; 4] = [
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.1.0/24",
    "fd00:1::/64",
];
/// Destinations behind those routes.
const ROUTED: [&str; 4] = ["10.1.2.3", "10.1.9.9", "192.168.1.5", "fd00:1::5"];

/// A node: owned by a user (index) or tagged; the routes it advertises, and which of them
/// are approved (a bit mask).
type NodeSpec = (Option<usize>, Vec<&'static str>, Vec<&'static str>, u8);

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        prop::option::weighted(0.6, 0..USERS.len()),
        subsequence(TAGS.to_vec(), 1..=2),
        prop_oneof![3 => Just(Vec::new()), 1 => subsequence(ROUTES.to_vec(), 1..=2)],
        any::<u8>(),
    )
        .prop_map(|(owner, tags, routes, approve)| match owner {
            Some(_) => (owner, Vec::new(), routes, approve),
            None => (None, tags, routes, approve),
        })
}

/// 2-6 nodes; node `i` has `100.64.0.(i+1)` and `fd7a:115c:a1e0::(i+1)`.
fn inventory() -> impl Strategy<Value = Value> {
    prop::collection::vec(node_spec(), 2..=6).prop_map(|specs| {
        let nodes: Vec<Value> = specs
            .iter()
            .enumerate()
            .map(|(i, (owner, tags, routes, approve))| {
                let approved: Vec<&str> = routes
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| approve & (1 << bit) != 0)
                    .map(|(_, r)| *r)
                    .collect();
                json!({
                    "name": format!("node{i}"),
                    "user": owner.map(|u| USERS[u]),
                    "tags": tags,
                    "ipv4": format!("100.64.0.{}", i + 1),
                    "ipv6": format!("fd7a:115c:a1e0::{:x}", i + 1),
                    "routable_ips": routes,
                    "approved_routes": approved,
                })
            })
            .collect();
        json!({
            "users": USERS.iter().enumerate().map(|(i, e)| json!({
                "id": i + 1, "name": format!("u{i}"), "email": e, "roles": [],
            })).collect::<Vec<_>>(),
            "nodes": nodes,
            "tailnet": {"name": "example.com"},
        })
    })
}

fn ipset() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec((any::<bool>(), select(SET_ENTRIES.to_vec())), 1..5).prop_map(|ops| {
        ops.into_iter()
            .enumerate()
            .map(|(i, (add, entry))| {
                // The first entry is always an addition; a set that only removes is empty.
                if add || i == 0 {
                    format!("add {entry}")
                } else {
                    format!("remove {entry}")
                }
            })
            .collect()
    })
}

fn sources() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop_oneof![
            8 => select(SELECTORS.to_vec()),
            1 => Just("autogroup:danger-all"),
        ],
        1..3,
    )
}

/// Sources `autogroup:self` accepts: users, groups and members.
fn user_like(src: &[&str]) -> bool {
    src.iter()
        .all(|s| s.contains('@') || s.starts_with("group:") || *s == "autogroup:member")
}

fn acl() -> impl Strategy<Value = Value> {
    (
        sources(),
        prop::collection::vec((select(SELECTORS.to_vec()), select(PORTS.to_vec())), 1..3),
        select(vec!["", "", "tcp", "udp", "sctp", "icmp", "gre"]),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(src, dst, proto, self_dst)| {
            let port_less = matches!(proto, "icmp" | "gre");
            let mut dst: Vec<String> = dst
                .iter()
                .map(|(d, p)| format!("{d}:{}", if port_less { "*" } else { p }))
                .collect();
            if self_dst && user_like(&src) {
                dst.push(format!(
                    "autogroup:self:{}",
                    if port_less { "*" } else { "22" }
                ));
            }
            let mut acl = json!({"action": "accept", "src": src, "dst": dst});
            if !proto.is_empty() {
                acl["proto"] = json!(proto);
            }
            acl
        })
}

fn grant() -> impl Strategy<Value = Value> {
    (
        sources(),
        prop::collection::vec(select(SELECTORS.to_vec()), 1..3),
        prop::collection::vec(select(IP_ENTRIES.to_vec()), 1..3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(src, dst, ip, self_dst, app_only)| {
            let mut grant = json!({"src": src, "dst": dst});
            if self_dst && user_like(&src) {
                grant["dst"] = json!(["autogroup:self"]);
            }
            if app_only {
                // Application capabilities only: no network access at all.
                grant["app"] = json!({"example.com/cap/x": [{}]});
            } else {
                grant["ip"] = json!(ip);
            }
            grant
        })
}

fn policy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(acl(), 0..4),
        prop::collection::vec(grant(), 0..4),
        subsequence(USERS.to_vec(), 0..=3),
        subsequence(USERS.to_vec(), 1..=2),
        ipset(),
        ipset(),
    )
        .prop_map(|(acls, grants, g1, g2, s1, mut s2)| {
            s2.push("remove ipset:s1".to_string());
            s2.rotate_right(1);
            s2[0] = "add ipset:s1".to_string();
            json!({
                "groups": {"group:g1": g1, "group:g2": g2},
                "hosts": {
                    "h1": "100.64.0.2",
                    "h2": "100.64.0.0/30",
                    "h3": "10.1.0.0/16",
                    "h4": "fd7a:115c:a1e0::2/127",
                },
                "ipsets": {"ipset:s1": s1, "ipset:s2": s2},
                "tagOwners": {"tag:a": ["u0@example.com"], "tag:b": ["group:g2"], "tag:c": []},
                "acls": acls,
                "grants": grants,
            })
            .to_string()
        })
}

/// What one case found.
#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    refused: u64,
    flows: u64,
    allowed: u64,
}

/// Compile, build each node's matcher, and compare it with the reference on every probe.
fn run_case(policy_text: &str, inventory_json: &Value, tally: &mut Tally) -> Result<(), String> {
    tally.cases += 1;
    let inventory = Inventory::from_json(&inventory_json.to_string()).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.json", policy_text, &options);
    let Ok(checked) = parsed else {
        tally.refused += 1;
        return Ok(());
    };
    let policy = checked.policy;
    let reference = Reference {
        policy: &policy,
        inventory: &inventory,
    };
    reference
        .check_modelled()
        .map_err(|u| format!("the generator made an unmodelled policy: {u:?}"))?;

    let compiled = compile(&policy, &inventory);
    let sources: Vec<IpAddr> = inventory
        .nodes()
        .iter()
        .flat_map(|n| n.addresses())
        .chain(OUTSIDE.iter().map(|a| a.parse().unwrap()))
        .collect();
    for node in inventory.nodes() {
        let view = compiled.node(&node.name).unwrap();
        let json = serde_json::to_string(view.packet_filter_rules()).unwrap();
        let parsed = ParsedRules::from_json(&json).map_err(|e| format!("{e:?}"))?;
        if !parsed.problems().is_empty() {
            return Err(format!(
                "{}: the matcher skips entries: {:?}",
                node.name,
                parsed.problems()
            ));
        }
        // The node enforces for its own addresses and for the routes it serves.
        let routes: Vec<IpNet> = node.served_routes().copied().collect();
        let local = LocalNetworks {
            addresses: node.addresses(),
            routes: routes.clone(),
        };
        let matcher = Matcher::new(&parsed, &local);
        let routed = ROUTED
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap())
            .filter(|a| routes.iter().any(|r| r.contains(a)));
        for dst in node.addresses().into_iter().chain(routed) {
            for &src in sources.iter().filter(|s| s.is_ipv4() == dst.is_ipv4()) {
                for &(proto, port) in &PROBES {
                    let proto = if proto == 1 && dst.is_ipv6() {
                        58
                    } else {
                        proto
                    };
                    let query = Query {
                        src,
                        dst,
                        proto,
                        port,
                    };
                    let flow = Flow::new(src, dst, proto, port).with_packet(match proto {
                        6 => Packet::Tcp { flags: 0x02 },
                        1 => Packet::Icmp {
                            icmp_type: 8,
                            code: 0,
                        },
                        58 => Packet::Icmp {
                            icmp_type: 128,
                            code: 0,
                        },
                        _ => Packet::First,
                    });
                    let expected = reference.allows(&query);
                    let got = matcher.check(&flow);
                    tally.flows += 1;
                    tally.allowed += u64::from(expected);
                    if got.is_allowed() != expected {
                        return Err(format!(
                            "{query:?} at {}: the policy {} it, the node's filter says {got:?}\nfilter: {json}",
                            node.name,
                            if expected { "allows" } else { "denies" }
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ACLC_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn compiled_filters_allow_what_the_policy_allows() {
    let config = Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/differential_policy.proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let tally = std::cell::RefCell::new(Tally::default());
    let start = Instant::now();
    let result = runner.run(&(policy(), inventory()), |(policy, inventory)| {
        run_case(&policy, &inventory, &mut tally.borrow_mut()).map_err(|e| {
            TestCaseError::fail(format!("{e}\npolicy: {policy}\ninventory: {inventory}"))
        })
    });
    let tally = tally.into_inner();
    eprintln!(
        "differential_policy: {} cases ({} refused by validation), {} flows ({} allowed) in {:.1?}",
        tally.cases,
        tally.refused,
        tally.flows,
        tally.allowed,
        start.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, _)) => panic!("{why}"),
        Err(e) => panic!("{e}"),
    }
    // The generator must mostly make policies the validator accepts, and flows both ways.
    assert!(tally.refused * 10 < tally.cases, "{tally:?}");
    assert!(
        tally.allowed > 0 && tally.allowed < tally.flows,
        "{tally:?}"
    );
}

/// Found by this test: an app grant to an address (or a range) behind a subnet route gave the
/// router `CapGrant.Dsts` entries spelled as in `DstPorts` (`"10.1.2.3"`, `"a-b"`). Tailscale
/// types `Dsts` as `[]netip.Prefix`, so the client cannot decode such a map response at all;
/// the matcher reports the entry as skipped. They must be CIDRs.
#[test]
fn cap_grant_destinations_behind_a_route_are_prefixes() {
    let inventory = Inventory::from_json(
        r#"{"users": [{"id": 1, "name": "u0", "email": "u0@example.com", "roles": []}],
            "nodes": [{"name": "router", "user": null, "tags": ["tag:r"],
                       "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
                       "routable_ips": ["10.1.0.0/16"], "approved_routes": ["10.1.0.0/16"]}],
            "tailnet": {"name": "example.com"}}"#,
    )
    .unwrap();
    let policy = r#"{"tagOwners": {"tag:r": []},
        "hosts": {"db": "10.1.2.3"},
        "ipsets": {"ipset:s": ["10.1.2.8-10.1.2.10", "10.1.3.0/24"]},
        "grants": [{"src": ["*"], "dst": ["db", "ipset:s"], "app": {"example.com/cap/x": [{}]}}]}"#;
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.json", policy, &options);
    let compiled = compile(&parsed.unwrap().policy, &inventory);
    let rules = compiled.filter_rules("router").unwrap();
    let dsts: Vec<&str> = rules
        .iter()
        .flat_map(|r| &r.cap_grant)
        .flat_map(|g| g.dsts.iter().map(|d| &**d))
        .collect();
    assert_eq!(
        dsts,
        ["10.1.2.3/32", "10.1.2.8/31", "10.1.2.10/32", "10.1.3.0/24"]
    );
    for dst in &dsts {
        dst.parse::<IpNet>().unwrap();
    }
    let parsed = ParsedRules::from_json(&serde_json::to_string(&rules).unwrap()).unwrap();
    assert!(parsed.problems().is_empty(), "{:?}", parsed.problems());
}
