//! Drives `aclc diff` on hand-made changes to the example policy (issue 11): an added rule, a
//! removed group member, a tag owner change, a widened port range, and a change that only
//! reorders and reformats — each reports exactly the expected gains and losses — plus the
//! output formats' shapes and the exit statuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;

use common::{aclc_in, examples, json, stderr, stdout};
use serde_json::{json, Value};

fn example() -> String {
    std::fs::read_to_string(examples().join("policy.hujson")).unwrap()
}

/// `aclc diff policy.hujson NEW --inventory inventory.json ARGS...`, NEW being `new` written
/// beside the example.
fn diff(new: &str, args: &[&str]) -> Output {
    let dir = common::scratch();
    for f in ["policy.hujson", "inventory.json"] {
        std::fs::copy(examples().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("new.hujson"), new).unwrap();
    let mut all = vec![
        "diff",
        "policy.hujson",
        "new.hujson",
        "--inventory",
        "inventory.json",
    ];
    all.extend_from_slice(args);
    aclc_in(&dir, &all, None)
}

/// `aclc diff old.hujson new.hujson --inventory inventory.json --format FORMAT` in `dir`.
fn diff_in(dir: &std::path::Path, format: &str) -> Output {
    let args = [
        "diff",
        "old.hujson",
        "new.hujson",
        "--inventory",
        "inventory.json",
        "--format",
        format,
    ];
    aclc_in(dir, &args, None)
}

fn edit(from: &str, to: &str) -> String {
    let text = example();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

/// The network changes as (sources, destinations, proto, ports) tuples.
fn network(doc: &Value, which: &str) -> Vec<Value> {
    doc["network"][which]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["src"]["names"], c["dst"]["names"], c["proto"], c["ports"]]))
        .collect()
}

fn empty(doc: &Value, kinds: &[&str]) {
    for kind in kinds {
        for which in ["gained", "lost"] {
            assert_eq!(doc[kind][which], json!([]), "{kind} {which}: {doc}");
        }
    }
}

const GRANT: &str = r#"{"src": ["tag:web"], "dst": ["tag:db"], "ip": ["tcp:5432"]},"#;

#[test]
fn an_added_rule_gains_exactly_its_access() {
    let new = edit(
        GRANT,
        &format!("{GRANT}\n\t\t{{\"src\": [\"tag:web\"], \"dst\": [\"tag:db\"], \"ip\": [\"tcp:6379\"]}},"),
    );
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["changed"], json!(true));
    assert_eq!(
        network(&doc, "gained"),
        vec![json!([["web-1"], ["db-1"], "tcp", "6379"])]
    );
    assert_eq!(network(&doc, "lost"), Vec::<Value>::new());
    empty(&doc, &["ssh", "peers", "capabilities"]);
    let rule = &doc["network"]["gained"][0]["rules"][0];
    assert_eq!(rule["file"], json!("new.hujson"));
    assert_eq!(rule["line"], json!(37));
    assert_eq!(
        doc["network"]["gained"][0]["src_selectors"],
        json!(["tag:web"])
    );
    assert_eq!(
        doc["network"]["gained"][0]["dst_selectors"],
        json!(["tag:db"])
    );
}

#[test]
fn a_removed_group_member_loses_exactly_her_access() {
    let new = edit(
        r#""group:eng": ["alice@example.com", "bob@example.com"],"#,
        r#""group:eng": ["alice@example.com"],"#,
    );
    let out = diff(&new, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(network(&doc, "gained"), Vec::<Value>::new());
    let lost = network(&doc, "lost");
    assert!(!lost.is_empty());
    for change in &lost {
        assert_eq!(change[0], json!(["bob-laptop"]), "{change}");
    }
    // Bob's laptop no longer reaches the web server on 80 and 443.
    assert!(
        lost.contains(&json!([["bob-laptop"], ["web-1"], "tcp,udp", "80,443"])),
        "{lost:?}"
    );
    // And no longer sees the web server and the router as peers (nor they it).
    let peers: Vec<Value> = doc["peers"]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["nodes"]["names"], c["peer"]]))
        .collect();
    assert!(
        peers.contains(&json!([["bob-laptop"], "web-1"])),
        "{peers:?}"
    );
    empty(&doc, &["ssh", "capabilities"]);
    assert_eq!(doc["ssh"]["gained"], json!([]));
    // Each change names the rules behind every destination it lists: bob's ICMP to web-1
    // was the ACL's (default protocols), to the office subnet the grant's; one change listed
    // both and named the grant alone (line 38), which does not reach web-1.
    for change in doc["network"]["lost"].as_array().unwrap() {
        let lines: Vec<&Value> = change["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["line"])
            .collect();
        let to_web = change["dst"]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("web-1"));
        if to_web {
            assert_eq!(lines, [&json!(27)], "{change}");
        }
    }
    // Ping to web-1 (both families) is lost once, owed to the ACL.
    let icmp_to_web = network(&doc, "lost")
        .into_iter()
        .filter(|c| c[1] == json!(["web-1"]) && c[2] == json!("icmp,ipv6-icmp"))
        .count();
    assert_eq!(icmp_to_web, 1, "{doc}");
}

