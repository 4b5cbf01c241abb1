//! After a change to one node that serves no route, which rule items' sources moved, and per
//! node whether its packet filter changed, decided from the items where the node's rules
//! provably keep their merging (assembled otherwise). A member joining a large tailnet enters
//! the sources of rules reaching tens of thousands of nodes; this is how the engine's node
//! events tell which of those filters changed without assembling and hashing each one.
//!
//! Why a verdict from the items is exact: the two lowerings merge alike
//! ([`Lowered::merge_signature`]) and the node itself did not change. When it has the same
//! candidate items in both and no item's destinations changed (other than by the changed
//! node's own membership: a posture-gated rule whose last passing source leaves grants
//! nothing, for one), each item renders the same destinations on it, in the same slots. Its
//! filter can then differ only through a moved item's `SrcIPs` (a plain network item that
//! renders a destination on the node puts its list in a rule of its own slot, so a moved list
//! changes that rule), or through what only assembly settles: `autogroup:self` sources and
//! the slots they claim (the owners in [`SourceMoves`]), `via` claims, and companions of app
//! grants. (An app grant's rule is never merged: like a plain network item's, a moved list
//! changes it wherever it has a destination.)
//!
//! When the event does change how rules merge (a rule's items vanish or appear), the items
//! are paired through their rules ([`super::regroup`]) and the same holds of every node the
//! regrouping does not reach; the nodes it reaches are decided from the items without a
//! partner ([`Lowered::regrouped_verdict`]).

// Looked up once per item and per dependent node (tens of thousands per event): the fast hash.
use crate::hash::{Map as HashMap, Set as HashSet};
use crate::Text;
use std::sync::Arc;

use super::{first_owner, Body, Item, Lowered};
use crate::nodes::{NodeId, NodeInfo, NodeTable, UserId};
use crate::pernode::Items;
use crate::resolve::Target;

/// What a one-node change did to the items.
#[derive(Debug)]
pub(crate) struct SourceMoves {
    /// Per item of the new lowering (paired with the old one's index for index, or through
    /// `to_new`): its `SrcIPs` (or a companion's other list) differ; true for an item
    /// without a partner. Always false for `autogroup:self` items, whose sources
    /// are per node.
    pub(super) moved: Vec<bool>,
    /// Per item: its destinations differ beyond the changed node's own membership. Always
    /// false for `autogroup:self` items.
    pub(super) dst_moved: Vec<bool>,
    /// Owners whose untagged devices are assembled: the changed node's owners, whose
    /// `autogroup:self` sources changed, and the owners of the first address of every moved
    /// list before and after (a self item's per-node sources may have become, or stopped
    /// being, equal to an interned list, which moves the slot they claim). By login, as
    /// user ids are positions that shift when a user is removed.
    owners: HashSet<String>,
    /// Tags of moved `via` network items whose destinations moved: nodes carrying one are
    /// assembled.
    via_tags: HashSet<Text>,
    /// `via` network items whose sources alone moved ([`MovedKind::Via`]), each with the
    /// other `via` network items of its key (`SrcIPs` and `IPProto`) in the earlier lowering
    /// and in this one: on a node carrying one of its tags, the item's claim on its key's
    /// slot reorders nothing unless one of those puts a part in the node's filter. Plain
    /// items of its key need no such list: the two lowerings merge alike
    /// ([`Lowered::merge_signature`]), so a plain item shares the key before exactly when
    /// it does after (its key's first item, the `via` item's global slot, is the same), the
    /// claimed slot is the same, and such an item moved with it (its own verdict). Two `via`
    /// items' keys are not in the signature when no plain item has them.
    pub(super) via_moved: Vec<(u32, Vec<u32>, Vec<u32>)>,
    /// The items whose sources or destinations moved, ascending, by [`MovedKind`] (the
    /// inert ones left out).
    pub(super) decided: Vec<u32>,
    pub(super) assembled: Vec<u32>,
    /// Moved items (ascending) whose change another moved item may undo on a node: its new
    /// `SrcIPs` were some list of the earlier lowering, or its earlier ones are some list of
    /// this one (a device moving from a rule's sources to those of another rule with the
    /// same destinations leaves the filter byte for byte the same when the first rule's
    /// list becomes the second's). A node such an item puts entries in is assembled unless
    /// an item with no such doubt changed it. Any other moved list is one no rule of the
    /// earlier filter (or, for the earlier list, of the new one) had: its rule is new.
    pub(super) uncertain: Vec<u32>,
    /// When few items moved: the nodes of the new table each may reach, one bit each. A
    /// node's verdict then tests a bit per moved item, where a binary search of the node's
    /// own list of items (hundreds or thousands long, out of cache) took 16-20 ms of a
    /// member's join on `large`, over 25,000 nodes.
    pub(super) reached: Option<Reached>,
    /// The two lowerings' `autogroup:self` items are the same list (through `to_new`):
    /// compared once, not per untagged node (25,000 comparisons of 50 items in a member's
    /// join on `large`).
    pub(super) self_items_same: bool,
    /// When the items are paired through their rules rather than index for index (the
    /// event changed how rules merge: [`super::regroup`]): each old item's index in the new
    /// lowering (`u32::MAX` for none). A node's candidates are then compared through it.
    pub(super) to_new: Option<Vec<u32>>,
    /// The two lowerings' items that may reach every node are the same (through `to_new`).
    pub(super) global_same: bool,
    /// With `to_new`: the items of the old lowering and of the new one (ascending) without a
    /// partner of their kind ([`Lowered::regrouped_verdict`]).
    pub(super) unpaired: (Vec<u32>, Vec<u32>),
}

