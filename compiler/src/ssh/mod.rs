//! Tailscale SSH: the policy's `ssh` rules lowered once per compile, and each node's
//! `SSHPolicy` rules derived from them on demand, as Tailscale's control plane sends them.
//!
//! What the captures show (`ssh` corpus category):
//! - `principals` name every address of every source device; a tagged device reached through
//!   `autogroup:tagged` appears once per tag it carries.
//! - `sshUsers` always has `root` (`""` unless `root` is listed), `*` -> `=` for
//!   `autogroup:nonroot`, and every other name mapped to itself.
//! - A rule with `localpart:*@domain` users is split per source user (in user-id order): that
//!   user's devices with the common user map, then, for a user in the domain, the same devices
//!   with `{localpart: localpart}`; tagged sources get one common rule at the end. Such a rule
//!   also reaches the source devices themselves, scoped to their own user (`ssh/ssh-d2`).
//! - `autogroup:self` gives each user-owned device the rule narrowed to its owner's devices.
//! - Check rules come before accept rules, otherwise policy order (the client takes the first
//!   rule that matches).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aclc_policy::model::{Alias, Autogroup, Policy, SshAction as PolicyAction, SshUser};

use crate::inventory::User;
use crate::nodes::{index, NodeId, NodeInfo, NodeTable, UserId};
use crate::posture::{gate_of, Gates};
use crate::resolve::{Resolver, Target};
use crate::wire::{RecorderFailureAction, SshAction, SshPrincipal, SshRule};

mod build;
mod labels;
pub(crate) use labels::Labels;
mod patch;
pub(crate) mod reuse;
mod sources;
mod users;

use sources::*;
pub(crate) use sources::{own_devices_only, user_map};

use users::Chunked;

/// The port session recorders (`tsrecorder`) listen on.
pub(crate) const RECORDER_PORT: u16 = 80;

/// Refusal when recording is enforced and no recorder exists.
pub(crate) const NO_RECORDER: &str =
    "Session recording is required for this connection, but no session recorder is available.";
const RECORDING_UNAVAILABLE: &str =
    "Session recording is required for this connection, but the session recorder could not be reached.";
const RECORDING_FAILED: &str =
    "Session recording is required for this connection, and it has failed.";

/// Where a session recorder is reached: its IPv4 address, or its IPv6 address (`[a]:80`)
/// when it has none, on [`RECORDER_PORT`] (SSH's recorders and the Kubernetes operator's).
pub(crate) fn recorder_addr(node: &crate::nodes::NodeInfo) -> Option<String> {
    let ip = node.ips().first().copied()?;
    Some(std::net::SocketAddr::new(ip, RECORDER_PORT).to_string())
}

/// Add a rule's session recording (`recorder`, `enforceRecorder`) to its action: the
/// recorders' addresses, and with `enforceRecorder` the refusal when recording fails. When
/// recording is enforced and no device carries a recorder tag the session is refused
/// outright: a node given no recorder would admit it unrecorded (fail closed). A rule
/// that names no recorder at all records nothing, and `enforceRecorder` does nothing on it:
/// Tailscale's documentation says "If no `recorder` is specified, the session is not
/// recorded", and removing the field is how it says to admit sessions again when the
/// recorder is unreachable.
fn recording(
    mut action: SshAction,
    rule: &aclc_policy::model::SshRule,
    resolver: &mut Resolver<'_>,
    table: &NodeTable,
) -> (SshAction, Vec<NodeId>) {
    let mut recorders: Vec<NodeId> = Vec::new();
    for selector in &rule.recorder {
        if let Target::Nodes(ids) = resolver.resolve(selector) {
            recorders.extend(ids.iter().copied());
        }
    }
    recorders.sort_unstable();
    recorders.dedup();
    action.recorders = recorders
        .iter()
        .filter_map(|&id| recorder_addr(table.get(id)?))
        .collect();
    let enforced =
        !rule.recorder.is_empty() && rule.enforce_recorder.as_ref().is_some_and(|e| e.value);
    if enforced && action.recorders.is_empty() {
        let refused = SshAction {
            reject: true,
            message: Some(NO_RECORDER.to_string()),
            ..SshAction::default()
        };
        return (refused, recorders);
    }
    if enforced {
        action.on_recording_failure = Some(RecorderFailureAction {
            reject_session_with_message: RECORDING_UNAVAILABLE.to_string(),
            terminate_session_with_message: RECORDING_FAILED.to_string(),
            notify_url: String::new(),
        });
    }
    (action, recorders)
}

