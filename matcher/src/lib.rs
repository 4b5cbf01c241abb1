//! The node-side packet filter: does this node accept this flow, and by which rule?
//!
//! A node receives its packet filter as a list of Tailscale `FilterRule`s ([`wire`] types;
//! the JSON `aclc-compiler` emits, as Tailscale's control server does). This module reads that list the way the Tailscale client does
//! (`wgengine/filter/tailcfg.go:MatchesFromFilterRules`: a bad entry is skipped and reported,
//! the rest of the filter stays in force) into [`ParsedRules`], and answers questions about
//! flows with the client's semantics (`wgengine/filter/filter.go:RunIn`):
//!
//! - [`Matcher`] is the fast one: per address family, sorted interval tables for sources and
//!   destinations, each mapping to a set of rule indices, intersected per lookup. It is built
//!   once, immutable, `Send + Sync`, and never allocates on [`Matcher::check`].
//! - [`ReferenceMatcher`] is the obviously-right one: a linear scan, written as a transcription
//!   of the client's code. Both have the same API ([`FlowFilter`]) and must agree on every
//!   verdict; the differential tests and the fuzz target hold them to it.
//! - [`FlowCache`] is the stateful layer the client keeps beside its stateless rules: UDP and
//!   SCTP replies to flows this node started are let in for as long as the flow is remembered
//!   (a bounded LRU of 512 flows by default).
//!
//! Verdicts name the rule (its index in the `FilterRule` list) that allowed the flow, or the
//! reason it was refused. `cap:` sources are resolved through a caller-supplied
//! [`CapabilityLookup`], and `CapGrant` rules answer [`FlowFilter::app_capabilities`].
//!
//! How the fast tables are laid out, and what they cost, is written up in the crate's
//! `INTERNALS.md`.

mod fast;
mod flowcache;
mod intervals;
mod parse;
mod reference;
mod sets;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use fast::{Matcher, MatcherStats};
pub use flowcache::FlowCache;
pub use parse::ParsedRules;
pub use reference::ReferenceMatcher;

/// IP protocol numbers the matcher treats specially.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMPV4: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// Tailscale's own messages (TSMP); always accepted towards a local address.
    pub const TSMP: u8 = 99;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// The protocols a rule without `IPProto` covers.
    pub const DEFAULT: [u8; 4] = [TCP, UDP, ICMPV4, ICMPV6];
}

/// The addresses a node answers for: the destinations it accepts at all.
///
/// The client's "local set" is the node's own addresses, the service addresses it hosts and the
/// routes it advertises (for an exit node, `0.0.0.0/0` and `::/0` less its LAN), plus the
/// unspecified addresses for an app connector. The caller assembles it; a flow towards any
/// other destination is refused before any rule is consulted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNetworks {
    /// The node's own addresses (and any service addresses it hosts).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// The routes the node serves (subnet routes, exit routes).
    #[serde(default)]
    pub routes: Vec<IpNet>,
}

impl LocalNetworks {
    /// A node with these addresses and no routes.
    pub fn addresses(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        LocalNetworks {
            addresses: addresses.into_iter().collect(),
            routes: Vec::new(),
        }
    }
}

/// One flow, or one packet of it, as seen arriving at the node.
///
/// The default [`Packet::First`] asks the question a control server asks ("may `src` open a
/// connection to `dst:port`?"): a TCP SYN, an ICMP echo request, the first datagram of a UDP
/// flow. Set [`Flow::packet`] to ask about a later packet of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flow {
    /// Source address (the peer).
    pub src: IpAddr,
    /// Destination address (this node, or a network it serves).
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP); only the flow cache looks at it.
    #[serde(default)]
    pub src_port: u16,
    /// Destination port (TCP, UDP, SCTP); ignored for other protocols.
    #[serde(default, alias = "dport")]
    pub dst_port: u16,
    /// Which packet of the flow this is.
    #[serde(default)]
    pub packet: Packet,
}

impl Flow {
    /// The first packet of a flow of protocol `proto` to `dst:dst_port`.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, dst_port: u16) -> Self {
        Flow {
            src,
            dst,
            proto,
            src_port: 0,
            dst_port,
            packet: Packet::First,
        }
    }

    /// A TCP connection attempt (a SYN) to `dst:port`.
    pub fn tcp(src: IpAddr, dst: IpAddr, port: u16) -> Self {
        Flow::new(src, dst, proto::TCP, port)
    }

    /// A UDP datagram to `dst:port`.
    pub fn udp(src: IpAddr, dst: IpAddr, port: u16) -> Self {
        Flow::new(src, dst, proto::UDP, port)
    }

    /// An ICMP echo request (ICMPv4 or ICMPv6 after the address family of `src`).
    pub fn ping(src: IpAddr, dst: IpAddr) -> Self {
        let proto = if src.is_ipv4() {
            proto::ICMPV4
        } else {
            proto::ICMPV6
        };
        Flow::new(src, dst, proto, 0)
    }

    /// The same flow with its source port set.
    #[must_use]
    pub fn with_src_port(mut self, src_port: u16) -> Self {
        self.src_port = src_port;
        self
    }

    /// The same flow, asking about another packet of it.
    #[must_use]
    pub fn with_packet(mut self, packet: Packet) -> Self {
        self.packet = packet;
        self
    }
}

