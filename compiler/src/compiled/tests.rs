//! Unit tests of the compile: vacant items, merged rules, peers and views on small tailnets.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use std::sync::Arc;

use super::*;

const INVENTORY: &str = r#"{
        "users": [{"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["owner"]}],
        "nodes": [
            {"name": "laptop", "user": "odin@example.com", "tags": [],
             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
             "routable_ips": [], "approved_routes": []},
            {"name": "router", "user": null, "tags": ["tag:router"],
             "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
             "routable_ips": ["10.1.0.0/16"], "approved_routes": []}
        ],
        "registration_order": ["laptop", "router"],
        "tailnet": {"name": "odin@example.com"}
    }"#;

fn compiled(policy: &str) -> Compiled {
    compiled_in(INVENTORY, policy)
}

fn compiled_in(inventory: &str, policy: &str) -> Compiled {
    let inventory = Inventory::from_json(inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy", policy, &options);
    compile(&parsed.unwrap().policy, &inventory)
}

/// A rule whose sources resolve to nothing (a user without devices) keeps its item,
/// vacant: no filter entry, no peer, and the same items as when the user has a device, so
/// a node event that gives the user its first device (or takes its last) patches the
/// per-node index instead of renumbering all of it.
#[test]
fn a_rule_without_sources_keeps_a_vacant_item() {
    let policy = r#"{"tagOwners": {"tag:router": ["odin@example.com"]},
            "acls": [{"action": "accept", "src": ["thor@example.com"], "dst": ["tag:router:80"]},
                     {"action": "accept", "src": ["odin@example.com"], "dst": ["tag:router:443"]}]}"#;
    let c = compiled(policy);
    let items = &c.lowered.items;
    assert_eq!(items.len(), 2);
    assert!(c.lowered.is_vacant(&items[0]) && !c.lowered.is_vacant(&items[1]));
    let router = c.node("router").unwrap();
    let rules = router.packet_filter_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].dst_ports[0].ports.first, 443);
    // The router peers with odin's laptop only (the vacant rule makes no peer).
    assert_eq!(router.peer_count(), 1);
    // With thor's device the same items, no longer vacant.
    let inventory = INVENTORY.replace(
            r#""roles": ["owner"]}],"#,
            r#""roles": ["owner"]}, {"id": 2, "name": "thor", "email": "thor@example.com", "roles": []}],"#,
        ).replace(
            r#""registration_order": ["laptop", "router"],"#,
            r#""registration_order": ["laptop", "router", "hammer"],"#,
        ).replace(
            r#"             "routable_ips": ["10.1.0.0/16"], "approved_routes": []}"#,
            r#"             "routable_ips": ["10.1.0.0/16"], "approved_routes": []},
            {"name": "hammer", "user": "thor@example.com", "tags": [],
             "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3",
             "routable_ips": [], "approved_routes": []}"#,
        );
    let with = compiled_in(&inventory, policy);
    assert!(crate::lower::same_items(&c.lowered, &with.lowered));
    assert!(!with.lowered.is_vacant(&with.lowered.items[0]));
    assert_eq!(with.node("router").unwrap().packet_filter_rules().len(), 2);
}

#[test]
fn default_policy_allows_everything() {
    let c = compiled("{}");
    let laptop = c.node("laptop").unwrap();
    let rules = laptop.packet_filter_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(&*rules[0].dst_ports[0].ip, "*");
    assert!(rules[0].ip_proto.is_empty());
    assert_eq!(laptop.peer_count(), 1);
    assert!(c.node("nobody").is_none());
}

