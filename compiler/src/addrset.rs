//! Sets of IP addresses as sorted, disjoint ranges, and their wire spelling (bare address,
//! CIDR or `first-last` range), so resolved aliases can be intersected with node addresses and
//! routes without enumerating addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The source strings `*` stands for, before approved subnet routes are added: the CGNAT block
/// without the ChromeOS VM range `100.115.92.0/23`, and Tailscale's IPv6 ULA block.
pub(crate) const TAILNET_WIRE: [&str; 3] = [
    "100.64.0.0-100.115.91.255",
    "100.115.94.0-100.127.255.255",
    "fd7a:115c:a1e0::/48",
];

/// `autogroup:internet` as Tailscale's control plane spells it on exit nodes: every IPv4
/// address outside the private, CGNAT and link-local blocks, and IPv6 global unicast.
pub(crate) const INTERNET_WIRE: [&str; 7] = [
    "0.0.0.0-9.255.255.255",
    "11.0.0.0-100.63.255.255",
    "100.128.0.0-169.253.255.255",
    "169.255.0.0-172.15.255.255",
    "172.32.0.0-192.167.255.255",
    "192.169.0.0-255.255.255.255",
    "2000::-3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/// A set of IPv4 and IPv6 addresses.
///
/// INVARIANT: each list is sorted, its ranges are disjoint, non-adjacent and `first <= last`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct AddrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl AddrSet {
    /// The empty set.
    pub(crate) fn new() -> AddrSet {
        AddrSet::default()
    }

    /// One address.
    pub(crate) fn from_ip(ip: IpAddr) -> AddrSet {
        AddrSet::from_range(ip, ip)
    }

    /// The addresses of a prefix (host bits ignored).
    pub(crate) fn from_net(net: IpNet) -> AddrSet {
        let net = net.trunc();
        AddrSet::from_range(net.network(), net.broadcast())
    }

    /// An inclusive range; empty when the ends differ in family or are reversed.
    pub(crate) fn from_range(first: IpAddr, last: IpAddr) -> AddrSet {
        let mut set = AddrSet::new();
        match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => set.v4.push((a.into(), b.into())),
            (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => set.v6.push((a.into(), b.into())),
            _ => {}
        }
        set
    }

    /// A set from wire strings such as [`TAILNET_WIRE`]; unreadable strings are skipped.
    pub(crate) fn from_wire<'a>(texts: impl IntoIterator<Item = &'a str>) -> AddrSet {
        let mut set = AddrSet::new();
        for text in texts {
            if let Some(part) = parse_wire(text) {
                set.add(&part);
            }
        }
        set
    }

    /// The union of many sets at once: every range collected, sorted once and merged
    /// (O(n log n) in the total number of ranges, where adding one set at a time with
    /// [`AddrSet::add`] costs O(n) per add).
    pub(crate) fn union_of<'a>(sets: impl IntoIterator<Item = &'a AddrSet>) -> AddrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for set in sets {
            v4.extend_from_slice(&set.v4);
            v6.extend_from_slice(&set.v6);
        }
        AddrSet {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    /// The addresses of some IPs, built in one sort (node addresses of a tag, a group ...).
    pub(crate) fn from_ips(ips: impl IntoIterator<Item = IpAddr>) -> AddrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ip in ips {
            match ip {
                IpAddr::V4(a) => v4.push((u32::from(a), u32::from(a))),
                IpAddr::V6(a) => v6.push((u128::from(a), u128::from(a))),
            }
        }
        AddrSet {
            v4: normalize(v4),
            v6: normalize(v6),
        }
    }

    /// The result of applying `steps` in order to the empty set, each adding (`true`) or
    /// removing (`false`) a set's addresses: an address is in the result when the last step
    /// that mentions it adds it. One sweep over the sorted range ends, O(n log n) in the total
    /// number of ranges whatever the mix of adds and removes (applying [`AddrSet::add`] and
    /// [`AddrSet::remove`] one by one is O(n) per step).
    pub(crate) fn from_steps<'a>(steps: impl IntoIterator<Item = (bool, &'a AddrSet)>) -> AddrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, (add, set)) in steps.into_iter().enumerate() {
            v4.extend(set.v4.iter().map(|&(a, b)| (a, b, i, add)));
            v6.extend(set.v6.iter().map(|&(a, b)| (a, b, i, add)));
        }
        AddrSet {
            v4: sweep(v4),
            v6: sweep(v6),
        }
    }

    /// The number of ranges (the unit of the compile budget).
    pub(crate) fn range_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when the set holds no address.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Add every address of `other`.
    pub(crate) fn add(&mut self, other: &AddrSet) {
        self.v4 = union(&self.v4, &other.v4);
        self.v6 = union(&self.v6, &other.v6);
    }

    /// Remove every address of `other`.
    pub(crate) fn remove(&mut self, other: &AddrSet) {
        self.v4 = difference(&self.v4, &other.v4);
        self.v6 = difference(&self.v6, &other.v6);
    }

    /// True if `ip` is in the set.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => contains(&self.v4, u32::from(a)),
            IpAddr::V6(a) => contains(&self.v6, u128::from(a)),
        }
    }

    /// True if every address of the set is in `other`.
    pub(crate) fn is_subset_of(&self, other: &AddrSet) -> bool {
        let mut rest = self.clone();
        rest.remove(other);
        rest.is_empty()
    }

    /// True if the set shares an address with the prefix.
    pub(crate) fn overlaps_net(&self, net: &IpNet) -> bool {
        // A binary search, without building a set for the prefix.
        let net = net.trunc();
        match (net.network(), net.broadcast()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => overlaps_range(&self.v4, a.into(), b.into()),
            (IpAddr::V6(a), IpAddr::V6(b)) => overlaps_range(&self.v6, a.into(), b.into()),
            _ => false,
        }
    }

    /// The IPv4 ranges, as integers.
    pub(crate) fn v4_ranges(&self) -> &[(u32, u32)] {
        &self.v4
    }

    /// The IPv6 ranges, as integers.
    pub(crate) fn v6_ranges(&self) -> &[(u128, u128)] {
        &self.v6
    }

    /// The set as wire strings, IPv4 first, each range as a bare address, a CIDR when it is
    /// exactly one prefix, or `first-last`.
    pub(crate) fn to_wire(&self) -> Vec<String> {
        let v4 = self.v4.iter().map(|&(a, b)| {
            range_text(
                IpAddr::V4(Ipv4Addr::from(a)),
                IpAddr::V4(Ipv4Addr::from(b)),
                prefix_len(u128::from(a), u128::from(b), 32),
            )
        });
        let v6 = self.v6.iter().map(|&(a, b)| {
            range_text(
                IpAddr::V6(Ipv6Addr::from(a)),
                IpAddr::V6(Ipv6Addr::from(b)),
                prefix_len(a, b, 128),
            )
        });
        v4.chain(v6).collect()
    }

    /// The set as CIDR prefixes only (`/32` and `/128` for single addresses, ranges split
    /// into the fewest prefixes), for fields Tailscale types as `netip.Prefix`
    /// (`CapGrant.Dsts`), where a bare address or a range fails the client's decoding.
    /// How many prefixes [`AddrSet::to_prefixes`] writes, without writing them.
    pub(crate) fn prefix_count(&self) -> usize {
        let v4: usize = self
            .v4
            .iter()
            .map(|&(a, b)| ipnet::Ipv4Subnets::new(Ipv4Addr::from(a), Ipv4Addr::from(b), 0).count())
            .sum();
        let v6: usize = self
            .v6
            .iter()
            .map(|&(a, b)| ipnet::Ipv6Subnets::new(Ipv6Addr::from(a), Ipv6Addr::from(b), 0).count())
            .sum();
        v4.saturating_add(v6)
    }

    pub(crate) fn to_prefixes(&self) -> Vec<String> {
        let v4 = self.v4.iter().flat_map(|&(a, b)| {
            ipnet::Ipv4Subnets::new(Ipv4Addr::from(a), Ipv4Addr::from(b), 0).map(|n| n.to_string())
        });
        let v6 = self.v6.iter().flat_map(|&(a, b)| {
            ipnet::Ipv6Subnets::new(Ipv6Addr::from(a), Ipv6Addr::from(b), 0).map(|n| n.to_string())
        });
        v4.chain(v6).collect()
    }
}

