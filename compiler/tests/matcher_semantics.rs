//! Pins each rule of the client's matching semantics (`policy-semantics.md` §4) on both
//! matchers: every case is checked against the fast [`Matcher`] and the [`ReferenceMatcher`].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::IpAddr;

use aclc_compiler::matcher::{
    proto, Allow, AppCapabilities, CapabilityLookup, Flow, FlowCache, FlowFilter, LocalNetworks,
    Matcher, NoCapabilities, Packet, ParsedRules, ReferenceMatcher, Refusal, RuleMatch, Verdict,
};
use serde_json::json;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const NODE4: &str = "100.64.0.9";
const NODE6: &str = "fd7a:115c:a1e0::9";
const PEER4: &str = "100.64.0.1";
const PEER6: &str = "fd7a:115c:a1e0::1";

fn node() -> LocalNetworks {
    LocalNetworks::addresses([ip(NODE4), ip(NODE6)])
}

/// Both matchers for `rules` (a JSON value) on `local`.
struct Both {
    fast: Matcher,
    reference: ReferenceMatcher,
}

impl Both {
    fn new(rules: serde_json::Value, local: &LocalNetworks) -> Both {
        let parsed = ParsedRules::from_json(&rules.to_string()).unwrap();
        Both {
            fast: Matcher::new(&parsed, local),
            reference: ReferenceMatcher::new(&parsed, local),
        }
    }

    fn check_with<C: CapabilityLookup>(&self, flow: &Flow, caps: &C) -> Verdict {
        let fast = self.fast.check_with(flow, caps);
        let reference = self.reference.check_with(flow, caps);
        assert_eq!(fast, reference, "fast and reference disagree on {flow:?}");
        fast
    }

    fn check(&self, flow: &Flow) -> Verdict {
        self.check_with(flow, &NoCapabilities)
    }

    fn app(&self, src: &str, dst: &str) -> AppCapabilities {
        let fast = self.fast.app_capabilities(ip(src), ip(dst));
        assert_eq!(fast, self.reference.app_capabilities(ip(src), ip(dst)));
        for cap in fast.keys() {
            assert!(self.fast.has_app_capability(ip(src), ip(dst), cap));
            assert!(self.reference.has_app_capability(ip(src), ip(dst), cap));
        }
        fast
    }
}

fn allowed(rule: usize, how: RuleMatch) -> Verdict {
    Verdict::Allow(Allow::Rule { rule, how })
}

fn by_address(rule: usize) -> Verdict {
    allowed(rule, RuleMatch::Address)
}

const REFUSED: Verdict = Verdict::Refuse(Refusal::NoRule);

fn rule(srcs: &[&str], dsts: &[(&str, u16, u16)]) -> serde_json::Value {
    json!({
        "SrcIPs": srcs,
        "DstPorts": dsts.iter().map(|(ip, first, last)| json!({"IP": ip, "Ports": {"First": first, "Last": last}})).collect::<Vec<_>>(),
    })
}

fn rule_proto(srcs: &[&str], dsts: &[(&str, u16, u16)], protos: &[i64]) -> serde_json::Value {
    let mut r = rule(srcs, dsts);
    r["IPProto"] = json!(protos);
    r
}

// --- Setup: address families ------------------------------------------------------------------

#[test]
fn address_families_are_kept_apart() {
    // Sources of one family and destinations of the other: nothing matches.
    let m = Both::new(
        json!([
            rule(&[PEER4], &[(NODE6, 0, 65535)]),
            rule(&[PEER6], &[(NODE4, 0, 65535)])
        ]),
        &node(),
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), REFUSED);
    assert_eq!(m.check(&Flow::tcp(ip(PEER6), ip(NODE6), 22)), REFUSED);
    assert_eq!(m.check(&Flow::ping(ip(PEER4), ip(NODE4))), REFUSED);
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE6), 22)),
        Verdict::Refuse(Refusal::MixedFamilies)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER6), ip(NODE4), 22)),
        Verdict::Refuse(Refusal::MixedFamilies)
    );
    // `*` is both families.
    let m = Both::new(json!([rule(&["*"], &[("*", 22, 22)])]), &node());
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), by_address(0));
    assert_eq!(m.check(&Flow::tcp(ip(PEER6), ip(NODE6), 22)), by_address(0));
    // An IPv4-mapped IPv6 source is IPv6, not the IPv4 address.
    let m = Both::new(json!([rule(&[PEER4], &[("*", 22, 22)])]), &node());
    assert_eq!(
        m.check(&Flow::tcp(ip("::ffff:100.64.0.1"), ip(NODE6), 22)),
        REFUSED
    );
}

