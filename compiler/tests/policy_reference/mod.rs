//! A policy-level reference evaluator for the differential test (`differential_policy.rs`):
//! does some `acls` or `grants` rule let this source address reach this destination address
//! with this protocol and port? It reads the typed policy (`aclc_policy::model::Policy`) and
//! the inventory directly and resolves every selector naively, per query, by membership:
//! no address sets, no sharing, no caching, no merging. Slow and obviously right.
//!
//! Modelled: `acls` (accept) and the `ip` part of `grants`; selectors `*`, users,
//! `user:*@domain`, groups (of users), tags, hosts, IPs, prefixes, ranges, IP sets (add and
//! remove, nested), `autogroup:member`, `autogroup:tagged`, `autogroup:danger-all`, and
//! `autogroup:self` as a destination. Subnet routes need nothing of their own: a prefix
//! destination holds a route's addresses whichever node serves the route.
//!
//! Not modelled (a policy using them is reported as [`Unmodelled`], and the test never
//! generates them): `via`, device posture (`srcPosture`, `defaultSrcPosture`),
//! `autogroup:internet` and exit nodes, Tailscale Services, the role autogroups
//! (`autogroup:admin`, ...), `autogroup:shared`, synced groups, and `cap:` sources. App
//! grants (`app`) grant no network access, which is modelled by ignoring them.
//!
//! `*` as a source is the tailnet's address space (`100.64.0.0/10` less the reserved
//! `100.115.92.0/23`, and `fd7a:115c:a1e0::/48`) plus the subnet routes nodes serve, as
//! Tailscale compiles it; as a destination it is every address. `autogroup:danger-all` is
//! every address on both sides.
//!
//! How a packet meets the rules is the Tailscale client's, applied to policy rules rather
//! than to its wire filter (`wgengine/filter/filter.go`): TCP, UDP and SCTP need the protocol
//! and the port; an ICMP echo request of the matching family needs only a rule from the
//! source to the destination, whatever its protocol and ports; any other protocol needs the
//! protocol and a destination with every port. A rule without a protocol (an ACL without
//! `proto`, a grant `ip` entry without one, `*`) covers TCP, UDP, ICMP and ICMPv6.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::net::IpAddr;

use aclc_compiler::{Inventory, Node};
use aclc_policy::model::{Alias, Autogroup, HostAddress, IpSetOp, Policy, PortRange, Selector};
use ipnet::IpNet;

/// The protocols a rule without one covers.
pub const DEFAULT_PROTOCOLS: [u8; 4] = [6, 17, 1, 58];

/// A policy feature the reference does not model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmodelled(pub String);

/// Which side of a rule a selector is on: `*` means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
}

/// One packet: the first of its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub port: u16,
}

/// The policy, the inventory, and nothing precomputed.
pub struct Reference<'a> {
    pub policy: &'a Policy,
    pub inventory: &'a Inventory,
}

/// One network permission as the policy writes it: sources, a destination, a protocol (or
/// none: the default set) and ports.
struct Permission<'a> {
    src: &'a [Selector],
    dst: &'a Selector,
    proto: Option<u8>,
    ports: Vec<PortRange>,
}

