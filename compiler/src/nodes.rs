//! The tailnet as the compiler sees it: nodes in a canonical order (sorted by name, so the
//! inventory's order never shows in the output), with their wire strings made once, and the
//! lookups that alias resolution needs (by owner, by tag, by address).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::addrset::AddrSet;
use crate::inventory::{Inventory, Role};
use crate::ipsets::IpSets;

/// A node: its index in [`NodeTable::nodes`] (nodes sorted by name), typed so that it is never
/// confused with a user, a rule or a set index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct NodeId(u32);

/// As its index; a list of ids (interned node sets: millions of ids per compile on `large`)
/// is written two at a time, not one call per id.
impl std::hash::Hash for NodeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u32(self.0);
    }

    fn hash_slice<H: std::hash::Hasher>(data: &[NodeId], state: &mut H) {
        let mut pairs = data.chunks_exact(2);
        for pair in &mut pairs {
            if let [a, b] = pair {
                state.write_u64(u64::from(a.0) << 32 | u64::from(b.0));
            }
        }
        for last in pairs.remainder() {
            state.write_u32(last.0);
        }
    }
}

impl NodeId {
    /// The node at index `i` of the table.
    pub(crate) fn new(i: usize) -> NodeId {
        debug_assert!(i < u32::MAX as usize, "more than 2^32 nodes");
        NodeId(index(i))
    }

    /// Its index in [`NodeTable::nodes`].
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }

    /// The id `offset` places on, for an offset that keeps it an id (a run of ids moved by a
    /// patch): plain 32-bit arithmetic, so a run moves as one vectorised loop, not one
    /// saturating conversion per id.
    pub(crate) fn shifted(self, offset: isize) -> NodeId {
        debug_assert!(self
            .index()
            .checked_add_signed(offset)
            .is_some_and(|i| i < u32::MAX as usize));
        // Two's complement: adding the low 32 bits of a negative offset subtracts it.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "wrapping 32-bit arithmetic on purpose; the result is in range"
        )]
        NodeId(self.0.wrapping_add(offset as u32))
    }
}

/// A user: its index in [`NodeTable::users`] (inventory order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct UserId(u32);

impl UserId {
    /// The user at index `i` of the table.
    pub(crate) fn new(i: usize) -> UserId {
        debug_assert!(i < u32::MAX as usize, "more than 2^32 users");
        UserId(index(i))
    }

    /// Its index in [`NodeTable::users`].
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// At most two values, one per address family (a node has an IPv4 address, an IPv6 one or
/// both), kept inline: a vector each for a node's address texts, their ranks and its host
/// prefixes were three allocations per node, made and freed by every compile (300,000 per
/// engine event on `large`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pair<T> {
    items: [T; 2],
    len: u8,
}

impl<T> std::ops::Deref for Pair<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.items.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl<T> std::ops::DerefMut for Pair<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.items
            .get_mut(..usize::from(self.len))
            .unwrap_or_default()
    }
}

impl<'a, T> IntoIterator for &'a Pair<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The first two values (a node has no more addresses).
impl<T: Default> FromIterator<T> for Pair<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Pair<T> {
        let mut pair = Pair::<T>::default();
        for (slot, item) in pair.items.iter_mut().zip(iter) {
            *slot = item;
            pair.len += 1;
        }
        pair
    }
}

/// One node, with everything the compiler reads from it. Shared (`Arc`) between the tables of
/// an engine's snapshots: a node event copies the changed nodes' records, not every node's.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    /// Unique name.
    pub(crate) name: Arc<str>,
    /// Owner (index into [`NodeTable::users`]) of a user-owned node.
    pub(crate) owner: Option<UserId>,
    /// Tags; empty for a user-owned node.
    pub(crate) tags: Vec<Arc<str>>,
    /// Tailscale IPv4 address; `None` for a node of an IPv6-only pool.
    pub(crate) v4: Option<Ipv4Addr>,
    /// Tailscale IPv6 address; `None` for a node of an IPv4-only pool.
    pub(crate) v6: Option<Ipv6Addr>,
    /// The addresses it has, bare (how `SrcIPs` and `DstPorts` name them), IPv4 first. Their
    /// ranks among every node's texts are the table's ([`NodeTable::text_ranks`]).
    pub(crate) texts: Pair<Arc<str>>,
    /// The addresses it has as `a/32` and `a/128` (how `CapGrant.Dsts`, `addresses` and
    /// `AllowedIPs` name them), IPv4 first.
    pub(crate) hosts: Pair<Arc<str>>,
    /// Routes the node advertises.
    pub(crate) advertised: Vec<IpNet>,
    /// Routes approved in the inventory.
    pub(crate) approved: Vec<IpNet>,
    /// The control server last saw the node offline (only the engine says so): an offline
    /// router is primary for a route only when none of its other servers is online.
    pub(crate) offline: bool,
    /// Advertised routes that are approved (by the inventory or `autoApprovers`), in the
    /// order advertised. Set by [`crate::routes`].
    pub(crate) served: Vec<IpNet>,
    /// `served` without the exit routes.
    pub(crate) subnet_routes: Vec<IpNet>,
    /// True when an exit route (`0.0.0.0/0` or `::/0`) is served.
    pub(crate) exit: bool,
    /// True when `0.0.0.0/0` is served.
    pub(crate) exit_v4: bool,
    /// True when `::/0` is served.
    pub(crate) exit_v6: bool,
    /// Device posture attributes (`node:os` -> `"linux"`, ...).
    pub(crate) posture: BTreeMap<String, serde_json::Value>,
}

impl NodeInfo {
    /// True when the node advertises or serves a route ([`NodeTable::with_routes`]).
    pub(crate) fn has_routes(&self) -> bool {
        !self.advertised.is_empty() || !self.served.is_empty()
    }

    /// The node's addresses (one or two), IPv4 first.
    pub(crate) fn ips(&self) -> Vec<IpAddr> {
        self.addrs().collect()
    }

    /// [`NodeInfo::ips`] without a list (a map holds tens of thousands of peers).
    pub(crate) fn addrs(&self) -> impl Iterator<Item = IpAddr> {
        let v4 = self.v4.map(IpAddr::V4);
        let v6 = self.v6.map(IpAddr::V6);
        v4.into_iter().chain(v6)
    }

    /// The node's addresses as the old two-element form: a family it has no address of is the
    /// unspecified address of that family (for the public `addresses()` only).
    pub(crate) fn ips_or_unspecified(&self) -> [IpAddr; 2] {
        [
            IpAddr::V4(self.v4.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            IpAddr::V6(self.v6.unwrap_or(Ipv6Addr::UNSPECIFIED)),
        ]
    }

    /// Its `/32` host prefix, if it has an IPv4 address.
    pub(crate) fn v4_host(&self) -> Option<&Arc<str>> {
        self.v4.and(self.hosts.first())
    }

    /// True for a tagged node.
    pub(crate) fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// True if the node carries `tag`.
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| &**t == tag)
    }

    /// True if an address of the node is in `set`.
    pub(crate) fn address_in(&self, set: &AddrSet) -> bool {
        self.v4.is_some_and(|a| set.contains(IpAddr::V4(a)))
            || self.v6.is_some_and(|a| set.contains(IpAddr::V6(a)))
    }

    /// True if the node is an exit node for the family of (some of) `set`'s addresses.
    pub(crate) fn exits_for(&self, set: &AddrSet) -> bool {
        (self.exit_v4 && !set.v4_ranges().is_empty())
            || (self.exit_v6 && !set.v6_ranges().is_empty())
    }

    /// True if a subnet route the node serves overlaps `set`.
    pub(crate) fn routes_overlap(&self, set: &AddrSet) -> bool {
        self.subnet_routes.iter().any(|r| set.overlaps_net(r))
    }
}

/// A user, as far as aliases care.
#[derive(Debug)]
pub(crate) struct UserInfo {
    /// Login email, lowercased.
    pub(crate) email: String,
    /// Roles.
    pub(crate) roles: Vec<Role>,
}

/// A Tailscale Service: its virtual addresses and the nodes that advertise it. The addresses
/// are routes of those nodes (advertised, approved by the inventory or
/// `autoApprovers.services`), so filters, peers and the matcher treat them as any served route.
#[derive(Debug)]
pub(crate) struct ServiceInfo {
    /// `svc:name`.
    pub(crate) name: String,
    /// The virtual addresses as host prefixes, IPv4 first.
    pub(crate) vips: Vec<IpNet>,
    /// Its tags.
    pub(crate) tags: Vec<String>,
}

impl ServiceInfo {
    /// True when an `autoApprovers.services` key (a service name or a tag) names it.
    pub(crate) fn keyed_by(&self, key: &str) -> bool {
        self.name == key || self.tags.iter().any(|t| t == key)
    }
}

/// Members of each synced group (`group:eng@example.com`), user indexes in inventory order.
pub(crate) type SyncedGroups = HashMap<String, Vec<UserId>>;

impl UserInfo {
    /// The domain of the login, lowercased.
    pub(crate) fn domain(&self) -> Option<&str> {
        self.email.rsplit_once('@').map(|(_, d)| d)
    }
}

/// The subnet routes the routers serve ([`crate::routes::RouteTable`]), indexed to find the
/// routers whose routes a set of addresses overlaps (a compile asks once per distinct
/// address literal: testing every router each time was O(literals x routers)).
#[derive(Debug)]
pub(crate) struct RouteIndex {
    routes: crate::routes::RouteTable,
    /// Over `routes`, in their order.
    finder: crate::routehits::RouteFinder,
}

impl RouteIndex {
    fn new(table: &NodeTable) -> RouteIndex {
        let routes = crate::routes::RouteTable::new(table);
        let nets = routes.routes.iter().map(|r| r.net).collect();
        let finder = crate::routehits::RouteFinder::new(nets, &[], &AddrSet::new());
        RouteIndex { routes, finder }
    }
}

