//! Alias resolution: each selector of the policy (user, group, tag, host, address, ipset,
//! autogroup) becomes a [`Target`] once per compile, shared (`Arc`) by every rule and node
//! that uses it.

use std::sync::Arc;

use aclc_policy::model::{Alias, Autogroup, HostAddress, Policy, PolicyIndex, Selector};

use crate::addrset::{net_wire, AddrSet, INTERNET_WIRE};
use crate::inventory::Role;
use crate::nodes::{NodeId, NodeInfo, NodeTable, UserId};
use crate::Text;

/// What a selector stands for. Equality and hashing are by content (node ids are positions
/// in the node table, so they compare across compiles of the same inventory).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Devices by identity. `ids` must be sorted without repeats: membership is a binary
    /// search, and a broken order would quietly change who a rule admits.
    pub(crate) fn nodes(ids: Vec<NodeId>) -> Target {
        // `Arc<[_]>` from a vector copies it as from a slice.
        Target::nodes_of(&ids)
    }

    /// [`Target::nodes`] of a list held elsewhere, copied once (not into a vector first).
    pub(crate) fn nodes_of(ids: &[NodeId]) -> Target {
        debug_assert!(
            ids.windows(2).all(|w| matches!(w, [a, b] if a < b)),
            "node ids of a target must be sorted and distinct"
        );
        Target::Nodes(Arc::from(ids))
    }

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
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Literal {
    /// One piece per prefix or range, each with its wire text.
    pub(crate) pieces: Vec<Piece>,
    /// All pieces together.
    pub(crate) set: AddrSet,
}

/// One prefix or range of a [`Literal`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Piece {
    /// How `SrcIPs` and `DstPorts` spell it: bare address, CIDR or `first-last`.
    pub(crate) text: Text,
    /// Its addresses.
    pub(crate) set: AddrSet,
    /// True when it lies inside `autogroup:internet`: exit nodes then carry its traffic.
    pub(crate) public: bool,
}

impl Literal {
    fn single(text: String, set: AddrSet, internet: &AddrSet) -> Literal {
        Literal {
            pieces: vec![Piece {
                text: Text::from(text),
                public: set.is_subset_of(internet),
                set: set.clone(),
            }],
            set,
        }
    }

    /// Every range of `set` as its own piece.
    pub(crate) fn from_set(set: AddrSet, internet: &AddrSet) -> Literal {
        let pieces = set
            .to_wire()
            .into_iter()
            .filter_map(|text| {
                let piece = crate::addrset::parse_wire(&text)?;
                Some(Piece {
                    text: Text::from(text),
                    public: piece.is_subset_of(internet),
                    set: piece,
                })
            })
            .collect();
        Literal { pieces, set }
    }

    /// The pieces lying inside `autogroup:internet`, together.
    pub(crate) fn public_part(&self) -> AddrSet {
        AddrSet::union_of(self.pieces.iter().filter(|p| p.public).map(|p| &p.set))
    }
}

/// Resolves selectors against a node table, caching each distinct alias.
pub(crate) struct Resolver<'a> {
    /// The policy's definitions by name.
    index: PolicyIndex<'a>,
    table: &'a NodeTable,
    cache: crate::hash::Map<Alias, Target>,
    internet: AddrSet,
    /// The policy is the one the table is compiled with: groups' users are read from and
    /// kept in [`NodeTable::group_users`] (a resolver of another policy, as a test or a
    /// question may make, neither reads nor fills it).
    compiling: bool,
    /// An earlier compile's resolutions, carried to this table ([`Resolver::carry`]).
    carried: Option<Carried<'a>>,
}

/// A resolver's aliases from the compile of the same policy on an earlier table, where only
/// some nodes changed: a user-like alias that held none of them before and holds none now
/// holds the same nodes, whose ids are translated instead of gathered from every user's
/// devices again (the largest part of resolving on a node event on `large`).
pub(crate) struct Carried<'a> {
    /// The earlier resolutions.
    pub(crate) cache: &'a crate::hash::Map<Alias, Target>,
    /// Earlier node ids to this table's ([`crate::nodes::translate_ids`]).
    pub(crate) to_new: Vec<u32>,
    /// The changed nodes' earlier ids (sorted).
    pub(crate) before: &'a [NodeId],
    /// Their ids here (sorted).
    pub(crate) after: &'a [NodeId],
}

