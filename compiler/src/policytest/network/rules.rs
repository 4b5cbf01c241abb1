//! The policy's network rules as tests judge them: each rule's sources and destinations as
//! address sets (a `via` grant's narrowed to its routers' routes), indexed by port block.

use super::*;

/// What the rules are built to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Judged {
    /// The policy's `tests`, as Tailscale runs them: a `via` grant counts like one without
    /// (the module's documentation has the evidence).
    Tests,
    /// Traffic, as the nodes' filters let it through (`aclc explain`): a `via` grant's rules
    /// are only on the routers carrying one of its tags, so it lets traffic through only to
    /// addresses those routers carry (their approved subnet routes; everything beyond the
    /// tailnet for an approved exit node), never to a device's own address.
    Traffic,
}

/// The policy's network rules, in policy order (grants, then ACLs).
pub(super) fn rules(policy: &Policy, table: &NodeTable, judged: Judged) -> Rules {
    let mut resolver = Resolver::new(policy, table);
    let star = Arc::new(star(table));
    let internet = Arc::new(internet_beyond_routes(table));
    let everything = Arc::new(every_address());
    // What each distinct `via` list routes ([`via_routes`], a pass over the nodes), found
    // once per list, not once per grant.
    let mut routed_by: HashMap<Vec<&str>, Arc<Routed>> = HashMap::new();
    // Under a posture gate only devices can be sources: `*` is every device, and
    // address-only sources (no device, no posture) fail the gate.
    let sources =
        |resolver: &mut Resolver<'_>, aliases: &mut dyn Iterator<Item = &Alias>, gated: bool| {
            let parts: Vec<Addrs> = aliases
                .filter_map(|alias| match resolver.resolve_alias(alias) {
                    Target::Wildcard | Target::DangerAll if gated => Some(Addrs::Devices),
                    Target::Wildcard => Some(Addrs::Set(star.clone())),
                    Target::DangerAll => Some(Addrs::Set(everything.clone())),
                    Target::Nodes(ids) => Some(Addrs::Nodes(ids)),
                    Target::Literal(_) if gated => None,
                    Target::Literal(lit) => Some(Addrs::Set(Arc::new(lit.set.clone()))),
                    Target::Internet | Target::SelfDevices => None,
                })
                .collect();
            Arc::<[Addrs]>::from(parts)
        };
    let mut out = Vec::new();
    if policy.is_default_allow() {
        out.push(NetRule {
            span: None,
            src: Arc::from(vec![Addrs::Set(star.clone())]),
            gate: None,
            proto: None,
            dst: Dst::Any,
            ports: vec![PortRange::ANY],
        });
    }
    for grant in policy.grants.iter().flat_map(|g| g.value.iter()) {
        // App-only grants give no network access. A `via` grant counts as its `ip` rule:
        // `via` picks the routers, not whether the traffic is allowed.
        if grant.ip.is_empty() {
            continue;
        }
        let gate = gate_of(policy, &grant.src_posture);
        let src = sources(
            &mut resolver,
            &mut grant.src.iter().map(|s| &s.alias),
            gate.is_some(),
        );
        let routed = (judged == Judged::Traffic && !grant.via.is_empty()).then(|| {
            let key: Vec<&str> = grant.via.iter().map(|v| v.text.as_str()).collect();
            routed_by
                .entry(key)
                .or_insert_with(|| Arc::new(via_routes(table, &grant.via)))
                .clone()
        });
        // One rule per destination and protocol, with all its ports.
        let mut at: HashMap<(&str, Option<u8>), usize> = HashMap::new();
        for dst_selector in &grant.dst {
            let mut dst = destination_of(resolver.resolve(dst_selector), &internet);
            if let Some(routed) = &routed {
                dst = routed_part(dst, routed);
            }
            for ip in &grant.ip {
                let proto = ip.value.proto.map(|p| p.0);
                let key = (dst_selector.text.as_str(), proto);
                if let Some(rule) = at.get(&key).and_then(|&i| out.get_mut(i)) {
                    rule.ports.push(ip.value.ports);
                    continue;
                }
                at.insert(key, out.len());
                out.push(NetRule {
                    span: Some(grant.span),
                    src: src.clone(),
                    gate: gate.clone(),
                    proto,
                    dst: dst.clone(),
                    ports: vec![ip.value.ports],
                });
            }
        }
    }
    for acl in policy.acls.iter().flat_map(|a| a.value.iter()) {
        let gate = gate_of(policy, &acl.src_posture);
        let src = sources(
            &mut resolver,
            &mut acl.src.iter().map(|s| &s.alias),
            gate.is_some(),
        );
        // One rule per destination, with all its ports.
        let mut at: HashMap<&str, usize> = HashMap::new();
        for dst in &acl.dst {
            if let Some(rule) = at
                .get(dst.target.text.as_str())
                .and_then(|&i| out.get_mut(i))
            {
                rule.ports.extend_from_slice(&dst.ports);
                continue;
            }
            at.insert(dst.target.text.as_str(), out.len());
            let target = destination_of(resolver.resolve(&dst.target), &internet);
            out.push(NetRule {
                span: Some(acl.span),
                src: src.clone(),
                gate: gate.clone(),
                proto: acl.proto.as_ref().map(|p| p.value.0),
                dst: target,
                ports: dst.ports.clone(),
            });
        }
    }
    for rule in &mut out {
        rule.ports = merged(&rule.ports);
    }
    Rules::new(out)
}