// --- Local set ----------------------------------------------------------------------------------

#[test]
fn destinations_outside_the_local_set_are_refused() {
    let mut local = node();
    local.routes.push("10.1.0.0/16".parse().unwrap());
    let m = Both::new(json!([rule(&["*"], &[("*", 0, 65535)])]), &local);
    let not_local = Verdict::Refuse(Refusal::NotLocal);
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("100.64.0.10"), 22)),
        not_local
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("10.2.0.1"), 22)),
        not_local
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("10.1.200.7"), 22)),
        by_address(0)
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), by_address(0));
    // Before any stateless allowance.
    let ack = Flow::tcp(ip(PEER4), ip("100.64.0.10"), 22).with_packet(Packet::Tcp { flags: 0x10 });
    assert_eq!(m.check(&ack), not_local);
    let tsmp = Flow::new(ip(PEER4), ip("100.64.0.10"), proto::TSMP, 0);
    assert_eq!(m.check(&tsmp), not_local);
    let reply = Flow::ping(ip(PEER4), ip("100.64.0.10")).with_packet(Packet::Icmp {
        icmp_type: 0,
        code: 0,
    });
    assert_eq!(m.check(&reply), not_local);
    // A node with no local addresses accepts nothing.
    let m = Both::new(
        json!([rule(&["*"], &[("*", 0, 65535)])]),
        &LocalNetworks::default(),
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), not_local);
    // An exit node serves every address.
    let exit = LocalNetworks {
        addresses: vec![ip(NODE4)],
        routes: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    };
    let m = Both::new(json!([rule(&[PEER4, PEER6], &[("*", 443, 443)])]), &exit);
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("8.8.8.8"), 443)),
        by_address(0)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER6), ip("2001:db8::1"), 443)),
        by_address(0)
    );
}

// --- Pre-checks ---------------------------------------------------------------------------------

#[test]
fn pre_checks() {
    let local = LocalNetworks {
        addresses: vec![ip(NODE4)],
        routes: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
    };
    let m = Both::new(json!([rule(&["*"], &[("*", 0, 65535)])]), &local);
    let refused = |r| Verdict::Refuse(r);
    assert_eq!(
        m.check(&Flow::udp(ip(PEER4), ip("224.0.0.251"), 5353)),
        refused(Refusal::Multicast)
    );
    assert_eq!(
        m.check(&Flow::udp(ip(PEER6), ip("ff02::fb"), 5353)),
        refused(Refusal::Multicast)
    );
    assert_eq!(
        m.check(&Flow::udp(ip(PEER6), ip("::ffff:224.0.0.1"), 1)),
        refused(Refusal::Multicast)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("169.254.1.1"), 80)),
        refused(Refusal::LinkLocal)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER6), ip("fe80::1"), 80)),
        refused(Refusal::LinkLocal)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER6), ip("::ffff:169.254.169.254"), 80)),
        refused(Refusal::LinkLocal)
    );
    // The metadata address is not refused by the pre-check.
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip("169.254.169.254"), 80)),
        by_address(0)
    );
    assert_eq!(
        m.check(&Flow::new(ip(PEER4), ip(NODE4), 0, 0)),
        refused(Refusal::UnknownProtocol)
    );
    assert_eq!(
        m.check(&Flow::new(ip(PEER4), ip(NODE4), 255, 0)),
        refused(Refusal::UnknownProtocol)
    );
}

// --- ICMP ---------------------------------------------------------------------------------------

