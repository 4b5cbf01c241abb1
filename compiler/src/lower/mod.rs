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

mod assemble;
mod compare;
mod moves;
mod regroup;

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
    fn intern_sorted(&mut self, strings: Vec<Arc<str>>) -> u32 {
        let hash = Self::hash(&strings);
        self.intern_hashed(strings, hash)
    }

    /// [`SrcTable::intern_sorted`] of a list whose hash is known: a vector (made shared only
    /// when the list is new) or a shared list made already.
    fn intern_hashed<S: AsRef<[Arc<str>]> + Into<Strings>>(
        &mut self,
        strings: S,
        hash: u64,
    ) -> u32 {
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
    pub(crate) fn hash(strings: &[Arc<str>]) -> u64 {
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

    fn find(&self, hash: u64, strings: &[Arc<str>]) -> Option<u32> {
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

    /// The id of a sorted, de-duplicated list, if it was interned.
    fn lookup(&self, strings: &[Arc<str>]) -> Option<u32> {
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
    pub(crate) via: Option<Arc<[Arc<str>]>>,
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
    internet: Vec<Arc<str>>,
    /// What `*` means as a source.
    pub(crate) star: Vec<Arc<str>>,
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

/// [`Prior`], with what `*` means compared.
struct Reuse<'a> {
    prior: &'a Prior<'a>,
    /// The same policy (`same_ids` false) with its requests recorded: the earlier
    /// lowering's request at each place is this one's ([`Lowered::calls`]).
    by_place: bool,
    /// `*` means what it meant (it lists every subnet route).
    star_same: bool,
}

impl Reuse<'_> {
    /// The earlier lowering's `SrcIPs` for the source list `key`, now resolved to `targets`,
    /// when the list is the same: no changed node in it before or after, the same kinds of
    /// target, and the same addresses written in the policy. Unchanged nodes are in the same
    /// lists (the policy is the same, and membership is a property of the node and its
    /// owner, both unchanged), and have the same addresses.
    fn same(&self, earlier: &Sources, targets: &[Target]) -> Option<(u32, usize)> {
        let p = self.prior;
        let (old_targets, id, spent) = earlier;
        if old_targets.len() != targets.len() {
            return None;
        }
        let names = |t: &Target, changed: &[NodeId]| match t {
            Target::Nodes(ids) => crate::nodes::holds_any(ids, changed),
            _ => false,
        };
        for (old, new) in old_targets.iter().zip(targets) {
            let alike = match (old, new) {
                (Target::Nodes(x), Target::Nodes(y)) if p.same_ids => x == y,
                (Target::Nodes(x), Target::Nodes(y)) => x.len() == y.len(),
                (Target::Literal(x), Target::Literal(y)) => x == y,
                (Target::Wildcard, Target::Wildcard) => self.star_same,
                _ => std::mem::discriminant(old) == std::mem::discriminant(new),
            };
            if !alike || names(old, p.before) || names(new, p.after) {
                return None;
            }
        }
        Some((*id, *spent))
    }

    /// The `SrcIPs` of the source list `key`, now resolved to `targets`, from the earlier
    /// lowering's list when only the changed nodes moved in or out of it (a node event,
    /// `kept` known): the earlier list without the texts of the changed nodes it held, with
    /// those of the changed nodes it holds now; its hash and work from the earlier ones.
    /// O(list + changed x log list), where building it sorted every node's texts again (30
    /// ms of a member's join on `large`, in the half dozen lists of 25,000 devices that
    /// hold the member). Only lists of nodes alone (and `autogroup:internet`, `autogroup:self`,
    /// which put nothing in `SrcIPs`): a literal address or `*` may name a changed node's
    /// address as well, and must keep it when the node leaves. Unchanged nodes are in the
    /// same lists, as [`Reuse::same`] says; each target's count is checked against it.
    /// `None` when the list cannot be patched: it is built.
    fn patched(
        &self,
        earlier: &Sources,
        targets: &[Target],
        table: &NodeTable,
    ) -> Option<(Made, u64, usize)> {
        let p = self.prior;
        p.kept?;
        let (old_targets, id, spent) = earlier;
        if old_targets.len() != targets.len() {
            return None;
        }
        let (mut gone, mut came): (Vec<&Arc<str>>, Vec<&Arc<str>>) = (Vec::new(), Vec::new());
        let (mut taken, mut added) = (0usize, 0usize);
        for (old, new) in old_targets.iter().zip(targets) {
            match (old, new) {
                (Target::Nodes(x), Target::Nodes(y)) => {
                    let (was, out) = held_texts(p.table, p.before, x, &mut gone)?;
                    let (is, into) = held_texts(table, p.after, y, &mut came)?;
                    if x.len() - was != y.len() - is {
                        return None;
                    }
                    taken += out;
                    added += into;
                }
                (Target::Internet, Target::Internet)
                | (Target::SelfDevices, Target::SelfDevices) => {}
                _ => return None,
            }
        }
        let spent = spent.checked_sub(taken)?.checked_add(added)?;
        let (list, mut hash) = p.lowered.srcs.list(*id)?;
        // Where the texts go and come, by binary search (strings compared O(changed x log
        // list) times, not once per text listed); then the runs between copied.
        let find = |t: &Arc<str>| list.binary_search_by(|x| (**x).cmp(&**t));
        let mut cuts: Vec<(usize, Option<&Arc<str>>)> = Vec::new();
        gone.sort_unstable();
        gone.dedup();
        for text in gone {
            if let Ok(at) = find(text) {
                hash = hash.wrapping_sub(SrcTable::string_hash(text));
                cuts.push((at, None));
            }
        }
        // The removed places, ascending (the texts were): looked up by binary search below,
        // so a batch of many changed nodes costs O(changed x log changed) here.
        let removed: Vec<usize> = cuts.iter().map(|&(at, _)| at).collect();
        came.sort_unstable();
        came.dedup();
        for text in came {
            match find(text) {
                Err(at) => cuts.push((at, Some(text))),
                // Node addresses are unique: a text listed now is this changed node's
                // (taken out above, put back here), or the list is not what it seems.
                Ok(at) if removed.binary_search(&at).is_ok() => cuts.push((at, Some(text))),
                Ok(_) => return None,
            }
            hash = hash.wrapping_add(SrcTable::string_hash(text));
        }
        // At one place, the new text before the removed one (both sort there).
        cuts.sort_unstable_by_key(|&(at, text)| (at, text.is_none()));
        // The runs of the earlier list kept between the cuts, and what each cut puts in.
        let mut runs: Vec<(usize, usize)> = Vec::with_capacity(cuts.len() + 1);
        let mut texts: Vec<Option<&Arc<str>>> = Vec::with_capacity(cuts.len());
        let mut from = 0;
        for &(at, text) in &cuts {
            // Cuts ascend within the list (checked: a run out of order or out of range
            // would drop strings unseen).
            if at < from || at > list.len() {
                return None;
            }
            runs.push((from, at));
            texts.push(text);
            from = if text.is_some() { at } else { at + 1 };
        }
        runs.push((from, list.len()));
        let run = |k: usize| {
            let (a, b) = runs.get(k).copied().unwrap_or((0, 0));
            list.get(a..b).unwrap_or_default().iter().cloned()
        };
        let text = |k: usize| texts.get(k).copied().flatten().cloned();
        // Up to four cuts (a node's two addresses joining or leaving, or moving within the
        // list): the list made in place from slices of the earlier one, whose exact length
        // the standard library sees, not gathered in a vector and copied (the copy was 4% of
        // a retag's samples on `large`). Cuts past the last are empty.
        if cuts.len() <= 4 {
            let out: Strings = run(0)
                .chain(text(0))
                .chain(run(1))
                .chain(text(1))
                .chain(run(2))
                .chain(text(2))
                .chain(run(3))
                .chain(text(3))
                .chain(run(4))
                .collect();
            return Some((Made::Shared(out), hash, spent));
        }
        let mut out: Vec<Arc<str>> = Vec::with_capacity(list.len() + cuts.len());
        for k in 0..cuts.len() {
            out.extend(run(k));
            out.extend(text(k));
        }
        out.extend(run(cuts.len()));
        Some((Made::Gathered(out), hash, spent))
    }
}

/// A patched source list ([`Reuse::patched`]): made in place, or gathered in a vector.
enum Made {
    Shared(Strings),
    Gathered(Vec<Arc<str>>),
}

impl Made {
    #[cfg(debug_assertions)]
    fn strings(&self) -> &[Arc<str>] {
        match self {
            Made::Shared(s) => s,
            Made::Gathered(s) => s,
        }
    }
}

/// The address texts of the nodes of `changed` that `list` (sorted) holds, put in `into`: how
/// many nodes those are, and how many texts ([`Reuse::patched`], before and after a change).
fn held_texts<'t>(
    table: &'t NodeTable,
    changed: &[NodeId],
    list: &[NodeId],
    into: &mut Vec<&'t Arc<str>>,
) -> Option<(usize, usize)> {
    let (mut nodes, mut texts) = (0, 0);
    for &id in changed.iter().filter(|id| list.binary_search(id).is_ok()) {
        let own = &table.get(id)?.texts;
        nodes += 1;
        texts += own.len();
        into.extend(own.iter());
    }
    Some((nodes, texts))
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
        matches!(item.body, Body::Net { .. }) && self.srcs.get(item.src).is_empty()
    }

    /// How network rules merge, item by item: each item's slot, the slot its (`SrcIPs`,
    /// `IPProto`) key has globally (what `via` and `autogroup:self` items on a node merge
    /// into) and the rule it comes from (items are paired index for index, so one rule's
    /// items vanishing as another's appear must not pass for the same items), then what `*`
    /// means as a source. Two compiles with the same signature merge
    /// every node's rules the same way, except `autogroup:self` rules, whose per-node
    /// sources merge by content.
    pub(crate) fn merge_signature(&self) -> (Vec<ItemMerge>, &[Arc<str>]) {
        let slots = self
            .items
            .iter()
            .map(|item| (item.slot, self.global_slot(item), item.origin))
            .collect();
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
                owners.extend(first_owner(table, &self.srcs.get(item.src)));
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
        Some(out)
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
            srcs: SrcTable::default(),
            first_slot: crate::hash::Map::default(),
            by_node: crate::pernode::ItemIndex::empty(table.len()),
            reach_lists: Vec::new(),
            global: Vec::new(),
            self_items: Vec::new(),
            via_items: Vec::new(),
            internet: INTERNET_WIRE.iter().map(|s| Arc::from(*s)).collect(),
            star,
            star_set,
            calls: Vec::new(),
            sources: std::sync::OnceLock::new(),
            resolved: crate::hash::Map::default(),
        }
    }
}

