//! Unit tests of the per-node index (ItemIndex, PerNode).

use super::*;
use proptest::prelude::*;

fn ids(list: &[usize]) -> Vec<NodeId> {
    list.iter().map(|&i| NodeId::new(i)).collect()
}

proptest! {
    /// Differential: the flat lists equal a vector per node filled the simple way.
    #[test]
    fn equals_a_vector_per_node(
        nodes in 0usize..40,
        items in proptest::collection::vec(proptest::collection::vec(0usize..45, 0..12), 0..30),
    ) {
        let lists: Vec<Vec<NodeId>> = items.iter().map(|l| ids(l)).collect();
        let built = PerNode::<u32>::from_lists(
            nodes,
            lists.iter().enumerate().map(|(i, l)| (i as u32, l.as_slice())),
        );
        let mut simple = vec![Vec::new(); nodes];
        for (i, list) in lists.iter().enumerate() {
            for id in list {
                if let Some(v) = simple.get_mut(id.index()) {
                    if v.last() != Some(&(i as u32)) {
                        v.push(i as u32);
                    }
                }
            }
        }
        prop_assert_eq!(built.len(), nodes);
        for (n, want) in simple.iter().enumerate() {
            prop_assert_eq!(built.get(n), want.as_slice());
        }
        prop_assert!(built.get(nodes).is_empty());
    }
}

proptest! {
    /// Differential: ascending lists filled block by block (blocks of a few entries, so
    /// lists span many) equal the lists filled pair by pair, repeated pairs and ids past
    /// the node count included.
    #[test]
    fn blocks_equal_pair_by_pair(
        nodes in 0usize..40,
        items in proptest::collection::vec(
            (0u32..4, proptest::collection::vec(0usize..45, 0..12)), 0..30),
        block in 1usize..20,
    ) {
        let mut item = 0u32;
        let lists: Vec<(u32, Vec<NodeId>)> = items
            .iter()
            .map(|(step, l)| {
                item += step;
                let mut l = ids(l);
                l.sort_unstable();
                (item, l)
            })
            .collect();
        let lists: Vec<(u32, &[NodeId])> =
            lists.iter().map(|(i, l)| (*i, l.as_slice())).collect();
        let pairs = || {
            lists
                .iter()
                .flat_map(|&(item, ids)| ids.iter().map(move |&id| (id, item)))
        };
        let starts = counted(nodes, pairs());
        let (ends, entries) = filled::<u32>(&starts, pairs());
        let unique = order(&lists) == Order::Unique;
        let (block_ends, block_entries) = filled_by_block(&starts, &lists, block, unique);
        prop_assert_eq!(&ends, &block_ends);
        for n in 0..nodes {
            prop_assert_eq!(
                entries.get(starts[n]..ends[n]),
                block_entries.get(starts[n]..block_ends[n])
            );
        }
    }
}

proptest! {
    /// Differential: lists renumbered after items vanished and appeared (and one node
    /// changed) equal the lists built afresh from the new items.
    #[test]
    fn renumbered_equals_built_afresh(
        nodes in 1usize..40,
        items in proptest::collection::vec(
            (proptest::collection::btree_set(0usize..40, 0..12), any::<bool>()), 0..24),
        appear in proptest::collection::vec(
            (0usize..30, proptest::collection::btree_set(0usize..40, 0..12)), 0..6),
        changed in 0usize..40,
    ) {
        let as_ids = |l: &std::collections::BTreeSet<usize>| -> Vec<NodeId> {
            l.iter().filter(|&&n| n < nodes).map(|&n| NodeId::new(n)).collect()
        };
        let old_lists: Vec<Vec<NodeId>> = items.iter().map(|(l, _)| as_ids(l)).collect();
        let old = PerNode::<u32>::from_lists(
            nodes,
            old_lists.iter().enumerate().map(|(i, l)| (i as u32, l.as_slice())),
        );
        // The new items: the kept old ones (`Some(old index)`) with new ones inserted.
        let mut new_items: Vec<(Option<usize>, Vec<NodeId>)> = items
            .iter()
            .enumerate()
            .filter(|(_, (_, vanish))| !vanish)
            .map(|(i, (l, _))| (Some(i), as_ids(l)))
            .collect();
        for (at, l) in &appear {
            let at = at % (new_items.len() + 1);
            new_items.insert(at, (None, as_ids(l)));
        }
        let mut to_new = vec![u32::MAX; items.len()];
        let mut added = Vec::new();
        for (j, (o, l)) in new_items.iter().enumerate() {
            match o {
                Some(o) => to_new[*o] = j as u32,
                None => added.extend(l.iter().map(|&id| (id, j as u32))),
            }
        }
        added.sort_unstable();
        let fresh = PerNode::<u32>::from_lists(
            nodes,
            new_items.iter().enumerate().map(|(j, (_, l))| (j as u32, l.as_slice())),
        );
        let changed = changed % nodes;
        let kept: Vec<Option<NodeId>> = (0..nodes)
            .map(|n| (n != changed).then(|| NodeId::new(n)))
            .collect();
        // The nodes whose lists hold a vanished item.
        let mut dropped = vec![0u64; nodes.div_ceil(64)];
        for (i, list) in old_lists.iter().enumerate() {
            if to_new[i] == u32::MAX {
                list.iter().for_each(|&id| crate::bits::set_bit(&mut dropped, id));
            }
        }
        let got = old
            .renumbered::<u32>(&kept, (&to_new, &dropped), &added, |id| {
                fresh.get(id.index()).to_vec()
            })
            .unwrap();
        prop_assert_eq!(got.len(), nodes);
        for n in 0..nodes {
            prop_assert_eq!(got.get(n), fresh.get(n));
        }
    }
}