/// Which packet of a flow is being checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packet {
    /// The packet that opens the flow: a TCP SYN, an ICMP echo request, any other first packet.
    #[default]
    First,
    /// A TCP segment with these flags. Anything but a pure SYN (SYN set, ACK clear) belongs to
    /// an existing connection and is accepted without consulting the rules, as the client does.
    Tcp {
        /// The TCP flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
        flags: u8,
    },
    /// An ICMP message of this type and code. Echo replies (code 0) and error messages are
    /// accepted: IPv4 types 3, 11 and 18 (the client's parameter problem constant is 0x12;
    /// type 12 goes through the rules), ICMPv6 types 1 to 4.
    Icmp {
        /// The ICMP type.
        icmp_type: u8,
        /// The ICMP code.
        code: u8,
    },
}

/// The answer for one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The flow is accepted.
    Allow(Allow),
    /// The flow is dropped.
    Refuse(Refusal),
}

impl Verdict {
    /// Whether the flow is accepted.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }

    /// The index (in the `FilterRule` list) of the rule that allowed the flow, if a rule did.
    pub fn rule(&self) -> Option<usize> {
        match self {
            Verdict::Allow(Allow::Rule { rule, .. }) => Some(*rule),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allow(Allow::Rule { rule, how }) => {
                write!(f, "allowed by rule {rule} ({})", how.describe())
            }
            Verdict::Allow(Allow::TcpNotSyn) => f.write_str("allowed: tcp packet other than a syn"),
            Verdict::Allow(Allow::IcmpReply) => f.write_str("allowed: icmp reply or error"),
            Verdict::Allow(Allow::Tsmp) => f.write_str("allowed: tsmp"),
            Verdict::Allow(Allow::ReturnTraffic) => {
                f.write_str("allowed: reply to a flow this node started")
            }
            Verdict::Allow(Allow::Outbound) => f.write_str("allowed: outbound"),
            Verdict::Refuse(refusal) => write!(f, "refused: {}", refusal.describe()),
        }
    }
}

/// Why a flow is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allow {
    /// A rule allows it; `rule` is the one the client stops at: the lowest index among the
    /// rules that do, except for ICMP, where the client looks for a rule matching by address
    /// first and only then for one matching by a `cap:` capability
    /// ([`RuleMatch::IcmpCapability`]), so a later address rule is named before an earlier
    /// capability rule.
    Rule {
        /// Index of the rule in the `FilterRule` list.
        rule: usize,
        /// How the rule matched.
        how: RuleMatch,
    },
    /// A TCP packet other than a pure SYN: part of an existing connection.
    TcpNotSyn,
    /// An ICMP echo reply or error message.
    IcmpReply,
    /// Tailscale's own message protocol (TSMP).
    Tsmp,
    /// A UDP or SCTP reply to a flow this node started (from a [`FlowCache`]).
    ReturnTraffic,
    /// An outbound packet (from [`FlowCache::run_out`]): the filter only guards inbound traffic.
    Outbound,
}

/// How a rule matched a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMatch {
    /// Protocol listed, source in `SrcIPs`, destination and port in `DstPorts`.
    Address,
    /// Protocol listed, destination and port in `DstPorts`, and the source holds one of the
    /// rule's `cap:` capabilities (and is not in its `SrcIPs`).
    Capability,
    /// ICMP: the source is in `SrcIPs` and the destination in some `DstPorts` entry, whatever
    /// the ports and protocols ("if any port is open, ping works").
    IcmpAnyPort,
    /// ICMP: the source holds one of the rule's `cap:` capabilities (the client does not look at
    /// the destination on this path).
    IcmpCapability,
    /// A protocol other than TCP, UDP, SCTP and ICMP: listed in `IPProto`, source in `SrcIPs`,
    /// destination in a `DstPorts` entry whose ports are exactly 0-65535.
    AllPorts,
}

impl RuleMatch {
    fn describe(self) -> &'static str {
        match self {
            RuleMatch::Address => "source address",
            RuleMatch::Capability => "source capability",
            RuleMatch::IcmpAnyPort => "icmp to a destination with an open port",
            RuleMatch::IcmpCapability => "icmp from a source holding a capability",
            RuleMatch::AllPorts => "protocol allowed on all ports",
        }
    }
}

