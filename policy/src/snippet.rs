//! Bounded, terminal-safe excerpts of a policy for rendering diagnostics: whatever the input
//! (a 16 MiB line, escape sequences, bidi overrides), miette is handed a few short lines of
//! escaped text, while its `file:line:column` headers still point into the real file.
//!
//! A [`Snippet`] holds only the lines a diagnostic's spans touch, one line of context around
//! each, each long line cut to a window around its span (`…` marks the cuts). Control
//! characters and bidirectional controls are shown as `\u{1b}`-style escapes, so a snippet
//! never sends a raw escape sequence to a terminal. Building one costs O(log lines) per span
//! plus the size of the window; nothing scans the text from its start.

use crate::source::{LineCol, Source, Span};
use crate::text::{escape, needs_escape, push_escaped, CUT};

/// Characters of context kept on each side of a span on a long line.
pub const CONTEXT_CHARS: usize = 120;
/// Characters of one span shown on a long line; the rest of the span is cut.
pub const SPAN_CHARS: usize = 240;
/// A line of up to this many bytes is shown whole.
const SHORT_LINE_BYTES: usize = 2 * CONTEXT_CHARS + SPAN_CHARS;
/// A span over more lines than this is shown by the part on its first line.
pub const SPAN_LINES: usize = 8;
/// Lines of context above and below each span (miette's default).
const CONTEXT_LINES: usize = 1;
/// Gaps of up to this many lines between excerpts are filled, so nearby spans share a block.
const GAP_LINES: usize = 3;

fn escaped_len(text: &str) -> usize {
    text.chars()
        .map(|c| {
            if needs_escape(c) {
                format!("\\u{{{:x}}}", u32::from(c)).len()
            } else {
                c.len_utf8()
            }
        })
        .sum()
}

/// One shown line of a [`Snippet`].
#[derive(Debug, Clone)]
struct ShownLine {
    /// Byte range of the shown text in the snippet, without its `\n`.
    start: usize,
    end: usize,
    /// 0-based line in the real text.
    line: usize,
    /// Byte range of the real text shown (the window).
    real_start: usize,
    real_end: usize,
    /// Bytes of the snippet before the window's text (a `…` when cut on the left).
    prefix: usize,
    /// Indices (into the shown lines) of the first and last line of this line's block: a run
    /// of consecutive real lines.
    block_first: usize,
    block_last: usize,
}

/// A diagnostic's excerpt of a [`Source`]: a `miette::SourceCode` whose text is the shown
/// lines only (windowed, escaped), and whose line and column numbers are the real ones.
#[derive(Debug, Clone)]
pub struct Snippet {
    name: String,
    text: String,
    lines: Vec<ShownLine>,
    /// Where each span given to [`Snippet::new`] starts in the snippet, and in the real text.
    starts: Vec<(usize, LineCol)>,
}

impl Snippet {
    /// The excerpt of `source` showing `spans`, and each span moved into the excerpt (same
    /// order). The first span anchors the window of a long line it is on.
    pub fn new(source: &Source, spans: &[Span]) -> (Snippet, Vec<Span>) {
        let text = source.text();
        // The empty "line" after a final newline is shown only when a span is on it.
        let last_line =
            source
                .line_count()
                .saturating_sub(if text.ends_with('\n') { 2 } else { 1 });
        // Each span as shown: clamped to the text, a long multi-line span cut to its first line.
        let shown: Vec<(usize, usize, usize, usize)> = spans
            .iter()
            .map(|span| {
                let start = floor_boundary(text, span.start as usize);
                let mut end = floor_boundary(text, (span.end as usize).max(start));
                let first = source.line_index(start);
                let mut last = source.line_index(if end > start { end - 1 } else { start });
                if last - first >= SPAN_LINES {
                    end = source.line_range(first).1.max(start);
                    last = first;
                }
                (start, end, first, last)
            })
            .collect();
        // The lines to show: each span's, one of context around, small gaps filled.
        let mut ranges: Vec<(usize, usize)> = shown
            .iter()
            .map(|&(_, _, first, last)| {
                (
                    first.saturating_sub(CONTEXT_LINES),
                    (last + CONTEXT_LINES).min(last_line).max(last),
                )
            })
            .collect();
        ranges.sort_unstable();
        let mut blocks: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (from, to) in ranges {
            match blocks.last_mut() {
                Some(block) if from <= block.1 + 1 + GAP_LINES => block.1 = block.1.max(to),
                _ => blocks.push((from, to)),
            }
        }

        let mut snippet = Snippet {
            name: escape(source.name()).into_owned(),
            text: String::new(),
            lines: Vec::new(),
            starts: Vec::with_capacity(spans.len()),
        };
        for (from, to) in blocks {
            let block_first = snippet.lines.len();
            let block_last = block_first + (to - from);
            for line in from..=to {
                let (real_start, real_end) = window(source, line, &shown);
                let (line_start, line_end) = source.line_range(line);
                let start = snippet.text.len();
                if real_start > line_start {
                    snippet.text.push_str(CUT);
                }
                let prefix = snippet.text.len() - start;
                for c in text.get(real_start..real_end).unwrap_or_default().chars() {
                    push_escaped(&mut snippet.text, c);
                }
                if real_end < line_end {
                    snippet.text.push_str(CUT);
                }
                let end = snippet.text.len();
                snippet.text.push('\n');
                snippet.lines.push(ShownLine {
                    start,
                    end,
                    line,
                    real_start,
                    real_end,
                    prefix,
                    block_first,
                    block_last,
                });
            }
        }

        let moved = shown
            .iter()
            .zip(spans)
            .map(|(&(start, end, _, _), span)| {
                let from = snippet.locate(source, start);
                let to = snippet.locate(source, end).max(from);
                snippet
                    .starts
                    .push((from, source.line_col(span.start as usize)));
                Span::new(from, to)
            })
            .collect();
        (snippet, moved)
    }