proptest! {
    /// Differential: lists patched after nodes join (ids shifted past them) and leave
    /// equal the lists built afresh, patch after patch, until a patch is refused.
    #[test]
    fn patched_equals_built_afresh(
        nodes in 1usize..30,
        items in proptest::collection::vec(proptest::collection::btree_set(0usize..30, 0..12), 1..20),
        steps in proptest::collection::vec((0usize..40, any::<bool>(), proptest::collection::vec(any::<bool>(), 20)), 1..48),
    ) {
        // Node names stand for nodes: each list holds names; ids are positions in order.
        let mut names: Vec<usize> = (0..nodes).collect();
        let mut lists: Vec<Vec<usize>> = items
            .iter()
            .map(|l| l.iter().filter(|&&n| n < nodes).copied().collect())
            .collect();
        let build = |names: &[usize], lists: &[Vec<usize>]| {
            let ids: Vec<Vec<NodeId>> = lists
                .iter()
                .map(|l| {
                    let mut v: Vec<NodeId> = l
                        .iter()
                        .filter_map(|n| names.iter().position(|m| m == n))
                        .map(NodeId::new)
                        .collect();
                    v.sort_unstable();
                    v
                })
                .collect();
            PerNode::<u32>::from_lists(
                names.len(),
                ids.iter().enumerate().map(|(i, l)| (i as u32, l.as_slice())),
            )
        };
        let mut current = build(&names, &lists);
        let mut next_name = 100;
        for (at, join, member_of) in steps {
            let before = names.clone();
            let changed = if join || names.len() < 2 {
                let at = at % (names.len() + 1);
                names.insert(at, next_name);
                for (list, &m) in lists.iter_mut().zip(&member_of) {
                    if m {
                        list.push(next_name);
                    }
                }
                next_name += 1;
                Some(names.get(at).copied().unwrap_or_default())
            } else {
                names.remove(at % names.len());
                None
            };
            let kept: Vec<Option<NodeId>> = names
                .iter()
                .map(|n| match Some(*n) == changed {
                    true => None,
                    false => before.iter().position(|m| m == n).map(NodeId::new),
                })
                .collect();
            let fresh_built = build(&names, &lists);
            let fresh: Vec<(usize, Vec<u32>)> = kept
                .iter()
                .enumerate()
                .filter(|(_, k)| k.is_none())
                .map(|(n, _)| (n, fresh_built.get(n).to_vec()))
                .collect();
            match current.patched(&kept, &fresh) {
                Some(patched) => {
                    prop_assert_eq!(patched.len(), fresh_built.len());
                    for n in 0..names.len() {
                        prop_assert_eq!(patched.get(n), fresh_built.get(n));
                    }
                    prop_assert!(patched.segments.len() <= MAX_SEGMENTS);
                    current = patched;
                }
                None => current = fresh_built,
            }
        }
    }
}

