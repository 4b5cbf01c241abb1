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
        }
    }
}

/// A compile's derived structures, borrowed (see [`Compiled::parts`]).
pub(crate) struct Parts<'a> {
    pub(crate) table: &'a NodeTable,
    pub(crate) lowered: &'a Lowered,
    pub(crate) ssh: &'a SshLowered,
    pub(crate) caps: &'a NodeCaps,
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

fn build(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
) -> Result<Compiled, CompileError> {
    build_marked(policy, inventory, options, &|_| false, None, None)
}

/// [`compile_with_options`] with the nodes `offline` says are offline marked so (the
/// engine's HA failover: an offline router is not primary while another server is online).
pub(crate) fn compile_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    offline: &dyn Fn(&str) -> bool,
    (prior, table): (Option<&Prior<'_>>, Option<NodeTable>),
) -> Compiled {
    build_marked(policy, inventory, options, offline, prior, table)
        .unwrap_or_else(|error| refused_marked(policy, inventory, options, error, offline))
}

/// Mark the nodes `offline` names. `only`: the nodes named by the change and those with
/// routes, for a table patched from an earlier compile's (100,000 lookups by name per event
/// on `large`, for flags that only order a route's servers), else every node.
fn mark_offline(table: &mut NodeTable, offline: &dyn Fn(&str) -> bool, only: Option<&[NodeId]>) {
    let mark = |node: &mut Arc<NodeInfo>| {
        let flag = offline(&node.name);
        // Written only where it changes: a patched table shares its other nodes.
        if node.offline != flag {
            Arc::make_mut(node).offline = flag;
        }
    };
    match only {
        Some(ids) => {
            for id in ids {
                if let Some(node) = table.nodes.get_mut(id.index()) {
                    mark(node);
                }
            }
        }
        None => table.nodes.iter_mut().for_each(mark),
    }
    // A flag only orders a route's servers. A routeless node's may be stale (the engine
    // keeps its snapshot when only such a node's flag changed): a node that comes to
    // advertise a route is named by that change, and marked from then on.
    debug_assert!(
        table
            .nodes
            .iter()
            .filter(|n| n.has_routes())
            .all(|n| n.offline == offline(&n.name)),
        "a router's online flag was carried from an earlier compile that had it otherwise"
    );
}

fn build_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    offline: &dyn Fn(&str) -> bool,
    prior: Option<&Prior<'_>>,
    table: Option<NodeTable>,
) -> Result<Compiled, CompileError> {
    // A change to nodes only, or to the policy alone (no node named: the same nodes, whose
    // policy-derived parts, IP sets, approved routes and groups' users, are set again
    // below): the earlier table patched; anything else, built (a policy event on `large`
    // built its table in 68 ms, patches it in about 9).
    // Beside it, on a policy event, whether the SSH lowering can be kept (18 ms on `large`).
    let policy_event = prior.is_some_and(|p| p.policy_changed);
    // A node event's table may come patched already (`table`: the engine patches it beside
    // the inventory, [`NodeTable::patched_from`]).
    let (patched, ssh_same) = crate::par::join_if(
        policy_event && crate::par::event_worth_threads(inventory.nodes().len()),
        || {
            table.or_else(|| {
                prior.and_then(|p| {
                    let (before, after) = p.records.unwrap_or((p.before, p.after));
                    NodeTable::patched(inventory, &p.compiled.table, before, after)
                })
            })
        },
        || {
            policy_event
                && prior.is_some_and(|p| crate::ssh::reuse::same_inputs(p.old_policy, policy))
        },
    );
    #[cfg(debug_assertions)]
    if let (Some(t), Some(p)) = (&patched, prior) {
        let built = NodeTable::reusing(inventory, Some(&p.compiled.table));
        debug_assert!(
            t.agrees_with(&built),
            "a patched node table differs from one built"
        );
    }
    // A patched table carries the other nodes' online flags: only the nodes named are marked.
    let was_patched = patched.is_some();
    let mut table = match patched {
        Some(table) => table,
        None => NodeTable::reusing(inventory, prior.map(|p| &p.compiled.table)),
    };
    if let Some(p) = prior.filter(|p| !p.policy_changed) {
        table.share_group_users(&p.compiled.table);
    }
    let named = prior
        .filter(|_| was_patched)
        .zip(table.with_routes.as_ref())
        .map(|(p, routed)| {
            let mut ids = table.ids_of(p.records.map_or(p.after, |(_, is)| is));
            ids.extend(routed);
            ids
        });
    mark_offline(&mut table, offline, named.as_deref());
    // IP sets first: every later alias resolution reads them from the table.
    table.ipsets = crate::ipsets::resolve(policy, &table, &options.limits)?;
    let auto = options
        .auto_approve
        .then(|| routes::auto_approvals(policy, &table));
    routes::apply(&mut table, auto.as_deref());
    // SSH rules and node capabilities read only the table: with a second core they are
    // lowered beside the rules and peers (a fifth of a compile on `large`).
    // The changed nodes' ids in the earlier compile and in this one, for both reuses.
    let changed = prior.map(|p| (p.compiled.table.ids_of(p.before), table.ids_of(p.after)));
    // Where each node was, when only the nodes named changed. On a route event only the
    // nodes whose records changed (their served routes, their online flag) can enter or
    // leave a rule's destinations (a route's servers, exit nodes: each node's own routes
    // decide), so every other node keeps its id and its lists of items and SSH rules: the
    // indexes are patched for those nodes alone (building the lowering's afresh was 0.15 s
    // of a route event on `large`).
    let kept = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| !p.policy_changed)
        .and_then(|(p, (before, after))| match (p.routes_changed, p.records) {
            (false, _) => table.kept_from(&p.compiled.table, before, after),
            (true, Some((was, is))) => table.kept_from(
                &p.compiled.table,
                &p.compiled.table.ids_of(was),
                &table.ids_of(is),
            ),
            (true, None) => None,
        });
    let lower_prior = prior
        .zip(changed.as_ref())
        .map(|(p, (before, after))| lower::Prior {
            lowered: &p.compiled.lowered,
            table: &p.compiled.table,
            before,
            after,
            same_ids: p.policy_changed,
            kept: kept.as_deref(),
        });
    let ssh_prior = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| !p.policy_changed)
        .map(|(p, (before, after))| crate::ssh::SshPrior {
            lowered: &p.compiled.ssh,
            before,
            after,
            touched_users: table.same_users(&p.compiled.table).then(|| {
                let mut users: Vec<_> = p.compiled.table.owners_of(before).collect();
                users.extend(table.owners_of(after));
                users.sort_unstable();
                users.dedup();
                users
            }),
            kept: kept.as_deref(),
        });
    // A policy event that left the SSH rules and all they read: the earlier lowering, whole.
    let ssh_kept = prior.filter(|_| ssh_same).map(|p| &p.compiled.ssh);
    // The rules lowered on this core; on the other, the SSH rules and capabilities (which
    // read only the table), then the peer index's sets of the lists the lowering made.
    // Side by side on a tailnet worth threads: from fewer nodes for a whole compile than
    // for an event's, which patches what changed.
    let beside = match prior {
        Some(_) => crate::par::event_worth_threads(table.len()),
        None => crate::par::worth_threads(table.len()),
    };
    let (lowered, side, prepared) = crate::peers::prepared_beside(
        beside,
        &table,
        |lists| lower::lower(policy, &table, &options.limits, lower_prior.as_ref(), lists),
        || {
            side_phases(
                policy,
                inventory,
                options,
                &table,
                (ssh_kept, ssh_prior.as_ref()),
            )
        },
    );
    let lowered = lowered?;
    let routes = RouteTable::new(&table);
    // A node event whose lowering made the same items, none of whose changed nodes has an
    // address in a route: each route's items are those it had ([`PeerIndex::route_items`]).
    let route_items = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| kept.is_some() && !p.routes_changed)
        .filter(|(p, _)| {
            lower::same_items(&p.compiled.lowered, &lowered)
                && lower::same_vacancy(&p.compiled.lowered, &lowered)
        })
        .filter(|(p, (before, after))| {
            outside_routes(
                [(&p.compiled.table, &before[..]), (&table, &after[..])],
                &routes,
            )
        })
        .map(|(p, _)| p.compiled.peers.route_items());
    let peers = PeerIndex::with_prepared(&table, &routes, &lowered, prepared, route_items);
    // Debug builds compare the sets taken from beside the lowering with sets prepared here.
    #[cfg(debug_assertions)]
    debug_assert!(
        peers.same_sets(&PeerIndex::new(&table, &routes, &lowered)),
        "a peer set prepared beside the lowering differs from one prepared after it"
    );
    Ok(assembled(
        inventory, options, table, routes, lowered, peers, side,
    ))
}

