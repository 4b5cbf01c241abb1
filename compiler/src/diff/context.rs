//! Turning atoms into the report: each change's sources and destinations named as the policy
//! writes them, and the rules that grant or revoke it found through `explain`.

use super::*;

/// Network atoms keyed by devices ([`Ctx::by_device`]): (gained, the source devices,
/// protocol, ports).
type DeviceKey = (bool, Vec<u32>, u8, PortSet);

/// The address runs and destinations of the atoms joined under one [`DeviceKey`].
type Joined = (Vec<(u32, u32)>, Vec<(u32, Dest)>);

/// Shared state for shaping the output.
pub(super) struct Ctx<'a> {
    pub(super) names: &'a [&'a str],
    pub(super) table: &'a AddrTable,
    pub(super) options: &'a DiffOptions,
    /// Each side's network rules for [`Ctx::attribute`] (old, new), built on first use.
    pub(super) rules: [std::cell::OnceCell<NetRules>; 2],
}

impl Ctx<'_> {
    /// Node indices as a [`Nodes`] (sorted, de-duplicated, names capped).
    pub(super) fn nodes(&self, nodes: impl Iterator<Item = u32>) -> Nodes {
        let mut v: Vec<u32> = nodes.collect();
        v.sort_unstable();
        v.dedup();
        Nodes {
            count: v.len(),
            names: v
                .iter()
                .take(self.options.max_names)
                .filter_map(|&i| self.names.get(i as usize).map(|n| n.to_string()))
                .collect(),
        }
    }

    /// The nodes at some address positions.
    pub(super) fn positions(&self, runs: &[(u32, u32)]) -> Nodes {
        self.nodes(
            runs.iter()
                .flat_map(|&(a, b)| a..b)
                .filter_map(|p| self.table.node(p)),
        )
    }

    /// A change's sources: the nodes at their positions, or the text of addresses no node has.
    pub(super) fn source(&self, src: &network::Source) -> Nodes {
        match src {
            network::Source::Nodes(runs) => self.positions(runs),
            network::Source::Text(t) => Nodes {
                names: vec![t.clone()],
                count: 1,
            },
        }
    }

    /// A change's destinations: each node by name, a route it serves as `RANGE via NODE`
    /// (sorted, without repeats, names capped).
    pub(super) fn destinations(&self, dsts: &[(u32, Dest)]) -> Nodes {
        let mut labels: Vec<String> = dsts
            .iter()
            .filter_map(|(i, d)| {
                let name = self.names.get(*i as usize)?;
                Some(match d {
                    Dest::Node => name.to_string(),
                    Dest::Route(r) => format!("{r} via {name}"),
                })
            })
            .collect();
        labels.sort();
        labels.dedup();
        let count = labels.len();
        labels.truncate(self.options.max_names);
        Nodes {
            names: labels,
            count,
        }
    }

    /// `ipv4` or `ipv6` when a change's sources are addresses of that family only, though a
    /// source node and a destination node (its own addresses, not a route) both have one of
    /// the other ([`NetworkChange::family`]).
    pub(super) fn one_family(&self, src: &network::Source, dsts: &[(u32, Dest)]) -> Option<String> {
        let network::Source::Nodes(runs) = src else {
            return None;
        };
        let (at, held) = self.table.run_families(runs);
        let other = match at {
            network::V4 => network::V6,
            network::V6 => network::V4,
            _ => return None,
        };
        let reachable = dsts
            .iter()
            .any(|(i, d)| matches!(d, Dest::Node) && self.table.families(*i) & other != 0);
        (held & other != 0 && reachable)
            .then(|| if at == network::V4 { "ipv4" } else { "ipv6" }.to_string())
    }

    /// [`NetworkChange::one_family_sources`]: the devices (the first `max_names`) whose
    /// addresses among the change's positions are of one family while they have the other
    /// too and a destination node has it; nothing when [`Ctx::one_family`] says it of the
    /// whole change. O(positions).
    pub(super) fn one_family_sources(
        &self,
        src: &network::Source,
        dsts: &[(u32, Dest)],
    ) -> Vec<SourceFamily> {
        let network::Source::Nodes(runs) = src else {
            return Vec::new();
        };
        if self.one_family(src, dsts).is_some() {
            return Vec::new();
        }
        let reachable = dsts
            .iter()
            .filter(|(_, d)| matches!(d, Dest::Node))
            .fold(0u8, |f, (i, _)| f | self.table.families(*i));
        let mut held: BTreeMap<u32, u8> = BTreeMap::new();
        for p in runs.iter().flat_map(|&(a, b)| a..b) {
            if let (Some(node), Some(addr)) = (self.table.node(p), self.table.addr(p)) {
                *held.entry(node).or_default() |= if addr.is_ipv4() {
                    network::V4
                } else {
                    network::V6
                };
            }
        }
        held.into_iter()
            .filter(|&(node, got)| {
                let own = self.table.families(node);
                let missing = own & !got;
                got != 0 && missing != 0 && reachable & missing != 0
            })
            .take(self.options.max_names)
            .filter_map(|(node, got)| {
                let name = self.names.get(node as usize)?;
                let family = if got == network::V4 { "ipv4" } else { "ipv6" };
                Some(SourceFamily {
                    name: name.to_string(),
                    family: family.to_string(),
                })
            })
            .collect()
    }

    /// The atoms whose sources are the same devices at different addresses, joined: a `*`
    /// rule through an exit node reaches the IPv4 internet from a device's IPv4 address and
    /// the IPv6 internet from its IPv6 one, which is one change of the device, not one per
    /// family. O(positions).
    fn by_device(&self, atoms: NetAtoms) -> NetAtoms {
        let mut joined: HashMap<DeviceKey, Joined> = HashMap::new();
        let mut out = NetAtoms::new();
        for ((gained, src, proto, ports), dsts) in atoms {
            let network::Source::Nodes(runs) = src else {
                out.entry((gained, src, proto, ports))
                    .or_default()
                    .extend(dsts);
                continue;
            };
            let entry = joined
                .entry((gained, self.devices(&runs), proto, ports))
                .or_default();
            entry.0.extend(runs);
            entry.1.extend(dsts);
        }
        for ((gained, _, proto, ports), (runs, dsts)) in joined {
            let runs = network::merge_runs(runs);
            out.entry((gained, network::Source::Nodes(runs), proto, ports))
                .or_default()
                .extend(dsts);
        }
        out
    }

    /// Changes of ICMP and of ICMPv6 alone that differ only in their sources' addresses (the
    /// IPv4 and the IPv6 ones of the same devices: a ping opened with a port) as one change
    /// of both protocols. O(changes x positions).
    fn icmp_joined(&self, merged: MergedNet) -> MergedNet {
        let mut out = MergedNet::new();
        // The ICMP-only changes kept, by (gained, devices, ports, destinations, rules).
        let mut seen: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for (key, (protos, rules)) in merged {
            let devices = match &key.1 {
                network::Source::Nodes(runs) if one_family_protocols(&protos) => self.devices(runs),
                _ => {
                    out.insert(key, (protos, rules));
                    continue;
                }
            };
            let group = (key.0, devices, key.2.clone(), key.3.clone(), key.4.clone());
            let kept = seen.entry(group).or_default();
            // A kept change of the other protocol, if any, takes this one in.
            let other = kept.iter().position(|k| {
                out.get(k)
                    .is_some_and(|(p, _)| !p.iter().any(|x| protos.contains(x)))
            });
            let Some(old_key) = other.map(|i| kept.swap_remove(i)) else {
                kept.push(key.clone());
                out.insert(key, (protos, rules));
                continue;
            };
            if let Some((mut all, old_rules)) = out.remove(&old_key) {
                all.extend(protos);
                let runs = match (&old_key.1, &key.1) {
                    (network::Source::Nodes(a), network::Source::Nodes(b)) => {
                        network::merge_runs(a.iter().chain(b).copied().collect())
                    }
                    _ => Vec::new(),
                };
                let joined = (key.0, network::Source::Nodes(runs), key.2, key.3, key.4);
                out.insert(joined, (all, old_rules));
            }
        }
        out
    }

    /// The devices (node indexes, ascending) holding the addresses at some positions.
    /// O(positions).
    fn devices(&self, runs: &[(u32, u32)]) -> Vec<u32> {
        let mut nodes: Vec<u32> = runs
            .iter()
            .flat_map(|&(a, b)| a..b)
            .filter_map(|p| self.table.node(p))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Representative addresses of some positions: the first IPv4 and the first IPv6 one,
    /// IPv4 first. O(runs).
    pub(super) fn samples(&self, runs: &[(u32, u32)]) -> Vec<IpAddr> {
        let first_v6 = self.table.first_v6();
        let v4 = runs
            .iter()
            .find(|&&(a, b)| a < b && a < first_v6)
            .and_then(|&(a, _)| self.table.addr(a));
        let v6 = runs
            .iter()
            .map(|&(a, b)| (a.max(first_v6), b))
            .find(|&(a, b)| a < b)
            .and_then(|(a, _)| self.table.addr(a));
        v4.into_iter().chain(v6).collect()
    }

    /// Sort each direction largest first, keep the first `max_changes`, count the rest.
    pub(super) fn finish<T>(&self, mut all: Vec<(bool, usize, T)>) -> Changes<T> {
        all.sort_by_key(|(_, size, _)| std::cmp::Reverse(*size));
        let mut out = Changes::default();
        for (gained, _, change) in all {
            let (list, omitted) = if gained {
                (&mut out.gained, &mut out.gained_omitted)
            } else {
                (&mut out.lost, &mut out.lost_omitted)
            };
            if list.len() < self.options.max_changes {
                list.push(change);
            } else {
                *omitted += 1;
            }
        }
        out
    }

    pub(super) fn network(
        &self,
        atoms: NetAtoms,
        old: Side<'_>,
        new: Side<'_>,
    ) -> Changes<NetworkChange> {
        // Destinations with the same (sources, protocol, ports), split by the rules behind
        // them ([`Ctx::attribute_each`]: one change's destinations may owe it to different
        // rules, such as ICMP to a subnet from a grant and to a server from an ACL with
        // default protocols), largest first within the budget; then protocols with the same
        // (sources, ports, destinations, rules). A route is a destination of its own.
        let mut entries: Vec<_> = self
            .by_device(atoms)
            .into_iter()
            .map(|(key, mut dsts)| {
                dsts.sort();
                dsts.dedup();
                (source_count(&key.1).saturating_mul(dsts.len()), key, dsts)
            })
            .collect();
        // Largest first, ties in the keys' order (the atoms are a hash map).
        entries.sort_by(|(sa, a, _), (sb, b, _)| sb.cmp(sa).then_with(|| a.cmp(b)));
        let budget = self
            .options
            .max_attributed
            .saturating_mul(ATTRIBUTED_PER_CHANGE);
        // `explain`s left for the old side and the new.
        let (mut old_left, mut new_left) = (budget, budget);
        let mut merged: MergedNet = BTreeMap::new();
        for (_, (gained, src, proto, ports), dsts) in entries {
            let (side, slot, left) = match gained {
                true => (new, 1, &mut new_left),
                false => (old, 0, &mut old_left),
            };
            let groups = self.attribute_each(side, slot, (&src, proto, &ports), dsts, left);
            for (rules, dsts) in groups {
                let key = rules.iter().map(|r| (r.file.clone(), r.span)).collect();
                merged
                    .entry((gained, src.clone(), ports.clone(), dsts, key))
                    .or_insert_with(|| (Vec::new(), rules))
                    .0
                    .push(proto);
            }
        }
        let mut out: Vec<(bool, usize, NetworkChange)> = Vec::new();
        for ((gained, src, ports, dsts, _), (mut protos, rules)) in self.icmp_joined(merged) {
            protos.sort_unstable_by_key(|p| proto_rank(*p));
            let size = source_count(&src).saturating_mul(dsts.len());
            let side = if gained { new } else { old };
            let (src_selectors, dst_selectors) = selectors(side.policy, &rules);
            out.push((
                gained,
                size,
                NetworkChange {
                    // ICMP and ICMPv6 are of one family: saying so adds nothing.
                    family: self
                        .one_family(&src, &dsts)
                        .filter(|_| !one_family_protocols(&protos)),
                    one_family_sources: match one_family_protocols(&protos) {
                        true => Vec::new(),
                        false => self.one_family_sources(&src, &dsts),
                    },
                    src: self.source(&src),
                    dst: self.destinations(&dsts),
                    proto: protos
                        .iter()
                        .map(|&p| proto_name(p))
                        .collect::<Vec<_>>()
                        .join(","),
                    ports: ports.to_string(),
                    src_selectors,
                    dst_selectors,
                    rules,
                },
            ));
        }
        self.finish(out)
    }

    /// A change's destinations grouped by the rules of `side` behind them, at most `left`
    /// `explain`s (counted down). Node destinations and routes apart (rules reach them by
    /// different selectors); in each, every destination looked up when they are few
    /// ([`EXPLAINED_EACH`]), else [`SAMPLED`] spread over them: the change is theirs, with
    /// every rule found behind one of them (so each rule named is behind some destination,
    /// and a change of many destinations through several rules stays one). What the budget
    /// leaves is listed without rules, never with a guess.
    fn attribute_each(
        &self,
        side: Side<'_>,
        slot: usize,
        (src, proto, ports): (&network::Source, u8, &PortSet),
        dsts: Vec<(u32, Dest)>,
        left: &mut usize,
    ) -> Vec<Attributed> {
        let mut groups: Vec<Attributed> = Vec::new();
        let mut put = |rules: Vec<RuleRef>, dst: (u32, Dest)| match groups
            .iter_mut()
            .find(|(r, _)| *r == rules)
        {
            Some((_, group)) => group.push(dst),
            None => groups.push((rules, vec![dst])),
        };
        let (nodes, routes): (Vec<_>, Vec<_>) =
            dsts.into_iter().partition(|(_, d)| matches!(d, Dest::Node));
        for part in [nodes, routes] {
            let mut explain = |dst: &(u32, Dest)| {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                Some(self.attribute(side, slot, src, std::slice::from_ref(dst), proto, ports))
            };
            if part.len() > EXPLAINED_EACH {
                let last = part.len() - 1;
                let picks: Vec<usize> = (0..SAMPLED).map(|k| k * last / (SAMPLED - 1)).collect();
                let mut rules: Vec<RuleRef> = Vec::new();
                for found in picks.iter().filter_map(|&i| part.get(i)).map(&mut explain) {
                    for rule in found.into_iter().flatten() {
                        if !rules.contains(&rule) {
                            rules.push(rule);
                        }
                    }
                }
                rules.sort_by(|a, b| (&a.file, a.span).cmp(&(&b.file, b.span)));
                for dst in part {
                    put(rules.clone(), dst);
                }
                continue;
            }
            for dst in part {
                let rules = explain(&dst).unwrap_or_default();
                put(rules, dst);
            }
        }
        groups
    }

    /// The rules of `side` (`slot` 0 old, 1 new) that allow one sample flow of a change to its
    /// first destination (what `aclc explain` says).
    pub(super) fn attribute(
        &self,
        side: Side<'_>,
        slot: usize,
        src: &network::Source,
        dsts: &[(u32, Dest)],
        proto: u8,
        ports: &PortSet,
    ) -> Vec<RuleRef> {
        // The source's addresses, an IPv4 one first, and the destination's.
        let srcs: Vec<IpAddr> = match src {
            network::Source::Nodes(runs) => self.samples(runs),
            network::Source::Text(t) => network::ranges(t).iter().map(|r| r.0).collect(),
        };
        let Some((i, dst)) = dsts.first() else {
            return Vec::new();
        };
        let dst_addrs: Vec<IpAddr> = match dst {
            Dest::Node => self
                .names
                .get(*i as usize)
                .and_then(|n| side.compiled.node_addresses(n))
                .map(|a| a.into_iter().filter(|ip| !ip.is_unspecified()).collect())
                .unwrap_or_default(),
            Dest::Route(r) => network::ranges(r).iter().map(|r| r.0).collect(),
        };
        // A flow of one family (a packet has one), IPv4 first, else any pair.
        let pair = srcs
            .iter()
            .find_map(|s| Some((*s, *dst_addrs.iter().find(|d| d.is_ipv4() == s.is_ipv4())?)))
            .or_else(|| Some((*srcs.first()?, *dst_addrs.first()?)));
        let Some((src_addr, dst_addr)) = pair else {
            return Vec::new();
        };
        let host = match dst_addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let (dst, proto_text) = match proto {
            6 | 17 | 132 => (format!("{host}:{}", ports.first().unwrap_or(0)), proto),
            _ => (host, proto),
        };
        let proto_text = proto_name(proto_text);
        let query = NetworkQuery {
            src: &src_addr.to_string(),
            dst: &dst,
            proto: Some(&proto_text),
            src_posture_attrs: None,
        };
        let Some(rules) = self.rules.get(slot) else {
            return Vec::new();
        };
        let rules = rules.get_or_init(|| NetRules::new(side.policy, side.compiled));
        match explain_with(side.policy, side.compiled, Some(rules), &query) {
            // No written rule allows it, but the destination's filter does: an SSH server's
            // access to its session recorder (explain's note says so), owed to the SSH rules
            // that record.
            Ok(e)
                if e.verdict.rules().is_empty()
                    && e.notes.iter().any(|n| n.contains(RECORDER_ACCESS)) =>
            {
                // The rules recording to the destination: it carries one of their recorder
                // tags.
                let name = match dsts.first() {
                    Some((i, Dest::Node)) => self.names.get(*i as usize).map(|n| &**n),
                    _ => None,
                };
                let records_to = |r: &&aclc_policy::model::SshRule| {
                    r.recorder.iter().any(|t| match (&t.alias, name) {
                        (aclc_policy::model::Alias::Tag(tag), Some(name)) => {
                            side.compiled.node_has_tag(name, tag)
                        }
                        _ => false,
                    })
                };
                side.policy
                    .ssh
                    .iter()
                    .flat_map(|s| s.value.iter())
                    .filter(records_to)
                    .map(|r| rule_ref(side.source, r.span))
                    .collect()
            }
            Ok(e) => e
                .verdict
                .rules()
                .iter()
                .map(|&span| rule_ref(side.source, span))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    pub(super) fn apps(&self, atoms: AppAtoms, old: Side<'_>, new: Side<'_>) -> Changes<AppChange> {
        let out = atoms
            .into_iter()
            .map(|((gained, src, capability, _), (value, dsts))| {
                let side = if gained { new } else { old };
                let src = self.source(&src);
                let dst = self.destinations(&dsts);
                let rules = side
                    .policy
                    .grants
                    .as_ref()
                    .map(|g| {
                        g.value
                            .iter()
                            .filter(|r| r.app.iter().any(|a| a.name.value == capability))
                            .map(|r| rule_ref(side.source, r.span))
                            .collect()
                    })
                    .unwrap_or_default();
                let size = src.count.saturating_mul(dst.count);
                let change = AppChange {
                    src,
                    dst,
                    capability,
                    value,
                    rules,
                };
                (gained, size, change)
            })
            .collect();
        self.finish(out)
    }

    pub(super) fn ssh(&self, atoms: SshAtoms, old: Side<'_>, new: Side<'_>) -> Changes<SshChange> {
        let mut list: Vec<_> = atoms.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let out = list
            .into_iter()
            .map(|((gained, runs, login, outcome), dsts)| {
                let side = if gained { new } else { old };
                let rules = side
                    .policy
                    .ssh
                    .as_ref()
                    .and_then(|s| s.value.get(outcome.rule))
                    .map(|r| vec![rule_ref(side.source, r.span)])
                    .unwrap_or_default();
                let src = self.positions(&runs);
                let dst = self.nodes(dsts.into_iter());
                let size = src.count.saturating_mul(dst.count);
                (
                    gained,
                    size,
                    SshChange {
                        src,
                        dst,
                        user: login,
                        local_user: outcome.local_user,
                        action: outcome.action.to_string(),
                        terms: outcome.terms.to_string(),
                        rules,
                    },
                )
            })
            .collect();
        self.finish(out)
    }
}

/// Whether every protocol of a change is ICMP of one family (`icmp` only, or `ipv6-icmp`
/// only): such a change is of that family by its protocol.
fn one_family_protocols(protos: &[u8]) -> bool {
    use aclc_matcher::proto::{ICMPV4, ICMPV6};
    protos.iter().all(|&p| p == ICMPV4) || protos.iter().all(|&p| p == ICMPV6)
}

/// Destinations of a change and the rules behind them.
type Attributed = (Vec<RuleRef>, Vec<(u32, Dest)>);
