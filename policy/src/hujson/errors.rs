//! Syntax error messages of the HuJSON parser: what was found, what was wanted, and how to fix
//! it, kept apart from the parser so its hot paths stay readable.

use super::parser::{is_number_char, is_word_start, word_end, Parser, Stop, DUPLICATE_KEY, SYNTAX};
use super::Key;
use crate::diag::Diagnostic;
use crate::source::Span;

/// What the parser wanted where it found something else; chooses the message and help.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expected {
    /// A value (top level, array element, or after `:`).
    Value,
    /// A key or the end of the object opened at `open`.
    Key { open: usize },
    /// The `:` after a key.
    Colon,
    /// `,` or `]` after an element of the array opened at `open`.
    ArrayComma { open: usize },
    /// `,` or `}` after a member of the object opened at `open`.
    ObjectComma { open: usize },
    /// Nothing: the top-level value is complete.
    End,
}

impl Expected {
    /// What to write under whatever was found.
    fn label(self) -> &'static str {
        match self {
            Expected::Value => "expected a value",
            Expected::Key { .. } => "expected a double-quoted key or `}`",
            Expected::Colon => "expected `:`",
            Expected::ArrayComma { .. } => "expected `,` or `]`",
            Expected::ObjectComma { .. } => "expected `,` or `}`",
            Expected::End => "expected the end of the input",
        }
    }
}

/// What is at the parser's position, for error messages.
enum Found {
    /// The end of the input.
    End,
    /// A token, or something that looks like one.
    Token { span: Span, kind: TokenKind },
    /// A character that starts no JSON token.
    Char { span: Span, ch: char },
}

/// The kinds of token [`Found`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// One of `{ } [ ] , :`.
    Punct(u8),
    /// A double-quoted string (up to its closing quote or the end of the line).
    String,
    /// A run of letters, digits, `_` and `$` starting with a letter, `_` or `$`.
    Word,
    /// A run of characters a number could be made of.
    Number,
}

impl TokenKind {
    /// True if a value can start with this token (so a comma is what is missing before it).
    fn starts_value(self) -> bool {
        match self {
            TokenKind::Punct(b) => b == b'{' || b == b'[',
            TokenKind::String | TokenKind::Word | TokenKind::Number => true,
        }
    }
}

