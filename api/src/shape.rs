//! The JSON documents `aclc check`, `compile` and `explain` print, built here once so the
//! command line and the embedding API ([`crate::Engine`]) cannot drift apart.

use aclc_compiler::policytest::{
    Expectation, Explanation, TestKind, TestReport, TestResult, Verdict, TESTS_FAILED,
};
use aclc_compiler::{try_compile_with_options, CompileError, CompileOptions, Inventory};
use aclc_policy::diag::Located;
use aclc_policy::{Checked, Code, Diagnostic, Options, Source, Span};
use serde::Serialize;

/// Rule text longer than this is cut (with `…`) in explanations.
const MAX_RULE_TEXT: usize = 160;

/// A policy decoded and parsed.
pub struct ParsedPolicy {
    /// The decoded text.
    pub source: Source,
    /// What decoding reported and, when the policy was refused, every diagnostic of the
    /// refusal (a valid policy's warnings are in `checked`).
    pub diagnostics: Vec<Diagnostic>,
    /// The valid policy and its warnings; `None` when it was refused.
    pub checked: Option<Checked>,
}

/// Decode and parse the policy `bytes` named `name` with `options`. Undecodable input (bad
/// UTF-8, too large) is not parsed: it would only produce confusing follow-on errors.
pub fn parse_policy(name: &str, bytes: &[u8], options: &Options) -> ParsedPolicy {
    let (source, mut diagnostics) = aclc_policy::source_from_bytes(name, bytes, &options.limits);
    let checked = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        match aclc_policy::parse(&source, options) {
            Ok(checked) => Some(checked),
            Err(found) => {
                diagnostics.extend(found.0);
                None
            }
        }
    };
    ParsedPolicy {
        source,
        diagnostics,
        checked,
    }
}

/// What checking one policy found (`aclc check`).
pub struct CheckResult {
    /// The decoded text.
    pub source: Source,
    /// Every diagnostic: errors, warnings, and with an inventory the tests' failures.
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the policy is accepted.
    pub valid: bool,
}

impl CheckResult {
    /// The diagnostics located in the source, as JSON shows them.
    pub fn located(&self) -> Vec<Located> {
        self.diagnostics
            .iter()
            .map(|d| d.locate(&self.source))
            .collect()
    }

    /// `{"valid", "diagnostics"}`: `aclc check --format json` of one file.
    pub fn to_json(&self) -> CheckJson {
        CheckJson {
            valid: self.valid,
            diagnostics: self.located(),
        }
    }
}

/// The JSON of checking a single file: `{"valid", "diagnostics"}`.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// Whether the policy is accepted.
    pub valid: bool,
    /// Every diagnostic, located.
    pub diagnostics: Vec<Located>,
}

/// Check one policy as `aclc check` does: parse and validate it and, with an inventory, run
/// its `tests` and `sshTests` (a failing one refuses the policy, as Tailscale does).
pub fn check_policy(
    name: &str,
    bytes: &[u8],
    options: &Options,
    inventory: Option<&Inventory>,
) -> CheckResult {
    let ParsedPolicy {
        source,
        mut diagnostics,
        checked,
    } = parse_policy(name, bytes, options);
    let mut valid = checked.is_some();
    if let Some(checked) = checked {
        diagnostics.extend(checked.warnings);
        if let Some(inventory) = inventory {
            match run_tests(&checked.policy, inventory) {
                Ok(report) => {
                    diagnostics.extend(warning_diagnostics(&report));
                    if !report.passed() {
                        valid = false;
                        diagnostics.extend(failure_diagnostics(&report, &source));
                    }
                }
                // The compiler refused the policy (an IP set it cannot compute, work beyond
                // the budget): invalid, at the place to blame.
                Err(error) => {
                    valid = false;
                    diagnostics.push(error.to_diagnostic());
                }
            }
        } else {
            // Without an inventory most assertions cannot be evaluated, but a test that is
            // malformed, names what the policy does not define, or asserts a deny the rules
            // break between written addresses fails in every tailnet.
            let report = aclc_compiler::check_test_shapes(&checked.policy);
            if !report.passed() {
                valid = false;
                diagnostics.extend(failure_diagnostics(&report, &source));
            }
        }
    }
    CheckResult {
        source,
        diagnostics,
        valid,
    }
}

/// Compile `policy` against `inventory` with the default options and run its assertions; the
/// compiler's refusal when it refuses the policy.
pub fn run_tests(
    policy: &aclc_policy::model::Policy,
    inventory: &Inventory,
) -> Result<TestReport, CompileError> {
    let compiled = try_compile_with_options(policy, inventory, &CompileOptions::default())?;
    Ok(aclc_compiler::run_tests(policy, &compiled))
}