#[test]
fn auto_approved_route_reaches_filters_and_peers() {
    let c = compiled(
        r#"{"tagOwners": {"tag:router": ["odin@example.com"]},
                "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
                "acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["10.1.2.0/24:22"]}]}"#,
    );
    let router = c.node("router").unwrap();
    assert_eq!(
        router.primary_routes(),
        ["10.1.0.0/16".parse::<IpNet>().unwrap()]
    );
    let rules = router.packet_filter_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(&*rules[0].dst_ports[0].ip, "10.1.2.0/24");
    assert_eq!(
        &*rules[0].src_ips,
        [
            Arc::<str>::from("100.64.0.1"),
            Arc::from("fd7a:115c:a1e0::1")
        ]
    );
    let laptop = c.node("laptop").unwrap();
    assert!(laptop.packet_filter_rules().is_empty());
    let peers: Vec<PeerView<'_>> = laptop.peers().collect();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].primary_routes(),
        ["10.1.0.0/16".parse::<IpNet>().unwrap()]
    );
    let off = compile_with_options(
        &aclc_policy::parse_str("p", r#"{"acls": []}"#, &Default::default())
            .1
            .unwrap()
            .policy,
        &Inventory::from_json(INVENTORY).unwrap(),
        &CompileOptions {
            auto_approve: false,
            ..CompileOptions::default()
        },
    );
    assert!(off.node("router").unwrap().primary_routes().is_empty());
}

/// A policy event renumbers the earlier lowering's per-node index (`lower::policy_index`)
/// when few items changed: a rule added at the top (every later item's number shifts), or
/// a rule's destination moved; the result is the index built afresh. A policy whose items
/// all changed is built afresh instead.
#[test]
fn a_policy_event_renumbers_the_earlier_index() {
    let rules = |first: &str, third: &str| {
        let mut acls: Vec<String> = (0..16)
            .map(|k| {
                let dst = if k == 2 { third } else { "laptop" };
                format!(
                    r#"{{"action": "accept", "src": ["odin@example.com"], "dst": ["{dst}:{}"]}}"#,
                    80 + k
                )
            })
            .collect();
        if !first.is_empty() {
            acls.insert(0, first.to_string());
        }
        format!(
            r#"{{"tagOwners": {{"tag:router": ["odin@example.com"]}},
                "hosts": {{"laptop": "100.64.0.1", "router": "100.64.0.2"}},
                "acls": [{}]}}"#,
            acls.join(",")
        )
    };
    let before = compiled(&rules("", "laptop"));
    let added = r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:router:8443"]}"#;
    for after in [
        rules(added, "laptop"),
        rules("", "router"),
        rules(added, "router"),
    ] {
        let after = compiled(&after);
        assert_eq!(
            crate::lower::policy_index_agrees(&before.lowered, &after.lowered),
            Some(true)
        );
    }
    // Every item changed: built afresh.
    let other = compiled(
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["laptop:22", "router:22"]}],
            "hosts": {"laptop": "100.64.0.1", "router": "100.64.0.2"}}"#,
    );
    assert_eq!(
        crate::lower::policy_index_agrees(&before.lowered, &other.lowered),
        None
    );
}

fn parsed(policy: &str) -> (Policy, Inventory) {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy", policy, &options);
    (parsed.unwrap().policy, inventory)
}

