//! SSH access to one node, old against new. A node evaluates its SSH rules in order and the
//! first rule that admits the source and maps the login decides, so access is a table
//! (source, login) -> (local user, action); a sweep over source positions evaluates it once
//! per stretch of sources that the same rules admit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use super::network::{merge_runs, AddrTable};
use crate::wire::{SshPrincipal, SshRule};
use crate::Text;

/// What a login gets: the local user and the action (`accept` or `check`), and the rule
/// (index in the policy's `ssh` list) that decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Outcome {
    pub(crate) local_user: String,
    pub(crate) action: &'static str,
    /// The session's terms ([`terms`]): empty for a plain session.
    pub(crate) terms: Text,
    pub(crate) rule: usize,
}

/// What a session is subject to beside being admitted, for people: recording (and whether
/// it is enforced), accepted environment variables, a session limit (forwarding is not
/// said: every admitting rule allows it). A policy
/// change that drops `recorder` or `enforceRecorder`, or widens `acceptEnv`, changes no
/// login's local user or action, and the diff said "access unchanged" (`--exit-code` 0).
fn terms(rule: &SshRule) -> Text {
    let action = &rule.action;
    let mut parts: Vec<String> = Vec::new();
    if !action.recorders.is_empty() {
        parts.push(match action.on_recording_failure.is_some() {
            true => format!("recorded to {}, enforced", action.recorders.join(" ")),
            false => format!("recorded to {}", action.recorders.join(" ")),
        });
    }
    if !rule.accept_env.is_empty() {
        // A set: the order and repeats written say nothing.
        let mut names: Vec<&str> = rule.accept_env.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        parts.push(format!("environment {}", names.join(" ")));
    }
    if action.session_duration != 0 {
        parts.push(format!(
            "sessions of at most {} s",
            action.session_duration / 1_000_000_000
        ));
    }
    Text::from(parts.join(", "))
}

/// One change on one node: sources (runs of address positions) that gained or lost an
/// outcome for a login (`*`: any login no rule names).
#[derive(Debug, Clone)]
pub(crate) struct SshAtom {
    pub(crate) gained: bool,
    pub(crate) src: Vec<(u32, u32)>,
    pub(crate) login: String,
    pub(crate) outcome: Outcome,
}

/// A rule with the positions of the sources it admits.
struct Placed<'a> {
    rule: &'a SshRule,
    policy_index: usize,
    /// Equal for rules that are equal (principals, users and action).
    sig: (u32, u32, String),
    runs: Rc<Vec<(u32, u32)>>,
    /// The session's [`terms`], written with the signature's rest, once per rule on a node
    /// whose rules changed (not per login decided).
    terms: Text,
}

/// The local user a refusing rule stands for as [`Decided::star`]: any non-empty text (its
/// action decides: refused).
const REFUSED: &str = "(refused)";

fn action_kind(rule: &SshRule) -> Option<&'static str> {
    if rule.action.reject {
        None
    } else if rule.action.is_check() {
        Some("check")
    } else if rule.action.accept {
        Some("accept")
    } else {
        None
    }
}

/// What rule `placed` does with `login`, which it maps to `local`: `None` when the rule does
/// not match it (an empty local user: Tailscale's SSH server then tries the next rule,
/// `tailssh` `mapLocalUser` and `matchRule`), else the decision (`None` inside: rejected).
fn matched(placed: &Placed<'_>, login: &str, local: &str) -> Option<Option<Outcome>> {
    if local.is_empty() {
        return None;
    }
    let local_user = if local == "=" {
        login.to_string()
    } else {
        local.to_string()
    };
    Some(action_kind(placed.rule).map(|action| Outcome {
        local_user,
        action,
        terms: placed.terms.clone(),
        rule: placed.policy_index,
    }))
}

