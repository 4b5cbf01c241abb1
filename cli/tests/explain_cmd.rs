//! Drives `aclc explain` on the example policy: the human and JSON shapes, the exit statuses
//! (0 allowed, 3 denied, 2 invalid policy, 1 usage error) and `--ssh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;

use common::{aclc_in, examples, json, stderr, stdout};
use serde_json::json;

/// `aclc explain policy.hujson --inventory inventory.json ARGS...` in the examples folder.
fn explain(args: &[&str]) -> Output {
    let mut all = vec!["explain", "policy.hujson", "--inventory", "inventory.json"];
    all.extend_from_slice(args);
    aclc_in(&examples(), &all, None)
}

const ENG_RULE: &str =
    r#"{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443", "build-server:22"]}"#;
const OPS_RULE: &str = r#"{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]}"#;
const SELF_RULE: &str =
    r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}"#;

#[test]
fn allowed_names_the_rule() {
    let out = explain(&["bob@example.com", "web-1:443"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "allowed: bob@example.com reaches web-1:443 on port 443 (tcp/udp) by 1 rule\n\
             allowed by policy.hujson:27: {ENG_RULE}\n"
        )
    );
}

/// The other rules that let the flow through are named too: removing the allowing rule alone
/// would not deny it.
#[test]
fn allowed_names_the_other_rules_that_allow() {
    let out = explain(&["carol-desktop", "carol-desktop:22"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "allowed: carol-desktop reaches carol-desktop:22 on port 22 (tcp/udp) by 1 rule\n\
             allowed by policy.hujson:29: {OPS_RULE}\n\
             also allowed by policy.hujson:31: {SELF_RULE}\n\
             note: removing the rule that allows it would not deny it: the rules marked \
             \"also allowed by\" let it through as well\n"
        )
    );
    let doc = json(&explain(&[
        "carol-desktop",
        "carol-desktop:22",
        "--format",
        "json",
    ]));
    assert_eq!(
        doc["also"],
        json!([{"file": "policy.hujson", "line": 31, "column": 3, "text": SELF_RULE}])
    );
    assert_eq!(doc["notes"], json!([]));
}

#[test]
fn denied_lists_the_nearest_misses() {
    let out = explain(&["bob-laptop", "web-1:22"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "denied: no rule lets bob-laptop (100.64.0.2) reach web-1:22 on port 22 (tcp/udp)\n\
             nearest misses:\n  \
             policy.hujson:27: {ENG_RULE}\n    \
             the rule opens tcp/udp/icmp/ipv6-icmp on ports 80,443, not port 22 (tcp/udp)\n  \
             policy.hujson:29: {OPS_RULE}\n    \
             src \"bob-laptop\" (100.64.0.2) is not in the rule's src\n"
        )
    );
}

/// At most `--max-misses` misses are listed (default 10), then how many more.
#[test]
fn misses_are_capped() {
    let out = explain(&["bob-laptop", "web-1:22", "--max-misses", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "denied: no rule lets bob-laptop (100.64.0.2) reach web-1:22 on port 22 (tcp/udp)\n\
             nearest misses:\n  \
             policy.hujson:27: {ENG_RULE}\n    \
             the rule opens tcp/udp/icmp/ipv6-icmp on ports 80,443, not port 22 (tcp/udp)\n  \
             ... and 1 more (--max-misses 0 lists all)\n"
        )
    );
    let all = explain(&["bob-laptop", "web-1:22", "--max-misses", "0"]);
    assert_eq!(stdout(&all), stdout(&explain(&["bob-laptop", "web-1:22"])));
}

