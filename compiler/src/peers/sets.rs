//! The node sets peers are found from: each rule list's nodes interned once as a set (sorted
//! ids or a bit map), prepared on a second core while the rules are lowered.

use super::*;

/// A set of node ids, stored to suit its size. The form follows from the count alone
/// ([`NodeSet::from_bits`]), so two sets of the same nodes among as many are equal as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeSet {
    /// Every node.
    All,
    /// A few nodes, sorted.
    List(Vec<NodeId>),
    /// Many nodes, one bit each.
    Bits(Vec<u64>),
}

impl NodeSet {
    pub(super) fn from_bits(bits: Vec<u64>, len: usize) -> NodeSet {
        let count: usize = bits.iter().map(|w| w.count_ones() as usize).sum();
        if count == len && len > 0 {
            NodeSet::All
        } else if count.saturating_mul(32) > len {
            NodeSet::Bits(bits)
        } else {
            NodeSet::List(ids_of(&bits))
        }
    }

    /// The set of `ids` (in any order) among `len` nodes, through a bit map.
    pub(super) fn from_ids(ids: &[NodeId], len: usize) -> NodeSet {
        let mut bits = vec![0u64; len.div_ceil(64)];
        ids.iter().for_each(|&id| set_bit(&mut bits, id));
        NodeSet::from_bits(bits, len)
    }

    /// True if `id` is in the set.
    pub(crate) fn contains(&self, id: NodeId) -> bool {
        match self {
            NodeSet::All => true,
            NodeSet::List(ids) => ids.binary_search(&id).is_ok(),
            NodeSet::Bits(bits) => bit(bits, id),
        }
    }

    /// How many of the `len` nodes the set holds.
    pub(super) fn count(&self, len: usize) -> usize {
        match self {
            NodeSet::All => len,
            NodeSet::List(ids) => ids.len(),
            NodeSet::Bits(bits) => bits.iter().map(|w| w.count_ones() as usize).sum(),
        }
    }

    /// The set's members among the `len` nodes, ascending.
    pub(super) fn ids(&self, len: usize) -> Vec<NodeId> {
        match self {
            NodeSet::All => (0..len).map(NodeId::new).collect(),
            NodeSet::List(ids) => ids.clone(),
            NodeSet::Bits(bits) => ids_of(bits),
        }
    }

    /// Add the set's members to a bitmap.
    pub(crate) fn or_into(&self, bits: &mut [u64]) {
        match self {
            NodeSet::All => bits.iter_mut().for_each(|w| *w = u64::MAX),
            NodeSet::List(ids) => ids.iter().for_each(|&id| set_bit(bits, id)),
            NodeSet::Bits(more) => bits.iter_mut().zip(more).for_each(|(w, m)| *w |= m),
        }
    }
}

/// The set of `ids` (in any order, repeats allowed; ids past `len` dropped) among `len`
/// nodes, in the form [`NodeSet::from_bits`] gives it. A strictly ascending list is taken as
/// it is: listed when small, else its bits set; a short unsorted list is sorted; a long one
/// (a rule's sources from several groups: two million ids per compile on `large`) goes
/// through `scratch`, one bit per node, all clear before and after: O(ids + len / 64), not
/// O(ids log ids). A set kept as bits is the scratch map itself, replaced by a clear one.
pub(super) fn canonical(
    ids: std::borrow::Cow<'_, [NodeId]>,
    len: usize,
    scratch: &mut Vec<u64>,
) -> NodeSet {
    let ascending = ids.windows(2).all(|w| w.first() < w.get(1));
    let in_range = ids.last().is_none_or(|last| last.index() < len);
    if ascending && in_range {
        if ids.len().saturating_mul(32) <= len {
            return NodeSet::List(ids.into_owned());
        }
    } else if ids.len() < 256 {
        let mut sorted = ids.into_owned();
        sorted.retain(|id| id.index() < len);
        sorted.sort_unstable();
        sorted.dedup();
        return canonical(std::borrow::Cow::Owned(sorted), len, scratch);
    }
    ids.iter()
        .filter(|id| id.index() < len)
        .for_each(|&id| set_bit(scratch, id));
    take_bits(scratch, len)
}

