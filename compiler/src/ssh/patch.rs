//! An earlier lowering of the same `ssh` section moved to a node table in which only some
//! nodes changed (an engine event): each rule's sources and destinations are the earlier
//! lists moved to the new ids, with only the changed nodes tested against the rule's
//! selectors, instead of every selector resolved, its nodes gathered, sorted and counted
//! again (a third of the CPU time of a member's join on `large` went there).

use aclc_policy::model::{Alias, Autogroup, Selector};

use super::{SshLowered, SshPrior};
use crate::nodes::{NodeId, NodeTable, UserId};
use crate::resolve::{Resolver, Target};

/// More changed nodes than this and the section is lowered afresh: each changed node is
/// tested against every rule's selectors.
const MAX_FRESH: usize = 256;

/// New or changed nodes up to which a moved list takes them by insertion (a shift of the
/// list's tail each) rather than a merge into a second list.
const FEW_FRESH: usize = 4;

/// How the earlier lowering's nodes map to this table's.
pub(super) struct Patch<'a> {
    /// The earlier lowering.
    pub(super) old: &'a SshLowered,
    /// Each earlier node's id now; `None` for one that left or changed.
    to_new: Vec<Option<NodeId>>,
    /// Nodes with no earlier id (new or changed), ascending.
    pub(super) fresh: Vec<NodeId>,
    /// Earlier ids with no id now, ascending.
    pub(super) gone: Vec<NodeId>,
    /// The users whose devices changed (owners of the changed nodes, before and after),
    /// sorted: every other user's devices are the devices they were.
    pub(super) touched: Vec<UserId>,
    /// The kept earlier ids as runs `[start, end)` that move by one offset each: a list is
    /// moved run by run (two binary searches and one pass of additions), not id by id
    /// through `to_new` (4.4 million ids per event on `large`). Empty when there are more
    /// than [`MAX_RUNS`] runs: then id by id.
    runs: Vec<(usize, usize, isize)>,
}

/// Runs beyond which lists are moved id by id.
const MAX_RUNS: usize = 8;

impl<'a> Patch<'a> {
    /// The patch from `prior` to `table`, for a section of `rules` rules, when only the
    /// nodes `prior.kept` has no earlier id for changed, the users are the same list, and
    /// few nodes changed.
    pub(super) fn new(prior: &SshPrior<'a>, table: &NodeTable, rules: usize) -> Option<Self> {
        let kept = prior.kept?;
        let touched = prior.touched_users.as_ref()?;
        let old = prior.lowered;
        let numbered =
            old.rules.len() == rules && old.rules.iter().enumerate().all(|(i, r)| r.index == i);
        if !numbered || kept.len() != table.len() {
            return None;
        }
        let mut to_new = vec![None; old.by_node.len()];
        let mut fresh = Vec::new();
        for (j, k) in kept.iter().enumerate() {
            match k {
                Some(i) => *to_new.get_mut(i.index())? = Some(NodeId::new(j)),
                None => fresh.push(NodeId::new(j)),
            }
        }
        if fresh.len() > MAX_FRESH {
            return None;
        }
        let gone: Vec<NodeId> = to_new
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_none())
            .map(|(i, _)| NodeId::new(i))
            .collect();
        if gone.len() > MAX_FRESH {
            return None;
        }
        // A node whose record changed but kept its owner (a route event) is fresh too; its
        // owner's lists are built again with it.
        let mut touched = touched.clone();
        touched.extend(table.owners_of(&fresh));
        touched.sort_unstable();
        touched.dedup();
        let runs = runs_of(&to_new);
        Some(Patch {
            old,
            to_new,
            fresh,
            gone,
            touched,
            runs,
        })
    }

    /// The earlier list `old` (ascending earlier ids) moved to the new ids, without the
    /// nodes that left or changed, with the fresh nodes `admits` takes merged in: ascending
    /// (ids of unchanged nodes keep their order, both being name order).
    pub(super) fn moved(
        &self,
        old: &[NodeId],
        mut admits: impl FnMut(NodeId) -> bool,
    ) -> Vec<NodeId> {
        // The fresh nodes taken, counted first: the list is made at its final size (made
        // with room for one, a batch's lists grew by doubling, twice the memory).
        let taken: Vec<NodeId> = self.fresh.iter().copied().filter(|&f| admits(f)).collect();
        let mut extra = taken.iter().copied().peekable();
        let mut out = Vec::with_capacity(old.len() + taken.len());
        if !self.runs.is_empty() {
            let mut rest = old;
            for &(start, end, offset) in &self.runs {
                let (_, from) = rest.split_at(rest.partition_point(|id| id.index() < start));
                let (run, after) = from.split_at(from.partition_point(|id| id.index() < end));
                out.extend(run.iter().map(|id| id.shifted(offset)));
                rest = after;
            }
            if extra.peek().is_none() {
                return out;
            }
            // A few new members (a joined node): put in place, not merged into a copy.
            if self.fresh.len() <= FEW_FRESH {
                for e in extra {
                    let at = out.partition_point(|&n| n < e);
                    out.insert(at, e);
                }
                return out;
            }
            let mut merged = Vec::with_capacity(out.len() + taken.len());
            for n in out {
                while let Some(e) = extra.next_if(|&e| e < n) {
                    merged.push(e);
                }
                merged.push(n);
            }
            merged.extend(extra);
            return merged;
        }
        for &o in old {
            let Some(n) = self.to_new.get(o.index()).copied().flatten() else {
                continue;
            };
            while let Some(e) = extra.next_if(|&e| e < n) {
                out.push(e);
            }
            out.push(n);
        }
        out.extend(extra);
        out
    }

    /// True when `before` (earlier ids) holds no node that left or changed and `now` no
    /// fresh node: the two lists are the same devices.
    pub(super) fn same_devices(&self, before: &[NodeId], now: &[NodeId]) -> bool {
        !crate::nodes::holds_any(before, &self.gone) && !crate::nodes::holds_any(now, &self.fresh)
    }
}

