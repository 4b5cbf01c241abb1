//! Fingerprints after a change to nodes without routes ([`Narrow`]) or to one node's routes
//! ([`RouteNarrow`]): only the changed nodes, their dependents and their peers' entries.

use super::*;
use crate::Text;

/// A change to nodes without routes (the policy unchanged): one node's record, or one
/// user's (its devices' selectors moved).
pub(super) struct Narrow<'a> {
    /// The snapshot before the change.
    pub(super) old: &'a Snapshot,
    /// The changed nodes' ids, each with its name before the change (if it existed).
    pub(super) nodes: Vec<(u64, Option<String>)>,
}

impl Narrow<'_> {
    /// The servers (old id, new id, name) of the subnet routes holding an address of a
    /// changed node (`ends`: each one's ids before and after), the changed nodes left out.
    /// `None` when a server is missing from a compile.
    pub(super) fn servers_over<'c>(
        &self,
        compiled: &'c Compiled,
        ends: &[(u64, Option<NodeId>, Option<NodeId>)],
    ) -> Option<Vec<(NodeId, NodeId, &'c Text)>> {
        let old = &self.old.compiled;
        let before: Vec<NodeId> = ends.iter().filter_map(|e| e.1).collect();
        let after: Vec<NodeId> = ends.iter().filter_map(|e| e.2).collect();
        let held =
            crate::compiled::addresses_of([(old.table(), &before), (compiled.table(), &after)])?;
        let mut names = old.servers_over(&held);
        names.extend(compiled.servers_over(&held));
        names.sort_unstable();
        names.dedup();
        // The changed nodes' names, sorted: each server looked up once (O(servers x log
        // changed), not servers x changed).
        let mut changed: Vec<&str> = before
            .iter()
            .filter_map(|&b| old.name_of(b))
            .chain(after.iter().filter_map(|&a| compiled.name_of(a)))
            .map(|n| &**n)
            .collect();
        changed.sort_unstable();
        names
            .iter()
            .filter(|name| changed.binary_search(&&***name).is_err())
            .map(|name| {
                let sv = compiled.id_of(name)?;
                Some((old.id_of(name)?, sv, compiled.name_of(sv)?))
            })
            .collect()
    }

    /// The new compile's fingerprints: the old ones, with the changed nodes' recomputed; the
    /// SSH part recomputed for the nodes whose SSH rules may name one before or after the
    /// change (the destinations of SSH rules it is a source of); the filter part of the nodes
    /// whose filter may name one ([`Compiled::filter_dependents_at`]) decided from the rule items
    /// ([`crate::lower::SourceMoves`]: unchanged, changed and left uncomputed, or assembled
    /// and hashed where the items cannot tell); and the peers' part of their peers patched: a
    /// peers' fingerprint is a sum over peers, and only the changed nodes' entries changed (no
    /// other node's selectors, routes or attributes did). When the rules merge differently (an
    /// item came or went, or two items' sources became equal or different), the items are
    /// paired through their rules, and the nodes the regrouping reaches
    /// ([`Compiled::regrouped`]) are decided from the items without a partner
    /// ([`crate::lower::Lowered::regrouped_verdict`]) or assembled. `None` when those sets
    /// cannot be bounded, when what `*` means
    /// changed with the merging, or when the policy went from compiling to refused or back
    /// (the work budget counts nodes).
    pub(super) fn fingerprints(
        &self,
        compiled: &Compiled,
        names: &names::NodeNames,
    ) -> Option<Prints> {
        let old = &self.old.compiled;
        if compiled.refusal().is_some() != old.refusal().is_some() {
            return None;
        }
        // Rules that merge otherwise than before (an item came or went, two items' sources
        // became equal or different): the items are paired through their rules, not index
        // for index, and the nodes the regrouping reaches are decided apart.
        let merges = compiled.merges_like(old);
        let (n, words) = (compiled.table().len(), compiled.table().len().div_ceil(64));
        // Each changed node's id before (in the old compile) and after.
        let mut ends: Vec<(u64, Option<NodeId>, Option<NodeId>)> = Vec::new();
        for (node, old_name) in &self.nodes {
            let before = match old_name {
                Some(name) => Some(old.id_of(name)?),
                None => None,
            };
            let after = match names.name(*node) {
                Some(name) => Some(compiled.id_of(name)?),
                None => None,
            };
            ends.push((*node, before, after));
        }
        // A changed node with an address inside a subnet route: a viewer is shown a route
        // its items' addresses reach into, and the node's address entered or left those
        // items, so the route's servers' entries in their peers' parts may change too. Those
        // servers are fingerprinted in full and their entries patched (taken away as they
        // were, added as they are), as for a route event. Each with its old and new id.
        let servers = self.servers_over(compiled, &ends)?;
        // Their dependents before and after, on every core.
        let work: Vec<(bool, NodeId)> = ends
            .iter()
            .flat_map(|&(_, b, a)| {
                let before = b.map(|b| (false, b));
                before.into_iter().chain(a.map(|a| (true, a)))
            })
            .collect();
        // Old node ids translated to new ones by name (an unchanged node keeps its name).
        let to_new = compiled.ids_from(old);
        let translate = |i: NodeId| crate::nodes::translated(&to_new, i);
        // Per node (new ids): the nodes whose SSH rules or filter may name a changed node.
        // Each core marks its share's in bits of its own as it finds them, so one changed
        // node's lists are held at a time (all of them held until the marking were 37 MiB
        // for a batch of 100 joins on `large`).
        let min = crate::par::min_items(crate::par::event_worth_threads(n), 2);
        let parts = crate::par::map_parts(&work, min, |part| {
            let (mut ssh, mut filter) = (vec![0u64; words], vec![0u64; words]);
            let reaches: Vec<Option<Reach>> = part
                .iter()
                .map(|&(after, id)| {
                    let d = Dependents::at(if after { compiled } else { old }, id)?;
                    let to = |v: NodeId| if after { Some(v) } else { translate(v) };
                    for v in d.ssh.iter().copied().filter_map(to) {
                        crate::bits::set_bit(&mut ssh, v);
                    }
                    for v in d.filter.iter().copied().filter_map(to) {
                        crate::bits::set_bit(&mut filter, v);
                    }
                    Some(Reach {
                        peers: d.peers,
                        base: d.base,
                    })
                })
                .collect();
            vec![(reaches, ssh, filter)]
        });
        let (mut ssh_bits, mut filter_bits) = (vec![0u64; words], vec![0u64; words]);
        let mut deps = Vec::with_capacity(work.len());
        for (reaches, ssh, filter) in parts {
            ssh_bits.iter_mut().zip(&ssh).for_each(|(w, s)| *w |= s);
            filter_bits
                .iter_mut()
                .zip(&filter)
                .for_each(|(w, f)| *w |= f);
            deps.extend(reaches);
        }
        let mut deps = deps.into_iter();
        // The nodes fingerprinted in full, by new id: the changed ones and the servers above
        // (none of whose parts is patched or decided apart).
        let mut full_bits = vec![0u64; words];
        for &(_, _, after) in &ends {
            if let Some(a) = after {
                crate::bits::set_bit(&mut full_bits, a);
            }
        }
        for &(_, sv, _) in &servers {
            crate::bits::set_bit(&mut full_bits, sv);
        }
        // Per node (new ids): the sum to add to each peer's peers' part (a changed node's
        // entry subtracted as it was, added as it is).
        let (mut patch, mut patched) = (vec![0u64; n], vec![0u64; words]);
        let column = |v: NodeId| usize::from(compiled.families_missing(v));
        let (mut out, mut stale) = self.old.moved_prints(&to_new, n);
        let mut present: Vec<(NodeId, &Text)> = Vec::new();
        let mut new_bases = Vec::new();
        // Puts a changed node's entry in its peers' sums, in new ids (`to` maps the ids of the
        // compile its peers were found in): taken away as it was (`add` false, the old
        // compile), added as it is.
        let mut mark = |d: &Reach, to: &dyn Fn(NodeId) -> Option<NodeId>, add: bool| {
            for v in crate::bits::iter_bits(&d.peers).filter_map(to) {
                let entry = d.base.get(column(v)).copied().unwrap_or(0);
                if let Some(sum) = patch.get_mut(v.index()) {
                    *sum = match add {
                        true => sum.wrapping_add(entry),
                        false => sum.wrapping_sub(entry),
                    };
                }
                crate::bits::set_bit(&mut patched, v);
            }
        };
        for &(node, before, after) in &ends {
            if before.is_some() {
                mark(&deps.next()??, &translate, false);
            }
            if let Some(a) = after {
                let d = deps.next()??;
                mark(&d, &Some, true);
                new_bases.push((a, d.base));
                crate::bits::clear_bit(&mut stale, a);
                present.push((a, names.name(node)?));
            }
        }
        // Each node's stable id, moved from the old snapshot's by the translation, the
        // changed nodes' put in (a node taking a changed node's old name is changed).
        let mut stable_of = vec![NO_NODE; n];
        for (&j, &id) in to_new.iter().zip(self.old.stable_by_node().iter()) {
            if let Some(slot) = stable_of.get_mut(j as usize) {
                *slot = id;
            }
        }
        for &(node, _, after) in &ends {
            if let Some(slot) = after.and_then(|a| stable_of.get_mut(a.index())) {
                *slot = node;
            }
        }
        debug_assert_eq!(
            stable_of,
            stable_by_node(compiled, names),
            "stable ids moved by the translation"
        );
        // Peers' entries by new node id.
        let by_node = self.old.moved_bases(&to_new, n, new_bases);
        for &(so, sv, _) in &servers {
            crate::bits::clear_bit(&mut stale, sv);
            let old_base = *self.old.node_bases.get(so.index())?;
            for w in crate::bits::iter_bits(&old.peer_bits_at(so)) {
                let Some(v) = translate(w) else { continue };
                let sum = patch.get_mut(v.index())?;
                *sum = sum.wrapping_sub(old.peer_entry_at(w, so, old_base));
                crate::bits::set_bit(&mut patched, v);
            }
            let base = *by_node.get(sv.index())?;
            for v in crate::bits::iter_bits(&compiled.peer_bits_at(sv)) {
                let sum = patch.get_mut(v.index())?;
                *sum = sum.wrapping_add(compiled.peer_entry_at(v, sv, base));
                crate::bits::set_bit(&mut patched, v);
            }
        }
        let old_names: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|(_, n)| n.as_deref())
            .collect();
        let new_names: Vec<&str> = present.iter().map(|(_, n)| &***n).collect();
        // The changed nodes fingerprinted in full on one core (a retagged server's filter,
        // peers and SSH rules: 7 ms on `large`) while the other pairs the two lowerings'
        // items. Filters: decided from the items where they can be; the rest assembled. When
        // the rules merge otherwise, the items are paired through their rules and the nodes
        // the regrouping reaches (`forced`) are decided from the items without a partner.
        let in_full: Vec<(NodeId, &Text)> = present
            .iter()
            .copied()
            .chain(servers.iter().map(|&(_, sv, name)| (sv, name)))
            .collect();
        let (full, paired) = crate::par::join_if(
            crate::par::event_worth_threads(n),
            || fingerprints(compiled, &in_full, &by_node),
            || -> Option<_> {
                let (moves, forced) = match merges {
                    true => (
                        compiled.source_moves(old, (&old_names, &new_names), None),
                        None,
                    ),
                    false => {
                        let (regrouped, pair) = compiled.regrouped(old, &to_new)?;
                        let moves =
                            compiled.source_moves(old, (&old_names, &new_names), Some(&pair));
                        (moves, Some(regrouped))
                    }
                };
                // A list that became (or stopped being) some user's devices moves that
                // user's self rule to another slot, on devices the node's items do not
                // reach.
                let claimants = moves
                    .as_ref()
                    .map(|moves| compiled.self_claimants(moves))
                    .unwrap_or_default();
                Some((moves, forced, claimants))
            },
        );
        for (v, fp) in full {
            *out.get_mut(v.index())? = fp;
        }
        let (moves, forced, claimants) = paired?;
        for (w, r) in filter_bits.iter_mut().zip(forced.iter().flatten()) {
            *w |= r;
        }
        for name in claimants {
            if let Some(v) = compiled.id_of(&name) {
                crate::bits::set_bit(&mut filter_bits, v);
            }
        }
        // The changed nodes were fingerprinted in full.
        let unchanged = |bits: &[u64]| -> Vec<(NodeId, &Text)> {
            crate::bits::iter_bits(bits)
                .filter(|&v| !crate::bits::bit(&full_bits, v))
                .filter_map(|v| Some((v, compiled.name_of(v)?)))
                .collect()
        };
        // Each node's old id, from the translation's inverse (a node not named by the change
        // kept its name; the changed nodes are left out above).
        let to_old = crate::nodes::inverse_ids(&to_new, n);
        let to_decide: Vec<ToDecide<'_>> = crate::bits::iter_bits(&filter_bits)
            .filter(|&v| !crate::bits::bit(&full_bits, v))
            .filter_map(|v| {
                let name = compiled.name_of(v)?;
                Some((v, name, crate::nodes::translated(&to_old, v)))
            })
            .collect();
        let mut changed = vec![0u64; words];
        decide_filters(
            (compiled, old),
            (moves.as_ref(), forced.as_deref()),
            &to_decide,
            (&mut out, &mut stale, &mut changed),
        )?;
        // SSH parts. When the SSH rules were patched, each node a moved rule's piece reaches
        // has its part moved by that piece's change, and only the nodes other moved rules
        // reach are hashed again (a retag's 19,716 SSH dependents on `large` were each
        // hashed again, a fifth of the event). Otherwise every node whose rules may name a
        // changed node is hashed again.
        let mut doubtful: Vec<NodeId> = Vec::new();
        let (ssh_again, ssh_moved) = match compiled.ssh_moves(old) {
            Some(moves) => {
                let mut again_bits = vec![0u64; words];
                moves
                    .again
                    .iter()
                    .for_each(|&v| crate::bits::set_bit(&mut again_bits, v));
                // Each node's sum is in a dense array (a tree of 25,000 sums took 1.5 ms);
                // the nodes hashed again or in full take no sum.
                let moved: Vec<(NodeId, u64)> = crate::bits::iter_bits(&moves.summed)
                    .filter(|&v| {
                        !crate::bits::bit(&again_bits, v) && !crate::bits::bit(&full_bits, v)
                    })
                    .filter_map(|v| Some((v, *moves.sums.get(v.index())?)))
                    .collect();
                doubtful = moves.doubtful;
                (unchanged(&again_bits), moved)
            }
            None => (unchanged(&ssh_bits), Vec::new()),
        };
        // The nodes whose SSH part moved although their rules may be what they were, each
        // with its id before: those hashed again, those a piece reached that took another
        // rule's earlier content, and those fingerprinted in full (the changed ones, each
        // against its own rules before, as the change set pairs them by stable id; the
        // servers over their addresses): a node retagged from one rule's destinations to
        // another's of equal content, or a router that such a move reaches, has the same
        // rules.
        let mut doubts: Vec<(NodeId, NodeId)> = Vec::new();
        let mut doubt = |v: NodeId| {
            if let Some(w) = crate::nodes::translated(&to_old, v) {
                doubts.push((v, w));
            }
        };
        for (v, ssh) in part_fingerprints(&ssh_again, |name| compiled.ssh_fingerprint(name)) {
            let fp = out.get_mut(v.index())?;
            if fp.ssh != ssh {
                doubt(v);
            }
            fp.ssh = ssh;
        }
        for &(v, delta) in &ssh_moved {
            let fp = out.get_mut(v.index())?;
            fp.ssh = fp.ssh.wrapping_add(delta);
            if delta != 0 && doubtful.binary_search(&v).is_ok() {
                doubt(v);
            }
        }
        let in_full = ends
            .iter()
            .filter_map(|&(_, before, after)| Some((after?, before?)))
            .chain(servers.iter().map(|&(was, now, _)| (now, was)));
        for (now, was) in in_full {
            let then = self.old.fingerprints.get(was.index()).map(|f| f.ssh);
            if matches!((then, out.get(now.index())), (Some(a), Some(b)) if a != b.ssh) {
                doubts.push((now, was));
            }
        }
        // Compared piece by piece with their rules before (each list's content hashed once
        // per compile): the same rules are no SSH change, whatever the sum.
        let mut ssh_same = Vec::new();
        for (v, w) in doubts {
            if compiled.ssh_unchanged(v, old, w) {
                ssh_same.resize(words, 0);
                crate::bits::set_bit(&mut ssh_same, v);
            }
        }
        // Debug builds hash every node whose rules may name a changed node, and every node
        // moved, again and compare.
        #[cfg(debug_assertions)]
        for (v, name) in unchanged(&ssh_bits).into_iter().chain(
            ssh_moved
                .iter()
                .filter_map(|&(v, _)| Some((v, compiled.name_of(v)?))),
        ) {
            debug_assert_eq!(
                out.get(v.index()).map(|f| f.ssh),
                compiled.ssh_fingerprint(name),
                "a node's SSH part moved by the changed pieces differs from its hash"
            );
        }
        // What this may have changed: the changed nodes (the removed ones the change set
        // finds), the filters decided, the SSH parts recomputed, the peers' parts patched.
        let mut touched = full_bits.clone();
        for &(v, _, _) in &to_decide {
            crate::bits::set_bit(&mut touched, v);
        }
        for &(v, _) in &ssh_again {
            crate::bits::set_bit(&mut touched, v);
        }
        for &(v, _) in &ssh_moved {
            crate::bits::set_bit(&mut touched, v);
        }
        for v in crate::bits::iter_bits(&patched) {
            if crate::bits::bit(&full_bits, v) {
                continue;
            }
            crate::bits::set_bit(&mut touched, v);
            let fp = out.get_mut(v.index())?;
            fp.peers = fp
                .peers
                .wrapping_add(patch.get(v.index()).copied().unwrap_or(0));
        }
        Some(Prints {
            fingerprints: out,
            node_bases: Arc::new(by_node),
            stale,
            changed,
            touched: Some(touched),
            stable: Some(Arc::new(stable_of)),
            ssh_same: Some(ssh_same),
        })
    }
}

