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

mod external;
mod network;
mod ports;
mod ssh;
#[cfg(test)]
pub(crate) use ssh::decide_wire;
mod touched;

pub(crate) use touched::{map_touched, MAP_PEERS, MAP_RULES, MAP_SSH};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use aclc_policy::model::Policy;
use aclc_policy::{Source, Span};
use ipnet::IpNet;
use serde::Serialize;

use crate::compiled::Compiled;
use crate::policytest::{explain_with, NetRules, NetworkQuery, RECORDER_ACCESS};
use crate::wire::{FilterRule, Strings};
use network::{AddrTable, Atom, Dest};
use ports::PortSet;

mod context;
mod scan;

use context::*;
use scan::*;

/// Network changes by (gained, sources, protocol, ports): the destinations.
type NetAtoms = HashMap<(bool, network::Source, u8, PortSet), Vec<(u32, Dest)>>;
/// SSH changes by (gained, sources, login, outcome): the nodes.
type SshAtoms = HashMap<(bool, Vec<(u32, u32)>, String, ssh::Outcome), Vec<u32>>;
/// Network changes by (gained, sources, ports, destinations, the rules behind them by file
/// and place): the protocols, and those rules.
type MergedNet = BTreeMap<
    (
        bool,
        network::Source,
        PortSet,
        Vec<(u32, Dest)>,
        Vec<(String, Span)>,
    ),
    (Vec<u8>, Vec<RuleRef>),
>;

/// `explain` calls per change [`DiffOptions::max_attributed`] allows, on average.
const ATTRIBUTED_PER_CHANGE: usize = 16;

/// Destinations of one kind (nodes, routes) in a change up to which each one's rules are
/// looked up; past it, [`SAMPLED`] of them first.
const EXPLAINED_EACH: usize = 16;

/// Destinations looked up in a larger change, spread first to last: the change is theirs,
/// with every rule found behind one of them.
const SAMPLED: usize = 8;

/// The source positions (or one, for addresses that hold no node) of a change.
fn source_count(src: &network::Source) -> usize {
    match src {
        network::Source::Nodes(runs) => runs.iter().map(|&(a, b)| (b - a) as usize).sum(),
        network::Source::Text(_) => 1,
    }
}

/// How much detail to keep.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Node names listed per change (all are counted). Default 20.
    pub max_names: usize,
    /// Changes listed per list (`gained`, `lost`), largest first; the rest are counted.
    /// Default 1000.
    pub max_changes: usize,
    /// How many changes' responsible rules are looked up, per list, counted as 16 `explain`
    /// calls each: a change's destinations may owe it to different rules, so the rules behind
    /// each are looked up when they are few, else behind 8 of them spread out (every rule
    /// found named), largest changes first; destinations past the budget are listed without
    /// rules. Default 200.
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
    /// Rules naming another tailnet's groups or tags (declarative node sharing) added or
    /// removed: that tailnet's devices are not known here, so the access is not listed.
    pub external: Changes<ExternalChange>,
}

/// A rule naming another tailnet's group or tag, in one policy and not the other.
#[derive(Debug, Clone, Serialize)]
pub struct ExternalChange {
    /// The reference, `group://alias/name` or `tag://alias/name`.
    pub reference: String,
    /// The rule: in NEW for a gain, in OLD for a loss.
    pub rules: Vec<RuleRef>,
}

impl AccessDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.ssh.is_empty()
            && self.peers.is_empty()
            && self.capabilities.is_empty()
            && self.apps.is_empty()
            && self.external.is_empty()
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
    /// When the change is over both families (`family` absent): the source devices it covers
    /// over one family only, though they have an address of the other and some destination
    /// has one too (a device whose IPv4 address had the access already, grouped with devices
    /// that gain it over both). Empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub one_family_sources: Vec<SourceFamily>,
    /// The selectors of the responsible rules' sources (as written).
    pub src_selectors: Vec<String>,
    /// The selectors of the responsible rules' destinations (as written).
    pub dst_selectors: Vec<String>,
    /// The rules responsible: in NEW for a gain, in OLD for a loss.
    pub rules: Vec<RuleRef>,
}

/// A source device a network change covers over one family only
/// ([`NetworkChange::one_family_sources`]).
#[derive(Debug, Clone, Serialize)]
pub struct SourceFamily {
    /// The device.
    pub name: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
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
    /// What the session is subject to beside that (recording, enforced or not; accepted
    /// environment variables; a session limit), for people; empty for none. A
    /// change of these alone is a loss of the old terms and a gain of the new.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub terms: String,
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
        external: external::external_changes(old, new),
    }
}

fn unspecified() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
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