/// The set whose bits are in `scratch` (all clear on return), in the form
/// [`NodeSet::from_bits`] gives it.
pub(super) fn take_bits(scratch: &mut Vec<u64>, len: usize) -> NodeSet {
    let count: usize = scratch.iter().map(|w| w.count_ones() as usize).sum();
    if count == len && len > 0 {
        scratch.fill(0);
        NodeSet::All
    } else if count.saturating_mul(32) > len {
        let words = scratch.len();
        NodeSet::Bits(std::mem::replace(scratch, vec![0; words]))
    } else {
        let mut out = Vec::with_capacity(count);
        push_ids(scratch, &mut out);
        scratch.fill(0);
        NodeSet::List(out)
    }
}

/// A hash of a set's value (equal sets, as [`canonical`] forms them, hash alike).
pub(super) fn set_hash(set: &NodeSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::hash::hasher();
    match set {
        NodeSet::All => 0u8.hash(&mut h),
        NodeSet::List(ids) => (1u8, ids).hash(&mut h),
        NodeSet::Bits(bits) => (2u8, bits).hash(&mut h),
    }
    h.finish()
}

/// A list the lowering made that the peer index will intern: a rule item's sources or its
/// destination nodes.
pub(crate) enum Listed {
    /// An item's source targets.
    Sources(Arc<[Target]>),
    /// An item's destination nodes.
    Nodes(Arc<[NodeId]>),
}

/// How many lists the lowering hands over at a time: a channel operation per item would be
/// on the lowering's path, which is the compile's longest.
pub(super) const BATCH: usize = 256;

/// The lists a lowering made so far, handed in batches to the thread that prepares their
/// sets ([`prepared_beside`]).
pub(crate) struct Lists<'a> {
    pub(super) sink: &'a std::sync::mpsc::Sender<Vec<Listed>>,
    pub(super) batch: Vec<Listed>,
}

impl Lists<'_> {
    /// An item's lists, when the item makes peers (the index asks for no other).
    pub(crate) fn item(&mut self, src_targets: &Arc<[Target]>, body: &Body, dst: &Reach) {
        if !matches!(body, Body::Net { .. } | Body::App { .. }) {
            return;
        }
        self.batch.push(Listed::Sources(src_targets.clone()));
        if let Reach::Some(ids) = dst {
            self.batch.push(Listed::Nodes(ids.clone()));
        }
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hand over what is listed. A send fails only when the preparing thread is gone: its
    /// sets are then prepared by the index itself.
    pub(super) fn flush(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.sink.send(std::mem::take(&mut self.batch));
        }
    }
}

impl Drop for Lists<'_> {
    /// The last batch, when the lowering is done (or gave up).
    fn drop(&mut self) {
        self.flush();
    }
}

/// Sets prepared while the rules were lowered, by their list's address and length; each
/// entry keeps its list alive, so that no other list takes the address.
#[derive(Default)]
pub(crate) struct Prepared {
    pub(super) sources: ByList<Target>,
    pub(super) nodes: ByList<NodeId>,
}

/// Prepared sets (with their hashes) by their list's address and length, each with its list.
pub(super) type ByList<T> = crate::hash::Map<(usize, usize), (Arc<[T]>, NodeSet, u64)>;

impl Prepared {
    /// The set prepared for `request`, taken out.
    pub(super) fn take(&mut self, request: &Request<'_>) -> Option<(NodeSet, u64)> {
        match request {
            Request::Sources(targets) => taken(&mut self.sources, targets),
            Request::Nodes(ids) => taken(&mut self.nodes, ids),
            Request::Star | Request::SelfSources(_) | Request::All => None,
        }
    }
}

/// A list's key in a [`ByList`]: its address and length.
pub(super) fn list_key<T>(list: &[T]) -> (usize, usize) {
    (list.as_ptr() as usize, list.len())
}

