//! Assembling one node's packet filter from the lowered items: pick the items that reach the
//! node, settle the per-node keys (`autogroup:self` sources, `via` routers), order the parts by
//! slot and merge network parts that share one.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Body, Item, Lowered};
use crate::nodes::{NodeId, NodeInfo, NodeTable};
use crate::resolve::Target;
use crate::wire::{CapGrant, FilterRule, NetPortRange, Ports, Strings};
use crate::Text;

/// The key rule merging uses: interned `SrcIPs` (or a per-node list) and `IPProto`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SrcKey {
    Id(u32),
    Set(Strings),
}

/// What assembling one node's filter knows beyond the items: the `autogroup:self` sources of
/// each self item, and the slots claimed per node (by self and `via` items).
#[derive(Default)]
struct NodeState {
    /// Each `autogroup:self` item's sources on the node.
    narrowed: HashMap<u32, SelfSources>,
    claimed: HashMap<(SrcKey, Option<u8>), u32>,
}

/// One item's share of a node's filter, before merging.
enum Part<'a> {
    Net {
        src: Strings,
        proto: Option<u8>,
        dsts: Dsts<'a>,
        ports: &'a [Ports],
    },
    Rule(FilterRule),
}

/// A network part's destination addresses: the node's own (the common case, borrowed), or
/// others (`*`, literals, exit routes).
pub(crate) enum Dsts<'a> {
    Own(&'a [Text]),
    Listed(Vec<Text>),
    /// A spreading item's node list on an exit node of both families, the same on every
    /// one ([`SpreadCache`]).
    Shared(Arc<SpreadChunk>),
}

impl Dsts<'_> {
    /// The addresses.
    pub(crate) fn ips(&self) -> &[Text] {
        match self {
            Dsts::Own(ips) => ips,
            Dsts::Listed(ips) => ips,
            Dsts::Shared(chunk) => &chunk.ips,
        }
    }
}

/// One spreading item's destinations on the exit nodes of both families (every address of
/// the nodes it names: the same list on each, [`Lowered::dst_ips`]).
#[derive(Debug)]
pub(crate) struct SpreadChunk {
    /// The item.
    pub(crate) item: u32,
    ips: Vec<Text>,
}

/// The [`SpreadChunk`]s of one compile, by item, listed when an exit node's filter first
/// needs them, and the fingerprint hashes of the rules made of them alone, by their items:
/// under Tailscale's exit filters an exit node holds most of the policy, and without this
/// each exit node listed every item's destinations again and each fingerprint hashed them
/// again. A rule whose parts are all chunks is the same rule on every exit node that has
/// it (its sources and protocol are its first item's, its entries the items' own), so its
/// hash is taken once. Belongs to one lowering and node table ([`crate::Compiled`]).
#[derive(Debug, Default)]
pub(crate) struct SpreadCache {
    chunks: std::sync::Mutex<crate::hash::Map<u32, Arc<SpreadChunk>>>,
    rules: std::sync::Mutex<crate::hash::Map<Vec<u32>, u64>>,
    /// The sources of an `autogroup:self` item for the devices of one owner, by (owner, item),
    /// with their `SrcIPs` list's number when the lowering has one: the same on each of the
    /// owner's devices. Built per device, they cost O(devices log devices) on each, so a
    /// join among one user's 4,000 devices took 4 s (found by a hostile sweep of the
    /// bindings). Kept only for owners of at least [`SELF_SHARED`] devices.
    selves: std::sync::Mutex<crate::hash::Map<(usize, u32), SelfSources>>,
}

/// An `autogroup:self` item's sources on a node, with their `SrcIPs` list's number when the
/// lowering has one.
type SelfSources = (Strings, Option<u32>);

/// The fewest devices of one owner whose `autogroup:self` sources [`SpreadCache`] keeps.
const SELF_SHARED: usize = 8;

impl SpreadCache {
    /// Item `i`'s chunk, listed by `list` when it is not yet (outside the lock: two threads
    /// may list it both, and the first kept is the one every later caller gets).
    fn chunk(&self, i: u32, list: impl FnOnce() -> Vec<Text>) -> Arc<SpreadChunk> {
        let known = |chunks: &crate::hash::Map<u32, Arc<SpreadChunk>>| chunks.get(&i).cloned();
        if let Some(chunk) = self.chunks.lock().ok().and_then(|c| known(&c)) {
            return chunk;
        }
        let chunk = Arc::new(SpreadChunk {
            item: i,
            ips: list(),
        });
        match self.chunks.lock() {
            Ok(mut chunks) => chunks.entry(i).or_insert(chunk).clone(),
            // A poisoned lock (a panic elsewhere while it was held) only loses the sharing.
            Err(_) => chunk,
        }
    }

