//! The fast matcher: interval tables per address family, rule sets intersected per lookup.
//!
//! For each family the build cuts the address space at every boundary of every source network
//! and records, per run, the set of rules whose sources contain it (`src`); it does the same
//! for destinations and the local networks, recording per run a *slot* (`dst`): not local, or
//! local with its port table (port runs, each with the set of rules open on those ports), the
//! rules with any port open there (for ICMP), and the rules with all ports open (for other
//! protocols). Protocols map to the set of rules listing them. A lookup is then two interval
//! lookups, one port lookup and the lowest common index of three interned sets; `cap:` rules,
//! usually few, are tried in order below that index. See `INTERNALS.md`.
//!
//! This module holds the tables and the lookups; `build.rs` builds the tables.

mod build;

use std::net::IpAddr;

use super::intervals::{IntervalMap, Key};
use super::parse::CapEntry;
use super::sets::{RuleSets, SetId, EMPTY};
use super::{
    path, Addr, Allow, AppCapabilities, CapabilityLookup, FilterProblem, Flow, FlowFilter, Path,
    Refusal, RuleMatch, Verdict,
};

/// The fast matcher. Build it once per filter; it is immutable and `Send + Sync`, and
/// [`Matcher::check`] does not allocate.
#[derive(Debug, Clone)]
pub struct Matcher {
    v4: Family<u32>,
    v6: Family<u128>,
    sets: RuleSets,
    /// Protocol number -> the rules listing it.
    protos: Box<[SetId]>,
    /// The `cap:` names of every rule, back to back.
    cap_names: Box<[Box<str>]>,
    /// (rule, its application capability grants), by rule.
    grants: Box<[(u32, Box<[CapEntry]>)]>,
    rule_count: usize,
    source_entries: usize,
    problems: Box<[FilterProblem]>,
}

/// The tables of one address family.
#[derive(Debug, Clone)]
struct Family<K> {
    /// Address -> the rules with a source of this family containing it.
    src: Sources<K>,
    /// Address -> slot; slot 0 is "not local".
    dst: IntervalMap<K>,
    slots: Box<[Slot]>,
    /// Rules with `cap:` sources and a destination of this family, by rule index.
    cap_rules: Box<[CapRule]>,
    /// Address -> the rules with capability grants and a source of this family containing it.
    grant_src: Sources<K>,
}

/// The source side of one family: single addresses, looked up exactly, with their full rule
/// sets (including the wide networks around them), and the wide networks (CIDRs, ranges, `*`)
/// as runs. Filters list mostly single addresses; keeping them as points costs one entry each
/// instead of two runs (the address and the return to what surrounds it).
#[derive(Debug, Clone)]
struct Sources<K> {
    hosts: IntervalMap<K>,
    nets: IntervalMap<K>,
}

impl<K: Key> Sources<K> {
    #[inline]
    fn get(&self, addr: K) -> SetId {
        match self.hosts.get_exact(addr) {
            Some(set) => set,
            None => self.nets.get(addr),
        }
    }

    fn runs(&self) -> usize {
        self.hosts.runs() + self.nets.runs()
    }

    fn heap_bytes(&self) -> usize {
        self.hosts.heap_bytes() + self.nets.heap_bytes()
    }
}

/// What a local destination run allows.
#[derive(Debug, Clone)]
struct Slot {
    /// Port -> rules open on it, whatever their protocols.
    ports: IntervalMap<u32>,
    /// The same restricted to rules listing TCP, and UDP: the common flows need no protocol
    /// set then, and intersect two sets instead of three.
    tcp: IntervalMap<u32>,
    udp: IntervalMap<u32>,
    /// Rules with a destination here, whatever the ports (the ICMP rule).
    any_port: SetId,
    /// Rules with a destination here whose ports are exactly 0-65535 (other protocols).
    all_ports: SetId,
}