#[test]
fn icmp_replies_and_errors_pass() {
    let m = Both::new(json!([]), &node());
    for (v6, types) in [
        // 18, not the RFC's 12: the client's `ICMP4ParamProblem` is 0x12.
        (false, &[0u8, 3, 11, 18][..]),
        (true, &[129u8, 1, 2, 3, 4][..]),
    ] {
        let (src, dst) = if v6 { (PEER6, NODE6) } else { (PEER4, NODE4) };
        for &icmp_type in types {
            let flow =
                Flow::ping(ip(src), ip(dst)).with_packet(Packet::Icmp { icmp_type, code: 0 });
            assert_eq!(m.check(&flow), Verdict::Allow(Allow::IcmpReply), "{flow:?}");
        }
        // An echo request, and an echo reply with a code, are not replies.
        let echo = if v6 { 128 } else { 8 };
        let reply = if v6 { 129 } else { 0 };
        // IPv4 type 12 (the RFC's parameter problem) goes through the rules in the client.
        let rfc_param_problem = if v6 { echo } else { 12 };
        for (icmp_type, code) in [(echo, 0), (reply, 1), (rfc_param_problem, 0)] {
            let flow = Flow::ping(ip(src), ip(dst)).with_packet(Packet::Icmp { icmp_type, code });
            assert_eq!(m.check(&flow), REFUSED, "{flow:?}");
        }
    }
}

#[test]
fn icmp_is_allowed_if_any_port_is_open() {
    // A TCP-only rule on port 22 lets the source ping the destination.
    let m = Both::new(
        json!([
            rule_proto(&["100.64.0.2"], &[(NODE4, 80, 80)], &[17]),
            rule_proto(&[PEER4, PEER6], &[(NODE4, 22, 22), (NODE6, 22, 22)], &[6]),
        ]),
        &node(),
    );
    let icmp = allowed(1, RuleMatch::IcmpAnyPort);
    assert_eq!(m.check(&Flow::ping(ip(PEER4), ip(NODE4))), icmp);
    assert_eq!(m.check(&Flow::ping(ip(PEER6), ip(NODE6))), icmp);
    assert_eq!(
        m.check(&Flow::ping(ip("100.64.0.2"), ip(NODE4))),
        allowed(0, RuleMatch::IcmpAnyPort)
    );
    assert_eq!(m.check(&Flow::ping(ip("100.64.0.3"), ip(NODE4))), REFUSED);
    // Even a rule whose ports are empty (First > Last) or whose protocols are all ignored.
    let m = Both::new(
        json!([
            rule(&[PEER4], &[(NODE4, 9, 1)]),
            rule_proto(&["100.64.0.2"], &[(NODE4, 1, 1)], &[300])
        ]),
        &node(),
    );
    assert_eq!(
        m.check(&Flow::ping(ip(PEER4), ip(NODE4))),
        allowed(0, RuleMatch::IcmpAnyPort)
    );
    assert_eq!(
        m.check(&Flow::ping(ip("100.64.0.2"), ip(NODE4))),
        allowed(1, RuleMatch::IcmpAnyPort)
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 5)), REFUSED);
    assert_eq!(m.check(&Flow::tcp(ip("100.64.0.2"), ip(NODE4), 1)), REFUSED);
}

#[test]
fn icmp_of_the_other_family_is_another_protocol() {
    // ICMPv4 inside IPv6 goes down the "other protocol" path: listed, all ports.
    let m = Both::new(
        json!([
            rule(&[PEER6], &[(NODE6, 0, 65535)]),
            rule_proto(&[PEER6], &[(NODE6, 0, 65535)], &[1]),
        ]),
        &node(),
    );
    let flow = Flow::new(ip(PEER6), ip(NODE6), proto::ICMPV4, 0);
    assert_eq!(m.check(&flow), allowed(0, RuleMatch::AllPorts));
    let flow = Flow::new(ip(PEER4), ip(NODE4), proto::ICMPV6, 0);
    assert_eq!(m.check(&flow), REFUSED);
}

// --- TCP ----------------------------------------------------------------------------------------

