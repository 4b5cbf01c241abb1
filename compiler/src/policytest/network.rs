//! `tests`: network reachability assertions, judged against the policy's network rules as a
//! whole (not one node's filter: a host alias may name an address no node has).
//!
//! Traffic from a source to a destination on a port is allowed when every address of the
//! source is let through by some rule to some address of the destination, with a protocol in
//! common (a test without `proto` means TCP or UDP). Only `acls` and `ip` grants count; app
//! grants do not. A grant with `via` counts like one without: `via` only chooses the routers
//! that carry the traffic, the grant still lets its sources reach its destinations, and
//! Tailscale judges tests by it (a tailnet whose policy Tailscale applies through
//! gitops-acl-action asserts `accept` of subnet addresses that only `via` grants allow, and
//! `deny` of those the `via` grants leave out: keiretsu-labs/kubernetes-manifests,
//! `tailscale/policy.hujson`). A rule to `autogroup:internet` covers a destination address in
//! the internet set (`1.1.1.1:53`): that traffic leaves through an exit node, and Tailscale
//! accepts such tests; an address inside a subnet route a router serves goes to that router
//! instead, and the rule does not cover it.
//!
//! A source with no devices in the inventory reaches nothing: its `deny` assertions hold
//! (vacuously, with a warning), its `accept` assertions fail.
//!
//! A posture-gated rule (kb/1288) lets a source address through only when it is a device's and
//! the device passes the gate, with the test's `srcPostureAttrs` (when given) in place of the
//! inventory's attributes for the source devices: the same semantics as the compiled `SrcIPs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use aclc_policy::model::{Alias, NetworkTest, Policy, PolicyIndex, PortRange, Protocol};
use aclc_policy::Span;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::endpoint::{quote, Device, Endpoints, Side};
use super::{Expectation, TestError, TestKind, TestResult, Verdict};
use crate::addrset::{AddrSet, INTERNET_WIRE, TAILNET_WIRE};
use crate::compiled::Compiled;
use crate::nodes::{NodeId, NodeTable};
use crate::posture::{admits, gate_of, Gate};
use crate::resolve::{Resolver, Target};

/// The protocols a rule without `proto` allows: TCP, UDP, ICMP, ICMPv6.
const DEFAULT_RULE_PROTOS: [u8; 4] = [6, 17, 1, 58];
/// The protocols a test without `proto` asks about: TCP or UDP.
const DEFAULT_TEST_PROTOS: [u8; 2] = [6, 17];

/// One network rule: sources, a destination, protocols and ports.
#[derive(Debug)]
struct NetRule {
    /// The `acls` / `grants` entry; `None` for the default allow-all policy.
    span: Option<Span>,
    /// The sources: the union of the parts.
    src: Arc<[Addrs]>,
    /// The posture gate (`srcPosture` or `defaultSrcPosture`), if any.
    gate: Option<Gate>,
    /// `None`: the default protocols.
    proto: Option<u8>,
    dst: Dst,
    ports: Vec<PortRange>,
}

/// Addresses as the policy names them: devices (kept as ids, so a big group costs nothing to
/// build) or literal addresses.
#[derive(Debug, Clone)]
enum Addrs {
    /// The devices' own addresses (sorted ids).
    Nodes(Arc<[NodeId]>),
    /// Literal addresses (`*` is the tailnet ranges and routes).
    Set(Arc<AddrSet>),
    /// Every device's own addresses (`*` as a posture-gated source).
    Devices,
}

impl Addrs {
    /// True if `addr`, an address of device `node` (if any), is in the set.
    fn contains(&self, addr: IpAddr, node: Option<NodeId>) -> bool {
        match self {
            Addrs::Nodes(ids) => node.is_some_and(|id| ids.binary_search(&id).is_ok()),
            Addrs::Devices => node.is_some(),
            Addrs::Set(set) => set.contains(addr),
        }
    }
}

#[derive(Debug, Clone)]
enum Dst {
    /// `*`.
    Any,
    /// Addresses.
    Addrs(Addrs),
    /// `autogroup:self`: devices of the source device's own user.
    SelfDevices,
}

/// Run the `tests` block.
pub(super) fn run(policy: &Policy, compiled: &Compiled, policy_only: bool) -> Vec<TestResult> {
    if policy.tests.is_empty() {
        return Vec::new();
    }
    let rules = rules(policy, compiled.table(), Judged::Tests);
    let mut endpoints = Endpoints::new(policy, compiled).policy_only(policy_only);
    let mut out = Vec::new();
    let mut budget = DEVICE_CHECK_BUDGET;
    for (i, test) in policy.tests.iter().enumerate() {
        run_test(&rules, &mut endpoints, i, test, &mut out, &mut budget);
    }
    out
}

