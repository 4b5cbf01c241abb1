//! Which rule items two lowerings of the same node table share: how the access diff and the
//! engine's policy events skip every node that no changed item reaches, without assembling
//! its packet filter (the diff compares content; the engine, which must match the wire,
//! also pairs items in order with their merge slots).
//!
//! A node's packet filter, read as access (the union of what its rules admit, whatever their
//! order and merging), is a function of the node and the *content* of the items that reach
//! it. Items are compared by content, never by position: a rule added at the top shifts every
//! index and slot, which reorders rules on the wire but grants nothing.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Body, Item, Lowered, Reach};
use crate::bits::set_bit;
use crate::nodes::{NodeId, NodeTable};
use crate::resolve::Target;
use crate::wire::CapMap;

/// Per item of each lowering: true when the other has no item with the same content.
#[derive(Debug)]
pub(crate) struct ChangedItems {
    /// Per item of the old lowering.
    pub(crate) old: Vec<bool>,
    /// Per item of the new lowering.
    pub(crate) new: Vec<bool>,
}

impl ChangedItems {
    /// True when no item changed.
    pub(crate) fn is_empty(&self) -> bool {
        !self.old.iter().chain(&self.new).any(|&c| c)
    }
}

/// Compare two lowerings item by item, by content. O(items) expected (hashing), plus the
/// items' sizes.
pub(crate) fn changed_items(old: &Lowered, new: &Lowered) -> ChangedItems {
    ChangedItems {
        old: missing_from(old, new),
        new: missing_from(new, old),
    }
}

/// Compare two lowerings for the wire: an item counts as unchanged only when it pairs with an
/// equal item of the other lowering (occurrences pair up in order) whose merge slot is held
/// by the partner of its own slot holder, and paired items keep their relative order (else
/// every item counts as changed). A node reached by no changed item then receives the same
/// rules in the same order, merged the same way, *provided* the nodes of
/// [`Lowered::mark_claims`] are marked too.
pub(crate) fn changed_items_wire(old: &Lowered, new: &Lowered) -> WireComparison {
    // The pairing a policy event's index made for these two lowerings, else made here.
    let made = new
        .paired
        .lock()
        .ok()
        .and_then(|mut p| p.take())
        .filter(|(at, pair)| *at == old.items.as_ptr() as usize && pair.len() == old.items.len())
        .map(|(_, pair)| pair);
    debug_assert!(
        made.as_ref().is_none_or(|p| *p == pair_items(old, new)),
        "the pairing a policy event's index made is the one made here"
    );
    let pair = made.unwrap_or_else(|| pair_items(old, new));
    WireComparison {
        changed: wire_changes(old, new, &pair),
        unpaired: unpaired(new, &pair),
    }
}

/// Two lowerings compared for the wire ([`changed_items_wire`]), with the pairing of equal
/// items it rests on.
pub(crate) struct WireComparison {
    /// The items that count as changed on the wire.
    pub(crate) changed: ChangedItems,
    /// The items with no equal partner ([`unpaired`]).
    pub(crate) unpaired: ChangedItems,
}

/// [`changed_items_wire`] from the pairing of equal items.
fn wire_changes(old: &Lowered, new: &Lowered, pair: &[Option<u32>]) -> ChangedItems {
    let everything = ChangedItems {
        old: vec![true; old.items.len()],
        new: vec![true; new.items.len()],
    };
    let mut last = None;
    for &j in pair.iter().flatten() {
        if last.is_some_and(|l| l > j) {
            return everything;
        }
        last = Some(j);
    }
    let mut changed = ChangedItems {
        old: pair.iter().map(Option::is_none).collect(),
        new: vec![true; new.items.len()],
    };
    for (i, &p) in pair.iter().enumerate() {
        let Some(j) = p else { continue };
        let (Some(a), Some(b)) = (old.items.get(i), new.items.get(j as usize)) else {
            return everything;
        };
        let slot_pairs = pair.get(a.slot as usize).copied().flatten() == Some(b.slot);
        if let Some(c) = changed.new.get_mut(j as usize) {
            *c = !slot_pairs;
        }
        if let Some(c) = changed.old.get_mut(i) {
            *c = !slot_pairs;
        }
    }
    changed
}