/// True when none of the nodes named (ids, each in its table) has an address in a route of
/// `routes`. False when a node is not in its table.
fn outside_routes(named: [(&NodeTable, &[NodeId]); 2], routes: &RouteTable) -> bool {
    addresses_of(named).is_some_and(|set| routes_over(routes, &set).next().is_none())
}

/// The addresses of the nodes named (ids, each in its table) in one set; `None` when a node
/// is not in its table.
pub(crate) fn addresses_of(named: [(&NodeTable, &[NodeId]); 2]) -> Option<crate::addrset::AddrSet> {
    let mut addrs = Vec::new();
    for (table, ids) in named {
        for &id in ids {
            addrs.extend(table.get(id)?.addrs());
        }
    }
    Some(crate::addrset::AddrSet::from_ips(addrs))
}

/// The routes of `routes` that hold an address of `set`: each route tested against the set
/// once (O(routes x log addresses), not routes per address).
fn routes_over<'r>(
    routes: &'r RouteTable,
    set: &'r crate::addrset::AddrSet,
) -> impl Iterator<Item = &'r crate::routes::RouteEntry> + 'r {
    routes.routes.iter().filter(|r| set.overlaps_net(&r.net))
}

/// An earlier compile of the same policy whose tailnet differs only in the nodes named (by
/// name, before and after the change), none of which serves a route, or only in routes
/// (advertised, approved, online flags; no node named): what did not change is taken from it
/// ([`lower::Prior`], [`crate::ssh::SshPrior`]).
pub(crate) struct Prior<'a> {
    /// The earlier compile.
    pub(crate) compiled: &'a Compiled,
    /// The changed nodes' names in it.
    pub(crate) before: &'a [&'a str],
    /// Their names now.
    pub(crate) after: &'a [&'a str],
    /// The earlier compile is of another policy on the same inventory (a policy change): only
    /// source lists whose targets are equal are taken, and the SSH lowering only when every
    /// input of it is the same in `old_policy` ([`crate::ssh::reuse::same_inputs`]).
    pub(crate) policy_changed: bool,
    /// The earlier compile's policy.
    pub(crate) old_policy: &'a Policy,
    /// Routes (advertised, approved, online flags) changed, not the nodes named.
    pub(crate) routes_changed: bool,
    /// The nodes whose records changed (names before, names now), when they are not
    /// `before` and `after` (a route change names none there): what the node table is
    /// patched for ([`NodeTable::patched`]).
    pub(crate) records: Option<(&'a [&'a str], &'a [&'a str])>,
}

/// The phases that read only the node table: SSH rules and node capabilities.
struct SidePhases {
    ssh: SshLowered,
    caps: NodeCaps,
}

fn side_phases(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    table: &NodeTable,
    (kept, prior): (Option<&SshLowered>, Option<&crate::ssh::SshPrior<'_>>),
) -> SidePhases {
    let new = || {
        SshLowered::new(
            policy,
            inventory.users(),
            table,
            &options.control_url,
            &mut Gates::new(policy, table),
            prior,
        )
    };
    let ssh = match kept {
        Some(old) => {
            let ssh = old.reused();
            // Debug builds compare a reused lowering with one built afresh.
            #[cfg(debug_assertions)]
            debug_assert!(
                ssh.agrees_with(&new()),
                "a reused SSH lowering differs from one built"
            );
            ssh
        }
        None => new(),
    };
    SidePhases {
        ssh,
        caps: NodeCaps::new(policy, inventory, table, options.tailnet_state_caps),
    }
}

/// What a refused policy compiles to: no rule, no peer, no SSH rule, no node attribute from the
/// policy (only the inventory's own approved routes and tailnet-state capabilities).
fn refused(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    error: CompileError,
) -> Compiled {
    refused_marked(policy, inventory, options, error, &|_| false)
}

fn refused_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    error: CompileError,
    offline: &dyn Fn(&str) -> bool,
) -> Compiled {
    let nothing = Policy {
        acls: Some(aclc_policy::model::Spanned::new(Vec::new(), policy.span)),
        span: policy.span,
        ..Policy::default()
    };
    let mut table = NodeTable::new(inventory);
    mark_offline(&mut table, offline, None);
    routes::apply(&mut table, None);
    let lowered = lower::Lowered::nothing(&table);
    let mut compiled = finish(&nothing, inventory, options, table, lowered);
    compiled.refusal = Some(error);
    compiled
}

/// The phases that cannot fail, once the node table and the rules are settled.
fn finish(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    table: NodeTable,
    lowered: Lowered,
) -> Compiled {
    let routes = RouteTable::new(&table);
    let peers = PeerIndex::new(&table, &routes, &lowered);
    let side = side_phases(policy, inventory, options, &table, (None, None));
    assembled(inventory, options, table, routes, lowered, peers, side)
}

