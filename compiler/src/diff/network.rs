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

mod cuts;
mod placements;
mod shared;

pub(crate) use cuts::PIECE_BUDGET;
use cuts::*;
pub(crate) use placements::Placements;
use placements::*;
pub(crate) use shared::SharedComparisons;

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

    /// The first IPv6 position (every IPv4 address sorts before every IPv6 one).
    pub(crate) fn first_v6(&self) -> u32 {
        pos(self.addrs.partition_point(|e| e.0.is_ipv4()))
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
    if let Some(net) = aclc_policy::model::parse_prefix(text) {
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
    let (old, mut lists) = entries(old, (own, zones), &cut, table, placements);
    let (new, new_lists) = entries(new, (own, zones), &cut, table, placements);
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
