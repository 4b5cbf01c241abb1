//! Node events with routers among them (a router's join, leave or change: retag, rename,
//! new owner or addresses; one event or a batch), applied as narrow steps, because the
//! engine's narrow paths take nodes serving no route or one node's routes, and such an
//! event as a whole took the every-node path: about 5 s on `large`, every node's map
//! fingerprinted.
//!
//! The steps: each router's routes taken away (the route path, one step per router), every
//! changed node changed with the routers' routes left out (the node path, one step), and
//! each router's routes added (the route path). A join is then the node's step and its
//! routes', a leave its routes' and the node's, a change all three. Readers never see the
//! steps between: the snapshot is published after the last step, and the change set is the
//! difference between the snapshot before the first step and the one after the last.
//!
//! A filter a step proved changed without assembling it (a verdict from the rule items,
//! [`crate::lower::Verdict::Changed`]) is changed from the start when one node joins or
//! leaves: the steps of a join only add (the node's addresses to the source lists that name
//! it, then its routes to those that reach them), those of a leave only take away, so no
//! list a step changed is as it was after the last, and no filter either. Other steps may
//! take away and add back (a retagged router's routes leave what `*` means and return; in a
//! batch, one router's route may leave as another's of the same prefix joins), so those
//! filters are decided again between the first compile and the last ([`resolve_marks`]).
//! The engine's property tests compare every such change set with a full recompile's.
//!
//! A batch that also replaces the policy or changes Tailscale Services (each of which has a
//! narrow path alone) runs the same way, those changes first: the policy replaced (the
//! policy path), each Service changed (the route path over its hosts), then the node and user
//! steps above under the new policy and Services. Such a batch took the every-node path. A
//! step's change need not be one to the changed nodes alone, so every filter a step marked is
//! assembled at the end; and a step the engine refuses (a state between the steps may be
//! invalid where the batch's end is not: a Service taking the address a node leaves) sends
//! the batch to the every-node path, which decides on the end state alone.

use super::*;
use crate::Text;

/// One node's change in a step: its id, its record before the step and after it (`None`:
/// absent).
type NodeStep = (u64, Option<NodeRecord>, Option<NodeRecord>);

/// One user's change in a step, likewise.
type UserStep = (u64, Option<UserRecord>, Option<UserRecord>);

/// The most steps an event takes: each costs a compile (on `large`, a router's two route
/// steps about 0.12 s, where the every-node path takes 5-7 s: 16 routers retagged in one
/// batch took 1.9-2.1 s in steps, 31 routers 3.6 s, and each router past it more), so a
/// batch that needs more takes the every-node path.
const MAX_STEPS: usize = 64;

/// What [`Inputs::steps`] built, and the nodes (one bit each) two steps or more touched
/// (`None`: not known).
type Stepped = (Built, Option<Vec<u64>>);

/// One step: the nodes and users it changes, the users' list after it when it changes
/// users ([`Inputs::user_list`]: the list the snapshots share), and the Service it changes
/// (by name, with its record before) or the policy before it, when it replaces the
/// policy. The steps see the policy after the event throughout; the Services are as before
/// the event until each one's step takes it to its record after the event (`service_to`),
/// so each Service's step changes that Service alone and compares with the snapshot
/// before it. The policy's step (the first) takes the inventory, the Services' records
/// included, from the snapshot before it.
#[derive(Default)]
struct Step {
    nodes: Vec<NodeStep>,
    users: Vec<UserStep>,
    list: Option<Arc<[User]>>,
    service: Option<(String, Option<ServiceRecord>)>,
    /// The Service's record after the step (the event's), with `service`.
    service_to: Option<ServiceRecord>,
    policy: Option<Arc<Policy>>,
}

