//! The engine against the reference: random event sequences on random small policies and
//! tailnets; after each event the engine's snapshot equals a fresh compile of the same inputs
//! (a new engine), and its change set is exactly the set of nodes whose wire output differs
//! between the fresh compiles before and after (with the right parts flagged). Refused events
//! leave the state unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use aclc_compiler::engine::{
    ApprovalMode, Engine, EngineOptions, Event, NodeRecord, ServiceRecord, TailnetState, UserRecord,
};
use aclc_compiler::wire::NodeOutput;
use aclc_compiler::Role;
use aclc_policy::model::Policy;
use ipnet::IpNet;
use proptest::prelude::*;

const LOGINS: [&str; 4] = [
    "alice@example.com",
    "bob@example.com",
    "carol@",
    "dave@example.org",
];
const TAGS: [&str; 4] = ["tag:web", "tag:db", "tag:router", "tag:exit"];
/// The last holds the tailnet's own addresses: a node event inside it moves which of its
/// items the route's viewers see (`a_leave_inside_a_route_names_only_changed_maps`).
const ROUTES: [&str; 6] = [
    "10.0.0.0/24",
    "10.0.1.0/24",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "::/0",
    "100.64.0.0/26",
];
const SELECTORS: [&str; 10] = [
    "*",
    "alice@example.com",
    "carol@",
    "group:eng",
    "tag:web",
    "tag:db",
    "tag:router",
    "autogroup:member",
    "autogroup:tagged",
    "10.0.0.0/24",
];
const DESTINATIONS: [&str; 3] = ["autogroup:self", "autogroup:internet", "192.168.0.0/16"];
const PORTS: [&str; 3] = ["*", "22", "80,443"];

fn pick<T: Copy>(list: &[T], i: u32) -> T {
    list[i as usize % list.len()]
}

fn bits<T: Copy>(list: &[T], mask: u32) -> Vec<T> {
    list.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, v)| *v)
        .collect()
}

/// SSH rules for [`policy_text`]'s pooled variant: several with equal users and
/// action (equal pieces from equal sources, other destinations), duplicates, self and
/// localpart rules, check and accept.
const SSH_POOL: [&str; 16] = [
    r#"{"action": "accept", "src": ["tag:db"], "dst": ["tag:web"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["tag:db"], "dst": ["tag:exit"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]}"#,
    r#"{"action": "check", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["root"], "checkPeriod": "1h"}"#,
    r#"{"action": "accept", "src": ["tag:db"], "dst": ["tag:web"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["tag:router"], "dst": ["tag:db"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["localpart:*@example.com"]}"#,
    r#"{"action": "accept", "src": ["tag:db"], "dst": ["autogroup:tagged"], "users": ["root"]}"#,
    r#"{"action": "check", "src": ["group:eng"], "dst": ["tag:exit"], "users": ["root"], "checkPeriod": "1h"}"#,
    r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["autogroup:self"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["tag:web"], "dst": ["tag:web", "tag:db"], "users": ["root"]}"#,
    r#"{"action": "accept", "src": ["tag:router"], "dst": ["tag:exit"], "users": ["root"]}"#,
    r#"{"action": "check", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"], "checkPeriod": "1h"}"#,
    r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root", "autogroup:nonroot"]}"#,
];

/// A policy from a seed: some ACLs, maybe grants with `via`, SSH rules, node attributes,
/// postures; always tag owners and auto-approvers.
fn policy_text(seed: &[u32]) -> String {
    let s = |i: usize| seed.get(i).copied().unwrap_or(0);
    let mut acls = Vec::new();
    for k in 0..(s(0) % 5) as usize {
        let src = pick(&SELECTORS, s(1 + k));
        let dst = if s(5 + k).is_multiple_of(4) {
            pick(&DESTINATIONS, s(9 + k))
        } else {
            pick(&SELECTORS, s(9 + k))
        };
        let posture = if s(13 + k).is_multiple_of(5) {
            r#", "srcPosture": ["posture:linux"]"#
        } else {
            ""
        };
        acls.push(format!(
            r#"{{"action": "accept", "src": ["{src}"], "dst": ["{dst}:{}"]{posture}}}"#,
            pick(&PORTS, s(17 + k))
        ));
    }
    let grants = match s(21) % 4 {
        // `*` through a router lands on the routers serving a route: a route event moves it.
        0 => r#", "grants": [{"src": ["autogroup:member"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:router"]},
                             {"src": ["autogroup:member"], "dst": ["*"], "ip": ["tcp:22"], "via": ["tag:router"]}]"#.to_string(),
        // The Kubernetes capability's recorders are `tag:db` devices' addresses: a node
        // event on one moves the value on every destination.
        1 => format!(
            r#", "grants": [{{"src": ["{}"], "dst": ["{}"], "app": {{"tailscale.com/cap/drive": [{{"shares": ["*"]}}], "example.com/cap/x": [{{"k": 1}}],
                "tailscale.com/cap/kubernetes": [{{"recorder": ["tag:db"], "enforceRecorder": true}}]}}}}]"#,
            pick(&SELECTORS, s(2)),
            pick(&SELECTORS, s(3))
        ),
        2 => format!(
            r#", "grants": [{{"src": ["{}"], "dst": ["svc:web", "svc:api"], "ip": ["tcp:443"]}}]"#,
            pick(&SELECTORS, s(4))
        ),
        _ => String::new(),
    };
    // Variants 2 and 3 differ only in their users: the same principals, other `sshUsers`.
    // Variant 4 has `localpart:` users: per-user principal lists, on sources and destinations.
    let ssh = match s(22) % 9 {
        0 => String::new(),
        // A subset of a pool of rules, in pool order or rotated: policy edits
        // add and remove rules at the top, in the middle, reorder them, keep equal ones.
        6..=8 => {
            let mask = (s(22) / 9) | (s(25) & 0xff) << 13;
            let mut rules: Vec<&str> = SSH_POOL
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, r)| *r)
                .take(7)
                .collect();
            if !rules.is_empty() && s(23) % 4 == 0 {
                let k = (s(23) / 4) as usize % rules.len();
                rules.rotate_left(k);
            }
            if rules.len() > 1 && s(23) % 5 == 1 {
                rules.swap(0, 1);
            }
            format!(r#", "ssh": [{}]"#, rules.join(", "))
        }
        // Two rules that give their destinations the same pieces from other sources (a
        // device moving from one's sources to the other's leaves a destination's rules as
        // they were), sometimes below a rule of their own: a policy edit moves their places.
        5 => format!(
            r#", "ssh": [{}{{"action": "accept", "src": ["{}"], "dst": ["tag:web"], "users": ["root"]}}, {{"action": "accept", "src": ["{}"], "dst": ["tag:web"], "users": ["root"]}}]"#,
            match s(23) % 3 {
                0 =>
                    r#"{"action": "accept", "src": ["tag:exit"], "dst": ["tag:exit"], "users": ["root"]}, "#,
                _ => "",
            },
            pick(&["tag:db", "alice@example.com", "group:eng"], s(23) / 3),
            pick(&["tag:router", "autogroup:member", "tag:db"], s(23) / 9),
        ),
        // `autogroup:member` as a destination is read as `autogroup:self` (beside a tag here).
        1 => format!(
            r#", "ssh": [{{"action": "accept", "src": ["autogroup:member"], "dst": {}, "users": ["autogroup:nonroot"]}}]"#,
            pick(
                &[
                    r#"["autogroup:self"]"#,
                    r#"["autogroup:member", "tag:web"]"#
                ],
                s(23)
            ),
        ),
        4 => format!(
            r#", "ssh": [{{"action": "accept", "src": ["{}", "tag:web"], "dst": ["tag:web"], "users": ["localpart:*@example.com", "root"]}}, {{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["localpart:*@example.com"]}}]"#,
            pick(&["group:eng", "autogroup:member"], s(23)),
        ),
        // Sometimes recorded to `tag:db` devices (enforced or not): a recorder's change
        // moves the rule's action on every destination.
        n => format!(
            r#", "ssh": [{{"action": "check", "src": ["{}"], "dst": ["tag:web"], "users": ["{}"], "checkPeriod": "1h"{}}}]"#,
            pick(
                &["group:eng", "autogroup:member", "alice@example.com"],
                s(23)
            ),
            if n == 2 { "root" } else { "autogroup:nonroot" },
            match (s(21) / 4) % 4 {
                0 => "",
                1 => r#", "recorder": ["tag:db"]"#,
                // Enforced without a recorder: nothing recorded, the session admitted.
                2 => r#", "enforceRecorder": true"#,
                _ => r#", "recorder": ["tag:db"], "enforceRecorder": true"#,
            }
        ),
    };
    let attrs = match s(24) % 4 {
        0 => r#", "nodeAttrs": [{"target": ["tag:web"], "attr": ["funnel"]}]"#,
        1 => r#", "nodeAttrs": [{"target": ["tag:db", "carol@"], "attr": ["disable-ipv4"]}]"#,
        // Accepted, and warned about when nodes have IPv4 addresses; the output is the
        // inventory's (an event under it must equal a full recompile all the same).
        2 => r#", "disableIPv4": true"#,
        _ => "",
    };
    let approvers = pick(&["tag:router", "alice@example.com", "group:eng"], s(25));
    // A policy edit may change who is in the group (groups' users are kept across compiles
    // of one policy only).
    let eng = pick(
        &[r#""alice@example.com", "carol@""#, r#""bob@example.com""#],
        s(0) / 5,
    );
    format!(
        r#"{{"groups": {{"group:eng": [{eng}]}},
            "tagOwners": {{"tag:web": ["group:eng"], "tag:db": ["tag:web"], "tag:router": ["alice@example.com"], "tag:exit": []}},
            "autoApprovers": {{"routes": {{"10.0.0.0/16": ["{approvers}"], "192.168.0.0/16": ["alice@example.com"]}}, "exitNode": ["tag:exit"], "services": {{"svc:web": ["tag:web"]}}}},
            "postures": {{"posture:linux": ["node:os == 'linux'"]}},
            "acls": [{}]{grants}{ssh}{attrs}}}"#,
        acls.join(", ")
    )
}

fn parse_policy(text: &str) -> Option<Arc<Policy>> {
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &Default::default());
    parsed.ok().map(|c| Arc::new(c.policy))
}

/// User `id` as an admin in the synced group `group:ops@example.com`.
fn ops_admin(id: u64) -> UserRecord {
    let mut u = user(id, 1);
    u.groups = vec!["group:ops@example.com".to_string()];
    u
}

fn user(id: u64, roles_mask: u32) -> UserRecord {
    UserRecord {
        id,
        login: LOGINS[(id as usize - 1) % LOGINS.len()].to_string(),
        name: format!("user{id}"),
        roles: bits(&[Role::Admin, Role::Owner], roles_mask),
        groups: Vec::new(),
    }
}

fn node(id: u64, g: &[u32; 6]) -> NodeRecord {
    let addr = (id + u64::from(g[0] % 2) * 50) as u8;
    let mut n = NodeRecord::owned(
        id,
        &format!(
            "host{}",
            if g[1].is_multiple_of(7) {
                g[1] % 3
            } else {
                id as u32
            }
        ),
        u64::from(g[2] % 4 + 1),
        Ipv4Addr::new(100, 64, 0, addr),
        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(addr)),
    );
    // A third of the nodes are tagged; the others belong to one of four users (so users
    // often have several devices, for `autogroup:self`).
    let tags = if g[3].is_multiple_of(3) {
        bits(&TAGS, g[3] / 3 % 16)
    } else {
        Vec::new()
    };
    if !tags.is_empty() {
        n.user = None;
        n.tags = tags.iter().map(|t| t.to_string()).collect();
    }
    // Most nodes advertise nothing (the engine's narrow path is for those).
    if g[4].is_multiple_of(3) {
        n.advertised_routes = routes(g[4] / 3);
    }
    n.approved_routes = bits(&ROUTES, g[5] % 64)
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    if g[0].is_multiple_of(3) {
        n.posture
            .insert("node:os".to_string(), serde_json::json!("linux"));
    }
    n.online = !g[1].is_multiple_of(5);
    // Some nodes have one address family (IPv4-only or IPv6-only pools): a re-addressed
    // node may change family, which changes how every peer sees it.
    match g[5] / 64 % 5 {
        0 => n.ipv6 = None,
        1 => n.ipv4 = None,
        _ => {}
    }
    n
}

