//! The compiled policy: built once per (policy, inventory) version, immutable and shareable
//! between threads; each node's rules, routes and peers are derived on demand from structures
//! shared by all nodes, so asking for one node costs what that node receives.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use aclc_policy::model::Policy;
use ipnet::IpNet;

use crate::capmap::NodeCaps;
use crate::error::{CompileError, CompileLimits};
use crate::inventory::Inventory;
use crate::lower::{self, Lowered};
use crate::nodes::{NodeId, NodeInfo, NodeTable};
use crate::peers::PeerIndex;
use crate::posture::Gates;
use crate::routes::{self, RouteTable};
use crate::ssh::{NodeSshRule, SshLowered};
use crate::wire::{CapMap, FilterRule, NodeOutput, PeerOutput, SshRule};

mod build;
mod prints;
mod view;

use build::*;
pub(crate) use build::{addresses_of, compile_marked, Prior};

pub(crate) use prints::{Fingerprint, HashCache};
pub use view::{NodeView, PeerView};

/// How to compile. Build it from [`CompileOptions::default`] and set the fields that differ.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompileOptions {
    /// Approve the advertised routes `autoApprovers` covers, in addition to the inventory's
    /// approvals (Tailscale approves them as soon as they are advertised). Default: on.
    pub auto_approve: bool,
    /// The control server's URL: SSH check-mode rules send clients to
    /// `<control_url>/machine/ssh/action/...`. Default: `https://unused`, the placeholder
    /// of the conformance corpus.
    pub control_url: String,
    /// Put the capabilities the control plane derives from tailnet state (not from the
    /// policy) in each node's `cap_map`: file sharing, SSH, tailnet lock, the admin and owner
    /// marks, the tailnet's display name, the auto-update default and a few client tunables.
    /// Default: on.
    pub tailnet_state_caps: bool,
    /// Caps on the work one policy may cause; a policy that needs more is refused.
    /// Default: [`CompileLimits::default`], far above what real tailnets need.
    pub limits: CompileLimits,
    /// What an approved exit node's packet filter holds. Default:
    /// [`ExitNodeFilters::AllDestinations`], as Tailscale's control server sends it.
    pub exit_node_filters: ExitNodeFilters,
}

/// What an approved exit node's packet filter holds ([`CompileOptions::exit_node_filters`]).
/// In JSON (the embedding API's `exit_node_filters`): `"all"` or `"internet"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum ExitNodeFilters {
    /// Every network rule's destinations of the families it exits to, as for a route that
    /// overlaps them all: `tag:server:22`, a user's devices, `10.33.0.0/16:*` (Tailscale's
    /// control server, captured with approved exit nodes). A policy with broad rules on a
    /// large tailnet gives each exit node most of the policy: past
    /// [`CompileLimits::max_node_filter_entries`] the compile is refused.
    #[default]
    #[serde(rename = "all")]
    AllDestinations,
    /// Only `autogroup:internet`'s ranges and policy prefixes outside the tailnet's and
    /// private ranges (what the reference semantics and headscale give): smaller exit
    /// filters that admit less than Tailscale's.
    #[serde(rename = "internet")]
    InternetOnly,
}

/// The control URL of the conformance corpus' captures.
pub const DEFAULT_CONTROL_URL: &str = "https://unused";

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            auto_approve: true,
            control_url: DEFAULT_CONTROL_URL.to_string(),
            tailnet_state_caps: true,
            limits: CompileLimits::default(),
            exit_node_filters: ExitNodeFilters::default(),
        }
    }
}

/// A compile's derived structures, borrowed (see [`Compiled::parts`]).
pub(crate) struct Parts<'a> {
    pub(crate) table: &'a NodeTable,
    pub(crate) lowered: &'a Lowered,
    pub(crate) ssh: &'a SshLowered,
    pub(crate) caps: &'a NodeCaps,
    pub(crate) routes: &'a RouteTable,
}

