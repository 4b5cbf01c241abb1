//! Sorted, disjoint address intervals with a bucket index: the fast matcher's map from an
//! address to a small number (a rule-set id, a destination slot).
//!
//! The address space of one family is cut into runs `[start_i, start_{i+1})`, each carrying a
//! value; `starts[0]` is 0, so every address falls in exactly one run. A lookup finds the last
//! start not above the address. Instead of a binary search over the whole array, a bucket
//! index splits `[base, last start]` into `2^k` equal buckets (about one per run) and records,
//! per bucket, the run that contains the bucket's first address; the answer then lies between
//! two adjacent index entries, usually zero to three runs apart. Uniformly spread addresses
//! cost two or three cache lines per lookup; clustered ones fall back to a short binary search
//! inside their bucket.

/// An address of one family as an unsigned integer.
pub(crate) trait Key:
    Copy + Ord + Default + std::fmt::Debug + Send + Sync + 'static
{
    /// The largest address.
    const MAX: Self;
    /// The low bits of `wide` (callers only pass values of the family's width).
    fn from_u128(wide: u128) -> Self;
    /// The address widened.
    fn to_u128(self) -> u128;
    /// `(self - base) >> shift`, for `self >= base`, saturating at `usize::MAX`.
    fn bucket(self, base: Self, shift: u32) -> usize;
    /// Sorts (address, tag) pairs by address, then tag.
    fn sort_points(points: &mut [(Self, u32)]) {
        points.sort_unstable();
    }
}

impl Key for u32 {
    const MAX: Self = u32::MAX;
    fn from_u128(wide: u128) -> Self {
        // Truncation is the point: the caller passes an IPv4 address widened to u128.
        wide as u32
    }
    fn to_u128(self) -> u128 {
        u128::from(self)
    }
    #[inline]
    fn bucket(self, base: Self, shift: u32) -> usize {
        let offset = self.wrapping_sub(base).checked_shr(shift).unwrap_or(0);
        usize::try_from(offset).unwrap_or(usize::MAX)
    }
    fn sort_points(points: &mut [(Self, u32)]) {
        // One 64-bit key sorts several times faster than a pair.
        let mut packed: Vec<u64> = points
            .iter()
            .map(|&(a, t)| u64::from(a) << 32 | u64::from(t))
            .collect();
        packed.sort_unstable();
        for (point, key) in points.iter_mut().zip(packed) {
            *point = ((key >> 32) as u32, key as u32);
        }
    }
}

impl Key for u128 {
    const MAX: Self = u128::MAX;
    fn from_u128(wide: u128) -> Self {
        wide
    }
    fn to_u128(self) -> u128 {
        self
    }
    #[inline]
    fn bucket(self, base: Self, shift: u32) -> usize {
        let offset = self.wrapping_sub(base).checked_shr(shift).unwrap_or(0);
        usize::try_from(offset).unwrap_or(usize::MAX)
    }
}

/// Tables up to this many runs are scanned rather than indexed.
const SCAN: usize = 16;

/// The value of the filler run of a points map.
const NO_POINT: u32 = u32::MAX;

/// A map from every address of one family to a `u32`.
#[derive(Debug, Clone)]
pub(crate) struct IntervalMap<K> {
    /// Sorted run starts; `starts[0] == 0`.
    starts: Box<[K]>,
    /// `values[i]` is the value of the run starting at `starts[i]`.
    values: Box<[u32]>,
    /// `index[b]` is the run containing `base + (b << shift)`; one more entry than buckets.
    index: Box<[u32]>,
    /// The first start after 0; addresses below it are in run 0.
    base: K,
    shift: u32,
}

impl<K: Key> IntervalMap<K> {
    /// Builds the map from runs sorted by start, beginning at 0. Adjacent runs with the same
    /// value are merged; a run whose start repeats the previous one replaces it.
    pub(crate) fn new(runs: impl IntoIterator<Item = (K, u32)>) -> Self {
        let mut starts: Vec<K> = Vec::new();
        let mut values: Vec<u32> = Vec::new();
        for (start, value) in runs {
            match (starts.last(), values.last_mut()) {
                (Some(&last), Some(last_value)) if last == start => *last_value = value,
                _ => {
                    starts.push(start);
                    values.push(value);
                }
            }
        }
        // INVARIANT: the first run starts at 0, and values of adjacent runs differ.
        if starts.first() != Some(&K::default()) {
            starts.insert(0, K::default());
            values.insert(0, 0);
        }
        let mut merged_starts = Vec::with_capacity(starts.len());
        let mut merged_values: Vec<u32> = Vec::with_capacity(values.len());
        for (start, value) in starts.into_iter().zip(values) {
            if merged_values.last() != Some(&value) {
                merged_starts.push(start);
                merged_values.push(value);
            }
        }
        Self::from_parts(merged_starts, merged_values)
    }

