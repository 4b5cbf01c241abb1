//! Unit tests of `explain`: the allowing rules, the nearest misses and their reasons, and the
//! nodes' view of the traffic where it differs from the tests'.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

/// `explain` on a policy of `HEAD` + `body`: allowed, the allowing rules' lines, the reason
/// and the misses as `line: why`.
fn explain_lines(
    body: &str,
    query: &NetworkQuery<'_>,
) -> Result<(bool, Vec<usize>, String, Vec<String>), TestError> {
    let (source, checked, compiled) = head_compiled(body);
    let e = explain(&checked.policy, &compiled, query)?;
    Ok(shape(&source, &e))
}

/// A policy of `HEAD` + `body` (its source, for line numbers), checked against the test
/// inventory and compiled.
fn head_compiled(body: &str) -> (Source, aclc_policy::Checked, crate::Compiled) {
    let inventory = Inventory::from_json(INVENTORY).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", format!("{HEAD}{body}}}"));
    let checked = aclc_policy::parse(&source, &options).unwrap();
    let compiled = crate::compile(&checked.policy, &inventory);
    (source, checked, compiled)
}

fn shape(source: &Source, e: &Explanation) -> (bool, Vec<usize>, String, Vec<String>) {
    let line = |s: aclc_policy::Span| source.line_col(s.start as usize).line;
    (
        e.allowed(),
        e.verdict.rules().iter().map(|&s| line(s)).collect(),
        e.reason.clone(),
        e.misses
            .iter()
            .map(|m| format!("{}: {}", line(m.span), m.why))
            .collect(),
    )
}

fn q<'a>(src: &'a str, dst: &'a str, proto: Option<&'a str>) -> NetworkQuery<'a> {
    NetworkQuery {
        src,
        dst,
        proto,
        src_posture_attrs: None,
    }
}

#[test]
fn explain_allowed_names_the_rule() {
    let (allowed, rules, reason, misses) =
        explain_lines(ACLS, &q("bob@example.com", "tag:web:443", None)).unwrap();
    assert!(allowed);
    assert_eq!(rules, vec![5]);
    assert_eq!(
        reason,
        "bob@example.com reaches tag:web:443 on port 443 (tcp/udp) by 1 rule"
    );
    assert!(misses.is_empty());
    // Node names stand for their device, on both ends.
    let (allowed, rules, ..) = explain_lines(ACLS, &q("bob-laptop", "web-1:80", None)).unwrap();
    assert!(allowed);
    assert_eq!(rules, vec![5]);
}

