//! The engine's node records by stable id, with the names of the offline ones kept beside
//! them: a compile asks whether a node is offline by name, and listing them by walking every
//! record took about 4 ms of each event on `large` (100,000 records).

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use super::records::NodeRecord;

/// Node records by stable id (read through `Deref`); changed only through the methods
/// below, which keep the offline names in step.
#[derive(Debug, Default)]
pub(super) struct NodeRecords {
    by_id: BTreeMap<u64, NodeRecord>,
    /// How many offline records carry each name (a batch may give two records one name
    /// until a later event of it renames one).
    offline: HashMap<String, u32>,
}

impl Deref for NodeRecords {
    type Target = BTreeMap<u64, NodeRecord>;

    fn deref(&self) -> &BTreeMap<u64, NodeRecord> {
        &self.by_id
    }
}

impl FromIterator<NodeRecord> for NodeRecords {
    fn from_iter<I: IntoIterator<Item = NodeRecord>>(records: I) -> NodeRecords {
        // Collected whole, the map is built in bulk from sorted pairs, its nodes full;
        // inserted one by one in id order, they were left half full (about 12 MiB more of
        // the engine on `large`).
        let by_id: BTreeMap<u64, NodeRecord> = records.into_iter().map(|r| (r.id, r)).collect();
        let mut offline = HashMap::new();
        for record in by_id.values() {
            count(&mut offline, record, true);
        }
        NodeRecords { by_id, offline }
    }
}

impl NodeRecords {
    /// Whether a record named `name` is offline.
    pub(super) fn offline(&self, name: &str) -> bool {
        self.offline.contains_key(name)
    }

    /// How many records have an id below `id`: counted from the nearer end, so a node a
    /// server registers now (its id above every other) costs O(1), not a walk over 100,000
    /// records (up to 1.6 ms of a member join on `large`, where the walk ran first).
    pub(super) fn rank(&self, id: u64) -> usize {
        let (mut below, mut above) = (self.by_id.range(..id), self.by_id.range(id..));
        let mut counted = 0;
        loop {
            match (below.next_back(), above.next()) {
                (None, _) => return counted,
                // `counted` records from `id` up: the rest are below it.
                (_, None) => return self.by_id.len() - counted,
                _ => counted += 1,
            }
        }
    }

    /// Put `record` in under `id`: the record it replaces.
    pub(super) fn insert(&mut self, id: u64, record: NodeRecord) -> Option<NodeRecord> {
        count(&mut self.offline, &record, true);
        let old = self.by_id.insert(id, record);
        if let Some(old) = &old {
            count(&mut self.offline, old, false);
        }
        old
    }

    /// Take the record of `id` out.
    pub(super) fn remove(&mut self, id: &u64) -> Option<NodeRecord> {
        let old = self.by_id.remove(id)?;
        count(&mut self.offline, &old, false);
        Some(old)
    }

    /// Change the record of `id` with `edit`: what it was, `None` when there is none.
    pub(super) fn edit<R>(
        &mut self,
        id: u64,
        edit: impl FnOnce(&mut NodeRecord) -> R,
    ) -> Option<(NodeRecord, R)> {
        let record = self.by_id.get_mut(&id)?;
        let before = record.clone();
        let out = edit(record);
        if (before.online, &before.name) != (record.online, &record.name) {
            count(&mut self.offline, &before, false);
            count(&mut self.offline, record, true);
        }
        Some((before, out))
    }

    /// The offline names as a walk over every record gives them (for debug checks).
    #[cfg(any(test, debug_assertions))]
    pub(super) fn offline_agrees(&self) -> bool {
        let mut walked: HashMap<&str, u32> = HashMap::new();
        for record in self.by_id.values().filter(|r| !r.online) {
            *walked.entry(record.name.as_str()).or_default() += 1;
        }
        walked.len() == self.offline.len()
            && walked
                .iter()
                .all(|(name, n)| self.offline.get(*name) == Some(n))
    }
}

/// Count `record`'s name among the `offline` ones (`add`) or take it away.
fn count(offline: &mut HashMap<String, u32>, record: &NodeRecord, add: bool) {
    if record.online {
        return;
    }
    if add {
        *offline.entry(record.name.clone()).or_default() += 1;
    } else if let Some(n) = offline.get_mut(&record.name) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            offline.remove(&record.name);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn record(id: u64, name: u8, online: bool) -> NodeRecord {
        NodeRecord {
            id,
            name: format!("n{name}"),
            hostname: None,
            user: None,
            tags: vec!["tag:x".into()],
            ipv4: None,
            ipv6: None,
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
            posture: Default::default(),
            online,
        }
    }

    proptest! {
        /// After any inserts, removals and edits (renames, flags), the offline names are
        /// those a walk over the records finds, counted alike.
        #[test]
        fn offline_names_follow_the_records(
            steps in proptest::collection::vec((0u8..4, 0u64..6, 0u8..4, any::<bool>()), 0..60)
        ) {
            let mut records: NodeRecords = steps
                .iter()
                .take(3)
                .map(|&(_, id, name, online)| record(id, name, online))
                .collect();
            prop_assert!(records.offline_agrees());
            for (op, id, name, online) in steps {
                match op {
                    0 | 1 => {
                        records.insert(id, record(id, name, online));
                    }
                    2 => {
                        records.remove(&id);
                    }
                    _ => {
                        records.edit(id, |r| {
                            r.online = online;
                            r.name = format!("n{name}");
                        });
                    }
                }
                prop_assert!(records.offline_agrees());
                for probe in 0..7u64 {
                    prop_assert_eq!(records.rank(probe), records.range(..probe).count());
                }
                for n in 0..4u8 {
                    let name = format!("n{n}");
                    let walked = records.values().any(|r| !r.online && r.name == name);
                    prop_assert_eq!(records.offline(&name), walked);
                }
            }
        }
    }
}
