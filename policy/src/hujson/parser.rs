//! The HuJSON parser: text to a spanned [`Document`], without recursion so that hostile nesting
//! cannot overflow the stack, and over bytes so that large policies parse at `serde_json` speed.
//!
//! The grammar is RFC 8259 plus `//` and `/* */` comments and trailing commas, nothing more.
//! Anything a person might try from JSON5 or JavaScript (single quotes, unquoted keys, hex,
//! `NaN`) is refused with a message saying what JSON wants instead.

use super::errors::{duplicate_key, Expected};
use super::{Comment, CommentKind, Document, Key, Member, Number, Value, ValueKind};
use crate::code::Code;
use crate::diag::Diagnostic;
use crate::limits::Limits;
use crate::source::{Source, Span};

/// Code of every grammar error.
pub(crate) const SYNTAX: Code = Code::Syntax;
/// Code of a key repeated in one object.
pub(crate) const DUPLICATE_KEY: Code = Code::DuplicateKey;
/// Code of nesting beyond [`Limits::max_depth`].
pub(crate) const TOO_DEEP: Code = Code::TooDeep;
/// Code of a text longer than [`Limits::max_bytes`].
pub(crate) const TOO_LARGE: Code = Code::TooLarge;

/// Objects with at most this many members are checked for duplicate keys pairwise; larger ones
/// by sorting, so a hostile object with many members costs `n log n`, not `n²`.
const PAIRWISE_DUPLICATE_CHECK: usize = 8;

/// Parse a HuJSON document. Returns the document (if the syntax allowed building one) and every
/// diagnostic found (syntax errors, duplicate keys, limits), in source order.
///
/// A syntax error stops the parse: the result is `None` with the errors found so far. Duplicate
/// keys do not: both members are kept, in order, and each repetition gets an
/// `aclc::duplicate_key` error pointing back at the first definition.
///
/// The parser never recurses, so any nesting up to [`Limits::max_depth`] is safe to parse.
/// Dropping, cloning or converting the resulting tree does recurse, once per level, which is why
/// the depth limit should stay in the hundreds.
pub fn parse(source: &Source, limits: &Limits) -> (Option<Document>, Vec<Diagnostic>) {
    let text = source.text();
    if text.len() > limits.max_bytes {
        let diagnostic = too_large(text.len(), limits.max_bytes);
        return (None, vec![diagnostic]);
    }
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        max_depth: limits.max_depth,
        comments: Vec::new(),
        diagnostics: Vec::new(),
    };
    let root = parser.document();
    let Parser {
        comments,
        mut diagnostics,
        ..
    } = parser;
    // Duplicate keys are found when their object closes, inner objects first; a stable sort puts
    // everything back in source order.
    diagnostics.sort_by_key(|d| d.span.start);
    (
        root.ok().map(|root| Document { root, comments }),
        diagnostics,
    )
}

/// The diagnostic for a text of `len` bytes over the `max` limit.
pub(crate) fn too_large(len: usize, max: usize) -> Diagnostic {
    Diagnostic::error(
        TOO_LARGE,
        Span::new(0, 0),
        format!("the policy is {len} bytes, more than the limit of {max} bytes"),
    )
    .with_help("split the policy, or raise the size limit if the file is trusted")
}

/// A syntax error has been pushed onto [`Parser::diagnostics`]; parsing ends.
pub(super) struct Stop;

pub(super) type Parsed<T> = Result<T, Stop>;

/// An array or object whose closing bracket has not been seen yet.
enum Frame {
    /// An array whose items so far are the values stack's from `start`.
    Array { open: usize, start: usize },
    /// An object whose members so far are the members stack's from `start`.
    Object {
        open: usize,
        start: usize,
        /// The key whose value is being parsed.
        key: Option<Key>,
    },
}