/// A deep IP set chain removing the router's subnet: the removed addresses are not
/// granted, at a depth the old resolver gave up at (and resolved to nothing).
#[test]
fn deep_ipset_remove_is_not_granted() {
    let mut sets = vec![r#""ipset:l0": ["10.1.0.0/16"]"#.to_string()];
    for i in 1..40 {
        sets.push(format!(r#""ipset:l{i}": ["ipset:l{}"]"#, i - 1));
    }
    let policy = format!(
        r#"{{"tagOwners": {{"tag:router": ["odin@example.com"]}},
                "autoApprovers": {{"routes": {{"10.0.0.0/8": ["tag:router"]}}}},
                "ipsets": {{{}, "ipset:deep": ["10.0.0.0/8", "remove ipset:l39"]}},
                "grants": [{{"src": ["*"], "dst": ["ipset:deep"], "ip": ["*"]}}]}}"#,
        sets.join(",")
    );
    let c = compiled(&policy);
    assert!(c.refusal().is_none());
    let mut granted = 0;
    for view in c.nodes() {
        for rule in view.packet_filter_rules() {
            for dst in &rule.dst_ports {
                let set = crate::addrset::parse_wire(&dst.ip).unwrap();
                assert!(
                    !set.overlaps_net(&"10.1.0.0/16".parse().unwrap()),
                    "{}",
                    dst.ip
                );
                granted += 1;
            }
        }
    }
    // Nobody holds what is left of 10.0.0.0/8 either: the set is not `*` or empty by
    // accident, it is exactly 10.0.0.0/16 and 10.2.0.0-10.255.255.255.
    assert_eq!(granted, 0);
    let set = c.table.ipsets.get("ipset:deep").unwrap();
    let texts: Vec<&str> = set.pieces.iter().map(|p| &*p.text).collect();
    assert_eq!(texts, ["10.0.0.0/16", "10.2.0.0-10.255.255.255"]);
    // The router serves exactly the removed subnet: it receives nothing.
    assert!(c.node("router").unwrap().packet_filter_rules().is_empty());
}

/// A chain of IP sets, each the next one plus a prefix less one address, holds O(depth^2)
/// ranges in all: only the set a rule names is written out as wire pieces (writing every
/// set out took gigabytes on a 2,800-deep chain), and its pieces are exactly the chain's.
#[test]
fn only_named_ipsets_become_pieces() {
    let depth = 60;
    let mut sets: Vec<String> = (0..depth)
        .map(|i| {
            format!(
                r#""ipset:s{i}": ["add ipset:s{}", "add 10.{j}.0.0/16", "remove 10.{j}.0.1"]"#,
                i + 1,
                j = 2 * i
            )
        })
        .collect();
    sets.push(format!(r#""ipset:s{depth}": ["192.168.0.0/24"]"#));
    let policy = format!(
        r#"{{"tagOwners": {{"tag:a": []}}, "ipsets": {{{}}},
                "acls": [{{"action": "accept", "src": ["ipset:s0"], "dst": ["tag:a:22"]}}]}}"#,
        sets.join(",")
    );
    let c = compiled(&policy);
    assert!(c.refusal().is_none());
    assert_eq!(c.table.ipsets.made(), 1, "only ipset:s0 is named by a rule");
    let head = c.table.ipsets.get("ipset:s0").unwrap();
    // Each level adds its /16 (apart from the others) less one address: two ranges; and
    // the last set's /24.
    assert_eq!(head.pieces.len(), 2 * depth + 1);
    assert_eq!(&*head.pieces[0].text, "10.0.0.0");
    assert_eq!(&*head.pieces[1].text, "10.0.0.2-10.0.255.255");
    assert_eq!(c.table.ipsets.made(), 1);
    // Another set is written out when something asks for it.
    assert_eq!(c.table.ipsets.get("ipset:s59").unwrap().pieces.len(), 3);
    assert_eq!(c.table.ipsets.made(), 2);
}

/// An IP set whose `remove` names an undefined host (validation skipped) is refused; the
/// infallible entry point then grants nothing rather than the unreduced set.
#[test]
fn unknown_entry_refused_and_compile_fails_closed() {
    let (mut policy, inventory) = parsed(
        r#"{"hosts": {"lab": "10.1.0.0/16"},
                "ipsets": {"ipset:s": ["10.0.0.0/8", "remove lab"]},
                "grants": [{"src": ["*"], "dst": ["ipset:s"], "ip": ["*"]}]}"#,
    );
    policy.hosts.clear();
    let err = try_compile(&policy, &inventory).unwrap_err();
    assert_eq!(err.kind, crate::CompileErrorKind::UnresolvedIpSetEntry);
    assert_eq!(err.to_diagnostic().code, "aclc::unresolved_ipset_entry");
    let span = err.span.unwrap();
    assert!(span.end > span.start);
    let c = compile(&policy, &inventory);
    assert_eq!(c.refusal(), Some(&err));
    for view in c.nodes() {
        assert!(view.packet_filter_rules().is_empty());
        assert_eq!(view.peer_count(), 0);
    }
}

