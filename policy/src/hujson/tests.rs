//! Tests of the HuJSON parser: the grammar, spans, comments, and every diagnostic it can give
//! (asserting message, code, help and the underlined text, never raw offsets).

use super::{parse, CommentKind, Document, ValueKind};
use crate::diag::Diagnostic;
use crate::limits::Limits;
use crate::source::{LineCol, Source};
use crate::source_from_bytes;

fn parse_text(text: &str) -> (Source, Option<Document>, Vec<Diagnostic>) {
    let source = Source::new("test.hujson", text);
    let (doc, diagnostics) = parse(&source, &Limits::default());
    (source, doc, diagnostics)
}

/// Parses text that must be valid, returning the document.
fn ok(text: &str) -> Document {
    let (_, doc, diagnostics) = parse_text(text);
    assert!(diagnostics.is_empty(), "{text:?}: {diagnostics:#?}");
    doc.expect("a document")
}

/// Parses text that must fail with exactly one error, returning it and the source.
fn fail(text: &str) -> (Source, Diagnostic) {
    let (source, doc, mut diagnostics) = parse_text(text);
    assert_eq!(diagnostics.len(), 1, "{text:?}: {diagnostics:#?}");
    let diagnostic = diagnostics.remove(0);
    if diagnostic.code == "aclc::syntax" || diagnostic.code == "aclc::too_deep" {
        assert!(
            doc.is_none(),
            "{text:?} gave a document despite {diagnostic:?}"
        );
    }
    assert!(diagnostic.is_error());
    (source, diagnostic)
}

/// Asserts a syntax error with this message and underlined text.
fn syntax(text: &str, message: &str, underline: &str) -> Diagnostic {
    let (source, diagnostic) = fail(text);
    assert_eq!(diagnostic.code, "aclc::syntax", "{text:?}: {diagnostic:?}");
    assert_eq!(diagnostic.message, message, "{text:?}");
    assert_eq!(
        source.slice(diagnostic.span),
        underline,
        "{text:?}: {diagnostic:?}"
    );
    // Tailscale's words may quote a literal that ends with one (`invalid literal: 5.`).
    assert!(
        !diagnostic.message.ends_with('.') || diagnostic.message.starts_with("invalid literal: "),
        "message ends with a period: {}",
        diagnostic.message
    );
    diagnostic
}

fn help(diagnostic: &Diagnostic) -> &str {
    diagnostic.help.as_deref().unwrap_or("")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("valid JSON")
}

// --- the grammar --------------------------------------------------------------------------

#[test]
fn parses_plain_json_like_serde_json() {
    let text = r#"{"a": [1, -2.5e3, 0, 1E+2, 3e-1, true, false, null, "x\n\"y\""], "b": {}, "c": [],
        "d": {"e": {"f": [[]]}}, "g": "\u00e9\ud83d\ude00\/\\\b\f\r\t"}"#;
    assert_eq!(ok(text).root.to_json(), json(text));
}

#[test]
fn scalars_at_top_level() {
    for text in [
        "1", "-0", "0.5e-7", "\"s\"", "true", "false", "null", " [ ] ", "{}",
    ] {
        assert_eq!(ok(text).root.to_json(), json(text), "{text}");
    }
}

#[test]
fn every_key_and_value_has_its_span() {
    let text = "{\"acls\": [ \"a\\n\" , 12, {\"k\": null} ], \"x\":true}";
    let (source, doc, diagnostics) = parse_text(text);
    assert!(diagnostics.is_empty());
    let doc = doc.expect("a document");
    assert_eq!(source.slice(doc.root.span), text);
    let members = doc.root.as_object().expect("an object");
    assert_eq!(source.slice(members[0].key.span), "\"acls\"");
    assert_eq!(members[0].key.name, "acls");
    let acls = &members[0].value;
    assert_eq!(source.slice(acls.span), "[ \"a\\n\" , 12, {\"k\": null} ]");
    let items = acls.as_array().expect("an array");
    assert_eq!(source.slice(items[0].span), "\"a\\n\"");
    assert_eq!(items[0].as_str(), Some("a\n"));
    assert_eq!(source.slice(items[1].span), "12");
    assert!(
        matches!(&items[1].kind, ValueKind::Number(n) if n.0 == "12" && n.as_u64() == Some(12))
    );
    assert_eq!(source.slice(items[2].span), "{\"k\": null}");
    let inner = items[2].as_object().expect("an object");
    assert_eq!(source.slice(inner[0].key.span), "\"k\"");
    assert_eq!(source.slice(inner[0].value.span), "null");
    assert_eq!(source.slice(members[1].key.span), "\"x\"");
    assert_eq!(source.slice(members[1].value.span), "true");
}