/// Why a flow is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Source and destination are of different address families.
    MixedFamilies,
    /// Protocol 0 (and 255, which the client reserves): the client cannot tell what it is.
    UnknownProtocol,
    /// A multicast destination.
    Multicast,
    /// A link-local unicast destination (other than 169.254.169.254).
    LinkLocal,
    /// The destination is not one of the node's addresses or routes.
    NotLocal,
    /// No rule allows the flow.
    NoRule,
}

impl Refusal {
    fn describe(self) -> &'static str {
        match self {
            Refusal::MixedFamilies => "source and destination are of different address families",
            Refusal::UnknownProtocol => "unknown protocol",
            Refusal::Multicast => "multicast destination",
            Refusal::LinkLocal => "link-local destination",
            Refusal::NotLocal => "destination is not an address or route of this node",
            Refusal::NoRule => "no rule allows it",
        }
    }
}

/// Tells whether a source address holds a node capability, for rules with `cap:` sources.
///
/// The client answers this from its netmap: the peer whose own address is `src` (not a routed
/// subnet behind it) holds `capability` in its `CapMap`. Closures `Fn(IpAddr, &str) -> bool`
/// implement it. The matcher may ask more or fewer times than the reference does, and in any
/// order, so answers must not depend on being asked.
pub trait CapabilityLookup {
    /// Whether the node at `src` holds `capability` (the text after `cap:`).
    fn has_capability(&self, src: IpAddr, capability: &str) -> bool;
}

impl<F> CapabilityLookup for F
where
    F: Fn(IpAddr, &str) -> bool,
{
    fn has_capability(&self, src: IpAddr, capability: &str) -> bool {
        self(src, capability)
    }
}

/// No source holds any capability: `cap:` sources never match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCapabilities;

impl CapabilityLookup for NoCapabilities {
    fn has_capability(&self, _src: IpAddr, _capability: &str) -> bool {
        false
    }
}

/// Application capabilities a source holds towards a destination: capability name -> values,
/// the values of every matching grant concatenated in rule order (`tailcfg.PeerCapMap`).
pub type AppCapabilities = BTreeMap<String, Vec<serde_json::Value>>;

/// What both matchers answer. Tests, the flow cache and benchmarks are written against it.
pub trait FlowFilter: Send + Sync {
    /// Verdict for a flow, with no source holding any capability.
    fn check(&self, flow: &Flow) -> Verdict {
        self.check_with(flow, &NoCapabilities)
    }

    /// Verdict for a flow, with `cap:` sources resolved through `capabilities`.
    fn check_with<C: CapabilityLookup + ?Sized>(&self, flow: &Flow, capabilities: &C) -> Verdict;

    /// The application capabilities `src` holds towards `dst` through `CapGrant` rules.
    fn app_capabilities(&self, src: IpAddr, dst: IpAddr) -> AppCapabilities;

    /// Whether `src` holds application capability `capability` towards `dst`.
    fn has_app_capability(&self, src: IpAddr, dst: IpAddr, capability: &str) -> bool;

    /// The entries skipped while reading the rules.
    fn problems(&self) -> &[FilterProblem];

    /// The number of rules in the filter (skipped entries do not change it).
    fn rule_count(&self) -> usize;
}

/// An entry of the filter that was skipped: the rest of the filter stays in force, as in the
/// client, so a bad entry can only take access away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterProblem {
    /// Index of the rule in the `FilterRule` list.
    pub rule: usize,
    /// Where in the rule, e.g. `SrcIPs[3]` or `DstPorts[0].IP`.
    pub field: String,
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FilterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {} {}: {:?}: {}",
            self.rule, self.field, self.entry, self.message
        )
    }
}

/// The filter could not be read at all (not JSON, or not the `FilterRule` shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherError {
    kind: MatcherErrorKind,
    message: String,
}

/// What kind of [`MatcherError`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatcherErrorKind {
    /// The text is not JSON, or not a list of `FilterRule` objects, or holds a value Go's
    /// decoder refuses (a `CapGrant.Dsts` entry that is not a prefix).
    Json,
}

impl MatcherError {
    fn json(error: &serde_json::Error) -> Self {
        MatcherError {
            kind: MatcherErrorKind::Json,
            message: format!("invalid packet filter: {error}"),
        }
    }

    /// A value Go's decoder parses itself (a `CapGrant.Dsts` prefix) that does not parse.
    fn undecodable(message: &str) -> Self {
        MatcherError {
            kind: MatcherErrorKind::Json,
            message: format!("invalid packet filter: {message}"),
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> MatcherErrorKind {
        self.kind
    }
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MatcherError {}

/// An address as a family and a number: IPv4 in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Addr {
    pub(crate) v6: bool,
    pub(crate) bits: u128,
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr {
                v6: false,
                bits: u128::from(u32::from(v4)),
            },
            IpAddr::V6(v6) => Addr {
                v6: true,
                bits: u128::from(v6),
            },
        }
    }
}