#[test]
fn budget_refuses_with_the_rule_location() {
    let text = r#"{"grants": [
                {"src": ["*"], "dst": ["*"], "ip": ["tcp:22"]},
                {"src": ["*"], "dst": ["*"], "ip": ["tcp:80", "tcp:443", "tcp:8080"]}]}"#;
    let (policy, inventory) = parsed(text);
    let mut options = CompileOptions::default();
    options.limits.max_rule_entries = 8;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
    let grants = &policy.grants.as_ref().unwrap().value;
    assert_eq!(err.span, Some(grants[1].span));
    options.limits = CompileLimits::default();
    assert!(try_compile_with_options(&policy, &inventory, &options).is_ok());

    let (policy, inventory) = parsed(
        r#"{"ipsets": {"ipset:a": ["10.0.0.1", "10.0.0.3", "10.0.0.5"],
                           "ipset:b": ["ipset:a", "10.0.0.7"]},
                "grants": [{"src": ["*"], "dst": ["ipset:b"], "ip": ["*"]}]}"#,
    );
    options.limits.max_address_ranges = 6;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
    assert!(err.span.is_some());
    assert_eq!(err.to_diagnostic().code, "aclc::compile_budget_exceeded");
}

/// A grant makes one item per destination and `ip` entry, each about 200 bytes: their number
/// is capped (`max_rule_items`), where a 100 KB grant of 6,000 destinations and 6,000 `ip`
/// entries asked for 36 million and aborted on a failed allocation. One node's filter is
/// capped too (`max_node_filter_entries`): past the items' summed bound each node is counted
/// exactly, so a policy whose bound is over but whose nodes are not still compiles.
#[test]
fn items_and_one_nodes_filter_are_bounded() {
    let text = r#"{"tagOwners": {"tag:router": []}, "grants": [
                {"src": ["*"], "dst": ["tag:router"], "ip": ["tcp:1", "tcp:2", "tcp:3"]},
                {"src": ["*"], "dst": ["odin@example.com", "tag:router"], "ip": ["tcp:4"]}]}"#;
    let (policy, inventory) = parsed(text);
    let grants = &policy.grants.as_ref().unwrap().value;
    let mut options = CompileOptions::default();
    options.limits.max_rule_items = 4;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
    assert_eq!(err.span, Some(grants[1].span));
    assert!(err.message.contains("rule items"), "{}", err.message);
    options.limits.max_rule_items = 5;
    assert!(try_compile_with_options(&policy, &inventory, &options).is_ok());
    // The router holds 4 x 2 entries (its two addresses, four ports), the laptop 2; the
    // items' bound is 10.
    options.limits.max_node_filter_entries = 8;
    let c = try_compile_with_options(&policy, &inventory, &options).unwrap();
    let entries: usize = c
        .filter_rules("router")
        .unwrap()
        .iter()
        .map(|r| r.dst_ports.len())
        .sum();
    assert_eq!(entries, 8);
    options.limits.max_node_filter_entries = 7;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
    assert!(
        err.message
            .starts_with("node router's packet filter would hold more than 7"),
        "{}",
        err.message
    );
    assert_eq!(err.span, Some(grants[0].span));
    // A refused policy compiles to nothing (fail closed).
    let c = compile_with_options(&policy, &inventory, &options);
    assert!(c.refusal().is_some());
    assert!(c.filter_rules("router").unwrap().is_empty());
}

