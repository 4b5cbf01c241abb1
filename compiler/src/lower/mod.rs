//! Lowering: `grants` and `acls` become one stream of rule items in policy order (grants
//! first, each ACL destination its own item), resolved once; each node's `FilterRule` list is
//! then assembled from the items that reach it.
//!
//! Tailscale's control plane merges network rules whose `SrcIPs` and `IPProto` are equal into
//! the rule where that pair first occurs in the policy, concatenating `DstPorts` without
//! de-duplication, and only then drops what does not concern a node. Every network item
//! therefore carries a *slot*: the index of the first item with its key. `autogroup:self`
//! items have per-node sources, so their key (and the slot it claims) is settled per node.
//! Rules carrying `CapGrant` are never merged.

use std::sync::Arc;

use aclc_policy::model::{Alias, Autogroup, Policy, PortRange, Selector};
use aclc_policy::Span;

use crate::addrset::{INTERNET_WIRE, TAILNET_WIRE};
use crate::error::{Budget, CompileError, CompileLimits};
use crate::nodes::{NodeId, NodeTable};
use crate::posture::{gate_of, Gate, Gates};
use crate::resolve::{Resolver, Target};
use crate::wire::{CapMap, Ports, Strings};
use crate::Text;

mod assemble;
pub(crate) use assemble::{Dsts, ExitKey, MergedRule, SpreadCache};
mod builder;
mod compare;
mod moves;
mod regroup;
mod reuse;
mod verdict;

use builder::*;
use reuse::*;

pub(crate) use compare::{
    changed_items, changed_items_wire, mark_reached, ChangedItems, WireComparison,
};
pub(crate) use moves::{login, ChangedNode, SourceMoves, Verdict};
pub(crate) use regroup::{pair_by_rule, regrouped};

/// Capabilities that bring a companion rule, reversed in direction, and the companion's name.
const COMPANIONS: [(&str, &str); 2] = [
    ("tailscale.com/cap/drive", "tailscale.com/cap/drive-sharer"),
    ("tailscale.com/cap/relay", "tailscale.com/cap/relay-target"),
];

/// Interned `SrcIPs` lists: equal lists get the same id, which is what rule merging keys on.
/// Lists are found by a hash of their content, computed once per list (a table of the lists
/// themselves would hash every string again on each resize).
#[derive(Debug, Default)]
pub(crate) struct SrcTable {
    sets: Vec<Strings>,
    /// Each list's content hash.
    hashes: Vec<u64>,
    /// Content hash -> ids of the lists with that hash (one, but for collisions).
    index: crate::hash::Map<u64, Vec<u32>>,
    /// Lists by address (built on first use), to find a rule's list's content hash
    /// ([`SrcTable::content_hash`]).
    by_address: std::sync::OnceLock<crate::hash::Map<usize, u32>>,
}

impl SrcTable {
    /// The id of a sorted, de-duplicated list.
    fn intern_sorted(&mut self, strings: Vec<Text>) -> u32 {
        let hash = Self::hash(&strings);
        self.intern_hashed(strings, hash)
    }

    /// [`SrcTable::intern_sorted`] of a list whose hash is known: a vector (made shared only
    /// when the list is new) or a shared list made already.
    fn intern_hashed<S: AsRef<[Text]> + Into<Strings>>(&mut self, strings: S, hash: u64) -> u32 {
        let slice = strings.as_ref();
        debug_assert!(slice.windows(2).all(|w| w.first() < w.last()));
        debug_assert_eq!(hash, Self::hash(slice));
        if let Some(id) = self.find(hash, slice) {
            return id;
        }
        self.push(strings.into(), hash)
    }

    /// The id of list `id` of `other` (a table of this process, so hashes agree), the list
    /// shared, not copied.
    fn intern_from(&mut self, other: &SrcTable, id: u32) -> Option<u32> {
        let (list, hash) = (
            other.sets.get(id as usize)?,
            *other.hashes.get(id as usize)?,
        );
        if let Some(id) = self.find(hash, list) {
            return Some(id);
        }
        Some(self.push(list.clone(), hash))
    }

    fn push(&mut self, list: Strings, hash: u64) -> u32 {
        let id = crate::nodes::index(self.sets.len());
        self.sets.push(list);
        self.hashes.push(hash);
        self.index.entry(hash).or_default().push(id);
        // Lists are added while lowering, before anything looks them up by address.
        self.by_address = std::sync::OnceLock::new();
        id
    }

    /// The content hash ([`SrcTable::hash`]) of `list` when it is one of this table's lists
    /// (the same allocation: a rule's `SrcIPs` taken from the table): known since the list
    /// was interned (a patched list's from the earlier one's in O(strings patched)), so a
    /// node's fingerprint reads it in O(1), not by hashing the list's strings.
    pub(crate) fn content_hash(&self, list: &Strings) -> Option<u64> {
        let by_address = self.by_address.get_or_init(|| {
            self.sets
                .iter()
                .enumerate()
                .map(|(i, set)| {
                    (
                        Arc::as_ptr(set).cast::<u8>() as usize,
                        crate::nodes::index(i),
                    )
                })
                .collect()
        });
        let id = *by_address.get(&(Arc::as_ptr(list).cast::<u8>() as usize))?;
        self.hashes.get(id as usize).copied()
    }