#[test]
fn tcp_non_syn_packets_pass() {
    let m = Both::new(json!([]), &node());
    for flags in [0x10u8, 0x12, 0x11, 0x04, 0x00, 0x18, 0x01] {
        let flow = Flow::tcp(ip(PEER4), ip(NODE4), 22).with_packet(Packet::Tcp { flags });
        assert_eq!(
            m.check(&flow),
            Verdict::Allow(Allow::TcpNotSyn),
            "flags {flags:#x}"
        );
    }
    // SYN, alone or with flags other than ACK, needs a rule.
    for flags in [0x02u8, 0x03, 0x06, 0xc2] {
        let flow = Flow::tcp(ip(PEER4), ip(NODE4), 22).with_packet(Packet::Tcp { flags });
        assert_eq!(m.check(&flow), REFUSED, "flags {flags:#x}");
    }
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), REFUSED);
}

// --- UDP / SCTP and the flow cache --------------------------------------------------------------

#[test]
fn udp_and_sctp_replies_pass_through_the_flow_cache() {
    let parsed = ParsedRules::from_json(
        &json!([rule_proto(&["100.64.0.2"], &[(NODE4, 53, 53)], &[17, 132])]).to_string(),
    )
    .unwrap();
    let fast = Matcher::new(&parsed, &node());
    let reference = ReferenceMatcher::new(&parsed, &node());
    let cache = FlowCache::new(2);
    // The node sends to the peer from port 40000 to port 53; the reply comes back.
    for (p, transport) in [(proto::UDP, "udp"), (proto::SCTP, "sctp")] {
        let out = Flow::new(ip(NODE4), ip(PEER4), p, 53).with_src_port(40000);
        let reply = Flow::new(ip(PEER4), ip(NODE4), p, 40000).with_src_port(53);
        assert_eq!(
            cache.run_in(&fast, &reply, &NoCapabilities),
            REFUSED,
            "{transport}"
        );
        assert_eq!(cache.run_out(&out), Verdict::Allow(Allow::Outbound));
        assert_eq!(
            cache.run_in(&fast, &reply, &NoCapabilities),
            Verdict::Allow(Allow::ReturnTraffic),
            "{transport}"
        );
        assert_eq!(
            cache.run_in(&reference, &reply, &NoCapabilities),
            Verdict::Allow(Allow::ReturnTraffic)
        );
        // The stateless matchers know nothing of it.
        assert_eq!(fast.check(&reply), REFUSED);
        // Another source port is another flow.
        let other = Flow::new(ip(PEER4), ip(NODE4), p, 40000).with_src_port(54);
        assert_eq!(cache.run_in(&fast, &other, &NoCapabilities), REFUSED);
        // A rule still allows what it allows.
        let new = Flow::new(ip("100.64.0.2"), ip(NODE4), p, 53);
        assert_eq!(cache.run_in(&fast, &new, &NoCapabilities), by_address(0));
    }
    // TCP is not recorded; the pre-checks still apply outbound.
    let tcp_out = Flow::tcp(ip(NODE4), ip(PEER4), 80).with_src_port(40001);
    assert_eq!(cache.run_out(&tcp_out), Verdict::Allow(Allow::Outbound));
    assert_eq!(cache.len(), 2);
    assert_eq!(
        cache.run_out(&Flow::udp(ip(NODE4), ip("224.0.0.1"), 1)),
        Verdict::Refuse(Refusal::Multicast)
    );
    // Bounded: a third flow evicts the least recently used (the UDP one).
    let third = Flow::udp(ip(NODE4), ip("100.64.0.3"), 123).with_src_port(123);
    cache.run_out(&third);
    assert_eq!(cache.len(), 2);
    let udp_reply = Flow::udp(ip(PEER4), ip(NODE4), 40000).with_src_port(53);
    assert_eq!(cache.run_in(&fast, &udp_reply, &NoCapabilities), REFUSED);
    // Not towards a local address: refused even if remembered.
    let out = Flow::udp(ip("100.64.0.10"), ip(PEER4), 53).with_src_port(41000);
    cache.run_out(&out);
    let reply = Flow::udp(ip(PEER4), ip("100.64.0.10"), 41000).with_src_port(53);
    assert_eq!(
        cache.run_in(&fast, &reply, &NoCapabilities),
        Verdict::Refuse(Refusal::NotLocal)
    );
    cache.clear();
    assert!(cache.is_empty());
}

// --- TSMP and other protocols -------------------------------------------------------------------