fn assembled(
    inventory: &Inventory,
    options: &CompileOptions,
    table: NodeTable,
    routes: RouteTable,
    lowered: Lowered,
    peers: PeerIndex,
    side: SidePhases,
) -> Compiled {
    Compiled {
        table,
        routes,
        lowered,
        peers,
        ssh: side.ssh,
        caps: side.caps,
        users: inventory.shared_users().clone(),
        control_url: options.control_url.clone(),
        refusal: None,
    }
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

    /// What node `name` receives, or `None` for an unknown node.
    pub fn node(&self, name: &str) -> Option<NodeView<'_>> {
        self.view(name, true)
    }

    /// [`Compiled::node`], its packet filter left empty unless `rules`.
    fn view(&self, name: &str, rules: bool) -> Option<NodeView<'_>> {
        let id = self.table.id(name)?;
        let node = self.table.get(id)?;
        let rules = match rules {
            true => self.lowered.filter_rules(&self.table, id),
            false => Vec::new(),
        };
        let peers = self.peers.peer_bits(&self.table, id);
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
        Some(self.lowered.filter_rules(&self.table, id))
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
        self.routes.routes.len() == other.routes.routes.len()
            && self
                .routes
                .routes
                .iter()
                .zip(&other.routes.routes)
                .enumerate()
                .all(|(i, (a, b))| {
                    a.net == b.net
                        && a.servers == b.servers
                        && self.peers.route_signature(i) == other.peers.route_signature(i)
                })
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
        }
    }

    /// The nodes (one bit each) whose peers may differ from those in `old` (a compile of the
    /// same node table), the changed items given: see [`PeerIndex::flipped`]; `autogroup:self`
    /// peers aside ([`Compiled::self_alike`]).
    pub(crate) fn peers_flipped(
        &self,
        old: &Compiled,
        changed: &crate::lower::ChangedItems,
    ) -> Vec<u64> {
        self.peers.flipped(&old.peers, changed)
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
        self.lowered.filter_rules(&self.table, id)
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
    pub(crate) fn families_missing(&self, id: NodeId) -> u8 {
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

/// What one node receives. Borrowed from the [`Compiled`] it came from; peers are kept as a
/// set and detailed ([`PeerView`]) only when iterated.
#[derive(Debug)]
pub struct NodeView<'a> {
    compiled: &'a Compiled,
    id: NodeId,
    node: &'a NodeInfo,
    primary_routes: Vec<IpNet>,
    rules: Vec<FilterRule>,
    /// One bit per node id.
    peers: Vec<u64>,
}

impl<'a> NodeView<'a> {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The packet filter, in wire order.
    pub fn packet_filter_rules(&self) -> &[FilterRule] {
        &self.rules
    }

    /// The node's addresses, IPv4 first, always two: a family the node has no address of
    /// (an IPv4-only or IPv6-only node) is given as that family's unspecified address
    /// (`0.0.0.0`, `::`), which is never a real address. Prefer [`NodeView::addrs`].
    pub fn addresses(&self) -> [IpAddr; 2] {
        self.node.ips_or_unspecified()
    }

    /// The addresses the node has (one or two), IPv4 first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.node.ips()
    }

    /// The node's own AllowedIPs: its addresses, then the routes it serves.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.addrs().into_iter().map(IpNet::from).collect();
        out.extend(self.node.served.iter().copied());
        out
    }

    /// Subnet routes this node is the primary router for.
    pub fn primary_routes(&self) -> &[IpNet] {
        &self.primary_routes
    }

    /// Visible peers, in name order.
    pub fn peers(&self) -> impl Iterator<Item = PeerView<'a>> + '_ {
        let compiled = self.compiled;
        let viewer = self.id;
        crate::bits::iter_bits(&self.peers).filter_map(move |p| compiled.peer_view(viewer, p))
    }

    /// How many peers the node sees.
    pub fn peer_count(&self) -> usize {
        self.peers.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The SSH rules, in the order the node evaluates them (first match wins).
    pub fn ssh_rules(&self) -> Vec<SshRule> {
        self.ssh_node_rules().into_iter().map(|r| r.rule).collect()
    }

    /// The SSH rules with the policy rule each came from.
    fn ssh_node_rules(&self) -> Vec<crate::ssh::NodeSshRule> {
        self.compiled.ssh.node_rules(&self.compiled.table, self.id)
    }

    /// The node's capability map: node attributes, tailnet options and (unless turned off)
    /// the capabilities the control plane derives from tailnet state.
    pub fn cap_map(&self) -> CapMap {
        self.compiled.caps.cap_map(&self.compiled.table, self.id)
    }

    /// True when `disable-ipv4` took the node's IPv4 address away: the wire form then lists
    /// only its IPv6 address, and the node sees its peers over IPv6 only.
    pub fn ipv4_disabled(&self) -> bool {
        self.compiled.caps.ipv4_disabled(self.id)
    }

    /// The wire form's `addresses`, `allowed_ips` and `primary_routes`.
    fn own_wire(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let strings = |nets: &[IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut addresses: Vec<String> = self.node.hosts.iter().map(|h| h.to_string()).collect();
        let mut allowed_ips = strings(&self.allowed_ips());
        if let Some(v4) = self.node.v4_host().filter(|_| self.ipv4_disabled()) {
            addresses.retain(|a| **a != **v4);
            allowed_ips.retain(|a| **a != **v4);
        }
        (addresses, allowed_ips, strings(&self.primary_routes))
    }

    /// The owned wire form (the corpus' per-node document).
    pub fn to_wire(&self) -> NodeOutput {
        let (addresses, allowed_ips, primary_routes) = self.own_wire();
        NodeOutput {
            packet_filter_rules: self.rules.clone(),
            ssh_rules: self.ssh_rules(),
            addresses,
            allowed_ips,
            primary_routes,
            cap_map: Some(self.cap_map()),
            peers: self
                .peers()
                .map(|p| (p.node.name.clone(), p.to_wire()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// Hashes of the parts of what one node receives, so that two compiles can be compared node
/// by node without building either's wire form (the engine's change sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fingerprint {
    /// The packet filter.
    pub(crate) filter: u64,
    /// The SSH rules.
    pub(crate) ssh: u64,
    /// The peers, each with its AllowedIPs, routes and capabilities.
    pub(crate) peers: u64,
    /// The capability map.
    pub(crate) caps: u64,
    /// The node's own addresses, AllowedIPs and primary routes.
    pub(crate) own: u64,
}

/// Feeds what serde writes into a hasher (no intermediate string).
struct HashWriter(ahash::AHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash of `value`'s JSON form (with this process's keys: [`crate::hash::hasher`]).
pub(crate) fn json_hash<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut writer = HashWriter(crate::hash::hasher());
    // Writing to a hasher cannot fail; a value serde cannot write hashes as what was written.
    if serde_json::to_writer(&mut writer, value).is_err() {
        std::hash::Hasher::write_u8(&mut writer.0, 0xff);
    }
    std::hash::Hasher::finish(&writer.0)
}

/// The fingerprint hash of a `SrcIPs` list: its length and content hash
/// ([`crate::lower::SrcTable::hash`], a sum over its strings, which are sorted without
/// repeats, so the sum loses nothing an ordered hash would keep), mixed.
fn strings_hash(len: usize, content: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_usize(len);
    h.write_u64(content);
    h.finish()
}

/// The hash of an SSH rule's fields besides its principals (`null`: policy rules have no
/// expiry).
fn ssh_rest_hash(rule: &crate::ssh::SshRuleRef<'_>) -> u64 {
    json_hash(&((), rule.users, rule.action, rule.accept_env))
}

/// The hash of an SSH principals list, field by field (every field of the wire form; each
/// field tagged, each string ended by a byte UTF-8 never holds).
fn principals_hash(list: &[crate::wire::SshPrincipal]) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_usize(list.len());
    let text = |h: &mut ahash::AHasher, tag: u8, s: Option<&str>| {
        if let Some(s) = s {
            h.write_u8(tag);
            h.write(s.as_bytes());
            h.write_u8(0xff);
        }
    };
    for p in list {
        text(&mut h, 1, p.node());
        text(&mut h, 2, p.node_ip());
        text(&mut h, 3, p.user_login());
        h.write_u8(if p.any() { 4 } else { 5 });
        h.write_usize(p.pub_keys().len());
        for key in p.pub_keys() {
            text(&mut h, 6, Some(key));
        }
    }
    h.finish()
}

/// Hashes of the shared `SrcIPs` lists in rules, by address, for one pass over a compile's
/// nodes: most nodes' rules share a few interned lists, so each is hashed once. Only lists
/// something else also holds are remembered, and the cache keeps a clone of each, so an
/// address is never reused for another list while it is cached. (SSH rules keep their
/// hashes themselves: [`crate::ssh::Memo`].)
#[derive(Default)]
pub(crate) struct HashCache {
    // Keyed by addresses, looked up once per rule a node receives (tens of millions on
    // `large`): the fast hash, not SipHash.
    sources: crate::hash::Map<usize, (crate::wire::Strings, u64)>,
}

impl HashCache {
    fn sources(&mut self, list: &crate::wire::Strings, srcs: &crate::lower::SrcTable) -> u64 {
        // A list of the compile's table: its content hash, known since it was interned.
        if let Some(content) = srcs.content_hash(list) {
            return strings_hash(list.len(), content);
        }
        let key = std::sync::Arc::as_ptr(list) as *const u8 as usize;
        if let Some((_, h)) = self.sources.get(&key) {
            return *h;
        }
        let h = strings_hash(list.len(), crate::lower::SrcTable::hash(list));
        if std::sync::Arc::strong_count(list) > 1 {
            self.sources.insert(key, (list.clone(), h));
        }
        h
    }

    /// The hash of a packet filter: each rule's sources (cached) and the rest of it, field by
    /// field (every field of the wire form; `CapGrant`s, rare and holding JSON values,
    /// through their JSON form).
    fn filter_hash(&mut self, rules: &[FilterRule], srcs: &crate::lower::SrcTable) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::hash::hasher();
        for rule in rules {
            h.write_u64(self.sources(&rule.src_ips, srcs));
            rule.src_bits.hash(&mut h);
            h.write_usize(rule.dst_ports.len());
            for d in &rule.dst_ports {
                h.write(d.ip.as_bytes());
                // Never in UTF-8: ends the string.
                h.write_u8(0xff);
                d.bits.hash(&mut h);
                h.write_u16(d.ports.first);
                h.write_u16(d.ports.last);
            }
            rule.ip_proto.hash(&mut h);
            match rule.cap_grant.is_empty() {
                true => h.write_u8(0),
                false => h.write_u64(json_hash(&rule.cap_grant)),
            }
        }
        h.write_usize(rules.len());
        h.finish()
    }
}

/// The hash of node `id`'s SSH rules in `ssh` (as [`SshLowered::node_rules`] would give
/// them, without building them): the sum of one hash per piece, of the piece's rule, its
/// place among that rule's pieces, its principals and the rest of it (their hashes kept with
/// the lowered rule). The order of the rules follows from them (check rules first, policy
/// order otherwise), and a sum lets an event move a node's hash by the pieces that changed
/// ([`Compiled::ssh_moves`]) without visiting its other rules.
fn ssh_hash(ssh: &SshLowered, table: &NodeTable, id: NodeId) -> u64 {
    let mut sink = SshHashSink::default();
    ssh.visit_node_rules(table, id, &mut sink);
    sink.sum
}

/// [`Compiled::ssh_moves`]: what the moved pieces add to each node's SSH fingerprint, and
/// the nodes to hash again.
pub(crate) struct SshMoves {
    /// Per node (by id), the sum of its moved pieces' changes.
    pub(crate) sums: Vec<u64>,
    /// The nodes some moved piece reaches (a bit per node id): their `sums` apply.
    pub(crate) summed: Vec<u64>,
    /// The nodes whose SSH part is hashed again.
    pub(crate) again: Vec<NodeId>,
}

/// One piece's part of [`ssh_hash`].
fn ssh_piece_hash(rule: usize, place: usize, principals: u64, rest: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_usize(rule);
    h.write_usize(place);
    h.write_u64(principals);
    h.write_u64(rest);
    h.finish()
}

/// Hashes a node's SSH rules as [`SshLowered::visit_node_rules`] hands them over (a rule's
/// pieces one after the other).
#[derive(Default)]
struct SshHashSink {
    /// The last piece's rule and place.
    last: Option<(usize, usize)>,
    sum: u64,
}

impl crate::ssh::SshSink for SshHashSink {
    fn rule(&mut self, rule: crate::ssh::SshRuleRef<'_>) {
        let list = || principals_hash(rule.principals);
        let principals = match rule.principals_hash {
            // Kept with the lowered rule, computed once per compile for all threads.
            Some(memo) => memo.get_or(list),
            None => list(),
        };
        let rest = rule.rest_hash.get_or(|| ssh_rest_hash(&rule));
        let place = match self.last {
            Some((index, place)) if index == rule.policy_index => place + 1,
            _ => 0,
        };
        self.last = Some((rule.policy_index, place));
        self.sum =
            self.sum
                .wrapping_add(ssh_piece_hash(rule.policy_index, place, principals, rest));
    }
}

impl Compiled {
    /// The nodes whose SSH rules have node `id` as a source; `None` when that may be any
    /// node.
    pub(crate) fn ssh_dependents_at(&self, id: NodeId) -> Option<Vec<NodeId>> {
        self.ssh.naming_source(&self.table, id)
    }

    /// The nodes whose packet filter may change when node `id` (serving no route) joins,
    /// leaves or changes ([`crate::lower::Lowered::filter_dependents`]); `None` when that may
    /// be every node.
    pub(crate) fn filter_dependents_at(&self, id: NodeId) -> Option<Vec<NodeId>> {
        let peers = || crate::bits::iter_bits(&self.peers.peer_bits(&self.table, id)).collect();
        self.lowered.filter_dependents(&self.table, id, peers)
    }

    /// Node ids of `old` (a compile of another node table) translated to this compile's, by
    /// name; `u32::MAX` for a node this compile does not have. O(nodes): both tables are
    /// sorted by name.
    pub(crate) fn ids_from(&self, old: &Compiled) -> Vec<u32> {
        crate::nodes::translate_ids(&old.table, &self.table)
    }

    /// Whether two compiles merge network rules the same way
    /// ([`crate::lower::Lowered::merge_signature`]).
    pub(crate) fn merges_like(&self, other: &Compiled) -> bool {
        self.lowered.merge_signature() == other.lowered.merge_signature()
    }

    /// The nodes (one bit each) whose filters may change beyond a node event's dependents
    /// when the rules do not merge as in `old` ([`crate::lower::regrouped`]); `None` when
    /// what `*` means differs too. `to_new` maps `old`'s node ids to this compile's.
    /// With them, each of `old`'s rule items' partner here ([`crate::lower::pair_by_rule`]).
    pub(crate) fn regrouped(
        &self,
        old: &Compiled,
        to_new: &[u32],
    ) -> Option<(Vec<u64>, Vec<Option<u32>>)> {
        if !self.lowered.same_star(&old.lowered) {
            return None;
        }
        let pair = crate::lower::pair_by_rule(&old.lowered, &self.lowered);
        let bits = crate::lower::regrouped(
            (&old.lowered, &old.table),
            (&self.lowered, &self.table),
            to_new,
            &pair,
        );
        Some((bits, pair))
    }

    /// [`Compiled::merges_like`], except what `*` means (which lists every subnet route).
    pub(crate) fn slots_like(&self, other: &Compiled) -> bool {
        self.lowered.merge_signature().0 == other.lowered.merge_signature().0
    }

    /// The nodes (one bit each) that an item of `moves` may reach, here or in `old` (a compile
    /// of the same nodes, so node ids agree).
    pub(crate) fn moved_reach(
        &self,
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
    ) -> Vec<u64> {
        let flags = moves.any_moved();
        let mut bits = vec![0u64; self.table.len().div_ceil(64)];
        old.lowered.mark_reached(&old.table, &flags, &mut bits);
        self.lowered.mark_reached(&self.table, &flags, &mut bits);
        bits
    }

    /// The devices (by name) whose `autogroup:self` rule may claim another slot after the
    /// change `moves` describes: with self rules, the devices of every owner in
    /// [`crate::lower::SourceMoves`] (the changed nodes' owners, and the owners of the first
    /// address of every moved list, before and after). A self rule merges into the first
    /// item whose sources are exactly its owner's devices, so a list that becomes (or stops
    /// being) equal to a user's devices moves that user's self rule, wherever the list's
    /// item reaches.
    pub(crate) fn self_claimants(
        &self,
        moves: &crate::lower::SourceMoves,
    ) -> Vec<std::sync::Arc<str>> {
        if !self.lowered.has_self_items() {
            return Vec::new();
        }
        moves
            .owners()
            .filter_map(|login| self.table.devices.get(self.table.user(login)?.index()))
            .flatten()
            .filter_map(|&id| self.table.get(id).map(|n| n.name.clone()))
            .collect()
    }

    /// Node `name`'s [`PeerBases`] entry: how it looks as a peer without subnet routes.
    pub(crate) fn peer_base(&self, name: &str) -> Option<[u64; 4]> {
        self.peer_base_at(self.table.id(name)?)
    }

    /// Node `id`'s [`PeerBases`] entry.
    pub(crate) fn peer_base_at(&self, id: NodeId) -> Option<[u64; 4]> {
        Some(self.base_of(id, self.table.get(id)?))
    }

    /// Node `id`'s [`PeerBases`] entry.
    fn base_of(&self, id: NodeId, node: &NodeInfo) -> [u64; 4] {
        let own = self.families_missing(id);
        let wire = |viewer: u8| {
            let view = PeerView {
                node,
                routes: Vec::new(),
                hide: own | viewer,
            };
            json_hash(&(&*node.name, view.to_wire()))
        };
        bases_of(own, wire)
    }

    /// True when node `id` is the only server of every subnet route it serves.
    pub(crate) fn sole_server(&self, id: NodeId) -> bool {
        self.table.get(id).is_some_and(|node| {
            node.subnet_routes
                .iter()
                .all(|r| self.routes.get(r).is_some_and(|(_, e)| e.servers == [id]))
        })
    }

    /// The name of node `id`.
    pub(crate) fn name_of(&self, id: NodeId) -> Option<&std::sync::Arc<str>> {
        self.table.get(id).map(|n| &n.name)
    }

    /// The id of node `name` in this compile.
    pub(crate) fn id_of(&self, name: &str) -> Option<NodeId> {
        self.table.id(name)
    }

    /// The filter part of node `name`'s fingerprint.
    pub(crate) fn filter_fingerprint(&self, name: &str, cache: &mut HashCache) -> Option<u64> {
        let id = self.table.id(name)?;
        Some(cache.filter_hash(
            &self.lowered.filter_rules(&self.table, id),
            &self.lowered.srcs,
        ))
    }

    /// What this compile's SSH rules, patched from `old`'s (a node event), changed for the
    /// nodes that did not change: per node (ids here), the sum to add to its SSH
    /// fingerprint, and the nodes whose SSH fingerprint must be computed again
    /// ([`SshLowered::moves`]). `None` when the rules were not patched.
    pub(crate) fn ssh_moves(&self, old: &Compiled) -> Option<SshMoves> {
        let (simple, again) = self.ssh.moves(&old.ssh, &self.table)?;
        let piece = |ssh: &SshLowered, i: u32| {
            let mut sink = SshHashSink::default();
            ssh.visit_piece(i, &mut sink);
            sink.sum
        };
        // Summed into one array by node id as they are found: a list of (node, change)
        // pairs held 2.4 million entries (38 MiB) for a batch of 100 joins on `large`.
        let n = self.table.len();
        let (mut sums, mut summed) = (vec![0u64; n], vec![0u64; n.div_ceil(64)]);
        for i in simple {
            let delta = piece(&self.ssh, i).wrapping_sub(piece(&old.ssh, i));
            if delta != 0 {
                for &v in self.ssh.destinations(i) {
                    if let Some(sum) = sums.get_mut(v.index()) {
                        *sum = sum.wrapping_add(delta);
                        crate::bits::set_bit(&mut summed, v);
                    }
                }
            }
        }
        Some(SshMoves {
            sums,
            summed,
            again,
        })
    }

    /// The SSH part of node `name`'s fingerprint.
    pub(crate) fn ssh_fingerprint(&self, name: &str) -> Option<u64> {
        let id = self.table.id(name)?;
        Some(ssh_hash(&self.ssh, &self.table, id))
    }

    /// What a change to nodes that serve no route (called `old_names` in `old`, the compile
    /// before it, and `new_names` here) did to the rule items; `None` when the items do not
    /// pair ([`crate::lower::SourceMoves`]). `pair` pairs them through their rules when the
    /// event changed how rules merge ([`Compiled::regrouped`]).
    pub(crate) fn source_moves(
        &self,
        old: &Compiled,
        (old_names, new_names): (&[&str], &[&str]),
        pair: Option<&[Option<u32>]>,
    ) -> Option<crate::lower::SourceMoves> {
        let ids = |c: &Compiled, names: &[&str]| {
            let mut ids: Vec<NodeId> = names.iter().filter_map(|n| c.table.id(n)).collect();
            ids.sort_unstable();
            ids
        };
        let (before, after) = (ids(old, old_names), ids(self, new_names));
        let owners = |c: &Compiled, ids: &[NodeId]| -> Vec<String> {
            ids.iter()
                .filter_map(|&id| crate::lower::login(&c.table, c.table.get(id)?.owner))
                .map(str::to_string)
                .collect()
        };
        let mut all = owners(old, &before);
        all.extend(owners(self, &after));
        crate::lower::SourceMoves::new(
            (&old.lowered, &old.table),
            (&self.lowered, &self.table),
            crate::lower::ChangedNode { before, after },
            all,
            pair,
        )
    }

    /// After a policy change (records unchanged: `old` compiled the same node table), whether
    /// node `id`'s packet filter changed, as far as the items paired by content tell
    /// ([`crate::lower::Lowered::entry_count_verdict`]).
    pub(crate) fn entry_count_verdict(
        &self,
        id: NodeId,
        old: &Compiled,
        unpaired: &crate::lower::ChangedItems,
    ) -> crate::lower::Verdict {
        self.lowered
            .entry_count_verdict(&self.table, id, (&old.lowered, &old.table), unpaired)
    }

    /// Whether node `name`'s packet filter changed from `old` (the compile before) to this
    /// one, as far as `moves` tells.
    pub(crate) fn filter_verdict(
        &self,
        name: &str,
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
    ) -> crate::lower::Verdict {
        match (self.table.id(name), old.table.id(name)) {
            (Some(id), Some(old_id)) => self.filter_verdict_at((id, old_id), old, moves, false),
            _ => crate::lower::Verdict::Assemble,
        }
    }

    /// [`Compiled::filter_verdict`] of the node `id` here, `old_id` in `old` (the same node);
    /// for a node the regrouping reaches (`regrouped`), as far as the items without a partner
    /// tell ([`crate::lower::Lowered::regrouped_verdict`]).
    pub(crate) fn filter_verdict_at(
        &self,
        (id, old_id): (NodeId, NodeId),
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
        regrouped: bool,
    ) -> crate::lower::Verdict {
        let old = (&old.lowered, &old.table, old_id);
        match regrouped {
            true => self.lowered.regrouped_verdict(&self.table, id, old, moves),
            false => self.lowered.filter_verdict(&self.table, id, old, moves),
        }
    }
}

/// Per node, the hash of how it looks as a peer without subnet routes, indexed by the
/// families the viewer has no address of ([`Compiled::families_missing`]): 0 to a dual-stack
/// viewer, 1 to a viewer without IPv4 (the peer's IPv4 address hidden), 2 without IPv6, 3
/// neither.
pub(crate) type PeerBases = Vec<[u64; 4]>;

/// A node's [`PeerBases`] entry from `wire` (its hash as seen by a viewer missing these
/// families), computing each distinct view once.
fn bases_of(own: u8, wire: impl Fn(u8) -> u64) -> [u64; 4] {
    let mut out = [0; 4];
    let mut done: [Option<u64>; 4] = [None; 4];
    for (viewer, slot) in out.iter_mut().enumerate() {
        let key = usize::from(own) | viewer;
        let hash = match done.get(key).copied().flatten() {
            Some(h) => h,
            None => {
                let h = wire(u8::try_from(viewer).unwrap_or(0));
                if let Some(d) = done.get_mut(key) {
                    *d = Some(h);
                }
                h
            }
        };
        *slot = hash;
    }
    out
}

impl Compiled {
    /// A router's entry in `viewer`'s peers' part when it carries routes for the viewer: its
    /// entry differs from its base (`base`, the viewer's variant) only by those routes (the
    /// wire form is its base plus the routes, in its order). `None` when it carries none.
    fn carried(&self, viewer: NodeId, r: NodeId, base: u64) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let node = self.table.get(r)?;
        let mut carried = crate::hash::hasher();
        let mut any = false;
        for net in &node.subnet_routes {
            let shown = self.routes.get(net).is_some_and(|(i, _)| {
                self.peers.route_visible(i, viewer)
                    && self.peers.carrier(&self.table, &self.routes, i, viewer) == Some(r)
            });
            if shown {
                any = true;
                net.hash(&mut carried);
            }
        }
        any.then(|| {
            carried.write_u64(base);
            carried.finish()
        })
    }

    /// Node `peer`'s entry (base `base`, [`PeerBases`]) in the peers' part of node `viewer`'s
    /// fingerprint.
    pub(crate) fn peer_entry_at(&self, viewer: NodeId, peer: NodeId, base: [u64; 4]) -> u64 {
        self.entry_in(viewer, peer, &base)
    }

    /// [`Compiled::peer_entry_at`].
    fn entry_in(&self, viewer: NodeId, peer: NodeId, base: &[u64; 4]) -> u64 {
        let column = usize::from(self.families_missing(viewer));
        let plain = base.get(column).copied().unwrap_or(0);
        self.carried(viewer, peer, plain).unwrap_or(plain)
    }

    /// Node `id`'s peers' part after a change that left every route shown alike
    /// ([`Compiled::routes_shown_alike`]) and every peer's entry as it was (same node table,
    /// same `nodeAttrs`), from its part `before` in `old`: the entries of the peers it lost
    /// are taken out and those of the peers it gained put in. O(words of the peer sets +
    /// peers that changed), instead of a sum over every peer.
    pub(crate) fn patched_peers(
        &self,
        old: &Compiled,
        id: NodeId,
        bases: &[[u64; 4]],
        before: u64,
    ) -> Option<u64> {
        let (now, was) = (
            self.peers.peer_bits(&self.table, id),
            old.peers.peer_bits(&old.table, id),
        );
        if now.len() != was.len() || self.table.len() != old.table.len() {
            return None;
        }
        let entry = |p: NodeId| Some(self.entry_in(id, p, bases.get(p.index())?));
        let mut peers = before;
        for (i, (&n, &w)) in now.iter().zip(&was).enumerate() {
            for (mut bits, gained) in [(n & !w, true), (w & !n, false)] {
                while bits != 0 {
                    let p = NodeId::new(i * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                    let e = entry(p)?;
                    peers = match gained {
                        true => peers.wrapping_add(e),
                        false => peers.wrapping_sub(e),
                    };
                }
            }
        }
        Some(peers)
    }

    /// The names of the servers of the routes that hold an address of `set` (sorted, each
    /// once).
    pub(crate) fn servers_over(&self, set: &crate::addrset::AddrSet) -> Vec<std::sync::Arc<str>> {
        let mut out: Vec<std::sync::Arc<str>> = routes_over(&self.routes, set)
            .flat_map(|entry| entry.servers.iter())
            .filter_map(|&s| self.table.get(s).map(|n| n.name.clone()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The servers of every subnet route node `name` serves, by name (itself included).
    pub(crate) fn route_servers(&self, name: &str) -> Vec<std::sync::Arc<str>> {
        let Some(node) = self.table.id(name).and_then(|id| self.table.get(id)) else {
            return Vec::new();
        };
        let mut out: Vec<std::sync::Arc<str>> = node
            .subnet_routes
            .iter()
            .filter_map(|net| self.routes.get(net))
            .flat_map(|(_, entry)| entry.servers.iter())
            .filter_map(|&s| self.table.get(s).map(|n| n.name.clone()))
            .collect();
        out.push(node.name.clone());
        out.sort_unstable();
        out.dedup();
        out
    }

    /// [`PeerBases`] of every node, by node id.
    pub(crate) fn peer_bases(&self) -> PeerBases {
        self.table
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| self.base_of(NodeId::new(i), node))
            .collect()
    }

    /// The fingerprint of node `name` (`bases`: each node's [`PeerBases`] entry in this
    /// compile).
    ///
    /// The peers' part is a sum of one hash per peer (its name and wire form), so it does not
    /// depend on node ids (which shift when nodes join or leave) and costs one addition per
    /// peer; routers, whose routes depend on the viewer, are hashed one by one.
    pub(crate) fn fingerprint(
        &self,
        name: &str,
        bases: &[[u64; 4]],
        cache: &mut HashCache,
    ) -> Option<Fingerprint> {
        self.fingerprint_parts(name, bases, cache, true)
    }

    /// [`Compiled::fingerprint`], the filter part left 0 (not computed) unless `filter`.
    pub(crate) fn fingerprint_parts(
        &self,
        name: &str,
        bases: &[[u64; 4]],
        cache: &mut HashCache,
        filter: bool,
    ) -> Option<Fingerprint> {
        let view = self.view(name, filter)?;
        let viewer = view.id;
        let column = usize::from(self.families_missing(viewer));
        let base = |p: NodeId| {
            bases
                .get(p.index())
                .and_then(|b| b.get(column))
                .copied()
                .unwrap_or(0)
        };
        let mut peers: u64 = 0;
        // One addition per peer (tens of thousands per node on `large`): indexed directly.
        for (word, chunk) in view.peers.iter().zip(bases.chunks(64)) {
            let mut w = *word;
            while w != 0 {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                let entry = chunk.get(b).and_then(|e| e.get(column)).copied();
                peers = peers.wrapping_add(entry.unwrap_or(0));
            }
        }
        for &r in &self.table.routers {
            if !crate::bits::bit(&view.peers, r) {
                continue;
            }
            if let Some(carried) = self.carried(viewer, r, base(r)) {
                peers = peers.wrapping_sub(base(r)).wrapping_add(carried);
            }
        }
        Some(Fingerprint {
            filter: match filter {
                true => cache.filter_hash(view.packet_filter_rules(), &self.lowered.srcs),
                false => 0,
            },
            ssh: ssh_hash(&self.ssh, &self.table, view.id),
            peers,
            caps: json_hash(&view.cap_map()),
            own: json_hash(&view.own_wire()),
        })
    }
}

/// How a node sees one peer.
#[derive(Debug)]
pub struct PeerView<'a> {
    node: &'a NodeInfo,
    routes: Vec<IpNet>,
    /// The families the viewer or the peer has no address of ([`HIDE_V4`], [`HIDE_V6`]:
    /// none assigned, or `disable-ipv4`): the peer's addresses of those families are left out.
    hide: u8,
}

impl PeerView<'_> {
    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The peer's addresses, IPv4 first, always two: a family the peer has no address of is
    /// given as that family's unspecified address (`0.0.0.0`, `::`), never a real address.
    /// Prefer [`PeerView::addrs`].
    pub fn addresses(&self) -> [IpAddr; 2] {
        self.node.ips_or_unspecified()
    }

    /// The addresses the peer has (one or two), IPv4 first, whether or not the viewer can
    /// use them (see [`PeerView::allowed_ips`]).
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.node.ips()
    }

    /// Subnet routes this peer carries for the viewing node.
    pub fn primary_routes(&self) -> &[IpNet] {
        &self.routes
    }

    /// True when the peer is an exit node (its exit routes are in its AllowedIPs).
    pub fn is_exit_node(&self) -> bool {
        self.node.exit
    }

    /// The peer's AllowedIPs for the viewing node: its addresses of the families both have
    /// (as the wire form), carried routes, exit routes.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.shown_addrs().into_iter().map(IpNet::from).collect();
        out.extend(self.routes.iter().copied());
        out.extend(
            self.node
                .served
                .iter()
                .filter(|r| routes::is_exit_route(r))
                .copied(),
        );
        out
    }

    /// The peer's addresses the viewer sees: those of the families both have.
    fn shown_addrs(&self) -> Vec<IpAddr> {
        self.node.addrs().filter(|ip| self.shows(ip)).collect()
    }

    /// True when the viewer sees the peer's address `ip` (both have its family).
    fn shows(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.hide & HIDE_V4 == 0,
            IpAddr::V6(_) => self.hide & HIDE_V6 == 0,
        }
    }

    /// The owned wire form.
    pub fn to_wire(&self) -> PeerOutput {
        // The same strings as `allowed_ips()` spelled out, without formatting the peer's own
        // addresses again (a map holds tens of thousands of peers).
        let text = |net: &IpNet| std::sync::Arc::<str>::from(net.to_string());
        let mut allowed_ips: Vec<std::sync::Arc<str>> = self
            .node
            .addrs()
            .zip(self.node.hosts.iter())
            .filter(|(ip, _)| self.shows(ip))
            .map(|(_, host)| host.clone())
            .collect();
        allowed_ips.extend(self.routes.iter().map(text));
        allowed_ips.extend(
            self.node
                .served
                .iter()
                .filter(|r| routes::is_exit_route(r))
                .map(text),
        );
        PeerOutput {
            allowed_ips,
            primary_routes: self.routes.iter().map(text).collect(),
            // Tailscale marks exit nodes as suggestible to every peer.
            cap_map: self.node.exit.then(|| {
                CapMap::from([("suggest-exit-node".to_string(), serde_json::Value::Null)])
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::sync::Arc;

    use super::*;

    const INVENTORY: &str = r#"{
        "users": [{"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["owner"]}],
        "nodes": [
            {"name": "laptop", "user": "odin@example.com", "tags": [],
             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
             "routable_ips": [], "approved_routes": []},
            {"name": "router", "user": null, "tags": ["tag:router"],
             "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
             "routable_ips": ["10.1.0.0/16"], "approved_routes": []}
        ],
        "registration_order": ["laptop", "router"],
        "tailnet": {"name": "odin@example.com"}
    }"#;

    fn compiled(policy: &str) -> Compiled {
        compiled_in(INVENTORY, policy)
    }

    fn compiled_in(inventory: &str, policy: &str) -> Compiled {
        let inventory = Inventory::from_json(inventory).unwrap();
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let (_, parsed) = aclc_policy::parse_str("policy", policy, &options);
        compile(&parsed.unwrap().policy, &inventory)
    }

    /// A rule whose sources resolve to nothing (a user without devices) keeps its item,
    /// vacant: no filter entry, no peer, and the same items as when the user has a device, so
    /// a node event that gives the user its first device (or takes its last) patches the
    /// per-node index instead of renumbering all of it.
    #[test]
    fn a_rule_without_sources_keeps_a_vacant_item() {
        let policy = r#"{"tagOwners": {"tag:router": ["odin@example.com"]},
            "acls": [{"action": "accept", "src": ["thor@example.com"], "dst": ["tag:router:80"]},
                     {"action": "accept", "src": ["odin@example.com"], "dst": ["tag:router:443"]}]}"#;
        let c = compiled(policy);
        let items = &c.lowered.items;
        assert_eq!(items.len(), 2);
        assert!(c.lowered.is_vacant(&items[0]) && !c.lowered.is_vacant(&items[1]));
        let router = c.node("router").unwrap();
        let rules = router.packet_filter_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].dst_ports[0].ports.first, 443);
        // The router peers with odin's laptop only (the vacant rule makes no peer).
        assert_eq!(router.peer_count(), 1);
        // With thor's device the same items, no longer vacant.
        let inventory = INVENTORY.replace(
            r#""roles": ["owner"]}],"#,
            r#""roles": ["owner"]}, {"id": 2, "name": "thor", "email": "thor@example.com", "roles": []}],"#,
        ).replace(
            r#""registration_order": ["laptop", "router"],"#,
            r#""registration_order": ["laptop", "router", "hammer"],"#,
        ).replace(
            r#"             "routable_ips": ["10.1.0.0/16"], "approved_routes": []}"#,
            r#"             "routable_ips": ["10.1.0.0/16"], "approved_routes": []},
            {"name": "hammer", "user": "thor@example.com", "tags": [],
             "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3",
             "routable_ips": [], "approved_routes": []}"#,
        );
        let with = compiled_in(&inventory, policy);
        assert!(crate::lower::same_items(&c.lowered, &with.lowered));
        assert!(!with.lowered.is_vacant(&with.lowered.items[0]));
        assert_eq!(with.node("router").unwrap().packet_filter_rules().len(), 2);
    }

    #[test]
    fn default_policy_allows_everything() {
        let c = compiled("{}");
        let laptop = c.node("laptop").unwrap();
        let rules = laptop.packet_filter_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(&*rules[0].dst_ports[0].ip, "*");
        assert!(rules[0].ip_proto.is_empty());
        assert_eq!(laptop.peer_count(), 1);
        assert!(c.node("nobody").is_none());
    }

    #[test]
    fn auto_approved_route_reaches_filters_and_peers() {
        let c = compiled(
            r#"{"tagOwners": {"tag:router": ["odin@example.com"]},
                "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
                "acls": [{"action": "accept", "src": ["odin@example.com"], "dst": ["10.1.2.0/24:22"]}]}"#,
        );
        let router = c.node("router").unwrap();
        assert_eq!(
            router.primary_routes(),
            ["10.1.0.0/16".parse::<IpNet>().unwrap()]
        );
        let rules = router.packet_filter_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(&*rules[0].dst_ports[0].ip, "10.1.2.0/24");
        assert_eq!(
            &*rules[0].src_ips,
            [
                Arc::<str>::from("100.64.0.1"),
                Arc::from("fd7a:115c:a1e0::1")
            ]
        );
        let laptop = c.node("laptop").unwrap();
        assert!(laptop.packet_filter_rules().is_empty());
        let peers: Vec<PeerView<'_>> = laptop.peers().collect();
        assert_eq!(peers.len(), 1);
        assert_eq!(
            peers[0].primary_routes(),
            ["10.1.0.0/16".parse::<IpNet>().unwrap()]
        );
        let off = compile_with_options(
            &aclc_policy::parse_str("p", r#"{"acls": []}"#, &Default::default())
                .1
                .unwrap()
                .policy,
            &Inventory::from_json(INVENTORY).unwrap(),
            &CompileOptions {
                auto_approve: false,
                ..CompileOptions::default()
            },
        );
        assert!(off.node("router").unwrap().primary_routes().is_empty());
    }

    fn parsed(policy: &str) -> (Policy, Inventory) {
        let inventory = Inventory::from_json(INVENTORY).unwrap();
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let (_, parsed) = aclc_policy::parse_str("policy", policy, &options);
        (parsed.unwrap().policy, inventory)
    }

    /// A deep IP set chain removing the router's subnet: the removed addresses are not
    /// granted, at a depth the old resolver gave up at (and resolved to nothing).
    #[test]
    fn deep_ipset_remove_is_not_granted() {
        let mut sets = vec![r#""ipset:l0": ["10.1.0.0/16"]"#.to_string()];
        for i in 1..40 {
            sets.push(format!(r#""ipset:l{i}": ["ipset:l{}"]"#, i - 1));
        }
        let policy = format!(
            r#"{{"tagOwners": {{"tag:router": ["odin@example.com"]}},
                "autoApprovers": {{"routes": {{"10.0.0.0/8": ["tag:router"]}}}},
                "ipsets": {{{}, "ipset:deep": ["10.0.0.0/8", "remove ipset:l39"]}},
                "grants": [{{"src": ["*"], "dst": ["ipset:deep"], "ip": ["*"]}}]}}"#,
            sets.join(",")
        );
        let c = compiled(&policy);
        assert!(c.refusal().is_none());
        let mut granted = 0;
        for view in c.nodes() {
            for rule in view.packet_filter_rules() {
                for dst in &rule.dst_ports {
                    let set = crate::addrset::parse_wire(&dst.ip).unwrap();
                    assert!(
                        !set.overlaps_net(&"10.1.0.0/16".parse().unwrap()),
                        "{}",
                        dst.ip
                    );
                    granted += 1;
                }
            }
        }
        // Nobody holds what is left of 10.0.0.0/8 either: the set is not `*` or empty by
        // accident, it is exactly 10.0.0.0/16 and 10.2.0.0-10.255.255.255.
        assert_eq!(granted, 0);
        let set = c.table.ipsets.get("ipset:deep").unwrap();
        let texts: Vec<&str> = set.pieces.iter().map(|p| &*p.text).collect();
        assert_eq!(texts, ["10.0.0.0/16", "10.2.0.0-10.255.255.255"]);
        // The router serves exactly the removed subnet: it receives nothing.
        assert!(c.node("router").unwrap().packet_filter_rules().is_empty());
    }

    /// An IP set whose `remove` names an undefined host (validation skipped) is refused; the
    /// infallible entry point then grants nothing rather than the unreduced set.
    #[test]
    fn unknown_entry_refused_and_compile_fails_closed() {
        let (mut policy, inventory) = parsed(
            r#"{"hosts": {"lab": "10.1.0.0/16"},
                "ipsets": {"ipset:s": ["10.0.0.0/8", "remove lab"]},
                "grants": [{"src": ["*"], "dst": ["ipset:s"], "ip": ["*"]}]}"#,
        );
        policy.hosts.clear();
        let err = try_compile(&policy, &inventory).unwrap_err();
        assert_eq!(err.kind, crate::CompileErrorKind::UnresolvedIpSetEntry);
        assert_eq!(err.to_diagnostic().code, "aclc::unresolved_ipset_entry");
        let span = err.span.unwrap();
        assert!(span.end > span.start);
        let c = compile(&policy, &inventory);
        assert_eq!(c.refusal(), Some(&err));
        for view in c.nodes() {
            assert!(view.packet_filter_rules().is_empty());
            assert_eq!(view.peer_count(), 0);
        }
    }

    #[test]
    fn budget_refuses_with_the_rule_location() {
        let text = r#"{"grants": [
                {"src": ["*"], "dst": ["*"], "ip": ["tcp:22"]},
                {"src": ["*"], "dst": ["*"], "ip": ["tcp:80", "tcp:443", "tcp:8080"]}]}"#;
        let (policy, inventory) = parsed(text);
        let mut options = CompileOptions::default();
        options.limits.max_rule_entries = 8;
        let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
        assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
        let grants = &policy.grants.as_ref().unwrap().value;
        assert_eq!(err.span, Some(grants[1].span));
        options.limits = CompileLimits::default();
        assert!(try_compile_with_options(&policy, &inventory, &options).is_ok());

        let (policy, inventory) = parsed(
            r#"{"ipsets": {"ipset:a": ["10.0.0.1", "10.0.0.3", "10.0.0.5"],
                           "ipset:b": ["ipset:a", "10.0.0.7"]},
                "grants": [{"src": ["*"], "dst": ["ipset:b"], "ip": ["*"]}]}"#,
        );
        options.limits.max_address_ranges = 6;
        let err = try_compile_with_options(&policy, &inventory, &options).unwrap_err();
        assert_eq!(err.kind, crate::CompileErrorKind::BudgetExceeded);
        assert!(err.span.is_some());
        assert_eq!(err.to_diagnostic().code, "aclc::compile_budget_exceeded");
    }

    #[test]
    fn wire_output_round_trips() {
        let c = compiled(
            r#"{"grants": [{"src": ["*"], "dst": ["tag:router"], "ip": ["tcp:443", "udp:53"]}],
                            "tagOwners": {"tag:router": ["odin@example.com"]}}"#,
        );
        let wire = c.node("router").unwrap().to_wire();
        assert_eq!(wire.packet_filter_rules.len(), 2, "one rule per protocol");
        let text = serde_json::to_string(&wire).unwrap();
        let back: NodeOutput = serde_json::from_str(&text).unwrap();
        assert_eq!(back, wire);
    }
}
