//! Alias resolution: each selector of the policy (user, group, tag, host, address, ipset,
//! autogroup) becomes a [`Target`] once per compile, shared (`Arc`) by every rule and node
//! that uses it.

use std::collections::HashMap;
use std::sync::Arc;

use aclc_policy::model::{Alias, Autogroup, HostAddress, IpSetOp, Policy, Selector};

use crate::addrset::{net_wire, AddrSet, INTERNET_WIRE};
use crate::inventory::Role;
use crate::nodes::{NodeId, NodeInfo, NodeTable};

/// How deep `ipset:` definitions may refer to each other before resolution gives up (the
/// validator refuses cycles; this only guards against a policy that skipped validation).
const MAX_IPSET_DEPTH: usize = 16;

/// What a selector stands for.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `*`.
    Wildcard,
    /// `autogroup:danger-all`.
    DangerAll,
    /// `autogroup:internet`.
    Internet,
    /// `autogroup:self`.
    SelfDevices,
    /// Devices, by identity (users, groups, tags, role autogroups); sorted ids.
    Nodes(Arc<[NodeId]>),
    /// Addresses written in the policy (IPs, prefixes, ranges, hosts, ipsets).
    Literal(Arc<Literal>),
}

impl Target {
    /// A target matching nothing.
    pub(crate) fn empty() -> Target {
        Target::Nodes(Arc::from(Vec::new()))
    }

    /// True if `node` is in the target used as a source or as a `self`-narrowed source: one of
    /// its addresses is in it (`*` and `danger-all` contain every tailnet device).
    pub(crate) fn contains_node(&self, id: NodeId, node: &NodeInfo) -> bool {
        match self {
            Target::Wildcard | Target::DangerAll => true,
            Target::Internet | Target::SelfDevices => false,
            Target::Nodes(ids) => ids.binary_search(&id).is_ok(),
            Target::Literal(lit) => node.address_in(&lit.set),
        }
    }
}

/// Addresses from the policy text, as pieces that keep their wire spelling.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Literal {
    /// One piece per prefix or range, each with its wire text.
    pub(crate) pieces: Vec<Piece>,
    /// All pieces together.
    pub(crate) set: AddrSet,
}

/// One prefix or range of a [`Literal`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// How `SrcIPs` and `DstPorts` spell it: bare address, CIDR or `first-last`.
    pub(crate) text: Arc<str>,
    /// Its addresses.
    pub(crate) set: AddrSet,
    /// True when it lies inside `autogroup:internet`: exit nodes then carry its traffic.
    pub(crate) public: bool,
}

impl Literal {
    fn single(text: String, set: AddrSet, internet: &AddrSet) -> Literal {
        Literal {
            pieces: vec![Piece {
                text: Arc::from(text),
                public: set.is_subset_of(internet),
                set: set.clone(),
            }],
            set,
        }
    }

    /// Every range of `set` as its own piece.
    fn from_set(set: AddrSet, internet: &AddrSet) -> Literal {
        let pieces = set
            .to_wire()
            .into_iter()
            .filter_map(|text| {
                let piece = crate::addrset::parse_wire(&text)?;
                Some(Piece {
                    text: Arc::from(text),
                    public: piece.is_subset_of(internet),
                    set: piece,
                })
            })
            .collect();
        Literal { pieces, set }
    }

    /// The pieces lying inside `autogroup:internet`, together.
    pub(crate) fn public_part(&self) -> AddrSet {
        let mut out = AddrSet::new();
        for piece in self.pieces.iter().filter(|p| p.public) {
            out.add(&piece.set);
        }
        out
    }
}

/// Resolves selectors against a node table, caching each distinct alias.
pub(crate) struct Resolver<'a> {
    policy: &'a Policy,
    table: &'a NodeTable,
    cache: HashMap<Alias, Target>,
    internet: AddrSet,
}

