//! The access diff (`aclc diff --inventory`): what a policy change grants and removes on a
//! tailnet, compiled old and new against the same inventory and compared node by node —
//! network access, SSH access, visible peers and routes, node capabilities and application
//! capabilities between nodes — grouped for
//! people (the same sources gaining the same ports on several nodes is one change) and
//! pointing at the rules responsible.
//!
//! Cost: both compiles, then the two lowerings compared item by item (`touched`); only the
//! nodes a changed item or SSH rule reaches are compared (packet filter, SSH rules, peers,
//! capabilities), and of those only the ones whose filter or SSH rules differ are swept (see
//! `network` and `ssh`), so a small change costs little beyond the two compiles.

mod network;
mod ports;
mod ssh;
mod touched;

pub(crate) use touched::{map_touched, MAP_PEERS, MAP_RULES, MAP_SSH};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use aclc_policy::model::Policy;
use aclc_policy::{Source, Span};
use ipnet::IpNet;
use serde::Serialize;

use crate::compiled::Compiled;
use crate::policytest::{explain_with, NetRules, NetworkQuery};
use crate::wire::{FilterRule, Strings};
use network::{AddrTable, Atom, Dest};
use ports::PortSet;

/// Network changes by (gained, sources, protocol, ports): the destinations.
type NetAtoms = HashMap<(bool, network::Source, u8, PortSet), Vec<(u32, Dest)>>;
/// SSH changes by (gained, sources, login, outcome): the nodes.
type SshAtoms = HashMap<(bool, Vec<(u32, u32)>, String, ssh::Outcome), Vec<u32>>;
/// Network changes by (gained, sources, ports, destinations): the protocols.
type MergedNet = BTreeMap<(bool, network::Source, PortSet, Vec<(u32, Dest)>), Vec<u8>>;

/// How much detail to keep.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Node names listed per change (all are counted). Default 20.
    pub max_names: usize,
    /// Changes listed per list (`gained`, `lost`), largest first; the rest are counted.
    /// Default 1000.
    pub max_changes: usize,
    /// Changes whose responsible rules are looked up (each costs an `explain`), per list.
    /// Default 200.
    pub max_attributed: usize,
    /// Threads comparing nodes; 0 (the default): one per core, at most 8.
    pub threads: usize,
    /// Compare every node in full instead of only those a changed rule reaches (the
    /// reference the fast path is tested against). Default false.
    pub exhaustive: bool,
    /// On a node serving routes, the most (filter entry, route piece) pairs its destinations
    /// are keyed by; past it, routes are keyed whole (which may report a change that is
    /// none, never miss one). Default 100,000.
    pub route_piece_budget: usize,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            max_names: 20,
            max_changes: 1000,
            max_attributed: 200,
            threads: 0,
            exhaustive: false,
            route_piece_budget: network::PIECE_BUDGET,
        }
    }
}

/// One side of a diff: the policy, where it came from, and what it compiled to.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Its text (for rule positions).
    pub source: &'a Source,
    /// It, compiled against the inventory.
    pub compiled: &'a Compiled,
}

/// What changed in access between two compiles of the same inventory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessDiff {
    /// Network access: (sources, destinations, protocol, ports).
    pub network: Changes<NetworkChange>,
    /// SSH access: (sources, nodes, login, local user, action).
    pub ssh: Changes<SshChange>,
    /// Peers a node sees, and the routes it reaches through them.
    pub peers: Changes<PeerChange>,
    /// Node capabilities (`cap_map` entries).
    pub capabilities: Changes<CapChange>,
    /// Application capabilities between nodes (the `CapGrant` rules of app grants).
    pub apps: Changes<AppChange>,
}

impl AccessDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.ssh.is_empty()
            && self.peers.is_empty()
            && self.capabilities.is_empty()
            && self.apps.is_empty()
    }
}

/// Gains and losses of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Changes<T> {
    /// What NEW allows and OLD did not.
    pub gained: Vec<T>,
    /// What OLD allowed and NEW does not.
    pub lost: Vec<T>,
    /// Gains not listed (beyond [`DiffOptions::max_changes`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub gained_omitted: usize,
    /// Losses not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_omitted: usize,
}