impl Parser<'_> {
    pub(super) fn invalid_number(&mut self, start: usize) -> Stop {
        let end = number_token_end(self.bytes, start);
        let span = Span::new(start, end);
        let token = self.text.get(start..end).unwrap_or_default();
        let mut diagnostic = Diagnostic::error(
            SYNTAX,
            span,
            super::tailscale::invalid_number(self.bytes, start),
        )
        .with_label(format!("not a JSON number: {}", show_token(token)));
        if let Some(help) = number_help(token) {
            diagnostic = diagnostic.with_help(help);
        }
        self.diagnostics.push(diagnostic);
        Stop
    }

    /// Reports whatever is at the parser's position, which is not what `expected` wanted.
    pub(super) fn unexpected(&mut self, expected: Expected) -> Stop {
        let diagnostic = match self.found() {
            Found::Char { span, ch } => {
                let mut diagnostic = Diagnostic::error(
                    SYNTAX,
                    span,
                    format!("unexpected character {}", show_char(ch)),
                )
                .with_label(expected.label());
                if let Some(help) = char_help(ch, expected) {
                    diagnostic = diagnostic.with_help(help);
                }
                if ch == '\'' {
                    // Underline the whole single-quoted string when it ends on this line.
                    let start = span.start as usize;
                    if let Some(n) = self.line_rest(start + 1).find('\'') {
                        diagnostic.span = Span::new(start, start + 1 + n + 1);
                    }
                }
                diagnostic
            }
            Found::End => {
                let span = Span::new(self.bytes.len(), self.bytes.len());
                self.expected_error(expected, span, None)
            }
            Found::Token { span, kind } => self.expected_error(expected, span, Some(kind)),
        };
        // Tailscale's words for it; aclc's account stays in the label and help.
        let mut diagnostic = Diagnostic {
            message: super::tailscale::unexpected(self.bytes, self.pos, expected),
            ..diagnostic
        };
        // `1_000`: the number ended at the `_`.
        let after_digit =
            self.pos > 0 && self.bytes.get(self.pos - 1).is_some_and(u8::is_ascii_digit);
        if after_digit && self.bytes.get(self.pos) == Some(&b'_') {
            diagnostic.help = Some("JSON numbers cannot contain `_`".to_owned());
        }
        self.diagnostics.push(diagnostic);
        Stop
    }

    /// The error for a token (`kind`), or the end of the input (`None`), where `expected`
    /// wanted something else.
    fn expected_error(
        &self,
        expected: Expected,
        span: Span,
        kind: Option<TokenKind>,
    ) -> Diagnostic {
        let text = self
            .text
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default();
        let found = match kind {
            None => "the end of the input".to_owned(),
            Some(_) => show_token(text),
        };
        let value_next = kind.is_some_and(TokenKind::starts_value);
        match expected {
            Expected::Value => {
                let help = match kind {
                    None if self.only_trivia_before(span.start as usize) => {
                        Some("a document holds exactly one JSON value".to_owned())
                    }
                    Some(TokenKind::Word) => Some(word_help(text)),
                    _ => None,
                };
                let diagnostic =
                    Diagnostic::error(SYNTAX, span, format!("expected a value, found {found}"))
                        .with_label(expected.label());
                match help {
                    Some(help) => diagnostic.with_help(help),
                    None => diagnostic,
                }
            }
            Expected::Key { open } => {
                let diagnostic = Diagnostic::error(
                    SYNTAX,
                    span,
                    format!("expected a double-quoted key or `}}`, found {found}"),
                )
                .with_label(expected.label());
                match kind {
                    Some(TokenKind::Word | TokenKind::Number) => diagnostic.with_help(format!(
                        "object keys are double-quoted strings: `\"{text}\"`"
                    )),
                    None => unclosed(diagnostic, open, "object"),
                    _ => diagnostic,
                }
            }
            Expected::Colon => {
                let diagnostic = Diagnostic::error(
                    SYNTAX,
                    span,
                    format!("expected `:` after the object key, found {found}"),
                )
                .with_label(expected.label());
                if value_next {
                    diagnostic.with_help("add `:` between the key and its value")
                } else {
                    diagnostic
                }
            }
            Expected::ArrayComma { open } => {
                let diagnostic =
                    Diagnostic::error(SYNTAX, span, "expected `,` or `]` after an array element");
                match kind {
                    _ if value_next => diagnostic
                        .with_label("expected `,` before this")
                        .with_help("add a comma between the two elements"),
                    None => unclosed(diagnostic, open, "array"),
                    Some(TokenKind::Punct(b'}')) => diagnostic
                        .with_label(format!("found {found}"))
                        .with_related(Span::new(open, open + 1), "the array starts here")
                        .with_help("an array is closed with `]`"),
                    _ => diagnostic.with_label(format!("found {found}")),
                }
            }
            Expected::ObjectComma { open } => {
                let diagnostic =
                    Diagnostic::error(SYNTAX, span, "expected `,` or `}` after an object member");
                match kind {
                    _ if value_next => diagnostic
                        .with_label("expected `,` before this")
                        .with_help("add a comma between the two members"),
                    None => unclosed(diagnostic, open, "object"),
                    Some(TokenKind::Punct(b']')) => diagnostic
                        .with_label(format!("found {found}"))
                        .with_related(Span::new(open, open + 1), "the object starts here")
                        .with_help("an object is closed with `}`"),
                    _ => diagnostic.with_label(format!("found {found}")),
                }
            }
            Expected::End => Diagnostic::error(
                SYNTAX,
                span,
                format!("unexpected {found} after the top-level value"),
            )
            .with_label(expected.label())
            .with_help("a document holds exactly one value; remove what follows it"),
        }
    }

    /// True if only whitespace and comments come before `offset` (so the document is empty).
    fn only_trivia_before(&self, offset: usize) -> bool {
        let mut covered = 0;
        for comment in &self.comments {
            let start = comment.span.start as usize;
            let gap = self.bytes.get(covered..start).unwrap_or_default();
            if !gap
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                return false;
            }
            covered = comment.span.end as usize;
        }
        let gap = self
            .bytes
            .get(covered.min(offset)..offset)
            .unwrap_or_default();
        gap.iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    }

    /// The text from `offset` to the end of its line.
    fn line_rest(&self, offset: usize) -> &str {
        let rest = self.text.get(offset..).unwrap_or_default();
        rest.split(['\n', '\r']).next().unwrap_or_default()
    }

    /// Classifies what is at the parser's position.
    fn found(&self) -> Found {
        let start = self.pos;
        let Some(&b) = self.bytes.get(start) else {
            return Found::End;
        };
        let (end, kind) = match b {
            b'{' | b'}' | b'[' | b']' | b',' | b':' => (start + 1, TokenKind::Punct(b)),
            b'"' => {
                let end = string_token_end(self.bytes, start);
                (end, TokenKind::String)
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => {
                (number_token_end(self.bytes, start), TokenKind::Number)
            }
            _ if is_word_start(b) => (word_end(self.bytes, start), TokenKind::Word),
            _ => {
                let ch = self
                    .text
                    .get(start..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Found::Char {
                    span: Span::new(start, start + ch.len_utf8()),
                    ch,
                };
            }
        };
        Found::Token {
            span: Span::new(start, end),
            kind,
        }
    }

    pub(super) fn unterminated_string(&mut self, open: usize) -> Stop {
        let end = open + 1 + self.line_rest(open + 1).len();
        let message = super::tailscale::invalid_string(self.bytes, open);
        let diagnostic = Diagnostic::error(SYNTAX, Span::new(open, end), message)
            .with_label("this string is not closed on its line")
            .with_help("add the closing `\"`; to put a line break inside a string, write `\\n`");
        self.diagnostics.push(diagnostic);
        Stop
    }

    pub(super) fn control_character(&mut self, open: usize, at: usize, byte: u8) -> Stop {
        let escape = match byte {
            b'\t' => "\\t".to_owned(),
            0x08 => "\\b".to_owned(),
            0x0c => "\\f".to_owned(),
            _ => format!("\\u{byte:04x}"),
        };
        let diagnostic = Diagnostic::error(
            SYNTAX,
            Span::new(at, at + 1),
            super::tailscale::invalid_string(self.bytes, open),
        )
        .with_label(format!(
            "control character U+{byte:04X}: control characters must be escaped"
        ))
        .with_help(format!("write it as `{escape}`"));
        self.diagnostics.push(diagnostic);
        Stop
    }

    pub(super) fn invalid_escape(&mut self, open: usize, at: usize) -> Stop {
        let ch = self
            .text
            .get(at + 1..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        let span = Span::new(at, at + 1 + ch.len_utf8());
        let label = if ch.is_control() {
            format!("unknown escape: `\\` followed by {}", show_char(ch))
        } else {
            format!("unknown escape `\\{ch}`")
        };
        let help = match ch {
            '\'' => "a single quote needs no escape in JSON: write `'`".to_owned(),
            'x' => "JSON has no `\\x` escapes; write `\\u00XX` instead".to_owned(),
            _ => concat!(
                "the escapes are `\\\"`, `\\\\`, `\\/`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t` ",
                "and `\\uXXXX`"
            )
            .to_owned(),
        };
        let message = super::tailscale::invalid_string(self.bytes, open);
        let diagnostic = Diagnostic::error(SYNTAX, span, message)
            .with_label(label)
            .with_help(help);
        self.diagnostics.push(diagnostic);
        Stop
    }

    /// `\u` at `at` is not followed by four hex digits.
    pub(super) fn invalid_unicode_escape(&mut self, open: usize, at: usize) -> Stop {
        let digits = self
            .bytes
            .get(at + 2..)
            .unwrap_or_default()
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let mut end = at + 2 + digits;
        // Underline the first wrong character too, unless it ends the string or the line.
        if let Some(ch) = self.text.get(end..).and_then(|rest| rest.chars().next()) {
            if ch != '"' && ch != '\\' && !ch.is_control() {
                end += ch.len_utf8();
            }
        }
        let span = Span::new(at, end);
        let shown = self.text.get(at..end).unwrap_or_default();
        let message = super::tailscale::invalid_string(self.bytes, open);
        let diagnostic = Diagnostic::error(SYNTAX, span, message)
            .with_label(format!(
                "invalid unicode escape `{shown}`: expected four hexadecimal digits"
            ))
            .with_help("`\\u` is followed by exactly four hexadecimal digits, as in `\\u00e9`");
        self.diagnostics.push(diagnostic);
        Stop
    }

    /// An internal invariant was broken.
    pub(super) fn bug(&mut self, what: &str) -> Stop {
        let diagnostic = Diagnostic::error(
            SYNTAX,
            Span::new(self.pos, self.pos),
            format!("internal error in the HuJSON parser ({what}); this is a bug"),
        );
        self.diagnostics.push(diagnostic);
        Stop
    }
}

/// The error for `key` repeating the key at `first`.
pub(super) fn duplicate_key(key: &Key, first: Span) -> Diagnostic {
    let quoted = serde_json::to_string(&key.name).unwrap_or_else(|_| format!("{:?}", key.name));
    Diagnostic::error(DUPLICATE_KEY, key.span, format!("duplicate key {quoted}"))
        .with_label("defined again here")
        .with_related(first, "first defined here")
        .with_help("remove one of the two members, or merge them")
}

/// Points an error at the end of the input back at the container that was never closed.
fn unclosed(diagnostic: Diagnostic, open: usize, what: &str) -> Diagnostic {
    diagnostic
        .with_label("the input ends here")
        .with_related(Span::new(open, open + 1), format!("the {what} starts here"))
        .with_help(format!("the {what} is never closed"))
}

fn number_token_end(bytes: &[u8], start: usize) -> usize {
    let len = bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| is_number_char(b))
        .count();
    start + len.max(1)
}

/// End of the string token at `start` (its closing quote, or the end of its line).
fn string_token_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return i + 1,
            b'\\' if bytes.get(i + 1).is_some_and(|&n| n != b'\n' && n != b'\r') => i += 2,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    i.min(bytes.len())
}

