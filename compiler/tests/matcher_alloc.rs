//! The fast matcher's lookups allocate nothing: counted with an instrumented global allocator.
//!
//! This file holds a single test on purpose: the allocator counts every thread of the test
//! binary, so another test running beside it would be counted too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::System;
use std::hint::black_box;
use std::net::IpAddr;

use aclc_compiler::matcher::{
    Flow, FlowCache, LocalNetworks, Matcher, NoCapabilities, Packet, ParsedRules,
};
use serde_json::json;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn lookups_do_not_allocate() {
    // A filter with every kind of rule: hosts, CIDRs, ranges, `*`, both families, port ranges,
    // protocol lists, `cap:` sources, all-ports rules and grants; plus many hosts so that the
    // tables have real depth.
    let mut rules = vec![
        json!({"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 443, "Last": 443}}]}),
        json!({"SrcIPs": ["100.64.0.0/16", "fd7a:115c:a1e0::/64"], "DstPorts": [{"IP": "100.64.0.9", "Ports": {"First": 1000, "Last": 2000}}, {"IP": "fd7a:115c:a1e0::9", "Ports": {"First": 22, "Last": 22}}], "IPProto": [6, 17, 132]}),
        json!({"SrcIPs": ["cap:example.com/cap/ssh"], "DstPorts": [{"IP": "100.64.0.9", "Ports": {"First": 22, "Last": 22}}]}),
        json!({"SrcIPs": ["100.64.1.10-100.64.1.20"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}], "IPProto": [47, 6]}),
        json!({"SrcIPs": ["100.64.0.1"], "CapGrant": [{"Dsts": ["100.64.0.9/32"], "CapMap": {"example.com/cap/x": [1]}}]}),
    ];
    let hosts: Vec<String> = (0..5000u32)
        .map(|i| format!("100.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 255, i & 255))
        .collect();
    for chunk in hosts.chunks(500) {
        rules.push(json!({"SrcIPs": chunk, "DstPorts": [{"IP": "100.64.0.9", "Ports": {"First": 8000, "Last": 8100}}]}));
    }
    let parsed = ParsedRules::from_json(&json!(rules).to_string()).unwrap();
    let local = LocalNetworks::addresses([ip("100.64.0.9"), ip("fd7a:115c:a1e0::9")]);
    let matcher = Matcher::new(&parsed, &local);
    let cache = FlowCache::default();

    let sources = [
        "100.64.0.1",
        "100.64.1.15",
        "100.64.19.136",
        "203.0.113.1",
        "100.64.0.2",
    ];
    let mut flows = Vec::new();
    for src in sources {
        for dst in ["100.64.0.9", "100.64.0.10", "224.0.0.1"] {
            for (proto, port) in [
                (6u8, 22u16),
                (6, 443),
                (6, 1500),
                (6, 8050),
                (17, 1500),
                (1, 0),
                (47, 0),
                (99, 0),
                (132, 1000),
                (0, 0),
            ] {
                for packet in [
                    Packet::First,
                    Packet::Tcp { flags: 0x10 },
                    Packet::Icmp {
                        icmp_type: 0,
                        code: 0,
                    },
                ] {
                    flows.push(
                        Flow::new(ip(src), ip(dst), proto, port)
                            .with_src_port(40000)
                            .with_packet(packet),
                    );
                }
            }
        }
    }
    for (src, dst) in [
        ("fd7a:115c:a1e0::1", "fd7a:115c:a1e0::9"),
        ("2001:db8::1", "fd7a:115c:a1e0::9"),
        ("fd7a:115c:a1e0::1", "100.64.0.9"),
    ] {
        for (proto, port) in [(6u8, 22u16), (58, 0), (17, 1500)] {
            flows.push(Flow::new(ip(src), ip(dst), proto, port));
        }
    }
    let holds = |src: IpAddr, cap: &str| src == ip("100.64.0.2") && cap == "example.com/cap/ssh";
    // Fill the flow cache to capacity and beyond once, so that later inserts reuse slots.
    for i in 0..2 * FlowCache::DEFAULT_CAPACITY {
        let port = u16::try_from(i).unwrap();
        cache.run_out(&Flow::udp(ip("100.64.0.9"), ip("100.64.0.1"), 53).with_src_port(port));
    }
    // Warm up anything lazily initialised outside the matcher (thread-locals, stdout).
    let mut allowed = 0usize;
    for flow in &flows {
        allowed += usize::from(matcher.check_with(flow, &holds).is_allowed());
    }
    assert!(
        allowed > 20,
        "the flows should exercise allowing paths, got {allowed}"
    );

    let region = Region::new(GLOBAL);
    for _ in 0..100 {
        for flow in &flows {
            black_box(matcher.check(black_box(flow)));
            black_box(matcher.check_with(black_box(flow), &holds));
            black_box(matcher.check_with(black_box(flow), &NoCapabilities));
            black_box(matcher.has_app_capability(flow.src, flow.dst, "example.com/cap/x"));
        }
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the matcher allocated during lookups: {stats:?}"
    );

    // The flow cache's steady state does not allocate either.
    let region = Region::new(GLOBAL);
    for i in 0..4 * FlowCache::DEFAULT_CAPACITY {
        let port = u16::try_from(i).unwrap();
        let out = Flow::udp(ip("100.64.0.9"), ip("100.64.0.3"), 53).with_src_port(port);
        black_box(cache.run_out(&out));
        let reply = Flow::udp(ip("100.64.0.3"), ip("100.64.0.9"), port).with_src_port(53);
        black_box(cache.run_in(&matcher, &reply, &holds));
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the flow cache allocated in its steady state: {stats:?}"
    );
}