    /// How many items' chunks and rules' hashes it holds.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        let chunks = self.chunks.lock().map_or(0, |c| c.len());
        (chunks, self.rules.lock().map_or(0, |r| r.len()))
    }

    /// The hash of the rule made of the chunks of `items` alone, taken by `hash` when it is
    /// not known yet ([`crate::hash::memo`]).
    pub(crate) fn rule_hash(&self, items: Vec<u32>, hash: impl FnOnce() -> u64) -> u64 {
        crate::hash::memo(&self.rules, items, hash)
    }

    /// Item `i`'s `autogroup:self` sources for the devices of `owner`, made by `make` when
    /// they are not kept yet (outside the lock, as [`SpreadCache::chunk`]).
    fn selves(&self, owner: usize, i: u32, make: impl FnOnce() -> SelfSources) -> SelfSources {
        let key = (owner, i);
        if let Some(known) = self.selves.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return known;
        }
        let made = make();
        match self.selves.lock() {
            Ok(mut selves) => selves.entry(key).or_insert(made).clone(),
            Err(_) => made,
        }
    }
}

/// What sets an exit node's filter apart from other exit nodes' ([`Lowered::exit_filter_key`]):
/// the `via` items it carries and the parts of its items that are not spread, with their
/// destinations.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExitKey {
    claims: Vec<u32>,
    parts: Vec<(u32, Vec<Text>)>,
}

/// One rule of a node's packet filter, not yet in wire form ([`Lowered::filter_parts`]):
/// network parts merged under one slot, their `DstPorts` each address with each port range,
/// in order; or a whole rule (capability grants).
pub(crate) enum MergedRule<'a> {
    Net {
        src: Strings,
        proto: Option<u8>,
        dsts: Vec<(Dsts<'a>, &'a [Ports])>,
    },
    Whole(FilterRule),
}

impl MergedRule<'_> {
    /// How many `DstPorts` entries it has.
    pub(crate) fn entries(&self) -> usize {
        match self {
            MergedRule::Net { dsts, .. } => net_entries(dsts),
            MergedRule::Whole(rule) => rule.dst_ports.len(),
        }
    }

    /// Whether the wire filter keeps it: it has an entry or a capability grant.
    pub(crate) fn kept(&self) -> bool {
        match self {
            MergedRule::Net { .. } => self.entries() > 0,
            MergedRule::Whole(rule) => !rule.dst_ports.is_empty() || !rule.cap_grant.is_empty(),
        }
    }

    /// The wire rule.
    fn into_wire(self) -> FilterRule {
        match self {
            MergedRule::Net { src, proto, dsts } => {
                let mut dst_ports = Vec::with_capacity(net_entries(&dsts));
                for (d, ports) in &dsts {
                    dst_ports.extend(port_ranges(d.ips(), ports));
                }
                FilterRule {
                    src_bits: Vec::new(),
                    src_ips: src,
                    dst_ports,
                    ip_proto: proto.into_iter().collect(),
                    cap_grant: Vec::new(),
                }
            }
            MergedRule::Whole(rule) => rule,
        }
    }
}

