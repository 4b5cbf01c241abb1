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
/// change; O(touched) instead of O(nodes). Debug builds compare every node as well and assert
/// the two agree.
pub(super) fn diff(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &IdSet,
    touched: Option<&IdSet>,
) -> ChangeSet {
    let Some(touched) = touched else {
        return diff_of(old, new, filters_changed, new.fingerprints.keys(), true);
    };
    let set = diff_of(old, new, filters_changed, touched.iter(), false);
    debug_assert_eq!(
        set,
        diff_of(old, new, filters_changed, new.fingerprints.keys(), true),
        "change set of the touched nodes"
    );
    set
}

/// [`diff`] over the nodes `ids`; with `every`, `ids` are all of `new`'s nodes and the
/// removed ones are found among `old`'s, else they are those of `ids` that `new` lacks.
/// Each node's lookups in the large maps are as few as the answer needs (a retag on `large`
/// touches 50,000 nodes, and every lookup there is a cache miss): the stale sets are read
/// only where they can decide, and a node's removal is found from the lookup of its new
/// fingerprint.
fn diff_of<'a>(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &IdSet,
    ids: impl Iterator<Item = &'a u64> + Clone,
    every: bool,
) -> ChangeSet {
    // The old filter parts left uncomputed: only of nodes stale in `old` (most often none).
    let old_filters = match old.stale.is_empty() {
        true => IdMap::default(),
        false => old.stale_filters(ids.clone().filter(|id| {
            old.stale.contains(id)
                && !filters_changed.contains(id)
                && new.fingerprints.contains_key(id)
                && !new.stale.contains(id)
        })),
    };
    let mut set = ChangeSet::default();
    // Gathered, then built at once: `BTreeMap`'s `FromIterator` sorts and builds the tree
    // bottom-up, where an insertion per node (in hash order) walked it from the root.
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    for &id in ids {
        let Some(after) = new.fingerprints.get(&id) else {
            if !every && old.fingerprints.contains_key(&id) {
                removed.push(id);
            }
            continue;
        };
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
    set.removed = match every {
        true => old
            .fingerprints
            .keys()
            .filter(|id| !new.fingerprints.contains_key(id))
            .copied()
            .collect(),
        false => removed.into_iter().collect(),
    };
    set
}
