//! Building the fast matcher: the interval tables of each address family, cut at every
//! boundary of every source and destination network, each run mapped to an interned rule set,
//! and the port tables of the local runs. All the cost is here, once per filter; lookups
//! (the parent module) only read what this builds.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use super::{CapRule, Family, Matcher, Slot, Sources, LISTS_TCP, LISTS_UDP};
use crate::intervals::{IntervalMap, Key};
use crate::parse::{DstRange, ParsedRules, Rule};
use crate::sets::{FastMap, SetBuilder, SetId, EMPTY};
use crate::{Addr, LocalNetworks, MatcherError, Net};

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
                let tcp = if rule.protos.contains(&crate::proto::TCP) {
                    LISTS_TCP
                } else {
                    0
                };
                let udp = if rule.protos.contains(&crate::proto::UDP) {
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

    pub(super) fn heap_bytes_rest(&self) -> usize {
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
