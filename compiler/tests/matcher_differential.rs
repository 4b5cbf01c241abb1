//! Differential tests: on random filters and flows, the fast [`Matcher`] and the
//! [`ReferenceMatcher`] give the same verdict (same rule, same reason), the same application
//! capabilities, and the same skipped entries.
//!
//! Addresses come from small pools, so that prefixes overlap (`*` beside host rules, nested
//! CIDRs, ranges across CIDR boundaries), flows hit rules often, and both families mix.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aclc_compiler::matcher::{
    Flow, FlowCache, LocalNetworks, Matcher, Packet, ParsedRules, ReferenceMatcher,
};
use proptest::prelude::*;
use serde_json::{json, Value};

/// IPv4 addresses near a few bases, so networks overlap.
fn v4() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => (0u32..64).prop_map(|x| 0x6440_0000 | x),          // 100.64.0.0/26
        2 => (0u32..4096).prop_map(|x| 0x6440_0000 | x),        // 100.64.0.0/20
        1 => (0u32..256).prop_map(|x| 0x0a00_0000 | x),         // 10.0.0.0/24
        1 => Just(0u32),
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
}

fn v6() -> impl Strategy<Value = u128> {
    let base: u128 = 0xfd7a_115c_a1e0 << 80;
    prop_oneof![
        4 => (0u128..64).prop_map(move |x| base | x),
        1 => (0u128..u128::from(u32::MAX)).prop_map(move |x| base | x << 32),
        1 => Just(0u128),
        1 => Just(u128::MAX),
        1 => any::<u128>(),
    ]
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => v4().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        1 => v6().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

/// A masked prefix containing `addr`.
fn prefix_of(addr: IpAddr, len: u8) -> String {
    match addr {
        IpAddr::V4(a) => {
            let len = u32::from(len % 33);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            format!("{}/{len}", Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let len = u32::from(len) % 129;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            format!("{}/{len}", Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Prefix lengths that make nested and overlapping networks likely.
fn prefix_len() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => 20u8..=32,
        1 => 0u8..=32,
        1 => 96u8..=128,
        1 => any::<u8>(),
    ]
}

/// One `SrcIPs` / `DstPorts[].IP` entry.
fn ip_entry(caps: bool) -> impl Strategy<Value = String> {
    let range = (addr(), addr()).prop_map(|(a, b)| {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        format!("{lo}-{hi}")
    });
    let cap = if caps {
        prop_oneof![Just("cap:a"), Just("cap:b"), Just("cap:c"), Just("cap:")]
            .prop_map(String::from)
            .boxed()
    } else {
        Just("*".to_string()).boxed()
    };
    prop_oneof![
        6 => addr().prop_map(|a| a.to_string()),
        4 => (addr(), prefix_len()).prop_map(|(a, l)| prefix_of(a, l)),
        2 => Just("*".to_string()),
        2 => range,
        2 => cap,
        1 => prop_oneof![
            Just("100.64.0.1/8".to_string()),     // host bits
            Just("100.64.0.9-100.64.0.1".to_string()),
            Just("bogus".to_string()),
            Just("cap:x".to_string()),
            (addr(), addr()).prop_map(|(a, b)| format!("{a}-{b}")),
        ],
    ]
}

fn ports() -> impl Strategy<Value = (u16, u16)> {
    let port = prop_oneof![
        Just(0u16),
        Just(22),
        Just(80),
        Just(443),
        Just(65535),
        any::<u16>()
    ];
    prop_oneof![
        3 => Just((0u16, 65535u16)),
        3 => port.clone().prop_map(|p| (p, p)),
        3 => (port.clone(), port).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1 => (any::<u16>(), any::<u16>()),   // possibly reversed: matches no port
    ]
}

fn protos() -> impl Strategy<Value = Option<Vec<i64>>> {
    let proto = prop_oneof![
        Just(1i64),
        Just(6),
        Just(17),
        Just(58),
        Just(132),
        Just(47),
        Just(99),
        Just(0),
        Just(300),
        Just(-1),
        Just(255),
        Just(2),
    ];
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(vec![])),
        3 => proptest::collection::vec(proto, 1..4).prop_map(Some),
    ]
}

fn cap_grant() -> impl Strategy<Value = Value> {
    let dst = (addr(), prefix_len()).prop_map(|(a, l)| prefix_of(a, l));
    let name = prop_oneof![Just("x/a"), Just("x/b"), Just("")];
    (
        // An empty destination is skipped (one that is not a prefix fails the whole filter).
        proptest::collection::vec(prop_oneof![4 => dst, 1 => Just(String::new())], 0..3),
        proptest::collection::vec((name, any::<u8>()), 0..3),
        proptest::collection::vec(prop_oneof![Just("legacy"), Just("x/a")], 0..2),
    )
        .prop_map(|(dsts, caps, legacy)| {
            let cap_map: serde_json::Map<String, Value> = caps
                .into_iter()
                .map(|(name, v)| {
                    (
                        name.to_string(),
                        if v % 4 == 0 { Value::Null } else { json!([v]) },
                    )
                })
                .collect();
            json!({"Dsts": dsts, "CapMap": cap_map, "Caps": legacy})
        })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(ip_entry(true), 0..6),
        proptest::collection::vec((ip_entry(false), ports()), 0..5),
        protos(),
        proptest::option::weighted(0.15, proptest::collection::vec(cap_grant(), 1..3)),
    )
        .prop_map(|(srcs, dsts, protos, grants)| {
            let mut rule = json!({
                "SrcIPs": srcs,
                "DstPorts": dsts.into_iter().map(|(ip, (first, last))| json!({"IP": ip, "Ports": {"First": first, "Last": last}})).collect::<Vec<_>>(),
            });
            if let Some(protos) = protos {
                rule["IPProto"] = json!(protos);
            }
            if let Some(grants) = grants {
                rule["CapGrant"] = json!(grants);
            }
            rule
        })
}

fn local() -> impl Strategy<Value = LocalNetworks> {
    (
        proptest::collection::vec(addr(), 0..4),
        proptest::collection::vec((addr(), prefix_len()), 0..3),
    )
        .prop_map(|(addresses, routes)| LocalNetworks {
            addresses,
            routes: routes
                .into_iter()
                .map(|(a, l)| prefix_of(a, l).parse().unwrap())
                .collect(),
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        6 => Just(Packet::First),
        1 => any::<u8>().prop_map(|flags| Packet::Tcp { flags }),
        1 => (prop_oneof![Just(0u8), Just(3), Just(8), Just(11), Just(12), Just(128), Just(129), Just(1), Just(2), Just(4), any::<u8>()], 0u8..2)
            .prop_map(|(icmp_type, code)| Packet::Icmp { icmp_type, code }),
    ]
}

fn flow(pool: Vec<IpAddr>) -> impl Strategy<Value = Flow> {
    let pick = prop_oneof![
        3 => proptest::sample::select(pool),
        1 => addr(),
    ];
    let proto = prop_oneof![
        Just(6u8),
        Just(17),
        Just(1),
        Just(58),
        Just(132),
        Just(47),
        Just(99),
        Just(0),
        Just(255),
        Just(2),
    ];
    let port = prop_oneof![
        Just(0u16),
        Just(22),
        Just(80),
        Just(443),
        Just(65535),
        any::<u16>()
    ];
    (pick.clone(), pick, proto, port, any::<u16>(), packet()).prop_map(
        |(src, dst, proto, dst_port, src_port, packet)| Flow {
            src,
            dst,
            proto,
            src_port,
            dst_port,
            packet,
        },
    )
}

/// A pure capability lookup: a source holds a capability depending on its last byte.
fn holds(src: IpAddr, cap: &str) -> bool {
    let last = match src {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    match cap {
        "a" => last % 2 == 0,
        "b" => last % 3 == 0,
        _ => false,
    }
}

/// The addresses a filter mentions, to aim flows at its rules.
fn mentioned(rules: &[Value], local: &LocalNetworks) -> Vec<IpAddr> {
    let mut pool: Vec<IpAddr> = local.addresses.clone();
    pool.extend(local.routes.iter().map(|n| n.network()));
    let mut add = |text: &str| {
        for part in text.split(['-', '/']) {
            if let Ok(ip) = part.parse::<IpAddr>() {
                pool.push(ip);
                // Just past the end of a network or range, where boundaries bite.
                match ip {
                    IpAddr::V4(a) => {
                        pool.push(IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))))
                    }
                    IpAddr::V6(a) => {
                        pool.push(IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_sub(1))))
                    }
                }
            }
        }
    };
    for rule in rules {
        for s in rule["SrcIPs"].as_array().into_iter().flatten() {
            add(s.as_str().unwrap_or(""));
        }
        for d in rule["DstPorts"].as_array().into_iter().flatten() {
            add(d["IP"].as_str().unwrap_or(""));
        }
    }
    if pool.is_empty() {
        pool.push(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)));
    }
    pool
}