    /// A list's hash: the sum of its strings' hashes, so a list patched by a few strings
    /// is hashed from the earlier list's hash in O(strings patched) ([`Reuse::patched`]).
    /// Lists are sorted without repeats, so a sum loses nothing a sequence hash would
    /// keep; equal hashes are compared in full ([`SrcTable::find`]).
    pub(crate) fn hash(strings: &[Text]) -> u64 {
        strings
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(Self::string_hash(s)))
    }

    /// One string's share of [`SrcTable::hash`].
    fn string_hash(s: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::hash::hasher();
        s.hash(&mut h);
        h.finish()
    }

    fn find(&self, hash: u64, strings: &[Text]) -> Option<u32> {
        let ids = self.index.get(&hash)?;
        ids.iter().copied().find(|&id| {
            self.sets
                .get(id as usize)
                .is_some_and(|set| same_strings(set, strings))
        })
    }

    /// The list with this id, and its hash.
    fn list(&self, id: u32) -> Option<(&Strings, u64)> {
        Some((self.sets.get(id as usize)?, *self.hashes.get(id as usize)?))
    }

    /// The list with this id.
    pub(crate) fn get(&self, id: u32) -> Strings {
        self.sets
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// The list with this id, borrowed (empty when there is none): for a look at it, where
    /// [`SrcTable::get`] takes a share of it (two atomic counts per look).
    pub(crate) fn slice(&self, id: u32) -> &[Text] {
        self.sets.get(id as usize).map_or(&[], |s| &s[..])
    }

    /// The id of a sorted, de-duplicated list, if it was interned.
    fn lookup(&self, strings: &[Text]) -> Option<u32> {
        self.find(Self::hash(strings), strings)
    }
}

/// One rule item.
#[derive(Debug)]
pub(crate) struct Item {
    /// The sources as written, resolved.
    pub(crate) src_targets: Arc<[Target]>,
    /// Their `SrcIPs` (unused by `autogroup:self` items, whose sources are per node).
    pub(crate) src: u32,
    /// `via` tags; `None` for an ordinary rule.
    pub(crate) via: Option<Arc<[Text]>>,
    /// What the item grants.
    pub(crate) body: Body,
    /// For network items, the index of the first item with the same (`SrcIPs`, `IPProto`).
    pub(crate) slot: u32,
    /// The nodes on the destination side (`via`-narrowed), computed once per destination and
    /// shared by every item naming it; peers read it. Empty for `autogroup:self` items and
    /// companions, whose destinations are their sources.
    pub(crate) dst_nodes: Reach,
    /// The rule it comes from (where the rule starts in the policy text): a rule whose
    /// sources are empty has no item, so the items at one index in two lowerings of one
    /// policy may come from different rules.
    pub(crate) origin: u32,
}

impl Item {
    /// A network item without `via`: an approved exit node receives it whatever its
    /// destination nodes ([`Lowered::candidates`]); a `via` item lands on its carriers only.
    pub(crate) fn spreads_to_exits(&self) -> bool {
        matches!(self.body, Body::Net { .. }) && self.via.is_none()
    }
}

/// What an item grants.
#[derive(Debug)]
pub(crate) enum Body {
    /// Network access to one destination.
    Net {
        /// `IPProto`; `None` is the default set.
        proto: Option<u8>,
        /// The destination.
        dst: Target,
        /// The ports.
        ports: Arc<[Ports]>,
    },
    /// Network access from a user's devices to the same user's devices.
    SelfNet {
        /// `IPProto`.
        proto: Option<u8>,
        /// The ports.
        ports: Arc<[Ports]>,
    },
    /// Application capabilities on some destinations.
    App {
        /// The destinations, one `CapGrant` each.
        dsts: Arc<[Target]>,
        /// The capabilities.
        caps: Arc<CapMap>,
    },
    /// Application capabilities from a user's devices to the same user's devices.
    SelfApp {
        /// The capabilities.
        caps: Arc<CapMap>,
    },
    /// The reversed companion of an app grant: sources are the grant's destinations,
    /// `CapGrant.Dsts` its sources.
    Companion {
        /// `{companion: null}`.
        caps: Arc<CapMap>,
        /// `SrcIPs`: the grant's destinations.
        src_ips: u32,
    },
    /// The companion of an `autogroup:self` app grant.
    SelfCompanion {
        /// `{companion: null}`.
        caps: Arc<CapMap>,
    },
}

