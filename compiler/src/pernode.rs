//! Per-node lists of item indexes in flat arrays: which rule items and SSH rules may reach
//! each node. Built once per compile by counting, in place of a growable vector per node
//! (100,000 on `large`), whose reallocations, scattered writes and frees cost a tenth of a
//! compile; and patched by an engine event (the arrays shared with the previous snapshot, the
//! changed nodes' lists added), in place of a rebuild of every node's list; and renumbered
//! by a policy event through a map per array, in place of a copy of every entry.

use std::sync::Arc;

use crate::nodes::NodeId;

/// For each node, the items that may reach it, ascending. A clone copies the spans and
/// shares the arrays.
/// Entries are `E`: `u32`, or `u16` for the item indexes of a policy with at most 65,536 items
/// ([`ItemIndex`]), which halves the largest index of a compile (23 million entries on
/// `large`).
#[derive(Debug, Clone, Default)]
pub(crate) struct PerNode<E = u32> {
    /// Where each node's list is.
    spans: Vec<Span>,
    /// The arrays the lists are in: one when built, one more per patch (an engine event's
    /// compile shares the earlier arrays and adds its changed nodes' lists).
    segments: Vec<Segment<E>>,
}

/// One array of lists, and what its entries stand for now.
#[derive(Debug, Clone)]
struct Segment<E> {
    entries: Arc<Vec<E>>,
    /// Each stored entry's value now (`u32::MAX`: gone), when items were renumbered after
    /// the array was filled ([`PerNode::remapped`]); `None`: the entries as stored. Ascending
    /// over the values no list in use maps to `u32::MAX`, so a list stays ascending.
    map: Option<Arc<[u32]>>,
}

impl<E> Segment<E> {
    /// An array whose entries stand for themselves.
    fn plain(entries: Vec<E>) -> Segment<E> {
        Segment {
            entries: Arc::new(entries),
            map: None,
        }
    }
}

/// `v` through `map` (itself without one; `u32::MAX` past its end).
fn through(map: Option<&[u32]>, v: u32) -> u32 {
    match map {
        None => v,
        Some(m) => m.get(v as usize).copied().unwrap_or(u32::MAX),
    }
}

/// One node's list: its stored entries and the map they are read through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List<'a, E> {
    entries: &'a [E],
    map: Option<&'a [u32]>,
}

impl<'a, E: Entry> List<'a, E> {
    /// A list read as stored.
    pub(crate) fn plain(entries: &'a [E]) -> List<'a, E> {
        List { entries, map: None }
    }

    /// How many entries.
    pub(crate) fn len(self) -> usize {
        self.entries.len()
    }

    /// The values in order.
    pub(crate) fn iter(self) -> impl ExactSizeIterator<Item = u32> + Clone + 'a {
        let map = self.map;
        self.entries.iter().map(move |&v| through(map, v.to_u32()))
    }

    /// True when `i` is one of them (a binary search: a list stays ascending through its map).
    pub(crate) fn contains(self, i: u32) -> bool {
        match self.map {
            None => E::from_u32(i).is_some_and(|i| self.entries.binary_search(&i).is_ok()),
            Some(m) => self
                .entries
                .binary_search_by(|&v| through(Some(m), v.to_u32()).cmp(&i))
                .is_ok(),
        }
    }

    /// True when both are the same memory read through the same map.
    fn same_memory(self, other: List<'_, E>) -> bool {
        std::ptr::eq(self.entries, other.entries)
            && match (self.map, other.map) {
                (None, None) => true,
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                _ => false,
            }
    }
}

/// What a [`PerNode`] list holds: an index, stored in `u32` or `u16`.
pub(crate) trait Entry:
    Copy + Default + Ord + Send + Sync + std::fmt::Debug + 'static
{
    /// `v` as an entry, if it fits.
    fn from_u32(v: u32) -> Option<Self>;
    /// The entry's value.
    fn to_u32(self) -> u32;
}

impl Entry for u32 {
    fn from_u32(v: u32) -> Option<u32> {
        Some(v)
    }
    fn to_u32(self) -> u32 {
        self
    }
}

impl Entry for u16 {
    fn from_u32(v: u32) -> Option<u16> {
        u16::try_from(v).ok()
    }
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
}

/// Where a node's list is: `segments[segment][start..start + len]`.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    len: u32,
    segment: u32,
}

/// Patches at most this many arrays deep; the next patch then gathers every array but the
/// first (the one built) into one.
const MAX_SEGMENTS: usize = 16;

/// [`PerNode::remapped`] declines when more than this share (one in `STALE_SHARE`) of the
/// arrays' entries would be lists no node uses.
const STALE_SHARE: usize = 8;

/// Changed nodes beyond which [`PerNode::patched_with`] declines (the lists are built afresh).
const MAX_CHANGED: usize = 256;

impl<E: Entry> PerNode<E> {
    /// Empty lists for `nodes` nodes.
    pub(crate) fn empty(nodes: usize) -> PerNode<E> {
        PerNode {
            spans: vec![Span::default(); nodes],
            segments: Vec::new(),
        }
    }