#[test]
fn tsmp_passes() {
    let m = Both::new(json!([]), &node());
    let flow = Flow::new(ip(PEER4), ip(NODE4), proto::TSMP, 0);
    assert_eq!(m.check(&flow), Verdict::Allow(Allow::Tsmp));
}

#[test]
fn other_protocols_need_all_ports() {
    const GRE: u8 = 47;
    let m = Both::new(
        json!([
            rule(&[PEER4], &[(NODE4, 0, 65535)]),
            rule_proto(&[PEER4], &[(NODE4, 0, 65534)], &[47]),
            rule_proto(&["100.64.0.2"], &[(NODE4, 0, 65535)], &[47]),
            rule_proto(
                &["100.64.0.0/24"],
                &["100.64.0.9", "100.64.0.9"]
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (*d, i as u16, 65535))
                    .collect::<Vec<_>>(),
                &[50]
            ),
        ]),
        &node(),
    );
    // Rule 0 has the default protocols, not GRE; rule 1 lacks port 65535.
    assert_eq!(m.check(&Flow::new(ip(PEER4), ip(NODE4), GRE, 0)), REFUSED);
    assert_eq!(
        m.check(&Flow::new(ip("100.64.0.2"), ip(NODE4), GRE, 0)),
        allowed(2, RuleMatch::AllPorts)
    );
    // ESP: the first entry (ports 0-65535) counts, the second (1-65535) would not.
    assert_eq!(
        m.check(&Flow::new(ip("100.64.0.7"), ip(NODE4), 50, 0)),
        allowed(3, RuleMatch::AllPorts)
    );
    // cap: sources never open other protocols.
    let m = Both::new(
        json!([rule_proto(&["cap:x"], &[(NODE4, 0, 65535)], &[47])]),
        &node(),
    );
    let everyone = |_: IpAddr, _: &str| true;
    assert_eq!(
        m.check_with(&Flow::new(ip(PEER4), ip(NODE4), GRE, 0), &everyone),
        REFUSED
    );
}

// --- Full match ---------------------------------------------------------------------------------

#[test]
fn default_protocols_when_ipproto_is_absent() {
    let m = Both::new(json!([rule(&[PEER4, PEER6], &[("*", 0, 65535)])]), &node());
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 1)), by_address(0));
    assert_eq!(m.check(&Flow::udp(ip(PEER4), ip(NODE4), 1)), by_address(0));
    assert_eq!(
        m.check(&Flow::new(ip(PEER4), ip(NODE4), proto::SCTP, 1)),
        REFUSED
    );
    let m = Both::new(
        json!([rule_proto(&[PEER4], &[("*", 0, 65535)], &[132]), {"SrcIPs": [PEER4], "IPProto": [], "DstPorts": [{"IP": "*", "Ports": {"First": 7, "Last": 7}}]}]),
        &node(),
    );
    assert_eq!(
        m.check(&Flow::new(ip(PEER4), ip(NODE4), proto::SCTP, 1)),
        by_address(0)
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 1)), REFUSED);
    // An empty list is the default set too.
    assert_eq!(m.check(&Flow::udp(ip(PEER4), ip(NODE4), 7)), by_address(1));
}