/// A token in backticks, shortened if long.
fn show_token(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        format!("`{text}`")
    } else {
        let head: String = text.chars().take(MAX - 3).collect();
        format!("`{head}...`")
    }
}

/// A character as a message shows it: in backticks, or as `U+XXXX` when it is invisible.
fn show_char(ch: char) -> String {
    let invisible = ch.is_control()
        || ch.is_whitespace()
        || matches!(ch, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}');
    if invisible {
        format!("U+{:04X}", u32::from(ch))
    } else if ch == '`' {
        "`` ` ``".to_owned()
    } else {
        format!("`{ch}`")
    }
}

fn char_help(ch: char, expected: Expected) -> Option<&'static str> {
    Some(match ch {
        '\'' => "JSON strings use double quotes",
        '#' => "JSON has no `#` comments; use `//` or `/* */`",
        '/' => "comments start with `//` or `/*`",
        '=' if matches!(expected, Expected::Colon) => "use `:` between a key and its value",
        ';' if matches!(
            expected,
            Expected::ArrayComma { .. } | Expected::ObjectComma { .. }
        ) =>
        {
            "use `,` to separate elements and members"
        }
        '\u{FEFF}' => "remove the byte-order mark (U+FEFF)",
        _ if ch.is_whitespace() => "only spaces, tabs and line breaks may separate tokens",
        _ => return None,
    })
}

