//! An SSH rule's sides: the source devices as principals (tagged and per-user lists), the
//! destination devices, and the user maps logins are read through.

use super::*;

/// The user map every piece of a rule carries: `root` always present (`""` refuses it),
/// `*` -> `=` for `autogroup:nonroot`, other names mapped to themselves. `localpart:` entries
/// get rules of their own.
pub(crate) fn user_map<'a>(users: impl Iterator<Item = &'a SshUser>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([("root".to_string(), String::new())]);
    for user in users {
        match user {
            SshUser::Root => {
                map.insert("root".to_string(), "root".to_string());
            }
            SshUser::Nonroot => {
                map.insert("*".to_string(), "=".to_string());
            }
            SshUser::Literal(name) => {
                map.insert(name.clone(), name.clone());
            }
            SshUser::Localpart { .. } => {}
        }
    }
    map
}

/// `{localpart: localpart}` for a login whose domain is one of `domains` (lowercase).
pub(super) fn localpart_map(
    login: &str,
    domains: &[String],
) -> Option<Arc<BTreeMap<String, String>>> {
    let (local, domain) = login.rsplit_once('@')?;
    if local.is_empty() || !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return None;
    }
    Some(Arc::new(BTreeMap::from([(
        local.to_string(),
        local.to_string(),
    )])))
}

/// A rule's tagged sources' principals (`localpart` rules only) and its sources' principals
/// per owner (in no order). With `earlier` (the earlier lowering of the rule, and the users
/// whose devices changed), any other user's list is taken from it with its hashes, not
/// rebuilt; `None` when a taken list does not hold as many principals as the user's
/// sources now have (so nothing taken can be stale in length).
pub(super) fn per_user_sources(
    table: &NodeTable,
    counts: &[(NodeId, usize)],
    localpart: bool,
    earlier: Option<(&LoweredRule, &[UserId])>,
    localpart_of: impl Fn(UserId) -> Option<Arc<BTreeMap<String, String>>>,
) -> Option<(Vec<SshPrincipal>, Vec<UserSources>)> {
    let mut tagged = Vec::new();
    let mut built: crate::hash::Map<UserId, Vec<SshPrincipal>> = crate::hash::Map::default();
    // Users whose earlier list is taken, with the principals their sources have now.
    let mut taken: crate::hash::Map<UserId, (&UserSources, usize)> = crate::hash::Map::default();
    let earlier_list = |user: UserId| {
        let (rule, touched) = earlier?;
        if touched.binary_search(&user).is_ok() {
            return None;
        }
        rule.user_sources(user)
    };
    for &(id, count) in counts {
        let Some(node) = table.get(id) else { continue };
        if node.is_tagged() {
            if localpart {
                for _ in 0..count {
                    tagged.extend(principals_of(node));
                }
            }
        } else if let Some(owner) = node.owner {
            if let Some((_, n)) = taken.get_mut(&owner) {
                *n += node.texts.len();
            } else if let Some(list) = built.get_mut(&owner) {
                list.extend(principals_of(node));
            } else if let Some(list) = earlier_list(owner) {
                taken.insert(owner, (list, node.texts.len()));
            } else {
                built.insert(owner, principals_of(node));
            }
        }
    }
    let mut by_user = Vec::with_capacity(built.len() + taken.len());
    for (_, (list, n)) in taken {
        if list.principals.len() != n {
            return None;
        }
        by_user.push(list.clone());
    }
    by_user.extend(built.into_iter().map(|(user, principals)| UserSources {
        user,
        principals: Arc::from(principals),
        localpart: localpart_of(user),
        principals_hash: Memo::default(),
        localpart_rest: Memo::default(),
    }));
    Some((tagged, by_user))
}

/// Whether an SSH destination admits each source only to its own user's devices: as
/// `autogroup:self`, and so `autogroup:member` (every user-owned device) too, since Tailscale
/// never lets a user SSH into another user's device (kb/1337; the policy crate warns,
/// `ssh_member_destination`). Read so, the rule never reaches further than Tailscale allows,
/// whether Tailscale narrows such a rule or refuses it.
pub(crate) fn own_devices_only(alias: &Alias) -> bool {
    matches!(
        alias,
        Alias::Autogroup(Autogroup::SelfDevices | Autogroup::Member | Autogroup::Members)
    )
}

/// A rule's destinations and source devices on one node table.
pub(super) struct Shape {
    pub(super) dst: Destinations,
    pub(super) self_dst: bool,
    /// Source devices, ascending.
    pub(super) sources: Arc<[NodeId]>,
    /// The sources with how often the control plane lists each, when found with them.
    pub(super) counts: Option<Vec<(NodeId, usize)>>,
}

