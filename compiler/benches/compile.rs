//! Compile time of the `medium` workload (10,000 nodes, 1,000 rules): the shared compile, and
//! the compile plus every node's view (filter rules and peer set), with peak memory reported.
//!
//! The workload comes from the seeded generator (`testdata/bench/gen_workload.py --preset medium
//! --seed 1`): set `ACLC_BENCH_DIR` to a directory holding `medium/`, or let the bench generate
//! it under `target/bench-workloads`. Without the generator the bench says so and skips.
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

use aclc_compiler::Inventory;
use aclc_policy::model::Policy;
use aclc_testkit::workloads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

mod support;
use support::{compile, load_workload};

const PRESET: &str = "medium";

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Every node's view, reduced to counts so nothing is optimised away.
fn all_views(policy: &Policy, inventory: &Inventory) -> (usize, usize) {
    let compiled = compile(policy, inventory);
    let mut rules = 0;
    let mut peers = 0;
    for view in compiled.nodes() {
        rules += view.packet_filter_rules().len();
        peers += view.peer_count();
    }
    (rules, peers)
}

fn bench_compile(c: &mut Criterion) {
    let Some(dir) = workloads::workload_dir(PRESET, 10, &["inventory.json", "policy.hujson"])
    else {
        return;
    };
    let (policy, inventory) = load_workload(&dir);
    let nodes = inventory.nodes().len();
    // Sanity before timing: every node compiles, and a group rule reaches its servers.
    let (rules, peers) = all_views(&policy, &inventory);
    assert!(rules > nodes, "only {rules} rules for {nodes} nodes");
    assert!(peers > nodes, "only {peers} peer entries for {nodes} nodes");
    eprintln!(
        "{PRESET}: {nodes} nodes, {rules} filter rules and {peers} peer entries in total; \
         peak RSS after one full compile: {} MiB",
        peak_rss_mib().unwrap_or(0)
    );

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_with_input(BenchmarkId::new("shared", PRESET), &(), |b, ()| {
        b.iter(|| compile(&policy, &inventory))
    });
    group.bench_with_input(BenchmarkId::new("all_nodes", PRESET), &(), |b, ()| {
        b.iter(|| all_views(&policy, &inventory))
    });
    let compiled = compile(&policy, &inventory);
    let name = compiled.node_names().next().unwrap_or_default().to_string();
    group.bench_with_input(
        BenchmarkId::new("one_node_wire", PRESET),
        &name,
        |b, name| b.iter(|| compiled.node(name).map(|v| v.to_wire())),
    );
    group.finish();
    eprintln!(
        "peak RSS after the runs: {} MiB",
        peak_rss_mib().unwrap_or(0)
    );
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