    /// The lists of `nodes` nodes from each item's nodes, the items in ascending order (as
    /// they are numbered). An item that names a node twice is listed once; ids past `nodes`
    /// are ignored. Two passes over the lists: O(nodes + sum of their lengths). When every
    /// list is ascending (the lowering's and the peer sets' are), the second pass fills the
    /// lists block of nodes by block ([`BLOCK`]), so its writes stay in the cache.
    pub(crate) fn from_lists<'a, I>(nodes: usize, lists: I) -> PerNode<E>
    where
        I: Iterator<Item = (u32, &'a [NodeId])> + Clone,
    {
        let lists: Vec<(u32, &'a [NodeId])> = lists.collect();
        let (starts, order) = counted_and_ordered(nodes, &lists);
        let (ends, entries) = match order {
            Order::Unordered => filled(&starts, pairs_of(&lists)),
            Order::Ascending => filled_by_block(&starts, &lists, BLOCK, false),
            Order::Unique => filled_by_block(&starts, &lists, BLOCK, true),
        };
        Self::from_filled(&starts, &ends, entries)
    }

    /// The lists from `(node, item)` pairs given in ascending item order; see
    /// [`PerNode::from_lists`].
    pub(crate) fn from_pairs<I>(nodes: usize, pairs: I) -> PerNode<E>
    where
        I: Iterator<Item = (NodeId, u32)> + Clone,
    {
        let starts = counted(nodes, pairs.clone());
        let (ends, entries) = filled(&starts, pairs);
        Self::from_filled(&starts, &ends, entries)
    }

    /// The lists once filled: node `n`'s is `entries[starts[n]..ends[n]]` (a repeated pair
    /// leaves its slot unused at the end of the node's list).
    fn from_filled(starts: &[usize], ends: &[usize], entries: Vec<E>) -> PerNode<E> {
        let spans = starts
            .iter()
            .zip(ends)
            .map(|(&start, &end)| Span {
                start,
                len: u32::try_from(end - start).unwrap_or(u32::MAX),
                segment: 0,
            })
            .collect();
        PerNode {
            spans,
            segments: vec![Segment::plain(entries)],
        }
    }

    /// These lists after a change to some nodes that left every other node's list as it was:
    /// node `n`'s list is the list here of `kept[n]`, or (for a node `kept` says nothing of)
    /// its list in `fresh` (given in ascending node order). The arrays are shared, the
    /// changed nodes' lists added in one more: O(nodes + their lists' length). Once the
    /// patches are [`MAX_SEGMENTS`] arrays deep, the lists in every array but the first
    /// (the patches' lists still used) are copied into the new one with the changed nodes':
    /// O(nodes + the patched lists' length), where building afresh copies every list (23
    /// million entries on `large`, once every 16 events). `None` when `fresh` misses a node,
    /// or a third of the arrays is lists no node uses any more: build the lists afresh then.
    pub(crate) fn patched(
        &self,
        kept: &[Option<NodeId>],
        fresh: &[(usize, Vec<u32>)],
    ) -> Option<PerNode<E>> {
        let gather = self.segments.len() >= MAX_SEGMENTS;
        let base = match gather {
            true => self.segments.get(..1)?,
            false => &self.segments[..],
        };
        let segment = u32::try_from(base.len()).ok()?;
        let mut added: Vec<E> = Vec::with_capacity(fresh.iter().map(|(_, l)| l.len()).sum());
        let mut fresh = fresh.iter();
        let mut spans = Vec::with_capacity(kept.len());
        for (n, old) in kept.iter().enumerate() {
            let span = match old {
                Some(old) => {
                    let span = *self.spans.get(old.index())?;
                    match gather && span.segment >= segment {
                        true => {
                            let list = self.list(old.index());
                            let moved = Span {
                                start: added.len(),
                                len: span.len,
                                segment,
                            };
                            match list.map {
                                None => added.extend_from_slice(list.entries),
                                Some(_) => {
                                    for v in list.iter() {
                                        added.push(E::from_u32(v)?);
                                    }
                                }
                            }
                            moved
                        }
                        false => span,
                    }
                }
                None => {
                    let (_, list) = fresh.next().filter(|(at, _)| *at == n)?;
                    let span = Span {
                        start: added.len(),
                        len: u32::try_from(list.len()).ok()?,
                        segment,
                    };
                    for &v in list {
                        added.push(E::from_u32(v)?);
                    }
                    span
                }
            };
            spans.push(span);
        }
        if fresh.next().is_some() {
            return None;
        }
        let mut segments = base.to_vec();
        segments.push(Segment::plain(added));
        let held: usize = segments.iter().map(|s| s.entries.len()).sum();
        let used: usize = spans.iter().map(|s| s.len as usize).sum();
        if held.saturating_sub(used) > held / 3 {
            return None;
        }
        Some(PerNode { spans, segments })
    }

    /// [`PerNode::patched`] with each changed node's list made by `list_of` (ascending):
    /// `None` also when more than [`MAX_CHANGED`] nodes changed, as each list is found by a
    /// search through every item.
    pub(crate) fn patched_with(
        &self,
        kept: &[Option<NodeId>],
        list_of: impl Fn(NodeId) -> Vec<u32>,
    ) -> Option<PerNode<E>> {
        let changed: Vec<usize> = kept
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_none())
            .map(|(n, _)| n)
            .take(MAX_CHANGED + 1)
            .collect();
        if changed.len() > MAX_CHANGED {
            return None;
        }
        let fresh: Vec<(usize, Vec<u32>)> = changed
            .into_iter()
            .map(|n| (n, list_of(NodeId::new(n))))
            .collect();
        self.patched(kept, &fresh)
    }

    /// These lists after a change to some nodes that also renumbered the items (a rule's
    /// items vanished or appeared): node `n`'s list is the list here of `kept[n]`, each item
    /// renumbered by `to_new` (`u32::MAX`: gone), with the items of `added` (`(node, item)`,
    /// ascending) that reach it; or, for a node `kept` says nothing of, `list_of` it. One
    /// pass over the lists, on two cores: O(nodes + the lists' length), where building them
    /// afresh from every item's nodes scatters each entry (two fifths of such an event on
    /// `large`). `None` when more than [`MAX_CHANGED`] nodes changed.
    ///
    /// `dropped` has a bit per node here whose list holds an item that is gone (a list
    /// without one is renumbered entry for entry, in a loop without branches).
    pub(crate) fn renumbered<F: Entry>(
        &self,
        kept: &[Option<NodeId>],
        (to_new, dropped): (&[u32], &[u64]),
        added: &[(NodeId, u32)],
        list_of: impl Fn(NodeId) -> Vec<u32> + Sync,
    ) -> Option<PerNode<F>> {
        if kept
            .iter()
            .filter(|k| k.is_none())
            .nth(MAX_CHANGED)
            .is_some()
        {
            return None;
        }
        let monotone = keeps_order(to_new);
        // Every entry written fits `F` (`list_of`'s are checked as they come).
        let fits = |j: u32| j == u32::MAX || F::from_u32(j).is_some();
        if !to_new.iter().all(|&j| fits(j)) || !added.iter().all(|&(_, i)| fits(i)) {
            return None;
        }
        let to_f = |j: u32| F::from_u32(j).unwrap_or_default();
        // The lists of nodes `range`, in one array (spans relative to it).
        let build = |range: std::ops::Range<usize>| -> Option<(Vec<Span>, Vec<F>)> {
            let mut spans = Vec::with_capacity(range.len());
            let first = added.partition_point(|(id, _)| id.index() < range.start);
            let last = added.partition_point(|(id, _)| id.index() < range.end);
            let size: usize = kept
                .get(range.clone())
                .unwrap_or_default()
                .iter()
                .flatten()
                .map(|old| self.list(old.index()).len())
                .sum();
            let mut out: Vec<F> = Vec::with_capacity(size + last.saturating_sub(first));
            let mut adds = added.get(first..last).unwrap_or_default();
            let mut scratch = Vec::new();
            for n in range {
                let start = out.len();
                let mine = adds.partition_point(|(id, _)| id.index() == n);
                let (here, rest) = adds.split_at(mine);
                adds = rest;
                match kept.get(n).copied().flatten() {
                    Some(old) => {
                        let list = self.list(old.index());
                        let mapped = list
                            .iter()
                            .filter_map(|i| to_new.get(i as usize).copied())
                            .filter(|&j| j != u32::MAX);
                        let whole = !crate::bits::bit(dropped, old);
                        if here.is_empty() && monotone && whole {
                            // Every item kept: one entry each (an exact-size loop).
                            let map = |i: u32| to_new.get(i as usize).copied();
                            out.extend(list.iter().map(|i| to_f(map(i).unwrap_or(u32::MAX))));
                        } else if monotone {
                            // Both ascending: merged.
                            let mut adds = here.iter().map(|&(_, i)| i).peekable();
                            for j in mapped {
                                while let Some(a) = adds.next_if(|&a| a <= j) {
                                    if a < j {
                                        out.push(to_f(a));
                                    }
                                }
                                out.push(to_f(j));
                            }
                            out.extend(adds.map(to_f));
                        } else {
                            scratch.clear();
                            scratch.extend(mapped);
                            scratch.extend(here.iter().map(|&(_, i)| i));
                            scratch.sort_unstable();
                            scratch.dedup();
                            out.extend(scratch.iter().map(|&j| to_f(j)));
                        }
                    }
                    None => {
                        for j in list_of(NodeId::new(n)) {
                            out.push(F::from_u32(j)?);
                        }
                    }
                }
                spans.push(Span {
                    start,
                    len: u32::try_from(out.len() - start).unwrap_or(u32::MAX),
                    segment: 0,
                });
            }
            Some((spans, out))
        };
        let half = kept.len() / 2;
        let (first, second) = crate::par::join_if(
            kept.len() > 4096,
            || build(0..half),
            || build(half..kept.len()),
        );
        let ((mut spans, first), (rest, second)) = (first?, second?);
        spans.extend(rest.into_iter().map(|s| Span { segment: 1, ..s }));
        Some(PerNode {
            spans,
            segments: vec![Segment::plain(first), Segment::plain(second)],
        })
    }

    /// [`PerNode::renumbered`] into an [`ItemIndex`] of the width `narrow` says.
    fn renumbered_index(
        &self,
        narrow: bool,
        kept: &[Option<NodeId>],
        moved: (&[u32], &[u64]),
        added: &[(NodeId, u32)],
        list_of: impl Fn(NodeId) -> Vec<u32> + Sync,
    ) -> Option<ItemIndex> {
        Some(match narrow {
            true => ItemIndex::Narrow(self.renumbered(kept, moved, added, list_of)?),
            false => ItemIndex::Wide(self.renumbered(kept, moved, added, list_of)?),
        })
    }

    /// [`PerNode::renumbered`] without copying the lists that only moved: each array is
    /// kept and read through its map composed with `to_new`, and only the lists of the
    /// nodes that lost an item (`dropped`), gained one (`added`) or changed (`kept` says
    /// nothing of them: `list_of` them) are written, into one more array. O(nodes + the
    /// arrays' maps + those lists' length) where [`PerNode::renumbered`] copies every entry
    /// (23 million on `large`, beside the previous snapshot's: a policy event's largest
    /// allocation). `None` when `to_new` is not ascending over the items it keeps (a list
    /// would not stay ascending), an entry does not fit `E`, more than [`MAX_CHANGED`]
    /// nodes changed, the arrays are [`MAX_SEGMENTS`] deep, or more than an eighth of them
    /// would be lists no node uses any more (one in `stale_share`; [`STALE_SHARE`] for an
    /// engine's index): the caller renumbers every list then, which gathers them.
    pub(crate) fn remapped(
        &self,
        kept: &[Option<NodeId>],
        (to_new, dropped): (&[u32], &[u64]),
        added: &[(NodeId, u32)],
        list_of: impl Fn(NodeId) -> Vec<u32>,
        stale_share: usize,
    ) -> Option<PerNode<E>> {
        if self.segments.len() >= MAX_SEGMENTS
            || kept
                .iter()
                .filter(|k| k.is_none())
                .nth(MAX_CHANGED)
                .is_some()
        {
            return None;
        }
        if !keeps_order(to_new)
            || !to_new
                .iter()
                .all(|&j| j == u32::MAX || E::from_u32(j).is_some())
        {
            return None;
        }
        // The lists to write: declined before writing when the lists no node would use any
        // more (those they replace, and those earlier patches left) would be an eighth of
        // the arrays. The earlier snapshot's arrays stay alive with the new one, so their
        // stale lists are memory held between events; and when a rule reaching most of the
        // entries is added or removed (on `large`, the bench's rule reaches the tagged
        // servers, whose lists hold 14 of the 23 million entries), renumbering every list
        // writes little more and leaves nothing stale.
        let held: usize = self.segments.iter().map(|s| s.entries.len()).sum();
        let used: usize = self.spans.iter().map(|s| s.len as usize).sum();
        let mut replaced = 0;
        let mut adds = added;
        for (n, old) in kept.iter().enumerate() {
            let mine = adds.partition_point(|(id, _)| id.index() == n);
            adds = adds.get(mine..).unwrap_or_default();
            match old {
                Some(old) if mine > 0 || crate::bits::bit(dropped, *old) => {
                    replaced += self.spans.get(old.index()).map_or(0, |s| s.len as usize);
                }
                _ => {}
            }
        }
        if (held - used.min(held)).saturating_add(replaced) > held / stale_share.max(1) {
            return None;
        }
        // Each array's map composed with `to_new` (one shared map for the arrays without).
        let plain: Arc<[u32]> = Arc::from(to_new);
        let mut segments: Vec<Segment<E>> = self
            .segments
            .iter()
            .map(|s| Segment {
                entries: s.entries.clone(),
                map: Some(match &s.map {
                    None => plain.clone(),
                    Some(m) => m
                        .iter()
                        .map(|&v| match v {
                            u32::MAX => u32::MAX,
                            v => to_new.get(v as usize).copied().unwrap_or(u32::MAX),
                        })
                        .collect(),
                }),
            })
            .collect();
        let segment = u32::try_from(segments.len()).ok()?;
        let mut written: Vec<E> = Vec::new();
        let mut adds = added;
        let mut spans = Vec::with_capacity(kept.len());
        for (n, old) in kept.iter().enumerate() {
            let mine = adds.partition_point(|(id, _)| id.index() == n);
            let (here, rest) = adds.split_at(mine);
            adds = rest;
            let start = written.len();
            match old {
                Some(old) if here.is_empty() && !crate::bits::bit(dropped, *old) => {
                    spans.push(*self.spans.get(old.index())?);
                    continue;
                }
                Some(old) => {
                    // Both ascending: merged, the gone items left out.
                    let mut adds = here.iter().map(|&(_, i)| i).peekable();
                    let kept_items = self
                        .list(old.index())
                        .iter()
                        .map(|i| to_new.get(i as usize).copied().unwrap_or(u32::MAX))
                        .filter(|&j| j != u32::MAX);
                    for j in kept_items {
                        while let Some(a) = adds.next_if(|&a| a <= j) {
                            if a < j {
                                written.push(E::from_u32(a)?);
                            }
                        }
                        written.push(E::from_u32(j)?);
                    }
                    for a in adds {
                        written.push(E::from_u32(a)?);
                    }
                }
                None => {
                    for j in list_of(NodeId::new(n)) {
                        written.push(E::from_u32(j)?);
                    }
                }
            }
            spans.push(Span {
                start,
                len: u32::try_from(written.len() - start).ok()?,
                segment,
            });
        }
        if !adds.is_empty() {
            return None;
        }
        segments.push(Segment::plain(written));
        let held: usize = segments.iter().map(|s| s.entries.len()).sum();
        let used: usize = spans.iter().map(|s| s.len as usize).sum();
        if held.saturating_sub(used) > held / stale_share.max(1) {
            return None;
        }
        Some(PerNode { spans, segments })
    }

    /// Node `n`'s list (empty past the last node).
    pub(crate) fn list(&self, n: usize) -> List<'_, E> {
        self.spans
            .get(n)
            .and_then(|s| {
                let segment = self.segments.get(s.segment as usize)?;
                let entries = segment
                    .entries
                    .get(s.start..s.start.checked_add(s.len as usize)?)?;
                Some(List {
                    entries,
                    map: segment.map.as_deref(),
                })
            })
            .unwrap_or(List::plain(&[]))
    }

