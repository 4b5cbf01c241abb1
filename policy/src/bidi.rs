//! The `aclc::bidi_control` warning: bidirectional control characters anywhere in the policy
//! (strings, keys, comments) can make it display differently from how it is read, so a
//! reviewer would approve a rule that is not the one enforced ("Trojan Source").

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::source::{Source, Span};
use crate::text::is_bidi_control;

/// The code of the warning.
pub(crate) const BIDI_CONTROL: Code = Code::BidiControl;

/// At most this many characters get a warning each; the last one counts the rest, so a file
/// made of them cannot produce millions of diagnostics.
pub(crate) const MAX_REPORTED: usize = 100;

/// A warning on each bidirectional control character of `source` (up to [`MAX_REPORTED`]).
/// One pass over the text.
pub(crate) fn warnings(source: &Source) -> Vec<Diagnostic> {
    let text = source.text();
    // Every such character is encoded with a lead byte 0xE2 (U+200E.., U+202A.., U+2066..)
    // or 0xD8 (U+061C): skip the scan of plain ASCII text quickly.
    if !text.bytes().any(|b| b == 0xE2 || b == 0xD8) {
        return Vec::new();
    }
    capped(text, is_bidi_control, warning)
}

/// `warning` on each character of `text` that `is` picks, up to [`MAX_REPORTED`]; the last
/// one counts the rest. One pass over the text.
pub(crate) fn capped(
    text: &str,
    is: fn(char) -> bool,
    warning: fn(usize, char) -> Diagnostic,
) -> Vec<Diagnostic> {
    let mut found = text.char_indices().filter(|&(_, c)| is(c));
    let mut out: Vec<Diagnostic> = found
        .by_ref()
        .take(MAX_REPORTED)
        .map(|(at, c)| warning(at, c))
        .collect();
    let more = found.count();
    if more > 0 {
        if let Some(last) = out.last_mut() {
            last.message
                .push_str(&format!(" ({more} more after this one are not reported)"));
        }
    }
    out
}

fn warning(at: usize, c: char) -> Diagnostic {
    let code = u32::from(c);
    Diagnostic::warning(
        BIDI_CONTROL,
        Span::new(at, at + c.len_utf8()),
        format!(
            "bidirectional control character U+{code:04X} ({}) in the policy",
            name(c)
        ),
    )
    .with_label(format!("U+{code:04X}"))
    .with_help(
        "bidirectional control characters make text display in a different order than it is \
         read (\"Trojan Source\", CVE-2021-42574), so the policy may not say what it appears \
         to say; remove the character, or write it as a \\u escape if it is really meant",
    )
}

/// The Unicode name of a bidirectional control character.
fn name(c: char) -> &'static str {
    match c {
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        _ => "bidirectional control",
    }
}