impl Slot {
    fn not_local() -> Slot {
        Slot {
            ports: IntervalMap::new([]),
            tcp: IntervalMap::new([]),
            udp: IntervalMap::new([]),
            any_port: EMPTY,
            all_ports: EMPTY,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.ports.heap_bytes() + self.tcp.heap_bytes() + self.udp.heap_bytes()
    }
}

/// Per-rule protocol flags for the TCP and UDP port tables.
const LISTS_TCP: u8 = 1;
const LISTS_UDP: u8 = 2;

#[derive(Debug, Clone, Copy)]
struct CapRule {
    rule: u32,
    names_start: u32,
    names_len: u32,
}

/// Sizes of a built [`Matcher`], for capacity planning and the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MatcherStats {
    /// Rules in the filter.
    pub rules: usize,
    /// Source networks over all rules (`*` counts twice).
    pub source_entries: usize,
    /// Runs in the two source tables.
    pub source_runs: usize,
    /// Runs in the two destination tables.
    pub destination_runs: usize,
    /// Distinct rule sets.
    pub rule_sets: usize,
    /// Heap bytes held by the matcher (problems excluded).
    pub heap_bytes: usize,
}

impl Matcher {
    /// Verdict for a flow, with no source holding any capability.
    #[inline]
    pub fn check(&self, flow: &Flow) -> Verdict {
        self.check_with(flow, &super::NoCapabilities)
    }

