//! The change set's fingerprints: per node, hashes of each part of its map, computed in full,
//! patched from the previous snapshot's or decided from the changed rule items.

use super::*;
use crate::Text;

/// A set of stable node ids.
pub(super) type IdSet = crate::hash::Set<u64>;

/// A new snapshot, the nodes (one bit each, by its node ids) whose filter the change is
/// known to have changed while their filter part was left uncomputed, and
/// [`Prints::touched`].
pub(super) type Built = (Snapshot, Vec<u64>, Option<Vec<u64>>);

/// A snapshot's fingerprints, as an event leaves them (by node id of its compile).
pub(super) struct Prints {
    pub(super) fingerprints: Vec<Fingerprint>,
    /// [`Snapshot::node_bases`].
    pub(super) node_bases: Arc<Vec<[u64; 4]>>,
    /// [`Snapshot::stale`].
    pub(super) stale: Vec<u64>,
    /// The nodes this event left stale (one bit each): their filter changed.
    pub(super) changed: Vec<u64>,
    /// The nodes (one bit each) whose fingerprints (or stale flags) may differ from the
    /// previous snapshot's; `None`: any node's may. Removed nodes are found by the change
    /// set.
    pub(super) touched: Option<Vec<u64>>,
    /// [`Snapshot::stable`], when the event moved it.
    pub(super) stable: Option<Arc<Vec<u64>>>,
    /// [`Snapshot::ssh_same`].
    pub(super) ssh_same: Option<Vec<u64>>,
}

impl Snapshot {
    /// The filter parts of the fingerprints of the nodes `nodes` (node ids of this snapshot)
    /// this snapshot left uncomputed, computed from its compile (on every core).
    pub(super) fn stale_filters(&self, nodes: &[NodeId]) -> Vec<(NodeId, u64)> {
        let work: Vec<(NodeId, &Text)> = nodes
            .iter()
            .filter(|&&v| crate::bits::bit(&self.stale, v))
            .filter_map(|&v| Some((v, self.compiled.name_of(v)?)))
            .collect();
        parallel(&work, |part| {
            let mut cache = HashCache::default();
            part.iter()
                .filter_map(|&(v, name)| {
                    Some((v, self.compiled.filter_fingerprint(name, &mut cache)?))
                })
                .collect()
        })
    }

    /// Whether any node's filter part was left uncomputed.
    pub(super) fn has_stale(&self) -> bool {
        self.stale.iter().any(|&w| w != 0)
    }

    /// [`Snapshot::stable`], found by name if no event moved it here.
    pub(super) fn stable_by_node(&self) -> &Arc<Vec<u64>> {
        self.stable
            .get_or_init(|| Arc::new(stable_by_node(&self.compiled, &self.names)))
    }

    /// Its fingerprints and stale flags moved to the node ids of a later compile (`to_new`:
    /// [`Compiled::ids_from`], `len` nodes), in one pass in id order; a node new there
    /// gets a zero fingerprint (the caller computes it).
    pub(super) fn moved_prints(&self, to_new: &[u32], len: usize) -> (Vec<Fingerprint>, Vec<u64>) {
        let mut out = vec![Fingerprint::default(); len];
        let mut stale = vec![0u64; len.div_ceil(64)];
        for (i, (&j, fp)) in to_new.iter().zip(self.fingerprints.iter()).enumerate() {
            if let Some(slot) = out.get_mut(j as usize) {
                *slot = *fp;
                if crate::bits::bit(&self.stale, NodeId::new(i)) {
                    crate::bits::set_bit(&mut stale, NodeId::new(j as usize));
                }
            }
        }
        (out, stale)
    }

    /// Its peers' entries moved to the node ids of a later compile (`to_new`:
    /// [`Compiled::ids_from`], `len` nodes), then the entries of `changed` (new ids) put in: a
    /// node taking a changed node's old name is itself changed.
    pub(super) fn moved_bases(
        &self,
        to_new: &[u32],
        len: usize,
        changed: impl IntoIterator<Item = (NodeId, [u64; 4])>,
    ) -> Vec<[u64; 4]> {
        let mut by_node = vec![[0u64; 4]; len];
        for (&j, base) in to_new.iter().zip(self.node_bases.iter()) {
            if let Some(slot) = by_node.get_mut(j as usize) {
                *slot = *base;
            }
        }
        for (id, base) in changed {
            if let Some(slot) = by_node.get_mut(id.index()) {
                *slot = base;
            }
        }
        by_node
    }
}