/// The kept ids of `to_new` (each earlier node's id now) as runs of consecutive earlier ids
/// that move by one offset, when there are at most [`MAX_RUNS`]; none otherwise.
fn runs_of(to_new: &[Option<NodeId>]) -> Vec<(usize, usize, isize)> {
    let mut runs: Vec<(usize, usize, isize)> = Vec::new();
    for (i, new) in to_new.iter().enumerate() {
        let Some(new) = new else { continue };
        let offset = new.index().wrapping_sub(i).cast_signed();
        match runs.last_mut() {
            Some((_, end, o)) if *end == i && *o == offset => *end = i + 1,
            _ => {
                if runs.len() == MAX_RUNS {
                    return Vec::new();
                }
                runs.push((i, i + 1, offset));
            }
        }
    }
    runs
}

/// Whether one node is among the devices a selector stands for, as [`super::source_nodes`]
/// of the resolved selector would list it, without listing them: the users of user-like
/// aliases are found once per alias and the node's owner looked up among them.
#[derive(Default)]
pub(super) struct Holds {
    users: crate::hash::Map<Alias, Option<Vec<UserId>>>,
}

impl Holds {
    /// True if node `id` is one of `selector`'s devices (by identity or by address).
    pub(super) fn test(
        &mut self,
        resolver: &mut Resolver<'_>,
        table: &NodeTable,
        selector: &Selector,
        id: NodeId,
    ) -> bool {
        let Some(node) = table.get(id) else {
            return false;
        };
        let alias = &selector.alias;
        match alias {
            Alias::Wildcard | Alias::Autogroup(Autogroup::DangerAll) => return true,
            Alias::Autogroup(Autogroup::Internet | Autogroup::SelfDevices) => return false,
            Alias::Autogroup(Autogroup::Tagged) => return table.tagged.binary_search(&id).is_ok(),
            Alias::Tag(tag) => return table.with_tag(tag).binary_search(&id).is_ok(),
            _ => {}
        }
        let users = match self.users.get(alias) {
            Some(users) => users,
            None => {
                let users = resolver.users_of(alias).map(|mut users| {
                    users.sort_unstable();
                    users.dedup();
                    users
                });
                self.users.entry(alias.clone()).or_insert(users)
            }
        };
        match users {
            // A user-like alias stands for its users' untagged devices.
            Some(users) => node.owner.is_some_and(|owner| {
                users.binary_search(&owner).is_ok()
                    && table
                        .devices
                        .get(owner.index())
                        .is_some_and(|devices| devices.binary_search(&id).is_ok())
            }),
            None => match resolver.resolve_alias(alias) {
                Target::Wildcard | Target::DangerAll => true,
                Target::Internet | Target::SelfDevices => false,
                Target::Nodes(ids) => ids.binary_search(&id).is_ok(),
                Target::Literal(lit) => node.address_in(&lit.set),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Differential: moving a list run by run equals moving it id by id, whatever
        /// nodes left, joined or changed.
        #[test]
        fn runs_move_lists_as_ids_do(
            nodes in 0usize..300,
            left in proptest::collection::btree_set(0usize..300, 0..4),
            joined in proptest::collection::btree_set(0usize..300, 0..4),
            many in any::<bool>(),
            list in proptest::collection::btree_set(0usize..300, 0..200),
            admitted in any::<u64>(),
        ) {
            // New ids: the kept earlier nodes in order, with the joined positions fresh. A few
            // changes give a few runs; `many` leaves every other node out (many runs).
            let kept: Vec<bool> = (0..nodes)
                .map(|i| !left.contains(&i) && (!many || i % 2 == 0))
                .collect();
            let mut to_new = vec![None; kept.len()];
            let mut fresh = Vec::new();
            let (mut next, mut earlier) = (0usize, 0usize);
            while earlier < kept.len() || joined.iter().any(|&j| j >= next) {
                if joined.contains(&next) {
                    fresh.push(NodeId::new(next));
                    next += 1;
                    continue;
                }
                let Some(&keep) = kept.get(earlier) else { break };
                if keep {
                    to_new[earlier] = Some(NodeId::new(next));
                    next += 1;
                }
                earlier += 1;
            }
            let old = SshLowered {
                rules: std::sync::Arc::default(),
                by_node: crate::pernode::ItemIndex::empty(0),
                global: Vec::new(),
                self_rules: Vec::new(),
                moved: None,
                moved_users: Vec::new(),
                labels: crate::ssh::Labels::fresh(0),
            };
            let runs = runs_of(&to_new);
            // Both ways are exercised: by runs after a few changes, id by id after many.
            if !many && to_new.iter().any(Option::is_some) {
                prop_assert!(!runs.is_empty());
            }
            if many && nodes > 40 {
                prop_assert!(runs.is_empty());
            }
            let patch = Patch { old: &old, to_new, fresh, gone: Vec::new(), touched: Vec::new(), runs };
            let list: Vec<NodeId> = list.into_iter().filter(|&i| i < kept.len()).map(NodeId::new).collect();
            let admits = |id: NodeId| admitted & (1 << (id.index() % 64)) != 0;
            let by_runs = patch.moved(&list, admits);
            let by_ids = Patch { runs: Vec::new(), ..patch }.moved(&list, admits);
            prop_assert!(by_ids.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(by_runs, by_ids);
        }
    }
}
