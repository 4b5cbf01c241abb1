//! Policy text with its name and a line index, so every span can be shown as file:line:column.

use std::sync::{Arc, OnceLock};

/// Bytes per entry of the character index: a column is counted from the nearest entry, so
/// it costs at most this many bytes of scanning however long the line.
const CHAR_INDEX_STRIDE: usize = 256;

/// A byte range `[start, end)` into a [`Source`]'s text.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// True for a zero-length span.
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// A sub-span `[from, to)` relative to this span's start, clamped to this span.
    pub fn sub(self, from: usize, to: usize) -> Span {
        let start = (self.start as usize + from).min(self.end as usize);
        let end = (self.start as usize + to).min(self.end as usize).max(start);
        Span::new(start, end)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> miette::SourceSpan {
        miette::SourceSpan::new((span.start as usize).into(), span.len())
    }
}

/// A 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in Unicode scalar values.
    pub column: usize,
}

/// The text of one policy file and its display name (a path, or `<stdin>`).
///
/// Cheap to clone: the text is shared.
#[derive(Debug, Clone)]
pub struct Source {
    name: Arc<str>,
    text: Arc<str>,
    line_starts: Arc<[usize]>,
    /// Entry `i`: how many characters start before byte `i * CHAR_INDEX_STRIDE`. Built on the
    /// first column asked for far from its line's start (a long line), shared by clones.
    char_index: Arc<OnceLock<Box<[usize]>>>,
}

impl Source {
    /// A source from a name and its (already decoded) text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        let text: String = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Source {
            name: Arc::from(name.into()),
            text: Arc::from(text),
            line_starts: Arc::from(line_starts),
            char_index: Arc::new(OnceLock::new()),
        }
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text a span covers (empty if the span is out of range).
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// Line and column of a byte offset (clamped to the text).
    ///
    /// O(log lines) to find the line, then at most `CHAR_INDEX_STRIDE` (256) bytes counted on
    /// each side: many positions on one long line do not each rescan it from its start.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = self.line_index(offset);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        LineCol {
            line: line + 1,
            column: self.chars_between(start, offset) + 1,
        }
    }

    /// Number of lines (a final line without a newline counts; an empty text has one line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The 0-based line holding byte `offset` (clamped to the text).
    pub(crate) fn line_index(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Byte range of 0-based line `line`, without its line break (`\n`, or `\r\n`).
    pub(crate) fn line_range(&self, line: usize) -> (usize, usize) {
        let len = self.text.len();
        let start = self.line_starts.get(line).copied().unwrap_or(len).min(len);
        let mut end = self
            .line_starts
            .get(line + 1)
            .map_or(len, |next| next.saturating_sub(1))
            .max(start);
        if end > start && self.text.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        (start, end)
    }

    /// Characters starting in bytes `[from, to)` (`from <= to`, both within the text).
    fn chars_between(&self, from: usize, to: usize) -> usize {
        if to.saturating_sub(from) <= 2 * CHAR_INDEX_STRIDE {
            return count_chars(self.text.as_bytes().get(from..to).unwrap_or_default());
        }
        self.chars_before(to)
            .saturating_sub(self.chars_before(from))
    }

    /// Characters starting before byte `offset`, from the character index.
    fn chars_before(&self, offset: usize) -> usize {
        let index = self.char_index.get_or_init(|| {
            self.text
                .as_bytes()
                .chunks(CHAR_INDEX_STRIDE)
                .scan(0, |before, chunk| {
                    let at = *before;
                    *before += count_chars(chunk);
                    Some(at)
                })
                .collect()
        });
        let entry = offset / CHAR_INDEX_STRIDE;
        let base = entry * CHAR_INDEX_STRIDE;
        let rest = self.text.as_bytes().get(base..offset).unwrap_or_default();
        index.get(entry).copied().unwrap_or(0) + count_chars(rest)
    }
}

/// Characters starting in `bytes` (UTF-8 bytes that are not continuation bytes), so a slice
/// may start or end inside a character.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// Whole lines around the span, found through the line index (no scan from the start of the
/// text), shown as they are. For untrusted text, render through [`crate::Diagnostic::report`]:
/// it cuts long lines to a window and escapes control characters.
impl miette::SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let start = span.offset();
        let end = start + span.len();
        if end > self.text.len() {
            return Err(miette::MietteError::OutOfBounds);
        }
        let first = self.line_index(start);
        let last = self.line_index(if end > start { end - 1 } else { start });
        let from = first.saturating_sub(context_lines_before);
        let to = (last + context_lines_after).min(self.line_count().saturating_sub(1));
        let data_start = if context_lines_before == 0 {
            start
        } else {
            self.line_starts.get(from).copied().unwrap_or(0)
        };
        let data_end = self
            .line_starts
            .get(to + 1)
            .copied()
            .unwrap_or(self.text.len())
            .max(data_start);
        let column = if context_lines_before == 0 {
            self.line_col(start).column - 1
        } else {
            0
        };
        let data = self
            .text
            .as_bytes()
            .get(data_start..data_end)
            .unwrap_or_default();
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.to_string(),
            data,
            (data_start, data_end - data_start).into(),
            if context_lines_before == 0 {
                first
            } else {
                from
            },
            column,
            to - from + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_chars() {
        let s = Source::new("p", "ab\nçd\n");
        assert_eq!(s.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(s.line_col(3), LineCol { line: 2, column: 1 });
        // 'ç' is two bytes: offset 5 is the 'd', column 2.
        assert_eq!(s.line_col(5), LineCol { line: 2, column: 2 });
        assert_eq!(s.line_col(999), LineCol { line: 3, column: 1 });
    }

    #[test]
    fn columns_on_long_lines_use_the_index() {
        // Lines of mixed one-, two- and three-byte characters, far longer than the stride.
        let line: String = "aé€".repeat(10_000);
        let text = format!("x\n{line}\n{line}");
        let s = Source::new("p", text.clone());
        for (i, (offset, _)) in text.char_indices().enumerate().step_by(997) {
            let before = text.get(..offset).unwrap();
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let expected = LineCol {
                line: before.matches('\n').count() + 1,
                column: text.get(line_start..offset).unwrap().chars().count() + 1,
            };
            assert_eq!(s.line_col(offset), expected, "char {i} at byte {offset}");
        }
        let end = text.len();
        assert_eq!(s.line_col(end).column, 30_001);
    }

    #[test]
    fn line_range_leaves_out_the_line_break() {
        let s = Source::new("p", "ab\r\ncd\n\nz");
        assert_eq!(s.line_range(0), (0, 2));
        assert_eq!(s.line_range(1), (4, 6));
        assert_eq!(s.line_range(2), (7, 7));
        assert_eq!(s.line_range(3), (8, 9));
        assert_eq!(s.line_count(), 4);
    }
}
