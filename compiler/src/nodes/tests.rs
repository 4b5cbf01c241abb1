//! Unit tests of the node table: ordering, lookups, and patched tables against built ones.

use super::*;
use crate::inventory::{Node, Tailnet};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

#[test]
fn node_tags_are_lowercase_and_listed_once() {
    let tags = |list: &[&str]| -> Vec<String> {
        node_tags(&list.iter().map(|t| t.to_string()).collect::<Vec<_>>())
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    assert_eq!(
        tags(&["tag:Server", "tag:db", "tag:server"]),
        ["tag:server", "tag:db"]
    );
    let many: Vec<String> = (0..40).map(|i| format!("tag:T{}", i % 20)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("tag:t{i}")).collect();
    assert_eq!(tags(&many), expected);
}

#[test]
fn a_pair_holds_the_first_two_values() {
    for n in 0..4u32 {
        let mut pair: Pair<u32> = (10..10 + n).collect();
        let expected: Vec<u32> = (10..10 + n.min(2)).collect();
        assert_eq!(&pair[..], &expected[..], "{n} values");
        pair.iter_mut().for_each(|v| *v += 1);
        let bumped: Vec<u32> = expected.iter().map(|v| v + 1).collect();
        assert_eq!((&pair).into_iter().copied().collect::<Vec<_>>(), bumped);
    }
}

fn table_of(addresses: &[(Option<Ipv4Addr>, Option<Ipv6Addr>)]) -> Option<NodeTable> {
    let names: Vec<usize> = (0..addresses.len()).collect();
    Some(NodeTable::new(&inventory_of(&names, addresses)?))
}

/// Nodes `n<name>` with these addresses, tagged.
fn inventory_of(
    names: &[usize],
    addresses: &[(Option<Ipv4Addr>, Option<Ipv6Addr>)],
) -> Option<Inventory> {
    let nodes: Vec<Node> = names
        .iter()
        .zip(addresses)
        .map(|(i, &(ipv4, ipv6))| Node {
            name: format!("n{i}"),
            hostname: None,
            user: None,
            tags: vec!["tag:t".to_string()],
            ipv4,
            ipv6,
            routable_ips: Vec::new(),
            approved_routes: Vec::new(),
            posture: BTreeMap::new(),
        })
        .collect();
    let order = nodes.iter().map(|n| n.name.clone()).collect();
    Inventory::new(Vec::new(), nodes, order, Tailnet::default()).ok()
}

proptest! {
    /// Differential: the copy-free lowercasing equals `str::to_lowercase`.
    #[test]
    fn lowercase_equals_to_lowercase(text in "[a-zA-Z@._ǅİΣσß0-9-]{0,12}|\\PC{0,8}") {
        let (mine, std) = (lowercase(&text).into_owned(), text.to_lowercase());
        prop_assert_eq!(mine, std);
    }
}

proptest! {
    /// Differential: the merge walk translates ids exactly as a lookup by name does,
    /// whatever nodes the two tables share (and whether or not they share records).
    #[test]
    fn ids_translate_as_names_do(
        old in proptest::collection::btree_set(0usize..40, 0..30),
        new in proptest::collection::btree_set(0usize..40, 0..30),
    ) {
        let of = |names: &std::collections::BTreeSet<usize>| {
            let names: Vec<usize> = names.iter().copied().collect();
            let addresses: Vec<_> = names
                .iter()
                .map(|&i| (Some(Ipv4Addr::new(100, 64, 0, i as u8)), None))
                .collect();
            NodeTable::new(&inventory_of(&names, &addresses).expect("an inventory"))
        };
        let (a, b) = (of(&old), of(&new));
        let expected: Vec<u32> = a
            .nodes
            .iter()
            .map(|n| b.id(&n.name).map_or(u32::MAX, |id| index(id.index())))
            .collect();
        prop_assert_eq!(translate_ids(&a, &b), expected);
    }
}

proptest! {
    /// Differential: a patched table's translation from the table it was patched from
    /// (made from the patch's moves) equals the walk by name, whatever nodes were removed,
    /// added, or changed in place (a retag: removed and added under one name).
    #[test]
    fn a_patch_translates_as_names_do(
        old in proptest::collection::btree_set(0usize..40, 1..30),
        gone in proptest::collection::btree_set(0usize..40, 0..6),
        came in proptest::collection::btree_set(0usize..40, 0..6),
        retagged in proptest::collection::btree_set(0usize..40, 0..4),
    ) {
        use crate::inventory::Registration;
        let users: Arc<[crate::inventory::User]> = Arc::from(Vec::new());
        let node = |i: usize, tag: &str| Arc::new(Node {
            name: format!("n{i}"),
            hostname: None,
            user: None,
            tags: vec![tag.to_string()],
            ipv4: Some(Ipv4Addr::new(100, 64, 0, i as u8)),
            ipv6: None,
            routable_ips: Vec::new(),
            approved_routes: Vec::new(),
            posture: BTreeMap::new(),
        });
        let inventory = |nodes: Vec<Arc<Node>>| {
            crate::inventory::Inventory::sharing_users(
                users.clone(),
                None,
                nodes,
                Registration::NodeOrder,
                Tailnet::default(),
            )
            .expect("an inventory")
        };
        let before = inventory(old.iter().map(|&i| node(i, "tag:a")).collect());
        let mut now: Vec<Arc<Node>> = Vec::new();
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for &i in &old {
            if gone.contains(&i) {
                removed.push(format!("n{i}"));
            } else if retagged.contains(&i) {
                removed.push(format!("n{i}"));
                added.push(format!("n{i}"));
                now.push(node(i, "tag:b"));
            } else {
                now.push(node(i, "tag:a"));
            }
        }
        for &i in came.iter().filter(|i| !old.contains(i)) {
            added.push(format!("n{i}"));
            now.push(node(i, "tag:a"));
        }
        let after = inventory(now);
        let earlier = NodeTable::new(&before);
        let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
        let added: Vec<&str> = added.iter().map(String::as_str).collect();
        let patched = NodeTable::patched(&after, &earlier, &removed, &added)
            .expect("a patchable change");
        prop_assert!(patched.translated.is_some());
        prop_assert_eq!(translate_ids(&earlier, &patched), walk_names(&earlier, &patched));
        // A table the patch did not start from is translated by the walk.
        let other = NodeTable::new(&before);
        prop_assert_eq!(translate_ids(&other, &patched), walk_names(&other, &patched));
    }
}

#[test]
fn kept_nodes_pair_up_by_name() {
    let v4 = |i: u8| (Some(Ipv4Addr::new(100, 64, 0, i)), None);
    let earlier = table_of(&[v4(1), v4(2), v4(3)]).expect("a table");
    // n1 changed its address: it is the changed node, before and after.
    let now = table_of(&[v4(1), v4(9), v4(3)]).expect("a table");
    let n1 = [NodeId::new(1)];
    assert_eq!(
        now.kept_from(&earlier, &n1, &n1),
        Some(vec![Some(NodeId::new(0)), None, Some(NodeId::new(2))])
    );
    // Naming the wrong node before: n0 of now would pair with n1 of earlier.
    let n0 = [NodeId::new(0)];
    assert_eq!(now.kept_from(&earlier, &n0, &n1), None);
    // A node left: n3 is not in the table now.
    let fewer = table_of(&[v4(1), v4(2)]).expect("a table");
    assert_eq!(
        fewer.kept_from(&earlier, &[NodeId::new(2)], &[]),
        Some(vec![Some(NodeId::new(0)), Some(NodeId::new(1))])
    );
    assert_eq!(fewer.kept_from(&earlier, &[], &[]), None);
}

proptest! {
    /// Differential: the ranks sort the address texts exactly as strings sort, whatever
    /// prefixes they share (IPv6 addresses of one tailnet share their first 15 bytes).
    #[test]
    fn ranks_follow_string_order(
        addresses in proptest::collection::btree_set(
            (any::<u32>(), prop_oneof![Just(0u128), any::<u128>(), 0u128..70_000]),
            1..60,
        ),
    ) {
        let base = u128::from(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0));
        let mut seen4 = std::collections::HashSet::new();
        let mut seen6 = std::collections::HashSet::new();
        let pairs: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)> = addresses
            .iter()
            .map(|&(v4, v6)| {
                let v4 = Ipv4Addr::from(v4 % 4096 + 0x0102_0000);
                let v6 = Ipv6Addr::from(if v6 < 70_000 { base + v6 } else { v6 });
                // Addresses no device can have are refused by the inventory.
                let v6 = match crate::inventory::device_address(IpAddr::V6(v6)) {
                    true => v6,
                    false => Ipv6Addr::from(base + 70_000 + (u128::from(v6) % 70_000)),
                };
                (seen4.insert(v4).then_some(v4), seen6.insert(v6).then_some(v6))
            })
            .filter(|(a, b)| a.is_some() || b.is_some())
            .collect();
        let table = table_of(&pairs).expect("a valid inventory");
        let mut expected: Vec<String> = table
            .nodes
            .iter()
            .flat_map(|n| n.texts.iter().map(|t| t.to_string()))
            .collect();
        expected.sort();
        let texts: Vec<String> = (0..table.texts.len())
            .filter_map(|r| table.text_at(index(r)))
            .map(|t| t.to_string())
            .collect();
        prop_assert_eq!(&texts, &expected);
        for (node, ranks) in table.nodes.iter().zip(&table.ranks) {
            for (t, &r) in node.texts.iter().zip(ranks) {
                prop_assert_eq!(Some(t), table.text_at(r));
            }
        }
    }

    /// Differential: a table built from an earlier one (nodes kept, some readdressed,
    /// some gone, some new) ranks its texts as one built afresh.
    #[test]
    fn ranks_from_an_earlier_table_equal_ranks_afresh(
        first in proptest::collection::btree_map(0usize..40, (0u32..64, 0u128..64), 1..30),
        changes in proptest::collection::vec((0usize..40, proptest::option::of((0u32..64, 0u128..64))), 0..8),
    ) {
        let base6 = u128::from(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0));
        let build = |nodes: &std::collections::BTreeMap<usize, (u32, u128)>| {
            // Unique addresses: a later node repeating one goes without it.
            let mut seen4 = std::collections::HashSet::new();
            let mut seen6 = std::collections::HashSet::new();
            let (names, addresses): (Vec<usize>, Vec<_>) = nodes
                .iter()
                .map(|(&n, &(a, b))| {
                    let v4 = Ipv4Addr::from(0x6440_0000 + a * 7);
                    let v6 = Ipv6Addr::from(base6 + b * 300);
                    (n, (seen4.insert(v4).then_some(v4), seen6.insert(v6).then_some(v6)))
                })
                .filter(|(_, (a, b))| a.is_some() || b.is_some())
                .unzip();
            inventory_of(&names, &addresses)
        };
        // The second tailnet is the first changed: nodes readdressed, added, removed.
        let mut second_nodes = first.clone();
        for (n, change) in &changes {
            match change {
                Some(addresses) => second_nodes.insert(*n, *addresses),
                None => second_nodes.remove(n),
            };
        }
        let (Some(before), Some(after)) = (build(&first), build(&second_nodes)) else {
            return Ok(());
        };
        let earlier = NodeTable::new(&before);
        let reused = NodeTable::reusing(&after, Some(&earlier));
        let fresh = NodeTable::new(&after);
        prop_assert_eq!(&reused.texts, &fresh.texts);
        let strings = |t: &NodeTable| {
            (0..t.texts.len())
                .map(|r| t.text_at(index(r)).map(|s| s.to_string()))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(strings(&reused), strings(&fresh));
        // The same nodes in the same (name) order.
        let names = |t: &NodeTable| t.nodes.iter().map(|n| n.name.to_string()).collect::<Vec<_>>();
        prop_assert_eq!(names(&reused), names(&fresh));
        for (a, b) in reused.nodes.iter().zip(&fresh.nodes) {
            prop_assert_eq!(&a.texts, &b.texts);
            prop_assert_eq!(&a.hosts, &b.hosts);
        }
        prop_assert_eq!(&reused.ranks, &fresh.ranks);
    }

    /// Differential: the routers found through the route index are those whose routes
    /// overlap the set, router by router.
    #[test]
    fn source_nodes_equal_testing_every_router(
        served in proptest::collection::vec(proptest::collection::vec((any::<u8>(), 0u8..9), 0..3), 1..20),
        first in any::<u8>(),
        span in 0u8..64,
    ) {
        let nodes: Vec<Node> = served
            .iter()
            .enumerate()
            .map(|(i, routes)| {
                let routes: Vec<IpNet> = routes
                    .iter()
                    .map(|&(b, l)| {
                        let net = ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 0, b), 24 + l).unwrap();
                        IpNet::V4(net.trunc())
                    })
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Node {
                    name: format!("r{i}"),
                    hostname: None,
                    user: None,
                    tags: vec!["tag:r".to_string()],
                    ipv4: Some(Ipv4Addr::new(100, 64, 0, i as u8)),
                    ipv6: None,
                    routable_ips: routes.clone(),
                    approved_routes: routes,
                    posture: BTreeMap::new(),
                }
            })
            .collect();
        let order = nodes.iter().map(|n| n.name.clone()).collect();
        let inventory = Inventory::new(Vec::new(), nodes, order, Tailnet::default()).unwrap();
        let mut table = NodeTable::new(&inventory);
        crate::routes::apply(&mut table, None);
        let last = first.saturating_add(span);
        let set = AddrSet::from_range(
            Ipv4Addr::new(10, 0, 0, first).into(),
            Ipv4Addr::new(10, 0, 0, last).into(),
        );
        let mut expected = table.addressed_in(&set);
        expected.extend(
            table
                .routers
                .iter()
                .copied()
                .filter(|&id| table.get(id).is_some_and(|n| n.routes_overlap(&set))),
        );
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(table.source_nodes(&set), expected);
    }
}
proptest! {
    /// Differential: the nodes with an address in a set are those a test of each node's
    /// addresses gives, whether every node has an address of a family (which one range of
    /// the set may hold whole: every node, without a walk) or not.
    #[test]
    fn addressed_nodes_are_those_a_test_per_node_gives(
        nodes in proptest::collection::vec((0u8..4, 0u8..64), 0..40),
        ranges in proptest::collection::vec((0u8..80, 0u8..80, any::<bool>()), 0..4),
    ) {
        let addresses: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, &(family, at))| {
                let v4 = Ipv4Addr::new(100, 64, at, i as u8);
                let v6 = Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(at), i as u16);
                match family {
                    0 => (Some(v4), None),
                    1 => (None, Some(v6)),
                    _ => (Some(v4), Some(v6)),
                }
            })
            .collect();
        let Some(table) = table_of(&addresses) else { return Ok(()) };
        let parts: Vec<AddrSet> = ranges
            .iter()
            .map(|&(a, b, six)| {
                let (a, b) = (a.min(b), a.max(b));
                match six {
                    false => AddrSet::from_range(
                        Ipv4Addr::new(100, 64, a, 0).into(),
                        Ipv4Addr::new(100, 64, b, 255).into(),
                    ),
                    true => AddrSet::from_range(
                        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(a), 0).into(),
                        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, u16::from(b), 0xffff)
                            .into(),
                    ),
                }
            })
            .collect();
        let set = AddrSet::union_of(&parts);
        let expected: Vec<NodeId> = (0..table.len())
            .map(NodeId::new)
            .filter(|&id| {
                table.get(id).is_some_and(|n| {
                    n.v4.is_some_and(|a| set.contains(a.into()))
                        || n.v6.is_some_and(|a| set.contains(a.into()))
                })
            })
            .collect();
        prop_assert_eq!(table.addressed_in(&set), expected);
    }
}