/// The users as the compiler reads them (logins lowercased), users by login, and the members
/// of each synced group.
fn user_lookups(
    list: &[crate::inventory::User],
) -> (
    Vec<UserInfo>,
    crate::hash::Map<String, UserId>,
    SyncedGroups,
) {
    let users: Vec<UserInfo> = list
        .iter()
        .map(|u| UserInfo {
            email: u.email.to_lowercase(),
            roles: u.roles.clone(),
        })
        .collect();
    let mut synced_groups = SyncedGroups::new();
    for (i, user) in list.iter().enumerate() {
        for group in &user.groups {
            synced_groups
                .entry(group.clone())
                .or_default()
                .push(UserId::new(i));
        }
    }
    let mut user_by_email = crate::hash::Map::default();
    for (i, user) in users.iter().enumerate() {
        if !user.email.is_empty() {
            user_by_email
                .entry(user.email.clone())
                .or_insert(UserId::new(i));
        }
    }
    (users, user_by_email, synced_groups)
}

/// What [`NodeTable::patched_from`] reads of a tailnet after a change to some nodes: an
/// inventory without Services whose registration ranks are positions.
pub(crate) struct Change<'a> {
    /// Its list of users (the earlier table's, or the patch does not apply).
    pub(crate) users: &'a Arc<[crate::inventory::User]>,
    /// How many nodes it has.
    pub(crate) nodes: usize,
    /// The changed nodes it has, each with its registration rank (its position).
    pub(crate) named: Vec<(&'a crate::inventory::Node, usize)>,
}

/// Every node and user, with lookups.
#[derive(Debug)]
pub(crate) struct NodeTable {
    /// Nodes sorted by name.
    pub(crate) nodes: Vec<Arc<NodeInfo>>,
    /// Each node's address texts' positions among every node's texts in string order
    /// ([`NodeTable::texts`]), by node id: sorting a list of node addresses sorts these.
    ranks: Vec<Pair<u32>>,
    /// Each node's position in the registration order (`usize::MAX` when not listed), by
    /// node id: orders a route's servers.
    registration: Vec<usize>,
    /// The registration order lists every node in node order (an engine's inventory):
    /// `registration` holds positions in the inventory, which a patch can move.
    positional: bool,
    /// The inventory's users this table was built from: a table built from the same list
    /// (an engine's event on nodes) shares the three lookups below instead of making them.
    user_source: Arc<[crate::inventory::User]>,
    /// Users in inventory order.
    pub(crate) users: Arc<Vec<UserInfo>>,
    /// Node ids by name: keyed by the name's hash ([`crate::hash::name`]) and compared against the
    /// nodes' own names, so the table holds no second reference to every name (taken and
    /// dropped for 100,000 nodes on every engine event on `large`).
    by_name: hashbrown::HashTable<NodeId>,
    user_by_email: Arc<crate::hash::Map<String, UserId>>,
    /// Members of each group synced from the identity provider.
    synced_groups: Arc<SyncedGroups>,
    /// Tailscale Services, in inventory order.
    pub(crate) services: Vec<ServiceInfo>,
    service_by_name: HashMap<String, usize>,
    /// Each service address (`/32`, `/128`) -> its service's index in `services`.
    service_by_vip: HashMap<IpNet, usize>,
    /// Untagged nodes of each user, sorted.
    pub(crate) devices: crate::devices::Devices,
    /// Nodes carrying each tag, sorted.
    by_tag: crate::hash::Map<Arc<str>, Vec<NodeId>>,
    /// Tagged nodes, sorted.
    pub(crate) tagged: Vec<NodeId>,
    /// Untagged nodes, sorted.
    pub(crate) untagged: Vec<NodeId>,
    by_v4: Vec<(u32, NodeId)>,
    by_v6: Vec<(u128, NodeId)>,
    /// Nodes serving a subnet route, sorted. Set by [`crate::routes`].
    pub(crate) routers: Vec<NodeId>,
    /// Nodes serving an exit route, sorted. Set by [`crate::routes`].
    pub(crate) exits: Vec<NodeId>,
    /// The nodes that advertise or serve a route, sorted, when known (set by
    /// [`crate::routes::apply`], moved by [`NodeTable::patched`]): the only nodes whose
    /// routes the compile settles. Every other node serves nothing (walking all 100,000
    /// records of `large` for their routes, twice, was 3 % of a member join).
    pub(crate) with_routes: Option<Vec<NodeId>>,
    /// Every node's address texts, in string order (node addresses are unique): each as its
    /// node's id and its place in the node's texts ([`NodeTable::text_at`]). Positions, not
    /// the strings: a patched table renumbers 200,000 of them on `large` from one array,
    /// where cloning the strings touched each one's reference count (and freeing the
    /// earlier table touched them again).
    texts: Vec<(u32, u32)>,
    /// The policy's IP sets, resolved once per compile (before anything resolves an alias).
    /// Set by [`crate::compiled`] from [`crate::ipsets::resolve`].
    pub(crate) ipsets: IpSets,
    /// The users each group of the policy being compiled stands for, as resolved so far
    /// ([`crate::resolve::Resolver::users_of`]): they depend only on the policy and the
    /// users, so a compile of the same policy on a table of the same users takes the
    /// earlier compile's ([`NodeTable::share_group_users`]).
    pub(crate) group_users: Arc<GroupUsers>,
    /// Built on first use once routes are approved ([`crate::routes::apply`] resets it).
    pub(crate) route_index: std::sync::OnceLock<RouteIndex>,
    /// This table's serial number, unique among the tables of the process: a table patched
    /// from another names that one by it (not by its address, which a table made after the
    /// other was freed may take).
    serial: u64,
    /// For a table patched from another ([`NodeTable::patched`]): that table's serial, and its
    /// node ids translated to this table's by name, as [`translate_ids`] gives them, made from
    /// the patch's own moves. The merge walk over every node's name took about 1.2 ms on
    /// `large`, three times per engine event.
    translated: Option<(u64, Arc<[u32]>)>,
}