    /// A map of single addresses: `points` sorted by address, distinct. Only
    /// [`IntervalMap::get_exact`] is meaningful on it.
    pub(crate) fn points(points: impl IntoIterator<Item = (K, u32)>) -> Self {
        let (mut starts, mut values): (Vec<K>, Vec<u32>) = points.into_iter().unzip();
        // INVARIANT: the first run starts at 0; a filler run there is marked as no point.
        if starts.first() != Some(&K::default()) {
            starts.insert(0, K::default());
            values.insert(0, NO_POINT);
        }
        Self::from_parts(starts, values)
    }

    fn from_parts(starts: Vec<K>, values: Vec<u32>) -> Self {
        let (base, shift, index) = build_index(&starts);
        IntervalMap {
            starts: starts.into_boxed_slice(),
            values: values.into_boxed_slice(),
            index,
            base,
            shift,
        }
    }

    /// The position of the run containing `addr`.
    #[inline]
    fn position(&self, addr: K) -> usize {
        if self.starts.len() <= SCAN {
            // A node's destination table is a handful of runs: count them without branches.
            // INVARIANT: starts[0] == 0 <= addr, so the count is at least 1.
            return self
                .starts
                .iter()
                .map(|&start| usize::from(start <= addr))
                .sum::<usize>()
                .saturating_sub(1);
        }
        if addr < self.base {
            return 0;
        }
        let bucket = addr.bucket(self.base, self.shift);
        match (
            self.index.get(bucket),
            bucket.checked_add(1).and_then(|next| self.index.get(next)),
        ) {
            (Some(&lo), Some(&hi)) => {
                // The run holding `addr` is one of lo..=hi: `starts[lo]` is at or below the
                // bucket's first address, `starts[hi + 1]` above the next bucket's.
                let (lo, hi) = (lo as usize, hi as usize);
                let candidates = self.starts.get(lo + 1..=hi).unwrap_or(&[]);
                lo + candidates.partition_point(|&start| start <= addr)
            }
            // Past the last bucket: at or after the last start.
            _ => self.starts.len().saturating_sub(1),
        }
    }

    /// The value of the run containing `addr`.
    #[inline]
    pub(crate) fn get(&self, addr: K) -> u32 {
        self.values.get(self.position(addr)).copied().unwrap_or(0)
    }

    /// The value at exactly `addr`, in a map built by [`IntervalMap::points`].
    #[inline]
    pub(crate) fn get_exact(&self, addr: K) -> Option<u32> {
        let position = self.position(addr);
        match (self.starts.get(position), self.values.get(position)) {
            (Some(&start), Some(&value)) if start == addr && value != NO_POINT => Some(value),
            _ => None,
        }
    }

    /// The number of runs.
    pub(crate) fn runs(&self) -> usize {
        self.starts.len()
    }

    /// Heap bytes used.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.starts)
            + std::mem::size_of_val(&*self.values)
            + std::mem::size_of_val(&*self.index)
    }
}