/// The items of each lowering with no equal partner in the other, pairing equal items one to
/// one (so a rule written twice where it was once leaves one unpaired). What paired items put
/// in a node's filter is the same in both; only order and merging may differ.
fn unpaired(new: &Lowered, pair: &[Option<u32>]) -> ChangedItems {
    let mut new_unpaired = vec![true; new.items.len()];
    for &j in pair.iter().flatten() {
        if let Some(u) = new_unpaired.get_mut(j as usize) {
            *u = false;
        }
    }
    ChangedItems {
        old: pair.iter().map(Option::is_none).collect(),
        new: new_unpaired,
    }
}

/// Per old item, the new item it pairs with: equal content, occurrences paired in order.
pub(super) fn pair_items(old: &Lowered, new: &Lowered) -> Vec<Option<u32>> {
    let mut pending: HashMap<u64, Vec<u32>> = HashMap::with_capacity(new.items.len());
    let mut caps = CapsHashes::default();
    for (j, item) in new.items.iter().enumerate().rev() {
        pending
            .entry(content_hash(new, item, &mut caps))
            .or_default()
            .push(crate::nodes::index(j));
    }
    let mut memo = Memo::default();
    let mut pair: Vec<Option<u32>> = vec![None; old.items.len()];
    for (i, item) in old.items.iter().enumerate() {
        let Some(candidates) = pending.get_mut(&content_hash(old, item, &mut caps)) else {
            continue;
        };
        // The first unpaired equal item (candidates are kept last-first).
        let found = candidates.iter().rposition(|&j| {
            new.items
                .get(j as usize)
                .is_some_and(|other| memo.same_item(old, item, new, other))
        });
        if let (Some(pos), Some(slot)) = (found, pair.get_mut(i)) {
            *slot = Some(candidates.remove(pos));
        }
    }
    pair
}

/// Per item of `a`: true when `b` has no item equal to it.
fn missing_from(a: &Lowered, b: &Lowered) -> Vec<bool> {
    let mut by_hash: HashMap<u64, Vec<u32>> = HashMap::with_capacity(b.items.len());
    let mut caps = CapsHashes::default();
    for (i, item) in b.items.iter().enumerate() {
        by_hash
            .entry(content_hash(b, item, &mut caps))
            .or_default()
            .push(crate::nodes::index(i));
    }
    let mut memo = Memo::default();
    a.items
        .iter()
        .map(|item| {
            let found = by_hash
                .get(&content_hash(a, item, &mut caps))
                .is_some_and(|ids| {
                    ids.iter().any(|&j| {
                        b.items
                            .get(j as usize)
                            .is_some_and(|other| memo.same_item(a, item, b, other))
                    })
                });
            !found
        })
        .collect()
}

/// A hash of what an item contributes to a node, with no position in it (slots, item and
/// `SrcIPs` ids are left out). Long lists (node ids, source strings) are hashed by length
/// and ends only: equality is decided exactly afterwards, and hashing whole lists would
/// cost the size of every item's sources and destinations.
fn content_hash(lowered: &Lowered, item: &Item, caps_hashes: &mut CapsHashes) -> u64 {
    let mut h = crate::hash::hasher();
    // By length and ends too: a rule's items share one source list, so hashing it whole
    // would cost sources x destinations for one wide rule.
    item.src_targets.len().hash(&mut h);
    for t in item
        .src_targets
        .first()
        .into_iter()
        .chain(item.src_targets.last())
    {
        hash_target(t, &mut h);
    }
    hash_ends(lowered.srcs.slice(item.src), &mut h);
    item.via.hash(&mut h);
    std::mem::discriminant(&item.body).hash(&mut h);
    match &item.body {
        Body::Net { proto, dst, ports } => {
            proto.hash(&mut h);
            hash_target(dst, &mut h);
            ports.hash(&mut h);
        }
        Body::SelfNet { proto, ports } => {
            proto.hash(&mut h);
            ports.hash(&mut h);
        }
        Body::App { dsts, caps } => {
            dsts.iter().for_each(|t| hash_target(t, &mut h));
            caps_hashes.of(caps).hash(&mut h);
        }
        Body::SelfApp { caps } | Body::SelfCompanion { caps } => {
            caps_hashes.of(caps).hash(&mut h);
        }
        Body::Companion { caps, src_ips } => {
            caps_hashes.of(caps).hash(&mut h);
            hash_ends(lowered.srcs.slice(*src_ips), &mut h);
        }
    }
    h.finish()
}