/// The nodes moved items may reach ([`SourceMoves::reached`]), one bit each. No moved item
/// is an `autogroup:self` one, so a node's self items never add to these.
#[derive(Debug)]
pub(super) struct Reached {
    /// Some item of `assembled` may reach the node: one bit, not one per item (a leave on
    /// `large` moves up to a couple of hundred items, each looked up in a map of bitmaps
    /// per node, 5 million lookups, a tenth of its time).
    pub(super) assembled: Vec<u64>,
    /// One bitmap per distinct reach (items to one destination share it).
    pub(super) maps: Vec<Vec<u64>>,
    /// Per bitmap of `maps`, the items of `decided` that have it, ascending: a node's
    /// verdict tests a bit per distinct reach, not per item (a leave on `large` moves a
    /// couple of hundred items to far fewer destinations, and tested one bit per item on
    /// each of 25,000 nodes).
    pub(super) groups: Vec<Vec<u32>>,
}

/// At most this many distinct reaches of moved items get a bitmap of the nodes they reach
/// ([`SourceMoves::reached`]), beside one for all the assembled items: a bitmap is a bit
/// per node (at most 3.2 MB on `large`, for the event).
const REACHED_BITMAPS: usize = 256;

/// What a moved item (not an `autogroup:self` one) does to a packet filter it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MovedKind {
    /// A plain network item or app grant, without `via`, whose sources alone moved: the
    /// filter changed if the item puts entries in it.
    Decided,
    /// The filter must be assembled to tell.
    Assembled,
    /// An app grant with `via`: it puts nothing in packet filters.
    Inert,
    /// A network item with `via` whose sources alone moved: on the nodes carrying one of
    /// its tags (the only ones it reaches) it changes the filter when it puts entries in it,
    /// and may reorder the rules of its key (old and new) through the slot it claims there
    /// ([`SourceMoves::via_moved`]); decided per node in [`Lowered::filter_verdict`].
    Via,
}

/// The [`MovedKind`] of `item`, whose sources or (`dst_moved`) destinations moved.
pub(super) fn moved_kind(item: &Item, dst_moved: bool) -> MovedKind {
    match (&item.body, &item.via, dst_moved) {
        (Body::Net { .. } | Body::App { .. }, None, false) => MovedKind::Decided,
        (Body::App { .. }, Some(_), _) => MovedKind::Inert,
        (Body::Net { .. }, Some(_), false) => MovedKind::Via,
        _ => MovedKind::Assembled,
    }
}

/// A node's packet filter after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// As before.
    Same,
    /// Different.
    Changed,
    /// Not decided from the items: assemble and compare.
    Assemble,
}