fn routes(mask: u32) -> Vec<IpNet> {
    bits(&ROUTES, mask % 64)
        .iter()
        .map(|r| r.parse().unwrap())
        .collect()
}

fn event(e: &[u32; 8]) -> Option<Event> {
    let id = u64::from(e[1] % 7 + 1);
    let g = [e[2], e[3], e[4], e[5], e[6], e[7]];
    Some(match e[0] % 13 {
        11 | 12 => Event::ReplacePolicy(parse_policy(&policy_text(&e.repeat(4)))?),
        0 | 1 => Event::UpsertNode(node(id, &g)),
        2 => Event::RemoveNode(id),
        3 => Event::UpsertUser(user(u64::from(e[2] % 4 + 1), e[3])),
        4 => Event::RemoveUser(u64::from(e[2] % 5 + 1)),
        5 => Event::AdvertiseRoutes {
            node: id,
            routes: routes(e[2]),
        },
        6 => Event::ApproveRoutes {
            node: id,
            routes: routes(e[2]),
        },
        7 => Event::SetOnline {
            node: id,
            online: e[2].is_multiple_of(2),
        },
        8 => Event::ReplacePolicy(parse_policy(&policy_text(&e.repeat(4)))?),
        // Two Services, so that a batch may change both (each step must change its own).
        9 => Event::UpsertService(match e[4] % 2 {
            0 => service(e[2], e[3]),
            _ => api_service(e[2], e[3]),
        }),
        _ => Event::RemoveService(pick(&["svc:web", "svc:api"], e[2]).to_string()),
    })
}

/// `svc:web`, hosted by the nodes `hosts` picks (ids 1-7, some of which may not exist), and
/// approved by the record on those `approved` picks among them. Half the time its IPv4
/// address lies in the subnet route 100.64.0.0/26 (of `ROUTES`, beside no node's address),
/// so a rule to the Service reaches that route's routers too.
fn service(hosts: u32, approved: u32) -> ServiceRecord {
    let ids: Vec<u64> = (1..=7).collect();
    let hosts = bits(&ids, hosts % 128);
    let inside = approved & (1 << 16) != 0;
    ServiceRecord {
        name: "svc:web".to_string(),
        ipv4: Some(if inside {
            Ipv4Addr::new(100, 64, 0, 60)
        } else {
            Ipv4Addr::new(100, 100, 200, 1)
        }),
        ipv6: Some(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0xab, 0, 0, 0, 1)),
        approved_hosts: bits(&hosts, approved),
        hosts,
        tags: Vec::new(),
    }
}

/// `svc:api` (at other addresses), hosted and approved as [`service`] picks; no
/// `autoApprovers` entry names it. Sometimes without hosts, as a Service just made has none.
fn api_service(hosts: u32, approved: u32) -> ServiceRecord {
    let mut api = service(hosts, approved);
    api.name = "svc:api".to_string();
    api.ipv4 = Some(Ipv4Addr::new(100, 100, 200, 2));
    api.ipv6 = Some(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0xab, 0, 0, 0, 2));
    if approved.is_multiple_of(4) {
        api.hosts.clear();
        api.approved_hosts.clear();
    }
    api
}

/// Every node's wire output, by id.
fn outputs(engine: &Engine) -> BTreeMap<u64, NodeOutput> {
    let snapshot = engine.snapshot();
    snapshot
        .node_ids()
        .map(|id| (id, snapshot.node(id).unwrap().to_wire()))
        .collect()
}

fn reference(engine: &Engine) -> Engine {
    Engine::new(
        engine.policy().clone(),
        engine.state(),
        engine.options().clone(),
    )
    .expect("the engine's state is valid")
}

static APPLIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static NONEMPTY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check(
    policy_seed: Vec<u32>,
    nodes: Vec<[u32; 6]>,
    roles: Vec<u32>,
    events: Vec<[u32; 8]>,
    stored: bool,
    sizes: &[usize],
) -> Result<(), TestCaseError> {
    let Some(policy) = parse_policy(&policy_text(&policy_seed)) else {
        return Ok(());
    };
    let state = TailnetState {
        users: roles
            .iter()
            .enumerate()
            .map(|(i, &r)| user(i as u64 + 1, r))
            .collect(),
        nodes: nodes
            .iter()
            .enumerate()
            .map(|(i, g)| node(i as u64 + 1, g))
            .collect(),
        tailnet: Default::default(),
        // A third of the tailnets start with a service.
        services: match policy_seed.get(20).copied().unwrap_or(0) % 3 {
            0 => vec![service(
                policy_seed.get(19).copied().unwrap_or(0),
                policy_seed.get(18).copied().unwrap_or(0),
            )],
            _ => Vec::new(),
        },
    };
    let mode = if stored {
        ApprovalMode::Stored
    } else {
        ApprovalMode::Derived
    };
    let mut options = EngineOptions::with_approvals(mode);
    // A tight limit in a quarter of the cases: some events are refused (an event the
    // compiler would refuse is refused, and changes nothing).
    let limit_seed = policy_seed.get(17).copied().unwrap_or(0);
    if limit_seed % 4 == 0 {
        options.compile.limits.max_rule_entries = u64::from(20 + limit_seed / 4 % 200);
    }
    let Ok(engine) = Engine::new(policy, state, options) else {
        return Ok(());
    };
    let events: Vec<Event> = events.iter().filter_map(event).collect();
    let mut batches = Vec::new();
    let mut rest = events.as_slice();
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.clamp(1, rest.len()));
        batches.push(batch.to_vec());
        rest = tail;
    }
    verify(engine, batches.into_iter())
}

/// The node a one-node event changes, with its record before and after (as a server would
/// hold them: the event's record, or the engine's with the event's field changed).
fn node_change(
    engine: &Engine,
    event: &Event,
) -> Option<(u64, Option<NodeRecord>, Option<NodeRecord>)> {
    let with = |id: u64, change: &dyn Fn(&mut NodeRecord)| {
        let before = engine.node(id).cloned()?;
        let mut after = before.clone();
        change(&mut after);
        Some((id, Some(before), Some(after)))
    };
    match event {
        Event::UpsertNode(r) => Some((r.id, engine.node(r.id).cloned(), Some(r.clone()))),
        Event::RemoveNode(id) => Some((*id, engine.node(*id).cloned(), None)),
        Event::AdvertiseRoutes { node, routes } => {
            with(*node, &|r| r.advertised_routes.clone_from(routes))
        }
        Event::ApproveRoutes { node, routes } => {
            with(*node, &|r| r.approved_routes.clone_from(routes))
        }
        Event::SetOnline { node, online } => with(*node, &|r| r.online = *online),
        _ => None,
    }
}

/// Apply `batches` one by one (a batch of one event through [`Engine::apply`], larger ones
/// through [`Engine::apply_batch`]), checking the engine against a fresh engine after each.
fn verify(
    mut engine: Engine,
    batches: impl Iterator<Item = Vec<Event>>,
) -> Result<(), TestCaseError> {
    let mut before = outputs(&reference(&engine));
    prop_assert_eq!(&outputs(&engine), &before);
    for event in batches {
        let state_before = engine.state();
        // A server's question before a one-node event: does it need other nodes' peers?
        let impact = match event.as_slice() {
            [one] => node_change(&engine, one)
                .map(|(id, b, a)| (id, engine.snapshot().peer_impact(b.as_ref(), a.as_ref()))),
            _ => None,
        };
        let result = match event.as_slice() {
            [one] => engine.apply(one.clone()),
            _ => engine.apply_batch(event.clone()).map_err(|e| e.error),
        };
        let fresh = reference(&engine);
        let after = outputs(&fresh);
        prop_assert_eq!(&outputs(&engine), &after, "state after {:?}", event);
        let changes = match result {
            Ok(changes) => {
                APPLIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !changes.is_empty() {
                    NONEMPTY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                changes
            }
            Err(_) => {
                prop_assert_eq!(engine.state(), state_before, "refused {:?}", event);
                before = after;
                continue;
            }
        };
        let expected: BTreeSet<u64> = after
            .iter()
            .filter(|(id, out)| before.get(id) != Some(out))
            .map(|(id, _)| *id)
            .collect();
        let got: BTreeSet<u64> = changes.changed_ids().collect();
        prop_assert_eq!(&got, &expected, "changed nodes after {:?}", event);
        // "Only its own map can change" must hold: a server trusting it pushes no other map.
        if let Some((id, reasons)) = &impact {
            prop_assert!(
                !reasons.is_empty() || expected.iter().all(|n| n == id),
                "peer_impact said own map only, but {:?} changed after {:?}",
                expected,
                event
            );
        }
        let removed: BTreeSet<u64> = before
            .keys()
            .filter(|id| !after.contains_key(id))
            .copied()
            .collect();
        prop_assert_eq!(&changes.removed, &removed, "removed after {:?}", event);
        for (id, change) in &changes.changed {
            let (Some(old), Some(new)) = (before.get(id), after.get(id)) else {
                prop_assert!(change.added);
                continue;
            };
            prop_assert_eq!(
                change.packet_filter,
                old.packet_filter_rules != new.packet_filter_rules
            );
            prop_assert_eq!(change.ssh_rules, old.ssh_rules != new.ssh_rules);
            prop_assert_eq!(change.peers, old.peers != new.peers, "peers of {}", id);
            prop_assert_eq!(change.cap_map, old.cap_map != new.cap_map);
            prop_assert_eq!(
                change.own,
                old.addresses != new.addresses
                    || old.allowed_ips != new.allowed_ips
                    || old.primary_routes != new.primary_routes
            );
        }
        before = after;
    }
    Ok(())
}

proptest! {
    // `PROPTEST_CASES=5000` for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_full_recompile(
        policy_seed in prop::collection::vec(any::<u32>(), 26),
        nodes in prop::collection::vec(any::<[u32; 6]>(), 1..7),
        roles in prop::collection::vec(0u32..4, 4),
        events in prop::collection::vec(any::<[u32; 8]>(), 1..12),
        stored in any::<bool>(),
    ) {
        check(policy_seed, nodes, roles, events, stored, &[1])?;
    }

    #[test]
    fn batches_match_full_recompile(
        policy_seed in prop::collection::vec(any::<u32>(), 26),
        nodes in prop::collection::vec(any::<[u32; 6]>(), 1..7),
        roles in prop::collection::vec(0u32..4, 4),
        events in prop::collection::vec(any::<[u32; 8]>(), 2..16),
        stored in any::<bool>(),
        sizes in prop::collection::vec(1usize..6, 1..4),
    ) {
        check(policy_seed, nodes, roles, events, stored, &sizes)?;
    }
}

/// The property test exercised the engine: most events were applied and changed something.
#[test]
fn property_test_applies_events() {
    let before = APPLIED.load(std::sync::atomic::Ordering::Relaxed);
    let config = ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (
        prop::collection::vec(any::<u32>(), 26),
        prop::collection::vec(any::<[u32; 6]>(), 2..7),
        prop::collection::vec(0u32..4, 4),
        prop::collection::vec(any::<[u32; 8]>(), 4..12),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(p, n, r, e, s)| check(p, n, r, e, s, &[1]))
        .unwrap();
    let applied = APPLIED.load(std::sync::atomic::Ordering::Relaxed) - before;
    let nonempty = NONEMPTY.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("applied {applied} events, {nonempty} non-empty change sets in total");
    assert!(applied >= 16, "only {applied} events applied");
    assert!(nonempty >= 8, "only {nonempty} non-empty change sets");
}

/// A user without an e-mail address (`carol@`) owns devices and is named by policies.
#[test]
fn login_without_email_is_a_user() {
    let policy = parse_policy(
        r#"{"acls": [{"action": "accept", "src": ["carol@"], "dst": ["tag:web:80"]}],
            "tagOwners": {"tag:web": ["carol@"]}}"#,
    )
    .unwrap();
    let state = TailnetState {
        users: vec![user(3, 0)],
        nodes: vec![
            NodeRecord::owned(
                1,
                "laptop",
                3,
                Ipv4Addr::new(100, 64, 0, 1),
                Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 1),
            ),
            NodeRecord::tagged(
                2,
                "web",
                &["tag:web"],
                Ipv4Addr::new(100, 64, 0, 2),
                Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 2),
            ),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let snapshot = engine.snapshot();
    let web = snapshot.node(2).unwrap();
    assert_eq!(web.packet_filter_rules().len(), 1);
    assert_eq!(&*web.packet_filter_rules()[0].src_ips[0], "100.64.0.1");
    use aclc_compiler::engine::questions::Tagger;
    assert!(snapshot.may_apply_tag(Tagger::User(3), "tag:web"));
    assert!(snapshot.may_apply_tag(Tagger::Node(1), "tag:web"));
}