/// The `ssh` section, lowered, with an index from node to the rules that may reach it (so a
/// node's rules cost what the node receives, not a pass over every rule).
#[derive(Debug)]
pub(crate) struct SshLowered {
    /// Shared with the next compile when a policy event leaves every input of the SSH
    /// lowering as it was ([`reuse::same_inputs`]).
    rules: Arc<Vec<LoweredRule>>,
    /// Per node, the rules naming it as a destination or (localpart rules) a source; sorted.
    by_node: crate::pernode::ItemIndex,
    /// Rules whose destinations are every node.
    global: Vec<u32>,
    /// Rules with `autogroup:self` (they may reach every user-owned node).
    self_rules: Vec<u32>,
    /// When this lowering was patched from an earlier one ([`patch::Patch`]): the rules
    /// whose pieces may differ from the earlier rule's for a node that did not change (its
    /// principals, its action, whether it has sources), ascending.
    moved: Option<Vec<u32>>,
    /// When patched: the users whose per-user source lists may differ from the earlier
    /// rule's (every other user's list is the earlier one, taken), sorted.
    moved_users: Vec<UserId>,
    /// Each rule's label in the nodes' SSH fingerprints ([`labels`]).
    labels: labels::Labels,
}

/// Where one policy rule applies and what it sends.
#[derive(Debug)]
struct LoweredRule {
    /// Index of the rule in the policy's `ssh` list.
    index: usize,
    action: SshAction,
    /// True when the policy writes the rule as `check`: it goes before the accept rules on
    /// every node, its action a check or, when recording is enforced and no recorder
    /// exists, a refusal ([`SshRuleRef::check_first`]).
    check_first: bool,
    /// The session recorders' devices, sorted (their addresses are in `action`).
    recorders: Vec<NodeId>,
    /// The user map every piece of the rule carries.
    users: Arc<BTreeMap<String, String>>,
    accept_env: Arc<[String]>,
    /// True when the rule lists `localpart:*@domain` users.
    localpart: bool,
    /// Every source address, with the control plane's repetitions (rules without localpart
    /// users and with destinations besides `autogroup:self`).
    all: Arc<[SshPrincipal]>,
    /// Source devices per owner, in user-id order (localpart and `autogroup:self` rules).
    by_user: Chunked<UserSources>,
    /// Position in `by_user` of each user.
    user_index: Arc<HashMap<UserId, usize>>,
    /// Tagged source devices (localpart rules).
    tagged: Arc<[SshPrincipal]>,
    /// Hashes of `all` and `tagged`, and of the rule's fields besides its principals (with
    /// `users`).
    all_hash: Memo,
    tagged_hash: Memo,
    rest_hash: Memo,
    /// Source nodes, sorted; shared by the rules with the same sources ([`Lists`]).
    sources: Arc<[NodeId]>,
    /// Destinations other than `autogroup:self`.
    dst: Destinations,
    /// True when `autogroup:self` is a destination.
    self_dst: bool,
}

/// An earlier lowering of the same `ssh` section on a node table that differs from this one
/// only in some nodes (none serving a route) or in routes (principals are addresses of
/// devices, never routes): a rule whose sources hold none of those nodes, before or after,
/// keeps its list of every source's principals (shared, not rebuilt).
pub(crate) struct SshPrior<'a> {
    /// The earlier lowering.
    pub(crate) lowered: &'a SshLowered,
    /// The changed nodes' ids in its table (sorted).
    pub(crate) before: &'a [NodeId],
    /// Their ids in the table being lowered (sorted).
    pub(crate) after: &'a [NodeId],
    /// The changed nodes' owners, before and after (sorted), when both tables were built
    /// from the same list of users (`None` otherwise): any other user's devices are the
    /// devices they were, so a rule's list of that user's sources is taken, not rebuilt.
    pub(crate) touched_users: Option<Vec<UserId>>,
    /// Each node's id in the earlier table, `None` for the changed ones, when only the
    /// nodes named changed ([`NodeTable::kept_from`]): the index from node to rules is then
    /// the earlier one with the changed nodes' lists replaced.
    pub(crate) kept: Option<&'a [Option<NodeId>]>,
}

