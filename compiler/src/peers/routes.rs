//! Which items show each subnet route: each route's hits found from the rule targets' side,
//! once per distinct target, and each node's view of the routes.

use super::*;
use crate::Text;

/// A `via` rule to a route: its item, source set and tags.
pub(super) type ItemVia = (u32, u32, Arc<[Text]>);

/// Who may be shown one subnet route.
#[derive(Debug, PartialEq)]
pub(super) struct RouteView {
    /// Nodes allowed to see it, with `servers`: shared by the routes that no item names
    /// but as every route (most of `large`'s thousand routes), not a map per route.
    pub(super) visible: Arc<NodeSet>,
    /// The route's servers (each sees it).
    pub(super) servers: Vec<NodeId>,
    /// Nodes with an ordinary (non-`via`) rule to it; shared as `visible` is.
    pub(super) direct: Arc<NodeSet>,
    /// `via` rules to it: their source set and tags.
    pub(super) via: Vec<(u32, Arc<[Text]>)>,
}

/// True when sources `targets` read the nodes of `*` (a `*` before any
/// `autogroup:danger-all`, which stands for every node whatever follows).
pub(super) fn reads_star(targets: &[Target]) -> bool {
    targets
        .iter()
        .take_while(|t| !matches!(t, Target::DangerAll))
        .any(|t| matches!(t, Target::Wildcard))
}

/// The destination targets of a non-self item.
pub(super) fn dst_targets(item: &Item) -> &[Target] {
    match &item.body {
        Body::Net { dst, .. } => std::slice::from_ref(dst),
        Body::App { dsts, .. } => dsts,
        _ => &[],
    }
}

/// The items to and from each route, and those to and from every route (`*`), among some
/// items (ascending).
pub(super) struct RouteHits {
    pub(super) to: Vec<Vec<u32>>,
    pub(super) from: Vec<Vec<u32>>,
    pub(super) to_all: Vec<u32>,
    pub(super) from_all: Vec<u32>,
}

/// [`RouteHits`] of `items` (each with its index), found from their targets by a finder of
/// the routes `nets` (`inside[r]`: the nodes with an address in route `r`).
pub(super) fn route_hits(
    items: &[(u32, &Item)],
    nets: Vec<IpNet>,
    inside: &[Vec<NodeId>],
    internet: &AddrSet,
) -> RouteHits {
    let routes = nets.len();
    let mut finder = crate::routehits::RouteFinder::new(nets, inside, internet);
    let mut out = RouteHits {
        to: vec![Vec::new(); routes],
        from: vec![Vec::new(); routes],
        to_all: Vec::new(),
        from_all: Vec::new(),
    };
    let mut hits = Vec::new();
    // The routes a list of targets overlaps, once per list: a rule's items share its
    // sources, and one rule with 40,000 source and 40,000 destination addresses went over
    // its sources once per destination (19 s).
    let mut by_list: crate::hash::Map<(usize, usize), (bool, Vec<u32>)> =
        crate::hash::Map::default();
    for &(i, item) in items {
        for (targets, lists, all) in [
            (dst_targets(item), &mut out.to, &mut out.to_all),
            (&item.src_targets[..], &mut out.from, &mut out.from_all),
        ] {
            let key = (targets.as_ptr() as usize, targets.len());
            let (every, found) = by_list.entry(key).or_insert_with(|| {
                hits.clear();
                let every = finder.collect(targets, &mut hits);
                (every, hits.clone())
            });
            if *every {
                all.push(i);
                continue;
            }
            for &r in found.iter() {
                if let Some(list) = lists.get_mut(r as usize) {
                    list.push(i);
                }
            }
        }
    }
    out
}

/// The items to and from each route of `nets` (item indexes, ascending), and those to and
/// from every route (`*`): what [`route_views`] finds from the items' targets, kept with the
/// index so that a node event's compile can take it ([`PeerIndex::route_items`]).
#[derive(Debug, PartialEq)]
pub(crate) struct RouteItems {
    pub(super) nets: Vec<IpNet>,
    pub(super) to: Vec<Vec<u32>>,
    pub(super) from: Vec<Vec<u32>>,
    pub(super) to_all: Vec<u32>,
    pub(super) from_all: Vec<u32>,
}

