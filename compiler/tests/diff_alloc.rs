//! The access diff's work on routers with equal filters does not grow with their number:
//! allocations counted with an instrumented global allocator, on exit nodes reached through
//! one rule to a large IP set (each node's filter holds every address). Each node's filter
//! was keyed, grouped and swept afresh (0.17 s a node at 20,000 addresses, about 8 allocations
//! per address); equal filters now share one comparison, so a further node costs a few
//! allocations whatever the set's size.
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

use aclc_compiler::diff::{access_diff, AccessDiff, DiffOptions, Side};
use aclc_compiler::{compile, Inventory};
use aclc_policy::Source;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;
/// [`aclc_testkit::hostile::exit_nodes_ipset`], its inventory read.
fn exit_nodes_case(nodes: usize, addrs: usize) -> (Inventory, String, String) {
    let (inventory, old, new) = aclc_testkit::hostile::exit_nodes_ipset(nodes, addrs);
    (Inventory::from_json(&inventory).unwrap(), old, new)
}

/// The access diff of [`exit_nodes_case`] on one thread, and the allocations it made.
fn counted(nodes: usize, addrs: usize) -> (AccessDiff, usize) {
    let (inventory, old_text, new_text) = exit_nodes_case(nodes, addrs);
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let load = |text: String| {
        let source = Source::new("policy.json", text);
        let policy = aclc_policy::parse(&source, &options).unwrap().policy;
        (source, policy)
    };
    let (old_source, old_policy) = load(old_text);
    let (new_source, new_policy) = load(new_text);
    let (old, new) = (
        compile(&old_policy, &inventory),
        compile(&new_policy, &inventory),
    );
    let mut diff_options = DiffOptions::default();
    diff_options.threads = 1;
    diff_options.max_names = usize::MAX;
    let region = Region::new(GLOBAL);
    let diff = access_diff(
        Side {
            policy: &old_policy,
            source: &old_source,
            compiled: &old,
        },
        Side {
            policy: &new_policy,
            source: &new_source,
            compiled: &new,
        },
        &diff_options,
    );
    (diff, region.change().allocations)
}

#[test]
fn equal_router_filters_are_compared_once() {
    const ADDRS: usize = 2_000;
    let (few, few_allocs) = counted(4, ADDRS);
    let (many, many_allocs) = counted(36, ADDRS);
    // Every exit node gains the added address.
    for (diff, nodes) in [(&few, 4), (&many, 36)] {
        assert_eq!(diff.network.gained.len(), 1, "{diff:?}");
        assert!(diff.network.lost.is_empty(), "{diff:?}");
        let dst = &diff.network.gained[0].dst;
        assert_eq!(dst.count, nodes);
        assert!(dst.names.iter().all(|n| n.starts_with("9.9.9.9 via x")));
    }
    // 32 more nodes: a few allocations each (their filters built, hashed and compared, the
    // shared changes copied), not some per address of the set (about 16,000 each before).
    let per_node = many_allocs.saturating_sub(few_allocs) / 32;
    assert!(
        per_node < ADDRS / 20,
        "each further exit node cost {per_node} allocations ({few_allocs} for 4 nodes, \
         {many_allocs} for 36)"
    );
}
