//! Which subnet routes each rule target overlaps, found from the target's side: the routes
//! starting inside its address ranges and the prefixes holding each range's first address, or
//! the routes its nodes' addresses fall in. Testing every rule item against every route cost
//! O(routes x items): a tenth of a second of every compile on `large` (1,022 routes, 10,000
//! items), and ten times that with ten times the routes.

use crate::hash::Map as HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::addrset::AddrSet;
use crate::nodes::NodeId;
use crate::resolve::Target;

/// Finds the routes (indexes into the route list it was built from) rule targets overlap,
/// each distinct target once.
#[derive(Debug)]
pub(crate) struct RouteFinder {
    nets: Vec<IpNet>,
    by_net: HashMap<IpNet, u32>,
    /// Each route's first address and index, by first address.
    v4_starts: Vec<(u32, u32)>,
    v6_starts: Vec<(u128, u32)>,
    /// The routes each node has an address in (only nodes that have one).
    node_routes: HashMap<NodeId, Vec<u32>>,
    /// The routes `autogroup:internet` overlaps.
    internet: Vec<u32>,
    /// Found lists by target (the address of its shared list: the targets outlive the finder).
    memo: HashMap<usize, Vec<u32>>,
}

impl RouteFinder {
    /// A finder for the routes `nets`, `inside[r]` being the nodes with an address in route
    /// `r`. O(routes + sum of `inside`).
    pub(crate) fn new(nets: Vec<IpNet>, inside: &[Vec<NodeId>], internet: &AddrSet) -> Self {
        let mut by_net = HashMap::with_capacity_and_hasher(nets.len(), Default::default());
        let (mut v4_starts, mut v6_starts) = (Vec::new(), Vec::new());
        let mut node_routes: HashMap<NodeId, Vec<u32>> = HashMap::default();
        for (r, net) in nets.iter().enumerate() {
            let r = crate::nodes::index(r);
            let net = net.trunc();
            by_net.entry(net).or_insert(r);
            match net {
                IpNet::V4(n) => v4_starts.push((u32::from(n.network()), r)),
                IpNet::V6(n) => v6_starts.push((u128::from(n.network()), r)),
            }
        }
        for (r, ids) in inside.iter().enumerate() {
            for &id in ids {
                node_routes
                    .entry(id)
                    .or_default()
                    .push(crate::nodes::index(r));
            }
        }
        v4_starts.sort_unstable();
        v6_starts.sort_unstable();
        let internet = (0..nets.len())
            .filter(|&r| nets.get(r).is_some_and(|n| internet.overlaps_net(n)))
            .map(crate::nodes::index)
            .collect();
        RouteFinder {
            nets,
            by_net,
            v4_starts,
            v6_starts,
            node_routes,
            internet,
            memo: HashMap::default(),
        }
    }