impl RouteItems {
    /// The routes' items among those of `lowered` that make peers (`item_sets`), found on
    /// every core: each part with a finder of its own, the parts' lists joined in item order.
    pub(super) fn found(
        table: &NodeTable,
        lowered: &Lowered,
        item_sets: &[Option<(u32, u32)>],
        nets: Vec<IpNet>,
    ) -> RouteItems {
        let internet = AddrSet::from_wire(INTERNET_WIRE);
        let inside: Vec<Vec<NodeId>> = nets
            .iter()
            .map(|n| table.addressed_in(&AddrSet::from_net(*n)))
            .collect();
        let making: Vec<(u32, &Item)> = match nets.is_empty() {
            true => Vec::new(),
            false => lowered
                .items
                .iter()
                .zip(item_sets)
                .enumerate()
                .filter(|(_, (_, set))| set.is_some())
                .map(|(i, (item, _))| (crate::nodes::index(i), item))
                .collect(),
        };
        let parts = crate::par::map_parts(&making, split(512, table.len()), |part| {
            vec![route_hits(part, nets.clone(), &inside, &internet)]
        });
        let mut out = RouteItems {
            to: vec![Vec::new(); nets.len()],
            from: vec![Vec::new(); nets.len()],
            to_all: Vec::new(),
            from_all: Vec::new(),
            nets,
        };
        for part in parts {
            for (lists, found) in [(&mut out.to, part.to), (&mut out.from, part.from)] {
                for (list, more) in lists.iter_mut().zip(found) {
                    list.extend(more);
                }
            }
            out.to_all.extend(part.to_all);
            out.from_all.extend(part.from_all);
        }
        // Debug builds (which split all but the smallest inputs) compare with one part.
        #[cfg(debug_assertions)]
        {
            let whole = route_hits(&making, out.nets.clone(), &inside, &internet);
            debug_assert!(
                (&whole.to, &whole.from, &whole.to_all, &whole.from_all)
                    == (&out.to, &out.from, &out.to_all, &out.from_all),
                "the routes' items found in parts differ from those found at once"
            );
        }
        out
    }
}

