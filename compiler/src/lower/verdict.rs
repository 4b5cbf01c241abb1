//! Per node, whether its packet filter changed after an event, decided from the rule items
//! ([`SourceMoves`] for a node event, the unpaired items for a policy event) where that is
//! exact, else left to assembly ([`Verdict::Assemble`]). See [`super::moves`] for why a
//! verdict from the items is exact.

use super::moves::*;
use super::{Body, ChangedItems, Item, Lowered};
use crate::nodes::{NodeId, NodeTable};

impl Lowered {
    /// Node `id`'s packet filter after the change `moves` describes (this is the lowering
    /// after it; the node is `old_id` in `old`, the lowering before). O(the items that may
    /// reach the node).
    pub(crate) fn filter_verdict(
        &self,
        table: &NodeTable,
        id: NodeId,
        old: (&Lowered, &NodeTable, NodeId),
        moves: &SourceMoves,
    ) -> Verdict {
        let (old, old_table, old_id) = old;
        let (Some(node), Some(old_node)) = (table.get(id), old_table.get(old_id)) else {
            return Verdict::Assemble;
        };
        // An exit node's filter holds every network item's destinations of its families
        // ([`Lowered::dst_ips`]): any moved item may change it.
        if self.spreads_on(node) || self.spreads_on(old_node) {
            return Verdict::Assemble;
        }
        if moves.owner_or_carrier(self, table, node) {
            return Verdict::Assemble;
        }
        let Some(via_entries) =
            self.via_verdict((table, id, node), (old, old_table, old_id, old_node), moves)
        else {
            return Verdict::Assemble;
        };
        // The same items may reach the node in both: compared on the index's parts (equal
        // parts, equal candidates), or in full when they differ.
        fn selves<'a>(n: &crate::nodes::NodeInfo, l: &'a Lowered) -> &'a [u32] {
            match n.is_tagged() {
                true => &[],
                false => l.self_items.as_slice(),
            }
        }
        let listed = self.by_node.get(id.index());
        let old_listed = old.by_node.get(old_id.index());
        // The self items, compared once per event (`SourceMoves::self_items_same`).
        let same_selves = match (node.is_tagged(), old_node.is_tagged()) {
            (true, true) => true,
            (false, false) => moves.self_items_same,
            (true, false) => old.self_items.is_empty(),
            (false, true) => self.self_items.is_empty(),
        };
        debug_assert_eq!(
            same_selves,
            selves(node, self) == map_items(moves.to_new.as_deref(), selves(old_node, old))
        );
        // A list the engine's patch kept is the same memory.
        let same_parts = (listed.same_memory(old_listed) && moves.to_new.is_none()
            || moves.same_items(old_listed, listed))
            && moves.global_same
            && same_selves;
        if !same_parts {
            let old_candidates =
                map_items(moves.to_new.as_deref(), &old.candidates(old_id, old_node));
            if self.candidates(id, node) != old_candidates {
                return Verdict::Assemble;
            }
        }
        // What candidate `i` does to the filter (`known`: an item already changed it, so a
        // decided item that is not uncertain need not be looked at).
        let effect = |i: u32, known: bool| -> Effect {
            let at = i as usize;
            let moved = moves.moved.get(at).copied().unwrap_or(true);
            let dst_moved = moves.dst_moved.get(at).copied().unwrap_or(true);
            if !moved && !dst_moved {
                return Effect::Nothing;
            }
            let Some(item) = self.items.get(at) else {
                return Effect::Assemble;
            };
            match moved_kind(item, dst_moved) {
                MovedKind::Assembled => Effect::Assemble,
                // Decided once per node, before ([`Lowered::via_verdict`]).
                MovedKind::Inert | MovedKind::Via => Effect::Nothing,
                MovedKind::Decided => {
                    let uncertain = moves.uncertain.binary_search(&i).is_ok();
                    if known && !uncertain {
                        return Effect::Nothing;
                    }
                    let entries = match &item.body {
                        Body::Net { dst, ports, .. } => {
                            !ports.is_empty()
                                && self.has_dst_ips(table, (id, node), dst, item.spreads_to_exits())
                        }
                        // An app grant's rule stands alone at its own position (never
                        // merged): when it has a destination on the node, its `SrcIPs`
                        // moved with the item's.
                        Body::App { dsts, .. } => dsts
                            .iter()
                            .any(|t| !super::assemble::narrow(id, node, t).is_empty()),
                        _ => false,
                    };
                    match (entries, uncertain) {
                        (false, _) => Effect::Nothing,
                        (true, false) => Effect::Changes,
                        (true, true) => Effect::Maybe,
                    }
                }
            }
        };
        let own = selves(node, self);
        let candidates = listed.len() + self.global.len() + own.len();
        let flagged = moves.decided.len() + moves.assembled.len();
        // Only a moved item can change the verdict: when they are few beside the node's
        // candidates (a member's join moves a dozen of `large`'s 14,000 items; a node has
        // hundreds of candidates), each is looked up in the node's lists (all ascending),
        // those that would have the filter assembled first, then the others until one puts
        // entries in it; not every candidate read.
        let from_flagged = || {
            let reaches = |i: &u32| {
                listed.contains(*i)
                    || self.global.binary_search(i).is_ok()
                    || own.binary_search(i).is_ok()
            };
            let assembled = match &moves.reached {
                Some(r) => crate::bits::bit(&r.assembled, id),
                None => moves.assembled.iter().any(reaches),
            };
            if assembled {
                return Verdict::Assemble;
            }
            // The decided items that may reach the node, until one settles it (in any order:
            // a decided item never has the filter assembled, so the first that puts entries
            // in it gives the verdict, wherever it is).
            let reached: Box<dyn Iterator<Item = u32> + '_> = match &moves.reached {
                Some(r) => Box::new(
                    r.maps
                        .iter()
                        .zip(&r.groups)
                        .filter(move |(bits, _)| crate::bits::bit(bits, id))
                        .flat_map(|(_, items)| items.iter().copied()),
                ),
                None => Box::new(moves.decided.iter().copied().filter(move |i| reaches(i))),
            };
            // An item that changed the filter settles it; one whose change another may
            // undo ([`SourceMoves::uncertain`]) has it assembled unless one settles it.
            let mut maybe = false;
            for i in reached {
                match effect(i, false) {
                    Effect::Assemble => return Verdict::Assemble,
                    Effect::Changes => return Verdict::Changed,
                    Effect::Maybe => maybe = true,
                    Effect::Nothing => {}
                }
            }
            match maybe {
                true => Verdict::Assemble,
                false => Verdict::Same,
            }
        };
        // Each candidate looked at once or more (in any order: the verdict is the same). Once
        // one moved item puts entries in the filter, the others are only checked for what
        // needs assembling (their destinations are not narrowed again).
        let from_candidates = || {
            let (mut changed, mut maybe) = (false, false);
            let listed = listed.iter();
            for i in listed
                .chain(self.global.iter().copied())
                .chain(own.iter().copied())
            {
                match effect(i, changed) {
                    Effect::Assemble => return Verdict::Assemble,
                    Effect::Changes => changed = true,
                    Effect::Maybe => maybe = true,
                    Effect::Nothing => {}
                }
            }
            match (changed, maybe) {
                (true, _) => Verdict::Changed,
                (false, true) => Verdict::Assemble,
                (false, false) => Verdict::Same,
            }
        };
        // The two ways agree (checked on every verdict of the debug builds' tests).
        debug_assert_eq!(
            from_flagged(),
            from_candidates(),
            "filter verdicts disagree"
        );
        // With the moved items' bitmaps, each costs a bit test (the assembled ones one for
        // all): cheaper than reading every candidate's flags (a leave on `large` moves a
        // couple of hundred items; its 25,000 verdicts read a thousand candidates each).
        let by_bits = moves
            .reached
            .as_ref()
            .is_some_and(|r| r.maps.len() < candidates);
        let verdict = match by_bits || flagged.saturating_mul(8) < candidates {
            true => from_flagged(),
            false => from_candidates(),
        };
        match verdict {
            Verdict::Same if via_entries => Verdict::Changed,
            verdict => verdict,
        }
    }

    /// Node `id`'s packet filter after a node event that regrouped the rules on it (the
    /// node is reached or claimed by an item without a partner, or whose merge slot moved:
    /// [`super::regroup`]), when `moves` paired the items by rule: [`Verdict::Changed`] when
    /// the items without a partner put entries in it on one side and none on the other,
    /// [`Verdict::Assemble`] otherwise. Merging moves `DstPorts` entries and `CapGrant`s
    /// between rules without dropping any, and a paired item puts as many in both filters
    /// (its destinations did not move: an item whose did is assembled, as are the devices
    /// of the owners whose `autogroup:self` rules changed and the carriers of moved `via`
    /// tags), so the filter holds more (or fewer) than before. The leave of a user's only
    /// device makes that user's rules' items vanish: their destinations lose entries.
    /// O(items without a partner x log candidates).
    pub(crate) fn regrouped_verdict(
        &self,
        table: &NodeTable,
        id: NodeId,
        (old, old_table, old_id): (&Lowered, &NodeTable, NodeId),
        moves: &SourceMoves,
    ) -> Verdict {
        let (Some(node), Some(old_node)) = (table.get(id), old_table.get(old_id)) else {
            return Verdict::Assemble;
        };
        // An exit node's filter holds every network item's destinations of its families
        // ([`Lowered::dst_ips`]): any moved item may change it.
        if self.spreads_on(node) || self.spreads_on(old_node) {
            return Verdict::Assemble;
        }
        let assembled = match &moves.reached {
            Some(r) => crate::bits::bit(&r.assembled, id),
            None => moves
                .assembled
                .iter()
                .any(|&i| self.is_candidate(id, node, i)),
        };
        if moves.to_new.is_none() || assembled || moves.owner_or_carrier(self, table, node) {
            return Verdict::Assemble;
        }
        // The entries the items without a partner put in the filter of a lowering.
        let share = |l: &Lowered, t: &NodeTable, (id, node), items: &[u32]| {
            let mut sum = 0;
            for &i in items {
                if l.is_candidate(id, node, i) {
                    sum += l.entries_on(t, id, i)?;
                }
            }
            Some(sum)
        };
        let removed = share(old, old_table, (old_id, old_node), &moves.unpaired.0);
        let added = share(self, table, (id, node), &moves.unpaired.1);
        match (removed, added) {
            (Some(0), Some(n)) | (Some(n), Some(0)) if n > 0 => Verdict::Changed,
            _ => Verdict::Assemble,
        }
    }

    /// Item `i` may reach node `id`.
    fn is_candidate(&self, id: NodeId, node: &crate::nodes::NodeInfo, i: u32) -> bool {
        self.by_node.get(id.index()).contains(i)
            || self.global.binary_search(&i).is_ok()
            || (!node.is_tagged() && self.self_items.binary_search(&i).is_ok())
            || (self.spreads_on(node)
                && self
                    .items
                    .get(i as usize)
                    .is_some_and(Item::spreads_to_exits))
    }

    /// What the `via` items whose sources alone moved do to node `id`'s filter: `Some(true)`
    /// when one puts entries in it (its `SrcIPs` moved, so the rule holding them changed),
    /// `Some(false)` when none does and none of their slot claims can reorder or merge
    /// another part (no other `via` item of the key, old or new, has a part on the node:
    /// see [`SourceMoves::via_moved`] for the plain ones), `None` when the filter must be
    /// assembled. Only nodes carrying one of an item's tags see it
    /// at all. A member's leave on `large` moved the sources of a few dozen `via` grants
    /// to `tag:router`, and had the filters of its 900 routers assembled (70 ms). O(moved
    /// `via` items x their keys' other items x log candidates).
    fn via_verdict(
        &self,
        (table, id, node): (&NodeTable, NodeId, &crate::nodes::NodeInfo),
        (old, old_table, old_id, old_node): (&Lowered, &NodeTable, NodeId, &crate::nodes::NodeInfo),
        moves: &SourceMoves,
    ) -> Option<bool> {
        let mut entries = false;
        for (m, olds, news) in &moves.via_moved {
            let item = self.items.get(*m as usize)?;
            let (Body::Net { ports, .. }, Some(tags)) = (&item.body, &item.via) else {
                return None;
            };
            if !tags.iter().any(|t| node.has_tag(t) || old_node.has_tag(t)) {
                continue;
            }
            // Self items (untagged nodes) claim slots too; a node whose tags changed
            // claimed others.
            if !node.is_tagged() || node.tags != old_node.tags {
                return None;
            }
            if olds
                .iter()
                .any(|&j| old.has_part(old_table, (old_id, old_node), j))
                || news.iter().any(|&j| self.has_part(table, (id, node), j))
            {
                return None;
            }
            if !ports.is_empty() && self.has_part(table, (id, node), *m) {
                // Another item may have undone its change ([`SourceMoves::uncertain`]).
                if moves.uncertain.binary_search(m).is_ok() {
                    return None;
                }
                entries = true;
            }
        }
        Some(entries)
    }

    /// Item `j` may put a part in node `id`'s filter: it is one of the node's candidates
    /// and, for a network item, has a destination on the node. A vacant item counts too: its
    /// partner in the other lowering, with the same destinations, may put one.
    fn has_part(
        &self,
        table: &NodeTable,
        (id, node): (NodeId, &crate::nodes::NodeInfo),
        j: u32,
    ) -> bool {
        self.is_candidate(id, node, j)
            && match self.items.get(j as usize) {
                Some(
                    item @ Item {
                        body: Body::Net { dst, .. },
                        ..
                    },
                ) => self.has_dst_ips(table, (id, node), dst, item.spreads_to_exits()),
                _ => true,
            }
    }
}