    /// Node `n`'s entries as stored, ascending (empty past the last node): for lists no
    /// map renumbers (only [`ItemIndex`] remaps its lists; read those with
    /// [`PerNode::list`]).
    pub(crate) fn get(&self, n: usize) -> &[E] {
        let list = self.list(n);
        debug_assert!(list.map.is_none(), "a remapped list read as stored");
        list.entries
    }

    /// How many nodes the lists are for.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }
}

/// Per node, the rule items (or SSH rules) that may reach it: a [`PerNode`] of `u16` when
/// every index fits (a policy of at most 65,536 items; `large` has 14,000), else of `u32`.
/// The lowering's index is the largest structure of a compile (23 million entries on
/// `large`), and a policy event builds its new one beside the previous snapshot's: at two
/// bytes an entry both take 46 MB less each.
#[derive(Debug, Clone)]
pub(crate) enum ItemIndex {
    /// Every index below 65,536.
    Narrow(PerNode<u16>),
    /// Some index above.
    Wide(PerNode<u32>),
}

/// One node's list in an [`ItemIndex`]: ascending indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Items<'a> {
    /// From a narrow index.
    Narrow(List<'a, u16>),
    /// From a wide one.
    Wide(List<'a, u32>),
}

/// The indexes of one [`Items`], in order: a variant per width, and per whether the list is
/// read through a map (the lists of most indexes are not, and their loop has no lookup).
#[derive(Debug, Clone)]
pub(crate) enum ItemsIter<'a> {
    /// A narrow list as stored.
    Narrow(std::slice::Iter<'a, u16>),
    /// A wide list as stored.
    Wide(std::slice::Iter<'a, u32>),
    /// A narrow list through its map.
    NarrowMapped(std::slice::Iter<'a, u16>, &'a [u32]),
    /// A wide list through its map.
    WideMapped(std::slice::Iter<'a, u32>, &'a [u32]),
}

impl Iterator for ItemsIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            ItemsIter::Narrow(i) => i.next().map(|&v| u32::from(v)),
            ItemsIter::Wide(i) => i.next().copied(),
            ItemsIter::NarrowMapped(i, m) => i.next().map(|&v| through(Some(m), u32::from(v))),
            ItemsIter::WideMapped(i, m) => i.next().map(|&v| through(Some(m), v)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ItemsIter::Narrow(i) | ItemsIter::NarrowMapped(i, _) => i.size_hint(),
            ItemsIter::Wide(i) | ItemsIter::WideMapped(i, _) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for ItemsIter<'_> {}

impl<'a> Items<'a> {
    /// How many indexes.
    pub(crate) fn len(self) -> usize {
        match self {
            Items::Narrow(l) => l.len(),
            Items::Wide(l) => l.len(),
        }
    }

    /// The indexes in order.
    pub(crate) fn iter(self) -> ItemsIter<'a> {
        match self {
            Items::Narrow(l) => match l.map {
                None => ItemsIter::Narrow(l.entries.iter()),
                Some(m) => ItemsIter::NarrowMapped(l.entries.iter(), m),
            },
            Items::Wide(l) => match l.map {
                None => ItemsIter::Wide(l.entries.iter()),
                Some(m) => ItemsIter::WideMapped(l.entries.iter(), m),
            },
        }
    }

    /// True when `i` is one of them (a binary search).
    pub(crate) fn contains(self, i: u32) -> bool {
        match self {
            Items::Narrow(l) => l.contains(i),
            Items::Wide(l) => l.contains(i),
        }
    }

    /// The indexes, as a vector.
    pub(crate) fn to_vec(self) -> Vec<u32> {
        self.iter().collect()
    }

    /// True when both are the same memory read through the same map (a list an engine's
    /// patch kept).
    pub(crate) fn same_memory(self, other: Items<'_>) -> bool {
        match (self, other) {
            (Items::Narrow(a), Items::Narrow(b)) => a.same_memory(b),
            (Items::Wide(a), Items::Wide(b)) => a.same_memory(b),
            _ => false,
        }
    }
}

impl PartialEq for Items<'_> {
    fn eq(&self, other: &Items<'_>) -> bool {
        match (*self, *other) {
            (Items::Narrow(a), Items::Narrow(b)) if a.map.is_none() && b.map.is_none() => {
                a.entries == b.entries
            }
            (Items::Wide(a), Items::Wide(b)) if a.map.is_none() && b.map.is_none() => {
                a.entries == b.entries
            }
            (a, b) => a.iter().eq(b.iter()),
        }
    }
}

/// True when a renumbering (`u32::MAX`: gone) keeps the order of the items it keeps, so a
/// list renumbered entry for entry stays ascending.
fn keeps_order(to_new: &[u32]) -> bool {
    to_new
        .iter()
        .filter(|&&j| j != u32::MAX)
        .try_fold(None, |last: Option<u32>, &j| match last {
            Some(l) if l >= j => Err(()),
            _ => Ok(Some(j)),
        })
        .is_ok()
}

/// True when every index up to `last` fits a `u16`.
fn narrow(last: Option<u32>) -> bool {
    last.is_none_or(|i| u16::try_from(i).is_ok())
}

impl ItemIndex {
    /// Empty lists for `nodes` nodes.
    pub(crate) fn empty(nodes: usize) -> ItemIndex {
        ItemIndex::Narrow(PerNode::empty(nodes))
    }

    /// [`PerNode::from_lists`], narrow when every item fits.
    pub(crate) fn from_lists<'a, I>(nodes: usize, lists: I) -> ItemIndex
    where
        I: Iterator<Item = (u32, &'a [NodeId])> + Clone,
    {
        match narrow(lists.clone().map(|(i, _)| i).max()) {
            true => ItemIndex::Narrow(PerNode::from_lists(nodes, lists)),
            false => ItemIndex::Wide(PerNode::from_lists(nodes, lists)),
        }
    }

    /// [`PerNode::from_pairs`], narrow when every item fits.
    pub(crate) fn from_pairs<I>(nodes: usize, pairs: I) -> ItemIndex
    where
        I: Iterator<Item = (NodeId, u32)> + Clone,
    {
        match narrow(pairs.clone().map(|(_, i)| i).max()) {
            true => ItemIndex::Narrow(PerNode::from_pairs(nodes, pairs)),
            false => ItemIndex::Wide(PerNode::from_pairs(nodes, pairs)),
        }
    }

    /// [`PerNode::patched_with`] (the same items, so the same width); `None` also when a
    /// changed node's list holds an index its width cannot.
    pub(crate) fn patched_with(
        &self,
        kept: &[Option<NodeId>],
        list_of: impl Fn(NodeId) -> Vec<u32>,
    ) -> Option<ItemIndex> {
        Some(match self {
            ItemIndex::Narrow(p) => ItemIndex::Narrow(p.patched_with(kept, list_of)?),
            ItemIndex::Wide(p) => ItemIndex::Wide(p.patched_with(kept, list_of)?),
        })
    }

    /// [`PerNode::renumbered`] into lists of `items` items: narrow when they all fit.
    /// [`PerNode::remapped`] when the width stays and it does not decline.
    pub(crate) fn renumbered(
        &self,
        kept: &[Option<NodeId>],
        moved: (&[u32], &[u64]),
        added: (&[(NodeId, u32)], usize),
        list_of: impl Fn(NodeId) -> Vec<u32> + Sync,
    ) -> Option<ItemIndex> {
        self.renumbered_sharing(kept, moved, added, list_of, STALE_SHARE)
    }

    /// [`ItemIndex::renumbered`], remapping while at most one entry in `stale_share` is
    /// stale (tests remap at larger shares, as their indexes are small).
    fn renumbered_sharing(
        &self,
        kept: &[Option<NodeId>],
        moved: (&[u32], &[u64]),
        (added, items): (&[(NodeId, u32)], usize),
        list_of: impl Fn(NodeId) -> Vec<u32> + Sync,
        stale_share: usize,
    ) -> Option<ItemIndex> {
        let last = items
            .checked_sub(1)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX));
        let to_narrow = narrow(last);
        // Of the same width: the arrays kept, read through maps, when they can be.
        let remapped = match (self, to_narrow) {
            (ItemIndex::Narrow(p), true) => p
                .remapped(kept, moved, added, &list_of, stale_share)
                .map(ItemIndex::Narrow),
            (ItemIndex::Wide(p), false) => p
                .remapped(kept, moved, added, &list_of, stale_share)
                .map(ItemIndex::Wide),
            _ => None,
        };
        if remapped.is_some() {
            return remapped;
        }
        match self {
            ItemIndex::Narrow(p) => p.renumbered_index(to_narrow, kept, moved, added, list_of),
            ItemIndex::Wide(p) => p.renumbered_index(to_narrow, kept, moved, added, list_of),
        }
    }

    /// Node `n`'s items, ascending (empty past the last node).
    pub(crate) fn get(&self, n: usize) -> Items<'_> {
        match self {
            ItemIndex::Narrow(p) => Items::Narrow(p.list(n)),
            ItemIndex::Wide(p) => Items::Wide(p.list(n)),
        }
    }

    /// How many nodes the lists are for.
    pub(crate) fn len(&self) -> usize {
        match self {
            ItemIndex::Narrow(p) => p.len(),
            ItemIndex::Wide(p) => p.len(),
        }
    }

    /// Each node's items, in node order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Items<'_>> + '_ {
        (0..self.len()).map(|n| self.get(n))
    }
}

