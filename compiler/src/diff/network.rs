//! Network access of one node, old against new: its two packet filters become rectangles of
//! (source address position, port) per protocol and destination, and one sweep over the
//! source positions yields what each source gained and lost. Sources are the tailnet's
//! nodes, by the position of their addresses in one sorted table, so a group of a thousand
//! members is a few runs, not a thousand pairs. The addresses no node has (a subnet route,
//! the internet, a range's gaps between its nodes) are swept the same way on a line of the
//! sources' own range ends and reported as ranges; an entry that is no address is reported
//! as written.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

use super::ports::PortSet;
use crate::wire::{FilterRule, Strings};

/// Protocols a rule without `IPProto` allows: TCP, UDP, ICMPv4, ICMPv6.
const DEFAULT_PROTOS: [u8; 4] = [6, 17, 1, 58];

/// Every node address, sorted, with the node's index: source positions.
#[derive(Debug)]
pub(crate) struct AddrTable {
    addrs: Vec<(IpAddr, u32)>,
    /// Each node's address families ([`V4`] | [`V6`]), by node index.
    families: Vec<u8>,
}

/// [`AddrTable::families`]: an IPv4 address.
pub(crate) const V4: u8 = 1;
/// [`AddrTable::families`]: an IPv6 address.
pub(crate) const V6: u8 = 2;

impl AddrTable {
    /// The table of `nodes`' addresses (node `i` has `nodes[i]`'s addresses).
    pub(crate) fn new(nodes: impl Iterator<Item = [IpAddr; 2]>) -> AddrTable {
        let mut addrs = Vec::new();
        let mut families = Vec::new();
        for (i, pair) in nodes.enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let mut has = 0;
            for a in pair {
                if !a.is_unspecified() {
                    addrs.push((a, i));
                    has |= family(a);
                }
            }
            families.push(has);
        }
        addrs.sort_unstable();
        addrs.dedup_by_key(|e| e.0);
        AddrTable { addrs, families }
    }

    /// The address families of node `i` ([`V4`] | [`V6`]).
    pub(crate) fn families(&self, i: u32) -> u8 {
        self.families.get(i as usize).copied().unwrap_or(0)
    }

    /// The families of the addresses at some positions, and of the nodes holding them: a
    /// change at IPv4 positions only, of nodes some of which have IPv6 addresses, is a change
    /// over IPv4 only. The positions' families come from where the runs fall (every IPv4
    /// address sorts before every IPv6 one); the nodes' are read until both are found.
    pub(crate) fn run_families(&self, runs: &[(u32, u32)]) -> (u8, u8) {
        let first_v6 = pos(self.addrs.partition_point(|e| e.0.is_ipv4()));
        let mut at = 0;
        for &(a, b) in runs {
            if a < b && a < first_v6 {
                at |= V4;
            }
            if a < b && b > first_v6 {
                at |= V6;
            }
        }
        let mut held = 0;
        for p in runs.iter().flat_map(|&(a, b)| a..b) {
            held |= self.node(p).map_or(0, |i| self.families(i));
            if held == V4 | V6 {
                break;
            }
        }
        (at, held)
    }

    /// Positions `[a, b)` of the addresses in `lo..=hi`.
    pub(crate) fn positions(&self, lo: IpAddr, hi: IpAddr) -> (u32, u32) {
        let a = self.addrs.partition_point(|e| e.0 < lo);
        let b = self.addrs.partition_point(|e| e.0 <= hi);
        (pos(a), pos(b.max(a)))
    }

    /// The node at position `p`.
    pub(crate) fn node(&self, p: u32) -> Option<u32> {
        self.addrs.get(p as usize).map(|e| e.1)
    }

    /// The address at position `p`.
    pub(crate) fn addr(&self, p: u32) -> Option<IpAddr> {
        self.addrs.get(p as usize).map(|e| e.0)
    }
}

/// Position runs `[a, b)` sorted, overlapping or touching ones merged.
pub(crate) fn merge_runs(mut runs: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    runs.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
    for (a, b) in runs {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn pos(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The address ranges of a wire address (`*`, an address, a prefix or `a-b`); none for text
/// that is none of those (which the diff then cannot place, and reports as written).
pub(crate) fn ranges(text: &str) -> Vec<(IpAddr, IpAddr)> {
    let text = text.trim();
    if text == "*" {
        return vec![
            (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::BROADCAST.into()),
            (
                Ipv6Addr::UNSPECIFIED.into(),
                Ipv6Addr::from(u128::MAX).into(),
            ),
        ];
    }
    if let Ok(a) = text.parse::<IpAddr>() {
        return vec![(a, a)];
    }
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return vec![(net.network(), net.broadcast())];
    }
    if let Some((a, b)) = text.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            if a <= b && a.is_ipv4() == b.is_ipv4() {
                return vec![(a, b)];
            }
        }
    }
    Vec::new()
}

/// Who an access change is about, on the source side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Source {
    /// Nodes, as runs `[a, b)` of address positions.
    Nodes(Vec<(u32, u32)>),
    /// Addresses that hold no node, as written in the filter.
    Text(String),
}

/// Where, on the destination node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Dest {
    /// The node's own addresses.
    Node,
    /// A route (or other prefix) the node serves, as written.
    Route(String),
}

