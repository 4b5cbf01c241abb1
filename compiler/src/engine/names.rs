//! The engine's two maps between stable node ids and node names, layered: a node event
//! patches a small overlay on shared base maps instead of copying two maps of every node
//! (on `large`, the copy of the name index and the freeing of the replaced maps were about
//! 4% of a member join's CPU time). The overlay is folded into new base maps once it holds
//! a sixteenth of the nodes, so reads stay two lookups and the copies amortise to O(1)
//! entries per changed node.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Text;

type Ids = crate::hash::Map<Text, u64>;

/// The overlay is folded in past this many entries or a sixteenth of the nodes.
const FOLD_AT: usize = 256;

/// Every node's name by stable id, and its stable id by name. Cheap to clone (shared maps).
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeNames {
    names: Arc<BTreeMap<u64, Text>>,
    ids: Arc<Ids>,
    /// Names changed since the base maps: `None` for a removed node.
    names_over: Arc<BTreeMap<u64, Option<Text>>>,
    ids_over: Arc<crate::hash::Map<Text, Option<u64>>>,
    len: usize,
}

impl NodeNames {
    /// The maps of `pairs` (stable id, name), each id and each name once.
    pub(crate) fn new(pairs: impl IntoIterator<Item = (u64, Text)>) -> NodeNames {
        let names: BTreeMap<u64, Text> = pairs.into_iter().collect();
        let ids: Ids = names.iter().map(|(&id, name)| (name.clone(), id)).collect();
        NodeNames {
            len: names.len(),
            names: Arc::new(names),
            ids: Arc::new(ids),
            names_over: Arc::default(),
            ids_over: Arc::default(),
        }
    }

    /// How many nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The name of node `id`.
    pub(crate) fn name(&self, id: u64) -> Option<&Text> {
        match self.names_over.get(&id) {
            Some(over) => over.as_ref(),
            None => self.names.get(&id),
        }
    }

    /// The stable id of the node named `name`.
    pub(crate) fn id(&self, name: &str) -> Option<u64> {
        match self.ids_over.get(name) {
            Some(over) => *over,
            None => self.ids.get(name).copied(),
        }
    }

