//! Building a node table from an inventory: each node's record and wire strings, the address
//! texts ranked in string order, and the lookups by name, owner, tag and address.

use super::*;
use crate::Text;

/// The users as the compiler reads them (logins lowercased), users by login, and the members
/// of each synced group.
pub(super) fn user_lookups(
    list: &[crate::inventory::User],
) -> (
    Vec<UserInfo>,
    crate::hash::Map<String, UserId>,
    SyncedGroups,
) {
    let users: Vec<UserInfo> = list
        .iter()
        .map(|u| UserInfo {
            email: u.email.to_lowercase(),
            roles: u.roles.clone(),
        })
        .collect();
    let mut synced_groups = SyncedGroups::new();
    for (i, user) in list.iter().enumerate() {
        for group in &user.groups {
            synced_groups
                .entry(group.clone())
                .or_default()
                .push(UserId::new(i));
        }
    }
    let mut user_by_email = crate::hash::Map::default();
    for (i, user) in users.iter().enumerate() {
        if !user.email.is_empty() {
            user_by_email
                .entry(user.email.clone())
                .or_insert(UserId::new(i));
        }
    }
    (users, user_by_email, synced_groups)
}

impl NodeTable {
    /// Sorts every node's address texts once, so that lists of them sort as numbers.
    pub(super) fn rank_texts(&mut self) {
        // The first 24 bytes, zero-padded, order as the strings do up to a tie (eight were
        // too few: every IPv6 address of a tailnet starts `fd7a:115c:a1e0:`, and each tie
        // reads both strings).
        let prefix = |t: &str| {
            let mut bytes = [0u8; 24];
            bytes
                .iter_mut()
                .zip(t.as_bytes())
                .for_each(|(b, &c)| *b = c);
            let (mut high, mut low) = ([0u8; 16], [0u8; 8]);
            high.iter_mut().zip(&bytes).for_each(|(h, &b)| *h = b);
            low.iter_mut()
                .zip(bytes.iter().skip(16))
                .for_each(|(l, &b)| *l = b);
            (u128::from_be_bytes(high), u64::from_be_bytes(low))
        };
        let mut keyed: Vec<((u128, u64), (u32, u32))> = Vec::new();
        self.ranks = self
            .nodes
            .iter()
            .map(|n| n.texts.iter().map(|_| 0).collect())
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for (j, t) in node.texts.iter().enumerate() {
                keyed.push((prefix(t), (index(i), index(j))));
            }
        }
        keyed.sort_unstable_by(|&(pa, a), &(pb, b)| {
            pa.cmp(&pb)
                .then_with(|| self.text_of(a).cmp(&self.text_of(b)))
        });
        let mut texts = Vec::with_capacity(keyed.len());
        for (rank, &(_, (i, j))) in keyed.iter().enumerate() {
            let (Some(node), Some(ranks)) =
                (self.nodes.get(i as usize), self.ranks.get_mut(i as usize))
            else {
                continue;
            };
            if let (Some(slot), Some(_)) = (ranks.get_mut(j as usize), node.texts.get(j as usize)) {
                *slot = index(rank);
                texts.push((i, j));
            }
        }
        self.texts = texts;
    }

    /// [`NodeTable::rank_texts`] for a table built from `earlier`: node `n` took its address
    /// texts from node `texts_from[n]` of `earlier` (or formatted them). The texts kept stay
    /// in their order and the few new ones are merged in: O(texts + new log new), not a sort
    /// of every text. Returns every address text in order, and each node's texts' ranks: it
    /// reads only the nodes, so it runs beside the table's other indexes.
    pub(super) fn ranked_texts_from(
        nodes: &[Arc<NodeInfo>],
        earlier: &NodeTable,
        texts_from: &[Option<NodeId>],
    ) -> (Vec<(u32, u32)>, Vec<Pair<u32>>) {
        // Where each earlier node's texts went (`u32::MAX`: not kept), and the new texts.
        let mut to_new = vec![u32::MAX; earlier.nodes.len()];
        let mut fresh: Vec<(&Text, u32, u32)> = Vec::new();
        for (i, (node, from)) in nodes.iter().zip(texts_from).enumerate() {
            match from.and_then(|id| to_new.get_mut(id.index())) {
                Some(slot) => *slot = index(i),
                None => {
                    for (j, t) in node.texts.iter().enumerate() {
                        fresh.push((t, index(i), index(j)));
                    }
                }
            }
        }
        fresh.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Merge the kept texts (in their order) with the new ones (sorted).
        let mut new_rank = vec![u32::MAX; earlier.texts.len()];
        let mut texts: Vec<(u32, u32)> = Vec::with_capacity(earlier.texts.len() + fresh.len());
        let mut placed: Vec<(u32, u32, u32)> = Vec::with_capacity(fresh.len());
        // Each new text goes before the first earlier text greater than it: found by binary
        // search (O(new x log texts) comparisons, not one per kept text).
        let mut fresh_iter = fresh
            .into_iter()
            .map(|(t, i, j)| {
                let at = earlier
                    .texts
                    .partition_point(|&o| earlier.text_of(o).is_some_and(|o| **o <= **t));
                (at, (i, j))
            })
            .peekable();
        for (r, &(node, j)) in earlier.texts.iter().enumerate() {
            let Some(&now) = to_new.get(node as usize).filter(|&&n| n != u32::MAX) else {
                continue;
            };
            while let Some((_, (i, j))) = fresh_iter.next_if(|(at, _)| *at <= r) {
                placed.push((i, j, index(texts.len())));
                texts.push((i, j));
            }
            if let Some(slot) = new_rank.get_mut(r) {
                *slot = index(texts.len());
            }
            texts.push((now, j));
        }
        for (_, (i, j)) in fresh_iter {
            placed.push((i, j, index(texts.len())));
            texts.push((i, j));
        }
        let mut ranks: Vec<Pair<u32>> = nodes
            .iter()
            .zip(texts_from)
            .map(
                |(node, from)| match from.and_then(|id| earlier.ranks.get(id.index())) {
                    Some(old) => old
                        .iter()
                        .map(|&r| new_rank.get(r as usize).copied().unwrap_or(u32::MAX))
                        .collect(),
                    None => node.texts.iter().map(|_| 0).collect(),
                },
            )
            .collect();
        for (i, j, rank) in placed {
            if let Some(slot) = ranks
                .get_mut(i as usize)
                .and_then(|r| r.get_mut(j as usize))
            {
                *slot = rank;
            }
        }
        (texts, ranks)
    }

    /// The address text at `(node, place)` ([`NodeTable::texts`]).
    pub(super) fn text_of(&self, (node, j): (u32, u32)) -> Option<&Text> {
        self.nodes.get(node as usize)?.texts.get(j as usize)
    }

    /// The address text of rank `rank` (ranks order every node's address texts as strings).
    pub(crate) fn text_at(&self, rank: u32) -> Option<&Text> {
        self.text_of(*self.texts.get(rank as usize)?)
    }

    /// The table of an inventory (routes not yet approved: see [`crate::routes`]).
    pub(crate) fn new(inventory: &Inventory) -> NodeTable {
        NodeTable::reusing(inventory, None)
    }

    /// [`NodeTable::new`], taking from `earlier` (a table of an earlier version of the
    /// tailnet) the strings of each node it holds under the same name: the name, the tags
    /// when they are the same, and the address texts when the addresses are (an engine event
    /// formats only the nodes it changed, and unchanged strings stay shared, so comparing
    /// them later is a pointer comparison).
    pub(crate) fn reusing(inventory: &Inventory, earlier: Option<&NodeTable>) -> NodeTable {
        let user_source = inventory.shared_users().clone();
        let (users, user_by_email, synced_groups) =
            match earlier.filter(|e| Arc::ptr_eq(&e.user_source, &user_source)) {
                Some(e) => (
                    e.users.clone(),
                    e.user_by_email.clone(),
                    e.synced_groups.clone(),
                ),
                None => {
                    let (users, by_email, groups) = user_lookups(inventory.users());
                    (Arc::new(users), Arc::new(by_email), Arc::new(groups))
                }
            };
        let owner_of = |email: &str| user_by_email.get(&*lowercase(email)).copied();
        let sorted = by_name(inventory.nodes(), earlier);
        // Each node's strings are formatted on every core (a fifth of a table's build).
        let info = |&(n, position, earlier_id): &Sorted<'_>| {
            let found = earlier
                .zip(earlier_id)
                .and_then(|(t, id)| Some((id, t.get(id)?)));
            let rank = inventory
                .registration_rank_at(position, &n.name)
                .unwrap_or(usize::MAX);
            let (info, same) = node_info(n, &owner_of, found.map(|(_, o)| o));
            (
                info,
                (same.then(|| found.map(|(id, _)| id)).flatten(), rank),
            )
        };
        // Each node, with the earlier node whose address texts it took.
        let (nodes, (texts_from, registration)): Built =
            crate::par::map_parts(&sorted, 4096, |part| {
                part.iter()
                    .map(|s| {
                        let (node, from) = info(s);
                        (Arc::new(node), from)
                    })
                    .collect()
            })
            .into_iter()
            .unzip();
        // The indexes by name, tag, owner and address on one core, the address texts' ranks
        // (from `earlier`) and the address lists on the other.
        let (identities, (ranked, by_v4, by_v6)) = crate::par::join_if(
            nodes.len() > 4096,
            || identity_indexes(&nodes, users.len()),
            || {
                let ranked =
                    earlier.map(|earlier| Self::ranked_texts_from(&nodes, earlier, &texts_from));
                let (by_v4, by_v6) = address_indexes(&nodes);
                (ranked, by_v4, by_v6)
            },
        );
        let mut table = NodeTable::assembled(
            nodes,
            identities,
            UserLookups {
                source: user_source,
                users,
                by_email: user_by_email,
                synced_groups,
            },
            (by_v4, by_v6),
            (Vec::new(), Vec::new()),
            (registration, inventory.ranks_are_positions()),
        );
        match ranked {
            Some((texts, ranks)) => {
                table.texts = texts;
                table.ranks = ranks;
            }
            None => table.rank_texts(),
        }
        for svc in inventory.services() {
            let vips = svc.vips();
            let mut hosts: Vec<NodeId> = svc.hosts.iter().filter_map(|h| table.id(h)).collect();
            hosts.sort_unstable();
            hosts.dedup();
            for &id in &hosts {
                let approved = table
                    .get(id)
                    .is_some_and(|n| svc.approved_hosts.iter().any(|a| **a == *n.name));
                if let Some(node) = table.nodes.get_mut(id.index()).map(Arc::make_mut) {
                    node.advertised.extend(vips.iter().copied());
                    if approved {
                        node.approved.extend(vips.iter().copied());
                    }
                }
            }
            table
                .service_by_name
                .entry(svc.name.clone())
                .or_insert(table.services.len());
            for vip in &vips {
                table
                    .service_by_vip
                    .entry(*vip)
                    .or_insert(table.services.len());
            }
            table.services.push(ServiceInfo {
                written: svc.clone(),
                name: svc.name.clone(),
                vips,
                tags: svc.tags.clone(),
            });
        }
        // Ids are positions in name order: everything that binary-searches node lists relies on it.
        debug_assert!(
            table
                .nodes
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.name < b.name)),
            "nodes must be sorted by name, names distinct"
        );
        table
    }
}

