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
}

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
        Some(Patch {
            old,
            to_new,
            fresh,
            gone,
            touched,
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
        let mut extra = self.fresh.iter().copied().filter(|&f| admits(f)).peekable();
        let mut out = Vec::with_capacity(old.len() + 1);
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