/// The changed nodes: their ids before (in the old table) and after (in the new one), each
/// list sorted.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChangedNode {
    /// In the old table.
    pub(crate) before: Vec<NodeId>,
    /// In the new table.
    pub(crate) after: Vec<NodeId>,
}

/// Compares node lists across the two tables: old ids translated to new ones by name (both
/// tables are sorted by name, so one merge walk), the changed node left out of both.
struct Translate {
    to_new: Vec<u32>,
    node: ChangedNode,
    /// Lists compared, by address: the lists are the items' own (`Arc`-shared), alive for
    /// the whole comparison.
    memo: HashMap<(usize, usize), bool>,
}

impl Translate {
    fn new(old: &NodeTable, new: &NodeTable, node: ChangedNode) -> Translate {
        Translate {
            to_new: crate::nodes::translate_ids(old, new),
            node,
            memo: HashMap::default(),
        }
    }

    /// Two lists hold the same nodes, the changed one aside.
    fn same_nodes(&mut self, x: &Arc<[NodeId]>, y: &Arc<[NodeId]>) -> bool {
        let key = (
            Arc::as_ptr(x) as *const NodeId as usize,
            Arc::as_ptr(y) as *const NodeId as usize,
        );
        if let Some(&same) = self.memo.get(&key) {
            return same;
        }
        let (before, after) = (&self.node.before, &self.node.after);
        let mut xs = x
            .iter()
            .filter(|i| before.binary_search(i).is_err())
            .map(|i| self.to_new.get(i.index()).copied().unwrap_or(u32::MAX));
        let mut ys = y
            .iter()
            .filter(|i| after.binary_search(i).is_err())
            .map(|i| crate::nodes::index(i.index()));
        let same = loop {
            match (xs.next(), ys.next()) {
                (None, None) => break true,
                (Some(a), Some(b)) if a == b => {}
                _ => break false,
            }
        };
        self.memo.insert(key, same);
        same
    }

    fn same_target(&mut self, a: &Target, b: &Target) -> bool {
        match (a, b) {
            (Target::Nodes(x), Target::Nodes(y)) => self.same_nodes(x, y),
            (Target::Literal(x), Target::Literal(y)) => Arc::ptr_eq(x, y) || x == y,
            _ => a == b,
        }
    }

    fn same_targets(&mut self, a: &[Target], b: &[Target]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| self.same_target(x, y))
    }

    /// Two items (of the same rule) grant the same on every node but the changed one, their
    /// sources aside.
    fn same_destinations(&mut self, a: &Item, b: &Item) -> bool {
        match (&a.body, &b.body) {
            (Body::Net { dst: x, .. }, Body::Net { dst: y, .. }) => self.same_target(x, y),
            (Body::App { dsts: x, .. }, Body::App { dsts: y, .. }) => self.same_targets(x, y),
            (Body::Companion { .. }, Body::Companion { .. }) => {
                self.same_targets(&a.src_targets, &b.src_targets)
            }
            _ => true,
        }
    }
}

/// The login of user `user` in `table` (lowercased).
pub(crate) fn login(table: &NodeTable, user: Option<UserId>) -> Option<&str> {
    table.users.get(user?.index()).map(|u| u.email.as_str())
}

