//! Tests of the formatter: hujson's own vectors, then behaviours one at a time.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::format;
use crate::{Limits, Source};

fn fmt(text: &str) -> String {
    match format(&Source::new("test.hujson", text), &Limits::default()) {
        Ok(out) => out,
        Err(d) => panic!("{text:?}: {d:?}"),
    }
}

fn fails(text: &str) -> crate::Diagnostic {
    match format(&Source::new("test.hujson", text), &Limits::default()) {
        Ok(out) => panic!("{text:?} formatted as {out:?}"),
        Err(d) => {
            assert_eq!(d.0.len(), 1, "{d:?}");
            d.0.into_iter().next().unwrap()
        }
    }
}

/// Asserts that `input` formats as `want`, and that `want` is left as it is.
#[track_caller]
fn check(input: &str, want: &str) {
    assert_eq!(fmt(input), want, "formatting {input:?}");
    assert_eq!(fmt(want), want, "formatting the output again");
}

/// The input/output pairs of hujson's own tests (`format_test.go`, `testdataFormat`, in
/// github.com/tailscale/hujson), transcribed as data in `testdata/hujson/format_vectors.json`.
#[test]
fn hujson_format_test_vectors() {
    let text = include_str!("../../../../testdata/hujson/format_vectors.json");
    let file: serde_json::Value = serde_json::from_str(text).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 39);
    for vector in vectors {
        check(
            vector["in"].as_str().unwrap(),
            vector["want"].as_str().unwrap(),
        );
    }
}

// The expected outputs below are what hujson's Format (module version
// v0.0.0-20260727124030-b80ff77dac4f) prints for each input, checked by running it.

#[test]
fn empty_containers_lose_whitespace_but_keep_comments() {
    check("{ }", "{}\n");
    check("[\n\n]", "[]\n");
    check("{ /* c */ }", "{ /* c */ }\n");
    check("[\n// c\n]", "[\n\t// c\n]\n");
}

#[test]
fn a_newline_inside_expands_the_container_with_tabs() {
    check("{\"a\":1,\n\"b\":2,}", "{\n\t\"a\": 1,\n\t\"b\": 2,\n}\n");
    check(
        "{\"a\": {\"b\": [1,\n2],},}",
        "{\"a\": {\"b\": [\n\t1,\n\t2,\n]}}\n",
    );
}

#[test]
fn plain_json_stays_plain_json() {
    // No trailing comma is added unless the input already used HuJSON.
    check("{\"a\": [1,\n2]}", "{\"a\": [\n\t1,\n\t2\n]}\n");
    check(
        "// c\n{\"a\": [1,\n2]}",
        "// c\n{\"a\": [\n\t1,\n\t2,\n]}\n",
    );
}

#[test]
fn one_line_containers_lose_their_trailing_comma() {
    check("[1, 2,]", "[1, 2]\n");
    check("{\"a\":1,}", "{\"a\": 1}\n");
    // ... unless comments surround the comma.
    check("[1 /*a*/, /*b*/]", "[1 /*a*/ , /*b*/ ]\n");
}

#[test]
fn lines_over_80_bytes_expand() {
    let ten = "\"aaaaaaaaaa\"";
    let input = format!("[{}]", [ten; 8].join(","));
    let want = format!("[\n\t{}\n]\n", [ten; 8].join(",\n\t"));
    check(&input, &want);
    // Widths count `, ` after every element, the last included: 5 fit in 80 bytes, 6 do not.
    check(
        &format!("[{}]", [ten; 5].join(",")),
        &format!("[{}]\n", [ten; 5].join(", ")),
    );
    let want = format!("[\n\t{}\n]\n", [ten; 6].join(",\n\t"));
    check(&format!("[{}]", [ten; 6].join(",")), &want);
}

#[test]
fn values_on_consecutive_lines_are_aligned_and_a_blank_line_starts_a_new_run() {
    check(
        "{\"a\":1,\n\"bbb\":2}",
        "{\n\t\"a\":   1,\n\t\"bbb\": 2\n}\n",
    );
    check(
        "{\"a\":1,\n\n\n\n\"bbb\":2,\n\"cc\":3}",
        "{\n\t\"a\": 1,\n\n\t\"bbb\": 2,\n\t\"cc\":  3\n}\n",
    );
    // A member spanning lines ends a run; line comments are not aligned.
    check(
        "{\"x\": 1, // x\n\"long_name\": 2, // long\n\"y\": {\"z\": 1,\n\"zz\": 2}, \"w\": 3}",
        "{\n\t\"x\":         1, // x\n\t\"long_name\": 2, // long\n\t\"y\": {\n\t\t\"z\":  1,\n\t\t\"zz\": 2,\n\t},\n\t\"w\": 3,\n}\n",
    );
    check(
        "[1, // one\n2, // two\n3]",
        "[\n\t1, // one\n\t2, // two\n\t3,\n]\n",
    );
}