/// `autogroup:self` items are charged like any other (uncharged, four 16 MB grants to
/// `autogroup:self` made 4 million items and 8 million entries per device), and an app
/// grant's share of a filter is its `CapGrant` destinations, not its `CapGrant`s (the exact
/// count took one per grant, whatever its destinations).
#[test]
fn self_items_and_cap_grant_destinations_are_counted() {
    let (policy, inventory) = parsed(
        r#"{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:1", "tcp:2", "tcp:3"]}]}"#,
    );
    let mut options = CompileOptions::default();
    options.limits.max_rule_items = 2;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert!(err.message.contains("rule items"), "{}", err.message);
    options.limits = CompileLimits::default();
    // The laptop's own two addresses on three ports.
    options.limits.max_node_filter_entries = 5;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert!(
        err.message.starts_with("node laptop's packet filter"),
        "{}",
        err.message
    );
    options.limits.max_node_filter_entries = 6;
    assert!(try_compile_with_options(&policy, &inventory, &options).is_ok());

    let (policy, inventory) = parsed(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"example.com/cap/a": [{}], "example.com/cap/b": [{}]}},
                       {"src": ["*"], "dst": ["*"], "app": {"example.com/cap/c": [{}]}},
                       {"src": ["*"], "dst": ["*"], "app": {"example.com/cap/d": [{}]}}]}"#,
    );
    let c = try_compile_with_options(&policy, &inventory, &CompileOptions::default()).unwrap();
    let dsts: usize = c
        .filter_rules("router")
        .unwrap()
        .iter()
        .flat_map(|r| r.cap_grant.iter())
        .map(|g| g.dsts.len())
        .sum();
    assert_eq!(dsts, 6, "three rules, each to the router's two prefixes");
    let mut options = CompileOptions::default();
    options.limits.max_node_filter_entries = 5;
    let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
    assert!(
        err.message.contains("packet filter would hold more than 5"),
        "{}",
        err.message
    );
}

/// Another tailnet's group or tag resolves to no device, whatever this policy defines under
/// its name (a `groups` entry `group://dev/all` gave its members the grant).
#[test]
fn external_references_resolve_to_nothing() {
    let c = compiled(
        r#"{"groups": {"group://dev/all": ["odin@example.com"]}, "tagOwners": {"tag:router": []},
            "grants": [{"src": ["group://dev/all", "tag://dev/router"], "dst": ["tag:router"], "ip": ["tcp:22"]}],
            "ssh": [{"action": "accept", "src": ["group://dev/all"], "dst": ["tag:router"], "users": ["root"]}]}"#,
    );
    assert!(c.filter_rules("router").unwrap().is_empty());
    assert!(c.ssh_rules("router").unwrap().is_empty());
}

#[test]
fn wire_output_round_trips() {
    let c = compiled(
        r#"{"grants": [{"src": ["*"], "dst": ["tag:router"], "ip": ["tcp:443", "udp:53"]}],
                            "tagOwners": {"tag:router": ["odin@example.com"]}}"#,
    );
    let wire = c.node("router").unwrap().to_wire();
    assert_eq!(wire.packet_filter_rules.len(), 2, "one rule per protocol");
    let text = serde_json::to_string(&wire).unwrap();
    let back: NodeOutput = serde_json::from_str(&text).unwrap();
    assert_eq!(back, wire);
}

