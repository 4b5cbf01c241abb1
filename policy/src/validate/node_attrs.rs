//! Validation of `nodeAttrs`: targets, node attribute capabilities (app connectors) and
//! `ipPool` prefixes.

use super::{Place, Validator};
use crate::code::Code;
use crate::model::{Alias, Autogroup};

/// Prefixes nodeAttrs `ipPool` may not overlap: the ranges Tailscale's docs ("IP pool",
/// "Reserved IP addresses") list as unavailable for IP pools.
const RESERVED_POOLS: &[&str] = &["100.100.0.0/24", "100.100.100.0/24", "100.115.92.0/23"];

impl Validator<'_> {
    /// One nodeAttrs entry.
    pub(super) fn node_attr(&mut self, attr: &crate::model::NodeAttr) {
        for sel in &attr.target {
            match &sel.alias {
                Alias::Autogroup(Autogroup::SelfDevices) => self.error(
                    Code::InvalidTarget,
                    sel.span,
                    "autogroup:self cannot be used as a nodeAttrs target (Tailscale answers: internal server error)",
                    "name the devices with users, groups, tags or autogroup:member",
                ),
                Alias::Autogroup(a @ (Autogroup::Internet | Autogroup::DangerAll | Autogroup::Nonroot)) => self.error(
                    Code::InvalidTarget,
                    sel.span,
                    format!("{a} cannot be used as a nodeAttrs target"),
                    "name the devices with users, groups, tags or autogroups such as autogroup:member",
                ),
                Alias::Autogroup(Autogroup::Shared) | Alias::Service(_) | Alias::IpSet(_) => {
                    let what = match &sel.alias {
                        Alias::Autogroup(_) => "devices shared in from other tailnets, which this tailnet's attributes never reach",
                        Alias::Service(_) => "a Tailscale Service, not a device, so no device gets these attributes",
                        _ => "an IP set",
                    };
                    self.warning(
                        Code::UnverifiedTarget,
                        sel.span,
                        format!(
                            "{} as a nodeAttrs target names {what}; aclc cannot verify that Tailscale accepts it",
                            super::quote(&sel.text)
                        ),
                        "Tailscale's documentation names nodeAttrs targets by tag, user, group, autogroup or *",
                    );
                    self.reference(sel, Place::Target);
                }
                _ => self.reference(sel, Place::Target),
            }
        }
        self.capabilities(&attr.app, false);
        for connector in &attr.app_connectors {
            for sel in &connector.connectors {
                self.reference(sel, Place::Connector);
            }
        }
        for pool in &attr.ip_pool {
            self.ip_pool(pool);
        }
        if attr.attr.is_empty() && attr.app.is_empty() && attr.ip_pool.is_empty() {
            self.warning(
                Code::NodeAttrGivesNothing,
                attr.span,
                "this nodeAttrs entry gives its targets nothing: its attr, app and ipPool are \
                 empty or missing",
                "add the attributes (\"attr\": [\"funnel\"]), capabilities (\"app\") or \
                 address pool (\"ipPool\") the targets should get, or remove the entry",
            );
        }
    }

    /// One `ipPool` prefix: a pool inside a reserved range can never hand out an address and
    /// is refused (Tailscale's text); a pool that merely contains a reserved range is accepted
    /// with a warning that aclc cannot verify it (no capture shows one).
    fn ip_pool(&mut self, pool: &crate::model::Spanned<ipnet::IpNet>) {
        // Node addresses come from the CGNAT range: a pool elsewhere (or an IPv6 one) hands
        // out addresses no Tailscale node has (headscale refuses it; Tailscale's answer is
        // not captured).
        let cgnat: ipnet::IpNet = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(100, 64, 0, 0), 10)
            .map_or(pool.value, ipnet::IpNet::V4);
        if !cgnat.contains(&pool.value) {
            self.warning(
                Code::IpPoolOutsideCgnat,
                pool.span,
                format!(
                    "ipPool {} is outside 100.64.0.0/10, the CGNAT range Tailscale assigns node addresses from: aclc cannot verify that Tailscale accepts it",
                    pool.value
                ),
                "Tailscale pools IPv4 addresses from 100.64.0.0/10; pick the pool inside it",
            );
            return;
        }
        let reserved = || {
            RESERVED_POOLS
                .iter()
                .filter_map(|r| r.parse::<ipnet::IpNet>().ok())
        };
        if let Some(r) = reserved().find(|r| r.contains(&pool.value)) {
            self.error(
                Code::ReservedIpPool,
                pool.span,
                format!("IPPool({}): network within reserved range", pool.value),
                &format!("{r} is reserved by Tailscale; pick another part of 100.64.0.0/10"),
            );
            return;
        }
        let inside: Vec<String> = reserved()
            .filter(|r| pool.value.contains(r))
            .map(|r| r.to_string())
            .collect();
        if !inside.is_empty() {
            self.warning(
                Code::IpPoolContainsReserved,
                pool.span,
                if inside.len() == 1 {
                    format!(
                        "ipPool {} contains the reserved range {}: aclc cannot verify that \
                         Tailscale accepts it",
                        pool.value,
                        inside.join("")
                    )
                } else {
                    format!(
                        "ipPool {} contains the reserved ranges {}: aclc cannot verify that \
                         Tailscale accepts it",
                        pool.value,
                        and_list(&inside)
                    )
                },
                "Tailscale refuses a pool within a reserved range (\"network within reserved \
                 range\"); one that contains a reserved range is not known either way. Narrow \
                 the pool to leave the reserved ranges out",
            );
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}