#[test]
fn comments_everywhere_are_kept_with_one_space_around_them() {
    check(
        "{/*a*/\"k\"/*b*/:/*c*/1/*d*/,/*e*/}",
        "{ /*a*/ \"k\" /*b*/ : /*c*/ 1 /*d*/ , /*e*/ }\n",
    );
    check(
        "{\n/*a*/\"k\"/*b*/:/*c*/1/*d*/,/*e*/\n}",
        "{\n\t/*a*/ \"k\" /*b*/ : /*c*/ 1 /*d*/ , /*e*/\n}\n",
    );
    // A line comment after the colon puts the value on the next line, indented twice.
    check("{\"a\": // why\n1}", "{\"a\": // why\n\t\t1}\n");
}

#[test]
fn multi_line_block_comments_are_reindented() {
    check(
        "{\n    /*\n     * one\n     * two\n     */\n    \"a\": 1\n}",
        "{\n\t/*\n\t * one\n\t * two\n\t */\n\t\"a\": 1,\n}\n",
    );
}

#[test]
fn the_document_starts_at_its_first_comment_and_ends_with_one_newline() {
    check(
        "\n\n// head\n\n\n{}  \n\n// tail   \n\n",
        "// head\n\n{}\n\n// tail\n",
    );
    check("{} ", "{}\n");
    check("null", "null\n");
}

#[test]
fn crlf_line_ends_become_lf_and_a_lone_cr_a_space() {
    check(
        "{\r\n  \"a\": 1,\r\n  \"bb\": 2\r\n}\r\n",
        "{\n\t\"a\":  1,\n\t\"bb\": 2\n}\n",
    );
    check(
        "// a\r comment with a lone CR\n[]",
        "// a  comment with a lone CR\n[]\n",
    );
}

#[test]
fn strings_with_escapes_get_one_spelling_and_others_are_kept() {
    check(
        r#"["\u0041\/", "é", "\u00e9", "a\"b", "\u001F", "\ud83d\ude00", "\b\f\n\r\t\u0000"]"#,
        "[\"A/\", \"é\", \"é\", \"a\\\"b\", \"\\u001f\", \"😀\", \"\\b\\f\\n\\r\\t\\u0000\"]\n",
    );
    check(r#"{"k\u0065y": "v"}"#, "{\"key\": \"v\"}\n");
    // Without a backslash a string is kept byte for byte.
    check(
        "[\"\u{7f}\u{2028}\u{feff}\"]",
        "[\"\u{7f}\u{2028}\u{feff}\"]\n",
    );
}

#[test]
fn numbers_are_kept_as_written() {
    check("[1.0E+2, -0, 1e400, 0.10]", "[1.0E+2, -0, 1e400, 0.10]\n");
}

#[test]
fn nesting_stays_on_one_line_when_it_fits() {
    check(
        "{\"a\": {\"b\": {\"c\": [1, {\"d\": 2}]}}}",
        "{\"a\": {\"b\": {\"c\": [1, {\"d\": 2}]}}}\n",
    );
    check(
        "{\"acls\": [\n{\"action\": \"accept\", \"src\": [\"group:eng\"], \"dst\": [\"tag:web:443\"]},\n]}",
        "{\"acls\": [\n\t{\"action\": \"accept\", \"src\": [\"group:eng\"], \"dst\": [\"tag:web:443\"]},\n]}\n",
    );
}

#[test]
fn duplicate_keys_and_invalid_policies_format_like_any_document() {
    check("{\"a\": 1, \"a\": 2}", "{\"a\": 1, \"a\": 2}\n");
    check(
        "{\"acls\": \"not a list\",\n\"bogus\": true}",
        "{\n\t\"acls\":  \"not a list\",\n\t\"bogus\": true\n}\n",
    );
}

#[test]
fn syntax_errors_are_spanned_diagnostics() {
    let d = fails("{\"a\" 1}");
    assert_eq!(d.code, "aclc::syntax");
    assert_eq!((d.span.start, d.span.end), (5, 6));
    assert_eq!(fails("[1, 2").code, "aclc::syntax");
    assert_eq!(fails("{} // no newline").code, "aclc::syntax");
    assert_eq!(fails("").code, "aclc::syntax");
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(fails(&deep).code, "aclc::too_deep");
}

#[test]
fn the_example_policies_are_formatted_already_or_become_so() {
    for name in ["policy.hujson", "invalid.hujson"] {
        let path = format!("{}/../testdata/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let once = fmt(&text);
        assert_eq!(fmt(&once), once, "{name}");
    }
}