/// The set prepared for `list`, taken out of `map`.
pub(super) fn taken<T>(map: &mut ByList<T>, list: &[T]) -> Option<(NodeSet, u64)> {
    map.remove(&list_key(list))
        .map(|(_, set, hash)| (set, hash))
}

/// Prepare the set of `list` into `map` (by `prepare`), once per list.
pub(super) fn prepare_into<T>(
    map: &mut ByList<T>,
    list: Arc<[T]>,
    prepare: impl FnOnce(&[T]) -> (NodeSet, u64),
) {
    if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(list_key(&list)) {
        let (set, hash) = prepare(&list);
        slot.insert((list, set, hash));
    }
}

/// Run `lowering` (which hands its lists to the [`Lists`] it is given) on this thread, and
/// `beside` on another, which then prepares the sets of the lists the lowering made (those
/// it made meanwhile wait in a channel). The lowering is one core's work: the sets were
/// prepared after it, on both cores (6 ms of a member's join on `large`), while the second
/// core was idle for most of the lowering. A third thread preparing them as they come took
/// its time from the lowering. Without `beside_thread` (no second core, or a tailnet too
/// small to be worth a thread: [`crate::par::worth_threads`]), the lowering then `beside`,
/// and the index prepares every set itself. Sources that read `*` are left to the index, which finds
/// `*`'s nodes once.
pub(crate) fn prepared_beside<T: Send, U: Send>(
    beside_thread: bool,
    table: &NodeTable,
    lowering: impl FnOnce(Option<Lists<'_>>) -> T + Send,
    beside: impl FnOnce() -> U + Send,
) -> (T, U, Prepared) {
    if !beside_thread {
        let value = lowering(None);
        return (value, beside(), Prepared::default());
    }
    let (sink, batches) = std::sync::mpsc::channel::<Vec<Listed>>();
    // The caller's `tracing` subscriber (a scoped one is this thread's only) sees the other
    // core's phase too ([`crate::phases::SIDE`]).
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::scope(|scope| {
        let second = scope.spawn(move || {
            let other = tracing::dispatcher::with_default(&dispatch, beside);
            let b = Builder {
                table,
                star: Vec::new(),
            };
            let mut scratch = vec![0u64; table.len().div_ceil(64)];
            let mut out = Prepared::default();
            for listed in batches.iter().flatten() {
                match listed {
                    Listed::Sources(targets) if reads_star(&targets) => {}
                    Listed::Sources(targets) => prepare_into(&mut out.sources, targets, |t| {
                        b.prepare(&Request::Sources(t), &mut scratch)
                    }),
                    Listed::Nodes(ids) => prepare_into(&mut out.nodes, ids, |ids| {
                        b.prepare(&Request::Nodes(ids), &mut scratch)
                    }),
                }
            }
            (other, out)
        });
        let lists = Lists {
            sink: &sink,
            batch: Vec::with_capacity(BATCH),
        };
        let value = lowering(Some(lists));
        drop(sink);
        let (other, prepared) = second
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (value, other, prepared)
    })
}

/// A node set the index interns, in the order a walk of the items asks for it (so set ids
/// come out as one pass over the items gives them), or a self rule's sources (listed for the
/// self sources, not interned).
pub(super) enum Request<'a> {
    /// The nodes `*` stands for as a source.
    Star,
    /// The nodes some sources stand for.
    Sources(&'a [Target]),
    /// A self rule's sources.
    SelfSources(&'a [Target]),
    /// Destination nodes the lowering found.
    Nodes(&'a [NodeId]),
    /// Every node.
    All,
}

/// Finds the nodes of the index's sets; shared by the threads that prepare them.
pub(super) struct Builder<'a> {
    pub(super) table: &'a NodeTable,
    /// The nodes `*` stands for as a source (empty when no source is `*`).
    pub(super) star: Vec<NodeId>,
}

impl Builder<'_> {
    pub(super) fn all(&self) -> Vec<NodeId> {
        (0..self.table.len()).map(NodeId::new).collect()
    }

    /// Nodes `targets` stand for as sources. Each target's nodes come sorted: one list is
    /// taken as it is, two short ones merged (ascending, without repeats; the set will be
    /// listed, [`canonical`]); others are concatenated, and [`canonical`] gathers them in a
    /// bit map, O(nodes / 64) more, which a set kept as bits needs anyway. Two short lists
    /// concatenated went through a bit map of every node and were listed back from it, a
    /// scan of the whole map each (thousands per compile on `large`).
    pub(super) fn sources<'s>(&'s self, targets: &'s [Target]) -> std::borrow::Cow<'s, [NodeId]> {
        let mut parts: Vec<std::borrow::Cow<'_, [NodeId]>> = Vec::with_capacity(targets.len());
        for target in targets {
            match target {
                Target::Wildcard => parts.push(std::borrow::Cow::Borrowed(&self.star)),
                Target::DangerAll => return std::borrow::Cow::Owned(self.all()),
                Target::Nodes(ids) => parts.push(std::borrow::Cow::Borrowed(ids)),
                Target::Literal(lit) => {
                    parts.push(std::borrow::Cow::Owned(self.table.source_nodes(&lit.set)));
                }
                Target::Internet | Target::SelfDevices => {}
            }
        }
        parts.retain(|p| !p.is_empty());
        match parts.as_slice() {
            [] => std::borrow::Cow::Owned(Vec::new()),
            [_] => parts.pop().unwrap_or_default(),
            [a, b] if (a.len() + b.len()).saturating_mul(32) <= self.table.len() => {
                std::borrow::Cow::Owned(merge_unique(a, b))
            }
            _ => std::borrow::Cow::Owned(parts.concat()),
        }
    }

    /// A request's set ([`canonical`]) and its hash; a self rule's sources as found (they
    /// are not interned). Most lists come sorted, from the lowering's destinations and
    /// sources, and are not sorted again; a large set is kept as the bits it was gathered
    /// in, not listed and gathered again.
    pub(super) fn prepare(&self, request: &Request<'_>, scratch: &mut Vec<u64>) -> (NodeSet, u64) {
        use std::borrow::Cow;
        let len = self.table.len();
        let set = match request {
            Request::Star => canonical(Cow::Borrowed(&self.star), len, scratch),
            Request::Sources(targets) => canonical(self.sources(targets), len, scratch),
            Request::SelfSources(targets) => {
                return (NodeSet::List(self.sources(targets).into_owned()), 0)
            }
            Request::Nodes(ids) => canonical(Cow::Borrowed(ids), len, scratch),
            Request::All if len > 0 => NodeSet::All,
            Request::All => NodeSet::List(Vec::new()),
        };
        let hash = set_hash(&set);
        (set, hash)
    }
}

/// The nodes of two ascending lists, ascending, each once.
pub(crate) fn merge_unique(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
    debug_assert!(
        [a, b]
            .iter()
            .all(|l| l.windows(2).all(|w| w.first() < w.get(1))),
        "merged lists ascend"
    );
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => {
                out.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(a.get(i..).unwrap_or_default());
    out.extend_from_slice(b.get(j..).unwrap_or_default());
    out
}

/// The index's node sets, each kept once.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) sets: Vec<NodeSet>,
    /// Each set's node count.
    pub(super) counts: Vec<usize>,
    /// Each set's id by its content hash (more than one for colliding sets).
    pub(super) ids: crate::hash::Map<u64, Vec<u32>>,
}

impl Interner {
    /// The id of the set `set` ([`canonical`]) whose hash is `hash`, among `len` nodes.
    pub(super) fn intern(&mut self, set: NodeSet, hash: u64, len: usize) -> u32 {
        let sets = &self.sets;
        let found = self.ids.get(&hash).and_then(|candidates| {
            candidates
                .iter()
                .copied()
                .find(|&c| sets.get(c as usize).is_some_and(|s| *s == set))
        });
        if let Some(id) = found {
            return id;
        }
        let id = crate::nodes::index(self.sets.len());
        self.counts.push(set.count(len));
        self.sets.push(set);
        self.ids.entry(hash).or_default().push(id);
        id
    }
}
