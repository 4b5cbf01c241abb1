#![doc = include_str!("../README.md")]

mod bidi;
pub mod code;
pub mod diag;
pub mod diff;
pub mod hujson;
mod invisible;
pub mod limits;
mod lower;
pub mod model;
pub mod schema;
pub mod snippet;
pub mod source;
pub mod text;
mod validate;

pub use code::Code;
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
    /// Groups synced from the identity provider (`group:eng@example.com`) that have at least
    /// one member in the tailnet. `None`: unknown, no "synced group has no members" warnings.
    pub synced_groups: Option<Vec<String>>,
    /// How many of the tailnet's nodes have an IPv4 address. `None`: unknown, no warning that
    /// `disableIPv4` is set on a tailnet whose nodes have IPv4 addresses.
    pub ipv4_nodes: Option<usize>,
}

/// How to read and check a policy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Size and depth caps.
    pub limits: Limits,
    /// Tailnet facts to check against.
    pub context: Context,
}

/// A policy that passed validation, and the warnings found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The typed policy.
    pub policy: model::Policy,
    /// Warnings (never errors), sorted by position.
    pub warnings: Vec<Diagnostic>,
}

/// Parse and validate a policy: HuJSON syntax, shapes, values, references and placement
/// rules, collecting every problem. `Err` holds the errors and the warnings, sorted by
/// position; `Ok` holds the policy and its warnings.
pub fn parse(source: &Source, options: &Options) -> Result<Checked, Diagnostics> {
    let (document, mut diagnostics) = hujson::parse(source, &options.limits);
    if source.text().len() <= options.limits.max_bytes {
        diagnostics.extend(bidi::warnings(source));
        diagnostics.extend(invisible::warnings(source));
    }
    let policy = document.map(|document| {
        let (policy, lowering) = lower::lower(source, &document.root);
        let validation = validate::validate(&policy, &options.context, &lowering);
        diagnostics.extend(lowering);
        diagnostics.extend(validation);
        policy
    });
    let mut diagnostics = Diagnostics(diagnostics);
    diagnostics.sort();
    match policy {
        Some(policy) if !diagnostics.has_errors() => Ok(Checked {
            policy,
            warnings: diagnostics.0,
        }),
        Some(_) => Err(diagnostics),
        None => {
            if !diagnostics.has_errors() {
                // The parser returned no document without saying why; never accept that.
                diagnostics.0.push(Diagnostic::error(
                    Code::Internal,
                    Span::default(),
                    "the policy could not be read (this is a bug: no syntax error was reported)",
                ));
            }
            Err(diagnostics)
        }
    }
}

/// [`parse`] from a string: builds the [`Source`] (named `name`) and returns it with the
/// result, so diagnostics can be rendered against it.
pub fn parse_str(
    name: &str,
    text: &str,
    options: &Options,
) -> (Source, Result<Checked, Diagnostics>) {
    let source = Source::new(name, text);
    let result = parse(&source, options);
    (source, result)
}

