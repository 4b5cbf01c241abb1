//! The whitespace and comments between tokens ("extras"): how each is laid out for its place
//! and depth, and how wide it is, as hujson's `format.go` does both.

use std::borrow::Cow;

use super::Extra;

/// Length of the JSON whitespace (space, tab, CR, LF) at the start of `bytes`.
pub(super) fn whitespace_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count()
}

/// Length of the comment at the start of `bytes`, its closing `*/` or newline included; `None`
/// if there is no complete comment there.
pub(super) fn comment_len(bytes: &[u8]) -> Option<usize> {
    let (end, rest): (&[u8], _) = match bytes {
        [b'/', b'/', rest @ ..] => (b"\n", rest),
        [b'/', b'*', rest @ ..] => (b"*/", rest),
        _ => return None,
    };
    let found = rest.windows(end.len()).position(|w| w == end)?;
    Some(2 + found + end.len())
}

/// True if the extra holds anything but whitespace.
pub(super) fn has_comment(extra: &str) -> bool {
    whitespace_len(extra.as_bytes()) < extra.len()
}

pub(super) fn has_newline(extra: &str) -> bool {
    extra.as_bytes().contains(&b'\n')
}

pub(super) fn option_has_newline(extra: Option<&Extra<'_>>) -> bool {
    extra.is_some_and(|e| has_newline(e))
}

/// How wide a run of lines is: its first and last line, and whether there is more than one.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineStats {
    pub(super) first: usize,
    pub(super) last: usize,
    pub(super) multiline: bool,
}

impl LineStats {
    pub(super) fn single(len: usize) -> LineStats {
        LineStats {
            first: len,
            last: len,
            multiline: false,
        }
    }

    /// The widths an extra takes once formatted: its comments, a space before each, and one
    /// after the last block comment.
    pub(super) fn of_extra(extra: &str) -> LineStats {
        let bytes = extra.as_bytes();
        match (
            bytes.iter().position(|&b| b == b'\n'),
            bytes.iter().rposition(|&b| b == b'\n'),
        ) {
            (Some(first), Some(last)) => LineStats {
                first: comments_width(bytes.get(..first).unwrap_or_default()),
                last: comments_width(bytes.get(last + 1..).unwrap_or_default()),
                multiline: true,
            },
            _ => LineStats::single(comments_width(bytes)),
        }
    }
}

/// The approximate width of the comments on one line of an extra (hujson's estimate: a line
/// comment, or a block comment cut by a newline, runs to the end of the line).
fn comments_width(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    loop {
        bytes = bytes.get(whitespace_len(bytes)..).unwrap_or_default();
        if bytes.starts_with(b"//") {
            return n + 1 + bytes.len();
        }
        if bytes.starts_with(b"/*") {
            match comment_len(bytes) {
                Some(len) => {
                    n += 1 + len;
                    bytes = bytes.get(len..).unwrap_or_default();
                    continue;
                }
                None => return n + 1 + bytes.len(),
            }
        }
        if n > 0 {
            n += 1;
        }
        return n;
    }
}

/// Line widths of a container laid out on one line (as far as its extras allow).
#[derive(Default)]
pub(super) struct LineWidths {
    pub(super) current: usize,
    pub(super) first: Option<usize>,
    pub(super) last: usize,
    pub(super) count: usize,
    pub(super) widest: usize,
}

impl LineWidths {
    pub(super) fn add(&mut self, stats: LineStats) {
        self.current += stats.first;
        if stats.multiline {
            self.end_line();
            self.current = stats.last;
        }
    }

    pub(super) fn end_line(&mut self) {
        self.first.get_or_insert(self.current);
        self.last = self.current;
        self.count += 1;
        self.widest = self.widest.max(self.current);
    }
}

/// What [`format_extra`] is to ensure besides the comments and blank lines.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Options {
    pub(super) ensure_leading_newline: bool,
    pub(super) ensure_trailing_newline: bool,
    pub(super) remove_leading_empty_lines: bool,
    pub(super) remove_trailing_empty_lines: bool,
    pub(super) unindent_last_line: bool,
    pub(super) append_space_if_empty: bool,
}

/// Options for the extra after a name, around a colon or before a comma.
pub(super) const INLINE: Options = Options {
    ensure_leading_newline: false,
    ensure_trailing_newline: false,
    remove_leading_empty_lines: true,
    remove_trailing_empty_lines: true,
    unindent_last_line: false,
    append_space_if_empty: false,
};

fn push_indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n('\t', depth));
}

