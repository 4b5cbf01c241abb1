//! Fuzz target: every diagnostic of any policy renders for a person (miette's graphical
//! handler, as `aclc check` does) and as JSON (line and column of both ends) without a panic.
#![no_main]

use aclc_policy::{source_from_bytes, Diagnostic, Limits, Options, Source};
use libfuzzer_sys::fuzz_target;
use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::json;

fn render(handler: &GraphicalReportHandler, diagnostic: &Diagnostic, source: &Source) {
    let report = diagnostic.report(source);
    let mut out = String::new();
    handler.render_report(&mut out, report.as_ref()).unwrap();
    assert!(!out.is_empty());

    let text = source.text();
    assert!(text
        .get(diagnostic.span.start as usize..diagnostic.span.end as usize)
        .is_some());
    let start = source.line_col(diagnostic.span.start as usize);
    let end = source.line_col(diagnostic.span.end as usize);
    assert!((start.line, start.column) <= (end.line, end.column));
    let value = json!({
        "severity": diagnostic.severity.as_str(),
        "code": diagnostic.code,
        "message": diagnostic.message,
        "help": diagnostic.help,
        "file": source.name(),
        "line": start.line,
        "column": start.column,
        "end_line": end.line,
        "end_column": end.column,
    });
    serde_json::to_string(&value).unwrap();
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let (source, decoding) = source_from_bytes("fuzz.hujson", data, &limits);
    let diagnostics = match aclc_policy::parse(&source, &Options::default()) {
        Ok(checked) => checked.warnings,
        Err(diagnostics) => diagnostics.0,
    };
    let plain =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_links(false);
    let colour = GraphicalReportHandler::new_themed(GraphicalTheme::unicode()).with_links(false);
    for diagnostic in decoding.iter().chain(&diagnostics) {
        render(&plain, diagnostic, &source);
        render(&colour, diagnostic, &source);
    }
});
