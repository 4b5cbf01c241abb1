//! Routes: which advertised routes are approved (the inventory's approvals plus those
//! `autoApprovers` grants), which nodes are exit nodes, and which router is primary for each
//! subnet route (the oldest registered of its approved advertisers).

use std::collections::{BTreeMap, HashMap};

use aclc_policy::model::{Policy, Selector};
use ipnet::IpNet;

use crate::inventory::Inventory;
use crate::nodes::{NodeId, NodeTable};
use crate::resolve::{Resolver, Target};

/// True for `0.0.0.0/0` and `::/0`.
pub(crate) fn is_exit_route(net: &IpNet) -> bool {
    net.prefix_len() == 0
}

/// Who `autoApprovers` approves for what, resolved once against a node table.
pub(crate) struct Approvers {
    exit: Vec<NodeId>,
    service_vips: HashMap<IpNet, Vec<NodeId>>,
    /// Each `routes` prefix (masked) and the approvers of each entry with that prefix.
    routes: HashMap<IpNet, Vec<Vec<NodeId>>>,
    /// The prefix lengths of `routes`, per family (IPv4, IPv6), ascending: a route is looked
    /// up at each of them, not tested against every prefix (O(routes x prefixes) was 25 s for
    /// a node advertising 80,000 routes against as many prefixes).
    lengths: [Vec<u8>; 2],
}

