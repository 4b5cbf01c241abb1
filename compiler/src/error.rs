//! Why a compile refused a policy, and the budget that bounds the work one policy may cause.
//!
//! The compiler fails closed: what it cannot compute exactly (an IP set that includes itself,
//! an entry whose addresses are unknown) or may not compute within the budget is an error
//! with the policy location that caused it, never an empty or default result.

use aclc_policy::{Code, Diagnostic, Span};

/// Why [`crate::try_compile`] refused a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What kind of problem.
    pub kind: CompileErrorKind,
    /// One line, lowercase start, no final period.
    pub message: String,
    /// Where in the policy text (`None` when no single place is to blame).
    pub span: Option<Span>,
    /// A further sentence for people.
    pub help: Option<String>,
}

/// The kinds of [`CompileError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompileErrorKind {
    /// An IP set includes itself, directly or through other sets.
    RecursiveIpSet,
    /// An IP set entry whose addresses cannot be known: an undefined IP set, host or group,
    /// or something that is not addresses (`*`, `autogroup:self`, `autogroup:danger-all`).
    UnresolvedIpSetEntry,
    /// The policy needs more work than [`CompileLimits`] allows.
    BudgetExceeded,
}

impl CompileErrorKind {
    /// The stable code of the kind, as diagnostics carry it.
    pub fn code(self) -> Code {
        match self {
            CompileErrorKind::RecursiveIpSet => Code::RecursiveIpset,
            CompileErrorKind::UnresolvedIpSetEntry => Code::UnresolvedIpsetEntry,
            CompileErrorKind::BudgetExceeded => Code::CompileBudgetExceeded,
        }
    }
}

impl CompileError {
    pub(crate) fn new(
        kind: CompileErrorKind,
        span: Option<Span>,
        message: impl Into<String>,
    ) -> CompileError {
        CompileError {
            kind,
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> CompileError {
        self.help = Some(help.into());
        self
    }

    /// The error as a policy diagnostic (at the start of the file when it has no span).
    pub fn to_diagnostic(&self) -> Diagnostic {
        let diagnostic = Diagnostic::error(
            self.kind.code(),
            self.span.unwrap_or_default(),
            self.message.clone(),
        );
        match &self.help {
            Some(help) => diagnostic.with_help(help.clone()),
            None => diagnostic,
        }
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

/// Caps on the work one policy may cause, so that a hostile policy cannot pin a server. The
/// defaults are far above what real tailnets need: the `large` benchmark workload (100,000
/// nodes, 10,000 rules) uses about 3.2e7 rule entries (1.5% of the cap) and no IP set ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompileLimits {
    /// Address ranges that resolving the policy's IP sets may read and produce, counted over
    /// every set (each entry's ranges, each result's ranges). Default: 2^24.
    pub max_address_ranges: u64,
    /// Rule entries lowering may emit: for each rule item, the nodes it may reach (every node
    /// for `*`, every untagged node for `autogroup:self`) plus its new `SrcIPs` strings.
    /// Default: 2^31.
    pub max_rule_entries: u64,
    /// Rule items lowering may make: one per destination and `ip` entry of a grant (a grant
    /// of 2,000 destinations and 2,000 `ip` entries makes 4 million), per destination of an
    /// ACL. Each holds about 200 bytes, whatever it reaches. Default: 2^20 (`large` makes
    /// 14,000; a 16 MiB policy of one-destination ACLs about 300,000).
    pub max_rule_items: u64,
    /// `DstPorts` entries one node's packet filter may hold (each destination address of a
    /// rule with each port range): a node's filter is assembled whole, so past this one
    /// node's map would not fit in memory. Counted per item as its most addresses on one
    /// node times its port ranges, summed over the items; only when that sum goes over is
    /// each node's filter counted exactly, and the policy refused if one is. Default: 2^22
    /// (about 130 MB of entries in memory).
    pub max_node_filter_entries: u64,
}

impl Default for CompileLimits {
    fn default() -> CompileLimits {
        CompileLimits {
            max_address_ranges: 1 << 24,
            max_rule_entries: 1 << 31,
            max_rule_items: 1 << 20,
            max_node_filter_entries: 1 << 22,
        }
    }
}

/// A running count against one limit.
#[derive(Debug)]
pub(crate) struct Budget {
    used: u64,
    limit: u64,
    what: &'static str,
}

impl Budget {
    pub(crate) fn new(limit: u64, what: &'static str) -> Budget {
        Budget {
            used: 0,
            limit,
            what,
        }
    }

    /// Refuse, as [`Budget::spend`] would, when `amount` more would go over, without
    /// spending it: asked before work whose size is known in advance.
    pub(crate) fn ensure(&self, amount: usize, span: Span) -> Result<(), CompileError> {
        let mut probe = Budget { ..*self };
        probe.spend(amount, span)
    }

    /// Spend `amount`; the error names `span` (the definition or rule that went over).
    pub(crate) fn spend(&mut self, amount: usize, span: Span) -> Result<(), CompileError> {
        let amount = u64::try_from(amount).unwrap_or(u64::MAX);
        self.used = self.used.saturating_add(amount);
        if self.used <= self.limit {
            return Ok(());
        }
        Err(CompileError::new(
            CompileErrorKind::BudgetExceeded,
            Some(span),
            format!(
                "the policy needs more than {} {} to compile",
                self.limit, self.what
            ),
        )
        .with_help("the compile budget (`CompileLimits`) bounds the work one policy may cause; this rule or definition went over it"))
    }
}
