//! Change sets: which nodes' maps an event changed, and which parts of each, found by
//! comparing per-node fingerprints of two snapshots by stable node id (and, for filters an
//! event decided from the rule items, from that decision).

use std::collections::{BTreeMap, BTreeSet};

use super::{IdMap, IdSet, Snapshot};

/// What changed in one node's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeChange {
    /// The node is new (every part counts as changed).
    pub added: bool,
    /// Its packet filter.
    pub packet_filter: bool,
    /// Its SSH rules.
    pub ssh_rules: bool,
    /// Its peers: one joined, left, was renamed, or changed AllowedIPs, routes or caps.
    pub peers: bool,
    /// Its capability map.
    pub cap_map: bool,
    /// Its own addresses, AllowedIPs or primary routes.
    pub own: bool,
}

impl NodeChange {
    fn all() -> NodeChange {
        NodeChange {
            added: true,
            packet_filter: true,
            ssh_rules: true,
            peers: true,
            cap_map: true,
            own: true,
        }
    }
}

/// The nodes an event changed: push a new map to each of `changed`, drop `removed`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Nodes whose map changed (new nodes included), by id, with what changed.
    pub changed: BTreeMap<u64, NodeChange>,
    /// Nodes that left.
    pub removed: BTreeSet<u64>,
}

impl ChangeSet {
    /// True when no node needs a new map.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }

    /// The ids of the nodes to push a new map to.
    pub fn changed_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.changed.keys().copied()
    }
}

/// The change from `old` to `new`, where `filters_changed` are the nodes whose filter the
/// event changed while leaving its fingerprint uncomputed. A filter part left uncomputed in
/// `new` by an earlier event is the same as in `old`; one left uncomputed in `old` only is
/// computed from `old`'s compile. With `touched`, only those nodes are compared: every other
/// node's fingerprint and stale flag are `old`'s (the event copied them), so it did not
/// change. Debug builds compare every node as well and assert the two agree.
pub(super) fn diff(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &IdSet,
    touched: Option<&IdSet>,
) -> ChangeSet {
    let set = diff_of(old, new, filters_changed, touched);
    debug_assert!(
        touched.is_none() || set == diff_of(old, new, filters_changed, None),
        "change set of the touched nodes"
    );
    set
}

/// [`diff`]: `new`'s nodes (those of `touched`, when given) and the removed ones.
///
/// The nodes are taken in the order of `new`'s map of fingerprints, not of `touched`: `new`'s
/// map is `old`'s copied and patched, so its entries and `old`'s lie in one order and the
/// walk reads both maps front to back. Looking each touched node up in its own (hash) order
/// missed the cache on every lookup: a change set of 25,000 nodes on `large` took longer
/// than a walk over all 100,000, and a policy event touching most nodes 70 ms more. Each
/// node's other lookups are as few as its answer needs: the stale sets are read only where
/// they can decide.
fn diff_of(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &IdSet,
    touched: Option<&IdSet>,
) -> ChangeSet {
    let wanted = |id: &u64| touched.is_none_or(|t| t.contains(id));
    // The old filter parts left uncomputed: only of nodes stale in `old` (most often none).
    let old_filters = match old.stale.is_empty() {
        true => IdMap::default(),
        false => old.stale_filters(new.fingerprints.keys().filter(|id| {
            old.stale.contains(id)
                && wanted(id)
                && !filters_changed.contains(id)
                && !new.stale.contains(id)
        })),
    };
    let mut set = ChangeSet::default();
    // Gathered, then built at once: `BTreeMap`'s `FromIterator` sorts and builds the tree
    // bottom-up, where an insertion per node (in hash order) walked it from the root.
    let mut changed = Vec::new();
    let mut found = 0usize;
    for (&id, after) in &new.fingerprints {
        if !wanted(&id) {
            continue;
        }
        found += 1;
        let change = match old.fingerprints.get(&id) {
            None => NodeChange::all(),
            Some(before) => NodeChange {
                added: false,
                packet_filter: filters_changed.contains(&id)
                    || (!new.stale.contains(&id)
                        && old_filters.get(&id).copied().unwrap_or(before.filter) != after.filter),
                ssh_rules: before.ssh != after.ssh,
                peers: before.peers != after.peers,
                cap_map: before.caps != after.caps,
                own: before.own != after.own,
            },
        };
        if change != NodeChange::default() {
            changed.push((id, change));
        }
    }
    set.changed = changed.into_iter().collect();
    set.removed = match touched {
        None => old
            .fingerprints
            .keys()
            .filter(|id| !new.fingerprints.contains_key(id))
            .copied()
            .collect(),
        // Every touched node is in `new`: none was removed.
        Some(t) if found == t.len() => BTreeSet::new(),
        Some(t) => t
            .iter()
            .filter(|id| !new.fingerprints.contains_key(id) && old.fingerprints.contains_key(id))
            .copied()
            .collect(),
    };
    set
}