/// The other rules that let an allowed flow through are named beside the allowing one:
/// removing only that one would not deny the flow (found by a sweep of the engine's
/// questions, where `explain_flow` named one of two allowing rules).
#[test]
fn explain_names_the_other_rules_that_allow() {
    let body = r#""acls": [
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:80,443"]},
  {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:443"]},
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:prod:443"]}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    let line = |s: aclc_policy::Span| source.line_col(s.start as usize).line;
    let e = explain(
        &checked.policy,
        &compiled,
        &q("bob-laptop", "web-1:443", None),
    )
    .unwrap();
    assert!(e.allowed());
    assert_eq!(
        e.verdict
            .rules()
            .iter()
            .map(|&s| line(s))
            .collect::<Vec<_>>(),
        [5]
    );
    // Line 6 lets bob through too; line 7 is alice's, line 8 another destination's.
    assert_eq!(e.also.iter().map(|&s| line(s)).collect::<Vec<_>>(), [6]);
    // One rule alone: nothing else to name.
    let e = explain(
        &checked.policy,
        &compiled,
        &q("bob-laptop", "web-1:80", None),
    )
    .unwrap();
    assert_eq!(
        e.verdict
            .rules()
            .iter()
            .map(|&s| line(s))
            .collect::<Vec<_>>(),
        [6]
    );
    assert!(e.also.is_empty());
    // A group: alice's own rule lets her device through too.
    let e = explain(
        &checked.policy,
        &compiled,
        &q("group:eng", "web-1:443", None),
    )
    .unwrap();
    assert_eq!(
        e.verdict
            .rules()
            .iter()
            .map(|&s| line(s))
            .collect::<Vec<_>>(),
        [5]
    );
    assert_eq!(e.also.iter().map(|&s| line(s)).collect::<Vec<_>>(), [6, 7]);
    // A denial names no other rule.
    let e = explain(
        &checked.policy,
        &compiled,
        &q("bob-laptop", "web-1:22", None),
    )
    .unwrap();
    assert!(!e.allowed());
    assert!(e.also.is_empty());
}

/// ICMP gets through wherever any rule opens some port to the source: a TCP rule beside
/// the ICMP one is named too, and lets the ping through over the family the ICMP rule
/// leaves out (explain said "over IPv4 only"; found by a differential of explain against
/// the compiled filters).
#[test]
fn explain_icmp_names_every_rule_that_lets_a_ping_through() {
    // `db` is prod-1's IPv4 address alone.
    let body = r#""acls": [
  {"action": "accept", "src": ["bob@example.com"], "dst": ["db:*"], "proto": "icmp"},
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:prod:443"], "proto": "tcp"}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    let line = |s: aclc_policy::Span| source.line_col(s.start as usize).line;
    let e = explain(
        &checked.policy,
        &compiled,
        &q("bob-laptop", "prod-1", Some("icmp")),
    )
    .unwrap();
    assert!(e.allowed(), "{}", e.reason);
    assert_eq!(
        e.verdict
            .rules()
            .iter()
            .map(|&s| line(s))
            .collect::<Vec<_>>(),
        [5]
    );
    assert_eq!(e.also.iter().map(|&s| line(s)).collect::<Vec<_>>(), [6]);
    assert!(!e.reason.contains("only"), "{}", e.reason);
}

#[test]
fn explain_wrong_port_and_wrong_source() {
    // Wrong port: the rule reaching tag:web opens 80,443 only.
    let (allowed, rules, reason, misses) =
        explain_lines(ACLS, &q("bob@example.com", "tag:web:22", None)).unwrap();
    assert!(!allowed);
    assert!(rules.is_empty());
    assert_eq!(
        reason,
        "no rule lets bob@example.com (100.64.0.2) reach tag:web:22 on port 22 (tcp/udp)"
    );
    assert_eq!(
        misses,
        vec!["5: the rule opens tcp/udp/icmp/ipv6-icmp on ports 80,443, not port 22 (tcp/udp)"]
    );
    // Wrong source: only alice may reach tag:prod:22.
    let (allowed, _, _, misses) = explain_lines(ACLS, &q("bob-laptop", "prod-1:22", None)).unwrap();
    assert!(!allowed);
    assert_eq!(
        misses,
        vec!["6: src \"bob-laptop\" (100.64.0.2) is not in the rule's src"]
    );
    // A group: the refused device is named (only alice's reaches tag:prod:22, not bob's).
    let (allowed, _, reason, misses) =
        explain_lines(ACLS, &q("group:eng", "prod-1:22", None)).unwrap();
    assert!(!allowed);
    assert_eq!(
        reason,
        "no rule lets group:eng (bob-laptop, 100.64.0.2) reach prod-1:22 on port 22 (tcp/udp)"
    );
    assert_eq!(
        misses,
        vec!["6: src \"group:eng\" (bob-laptop, 100.64.0.2) is not in the rule's src"]
    );
    // Wrong protocol: the prod rule is TCP only.
    let (allowed, _, _, misses) =
        explain_lines(ACLS, &q("alice-laptop", "db:22", Some("udp"))).unwrap();
    assert!(!allowed);
    assert_eq!(misses, vec!["6: the rule opens tcp (ports 22), not udp"]);
}

/// A name that is both a `hosts` entry and an inventory node is read as the entry (as tests
/// read it), and the answer says so, with the node's address to ask by instead.
#[test]
fn explain_says_when_a_node_name_is_read_as_a_policy_name() {
    let inventory = INVENTORY.replace("\"prod-1\"", "\"db\"");
    let inventory = Inventory::from_json(&inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let body = r#""hosts": {"db": "100.64.0.9"},
"acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:prod:5432"]}],
"#;
    let text = format!("{{\"tagOwners\": {{\"tag:prod\": []}},\n{body}}}");
    let source = Source::new("policy.hujson", text);
    let checked = aclc_policy::parse(&source, &options).unwrap();
    let compiled = crate::compile(&checked.policy, &inventory);
    let ask = |dst| explain(&checked.policy, &compiled, &q("alice-laptop", dst, None)).unwrap();
    let shadowed = ask("db:5432");
    assert!(!shadowed.allowed());
    assert!(
        shadowed
            .reason
            .ends_with("(\"db\" is read as the policy's name, not as the node db (100.64.0.3): ask by the node's address for the node)"),
        "{}",
        shadowed.reason
    );
    let by_address = ask("100.64.0.3:5432");
    assert!(by_address.allowed());
    assert!(
        !by_address.reason.contains("read as"),
        "{}",
        by_address.reason
    );
}

