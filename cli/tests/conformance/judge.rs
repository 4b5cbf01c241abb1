//! How `check.py` judges one run of `aclc`, transcribed function by function
//! (`check_verdict`, the compile branch of `run_case`) so that the harness passes exactly the
//! cases `check.py` passes. The node comparison (`compare_node` and its normalisations) is
//! shared with the library harnesses, in `aclc_testkit::corpus::compare`.

use aclc_testkit::corpus::compare::{compare_nodes, Problem};
use serde_json::Value;

/// `check_verdict`: `aclc check` is scored on its verdict and message only.
pub(crate) fn check_verdict(expect: &Value, code: Option<i32>, out: &Value) -> Vec<Problem> {
    let messages: Vec<&str> = out["diagnostics"]
        .as_array()
        .map(|ds| ds.iter().filter_map(|d| d["message"].as_str()).collect())
        .unwrap_or_default();
    let first: Vec<&&str> = messages.iter().take(3).collect();
    if expect["outcome"] == "rejected" {
        let want = expect["error"].as_str().unwrap_or_default();
        if code != Some(2) {
            return vec![(
                "rejected",
                format!("expected exit 2 with {want:?}, got exit {code:?}"),
            )];
        }
        if !messages.iter().any(|m| m.contains(want)) {
            return vec![(
                "error_message",
                format!("expected error {want:?}, got {first:?}"),
            )];
        }
        return Vec::new();
    }
    if code != Some(0) {
        return vec![(
            "accepted",
            format!("expected exit 0, got exit {code:?}: {first:?}"),
        )];
    }
    Vec::new()
}

/// The compile branch of `run_case`: a refusal must exit 2 with an error object holding the
/// recorded text; an acceptance must exit 0 with a `nodes` object, and every recorded node
/// (except `uncaptured_nodes`) must match (`packet_filter_rules` and `ssh_rules` only when
/// `route_state_inconsistent` is set).
pub(crate) fn compile_verdict(
    category: &str,
    expect: &Value,
    code: Option<i32>,
    out: &Value,
    stderr: &str,
) -> Vec<Problem> {
    if expect["outcome"] == "rejected" {
        let want = expect["error"].as_str().unwrap_or_default();
        let Some(error) = out.as_object().and_then(|o| o.get("error")) else {
            return vec![(
                "rejected",
                format!("expected rejection (exit 2) with {want:?}, got exit {code:?}"),
            )];
        };
        if code != Some(2) {
            return vec![(
                "rejected",
                format!("expected rejection (exit 2) with {want:?}, got exit {code:?}"),
            )];
        }
        let found = messages(error);
        if !found.iter().any(|m| m.contains(want)) {
            let first: Vec<&String> = found.iter().take(3).collect();
            return vec![(
                "error_message",
                format!("expected error {want:?}, got {first:?}"),
            )];
        }
        return Vec::new();
    }
    let nodes = out.get("nodes").and_then(Value::as_object);
    let Some(nodes) = nodes.filter(|_| code == Some(0)) else {
        let detail = if out.is_object() {
            format!("{:?}", messages(&out["error"]))
        } else {
            let tail: String = {
                let chars: Vec<char> = stderr.chars().collect();
                chars[chars.len().saturating_sub(300)..].iter().collect()
            };
            format!("{tail:?}")
        };
        return vec![(
            "accepted",
            format!("expected success, got exit {code:?}: {detail}"),
        )];
    };
    compare_nodes(category, expect, |name| {
        nodes.get(name).filter(|v| !v.is_null())
    })
}

/// `messages`: every message string of an error object (its `message`, and recursively those
/// of its `diagnostics`); a bare string is its own message.
fn messages(error: &Value) -> Vec<String> {
    match error {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) => {
            let mut out = Vec::new();
            if let Some(Value::String(m)) = o.get("message") {
                out.push(m.clone());
            }
            if let Some(Value::Array(ds)) = o.get("diagnostics") {
                for d in ds {
                    out.extend(messages(d));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusal_messages_are_found_in_diagnostics() {
        let expect = json!({"outcome": "rejected", "error": "tag not found"});
        let out =
            json!({"error": {"message": "x", "diagnostics": [{"message": "a tag not found"}]}});
        assert!(compile_verdict("acl", &expect, Some(2), &out, "").is_empty());
        assert_eq!(
            compile_verdict("acl", &expect, Some(1), &out, "")[0].0,
            "rejected"
        );
        let out = json!({"error": {"message": "x", "diagnostics": []}});
        assert_eq!(
            compile_verdict("acl", &expect, Some(2), &out, "")[0].0,
            "error_message"
        );
    }
}