/// Entries per block of nodes whose lists [`filled_by_block`] fills at a time: 1 MiB of
/// entries, well inside a core's 2 MiB second-level cache. Filling every node's list item by
/// item wrote each entry into a different line of a 92 MiB array on `large` (half of a
/// policy event's time went there).
const BLOCK: usize = 1 << 18;

/// Where each node's list starts in the flat array (`nodes + 1` positions, the last the
/// total), from a count of the pairs per node; ids past `nodes` are not counted.
fn counted(nodes: usize, pairs: impl Iterator<Item = (NodeId, u32)>) -> Vec<usize> {
    let mut starts = counts(nodes, pairs);
    summed(&mut starts);
    starts
}

/// The pairs per node, node `n`'s at `n + 1` (`nodes + 1` places, the first 0).
fn counts(nodes: usize, pairs: impl Iterator<Item = (NodeId, u32)>) -> Vec<usize> {
    let mut counts = vec![0usize; nodes + 1];
    for (id, _) in pairs {
        if let Some(count) = counts.get_mut(id.index() + 1) {
            *count += 1;
        }
    }
    counts
}

/// [`counts`] summed into where each node's list starts.
fn summed(starts: &mut [usize]) {
    for n in 1..starts.len() {
        let before = starts.get(n - 1).copied().unwrap_or(0);
        if let Some(s) = starts.get_mut(n) {
            *s += before;
        }
    }
}