/// A rule naming only a device's IPv4 address lets the device through over IPv4: explain
/// answers for the traffic, so a node asked by name is allowed (saying the family), an IPv6
/// destination address is denied, and an address with no destination of its family is told
/// apart (it was denied for the device's IPv6 address, even towards an IPv4 destination).
#[test]
fn explain_judges_each_family_for_the_traffic() {
    let body = r#""acls": [
  {"action": "accept", "src": ["100.64.0.1"], "dst": ["db:5432"]}
],
"#;
    let run = |src: &str, dst: &str| explain_lines(body, &q(src, dst, None)).unwrap();
    let (allowed, rules, reason, _) = run("alice-laptop", "prod-1:5432");
    assert!(allowed);
    assert_eq!(rules, vec![5]);
    assert_eq!(
        reason,
        "alice-laptop reaches prod-1:5432 on port 5432 (tcp/udp) by 1 rule, over IPv4 only \
         (no rule lets fd7a:115c:a1e0::1 through)"
    );
    let (allowed, _, reason, _) = run("alice-laptop", "100.64.0.3:5432");
    assert!(allowed);
    assert!(!reason.contains("only"), "{reason}");
    let (allowed, _, reason, _) = run("alice-laptop", "[fd7a:115c:a1e0::3]:5432");
    assert!(!allowed);
    assert!(reason.contains("(fd7a:115c:a1e0::1)"), "{reason}");
    let (allowed, _, reason, misses) = run("100.64.0.1", "[fd7a:115c:a1e0::3]:5432");
    assert!(!allowed);
    assert!(reason.contains("no address of the family"), "{reason}");
    assert!(misses.is_empty());
    // A test still asks every source address (`judge`): alice's IPv6 address is not let
    // through, so her devices are denied where explain says alice-laptop gets through.
    let (_, report) = run_with(
        INVENTORY,
        r#""acls": [{"action": "accept", "src": ["100.64.0.1"], "dst": ["db:5432"]}],
"tests": [{"src": "alice@example.com", "deny": ["db:5432"]}, {"src": "100.64.0.1", "accept": ["db:5432"]}],
"#,
    );
    assert!(report.passed(), "{report:?}");
}

#[test]
fn explain_posture_gate() {
    let body = r#""postures": {"posture:latest": ["node:tsVersion >= '1.60'"]},
"acls": [
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"], "srcPosture": ["posture:latest"]}
],
"#;
    let (allowed, _, _, misses) =
        explain_lines(body, &q("bob@example.com", "tag:web:443", None)).unwrap();
    assert!(!allowed);
    assert_eq!(
        misses,
        vec!["6: the rule's posture gate does not admit src \"bob@example.com\" (100.64.0.2)"]
    );
    let attrs = serde_json::json!({"node:tsVersion": "1.62.0"});
    let query = NetworkQuery {
        src_posture_attrs: attrs.as_object(),
        ..q("bob@example.com", "tag:web:443", None)
    };
    let (allowed, rules, ..) = explain_lines(body, &query).unwrap();
    assert!(allowed);
    assert_eq!(rules, vec![6]);
}