impl<T> Default for Changes<T> {
    fn default() -> Changes<T> {
        Changes {
            gained: Vec::new(),
            lost: Vec::new(),
            gained_omitted: 0,
            lost_omitted: 0,
        }
    }
}

impl<T> Changes<T> {
    /// True when nothing was gained or lost.
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty()
            && self.lost.is_empty()
            && self.gained_omitted == 0
            && self.lost_omitted == 0
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Some nodes: the first names (sorted) and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nodes {
    /// Names, sorted, at most [`DiffOptions::max_names`].
    pub names: Vec<String>,
    /// How many.
    pub count: usize,
}

/// A rule responsible for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The policy file.
    pub file: String,
    /// 1-based line of the rule's start.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The rule as written, on one line (long rules cut with `…`).
    pub text: String,
    /// Its position in the file (not serialised).
    #[serde(skip)]
    pub span: Span,
}

/// A change of network access.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkChange {
    /// The sources: nodes, or an address range that holds no node (as written).
    pub src: Nodes,
    /// The destinations: nodes, or `PREFIX via NODE` for a route a node serves.
    pub dst: Nodes,
    /// The protocols, comma-separated: `tcp`, `udp`, `icmp`, `ipv6-icmp`, `sctp` or a
    /// protocol number (TCP and UDP first).
    pub proto: String,
    /// Ports (`22`, `80-89,443`, `*`).
    pub ports: String,
    /// `ipv4` or `ipv6` when the change is over that family only: the sources' addresses it
    /// covers are all of it, though some source and some destination also have an address of
    /// the other (an IPv4-only host alias); absent when it covers both, or the nodes leave
    /// no choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The selectors of the responsible rules' sources (as written).
    pub src_selectors: Vec<String>,
    /// The selectors of the responsible rules' destinations (as written).
    pub dst_selectors: Vec<String>,
    /// The rules responsible: in NEW for a gain, in OLD for a loss.
    pub rules: Vec<RuleRef>,
}

/// A change of SSH access.
#[derive(Debug, Clone, Serialize)]
pub struct SshChange {
    /// The connecting nodes.
    pub src: Nodes,
    /// The nodes logged in to.
    pub dst: Nodes,
    /// The login asked for (`*`: any login no rule names).
    pub user: String,
    /// The local user it maps to.
    pub local_user: String,
    /// `accept` or `check`.
    pub action: String,
    /// The rule that decides: in NEW for a gain, in OLD for a loss.
    pub rules: Vec<RuleRef>,
}

/// A change of what nodes see: a peer, or a route through a peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerChange {
    /// The nodes that see (or stop seeing) it.
    pub nodes: Nodes,
    /// The peer.
    pub peer: String,
    /// A route reached through the peer; absent for the peer itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// A change of a node capability.
#[derive(Debug, Clone, Serialize)]
pub struct CapChange {
    /// The nodes.
    pub nodes: Nodes,
    /// The capability.
    pub capability: String,
    /// Its value (a changed value is the old one lost and the new one gained).
    pub value: serde_json::Value,
}

/// A change of an application capability that sources hold on destinations (an app grant's
/// `CapGrant`: what a Kubernetes operator, Taildrive or a tsnet server reads).
#[derive(Debug, Clone, Serialize)]
pub struct AppChange {
    /// The sources: nodes, or the `SrcIPs` as written when no node holds them.
    pub src: Nodes,
    /// The destinations: nodes, or `PREFIXES via NODE` for a grant on a route it serves.
    pub dst: Nodes,
    /// The capability.
    pub capability: String,
    /// Its value (a changed value is the old one lost and the new one gained).
    pub value: serde_json::Value,
    /// The app grants naming the capability: in NEW for a gain, in OLD for a loss.
    pub rules: Vec<RuleRef>,
}