/// Read one wire string: `*` is not accepted here; a bare address, a CIDR or `first-last`.
pub(crate) fn parse_wire(text: &str) -> Option<AddrSet> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(AddrSet::from_ip(ip));
    }
    if let Some(net) = aclc_policy::model::parse_prefix(text) {
        return Some(AddrSet::from_net(net));
    }
    let (a, b) = text.split_once('-')?;
    let (a, b) = (a.parse::<IpAddr>().ok()?, b.parse::<IpAddr>().ok()?);
    let set = AddrSet::from_range(a, b);
    (!set.is_empty()).then_some(set)
}

/// The wire spelling of a prefix: the bare address for a single address, else the masked CIDR.
pub(crate) fn net_wire(net: &IpNet) -> String {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// `a/len` when `[a, b]` is exactly one prefix.
fn prefix_len(a: u128, b: u128, bits: u32) -> Option<u8> {
    let size = b.wrapping_sub(a).wrapping_add(1);
    // The whole IPv6 space wraps to 0.
    if size == 0 {
        return (bits == 128 && a == 0).then_some(0);
    }
    if !size.is_power_of_two() || !a.is_multiple_of(size) {
        return None;
    }
    let host_bits = size.trailing_zeros();
    u8::try_from(bits.checked_sub(host_bits)?).ok()
}

fn range_text(first: IpAddr, last: IpAddr, len: Option<u8>) -> String {
    match len {
        _ if first == last => first.to_string(),
        Some(len) => format!("{first}/{len}"),
        None => format!("{first}-{last}"),
    }
}

/// Integer types the range algorithms work on.
pub(crate) trait Bound: Copy + Ord {
    const MAX: Self;
    fn next(self) -> Option<Self>;
    fn prev(self) -> Option<Self>;
}

impl Bound for u32 {
    const MAX: u32 = u32::MAX;
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<u32> {
        self.checked_sub(1)
    }
}

impl Bound for u16 {
    const MAX: u16 = u16::MAX;
    fn next(self) -> Option<u16> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<u16> {
        self.checked_sub(1)
    }
}

impl Bound for u128 {
    const MAX: u128 = u128::MAX;
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<u128> {
        self.checked_sub(1)
    }
}

fn union<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    normalize(a.iter().chain(b).copied().collect())
}

