//! The primary text of each syntax error, as Tailscale's HuJSON parser (`tailscale/hujson`)
//! words it for the same input (`invalid character ',' at start of value`, `invalid literal:
//! +1000`, `parsing string: unexpected EOF` ...), so the message people search for is the one
//! Tailscale prints; aclc's own account (what was expected, how to fix it) is the label and
//! the help. Found from what Tailscale's parser reads at the error, not from aclc's tokens:
//! its literals are runs of `-+.`, ASCII letters and digits; a string runs to its first
//! unescaped quote, lines and all.

use super::errors::Expected;
use super::parser::scan_number;

/// The longest literal a message quotes whole (Tailscale's parser quotes any length; a
/// string left open can hold the rest of a 16 MiB file).
const QUOTED: usize = 4096;

/// Tailscale's text for what is at `at` (trivia skipped), which is not what `expected`
/// wanted.
pub(super) fn unexpected(bytes: &[u8], at: usize, expected: Expected) -> String {
    let rest = bytes.get(at..).unwrap_or_default();
    // Inside a literal (`1x`, `truex`): Tailscale's parser reads the whole run as one.
    let run_start = (0..at)
        .rev()
        .take_while(|&i| bytes.get(i).copied().is_some_and(is_literal_byte))
        .last();
    if let (Some(start), Some(&b)) = (run_start, rest.first()) {
        if is_literal_byte(b) {
            return invalid_literal(literal_run(bytes, start));
        }
    }
    let Some(&first) = rest.first() else {
        return match expected {
            Expected::Value | Expected::Key { .. } => "parsing value: unexpected EOF",
            Expected::Colon => "parsing object after name: unexpected EOF",
            Expected::ObjectComma { .. } => "parsing object after value: unexpected EOF",
            Expected::ArrayComma { .. } => "parsing array after value: unexpected EOF",
            Expected::End => "unexpected EOF",
        }
        .to_owned();
    };
    match expected {
        Expected::Value => value_start(bytes, at),
        Expected::Key { .. } => match first {
            // A value, read whole, that is not a name.
            b'{' | b'[' => invalid_character(rest, "at start of object name"),
            _ => {
                let lit = literal_run(bytes, at);
                if lit.is_empty() {
                    invalid_character(rest, "at start of value")
                } else if is_valid_literal(lit) {
                    invalid_character(rest, "at start of object name")
                } else {
                    invalid_literal(lit)
                }
            }
        },
        Expected::Colon => invalid_character(rest, "after object name"),
        Expected::ObjectComma { .. } => {
            invalid_character(rest, "after object value (expecting ',' or '}')")
        }
        Expected::ArrayComma { .. } => {
            invalid_character(rest, "after array value (expecting ',' or ']')")
        }
        Expected::End => invalid_character(rest, "after top-level value"),
    }
}

/// Tailscale's text for a malformed number starting at `start` (where a value starts).
pub(super) fn invalid_number(bytes: &[u8], start: usize) -> String {
    value_start(bytes, start)
}

/// Tailscale's text for a string opened at `open` that is not valid JSON (a control
/// character, a bad escape, a line break, no closing quote): the string quoted whole up to
/// its first unescaped quote, or the end of the input reached before one.
pub(super) fn invalid_string(bytes: &[u8], open: usize) -> String {
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return invalid_literal(bytes.get(open..=i).unwrap_or_default()),
            _ => {}
        }
    }
    "parsing string: unexpected EOF".to_owned()
}

/// What is wrong where a value starts: `}` or `]`, a character no value starts with, or a
/// literal that is not one.
fn value_start(bytes: &[u8], at: usize) -> String {
    let rest = bytes.get(at..).unwrap_or_default();
    let lit = literal_run(bytes, at);
    if lit.is_empty() {
        invalid_character(rest, "at start of value")
    } else {
        invalid_literal(lit)
    }
}

/// `-`, `+`, `.`, ASCII letters and digits: what Tailscale's parser reads as one literal.
fn is_literal_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