/// Two string lists are equal. The same memory is equal at once, and equal elements are
/// compared by address before content: `Arc<str>`'s equality always compares content (the
/// standard library looks at addresses only for sized `Eq` types), and interning a list the
/// next compile shares compared every one of its strings with itself (3% of a member join on
/// `large`).
pub(crate) fn same_strings(a: &[Arc<str>], b: &[Arc<str>]) -> bool {
    a.len() == b.len()
        && (std::ptr::eq(a.as_ptr(), b.as_ptr())
            || a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || x == y))
}

/// The owner of the node holding a list's first address: with `autogroup:self` rules, the
/// user whose self rule may merge into an item with these sources (a list equal to a user's
/// devices starts with one of their addresses). `None` when the list is longer than all of
/// that user's untagged devices' addresses: a self rule's sources are some of those
/// ([`assemble::self_sources`]), so it cannot equal the list. A member's join or leave
/// moves lists of tens of thousands of devices on `large`, whose first owners' devices had
/// their filters assembled for nothing (about 20 per leave).
fn first_owner(table: &NodeTable, list: &[Arc<str>]) -> Option<crate::nodes::UserId> {
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
    limits: &CompileLimits,
    prior: Option<&Prior<'_>>,
    lists: Option<crate::peers::Lists<'_>>,
) -> Result<Lowered, CompileError> {
    let lowered = Lowered::nothing_after(table, prior.map(|p| (p.table, p.lowered)));
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
        span: policy.span,
        reaches: Vec::new(),
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
    // Every list is made: the last of them to the thread preparing their sets.
    drop(builder.lists.take());
    let mut lowered = builder.lowered;
    lowered.resolved = builder.resolver.into_cache();
    let patched = builder
        .reuse
        .as_ref()
        .and_then(|r| Some((r.prior.lowered, r.prior.kept?)))
        .and_then(|(old, kept)| patched_index(old, &lowered, kept, &builder.reaches));
    lowered.by_node = patched.unwrap_or_else(|| {
        crate::pernode::ItemIndex::from_lists(
            table.len(),
            builder.reaches.iter().map(|(i, ids)| (*i, &ids[..])),
        )
    });
    lowered.reach_lists = builder.reaches;
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
    let mut added: Vec<(NodeId, u32)> = reaches
        .iter()
        .filter(|(i, _)| !paired.get(*i as usize).copied().unwrap_or(false))
        .flat_map(|(i, ids)| ids.iter().map(move |&id| (id, *i)))
        .collect();
    added.sort_unstable();
    // The (old) nodes whose lists hold an item that is gone.
    let mut dropped = vec![0u64; old.by_node.len().div_ceil(64)];
    for (_, ids) in old
        .reach_lists
        .iter()
        .filter(|(i, _)| to_new.get(*i as usize) == Some(&u32::MAX))
    {
        ids.iter()
            .for_each(|&id| crate::bits::set_bit(&mut dropped, id));
    }
    let index = old.by_node.renumbered(
        kept,
        (&to_new, &dropped),
        (&added, new.items.len()),
        list_of,
    )?;
    debug_assert!(
        index.iter().eq(crate::pernode::ItemIndex::from_lists(
            kept.len(),
            reaches.iter().map(|(i, ids)| (*i, &ids[..]))
        )
        .iter()),
        "the renumbered index is the one built afresh"
    );
    Some(index)
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
) -> (Vec<Arc<str>>, crate::addrset::AddrSet) {
    let nets = served_routes(table);
    if let Some((_, lowered)) = earlier.filter(|(t, _)| served_routes(t) == nets) {
        debug_assert!(
            (lowered.star.clone(), lowered.star_set.clone()) == star_sources(table, None),
            "`*` taken from an earlier lowering differs from the one made"
        );
        return (lowered.star.clone(), lowered.star_set.clone());
    }
    let mut out: Vec<Arc<str>> = TAILNET_WIRE.iter().map(|s| Arc::from(*s)).collect();
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
    out.extend(routes.into_iter().map(Arc::from));
    debug_assert_eq!(
        set,
        crate::addrset::AddrSet::from_wire(out.iter().map(|s| &**s)),
        "`*`'s set is its strings' addresses"
    );
    (out, set)
}

