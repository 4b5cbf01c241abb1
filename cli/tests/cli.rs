//! Drives the `aclc` binary: exit codes, standard input, the JSON shape and what a person sees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{aclc, aclc_in, examples, file, json, scratch, stderr, stdout};
use serde_json::Value;

const VALID: &str = r#"// A small valid policy.
{
	"groups": {"group:eng": ["alice@example.com"]},
	"tagOwners": {"tag:web": ["group:eng"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
	],
}
"#;

/// Rules on lines 11 and 12 with the comma between them missing.
const MISSING_COMMA: &str = r#"// Example with a missing comma.
{
	"groups": {
		"group:eng": ["alice@example.com"],
	},
	"tagOwners": {
		"tag:web": ["group:eng"],
	},
	"acls": [
		// Engineers reach the web servers.
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80"]},
	],
}
"#;

const INVENTORY: &str = r#"{
  "users": [{"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["owner", "admin"]}],
  "nodes": [{"name": "laptop", "user": "alice@example.com", "tags": [],
             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
             "routable_ips": [], "approved_routes": []}],
  "registration_order": ["laptop"],
  "tailnet": {"name": "alice@example.com", "dns": {}, "settings": {}}
}"#;

/// `aclc check policy.hujson --inventory INVENTORY EXTRA...` in `dir`.
fn check_in(dir: &Path, inventory: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", "policy.hujson", "--inventory", inventory];
    args.extend_from_slice(extra);
    aclc_in(dir, &args, None)
}

#[test]
fn help_and_version_exit_0() {
    let o = aclc(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("check"), "{}", stdout(&o));
    assert!(stdout(&o).contains("compile"), "{}", stdout(&o));
    let o = aclc(&["check", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--inventory"));
    let o = aclc(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("aclc "));
}

#[test]
fn usage_errors_exit_1() {
    for args in [
        &[][..],
        &["bogus"][..],
        &["check"][..],
        &["check", "p.hujson", "--format", "xml"][..],
        &["check", "p.hujson", "--no-such-flag"][..],
        &["compile"][..],
        &["compile", "p.hujson"][..],
        &[
            "compile",
            "p.hujson",
            "--inventory",
            "i.json",
            "--format",
            "xml",
        ][..],
        &["compile", "a.hujson", "b.hujson", "--inventory", "i.json"][..],
    ] {
        let o = aclc(args);
        assert_eq!(o.status.code(), Some(1), "aclc {args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "aclc {args:?} printed no message");
    }
}

#[test]
fn valid_policy_exits_0() {
    let (dir, _) = file("policy.hujson", VALID);
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "policy.hujson: valid\n");
    assert_eq!(stdout(&o), "");
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        json(&o),
        serde_json::json!({"valid": true, "diagnostics": []})
    );
}

#[test]
fn stdin_is_read_for_dash() {
    let o = aclc_in(&scratch(), &["check", "-"], Some(VALID));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "<stdin>: valid\n");
    let o = aclc_in(
        &scratch(),
        &["check", "-", "--format", "json"],
        Some(MISSING_COMMA),
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json(&o)["diagnostics"][0]["file"], "<stdin>");
    let o = aclc_in(&scratch(), &["check", "-", "-"], Some(VALID));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn missing_comma_reports_line_and_column_as_json() {
    let (dir, _) = file("policy.hujson", MISSING_COMMA);
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(2));
    let out = json(&o);
    assert_eq!(out["valid"], false);
    let diagnostics = out["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{out}");
    let d = &diagnostics[0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "policy.hujson");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(12), Some(3))
    );
    assert_eq!(d["end_line"], 12);
    assert!(d["end_column"].as_u64().unwrap() > 3);
    assert!(d["code"].as_str().unwrap().starts_with("aclc::"));
    assert!(d["message"].as_str().unwrap().contains(','), "{d}");
    assert!(d["help"].is_string() || d["help"].is_null());
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "code",
            "column",
            "end_column",
            "end_line",
            "file",
            "help",
            "line",
            "message",
            "severity"
        ]
    );
}

