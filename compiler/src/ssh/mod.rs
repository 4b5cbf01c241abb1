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

mod patch;
pub(crate) mod reuse;
mod users;

use users::Chunked;

/// The port session recorders (`tsrecorder`) listen on.
const RECORDER_PORT: u16 = 80;

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
/// outright: a node given no recorder would admit it unrecorded (fail closed).
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
    let enforced = rule.enforce_recorder.as_ref().is_some_and(|e| e.value);
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
}

/// Where one policy rule applies and what it sends.
#[derive(Debug)]
struct LoweredRule {
    /// Index of the rule in the policy's `ssh` list.
    index: usize,
    action: SshAction,
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
    /// The wire rule.
    pub(crate) rule: SshRule,
}

impl SshLowered {
    /// Lower the `ssh` section against a node table. `control_url` is the base of check-mode
    /// links; `gates` decides which source devices pass the rules' posture gates.
    pub(crate) fn new(
        policy: &Policy,
        users: &[User],
        table: &NodeTable,
        control_url: &str,
        gates: &mut Gates<'_>,
        prior: Option<&SshPrior<'_>>,
    ) -> SshLowered {
        let mut lowered = SshLowered {
            rules: Arc::default(),
            by_node: crate::pernode::ItemIndex::empty(table.len()),
            global: Vec::new(),
            self_rules: Vec::new(),
            moved: None,
            moved_users: Vec::new(),
        };
        let Some(section) = &policy.ssh else {
            return lowered;
        };
        let mut resolver = Resolver::compiling(policy, table);
        // After an engine event that changed a few nodes: the earlier rules moved.
        let patch = prior.and_then(|p| patch::Patch::new(p, table, section.value.len()));
        let mut holds = patch::Holds::default();
        let mut moved = patch.as_ref().map(|_| Vec::new());
        // Users are walked in id order, as the control plane does; inventory order breaks ties.
        let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
        let user_key = |u: UserId| (ids.get(u.index()).copied().unwrap_or(u64::MAX), u);
        let logins: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
        let mut rules: Vec<LoweredRule> = Vec::with_capacity(section.value.len());
        let mut lists = Lists::default();
        // Rules with the same sources share one principal list.
        let mut shared: crate::hash::Map<Vec<(NodeId, usize)>, Arc<[SshPrincipal]>> =
            crate::hash::Map::default();
        // A moved rule's principals by its source list's address (lists are shared among
        // rules, [`Lists`]) and whether it counts tags: its counts depend on nothing else,
        // so rules sharing a moved list share its principals without listing, hashing and
        // comparing its counts again (4% of a retag on `large`). And whether an earlier
        // rule's principals equal a moved rule's, by the two lists' addresses. Every list
        // keyed is held until the lowering ends (by `rules` or by the earlier lowering), so
        // its address is not another's meanwhile.
        let mut by_list: crate::hash::Map<(usize, bool), Arc<[SshPrincipal]>> =
            crate::hash::Map::default();
        let mut alike_lists: crate::hash::Map<(usize, usize), bool> = crate::hash::Map::default();
        for (i, rule) in section.value.iter().enumerate() {
            let domains: Vec<String> = rule
                .users
                .iter()
                .filter_map(|u| match &u.value {
                    SshUser::Localpart { domain } => Some(domain.to_lowercase()),
                    _ => None,
                })
                .collect();
            let localpart = !domains.is_empty();
            let earlier = patch
                .as_ref()
                .and_then(|p| p.old.rules.get(i).map(|o| (p, o)));
            let Shape {
                dst,
                self_dst,
                sources,
                counts,
            } = match earlier {
                Some((p, o)) => {
                    let gate = gate_of(policy, &rule.src_posture);
                    let mut admits = |id: NodeId| {
                        rule.src
                            .iter()
                            .any(|s| holds.test(&mut resolver, table, s, id))
                            && gate.as_ref().is_none_or(|g| gates.admits(g, id))
                    };
                    let sources = lists.moved(p, &o.sources, &mut admits);
                    let dst = match &o.dst {
                        Destinations::Some(ids) => Destinations::Some(lists.moved(p, ids, |id| {
                            rule.dst
                                .iter()
                                .filter(|s| !own_devices_only(&s.alias))
                                .any(|s| holds.test(&mut resolver, table, s, id))
                        })),
                        Destinations::All => Destinations::All,
                        Destinations::None => Destinations::None,
                    };
                    Shape {
                        dst,
                        self_dst: o.self_dst,
                        sources,
                        counts: None,
                    }
                }
                None => Shape::resolved(
                    &mut resolver,
                    table,
                    rule,
                    gate_of(policy, &rule.src_posture),
                    gates,
                    &mut lists,
                ),
            };
            // The sources' counts, found from the sources when a patch did not list them.
            let per_tag = rule
                .src
                .iter()
                .any(|s| s.alias == Alias::Autogroup(Autogroup::Tagged));
            // Counts found with the sources (a rule resolved, not moved) depend on its
            // selectors, not on its list alone.
            let moved_list = counts.is_none();
            let counts = || {
                counts.clone().unwrap_or_else(|| {
                    sources
                        .iter()
                        .map(|&id| (id, tag_count(table, per_tag, id)))
                        .collect()
                })
            };
            // With a patch, the earlier rule when its sources are the same devices.
            let same = earlier.filter(|(p, o)| p.same_devices(&o.sources, &sources));
            // Only what the rule's shape uses is built: one list of every source, or the
            // sources per user (localpart rules, `autogroup:self`) and the tagged ones.
            let (all, all_hash) = if !localpart && !dst.is_none() {
                if let Some((_, o)) = same {
                    (o.all.clone(), o.all_hash.clone())
                } else {
                    let reused = match earlier {
                        Some(_) => None,
                        None => prior.and_then(|p| p.same_sources(i, &sources)),
                    };
                    let list_key = (Arc::as_ptr(&sources).cast::<NodeId>() as usize, per_tag);
                    let known = match moved_list {
                        true => by_list.get(&list_key).cloned(),
                        false => None,
                    };
                    let all = match known {
                        Some(all) => all,
                        None => {
                            let counts = counts();
                            let all = shared
                                .entry(counts.clone())
                                .or_insert_with(|| {
                                    if let Some((all, _)) = &reused {
                                        return all.clone();
                                    }
                                    counts
                                        .iter()
                                        .filter_map(|&(id, count)| Some((table.get(id)?, count)))
                                        .flat_map(|(node, count)| {
                                            std::iter::repeat_n(principals_of(node), count)
                                                .flatten()
                                        })
                                        .collect()
                                })
                                .clone();
                            if moved_list {
                                by_list.insert(list_key, all.clone());
                            }
                            all
                        }
                    };
                    // The earlier list's hash, when this is that list.
                    let hash = reused
                        .filter(|(earlier, _)| Arc::ptr_eq(earlier, &all))
                        .map(|(_, hash)| hash)
                        .unwrap_or_default();
                    (all, hash)
                }
            } else {
                (Arc::from(Vec::new()), Memo::default())
            };
            let (tagged, tagged_hash, by_user) = if !(localpart || self_dst) {
                (Arc::from(Vec::new()), Memo::default(), None)
            } else if let Some((p, o)) = earlier {
                // Untouched users' lists are the earlier ones; the touched users' are found
                // from their devices among the sources.
                let mut touched: Vec<UserSources> = Vec::new();
                for &user in &p.touched {
                    let devices = table.devices.get(user.index()).unwrap_or_default();
                    let mut held = devices
                        .iter()
                        .filter(|d| sources.binary_search(d).is_ok())
                        .filter_map(|&d| table.get(d))
                        .peekable();
                    if held.peek().is_none() {
                        continue;
                    }
                    let principals: Vec<SshPrincipal> = held.flat_map(principals_of).collect();
                    let login = logins.get(user.index()).copied().unwrap_or_default();
                    touched.push(UserSources {
                        user,
                        principals: Arc::from(principals),
                        localpart: if localpart {
                            localpart_map(login, &domains)
                        } else {
                            None
                        },
                        principals_hash: Memo::default(),
                        localpart_rest: Memo::default(),
                    });
                }
                // When every touched user's list is as it was (the changed nodes are not this
                // rule's sources), the earlier lists and their index are shared, hashes and
                // all: cloning every user's list of every such rule, and indexing them again,
                // was 4 % of a member join on `large`.
                let lists_same = p.touched.iter().all(|&user| {
                    same_user_lists(
                        o.user_sources(user),
                        touched.iter().find(|s| s.user == user),
                    )
                });
                // The same users have lists (a touched user's changed, none came or went):
                // the earlier lists with the touched ones replaced in place, in the same
                // order, so the index is shared.
                let same_users = p.touched.iter().all(|&user| {
                    o.user_sources(user).is_some() == touched.iter().any(|s| s.user == user)
                });
                let by_user = if lists_same {
                    (o.by_user.clone(), o.user_index.clone())
                } else if same_users {
                    // Only the chunks holding a touched user's list are copied.
                    let changes: Vec<(usize, UserSources)> = touched
                        .into_iter()
                        .filter_map(|list| Some((*o.user_index.get(&list.user)?, list)))
                        .collect();
                    (o.by_user.replaced(changes), o.user_index.clone())
                } else {
                    let mut by_user: Vec<UserSources> = o
                        .by_user
                        .iter()
                        .filter(|s| p.touched.binary_search(&s.user).is_err())
                        .cloned()
                        .collect();
                    by_user.extend(touched);
                    by_user.sort_by_key(|s| user_key(s.user));
                    let index = index_users(&by_user);
                    (Chunked::new(by_user), Arc::new(index))
                };
                let (tagged, tagged_hash) = match (localpart, same) {
                    (false, _) => (Arc::from(Vec::new()), Memo::default()),
                    (true, Some(_)) => (o.tagged.clone(), o.tagged_hash.clone()),
                    (true, None) => (
                        Arc::from(tagged_principals(table, &counts())),
                        Memo::default(),
                    ),
                };
                (tagged, tagged_hash, Some(by_user))
            } else {
                let counts = counts();
                let sources = |earlier| {
                    per_user_sources(table, &counts, localpart, earlier, |user| {
                        let login = logins.get(user.index()).copied().unwrap_or_default();
                        localpart_map(login, &domains)
                    })
                };
                // Taking the earlier lists fails only if a taken list does not hold as many
                // principals as the user's devices have now: then every list is rebuilt.
                let earlier = prior.and_then(|p| p.user_lists(i));
                let (tagged, mut by_user) = match sources(earlier) {
                    Some(built) => built,
                    None => sources(None).unwrap_or_default(),
                };
                by_user.sort_by_key(|s| user_key(s.user));
                let index = index_users(&by_user);
                (
                    Arc::from(tagged),
                    Memo::default(),
                    Some((Chunked::new(by_user), Arc::new(index))),
                )
            };
            let (by_user, user_index) = by_user.unwrap_or_default();
            let (action, recorders) = recording(
                match rule.action.value {
                    PolicyAction::Accept => SshAction::accept(),
                    PolicyAction::Check => SshAction::check(control_url),
                },
                rule,
                &mut resolver,
                table,
            );
            if let (Some(moved), Some((_, o))) = (&mut moved, earlier) {
                let alike = o.sources.is_empty() == sources.is_empty()
                    && o.action == action
                    && *alike_lists
                        .entry((
                            Arc::as_ptr(&o.all).cast::<SshPrincipal>() as usize,
                            Arc::as_ptr(&all).cast::<SshPrincipal>() as usize,
                        ))
                        .or_insert_with(|| same_principals(&o.all, &all))
                    && same_principals(&o.tagged, &tagged)
                    && o.by_user.alike(&by_user, UserSources::alike);
                if !alike {
                    moved.push(index(i));
                }
            }
            lowered.record(index(rules.len()), (&dst, self_dst), &sources);
            rules.push(LoweredRule {
                index: i,
                action,
                recorders,
                // The same policy rule as the earlier one: its user map and environment,
                // shared (1,400 maps made and freed per event on `large`).
                users: match earlier {
                    Some((_, o)) => o.users.clone(),
                    None => Arc::new(user_map(rule.users.iter().map(|u| &u.value))),
                },
                accept_env: match earlier {
                    Some((_, o)) => o.accept_env.clone(),
                    None => rule.accept_env.iter().map(|e| e.value.clone()).collect(),
                },
                localpart,
                all,
                by_user,
                user_index,
                tagged,
                all_hash,
                tagged_hash,
                rest_hash: Memo::default(),
                sources,
                dst,
                self_dst,
            });
        }
        lowered.rules = Arc::new(rules);
        lowered.moved = moved;
        lowered.moved_users = patch
            .as_ref()
            .map(|p| p.touched.clone())
            .unwrap_or_default();
        let patched = prior
            .and_then(|p| Some((p.lowered, p.kept?)))
            .and_then(|(old, kept)| old.patched_index(&lowered.rules, kept));
        lowered.by_node = match patched {
            Some(index) => index,
            None => crate::pernode::ItemIndex::from_pairs(
                table.len(),
                lowered
                    .rules
                    .iter()
                    .enumerate()
                    .flat_map(|(i, rule)| rule.index_pairs(index(i))),
            ),
        };
        // Debug builds compare a patched lowering with one built afresh.
        #[cfg(debug_assertions)]
        if patch.is_some() {
            let built = SshLowered::new(
                policy,
                users,
                table,
                control_url,
                &mut Gates::new(policy, table),
                None,
            );
            debug_assert!(
                lowered.agrees_with(&built),
                "a patched SSH lowering differs from one built"
            );
        }
        lowered
    }