impl SourceMoves {
    /// Compare two lowerings of the same policy, before and after a change to one node
    /// (`node`) that serves no route and whose owners (before and after) are `owners`.
    /// `pair` gives each old item's partner in `new` when the event changed how rules merge
    /// ([`super::regroup`]); without it the items pair index for index, and `None` is
    /// returned when they do not. The items without a partner of their kind are listed for
    /// [`Lowered::regrouped_verdict`] (the regrouping marks every node they may reach or
    /// claim). O(items + nodes), each distinct pair of lists compared once.
    pub(crate) fn new(
        (old, old_table): (&Lowered, &NodeTable),
        (new, new_table): (&Lowered, &NodeTable),
        node: ChangedNode,
        owners: impl IntoIterator<Item = String>,
        pair: Option<&[Option<u32>]>,
    ) -> Option<SourceMoves> {
        // Each new item's partner in `old`, and (when paired by rule) each old one's in `new`.
        let (old_of, to_new) = match pair {
            None if old.items.len() != new.items.len() => return None,
            None => ((0..new.items.len()).map(|i| Some(i as u32)).collect(), None),
            Some(pair) => {
                let mut old_of = vec![None; new.items.len()];
                let mut to_new = vec![u32::MAX; old.items.len()];
                for (i, j) in pair.iter().enumerate() {
                    if let (Some(j), Some(t)) = (j, to_new.get_mut(i)) {
                        *t = *j;
                        if let Some(o) = old_of.get_mut(*j as usize) {
                            *o = Some(crate::nodes::index(i));
                        }
                    }
                }
                (old_of, Some(to_new))
            }
        };
        let mapped = |list: &[u32]| -> Vec<u32> { map_items(to_new.as_deref(), list) };
        let mut moves = SourceMoves {
            moved: Vec::with_capacity(new.items.len()),
            dst_moved: Vec::with_capacity(new.items.len()),
            owners: owners.into_iter().collect(),
            via_tags: HashSet::default(),
            via_moved: Vec::new(),
            decided: Vec::new(),
            assembled: Vec::new(),
            uncertain: Vec::new(),
            reached: None,
            self_items_same: mapped(&old.self_items) == new.self_items,
            global_same: mapped(&old.global) == new.global,
            to_new: None,
            unpaired: (Vec::new(), Vec::new()),
        };
        let mut translate = Translate::new(old_table, new_table, node);
        // Per pair of lists: whether they differ, and whether the change may be undone on
        // a node by another item's ([`SourceMoves::uncertain`]).
        let mut memo: HashMap<(u32, u32), (bool, bool)> = HashMap::default();
        let mut differ = |x: u32, y: u32, owners: &mut HashSet<String>| -> (bool, bool) {
            *memo.entry((x, y)).or_insert_with(|| {
                let (before, after) = (old.srcs.slice(x), new.srcs.slice(y));
                // A list taken from the earlier lowering is the same memory.
                let moved = !super::same_strings(before, after);
                if !moved {
                    return (false, false);
                }
                owners.extend(login(old_table, first_owner(old_table, before)).map(str::to_string));
                owners.extend(login(new_table, first_owner(new_table, after)).map(str::to_string));
                // Looked up by the hash each table keeps: O(1) unless the hash is there.
                let known =
                    |from: &super::SrcTable, id: u32, list: &[Text], to: &super::SrcTable| {
                        !list.is_empty()
                            && from
                                .list(id)
                                .is_some_and(|(_, hash)| to.find(hash, list).is_some())
                    };
                let uncertain =
                    known(&new.srcs, y, after, &old.srcs) || known(&old.srcs, x, before, &new.srcs);
                (true, uncertain)
            })
        };
        let mut via_old = Vec::new();
        for (j, b) in new.items.iter().enumerate() {
            let i = crate::nodes::index(j);
            let partner = old_of
                .get(j)
                .copied()
                .flatten()
                .and_then(|o| Some((o, old.items.get(o as usize)?)));
            let alike = |a: &Item| {
                std::mem::discriminant(&a.body) == std::mem::discriminant(&b.body)
                    && a.via.is_some() == b.via.is_some()
            };
            let Some((o, a)) = partner.filter(|(_, a)| alike(a)) else {
                // No partner of its kind (only when paired by rule: index for index, the
                // lowerings are given up on). The regrouping marks every node it or its
                // partner may reach, and the carriers of their `via` tags
                // ([`super::regroup`]): those are decided by [`Lowered::regrouped_verdict`].
                pair?;
                if let Some((o, _)) = partner {
                    moves.unpaired.0.push(o);
                }
                moves.unpaired.1.push(i);
                moves.moved.push(!b.body.is_self());
                moves.dst_moved.push(!b.body.is_self());
                continue;
            };
            let (mut moved, mut uncertain) = differ(a.src, b.src, &mut moves.owners);
            if let (Body::Companion { src_ips: x, .. }, Body::Companion { src_ips: y, .. }) =
                (&a.body, &b.body)
            {
                let (m, u) = differ(*x, *y, &mut moves.owners);
                (moved, uncertain) = (moved | m, uncertain | u);
            }
            if uncertain && !b.body.is_self() {
                moves.uncertain.push(i);
            }
            let dst_moved = !b.body.is_self() && !translate.same_destinations(a, b);
            moves.moved.push(moved && !b.body.is_self());
            moves.dst_moved.push(dst_moved);
            if !b.body.is_self() && (moved || dst_moved) {
                match moved_kind(b, dst_moved) {
                    MovedKind::Decided => moves.decided.push(i),
                    MovedKind::Assembled => {
                        moves
                            .via_tags
                            .extend(b.via.iter().flat_map(|tags| tags.iter().cloned()));
                        moves.assembled.push(i);
                    }
                    MovedKind::Via => {
                        moves.via_moved.push((i, Vec::new(), Vec::new()));
                        via_old.push(o);
                    }
                    MovedKind::Inert => {}
                }
            }
        }
        if let Some(to_new) = &to_new {
            let lone = to_new.iter().enumerate().filter(|(_, &j)| j == u32::MAX);
            moves
                .unpaired
                .0
                .extend(lone.map(|(i, _)| crate::nodes::index(i)));
            moves.unpaired.0.sort_unstable();
        }
        moves.key_sharers(old, new, &via_old);
        moves.reached = moves.reached_bitmaps(new, new_table.len());
        moves.to_new = to_new;
        Some(moves)
    }

