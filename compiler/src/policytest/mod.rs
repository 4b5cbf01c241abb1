//! The policy's own assertions, `tests` (network reachability) and `sshTests` (SSH logins),
//! run against a compiled tailnet with Tailscale's semantics.
//!
//! Tailscale refuses a policy whose assertions fail with a bare `test(s) failed`; this runner
//! gives the same verdict and says which assertion failed and why: the expectation, what the
//! policy actually does and, when it allows what should be denied, which rules allow it.
//! Malformed assertions (a CIDR destination, a port range, an unknown source ...) fail too,
//! as they do on Tailscale, each with its own reason.
//!
//! Semantics (`policy-semantics.md` §6, checked against every corpus case):
//! - network: the source's every address must be let through to some address of the
//!   destination on the port by a network rule (app grants do not count, a `via` grant
//!   counts as its `ip` rule whichever router carries the traffic; a rule to
//!   `autogroup:internet` covers public addresses, the traffic exit nodes carry, except
//!   those inside subnet routes, which their routers carry);
//!   a source with no devices passes its `deny` assertions with a warning and fails its
//!   `accept` ones; a `deny` to a destination whose devices disagree (some reached, some
//!   not) passes with a warning (Tailscale may require every device to be reached);
//! - SSH: each destination device's SSH rules are evaluated as the device does (first rule
//!   whose principals and user map admit the login wins); ACLs do not count.

mod endpoint;
mod explain;
mod network;
mod ssh;

use aclc_policy::model::Policy;
use aclc_policy::{Source, Span};
use serde::{Serialize, Serializer};

use crate::compiled::Compiled;

pub use explain::{explain, explain_ssh, Explanation, Miss, NetworkQuery};
pub(crate) use network::{explain_with, NetRules, RECORDER_ACCESS};

/// The union of two ascending lists, ascending, an item in both given once: the candidate
/// rules of an index (those listed under a key, and those that hold for every key), in rule
/// order.
fn in_order<'a, T: Copy + Ord>(a: &'a [T], b: &'a [T]) -> impl Iterator<Item = T> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some(&&x), Some(&&y)) if x == y => {
                a.next();
                b.next()
            }
            (Some(&&x), Some(&&y)) if x < y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => None,
        };
        next.copied()
    })
}
#[cfg(test)]
pub(crate) use ssh::judge_wire;
pub(crate) use ssh::{local_user, maps_login, ssh_user};

/// Run every `tests` and `sshTests` assertion of `policy` against `compiled` (which must have
/// been compiled from the same policy).
pub fn run_tests(policy: &Policy, compiled: &Compiled) -> TestReport {
    let mut results = network::run(policy, compiled, false);
    results.extend(ssh::run(policy, compiled, false));
    TestReport { results }
}

/// The failures of `tests` and `sshTests` that no inventory can change, found without one:
/// malformed tests (no `src`, nothing asserted, an empty SSH user), endpoints that are not
/// something a test can name (a prefix, `*`, `autogroup:internet`, an invalid selector or
/// port, a bad `proto`), endpoints naming a group, tag or host the policy does not define,
/// and network `deny` assertions the rules break on a tailnet of no nodes (a test between
/// addresses the policy writes: every rule grants, and a tailnet's nodes only add to what
/// the rules match, so traffic allowed with no node is allowed on every tailnet). Tailscale
/// refuses such a policy (`test(s) failed`) whatever the tailnet holds. Users and services,
/// which only an inventory defines, and the other verdicts (an `accept` may hold once nodes
/// exist) are not judged. Only the failing assertions are returned.
pub fn check_test_shapes(policy: &Policy) -> TestReport {
    if policy.tests.is_empty() && policy.ssh_tests.is_empty() {
        return TestReport::default();
    }
    let Ok(empty) = crate::inventory::Inventory::from_json(r#"{"users": [], "nodes": []}"#) else {
        return TestReport::default();
    };
    let compiled = crate::compiled::compile(policy, &empty);
    let mut results = network::run(policy, &compiled, true);
    results.extend(ssh::run(policy, &compiled, true));
    // What fails for a reason in the policy text (a test passing with a warning, one
    // without `dst`, is not a failure).
    results.retain(|r| {
        let denied_yet_allowed = r.kind == TestKind::Network
            && r.expected == Some(Expectation::Denied)
            && matches!(&r.outcome, Ok(verdict) if verdict.is_allowed());
        !r.passed && (denied_yet_allowed || matches!(&r.outcome, Err(e) if e.is_in_the_policy()))
    });
    TestReport { results }
}

