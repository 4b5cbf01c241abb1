//! Times one compile of a benchmark workload (`gen_workload.py` output) for every node and
//! reports peak memory, for the figures in ARCHITECTURE.md:
//!
//! ```text
//! cargo run --release -p aclc-compiler --example compile_workload -- target/bench-workloads/medium
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/bench-workloads/medium".to_string()),
    );
    let policy_text = std::fs::read_to_string(dir.join("policy.hujson")).expect("policy.hujson");
    let inventory_text =
        std::fs::read_to_string(dir.join("inventory.json")).expect("inventory.json");
    let t = Instant::now();
    let inventory = aclc_compiler::Inventory::from_json(&inventory_text).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &policy_text, &options);
    let policy = parsed.unwrap().policy;
    println!("read inventory + policy: {:?}", t.elapsed());
    let rss_before = peak_rss_kib().unwrap_or(0);

    let t = Instant::now();
    let compiled = aclc_compiler::compile(&policy, &inventory);
    let compile_time = t.elapsed();
    let t = Instant::now();
    let (mut rules, mut peers, mut nodes) = (0usize, 0usize, 0usize);
    for view in compiled.nodes() {
        nodes += 1;
        rules += view.packet_filter_rules().len();
        peers += view.peer_count();
    }
    let views_time = t.elapsed();
    let t = Instant::now();
    let mut filter_rules = 0usize;
    for name in compiled.node_names() {
        filter_rules += compiled.filter_rules(name).map_or(0, |r| r.len());
    }
    println!(
        "filters only, all nodes: {:?} ({filter_rules} rules)",
        t.elapsed()
    );
    println!("compile: {compile_time:?}");
    println!("all {nodes} node views: {views_time:?} ({rules} rules, {peers} peer entries)");
    println!("compile + all views: {:?}", compile_time + views_time);
    println!(
        "peak RSS: {} MiB (after reading inputs: {} MiB)",
        peak_rss_kib().unwrap_or(0) / 1024,
        rss_before / 1024
    );
}
