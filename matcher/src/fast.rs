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

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::intervals::{IntervalMap, Key};
use super::parse::{CapEntry, DstRange, ParsedRules, Rule};
use super::sets::{FastMap, RuleSets, SetBuilder, SetId, EMPTY};
use super::{
    path, Addr, Allow, AppCapabilities, CapabilityLookup, FilterProblem, Flow, FlowFilter,
    LocalNetworks, MatcherError, Net, Path, Refusal, RuleMatch, Verdict,
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
    /// Builds the matcher for a node's rules and local networks.
    pub fn new(rules: &ParsedRules, local: &LocalNetworks) -> Matcher {
        let rule_count = rules.rules.len();
        let mut builder = SetBuilder::new(rule_count);
        let local_nets: Vec<Net> = local
            .addresses
            .iter()
            .map(|&ip| {
                let addr = Addr::from(ip);
                Net {
                    v6: addr.v6,
                    lo: addr.bits,
                    hi: addr.bits,
                }
            })
            .chain(local.routes.iter().map(Net::from_ipnet))
            .collect();

        let mut cap_names: Vec<Box<str>> = Vec::new();
        let mut cap_ranges: Vec<(u32, u32)> = Vec::with_capacity(rule_count);
        for rule in &rules.rules {
            let start = index32(cap_names.len());
            cap_names.extend(rule.src_caps.iter().cloned());
            cap_ranges.push((start, index32(rule.src_caps.len())));
        }

        let flags: Vec<u8> = rules
            .rules
            .iter()
            .map(|rule| {
                let tcp = if rule.protos.contains(&super::proto::TCP) {
                    LISTS_TCP
                } else {
                    0
                };
                let udp = if rule.protos.contains(&super::proto::UDP) {
                    LISTS_UDP
                } else {
                    0
                };
                tcp | udp
            })
            .collect();
        let sources = SourceLists::new(
            rules
                .rules
                .iter()
                .enumerate()
                .map(|(r, rule)| (index32(r), &rule.srcs[..])),
        );
        let grant_sources = SourceLists::new(
            rules
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| !rule.caps.is_empty())
                .map(|(r, rule)| (index32(r), &rule.srcs[..])),
        );
        let v4 = Family::<u32>::build(
            &rules.rules,
            &sources,
            &grant_sources,
            &local_nets,
            false,
            &cap_ranges,
            &flags,
            &mut builder,
        );
        let v6 = Family::<u128>::build(
            &rules.rules,
            &sources,
            &grant_sources,
            &local_nets,
            true,
            &cap_ranges,
            &flags,
            &mut builder,
        );

        let mut by_proto: Vec<Vec<u32>> = vec![Vec::new(); 256];
        for (r, rule) in rules.rules.iter().enumerate() {
            for &p in &rule.protos {
                if let Some(list) = by_proto.get_mut(usize::from(p)) {
                    if list.last() != Some(&index32(r)) {
                        list.push(index32(r));
                    }
                }
            }
        }
        let protos: Box<[SetId]> = by_proto.iter().map(|l| builder.intern(l)).collect();

        let grants = rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| !rule.caps.is_empty())
            .map(|(r, rule)| (index32(r), rule.caps.clone().into_boxed_slice()))
            .collect();

        Matcher {
            v4,
            v6,
            sets: builder.finish(),
            protos,
            cap_names: cap_names.into_boxed_slice(),
            grants,
            rule_count,
            source_entries: rules.source_entries(),
            problems: rules.problems.clone().into_boxed_slice(),
        }
    }

    /// Reads the rules from JSON and builds the matcher; see [`ParsedRules::from_json`].
    pub fn from_json(json: &str, local: &LocalNetworks) -> Result<Matcher, MatcherError> {
        Ok(Matcher::new(&ParsedRules::from_json(json)?, local))
    }

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