impl Shape {
    /// Every selector of `rule` resolved; the sources those `gate` admits. Selectors
    /// written as an earlier rule's are that rule's lists (`lists`).
    pub(super) fn resolved(
        resolver: &mut Resolver<'_>,
        table: &NodeTable,
        rule: &aclc_policy::model::SshRule,
        gate: Option<crate::posture::Gate>,
        gates: &mut Gates<'_>,
        lists: &mut Lists,
    ) -> Shape {
        let aliases = |selectors: &[aclc_policy::model::Selector]| -> Vec<Alias> {
            selectors.iter().map(|s| s.alias.clone()).collect()
        };
        let (dst, self_dst) = lists
            .dst
            .entry(aliases(&rule.dst))
            .or_insert_with(|| {
                let mut self_dst = false;
                let mut dst = Destinations::None;
                for selector in &rule.dst {
                    if own_devices_only(&selector.alias) {
                        self_dst = true;
                        continue;
                    }
                    let target = resolver.resolve(selector);
                    dst = union(dst, destination_nodes(table, &target));
                }
                (dst, self_dst)
            })
            .clone();
        let posture: Vec<String> = rule.src_posture.iter().map(|p| p.value.clone()).collect();
        let (sources, counts) = lists
            .sources
            .entry((aliases(&rule.src), posture))
            .or_insert_with(|| {
                let mut counts = source_counts(resolver, table, &rule.src);
                // A posture-gated rule's principals are the source devices that pass the
                // gate (kb/1288); SSH sources are devices, so nothing address-only is lost.
                if let Some(gate) = gate {
                    counts.retain(|&(id, _)| gates.admits(&gate, id));
                }
                (counts.iter().map(|&(id, _)| id).collect(), counts)
            })
            .clone();
        Shape {
            dst,
            self_dst,
            sources,
            counts: Some(counts),
        }
    }
}

/// How often a source device is listed ([`source_counts`]): once per tag for a tagged
/// device when `autogroup:tagged` is a source (`per_tag`), else once.
pub(super) fn tag_count(table: &NodeTable, per_tag: bool, id: NodeId) -> usize {
    match per_tag && table.tagged.binary_search(&id).is_ok() {
        true => table.get(id).map_or(1, |n| n.tags.len().max(1)),
        false => 1,
    }
}

/// The principals of the tagged sources among `counts`, each as often as it is counted.
pub(super) fn tagged_principals(
    table: &NodeTable,
    counts: &[(NodeId, usize)],
) -> Vec<SshPrincipal> {
    let mut out = Vec::new();
    for &(id, count) in counts {
        if let Some(node) = table.get(id).filter(|n| n.is_tagged()) {
            for _ in 0..count {
                out.extend(principals_of(node));
            }
        }
    }
    out
}

/// One principal per address of a device.
pub(super) fn principals_of(node: &NodeInfo) -> Vec<SshPrincipal> {
    node.texts
        .iter()
        .map(|t| SshPrincipal::from_node_ip(t.clone()))
        .collect()
}

/// The source devices of a rule, sorted, each with how often the control plane lists it:
/// `autogroup:tagged` lists a device once per tag it carries; otherwise once.
pub(super) fn source_counts(
    resolver: &mut Resolver<'_>,
    table: &NodeTable,
    selectors: &[aclc_policy::model::Selector],
) -> Vec<(NodeId, usize)> {
    let mut counts: Vec<(NodeId, usize)> = Vec::new();
    for selector in selectors {
        let per_tag = selector.alias == Alias::Autogroup(Autogroup::Tagged);
        let target = resolver.resolve(selector);
        counts.extend(source_nodes(table, &target).into_iter().map(|id| {
            let count = match per_tag {
                true => table.get(id).map_or(1, |n| n.tags.len().max(1)),
                false => 1,
            };
            (id, count)
        }));
    }
    highest_counts(counts)
}

/// Each node once, ascending, with the highest of its counts. A sort (none when one selector
/// gave the nodes in order), not a tree insert per node: a sixth of a compile's SSH lowering
/// on `large` went to the tree.
pub(super) fn highest_counts(mut counts: Vec<(NodeId, usize)>) -> Vec<(NodeId, usize)> {
    if !counts.is_sorted_by_key(|&(id, _)| id) {
        counts.sort_unstable();
    }
    // Sorted by node then count: the last of a node's run is its highest count.
    let mut out: Vec<(NodeId, usize)> = Vec::with_capacity(counts.len());
    for (id, count) in counts {
        match out.last_mut() {
            Some(last) if last.0 == id => last.1 = last.1.max(count),
            _ => out.push((id, count)),
        }
    }
    out
}

/// The devices a source target stands for (by their own addresses).
pub(super) fn source_nodes(table: &NodeTable, target: &Target) -> Vec<NodeId> {
    match target {
        Target::Wildcard | Target::DangerAll => (0..table.len()).map(NodeId::new).collect(),
        Target::Nodes(ids) => ids.to_vec(),
        Target::Literal(lit) => table.addressed_in(&lit.set),
        Target::Internet | Target::SelfDevices => Vec::new(),
    }
}

pub(super) fn destination_nodes(table: &NodeTable, target: &Target) -> Destinations {
    match target {
        Target::Wildcard | Target::DangerAll => Destinations::All,
        other => Destinations::Some(Arc::from(source_nodes(table, other))),
    }
}

pub(super) fn union(a: Destinations, b: Destinations) -> Destinations {
    match (a, b) {
        (Destinations::All, _) | (_, Destinations::All) => Destinations::All,
        (Destinations::None, other) | (other, Destinations::None) => other,
        (Destinations::Some(x), Destinations::Some(y)) => {
            let mut x = x.to_vec();
            x.extend_from_slice(&y);
            x.sort_unstable();
            x.dedup();
            Destinations::Some(Arc::from(x))
        }
    }
}