/// The next [`NodeTable::serial`].
fn next_serial() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl NodeTable {
    /// Sorts every node's address texts once, so that lists of them sort as numbers.
    fn rank_texts(&mut self) {
        // The first 24 bytes, zero-padded, order as the strings do up to a tie (eight were
        // too few: every IPv6 address of a tailnet starts `fd7a:115c:a1e0:`, and each tie
        // reads both strings).
        let prefix = |t: &str| {
            let mut bytes = [0u8; 24];
            bytes
                .iter_mut()
                .zip(t.as_bytes())
                .for_each(|(b, &c)| *b = c);
            let (mut high, mut low) = ([0u8; 16], [0u8; 8]);
            high.iter_mut().zip(&bytes).for_each(|(h, &b)| *h = b);
            low.iter_mut()
                .zip(bytes.iter().skip(16))
                .for_each(|(l, &b)| *l = b);
            (u128::from_be_bytes(high), u64::from_be_bytes(low))
        };
        let mut keyed: Vec<((u128, u64), (u32, u32))> = Vec::new();
        self.ranks = self
            .nodes
            .iter()
            .map(|n| n.texts.iter().map(|_| 0).collect())
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for (j, t) in node.texts.iter().enumerate() {
                keyed.push((prefix(t), (index(i), index(j))));
            }
        }
        keyed.sort_unstable_by(|&(pa, a), &(pb, b)| {
            pa.cmp(&pb)
                .then_with(|| self.text_of(a).cmp(&self.text_of(b)))
        });
        let mut texts = Vec::with_capacity(keyed.len());
        for (rank, &(_, (i, j))) in keyed.iter().enumerate() {
            let (Some(node), Some(ranks)) =
                (self.nodes.get(i as usize), self.ranks.get_mut(i as usize))
            else {
                continue;
            };
            if let (Some(slot), Some(_)) = (ranks.get_mut(j as usize), node.texts.get(j as usize)) {
                *slot = index(rank);
                texts.push((i, j));
            }
        }
        self.texts = texts;
    }

    /// [`NodeTable::rank_texts`] for a table built from `earlier`: node `n` took its address
    /// texts from node `texts_from[n]` of `earlier` (or formatted them). The texts kept stay
    /// in their order and the few new ones are merged in: O(texts + new log new), not a sort
    /// of every text. Returns every address text in order, and each node's texts' ranks: it
    /// reads only the nodes, so it runs beside the table's other indexes.
    fn ranked_texts_from(
        nodes: &[Arc<NodeInfo>],
        earlier: &NodeTable,
        texts_from: &[Option<NodeId>],
    ) -> (Vec<(u32, u32)>, Vec<Pair<u32>>) {
        // Where each earlier node's texts went (`u32::MAX`: not kept), and the new texts.
        let mut to_new = vec![u32::MAX; earlier.nodes.len()];
        let mut fresh: Vec<(&Arc<str>, u32, u32)> = Vec::new();
        for (i, (node, from)) in nodes.iter().zip(texts_from).enumerate() {
            match from.and_then(|id| to_new.get_mut(id.index())) {
                Some(slot) => *slot = index(i),
                None => {
                    for (j, t) in node.texts.iter().enumerate() {
                        fresh.push((t, index(i), index(j)));
                    }
                }
            }
        }
        fresh.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Merge the kept texts (in their order) with the new ones (sorted).
        let mut new_rank = vec![u32::MAX; earlier.texts.len()];
        let mut texts: Vec<(u32, u32)> = Vec::with_capacity(earlier.texts.len() + fresh.len());
        let mut placed: Vec<(u32, u32, u32)> = Vec::with_capacity(fresh.len());
        // Each new text goes before the first earlier text greater than it: found by binary
        // search (O(new x log texts) comparisons, not one per kept text).
        let mut fresh_iter = fresh
            .into_iter()
            .map(|(t, i, j)| {
                let at = earlier
                    .texts
                    .partition_point(|&o| earlier.text_of(o).is_some_and(|o| **o <= **t));
                (at, (i, j))
            })
            .peekable();
        for (r, &(node, j)) in earlier.texts.iter().enumerate() {
            let Some(&now) = to_new.get(node as usize).filter(|&&n| n != u32::MAX) else {
                continue;
            };
            while let Some((_, (i, j))) = fresh_iter.next_if(|(at, _)| *at <= r) {
                placed.push((i, j, index(texts.len())));
                texts.push((i, j));
            }
            if let Some(slot) = new_rank.get_mut(r) {
                *slot = index(texts.len());
            }
            texts.push((now, j));
        }
        for (_, (i, j)) in fresh_iter {
            placed.push((i, j, index(texts.len())));
            texts.push((i, j));
        }
        let mut ranks: Vec<Pair<u32>> = nodes
            .iter()
            .zip(texts_from)
            .map(
                |(node, from)| match from.and_then(|id| earlier.ranks.get(id.index())) {
                    Some(old) => old
                        .iter()
                        .map(|&r| new_rank.get(r as usize).copied().unwrap_or(u32::MAX))
                        .collect(),
                    None => node.texts.iter().map(|_| 0).collect(),
                },
            )
            .collect();
        for (i, j, rank) in placed {
            if let Some(slot) = ranks
                .get_mut(i as usize)
                .and_then(|r| r.get_mut(j as usize))
            {
                *slot = rank;
            }
        }
        (texts, ranks)
    }

    /// The address text at `(node, place)` ([`NodeTable::texts`]).
    fn text_of(&self, (node, j): (u32, u32)) -> Option<&Arc<str>> {
        self.nodes.get(node as usize)?.texts.get(j as usize)
    }

    /// The address text of rank `rank` (ranks order every node's address texts as strings).
    pub(crate) fn text_at(&self, rank: u32) -> Option<&Arc<str>> {
        self.text_of(*self.texts.get(rank as usize)?)
    }

    /// The table of an inventory (routes not yet approved: see [`crate::routes`]).
    pub(crate) fn new(inventory: &Inventory) -> NodeTable {
        NodeTable::reusing(inventory, None)
    }

    /// [`NodeTable::new`], taking from `earlier` (a table of an earlier version of the
    /// tailnet) the strings of each node it holds under the same name: the name, the tags
    /// when they are the same, and the address texts when the addresses are (an engine event
    /// formats only the nodes it changed, and unchanged strings stay shared, so comparing
    /// them later is a pointer comparison).
    pub(crate) fn reusing(inventory: &Inventory, earlier: Option<&NodeTable>) -> NodeTable {
        let user_source = inventory.shared_users().clone();
        let (users, user_by_email, synced_groups) =
            match earlier.filter(|e| Arc::ptr_eq(&e.user_source, &user_source)) {
                Some(e) => (
                    e.users.clone(),
                    e.user_by_email.clone(),
                    e.synced_groups.clone(),
                ),
                None => {
                    let (users, by_email, groups) = user_lookups(inventory.users());
                    (Arc::new(users), Arc::new(by_email), Arc::new(groups))
                }
            };
        let owner_of = |email: &str| user_by_email.get(&*lowercase(email)).copied();
        let sorted = by_name(inventory.nodes(), earlier);
        // Each node's strings are formatted on every core (a fifth of a table's build).
        let info = |&(n, position, earlier_id): &Sorted<'_>| {
            let found = earlier
                .zip(earlier_id)
                .and_then(|(t, id)| Some((id, t.get(id)?)));
            let rank = inventory
                .registration_rank_at(position, &n.name)
                .unwrap_or(usize::MAX);
            let (info, same) = node_info(n, &owner_of, found.map(|(_, o)| o));
            (
                info,
                (same.then(|| found.map(|(id, _)| id)).flatten(), rank),
            )
        };
        // Each node, with the earlier node whose address texts it took.
        let (nodes, (texts_from, registration)): Built =
            crate::par::map_parts(&sorted, 4096, |part| {
                part.iter()
                    .map(|s| {
                        let (node, from) = info(s);
                        (Arc::new(node), from)
                    })
                    .collect()
            })
            .into_iter()
            .unzip();
        // The indexes by name, tag, owner and address on one core, the address texts' ranks
        // (from `earlier`) and the address lists on the other.
        let (identities, (ranked, by_v4, by_v6)) = crate::par::join_if(
            nodes.len() > 4096,
            || identity_indexes(&nodes, users.len()),
            || {
                let ranked =
                    earlier.map(|earlier| Self::ranked_texts_from(&nodes, earlier, &texts_from));
                let (by_v4, by_v6) = address_indexes(&nodes);
                (ranked, by_v4, by_v6)
            },
        );
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            UserLookups {
                source: user_source,
                users,
                by_email: user_by_email,
                synced_groups,
            },
            (by_v4, by_v6),
            (Vec::new(), Vec::new()),
            (registration, inventory.ranks_are_positions()),
        );
        match ranked {
            Some((texts, ranks)) => {
                table.texts = texts;
                table.ranks = ranks;
            }
            None => table.rank_texts(),
        }
        for svc in inventory.services() {
            let vips = svc.vips();
            let mut hosts: Vec<NodeId> = svc.hosts.iter().filter_map(|h| table.id(h)).collect();
            hosts.sort_unstable();
            hosts.dedup();
            for &id in &hosts {
                let approved = table
                    .get(id)
                    .is_some_and(|n| svc.approved_hosts.iter().any(|a| **a == *n.name));
                if let Some(node) = table.nodes.get_mut(id.index()).map(Arc::make_mut) {
                    node.advertised.extend(vips.iter().copied());
                    if approved {
                        node.approved.extend(vips.iter().copied());
                    }
                }
            }
            table
                .service_by_name
                .entry(svc.name.clone())
                .or_insert(table.services.len());
            for vip in &vips {
                table
                    .service_by_vip
                    .entry(*vip)
                    .or_insert(table.services.len());
            }
            table.services.push(ServiceInfo {
                name: svc.name.clone(),
                vips,
                tags: svc.tags.clone(),
            });
        }
        // Ids are positions in name order: everything that binary-searches node lists relies on it.
        debug_assert!(
            table
                .nodes
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.name < b.name)),
            "nodes must be sorted by name, names distinct"
        );
        table
    }

    /// [`NodeTable::reusing`] for a node event, by patching `earlier` instead of building
    /// from every node: `inventory` is `earlier`'s with the nodes named `before` (names in
    /// `earlier`) replaced by those named `after` (names in `inventory`), and everything else
    /// the same (the same list of users, no Services). The other nodes' records are shared
    /// with `earlier`, and the indexes are `earlier`'s with ids moved: O(nodes) integer and
    /// pointer copies plus O(changed x log nodes), not a record, string or hash per node (75
    /// ms of a join on `large`). `None` when the inventory is not such a change; the caller
    /// then builds. Registration ranks must be positions in both inventories: a kept node's
    /// is moved past the removed and added nodes.
    pub(crate) fn patched(
        inventory: &Inventory,
        earlier: &NodeTable,
        before: &[&str],
        after: &[&str],
    ) -> Option<NodeTable> {
        if !inventory.services().is_empty() || !inventory.ranks_are_positions() {
            return None;
        }
        let named = after
            .iter()
            .map(|name| Some((inventory.node(name)?, inventory.registration_rank(name)?)))
            .collect::<Option<_>>()?;
        let change = Change {
            users: inventory.shared_users(),
            nodes: inventory.nodes().len(),
            named,
        };
        NodeTable::patched_from(change, earlier, before)
    }

    /// [`NodeTable::patched`] from what it reads of the new inventory, which an engine knows
    /// before that inventory is made (so the two are patched side by side).
    pub(crate) fn patched_from(
        change: Change<'_>,
        earlier: &NodeTable,
        before: &[&str],
    ) -> Option<NodeTable> {
        if !Arc::ptr_eq(&earlier.user_source, change.users)
            || !earlier.services.is_empty()
            || !earlier.positional
        {
            return None;
        }
        let mut removed: Vec<NodeId> = before
            .iter()
            .map(|name| earlier.id(name))
            .collect::<Option<_>>()?;
        removed.sort_unstable();
        removed.dedup();
        let mut named_ranked = change.named;
        named_ranked.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
        named_ranked.dedup_by(|a, b| a.0.name == b.0.name);
        let (named, added_ranks): (Vec<&crate::inventory::Node>, Vec<usize>) =
            named_ranked.into_iter().unzip();
        if earlier.len() - removed.len() + named.len() != change.nodes {
            return None;
        }
        let owner_of = |email: &str| earlier.user(email);
        let added: Vec<Arc<NodeInfo>> = named
            .iter()
            .map(|n| {
                let old = earlier.id(&n.name).and_then(|id| earlier.get(id));
                Arc::new(node_info(n, &owner_of, old).0)
            })
            .collect();
        // Registration ranks are positions in the inventories: a kept node's moves past the
        // removed nodes before it and the added nodes before it now.
        let mut gone_ranks: Vec<usize> = removed
            .iter()
            .filter_map(|id| earlier.registration.get(id.index()).copied())
            .collect();
        gone_ranks.sort_unstable();
        // The same names at the same addresses (a retag, an owner, posture or route change):
        // every node keeps its id, so the earlier indexes are copied and only the changed
        // nodes' memberships moved, not every list translated (6-9 ms of a retag on `large`).
        let same_names = removed.len() == added.len()
            && removed
                .iter()
                .zip(&added)
                .zip(&added_ranks)
                .all(|((&r, new), &rank)| {
                    earlier.get(r).is_some_and(|old| {
                        old.name == new.name && (old.v4, old.v6) == (new.v4, new.v6)
                    }) && earlier.registration.get(r.index()) == Some(&rank)
                });
        if same_names {
            return earlier.patched_in_place(&removed, added);
        }
        let mut new_ranks = added_ranks.clone();
        new_ranks.sort_unstable();
        let moved_rank = |r: usize| {
            let mut k = r - gone_ranks.partition_point(|&x| x < r);
            for &a in &new_ranks {
                if a <= k {
                    k += 1;
                }
            }
            k
        };
        // The nodes in name order: `earlier`'s without the removed, the added merged in.
        let mut nodes: Vec<Arc<NodeInfo>> = Vec::with_capacity(change.nodes);
        let mut to_new = vec![u32::MAX; earlier.len()];
        let mut added_ids = Vec::with_capacity(added.len());
        let mut registration = Vec::with_capacity(change.nodes);
        // Where each added node goes among the earlier ones, by binary search: comparing
        // names while merging compared every earlier name with the next added one (100,000
        // string comparisons per event on `large`, 3% of a retag). A kept node of the same
        // name as an added one is a table the patch cannot make.
        let mut places = Vec::with_capacity(added.len());
        for node in &added {
            let at = earlier.nodes.partition_point(|o| o.name < node.name);
            let kept_same = earlier.nodes.get(at).is_some_and(|o| o.name == node.name)
                && removed.binary_search(&NodeId::new(at)).is_err();
            if kept_same {
                return None;
            }
            places.push(at);
        }
        let mut fresh = places
            .into_iter()
            .zip(added.into_iter().zip(added_ranks))
            .peekable();
        let mut gone = removed.iter().peekable();
        for (i, old) in earlier.nodes.iter().enumerate() {
            while let Some((_, (node, rank))) = fresh.next_if(|&(at, _)| at <= i) {
                added_ids.push(NodeId::new(nodes.len()));
                nodes.push(node);
                registration.push(rank);
            }
            if gone.next_if(|r| r.index() == i).is_some() {
                continue;
            }
            *to_new.get_mut(i)? = index(nodes.len());
            nodes.push(old.clone());
            registration.push(moved_rank(*earlier.registration.get(i)?));
        }
        for (_, (node, rank)) in fresh {
            added_ids.push(NodeId::new(nodes.len()));
            nodes.push(node);
            registration.push(rank);
        }
        let moved = |id: &NodeId| translated(&to_new, *id);
        // Each list made at its full size up front (with room for the added nodes): collected
        // from a filter, it grew by doubling, and moving these lists took 5.4 ms of a member
        // join's table on `large`, 1.1 ms so.
        let moved_list = |list: &[NodeId]| moved_by(list, added_ids.len(), |&id| moved(&id));
        // Ids only grow with position, so moved lists stay sorted; the added go in by search.
        let insert = |list: &mut Vec<NodeId>, id: NodeId| {
            let at = list.partition_point(|&x| x < id);
            list.insert(at, id);
        };
        let mut by_name = earlier.by_name.clone();
        by_name.retain(|id| match moved(id) {
            Some(j) => {
                *id = j;
                true
            }
            None => false,
        });
        let mut tagged = moved_list(&earlier.tagged);
        let mut untagged = moved_list(&earlier.untagged);
        let mut added_devices: Vec<(usize, NodeId)> = Vec::new();
        let mut by_tag: crate::hash::Map<Arc<str>, Vec<NodeId>> = earlier
            .by_tag
            .iter()
            .map(|(tag, list)| (tag.clone(), moved_list(list)))
            .filter(|(_, list)| !list.is_empty())
            .collect();
        let room = added_ids.len();
        let mut by_v4: ByAddress<u32> =
            moved_by(&earlier.by_v4, room, |&(a, id)| Some((a, moved(&id)?)));
        let mut by_v6: ByAddress<u128> =
            moved_by(&earlier.by_v6, room, |&(a, id)| Some((a, moved(&id)?)));
        for &id in &added_ids {
            let node = nodes.get(id.index())?;
            let rehash = |id: &NodeId| {
                nodes
                    .get(id.index())
                    .map_or(0, |n| crate::hash::name(&n.name))
            };
            by_name.insert_unique(crate::hash::name(&node.name), id, rehash);
            if node.is_tagged() {
                insert(&mut tagged, id);
                for tag in &node.tags {
                    let list = by_tag.entry(tag.clone()).or_default();
                    if list.binary_search(&id).is_err() {
                        insert(list, id);
                    }
                }
            } else {
                insert(&mut untagged, id);
                if let Some(owner) = node.owner {
                    added_devices.push((owner.index(), id));
                }
            }
            if let Some(v4) = node.v4 {
                let key = (u32::from(v4), id);
                by_v4.insert(by_v4.partition_point(|&x| x < key), key);
            }
            if let Some(v6) = node.v6 {
                let key = (u128::from(v6), id);
                by_v6.insert(by_v6.partition_point(|&x| x < key), key);
            }
        }
        let devices = earlier.devices.moved(|_, id| moved(&id), &added_devices);
        // Every kept node keeps its texts (the added were formatted or taken above).
        let mut texts_from = vec![None; nodes.len()];
        for (i, &j) in to_new.iter().enumerate() {
            if let Some(slot) = texts_from.get_mut(j as usize) {
                *slot = Some(NodeId::new(i));
            }
        }
        let texts = Self::ranked_texts_from(&nodes, earlier, &texts_from);
        let identities = Identities {
            by_name,
            tagged,
            untagged,
            devices,
            by_tag,
        };
        let users = earlier.user_lookups();
        // The nodes with routes: the kept ones moved, the added ones with routes put in.
        let with_routes = earlier.with_routes.as_ref().map(|list| {
            let mut list = moved_list(list);
            for &id in &added_ids {
                if nodes.get(id.index()).is_some_and(|n| n.has_routes()) {
                    insert(&mut list, id);
                }
            }
            list
        });
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            users,
            (by_v4, by_v6),
            texts,
            (registration, true),
        );
        table.with_routes = with_routes;
        // The translation by name: the kept nodes' moves, and each removed node to the node
        // that has its name now, if one does (a retagged node is removed and added).
        for &r in &removed {
            let name = &earlier.nodes.get(r.index())?.name;
            if let Some(j) = table.id(name) {
                *to_new.get_mut(r.index())? = index(j.index());
            }
        }
        table.translated = Some((earlier.serial, Arc::from(to_new)));
        Some(table)
    }

    /// This table's user lookups, shared with a table patched from it.
    fn user_lookups(&self) -> UserLookups {
        UserLookups {
            source: self.user_source.clone(),
            users: self.users.clone(),
            by_email: self.user_by_email.clone(),
            synced_groups: self.synced_groups.clone(),
        }
    }

    /// [`NodeTable::patched`] when the nodes `ids` (ascending) are replaced by `now` (in the
    /// same order) of the same names, addresses and registration ranks: every id is kept, the
    /// indexes are copied, and the replaced nodes' tag, owner and route memberships moved.
    fn patched_in_place(&self, ids: &[NodeId], now: Vec<Arc<NodeInfo>>) -> Option<NodeTable> {
        let mut nodes = self.nodes.clone();
        let mut tagged = self.tagged.clone();
        let mut untagged = self.untagged.clone();
        // Devices leaving and joining their owners' lists, as (owner, device).
        let mut taken: Vec<(usize, NodeId)> = Vec::new();
        let mut put_in: Vec<(usize, NodeId)> = Vec::new();
        let mut by_tag = self.by_tag.clone();
        let mut with_routes = self.with_routes.clone();
        let take = |list: &mut Vec<NodeId>, id: NodeId| {
            if let Ok(at) = list.binary_search(&id) {
                list.remove(at);
            }
        };
        let put = |list: &mut Vec<NodeId>, id: NodeId| {
            if let Err(at) = list.binary_search(&id) {
                list.insert(at, id);
            }
        };
        for (&id, node) in ids.iter().zip(now) {
            let old = self.get(id)?;
            // Out of the earlier node's lists...
            if old.is_tagged() {
                take(&mut tagged, id);
                for tag in &old.tags {
                    if let Some(list) = by_tag.get_mut(tag) {
                        take(list, id);
                    }
                }
            } else {
                take(&mut untagged, id);
                if let Some(owner) = old.owner {
                    taken.push((owner.index(), id));
                }
            }
            if let Some(list) = with_routes.as_mut() {
                take(list, id);
            }
            // ...and into the new one's.
            if node.is_tagged() {
                put(&mut tagged, id);
                for tag in &node.tags {
                    put(by_tag.entry(tag.clone()).or_default(), id);
                }
            } else {
                put(&mut untagged, id);
                if let Some(owner) = node.owner {
                    put_in.push((owner.index(), id));
                }
            }
            if let Some(list) = with_routes.as_mut().filter(|_| node.has_routes()) {
                put(list, id);
            }
            *nodes.get_mut(id.index())? = node;
        }
        by_tag.retain(|_, list| !list.is_empty());
        // Only the replaced nodes' owners' lists move (none when they were and are tagged).
        let devices = if taken.is_empty() && put_in.is_empty() {
            self.devices.clone()
        } else {
            taken.sort_unstable();
            self.devices.moved(
                |u, id| taken.binary_search(&(u, id)).is_err().then_some(id),
                &put_in,
            )
        };
        let identities = Identities {
            by_name: self.by_name.clone(),
            tagged,
            untagged,
            devices,
            by_tag,
        };
        let users = self.user_lookups();
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            users,
            (self.by_v4.clone(), self.by_v6.clone()),
            (self.texts.clone(), self.ranks.clone()),
            (self.registration.clone(), true),
        );
        table.with_routes = with_routes;
        let same: Vec<u32> = (0..self.len()).map(index).collect();
        table.translated = Some((self.serial, Arc::from(same)));
        Some(table)
    }

    /// A table of `nodes` with these indexes, address texts with their ranks, and
    /// registration ranks (with whether they are positions); what the compile settles
    /// (routes, IP sets, groups' users) and the Services are left empty.
    fn assembled(
        nodes: Vec<Arc<NodeInfo>>,
        identities: Identities,
        users: UserLookups,
        (by_v4, by_v6): (ByAddress<u32>, ByAddress<u128>),
        (texts, ranks): (Vec<(u32, u32)>, Vec<Pair<u32>>),
        (registration, positional): (Vec<usize>, bool),
    ) -> NodeTable {
        let Identities {
            by_name,
            tagged,
            untagged,
            devices,
            by_tag,
        } = identities;
        NodeTable {
            by_name,
            devices,
            user_source: users.source,
            users: users.users,
            user_by_email: users.by_email,
            synced_groups: users.synced_groups,
            services: Vec::new(),
            service_by_name: HashMap::new(),
            service_by_vip: HashMap::new(),
            by_tag,
            tagged,
            untagged,
            by_v4,
            by_v6,
            routers: Vec::new(),
            exits: Vec::new(),
            with_routes: None,
            ipsets: IpSets::default(),
            group_users: Arc::default(),
            route_index: std::sync::OnceLock::new(),
            serial: next_serial(),
            translated: None,
            texts,
            ranks,
            registration,
            positional,
            nodes,
        }
    }

    /// True when `other` (a table of the same inventory) has the same records (but for routes
    /// served, online flags and registration ranks, which the compile settles or only
    /// orders by) and the same indexes: what [`NodeTable::patched`] must give.
    #[cfg(debug_assertions)]
    pub(crate) fn agrees_with(&self, other: &NodeTable) -> bool {
        let records = self.nodes.len() == other.nodes.len()
            && self.nodes.iter().zip(&other.nodes).all(|(a, b)| {
                a.name == b.name
                    && a.owner == b.owner
                    && a.tags == b.tags
                    && (a.v4, a.v6) == (b.v4, b.v6)
                    && a.texts == b.texts
                    && a.hosts == b.hosts
                    && a.advertised == b.advertised
                    && a.approved == b.approved
                    && a.posture == b.posture
            });
        let by_name = self.nodes.iter().enumerate().all(|(i, n)| {
            self.id(&n.name) == Some(NodeId::new(i)) && other.id(&n.name) == Some(NodeId::new(i))
        }) && self.by_name.len() == other.by_name.len();
        let tags = |t: &NodeTable| {
            let mut v: Vec<(String, Vec<NodeId>)> = t
                .by_tag
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(k, l)| (k.to_string(), l.clone()))
                .collect();
            v.sort();
            v
        };
        records
            && by_name
            && self.devices == other.devices
            && self.tagged == other.tagged
            && self.untagged == other.untagged
            && tags(self) == tags(other)
            && self.by_v4 == other.by_v4
            && self.by_v6 == other.by_v6
            && self.texts == other.texts
            && self.ranks == other.ranks
            && self.registration == other.registration
    }

    /// The node with this id.
    pub(crate) fn get(&self, id: NodeId) -> Option<&NodeInfo> {
        self.nodes.get(id.index()).map(|n| &**n)
    }

    /// Node `id`'s position in the registration order (`usize::MAX` when not listed).
    pub(crate) fn registration_rank(&self, id: NodeId) -> usize {
        self.registration
            .get(id.index())
            .copied()
            .unwrap_or(usize::MAX)
    }

    /// The ranks of node `id`'s address texts among every node's ([`NodeTable::texts`]).
    pub(crate) fn text_ranks(&self, id: NodeId) -> &[u32] {
        self.ranks.get(id.index()).map_or(&[], |r| &**r)
    }

    /// The id of the node called `name`.
    pub(crate) fn id(&self, name: &str) -> Option<NodeId> {
        let nodes = &self.nodes;
        self.by_name
            .find(crate::hash::name(name), |id| {
                nodes.get(id.index()).is_some_and(|n| *n.name == *name)
            })
            .copied()
    }

    /// For each node, its id in `earlier` (a table of the tailnet before a change to the nodes
    /// `before`, ids in `earlier`, which are `after` here; both sorted), or `None` for the
    /// nodes of `after`. The other nodes pair up by name ([`translate_ids`]); `None` when one
    /// does not (a node not named in the change that is missing, or named on one side only).
    /// O(nodes x log changed).
    pub(crate) fn kept_from(
        &self,
        earlier: &NodeTable,
        before: &[NodeId],
        after: &[NodeId],
    ) -> Option<Vec<Option<NodeId>>> {
        let changed = |list: &[NodeId], id: usize| list.binary_search(&NodeId::new(id)).is_ok();
        let mut kept = vec![None; self.nodes.len()];
        for (i, &j) in translate_ids(earlier, self).iter().enumerate() {
            if changed(before, i) {
                continue;
            }
            if j == u32::MAX || changed(after, j as usize) {
                return None;
            }
            *kept.get_mut(j as usize)? = Some(NodeId::new(i));
        }
        // Every node not named after the change was there before it.
        let paired = kept
            .iter()
            .enumerate()
            .all(|(j, k)| k.is_some() || changed(after, j));
        paired.then_some(kept)
    }

    /// Take `earlier`'s groups' users, when it was compiled from the same policy (the
    /// caller says) and built from the same list of users.
    pub(crate) fn share_group_users(&mut self, earlier: &NodeTable) {
        if self.same_users(earlier) {
            self.group_users = earlier.group_users.clone();
        }
    }

    /// True when `other` was built from the same list of users (not an equal one): a
    /// [`UserId`] names the same user in both.
    pub(crate) fn same_users(&self, other: &NodeTable) -> bool {
        Arc::ptr_eq(&self.user_source, &other.user_source)
    }

    /// The owners of the nodes `ids` (the untagged ones), in their order.
    pub(crate) fn owners_of<'a>(&'a self, ids: &'a [NodeId]) -> impl Iterator<Item = UserId> + 'a {
        ids.iter().filter_map(|&id| self.get(id)?.owner)
    }

    /// The ids of the nodes `names` (those the table has), sorted.
    pub(crate) fn ids_of(&self, names: &[&str]) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = names.iter().filter_map(|n| self.id(n)).collect();
        ids.sort_unstable();
        ids
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The user whose login is `email` (case-insensitive).
    pub(crate) fn user(&self, email: &str) -> Option<UserId> {
        self.user_by_email.get(&*lowercase(email)).copied()
    }

    /// The members of a group synced from the identity provider (none when the inventory
    /// lists nobody in it).
    pub(crate) fn synced_group(&self, group: &str) -> &[UserId] {
        self.synced_groups.get(group).map_or(&[], Vec::as_slice)
    }

    /// The Tailscale Service called `name`.
    pub(crate) fn service(&self, name: &str) -> Option<&ServiceInfo> {
        self.services.get(*self.service_by_name.get(name)?)
    }

    /// The services whose addresses `node` serves, in inventory order: one lookup per
    /// served route, not a pass over every service per node.
    pub(crate) fn services_served_by(&self, node: &NodeInfo) -> Vec<&ServiceInfo> {
        if self.service_by_vip.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<usize> = node
            .served
            .iter()
            .filter_map(|route| self.service_by_vip.get(route).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        found.iter().filter_map(|&i| self.services.get(i)).collect()
    }

    /// Nodes carrying `tag`, sorted.
    pub(crate) fn with_tag(&self, tag: &str) -> &[NodeId] {
        self.by_tag.get(tag).map_or(&[], Vec::as_slice)
    }

    /// The node with address `ip`.
    pub(crate) fn by_address(&self, ip: IpAddr) -> Option<NodeId> {
        match ip {
            IpAddr::V4(v4) => {
                let key = u32::from(v4);
                let i = self.by_v4.partition_point(|&(a, _)| a < key);
                self.by_v4
                    .get(i)
                    .filter(|&&(a, _)| a == key)
                    .map(|&(_, id)| id)
            }
            IpAddr::V6(v6) => {
                let key = u128::from(v6);
                let i = self.by_v6.partition_point(|&(a, _)| a < key);
                self.by_v6
                    .get(i)
                    .filter(|&&(a, _)| a == key)
                    .map(|&(_, id)| id)
            }
        }
    }

    /// Nodes with an address in `set`, sorted. When every node has an address of one family
    /// and one range of the set holds all of them (`*`, as a source or a destination: the
    /// tailnet's ranges), every node, without a walk: the walk and the merge of both
    /// families' lists (200,000 ids on `large`) took 2 ms of every engine event, twice.
    pub(crate) fn addressed_in(&self, set: &AddrSet) -> Vec<NodeId> {
        let n = self.len();
        if holds_all(set.v4_ranges(), &self.by_v4, n) || holds_all(set.v6_ranges(), &self.by_v6, n)
        {
            return (0..n).map(NodeId::new).collect();
        }
        let mut out = Vec::new();
        for &(first, last) in set.v4_ranges() {
            let start = self.by_v4.partition_point(|&(ip, _)| ip < first);
            let rest = self.by_v4.get(start..).unwrap_or_default();
            out.extend(
                rest.iter()
                    .take_while(|&&(ip, _)| ip <= last)
                    .map(|&(_, id)| id),
            );
        }
        for &(first, last) in set.v6_ranges() {
            let start = self.by_v6.partition_point(|&(ip, _)| ip < first);
            let rest = self.by_v6.get(start..).unwrap_or_default();
            out.extend(
                rest.iter()
                    .take_while(|&&(ip, _)| ip <= last)
                    .map(|&(_, id)| id),
            );
        }
        // Through a bit map when many (`*` as a source: every node twice, by each address):
        // a sort of 200,000 ids on `large`, on every engine event, took milliseconds.
        crate::bits::sort_unique(&mut out, self.len());
        out
    }

    /// True when `other` (a table of the same inventory) has the same nodes with the same
    /// routes: approvals (which `autoApprovers` decide), served and primary-eligible routes,
    /// exit status and online state. What the policy can change in a node table besides IP
    /// sets, which reach rules only through their resolved targets.
    pub(crate) fn same_routes(&self, other: &NodeTable) -> bool {
        self.nodes.len() == other.nodes.len()
            && self.nodes.iter().zip(&other.nodes).all(|(a, b)| {
                a.name == b.name
                    && a.approved == b.approved
                    && a.served == b.served
                    && a.subnet_routes == b.subnet_routes
                    && (a.exit, a.exit_v4, a.exit_v6, a.offline)
                        == (b.exit, b.exit_v4, b.exit_v6, b.offline)
            })
    }

    /// Nodes a set of addresses stands for as a source: those with an address in it and the
    /// routers whose subnet routes overlap it (traffic from behind them comes through them).
    /// The routers are found through the routes the set overlaps ([`RouteIndex`]), not by
    /// testing every router: O(the set's ranges x prefix lengths + routers found), or
    /// O(routes x log ranges) for a set of very many ranges.
    pub(crate) fn source_nodes(&self, set: &AddrSet) -> Vec<NodeId> {
        let mut out = self.addressed_in(set);
        let addressed = out.len();
        // Every node already (`*`): the routers add none.
        if addressed == self.len() {
            return out;
        }
        let index = self.route_index.get_or_init(|| RouteIndex::new(self));
        for r in index.finder.of_set(set) {
            out.extend(
                index
                    .routes
                    .routes
                    .get(r as usize)
                    .into_iter()
                    .flat_map(|e| &e.servers),
            );
        }
        // The addressed nodes come sorted: sorted again only when routers were added.
        if out.len() > addressed {
            crate::bits::sort_unique(&mut out, self.len());
        }
        out
    }

    /// Nodes a set of addresses reaches as a destination: [`NodeTable::source_nodes`] plus the
    /// exit nodes of the families of `public` (its part inside `autogroup:internet`).
    pub(crate) fn destination_nodes(&self, set: &AddrSet, public: &AddrSet) -> Vec<NodeId> {
        let mut out = self.source_nodes(set);
        if !public.is_empty() {
            out.extend(
                self.exits
                    .iter()
                    .copied()
                    .filter(|&id| self.get(id).is_some_and(|n| n.exits_for(public))),
            );
            out.sort_unstable();
            out.dedup();
        }
        out
    }
}