impl Body {
    /// True for the `autogroup:self` kinds, which apply to every untagged node.
    pub(crate) fn is_self(&self) -> bool {
        matches!(
            self,
            Body::SelfNet { .. } | Body::SelfApp { .. } | Body::SelfCompanion { .. }
        )
    }
}

/// The policy's rules, lowered once, with an index from node to the items that reach it.
#[derive(Debug)]
pub(crate) struct Lowered {
    /// Every item, in policy order.
    pub(crate) items: Vec<Item>,
    /// Exit nodes receive every network item's destinations of their families
    /// ([`crate::ExitNodeFilters::AllDestinations`], as Tailscale's control server does);
    /// off, only the internet ranges of `autogroup:internet` and public prefixes.
    pub(crate) spread_exits: bool,
    /// Interned `SrcIPs`.
    pub(crate) srcs: SrcTable,
    /// First item index per (`SrcIPs`, `IPProto`) of network items.
    first_slot: crate::hash::Map<(u32, Option<u8>), u32>,
    /// Per node, the items that may reach it (sorted).
    by_node: crate::pernode::ItemIndex,
    /// The other way round, for the items that reach some nodes: each item with the nodes it
    /// may reach (sorted), in item order. The lists are shared with the items' destinations;
    /// an event's verdicts read the few moved items' ([`moves::SourceMoves`]).
    reach_lists: Vec<(u32, Arc<[NodeId]>)>,
    /// Items that may reach every node.
    global: Vec<u32>,
    /// `autogroup:self` items (they may reach every untagged node).
    self_items: Vec<u32>,
    /// Network items with `via` (they take part in merging on the nodes carrying a via tag).
    via_items: Vec<u32>,
    /// `autogroup:internet` as wire strings, IPv4 then IPv6.
    internet: Vec<Text>,
    /// What `*` means as a source.
    pub(crate) star: Vec<Text>,
    /// The same addresses as a set, made from the routes themselves (the peer index read
    /// them back from `star`'s strings on every compile).
    pub(crate) star_set: crate::addrset::AddrSet,
    /// Each request for a source list, in the order the rules make them: the list's key,
    /// its entry, and the first request with the same key. A later lowering of the same
    /// policy makes the same requests in the same order, so it finds the earlier entry by
    /// place, not by hashing every rule's aliases (twice: in its own map and the earlier
    /// one's), which was a tenth of a node event's lowering on `large`.
    calls: Vec<Call>,
    /// Each distinct source list as written (and its posture gate): its targets, its
    /// `SrcIPs` and the work they cost, and its first request; what a later lowering of
    /// another policy reuses ([`Prior`]). Made on first use from `calls` when the lowering
    /// found its lists by place.
    sources: std::sync::OnceLock<SourceMap>,
    /// What each alias the rules name resolved to: a later lowering of the same policy
    /// carries the lists the changed nodes are not in ([`crate::resolve::Carried`]).
    resolved: crate::hash::Map<Alias, Target>,
    /// [`Lowered::merge_signature`]'s items, made on first use: every node event compares
    /// its lowering's with the earlier one's, which the event before had made.
    merges: std::sync::OnceLock<Vec<ItemMerge>>,
    /// A policy event's pairing of the earlier lowering's items with these
    /// ([`compare::pair_items`], made for the per-node index), with the address of the
    /// earlier lowering's items: taken by the comparison of the two lowerings
    /// ([`changed_items_wire`]), which pairs them again otherwise.
    paired: std::sync::Mutex<Option<(usize, Vec<Option<u32>>)>>,
}

/// One request for a source list ([`Lowered::calls`]).
#[derive(Debug)]
struct Call {
    key: SourceKey,
    entry: Sources,
    /// The first request with the same key (this one's own place when it is the first).
    first: u32,
}

/// A source list's targets, its `SrcIPs` id and the entries it cost.
type Sources = (Arc<[Target]>, u32, usize);

/// An earlier lowering whose `SrcIPs` lists are taken (shared, not rebuilt) for every source
/// list that is provably the same: of the same policy, on a node table that differs only in
/// the nodes named (by name, before and after the change) and in subnet routes, a list that
/// names none of those nodes, before or after (and, when the routes moved, is not from `*`);
/// of another policy on the same nodes (`same_ids`), a list whose targets are equal. A node
/// event on a large tailnet, or a policy edit, leaves most lists as they were.
pub(crate) struct Prior<'a> {
    /// The earlier lowering.
    pub(crate) lowered: &'a Lowered,
    /// The node table it lowered.
    pub(crate) table: &'a NodeTable,
    /// The changed nodes' ids in the earlier lowering's table (sorted).
    pub(crate) before: &'a [NodeId],
    /// Their ids in the table being lowered (sorted).
    pub(crate) after: &'a [NodeId],
    /// Both tables hold the same nodes under the same ids, with the same addresses (the
    /// policy changed, not the tailnet): the policy may differ, node lists are compared.
    pub(crate) same_ids: bool,
    /// The same policy, and only the changed nodes changed (no route): each node's id in the
    /// earlier table, `None` for the changed ones ([`NodeTable::kept_from`]). Every other
    /// node is in the same items' destinations as before (membership is a property of the
    /// node and its owner), so its list of items is taken from the earlier lowering when the
    /// items are the same ones.
    pub(crate) kept: Option<&'a [Option<NodeId>]>,
}