#[test]
fn a_tag_owner_change_changes_the_policy_but_no_access() {
    let new = edit(
        r#""tag:db":     ["group:ops"],"#,
        r#""tag:db":     ["group:eng"],"#,
    );
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["changed"], json!(false));
    empty(&doc, &["network", "ssh", "peers", "capabilities"]);
    let sections = doc["policy"]["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0]["section"], json!("tagOwners"));
    assert_eq!(sections[0]["changed"][0]["name"], json!("tag:db"));
    // Without an inventory, the meaning of the policy changed: exit 4.
    let dir = common::scratch();
    std::fs::write(dir.join("new.hujson"), &new).unwrap();
    std::fs::copy(examples().join("policy.hujson"), dir.join("policy.hujson")).unwrap();
    let out = aclc_in(
        &dir,
        &["diff", "policy.hujson", "new.hujson", "--exit-code"],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("tagOwners: 1 changed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_widened_port_range_gains_only_the_new_ports() {
    let new = edit(
        GRANT,
        r#"{"src": ["tag:web"], "dst": ["tag:db"], "ip": ["tcp:5432-5440"]},"#,
    );
    let doc = json(&diff(&new, &["--format", "json"]));
    assert_eq!(
        network(&doc, "gained"),
        vec![json!([["web-1"], ["db-1"], "tcp", "5433-5440"])]
    );
    assert_eq!(network(&doc, "lost"), Vec::<Value>::new());
    empty(&doc, &["ssh", "peers", "capabilities"]);
}

#[test]
fn reordering_and_reformatting_change_nothing() {
    let text = example();
    let eng = r#"{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443", "build-server:22"]},"#;
    let ops = r#"{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},"#;
    let new = text
        .replacen(eng, "__ENG__", 1)
        .replacen(ops, eng, 1)
        .replacen("__ENG__", &format!("/* moved */ {ops}"), 1)
        .replace(
            r#""group:eng": ["alice@example.com", "bob@example.com"],"#,
            "\"group:eng\": [\n\t\t\t\"bob@example.com\",\n\t\t\t\"alice@example.com\",\n\t\t],",
        );
    assert_ne!(new, text);
    let out = diff(&new, &["--exit-code"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "access unchanged\npolicy unchanged (comments, formatting and order aside)\n"
    );
}

#[test]
fn formats_have_their_shapes() {
    let new = edit(
        GRANT,
        r#"{"src": ["tag:web"], "dst": ["tag:db"], "ip": ["tcp:5432-5433"]},"#,
    );
    let md = stdout(&diff(&new, &["--format", "markdown"]));
    assert!(md.starts_with("### aclc: policy change\n"), "{md}");
    assert!(
        md.contains("| | What | Sources | Destinations | Rule |"),
        "{md}"
    );
    assert!(
        md.contains("| ➕ network | tag:web gained tcp/5433 on tag:db"),
        "{md}"
    );
    // The rule column is a code span, not an escaped one.
    assert!(md.contains("| `new.hujson:"), "{md}");
    let gh = stdout(&diff(&new, &["--format", "github"]));
    assert!(gh.lines().all(|l| l.starts_with("::notice ")), "{gh}");
    assert!(
        gh.contains("::notice file=new.hujson,line=36,title=aclc%3A network access gained::"),
        "{gh}"
    );
    let sarif: Value = serde_json::from_str(&stdout(&diff(&new, &["--format", "sarif"]))).unwrap();
    assert_eq!(sarif["version"], json!("2.1.0"));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == json!("aclc/access-gained")
            && r["locations"][0]["physicalLocation"]["region"]["startLine"] == json!(36)));
    let human = stdout(&diff(&new, &[]));
    assert!(human.starts_with("access changed: 1 gained, 0 lost\n+ network: tag:web gained tcp/5433 on tag:db: 1 source x 1 destination\n"), "{human}");
}

#[test]
fn an_invalid_side_is_exit_2_and_stdin_once() {
    let out = diff("{\"acls\": [", &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = diff("{\"acls\": [", &["--format", "json"]);
    assert_eq!(json(&out)["valid"], json!(false));
    let out = aclc_in(&examples(), &["diff", "-", "-"], Some("{}"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_github_action_runs_commands_that_exist() {
    let action =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../action.yml")).unwrap();
    for needle in [
        "aclc check \"$POLICY\"",
        "aclc test \"$POLICY\" --inventory \"$INVENTORY\" --format github",
        "aclc diff \"${args[@]}\" --format markdown",
        "aclc diff \"${args[@]}\" --format github",
        "--exit-code",
        "cargo install --locked --path \"$GITHUB_ACTION_PATH/cli\"",
    ] {
        assert!(action.contains(needle), "action.yml lacks {needle}");
    }
    for (cmd, flags) in [
        ("check", &["--format", "--inventory"][..]),
        ("test", &["--format", "--inventory"][..]),
        ("diff", &["--format", "--inventory", "--exit-code"][..]),
    ] {
        let help = stdout(&aclc_in(&examples(), &[cmd, "--help"], None));
        for flag in flags {
            assert!(help.contains(flag), "aclc {cmd} has no {flag}");
        }
        assert!(help.contains("github"), "aclc {cmd} has no github format");
    }
}

/// Dropping an empty `acls` list falls back to Tailscale's allow-all default: without an
/// inventory no rule changed, yet the meaning did (exit 4, not "unchanged").
#[test]
fn falling_back_to_allow_all_changes_the_meaning() {
    let dir = common::scratch();
    std::fs::write(
        dir.join("old.hujson"),
        "{\n  // nothing allowed\n  \"acls\": [],\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("new.hujson"), "{\n  // nothing allowed\n}\n").unwrap();
    let out = aclc_in(
        &dir,
        &["diff", "old.hujson", "new.hujson", "--exit-code"],
        None,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("default policy: 1 changed"),
        "{}",
        stdout(&out)
    );
}

/// `autogroup:danger-all` (`SrcIPs: ["*"]`) gains every address beyond the nodes: the
/// addresses no node has were compared as the text of entries holding no node, so a source
/// `*` showed only the nodes it adds (and `*` in place of the tailnet's ranges and a route
/// called the route lost, found by a hostile sweep).
#[test]
fn every_address_as_a_source_is_gained_beyond_the_nodes() {
    let new = edit(
        GRANT,
        r#"{"src": ["tag:web", "autogroup:danger-all"], "dst": ["tag:db"], "ip": ["tcp:5432"]},"#,
    );
    let doc = json(&diff(&new, &["--format", "json"]));
    let nodes = json!([
        "alice-laptop",
        "bob-laptop",
        "db-1",
        "exit-1",
        "office-router"
    ]);
    // Each with ping, which the open port brings.
    let mut gained = network(&doc, "gained");
    gained.sort_by_key(|c| c.to_string());
    assert_eq!(
        gained,
        vec![
            json!([["0.0.0.0/0"], ["db-1"], "icmp", "*"]),
            json!([["0.0.0.0/0"], ["db-1"], "tcp", "5432"]),
            json!([["::/0"], ["db-1"], "ipv6-icmp", "*"]),
            json!([["::/0"], ["db-1"], "tcp", "5432"]),
            json!([nodes, ["db-1"], "icmp,ipv6-icmp", "*"]),
            json!([nodes, ["db-1"], "tcp", "5432"]),
        ]
    );
    assert_eq!(network(&doc, "lost"), Vec::<Value>::new());
    // Back again: the same access lost, nothing gained.
    let dir = common::scratch();
    std::fs::copy(
        examples().join("inventory.json"),
        dir.join("inventory.json"),
    )
    .unwrap();
    std::fs::write(dir.join("old.hujson"), &new).unwrap();
    std::fs::write(dir.join("new.hujson"), example()).unwrap();
    let out = diff_in(&dir, "json");
    let doc = json(&out);
    assert_eq!(network(&doc, "gained"), Vec::<Value>::new());
    assert_eq!(network(&doc, "lost").len(), 6, "{doc}");
}

/// A packet's source and destination are of one family: a rule from an IPv6 source to an IPv4
/// destination gives no access (it was reported as gained, with no rule behind it), and one
/// from an address of each family to one IPv4 address gains the IPv4 source only.
#[test]
fn a_source_of_the_other_family_gains_nothing() {
    let mixed = r#"{"src": ["fd7a:115c:a1e0::2"], "dst": ["100.64.1.2"], "ip": ["tcp:22"]},"#;
    let doc = json(&diff(
        &edit(GRANT, &format!("{GRANT}\n\t\t{mixed}")),
        &["--format", "json"],
    ));
    empty(&doc, &["network"]);
    let both =
        r#"{"src": ["fd7a:115c:a1e0::3", "100.64.0.2"], "dst": ["100.64.1.2"], "ip": ["tcp:22"]},"#;
    let doc = json(&diff(
        &edit(GRANT, &format!("{GRANT}\n\t\t{both}")),
        &["--format", "json"],
    ));
    // Ping comes with the open port ("if a port is open, ping works"), over IPv4 alone.
    let mut gained = network(&doc, "gained");
    gained.sort_by_key(|c| c.to_string());
    assert_eq!(
        gained,
        vec![
            json!([["bob-laptop"], ["db-1"], "icmp", "*"]),
            json!([["bob-laptop"], ["db-1"], "tcp", "22"]),
        ]
    );
    assert_eq!(network(&doc, "lost"), Vec::<Value>::new());
}

/// A change over one address family only (an IPv4 address for a dual-stack device, as a
/// `hosts` entry often holds) says so: `family` in the JSON, "over IPv4 only" in the other
/// formats; a change over both families, or between nodes that leave no choice, does not.
#[test]
fn a_change_over_one_family_says_so() {
    let v4 = r#"{"src": ["bob@example.com"], "dst": ["100.64.1.2"], "ip": ["tcp:22"]},"#;
    let new = edit(GRANT, &format!("{GRANT}\n\t\t{v4}"));
    let doc = json(&diff(&new, &["--format", "json"]));
    let gained = tcp_changes(&doc);
    assert_eq!(gained.len(), 1, "{doc}");
    assert_eq!(gained[0]["family"], json!("ipv4"));
    // Ping comes with the open port; ICMP is IPv4 by its protocol, which is not said.
    let icmp = &doc["network"]["gained"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["proto"] == json!("icmp"))
        .unwrap_or_else(|| panic!("{doc}"));
    assert!(icmp.get("family").is_none(), "{doc}");
    let human = stdout(&diff(&new, &[]));
    assert!(
        human.contains("gained tcp/22 over IPv4 only on 100.64.1.2"),
        "{human}"
    );
    let v6 = r#"{"src": ["bob@example.com"], "dst": ["fd7a:115c:a1e0::102"], "ip": ["tcp:22"]},"#;
    let doc = json(&diff(
        &edit(GRANT, &format!("{GRANT}\n\t\t{v6}")),
        &["--format", "json"],
    ));
    assert_eq!(tcp_changes(&doc)[0]["family"], json!("ipv6"));
    // Both families: no `family`.
    let both = r#"{"src": ["bob@example.com"], "dst": ["tag:db"], "ip": ["tcp:22"]},"#;
    let doc = json(&diff(
        &edit(GRANT, &format!("{GRANT}\n\t\t{both}")),
        &["--format", "json"],
    ));
    let gained = tcp_changes(&doc);
    assert_eq!(gained.len(), 1, "{doc}");
    assert!(gained[0].get("family").is_none(), "{doc}");
}

/// The TCP changes gained.
fn tcp_changes(doc: &Value) -> Vec<Value> {
    doc["network"]["gained"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["proto"] == json!("tcp"))
        .cloned()
        .collect()
}

/// An app grant's capability value changed (the example's dashboard role): an access change
/// (exit 4 with `--exit-code`), the old value lost and the new one gained on the same nodes,
/// each pointing at its grant. It was "access unchanged" with an inventory.
#[test]
fn an_app_capability_change_is_an_access_change() {
    let new = edit(r#"[{"role": "admin"}]"#, r#"[{"role": "viewer"}]"#);
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["changed"], json!(true));
    empty(&doc, &["network", "ssh", "peers", "capabilities"]);
    let change = |which: &str| {
        let list = doc["apps"][which].as_array().unwrap();
        assert_eq!(list.len(), 1, "{which}: {doc}");
        let c = &list[0];
        assert_eq!(c["capability"], json!("example.com/cap/dashboard"));
        assert_eq!(c["rules"].as_array().unwrap().len(), 1, "{c}");
        (
            c["src"]["names"].clone(),
            c["dst"]["names"].clone(),
            c["value"].clone(),
        )
    };
    let (gained, lost) = (change("gained"), change("lost"));
    assert_eq!(gained.2, json!([{"role": "viewer"}]));
    assert_eq!(lost.2, json!([{"role": "admin"}]));
    assert_eq!((&gained.0, &gained.1), (&lost.0, &lost.1));
    let human = diff(&new, &[]);
    assert!(
        stdout(&human).contains("+ apps: ") && stdout(&human).contains("app capability"),
        "{}",
        stdout(&human)
    );
}

/// A rule granting root after `autogroup:nonroot` (which maps root to no one): root goes on
/// to the later rule, as Tailscale's SSH server evaluates, so adding it gains root logins
/// (it was "access unchanged": the empty mapping was read as a refusal).
#[test]
fn root_after_nonroot_is_a_gain() {
    let nonroot = r#""users":  ["autogroup:nonroot"],
		},"#;
    let new = edit(
        nonroot,
        &format!(
            "{nonroot}\n\t\t{{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:self\"], \"users\": [\"root\"]}},"
        ),
    );
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    empty(&doc, &["network", "peers", "capabilities", "apps"]);
    assert_eq!(doc["ssh"]["lost"], json!([]), "{doc}");
    let gained = doc["ssh"]["gained"].as_array().unwrap();
    assert!(!gained.is_empty(), "{doc}");
    assert!(
        gained
            .iter()
            .all(|c| c["user"] == json!("root") && c["local_user"] == json!("root")),
        "{doc}"
    );
}

/// Recording added to an SSH rule (or taken away, or no longer enforced) changes no login's
/// local user or action, and the diff said "access unchanged" (`--exit-code` 0): a CI gate
/// let mandatory recording be dropped. The sessions' terms are part of SSH access: the old
/// terms are lost and the new gained, for the same logins.
#[test]
fn recording_taken_or_given_is_an_access_change() {
    let check = r#""checkPeriod": "12h","#;
    let new = edit(
        check,
        &format!(r#"{check} "recorder": ["tag:db"], "enforceRecorder": true,"#),
    );
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    empty(&doc, &["peers", "capabilities", "apps"]);
    // The servers (web-1, db-1) now reach their recorder (db-1) on TCP port 80, which
    // Tailscale gives with no rule written: owed to the SSH rule that records.
    assert_eq!(doc["network"]["lost"], json!([]), "{doc}");
    // With ping, which the open port brings (db-1 to itself: web-1 could ping it already).
    let network = doc["network"]["gained"].as_array().unwrap();
    assert_eq!(network.len(), 2, "{doc}");
    for c in network {
        assert_eq!(c["dst"]["names"], json!(["db-1"]), "{doc}");
        assert_eq!(c["rules"][0]["line"], json!(50), "{doc}");
    }
    assert!(network.iter().any(|c| c["ports"] == json!("80")), "{doc}");
    let (gained, lost) = (
        doc["ssh"]["gained"].as_array().unwrap(),
        doc["ssh"]["lost"].as_array().unwrap(),
    );
    assert!(!gained.is_empty() && gained.len() == lost.len(), "{doc}");
    for c in gained {
        assert_eq!(c["action"], json!("check"), "{doc}");
        assert_eq!(
            c["terms"],
            json!("recorded to 100.64.1.2:80, enforced"),
            "{doc}"
        );
    }
    assert!(lost.iter().all(|c| c.get("terms").is_none()), "{doc}");
    let out = diff(&new, &["--exit-code"]);
    assert!(
        stdout(&out).contains("gained ssh (check: recorded to 100.64.1.2:80, enforced) as root"),
        "{}",
        stdout(&out)
    );
    // Only the enforcement dropped: still a change.
    let enforced = new.clone();
    let dir = common::scratch();
    std::fs::copy(
        examples().join("inventory.json"),
        dir.join("inventory.json"),
    )
    .unwrap();
    std::fs::write(dir.join("old.hujson"), &enforced).unwrap();
    std::fs::write(
        dir.join("new.hujson"),
        enforced.replacen(r#" "enforceRecorder": true,"#, "", 1),
    )
    .unwrap();
    let out = diff_in(&dir, "json");
    let doc = json(&out);
    let gained = doc["ssh"]["gained"].as_array().unwrap();
    assert!(!gained.is_empty(), "{doc}");
    assert!(
        gained
            .iter()
            .all(|c| c["terms"] == json!("recorded to 100.64.1.2:80")),
        "{doc}"
    );
}

/// A grant or SSH rule to another tailnet's group (declarative node sharing) gives access
/// aclc cannot list node by node (that tailnet's devices are not known here), and the diff
/// said "access unchanged", `--exit-code` 0: each such rule added is an `external` gain.
#[test]
fn a_rule_for_another_tailnet_is_an_access_change() {
    let new = edit(
        r#""grants": ["#,
        r#""externalTailnets": {"dev": {"externalID": "T1111CNTRL", "allowIncomingConnections": true}},
	"grants": [
		{"src": ["group://dev/everyone"], "dst": ["tag:web"], "ip": ["*"]},"#,
    );
    let out = diff(&new, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    empty(&doc, &["network", "ssh", "peers", "capabilities", "apps"]);
    assert_eq!(doc["external"]["lost"], json!([]), "{doc}");
    let gained = doc["external"]["gained"].as_array().unwrap();
    assert_eq!(gained.len(), 1, "{doc}");
    assert_eq!(
        gained[0]["reference"],
        json!("group://dev/everyone"),
        "{doc}"
    );
    let human = stdout(&diff(&new, &[]));
    assert!(
        human.starts_with("access changed: 1 gained, 0 lost"),
        "{human}"
    );
}

/// A destination `*` covers the routes a node serves (the office subnet through its router,
/// the internet through the exit node): a rule naming them beside `*:*` changes no access,
/// and narrowing `*:*` to the servers loses them ("access unchanged" before, for both: the
/// routes were compared by their text, and `*` as the node alone).
#[test]
fn a_star_destination_covers_the_routes_a_node_serves() {
    let star = r#"{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},"#;
    let covered = edit(
        star,
        &format!("{star}\n\t\t{{\"action\": \"accept\", \"src\": [\"group:ops\"], \"dst\": [\"office-lan:*\", \"autogroup:internet:*\"]}},"),
    );
    let out = diff(&covered, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let narrowed = edit(
        star,
        r#"{"action": "accept", "src": ["group:ops"], "dst": ["tag:web:*", "tag:db:*"]},"#,
    );
    let out = diff(&narrowed, &["--format", "json", "--exit-code"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc = json(&out);
    let lost: Vec<String> = doc["network"]["lost"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["dst"]["names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(
        lost.iter()
            .any(|d| d == "192.168.10.0/24 via office-router"),
        "{lost:?}"
    );
    assert!(lost.iter().any(|d| d.ends_with("via exit-1")), "{lost:?}");
}

/// A change reaching hundreds of nodes (every node of 800 seeing every other, one peer line
/// each): the markdown comment stays under GitHub's 65,536-character limit, the rows left out
/// counted, and says where the full list is (it was 300 KB).
#[test]
fn the_markdown_comment_fits_a_pull_request() {
    let dir = common::scratch();
    let users: Vec<String> = (0..800)
        .map(|i| {
            format!(
                r#"{{"id": {}, "name": "u{i}", "email": "u{i}@example.com"}}"#,
                i + 1
            )
        })
        .collect();
    let nodes: Vec<String> = (0..800)
        .map(|i| {
            format!(
                r#"{{"name": "device-with-a-long-name-{i:04}", "user": "u{i}@example.com", "ipv4": "100.64.{}.{}", "ipv6": "fd7a:115c:a1e0::{:x}"}}"#,
                i / 256,
                i % 256,
                i + 1
            )
        })
        .collect();
    let inventory = format!(
        r#"{{"users": [{}], "nodes": [{}]}}"#,
        users.join(","),
        nodes.join(",")
    );
    std::fs::write(dir.join("inventory.json"), inventory).unwrap();
    std::fs::write(dir.join("old.hujson"), r#"{"acls": []}"#).unwrap();
    std::fs::write(
        dir.join("new.hujson"),
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
    )
    .unwrap();
    let out = diff_in(&dir, "markdown");
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.len() < 65_536, "{} characters", text.len());
    assert!(text.contains("more changes."), "{text}");
    assert!(text.contains("--format json"), "{text}");
    assert!(text.trim_end().ends_with("</details>"), "{text}");
}

/// Every change a rule from `*` makes points at that rule, the IPv6 part of the sources too
/// (its sample flow went to the destination's IPv4 address, which no IPv6 packet reaches, so
/// `fd7a:115c:a1e0::/48` had no rule).
#[test]
fn every_change_of_a_star_source_has_its_rule() {
    let star = r#"{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},"#;
    let new = edit(
        star,
        &format!("{star}\n\t\t{{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"tag:web:8080\"]}},"),
    );
    let out = diff(&new, &["--format", "json"]);
    let doc = json(&out);
    let gained = doc["network"]["gained"].as_array().unwrap();
    assert!(
        gained
            .iter()
            .any(|c| c["src"]["names"] == json!(["fd7a:115c:a1e0::/48"])),
        "{doc}"
    );
    for c in gained {
        assert_eq!(c["rules"].as_array().unwrap().len(), 1, "{c}");
    }
}

/// Exit nodes with equal filters share one comparison (`diff/network/shared.rs`), but not
/// where a destination range holds a node's own address: there each node's route pieces
/// are cut around its own address. A `*` rule reaches both exit nodes alike; each reports
/// the pieces around itself, not the other's.
#[test]
fn exit_nodes_with_equal_filters_report_pieces_around_their_own_addresses() {
    let dir = common::scratch();
    let node = |name: &str, last: u8, exit: bool| {
        let (user, tags, routes) = match exit {
            true => ("null", r#"["tag:exit"]"#, r#"["0.0.0.0/0", "::/0"]"#),
            false => (r#""a@example.com""#, "[]", "[]"),
        };
        format!(
            r#"{{"name": "{name}", "user": {user}, "tags": {tags}, "ipv4": "100.64.0.{last}", "ipv6": "fd7a:115c:a1e0::{last}", "routable_ips": {routes}, "approved_routes": {routes}}}"#
        )
    };
    let inventory = format!(
        r#"{{"users": [{{"id": 1, "name": "a", "email": "a@example.com", "roles": []}}],
            "nodes": [{}, {}, {}], "registration_order": [],
            "tailnet": {{"name": "example.com", "dns": {{}}, "settings": {{}}}}}}"#,
        node("client", 1, false),
        node("x0", 2, true),
        node("x1", 3, true)
    );
    let policy = |dst: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:exit": []}}, "acls": [{{"action": "accept", "src": ["a@example.com"], "dst": [{dst}]}}]}}"#
        )
    };
    std::fs::write(dir.join("inventory.json"), inventory).unwrap();
    std::fs::write(dir.join("old.hujson"), policy(r#""8.8.8.8:53""#)).unwrap();
    std::fs::write(dir.join("new.hujson"), policy(r#""8.8.8.8:53", "*:80""#)).unwrap();
    let out = diff_in(&dir, "human");
    let text = stdout(&out);
    for piece in [
        "0.0.0.0-100.64.0.1 via x0",
        "100.64.0.3-255.255.255.255 via x0",
        "0.0.0.0-100.64.0.2 via x1",
        "100.64.0.4-255.255.255.255 via x1",
        "fd7a:115c:a1e0::4-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff via x1",
    ] {
        assert!(text.contains(piece), "{piece} missing from:\n{text}");
    }
    assert!(
        !text.contains("100.64.0.3-255.255.255.255 via x1"),
        "{text}"
    );
}

/// A definition added or removed is shown escaped like every other line: a group whose name
/// ends in a zero-width space looks like the one without it, unless the space is spelled out.
#[test]
fn added_definitions_are_shown_escaped() {
    let new = edit(
        "\"group:ops\": [\"carol@example.com\"],",
        "\"group:ops\": [\"carol@example.com\"], \"group:eng\u{200B}\": [\"carol@example.com\"],",
    );
    for format in ["human", "markdown"] {
        let o = diff(&new, &["--format", format]);
        let text = stdout(&o);
        assert!(text.contains("group:eng\\u{200b}"), "{format}: {text}");
        assert!(!text.contains('\u{200B}'), "{format}: {text}");
    }
}

/// A change over both families that also covers a device over one family only (its IPv4
/// address had the access already) names that device and its family, in JSON and in the
/// human report: alice-laptop gains web-1:80 over IPv6 only, alice-phone over both.
#[test]
fn a_source_covered_over_one_family_in_a_wider_change_is_named() {
    let dir = common::scratch();
    let inventory = r#"{"users": [{"id": 1, "name": "alice", "email": "alice@example.com"}],
        "nodes": [
          {"name": "alice-laptop", "user": "alice@example.com", "tags": [], "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
          {"name": "alice-phone", "user": "alice@example.com", "tags": [], "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4"},
          {"name": "web-1", "user": null, "tags": ["tag:web"], "ipv4": "100.64.1.1", "ipv6": "fd7a:115c:a1e0::101"}],
        "tailnet": {"name": "example.com"}}"#;
    let policy = |src: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:web": []}}, "acls": [{{"action": "accept", "src": ["{src}"], "dst": ["tag:web:80"]}}]}}"#
        )
    };
    std::fs::write(dir.join("inventory.json"), inventory).unwrap();
    std::fs::write(dir.join("old.hujson"), policy("100.64.0.1")).unwrap();
    std::fs::write(dir.join("new.hujson"), policy("alice@example.com")).unwrap();
    let doc = json(&diff_in(&dir, "json"));
    let gained = doc["network"]["gained"].as_array().unwrap();
    let tcp = gained
        .iter()
        .find(|c| c["proto"] == "tcp,udp")
        .expect("a tcp,udp gain");
    assert!(tcp.get("family").is_none(), "{tcp}");
    assert_eq!(
        tcp["one_family_sources"],
        json!([{"name": "alice-laptop", "family": "ipv6"}]),
        "{tcp}"
    );
    let human = stdout(&diff_in(&dir, "human"));
    assert!(
        human.contains("sources: alice-laptop, alice-phone (alice-laptop over IPv6 only)"),
        "{human}"
    );
}

/// A `*` destination covers the routes a node serves, each of one family: its IPv6 sources
/// gain nothing on an IPv4 subnet. A rule to `*:80` beside one that opens the subnet on every
/// port already was reported as a gain of the subnet (through alice-laptop's IPv6 address).
#[test]
fn a_star_destination_gains_no_route_its_sources_held() {
    let dir = common::scratch();
    std::fs::copy(
        examples().join("inventory.json"),
        dir.join("inventory.json"),
    )
    .unwrap();
    let subnet =
        r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["192.168.10.0/24:*"]}"#;
    std::fs::write(dir.join("old.hujson"), format!(r#"{{"acls": [{subnet}]}}"#)).unwrap();
    std::fs::write(
        dir.join("new.hujson"),
        format!(
            r#"{{"acls": [{subnet}, {{"action": "accept", "src": ["alice@example.com"], "dst": ["*:80"]}}]}}"#
        ),
    )
    .unwrap();
    let doc = json(&diff_in(&dir, "json"));
    let gained = doc["network"]["gained"].as_array().unwrap();
    assert!(!gained.is_empty(), "{doc}");
    for change in gained {
        let dsts = change["dst"]["names"].as_array().unwrap();
        assert!(
            !dsts
                .iter()
                .any(|d| d.as_str().unwrap().contains("192.168.10.0/24")),
            "{change}"
        );
    }
}

/// ICMPv6 in an IPv4 packet (or ICMP in an IPv6 one) is another protocol to the client,
/// admitted only by an entry open on every port: a rule to `office-lan:8080` (an IPv4
/// subnet, default protocols) gains TCP and UDP on 8080 and no `ipv6-icmp` (it was reported
/// as gained on every address of the subnet, with ports `*`).
#[test]
fn icmp_of_the_other_family_needs_every_port() {
    let out = diff(&eng_rule_to("office-lan:8080"), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&out);
    let protos: Vec<Value> = network(&doc, "gained")
        .into_iter()
        .map(|c| c[2].clone())
        .collect();
    assert_eq!(protos, [json!("tcp,udp")], "{doc}");
    // With every port open, an IPv4 packet of protocol 58 is admitted: that is a gain.
    let doc = json(&diff(&eng_rule_to("office-lan:*"), &["--format", "json"]));
    let gained = network(&doc, "gained");
    assert!(
        gained
            .iter()
            .any(|c| c[2].as_str().unwrap().contains("ipv6-icmp")),
        "{doc}"
    );
}

/// `--exit-node-filters internet` compiles both sides so: the exit node's filter keeps only
/// the internet's destinations, so an office subnet rule gains nothing through it.
#[test]
fn exit_node_filters_apply_to_both_sides() {
    let new = eng_rule_to("office-lan:8080");
    let via = |args: &[&str]| -> String {
        let doc = json(&diff(&new, args));
        network(&doc, "gained")
            .iter()
            .map(|c| c[1].to_string())
            .collect()
    };
    assert!(via(&["--format", "json"]).contains("via exit-1"));
    let internet = via(&["--format", "json", "--exit-node-filters", "internet"]);
    assert!(!internet.contains("via exit-1"), "{internet}");
    assert!(internet.contains("via office-router"), "{internet}");
}

/// The example with an ACL from `group:eng` to `dst` in place of a comment.
fn eng_rule_to(dst: &str) -> String {
    edit(
        "// Operations reaches everything.",
        &format!(r#"{{"action": "accept", "src": ["group:eng"], "dst": ["{dst}"]}},"#),
    )
}
