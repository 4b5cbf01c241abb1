//! `hujson::format`: lays a HuJSON document out exactly as Tailscale's `hujson.Format` (and so
//! `hujsonfmt`) does, so that `aclc fmt` and Tailscale's own tools never fight over a file.
//!
//! The layout rules are those of `github.com/tailscale/hujson` (`format.go`), re-implemented
//! here over a concrete syntax tree: every value with the whitespace and comments before and
//! after it ("extras"), rebuilt from the parser's spans, so there is one grammar in aclc and
//! formatting never goes through validation (a policy with duplicate keys or unknown sections
//! formats like any other). In order, as hujson does it:
//!
//! 1. strings holding a backslash are decoded and re-encoded in the one canonical spelling;
//!    empty containers and the gaps before `:` and `,` lose their whitespace;
//! 2. each object or array is either kept on one line or expanded to one member per line:
//!    expanded when the original has a newline after `{`, `[` or `,` or before `}`, `]`, or
//!    when one of its lines would pass 80 bytes;
//! 3. whitespace is rebuilt: tabs for indentation, at most one blank line, comments kept (the
//!    lines of a multi-line `/* */` re-indented), a trailing comma in every expanded container
//!    (unless the whole input was plain JSON) and none in a one-line container;
//! 4. in runs of members on consecutive lines, values are aligned to one column;
//! 5. the document ends with exactly one newline.
//!
//! Every width is counted in bytes, as hujson counts them.

mod extra;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt::Write;

use extra::{
    comment_len, format_extra, has_comment, has_newline, option_has_newline, whitespace_len,
    LineStats, LineWidths, Options, INLINE,
};

use super::{parse, Value, ValueKind};
use crate::diag::{Diagnostic, Diagnostics};
use crate::limits::Limits;
use crate::source::{Source, Span};

/// Lines longer than this (in bytes) make their container expand.
const PUNCH_CARD_WIDTH: usize = 80;

/// Lay `source` out as `hujsonfmt` would. The result always ends with a newline, formatting it
/// again changes nothing, and it stands for the same JSON value with the same comments.
///
/// Only the syntax is checked: a document that is not a valid policy (unknown sections,
/// duplicate keys) is formatted all the same. `Err` holds the syntax error (`aclc::syntax`),
/// or the size or depth limit, that stopped the parser (as [`crate::parse`] reports it).
///
/// The tree is walked recursively, once per nesting level, so `limits.max_depth` bounds the
/// stack used.
pub fn format(source: &Source, limits: &Limits) -> Result<String, Diagnostics> {
    let (document, diagnostics) = parse(source, limits);
    // A document comes back whenever the syntax allowed building one; what else the parser
    // reports then (duplicate keys) is for `check`, not for the layout.
    let Some(document) = document else {
        let mut errors: Vec<Diagnostic> = diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
        if errors.is_empty() {
            errors.push(bug("the parser returned no document and no error"));
        }
        return Err(Diagnostics(errors));
    };
    let text = source.text();
    let builder = Builder { text };
    let root = builder
        .slice(0, document.root.span.start as usize)
        .and_then(|before| {
            Ok(Node {
                before: Cow::Borrowed(before),
                item: builder.item(&document.root)?,
                after: some_if_not_empty(
                    builder.slice(document.root.span.end as usize, text.len())?,
                ),
            })
        });
    drop(document);
    let mut root = root.map_err(|Bug(what)| Diagnostics(vec![bug(what)]))?;

    root.before = format_extra(&root.before, 0, Options::default());
    let leading = whitespace_len(root.before.as_bytes());
    if leading > 0 {
        root.before = Cow::Owned(root.before.get(leading..).unwrap_or_default().to_owned());
    }
    let standard = root.is_standard();
    root.normalize();
    root.expand_composites();
    root.format_whitespace(0, standard);
    root.align_object_values();
    let after = format_extra(
        root.after.as_deref().unwrap_or_default(),
        0,
        Options::default(),
    );

    let mut out = String::with_capacity(text.len() + text.len() / 8);
    out.push_str(&root.before);
    root.item.pack(&mut out);
    out.push_str(after.trim_end());
    out.push('\n');
    Ok(out)
}