impl<'a> Resolver<'a> {
    /// A resolver for one compile (indexing the policy's definitions: linear in their number).
    pub(crate) fn new(policy: &'a Policy, table: &'a NodeTable) -> Resolver<'a> {
        Resolver {
            index: policy.index(),
            table,
            cache: crate::hash::Map::default(),
            internet: AddrSet::from_wire(INTERNET_WIRE),
            compiling: false,
            carried: None,
        }
    }

    /// A resolver for the compile of `policy` on `table` (the phases of a compile), which
    /// shares the groups' users with the compile's other resolvers.
    pub(crate) fn compiling(policy: &'a Policy, table: &'a NodeTable) -> Resolver<'a> {
        Resolver {
            compiling: true,
            ..Resolver::new(policy, table)
        }
    }

    /// Take user-like aliases from `carried` where the changed nodes are in them neither
    /// before nor after. Only for the same policy, on a table where every node but the
    /// changed ones has the same owner and tags (so the same memberships).
    pub(crate) fn carry(&mut self, carried: Carried<'a>) {
        // As many aliases as the earlier compile resolved: the memo is made at its size,
        // not grown by doubling (each growth hashed every alias again).
        self.cache.reserve(carried.cache.len());
        self.carried = Some(carried);
    }

    /// The resolutions made, by alias (what a later compile may carry).
    pub(crate) fn into_cache(self) -> crate::hash::Map<Alias, Target> {
        self.cache
    }

    /// `autogroup:internet`'s addresses.
    pub(crate) fn internet(&self) -> &AddrSet {
        &self.internet
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
        let target = self.compute(alias);
        self.cache.insert(alias.clone(), target.clone());
        target
    }

    fn compute(&self, alias: &Alias) -> Target {
        match alias {
            // Another tailnet's group or tag (declarative node sharing): aclc does not know
            // its devices, whatever this policy defines under that name or the inventory's
            // nodes carry.
            Alias::Group(name) | Alias::Tag(name) if is_external(name) => Target::empty(),
            Alias::Wildcard => Target::Wildcard,
            Alias::Autogroup(Autogroup::DangerAll) => Target::DangerAll,
            Alias::Autogroup(Autogroup::Internet) => Target::Internet,
            Alias::Autogroup(Autogroup::SelfDevices) => Target::SelfDevices,
            Alias::Autogroup(Autogroup::Tagged) => Target::nodes_of(&self.table.tagged),
            Alias::Tag(tag) => Target::nodes_of(self.table.with_tag(tag)),
            // An undefined host (validation refuses one) names no address: as a rule's source
            // or destination that only narrows what the rule allows. Inside an IP set, where
            // a `remove` would widen, it is an error instead (`crate::ipsets`).
            Alias::Host(name) => match self.index.host(name) {
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
                    let parts: Vec<AddrSet> =
                        svc.vips.iter().map(|vip| AddrSet::from_net(*vip)).collect();
                    let set = AddrSet::union_of(&parts);
                    Target::Literal(Arc::new(Literal::from_set(set, &self.internet)))
                }
                _ => Target::empty(),
            },
            // IP sets were resolved, exactly, before anything else (`crate::ipsets`): a
            // compile refuses a policy where one cannot be. A name missing here is undefined,
            // which as a rule's source or destination only narrows the rule.
            Alias::IpSet(name) => match self.table.ipsets.get(name) {
                Some(literal) => Target::Literal(literal.clone()),
                None => Target::empty(),
            },
            // Everything else is user-like; an alias that is not (none is left) stands for no
            // device, which narrows.
            _ => match self.users_of(alias) {
                Some(users) => match self.carried_devices(alias, &users) {
                    Some(ids) => {
                        debug_assert_eq!(
                            *ids,
                            *self.devices_of(&users),
                            "carried devices of {alias:?}"
                        );
                        Target::Nodes(ids)
                    }
                    None => Target::nodes(self.devices_of(&users)),
                },
                None => Target::empty(),
            },
        }
    }

    /// The devices of `users` (those of user-like `alias`) from the earlier resolution, when
    /// no changed node is among them before or after ([`Carried`]).
    fn carried_devices(&self, alias: &Alias, users: &[UserId]) -> Option<Arc<[NodeId]>> {
        let carried = self.carried.as_ref()?;
        let Some(Target::Nodes(old)) = carried.cache.get(alias) else {
            return None;
        };
        if crate::nodes::holds_any(old, carried.before) {
            return None;
        }
        let device_now = carried.after.iter().any(|&id| {
            self.table
                .get(id)
                .and_then(|n| n.owner)
                .is_some_and(|owner| users.contains(&owner))
        });
        if device_now {
            return None;
        }
        // Unchanged nodes keep their order (both tables sort by name). Made in place, at its
        // exact length (a map over a slice), not gathered in a vector and copied; a node the
        // translation drops (none should: no changed node is in the list) refuses the carry.
        let mut whole = true;
        let ids: Arc<[NodeId]> = old
            .iter()
            .map(|&id| {
                crate::nodes::translated(&carried.to_new, id).unwrap_or_else(|| {
                    whole = false;
                    id
                })
            })
            .collect();
        whole.then_some(ids)
    }

    /// The addresses of an IP set entry other than another IP set, or `None` when they cannot
    /// be known: an undefined host or group, or an alias that is not addresses (`*`,
    /// `autogroup:self`, `autogroup:danger-all`, an `ipset:` handled by the caller).
    pub(crate) fn entry_addresses(&self, alias: &Alias) -> Option<AddrSet> {
        match alias {
            Alias::Wildcard
            | Alias::IpSet(_)
            | Alias::Autogroup(Autogroup::SelfDevices | Autogroup::DangerAll) => None,
            // Another tailnet's devices: not known here, so not addresses a `remove` could
            // take away (refused).
            Alias::Group(name) | Alias::Tag(name) if is_external(name) => None,
            Alias::Autogroup(Autogroup::Internet) => Some(self.internet.clone()),
            Alias::Host(name) => self
                .index
                .host(name)
                .map(|host| AddrSet::from_net(host.address.value.to_net())),
            Alias::Group(name)
                if self.index.group(name).is_none()
                    && !aclc_policy::model::is_synced_group(name) =>
            {
                None
            }
            _ => match self.compute(alias) {
                Target::Literal(lit) => Some(lit.set.clone()),
                Target::Nodes(ids) => Some(AddrSet::from_ips(
                    ids.iter()
                        .filter_map(|&id| self.table.get(id))
                        .flat_map(NodeInfo::ips),
                )),
                Target::Wildcard | Target::DangerAll | Target::Internet | Target::SelfDevices => {
                    None
                }
            },
        }
    }

    /// The users a user-like alias stands for (`None` for other aliases).
    pub(crate) fn users_of(&self, alias: &Alias) -> Option<Vec<UserId>> {
        let all = || (0..self.table.users.len()).map(UserId::new);
        let users = match alias {
            Alias::User(email) => self.table.user(email).into_iter().collect(),
            Alias::UserDomain(domain) => {
                let domain = domain.to_lowercase();
                all()
                    .filter(|&u| {
                        self.table
                            .users
                            .get(u.index())
                            .and_then(|user| user.domain())
                            == Some(domain.as_str())
                    })
                    .collect()
            }
            Alias::Group(name) if is_external(name) => Vec::new(),
            Alias::Group(name) => {
                if !self.compiling {
                    return Some(self.group_members(name));
                }
                let cache = &self.table.group_users;
                let known = cache
                    .lock()
                    .ok()
                    .and_then(|map| map.get(name.as_str()).cloned());
                if let Some(users) = known {
                    return Some(users.to_vec());
                }
                let users = self.group_members(name);
                if let Ok(mut map) = cache.lock() {
                    map.insert(name.clone(), Arc::from(&users[..]));
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
                            .get(u.index())
                            .is_some_and(|user| user.roles.contains(&role))
                    })
                    .collect()
            }
            _ => return None,
        };
        Some(users)
    }

    /// The users of group `name`: its members', or, for a synced group the policy does not
    /// define, the inventory's.
    fn group_members(&self, name: &str) -> Vec<UserId> {
        let mut users = Vec::new();
        let defined = self.index.group(name);
        if defined.is_none() && aclc_policy::model::is_synced_group(name) {
            users.extend_from_slice(self.table.synced_group(name));
        }
        if let Some(group) = defined {
            for member in &group.members {
                let Ok(member) = Alias::parse(member.value.trim()) else {
                    continue;
                };
                // Groups do not nest; a group member naming a group is ignored, as is one
                // that names no user (both only narrow the group; validation refuses them).
                if !matches!(member, Alias::Group(_)) {
                    users.extend(self.users_of(&member).unwrap_or_default());
                }
            }
        }
        users
    }

    /// The untagged devices of some users, sorted (through a bit map when they are many:
    /// `autogroup:member`'s 75,000 on `large`, resolved again on every engine event).
    fn devices_of(&self, users: &[UserId]) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = users
            .iter()
            .filter_map(|&u| self.table.devices.get(u.index()))
            .flatten()
            .copied()
            .collect();
        crate::bits::sort_unique(&mut out, self.table.len());
        out
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

