//! The compile's pipeline: the node table (built or patched), IP sets and routes, then the
//! rules lowered on one core beside the SSH rules and capabilities on the other, then the
//! peer index.

use super::*;

pub(super) fn build(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
) -> Result<Compiled, CompileError> {
    build_marked(policy, inventory, options, &|_| false, None, None)
}

/// [`compile_with_options`] with the nodes `offline` says are offline marked so (the
/// engine's HA failover: an offline router is not primary while another server is online).
pub(crate) fn compile_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    offline: &dyn Fn(&str) -> bool,
    (prior, table): (Option<&Prior<'_>>, Option<NodeTable>),
) -> Compiled {
    build_marked(policy, inventory, options, offline, prior, table)
        .unwrap_or_else(|error| refused_marked(policy, inventory, options, error, offline))
}

/// Mark the nodes `offline` names. `only`: the nodes named by the change and those with
/// routes, for a table patched from an earlier compile's (100,000 lookups by name per event
/// on `large`, for flags that only order a route's servers), else every node.
pub(super) fn mark_offline(
    table: &mut NodeTable,
    offline: &dyn Fn(&str) -> bool,
    only: Option<&[NodeId]>,
) {
    let mark = |node: &mut Arc<NodeInfo>| {
        let flag = offline(&node.name);
        // Written only where it changes: a patched table shares its other nodes.
        if node.offline != flag {
            Arc::make_mut(node).offline = flag;
        }
    };
    match only {
        Some(ids) => {
            for id in ids {
                if let Some(node) = table.nodes.get_mut(id.index()) {
                    mark(node);
                }
            }
        }
        None => table.nodes.iter_mut().for_each(mark),
    }
    // A flag only orders a route's servers. A routeless node's may be stale (the engine
    // keeps its snapshot when only such a node's flag changed): a node that comes to
    // advertise a route is named by that change, and marked from then on.
    debug_assert!(
        table
            .nodes
            .iter()
            .filter(|n| n.has_routes())
            .all(|n| n.offline == offline(&n.name)),
        "a router's online flag was carried from an earlier compile that had it otherwise"
    );
}