    /// This lowering for a compile of another policy with the same SSH inputs on the same
    /// node table ([`reuse::same_inputs`]): the rules and their index shared, nothing moved.
    pub(crate) fn reused(&self) -> SshLowered {
        SshLowered {
            rules: self.rules.clone(),
            by_node: self.by_node.clone(),
            global: self.global.clone(),
            self_rules: self.self_rules.clone(),
            moved: Some(Vec::new()),
            moved_users: Vec::new(),
        }
    }

    /// True when `other` lowers the same rules to the same nodes (debug comparisons).
    #[cfg(debug_assertions)]
    pub(crate) fn agrees_with(&self, other: &SshLowered) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(other.rules.iter())
                .all(|(a, b)| a.index == b.index && a.same_content(b))
            && self.global == other.global
            && self.self_rules == other.self_rules
            && self.by_node.len() == other.by_node.len()
            && (0..self.by_node.len()).all(|n| self.by_node.get(n) == other.by_node.get(n))
    }

    /// Record where rule `i` may apply on every node, or on every user-owned one.
    fn record(&mut self, i: u32, (dst, self_dst): (&Destinations, bool), sources: &[NodeId]) {
        if sources.is_empty() {
            return;
        }
        if matches!(dst, Destinations::All) {
            self.global.push(i);
        }
        if self_dst {
            self.self_rules.push(i);
        }
    }

    /// This lowering's index from node to rules with the lists of the changed nodes (those
    /// `kept` has no earlier id for) replaced by their lists among `rules` (a lowering of the
    /// same policy), when every rule indexes the same kind of nodes: each has sources in both
    /// or in neither, the same kind of destinations and the same users' kind. An unchanged
    /// device is a destination or source of the same rules (membership is a property of the
    /// device and its owner). `None` otherwise, or when many nodes changed (each changed
    /// node's list is found by a binary search in every rule).
    fn patched_index(
        &self,
        rules: &[LoweredRule],
        kept: &[Option<NodeId>],
    ) -> Option<crate::pernode::ItemIndex> {
        let alike = self.rules.len() == rules.len()
            && self.rules.iter().zip(rules).all(|(a, b)| {
                a.sources.is_empty() == b.sources.is_empty()
                    && a.localpart == b.localpart
                    && std::mem::discriminant(&a.dst) == std::mem::discriminant(&b.dst)
            });
        if !alike {
            return None;
        }
        self.by_node.patched_with(kept, |id| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.indexes(id))
                .map(|(i, _)| index(i))
                .collect()
        })
    }

    /// The nodes whose SSH rules name node `id` among their principals (it is a source of
    /// the rule) or among their session recorders, or `None` when that may be any node (a
    /// rule to every node, or with `localpart:` users, whose sources also receive it).
    pub(crate) fn naming_source(&self, table: &NodeTable, id: NodeId) -> Option<Vec<NodeId>> {
        let node = table.get(id)?;
        let mut out = Vec::new();
        for rule in self.rules.iter() {
            let source = rule.sources.binary_search(&id).is_ok();
            // A session recorder's address is in the action of every rule recording to it,
            // on every node the rule reaches.
            let records = !rule.sources.is_empty() && rule.recorders.binary_search(&id).is_ok();
            if !source && !records {
                continue;
            }
            if rule.localpart {
                return None;
            }
            match &rule.dst {
                Destinations::All => return None,
                Destinations::Some(ids) => out.extend_from_slice(ids),
                Destinations::None => {}
            }
            if rule.self_dst {
                // Recording to it: every source user's devices.
                if records {
                    return None;
                }
                if let Some(devices) = node.owner.and_then(|u| table.devices.get(u.index())) {
                    out.extend_from_slice(devices);
                }
            }
        }
        Some(out)
    }

    /// What this lowering, patched from `old` ([`patch::Patch`]), changed for the nodes
    /// that did not change: the moved rules that give each destination one piece, the same
    /// for all (neither `localpart:` users nor `autogroup:self`; a node's SSH fingerprint
    /// moves by that piece's change, [`SshLowered::visit_piece`]), and the nodes whose rules
    /// must be hashed again (those other moved rules reach: destinations, with `localpart:`
    /// users the sources, with `autogroup:self` the devices of the users whose list changed).
    /// `None` when not patched, or when a moved rule reaches every node.
    pub(crate) fn moves(
        &self,
        old: &SshLowered,
        table: &NodeTable,
    ) -> Option<(Vec<u32>, Vec<NodeId>)> {
        let moved = self.moved.as_ref()?;
        let (mut simple, mut again) = (Vec::new(), Vec::new());
        for &i in moved {
            let rule = self.rules.get(i as usize)?;
            let was = old.rules.get(i as usize)?;
            let dst = match &rule.dst {
                Destinations::All => return None,
                Destinations::Some(ids) => &ids[..],
                Destinations::None => &[],
            };
            if !rule.localpart && !rule.self_dst {
                simple.push(i);
                continue;
            }
            again.extend_from_slice(dst);
            if rule.localpart {
                again.extend_from_slice(&rule.sources);
            }
            if rule.self_dst {
                // Only the users whose lists were built again can differ: the others' were
                // taken (walking every user's list of every moved self rule, by hash, was
                // 3 % of a member join on `large`).
                let alike =
                    |user: UserId| same_user_lists(rule.user_sources(user), was.user_sources(user));
                debug_assert!(
                    rule.by_user
                        .iter()
                        .chain(was.by_user.iter())
                        .map(|s| s.user)
                        .filter(|u| self.moved_users.binary_search(u).is_err())
                        .all(alike),
                    "an SSH rule's list of an untouched user moved"
                );
                for &user in &self.moved_users {
                    if !alike(user) {
                        if let Some(devices) = table.devices.get(user.index()) {
                            again.extend_from_slice(devices);
                        }
                    }
                }
            }
        }
        again.sort_unstable();
        again.dedup();
        Some((simple, again))
    }

    /// The piece rule `i` (neither `localpart:` users nor `autogroup:self`) gives each of
    /// its destinations, when it has sources.
    pub(crate) fn visit_piece(&self, i: u32, out: &mut impl SshSink) {
        if let Some(rule) = self.rules.get(i as usize).filter(|r| !r.sources.is_empty()) {
            rule.push(
                out,
                (&rule.all, Some(&rule.all_hash)),
                (&rule.users, &rule.rest_hash),
            );
        }
    }

    /// Rule `i`'s destinations other than `autogroup:self`'s, when they are some nodes.
    pub(crate) fn destinations(&self, i: u32) -> &[NodeId] {
        match self.rules.get(i as usize).map(|r| &r.dst) {
            Some(Destinations::Some(ids)) => ids,
            _ => &[],
        }
    }

    /// Node `id`'s SSH rules, in the order the node evaluates them.
    pub(crate) fn node_rules(&self, table: &NodeTable, id: NodeId) -> Vec<NodeSshRule> {
        let mut out: Vec<NodeSshRule> = Vec::new();
        self.visit_node_rules(table, id, &mut out);
        // Check rules first; the sort is stable, so policy order holds otherwise.
        out.sort_by_key(|r| !r.rule.action.is_check());
        out
    }

    /// Node `id`'s SSH rules, each handed to `sink` in policy order (before the check rules
    /// are put first): built by [`SshLowered::node_rules`], only hashed by the engine's
    /// fingerprints (no rule is copied).
    pub(crate) fn visit_node_rules(&self, table: &NodeTable, id: NodeId, out: &mut impl SshSink) {
        let Some(node) = table.get(id) else {
            return;
        };
        let listed = self.by_node.get(id.index());
        let mut candidates: Vec<u32> = listed.to_vec();
        candidates.extend_from_slice(&self.global);
        if !node.is_tagged() {
            candidates.extend_from_slice(&self.self_rules);
        }
        candidates.sort_unstable();
        candidates.dedup();
        for (i, rule) in candidates
            .iter()
            .filter_map(|&i| Some((i, self.rules.get(i as usize)?)))
        {
            if rule.sources.is_empty() {
                continue;
            }
            if rule.self_dst && !node.is_tagged() {
                if let Some(sources) = node.owner.and_then(|u| rule.user_sources(u)) {
                    rule.push_user(out, sources);
                }
            }
            if rule.dst.is_none() {
                continue;
            }
            // A node is listed under every rule it is a destination of (and, for `localpart:`
            // rules, every rule it is a source of): only those need the destinations searched.
            let is_dst = match &rule.dst {
                Destinations::Some(_) => {
                    listed.contains(i) && (!rule.localpart || rule.dst.contains(id))
                }
                other => other.contains(id),
            };
            if is_dst {
                if rule.localpart {
                    for sources in rule.by_user.iter() {
                        rule.push_user(out, sources);
                    }
                    if !rule.tagged.is_empty() {
                        rule.push(
                            out,
                            (&rule.tagged, Some(&rule.tagged_hash)),
                            (&rule.users, &rule.rest_hash),
                        );
                    }
                } else {
                    rule.push(
                        out,
                        (&rule.all, Some(&rule.all_hash)),
                        (&rule.users, &rule.rest_hash),
                    );
                }
            } else if rule.localpart && rule.sources.binary_search(&id).is_ok() {
                // A source device outside the destinations still gets the rule, scoped to
                // its own user (or, for a tagged device, to itself).
                if node.is_tagged() {
                    let own: Arc<[SshPrincipal]> = Arc::from(principals_of(node));
                    rule.push(out, (&own, None), (&rule.users, &rule.rest_hash));
                } else if let Some(sources) = node.owner.and_then(|u| rule.user_sources(u)) {
                    rule.push_user(out, sources);
                }
            }
        }
    }
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
fn localpart_map(login: &str, domains: &[String]) -> Option<Arc<BTreeMap<String, String>>> {
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
fn per_user_sources(
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
struct Shape {
    dst: Destinations,
    self_dst: bool,
    /// Source devices, ascending.
    sources: Arc<[NodeId]>,
    /// The sources with how often the control plane lists each, when found with them.
    counts: Option<Vec<(NodeId, usize)>>,
}

impl Shape {
    /// Every selector of `rule` resolved; the sources those `gate` admits. Selectors
    /// written as an earlier rule's are that rule's lists (`lists`).
    fn resolved(
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
fn tag_count(table: &NodeTable, per_tag: bool, id: NodeId) -> usize {
    match per_tag && table.tagged.binary_search(&id).is_ok() {
        true => table.get(id).map_or(1, |n| n.tags.len().max(1)),
        false => 1,
    }
}

/// The principals of the tagged sources among `counts`, each as often as it is counted.
fn tagged_principals(table: &NodeTable, counts: &[(NodeId, usize)]) -> Vec<SshPrincipal> {
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
fn principals_of(node: &NodeInfo) -> Vec<SshPrincipal> {
    node.texts
        .iter()
        .map(|t| SshPrincipal::from_node_ip(t.clone()))
        .collect()
}

/// The source devices of a rule, sorted, each with how often the control plane lists it:
/// `autogroup:tagged` lists a device once per tag it carries; otherwise once.
fn source_counts(
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
fn highest_counts(mut counts: Vec<(NodeId, usize)>) -> Vec<(NodeId, usize)> {
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
fn source_nodes(table: &NodeTable, target: &Target) -> Vec<NodeId> {
    match target {
        Target::Wildcard | Target::DangerAll => (0..table.len()).map(NodeId::new).collect(),
        Target::Nodes(ids) => ids.to_vec(),
        Target::Literal(lit) => table.addressed_in(&lit.set),
        Target::Internet | Target::SelfDevices => Vec::new(),
    }
}

fn destination_nodes(table: &NodeTable, target: &Target) -> Destinations {
    match target {
        Target::Wildcard | Target::DangerAll => Destinations::All,
        other => Destinations::Some(Arc::from(source_nodes(table, other))),
    }
}

fn union(a: Destinations, b: Destinations) -> Destinations {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Differential: the sorted merge equals the highest count per node kept in a map.
        #[test]
        fn highest_counts_equal_a_map(
            runs in proptest::collection::vec(
                proptest::collection::vec((0usize..50, 1usize..4), 0..30),
                0..4,
            ),
            sort_runs in any::<bool>(),
        ) {
            let mut counts = Vec::new();
            let mut simple: BTreeMap<NodeId, usize> = BTreeMap::new();
            for run in &runs {
                let mut run: Vec<(NodeId, usize)> =
                    run.iter().map(|&(id, c)| (NodeId::new(id), c)).collect();
                if sort_runs {
                    run.sort_unstable();
                }
                for &(id, c) in &run {
                    let entry = simple.entry(id).or_insert(0);
                    *entry = (*entry).max(c);
                }
                counts.extend(run);
            }
            let expected: Vec<(NodeId, usize)> = simple.into_iter().collect();
            prop_assert_eq!(highest_counts(counts), expected);
        }
    }
}
