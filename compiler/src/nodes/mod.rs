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
use crate::Text;

mod build;
mod patch;

use build::*;

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
    pub(crate) name: Text,
    /// Owner (index into [`NodeTable::users`]) of a user-owned node.
    pub(crate) owner: Option<UserId>,
    /// Tags; empty for a user-owned node.
    pub(crate) tags: Vec<Text>,
    /// Tailscale IPv4 address; `None` for a node of an IPv6-only pool.
    pub(crate) v4: Option<Ipv4Addr>,
    /// Tailscale IPv6 address; `None` for a node of an IPv4-only pool.
    pub(crate) v6: Option<Ipv6Addr>,
    /// The addresses it has, bare (how `SrcIPs` and `DstPorts` name them), IPv4 first. Their
    /// ranks among every node's texts are the table's ([`NodeTable::text_ranks`]).
    pub(crate) texts: Pair<Text>,
    /// The addresses it has as `a/32` and `a/128` (how `CapGrant.Dsts`, `addresses` and
    /// `AllowedIPs` name them), IPv4 first.
    pub(crate) hosts: Pair<Text>,
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
    pub(crate) fn v4_host(&self) -> Option<&Text> {
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
#[derive(Debug, Clone)]
pub(crate) struct ServiceInfo {
    /// The service as the inventory has it: a node table patched for a node event keeps
    /// the hosts' records only when the new inventory's services are these
    /// ([`NodeTable::patched_from`]).
    pub(crate) written: crate::inventory::Service,
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

/// What [`NodeTable::patched_from`] reads of a tailnet after a change to some nodes: an
/// inventory without Services whose registration ranks are positions.
pub(crate) struct Change<'a> {
    /// Its list of users (the earlier table's, or the patch does not apply).
    pub(crate) users: &'a Arc<[crate::inventory::User]>,
    /// How many nodes it has.
    pub(crate) nodes: usize,
    /// The changed nodes it has, each with its registration rank (its position).
    pub(crate) named: Vec<(&'a crate::inventory::Node, usize)>,
    /// Its Services.
    pub(crate) services: &'a [crate::inventory::Service],
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
    by_tag: crate::hash::Map<Text, Vec<NodeId>>,
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
            && self.services.len() == other.services.len()
            && self
                .services
                .iter()
                .zip(&other.services)
                .all(|(a, b)| a.written == b.written && a.vips == b.vips)
            && self.service_by_vip == other.service_by_vip
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

    /// True when every node has an IPv4 and an IPv6 address (the address indexes list
    /// each node once per family), O(1).
    pub(crate) fn dual_stack(&self) -> bool {
        self.by_v4.len() == self.nodes.len() && self.by_v6.len() == self.nodes.len()
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
    /// routes: approvals (which `autoApprovers` decide), served and primary-eligible routes
    /// and exit status. What the policy can change in a node table besides IP sets, which
    /// reach rules only through their resolved targets. Online state is not compared: it
    /// only orders a route's servers, which [`crate::routes::RouteTable::same_servers`]
    /// compares (a sole router gone offline, which changes no map, made every later policy
    /// event on the engine fingerprint every node: 15 s on `large`).
    pub(crate) fn same_routes(&self, other: &NodeTable) -> bool {
        self.nodes.len() == other.nodes.len()
            && self.nodes.iter().zip(&other.nodes).all(|(a, b)| {
                a.name == b.name
                    && a.approved == b.approved
                    && a.served == b.served
                    && a.subnet_routes == b.subnet_routes
                    && (a.exit, a.exit_v4, a.exit_v6) == (b.exit, b.exit_v4, b.exit_v6)
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
        self.push_routers_over(set, &mut out);
        // The addressed nodes come sorted: sorted again only when routers were added.
        if out.len() > addressed {
            crate::bits::sort_unique(&mut out, self.len());
        }
        out
    }

    /// The routers serving a subnet route that overlaps `set`, sorted, each once: found
    /// through the routes the set overlaps ([`RouteIndex`]), as in
    /// [`NodeTable::source_nodes`].
    pub(crate) fn routers_over(&self, set: &AddrSet) -> Vec<NodeId> {
        let mut out = Vec::new();
        self.push_routers_over(set, &mut out);
        crate::bits::sort_unique(&mut out, self.len());
        out
    }

    /// [`NodeTable::routers_over`], unsorted and with repeats, added to `out`.
    fn push_routers_over(&self, set: &AddrSet, out: &mut Vec<NodeId>) {
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
        let same = |b: &NodeInfo| Text::ptr_eq(&b.name, &a.name);
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
mod tests;
