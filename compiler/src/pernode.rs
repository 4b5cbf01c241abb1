//! Per-node lists of item indexes in one flat array (compressed rows): which rule items and SSH
//! rules may reach each node. Built once per compile by counting, in place of a growable vector
//! per node (100,000 on `large`), whose reallocations, scattered writes and frees cost a
//! tenth of a compile.

use crate::nodes::NodeId;

/// For each node, the items that may reach it, ascending.
#[derive(Debug, Default)]
pub(crate) struct PerNode {
    /// Node `n`'s list is `entries[starts[n]..starts[n + 1]]`.
    starts: Vec<usize>,
    entries: Vec<u32>,
}

impl PerNode {
    /// Empty lists for `nodes` nodes.
    pub(crate) fn empty(nodes: usize) -> PerNode {
        PerNode {
            starts: vec![0; nodes + 1],
            entries: Vec::new(),
        }
    }

    /// The lists of `nodes` nodes from each item's nodes, the items in ascending order (as
    /// they are numbered). An item that names a node twice is listed once; ids past `nodes`
    /// are ignored. Two passes over the lists: O(nodes + sum of their lengths).
    pub(crate) fn from_lists<'a, I>(nodes: usize, lists: I) -> PerNode
    where
        I: Iterator<Item = (u32, &'a [NodeId])> + Clone,
    {
        Self::from_pairs(
            nodes,
            lists.flat_map(|(item, ids)| ids.iter().map(move |&id| (id, item))),
        )
    }

    /// The lists from `(node, item)` pairs given in ascending item order; see
    /// [`PerNode::from_lists`].
    pub(crate) fn from_pairs<I>(nodes: usize, pairs: I) -> PerNode
    where
        I: Iterator<Item = (NodeId, u32)> + Clone,
    {
        let mut starts = vec![0usize; nodes + 1];
        for (id, _) in pairs.clone() {
            if let Some(count) = starts.get_mut(id.index() + 1) {
                *count += 1;
            }
        }
        for n in 1..starts.len() {
            let before = starts.get(n - 1).copied().unwrap_or(0);
            if let Some(s) = starts.get_mut(n) {
                *s += before;
            }
        }
        let total = starts.last().copied().unwrap_or(0);
        let mut ends: Vec<usize> = starts.iter().take(nodes).copied().collect();
        let mut entries = vec![0u32; total];
        let mut repeats = false;
        for (id, item) in pairs {
            let (Some(end), Some(&start)) = (ends.get_mut(id.index()), starts.get(id.index()))
            else {
                continue;
            };
            if *end > start && entries.get(*end - 1) == Some(&item) {
                repeats = true;
                continue;
            }
            if let Some(slot) = entries.get_mut(*end) {
                *slot = item;
                *end += 1;
            }
        }
        let mut built = PerNode { starts, entries };
        if repeats {
            built.close_gaps(&ends);
        }
        built
    }

    /// Drop the unused tail of each list (left by repeated pairs).
    fn close_gaps(&mut self, ends: &[usize]) {
        let mut out = Vec::with_capacity(self.entries.len());
        let mut starts = Vec::with_capacity(self.starts.len());
        for (n, &end) in ends.iter().enumerate() {
            starts.push(out.len());
            let start = self.starts.get(n).copied().unwrap_or(end);
            out.extend_from_slice(self.entries.get(start..end).unwrap_or(&[]));
        }
        starts.push(out.len());
        self.starts = starts;
        self.entries = out;
    }

    /// Node `n`'s items, ascending (empty past the last node).
    pub(crate) fn get(&self, n: usize) -> &[u32] {
        match (self.starts.get(n), self.starts.get(n + 1)) {
            (Some(&start), Some(&end)) => self.entries.get(start..end).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// How many nodes the lists are for.
    pub(crate) fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Each node's items, in node order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u32]> + '_ {
        (0..self.len()).map(|n| self.get(n))
    }
}

#[cfg(test)]
mod tests {
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
            let built = PerNode::from_lists(
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

    #[test]
    fn empty_lists() {
        let none = PerNode::empty(3);
        assert_eq!(none.len(), 3);
        assert!(none.iter().all(<[u32]>::is_empty));
    }
}
