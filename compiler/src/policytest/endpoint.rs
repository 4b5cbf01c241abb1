//! What a test's `src` or destination names: devices of the tailnet (users, groups, tags,
//! autogroups of devices) or a single address (an IP, a host alias for one address).
//! Anything wider (`*`, prefixes, `autogroup:internet`) or unknown fails the assertion, as
//! it does on Tailscale.

use std::net::IpAddr;

use aclc_policy::model::{Alias, Autogroup, HostAddress, Policy, PolicyIndex};

use super::TestError;
use crate::addrset::AddrSet;
use crate::compiled::Compiled;
use crate::nodes::{NodeId, NodeTable};
use crate::resolve::{Resolver, Target};

/// A device a test starts from or aims at, or a bare address that belongs to no device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Device {
    /// The node, when the address is a node's.
    pub(super) node: Option<NodeId>,
    /// Its addresses (IPv4 first for a node).
    pub(super) addrs: Vec<IpAddr>,
}

/// Which end of a test an alias is on (for the messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// `src`.
    Source,
    /// A destination (`accept` / `deny` entry, SSH `dst`).
    Destination,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Source => "src",
            Side::Destination => "dst",
        }
    }

    fn unknown(self, why: String) -> TestError {
        match self {
            Side::Source => TestError::UnknownSource(why),
            Side::Destination => TestError::UnknownDestination(why),
        }
    }

    fn invalid(self, why: String) -> TestError {
        match self {
            Side::Source => TestError::InvalidSource(why),
            Side::Destination => TestError::InvalidDestination(why),
        }
    }

    fn nothing(self, why: String) -> TestError {
        match self {
            Side::Source => TestError::NoSourceDevices(why),
            Side::Destination => TestError::NoDestinationDevices(why),
        }
    }
}

/// `"text"`, escaped as everywhere in aclc (Go's `%q`).
pub(super) use aclc_policy::text::quote;

/// Resolves test aliases against a compiled tailnet.
pub(super) struct Endpoints<'a> {
    /// The policy's definitions by name, built once for every assertion.
    index: PolicyIndex<'a>,
    table: &'a NodeTable,
    resolver: Resolver<'a>,
    /// Judging the policy alone (no inventory): users and services, which only an
    /// inventory defines, resolve to no device instead of failing.
    policy_only: bool,
}

