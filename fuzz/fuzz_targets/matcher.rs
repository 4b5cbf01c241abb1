//! Fuzz target: the fast matcher and the reference matcher agree on every verdict and every
//! application-capability answer, and neither panics, on arbitrary filters and flows.
//!
//! The first byte picks the mode: raw bytes as the filter JSON (both must accept or refuse it
//! alike), or a filter built from the bytes out of small address pools, so that prefixes
//! overlap, ranges cross CIDR boundaries and flows hit rules.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aclc_compiler::matcher::{
    Flow, FlowCache, LocalNetworks, Matcher, Packet, ParsedRules, ReferenceMatcher,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// Reads the input as a stream of choices; zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn addr(&mut self) -> IpAddr {
        let pick = self.u8();
        let low = u32::from(self.u8());
        match pick % 8 {
            0 => IpAddr::V4(Ipv4Addr::from(0x6440_0000 | low)),
            1 => IpAddr::V4(Ipv4Addr::from(
                0x6440_0000 | (low << 4) | u32::from(self.u8() & 15),
            )),
            2 => IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | low)),
            3 => IpAddr::V4(Ipv4Addr::from(self.u32())),
            4 => IpAddr::V4(Ipv4Addr::from(if low % 2 == 0 { 0 } else { u32::MAX })),
            5 => IpAddr::V6(Ipv6Addr::from(
                (0xfd7a_115c_a1e0u128 << 80) | u128::from(low),
            )),
            6 => IpAddr::V6(Ipv6Addr::from(
                (u128::from(self.u32()) << 96) | u128::from(self.u32()),
            )),
            _ => IpAddr::V6(Ipv6Addr::from(if low % 2 == 0 { 0 } else { u128::MAX })),
        }
    }

    /// A masked prefix around an address.
    fn prefix(&mut self) -> String {
        let addr = self.addr();
        let len = self.u8();
        match addr {
            IpAddr::V4(a) => {
                let len = u32::from(len % 33);
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                format!("{}/{len}", Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let len = u32::from(len) % 129;
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                format!("{}/{len}", Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    fn ip_entry(&mut self) -> String {
        match self.u8() % 12 {
            0..=3 => self.addr().to_string(),
            4..=6 => self.prefix(),
            7 => "*".to_string(),
            8 => {
                let (a, b) = (self.addr(), self.addr());
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                format!("{lo}-{hi}")
            }
            9 => ["cap:a", "cap:b", "cap:"][usize::from(self.u8() % 3)].to_string(),
            10 => format!("{}-{}", self.addr(), self.addr()),
            _ => ["10.0.0.1/8", "bogus", "", "::/-1", "1.2.3.4%x"][usize::from(self.u8() % 5)]
                .to_string(),
        }
    }

    fn rule(&mut self) -> Value {
        let srcs: Vec<String> = (0..self.u8() % 5).map(|_| self.ip_entry()).collect();
        let dsts: Vec<Value> = (0..self.u8() % 4)
            .map(|_| {
                let ip = self.ip_entry();
                let (first, last) = match self.u8() % 4 {
                    0 => (0, 65535),
                    1 => {
                        let p = self.u16();
                        (p, p)
                    }
                    _ => (self.u16(), self.u16()),
                };
                json!({"IP": ip, "Ports": {"First": first, "Last": last}})
            })
            .collect();
        let mut rule = json!({"SrcIPs": srcs, "DstPorts": dsts});
        if self.u8() % 2 == 0 {
            let protos: Vec<i64> = (0..self.u8() % 4)
                .map(|_| [1, 6, 17, 58, 132, 47, 0, 300, -1][usize::from(self.u8() % 9)])
                .collect();
            rule["IPProto"] = json!(protos);
        }
        if self.u8() % 5 == 0 {
            let dsts: Vec<String> = (0..self.u8() % 3).map(|_| self.prefix()).collect();
            let name = ["x/a", "x/b", ""][usize::from(self.u8() % 3)];
            rule["CapGrant"] =
                json!([{"Dsts": dsts, "CapMap": {name: [self.u8()]}, "Caps": ["x/a"]}]);
        }
        rule
    }

    fn flow(&mut self, pool: &[IpAddr]) -> Flow {
        let pick = |b: &mut Self| {
            if pool.is_empty() || b.u8() % 4 == 0 {
                b.addr()
            } else {
                pool[usize::from(b.u8()) % pool.len()]
            }
        };
        let src = pick(self);
        let dst = pick(self);
        let proto = [6u8, 17, 1, 58, 132, 47, 99, 0, 255, 2][usize::from(self.u8() % 10)];
        let packet = match self.u8() % 8 {
            0 => Packet::Tcp { flags: self.u8() },
            1 => Packet::Icmp {
                icmp_type: self.u8(),
                code: self.u8() % 2,
            },
            _ => Packet::First,
        };
        Flow {
            src,
            dst,
            proto,
            src_port: self.u16(),
            dst_port: self.u16(),
            packet,
        }
    }
}

fn holds(src: IpAddr, cap: &str) -> bool {
    let last = match src {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    (cap == "a" && last % 2 == 0) || (cap == "b" && last % 3 == 0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = Bytes(rest);
    let (json, local) = if mode % 4 == 0 {
        // Raw: the rest is the filter text, for a fixed node; flows come from the same bytes.
        // Bytes that are not UTF-8 are read as the client's Go decoder reads them, each as
        // U+FFFD: the bytes are accepted exactly when that text is (a replacement character
        // is one in any count: it is never valid outside a string, nor inside an address).
        // Valid text is the same either way, and is read once, below.
        let text = match std::str::from_utf8(rest) {
            Ok(text) => text.to_string(),
            Err(_) => {
                let text = String::from_utf8_lossy(rest).into_owned();
                assert_eq!(
                    ParsedRules::from_slice(rest).is_ok(),
                    ParsedRules::from_json(&text).is_ok()
                );
                text
            }
        };
        let local = LocalNetworks::addresses([
            "100.64.0.1".parse().unwrap(),
            "fd7a:115c:a1e0::1".parse().unwrap(),
        ]);
        (text, local)
    } else {
        let rules: Vec<Value> = (0..bytes.u8() % 6).map(|_| bytes.rule()).collect();
        let addresses: Vec<String> = (0..bytes.u8() % 3)
            .map(|_| bytes.addr().to_string())
            .collect();
        let routes: Vec<String> = (0..bytes.u8() % 2).map(|_| bytes.prefix()).collect();
        let local: LocalNetworks =
            serde_json::from_value(json!({"addresses": addresses, "routes": routes})).unwrap();
        (Value::Array(rules).to_string(), local)
    };
    let Ok(parsed) = ParsedRules::from_json(&json) else {
        return;
    };
    let fast = Matcher::new(&parsed, &local);
    let reference = ReferenceMatcher::new(&parsed, &local);
    assert_eq!(fast.problems(), reference.problems());

    // Flows aimed at the addresses the filter and the node mention.
    let mut pool: Vec<IpAddr> = local.addresses.clone();
    pool.extend(local.routes.iter().map(|r| r.network()));
    for word in json.split(['"', '-', '/']) {
        if let Ok(ip) = word.parse::<IpAddr>() {
            pool.push(ip);
        }
    }
    let fast_cache = FlowCache::new(4);
    let reference_cache = FlowCache::new(4);
    let mut checked = 0;
    while checked < 64 && (checked < 8 || !bytes.is_empty()) {
        checked += 1;
        let flow = bytes.flow(&pool);
        assert_eq!(fast.check(&flow), reference.check(&flow), "{flow:?} {json}");
        assert_eq!(
            fast.check_with(&flow, &holds),
            reference.check_with(&flow, &holds),
            "{flow:?} {json}"
        );
        assert_eq!(
            fast.app_capabilities(flow.src, flow.dst),
            reference.app_capabilities(flow.src, flow.dst)
        );
        assert_eq!(
            fast.has_app_capability(flow.src, flow.dst, "x/a"),
            reference.has_app_capability(flow.src, flow.dst, "x/a")
        );
        let out = Flow {
            src: flow.dst,
            dst: flow.src,
            src_port: flow.dst_port,
            dst_port: flow.src_port,
            ..flow
        };
        assert_eq!(fast_cache.run_out(&out), reference_cache.run_out(&out));
        assert_eq!(
            fast_cache.run_in(&fast, &flow, &holds),
            reference_cache.run_in(&reference, &flow, &holds)
        );
    }
});