#[test]
fn json_shape() {
    let out = explain(&["bob-laptop", "db-1:5432", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc = json(&out);
    assert_eq!(doc["allowed"], false);
    assert_eq!(doc["rules"], json!([]));
    assert_eq!(
        doc["reason"],
        "no rule lets bob-laptop (100.64.0.2) reach db-1:5432 on port 5432 (tcp/udp)"
    );
    let misses = doc["misses"].as_array().unwrap();
    assert_eq!(misses.len(), 2);
    assert_eq!(misses[0]["line"], 29);
    assert_eq!(misses[0]["column"], 3);
    assert_eq!(misses[0]["file"], "policy.hujson");
    assert_eq!(misses[0]["text"], OPS_RULE);
    assert_eq!(
        misses[1]["text"],
        r#"{"src": ["tag:web"], "dst": ["tag:db"], "ip": ["tcp:5432"]}"#
    );
    assert_eq!(
        misses[1]["why"],
        "src \"bob-laptop\" (100.64.0.2) is not in the rule's src"
    );

    let out = explain(&["carol@example.com", "100.64.1.2:5432", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&out);
    assert_eq!(doc["allowed"], true);
    assert_eq!(
        doc["rules"],
        json!([{"file": "policy.hujson", "line": 29, "column": 3, "text": OPS_RULE}])
    );
    assert_eq!(doc["misses"], json!([]));
    assert_eq!(doc["also"], json!([]));
    assert_eq!(doc["notes"], json!([]));
}

#[test]
fn icmp_needs_no_port_tcp_does() {
    let out = explain(&["alice@example.com", "build-server", "--proto", "icmp"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("allowed: "), "{}", stdout(&out));
    let out = explain(&["alice@example.com", "web-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: dst \"web-1\" has no port: write DST:PORT (tcp/udp needs a port; ICMP, GRE and other protocols without ports do not)\n"
    );
    let out = explain(&["group:nope", "web-1:80"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: group \"group:nope\" is not defined\n");
}

/// A node matches ICMP on addresses alone: a port named with `--proto icmp` changes nothing.
/// A rule's port forms (`*`, ranges) are not one port to ask about.
#[test]
fn icmp_ignores_ports_and_explain_asks_about_one_port() {
    let with = explain(&["alice@example.com", "web-1:22", "--proto", "icmp"]);
    let without = explain(&["alice@example.com", "web-1", "--proto", "icmp"]);
    assert_eq!(with.status.code(), Some(0), "{}", stdout(&with));
    assert_eq!(without.status.code(), Some(0), "{}", stdout(&without));
    for dst in ["web-1:*", "web-1:80-90", "web-1:80,443"] {
        let out = explain(&["alice@example.com", dst]);
        assert_eq!(out.status.code(), Some(1), "{dst}");
        assert!(
            stderr(&out).contains("explain asks about one port"),
            "{dst}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn ssh_logins() {
    let out = explain(&["--ssh", "carol@example.com", "web-1", "root"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .starts_with("allowed: carol@example.com may log in to web-1 as root by a check rule"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("allowed by policy.hujson:50: "));

    let out = explain(&["--ssh", "alice-laptop", "web-1", "root", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc = json(&out);
    assert_eq!(doc["allowed"], false);
    assert_eq!(
        doc["reason"],
        "no ssh rule of web-1 lets alice-laptop log in as root"
    );
    assert_eq!(doc["misses"][0]["line"], 50);

    // LOCALUSER goes with --ssh only.
    assert_eq!(
        explain(&["--ssh", "alice-laptop", "web-1"]).status.code(),
        Some(1)
    );
    assert_eq!(
        explain(&["alice-laptop", "web-1:22", "root"]).status.code(),
        Some(1)
    );
}

/// An SSH login the rules allow, towards a node whose packet filter keeps TCP port 22 closed
/// to the source: allowed (as `sshTests` judge it), with a note that the connection would not
/// reach the SSH server; no note where the port is open.
#[test]
fn ssh_login_allowed_with_port_22_closed_is_noted() {
    let policy = r#"{"tagOwners": {"tag:web": ["carol@example.com"]},
        "acls": [{"action": "accept", "src": ["carol@example.com"], "dst": ["tag:web:80"]}],
        "ssh": [{"action": "accept", "src": ["carol@example.com"], "dst": ["tag:web"], "users": ["root"]}]}"#;
    let out = aclc_in(
        &examples(),
        &[
            "explain",
            "-",
            "--inventory",
            "inventory.json",
            "--ssh",
            "carol@example.com",
            "web-1",
            "root",
        ],
        Some(policy),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(
            "note: the packet filter does not open TCP port 22 from carol@example.com to web-1: \
             the connection would not reach the SSH server\n"
        ),
        "{}",
        stdout(&out)
    );
    let out = explain(&["--ssh", "carol@example.com", "web-1", "root"]);
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));
}

/// An endpoint written as a node's IPv4 address that `disable-ipv4` takes away: the verdict
/// is the policy's (as `tests` judge it), with a note that no packet crosses the tailnet from
/// or to that address; the node's name, which keeps its IPv6 address, gets no note, and an
/// address whose node keeps its IPv4 gets none either.
#[test]
fn disabled_ipv4_address_is_noted() {
    let policy = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        "nodeAttrs": [{"target": ["bob@example.com"], "attr": ["disable-ipv4"]}]}"#;
    let run = |src: &str, dst: &str| {
        let out = aclc_in(
            &examples(),
            &["explain", "-", "--inventory", "inventory.json", src, dst],
            Some(policy),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let out = run("alice-laptop", "100.64.0.2:22");
    assert!(
        out.ends_with(
            "note: 100.64.0.2 is bob-laptop's IPv4 address, which `disable-ipv4` takes away: \
             nothing reaches that address over Tailscale\n"
        ),
        "{out}"
    );
    let out = run("100.64.0.2", "alice-laptop:22");
    assert!(
        out.ends_with(
            "note: 100.64.0.2 is bob-laptop's IPv4 address, which `disable-ipv4` takes away: \
             the node sends nothing from that address over Tailscale\n"
        ),
        "{out}"
    );
    // JSON carries the same notes.
    let out = aclc_in(
        &examples(),
        &[
            "explain",
            "-",
            "--inventory",
            "inventory.json",
            "--format",
            "json",
            "alice-laptop",
            "100.64.0.2:22",
        ],
        Some(policy),
    );
    assert_eq!(
        json(&out)["notes"],
        json!([
            "100.64.0.2 is bob-laptop's IPv4 address, which `disable-ipv4` takes away: \
                nothing reaches that address over Tailscale"
        ])
    );
    for (src, dst) in [
        ("alice-laptop", "bob-laptop:22"),
        ("bob-laptop", "100.64.0.1:22"),
    ] {
        let out = run(src, dst);
        assert!(!out.contains("note:"), "{src} -> {dst}: {out}");
    }
}

#[test]
fn invalid_policy_exits_2() {
    let out = aclc_in(
        &examples(),
        &[
            "explain",
            "invalid.hujson",
            "--inventory",
            "inventory.json",
            "alice-laptop",
            "web-1:80",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A name that is nothing says it is no node either (explain takes node names, tests do
/// not); an SSH destination given with a port says a login's destination has none.
#[test]
fn unknown_endpoints_say_what_to_write() {
    let out = explain(&["alice-laptop", "nope:443"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nor a node of the inventory"),
        "{}",
        stderr(&out)
    );
    let out = explain(&["--ssh", "alice-laptop", "web-1:22", "root"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("without a port: `web-1`"),
        "{}",
        stderr(&out)
    );
}

/// `--exit-node-filters internet` compiles as `aclc compile` does with it.
#[test]
fn exit_node_filters_are_accepted() {
    let out = explain(&[
        "--exit-node-filters",
        "internet",
        "bob@example.com",
        "web-1:443",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `root+password` asks the node for root: a denial names the rule whose users leave root
/// out, as for `root` (it said no rule reaches the destination; found by a differential
/// against tailssh's own evaluation).
#[test]
fn a_password_login_misses_as_its_account_does() {
    let policy = r#"{"tagOwners": {"tag:web": ["alice@example.com"]},
        "ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["autogroup:nonroot"]}]}"#;
    let ask = |login: &str| {
        let args = [
            "explain",
            "-",
            "--inventory",
            "inventory.json",
            "--ssh",
            "alice-laptop",
            "web-1",
            login,
        ];
        aclc_in(&examples(), &args, Some(policy))
    };
    for login in ["root", "root+password"] {
        let out = ask(login);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("its users: autogroup:nonroot"),
            "{login}: {}",
            stdout(&out)
        );
    }
}