/// A `usize` index as a `u32` id. Inventories hold far fewer than 2^32 nodes or users; should
/// one not, ids saturate and lookups simply fail rather than alias.
pub(crate) fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The users of groups by group name, filled as groups are resolved; shared by the threads
/// of a compile and by the compiles of one policy on the same users.
pub(crate) type GroupUsers = std::sync::Mutex<crate::hash::Map<String, Arc<[UserId]>>>;

/// True when the sorted list `list` holds one of `ids` (a changed node in a target or a
/// rule's sources, when a compile reuses what an earlier one built).
pub(crate) fn holds_any(list: &[NodeId], ids: &[NodeId]) -> bool {
    ids.iter().any(|id| list.binary_search(id).is_ok())
}

/// The record of inventory node `n` (registration `rank`), taking the strings of `old` (its
/// record in an earlier table, by name) that are unchanged: the name, the tags when they are
/// the same, the address texts when the addresses are (the flag says so). Routes not yet
/// served ([`crate::routes::apply`]).
fn node_info(
    n: &crate::inventory::Node,
    owner_of: &dyn Fn(&str) -> Option<UserId>,
    old: Option<&NodeInfo>,
) -> (NodeInfo, bool) {
    let same_addresses = old.filter(|o| o.v4 == n.ipv4 && o.v6 == n.ipv6);
    let (texts, hosts) = match same_addresses {
        Some(o) => (o.texts.clone(), o.hosts.clone()),
        None => {
            let texts: Pair<Arc<str>> = n
                .addresses()
                .iter()
                .map(|a| Arc::from(a.to_string()))
                .collect();
            // A host prefix is the address text with its full length.
            let hosts = n
                .addresses()
                .iter()
                .zip(&texts)
                .map(|(a, t)| Arc::from(format!("{t}/{}", if a.is_ipv4() { 32 } else { 128 })))
                .collect();
            (texts, hosts)
        }
    };
    let tags = match old.filter(|o| {
        o.tags
            .iter()
            .map(|t| &**t)
            .eq(n.tags.iter().map(String::as_str))
    }) {
        Some(o) => o.tags.clone(),
        None => node_tags(&n.tags),
    };
    let info = NodeInfo {
        name: old.map_or_else(|| Arc::from(n.name.as_str()), |o| o.name.clone()),
        owner: n
            .user
            .as_deref()
            .filter(|_| n.tags.is_empty())
            .and_then(owner_of),
        tags,
        v4: n.ipv4,
        v6: n.ipv6,
        texts,
        hosts,
        advertised: n.routable_ips.clone(),
        approved: n.approved_routes.clone(),
        offline: false,
        served: Vec::new(),
        subnet_routes: Vec::new(),
        exit: false,
        exit_v4: false,
        exit_v6: false,
        posture: n.posture.clone(),
    };
    (info, same_addresses.is_some())
}

