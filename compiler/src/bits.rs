//! Maps of one bit per node (a node id's bit at word `id / 64`): the node sets of the peer
//! index, the engine's marks of the nodes an event reaches, and sorting long node lists.

use crate::nodes::NodeId;

/// True if `id`'s bit is set in a one-bit-per-node map.
pub(crate) fn bit(bits: &[u64], id: NodeId) -> bool {
    bits.get(id.index() / 64)
        .is_some_and(|w| w & (1 << (id.index() % 64)) != 0)
}

/// Set `id`'s bit in a one-bit-per-node map.
pub(crate) fn set_bit(bits: &mut [u64], id: NodeId) {
    if let Some(w) = bits.get_mut(id.index() / 64) {
        *w |= 1 << (id.index() % 64);
    }
}

pub(crate) fn clear_bit(bits: &mut [u64], id: NodeId) {
    if let Some(w) = bits.get_mut(id.index() / 64) {
        *w &= !(1 << (id.index() % 64));
    }
}

/// The ids whose bits are set, ascending.
pub(crate) fn iter_bits(bits: &[u64]) -> impl Iterator<Item = NodeId> + '_ {
    bits.iter().enumerate().flat_map(|(i, &word)| {
        let mut w = word;
        std::iter::from_fn(move || {
            (w != 0).then(|| {
                let b = w.trailing_zeros();
                w &= w - 1;
                NodeId::new(i * 64 + b as usize)
            })
        })
    })
}

/// The ids whose bits are set, ascending, as a list.
pub(crate) fn ids_of(bits: &[u64]) -> Vec<NodeId> {
    let count = bits.iter().map(|w| w.count_ones() as usize).sum();
    let mut out = Vec::with_capacity(count);
    push_ids(bits, &mut out);
    out
}

/// Append the ids of `bits`' set bits to `out`, ascending. Clear words are skipped eight at
/// a time: a small set gathered in a map of every node (thousands per compile on `large`)
/// is mostly clear words.
pub(crate) fn push_ids(bits: &[u64], out: &mut Vec<NodeId>) {
    for (c, chunk) in bits.chunks(8).enumerate() {
        if chunk.iter().fold(0, |a, w| a | w) == 0 {
            continue;
        }
        for (j, &word) in chunk.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                let b = w.trailing_zeros();
                out.push(NodeId::new((c * 8 + j) * 64 + b as usize));
                w &= w - 1;
            }
        }
    }
}

/// Sort `ids` (ids of a table of `nodes` nodes) and drop repeats. Many ids (`*` as a source:
/// every node twice, by each address, 200,000 on `large`, on every engine event) through a
/// map of one bit per node, O(ids + nodes / 64), where a sort took milliseconds.
pub(crate) fn sort_unique(ids: &mut Vec<NodeId>, nodes: usize) {
    if ids.len() < 1024 || ids.iter().any(|id| id.index() >= nodes) {
        ids.sort_unstable();
        ids.dedup();
        return;
    }
    let mut bits = vec![0u64; nodes.div_ceil(64)];
    ids.iter().for_each(|&id| set_bit(&mut bits, id));
    // Written over the list itself: no fewer ids than bits, so it never grows.
    ids.clear();
    push_ids(&bits, ids);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Differential: sorting through the bit map (many ids) equals a sort and dedup.
        #[test]
        fn unique_ids_sort_as_a_sort_does(
            nodes in 1usize..5000,
            raw in proptest::collection::vec(0usize..6000, 0..3000),
        ) {
            let mut ids: Vec<NodeId> = raw.iter().map(|&i| NodeId::new(i)).collect();
            let mut expected = ids.clone();
            expected.sort_unstable();
            expected.dedup();
            sort_unique(&mut ids, nodes);
            prop_assert_eq!(ids, expected);
        }

        /// The same, ids in range: the bit map is used.
        #[test]
        fn many_ids_in_range_sort_as_a_sort_does(
            raw in proptest::collection::vec(0usize..3000, 1024..4000),
        ) {
            let mut ids: Vec<NodeId> = raw.iter().map(|&i| NodeId::new(i)).collect();
            let mut expected = ids.clone();
            expected.sort_unstable();
            expected.dedup();
            sort_unique(&mut ids, 3000);
            prop_assert_eq!(ids, expected);
        }
    }
}
