//! Peer visibility and the routes each node is shown.
//!
//! A node is sent another as a peer when either can reach the other under the policy,
//! ignoring ports and protocols; a router counts as reachable through the subnets it serves
//! and as a source for traffic from behind them, an exit node through the internet. Each rule
//! item gives a source node set S and a destination node set D; every member of S sees every
//! member of D and the reverse, so per distinct node set the union of everything on the other
//! side of its rules is computed once, and a node's peers are the union over the (few) sets it
//! belongs to.
//!
//! A peer's subnet route is shown to a node when the node may use it (a rule from the node to
//! the route, or from the route's subnet to the node, or the node serves the same route) and
//! the peer carries it for that node: the primary router, unless `via` grants steer the node to
//! another router (only when the node has no ordinary rule to the route).

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;

use crate::addrset::{AddrSet, INTERNET_WIRE};
use crate::bits::{bit, clear_bit, ids_of, push_ids, set_bit};
use crate::lower::{Body, Item, Lowered, Reach};
use crate::nodes::{NodeId, NodeTable};
use crate::resolve::Target;
use crate::routes::RouteTable;

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
    fn from_bits(bits: Vec<u64>, len: usize) -> NodeSet {
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
    fn from_ids(ids: &[NodeId], len: usize) -> NodeSet {
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
    fn count(&self, len: usize) -> usize {
        match self {
            NodeSet::All => len,
            NodeSet::List(ids) => ids.len(),
            NodeSet::Bits(bits) => bits.iter().map(|w| w.count_ones() as usize).sum(),
        }
    }

    /// The set's members among the `len` nodes, ascending.
    fn ids(&self, len: usize) -> Vec<NodeId> {
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
fn canonical(ids: std::borrow::Cow<'_, [NodeId]>, len: usize, scratch: &mut Vec<u64>) -> NodeSet {
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
fn take_bits(scratch: &mut Vec<u64>, len: usize) -> NodeSet {
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
fn set_hash(set: &NodeSet) -> u64 {
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
const BATCH: usize = 256;

/// The lists a lowering made so far, handed in batches to the thread that prepares their
/// sets ([`prepared_beside`]).
pub(crate) struct Lists<'a> {
    sink: &'a std::sync::mpsc::Sender<Vec<Listed>>,
    batch: Vec<Listed>,
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
    fn flush(&mut self) {
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
    sources: ByList<Target>,
    nodes: ByList<NodeId>,
}

/// Prepared sets (with their hashes) by their list's address and length, each with its list.
type ByList<T> = crate::hash::Map<(usize, usize), (Arc<[T]>, NodeSet, u64)>;

impl Prepared {
    /// The set prepared for `request`, taken out.
    fn take(&mut self, request: &Request<'_>) -> Option<(NodeSet, u64)> {
        match request {
            Request::Sources(targets) => taken(&mut self.sources, targets),
            Request::Nodes(ids) => taken(&mut self.nodes, ids),
            Request::Star | Request::SelfSources(_) | Request::All => None,
        }
    }
}

/// A list's key in a [`ByList`]: its address and length.
fn list_key<T>(list: &[T]) -> (usize, usize) {
    (list.as_ptr() as usize, list.len())
}

/// The set prepared for `list`, taken out of `map`.
fn taken<T>(map: &mut ByList<T>, list: &[T]) -> Option<(NodeSet, u64)> {
    map.remove(&list_key(list))
        .map(|(_, set, hash)| (set, hash))
}

/// Prepare the set of `list` into `map` (by `prepare`), once per list.
fn prepare_into<T>(
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
    std::thread::scope(|scope| {
        let second = scope.spawn(move || {
            let other = beside();
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

/// How many nodes' sets a [`PeerIndex`] finds by scanning before it builds every node's
/// list: a scan tests each set (3,481 on `large`, about 0.1 ms), the build scatters every
/// membership (2.3 million, about 16 ms), so a few dozen scans cost less than a build.
const SCANS: usize = 32;

/// The sets a node belongs to in two indexes (before, after).
type Combination<'a> = (&'a [u32], &'a [u32]);

/// Who sees whom, and which routes.
#[derive(Debug)]
pub(crate) struct PeerIndex {
    len: usize,
    /// Per rule item, its source and destination sets (`None`: the item makes no peers).
    item_sets: Vec<Option<(u32, u32)>>,
    /// Interned node sets of rule sources and destinations.
    sets: Vec<NodeSet>,
    /// Per set, the sets on the other side of its edges.
    adjacent: crate::pernode::PerNode,
    /// Per set: every node on the other side of its rules, computed on first use
    /// ([`PeerIndex::reach`]). An engine event asks for the peers of a handful of nodes,
    /// whose sets are a few dozen of the 3,481 on `large`: computing every set's reach was
    /// a quarter of the index's time per event.
    reach: Vec<std::sync::OnceLock<NodeSet>>,
    /// The sets on an edge that do not hold every node, ascending: the sets a node's
    /// membership lists.
    member_sets: Vec<u32>,
    /// Per node: the sets of `member_sets` holding it, built on first use by many nodes
    /// ([`PeerIndex::member_of`]). An engine event's compile asks for a handful of nodes'
    /// peers; building every node's list (2.3 million entries on `large`) took a sixth of
    /// the peer index's time, and the memory with it.
    membership: std::sync::OnceLock<crate::pernode::PerNode>,
    /// How many nodes' sets were found by scanning `member_sets` while `membership` was
    /// not built: past [`SCANS`], it is built.
    scans: std::sync::atomic::AtomicUsize,
    /// The sets on an edge that hold every node.
    universal: Vec<u32>,
    /// The union of the universal sets' reaches (every node's peers include it), one bit
    /// per node: computed once, on first use, not per node.
    universal_reach: std::sync::OnceLock<Vec<u64>>,
    /// Sources of `autogroup:self` rules.
    self_sources: NodeSet,
    /// Per route of the [`RouteTable`].
    routes: Vec<RouteView>,
    /// The items to and from each route ([`PeerIndex::route_items`]).
    route_items: Arc<RouteItems>,
}

/// [`PeerIndex::route_signature`]: visible, direct, and the `via` rules.
pub(crate) type RouteSignature = (Vec<u64>, Vec<u64>, Vec<(Vec<u64>, Arc<[Arc<str>]>)>);

/// A `via` rule to a route: its item, source set and tags.
type ItemVia = (u32, u32, Arc<[Arc<str>]>);

/// Who may be shown one subnet route.
#[derive(Debug, PartialEq)]
struct RouteView {
    /// Nodes allowed to see it, with `servers`: shared by the routes that no item names
    /// but as every route (most of `large`'s thousand routes), not a map per route.
    visible: Arc<NodeSet>,
    /// The route's servers (each sees it).
    servers: Vec<NodeId>,
    /// Nodes with an ordinary (non-`via`) rule to it; shared as `visible` is.
    direct: Arc<NodeSet>,
    /// `via` rules to it: their source set and tags.
    via: Vec<(u32, Arc<[Arc<str>]>)>,
}

/// A node set the index interns, in the order a walk of the items asks for it (so set ids
/// come out as one pass over the items gives them), or a self rule's sources (listed for the
/// self sources, not interned).
enum Request<'a> {
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
struct Builder<'a> {
    table: &'a NodeTable,
    /// The nodes `*` stands for as a source (empty when no source is `*`).
    star: Vec<NodeId>,
}

impl Builder<'_> {
    fn all(&self) -> Vec<NodeId> {
        (0..self.table.len()).map(NodeId::new).collect()
    }

    /// Nodes `targets` stand for as sources. Each target's nodes come sorted: one list is
    /// taken as it is, two short ones merged (ascending, without repeats; the set will be
    /// listed, [`canonical`]); others are concatenated, and [`canonical`] gathers them in a
    /// bit map, O(nodes / 64) more, which a set kept as bits needs anyway. Two short lists
    /// concatenated went through a bit map of every node and were listed back from it, a
    /// scan of the whole map each (thousands per compile on `large`).
    fn sources<'s>(&'s self, targets: &'s [Target]) -> std::borrow::Cow<'s, [NodeId]> {
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
    fn prepare(&self, request: &Request<'_>, scratch: &mut Vec<u64>) -> (NodeSet, u64) {
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
fn merge_unique(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
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
struct Interner {
    sets: Vec<NodeSet>,
    /// Each set's node count.
    counts: Vec<usize>,
    /// Each set's id by its content hash (more than one for colliding sets).
    ids: crate::hash::Map<u64, Vec<u32>>,
}

impl Interner {
    /// The id of the set `set` ([`canonical`]) whose hash is `hash`, among `len` nodes.
    fn intern(&mut self, set: NodeSet, hash: u64, len: usize) -> u32 {
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

/// True when sources `targets` read the nodes of `*` (a `*` before any
/// `autogroup:danger-all`, which stands for every node whatever follows).
fn reads_star(targets: &[Target]) -> bool {
    targets
        .iter()
        .take_while(|t| !matches!(t, Target::DangerAll))
        .any(|t| matches!(t, Target::Wildcard))
}

/// The destination targets of a non-self item.
fn dst_targets(item: &Item) -> &[Target] {
    match &item.body {
        Body::Net { dst, .. } => std::slice::from_ref(dst),
        Body::App { dsts, .. } => dsts,
        _ => &[],
    }
}

/// The items to and from each route, and those to and from every route (`*`), among some
/// items (ascending).
struct RouteHits {
    to: Vec<Vec<u32>>,
    from: Vec<Vec<u32>>,
    to_all: Vec<u32>,
    from_all: Vec<u32>,
}

/// [`RouteHits`] of `items` (each with its index), found from their targets by a finder of
/// the routes `nets` (`inside[r]`: the nodes with an address in route `r`).
fn route_hits(
    items: &[(u32, &Item)],
    nets: Vec<IpNet>,
    inside: &[Vec<NodeId>],
    internet: &AddrSet,
) -> RouteHits {
    let routes = nets.len();
    let mut finder = crate::routehits::RouteFinder::new(nets, inside, internet);
    let mut out = RouteHits {
        to: vec![Vec::new(); routes],
        from: vec![Vec::new(); routes],
        to_all: Vec::new(),
        from_all: Vec::new(),
    };
    let mut hits = Vec::new();
    // The routes a list of targets overlaps, once per list: a rule's items share its
    // sources, and one rule with 40,000 source and 40,000 destination addresses went over
    // its sources once per destination (19 s).
    let mut by_list: crate::hash::Map<(usize, usize), (bool, Vec<u32>)> =
        crate::hash::Map::default();
    for &(i, item) in items {
        for (targets, lists, all) in [
            (dst_targets(item), &mut out.to, &mut out.to_all),
            (&item.src_targets[..], &mut out.from, &mut out.from_all),
        ] {
            let key = (targets.as_ptr() as usize, targets.len());
            let (every, found) = by_list.entry(key).or_insert_with(|| {
                hits.clear();
                let every = finder.collect(targets, &mut hits);
                (every, hits.clone())
            });
            if *every {
                all.push(i);
                continue;
            }
            for &r in found.iter() {
                if let Some(list) = lists.get_mut(r as usize) {
                    list.push(i);
                }
            }
        }
    }
    out
}

/// The items to and from each route of `nets` (item indexes, ascending), and those to and
/// from every route (`*`): what [`route_views`] finds from the items' targets, kept with the
/// index so that a node event's compile can take it ([`PeerIndex::route_items`]).
#[derive(Debug, PartialEq)]
pub(crate) struct RouteItems {
    nets: Vec<IpNet>,
    to: Vec<Vec<u32>>,
    from: Vec<Vec<u32>>,
    to_all: Vec<u32>,
    from_all: Vec<u32>,
}

impl RouteItems {
    /// The routes' items among those of `lowered` that make peers (`item_sets`), found on
    /// every core: each part with a finder of its own, the parts' lists joined in item order.
    fn found(
        table: &NodeTable,
        lowered: &Lowered,
        item_sets: &[Option<(u32, u32)>],
        nets: Vec<IpNet>,
    ) -> RouteItems {
        let internet = AddrSet::from_wire(INTERNET_WIRE);
        let inside: Vec<Vec<NodeId>> = nets
            .iter()
            .map(|n| table.addressed_in(&AddrSet::from_net(*n)))
            .collect();
        let making: Vec<(u32, &Item)> = match nets.is_empty() {
            true => Vec::new(),
            false => lowered
                .items
                .iter()
                .zip(item_sets)
                .enumerate()
                .filter(|(_, (_, set))| set.is_some())
                .map(|(i, (item, _))| (crate::nodes::index(i), item))
                .collect(),
        };
        let parts = crate::par::map_parts(&making, split(512, table.len()), |part| {
            vec![route_hits(part, nets.clone(), &inside, &internet)]
        });
        let mut out = RouteItems {
            to: vec![Vec::new(); nets.len()],
            from: vec![Vec::new(); nets.len()],
            to_all: Vec::new(),
            from_all: Vec::new(),
            nets,
        };
        for part in parts {
            for (lists, found) in [(&mut out.to, part.to), (&mut out.from, part.from)] {
                for (list, more) in lists.iter_mut().zip(found) {
                    list.extend(more);
                }
            }
            out.to_all.extend(part.to_all);
            out.from_all.extend(part.from_all);
        }
        // Debug builds (which split all but the smallest inputs) compare with one part.
        #[cfg(debug_assertions)]
        {
            let whole = route_hits(&making, out.nets.clone(), &inside, &internet);
            debug_assert!(
                (&whole.to, &whole.from, &whole.to_all, &whole.from_all)
                    == (&out.to, &out.from, &out.to_all, &out.from_all),
                "the routes' items found in parts differ from those found at once"
            );
        }
        out
    }
}

/// Who may be shown each route of `routes`: the items to and from each route, found from the
/// items' targets (`RouteFinder`); the items to or from every route (`*`) added once for all.
fn route_views(
    table: &NodeTable,
    routes: &RouteTable,
    lowered: &Lowered,
    item_sets: &[Option<(u32, u32)>],
    sets: &[NodeSet],
    earlier: Option<&Arc<RouteItems>>,
) -> (Vec<RouteView>, Arc<RouteItems>) {
    let len = table.len();
    let words = len.div_ceil(64);
    let nets: Vec<IpNet> = routes.routes.iter().map(|r| r.net).collect();
    let found = match earlier.filter(|e| e.nets == nets) {
        Some(earlier) => {
            debug_assert!(
                **earlier == RouteItems::found(table, lowered, item_sets, nets),
                "the routes' items carried from an earlier index differ from those found"
            );
            earlier.clone()
        }
        None => Arc::new(RouteItems::found(table, lowered, item_sets, nets)),
    };
    let RouteItems {
        to: to_items,
        from: from_items,
        to_all,
        from_all,
        ..
    } = &*found;
    let sets_of = |i: u32| item_sets.get(i as usize).copied().flatten();
    let via_of = |i: u32| {
        lowered
            .items
            .get(i as usize)
            .and_then(|item| item.via.clone())
    };
    // Each set is added to `visible` and `direct` once per route: a set's stamp is the
    // number of the route (plus one) it was last added for, so no per-route flags are
    // cleared (that was O(routes x sets)).
    let add = |x: u32, bits: &mut [u64], stamps: &mut [u32], now: u32| {
        if let Some(stamp) = stamps.get_mut(x as usize).filter(|s| **s != now) {
            *stamp = now;
            if let Some(set) = sets.get(x as usize) {
                set.or_into(bits);
            }
        }
    };
    // What the items to or from every route give each route.
    let mut all_visible = vec![0u64; words];
    let mut all_direct = vec![0u64; words];
    let mut in_visible = vec![0u32; sets.len()];
    let mut in_direct = vec![0u32; sets.len()];
    let mut all_via: Vec<ItemVia> = Vec::new();
    for &i in to_all {
        let Some((s, _)) = sets_of(i) else { continue };
        add(s, &mut all_visible, &mut in_visible, u32::MAX);
        match via_of(i) {
            Some(tags) => all_via.push((i, s, tags)),
            None => add(s, &mut all_direct, &mut in_direct, u32::MAX),
        }
    }
    for &i in from_all {
        if let Some((_, d)) = sets_of(i) {
            add(d, &mut all_visible, &mut in_visible, u32::MAX);
        }
    }
    let common_visible = Arc::new(NodeSet::from_bits(all_visible.clone(), len));
    let common_direct = Arc::new(NodeSet::from_bits(all_direct.clone(), len));
    // Each route's view on every core: a part marks its sets in stamp arrays of its own.
    let numbered: Vec<(usize, &_)> = routes.routes.iter().enumerate().collect();
    let views_of = |part: &[(usize, &crate::routes::RouteEntry)]| {
        let mut in_visible = vec![0u32; sets.len()];
        let mut in_direct = vec![0u32; sets.len()];
        let mut views = Vec::with_capacity(part.len());
        for &(r, route) in part {
            // The common maps, copied for a route only when one of its own items adds to
            // them.
            let (mut visible, mut direct): (Option<Vec<u64>>, Option<Vec<u64>>) = (None, None);
            // A set already in the routes' common part may be added again: no harm.
            let now = crate::nodes::index(r).saturating_add(1);
            // `via` rules in item order: this route's own, merged with those to every route.
            let mut own_via: Vec<ItemVia> = Vec::new();
            for &i in to_items.get(r).into_iter().flatten() {
                let Some((s, _)) = sets_of(i) else { continue };
                let bits = visible.get_or_insert_with(|| all_visible.clone());
                add(s, bits, &mut in_visible, now);
                match via_of(i) {
                    Some(tags) => own_via.push((i, s, tags)),
                    None => {
                        let bits = direct.get_or_insert_with(|| all_direct.clone());
                        add(s, bits, &mut in_direct, now);
                    }
                }
            }
            for &i in from_items.get(r).into_iter().flatten() {
                if let Some((_, d)) = sets_of(i) {
                    let bits = visible.get_or_insert_with(|| all_visible.clone());
                    add(d, bits, &mut in_visible, now);
                }
            }
            let mut via: Vec<ItemVia> = all_via.iter().cloned().chain(own_via).collect();
            via.sort_by_key(|&(i, _, _)| i);
            let shared = |bits: Option<Vec<u64>>, common: &Arc<NodeSet>| match bits {
                Some(bits) => Arc::new(NodeSet::from_bits(bits, len)),
                None => common.clone(),
            };
            views.push(RouteView {
                visible: shared(visible, &common_visible),
                servers: route.servers.clone(),
                direct: shared(direct, &common_direct),
                via: via.into_iter().map(|(_, s, tags)| (s, tags)).collect(),
            });
        }
        views
    };
    let views = crate::par::map_parts(&numbered, split(64, len), views_of);
    // Debug builds compare with the views made in one part.
    debug_assert!(
        views == views_of(&numbered),
        "route views made in parts differ from those made at once"
    );
    (views, found)
}

/// How much work the peer index needs before it splits it over the cores: `worth` (where a
/// thread costs less than it saves) on a tailnet of `nodes` worth threads at all
/// ([`crate::par::WORTH_THREADS`]), or, in debug builds, almost none, so that the tests
/// compare the parts' work with the work done at once.
fn split(worth: usize, nodes: usize) -> usize {
    match cfg!(debug_assertions) {
        true => 2,
        false => crate::par::min_items(crate::par::worth_threads(nodes), worth),
    }
}

impl PeerIndex {
    /// Build the index of a lowered policy. The sets' nodes are found on every core (then
    /// interned in item order), and the sets' reaches on one core beside the routes' views
    /// on another. Each node's sets are listed on first use by many nodes
    /// ([`PeerIndex::member_of`]).
    pub(crate) fn new(table: &NodeTable, routes: &RouteTable, lowered: &Lowered) -> PeerIndex {
        PeerIndex::with_prepared(table, routes, lowered, Prepared::default(), None)
    }

    /// True when both indexes hold the same sets, each item's the same ones.
    #[cfg(debug_assertions)]
    pub(crate) fn same_sets(&self, other: &PeerIndex) -> bool {
        self.item_sets == other.item_sets && self.sets == other.sets
    }

    /// [`PeerIndex::new`], with the sets of `prepared` taken rather than prepared again, and
    /// the routes' items taken from `route_items` (an earlier index's, [`PeerIndex::route_items`])
    /// when its routes are these.
    pub(crate) fn with_prepared(
        table: &NodeTable,
        routes: &RouteTable,
        lowered: &Lowered,
        mut prepared: Prepared,
        route_items: Option<&Arc<RouteItems>>,
    ) -> PeerIndex {
        let len = table.len();
        let words = len.div_ceil(64);
        // What to intern, in item order: sources once per `SrcIPs` list, destinations once
        // per list the lowering shares (keyed by its address).
        let mut requests: Vec<Request<'_>> = Vec::new();
        let mut item_requests: Vec<Option<(usize, usize)>> =
            Vec::with_capacity(lowered.items.len());
        let mut by_src: crate::hash::Map<u32, usize> = crate::hash::Map::default();
        let mut by_dst: crate::hash::Map<usize, usize> = crate::hash::Map::default();
        let (mut star, mut all) = (false, None);
        // `*`'s nodes are asked for where the first sources reading them are.
        let mut star_before = |targets: &[Target], requests: &mut Vec<Request<'_>>| {
            if !star && reads_star(targets) {
                star = true;
                requests.push(Request::Star);
            }
        };
        for item in &lowered.items {
            let targets = &item.src_targets[..];
            match &item.body {
                Body::SelfNet { .. } | Body::SelfApp { .. } => {
                    star_before(targets, &mut requests);
                    requests.push(Request::SelfSources(targets));
                    item_requests.push(None);
                    continue;
                }
                Body::Net { .. } if lowered.is_vacant(item) => {
                    item_requests.push(None);
                    continue;
                }
                Body::Net { .. } | Body::App { .. } => {}
                Body::Companion { .. } | Body::SelfCompanion { .. } => {
                    item_requests.push(None);
                    continue;
                }
            }
            let s = *by_src.entry(item.src).or_insert_with(|| {
                star_before(targets, &mut requests);
                requests.push(Request::Sources(targets));
                requests.len() - 1
            });
            let d = match &item.dst_nodes {
                Reach::All => *all.get_or_insert_with(|| {
                    requests.push(Request::All);
                    requests.len() - 1
                }),
                Reach::Some(ids) => {
                    let key = Arc::as_ptr(ids).cast::<NodeId>() as usize;
                    *by_dst.entry(key).or_insert_with(|| {
                        requests.push(Request::Nodes(ids));
                        requests.len() - 1
                    })
                }
            };
            item_requests.push(Some((s, d)));
        }
        let b = Builder {
            table,
            star: match star {
                true => table.source_nodes(&lowered.star_set),
                false => Vec::new(),
            },
        };
        // The sets prepared beside the lowering, in request order; the others prepared here.
        let early: Vec<Option<(NodeSet, u64)>> =
            requests.iter().map(|r| prepared.take(r)).collect();
        let missing: Vec<&Request<'_>> = requests
            .iter()
            .zip(&early)
            .filter(|(_, e)| e.is_none())
            .map(|(r, _)| r)
            .collect();
        let mut late = crate::par::map_parts(
            &missing,
            crate::par::min_items(crate::par::worth_threads(table.len()), 64),
            |part| {
                let mut scratch = vec![0u64; words];
                part.iter().map(|r| b.prepare(r, &mut scratch)).collect()
            },
        )
        .into_iter();
        // Each missing request has its set from `late`, in order.
        let prepared = early.into_iter().map(|e| e.or_else(|| late.next()));
        let mut interner = Interner::default();
        let mut set_of = vec![u32::MAX; requests.len()];
        let mut self_sources = Vec::new();
        for ((request, set), slot) in requests.iter().zip(prepared).zip(&mut set_of) {
            // A request without a set (none is) has no set id: its items make no peers.
            let Some((set, hash)) = set else { continue };
            match (request, set) {
                (Request::SelfSources(_), NodeSet::List(ids)) => self_sources.extend(ids),
                (Request::SelfSources(_), _) => {}
                (_, set) => *slot = interner.intern(set, hash, len),
            }
        }
        let item_sets: Vec<Option<(u32, u32)>> = item_requests
            .iter()
            .map(|r| r.and_then(|(s, d)| Some((*set_of.get(s)?, *set_of.get(d)?))))
            .collect();
        // Each set is in the form that suits its size: a set on many edges is added word by
        // word, not node by node.
        let Interner { sets, counts, .. } = interner;
        // The distinct edges between two non-empty sets, and the sets on one.
        let empty = |x: u32| counts.get(x as usize).is_none_or(|&c| c == 0);
        let mut seen: crate::hash::Set<(u32, u32)> = crate::hash::Set::default();
        let mut edges: Vec<(u32, u32)> = Vec::new();
        let mut on_edge = vec![false; sets.len()];
        for &(s, d) in item_sets.iter().flatten() {
            if empty(s) || empty(d) || !seen.insert((s, d)) {
                continue;
            }
            edges.push((s, d));
            for x in [s, d] {
                if let Some(flag) = on_edge.get_mut(x as usize) {
                    *flag = true;
                }
            }
        }
        let (mut member_sets, mut universal) = (Vec::new(), Vec::new());
        for (i, (&on, &count)) in on_edge.iter().zip(&counts).enumerate() {
            match (on, count == len) {
                (false, _) => {}
                (true, true) => universal.push(crate::nodes::index(i)),
                (true, false) => member_sets.push(crate::nodes::index(i)),
            }
        }
        // Per set, the sets on the other side of its edges; each set's reach (the union of
        // those) is computed on first use ([`PeerIndex::reach`]).
        let adjacent = crate::pernode::PerNode::from_pairs(
            sets.len(),
            edges
                .iter()
                .flat_map(|&(s, d)| [(NodeId::new(s as usize), d), (NodeId::new(d as usize), s)]),
        );
        let (views, route_items) =
            route_views(table, routes, lowered, &item_sets, &sets, route_items);
        let self_sources = NodeSet::from_ids(&self_sources, len);
        PeerIndex {
            len,
            item_sets,
            reach: (0..sets.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            sets,
            adjacent,
            member_sets,
            membership: std::sync::OnceLock::new(),
            scans: std::sync::atomic::AtomicUsize::new(0),
            universal,
            universal_reach: std::sync::OnceLock::new(),
            self_sources,
            routes: views,
            route_items,
        }
    }

    /// The items to and from each route, as this index found them. A later compile may take
    /// them when its items are these (the same rules' items, in the same order) and no node
    /// entering or leaving them has an address in a route: the routes' items were found
    /// again on every node event (3% of a member join's work on `large`).
    pub(crate) fn route_items(&self) -> &Arc<RouteItems> {
        &self.route_items
    }

    /// The nodes (one bit each) whose peers, as the unions of their sets' reaches give them,
    /// may differ between `old` and `self` (indexes of two compiles of one node table), the
    /// changed items of each lowering given by `changed` ([`crate::lower::ChangedItems`]).
    /// A pair of nodes can gain or lose its peer relation only through a changed item, one
    /// node on each side, and the relation is symmetric: so only the nodes on the smaller
    /// side of each changed item have their unions compared (nodes in the same sets on both
    /// sides share one comparison), and a node on the larger side is marked when its relation
    /// with one of them flipped. `autogroup:self` peers are not compared here
    /// ([`PeerIndex::self_alike`]).
    pub(crate) fn flipped(
        &self,
        old: &PeerIndex,
        changed: &crate::lower::ChangedItems,
    ) -> Vec<u64> {
        let words = self.len.div_ceil(64);
        let mut flipped = vec![0u64; words];
        let mut done = vec![0u64; words];
        let mut groups: HashMap<Combination<'_>, Vec<NodeId>> = HashMap::new();
        for (index, flags) in [(old, &changed.old), (self, &changed.new)] {
            for (sets, _) in index.item_sets.iter().zip(flags).filter(|(_, &c)| c) {
                let Some((s, d)) = *sets else {
                    continue;
                };
                let (Some(s), Some(d)) = (index.sets.get(s as usize), index.sets.get(d as usize))
                else {
                    continue;
                };
                let (s_count, d_count) = (s.count(self.len), d.count(self.len));
                if s_count == 0 || d_count == 0 {
                    continue;
                }
                let small = if s_count <= d_count { s } else { d };
                for x in small.ids(self.len) {
                    if bit(&done, x) {
                        continue;
                    }
                    set_bit(&mut done, x);
                    groups
                        .entry((
                            old.membership().get(x.index()),
                            self.membership().get(x.index()),
                        ))
                        .or_default()
                        .push(x);
                }
            }
        }
        // The groups' comparisons on every core, each part into a bit map of its own.
        let groups: Vec<(Combination<'_>, Vec<NodeId>)> = groups.into_iter().collect();
        let parts = crate::par::map_parts(
            &groups,
            crate::par::min_items(crate::par::worth_threads(self.len), 8),
            |part| {
                let mut mine = vec![0u64; words];
                for ((was, is), members) in part {
                    let mut differ = old.reach_of(was);
                    let now = self.reach_of(is);
                    differ.iter_mut().zip(&now).for_each(|(w, n)| *w ^= n);
                    if differ.iter().any(|&w| w != 0) {
                        mine.iter_mut().zip(&differ).for_each(|(f, d)| *f |= d);
                        members.iter().for_each(|&x| set_bit(&mut mine, x));
                    }
                }
                vec![mine]
            },
        );
        for part in parts {
            flipped.iter_mut().zip(&part).for_each(|(f, p)| *f |= p);
        }
        flipped
    }

    /// True when node `id`'s `autogroup:self` peers are alike in `self` and `other` (an index
    /// of the same node table): it and its owner's devices are self sources on both sides
    /// or on neither.
    pub(crate) fn self_alike(&self, other: &PeerIndex, table: &NodeTable, id: NodeId) -> bool {
        let owner_devices = table
            .get(id)
            .and_then(|n| n.owner)
            .and_then(|u| table.devices.get(u.index()))
            .unwrap_or_default();
        std::iter::once(&id)
            .chain(owner_devices)
            .all(|&m| self.self_sources.contains(m) == other.self_sources.contains(m))
    }

    /// Every node's sets (of `member_sets`), built on first use.
    fn membership(&self) -> &crate::pernode::PerNode {
        self.membership.get_or_init(|| {
            let lists: Vec<(u32, Vec<NodeId>)> = self
                .member_sets
                .iter()
                .map(|&s| {
                    (
                        s,
                        self.sets
                            .get(s as usize)
                            .map_or_else(Vec::new, |set| set.ids(self.len)),
                    )
                })
                .collect();
            crate::pernode::PerNode::from_lists(
                self.len,
                lists.iter().map(|(s, ids)| (*s, ids.as_slice())),
            )
        })
    }

    /// The sets (of `member_sets`) holding node `id`, ascending: from `membership` once
    /// built; before that, for the first [`SCANS`] nodes asked about, by testing each set
    /// (O(sets), about 0.1 ms on `large`), then by building it.
    fn member_of(&self, id: NodeId) -> std::borrow::Cow<'_, [u32]> {
        use std::sync::atomic::Ordering;
        if let Some(built) = self.membership.get() {
            return std::borrow::Cow::Borrowed(built.get(id.index()));
        }
        if self.scans.fetch_add(1, Ordering::Relaxed) < SCANS {
            let holding: Vec<u32> = self
                .member_sets
                .iter()
                .copied()
                .filter(|&s| {
                    self.sets
                        .get(s as usize)
                        .is_some_and(|set| set.contains(id))
                })
                .collect();
            // Debug builds compare the scan with the built lists (building them at the first
            // scan, so each index is compared once).
            debug_assert_eq!(
                holding.as_slice(),
                self.membership().get(id.index()),
                "a node's sets found by scanning differ from the built lists"
            );
            return std::borrow::Cow::Owned(holding);
        }
        std::borrow::Cow::Borrowed(self.membership().get(id.index()))
    }

    /// The union of the reaches of the sets `member_of` and of every universal set.
    fn reach_of(&self, member_of: &[u32]) -> Vec<u64> {
        let mut bits = self
            .universal_reach
            .get_or_init(|| {
                let mut bits = vec![0u64; self.len.div_ceil(64)];
                for &s in &self.universal {
                    if let Some(set) = self.reach(s) {
                        set.or_into(&mut bits);
                    }
                }
                bits
            })
            .clone();
        for &s in member_of {
            if let Some(set) = self.reach(s) {
                set.or_into(&mut bits);
            }
        }
        bits
    }

    /// Set `s`'s reach: the union of the sets on the other side of its edges, computed the
    /// first time it is asked for (by whichever thread asks first).
    fn reach(&self, s: u32) -> Option<&NodeSet> {
        let slot = self.reach.get(s as usize)?;
        Some(slot.get_or_init(|| {
            let mut bits = vec![0u64; self.len.div_ceil(64)];
            for &other in self.adjacent.get(s as usize) {
                if let Some(set) = self.sets.get(other as usize) {
                    set.or_into(&mut bits);
                }
            }
            NodeSet::from_bits(bits, self.len)
        }))
    }

    /// The peers of node `id`, one bit per node id.
    pub(crate) fn peer_bits(&self, table: &NodeTable, id: NodeId) -> Vec<u64> {
        let mut bits = self.reach_of(&self.member_of(id));
        if let Some(node) = table.get(id) {
            if let Some(devices) = node.owner.and_then(|u| table.devices.get(u.index())) {
                let mine = self.self_sources.contains(id);
                for &m in devices {
                    if mine || self.self_sources.contains(m) {
                        set_bit(&mut bits, m);
                    }
                }
            }
        }
        clear_bit(&mut bits, id);
        // `All` fills whole words; clear the bits past the last node.
        if let Some(last) = bits.last_mut() {
            let used = self.len % 64;
            if used != 0 {
                *last &= (1u64 << used) - 1;
            }
        }
        bits
    }

    /// Everything that decides who is shown route number `route` and through which router,
    /// as plain bitmaps (comparable across compiles of the same inventory): the visible and
    /// direct sets, and each `via` rule's source set with its tags.
    pub(crate) fn route_signature(&self, route: usize) -> Option<RouteSignature> {
        let view = self.routes.get(route)?;
        let words = self.len.div_ceil(64);
        let bits = |set: &NodeSet| {
            let mut b = vec![0u64; words];
            set.or_into(&mut b);
            b
        };
        let via = view
            .via
            .iter()
            .map(|(s, tags)| {
                let set = self.sets.get(*s as usize).map(bits).unwrap_or_default();
                (set, tags.clone())
            })
            .collect();
        let mut visible = bits(&view.visible);
        view.servers
            .iter()
            .for_each(|&id| set_bit(&mut visible, id));
        Some((visible, bits(&view.direct), via))
    }

    /// True if `viewer` is shown route number `route` at all.
    pub(crate) fn route_visible(&self, route: usize, viewer: NodeId) -> bool {
        self.routes
            .get(route)
            .is_some_and(|r| r.visible.contains(viewer) || r.servers.contains(&viewer))
    }

    /// The router carrying route number `route` for `viewer`: a `via` router when the viewer's
    /// only rules to the route go through `via`, else the primary.
    pub(crate) fn carrier(
        &self,
        table: &NodeTable,
        routes: &RouteTable,
        route: usize,
        viewer: NodeId,
    ) -> Option<NodeId> {
        let entry = routes.routes.get(route)?;
        let primary = entry.servers.first().copied();
        let Some(view) = self.routes.get(route) else {
            return primary;
        };
        if view.via.is_empty() || view.direct.contains(viewer) {
            return primary;
        }
        let tags: Vec<&Arc<str>> = view
            .via
            .iter()
            .filter(|(s, _)| {
                self.sets
                    .get(*s as usize)
                    .is_some_and(|set| set.contains(viewer))
            })
            .flat_map(|(_, tags)| tags.iter())
            .collect();
        if tags.is_empty() {
            return primary;
        }
        entry
            .servers
            .iter()
            .copied()
            .find(|&id| {
                table
                    .get(id)
                    .is_some_and(|n| tags.iter().any(|t| n.has_tag(t)))
            })
            .or(primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A set's form and members.
    fn shape(set: &NodeSet, len: usize) -> (u8, Vec<NodeId>) {
        let kind = match set {
            NodeSet::All => 0,
            NodeSet::List(_) => 1,
            NodeSet::Bits(_) => 2,
        };
        (kind, set.ids(len))
    }

    proptest! {
        /// A set formed by `canonical`, from ids in any order, with repeats and ids past
        /// the nodes, is the set a sort and a bit map give (same form, same members), hashes
        /// as that set does, and leaves the scratch map clear.
        #[test]
        fn canonical_sets_are_as_a_sort_and_a_map_give(
            len in 0usize..3000,
            raw in proptest::collection::vec(0usize..3100, 0..3000),
            order in 0u8..3,
            // Few ids (around the size at which a list becomes a map), or all.
            take in prop_oneof![0usize..200, Just(usize::MAX)],
        ) {
            let mut ids: Vec<NodeId> = raw.iter().take(take).map(|&i| NodeId::new(i)).collect();
            match order {
                0 => {}
                1 => ids.sort_unstable(),
                _ => {
                    ids.retain(|id| id.index() < len);
                    ids.sort_unstable();
                    ids.dedup();
                }
            }
            let mut bits = vec![0u64; len.div_ceil(64)];
            ids.iter()
                .filter(|id| id.index() < len)
                .for_each(|&id| set_bit(&mut bits, id));
            let expected = NodeSet::from_bits(bits, len);
            let mut scratch = vec![0u64; len.div_ceil(64)];
            let set = canonical(std::borrow::Cow::Borrowed(&ids), len, &mut scratch);
            prop_assert_eq!(shape(&set, len), shape(&expected, len));
            prop_assert_eq!(set_hash(&set), set_hash(&expected));
            prop_assert!(set == expected);
            prop_assert!(scratch.iter().all(|&w| w == 0));
            prop_assert_eq!(scratch.len(), len.div_ceil(64));
        }
    }
}
