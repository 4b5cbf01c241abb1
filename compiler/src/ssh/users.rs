//! A rule's per-user source lists (one entry per user with source devices, 25,000 on
//! `large`) kept in shared chunks, so that an event which changes a few users' lists copies
//! those users' chunks, not every user's entry of every such rule (and the next event's
//! freeing drops only those chunks).

use std::sync::Arc;

/// Entries per chunk: an event copies a touched user's chunk (128 entries) and the list of
/// chunks (one pointer per 128 users).
const CHUNK: usize = 128;

/// An immutable list of entries in chunks of [`CHUNK`], each chunk shared by every list
/// made from this one that left it as it was.
#[derive(Debug)]
pub(super) struct Chunked<T> {
    chunks: Arc<[Arc<[T]>]>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Arc::from(Vec::new()),
            len: 0,
        }
    }
}

impl<T: PartialEq + Clone> PartialEq for Chunked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Clone> Chunked<T> {
    /// The list of `items`, in their order.
    pub(super) fn new(items: Vec<T>) -> Chunked<T> {
        let len = items.len();
        let chunks: Vec<Arc<[T]>> = items.chunks(CHUNK).map(Arc::from).collect();
        Chunked {
            chunks: Arc::from(chunks),
            len,
        }
    }

    /// How many entries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Entry `k`.
    pub(super) fn get(&self, k: usize) -> Option<&T> {
        self.chunks.get(k / CHUNK)?.get(k % CHUNK)
    }

    /// Every entry, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// This list with entry `k` replaced by `item` for each `(k, item)` of `changes`
    /// (positions past the end are ignored): the chunks holding a replaced entry are
    /// copied, every other chunk is shared.
    pub(super) fn replaced(&self, changes: Vec<(usize, T)>) -> Chunked<T> {
        let mut chunks: Vec<Arc<[T]>> = self.chunks.to_vec();
        let mut by_chunk: Vec<(usize, usize, T)> = changes
            .into_iter()
            .filter(|(k, _)| *k < self.len)
            .map(|(k, item)| (k / CHUNK, k % CHUNK, item))
            .collect();
        by_chunk.sort_by_key(|&(c, at, _)| (c, at));
        let mut changes = by_chunk.into_iter().peekable();
        while let Some(&(c, _, _)) = changes.peek() {
            let Some(slot) = chunks.get_mut(c) else {
                break;
            };
            let mut copy: Vec<T> = slot.to_vec();
            while let Some((_, at, item)) = changes.next_if(|&(d, _, _)| d == c) {
                if let Some(entry) = copy.get_mut(at) {
                    *entry = item;
                }
            }
            *slot = Arc::from(copy);
        }
        Chunked {
            chunks: Arc::from(chunks),
            len: self.len,
        }
    }

    /// True when the two lists have as many entries and each pair is `alike`; chunks
    /// shared by both are alike without a look at their entries.
    pub(super) fn alike(&self, other: &Chunked<T>, alike: impl Fn(&T, &T) -> bool) -> bool {
        if Arc::ptr_eq(&self.chunks, &other.chunks) {
            return true;
        }
        self.len == other.len
            && self.chunks.len() == other.chunks.len()
            && self.chunks.iter().zip(other.chunks.iter()).all(|(a, b)| {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| alike(x, y)))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A chunked list reads as the vector it was made from, and replacing entries reads as
        /// the vector with those entries replaced (the last change to a place wins, as in
        /// order), sharing every chunk without a change.
        #[test]
        fn reads_as_a_vector(
            items in proptest::collection::vec(0u32..1000, 0..700),
            changes in proptest::collection::vec((0usize..800, 0u32..1000), 0..12),
        ) {
            let list = Chunked::new(items.clone());
            prop_assert_eq!(list.len(), items.len());
            prop_assert_eq!(list.iter().copied().collect::<Vec<_>>(), items.clone());
            for (k, item) in items.iter().enumerate() {
                prop_assert_eq!(list.get(k), Some(item));
            }
            prop_assert_eq!(list.get(items.len()), None);
            let mut expected = items.clone();
            let mut last: std::collections::BTreeMap<usize, u32> = Default::default();
            for &(k, item) in &changes {
                if let Some(slot) = expected.get_mut(k) {
                    *slot = item;
                    last.insert(k, item);
                }
            }
            let replaced = list.replaced(last.into_iter().collect());
            prop_assert_eq!(replaced.iter().copied().collect::<Vec<_>>(), expected.clone());
            prop_assert_eq!(replaced == list, expected == items);
            prop_assert_eq!(replaced.alike(&list, |a, b| a == b), expected == items);
            let touched: std::collections::BTreeSet<usize> = changes
                .iter()
                .filter(|(k, _)| *k < items.len())
                .map(|(k, _)| k / CHUNK)
                .collect();
            for (c, (a, b)) in list.chunks.iter().zip(replaced.chunks.iter()).enumerate() {
                prop_assert_eq!(Arc::ptr_eq(a, b), !touched.contains(&c));
            }
        }
    }

    #[test]
    fn an_empty_list() {
        let list: Chunked<u8> = Chunked::default();
        assert_eq!(list.len(), 0);
        assert_eq!(list.iter().count(), 0);
        assert!(list.alike(&Chunked::new(Vec::new()), |a, b| a == b));
        assert!(!list.alike(&Chunked::new(vec![1]), |a, b| a == b));
    }
}