/// A table's lookups of its users, shared by the tables built from the same list of users.
struct UserLookups {
    /// The inventory's users they were made from.
    source: Arc<[crate::inventory::User]>,
    users: Arc<Vec<UserInfo>>,
    by_email: Arc<crate::hash::Map<String, UserId>>,
    synced_groups: Arc<SyncedGroups>,
}

/// A table's indexes of its nodes' identities (all lists sorted: nodes come in id order).
struct Identities {
    by_name: hashbrown::HashTable<NodeId>,
    tagged: Vec<NodeId>,
    untagged: Vec<NodeId>,
    /// Each user's untagged devices.
    devices: crate::devices::Devices,
    by_tag: crate::hash::Map<Arc<str>, Vec<NodeId>>,
}

/// The indexes of `nodes`' names, tags and owners (`users` of them).
fn identity_indexes(nodes: &[Arc<NodeInfo>], users: usize) -> Identities {
    let mut devices: Vec<Vec<NodeId>> = vec![Vec::new(); users];
    let mut ids = Identities {
        by_name: hashbrown::HashTable::with_capacity(nodes.len()),
        tagged: Vec::new(),
        untagged: Vec::new(),
        devices: crate::devices::Devices::default(),
        by_tag: crate::hash::Map::default(),
    };
    let rehash = |id: &NodeId| {
        nodes
            .get(id.index())
            .map_or(0, |n| crate::hash::name(&n.name))
    };
    for (i, node) in nodes.iter().enumerate() {
        let id = NodeId::new(i);
        ids.by_name
            .insert_unique(crate::hash::name(&node.name), id, rehash);
        if node.is_tagged() {
            ids.tagged.push(id);
            for tag in &node.tags {
                ids.by_tag.entry(tag.clone()).or_default().push(id);
            }
        } else {
            ids.untagged.push(id);
            if let Some(list) = node.owner.and_then(|u| devices.get_mut(u.index())) {
                list.push(id);
            }
        }
    }
    for list in ids.by_tag.values_mut() {
        list.dedup();
    }
    ids.devices = crate::devices::Devices::from_lists(&devices);
    ids
}