/// Sort ranges and merge the overlapping or adjacent ones (ranges with `first > last` are
/// dropped).
pub(crate) fn normalize<T: Bound>(mut all: Vec<(T, T)>) -> Vec<(T, T)> {
    all.retain(|&(first, last)| first <= last);
    all.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(all.len());
    for (first, last) in all {
        match out.last_mut() {
            // Merge overlapping or adjacent ranges.
            Some(prev) if prev.1.next().is_none_or(|n| n >= first) => {
                if last > prev.1 {
                    prev.1 = last;
                }
            }
            _ => out.push((first, last)),
        }
    }
    out
}

/// `a` without `b`, both sorted and disjoint: one merge pass, O(|a| + |b|) (a cut is looked at
/// again only by the next range of `a` when it reaches past the current one).
fn difference<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &(first, last) in a {
        // Cuts ending before this range end before every later one too.
        while b.get(j).is_some_and(|&(_, cut_last)| cut_last < first) {
            j += 1;
        }
        let mut start = Some(first);
        for &(cut_first, cut_last) in b.get(j..).unwrap_or_default() {
            if cut_first > last {
                break;
            }
            let Some(s) = start else { break };
            if cut_last < s || cut_first > last {
                continue;
            }
            if cut_first > s {
                if let Some(end) = cut_first.prev() {
                    out.push((s, end));
                }
            }
            start = cut_last.next().filter(|&n| n <= last);
        }
        if let Some(s) = start {
            out.push((s, last));
        }
    }
    out
}

