//! The `aclc::invisible_character` warning: characters that take no room on screen (a
//! zero-width space, a soft hyphen, a Hangul filler ...) make two different names look alike,
//! so a rule can name a group, tag or host that is not the one it appears to name.

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::source::{Source, Span};
use crate::text::is_invisible;

/// A warning on each invisible character of `source` (up to
/// [`crate::bidi::MAX_REPORTED`]). One pass over the text, none for ASCII text.
pub(crate) fn warnings(source: &Source) -> Vec<Diagnostic> {
    let text = source.text();
    if text.is_ascii() {
        return Vec::new();
    }
    crate::bidi::capped(text, is_invisible, warning)
}

fn warning(at: usize, c: char) -> Diagnostic {
    let code = u32::from(c);
    Diagnostic::warning(
        Code::InvisibleCharacter,
        Span::new(at, at + c.len_utf8()),
        format!("invisible character U+{code:04X} in the policy"),
    )
    .with_label(format!("U+{code:04X}"))
    .with_help(
        "a character that shows as nothing makes two different names look the same (a group \
         named with one is another group than the one without); remove it, or write it as a \
         \\u escape if it is really meant",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn each_invisible_character_is_reported_where_it_is() {
        let text = "{\"groups\": {\"group:eng\u{200B}\": [], \"group:\u{AD}ops\": []}} // \u{1F469}\u{200D}\u{1F4BB}\n";
        let source = Source::new("p.hujson", text);
        let found = warnings(&source);
        assert_eq!(found.len(), 2, "{found:?}");
        let zwsp = text.find('\u{200B}').unwrap();
        assert_eq!(found[0].span, Span::new(zwsp, zwsp + 3));
        assert_eq!(found[0].message, "invisible character U+200B in the policy");
        assert_eq!(found[1].message, "invisible character U+00AD in the policy");
        // A zero-width joiner inside an emoji sequence, as comments have them, is no warning.
        assert!(warnings(&Source::new("p", "{} // \u{1F469}\u{200D}\u{1F4BB}\n")).is_empty());
        assert!(warnings(&Source::new("p", "{\"groups\": {}}")).is_empty());
    }

    #[test]
    fn a_flood_is_counted_not_listed() {
        let text = format!("{{\"hosts\": {{\"h\": \"{}\"}}}}", "\u{200B}".repeat(1000));
        let found = warnings(&Source::new("p", text));
        let max = crate::bidi::MAX_REPORTED;
        assert_eq!(found.len(), max);
        assert!(found[max - 1]
            .message
            .ends_with("(900 more after this one are not reported)"));
    }
}