/// One change on one destination node.
#[derive(Debug, Clone)]
pub(crate) struct Atom {
    pub(crate) gained: bool,
    pub(crate) src: Source,
    pub(crate) dst: Dest,
    pub(crate) proto: u8,
    pub(crate) ports: PortSet,
}

/// Where each source list (by address) lands in the table: runs of positions, and the
/// entries that hold no node, with an id equal for equal lists. Lists are shared between the
/// nodes of one compile, so each is placed once; each is kept alive so its address is not
/// reused while it is a key.
#[derive(Default)]
pub(crate) struct Placements {
    placed: HashMap<usize, (Strings, Rc<Placed>)>,
    /// Lists placed so far by a cheap hash of their contents (length and ends), so an equal
    /// list of the other compile (another address) reuses the placement and its id.
    by_content: HashMap<u64, Vec<(Strings, Rc<Placed>)>>,
    /// Distinct contents placed.
    count: u32,
    /// Sweeps of (old-only, new-only) entries already done: nodes reached by the same
    /// edited rules share them.
    sweeps: HashMap<(Vec<Entry>, Vec<Entry>), Segments>,
    /// Candidates minus the common entries, by (candidates' address, common entries): nodes
    /// with the same rules share them. The candidates are kept alive by `sweeps`.
    subtracted: HashMap<(usize, Vec<Entry>), Segments>,
    /// Destination addresses (shared strings) parsed once, kept alive while keys.
    dst_ranges: HashMap<usize, (std::sync::Arc<str>, Ranges)>,
    /// Placed lists cut to one family ([`Placements::of_families`]), by (id, family).
    by_family: HashMap<(u32, u8), Rc<Placed>>,
}

/// Parsed address ranges, shared.
type Ranges = Rc<Vec<(IpAddr, IpAddr)>>;

/// Shared sweep results.
type Segments = Rc<Vec<Segment>>;

/// A source list (by id) reaching a port range.
type Entry = (u32, u16, u16);

/// Source positions `[a, b)` with the ports gained and lost there.
type Segment = (u32, u32, PortSet, PortSet);

/// One source list, placed.
#[derive(Default)]
struct Placed {
    /// Equal for lists with equal contents (within one diff).
    id: u32,
    runs: Vec<(u32, u32)>,
    /// Entries that are no address, prefix or range (reported as written).
    texts: Vec<String>,
    /// The list's address ranges that hold an address no node has (a subnet route, the
    /// internet, a range's gaps between nodes), merged: the addresses beyond the nodes, which
    /// the positions cannot show. A range of node addresses only is left out (its nodes are
    /// in `runs`).
    outside: Vec<(Addr, Addr)>,
}

/// An address on one line: IPv4 addresses (family 0) before IPv6 ones (family 1), so ranges
/// of both families sort and merge together.
type Addr = (u8, u128);

fn addr_key(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v4) => (0, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (1, u128::from(v6)),
    }
}

fn key_addr(k: Addr) -> IpAddr {
    match k.0 {
        0 => IpAddr::V4(Ipv4Addr::from(u32::try_from(k.1).unwrap_or(u32::MAX))),
        _ => IpAddr::V6(Ipv6Addr::from(k.1)),
    }
}

/// The address after `k` on the line; none after the last IPv6 address.
fn next_addr(k: Addr) -> Option<Addr> {
    match k {
        (0, a) if a >= u128::from(u32::MAX) => Some((1, 0)),
        (0, a) => Some((0, a + 1)),
        (_, u128::MAX) => None,
        (f, a) => Some((f, a + 1)),
    }
}