/// [`counted`] and [`order`] of `lists`, each half of the entries on a core of its own when
/// they are many ([`SPLIT`]): both read every entry (23 million on `large`, a fifth of a
/// policy event on one core while the other had nothing to do).
fn counted_and_ordered(nodes: usize, lists: &[(u32, &[NodeId])]) -> (Vec<usize>, Order) {
    let total: usize = lists.iter().map(|(_, ids)| ids.len()).sum();
    if total < SPLIT || !crate::par::worth_threads(nodes) {
        return (counted(nodes, pairs_of(lists)), order(lists));
    }
    // The first list past half the entries begins the second half.
    let mut seen = 0usize;
    let cut = lists
        .iter()
        .position(|(_, ids)| {
            seen += ids.len();
            seen > total / 2
        })
        .map_or(lists.len(), |k| k + 1)
        .min(lists.len());
    let (first, second) = lists.split_at(cut);
    let half = |part: &[(u32, &[NodeId])]| (counts(nodes, pairs_of(part)), order(part));
    let ((mut starts, a), (more, b)) = crate::par::join(|| half(first), || half(second));
    for (s, m) in starts.iter_mut().zip(&more) {
        *s += m;
    }
    summed(&mut starts);
    // Strictly ascending items across the cut too, for the whole to be `Unique`.
    let across = match (first.last(), second.first()) {
        (Some(x), Some(y)) => x.0 < y.0,
        _ => true,
    };
    let order = match (a, b) {
        (Order::Unordered, _) | (_, Order::Unordered) => Order::Unordered,
        (Order::Unique, Order::Unique) if across => Order::Unique,
        _ => Order::Ascending,
    };
    (starts, order)
}