struct Builder<'a> {
    /// An earlier lowering whose source lists may be reused.
    reuse: Option<Reuse<'a>>,
    policy: &'a Policy,
    resolver: Resolver<'a>,
    /// Which devices pass which posture gates.
    gates: Gates<'a>,
    table: &'a NodeTable,
    lowered: Lowered,
    /// Each destination's nodes, per `via` list: resolved once however many rules name it.
    /// Keyed by the resolved target's identity ([`target_key`]; the resolver hands out one
    /// target per alias), which the entry keeps alive so that no other target takes its
    /// address: the alias was copied and hashed for every destination of every rule.
    dst_cache: crate::hash::Map<(usize, Option<Via>), (Target, Reach)>,
    /// Rule entries emitted so far.
    budget: Budget,
    /// The rule being lowered (what a budget error points at).
    span: Span,
    /// Each item's nodes (those not on every node), indexed per node once lowering ends.
    reaches: Vec<(u32, Arc<[NodeId]>)>,
    /// The source lists requested so far, by key, when they are not found by place.
    own: SourceMap,
    /// Where the items' lists go to have their peer sets prepared while lowering goes on
    /// ([`crate::peers::prepared_beside`]).
    lists: Option<crate::peers::Lists<'a>>,
}

/// A grant's `via` tags.
type Via = Arc<[Arc<str>]>;