/// Nodes by address (an IPv4 or IPv6 address as an integer), sorted by address.
type ByAddress<A> = Vec<(A, NodeId)>;

/// `list`'s entries through `moved` (those it keeps), in a vector made at its full size with
/// `room` to spare ([`NodeTable::patched_from`]).
fn moved_by<T, U>(list: &[T], room: usize, moved: impl Fn(&T) -> Option<U>) -> Vec<U> {
    let mut out = Vec::with_capacity(list.len() + room);
    out.extend(list.iter().filter_map(moved));
    out
}

/// True when `by_address` (sorted by address, one entry per node) lists all `n` nodes and
/// one of `ranges` holds every address in it.
fn holds_all<T: Copy + Ord>(ranges: &[(T, T)], by_address: &[(T, NodeId)], n: usize) -> bool {
    match (by_address.first(), by_address.last()) {
        (Some(&(first, _)), Some(&(last, _))) if by_address.len() == n => {
            ranges.iter().any(|&(from, to)| from <= first && last <= to)
        }
        _ => false,
    }
}

/// Nodes by IPv4 and by IPv6 address, sorted by address.
fn address_indexes(nodes: &[Arc<NodeInfo>]) -> (ByAddress<u32>, ByAddress<u128>) {
    let mut by_v4 = Vec::with_capacity(nodes.len());
    let mut by_v6 = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let id = NodeId::new(i);
        if let Some(v4) = node.v4 {
            by_v4.push((u32::from(v4), id));
        }
        if let Some(v6) = node.v6 {
            by_v6.push((u128::from(v6), id));
        }
    }
    by_v4.sort_unstable();
    by_v6.sort_unstable();
    (by_v4, by_v6)
}

/// The nodes in name order, each with its id in `earlier` (a table of the tailnet before a
/// change) when it has one under that name. With `earlier`, the nodes it holds come in its
/// order (their ids sorted, integers) and only the new ones are sorted by name and merged in
/// by binary search: O(n + k log n) name comparisons for k new nodes, not a sort of every
/// name (which shared prefixes make long comparisons). Each node comes with its position in
/// `nodes`.
fn by_name<'n>(
    nodes: &'n [Arc<crate::inventory::Node>],
    earlier: Option<&NodeTable>,
) -> Vec<Sorted<'n>> {
    let positions: Vec<usize> = (0..nodes.len()).collect();
    let Some(earlier) = earlier else {
        let mut sorted: Vec<Sorted<'n>> = nodes
            .iter()
            .zip(positions)
            .map(|(n, p)| (&**n, p, None))
            .collect();
        sorted.sort_by(|(a, _, _), (b, _, _)| a.name.cmp(&b.name));
        return sorted;
    };
    // Each node's earlier id, looked up on every core.
    let found: Vec<Sorted<'n>> = crate::par::map_parts(&positions, 4096, |part| {
        part.iter()
            .filter_map(|&p| {
                let n = nodes.get(p)?;
                Some((&**n, p, earlier.id(&n.name)))
            })
            .collect()
    });
    // The nodes found, in their earlier order: each put at its earlier id (ids are
    // positions), not sorted (names are distinct, so no two nodes share an id).
    let mut slots: Vec<Option<Sorted<'n>>> = vec![None; earlier.len()];
    let mut fresh: Vec<Sorted<'n>> = Vec::new();
    for node in found {
        match node.2.and_then(|id| slots.get_mut(id.index())) {
            Some(slot @ None) => *slot = Some(node),
            _ => fresh.push(node),
        }
    }
    let kept: Vec<Sorted<'n>> = slots.into_iter().flatten().collect();
    if fresh.is_empty() {
        return kept;
    }
    fresh.sort_by(|(a, _, _), (b, _, _)| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(nodes.len());
    let mut rest = kept.as_slice();
    for n in fresh {
        let at = rest.partition_point(|(k, _, _)| k.name < n.0.name);
        let (before, after) = rest.split_at(at);
        out.extend_from_slice(before);
        out.push(n);
        rest = after;
    }
    out.extend_from_slice(rest);
    out
}