pub(super) fn build_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    offline: &dyn Fn(&str) -> bool,
    prior: Option<&Prior<'_>>,
    table: Option<NodeTable>,
) -> Result<Compiled, CompileError> {
    // Each phase a span under this one ([`crate::phases`]).
    let span = tracing::debug_span!(crate::phases::COMPILE, nodes = inventory.nodes().len());
    let _entered = span.enter();
    let table_span = tracing::debug_span!(crate::phases::TABLE).entered();
    // A change to nodes only, or to the policy alone (no node named: the same nodes, whose
    // policy-derived parts, IP sets, approved routes and groups' users, are set again
    // below): the earlier table patched; anything else, built (a policy event on `large`
    // built its table in 68 ms, patches it in about 9).
    // Beside it, on a policy event, whether the SSH lowering can be kept (18 ms on `large`).
    let policy_event = prior.is_some_and(|p| p.policy_changed);
    // A node event's table may come patched already (`table`: the engine patches it beside
    // the inventory, [`NodeTable::patched_from`]).
    let (patched, ssh_same) = crate::par::join_if(
        policy_event && crate::par::event_worth_threads(inventory.nodes().len()),
        || {
            table.or_else(|| {
                prior.and_then(|p| {
                    let (before, after) = p.records.unwrap_or((p.before, p.after));
                    NodeTable::patched(inventory, &p.compiled.table, before, after)
                })
            })
        },
        || {
            policy_event
                && prior.is_some_and(|p| crate::ssh::reuse::same_inputs(p.old_policy, policy))
        },
    );
    #[cfg(debug_assertions)]
    if let (Some(t), Some(p)) = (&patched, prior) {
        let built = NodeTable::reusing(inventory, Some(&p.compiled.table));
        debug_assert!(
            t.agrees_with(&built),
            "a patched node table differs from one built"
        );
    }
    // A patched table carries the other nodes' online flags: only the nodes named are marked.
    let was_patched = patched.is_some();
    let mut table = match patched {
        Some(table) => table,
        None => NodeTable::reusing(inventory, prior.map(|p| &p.compiled.table)),
    };
    if let Some(p) = prior.filter(|p| !p.policy_changed) {
        table.share_group_users(&p.compiled.table);
    }
    let named = prior
        .filter(|_| was_patched)
        .zip(table.with_routes.as_ref())
        .map(|(p, routed)| {
            let mut ids = table.ids_of(p.records.map_or(p.after, |(_, is)| is));
            ids.extend(routed);
            ids
        });
    mark_offline(&mut table, offline, named.as_deref());
    // IP sets first: every later alias resolution reads them from the table.
    table.ipsets = crate::ipsets::resolve(policy, &table, &options.limits)?;
    let auto = options
        .auto_approve
        .then(|| routes::auto_approvals(policy, &table));
    routes::apply(&mut table, auto.as_deref());
    // SSH rules and node capabilities read only the table: with a second core they are
    // lowered beside the rules and peers (a fifth of a compile on `large`).
    // The changed nodes' ids in the earlier compile and in this one, for both reuses.
    let changed = prior.map(|p| (p.compiled.table.ids_of(p.before), table.ids_of(p.after)));
    // Where each node was, when only the nodes named changed. On a route event only the
    // nodes whose records changed (their served routes, their online flag) can enter or
    // leave a rule's destinations (a route's servers, exit nodes: each node's own routes
    // decide), so every other node keeps its id and its lists of items and SSH rules: the
    // indexes are patched for those nodes alone (building the lowering's afresh was 0.15 s
    // of a route event on `large`).
    let kept = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| !p.policy_changed)
        .and_then(|(p, (before, after))| match (p.routes_changed, p.records) {
            (false, _) => table.kept_from(&p.compiled.table, before, after),
            (true, Some((was, is))) => table.kept_from(
                &p.compiled.table,
                &p.compiled.table.ids_of(was),
                &table.ids_of(is),
            ),
            (true, None) => None,
        });
    let lower_prior = prior
        .zip(changed.as_ref())
        .map(|(p, (before, after))| lower::Prior {
            lowered: &p.compiled.lowered,
            table: &p.compiled.table,
            before,
            after,
            same_ids: p.policy_changed,
            kept: kept.as_deref(),
        });
    let ssh_prior = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| !p.policy_changed)
        .map(|(p, (before, after))| crate::ssh::SshPrior {
            lowered: &p.compiled.ssh,
            before,
            after,
            touched_users: table.same_users(&p.compiled.table).then(|| {
                let mut users: Vec<_> = p.compiled.table.owners_of(before).collect();
                users.extend(table.owners_of(after));
                users.sort_unstable();
                users.dedup();
                users
            }),
            kept: kept.as_deref(),
        });
    drop(table_span);
    // A policy event that left the SSH rules and all they read: the earlier lowering, whole.
    let ssh_kept = prior.filter(|_| ssh_same).map(|p| &p.compiled.ssh);
    // The rules lowered on this core; on the other, the SSH rules and capabilities (which
    // read only the table), then the peer index's sets of the lists the lowering made.
    // Side by side on a tailnet worth threads: from fewer nodes for a whole compile than
    // for an event's, which patches what changed.
    let beside = match prior {
        Some(_) => crate::par::event_worth_threads(table.len()),
        None => crate::par::worth_threads(table.len()),
    };
    let lower_span = tracing::debug_span!(crate::phases::LOWER).entered();
    let (lowered, side, prepared) = crate::peers::prepared_beside(
        beside,
        &table,
        |lists| {
            lower::lower(
                policy,
                &table,
                (
                    &options.limits,
                    options.exit_node_filters == crate::ExitNodeFilters::AllDestinations,
                ),
                lower_prior.as_ref(),
                lists,
            )
        },
        || {
            // On the other core when there is one: its span says so by its parent.
            tracing::debug_span!(parent: &span, crate::phases::SIDE).in_scope(|| {
                side_phases(
                    policy,
                    inventory,
                    options,
                    &table,
                    (ssh_kept, ssh_prior.as_ref()),
                )
            })
        },
    );
    drop(lower_span);
    let lowered = lowered?;
    let peers_span = tracing::debug_span!(crate::phases::PEERS).entered();
    let routes = RouteTable::new(&table);
    // A node event whose lowering made the same items, none of whose changed nodes has an
    // address in a route: each route's items are those it had ([`PeerIndex::route_items`]).
    let route_items = prior
        .zip(changed.as_ref())
        .filter(|(p, _)| kept.is_some() && !p.routes_changed)
        .filter(|(p, _)| {
            lower::same_items(&p.compiled.lowered, &lowered)
                && lower::same_vacancy(&p.compiled.lowered, &lowered)
        })
        .filter(|(p, (before, after))| {
            outside_routes(
                [(&p.compiled.table, &before[..]), (&table, &after[..])],
                &routes,
            )
        })
        .map(|(p, _)| p.compiled.peers.route_items());
    let peers = PeerIndex::with_prepared(&table, &routes, &lowered, prepared, route_items);
    // Debug builds compare the sets taken from beside the lowering with sets prepared here.
    #[cfg(debug_assertions)]
    debug_assert!(
        peers.same_sets(&PeerIndex::new(&table, &routes, &lowered)),
        "a peer set prepared beside the lowering differs from one prepared after it"
    );
    drop(peers_span);
    Ok(assembled(
        inventory, options, table, routes, lowered, peers, side,
    ))
}

/// True when none of the nodes named (ids, each in its table) has an address in a route of
/// `routes`. False when a node is not in its table.
pub(super) fn outside_routes(named: [(&NodeTable, &[NodeId]); 2], routes: &RouteTable) -> bool {
    addresses_of(named).is_some_and(|set| routes_over(routes, &set).next().is_none())
}