impl<'a> Endpoints<'a> {
    pub(super) fn new(policy: &'a Policy, compiled: &'a Compiled) -> Endpoints<'a> {
        let table = compiled.table();
        Endpoints {
            index: policy.index(),
            table,
            resolver: Resolver::new(policy, table),
            policy_only: false,
        }
    }

    /// True when judging the policy alone.
    pub(super) fn is_policy_only(&self) -> bool {
        self.policy_only
    }

    /// Endpoints that judge the policy alone ([`super::check_test_shapes`]).
    pub(super) fn policy_only(mut self, on: bool) -> Endpoints<'a> {
        self.policy_only = on;
        self
    }

    /// The policy's definitions by name.
    pub(super) fn index(&self) -> &PolicyIndex<'a> {
        &self.index
    }

    /// The node table.
    pub(super) fn table(&self) -> &'a NodeTable {
        self.table
    }

    /// The devices `text` (trimmed) stands for; never empty on success.
    pub(super) fn resolve(&mut self, text: &str, side: Side) -> Result<Vec<Device>, TestError> {
        let text = text.trim();
        let what = side.name();
        let alias = Alias::parse(text)
            .map_err(|_| side.invalid(format!("{what} {} is not a valid selector", quote(text))))?;
        let devices = match &alias {
            Alias::User(_) | Alias::Service(_) if self.policy_only => Vec::new(),
            Alias::User(email) => {
                if self.table.user(email).is_none() {
                    return Err(side.unknown(format!(
                        "{what} {} is not a user of the tailnet",
                        quote(text)
                    )));
                }
                self.nodes_of(&alias)
            }
            // Another tailnet's group or tag (declarative node sharing): its devices are not
            // known here, so it stands for none (a `deny` holds vacuously, with a warning).
            Alias::Group(name) | Alias::Tag(name)
                if aclc_policy::model::external_reference(name).is_some() =>
            {
                Vec::new()
            }
            Alias::Group(name) => {
                // A group synced from the identity provider is defined there: its members
                // come from the inventory (none listed: no devices).
                if self.index.group(name).is_none() && !aclc_policy::model::is_synced_group(name) {
                    return Err(side.unknown(format!("group {} is not defined", quote(name))));
                }
                self.nodes_of(&alias)
            }
            Alias::Tag(tag) => {
                if self.index.tag_owner(tag).is_none() {
                    return Err(
                        side.unknown(format!("tag {} is not defined in tagOwners", quote(tag)))
                    );
                }
                self.nodes_of(&alias)
            }
            // A known shared email domain is no tailnet's, as in the policy's own sections
            // ("must not be a known shared domain (such as `gmail.com`)").
            Alias::UserDomain(domain) if aclc_policy::model::is_shared_email_domain(domain) => {
                return Err(side.invalid(format!(
                    "{what} {}: {domain} is a shared email domain, which is not associated \
                     with any tailnet",
                    quote(text)
                )))
            }
            Alias::UserDomain(_) => self.nodes_of(&alias),
            Alias::Autogroup(group)
                if group.is_role()
                    || matches!(
                        group,
                        Autogroup::Member | Autogroup::Members | Autogroup::Tagged
                    ) =>
            {
                // Tailscale refuses an autogroup as a test's src ("unknown user or host",
                // tailscale/tailscale#12370; sshTests: #14102).
                if matches!(side, Side::Source) {
                    return Err(side.unknown(format!(
                        "{what} {}: unknown user or host (a test's src is a user, group, tag, \
                         host or address, not an autogroup)",
                        quote(text)
                    )));
                }
                self.nodes_of(&alias)
            }
            Alias::Autogroup(Autogroup::Internet) => {
                return Err(side.invalid(format!(
                    "{what} {} cannot be tested: tests cover the tailnet, not exit-node traffic",
                    quote(text)
                )))
            }
            Alias::Autogroup(Autogroup::SelfDevices) => {
                return Err(side.invalid(format!(
                    "{what} {} is not allowed in network tests",
                    quote(text)
                )))
            }
            Alias::Autogroup(_) => {
                return Err(side.invalid(format!("{what} {} is not a set of devices", quote(text))))
            }
            Alias::Host(name) => match self.index.host(name) {
                None => {
                    return Err(side.unknown(format!(
                        "{what} {} is not a user, group, tag or host alias",
                        quote(text)
                    )))
                }
                Some(host) => match host.address.value {
                    HostAddress::Ip(ip) => vec![self.address(ip)],
                    HostAddress::Prefix(net) => {
                        return Err(side.invalid(format!(
                            "host {} stands for the prefix {net}: a test needs a single address",
                            quote(name)
                        )))
                    }
                },
            },
            Alias::Ip(ip) => vec![self.address(*ip)],
            Alias::Prefix(_) | Alias::Range(..) | Alias::IpSet(_) => {
                return Err(side.invalid(format!(
                    "{what} {} is a range of addresses: a test needs a single address",
                    quote(text)
                )))
            }
            Alias::Wildcard => {
                return Err(side.invalid(format!(
                    "{what} \"*\" is not a device: name a user, group, tag, host or address"
                )))
            }
            // A Tailscale Service is reached at its virtual addresses (served by its hosts);
            // it never starts a connection.
            Alias::Service(name) if side == Side::Destination => match self.table.service(name) {
                None => {
                    return Err(side.unknown(format!(
                        "{what} {} is not a service of the inventory",
                        quote(text)
                    )))
                }
                Some(svc) => vec![Device {
                    node: None,
                    addrs: svc.vips.iter().map(ipnet::IpNet::addr).collect(),
                }],
            },
            Alias::Service(_) => {
                return Err(
                    side.invalid(format!("{what} {} is a service, not a device", quote(text)))
                )
            }
        };
        if devices.is_empty() {
            return Err(side.nothing(format!("{what} {} has no devices", quote(text))));
        }
        Ok(devices)
    }

    /// The devices of a user-, group-, tag- or autogroup-like alias.
    fn nodes_of(&mut self, alias: &Alias) -> Vec<Device> {
        match self.resolver.resolve_alias(alias) {
            Target::Nodes(ids) => ids.iter().filter_map(|&id| self.device(id)).collect(),
            _ => Vec::new(),
        }
    }

    /// Node `id` as a device.
    pub(super) fn device(&self, id: NodeId) -> Option<Device> {
        let node = self.table.get(id)?;
        Some(Device {
            node: Some(id),
            addrs: node.ips(),
        })
    }

    /// A single address, attached to the node that has it (if any).
    fn address(&self, ip: IpAddr) -> Device {
        Device {
            node: self
                .table
                .addressed_in(&AddrSet::from_ip(ip))
                .first()
                .copied(),
            addrs: vec![ip],
        }
    }
}