/// A table's records, with each node's earlier node whose address texts it took and its
/// registration rank.
type Built = (Vec<Arc<NodeInfo>>, (Vec<Option<NodeId>>, Vec<usize>));

/// A node of the inventory, its position there, and its id in an earlier table.
type Sorted<'n> = (&'n crate::inventory::Node, usize, Option<NodeId>);

/// A node's tags as the policy names them ([`aclc_policy::model::canonical_tag`], as the policy's
/// own are read): an inventory's `tag:Server` is the policy's `tag:server`. Two spellings of one tag are
/// one tag (the first kept).
fn node_tags(tags: &[String]) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = Vec::with_capacity(tags.len());
    // A few tags are compared pairwise, a long list (hostile) through a set.
    let mut seen: Option<HashSet<Arc<str>>> = (tags.len() > 16).then(HashSet::new);
    for tag in tags {
        let tag: Arc<str> = Arc::from(&*aclc_policy::model::canonical_tag(tag));
        let new = match &mut seen {
            Some(seen) => seen.insert(tag.clone()),
            None => !out.contains(&tag),
        };
        if new {
            out.push(tag);
        }
    }
    out
}

/// `text` lowercased, as logins are compared; most are lowercase already, and are not copied.
fn lowercase(text: &str) -> std::borrow::Cow<'_, str> {
    let unchanged = match text.is_ascii() {
        true => !text.bytes().any(|b| b.is_ascii_uppercase()),
        false => text.chars().all(|c| {
            let mut lower = c.to_lowercase();
            lower.next() == Some(c) && lower.next().is_none()
        }),
    };
    match unchanged {
        true => std::borrow::Cow::Borrowed(text),
        false => std::borrow::Cow::Owned(text.to_lowercase()),
    }
}

/// Node ids of table `old` translated to those of `new` by name, `u32::MAX` for a node `new`
/// does not have: one merge walk, as both tables are sorted by name.
pub(crate) fn translate_ids(old: &NodeTable, new: &NodeTable) -> Vec<u32> {
    match &new.translated {
        Some((serial, to_new)) if *serial == old.serial => {
            debug_assert_eq!(
                **to_new,
                *walk_names(old, new),
                "a patch's translation differs from the walk by name"
            );
            to_new.to_vec()
        }
        _ => walk_names(old, new),
    }
}

/// Node `id` through a translation of node ids (as [`translate_ids`] gives them, or their
/// [`inverse_ids`]): `None` for a node the other table does not have.
pub(crate) fn translated(table: &[u32], id: NodeId) -> Option<NodeId> {
    let j = *table.get(id.index())?;
    (j != u32::MAX).then(|| NodeId::new(j as usize))
}

/// The inverse of a translation of node ids ([`translate_ids`]) into a table of `len` nodes:
/// each node's id in the earlier table, `u32::MAX` for a node it did not have.
pub(crate) fn inverse_ids(to_new: &[u32], len: usize) -> Vec<u32> {
    let mut to_old = vec![u32::MAX; len];
    for (i, &j) in to_new.iter().enumerate() {
        if let Some(slot) = to_old.get_mut(j as usize) {
            *slot = index(i);
        }
    }
    to_old
}

