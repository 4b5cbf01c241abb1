//! Human rendering of many diagnostics (`render/`): 10^4 warnings on one minified line
//! against the same 10^4 spread over one line each. Both should take about the same time per
//! diagnostic; a renderer or column count that rescans the line (or the file) per diagnostic
//! makes `one_line` quadratic and shows here at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

use aclc_policy::{parse_str, Diagnostic, Options, Source};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use miette::{GraphicalReportHandler, GraphicalTheme};

const DIAGNOSTICS: usize = 10_000;

/// A policy with `n + 1` groups of which only the first is used: `n` `unused_group` warnings.
fn policy(n: usize, separator: &str) -> String {
    let groups: Vec<String> = (0..=n)
        .map(|i| format!("\"group:g{i}\":[\"u{i}@example.com\"]"))
        .collect();
    format!(
        "{{\"groups\":{{{}}},{separator}\"acls\":[{{\"action\":\"accept\",\"src\":[\"group:g0\"],\"dst\":[\"*:*\"]}}]}}",
        groups.join(&format!(",{separator}"))
    )
}

fn warnings(name: &str, text: &str) -> (Source, Vec<Diagnostic>) {
    let (source, result) = parse_str(name, text, &Options::default());
    let warnings = result.expect("valid").warnings;
    assert_eq!(warnings.len(), DIAGNOSTICS, "{name}");
    (source, warnings)
}

fn bench_render(c: &mut Criterion) {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    group.throughput(Throughput::Elements(DIAGNOSTICS as u64));
    for (layout, separator) in [("one_line", ""), ("spread", "\n")] {
        let (source, diagnostics) = warnings(layout, &policy(DIAGNOSTICS, separator));
        group.bench_with_input(
            BenchmarkId::new("human", layout),
            &(source.clone(), diagnostics.clone()),
            |b, (source, diagnostics)| {
                b.iter(|| {
                    let mut out = String::new();
                    for d in diagnostics {
                        handler
                            .render_report(&mut out, d.report(source).as_ref())
                            .unwrap();
                    }
                    out.len()
                });
            },
        );
        // What JSON output computes per diagnostic: the start and end line and column.
        group.bench_with_input(
            BenchmarkId::new("line_col", layout),
            &(source, diagnostics),
            |b, (source, diagnostics)| {
                b.iter(|| {
                    diagnostics
                        .iter()
                        .map(|d| {
                            source.line_col(d.span.start as usize).column
                                + source.line_col(d.span.end as usize).column
                        })
                        .sum::<usize>()
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