/// A replaced snapshot no reader holds is freed by the time the engine is dropped, on the
/// freeing thread or in place (a freeing thread that keeps what it is sent fails this).
/// Dropping the engine also waits for the thread; a detached one is what the `engine` fuzz
/// target's leak check found (its memory outlived the engine).
#[test]
fn replaced_snapshots_are_freed_when_the_engine_is_dropped() {
    for in_place in [false, true] {
        let policy = parse_policy(
            r#"{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:*"]}]}"#,
        )
        .unwrap();
        let state = TailnetState {
            users: vec![user(3, 0)],
            nodes: Vec::new(),
            tailnet: Default::default(),
            services: Vec::new(),
        };
        let mut options = EngineOptions::default();
        options.free_in_place = in_place;
        let mut engine = Engine::new(policy, state, options).unwrap();
        let mut replaced = Vec::new();
        for i in 1..=20u8 {
            replaced.push(Arc::downgrade(&engine.snapshot()));
            let joined = NodeRecord::owned(
                u64::from(i),
                &format!("laptop-{i}"),
                3,
                Ipv4Addr::new(100, 64, 0, i),
                Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i)),
            );
            assert!(!engine.apply(Event::UpsertNode(joined)).unwrap().is_empty());
        }
        let current = Arc::downgrade(&engine.snapshot());
        drop(engine);
        assert!(current.upgrade().is_none(), "in place: {in_place}");
        assert!(
            replaced.iter().all(|w| w.upgrade().is_none()),
            "in place: {in_place}"
        );
    }
}

/// The random policies mostly parse, in every variant (so the property test runs on them).
#[test]
fn random_policies_parse() {
    let mut parsed = [0; 3];
    let (mut localpart, mut twins, mut pooled) = (0, 0, 0);
    let mut app = 0;
    for seed in 0..300u32 {
        let seed: Vec<u32> = (0..26)
            .map(|i| seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7919))
            .collect();
        if parse_policy(&policy_text(&seed)).is_some() {
            parsed[(seed[24] % 3) as usize] += 1;
            localpart += usize::from(seed[22] % 9 == 4);
            twins += usize::from(seed[22] % 9 == 5);
            pooled += usize::from(seed[22] % 9 >= 6);
            app += usize::from(seed[21] % 4 == 1);
        }
    }
    assert!(parsed.iter().all(|&n| n > 50), "{parsed:?}");
    // One SSH variant in nine each (300 seeds: about 33).
    assert!(
        localpart > 15,
        "{localpart} policies with localpart: SSH users"
    );
    assert!(app > 30, "{app} policies with app grants");
    assert!(
        twins > 15,
        "{twins} policies with two SSH rules of equal pieces"
    );
    assert!(
        pooled > 60,
        "{pooled} policies with rules from the SSH pool"
    );
}

fn v4v6(i: u8) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(100, 64, 0, i),
        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i)),
    )
}

fn owned(id: u64, user: u64) -> NodeRecord {
    let (a, b) = v4v6(id as u8);
    NodeRecord::owned(id, &format!("node{id}"), user, a, b)
}

/// `svc:web` at 100.100.200.`last`, hosted by `hosts`, each approved.
fn approved_service(hosts: Vec<u64>, last: u8) -> ServiceRecord {
    ServiceRecord {
        name: "svc:web".to_string(),
        ipv4: Some(Ipv4Addr::new(100, 100, 200, last)),
        ipv6: None,
        hosts: hosts.clone(),
        approved_hosts: hosts,
        tags: Vec::new(),
    }
}

/// `node`, advertising `route` with its approval.
fn serving(mut node: NodeRecord, route: &str) -> NodeRecord {
    node.advertised_routes = vec![route.parse().unwrap()];
    node.approved_routes = node.advertised_routes.clone();
    node
}

fn tagged(id: u64, tag: &str) -> NodeRecord {
    let (a, b) = v4v6(id as u8);
    NodeRecord::tagged(id, &format!("node{id}"), &[tag], a, b)
}

/// Two rules whose sources are equal merge (the later into the earlier's slot): a node that
/// receives the later rule and one in between sees its order change when a device joins the
/// earlier rule's sources, although it is not that device's peer.
#[test]
fn merges_that_change_with_a_join() {
    let policy = parse_policy(
        r#"{"groups": {"group:eng": ["alice@example.com", "carol@"]},
            "tagOwners": {"tag:web": [], "tag:db": []},
            "acls": [
              {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"]},
              {"action": "accept", "src": ["tag:db"], "dst": ["tag:db:80"]},
              {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db:22"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![owned(1, 1), tagged(2, "tag:web"), tagged(3, "tag:db")],
        [
            Event::UpsertNode(owned(4, 3)),
            Event::RemoveNode(4),
            Event::UpsertNode(owned(5, 3)),
        ],
    );
}

/// A join that makes a rule's item appear (its only source user's first device) shifts every
/// later item: the items are paired through their rules, and a later rule's destination,
/// which the new item does not reach, is still decided from its moved sources (its filter
/// changed: the device is in them). The leave makes the item vanish again.
#[test]
fn an_item_that_appears_before_a_moved_one() {
    let policy = parse_policy(
        r#"{"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
            "tagOwners": {"tag:web": [], "tag:db": []},
            "acls": [
              {"action": "accept", "src": ["tag:db"], "dst": ["tag:web:443"]},
              {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:80"]},
              {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:22"]},
              {"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![owned(1, 1), tagged(2, "tag:web"), tagged(3, "tag:db")],
        [
            Event::UpsertNode(owned(4, 2)),
            Event::UpsertNode(owned(5, 2)),
            Event::RemoveNode(4),
            Event::RemoveNode(5),
        ],
    );
}

/// Two rules to the same destination and port, and a device moving from the first's sources
/// to the second's: the destination's filter is byte for byte the same (the first rule's
/// `SrcIPs` become the second's, in the same place), so the change set must leave it out.
/// It named it (stop 56): the moved lists were taken as changing every filter they reach.
/// Then the same with a user's device retagged into the second rule's tag, and a third rule
/// that keeps the first's sources, so the filter does change.
#[test]
fn a_device_moving_between_two_rules_to_one_port() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": []},
            "acls": [
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:srv:22"]},
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:srv:22"]}]}"#,
    )
    .unwrap();
    let mut moved = tagged(1, "tag:b");
    moved.name = "node1".to_string();
    verify_on(
        policy,
        vec![tagged(1, "tag:a"), tagged(2, "tag:srv"), owned(3, 1)],
        [
            Event::UpsertNode(moved),
            Event::UpsertNode(tagged(1, "tag:a")),
        ],
    );
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": []},
            "acls": [
              {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:srv:22"]},
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:srv:22"]},
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:srv:80"]}]}"#,
    )
    .unwrap();
    let mut retagged = tagged(3, "tag:b");
    retagged.name = "node3".to_string();
    verify_on(
        policy.clone(),
        vec![tagged(2, "tag:srv"), owned(3, 1)],
        [Event::UpsertNode(retagged), Event::UpsertNode(owned(3, 1))],
    );
}

/// Replace the policy `text("")` by `text(extra)` and back on a tailnet of `nodes` (users 1
/// to 4), checking each step against a fresh engine (state, change set, parts).
fn policy_edit_both_ways(text: impl Fn(&str) -> String, extra: &str, nodes: Vec<NodeRecord>) {
    let before = parse_policy(&text("")).unwrap();
    let after = parse_policy(&text(extra)).unwrap();
    verify_on(
        before.clone(),
        nodes,
        [Event::ReplacePolicy(after), Event::ReplacePolicy(before)],
    );
}

/// Apply `events` to an engine for `policy` on a tailnet of `nodes` (users 1 to 4), checking
/// each step against a fresh engine (state, change set, parts).
fn verify_on<const N: usize>(policy: Arc<Policy>, nodes: Vec<NodeRecord>, events: [Event; N]) {
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes,
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    verify(engine, events.into_iter().map(|e| vec![e])).unwrap();
}

/// A policy edit that adds a rule at the top whose sources already have a later rule: that
/// later rule's merge slot moves to the top, so a node the new rule does not reach (nor is a
/// peer of through it) sees its rules reordered; the change set must include it.
#[test]
fn a_rule_added_at_the_top_reorders_rules_it_does_not_reach() {
    let text = |top: &str| {
        format!(
            r#"{{"groups": {{"group:eng": ["alice@example.com", "carol@"]}},
            "tagOwners": {{"tag:web": [], "tag:db": []}},
            "acls": [{top}
              {{"action": "accept", "src": ["tag:db"], "dst": ["tag:web:80"]}},
              {{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"]}}]}}"#
        )
    };
    policy_edit_both_ways(
        text,
        r#"{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},"#,
        vec![owned(1, 1), tagged(2, "tag:web"), tagged(3, "tag:db")],
    );
}

/// A policy edit that adds, at the top, a rule whose sources are exactly one user's devices:
/// that user's `autogroup:self` rule now merges into its slot and moves to the front of the
/// user's devices' filters, although the new rule does not reach them and their peers are
/// the same.
#[test]
fn a_rule_added_at_the_top_moves_a_self_rule() {
    let text = |top: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:t": []}},
            "acls": [{top}
              {{"action": "accept", "src": ["tag:t"], "dst": ["alice@example.com:80"]}},
              {{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}}]}}"#
        )
    };
    policy_edit_both_ways(
        text,
        r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:t:443"]},"#,
        vec![owned(1, 1), tagged(2, "tag:t"), owned(3, 1), owned(4, 2)],
    );
}

/// A policy edit that adds or removes an `autogroup:self` rule while another rule keeps the
/// same user's devices peers: each device's self pairing comes or goes, its peers stay. A
/// peers' part patched from the changed items' flips looks at such devices alone (in each
/// side's peers when paired or in the side's reach); the debug build compares it with the
/// part patched from both sides' peers.
#[test]
fn a_self_rule_edited_beside_a_rule_that_keeps_the_devices_peers() {
    let text = |top: &str| {
        format!(
            r#"{{"groups": {{"group:eng": ["alice@example.com"]}},
            "tagOwners": {{"tag:t": []}},
            "acls": [{top}
              {{"action": "accept", "src": ["group:eng"], "dst": ["group:eng:22"]}},
              {{"action": "accept", "src": ["tag:t"], "dst": ["bob@example.com:80"]}}]}}"#
        )
    };
    policy_edit_both_ways(
        text,
        r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},"#,
        vec![
            owned(1, 1),
            owned(2, 1),
            owned(3, 2),
            owned(4, 2),
            tagged(5, "tag:t"),
        ],
    );
}

/// A policy edit that changes only an SSH rule's users (its principals are the same): the
/// destinations' SSH rules changed, and the change set must say so.
#[test]
fn an_ssh_rule_whose_users_alone_change() {
    let text = |users: &str| {
        let users = if users.is_empty() { "root" } else { users };
        format!(
            r#"{{"tagOwners": {{"tag:web": []}},
            "acls": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:22"]}}],
            "ssh": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["{users}"]}}]}}"#
        )
    };
    policy_edit_both_ways(
        text,
        "autogroup:nonroot",
        vec![owned(1, 1), tagged(2, "tag:web"), owned(3, 2)],
    );
}

/// A policy edit that lets a device use a subnet route of a router it already sees as a peer:
/// its peer set is the same, but the router now carries the route for it (AllowedIPs), so
/// its map changed although no rule reaches it.
#[test]
fn a_route_shown_to_a_device_that_already_sees_the_router() {
    let text = |extra: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:router": []}},
            "acls": [{extra}
              {{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:router:22"]}}]}}"#
        )
    };
    let router = serving(tagged(2, "tag:router"), "10.9.0.0/24");
    policy_edit_both_ways(
        text,
        r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["10.9.0.0/24:80"]},"#,
        vec![owned(1, 1), router, owned(3, 2)],
    );
}