/// Exit nodes of both families under Tailscale's exit filters receive every rule; those that
/// carry the same `via` tags have one filter, hashed once per compile, and those that carry
/// others, or exit one family, are hashed apart. Each shared fingerprint is the node's own.
#[test]
fn exit_nodes_with_one_key_share_one_filter_fingerprint() {
    let node = |name: &str, tags: &str, v4: u8, routes: &str| {
        format!(
            r#"{{"name": "{name}", "user": {user}, "tags": [{tags}],
                "ipv4": "100.64.0.{v4}", "ipv6": "fd7a:115c:a1e0::{v4}",
                "routable_ips": [{routes}], "approved_routes": [{routes}]}}"#,
            user = if tags.is_empty() {
                r#""odin@example.com""#
            } else {
                "null"
            },
        )
    };
    let both = r#""0.0.0.0/0", "::/0""#;
    let nodes = [
        node("laptop", "", 1, ""),
        node("exit-a1", r#""tag:exit", "tag:exit-a""#, 2, both),
        node("exit-a2", r#""tag:exit", "tag:exit-a""#, 3, both),
        node("exit-b", r#""tag:exit", "tag:exit-b""#, 4, both),
        node(
            "exit-v4",
            r#""tag:exit", "tag:exit-a""#,
            5,
            r#""0.0.0.0/0""#,
        ),
        node("router", r#""tag:router""#, 6, r#""10.1.0.0/16""#),
    ];
    let inventory = format!(
        r#"{{"users": [{{"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["owner"]}}],
            "nodes": [{}],
            "registration_order": ["laptop", "exit-a1", "exit-a2", "exit-b", "exit-v4", "router"],
            "tailnet": {{"name": "odin@example.com"}}}}"#,
        nodes.join(",")
    );
    let policy = r#"{"tagOwners": {"tag:exit": ["odin@example.com"], "tag:exit-a": ["odin@example.com"],
                                   "tag:exit-b": ["odin@example.com"], "tag:router": ["odin@example.com"]},
        "acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["tag:router:22", "10.1.0.0/16:*"]},
                 {"action": "accept", "src": ["tag:router"], "dst": ["odin@example.com:443"]}],
        "grants": [{"src": ["odin@example.com"], "dst": ["autogroup:internet"], "ip": ["80"], "via": ["tag:exit-a"]},
                   {"src": ["tag:router"], "dst": ["autogroup:internet"], "ip": ["443"], "via": ["tag:exit-b"]}]}"#;
    let c = compiled_in(&inventory, policy);
    let id = |name: &str| c.table.id(name).unwrap();
    let key = |name: &str| c.lowered.exit_filter_key(&c.table, id(name));
    assert!(key("exit-a1").is_some() && key("exit-a1") == key("exit-a2"));
    assert!(key("exit-b").is_some() && key("exit-b") != key("exit-a1"));
    assert!(key("exit-v4").is_none() && key("laptop").is_none() && key("router").is_none());
    let rules = |name: &str| c.node(name).unwrap().packet_filter_rules().to_vec();
    assert_eq!(rules("exit-a1"), rules("exit-a2"));
    assert_ne!(rules("exit-a1"), rules("exit-b"));
    // The router's rule reaches the exit nodes (every rule's destinations), the via grant
    // only its carriers.
    assert!(rules("exit-a1").len() > 1);
    let mut cache = HashCache::default();
    let names = [
        "exit-a1", "exit-a2", "exit-b", "exit-v4", "laptop", "router",
    ];
    let prints: Vec<u64> = names
        .iter()
        .map(|n| c.filter_print(id(n), &mut cache))
        .collect();
    for (n, print) in names.iter().zip(&prints) {
        assert_eq!(
            *print,
            c.assembled_print(id(n), &mut HashCache::default()),
            "{n}"
        );
        // The filter built from the lists the compile shares is the one built without.
        assert_eq!(
            c.lowered.filter_rules(&c.table, id(n), Some(&c.spread)),
            c.lowered.filter_rules(&c.table, id(n), None),
            "{n}"
        );
    }
    assert_eq!(prints[0], prints[1]);
    assert_ne!(prints[0], prints[2]);
    assert_eq!(c.exit_prints.lock().unwrap().len(), 2);
    // The two keys' filters listed each spreading node list once (`tag:router:22`, odin's
    // devices), and hashed once the rule made of one alone (the router's rule to odin's
    // devices); odin's rule merges its node list with a prefix, hashed on each key.
    let (chunks, rules) = c.spread.held();
    assert_eq!((chunks, rules), (2, 1));
}