#[test]
fn source_and_destination_forms() {
    let local = LocalNetworks {
        addresses: vec![ip(NODE4), ip(NODE6)],
        routes: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let m = Both::new(
        json!([
            rule(&["100.64.1.0/24"], &[("10.1.0.0/16", 80, 80)]),
            rule(
                &[
                    "100.64.2.10-100.64.2.20",
                    "fd7a:115c:a1e0::100-fd7a:115c:a1e0::1ff"
                ],
                &[("10.2.0.5-10.2.0.7", 1000, 2000), (NODE6, 1000, 2000)]
            ),
            rule(&["*"], &[("10.3.0.1", 53, 53)]),
        ]),
        &local,
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.64.1.77"), ip("10.1.9.9"), 80)),
        by_address(0)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.64.0.77"), ip("10.1.9.9"), 80)),
        REFUSED
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.64.1.77"), ip("10.4.9.9"), 80)),
        REFUSED
    );
    for (src, ok) in [
        ("100.64.2.9", false),
        ("100.64.2.10", true),
        ("100.64.2.20", true),
        ("100.64.2.21", false),
    ] {
        let v = m.check(&Flow::udp(ip(src), ip("10.2.0.6"), 1500));
        assert_eq!(v.is_allowed(), ok, "{src}");
    }
    for (dst, ok) in [
        ("10.2.0.4", false),
        ("10.2.0.5", true),
        ("10.2.0.7", true),
        ("10.2.0.8", false),
    ] {
        let v = m.check(&Flow::udp(ip("100.64.2.15"), ip(dst), 1000));
        assert_eq!(v.is_allowed(), ok, "{dst}");
    }
    for (port, ok) in [(999, false), (1000, true), (2000, true), (2001, false)] {
        let v = m.check(&Flow::tcp(ip("fd7a:115c:a1e0::1aa"), ip(NODE6), port));
        assert_eq!(v.is_allowed(), ok, "{port}");
    }
    assert_eq!(
        m.check(&Flow::tcp(ip("fd7a:115c:a1e0::2aa"), ip(NODE6), 1000)),
        REFUSED
    );
    assert_eq!(
        m.check(&Flow::udp(ip("203.0.113.7"), ip("10.3.0.1"), 53)),
        by_address(2)
    );
}

#[test]
fn overlapping_prefixes_star_beside_host_rules() {
    // The source is in a host rule and under `*`: each rule still opens its own ports (the
    // case tailscale-rs's BartFilter gets wrong, as its longest-prefix lookup returns the host
    // rule alone).
    let m = Both::new(
        json!([
            rule(&[PEER4, "100.64.0.0/24"], &[(NODE4, 22, 22)]),
            rule(&["*"], &[(NODE4, 443, 443)]),
            rule(&["100.64.0.0/10"], &[(NODE4, 8080, 8080)]),
            rule(&["100.64.0.0/16"], &[(NODE4, 8080, 8081)]),
        ]),
        &node(),
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), by_address(0));
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 443)),
        by_address(1)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 8080)),
        by_address(2)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 8081)),
        by_address(3)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.65.0.1"), ip(NODE4), 8081)),
        REFUSED
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.65.0.1"), ip(NODE4), 8080)),
        by_address(2)
    );
}

#[test]
fn the_first_matching_rule_is_named() {
    let m = Both::new(
        json!([
            rule(&["100.64.0.0/10"], &[(NODE4, 100, 200)]),
            rule(&[PEER4], &[(NODE4, 150, 150)]),
            rule(&[PEER4], &[("*", 0, 65535)]),
        ]),
        &node(),
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 150)),
        by_address(0)
    );
    assert_eq!(
        m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 250)),
        by_address(2)
    );
}

// --- cap: sources -------------------------------------------------------------------------------