    /// True if node `id` exists.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.name(id).is_some()
    }

    /// Every node, by ascending stable id, with its name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Text)> + '_ {
        let mut base = self.names.iter().peekable();
        let mut over = self.names_over.iter().peekable();
        std::iter::from_fn(move || loop {
            let next_base = base.peek().map(|(&id, _)| id);
            let next_over = over.peek().map(|(&id, _)| id);
            // The overlay's entry replaces the base's of the same id (`None`: removed).
            let from_over = match (next_base, next_over) {
                (None, None) => return None,
                (Some(b), Some(o)) => {
                    if o == b {
                        base.next();
                    }
                    o <= b
                }
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if from_over {
                if let Some((&id, Some(name))) = over.next() {
                    return Some((id, name));
                }
            } else if let Some((&id, name)) = base.next() {
                return Some((id, name));
            }
        })
    }

    /// Every stable id, ascending.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// These maps after the nodes `changed` (each with its name before the change, if it
    /// existed) were removed and then `now` (stable id, present name) added, so a batch may
    /// swap two nodes' names. O(overlay + changed log n); the overlay is folded into new
    /// base maps, O(n), once it grows past [`FOLD_AT`] or a sixteenth of the nodes.
    pub(crate) fn patched(
        &self,
        changed: &[(u64, Option<String>)],
        now: &[(u64, Text)],
    ) -> NodeNames {
        let mut names_over = BTreeMap::clone(&self.names_over);
        let mut ids_over = crate::hash::Map::clone(&self.ids_over);
        let mut len = self.len;
        for (id, before) in changed {
            if self.name(*id).is_some() && names_over.insert(*id, None) != Some(None) {
                len -= 1;
            }
            if let Some(before) = before {
                if self.id(before) == Some(*id) {
                    ids_over.insert(Text::from(before.as_str()), None);
                }
            }
        }
        for (id, name) in now {
            let existed = match names_over.get(id) {
                Some(over) => over.is_some(),
                None => self.names.contains_key(id),
            };
            if !existed {
                len += 1;
            }
            names_over.insert(*id, Some(name.clone()));
            ids_over.insert(name.clone(), Some(*id));
        }
        let patched = NodeNames {
            names: self.names.clone(),
            ids: self.ids.clone(),
            names_over: Arc::new(names_over),
            ids_over: Arc::new(ids_over),
            len,
        };
        if patched.names_over.len() > FOLD_AT.max(patched.len / 16) {
            let pairs: Vec<(u64, Text)> = patched
                .iter()
                .map(|(id, name)| (id, name.clone()))
                .collect();
            return NodeNames::new(pairs);
        }
        patched
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of patches reads as the same changes made to two plain maps, through
        /// every reader, across folds.
        #[test]
        fn patches_read_as_plain_maps(
            start in proptest::collection::btree_map(0u64..400, 0u8..60, 0..300),
            events in proptest::collection::vec(
                proptest::collection::vec((0u64..400, proptest::option::of(0u8..60)), 1..4),
                0..120,
            ),
        ) {
            let name = |n: u8| -> Text { Text::from(format!("node-{n}")) };
            // A plain map, names unique: a name taken by one id is dropped from any other.
            let mut plain: BTreeMap<u64, Text> = BTreeMap::new();
            for (&id, &n) in &start {
                if !plain.values().any(|v| *v == name(n)) {
                    plain.insert(id, name(n));
                }
            }
            let mut maps = NodeNames::new(plain.iter().map(|(&i, n)| (i, n.clone())));
            for event in events {
                let mut changed: Vec<(u64, Option<String>)> = Vec::new();
                let mut next = plain.clone();
                for &(id, _) in &event {
                    if !changed.iter().any(|(c, _)| *c == id) {
                        changed.push((id, plain.get(&id).map(|n| n.to_string())));
                        next.remove(&id);
                    }
                }
                let mut now: Vec<(u64, Text)> = Vec::new();
                for &(id, n) in &event {
                    let Some(n) = n else { continue };
                    let taken = next.values().any(|v| *v == name(n));
                    if !taken && !next.contains_key(&id) {
                        next.insert(id, name(n));
                        now.push((id, name(n)));
                    }
                }
                // A present node not named by the event keeps its name: the batch is valid.
                maps = maps.patched(&changed, &now);
                plain = next;
                prop_assert_eq!(maps.len(), plain.len());
                let listed: Vec<(u64, Text)> =
                    maps.iter().map(|(i, n)| (i, n.clone())).collect();
                let expected: Vec<(u64, Text)> =
                    plain.iter().map(|(&i, n)| (i, n.clone())).collect();
                prop_assert_eq!(listed, expected);
                for id in 0..400u64 {
                    prop_assert_eq!(maps.name(id), plain.get(&id));
                    prop_assert_eq!(maps.contains(id), plain.contains_key(&id));
                }
                for n in 0..60u8 {
                    let expected = plain.iter().find(|(_, v)| **v == name(n)).map(|(&i, _)| i);
                    prop_assert_eq!(maps.id(&name(n)), expected);
                }
            }
        }
    }

    #[test]
    fn a_rename_and_a_swap() {
        let a: Text = Text::from("a");
        let b: Text = Text::from("b");
        let maps = NodeNames::new([(1, a.clone()), (2, b.clone())]);
        let swapped = maps.patched(
            &[(1, Some("a".into())), (2, Some("b".into()))],
            &[(1, b.clone()), (2, a.clone())],
        );
        assert_eq!(swapped.id("a"), Some(2));
        assert_eq!(swapped.id("b"), Some(1));
        assert_eq!(swapped.len(), 2);
        let gone = swapped.patched(&[(1, Some("b".into()))], &[]);
        assert_eq!(gone.id("b"), None);
        assert_eq!(gone.name(1), None);
        assert_eq!(gone.ids().collect::<Vec<_>>(), vec![2]);
        // The earlier maps are unchanged.
        assert_eq!(maps.id("a"), Some(1));
    }
}
