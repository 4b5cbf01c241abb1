//! The questions a control server asks besides "what does this node receive", answered by the
//! code that compiles (so an answer cannot disagree with what nodes get): may this node or
//! user apply a tag, is a route (or exit) auto-approved for a node, which nodes would lose an
//! approval under another policy, what SSH rule (and check period) applies to a login, which
//! rules allow a flow, and does a node's change require peers to be recomputed.

use std::collections::BTreeMap;

use aclc_policy::model::{Alias, Autogroup, CheckPeriod, GoDuration, Policy};
use aclc_policy::Span;
use ipnet::IpNet;

use super::{NodeRecord, Snapshot};
use crate::inventory::Role;
use crate::nodes::{NodeId, NodeTable, UserId};
use crate::policytest::{explain, Explanation, NetworkQuery, TestError};
use crate::resolve::Resolver;
use crate::routes::Approvers;

/// Who wants to apply a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagger {
    /// A user (by id), e.g. logging in a device with `--advertise-tags`.
    User(u64),
    /// A node (by id): its tags (tags own tags) or, for a user-owned node, its owner.
    Node(u64),
}

/// The SSH rule a destination applies to a login, as the destination evaluates its rules
/// (first rule admitting the source and mapping the login decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDecision {
    /// Accept, check or deny.
    pub action: SshOutcome,
    /// The deciding `ssh` rule (index in the policy's `ssh` list and its span); `None` when no
    /// rule matches (denied).
    pub rule: Option<(usize, Span)>,
    /// The local user the login maps to.
    pub local_user: Option<String>,
}

/// What the deciding SSH rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshOutcome {
    /// No rule matches, or the matching rule refuses (recording enforced, no recorder device).
    Denied,
    /// An accept rule.
    Accept,
    /// A check rule: the user must have re-authenticated within `period` (`checkPeriod`,
    /// 12 hours when the rule gives none).
    Check {
        /// How long a check holds.
        period: CheckPeriod,
    },
}

/// Why a node's change needs the peers of other nodes recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerReason {
    /// The node joins or leaves.
    Membership,
    /// Its name (peers are keyed by name) or addresses change.
    Identity,
    /// Its tags or owner change (the rules it is a source or destination of).
    Selectors,
    /// The subnet routes it serves change, or it is a route's server (or a Tailscale
    /// Service's host) going on- or offline (the route's primary may move).
    Router,
    /// The exit routes it serves change (`0.0.0.0/0`, `::/0`): it becomes or stops being an
    /// exit node, or exits to another family.
    Exit,
    /// It carries a tag named in some grant's `via` (it may become or stop being a via
    /// target).
    ViaTarget,
    /// Its posture changes and the policy gates rules on posture.
    Posture,
}

/// Twelve hours: Tailscale's check period when a check rule gives none.
const DEFAULT_CHECK_PERIOD: GoDuration = GoDuration(12 * 3600 * 1_000_000_000);

impl Snapshot {
    fn node_id(&self, id: u64) -> Option<NodeId> {
        self.compiled.table().id(self.names.name(id)?)
    }

    fn user_index(&self, id: u64) -> Option<UserId> {
        let i = self.inventory.users().iter().position(|u| u.id == id)?;
        Some(UserId::new(i))
    }

    /// May `who` apply `tag`? Only a tag `tagOwners` defines can be applied; its owners are
    /// users, groups (policy or synced), autogroups (roles, `autogroup:member`) and tags (a
    /// node carrying an owning tag may apply it; `autogroup:tagged`, any tagged node). A
    /// user-owned node applies what its owner may apply. The tailnet's owner, admins and
    /// network admins may always apply a defined tag, as Tailscale's tags documentation says
    /// ("Owner, Admin, or Network admin can apply any tag, even if they don't own the
    /// tag"). Tag names are compared in lowercase, as Tailscale reads them.
    pub fn may_apply_tag(&self, who: Tagger, tag: &str) -> bool {
        let tag = aclc_policy::model::canonical_tag(tag);
        let Some(def) = self.policy.tag_owners.iter().find(|d| d.tag.value == tag) else {
            return false;
        };
        let table = self.compiled.table();
        let resolver = Resolver::new(&self.policy, table);
        let (user, tags): (Option<UserId>, Vec<&str>) = match who {
            Tagger::User(id) => (self.user_index(id), Vec::new()),
            Tagger::Node(id) => {
                let Some(node) = self.node_id(id).and_then(|n| table.get(n)) else {
                    return false;
                };
                (node.owner, node.tags.iter().map(|t| &**t).collect())
            }
        };
        let is_admin = user
            .and_then(|u| table.users.get(u.index()))
            .is_some_and(|u| {
                u.roles
                    .iter()
                    .any(|r| matches!(r, Role::Admin | Role::Owner | Role::NetworkAdmin))
            });
        if is_admin {
            return true;
        }
        def.owners.iter().any(|owner| match &owner.alias {
            Alias::Tag(t) => tags.contains(&t.as_str()),
            // Tagged devices (a user is not one, nor is a user-owned node).
            Alias::Autogroup(Autogroup::Tagged) => !tags.is_empty(),
            alias => user.is_some_and(|u| {
                resolver
                    .users_of(alias)
                    .is_some_and(|users| users.contains(&u))
            }),
        })
    }