/// The diagnostics of a refusal for failed assertions: `test(s) failed` (Tailscale's text)
/// on the first failure, then one per failed assertion.
pub fn failure_diagnostics(report: &TestReport, source: &Source) -> Vec<Diagnostic> {
    let failures: Vec<&TestResult> = report.failures().collect();
    let Some(first) = failures.first() else {
        return Vec::new();
    };
    let n = failures.len();
    let mut out = vec![
        Diagnostic::error(Code::TestsFailed, first.span, TESTS_FAILED).with_help(format!(
            "{n} assertion{} of the policy's tests failed; `aclc test` reports every assertion",
            if n == 1 { "" } else { "s" }
        )),
    ];
    for failure in failures {
        let mut diagnostic =
            Diagnostic::error(Code::TestFailed, failure.span, failure.message(source));
        if let Ok(verdict) = &failure.outcome {
            for &rule in verdict.rules() {
                diagnostic = diagnostic.with_related(rule, "allowed by this rule");
            }
        }
        out.push(diagnostic);
    }
    out
}

/// Warnings for assertions that passed but prove less than they seem (a `deny` from a source
/// with no devices in the inventory holds vacuously; one that holds because only some source
/// addresses get through): shown, never a refusal.
pub fn warning_diagnostics(report: &TestReport) -> Vec<Diagnostic> {
    report
        .warnings()
        .filter_map(|result| {
            let warning = result.warning.as_deref()?;
            Some(
                Diagnostic::warning(Code::TestVacuous, result.span, warning).with_help(
                    "the assertion passes but proves less than it seems: check that `src` and \
                     the destination name exactly the devices meant (a test per user or device \
                     asserts each one)",
                ),
            )
        })
        .collect()
}

/// The `error` object of a refused policy as JSON: the message and every diagnostic.
#[derive(Debug, Serialize)]
pub struct JsonError {
    /// What went wrong, in one line (or one line per failed assertion).
    pub message: String,
    /// Every diagnostic of the refusal, located.
    pub diagnostics: Vec<Located>,
}

impl JsonError {
    /// The error object for `diagnostics` of `source`, under `message`.
    pub fn new(message: String, diagnostics: &[Diagnostic], source: &Source) -> JsonError {
        JsonError {
            message,
            diagnostics: diagnostics.iter().map(|d| d.locate(source)).collect(),
        }
    }
}

/// The message of a refusal by `aclc compile`: the first error, and how many more there are.
pub fn compile_refusal_message(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let mut message = errors.first().map_or_else(
        || "the policy was refused".to_string(),
        |d| d.message.clone(),
    );
    if errors.len() > 1 {
        message.push_str(&format!(" (+{} more)", errors.len() - 1));
    }
    message
}

/// The message of a refusal by `aclc explain` and `aclc test`: the first error.
pub fn first_error_message(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().find(|d| d.is_error()).map_or_else(
        || "the policy was refused".to_string(),
        |d| d.message.clone(),
    )
}

/// A rule as written, on one line: whitespace runs (comments' line breaks too) become one
/// space, and a long rule is cut.
pub fn rule_text(source: &Source, span: Span) -> String {
    aclc_policy::text::one_line(source.slice(span), MAX_RULE_TEXT)
}

/// `aclc explain --format json`.
#[derive(Debug, Serialize)]
pub struct ExplanationJson {
    /// The verdict.
    pub allowed: bool,
    /// Why, in one line.
    pub reason: String,
    /// The rules that allow it.
    pub rules: Vec<RuleJson>,
    /// On a denial, the nearest misses.
    pub misses: Vec<MissJson>,
    /// On an allowed flow, the other rules that let some of it through as well (removing
    /// only `rules` would not deny it); empty for SSH logins.
    pub also: Vec<RuleJson>,
    /// What the verdict cannot show, said beside it (a closed TCP port 22 under an allowed
    /// SSH login, an endpoint that is an IPv4 address `disable-ipv4` takes away); empty
    /// when nothing is.
    pub notes: Vec<String>,
}

/// A rule: where it is, and its text on one line.
#[derive(Debug, Serialize)]
pub struct RuleJson {
    /// The policy's name.
    pub file: String,
    /// Line of the rule's start.
    pub line: usize,
    /// Column of the rule's start.
    pub column: usize,
    /// The rule as written, on one line.
    pub text: String,
}

/// A rule that nearly matched, and why it did not.
#[derive(Debug, Serialize)]
pub struct MissJson {
    /// The rule.
    #[serde(flatten)]
    pub rule: RuleJson,
    /// Why it does not match.
    pub why: String,
}