/// The outcome of every assertion, in policy order (`tests` first, then `sshTests`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestReport {
    /// One entry per assertion (or per malformed test).
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// True when every assertion held (also when there are none).
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// True when the policy has no assertions.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The assertions that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> + '_ {
        self.results.iter().filter(|r| !r.passed)
    }

    /// The assertions that carry a warning (they passed, but say less than they seem to).
    pub fn warnings(&self) -> impl Iterator<Item = &TestResult> + '_ {
        self.results.iter().filter(|r| r.warning.is_some())
    }

    /// What a refusal says: `test(s) failed` (Tailscale's text), then one line per failed
    /// assertion.
    pub fn refusal_message(&self, source: &Source) -> String {
        let mut out = String::from(TESTS_FAILED);
        for failure in self.failures() {
            out.push('\n');
            out.push_str(&failure.message(source));
        }
        out
    }
}

// Reports are handed between threads like the compiled policy they come from.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TestReport>();
};

/// Tailscale's message for a policy whose tests fail.
pub const TESTS_FAILED: &str = "test(s) failed";

/// Which block an assertion is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// `tests`.
    Network,
    /// `sshTests`.
    Ssh,
}

/// What an assertion expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// `accept`: the traffic or login is allowed (for SSH, by an accept or a check rule).
    Allowed,
    /// `check` (SSH): the login is allowed by a check rule.
    AllowedByCheck,
    /// `deny`: the traffic or login is not allowed.
    Denied,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expectation::Allowed => "allowed",
            Expectation::AllowedByCheck => "allowed by a check rule",
            Expectation::Denied => "denied",
        })
    }
}

/// What the policy does with the tested traffic or login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Not allowed.
    Denied,
    /// Allowed (network) by these rules; no rules means the default policy (no `acls` or
    /// `grants`), which allows everything.
    Allowed {
        /// The rules (whole `acls` / `grants` entries), in policy order.
        #[serde(serialize_with = "serialize_spans")]
        by: Vec<Span>,
    },
    /// Allowed (SSH) by an accept rule.
    AllowedByAccept {
        /// The `ssh` rules that admit it, in policy order.
        #[serde(serialize_with = "serialize_spans")]
        by: Vec<Span>,
    },
    /// Allowed (SSH) by a check rule.
    AllowedByCheck {
        /// The `ssh` rules that admit it, in policy order.
        #[serde(serialize_with = "serialize_spans")]
        by: Vec<Span>,
    },
}

impl Verdict {
    /// True unless denied.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Denied)
    }

    /// The rules that allow it.
    pub fn rules(&self) -> &[Span] {
        match self {
            Verdict::Denied => &[],
            Verdict::Allowed { by }
            | Verdict::AllowedByAccept { by }
            | Verdict::AllowedByCheck { by } => by,
        }
    }

    /// True when the verdict meets the expectation.
    pub fn meets(&self, expected: Expectation) -> bool {
        match expected {
            Expectation::Allowed => self.is_allowed(),
            Expectation::AllowedByCheck => matches!(self, Verdict::AllowedByCheck { .. }),
            Expectation::Denied => !self.is_allowed(),
        }
    }

    /// `denied`, `allowed (allowed by policy.hujson:14)`, `allowed by a check rule
    /// (policy.hujson:9)`.
    pub fn describe(&self, source: &Source) -> String {
        let at = |by: &[Span]| {
            by.iter()
                .map(|s| location(source, *s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Verdict::Denied => "denied".to_string(),
            Verdict::Allowed { by } if by.is_empty() => {
                "allowed (allowed by the default policy: no acls or grants)".to_string()
            }
            Verdict::Allowed { by } => format!("allowed (allowed by {})", at(by)),
            Verdict::AllowedByAccept { by } => format!("allowed by an accept rule ({})", at(by)),
            Verdict::AllowedByCheck { by } => format!("allowed by a check rule ({})", at(by)),
        }
    }
}

/// Why an assertion could not be evaluated (Tailscale fails such an assertion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "error", content = "detail")]
pub enum TestError {
    /// The test has no `src`.
    NoSource,
    /// The test has neither `accept` nor `deny` (nor, for SSH, `check`) entries.
    NoAssertions,
    /// An SSH test has no `dst`.
    NoDestinations,
    /// `src` names something that does not exist (a user, group, tag or host).
    UnknownSource(String),
    /// `src` is not something a test can start from (the reason).
    InvalidSource(String),
    /// `src` stands for no device.
    NoSourceDevices(String),
    /// `proto` is not a protocol (the reason).
    InvalidProtocol(String),
    /// The destination names something that does not exist.
    UnknownDestination(String),
    /// The destination is not something a test can aim at (the reason).
    InvalidDestination(String),
    /// The destination stands for no device.
    NoDestinationDevices(String),
    /// An SSH test user is the empty string.
    EmptyUser,
    /// `aclc explain --ssh` was asked about a local user that is a key of the rules' user
    /// maps (`*`, `=`), not an account a login can ask for.
    PatternUser(String),
}

impl TestError {
    /// True when the error is in the policy text itself, so no inventory can change it (with
    /// users and services resolving to no device: [`check_test_shapes`]); false for an
    /// endpoint that only stands for no device.
    fn is_in_the_policy(&self) -> bool {
        !matches!(
            self,
            TestError::NoSourceDevices(_) | TestError::NoDestinationDevices(_)
        )
    }
}

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestError::NoSource => f.write_str("the test has no src"),
            TestError::NoAssertions => f.write_str("the test asserts nothing"),
            TestError::NoDestinations => f.write_str("the test has no dst"),
            TestError::UnknownSource(why)
            | TestError::InvalidSource(why)
            | TestError::NoSourceDevices(why)
            | TestError::InvalidProtocol(why)
            | TestError::UnknownDestination(why)
            | TestError::InvalidDestination(why)
            | TestError::NoDestinationDevices(why) => f.write_str(why),
            TestError::EmptyUser => f.write_str("user \"\" is not valid"),
            TestError::PatternUser(user) => write!(
                f,
                "local user {} is a pattern of the SSH rules' user maps, not an account: name \
                 one local account (such as \"root\" or \"alice\")",
                endpoint::quote(user)
            ),
        }
    }
}