impl Inputs {
    /// The event of `undo` in steps when it changes nodes and users, some of the nodes
    /// routers (changed, or devices of a changed user), or replaces the policy or changes
    /// Services beside other changes (one event or a batch), and the first step takes a
    /// narrow path; `None` otherwise. Either way the records are the event's afterwards; on
    /// success the snapshot, the filters known changed and the nodes touched are relative to
    /// `current`, as [`Inputs::build`]'s are.
    pub(super) fn build_in_steps(
        &mut self,
        version: u64,
        current: &Snapshot,
        undo: &[Undo],
    ) -> Option<Result<Built, EngineError>> {
        // Each changed node's, user's and Service's record and the policy before the event
        // (its first undo).
        let mut first: BTreeMap<u64, Option<NodeRecord>> = BTreeMap::new();
        let mut first_users: BTreeMap<u64, Option<UserRecord>> = BTreeMap::new();
        let mut first_services: BTreeMap<String, Option<ServiceRecord>> = BTreeMap::new();
        let mut first_policy: Option<Arc<Policy>> = None;
        for u in undo {
            match u {
                Undo::Node(id, before) => {
                    first.entry(*id).or_insert_with(|| before.clone());
                }
                Undo::User(id, before) => {
                    first_users.entry(*id).or_insert_with(|| before.clone());
                }
                Undo::Service(name, before) => {
                    first_services
                        .entry(name.clone())
                        .or_insert_with(|| before.clone());
                }
                Undo::Policy(before) => {
                    first_policy.get_or_insert_with(|| before.clone());
                }
            }
        }
        let services: Vec<(String, Option<ServiceRecord>)> = first_services
            .into_iter()
            .filter(|(name, before)| before.as_ref() != self.services.get(name))
            .collect();
        let policy = first_policy.filter(|before| **before != *self.policy);
        // Steps whose change is not one to the changed nodes alone.
        let others = policy.is_some() || !services.is_empty();
        let same_policy = policy.is_none();
        let users: Vec<UserStep> = first_users
            .into_iter()
            .map(|(id, before)| (id, before, self.users.get(&id).cloned()))
            .filter(|(_, before, after)| before != after)
            .collect();
        // A changed user's devices that serve routes take the steps as well, changed or not
        // (the user's change moves them, and the node path takes no router).
        let user_ids: HashSet<u64> = users.iter().map(|(id, _, _)| *id).collect();
        let owned = |n: &NodeRecord| n.user.is_some_and(|u| user_ids.contains(&u));
        if !users.is_empty() {
            for n in self.nodes.values().filter(|n| serves(n) && owned(n)) {
                first.entry(n.id).or_insert_with(|| Some(n.clone()));
            }
        }
        let changes: Vec<NodeStep> = first
            .into_iter()
            .map(|(id, before)| (id, before, self.nodes.get(&id).cloned()))
            .filter(|(_, before, after)| before != after || routed(before))
            .collect();
        if !others && !changes.iter().any(|(_, b, a)| routed(b) || routed(a)) {
            return None;
        }
        let list = self.user_list.clone();
        // The policy first, then each Service, then the nodes and users.
        let mut steps: Vec<Step> = Vec::new();
        if policy.is_some() {
            steps.push(Step {
                policy,
                ..Step::default()
            });
        }
        // Each Service's step takes that Service alone from its record before the event to
        // the event's: the steps start from every changed Service's record before it. (Each
        // step saw every Service after the event, so the first took the others' changes
        // while fingerprinting only its own hosts' reach, and the later ones found nothing
        // changed: a batch of two Service events missed the peers of the second's hosts;
        // found by an adversarial sweep of the engine.)
        let services_after: Vec<(String, Option<ServiceRecord>)> = services
            .iter()
            .map(|(name, _)| (name.clone(), self.services.get(name).cloned()))
            .collect();
        for (service, (_, to)) in services.into_iter().zip(&services_after) {
            steps.push(Step {
                service: Some(service),
                service_to: to.clone(),
                ..Step::default()
            });
        }
        steps.extend(planned(&changes, users, list));
        if steps.len() > MAX_STEPS {
            return None;
        }
        // One node joining or leaving: every step adds, or every step takes away.
        let one_way = !others
            && matches!(changes.as_slice(), [(_, None, _) | (_, _, None)])
            && steps.iter().all(|s| s.users.is_empty());
        // The steps start from the records and users before the event, the users' list the
        // current snapshot's.
        let after_list = self.user_list.clone();
        for (id, before, _) in &changes {
            self.set_record(*id, before.clone());
        }
        for step in &steps {
            if let Some((name, before)) = &step.service {
                self.set_service(name, before.clone());
            }
        }
        let changed_users: Vec<UserStep> = steps.iter().flat_map(|s| s.users.clone()).collect();
        for (id, before, _) in &changed_users {
            self.set_user(*id, before.clone());
        }
        if !changed_users.is_empty() {
            self.user_list = current.inventory.shared_users().clone();
            debug_assert!(
                *self.user_list == *self.listed_users(),
                "the current snapshot's users are the users before the event"
            );
        }
        let stepped = self.steps(version, current, &steps);
        for (id, _, after) in &changes {
            self.set_record(*id, after.clone());
        }
        for (name, after) in services_after {
            self.set_service(&name, after);
        }
        for (id, _, after) in &changed_users {
            self.set_user(*id, after.clone());
        }
        self.user_list = after_list;
        self.users_changed = false;
        let ((mut last, filters, touched), twice) = match stepped? {
            Ok(built) => built,
            Err(error) => return Some(Err(error)),
        };
        // Marked by a step, and left uncomputed at the end (a filter computed at the end is
        // compared as it is).
        let mut filters: Vec<u64> = filters
            .iter()
            .zip(&last.stale)
            .map(|(a, stale)| a & stale)
            .collect();
        if !one_way {
            // A filter one step marked and no other step touched is changed: only the
            // others may have gone back (all of them when a step's reach is not known).
            let (marked, kept): (Vec<NodeId>, Vec<u64>) = match &twice {
                Some(twice) => (
                    crate::bits::iter_bits(&filters)
                        .filter(|&v| crate::bits::bit(twice, v))
                        .collect(),
                    filters.iter().zip(twice).map(|(a, t)| a & !t).collect(),
                ),
                None => (crate::bits::iter_bits(&filters).collect(), Vec::new()),
            };
            // The changed nodes, and every device of a changed user (its selectors moved).
            let mut ids: Vec<u64> = changes.iter().map(|(id, _, _)| *id).collect();
            if !changed_users.is_empty() {
                let changed: HashSet<u64> = changed_users.iter().map(|(id, _, _)| *id).collect();
                ids.extend(
                    self.nodes
                        .values()
                        .filter(|n| n.user.is_some_and(|u| changed.contains(&u)))
                        .map(|n| n.id),
                );
            }
            ids.sort_unstable();
            ids.dedup();
            filters = resolve_marks(current, &mut last, (&ids, same_policy), &marked)?;
            for (word, kept) in filters.iter_mut().zip(&kept) {
                *word |= kept;
            }
        }
        // Each step's SSH verdicts compare with the step before, not with `current`.
        last.ssh_same = None;
        Some(Ok((last, filters, touched)))
    }