#[test]
fn capability_sources_use_the_lookup() {
    let m = Both::new(
        json!([
            rule(
                &["cap:example.com/cap/ssh", "100.64.0.5"],
                &[(NODE4, 22, 22)]
            ),
            rule_proto(&["cap:example.com/cap/web"], &[(NODE6, 443, 443)], &[6]),
        ]),
        &node(),
    );
    let holds_ssh = |src: IpAddr, cap: &str| src == ip(PEER4) && cap == "example.com/cap/ssh";
    let flow = Flow::tcp(ip(PEER4), ip(NODE4), 22);
    assert_eq!(m.check(&flow), REFUSED);
    assert_eq!(
        m.check_with(&flow, &holds_ssh),
        allowed(0, RuleMatch::Capability)
    );
    // By address when the address matches.
    assert_eq!(
        m.check_with(&Flow::tcp(ip("100.64.0.5"), ip(NODE4), 22), &holds_ssh),
        by_address(0)
    );
    assert_eq!(
        m.check_with(&Flow::tcp(ip(PEER4), ip(NODE4), 23), &holds_ssh),
        REFUSED
    );
    // ICMP: a held capability of a rule of the packet's family is enough, whatever the
    // destination address (the client does not look at it on this path).
    let holds_web = |_: IpAddr, cap: &str| cap == "example.com/cap/web";
    let ping6 = Flow::ping(ip(PEER6), ip(NODE6));
    assert_eq!(
        m.check_with(&ping6, &holds_web),
        allowed(1, RuleMatch::IcmpCapability)
    );
    // Rule 1 has no IPv4 destination, so it is not in the IPv4 matches.
    let ping4 = Flow::ping(ip(PEER4), ip(NODE4));
    assert_eq!(m.check_with(&ping4, &holds_web), REFUSED);
    assert_eq!(
        m.check_with(&ping4, &holds_ssh),
        allowed(0, RuleMatch::IcmpCapability)
    );
    // An address match wins over a capability one on the ICMP path, whatever the order.
    let m = Both::new(
        json!([
            rule(&["cap:c"], &[(NODE4, 1, 1)]),
            rule(&[PEER4], &[(NODE4, 2, 2)])
        ]),
        &node(),
    );
    let holds_c = |_: IpAddr, cap: &str| cap == "c";
    assert_eq!(
        m.check_with(&ping4, &holds_c),
        allowed(1, RuleMatch::IcmpAnyPort)
    );
    // The full match names the lowest rule, capability or address.
    let m = Both::new(
        json!([
            rule(&["cap:c"], &[(NODE4, 1, 5)]),
            rule(&[PEER4], &[(NODE4, 2, 2)])
        ]),
        &node(),
    );
    assert_eq!(
        m.check_with(&Flow::tcp(ip(PEER4), ip(NODE4), 2), &holds_c),
        allowed(0, RuleMatch::Capability)
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 2)), by_address(1));
    // `cap:` with no name is ignored, and `cap:` in DstPorts is skipped and reported.
    let m = Both::new(
        json!([rule(&["cap:"], &[(NODE4, 1, 5), ("cap:x", 1, 5)])]),
        &node(),
    );
    assert_eq!(
        m.check_with(
            &Flow::tcp(ip(PEER4), ip(NODE4), 2),
            &|_: IpAddr, _: &str| true
        ),
        REFUSED
    );
    assert_eq!(m.fast.problems().len(), 1);
}

// --- CapGrant -----------------------------------------------------------------------------------

#[test]
fn cap_grants_answer_app_capabilities() {
    let m = Both::new(
        json!([
            {"SrcIPs": [PEER4, PEER6], "CapGrant": [{"Dsts": ["100.64.0.0/24", NODE6 .to_string() + "/128"],
                "CapMap": {"example.com/cap/drive": [{"shares": ["a"]}], "example.com/cap/relay": null}}]},
            {"SrcIPs": ["*"], "CapGrant": [{"Dsts": ["100.64.0.9/32"], "CapMap": {"example.com/cap/drive": [{"shares": ["b"]}]}, "Caps": ["legacy"]}]},
            {"SrcIPs": ["*"], "CapGrant": [{"Dsts": ["100.64.0.9/32"], "CapMap": {"": [1]}}]},
        ]),
        &node(),
    );
    let caps = m.app(PEER4, NODE4);
    assert_eq!(
        serde_json::to_value(&caps).unwrap(),
        json!({
            "example.com/cap/drive": [{"shares": ["a"]}, {"shares": ["b"]}],
            "example.com/cap/relay": [],
            "legacy": [],
        })
    );
    let caps = m.app("100.64.0.2", NODE4);
    assert_eq!(caps.len(), 2);
    assert_eq!(
        caps["example.com/cap/drive"],
        vec![json!({"shares": ["b"]})]
    );
    // Grants by source family; destinations of either family.
    let caps = m.app(PEER6, NODE6);
    assert_eq!(caps.len(), 2);
    let caps = m.app(PEER6, NODE4);
    assert_eq!(caps.len(), 3);
    assert!(m.app(PEER4, "100.64.1.1").is_empty());
    assert!(!m
        .fast
        .has_app_capability(ip(PEER4), ip("100.64.1.1"), "example.com/cap/drive"));
    // Grants open no network access.
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), REFUSED);
    assert_eq!(m.check(&Flow::ping(ip(PEER4), ip(NODE4))), REFUSED);
}

// --- Bad input ----------------------------------------------------------------------------------