    /// The snippet's text (the shown lines, each ending in `\n`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The escaped file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where real byte `offset` is in the snippet (clamped into the shown window).
    fn locate(&self, source: &Source, offset: usize) -> usize {
        let line = source.line_index(offset);
        let i = self.lines.partition_point(|l| l.line < line);
        let Some(shown) = self.lines.get(i).filter(|l| l.line == line) else {
            // Not shown (cannot happen for a span's own lines): the end of the line before.
            return self.lines.get(i.saturating_sub(1)).map_or(0, |l| {
                if i == 0 {
                    l.start
                } else {
                    l.end
                }
            });
        };
        let at = offset.clamp(shown.real_start, shown.real_end);
        let before = source.text().get(shown.real_start..at).unwrap_or_default();
        shown.start + shown.prefix + escaped_len(before)
    }

    /// Index of the shown line holding snippet byte `offset` (its `\n` included).
    fn line_at(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|l| l.end < offset)
            .min(self.lines.len().saturating_sub(1))
    }
}

/// Byte range of real line `line` to show: whole if short, else a window around the first
/// span on it (or the line's start).
fn window(source: &Source, line: usize, shown: &[(usize, usize, usize, usize)]) -> (usize, usize) {
    let (line_start, line_end) = source.line_range(line);
    if line_end - line_start <= SHORT_LINE_BYTES {
        return (line_start, line_end);
    }
    let text = source.text();
    let anchor = shown
        .iter()
        .find(|&&(_, _, first, last)| first <= line && line <= last)
        .map(|&(start, end, _, _)| (start.max(line_start), end.min(line_end)));
    match anchor {
        Some((start, end)) => {
            let from = chars_back(text, line_start, start, CONTEXT_CHARS);
            let span_shown = chars_forward(text, start, end.max(start), SPAN_CHARS);
            // A span cut short ends the window: context after it would look underlined.
            let to = if span_shown < end {
                span_shown
            } else {
                chars_forward(text, span_shown, line_end, CONTEXT_CHARS)
            };
            (from, to)
        }
        None => (
            line_start,
            chars_forward(text, line_start, line_end, 2 * CONTEXT_CHARS),
        ),
    }
}

/// The byte `n` characters before `at`, not before `floor`.
fn chars_back(text: &str, floor: usize, at: usize, n: usize) -> usize {
    if n == 0 {
        return at;
    }
    text.get(floor..at)
        .and_then(|s| s.char_indices().rev().nth(n - 1))
        .map_or(floor, |(i, _)| floor + i)
}

/// The byte `n` characters after `at`, not after `ceiling`.
fn chars_forward(text: &str, at: usize, ceiling: usize, n: usize) -> usize {
    text.get(at..ceiling)
        .and_then(|s| s.char_indices().nth(n))
        .map_or(ceiling, |(i, _)| at + i)
}