impl Reference<'_> {
    /// `Err` when the policy uses something the reference does not model.
    pub fn check_modelled(&self) -> Result<(), Unmodelled> {
        let p = self.policy;
        if !p.default_src_posture.is_empty() {
            return Err(Unmodelled("defaultSrcPosture".into()));
        }
        for acl in p.acls.iter().flat_map(|a| &a.value) {
            if !acl.src_posture.is_empty() {
                return Err(Unmodelled("srcPosture".into()));
            }
            self.selectors_modelled(acl.src.iter().chain(acl.dst.iter().map(|d| &d.target)))?;
        }
        for grant in p.grants.iter().flat_map(|g| &g.value) {
            if !grant.via.is_empty() {
                return Err(Unmodelled("via".into()));
            }
            if !grant.src_posture.is_empty() {
                return Err(Unmodelled("srcPosture".into()));
            }
            self.selectors_modelled(grant.src.iter().chain(&grant.dst))?;
        }
        Ok(())
    }

    fn selectors_modelled<'s>(
        &self,
        selectors: impl Iterator<Item = &'s Selector>,
    ) -> Result<(), Unmodelled> {
        self.selector_list_modelled(&selectors.collect::<Vec<_>>())
    }

    fn selector_list_modelled(&self, selectors: &[&Selector]) -> Result<(), Unmodelled> {
        for s in selectors {
            match &s.alias {
                Alias::Service(_) => return Err(Unmodelled(s.text.clone())),
                Alias::Autogroup(
                    Autogroup::Member
                    | Autogroup::Members
                    | Autogroup::Tagged
                    | Autogroup::DangerAll
                    | Autogroup::SelfDevices,
                ) => {}
                Alias::Autogroup(_) => return Err(Unmodelled(s.text.clone())),
                Alias::Group(name) if name.contains('@') => return Err(Unmodelled(s.text.clone())),
                Alias::IpSet(name) => {
                    for set in self.policy.ipsets.iter().filter(|d| d.name.value == *name) {
                        let entries: Vec<&Selector> =
                            set.entries.iter().map(|e| &e.target).collect();
                        self.selector_list_modelled(&entries)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Does the policy let `q` through?
    pub fn allows(&self, q: &Query) -> bool {
        if q.src.is_ipv4() != q.dst.is_ipv4() {
            return false;
        }
        let icmp_echo = (q.proto == 1 && q.src.is_ipv4()) || (q.proto == 58 && q.src.is_ipv6());
        self.permissions().any(|perm| {
            let protocols: Vec<u8> = match perm.proto {
                Some(p) => vec![p],
                None => DEFAULT_PROTOCOLS.to_vec(),
            };
            let protocol_and_port = if icmp_echo {
                true
            } else if matches!(q.proto, 6 | 17 | 132) {
                protocols.contains(&q.proto)
                    && perm
                        .ports
                        .iter()
                        .any(|r| r.first <= q.port && q.port <= r.last)
            } else {
                protocols.contains(&q.proto)
                    && perm.ports.iter().any(|r| r.first == 0 && r.last == 65535)
            };
            protocol_and_port
                && perm.src.iter().any(|s| self.holds(s, Side::Src, q.src))
                && self.reaches(perm.dst, q.src, q.dst)
        })
    }

    /// Every (sources, destination, protocol, ports) the policy's rules grant.
    fn permissions(&self) -> impl Iterator<Item = Permission<'_>> + '_ {
        let acls = self
            .policy
            .acls
            .iter()
            .flat_map(|a| &a.value)
            .flat_map(|acl| {
                acl.dst.iter().map(move |d| Permission {
                    src: &acl.src,
                    dst: &d.target,
                    proto: acl.proto.as_ref().map(|p| p.value.0),
                    ports: d.ports.clone(),
                })
            });
        let grants = self
            .policy
            .grants
            .iter()
            .flat_map(|g| &g.value)
            .flat_map(|grant| {
                grant.dst.iter().flat_map(move |dst| {
                    grant.ip.iter().map(move |ip| Permission {
                        src: &grant.src,
                        dst,
                        proto: ip.value.proto.map(|p| p.0),
                        ports: vec![ip.value.ports],
                    })
                })
            });
        acls.chain(grants)
    }

    /// Is `dst` a destination of `selector` for a packet from `src`? By address: a prefix
    /// naming a subnet route's addresses holds them whichever node serves the route.
    fn reaches(&self, selector: &Selector, src: IpAddr, dst: IpAddr) -> bool {
        match &selector.alias {
            // The same user's devices: source and destination are untagged nodes of one owner.
            Alias::Autogroup(Autogroup::SelfDevices) => {
                let owners = |addr: IpAddr| -> Vec<String> {
                    self.nodes_with(addr)
                        .filter(|n| !n.is_tagged())
                        .filter_map(|n| n.user.clone())
                        .collect()
                };
                let dst_owners = owners(dst);
                owners(src).iter().any(|o| dst_owners.contains(o))
            }
            _ => self.holds(selector, Side::Dst, dst),
        }
    }

    /// The nodes that have `addr` as their own address.
    fn nodes_with(&self, addr: IpAddr) -> impl Iterator<Item = &Node> + '_ {
        self.inventory
            .nodes()
            .iter()
            .map(|n| &**n)
            .filter(move |n| n.addresses().contains(&addr))
    }

    /// The untagged nodes of the users `is_user` picks contain `addr`.
    fn user_nodes_hold(&self, addr: IpAddr, is_user: impl Fn(&str) -> bool) -> bool {
        self.nodes_with(addr)
            .any(|n| !n.is_tagged() && n.user.as_deref().is_some_and(&is_user))
    }

    /// Does `selector`, on `side` of a rule, stand for `addr`?
    pub fn holds(&self, selector: &Selector, side: Side, addr: IpAddr) -> bool {
        self.alias_holds(&selector.alias, side, addr, 0)
    }

    fn alias_holds(&self, alias: &Alias, side: Side, addr: IpAddr, depth: usize) -> bool {
        assert!(depth < 64, "IP sets nest too deep: {alias:?}");
        match alias {
            Alias::Autogroup(Autogroup::DangerAll) => true,
            // `*` is every address as a destination, but only the tailnet's as a source.
            Alias::Wildcard if side == Side::Dst => true,
            Alias::Wildcard => {
                let tailnet = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"]
                    .iter()
                    .any(|n| n.parse::<IpNet>().unwrap().contains(&addr));
                let reserved = "100.115.92.0/23".parse::<IpNet>().unwrap().contains(&addr);
                let routed = self.inventory.nodes().iter().any(|n| {
                    n.served_routes()
                        .any(|r| r.prefix_len() > 0 && r.contains(&addr))
                });
                (tailnet && !reserved) || routed
            }
            Alias::User(email) => self.user_nodes_hold(addr, |u| u == email),
            Alias::UserDomain(domain) => self.user_nodes_hold(addr, |u| {
                u.rsplit_once('@')
                    .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
            }),
            Alias::Group(name) => {
                let members: Vec<&str> = self
                    .policy
                    .groups
                    .iter()
                    .filter(|g| g.name.value == *name)
                    .flat_map(|g| g.members.iter().map(|m| m.value.as_str()))
                    .collect();
                self.user_nodes_hold(addr, |u| members.contains(&u))
            }
            Alias::Tag(tag) => self.nodes_with(addr).any(|n| n.tags.contains(tag)),
            Alias::Autogroup(Autogroup::Member | Autogroup::Members) => {
                self.user_nodes_hold(addr, |_| true)
            }
            Alias::Autogroup(Autogroup::Tagged) => self.nodes_with(addr).any(Node::is_tagged),
            Alias::Host(name) => self
                .policy
                .hosts
                .iter()
                .filter(|h| h.name.value == *name)
                .any(|h| match h.address.value {
                    HostAddress::Ip(ip) => ip == addr,
                    HostAddress::Prefix(net) => net.contains(&addr),
                }),
            Alias::Ip(ip) => *ip == addr,
            Alias::Prefix(net) => net.contains(&addr),
            Alias::Range(first, last) => {
                first.is_ipv4() == addr.is_ipv4() && *first <= addr && addr <= *last
            }
            // Entries apply in order: the last one that names the address decides.
            Alias::IpSet(name) => {
                let mut inside = false;
                for set in self.policy.ipsets.iter().filter(|d| d.name.value == *name) {
                    for entry in &set.entries {
                        if self.alias_holds(&entry.target.alias, side, addr, depth + 1) {
                            inside = entry.op == IpSetOp::Add;
                        }
                    }
                }
                inside
            }
            // Out of scope (`check_modelled` refuses these policies).
            _ => false,
        }
    }
}
