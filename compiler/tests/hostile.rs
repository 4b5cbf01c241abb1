//! Hostile policies (issue 9) through the library: each must finish, with a generous
//! wall-clock guard that only catches a hang (timings are the benches' job), and give the
//! right answer: IP sets at any depth or width computed exactly, cycles refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::mpsc;
use std::time::Duration;

use aclc_compiler::{try_compile, CompileError, CompileErrorKind, Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_testkit::hostile::{self, Case};

/// Far above what any of these takes even unoptimised: a guard against hangs only.
const GUARD: Duration = Duration::from_secs(600);

/// Run `f` on its own thread and fail if it has not finished within [`GUARD`].
fn guarded<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx.recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{name}: did not finish within {GUARD:?}"))
}

fn parse(case: &Case) -> (Policy, Inventory) {
    let inventory = Inventory::from_json(&case.inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, checked) = aclc_policy::parse_str(case.name, &case.policy, &options);
    let checked = checked.unwrap_or_else(|d| panic!("{}: refused: {d:?}", case.name));
    (checked.policy, inventory)
}

fn compile_case(case: Case) -> Result<Compiled, CompileError> {
    guarded(case.name, move || {
        let (policy, inventory) = parse(&case);
        try_compile(&policy, &inventory)
    })
}

#[test]
fn many_undefined_names_are_each_reported_with_help() {
    let case = hostile::many_undefined_names(2_000, 500);
    let diagnostics = guarded(case.name, move || {
        let inventory = Inventory::from_json(&case.inventory).unwrap();
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let (_, checked) = aclc_policy::parse_str(case.name, &case.policy, &options);
        checked.err().unwrap().0
    });
    // A tag, a group and a host undefined, a user unknown, in each of 2,000 rules: each
    // reported, each with help (a suggestion while the lookups' budget lasts, else what to
    // define).
    for (code, count) in [
        ("aclc::undefined_tag", 2_000),
        ("aclc::undefined_group", 2_000),
        ("aclc::undefined_host", 2_000),
        ("aclc::unknown_user", 2_000),
    ] {
        let found: Vec<_> = diagnostics
            .iter()
            .filter(|d| d.code.as_str() == code)
            .collect();
        assert_eq!(found.len(), count, "{code}");
        assert!(found.iter().all(|d| d.help.is_some()), "{code}: help");
    }
    // The first lookups are within the budget: the nearest names are suggested.
    assert!(
        diagnostics
            .iter()
            .any(|d| d.help.as_deref() == Some("did you mean \"tag:t100\"?")),
        "no suggestion: {:?}",
        diagnostics
            .iter()
            .take(6)
            .map(|d| d.help.clone())
            .collect::<Vec<_>>()
    );
}

/// Every `DstPorts` address of every node, as written.
fn destinations(compiled: &Compiled) -> Vec<String> {
    compiled
        .nodes()
        .flat_map(|view| {
            view.packet_filter_rules()
                .iter()
                .flat_map(|r| r.dst_ports.iter().map(|p| p.ip.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn deep_ipset_is_computed_exactly() {
    for depth in [2, 16, 17, 20, 1000] {
        let compiled = compile_case(hostile::deep_ipset(depth)).unwrap();
        let dsts = destinations(&compiled);
        // The routers serve 10.0.x.0/24: nothing of 10.0.0.0/8 may reach them.
        assert!(
            !dsts.is_empty(),
            "depth {depth}: the set lost its addresses"
        );
        assert!(
            dsts.iter().all(|d| d == "100.64.0.0/10"),
            "depth {depth}: removed addresses granted: {dsts:?}"
        );
    }
}

#[test]
fn long_ipset_chain_does_not_recurse() {
    // Far deeper than any call stack would take, on a test thread's small stack.
    let compiled = compile_case(hostile::deep_ipset(50_000)).unwrap();
    assert!(destinations(&compiled).iter().all(|d| d == "100.64.0.0/10"));
}

#[test]
fn wide_ipset_dag_resolves() {
    let compiled = compile_case(hostile::ipset_dag(16, 4)).unwrap();
    // The top set is the four /16s of the bottom level: 10.0.0.0/14 as one range, which
    // overlaps the routers' 10.0.x.0/24 routes.
    let dsts = destinations(&compiled);
    assert!(!dsts.is_empty());
    assert!(dsts.iter().all(|d| d == "10.0.0.0/14"), "{dsts:?}");
    let compiled = compile_case(hostile::ipset_dag(64, 8)).unwrap();
    assert!(destinations(&compiled).iter().all(|d| d == "10.0.0.0/13"));
}

#[test]
fn rule_naming_many_hosts_compiles() {
    let compiled = compile_case(hostile::many_hosts(100_000)).unwrap();
    assert_eq!(compiled.node_names().count(), 64);
}

#[test]
fn ipset_with_many_entries_compiles() {
    let compiled = compile_case(hostile::big_ipset(100_000)).unwrap();
    assert_eq!(compiled.node_names().count(), 64);
}

#[test]
fn many_destinations_compile() {
    let compiled = compile_case(hostile::many_destinations(10_000, 2_000)).unwrap();
    // Each router receives the destinations inside its own route, 50 of them.
    let router = compiled.node("n000000").unwrap();
    let ports: usize = router
        .packet_filter_rules()
        .iter()
        .map(|r| r.dst_ports.len())
        .sum();
    assert_eq!(ports, 50);
}

#[test]
fn many_sources_and_destinations_compile() {
    let compiled = compile_case(hostile::many_sources_and_destinations(10_000, 2_000)).unwrap();
    // Each router receives the destinations inside its own route, 50 of them, from every
    // source.
    let router = compiled.node("n000000").unwrap();
    let rules = router.packet_filter_rules();
    let ports: usize = rules.iter().map(|r| r.dst_ports.len()).sum();
    assert_eq!(ports, 50);
    assert!(rules.iter().all(|r| r.src_ips.len() == 10_000));
}

#[test]
fn many_routes_and_rules_compile() {
    let compiled = compile_case(hostile::many_routes_and_rules(10_000, 10_000)).unwrap();
    // User u0's first device (n010000, not a router) has one rule to router n000000's
    // subnet: it sees that router and is shown its route.
    let node = compiled.node("n010000").unwrap();
    let router = node.peers().find(|p| p.name() == "n000000").unwrap();
    assert_eq!(router.primary_routes().len(), 1);
}

#[test]
fn cycle_refused_when_validation_was_skipped() {
    // Validation refuses the cycle; a caller that built the policy itself reaches the
    // compiler with it, which must refuse it too, at the entry closing the cycle.
    let case = hostile::deep_ipset(3);
    let (mut policy, inventory) = parse(&case);
    let l0 = policy
        .ipsets
        .iter()
        .position(|s| s.name.value == "ipset:l0")
        .unwrap();
    let back = policy
        .ipsets
        .iter()
        .find(|s| s.name.value == "ipset:l1")
        .unwrap()
        .entries[0]
        .clone();
    let mut back = back;
    back.target.alias = aclc_policy::model::Alias::IpSet("ipset:l2".into());
    back.target.text = "ipset:l2".into();
    policy.ipsets[l0].entries.push(back.clone());
    let err = guarded("cycle", move || try_compile(&policy, &inventory).err()).unwrap();
    assert_eq!(err.kind, CompileErrorKind::RecursiveIpSet);
    assert_eq!(err.kind.code(), "aclc::recursive_ipset");
    assert!(err.span.is_some());
    assert!(
        err.message.contains("cannot be recursive"),
        "{}",
        err.message
    );
}
