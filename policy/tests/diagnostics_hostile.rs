//! Diagnostics on hostile text: bidirectional control characters ("Trojan Source") and
//! invisible characters get a warning wherever they are, and rendering any diagnostic stays small, escaped and
//! panic-free however long the line or whatever control characters it holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use aclc_policy::{parse_str, Diagnostic, Options};
use common::{diagnose, expect_warning_help};
use miette::GraphicalReportHandler;

const BIDI_HELP: &str = "bidirectional control characters make text display in a different \
    order than it is read (\"Trojan Source\", CVE-2021-42574), so the policy may not say what \
    it appears to say; remove the character, or write it as a \\u escape if it is really meant";

#[test]
fn bidi_controls_are_flagged_in_strings_keys_and_comments() {
    // In a string value (a group member).
    expect_warning_help(
        "{\"groups\": {\"group:a\": [\"alice@example.com\u{202E}\"]}, \"acls\": \
         [{\"action\": \"accept\", \"src\": [\"group:a\"], \"dst\": [\"*:*\"]}]}",
        "aclc::bidi_control",
        "bidirectional control character U+202E (RIGHT-TO-LEFT OVERRIDE) in the policy",
        "\u{202E}",
        BIDI_HELP,
    );
    // In a key.
    let key = "{\"groups\": {\"group:a\u{2066}\": [\"alice@example.com\"]}}";
    let found = diagnose(key);
    assert!(
        found.iter().any(|d| d.1 == "aclc::bidi_control"
            && d.2.contains("U+2066 (LEFT-TO-RIGHT ISOLATE)")
            && d.3 == "\u{2066}"),
        "{found:?}"
    );
    // In a comment, where nothing else would look.
    expect_warning_help(
        "{\n  // admins only \u{202B}\u{200F}\n  \"acls\": []\n}\n",
        "aclc::bidi_control",
        "bidirectional control character U+200F (RIGHT-TO-LEFT MARK) in the policy",
        "\u{200F}",
        BIDI_HELP,
    );
    // The Arabic letter mark and LRM are bidi controls too; plain text is not flagged.
    let found = diagnose("{/* \u{061C} \u{200E} é € */ \"acls\": []}");
    let bidi: Vec<&str> = found
        .iter()
        .filter(|d| d.1 == "aclc::bidi_control")
        .map(|d| d.3.as_str())
        .collect();
    assert_eq!(bidi, ["\u{061C}", "\u{200E}"]);
}

const INVISIBLE_HELP: &str = "a character that shows as nothing makes two different names look \
    the same (a group named with one is another group than the one without); remove it, or \
    write it as a \\u escape if it is really meant";

#[test]
fn invisible_characters_are_flagged_and_shown_escaped() {
    // Two groups that look alike, the rule naming the one with a zero-width space.
    let text = "{\"groups\": {\"group:eng\": [\"alice@example.com\"], \
                \"group:eng\u{200B}\": [\"bob@example.com\"]}, \"acls\": \
                [{\"action\": \"accept\", \"src\": [\"group:eng\u{200B}\"], \"dst\": [\"*:*\"]}]}";
    expect_warning_help(
        text,
        "aclc::invisible_character",
        "invisible character U+200B in the policy",
        "\u{200B}",
        INVISIBLE_HELP,
    );
    let found = diagnose(text);
    // The unused group's message shows which one it is: the other is escaped.
    let unused: Vec<&String> = found
        .iter()
        .filter(|d| d.1 == "aclc::unused_group")
        .map(|d| &d.2)
        .collect();
    assert_eq!(unused, ["group \"group:eng\" is never used"]);
    // A soft hyphen and a Hangul filler are flagged; accented letters and an emoji sequence
    // with a zero-width joiner are not.
    let found = diagnose("{/* é \u{1F469}\u{200D}\u{1F4BB} */ \"hosts\": {\"a\u{AD}b\": \"10.0.0.1\", \"c\u{3164}\": \"10.0.0.2\"}}");
    let invisible: Vec<&str> = found
        .iter()
        .filter(|d| d.1 == "aclc::invisible_character")
        .map(|d| d.3.as_str())
        .collect();
    assert_eq!(invisible, ["\u{AD}", "\u{3164}"]);
    // Shown on a terminal, the character is escaped.
    assert_eq!(
        aclc_policy::text::escape("group:eng\u{200B}"),
        "group:eng\\u{200b}"
    );
    assert_eq!(
        aclc_policy::text::quote("group:eng\u{200B}"),
        "\"group:eng\\u200b\""
    );
}

#[test]
fn bidi_warnings_are_capped() {
    let comment = "\u{202E}".repeat(5000);
    let found = diagnose(&format!("{{/* {comment} */ \"acls\": []}}"));
    let bidi: Vec<&String> = found
        .iter()
        .filter(|d| d.1 == "aclc::bidi_control")
        .map(|d| &d.2)
        .collect();
    assert_eq!(bidi.len(), 100);
    assert!(
        bidi[99].ends_with("(4900 more after this one are not reported)"),
        "{}",
        bidi[99]
    );
}

/// Every diagnostic of `text`, rendered as `aclc check` does (no colour).
fn render_all(text: &str) -> (usize, String) {
    let (source, result) = parse_str("policy.hujson", text, &Options::default());
    let diagnostics: Vec<Diagnostic> = match result {
        Ok(checked) => checked.warnings,
        Err(d) => d.0,
    };
    let handler = GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    for d in &diagnostics {
        handler
            .render_report(&mut out, d.report(&source).as_ref())
            .unwrap();
    }
    (diagnostics.len(), out)
}

#[test]
fn rendering_a_minified_policy_is_small_and_does_not_panic() {
    // What `jq -c` makes of a policy with many unused groups: one line of 200 kB, most
    // warnings far past column 65,535 (where miette's own layout would panic).
    let groups: Vec<String> = (0..6000)
        .map(|i| format!("\"group:g{i}\":[\"u{i}@example.com\"]"))
        .collect();
    let text = format!(
        "{{\"groups\":{{{}}},\"acls\":[{{\"action\":\"accept\",\"src\":[\"group:g0\"],\"dst\":[\"*:*\"]}}]}}",
        groups.join(",")
    );
    assert!(text.len() > 65_536 * 2);
    let (count, out) = render_all(&text);
    assert_eq!(count, 5999);
    // Each rendering shows a window of the line, not the line.
    assert!(out.len() < count * 2000, "{} bytes", out.len());
    assert!(out.contains("group:g5999"), "the last group is shown");
    assert!(
        out.contains("[policy.hujson:1:"),
        "headers keep real positions"
    );
}

#[test]
fn rendered_reports_escape_terminal_controls() {
    // An OSC sequence (set the window title) and a CSI colour in a group name, a bell in a
    // comment: the rendering shows them escaped and never sends a raw ESC or BEL.
    let text = "{\"groups\": {\"group:\u{1b}]0;pwned\u{7}\u{1b}[31mx\": [\"alice@example.com\"]}} \
                // \u{9b}2J\u{7f}\n";
    let (count, out) = render_all(text);
    assert!(count >= 1);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(!out.contains('\u{7}'), "{out:?}");
    assert!(!out.contains('\u{9b}'), "{out:?}");
    assert!(
        out.contains("group:\\u{1b}]0;pwned\\u{7}\\u{1b}[31mx"),
        "{out}"
    );
}