/// Compare what `old` and `new` (compiled against the same inventory) give each node.
pub fn access_diff(old: Side<'_>, new: Side<'_>, options: &DiffOptions) -> AccessDiff {
    let names: Vec<&str> = new.compiled.node_names().collect();
    let index: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let table = AddrTable::new(
        names
            .iter()
            .map(|n| new.compiled.node_addresses(n).unwrap_or([unspecified(); 2])),
    );
    let len = u32::try_from(index.len() * 2).unwrap_or(u32::MAX);
    let mut routers = old.compiled.routers();
    routers.extend(new.compiled.routers());
    routers.sort_unstable();
    routers.dedup();
    // Routers shown to everyone exactly as before need no per-viewer look.
    let mut same_routes = HashMap::new();
    routers.retain(|&r| {
        !new.compiled
            .router_unchanged(old.compiled, r, &mut same_routes)
    });
    // Only nodes a changed item, rule, route or attribute reaches can differ.
    let touched = if options.exhaustive {
        touched::Touched::all(names.len())
    } else {
        touched::touched(old.compiled, new.compiled)
    };
    let work: Vec<u32> = touched
        .flags
        .iter()
        .enumerate()
        .filter(|(_, &f)| f != 0)
        .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    // Nodes are independent: split them between the cores, each thread with its own memos,
    // then merge (every list is sorted before it is shown, so the split never shows).
    let threads = match options.threads {
        0 => std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 8),
        n => n,
    }
    .min(work.len() / 64 + 1)
    .max(1);
    let chunk = work.len().div_ceil(threads).max(1);
    let scan = Scan {
        old,
        new,
        names: &names,
        table: &table,
        routers: &routers,
        flags: &touched.flags,
        len,
        piece_budget: options.route_piece_budget,
    };
    let partials: Vec<Partial> = if threads == 1 {
        vec![scan.run(&work)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks(chunk)
                .map(|part| {
                    let scan = &scan;
                    scope.spawn(move || scan.run(part))
                })
                .collect();
            handles
                .into_iter()
                // A panicking thread is a bug: carry it on rather than report its nodes as unchanged.
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut all = Partial::default();
    for part in partials {
        for (k, v) in part.net {
            all.net.entry(k).or_default().extend(v);
        }
        for (k, v) in part.ssh {
            all.ssh.entry(k).or_default().extend(v);
        }
        for (k, v) in part.peers {
            all.peers.entry(k).or_default().extend(v);
        }
        for (k, (value, v)) in part.caps {
            all.caps
                .entry(k)
                .or_insert_with(|| (value, Vec::new()))
                .1
                .extend(v);
        }
        for (k, (value, v)) in part.apps {
            all.apps
                .entry(k)
                .or_insert_with(|| (value, Vec::new()))
                .1
                .extend(v);
        }
    }
    let Partial {
        net,
        ssh,
        peers,
        caps,
        apps,
    } = all;
    let ctx = Ctx {
        names: &names,
        table: &table,
        options,
        rules: Default::default(),
    };
    AccessDiff {
        network: ctx.network(net, old, new),
        ssh: ctx.ssh(ssh, old, new),
        peers: ctx.finish(
            peers
                .into_iter()
                .map(|((gained, peer, route), nodes)| {
                    let size = nodes.len();
                    let change = PeerChange {
                        nodes: ctx.nodes(nodes.into_iter()),
                        peer,
                        route,
                    };
                    (gained, size, change)
                })
                .collect(),
        ),
        capabilities: ctx.finish(
            caps.into_iter()
                .map(|((gained, capability, _), (value, nodes))| {
                    let size = nodes.len();
                    let change = CapChange {
                        nodes: ctx.nodes(nodes.into_iter()),
                        capability,
                        value,
                    };
                    (gained, size, change)
                })
                .collect(),
        ),
        apps: ctx.apps(apps, old, new),
    }
}

fn unspecified() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
}

/// What one thread found, before grouping.
#[derive(Default)]
struct Partial {
    net: NetAtoms,
    ssh: SshAtoms,
    peers: BTreeMap<(bool, String, Option<String>), Vec<u32>>,
    caps: BTreeMap<(bool, String, String), (serde_json::Value, Vec<u32>)>,
    apps: AppAtoms,
}

/// Application capability changes by (gained, sources, capability, value): the value and
/// the destinations.
type AppAtoms =
    BTreeMap<(bool, network::Source, String, String), (serde_json::Value, Vec<(u32, Dest)>)>;

