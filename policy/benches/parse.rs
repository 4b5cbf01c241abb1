//! Parse time of the HuJSON parser against `serde_json::Value` on the same policy, with the
//! comments and trailing commas blanked out so `serde_json` can read it.
//!
//! Workloads come from the seeded generator (`shared/bench/gen_workload.py`): set
//! `ACLC_BENCH_DIR` to a directory holding `large/policy.hujson` and `huge/policy.hujson`, or let
//! the bench generate them under `target/bench-workloads`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aclc_policy::{hujson, Limits, Source};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const WORKLOADS: [&str; 2] = ["large", "huge"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the policy crate is in the workspace")
        .to_path_buf()
}

/// The workload's policy text, generated first if it is missing; `None` if it cannot be had.
fn workload(preset: &str) -> Option<String> {
    let dir = std::env::var_os("ACLC_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("bench-workloads"));
    let out = dir.join(preset);
    let path = out.join("policy.hujson");
    if !path.exists() {
        let script = workspace_root().join("../shared/bench/gen_workload.py");
        if !script.exists() {
            eprintln!(
                "skipping the {preset} workload: no {} and no generator at {}",
                path.display(),
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
    std::fs::read_to_string(&path).ok()
}

/// `text` with comments and trailing commas replaced by spaces: plain JSON at the same offsets.
/// Written independently of the parser, so the bench also cross-checks it.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    // A comma followed so far only by whitespace and comments.
    let mut comma: Option<usize> = None;
    while i < b.len() {
        match b[i] {
            b'"' => {
                comma = None;
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = i + 2 + text[i + 2..].find("*/").expect("closed comment") + 2;
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
            }
            b',' => {
                comma = Some(i);
                i += 1;
            }
            b']' | b'}' => {
                if let Some(at) = comma.take() {
                    out[at] = b' ';
                }
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => {
                comma = None;
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was replaced")
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

criterion_group!(benches, bench_parse);
criterion_main!(benches);