/// The parser's state: where it is, and what it has collected.
pub(super) struct Parser<'a> {
    pub(super) text: &'a str,
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    max_depth: usize,
    pub(super) comments: Vec<Comment>,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn document(&mut self) -> Parsed<Value> {
        let root = self.value_tree()?;
        self.skip_trivia()?;
        if self.pos < self.bytes.len() {
            return Err(self.unexpected(Expected::End));
        }
        Ok(root)
    }

    /// One value with everything nested in it, using an explicit stack of open containers.
    ///
    /// The items of every open container are on two stacks shared by all (values, members),
    /// and a container closing takes its own off the top in one allocation of the exact size:
    /// growing a vector per container left a one-item array room for four, so 126-deep
    /// nesting held 200 times the input (a 15.6 MB document took 1.5 GB to check).
    fn value_tree(&mut self) -> Parsed<Value> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut members: Vec<Member> = Vec::new();
        'value: loop {
            self.skip_trivia()?;
            let open = self.pos;
            let mut value = match self.peek() {
                Some(b'[') => {
                    self.enter(stack.len())?;
                    self.pos += 1;
                    self.skip_trivia()?;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value {
                            kind: ValueKind::Array(Vec::new()),
                            span: Span::new(open, self.pos),
                        }
                    } else {
                        stack.push(Frame::Array {
                            open,
                            start: values.len(),
                        });
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    self.enter(stack.len())?;
                    self.pos += 1;
                    self.skip_trivia()?;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value {
                            kind: ValueKind::Object(Vec::new()),
                            span: Span::new(open, self.pos),
                        }
                    } else {
                        let key = self.key(open)?;
                        stack.push(Frame::Object {
                            open,
                            start: members.len(),
                            key: Some(key),
                        });
                        continue 'value;
                    }
                }
                _ => self.scalar()?,
            };
            // Hand the finished value to its container, closing every container that ends here.
            loop {
                let Some(frame) = stack.last_mut() else {
                    return Ok(value);
                };
                let closed = match frame {
                    Frame::Array { open, start } => {
                        values.push(value);
                        self.skip_trivia()?;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_trivia()?;
                                if self.peek() != Some(b']') {
                                    continue 'value;
                                }
                                self.pos += 1;
                            }
                            Some(b']') => self.pos += 1,
                            _ => return Err(self.unexpected(Expected::ArrayComma { open: *open })),
                        }
                        Value {
                            kind: ValueKind::Array(values.drain(*start..).collect()),
                            span: Span::new(*open, self.pos),
                        }
                    }
                    Frame::Object { open, start, key } => {
                        let Some(name) = key.take() else {
                            return Err(self.bug("an object value without its key"));
                        };
                        members.push(Member { key: name, value });
                        self.skip_trivia()?;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_trivia()?;
                                if self.peek() != Some(b'}') {
                                    *key = Some(self.key(*open)?);
                                    continue 'value;
                                }
                                self.pos += 1;
                            }
                            Some(b'}') => self.pos += 1,
                            _ => return Err(self.unexpected(Expected::ObjectComma { open: *open })),
                        }
                        let own: Vec<Member> = members.drain(*start..).collect();
                        self.check_duplicates(&own);
                        Value {
                            kind: ValueKind::Object(own),
                            span: Span::new(*open, self.pos),
                        }
                    }
                };
                stack.pop();
                value = closed;
            }
        }
    }

    /// Refuses to open a container inside `depth` open ones if that passes the limit.
    fn enter(&mut self, depth: usize) -> Parsed<()> {
        if depth < self.max_depth {
            return Ok(());
        }
        let max = self.max_depth;
        let diagnostic = Diagnostic::error(
            TOO_DEEP,
            Span::new(self.pos, self.pos + 1),
            format!("arrays and objects are nested more than {max} levels deep"),
        )
        .with_label(format!("this opens level {}", depth.saturating_add(1)))
        .with_help(format!(
            "flatten the document: at most {max} levels of nesting are accepted"
        ));
        self.diagnostics.push(diagnostic);
        Err(Stop)
    }

    /// A key and the `:` after it. The parser is at the key (trivia already skipped).
    fn key(&mut self, open: usize) -> Parsed<Key> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.unexpected(Expected::Key { open }));
        }
        let name = self.string()?;
        let span = Span::new(start, self.pos);
        self.skip_trivia()?;
        if self.peek() != Some(b':') {
            return Err(self.unexpected(Expected::Colon));
        }
        self.pos += 1;
        Ok(Key { name, span })
    }

    /// A string, number or literal (trivia already skipped).
    fn scalar(&mut self) -> Parsed<Value> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'"') => ValueKind::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => ValueKind::Number(self.number()?),
            Some(b'+' | b'.') => return Err(self.invalid_number(start)),
            Some(b) if is_word_start(b) => {
                // Tailscale's parser reads a literal as letters, digits, `.`, `+` and `-`:
                // `true_` is `true`, then an `_` after the value (reported where the
                // container reads it, in its words).
                let literal = start
                    + self
                        .bytes
                        .get(start..)
                        .unwrap_or_default()
                        .iter()
                        .take_while(|&&b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
                        })
                        .count();
                let word = word_end(self.bytes, start);
                let end = match self.bytes.get(start..literal) {
                    Some(b"true" | b"false" | b"null") => literal,
                    // `true-1`: one literal to Tailscale's parser, and no value.
                    _ if literal > word => return Err(self.unexpected(Expected::Value)),
                    _ => word,
                };
                let kind = match self.bytes.get(start..end) {
                    Some(b"true") => ValueKind::Bool(true),
                    Some(b"false") => ValueKind::Bool(false),
                    Some(b"null") => ValueKind::Null,
                    _ => return Err(self.unexpected(Expected::Value)),
                };
                self.pos = end;
                kind
            }
            _ => return Err(self.unexpected(Expected::Value)),
        };
        Ok(Value {
            kind,
            span: Span::new(start, self.pos),
        })
    }

    fn number(&mut self) -> Parsed<Number> {
        let start = self.pos;
        let Some(end) = scan_number(self.bytes, start) else {
            return Err(self.invalid_number(start));
        };
        // Letters, digits, `.`, `+` or `-` right after it: Tailscale's parser reads them as
        // one literal with the number, which is then no number. (An `_` it reads as what
        // follows the number, as [`Parser::unexpected`] reports it.)
        if self
            .bytes
            .get(end)
            .is_some_and(|&b| is_number_char(b) && b != b'_')
        {
            return Err(self.invalid_number(start));
        }
        // INVARIANT: a number is ASCII, so `start..end` are character boundaries.
        let text = self.text.get(start..end).unwrap_or_default();
        self.pos = end;
        Ok(Number(text.to_owned()))
    }

    /// A double-quoted string, escapes decoded. The parser is at the opening quote and ends
    /// after the closing one.
    fn string(&mut self) -> Parsed<String> {
        let open = self.pos;
        let mut run_start = open + 1;
        // Allocated at the first escape; a string without escapes is copied once at the end.
        let mut decoded: Option<String> = None;
        loop {
            let i = find_string_special(self.bytes, run_start);
            // INVARIANT: `i` is at an ASCII byte or the end, so both ends are char boundaries.
            let run = self.text.get(run_start..i).unwrap_or_default();
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(match decoded {
                        Some(mut out) => {
                            out.push_str(run);
                            out
                        }
                        None => run.to_owned(),
                    });
                }
                Some(b'\\') => {
                    let out = decoded.get_or_insert_with(|| String::with_capacity(run.len() + 16));
                    out.push_str(run);
                    run_start = self.escape(open, i, out)?;
                }
                Some(&b) if b == b'\n' || b == b'\r' => return Err(self.unterminated_string(open)),
                Some(&b) => return Err(self.control_character(open, i, b)),
                None => return Err(self.unterminated_string(open)),
            }
        }
    }

    /// Decodes the escape at `at` (a backslash) into `out`; returns where the string goes on.
    fn escape(&mut self, open: usize, at: usize, out: &mut String) -> Parsed<usize> {
        let simple = match self.bytes.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(open, at, out),
            Some(_) => return Err(self.invalid_escape(open, at)),
            None => return Err(self.unterminated_string(open)),
        };
        out.push(simple);
        Ok(at + 2)
    }

    /// `\uXXXX`, or a surrogate pair of them. Half a pair is read as U+FFFD, as Tailscale's
    /// parser reads it (`hujson` accepts it, Go's `encoding/json` replaces it): a high half
    /// not followed by a low one is replaced and what follows read on its own.
    fn unicode_escape(&mut self, open: usize, at: usize, out: &mut String) -> Parsed<usize> {
        let Some(unit) = hex4(self.bytes, at + 2) else {
            return Err(self.invalid_unicode_escape(open, at));
        };
        let code = match unit {
            0xD800..=0xDBFF => {
                let low = if self.bytes.get(at + 6..at + 8) == Some(b"\\u") {
                    match hex4(self.bytes, at + 8) {
                        Some(low) => Some(low),
                        None => return Err(self.invalid_unicode_escape(open, at + 6)),
                    }
                } else {
                    None
                };
                match low {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        return match char::from_u32(code) {
                            Some(c) => {
                                out.push(c);
                                Ok(at + 12)
                            }
                            None => Err(self.bug("a surrogate pair outside Unicode")),
                        };
                    }
                    _ => char::REPLACEMENT_CHARACTER as u32,
                }
            }
            0xDC00..=0xDFFF => char::REPLACEMENT_CHARACTER as u32,
            code => code,
        };
        match char::from_u32(code) {
            Some(c) => {
                out.push(c);
                Ok(at + 6)
            }
            None => Err(self.bug("a non-surrogate code unit that is not a character")),
        }
    }

    /// Skips whitespace and comments, recording the comments.
    #[inline]
    fn skip_trivia(&mut self) -> Parsed<()> {
        loop {
            match self.bytes.get(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                // A `/` that starts no comment is what follows the trivia: the caller, who
                // knows what it wanted there, reports it.
                Some(b'/') if !self.comment()? => return Ok(()),
                Some(b'/') => {}
                _ => return Ok(()),
            }
        }
    }

    /// A comment; the parser is at its `/`. False (nothing read) when the `/` starts none.
    fn comment(&mut self) -> Parsed<bool> {
        let start = self.pos;
        let body = start + 2;
        let rest = self.bytes.get(body..).unwrap_or_default();
        match self.bytes.get(start + 1) {
            Some(b'/') => {
                // Only a LF ends a line comment (a lone CR does not), as in Tailscale's parser,
                // which refuses a `//` comment that runs into the end of the input.
                let newline = rest.iter().position(|&b| b == b'\n').map(|n| body + n);
                // A line or paragraph separator inside the comment: editors show a line
                // break there, so what follows it looks like policy but is comment. Refused,
                // as Tailscale's parser refuses it, and found first, as it finds it (also
                // in a comment that then runs into the end of the input).
                let text = self
                    .bytes
                    .get(body..newline.unwrap_or(self.bytes.len()))
                    .unwrap_or_default();
                let separator = text
                    .windows(3)
                    .position(|w| matches!(w, [0xE2, 0x80, 0xA8 | 0xA9]));
                if let Some(n) = separator {
                    let at = body + n;
                    let which = match self.bytes.get(at + 2) {
                        Some(0xA8) => "2028",
                        _ => "2029",
                    };
                    let diagnostic = Diagnostic::error(
                        SYNTAX,
                        Span::new(at, at + 3),
                        format!("invalid character '\\u{which}' in line comment"),
                    )
                    .with_label("a line separator inside a `//` comment")
                    .with_help(
                        "editors show this character as a line break, so what follows it looks \
                         like policy while it is part of the comment; Tailscale's HuJSON parser \
                         refuses it: remove the character, or start a new line",
                    );
                    self.diagnostics.push(diagnostic);
                    return Err(Stop);
                }
                let Some(end) = newline else {
                    let mut end = self.bytes.len();
                    if end > body && self.bytes.get(end - 1) == Some(&b'\r') {
                        end -= 1;
                    }
                    let diagnostic = Diagnostic::error(
                        SYNTAX,
                        Span::new(start, end),
                        "parsing comment: unexpected EOF",
                    )
                    .with_label("this comment has no newline after it")
                    .with_help(
                        "end the file with a newline after the comment: a `//` comment runs to \
                         the end of its line, and Tailscale's HuJSON parser refuses one that \
                         reaches the end of the file",
                    );
                    self.diagnostics.push(diagnostic);
                    return Err(Stop);
                };
                // A CRLF line's comment ends before the CR.
                let span_end = if end > body && self.bytes.get(end - 1) == Some(&b'\r') {
                    end - 1
                } else {
                    end
                };
                self.comments.push(Comment {
                    span: Span::new(start, span_end),
                    kind: CommentKind::Line,
                });
                self.pos = end;
                Ok(true)
            }
            Some(b'*') => match rest.windows(2).position(|w| w == b"*/") {
                Some(n) => {
                    let end = body + n + 2;
                    self.comments.push(Comment {
                        span: Span::new(start, end),
                        kind: CommentKind::Block,
                    });
                    self.pos = end;
                    Ok(true)
                }
                None => {
                    let diagnostic = Diagnostic::error(
                        SYNTAX,
                        Span::new(start, body),
                        "parsing comment: unexpected EOF",
                    )
                    .with_label("this comment is never closed")
                    .with_help("close the comment with `*/`");
                    self.diagnostics.push(diagnostic);
                    Err(Stop)
                }
            },
            _ => Ok(false),
        }
    }

    /// Checks one object's members for repeated keys, reporting every repetition.
    fn check_duplicates(&mut self, members: &[Member]) {
        if members.len() < 2 {
            return;
        }
        if members.len() <= PAIRWISE_DUPLICATE_CHECK {
            for (n, member) in members.iter().enumerate().skip(1) {
                if let Some(first) = members
                    .iter()
                    .take(n)
                    .find(|m| m.key.name == member.key.name)
                {
                    self.diagnostics
                        .push(duplicate_key(&member.key, first.key.span));
                }
            }
            return;
        }
        let mut sorted: Vec<(&str, usize)> = members
            .iter()
            .enumerate()
            .map(|(n, m)| (m.key.name.as_str(), n))
            .collect();
        // Equal names end up next to each other, in source order.
        sorted.sort_unstable();
        let mut first: Option<(&str, usize)> = None;
        for (name, n) in sorted {
            match first {
                Some((first_name, first_n)) if first_name == name => {
                    if let (Some(first), Some(again)) = (members.get(first_n), members.get(n)) {
                        self.diagnostics
                            .push(duplicate_key(&again.key, first.key.span));
                    }
                }
                _ => first = Some((name, n)),
            }
        }
    }
}

/// Finds the first `"`, `\` or control character at or after `from` (or the end).
///
/// Eight bytes at a time: this loop is most of the parse time of a policy.
#[inline]
fn find_string_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    /// High bit set in each byte that is zero, and possibly in bytes above one that is.
    #[inline]
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word
    }
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // For each test, the lowest flagged byte is exact: false flags only appear above a real
        // one (borrows run upwards), so the lowest flag of the union is the first special byte.
        let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let flags = (quote | backslash | control) & HIGHS;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Four hex digits at `at` as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        char::from(d).to_digit(16).map(|v| acc * 16 + v)
    })
}

/// End of the RFC 8259 number starting at `start`, or `None` if the grammar is not met.
pub(super) fn scan_number(bytes: &[u8], start: usize) -> Option<usize> {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = start;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        while digit(i) {
            i += 1;
        }
    }
    Some(i)
}

/// Bytes that cannot follow a number in JSON but that a person may have meant as part of one
/// (`0x1F`, `1.5.2`, `1_000`, `-Infinity`): an error underlines all of them.
pub(super) fn is_number_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_')
}

pub(super) fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

pub(super) fn word_end(bytes: &[u8], start: usize) -> usize {
    let len = bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        .count();
    start + len
}