/// [`translate_ids`] by a merge walk over both tables' names.
fn walk_names(old: &NodeTable, new: &NodeTable) -> Vec<u32> {
    let mut to_new = vec![u32::MAX; old.nodes.len()];
    let mut j = 0;
    for (i, a) in old.nodes.iter().enumerate() {
        // Names the engine's tables share are the same memory: no string compared.
        let same = |b: &NodeInfo| Arc::ptr_eq(&b.name, &a.name);
        while new
            .nodes
            .get(j)
            .is_some_and(|b| !same(b) && b.name < a.name)
        {
            j += 1;
        }
        if new
            .nodes
            .get(j)
            .is_some_and(|b| same(b) || b.name == a.name)
        {
            if let Some(slot) = to_new.get_mut(i) {
                *slot = index(j);
            }
            // Past the match: the next old node is compared with the next new one, so a
            // kept node's name is one pointer comparison, not a string comparison with its
            // predecessor's.
            j += 1;
        }
    }
    to_new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Node, Tailnet};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn node_tags_are_lowercase_and_listed_once() {
        let tags = |list: &[&str]| -> Vec<String> {
            node_tags(&list.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                .iter()
                .map(|t| t.to_string())
                .collect()
        };
        assert_eq!(
            tags(&["tag:Server", "tag:db", "tag:server"]),
            ["tag:server", "tag:db"]
        );
        let many: Vec<String> = (0..40).map(|i| format!("tag:T{}", i % 20)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("tag:t{i}")).collect();
        assert_eq!(tags(&many), expected);
    }

    #[test]
    fn a_pair_holds_the_first_two_values() {
        for n in 0..4u32 {
            let mut pair: Pair<u32> = (10..10 + n).collect();
            let expected: Vec<u32> = (10..10 + n.min(2)).collect();
            assert_eq!(&pair[..], &expected[..], "{n} values");
            pair.iter_mut().for_each(|v| *v += 1);
            let bumped: Vec<u32> = expected.iter().map(|v| v + 1).collect();
            assert_eq!((&pair).into_iter().copied().collect::<Vec<_>>(), bumped);
        }
    }

    fn table_of(addresses: &[(Option<Ipv4Addr>, Option<Ipv6Addr>)]) -> Option<NodeTable> {
        let names: Vec<usize> = (0..addresses.len()).collect();
        Some(NodeTable::new(&inventory_of(&names, addresses)?))
    }

    /// Nodes `n<name>` with these addresses, tagged.
    fn inventory_of(
        names: &[usize],
        addresses: &[(Option<Ipv4Addr>, Option<Ipv6Addr>)],
    ) -> Option<Inventory> {
        let nodes: Vec<Node> = names
            .iter()
            .zip(addresses)
            .map(|(i, &(ipv4, ipv6))| Node {
                name: format!("n{i}"),
                hostname: None,
                user: None,
                tags: vec!["tag:t".to_string()],
                ipv4,
                ipv6,
                routable_ips: Vec::new(),
                approved_routes: Vec::new(),
                posture: BTreeMap::new(),
            })
            .collect();
        let order = nodes.iter().map(|n| n.name.clone()).collect();
        Inventory::new(Vec::new(), nodes, order, Tailnet::default()).ok()
    }

    proptest! {
        /// Differential: the copy-free lowercasing equals `str::to_lowercase`.
        #[test]
        fn lowercase_equals_to_lowercase(text in "[a-zA-Z@._ǅİΣσß0-9-]{0,12}|\\PC{0,8}") {
            let (mine, std) = (lowercase(&text).into_owned(), text.to_lowercase());
            prop_assert_eq!(mine, std);
        }
    }

    proptest! {
        /// Differential: the merge walk translates ids exactly as a lookup by name does,
        /// whatever nodes the two tables share (and whether or not they share records).
        #[test]
        fn ids_translate_as_names_do(
            old in proptest::collection::btree_set(0usize..40, 0..30),
            new in proptest::collection::btree_set(0usize..40, 0..30),
        ) {
            let of = |names: &std::collections::BTreeSet<usize>| {
                let names: Vec<usize> = names.iter().copied().collect();
                let addresses: Vec<_> = names
                    .iter()
                    .map(|&i| (Some(Ipv4Addr::new(100, 64, 0, i as u8)), None))
                    .collect();
                NodeTable::new(&inventory_of(&names, &addresses).expect("an inventory"))
            };
            let (a, b) = (of(&old), of(&new));
            let expected: Vec<u32> = a
                .nodes
                .iter()
                .map(|n| b.id(&n.name).map_or(u32::MAX, |id| index(id.index())))
                .collect();
            prop_assert_eq!(translate_ids(&a, &b), expected);
        }
    }

    proptest! {
        /// Differential: a patched table's translation from the table it was patched from
        /// (made from the patch's moves) equals the walk by name, whatever nodes were removed,
        /// added, or changed in place (a retag: removed and added under one name).
        #[test]
        fn a_patch_translates_as_names_do(
            old in proptest::collection::btree_set(0usize..40, 1..30),
            gone in proptest::collection::btree_set(0usize..40, 0..6),
            came in proptest::collection::btree_set(0usize..40, 0..6),
            retagged in proptest::collection::btree_set(0usize..40, 0..4),
        ) {
            use crate::inventory::Registration;
            let users: Arc<[crate::inventory::User]> = Arc::from(Vec::new());
            let node = |i: usize, tag: &str| Arc::new(Node {
                name: format!("n{i}"),
                hostname: None,
                user: None,
                tags: vec![tag.to_string()],
                ipv4: Some(Ipv4Addr::new(100, 64, 0, i as u8)),
                ipv6: None,
                routable_ips: Vec::new(),
                approved_routes: Vec::new(),
                posture: BTreeMap::new(),
            });
            let inventory = |nodes: Vec<Arc<Node>>| {
                crate::inventory::Inventory::sharing_users(
                    users.clone(),
                    None,
                    nodes,
                    Registration::NodeOrder,
                    Tailnet::default(),
                )
                .expect("an inventory")
            };
            let before = inventory(old.iter().map(|&i| node(i, "tag:a")).collect());
            let mut now: Vec<Arc<Node>> = Vec::new();
            let (mut removed, mut added) = (Vec::new(), Vec::new());
            for &i in &old {
                if gone.contains(&i) {
                    removed.push(format!("n{i}"));
                } else if retagged.contains(&i) {
                    removed.push(format!("n{i}"));
                    added.push(format!("n{i}"));
                    now.push(node(i, "tag:b"));
                } else {
                    now.push(node(i, "tag:a"));
                }
            }
            for &i in came.iter().filter(|i| !old.contains(i)) {
                added.push(format!("n{i}"));
                now.push(node(i, "tag:a"));
            }
            let after = inventory(now);
            let earlier = NodeTable::new(&before);
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            let added: Vec<&str> = added.iter().map(String::as_str).collect();
            let patched = NodeTable::patched(&after, &earlier, &removed, &added)
                .expect("a patchable change");
            prop_assert!(patched.translated.is_some());
            prop_assert_eq!(translate_ids(&earlier, &patched), walk_names(&earlier, &patched));
            // A table the patch did not start from is translated by the walk.
            let other = NodeTable::new(&before);
            prop_assert_eq!(translate_ids(&other, &patched), walk_names(&other, &patched));
        }
    }

    #[test]
    fn kept_nodes_pair_up_by_name() {
        let v4 = |i: u8| (Some(Ipv4Addr::new(100, 64, 0, i)), None);
        let earlier = table_of(&[v4(1), v4(2), v4(3)]).expect("a table");
        // n1 changed its address: it is the changed node, before and after.
        let now = table_of(&[v4(1), v4(9), v4(3)]).expect("a table");
        let n1 = [NodeId::new(1)];
        assert_eq!(
            now.kept_from(&earlier, &n1, &n1),
            Some(vec![Some(NodeId::new(0)), None, Some(NodeId::new(2))])
        );
        // Naming the wrong node before: n0 of now would pair with n1 of earlier.
        let n0 = [NodeId::new(0)];
        assert_eq!(now.kept_from(&earlier, &n0, &n1), None);
        // A node left: n3 is not in the table now.
        let fewer = table_of(&[v4(1), v4(2)]).expect("a table");
        assert_eq!(
            fewer.kept_from(&earlier, &[NodeId::new(2)], &[]),
            Some(vec![Some(NodeId::new(0)), Some(NodeId::new(1))])
        );
        assert_eq!(fewer.kept_from(&earlier, &[], &[]), None);
    }

    proptest! {
        /// Differential: the ranks sort the address texts exactly as strings sort, whatever
        /// prefixes they share (IPv6 addresses of one tailnet share their first 15 bytes).
        #[test]
        fn ranks_follow_string_order(
            addresses in proptest::collection::btree_set(
                (any::<u32>(), prop_oneof![Just(0u128), any::<u128>(), 0u128..70_000]),
                1..60,
            ),
        ) {
            let base = u128::from(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0));
            let mut seen4 = std::collections::HashSet::new();
            let mut seen6 = std::collections::HashSet::new();
            let pairs: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)> = addresses
                .iter()
                .map(|&(v4, v6)| {
                    let v4 = Ipv4Addr::from(v4 % 4096 + 0x0102_0000);
                    let v6 = Ipv6Addr::from(if v6 < 70_000 { base + v6 } else { v6 });
                    // Addresses no device can have are refused by the inventory.
                    let v6 = match crate::inventory::device_address(IpAddr::V6(v6)) {
                        true => v6,
                        false => Ipv6Addr::from(base + 70_000 + (u128::from(v6) % 70_000)),
                    };
                    (seen4.insert(v4).then_some(v4), seen6.insert(v6).then_some(v6))
                })
                .filter(|(a, b)| a.is_some() || b.is_some())
                .collect();
            let table = table_of(&pairs).expect("a valid inventory");
            let mut expected: Vec<String> = table
                .nodes
                .iter()
                .flat_map(|n| n.texts.iter().map(|t| t.to_string()))
                .collect();
            expected.sort();
            let texts: Vec<String> = (0..table.texts.len())
                .filter_map(|r| table.text_at(index(r)))
                .map(|t| t.to_string())
                .collect();
            prop_assert_eq!(&texts, &expected);
            for (node, ranks) in table.nodes.iter().zip(&table.ranks) {
                for (t, &r) in node.texts.iter().zip(ranks) {
                    prop_assert_eq!(Some(t), table.text_at(r));
                }
            }
        }

        /// Differential: a table built from an earlier one (nodes kept, some readdressed,
        /// some gone, some new) ranks its texts as one built afresh.
        #[test]
        fn ranks_from_an_earlier_table_equal_ranks_afresh(
            first in proptest::collection::btree_map(0usize..40, (0u32..64, 0u128..64), 1..30),
            changes in proptest::collection::vec((0usize..40, proptest::option::of((0u32..64, 0u128..64))), 0..8),
        ) {
            let base6 = u128::from(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0));
            let build = |nodes: &std::collections::BTreeMap<usize, (u32, u128)>| {
                // Unique addresses: a later node repeating one goes without it.
                let mut seen4 = std::collections::HashSet::new();
                let mut seen6 = std::collections::HashSet::new();
                let (names, addresses): (Vec<usize>, Vec<_>) = nodes
                    .iter()
                    .map(|(&n, &(a, b))| {
                        let v4 = Ipv4Addr::from(0x6440_0000 + a * 7);
                        let v6 = Ipv6Addr::from(base6 + b * 300);
                        (n, (seen4.insert(v4).then_some(v4), seen6.insert(v6).then_some(v6)))
                    })
                    .filter(|(_, (a, b))| a.is_some() || b.is_some())
                    .unzip();
                inventory_of(&names, &addresses)
            };
            // The second tailnet is the first changed: nodes readdressed, added, removed.
            let mut second_nodes = first.clone();
            for (n, change) in &changes {
                match change {
                    Some(addresses) => second_nodes.insert(*n, *addresses),
                    None => second_nodes.remove(n),
                };
            }
            let (Some(before), Some(after)) = (build(&first), build(&second_nodes)) else {
                return Ok(());
            };
            let earlier = NodeTable::new(&before);
            let reused = NodeTable::reusing(&after, Some(&earlier));
            let fresh = NodeTable::new(&after);
            prop_assert_eq!(&reused.texts, &fresh.texts);
            let strings = |t: &NodeTable| {
                (0..t.texts.len())
                    .map(|r| t.text_at(index(r)).map(|s| s.to_string()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(strings(&reused), strings(&fresh));
            // The same nodes in the same (name) order.
            let names = |t: &NodeTable| t.nodes.iter().map(|n| n.name.to_string()).collect::<Vec<_>>();
            prop_assert_eq!(names(&reused), names(&fresh));
            for (a, b) in reused.nodes.iter().zip(&fresh.nodes) {
                prop_assert_eq!(&a.texts, &b.texts);
                prop_assert_eq!(&a.hosts, &b.hosts);
            }
            prop_assert_eq!(&reused.ranks, &fresh.ranks);
        }

        /// Differential: the routers found through the route index are those whose routes
        /// overlap the set, router by router.
        #[test]
        fn source_nodes_equal_testing_every_router(
            served in proptest::collection::vec(proptest::collection::vec((any::<u8>(), 0u8..9), 0..3), 1..20),
            first in any::<u8>(),
            span in 0u8..64,
        ) {
            let nodes: Vec<Node> = served
                .iter()
                .enumerate()
                .map(|(i, routes)| {
                    let routes: Vec<IpNet> = routes
                        .iter()
                        .map(|&(b, l)| {
                            let net = ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 0, b), 24 + l).unwrap();
                            IpNet::V4(net.trunc())
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    Node {
                        name: format!("r{i}"),
                        hostname: None,
                        user: None,
                        tags: vec!["tag:r".to_string()],
                        ipv4: Some(Ipv4Addr::new(100, 64, 0, i as u8)),
                        ipv6: None,
                        routable_ips: routes.clone(),
                        approved_routes: routes,
                        posture: BTreeMap::new(),
                    }
                })
                .collect();
            let order = nodes.iter().map(|n| n.name.clone()).collect();
            let inventory = Inventory::new(Vec::new(), nodes, order, Tailnet::default()).unwrap();
            let mut table = NodeTable::new(&inventory);
            crate::routes::apply(&mut table, None);
            let last = first.saturating_add(span);
            let set = AddrSet::from_range(
                Ipv4Addr::new(10, 0, 0, first).into(),
                Ipv4Addr::new(10, 0, 0, last).into(),
            );
            let mut expected = table.addressed_in(&set);
            expected.extend(
                table
                    .routers
                    .iter()
                    .copied()
                    .filter(|&id| table.get(id).is_some_and(|n| n.routes_overlap(&set))),
            );
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(table.source_nodes(&set), expected);
        }
    }
    proptest! {
        /// Differential: the nodes with an address in a set are those a test of each node's
        /// addresses gives, whether every node has an address of a family (which one range of
        /// the set may hold whole: every node, without a walk) or not.
        #[test]
        fn addressed_nodes_are_those_a_test_per_node_gives(
            nodes in proptest::collection::vec((0u8..4, 0u8..64), 0..40),
            ranges in proptest::collection::vec((0u8..80, 0u8..80, any::<bool>()), 0..4),
        ) {
            let addresses: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, &(family, at))| {
                    let v4 = Ipv4Addr::new(100, 64, at, i as u8);
                    let v6 = Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(at), i as u16);
                    match family {
                        0 => (Some(v4), None),
                        1 => (None, Some(v6)),
                        _ => (Some(v4), Some(v6)),
                    }
                })
                .collect();
            let Some(table) = table_of(&addresses) else { return Ok(()) };
            let parts: Vec<AddrSet> = ranges
                .iter()
                .map(|&(a, b, six)| {
                    let (a, b) = (a.min(b), a.max(b));
                    match six {
                        false => AddrSet::from_range(
                            Ipv4Addr::new(100, 64, a, 0).into(),
                            Ipv4Addr::new(100, 64, b, 255).into(),
                        ),
                        true => AddrSet::from_range(
                            Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(a), 0).into(),
                            Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(b), 0xffff)
                                .into(),
                        ),
                    }
                })
                .collect();
            let set = AddrSet::union_of(&parts);
            let expected: Vec<NodeId> = (0..table.len())
                .map(NodeId::new)
                .filter(|&id| {
                    table.get(id).is_some_and(|n| {
                        n.v4.is_some_and(|a| set.contains(a.into()))
                            || n.v6.is_some_and(|a| set.contains(a.into()))
                    })
                })
                .collect();
            prop_assert_eq!(table.addressed_in(&set), expected);
        }
    }
}
