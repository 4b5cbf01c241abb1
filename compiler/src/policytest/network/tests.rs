//! Unit tests of the network tests' evaluation.

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