    /// The nodes, users, Services and policy taken through `steps`, one build each (each
    /// step's first records are the engine's when it starts): the last snapshot, the filters
    /// any step marked changed without assembling them and the nodes any step touched, and
    /// the nodes two steps or more touched (`None`: not known); all in the last snapshot's
    /// node ids. `None` when the first step is not narrow or is refused; a later step that
    /// is not narrow or is refused builds the last records on the every-node path (which
    /// refuses them only if they are invalid). The records are left at some step's: the
    /// caller sets them.
    fn steps(
        &mut self,
        version: u64,
        current: &Snapshot,
        steps: &[Step],
    ) -> Option<Result<Stepped, EngineError>> {
        let narrow =
            |s: &Scope<'_>| matches!(s, Scope::Node(_) | Scope::Routes(_) | Scope::Policy(_));
        let mut done: Option<Built> = None;
        let mut twice: Option<Vec<u64>> = None;
        for (k, step) in steps.iter().enumerate() {
            let previous = done.as_ref().map_or(current, |(s, _, _)| s);
            let mut undo = Vec::with_capacity(step.nodes.len() + step.users.len() + 2);
            self.take_step(step);
            if let Some(from) = &step.policy {
                undo.push(Undo::Policy(from.clone()));
            }
            if let Some((name, from)) = &step.service {
                undo.push(Undo::Service(name.clone(), from.clone()));
            }
            for (id, from, _) in &step.users {
                undo.push(Undo::User(*id, from.clone()));
            }
            for (id, from, _) in &step.nodes {
                undo.push(Undo::Node(*id, from.clone()));
            }
            let scope = scope(self, previous, &undo);
            let built = match narrow(&scope) {
                true => self.build(version, scope, Some(previous)).ok(),
                false => None,
            };
            let Some((next, filters, touched)) = built else {
                if k == 0 {
                    return None;
                }
                // The records after the last step.
                for later in steps.iter().skip(k + 1) {
                    self.take_step(later);
                }
                return Some(
                    self.build(version, Scope::Everything, Some(previous))
                        .map(|b| (b, None)),
                );
            };
            let marks = match done.take() {
                None => {
                    twice = touched.as_ref().map(|t| vec![0u64; t.len()]);
                    (filters, touched)
                }
                Some((previous, earlier, touched_before)) => {
                    // The earlier steps' marks in this step's node ids.
                    let to_new = next.compiled.ids_from(&previous.compiled);
                    let n = next.fingerprints.len();
                    let moved = |bits: &[u64]| {
                        let mut out = vec![0u64; n.div_ceil(64)];
                        for v in crate::bits::iter_bits(bits) {
                            if let Some(w) = crate::nodes::translated(&to_new, v) {
                                crate::bits::set_bit(&mut out, w);
                            }
                        }
                        out
                    };
                    let either = |a: Vec<u64>, b: &[u64]| -> Vec<u64> {
                        a.iter().zip(b).map(|(x, y)| x | y).collect()
                    };
                    let (touched, again) = match (touched_before, touched) {
                        (Some(a), Some(b)) => {
                            let a = moved(&a);
                            let both: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x & y).collect();
                            (Some(either(a, &b)), Some(both))
                        }
                        _ => (None, None),
                    };
                    twice = match (twice.take(), again) {
                        (Some(t), Some(again)) => Some(either(moved(&t), &again)),
                        _ => None,
                    };
                    (either(moved(&earlier), &filters), touched)
                }
            };
            done = Some((next, marks.0, marks.1));
        }
        done.map(|built| Ok((built, twice)))
    }

    /// The records, users and Service after `step`.
    fn take_step(&mut self, step: &Step) {
        if let Some((name, _)) = &step.service {
            self.set_service(name, step.service_to.clone());
        }
        for (id, _, to) in &step.nodes {
            self.set_record(*id, to.clone());
        }
        for (id, _, to) in &step.users {
            self.set_user(*id, to.clone());
        }
        if let Some(list) = &step.list {
            self.user_list = list.clone();
            self.users_changed = false;
        }
    }
}