/// Where an item may apply: every node, or some (sorted).
#[derive(Debug, Clone)]
pub(crate) enum Reach {
    All,
    Some(Arc<[NodeId]>),
}

impl Reach {
    fn none() -> Reach {
        Reach::Some(Arc::from(Vec::new()))
    }

    fn count(&self, table: &NodeTable) -> usize {
        match self {
            Reach::All => table.len(),
            Reach::Some(ids) => ids.len(),
        }
    }
}

/// [`Lowered::merge_signature`] of one item: its slot, its key's global slot, its rule.
pub(crate) type ItemMerge = (u32, u32, u32);

impl Lowered {
    /// True for a network item whose sources resolve to nothing: it allows nothing, puts no
    /// entry in any filter and makes no peer, and is kept only so that item numbers stay put
    /// while its rule's sources come and go.
    pub(crate) fn is_vacant(&self, item: &Item) -> bool {
        matches!(item.body, Body::Net { .. }) && self.srcs.slice(item.src).is_empty()
    }

    /// How network rules merge, item by item: each item's slot, the slot its (`SrcIPs`,
    /// `IPProto`) key has globally (what `via` and `autogroup:self` items on a node merge
    /// into) and the rule it comes from (items are paired index for index, so one rule's
    /// items vanishing as another's appear must not pass for the same items), then what `*`
    /// means as a source. Two compiles with the same signature merge
    /// every node's rules the same way, except `autogroup:self` rules, whose per-node
    /// sources merge by content.
    pub(crate) fn merge_signature(&self) -> (&[ItemMerge], &[Text]) {
        let slots = self.merges.get_or_init(|| {
            self.items
                .iter()
                .map(|item| (item.slot, self.global_slot(item), item.origin))
                .collect()
        });
        (slots, &self.star)
    }

    /// The slot `item`'s (`SrcIPs`, `IPProto`) key has across the policy (for a network item;
    /// `u32::MAX` for any other).
    fn global_slot(&self, item: &Item) -> u32 {
        match &item.body {
            Body::Net { proto, .. } => self.first_slot.get(&(item.src, *proto)).copied(),
            _ => None,
        }
        .unwrap_or(u32::MAX)
    }