/// A subnet route holding the tailnet's own addresses (a router advertising 100.64.0.0/24):
/// bob's first device puts the rule it joins among the items from that route, so a node
/// event's compile must find the routes' items again rather than take those of the index
/// before it (`PeerIndex::route_items`, which debug builds compare with the items found).
#[test]
fn a_join_inside_a_route_moves_the_routes_items() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:web": []},
            "acls": [
              {"action": "accept", "src": ["bob@example.com", "10.1.2.3"], "dst": ["tag:web:80"]},
              {"action": "accept", "src": ["alice@example.com"], "dst": ["100.64.0.0/24:22"]}]}"#,
    )
    .unwrap();
    let router = serving(tagged(2, "tag:router"), "100.64.0.0/24");
    verify_on(
        policy,
        vec![owned(1, 1), router, tagged(3, "tag:web")],
        [
            Event::UpsertNode(owned(4, 2)),
            Event::RemoveNode(4),
            Event::UpsertNode(owned(5, 1)),
            Event::UpsertNode(owned(4, 2)),
        ],
    );
}

/// A `via` grant claims its sources' merge slot on every node carrying its tag, even where
/// it grants nothing: a router that serves none of the grant's destinations still has the
/// rule whose sources are written as the same addresses placed at the grant's slot. A leave
/// moves the grant's sources and not that rule's (literal addresses stay), so the router's
/// rules are reordered although nothing reaching it changed: the two items' sources stop
/// being equal, which the engine must see (`Compiled::merges_like`) before it decides any
/// router's filter from the grant's own entries (`Lowered::via_verdict`).
#[test]
fn a_via_claim_that_moves_with_a_leave() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:web": []},
            "grants": [
              {"src": ["alice@example.com"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:router"]},
              {"src": ["tag:web"], "dst": ["tag:router"], "ip": ["*"]},
              {"src": ["100.64.0.1", "100.64.0.4", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::4"], "dst": ["tag:router"], "ip": ["*"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            owned(1, 1),
            tagged(2, "tag:router"),
            tagged(3, "tag:web"),
            owned(4, 1),
        ],
        [
            Event::RemoveNode(4),
            Event::UpsertNode(owned(4, 1)),
            Event::UpsertNode(owned(5, 1)),
            Event::RemoveNode(5),
        ],
    );
}

/// Two `via` grants whose sources are equal (one written as a user, one as that user's
/// addresses) claim one merge slot on the router carrying their tag: the second grant's
/// entries sit at the first grant's place, before a rule between them. A leave moves the
/// first grant's sources and not the second's, so the second's entries move after that rule
/// on the router, which the first grant does not reach; no plain rule has those sources, so
/// the rules still merge alike and the engine decides the router's filter from the items.
/// Fails when it leaves the other `via` items of a moved grant's key out
/// (`SourceMoves::via_moved`).
#[test]
fn two_via_grants_that_stop_sharing_a_slot() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:web": []},
            "grants": [
              {"src": ["alice@example.com"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:router"]},
              {"src": ["tag:web"], "dst": ["tag:router"], "ip": ["*"]},
              {"src": ["100.64.0.1", "100.64.0.4", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::4"], "dst": ["10.9.0.0/24"], "ip": ["*"], "via": ["tag:router"]}]}"#,
    )
    .unwrap();
    let router = serving(tagged(2, "tag:router"), "10.9.0.0/24");
    verify_on(
        policy,
        vec![owned(1, 1), router, tagged(3, "tag:web"), owned(4, 1)],
        [
            Event::RemoveNode(4),
            Event::UpsertNode(owned(4, 1)),
            Event::UpsertNode(owned(5, 1)),
            Event::RemoveNode(5),
        ],
    );
}

/// An `autogroup:self` rule merges into the first rule whose sources are the user's devices:
/// another user's device joining that rule's sources moves the self rule on the first user's
/// devices, which are not its peers.
#[test]
fn self_merges_that_change_with_a_join() {
    let policy = parse_policy(
        r#"{"groups": {"group:eng": ["alice@example.com", "carol@"]},
            "tagOwners": {"tag:web": [], "tag:db": []},
            "acls": [
              {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"]},
              {"action": "accept", "src": ["tag:db"], "dst": ["autogroup:member:80"]},
              {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            owned(1, 1),
            owned(6, 1),
            tagged(2, "tag:web"),
            tagged(3, "tag:db"),
        ],
        [
            Event::UpsertNode(owned(4, 3)),
            Event::RemoveNode(4),
            Event::UpsertNode(owned(5, 3)),
            Event::RemoveNode(6),
        ],
    );
}

/// A device retagged and given a posture at once (the property test's find, kept as it was
/// found): a rule from `tag:router` whose sources must pass a posture had no passing source,
/// so no destinations; the device now passes and the rule reaches every member. The rule's
/// `SrcIPs` are the same before and after, so only its destinations tell that the members'
/// filters changed: the engine's item-level verdict must look at destinations, not only at
/// sources (it compares each node's candidate items and each item's destinations; this test
/// fails when both checks are dropped).
#[test]
fn a_retag_with_a_posture_gives_a_rule_its_destinations() {
    let policy = parse_policy(
        r#"{"groups": {"group:eng": ["alice@example.com", "carol@"]},
            "tagOwners": {"tag:web": ["group:eng"], "tag:db": ["tag:web"], "tag:router": ["alice@example.com"], "tag:exit": []},
            "autoApprovers": {"routes": {"10.0.0.0/16": ["alice@example.com"], "192.168.0.0/16": ["alice@example.com"]}, "exitNode": ["tag:exit"]},
            "postures": {"posture:linux": ["node:os == 'linux'"]},
            "acls": [
              {"action": "accept", "src": ["tag:db"], "dst": ["autogroup:internet:80,443"], "srcPosture": ["posture:linux"]},
              {"action": "accept", "src": ["tag:router"], "dst": ["autogroup:member:22"], "srcPosture": ["posture:linux"]},
              {"action": "accept", "src": ["10.0.0.0/24"], "dst": ["autogroup:internet:*"], "srcPosture": ["posture:linux"]},
              {"action": "accept", "src": ["tag:web"], "dst": ["alice@example.com:22"]}],
            "grants": [{"src": ["tag:router"], "dst": ["10.0.0.0/24"], "app": {"tailscale.com/cap/drive": [{"shares": ["*"]}], "example.com/cap/x": [{"k": 1}]}}],
            "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"], "checkPeriod": "1h"}],
            "nodeAttrs": [{"target": ["tag:db", "carol@"], "attr": ["disable-ipv4"]}]}"#,
    )
    .unwrap();
    let net = |s: &str| -> IpNet { s.parse().unwrap() };
    let at = |id: u64, n: u8| {
        let (a, b) = v4v6(n);
        (id, a, b)
    };
    let device = |(id, a, b): (u64, Ipv4Addr, Ipv6Addr), user: u64| {
        NodeRecord::owned(id, &format!("host{id}"), user, a, b)
    };
    let router = |(id, a, b): (u64, Ipv4Addr, Ipv6Addr), tags: &[&str]| {
        NodeRecord::tagged(id, &format!("host{id}"), tags, a, b)
    };
    let mut n1 = device(at(1, 51), 3);
    n1.approved_routes = ["10.0.0.0/24", "10.0.1.0/24", "192.168.0.0/16", "0.0.0.0/0"]
        .map(net)
        .to_vec();
    let mut n2 = router(at(2, 52), &["tag:db", "tag:router"]);
    n2.name = "host0".into();
    n2.advertised_routes = ["192.168.0.0/16", "0.0.0.0/0", "::/0"].map(net).to_vec();
    n2.approved_routes = ["10.0.0.0/24", "10.0.1.0/24", "::/0"].map(net).to_vec();
    let mut n3 = device(at(3, 53), 3).with_addresses(None, Some(v4v6(53).1));
    n3.name = "host2".into();
    n3.approved_routes = n1.approved_routes.clone();
    let mut n4 = router(at(4, 54), &["tag:web", "tag:db", "tag:router", "tag:exit"]);
    n4.approved_routes = ["10.0.0.0/24", "10.0.1.0/24", "192.168.0.0/16"]
        .map(net)
        .to_vec();
    let mut n5 = device(at(5, 55), 4);
    n5.approved_routes = vec![net("10.0.1.0/24")];
    let mut n6 = device(at(6, 6), 4).with_addresses(Some(v4v6(6).0), None);
    n6.approved_routes = vec![net("0.0.0.0/0")];
    let mut linux = router(at(4, 54), &["tag:router"]);
    linux.approved_routes = ["10.0.1.0/24", "::/0"].map(net).to_vec();
    linux
        .posture
        .insert("node:os".into(), serde_json::Value::from("linux"));
    verify_on(
        policy,
        vec![n1, n2, n3, n4, n5, n6],
        [Event::UpsertNode(linux)],
    );
}

/// A router starts and stops serving a route no other node serves: `*` as a source lists
/// every subnet route, so every rule from `*` changes on every node it reaches, while only
/// the router's peers see its routes; a second router serving the same route takes over as
/// primary and gives it back. Fails when the route path does not decide the `*` filters.
#[test]
fn a_route_flip_moves_every_rule_from_star() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:web": []},
            "acls": [
              {"action": "accept", "src": ["*"], "dst": ["tag:web:80"]},
              {"action": "accept", "src": ["alice@example.com"], "dst": ["10.9.0.0/16:22"]}]}"#,
    )
    .unwrap();
    let net: IpNet = "10.9.0.0/24".parse().unwrap();
    let mut router = tagged(2, "tag:router");
    router.approved_routes = vec![net];
    let mut backup = tagged(5, "tag:router");
    backup.approved_routes = vec![net];
    let serving = |mut n: NodeRecord| {
        n.advertised_routes = vec![net];
        n
    };
    verify_on(
        policy,
        vec![
            owned(1, 1),
            router.clone(),
            tagged(3, "tag:web"),
            owned(4, 2),
            backup.clone(),
        ],
        [
            Event::UpsertNode(serving(router.clone())),
            Event::UpsertNode(serving(backup.clone())),
            Event::SetOnline {
                node: 2,
                online: false,
            },
            Event::SetOnline {
                node: 2,
                online: true,
            },
            Event::UpsertNode(router),
            Event::UpsertNode(backup),
        ],
    );
}

/// Routers changing, alone and in batches, applied in steps (the routers' routes away, every
/// node changed, the routes back). A router serving the only route to 10.9.0.0/24 is
/// retagged, renamed and given new addresses: `*` as a source loses the route and gets it
/// back, so every rule from `*` changes in the steps and is as it was at the end. Then
/// batches: one router leaving as another joins with the same route, a router retagged
/// beside a member's join and another's leave, two routers swapping tags. Fails when a
/// filter a step marked changed is taken as changed at the end (the web servers would be
/// pushed a map equal to the one they have), when the steps miss what did change (the
/// routers' own filters and their peers), or when the records of a batch's other nodes are
/// not where each step starts.
#[test]
fn routers_step_through_their_routes() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:relay": [], "tag:web": []},
            "acls": [
              {"action": "accept", "src": ["*"], "dst": ["tag:web:80"]},
              {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:relay:22"]},
              {"action": "accept", "src": ["alice@example.com"], "dst": ["10.9.0.0/16:22"]}]}"#,
    )
    .unwrap();
    let route = "10.9.0.0/24";
    let r2 = serving(tagged(2, "tag:router"), route);
    let r6 = serving(tagged(6, "tag:relay"), route);
    let retag = |n: &NodeRecord, tag: &str| NodeRecord {
        tags: vec![tag.to_string()],
        ..n.clone()
    };
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![
            owned(1, 1),
            r2.clone(),
            tagged(3, "tag:web"),
            tagged(4, "tag:web"),
            owned(5, 2),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let renamed = NodeRecord {
        name: "node0".to_string(),
        ..retag(&r2, "tag:relay")
    };
    let (a, b) = v4v6(9);
    let readdressed = NodeRecord {
        ipv4: Some(a),
        ipv6: Some(b),
        ..renamed.clone()
    };
    verify(
        engine,
        [
            vec![Event::UpsertNode(retag(&r2, "tag:relay"))],
            vec![Event::UpsertNode(renamed)],
            vec![Event::UpsertNode(readdressed)],
            vec![Event::UpsertNode(r2.clone())],
            vec![Event::RemoveNode(2), Event::UpsertNode(r6.clone())],
            vec![
                Event::UpsertNode(retag(&r6, "tag:router")),
                Event::UpsertNode(owned(7, 3)),
                Event::RemoveNode(5),
            ],
            vec![
                Event::UpsertNode(r2.clone()),
                Event::UpsertNode(owned(5, 2)),
            ],
            vec![
                Event::UpsertNode(retag(&r2, "tag:relay")),
                Event::UpsertNode(retag(&r6, "tag:relay")),
            ],
            vec![
                Event::UpsertNode(retag(&r2, "tag:router")),
                Event::UpsertNode(retag(&r6, "tag:router")),
                Event::RemoveNode(7),
            ],
        ]
        .into_iter(),
    )
    .unwrap();
}