/// A broken internal assumption about the parsed tree (the text between tokens is not what the
/// parser said it was).
#[derive(Debug)]
struct Bug(&'static str);

/// The diagnostic for a broken internal assumption.
fn bug(what: &str) -> Diagnostic {
    Diagnostic::error(
        crate::code::Code::Internal,
        Span::default(),
        format!("cannot format the document (this is a bug: {what})"),
    )
}

/// Whitespace and comments: the text between two tokens.
type Extra<'a> = Cow<'a, str>;

/// A value and the extras around it. `after` is the gap before the next `:`, `,` or closing
/// bracket; on the last element of a container, `Some` means the container has a trailing
/// comma (the gap between the value and that comma), `None` that it has none.
#[derive(Debug)]
struct Node<'a> {
    before: Extra<'a>,
    item: Item<'a>,
    after: Option<Extra<'a>>,
}

#[derive(Debug)]
enum Item<'a> {
    /// `null`, `true`, `false`, a number or a string, as it will be written.
    Literal(Cow<'a, str>),
    Composite(Composite<'a>),
}

/// An object or an array.
#[derive(Debug)]
struct Composite<'a> {
    /// `true` for an object (its entries have names).
    object: bool,
    entries: Vec<Entry<'a>>,
    /// The gap before the closing bracket (after the trailing comma, if there is one).
    after: Extra<'a>,
    /// One entry per line (set by [`Node::expand_composites`]).
    expand: bool,
}

/// An array element (`name` is `None`) or an object member.
#[derive(Debug)]
struct Entry<'a> {
    /// Boxed: most entries are array elements, and an inline name doubled every entry's size
    /// (126-deep nesting took 3 GB to format a 15.6 MB document).
    name: Option<Box<Node<'a>>>,
    value: Node<'a>,
}

impl Entry<'_> {
    /// The extra before the entry: after the `{`, `[` or `,`.
    fn first_extra(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.value).before.as_ref()
    }
}

fn some_if_not_empty(text: &str) -> Option<Extra<'_>> {
    (!text.is_empty()).then_some(Cow::Borrowed(text))
}

/// Rebuilds the concrete syntax tree from the parsed tree's spans and the text between them.
struct Builder<'a> {
    text: &'a str,
}

impl<'a> Builder<'a> {
    fn slice(&self, start: usize, end: usize) -> Result<&'a str, Bug> {
        self.text
            .get(start..end)
            .ok_or(Bug("a span outside the text"))
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    /// Where the next token after `from` starts (the parser has checked that one does).
    fn next_token(&self, from: usize) -> Result<usize, Bug> {
        let bytes = self.text.as_bytes();
        let mut at = from;
        loop {
            let rest = bytes.get(at..).unwrap_or_default();
            at += whitespace_len(rest);
            let rest = bytes.get(at..).unwrap_or_default();
            match comment_len(rest) {
                Some(n) => at += n,
                None if at < bytes.len() => return Ok(at),
                None => return Err(Bug("a container without its closing bracket")),
            }
        }
    }

