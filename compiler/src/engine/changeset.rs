//! Change sets: which nodes' maps an event changed, and which parts of each, found by
//! comparing per-node fingerprints of two snapshots by stable node id (and, for filters an
//! event decided from the rule items, from that decision).

use std::collections::{BTreeMap, BTreeSet};

use super::Snapshot;
use crate::nodes::NodeId;

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

/// The change from `old` to `new`, where `filters_changed` (one bit per node of `new`) are
/// the nodes whose filter the event changed while leaving its fingerprint uncomputed. A
/// filter part left uncomputed in `new` by an earlier event is the same as in `old`; one left
/// uncomputed in `old` only is computed from `old`'s compile. With `touched` (one bit per
/// node of `new`), only those nodes are compared: every other node's fingerprint and stale
/// flag are `old`'s (the event moved them), so it did not change. Debug builds compare every
/// node as well and assert the two agree.
pub(super) fn diff(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &[u64],
    touched: Option<&[u64]>,
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
/// Fingerprints lie in arrays by node id, and each snapshot's ids are its compile's (name
/// order): the nodes are taken in id order, each with its old id through the translation of
/// the two node tables (made by the patch that made `new`'s, or one merge walk by name), so
/// both arrays are read front to back. By stable id, in hash order, every lookup missed the
/// cache (a change set of 25,000 nodes on `large` took longer than a walk over all 100,000).
fn diff_of(
    old: &Snapshot,
    new: &Snapshot,
    filters_changed: &[u64],
    touched: Option<&[u64]>,
) -> ChangeSet {
    let n = new.fingerprints.len();
    let to_new = new.compiled.ids_from(&old.compiled);
    let to_old = crate::nodes::inverse_ids(&to_new, n);
    let stable_new = new.stable_by_node();
    let stable_old = old.stable_by_node();
    // A node's old id: by name, when the node of that name was the same node (same stable
    // id); else (a node renamed, or a name taken over) by its stable id's old name.
    let old_of = |v: NodeId| {
        let id = *stable_new.get(v.index())?;
        let by_name =
            crate::nodes::translated(&to_old, v).filter(|w| stable_old.get(w.index()) == Some(&id));
        by_name.or_else(|| old.compiled.id_of(old.names.name(id)?))
    };
    let nodes: Vec<NodeId> = match touched {
        Some(bits) => crate::bits::ids_of(bits),
        None => (0..n).map(NodeId::new).collect(),
    };
    // The old filter parts left uncomputed: only of nodes stale in `old` (most often none).
    let old_filters: Vec<(NodeId, u64)> = match old.has_stale() {
        false => Vec::new(),
        true => {
            let wanted: Vec<NodeId> = nodes
                .iter()
                .filter(|&&v| {
                    !crate::bits::bit(filters_changed, v) && !crate::bits::bit(&new.stale, v)
                })
                .filter_map(|&v| old_of(v))
                .filter(|&w| crate::bits::bit(&old.stale, w))
                .collect();
            let mut filters = old.stale_filters(&wanted);
            // A renamed node's old id is out of order.
            filters.sort_unstable_by_key(|&(w, _)| w);
            filters
        }
    };
    // Ascending old ids: looked up by binary search.
    let old_filter = |w: NodeId| {
        old_filters
            .binary_search_by_key(&w, |&(x, _)| x)
            .ok()
            .and_then(|i| old_filters.get(i))
            .map(|&(_, f)| f)
    };
    let mut set = ChangeSet::default();
    // Gathered, then built at once: `BTreeMap`'s `FromIterator` sorts and builds the tree
    // bottom-up, where an insertion per node walked it from the root.
    let mut changed = Vec::new();
    for v in nodes {
        let (Some(after), Some(&id)) = (new.fingerprints.get(v.index()), stable_new.get(v.index()))
        else {
            continue;
        };
        let before = old_of(v).and_then(|w| Some((w, old.fingerprints.get(w.index())?)));
        let change = match before {
            None => NodeChange::all(),
            Some((w, before)) => NodeChange {
                added: false,
                packet_filter: crate::bits::bit(filters_changed, v)
                    || (!crate::bits::bit(&new.stale, v)
                        && old_filter(w).unwrap_or(before.filter) != after.filter),
                ssh_rules: before.ssh != after.ssh
                    && match &new.ssh_same {
                        Some(same) => !crate::bits::bit(same, v),
                        None => !new.compiled.ssh_unchanged(v, &old.compiled, w),
                    },
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
    // The old nodes whose stable id is gone (a node whose name is gone may be renamed).
    set.removed = to_new
        .iter()
        .zip(stable_old.iter())
        .filter(|&(&j, id)| stable_new.get(j as usize) != Some(id))
        .map(|(_, &id)| id)
        .filter(|id| !new.names.contains(*id))
        .collect();
    set
}