/// Ranges sorted, overlapping or touching ones merged.
fn merge_addr_ranges(mut ranges: Vec<(Addr, Addr)>) -> Vec<(Addr, Addr)> {
    ranges.sort_unstable();
    let mut out: Vec<(Addr, Addr)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if next_addr(last.1).is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// True when the range `lo..=hi` (of one family), holding the nodes at `positions`, holds an
/// address no node has: more addresses than nodes.
fn beyond_nodes(lo: Addr, hi: Addr, positions: (u32, u32)) -> bool {
    let nodes = u128::from(positions.1.saturating_sub(positions.0));
    hi.1.saturating_sub(lo.1)
        .checked_add(1)
        .is_none_or(|size| size > nodes)
}

/// A range as text: one address, a prefix when it is one, else `first-last`.
fn range_text(lo: Addr, hi: Addr) -> String {
    let (a, b) = (key_addr(lo), key_addr(hi));
    if a == b {
        return a.to_string();
    }
    let span = hi.1.saturating_sub(lo.1);
    let bits: u32 = if lo.0 == 0 { 32 } else { 128 };
    if span.checked_add(1).is_none_or(|n| n.is_power_of_two()) && lo.1 & span == 0 {
        let len = bits - (span.count_ones());
        if let Ok(net) = ipnet::IpNet::new(a, u8::try_from(len).unwrap_or(0)) {
            return net.to_string();
        }
    }
    format!("{a}-{b}")
}

impl Placements {
    /// [`ranges`] of a destination string, parsed once per shared string.
    fn ranges(&mut self, text: &std::sync::Arc<str>) -> Ranges {
        let key = text.as_ptr() as usize;
        if let Some((_, r)) = self.dst_ranges.get(&key) {
            return r.clone();
        }
        let r = Rc::new(ranges(text));
        self.dst_ranges.insert(key, (text.clone(), r.clone()));
        r
    }

    /// `placed` with its positions and ranges of the `families` only (a list of its own,
    /// placed once per family).
    fn of_families(&mut self, placed: &Rc<Placed>, families: u8, table: &AddrTable) -> Rc<Placed> {
        if families & BOTH == BOTH {
            return placed.clone();
        }
        if let Some(done) = self.by_family.get(&(placed.id, families)) {
            return done.clone();
        }
        let v4 = families & 1 == 1;
        // IPv4 addresses sort before IPv6 ones: positions below `split` are IPv4.
        let split = table
            .positions(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::BROADCAST.into())
            .1;
        let (lo, hi) = match v4 {
            true => (0, split),
            false => (split, u32::MAX),
        };
        let runs = placed
            .runs
            .iter()
            .map(|&(a, b)| (a.max(lo), b.min(hi)))
            .filter(|(a, b)| a < b)
            .collect();
        let (first, last): (Addr, Addr) = match v4 {
            true => ((0, 0), (0, u128::from(u32::MAX))),
            false => ((1, 0), (1, u128::MAX)),
        };
        let outside = placed
            .outside
            .iter()
            .map(|&(a, b)| (a.max(first), b.min(last)))
            .filter(|(a, b)| a <= b)
            .collect();
        let id = self.count;
        self.count = self.count.saturating_add(1);
        let clipped = Rc::new(Placed {
            id,
            runs,
            texts: placed.texts.clone(),
            outside,
        });
        self.by_family
            .insert((placed.id, families), clipped.clone());
        clipped
    }

    fn get(&mut self, list: &Strings, table: &AddrTable) -> Rc<Placed> {
        let key = list.as_ptr() as usize;
        if let Some((_, placed)) = self.placed.get(&key) {
            return placed.clone();
        }
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = crate::hash::hasher();
            (list.len(), list.first(), list.last()).hash(&mut h);
            h.finish()
        };
        let same = self
            .by_content
            .get(&hash)
            .and_then(|found| found.iter().find(|(l, _)| l == list))
            .map(|(_, placed)| placed.clone());
        if let Some(placed) = same {
            self.placed.insert(key, (list.clone(), placed.clone()));
            return placed;
        }
        let id = self.count;
        self.count = self.count.saturating_add(1);
        let mut placed = Placed {
            id,
            ..Placed::default()
        };
        let mut outside = Vec::new();
        for src in list.iter() {
            let found = ranges(src);
            if found.is_empty() {
                placed.texts.push(src.to_string());
            }
            for (lo, hi) in found {
                let (a, b) = table.positions(lo, hi);
                if a < b {
                    placed.runs.push((a, b));
                }
                let (lo, hi) = (addr_key(lo), addr_key(hi));
                if beyond_nodes(lo, hi, (a, b)) {
                    outside.push((lo, hi));
                }
            }
        }
        placed.runs = merge_runs(std::mem::take(&mut placed.runs));
        placed.outside = merge_addr_ranges(outside);
        let placed = Rc::new(placed);
        self.placed.insert(key, (list.clone(), placed.clone()));
        self.by_content
            .entry(hash)
            .or_default()
            .push((list.clone(), placed.clone()));
        placed
    }
}

/// One (destination, protocol, port range) a source list reaches on the node.
type EntryKey = (Dest, u8, u16, u16, u32);

/// A node's packet filter as entries (multiset), each with its placed sources.
fn entries(
    rules: &[FilterRule],
    own: [IpAddr; 2],
    cut: &Cut<'_>,
    table: &AddrTable,
    placements: &mut Placements,
) -> (HashMap<EntryKey, u32>, HashMap<u32, Rc<Placed>>) {
    let mut out: HashMap<EntryKey, u32> = HashMap::new();
    let mut lists: HashMap<u32, Rc<Placed>> = HashMap::new();
    for rule in rules {
        if !rule.cap_grant.is_empty() {
            continue;
        }
        let protos: &[u8] = if rule.ip_proto.is_empty() {
            &DEFAULT_PROTOS
        } else {
            &rule.ip_proto
        };
        let whole = placements.get(&rule.src_ips, table);
        for dst in &rule.dst_ports {
            let dst_ranges = placements.ranges(&dst.ip);
            let covers_node = dst_ranges.iter().any(|&(lo, hi)| {
                own.iter()
                    .any(|a| !a.is_unspecified() && lo <= *a && *a <= hi)
            });
            // A packet's source and destination are of one family: the sources of the
            // destination's families only (an IPv6 source reaches no IPv4 destination).
            let families = match dst_ranges.is_empty() {
                true => BOTH,
                false => dst_ranges.iter().fold(0, |f, (lo, _)| f | family(*lo)),
            };
            let placed = placements.of_families(&whole, families, table);
            lists.entry(placed.id).or_insert_with(|| placed.clone());
            // The node's own addresses, and the pieces of the routes it serves that the
            // entry covers (`*` covers every route: a router's subnets, an exit node's
            // internet), so equal access written differently compares equal.
            let mut keys: Vec<Dest> = Vec::new();
            if covers_node {
                keys.push(Dest::Node);
            }
            match cut {
                Cut::Pieces(pieces) => {
                    for &(lo, hi) in dst_ranges.iter() {
                        let (lo, hi) = (addr_key(lo), addr_key(hi));
                        let first = pieces.partition_point(|p| p.0 < lo);
                        for &(a, b) in pieces.get(first..).unwrap_or_default() {
                            if a > hi {
                                break;
                            }
                            if b <= hi {
                                keys.push(Dest::Route(range_text(a, b)));
                            }
                        }
                    }
                }
                Cut::Zones(zones) => {
                    let mut partial = false;
                    for zone in zones.iter() {
                        let (zlo, zhi) = (addr_key(zone.network()), addr_key(zone.broadcast()));
                        let ranges = dst_ranges
                            .iter()
                            .map(|&(lo, hi)| (addr_key(lo), addr_key(hi)));
                        let mut whole = false;
                        for (lo, hi) in ranges {
                            if lo <= zlo && zhi <= hi {
                                whole = true;
                            } else if lo <= zhi && zlo <= hi {
                                partial = true;
                            }
                        }
                        if whole {
                            keys.push(Dest::Route(zone.to_string()));
                        }
                    }
                    if partial {
                        keys.push(Dest::Route(dst.ip.to_string()));
                    }
                }
            }
            if keys.is_empty() {
                keys.push(Dest::Route(dst.ip.to_string()));
            }
            for key in keys {
                for &proto in protos {
                    let (p, q) = if has_ports(proto) {
                        (dst.ports.first, dst.ports.last)
                    } else {
                        (0, u16::MAX)
                    };
                    *out.entry((key.clone(), proto, p, q, placed.id))
                        .or_insert(0) += 1;
                }
            }
        }
    }
    (out, lists)
}