/// The outcome of one assertion.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// `tests` or `sshTests`.
    pub kind: TestKind,
    /// Index of the test in its block.
    pub test: usize,
    /// The assertion as written (the `accept` / `deny` entry, the SSH user), or the whole test
    /// entry when the test itself is malformed.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
    /// What is tested: `group:eng -> tag:prod:22 (tcp)`, `alice@example.com -> tag:server as
    /// root`, or `tests[2]` for a malformed test.
    pub subject: String,
    /// The expectation (`None` for a malformed test).
    pub expected: Option<Expectation>,
    /// What the policy does, or why the assertion could not be evaluated.
    pub outcome: Result<Verdict, TestError>,
    /// True when the assertion held.
    pub passed: bool,
    /// Why a passing assertion proves less than it seems: a `deny` from a source with no
    /// devices in the inventory holds vacuously.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl TestResult {
    fn evaluated(
        kind: TestKind,
        test: usize,
        span: Span,
        subject: String,
        expected: Expectation,
        outcome: Result<Verdict, TestError>,
    ) -> TestResult {
        let passed = outcome.as_ref().is_ok_and(|v| v.meets(expected));
        TestResult {
            kind,
            test,
            span,
            subject,
            expected: Some(expected),
            outcome,
            passed,
            warning: None,
        }
    }

    fn malformed(kind: TestKind, test: usize, span: Span, error: TestError) -> TestResult {
        let block = match kind {
            TestKind::Network => "tests",
            TestKind::Ssh => "sshTests",
        };
        TestResult {
            kind,
            test,
            span,
            subject: format!("{block}[{test}]"),
            expected: None,
            outcome: Err(error),
            passed: false,
            warning: None,
        }
    }

    /// One line: `group:eng -> tag:prod:22 (tcp): expected allowed, got denied`; for a pass,
    /// `...: allowed (allowed by policy.hujson:14)`.
    pub fn message(&self, source: &Source) -> String {
        match (&self.outcome, self.expected) {
            (Err(error), _) => format!("{}: {error}", self.subject),
            (Ok(verdict), Some(expected)) if !self.passed => format!(
                "{}: expected {expected}, got {}",
                self.subject,
                verdict.describe(source)
            ),
            (Ok(verdict), _) => format!("{}: {}", self.subject, verdict.describe(source)),
        }
    }
}

/// A test's `src`, trimmed; a missing or empty `src` is the test's error.
fn source_text(src: Option<&aclc_policy::model::Spanned<String>>) -> Result<&str, TestError> {
    let src = src.ok_or(TestError::NoSource)?;
    let text = src.value.trim();
    if text.is_empty() {
        return Err(TestError::InvalidSource("src is empty".to_string()));
    }
    Ok(text)
}

/// `policy.hujson:14`: where a span starts.
pub fn location(source: &Source, span: Span) -> String {
    format!(
        "{}:{}",
        source.name(),
        source.line_col(span.start as usize).line
    )
}

fn serialize_span<S: Serializer>(span: &Span, s: S) -> Result<S::Ok, S::Error> {
    [span.start, span.end].serialize(s)
}

fn serialize_spans<S: Serializer>(spans: &[Span], s: S) -> Result<S::Ok, S::Error> {
    let pairs: Vec<[u32; 2]> = spans.iter().map(|sp| [sp.start, sp.end]).collect();
    pairs.serialize(s)
}

#[cfg(test)]
mod tests;