/// The decision of the first of `rules` that matches `login` (its own entry, or `*` when it
/// names no entry of that login), by a scan: `None` when none matches or it rejects.
fn scan_login(rules: &[&Placed<'_>], login: &str) -> Option<Outcome> {
    for placed in rules {
        // A refusing rule refuses every login: the client reads no user map on a reject
        // action (tailssh's `matchRule`).
        if placed.rule.action.reject {
            return None;
        }
        let users = &placed.rule.ssh_users;
        let Some(local) = users.get(login).or_else(|| users.get("*")) else {
            continue;
        };
        if let Some(decision) = matched(placed, login, local) {
            return decision;
        }
    }
    None
}

/// The first rule among some active ones that matches each login: decided for every login in
/// one pass over the rules (up to the first that maps `*` to a local user, which decides
/// every login not named before it), not by a scan of the rules per login (logins x rules
/// per stretch of sources: 16,000 rules of one login each took 12 s to diff). A rule that
/// maps a login to an empty local user (`autogroup:nonroot`'s `root`) does not match it: the
/// login goes on to the later rules, past that rule's `*` too.
struct Decided<'r, 'a> {
    /// The logins the rules before the first `*` name, each decided by the first.
    named: HashMap<&'r str, Option<Outcome>>,
    /// The first rule that maps `*`, and what it maps it to.
    star: Option<(&'r Placed<'a>, &'r str)>,
}

impl<'r, 'a> Decided<'r, 'a> {
    /// `active`: indices into `rules`, ascending.
    fn new(rules: &'r [Placed<'a>], active: &[usize]) -> Decided<'r, 'a> {
        let mut decided = Decided {
            named: HashMap::new(),
            star: None,
        };
        let active: Vec<&'r Placed<'a>> = active.iter().filter_map(|&i| rules.get(i)).collect();
        for (k, &placed) in active.iter().enumerate() {
            // A refusing rule decides every login not named before it (the client reads no
            // user map on a reject action): as a `*` that refuses.
            if placed.rule.action.reject {
                decided.star = Some((placed, REFUSED));
                break;
            }
            for (login, local) in placed.rule.ssh_users.iter() {
                if login != "*" && !decided.named.contains_key(login.as_str()) {
                    if let Some(decision) = matched(placed, login, local) {
                        decided.named.insert(login.as_str(), decision);
                    }
                }
            }
            let star = placed.rule.ssh_users.get("*").filter(|l| !l.is_empty());
            if let Some(local) = star {
                decided.star = Some((placed, local.as_str()));
                // The logins this rule maps to no one are not its `*`'s: the later rules'.
                let later = active.get(k + 1..).unwrap_or_default();
                for (login, local) in placed.rule.ssh_users.iter() {
                    if local.is_empty() && !decided.named.contains_key(login.as_str()) {
                        decided
                            .named
                            .insert(login.as_str(), scan_login(later, login));
                    }
                }
                break;
            }
        }
        decided
    }

    /// True when `self`'s and `other`'s `*` rules give every login neither names the same
    /// local user and action (or neither gives it anything).
    fn stars_agree(&self, other: &Decided<'_, '_>) -> bool {
        match (self.star, other.star) {
            (None, None) => true,
            (Some((a, x)), Some((b, y))) => {
                x == y
                    && (x.is_empty()
                        || action_kind(a.rule) == action_kind(b.rule) && a.terms == b.terms)
            }
            _ => false,
        }
    }

    /// What the first rule that matches `login` gives it.
    fn decide(&self, login: &str) -> Option<Outcome> {
        match self.named.get(login) {
            Some(found) => found.clone(),
            None => self
                .star
                .and_then(|(placed, local)| matched(placed, login, local).flatten()),
        }
    }
}

/// A principal list kept alive, its id and its runs of positions.
type PlacedPrincipals = (Arc<[SshPrincipal]>, u32, Rc<Vec<(u32, u32)>>);

/// Principal lists and user maps (shared between the nodes of one compile) placed and
/// identified once, by address; each is kept alive while its address is a key.
#[derive(Default)]
pub(crate) struct SshPlacements {
    principals: HashMap<usize, PlacedPrincipals>,
    principal_ids: HashMap<Arc<[SshPrincipal]>, u32>,
    users: HashMap<usize, (Arc<BTreeMap<String, String>>, u32)>,
    user_ids: HashMap<Arc<BTreeMap<String, String>>, u32>,
    /// Sweeps done, by the rules swept ([`SweepKey`]).
    swept: HashMap<SweepKey, Rc<Vec<SshAtom>>>,
}

impl SshPlacements {
    fn place<'a>(
        &mut self,
        policy_index: usize,
        rule: &'a SshRule,
        table: &AddrTable,
        len: u32,
    ) -> Placed<'a> {
        let key = rule.principals.as_ptr() as usize;
        let (pid, runs) = match self.principals.get(&key) {
            Some((_, id, runs)) => (*id, runs.clone()),
            None => {
                let next = u32::try_from(self.principal_ids.len()).unwrap_or(u32::MAX);
                let id = *self
                    .principal_ids
                    .entry(rule.principals.clone())
                    .or_insert(next);
                let runs = Rc::new(runs(rule, table, len));
                self.principals
                    .insert(key, (rule.principals.clone(), id, runs.clone()));
                (id, runs)
            }
        };
        let ukey = Arc::as_ptr(&rule.ssh_users) as usize;
        let uid = match self.users.get(&ukey) {
            Some((_, id)) => *id,
            None => {
                let next = u32::try_from(self.user_ids.len()).unwrap_or(u32::MAX);
                let id = *self.user_ids.entry(rule.ssh_users.clone()).or_insert(next);
                self.users.insert(ukey, (rule.ssh_users.clone(), id));
                id
            }
        };
        // The rest of the signature is written only when the lists differ (see `diff_node`).
        Placed {
            rule,
            policy_index,
            sig: (pid, uid, String::new()),
            runs,
            terms: Text::from(""),
        }
    }
}

