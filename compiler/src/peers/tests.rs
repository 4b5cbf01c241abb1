//! Unit tests of the peer index.

use super::*;
use proptest::prelude::*;

/// A set's form and members.
fn shape(set: &NodeSet, len: usize) -> (u8, Vec<NodeId>) {
    let kind = match set {
        NodeSet::All => 0,
        NodeSet::List(_) => 1,
        NodeSet::Bits(_) => 2,
    };
    (kind, set.ids(len))
}

proptest! {
    /// A set formed by `canonical`, from ids in any order, with repeats and ids past
    /// the nodes, is the set a sort and a bit map give (same form, same members), hashes
    /// as that set does, and leaves the scratch map clear.
    #[test]
    fn canonical_sets_are_as_a_sort_and_a_map_give(
        len in 0usize..3000,
        raw in proptest::collection::vec(0usize..3100, 0..3000),
        order in 0u8..3,
        // Few ids (around the size at which a list becomes a map), or all.
        take in prop_oneof![0usize..200, Just(usize::MAX)],
    ) {
        let mut ids: Vec<NodeId> = raw.iter().take(take).map(|&i| NodeId::new(i)).collect();
        match order {
            0 => {}
            1 => ids.sort_unstable(),
            _ => {
                ids.retain(|id| id.index() < len);
                ids.sort_unstable();
                ids.dedup();
            }
        }
        let mut bits = vec![0u64; len.div_ceil(64)];
        ids.iter()
            .filter(|id| id.index() < len)
            .for_each(|&id| set_bit(&mut bits, id));
        let expected = NodeSet::from_bits(bits, len);
        let mut scratch = vec![0u64; len.div_ceil(64)];
        let set = canonical(std::borrow::Cow::Borrowed(&ids), len, &mut scratch);
        prop_assert_eq!(shape(&set, len), shape(&expected, len));
        prop_assert_eq!(set_hash(&set), set_hash(&expected));
        prop_assert!(set == expected);
        prop_assert!(scratch.iter().all(|&w| w == 0));
        prop_assert_eq!(scratch.len(), len.div_ceil(64));
    }
}