#[test]
fn explain_ports_and_errors() {
    // TCP/UDP need a port; ICMP does not.
    let err = explain_lines(ACLS, &q("bob@example.com", "tag:web", None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dst \"tag:web\" has no port: write DST:PORT (tcp/udp needs a port; ICMP, GRE and other protocols without ports do not)"
    );
    let (allowed, ..) =
        explain_lines(ACLS, &q("bob@example.com", "tag:web", Some("icmp"))).unwrap();
    assert!(allowed);
    let err = explain_lines(ACLS, &q("nobody", "tag:web:80", None)).unwrap_err();
    assert!(matches!(err, TestError::UnknownSource(_)), "{err:?}");
    // A source with no devices reaches nothing.
    let (allowed, _, reason, _) =
        explain_lines(ACLS, &q("dave@example.com", "tag:web:80", None)).unwrap();
    assert!(!allowed);
    assert!(reason.contains("has no devices"), "{reason}");
}

/// A user-owned destination of an `autogroup:member` (or `autogroup:self`) SSH rule admits only
/// its own user: the miss says so rather than only that the source is outside the rule.
#[test]
fn explain_ssh_own_devices_miss() {
    let body = r#""ssh": [
  {"action": "accept", "src": ["group:eng"], "dst": ["autogroup:member"], "users": ["root"]}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    let run = |src: &str, dst: &str| {
        shape(
            &source,
            &explain_ssh(&checked.policy, &compiled, src, dst, "root").unwrap(),
        )
    };
    assert!(run("alice@example.com", "alice-laptop").0);
    let (allowed, _, _, misses) = run("alice@example.com", "bob-laptop");
    assert!(!allowed);
    assert_eq!(
        misses,
        vec![
            "5: src \"alice@example.com\" is not in the rule's src, fails its posture gate, or is \
             not a device of bob-laptop's user (\"autogroup:member\" admits each user only to \
             their own devices)"
        ]
    );
}

/// Recording enforced with no recorder device: the node gets a refusing rule, which the client
/// applies to every login from its sources (a reject action reads no user map), so a later
/// rule for another login does not admit it either; explain says so, as the node does.
#[test]
fn explain_ssh_refusing_rule_covers_every_login() {
    let body = r#""ssh": [
  {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:prod"], "users": ["root"], "recorder": ["tag:empty"], "enforceRecorder": true},
  {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:prod"], "users": ["ubuntu"]}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    for login in ["root", "ubuntu"] {
        let (allowed, _, _, misses) = shape(
            &source,
            &explain_ssh(
                &checked.policy,
                &compiled,
                "alice@example.com",
                "prod-1",
                login,
            )
            .unwrap(),
        );
        assert!(!allowed, "{login}");
        assert_eq!(
            misses.first().map(String::as_str),
            Some(
                "5: the rule refuses every login from its sources (session recording enforced, \
                 no device carries a recorder tag; a node reads no user map on a refusing rule)"
            ),
            "{login}"
        );
    }
    // bob is no source of the refusing rule: nothing refuses him, nothing admits him.
    let (allowed, ..) = shape(
        &source,
        &explain_ssh(
            &checked.policy,
            &compiled,
            "bob@example.com",
            "prod-1",
            "ubuntu",
        )
        .unwrap(),
    );
    assert!(!allowed);
}

#[test]
fn explain_ssh_logins() {
    let body = r#""ssh": [
  {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:prod"], "users": ["root"]},
  {"action": "check", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["ubuntu"]},
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:prod"], "users": ["autogroup:nonroot"]}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    let run = |src: &str, dst: &str, user: &str| {
        shape(
            &source,
            &explain_ssh(&checked.policy, &compiled, src, dst, user).unwrap(),
        )
    };
    let (allowed, rules, ..) = run("alice@example.com", "prod-1", "root");
    assert!(allowed);
    assert_eq!(rules, vec![5]);
    let (allowed, rules, reason, _) = run("bob-laptop", "tag:prod", "ubuntu");
    assert!(allowed);
    assert_eq!(rules, vec![6]);
    assert!(reason.contains("check rule"), "{reason}");
    let (allowed, _, reason, misses) = run("bob@example.com", "tag:prod", "root");
    assert!(!allowed);
    assert_eq!(
        reason,
        "no ssh rule of prod-1 lets bob@example.com log in as root"
    );
    assert_eq!(
        misses,
        vec![
            "5: src \"bob@example.com\" is not in the rule's src (or fails its posture gate)",
            "6: the rule does not let \"bob@example.com\" log in as \"root\" (its users: ubuntu)",
            "7: the rule does not let \"bob@example.com\" log in as \"root\" (its users: \
             autogroup:nonroot (any user but root))",
        ]
    );
    // `*` and `=` are keys of a rule's user map, not accounts: asked about, they would read
    // as an answer about every account (`autogroup:nonroot` maps `*` to `=`).
    for pattern in ["*", "="] {
        assert_eq!(
            explain_ssh(
                &checked.policy,
                &compiled,
                "alice@example.com",
                "prod-1",
                pattern
            ),
            Err(TestError::PatternUser(pattern.to_string()))
        );
    }
}

/// A login that some source devices make by a check rule and others by an accept rule is
/// said as both (it was said "by an accept rule", as the combined verdict counts it); an
/// IPv6 address names its device (only `sshTests` refuse one).
#[test]
fn explain_ssh_mixed_actions_and_ipv6_destinations() {
    let body = r#""ssh": [
  {"action": "check", "src": ["bob@example.com"], "dst": ["tag:prod"], "users": ["ubuntu"]},
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["ubuntu"]}
],
"#;
    let (source, checked, compiled) = head_compiled(body);
    let run = |src: &str, dst: &str| {
        shape(
            &source,
            &explain_ssh(&checked.policy, &compiled, src, dst, "ubuntu").unwrap(),
        )
    };
    let (allowed, rules, reason, _) = run("group:eng", "prod-1");
    assert!(allowed);
    assert_eq!(rules, vec![5, 6]);
    assert!(
        reason.contains("check rule for some") && reason.contains("accept rule for the rest"),
        "{reason}"
    );
    let (_, _, reason, _) = run("alice@example.com", "prod-1");
    assert!(reason.ends_with("by an accept rule"), "{reason}");
    let (_, _, reason, _) = run("bob@example.com", "prod-1");
    assert!(reason.contains("by a check rule (the login"), "{reason}");
    // prod-1 by its IPv6 address: the same answer as by name.
    assert_eq!(
        run("bob@example.com", "fd7a:115c:a1e0::3").0,
        run("bob@example.com", "prod-1").0
    );
    let (allowed, ..) = run("alice@example.com", "fd7a:115c:a1e0::3");
    assert!(allowed);
    // An address no device has names nothing.
    assert!(explain_ssh(
        &checked.policy,
        &compiled,
        "alice@example.com",
        "fd7a:115c:a1e0::99",
        "ubuntu"
    )
    .is_err());
}