impl SshPrior<'_> {
    /// Rule `index`'s list of every source's principals in the earlier lowering, when its
    /// sources (`sources` now) are the same devices: none changed, before or after, and as
    /// many (the policy is the same and membership a property of the unchanged devices).
    /// With the list, its hash if the earlier compile computed it.
    fn same_sources(
        &self,
        index: usize,
        sources: &[NodeId],
    ) -> Option<(Arc<[SshPrincipal]>, Memo)> {
        let rule = self.rule(index)?;
        let same = !rule.localpart
            && rule.sources.len() == sources.len()
            && !crate::nodes::holds_any(&rule.sources, self.before)
            && !crate::nodes::holds_any(sources, self.after);
        same.then(|| (rule.all.clone(), rule.all_hash.clone()))
    }

    /// The earlier lowering of policy rule `index`.
    fn rule(&self, index: usize) -> Option<&LoweredRule> {
        // Rules are lowered in policy order, one per policy rule.
        let rules = &self.lowered.rules;
        rules.get(rules.binary_search_by_key(&index, |r| r.index).ok()?)
    }

    /// The earlier lowering of policy rule `index` when its per-user lists may be taken
    /// (the same users), with the users whose lists may not.
    fn user_lists(&self, index: usize) -> Option<(&LoweredRule, &[UserId])> {
        Some((self.rule(index)?, self.touched_users.as_deref()?))
    }
}

pub(crate) use crate::hash::Memo;

