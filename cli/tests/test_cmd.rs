//! Drives `aclc test` (every assertion reported, exit 0 / 3 / 2 / 1, human and JSON output)
//! and the refusal `compile` and `check --inventory` give a policy whose tests fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{aclc_in, examples, file, json, stderr, stdout};
use serde_json::Value;

/// The example inventory: alice and bob are in `group:eng`, carol in `group:ops`.
fn inventory() -> PathBuf {
    examples().join("inventory.json")
}

/// A scratch directory holding `policy.hujson` with `text`.
fn policy(text: &str) -> PathBuf {
    file("policy.hujson", text).0
}

/// `aclc COMMAND policy.hujson --inventory INVENTORY EXTRA...` in `dir` (so the policy is
/// named `policy.hujson` in messages).
fn run(dir: &Path, command: &str, extra: &[&str]) -> Output {
    let inventory = inventory();
    let mut args = vec![
        command,
        "policy.hujson",
        "--inventory",
        inventory.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    aclc_in(dir, &args, None)
}

/// Lines 1-5: ACL rules on lines 3 and 4, the SSH rule on line 5; tests from line 6.
const HEAD: &str = r#"{"groups": {"group:eng": ["alice@example.com", "bob@example.com"], "group:ops": ["carol@example.com"]},
"tagOwners": {"tag:web": ["group:ops"], "tag:db": ["group:ops"]},
"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
         {"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}],
"ssh": [{"action": "check", "src": ["group:ops"], "dst": ["tag:db"], "users": ["root"]}],
"#;

const PASSING: &str = r#""tests": [{"src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["tag:db:5432"]}],
"sshTests": [{"src": "carol@example.com", "dst": ["tag:db"], "check": ["root"], "deny": ["ubuntu"]}]}"#;

const FAILING: &str = r#""tests": [{"src": "group:eng", "proto": "tcp", "accept": ["tag:web:443", "tag:db:5432"], "deny": ["tag:web:443"]},
  {"src": "group:phantom", "accept": ["tag:web:443"]}],
"sshTests": [{"src": "carol@example.com", "dst": ["tag:db"], "accept": ["root"], "deny": ["root"]}]}"#;

const FAILURES: [&str; 4] = [
    "group:eng -> tag:db:5432 (tcp): expected allowed, got denied",
    "group:eng -> tag:web:443 (tcp): expected denied, got allowed (allowed by policy.hujson:3)",
    "tests[1]: group \"group:phantom\" is not defined",
    "carol@example.com -> tag:db as root: expected denied, got allowed by a check rule (policy.hujson:5)",
];