/// What `check_test_shapes` reports for a policy of `HEAD` and `body`: each failure's message,
/// and the report.
fn shape_failures(body: &str) -> (Vec<String>, TestReport) {
    let source = Source::new("policy.hujson", format!("{HEAD}{body}}}"));
    let checked = aclc_policy::parse(&source, &aclc_policy::Options::default()).unwrap();
    let report = check_test_shapes(&checked.policy);
    let failures = report.results.iter().map(|r| r.message(&source)).collect();
    (failures, report)
}

/// Without an inventory, only the failures no tailnet can change are reported: malformed
/// tests, endpoints a test cannot name, and groups, tags and hosts the policy does not
/// define. Users (here `carol@example.com`, whom no inventory lists) and every verdict are
/// not judged, so a test that would fail on a real tailnet is not reported here.
#[test]
fn shapes_without_an_inventory() {
    let body = r#""acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod:22"]}],
"tests": [
  {"src": "carol@example.com", "accept": ["tag:prod:22"], "deny": ["db:80"]},
  {"src": "group:eng", "deny": ["tag:prod:22"]},
  {"src": "phantom", "accept": ["tag:prod:22"]},
  {"src": "carol@example.com", "accept": ["10.0.0.0/24:22", "tag:nope:22"]},
  {"src": "group:eng", "proto": "bogus", "accept": ["tag:prod:22"]}
],
"sshTests": [
  {"src": "carol@example.com", "dst": ["tag:prod"], "accept": [""]},
  {"src": "carol@example.com", "dst": ["tag:prod"], "accept": ["root"]},
  {"src": "carol@example.com", "accept": ["root"]}
]"#;
    let (failures, report) = shape_failures(body);
    assert_eq!(
        failures,
        vec![
            "tests[2]: src \"phantom\" is not a user, group, tag or host alias",
            "carol@example.com -> 10.0.0.0/24:22 (tcp/udp): dst \"10.0.0.0/24\" is a range of addresses: a test needs a single address",
            "carol@example.com -> tag:nope:22 (tcp/udp): tag \"tag:nope\" is not defined in tagOwners",
            "tests[4]: proto \"bogus\": proto name \"bogus\" not known; use protocol number 0-255",
            "carol@example.com -> tag:prod as \"\": user \"\" is not valid",
        ]
    );
    assert!(!report.passed());
}