/// One extra laid out at `depth`: line ends made LF (a lone CR becomes a space), runs of
/// whitespace reduced to their newlines (at most two), comments indented, trailing whitespace
/// dropped, multi-line block comments re-indented as a whole.
pub(super) fn format_extra(extra: &str, depth: usize, options: Options) -> Cow<'static, str> {
    if !extra.contains('/') {
        return format_whitespace_only(extra, depth, options);
    }
    let normalized: Cow<'_, str> = if extra.contains('\r') {
        Cow::Owned(
            extra
                .replace("\r\n", "\n")
                .replace("\n\r", "\n")
                .replace('\r', " "),
        )
    } else {
        Cow::Borrowed(extra)
    };
    let mut rest: &str = &normalized;
    let mut out = String::new();
    if options.ensure_leading_newline && !has_newline(rest) {
        out.push('\n');
    }
    while !rest.is_empty() {
        let spaces = whitespace_len(rest.as_bytes());
        if spaces > 0 {
            let (gap, tail) = rest.split_at(spaces);
            let newlines = gap.bytes().filter(|&b| b == b'\n').count().min(2);
            out.extend(std::iter::repeat_n('\n', newlines));
            rest = tail;
            continue;
        }
        let Some(len) = comment_len(rest.as_bytes()) else {
            // Not an extra at all (the parser never hands one over): left as it is.
            return Cow::Owned(normalized.into_owned());
        };
        if out.ends_with('\n') {
            push_indent(&mut out, depth);
        } else {
            out.push(' ');
        }
        let (comment, tail) = rest.split_at(len);
        if comment.starts_with("//") || !has_newline(comment) {
            out.push_str(comment.trim_end());
            // A line comment's newline is left for the whitespace that follows.
            rest = if comment.starts_with("//") {
                rest.get(len - 1..).unwrap_or_default()
            } else {
                tail
            };
            continue;
        }
        push_block_comment(&mut out, comment, depth);
        rest = tail;
    }
    if options.ensure_trailing_newline && !out.ends_with('\n') {
        out.push('\n');
    }
    if options.remove_leading_empty_lines {
        let blank = out.bytes().take_while(|&b| b == b'\n').count();
        if blank >= 2 {
            out.drain(..blank - 1);
        }
    }
    if options.remove_trailing_empty_lines {
        while out.ends_with("\n\n") {
            out.pop();
        }
    }
    if out.ends_with('\n') {
        let depth = if options.unindent_last_line {
            depth.saturating_sub(1)
        } else {
            depth
        };
        push_indent(&mut out, depth);
    } else if !out.is_empty() {
        out.push(' ');
    }
    if options.append_space_if_empty && out.is_empty() {
        out.push(' ');
    }
    Cow::Owned(out)
}

/// Newlines then tabs, to slice the layout of a comment-free extra from.
const NEWLINES_AND_TABS: &str = concat!(
    "\n\n",
    "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
    "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
);

/// [`format_extra`] of an extra that is only whitespace (most of them), without allocating:
/// what remains of it is its newlines (one or two) and the indentation, or a space, or nothing.
fn format_whitespace_only(extra: &str, depth: usize, options: Options) -> Cow<'static, str> {
    // CR LF and LF CR become LF and a lone CR a space: the count of LFs is unchanged.
    let mut newlines = extra.bytes().filter(|&b| b == b'\n').count().min(2);
    if newlines == 0 && (options.ensure_leading_newline || options.ensure_trailing_newline) {
        newlines = 1;
    }
    if options.remove_leading_empty_lines || options.remove_trailing_empty_lines {
        newlines = newlines.min(1);
    }
    if newlines == 0 {
        return Cow::Borrowed(if options.append_space_if_empty {
            " "
        } else {
            ""
        });
    }
    let tabs = if options.unindent_last_line {
        depth.saturating_sub(1)
    } else {
        depth
    };
    match NEWLINES_AND_TABS.get(2 - newlines..2 + tabs) {
        Some(layout) => Cow::Borrowed(layout),
        None => {
            let mut out = "\n".repeat(newlines);
            push_indent(&mut out, tabs);
            Cow::Owned(out)
        }
    }
}

/// A `/* */` comment spanning lines, re-indented: its lines lose their trailing whitespace and
/// the indentation they share, then each is indented to `depth` (and one space more when every
/// line starts with `*`, so the stars stay under the first line's). A last line holding only
/// `*/` takes the shared indentation.
fn push_block_comment(out: &mut String, comment: &str, depth: usize) {
    let mut lines: Vec<Cow<'_, str>> = comment
        .split('\n')
        .map(|line| Cow::Borrowed(line.trim_end()))
        .collect();
    let has_empty_line = lines.iter().any(|line| line.is_empty());
    let mut prefix: Vec<u8> = lines
        .iter()
        .skip(1)
        .find(|line| !line.is_empty())
        .map(|line| line.as_bytes().to_vec())
        .unwrap_or_default();
    for line in lines.iter_mut().skip(1) {
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.ends_with(b"*/") && whitespace_len(bytes) + 2 == bytes.len() {
            let indent = prefix.get(..whitespace_len(&prefix)).unwrap_or_default();
            // INVARIANT: the indentation is ASCII whitespace.
            let indent = std::str::from_utf8(indent).unwrap_or_default();
            *line = Cow::Owned(format!("{indent}*/"));
            break;
        }
        let shared = prefix.iter().zip(bytes).take_while(|(a, b)| a == b).count();
        // As hujson does it: the prefix only shrinks at a differing byte, not when the line is
        // shorter than it.
        if shared < prefix.len() && shared < bytes.len() {
            prefix.truncate(shared);
        }
    }
    let prefix_len = whitespace_len(&prefix);
    let star_aligned = !has_empty_line && prefix.get(prefix_len) == Some(&b'*');
    let mut lines = lines.iter();
    if let Some(first) = lines.next() {
        out.push_str(first);
    }
    out.push('\n');
    for line in lines {
        if !line.is_empty() {
            push_indent(out, depth);
            if star_aligned {
                out.push(' ');
            }
            out.push_str(line.get(prefix_len..).unwrap_or(line));
        }
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
}
