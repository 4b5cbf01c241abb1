//! Unit tests of the SSH lowering.

use super::*;
use proptest::prelude::*;

proptest! {
    /// Differential: the sorted merge equals the highest count per node kept in a map.
    #[test]
    fn highest_counts_equal_a_map(
        runs in proptest::collection::vec(
            proptest::collection::vec((0usize..50, 1usize..4), 0..30),
            0..4,
        ),
        sort_runs in any::<bool>(),
    ) {
        let mut counts = Vec::new();
        let mut simple: BTreeMap<NodeId, usize> = BTreeMap::new();
        for run in &runs {
            let mut run: Vec<(NodeId, usize)> =
                run.iter().map(|&(id, c)| (NodeId::new(id), c)).collect();
            if sort_runs {
                run.sort_unstable();
            }
            for &(id, c) in &run {
                let entry = simple.entry(id).or_insert(0);
                *entry = (*entry).max(c);
            }
            counts.extend(run);
        }
        let expected: Vec<(NodeId, usize)> = simple.into_iter().collect();
        prop_assert_eq!(highest_counts(counts), expected);
    }
}