/// Each capability map's hash, names and values, once per map (a grant's items share its
/// map). Hashing the names alone put grants whose capabilities differ only in value in one
/// bucket, compared pair by pair: 16,000 such grants took 35 s to diff.
#[derive(Default)]
struct CapsHashes(HashMap<usize, u64>);

impl CapsHashes {
    /// The hash of `caps` (held by the lowerings compared, so no other map takes its
    /// address meanwhile).
    fn of(&mut self, caps: &Arc<CapMap>) -> u64 {
        *self.0.entry(Arc::as_ptr(caps) as usize).or_insert_with(|| {
            let mut h = crate::hash::hasher();
            for (name, value) in caps.iter() {
                name.hash(&mut h);
                // Equal values write the same text (objects are ordered maps).
                serde_json::to_string(value)
                    .unwrap_or_default()
                    .hash(&mut h);
            }
            h.finish()
        })
    }
}

fn hash_ends<T: Hash>(list: &[T], h: &mut impl Hasher) {
    list.len().hash(h);
    list.first().hash(h);
    list.last().hash(h);
}

fn hash_target(target: &Target, h: &mut impl Hasher) {
    std::mem::discriminant(target).hash(h);
    match target {
        Target::Nodes(ids) => hash_ends(ids, h),
        Target::Literal(lit) => {
            lit.pieces.len().hash(h);
            lit.pieces.first().map(|p| &p.text).hash(h);
        }
        _ => {}
    }
}

/// Equality of items across two lowerings, memoised where lists are shared: `SrcIPs` by id
/// pair, node lists and a rule's source targets by address pair (both lowerings are alive,
/// so addresses are not reused).
#[derive(Default)]
struct Memo {
    srcs: HashMap<(u32, u32), bool>,
    nodes: HashMap<(usize, usize), bool>,
    sources: HashMap<(usize, usize), bool>,
}

impl Memo {
    /// True when two items (of lowerings `la` and `lb`) contribute the same to every node.
    fn same_item(&mut self, la: &Lowered, a: &Item, lb: &Lowered, b: &Item) -> bool {
        let body = match (&a.body, &b.body) {
            (
                Body::Net { proto, dst, ports },
                Body::Net {
                    proto: p2,
                    dst: d2,
                    ports: q2,
                },
            ) => proto == p2 && ports == q2 && self.same_target(dst, d2),
            (
                Body::SelfNet { proto, ports },
                Body::SelfNet {
                    proto: p2,
                    ports: q2,
                },
            ) => proto == p2 && ports == q2,
            (Body::App { dsts, caps }, Body::App { dsts: d2, caps: c2 }) => {
                caps == c2 && self.same_targets(dsts, d2)
            }
            (Body::SelfApp { caps }, Body::SelfApp { caps: c2 })
            | (Body::SelfCompanion { caps }, Body::SelfCompanion { caps: c2 }) => caps == c2,
            (
                Body::Companion { caps, src_ips },
                Body::Companion {
                    caps: c2,
                    src_ips: s2,
                },
            ) => caps == c2 && self.same_srcs(la, *src_ips, lb, *s2),
            _ => false,
        };
        body && a.via == b.via
            && self.same_sources(&a.src_targets, &b.src_targets)
            && self.same_srcs(la, a.src, lb, b.src)
    }