/// Two lowerings' lists of one user's sources are alike, or the user has neither.
fn same_user_lists(a: Option<&UserSources>, b: Option<&UserSources>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.alike(b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Each user's position in a rule's `by_user`.
fn index_users(by_user: &[UserSources]) -> HashMap<UserId, usize> {
    by_user
        .iter()
        .enumerate()
        .map(|(k, s)| (s.user, k))
        .collect()
}

/// The source devices of one user.
#[derive(Debug, PartialEq, Clone)]
struct UserSources {
    /// Index of the user in the node table.
    user: UserId,
    principals: Arc<[SshPrincipal]>,
    /// `{localpart: localpart}` when the user's login is in a `localpart:` domain.
    localpart: Option<Arc<BTreeMap<String, String>>>,
    /// Hash of `principals`.
    principals_hash: Memo,
    /// Hash of the rule's fields besides its principals, with the `localpart` users.
    localpart_rest: Memo,
}

impl UserSources {
    /// Equal to `other` (the memos aside), the lists compared by address first: most
    /// lists of a patched lowering are the earlier ones.
    fn alike(&self, other: &UserSources) -> bool {
        self.user == other.user
            && same_principals(&self.principals, &other.principals)
            && match (&self.localpart, &other.localpart) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

/// Two principal lists are equal: the same list, or equal content. (`Arc`'s equality does
/// not look at the addresses first here: a patched lowering compared 1.3 million principals
/// per event on `large` with itself.)
fn same_principals(a: &Arc<[SshPrincipal]>, b: &Arc<[SshPrincipal]>) -> bool {
    Arc::ptr_eq(a, b) || a[..] == b[..]
}

/// The nodes a rule's (non-self) destinations stand for.
#[derive(Debug, PartialEq, Clone)]
enum Destinations {
    /// No destination besides `autogroup:self`.
    None,
    /// Every node.
    All,
    /// Some nodes, sorted; shared by the rules with the same destinations ([`Lists`]).
    Some(Arc<[NodeId]>),
}

/// The node lists of one lowering, shared among its rules: rules whose selectors are written
/// alike (1,400 rules of `large` name 700 distinct source lists and 390 destination lists)
/// resolve them once, and an engine event moves each distinct list once
/// ([`patch::Patch::moved`]), not once per rule: a list is a pure function of the earlier
/// list and of which fresh nodes it admits.
#[derive(Default)]
struct Lists {
    /// Sources (with their counts) by the aliases and posture written.
    sources: crate::hash::Map<(Vec<Alias>, Vec<String>), Sources>,
    /// Destinations by the aliases written.
    dst: crate::hash::Map<Vec<Alias>, (Destinations, bool)>,
    /// Moved lists, by the earlier list's address and the fresh nodes it admits.
    moved: crate::hash::Map<(usize, Vec<NodeId>), Arc<[NodeId]>>,
}

/// A rule's source devices, and how often the control plane lists each.
type Sources = (Arc<[NodeId]>, Vec<(NodeId, usize)>);

impl Lists {
    /// `old` moved by `patch`, taking the fresh nodes `admits` does; once per distinct
    /// earlier list and admitted nodes.
    fn moved(
        &mut self,
        patch: &patch::Patch<'_>,
        old: &Arc<[NodeId]>,
        mut admits: impl FnMut(NodeId) -> bool,
    ) -> Arc<[NodeId]> {
        let admitted: Vec<NodeId> = patch.fresh.iter().copied().filter(|&f| admits(f)).collect();
        // The earlier lowering holds `old` for the whole lowering, so its address is not
        // taken by another list meanwhile.
        let key = (Arc::as_ptr(old).cast::<NodeId>() as usize, admitted);
        if let Some(list) = self.moved.get(&key) {
            return list.clone();
        }
        let list: Arc<[NodeId]> = Arc::from(patch.moved(old, |f| key.1.binary_search(&f).is_ok()));
        self.moved.insert(key, list.clone());
        list
    }
}

impl Destinations {
    fn contains(&self, id: NodeId) -> bool {
        match self {
            Destinations::None => false,
            Destinations::All => true,
            Destinations::Some(ids) => ids.binary_search(&id).is_ok(),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Destinations::None)
    }
}

/// One SSH rule of a node, with the index of the policy rule it came from.
#[derive(Debug, Clone)]
pub(crate) struct NodeSshRule {
    /// Index of the source rule in the policy's `ssh` list.
    pub(crate) policy_index: usize,
    /// Evaluated before the accept rules ([`SshRuleRef::check_first`]).
    pub(crate) check_first: bool,
    /// The wire rule.
    pub(crate) rule: SshRule,
}

impl SshLowered {
    /// Per rule of `self` (old) and `new`: true when the other has no rule with the same
    /// content (everything a node receives from it; the policy index is left out). `None`
    /// when rules both have are in a different relative order (a reorder changes the first
    /// match, so every node may differ). Occurrences of equal rules pair up in order.
    pub(crate) fn changed_rules(&self, new: &SshLowered) -> Option<(Vec<bool>, Vec<bool>)> {
        // Taken whole by a policy event ([`SshLowered::reused`]): nothing changed.
        if Arc::ptr_eq(&self.rules, &new.rules) {
            return Some((vec![false; self.rules.len()], vec![false; new.rules.len()]));
        }
        let key = |r: &LoweredRule| {
            let mut h = crate::hash::hasher();
            std::hash::Hash::hash(&r.sources, &mut h);
            std::hash::Hash::hash(&(r.self_dst, r.localpart, r.all.len()), &mut h);
            std::hash::Hasher::finish(&h)
        };
        let mut pending: HashMap<u64, Vec<usize>> = HashMap::new();
        for (j, rule) in new.rules.iter().enumerate().rev() {
            pending.entry(key(rule)).or_default().push(j);
        }
        let mut old_changed = vec![true; self.rules.len()];
        let mut new_changed = vec![true; new.rules.len()];
        let mut last: Option<usize> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(candidates) = pending.get_mut(&key(rule)) else {
                continue;
            };
            // The first unpaired equal rule of `new` (candidates are kept last-first).
            let Some(pos) = candidates
                .iter()
                .rposition(|&j| new.rules.get(j).is_some_and(|r| r.same_content(rule)))
            else {
                continue;
            };
            let j = candidates.remove(pos);
            if last.is_some_and(|l| l > j) {
                return None;
            }
            last = Some(j);
            if let (Some(o), Some(n)) = (old_changed.get_mut(i), new_changed.get_mut(j)) {
                (*o, *n) = (false, false);
            }
        }
        Some((old_changed, new_changed))
    }

    /// Nodes (one bit each) that a changed rule (per [`SshLowered::changed_rules`]) reaches.
    pub(crate) fn mark_reached(&self, table: &NodeTable, changed: &[bool], bits: &mut [u64]) {
        crate::lower::mark_reached(
            table,
            &self.by_node,
            &self.global,
            &self.self_rules,
            changed,
            bits,
        );
    }
}

impl LoweredRule {
    /// The (node, rule `i`) pairs of the index from node to rules: the rule's destinations
    /// when they are some nodes, and with `localpart:` users its sources too (they receive
    /// it as well); none when it has no source.
    fn index_pairs(&self, i: u32) -> impl Iterator<Item = (NodeId, u32)> + Clone + '_ {
        let live = !self.sources.is_empty();
        let dst = match &self.dst {
            Destinations::Some(ids) if live => &ids[..],
            _ => &[],
        };
        let sources = match live && self.localpart && !self.dst.is_none() {
            true => &self.sources[..],
            false => &[],
        };
        dst.iter().chain(sources).map(move |&id| (id, i))
    }

    /// True when node `id` is in this rule's list in the index ([`LoweredRule::index_pairs`]).
    fn indexes(&self, id: NodeId) -> bool {
        if self.sources.is_empty() {
            return false;
        }
        let in_dst = matches!(&self.dst, Destinations::Some(ids) if ids.binary_search(&id).is_ok());
        in_dst || (self.localpart && !self.dst.is_none() && self.sources.binary_search(&id).is_ok())
    }

    /// Same rule for every node, wherever it sits in the policy.
    fn same_content(&self, other: &LoweredRule) -> bool {
        self.action == other.action
            && self.users == other.users
            && self.accept_env == other.accept_env
            && self.localpart == other.localpart
            && self.all == other.all
            && self.by_user == other.by_user
            && self.tagged == other.tagged
            && self.sources == other.sources
            && self.dst == other.dst
            && self.self_dst == other.self_dst
    }

    fn user_sources(&self, user: UserId) -> Option<&UserSources> {
        self.by_user.get(*self.user_index.get(&user)?)
    }

    /// The rule with these principals and users, and the memos of their hashes (none for
    /// principals made for one node).
    fn push(
        &self,
        out: &mut impl SshSink,
        (principals, principals_hash): (&Arc<[SshPrincipal]>, Option<&Memo>),
        (users, rest_hash): (&Arc<BTreeMap<String, String>>, &Memo),
    ) {
        out.rule(SshRuleRef {
            policy_index: self.index,
            principals,
            users,
            action: &self.action,
            check_first: self.check_first,
            accept_env: &self.accept_env,
            principals_hash,
            rest_hash,
        });
    }

    /// The common rule for one user's devices and, in a `localpart:` domain, its local-part
    /// rule.
    fn push_user(&self, out: &mut impl SshSink, sources: &UserSources) {
        let principals = (&sources.principals, Some(&sources.principals_hash));
        self.push(out, principals, (&self.users, &self.rest_hash));
        if let Some(users) = &sources.localpart {
            self.push(out, principals, (users, &sources.localpart_rest));
        }
    }
}

/// One SSH rule a node receives, borrowed from the lowered rule (no expiry: policy rules
/// have none).
pub(crate) struct SshRuleRef<'a> {
    /// The rule's index in the policy's `ssh` section.
    pub(crate) policy_index: usize,
    pub(crate) principals: &'a Arc<[SshPrincipal]>,
    pub(crate) users: &'a Arc<BTreeMap<String, String>>,
    pub(crate) action: &'a SshAction,
    /// True when the policy writes the rule as `check`, so the node evaluates it before the
    /// accept rules: its action is a check, or the refusal of enforced recording without a
    /// recorder, which must stay where the check was (after the accept rules, it let the
    /// logins they admit in unrecorded; found by a differential of SSH answers).
    pub(crate) check_first: bool,
    pub(crate) accept_env: &'a Arc<[String]>,
    /// Where the lowered rule keeps the hash of the principals (`None` for a list made for
    /// one node) and of the rest (the rule with these users), for a fingerprint to read
    /// instead of hashing or looking them up per node (150 rules per node on `large`).
    pub(crate) principals_hash: Option<&'a Memo>,
    pub(crate) rest_hash: &'a Memo,
}

/// What receives a node's SSH rules ([`SshLowered::visit_node_rules`]).
pub(crate) trait SshSink {
    /// The next rule, in policy order.
    fn rule(&mut self, rule: SshRuleRef<'_>);
}

impl SshSink for Vec<NodeSshRule> {
    fn rule(&mut self, rule: SshRuleRef<'_>) {
        self.push(NodeSshRule {
            policy_index: rule.policy_index,
            check_first: rule.check_first,
            rule: SshRule {
                rule_expires: None,
                principals: rule.principals.clone(),
                ssh_users: rule.users.clone(),
                action: rule.action.clone(),
                accept_env: rule.accept_env.clone(),
            },
        });
    }
}

#[cfg(test)]
mod tests;