/// A list of routes to ask membership of: scanned when short, hashed when long (a node
/// advertising 80,000 routes, each looked up in its 80,000 approved ones, took 6.5 s).
pub(crate) enum RouteSet<'a> {
    Short(&'a [IpNet]),
    Long(std::collections::HashSet<&'a IpNet>),
}

impl<'a> RouteSet<'a> {
    /// Lists up to this long are scanned.
    const SHORT: usize = 16;

    pub(crate) fn new(routes: &'a [IpNet]) -> RouteSet<'a> {
        if routes.len() <= Self::SHORT {
            RouteSet::Short(routes)
        } else {
            RouteSet::Long(routes.iter().collect())
        }
    }

    pub(crate) fn contains(&self, route: &IpNet) -> bool {
        match self {
            RouteSet::Short(list) => list.contains(route),
            RouteSet::Long(set) => set.contains(route),
        }
    }
}

impl Approvers {
    /// The approvers of `policy`, resolved against `table`.
    pub(crate) fn new(policy: &Policy, table: &NodeTable) -> Approvers {
        let mut resolver = Resolver::compiling(policy, table);
        let mut matches = |selectors: &[Selector]| -> Vec<NodeId> {
            let mut out: Vec<NodeId> = selectors
                .iter()
                .filter_map(|s| match resolver.resolve(s) {
                    Target::Nodes(ids) => Some(ids),
                    _ => None,
                })
                .flat_map(|ids| ids.iter().copied().collect::<Vec<_>>())
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        };
        let approvers = &policy.auto_approvers;
        let exit = matches(&approvers.exit_node);
        // A service's addresses are approved for a host that `autoApprovers.services` lists
        // for that service (and by no route approver).
        let mut service_vips: HashMap<IpNet, Vec<NodeId>> = HashMap::new();
        for svc in &table.services {
            let hosts: Vec<NodeId> = approvers
                .services
                .iter()
                .filter(|a| svc.keyed_by(&a.service.value))
                .flat_map(|a| matches(&a.approvers))
                .collect();
            for vip in &svc.vips {
                let entry = service_vips.entry(*vip).or_default();
                entry.extend(hosts.iter().copied());
                entry.sort_unstable();
            }
        }
        let mut routes: HashMap<IpNet, Vec<Vec<NodeId>>> = HashMap::new();
        let mut lengths: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for r in &approvers.routes {
            let prefix = r.prefix.value.trunc();
            routes
                .entry(prefix)
                .or_default()
                .push(matches(&r.approvers));
            if let Some(list) = lengths.get_mut(usize::from(prefix.addr().is_ipv6())) {
                list.push(prefix.prefix_len());
            }
        }
        for list in &mut lengths {
            list.sort_unstable();
            list.dedup();
        }
        Approvers {
            exit,
            service_vips,
            routes,
            lengths,
        }
    }

    /// True if `autoApprovers` approves `route` for node `id` (were it to advertise it): an
    /// exit route when the node matches `exitNode` (listing `0.0.0.0/0` under `routes` does
    /// not approve it), a service address when it matches that service's approvers, any other
    /// route when it lies inside a `routes` prefix whose approvers match the node.
    pub(crate) fn approves(&self, id: NodeId, route: &IpNet) -> bool {
        if let Some(hosts) = self.service_vips.get(route) {
            hosts.binary_search(&id).is_ok()
        } else if is_exit_route(route) {
            self.exit.binary_search(&id).is_ok()
        } else {
            let lengths = self
                .lengths
                .get(usize::from(route.addr().is_ipv6()))
                .map_or(&[][..], Vec::as_slice);
            lengths
                .iter()
                .take_while(|&&len| len <= route.prefix_len())
                .filter_map(|&len| IpNet::new(route.addr(), len).ok())
                .filter_map(|outer| self.routes.get(&outer.trunc()))
                .flatten()
                .any(|nodes| nodes.binary_search(&id).is_ok())
        }
    }
}

/// The nodes that may advertise a route: [`NodeTable::with_routes`] when known, else every
/// node.
fn route_nodes(table: &NodeTable) -> Vec<NodeId> {
    match &table.with_routes {
        Some(list) => list.clone(),
        None => (0..table.nodes.len()).map(NodeId::new).collect(),
    }
}

/// The advertised routes `autoApprovers` approves ([`Approvers::approves`]), for each node
/// with some, by id (ascending).
pub(crate) fn auto_approvals(policy: &Policy, table: &NodeTable) -> Vec<(NodeId, Vec<IpNet>)> {
    let approvers = Approvers::new(policy, table);
    route_nodes(table)
        .into_iter()
        .filter_map(|id| {
            let node = table.nodes.get(id.index())?;
            let approved: Vec<IpNet> = node
                .advertised
                .iter()
                .filter(|route| approvers.approves(id, route))
                .copied()
                .collect();
            (!approved.is_empty()).then_some((id, approved))
        })
        .collect()
}

/// Settle each node's served routes: advertised and approved (by the inventory, or by
/// `auto` when given, [`auto_approvals`]), split into subnet and exit routes. Only the nodes
/// that advertise or serve a route are visited when the table knows them; it knows them
/// afterwards.
pub(crate) fn apply(table: &mut NodeTable, auto: Option<&[(NodeId, Vec<IpNet>)]>) {
    let mut routers = Vec::new();
    let mut exits = Vec::new();
    let mut with_routes = Vec::new();
    let visit = route_nodes(table);
    #[cfg(debug_assertions)]
    if table.with_routes.is_some() {
        let all: Vec<NodeId> = (0..table.nodes.len())
            .map(NodeId::new)
            .filter(|id| table.nodes.get(id.index()).is_some_and(|n| n.has_routes()))
            .collect();
        debug_assert_eq!(visit, all, "the nodes a table knows to have routes");
    }
    for i in visit {
        let Some(node) = table.nodes.get_mut(i.index()) else {
            continue;
        };
        let extra = auto.and_then(|a| {
            a.binary_search_by_key(&i, |(id, _)| *id)
                .ok()
                .and_then(|k| a.get(k))
                .map(|(_, routes)| routes)
        });
        let mut served: Vec<IpNet> = Vec::new();
        {
            let approved = RouteSet::new(&node.approved);
            let extra = extra.map(|e| RouteSet::new(e));
            // Repeated advertisements are served once: found by a scan of the few served so
            // far, or through a set when the node advertises many.
            let mut seen = (node.advertised.len() > 16).then(std::collections::HashSet::new);
            for route in &node.advertised {
                let ok =
                    approved.contains(route) || extra.as_ref().is_some_and(|e| e.contains(route));
                let new = match seen.as_mut() {
                    Some(seen) => seen.insert(*route),
                    None => !served.contains(route),
                };
                if ok && new {
                    served.push(*route);
                }
            }
        }
        // Written only where it changes (the other fields derive from `served`, and a new
        // record's are those of no route served): a patched table shares its other nodes.
        if node.served != served {
            let node = std::sync::Arc::make_mut(node);
            node.subnet_routes = served
                .iter()
                .filter(|r| !is_exit_route(r))
                .copied()
                .collect();
            node.exit_v4 = served
                .iter()
                .any(|r| is_exit_route(r) && r.addr().is_ipv4());
            node.exit_v6 = served
                .iter()
                .any(|r| is_exit_route(r) && r.addr().is_ipv6());
            node.exit = node.exit_v4 || node.exit_v6;
            node.served = served;
        }
        if !node.subnet_routes.is_empty() {
            routers.push(i);
        }
        if node.exit {
            exits.push(i);
        }
        if node.has_routes() {
            with_routes.push(i);
        }
    }
    table.routers = routers;
    table.exits = exits;
    table.with_routes = Some(with_routes);
    // Built again on first use, from the routes as they now are.
    table.route_index = std::sync::OnceLock::new();
}

/// Every subnet route served in the tailnet and who serves it.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// Distinct subnet routes, sorted.
    pub(crate) routes: Vec<RouteEntry>,
    by_net: HashMap<IpNet, usize>,
}

/// One subnet route.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    /// The prefix.
    pub(crate) net: IpNet,
    /// Its servers, oldest registration first (then by name); the first is the primary.
    pub(crate) servers: Vec<NodeId>,
}

