//! Quoting and escaping, in one place: policy text quoted in messages the way Go's `%q`
//! quotes it (so messages match Tailscale's), and text made safe to print on a terminal
//! (control, bidirectional and invisible characters escaped, so a policy cannot send escape
//! sequences, reorder what a reviewer reads or hide a difference between two names).

use std::borrow::Cow;

/// Marks text cut from a long line.
pub(crate) const CUT: &str = "…";

/// `s` in double quotes, escaped as Go's `%q` does: quotes and backslashes, `\n`, `\t`, `\r`,
/// and other control, bidirectional or invisible characters as `\uXXXX`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || is_bidi_control(c) || is_invisible(c) => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True for the bidirectional formatting characters that can make text display in another
/// order than it is read ("Trojan Source", CVE-2021-42574): the embeddings and overrides
/// U+202A..U+202E, the isolates U+2066..U+2069, and the marks U+200E, U+200F and U+061C.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// True for characters that show as nothing, so that names differing by one look the same
/// (`group:eng` and `group:eng` with a zero-width space): the zero-width space and
/// non-joiner, the word joiner and invisible operators, the byte order mark inside text, the
/// soft hyphen, the combining grapheme joiner, the Hangul fillers, the Khmer inherent
/// vowels, the Mongolian variation selectors and vowel separator, the shorthand format
/// controls and the tag characters. The zero-width joiner and the variation selectors are
/// not among them: emoji sequences are made of them.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{2060}'..='\u{2064}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// True for characters shown escaped on a terminal: C0 controls other than tab, DEL, C1
/// controls, bidirectional controls and invisible characters.
pub fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi_control(c) || is_invisible(c)
}

/// `text` safe to print on a terminal: each character of [`needs_escape`] written as
/// `\u{hex}` (ESC is `\u{1b}`), everything else unchanged.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// `text` cut after `max_chars` characters (with `…`), unescaped.
pub fn truncate(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}{CUT}", text.get(..cut).unwrap_or_default())),
    }
}

/// `text` on one line: every whitespace run (comments' line breaks too) becomes one space,
/// then [`truncate`]d to `max_chars` — how a rule is quoted in reports.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&joined, max_chars).into_owned()
}

/// [`escape`], cut after `max_chars` characters of `text` (with `…`).
pub fn escape_at_most(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => escape(text),
        Some((cut, _)) => {
            let kept = text.get(..cut).unwrap_or_default();
            Cow::Owned(format!("{}{CUT}", escape(kept)))
        }
    }
}

pub(crate) fn push_escaped(out: &mut String, c: char) {
    if needs_escape(c) {
        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_at_most_cuts_and_escapes() {
        assert_eq!(escape_at_most("abc", 5), "abc");
        assert_eq!(escape_at_most("a\u{7f}bcdef", 3), "a\\u{7f}b…");
        assert_eq!(escape("tab\tok"), "tab\tok");
        assert_eq!(escape("\u{200f}\u{61c}"), "\\u{200f}\\u{61c}");
    }

    #[test]
    fn quote_as_go_does() {
        assert_eq!(quote("tag:web"), "\"tag:web\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ny\t"), "\"x\\ny\\t\"");
        assert_eq!(quote("\u{1b}[2J"), "\"\\u001b[2J\"");
        assert_eq!(quote("evil\u{202e}"), "\"evil\\u202e\"");
        assert_eq!(quote("café"), "\"café\"");
    }
}
