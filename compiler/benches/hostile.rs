//! Compile time of hostile policies (issue 9): an IP set DAG of 16 levels x 4 sets, a rule
//! naming 10^5 hosts, an IP set of 10^5 entries and an ACL of 10^4 destinations over 2,000
//! nodes, 10^4 routes with 10^4 rules to them. Each is parsed once; the timed part is the shared compile (`try_compile`).
//! And a policy's tests (`hostile/port_tests_1e4`: 10^4 tests of the ports of one ACL entry
//! list; `hostile/ssh_tests_8e3`: 8,000 SSH tests, each of the login of one of 8,000 rules;
//! `hostile/one_port_rules_3e4`: 30,000 one-port ACLs and a test of each port, last first),
//! timed in `run_tests`; and the validation of 10^4 rules naming undefined tags,
//! groups, hosts and users among 2,000 of each defined (`hostile/undefined_names_1e4_x_2e3`),
//! timed in `parse_str`; 10^5 rules that each hold an error (`hostile/broken_rules_1e5`) and
//! one node advertising 60,000 routes under as many `autoApprovers` prefixes
//! (`hostile/advertised_routes_6e4`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

/// The allocator of the `aclc` binary, so the figures are what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aclc_compiler::{try_compile, Inventory};
use aclc_policy::model::Policy;
use aclc_testkit::hostile::{self, Case};
use criterion::{criterion_group, criterion_main, Criterion};

fn parse(case: &Case) -> (Policy, Inventory) {
    let inventory = Inventory::from_json(&case.inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, checked) = aclc_policy::parse_str(case.name, &case.policy, &options);
    (checked.unwrap().policy, inventory)
}

fn bench_hostile(c: &mut Criterion) {
    let mut group = c.benchmark_group("hostile");
    group.sample_size(10);
    for case in [
        hostile::ipset_dag(16, 4),
        hostile::many_hosts(100_000),
        hostile::big_ipset(100_000),
        hostile::many_destinations(10_000, 2_000),
        hostile::many_routes_and_rules(10_000, 10_000),
        hostile::many_sources_and_destinations(10_000, 2_000),
        hostile::many_advertised_routes(60_000),
    ] {
        let (policy, inventory) = parse(&case);
        assert!(try_compile(&policy, &inventory).is_ok(), "{}", case.name);
        group.bench_function(case.name, |b| {
            b.iter(|| try_compile(&policy, &inventory).map(|c| c.node_names().count()))
        });
    }
    // A policy's tests, run on its compile: the timed part is `run_tests`.
    for case in [
        hostile::many_port_tests(10_000, 2_000),
        hostile::many_ssh_tests(8_000, 400),
        hostile::many_one_port_rules(30_000, 400),
    ] {
        let (policy, inventory) = parse(&case);
        let compiled = try_compile(&policy, &inventory).unwrap();
        assert!(
            aclc_compiler::policytest::run_tests(&policy, &compiled).passed(),
            "{}",
            case.name
        );
        group.bench_function(case.name, |b| {
            b.iter(|| aclc_compiler::policytest::run_tests(&policy, &compiled).passed())
        });
    }
    // Validation of a policy whose every reference is undefined: the timed part is
    // `parse_str`, most of it the "did you mean" lookups among the defined names and the
    // inventory's logins (bounded per validation; 10^4 x 2,000 of them took many seconds).
    let case = hostile::many_undefined_names(10_000, 2_000);
    let inventory = Inventory::from_json(&case.inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, checked) = aclc_policy::parse_str(case.name, &case.policy, &options);
    assert!(checked.is_err_and(|d| d.0.len() >= 40_000), "{}", case.name);
    group.bench_function(case.name, |b| {
        b.iter(|| {
            aclc_policy::parse_str(case.name, &case.policy, &options)
                .1
                .is_err()
        })
    });
    // Validation of rules that each hold an error already (the timed part is `parse_str`).
    let broken = hostile::many_broken_rules(100_000);
    group.bench_function("broken_rules_1e5", |b| {
        b.iter(|| {
            aclc_policy::parse_str("broken", &broken, &aclc_policy::Options::default())
                .1
                .is_err()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_hostile);
criterion_main!(benches);