    /// The nodes whose packet filter may change when node `id` (serving no route) joins,
    /// leaves or changes, given a compile where the rules merge the same way before and after
    /// ([`Lowered::merge_signature`]); `None` when that may be every node. They are the
    /// destinations of the items it is a source of (its addresses are in their `SrcIPs`), the
    /// carriers of their `via` tags (which merge those items on every node carrying them), its
    /// owner's devices (`autogroup:self` items), and, when the policy has `autogroup:self`
    /// items, the devices of any user whose devices are exactly such an item's sources (a
    /// self rule merges into the first item with the same sources). With companion rules
    /// (app grants whose destinations become sources), the node's peers are added: a
    /// companion reaches the grant's sources, every one a peer of the grant's destinations.
    pub(crate) fn filter_dependents(
        &self,
        table: &NodeTable,
        id: NodeId,
        peers: impl FnOnce() -> Vec<NodeId>,
    ) -> Option<Vec<NodeId>> {
        let Some(node) = table.get(id) else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        let mut owners = Vec::new();
        let mut companions = false;
        // Each list, tag and `SrcIPs` list taken once: the items share them (a retag of a
        // server on `large` gathered its destinations millions of times over), and the
        // items of one rule share their sources, tested once.
        let mut lists: crate::hash::Set<usize> = crate::hash::Set::default();
        let mut tags: crate::hash::Set<&str> = crate::hash::Set::default();
        let mut srcs: crate::hash::Set<u32> = crate::hash::Set::default();
        let mut last: Option<(*const Target, bool)> = None;
        for item in &self.items {
            if matches!(
                item.body,
                Body::Companion { .. } | Body::SelfCompanion { .. }
            ) {
                companions = true;
            }
            let key = item.src_targets.as_ptr();
            let holds = match last {
                Some((k, holds)) if std::ptr::eq(k, key) => holds,
                _ => item.src_targets.iter().any(|t| t.contains_node(id, node)),
            };
            last = Some((key, holds));
            if !holds {
                continue;
            }
            if item.body.is_self() {
                owners.extend(node.owner);
                continue;
            }
            match &item.dst_nodes {
                Reach::All => return None,
                Reach::Some(ids) => {
                    if lists.insert(ids.as_ptr() as usize) {
                        out.extend_from_slice(ids);
                    }
                }
            }
            for tag in item.via.iter().flat_map(|tags| tags.iter()) {
                if tags.insert(tag) {
                    out.extend_from_slice(table.with_tag(tag));
                }
            }
            if !self.self_items.is_empty() && srcs.insert(item.src) {
                owners.extend(first_owner(table, self.srcs.slice(item.src)));
            }
        }
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            out.extend(table.devices.get(owner.index()).into_iter().flatten());
        }
        if companions {
            out.extend(peers());
        }
        // An exit node receives every network item without `via` ([`Lowered::candidates`]):
        // its filter names every source and destination of them.
        if self.spread_exits && !table.exits.is_empty() {
            out.extend_from_slice(&table.exits);
        }
        Some(out)
    }

    /// Whether node `node` receives every item that [`Item::spreads_to_exits`]: an approved
    /// exit node, under [`crate::ExitNodeFilters::AllDestinations`].
    pub(crate) fn spreads_on(&self, node: &crate::nodes::NodeInfo) -> bool {
        self.spread_exits && node.exit
    }

    /// Whether the policy has `autogroup:self` items.
    pub(crate) fn has_self_items(&self) -> bool {
        !self.self_items.is_empty()
    }

    /// The distinct source lists by key ([`Lowered::sources`]).
    fn sources_map(&self) -> &SourceMap {
        self.sources.get_or_init(|| {
            let mut map = SourceMap::default();
            for (at, call) in self.calls.iter().enumerate() {
                if call.first as usize == at {
                    map.insert(call.key.clone(), (call.entry.clone(), call.first));
                }
            }
            map
        })
    }

    /// No rule at all (what a refused policy compiles to).
    pub(crate) fn nothing(table: &NodeTable) -> Lowered {
        Lowered::nothing_after(table, None)
    }

    /// [`Lowered::nothing`], taking what `*` means from an earlier lowering on `earlier`'s
    /// table when its routers serve the same subnet routes.
    fn nothing_after(table: &NodeTable, earlier: Option<(&NodeTable, &Lowered)>) -> Lowered {
        let (star, star_set) = star_sources(table, earlier);
        Lowered {
            items: Vec::new(),
            spread_exits: true,
            srcs: SrcTable::default(),
            first_slot: crate::hash::Map::default(),
            by_node: crate::pernode::ItemIndex::empty(table.len()),
            reach_lists: Vec::new(),
            global: Vec::new(),
            self_items: Vec::new(),
            via_items: Vec::new(),
            internet: INTERNET_WIRE.iter().map(|s| Text::from(*s)).collect(),
            star,
            star_set,
            calls: Vec::new(),
            sources: std::sync::OnceLock::new(),
            resolved: crate::hash::Map::default(),
            merges: std::sync::OnceLock::new(),
            paired: std::sync::Mutex::new(None),
        }
    }
}

/// Two string lists are equal. The same memory is equal at once, and elements are compared
/// by address before content (`Text`'s equality does so): interning a list the next compile
/// shares compares every one of its strings with itself (with `Arc<str>`, whose equality
/// compares content only, that was 3% of a member join on `large`).
pub(crate) fn same_strings(a: &[Text], b: &[Text]) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// The owner of the node holding a list's first address: with `autogroup:self` rules, the
/// user whose self rule may merge into an item with these sources (a list equal to a user's
/// devices starts with one of their addresses). `None` when the list is longer than all of
/// that user's untagged devices' addresses: a self rule's sources are some of those
/// ([`assemble::self_sources`]), so it cannot equal the list. A member's join or leave
/// moves lists of tens of thousands of devices on `large`, whose first owners' devices had
/// their filters assembled for nothing (about 20 per leave).
fn first_owner(table: &NodeTable, list: &[Text]) -> Option<crate::nodes::UserId> {
    let ip = list.first()?.parse::<std::net::IpAddr>().ok()?;
    let owner = table.get(table.by_address(ip)?)?.owner?;
    let devices = table.devices.get(owner.index())?;
    let mut texts = 0usize;
    for &device in devices {
        texts += table.get(device).map_or(0, |d| d.texts.len());
        if texts >= list.len() {
            return Some(owner);
        }
    }
    None
}