/// Without an inventory, a network `deny` the rules break between addresses the test writes
/// is reported: every rule grants, so what is allowed on a tailnet of no nodes is allowed on
/// every tailnet. An `accept` that fails there is not (nodes may make it hold), nor a `deny`
/// from a source that only nodes give addresses to.
#[test]
fn deny_assertions_broken_without_any_node() {
    let body = r#""acls": [{"action": "accept", "src": ["10.0.0.1", "group:eng"], "dst": ["outside:22", "tag:prod:22"]}],
"tests": [
  {"src": "10.0.0.1", "accept": ["192.0.2.7:80"], "deny": ["outside:22", "192.0.2.7:23"]},
  {"src": "group:eng", "deny": ["outside:22"]},
  {"src": "10.0.0.9", "deny": ["outside:22"]}
]"#;
    let (failures, _) = shape_failures(body);
    assert_eq!(
        failures,
        vec!["10.0.0.1 -> outside:22 (tcp/udp): expected denied, got allowed (allowed by policy.hujson:4)"]
    );
}

#[test]
fn icmp_tests_without_a_port_or_with_port_zero() {
    // Real policies applied through GitOps write ICMP tests as `tag:web` or `tag:web:0`.
    let got = lines(
        r#""acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:*"]}],
"tests": [
  {"src": "bob@example.com", "proto": "icmp", "accept": ["tag:web", "tag:web:0"], "deny": ["tag:prod"]},
  {"src": "bob@example.com", "proto": "tcp", "accept": ["tag:web", "tag:web:0"]}
]"#,
    );
    let warn = |dst: &str| {
        format!(
            " [warning: dst \"{dst}\" has no port: ICMP has none, so aclc evaluated the test on its \
             addresses; it cannot verify that Tailscale accepts a dst without a port]"
        )
    };
    assert_eq!(
        got,
        [
            format!(
                "PASS bob@example.com -> tag:web (icmp): allowed (allowed by policy.hujson:4){}",
                warn("tag:web")
            ),
            "PASS bob@example.com -> tag:web:0 (icmp): allowed (allowed by policy.hujson:4)"
                .to_string(),
            format!(
                "PASS bob@example.com -> tag:prod (icmp): denied{}",
                warn("tag:prod")
            ),
            "FAIL bob@example.com -> tag:web (tcp): dst \"tag:web\" has no port: write host:port"
                .to_string(),
            "PASS bob@example.com -> tag:web:0 (tcp): allowed (allowed by policy.hujson:4)"
                .to_string(),
        ]
    );
}

#[test]
fn autogroups_are_not_test_sources() {
    // Tailscale: "unknown user or host: \"autogroup:member\"" (tailscale/tailscale#12370).
    let got = lines(&format!(
        r#"{ACLS}"tests": [{{"src": "autogroup:member", "accept": ["tag:web:443"]}}, {{"src": "autogroup:admin", "deny": ["tag:prod:22"]}}]"#
    ));
    assert_eq!(
        got,
        [
            "FAIL tests[0]: src \"autogroup:member\": unknown user or host (a test's src is a user, group, tag, host or address, not an autogroup)",
            "FAIL tests[1]: src \"autogroup:admin\": unknown user or host (a test's src is a user, group, tag, host or address, not an autogroup)",
        ]
    );
}

/// A rule that covers a source only towards the destination's other address family lets no
/// packet through: an IPv4-only device and a grant to a device's IPv6 address alone. Where
/// one family gets through (a dual-stack source), the verdict stands.
#[test]
fn a_flow_allowed_only_across_address_families_is_denied() {
    let inventory = INVENTORY.replace(
        r#""ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4""#,
        r#""ipv4": "100.64.0.4""#,
    );
    let body = r#""grants": [{"src": ["tag:web", "tag:prod"], "dst": ["fd7a:115c:a1e0::2"], "ip": ["tcp:22"]}],
"tests": [{"src": "tag:web", "deny": ["[fd7a:115c:a1e0::2]:22"]}, {"src": "tag:prod", "accept": ["[fd7a:115c:a1e0::2]:22"]}]"#;
    assert_eq!(
        lines_with(&inventory, body),
        [
            "PASS tag:web -> [fd7a:115c:a1e0::2]:22 (tcp/udp): denied",
            "PASS tag:prod -> [fd7a:115c:a1e0::2]:22 (tcp/udp): allowed (allowed by policy.hujson:4)",
        ]
    );
}