fn run_test(
    rules: &Rules,
    endpoints: &mut Endpoints<'_>,
    index: usize,
    test: &NetworkTest,
    out: &mut Vec<TestResult>,
    budget: &mut usize,
) {
    let malformed = |error| TestResult::malformed(TestKind::Network, index, test.span, error);
    let src_text = match super::source_text(test.src.as_ref()) {
        Ok(text) => text,
        Err(error) => return out.push(malformed(error)),
    };
    if test.accept.is_empty() && test.deny.is_empty() {
        out.push(malformed(TestError::NoAssertions));
        return;
    }
    // `None`: the source has no devices, so only `deny` assertions can be judged (they hold).
    // Judging the policy alone, the destinations are still checked.
    let sources = match endpoints.resolve(src_text, Side::Source) {
        Ok(devices) => Some(devices),
        Err(error)
            if (test.accept.is_empty() || endpoints.is_policy_only())
                && has_no_devices(&error, src_text) =>
        {
            None
        }
        Err(error) => {
            out.push(malformed(error));
            return;
        }
    };
    let (protos, proto_name) = match test_protocols(test.proto.as_ref().map(|p| p.value.as_str())) {
        Ok(found) => found,
        Err(error) => {
            out.push(malformed(error));
            return;
        }
    };
    let entries = test
        .accept
        .iter()
        .map(|e| (e, Expectation::Allowed))
        .chain(test.deny.iter().map(|e| (e, Expectation::Denied)));
    for (entry, expected) in entries {
        let dst_text = entry.value.trim();
        let subject = format!("{src_text} -> {dst_text} ({proto_name})");
        // ICMP has no ports: a dst without one is evaluated on its addresses (as port 0).
        let icmp = protos.iter().all(|p| matches!(p, 1 | 58));
        let outcome = destination(endpoints, dst_text, icmp);
        let portless = matches!(outcome, Ok((_, None)));
        // Devices of the destination, when only some are reached and a deny holds on the
        // reading that every device must be.
        let mut unsettled: Option<usize> = None;
        let outcome = outcome.map(|(devices, port)| match &sources {
            Some(sources) => {
                let posture = Posture {
                    index: endpoints.index(),
                    table: endpoints.table(),
                    assumed: assumed_attrs(test.src_posture_attrs.as_ref()),
                };
                let port = port.unwrap_or(0);
                let found = verdict(rules, &posture, sources, &devices, &protos, port);
                let refused = expected == Expectation::Denied && found != Verdict::Denied;
                let asked = (&sources[..], &devices[..], &protos[..], port);
                if refused && some_device_unreached(rules, &posture, asked, budget) {
                    unsettled = Some(devices.len());
                    return Verdict::Denied;
                }
                found
            }
            None => Verdict::Denied,
        });
        let mut result = TestResult::evaluated(
            TestKind::Network,
            index,
            entry.span,
            subject,
            expected,
            outcome,
        );
        if portless && result.passed {
            result.warning = Some(format!(
                "dst {} has no port: ICMP has none, so aclc evaluated the test on its addresses; \
                 it cannot verify that Tailscale accepts a dst without a port",
                quote(dst_text)
            ));
        }
        if let Some(count) = unsettled.filter(|_| result.passed) {
            result.warning = Some(format!(
                "dst {} stands for {count} devices and only some of them are reached: the deny \
                 holds if Tailscale requires every device to be reached (as a policy Tailscale \
                 applies with its tests suggests), not if one is enough; aclc cannot verify \
                 which Tailscale does",
                quote(dst_text)
            ));
        }
        if sources.is_none() && result.passed {
            result.warning = Some(format!(
                "src {} has no devices in the inventory, so this deny holds vacuously",
                quote(src_text)
            ));
        }
        out.push(result);
    }
}

/// The protocols a test's `proto` asks about, and their name (`tcp/udp` without one).
fn test_protocols(proto: Option<&str>) -> Result<(Vec<u8>, String), TestError> {
    match proto.map(str::trim) {
        None | Some("") => Ok((DEFAULT_TEST_PROTOS.to_vec(), "tcp/udp".to_string())),
        Some(text) => match Protocol::parse(text) {
            Ok(p) => Ok((vec![p.0], p.to_string())),
            Err(why) => Err(TestError::InvalidProtocol(format!(
                "proto {}: {why}",
                quote(text)
            ))),
        },
    }
}