/// The bucket index over `starts` (sorted, `starts[0] == 0`): (base, shift, index).
fn build_index<K: Key>(starts: &[K]) -> (K, u32, Box<[u32]>) {
    let (Some(&base), Some(&last)) = (starts.get(1), starts.last()) else {
        // One run: every address maps to run 0 before the index is consulted.
        return (K::MAX, 0, vec![0].into_boxed_slice());
    };
    let span = last.to_u128() - base.to_u128();
    // About one bucket per run: the smallest shift giving at most `runs` buckets.
    let runs = starts.len() as u128;
    let mut shift = 0u32;
    while span.checked_shr(shift).unwrap_or(0) >= runs {
        shift += 1;
    }
    let buckets = span.checked_shr(shift).unwrap_or(0) + 1;
    let buckets = usize::try_from(buckets).unwrap_or(usize::MAX);
    let mut index = Vec::with_capacity(buckets.saturating_add(1));
    let mut run = 0usize;
    for bucket in 0..=buckets {
        // The bucket's first address; past the end of the family for the final entry.
        let step = 1u128.checked_shl(shift);
        let first = match step {
            Some(step) => (bucket as u128).checked_mul(step),
            None if bucket == 0 => Some(0),
            None => None,
        }
        .and_then(|offset| offset.checked_add(base.to_u128()));
        match first {
            Some(first) if first <= K::MAX.to_u128() => {
                let first = K::from_u128(first);
                while starts.get(run + 1).is_some_and(|&next| next <= first) {
                    run += 1;
                }
            }
            _ => run = starts.len() - 1,
        }
        index.push(u32::try_from(run).unwrap_or(u32::MAX));
    }
    (base, shift, index.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    fn naive<K: Key>(runs: &[(K, u32)], addr: K) -> u32 {
        let mut value = 0;
        for &(start, v) in runs {
            if start <= addr {
                value = v;
            }
        }
        value
    }

    #[test]
    fn single_run() {
        let map: IntervalMap<u32> = IntervalMap::new([(0, 7)]);
        assert_eq!(map.get(0), 7);
        assert_eq!(map.get(u32::MAX), 7);
        let empty: IntervalMap<u128> = IntervalMap::new([]);
        assert_eq!(empty.get(12345), 0);
    }

    #[test]
    fn edges() {
        let runs = [(0u32, 1), (10, 2), (11, 3), (u32::MAX, 4)];
        let map = IntervalMap::new(runs);
        for addr in [0, 9, 10, 11, 12, u32::MAX - 1, u32::MAX] {
            assert_eq!(map.get(addr), naive(&runs, addr), "{addr}");
        }
        let runs = [(0u128, 1), (1 << 100, 2), (u128::MAX, 3)];
        let map = IntervalMap::new(runs);
        for addr in [
            0,
            1 << 99,
            1 << 100,
            (1 << 100) + 1,
            u128::MAX - 1,
            u128::MAX,
        ] {
            assert_eq!(map.get(addr), naive(&runs, addr), "{addr}");
        }
    }

    #[test]
    fn points() {
        let map: IntervalMap<u32> = IntervalMap::points([(5, 1), (6, 1), (9, 2)]);
        assert_eq!(map.get_exact(0), None);
        assert_eq!(map.get_exact(5), Some(1));
        assert_eq!(map.get_exact(6), Some(1));
        assert_eq!(map.get_exact(7), None);
        assert_eq!(map.get_exact(9), Some(2));
        assert_eq!(map.get_exact(u32::MAX), None);
        let map: IntervalMap<u128> = IntervalMap::points([(0, 3), (u128::MAX, 4)]);
        assert_eq!(map.get_exact(0), Some(3));
        assert_eq!(map.get_exact(1), None);
        assert_eq!(map.get_exact(u128::MAX), Some(4));
    }

    proptest! {
        #[test]
        fn points_match_naive(mut points in proptest::collection::vec(any::<u32>(), 0..300),
                              probes in proptest::collection::vec(any::<u32>(), 0..100)) {
            points.sort_unstable();
            points.dedup();
            let map = IntervalMap::points(points.iter().map(|&p| (p, p % 7)));
            for &probe in probes.iter().chain(&points) {
                for probe in [probe, probe.wrapping_add(1), probe.wrapping_sub(1)] {
                    let expect = points.binary_search(&probe).ok().map(|_| probe % 7);
                    prop_assert_eq!(map.get_exact(probe), expect);
                }
            }
        }

        #[test]
        fn matches_naive_u32(mut starts in proptest::collection::vec(any::<u32>(), 0..200),
                             probes in proptest::collection::vec(any::<u32>(), 0..200)) {
            starts.sort_unstable();
            starts.dedup();
            let runs: Vec<(u32, u32)> = starts.iter().enumerate().map(|(i, &s)| (s, i as u32 % 3)).collect();
            let map = IntervalMap::new(runs.clone());
            for &probe in probes.iter().chain(&starts) {
                prop_assert_eq!(map.get(probe), naive(&runs, probe));
                prop_assert_eq!(map.get(probe.wrapping_sub(1)), naive(&runs, probe.wrapping_sub(1)));
            }
        }

        #[test]
        fn matches_naive_clustered_u128(mut starts in proptest::collection::vec(
                prop_oneof![any::<u128>(), (0u128..64), (u128::MAX - 64..=u128::MAX)], 0..200),
                probes in proptest::collection::vec(any::<u128>(), 0..100)) {
            starts.sort_unstable();
            starts.dedup();
            let runs: Vec<(u128, u32)> = starts.iter().enumerate().map(|(i, &s)| (s, i as u32)).collect();
            let map = IntervalMap::new(runs.clone());
            for &probe in probes.iter().chain(&starts) {
                prop_assert_eq!(map.get(probe), naive(&runs, probe));
                prop_assert_eq!(map.get(probe.wrapping_add(1)), naive(&runs, probe.wrapping_add(1)));
            }
        }
    }
}