/// The record of inventory node `n` (registration `rank`), taking the strings of `old` (its
/// record in an earlier table, by name) that are unchanged: the name, the tags when they are
/// the same, the address texts when the addresses are (the flag says so). Routes not yet
/// served ([`crate::routes::apply`]).
pub(super) fn node_info(
    n: &crate::inventory::Node,
    owner_of: &dyn Fn(&str) -> Option<UserId>,
    old: Option<&NodeInfo>,
) -> (NodeInfo, bool) {
    let same_addresses = old.filter(|o| o.v4 == n.ipv4 && o.v6 == n.ipv6);
    let (texts, hosts) = match same_addresses {
        Some(o) => (o.texts.clone(), o.hosts.clone()),
        None => {
            let texts: Pair<Text> = n
                .addresses()
                .iter()
                .map(|a| Text::from(a.to_string()))
                .collect();
            // A host prefix is the address text with its full length.
            let hosts = n
                .addresses()
                .iter()
                .zip(&texts)
                .map(|(a, t)| Text::from(format!("{t}/{}", if a.is_ipv4() { 32 } else { 128 })))
                .collect();
            (texts, hosts)
        }
    };
    let tags = match old.filter(|o| {
        o.tags
            .iter()
            .map(|t| &**t)
            .eq(n.tags.iter().map(String::as_str))
    }) {
        Some(o) => o.tags.clone(),
        None => node_tags(&n.tags),
    };
    let info = NodeInfo {
        name: old.map_or_else(|| Text::from(n.name.as_str()), |o| o.name.clone()),
        owner: n
            .user
            .as_deref()
            .filter(|_| n.tags.is_empty())
            .and_then(owner_of),
        tags,
        v4: n.ipv4,
        v6: n.ipv6,
        texts,
        hosts,
        advertised: n.routable_ips.clone(),
        approved: n.approved_routes.clone(),
        offline: false,
        served: Vec::new(),
        subnet_routes: Vec::new(),
        exit: false,
        exit_v4: false,
        exit_v6: false,
        posture: n.posture.clone(),
    };
    (info, same_addresses.is_some())
}