/// Lower the policy's rules against a node table whose routes are settled. Linear in the
/// rules' selectors plus what they expand to (each distinct destination is resolved to its
/// nodes once; each item's nodes are indexed once); all of it charged to
/// [`CompileLimits::max_rule_entries`], and a rule that goes over is refused.
pub(crate) fn lower(
    policy: &Policy,
    table: &NodeTable,
    (limits, spread_exits): (&CompileLimits, bool),
    prior: Option<&Prior<'_>>,
    lists: Option<crate::peers::Lists<'_>>,
) -> Result<Lowered, CompileError> {
    let mut lowered = Lowered::nothing_after(table, prior.map(|p| (p.table, p.lowered)));
    lowered.spread_exits = spread_exits;
    // A lowering of the same policy makes about as many items and requests as the earlier
    // one: made at that size, not grown by doubling (each growth moved every item so far).
    if let Some(p) = prior {
        lowered.items.reserve(p.lowered.items.len());
        lowered.calls.reserve(p.lowered.calls.len());
    }
    let reuse = prior.map(|p| Reuse {
        prior: p,
        // `*` lists every subnet route: lists from it are reused only when it is the same.
        star_same: same_strings(&p.lowered.star, &lowered.star),
        by_place: !p.same_ids && !p.lowered.calls.is_empty(),
    });
    let mut resolver = Resolver::compiling(policy, table);
    // A node event (the same policy, only the named nodes changed): user-like aliases
    // the changed nodes are not in are carried from the earlier lowering.
    if let Some(p) = prior.filter(|p| !p.same_ids && p.kept.is_some()) {
        resolver.carry(crate::resolve::Carried {
            cache: &p.lowered.resolved,
            to_new: crate::nodes::translate_ids(p.table, table),
            before: p.before,
            after: p.after,
        });
    }
    let mut builder = Builder {
        reuse,
        policy,
        resolver,
        gates: Gates::new(policy, table),
        table,
        lowered,
        dst_cache: crate::hash::Map::default(),
        budget: Budget::new(limits.max_rule_entries, "rule entries (rules times nodes)"),
        items_budget: Budget::new(
            limits.max_rule_items,
            "rule items (destinations times `ip` entries)",
        ),
        filter_bound: 0,
        max_texts: table.nodes.iter().map(|n| n.texts.len()).max().unwrap_or(0),
        span: policy.span,
        reaches: Vec::with_capacity(prior.map_or(0, |p| p.lowered.reach_lists.len())),
        own: SourceMap::default(),
        lists,
    };
    if policy.is_default_allow() {
        let star = Selector {
            alias: Alias::Wildcard,
            text: "*".to_string(),
            span: aclc_policy::Span::default(),
        };
        let (targets, src) = builder.sources(std::slice::from_ref(&star), None)?;
        let reach = builder.dst_reach(&Target::Wildcard, None);
        builder.push_net(
            &targets,
            src,
            None,
            None,
            Target::Wildcard,
            reach,
            &[PortRange::ANY],
        )?;
    }
    for grant in policy.grants.iter().flat_map(|g| g.value.iter()) {
        builder.span = grant.span;
        builder.grant(grant)?;
    }
    for acl in policy.acls.iter().flat_map(|a| a.value.iter()) {
        builder.span = acl.span;
        builder.acl(acl)?;
    }
    // Session recording's access, after every written rule (so their items keep their
    // numbers).
    if let Some(ssh) = &policy.ssh {
        builder.recorder_accesses(&ssh.value)?;
    }
    // Every list is made: the last of them to the thread preparing their sets.
    drop(builder.lists.take());
    let mut lowered = builder.lowered;
    lowered.resolved = builder.resolver.into_cache();
    let patched = builder.reuse.as_ref().and_then(|r| match r.prior.kept {
        Some(kept) => patched_index(r.prior.lowered, &lowered, kept, &builder.reaches),
        None if r.prior.same_ids => {
            let pair = compare::pair_items(r.prior.lowered, &lowered);
            let index = policy_index(r.prior.lowered, &lowered, &pair, &builder.reaches);
            if let Ok(mut paired) = lowered.paired.lock() {
                *paired = Some((r.prior.lowered.items.as_ptr() as usize, pair));
            }
            index
        }
        None => None,
    });
    lowered.by_node = patched.unwrap_or_else(|| built_index(table.len(), &builder.reaches));
    lowered.reach_lists = builder.reaches;
    // Past the bound, each node's filter counted exactly (never on a real tailnet's policy:
    // `large`'s bound is about 10^5).
    if builder.filter_bound > limits.max_node_filter_entries {
        lowered.check_node_entries(
            policy,
            table,
            limits.max_node_filter_entries,
            builder.max_texts,
        )?;
    }
    // Found by key: the map is made. Found by place: made if another policy needs it.
    if !builder.reuse.as_ref().is_some_and(|r| r.by_place) {
        let _ = lowered.sources.set(builder.own);
    }
    Ok(lowered)
}

/// True when two lowerings of one policy (a node event's: the same rules) made the same
/// items: as many, each from the same rule and of the same kind. A rule's network items are
/// all left out (no source) or all kept, so this pairs them index for index.
pub(crate) fn same_items(old: &Lowered, new: &Lowered) -> bool {
    old.items.len() == new.items.len()
        && old.items.iter().zip(&new.items).all(|(a, b)| {
            a.origin == b.origin
                && std::mem::discriminant(&a.body) == std::mem::discriminant(&b.body)
        })
}