/// Decode raw bytes into a [`Source`]: refuses files over the size limit, a byte-order mark and
/// invalid UTF-8, each with a spanned diagnostic. The returned source is always usable for
/// display (invalid bytes replaced), so the diagnostics can be rendered.
pub fn source_from_bytes(name: &str, bytes: &[u8], limits: &Limits) -> (Source, Vec<Diagnostic>) {
    if bytes.len() > limits.max_bytes {
        // Too large to even look at: the source is left empty.
        let diagnostic = hujson::too_large(bytes.len(), limits.max_bytes);
        return (Source::new(name, String::new()), vec![diagnostic]);
    }
    let mut diagnostics = Vec::new();
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        diagnostics.push(
            Diagnostic::error(
                Code::ByteOrderMark,
                Span::new(0, 3),
                // Tailscale's parser's words: the mark is a character no value starts with.
                "invalid character '\\ufeff' at start of value",
            )
            .with_label("byte-order mark")
            .with_help("save the file as UTF-8 without a byte-order mark (BOM)"),
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(error) => {
            let (text, outside) = lossy_as_go(bytes);
            diagnostics.push(if let Some(outside) = outside {
                // Refused, in Tailscale's parser's words: in a comment, or (between tokens)
                // a character no value starts with; at that byte.
                let message = if outside.in_comment {
                    "invalid UTF-8 in comment".to_owned()
                } else if outside.value_start {
                    format!("invalid character '\\x{:02x}' at start of value", outside.byte)
                } else {
                    // After a value or inside an escape, Tailscale's words depend on what
                    // holds it; aclc's own.
                    "the policy is not valid UTF-8".to_owned()
                };
                let width = char::REPLACEMENT_CHARACTER.len_utf8();
                let span = Span::new(outside.offset, outside.offset + width);
                let label = format!("invalid byte 0x{:02X}: the policy is not valid UTF-8", outside.byte);
                Diagnostic::error(Code::InvalidUtf8, span, message)
                    .with_label(label)
                    .with_help("save the file as UTF-8")
            } else {
                let at = error.valid_up_to();
                let bad_len = error
                    .error_len()
                    .unwrap_or_else(|| bytes.len().saturating_sub(at));
                let bad = bytes.get(at..at + bad_len).unwrap_or_default();
                let shown: Vec<String> = bad.iter().map(|b| format!("0x{b:02X}")).collect();
                let label = match error.error_len() {
                    Some(1) => format!("invalid byte {}", shown.join(" ")),
                    Some(_) => format!("invalid bytes {}", shown.join(" ")),
                    None => format!("incomplete character at the end: {}", shown.join(" ")),
                };
                // The lossy text replaces each bad byte with U+FFFD (3 bytes); earlier offsets
                // are unchanged, so the span covers the first replacement character.
                let span = Span::new(at, at + char::REPLACEMENT_CHARACTER.len_utf8());
                // Tailscale's parser (hujson) takes such bytes inside strings, and Go's JSON
                // decoder reads each as U+FFFD: accepted, read the same way.
                Diagnostic::warning(
                    Code::InvalidUtf8,
                    span,
                    "a string of the policy is not valid UTF-8: each bad byte is read as U+FFFD, as Tailscale reads it",
                )
                .with_label(label)
                .with_help("save the file as UTF-8")
            });
            text
        }
    };
    (Source::new(name, text), diagnostics)
}

/// `bytes` (not UTF-8) as text, each byte of a bad sequence replaced by U+FFFD (as Go's
/// decoders replace them, one byte at a time), and the first bad byte outside a string
/// literal (in a comment, an escape or between tokens, where Tailscale's parser refuses
/// it). The literals are found by a scan that knows strings, escapes and comments only:
/// O(bytes).
fn lossy_as_go(bytes: &[u8]) -> (String, Option<Outside>) {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        Code,
        Slash,
        Str,
        Escape,
        Line,
        Block,
        BlockStar,
    }
    let mut at = At::Code;
    let mut outside: Option<Outside> = None;
    // The last character outside strings and comments (`"` ends a string: a value).
    let mut significant: Option<char> = None;
    let mut text = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if at == At::Code && !matches!(c, ' ' | '\t' | '\r' | '\n' | '/' | '"') {
                significant = Some(c);
            }
            if at == At::Str && c == '"' {
                significant = Some('"');
            }
            at = match (at, c) {
                (At::Code | At::Slash, '"') => At::Str,
                (At::Code, '/') => At::Slash,
                (At::Slash, '/') => At::Line,
                (At::Slash, '*') => At::Block,
                (At::Code | At::Slash, _) => At::Code,
                (At::Str, '\\') => At::Escape,
                (At::Str, '"') => At::Code,
                (At::Str, _) | (At::Escape, _) => At::Str,
                (At::Line, '\n') => At::Code,
                (At::Line, _) => At::Line,
                (At::Block | At::BlockStar, '*') => At::BlockStar,
                (At::BlockStar, '/') => At::Code,
                (At::Block | At::BlockStar, _) => At::Block,
            };
        }
        text.push_str(chunk.valid());
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            if at != At::Str && outside.is_none() {
                outside = Some(Outside {
                    offset: text.len(),
                    byte: invalid.first().copied().unwrap_or(0),
                    in_comment: matches!(at, At::Line | At::Block | At::BlockStar),
                    value_start: at == At::Code
                        && matches!(significant, None | Some('[' | '{' | ',' | ':')),
                });
            }
            text.extend(std::iter::repeat_n(
                char::REPLACEMENT_CHARACTER,
                invalid.len(),
            ));
        }
    }
    (text, outside)
}

/// The first byte of a bad UTF-8 sequence outside the string literals ([`lossy_as_go`]):
/// where it is in the lossy text, what it is, and whether a comment holds it.
struct Outside {
    offset: usize,
    byte: u8,
    in_comment: bool,
    /// Where a value would start (after `[`, `{`, `,`, `:` or nothing).
    value_start: bool,
}