/// True when resolving a test's `src` failed only because it stands for no device: an alias
/// with no devices, or a user the inventory does not know (a user who has not joined yet).
/// Unknown groups, tags and hosts are mistakes in the policy and stay failures.
fn has_no_devices(error: &TestError, src_text: &str) -> bool {
    match error {
        TestError::NoSourceDevices(_) => true,
        TestError::UnknownSource(_) => matches!(Alias::parse(src_text), Ok(Alias::User(_))),
        _ => false,
    }
}

/// A destination entry `host:port`: its devices and the port. Without a port (`web-1`,
/// `tag:web`, `group:eng`: a selector without its port) it is an error, except for a test
/// of ICMP only (`portless_ok`), which has no ports: its devices and no port.
fn destination(
    endpoints: &mut Endpoints<'_>,
    text: &str,
    portless_ok: bool,
) -> Result<(Vec<Device>, Option<u16>), TestError> {
    let mut no_port = || match portless_ok {
        true => Ok((endpoints.resolve(text, Side::Destination)?, None)),
        false => Err(TestError::InvalidDestination(format!(
            "dst {} has no port: write host:port",
            quote(text)
        ))),
    };
    let Some((host, port_text)) = text.rsplit_once(':') else {
        return no_port();
    };
    if matches!(host, "tag" | "group" | "autogroup" | "svc") {
        return no_port();
    }
    let port = port_number(port_text).ok_or_else(|| {
        TestError::InvalidDestination(format!(
            "dst {}: a test names one port (a number from 0 to 65535), not {}",
            quote(text),
            quote(port_text)
        ))
    })?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let devices = endpoints.resolve(host, Side::Destination)?;
    Ok((devices, Some(port)))
}

/// A single port: decimal digits, 0 to 65535 (0, as in Tailscale's port ranges: an ICMP test
/// names it for want of a port).
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok()
}

/// The attributes a test assumes for its source devices (`srcPostureAttrs`).
pub(super) fn assumed_attrs(
    attrs: Option<&aclc_policy::model::Spanned<serde_json::Value>>,
) -> Option<&serde_json::Map<String, serde_json::Value>> {
    attrs.and_then(|a| a.value.as_object())
}

/// How a test judges posture gates: the inventory's attributes, or the test's for its source
/// devices.
struct Posture<'a> {
    index: &'a PolicyIndex<'a>,
    table: &'a NodeTable,
    assumed: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl Posture<'_> {
    /// True if the rule's gate (if any) admits the source device `node` (an address that is
    /// no device's has no posture and fails).
    fn admits(&self, rule: &NetRule, node: Option<NodeId>) -> bool {
        let Some(gate) = &rule.gate else {
            return true;
        };
        let Some(id) = node else {
            return false;
        };
        match self.assumed {
            Some(attrs) => admits(|n| self.index.posture(n), gate, |k| attrs.get(k)),
            None => self
                .table
                .get(id)
                .is_some_and(|n| admits(|n| self.index.posture(n), gate, |k| n.posture.get(k))),
        }
    }
}

/// The ports a question asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// One port (TCP, UDP, SCTP).
    Port(u16),
    /// No port (ICMP): any port a rule opens counts.
    AnyPort,
    /// A protocol without ports (GRE, ESP, ...), as the client matches it
    /// (`matchProtoAndIPsOnlyIfAllPorts`): only a rule open on every port counts.
    EveryPort,
}

/// What the rules do with traffic from every source address to the destination.
fn verdict(
    rules: &Rules,
    posture: &Posture<'_>,
    sources: &[Device],
    destinations: &[Device],
    protos: &[u8],
    port: u16,
) -> Verdict {
    judge(
        rules,
        posture,
        sources,
        destinations,
        protos,
        Asked::Port(port),
    )
    .0
}

/// [`verdict`], and on a denial the first source address no rule lets through (with its
/// device). `port: None` asks about some port (ICMP has none): any port a rule opens counts.
fn judge(
    rules: &Rules,
    posture: &Posture<'_>,
    sources: &[Device],
    destinations: &[Device],
    protos: &[u8],
    port: Asked,
) -> (Verdict, Option<Failed>) {
    let asked = (protos, port, destinations);
    let through = |rule: &NetRule, source: &Device, addr: IpAddr, family: bool| {
        lets_through(rule, posture, asked, (source, addr), family)
    };
    let mut by: Vec<Span> = Vec::new();
    for source in sources {
        for &addr in &source.addrs {
            let allowing = rules
                .candidates(port)
                .find(|rule| through(rule, source, addr, false));
            match allowing {
                None => return (Verdict::Denied, Some((addr, source.node))),
                Some(rule) => by.extend(rule.span),
            }
        }
    }
    // Some source address must reach a destination address of its own family: a rule from
    // an IPv4-only device to another device's IPv6 address lets through no packet at all
    // (every source address covered, as above, is not enough). Where one family gets
    // through, the verdict stands: which family Tailscale's tests weigh is not known.
    let one_family = sources.iter().any(|source| {
        source.addrs.iter().any(|&addr| {
            rules
                .candidates(port)
                .any(|rule| through(rule, source, addr, true))
        })
    });
    if !one_family {
        let first = sources
            .iter()
            .find_map(|s| s.addrs.first().map(|&a| (a, s.node)));
        return (Verdict::Denied, first);
    }
    by.sort_unstable();
    by.dedup();
    (Verdict::Allowed { by }, None)
}