impl RouteTable {
    /// The routes of a table whose routes were settled by [`apply`].
    pub(crate) fn new(table: &NodeTable) -> RouteTable {
        let mut servers: BTreeMap<IpNet, Vec<NodeId>> = BTreeMap::new();
        for &id in &table.routers {
            if let Some(node) = table.get(id) {
                for route in &node.subnet_routes {
                    servers.entry(*route).or_default().push(id);
                }
            }
        }
        let routes: Vec<RouteEntry> = servers
            .into_iter()
            .map(|(net, mut servers)| {
                // Node ids follow names, so sorting by (rank, id) breaks rank ties by name; an
                // offline server (known only to the engine) comes after every online one.
                servers.sort_by_key(|&id| {
                    (
                        table.get(id).is_none_or(|n| n.offline),
                        table.registration_rank(id),
                        id,
                    )
                });
                RouteEntry { net, servers }
            })
            .collect();
        let by_net = routes.iter().enumerate().map(|(i, r)| (r.net, i)).collect();
        RouteTable { routes, by_net }
    }

    /// True when both tables list the same routes with the same servers in the same order
    /// (so the same primaries): what a node's online state decides.
    pub(crate) fn same_servers(&self, other: &RouteTable) -> bool {
        self.routes.len() == other.routes.len()
            && self
                .routes
                .iter()
                .zip(&other.routes)
                .all(|(a, b)| a.net == b.net && a.servers == b.servers)
    }

    /// The entry of a route.
    pub(crate) fn get(&self, net: &IpNet) -> Option<(usize, &RouteEntry)> {
        let i = *self.by_net.get(net)?;
        Some((i, self.routes.get(i)?))
    }

    /// The primary router of a route.
    pub(crate) fn primary(&self, net: &IpNet) -> Option<NodeId> {
        self.get(net).and_then(|(_, r)| r.servers.first().copied())
    }
}

/// The routes `autoApprovers` approves, per node name (nodes with none are left out), in the
/// order each node advertises them. In Tailscale's recordings these are exactly the routes
/// the control plane approved, so a control server can call this when a node advertises
/// routes and store the result as the node's approvals.
pub fn auto_approved_routes(
    policy: &Policy,
    inventory: &Inventory,
) -> BTreeMap<String, Vec<IpNet>> {
    let table = NodeTable::new(inventory);
    auto_approvals(policy, &table)
        .into_iter()
        .filter_map(|(id, routes)| Some((table.nodes.get(id.index())?.name.to_string(), routes)))
        .collect()
}