/// True when `n` advertises or has approved a route.
fn serves(n: &NodeRecord) -> bool {
    !n.advertised_routes.is_empty() || !n.approved_routes.is_empty()
}

/// True when `n` is a node that advertises or has approved a route.
fn routed(n: &Option<NodeRecord>) -> bool {
    n.as_ref().is_some_and(serves)
}

/// `n` without its routes.
fn stripped(n: &Option<NodeRecord>) -> Option<NodeRecord> {
    n.as_ref().map(|n| NodeRecord {
        advertised_routes: Vec::new(),
        approved_routes: Vec::new(),
        ..n.clone()
    })
}

/// The steps of `changes` and `users` (`list`: the users' list after them): each router's
/// routes taken away (one route step each), every changed node and user changed with the
/// routers' routes left out (one node step), each router's routes added.
fn planned(changes: &[NodeStep], users: Vec<UserStep>, list: Arc<[User]>) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (id, before, _) in changes.iter().filter(|(_, b, _)| routed(b)) {
        steps.push(Step {
            nodes: vec![(*id, before.clone(), stripped(before))],
            ..Step::default()
        });
    }
    let middle = Step {
        nodes: changes
            .iter()
            .map(|(id, before, after)| (*id, stripped(before), stripped(after)))
            .filter(|(_, from, to)| from != to)
            .collect(),
        list: (!users.is_empty()).then_some(list),
        users,
        ..Step::default()
    };
    if !middle.nodes.is_empty() || !middle.users.is_empty() {
        steps.push(middle);
    }
    for (id, _, after) in changes.iter().filter(|(_, _, a)| routed(a)) {
        steps.push(Step {
            nodes: vec![(*id, stripped(after), after.clone())],
            ..Step::default()
        });
    }
    steps
}

