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

    /// True if the set and `other` share an address.
    pub(crate) fn overlaps(&self, other: &AddrSet) -> bool {
        overlaps(&self.v4, &other.v4) || overlaps(&self.v6, &other.v6)
    }

    /// True if every address of the set is in `other`.
    pub(crate) fn is_subset_of(&self, other: &AddrSet) -> bool {
        let mut rest = self.clone();
        rest.remove(other);
        rest.is_empty()
    }

    /// True if the set shares an address with the prefix.
    pub(crate) fn overlaps_net(&self, net: &IpNet) -> bool {
        self.overlaps(&AddrSet::from_net(*net))
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
    if let Ok(net) = text.parse::<IpNet>() {
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
    if !size.is_power_of_two() || a % size != 0 {
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
trait Bound: Copy + Ord {
    fn next(self) -> Option<Self>;
    fn prev(self) -> Option<Self>;
}

impl Bound for u32 {
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<u32> {
        self.checked_sub(1)
    }
}

impl Bound for u128 {
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<u128> {
        self.checked_sub(1)
    }
}

fn union<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut all: Vec<(T, T)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(all.len());
    for (first, last) in all {
        match out.last_mut() {
            // Merge overlapping or adjacent ranges.
            Some(prev) if prev.1.next().map_or(true, |n| n >= first) => {
                if last > prev.1 {
                    prev.1 = last;
                }
            }
            _ => out.push((first, last)),
        }
    }
    out
}

fn difference<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(a.len());
    for &(first, last) in a {
        let mut start = Some(first);
        for &(cut_first, cut_last) in b {
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

fn contains<T: Bound>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|&(_, last)| last < x);
    ranges.get(i).is_some_and(|&(first, _)| first <= x)
}

fn overlaps<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a1, a2)), Some(&(b1, b2))) = (a.get(i), b.get(j)) {
        if a2 < b1 {
            i += 1;
        } else if b2 < a1 {
            j += 1;
        } else {
            return true;
        }
    }
    false
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
