//! What an approved exit node's packet filter holds. Tailscale's control server treats
//! `0.0.0.0/0` and `::/0` as routes overlapping every destination: an exit node receives
//! every network rule's destinations of the families it exits to (a tag's devices, a user's,
//! private prefixes), while the peer relation stays as the rules' destination devices say
//! (recordings in `testdata/captures`, e.g. `acl-mr21-old`, `routes-f6-filter-srcips-expansion`).
//! A `via` rule still lands on its carriers only. `ExitNodeFilters::InternetOnly` keeps the
//! internet's destinations alone, and a filter past the entry limit is refused, naming the
//! exit node and the option.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aclc_compiler::{
    try_compile_with_options, CompileOptions, Compiled, ExitNodeFilters, Inventory,
};
use serde_json::{json, Value};

const INVENTORY: &str = r#"{
    "users": [{"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["admin"]}],
    "nodes": [
        {"name": "laptop", "user": "alice@example.com", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
        {"name": "server", "tags": ["tag:server"], "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2"},
        {"name": "exit", "tags": ["tag:exit"], "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3",
         "routable_ips": ["0.0.0.0/0", "::/0"], "approved_routes": ["0.0.0.0/0", "::/0"]},
        {"name": "exit4", "tags": ["tag:exit"], "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4",
         "routable_ips": ["0.0.0.0/0"], "approved_routes": ["0.0.0.0/0"]},
        {"name": "router", "tags": ["tag:router"], "ipv4": "100.64.0.5", "ipv6": "fd7a:115c:a1e0::5",
         "routable_ips": ["10.9.0.0/16"], "approved_routes": ["10.9.0.0/16"]}
    ],
    "tailnet": {"name": "example.com"}
}"#;

const POLICY: &str = r#"{
    "tagOwners": {"tag:server": ["autogroup:admin"], "tag:exit": ["autogroup:admin"],
                  "tag:router": ["autogroup:admin"]},
    "acls": [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server:22"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": ["10.33.0.0/16:*"]}
    ],
    "grants": [
        {"src": ["autogroup:member"], "dst": ["10.9.0.0/16"], "ip": ["tcp:443"], "via": ["tag:router"]}
    ]
}"#;

fn compiled(
    policy: &str,
    exits: ExitNodeFilters,
    max_entries: Option<u64>,
) -> Result<Compiled, String> {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", policy, &options);
    let checked = parsed.unwrap_or_else(|d| panic!("refused: {:?}", d.0));
    let mut options = CompileOptions::default();
    options.exit_node_filters = exits;
    if let Some(max) = max_entries {
        options.limits.max_node_filter_entries = max;
    }
    try_compile_with_options(&checked.policy, &inventory, &options)
        .map_err(|e| format!("{} / {}", e, e.to_diagnostic().help.unwrap_or_default()))
}

fn filter(c: &Compiled, node: &str) -> Value {
    serde_json::to_value(c.node(node).unwrap().to_wire()).unwrap()["packet_filter_rules"].clone()
}

fn peers(c: &Compiled, node: &str) -> Vec<String> {
    let wire = serde_json::to_value(c.node(node).unwrap().to_wire()).unwrap();
    wire["peers"].as_object().unwrap().keys().cloned().collect()
}

fn entry(ip: &str, first: u16, last: u16) -> Value {
    json!({"IP": ip, "Ports": {"First": first, "Last": last}})
}

const LAPTOP: [&str; 2] = ["100.64.0.1", "fd7a:115c:a1e0::1"];

#[test]
fn an_exit_node_receives_every_destination_of_its_families() {
    let c = compiled(POLICY, ExitNodeFilters::default(), None).unwrap();
    // Both rules come from the same sources: one rule, every entry of both.
    assert_eq!(
        filter(&c, "exit"),
        json!([{
            "SrcIPs": LAPTOP,
            "DstPorts": [
                entry("100.64.0.2", 22, 22),
                entry("fd7a:115c:a1e0::2", 22, 22),
                entry("10.33.0.0/16", 0, 65535),
            ],
        }])
    );
    // An IPv4 exit node: the IPv4 destinations.
    assert_eq!(
        filter(&c, "exit4"),
        json!([{
            "SrcIPs": LAPTOP,
            "DstPorts": [entry("100.64.0.2", 22, 22), entry("10.33.0.0/16", 0, 65535)],
        }])
    );
    // The server's own filter is as before: only its own entries.
    assert_eq!(
        filter(&c, "server"),
        json!([{
            "SrcIPs": LAPTOP,
            "DstPorts": [entry("100.64.0.2", 22, 22), entry("fd7a:115c:a1e0::2", 22, 22)],
        }])
    );
    // The `via` grant stays on its router.
    assert!(!filter(&c, "exit").to_string().contains("10.9.0.0/16"));
    assert!(filter(&c, "router").to_string().contains("10.9.0.0/16"));
    // The peers do not follow the filter: the laptop sees the server and the router (and
    // the exit nodes, which every member may use), the server does not see the exit nodes.
    assert!(!peers(&c, "server").contains(&"exit".to_string()));
    assert!(!peers(&c, "exit").contains(&"server".to_string()));
}

#[test]
fn internet_only_keeps_the_exit_nodes_filters_small() {
    let c = compiled(POLICY, ExitNodeFilters::InternetOnly, None).unwrap();
    assert_eq!(filter(&c, "exit"), json!([]));
    assert_eq!(filter(&c, "exit4"), json!([]));
    let all = compiled(POLICY, ExitNodeFilters::AllDestinations, None).unwrap();
    for node in ["laptop", "server", "router"] {
        assert_eq!(filter(&c, node), filter(&all, node), "{node}");
    }
}

#[test]
fn an_exit_filter_past_the_limit_is_refused_naming_the_option() {
    // Four entries on the exit node, two on the server.
    let refused = compiled(POLICY, ExitNodeFilters::AllDestinations, Some(2)).unwrap_err();
    assert!(
        refused.contains("node exit's packet filter would hold more than 2 entries"),
        "{refused}"
    );
    assert!(
        refused.contains("--exit-node-filters internet"),
        "{refused}"
    );
    assert!(compiled(POLICY, ExitNodeFilters::InternetOnly, Some(2)).is_ok());
}