#[test]
fn a_patch_missing_a_changed_nodes_list_is_refused() {
    let ids = [NodeId::new(0), NodeId::new(1)];
    let built = PerNode::<u32>::from_lists(2, [(0u32, &ids[..])].into_iter());
    let kept = [Some(NodeId::new(0)), None, Some(NodeId::new(1))];
    assert!(built.patched(&kept, &[]).is_none());
    assert!(built.patched(&kept, &[(0, vec![0])]).is_none());
    let patched = built.patched(&kept, &[(1, vec![0])]).expect("a patch");
    assert_eq!(patched.get(1), &[0]);
    assert_eq!(patched.get(2), &[0]);
}

#[test]
fn empty_lists() {
    let none = ItemIndex::empty(3);
    assert_eq!(none.len(), 3);
    assert!(none.iter().all(|l| l.len() == 0));
}

proptest! {
    /// Differential: an item index is narrow exactly when every item fits 16 bits, holds
    /// what a vector per node holds either way, and renumbered into items past 65,536 (or
    /// back below) holds the lists built afresh, its width chosen by the new count.
    #[test]
    fn item_index_widths(
        nodes in 1usize..30,
        items in proptest::collection::vec(proptest::collection::btree_set(0usize..30, 0..10), 1..12),
        base in prop_oneof![Just(0u32), Just(65_530u32), Just(70_000u32)],
        shift in prop_oneof![Just(0u32), Just(65_536u32)],
    ) {
        let lists: Vec<(u32, Vec<NodeId>)> = items
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let ids = l.iter().filter(|&&n| n < nodes).map(|&n| NodeId::new(n));
                (base + i as u32, ids.collect())
            })
            .collect();
        let last = base + items.len() as u32 - 1;
        let index = ItemIndex::from_lists(nodes, lists.iter().map(|(i, l)| (*i, l.as_slice())));
        prop_assert_eq!(matches!(index, ItemIndex::Narrow(_)), last <= 65_535);
        let pairs = ItemIndex::from_pairs(
            nodes,
            lists.iter().flat_map(|(i, l)| l.iter().map(move |&id| (id, *i))),
        );
        let simple = |lists: &[(u32, Vec<NodeId>)], n: usize| -> Vec<u32> {
            lists.iter().filter(|(_, l)| l.contains(&NodeId::new(n))).map(|(i, _)| *i).collect()
        };
        for n in 0..nodes {
            let want = simple(&lists, n);
            prop_assert_eq!(index.get(n).to_vec(), want.clone());
            prop_assert!(index.get(n) == pairs.get(n));
            for i in [base, last, last + 1] {
                prop_assert_eq!(index.get(n).contains(i), want.contains(&i));
            }
        }
        // Every item moved by `shift` (the same nodes): `to_new` over every old index.
        let moved: Vec<(u32, Vec<NodeId>)> =
            lists.iter().map(|(i, l)| (i + shift, l.clone())).collect();
        let mut to_new = vec![u32::MAX; last as usize + 1];
        for (i, _) in &lists {
            to_new[*i as usize] = i + shift;
        }
        let kept: Vec<Option<NodeId>> = (0..nodes).map(|n| Some(NodeId::new(n))).collect();
        let dropped = vec![0u64; nodes.div_ceil(64)];
        let count = (last + shift + 1) as usize;
        let got = index
            .renumbered(&kept, (&to_new, &dropped), (&[], count), |_| Vec::new())
            .unwrap();
        prop_assert_eq!(matches!(got, ItemIndex::Narrow(_)), last + shift <= 65_535);
        for n in 0..nodes {
            prop_assert_eq!(got.get(n).to_vec(), simple(&moved, n));
        }
    }
}

#[test]
fn a_narrow_list_equals_a_wide_one_with_the_same_items() {
    let (narrow, wide) = (List::plain(&[1u16, 5]), List::plain(&[1u32, 5]));
    assert!(Items::Narrow(narrow) == Items::Wide(wide));
    assert!(Items::Narrow(narrow) != Items::Wide(List::plain(&[1, 65_541])));
    assert!(!Items::Narrow(List::plain(&[1])).contains(65_537));
    assert!(!Items::Narrow(List::plain(&[1])).same_memory(Items::Wide(List::plain(&[1]))));
}

#[test]
fn a_remapped_list_reads_through_its_map() {
    let map = [3u32, 7, u32::MAX, 9];
    let list = List {
        entries: &[0u16, 1, 3],
        map: Some(&map[..]),
    };
    let items = Items::Narrow(list);
    assert_eq!(items.to_vec(), vec![3, 7, 9]);
    assert_eq!(items.len(), 3);
    assert!(items.contains(7) && items.contains(9) && !items.contains(1));
    assert!(items == Items::Wide(List::plain(&[3, 7, 9])));
    // The same entries read as stored are other items.
    assert!(!items.same_memory(Items::Narrow(List::plain(list.entries))));
    assert!(items.same_memory(Items::Narrow(list)));
}