/// A table's lookups of its users, shared by the tables built from the same list of users.
pub(super) struct UserLookups {
    /// The inventory's users they were made from.
    pub(super) source: Arc<[crate::inventory::User]>,
    pub(super) users: Arc<Vec<UserInfo>>,
    pub(super) by_email: Arc<crate::hash::Map<String, UserId>>,
    pub(super) synced_groups: Arc<SyncedGroups>,
}

/// A table's indexes of its nodes' identities (all lists sorted: nodes come in id order).
pub(super) struct Identities {
    pub(super) by_name: hashbrown::HashTable<NodeId>,
    pub(super) tagged: Vec<NodeId>,
    pub(super) untagged: Vec<NodeId>,
    /// Each user's untagged devices.
    pub(super) devices: crate::devices::Devices,
    pub(super) by_tag: crate::hash::Map<Text, Vec<NodeId>>,
}

/// The indexes of `nodes`' names, tags and owners (`users` of them).
pub(super) fn identity_indexes(nodes: &[Arc<NodeInfo>], users: usize) -> Identities {
    let mut devices: Vec<Vec<NodeId>> = vec![Vec::new(); users];
    let mut ids = Identities {
        by_name: hashbrown::HashTable::with_capacity(nodes.len()),
        tagged: Vec::new(),
        untagged: Vec::new(),
        devices: crate::devices::Devices::default(),
        by_tag: crate::hash::Map::default(),
    };
    let rehash = |id: &NodeId| {
        nodes
            .get(id.index())
            .map_or(0, |n| crate::hash::name(&n.name))
    };
    for (i, node) in nodes.iter().enumerate() {
        let id = NodeId::new(i);
        ids.by_name
            .insert_unique(crate::hash::name(&node.name), id, rehash);
        if node.is_tagged() {
            ids.tagged.push(id);
            for tag in &node.tags {
                ids.by_tag.entry(tag.clone()).or_default().push(id);
            }
        } else {
            ids.untagged.push(id);
            if let Some(list) = node.owner.and_then(|u| devices.get_mut(u.index())) {
                list.push(id);
            }
        }
    }
    for list in ids.by_tag.values_mut() {
        list.dedup();
    }
    ids.devices = crate::devices::Devices::from_lists(&devices);
    ids
}

