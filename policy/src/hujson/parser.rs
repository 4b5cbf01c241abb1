//! Placeholder: the HuJSON parser is being written.

use super::Document;
use crate::diag::Diagnostic;
use crate::limits::Limits;
use crate::source::Source;

/// Parse a HuJSON document. Returns the document (if the syntax allowed building one) and every
/// diagnostic found (syntax errors, duplicate keys, limits).
pub fn parse(source: &Source, limits: &Limits) -> (Option<Document>, Vec<Diagnostic>) {
    let _ = (source, limits);
    (None, Vec::new())
}