/// Who may be shown each route of `routes`: the items to and from each route, found from the
/// items' targets (`RouteFinder`); the items to or from every route (`*`) added once for all.
pub(super) fn route_views(
    table: &NodeTable,
    routes: &RouteTable,
    lowered: &Lowered,
    item_sets: &[Option<(u32, u32)>],
    sets: &[NodeSet],
    earlier: Option<&Arc<RouteItems>>,
) -> (Vec<RouteView>, Arc<RouteItems>) {
    let len = table.len();
    let words = len.div_ceil(64);
    let nets: Vec<IpNet> = routes.routes.iter().map(|r| r.net).collect();
    let found = match earlier.filter(|e| e.nets == nets) {
        Some(earlier) => {
            debug_assert!(
                **earlier == RouteItems::found(table, lowered, item_sets, nets),
                "the routes' items carried from an earlier index differ from those found"
            );
            earlier.clone()
        }
        None => Arc::new(RouteItems::found(table, lowered, item_sets, nets)),
    };
    let RouteItems {
        to: to_items,
        from: from_items,
        to_all,
        from_all,
        ..
    } = &*found;
    let sets_of = |i: u32| item_sets.get(i as usize).copied().flatten();
    let via_of = |i: u32| {
        lowered
            .items
            .get(i as usize)
            .and_then(|item| item.via.clone())
    };
    // Each set is added to `visible` and `direct` once per route: a set's stamp is the
    // number of the route (plus one) it was last added for, so no per-route flags are
    // cleared (that was O(routes x sets)).
    let add = |x: u32, bits: &mut [u64], stamps: &mut [u32], now: u32| {
        if let Some(stamp) = stamps.get_mut(x as usize).filter(|s| **s != now) {
            *stamp = now;
            if let Some(set) = sets.get(x as usize) {
                set.or_into(bits);
            }
        }
    };
    // What the items to or from every route give each route.
    let mut all_visible = vec![0u64; words];
    let mut all_direct = vec![0u64; words];
    let mut in_visible = vec![0u32; sets.len()];
    let mut in_direct = vec![0u32; sets.len()];
    let mut all_via: Vec<ItemVia> = Vec::new();
    for &i in to_all {
        let Some((s, _)) = sets_of(i) else { continue };
        add(s, &mut all_visible, &mut in_visible, u32::MAX);
        match via_of(i) {
            Some(tags) => all_via.push((i, s, tags)),
            None => add(s, &mut all_direct, &mut in_direct, u32::MAX),
        }
    }
    for &i in from_all {
        if let Some((_, d)) = sets_of(i) {
            add(d, &mut all_visible, &mut in_visible, u32::MAX);
        }
    }
    let common_visible = Arc::new(NodeSet::from_bits(all_visible.clone(), len));
    let common_direct = Arc::new(NodeSet::from_bits(all_direct.clone(), len));
    // Each route's view on every core: a part marks its sets in stamp arrays of its own.
    let numbered: Vec<(usize, &_)> = routes.routes.iter().enumerate().collect();
    let views_of = |part: &[(usize, &crate::routes::RouteEntry)]| {
        let mut in_visible = vec![0u32; sets.len()];
        let mut in_direct = vec![0u32; sets.len()];
        let mut views = Vec::with_capacity(part.len());
        for &(r, route) in part {
            // The common maps, copied for a route only when one of its own items adds to
            // them.
            let (mut visible, mut direct): (Option<Vec<u64>>, Option<Vec<u64>>) = (None, None);
            // A set already in the routes' common part may be added again: no harm.
            let now = crate::nodes::index(r).saturating_add(1);
            // `via` rules in item order: this route's own, merged with those to every route.
            let mut own_via: Vec<ItemVia> = Vec::new();
            for &i in to_items.get(r).into_iter().flatten() {
                let Some((s, _)) = sets_of(i) else { continue };
                let bits = visible.get_or_insert_with(|| all_visible.clone());
                add(s, bits, &mut in_visible, now);
                match via_of(i) {
                    Some(tags) => own_via.push((i, s, tags)),
                    None => {
                        let bits = direct.get_or_insert_with(|| all_direct.clone());
                        add(s, bits, &mut in_direct, now);
                    }
                }
            }
            for &i in from_items.get(r).into_iter().flatten() {
                if let Some((_, d)) = sets_of(i) {
                    let bits = visible.get_or_insert_with(|| all_visible.clone());
                    add(d, bits, &mut in_visible, now);
                }
            }
            let mut via: Vec<ItemVia> = all_via.iter().cloned().chain(own_via).collect();
            via.sort_by_key(|&(i, _, _)| i);
            let shared = |bits: Option<Vec<u64>>, common: &Arc<NodeSet>| match bits {
                Some(bits) => Arc::new(NodeSet::from_bits(bits, len)),
                None => common.clone(),
            };
            views.push(RouteView {
                visible: shared(visible, &common_visible),
                servers: route.servers.clone(),
                direct: shared(direct, &common_direct),
                via: via.into_iter().map(|(_, s, tags)| (s, tags)).collect(),
            });
        }
        views
    };
    let views = crate::par::map_parts(&numbered, split(64, len), views_of);
    // Debug builds compare with the views made in one part.
    debug_assert!(
        views == views_of(&numbered),
        "route views made in parts differ from those made at once"
    );
    (views, found)
}

/// How much work the peer index needs before it splits it over the cores: `worth` (where a
/// thread costs less than it saves) on a tailnet of `nodes` worth threads at all
/// ([`crate::par::WORTH_THREADS`]), or, in debug builds, almost none, so that the tests
/// compare the parts' work with the work done at once.
pub(super) fn split(worth: usize, nodes: usize) -> usize {
    match cfg!(debug_assertions) {
        true => 2,
        false => crate::par::min_items(crate::par::worth_threads(nodes), worth),
    }
}