/// The inputs of the per-node comparison, shared by the threads.
struct Scan<'a> {
    old: Side<'a>,
    new: Side<'a>,
    names: &'a [&'a str],
    table: &'a AddrTable,
    routers: &'a [crate::nodes::NodeId],
    /// Per node, what may differ ([`touched`]).
    flags: &'a [u8],
    len: u32,
    /// [`DiffOptions::route_piece_budget`].
    piece_budget: usize,
}

impl Scan<'_> {
    /// Compare nodes `work` (indices into `names`, which are node ids), each in the parts its
    /// flags name.
    fn run(&self, work: &[u32]) -> Partial {
        let (old, new, table, len) = (self.old, self.new, self.table, self.len);
        let mut out = Partial::default();
        let mut memo = SameMemo::default();
        let mut placements = network::Placements::default();
        let mut ssh_placements = ssh::SshPlacements::default();
        for &i in work {
            let (Some(&name), Some(&flags)) =
                (self.names.get(i as usize), self.flags.get(i as usize))
            else {
                continue;
            };
            let id = crate::nodes::NodeId::new(i as usize);
            if flags & touched::NET != 0 {
                let (of, nf) = (old.compiled.filter_at(id), new.compiled.filter_at(id));
                if !same_rules(&of, &nf, &mut memo) {
                    let addresses = new
                        .compiled
                        .node_addresses(name)
                        .unwrap_or([unspecified(); 2]);
                    for Atom {
                        gained,
                        src,
                        dst,
                        proto,
                        ports,
                    } in network::diff_node(
                        (&of, &nf),
                        addresses,
                        (&zones_of(old.compiled, new.compiled, id), self.piece_budget),
                        table,
                        &mut placements,
                    ) {
                        out.net
                            .entry((gained, src, proto, ports))
                            .or_default()
                            .push((i, dst));
                    }
                    for atom in network::diff_apps(&of, &nf, addresses, table, &mut placements) {
                        let key = (
                            atom.gained,
                            atom.src,
                            atom.capability,
                            atom.value.to_string(),
                        );
                        out.apps
                            .entry(key)
                            .or_insert_with(|| (atom.value, Vec::new()))
                            .1
                            .push((i, atom.dst));
                    }
                }
            }
            if flags & touched::SSH != 0 {
                let (os, ns) = (
                    old.compiled.indexed_ssh_rules(name),
                    new.compiled.indexed_ssh_rules(name),
                );
                for atom in ssh::diff_node(&os, &ns, table, len, &mut ssh_placements) {
                    out.ssh
                        .entry((atom.gained, atom.src, atom.login, atom.outcome))
                        .or_default()
                        .push(i);
                }
            }
            if flags & touched::PEERS != 0 {
                let sides = [old.compiled, new.compiled];
                diff_peers(sides, id, i, self.routers, self.names, &mut out.peers);
            }
            if flags & touched::CAPS != 0 {
                let (oc, nc) = (old.compiled.cap_map_at(id), new.compiled.cap_map_at(id));
                if oc != nc {
                    for (gained, from, to) in [(false, &oc, &nc), (true, &nc, &oc)] {
                        for (cap, value) in from {
                            if to.get(cap) != Some(value) {
                                out.caps
                                    .entry((gained, cap.clone(), value.to_string()))
                                    .or_insert_with(|| (value.clone(), Vec::new()))
                                    .1
                                    .push(i);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// The routes node `id` serves in either compile: its subnet routes and, for an exit node,
/// `0.0.0.0/0` and `::/0` (a destination `*` covers them all).
fn zones_of(old: &Compiled, new: &Compiled, id: crate::nodes::NodeId) -> Vec<IpNet> {
    let mut zones = old.served_at(id);
    zones.extend(new.served_at(id));
    zones.sort_unstable();
    zones.dedup();
    zones
}

/// Peers (and routes through them) node `id` (index `i`) gained and lost between the
/// compiles `[old, new]`: the peer sets compared word by word, then, among peers in both,
/// only `routers` (the peers whose AllowedIPs vary with the viewer) looked at.
/// O(nodes / 64 + routers) per node.
fn diff_peers(
    [old, new]: [&Compiled; 2],
    id: crate::nodes::NodeId,
    i: u32,
    routers: &[crate::nodes::NodeId],
    names: &[&str],
    out: &mut BTreeMap<(bool, String, Option<String>), Vec<u32>>,
) {
    let (ob, nb) = (old.peer_bits_at(id), new.peer_bits_at(id));
    let routes = |p: &crate::PeerView<'_>| -> Vec<IpNet> {
        let mut r = p.primary_routes().to_vec();
        if p.is_exit_node() {
            r.extend(exit_routes());
        }
        r
    };
    let words = ob.len().max(nb.len());
    for w in 0..words {
        let (o, n) = (
            ob.get(w).copied().unwrap_or(0),
            nb.get(w).copied().unwrap_or(0),
        );
        let mut x = o ^ n;
        while x != 0 {
            let b = x.trailing_zeros() as usize;
            x &= x - 1;
            let peer = w * 64 + b;
            let gained = n & (1 << b) != 0;
            if let Some(name) = names.get(peer) {
                out.entry((gained, name.to_string(), None))
                    .or_default()
                    .push(i);
                // A router seen (or no longer seen) brings (or takes) its routes.
                let view = if gained { new } else { old };
                if let Some(p) = view.peer_view(id, crate::nodes::NodeId::new(peer)) {
                    for route in routes(&p) {
                        out.entry((gained, name.to_string(), Some(route.to_string())))
                            .or_default()
                            .push(i);
                    }
                }
            }
        }
    }
    for &r in routers {
        if !(crate::bits::bit(&ob, r) && crate::bits::bit(&nb, r)) {
            continue;
        }
        let (Some(a), Some(b)) = (old.peer_view(id, r), new.peer_view(id, r)) else {
            continue;
        };
        if a.primary_routes() == b.primary_routes() && a.is_exit_node() == b.is_exit_node() {
            continue;
        }
        let (ra, rb) = (routes(&a), routes(&b));
        for (gained, from, to) in [(false, &ra, &rb), (true, &rb, &ra)] {
            for route in from.iter().filter(|x| !to.contains(x)) {
                out.entry((gained, b.name().to_string(), Some(route.to_string())))
                    .or_default()
                    .push(i);
            }
        }
    }
}

/// Two packet filters are equal; source lists (shared between nodes within one compile) are
/// compared once per pair of lists, not once per node.
fn same_rules(a: &[FilterRule], b: &[FilterRule], memo: &mut SameMemo) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.dst_ports == y.dst_ports
                && x.ip_proto == y.ip_proto
                && x.cap_grant == y.cap_grant
                && x.src_bits == y.src_bits
                && memo.same(&x.src_ips, &y.src_ips)
        })
}

/// Memoised equality of source lists, by address; the lists are kept alive so an address is
/// never reused for a different list while it is a key.
#[derive(Default)]
struct SameMemo {
    seen: HashMap<(usize, usize), (bool, Strings, Strings)>,
}

impl SameMemo {
    fn same(&mut self, a: &Strings, b: &Strings) -> bool {
        let key = (a.as_ptr() as usize, b.as_ptr() as usize);
        if let Some(&(same, ..)) = self.seen.get(&key) {
            return same;
        }
        let same = a == b;
        self.seen.insert(key, (same, a.clone(), b.clone()));
        same
    }
}

fn exit_routes() -> [IpNet; 2] {
    [
        IpNet::V4(ipnet::Ipv4Net::default()),
        IpNet::V6(ipnet::Ipv6Net::default()),
    ]
}

/// The protocol's name as policies write it, or its number.
fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

/// Protocols in the order people list them: TCP, UDP, then the rest by number.
fn proto_rank(proto: u8) -> (u8, u8) {
    match proto {
        6 => (0, 0),
        17 => (1, 0),
        p => (2, p),
    }
}

/// Shared state for shaping the output.
struct Ctx<'a> {
    names: &'a [&'a str],
    table: &'a AddrTable,
    options: &'a DiffOptions,
    /// Each side's network rules for [`Ctx::attribute`] (old, new), built on first use.
    rules: [std::cell::OnceCell<NetRules>; 2],
}

impl Ctx<'_> {
    /// Node indices as a [`Nodes`] (sorted, de-duplicated, names capped).
    fn nodes(&self, nodes: impl Iterator<Item = u32>) -> Nodes {
        let mut v: Vec<u32> = nodes.collect();
        v.sort_unstable();
        v.dedup();
        Nodes {
            count: v.len(),
            names: v
                .iter()
                .take(self.options.max_names)
                .filter_map(|&i| self.names.get(i as usize).map(|n| n.to_string()))
                .collect(),
        }
    }

    /// The nodes at some address positions.
    fn positions(&self, runs: &[(u32, u32)]) -> Nodes {
        self.nodes(
            runs.iter()
                .flat_map(|&(a, b)| a..b)
                .filter_map(|p| self.table.node(p)),
        )
    }

    /// A change's sources: the nodes at their positions, or the text of addresses no node has.
    fn source(&self, src: &network::Source) -> Nodes {
        match src {
            network::Source::Nodes(runs) => self.positions(runs),
            network::Source::Text(t) => Nodes {
                names: vec![t.clone()],
                count: 1,
            },
        }
    }

    /// A change's destinations: each node by name, a route it serves as `RANGE via NODE`
    /// (sorted, without repeats, names capped).
    fn destinations(&self, dsts: &[(u32, Dest)]) -> Nodes {
        let mut labels: Vec<String> = dsts
            .iter()
            .filter_map(|(i, d)| {
                let name = self.names.get(*i as usize)?;
                Some(match d {
                    Dest::Node => name.to_string(),
                    Dest::Route(r) => format!("{r} via {name}"),
                })
            })
            .collect();
        labels.sort();
        labels.dedup();
        let count = labels.len();
        labels.truncate(self.options.max_names);
        Nodes {
            names: labels,
            count,
        }
    }

    /// `ipv4` or `ipv6` when a change's sources are addresses of that family only, though a
    /// source node and a destination node (its own addresses, not a route) both have one of
    /// the other ([`NetworkChange::family`]).
    fn one_family(&self, src: &network::Source, dsts: &[(u32, Dest)]) -> Option<String> {
        let network::Source::Nodes(runs) = src else {
            return None;
        };
        let (at, held) = self.table.run_families(runs);
        let other = match at {
            network::V4 => network::V6,
            network::V6 => network::V4,
            _ => return None,
        };
        let reachable = dsts
            .iter()
            .any(|(i, d)| matches!(d, Dest::Node) && self.table.families(*i) & other != 0);
        (held & other != 0 && reachable)
            .then(|| if at == network::V4 { "ipv4" } else { "ipv6" }.to_string())
    }

    /// A representative address (IPv4 if any) of some positions.
    fn sample(&self, runs: &[(u32, u32)]) -> Option<IpAddr> {
        let all = runs.iter().flat_map(|&(a, b)| a..b);
        let mut first = None;
        for p in all {
            let addr = self.table.addr(p)?;
            if addr.is_ipv4() {
                return Some(addr);
            }
            first.get_or_insert(addr);
        }
        first
    }

    /// Sort each direction largest first, keep the first `max_changes`, count the rest.
    fn finish<T>(&self, mut all: Vec<(bool, usize, T)>) -> Changes<T> {
        all.sort_by_key(|(_, size, _)| std::cmp::Reverse(*size));
        let mut out = Changes::default();
        for (gained, _, change) in all {
            let (list, omitted) = if gained {
                (&mut out.gained, &mut out.gained_omitted)
            } else {
                (&mut out.lost, &mut out.lost_omitted)
            };
            if list.len() < self.options.max_changes {
                list.push(change);
            } else {
                *omitted += 1;
            }
        }
        out
    }

    fn network(&self, atoms: NetAtoms, old: Side<'_>, new: Side<'_>) -> Changes<NetworkChange> {
        // Group destinations with the same (sources, protocol, ports), then protocols with
        // the same (sources, ports, destinations); a route is a destination of its own.
        let mut merged: MergedNet = BTreeMap::new();
        for ((gained, src, proto, ports), mut dsts) in atoms {
            dsts.sort();
            dsts.dedup();
            merged
                .entry((gained, src, ports, dsts))
                .or_default()
                .push(proto);
        }
        let mut out: Vec<(bool, usize, NetworkChange)> = Vec::new();
        let mut attributed = [0usize; 2];
        let mut sized: Vec<_> = merged
            .into_iter()
            .map(|((g, s, ports, dsts), mut protos)| {
                protos.sort_unstable_by_key(|p| proto_rank(*p));
                let n = match &s {
                    network::Source::Nodes(runs) => {
                        runs.iter().map(|&(a, b)| (b - a) as usize).sum::<usize>()
                    }
                    network::Source::Text(_) => 1,
                };
                let size = n.saturating_mul(dsts.len());
                (g, s, protos, ports, dsts, size)
            })
            .collect();
        sized.sort_by_key(|x| std::cmp::Reverse(x.5));
        for (gained, src, protos, ports, dsts, size) in sized {
            let proto = protos.first().copied().unwrap_or(6);
            let side = if gained { new } else { old };
            let slot = usize::from(gained);
            let mut rules = Vec::new();
            if attributed.get(slot).copied().unwrap_or(0) < self.options.max_attributed {
                if let Some(count) = attributed.get_mut(slot) {
                    *count += 1;
                }
                rules = self.attribute(side, slot, &src, &dsts, proto, &ports);
            }
            let (src_selectors, dst_selectors) = selectors(side.policy, &rules);
            out.push((
                gained,
                size,
                NetworkChange {
                    family: self.one_family(&src, &dsts),
                    src: self.source(&src),
                    dst: self.destinations(&dsts),
                    proto: protos
                        .iter()
                        .map(|&p| proto_name(p))
                        .collect::<Vec<_>>()
                        .join(","),
                    ports: ports.to_string(),
                    src_selectors,
                    dst_selectors,
                    rules,
                },
            ));
        }
        self.finish(out)
    }

    /// The rules of `side` (`slot` 0 old, 1 new) that allow one sample flow of a change (what
    /// `aclc explain` says).
    fn attribute(
        &self,
        side: Side<'_>,
        slot: usize,
        src: &network::Source,
        dsts: &[(u32, Dest)],
        proto: u8,
        ports: &PortSet,
    ) -> Vec<RuleRef> {
        let src_addr = match src {
            network::Source::Nodes(runs) => self.sample(runs),
            network::Source::Text(t) => network::ranges(t).first().map(|r| r.0),
        };
        let Some(src_addr) = src_addr else {
            return Vec::new();
        };
        let Some((i, dst)) = dsts.first() else {
            return Vec::new();
        };
        // A destination address of the source's family (a packet has one family), else any.
        let same = |ip: &IpAddr| ip.is_ipv4() == src_addr.is_ipv4();
        let dst_addr = match dst {
            Dest::Node => self
                .names
                .get(*i as usize)
                .and_then(|n| side.compiled.node_addresses(n))
                .and_then(|a| {
                    let ips: Vec<IpAddr> =
                        a.into_iter().filter(|ip| !ip.is_unspecified()).collect();
                    ips.iter().copied().find(same).or(ips.first().copied())
                }),
            Dest::Route(r) => {
                let ranges = network::ranges(r);
                ranges
                    .iter()
                    .find(|r| same(&r.0))
                    .or(ranges.first())
                    .map(|r| r.0)
            }
        };
        let Some(dst_addr) = dst_addr else {
            return Vec::new();
        };
        let host = match dst_addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let (dst, proto_text) = match proto {
            6 | 17 | 132 => (format!("{host}:{}", ports.first().unwrap_or(0)), proto),
            _ => (host, proto),
        };
        let proto_text = proto_name(proto_text);
        let query = NetworkQuery {
            src: &src_addr.to_string(),
            dst: &dst,
            proto: Some(&proto_text),
            src_posture_attrs: None,
        };
        let Some(rules) = self.rules.get(slot) else {
            return Vec::new();
        };
        let rules = rules.get_or_init(|| NetRules::new(side.policy, side.compiled));
        match explain_with(side.policy, side.compiled, Some(rules), &query) {
            Ok(e) => e
                .verdict
                .rules()
                .iter()
                .map(|&span| rule_ref(side.source, span))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn apps(&self, atoms: AppAtoms, old: Side<'_>, new: Side<'_>) -> Changes<AppChange> {
        let out = atoms
            .into_iter()
            .map(|((gained, src, capability, _), (value, dsts))| {
                let side = if gained { new } else { old };
                let src = self.source(&src);
                let dst = self.destinations(&dsts);
                let rules = side
                    .policy
                    .grants
                    .as_ref()
                    .map(|g| {
                        g.value
                            .iter()
                            .filter(|r| r.app.iter().any(|a| a.name.value == capability))
                            .map(|r| rule_ref(side.source, r.span))
                            .collect()
                    })
                    .unwrap_or_default();
                let size = src.count.saturating_mul(dst.count);
                let change = AppChange {
                    src,
                    dst,
                    capability,
                    value,
                    rules,
                };
                (gained, size, change)
            })
            .collect();
        self.finish(out)
    }

    fn ssh(&self, atoms: SshAtoms, old: Side<'_>, new: Side<'_>) -> Changes<SshChange> {
        let mut list: Vec<_> = atoms.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let out = list
            .into_iter()
            .map(|((gained, runs, login, outcome), dsts)| {
                let side = if gained { new } else { old };
                let rules = side
                    .policy
                    .ssh
                    .as_ref()
                    .and_then(|s| s.value.get(outcome.rule))
                    .map(|r| vec![rule_ref(side.source, r.span)])
                    .unwrap_or_default();
                let src = self.positions(&runs);
                let dst = self.nodes(dsts.into_iter());
                let size = src.count.saturating_mul(dst.count);
                (
                    gained,
                    size,
                    SshChange {
                        src,
                        dst,
                        user: login,
                        local_user: outcome.local_user,
                        action: outcome.action.to_string(),
                        rules,
                    },
                )
            })
            .collect();
        self.finish(out)
    }
}

/// The JSON document of a diff, as `aclc diff --format json` prints it: `changed`, the two
/// file names, the semantic diff under `policy` and, with an inventory, `network`, `ssh`,
/// `peers`, `capabilities` and `apps`, each with `gained` and `lost`. `changed` is access changed
/// (with an inventory) or the policy's meaning changed (without).
pub fn document(
    old: &Source,
    new: &Source,
    semantic: &aclc_policy::diff::PolicyDiff,
    access: Option<&AccessDiff>,
) -> serde_json::Value {
    let changed = match access {
        Some(access) => !access.is_empty(),
        None => !semantic.is_empty(),
    };
    let mut doc = serde_json::json!({
        "changed": changed,
        "old": old.name(),
        "new": new.name(),
        "policy": semantic,
    });
    if let (Some(access), Some(obj)) = (access, doc.as_object_mut()) {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(access) {
            obj.extend(fields);
        }
    }
    doc
}

/// Rule text longer than this is cut (with `…`).
const MAX_RULE_TEXT: usize = 160;

/// Where a rule is, and its text on one line.
pub fn rule_ref(source: &Source, span: Span) -> RuleRef {
    let at = source.line_col(span.start as usize);
    let text = aclc_policy::text::one_line(source.slice(span), MAX_RULE_TEXT);
    RuleRef {
        file: source.name().to_string(),
        line: at.line,
        column: at.column,
        text,
        span,
    }
}

/// The source and destination selectors (as written) of some `acls` / `grants` rules.
fn selectors(policy: &Policy, rules: &[RuleRef]) -> (Vec<String>, Vec<String>) {
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for rule in rules {
        if let Some(acl) = policy
            .acls
            .as_ref()
            .and_then(|a| a.value.iter().find(|r| r.span == rule.span))
        {
            src.extend(acl.src.iter().map(|s| s.text.clone()));
            dst.extend(acl.dst.iter().map(|d| d.text.clone()));
        } else if let Some(grant) = policy
            .grants
            .as_ref()
            .and_then(|g| g.value.iter().find(|r| r.span == rule.span))
        {
            src.extend(grant.src.iter().map(|s| s.text.clone()));
            dst.extend(grant.dst.iter().map(|s| s.text.clone()));
        }
    }
    for v in [&mut src, &mut dst] {
        v.sort();
        v.dedup();
    }
    (src, dst)
}