fn filter_and_flows() -> impl Strategy<Value = (Vec<Value>, LocalNetworks, Vec<Flow>)> {
    (proptest::collection::vec(rule(), 0..8), local()).prop_flat_map(|(rules, local)| {
        let pool = mentioned(&rules, &local);
        let flows = proptest::collection::vec(flow(pool), 1..48);
        (Just(rules), Just(local), flows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fast_agrees_with_reference((rules, local, flows) in filter_and_flows()) {
        let json = Value::Array(rules).to_string();
        let parsed = ParsedRules::from_json(&json).unwrap();
        let fast = Matcher::new(&parsed, &local);
        let reference = ReferenceMatcher::new(&parsed, &local);
        prop_assert_eq!(fast.problems(), reference.problems());
        prop_assert_eq!(fast.rule_count(), reference.rule_count());
        let fast_cache = FlowCache::new(4);
        let reference_cache = FlowCache::new(4);
        for flow in &flows {
            prop_assert_eq!(fast.check(flow), reference.check(flow), "flow {:?} filter {}", flow, json);
            prop_assert_eq!(
                fast.check_with(flow, &holds),
                reference.check_with(flow, &holds),
                "flow {:?} with capabilities, filter {}", flow, json
            );
            prop_assert_eq!(
                fast.app_capabilities(flow.src, flow.dst),
                reference.app_capabilities(flow.src, flow.dst)
            );
            for cap in ["x/a", "x/b", "legacy", ""] {
                prop_assert_eq!(
                    fast.has_app_capability(flow.src, flow.dst, cap),
                    reference.has_app_capability(flow.src, flow.dst, cap)
                );
            }
            // The stateful layer over each: replies to flows sent out get in on both.
            let reversed = Flow { src: flow.dst, dst: flow.src, src_port: flow.dst_port, dst_port: flow.src_port, ..*flow };
            prop_assert_eq!(fast_cache.run_out(&reversed), reference_cache.run_out(&reversed));
            prop_assert_eq!(
                fast_cache.run_in(&fast, flow, &holds),
                reference_cache.run_in(&reference, flow, &holds)
            );
        }
    }

    #[test]
    fn star_beside_host_rules_never_hides_a_rule(
        host in v4(), port_a in any::<u16>(), port_b in any::<u16>(), node in v4(),
        order in any::<bool>(), len in 0u8..=32,
    ) {
        // Rule `wide` covers the host through `*` or a shorter prefix; rule `host` names it.
        let host_ip = IpAddr::V4(Ipv4Addr::from(host));
        let wide_src = if len % 3 == 0 { "*".to_string() } else { prefix_of(host_ip, len) };
        let node_ip = IpAddr::V4(Ipv4Addr::from(node));
        let wide = json!({"SrcIPs": [wide_src], "DstPorts": [{"IP": node_ip.to_string(), "Ports": {"First": port_a, "Last": port_a}}]});
        let narrow = json!({"SrcIPs": [host_ip.to_string()], "DstPorts": [{"IP": node_ip.to_string(), "Ports": {"First": port_b, "Last": port_b}}]});
        let rules = if order { json!([wide, narrow]) } else { json!([narrow, wide]) };
        let local = LocalNetworks::addresses([node_ip]);
        let fast = Matcher::from_json(&rules.to_string(), &local).unwrap();
        let reference = ReferenceMatcher::from_json(&rules.to_string(), &local).unwrap();
        for port in [port_a, port_b] {
            let flow = Flow::tcp(host_ip, node_ip, port);
            let verdict = fast.check(&flow);
            let node4 = Ipv4Addr::from(node);
            let pre_checked = node4.is_multicast()
                || (node4.is_link_local() && node4 != Ipv4Addr::new(169, 254, 169, 254));
            prop_assert!(verdict.is_allowed() || pre_checked, "{:?} refused by {}", flow, rules);
            prop_assert_eq!(verdict, reference.check(&flow));
        }
    }
}