fn literal_run(bytes: &[u8], start: usize) -> &[u8] {
    let rest = bytes.get(start..).unwrap_or_default();
    let len = rest.iter().take_while(|&&b| is_literal_byte(b)).count();
    rest.get(..len).unwrap_or_default()
}

/// `null`, `true`, `false` or a JSON number.
fn is_valid_literal(lit: &[u8]) -> bool {
    matches!(lit, b"null" | b"true" | b"false") || scan_number(lit, 0) == Some(lit.len())
}

/// `invalid literal: LITERAL`, the literal as read; its control characters (a string's line
/// break, a tab) escaped, so the message stays on one line.
fn invalid_literal(lit: &[u8]) -> String {
    let shown = lit.get(..QUOTED).unwrap_or(lit);
    let more = if lit.len() > QUOTED { "…" } else { "" };
    let mut out = String::from("invalid literal: ");
    for c in String::from_utf8_lossy(shown).chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push_str(more);
    out
}

/// `invalid character 'c' WHERE`, the character quoted as Go quotes a rune.
fn invalid_character(rest: &[u8], place: &str) -> String {
    format!("invalid character {} {place}", quote_first(rest))
}

/// The first character of `rest` as Go's `%q` shows a rune (`','`, `'\''`, `'💩'`), or its
/// escape when not printable (`'\u2028'`, `'\U00101234'`), or `'\xff'` for a byte that
/// starts no UTF-8 character.
fn quote_first(rest: &[u8]) -> String {
    let head = rest.get(..rest.len().min(4)).unwrap_or_default();
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => {
            std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default()
        }
    };
    let Some(c) = valid.chars().next() else {
        return format!("'\\x{:02x}'", rest.first().copied().unwrap_or(0));
    };
    match c {
        '\'' => "'\\''".to_owned(),
        '\\' => "'\\\\'".to_owned(),
        _ if printable(c) => format!("'{c}'"),
        _ if u32::from(c) <= 0xFFFF => format!("'\\u{:04x}'", u32::from(c)),
        _ => format!("'\\U{:08x}'", u32::from(c)),
    }
}

/// Go's `unicode.IsPrint`, as far as the standard library tells: not a control, not a space
/// other than U+0020, not a format character, not private use, not a noncharacter
/// (unassigned code points are taken as printable).
fn printable(c: char) -> bool {
    let n = u32::from(c);
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(n,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(n, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    let noncharacter = matches!(n, 0xFDD0..=0xFDEF) || n & 0xFFFE == 0xFFFE;
    !(format || private || noncharacter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_quoted_as_go_quotes_runes() {
        assert_eq!(quote_first(b","), "','");
        assert_eq!(quote_first(b"'x"), "'\\''");
        assert_eq!(quote_first(b"\\"), "'\\\\'");
        assert_eq!(quote_first("💩".as_bytes()), "'💩'");
        assert_eq!(quote_first("\u{2028}".as_bytes()), "'\\u2028'");
        assert_eq!(quote_first("\u{ffff}".as_bytes()), "'\\uffff'");
        assert_eq!(quote_first("\u{101234}".as_bytes()), "'\\U00101234'");
        assert_eq!(quote_first(b"\xff"), "'\\xff'");
        assert_eq!(quote_first("\u{feff}x".as_bytes()), "'\\ufeff'");
        assert_eq!(quote_first("é".as_bytes()), "'é'");
        assert_eq!(quote_first(b"\x00"), "'\\u0000'");
    }

    #[test]
    fn literals_and_strings() {
        assert_eq!(invalid_number(b"+1000", 0), "invalid literal: +1000");
        assert_eq!(invalid_number(b"[1.5.2]", 1), "invalid literal: 1.5.2");
        assert_eq!(
            invalid_string(br#""\xff""#, 0),
            r#"invalid literal: "\xff""#
        );
        assert_eq!(
            invalid_string(br#""\"\\\u0022"#, 0),
            "parsing string: unexpected EOF"
        );
        assert_eq!(
            invalid_string(b"\"a\nb\" ", 0),
            "invalid literal: \"a\\nb\""
        );
    }
}