/// Both families, as [`family`] bits.
const BOTH: u8 = 3;

/// An address's family as a bit: 1 for IPv4, 2 for IPv6.
fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => V4,
        IpAddr::V6(_) => V6,
    }
}

/// TCP, UDP and SCTP have ports; other protocols match whatever the port.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// Per (destination, protocol, source text that holds no node): port ranges.
type Texts = BTreeMap<(Dest, u8, String), Vec<(u16, u16)>>;

fn texts(entries: &[(&EntryKey, u32)], lists: &HashMap<u32, Rc<Placed>>, texts: &mut Texts) {
    for ((dst, proto, p, q, id), _) in entries {
        let Some(placed) = lists.get(id) else {
            continue;
        };
        for text in &placed.texts {
            texts
                .entry((dst.clone(), *proto, text.clone()))
                .or_default()
                .push((*p, *q));
        }
    }
}

/// Rectangles (source positions x ports) of some entries.
fn rects_of(
    entries: &[(u32, u16, u16)],
    lists: &HashMap<u32, Rc<Placed>>,
) -> Vec<(u32, u32, u16, u16)> {
    let mut out = Vec::new();
    for (id, p, q) in entries {
        if let Some(placed) = lists.get(id) {
            out.extend(placed.runs.iter().map(|&(a, b)| (a, b, *p, *q)));
        }
    }
    out
}

impl Placements {
    /// Where the old-only and new-only entries differ (memoised).
    fn sweep(
        &mut self,
        old: &[(u32, u16, u16)],
        new: &[(u32, u16, u16)],
        lists: &HashMap<u32, Rc<Placed>>,
    ) -> Rc<Vec<Segment>> {
        let key = (old.to_vec(), new.to_vec());
        if let Some(done) = self.sweeps.get(&key) {
            return done.clone();
        }
        let done = Rc::new(sweep(&rects_of(old, lists), &rects_of(new, lists)));
        self.sweeps.insert(key, done.clone());
        done
    }
}