/// [`MergedRule::entries`] of a network rule's parts.
fn net_entries(dsts: &[(Dsts<'_>, &[Ports])]) -> usize {
    dsts.iter()
        .map(|(d, ports)| d.ips().len() * ports.len())
        .sum()
}

/// `a` and `b` (each ascending, without repeats) merged into `out`, each value once.
fn merge_unique(a: impl Iterator<Item = u32>, b: &[u32], out: &mut Vec<u32>) {
    let mut b = b.iter().copied().peekable();
    for x in a {
        while let Some(y) = b.next_if(|&y| y <= x) {
            if y < x {
                out.push(y);
            }
        }
        out.push(x);
    }
    out.extend(b);
}

impl Lowered {
    /// The items that may concern node `id`, in policy order.
    ///
    /// The node's list, the global items and the self items are each ascending: merged in
    /// one pass, where sorting their concatenation was a tenth of a policy event on `large`
    /// (6,000 nodes' lists of about 2,300 items, twice).
    pub(super) fn candidates(&self, id: NodeId, node: &NodeInfo) -> Vec<u32> {
        let mut out = self.candidates_without_spread(id, node);
        if self.spreads_on(node) {
            // An exit route overlaps every destination of its family: every item that
            // spreads to exit nodes may put entries here.
            let spread: Vec<u32> = (0u32..)
                .zip(&self.items)
                .filter_map(|(i, item)| item.spreads_to_exits().then_some(i))
                .collect();
            let listed = std::mem::take(&mut out);
            merge_unique(listed.into_iter(), &spread, &mut out);
        }
        out
    }

    /// [`Lowered::candidates`] but for the items an exit node receives as one.
    fn candidates_without_spread(&self, id: NodeId, node: &NodeInfo) -> Vec<u32> {
        let listed = self.by_node.get(id.index());
        let selves: &[u32] = match node.is_tagged() {
            true => &[],
            false => &self.self_items,
        };
        let mut others = Vec::new();
        let others: &[u32] = match (self.global.is_empty(), selves.is_empty()) {
            (_, true) => &self.global,
            (true, false) => selves,
            (false, false) => {
                merge_unique(self.global.iter().copied(), selves, &mut others);
                &others
            }
        };
        let mut out = Vec::with_capacity(listed.len() + others.len());
        merge_unique(listed.iter(), others, &mut out);
        debug_assert!(
            {
                let mut sorted: Vec<u32> = listed.to_vec();
                sorted.extend_from_slice(&self.global);
                sorted.extend_from_slice(selves);
                sorted.sort_unstable();
                sorted.dedup();
                sorted == out
            },
            "the merged candidates are the sorted union"
        );
        out
    }

    /// What makes node `id`'s filter its own when it is an approved exit node of both
    /// families under [`crate::ExitNodeFilters::AllDestinations`]; `None` for other nodes
    /// and for exit nodes with parts only they can have. Such a node receives every item that
    /// spreads to exit nodes, and each such item's part is the same on every one of them
    /// ([`Lowered::dst_ips`] keeps every address of both families, [`piece_on`] every piece
    /// with an address). What differs between two of them is their own: the `via` items
    /// whose tags a node carries (each claims its sources' slot, which moves the spreading
    /// items of those sources), the parts of the other items that are not spread (a `via`
    /// item's destinations on its carrier), and `autogroup:self` items and capability
    /// grants, which name the node's own addresses (no key). Two nodes with equal keys have
    /// equal filters, so the fingerprints hash each key's filter once per compile (the
    /// benches' `medium` has 20 exit nodes of 782,000 entries each, hashed on every event).
    pub(crate) fn exit_filter_key(&self, table: &NodeTable, id: NodeId) -> Option<ExitKey> {
        let node = table.get(id)?;
        if !self.spreads_whole_on(node) {
            return None;
        }
        if !node.is_tagged() && !self.self_items.is_empty() {
            return None;
        }
        let claims: Vec<u32> = self.carried_via(node).map(|(i, _)| i).collect();
        let mut parts = Vec::new();
        for i in self.candidates_without_spread(id, node) {
            let item = self.items.get(i as usize)?;
            if item.spreads_to_exits() {
                continue;
            }
            if item.body.is_self() {
                return None;
            }
            match self.part(table, id, i, item, &NodeState::default(), None) {
                None => {}
                Some((
                    _,
                    _,
                    Part::Net {
                        dsts: Dsts::Listed(ips),
                        ..
                    },
                )) => parts.push((i, ips)),
                Some(_) => return None,
            }
        }
        Some(ExitKey { claims, parts })
    }

    /// Whether node `node` is an exit node of both families receiving every spreading item,
    /// where each such item's part is the same on every one ([`Lowered::exit_filter_key`],
    /// [`SpreadCache`]).
    fn spreads_whole_on(&self, node: &NodeInfo) -> bool {
        self.spreads_on(node) && node.exit_v4 && node.exit_v6
    }

    /// The `via` items (with their numbers) whose tags node `node` carries.
    fn carried_via<'a>(&'a self, node: &'a NodeInfo) -> impl Iterator<Item = (u32, &'a Item)> {
        self.via_items.iter().filter_map(move |&i| {
            let item = self.items.get(i as usize)?;
            let tags = item.via.as_ref()?;
            tags.iter().any(|t| node.has_tag(t)).then_some((i, item))
        })
    }

    /// Node `id`'s packet filter (`spread`: the compile's shared exit node destinations).
    pub(crate) fn filter_rules(
        &self,
        table: &NodeTable,
        id: NodeId,
        spread: Option<&SpreadCache>,
    ) -> Vec<FilterRule> {
        self.filter_parts(table, id, spread)
            .into_iter()
            .filter(MergedRule::kept)
            .map(MergedRule::into_wire)
            .collect()
    }

    /// Node `id`'s packet filter before its wire form, in order (rules without an entry or
    /// grant included: the wire form leaves them out), so that its hash is taken without
    /// building it ([`crate::compiled`]'s fingerprints).
    pub(crate) fn filter_parts<'a>(
        &'a self,
        table: &'a NodeTable,
        id: NodeId,
        spread: Option<&SpreadCache>,
    ) -> Vec<MergedRule<'a>> {
        let Some(node) = table.get(id) else {
            return Vec::new();
        };
        let candidates = self.candidates(id, node);
        // `autogroup:self` sources first: they may claim an earlier slot for their key. An
        // owner of many devices has them shared by all its devices ([`SpreadCache::selves`]).
        let shared = node
            .owner
            .map(|u| u.index())
            .filter(|&u| table.devices.get(u).is_some_and(|d| d.len() >= SELF_SHARED))
            .and_then(|owner| Some((spread?, owner)));
        let mut state = NodeState::default();
        for &i in &candidates {
            let Some(item) = self.items.get(i as usize) else {
                continue;
            };
            if !item.body.is_self() {
                continue;
            }
            let make = || {
                let sources = self_sources(table, node, &item.src_targets);
                let known = match item.body {
                    Body::SelfNet { .. } if !sources.is_empty() => self.srcs.lookup(&sources),
                    _ => None,
                };
                (sources, known)
            };
            let (sources, known) = match shared {
                Some((cache, owner)) => cache.selves(owner, i, make),
                None => make(),
            };
            if let Body::SelfNet { proto, .. } = item.body {
                if !sources.is_empty() {
                    let key = match known {
                        Some(src) => SrcKey::Id(src),
                        None => SrcKey::Set(sources.clone()),
                    };
                    let global = match key {
                        SrcKey::Id(src) => self.first_slot.get(&(src, proto)).copied(),
                        SrcKey::Set(_) => None,
                    };
                    let slot = state.claimed.entry((key, proto)).or_insert(i);
                    *slot = (*slot).min(global.unwrap_or(u32::MAX));
                }
            }
            state.narrowed.insert(i, (sources, known));
        }
        // Network `via` items claim their key's slot on every node carrying a via tag, even
        // where they grant nothing.
        for (i, item) in self.carried_via(node) {
            let Body::Net { proto, .. } = &item.body else {
                continue;
            };
            let key = (SrcKey::Id(item.src), *proto);
            let global = self.first_slot.get(&(item.src, *proto)).copied();
            let slot = state.claimed.entry(key).or_insert(i);
            *slot = (*slot).min(i).min(global.unwrap_or(u32::MAX));
        }
        let mut parts: Vec<(u32, u32, Part<'a>)> = Vec::new();
        for &i in &candidates {
            let Some(item) = self.items.get(i as usize) else {
                continue;
            };
            if let Some(part) = self.part(table, id, i, item, &state, spread) {
                parts.push(part);
            }
        }
        // In slot order (items in one slot merge into one rule). The keys are sorted, not the
        // parts, which are ten times their size; each (slot, item) is a key of its own.
        let mut order: Vec<(u32, u32, usize)> = parts
            .iter()
            .enumerate()
            .map(|(k, &(slot, i, _))| (slot, i, k))
            .collect();
        order.sort_unstable();
        let mut parts: Vec<Option<Part<'a>>> = parts.into_iter().map(|(_, _, p)| Some(p)).collect();
        let mut rules: Vec<MergedRule<'a>> = Vec::new();
        let mut open: Option<u32> = None;
        for (slot, _, k) in order {
            let Some(part) = parts.get_mut(k).and_then(Option::take) else {
                continue;
            };
            match part {
                Part::Net {
                    src,
                    proto,
                    dsts,
                    ports,
                } => match (open, rules.last_mut()) {
                    (Some(s), Some(MergedRule::Net { dsts: merged, .. })) if s == slot => {
                        merged.push((dsts, ports));
                    }
                    _ => {
                        open = Some(slot);
                        rules.push(MergedRule::Net {
                            src,
                            proto,
                            dsts: vec![(dsts, ports)],
                        });
                    }
                },
                Part::Rule(rule) => {
                    open = None;
                    rules.push(MergedRule::Whole(rule));
                }
            }
        }
        rules
    }

    /// How many `DstPorts` entries and `CapGrant`s item `i` puts in node `id`'s filter (merging
    /// moves entries between rules but never adds or drops one); `None` for the
    /// `autogroup:self` kinds, whose share depends on the node's per-node sources.
    pub(super) fn entries_on(&self, table: &NodeTable, id: NodeId, i: u32) -> Option<usize> {
        let item = self.items.get(i as usize)?;
        if item.body.is_self() {
            return None;
        }
        Some(
            match self.part(table, id, i, item, &NodeState::default(), None) {
                None => 0,
                Some((_, _, Part::Net { dsts, ports, .. })) => dsts.ips().len() * ports.len(),
                Some((_, _, Part::Rule(rule))) => {
                    rule.dst_ports.len()
                        + rule.cap_grant.iter().map(|g| g.dsts.len()).sum::<usize>()
                }
            },
        )
    }

    /// What item `i` contributes to node `id`, with its slot.
    fn part<'a>(
        &'a self,
        table: &'a NodeTable,
        id: NodeId,
        i: u32,
        item: &'a Item,
        state: &NodeState,
        spread: Option<&SpreadCache>,
    ) -> Option<(u32, u32, Part<'a>)> {
        let node = table.get(id)?;
        let NodeState { narrowed, claimed } = state;
        let own_hosts = || node.hosts.to_vec();
        match &item.body {
            Body::Net { .. } if self.is_vacant(item) => None,
            Body::Net { proto, dst, ports } => {
                let shared = spread.filter(|_| {
                    matches!(dst, Target::Nodes(_))
                        && item.spreads_to_exits()
                        && self.spreads_whole_on(node)
                });
                let dsts = match shared {
                    Some(cache) => {
                        Dsts::Shared(cache.chunk(i, || self.dst_ips(table, (id, node), dst, true)))
                    }
                    None => self.dsts(table, (id, node), dst, item.spreads_to_exits()),
                };
                if dsts.ips().is_empty() {
                    return None;
                }
                let slot = claimed
                    .get(&(SrcKey::Id(item.src), *proto))
                    .map_or(item.slot, |&c| c.min(item.slot));
                let part = Part::Net {
                    src: self.srcs.get(item.src),
                    proto: *proto,
                    dsts,
                    ports,
                };
                Some((slot, i, part))
            }
            Body::SelfNet { proto, ports } => {
                let (src, known) = narrowed.get(&i).filter(|(s, _)| !s.is_empty())?.clone();
                let key = match known {
                    Some(id) => SrcKey::Id(id),
                    None => SrcKey::Set(src.clone()),
                };
                let slot = claimed.get(&(key, *proto)).copied().unwrap_or(i);
                let part = Part::Net {
                    src,
                    proto: *proto,
                    dsts: Dsts::Own(&node.texts),
                    ports,
                };
                Some((slot, i, part))
            }
            Body::App { .. } if item.via.is_some() => None,
            Body::App { dsts, caps } => {
                let cap_grant: Vec<CapGrant> = dsts
                    .iter()
                    .map(|t| narrow(id, node, t))
                    .filter(|d| !d.is_empty())
                    .map(|dsts| CapGrant {
                        caps: Vec::new(),
                        dsts,
                        cap_map: caps.clone(),
                    })
                    .collect();
                (!cap_grant.is_empty()).then(|| {
                    let rule = FilterRule {
                        src_bits: Vec::new(),
                        src_ips: self.srcs.get(item.src),
                        dst_ports: Vec::new(),
                        ip_proto: Vec::new(),
                        cap_grant,
                    };
                    (i, i, Part::Rule(rule))
                })
            }
            Body::Companion { caps, src_ips } => {
                let mut dsts: Vec<Text> = Vec::new();
                for target in item.src_targets.iter() {
                    for d in narrow(id, node, target) {
                        if !dsts.contains(&d) {
                            dsts.push(d);
                        }
                    }
                }
                (!dsts.is_empty()).then(|| {
                    let rule = FilterRule {
                        src_bits: Vec::new(),
                        src_ips: self.srcs.get(*src_ips),
                        dst_ports: Vec::new(),
                        ip_proto: Vec::new(),
                        cap_grant: vec![CapGrant {
                            caps: Vec::new(),
                            dsts,
                            cap_map: caps.clone(),
                        }],
                    };
                    (i, i, Part::Rule(rule))
                })
            }
            Body::SelfApp { caps } => {
                let src = narrowed.get(&i).filter(|(s, _)| !s.is_empty())?.0.clone();
                let rule = FilterRule {
                    src_bits: Vec::new(),
                    src_ips: src,
                    dst_ports: Vec::new(),
                    ip_proto: Vec::new(),
                    cap_grant: vec![CapGrant {
                        caps: Vec::new(),
                        dsts: own_hosts(),
                        cap_map: caps.clone(),
                    }],
                };
                Some((i, i, Part::Rule(rule)))
            }
            Body::SelfCompanion { caps } => {
                if !item.src_targets.iter().any(|t| t.contains_node(id, node)) {
                    return None;
                }
                let owner = node.owner?;
                let mut src: Vec<Text> = table
                    .devices
                    .get(owner.index())?
                    .iter()
                    .filter_map(|&m| table.get(m))
                    .flat_map(|m| m.texts.iter().cloned())
                    .collect();
                src.sort_unstable();
                let rule = FilterRule {
                    src_bits: Vec::new(),
                    src_ips: Arc::from(src),
                    dst_ports: Vec::new(),
                    ip_proto: Vec::new(),
                    cap_grant: vec![CapGrant {
                        caps: Vec::new(),
                        dsts: own_hosts(),
                        cap_map: caps.clone(),
                    }],
                };
                Some((i, i, Part::Rule(rule)))
            }
        }
    }

    /// The `DstPorts` addresses a destination target puts on node `id`: its own bare
    /// addresses, `*`, the internet ranges on an exit node, or a policy prefix (as written)
    /// holding one of its addresses, overlapping a route it serves, or, on an exit node,
    /// lying inside the internet.
    ///
    /// On an exit node, an item without `via` (`spread`) also puts every address of its
    /// destination in the families the node exits to, and every policy prefix of those
    /// families: Tailscale's control server treats `0.0.0.0/0` and `::/0` as routes
    /// overlapping every destination (captures of approved exit nodes receiving
    /// `tag:server:22`, a user's addresses and `10.33.0.0/16:*`), while the peer relation
    /// stays as the items' destination nodes say.
    pub(super) fn dst_ips(
        &self,
        table: &NodeTable,
        (id, node): (NodeId, &NodeInfo),
        target: &Target,
        spread: bool,
    ) -> Vec<Text> {
        // An item with `via` (not `spread`) lands on its carriers for their routes only.
        let carried = !spread;
        let spread = spread && self.spreads_on(node);
        // An exit node of both families keeps every address, each one's family not read.
        let every = node.exit_v4 && node.exit_v6;
        match target {
            Target::Wildcard | Target::DangerAll => vec![star()],
            Target::Internet if node.exit => self
                .internet
                .iter()
                .filter(|text| exits_to(node, text))
                .cloned()
                .collect(),
            Target::Internet | Target::SelfDevices => Vec::new(),
            Target::Nodes(ids) if spread => ids
                .iter()
                .flat_map(|&m| {
                    let (own, texts) = match table.get(m) {
                        _ if m == id => (true, &node.texts[..]),
                        Some(other) => (every, &other.texts[..]),
                        None => (false, &[][..]),
                    };
                    texts
                        .iter()
                        .filter(move |t| own || exits_to(node, t))
                        .cloned()
                })
                .collect(),
            Target::Nodes(ids) if ids.binary_search(&id).is_ok() => node.texts.to_vec(),
            Target::Nodes(_) => Vec::new(),
            Target::Literal(lit) => lit
                .pieces
                .iter()
                .filter(|p| piece_on(node, p, spread, carried))
                .map(|p| p.text.clone())
                .collect(),
        }
    }

    /// [`Lowered::dst_ips`], the node's own addresses borrowed, not listed.
    fn dsts<'a>(
        &self,
        table: &NodeTable,
        (id, node): (NodeId, &'a NodeInfo),
        target: &Target,
        spread: bool,
    ) -> Dsts<'a> {
        match target {
            Target::Nodes(ids) if !(spread && self.spreads_on(node)) => {
                match ids.binary_search(&id) {
                    Ok(_) => Dsts::Own(&node.texts),
                    Err(_) => Dsts::Listed(Vec::new()),
                }
            }
            // `spread` as given: `dst_ips` tells a `via` item's carrier by it.
            _ => Dsts::Listed(self.dst_ips(table, (id, node), target, spread)),
        }
    }

    /// True when [`Lowered::dst_ips`] is not empty, found without listing the addresses
    /// (a verdict per node of a member's join asked it 25,000 times on `large`).
    pub(super) fn has_dst_ips(
        &self,
        table: &NodeTable,
        (id, node): (NodeId, &NodeInfo),
        target: &Target,
        spread: bool,
    ) -> bool {
        // `spread` as given: an item with `via` (not `spread`) lands on its carriers for
        // their routes only.
        let spreads = spread && self.spreads_on(node);
        let has = match target {
            Target::Wildcard | Target::DangerAll => true,
            Target::Internet if node.exit => self.internet.iter().any(|text| exits_to(node, text)),
            Target::Internet | Target::SelfDevices => false,
            Target::Nodes(ids) if spreads => ids.iter().any(|&m| {
                if m == id {
                    return !node.texts.is_empty();
                }
                table
                    .get(m)
                    .is_some_and(|o| o.texts.iter().any(|t| exits_to(node, t)))
            }),
            Target::Nodes(ids) => !node.texts.is_empty() && ids.binary_search(&id).is_ok(),
            Target::Literal(lit) => lit
                .pieces
                .iter()
                .any(|p| piece_on(node, p, spreads, !spread)),
        };
        debug_assert_eq!(
            has,
            !self.dst_ips(table, (id, node), target, spread).is_empty()
        );
        has
    }
}

