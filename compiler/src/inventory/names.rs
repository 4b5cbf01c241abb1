//! Nodes found by name without a second copy of every name: a table of positions keyed by
//! the name's hash and compared against the nodes themselves. A map keyed by `String` copied
//! and freed every node's name on each load (100,000 on `large`, once per engine event).

use hashbrown::HashTable;

/// A node's position in the inventory's `nodes` and in its registration order
/// (`usize::MAX` when not listed).
pub(super) type Entry = (usize, usize);

/// Positions of nodes by name; the names stay in the nodes.
#[derive(Clone, Default)]
pub(super) struct NameIndex {
    table: HashTable<Entry>,
}

impl std::fmt::Debug for NameIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameIndex")
            .field("len", &self.table.len())
            .finish()
    }
}

impl NameIndex {
    /// Room for `n` names.
    pub(super) fn with_capacity(n: usize) -> NameIndex {
        NameIndex {
            table: HashTable::with_capacity(n),
        }
    }

    /// Add the node at `pos` called `name`, not yet listed in the registration order; when
    /// the name is already present, the first entry is kept and returned.
    pub(super) fn insert<'a>(
        &mut self,
        name: &str,
        pos: usize,
        name_of: impl Fn(usize) -> &'a str,
    ) -> Option<Entry> {
        let h = crate::hash::name(name);
        if let Some(&first) = self.table.find(h, |&(p, _)| name_of(p) == name) {
            return Some(first);
        }
        self.table.insert_unique(h, (pos, usize::MAX), |&(p, _)| {
            crate::hash::name(name_of(p))
        });
        None
    }

    /// The index with each node at its new position `to_new[position]`, those gone
    /// (`usize::MAX`) left out, and each rank its new position (a registration order in
    /// node order).
    pub(super) fn moved(&self, to_new: &[usize]) -> NameIndex {
        let mut table = self.table.clone();
        table.retain(|(pos, rank)| match to_new.get(*pos) {
            Some(&j) if j != usize::MAX => {
                (*pos, *rank) = (j, j);
                true
            }
            _ => false,
        });
        NameIndex { table }
    }

    /// How many names.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every node's registration rank set to its position (the order lists every node, in
    /// node order).
    pub(super) fn rank_by_position(&mut self) {
        self.table.iter_mut().for_each(|(pos, rank)| *rank = *pos);
    }

    /// The entry of the node called `name`.
    pub(super) fn get<'a>(&self, name: &str, name_of: impl Fn(usize) -> &'a str) -> Option<Entry> {
        self.table
            .find(crate::hash::name(name), |&(p, _)| name_of(p) == name)
            .copied()
    }

    /// The entry of the node called `name`, to set its registration rank.
    pub(super) fn get_mut<'a>(
        &mut self,
        name: &str,
        name_of: impl Fn(usize) -> &'a str,
    ) -> Option<&mut Entry> {
        self.table
            .find_mut(crate::hash::name(name), |&(p, _)| name_of(p) == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_name_and_keeps_the_first_of_two() {
        let names: Vec<String> = (0..1000)
            .map(|i| format!("node-{i}"))
            .chain(["node-7".into()])
            .collect();
        let name_of = |p: usize| names.get(p).map_or("", String::as_str);
        let mut index = NameIndex::with_capacity(4);
        let mut repeated = Vec::new();
        for (pos, name) in names.iter().enumerate() {
            if let Some(first) = index.insert(name, pos, name_of) {
                repeated.push((pos, first));
            }
        }
        assert_eq!(repeated, vec![(1000, (7, usize::MAX))]);
        for (pos, name) in names.iter().enumerate().take(1000) {
            assert_eq!(index.get(name, name_of), Some((pos, usize::MAX)));
        }
        assert_eq!(index.get("node-1000", name_of), None);
        if let Some(entry) = index.get_mut("node-3", name_of) {
            entry.1 = 0;
        }
        assert_eq!(index.get("node-3", name_of), Some((3, 0)));
    }
}