#[test]
fn a_policy_events_renumbering_shares_the_arrays() {
    // Items 0-2 over nodes 0-3; a new item 0 reaching node 0, the old ones moved up by one.
    let lists = [ids(&[0, 1]), ids(&[1, 2, 3]), ids(&[3])];
    let index = ItemIndex::from_lists(
        4,
        lists
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u32, l.as_slice())),
    );
    let kept: Vec<Option<NodeId>> = (0..4).map(|n| Some(NodeId::new(n))).collect();
    let renumber = |share| {
        index.renumbered_sharing(
            &kept,
            (&[1, 2, 3], &[0]),
            (&[(NodeId::new(0), 0)], 4),
            |_| Vec::new(),
            share,
        )
    };
    // Node 0's list is 2 of the 6 entries: past an engine's share of stale lists, renumbered.
    let whole = renumber(STALE_SHARE).expect("renumbered");
    let ItemIndex::Narrow(w) = &whole else {
        panic!("narrow")
    };
    assert!(w.segments.iter().all(|s| s.map.is_none()));
    let got = renumber(3).expect("renumbered");
    let (ItemIndex::Narrow(old), ItemIndex::Narrow(new)) = (&index, &got) else {
        panic!("narrow");
    };
    assert!(Arc::ptr_eq(
        &old.segments[0].entries,
        &new.segments[0].entries
    ));
    assert_eq!(new.segments.len(), 2, "only node 0's list written");
    assert_eq!(new.segments[1].entries.len(), 2);
    let want: [&[u32]; 4] = [&[0, 1], &[1, 2], &[2], &[2, 3]];
    for (n, w) in want.iter().enumerate() {
        assert_eq!(got.get(n).to_vec(), w.to_vec());
    }
}

