//! The sweep: rectangles of (source position, port) per protocol and destination, cut into
//! pieces and swept once to give what each source gained and lost, within a budget.

use super::*;

/// How a router's destinations are keyed ([`entries`]).
pub(super) enum Cut<'a> {
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
pub(super) fn coverage(ranges: &[(Addr, Addr)], pieces: &[(Addr, Addr)]) -> usize {
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
pub(super) fn pieces(
    ranges: &[(Addr, Addr)],
    own: [IpAddr; 2],
    zones: &[ipnet::IpNet],
) -> Vec<(Addr, Addr)> {
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
pub(super) fn merge_pieces(atoms: Vec<Atom>) -> Vec<Atom> {
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
pub(super) fn outside_atoms(
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
pub(super) fn previous_addr(k: Addr) -> Addr {
    match k {
        (1, 0) => (0, u128::from(u32::MAX)),
        (f, a) => (f, a.saturating_sub(1)),
    }
}

/// The common entries' rectangles inside the candidate segments (sorted, disjoint), found
/// by binary search in each entry's runs (O(candidates x log runs) per entry) or, when
/// there are many candidates, one merge walk (O(runs + candidates)).
pub(super) fn clip(
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
pub(super) fn subtract(
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
pub(super) fn extend_or_push(out: &mut Vec<Segment>, segment: Segment) {
    match out.last_mut() {
        Some(last) if last.1 == segment.0 && last.2 == segment.2 && last.3 == segment.3 => {
            last.1 = segment.1;
        }
        _ => out.push(segment),
    }
}

/// Sweep the source positions: segments `[a, b)` with the ports gained and lost there.
pub(super) fn sweep(
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