    /// Add to `out` the routes some target of `targets` overlaps, sorted and without
    /// repeats; `true` (and `out` left as it is) when one overlaps every route (`*`).
    pub(crate) fn collect(&mut self, targets: &[Target], out: &mut Vec<u32>) -> bool {
        for target in targets {
            match target {
                Target::Wildcard | Target::DangerAll => return true,
                Target::SelfDevices => {}
                Target::Internet => out.extend_from_slice(&self.internet),
                Target::Nodes(ids) => {
                    let key = ids.as_ptr() as usize;
                    if !self.memo.contains_key(&key) {
                        let found = self.of_nodes(ids);
                        self.memo.insert(key, found);
                    }
                    out.extend(self.memo.get(&key).into_iter().flatten());
                }
                Target::Literal(lit) => {
                    let key = std::sync::Arc::as_ptr(lit) as usize;
                    if !self.memo.contains_key(&key) {
                        let found = self.of_set(&lit.set);
                        self.memo.insert(key, found);
                    }
                    out.extend(self.memo.get(&key).into_iter().flatten());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        false
    }

    /// The routes some node of `ids` (sorted) has an address in: from the nodes, or from
    /// the few nodes inside routes, whichever list is shorter.
    fn of_nodes(&self, ids: &[NodeId]) -> Vec<u32> {
        let mut out = Vec::new();
        if self.node_routes.len() < ids.len() {
            for (id, routes) in &self.node_routes {
                if ids.binary_search(id).is_ok() {
                    out.extend_from_slice(routes);
                }
            }
        } else {
            for id in ids {
                out.extend(self.node_routes.get(id).into_iter().flatten());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The routes an address set overlaps: from its ranges (the routes starting inside
    /// each, and the prefixes holding its first address), or by testing each route when
    /// the set has so many ranges that this is cheaper.
    pub(crate) fn of_set(&self, set: &AddrSet) -> Vec<u32> {
        let ranges = set.range_count();
        let from_routes = self
            .nets
            .len()
            .saturating_mul(usize::BITS as usize - ranges.leading_zeros() as usize + 1);
        if from_routes <= ranges.saturating_mul(48) {
            return (0..self.nets.len())
                .filter(|&r| self.nets.get(r).is_some_and(|n| set.overlaps_net(n)))
                .map(crate::nodes::index)
                .collect();
        }
        self.by_ranges(set)
    }

    /// [`RouteFinder::of_set`] from the set's ranges: O(ranges x (log routes + prefix
    /// lengths) + the routes found).
    fn by_ranges(&self, set: &AddrSet) -> Vec<u32> {
        let mut out = Vec::new();
        for &(first, last) in set.v4_ranges() {
            out.extend(starting_in(&self.v4_starts, first, last));
            for len in 0..=32 {
                if let Ok(net) = Ipv4Net::new(Ipv4Addr::from(first), len) {
                    out.extend(self.by_net.get(&IpNet::V4(net.trunc())));
                }
            }
        }
        for &(first, last) in set.v6_ranges() {
            out.extend(starting_in(&self.v6_starts, first, last));
            for len in 0..=128 {
                if let Ok(net) = Ipv6Net::new(Ipv6Addr::from(first), len) {
                    out.extend(self.by_net.get(&IpNet::V6(net.trunc())));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The routes (of `starts`, sorted by first address) whose first address is in
/// `first..=last`.
fn starting_in<T: Ord + Copy>(
    starts: &[(T, u32)],
    first: T,
    last: T,
) -> impl Iterator<Item = u32> + '_ {
    let at = starts.partition_point(|&(s, _)| s < first);
    starts
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(move |&&(s, _)| s <= last)
        .map(|&(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Small IPv4 prefixes inside 10.0.0.0/24, so that they nest and overlap often.
    fn net(bits: u32, len: u8) -> IpNet {
        let len = 24 + len % 9;
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (bits & 0xff)), len)
                .unwrap()
                .trunc(),
        )
    }

    /// The routes found for `set` among `nets` (distinct prefixes), from the set's ranges and
    /// whichever way the finder picks, against each route's own test.
    fn check_set(nets: Vec<IpNet>, set: &AddrSet) -> Result<(), TestCaseError> {
        let expected: Vec<u32> = (0..nets.len())
            .filter(|&r| set.overlaps_net(&nets[r]))
            .map(|r| r as u32)
            .collect();
        let finder = RouteFinder::new(nets, &[], &AddrSet::new());
        prop_assert_eq!(finder.by_ranges(set), expected.clone());
        prop_assert_eq!(finder.of_set(set), expected);
        Ok(())
    }

    proptest! {
        /// Differential: the routes found from a set's side are those each route's own test
        /// finds, whichever way the finder goes.
        #[test]
        fn equals_testing_every_route(
            routes in proptest::collection::btree_set((any::<u32>(), any::<u8>()), 0..40),
            ranges in proptest::collection::vec((any::<u8>(), 0u8..20), 1..6),
        ) {
            let nets: Vec<IpNet> = routes.iter().map(|&(b, l)| net(b, l)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let set = AddrSet::from_steps(ranges.iter().map(|&(start, span)| {
                let first = Ipv4Addr::from(0x0a00_0000 | u32::from(start));
                let last = Ipv4Addr::from((0x0a00_0000 | u32::from(start)).saturating_add(u32::from(span)).min(0x0a00_00ff));
                (true, AddrSet::from_range(first.into(), last.into()))
            }).collect::<Vec<_>>().iter().map(|(add, s)| (*add, s)));
            check_set(nets, &set)?;
        }

        /// The same for IPv6 prefixes nesting inside one /120.
        #[test]
        fn ipv6_equals_testing_every_route(
            routes in proptest::collection::btree_set((any::<u8>(), any::<u8>()), 0..40),
            ranges in proptest::collection::vec((any::<u8>(), 0u8..20), 1..6),
        ) {
            let base = u128::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
            let nets: Vec<IpNet> = routes
                .iter()
                .map(|&(b, l)| {
                    let net = Ipv6Net::new(Ipv6Addr::from(base | u128::from(b)), 120 + l % 9);
                    IpNet::V6(net.unwrap().trunc())
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let pieces: Vec<AddrSet> = ranges
                .iter()
                .map(|&(start, span)| {
                    let first = base | u128::from(start);
                    let last = (first + u128::from(span)).min(base | 0xff);
                    AddrSet::from_range(Ipv6Addr::from(first).into(), Ipv6Addr::from(last).into())
                })
                .collect();
            let set = AddrSet::from_steps(pieces.iter().map(|p| (true, p)));
            check_set(nets, &set)?;
        }

        /// Differential: the routes a node list overlaps, from the nodes' side or from the
        /// routes' side, are those whose inside holds one of the nodes.
        #[test]
        fn nodes_equal_testing_every_route(
            inside in proptest::collection::vec(proptest::collection::btree_set(0usize..30, 0..6), 0..12),
            ids in proptest::collection::btree_set(0usize..30, 0..30),
        ) {
            let nets: Vec<IpNet> = (0..inside.len())
                .map(|r| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (r as u32) << 8), 24).unwrap()))
                .collect();
            let inside: Vec<Vec<NodeId>> = inside
                .iter()
                .map(|s| s.iter().map(|&i| NodeId::new(i)).collect())
                .collect();
            let ids: Vec<NodeId> = ids.iter().map(|&i| NodeId::new(i)).collect();
            let finder = RouteFinder::new(nets.clone(), &inside, &AddrSet::new());
            let expected: Vec<u32> = (0..inside.len())
                .filter(|&r| inside[r].iter().any(|id| ids.binary_search(id).is_ok()))
                .map(|r| r as u32)
                .collect();
            prop_assert_eq!(finder.of_nodes(&ids), expected);
        }
    }
}