/// True when items paired index for index ([`same_items`]) are vacant alike: a vacant item
/// makes no peer set, so what each route shows ([`crate::peers::PeerIndex::route_items`])
/// carries over only then.
pub(crate) fn same_vacancy(old: &Lowered, new: &Lowered) -> bool {
    old.items
        .iter()
        .zip(&new.items)
        .all(|(a, b)| old.is_vacant(a) == new.is_vacant(b))
}

/// The earlier lowering's index from node to items, patched for the changed nodes (those
/// `kept` has no earlier id for), when the items are the same ones: as many, each from the
/// same rule and of the same kind (a rule's network items are all left out or all kept, so
/// this pairs them). `None` otherwise, or when too many nodes changed (each changed node's
/// list is found by a binary search in every destination list).
fn patched_index(
    old: &Lowered,
    new: &Lowered,
    kept: &[Option<NodeId>],
    reaches: &[(u32, Arc<[NodeId]>)],
) -> Option<crate::pernode::ItemIndex> {
    let same_items = same_items(old, new);
    if kept.len() != new.by_node.len() {
        return None;
    }
    let list_of = |id: NodeId| -> Vec<u32> {
        reaches
            .iter()
            .filter(|(_, ids)| ids.binary_search(&id).is_ok())
            .map(|(i, _)| *i)
            .collect()
    };
    if same_items {
        return old.by_node.patched_with(kept, list_of);
    }
    // Items vanished or appeared (a rule's only source device left or joined): the items
    // paired by rule and kind are renumbered, the others' nodes added.
    let mut to_new: Vec<u32> = regroup::pair_by_rule(old, new)
        .into_iter()
        .map(|j| j.unwrap_or(u32::MAX))
        .collect();
    let mut paired = vec![false; new.items.len()];
    for (a, j) in old.items.iter().zip(to_new.iter_mut()) {
        let b = new.items.get(*j as usize);
        match b.filter(|b| std::mem::discriminant(&a.body) == std::mem::discriminant(&b.body)) {
            Some(_) => {
                if let Some(p) = paired.get_mut(*j as usize) {
                    *p = true;
                }
            }
            None => *j = u32::MAX,
        }
    }
    let added = added_pairs(reaches, &paired);
    let (dropped, _) = dropped_nodes(old, &to_new);
    let index = old.by_node.renumbered(
        kept,
        (&to_new, &dropped),
        (&added, new.items.len()),
        list_of,
    )?;
    debug_assert!(
        index.iter().eq(built_index(kept.len(), reaches).iter()),
        "the renumbered index is the one built afresh"
    );
    Some(index)
}

/// The index built afresh from each item's nodes.
fn built_index(nodes: usize, reaches: &[(u32, Arc<[NodeId]>)]) -> crate::pernode::ItemIndex {
    crate::pernode::ItemIndex::from_lists(nodes, reaches.iter().map(|(i, ids)| (*i, &ids[..])))
}

/// The (old) nodes whose lists hold an item renumbering drops (`to_new` is `u32::MAX`), as
/// a bit per node, and how many entries those items held.
fn dropped_nodes(old: &Lowered, to_new: &[u32]) -> (Vec<u64>, usize) {
    let mut dropped = vec![0u64; old.by_node.len().div_ceil(64)];
    let mut gone = 0;
    for (_, ids) in old
        .reach_lists
        .iter()
        .filter(|(i, _)| to_new.get(*i as usize) == Some(&u32::MAX))
    {
        gone += ids.len();
        ids.iter()
            .for_each(|&id| crate::bits::set_bit(&mut dropped, id));
    }
    (dropped, gone)
}

/// The new items no old item was renumbered to (`taken` false) with each of their nodes, as
/// `(node, item)` pairs in order.
fn added_pairs(reaches: &[(u32, Arc<[NodeId]>)], taken: &[bool]) -> Vec<(NodeId, u32)> {
    let mut added: Vec<(NodeId, u32)> = reaches
        .iter()
        .filter(|(i, _)| !taken.get(*i as usize).copied().unwrap_or(false))
        .flat_map(|(i, ids)| ids.iter().map(move |&id| (id, *i)))
        .collect();
    added.sort_unstable();
    added
}