    /// Node `node` (of `new`, on `table`) has its filter assembled whatever the items say:
    /// an untagged device of an owner whose `autogroup:self` sources or claims moved, or a
    /// carrier of a tag of a `via` item whose destinations moved.
    pub(super) fn owner_or_carrier(
        &self,
        new: &Lowered,
        table: &NodeTable,
        node: &NodeInfo,
    ) -> bool {
        let self_owner = !node.is_tagged()
            && !new.self_items.is_empty()
            && login(table, node.owner).is_some_and(|u| self.owners.contains(u));
        self_owner || node.tags.iter().any(|t| self.via_tags.contains(t))
    }

    /// Node lists of candidates (ascending) of the two lowerings are the same items, old
    /// ones translated through the pairing.
    pub(super) fn same_items(&self, old: Items<'_>, new: Items<'_>) -> bool {
        match &self.to_new {
            None => old == new,
            Some(to_new) => {
                old.len() == new.len()
                    && old
                        .iter()
                        .zip(new.iter())
                        .all(|(i, j)| to_new.get(i as usize) == Some(&j))
            }
        }
    }
}

/// `list` (old item indices, ascending) in new indices through `to_new` (none: the same),
/// ascending; an item without a partner becomes `u32::MAX`.
pub(super) fn map_items(to_new: Option<&[u32]>, list: &[u32]) -> Vec<u32> {
    let Some(to_new) = to_new else {
        return list.to_vec();
    };
    let mut out: Vec<u32> = list
        .iter()
        .map(|&i| to_new.get(i as usize).copied().unwrap_or(u32::MAX))
        .collect();
    out.sort_unstable();
    out
}

/// A `via` network item's merging key: its `SrcIPs` and `IPProto`.
fn via_key(item: &Item) -> Option<(u32, Option<u8>)> {
    match (&item.body, &item.via) {
        (Body::Net { proto, .. }, Some(_)) => Some((item.src, *proto)),
        _ => None,
    }
}