/// What a policy event did to a node's filter part.
#[derive(Clone, Copy)]
pub(super) enum Filter {
    /// Recomputed.
    Computed,
    /// Proven changed (only entries added, or only removed): left uncomputed.
    Grew,
    /// The node's rules are unchanged: the part (computed or not) is the old one.
    Inherited,
}

/// The fingerprints after a policy change that left the records (so the node table, ids and
/// peers' entries) as they were: the old ones, recomputed for the nodes whose map may differ
/// ([`crate::diff::map_touched`]: those a changed rule item or SSH rule reaches, the nodes
/// whose rules merge differently, the two sides of a changed item). A node only on a side of
/// a changed item keeps its fingerprint when its peer set is the same bit for bit and every
/// route is shown as before (then so is every peer's entry and its routes). `None` when the
/// change may reach every node, or the policy went from compiling to refused or back.
pub(super) fn policy_fingerprints(
    old: &Snapshot,
    compiled: &Compiled,
    names: &names::NodeNames,
) -> Option<Prints> {
    if compiled.refusal().is_some() != old.compiled.refusal().is_some() {
        return None;
    }
    // Every node's peer sets are listed on the second core while the first compares the
    // two lowerings (it sat idle: `PeerIndex::flips` and the nodes' peers read them next).
    let ((touched, routes_alike), ()) = crate::par::join_if(
        crate::par::event_worth_threads(compiled.table().len()),
        || {
            (
                crate::diff::map_touched(&old.compiled, compiled),
                compiled.routes_shown_alike(&old.compiled),
            )
        },
        || compiled.prepare_peer_sets(),
    );
    let (touched, items) = touched?;
    // In node id order (the same table: the fingerprints' order).
    let work: Vec<(&Text, NodeId, u8)> = (0..compiled.table().len())
        .map(NodeId::new)
        .filter_map(|node| {
            let flags = touched.get(node.index()).copied().unwrap_or(u8::MAX);
            (flags != 0).then_some((compiled.name_of(node)?, node, flags))
        })
        .collect();
    // The same node table: the same entries under the same ids.
    let by_node = &old.node_bases;
    // A node keeps the peers' part of its fingerprint when every route is shown as before and
    // it is on no side of a changed item, or its peers are the same bit for bit (compared
    // on the smaller side of each changed item: `Compiled::peers_flips`).
    let mut peers_kept = vec![routes_alike; names.len()];
    let mut flips = None;
    if routes_alike {
        let (flipped, found) = compiled.peers_flips(&old.compiled, &items.changed);
        flips = found;
        for &(_, node, flags) in &work {
            if flags & crate::diff::MAP_PEERS == 0 {
                continue;
            }
            if let Some(kept) = peers_kept.get_mut(node.index()) {
                *kept =
                    !crate::bits::bit(&flipped, node) && compiled.self_alike(&old.compiled, node);
            }
        }
    }
    // Rules unchanged and peers kept: nothing to do. Rules changed, peers kept: only the
    // filter and SSH parts. Otherwise the whole fingerprint. A filter that only gained
    // entries (`entry_count_verdict`) is known to have changed: its part is left uncomputed.
    let unpaired = items.unpaired;
    // A node whose SSH part changed may have the same rules all the same (a piece taken by
    // another rule of equal content, or a rule's label changed): compared piece by piece.
    let ssh_same = |node: NodeId, was: u64, now: u64| {
        was != now && compiled.ssh_unchanged(node, &old.compiled, node)
    };
    type Again = (NodeId, (Fingerprint, Filter, bool));
    let again = |part: &[(&Text, NodeId, u8)]| -> Vec<Again> {
        let mut cache = HashCache::default();
        // Grouped by their peer sets here and before, when the peers' parts are patched: a
        // group's reaches are found once (`Compiled::patched_peers_grouped`).
        let mut part = std::borrow::Cow::Borrowed(part);
        if routes_alike && flips.is_none() {
            part.to_mut().sort_by_cached_key(|&(_, node, _)| {
                (
                    compiled.peer_sets_of(node).into_owned(),
                    old.compiled.peer_sets_of(node).into_owned(),
                )
            });
        }
        let mut group = None;
        part.iter()
            .filter_map(|&(name, node, flags)| {
                let kept = peers_kept.get(node.index()).copied().unwrap_or(false);
                let rules = flags & crate::diff::MAP_RULES != 0;
                let ssh = flags & crate::diff::MAP_SSH != 0;
                let grew = rules
                    && compiled.entry_count_verdict(node, &old.compiled, &unpaired)
                        == crate::lower::Verdict::Changed;
                if !rules && !ssh && kept {
                    return None;
                }
                let was = old.fingerprints.get(node.index()).map(|f| f.ssh);
                if !routes_alike {
                    let fp = compiled.fingerprint_parts(name, by_node, &mut cache, !grew)?;
                    let filter = if grew { Filter::Grew } else { Filter::Computed };
                    let same = ssh && was.is_some_and(|was| ssh_same(node, was, fp.ssh));
                    return Some((node, (fp, filter, same)));
                }
                // Every route shown alike: capabilities and own part are as before (same
                // node table and `nodeAttrs`), every peer's entry too; the peers' part is
                // patched by the peers gained and lost, the rules' parts recomputed.
                let mut fp = old.fingerprints.get(node.index()).copied()?;
                if !kept {
                    let grouped = |group: &mut Option<_>| {
                        compiled.patched_peers_grouped(
                            &old.compiled,
                            node,
                            by_node,
                            fp.peers,
                            group,
                        )
                    };
                    fp.peers = match &flips {
                        Some(flips) => {
                            let patched = compiled
                                .patched_peers_flipped(
                                    &old.compiled,
                                    node,
                                    by_node,
                                    fp.peers,
                                    flips,
                                )
                                .or_else(|| grouped(&mut group));
                            // The fallback past `MAX_FLIP_GROUPS` (which small tailnets never
                            // reach) checked on every node here, against the flips.
                            debug_assert_eq!(patched, grouped(&mut group));
                            patched
                        }
                        None => grouped(&mut group),
                    }?;
                }
                let mut same = false;
                if ssh {
                    let now = compiled.ssh_fingerprint(name)?;
                    same = ssh_same(node, fp.ssh, now);
                    fp.ssh = now;
                }
                let filter = match (rules, grew) {
                    (false, _) => Filter::Inherited,
                    (true, true) => Filter::Grew,
                    (true, false) => {
                        fp.filter = compiled.filter_fingerprint(name, &mut cache)?;
                        Filter::Computed
                    }
                };
                Some((node, (fp, filter, same)))
            })
            .collect()
    };
    let fresh = parallel(&work, again);
    // Only the nodes of `work` can have another fingerprint or stale flag: every other node's
    // are the old ones, copied (the change set compared all 100,000 nodes of `large`). The
    // same node table: the same node ids.
    let words = compiled.table().len().div_ceil(64);
    let mut touched = vec![0u64; words];
    for &(_, node, _) in &work {
        crate::bits::set_bit(&mut touched, node);
    }
    let mut stale = old.stale.clone();
    let mut changed = vec![0u64; words];
    let mut out = old.fingerprints.clone();
    if out.len() != compiled.table().len() || stale.len() != words {
        return None;
    }
    let mut ssh_same = Vec::new();
    for (node, (fp, filter, same)) in fresh {
        if same {
            ssh_same.resize(words, 0);
            crate::bits::set_bit(&mut ssh_same, node);
        }
        match filter {
            Filter::Computed => crate::bits::clear_bit(&mut stale, node),
            Filter::Grew => {
                crate::bits::set_bit(&mut stale, node);
                crate::bits::set_bit(&mut changed, node);
            }
            Filter::Inherited => {}
        }
        *out.get_mut(node.index())? = fp;
    }
    Some(Prints {
        fingerprints: out,
        node_bases: old.node_bases.clone(),
        stale,
        changed,
        touched: Some(touched),
        // The same node table.
        stable: old.stable.get().cloned(),
        ssh_same: Some(ssh_same),
    })
}