/// The ranges in which the last step (highest index) covering each address adds it: a sweep
/// over the range ends with the set of steps covering the current position.
fn sweep<T: Bound>(ranges: Vec<(T, T, usize, bool)>) -> Vec<(T, T)> {
    if ranges.iter().all(|&(_, _, _, add)| add) {
        return normalize(ranges.into_iter().map(|(a, b, _, _)| (a, b)).collect());
    }
    // Events: at `pos`, step `i` starts (true) or stops (false) covering. A range ending at the
    // top of the address space never stops.
    let mut events: Vec<(T, bool, usize)> = Vec::with_capacity(ranges.len() * 2);
    let mut adds = Vec::new();
    for &(first, last, i, add) in &ranges {
        if first > last {
            continue;
        }
        events.push((first, true, i));
        if let Some(after) = last.next() {
            events.push((after, false, i));
        }
        if adds.len() <= i {
            adds.resize(i + 1, false);
        }
        if let Some(slot) = adds.get_mut(i) {
            *slot = add;
        }
    }
    events.sort_unstable_by_key(|x| x.0);
    let mut covering: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    let mut out: Vec<(T, T)> = Vec::new();
    let mut open: Option<T> = None;
    let mut k = 0;
    while let Some(&(pos, _, _)) = events.get(k) {
        while let Some(&(p, starts, i)) = events.get(k) {
            if p != pos {
                break;
            }
            // A step's own ranges are disjoint and never adjacent, so it cannot start and
            // stop at the same position.
            if starts {
                covering.insert(i);
            } else {
                covering.remove(&i);
            }
            k += 1;
        }
        let inside = covering
            .last()
            .is_some_and(|&i| adds.get(i).copied().unwrap_or(false));
        match (open, inside) {
            (None, true) => open = Some(pos),
            (Some(start), false) => {
                if let Some(end) = pos.prev() {
                    out.push((start, end));
                }
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        out.push((start, T::MAX));
    }
    // Neighbouring pieces may touch (a step ending where an equal step begins): merge them.
    normalize(out)
}

fn contains<T: Bound>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|&(_, last)| last < x);
    ranges.get(i).is_some_and(|&(first, _)| first <= x)
}