/// Nodes by address (an IPv4 or IPv6 address as an integer), sorted by address.
pub(super) type ByAddress<A> = Vec<(A, NodeId)>;

/// `list`'s entries through `moved` (those it keeps), in a vector made at its full size with
/// `room` to spare ([`NodeTable::patched_from`]).
pub(super) fn moved_by<T, U>(list: &[T], room: usize, moved: impl Fn(&T) -> Option<U>) -> Vec<U> {
    let mut out = Vec::with_capacity(list.len() + room);
    out.extend(list.iter().filter_map(moved));
    out
}

/// True when `by_address` (sorted by address, one entry per node) lists all `n` nodes and
/// one of `ranges` holds every address in it.
pub(super) fn holds_all<T: Copy + Ord>(
    ranges: &[(T, T)],
    by_address: &[(T, NodeId)],
    n: usize,
) -> bool {
    match (by_address.first(), by_address.last()) {
        (Some(&(first, _)), Some(&(last, _))) if by_address.len() == n => {
            ranges.iter().any(|&(from, to)| from <= first && last <= to)
        }
        _ => false,
    }
}

/// Nodes by IPv4 and by IPv6 address, sorted by address.
pub(super) fn address_indexes(nodes: &[Arc<NodeInfo>]) -> (ByAddress<u32>, ByAddress<u128>) {
    let mut by_v4 = Vec::with_capacity(nodes.len());
    let mut by_v6 = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let id = NodeId::new(i);
        if let Some(v4) = node.v4 {
            by_v4.push((u32::from(v4), id));
        }
        if let Some(v6) = node.v6 {
            by_v6.push((u128::from(v6), id));
        }
    }
    by_v4.sort_unstable();
    by_v6.sort_unstable();
    (by_v4, by_v6)
}

