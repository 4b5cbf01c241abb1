//! The access diff over the conformance corpus (issue 11): `diff(P, P)` is empty for every
//! policy; for P and P with one rule removed, every gain of `diff(A, B)` is a loss of
//! `diff(B, A)` and the other way round; and the network changes it reports are exactly
//! those a brute-force comparison of every (source node, destination node, TCP port) finds
//! with the node-side matcher.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use std::collections::BTreeSet;

use aclc_compiler::diff::{access_diff, AccessDiff, DiffOptions, Side};
use aclc_compiler::matcher::{Flow, LocalNetworks, Matcher, ParsedRules};
use aclc_compiler::{try_compile, Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_policy::{Limits, Source};
use aclc_testkit::corpus;
use serde_json::Value;

struct Loaded {
    source: Source,
    policy: Policy,
    compiled: Compiled,
}

fn load(text: String, inventory: &Inventory) -> Option<Loaded> {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", text);
    let policy = aclc_policy::parse(&source, &options).ok()?.policy;
    let compiled = try_compile(&policy, inventory).ok()?;
    Some(Loaded {
        source,
        policy,
        compiled,
    })
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn side(l: &Loaded) -> Side<'_> {
    Side {
        policy: &l.policy,
        source: &l.source,
        compiled: &l.compiled,
    }
}

fn everything() -> DiffOptions {
    let mut options = DiffOptions::default();
    options.max_names = usize::MAX;
    options.max_changes = usize::MAX;
    // Several threads even on small tailnets, so the split and merge are exercised.
    options.threads = 3;
    options
}

fn diff(a: &Loaded, b: &Loaded) -> AccessDiff {
    access_diff(side(a), side(b), &everything())
}

/// The policy as plain JSON, and copies with one `acls` / `grants` / `ssh` rule removed.
fn mutations(text: &str) -> Option<(String, Vec<String>)> {
    let source = Source::new("p", text);
    let (Some(doc), _) = aclc_policy::hujson::parse(&source, &Limits::default()) else {
        return None;
    };
    let json = doc.root.to_json();
    let mut out = Vec::new();
    for section in ["acls", "grants", "ssh"] {
        let Some(list) = json.get(section).and_then(Value::as_array) else {
            continue;
        };
        for i in 0..list.len().min(3) {
            let mut copy = json.clone();
            copy[section].as_array_mut().unwrap().remove(i);
            out.push(serde_json::to_string_pretty(&copy).unwrap());
        }
    }
    Some((serde_json::to_string_pretty(&json).unwrap(), out))
}

/// (source, destination, port) gained or lost over TCP on the nodes' own addresses, as the
/// diff reports it, for the sample ports.
fn reported(
    changes: &[aclc_compiler::diff::NetworkChange],
    ports: &[u16],
    nodes: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in changes {
        if !c.proto.split(',').any(|p| p == "tcp") {
            continue;
        }
        let has = |port: u16| {
            c.ports == "*"
                || c.ports.split(',').any(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().unwrap() <= port && port <= b.parse::<u16>().unwrap()
                    }
                    None => r.parse::<u16>().unwrap() == port,
                })
        };
        // Address ranges that hold no node are not the brute force's business.
        for s in c.src.names.iter().filter(|s| nodes.contains(*s)) {
            for d in c.dst.names.iter().filter(|d| !d.contains(" via ")) {
                for &p in ports.iter().filter(|&&p| has(p)) {
                    out.insert(format!("{s} -> {d}:{p}"));
                }
            }
        }
    }
    out
}

/// The same, by asking the node-side matcher of every destination about every source.
/// True when some node's app capability grants (each `CapGrant` with its sources, as a set)
/// differ between the two compiles.
fn apps_differ(a: &Loaded, b: &Loaded) -> bool {
    let grants = |c: &Compiled, node: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for rule in c.filter_rules(node).unwrap() {
            for grant in &rule.cap_grant {
                for (cap, value) in grant.cap_map.iter() {
                    out.insert(format!("{:?} {:?} {cap} {value}", rule.src_ips, grant.dsts));
                }
            }
        }
        out
    };
    b.compiled
        .node_names()
        .any(|n| grants(&a.compiled, n) != grants(&b.compiled, n))
}

fn brute_force(a: &Loaded, b: &Loaded, ports: &[u16]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut gained = BTreeSet::new();
    let mut lost = BTreeSet::new();
    let nodes: Vec<_> = b.compiled.nodes().collect();
    for d in &nodes {
        let matcher = |c: &Compiled| {
            let rules = c.filter_rules(d.name()).unwrap();
            let parsed = ParsedRules::from_json(&serde_json::to_string(&rules).unwrap()).unwrap();
            Matcher::new(&parsed, &LocalNetworks::addresses(d.addresses()))
        };
        let (old, new) = (matcher(&a.compiled), matcher(&b.compiled));
        for s in &nodes {
            for &port in ports {
                let allowed = |m: &Matcher| {
                    let [s4, s6] = s.addresses();
                    let [d4, d6] = d.addresses();
                    m.check(&Flow::tcp(s4, d4, port)).is_allowed()
                        || m.check(&Flow::tcp(s6, d6, port)).is_allowed()
                };
                let (o, n) = (allowed(&old), allowed(&new));
                let key = format!("{} -> {}:{port}", s.name(), d.name());
                if n && !o {
                    gained.insert(key);
                } else if o && !n {
                    lost.insert(key);
                }
            }
        }
    }
    (gained, lost)
}