proptest! {
    /// Differential: an index renumbered event after event (items vanishing and appearing
    /// as a policy event makes them, a node's list changed beside, a node event's patch in
    /// between) holds the lists built afresh each time, whether it was remapped (its arrays
    /// kept, read through maps) or renumbered in full; and remapping shares the arrays.
    #[test]
    fn remapped_equals_built_afresh(
        nodes in 1usize..30,
        items in proptest::collection::vec(proptest::collection::btree_set(0usize..30, 0..10), 0..20),
        steps in proptest::collection::vec(
            (
                proptest::collection::vec(any::<bool>(), 24),
                proptest::collection::vec((0usize..30, proptest::collection::btree_set(0usize..30, 0..8)), 0..3),
                proptest::option::of(0usize..30),
                any::<bool>(),
            ),
            1..24,
        ),
        share in prop_oneof![Just(1usize), Just(2), Just(STALE_SHARE)],
    ) {
        let as_ids = |l: &std::collections::BTreeSet<usize>| -> Vec<NodeId> {
            l.iter().filter(|&&n| n < nodes).map(|&n| NodeId::new(n)).collect()
        };
        let build = |lists: &[Vec<NodeId>]| {
            ItemIndex::from_lists(nodes, lists.iter().enumerate().map(|(i, l)| (i as u32, l.as_slice())))
        };
        let mut lists: Vec<Vec<NodeId>> = items.iter().map(as_ids).collect();
        let mut index = build(&lists);
        for (vanish, appear, changed, patch) in steps {
            let changed = changed.map(|c| c % nodes);
            // The changed node's list: its items taken from the next lists.
            let before = lists.clone();
            let mut next: Vec<(Option<usize>, Vec<NodeId>)> = lists
                .iter()
                .enumerate()
                .filter(|(i, _)| !vanish.get(*i).copied().unwrap_or(false))
                .map(|(i, l)| (Some(i), l.clone()))
                .collect();
            for (at, l) in &appear {
                let at = at % (next.len() + 1);
                next.insert(at, (None, as_ids(l)));
            }
            if let Some(c) = changed {
                for (k, (_, l)) in next.iter_mut().enumerate() {
                    l.retain(|&id| id.index() != c);
                    if k % 2 == 0 {
                        l.push(NodeId::new(c));
                        l.sort_unstable();
                    }
                }
            }
            let mut to_new = vec![u32::MAX; before.len()];
            let mut added = Vec::new();
            for (j, (o, l)) in next.iter().enumerate() {
                match o {
                    Some(o) => to_new[*o] = j as u32,
                    None => added.extend(l.iter().filter(|id| Some(id.index()) != changed).map(|&id| (id, j as u32))),
                }
            }
            added.sort_unstable();
            let mut dropped = vec![0u64; nodes.div_ceil(64)];
            for (i, list) in before.iter().enumerate() {
                if to_new[i] == u32::MAX {
                    list.iter().for_each(|&id| crate::bits::set_bit(&mut dropped, id));
                }
            }
            lists = next.into_iter().map(|(_, l)| l).collect();
            let fresh = build(&lists);
            let kept: Vec<Option<NodeId>> = (0..nodes)
                .map(|n| (Some(n) != changed).then(|| NodeId::new(n)))
                .collect();
            let got = index
                .renumbered_sharing(&kept, (&to_new, &dropped), (&added, lists.len()), |id| fresh.get(id.index()).to_vec(), share)
                .unwrap();
            if let (ItemIndex::Narrow(old), ItemIndex::Narrow(new)) = (&index, &got) {
                if new.segments.iter().any(|s| s.map.is_some()) {
                    prop_assert!(Arc::ptr_eq(&old.segments[0].entries, &new.segments[0].entries));
                }
                prop_assert!(new.segments.len() <= MAX_SEGMENTS);
            }
            for n in 0..nodes {
                prop_assert_eq!(got.get(n).to_vec(), fresh.get(n).to_vec());
                prop_assert!(got.get(n) == fresh.get(n));
                for i in 0..lists.len() as u32 + 1 {
                    prop_assert_eq!(got.get(n).contains(i), fresh.get(n).contains(i));
                }
            }
            index = got;
            // A node event's patch (the same items) between policy events.
            if patch {
                if let Some(c) = changed {
                    let kept: Vec<Option<NodeId>> = (0..nodes)
                        .map(|n| (n != c).then(|| NodeId::new(n)))
                        .collect();
                    if let Some(p) = index.patched_with(&kept, |id| fresh.get(id.index()).to_vec()) {
                        for n in 0..nodes {
                            prop_assert!(p.get(n) == fresh.get(n));
                        }
                        index = p;
                    }
                }
            }
        }
    }
}

proptest! {
    /// Differential: the counts and order found in two halves (on two cores, past
    /// [`SPLIT`] entries) equal those of one pass, whatever the lists' order.
    #[test]
    fn halves_count_and_order_as_one_pass(
        nodes in 4usize..40,
        items in proptest::collection::vec(
            (1u32..3, proptest::collection::vec(0usize..45, 0..14)), 0..40),
        repeated in proptest::option::of(0usize..40),
        sort in any::<bool>(),
        dedup in any::<bool>(),
    ) {
        // Items strictly ascending but at most one list, which repeats the item before it
        // (where the halves meet, the whole is not `Unique` though each half is).
        let mut item = 0u32;
        let lists: Vec<(u32, Vec<NodeId>)> = items
            .iter()
            .enumerate()
            .map(|(k, (step, l))| {
                item += if Some(k) == repeated { 0 } else { *step };
                let mut l = ids(l);
                if sort {
                    l.sort_unstable();
                }
                if dedup {
                    l.dedup();
                }
                (item, l)
            })
            .collect();
        let lists: Vec<(u32, &[NodeId])> =
            lists.iter().map(|(i, l)| (*i, l.as_slice())).collect();
        let (starts, got) = counted_and_ordered(nodes, &lists);
        prop_assert_eq!(starts, counted(nodes, pairs_of(&lists)));
        prop_assert_eq!(got, order(&lists));
    }
}

/// Two halves each `Unique`, meeting on a repeated item: the whole is only `Ascending`.
#[test]
fn halves_meeting_on_one_item_are_not_unique() {
    // 70 entries, past the debug builds' split: the first list is one half, the second the
    // other.
    let a = ids(&(0..40).collect::<Vec<_>>());
    let b = ids(&(0..30).collect::<Vec<_>>());
    let lists: Vec<(u32, &[NodeId])> = vec![(1, &a), (1, &b)];
    assert_eq!(order(&lists), Order::Ascending);
    assert_eq!(counted_and_ordered(40, &lists).1, Order::Ascending);
}