/// A source address no rule lets through, with its device's node.
type Failed = (IpAddr, Option<NodeId>);

/// True when `rule` lets `addr` (of `source`) through on `protos` and `port` to some address
/// of `destinations` (of `addr`'s family, when `family`).
fn lets_through(
    rule: &NetRule,
    posture: &Posture<'_>,
    (protos, port, destinations): (&[u8], Asked, &[Device]),
    (source, addr): (&Device, IpAddr),
    family: bool,
) -> bool {
    rule.src.iter().any(|part| part.contains(addr, source.node))
        && posture.admits(rule, source.node)
        && opens(rule, protos, port)
        && reaches_family(
            rule,
            posture.table,
            source.node,
            destinations,
            family.then_some(addr),
        )
}

/// True when some address of `destinations` is of `addr`'s family (a packet from `addr` can
/// reach it at all).
fn has_family(destinations: &[Device], addr: IpAddr) -> bool {
    destinations
        .iter()
        .any(|d| d.addrs.iter().any(|a| a.is_ipv4() == addr.is_ipv4()))
}

/// [`judge`] for the traffic (`aclc explain`), not a test: each source device must get
/// through on some address to a destination address of the same family. An address without
/// a destination address of its family sends nothing, so it is not judged; and one family is
/// enough (a device whose IPv6 address no rule names still reaches the destination over
/// IPv4). On a denial, the device that gets through on no address, with its first address
/// that has a destination of its family (its first address when none has: no common family).
/// Also the judged addresses that do not get through while another address of their device
/// does (the verdict holds for the other family only).
fn judge_traffic(
    rules: &Rules,
    posture: &Posture<'_>,
    (sources, destinations): (&[Device], &[Device]),
    protos: &[u8],
    port: Asked,
) -> (Verdict, Option<Failed>, Vec<IpAddr>) {
    let asked = (protos, port, destinations);
    let mut by: Vec<Span> = Vec::new();
    let mut partial = Vec::new();
    for source in sources {
        let judged: Vec<IpAddr> = source
            .addrs
            .iter()
            .copied()
            .filter(|&a| has_family(destinations, a))
            .collect();
        let mut through = false;
        let mut failed = Vec::new();
        for &addr in &judged {
            let allowing = rules
                .candidates(port)
                .find(|rule| lets_through(rule, posture, asked, (source, addr), true));
            match allowing {
                Some(rule) => {
                    through = true;
                    by.extend(rule.span);
                }
                None => failed.push(addr),
            }
        }
        if !through {
            let first = judged.first().or(source.addrs.first()).copied();
            return (Verdict::Denied, first.map(|a| (a, source.node)), Vec::new());
        }
        partial.extend(failed);
    }
    by.sort_unstable();
    by.dedup();
    (Verdict::Allowed { by }, None, partial)
}

/// Work (destination devices times source addresses times rules, summed over a policy's
/// tests) beyond which [`some_device_unreached`] does not look, and a deny keeps its failure.
const DEVICE_CHECK_BUDGET: usize = 1 << 24;

/// True if some device of a destination with several is not reached when judged alone. How
/// Tailscale judges a destination whose devices disagree is not known: one reached device may
/// be enough (headscale's evaluator, [`verdict`]), or every device may have to be (a public
/// policy Tailscale applies with its tests, abl030/nixosconfig, denies `tag:server:22000`
/// while a grant opens that port on one `tag:server` device). A `deny` that holds on the
/// second reading passes, with a warning, rather than refusing a policy Tailscale may accept.
/// The work is charged to `budget`, shared by a policy's tests.
fn some_device_unreached(
    rules: &Rules,
    posture: &Posture<'_>,
    (sources, destinations, protos, port): (&[Device], &[Device], &[u8], u16),
    budget: &mut usize,
) -> bool {
    if destinations.len() < 2 {
        return false;
    }
    let addrs: usize = sources.iter().map(|s| s.addrs.len()).sum();
    let work = destinations
        .len()
        .saturating_mul(addrs.max(1))
        .saturating_mul(rules.len().max(1));
    if work > *budget {
        return false;
    }
    *budget -= work;
    destinations.iter().any(|d| {
        verdict(
            rules,
            posture,
            sources,
            std::slice::from_ref(d),
            protos,
            port,
        ) == Verdict::Denied
    })
}