impl SourceMoves {
    /// Fill in [`SourceMoves::via_moved`]'s other `via` items of each key, in one pass over
    /// each lowering's `via` items. O(items).
    /// `via_old` holds each moved item's index in `old`.
    fn key_sharers(&mut self, old: &Lowered, new: &Lowered, via_old: &[u32]) {
        if self.via_moved.is_empty() {
            return;
        }
        for (side, lowered) in [(0, old), (1, new)] {
            let mut wanted: HashMap<(u32, Option<u8>), Vec<usize>> = HashMap::default();
            // Each moved item's index in this lowering.
            let own: Vec<u32> = match side {
                0 => via_old.to_vec(),
                _ => self.via_moved.iter().map(|(m, _, _)| *m).collect(),
            };
            for (at, m) in own.iter().enumerate() {
                if let Some(key) = lowered.items.get(*m as usize).and_then(via_key) {
                    wanted.entry(key).or_default().push(at);
                }
            }
            for &j in &lowered.via_items {
                let item = lowered.items.get(j as usize);
                let Some(ats) = item.and_then(via_key).and_then(|key| wanted.get(&key)) else {
                    continue;
                };
                for &at in ats {
                    let m = own.get(at).copied();
                    if let Some((_, olds, news)) = self.via_moved.get_mut(at) {
                        if m != Some(j) {
                            match side {
                                0 => olds.push(j),
                                _ => news.push(j),
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`SourceMoves::reached`] of lowering `new` (of a table of `len` nodes): `None` when
    /// the moved items have too many distinct reaches.
    fn reached_bitmaps(&self, new: &Lowered, len: usize) -> Option<Reached> {
        if self.decided.is_empty() && self.assembled.is_empty() {
            return None;
        }
        let words = len.div_ceil(64);
        // What item `i` may reach: every node, and its reach list (by address, shared by
        // the items to one destination).
        let reach = |i: u32| -> (bool, Option<&Arc<[NodeId]>>) {
            let list = new
                .reach_lists
                .binary_search_by_key(&i, |(item, _)| *item)
                .ok()
                .and_then(|at| new.reach_lists.get(at))
                .map(|(_, ids)| ids);
            (new.global.binary_search(&i).is_ok(), list)
        };
        let fill = |bits: &mut Vec<u64>, (all, list): (bool, Option<&Arc<[NodeId]>>)| {
            if all {
                bits.fill(u64::MAX);
            }
            for &id in list.into_iter().flat_map(|ids| ids.iter()) {
                crate::bits::set_bit(bits, id);
            }
        };
        // Each distinct reach once (the items to one destination share its list, which
        // `new` holds for the whole event, so its address is its own): O(distinct reaches
        // of the moved items), no more than the verdicts would read without the bitmaps.
        let key = |(all, list): (bool, Option<&Arc<[NodeId]>>)| {
            (all, list.map_or(0, |ids| ids.as_ptr() as usize))
        };
        let mut assembled = vec![0u64; words];
        let mut filled: crate::hash::Set<(bool, usize)> = crate::hash::Set::default();
        for &i in &self.assembled {
            let r = reach(i);
            if filled.insert(key(r)) {
                fill(&mut assembled, r);
            }
        }
        let mut maps: Vec<Vec<u64>> = Vec::new();
        let mut by_reach: HashMap<(bool, usize), u32> = HashMap::default();
        let mut groups: Vec<Vec<u32>> = Vec::new();
        for &i in &self.decided {
            let r = reach(i);
            let at = match by_reach.get(&key(r)) {
                Some(&at) => at,
                // The bitmaps are bounded by count, not by the moved items (a leave moving
                // hundreds of items to a few dozen destinations had every node read its
                // thousand candidates' flags).
                None if maps.len() == REACHED_BITMAPS => return None,
                None => {
                    let mut bits = vec![0u64; words];
                    fill(&mut bits, r);
                    maps.push(bits);
                    groups.push(Vec::new());
                    let at = crate::nodes::index(maps.len() - 1);
                    by_reach.insert(key(r), at);
                    at
                }
            };
            if let Some(group) = groups.get_mut(at as usize) {
                group.push(i);
            }
        }
        Some(Reached {
            assembled,
            maps,
            groups,
        })
    }

    /// The logins of the owners whose untagged devices must be assembled (see the field).
    pub(crate) fn owners(&self) -> impl Iterator<Item = &str> + '_ {
        self.owners.iter().map(String::as_str)
    }

    /// Per item: its sources or destinations moved.
    pub(crate) fn any_moved(&self) -> Vec<bool> {
        self.moved
            .iter()
            .zip(&self.dst_moved)
            .map(|(&s, &d)| s || d)
            .collect()
    }
}
