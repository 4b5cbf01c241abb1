//! How far an event's change can reach ([`Scope`]): from the undo log, which nodes' outputs
//! may differ, so only those are fingerprinted again.

use super::*;

/// Changed nodes the node path always takes: past this many, and past an eighth of the
/// nodes, an event fingerprints every node (on `large`, 5,000 joins in one batch took 3.5 s
/// on the node path, 9,000 5.8 s and 20,000 13 s, where the every-node path took 5.5-8.2 s
/// for 7,000 to 20,000; on `medium`, 1,000 joins take 43 ms, the every-node path about 80).
const MOST_CHANGED: usize = 64;

/// How far the changes `undo` records can reach. Nodes that serve no route (before and
/// after), users whose devices serve none: only those nodes and the nodes naming them
/// need new fingerprints (a user's login, roles or synced groups move its devices'
/// selectors, as if each device changed; a new user has no device yet). One node's routes
/// or online flag: the servers of its routes. A Service's host serves its addresses as
/// routes, so a Service upserted or removed is a change to its hosts' routes (before and
/// after): the servers of those, and the exit nodes (a rule to the Service puts its addresses
/// in their filters). The policy alone: the nodes a changed rule reaches.
pub(super) fn scope<'a>(inputs: &Inputs, current: &'a Snapshot, undo: &[Undo]) -> Scope<'a> {
    // Only a node's routes (advertised, approved) or online flag changed.
    let only_routes = |before: &NodeRecord, after: &NodeRecord| {
        NodeRecord {
            advertised_routes: after.advertised_routes.clone(),
            approved_routes: after.approved_routes.clone(),
            online: after.online,
            ..before.clone()
        } == *after
    };
    if let Some(nodes) = routeless_nodes(inputs, current, undo) {
        // Each changed node costs about 0.6 ms on `large` (its lists patched, its dependents
        // decided): past an eighth of the nodes, fingerprinting every node costs less.
        if nodes.len() > MOST_CHANGED.max(current.compiled.table().len() / 8) {
            return Scope::Everything;
        }
        return Scope::Node(Narrow {
            old: current,
            nodes,
        });
    }
    match undo {
        [Undo::Node(id, Some(before))]
            if inputs
                .nodes
                .get(id)
                .is_some_and(|after| only_routes(before, after)) =>
        {
            Scope::Routes(RouteNarrow {
                old: current,
                nodes: vec![*id],
            })
        }
        [Undo::Service(name, before)] => {
            let both = || before.iter().chain(inputs.services.get(name));
            // Its hosts before and after that are nodes (a host id naming no node is left
            // out of the Service).
            let mut nodes: Vec<u64> = both()
                .flat_map(|s| s.hosts.iter().chain(&s.approved_hosts).copied())
                .filter(|id| inputs.nodes.get(id).is_some())
                .collect();
            // The routers of subnet routes holding one of its addresses, before or after: a
            // rule to the Service reaches them as well (their routes are not the Service's,
            // so they are the same in both compiles).
            let vips: Vec<crate::addrset::AddrSet> = both()
                .flat_map(|s| crate::inventory::vips(s.ipv4, s.ipv6))
                .map(crate::addrset::AddrSet::from_net)
                .collect();
            let table = current.compiled.table();
            nodes.extend(
                table
                    .routers_over(&crate::addrset::AddrSet::union_of(&vips))
                    .into_iter()
                    .filter_map(|v| current.names.id(&table.get(v)?.name)),
            );
            // And the exit nodes: a rule to the Service puts its addresses of their
            // families in their filters (`Lowered::dst_ips`).
            if current.compiled.spreads_exits() {
                nodes.extend(
                    table
                        .exits
                        .iter()
                        .filter_map(|&v| current.names.id(&table.get(v)?.name)),
                );
            }
            nodes.sort_unstable();
            nodes.dedup();
            Scope::Routes(RouteNarrow {
                old: current,
                nodes,
            })
        }
        [Undo::Policy(_)] => Scope::Policy(current),
        _ => Scope::Everything,
    }
}

/// The nodes `undo`'s changes moved, each with its name before them, when every change is
/// to a node or a user and none of those nodes serves a route before or after; `None`
/// otherwise.
pub(super) fn routeless_nodes(
    inputs: &Inputs,
    current: &Snapshot,
    undo: &[Undo],
) -> Option<Vec<(u64, Option<String>)>> {
    if undo
        .iter()
        .any(|u| !matches!(u, Undo::Node(..) | Undo::User(..)))
    {
        return None;
    }
    let hosts: HashSet<u64> = inputs
        .services
        .values()
        .flat_map(|s| s.hosts.iter().copied())
        .collect();
    let serves_nothing = |n: &NodeRecord| n.advertised_routes.is_empty() && !hosts.contains(&n.id);
    let users: HashSet<u64> = undo
        .iter()
        .filter_map(|u| match u {
            Undo::User(id, _) => Some(*id),
            _ => None,
        })
        .collect();
    // A node carrying a tag the policy's Kubernetes grants name as a session recorder
    // (before or after) moves those grants' capability values on every node they reach
    // ([`crate::kube`]): not narrowed.
    // The policy is read only for a changed node that carries a tag (not on a member's
    // join), once.
    let recorder_tags = std::cell::OnceCell::new();
    let records = |n: &NodeRecord| {
        n.tags.iter().any(|t| {
            recorder_tags
                .get_or_init(|| crate::kube::policy_recorder_tags(&inputs.policy))
                .binary_search_by(|r| r.as_str().cmp(&aclc_policy::model::canonical_tag(t)))
                .is_ok()
        })
    };
    let mut ids: Vec<u64> = Vec::new();
    for u in undo {
        if let Undo::Node(id, before) = u {
            if !before.as_ref().is_none_or(serves_nothing) || before.as_ref().is_some_and(records) {
                return None;
            }
            ids.push(*id);
        }
    }
    // A changed user's devices (a removed user's left with it: their records are in
    // `undo`).
    if !users.is_empty() {
        ids.extend(
            inputs
                .nodes
                .values()
                .filter(|n| n.user.is_some_and(|u| users.contains(&u)))
                .map(|n| n.id),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    let mut nodes = Vec::with_capacity(ids.len());
    for id in ids {
        let after = inputs.nodes.get(&id);
        if !after.is_none_or(serves_nothing) || after.is_some_and(records) {
            return None;
        }
        let before = current.names.name(id).map(|n| n.to_string());
        nodes.push((id, before));
    }
    Some(nodes)
}

impl Scope<'_> {
    /// The path the event takes, as its span names it ([`crate::phases`]).
    pub(super) fn path(&self) -> &'static str {
        match self {
            Scope::Everything => "everything",
            Scope::Node(_) => "node",
            Scope::Routes(_) => "routes",
            Scope::Policy(_) => "policy",
        }
    }
}

/// How far an event's change can reach.
pub(super) enum Scope<'a> {
    /// Anywhere: fingerprint every node.
    Everything,
    /// One node without routes (see [`Narrow`]).
    Node(Narrow<'a>),
    /// Some nodes' routes or online flags (see [`RouteNarrow`]).
    Routes(RouteNarrow<'a>),
    /// The policy, records unchanged: the snapshot before.
    Policy(&'a Snapshot),
}