/// The nodes in name order, each with its id in `earlier` (a table of the tailnet before a
/// change) when it has one under that name. With `earlier`, the nodes it holds come in its
/// order (their ids sorted, integers) and only the new ones are sorted by name and merged in
/// by binary search: O(n + k log n) name comparisons for k new nodes, not a sort of every
/// name (which shared prefixes make long comparisons). Each node comes with its position in
/// `nodes`.
pub(super) fn by_name<'n>(
    nodes: &'n [Arc<crate::inventory::Node>],
    earlier: Option<&NodeTable>,
) -> Vec<Sorted<'n>> {
    let positions: Vec<usize> = (0..nodes.len()).collect();
    let Some(earlier) = earlier else {
        let mut sorted: Vec<Sorted<'n>> = nodes
            .iter()
            .zip(positions)
            .map(|(n, p)| (&**n, p, None))
            .collect();
        sorted.sort_by(|(a, _, _), (b, _, _)| a.name.cmp(&b.name));
        return sorted;
    };
    // Each node's earlier id, looked up on every core.
    let found: Vec<Sorted<'n>> = crate::par::map_parts(&positions, 4096, |part| {
        part.iter()
            .filter_map(|&p| {
                let n = nodes.get(p)?;
                Some((&**n, p, earlier.id(&n.name)))
            })
            .collect()
    });
    // The nodes found, in their earlier order: each put at its earlier id (ids are
    // positions), not sorted (names are distinct, so no two nodes share an id).
    let mut slots: Vec<Option<Sorted<'n>>> = vec![None; earlier.len()];
    let mut fresh: Vec<Sorted<'n>> = Vec::new();
    for node in found {
        match node.2.and_then(|id| slots.get_mut(id.index())) {
            Some(slot @ None) => *slot = Some(node),
            _ => fresh.push(node),
        }
    }
    let kept: Vec<Sorted<'n>> = slots.into_iter().flatten().collect();
    if fresh.is_empty() {
        return kept;
    }
    fresh.sort_by(|(a, _, _), (b, _, _)| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(nodes.len());
    let mut rest = kept.as_slice();
    for n in fresh {
        let at = rest.partition_point(|(k, _, _)| k.name < n.0.name);
        let (before, after) = rest.split_at(at);
        out.extend_from_slice(before);
        out.push(n);
        rest = after;
    }
    out.extend_from_slice(rest);
    out
}

/// A table's records, with each node's earlier node whose address texts it took and its
/// registration rank.
pub(super) type Built = (Vec<Arc<NodeInfo>>, (Vec<Option<NodeId>>, Vec<usize>));

/// A node of the inventory, its position there, and its id in an earlier table.
pub(super) type Sorted<'n> = (&'n crate::inventory::Node, usize, Option<NodeId>);

/// A node's tags as the policy names them ([`aclc_policy::model::canonical_tag`], as the policy's
/// own are read): an inventory's `tag:Server` is the policy's `tag:server`. Two spellings of one tag are
/// one tag (the first kept).
pub(super) fn node_tags(tags: &[String]) -> Vec<Text> {
    let mut out: Vec<Text> = Vec::with_capacity(tags.len());
    // A few tags are compared pairwise, a long list (hostile) through a set.
    let mut seen: Option<HashSet<Text>> = (tags.len() > 16).then(HashSet::new);
    for tag in tags {
        let tag: Text = Text::from(&*aclc_policy::model::canonical_tag(tag));
        let new = match &mut seen {
            Some(seen) => seen.insert(tag.clone()),
            None => !out.contains(&tag),
        };
        if new {
            out.push(tag);
        }
    }
    out
}

/// `text` lowercased, as logins are compared; most are lowercase already, and are not copied.
pub(super) fn lowercase(text: &str) -> std::borrow::Cow<'_, str> {
    let unchanged = match text.is_ascii() {
        true => !text.bytes().any(|b| b.is_ascii_uppercase()),
        false => text.chars().all(|c| {
            let mut lower = c.to_lowercase();
            lower.next() == Some(c) && lower.next().is_none()
        }),
    };
    match unchanged {
        true => std::borrow::Cow::Borrowed(text),
        false => std::borrow::Cow::Owned(text.to_lowercase()),
    }
}