#[test]
fn numbers_are_kept_as_written() {
    let doc = ok("[100000000000000000000000000001, -0.0, 1E400]");
    let items = doc.root.as_array().expect("an array");
    let written: Vec<&str> = items
        .iter()
        .map(|v| match &v.kind {
            ValueKind::Number(n) => n.0.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(written, ["100000000000000000000000000001", "-0.0", "1E400"]);
}

#[test]
fn valid_numbers() {
    for text in [
        "0",
        "-0",
        "7",
        "-7",
        "10",
        "1234567890",
        "0.0",
        "0.125",
        "-0.5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1.5e10",
        "0e0",
        "-0E-0",
        "12.34E+56",
    ] {
        let doc = ok(text);
        assert!(
            matches!(&doc.root.kind, ValueKind::Number(n) if n.0 == text),
            "{text}"
        );
        assert_eq!(doc.root.to_json(), json(text), "{text}");
    }
}

#[test]
fn invalid_numbers() {
    let cases = [
        ("[01]", "01", "leading zeros"),
        ("[-012.5]", "-012.5", "leading zeros"),
        ("[.5]", ".5", "before the decimal point"),
        ("[-.5]", "-.5", "before the decimal point"),
        ("[5.]", "5.", "decimal point must be followed by a digit"),
        (
            "[5.e3]",
            "5.e3",
            "decimal point must be followed by a digit",
        ),
        ("[+1]", "+1", "cannot start with `+`"),
        ("[0x1F]", "0x1F", "hexadecimal"),
        ("[-0X1f]", "-0X1f", "hexadecimal"),
        ("[1e]", "1e", "exponent needs digits"),
        ("[1e+]", "1e+", "exponent needs digits"),
        ("[-]", "-", "`-` must be followed by a digit"),
        ("[-Infinity]", "-Infinity", "NaN or Infinity"),
        ("[1.2.3]", "1.2.3", ""),
        ("[12abc]", "12abc", ""),
    ];
    for (text, token, help_part) in cases {
        // Tailscale's words: the literal as its parser reads it (letters, digits, `-+.`).
        let literal: String = token
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
            .collect();
        let diagnostic = syntax(text, &format!("invalid literal: {literal}"), token);
        assert!(
            help(&diagnostic).contains(help_part),
            "{text}: {diagnostic:?}"
        );
    }
    // `1_000`: Tailscale's parser reads the number `1` and stops at `_`.
    let diagnostic = syntax(
        "[1_000]",
        "invalid character '_' after array value (expecting ',' or ']')",
        "_000",
    );
    assert_eq!(help(&diagnostic), "JSON numbers cannot contain `_`");
}

#[test]
fn words_that_are_not_values() {
    let cases = [
        ("[NaN]", "NaN", "NaN or Infinity"),
        ("[Infinity]", "Infinity", "NaN or Infinity"),
        ("[True]", "True", "lowercase: `true`"),
        ("[undefined]", "undefined", "`null`"),
        ("[nul]", "nul", "double-quoted: `\"nul\"`"),
        ("[truex]", "truex", "double-quoted"),
        ("{\"a\": foo}", "foo", "double-quoted: `\"foo\"`"),
    ];
    for (text, word, help_part) in cases {
        let diagnostic = syntax(text, &format!("invalid literal: {word}"), word);
        assert!(
            help(&diagnostic).contains(help_part),
            "{text}: {diagnostic:?}"
        );
    }
}

#[test]
fn single_quotes_are_refused() {
    let quote = "invalid character '\\'' at start of value";
    let diagnostic = syntax("{\"a\": 'b c'}", quote, "'b c'");
    assert_eq!(help(&diagnostic), "JSON strings use double quotes");
    let diagnostic = syntax("{'a': 1}", quote, "'a'");
    assert_eq!(help(&diagnostic), "JSON strings use double quotes");
    // No closing quote on the line: just the quote.
    syntax("['abc\n]", quote, "'");
}

#[test]
fn unquoted_keys_are_refused() {
    let diagnostic = syntax("{\n  acls: []\n}", "invalid literal: acls", "acls");
    assert_eq!(
        help(&diagnostic),
        "object keys are double-quoted strings: `\"acls\"`"
    );
    let diagnostic = syntax(
        "{1: 2}",
        "invalid character '1' at start of object name",
        "1",
    );
    assert_eq!(
        help(&diagnostic),
        "object keys are double-quoted strings: `\"1\"`"
    );
}

#[test]
fn whitespace_is_json_whitespace_only() {
    let ok_text = " \t\r\n[ \t\r\n1 \t\r\n] \t\r\n";
    assert_eq!(ok(ok_text).root.to_json(), json("[1]"));
    for (text, shown) in [
        ("[1,\u{0B}2]", "'\\u000b'"),
        ("[1,\u{0C}2]", "'\\u000c'"),
        ("[1,\u{A0}2]", "'\\u00a0'"),
        ("[1,\u{FEFF}2]", "'\\ufeff'"),
        ("[1,\u{2028}2]", "'\\u2028'"),
    ] {
        let underline: String = text.chars().nth(3).map(String::from).unwrap_or_default();
        let message = format!("invalid character {shown} at start of value");
        let diagnostic = syntax(text, &message, &underline);
        assert!(!help(&diagnostic).is_empty(), "{text:?}");
    }
}

#[test]
fn other_unexpected_characters() {
    let diagnostic = syntax("[1, @]", "invalid character '@' at start of value", "@");
    assert_eq!(diagnostic.label, "expected a value");
    let diagnostic = syntax(
        "# comment\n{}",
        "invalid character '#' at start of value",
        "#",
    );
    assert!(help(&diagnostic).contains("`//`"));
    let diagnostic = syntax(
        "{\"a\" = 1}",
        "invalid character '=' after object name",
        "=",
    );
    assert_eq!(help(&diagnostic), "use `:` between a key and its value");
    syntax("[é]", "invalid character 'é' at start of value", "é");
    syntax(
        "[\u{0}]",
        "invalid character '\\u0000' at start of value",
        "\u{0}",
    );
}

// --- comments ----------------------------------------------------------------------------

#[test]
fn comments_are_collected_in_order() {
    let text =
        "// head\n{ /* a */ \"k\" /**/ : // after colon\n [1, /* in\n array */ 2] } // tail\n";
    let (source, doc, diagnostics) = parse_text(text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let doc = doc.expect("a document");
    assert_eq!(doc.root.to_json(), json(r#"{"k": [1, 2]}"#));
    let comments: Vec<(&str, CommentKind)> = doc
        .comments
        .iter()
        .map(|c| (source.slice(c.span), c.kind))
        .collect();
    assert_eq!(
        comments,
        [
            ("// head", CommentKind::Line),
            ("/* a */", CommentKind::Block),
            ("/**/", CommentKind::Block),
            ("// after colon", CommentKind::Line),
            ("/* in\n array */", CommentKind::Block),
            ("// tail", CommentKind::Line),
        ]
    );
}

#[test]
fn comment_edge_cases() {
    // A line comment ends at LF; its span leaves out the CR of a CRLF line.
    let (source, doc, _) = parse_text("[1, // one\r\n2]");
    let doc = doc.expect("a document");
    assert_eq!(source.slice(doc.comments[0].span), "// one");
    // A line comment at the very end needs its newline (see below).
    assert_eq!(ok("1//\n").comments.len(), 1);
    // Block comments do not nest, and `/*/` does not close itself.
    assert_eq!(ok("/* /* */ 1").root.to_json(), json("1"));
    syntax("/*/ 1", "parsing comment: unexpected EOF", "/*");
    // Comments are not recognised inside strings.
    assert_eq!(ok(r#""// not /* a */ comment""#).comments.len(), 0);
    // Comment-only and empty documents have no value.
    let diagnostic = syntax("// nothing\n", "parsing value: unexpected EOF", "");
    assert_eq!(help(&diagnostic), "a document holds exactly one JSON value");
    syntax("", "parsing value: unexpected EOF", "");
}

#[test]
fn unterminated_block_comment_points_at_its_start() {
    let text = "{\n  \"a\": 1, /* note\n  \"b\": 2\n}\n";
    let diagnostic = syntax(text, "parsing comment: unexpected EOF", "/*");
    let source = Source::new("p", text);
    assert_eq!(
        source.line_col(diagnostic.span.start as usize),
        LineCol {
            line: 2,
            column: 11
        }
    );
    assert_eq!(help(&diagnostic), "close the comment with `*/`");
}

/// Tailscale's HuJSON parser (tailscale/hujson `consumeComment`) ends a `//` comment only at
/// a LF, and fails with `parsing comment: unexpected EOF` when there is none; so does this one,
/// underlining the comment.
#[test]
fn line_comment_without_newline_at_end_is_refused() {
    let message = "parsing comment: unexpected EOF";
    let diagnostic = syntax("{\"a\": 1}\n// the end", message, "// the end");
    assert_eq!(
        help(&diagnostic),
        "end the file with a newline after the comment: a `//` comment runs to the end of its \
         line, and Tailscale's HuJSON parser refuses one that reaches the end of the file"
    );
    assert_eq!(diagnostic.label, "this comment has no newline after it");
    syntax("1//", message, "//");
    syntax("[1, // two\n2] // three", message, "// three");
    // Only a LF ends a line comment: a lone CR does not (and is not underlined at the end).
    syntax("1 // one\r", message, "// one");
    syntax("1 // one\r2\r", message, "// one\r2");
    // Before the value too: the comment comes first, as in Tailscale's parser.
    syntax("// nothing", message, "// nothing");
    // With the newline, all of these are fine.
    assert_eq!(ok("{\"a\": 1}\n// the end\n").comments.len(), 1);
    assert_eq!(ok("1 // one\r\n").comments.len(), 1);
    assert_eq!(ok("1 // one\r2\n").comments.len(), 1);
}

#[test]
fn lone_slash_is_not_a_comment() {
    let diagnostic = syntax(
        "[1 / 2]",
        "invalid character '/' after array value (expecting ',' or ']')",
        "/",
    );
    assert_eq!(help(&diagnostic), "comments start with `//` or `/*`");
    syntax("1 /", "invalid character '/' after top-level value", "/");
}

// --- trailing commas ---------------------------------------------------------------------

#[test]
fn trailing_commas_are_accepted() {
    let doc = ok("{\"a\": [1, 2, ], \"b\": {\"c\": [[],], }, }");
    assert_eq!(
        doc.root.to_json(),
        json(r#"{"a": [1, 2], "b": {"c": [[]]}}"#)
    );
    assert_eq!(ok("[1,/* c */]").root.to_json(), json("[1]"));
    assert_eq!(ok("[1 , // c\n ]").root.to_json(), json("[1]"));
}

#[test]
fn only_one_trailing_comma_and_never_alone() {
    let comma = "invalid character ',' at start of value";
    syntax("[,]", comma, ",");
    syntax("[1,,]", comma, ",");
    syntax("[1,,2]", comma, ",");
    syntax("{,}", comma, ",");
    syntax("{\"a\":1,,}", comma, ",");
    syntax("1,", "invalid character ',' after top-level value", ",");
}

// --- structure errors --------------------------------------------------------------------

#[test]
fn missing_comma_between_members_on_two_lines_points_at_the_second() {
    let text =
        "{\n  \"hosts\": {\n    \"a\": \"100.64.0.1\"\n    \"b\": \"100.64.0.2\",\n  },\n}\n";
    let (source, diagnostic) = fail(text);
    assert_eq!(diagnostic.code, "aclc::syntax");
    assert_eq!(
        diagnostic.message,
        "invalid character '\"' after object value (expecting ',' or '}')"
    );
    assert_eq!(source.slice(diagnostic.span), "\"b\"");
    assert_eq!(
        source.line_col(diagnostic.span.start as usize),
        LineCol { line: 4, column: 5 }
    );
    assert_eq!(help(&diagnostic), "add a comma between the two members");
}

#[test]
fn missing_comma_between_elements_on_two_lines_points_at_the_second() {
    let text = "[\n  \"tag:a\"\n  \"tag:b\"\n]";
    let (source, diagnostic) = fail(text);
    assert_eq!(
        diagnostic.message,
        "invalid character '\"' after array value (expecting ',' or ']')"
    );
    assert_eq!(source.slice(diagnostic.span), "\"tag:b\"");
    assert_eq!(
        source.line_col(diagnostic.span.start as usize),
        LineCol { line: 3, column: 3 }
    );
    assert_eq!(help(&diagnostic), "add a comma between the two elements");
    for (text, underline) in [
        ("[1 2]", "2"),
        ("[{} {}]", "{"),
        ("[[] []]", "["),
        ("[1 true]", "true"),
        ("[1 -5]", "-5"),
    ] {
        let first = underline.chars().next().unwrap_or(' ');
        let message =
            format!("invalid character '{first}' after array value (expecting ',' or ']')");
        let diagnostic = syntax(text, &message, underline);
        assert_eq!(help(&diagnostic), "add a comma between the two elements");
    }
    let diagnostic = syntax(
        "{\"a\": 1 \"b\": 2}",
        "invalid character '\"' after object value (expecting ',' or '}')",
        "\"b\"",
    );
    assert_eq!(help(&diagnostic), "add a comma between the two members");
}

#[test]
fn mismatched_and_unclosed_brackets() {
    let diagnostic = syntax(
        "[1, 2}",
        "invalid character '}' after array value (expecting ',' or ']')",
        "}",
    );
    assert_eq!(help(&diagnostic), "an array is closed with `]`");
    let diagnostic = syntax(
        "{\"a\": 1]",
        "invalid character ']' after object value (expecting ',' or '}')",
        "]",
    );
    assert_eq!(help(&diagnostic), "an object is closed with `}`");

    let text = "{\"a\": [1, 2\n";
    let (source, diagnostic) = fail(text);
    assert_eq!(
        diagnostic.message,
        "parsing array after value: unexpected EOF"
    );
    assert_eq!(diagnostic.label, "the input ends here");
    assert_eq!(diagnostic.related.len(), 1);
    assert_eq!(source.slice(diagnostic.related[0].span), "[");
    assert_eq!(diagnostic.related[0].message, "the array starts here");

    let (source, diagnostic) = fail("{\"a\": 1");
    assert_eq!(
        diagnostic.message,
        "parsing object after value: unexpected EOF"
    );
    assert_eq!(source.slice(diagnostic.related[0].span), "{");

    let (source, diagnostic) = fail("{\"a\": 1,");
    assert_eq!(diagnostic.message, "parsing value: unexpected EOF");
    assert_eq!(source.slice(diagnostic.related[0].span), "{");

    syntax("[1,", "parsing value: unexpected EOF", "");
    syntax("{\"a\":", "parsing value: unexpected EOF", "");
    syntax("{\"a\": }", "invalid character '}' at start of value", "}");
    syntax("]", "invalid character ']' at start of value", "]");
}

#[test]
fn missing_colon() {
    let diagnostic = syntax("{\"a\" 1}", "invalid character '1' after object name", "1");
    assert_eq!(help(&diagnostic), "add `:` between the key and its value");
    syntax("{\"a\"}", "invalid character '}' after object name", "}");
    syntax("{\"a\"", "parsing object after name: unexpected EOF", "");
}

#[test]
fn exactly_one_top_level_value() {
    let after = |c: &str| format!("invalid character '{c}' after top-level value");
    let diagnostic = syntax("{} {}", &after("{"), "{");
    assert!(help(&diagnostic).contains("exactly one value"));
    syntax("{}}", &after("}"), "}");
    syntax("1 2", &after("2"), "2");
    syntax("\"a\" \"b\"", &after("\""), "\"b\"");
    syntax("null x", &after("x"), "x");
    syntax("[] @", &after("@"), "@");
}

#[test]
fn long_tokens_are_shortened_in_messages() {
    let long = "a".repeat(100);
    let text = format!("[1 \"{long}\"]");
    let (source, diagnostic) = fail(&format!("1 \"{long}\""));
    assert_eq!(
        diagnostic.message,
        "invalid character '\"' after top-level value"
    );
    assert_eq!(source.slice(diagnostic.span).len(), 102);
    let (_, diagnostic) = fail(&text);
    assert_eq!(
        diagnostic.message,
        "invalid character '\"' after array value (expecting ',' or ']')"
    );
    // A literal is quoted whole, up to 4,096 bytes.
    let (_, diagnostic) = fail(&format!("[{}]", "x".repeat(5000)));
    assert_eq!(
        diagnostic.message,
        format!("invalid literal: {}…", "x".repeat(4096))
    );
}

// --- strings -----------------------------------------------------------------------------

#[test]
fn escapes_are_decoded() {
    let doc =
        ok(r#"["\"\\\/\b\f\n\r\t", "\u0041\u00e9\u20AC\uFFFF", "\uD83D\uDE00x", "\ud800\udc00"]"#);
    let strings: Vec<&str> = doc
        .root
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        strings,
        ["\"\\/\u{8}\u{c}\n\r\t", "Aé€\u{FFFF}", "😀x", "\u{10000}"]
    );
    assert_eq!(
        ok("\"ünïcödé 😀 \u{7f}\"").root.as_str(),
        Some("ünïcödé 😀 \u{7f}")
    );
    assert_eq!(ok(r#""\u0000""#).root.as_str(), Some("\u{0}"));
    // Long strings go through the eight-bytes-at-a-time scan: put specials at every offset.
    for n in 0..40 {
        let head = "x".repeat(n);
        let text = format!("[\"{head}\\n{head}\", \"{head}\"]");
        let value = serde_json::json!([format!("{head}\n{head}"), head]);
        assert_eq!(ok(&text).root.to_json(), value);
        syntax(
            &format!("\"{head}\u{1}{head}\""),
            &format!("invalid literal: \"{head}\\u0001{head}\""),
            "\u{1}",
        );
    }
}

#[test]
fn lone_surrogates_are_read_as_replacement_characters() {
    // As Tailscale's parser reads them (`hujson` accepts them, Go's `encoding/json` replaces
    // each half of a pair with U+FFFD, and reads what follows a high half on its own).
    for (text, value) in [
        (r#"["\ud800"]"#, "\u{fffd}"),
        (r#"["\uDBFFx"]"#, "\u{fffd}x"),
        (r#"["\ud800\n"]"#, "\u{fffd}\n"),
        (r#"["\ud800\u0041"]"#, "\u{fffd}A"),
        (r#"["\ud800\ud800"]"#, "\u{fffd}\u{fffd}"),
        (r#"["\udc00"]"#, "\u{fffd}"),
        (r#"["a\uDFFF\ud800"]"#, "a\u{fffd}\u{fffd}"),
        (r#"["\ud800\ud83d\ude00"]"#, "\u{fffd}\u{1f600}"),
    ] {
        assert_eq!(
            ok(text).root.to_json(),
            serde_json::json!([value]),
            "{text}"
        );
    }
    syntax(
        r#"["\ud800\u12"]"#,
        r#"invalid literal: "\ud800\u12""#,
        "\\u12",
    );
}

#[test]
fn line_separators_inside_line_comments_are_refused() {
    // Shown as line breaks by editors: the rule after one would look live. Tailscale's
    // parser refuses them in `//` comments (hujson's `TestLineSeparators`).
    let diagnostic = syntax(
        "{\n// temporary\u{2028}\"acls\": []\n}",
        "invalid character '\\u2028' in line comment",
        "\u{2028}",
    );
    assert!(help(&diagnostic).contains("looks like policy"));
    syntax(
        "null // x\u{2029}\n",
        "invalid character '\\u2029' in line comment",
        "\u{2029}",
    );
    // Elsewhere in comments and strings they are characters like any other.
    ok("/* a\u{2028}b */ [\"\u{2028}\"]");
}

#[test]
fn invalid_escapes() {
    // Tailscale's words: the string quoted whole; aclc's account in the label.
    let diagnostic = syntax(r#"["\x41"]"#, r#"invalid literal: "\x41""#, "\\x");
    assert_eq!(diagnostic.label, "unknown escape `\\x`");
    assert!(help(&diagnostic).contains("`\\u00XX`"));
    let diagnostic = syntax(r#"["\'"]"#, r#"invalid literal: "\'""#, "\\'");
    assert!(help(&diagnostic).contains("needs no escape"));
    let diagnostic = syntax(r#"["\a"]"#, r#"invalid literal: "\a""#, "\\a");
    assert!(help(&diagnostic).contains("`\\uXXXX`"));
    syntax("[\"\\é\"]", "invalid literal: \"\\é\"", "\\é");
    let diagnostic = syntax("[\"\\\u{1}\"]", "invalid literal: \"\\\\u0001\"", "\\\u{1}");
    assert_eq!(diagnostic.label, "unknown escape: `\\` followed by U+0001");
    let diagnostic = syntax(r#"["\u12G4"]"#, r#"invalid literal: "\u12G4""#, "\\u12G");
    assert!(help(&diagnostic).contains("four hexadecimal digits"));
    syntax(r#"["\u12"]"#, r#"invalid literal: "\u12""#, "\\u12");
    syntax(r#"["\u"]"#, r#"invalid literal: "\u""#, "\\u");
    syntax(r#"["\U0041"]"#, r#"invalid literal: "\U0041""#, "\\U");
    // Tailscale's own vector (hujson `testdata`): a `\x` escape at the top level.
    syntax(r#""\xff""#, r#"invalid literal: "\xff""#, "\\x");
}

#[test]
fn control_characters_in_strings_are_refused() {
    // Tailscale's words, the control character escaped to keep the message on one line.
    let diagnostic = syntax("{\"a\": \"x\ty\"}", "invalid literal: \"x\\ty\"", "\t");
    assert_eq!(help(&diagnostic), "write it as `\\t`");
    assert_eq!(
        diagnostic.label,
        "control character U+0009: control characters must be escaped"
    );
    let diagnostic = syntax("[\"\u{0}\"]", "invalid literal: \"\\u0000\"", "\u{0}");
    assert_eq!(help(&diagnostic), "write it as `\\u0000`");
    syntax("[\"\u{1f}\"]", "invalid literal: \"\\u001f\"", "\u{1f}");
    // DEL and C1 controls are fine in JSON.
    assert_eq!(ok("\"\u{7f}\u{85}\"").root.as_str(), Some("\u{7f}\u{85}"));
}

#[test]
fn unterminated_strings_point_at_their_start() {
    // A missing closing quote inside a line swallows up to the next quote: the error is then
    // the word after it, as in any JSON parser.
    let text = "{\n  \"acls\": [\"tag:a, \"tag:b\"],\n}";
    let (source, diagnostic) = fail(text);
    assert_eq!(
        diagnostic.message,
        "invalid character 't' after array value (expecting ',' or ']')"
    );
    assert_eq!(source.slice(diagnostic.span), "tag");
    // Tailscale's parser reads a string to its next quote, lines and all: its words quote
    // what it read (aclc points at where the string opened).
    let text = "{\n  \"a\": \"never closed,\n  \"b\": 1\n}";
    let diagnostic = syntax(
        text,
        "invalid literal: \"never closed,\\n  \"",
        "\"never closed,",
    );
    let source = Source::new("p", text);
    assert_eq!(
        source.line_col(diagnostic.span.start as usize),
        LineCol { line: 2, column: 8 }
    );
    assert!(help(&diagnostic).contains("`\\n`"));
    let eof = "parsing string: unexpected EOF";
    syntax("\"abc", eof, "\"abc");
    syntax("[\"abc\\", eof, "\"abc\\");
    syntax("[\"abc\\\"]", eof, "\"abc\\\"]");
    syntax("\"a\r\"", "invalid literal: \"a\\r\"", "\"a");
}

// --- duplicate keys ----------------------------------------------------------------------

#[test]
fn duplicate_keys_are_errors_but_the_document_is_kept() {
    let text = "{\n  \"acls\": [],\n  \"groups\": {},\n  \"acls\": [1],\n}";
    let (source, doc, diagnostics) = parse_text(text);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic.code, "aclc::duplicate_key");
    assert_eq!(diagnostic.message, "duplicate key \"acls\"");
    assert_eq!(source.slice(diagnostic.span), "\"acls\"");
    assert_eq!(source.line_col(diagnostic.span.start as usize).line, 4);
    assert_eq!(diagnostic.related.len(), 1);
    assert_eq!(diagnostic.related[0].message, "first defined here");
    assert_eq!(source.slice(diagnostic.related[0].span), "\"acls\"");
    assert_eq!(
        source
            .line_col(diagnostic.related[0].span.start as usize)
            .line,
        2
    );
    let doc = doc.expect("the document is kept");
    let keys: Vec<&str> = doc
        .root
        .as_object()
        .expect("an object")
        .iter()
        .map(|m| m.key.name.as_str())
        .collect();
    assert_eq!(keys, ["acls", "groups", "acls"]);
}

#[test]
fn duplicate_keys_compare_decoded_names_and_are_reported_in_order() {
    // Escapes are decoded before comparing; every repetition points at the first.
    let (source, _, diagnostics) =
        parse_text(r#"{"b": {"x": 1, "x": 2}, "a": 1, "\u0061": 2, "a": 3, "b": 4}"#);
    let found: Vec<(&str, &str, &str)> = diagnostics
        .iter()
        .map(|d| {
            (
                d.message.as_str(),
                source.slice(d.span),
                source.slice(d.related[0].span),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("duplicate key \"x\"", "\"x\"", "\"x\""),
            ("duplicate key \"a\"", "\"\\u0061\"", "\"a\""),
            ("duplicate key \"a\"", "\"a\"", "\"a\""),
            ("duplicate key \"b\"", "\"b\"", "\"b\""),
        ]
    );
    assert_eq!(
        diagnostics[1].related[0].span,
        diagnostics[2].related[0].span
    );
    // Keys are shown as JSON strings.
    let (_, _, diagnostics) = parse_text(r#"{"a\"b": 1, "a\"b": 2}"#);
    assert_eq!(diagnostics[0].message, r#"duplicate key "a\"b""#);
}

#[test]
fn duplicate_keys_in_large_objects() {
    // More members than the pairwise check handles: the sorting path.
    let mut text = String::from("{");
    for n in 0..50 {
        text.push_str(&format!("\"k{n}\": {n},"));
    }
    text.push_str("\"k7\": 0, \"k49\": 1, \"k7\": 2}");
    let (source, doc, diagnostics) = parse_text(&text);
    assert_eq!(
        doc.expect("a document").root.as_object().map(<[_]>::len),
        Some(53)
    );
    let found: Vec<(&str, usize, usize)> = diagnostics
        .iter()
        .map(|d| {
            (
                source.slice(d.span),
                d.span.start as usize,
                d.related[0].span.start as usize,
            )
        })
        .collect();
    assert_eq!(found.len(), 3);
    assert!(found.windows(2).all(|w| w[0].1 < w[1].1), "in source order");
    let k7 = text.find("\"k7\"").expect("k7");
    let k49 = text.find("\"k49\"").expect("k49");
    assert_eq!((found[0].0, found[0].2), ("\"k7\"", k7));
    assert_eq!((found[1].0, found[1].2), ("\"k49\"", k49));
    assert_eq!((found[2].0, found[2].2), ("\"k7\"", k7));
}

#[test]
fn duplicate_keys_before_a_syntax_error_are_reported_too() {
    let (_, doc, diagnostics) = parse_text(r#"[{"a": 1, "a": 2}, @]"#);
    assert!(doc.is_none());
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["aclc::duplicate_key", "aclc::syntax"]);
}

// --- limits ------------------------------------------------------------------------------

fn nested(depth: usize) -> String {
    let mut text = String::new();
    for n in 0..depth {
        text.push_str(if n % 2 == 0 { "[" } else { "{\"k\":" });
    }
    text.push('1');
    for n in (0..depth).rev() {
        text.push(if n % 2 == 0 { ']' } else { '}' });
    }
    text
}

#[test]
fn nesting_up_to_the_limit_is_fine() {
    let text = nested(128);
    let doc = ok(&text);
    // Walking, converting, cloning and dropping the deepest tree allowed is safe too.
    let json = doc.root.to_json();
    assert_eq!(
        serde_json::to_string(&json).map(|s| s.len()).ok(),
        Some(text.len())
    );
    let copy = doc.clone();
    assert_eq!(copy, doc);
    assert!(!format!("{doc:?}").is_empty());
}

#[test]
fn nesting_over_the_limit_is_an_error() {
    let text = nested(129);
    let (source, diagnostic) = fail(&text);
    assert_eq!(diagnostic.code, "aclc::too_deep");
    assert_eq!(
        diagnostic.message,
        "arrays and objects are nested more than 128 levels deep"
    );
    // The bracket that opens level 129 is underlined.
    assert_eq!(source.slice(diagnostic.span), "[");
    assert_eq!(
        diagnostic.span.start as usize,
        text.find('1').unwrap_or(0) - 1
    );
    assert!(help(&diagnostic).contains("at most 128 levels"));
    // Empty containers count as a level too.
    let (_, diagnostic) = fail(&format!("{}[]{}", "[".repeat(128), "]".repeat(128)));
    assert_eq!(diagnostic.code, "aclc::too_deep");
}

#[test]
fn hostile_nesting_does_not_overflow_the_stack() {
    for text in [
        "[".repeat(1_000_000),
        "{\"a\":".repeat(500_000),
        "[{\"\":".repeat(300_000),
    ] {
        let (_, diagnostic) = fail(&text);
        assert_eq!(diagnostic.code, "aclc::too_deep");
    }
    // Even with a huge limit, parsing is iterative; (only dropping recurses, so stay shallow
    // enough for that here).
    let limits = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    let source = Source::new("p", "[".repeat(1_000_000));
    let (doc, diagnostics) = parse(&source, &limits);
    assert!(doc.is_none());
    assert_eq!(diagnostics[0].message, "parsing value: unexpected EOF");
}

#[test]
fn a_custom_depth_limit() {
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let source = Source::new("p", "[[1]]");
    assert!(parse(&source, &limits).1.is_empty());
    let source = Source::new("p", "[[{}]]");
    let (doc, diagnostics) = parse(&source, &limits);
    assert!(doc.is_none());
    assert_eq!(
        diagnostics[0].message,
        "arrays and objects are nested more than 2 levels deep"
    );
    assert_eq!(source.slice(diagnostics[0].span), "{");
    let zero = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert!(parse(&Source::new("p", "1"), &zero).1.is_empty());
    assert_eq!(
        parse(&Source::new("p", "[]"), &zero).1[0].code,
        "aclc::too_deep"
    );
}

#[test]
fn size_limit() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let (source, diagnostics) = source_from_bytes("big.hujson", b"[1, 2, 3, 4, 5]", &limits);
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].code, "aclc::too_large");
    assert_eq!(
        diagnostics[0].message,
        "the policy is 15 bytes, more than the limit of 10 bytes"
    );
    assert_eq!(source.name(), "big.hujson");
    // `parse` checks the limit as well, for sources built another way.
    let (doc, diagnostics) = parse(&Source::new("p", "[1, 2, 3, 4, 5]"), &limits);
    assert!(doc.is_none());
    assert_eq!(diagnostics[0].code, "aclc::too_large");
    let (_, diagnostics) = source_from_bytes("ok.hujson", b"[1, 2, 3]", &limits);
    assert!(diagnostics.is_empty());
}

// --- bytes to text -----------------------------------------------------------------------

#[test]
fn valid_utf8_passes_through() {
    let (source, diagnostics) = source_from_bytes("p", "{\"é\": 1}".as_bytes(), &Limits::default());
    assert!(diagnostics.is_empty());
    assert_eq!(source.text(), "{\"é\": 1}");
    assert_eq!(source.name(), "p");
}

#[test]
fn byte_order_mark_is_refused() {
    let (source, diagnostics) = source_from_bytes("p", b"\xEF\xBB\xBF{}", &Limits::default());
    assert_eq!(diagnostics.len(), 1);
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic.code, "aclc::byte_order_mark");
    assert_eq!(
        diagnostic.message,
        "invalid character '\\ufeff' at start of value"
    );
    assert_eq!(source.slice(diagnostic.span), "\u{FEFF}");
    assert!(help(diagnostic).contains("UTF-8 without"));
    // Were it parsed anyway, the parser refuses the mark as well.
    let (doc, diagnostics) = parse(&source, &Limits::default());
    assert!(doc.is_none());
    assert_eq!(
        diagnostics[0].message,
        "invalid character '\\ufeff' at start of value"
    );
}

#[test]
fn invalid_utf8_is_spanned_at_the_first_bad_byte() {
    let bytes = b"{\n  \"a\": \"x\xFFy\xFE\"\n}";
    let (source, diagnostics) = source_from_bytes("p", bytes, &Limits::default());
    assert_eq!(diagnostics.len(), 1);
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic.code, "aclc::invalid_utf8");
    // Inside a string: read as U+FFFD, as Tailscale reads it, with a warning.
    assert!(!diagnostic.is_error());
    assert_eq!(
        diagnostic.message,
        "a string of the policy is not valid UTF-8: each bad byte is read as U+FFFD, as Tailscale reads it"
    );
    assert_eq!(diagnostic.label, "invalid byte 0xFF");
    assert_eq!(source.slice(diagnostic.span), "\u{FFFD}");
    assert_eq!(
        source.line_col(diagnostic.span.start as usize),
        LineCol {
            line: 2,
            column: 10
        }
    );
    // The lossy text can still be shown.
    assert_eq!(source.text(), "{\n  \"a\": \"x\u{FFFD}y\u{FFFD}\"\n}");

    // One U+FFFD per bad byte, as Go's decoder gives them.
    let (source, diagnostics) = source_from_bytes("p", b"[\"\xE2\x82\"]", &Limits::default());
    assert_eq!(diagnostics[0].label, "invalid bytes 0xE2 0x82");
    assert_eq!(source.slice(diagnostics[0].span), "\u{FFFD}");
    assert_eq!(source.text(), "[\"\u{FFFD}\u{FFFD}\"]");
    assert!(!diagnostics[0].is_error());
    // Anywhere else (a comment, an escape, between tokens): refused, as Tailscale refuses it.
    // Tailscale's words where they do not depend on what holds the byte.
    for (bytes, message) in [
        (&b"{// caf\xE9\n}"[..], "invalid UTF-8 in comment"),
        (b"{/* \xE9 */}", "invalid UTF-8 in comment"),
        (b"[\"\\\xE9\"]", "the policy is not valid UTF-8"),
        (b"[1\xE9]", "the policy is not valid UTF-8"),
        (b"[\"a\" \xE9]", "the policy is not valid UTF-8"),
        (
            b"[\"a\", \xE9]",
            "invalid character '\\xe9' at start of value",
        ),
        (b" \xFF", "invalid character '\\xff' at start of value"),
    ] {
        let (source, diagnostics) = source_from_bytes("p", bytes, &Limits::default());
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].is_error(), "{bytes:?}");
        assert_eq!(diagnostics[0].message, message, "{bytes:?}");
        assert_eq!(source.slice(diagnostics[0].span), "\u{FFFD}");
    }
    // The first bad byte outside a string is the one refused.
    let (source, diagnostics) = source_from_bytes("p", b"[\"\xE9\", \xFF]", &Limits::default());
    assert_eq!(
        diagnostics[0].message,
        "invalid character '\\xff' at start of value"
    );
    assert_eq!(
        source.line_col(diagnostics[0].span.start as usize).column,
        7
    );
    let (source, diagnostics) = source_from_bytes("p", b"[\"\xF0\x9F", &Limits::default());
    assert_eq!(
        diagnostics[0].label,
        "incomplete character at the end: 0xF0 0x9F"
    );
    assert_eq!(source.slice(diagnostics[0].span), "\u{FFFD}");
    // Both problems at once.
    let (_, diagnostics) = source_from_bytes("p", b"\xEF\xBB\xBF\xC0", &Limits::default());
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["aclc::byte_order_mark", "aclc::invalid_utf8"]);
}

// --- rendering ---------------------------------------------------------------------------

#[test]
fn diagnostics_render_with_miette() {
    let text = "{\n  \"a\": 1\n  \"b\": 2\n}";
    let (source, diagnostic) = fail(text);
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let report = diagnostic.report(&source);
    handler
        .render_report(&mut out, report.as_ref())
        .expect("rendered");
    assert!(out.contains("aclc::syntax"), "{out}");
    assert!(out.contains("test.hujson:3:3"), "{out}");
    assert!(out.contains("add a comma between the two members"), "{out}");
}

/// Tailscale's parser reads a literal as letters, digits, `.`, `+` and `-`: `true_` is `true`
/// and then an `_` after the value; `true-1` is one literal, not a value (hujson's words and
/// positions; `testdata/hujson/hujson_vectors.json` has the first from the library).
#[test]
fn words_that_begin_with_a_literal() {
    for (text, message, underline) in [
        (
            "[true_]",
            "invalid character '_' after array value (expecting ',' or ']')",
            "_",
        ),
        (
            "{\"a\": null$}",
            "invalid character '$' after object value (expecting ',' or '}')",
            "$",
        ),
        // Underlined as a word (the part a string would need quotes around).
        ("[true-1]", "invalid literal: true-1", "true"),
        ("[null.5]", "invalid literal: null.5", "null"),
        ("[truex]", "invalid literal: truex", "truex"),
    ] {
        syntax(text, message, underline);
    }
}