impl<K: Key> Family<K> {
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all of it build state"
    )]
    fn build(
        rules: &[Rule],
        sources: &SourceLists<'_>,
        grant_sources: &SourceLists<'_>,
        local: &[Net],
        v6: bool,
        cap_ranges: &[(u32, u32)],
        flags: &[u8],
        builder: &mut SetBuilder,
    ) -> Self {
        let src = build_sources::<K>(sources, v6, builder);
        let grant_src = build_sources::<K>(grant_sources, v6, builder);

        let cap_rules = rules
            .iter()
            .enumerate()
            .zip(cap_ranges)
            .filter(|((_, rule), _)| {
                !rule.src_caps.is_empty() && rule.dsts.iter().any(|d| d.net.v6 == v6)
            })
            .map(|((r, _), &(names_start, names_len))| CapRule {
                rule: index32(r),
                names_start,
                names_len,
            })
            .collect();

        let mut family = Family {
            src,
            dst: IntervalMap::new([]),
            slots: Box::new([]),
            cap_rules,
            grant_src,
        };
        family.build_destinations(rules, local, v6, flags, builder);
        family
    }

    /// The destination table and its slots.
    fn build_destinations(
        &mut self,
        rules: &[Rule],
        local: &[Net],
        v6: bool,
        flags: &[u8],
        builder: &mut SetBuilder,
    ) {
        // Entries of this family: (rule, ports).
        let entries: Vec<(u32, DstRange)> = rules
            .iter()
            .enumerate()
            .flat_map(|(r, rule)| rule.dsts.iter().map(move |d| (index32(r), *d)))
            .filter(|(_, d)| d.net.v6 == v6)
            .collect();
        let locals: Vec<Net> = local.iter().copied().filter(|n| n.v6 == v6).collect();

        // Events: (position, code); code = index << 2 | local << 1 | end.
        let mut events: Vec<(K, u32)> = Vec::with_capacity(2 * (entries.len() + locals.len()));
        let mut push = |net: Net, index: u32, local: u32| {
            let code = index << 2 | local << 1;
            events.push((K::from_u128(net.lo), code));
            if net.hi < K::MAX.to_u128() {
                events.push((K::from_u128(net.hi + 1), code | 1));
            }
        };
        for (e, (_, d)) in entries.iter().enumerate() {
            push(d.net, index32(e), 0);
        }
        for (l, net) in locals.iter().enumerate() {
            push(*net, index32(l), 1);
        }
        events.sort_unstable();

        let mut slots = vec![Slot::not_local()];
        let mut slot_ids: FastMap<Vec<u32>, u32> = FastMap::default();
        let mut active: BTreeSet<u32> = BTreeSet::new();
        let mut local_depth = 0usize;
        let mut runs: Vec<(K, u32)> = vec![(K::default(), 0)];
        let mut i = 0;
        while let Some(&(position, _)) = events.get(i) {
            while let Some(&(at, code)) = events.get(i) {
                if at != position {
                    break;
                }
                let end = code & 1 == 1;
                let is_local = code & 2 == 2;
                let index = code >> 2;
                match (is_local, end) {
                    (true, false) => local_depth += 1,
                    (true, true) => local_depth = local_depth.saturating_sub(1),
                    (false, false) => {
                        active.insert(index);
                    }
                    (false, true) => {
                        active.remove(&index);
                    }
                }
                i += 1;
            }
            let slot = if local_depth == 0 {
                0
            } else {
                let key: Vec<u32> = active.iter().copied().collect();
                match slot_ids.get(&key) {
                    Some(&slot) => slot,
                    None => {
                        let here: Vec<(u32, DstRange)> = key
                            .iter()
                            .filter_map(|&e| entries.get(e as usize).copied())
                            .collect();
                        let slot = build_slot(&here, flags, builder);
                        let id = index32(slots.len());
                        slots.push(slot);
                        slot_ids.insert(key, id);
                        id
                    }
                }
            };
            runs.push((position, slot));
        }
        self.dst = IntervalMap::new(runs);
        self.slots = slots.into_boxed_slice();
    }

    fn heap_bytes_rest(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
            + self.slots.iter().map(Slot::heap_bytes).sum::<usize>()
            + std::mem::size_of_val(&*self.cap_rules)
    }
}