/// A rule of `source` at `span`: where it starts, and its text on one line.
pub fn rule_json(source: &Source, span: Span) -> RuleJson {
    let at = source.line_col(span.start as usize);
    RuleJson {
        file: source.name().to_string(),
        line: at.line,
        column: at.column,
        text: rule_text(source, span),
    }
}

impl ExplanationJson {
    /// The JSON of `explanation`, with rules shown from `source`.
    pub fn new(explanation: &Explanation, source: &Source) -> ExplanationJson {
        ExplanationJson {
            allowed: explanation.allowed(),
            reason: explanation.reason.clone(),
            rules: explanation
                .verdict
                .rules()
                .iter()
                .map(|&s| rule_json(source, s))
                .collect(),
            misses: explanation
                .misses
                .iter()
                .map(|m| MissJson {
                    rule: rule_json(source, m.span),
                    why: m.why.clone(),
                })
                .collect(),
            also: explanation
                .also
                .iter()
                .map(|&s| rule_json(source, s))
                .collect(),
            notes: explanation.notes.clone(),
        }
    }
}

/// `aclc test --format json`: every assertion of the policy's `tests` and `sshTests`.
#[derive(Debug, Serialize)]
pub struct TestReportJson {
    /// Whether every assertion held.
    pub passed: bool,
    /// How many assertions there are.
    pub total: usize,
    /// How many failed.
    pub failed: usize,
    /// How many passing ones carry a warning.
    pub warnings: usize,
    /// Each assertion, in policy order.
    pub results: Vec<TestResultJson>,
}

/// One assertion's outcome.
#[derive(Debug, Serialize)]
pub struct TestResultJson {
    /// `network` or `ssh`.
    pub kind: &'static str,
    /// Index in `tests` / `sshTests`.
    pub test: usize,
    /// Whether it held.
    pub passed: bool,
    /// What it is about (source, destination, login).
    pub subject: String,
    /// `allowed`, `allowed_by_check`, `denied`; absent for a malformed test.
    pub expected: Option<&'static str>,
    /// `denied`, `allowed`, `allowed_by_accept`, `allowed_by_check`; absent on error.
    pub got: Option<&'static str>,
    /// Why the assertion could not be evaluated.
    pub error: Option<String>,
    /// The rules that allow the traffic or login.
    pub allowed_by: Vec<PlaceJson>,
    /// The line a person reads.
    pub message: String,
    /// Why a passing assertion proves less than it seems; absent when nothing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The policy's name.
    pub file: String,
    /// Line of the assertion.
    pub line: usize,
    /// Column of the assertion.
    pub column: usize,
}

/// A place in the policy.
#[derive(Debug, Serialize)]
pub struct PlaceJson {
    /// The policy's name.
    pub file: String,
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

fn place(source: &Source, span: Span) -> PlaceJson {
    let at = source.line_col(span.start as usize);
    PlaceJson {
        file: source.name().to_string(),
        line: at.line,
        column: at.column,
    }
}

impl TestReportJson {
    /// The JSON of `report`, located in `source`.
    pub fn new(report: &TestReport, source: &Source) -> TestReportJson {
        let results = report
            .results
            .iter()
            .map(|r| {
                let at = place(source, r.span);
                TestResultJson {
                    kind: match r.kind {
                        TestKind::Network => "network",
                        TestKind::Ssh => "ssh",
                    },
                    test: r.test,
                    passed: r.passed,
                    subject: r.subject.clone(),
                    expected: r.expected.map(|e| match e {
                        Expectation::Allowed => "allowed",
                        Expectation::AllowedByCheck => "allowed_by_check",
                        Expectation::Denied => "denied",
                    }),
                    got: r.outcome.as_ref().ok().map(|v| match v {
                        Verdict::Denied => "denied",
                        Verdict::Allowed { .. } => "allowed",
                        Verdict::AllowedByAccept { .. } => "allowed_by_accept",
                        Verdict::AllowedByCheck { .. } => "allowed_by_check",
                    }),
                    error: r.outcome.as_ref().err().map(ToString::to_string),
                    allowed_by: r
                        .outcome
                        .as_ref()
                        .map(|v| v.rules().iter().map(|&s| place(source, s)).collect())
                        .unwrap_or_default(),
                    message: r.message(source),
                    warning: r.warning.clone(),
                    file: at.file,
                    line: at.line,
                    column: at.column,
                }
            })
            .collect();
        TestReportJson {
            passed: report.passed(),
            total: report.results.len(),
            failed: report.failures().count(),
            warnings: report.warnings().count(),
            results,
        }
    }
}