impl<'a> Resolver<'a> {
    /// A resolver for one compile.
    pub(crate) fn new(policy: &'a Policy, table: &'a NodeTable) -> Resolver<'a> {
        Resolver {
            policy,
            table,
            cache: HashMap::new(),
            internet: AddrSet::from_wire(INTERNET_WIRE),
        }
    }

    /// What `selector` stands for.
    pub(crate) fn resolve(&mut self, selector: &Selector) -> Target {
        self.resolve_alias(&selector.alias)
    }

    /// What `alias` stands for.
    pub(crate) fn resolve_alias(&mut self, alias: &Alias) -> Target {
        if let Some(target) = self.cache.get(alias) {
            return target.clone();
        }
        let target = self.compute(alias, 0);
        self.cache.insert(alias.clone(), target.clone());
        target
    }

    fn compute(&self, alias: &Alias, depth: usize) -> Target {
        match alias {
            Alias::Wildcard => Target::Wildcard,
            Alias::Autogroup(Autogroup::DangerAll) => Target::DangerAll,
            Alias::Autogroup(Autogroup::Internet) => Target::Internet,
            Alias::Autogroup(Autogroup::SelfDevices) => Target::SelfDevices,
            Alias::Autogroup(Autogroup::Tagged) => {
                Target::Nodes(Arc::from(self.table.tagged.clone()))
            }
            Alias::Tag(tag) => Target::Nodes(Arc::from(self.table.with_tag(tag))),
            Alias::Host(name) => match self.policy.host(name) {
                Some(host) => {
                    Target::Literal(Arc::new(host_literal(host.address.value, &self.internet)))
                }
                None => Target::empty(),
            },
            Alias::Ip(ip) => Target::Literal(Arc::new(Literal::single(
                ip.to_string(),
                AddrSet::from_ip(*ip),
                &self.internet,
            ))),
            Alias::Prefix(net) => Target::Literal(Arc::new(Literal::single(
                net_wire(net),
                AddrSet::from_net(*net),
                &self.internet,
            ))),
            Alias::Range(first, last) => Target::Literal(Arc::new(Literal::from_set(
                AddrSet::from_range(*first, *last),
                &self.internet,
            ))),
            // A Tailscale Service: its virtual addresses, which its approved hosts serve as
            // routes. One the inventory does not know reaches nothing.
            Alias::Service(name) => match self.table.service(name) {
                Some(svc) if !svc.vips.is_empty() => {
                    let mut set = AddrSet::new();
                    for vip in &svc.vips {
                        set.add(&AddrSet::from_net(*vip));
                    }
                    Target::Literal(Arc::new(Literal::from_set(set, &self.internet)))
                }
                _ => Target::empty(),
            },
            Alias::IpSet(_) => match self.address_set(alias, depth) {
                Some(set) => Target::Literal(Arc::new(Literal::from_set(set, &self.internet))),
                None => Target::empty(),
            },
            _ => match self.users_of(alias) {
                Some(users) => Target::Nodes(Arc::from(self.devices_of(&users))),
                None => Target::empty(),
            },
        }
    }

    /// The users a user-like alias stands for (`None` for other aliases).
    pub(crate) fn users_of(&self, alias: &Alias) -> Option<Vec<u32>> {
        let all = || (0..self.table.users.len()).map(crate::nodes::index);
        let users = match alias {
            Alias::User(email) => self.table.user(email).into_iter().collect(),
            Alias::UserDomain(domain) => {
                let domain = domain.to_lowercase();
                all()
                    .filter(|&u| {
                        self.table
                            .users
                            .get(u as usize)
                            .and_then(|user| user.domain())
                            == Some(domain.as_str())
                    })
                    .collect()
            }
            Alias::Group(name) => {
                let mut users = Vec::new();
                let defined = self.policy.group(name);
                if defined.is_none() && aclc_policy::model::is_synced_group(name) {
                    users.extend_from_slice(self.table.synced_group(name));
                }
                if let Some(group) = defined {
                    for member in &group.members {
                        let Ok(member) = Alias::parse(member.value.trim()) else {
                            continue;
                        };
                        // Groups do not nest; a group member naming a group is ignored.
                        if !matches!(member, Alias::Group(_)) {
                            users.extend(self.users_of(&member).unwrap_or_default());
                        }
                    }
                }
                users
            }
            Alias::Autogroup(Autogroup::Member | Autogroup::Members) => all().collect(),
            Alias::Autogroup(Autogroup::Shared) => Vec::new(),
            Alias::Autogroup(group) if group.is_role() => {
                let role = match group {
                    Autogroup::Admin => Role::Admin,
                    Autogroup::Owner => Role::Owner,
                    Autogroup::NetworkAdmin => Role::NetworkAdmin,
                    Autogroup::ItAdmin => Role::ItAdmin,
                    Autogroup::BillingAdmin => Role::BillingAdmin,
                    _ => Role::Auditor,
                };
                all()
                    .filter(|&u| {
                        self.table
                            .users
                            .get(u as usize)
                            .is_some_and(|user| user.roles.contains(&role))
                    })
                    .collect()
            }
            _ => return None,
        };
        Some(users)
    }

    /// The untagged devices of some users, sorted.
    fn devices_of(&self, users: &[u32]) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = users
            .iter()
            .filter_map(|&u| self.table.devices.get(u as usize))
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The addresses an alias covers, for `ipset:` arithmetic (`None` when it has none).
    fn address_set(&self, alias: &Alias, depth: usize) -> Option<AddrSet> {
        if depth > MAX_IPSET_DEPTH {
            return None;
        }
        match alias {
            Alias::IpSet(name) => {
                let def = self.policy.ipset(name)?;
                let mut set = AddrSet::new();
                for entry in &def.entries {
                    let part = self
                        .address_set(&entry.target.alias, depth + 1)
                        .unwrap_or_default();
                    match entry.op {
                        IpSetOp::Add => set.add(&part),
                        IpSetOp::Remove => set.remove(&part),
                    }
                }
                Some(set)
            }
            Alias::Autogroup(Autogroup::Internet) => Some(self.internet.clone()),
            _ => match self.compute(alias, depth + 1) {
                Target::Literal(lit) => Some(lit.set.clone()),
                Target::Nodes(ids) => {
                    let mut set = AddrSet::new();
                    for node in ids.iter().filter_map(|&id| self.table.get(id)) {
                        for ip in node.ips() {
                            set.add(&AddrSet::from_ip(ip));
                        }
                    }
                    Some(set)
                }
                _ => None,
            },
        }
    }
}

/// A host alias' address: a single address stays bare, a prefix is spelled as its masked
/// CIDR (a `/32` host becomes a bare address, as Tailscale sends it).
fn host_literal(address: HostAddress, internet: &AddrSet) -> Literal {
    match address {
        HostAddress::Ip(ip) => Literal::single(ip.to_string(), AddrSet::from_ip(ip), internet),
        HostAddress::Prefix(net) => {
            Literal::single(net_wire(&net), AddrSet::from_net(net), internet)
        }
    }
}
