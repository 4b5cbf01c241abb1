//! Each user's untagged devices, all users' lists in one array: a node event moves every
//! list in one pass over two arrays, where a vector per user (25,000 on `large`) was
//! allocated, filled and later freed on every event (2-5 ms of a member join's node-table
//! patch).

use std::sync::Arc;

use crate::nodes::NodeId;

/// The devices of users `0..users`, each user's ascending.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Devices {
    /// Where each user's list starts in `ids`; one more entry than there are users.
    starts: Arc<Vec<u32>>,
    ids: Arc<Vec<NodeId>>,
}

impl Devices {
    /// The lists `lists`, user by user (each ascending).
    pub(crate) fn from_lists(lists: &[Vec<NodeId>]) -> Devices {
        let mut starts = Vec::with_capacity(lists.len() + 1);
        let mut ids = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        starts.push(0);
        for list in lists {
            ids.extend_from_slice(list);
            starts.push(crate::nodes::index(ids.len()));
        }
        Devices {
            starts: Arc::new(starts),
            ids: Arc::new(ids),
        }
    }

    /// The devices of user `user`, ascending.
    pub(crate) fn get(&self, user: usize) -> Option<&[NodeId]> {
        let from = *self.starts.get(user)? as usize;
        let to = *self.starts.get(user + 1)? as usize;
        self.ids.get(from..to)
    }

    /// These lists, shared (a clone of two `Arc`s).
    ///
    /// These lists with every device passed through `keep` (dropped where it gives
    /// `None`), which must keep each list ascending, and the devices `added` put in, each
    /// `(user, device)` (in any order; a user past the last is ignored). O(devices + users
    /// + added log added).
    pub(crate) fn moved(
        &self,
        keep: impl Fn(usize, NodeId) -> Option<NodeId>,
        added: &[(usize, NodeId)],
    ) -> Devices {
        let mut added: Vec<(usize, NodeId)> = added.to_vec();
        added.sort_unstable();
        let mut added = added.into_iter().peekable();
        let users = self.starts.len().saturating_sub(1);
        let mut starts = Vec::with_capacity(self.starts.len());
        let mut ids = Vec::with_capacity(self.ids.len() + added.len());
        starts.push(0);
        for user in 0..users {
            let from = ids.len();
            ids.extend(
                self.get(user)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&id| keep(user, id)),
            );
            let mut merged = false;
            while let Some((_, id)) = added.next_if(|&(u, _)| u == user) {
                ids.push(id);
                merged = true;
            }
            if merged {
                if let Some(list) = ids.get_mut(from..) {
                    list.sort_unstable();
                }
            }
            starts.push(crate::nodes::index(ids.len()));
        }
        Devices {
            starts: Arc::new(starts),
            ids: Arc::new(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Moving the flat lists gives what moving a vector per user gives.
        #[test]
        fn moves_as_vectors_do(
            lists in proptest::collection::vec(
                proptest::collection::btree_set(0usize..500, 0..8), 0..40),
            dropped in proptest::collection::btree_set(0usize..500, 0..20),
            added in proptest::collection::vec((0usize..45, 500usize..600), 0..10),
        ) {
            let lists: Vec<Vec<NodeId>> = lists
                .iter()
                .map(|s| s.iter().map(|&i| NodeId::new(i)).collect())
                .collect();
            let flat = Devices::from_lists(&lists);
            for (u, list) in lists.iter().enumerate() {
                prop_assert_eq!(flat.get(u), Some(&list[..]));
            }
            prop_assert_eq!(flat.get(lists.len()), None);
            // Keep: drop some, shift the rest up by one (order kept).
            let keep = |_: usize, id: NodeId| {
                (!dropped.contains(&id.index())).then(|| NodeId::new(id.index() + 1))
            };
            let added: Vec<(usize, NodeId)> =
                added.iter().map(|&(u, i)| (u, NodeId::new(i))).collect();
            let moved = flat.moved(keep, &added);
            for (u, list) in lists.iter().enumerate() {
                let mut expected: Vec<NodeId> =
                    list.iter().filter_map(|&id| keep(u, id)).collect();
                expected.extend(added.iter().filter(|(a, _)| *a == u).map(|&(_, id)| id));
                expected.sort_unstable();
                prop_assert_eq!(moved.get(u), Some(&expected[..]));
            }
            prop_assert_eq!(moved.get(lists.len()), None);
        }
    }
}
