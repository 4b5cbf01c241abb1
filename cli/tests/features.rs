//! The policies of `testdata/features/` (issue 8: features of the policy language that real
//! policies use and the conformance captures never exercise), each run through `aclc check`,
//! `aclc compile` and `aclc test` against `testdata/features/tailnet.json`. Each policy file
//! cites the evidence (Tailscale KB page, API client field) in its header.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;

use common::{aclc_in, features, json, stderr, stdout};
use serde_json::{json, Value};

/// `aclc COMMAND POLICY --inventory tailnet.json EXTRA...` in `testdata/features/`.
fn run(command: &str, policy: &str, extra: &[&str]) -> Output {
    let mut args = vec![command, policy, "--inventory", "tailnet.json"];
    args.extend_from_slice(extra);
    aclc_in(&features(), &args, None)
}

/// The check diagnostics of `policy` with the inventory, as (severity, code).
fn diagnostics(policy: &str) -> Vec<(String, String)> {
    let o = run("check", policy, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    json(&o)["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap().to_string(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `aclc test`: every assertion passes (exit 0); returns stdout.
fn tests_pass(policy: &str) -> String {
    let o = run("test", policy, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("FAIL"), "{}", stdout(&o));
    stdout(&o)
}

/// One node of `aclc compile POLICY --node NODE`.
fn node(policy: &str, name: &str) -> Value {
    let o = run("compile", policy, &["--node", name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json(&o)["nodes"][name].clone()
}

#[test]
fn app_connectors() {
    // Clean: no invalid_capability, no unused_tag for the connector's tag.
    assert_eq!(diagnostics("app-connectors.hujson"), []);
    tests_pass("app-connectors.hujson");
    // The configuration reaches every targeted node's cap_map unchanged.
    let caps = &node("app-connectors.hujson", "connector-1")["cap_map"];
    assert_eq!(
        caps["tailscale.com/app-connectors"],
        json!([
            {"name": "github", "connectors": ["tag:connector"], "domains": ["github.com", "*.github.com"]},
            {"name": "aws", "connectors": ["tag:connector"], "routes": ["192.0.2.0/24"], "presetAppID": "aws"}
        ])
    );
}

#[test]
fn external_tailnets() {
    // The section once, each external reference once; nothing else (group:eng is used by
    // what partner may reference).
    let found = diagnostics("external-tailnets.hujson");
    let warnings = |code: &str| {
        found
            .iter()
            .filter(|(severity, c)| severity == "warning" && c == code)
            .count()
    };
    assert_eq!(warnings("aclc::external_tailnets"), 1, "{found:?}");
    assert_eq!(warnings("aclc::external_reference"), 2, "{found:?}");
    assert_eq!(found.len(), 3, "{found:?}");
    tests_pass("external-tailnets.hujson");
    // The web server admits alice on 443 only: the rule from dev's devices has no source.
    let rules = &node("external-tailnets.hujson", "web-1")["packet_filter_rules"];
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    assert_eq!(
        rules[0]["DstPorts"][0]["Ports"],
        json!({"First": 443, "Last": 443})
    );
}

#[test]
fn synced_groups() {
    // group:ops@example.com has no member in the inventory: a warning, and its deny test
    // holds vacuously.
    assert_eq!(
        diagnostics("synced-groups.hujson"),
        [
            (
                "warning".into(),
                "aclc::synced_group_without_members".into()
            ),
            ("warning".into(), "aclc::test_vacuous".into()),
        ]
    );
    let out = tests_pass("synced-groups.hujson");
    assert!(out.contains("7 assertions, all passed"), "{out}");
    // alice and bob are in group:eng@example.com: their devices reach tag:web:443 and SSH.
    let web = node("synced-groups.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["SrcIPs"],
        json!([
            "100.64.0.1",
            "100.64.0.2",
            "fd7a:115c:a1e0::1",
            "fd7a:115c:a1e0::2"
        ])
    );
    let principals: Vec<&str> = web["ssh_rules"][0]["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodeIP"].as_str().unwrap())
        .collect();
    assert_eq!(
        principals,
        [
            "100.64.0.1",
            "fd7a:115c:a1e0::1",
            "100.64.0.2",
            "fd7a:115c:a1e0::2"
        ]
    );
    // nodeAttrs target: the members' devices get funnel, carol's does not.
    assert!(node("synced-groups.hujson", "bob-laptop")["cap_map"]
        .get("funnel")
        .is_some());
    assert!(node("synced-groups.hujson", "carol-laptop")["cap_map"]
        .get("funnel")
        .is_none());
    // The member-less synced group contributes no source: only carol's device reaches db.
    let db = node("synced-groups.hujson", "db-1");
    assert_eq!(
        db["packet_filter_rules"][0]["SrcIPs"],
        json!(["100.64.0.3", "fd7a:115c:a1e0::3"])
    );
}

#[test]
fn api_fields_services_and_recorders() {
    assert_eq!(diagnostics("api-fields.hujson"), []);
    let out = tests_pass("api-fields.hujson");
    assert!(
        out.contains("carol@example.com -> svc:web:443 (tcp/udp): allowed"),
        "{out}"
    );
    assert!(
        out.contains("carol@example.com -> tag:db as root: denied"),
        "{out}"
    );
    // svc:web: web-1 (auto-approved by tag:web) serves the virtual addresses; web-canary
    // advertises it but is not approved, so it receives nothing.
    let web = node("api-fields.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["DstPorts"],
        json!([
            {"IP": "100.100.200.1", "Ports": {"First": 443, "Last": 443}},
            {"IP": "fd7a:115c:a1e1::1", "Ports": {"First": 443, "Last": 443}}
        ])
    );
    assert_eq!(
        node("api-fields.hujson", "web-canary")["packet_filter_rules"],
        json!([])
    );
    let carol = node("api-fields.hujson", "carol-laptop");
    assert_eq!(
        carol["peers"]["web-1"]["allowed_ips"],
        json!([
            "100.64.1.2/32",
            "fd7a:115c:a1e0::102/128",
            "100.100.200.1/32",
            "fd7a:115c:a1e1::1/128"
        ])
    );
    assert!(carol["peers"].get("web-canary").is_none());
    // Session recording: the recorder's address, and the refusal when recording fails.
    let action = &web["ssh_rules"][0]["action"];
    assert_eq!(action["recorders"], json!(["100.64.1.5:80"]));
    assert!(action["onRecordingFailure"]["RejectSessionWithMessage"].is_string());
    // Enforced recording with no recorder device: the session is refused (fail closed).
    let db = node("api-fields.hujson", "db-1");
    assert_eq!(db["ssh_rules"][0]["action"]["reject"], true);
    assert!(db["ssh_rules"][0]["action"].get("accept").is_none());
}

#[test]
fn ip_pool_containing_a_reserved_range() {
    assert_eq!(
        diagnostics("ip-pool.hujson"),
        [("warning".into(), "aclc::ip_pool_contains_reserved".into())]
    );
    tests_pass("ip-pool.hujson");
    assert!(node("ip-pool.hujson", "web-1")["packet_filter_rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
}

/// Tailscale's policy for new tailnets, its examples switched on (postures with a bare
/// boolean attribute, a default posture, an empty app connector list).
#[test]
fn tailscales_default_policy() {
    // Valid, without a word: the example tag is used by no rule, but the grant from and to
    // every device reaches it.
    assert_eq!(diagnostics("default-policy.hujson"), []);
    tests_pass("default-policy.hujson");
}

/// `autogroup:member` beside its legacy spelling (an older starting policy's SSH rule and node
/// attributes, a newer rule): accepted, warned, and both spellings reach the same devices.
#[test]
fn both_member_spellings_in_one_policy() {
    assert_eq!(
        diagnostics("member-spellings.hujson"),
        [
            ("warning".into(), "aclc::legacy_autogroup".into()),
            ("warning".into(), "aclc::mixed_member_autogroups".into()),
        ]
    );
    let laptop = node("member-spellings.hujson", "alice-laptop");
    assert!(laptop["ssh_rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert!(laptop["packet_filter_rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
}

#[test]
fn without_an_inventory_every_feature_policy_checks_clean() {
    for policy in [
        "default-policy.hujson",
        "app-connectors.hujson",
        "synced-groups.hujson",
        "api-fields.hujson",
        "ip-pool.hujson",
        "member-spellings.hujson",
    ] {
        let o = aclc_in(&features(), &["check", policy], None);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", stderr(&o));
    }
}

/// tailscale/hujson refuses a `//` comment that reaches the end of the input without a
/// newline (`parsing comment: unexpected EOF`); every command refuses the policy with that
/// text and a help saying how to fix it.
#[test]
fn comment_at_the_end_without_a_newline_is_refused() {
    for command in ["check", "compile", "test"] {
        let o = run(command, "comment-at-eof.hujson", &[]);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stderr(&o));
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            text.contains("parsing comment: unexpected EOF"),
            "{command}: {text}"
        );
    }
    let o = aclc_in(
        &features(),
        &["check", "comment-at-eof.hujson", "--format", "json"],
        None,
    );
    let d = &json(&o)["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(d["help"].as_str().unwrap().contains("newline"), "{d}");
}

/// Tags in any case are the same tag, read in lowercase (Tailscale docs "Group devices with
/// tags": "Tailscale ignores tag name case and parses all tags in the tailnet policy file as
/// lowercase"); each capitalised spelling is a warning, and the policy compiles as if
/// written in lowercase.
#[test]
fn tag_names_in_any_case() {
    assert_eq!(
        diagnostics("tag-case.hujson"),
        vec![("warning".to_string(), "aclc::tag_case".to_string()); 3]
    );
    let out = tests_pass("tag-case.hujson");
    assert!(out.contains("3 assertions, all passed"), "{out}");
    // web-1 (tag:web) may reach db-1 (tag:db) on 5432.
    let db = node("tag-case.hujson", "db-1");
    assert_eq!(
        db["packet_filter_rules"][0]["SrcIPs"],
        json!(["100.64.1.2", "fd7a:115c:a1e0::102"])
    );
}

/// Synced group names in any case are the same group, read in lowercase (Tailscale docs
/// "ACL policy examples": "Tailscale treats synced group names as lowercase").
#[test]
fn synced_group_names_in_any_case() {
    assert_eq!(diagnostics("synced-group-case.hujson"), []);
    let out = tests_pass("synced-group-case.hujson");
    assert!(out.contains("3 assertions, all passed"), "{out}");
    // alice's and bob's devices reach web-1.
    let web = node("synced-group-case.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["SrcIPs"],
        json!([
            "100.64.0.1",
            "100.64.0.2",
            "fd7a:115c:a1e0::1",
            "fd7a:115c:a1e0::2"
        ])
    );
}

/// `user:alice@example.com` (Tailscale's app capabilities announcement writes a grant's src
/// so) is read as the user alice@example.com, with a warning.
#[test]
fn a_user_written_with_the_user_prefix() {
    assert_eq!(
        diagnostics("user-prefix.hujson"),
        [("warning".to_string(), "aclc::user_prefix".to_string())]
    );
    let out = tests_pass("user-prefix.hujson");
    assert!(out.contains("2 assertions, all passed"), "{out}");
    let web = node("user-prefix.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["SrcIPs"],
        json!(["100.64.0.1", "fd7a:115c:a1e0::1"])
    );
}

/// `"via": ["*"]` is read as no via (Tailscale's via announcement: "Omitting via is
/// equivalent to \"via\":[\"*\"]"), with a warning: the grant compiles as a plain one.
#[test]
fn via_wildcard_is_no_via() {
    assert_eq!(
        diagnostics("via-wildcard.hujson"),
        [("warning".to_string(), "aclc::via_wildcard".to_string())]
    );
    tests_pass("via-wildcard.hujson");
    let web = node("via-wildcard.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["SrcIPs"],
        json!(["100.64.0.1", "fd7a:115c:a1e0::1"])
    );
}

/// `"dst": ["tag:web:*"]` in a grant (Tailscale's grant examples, "VPC access") is read as
/// `tag:web`, with a warning; the ports are the grant's `ip`.
#[test]
fn grant_destination_with_every_port() {
    assert_eq!(
        diagnostics("grant-dst-port.hujson"),
        [("warning".to_string(), "aclc::grant_dst_port".to_string())]
    );
    tests_pass("grant-dst-port.hujson");
    let web = node("grant-dst-port.hujson", "web-1");
    assert_eq!(
        web["packet_filter_rules"][0]["DstPorts"],
        json!([
            {"IP": "100.64.1.2", "Ports": {"First": 443, "Last": 443}},
            {"IP": "fd7a:115c:a1e0::102", "Ports": {"First": 443, "Last": 443}}
        ])
    );
}