impl Parts<'_> {
    /// True when `other` (a compile of the same inventory) has the same nodes serving the
    /// same routes, each with its servers in the same order: [`NodeTable::same_routes`],
    /// which leaves online state out, and [`RouteTable::same_servers`], what it decides.
    pub(crate) fn same_routes(&self, other: &Parts<'_>) -> bool {
        self.table.same_routes(other.table) && self.routes.same_servers(other.routes)
    }
}

/// A policy compiled against an inventory.
#[derive(Debug)]
pub struct Compiled {
    table: NodeTable,
    routes: RouteTable,
    lowered: Lowered,
    peers: PeerIndex,
    ssh: SshLowered,
    caps: NodeCaps,
    /// The inventory's users and the control URL, to lower the SSH rules again under assumed
    /// posture attributes (`sshTests` `srcPostureAttrs`).
    users: std::sync::Arc<[crate::inventory::User]>,
    control_url: String,
    /// Why the policy was refused, when this grants nothing in its place
    /// ([`compile_with_options`]).
    refusal: Option<CompileError>,
    /// The fingerprints of the filters exit nodes share, by what sets them apart
    /// ([`crate::lower::Lowered::exit_filter_key`]), as they are taken.
    exit_prints: std::sync::Mutex<crate::hash::Map<crate::lower::ExitKey, u64>>,
    /// The destinations exit nodes of both families share, listed once
    /// ([`crate::lower::SpreadCache`]).
    spread: crate::lower::SpreadCache,
}

// A compiled policy is shared by the threads of a control server.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Compiled>();
    assert_send_sync::<NodeView<'static>>();
};

/// Compile `policy` for every node of `inventory` with the default options; see
/// [`compile_with_options`].
pub fn compile(policy: &Policy, inventory: &Inventory) -> Compiled {
    compile_with_options(policy, inventory, &CompileOptions::default())
}

/// Compile `policy` for every node of `inventory`. A policy [`try_compile_with_options`]
/// refuses compiles to nothing (fail closed): no node gets a rule, a peer or an SSH rule, and
/// [`Compiled::refusal`] says why. Callers that can report an error should use
/// [`try_compile_with_options`].
pub fn compile_with_options(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
) -> Compiled {
    try_compile_with_options(policy, inventory, options)
        .unwrap_or_else(|error| refused(policy, inventory, options, error))
}

/// Compile `policy` for every node of `inventory` with the default options, or say why not.
pub fn try_compile(policy: &Policy, inventory: &Inventory) -> Result<Compiled, CompileError> {
    try_compile_with_options(policy, inventory, &CompileOptions::default())
}

/// Compile `policy` for every node of `inventory`, or refuse it with the reason and the
/// policy location: an IP set that includes itself or holds unknown addresses, or work beyond
/// `options.limits`. Never a partial or widened result.
pub fn try_compile_with_options(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
) -> Result<Compiled, CompileError> {
    build(policy, inventory, options)
}

impl Compiled {
    /// Why the policy was refused, when [`compile_with_options`] compiled nothing in its
    /// place; `None` for a policy that compiled.
    pub fn refusal(&self) -> Option<&CompileError> {
        self.refusal.as_ref()
    }