/// The filters of `marked` (node ids of `last`, each left uncomputed by a step that proved
/// it changed) made exact between `current` and `last`, and those of them changed while
/// left uncomputed (one bit each): steps that took a router's routes away and added them
/// back (its own, or another's of the same prefix) may have left such a filter as it was.
/// When the change from `current` to `last` is one to the nodes `ids` alone, or to the
/// routes of Services' hosts (`same_policy`: the policy was not replaced), and the two
/// compiles merge alike but for what `*` means, each other filter is decided from the rule
/// items ([`crate::lower::SourceMoves`], as the route path decides a router's): as before
/// (`current`'s print and stale flag), changed (left uncomputed), or assembled. The changed
/// nodes' filters, the route servers' (a Service's hosts and the routers over its
/// addresses among them) and every filter otherwise are assembled. After a policy change
/// every filter is assembled: the verdicts compare the items of two compiles of one policy.
fn resolve_marks(
    current: &Snapshot,
    last: &mut Snapshot,
    (ids, same_policy): (&[u64], bool),
    marked: &[NodeId],
) -> Option<Vec<u64>> {
    let (old, new) = (&current.compiled, &last.compiled);
    let mut changed = vec![0u64; last.fingerprints.len().div_ceil(64)];
    let names = |s: &Snapshot| -> Vec<Text> {
        ids.iter()
            .filter_map(|&id| s.names.name(id).cloned())
            .collect()
    };
    let (old_names, new_names) = (names(current), names(last));
    let old_refs: Vec<&str> = old_names.iter().map(|n| &**n).collect();
    let new_refs: Vec<&str> = new_names.iter().map(|n| &**n).collect();
    let moves =
        (same_policy && old.refusal().is_some() == new.refusal().is_some() && new.slots_like(old))
            .then(|| new.source_moves(old, (&old_refs, &new_refs), None))
            .flatten();
    let serves = |c: &Compiled, v: NodeId| c.table().get(v).is_some_and(|n| n.has_routes());
    let (mut decided, mut assembled): (Vec<ToDecide<'_>>, Vec<ToDecide<'_>>) =
        (Vec::new(), Vec::new());
    for &v in marked {
        let name = new.name_of(v)?;
        let was = (moves.is_some() && !new_names.contains(name))
            .then(|| old.id_of(name))
            .flatten()
            .filter(|&w| !serves(new, v) && !serves(old, w));
        let Some(w) = was else {
            assembled.push((v, name, None));
            continue;
        };
        // As it was: a verdict of the same keeps it.
        last.fingerprints.get_mut(v.index())?.filter = current.fingerprints.get(w.index())?.filter;
        if crate::bits::bit(&current.stale, w) {
            crate::bits::set_bit(&mut last.stale, v);
        } else {
            crate::bits::clear_bit(&mut last.stale, v);
        }
        decided.push((v, name, Some(w)));
    }
    let marks = (
        &mut last.fingerprints[..],
        &mut last.stale[..],
        &mut changed[..],
    );
    decide_filters((new, old), (moves.as_ref(), None), &decided, marks)?;
    let marks = (
        &mut last.fingerprints[..],
        &mut last.stale[..],
        &mut changed[..],
    );
    decide_filters((new, old), (None, None), &assembled, marks)?;
    // Debug builds on small tailnets (the property tests') compare each verdict with the
    // two filters assembled.
    #[cfg(debug_assertions)]
    if last.fingerprints.len() <= 64 {
        let mut cache = HashCache::default();
        for &(v, name, _) in &decided {
            let now = new.filter_fingerprint(name, &mut cache);
            let was = old.filter_fingerprint(name, &mut cache);
            if crate::bits::bit(&changed, v) {
                debug_assert_ne!(now, was, "a router's change: {name}'s filter changed");
            } else if crate::bits::bit(&last.stale, v) {
                debug_assert_eq!(now, was, "a router's change: {name}'s filter as it was");
            } else {
                debug_assert_eq!(
                    last.fingerprints.get(v.index()).map(|f| f.filter),
                    now,
                    "a router's change: {name}'s filter"
                );
            }
        }
    }
    Some(changed)
}