    /// A literal as it will be written: strings with a backslash are re-encoded from their
    /// decoded value, as hujson's `normalize` does (`"\u0041\/"` becomes `"A/"`).
    fn literal(&self, span: Span, decoded: Option<&str>) -> Result<Cow<'a, str>, Bug> {
        let raw = self.slice(span.start as usize, span.end as usize)?;
        Ok(match decoded {
            Some(decoded) if raw.contains('\\') => Cow::Owned(encode_string(decoded)),
            _ => Cow::Borrowed(raw),
        })
    }

    fn item(&self, value: &Value) -> Result<Item<'a>, Bug> {
        match &value.kind {
            ValueKind::String(decoded) => {
                Ok(Item::Literal(self.literal(value.span, Some(decoded))?))
            }
            ValueKind::Null | ValueKind::Bool(_) | ValueKind::Number(_) => {
                Ok(Item::Literal(self.literal(value.span, None)?))
            }
            ValueKind::Array(items) => {
                self.composite(value.span, false, items.iter().map(|item| (None, item)))
            }
            ValueKind::Object(members) => self.composite(
                value.span,
                true,
                members
                    .iter()
                    .map(|m| (Some((m.key.span, m.key.name.as_str())), &m.value)),
            ),
        }
    }

    /// An array or object spanning `span`, from its children: each a value, and for an object
    /// its key's span and decoded name.
    fn composite<'v>(
        &self,
        span: Span,
        object: bool,
        children: impl ExactSizeIterator<Item = (Option<(Span, &'v str)>, &'v Value)>,
    ) -> Result<Item<'a>, Bug> {
        let open = span.start as usize;
        let close = (span.end as usize).saturating_sub(1);
        let mut entries = Vec::with_capacity(children.len());
        let mut at = open + 1;
        let mut trailing_comma = false;
        for (key, child) in children {
            let name = match key {
                Some((span, decoded)) => {
                    let colon = self.next_token(span.end as usize)?;
                    if self.byte(colon) != Some(b':') {
                        return Err(Bug("a key without its colon"));
                    }
                    let name = Node {
                        before: Cow::Borrowed(self.slice(at, span.start as usize)?),
                        item: Item::Literal(self.literal(span, Some(decoded))?),
                        after: some_if_not_empty(self.slice(span.end as usize, colon)?),
                    };
                    at = colon + 1;
                    Some(Box::new(name))
                }
                None => None,
            };
            let start = child.span.start as usize;
            let end = child.span.end as usize;
            let next = self.next_token(end)?;
            entries.push(Entry {
                name,
                value: Node {
                    before: Cow::Borrowed(self.slice(at, start)?),
                    item: self.item(child)?,
                    after: some_if_not_empty(self.slice(end, next)?),
                },
            });
            trailing_comma = self.byte(next) == Some(b',');
            at = if trailing_comma { next + 1 } else { next };
        }
        let mut after = Cow::Borrowed(self.slice(at, close)?);
        if let Some(last) = entries.last_mut() {
            if trailing_comma {
                // The comma right after the value: an empty gap, but a comma all the same.
                last.value.after.get_or_insert(Cow::Borrowed(""));
            } else {
                // Without a trailing comma, the gap before the bracket is the container's.
                after = last.value.after.take().unwrap_or_default();
            }
        }
        Ok(Item::Composite(Composite {
            object,
            entries,
            after,
            expand: false,
        }))
    }
}