/// A policy event's index from node to items (the same nodes under the same ids, the rules
/// changed): the earlier lowering's, each item renumbered to the equal item of this one
/// (`pair`, from [`compare::pair_items`]) when both reach the same nodes, the nodes of the other items
/// dropped and added ([`crate::pernode::ItemIndex::renumbered`]). One pass over the lists,
/// on two cores, where building the index afresh scatters every entry: 23 million on `large`,
/// about 0.1 s of a 0.28 s policy event. `None` when the items that differ hold more than a
/// quarter of the entries (sorting the added ones then costs about as much as building).
fn policy_index(
    old: &Lowered,
    new: &Lowered,
    pair: &[Option<u32>],
    reaches: &[(u32, Arc<[NodeId]>)],
) -> Option<crate::pernode::ItemIndex> {
    let nodes = old.by_node.len();
    // Each item's nodes (`None`: every node, not in the index).
    fn per_item(items: usize, lists: &[(u32, Arc<[NodeId]>)]) -> Vec<Option<&Arc<[NodeId]>>> {
        let mut out = vec![None; items];
        for (i, ids) in lists {
            if let Some(slot) = out.get_mut(*i as usize) {
                *slot = Some(ids);
            }
        }
        out
    }
    let (old_reach, new_reach) = (
        per_item(old.items.len(), &old.reach_lists),
        per_item(new.items.len(), reaches),
    );
    let mut to_new = vec![u32::MAX; old.items.len()];
    let mut taken = vec![false; new.items.len()];
    for (i, &j) in pair.iter().enumerate() {
        let Some(j) = j else { continue };
        let same = match (
            old_reach.get(i).copied().flatten(),
            new_reach.get(j as usize).copied(),
        ) {
            (None, Some(None)) => true,
            (Some(a), Some(Some(b))) => Arc::ptr_eq(a, b) || a[..] == b[..],
            _ => false,
        };
        if let (true, Some(to), Some(t)) = (same, to_new.get_mut(i), taken.get_mut(j as usize)) {
            *to = j;
            *t = true;
        }
    }
    let held: usize = old.reach_lists.iter().map(|(_, ids)| ids.len()).sum();
    let (dropped, gone) = dropped_nodes(old, &to_new);
    let fresh: usize = reaches
        .iter()
        .filter(|(j, _)| !taken.get(*j as usize).copied().unwrap_or(false))
        .map(|(_, ids)| ids.len())
        .sum();
    if (gone + fresh) * 4 > held {
        return None;
    }
    let added = added_pairs(reaches, &taken);
    let kept: Vec<Option<NodeId>> = (0..nodes).map(|n| Some(NodeId::new(n))).collect();
    let index = old.by_node.renumbered(
        &kept,
        (&to_new, &dropped),
        (&added, new.items.len()),
        |_| Vec::new(),
    )?;
    debug_assert!(
        index.iter().eq(built_index(nodes, reaches).iter()),
        "the policy event's renumbered index is the one built afresh"
    );
    Some(index)
}

/// Whether [`policy_index`] renumbers `old`'s index for `new`'s items (`None`: it declines),
/// and if so whether the result is `new`'s own index, built afresh.
#[cfg(test)]
pub(crate) fn policy_index_agrees(old: &Lowered, new: &Lowered) -> Option<bool> {
    let index = policy_index(old, new, &compare::pair_items(old, new), &new.reach_lists)?;
    Some(index.iter().eq(new.by_node.iter()))
}

/// The subnet routes of a table's routers, in router order (the table's routes are settled):
/// not a walk over every node's record.
fn served_routes(table: &NodeTable) -> Vec<ipnet::IpNet> {
    table
        .routers
        .iter()
        .filter_map(|&id| table.get(id))
        .flat_map(|n| n.subnet_routes.iter().copied())
        .collect()
}

/// `*` as a source: the tailnet ranges and every approved subnet route, as wire strings and
/// as a set. Taken from an earlier lowering (`earlier`, with the table it was made on) whose
/// routers served the same routes: they are all `*` depends on (0.65 ms of each node event
/// on `large`, on the lowering's core, to make again).
fn star_sources(
    table: &NodeTable,
    earlier: Option<(&NodeTable, &Lowered)>,
) -> (Vec<Text>, crate::addrset::AddrSet) {
    let nets = served_routes(table);
    if let Some((_, lowered)) = earlier.filter(|(t, _)| served_routes(t) == nets) {
        debug_assert!(
            (lowered.star.clone(), lowered.star_set.clone()) == star_sources(table, None),
            "`*` taken from an earlier lowering differs from the one made"
        );
        return (lowered.star.clone(), lowered.star_set.clone());
    }
    let mut out: Vec<Text> = TAILNET_WIRE.iter().map(|s| Text::from(*s)).collect();
    debug_assert_eq!(
        nets.len(),
        table
            .nodes
            .iter()
            .map(|n| n.subnet_routes.len())
            .sum::<usize>(),
        "the routers serve every subnet route"
    );
    let mut parts = vec![crate::addrset::AddrSet::from_wire(TAILNET_WIRE)];
    parts.extend(
        nets.iter()
            .map(|&net| crate::addrset::AddrSet::from_net(net)),
    );
    let set = crate::addrset::AddrSet::union_of(&parts);
    let mut routes: Vec<String> = nets.iter().map(ToString::to_string).collect();
    routes.sort_unstable();
    routes.dedup();
    out.extend(routes.into_iter().map(Text::from));
    debug_assert_eq!(
        set,
        crate::addrset::AddrSet::from_wire(out.iter().map(|s| &**s)),
        "`*`'s set is its strings' addresses"
    );
    (out, set)
}

#[cfg(test)]
mod tests;