/// The network rules with an index by port: a question about one port is judged against the
/// rules open on some port of its 256-port block and those open on wide ranges, in rule
/// order, not against every rule (a failing test scanned them all: 4,000 tests of 10 ports
/// each against 40,000 one-port rules took 12.5 s).
#[derive(Debug)]
pub(super) struct Rules {
    pub(super) list: Vec<NetRule>,
    /// For each block of 256 ports, the rules open on some port in it (positions in `list`,
    /// ascending), for rules open on at most [`Rules::NARROW`] blocks.
    pub(super) blocks: Vec<Vec<u32>>,
    /// The other rules (open on many blocks), ascending.
    pub(super) wide: Vec<u32>,
}

impl Rules {
    /// Rules open on at most this many blocks are listed in each; others in `wide`.
    const NARROW: usize = 8;

    pub(super) fn new(list: Vec<NetRule>) -> Rules {
        let mut blocks: Vec<Vec<u32>> = vec![Vec::new(); 256];
        let mut wide = Vec::new();
        for (i, rule) in list.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else {
                continue;
            };
            let spans = rule
                .ports
                .iter()
                .map(|r| usize::from(r.last >> 8) - usize::from(r.first >> 8) + 1)
                .sum::<usize>();
            if spans > Self::NARROW {
                wide.push(i);
                continue;
            }
            for r in &rule.ports {
                for block in usize::from(r.first >> 8)..=usize::from(r.last >> 8) {
                    if let Some(list) = blocks.get_mut(block) {
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                }
            }
        }
        Rules { list, blocks, wide }
    }

    /// The rules that may open `port`, in rule order: every rule unless one port is asked.
    pub(super) fn candidates(&self, port: Asked) -> Box<dyn Iterator<Item = &NetRule> + '_> {
        let Asked::Port(port) = port else {
            return Box::new(self.list.iter());
        };
        let narrow: &[u32] = self
            .blocks
            .get(usize::from(port >> 8))
            .map_or(&[], Vec::as_slice);
        Box::new(
            crate::policytest::in_order(narrow, &self.wide)
                .filter_map(|i| self.list.get(usize::try_from(i).ok()?)),
        )
    }
}

impl std::ops::Deref for Rules {
    type Target = [NetRule];
    fn deref(&self) -> &[NetRule] {
        &self.list
    }
}

/// Port ranges sorted and merged (overlapping or adjacent ones joined), so a port is found by
/// a binary search: a rule naming one destination with many ports is one rule, looked up in
/// O(log ports) per test, not one rule per port tried in turn (tests times ports).
pub(super) fn merged(ports: &[PortRange]) -> Vec<PortRange> {
    crate::addrset::normalize(ports.iter().map(|r| (r.first, r.last)).collect())
        .into_iter()
        .map(|(first, last)| PortRange { first, last })
        .collect()
}

/// What the routers of one `via` list carry, as their filters hold a `via` grant's rules.
pub(super) struct Routed {
    /// What they carry to a destination written as prefixes: their approved subnet routes,
    /// and on an approved exit node the internet's ranges of its exit routes' families (a
    /// private prefix through an exit node puts no rule on it).
    pub(super) routes: Arc<AddrSet>,
    /// What `*` adds, put on their filters as written: the own addresses of those serving a
    /// route, and every address beyond the tailnet of an exit node's families (a client
    /// sends there what no subnet route carries).
    pub(super) any: Arc<AddrSet>,
}

/// What the routers carrying one of a `via` grant's tags carry ([`Routed`]).
pub(super) fn via_routes(table: &NodeTable, via: &[aclc_policy::model::Selector]) -> Routed {
    let carries =
        |n: &crate::nodes::NodeInfo| n.tags.iter().any(|tag| via.iter().any(|v| v.text == **tag));
    let mut routes = routes_of(table, carries);
    let mut any = AddrSet::new();
    let carriers = table.nodes.iter().filter(|n| carries(n));
    let (mut v4, mut v6) = (false, false);
    for n in carriers.filter(|n| !n.served.is_empty()) {
        v4 |= n.exit_v4;
        v6 |= n.exit_v6;
        for a in n.addrs() {
            any.add(&AddrSet::from_net(IpNet::from(a)));
        }
    }
    let tailnet = AddrSet::from_wire(TAILNET_WIRE);
    for (exits, family) in [
        (v4, IpNet::V4(Ipv4Net::default())),
        (v6, IpNet::V6(Ipv6Net::default())),
    ] {
        if !exits {
            continue;
        }
        let whole = AddrSet::from_net(family);
        let mut beyond = whole.clone();
        beyond.remove(&tailnet);
        any.add(&beyond);
        // The internet's ranges of this family: the internet less the other family.
        let mut internet = AddrSet::from_wire(INTERNET_WIRE);
        let mut other = every_address();
        other.remove(&whole);
        internet.remove(&other);
        routes.add(&internet);
    }
    any.add(&routes);
    Routed {
        routes: Arc::new(routes),
        any: Arc::new(any),
    }
}

