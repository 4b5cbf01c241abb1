//! Where each filter entry's sources sit on the line of address positions: runs of tailnet
//! nodes, and the ranges no node holds, shared between entries with the same source list.

use super::*;
use crate::Text;

/// Where each source list (by address) lands in the table: runs of positions, and the
/// entries that hold no node, with an id equal for equal lists. Lists are shared between the
/// nodes of one compile, so each is placed once; each is kept alive so its address is not
/// reused while it is a key.
#[derive(Default)]
pub(crate) struct Placements {
    pub(super) placed: HashMap<usize, (Strings, Rc<Placed>)>,
    /// Lists placed so far by a cheap hash of their contents (length and ends), so an equal
    /// list of the other compile (another address) reuses the placement and its id.
    pub(super) by_content: HashMap<u64, Vec<(Strings, Rc<Placed>)>>,
    /// Distinct contents placed.
    pub(super) count: u32,
    /// Sweeps of (old-only, new-only) entries already done: nodes reached by the same
    /// edited rules share them.
    pub(super) sweeps: HashMap<(Vec<Entry>, Vec<Entry>), Segments>,
    /// Candidates minus the common entries, by (candidates' address, common entries): nodes
    /// with the same rules share them. The candidates are kept alive by `sweeps`.
    pub(super) subtracted: HashMap<(usize, Vec<Entry>), Segments>,
    /// Destination addresses (shared strings) parsed once, kept alive while keys.
    pub(super) dst_ranges: HashMap<usize, (Text, Ranges)>,
    /// Placed lists cut to one family ([`Placements::of_families`]), by (id, family).
    pub(super) by_family: HashMap<(u32, u8), Rc<Placed>>,
}

/// Parsed address ranges, shared.
pub(super) type Ranges = Rc<Vec<(IpAddr, IpAddr)>>;

/// Shared sweep results.
pub(super) type Segments = Rc<Vec<Segment>>;

/// A source list (by id) reaching a port range.
pub(super) type Entry = (u32, u16, u16);

/// Source positions `[a, b)` with the ports gained and lost there.
pub(super) type Segment = (u32, u32, PortSet, PortSet);

/// One source list, placed.
#[derive(Default)]
pub(super) struct Placed {
    /// Equal for lists with equal contents (within one diff).
    pub(super) id: u32,
    pub(super) runs: Vec<(u32, u32)>,
    /// Entries that are no address, prefix or range (reported as written).
    pub(super) texts: Vec<String>,
    /// The list's address ranges that hold an address no node has (a subnet route, the
    /// internet, a range's gaps between nodes), merged: the addresses beyond the nodes, which
    /// the positions cannot show. A range of node addresses only is left out (its nodes are
    /// in `runs`).
    pub(super) outside: Vec<(Addr, Addr)>,
}

/// An address on one line: IPv4 addresses (family 0) before IPv6 ones (family 1), so ranges
/// of both families sort and merge together.
pub(super) type Addr = (u8, u128);

pub(super) fn addr_key(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v4) => (0, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (1, u128::from(v6)),
    }
}

pub(super) fn key_addr(k: Addr) -> IpAddr {
    match k.0 {
        0 => IpAddr::V4(Ipv4Addr::from(u32::try_from(k.1).unwrap_or(u32::MAX))),
        _ => IpAddr::V6(Ipv6Addr::from(k.1)),
    }
}

/// The address after `k` on the line; none after the last IPv6 address.
pub(super) fn next_addr(k: Addr) -> Option<Addr> {
    match k {
        (0, a) if a >= u128::from(u32::MAX) => Some((1, 0)),
        (0, a) => Some((0, a + 1)),
        (_, u128::MAX) => None,
        (f, a) => Some((f, a + 1)),
    }
}