/// Runs of positions a rule admits.
fn runs(rule: &SshRule, table: &AddrTable, len: u32) -> Vec<(u32, u32)> {
    let mut points: Vec<(u32, u32)> = Vec::new();
    for p in rule.principals.iter() {
        if p.any() {
            return vec![(0, len)];
        }
        if let Some(ip) = p.node_ip().and_then(|t| t.parse().ok()) {
            let (a, b) = table.positions(ip, ip);
            if a < b {
                points.push((a, b));
            }
        }
    }
    merge_runs(points)
}

/// The parts of `runs` inside `within` (both sorted and disjoint).
fn intersect(runs: &[(u32, u32)], within: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(a, b)), Some(&(c, d))) = (runs.get(i), within.get(j)) {
        let (lo, hi) = (a.max(c), b.min(d));
        if lo < hi {
            out.push((lo, hi));
        }
        if b < d {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// What changed for the node whose SSH rules were `old` and are `new` (each with the index
/// of its policy rule). Rules both lists have (in the same relative order) cancel out: only
/// the positions the other rules admit can change, and only there is the first match
/// evaluated. O(e log e + s * r * l): e run boundaries there, s segments, r rules, l logins.
pub(crate) fn diff_node(
    old: &[(usize, SshRule)],
    new: &[(usize, SshRule)],
    table: &AddrTable,
    len: u32,
    placements: &mut SshPlacements,
) -> Vec<SshAtom> {
    let mut old_rules: Vec<Placed<'_>> = old
        .iter()
        .map(|(i, r)| placements.place(*i, r, table, len))
        .collect();
    let mut new_rules: Vec<Placed<'_>> = new
        .iter()
        .map(|(i, r)| placements.place(*i, r, table, len))
        .collect();
    let same = |a: &Placed<'_>, b: &Placed<'_>| {
        a.sig.0 == b.sig.0
            && a.sig.1 == b.sig.1
            && a.rule.action == b.rule.action
            && a.rule.accept_env == b.rule.accept_env
            && a.rule.rule_expires == b.rule.rule_expires
    };
    if old_rules.len() == new_rules.len()
        && old_rules.iter().zip(&new_rules).all(|(a, b)| same(a, b))
    {
        return Vec::new();
    }
    for p in old_rules.iter_mut().chain(new_rules.iter_mut()) {
        p.sig.2 = format!(
            "{:?}{:?}{:?}",
            p.rule.action, p.rule.accept_env, p.rule.rule_expires
        );
        p.terms = terms(p.rule);
    }
    // Nodes with the same rules before and after (most do: rules reach nodes by selector)
    // have the same changes: swept once.
    let key: SweepKey = (
        old_rules
            .iter()
            .map(|p| (p.policy_index, p.sig.clone()))
            .collect(),
        new_rules
            .iter()
            .map(|p| (p.policy_index, p.sig.clone()))
            .collect(),
    );
    if let Some(atoms) = placements.swept.get(&key) {
        return atoms.as_ref().clone();
    }
    // Multiset difference of the rules; the common ones must keep their relative order.
    let mut counts: HashMap<&(u32, u32, String), isize> = HashMap::new();
    for p in &old_rules {
        *counts.entry(&p.sig).or_insert(0) += 1;
    }
    for p in &new_rules {
        *counts.entry(&p.sig).or_insert(0) -= 1;
    }
    let is_common = |sig: &(u32, u32, String)| counts.get(sig).is_some_and(|c| *c == 0);
    let common_old = old_rules
        .iter()
        .filter(|p| is_common(&p.sig))
        .map(|p| &p.sig);
    let common_new = new_rules
        .iter()
        .filter(|p| is_common(&p.sig))
        .map(|p| &p.sig);
    let candidates = if common_old.eq(common_new) {
        merge_runs(
            old_rules
                .iter()
                .chain(&new_rules)
                .filter(|p| !is_common(&p.sig))
                .flat_map(|p| p.runs.iter().copied())
                .collect(),
        )
    } else {
        vec![(0, len)]
    };
    let sides = [old_rules, new_rules];
    let mut logins: BTreeSet<&str> = BTreeSet::new();
    logins.insert("*");
    for side in &sides {
        for placed in side {
            logins.extend(placed.rule.ssh_users.keys().map(String::as_str));
        }
    }
    // (position, kind: 0 boundary / 1 start / 2 end, side, rule)
    let mut events: Vec<(u32, u8, usize, usize)> = Vec::new();
    for &(a, b) in &candidates {
        events.push((a, 0, 0, 0));
        events.push((b, 0, 0, 0));
    }
    for (s, side) in sides.iter().enumerate() {
        for (i, placed) in side.iter().enumerate() {
            for (a, b) in intersect(&placed.runs, &candidates) {
                events.push((a, 1, s, i));
                events.push((b, 2, s, i));
            }
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut active: [BTreeSet<usize>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut atoms: Vec<SshAtom> = Vec::new();
    let mut i = 0;
    while let Some(&(at, ..)) = events.get(i) {
        while let Some(&(p, kind, s, r)) = events.get(i) {
            if p != at {
                break;
            }
            if let Some(set) = active.get_mut(s) {
                match kind {
                    1 => {
                        set.insert(r);
                    }
                    2 => {
                        set.remove(&r);
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        let Some(&(next, ..)) = events.get(i) else {
            break;
        };
        if next == at {
            continue;
        }
        let k = candidates.partition_point(|c| c.1 <= at);
        if !candidates.get(k).is_some_and(|c| c.0 <= at && next <= c.1) {
            continue;
        }
        let [old_active, new_active] = &active;
        let old_active: Vec<usize> = old_active.iter().copied().collect();
        let new_active: Vec<usize> = new_active.iter().copied().collect();
        let [old_rules, new_rules] = &sides;
        let (old_decided, new_decided) = (
            Decided::new(old_rules, &old_active),
            Decided::new(new_rules, &new_active),
        );
        // A login neither side names here is decided by each side's `*` rule: when the two
        // give every such login the same, they are passed over without a decision each.
        let same_star = old_decided.stars_agree(&new_decided);
        for &login in &logins {
            if same_star
                && login != "*"
                && !old_decided.named.contains_key(login)
                && !new_decided.named.contains_key(login)
            {
                continue;
            }
            let o = old_decided.decide(login);
            let n = new_decided.decide(login);
            let same = match (&o, &n) {
                (Some(a), Some(b)) => {
                    a.local_user == b.local_user && a.action == b.action && a.terms == b.terms
                }
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            for (gained, outcome) in [(false, o), (true, n)] {
                let Some(outcome) = outcome else { continue };
                push(&mut atoms, gained, at, next, login, outcome);
            }
        }
    }
    placements.swept.insert(key, Rc::new(atoms.clone()));
    atoms
}

/// A node's rules before and after, by policy rule and signature: what a sweep depends on.
type SweepKey = (
    Vec<(usize, (u32, u32, String))>,
    Vec<(usize, (u32, u32, String))>,
);

/// Add a segment, extending the previous atom when it is the same change on the adjacent
/// positions.
fn push(atoms: &mut Vec<SshAtom>, gained: bool, a: u32, b: u32, login: &str, outcome: Outcome) {
    if let Some(last) = atoms
        .iter_mut()
        .rev()
        .find(|x| x.gained == gained && x.login == login && x.outcome == outcome)
    {
        if let Some(run) = last.src.last_mut() {
            if run.1 == a {
                run.1 = b;
                return;
            }
        }
        last.src.push((a, b));
        return;
    }
    atoms.push(SshAtom {
        gained,
        src: vec![(a, b)],
        login: login.to_string(),
        outcome,
    });
}

/// What `aclc diff` holds a node with `rules` (wire SSH rules, in order) gives a device at
/// `src` logging in as `login`: the outcome the sweep finds against no rules before (for test
/// vectors: `tailssh_vectors`). The device is node 0 of the address table, every `nodeIP` of
/// the rules another node.
#[cfg(test)]
pub(crate) fn decide_wire(
    rules: &[SshRule],
    src: std::net::IpAddr,
    login: &str,
) -> Option<Outcome> {
    let unspecified = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let mut nodes: Vec<[std::net::IpAddr; 2]> = vec![[src, unspecified]];
    for rule in rules {
        for p in rule.principals.iter() {
            if let Some(ip) = p.node_ip().and_then(|t| t.parse().ok()) {
                if ip != src {
                    nodes.push([ip, unspecified]);
                }
            }
        }
    }
    let table = AddrTable::new(nodes.iter().copied());
    let len = u32::try_from(nodes.len() * 2).unwrap_or(u32::MAX);
    let new: Vec<(usize, SshRule)> = rules.iter().cloned().enumerate().collect();
    let atoms = diff_node(&[], &new, &table, len, &mut SshPlacements::default());
    let (at, _) = table.positions(src, src);
    let covers = |a: &SshAtom| a.gained && a.src.iter().any(|&(lo, hi)| lo <= at && at < hi);
    // A login some rule names has its own atom; any other is the `*` atom's.
    let named = rules.iter().any(|r| r.ssh_users.contains_key(login));
    let key = if named { login } else { "*" };
    atoms
        .iter()
        .find(|a| covers(a) && a.login == key)
        .map(|a| a.outcome.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    /// The first rule among `active` that matches `login`, by a scan per login (what
    /// [`Decided`] replaced), as `tailssh` evaluates: a rule whose entry for the login (or,
    /// without one, whose `*`) is empty does not match, and the next is tried.
    fn scanned(rules: &[Placed<'_>], active: &[usize], login: &str) -> Option<Outcome> {
        for &i in active {
            let placed = &rules[i];
            // The client's `matchRule`: a reject action reads no user map.
            if placed.rule.action.reject {
                return None;
            }
            let users = &placed.rule.ssh_users;
            let Some(local) = users.get(login).or_else(|| users.get("*")) else {
                continue;
            };
            if local.is_empty() {
                continue;
            }
            let local_user = if local == "=" {
                login.to_string()
            } else {
                local.clone()
            };
            return action_kind(placed.rule).map(|action| Outcome {
                local_user,
                action,
                terms: placed.terms.clone(),
                rule: placed.policy_index,
            });
        }
        None
    }

    const LOGINS: [&str; 5] = ["a", "b", "c", "*", "zed"];

    fn rule(users: &[(usize, usize)], action: usize) -> SshRule {
        const LOCALS: [&str; 4] = ["=", "", "x", "a"];
        let users: BTreeMap<String, String> = users
            .iter()
            .map(|&(l, v)| (LOGINS[l % 4].to_string(), LOCALS[v % 4].to_string()))
            .collect();
        let action = match action % 3 {
            0 => serde_json::json!({"accept": true}),
            1 => serde_json::json!({"reject": true}),
            _ => serde_json::json!({"holdAndDelegate": "https://example.com/check"}),
        };
        serde_json::from_value(serde_json::json!({
            "principals": [],
            "sshUsers": users,
            "action": action,
        }))
        .unwrap()
    }

    fn placed(rules: &[SshRule]) -> Vec<Placed<'_>> {
        rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Placed {
                rule,
                policy_index: i,
                sig: (0, 0, String::new()),
                runs: Rc::new(Vec::new()),
                terms: terms(rule),
            })
            .collect()
    }

    type Rules = Vec<(Vec<(usize, usize)>, usize)>;

    fn rules() -> impl Strategy<Value = Rules> {
        prop::collection::vec(
            (
                prop::collection::vec((0..4usize, 0..4usize), 0..4),
                0..3usize,
            ),
            0..7,
        )
    }

    proptest! {
        /// One pass over the rules decides each login as a scan of the rules per login does.
        #[test]
        fn one_pass_decides_as_the_scan_per_login(spec in rules(), keep in prop::collection::vec(any::<bool>(), 7)) {
            let rules: Vec<SshRule> = spec.iter().map(|(u, a)| rule(u, *a)).collect();
            let placed = placed(&rules);
            let active: Vec<usize> = (0..placed.len()).filter(|&i| keep[i]).collect();
            let decided = Decided::new(&placed, &active);
            for login in LOGINS {
                prop_assert_eq!(decided.decide(login), scanned(&placed, &active, login), "{}", login);
            }
        }

        /// When the two sides' `*` rules agree, every login neither side names gets the same
        /// from both (what lets the sweep pass those logins over).
        #[test]
        fn agreeing_star_rules_decide_unnamed_logins_alike(old in rules(), new in rules()) {
            let (old, new): (Vec<SshRule>, Vec<SshRule>) = (
                old.iter().map(|(u, a)| rule(u, *a)).collect(),
                new.iter().map(|(u, a)| rule(u, *a)).collect(),
            );
            let (old, new) = (placed(&old), placed(&new));
            let (all_old, all_new): (Vec<usize>, Vec<usize>) = ((0..old.len()).collect(), (0..new.len()).collect());
            let (a, b) = (Decided::new(&old, &all_old), Decided::new(&new, &all_new));
            if a.stars_agree(&b) {
                let (o, n) = (a.decide("zed"), b.decide("zed"));
                let same = match (&o, &n) {
                    (Some(x), Some(y)) => {
                        x.local_user == y.local_user && x.action == y.action && x.terms == y.terms
                    }
                    (None, None) => true,
                    _ => false,
                };
                prop_assert!(same, "{:?} {:?}", o, n);
            }
        }
    }
}