    /// Verdict for a flow, with `cap:` sources resolved through `capabilities`.
    #[inline]
    pub fn check_with<C: CapabilityLookup + ?Sized>(
        &self,
        flow: &Flow,
        capabilities: &C,
    ) -> Verdict {
        // The pre-checks of `super::pre_check`, on integers.
        if flow.proto == 0 || flow.proto == 255 {
            return match (flow.src, flow.dst) {
                (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                    Verdict::Refuse(Refusal::UnknownProtocol)
                }
                _ => Verdict::Refuse(Refusal::MixedFamilies),
            };
        }
        match (flow.src, flow.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let dst = u32::from(dst);
                if let Some(refusal) = special_v4(dst) {
                    return Verdict::Refuse(refusal);
                }
                self.check_in(&self.v4, u32::from(src), dst, flow, capabilities)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let dst = u128::from(dst);
                let special = if dst >> 120 == 0xff {
                    Some(Refusal::Multicast)
                } else if dst >> 118 == 0xfe80 >> 6 {
                    Some(Refusal::LinkLocal)
                } else if dst >> 32 == 0xffff {
                    // IPv4-mapped: Go's predicates look at the IPv4 address, and the metadata
                    // exception holds only for the plain IPv4 address.
                    match special_v4(dst as u32) {
                        None if dst as u32 == METADATA => Some(Refusal::LinkLocal),
                        other => other,
                    }
                } else {
                    None
                };
                if let Some(refusal) = special {
                    return Verdict::Refuse(refusal);
                }
                self.check_in(&self.v6, u128::from(src), dst, flow, capabilities)
            }
            _ => Verdict::Refuse(Refusal::MixedFamilies),
        }
    }

    #[inline]
    fn check_in<K: Key, C: CapabilityLookup + ?Sized>(
        &self,
        family: &Family<K>,
        src: K,
        dst: K,
        flow: &Flow,
        capabilities: &C,
    ) -> Verdict {
        // Both table walks first, so that their loads overlap.
        let slot_id = family.dst.get(dst);
        let sources = family.src.get(src);
        let slot = match family.slots.get(slot_id as usize) {
            Some(slot) if slot_id != 0 => slot,
            _ => return Verdict::Refuse(Refusal::NotLocal),
        };
        let found = match path(flow) {
            Path::Stateless(allow) => return Verdict::Allow(allow),
            Path::Full => {
                // `ports` holds the rules open on the port for the protocol, except for
                // protocols other than TCP and UDP, where `protos` still has to be met.
                let port = u32::from(flow.dst_port);
                let (ports, protos) = match flow.proto {
                    super::proto::TCP => (slot.tcp.get(port), None),
                    super::proto::UDP => (slot.udp.get(port), None),
                    other => (slot.ports.get(port), Some(self.proto_set(other))),
                };
                if ports == EMPTY || protos == Some(EMPTY) {
                    return Verdict::Refuse(Refusal::NoRule);
                }
                let by_address = match protos {
                    None => self.sets.first_common2(sources, ports),
                    Some(protos) => self.sets.first_common3(sources, protos, ports),
                };
                let by_capability =
                    self.first_cap_rule(family, by_address, flow.src, capabilities, |rule| {
                        self.sets.contains(ports, rule)
                            && protos.is_none_or(|protos| self.sets.contains(protos, rule))
                    });
                match (by_capability, by_address) {
                    (Some(rule), _) => Some((rule, RuleMatch::Capability)),
                    (None, Some(rule)) => Some((rule, RuleMatch::Address)),
                    (None, None) => None,
                }
            }
            Path::Icmp => match self.sets.first_common2(sources, slot.any_port) {
                Some(rule) => Some((rule, RuleMatch::IcmpAnyPort)),
                None => self
                    .first_cap_rule(family, None, flow.src, capabilities, |_| true)
                    .map(|rule| (rule, RuleMatch::IcmpCapability)),
            },
            Path::Other => self
                .sets
                .first_common3(sources, self.proto_set(flow.proto), slot.all_ports)
                .map(|rule| (rule, RuleMatch::AllPorts)),
        };
        match found {
            Some((rule, how)) => Verdict::Allow(Allow::Rule {
                rule: rule as usize,
                how,
            }),
            None => Verdict::Refuse(Refusal::NoRule),
        }
    }

    #[inline]
    fn proto_set(&self, proto: u8) -> SetId {
        self.protos
            .get(usize::from(proto))
            .copied()
            .unwrap_or(EMPTY)
    }

    /// The first rule with `cap:` sources, below `below`, that is `eligible` and one of whose
    /// capabilities the source holds.
    fn first_cap_rule<K: Key, C: CapabilityLookup + ?Sized>(
        &self,
        family: &Family<K>,
        below: Option<u32>,
        src: IpAddr,
        capabilities: &C,
        eligible: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        for cap_rule in family.cap_rules.iter() {
            if below.is_some_and(|b| cap_rule.rule >= b) {
                break;
            }
            if !eligible(cap_rule.rule) {
                continue;
            }
            let start = cap_rule.names_start as usize;
            let names = self
                .cap_names
                .get(start..start + cap_rule.names_len as usize)
                .unwrap_or(&[]);
            if names
                .iter()
                .any(|name| capabilities.has_capability(src, name))
            {
                return Some(cap_rule.rule);
            }
        }
        None
    }

    /// The application capabilities `src` holds towards `dst` through `CapGrant` rules.
    pub fn app_capabilities(&self, src: IpAddr, dst: IpAddr) -> AppCapabilities {
        let mut out = AppCapabilities::new();
        self.for_each_grant(src, dst, |entry| {
            out.entry(entry.cap.to_string())
                .or_default()
                .extend(entry.values.iter().cloned());
            false
        });
        out
    }

    /// Whether `src` holds application capability `capability` towards `dst`.
    pub fn has_app_capability(&self, src: IpAddr, dst: IpAddr, capability: &str) -> bool {
        self.for_each_grant(src, dst, |entry| &*entry.cap == capability)
    }

    /// Calls `visit` on every grant `src` holds towards `dst`, in rule order, until it returns
    /// true; returns whether it did.
    fn for_each_grant(
        &self,
        src: IpAddr,
        dst: IpAddr,
        mut visit: impl FnMut(&CapEntry) -> bool,
    ) -> bool {
        let rules = match src {
            IpAddr::V4(v4) => self.v4.grant_src.get(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.grant_src.get(u128::from(v6)),
        };
        let dst = Addr::from(dst);
        for &rule in self.sets.elems(rules) {
            let Ok(at) = self.grants.binary_search_by_key(&rule, |(r, _)| *r) else {
                continue;
            };
            let Some((_, entries)) = self.grants.get(at) else {
                continue;
            };
            for entry in entries.iter() {
                if !entry.cap.is_empty() && entry.dst.contains(dst) && visit(entry) {
                    return true;
                }
            }
        }
        false
    }

    /// The entries skipped while reading the rules.
    pub fn problems(&self) -> &[FilterProblem] {
        &self.problems
    }

    /// The number of rules.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Table sizes and memory.
    pub fn stats(&self) -> MatcherStats {
        let family_bytes = |src: usize, dst: usize, rest: usize| src + dst + rest;
        let v4 = family_bytes(
            self.v4.src.heap_bytes() + self.v4.grant_src.heap_bytes(),
            self.v4.dst.heap_bytes(),
            self.v4.heap_bytes_rest(),
        );
        let v6 = family_bytes(
            self.v6.src.heap_bytes() + self.v6.grant_src.heap_bytes(),
            self.v6.dst.heap_bytes(),
            self.v6.heap_bytes_rest(),
        );
        let names: usize = self
            .cap_names
            .iter()
            .map(|n| n.len() + std::mem::size_of::<Box<str>>())
            .sum();
        let grants: usize = self
            .grants
            .iter()
            .map(|(_, g)| {
                std::mem::size_of::<(u32, Box<[CapEntry]>)>() + std::mem::size_of_val(&**g)
            })
            .sum();
        MatcherStats {
            rules: self.rule_count,
            source_entries: self.source_entries,
            source_runs: self.v4.src.runs() + self.v6.src.runs(),
            destination_runs: self.v4.dst.runs() + self.v6.dst.runs(),
            rule_sets: self.sets.count(),
            heap_bytes: v4
                + v6
                + self.sets.heap_bytes()
                + std::mem::size_of_val(&*self.protos)
                + names
                + grants,
        }
    }
}

