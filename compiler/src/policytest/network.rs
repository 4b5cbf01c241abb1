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

mod answer;
mod rules;

pub use answer::NetRules;
pub(crate) use answer::{explain, explain_with, RECORDER_ACCESS};
use rules::*;

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
        // A source address let through, when a deny holds because another is not.
        let mut partly: Option<Failed> = None;
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
                if expected == Expectation::Denied && found == Verdict::Denied {
                    partly = some_address_through(rules, &posture, asked, budget);
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
        if let Some((addr, node)) = partly.filter(|_| result.passed) {
            let device = node
                .and_then(|id| endpoints.table().get(id))
                .map_or(String::new(), |n| format!(" of {}", n.name));
            result.warning = Some(format!(
                "the deny holds only because some addresses of src {} do not get through: \
                 {addr}{device} does; aclc judges a source allowed when every address of its \
                 devices is (as headscale does), and cannot verify that Tailscale judges it so",
                quote(src_text)
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
    let open = Open::list(rules, sources, (protos, port, destinations));
    let through = |o: &Open<'_>, source: &Device, addr: IpAddr, family: bool| {
        o.lets_through(posture, destinations, (source, addr), family)
    };
    let mut by: Vec<Span> = Vec::new();
    for source in sources {
        for &addr in &source.addrs {
            let allowing = open.iter().find(|o| through(o, source, addr, false));
            match allowing {
                None => return (Verdict::Denied, Some((addr, source.node))),
                Some(o) => by.extend(o.rule.span),
            }
        }
    }
    // Some source address must reach a destination address of its own family: a rule from
    // an IPv4-only device to another device's IPv6 address lets through no packet at all
    // (every source address covered, as above, is not enough). Where one family gets
    // through, the verdict stands: which family Tailscale's tests weigh is not known.
    let one_family = sources.iter().any(|source| {
        source
            .addrs
            .iter()
            .any(|&addr| open.iter().any(|o| through(o, source, addr, true)))
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

/// A rule that opens the protocol and port a question asks about, with what it reaches of
/// the question's destinations: decided once per question, so judging every source address
/// costs O(sources x open rules), not O(sources x rules x destinations) (a test from a group
/// of 2,000 devices past 4,000 rules to other hosts took 50 s).
struct Open<'r> {
    rule: &'r NetRule,
    reach: Reach,
}

/// What an [`Open`] rule reaches.
#[derive(Clone, Copy)]
enum Reach {
    /// The same for every source: some destination address at all, of IPv4, of IPv6.
    Fixed { any: bool, v4: bool, v6: bool },
    /// `autogroup:self`: the source's own user's devices, judged per source.
    PerSource,
}

impl<'r> Open<'r> {
    /// The rules of `rules` open on `protos` and `port` whose sources hold some address of
    /// `sources` and that reach some destination (or, for `autogroup:self`, may), in rule
    /// order. The sources are looked at first: a rule is usually decided by its first source
    /// address, and only a rule that takes some source has its reach computed (over every
    /// destination device), so a policy of many rules costs O(rules x sources + taking rules
    /// x destinations) per question (an ICMP test, whose candidates are every rule, cost
    /// O(rules x destinations): cubic over a policy's tests).
    fn list(
        rules: &'r Rules,
        sources: &[Device],
        (protos, port, destinations): (&[u8], Asked, &[Device]),
    ) -> Vec<Open<'r>> {
        let takes_some = |rule: &NetRule| {
            sources.iter().any(|s| {
                s.addrs
                    .iter()
                    .any(|&a| rule.src.iter().any(|part| part.contains(a, s.node)))
            })
        };
        let families = |covers: &dyn Fn(IpAddr, Option<NodeId>) -> bool| {
            let (mut v4, mut v6) = (false, false);
            for d in destinations {
                for &a in &d.addrs {
                    if covers(a, d.node) {
                        v4 |= a.is_ipv4();
                        v6 |= a.is_ipv6();
                    }
                }
            }
            (v4, v6)
        };
        rules
            .candidates(port)
            .filter(|rule| opens(rule, protos, port) && takes_some(rule))
            .filter_map(|rule| {
                let reach = match &rule.dst {
                    Dst::Any => {
                        let (v4, v6) = families(&|_, _| true);
                        Reach::Fixed { any: true, v4, v6 }
                    }
                    Dst::Addrs(addrs) => {
                        let (v4, v6) = families(&|a, node| addrs.contains(a, node));
                        Reach::Fixed {
                            any: v4 || v6,
                            v4,
                            v6,
                        }
                    }
                    Dst::SelfDevices => Reach::PerSource,
                };
                match reach {
                    Reach::Fixed { any: false, .. } => None,
                    reach => Some(Open { rule, reach }),
                }
            })
            .collect()
    }

    /// True when the rule lets `addr` (of `source`) through to some address of
    /// `destinations` (of `addr`'s family, when `family`), its reach decided already.
    fn lets_through(
        &self,
        posture: &Posture<'_>,
        destinations: &[Device],
        (source, addr): (&Device, IpAddr),
        family: bool,
    ) -> bool {
        let rule = self.rule;
        rule.src.iter().any(|part| part.contains(addr, source.node))
            && posture.admits(rule, source.node)
            && match self.reach {
                Reach::Fixed { any, v4, v6 } => match (family, addr.is_ipv4()) {
                    (false, _) => any,
                    (true, true) => v4,
                    (true, false) => v6,
                },
                Reach::PerSource => reaches_family(
                    rule,
                    posture.table,
                    source.node,
                    destinations,
                    family.then_some(addr),
                ),
            }
    }
}

/// A source address no rule lets through, with its device's node.
type Failed = (IpAddr, Option<NodeId>);

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
    let open = Open::list(rules, sources, (protos, port, destinations));
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
            let allowing = open
                .iter()
                .find(|o| o.lets_through(posture, destinations, (source, addr), true));
            match allowing {
                Some(o) => {
                    through = true;
                    by.extend(o.rule.span);
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

/// The rules besides `by` (an allowed verdict's) that let some source address through to a
/// destination address of its family, in policy order: each would keep some of the access
/// were the rules of `by` removed. O(rules open on the port x source addresses), as
/// [`judge_traffic`].
fn also_through(
    rules: &Rules,
    posture: &Posture<'_>,
    (sources, destinations): (&[Device], &[Device]),
    protos: &[u8],
    port: Asked,
    by: &[Span],
) -> Vec<Span> {
    let open = Open::list(rules, sources, (protos, port, destinations));
    let mut also: Vec<Span> = Vec::new();
    for o in &open {
        let Some(span) = o.rule.span else {
            continue;
        };
        // `by` is sorted (`judge_traffic`); a rule met twice is dropped below.
        if by.binary_search(&span).is_ok() {
            continue;
        }
        let through = sources.iter().any(|source| {
            source.addrs.iter().any(|&addr| {
                has_family(destinations, addr)
                    && o.lets_through(posture, destinations, (source, addr), true)
            })
        });
        if through {
            also.push(span);
        }
    }
    also.sort_unstable();
    also.dedup();
    also
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

/// A source address some rule lets through to a destination address of its family (traffic
/// that flows), with its device, when a `deny` holds because another source address is not
/// let through: a group one of whose members has the access, or a device let through over
/// one family only. The work (source addresses times the rules open on the port) is charged
/// to `budget`; past it, `None`.
fn some_address_through(
    rules: &Rules,
    posture: &Posture<'_>,
    (sources, destinations, protos, port): (&[Device], &[Device], &[u8], u16),
    budget: &mut usize,
) -> Option<Failed> {
    let open = Open::list(rules, sources, (protos, Asked::Port(port), destinations));
    let addrs: usize = sources.iter().map(|s| s.addrs.len()).sum();
    let work = addrs.saturating_mul(open.len().max(1));
    if work > *budget {
        return None;
    }
    *budget -= work;
    sources.iter().find_map(|source| {
        source.addrs.iter().find_map(|&addr| {
            open.iter()
                .any(|o| o.lets_through(posture, destinations, (source, addr), true))
                .then_some((addr, source.node))
        })
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

/// `host:port`, `[v6]:port`, or a bare host (an IPv6 address, `tag:web`): the host and the
/// port, if any. A port that is not a number from 0 to 65535 is an error.
pub(super) fn split_port(text: &str) -> Result<(&str, Option<u16>), TestError> {
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
mod tests;
