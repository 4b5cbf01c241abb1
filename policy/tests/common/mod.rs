//! Helpers shared by the diagnostic tests (`diagnostics.rs`, `diagnostics_more.rs`): run a
//! policy through `parse_str` against a small tailnet and compare what comes out.
// Each test file uses only some of the helpers.
#![allow(dead_code)]

use aclc_policy::{parse_str, Context, Diagnostic, Options, Severity};

/// The tailnet the policies are checked against: domain example.com, users alice and bob.
pub fn options() -> Options {
    Options {
        context: Context {
            tailnet_domains: Some(vec!["example.com".into()]),
            user_logins: Some(vec!["alice@example.com".into(), "bob@example.com".into()]),
            synced_groups: None,
            ipv4_nodes: None,
        },
        ..Options::default()
    }
}

/// Every diagnostic of `text` as (severity, code, message, underlined text, help).
pub fn diagnose(text: &str) -> Vec<(Severity, &'static str, String, String, Option<String>)> {
    let (source, result) = parse_str("policy.hujson", text, &options());
    let diagnostics: Vec<Diagnostic> = match result {
        Ok(checked) => checked.warnings,
        Err(d) => d.0,
    };
    diagnostics
        .into_iter()
        .map(|d| {
            (
                d.severity,
                d.code.as_str(),
                d.message.clone(),
                source.slice(d.span).to_string(),
                d.help.clone(),
            )
        })
        .collect()
}

/// The errors of `text`, as (code, message, underlined text).
pub fn errors(text: &str) -> Vec<(&'static str, String, String)> {
    diagnose(text)
        .into_iter()
        .filter(|d| d.0 == Severity::Error)
        .map(|(_, code, message, underline, _)| (code, message, underline))
        .collect()
}

/// Assert that `text` has exactly one error, with this code, message and underlined text.
#[track_caller]
pub fn expect_error(text: &str, code: &str, message: &str, underline: &str) {
    let found = errors(text);
    let found: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|(c, m, u)| (*c, m.as_str(), u.as_str()))
        .collect();
    assert_eq!(found, vec![(code, message, underline)], "policy: {text}");
}

/// Assert a warning with this code and underlined text, and no errors.
#[track_caller]
pub fn expect_warning(text: &str, code: &str, message: &str, underline: &str) {
    let all = diagnose(text);
    assert!(
        all.iter().all(|d| d.0 == Severity::Warning),
        "unexpected errors: {all:?}"
    );
    assert!(
        all.iter()
            .any(|d| d.1 == code && d.2 == message && d.3 == underline),
        "no warning {code} {message:?} on {underline:?} in {all:?}"
    );
}

/// Assert that `text` has exactly one error, and that it has this code, message, underlined
/// text and help (`None`: no help).
#[track_caller]
pub fn expect_error_help(
    text: &str,
    code: &str,
    message: &str,
    underline: &str,
    help: Option<&str>,
) {
    let found: Vec<_> = diagnose(text)
        .into_iter()
        .filter(|d| d.0 == Severity::Error)
        .collect();
    let found: Vec<(&str, &str, &str, Option<&str>)> = found
        .iter()
        .map(|d| (d.1, d.2.as_str(), d.3.as_str(), d.4.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![(code, message, underline, help)],
        "policy: {text}"
    );
}

/// Assert no errors and a warning with this code, message, underlined text and help (other
/// warnings, such as unused definitions, may come with it).
#[track_caller]
pub fn expect_warning_help(text: &str, code: &str, message: &str, underline: &str, help: &str) {
    let all = diagnose(text);
    assert!(
        all.iter().all(|d| d.0 == Severity::Warning),
        "unexpected errors: {all:?}"
    );
    assert!(
        all.iter().any(|d| d.1 == code
            && d.2 == message
            && d.3 == underline
            && d.4.as_deref() == Some(help)),
        "no warning {code} {message:?} on {underline:?} with help {help:?} in {all:?}"
    );
}

/// The codes of every diagnostic of `text`.
pub fn codes(text: &str) -> Vec<&'static str> {
    diagnose(text).into_iter().map(|d| d.1).collect()
}

/// Two tags owned by alice, for rules to refer to.
pub const TAGS: &str =
    r#""tagOwners": {"tag:server": ["alice@example.com"], "tag:client": ["alice@example.com"]}"#;

/// A policy with one ACL rule and [`TAGS`].
pub fn acl(rule: &str) -> String {
    format!(r#"{{"acls": [{rule}], {TAGS}}}"#)
}

/// A policy with one grant and [`TAGS`].
pub fn grant(rule: &str) -> String {
    format!(r#"{{"grants": [{rule}], {TAGS}}}"#)
}

/// A policy with one SSH rule and [`TAGS`].
pub fn ssh(rule: &str) -> String {
    format!(r#"{{"ssh": [{rule}], {TAGS}}}"#)
}