/// A user's roles and groups change: every device of the user moves in and out of the
/// selectors naming the role or the group, at once. Fails when only one of the user's
/// devices is treated as changed.
#[test]
fn a_users_role_and_groups_change_moves_all_its_devices() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": []},
            "acls": [
              {"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:web:22"]},
              {"action": "accept", "src": ["group:ops@example.com"], "dst": ["tag:web:443"]}]}"#,
    )
    .unwrap();
    let newcomer = UserRecord {
        id: 7,
        login: "erin@example.com".to_string(),
        name: "erin".to_string(),
        roles: vec![Role::Admin],
        groups: vec!["group:ops@example.com".to_string()],
    };
    // The first event gives the rules sources (they merge differently: every node is
    // fingerprinted); the next two move only user 2's two devices; then a user joins (no
    // device yet: no map changes) and brings a device.
    verify_on(
        policy,
        vec![owned(1, 1), owned(2, 2), owned(3, 2), tagged(4, "tag:web")],
        [
            Event::UpsertUser(ops_admin(1)),
            Event::UpsertUser(ops_admin(2)),
            Event::UpsertUser(user(2, 0)),
            Event::UpsertUser(newcomer),
            Event::UpsertNode(owned(5, 7)),
        ],
    );
}

/// A Service whose address lies in a subnet route another node serves: a rule to the
/// Service reaches that router as well as the hosts (its route holds the address), so the
/// router's filter and its peers move with the Service though it hosts nothing. Fails when
/// a Service event fingerprints only the servers of its hosts' routes.
#[test]
fn a_service_inside_a_subnet_route() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:router": []},
            "grants": [{"src": ["alice@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]},
                       {"src": ["autogroup:member"], "dst": ["tag:web"], "ip": ["tcp:22"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            owned(1, 1),
            owned(2, 2),
            tagged(3, "tag:web"),
            serving(tagged(4, "tag:router"), "100.100.200.0/24"),
        ],
        [
            Event::UpsertService(approved_service(vec![3], 1)),
            Event::UpsertService(approved_service(vec![3], 2)),
            Event::UpsertService(approved_service(Vec::new(), 2)),
            Event::RemoveService("svc:web".to_string()),
            Event::UpsertService(approved_service(Vec::new(), 3)),
        ],
    );
}

/// Users who own routers: a user's role and group change while their device serves an
/// exit route (the device is unchanged, but the selectors naming it move), and a user
/// removed with a subnet router. Each is applied in steps (the routers' routes away, the
/// users and their devices changed, the routes back); the steps see the users as they were
/// until the middle one. Fails when a step sees the users after the event too early, or
/// when a filter a step marked changed is taken as changed at the end.
#[test]
fn users_with_routers_step_through_their_routes() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": []},
            "acls": [
              {"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:web:22"]},
              {"action": "accept", "src": ["*"], "dst": ["tag:web:80"]},
              {"action": "accept", "src": ["group:ops@example.com"], "dst": ["autogroup:internet:*", "10.9.0.0/16:22"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            serving(owned(1, 1), "0.0.0.0/0"),
            owned(2, 1),
            serving(owned(3, 2), "10.9.0.0/24"),
            tagged(4, "tag:web"),
            owned(5, 3),
        ],
        [
            Event::UpsertUser(ops_admin(1)),
            Event::UpsertUser(ops_admin(3)),
            Event::UpsertUser(user(1, 0)),
            Event::RemoveUser(2),
        ],
    );
}

/// A user removed with their devices (none serving a route) takes the node path for all the
/// devices at once; the other users keep their devices although user positions shift (the
/// removed user sorts first). Fails when one device is left out of the path (carol's device
/// is a peer of alice's second device only).
#[test]
fn a_user_removed_with_devices() {
    let policy = parse_policy(
        r#"{"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
            "hosts": {"second": "100.64.0.2"},
            "tagOwners": {"tag:web": []},
            "acls": [
              {"action": "accept", "src": ["carol@"], "dst": ["second:22"]},
              {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
              {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            owned(1, 1),
            owned(2, 1),
            owned(3, 2),
            owned(5, 3),
            tagged(4, "tag:web"),
        ],
        [Event::RemoveUser(1), Event::RemoveUser(2)],
    );
}

/// Two Services changed in one batch: each step takes its own Service alone to the event's
/// record. Every step saw both Services after the event, so the first (a Service without
/// hosts, as one just made is) took the second's hosts too without looking at their
/// peers, and the second found nothing changed: `client` kept routing `svc:b` nowhere, and
/// was not in the change set (found by an adversarial sweep of the engine).
#[test]
fn two_services_in_one_batch() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": []},
            "grants": [{"src": ["alice@example.com"], "dst": ["svc:a", "svc:b"], "ip": ["tcp:443"]},
                       {"src": ["*"], "dst": ["tag:web"], "ip": ["tcp:80"]}]}"#,
    )
    .unwrap();
    let svc = |name: &str, last: u8, hosts: Vec<u64>| ServiceRecord {
        name: name.to_string(),
        ipv4: Some(Ipv4Addr::new(100, 100, 200, last)),
        ipv6: None,
        approved_hosts: hosts.clone(),
        hosts,
        tags: Vec::new(),
    };
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![
            owned(1, 1),
            tagged(3, "tag:web"),
            tagged(4, "tag:web"),
            owned(5, 2),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let batches = vec![
        // A hostless Service, then one with a host.
        vec![
            Event::UpsertService(svc("svc:a", 1, Vec::new())),
            Event::UpsertService(svc("svc:b", 2, vec![4])),
        ],
        // Both moved in one batch; one's only host an id naming no node.
        vec![
            Event::UpsertService(svc("svc:a", 1, vec![99])),
            Event::UpsertService(svc("svc:b", 2, vec![3])),
        ],
        vec![
            Event::UpsertService(svc("svc:a", 1, vec![3, 4])),
            Event::UpsertService(svc("svc:b", 2, vec![4])),
        ],
        // Both removed in one batch.
        vec![
            Event::RemoveService("svc:a".to_string()),
            Event::RemoveService("svc:b".to_string()),
        ],
    ];
    verify(engine, batches.into_iter()).unwrap();
}

/// Tailscale Services in the engine: a service added, its hosts, approvals and addresses
/// changed, a host retagged, a host removed (its id stays in the service's row and is left
/// out), the service removed; each change set is exact against a fresh engine. A Service's
/// events take the route path over its hosts. A host serves the service's
/// addresses as routes, so its node events never take the routeless path.
#[test]
fn services_in_the_engine() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:db": [], "tag:svc": []},
            "autoApprovers": {"services": {"tag:svc": ["tag:web"]}},
            "grants": [{"src": ["alice@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]},
                       {"src": ["autogroup:member"], "dst": ["tag:db"], "ip": ["tcp:5432"]}]}"#,
    )
    .unwrap();
    let svc = |hosts: Vec<u64>, approved: Vec<u64>, tags: &[&str]| ServiceRecord {
        name: "svc:web".to_string(),
        ipv4: Some(Ipv4Addr::new(100, 100, 200, 1)),
        ipv6: None,
        hosts,
        approved_hosts: approved,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    verify_on(
        policy,
        vec![
            owned(1, 1),
            owned(2, 2),
            tagged(3, "tag:web"),
            tagged(4, "tag:web"),
            tagged(5, "tag:db"),
        ],
        [
            Event::UpsertService(svc(vec![3, 4], vec![3], &[])),
            Event::UpsertService(svc(vec![3, 4], vec![3], &["tag:svc"])),
            // New addresses: the rule to `svc:web` reaches them, on the same hosts.
            Event::UpsertService(ServiceRecord {
                ipv4: Some(Ipv4Addr::new(100, 100, 200, 9)),
                ipv6: Some(v4v6(30).1),
                ..svc(vec![3, 4], vec![3], &["tag:svc"])
            }),
            Event::UpsertService(svc(vec![3, 4], vec![3], &["tag:svc"])),
            Event::UpsertNode(tagged(4, "tag:db")),
            Event::UpsertNode(owned(2, 1)),
            Event::RemoveNode(3),
            Event::UpsertNode(tagged(3, "tag:web")),
            Event::RemoveService("svc:web".to_string()),
            Event::RemoveService("svc:web".to_string()),
        ],
    );
    // A host's retag moves its approval (keyed by the service's tag) while its peers stay:
    // only the peer's view of its routes changes. Fails when hosts take the routeless path.
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:x": [], "tag:svc": []},
            "autoApprovers": {"services": {"tag:svc": ["tag:x"]}},
            "grants": [{"src": ["alice@example.com"], "dst": ["svc:web"], "ip": ["tcp:443"]},
                       {"src": ["alice@example.com"], "dst": ["tag:web"], "ip": ["tcp:22"]}]}"#,
    )
    .unwrap();
    let (a, b) = v4v6(4);
    let both = NodeRecord::tagged(4, "node4", &["tag:web", "tag:x"], a, b);
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![owned(1, 1), both.clone()],
        tailnet: Default::default(),
        services: vec![svc(vec![4], vec![], &["tag:svc"])],
    };
    let engine = Engine::new(policy.clone(), state, EngineOptions::default()).unwrap();
    let sees_service = |engine: &Engine| {
        serde_json::to_string(&engine.snapshot().node(1).unwrap().to_wire().peers)
            .unwrap()
            .contains("100.100.200.1")
    };
    assert!(sees_service(&engine));
    verify(
        engine,
        [
            Event::UpsertNode(tagged(4, "tag:web")),
            Event::UpsertNode(both.clone()),
        ]
        .into_iter()
        .map(|e| vec![e]),
    )
    .unwrap();
    // The only host renamed: its entry in the viewer's peers carries the service's address,
    // so a patch by its bare entry would leave the viewer's fingerprint wrong, and the
    // viewer's next event (a hostname, which no map shows) would report a change.
    let mut renamed = both.clone();
    renamed.name = "node4-renamed".to_string();
    let mut viewer = owned(1, 1);
    viewer.hostname = Some("alice-laptop".to_string());
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![owned(1, 1), both],
        tailnet: Default::default(),
        services: vec![svc(vec![4], vec![4], &[])],
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    verify(
        engine,
        [Event::UpsertNode(renamed), Event::UpsertNode(viewer)]
            .into_iter()
            .map(|e| vec![e]),
    )
    .unwrap();
}

/// A user's login emptied while the user owns a device is refused, and the message says so
/// (it said `unknown user ""`).
#[test]
fn a_login_emptied_under_owned_devices_is_refused_with_its_reason() {
    let policy = parse_policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#);
    let state = TailnetState {
        users: (1..=2).map(|id| user(id, 0)).collect(),
        nodes: vec![owned(1, 1), owned(2, 2)],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let mut engine = Engine::new(policy.unwrap(), state, EngineOptions::default()).unwrap();
    let before = engine.state();
    let mut nameless = user(2, 0);
    nameless.login = String::new();
    let error = engine.apply(Event::UpsertUser(nameless)).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("owned by a user without a login") && message.contains("node2"),
        "{message}"
    );
    assert_eq!(engine.state(), before);
}

