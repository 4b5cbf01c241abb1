//! Unit tests of the network diff.

use super::*;

/// The families of some positions and of their nodes: a dual-stack node (0), an
/// IPv4-only one (1) and an IPv6-only one (2).
#[test]
fn families_of_positions_and_their_nodes() {
    let ip = |s: &str| {
        s.parse::<IpAddr>()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let table = AddrTable::new(
        [
            [ip("100.64.0.1"), ip("fd7a::1")],
            [ip("100.64.0.2"), none],
            [none, ip("fd7a::3")],
        ]
        .into_iter(),
    );
    // Positions: 100.64.0.1, 100.64.0.2, fd7a::1, fd7a::3.
    assert_eq!(table.families(0), V4 | V6);
    assert_eq!(table.families(1), V4);
    assert_eq!(table.run_families(&[(0, 1)]), (V4, V4 | V6));
    assert_eq!(table.run_families(&[(1, 2)]), (V4, V4));
    assert_eq!(table.run_families(&[(3, 4)]), (V6, V6));
    assert_eq!(table.run_families(&[(1, 3)]), (V4 | V6, V4 | V6));
    assert_eq!(table.run_families(&[]), (0, 0));
}

#[test]
fn ranges_of_wire_addresses() {
    let v4 = |s: &str| {
        s.parse::<IpAddr>()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    assert_eq!(
        ranges("100.64.0.1"),
        vec![(v4("100.64.0.1"), v4("100.64.0.1"))]
    );
    assert_eq!(
        ranges("10.0.0.0/8"),
        vec![(v4("10.0.0.0"), v4("10.255.255.255"))]
    );
    assert_eq!(
        ranges("10.0.0.1-10.0.0.9"),
        vec![(v4("10.0.0.1"), v4("10.0.0.9"))]
    );
    assert_eq!(ranges("*").len(), 2);
    assert!(ranges("autogroup:internet").is_empty());
}

#[test]
fn ranges_beyond_the_nodes_as_text() {
    let k = |s: &str| addr_key(s.parse::<IpAddr>().unwrap());
    assert_eq!(range_text(k("10.1.0.0"), k("10.1.255.255")), "10.1.0.0/16");
    assert_eq!(range_text(k("10.1.0.1"), k("10.1.0.1")), "10.1.0.1");
    assert_eq!(
        range_text(k("10.1.0.1"), k("10.1.0.2")),
        "10.1.0.1-10.1.0.2"
    );
    assert_eq!(range_text(k("0.0.0.0"), k("255.255.255.255")), "0.0.0.0/0");
    assert_eq!(range_text(k("::"), (1, u128::MAX)), "::/0");
    assert_eq!(next_addr(k("255.255.255.255")), Some((1, 0)));
    assert_eq!(previous_addr((1, 0)), k("255.255.255.255"));
    assert_eq!(next_addr((1, u128::MAX)), None);
    // Touching ranges merge, across the families' boundary too.
    assert_eq!(
        merge_addr_ranges(vec![
            (k("10.0.0.5"), k("10.0.0.9")),
            (k("10.0.0.0"), k("10.0.0.4")),
            (k("255.255.255.0"), k("255.255.255.255")),
            (k("::"), k("::1")),
        ]),
        vec![
            (k("10.0.0.0"), k("10.0.0.9")),
            (k("255.255.255.0"), k("::1"))
        ]
    );
}

#[test]
fn sweep_finds_gains_and_losses_per_segment() {
    // old: positions 0..4 may use 22; new: 0..2 may use 22 and 2..6 may use 22-23.
    let old = [(0, 4, 22, 22)];
    let new = [(0, 2, 22, 22), (2, 6, 22, 23)];
    let got = sweep(&old, &new);
    let text: Vec<String> = got
        .iter()
        .map(|(a, b, g, l)| format!("{a}-{b} +{g} -{l}"))
        .collect();
    assert_eq!(text, vec!["2-4 +23 -", "4-6 +22-23 -"]);
    assert!(sweep(&new, &new).is_empty());
}