/// True when exit node `node` carries the internet range `text` (by its family).
fn exits_to(node: &NodeInfo, text: &str) -> bool {
    if text.contains(':') {
        node.exit_v6
    } else {
        node.exit_v4
    }
}

/// True when a policy prefix or range lands on `node`: it holds one of the node's addresses
/// (unless `carried`: a `via` item's carrier takes what its routes reach, not itself),
/// overlaps a route the node serves, or, on an exit node, has addresses of a family it exits
/// to (`spread`: an item without `via`, [`Lowered::dst_ips`]) or lies inside the internet
/// (a `via` item's carrier). A carrier took a piece holding its own address (an IP set of
/// its tailnet prefix and the route behind it): the router itself was opened, which `via`
/// does not grant (found by a fail-open review; headscale keeps only the destination
/// prefixes overlapping the carrier's routes).
fn piece_on(node: &NodeInfo, piece: &crate::resolve::Piece, spread: bool, carried: bool) -> bool {
    (!carried && node.address_in(&piece.set))
        || node.routes_overlap(&piece.set)
        || ((spread || piece.public) && node.exits_for(&piece.set))
}

fn port_ranges(ips: &[Text], ports: &[Ports]) -> Vec<NetPortRange> {
    let mut out = Vec::with_capacity(ips.len() * ports.len());
    for ip in ips {
        out.extend(ports.iter().map(|&ports| NetPortRange {
            bits: None,
            ip: ip.clone(),
            ports,
        }));
    }
    out
}