/// A JSON string literal for `value` in hujson's canonical spelling (RFC 8785 section
/// 3.2.2.2): only `"`, `\` and control characters escaped, the usual short escapes where they
/// exist, `\u00xx` (lower case) otherwise; everything else as itself.
fn encode_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl<'a> Node<'a> {
    fn composite(&self) -> Option<&Composite<'a>> {
        match &self.item {
            Item::Composite(composite) => Some(composite),
            Item::Literal(_) => None,
        }
    }

    /// True if the input was plain JSON: no comment, no trailing comma. Such a document is
    /// formatted without adding trailing commas, so it stays plain JSON.
    fn is_standard(&self) -> bool {
        if has_comment(&self.before) || self.after.as_deref().is_some_and(has_comment) {
            return false;
        }
        let Some(composite) = self.composite() else {
            return true;
        };
        let trailing_comma = composite
            .entries
            .last()
            .is_some_and(|e| e.value.after.is_some());
        !trailing_comma
            && !has_comment(&composite.after)
            && composite.entries.iter().all(|entry| {
                entry.name.as_deref().is_none_or(Node::is_standard) && entry.value.is_standard()
            })
    }

    /// Drops whitespace-only gaps before `:` and `,` (and with them a trailing comma), and the
    /// whitespace inside empty containers.
    fn normalize(&mut self) {
        let Item::Composite(composite) = &mut self.item else {
            return;
        };
        if composite.entries.is_empty() {
            if !has_comment(&composite.after) {
                composite.after = Cow::Borrowed("");
            }
            return;
        }
        for entry in &mut composite.entries {
            for node in entry
                .name
                .as_deref_mut()
                .into_iter()
                .chain(Some(&mut entry.value))
            {
                if !node.after.as_deref().is_some_and(has_comment) {
                    node.after = None;
                }
            }
            entry.value.normalize();
        }
    }

    /// Decides which containers are expanded; returns the widths of this value's lines as it
    /// will be laid out.
    fn expand_composites(&mut self) -> LineStats {
        let composite = match &mut self.item {
            Item::Literal(text) => return LineStats::single(text.len()),
            Item::Composite(composite) => composite,
        };
        let mut expand = false;
        let mut widths = LineWidths {
            current: 1,
            ..LineWidths::default()
        };
        for entry in &mut composite.entries {
            expand = expand || has_newline(entry.first_extra());
            if let Some(name) = &mut entry.name {
                widths.add(LineStats::of_extra(&name.before));
                widths.add(name.expand_composites());
                widths.add(LineStats::of_extra(
                    name.after.as_deref().unwrap_or_default(),
                ));
                widths.current += 2;
            }
            let value = &mut entry.value;
            widths.add(LineStats::of_extra(&value.before));
            widths.add(value.expand_composites());
            widths.add(LineStats::of_extra(
                value.after.as_deref().unwrap_or_default(),
            ));
            widths.current += 2;
        }
        widths.current += 1;
        if let Some(last) = composite.entries.last() {
            expand = expand || option_has_newline(last.value.after.as_ref());
        }
        expand = expand || has_newline(&composite.after);
        widths.end_line();
        expand = expand || widths.widest > PUNCH_CARD_WIDTH;
        if expand {
            composite.expand = true;
            let first_extra = composite
                .entries
                .first()
                .map_or(composite.after.as_ref(), Entry::first_extra);
            LineStats {
                first: 1 + LineStats::of_extra(first_extra).first,
                last: 1,
                multiline: true,
            }
        } else {
            LineStats {
                first: widths.first.unwrap_or(widths.current),
                last: widths.last,
                multiline: widths.count > 1,
            }
        }
    }

    /// Rebuilds every extra inside this value for its place and `depth`, and settles the
    /// trailing commas (`standard`: the input was plain JSON, so none are added).
    fn format_whitespace(&mut self, depth: usize, standard: bool) {
        let Item::Composite(composite) = &mut self.item else {
            return;
        };
        let expand = composite.expand;
        let count = composite.entries.len();
        for (i, entry) in composite.entries.iter_mut().enumerate() {
            let first = Options {
                ensure_leading_newline: expand,
                remove_leading_empty_lines: i == 0,
                append_space_if_empty: i != 0,
                ..Options::default()
            };
            let value = &mut entry.value;
            let mut value_depth = depth + usize::from(expand);
            match &mut entry.name {
                Some(name) => {
                    name.before = format_extra(&name.before, depth + 1, first);
                    if let Some(after) = &mut name.after {
                        *after = format_extra(after, depth + 2, INLINE);
                    }
                    value.before = format_extra(
                        &value.before,
                        depth + 2,
                        Options {
                            append_space_if_empty: true,
                            ..INLINE
                        },
                    );
                    if option_has_newline(name.after.as_ref()) || has_newline(&value.before) {
                        value_depth += 1;
                    }
                }
                None => value.before = format_extra(&value.before, depth + 1, first),
            }
            value.format_whitespace(value_depth, standard);
            if let Some(after) = &mut value.after {
                *after = format_extra(after, depth + 2, INLINE);
            }
        }
        composite.after = format_extra(
            &composite.after,
            depth + 1,
            Options {
                ensure_trailing_newline: expand,
                remove_leading_empty_lines: count == 0,
                remove_trailing_empty_lines: true,
                unindent_last_line: true,
                ..Options::default()
            },
        );
        let surrounded_comma = composite.entries.last().is_some_and(|last| {
            last.value.after.as_deref().is_some_and(|a| !a.is_empty())
                && !composite.after.is_empty()
        });
        if !expand && !surrounded_comma {
            composite.set_trailing_comma(false);
        } else if expand && !standard {
            composite.set_trailing_comma(true);
        }
    }

    /// True if any extra inside this value (and, with `own_extras`, around it) has a newline.
    fn has_newline(&self, own_extras: bool) -> bool {
        if own_extras && (has_newline(&self.before) || option_has_newline(self.after.as_ref())) {
            return true;
        }
        self.composite().is_some_and(|composite| {
            composite.entries.iter().any(|entry| {
                entry
                    .name
                    .as_ref()
                    .is_some_and(|name| name.has_newline(true))
                    || entry.value.has_newline(true)
            })
        })
    }

    /// Pads the gap after each colon so that the values of members on consecutive lines start
    /// in one column. A member that spans lines, or a blank line, ends a run.
    fn align_object_values(&mut self) {
        let Item::Composite(composite) = &mut self.item else {
            return;
        };
        if composite.object {
            // Per member: `None` if it cannot be aligned (it ends a run), else whether it starts
            // a new run (after a blank line) and its width from the start of the name to the
            // end of the gap after the colon.
            let plan: Vec<Option<(bool, usize)>> = composite
                .entries
                .iter()
                .map(|entry| {
                    let name = entry.name.as_ref()?;
                    let value = &entry.value;
                    if !has_newline(&name.before)
                        || name.has_newline(false)
                        || option_has_newline(name.after.as_ref())
                        || has_newline(&value.before)
                        || value.has_newline(false)
                        || option_has_newline(value.after.as_ref())
                    {
                        return None;
                    }
                    let blank_line_before = name.before.bytes().filter(|&b| b == b'\n').count() > 1;
                    let name_len = match &name.item {
                        Item::Literal(text) => text.len(),
                        Item::Composite(_) => 0,
                    };
                    let width = name_len
                        + name.after.as_deref().map_or(0, str::len)
                        + 1
                        + value.before.len();
                    Some((blank_line_before, width))
                })
                .collect();
            let mut run: Vec<(usize, usize)> = Vec::new();
            for (i, step) in plan.into_iter().enumerate() {
                match step {
                    None => pad_run(&mut composite.entries, &mut run),
                    Some((new_run, width)) => {
                        if new_run {
                            pad_run(&mut composite.entries, &mut run);
                        }
                        run.push((i, width));
                    }
                }
            }
            pad_run(&mut composite.entries, &mut run);
        }
        for entry in &mut composite.entries {
            entry.value.align_object_values();
        }
    }
}

