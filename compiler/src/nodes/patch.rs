//! A node table patched from an earlier one for an engine event: only the changed nodes'
//! records built, every other node's record and index entry moved by id.

use super::*;
use crate::Text;

impl NodeTable {
    /// [`NodeTable::reusing`] for a node event, by patching `earlier` instead of building
    /// from every node: `inventory` is `earlier`'s with the nodes named `before` (names in
    /// `earlier`) replaced by those named `after` (names in `inventory`), and everything else
    /// the same (the same list of users and Services, no changed node a Service's host). The other nodes' records are shared
    /// with `earlier`, and the indexes are `earlier`'s with ids moved: O(nodes) integer and
    /// pointer copies plus O(changed x log nodes), not a record, string or hash per node (75
    /// ms of a join on `large`). `None` when the inventory is not such a change; the caller
    /// then builds. Registration ranks must be positions in both inventories: a kept node's
    /// is moved past the removed and added nodes.
    pub(crate) fn patched(
        inventory: &Inventory,
        earlier: &NodeTable,
        before: &[&str],
        after: &[&str],
    ) -> Option<NodeTable> {
        if !inventory.ranks_are_positions() {
            return None;
        }
        let named = after
            .iter()
            .map(|name| Some((inventory.node(name)?, inventory.registration_rank(name)?)))
            .collect::<Option<_>>()?;
        let change = Change {
            users: inventory.shared_users(),
            nodes: inventory.nodes().len(),
            named,
            services: inventory.services(),
        };
        NodeTable::patched_from(change, earlier, before)
    }