    /// Would `autoApprovers` approve `route` for node `node` were it advertised (`0.0.0.0/0`
    /// or `::/0` asks about `exitNode`)? The policy's approvers, as the compile applies them.
    pub fn auto_approves(&self, node: u64, route: &IpNet) -> bool {
        let Some(id) = self.node_id(node) else {
            return false;
        };
        Approvers::new(&self.policy, self.compiled.table()).approves(id, &route.trunc())
    }

    /// The routes node `node` advertises that `autoApprovers` approves, in advertised order.
    pub fn auto_approved(&self, node: u64) -> Vec<IpNet> {
        let table = self.compiled.table();
        let Some(id) = self.node_id(node) else {
            return Vec::new();
        };
        let approvers = Approvers::new(&self.policy, table);
        advertised_approved(table, &approvers, id)
    }

    /// The approvals `autoApprovers` gives now and would no longer give under `policy`, per
    /// node id: what each node would lose with [`super::ApprovalMode::Derived`]. Routes the
    /// node's record approves (by an admin, or stored) are never lost. With
    /// [`super::ApprovalMode::Stored`] every auto-approval given is in the record, as in
    /// Tailscale, which never takes one back: no policy makes a node lose one, and the answer
    /// is empty (ask [`Snapshot::auto_approves`] of a snapshot under the new policy for what
    /// it would approve).
    pub fn approvals_lost(&self, policy: &Policy) -> BTreeMap<u64, Vec<IpNet>> {
        let old_table = self.compiled.table();
        let old = Approvers::new(&self.policy, old_table);
        let mut new_table = NodeTable::new(&self.inventory);
        new_table.ipsets =
            crate::ipsets::resolve(policy, &new_table, &crate::error::CompileLimits::default())
                .unwrap_or_default();
        let new = Approvers::new(policy, &new_table);
        let mut out = BTreeMap::new();
        for (id, name) in self.names.iter() {
            let (Some(a), Some(b)) = (old_table.id(name), new_table.id(name)) else {
                continue;
            };
            let Some(node) = old_table.get(a) else {
                continue;
            };
            let lost: Vec<IpNet> = advertised_approved(old_table, &old, a)
                .into_iter()
                .filter(|r| !node.approved.contains(r) && !new.approves(b, r))
                .collect();
            if !lost.is_empty() {
                out.insert(id, lost);
            }
        }
        out
    }

    /// The SSH rule destination `dst` applies when source node `src` logs in as `login`, and
    /// what it does (for a check rule, its check period).
    pub fn ssh_decision(&self, src: u64, dst: u64, login: &str) -> Option<SshDecision> {
        let table = self.compiled.table();
        let source = table.get(self.node_id(src)?)?;
        let addrs = source.ips();
        let rules = self.compiled.node_ssh_rules(self.node_id(dst)?);
        let login = crate::policytest::ssh_user(login);
        let denied = SshDecision {
            action: SshOutcome::Denied,
            rule: None,
            local_user: None,
        };
        for rule in rules {
            let admits = rule
                .rule
                .principals
                .iter()
                .any(|p| addrs.iter().any(|&ip| p.admits(ip, Some(login))));
            if !admits || !crate::policytest::maps_login(&rule.rule, login) {
                continue;
            }
            let policy_rule = self
                .policy
                .ssh
                .as_ref()
                .and_then(|s| s.value.get(rule.policy_index));
            let at = policy_rule.map(|r| (rule.policy_index, r.span));
            // A refusing rule refuses every login from its sources (`maps_login`).
            let local = crate::policytest::local_user(&rule.rule.ssh_users, login);
            // A rule that neither accepts, refuses nor checks refuses too (tailssh).
            let action = &rule.rule.action;
            let valid = action.accept || action.is_check();
            let Some(local) = local.filter(|_| !action.reject && valid) else {
                return Some(SshDecision { rule: at, ..denied });
            };
            let action = if rule.rule.action.is_check() {
                SshOutcome::Check {
                    period: policy_rule
                        .and_then(|r| r.check_period.as_ref())
                        .map_or(CheckPeriod::Every(DEFAULT_CHECK_PERIOD), |p| p.value),
                }
            } else {
                SshOutcome::Accept
            };
            return Some(SshDecision {
                action,
                rule: at,
                local_user: Some(local),
            });
        }
        Some(denied)
    }