#[test]
fn passing_tests_exit_0_and_list_every_assertion() {
    let dir = policy(&format!("{HEAD}{PASSING}"));
    let o = run(&dir, "test", &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "PASS policy.hujson:6: alice@example.com -> tag:web:443 (tcp/udp): allowed (allowed by policy.hujson:3)\n\
         PASS policy.hujson:6: alice@example.com -> tag:db:5432 (tcp/udp): denied\n\
         PASS policy.hujson:7: carol@example.com -> tag:db as root: allowed by a check rule (policy.hujson:5)\n\
         PASS policy.hujson:7: carol@example.com -> tag:db as ubuntu: denied\n\
         policy.hujson: 4 assertions, all passed\n"
    );
    // compile and check accept it.
    let o = run(&dir, "compile", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&dir, "check", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(json(&o)["valid"], true);
}

#[test]
fn failing_tests_exit_3_and_say_why() {
    let dir = policy(&format!("{HEAD}{FAILING}"));
    let o = run(&dir, "test", &[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(
        lines[0],
        "PASS policy.hujson:6: group:eng -> tag:web:443 (tcp): allowed (allowed by policy.hujson:3)"
    );
    assert_eq!(lines[1], format!("FAIL policy.hujson:6: {}", FAILURES[0]));
    assert_eq!(lines[2], format!("FAIL policy.hujson:6: {}", FAILURES[1]));
    assert_eq!(lines[3], format!("FAIL policy.hujson:7: {}", FAILURES[2]));
    assert_eq!(
        lines[4],
        "PASS policy.hujson:8: carol@example.com -> tag:db as root: allowed by a check rule (policy.hujson:5)"
    );
    assert_eq!(lines[5], format!("FAIL policy.hujson:8: {}", FAILURES[3]));
    assert_eq!(lines[6], "policy.hujson: 6 assertions, 4 failed");
}

#[test]
fn json_report() {
    let dir = policy(&format!("{HEAD}{FAILING}"));
    let o = run(&dir, "test", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(3));
    let out = json(&o);
    assert_eq!(out["passed"], false);
    assert_eq!(out["total"], 6);
    assert_eq!(out["failed"], 4);
    let results = out["results"].as_array().unwrap();
    let second = &results[1];
    assert_eq!(second["kind"], "network");
    assert_eq!(second["test"], 0);
    assert_eq!(second["passed"], false);
    assert_eq!(second["subject"], "group:eng -> tag:db:5432 (tcp)");
    assert_eq!(second["expected"], "allowed");
    assert_eq!(second["got"], "denied");
    assert_eq!(second["message"], FAILURES[0]);
    assert_eq!(
        (second["line"].as_u64(), second["column"].as_u64()),
        (Some(6), Some(75))
    );
    let third = &results[2];
    assert_eq!(third["got"], "allowed");
    assert_eq!(
        third["allowed_by"],
        serde_json::json!([{"file": "policy.hujson", "line": 3, "column": 10}])
    );
    let malformed = &results[3];
    assert_eq!(malformed["expected"], Value::Null);
    assert_eq!(malformed["got"], Value::Null);
    assert_eq!(malformed["error"], "group \"group:phantom\" is not defined");
    let ssh = &results[5];
    assert_eq!(ssh["kind"], "ssh");
    assert_eq!(ssh["expected"], "denied");
    assert_eq!(ssh["got"], "allowed_by_check");

    let dir = policy(&format!("{HEAD}{PASSING}"));
    let o = run(&dir, "test", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&o)["passed"], true);
    assert_eq!(json(&o)["failed"], 0);
}

#[test]
fn compile_refuses_with_one_line_per_failure() {
    let dir = policy(&format!("{HEAD}{FAILING}"));
    let o = run(&dir, "compile", &[]);
    assert_eq!(o.status.code(), Some(2));
    let out = json(&o);
    assert!(out.get("nodes").is_none(), "{out}");
    let expected = format!("test(s) failed\n{}", FAILURES.join("\n"));
    assert_eq!(out["error"]["message"], expected);
    let diagnostics = out["error"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 5);
    assert_eq!(diagnostics[0]["message"], "test(s) failed");
    assert_eq!(diagnostics[0]["code"], "aclc::tests_failed");
    for (d, line) in diagnostics[1..].iter().zip(FAILURES) {
        assert_eq!(d["message"], line);
        assert_eq!(d["code"], "aclc::test_failed");
    }

    let o = run(&dir, "compile", &["--format", "human"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!("{expected}\npolicy.hujson: policy refused, nothing compiled\n")
    );
}

/// The messages of `check --format json`'s diagnostics, in order.
fn diagnostic_messages(out: &Value) -> Vec<&str> {
    out["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect()
}

/// With an inventory `check` runs every assertion; without one it still reports the failures
/// no inventory can change (here the undefined group), and nothing else.
#[test]
fn check_runs_tests_with_an_inventory_and_judges_their_shape_without() {
    let dir = policy(&format!("{HEAD}{FAILING}"));
    let o = run(&dir, "check", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let out = json(&o);
    assert_eq!(out["valid"], false);
    let messages = diagnostic_messages(&out);
    let mut expected = vec!["test(s) failed"];
    expected.extend(FAILURES);
    assert_eq!(messages, expected);

    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let out = json(&o);
    let messages = diagnostic_messages(&out);
    assert_eq!(
        messages,
        vec![
            "test(s) failed",
            "tests[1]: group \"group:phantom\" is not defined"
        ]
    );
}

/// Without an inventory `check` also refuses a `deny` the rules break between written
/// addresses (no tailnet's nodes can take access away), as Tailscale refuses it on save; an
/// `accept` that only nodes could make hold is not judged.
#[test]
fn check_without_an_inventory_refuses_a_deny_no_tailnet_can_save() {
    let dir = policy(
        r#"{"acls": [{"action": "accept", "src": ["10.0.0.1"], "dst": ["10.0.0.2:22"]}],
"tests": [{"src": "10.0.0.1", "accept": ["10.0.0.2:80"]}, {"src": "10.0.0.1", "deny": ["10.0.0.2:22"]}]}"#,
    );
    let o = aclc_in(&dir, &["check", "policy.hujson", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let out = json(&o);
    assert_eq!(
        diagnostic_messages(&out),
        vec![
            "test(s) failed",
            "10.0.0.1 -> 10.0.0.2:22 (tcp/udp): expected denied, got allowed (allowed by policy.hujson:1)"
        ]
    );
}

#[test]
fn invalid_policy_exits_2_and_unreadable_input_exits_1() {
    let dir = policy(r#"{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}"#);
    let o = run(&dir, "test", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("action=\"deny\" is not supported"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    let o = run(&dir, "test", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let out = json(&o);
    assert_eq!(out["passed"], false);
    assert_eq!(out["error"]["message"], "action=\"deny\" is not supported");

    let o = aclc_in(
        &dir,
        &["test", "missing.hujson", "--inventory", "missing.json"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.json"), "{}", stderr(&o));
    let o = aclc_in(&dir, &["test", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(1), "--inventory is required");
}

#[test]
fn no_tests_is_a_pass() {
    let dir = policy(r#"{"acls": []}"#);
    let o = run(&dir, "test", &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "policy.hujson: no tests\n");
}

/// `testdata/features/tests-via.hujson`: a grant with `via` counts in `tests` as its `ip`
/// rule, with or without a router in the inventory (evidence in the file's header: a policy
/// Tailscale applies through gitops-acl-action asserts exactly this). `check` and `compile`
/// accept the policy too.
#[test]
fn via_grants_count_in_tests() {
    let features = common::features();
    let name = "tests-via.hujson";
    let o = aclc_in(
        &features,
        &["test", name, "--inventory", "inventory.json"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "PASS {name}:21: alice@example.com -> 10.20.0.1:443 (tcp/udp): allowed (allowed by {name}:17)\n\
             PASS {name}:21: alice@example.com -> 10.20.0.1:22 (tcp/udp): denied\n\
             PASS {name}:21: alice@example.com -> 1.1.1.1:443 (tcp/udp): denied\n\
             PASS {name}:22: tag:web -> 1.1.1.1:443 (tcp/udp): allowed (allowed by {name}:18)\n\
             PASS {name}:22: tag:web -> 10.20.0.1:443 (tcp/udp): denied\n\
             {name}: 5 assertions, all passed\n"
        )
    );
    for command in ["check", "compile"] {
        let o = aclc_in(
            &features,
            &[command, name, "--inventory", "inventory.json"],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{command}: {}", stderr(&o));
    }
}

/// `testdata/features/tests-semantics.hujson` holds `tests` Tailscale accepts: public
/// addresses reached through a grant to `autogroup:internet`, and `deny` assertions from a
/// source with no devices. Evidence (kept in the file's header): Tailscale's policy syntax
/// reference, kb/1337, sections "tests" and "autogroup:internet", and the exit node guide,
/// kb/1103. The vacuous denials pass with a warning, never a failure.
#[test]
fn accepted_test_semantics_pass_with_warnings() {
    let features = common::features();
    let args = |command: &'static str, extra: &[&'static str]| {
        let mut all = vec![
            command,
            "tests-semantics.hujson",
            "--inventory",
            "inventory.json",
        ];
        all.extend_from_slice(extra);
        all
    };
    let vacuous = |src: &str| {
        format!("src \"{src}\" has no devices in the inventory, so this deny holds vacuously")
    };

    let o = aclc_in(&features, &args("test", &[]), None);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let name = "tests-semantics.hujson";
    assert_eq!(
        stdout(&o),
        format!(
            "PASS {name}:17: alice@example.com -> 1.1.1.1:53 (tcp/udp): allowed (allowed by {name}:12)\n\
             PASS {name}:17: alice@example.com -> [2606:4700:4700::1111]:443 (tcp/udp): allowed (allowed by {name}:12)\n\
             PASS {name}:17: alice@example.com -> tag:web:443 (tcp/udp): allowed (allowed by {name}:13)\n\
             PASS {name}:19: tag:web -> 1.1.1.1:53 (tcp/udp): denied\n\
             PASS {name}:21: dave@example.com -> tag:web:443 (tcp/udp): denied\n\
             \x20 warning: {}\n\
             PASS {name}:22: newcomer@example.com -> 1.1.1.1:53 (tcp/udp): denied\n\
             \x20 warning: {}\n\
             {name}: 6 assertions, all passed, 2 warnings\n",
            vacuous("dave@example.com"),
            vacuous("newcomer@example.com"),
        )
    );

    let o = aclc_in(&features, &args("test", &["--format", "json"]), None);
    assert_eq!(o.status.code(), Some(0));
    let out = json(&o);
    assert_eq!(
        (out["passed"].as_bool(), out["warnings"].as_u64()),
        (Some(true), Some(2))
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(results[4]["warning"], vacuous("dave@example.com"));
    assert!(results[0].get("warning").is_none(), "{}", results[0]);

    // check: valid, the warnings as diagnostics on the deny entries.
    let o = aclc_in(&features, &args("check", &["--format", "json"]), None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = json(&o);
    assert_eq!(out["valid"], true);
    let warnings: Vec<(&str, &str, u64)> = out["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "warning");
            (
                d["code"].as_str().unwrap(),
                d["message"].as_str().unwrap(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let dave = vacuous("dave@example.com");
    let newcomer = vacuous("newcomer@example.com");
    assert_eq!(
        warnings,
        [
            ("aclc::test_vacuous", dave.as_str(), 21),
            ("aclc::test_vacuous", newcomer.as_str(), 22),
        ]
    );
    let o = aclc_in(&features, &args("check", &[]), None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains(&dave), "{}", stderr(&o));
    assert!(
        stderr(&o).ends_with("tests-semantics.hujson: valid, 2 warnings\n"),
        "{}",
        stderr(&o)
    );

    // compile: compiles, the warnings on stderr for people.
    let o = aclc_in(&features, &args("compile", &[]), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(json(&o)["nodes"]["alice-laptop"].is_object());
    let o = aclc_in(&features, &args("compile", &["--format", "human"]), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("{name}:21: warning: {dave}\n{name}:22: warning: {newcomer}\n")
    );
}

/// An `accept` from a source with no devices still fails (nothing can be reached), as on
/// Tailscale; only `deny` holds vacuously.
#[test]
fn accept_from_a_source_without_devices_fails() {
    let dir = policy(&format!(
        r#"{HEAD}"tests": [{{"src": "dave@example.com", "accept": ["tag:web:443"]}}]}}"#
    ));
    let o = run(&dir, "test", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert_eq!(
        stdout(&o),
        "FAIL policy.hujson:6: tests[0]: src \"dave@example.com\" is not a user of the tailnet\n\
         policy.hujson: 1 assertion, 1 failed\n"
    );
}
