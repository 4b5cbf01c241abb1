//! Records where tailscale-rs's `BartFilter` (0.6.1) and our matchers part ways, so that the
//! benchmark's "flows BartFilter gets wrong" count has a pinned, explained example: a source
//! covered by `*` (or any shorter prefix) that also appears in a host rule. BART's
//! longest-prefix lookup returns the host entry's rule set alone, losing the `*` rule.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::IpAddr;

use aclc_compiler::matcher::{Flow, LocalNetworks, Matcher, ReferenceMatcher};
use ts_bart_packetfilter::BartFilter;
use ts_packetfilter::{DstMatch, FilterExt, FilterStorageExt, IpProto, PacketInfo, Rule, SrcMatch};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn bart_rule(src: &str, port: u16) -> Rule {
    Rule {
        src: SrcMatch {
            pfxs: vec![src.parse().unwrap()],
            caps: Vec::new(),
        },
        protos: vec![IpProto::new(6)],
        dst: vec![DstMatch {
            ports: port..=port,
            ips: vec!["100.64.0.9/32".parse().unwrap()],
        }],
    }
}

#[test]
fn bart_filter_loses_a_star_rule_beside_a_host_rule() {
    let json = r#"[
        {"SrcIPs": ["100.64.0.1"], "DstPorts": [{"IP": "100.64.0.9", "Ports": {"First": 22, "Last": 22}}], "IPProto": [6]},
        {"SrcIPs": ["0.0.0.0/0"], "DstPorts": [{"IP": "100.64.0.9", "Ports": {"First": 443, "Last": 443}}], "IPProto": [6]}
    ]"#;
    let local = LocalNetworks::addresses([ip("100.64.0.9")]);
    let fast = Matcher::from_json(json, &local).unwrap();
    let reference = ReferenceMatcher::from_json(json, &local).unwrap();

    let mut bart = BartFilter::default();
    bart.insert(
        "base",
        [bart_rule("100.64.0.1/32", 22), bart_rule("0.0.0.0/0", 443)],
    );
    let bart_allows = |src: &str, port: u16| {
        bart.can_access(
            &PacketInfo {
                src: ip(src),
                dst: ip("100.64.0.9"),
                ip_proto: IpProto::new(6),
                port,
            },
            std::iter::empty::<&str>(),
        )
    };

    // Everyone may reach 443, and the host 22.
    for (src, port) in [("100.64.0.1", 22), ("100.64.0.1", 443), ("100.64.0.2", 443)] {
        let flow = Flow::tcp(ip(src), ip("100.64.0.9"), port);
        assert!(fast.check(&flow).is_allowed(), "{flow:?}");
        assert_eq!(fast.check(&flow), reference.check(&flow));
    }
    assert!(bart_allows("100.64.0.1", 22));
    assert!(bart_allows("100.64.0.2", 443));
    // The host is in both rules: BartFilter finds only the host rule and refuses 443.
    assert!(
        !bart_allows("100.64.0.1", 443),
        "BartFilter no longer loses the `*` rule: update the benchmark notes"
    );
}