/// The slot of a local run where `here` (rule, destination entry) apply.
fn build_slot(here: &[(u32, DstRange)], flags: &[u8], builder: &mut SetBuilder) -> Slot {
    let mut any: Vec<u32> = here.iter().map(|(r, _)| *r).collect();
    any.sort_unstable();
    any.dedup();
    let mut all: Vec<u32> = here
        .iter()
        .filter(|(_, d)| d.all_ports())
        .map(|(r, _)| *r)
        .collect();
    all.sort_unstable();
    all.dedup();
    let lists = |flag: u8| {
        move |&&(rule, _): &&(u32, DstRange)| {
            flags.get(rule as usize).is_some_and(|f| f & flag != 0)
        }
    };
    Slot {
        ports: port_table(here.iter(), builder),
        tcp: port_table(here.iter().filter(lists(LISTS_TCP)), builder),
        udp: port_table(here.iter().filter(lists(LISTS_UDP)), builder),
        any_port: builder.intern(&any),
        all_ports: builder.intern(&all),
    }
}

/// Port -> the rules of `entries` open on it.
fn port_table<'e>(
    entries: impl Iterator<Item = &'e (u32, DstRange)>,
    builder: &mut SetBuilder,
) -> IntervalMap<u32> {
    // A sweep over range boundaries, as for addresses.
    let mut events: Vec<(u32, u32)> = Vec::new();
    for &(rule, d) in entries {
        if d.first <= d.last {
            events.push((u32::from(d.first), rule << 1));
            events.push((u32::from(d.last) + 1, rule << 1 | 1));
        }
    }
    let mut scratch: Vec<u32> = Vec::new();
    IntervalMap::new(sweep(&mut events, |active| {
        scratch.clear();
        scratch.extend(active.keys());
        builder.intern(&scratch)
    }))
}

/// Sweep range events (`position`, `key << 1 | is_end`) in order: at each position where the
/// set of open keys changes, a run starts whose set `set_of` makes from the open keys (with
/// their open-range counts). The first run, from the lowest key, is empty.
fn sweep<K: Ord + Copy + Default>(
    events: &mut [(K, u32)],
    mut set_of: impl FnMut(&BTreeMap<u32, u32>) -> SetId,
) -> Vec<(K, SetId)> {
    events.sort_unstable();
    let mut active: BTreeMap<u32, u32> = BTreeMap::new();
    let mut runs: Vec<(K, SetId)> = vec![(K::default(), EMPTY)];
    let mut i = 0;
    while let Some(&(position, _)) = events.get(i) {
        while let Some(&(at, code)) = events.get(i) {
            if at != position {
                break;
            }
            count(&mut active, code >> 1, code & 1 == 1);
            i += 1;
        }
        runs.push((position, set_of(&active)));
    }
    runs
}

/// Counts one more (or one fewer) active interval of `key`; a key leaves at zero.
fn count(active: &mut BTreeMap<u32, u32>, key: u32, end: bool) {
    if end {
        if let Some(n) = active.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                active.remove(&key);
            }
        }
    } else {
        *active.entry(key).or_insert(0) += 1;
    }
}

/// The distinct source lists of some rules, and the rules that use each. Rules written for
/// the same group share one list; building per list entry rather than per rule entry divides
/// the work by the sharing (1.4 in the `large` workload's heaviest node).
struct SourceLists<'r> {
    lists: Vec<&'r [Net]>,
    rules: Vec<Vec<u32>>,
}

impl<'r> SourceLists<'r> {
    fn new(rules: impl Iterator<Item = (u32, &'r [Net])>) -> Self {
        let mut ids: FastMap<ListKey<'r>, u32> = FastMap::default();
        let mut out = SourceLists {
            lists: Vec::new(),
            rules: Vec::new(),
        };
        for (rule, srcs) in rules {
            if srcs.is_empty() {
                continue;
            }
            let next = index32(out.lists.len());
            let id = *ids.entry(ListKey(srcs)).or_insert(next);
            if id == next {
                out.lists.push(srcs);
                out.rules.push(Vec::new());
            }
            if let Some(r) = out.rules.get_mut(id as usize) {
                r.push(rule);
            }
        }
        out
    }
}

/// A source list as a map key: equal by content, hashed on its length and eight entries, so
/// that long lists are not hashed in full (equal lists still hash equally).
struct ListKey<'a>(&'a [Net]);