/// An inclusive interval of addresses of one family (a prefix, a range, or `*`'s half).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Net {
    pub(crate) v6: bool,
    pub(crate) lo: u128,
    pub(crate) hi: u128,
}

impl Net {
    pub(crate) const ALL_V4: Net = Net {
        v6: false,
        lo: 0,
        hi: u32::MAX as u128,
    };
    pub(crate) const ALL_V6: Net = Net {
        v6: true,
        lo: 0,
        hi: u128::MAX,
    };

    pub(crate) fn contains(&self, addr: Addr) -> bool {
        self.v6 == addr.v6 && self.lo <= addr.bits && addr.bits <= self.hi
    }

    /// The addresses of `net`, with any host bits ignored.
    pub(crate) fn from_ipnet(net: &IpNet) -> Net {
        let net = net.trunc();
        let lo = Addr::from(net.network());
        let hi = Addr::from(net.broadcast());
        Net {
            v6: lo.v6,
            lo: lo.bits,
            hi: hi.bits,
        }
    }
}

/// The client's checks before the rules (`filter.go:pre` and `Check`'s family test), shared by
/// both matchers and the flow cache since they involve no rule.
pub(crate) fn pre_check(flow: &Flow) -> Option<Refusal> {
    if flow.src.is_ipv4() != flow.dst.is_ipv4() {
        return Some(Refusal::MixedFamilies);
    }
    // The client's decoder maps 255 (its internal "fragment" marker) to 0, "unknown".
    if flow.proto == 0 || flow.proto == 255 {
        return Some(Refusal::UnknownProtocol);
    }
    // Go's netip predicates look through IPv4-mapped IPv6 addresses.
    let dst = match flow.dst {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (multicast, link_local) = match dst {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            (v4.is_multicast(), a == 169 && b == 254)
        }
        IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            (first & 0xff00 == 0xff00, first & 0xffc0 == 0xfe80)
        }
    };
    if multicast {
        return Some(Refusal::Multicast);
    }
    // 169.254.169.254 (cloud metadata / GCP DNS) is let through; only as a plain IPv4 address.
    let metadata = flow.dst == IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254));
    if link_local && !metadata {
        return Some(Refusal::LinkLocal);
    }
    None
}

/// What the protocol switch of `runIn4`/`runIn6` does with a flow that passed the pre-checks
/// and the local-set check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Accepted without consulting the rules.
    Stateless(Allow),
    /// ICMP of the packet's family that is not a reply: any-open-port or capability.
    Icmp,
    /// A TCP SYN, or UDP/SCTP (after the flow cache): the full match.
    Full,
    /// Another protocol: needs a rule listing it with all ports open.
    Other,
}

#[inline]
pub(crate) fn path(flow: &Flow) -> Path {
    let v6 = flow.src.is_ipv6();
    match flow.proto {
        proto::ICMPV4 if !v6 => icmp_path(flow.packet, false),
        proto::ICMPV6 if v6 => icmp_path(flow.packet, true),
        proto::TCP => match flow.packet {
            Packet::Tcp { flags } if flags & 0x12 != 0x02 => Path::Stateless(Allow::TcpNotSyn),
            _ => Path::Full,
        },
        proto::UDP | proto::SCTP => Path::Full,
        proto::TSMP => Path::Stateless(Allow::Tsmp),
        _ => Path::Other,
    }
}

#[inline]
fn icmp_path(packet: Packet, v6: bool) -> Path {
    let Packet::Icmp { icmp_type, code } = packet else {
        return Path::Icmp;
    };
    // The client's error types (`net/packet`'s `IsError`): for IPv4, unreachable (3), time
    // exceeded (11) and the type its `ICMP4ParamProblem` constant holds, 0x12 (18), not the
    // RFC's parameter problem (12), which the client's rules decide like any ICMP.
    let (echo_reply, errors): (u8, &[u8]) = if v6 {
        (129, &[1, 2, 3, 4])
    } else {
        (0, &[3, 11, 18])
    };
    if (icmp_type == echo_reply && code == 0) || errors.contains(&icmp_type) {
        Path::Stateless(Allow::IcmpReply)
    } else {
        Path::Icmp
    }
}

// The shared, immutable types must stay shareable across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Matcher>();
    assert_send_sync::<ReferenceMatcher>();
    assert_send_sync::<ParsedRules>();
    assert_send_sync::<FlowCache>();
    assert_send_sync::<Verdict>();
    assert_send_sync::<Flow>();
};

/// The README's example, compiled and run as a doctest so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctest;