/// What a changed node's map reaches in one compile (that compile's node ids): its peers (one
/// bit per node), the nodes whose SSH rules or packet filter may name it, and its entry in its
/// peers' fingerprints.
pub(super) struct Dependents {
    pub(super) peers: Vec<u64>,
    pub(super) ssh: Vec<NodeId>,
    pub(super) filter: Vec<NodeId>,
    pub(super) base: [u64; 4],
}

/// The part of [`Dependents`] kept until a changed node's entry is put in its peers' sums.
pub(super) struct Reach {
    pub(super) peers: Vec<u64>,
    pub(super) base: [u64; 4],
}

impl Dependents {
    /// Node `id`'s dependents in `compiled`; `None` when they cannot be bounded.
    pub(super) fn at(compiled: &Compiled, id: NodeId) -> Option<Dependents> {
        Some(Dependents {
            peers: compiled.peer_bits_at(id),
            ssh: compiled.ssh_dependents_at(id)?,
            filter: compiled.filter_dependents_at(id)?,
            base: compiled.peer_base_at(id)?,
        })
    }
}

/// A change to some nodes' routes (advertised, approved) or online flags, nothing else of
/// theirs: one node's record, or a Service's hosts (the Service's addresses are their
/// routes).
pub(super) struct RouteNarrow<'a> {
    /// The snapshot before the change.
    pub(super) old: &'a Snapshot,
    /// The nodes' ids (ascending).
    pub(super) nodes: Vec<u64>,
}