#[test]
fn bad_entries_are_skipped_the_rest_stays() {
    let m = Both::new(
        json!([
            rule(
                &["100.64.0.1/8", PEER4, "not-an-ip", "100.64.0.9-100.64.0.1"],
                &[(NODE4, 22, 22), ("100.64.0.9/24", 23, 23)]
            ),
            rule(&["*"], &[("10.0.0.1-fd7a::1", 80, 80), (NODE4, 80, 80)]),
        ]),
        &node(),
    );
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), by_address(0));
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 23)), REFUSED);
    assert_eq!(
        m.check(&Flow::tcp(ip("100.64.0.2"), ip(NODE4), 22)),
        REFUSED
    );
    assert_eq!(
        m.check(&Flow::tcp(ip("100.64.0.2"), ip(NODE4), 80)),
        by_address(1)
    );
    let fields: Vec<_> = m.fast.problems().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "SrcIPs[0]",
            "SrcIPs[2]",
            "SrcIPs[3]",
            "DstPorts[1].IP",
            "DstPorts[0].IP"
        ]
    );
    assert_eq!(m.fast.problems(), m.reference.problems());
    assert_eq!(m.fast.rule_count(), 2);
}

#[test]
fn legacy_bits_leave_only_the_stateless_allowances() {
    let m = Both::new(
        json!([
            rule(&["*"], &[("*", 0, 65535)]),
            {"SrcIPs": [PEER4], "SrcBits": [32], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]},
        ]),
        &node(),
    );
    assert_eq!(m.fast.rule_count(), 0);
    assert_eq!(m.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22)), REFUSED);
    let ack = Flow::tcp(ip(PEER4), ip(NODE4), 22).with_packet(Packet::Tcp { flags: 0x10 });
    assert_eq!(m.check(&ack), Verdict::Allow(Allow::TcpNotSyn));
}

#[test]
fn unreadable_json_is_an_error() {
    for bad in ["", "{", "[1]", r#"[{"SrcIPs": "*"}]"#, r#"{"SrcIPs": []}"#] {
        let err = Matcher::from_json(bad, &node()).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid packet filter"),
            "{err}"
        );
        assert!(ReferenceMatcher::from_json(bad, &node()).is_err());
    }
}

// --- Serialization ------------------------------------------------------------------------------

#[test]
fn flows_and_verdicts_round_trip() {
    let flow = Flow::tcp(ip(PEER4), ip(NODE4), 22).with_packet(Packet::Tcp { flags: 2 });
    let text = serde_json::to_string(&flow).unwrap();
    assert_eq!(serde_json::from_str::<Flow>(&text).unwrap(), flow);
    // The workload generator's flow lines read as first packets.
    let line: Flow =
        serde_json::from_str(r#"{"src":"100.64.0.1","dst":"100.64.0.9","proto":6,"dport":22}"#)
            .unwrap();
    assert_eq!(line, Flow::tcp(ip(PEER4), ip(NODE4), 22));
    for verdict in [
        by_address(3),
        Verdict::Allow(Allow::ReturnTraffic),
        Verdict::Refuse(Refusal::NotLocal),
    ] {
        let text = serde_json::to_string(&verdict).unwrap();
        assert_eq!(serde_json::from_str::<Verdict>(&text).unwrap(), verdict);
    }
    assert_eq!(
        serde_json::to_value(by_address(3)).unwrap(),
        json!({"allow": {"rule": {"rule": 3, "how": "address"}}})
    );
    assert_eq!(
        by_address(3).to_string(),
        "allowed by rule 3 (source address)"
    );
    let local: LocalNetworks =
        serde_json::from_str(r#"{"addresses":["100.64.0.9"],"routes":["10.0.0.0/8"]}"#).unwrap();
    assert_eq!(local.routes.len(), 1);
}

#[test]
fn both_implement_flow_filter() {
    fn generic<F: FlowFilter>(filter: &F) -> Verdict {
        filter.check(&Flow::tcp(ip(PEER4), ip(NODE4), 22))
    }
    let m = Both::new(json!([rule(&["*"], &[("*", 22, 22)])]), &node());
    assert_eq!(generic(&m.fast), by_address(0));
    assert_eq!(generic(&m.reference), by_address(0));
}