/// The state as Go writes it: a nil slice or map is `null`, read as empty (the Go binding's
/// own `ServiceRecord` without hosts was refused: "invalid type: null, expected a
/// sequence"; found by an adversarial sweep of the engine).
#[test]
fn null_lists_in_the_state_are_empty() {
    let state = TailnetState::from_json(
        r#"{"users": [{"id": 3, "login": "carol@", "name": null, "roles": null, "groups": null}],
            "nodes": [{"id": 1, "name": "v4", "user": 3, "ipv4": "100.64.0.1", "tags": null,
                       "advertised_routes": null, "approved_routes": null, "posture": null}],
            "services": [{"name": "svc:a", "ipv4": "100.100.200.1", "hosts": null,
                          "approved_hosts": null, "tags": null}],
            "tailnet": null}"#,
    )
    .unwrap();
    assert!(state.users[0].roles.is_empty() && state.nodes[0].tags.is_empty());
    assert!(state.services[0].hosts.is_empty());
    let policy = parse_policy(r#"{"grants": [{"src": ["*"], "dst": ["svc:a"], "ip": ["*"]}]}"#);
    assert!(Engine::new(policy.unwrap(), state, EngineOptions::default()).is_ok());
}

/// Nodes with one address family: the engine's inventory format leaves the other out; a
/// node re-addressed to the other family changes how its peers see it; a node with no
/// address is refused and leaves the state unchanged.
#[test]
fn single_family_nodes_in_the_engine() {
    let policy =
        parse_policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#).unwrap();
    let state = TailnetState::from_json(
        r#"{"users": [{"id": 3, "login": "carol@"}],
            "nodes": [{"id": 1, "name": "v4", "user": 3, "ipv4": "100.64.0.1"},
                      {"id": 2, "name": "v6", "user": 3, "ipv6": "fd7a:115c:a1e0::2"},
                      {"id": 4, "name": "dual", "user": 3,
                       "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4"}]}"#,
    )
    .unwrap();
    assert_eq!(state.nodes[0].ipv6, None);
    assert_eq!(state.nodes[1].ipv4, None);
    let json = serde_json::to_value(&state.nodes[0]).unwrap();
    assert!(json.get("ipv6").is_none(), "{json}");
    let mut engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let peers = |engine: &Engine, id: u64| {
        serde_json::to_value(engine.snapshot().node(id).unwrap().to_wire().peers).unwrap()
    };
    assert_eq!(
        peers(&engine, 4),
        serde_json::json!({"v4": {"allowed_ips": ["100.64.0.1/32"]},
                           "v6": {"allowed_ips": ["fd7a:115c:a1e0::2/128"]}})
    );
    // The IPv4-only node moves to the IPv6 pool.
    let moved = owned(1, 3).with_addresses(None, Some("fd7a:115c:a1e0::1".parse().unwrap()));
    let moved = NodeRecord {
        name: "v4".to_string(),
        ..moved
    };
    let changes = engine.apply(Event::UpsertNode(moved)).unwrap();
    assert!(!changes.is_empty());
    assert_eq!(
        peers(&engine, 4),
        serde_json::json!({"v4": {"allowed_ips": ["fd7a:115c:a1e0::1/128"]},
                           "v6": {"allowed_ips": ["fd7a:115c:a1e0::2/128"]}})
    );
    let before = peers(&engine, 4);
    let none = owned(1, 3).with_addresses(None, None);
    assert!(engine.apply(Event::UpsertNode(none)).is_err());
    assert_eq!(peers(&engine, 4), before);
}

/// An event after which the compiler would refuse the tailnet (here, a join past the work
/// limit) is refused: the engine keeps serving the previous maps, not a tailnet with no
/// access, and a batch's stored approvals are taken back with it. A policy replaced by one
/// the compiler refuses is refused alike.
#[test]
fn an_event_the_compiler_would_refuse_is_refused() {
    let policy = parse_policy(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}],
            "autoApprovers": {"routes": {"10.0.0.0/8": ["autogroup:member"]}}}"#,
    )
    .unwrap();
    let state = |n: u64| TailnetState {
        users: vec![user(1, 0)],
        nodes: (1..=n).map(|i| owned(i, 1)).collect(),
        ..TailnetState::default()
    };
    let options = |limit: u64| {
        let mut options = EngineOptions::with_approvals(ApprovalMode::Stored);
        options.compile.limits.max_rule_entries = limit;
        options
    };
    let compiles = |n: u64, limit: u64| {
        let engine = Engine::new(policy.clone(), state(n), options(limit)).unwrap();
        let refused = engine.snapshot().compiled().refusal().is_some();
        !refused
    };
    // The least limit under which three nodes compile: a fourth node reaches more.
    let limit = (1..10_000).find(|&l| compiles(3, l)).unwrap();
    assert!(!compiles(4, limit));
    let mut engine = Engine::new(policy.clone(), state(3), options(limit)).unwrap();
    let before = outputs(&engine);
    let state_before = engine.state();
    assert!(!before[&1].packet_filter_rules.is_empty());
    let joining = serving(owned(4, 1), "10.1.0.0/16");
    let mut unapproved = joining.clone();
    unapproved.approved_routes.clear();
    let error = engine
        .apply(Event::UpsertNode(unapproved.clone()))
        .unwrap_err();
    assert!(
        matches!(&error, aclc_compiler::engine::EngineError::Compile(e)
            if e.kind == aclc_compiler::CompileErrorKind::BudgetExceeded),
        "{error:?}"
    );
    assert_eq!(engine.state(), state_before);
    assert_eq!(outputs(&engine), before);
    // In a batch, with an approval stored for the joining node: all taken back.
    let error = engine
        .apply_batch([
            Event::UpsertNode(unapproved),
            Event::SetOnline {
                node: 2,
                online: false,
            },
        ])
        .unwrap_err();
    assert_eq!(error.event, None);
    assert_eq!(engine.state(), state_before);
    assert_eq!(outputs(&engine), before);
    // A policy the compiler refuses (twice the work, past the limit) is refused too, with
    // the approval it stored for a route advertised earlier.
    let advertised = vec!["192.168.0.0/24".parse().unwrap()];
    engine
        .apply(Event::AdvertiseRoutes {
            node: 2,
            routes: advertised,
        })
        .unwrap();
    let state_before = engine.state();
    let before = outputs(&engine);
    let doubled = parse_policy(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]},
                       {"src": ["*"], "dst": ["*"], "ip": ["22"]}],
            "autoApprovers": {"routes": {"192.168.0.0/24": ["autogroup:member"]}}}"#,
    )
    .unwrap();
    let error = engine
        .apply(Event::ReplacePolicy(doubled.clone()))
        .unwrap_err();
    assert!(matches!(
        error,
        aclc_compiler::engine::EngineError::Compile(_)
    ));
    assert_eq!(engine.state(), state_before);
    assert_eq!(outputs(&engine), before);
    // A node leaving still applies, and an engine that starts refused stays so, granting
    // nothing, until an event makes it compile.
    engine.apply(Event::RemoveNode(3)).unwrap();
    let mut refused = Engine::new(doubled, state(2), options(limit)).unwrap();
    assert!(refused.snapshot().compiled().refusal().is_some());
    assert!(outputs(&refused)[&1].packet_filter_rules.is_empty());
    refused.apply(Event::UpsertNode(owned(3, 1))).unwrap();
    assert!(refused.snapshot().compiled().refusal().is_some());
    refused.apply(Event::ReplacePolicy(policy)).unwrap();
    assert!(!outputs(&refused)[&1].packet_filter_rules.is_empty());
}

/// A route with host bits set (`10.0.0.7/24`), advertised or approved, is refused as the
/// corpus inventory refuses it: it was sent to peers as it was, and an approval of
/// `10.0.0.0/24` never matched it.
#[test]
fn routes_with_host_bits_are_refused() {
    let policy =
        parse_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#).unwrap();
    let state = TailnetState {
        users: vec![user(1, 0)],
        nodes: vec![owned(1, 1), owned(2, 1)],
        ..TailnetState::default()
    };
    let mut engine = Engine::new(policy.clone(), state.clone(), EngineOptions::default()).unwrap();
    let before = engine.state();
    for event in [
        Event::AdvertiseRoutes {
            node: 1,
            routes: vec!["10.0.0.7/24".parse().unwrap()],
        },
        Event::ApproveRoutes {
            node: 1,
            routes: vec!["fd00::1/64".parse().unwrap()],
        },
    ] {
        let error = engine.apply(event).unwrap_err();
        let aclc_compiler::engine::EngineError::Inventory(e) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(
            e.kind,
            aclc_compiler::InventoryErrorKind::InvalidPrefix,
            "{e}"
        );
        assert!(e.message.contains("has host bits set"), "{e}");
        assert_eq!(engine.state(), before);
    }
    engine
        .apply(Event::AdvertiseRoutes {
            node: 1,
            routes: vec!["10.0.0.0/24".parse().unwrap()],
        })
        .unwrap();
    let mut bad = state;
    bad.nodes[1] = serving(owned(2, 1), "192.168.1.1/24");
    assert!(Engine::new(policy, bad, EngineOptions::default()).is_err());
}

/// A self rule merges into the first item whose sources are exactly its owner's devices. When
/// a member is retagged, `autogroup:member`'s sources shrink to another user's only device:
/// that user's self rule now claims the member rule's slot (first) on a device the retagged
/// node's items never reach. Found by the property test; fails without
/// `Compiled::self_claimants` in the node path.
#[test]
fn a_retag_makes_a_list_equal_to_another_users_devices() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": []},
            "acls": [
              {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:internet:*"]},
              {"action": "accept", "src": ["10.0.0.0/24"], "dst": ["autogroup:member:*"]},
              {"action": "accept", "src": ["*"], "dst": ["autogroup:self:*"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![owned(2, 2), owned(3, 3)],
        [
            Event::UpsertNode(tagged(2, "tag:web")),
            Event::UpsertNode(owned(2, 2)),
        ],
    );
}

/// The node path pairs the two lowerings' items index for index. A rule whose sources are
/// empty has no item, so when a device leaves one rule's only passing source and becomes
/// another rule's only source, the two rules' items trade places at one index with equal
/// slots: the pairing must see that they come from different rules. Found by the property
/// test (100,000 cases); fails without the rule origin in `Lowered::merge_signature`.
#[test]
fn one_rules_item_vanishes_as_anothers_appears() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": []},
            "postures": {"posture:linux": ["node:os == 'linux'"]},
            "acls": [
              {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:80,443"],
               "srcPosture": ["posture:linux"]},
              {"action": "accept", "src": ["carol@"], "dst": ["tag:web:*"]}]}"#,
    )
    .unwrap();
    let mut linux = owned(1, 4);
    linux
        .posture
        .insert("node:os".to_string(), serde_json::json!("linux"));
    verify_on(
        policy,
        vec![linux, tagged(2, "tag:web")],
        [Event::UpsertNode(owned(1, 3))],
    );
}