/// `offset` clamped to the text and moved back to a character boundary.
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl miette::SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let offset = span.offset();
        let end = offset + span.len();
        if end > self.text.len() {
            return Err(miette::MietteError::OutOfBounds);
        }
        let first_i = self.line_at(offset);
        let last_i = self
            .line_at(if end > offset { end - 1 } else { offset })
            .max(first_i);
        let (Some(first), Some(last)) = (self.lines.get(first_i), self.lines.get(last_i)) else {
            return Err(miette::MietteError::OutOfBounds);
        };
        if first.block_first != last.block_first {
            // Spans in different blocks are never drawn as one excerpt.
            return Err(miette::MietteError::OutOfBounds);
        }
        let from_i = first_i
            .saturating_sub(context_lines_before)
            .max(first.block_first);
        let to_i = (last_i + context_lines_after).min(last.block_last);
        let (Some(from), Some(to)) = (self.lines.get(from_i), self.lines.get(to_i)) else {
            return Err(miette::MietteError::OutOfBounds);
        };
        let data_start = if context_lines_before == 0 {
            offset
        } else {
            from.start
        };
        let data_end = (to.end + 1).min(self.text.len()).max(data_start);
        let column = if context_lines_before == 0 {
            self.starts
                .iter()
                .find(|(at, _)| *at == offset)
                .map_or(0, |(_, real)| real.column.saturating_sub(1))
        } else {
            0
        };
        let data = self
            .text
            .as_bytes()
            .get(data_start..data_end)
            .unwrap_or_default();
        // Lines to the end of the block: miette joins the excerpts of spans whose line ranges
        // touch, so every span of a block is drawn in one excerpt, as before windowing.
        let line_count = first.block_last - from_i + 1;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            data,
            (data_start, data_end - data_start).into(),
            if context_lines_before == 0 {
                first.line
            } else {
                from.line
            },
            column,
            line_count,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(source: &Source, spans: &[Span]) -> (String, Vec<String>) {
        let (snippet, moved) = Snippet::new(source, spans);
        let texts = moved
            .iter()
            .map(|s| {
                snippet
                    .text()
                    .get(s.start as usize..s.end as usize)
                    .unwrap()
                    .to_string()
            })
            .collect();
        (snippet.text().to_string(), texts)
    }

    #[test]
    fn short_lines_are_shown_whole_with_context() {
        let source = Source::new("p", "a\nbb\ncc dd\nee\nf\n");
        let at = source.text().find("dd").unwrap();
        let (text, spans) = shown(&source, &[Span::new(at, at + 2)]);
        assert_eq!(text, "bb\ncc dd\nee\n");
        assert_eq!(spans, ["dd"]);
    }

    #[test]
    fn long_lines_are_windowed_around_the_span() {
        let line = format!("{}\"target\"{}", "x".repeat(100_000), "y".repeat(100_000));
        let source = Source::new("p", format!("{{\n{line}\n}}\n"));
        let at = source.text().find("\"target\"").unwrap();
        let (text, spans) = shown(&source, &[Span::new(at, at + 8)]);
        assert_eq!(spans, ["\"target\""]);
        let middle = text.lines().nth(1).unwrap();
        let expected = format!(
            "…{}\"target\"{}…",
            "x".repeat(CONTEXT_CHARS),
            "y".repeat(CONTEXT_CHARS)
        );
        assert_eq!(middle, expected);
        assert!(text.len() < 1000, "{}", text.len());
    }

    #[test]
    fn a_long_span_is_cut() {
        let source = Source::new("p", format!("[\"{}\"]", "z".repeat(50_000)));
        let (text, spans) = shown(&source, &[Span::new(1, 50_003)]);
        assert!(text.len() < 2 * SHORT_LINE_BYTES, "{}", text.len());
        assert_eq!(spans[0].chars().count(), SPAN_CHARS);
    }

    #[test]
    fn many_spans_on_one_long_line_each_get_a_small_window() {
        let line: String = (0..20_000).map(|i| format!("\"g{i}\",")).collect();
        let source = Source::new("p", line);
        for i in [0, 7_000, 19_999] {
            let needle = format!("\"g{i}\"");
            let at = source.text().find(&needle).unwrap();
            let (text, spans) = shown(&source, &[Span::new(at, at + needle.len())]);
            assert_eq!(spans, [needle]);
            assert!(text.len() <= 2 * SHORT_LINE_BYTES, "{}", text.len());
        }
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        let source = Source::new("p\u{1b}]0;x\u{7}", "{\"a\u{1b}[31m\u{202e}b\u{9b}\": 1}\n");
        let at = source.text().find("b").unwrap();
        let (snippet, moved) = Snippet::new(&source, &[Span::new(at, at + 1)]);
        assert_eq!(snippet.text(), "{\"a\\u{1b}[31m\\u{202e}b\\u{9b}\": 1}\n");
        assert_eq!(snippet.name(), "p\\u{1b}]0;x\\u{7}");
        let m = moved[0];
        assert_eq!(
            snippet.text().get(m.start as usize..m.end as usize),
            Some("b")
        );
        assert!(!snippet.text().chars().any(|c| c != '\n' && needs_escape(c)));
    }

    #[test]
    fn distant_spans_get_separate_blocks() {
        let text: String = (0..100).map(|i| format!("line{i}\n")).collect();
        let source = Source::new("p", text);
        let a = source.text().find("line10").unwrap();
        let b = source.text().find("line80").unwrap();
        let (text, spans) = shown(&source, &[Span::new(b, b + 6), Span::new(a, a + 6)]);
        assert_eq!(text, "line9\nline10\nline11\nline79\nline80\nline81\n");
        assert_eq!(spans, ["line80", "line10"]);
    }
}