/// True if the rule opens one of `protos` on the ports asked about.
fn opens(rule: &NetRule, protos: &[u8], port: Asked) -> bool {
    // The ranges are sorted and disjoint ([`merged`]).
    let has = |port: u16| {
        let i = rule.ports.partition_point(|r| r.last < port);
        rule.ports.get(i).is_some_and(|r| r.contains(port))
    };
    rule_protos(rule).any(|p| protos.contains(&p))
        && match port {
            Asked::Port(port) => has(port),
            Asked::AnyPort => !rule.ports.is_empty(),
            Asked::EveryPort => rule.ports.first() == Some(&PortRange::ANY),
        }
}

fn rule_protos(rule: &NetRule) -> impl Iterator<Item = u8> + '_ {
    let list: &[u8] = match &rule.proto {
        Some(p) => std::slice::from_ref(p),
        None => &DEFAULT_RULE_PROTOS,
    };
    list.iter().copied()
}

/// True if the rule's destination covers an address of the destination devices, for traffic
/// from `source` (the node of the source address, if any).
fn reaches(
    rule: &NetRule,
    table: &NodeTable,
    source: Option<NodeId>,
    destinations: &[Device],
) -> bool {
    reaches_family(rule, table, source, destinations, None)
}

/// [`reaches`], counting only destination addresses of the family of `from` when given.
fn reaches_family(
    rule: &NetRule,
    table: &NodeTable,
    source: Option<NodeId>,
    destinations: &[Device],
    from: Option<IpAddr>,
) -> bool {
    let family = |a: &IpAddr| from.is_none_or(|f| f.is_ipv4() == a.is_ipv4());
    match &rule.dst {
        Dst::Any => from.is_none() || destinations.iter().any(|d| d.addrs.iter().any(family)),
        Dst::Addrs(addrs) => destinations.iter().any(|d| {
            d.addrs
                .iter()
                .any(|&a| family(&a) && addrs.contains(a, d.node))
        }),
        Dst::SelfDevices => {
            let owner = |id: Option<NodeId>| {
                let node = table.get(id?)?;
                if node.is_tagged() {
                    None
                } else {
                    node.owner
                }
            };
            let Some(user) = owner(source) else {
                return false;
            };
            destinations
                .iter()
                .any(|d| owner(d.node) == Some(user) && d.addrs.iter().any(family))
        }
    }
}