/// The test inventory with one more node (its JSON object).
fn inventory_with(node: &str) -> Inventory {
    let text = INVENTORY.replace(
        "    ],\n    \"registration_order\"",
        &format!(",\n        {node}\n    ],\n    \"registration_order\""),
    );
    Inventory::from_json(&text).unwrap()
}

/// `body` (a whole policy) checked against `inventory`, and compiled.
fn checked_compiled(inventory: &Inventory, body: &str) -> (aclc_policy::Checked, crate::Compiled) {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", body.to_string());
    let checked = aclc_policy::parse(&source, &options).unwrap();
    let compiled = crate::compile(&checked.policy, inventory);
    (checked, compiled)
}

/// `explain` judges traffic as the nodes' filters let it through, where that differs from
/// how `tests` are judged: a `via` grant only to the addresses its routers carry, ICMP to any
/// address a rule opens to the source, and a protocol without ports only by a rule open on
/// every port.
#[test]
fn explain_judges_traffic_as_nodes_do() {
    let inventory = inventory_with(
        r#"{"name": "rtr", "user": null, "tags": ["tag:rtr"], "ipv4": "100.64.0.9",
         "ipv6": "fd7a:115c:a1e0::9", "routable_ips": ["10.0.0.0/24"],
         "approved_routes": ["10.0.0.0/24"]}"#,
    );
    assert!(inventory.nodes().iter().any(|n| &*n.name == "rtr"));
    let body = r#"{"tagOwners": {"tag:rtr": [], "tag:web": []},
"grants": [
  {"src": ["alice@example.com"], "dst": ["10.0.0.0/24", "tag:web"], "ip": ["22"], "via": ["tag:rtr"]},
  {"src": ["bob@example.com"], "dst": ["10.0.0.0/24"], "ip": ["80"], "via": ["tag:web"]},
  {"src": ["bob@example.com"], "dst": ["tag:web"], "ip": ["tcp:8080", "gre:22"]},
  {"src": ["alice@example.com"], "dst": ["tag:web"], "ip": ["gre:*"]}
],
"tests": [{"src": "bob@example.com", "accept": ["10.0.0.5:80"]}]}"#;
    let (checked, compiled) = checked_compiled(&inventory, body);
    let run = |src: &str, dst: &str, proto: Option<&str>| {
        let e = explain(&checked.policy, &compiled, &q(src, dst, proto)).unwrap();
        (e.allowed(), e.reason)
    };
    // `via`: through the router carrying the tag, to what it routes; not to a device.
    assert!(run("alice@example.com", "10.0.0.5:22", None).0);
    assert!(!run("alice@example.com", "web-1:22", None).0);
    assert!(!run("alice@example.com", "10.0.0.5:23", None).0);
    // No node tagged `tag:web` routes 10.0.0.0/24: no filter has the rule.
    assert!(!run("bob@example.com", "10.0.0.5:80", None).0);
    // `tests` count a `via` grant like one without (the module's evidence).
    let report = crate::policytest::run_tests(&checked.policy, &compiled);
    assert!(report.results.iter().all(|r| r.passed), "{report:?}");
    // ICMP reaches an address some rule opens to the source, whatever its protocol.
    let (allowed, reason) = run("bob@example.com", "web-1", Some("icmp"));
    assert!(allowed, "{reason}");
    assert!(reason.contains("lets ICMP through"), "{reason}");
    assert!(!run("dave@example.com", "web-1", Some("icmp")).0);
    // GRE has no ports: only a rule open on every port lets it through, port named or not.
    assert!(!run("bob@example.com", "web-1", Some("gre")).0);
    assert!(!run("bob@example.com", "web-1:22", Some("gre")).0);
    assert!(run("alice@example.com", "web-1", Some("gre")).0);
    assert!(run("alice@example.com", "web-1:9", Some("gre")).0);
    // `*` through a router is put on the router as written: its filter lets traffic to the
    // router itself through, as explain says; a device that routes nothing gets no rule.
    let body = r#"{"tagOwners": {"tag:rtr": [], "tag:web": []},
