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
use crate::Text;

mod routes;
mod sets;

pub(crate) use routes::RouteItems;
use routes::*;
use sets::*;
pub(crate) use sets::{merge_unique, prepared_beside, Lists, NodeSet, Prepared};

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

/// Groups [`PeerIndex::flips`] keeps at most (each holds two bit maps of every node: 25 KB
/// on `large`); past it, the nodes' peers are patched group by group of their sets.
const MAX_FLIP_GROUPS: usize = 256;

/// Nodes one membership group [`PeerIndex::flips`] compared, whose peers changed: the peers
/// they gained and lost (one bit per node; bits past the last node may be set).
#[derive(Debug)]
pub(crate) struct FlipGroup {
    members: Vec<NodeId>,
    gained: Vec<u64>,
    lost: Vec<u64>,
}

/// The compared groups whose peers changed ([`PeerIndex::flips`]), and each member's group.
#[derive(Debug)]
pub(crate) struct Flips {
    groups: Vec<FlipGroup>,
    group_of: HashMap<NodeId, usize>,
}

impl Flips {
    fn new(groups: Vec<FlipGroup>) -> Flips {
        let group_of = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group.members.iter().map(move |&x| (x, g)))
            .collect();
        Flips { groups, group_of }
    }

    /// The peers node `x` gained (`true`) and lost through the unions of its sets' reaches,
    /// ascending, each once; `None` if the groups disagree on one (they cannot: the peer
    /// relation is symmetric).
    pub(crate) fn of(&self, x: NodeId, len: usize) -> Option<Vec<(NodeId, bool)>> {
        let mut pairs = Vec::new();
        if let Some(group) = self.group_of.get(&x).and_then(|&g| self.groups.get(g)) {
            for (bits, gained) in [(&group.gained, true), (&group.lost, false)] {
                pairs.extend(
                    crate::bits::iter_bits(bits)
                        .filter(|p| p.index() < len)
                        .map(|p| (p, gained)),
                );
            }
        }
        for group in &self.groups {
            for (bits, gained) in [(&group.gained, true), (&group.lost, false)] {
                if bit(bits, x) {
                    pairs.extend(group.members.iter().map(|&y| (y, gained)));
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        match pairs.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
            true => None,
            false => Some(pairs),
        }
    }
}

/// [`PeerIndex::route_signature`]: visible, direct, and the `via` rules.
pub(crate) type RouteSignature = (Vec<u64>, Vec<u64>, Vec<(Vec<u64>, Arc<[Text]>)>);

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
    ///
    /// When `keep`, also the compared groups whose peers changed, each with the peers its
    /// nodes gained and lost ([`Flips`]): every flipped pair of nodes has
    /// one node in such a group, so each node's gains and losses are found from them (its
    /// own group's, and the groups whose gains or losses hold it). `None` past
    /// [`MAX_FLIP_GROUPS`] such groups.
    pub(crate) fn flips(
        &self,
        old: &PeerIndex,
        changed: &crate::lower::ChangedItems,
        keep: bool,
    ) -> (Vec<u64>, Option<Flips>) {
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
                let mut kept = Vec::new();
                for ((was, is), members) in part {
                    let mut differ = old.reach_of(was);
                    let now = self.reach_of(is);
                    if keep && kept.len() <= MAX_FLIP_GROUPS && differ != now {
                        kept.push(FlipGroup {
                            members: members.clone(),
                            gained: now.iter().zip(&differ).map(|(n, w)| n & !w).collect(),
                            lost: differ.iter().zip(&now).map(|(w, n)| w & !n).collect(),
                        });
                    }
                    differ.iter_mut().zip(&now).for_each(|(w, n)| *w ^= n);
                    if differ.iter().any(|&w| w != 0) {
                        mine.iter_mut().zip(&differ).for_each(|(f, d)| *f |= d);
                        members.iter().for_each(|&x| set_bit(&mut mine, x));
                    }
                }
                vec![(mine, kept)]
            },
        );
        let mut groups = Vec::new();
        for (part, kept) in parts {
            flipped.iter_mut().zip(&part).for_each(|(f, p)| *f |= p);
            groups.extend(kept);
        }
        let flips = (keep && groups.len() <= MAX_FLIP_GROUPS).then(|| Flips::new(groups));
        (flipped, flips)
    }

    /// True when node `p` is in the union of the reaches of the sets `member_of` and of every
    /// universal set ([`PeerIndex::reach_of`]), found without building that union.
    pub(crate) fn reaches(&self, member_of: &[u32], p: NodeId) -> bool {
        bit(self.universal_bits(), p)
            || member_of
                .iter()
                .any(|&s| self.reach(s).is_some_and(|r| r.contains(p)))
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

    /// Builds every node's list of sets now, if not built yet (a policy event builds them on
    /// the second core while the first compares the two lowerings; [`PeerIndex::flips`]
    /// then finds them listed).
    pub(crate) fn prepare_membership(&self) {
        let _ = self.membership();
    }

    /// The sets (of `member_sets`) holding node `id`, ascending: from `membership` once
    /// built; before that, for the first [`SCANS`] nodes asked about, by testing each set
    /// (O(sets), about 0.1 ms on `large`), then by building it. Nodes holding the same sets
    /// share their peers ([`PeerIndex::reach_of`]) but for [`PeerIndex::own_peers`] and
    /// themselves.
    pub(crate) fn member_of(&self, id: NodeId) -> std::borrow::Cow<'_, [u32]> {
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

    /// The union of the reaches of the sets `member_of` and of every universal set: the
    /// peers every node holding those sets ([`PeerIndex::member_of`]) has, one bit per node
    /// id (bits past the last node may be set, and so may the node's own).
    pub(crate) fn reach_of(&self, member_of: &[u32]) -> Vec<u64> {
        let mut bits = self.universal_bits().clone();
        for &s in member_of {
            if let Some(set) = self.reach(s) {
                set.or_into(&mut bits);
            }
        }
        bits
    }

    /// The union of the universal sets' reaches, one bit per node (computed on first use).
    fn universal_bits(&self) -> &Vec<u64> {
        self.universal_reach.get_or_init(|| {
            let mut bits = vec![0u64; self.len.div_ceil(64)];
            for &s in &self.universal {
                if let Some(set) = self.reach(s) {
                    set.or_into(&mut bits);
                }
            }
            bits
        })
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
        for m in self.own_peers(table, id, &bits) {
            set_bit(&mut bits, m);
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

    /// The peers node `id` has beyond `reach`, its sets' [`PeerIndex::reach_of`]: its
    /// owner's devices an `autogroup:self` rule pairs it with, where `reach` lacks them (never
    /// `id` itself).
    pub(crate) fn own_peers(&self, table: &NodeTable, id: NodeId, reach: &[u64]) -> Vec<NodeId> {
        let Some(devices) = table
            .get(id)
            .and_then(|node| node.owner)
            .and_then(|u| table.devices.get(u.index()))
        else {
            return Vec::new();
        };
        let mine = self.self_sources.contains(id);
        devices
            .iter()
            .copied()
            .filter(|&m| {
                m != id && (mine || self.self_sources.contains(m)) && !crate::bits::bit(reach, m)
            })
            .collect()
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
        // The `via` tags of the rules whose sources hold the viewer, not listed (asked once
        // per router per viewer when every node is fingerprinted).
        let tags = || {
            view.via
                .iter()
                .filter(|(s, _)| {
                    self.sets
                        .get(*s as usize)
                        .is_some_and(|set| set.contains(viewer))
                })
                .flat_map(|(_, tags)| tags.iter())
        };
        if tags().next().is_none() {
            return primary;
        }
        entry
            .servers
            .iter()
            .copied()
            .find(|&id| table.get(id).is_some_and(|n| tags().any(|t| n.has_tag(t))))
            .or(primary)
    }
}

#[cfg(test)]
mod tests;