/// A policy edit that gives a group other members, as many: the rule from the group keeps its
/// source list as written, but its `SrcIPs` are other devices' (a reuse of the previous
/// compile's lists that compared node lists by length alone would keep the old addresses).
#[test]
fn a_group_redefined_with_as_many_members() {
    let text = |member: &str| {
        format!(
            r#"{{"groups": {{"group:eng": ["{member}"]}},
                "tagOwners": {{"tag:web": []}},
                "acls": [{{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"]}}],
                "ssh": [{{"action": "accept", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"]}}]}}"#
        )
    };
    policy_edit_both_ways(
        |extra| text(if extra.is_empty() { LOGINS[0] } else { extra }),
        LOGINS[1],
        vec![owned(1, 1), owned(2, 2), tagged(3, "tag:web")],
    );
}

/// Node events that make the tailnet invalid are refused with the report a fresh engine
/// gives for the same records (the engine checks only the changed nodes when it can; the
/// full check words the report), and leave the state as it was. Single events and batches,
/// against nodes kept, changed and added in the same batch, and a Service's addresses.
#[test]
fn invalid_node_events_are_refused_as_a_fresh_engine_refuses_them() {
    let policy = parse_policy(r#"{"tagOwners": {"tag:web": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#).unwrap();
    let nodes = || vec![owned(1, 1), tagged(2, "tag:web"), owned(3, 2), owned(4, 3)];
    let with = |id: u64, edit: &dyn Fn(&mut NodeRecord)| {
        let mut n = owned(id, 1);
        edit(&mut n);
        n
    };
    let (a3, b3) = v4v6(3);
    // A Service hosted by node 2: the other nodes' events take the narrow path beside it.
    let (vip4, vip6) = v4v6(20);
    let service = ServiceRecord {
        name: "svc:web".to_string(),
        ipv4: Some(vip4),
        ipv6: Some(vip6),
        hosts: vec![2],
        approved_hosts: vec![2],
        tags: Vec::new(),
    };
    let cases: Vec<Vec<Event>> = vec![
        // A join, or a changed node, with the Service's address (each family).
        vec![Event::UpsertNode(with(9, &|n| n.ipv4 = Some(vip4)))],
        vec![Event::UpsertNode(with(9, &|n| n.ipv6 = Some(vip6)))],
        vec![Event::UpsertNode(with(1, &|n| n.ipv4 = Some(vip4)))],
        // A join with a kept node's address (each family), or its name.
        vec![Event::UpsertNode(with(9, &|n| n.ipv4 = Some(a3)))],
        vec![Event::UpsertNode(with(9, &|n| n.ipv6 = Some(b3)))],
        vec![Event::UpsertNode(with(9, &|n| n.name = "node3".into()))],
        // A changed node taking another's address or name.
        vec![Event::UpsertNode(with(1, &|n| n.ipv4 = Some(a3)))],
        vec![Event::UpsertNode(with(1, &|n| n.name = "node4".into()))],
        // Two joins in one batch clashing with each other.
        vec![
            Event::UpsertNode(owned(9, 1)),
            Event::UpsertNode(with(10, &|n| n.ipv4 = v4v6(9).0.into())),
        ],
        vec![
            Event::UpsertNode(owned(9, 1)),
            Event::UpsertNode(with(10, &|n| n.name = "node9".into())),
        ],
        // A node's own problems: no address, an empty name, a bad or repeated tag, tagged
        // and owned.
        vec![Event::UpsertNode(with(9, &|n| {
            (n.ipv4, n.ipv6) = (None, None)
        }))],
        vec![Event::UpsertNode(with(9, &|n| n.name = " ".into()))],
        vec![Event::UpsertNode(with(9, &|n| {
            (n.user, n.tags) = (None, vec!["web".into()])
        }))],
        vec![Event::UpsertNode(with(9, &|n| {
            (n.user, n.tags) = (None, vec!["tag:web".into(), "tag:web".into()])
        }))],
        vec![Event::UpsertNode(with(2, &|n| {
            n.tags = vec!["tag:web".into()]
        }))],
        // A removal and a join reusing its address and name: valid.
        vec![
            Event::RemoveNode(3),
            Event::UpsertNode(with(9, &|n| {
                (n.name, n.ipv4, n.ipv6) = ("node3".into(), Some(a3), Some(b3))
            })),
        ],
    ];
    for (i, batch) in cases.into_iter().enumerate() {
        let state = TailnetState {
            users: (1..=4).map(|id| user(id, 0)).collect(),
            nodes: nodes(),
            tailnet: Default::default(),
            services: vec![service.clone()],
        };
        let mut engine = Engine::new(policy.clone(), state, EngineOptions::default()).unwrap();
        let before = outputs(&engine);
        // The records after the batch, as a fresh engine is given them.
        let mut records: BTreeMap<u64, NodeRecord> =
            nodes().into_iter().map(|n| (n.id, n)).collect();
        for event in &batch {
            match event {
                Event::UpsertNode(n) => {
                    records.insert(n.id, n.clone());
                }
                Event::RemoveNode(id) => {
                    records.remove(id);
                }
                _ => unreachable!(),
            }
        }
        let fresh = Engine::new(
            policy.clone(),
            TailnetState {
                users: (1..=4).map(|id| user(id, 0)).collect(),
                nodes: records.into_values().collect(),
                tailnet: Default::default(),
                services: vec![service.clone()],
            },
            EngineOptions::default(),
        );
        let applied = engine.apply_batch(batch.clone());
        match (applied, fresh) {
            (Ok(_), Ok(fresh)) => {
                assert_eq!(outputs(&engine), outputs(&fresh), "case {i}");
            }
            (Err(e), Err(expected)) => {
                assert_eq!(e.error, expected, "case {i}");
                assert_eq!(outputs(&engine), before, "case {i}: state changed");
            }
            (applied, fresh) => panic!(
                "case {i}: the engine gave {:?}, a fresh engine {:?}",
                applied.err(),
                fresh.err()
            ),
        }
    }
}

/// A session recorder joining, leaving or retagged away: every SSH rule recording to its tag
/// changes its action (the recorders' addresses, or the refusal when recording is enforced
/// and none is left) on every destination of the rule, although the recorder is no source
/// of the rule and no peer of those destinations.
#[test]
fn a_recorder_that_joins_changes_the_rules_recording_to_it() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:rec": [], "tag:db": []},
            "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:22"]}],
            "ssh": [
              {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"], "recorder": ["tag:rec"]},
              {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:db"], "users": ["root"], "recorder": ["tag:rec"], "enforceRecorder": true}]}"#,
    )
    .unwrap();
    let mut rec = tagged(5, "tag:rec");
    let mut other = rec.clone();
    other.tags = vec!["tag:db".to_string()];
    verify_on(
        policy,
        vec![owned(1, 1), tagged(2, "tag:web"), tagged(3, "tag:db")],
        [
            Event::UpsertNode(rec.clone()),
            Event::UpsertNode(other),
            Event::UpsertNode({
                rec.name = "rec-2".to_string();
                rec
            }),
            Event::RemoveNode(5),
        ],
    );
}

/// A subnet route holding the tailnet's own addresses (the router's 100.64.0.0/26): carol's
/// device sees it while alice's device, inside it, reaches carol's 192.168.0.0/16, so when
/// alice's device leaves, carol's view of the router changes though the router did not (its
/// entry in carol's peers' part must be patched, not only alice's). Bob's leave after that
/// changes only the router's map, and the change set must name only it.
#[test]
fn a_leave_inside_a_route_names_only_changed_maps() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:router": [], "tag:exit": []},
            "autoApprovers": {"routes": {"10.0.0.0/16": ["tag:router"]}, "exitNode": ["tag:exit"]},
            "postures": {"posture:linux": ["node:os == 'linux'"]},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:self:*"], "srcPosture": ["posture:linux"]},
                     {"action": "accept", "src": ["alice@example.com"], "dst": ["192.168.0.0/16:*"], "srcPosture": ["posture:linux"]}],
            "grants": [{"src": ["autogroup:member"], "dst": ["10.0.0.0/24"], "ip": ["*"], "via": ["tag:router"]}],
            "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]}]}"#,
    )
    .unwrap();
    let nets = |list: &[&str]| -> Vec<IpNet> { list.iter().map(|r| r.parse().unwrap()).collect() };
    let mut bob = owned(1, 2);
    bob.ipv6 = None;
    bob.advertised_routes = nets(&["10.0.0.0/24", "192.168.0.0/16", "0.0.0.0/0", "::/0"]);
    bob.approved_routes = nets(&["10.0.1.0/24", "100.64.0.0/26"]);
    let mut alice = owned(2, 1);
    alice.approved_routes = nets(&["10.0.0.0/24"]);
    alice
        .posture
        .insert("node:os".to_string(), serde_json::json!("linux"));
    let mut carol = owned(3, 3);
    carol.advertised_routes = nets(&["10.0.1.0/24", "192.168.0.0/16"]);
    carol.approved_routes = nets(&["10.0.0.0/24", "192.168.0.0/16", "::/0"]);
    let mut router = tagged(4, "tag:router");
    router.tags.push("tag:exit".to_string());
    router.advertised_routes = nets(&ROUTES);
    router.approved_routes = nets(&[
        "10.0.0.0/24",
        "10.0.1.0/24",
        "100.64.0.0/26",
        "0.0.0.0/0",
        "::/0",
    ]);
    router
        .posture
        .insert("node:os".to_string(), serde_json::json!("linux"));
    let state = TailnetState {
        users: vec![user(1, 2), user(2, 3), user(3, 1)],
        nodes: vec![bob, alice, carol, router],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(
        policy,
        state,
        EngineOptions::with_approvals(ApprovalMode::Stored),
    )
    .unwrap();
    verify(
        engine,
        [Event::RemoveNode(2), Event::RemoveNode(1)]
            .into_iter()
            .map(|e| vec![e]),
    )
    .unwrap();
}

/// A device joining a user's devices moves two SSH rules for the user's other device: one that
/// gives each destination the same piece (its sources, the user's devices, took the new one),
/// and an `autogroup:self` rule whose list for that user was built again. The other device is
/// hashed again for the second; the first's change must not be added on top of that hash.
#[test]
fn a_node_hashed_again_takes_no_moved_piece() {
    let policy = parse_policy(
        r#"{"acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com:22"]}],
            "ssh": [
              {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]},
              {"action": "check", "src": ["alice@example.com"], "dst": ["alice@example.com"], "users": ["root"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![owned(1, 1), owned(2, 2)],
        [
            Event::UpsertNode(owned(3, 1)),
            Event::RemoveNode(3),
            Event::RemoveNode(1),
        ],
    );
}

/// A policy of more than 65,536 rule items (one rule's 66,000 destinations, none on a node)
/// indexes its items in 32 bits, and one of fewer in 16 (`ItemIndex`): node events on the
/// wide index, and policy edits from one width to the other and back, each as a full
/// recompile gives them.
#[test]
fn a_policy_past_65536_items() {
    let text = |spare: usize| {
        let literals: Vec<String> = (0..spare)
            .map(|i| format!("\"10.{}.{}.{}:1\"", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        format!(
            r#"{{"groups": {{"group:eng": ["alice@example.com", "carol@"]}},
            "tagOwners": {{"tag:web": [], "tag:db": []}},
            "acls": [
              {{"action": "accept", "src": ["tag:db"], "dst": [{}]}},
              {{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22", "tag:db:5432"]}},
              {{"action": "accept", "src": ["tag:web"], "dst": ["alice@example.com:80"]}}]}}"#,
            literals.join(",")
        )
    };
    let wide = parse_policy(&text(66_000)).unwrap();
    let narrow = parse_policy(&text(10)).unwrap();
    verify_on(
        wide.clone(),
        vec![owned(1, 1), tagged(2, "tag:web"), tagged(3, "tag:db")],
        [
            Event::UpsertNode(owned(4, 3)),
            Event::UpsertNode(tagged(5, "tag:web")),
            Event::RemoveNode(1),
            Event::ReplacePolicy(narrow),
            Event::UpsertNode(owned(1, 1)),
            Event::ReplacePolicy(wide),
            Event::RemoveNode(4),
        ],
    );
}

/// A Kubernetes grant's session recorders are resolved into its capability value
/// (`recorderAddrs`): a recorder joining, moving or leaving changes the map of every node
/// the grant reaches, though none of them names the recorder.
#[test]
fn kubernetes_recorders_follow_their_nodes() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:db": []},
            "grants": [{"src": ["autogroup:member"], "dst": ["tag:web"],
                        "app": {"tailscale.com/cap/kubernetes": [{"recorder": ["tag:db"], "enforceRecorder": true}]}}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![owned(1, 1), tagged(2, "tag:web")],
        [
            Event::UpsertNode(tagged(3, "tag:db")),
            Event::UpsertNode(tagged(4, "tag:db")),
            Event::RemoveNode(3),
            Event::UpsertNode(tagged(4, "tag:web")),
            Event::UpsertNode(tagged(4, "tag:db")),
            Event::RemoveNode(4),
        ],
    );
}

/// A retag that leaves the node in a rule's sources (`autogroup:tagged`, before and after)
/// changes nothing in that rule's `SrcIPs`: the list is the earlier snapshot's, shared, not
/// a copy (a retag on `large` copied every list holding the node, a fifth of its time). The
/// list that the node enters (`tag:db`) is a new one. Fails if the patch copies an unchanged
/// list again, or shares one that changed.
#[test]
fn a_retag_shares_the_source_lists_it_leaves_alike() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:web": [], "tag:db": []},
            "acls": [
              {"action": "accept", "src": ["autogroup:tagged"], "dst": ["autogroup:member:22"]},
              {"action": "accept", "src": ["tag:db"], "dst": ["autogroup:member:80"]}]}"#,
    )
    .unwrap();
    let nodes = vec![
        tagged(1, "tag:web"),
        tagged(2, "tag:db"),
        owned(3, 1),
        tagged(4, "tag:web"),
    ];
    let mut engine = Engine::new(
        policy,
        TailnetState {
            users: vec![user(1, 0)],
            nodes,
            tailnet: Default::default(),
            services: Vec::new(),
        },
        EngineOptions::default(),
    )
    .unwrap();
    let sources = |engine: &Engine| -> Vec<aclc_compiler::wire::Strings> {
        let snapshot = engine.snapshot();
        let view = snapshot.node(3).unwrap();
        view.packet_filter_rules()
            .iter()
            .map(|r| r.src_ips.clone())
            .collect()
    };
    let before = sources(&engine);
    assert_eq!(before.len(), 2, "{before:?}");
    engine
        .apply(Event::UpsertNode(tagged(1, "tag:db")))
        .unwrap();
    let after = sources(&engine);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(before[0], after[0]);
    assert!(
        Arc::ptr_eq(&before[0], &after[0]),
        "the tagged list was copied"
    );
    assert_ne!(before[1], after[1]);
    assert!(!Arc::ptr_eq(&before[1], &after[1]));
    // The engine agrees with a full compile of the same state.
    assert_eq!(outputs(&engine), outputs(&reference(&engine)));
}

/// A batch that replaces the policy (a group, written after the rules, gains a member; a
/// port changes: every rule keeps its place and its merge slot) and retags a router runs in
/// steps, the policy first. The web servers' filters change through the policy, not through
/// the router: when the marks the steps left are decided as if the router alone had
/// changed, they are taken as they were and the web servers keep the old port. Services
/// changed beside nodes take steps too.
#[test]
fn policy_and_services_step_beside_routers() {
    let text = |eng: &str, port: u16| {
        format!(
            r#"{{"acls": [
                  {{"action": "accept", "src": ["*"], "dst": ["tag:web:{port}"]}},
                  {{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:22", "svc:web:443"]}}],
                "tagOwners": {{"tag:web": [], "tag:router": [], "tag:relay": []}},
                "groups": {{"group:eng": [{eng}]}}}}"#
        )
    };
    let narrow = parse_policy(&text(r#""alice@example.com""#, 80)).unwrap();
    let wide = parse_policy(&text(r#""alice@example.com", "bob@example.com""#, 80)).unwrap();
    let other_port = parse_policy(&text(r#""alice@example.com""#, 81)).unwrap();
    let router = serving(tagged(5, "tag:router"), "10.9.0.0/24");
    let relay = NodeRecord {
        tags: vec!["tag:relay".to_string()],
        ..router.clone()
    };
    let service = |hosts: Vec<u64>, last: u8| Event::UpsertService(approved_service(hosts, last));
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![
            owned(1, 1),
            owned(2, 2),
            tagged(3, "tag:web"),
            tagged(4, "tag:web"),
            router.clone(),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(narrow.clone(), state, EngineOptions::default()).unwrap();
    verify(
        engine,
        [
            vec![
                Event::ReplacePolicy(wide.clone()),
                Event::UpsertNode(relay.clone()),
            ],
            vec![
                Event::ReplacePolicy(narrow.clone()),
                Event::UpsertNode(router.clone()),
                Event::UpsertNode(owned(6, 2)),
            ],
            vec![service(vec![3], 9), Event::UpsertNode(relay.clone())],
            vec![
                service(vec![3, 4], 10),
                Event::ReplacePolicy(wide.clone()),
                Event::RemoveNode(6),
            ],
            vec![
                Event::RemoveService("svc:web".to_string()),
                Event::UpsertNode(router.clone()),
                Event::UpsertNode(owned(6, 1)),
            ],
            vec![
                Event::ReplacePolicy(other_port),
                Event::UpsertNode(relay.clone()),
            ],
            vec![service(vec![1], 11), Event::ReplacePolicy(narrow)],
        ]
        .into_iter(),
    )
    .unwrap();
}

/// An SSH rule added above another: the other's place in the list moves, its pieces do not.
/// The node it reaches keeps its SSH fingerprint (it was hashed by the rule's place: the
/// fingerprint kept for it was no longer what its rules hash to, and debug builds failed on
/// the next event), and a device joining the rule's sources changes it.
#[test]
fn an_ssh_rule_added_above_another() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": [], "tag:x": []},
            "ssh": [
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:srv"], "users": ["root"]}]}"#,
    )
    .unwrap();
    let inserted = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": [], "tag:x": []},
            "ssh": [
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:x"], "users": ["root"]},
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:srv"], "users": ["root"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            tagged(1, "tag:a"),
            tagged(2, "tag:srv"),
            tagged(4, "tag:x"),
            owned(3, 1),
        ],
        [
            Event::ReplacePolicy(inserted),
            Event::UpsertNode(tagged(5, "tag:a")),
        ],
    );
}

/// Two SSH rules that give a server the same pieces from other sources: a device moving from
/// the first's sources to the second's leaves the server's rules as they were, and so does a
/// policy edit that takes the first rule's place with another of the same pieces. The change
/// set named the server as an SSH change in both.
#[test]
fn a_device_moving_between_two_ssh_rules_of_equal_pieces() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": []},
            "ssh": [
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:srv"], "users": ["root"]},
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:srv"], "users": ["root"]}]}"#,
    )
    .unwrap();
    let mut moved = tagged(1, "tag:b");
    moved.name = "node1".to_string();
    verify_on(
        policy.clone(),
        vec![tagged(1, "tag:a"), tagged(2, "tag:srv"), owned(3, 1)],
        [
            Event::UpsertNode(moved),
            Event::UpsertNode(tagged(1, "tag:a")),
        ],
    );
    // The two rules swapped: `tag:b` has no device, so the server still receives one piece.
    let swapped = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:srv": []},
            "ssh": [
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:srv"], "users": ["root"]},
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:srv"], "users": ["root"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![tagged(1, "tag:a"), tagged(2, "tag:srv"), owned(3, 1)],
        [
            Event::ReplacePolicy(swapped),
            Event::UpsertNode(tagged(4, "tag:b")),
        ],
    );
}

/// Two SSH rules that give their destinations the same pieces, to `tag:x` and to `tag:y`.
const TWO_EQUAL_SSH_RULES: &str = r#"{"tagOwners": {"tag:a": [], "tag:x": [], "tag:y": []},
    "acls": [{"action": "accept", "src": ["tag:a"], "dst": ["tag:a:22"]}],
    "ssh": [
      {"action": "accept", "src": ["tag:a"], "dst": ["tag:x"], "users": ["root"]},
      {"action": "accept", "src": ["tag:a"], "dst": ["tag:y"], "users": ["root"]}]}"#;

/// A destination retagged from one rule's destinations to the other's: its SSH rules are the
/// same, so the change set names it for nothing. The node is fingerprinted in full, and was
/// not compared piece by piece (review of stop 58).
#[test]
fn a_destination_retagged_between_ssh_rules_of_equal_pieces() {
    verify_on(
        parse_policy(TWO_EQUAL_SSH_RULES).unwrap(),
        vec![tagged(1, "tag:a"), tagged(2, "tag:x"), owned(3, 1)],
        [
            Event::UpsertNode(tagged(2, "tag:y")),
            Event::UpsertNode(tagged(2, "tag:x")),
        ],
    );
    // The same in a batch beside a policy edit (in steps, compared with the state before).
    let edited = TWO_EQUAL_SSH_RULES.replace(
        r#""users": ["root"]}]}"#,
        r#""users": ["root"]}, {"action": "accept", "src": ["tag:a"], "dst": ["tag:x"], "users": ["ubuntu"]}]}"#,
    );
    let state = TailnetState {
        users: (1..=4).map(|id| user(id, 0)).collect(),
        nodes: vec![tagged(1, "tag:a"), tagged(2, "tag:x"), owned(3, 1)],
        ..TailnetState::default()
    };
    let engine = Engine::new(
        parse_policy(TWO_EQUAL_SSH_RULES).unwrap(),
        state,
        EngineOptions::default(),
    )
    .unwrap();
    let batch = vec![
        Event::ReplacePolicy(parse_policy(&edited).unwrap()),
        Event::UpsertNode(tagged(2, "tag:y")),
    ];
    verify(engine, [batch].into_iter()).unwrap();
}

/// A subnet router over a node's address (fingerprinted in full as that node's server) that
/// receives two SSH rules of equal pieces, and the node moving from one's sources to the
/// other's: the router's SSH rules are the same (review of stop 58).
#[test]
fn a_router_over_a_node_moving_between_ssh_rules_of_equal_pieces() {
    let policy = parse_policy(
        r#"{"tagOwners": {"tag:a": [], "tag:b": [], "tag:x": []},
            "acls": [{"action": "accept", "src": ["tag:x"], "dst": ["tag:x:22"]}],
            "ssh": [
              {"action": "accept", "src": ["tag:a"], "dst": ["tag:x"], "users": ["root"]},
              {"action": "accept", "src": ["tag:b"], "dst": ["tag:x"], "users": ["root"]}]}"#,
    )
    .unwrap();
    verify_on(
        policy,
        vec![
            tagged(1, "tag:a"),
            serving(tagged(2, "tag:x"), "100.64.0.0/26"),
            owned(3, 1),
        ],
        [Event::UpsertNode(tagged(1, "tag:b"))],
    );
}

/// A check rule and an accept rule swapped in the policy: a node receives check rules first,
/// so its SSH rules are the same; comparing them in policy order named it (review of stop 58).
#[test]
fn a_check_and_an_accept_rule_swapped() {
    let text = |swap: bool| {
        let check = r#"{"action": "check", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["root"], "checkPeriod": "1h"}"#;
        let accept =
            r#"{"action": "accept", "src": ["tag:db"], "dst": ["tag:web"], "users": ["root"]}"#;
        let (a, b) = if swap {
            (accept, check)
        } else {
            (check, accept)
        };
        format!(
            r#"{{"tagOwners": {{"tag:web": [], "tag:db": []}},
                "acls": [{{"action": "accept", "src": ["tag:db"], "dst": ["tag:db:22"]}}],
                "ssh": [{a}, {b}]}}"#
        )
    };
    verify_on(
        parse_policy(&text(false)).unwrap(),
        vec![tagged(1, "tag:web"), tagged(2, "tag:db"), owned(3, 1)],
        [Event::ReplacePolicy(parse_policy(&text(true)).unwrap())],
    );
}

/// A starting state with two records under one key (a user's or node's id, a Service's
/// name) is refused, as an inventory with them is: the engine keeps its records by those
/// keys, and the second replaced the first without a word (two users with id 1: the first
/// user's devices became the second's; found by a hostile sweep of the bindings).
#[test]
fn a_starting_state_with_a_key_twice_is_refused() {
    use aclc_compiler::engine::EngineError;
    use aclc_compiler::InventoryErrorKind;
    let policy =
        parse_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#).unwrap();
    let mut other = user(2, 0);
    other.id = 1;
    let svc = approved_service(vec![1], 1);
    let cases = [
        (
            vec![user(1, 0), other],
            vec![owned(1, 1)],
            vec![],
            InventoryErrorKind::DuplicateUser,
            "users[1].id: duplicate user id 1 (also users[0])",
        ),
        (
            vec![user(1, 0)],
            vec![owned(1, 1), owned(2, 1), owned(2, 1)],
            vec![],
            InventoryErrorKind::DuplicateNodeId,
            "nodes[2].id: duplicate node id 2 (also nodes[1])",
        ),
        (
            vec![user(1, 0)],
            vec![owned(1, 1)],
            vec![svc.clone(), svc],
            InventoryErrorKind::InvalidService,
            "services[1].name: duplicate service \"svc:web\" (also services[0])",
        ),
    ];
    for (users, nodes, services, kind, message) in cases {
        let state = TailnetState {
            users,
            nodes,
            tailnet: Default::default(),
            services,
        };
        match Engine::new(policy.clone(), state, EngineOptions::default()) {
            Err(EngineError::Inventory(e)) => {
                assert_eq!((e.kind, e.message.as_str()), (kind, message));
            }
            other => panic!("{message}: {:?}", other.err()),
        }
    }
}