/// Every IPv4 and IPv6 address.
pub(super) fn every_address() -> AddrSet {
    let mut all = AddrSet::from_net(IpNet::V4(Ipv4Net::default()));
    all.add(&AddrSet::from_net(IpNet::V6(Ipv6Net::default())));
    all
}

/// The part of a `via` grant's destination its routers carry ([`via_routes`]): `*` is what
/// they route, their own addresses and, through an exit node, every address beyond the
/// tailnet of its families.
pub(super) fn routed_part(dst: Dst, routed: &Routed) -> Dst {
    if matches!(dst, Dst::Any) {
        return Dst::Addrs(Addrs::Set(routed.any.clone()));
    }
    routed_within(dst, &routed.routes)
}

/// The part of a destination inside `routed`.
pub(super) fn routed_within(dst: Dst, routed: &Arc<AddrSet>) -> Dst {
    let within = |set: &AddrSet| {
        let mut outside = set.clone();
        outside.remove(routed);
        let mut part = set.clone();
        part.remove(&outside);
        part
    };
    match dst {
        Dst::Any => Dst::Addrs(Addrs::Set(routed.clone())),
        Dst::Addrs(Addrs::Set(set)) => Dst::Addrs(Addrs::Set(Arc::new(within(&set)))),
        // Devices' own addresses are not routed through another node.
        Dst::Addrs(Addrs::Nodes(_)) | Dst::Addrs(Addrs::Devices) | Dst::SelfDevices => {
            Dst::Addrs(Addrs::Set(Arc::new(AddrSet::new())))
        }
    }
}

/// `*` as a source: the tailnet's address ranges and every approved subnet route.
pub(super) fn star(table: &NodeTable) -> AddrSet {
    let mut set = AddrSet::from_wire(TAILNET_WIRE);
    set.add(&routes_of(table, |_| true));
    set
}

/// The subnet routes the nodes `keep` accepts serve, as one set: one sort of them all, not
/// a walk of the whole set per route (quadratic in the routes).
pub(super) fn routes_of(
    table: &NodeTable,
    keep: impl Fn(&crate::nodes::NodeInfo) -> bool,
) -> AddrSet {
    let routes: Vec<AddrSet> = table
        .nodes
        .iter()
        .filter(|n| keep(n))
        .flat_map(|n| n.subnet_routes.iter().map(|r| AddrSet::from_net(*r)))
        .collect();
    AddrSet::union_of(&routes)
}

/// `autogroup:internet` as tests judge it: the internet set less the subnet routes routers
/// serve. A client sends traffic for an address inside an approved subnet route to that
/// route's router, not to an exit node, and the rules to `autogroup:internet` reach exit
/// nodes only, so a rule to the internet does not let that traffic through (a router that is
/// also an exit node carries them, and its routes stay in the set). Evidence:
/// regulad/tailscale-acls applies its policy through gitops-acl-action (tests run on every
/// apply) with a grant from `*` to `autogroup:internet` and tests that `deny` tagged sources
/// `[2603:c020:4016:ae50:ffff:ffff:ffff:ffff]:22`, a public address inside its approved
/// subnet route `2603:c020:4016:ae50::/64`; nlopez/tailnet, applied the same way, asserts
/// `accept` of `1.1.1.1:53` through a rule to `autogroup:internet`.
pub(super) fn internet_beyond_routes(table: &NodeTable) -> AddrSet {
    let mut set = AddrSet::from_wire(INTERNET_WIRE);
    set.remove(&routes_of(table, |n| !n.exit));
    set
}

/// A rule destination. `autogroup:internet` is its address set (`internet`): a test aimed at
/// a public address is judged by the rules that let the source use an exit node for it.
pub(super) fn destination_of(target: Target, internet: &Arc<AddrSet>) -> Dst {
    match target {
        Target::Wildcard | Target::DangerAll => Dst::Any,
        Target::Internet => Dst::Addrs(Addrs::Set(internet.clone())),
        Target::SelfDevices => Dst::SelfDevices,
        Target::Nodes(ids) => Dst::Addrs(Addrs::Nodes(ids)),
        Target::Literal(lit) => Dst::Addrs(Addrs::Set(Arc::new(lit.set.clone()))),
    }
}