impl Lowered {
    /// After a policy change that left the node table as it was (`old` lowered the same
    /// table, so node ids agree), node `id`'s packet filter: [`Verdict::Changed`] when the
    /// items of one lowering without an equal partner in the other
    /// ([`super::WireComparison::unpaired`]) put something in it and those of the other put nothing (a
    /// rule added or removed, for this node). Paired items put the same entries in both
    /// filters, and merging moves `DstPorts` entries between rules without dropping any, so
    /// the filter now holds more (or fewer) entries than before. [`Verdict::Assemble`]
    /// otherwise (entries both came and went, or only order and merging changed). O(the
    /// items that may reach the node, plus the unpaired ones' shares).
    pub(crate) fn entry_count_verdict(
        &self,
        table: &NodeTable,
        id: NodeId,
        old: (&Lowered, &NodeTable),
        unpaired: &ChangedItems,
    ) -> Verdict {
        let (old, old_table) = old;
        let (Some(node), Some(old_node)) = (table.get(id), old_table.get(id)) else {
            return Verdict::Assemble;
        };
        let share = |lowered: &Lowered, table: &NodeTable, node, flags: &[bool]| {
            let mut sum = 0;
            for i in lowered.candidates(id, node) {
                if flags.get(i as usize).copied().unwrap_or(true) {
                    sum += lowered.entries_on(table, id, i)?;
                }
            }
            Some(sum)
        };
        let removed = share(old, old_table, old_node, &unpaired.old);
        let added = share(self, table, node, &unpaired.new);
        match (removed, added) {
            (Some(0), Some(n)) | (Some(n), Some(0)) if n > 0 => Verdict::Changed,
            _ => Verdict::Assemble,
        }
    }
}

/// What one moved item does to a node's packet filter ([`Lowered::filter_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Only assembling the filter tells.
    Assemble,
    /// It changed the filter.
    Changes,
    /// It changed its rule, but another moved item may have undone that
    /// ([`SourceMoves::uncertain`]).
    Maybe,
    /// Nothing.
    Nothing,
}