/// The `(node, item)` pairs of `lists`, list by list.
fn pairs_of<'l>(lists: &'l [(u32, &'l [NodeId])]) -> impl Iterator<Item = (NodeId, u32)> + 'l {
    lists
        .iter()
        .flat_map(|&(item, ids)| ids.iter().map(move |&id| (id, item)))
}

/// Entries from which [`counted_and_ordered`] splits its passes over two cores.
const SPLIT: usize = if cfg!(debug_assertions) { 64 } else { 1 << 20 };

/// How the lists of [`PerNode::from_lists`] are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Some list is not ascending.
    Unordered,
    /// Every list ascending, but a pair may repeat.
    Ascending,
    /// Every list strictly ascending and every item once: no pair repeats.
    Unique,
}

/// The lists' [`Order`], in one pass over them.
fn order(lists: &[(u32, &[NodeId])]) -> Order {
    let mut strict = lists
        .windows(2)
        .all(|w| w.first().map(|a| a.0) < w.get(1).map(|b| b.0));
    for (_, ids) in lists {
        for w in ids.windows(2) {
            match w.first().cmp(&w.get(1)) {
                std::cmp::Ordering::Greater => return Order::Unordered,
                std::cmp::Ordering::Equal => strict = false,
                std::cmp::Ordering::Less => {}
            }
        }
    }
    match strict {
        true => Order::Unique,
        false => Order::Ascending,
    }
}

/// Each node's list end (its start, while empty) and the flat array, zeroed.
fn unfilled<E: Entry>(starts: &[usize]) -> (Vec<usize>, Vec<E>) {
    let nodes = starts.len().saturating_sub(1);
    let ends = starts.iter().take(nodes).copied().collect();
    (
        ends,
        vec![E::default(); starts.last().copied().unwrap_or(0)],
    )
}

/// Put one pair in its node's list unless (with `check`) the list ends with that item
/// already. An item that does not fit `E` is not put: the callers choose `E` from the
/// largest item ([`ItemIndex`]).
fn put<E: Entry>(
    starts: &[usize],
    ends: &mut [usize],
    entries: &mut [E],
    (id, item): (usize, u32),
    check: bool,
) {
    let (Some(end), Some(&start), Some(item)) =
        (ends.get_mut(id), starts.get(id), E::from_u32(item))
    else {
        debug_assert!(E::from_u32(item).is_some(), "an entry past its width");
        return;
    };
    if check && *end > start && entries.get(*end - 1) == Some(&item) {
        return;
    }
    if let Some(slot) = entries.get_mut(*end) {
        *slot = item;
        *end += 1;
    }
}

/// Each node's list end and the flat array, filled pair by pair in the pairs' order.
fn filled<E: Entry>(
    starts: &[usize],
    pairs: impl Iterator<Item = (NodeId, u32)>,
) -> (Vec<usize>, Vec<E>) {
    let (mut ends, mut entries) = unfilled(starts);
    for (id, item) in pairs {
        put(starts, &mut ends, &mut entries, (id.index(), item), true);
    }
    (ends, entries)
}

/// What [`filled`] makes from ascending lists, made block of nodes by block: the nodes are cut
/// into runs of about `block` entries, and each run's lists are filled from every list's
/// part in the run (in list order, so each node's items stay in order) before the next
/// run's. A list waits in the queue of the run holding its next node, so a list is visited
/// once per run it has nodes in: O(nodes + entries + visits log) in all. With `unique` (no
/// pair repeats, [`Order::Unique`]) no list can end with the item about to be put, so the
/// check that reads its last entry is left out.
fn filled_by_block<E: Entry>(
    starts: &[usize],
    lists: &[(u32, &[NodeId])],
    block: usize,
    unique: bool,
) -> (Vec<usize>, Vec<E>) {
    let nodes = starts.len().saturating_sub(1);
    let (mut ends, mut entries) = unfilled(starts);
    // Each node's run, and where each run ends.
    let mut run_of = vec![0u32; nodes];
    let mut run_ends = Vec::new();
    let mut run_start = 0;
    for n in 0..nodes {
        let at = starts.get(n).copied().unwrap_or(0);
        if n > 0 && at - run_start >= block.max(1) {
            run_ends.push(n);
            run_start = at;
        }
        if let Some(r) = run_of.get_mut(n) {
            *r = u32::try_from(run_ends.len()).unwrap_or(u32::MAX);
        }
    }
    run_ends.push(nodes);
    let mut queues: Vec<Vec<u32>> = vec![Vec::new(); run_ends.len()];
    let enqueue = |queues: &mut Vec<Vec<u32>>, k: usize, next: Option<&NodeId>| {
        let run = next.and_then(|id| run_of.get(id.index()));
        if let (Some(&run), Ok(k)) = (run, u32::try_from(k)) {
            if let Some(q) = queues.get_mut(run as usize) {
                q.push(k);
            }
        }
    };
    for (k, (_, ids)) in lists.iter().enumerate() {
        enqueue(&mut queues, k, ids.first());
    }
    let mut cursors = vec![0usize; lists.len()];
    for (run, &end) in run_ends.iter().enumerate() {
        let Some(queue) = queues.get_mut(run) else {
            break;
        };
        let mut here = std::mem::take(queue);
        here.sort_unstable();
        for k in here {
            let k = k as usize;
            let (Some(&(item, ids)), Some(cursor)) = (lists.get(k), cursors.get_mut(k)) else {
                continue;
            };
            let mut c = *cursor;
            while let Some(id) = ids.get(c) {
                if id.index() >= end {
                    break;
                }
                put(starts, &mut ends, &mut entries, (id.index(), item), !unique);
                c += 1;
            }
            *cursor = c;
            enqueue(&mut queues, k, ids.get(c));
        }
    }
    (ends, entries)
}

#[cfg(test)]
mod tests;