/// Each node's stable id by node id of `compiled` ([`NO_NODE`] for none), found by name.
pub(super) fn stable_by_node(compiled: &Compiled, names: &names::NodeNames) -> Vec<u64> {
    (0..compiled.table().len())
        .map(|v| {
            compiled
                .name_of(NodeId::new(v))
                .and_then(|name| names.id(name))
                .unwrap_or(NO_NODE)
        })
        .collect()
}

/// The ids of the nodes named in `list` (stable ids through `map`).
pub(super) fn stable_ids(list: Vec<Text>, names: &names::NodeNames) -> IdSet {
    list.iter().filter_map(|n| names.id(n)).collect()
}

/// A node whose filter part an event decides: its id in the new compile, its name, and its id
/// in the old one, when known.
pub(super) type ToDecide<'a> = (NodeId, &'a Text, Option<NodeId>);

/// The filter parts of `nodes` after an event, on every core: each node's verdict from the
/// rule items (`moves`; without them every node is assembled), the nodes in `forced` (one bit
/// each: the regrouping reaches them) from the items without a partner alone
/// ([`crate::lower::Lowered::regrouped_verdict`]). `Same` keeps the part,
/// `Changed` leaves it uncomputed (stale, and in `changed`), `Assemble` hashes the new
/// filter. `None` when a node has no fingerprint to update. A node comes with its ids in
/// the two compiles when the caller has them (else they are looked up by name).
pub(super) fn decide_filters(
    (compiled, old): (&Compiled, &Compiled),
    (moves, forced): (Option<&crate::lower::SourceMoves>, Option<&[u64]>),
    nodes: &[ToDecide<'_>],
    (out, stale, changed): (&mut [Fingerprint], &mut [u64], &mut [u64]),
) -> Option<()> {
    let decided = parallel(nodes, |part| {
        let mut cache = HashCache::default();
        part.iter()
            .filter_map(|&(v, name, was)| {
                debug_assert!(
                    compiled.id_of(name) == Some(v)
                        && was.is_none_or(|w| old.id_of(name) == Some(w))
                );
                let regrouped = forced.is_some_and(|f| crate::bits::bit(f, v));
                let verdict = match (moves, was) {
                    (Some(moves), Some(w)) => {
                        compiled.filter_verdict_at((v, w), old, moves, regrouped)
                    }
                    (Some(moves), None) if !regrouped => compiled.filter_verdict(name, old, moves),
                    _ => crate::lower::Verdict::Assemble,
                };
                let filter = match verdict {
                    crate::lower::Verdict::Same => return None,
                    crate::lower::Verdict::Changed => None,
                    crate::lower::Verdict::Assemble => {
                        Some(compiled.filter_fingerprint(name, &mut cache)?)
                    }
                };
                Some((v, filter))
            })
            .collect()
    });
    for (v, filter) in decided {
        match filter {
            Some(hash) => {
                out.get_mut(v.index())?.filter = hash;
                crate::bits::clear_bit(stale, v);
            }
            None => {
                crate::bits::set_bit(changed, v);
                crate::bits::set_bit(stale, v);
            }
        }
    }
    Some(())
}

/// One part of the fingerprints of nodes `nodes` (`part` of a node's name), on every core.
pub(super) fn part_fingerprints(
    nodes: &[(NodeId, &Text)],
    part: impl Fn(&str) -> Option<u64> + Sync,
) -> Vec<(NodeId, u64)> {
    let work = |chunk: &[(NodeId, &Text)]| -> Vec<(NodeId, u64)> {
        chunk
            .iter()
            .filter_map(|&(v, name)| Some((v, part(name)?)))
            .collect()
    };
    parallel(nodes, work)
}

/// `work` over `items` (nodes to fingerprint or decide) split across the machine's cores (at
/// most 8), results in order, when they are [`SPREAD_FROM`] or more (fewer take about a
/// millisecond: less than a thread may wait for a core on a busy host). The items go in
/// pieces of [`PIECE`], each core taking the next piece: a node's cost varies a hundredfold
/// (its filter), and with halves fixed in advance one core did up to seven eighths of it.
pub(super) fn parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    if items.len() < SPREAD_FROM {
        return work(items);
    }
    let pieces: Vec<(usize, &[T])> = items.chunks(PIECE).enumerate().collect();
    let piece = |_: &mut (), &(i, piece): &(usize, &[T])| vec![(i, work(piece))];
    let mut done = crate::par::map_taken(&pieces, true, || (), piece);
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, out)| out).collect()
}