    /// Two items' source targets, compared once per pair of shared lists (every item of a
    /// rule holds the rule's list).
    fn same_sources(&mut self, a: &[Target], b: &[Target]) -> bool {
        let key = (a.as_ptr() as usize, b.as_ptr() as usize);
        if let Some(&same) = self.sources.get(&key) {
            return same;
        }
        let same = self.same_targets(a, b);
        self.sources.insert(key, same);
        same
    }

    fn same_srcs(&mut self, la: &Lowered, a: u32, lb: &Lowered, b: u32) -> bool {
        *self
            .srcs
            .entry((a, b))
            .or_insert_with(|| super::same_strings(la.srcs.slice(a), lb.srcs.slice(b)))
    }

    fn same_targets(&mut self, a: &[Target], b: &[Target]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| self.same_target(x, y))
    }

    fn same_target(&mut self, a: &Target, b: &Target) -> bool {
        match (a, b) {
            (Target::Nodes(x), Target::Nodes(y)) => *self
                .nodes
                .entry((x.as_ptr() as usize, y.as_ptr() as usize))
                .or_insert_with(|| x == y),
            _ => a == b,
        }
    }
}

impl Lowered {
    /// Nodes (one bit each) that a changed item may reach, by the index of each lowering:
    /// the nodes whose filter, read as access, may differ. `changed` is this lowering's half
    /// of a [`ChangedItems`].
    /// Read from the changed items' own node lists (the index per node is their transpose):
    /// O(items + the changed items' nodes), where a walk of every node's list read 23
    /// million entries on `large`, twice per node event that changes how rules merge.
    pub(crate) fn mark_reached(&self, table: &NodeTable, changed: &[bool], bits: &mut [u64]) {
        #[cfg(debug_assertions)]
        let walked = {
            let mut walked = bits.to_vec();
            mark_reached(
                table,
                &self.by_node,
                &self.global,
                &self.self_items,
                changed,
                &mut walked,
            );
            walked
        };
        let is = |i: &u32| changed.get(*i as usize).copied().unwrap_or(false);
        if self.global.iter().any(is) {
            bits.iter_mut().for_each(|w| *w = u64::MAX);
        } else {
            if self.self_items.iter().any(is) {
                table.untagged.iter().for_each(|&id| set_bit(bits, id));
            }
            for (_, ids) in self.reach_lists.iter().filter(|(i, _)| is(i)) {
                ids.iter().for_each(|&id| set_bit(bits, id));
            }
        }
        #[cfg(debug_assertions)]
        debug_assert_eq!(walked, bits, "marked from the items' lists as by the walk");
        // An exit node receives every network item without `via` whatever its destination
        // nodes ([`Lowered::candidates`]), and any changed item may move those items' slots.
        if self.spread_exits && !table.exits.is_empty() && changed.iter().any(|&c| c) {
            table.exits.iter().for_each(|&id| set_bit(bits, id));
        }
    }

    /// The nodes, beyond those a changed item reaches, whose rules a changed network item may
    /// reorder or merge differently (for [`changed_items_wire`]): with `autogroup:self` items
    /// in the policy, the devices of the owner of its first source address (a user's self
    /// rule merges into the first item whose sources are exactly the user's devices, wherever
    /// that item applies; such an item's first source is one of them); for a `via` item, the
    /// nodes carrying its tags (it claims its key's slot there even where it grants nothing).
    pub(crate) fn mark_claims(&self, table: &NodeTable, changed: &[bool], bits: &mut [u64]) {
        let selves = !self.self_items.is_empty();
        for (item, _) in self.items.iter().zip(changed).filter(|(_, &c)| c) {
            if !matches!(item.body, Body::Net { .. }) {
                continue;
            }
            if selves {
                let owner = super::first_owner(table, self.srcs.slice(item.src));
                for &device in owner
                    .and_then(|u| table.devices.get(u.index()))
                    .into_iter()
                    .flatten()
                {
                    set_bit(bits, device);
                }
            }
            for tag in item.via.iter().flat_map(|tags| tags.iter()) {
                table.with_tag(tag).iter().for_each(|id| set_bit(bits, *id));
            }
        }
    }