    /// Node names, sorted.
    pub fn node_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.table.nodes.iter().map(|n| &*n.name)
    }

    /// True if the inventory has a node called `name`.
    pub fn has_node(&self, name: &str) -> bool {
        self.table.id(name).is_some()
    }

    /// The peer sets holding node `id` ([`crate::peers::PeerIndex::member_of`]).
    pub(crate) fn peer_sets_of(&self, id: NodeId) -> std::borrow::Cow<'_, [u32]> {
        self.peers.member_of(id)
    }

    /// What node `name` receives, or `None` for an unknown node.
    pub fn node(&self, name: &str) -> Option<NodeView<'_>> {
        self.view(name, true)
    }

    /// [`Compiled::node`], its packet filter left empty unless `rules`.
    fn view(&self, name: &str, rules: bool) -> Option<NodeView<'_>> {
        self.view_with(name, rules, true)
    }

    /// [`Compiled::view`], its peers left empty unless `peers`.
    fn view_with(&self, name: &str, rules: bool, peers: bool) -> Option<NodeView<'_>> {
        let id = self.table.id(name)?;
        let node = self.table.get(id)?;
        let rules = match rules {
            true => self
                .lowered
                .filter_rules(&self.table, id, Some(&self.spread)),
            false => Vec::new(),
        };
        let peers = match peers {
            true => self.peers.peer_bits(&self.table, id),
            false => Vec::new(),
        };
        Some(NodeView {
            compiled: self,
            id,
            node,
            primary_routes: node
                .subnet_routes
                .iter()
                .filter(|r| self.routes.primary(r) == Some(id))
                .copied()
                .collect(),
            rules,
            peers,
        })
    }

    /// The name of the node holding address `ip` (its IPv4 or IPv6 address, whether or not
    /// `disable-ipv4` took the IPv4 one away), or `None`: O(log nodes).
    pub fn node_name_at(&self, ip: std::net::IpAddr) -> Option<&str> {
        let id = self.table.by_address(ip)?;
        self.table.get(id).map(|n| &*n.name)
    }

    /// True when node `name` exists and `disable-ipv4` takes its IPv4 address away.
    pub(crate) fn node_ipv4_disabled(&self, name: &str) -> bool {
        self.table
            .id(name)
            .is_some_and(|id| self.caps.ipv4_disabled(id))
    }

    /// True when node `name` exists and carries tag `tag`.
    pub(crate) fn node_has_tag(&self, name: &str, tag: &str) -> bool {
        self.table
            .id(name)
            .and_then(|id| self.table.get(id))
            .is_some_and(|node| node.has_tag(tag))
    }

    /// Node `name`'s IPv6 address, if it exists and has one.
    pub(crate) fn node_ipv6(&self, name: &str) -> Option<std::net::IpAddr> {
        let node = self.table.get(self.table.id(name)?)?;
        node.ips().into_iter().find(std::net::IpAddr::is_ipv6)
    }

    /// How many peers node `name` sees, without building its map (one bit map of the
    /// tailnet's nodes: O(nodes / 64) per set it is in).
    pub fn peer_count(&self, name: &str) -> Option<usize> {
        let id = self.table.id(name)?;
        let bits = self.peers.peer_bits(&self.table, id);
        Some(bits.iter().map(|w| w.count_ones() as usize).sum())
    }

    /// Just the packet filter of node `name` (cheaper than [`Compiled::node`]).
    pub fn filter_rules(&self, name: &str) -> Option<Vec<FilterRule>> {
        let id = self.table.id(name)?;
        Some(
            self.lowered
                .filter_rules(&self.table, id, Some(&self.spread)),
        )
    }

    /// Just the SSH rules of node `name`, in the order the node evaluates them.
    pub fn ssh_rules(&self, name: &str) -> Option<Vec<SshRule>> {
        let id = self.table.id(name)?;
        Some(
            self.ssh
                .node_rules(&self.table, id)
                .into_iter()
                .map(|r| r.rule)
                .collect(),
        )
    }

    /// Node `name`'s SSH rules, each with the index of the `ssh` policy rule it came from
    /// (for the access diff); empty for an unknown node.
    pub(crate) fn indexed_ssh_rules(&self, name: &str) -> Vec<(usize, SshRule)> {
        self.table
            .id(name)
            .map(|id| {
                self.ssh
                    .node_rules(&self.table, id)
                    .into_iter()
                    .map(|r| (r.policy_index, r.rule))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when every route is shown to the same viewers through the same routers as in
    /// `other` (a compile of the same node table): the same routes with the same servers, and
    /// per route the same visibility and `via` steering. A viewer whose peer set is the same
    /// then sees every peer's routes as before.
    pub(crate) fn routes_shown_alike(&self, other: &Compiled) -> bool {
        self.routes.same_servers(&other.routes)
            && (0..self.routes.routes.len())
                .all(|i| self.peers.route_signature(i) == other.peers.route_signature(i))
    }

    /// True when router `r` is shown to every viewer exactly as in `other` (a compile of the
    /// same inventory): same subnet routes and exit status, and for each route the same
    /// servers and the same visibility and `via` steering. The access diff then skips it.
    /// Each route is compared once (`same_routes`, by the two compiles' route numbers): its
    /// servers all ask about it, and each comparison builds node sets of the whole tailnet
    /// (8,000 routers of one route took 15 s to diff).
    pub(crate) fn router_unchanged(
        &self,
        other: &Compiled,
        r: NodeId,
        same_routes: &mut HashMap<(usize, usize), bool>,
    ) -> bool {
        let (Some(a), Some(b)) = (self.table.get(r), other.table.get(r)) else {
            return false;
        };
        if a.subnet_routes != b.subnet_routes || a.exit != b.exit {
            return false;
        }
        a.subnet_routes
            .iter()
            .all(|net| match (self.routes.get(net), other.routes.get(net)) {
                (Some((i, x)), Some((j, y))) => *same_routes.entry((i, j)).or_insert_with(|| {
                    x.servers == y.servers
                        && self.peers.route_signature(i) == other.peers.route_signature(j)
                }),
                (None, None) => true,
                _ => false,
            })
    }

    /// Node `name`'s addresses, IPv4 first, without deriving anything else; a family it has
    /// no address of is the unspecified address (which the access diff skips).
    pub(crate) fn node_addresses(&self, name: &str) -> Option<[IpAddr; 2]> {
        let id = self.table.id(name)?;
        self.table.get(id).map(|n| n.ips_or_unspecified())
    }

    /// Nodes that serve subnet routes or are exit nodes: the only peers whose AllowedIPs
    /// vary with the viewer (for the access diff).
    pub(crate) fn routers(&self) -> Vec<NodeId> {
        self.table
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.subnet_routes.is_empty() || n.exit)
            .map(|(i, _)| NodeId::new(i))
            .collect()
    }

    /// Every node's view, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'_>> + '_ {
        self.node_names().filter_map(|name| self.node(name))
    }

    /// The node table (for the test runner).
    pub(crate) fn table(&self) -> &NodeTable {
        &self.table
    }

    /// The derived structures, for the access diff's item-level comparison.
    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            table: &self.table,
            lowered: &self.lowered,
            ssh: &self.ssh,
            caps: &self.caps,
            routes: &self.routes,
        }
    }

    /// The nodes (one bit each) whose peers may differ from those in `old` (a compile of the
    /// same node table), the changed items given: see [`PeerIndex::flips`]; `autogroup:self`
    /// peers aside ([`Compiled::self_alike`]).
    /// With them, the peers each node gained and lost ([`crate::peers::PeerIndex::flips`])
    /// when few groups of nodes were compared.
    pub(crate) fn peers_flips(
        &self,
        old: &Compiled,
        changed: &crate::lower::ChangedItems,
    ) -> (Vec<u64>, Option<crate::peers::Flips>) {
        self.peers.flips(&old.peers, changed, true)
    }

    /// Lists every node's peer sets now ([`PeerIndex::prepare_membership`]), so that a later
    /// question about many nodes' peers finds them listed.
    pub(crate) fn prepare_peer_sets(&self) {
        self.peers.prepare_membership();
    }

    /// True when node `id`'s `autogroup:self` peers are alike here and in `old`.
    pub(crate) fn self_alike(&self, old: &Compiled, id: NodeId) -> bool {
        self.peers.self_alike(&old.peers, &self.table, id)
    }

    /// Node `id`'s peers, one bit per node id (for the access diff).
    pub(crate) fn peer_bits_at(&self, id: NodeId) -> Vec<u64> {
        self.peers.peer_bits(&self.table, id)
    }

    /// Node `id`'s capability map (for the access diff).
    pub(crate) fn cap_map_at(&self, id: NodeId) -> CapMap {
        self.caps.cap_map(&self.table, id)
    }

    /// The routes node `id` serves: its subnet routes and, for an exit node, `0.0.0.0/0` and
    /// `::/0` (for the access diff).
    pub(crate) fn served_at(&self, id: NodeId) -> Vec<IpNet> {
        let Some(node) = self.table.get(id) else {
            return Vec::new();
        };
        let mut out = node.subnet_routes.clone();
        if node.exit {
            out.push(IpNet::V4(ipnet::Ipv4Net::default()));
            out.push(IpNet::V6(ipnet::Ipv6Net::default()));
        }
        out
    }

    /// Node `id`'s packet filter (for the access diff).
    pub(crate) fn filter_at(&self, id: NodeId) -> Vec<FilterRule> {
        self.lowered
            .filter_rules(&self.table, id, Some(&self.spread))
    }

    /// Node `id`'s SSH rules with the policy rule each came from (for the test runner).
    pub(crate) fn node_ssh_rules(&self, id: NodeId) -> Vec<NodeSshRule> {
        self.ssh.node_rules(&self.table, id)
    }

    /// The `ssh` section lowered again as if devices `nodes` (sorted) had posture attributes
    /// `attrs` (for `sshTests` with `srcPostureAttrs`): the same code decides as for the
    /// compiled output, so tests and output cannot disagree.
    pub(crate) fn ssh_assuming(
        &self,
        policy: &Policy,
        nodes: &[NodeId],
        attrs: &serde_json::Map<String, serde_json::Value>,
    ) -> SshLowered {
        SshLowered::new(
            policy,
            &self.users,
            &self.table,
            &self.control_url,
            &mut Gates::assuming(policy, &self.table, nodes, attrs),
            None,
        )
    }

    /// How `viewer` sees node `peer` (whether or not it is a peer).
    pub(crate) fn peer_view(&self, viewer: NodeId, peer: NodeId) -> Option<PeerView<'_>> {
        let node = self.table.get(peer)?;
        // A node without IPv4 (`disable-ipv4`, or none assigned) neither reaches nor is
        // reached over IPv4; likewise for IPv6.
        let hide = self.families_missing(viewer) | self.families_missing(peer);
        if node.subnet_routes.is_empty() {
            return Some(PeerView {
                node,
                routes: Vec::new(),
                hide,
            });
        }
        let routes = node
            .subnet_routes
            .iter()
            .filter(|net| {
                self.routes.get(net).is_some_and(|(i, _)| {
                    self.peers.route_visible(i, viewer)
                        && self.peers.carrier(&self.table, &self.routes, i, viewer) == Some(peer)
                })
            })
            .copied()
            .collect();
        Some(PeerView { node, routes, hide })
    }

    /// The address families node `id` has no address of, as [`HIDE_V4`] | [`HIDE_V6`] bits:
    /// none assigned, or IPv4 taken away by `disable-ipv4`.
    ///
    /// O(1) without a node lookup when every node has both families (the common case: it
    /// is read for every peer of every changed node).
    pub(crate) fn families_missing(&self, id: NodeId) -> u8 {
        if self.table.dual_stack() && !self.caps.any_ipv4_disabled() {
            return 0;
        }
        let Some(node) = self.table.get(id) else {
            return 0;
        };
        let v4 = node.v4.is_none() || self.caps.ipv4_disabled(id);
        let v6 = node.v6.is_none();
        (u8::from(v4) * HIDE_V4) | (u8::from(v6) * HIDE_V6)
    }
}

/// [`Compiled::families_missing`]: no IPv4 address.
pub(crate) const HIDE_V4: u8 = 1;
/// [`Compiled::families_missing`]: no IPv6 address.
pub(crate) const HIDE_V6: u8 = 2;

#[cfg(test)]
mod tests;