/// What changed on the node whose packet filter was `old` and is `new`. Entries both
/// filters have cancel out; only where the remaining entries differ (the candidate
/// segments) are the common entries consulted, clipped to those segments. So a rule edit
/// costs what the edited rules and the positions they touch cost, not the whole filter.
pub(crate) fn diff_node(
    (old, new): (&[FilterRule], &[FilterRule]),
    own: [IpAddr; 2],
    (zones, budget): (&[ipnet::IpNet], usize),
    table: &AddrTable,
    placements: &mut Placements,
) -> Vec<Atom> {
    // Every destination range of both filters, on a node that serves routes.
    let ranges: Vec<(Addr, Addr)> = match zones.is_empty() {
        true => Vec::new(),
        false => old
            .iter()
            .chain(new)
            .filter(|r| r.cap_grant.is_empty())
            .flat_map(|r| r.dst_ports.iter())
            .flat_map(|dst| placements.ranges(&dst.ip).to_vec())
            .map(|(lo, hi)| (addr_key(lo), addr_key(hi)))
            .collect(),
    };
    let pieces = pieces(&ranges, own, zones);
    // Entries times the pieces each covers: past the budget (thousands of single addresses
    // routed through an exit node beside many `*` rules), whole routes are the keys instead.
    let cut = match coverage(&ranges, &pieces) > budget {
        true => Cut::Zones(zones),
        false => Cut::Pieces(&pieces),
    };
    let (old, mut lists) = entries(old, own, &cut, table, placements);
    let (new, new_lists) = entries(new, own, &cut, table, placements);
    lists.extend(new_lists);
    // Multiset difference: old-only, new-only, common.
    let (mut only_old, mut only_new, mut common) = (Vec::new(), Vec::new(), Vec::new());
    for (key, &count) in &old {
        let other = new.get(key).copied().unwrap_or(0);
        if count > other {
            only_old.push((key, count - other));
        }
        if other > 0 {
            common.push((key, count.min(other)));
        }
    }
    for (key, &count) in &new {
        let other = old.get(key).copied().unwrap_or(0);
        if count > other {
            only_new.push((key, count - other));
        }
    }
    if only_old.is_empty() && only_new.is_empty() {
        return Vec::new();
    }
    // Per (destination, protocol): the entries only one side has, and the common ones.
    type ByKey = BTreeMap<(Dest, u8), Vec<(u32, u16, u16)>>;
    let group = |list: &[(&EntryKey, u32)]| -> ByKey {
        let mut out = ByKey::new();
        for ((dst, proto, p, q, id), _) in list {
            out.entry((dst.clone(), *proto))
                .or_default()
                .push((*id, *p, *q));
        }
        for v in out.values_mut() {
            v.sort_unstable();
        }
        out
    };
    let (old_by, new_by, common_by) = (group(&only_old), group(&only_new), group(&common));
    let (mut old_texts, mut new_texts, mut common_texts) =
        (Texts::new(), Texts::new(), Texts::new());
    texts(&only_old, &lists, &mut old_texts);
    texts(&only_new, &lists, &mut new_texts);
    if !old_texts.is_empty() || !new_texts.is_empty() {
        texts(&common, &lists, &mut common_texts);
    }
    let touched: std::collections::BTreeSet<&(Dest, u8)> =
        old_by.keys().chain(new_by.keys()).collect();
    let mut atoms = Vec::new();
    let empty = Vec::new();
    for key in touched {
        let o = old_by.get(key).unwrap_or(&empty);
        let n = new_by.get(key).unwrap_or(&empty);
        let candidates = placements.sweep(o, n, &lists);
        if candidates.is_empty() {
            continue;
        }
        let common = common_by.get(key).unwrap_or(&empty);
        let memo = (Rc::as_ptr(&candidates) as usize, common.clone());
        let segments = match placements.subtracted.get(&memo) {
            Some(done) => done.clone(),
            None => {
                let u = clip(common, &lists, &candidates);
                let done = Rc::new(subtract(&candidates, &u));
                placements.subtracted.insert(memo, done.clone());
                done
            }
        };
        // Group the segments by (direction, ports): one atom per distinct port set.
        let mut by_ports: BTreeMap<(bool, PortSet), Vec<(u32, u32)>> = BTreeMap::new();
        for (a, b, gained, lost) in segments.iter().cloned() {
            for (dir, set) in [(true, gained), (false, lost)] {
                if set.is_empty() {
                    continue;
                }
                let runs = by_ports.entry((dir, set)).or_default();
                match runs.last_mut() {
                    Some(last) if last.1 == a => last.1 = b,
                    _ => runs.push((a, b)),
                }
            }
        }
        for ((gained, ports), runs) in by_ports {
            atoms.push(Atom {
                gained,
                src: Source::Nodes(runs),
                dst: key.0.clone(),
                proto: key.1,
                ports,
            });
        }
    }
    atoms.extend(outside_atoms(&only_old, &only_new, &common, &lists, table));
    let text_keys: std::collections::BTreeSet<(Dest, u8, String)> =
        old_texts.keys().chain(new_texts.keys()).cloned().collect();
    for key in text_keys {
        let get = |m: &Texts| PortSet::from_intervals(m.get(&key).cloned().unwrap_or_default());
        let u = get(&common_texts);
        let (o, n) = (get(&old_texts), get(&new_texts));
        for (gained, ports) in [
            (true, n.minus(&o).minus(&u)),
            (false, o.minus(&n).minus(&u)),
        ] {
            if !ports.is_empty() {
                atoms.push(Atom {
                    gained,
                    src: Source::Text(key.2.clone()),
                    dst: key.0.clone(),
                    proto: key.1,
                    ports,
                });
            }
        }
    }
    merge_pieces(atoms)
}

