//! `aclc test`: run a policy's `tests` and `sshTests` against a node inventory and report every
//! assertion; also the refusal `compile` and `check` give a policy whose assertions fail.

use std::io::Write as _;
use std::path::PathBuf;

use aclc_compiler::policytest::TestReport;
use aclc_policy::text::escape;
use aclc_policy::Code;
use aclc_policy::{Diagnostic, Source};
use serde::Serialize;

use crate::input::{read_inputs, InputLimits};
use crate::report::{eprint_diagnostics, print_json, Format, JsonError, DEFAULT_MAX_DIAGNOSTICS};
use crate::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Exit status of `aclc test` when some assertion failed.
pub(crate) const EXIT_TESTS_FAILED: u8 = 3;

/// Arguments of `aclc test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Policy file (HuJSON or JSON); `-` reads standard input.
    #[arg(value_name = "POLICY")]
    policy: PathBuf,
    /// Node inventory (JSON): users, nodes, registration order, tailnet; `-` reads standard
    /// input.
    #[arg(long, value_name = "INVENTORY")]
    inventory: PathBuf,
    /// Human output renders at most this many diagnostics of a refused policy, errors first
    /// (0: all). JSON output always lists them all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DIAGNOSTICS)]
    max_diagnostics: usize,
    #[command(flatten)]
    limits: InputLimits,
    /// Output format, on stdout: `human` one line per assertion, `json` one document,
    /// `junit` a JUnit XML report (one test case per assertion), `github` GitHub workflow
    /// commands for the failed (and vacuous) assertions.
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    format: TestFormat,
}

/// The output formats of `aclc test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TestFormat {
    /// One line per assertion.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML.
    Junit,
    /// GitHub workflow commands.
    Github,
}

impl TestFormat {
    /// How a refused policy or unreadable input is reported: JSON for `json`, rendered on
    /// stderr otherwise.
    fn base(self) -> Format {
        match self {
            TestFormat::Json => Format::Json,
            _ => Format::Human,
        }
    }
}

/// Run `aclc test`; returns the exit status (0 all passed, 3 some failed, 2 invalid policy,
/// 1 usage or I/O error).
pub(crate) fn run(args: &TestArgs) -> u8 {
    let (inventory, source, checked) = match read_inputs(
        &args.policy,
        &args.inventory,
        &args.limits,
        args.format.base(),
        |source, found| invalid(args.format.base(), args.max_diagnostics, source, found),
    ) {
        Ok(inputs) => inputs,
        Err(status) => return status,
    };
    let report = match run_tests(&checked.policy, &inventory) {
        Ok(report) => report,
        Err(error) => {
            return invalid(
                args.format.base(),
                args.max_diagnostics,
                &source,
                &[error.to_diagnostic()],
            )
        }
    };
    let written = match args.format {
        TestFormat::Human => write_human(&report, &source),
        TestFormat::Json => write_json(&report, &source),
        TestFormat::Junit => {
            std::io::stdout().write_all(crate::ci::junit(&report, &source).as_bytes())
        }
        TestFormat::Github => {
            // One annotation per failed assertion (the summary line would repeat them).
            let mut diagnostics: Vec<Diagnostic> = failure_diagnostics(&report, &source)
                .into_iter()
                .filter(|d| d.code != Code::TestsFailed)
                .collect();
            diagnostics.extend(warning_diagnostics(&report));
            let located: Vec<_> = diagnostics.iter().map(|d| d.locate(&source)).collect();
            std::io::stdout().write_all(crate::ci::github_commands(&located).as_bytes())
        }
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write the output: {e}");
            return EXIT_USAGE;
        }
    }
    if report.passed() {
        EXIT_OK
    } else {
        EXIT_TESTS_FAILED
    }
}

pub(crate) use aclc_api::shape::{failure_diagnostics, run_tests, warning_diagnostics};

/// `{"passed": false, "error": {"message", "diagnostics"}}` for an invalid policy.
#[derive(Serialize)]
struct JsonInvalid {
    passed: bool,
    error: JsonError,
}

/// Report an invalid policy: rendered diagnostics on stderr, or the JSON document.
fn invalid(format: Format, max: usize, source: &Source, diagnostics: &[Diagnostic]) -> u8 {
    match format {
        Format::Human => {
            eprint_diagnostics(diagnostics, source, max);
            eprintln!("{}: policy refused, no test run", escape(source.name()));
        }
        Format::Json => {
            let message = aclc_api::shape::first_error_message(diagnostics);
            print_json(&JsonInvalid {
                passed: false,
                error: JsonError::new(message, diagnostics, source),
            });
        }
    }
    EXIT_INVALID
}

/// `PASS`/`FAIL` and the assertion's line, then a summary.
fn write_human(report: &TestReport, source: &Source) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for result in &report.results {
        let mark = if result.passed { "PASS" } else { "FAIL" };
        let at = source.line_col(result.span.start as usize);
        writeln!(
            out,
            "{mark} {}:{}: {}",
            escape(source.name()),
            at.line,
            escape(&result.message(source))
        )?;
        if let Some(warning) = &result.warning {
            writeln!(out, "  warning: {}", escape(warning))?;
        }
    }
    writeln!(out, "{}", summary(report, &escape(source.name())))?;
    out.flush()
}

/// `policy.hujson: 6 assertions, 1 failed` (or `all passed`, or `no tests`), then
/// `, 1 warning` when some passing assertion carries one.
fn summary(report: &TestReport, name: &str) -> String {
    let total = report.results.len();
    let failed = report.failures().count();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let assertions = format!("{total} assertion{}", plural(total));
    let line = match (total, failed) {
        (0, _) => format!("{name}: no tests"),
        (_, 0) => format!("{name}: {assertions}, all passed"),
        (_, f) => format!("{name}: {assertions}, {f} failed"),
    };
    match report.warnings().count() {
        0 => line,
        w => format!("{line}, {w} warning{}", plural(w)),
    }
}

fn write_json(report: &TestReport, source: &Source) -> std::io::Result<()> {
    let doc = aclc_api::shape::TestReportJson::new(report, source);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer(&mut out, &doc)?;
    writeln!(out)?;
    out.flush()
}