/// 169.254.169.254, the one link-local destination let through.
const METADATA: u32 = 0xa9fe_a9fe;

/// Multicast (224.0.0.0/4) and link-local (169.254.0.0/16 but the metadata address).
#[inline]
fn special_v4(dst: u32) -> Option<Refusal> {
    if dst >> 28 == 0xe {
        Some(Refusal::Multicast)
    } else if dst >> 16 == 0xa9fe && dst != METADATA {
        Some(Refusal::LinkLocal)
    } else {
        None
    }
}

impl FlowFilter for Matcher {
    fn check_with<C: CapabilityLookup + ?Sized>(&self, flow: &Flow, capabilities: &C) -> Verdict {
        Matcher::check_with(self, flow, capabilities)
    }

    fn app_capabilities(&self, src: IpAddr, dst: IpAddr) -> AppCapabilities {
        Matcher::app_capabilities(self, src, dst)
    }

    fn has_app_capability(&self, src: IpAddr, dst: IpAddr, capability: &str) -> bool {
        Matcher::has_app_capability(self, src, dst, capability)
    }

    fn problems(&self) -> &[FilterProblem] {
        Matcher::problems(self)
    }

    fn rule_count(&self) -> usize {
        Matcher::rule_count(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::parse::ParsedRules;
    use crate::LocalNetworks;

    #[test]
    fn star_beside_host_rules() {
        // The case BartFilter gets wrong: a source in a host rule and in a `*` rule must still
        // reach what only the `*` rule opens.
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["100.64.0.1"],"DstPorts":[{"IP":"100.64.0.9","Ports":{"First":22,"Last":22}}]},
                {"SrcIPs":["*"],"DstPorts":[{"IP":"100.64.0.9","Ports":{"First":443,"Last":443}}]}]"#,
        )
        .unwrap();
        let local = LocalNetworks::addresses(["100.64.0.9".parse().unwrap()]);
        let m = Matcher::new(&rules, &local);
        let src = "100.64.0.1".parse().unwrap();
        let dst = "100.64.0.9".parse().unwrap();
        assert_eq!(m.check(&Flow::tcp(src, dst, 443)).rule(), Some(1));
        assert_eq!(m.check(&Flow::tcp(src, dst, 22)).rule(), Some(0));
        assert!(!m.check(&Flow::tcp(src, dst, 80)).is_allowed());
    }

    #[test]
    fn port_tables() {
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":10,"Last":20}},{"IP":"*","Ports":{"First":65535,"Last":65535}}]},
                {"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":15,"Last":30}},{"IP":"*","Ports":{"First":5,"Last":1}}]}]"#,
        )
        .unwrap();
        let local = LocalNetworks::addresses(["10.0.0.1".parse().unwrap()]);
        let m = Matcher::new(&rules, &local);
        let src = "10.9.9.9".parse().unwrap();
        let dst = "10.0.0.1".parse().unwrap();
        for (port, rule) in [
            (0, None),
            (9, None),
            (10, Some(0)),
            (15, Some(0)),
            (20, Some(0)),
            (21, Some(1)),
            (30, Some(1)),
            (31, None),
            (3, None),
            (65534, None),
            (65535, Some(0)),
        ] {
            assert_eq!(
                m.check(&Flow::udp(src, dst, port)).rule(),
                rule,
                "port {port}"
            );
        }
    }
}