/// How many items [`parallel`] hands a core at a time.
const PIECE: usize = 128;

/// Nodes from which the engine's per-node work spreads over the cores.
const SPREAD_FROM: usize = 1024;

/// Every node's fingerprint (by node id; a node without a name keeps the default) and
/// every node's peers' entries, computed in full from `compiled`.
pub(super) fn every_fingerprint(compiled: &Compiled) -> (Vec<Fingerprint>, Vec<[u64; 4]>) {
    let all = compiled.peer_bases();
    let n = compiled.table().len();
    let nodes: Vec<(NodeId, &Text)> = (0..n)
        .map(NodeId::new)
        .filter_map(|v| Some((v, compiled.name_of(v)?)))
        .collect();
    let mut out = vec![Fingerprint::default(); n];
    for (v, fp) in grouped_fingerprints(compiled, &nodes, &all) {
        if let Some(slot) = out.get_mut(v.index()) {
            *slot = fp;
        }
    }
    (out, all)
}

/// A node id with its name.
type Named<'a> = (NodeId, &'a Text);

/// [`fingerprints`] of many nodes, those holding the same peer sets in one group whose
/// shared peers are found and summed once ([`Compiled::fingerprints_sharing`]); the groups
/// on every core. Grouping sorts the nodes by their lists of sets, O(n log n) comparisons.
fn grouped_fingerprints(
    compiled: &Compiled,
    nodes: &[Named<'_>],
    bases: &[[u64; 4]],
) -> Vec<(NodeId, Fingerprint)> {
    let mut keyed: Vec<(std::borrow::Cow<'_, [u32]>, Named<'_>)> = nodes
        .iter()
        .map(|&(v, name)| (compiled.peer_sets_of(v), (v, name)))
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1 .0.cmp(&b.1 .0)));
    let mut groups: Vec<(&[u32], Vec<Named<'_>>)> = Vec::new();
    for (sets, named) in &keyed {
        match groups.last_mut() {
            Some((last, members)) if *last == &**sets => members.push(*named),
            _ => groups.push((sets, vec![*named])),
        }
    }
    // Units of at most `UNIT` nodes of one group (a group of thousands is cut; each piece
    // finds its shared peers again), taken by the cores one by one: a node's cost varies
    // a hundredfold (its filter): halves of equal size left one core most of the work.
    const UNIT: usize = 64;
    let units: Vec<(&[u32], &[Named<'_>])> = groups
        .iter()
        .flat_map(|(sets, members)| members.chunks(UNIT).map(move |unit| (*sets, unit)))
        .collect();
    let routers = compiled.router_routes();
    let work = |cache: &mut HashCache, &(sets, members): &(&[u32], &[Named<'_>])| {
        compiled.fingerprints_sharing(sets, members, bases, &routers, cache)
    };
    crate::par::map_taken(&units, nodes.len() >= SPREAD_FROM, HashCache::default, work)
}

/// The fingerprints of the nodes `nodes` (node ids of `compiled`, with their names), on
/// every core.
pub(super) fn fingerprints(
    compiled: &Compiled,
    nodes: &[(NodeId, &Text)],
    bases: &[[u64; 4]],
) -> Vec<(NodeId, Fingerprint)> {
    let work = |part: &[(NodeId, &Text)]| -> Vec<(NodeId, Fingerprint)> {
        let mut cache = HashCache::default();
        part.iter()
            .filter_map(|&(v, name)| Some((v, compiled.fingerprint(name, bases, &mut cache)?)))
            .collect()
    };
    parallel(nodes, work)
}