    /// Nodes (one bit each) whose peers a changed item may change: the source and
    /// destination nodes of changed items that grant access; for a changed `autogroup:self`
    /// item, every user-owned node. A peer relation comes from one item's two sides, so a
    /// node on neither side of any changed item keeps its peers.
    pub(crate) fn mark_peer_sides(&self, table: &NodeTable, changed: &[bool], bits: &mut [u64]) {
        let star = &self.star_set;
        // A rule's items share one source list: marked once, not once per destination.
        let mut marked = std::collections::HashSet::new();
        for (item, _) in self
            .items
            .iter()
            .zip(changed)
            .filter(|(_, &changed)| changed)
        {
            match &item.body {
                Body::Net { .. } | Body::App { .. } => {}
                Body::SelfNet { .. } | Body::SelfApp { .. } => {
                    for (n, node) in table.nodes.iter().enumerate() {
                        if node.owner.is_some() {
                            set_bit(bits, NodeId::new(n));
                        }
                    }
                    continue;
                }
                Body::Companion { .. } | Body::SelfCompanion { .. } => continue,
            }
            if marked.insert(item.src_targets.as_ptr() as usize) {
                for target in item.src_targets.iter() {
                    mark_sources(table, target, star, bits);
                }
            }
            match &item.dst_nodes {
                Reach::All => {
                    bits.iter_mut().for_each(|w| *w = u64::MAX);
                    return;
                }
                Reach::Some(ids) => ids.iter().for_each(|id| set_bit(bits, *id)),
            }
        }
    }

    /// True when `*` as a source means the same in both lowerings.
    pub(crate) fn same_star(&self, other: &Lowered) -> bool {
        self.star == other.star
    }
}

/// Set the bit of every node an index reaches with a changed entry: `by_node` per node,
/// `global` every node, `selves` every untagged node (`autogroup:self`). Shared by the packet
/// filter's items and the SSH rules, which are indexed alike.
pub(crate) fn mark_reached(
    table: &NodeTable,
    by_node: &crate::pernode::ItemIndex,
    global: &[u32],
    selves: &[u32],
    changed: &[bool],
    bits: &mut [u64],
) {
    let is = |i: &u32| changed.get(*i as usize).copied().unwrap_or(false);
    if global.iter().any(is) {
        bits.iter_mut().for_each(|w| *w = u64::MAX);
        return;
    }
    let selves = selves.iter().any(is);
    for (n, entries) in by_node.iter().enumerate() {
        let untagged = selves && table.get(NodeId::new(n)).is_some_and(|x| !x.is_tagged());
        if untagged || entries.iter().any(|i| is(&i)) {
            set_bit(bits, NodeId::new(n));
        }
    }
}

/// Set the bits of the nodes a source target stands for (as the peer index counts them:
/// devices with an address in it and routers whose routes overlap it).
fn mark_sources(
    table: &NodeTable,
    target: &Target,
    star: &crate::addrset::AddrSet,
    bits: &mut [u64],
) {
    let ids = match target {
        Target::Wildcard => table.source_nodes(star),
        Target::DangerAll => {
            bits.iter_mut().for_each(|w| *w = u64::MAX);
            return;
        }
        Target::Nodes(ids) => ids.to_vec(),
        Target::Literal(lit) => table.source_nodes(&lit.set),
        Target::Internet | Target::SelfDevices => Vec::new(),
    };
    ids.iter().for_each(|id| set_bit(bits, *id));
}