/// True if some range of `ranges` meets `[first, last]`.
fn overlaps_range<T: Bound>(ranges: &[(T, T)], first: T, last: T) -> bool {
    let i = ranges.partition_point(|&(_, end)| end < first);
    ranges.get(i).is_some_and(|&(start, _)| start <= last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(texts: &[&str]) -> AddrSet {
        AddrSet::from_wire(texts.iter().copied())
    }

    #[test]
    fn tailnet_ranges_round_trip() {
        let mut cgnat = set(&["100.64.0.0/10", "fd7a:115c:a1e0::/48"]);
        cgnat.remove(&set(&["100.115.92.0/23"]));
        assert_eq!(cgnat.to_wire(), TAILNET_WIRE);
    }

    #[test]
    fn wire_spelling() {
        assert_eq!(set(&["10.0.0.1"]).to_wire(), ["10.0.0.1"]);
        assert_eq!(set(&["10.0.0.0/8"]).to_wire(), ["10.0.0.0/8"]);
        assert_eq!(set(&["10.0.0.1-10.0.0.9"]).to_wire(), ["10.0.0.1-10.0.0.9"]);
        assert_eq!(set(&["10.0.0.0-10.0.0.255"]).to_wire(), ["10.0.0.0/24"]);
        assert_eq!(set(&["::/0"]).to_wire(), ["::/0"]);
        assert_eq!(set(&["0.0.0.0/0"]).to_wire(), ["0.0.0.0/0"]);
        assert_eq!(net_wire(&"10.33.0.100/32".parse().unwrap()), "10.33.0.100");
        assert_eq!(net_wire(&"10.33.1.0/16".parse().unwrap()), "10.33.0.0/16");
    }

    #[test]
    fn prefix_spelling() {
        assert_eq!(set(&["10.0.0.1"]).to_prefixes(), ["10.0.0.1/32"]);
        assert_eq!(set(&["10.0.0.0/8"]).to_prefixes(), ["10.0.0.0/8"]);
        assert_eq!(
            set(&["10.0.0.1-10.0.0.4"]).to_prefixes(),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/32"]
        );
        assert_eq!(set(&["fd00::1"]).to_prefixes(), ["fd00::1/128"]);
        assert_eq!(
            set(&["::/0", "0.0.0.0/0"]).to_prefixes(),
            ["0.0.0.0/0", "::/0"]
        );
    }

    #[test]
    fn set_operations() {
        let mut s = set(&["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(s.to_wire(), ["10.0.0.0/23"]);
        s.remove(&set(&["10.0.0.128/25"]));
        assert_eq!(s.to_wire(), ["10.0.0.0/25", "10.0.1.0/24"]);
        assert!(s.contains("10.0.1.7".parse().unwrap()));
        assert!(!s.contains("10.0.0.200".parse().unwrap()));
        assert!(s.overlaps_net(&"10.0.0.0/16".parse().unwrap()));
        assert!(!s.overlaps_net(&"10.0.0.128/26".parse().unwrap()));
        assert!(set(&["10.0.1.0/25"]).is_subset_of(&s));
        assert!(!set(&["10.0.0.0/24"]).is_subset_of(&s));
        let mut all = set(&["0.0.0.0/0"]);
        all.remove(&set(&["0.0.0.0/0"]));
        assert!(all.is_empty());
    }

    mod differential {
        use super::*;
        use proptest::prelude::*;

        /// A set of a few ranges near the top of both address spaces (so the sweep's
        /// "no end" case is exercised), from (family, offset, length) triples.
        fn build(parts: &[(bool, u8, u8)]) -> AddrSet {
            let mut set = AddrSet::new();
            for &(v6, offset, len) in parts {
                let len = u32::from(len % 40);
                let first = 255 - u32::from(offset);
                let last = (first + len).min(255);
                let part = if v6 {
                    let base = u128::MAX - 255;
                    AddrSet::from_range(
                        IpAddr::V6(Ipv6Addr::from(base + u128::from(first))),
                        IpAddr::V6(Ipv6Addr::from(base + u128::from(last))),
                    )
                } else {
                    let base = u32::MAX - 255;
                    AddrSet::from_range(
                        IpAddr::V4(Ipv4Addr::from(base + first)),
                        IpAddr::V4(Ipv4Addr::from(base + last)),
                    )
                };
                set.add(&part);
            }
            set
        }

        fn parts() -> impl Strategy<Value = Vec<(bool, u8, u8)>> {
            proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u8>()), 0..6)
        }

        proptest! {
            #[test]
            fn bulk_union_equals_incremental_adds(sets in proptest::collection::vec(parts(), 0..12)) {
                let sets: Vec<AddrSet> = sets.iter().map(|p| build(p)).collect();
                let mut incremental = AddrSet::new();
                for set in &sets {
                    incremental.add(set);
                }
                prop_assert_eq!(&AddrSet::union_of(&sets), &incremental);
                let ips: Vec<IpAddr> = incremental
                    .v4_ranges()
                    .iter()
                    .flat_map(|&(a, b)| (a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))))
                    .collect();
                let v4_only = AddrSet::from_ips(ips);
                prop_assert_eq!(v4_only.v4_ranges(), incremental.v4_ranges());
            }

            #[test]
            fn steps_equal_incremental_adds_and_removes(
                steps in proptest::collection::vec((any::<bool>(), parts()), 0..12),
            ) {
                let steps: Vec<(bool, AddrSet)> =
                    steps.iter().map(|(add, p)| (*add, build(p))).collect();
                let mut incremental = AddrSet::new();
                for (add, set) in &steps {
                    if *add {
                        incremental.add(set);
                    } else {
                        incremental.remove(set);
                    }
                }
                let swept = AddrSet::from_steps(steps.iter().map(|(add, set)| (*add, set)));
                prop_assert_eq!(swept, incremental);
            }

            #[test]
            fn difference_agrees_with_membership(a in parts(), b in parts()) {
                let (a, b) = (build(&a), build(&b));
                let mut rest = a.clone();
                rest.remove(&b);
                for x in 0..=255u32 {
                    let ip = IpAddr::V4(Ipv4Addr::from(u32::MAX - 255 + x));
                    prop_assert_eq!(rest.contains(ip), a.contains(ip) && !b.contains(ip));
                    let ip = IpAddr::V6(Ipv6Addr::from(u128::MAX - 255 + u128::from(x)));
                    prop_assert_eq!(rest.contains(ip), a.contains(ip) && !b.contains(ip));
                }
            }
        }
    }

    #[test]
    fn internet_set() {
        let mut v4 = set(&["0.0.0.0/0"]);
        v4.remove(&set(&[
            "10.0.0.0/8",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
        ]));
        let wire = v4.to_wire();
        assert_eq!(wire, INTERNET_WIRE[..6]);
    }
}