/// A rule's sources as written and its posture gate: rules with equal keys share targets.
/// Shared with the lowerings that take it from an earlier one, not copied.
type SourceKey = Arc<(Vec<Alias>, Option<Gate>)>;

/// The source lists of a lowering, with each one's first request ([`Lowered::calls`]),
/// looked up by [`KeyRef`] (hashbrown's map: std's takes no borrowed form of a tuple).
type SourceMap = hashbrown::HashMap<SourceKey, (Sources, u32), crate::hash::BuildHash>;

/// A source list as a rule writes it, looked up without copying its aliases: it hashes as
/// its [`SourceKey`] does. Copying every rule's aliases to look it up, then hashing them
/// three times (in this lowering, and twice in the earlier one), was a tenth of a member's
/// join on `large`.
struct KeyRef<'a> {
    selectors: &'a [Selector],
    gate: Option<&'a Gate>,
}

impl std::hash::Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `(Vec<Alias>, Option<Gate>)` hashes: a slice writes its length, then each
        // element; an `Option` of a reference hashes as the `Option` of the value.
        state.write_usize(self.selectors.len());
        for selector in self.selectors {
            selector.alias.hash(state);
        }
        self.gate.hash(state);
    }
}

impl hashbrown::Equivalent<SourceKey> for KeyRef<'_> {
    fn equivalent(&self, key: &SourceKey) -> bool {
        let (aliases, gate) = &**key;
        aliases.len() == self.selectors.len()
            && aliases
                .iter()
                .zip(self.selectors)
                .all(|(alias, selector)| *alias == selector.alias)
            && gate.as_ref() == self.gate
    }
}