/// What the rules are built to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
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
fn rules(policy: &Policy, table: &NodeTable, judged: Judged) -> Rules {
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
struct Rules {
    list: Vec<NetRule>,
    /// For each block of 256 ports, the rules open on some port in it (positions in `list`,
    /// ascending), for rules open on at most [`Rules::NARROW`] blocks.
    blocks: Vec<Vec<u32>>,
    /// The other rules (open on many blocks), ascending.
    wide: Vec<u32>,
}

impl Rules {
    /// Rules open on at most this many blocks are listed in each; others in `wide`.
    const NARROW: usize = 8;

    fn new(list: Vec<NetRule>) -> Rules {
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
    fn candidates(&self, port: Asked) -> Box<dyn Iterator<Item = &NetRule> + '_> {
        let Asked::Port(port) = port else {
            return Box::new(self.list.iter());
        };
        let narrow: &[u32] = self
            .blocks
            .get(usize::from(port >> 8))
            .map_or(&[], Vec::as_slice);
        Box::new(
            super::in_order(narrow, &self.wide)
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
fn merged(ports: &[PortRange]) -> Vec<PortRange> {
    crate::addrset::normalize(ports.iter().map(|r| (r.first, r.last)).collect())
        .into_iter()
        .map(|(first, last)| PortRange { first, last })
        .collect()
}

/// What the routers of one `via` list carry, as their filters hold a `via` grant's rules.
struct Routed {
    /// What they carry to a destination written as prefixes: their approved subnet routes,
    /// and on an approved exit node the internet's ranges of its exit routes' families (a
    /// private prefix through an exit node puts no rule on it).
    routes: Arc<AddrSet>,
    /// What `*` adds, put on their filters as written: the own addresses of those serving a
    /// route, and every address beyond the tailnet of an exit node's families (a client
    /// sends there what no subnet route carries).
    any: Arc<AddrSet>,
}

/// What the routers carrying one of a `via` grant's tags carry ([`Routed`]).
fn via_routes(table: &NodeTable, via: &[aclc_policy::model::Selector]) -> Routed {
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
fn every_address() -> AddrSet {
    let mut all = AddrSet::from_net(IpNet::V4(Ipv4Net::default()));
    all.add(&AddrSet::from_net(IpNet::V6(Ipv6Net::default())));
    all
}

/// The part of a `via` grant's destination its routers carry ([`via_routes`]): `*` is what
/// they route, their own addresses and, through an exit node, every address beyond the
/// tailnet of its families.
fn routed_part(dst: Dst, routed: &Routed) -> Dst {
    if matches!(dst, Dst::Any) {
        return Dst::Addrs(Addrs::Set(routed.any.clone()));
    }
    routed_within(dst, &routed.routes)
}

/// The part of a destination inside `routed`.
fn routed_within(dst: Dst, routed: &Arc<AddrSet>) -> Dst {
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
fn star(table: &NodeTable) -> AddrSet {
    let mut set = AddrSet::from_wire(TAILNET_WIRE);
    set.add(&routes_of(table, |_| true));
    set
}

/// The subnet routes the nodes `keep` accepts serve, as one set: one sort of them all, not
/// a walk of the whole set per route (quadratic in the routes).
fn routes_of(table: &NodeTable, keep: impl Fn(&crate::nodes::NodeInfo) -> bool) -> AddrSet {
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
fn internet_beyond_routes(table: &NodeTable) -> AddrSet {
    let mut set = AddrSet::from_wire(INTERNET_WIRE);
    set.remove(&routes_of(table, |n| !n.exit));
    set
}

/// A rule destination. `autogroup:internet` is its address set (`internet`): a test aimed at
/// a public address is judged by the rules that let the source use an exit node for it.
fn destination_of(target: Target, internet: &Arc<AddrSet>) -> Dst {
    match target {
        Target::Wildcard | Target::DangerAll => Dst::Any,
        Target::Internet => Dst::Addrs(Addrs::Set(internet.clone())),
        Target::SelfDevices => Dst::SelfDevices,
        Target::Nodes(ids) => Dst::Addrs(Addrs::Nodes(ids)),
        Target::Literal(lit) => Dst::Addrs(Addrs::Set(Arc::new(lit.set.clone()))),
    }
}

/// `aclc explain` for traffic: what the rules do with traffic from `src` to `dst`
/// (`host:port`, or a bare host for a protocol without ports), judged by [`judge`], the code
/// `tests` use, over the rules as the nodes' filters hold them ([`Judged::Traffic`]: a `via`
/// grant only through its routers), with a protocol without ports let through only by a
/// rule open on every port, and ICMP, when no rule opens it, by any rule open to the source
/// on some protocol and port (the client lets ICMP through to such an address). On a denial,
/// the near misses are the rules that reach the destination but fail the first source
/// address no rule lets through: by source, by posture gate, or by port and protocol.
pub(super) fn explain(
    policy: &Policy,
    compiled: &Compiled,
    query: &super::explain::NetworkQuery<'_>,
) -> Result<super::explain::Explanation, TestError> {
    explain_with(policy, compiled, None, query)
}

/// The policy's network rules as [`explain`] judges them, built once for many questions (the
/// access diff asks one per change it attributes; building them resolves every rule, so
/// building them per question cost the policy's size each time).
#[derive(Debug)]
pub struct NetRules(Rules);

impl NetRules {
    /// The rules of `policy` over `compiled`'s nodes.
    pub(crate) fn new(policy: &Policy, compiled: &Compiled) -> NetRules {
        NetRules(rules(policy, compiled.table(), Judged::Traffic))
    }
}

/// [`explain`] with the rules built beforehand (`None`: built here, after the query's own
/// checks), which must be [`NetRules::new`] of the same `policy` and `compiled`.
pub(crate) fn explain_with(
    policy: &Policy,
    compiled: &Compiled,
    prebuilt: Option<&NetRules>,
    query: &super::explain::NetworkQuery<'_>,
) -> Result<super::explain::Explanation, TestError> {
    use super::explain::{resolve_named, Explanation};
    let src_text = query.src.trim();
    let dst_text = query.dst.trim();
    let (protos, proto_name) = test_protocols(query.proto)?;
    let mut endpoints = Endpoints::new(policy, compiled);
    let (host, port) = split_port(dst_text)?;
    // Only TCP, UDP and SCTP have ports. A node lets ICMP through on addresses alone, and
    // another protocol (GRE, ESP, ...) only by a rule open on every port, whatever port is
    // named.
    let icmp_only = protos.iter().all(|p| matches!(p, 1 | 58));
    let portless = protos.iter().all(|p| !matches!(p, 6 | 17 | 132));
    let port = match port {
        _ if icmp_only => Asked::AnyPort,
        _ if portless => Asked::EveryPort,
        Some(port) => Asked::Port(port),
        None => {
            return Err(TestError::InvalidDestination(format!(
                "dst {} has no port: write DST:PORT ({proto_name} needs a port; ICMP, GRE and \
                 other protocols without ports do not)",
                quote(dst_text)
            )))
        }
    };
    let destinations = resolve_named(&mut endpoints, host, Side::Destination)?;
    let sources = match resolve_named(&mut endpoints, src_text, Side::Source) {
        Ok(devices) => devices,
        Err(error) if has_no_devices(&error, src_text) => {
            return Ok(Explanation {
                verdict: Verdict::Denied,
                reason: format!(
                    "src {} has no devices in the inventory, so it reaches nothing",
                    quote(src_text)
                ),
                misses: Vec::new(),
                notes: Vec::new(),
            })
        }
        Err(error) => return Err(error),
    };
    // A name read as the policy's alias that is also an inventory node's, not meant here.
    let note = [
        super::explain::shadowed(&endpoints, src_text, &sources),
        super::explain::shadowed(&endpoints, host, &destinations),
    ]
    .concat();
    let answer = || -> Result<Explanation, TestError> {
        let table = compiled.table();
        let built;
        let rules: &Rules = match prebuilt {
            Some(NetRules(rules)) => rules,
            None => {
                built = rules(policy, table, Judged::Traffic);
                &built
            }
        };
        let posture = Posture {
            index: endpoints.index(),
            table,
            assumed: query.src_posture_attrs,
        };
        let what = match port {
            Asked::Port(port) => format!("port {port} ({proto_name})"),
            Asked::AnyPort => proto_name.clone(),
            // Nodes let such a protocol through only by a rule open on every port.
            Asked::EveryPort => format!("{proto_name} on every port"),
        };
        let ends = (&sources[..], &destinations[..]);
        let (verdict, denied, partial) = judge_traffic(rules, &posture, ends, &protos, port);
        if denied.is_some() && icmp_only {
            // A node lets ICMP through to an address any rule opens to the source, whatever the
            // rule's protocols and ports (`matchIPsOnly`: "if any port is open, ping works").
            let every: Vec<u8> = (0..=u8::MAX).collect();
            let (verdict, denied, partial) =
                judge_traffic(rules, &posture, ends, &every, Asked::AnyPort);
            if denied.is_none() && verdict.is_allowed() {
                return Ok(Explanation {
                    reason: format!(
                        "{src_text} reaches {dst_text} on {what}{}: no rule opens {what}, but a \
                         node lets ICMP through to any of its addresses a rule opens to the source \
                         on some protocol and port",
                        only_family(&partial)
                    ),
                    verdict,
                    misses: Vec::new(),
                    notes: Vec::new(),
                });
            }
        }
        let Some((addr, node)) = denied else {
            let only = only_family(&partial);
            let reason = match verdict.rules().len() {
                0 => "allowed by the default policy (no acls or grants)".to_string(),
                1 => format!("{src_text} reaches {dst_text} on {what} by 1 rule{only}"),
                n => format!("{src_text} reaches {dst_text} on {what} by {n} rules{only}"),
            };
            return Ok(Explanation {
                verdict,
                reason,
                misses: Vec::new(),
                notes: Vec::new(),
            });
        };
        // No destination address of the source's family: no packet can be sent at all.
        if !has_family(&destinations, addr) {
            return Ok(Explanation {
                verdict,
                reason: format!(
                    "{src_text} ({addr}) has no address of the family of {dst_text}'s: no packet \
                     can pass between them"
                ),
                misses: Vec::new(),
                notes: Vec::new(),
            });
        }
        let mut misses: Vec<super::explain::Miss> = Vec::new();
        for rule in rules.iter() {
            let Some(span) = rule.span else {
                continue;
            };
            if !reaches(rule, table, node, &destinations) {
                continue;
            }
            let why = if !rule.src.iter().any(|part| part.contains(addr, node)) {
                format!("src {} ({addr}) is not in the rule's src", quote(src_text))
            } else if !posture.admits(rule, node) {
                format!(
                    "the rule's posture gate does not admit src {} ({addr})",
                    quote(src_text)
                )
            } else if !opens(rule, &protos, port) {
                let named: Vec<String> =
                    rule_protos(rule).map(|p| Protocol(p).to_string()).collect();
                let ports: Vec<String> = rule.ports.iter().map(ToString::to_string).collect();
                match rule_protos(rule).any(|p| protos.contains(&p)) {
                    // The port may be open: the protocol is what is missing.
                    false => format!(
                        "the rule opens {} (ports {}), not {proto_name}",
                        named.join("/"),
                        ports.join(",")
                    ),
                    true => format!(
                        "the rule opens {} on ports {}, not {what}",
                        named.join("/"),
                        ports.join(",")
                    ),
                }
            } else {
                continue;
            };
            if !misses.iter().any(|m| m.span == span && m.why == why) {
                misses.push(super::explain::Miss { span, why });
            }
        }
        misses.sort_by_key(|m| m.span);
        Ok(Explanation {
            verdict,
            reason: format!("no rule lets {src_text} ({addr}) reach {dst_text} on {what}"),
            misses,
            notes: Vec::new(),
        })
    };
    let mut explanation = answer()?;
    explanation.reason.push_str(&note);
    Ok(explanation)
}

/// What an allowed flow's reason adds when some source addresses do not get through while
/// another address of their device does: `, over IPv4 only (no rule lets fd7a:... through)`.
fn only_family(partial: &[IpAddr]) -> String {
    let Some(first) = partial.first() else {
        return String::new();
    };
    let more = match partial.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let other = match first.is_ipv4() {
        true => "IPv6",
        false => "IPv4",
    };
    match partial.iter().all(|a| a.is_ipv4() == first.is_ipv4()) {
        true => format!(", over {other} only (no rule lets {first}{more} through)"),
        false => format!(", not from every address (no rule lets {first}{more} through)"),
    }
}

/// `host:port`, `[v6]:port`, or a bare host (an IPv6 address, `tag:web`): the host and the
/// port, if any. A port that is not a number from 0 to 65535 is an error.
fn split_port(text: &str) -> Result<(&str, Option<u16>), TestError> {
    if text.parse::<IpAddr>().is_ok() {
        return Ok((text, None));
    }
    let Some((host, port_text)) = text.rsplit_once(':') else {
        return Ok((text, None));
    };
    // `web-1:*`, `web-1:80-90`, `web-1:80,443`: a rule's ports, where one is asked about.
    let ports_like = |p: &str| p.bytes().all(|b| b.is_ascii_digit() || b"*-,".contains(&b));
    if !port_text.is_empty()
        && ports_like(port_text)
        && !port_text.bytes().all(|b| b.is_ascii_digit())
        && !matches!(host, "tag" | "group" | "autogroup" | "svc")
    {
        return Err(TestError::InvalidDestination(format!(
            "dst {}: explain asks about one port (a number from 0 to 65535), not {}",
            quote(text),
            quote(port_text)
        )));
    }
    if port_text.is_empty() || !port_text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((text, None));
    }
    let port = port_number(port_text).ok_or_else(|| {
        TestError::InvalidDestination(format!(
            "dst {}: a port is a number from 0 to 65535, not {}",
            quote(text),
            quote(port_text)
        ))
    })?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, Some(port)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn rule(ports: Vec<PortRange>) -> NetRule {
        NetRule {
            span: None,
            src: Arc::from(Vec::new()),
            gate: None,
            proto: None,
            dst: Dst::Any,
            ports: merged(&ports),
        }
    }

    proptest! {
        /// The port index against the plain scan: for any port, the candidates are exactly
        /// the rules open on some port of its block or on wide ranges, in rule order, and
        /// every rule open on the port is among them.
        #[test]
        fn candidates_hold_every_rule_open_on_the_port(
            ranges in proptest::collection::vec(
                proptest::collection::vec((any::<u16>(), 0u16..3000), 0..4), 0..40),
            asked in proptest::collection::vec(any::<u16>(), 1..20),
        ) {
            let list: Vec<NetRule> = ranges
                .iter()
                .map(|r| {
                    rule(r.iter().map(|&(first, len)| PortRange {
                        first,
                        last: first.saturating_add(len),
                    }).collect())
                })
                .collect();
            let rules = Rules::new(list);
            for port in asked {
                let got: Vec<usize> = rules
                    .candidates(Asked::Port(port))
                    .map(|c| rules.iter().position(|r| std::ptr::eq(r, c)).unwrap())
                    .collect();
                let mut sorted = got.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(&got, &sorted, "in rule order, each once");
                for (i, r) in rules.iter().enumerate() {
                    if r.ports.iter().any(|p| p.contains(port)) {
                        prop_assert!(got.contains(&i), "rule {} open on {} missed", i, port);
                    }
                }
            }
            let all: Vec<usize> = rules
                .candidates(Asked::AnyPort)
                .map(|c| rules.iter().position(|r| std::ptr::eq(r, c)).unwrap())
                .collect();
            prop_assert_eq!(all, (0..rules.len()).collect::<Vec<_>>());
        }
    }
}