    /// [`NodeTable::patched`] from what it reads of the new inventory, which an engine knows
    /// before that inventory is made (so the two are patched side by side).
    pub(crate) fn patched_from(
        change: Change<'_>,
        earlier: &NodeTable,
        before: &[&str],
    ) -> Option<NodeTable> {
        if !Arc::ptr_eq(&earlier.user_source, change.users)
            || !earlier.positional
            || !earlier.services_kept(&change, before)
        {
            return None;
        }
        let mut removed: Vec<NodeId> = before
            .iter()
            .map(|name| earlier.id(name))
            .collect::<Option<_>>()?;
        removed.sort_unstable();
        removed.dedup();
        let mut named_ranked = change.named;
        named_ranked.sort_unstable_by(|a, b| a.0.name.cmp(&b.0.name));
        named_ranked.dedup_by(|a, b| a.0.name == b.0.name);
        let (named, added_ranks): (Vec<&crate::inventory::Node>, Vec<usize>) =
            named_ranked.into_iter().unzip();
        if earlier.len() - removed.len() + named.len() != change.nodes {
            return None;
        }
        let owner_of = |email: &str| earlier.user(email);
        let added: Vec<Arc<NodeInfo>> = named
            .iter()
            .map(|n| {
                let old = earlier.id(&n.name).and_then(|id| earlier.get(id));
                Arc::new(node_info(n, &owner_of, old).0)
            })
            .collect();
        // Registration ranks are positions in the inventories: a kept node's moves past the
        // removed nodes before it and the added nodes before it now.
        let mut gone_ranks: Vec<usize> = removed
            .iter()
            .filter_map(|id| earlier.registration.get(id.index()).copied())
            .collect();
        gone_ranks.sort_unstable();
        // The same names at the same addresses (a retag, an owner, posture or route change):
        // every node keeps its id, so the earlier indexes are copied and only the changed
        // nodes' memberships moved, not every list translated (6-9 ms of a retag on `large`).
        let same_names = removed.len() == added.len()
            && removed
                .iter()
                .zip(&added)
                .zip(&added_ranks)
                .all(|((&r, new), &rank)| {
                    earlier.get(r).is_some_and(|old| {
                        old.name == new.name && (old.v4, old.v6) == (new.v4, new.v6)
                    }) && earlier.registration.get(r.index()) == Some(&rank)
                });
        if same_names {
            return Some(
                earlier
                    .patched_in_place(&removed, added)?
                    .services_of(earlier),
            );
        }
        let mut new_ranks = added_ranks.clone();
        new_ranks.sort_unstable();
        let moved_rank = |r: usize| {
            let mut k = r - gone_ranks.partition_point(|&x| x < r);
            for &a in &new_ranks {
                if a <= k {
                    k += 1;
                }
            }
            k
        };
        // The nodes in name order: `earlier`'s without the removed, the added merged in.
        let mut nodes: Vec<Arc<NodeInfo>> = Vec::with_capacity(change.nodes);
        let mut to_new = vec![u32::MAX; earlier.len()];
        let mut added_ids = Vec::with_capacity(added.len());
        let mut registration = Vec::with_capacity(change.nodes);
        // Where each added node goes among the earlier ones, by binary search: comparing
        // names while merging compared every earlier name with the next added one (100,000
        // string comparisons per event on `large`, 3% of a retag). A kept node of the same
        // name as an added one is a table the patch cannot make.
        let mut places = Vec::with_capacity(added.len());
        for node in &added {
            let at = earlier.nodes.partition_point(|o| o.name < node.name);
            let kept_same = earlier.nodes.get(at).is_some_and(|o| o.name == node.name)
                && removed.binary_search(&NodeId::new(at)).is_err();
            if kept_same {
                return None;
            }
            places.push(at);
        }
        let mut fresh = places
            .into_iter()
            .zip(added.into_iter().zip(added_ranks))
            .peekable();
        let mut gone = removed.iter().peekable();
        for (i, old) in earlier.nodes.iter().enumerate() {
            while let Some((_, (node, rank))) = fresh.next_if(|&(at, _)| at <= i) {
                added_ids.push(NodeId::new(nodes.len()));
                nodes.push(node);
                registration.push(rank);
            }
            if gone.next_if(|r| r.index() == i).is_some() {
                continue;
            }
            *to_new.get_mut(i)? = index(nodes.len());
            nodes.push(old.clone());
            registration.push(moved_rank(*earlier.registration.get(i)?));
        }
        for (_, (node, rank)) in fresh {
            added_ids.push(NodeId::new(nodes.len()));
            nodes.push(node);
            registration.push(rank);
        }
        let moved = |id: &NodeId| translated(&to_new, *id);
        // Each list made at its full size up front (with room for the added nodes): collected
        // from a filter, it grew by doubling, and moving these lists took 5.4 ms of a member
        // join's table on `large`, 1.1 ms so.
        let moved_list = |list: &[NodeId]| moved_by(list, added_ids.len(), |&id| moved(&id));
        // Ids only grow with position, so moved lists stay sorted; the added go in by search.
        let insert = |list: &mut Vec<NodeId>, id: NodeId| {
            let at = list.partition_point(|&x| x < id);
            list.insert(at, id);
        };
        let mut by_name = earlier.by_name.clone();
        by_name.retain(|id| match moved(id) {
            Some(j) => {
                *id = j;
                true
            }
            None => false,
        });
        let mut tagged = moved_list(&earlier.tagged);
        let mut untagged = moved_list(&earlier.untagged);
        let mut added_devices: Vec<(usize, NodeId)> = Vec::new();
        let mut by_tag: crate::hash::Map<Text, Vec<NodeId>> = earlier
            .by_tag
            .iter()
            .map(|(tag, list)| (tag.clone(), moved_list(list)))
            .filter(|(_, list)| !list.is_empty())
            .collect();
        let room = added_ids.len();
        let mut by_v4: ByAddress<u32> =
            moved_by(&earlier.by_v4, room, |&(a, id)| Some((a, moved(&id)?)));
        let mut by_v6: ByAddress<u128> =
            moved_by(&earlier.by_v6, room, |&(a, id)| Some((a, moved(&id)?)));
        for &id in &added_ids {
            let node = nodes.get(id.index())?;
            let rehash = |id: &NodeId| {
                nodes
                    .get(id.index())
                    .map_or(0, |n| crate::hash::name(&n.name))
            };
            by_name.insert_unique(crate::hash::name(&node.name), id, rehash);
            if node.is_tagged() {
                insert(&mut tagged, id);
                for tag in &node.tags {
                    let list = by_tag.entry(tag.clone()).or_default();
                    if list.binary_search(&id).is_err() {
                        insert(list, id);
                    }
                }
            } else {
                insert(&mut untagged, id);
                if let Some(owner) = node.owner {
                    added_devices.push((owner.index(), id));
                }
            }
            if let Some(v4) = node.v4 {
                let key = (u32::from(v4), id);
                by_v4.insert(by_v4.partition_point(|&x| x < key), key);
            }
            if let Some(v6) = node.v6 {
                let key = (u128::from(v6), id);
                by_v6.insert(by_v6.partition_point(|&x| x < key), key);
            }
        }
        let devices = earlier.devices.moved(|_, id| moved(&id), &added_devices);
        // Every kept node keeps its texts (the added were formatted or taken above).
        let mut texts_from = vec![None; nodes.len()];
        for (i, &j) in to_new.iter().enumerate() {
            if let Some(slot) = texts_from.get_mut(j as usize) {
                *slot = Some(NodeId::new(i));
            }
        }
        let texts = Self::ranked_texts_from(&nodes, earlier, &texts_from);
        let identities = Identities {
            by_name,
            tagged,
            untagged,
            devices,
            by_tag,
        };
        let users = earlier.user_lookups();
        // The nodes with routes: the kept ones moved, the added ones with routes put in.
        let with_routes = earlier.with_routes.as_ref().map(|list| {
            let mut list = moved_list(list);
            for &id in &added_ids {
                if nodes.get(id.index()).is_some_and(|n| n.has_routes()) {
                    insert(&mut list, id);
                }
            }
            list
        });
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            users,
            (by_v4, by_v6),
            texts,
            (registration, true),
        );
        table.with_routes = with_routes;
        // The translation by name: the kept nodes' moves, and each removed node to the node
        // that has its name now, if one does (a retagged node is removed and added).
        for &r in &removed {
            let name = &earlier.nodes.get(r.index())?.name;
            if let Some(j) = table.id(name) {
                *to_new.get_mut(r.index())? = index(j.index());
            }
        }
        table.translated = Some((earlier.serial, Arc::from(to_new)));
        Some(table.services_of(earlier))
    }

    /// True when `change` keeps this table's Services as they are: the same services (hosts
    /// and approvals by name among them), and no changed node, by its name before
    /// (`before`) or after, hosts one or is approved to. Every host is then a kept node,
    /// whose record (with the services' addresses among its routes) is shared.
    fn services_kept(&self, change: &Change<'_>, before: &[&str]) -> bool {
        let same = self.services.len() == change.services.len()
            && self
                .services
                .iter()
                .zip(change.services)
                .all(|(info, svc)| info.written == *svc);
        let hosts = |name: &str| {
            change.services.iter().any(|svc| {
                svc.hosts.iter().any(|h| h == name) || svc.approved_hosts.iter().any(|h| h == name)
            })
        };
        same && !before.iter().any(|&name| hosts(name))
            && !change.named.iter().any(|(node, _)| hosts(&node.name))
    }

    /// This table with `earlier`'s Services, which [`NodeTable::services_kept`] found the
    /// change keeps.
    fn services_of(mut self, earlier: &NodeTable) -> NodeTable {
        self.services = earlier.services.clone();
        self.service_by_name = earlier.service_by_name.clone();
        self.service_by_vip = earlier.service_by_vip.clone();
        self
    }

    /// This table's user lookups, shared with a table patched from it.
    pub(super) fn user_lookups(&self) -> UserLookups {
        UserLookups {
            source: self.user_source.clone(),
            users: self.users.clone(),
            by_email: self.user_by_email.clone(),
            synced_groups: self.synced_groups.clone(),
        }
    }

    /// [`NodeTable::patched`] when the nodes `ids` (ascending) are replaced by `now` (in the
    /// same order) of the same names, addresses and registration ranks: every id is kept, the
    /// indexes are copied, and the replaced nodes' tag, owner and route memberships moved.
    pub(super) fn patched_in_place(
        &self,
        ids: &[NodeId],
        now: Vec<Arc<NodeInfo>>,
    ) -> Option<NodeTable> {
        let mut nodes = self.nodes.clone();
        let mut tagged = self.tagged.clone();
        let mut untagged = self.untagged.clone();
        // Devices leaving and joining their owners' lists, as (owner, device).
        let mut taken: Vec<(usize, NodeId)> = Vec::new();
        let mut put_in: Vec<(usize, NodeId)> = Vec::new();
        let mut by_tag = self.by_tag.clone();
        let mut with_routes = self.with_routes.clone();
        let take = |list: &mut Vec<NodeId>, id: NodeId| {
            if let Ok(at) = list.binary_search(&id) {
                list.remove(at);
            }
        };
        let put = |list: &mut Vec<NodeId>, id: NodeId| {
            if let Err(at) = list.binary_search(&id) {
                list.insert(at, id);
            }
        };
        for (&id, node) in ids.iter().zip(now) {
            let old = self.get(id)?;
            // Out of the earlier node's lists...
            if old.is_tagged() {
                take(&mut tagged, id);
                for tag in &old.tags {
                    if let Some(list) = by_tag.get_mut(tag) {
                        take(list, id);
                    }
                }
            } else {
                take(&mut untagged, id);
                if let Some(owner) = old.owner {
                    taken.push((owner.index(), id));
                }
            }
            if let Some(list) = with_routes.as_mut() {
                take(list, id);
            }
            // ...and into the new one's.
            if node.is_tagged() {
                put(&mut tagged, id);
                for tag in &node.tags {
                    put(by_tag.entry(tag.clone()).or_default(), id);
                }
            } else {
                put(&mut untagged, id);
                if let Some(owner) = node.owner {
                    put_in.push((owner.index(), id));
                }
            }
            if let Some(list) = with_routes.as_mut().filter(|_| node.has_routes()) {
                put(list, id);
            }
            *nodes.get_mut(id.index())? = node;
        }
        by_tag.retain(|_, list| !list.is_empty());
        // Only the replaced nodes' owners' lists move (none when they were and are tagged).
        let devices = if taken.is_empty() && put_in.is_empty() {
            self.devices.clone()
        } else {
            taken.sort_unstable();
            self.devices.moved(
                |u, id| taken.binary_search(&(u, id)).is_err().then_some(id),
                &put_in,
            )
        };
        let identities = Identities {
            by_name: self.by_name.clone(),
            tagged,
            untagged,
            devices,
            by_tag,
        };
        let users = self.user_lookups();
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            users,
            (self.by_v4.clone(), self.by_v6.clone()),
            (self.texts.clone(), self.ranks.clone()),
            (self.registration.clone(), true),
        );
        table.with_routes = with_routes;
        let same: Vec<u32> = (0..self.len()).map(index).collect();
        table.translated = Some((self.serial, Arc::from(same)));
        Some(table)
    }

    /// A table of `nodes` with these indexes, address texts with their ranks, and
    /// registration ranks (with whether they are positions); what the compile settles
    /// (routes, IP sets, groups' users) and the Services are left empty.
    pub(super) fn assembled(
        nodes: Vec<Arc<NodeInfo>>,
        identities: Identities,
        users: UserLookups,
        (by_v4, by_v6): (ByAddress<u32>, ByAddress<u128>),
        (texts, ranks): (Vec<(u32, u32)>, Vec<Pair<u32>>),
        (registration, positional): (Vec<usize>, bool),
    ) -> NodeTable {
        let Identities {
            by_name,
            tagged,
            untagged,
            devices,
            by_tag,
        } = identities;
        NodeTable {
            by_name,
            devices,
            user_source: users.source,
            users: users.users,
            user_by_email: users.by_email,
            synced_groups: users.synced_groups,
            services: Vec::new(),
            service_by_name: HashMap::new(),
            service_by_vip: HashMap::new(),
            by_tag,
            tagged,
            untagged,
            by_v4,
            by_v6,
            routers: Vec::new(),
            exits: Vec::new(),
            with_routes: None,
            ipsets: IpSets::default(),
            group_users: Arc::default(),
            route_index: std::sync::OnceLock::new(),
            serial: next_serial(),
            translated: None,
            texts,
            ranks,
            registration,
            positional,
            nodes,
        }
    }
}