/// Ranges sorted, overlapping or touching ones merged.
pub(super) fn merge_addr_ranges(mut ranges: Vec<(Addr, Addr)>) -> Vec<(Addr, Addr)> {
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
pub(super) fn beyond_nodes(lo: Addr, hi: Addr, positions: (u32, u32)) -> bool {
    let nodes = u128::from(positions.1.saturating_sub(positions.0));
    hi.1.saturating_sub(lo.1)
        .checked_add(1)
        .is_none_or(|size| size > nodes)
}

/// A range as text: one address, a prefix when it is one, else `first-last`.
pub(super) fn range_text(lo: Addr, hi: Addr) -> String {
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
    pub(super) fn ranges(&mut self, text: &Text) -> Ranges {
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
    pub(super) fn of_families(
        &mut self,
        placed: &Rc<Placed>,
        families: u8,
        table: &AddrTable,
    ) -> Rc<Placed> {
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

    pub(super) fn get(&mut self, list: &Strings, table: &AddrTable) -> Rc<Placed> {
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
pub(super) type EntryKey = (Dest, u8, u16, u16, u32);

/// A node's packet filter as entries (multiset), each with its placed sources.
pub(super) fn entries(
    rules: &[FilterRule],
    (own, zones): ([IpAddr; 2], &[ipnet::IpNet]),
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
            // An exit node receives every rule's destinations, other devices' addresses
            // among them; packets to the tailnet's own ranges never leave through an exit
            // route, so such an entry admits nothing unless another route the node serves
            // (a Service's address) holds it.
            if !covers_node
                && !dst_ranges.is_empty()
                && dst_ranges
                    .iter()
                    .all(|&(lo, hi)| in_tailnet(lo, hi) && !served_inside(zones, lo, hi))
            {
                continue;
            }
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
            // Each key with the families a packet to it can be of: a route piece is of one
            // family, so a `*` entry's sources are cut to it there (an IPv6 source gains no
            // IPv4 subnet).
            let mut keys: Vec<(Dest, u8)> = Vec::new();
            if covers_node {
                keys.push((Dest::Node, families));
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
                                let of = if a.0 == 0 { V4 } else { V6 };
                                keys.push((Dest::Route(range_text(a, b)), of));
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
                            keys.push((Dest::Route(zone.to_string()), family(zone.network())));
                        }
                    }
                    if partial {
                        keys.push((Dest::Route(dst.ip.to_string()), families));
                    }
                }
            }
            if keys.is_empty() {
                keys.push((Dest::Route(dst.ip.to_string()), families));
            }
            let all_ports = dst.ports.first == 0 && dst.ports.last == u16::MAX;
            let (icmp4, icmp6) = (aclc_matcher::proto::ICMPV4, aclc_matcher::proto::ICMPV6);
            for (key, of) in keys {
                // The sources of the key's families (the entry's, cut further for a route
                // piece of one family).
                let key_families = match of & families {
                    0 => families,
                    cut => cut,
                };
                // ICMP of a packet's own family (an echo request) passes where any rule opens
                // any port to the destination, whatever its protocols ("if a port is open,
                // ping works": the client's `matchIPsOnly`); ICMP of the other family is
                // another protocol to the client, admitted only by a rule that lists it on
                // every port.
                let listed_elsewhere =
                    |proto: u8, other: u8| match all_ports && protos.contains(&proto) {
                        true => key_families & other,
                        false => 0,
                    };
                let icmp = [
                    (icmp4, (key_families & V4) | listed_elsewhere(icmp4, V6)),
                    (icmp6, (key_families & V6) | listed_elsewhere(icmp6, V4)),
                ];
                let others = protos
                    .iter()
                    .filter(|&&p| p != icmp4 && p != icmp6)
                    .map(|&p| (p, key_families));
                for (proto, of_proto) in icmp.into_iter().chain(others) {
                    if of_proto == 0 {
                        continue;
                    }
                    let placed = match of_proto == families {
                        true => placed.clone(),
                        false => {
                            let narrower = placements.of_families(&whole, of_proto, table);
                            lists.entry(narrower.id).or_insert_with(|| narrower.clone());
                            narrower
                        }
                    };
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
pub(super) const BOTH: u8 = 3;

/// An address's family as a bit: 1 for IPv4, 2 for IPv6.
pub(super) fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => V4,
        IpAddr::V6(_) => V6,
    }
}

/// TCP, UDP and SCTP have ports; other protocols match whatever the port.
pub(super) fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// Per (destination, protocol, source text that holds no node): port ranges.
pub(super) type Texts = BTreeMap<(Dest, u8, String), Vec<(u16, u16)>>;

pub(super) fn texts(
    entries: &[(&EntryKey, u32)],
    lists: &HashMap<u32, Rc<Placed>>,
    texts: &mut Texts,
) {
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
pub(super) fn rects_of(
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
    pub(super) fn sweep(
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

/// True when `lo..=hi` lies inside the tailnet's own ranges (`100.64.0.0/10`,
/// `fd7a:115c:a1e0::/48`), which clients never route through an exit node.
fn in_tailnet(lo: IpAddr, hi: IpAddr) -> bool {
    let inside = |a: IpAddr| match a {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            first == 100 && second & 0xc0 == 64
        }
        IpAddr::V6(a) => a.segments().starts_with(&[0xfd7a, 0x115c, 0xa1e0]),
    };
    inside(lo) && inside(hi)
}

/// True when a route `zones` holds other than an exit route overlaps `lo..=hi`.
fn served_inside(zones: &[ipnet::IpNet], lo: IpAddr, hi: IpAddr) -> bool {
    zones
        .iter()
        .filter(|z| z.prefix_len() > 0)
        .any(|z| z.network() <= hi && lo <= z.broadcast())
}