impl Hash for ListKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.len().hash(state);
        let step = (self.0.len() / 8).max(1);
        for net in self.0.iter().step_by(step).take(8) {
            net.hash(state);
        }
    }
}

impl PartialEq for ListKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for ListKey<'_> {}

/// The source tables of one family.
fn build_sources<K: Key>(
    lists: &SourceLists<'_>,
    v6: bool,
    builder: &mut SetBuilder,
) -> Sources<K> {
    let list_rules = &lists.rules;
    let mut list_sets: Vec<SetId> = vec![EMPTY; list_rules.len()];

    // Single addresses become points; the rest sweep into runs.
    let mut points: Vec<(K, u32)> = Vec::new();
    let mut events: Vec<(K, u32)> = Vec::new();
    for ((nets, rules), (list, set)) in lists
        .lists
        .iter()
        .zip(list_rules)
        .zip((0u32..).zip(list_sets.iter_mut()))
    {
        let before = points.len() + events.len();
        for net in nets.iter().filter(|n| n.v6 == v6) {
            if net.lo == net.hi {
                points.push((K::from_u128(net.lo), list));
            } else {
                events.push((K::from_u128(net.lo), list << 1));
                if net.hi < K::MAX.to_u128() {
                    events.push((K::from_u128(net.hi + 1), list << 1 | 1));
                }
            }
        }
        if points.len() + events.len() > before {
            *set = builder.intern(rules);
        }
    }

    let rules_of = |lists: &mut dyn Iterator<Item = u32>, scratch: &mut Vec<u32>| {
        scratch.clear();
        for list in lists {
            scratch.extend(list_rules.get(list as usize).into_iter().flatten());
        }
        scratch.sort_unstable();
        scratch.dedup();
    };

    let mut scratch: Vec<u32> = Vec::new();
    let nets = IntervalMap::new(sweep(&mut events, |active| {
        match (active.len(), active.keys().next()) {
            (0, _) => EMPTY,
            (1, Some(&list)) => list_sets.get(list as usize).copied().unwrap_or(EMPTY),
            _ => {
                rules_of(&mut active.keys().copied(), &mut scratch);
                builder.intern(&scratch)
            }
        }
    }));

    // Each point's set: its lists' rules and those of the wide networks around it. Addresses
    // in the same few lists are common (a group's members): small combinations are memoised.
    K::sort_points(&mut points);
    let mut hosts: Vec<(K, SetId)> = Vec::with_capacity(points.len());
    let mut combinations: FastMap<(SetId, [u32; 4]), SetId> = FastMap::default();
    let mut i = 0;
    while let Some(&(addr, first_list)) = points.get(i) {
        let mut end = i + 1;
        while points.get(end).is_some_and(|&(a, _)| a == addr) {
            end += 1;
        }
        let around = nets.get(addr);
        let lists = points.get(i..end).unwrap_or(&[]);
        let set = if end == i + 1 && around == EMPTY {
            list_sets.get(first_list as usize).copied().unwrap_or(EMPTY)
        } else {
            let mut key = [u32::MAX; 4];
            let small = lists.len() <= key.len();
            for (k, &(_, list)) in key.iter_mut().zip(lists) {
                *k = list;
            }
            match combinations.get(&(around, key)) {
                Some(&set) if small => set,
                _ => {
                    rules_of(&mut lists.iter().map(|&(_, list)| list), &mut scratch);
                    scratch.extend_from_slice(builder.elems(around));
                    scratch.sort_unstable();
                    scratch.dedup();
                    let set = builder.intern(&scratch);
                    if small {
                        combinations.insert((around, key), set);
                    }
                    set
                }
            }
        };
        hosts.push((addr, set));
        i = end;
    }
    Sources {
        hosts: IntervalMap::points(hosts),
        nets,
    }
}

/// A rule or entry index as stored in the tables. Filters have far fewer than 2^30 rules (each
/// costs tens of bytes of JSON); an impossible overflow saturates rather than panics.
fn index32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX >> 2)
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
