//! The list of diagnostic codes (`aclc_policy::Code`) against what the checker does: every
//! code's example makes it say that code, and `docs/diagnostics.md`, the table of every code
//! with its message, meaning and example, is exactly what this list generates (run with
//! `ACLC_UPDATE_DOCS=1` to rewrite it after changing the list).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::Path;

use aclc_policy::code::Example;
use aclc_policy::{parse, source_from_bytes, Code, Context, Diagnostic, Options, Severity};

/// The documentation's example tailnet.
fn options() -> Options {
    Options {
        context: Context {
            tailnet_domains: Some(vec!["example.com".into()]),
            user_logins: Some(vec!["alice@example.com".into(), "bob@example.com".into()]),
            synced_groups: Some(Vec::new()),
            ipv4_nodes: Some(2),
        },
        ..Options::default()
    }
}

/// What checking `bytes` says.
fn diagnostics(bytes: &[u8]) -> Vec<Diagnostic> {
    let options = options();
    let (source, found) = source_from_bytes("policy.hujson", bytes, &options.limits);
    if !found.is_empty() {
        return found;
    }
    match parse(&source, &options) {
        Ok(checked) => checked.warnings,
        Err(found) => found.0,
    }
}

/// The first diagnostic with `code` that the example of `code` produces.
fn example_diagnostic(code: Code) -> Option<Diagnostic> {
    let bytes = match code.doc().example {
        Example::Policy(text) => text.as_bytes(),
        Example::Bytes(bytes) => bytes,
        Example::Described(_) => return None,
    };
    let found = diagnostics(bytes);
    Some(
        found
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("the example of {code} says {found:?}"))
            .clone(),
    )
}

#[test]
fn every_example_says_its_code() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for &code in Code::ALL {
        match std::panic::catch_unwind(|| example_diagnostic(code)) {
            Ok(Some(_)) => checked += 1,
            Ok(None) => {}
            Err(_) => wrong.push(code),
        }
    }
    assert!(
        wrong.is_empty(),
        "examples that do not say their code: {wrong:?}"
    );
    assert!(checked > 80, "only {checked} examples ran");
}

#[test]
fn codes_have_unique_names_and_round_trip_through_serde() {
    let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "two codes share a name");
    for &code in Code::ALL {
        assert!(code.as_str().starts_with("aclc::"));
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), code);
        assert_eq!(code.as_str().parse::<Code>().unwrap(), code);
    }
    assert!(serde_json::from_str::<Code>("\"aclc::no_such_code\"").is_err());
}

/// `text` as Markdown inline code, fenced with more backticks than it contains.
fn code_span(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{fence}{text}{fence}")
    } else {
        format!("{fence} {text} {fence}")
    }
}

/// `|` and line breaks would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The generated documentation.
fn generate() -> String {
    let mut out = String::from(
        "# Diagnostic codes\n\n\
         Every code `aclc check` (and `compile`, `test`) can report, generated from\n\
         `policy/src/code.rs` by `policy/tests/codes.rs` (`ACLC_UPDATE_DOCS=1 cargo test -p\n\
         aclc-policy --test codes` rewrites it; the test fails when it is out of date). The\n\
         message is what the example produces, checked against a tailnet with the domain\n\
         `example.com` and the users `alice@example.com` and `bob@example.com`. Where Tailscale\n\
         has a message for the problem, the message is Tailscale's text.\n\n\
         | code | severity | message (from the example) | meaning | example |\n\
         |---|---|---|---|---|\n",
    );
    for &code in Code::ALL {
        let doc = code.doc();
        let (severity, message, example) = match (example_diagnostic(code), doc.example) {
            (Some(d), Example::Policy(text)) => (
                match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                code_span(&d.message),
                code_span(text),
            ),
            (Some(d), Example::Bytes(bytes)) => (
                d.severity.as_str(),
                code_span(&d.message),
                format!("bytes {}", code_span(&bytes.escape_ascii().to_string())),
            ),
            (_, Example::Described(how)) => ("", String::new(), how.to_string()),
            _ => unreachable!(),
        };
        writeln!(
            out,
            "| `{}` | {severity} | {} | {} | {} |",
            code.as_str(),
            cell(&message),
            cell(doc.meaning),
            cell(&example)
        )
        .unwrap();
    }
    out
}

#[test]
fn docs_table_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let generated = generate();
    if std::env::var_os("ACLC_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/diagnostics.md is out of date: run ACLC_UPDATE_DOCS=1 cargo test -p aclc-policy --test codes"
    );
}

/// Diagnostics are data: the library's types round-trip through serde, and the located form
/// is exactly the JSON `aclc check --format json` prints for a diagnostic.
#[test]
fn diagnostics_round_trip_through_serde() {
    let text = "{\"acls\": [{\"action\": \"accept\", \"src\": [\"tag:web\"], \"dst\": [\"*:*\"]}]}";
    let (source, result) = aclc_policy::parse_str("policy.hujson", text, &options());
    let found = result.unwrap_err().0;
    let json = serde_json::to_string(&found).unwrap();
    let back: Vec<Diagnostic> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, found);
    let located = serde_json::to_value(found[0].locate(&source)).unwrap();
    assert_eq!(
        located,
        serde_json::json!({
            "severity": "error", "code": "aclc::undefined_tag",
            "message": "src=tag not found: \"tag:web\"",
            "help": "define it in \"tagOwners\", e.g. \"tagOwners\": {\"tag:web\": [\"autogroup:admin\"]}",
            "file": "policy.hujson", "line": 1, "column": 41, "end_line": 1, "end_column": 48
        })
    );
}