/// The wire's `*`, one string shared by every filter (a node's filter holds one per rule
/// to every destination; each was an allocation of its own).
fn star() -> Text {
    static STAR: std::sync::OnceLock<Text> = std::sync::OnceLock::new();
    STAR.get_or_init(|| Text::from("*")).clone()
}

/// `CapGrant.Dsts` of a target for one node: the node's `/32` and `/128` when the target
/// holds it, and policy prefixes overlapping a route it serves, as CIDRs.
pub(super) fn narrow(id: NodeId, node: &NodeInfo, target: &Target) -> Vec<Text> {
    match target {
        Target::Wildcard | Target::DangerAll => node.hosts.to_vec(),
        Target::Nodes(ids) if ids.binary_search(&id).is_ok() => node.hosts.to_vec(),
        Target::Literal(lit) => {
            let mut out = Vec::new();
            for (ip, host) in node.addrs().zip(node.hosts.iter()) {
                if lit.set.contains(ip) {
                    out.push(host.clone());
                }
            }
            // `Dsts` are `netip.Prefix`es: a bare address or a range would make the client
            // refuse the whole map response, so pieces are spelled as CIDRs here.
            for piece in &lit.pieces {
                if node.routes_overlap(&piece.set) {
                    out.extend(piece.set.to_prefixes().into_iter().map(Text::from));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// How many destinations [`narrow`] gives, without writing them (the filter-size check
/// counts an app grant's on every node it reaches: writing them was most of a refusal's
/// time).
fn narrow_len(id: NodeId, node: &NodeInfo, target: &Target) -> usize {
    match target {
        Target::Wildcard | Target::DangerAll => node.hosts.len(),
        Target::Nodes(ids) if ids.binary_search(&id).is_ok() => node.hosts.len(),
        Target::Literal(lit) => {
            let own = node
                .addrs()
                .zip(node.hosts.iter())
                .filter(|(ip, _)| lit.set.contains(*ip))
                .count();
            lit.pieces
                .iter()
                .filter(|piece| node.routes_overlap(&piece.set))
                .fold(own, |sum, piece| {
                    sum.saturating_add(piece.set.prefix_count())
                })
        }
        _ => 0,
    }
}

/// The sources of an `autogroup:self` item for node `node`: the addresses of its owner's
/// untagged devices that the item's sources hold, sorted.
pub(super) fn self_sources(table: &NodeTable, node: &NodeInfo, targets: &[Target]) -> Strings {
    let Some(devices) = node.owner.and_then(|u| table.devices.get(u.index())) else {
        return Arc::from(Vec::new());
    };
    let mut out: Vec<Text> = Vec::new();
    for &m in devices {
        let Some(device) = table.get(m) else { continue };
        if targets.iter().any(|t| t.contains_node(m, device)) {
            out.extend(device.texts.iter().cloned());
        }
    }
    out.sort_unstable();
    out.dedup();
    Arc::from(out)
}

impl Lowered {
    /// The most `DstPorts` entries (or `CapGrant` destinations) an item of this body may put
    /// in one node's filter, when no node has more than `max_texts` addresses: its
    /// destination's addresses on one node times its port ranges. O(1).
    pub(super) fn node_entries_bound(
        &self,
        body: &Body,
        src_targets: &[Target],
        max_texts: usize,
    ) -> u64 {
        let on_one_node = |target: &Target| -> usize {
            match target {
                Target::Wildcard | Target::DangerAll => 1,
                Target::Internet => self.internet.len(),
                Target::SelfDevices => 0,
                // An exit node receives every destination's addresses ([`Lowered::dst_ips`]).
                Target::Nodes(ids) if self.spread_exits => {
                    ids.len().max(1).saturating_mul(max_texts)
                }
                Target::Nodes(_) => max_texts,
                Target::Literal(lit) => lit.pieces.len(),
            }
        };
        // A `CapGrant`'s destinations ([`narrow`]): the node's own prefixes, and each piece
        // of a literal that overlaps a route it serves spelled as prefixes (a range is many).
        let narrowed = |target: &Target| -> usize {
            match target {
                Target::Wildcard | Target::DangerAll | Target::Nodes(_) => max_texts,
                Target::Literal(lit) => lit
                    .pieces
                    .iter()
                    .fold(max_texts, |sum, p| sum.saturating_add(p.set.prefix_count())),
                Target::Internet | Target::SelfDevices => 0,
            }
        };
        let sum = |targets: &[Target]| {
            targets
                .iter()
                .map(narrowed)
                .fold(0usize, usize::saturating_add)
        };
        let entries = match body {
            Body::Net { dst, ports, .. } => on_one_node(dst).saturating_mul(ports.len()),
            Body::SelfNet { ports, .. } => max_texts.saturating_mul(ports.len()),
            Body::App { dsts, .. } => sum(dsts),
            Body::Companion { .. } => sum(src_targets),
            Body::SelfApp { .. } | Body::SelfCompanion { .. } => max_texts,
        };
        u64::try_from(entries).unwrap_or(u64::MAX)
    }

    /// Refuse the policy when some node's packet filter would hold more than `limit`
    /// `DstPorts` entries and `CapGrant` destinations ([`crate::CompileLimits::max_node_filter_entries`]),
    /// each node's counted from its items (an `autogroup:self` item by its bound), pointing at
    /// the rule that puts the most there. Asked only when the items' summed bound is over
    /// `limit`: O(index entries) then.
    pub(super) fn check_node_entries(
        &self,
        policy: &aclc_policy::model::Policy,
        table: &NodeTable,
        limit: u64,
        max_texts: usize,
    ) -> Result<(), crate::error::CompileError> {
        for (k, node) in table.nodes.iter().enumerate() {
            let id = crate::nodes::NodeId::new(k);
            let mut total = 0u64;
            let mut most = (0u64, None);
            for i in self.candidates(id, node) {
                let Some(item) = self.items.get(i as usize) else {
                    continue;
                };
                let counted = match &item.body {
                    // An app grant (or its companion) counted, not written out.
                    Body::App { .. } if item.via.is_some() => Some(0),
                    Body::App { dsts, .. } => Some(
                        dsts.iter()
                            .map(|t| narrow_len(id, node, t))
                            .fold(0usize, usize::saturating_add),
                    ),
                    // At most the sum (the companion drops repeats).
                    Body::Companion { .. } => Some(
                        item.src_targets
                            .iter()
                            .map(|t| narrow_len(id, node, t))
                            .fold(0usize, usize::saturating_add),
                    ),
                    _ => self.entries_on(table, id, i),
                };
                let entries = match counted {
                    Some(n) => u64::try_from(n).unwrap_or(u64::MAX),
                    None => self.node_entries_bound(&item.body, &item.src_targets, max_texts),
                };
                total = total.saturating_add(entries);
                if entries > most.0 {
                    most = (entries, Some(item.origin));
                }
            }
            if total > limit {
                let span = most.1.and_then(|origin| rule_span(policy, origin));
                let help = if self.spreads_on(node) {
                    "an approved exit node receives every rule's destinations of the families \
                     it exits to, as Tailscale's control server sends them: on a large tailnet \
                     that is most of the policy. `ExitNodeFilters::InternetOnly` (`aclc \
                     compile --exit-node-filters internet`) keeps only the internet's, or raise \
                     the limit (`CompileLimits`)"
                } else {
                    "a grant's destinations times its `ip` entries, or a large IP set times \
                     many ports, all on one node: the compile budget (`CompileLimits`) bounds \
                     one node's filter; split the rule or narrow its destinations"
                };
                return Err(crate::error::CompileError::new(
                    crate::error::CompileErrorKind::BudgetExceeded,
                    span,
                    format!(
                        "node {}'s packet filter would hold more than {limit} entries (each \
                         destination address with each port range)",
                        node.name
                    ),
                )
                .with_help(help));
            }
        }
        Ok(())
    }
}

/// The span of the rule (ACL, grant or SSH rule) that starts at byte `origin`.
fn rule_span(policy: &aclc_policy::model::Policy, origin: u32) -> Option<aclc_policy::Span> {
    let grants = policy
        .grants
        .iter()
        .flat_map(|g| g.value.iter().map(|r| r.span));
    let acls = policy
        .acls
        .iter()
        .flat_map(|a| a.value.iter().map(|r| r.span));
    let ssh = policy
        .ssh
        .iter()
        .flat_map(|s| s.value.iter().map(|r| r.span));
    grants.chain(acls).chain(ssh).find(|s| s.start == origin)
}