/// Help for a bare word where a value was expected.
fn word_help(word: &str) -> String {
    match word {
        "True" | "TRUE" => "JSON literals are lowercase: `true`".to_owned(),
        "False" | "FALSE" => "JSON literals are lowercase: `false`".to_owned(),
        "Null" | "NULL" | "None" | "nil" | "undefined" => {
            "JSON writes no value as `null`".to_owned()
        }
        "NaN" | "Infinity" | "inf" => {
            "JSON has no NaN or Infinity; use a string or `null`".to_owned()
        }
        _ => format!("strings are double-quoted: `\"{word}\"`"),
    }
}

/// Help for a malformed number, by what is wrong with it.
fn number_help(token: &str) -> Option<&'static str> {
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    let lower = unsigned.to_ascii_lowercase();
    let mut chars = unsigned.chars();
    let first = chars.next();
    let second = chars.next();
    Some(if token.starts_with('+') {
        "JSON numbers cannot start with `+`; remove it"
    } else if matches!(lower.as_str(), "nan" | "infinity" | "inf") {
        "JSON has no NaN or Infinity; use a string or `null`"
    } else if lower.starts_with("0x") {
        "JSON has no hexadecimal numbers; write the number in decimal"
    } else if first == Some('.') {
        "JSON numbers need a digit before the decimal point, as in `0.5`"
    } else if first == Some('0') && second.is_some_and(|c| c.is_ascii_digit()) {
        "JSON numbers cannot have leading zeros"
    } else if !first.is_some_and(|c| c.is_ascii_digit()) {
        "a `-` must be followed by a digit"
    } else if unsigned.ends_with('.') || lower.contains(".e") {
        "a decimal point must be followed by a digit, as in `5.0`"
    } else if lower.ends_with(['e', '+', '-']) {
        "an exponent needs digits, as in `1e5`"
    } else if unsigned.contains('_') {
        "JSON numbers cannot contain `_`"
    } else {
        return None;
    })
}