/// Pads the gaps after the colons of the members in `run` to the widest, and empties `run`.
fn pad_run(entries: &mut [Entry<'_>], run: &mut Vec<(usize, usize)>) {
    let widest = run.iter().map(|&(_, width)| width).max().unwrap_or(0);
    for &(i, width) in run.iter() {
        if let Some(entry) = entries.get_mut(i) {
            if widest > width {
                entry
                    .value
                    .before
                    .to_mut()
                    .extend(std::iter::repeat_n(' ', widest - width));
            }
        }
    }
    run.clear();
}

impl Composite<'_> {
    /// Adds or removes the trailing comma. Removing it moves the gap before it into the gap
    /// before the closing bracket.
    fn set_trailing_comma(&mut self, on: bool) {
        let Some(last) = self.entries.last_mut() else {
            return;
        };
        match (on, last.value.after.take()) {
            (true, None) => last.value.after = Some(Cow::Borrowed("")),
            (true, Some(after)) => last.value.after = Some(after),
            (false, None) => {}
            (false, Some(after)) => {
                let mut moved = after.into_owned();
                moved.push_str(&self.after);
                self.after = Cow::Owned(moved);
            }
        }
    }
}

impl Item<'_> {
    /// Writes the value with its extras.
    fn pack(&self, out: &mut String) {
        match self {
            Item::Literal(text) => out.push_str(text),
            Item::Composite(composite) => {
                let (open, close) = if composite.object {
                    ('{', '}')
                } else {
                    ('[', ']')
                };
                out.push(open);
                for entry in &composite.entries {
                    if let Some(name) = &entry.name {
                        name.pack(out);
                        out.push(':');
                    }
                    entry.value.pack(out);
                    out.push(',');
                }
                if composite
                    .entries
                    .last()
                    .is_some_and(|last| last.value.after.is_none())
                {
                    out.pop();
                }
                out.push_str(&composite.after);
                out.push(close);
            }
        }
    }
}

impl Node<'_> {
    fn pack(&self, out: &mut String) {
        out.push_str(&self.before);
        self.item.pack(out);
        if let Some(after) = &self.after {
            out.push_str(after);
        }
    }
}
