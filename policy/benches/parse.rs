//! Parse time of the HuJSON parser against `serde_json::Value` on the same policy, with the
//! comments and trailing commas blanked out so `serde_json` can read it; and format time
//! (`hujson::format`) beside the parse it includes.
//!
//! Workloads come from the seeded generator (`testdata/bench/gen_workload.py`): set
//! `ACLC_BENCH_DIR` to a directory holding `large/policy.hujson` and `huge/policy.hujson`, or let
//! the bench generate them under `target/bench-workloads`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

use aclc_policy::{hujson, Limits, Source};
use aclc_testkit::hujson::strip;
use aclc_testkit::workloads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const WORKLOADS: [&str; 2] = ["large", "huge"];

/// The workload's policy text, generated first if it is missing; `None` if it cannot be had.
fn workload(preset: &str) -> Option<String> {
    let dir = workloads::workload_dir(preset, 10, &["policy.hujson"])?;
    std::fs::read_to_string(dir.join("policy.hujson")).ok()
}

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse");
    group.sample_size(30);
    group.measurement_time(std::time::Duration::from_secs(8));
    for preset in WORKLOADS {
        let Some(text) = workload(preset) else {
            continue;
        };
        let json = strip(&text);
        let source = Source::new(format!("{preset}/policy.hujson"), text.clone());
        // Both sides must read the same value before either is timed.
        let (doc, diagnostics) = hujson::parse(&source, &limits);
        assert!(diagnostics.is_empty(), "{preset}: {diagnostics:?}");
        let doc = doc.expect("a document");
        assert!(
            !doc.comments.is_empty(),
            "{preset}: the workload has comments"
        );
        let expected: serde_json::Value = serde_json::from_str(&json).expect("stripped is JSON");
        assert_eq!(doc.root.to_json(), expected, "{preset}: same value");
        drop((doc, expected));

        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("aclc-hujson", preset), &source, |b, s| {
            b.iter(|| hujson::parse(s, &limits));
        });
        group.bench_with_input(BenchmarkId::new("serde_json", preset), &json, |b, j| {
            b.iter(|| serde_json::from_str::<serde_json::Value>(j).expect("JSON"));
        });
    }
    group.finish();
}

/// `hujson::format` (what `aclc fmt` does) beside the parse it starts with, on the same text.
fn bench_format(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("format");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(8));
    for preset in WORKLOADS {
        let Some(text) = workload(preset) else {
            continue;
        };
        let source = Source::new(format!("{preset}/policy.hujson"), text.clone());
        let formatted = hujson::format(&source, &limits).expect("the workload formats");
        let again = Source::new("formatted", formatted.clone());
        assert_eq!(hujson::format(&again, &limits).expect("formats"), formatted);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", preset), &source, |b, s| {
            b.iter(|| hujson::parse(s, &limits));
        });
        group.bench_with_input(BenchmarkId::new("format", preset), &source, |b, s| {
            b.iter(|| hujson::format(s, &limits).expect("formats"));
        });
        group.bench_with_input(
            BenchmarkId::new("format-formatted", preset),
            &again,
            |b, s| {
                b.iter(|| hujson::format(s, &limits).expect("formats"));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_format);
criterion_main!(benches);