impl Builder<'_> {
    /// Resolve a source list, keep only what passes the rule's posture gate (if any), and
    /// intern its `SrcIPs`. Everything downstream (`SrcIPs`, `autogroup:self` narrowing,
    /// companion rules, peers) reads these targets, so a gated rule is gated everywhere.
    fn sources(
        &mut self,
        selectors: &[Selector],
        gate: Option<Gate>,
    ) -> Result<(Arc<[Target]>, u32), CompileError> {
        let probe = KeyRef {
            selectors,
            gate: gate.as_ref(),
        };
        let place = self.lowered.calls.len();
        // The same policy: the earlier lowering's request at this place is this one.
        let by_place = self
            .reuse
            .as_ref()
            .filter(|r| r.by_place)
            .and_then(|r| r.prior.lowered.calls.get(place));
        debug_assert!(
            by_place.is_none_or(|c| hashbrown::Equivalent::equivalent(&probe, &c.key)),
            "a request found by place is for another list"
        );
        // A list requested earlier in this lowering: its entry, shared.
        let first = match by_place {
            Some(c) => (c.first as usize != place).then_some(c.first),
            None => self.own.get(&probe).map(|(_, first)| *first),
        };
        if let Some(first) = first {
            let c = self.lowered.calls.get(first as usize);
            if let Some((key, entry)) = c.map(|c| (c.key.clone(), c.entry.clone())) {
                let (targets, id) = (entry.0.clone(), entry.1);
                self.lowered.calls.push(Call { key, entry, first });
                return Ok((targets, id));
            }
        }
        // The earlier lowering's entry for the same list, and its key (taken, not copied).
        let earlier: Option<(&SourceKey, &Sources)> = match by_place {
            Some(c) => Some((&c.key, &c.entry)),
            None => self
                .reuse
                .as_ref()
                .map(|r| r.prior.lowered)
                .and_then(|lowered| lowered.sources_map().get_key_value(&probe))
                .map(|(key, (entry, _))| (key, entry)),
        };
        let resolved: Vec<Target> = selectors.iter().map(|s| self.resolver.resolve(s)).collect();
        let targets: Arc<[Target]> = match &gate {
            None => Arc::from(resolved),
            Some(gate) => resolved
                .into_iter()
                .map(|target| self.gated(target, gate))
                .collect(),
        };
        let reused = match (&self.reuse, earlier) {
            (Some(r), Some((_, entry))) => r
                .same(entry, &targets)
                .map(|(old, spent)| (r.prior.lowered, old, spent)),
            _ => None,
        };
        let patched = match (&reused, &self.reuse, earlier) {
            (None, Some(r), Some((_, entry))) => r.patched(entry, &targets, self.table),
            _ => None,
        };
        #[cfg(debug_assertions)]
        if let Some((strings, _, spent)) = &patched {
            debug_assert_eq!(
                (strings.strings().to_vec(), *spent),
                self.strings_of(&targets),
                "a patched source list differs from one built"
            );
        }
        let (id, spent) = match (reused, patched) {
            (Some((earlier, old, spent)), _) => {
                self.budget.spend(spent, self.span)?;
                let id = self.lowered.srcs.intern_from(&earlier.srcs, old);
                match id {
                    Some(id) => (id, spent),
                    None => self.build_sources(&targets)?,
                }
            }
            (None, Some((strings, hash, spent))) => {
                self.budget.spend(spent, self.span)?;
                let id = match strings {
                    Made::Shared(strings) => self.lowered.srcs.intern_hashed(strings, hash),
                    Made::Gathered(strings) => self.lowered.srcs.intern_hashed(strings, hash),
                };
                (id, spent)
            }
            (None, None) => self.build_sources(&targets)?,
        };
        let key = match earlier {
            Some((key, _)) => key.clone(),
            None => Arc::new((selectors.iter().map(|s| s.alias.clone()).collect(), gate)),
        };
        let entry = (targets.clone(), id, spent);
        let first = crate::nodes::index(place);
        if by_place.is_none() {
            self.own.insert(key.clone(), (entry.clone(), first));
        }
        self.lowered.calls.push(Call { key, entry, first });
        Ok((targets, id))
    }

    /// Build and intern the `SrcIPs` of `targets`, charged to the budget: their id and cost.
    fn build_sources(&mut self, targets: &[Target]) -> Result<(u32, usize), CompileError> {
        let (strings, spent) = self.strings_of(targets);
        self.budget.spend(spent, self.span)?;
        Ok((self.lowered.srcs.intern_sorted(strings), spent))
    }

    /// A source target narrowed to the devices that pass `gate` (kb/1288: a posture is a
    /// property of a device). `*` and `autogroup:danger-all` become the passing devices;
    /// address-only sources have no device, hence no posture, and fail (fail closed).
    fn gated(&mut self, target: Target, gate: &Gate) -> Target {
        match target {
            Target::Wildcard | Target::DangerAll => Target::nodes(self.gates.all(gate)),
            Target::Nodes(ids) => Target::nodes(self.gates.filter(gate, ids.iter().copied())),
            Target::Literal(_) => Target::empty(),
            Target::Internet | Target::SelfDevices => target,
        }
    }

    /// The wire strings of targets used as sources, sorted and de-duplicated, and how many
    /// strings the targets name before de-duplication (the work spent). Node addresses are
    /// sorted by their ranks in the table ([`NodeTable::texts`]), the few other strings by
    /// content, and the two merged.
    fn strings_of(&self, targets: &[Target]) -> (Vec<Arc<str>>, usize) {
        // `autogroup:danger-all` covers every address; nothing else is listed beside it.
        if targets.iter().any(|t| matches!(t, Target::DangerAll)) {
            return (vec![Arc::from("*")], 1);
        }
        let mut ranks: Vec<u32> = Vec::new();
        let mut others: Vec<Arc<str>> = Vec::new();
        for target in targets {
            match target {
                Target::Wildcard => others.extend(self.lowered.star.iter().cloned()),
                Target::DangerAll => {}
                Target::Nodes(ids) => {
                    for &id in ids.iter() {
                        ranks.extend(self.table.text_ranks(id).iter().copied());
                    }
                }
                Target::Literal(lit) => others.extend(lit.pieces.iter().map(|p| p.text.clone())),
                Target::Internet | Target::SelfDevices => {}
            }
        }
        let spent = ranks.len() + others.len();
        ranks.sort_unstable();
        ranks.dedup();
        others.sort_unstable();
        let texts = ranks.iter().filter_map(|&r| self.table.text_at(r).cloned());
        let mut out = Vec::with_capacity(ranks.len() + others.len());
        let mut others = others.into_iter().peekable();
        for text in texts {
            while let Some(other) = others.next_if(|o| *o < text) {
                out.push(other);
            }
            out.push(text);
        }
        out.extend(others);
        // A literal equal to a node's address sorts beside it.
        out.dedup();
        (out, spent)
    }

    fn grant(&mut self, grant: &aclc_policy::model::Grant) -> Result<(), CompileError> {
        if grant.src.is_empty() || grant.dst.is_empty() {
            return Ok(());
        }
        let gate = gate_of(self.policy, &grant.src_posture);
        let gated = gate.is_some();
        let (src_targets, src) = self.sources(&grant.src, gate)?;
        // A posture-gated grant that no source device passes grants nothing (not even an
        // app capability with empty `SrcIPs`).
        if gated && self.lowered.srcs.get(src).is_empty() {
            return Ok(());
        }
        let via: Option<Via> = (!grant.via.is_empty()).then(|| {
            grant
                .via
                .iter()
                .map(|v| Arc::from(v.text.as_str()))
                .collect()
        });
        // Each destination resolved, and its nodes found, once for every `ip` entry.
        let mut others: Vec<(Target, Reach)> = Vec::new();
        let mut has_self = false;
        for dst in &grant.dst {
            match self.resolver.resolve(dst) {
                // A user's own devices are reached directly, never through a `via` router:
                // such a grant gives them nothing (`aclc::via_self_unrouted`). Without this,
                // the self items ignored `via` and opened every device to its owner's others.
                Target::SelfDevices if via.is_some() => {}
                Target::SelfDevices => has_self = true,
                target => {
                    let reach = self.dst_reach(&target, via.as_ref());
                    others.push((target, reach));
                }
            }
        }
        for ip in &grant.ip {
            let proto = ip.value.proto.map(|p| p.0);
            for (dst, reach) in &others {
                self.push_net(
                    &src_targets,
                    src,
                    via.clone(),
                    proto,
                    dst.clone(),
                    reach.clone(),
                    &[ip.value.ports],
                )?;
            }
            if has_self {
                self.push_self_net(&src_targets, src, proto, &[ip.value.ports])?;
            }
        }
        if grant.app.is_empty() {
            return Ok(());
        }
        let caps: CapMap = grant
            .app
            .iter()
            .map(|c| (c.name.value.clone(), c.values.value.clone()))
            .collect();
        // The Kubernetes operator's recorders, as addresses ([`crate::kube`]).
        let caps = Arc::new(crate::kube::with_recorders(&caps, self.table).unwrap_or(caps));
        let dst_nodes = union_reach(others.iter().map(|(_, reach)| reach.clone()));
        let dsts: Arc<[Target]> = others.into_iter().map(|(target, _)| target).collect();
        if via.is_some() {
            // Application grants routed through `via` produce no filter rules, but they still
            // make their sources and routers peers: the item is kept, on no node.
            let body = Body::App { dsts, caps };
            return self.push(src_targets, src, via, body, Reach::none(), dst_nodes);
        }
        let companions: Vec<Arc<CapMap>> = COMPANIONS
            .iter()
            .filter(|(name, _)| caps.contains_key(*name))
            .map(|(_, companion)| {
                Arc::new(CapMap::from([(
                    companion.to_string(),
                    serde_json::Value::Null,
                )]))
            })
            .collect();
        if !dsts.is_empty() {
            let body = Body::App {
                dsts: dsts.clone(),
                caps: caps.clone(),
            };
            self.push(
                src_targets.clone(),
                src,
                None,
                body,
                dst_nodes.clone(),
                dst_nodes,
            )?;
            if !companions.is_empty() {
                let (reversed, spent) = self.strings_of(&dsts);
                self.budget.spend(spent, self.span)?;
                let src_ips = self.lowered.srcs.intern_sorted(reversed);
                let reach = union_reach(src_targets.iter().map(|t| self.src_reach(t)));
                for caps in &companions {
                    let body = Body::Companion {
                        caps: caps.clone(),
                        src_ips,
                    };
                    self.push(
                        src_targets.clone(),
                        src,
                        None,
                        body,
                        reach.clone(),
                        Reach::none(),
                    )?;
                }
            }
        }
        if has_self {
            self.push_self(src_targets.clone(), src, Body::SelfApp { caps })?;
            for caps in companions {
                self.push_self(src_targets.clone(), src, Body::SelfCompanion { caps })?;
            }
        }
        Ok(())
    }

    fn acl(&mut self, acl: &aclc_policy::model::Acl) -> Result<(), CompileError> {
        let gate = gate_of(self.policy, &acl.src_posture);
        let (src_targets, src) = self.sources(&acl.src, gate)?;
        let proto = acl.proto.as_ref().map(|p| p.value.0);
        // Observed ordering: an ACL naming anything but autogroups lists its `autogroup:self`
        // destinations after the others; an all-autogroup ACL keeps the written order.
        let is_self = |d: &&aclc_policy::model::AclDestination| {
            d.target.alias == Alias::Autogroup(Autogroup::SelfDevices)
        };
        let reorder = acl
            .dst
            .iter()
            .any(|d| !matches!(d.target.alias, Alias::Autogroup(_)));
        let ordered: Vec<&aclc_policy::model::AclDestination> = if reorder {
            let (selfs, others): (Vec<_>, Vec<_>) = acl.dst.iter().partition(is_self);
            others.into_iter().chain(selfs).collect()
        } else {
            acl.dst.iter().collect()
        };
        for dst in ordered {
            match self.resolver.resolve(&dst.target) {
                Target::SelfDevices => {
                    self.push_self_net(&src_targets, src, proto, &dst.ports)?;
                }
                target => {
                    let reach = self.dst_reach(&target, None);
                    self.push_net(&src_targets, src, None, proto, target, reach, &dst.ports)?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn push_net(
        &mut self,
        src_targets: &Arc<[Target]>,
        src: u32,
        via: Option<Via>,
        proto: Option<u8>,
        dst: Target,
        reach: Reach,
        ports: &[PortRange],
    ) -> Result<(), CompileError> {
        // A network rule whose sources resolve to nothing allows nothing, but keeps its item
        // (vacant: no filter entry, no peer, [`Lowered::is_vacant`]), so that the items'
        // numbers do not shift when a rule's only source device leaves or joins: such a node
        // event then patches the per-node index like any other, where renumbering it copied
        // all of it (92 MB and half the event on `large`).
        let body = Body::Net {
            proto,
            dst,
            ports: wire_ports(ports),
        };
        self.push(src_targets.clone(), src, via, body, reach.clone(), reach)
    }

    fn push_self_net(
        &mut self,
        src_targets: &Arc<[Target]>,
        src: u32,
        proto: Option<u8>,
        ports: &[PortRange],
    ) -> Result<(), CompileError> {
        let body = Body::SelfNet {
            proto,
            ports: wire_ports(ports),
        };
        self.push_self(src_targets.clone(), src, body)
    }

    fn push_self(
        &mut self,
        src_targets: Arc<[Target]>,
        src: u32,
        body: Body,
    ) -> Result<(), CompileError> {
        // A self item may reach every untagged node.
        self.budget
            .spend(self.table.untagged.len().max(1), self.span)?;
        let i = crate::nodes::index(self.lowered.items.len());
        self.lowered.self_items.push(i);
        self.lowered.items.push(Item {
            src_targets,
            src,
            via: None,
            body,
            slot: i,
            dst_nodes: Reach::none(),
            origin: self.span.start,
        });
        Ok(())
    }

    fn push(
        &mut self,
        src_targets: Arc<[Target]>,
        src: u32,
        via: Option<Via>,
        body: Body,
        reach: Reach,
        dst_nodes: Reach,
    ) -> Result<(), CompileError> {
        self.budget
            .spend(reach.count(self.table).max(1), self.span)?;
        let lowered = &mut self.lowered;
        let i = crate::nodes::index(lowered.items.len());
        // `via` items count for merging only on the routers they apply to (per node).
        let slot = match &body {
            Body::Net { proto, .. } if via.is_none() => {
                *lowered.first_slot.entry((src, *proto)).or_insert(i)
            }
            Body::Net { .. } => {
                lowered.via_items.push(i);
                i
            }
            _ => i,
        };
        match &reach {
            Reach::All => lowered.global.push(i),
            Reach::Some(ids) => self.reaches.push((i, ids.clone())),
        }
        let item = Item {
            src_targets,
            src,
            via,
            body,
            slot,
            dst_nodes,
            origin: self.span.start,
        };
        if let Some(lists) = self.lists.as_mut().filter(|_| !lowered.is_vacant(&item)) {
            lists.item(&item.src_targets, &item.body, &item.dst_nodes);
        }
        lowered.items.push(item);
        Ok(())
    }

    /// The nodes a destination (resolved to `target`) may put a rule on, narrowed to the
    /// routers carrying a `via` tag: computed once per (target, via) per compile.
    fn dst_reach(&mut self, target: &Target, via: Option<&Via>) -> Reach {
        let key = (target_key(target), via.cloned());
        if let Some((_, hit)) = self.dst_cache.get(&key) {
            #[cfg(debug_assertions)]
            {
                let again = self.compute_dst_reach(target, via.map(|v| &v[..]));
                debug_assert!(
                    match (hit, &again) {
                        (Reach::All, Reach::All) => true,
                        (Reach::Some(a), Reach::Some(b)) => a == b,
                        _ => false,
                    },
                    "a cached reach differs from the one computed again"
                );
            }
            return hit.clone();
        }
        let reach = self.compute_dst_reach(target, via.map(|v| &v[..]));
        self.dst_cache.insert(key, (target.clone(), reach.clone()));
        reach
    }

    fn compute_dst_reach(&self, target: &Target, via: Option<&[Arc<str>]>) -> Reach {
        let ids: Vec<NodeId> = match target {
            Target::Wildcard | Target::DangerAll if via.is_none() => return Reach::All,
            // The target's own list, shared (copying it was a tenth of a node event's
            // lowering on `large`).
            Target::Nodes(ids) if via.is_none() => return Reach::Some(ids.clone()),
            Target::Wildcard | Target::DangerAll => {
                (0..self.table.len()).map(NodeId::new).collect()
            }
            Target::Internet => self.table.exits.clone(),
            Target::Nodes(ids) => ids.to_vec(),
            Target::Literal(lit) => self.table.destination_nodes(&lit.set, &lit.public_part()),
            Target::SelfDevices => Vec::new(),
        };
        let ids = match via {
            None => ids,
            Some(tags) => {
                let mut carriers: Vec<NodeId> = tags
                    .iter()
                    .flat_map(|t| self.table.with_tag(t).iter().copied())
                    .collect();
                carriers.sort_unstable();
                carriers.dedup();
                // A router carries what its approved routes reach, not its own addresses:
                // a `via` rule lands on a carrier that serves a route (subnet or exit)
                // overlapping the destination. Traffic to a device's own address (a tag, a
                // tailnet prefix holding the carrier) is not routed; the carrier's own
                // addresses in the destination opened the router itself (found by a hostile
                // sweep), as did `*` on a carrier serving no route.
                let table = self.table;
                let public = match target {
                    Target::Literal(lit) => Some(lit.public_part()),
                    _ => None,
                };
                carriers.retain(|&id| {
                    let Some(node) = table.get(id) else {
                        return false;
                    };
                    match target {
                        Target::Wildcard | Target::DangerAll => !node.served.is_empty(),
                        Target::Internet => ids.binary_search(&id).is_ok(),
                        Target::Literal(lit) => {
                            node.routes_overlap(&lit.set)
                                || public.as_ref().is_some_and(|p| node.exits_for(p))
                        }
                        Target::Nodes(_) | Target::SelfDevices => false,
                    }
                });
                carriers
            }
        };
        Reach::Some(Arc::from(ids))
    }

    /// The nodes a source target may narrow a companion rule to.
    fn src_reach(&self, target: &Target) -> Reach {
        match target {
            Target::Wildcard | Target::DangerAll => Reach::All,
            Target::Nodes(ids) => Reach::Some(ids.clone()),
            Target::Literal(lit) => Reach::Some(Arc::from(self.table.source_nodes(&lit.set))),
            Target::Internet | Target::SelfDevices => Reach::none(),
        }
    }
}

/// A resolved target's identity within one lowering: its shared list's address, or its kind
/// for the targets that carry none (no allocation has an address below 4).
fn target_key(target: &Target) -> usize {
    match target {
        Target::Wildcard => 0,
        Target::DangerAll => 1,
        Target::Internet => 2,
        Target::SelfDevices => 3,
        Target::Nodes(ids) => Arc::as_ptr(ids).cast::<NodeId>() as usize,
        Target::Literal(lit) => Arc::as_ptr(lit) as usize,
    }
}

/// Every node of some reaches, sorted.
fn union_reach(parts: impl IntoIterator<Item = Reach>) -> Reach {
    let mut parts = parts.into_iter().peekable();
    let first = parts.next();
    // One part (a grant's single destination, most often) is its own union, shared.
    if parts.peek().is_none() {
        return first.unwrap_or_else(Reach::none);
    }
    let mut ids = Vec::new();
    for part in first.into_iter().chain(parts) {
        match part {
            Reach::All => return Reach::All,
            Reach::Some(more) => ids.extend_from_slice(&more),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Reach::Some(Arc::from(ids))
}

fn wire_ports(ports: &[PortRange]) -> Arc<[Ports]> {
    ports
        .iter()
        .map(|p| Ports {
            first: p.first,
            last: p.last,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{same_strings, KeyRef, SourceKey, SourceMap};
    use aclc_policy::model::{Alias, Autogroup, Selector};
    use std::sync::Arc;

    /// A source list looked up as written finds the entry of its key, and only that one: it
    /// hashes as the key does (else no lookup would ever hit) and compares by every alias
    /// and the gate.
    #[test]
    fn source_lists_are_found_as_written() {
        let selector = |alias: Alias| Selector {
            alias,
            text: String::new(),
            span: aclc_policy::Span::default(),
        };
        let lists = [
            vec![],
            vec![selector(Alias::Wildcard)],
            vec![
                selector(Alias::Group("group:eng".into())),
                selector(Alias::Tag("tag:ci".into())),
            ],
            vec![
                selector(Alias::Tag("tag:ci".into())),
                selector(Alias::Group("group:eng".into())),
            ],
            vec![selector(Alias::Autogroup(Autogroup::Member))],
        ];
        let gates = [None, Some(Arc::from(vec!["posture:a".to_string()]))];
        let mut map = SourceMap::default();
        let mut keys = Vec::new();
        for (i, list) in lists.iter().enumerate() {
            for (j, gate) in gates.iter().enumerate() {
                let key: SourceKey =
                    Arc::new((list.iter().map(|s| s.alias.clone()).collect(), gate.clone()));
                let probe = KeyRef {
                    selectors: list,
                    gate: gate.as_ref(),
                };
                assert_eq!(map.hasher().hash_one(&probe), map.hasher().hash_one(&key));
                map.insert(key, ((Arc::from(Vec::new()), (i * 2 + j) as u32, 0), 0));
                keys.push((list, gate));
            }
        }
        for (n, (list, gate)) in keys.iter().enumerate() {
            let probe = KeyRef {
                selectors: list,
                gate: gate.as_ref(),
            };
            assert_eq!(map.get(&probe).map(|e| e.0 .1), Some(n as u32));
        }
    }

    fn list(items: &[&str]) -> Vec<Arc<str>> {
        items.iter().map(|s| Arc::from(*s)).collect()
    }

    #[test]
    fn string_lists_compare_by_content_whatever_their_memory() {
        let a = list(&["100.64.0.1", "fd7a:115c:a1e0::1"]);
        assert!(same_strings(&a, &a));
        assert!(same_strings(
            &a,
            &list(&["100.64.0.1", "fd7a:115c:a1e0::1"])
        ));
        assert!(!same_strings(
            &a,
            &list(&["100.64.0.1", "fd7a:115c:a1e0::2"])
        ));
        assert!(!same_strings(&a, &a[..1]));
        assert!(!same_strings(&a[..1], &a));
        // The same start, not the same length.
        assert!(!same_strings(&a[..0], &a));
        let shared: Vec<Arc<str>> = vec![a[0].clone(), Arc::from("100.64.0.9")];
        assert!(!same_strings(&a, &shared));
    }
}