/// The addresses of the nodes named (ids, each in its table) in one set; `None` when a node
/// is not in its table.
pub(crate) fn addresses_of(named: [(&NodeTable, &[NodeId]); 2]) -> Option<crate::addrset::AddrSet> {
    let mut addrs = Vec::new();
    for (table, ids) in named {
        for &id in ids {
            addrs.extend(table.get(id)?.addrs());
        }
    }
    Some(crate::addrset::AddrSet::from_ips(addrs))
}

/// The routes of `routes` that hold an address of `set`: each route tested against the set
/// once (O(routes x log addresses), not routes per address).
pub(super) fn routes_over<'r>(
    routes: &'r RouteTable,
    set: &'r crate::addrset::AddrSet,
) -> impl Iterator<Item = &'r crate::routes::RouteEntry> + 'r {
    routes.routes.iter().filter(|r| set.overlaps_net(&r.net))
}

/// An earlier compile of the same policy whose tailnet differs only in the nodes named (by
/// name, before and after the change), none of which serves a route, or only in routes
/// (advertised, approved, online flags; no node named): what did not change is taken from it
/// ([`lower::Prior`], [`crate::ssh::SshPrior`]).
pub(crate) struct Prior<'a> {
    /// The earlier compile.
    pub(crate) compiled: &'a Compiled,
    /// The changed nodes' names in it.
    pub(crate) before: &'a [&'a str],
    /// Their names now.
    pub(crate) after: &'a [&'a str],
    /// The earlier compile is of another policy on the same inventory (a policy change): only
    /// source lists whose targets are equal are taken, and the SSH lowering only when every
    /// input of it is the same in `old_policy` ([`crate::ssh::reuse::same_inputs`]).
    pub(crate) policy_changed: bool,
    /// The earlier compile's policy.
    pub(crate) old_policy: &'a Policy,
    /// Routes (advertised, approved, online flags) changed, not the nodes named.
    pub(crate) routes_changed: bool,
    /// The nodes whose records changed (names before, names now), when they are not
    /// `before` and `after` (a route change names none there): what the node table is
    /// patched for ([`NodeTable::patched`]).
    pub(crate) records: Option<(&'a [&'a str], &'a [&'a str])>,
}

/// The phases that read only the node table: SSH rules and node capabilities.
pub(super) struct SidePhases {
    pub(super) ssh: SshLowered,
    pub(super) caps: NodeCaps,
}

pub(super) fn side_phases(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    table: &NodeTable,
    (kept, prior): (Option<&SshLowered>, Option<&crate::ssh::SshPrior<'_>>),
) -> SidePhases {
    let new = || {
        SshLowered::new(
            policy,
            inventory.users(),
            table,
            &options.control_url,
            &mut Gates::new(policy, table),
            prior,
        )
    };
    let ssh = match kept {
        Some(old) => {
            let ssh = old.reused();
            // Debug builds compare a reused lowering with one built afresh.
            #[cfg(debug_assertions)]
            debug_assert!(
                ssh.agrees_with(&new()),
                "a reused SSH lowering differs from one built"
            );
            ssh
        }
        None => new(),
    };
    SidePhases {
        ssh,
        caps: NodeCaps::new(policy, inventory, table, options.tailnet_state_caps),
    }
}

/// What a refused policy compiles to: no rule, no peer, no SSH rule, no node attribute from the
/// policy (only the inventory's own approved routes and tailnet-state capabilities).
pub(super) fn refused(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    error: CompileError,
) -> Compiled {
    refused_marked(policy, inventory, options, error, &|_| false)
}

pub(super) fn refused_marked(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    error: CompileError,
    offline: &dyn Fn(&str) -> bool,
) -> Compiled {
    let nothing = Policy {
        acls: Some(aclc_policy::model::Spanned::new(Vec::new(), policy.span)),
        span: policy.span,
        ..Policy::default()
    };
    let mut table = NodeTable::new(inventory);
    mark_offline(&mut table, offline, None);
    routes::apply(&mut table, None);
    let lowered = lower::Lowered::nothing(&table);
    let mut compiled = finish(&nothing, inventory, options, table, lowered);
    compiled.refusal = Some(error);
    compiled
}

/// The phases that cannot fail, once the node table and the rules are settled.
pub(super) fn finish(
    policy: &Policy,
    inventory: &Inventory,
    options: &CompileOptions,
    table: NodeTable,
    lowered: Lowered,
) -> Compiled {
    let routes = RouteTable::new(&table);
    let peers = PeerIndex::new(&table, &routes, &lowered);
    let side = side_phases(policy, inventory, options, &table, (None, None));
    assembled(inventory, options, table, routes, lowered, peers, side)
}

pub(super) fn assembled(
    inventory: &Inventory,
    options: &CompileOptions,
    table: NodeTable,
    routes: RouteTable,
    lowered: Lowered,
    peers: PeerIndex,
    side: SidePhases,
) -> Compiled {
    Compiled {
        table,
        routes,
        lowered,
        peers,
        ssh: side.ssh,
        caps: side.caps,
        users: inventory.shared_users().clone(),
        control_url: options.control_url.clone(),
        refusal: None,
        exit_prints: std::sync::Mutex::default(),
        spread: crate::lower::SpreadCache::default(),
    }
}