"grants": [{"src": ["alice@example.com"], "dst": ["*"], "ip": ["tcp:22"], "via": ["tag:rtr", "tag:web"]}]}"#;
    let (checked, compiled) = checked_compiled(&inventory, body);
    let run = |dst: &str| {
        explain(
            &checked.policy,
            &compiled,
            &q("alice@example.com", dst, None),
        )
        .unwrap()
        .allowed()
    };
    assert!(run("rtr:22"));
    assert!(run("10.0.0.5:22"));
    assert!(!run("web-1:22"));
    assert!(!run("bob-laptop:22"));
    assert!(compiled.filter_rules("web-1").unwrap().is_empty());
}

/// Through an exit node, a `via` grant carries the internet of the families its approved exit
/// routes serve, as compile puts the rules: not a private prefix (the exit node gets no rule
/// for it), and not the other family's internet when only one of the two routes is approved
/// (found by a consistency sweep of explain against the compiled filters).
#[test]
fn explain_through_an_exit_node_follows_its_routes() {
    let inventory = inventory_with(
        r#"{"name": "exit-1", "user": null, "tags": ["tag:exit"], "ipv4": "100.64.0.9",
         "ipv6": "fd7a:115c:a1e0::9", "routable_ips": ["0.0.0.0/0", "::/0"],
         "approved_routes": ["::/0"]}"#,
    );
    let body = r#"{"tagOwners": {"tag:exit": []},
"grants": [
  {"src": ["alice@example.com"], "dst": ["10.1.0.0/16", "autogroup:internet"], "ip": ["udp:53"], "via": ["tag:exit"]}
]}"#;
    let (checked, compiled) = checked_compiled(&inventory, body);
    let run = |dst: &str| {
        explain(
            &checked.policy,
            &compiled,
            &q("alice@example.com", dst, Some("udp")),
        )
        .unwrap()
        .allowed()
    };
    assert!(!run("10.1.2.3:53"));
    assert!(!run("8.8.8.8:53"));
    assert!(run("[2600::1]:53"));
    let rules = serde_json::to_string(&compiled.filter_rules("exit-1").unwrap()).unwrap();
    assert!(!rules.contains("10.1.0.0/16"), "{rules}");
    assert!(rules.contains("2000::"), "{rules}");
}

/// An SSH rule recording to `tag:web` gives its servers (`tag:prod`) access to the recorder on
/// TCP port 80 with no rule written for it: explain's verdict (the written rules, as `tests`
/// judge) is a denial, and a note says the recorder's packet filter admits the server. No note
/// for a source that is not a server, another port, UDP, or a policy without recorders.
#[test]
fn explain_notes_a_servers_access_to_its_recorder() {
    let ssh = |recorder: &str| {
        format!(
            r#""acls": [{{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod:22"]}}],
"ssh": [{{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]{recorder}}}],
"#
        )
    };
    let body = ssh(r#", "recorder": ["tag:web"]"#);
    let (source, checked, compiled) = head_compiled(&body);
    let explained = |src: &str, dst: &str, proto: Option<&str>| {
        let e = explain(&checked.policy, &compiled, &q(src, dst, proto)).unwrap();
        (shape(&source, &e).0, e.notes)
    };
    let (allowed, notes) = explained("tag:prod", "tag:web:80", None);
    assert!(!allowed);
    assert_eq!(
        notes,
        [
            "the packet filter of web-1 admits 100.64.0.3 on TCP port 80 all the same: Tailscale \
          lets SSH servers reach the session recorders their `ssh` rules name, with no rule \
          written for it; this verdict judges the written rules, as `tests` do"
        ]
    );
    assert_eq!(explained("prod-1", "web-1:80", Some("tcp")).1.len(), 1);
    for (src, dst, proto) in [
        ("bob-laptop", "web-1:80", None),
        ("prod-1", "web-1:443", None),
        ("prod-1", "web-1:80", Some("udp")),
    ] {
        let (allowed, notes) = explained(src, dst, proto);
        assert!(!allowed && notes.is_empty(), "{src} -> {dst}: {notes:?}");
    }
    let (source, checked, compiled) = head_compiled(&ssh(""));
    let e = explain(&checked.policy, &compiled, &q("prod-1", "web-1:80", None)).unwrap();
    assert!(!shape(&source, &e).0 && e.notes.is_empty());
}
