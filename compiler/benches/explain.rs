//! `aclc explain` after loading: one network question and one SSH question on the `medium`
//! workload (10,000 nodes, 1,000 rules) and, with `ACLC_BENCH_LARGE` set, `large` (100,000
//! nodes, 10,000 rules); policy parsed and compiled once outside the timing.
//! Target: under 100 ms per question.
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator of the `aclc` binary, so the figures are what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use aclc_compiler::policytest::{explain, explain_ssh, NetworkQuery};
use aclc_testkit::workloads;
use criterion::{criterion_group, criterion_main, Criterion};
use support::{compile, load_workload};

fn bench_explain(c: &mut Criterion) {
    bench_preset(c, "medium");
    // `large` (100,000 nodes): loading takes seconds, so only on request.
    if std::env::var_os("ACLC_BENCH_LARGE").is_some() {
        bench_preset(c, "large");
    }
}

fn bench_preset(c: &mut Criterion, preset: &str) {
    let Some(dir) = workloads::workload_dir(preset, 10, &["inventory.json", "policy.hujson"])
    else {
        return;
    };
    let (policy, inventory) = load_workload(&dir);
    let compiled = compile(&policy, &inventory);
    // A user-owned node and a tagged node of the tailnet, named as inventory nodes.
    let user_node = inventory
        .nodes()
        .iter()
        .find(|n| !n.is_tagged())
        .unwrap()
        .name
        .clone();
    let tagged = inventory
        .nodes()
        .iter()
        .find(|n| n.is_tagged())
        .unwrap()
        .name
        .clone();
    let dst = format!("{tagged}:443");
    let query = NetworkQuery {
        src: &user_node,
        dst: &dst,
        proto: None,
        src_posture_attrs: None,
    };
    // Sanity: the question is answerable.
    explain(&policy, &compiled, &query).unwrap();
    let mut group = c.benchmark_group("explain");
    group.sample_size(10);
    group.bench_function(format!("network/{preset}"), |b| {
        b.iter(|| explain(&policy, &compiled, &query).unwrap())
    });
    group.bench_function(format!("ssh/{preset}"), |b| {
        b.iter(|| explain_ssh(&policy, &compiled, &user_node, &tagged, "root"))
    });
    group.finish();
}

criterion_group!(benches, bench_explain);
criterion_main!(benches);