    /// Which rules allow `proto` traffic (a test's `proto`; `None` is TCP or UDP) from node
    /// `src` to port `port` of node `dst`: the answer of `aclc explain`.
    pub fn explain_flow(
        &self,
        src: u64,
        dst: u64,
        port: u16,
        proto: Option<&str>,
    ) -> Option<Result<Explanation, TestError>> {
        let src = self.names.name(src)?;
        let dst = format!("{}:{port}", self.names.name(dst)?);
        Some(explain(
            &self.policy,
            &self.compiled,
            &NetworkQuery {
                src,
                dst: &dst,
                proto,
                src_posture_attrs: None,
            },
        ))
    }

    /// Why changing node `before` into `after` (`None`: it does not exist) needs other nodes'
    /// peers recomputed; empty when only its own map can change (a posture change under a
    /// policy without posture gates, a non-router going on- or offline, a new hostname).
    pub fn peer_impact(
        &self,
        before: Option<&NodeRecord>,
        after: Option<&NodeRecord>,
    ) -> Vec<PeerReason> {
        let (Some(b), Some(a)) = (before, after) else {
            return match (before, after) {
                (None, None) => Vec::new(),
                _ => vec![PeerReason::Membership],
            };
        };
        let mut out = Vec::new();
        if a.name != b.name || a.ipv4 != b.ipv4 || a.ipv6 != b.ipv6 {
            out.push(PeerReason::Identity);
        }
        if a.tags != b.tags || a.user != b.user {
            out.push(PeerReason::Selectors);
        }
        // The routes a record serves: approved in it, or auto-approved as it advertises them
        // (Tailscale approves a route the moment it is advertised, so a route new in `after`
        // that `autoApprovers` covers is served at once: it was answered "own map only"
        // while every peer gained it; found by a sweep of the questions). The approvers are
        // resolved for the node as the snapshot holds it (`before`): when `after` changes
        // its tags or owner they may approve otherwise, so each route it advertises counts
        // as served (peers are recomputed for the new selectors anyway).
        let table = self.compiled.table();
        let approvers = Approvers::new(&self.policy, table);
        let current = self.node_id(b.id);
        let same_selectors = a.tags == b.tags && a.user == b.user;
        let served = |n: &NodeRecord, exit: bool| -> Vec<IpNet> {
            n.advertised_routes
                .iter()
                .filter(|r| (r.prefix_len() == 0) == exit)
                .filter(|r| {
                    n.approved_routes.contains(r)
                        || match current {
                            Some(id) if same_selectors || std::ptr::eq(n, b) => {
                                approvers.approves(id, &r.trunc())
                            }
                            _ => true,
                        }
                })
                .copied()
                .collect()
        };
        let (subnets_b, subnets_a) = (served(b, false), served(a, false));
        // A Service's host serves its addresses as a router serves a route: going on- or
        // offline may move them to another host at every peer (found by the property test
        // that holds these answers to the engine's change sets).
        let hosts_service = self.names.name(b.id).is_some_and(|name| {
            self.inventory
                .services()
                .iter()
                .any(|s| s.hosts.iter().any(|h| h == name))
        });
        if subnets_b != subnets_a
            || ((!subnets_a.is_empty() || hosts_service) && a.online != b.online)
            || (!subnets_a.is_empty() && a.advertised_routes != b.advertised_routes)
        {
            out.push(PeerReason::Router);
        }
        // Which families it exits to, not only whether it is an exit node: a peer's
        // AllowedIPs list each of `0.0.0.0/0` and `::/0` it serves (one family dropped was
        // answered "own map only", and a server trusting it kept the dropped route at its
        // peers; found by a fail-open review).
        let exits = |n: &NodeRecord| {
            let mut routes = served(n, true);
            routes.sort_unstable();
            routes.dedup();
            routes
        };
        if exits(b) != exits(a) {
            out.push(PeerReason::Exit);
        }
        let via_tags: Vec<&str> = self
            .policy
            .grants
            .iter()
            .flat_map(|g| g.value.iter())
            .flat_map(|g| g.via.iter())
            .filter_map(|s| match &s.alias {
                Alias::Tag(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        if (!a.advertised_routes.is_empty() || !b.advertised_routes.is_empty())
            && a.tags
                .iter()
                .chain(&b.tags)
                .any(|t| via_tags.contains(&t.as_str()))
            && a != b
        {
            out.push(PeerReason::ViaTarget);
        }
        let gated = !self.policy.postures.is_empty() || !self.policy.default_src_posture.is_empty();
        if gated && a.posture != b.posture {
            out.push(PeerReason::Posture);
        }
        out
    }
}

/// The routes node `id` advertises that `approvers` approve, in advertised order.
fn advertised_approved(table: &NodeTable, approvers: &Approvers, id: NodeId) -> Vec<IpNet> {
    table.get(id).map_or_else(Vec::new, |node| {
        node.advertised
            .iter()
            .filter(|r| approvers.approves(id, r))
            .copied()
            .collect()
    })
}