/// True for another tailnet's group or tag (`group://alias/name`, `tag://alias/name`).
fn is_external(name: &str) -> bool {
    aclc_policy::model::external_reference(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Inventory, Node, Tailnet, User};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Differential: a user-like alias' devices, through the bit map when they are many,
        /// are their users' untagged devices sorted without repeats.
        #[test]
        fn many_devices_are_sorted_users_devices(
            owners in proptest::collection::vec(0usize..5, 0..2500),
            group in proptest::collection::btree_set(0usize..5, 0..5),
        ) {
            let users: Vec<User> = (0..5)
                .map(|u| User {
                    id: u as u64 + 1,
                    name: format!("u{u}"),
                    email: format!("u{u}@example.com"),
                    roles: Vec::new(),
                    groups: Vec::new(),
                })
                .collect();
            let nodes: Vec<Node> = owners
                .iter()
                .enumerate()
                .map(|(i, &u)| Node {
                    // Names not in owner order, so each user's devices interleave.
                    name: format!("n{:05}", (i * 7919) % 100_000),
                    hostname: None,
                    user: (i % 9 != 0).then(|| format!("u{u}@example.com")),
                    tags: if i % 9 == 0 { vec!["tag:t".to_string()] } else { Vec::new() },
                    ipv4: Some(std::net::Ipv4Addr::from(0x6440_0000u32 + i as u32)),
                    ipv6: None,
                    routable_ips: Vec::new(),
                    approved_routes: Vec::new(),
                    posture: Default::default(),
                })
                .collect();
            let order = nodes.iter().map(|n| n.name.clone()).collect();
            let inventory = Inventory::new(users, nodes, order, Tailnet::default()).expect("inventory");
            let table = NodeTable::new(&inventory);
            let members: Vec<String> = group.iter().map(|u| format!("\"u{u}@example.com\"")).collect();
            let text = format!(r#"{{"groups": {{"group:g": [{}]}}}}"#, members.join(", "));
            let (_, parsed) = aclc_policy::parse_str("p.hujson", &text, &aclc_policy::Options::default());
            let policy = parsed.expect("policy").policy;
            let mut resolver = Resolver::new(&policy, &table);
            for (alias, users) in [
                (Alias::Autogroup(Autogroup::Member), (0..5).collect::<Vec<usize>>()),
                (Alias::Group("group:g".to_string()), group.iter().copied().collect()),
            ] {
                let mut expected: Vec<NodeId> = users
                    .iter()
                    .filter_map(|&u| table.devices.get(u))
                    .flatten()
                    .copied()
                    .collect();
                expected.sort_unstable();
                expected.dedup();
                prop_assert_eq!(resolver.resolve_alias(&alias), Target::nodes(expected));
            }
        }
    }
}