/// The most servers a route event patches at their peers ([`RouteNarrow::fingerprints`]):
/// each costs a pass over its peers (about 5-7 ms on `large` for a Service's host that every
/// member reaches), and a Service with 1,000 such hosts took 5.3 s, as long as fingerprinting
/// every node, 3,000 hosts 20-37 s.
const MAX_ROUTE_SERVERS: usize = 256;

impl RouteNarrow<'_> {
    /// The new compile's fingerprints. Only the servers of the routes the nodes serve, before
    /// or after (they among them), can look different as peers: their routes, primaries and
    /// `via` carriers moved; they are fingerprinted in full. Every other node's filter, SSH
    /// rules, cap map and own part are as before (its `DstPorts` come from its own routes,
    /// `SrcIPs` from addresses and policy text, except `*`: see below), so for the
    /// peers of those servers, before or after, only the servers' entries in the peers' part
    /// are patched (subtracted as they were, added as they are). `None` (fingerprint every
    /// node) when the rules merge differently (what `*` means aside), or the policy went
    /// from compiling to refused or back.
    pub(super) fn fingerprints(
        &self,
        compiled: &Compiled,
        names: &names::NodeNames,
    ) -> Option<Prints> {
        let old = &self.old.compiled;
        if compiled.refusal().is_some() != old.refusal().is_some() || !compiled.slots_like(old) {
            return None;
        }
        // The nodes' names (the same before and after: a route event renames no node).
        let route_nodes: Vec<&Text> = self
            .nodes
            .iter()
            .map(|&id| names.name(id))
            .collect::<Option<_>>()?;
        let mut servers = IdSet::default();
        servers.extend(stable_ids(old.route_servers(&route_nodes), &self.old.names));
        servers.extend(stable_ids(compiled.route_servers(&route_nodes), names));
        servers.extend(self.nodes.iter().copied());
        // Each server's entry is patched at each of its peers: beyond this many servers (a
        // Service's hosts), that costs more than fingerprinting every node.
        if servers.len() > MAX_ROUTE_SERVERS {
            return None;
        }
        let n = compiled.table().len();
        let to_new = compiled.ids_from(old);
        let (mut out, mut stale) = self.old.moved_prints(&to_new, n);
        let mut all: Vec<(NodeId, &Text)> = Vec::with_capacity(servers.len());
        let mut server_bases = Vec::with_capacity(servers.len());
        for &s in &servers {
            let s_name = names.name(s)?;
            let v = compiled.id_of(s_name)?;
            server_bases.push((v, compiled.peer_base(s_name)?));
            all.push((v, s_name));
            crate::bits::clear_bit(&mut stale, v);
        }
        let by_node = Arc::new(self.old.moved_bases(&to_new, n, server_bases));
        for (v, fp) in fingerprints(compiled, &all, &by_node) {
            *out.get_mut(v.index())? = fp;
        }
        // Everything below is by node id: the servers' (new ids) as bits, each node's old id
        // from the translation's inverse. What it changes is `touched`, for the change set.
        let words = n.div_ceil(64);
        let mut server_bits = vec![0u64; words];
        for &(v, _) in &all {
            crate::bits::set_bit(&mut server_bits, v);
        }
        let mut touched = server_bits.clone();
        let to_old = crate::nodes::inverse_ids(&to_new, n);
        let translated = crate::nodes::translated;
        // `*` lists every subnet route: a route that appeared or vanished moves the sources
        // of every rule from `*`. Those filters are decided from the items, as for a node
        // event (`SourceMoves`), the rest assembled.
        let mut changed = vec![0u64; words];
        if !compiled.merges_like(old) {
            let named: Vec<&str> = route_nodes.iter().map(|n| &***n).collect();
            let moves = compiled.source_moves(old, (&named, &named), None)?;
            let mut reach = compiled.moved_reach(old, &moves);
            for claimant in compiled.self_claimants(&moves) {
                if let Some(v) = compiled.id_of(&claimant) {
                    crate::bits::set_bit(&mut reach, v);
                }
            }
            let reached: Vec<ToDecide<'_>> = crate::bits::iter_bits(&reach)
                .filter(|&v| !crate::bits::bit(&server_bits, v))
                .filter_map(|v| Some((v, compiled.name_of(v)?, translated(&to_old, v))))
                .collect();
            for &(v, _, _) in &reached {
                crate::bits::set_bit(&mut touched, v);
            }
            decide_filters(
                (compiled, old),
                (Some(&moves), None),
                &reached,
                (&mut out, &mut stale, &mut changed),
            )?;
        }
        // Each server's entry in its peers' parts: taken away as it was (its peers in the old
        // compile, its old entry), added as it is.
        for &(sv, s_name) in &all {
            if let Some(so) = old.id_of(s_name) {
                let base = *self.old.node_bases.get(so.index())?;
                for w in crate::bits::iter_bits(&old.peer_bits_at(so)) {
                    let v = translated(&to_new, w)?;
                    if crate::bits::bit(&server_bits, v) {
                        continue;
                    }
                    crate::bits::set_bit(&mut touched, v);
                    let fp = out.get_mut(v.index())?;
                    fp.peers = fp.peers.wrapping_sub(old.peer_entry_at(w, so, base));
                }
            }
            let base = *by_node.get(sv.index())?;
            for v in crate::bits::iter_bits(&compiled.peer_bits_at(sv)) {
                if crate::bits::bit(&server_bits, v) {
                    continue;
                }
                crate::bits::set_bit(&mut touched, v);
                let fp = out.get_mut(v.index())?;
                fp.peers = fp.peers.wrapping_add(compiled.peer_entry_at(v, sv, base));
            }
        }
        Some(Prints {
            fingerprints: out,
            node_bases: by_node,
            stale,
            changed,
            touched: Some(touched),
            // The same names (a route event renames no node): the same node ids.
            stable: (to_new.len() == n && to_new.iter().enumerate().all(|(i, &j)| j as usize == i))
                .then(|| self.old.stable.get().cloned())
                .flatten(),
            // A route event moves no SSH rule.
            ssh_same: Some(Vec::new()),
        })
    }
}
