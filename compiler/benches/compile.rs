//! Compile time of the `medium` workload (10,000 nodes, 1,000 rules): the shared compile, and
//! the compile plus every node's view (filter rules and peer set), with peak memory reported.
//!
//! The workload comes from the seeded generator (`shared/bench/gen_workload.py --preset medium
//! --seed 1`): set `ACLC_BENCH_DIR` to a directory holding `medium/`, or let the bench generate
//! it under `target/bench-workloads`. Without the generator the bench says so and skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aclc_compiler::{compile, Inventory};
use aclc_policy::model::Policy;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const PRESET: &str = "medium";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the compiler crate is in the workspace")
        .to_path_buf()
}

/// The workload's directory, generated first if missing; `None` if it cannot be had.
fn workload_dir(preset: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("ACLC_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("bench-workloads"));
    let out = dir.join(preset);
    if !out.join("inventory.json").exists() || !out.join("policy.hujson").exists() {
        let script = workspace_root().join("../shared/bench/gen_workload.py");
        if !script.exists() {
            eprintln!(
                "skipping the {preset} workload: nothing in {} and no generator at {}",
                out.display(),
                script.display()
            );
            return None;
        }
        eprintln!("generating the {preset} workload into {}", out.display());
        let status = Command::new("python3")
            .arg(&script)
            .args(["--preset", preset, "--seed", "1", "--flows", "10", "--out"])
            .arg(&out)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("skipping the {preset} workload: the generator failed ({status:?})");
            return None;
        }
    }
    Some(out)
}

fn load(dir: &Path) -> (Policy, Inventory) {
    let inventory =
        Inventory::from_json(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let text = std::fs::read_to_string(dir.join("policy.hujson")).unwrap();
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &text, &options);
    (parsed.unwrap().policy, inventory)
}

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
    let Some(dir) = workload_dir(PRESET) else {
        return;
    };
    let (policy, inventory) = load(&dir);
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