/// How a router's destinations are keyed ([`entries`]).
enum Cut<'a> {
    /// By the pieces of its routes each entry covers ([`pieces`]): exact.
    Pieces(&'a [(Addr, Addr)]),
    /// By the routes an entry covers whole, and by its text where it covers part of one:
    /// where the pieces would cost more than [`PIECE_BUDGET`]. Access written alike compares
    /// alike; written differently, a change may be reported that is none, never the other
    /// way round (a route covered whole, then in parts, is a route lost and parts gained).
    Zones(&'a [ipnet::IpNet]),
}

/// The most (entry, piece) pairs a node's two filters are keyed by: 100,000 (a `*` rule
/// beside 5,000 single addresses through an exit node takes 10,000 pieces an entry).
pub(crate) const PIECE_BUDGET: usize = 100_000;

/// How many (entry, piece) pairs keying the destination `ranges` by `pieces` makes: a binary
/// search per range, O(ranges log pieces).
fn coverage(ranges: &[(Addr, Addr)], pieces: &[(Addr, Addr)]) -> usize {
    if pieces.is_empty() {
        return 0;
    }
    ranges.iter().fold(0usize, |total, &(lo, hi)| {
        let from = pieces.partition_point(|p| p.0 < lo);
        let to = pieces.partition_point(|p| p.0 <= hi);
        total.saturating_add(to.saturating_sub(from))
    })
}

/// The routes node serves (`zones`: its subnet routes, an exit node's `0.0.0.0/0` and
/// `::/0`) cut at every end of `ranges` (the destination ranges of both filters) inside them,
/// less the node's own addresses (its own destination): the pieces each entry covers whole
/// (sorted, disjoint). O(entries log entries) per router; none for another node.
fn pieces(ranges: &[(Addr, Addr)], own: [IpAddr; 2], zones: &[ipnet::IpNet]) -> Vec<(Addr, Addr)> {
    if zones.is_empty() {
        return Vec::new();
    }
    let zones = merge_addr_ranges(
        zones
            .iter()
            .map(|z| (addr_key(z.network()), addr_key(z.broadcast())))
            .collect(),
    );
    let own: Vec<Addr> = own
        .iter()
        .filter(|a| !a.is_unspecified())
        .map(|&a| addr_key(a))
        .collect();
    // Where a piece starts: each zone's start, each range's start and the address after its
    // end, each own address and the one after it.
    // IPv6 starts a piece of its own (`0.0.0.0/0` and `::/0` touch on the line).
    let mut cuts: Vec<Addr> = zones.iter().map(|z| z.0).collect();
    cuts.push((1, 0));
    let mut cut = |lo: Addr, hi: Addr| {
        cuts.push(lo);
        cuts.extend(next_addr(hi));
    };
    for &(lo, hi) in ranges {
        cut(lo, hi);
    }
    for &a in &own {
        cut(a, a);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for &(zlo, zhi) in &zones {
        let from = cuts.partition_point(|c| *c < zlo);
        let inside: Vec<Addr> = cuts
            .get(from..)
            .unwrap_or_default()
            .iter()
            .copied()
            .take_while(|c| *c <= zhi)
            .collect();
        for (k, &start) in inside.iter().enumerate() {
            let end = match inside.get(k + 1) {
                Some(&next) => previous_addr(next),
                None => zhi,
            };
            if !(start == end && own.contains(&start)) {
                out.push((start, end));
            }
        }
    }
    out
}

/// Atoms that differ only in adjacent route pieces ([`pieces`]) made one, over the merged
/// range: a route gained whole is one change, not one per piece.
fn merge_pieces(atoms: Vec<Atom>) -> Vec<Atom> {
    let mut out = Vec::new();
    // By family too: touching IPv4 and IPv6 ranges are not one range.
    type Key = (bool, Source, u8, PortSet, u8);
    let mut routes: BTreeMap<Key, Vec<(Addr, Addr)>> = BTreeMap::new();
    for atom in atoms {
        let parsed = match &atom.dst {
            Dest::Route(text) => ranges(text),
            Dest::Node => Vec::new(),
        };
        match parsed.as_slice() {
            [(lo, hi)] => {
                let (lo, hi) = (addr_key(*lo), addr_key(*hi));
                routes
                    .entry((atom.gained, atom.src, atom.proto, atom.ports, lo.0))
                    .or_default()
                    .push((lo, hi))
            }
            _ => out.push(atom),
        }
    }
    for ((gained, src, proto, ports, _), list) in routes {
        for (lo, hi) in merge_addr_ranges(list) {
            out.push(Atom {
                gained,
                src: src.clone(),
                dst: Dest::Route(range_text(lo, hi)),
                proto,
                ports: ports.clone(),
            });
        }
    }
    out
}

/// What changed for the addresses no node has (a subnet route, the internet, the gaps of a
/// range between its nodes): per destination and protocol, the sources' ranges beyond the
/// nodes ([`Placed::outside`]) swept as the positions are, on a line of the ranges' own
/// ends. A source `*` where the tailnet's ranges were is every address beyond them gained;
/// comparing such entries as text saw a route's text vanish and called it lost. A changed
/// range is reported when it holds an address no node has (its nodes' own changes are the
/// positions'), as one address, a prefix or `first-last`.
fn outside_atoms(
    only_old: &[(&EntryKey, u32)],
    only_new: &[(&EntryKey, u32)],
    common: &[(&EntryKey, u32)],
    lists: &HashMap<u32, Rc<Placed>>,
    table: &AddrTable,
) -> Vec<Atom> {
    type Rects = BTreeMap<(Dest, u8), [Vec<(Addr, Addr, u16, u16)>; 3]>;
    let mut by_key = Rects::new();
    for (side, entries) in [only_old, only_new, common].into_iter().enumerate() {
        for ((dst, proto, p, q, id), _) in entries {
            let Some(placed) = lists.get(id).filter(|l| !l.outside.is_empty()) else {
                continue;
            };
            // Common entries matter only where one side changed.
            if side == 2 && !by_key.contains_key(&(dst.clone(), *proto)) {
                continue;
            }
            if let Some(rects) = by_key
                .entry((dst.clone(), *proto))
                .or_default()
                .get_mut(side)
            {
                rects.extend(placed.outside.iter().map(|&(lo, hi)| (lo, hi, *p, *q)));
            }
        }
    }
    let mut atoms = Vec::new();
    for ((dst, proto), [old, new, common]) in by_key {
        if old.is_empty() && new.is_empty() {
            continue;
        }
        // The line: every range's first address and the address after its last.
        let mut ends: Vec<Addr> = Vec::new();
        for &(lo, hi, ..) in old.iter().chain(&new).chain(&common) {
            ends.push(lo);
            ends.extend(next_addr(hi));
        }
        ends.sort_unstable();
        ends.dedup();
        let at = |k: Addr| pos(ends.partition_point(|e| *e < k));
        let place = |rects: &[(Addr, Addr, u16, u16)]| -> Vec<(u32, u32, u16, u16)> {
            rects
                .iter()
                .map(|&(lo, hi, p, q)| {
                    let end = next_addr(hi).map_or(pos(ends.len()), at);
                    (at(lo), end, p, q)
                })
                .collect()
        };
        let candidates = sweep(&place(&old), &place(&new));
        let segments = subtract(&candidates, &place(&common));
        for (a, b, gained, lost) in segments {
            let Some(&lo) = ends.get(a as usize) else {
                continue;
            };
            let hi = match ends.get(b as usize) {
                Some(&end) => previous_addr(end),
                None => (1, u128::MAX),
            };
            // A segment that runs from IPv4 into IPv6 is two ranges.
            let parts = match lo.0 == hi.0 {
                true => vec![(lo, hi)],
                false => vec![(lo, (0, u128::from(u32::MAX))), ((1, 0), hi)],
            };
            for (lo, hi) in parts {
                if !beyond_nodes(lo, hi, table.positions(key_addr(lo), key_addr(hi))) {
                    continue;
                }
                let text = range_text(lo, hi);
                for (is_gain, ports) in [(true, &gained), (false, &lost)] {
                    if !ports.is_empty() {
                        atoms.push(Atom {
                            gained: is_gain,
                            src: Source::Text(text.clone()),
                            dst: dst.clone(),
                            proto,
                            ports: ports.clone(),
                        });
                    }
                }
            }
        }
    }
    atoms
}

/// The address before `k` on the line (`k` is never the first).
fn previous_addr(k: Addr) -> Addr {
    match k {
        (1, 0) => (0, u128::from(u32::MAX)),
        (f, a) => (f, a.saturating_sub(1)),
    }
}

/// The common entries' rectangles inside the candidate segments (sorted, disjoint), found
/// by binary search in each entry's runs (O(candidates x log runs) per entry) or, when
/// there are many candidates, one merge walk (O(runs + candidates)).
fn clip(
    common: &[(u32, u16, u16)],
    lists: &HashMap<u32, Rc<Placed>>,
    candidates: &[Segment],
) -> Vec<(u32, u32, u16, u16)> {
    let mut out = Vec::new();
    for (id, p, q) in common {
        let Some(placed) = lists.get(id) else {
            continue;
        };
        let runs = &placed.runs;
        if candidates.len().saturating_mul(16) >= runs.len() {
            // As many candidates as runs: one merge walk, O(runs + candidates).
            let (mut i, mut j) = (0, 0);
            while let (Some(&(a, b)), Some(c)) = (runs.get(i), candidates.get(j)) {
                let (lo, hi) = (a.max(c.0), b.min(c.1));
                if lo < hi {
                    out.push((lo, hi, *p, *q));
                }
                if b < c.1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            continue;
        }
        for c in candidates {
            let mut i = runs.partition_point(|r| r.1 <= c.0);
            while let Some(&(a, b)) = runs.get(i) {
                if a >= c.1 {
                    break;
                }
                out.push((a.max(c.0), b.min(c.1), *p, *q));
                i += 1;
            }
        }
    }
    out
}

/// Candidate segments minus what the common rectangles give there.
fn subtract(
    candidates: &[Segment],
    common: &[(u32, u32, u16, u16)],
) -> Vec<(u32, u32, PortSet, PortSet)> {
    // Sweep the common rectangles together with the candidate boundaries.
    let mut events: Vec<(u32, i8, (u16, u16))> = Vec::new();
    for &(a, b, p, q) in common {
        events.push((a, 1, (p, q)));
        events.push((b, -1, (p, q)));
    }
    for c in candidates {
        events.push((c.0, 0, (0, 0)));
        events.push((c.1, 0, (0, 0)));
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut active: BTreeMap<(u16, u16), u32> = BTreeMap::new();
    let mut out: Vec<(u32, u32, PortSet, PortSet)> = Vec::new();
    let mut i = 0;
    while let Some(&(at, ..)) = events.get(i) {
        while let Some(&(p, delta, ports)) = events.get(i) {
            if p != at {
                break;
            }
            if delta > 0 {
                *active.entry(ports).or_insert(0) += 1;
            } else if delta < 0 {
                if let Some(count) = active.get_mut(&ports) {
                    *count -= 1;
                    if *count == 0 {
                        active.remove(&ports);
                    }
                }
            }
            i += 1;
        }
        let Some(&(next, ..)) = events.get(i) else {
            break;
        };
        // The candidate covering [at, next), if any.
        let k = candidates.partition_point(|c| c.1 <= at);
        let Some(c) = candidates.get(k).filter(|c| c.0 <= at && next <= c.1) else {
            continue;
        };
        let u = PortSet::from_intervals(active.keys().copied().collect());
        let (gained, lost) = (c.2.minus(&u), c.3.minus(&u));
        if gained.is_empty() && lost.is_empty() {
            continue;
        }
        extend_or_push(&mut out, (at, next, gained, lost));
    }
    out
}

/// Append a segment, or lengthen the last one when it ends where this one starts with the
/// same ports gained and lost.
fn extend_or_push(out: &mut Vec<Segment>, segment: Segment) {
    match out.last_mut() {
        Some(last) if last.1 == segment.0 && last.2 == segment.2 && last.3 == segment.3 => {
            last.1 = segment.1;
        }
        _ => out.push(segment),
    }
}

/// Sweep the source positions: segments `[a, b)` with the ports gained and lost there.
fn sweep(
    old: &[(u32, u32, u16, u16)],
    new: &[(u32, u32, u16, u16)],
) -> Vec<(u32, u32, PortSet, PortSet)> {
    // (position, is_start, side, ports)
    let mut events: Vec<(u32, bool, usize, (u16, u16))> = Vec::new();
    for (side, rects) in [old, new].into_iter().enumerate() {
        for &(a, b, p, q) in rects {
            events.push((a, true, side, (p, q)));
            events.push((b, false, side, (p, q)));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut active: [BTreeMap<(u16, u16), u32>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut out: Vec<(u32, u32, PortSet, PortSet)> = Vec::new();
    let mut i = 0;
    while let Some(&(at, ..)) = events.get(i) {
        while let Some(&(p, start, side, ports)) = events.get(i) {
            if p != at {
                break;
            }
            if let Some(map) = active.get_mut(side) {
                if start {
                    *map.entry(ports).or_insert(0) += 1;
                } else if let Some(count) = map.get_mut(&ports) {
                    *count -= 1;
                    if *count == 0 {
                        map.remove(&ports);
                    }
                }
            }
            i += 1;
        }
        let Some(&(next, ..)) = events.get(i) else {
            break;
        };
        let [o, n] = &active;
        if o == n {
            continue;
        }
        let o = PortSet::from_intervals(o.keys().copied().collect());
        let n = PortSet::from_intervals(n.keys().copied().collect());
        let (gained, lost) = (n.minus(&o), o.minus(&n));
        if gained.is_empty() && lost.is_empty() {
            continue;
        }
        extend_or_push(&mut out, (at, next, gained, lost));
    }
    out
}

/// One change of an application capability (a `CapGrant` of an app grant) on one
/// destination node: these rules carry no ports, so [`diff_node`] does not see them.
#[derive(Debug, Clone)]
pub(crate) struct AppAtom {
    pub(crate) gained: bool,
    pub(crate) src: Source,
    pub(crate) dst: Dest,
    pub(crate) capability: String,
    pub(crate) value: serde_json::Value,
}

/// The application capabilities node `own` receives in `old` and not in `new` (lost) and
/// the other way round (gained): each (sources, destination prefixes, capability, value) of
/// a `CapGrant` rule, compared as sets. The sources are the rule's `SrcIPs` placed on the
/// nodes (the text as written when no node has one of them); a legacy `Caps` name is a
/// capability with a `null` value.
pub(crate) fn diff_apps(
    old: &[FilterRule],
    new: &[FilterRule],
    own: [IpAddr; 2],
    table: &AddrTable,
    placements: &mut Placements,
) -> Vec<AppAtom> {
    type Key = (u32, Dest, String, String);
    let mut collect = |rules: &[FilterRule]| {
        let mut out: std::collections::BTreeMap<Key, (Source, serde_json::Value)> =
            std::collections::BTreeMap::new();
        for rule in rules.iter().filter(|r| !r.cap_grant.is_empty()) {
            let placed = placements.get(&rule.src_ips, table);
            let src = match placed.runs.is_empty() {
                false => Source::Nodes(placed.runs.clone()),
                true => Source::Text(rule.src_ips.join(", ")),
            };
            for grant in &rule.cap_grant {
                let covers_node = grant.dsts.iter().any(|d| {
                    placements.ranges(d).iter().any(|&(lo, hi)| {
                        own.iter()
                            .any(|a| !a.is_unspecified() && lo <= *a && *a <= hi)
                    })
                });
                let dst = match covers_node {
                    true => Dest::Node,
                    false => Dest::Route(
                        grant
                            .dsts
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                };
                let values = grant
                    .cap_map
                    .iter()
                    .map(|(cap, value)| (cap.clone(), value.clone()))
                    .chain(
                        grant
                            .caps
                            .iter()
                            .map(|c| (c.clone(), serde_json::Value::Null)),
                    );
                for (cap, value) in values {
                    out.insert(
                        (placed.id, dst.clone(), cap, value.to_string()),
                        (src.clone(), value),
                    );
                }
            }
        }
        out
    };
    let (before, after) = (collect(old), collect(new));
    let mut atoms = Vec::new();
    for (gained, from, to) in [(false, &before, &after), (true, &after, &before)] {
        for (key, (src, value)) in from {
            if !to.contains_key(key) {
                atoms.push(AppAtom {
                    gained,
                    src: src.clone(),
                    dst: key.1.clone(),
                    capability: key.2.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    atoms
}

#[cfg(test)]
mod tests;