/// Peers and routes through peers gained and lost, by looking at every node's whole peer list
/// in both compiles: `(viewer, peer, route or "")`.
fn peers_brute_force(a: &Loaded, b: &Loaded) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut sets = [BTreeSet::new(), BTreeSet::new()];
    for name in b.compiled.node_names() {
        let views = [
            a.compiled.node(name).unwrap(),
            b.compiled.node(name).unwrap(),
        ];
        let seen: Vec<BTreeSet<String>> = views
            .iter()
            .map(|v| {
                let mut out = BTreeSet::new();
                for p in v.peers() {
                    out.insert(format!("{name} sees {}", p.name()));
                    let mut routes: Vec<String> =
                        p.primary_routes().iter().map(|r| r.to_string()).collect();
                    if p.is_exit_node() {
                        routes.extend(["0.0.0.0/0".to_string(), "::/0".to_string()]);
                    }
                    for r in routes {
                        out.insert(format!("{name} sees {} via {r}", p.name()));
                    }
                }
                out
            })
            .collect();
        sets[0].extend(seen[1].difference(&seen[0]).cloned());
        sets[1].extend(seen[0].difference(&seen[1]).cloned());
    }
    let [gained, lost] = sets;
    (gained, lost)
}

fn peers_reported(changes: &[aclc_compiler::diff::PeerChange]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in changes {
        for viewer in &c.nodes.names {
            out.insert(match &c.route {
                Some(r) => format!("{viewer} sees {} via {r}", c.peer),
                None => format!("{viewer} sees {}", c.peer),
            });
        }
    }
    out
}

/// Every (case id, policy, variant) pair of the corpus cases with at most `max_nodes` nodes
/// that both compile, the variants from [`mutations`] (and [`more_mutations`] when `more`).
fn for_each_pair(max_nodes: usize, more: bool, mut f: impl FnMut(&str, &Loaded, &Loaded)) {
    for case in corpus::all_cases() {
        let inventory = corpus_cases::inventory(&case);
        if inventory.nodes().len() > max_nodes {
            continue;
        }
        let text = corpus::policy_text(&case);
        let Some((plain, mut variants)) = mutations(text) else {
            continue;
        };
        if more {
            variants.extend(more_mutations(text));
        }
        let Some(a) = load(plain, &inventory) else {
            continue;
        };
        let id = corpus::id(&case);
        for variant in variants {
            if let Some(b) = load(variant, &inventory) {
                f(id, &a, &b);
            }
        }
    }
}

#[test]
fn a_policy_against_itself_changes_nothing() {
    let mut compared = 0;
    for case in corpus::all_cases() {
        let inventory = corpus_cases::inventory(&case);
        let Some(a) = load(corpus::policy_text(&case).to_string(), &inventory) else {
            continue;
        };
        let Some(b) = load(corpus::policy_text(&case).to_string(), &inventory) else {
            continue;
        };
        let d = diff(&a, &b);
        assert!(d.is_empty(), "{}: {d:?}", corpus::id(&case));
        compared += 1;
    }
    assert!(compared > 400, "only {compared} cases compared");
}

#[test]
fn gains_one_way_are_losses_the_other_and_match_brute_force() {
    let ports = [0, 1, 22, 53, 80, 443, 5432, 8080, 65535];
    let (mut pairs, mut changed, mut apps) = (0, 0, 0);
    for_each_pair(40, false, |id, a, b| {
        let (ab, ba) = (diff(a, b), diff(b, a));
        assert_eq!(
            json(&ab.network.gained),
            json(&ba.network.lost),
            "{id}: network"
        );
        assert_eq!(
            json(&ab.network.lost),
            json(&ba.network.gained),
            "{id}: network"
        );
        assert_eq!(json(&ab.ssh.gained), json(&ba.ssh.lost), "{id}: ssh");
        assert_eq!(json(&ab.peers.gained), json(&ba.peers.lost), "{id}: peers");
        assert_eq!(
            json(&ab.capabilities.gained),
            json(&ba.capabilities.lost),
            "{id}: capabilities"
        );
        assert_eq!(json(&ab.apps.gained), json(&ba.apps.lost), "{id}: apps");
        // Application capabilities change exactly when some node's `CapGrant` rules do.
        assert_eq!(
            !ab.apps.is_empty(),
            apps_differ(a, b),
            "{id}: apps {:?}",
            ab.apps
        );
        apps += usize::from(!ab.apps.is_empty());
        let (gained, lost) = brute_force(a, b, &ports);
        let nodes: BTreeSet<String> = b.compiled.node_names().map(str::to_string).collect();
        assert_eq!(
            reported(&ab.network.gained, &ports, &nodes),
            gained,
            "{id}: gained"
        );
        assert_eq!(
            reported(&ab.network.lost, &ports, &nodes),
            lost,
            "{id}: lost"
        );
        let (gained, lost) = peers_brute_force(a, b);
        assert_eq!(
            peers_reported(&ab.peers.gained),
            gained,
            "{id}: peers gained"
        );
        assert_eq!(peers_reported(&ab.peers.lost), lost, "{id}: peers lost");
        pairs += 1;
        if !ab.is_empty() {
            changed += 1;
        }
    });
    assert!(pairs > 200, "only {pairs} pairs compared");
    assert!(changed > 100, "only {changed} pairs changed anything");
    assert!(apps > 0, "no pair changed an app capability");
}