#[test]
fn missing_comma_human_output() {
    let (dir, _) = file("policy.hujson", MISSING_COMMA);
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    // Not a terminal: no colour.
    assert!(!err.contains('\u{1b}'), "{err}");
    let expected = "\
aclc::syntax

  × invalid character '{' after array value (expecting ',' or ']')
    ╭─[policy.hujson:12:3]
 11 │         {\"action\": \"accept\", \"src\": [\"group:eng\"], \"dst\": [\"tag:web:443\"]}
 12 │         {\"action\": \"accept\", \"src\": [\"group:eng\"], \"dst\": [\"tag:web:80\"]},
    ·         ┬
    ·         ╰── expected `,` before this
 13 │     ],
    ╰────
  help: add a comma between the two elements

policy.hujson: 1 error
";
    assert_eq!(err, expected, "got:\n{err}");
}

/// A `//` comment that ends the file without a newline is refused, as Tailscale's HuJSON
/// parser refuses it (`parsing comment: unexpected EOF`, at the comment).
#[test]
fn line_comment_at_end_of_file_without_newline_exits_2() {
    let text = VALID.trim_end().to_string() + "\n// the end, no newline";
    let (dir, _) = file("policy.hujson", &text);
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let out = json(&o);
    assert_eq!(out["valid"], false);
    let d = &out["diagnostics"][0];
    assert_eq!(out["diagnostics"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(d["code"], "aclc::syntax");
    assert_eq!(d["message"], "parsing comment: unexpected EOF");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(9), Some(1))
    );
    assert!(
        d["help"]
            .as_str()
            .unwrap()
            .starts_with("end the file with a newline after the comment"),
        "{d}"
    );

    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("parsing comment: unexpected EOF"), "{err}");
    assert!(err.ends_with("policy.hujson: 1 error\n"), "{err}");

    // With the newline, the same file is valid.
    let (dir, _) = file("policy.hujson", &(text + "\n"));
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn missing_file_exits_1() {
    let o = aclc(&["check", "no-such-policy.hujson"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no-such-policy.hujson"),
        "{}",
        stderr(&o)
    );
    let o = aclc(&["check", "no-such-policy.hujson", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let out = json(&o);
    assert_eq!(out["valid"], false);
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-policy.hujson"));
}

#[test]
fn malformed_inventory_exits_1() {
    let (dir, _) = file("policy.hujson", VALID);
    std::fs::write(
        dir.join("inventory.json"),
        INVENTORY.replace("100.64.0.1", "100.64.0.300"),
    )
    .unwrap();
    let o = check_in(&dir, "inventory.json", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(r#"nodes[0].ipv4: invalid IP address "100.64.0.300""#),
        "{}",
        stderr(&o)
    );
    let o = check_in(&dir, "inventory.json", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(json(&o)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nodes[0].ipv4"));
    std::fs::write(dir.join("broken.json"), "{\"users\": [").unwrap();
    let o = check_in(&dir, "broken.json", &[]);
    assert_eq!(o.status.code(), Some(1));
    let o = check_in(&dir, "missing.json", &[]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn valid_inventory_is_accepted() {
    let (dir, _) = file("policy.hujson", VALID);
    std::fs::write(dir.join("inventory.json"), INVENTORY).unwrap();
    let o = check_in(&dir, "inventory.json", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn several_files_json_shape() {
    let (dir, _) = file("good.hujson", VALID);
    std::fs::write(dir.join("bad.hujson"), MISSING_COMMA).unwrap();
    let o = aclc_in(
        &dir,
        &["check", "good.hujson", "bad.hujson", "--format", "json"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let out = json(&o);
    assert_eq!(out["valid"], false);
    let files = out["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], "good.hujson");
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[1]["file"], "bad.hujson");
    assert_eq!(files[1]["valid"], false);
    assert_eq!(out["diagnostics"].as_array().unwrap().len(), 1);
    assert_eq!(out["diagnostics"][0]["file"], "bad.hujson");

    let o = aclc_in(&dir, &["check", "good.hujson", "bad.hujson"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("good.hujson: valid\n"), "{err}");
    assert!(err.ends_with("bad.hujson: 1 error\n"), "{err}");

    let o = aclc_in(&dir, &["check", "good.hujson", "good.hujson"], None);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn example_files_behave_as_documented() {
    let examples = examples();
    let o = check_in(&examples, "inventory.json", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = aclc_in(
        &examples,
        &["check", "invalid.hujson", "--format", "json"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}

/// Five independent mistakes, one per rule; the last needs the inventory's tailnet domain.
const FIVE_MISTAKES: &str = r#"{
	"groups": {"group:eng": ["alice@example.com"]},
	"tagOwners": {"tag:web": ["group:eng"]},
	"acls": [
		{"action": "deny", "src": ["group:eng"], "dst": ["tag:web:443"]},
		{"action": "accept", "src": ["group:ops"], "dst": ["tag:web:22"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:70000"]},
	],
	"ssh": [
		{"action": "accept", "src": ["user:*@example.org"], "dst": ["tag:web"], "users": ["root"]},
	],
}
"#;

#[test]
fn five_independent_mistakes_are_all_reported() {
    let (dir, _) = file("policy.hujson", FIVE_MISTAKES);
    std::fs::write(dir.join("inventory.json"), INVENTORY).unwrap();
    let o = check_in(&dir, "inventory.json", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let out = json(&o);
    let errors: Vec<&Value> = out["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    let lines: Vec<u64> = errors.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [5, 6, 7, 8, 11], "{out}");
    let messages: Vec<&str> = errors
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(messages[0].contains("deny"), "{messages:?}");
    assert!(messages[1].contains("group:ops"), "{messages:?}");
    assert!(messages[2].contains("tag:db"), "{messages:?}");
    assert!(messages[3].contains("70000"), "{messages:?}");
    assert!(
        messages[4].contains("example.org is not associated"),
        "{messages:?}"
    );

    // Human output: all five, then the summary.
    let o = check_in(&dir, "inventory.json", &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for at in [
        "policy.hujson:5:",
        "policy.hujson:6:",
        "policy.hujson:7:",
        "policy.hujson:8:",
        "policy.hujson:11:",
    ] {
        assert!(err.contains(at), "{at} missing from:\n{err}");
    }
    assert!(err.ends_with("policy.hujson: 5 errors\n"), "{err}");
}

#[test]
fn inventory_context_enables_domain_checks() {
    // Without an inventory the tailnet's domain is unknown, so `user:*@example.org` passes.
    let policy = r#"{"ssh": [{"action": "accept", "src": ["user:*@example.org"],
        "dst": ["autogroup:self"], "users": ["root"]}]}"#;
    let (dir, _) = file("policy.hujson", policy);
    std::fs::write(dir.join("inventory.json"), INVENTORY).unwrap();
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    let errors = json(&o)["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["message"].as_str().unwrap().contains("not associated"))
        .count();
    assert_eq!(errors, 0, "{}", stdout(&o));
    let o = check_in(&dir, "inventory.json", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("example.org is not associated with this Tailnet"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn warnings_keep_exit_0() {
    let policy = "{\"groups\": {\"group:unused\": [\"alice@example.com\"]}, \"acls\": [], \"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}";
    let (dir, _) = file("policy.hujson", policy);
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = json(&o);
    assert_eq!(out["valid"], true);
    assert_eq!(out["diagnostics"][0]["severity"], "warning", "{out}");
    let o = aclc_in(&dir, &["check", "policy.hujson"], None);
    assert!(
        stderr(&o).ends_with("policy.hujson: valid, 1 warning\n"),
        "{}",
        stderr(&o)
    );
}

/// Nodes with one address family compile; the human table lists only the addresses a node
/// has, and the JSON no unspecified address.
#[test]
fn single_family_nodes_compile() {
    let (dir, _) = file(
        "policy.hujson",
        r#"{"tagOwners": {"tag:web": ["alice@example.com"]},
            "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#,
    );
    let inventory = r#"{
      "users": [{"id": 1, "name": "alice", "email": "alice@example.com", "roles": []}],
      "nodes": [{"name": "laptop", "user": "alice@example.com", "ipv4": "100.64.0.1"},
                {"name": "web", "tags": ["tag:web"], "ipv6": "fd7a:115c:a1e0::2",
                 "routable_ips": ["10.1.0.0/16"], "approved_routes": ["10.1.0.0/16"]}]
    }"#;
    std::fs::write(dir.join("inventory.json"), inventory).unwrap();
    let args = ["compile", "policy.hujson", "--inventory", "inventory.json"];
    let o = aclc_in(&dir, &[&args[..], &["--format", "human"]].concat(), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("node laptop  100.64.0.1\n"), "{text}");
    assert!(text.contains("node web  fd7a:115c:a1e0::2\n"), "{text}");
    assert!(text.contains("    web  via 10.1.0.0/16\n"), "{text}");
    assert!(!text.contains("0.0.0.0") && !text.contains(" ::"), "{text}");
    let o = aclc_in(&dir, &[&args[..], &["--format", "json"]].concat(), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = json(&o);
    assert_eq!(
        out["nodes"]["web"]["addresses"],
        serde_json::json!(["fd7a:115c:a1e0::2/128"])
    );
    assert_eq!(
        out["nodes"]["laptop"]["peers"]["web"]["allowed_ips"],
        serde_json::json!(["10.1.0.0/16"])
    );
}