/// More kinds of change than [`mutations`]: a group loses its first member, the first
/// `nodeAttrs` entry and the first `autoApprovers` route go, the first two SSH rules and the
/// first two ACLs swap, the last ACL moves to the top (every later rule's position and merge
/// slot shifts), and a tag owner goes.
fn more_mutations(text: &str) -> Vec<String> {
    let source = Source::new("p", text);
    let (Some(doc), _) = aclc_policy::hujson::parse(&source, &Limits::default()) else {
        return Vec::new();
    };
    let json = doc.root.to_json();
    let mut out = Vec::new();
    let mut edit = |f: &dyn Fn(&mut Value) -> bool| {
        let mut copy = json.clone();
        if f(&mut copy) {
            out.push(serde_json::to_string_pretty(&copy).unwrap());
        }
    };
    let first_member = |section: &'static str| {
        move |p: &mut Value| {
            let Some(map) = p.get_mut(section).and_then(Value::as_object_mut) else {
                return false;
            };
            map.values_mut()
                .find_map(|v| v.as_array_mut().filter(|l| !l.is_empty()))
                .map(|l| l.remove(0))
                .is_some()
        }
    };
    edit(&first_member("groups"));
    edit(&first_member("tagOwners"));
    edit(&|p| {
        p.get_mut("nodeAttrs")
            .and_then(Value::as_array_mut)
            .filter(|l| !l.is_empty())
            .map(|l| l.remove(0))
            .is_some()
    });
    edit(&|p| {
        p.get_mut("autoApprovers")
            .and_then(|a| a.get_mut("routes"))
            .and_then(Value::as_object_mut)
            .and_then(|m| {
                let key = m.keys().next()?.clone();
                m.remove(&key)
            })
            .is_some()
    });
    for section in ["ssh", "acls", "grants"] {
        edit(&|p| {
            p.get_mut(section)
                .and_then(Value::as_array_mut)
                .filter(|l| l.len() >= 2)
                .map(|l| l.swap(0, 1))
                .is_some()
        });
    }
    edit(&|p| {
        p.get_mut("acls")
            .and_then(Value::as_array_mut)
            .filter(|l| l.len() >= 2)
            .map(|l| {
                let last = l.pop().unwrap();
                l.insert(0, last);
            })
            .is_some()
    });
    out
}

/// The fast path (only nodes a changed item, rule, route or attribute reaches) reports
/// exactly what comparing every node in full reports, for every kind of change above and
/// the rule removals.
#[test]
fn skipping_untouched_nodes_changes_nothing() {
    let (mut pairs, mut changed) = (0, 0);
    let mut full = everything();
    full.exhaustive = true;
    for_each_pair(200, true, |id, a, b| {
        for (x, y) in [(a, b), (b, a)] {
            let fast = diff(x, y);
            let slow = access_diff(side(x), side(y), &full);
            assert_eq!(json(&fast), json(&slow), "{id}");
            changed += usize::from(!fast.is_empty());
        }
        pairs += 1;
    });
    assert!(pairs > 400, "only {pairs} pairs compared");
    assert!(changed > 300, "only {changed} diffs changed anything");
}

/// Keying a router's routes whole (past the piece budget, here 0) never misses a change the
/// pieces find: every pair whose network access changed by the pieces changed whole, and
/// everything else is the same.
#[test]
fn routes_keyed_whole_miss_no_change() {
    let (mut pairs, mut changed) = (0, 0);
    let mut whole = everything();
    whole.route_piece_budget = 0;
    for_each_pair(200, true, |id, a, b| {
        for (x, y) in [(a, b), (b, a)] {
            let pieces = diff(x, y);
            let coarse = access_diff(side(x), side(y), &whole);
            assert!(
                pieces.network.is_empty() || !coarse.network.is_empty(),
                "{id}: {:?}",
                pieces.network
            );
            assert_eq!(json(&pieces.ssh), json(&coarse.ssh), "{id}");
            assert_eq!(json(&pieces.peers), json(&coarse.peers), "{id}");
            assert_eq!(json(&pieces.apps), json(&coarse.apps), "{id}");
            changed += usize::from(!pieces.network.is_empty());
        }
        pairs += 1;
    });
    assert!(pairs > 400, "only {pairs} pairs compared");
    assert!(changed > 200, "only {changed} diffs changed network access");
}
