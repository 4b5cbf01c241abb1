//! More diagnostic tests (`diagnostics.rs` was getting long): definitions, autoApprovers,
//! selectors, SSH placement, legacy spellings, warnings and the HuJSON layer, each asserting
//! the code, the message, the underlined text and the help. `every_code_is_tested` keeps the
//! two files complete: each code the crate can emit must appear in one of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use aclc_policy::{parse_str, source_from_bytes, Code, Limits, Options};
use common::{
    acl, codes, errors, expect_error_help, expect_warning, expect_warning_help, grant, ssh, TAGS,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[test]
fn group_definitions() {
    expect_error_help(
        r#"{"groups": {"eng": ["alice@example.com"]}}"#,
        "aclc::invalid_group_name",
        r#"groups["eng"]: group names must start with 'group:'"#,
        "eng",
        Some(r#"rename it to "group:eng""#),
    );
    // A bare prefix is not renamed to "group:group:".
    expect_error_help(
        r#"{"groups": {"group:": ["alice@example.com"]}}"#,
        "aclc::invalid_group_name",
        r#"groups["group:"]: group names must start with 'group:'"#,
        "group:",
        Some(r#"add a name after 'group:', e.g. "group:eng""#),
    );
    let member = |m: &str| {
        format!(
            r#"{{"groups": {{"group:a": [{m}]}}, "acls": [{{"action": "accept", "src": ["group:a"], "dst": ["tag:server:22"]}}], {TAGS}}}"#
        )
    };
    let help = Some(r#"a group lists user logins such as "alice@example.com""#);
    expect_error_help(
        &member(r#""tag:client""#),
        "aclc::invalid_group_member",
        r#"groups["group:a"]: "tag:client": group members must be users"#,
        "tag:client",
        help,
    );
    expect_error_help(
        &member(r#""autogroup:member""#),
        "aclc::invalid_group_member",
        r#"groups["group:a"]: "autogroup:member": group members must be users"#,
        "autogroup:member",
        help,
    );
    // An empty member has no text: the quotes are underlined.
    expect_error_help(
        &member(r#""""#),
        "aclc::invalid_group_member",
        r#"groups["group:a"]: "": group members must be users"#,
        r#""""#,
        help,
    );
}

#[test]
fn tag_owners_and_postures() {
    let help = Some("tag owners are users, groups, tags or autogroups such as autogroup:admin");
    expect_error_help(
        r#"{"tagOwners": {"tag:a": ["*"]}}"#,
        "aclc::invalid_tag_owner",
        r#"tagOwners["tag:a"]: "*" cannot own a tag"#,
        "*",
        help,
    );
    expect_error_help(
        r#"{"tagOwners": {"tag:a": ["10.0.0.1"]}}"#,
        "aclc::invalid_tag_owner",
        r#"tagOwners["tag:a"]: "10.0.0.1" cannot own a tag"#,
        "10.0.0.1",
        help,
    );
    expect_error_help(
        r#"{"postures": {"latest": ["node:tsReleaseTrack == 'stable'"]}}"#,
        "aclc::invalid_posture_name",
        r#"postures["latest"]: posture names must start with 'posture:'"#,
        "latest",
        None,
    );
    // Each refusal underlines the wrong part of the condition and says what it should be.
    let posture = |condition: &str| {
        format!(
            r#"{{"postures": {{"posture:a": [{condition:?}]}}, "defaultSrcPosture": ["posture:a"]}}"#
        )
    };
    let cases = [
        (
            "node:os IN",
            r#"invalid posture condition "node:os IN""#,
            "IN",
            "`IN` needs a value after it, e.g. `node:os IN ['macos', 'linux']`",
        ),
        (
            "node:os = 'macos'",
            r#"invalid posture condition "node:os = 'macos'""#,
            "=",
            "unknown operator `=`: did you mean `==`?",
        ),
        (
            "node:os IN 'macos'",
            r#"invalid posture condition "node:os IN 'macos'""#,
            "'macos'",
            "`IN` takes a list, e.g. ['macos', 'linux']",
        ),
        (
            "node:os == 'macos",
            r#"invalid posture condition "node:os == 'macos""#,
            "'macos",
            "unterminated string: add the closing '",
        ),
        (
            "os == 'linux'",
            r#"invalid posture condition "os == 'linux'""#,
            "os",
            "attribute `os` has no namespace: write `node:os`",
        ),
    ];
    for (condition, message, underline, help) in cases {
        expect_error_help(
            &posture(condition),
            "aclc::invalid_posture",
            message,
            underline,
            Some(help),
        );
    }
}

#[test]
fn ipv4_mapped_addresses_warn_that_they_match_no_ipv4_address() {
    // In a host, a rule and an IP set's `remove` (which then removes nothing).
    let text = r#"{"hosts": {"h": "::ffff:100.64.0.1"},
        "ipsets": {"ipset:x": ["add 192.168.10.0/24", "remove ::ffff:192.168.10.20"]},
        "acls": [{"action": "accept", "src": ["*"], "dst": ["h:22", "ipset:x:80", "::ffff:10.0.0.0/104:80"]}]}"#;
    assert_eq!(codes(text), ["aclc::ipv4_mapped"; 3]);
    expect_warning_help(
        r#"{"acls": [{"action": "accept", "src": ["::ffff:10.0.0.0/104"], "dst": ["*:22"]}]}"#,
        "aclc::ipv4_mapped",
        "::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 address: Tailscale reads it as IPv6, so it matches no IPv4 address",
        "::ffff:10.0.0.0/104",
        "write 10.0.0.0/8 for the IPv4 address",
    );
    // Other IPv6 addresses, and prefixes wider than the mapped range, are not mapped.
    let plain = r#"{"acls": [{"action": "accept", "src": ["fd7a:115c:a1e0::1", "::/0"], "dst": ["*:22"]}]}"#;
    assert_eq!(codes(plain), Vec::<&str>::new());
}

#[test]
fn empty_postures_warn_that_every_device_passes() {
    // `[]` and `null` alike: no condition, so a gated rule admits every source device.
    for value in ["[]", "null"] {
        let text = format!(
            r#"{{"postures": {{"posture:p": {value}}}, "acls": [{{"action": "accept",
                "src": ["autogroup:member"], "dst": ["*:22"], "srcPosture": ["posture:p"]}}]}}"#
        );
        expect_warning_help(
            &text,
            "aclc::empty_posture",
            r#"postures["posture:p"] has no conditions: every device satisfies it; aclc cannot verify how Tailscale reads an empty posture"#,
            "posture:p",
            "a rule gated on this posture admits all its sources; give the posture its conditions, or remove it and its uses",
        );
    }
    // A posture whose only condition is refused is an error, not also a warning.
    let bad = r#"{"postures": {"posture:p": ["node:os === 'macos'"]}}"#;
    assert_eq!(codes(bad), ["aclc::invalid_posture"]);
}

#[test]
fn posture_attributes() {
    // Tailscale's default policy for new tailnets ends `posture:latestMac` with a bare
    // boolean attribute (kb/1288: `node:tsAutoUpdate`); it is accepted without a word.
    let default_policy = r#"{"postures": {"posture:latestMac": ["node:os == 'macos'",
        "node:tsReleaseTrack == 'stable'", "node:tsAutoUpdate"]},
        "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:latestMac"]}]}"#;
    assert_eq!(codes(default_policy), Vec::<&str>::new());
    let posture = |condition: &str| {
        format!(
            r#"{{"postures": {{"posture:a": [{condition:?}]}}, "defaultSrcPosture": ["posture:a"]}}"#
        )
    };
    // Open namespaces (custom, integrations such as CrowdStrike's `falcon:` kb/1289) are fine.
    assert_eq!(codes(&posture("custom:tier == 'prod'")), Vec::<&str>::new());
    assert_eq!(codes(&posture("falcon:ztaScore >= 80")), Vec::<&str>::new());
    expect_warning_help(
        &posture("node:colour == 'red'"),
        "aclc::unknown_posture_attribute",
        r#"unknown posture attribute "node:colour""#,
        "node:colour",
        "the `node:` attributes aclc knows are os, osVersion, tsVersion, tsReleaseTrack, tsAutoUpdate, tsStateEncrypted; aclc cannot verify `colour`, so check its spelling",
    );
    expect_warning_help(
        &posture("  sentinelone:infected == false"),
        "aclc::unknown_posture_attribute",
        r#"unknown posture attribute "sentinelone:infected""#,
        "sentinelone:infected",
        "aclc does not know the namespace `sentinelone:` and cannot verify it; did you mean `sentinelOne:`?",
    );
    expect_warning_help(
        &posture("acme:score > 3"),
        "aclc::unknown_posture_attribute",
        r#"unknown posture attribute "acme:score""#,
        "acme:score",
        "aclc does not know the namespace `acme:` and cannot verify it; known namespaces are node, ip, custom, falcon, intune, jamfPro, kandji, kolide, sentinelOne, huntress, fleet, fleetPolicy, googleChrome",
    );
}

#[test]
fn ip_sets() {
    let used = |sets: &str| {
        format!(
            r#"{{"ipsets": {sets}, "acls": [{{"action": "accept", "src": ["ipset:a"], "dst": ["*:*"]}}], {TAGS}}}"#
        )
    };
    expect_error_help(
        r#"{"ipsets": {"office": ["10.0.0.0/8"]}}"#,
        "aclc::invalid_ipset_name",
        r#"ipsets["office"]: IP set names must start with 'ipset:'"#,
        "office",
        None,
    );
    expect_error_help(
        &used(r#"{"ipset:a": ["10.0.0.0/8", "remove tag:server"]}"#),
        "aclc::invalid_ipset_entry",
        r#"ipsets["ipset:a"]: "tag:server" cannot be used in an IP set"#,
        "tag:server",
        Some("IP sets hold IP addresses, prefixes, ranges, hosts, other IP sets and autogroup:internet"),
    );
    let recursive_help = Some("an IP set cannot include itself, directly or through other sets");
    expect_error_help(
        &used(r#"{"ipset:a": ["10.0.0.0/8", "add ipset:a"]}"#),
        "aclc::recursive_ipset",
        r#"ipsets["ipset:a"]: IP sets cannot be recursive"#,
        "ipset:a",
        recursive_help,
    );
    // Through another set: both sets are reported.
    let found = errors(&used(
        r#"{"ipset:a": ["add ipset:b"], "ipset:b": ["remove ipset:a"]}"#,
    ));
    assert_eq!(
        found,
        vec![
            (
                "aclc::recursive_ipset",
                r#"ipsets["ipset:a"]: IP sets cannot be recursive"#.into(),
                "ipset:a".into()
            ),
            (
                "aclc::recursive_ipset",
                r#"ipsets["ipset:b"]: IP sets cannot be recursive"#.into(),
                "ipset:b".into()
            ),
        ]
    );
}

#[test]
fn auto_approvers() {
    let help = Some("approvers are users, groups, tags or autogroups such as autogroup:admin");
    expect_error_help(
        &format!(r#"{{"autoApprovers": {{"exitNode": ["*"]}}, {TAGS}}}"#),
        "aclc::invalid_approver",
        r#"autoApprovers: "*" cannot approve routes"#,
        "*",
        help,
    );
    expect_error_help(
        &format!(r#"{{"autoApprovers": {{"routes": {{"10.0.0.0/8": ["10.0.0.1"]}}}}, {TAGS}}}"#),
        "aclc::invalid_approver",
        r#"autoApprovers: "10.0.0.1" cannot approve routes"#,
        "10.0.0.1",
        help,
    );
    expect_error_help(
        &format!(r#"{{"autoApprovers": {{"routes": {{"10.0.0.0/33": ["tag:server"]}}}}, {TAGS}}}"#),
        "aclc::invalid_prefix",
        r#"autoApprovers.routes: "10.0.0.0/33": invalid prefix"#,
        "10.0.0.0/33",
        Some("route keys are prefixes such as 10.0.0.0/8 or fd00::/64"),
    );
    // Tailscale accepts exit routes under `routes` but does not approve exit nodes with them
    // (corpus: routes-ea6-routes-map-exit-basic).
    expect_warning_help(
        &format!(r#"{{"autoApprovers": {{"routes": {{"0.0.0.0/0": ["tag:server"]}}}}, {TAGS}}}"#),
        "aclc::exit_route_in_routes",
        "0.0.0.0/0 under autoApprovers.routes does not approve exit nodes",
        "0.0.0.0/0",
        "to approve exit nodes, list the approvers under autoApprovers.exitNode \
         (here 0.0.0.0/0 approves every IPv4 subnet route they advertise)",
    );
    // A policy that approves exit nodes under `exitNode` knows where they are approved: the
    // `/0` keys approve every subnet route of their family, whoever the approvers (public
    // policies rajsinghtech/kubernetes-manifests, and regulad, whose comment says the keys
    // are a catch-all for subnet routes, with another tag under `exitNode`): no warning.
    let beside_exit_node = |approvers: &str| {
        format!(
            r#"{{"autoApprovers": {{"exitNode": ["tag:server"], "routes": {{"0.0.0.0/0": {approvers}, "::/0": {approvers}}}}}, {TAGS}}}"#
        )
    };
    for approvers in [
        r#"["tag:server"]"#,
        r#"["tag:server", "alice@example.com"]"#,
        r#"["alice@example.com"]"#,
    ] {
        assert!(!codes(&beside_exit_node(approvers)).contains(&"aclc::exit_route_in_routes"));
    }
    // The app connector setup approves every route its connectors discover with `/0` keys
    // (Tailscale docs "Set up an app connector"): no warning when every approver is a tag
    // that an app connector names; a warning still when another approver is there too.
    let connector = |approvers: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:github-app-connector": [], "tag:server": []}},
              "autoApprovers": {{"routes": {{"0.0.0.0/0": {approvers}, "::/0": {approvers}}}}},
              "nodeAttrs": [{{"target": ["*"], "app": {{"tailscale.com/app-connectors": [
                {{"name": "GitHub", "connectors": ["tag:github-app-connector"], "domains": ["github.com"]}}]}}}}],
              "grants": [{{"src": ["*"], "dst": ["tag:server"], "ip": ["*"]}}]}}"#
        )
    };
    assert!(codes(&connector(r#"["tag:github-app-connector"]"#)).is_empty());
    assert_eq!(
        codes(&connector(r#"["tag:github-app-connector", "tag:server"]"#)),
        ["aclc::exit_route_in_routes", "aclc::exit_route_in_routes"]
    );
}

#[test]
fn node_attrs_ip_pool() {
    expect_error_help(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.64.0.1"]}]}"#,
        "aclc::invalid_prefix",
        "IPPool(100.64.0.1): invalid prefix",
        "100.64.0.1",
        Some("an ipPool entry is a prefix such as 100.80.0.0/16"),
    );
}

#[test]
fn selectors_that_cannot_be_read() {
    let help = Some(
        "write a user, group:, tag:, autogroup:, host alias, IP or prefix, or remove the entry",
    );
    // An empty selector has no text: the quotes are underlined.
    expect_error_help(
        &acl(r#"{"action": "accept", "src": [" "], "dst": ["*:*"]}"#),
        "aclc::empty_selector",
        "empty selector",
        r#"" ""#,
        help,
    );
    // An empty host before the ports: the whole destination is underlined, not nothing.
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": [":22"]}"#),
        "aclc::empty_selector",
        "empty selector",
        ":22",
        help,
    );
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["[]:22"]}"#),
        "aclc::empty_selector",
        "empty selector",
        "[]:22",
        help,
    );
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["user:alice"], "dst": ["*:*"]}"#),
        "aclc::invalid_user_domain",
        r#"invalid selector "user:alice""#,
        "user:alice",
        Some("the `user:` form is `user:*@domain`"),
    );
    expect_error_help(
        &grant(r#"{"src": ["user:*@"], "dst": ["*"], "ip": ["*"]}"#),
        "aclc::invalid_user_domain",
        r#"invalid selector "user:*@""#,
        "user:*@",
        Some("the `user:` form is `user:*@domain`"),
    );
    // One user with the prefix, as Tailscale's app capabilities announcement writes a grant's
    // `src` ("src": ["user:alice@example.com"]): read as the user, with a warning that aclc
    // cannot verify Tailscale accepts it.
    let text = grant(r#"{"src": ["user:alice@example.com"], "dst": ["*"], "ip": ["*"]}"#);
    expect_warning_help(
        &text,
        "aclc::user_prefix",
        r#""user:alice@example.com" is read as the user "alice@example.com": aclc cannot verify that Tailscale accepts the user: prefix here"#,
        "user:alice@example.com",
        r#"Tailscale's reference documents user: only as user:*@domain; write "alice@example.com""#,
    );
    assert!(errors(&text).is_empty(), "{:?}", errors(&text));
}

#[test]
fn sources_and_destinations_in_the_wrong_place() {
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}"#),
        "aclc::invalid_src",
        r#""autogroup:internet" not valid on the src side of a rule"#,
        "autogroup:internet",
        Some("autogroup:internet can only be a destination (traffic through exit nodes)"),
    );
    expect_error_help(
        &grant(r#"{"src": ["svc:web"], "dst": ["*"], "ip": ["*"]}"#),
        "aclc::invalid_src",
        r#""svc:web" not valid on the src side of a rule"#,
        "svc:web",
        Some("a Tailscale Service can only be a destination"),
    );
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["autogroup:shared:*"]}"#),
        "aclc::invalid_dst",
        "cannot use autogroup:shared as a dst",
        "autogroup:shared",
        Some("autogroup:shared can only be a source"),
    );
    expect_error_help(
        &grant(r#"{"src": ["*"], "dst": ["autogroup:nonroot"], "ip": ["*"]}"#),
        "aclc::invalid_dst",
        "cannot use autogroup:nonroot as a dst",
        "autogroup:nonroot",
        Some(r#"autogroup:nonroot is only valid in SSH "users""#),
    );
}

/// `autogroup:member` as an SSH destination from users: accepted with a warning (the compiler
/// admits each user only to their own devices); from tags still refused.
#[test]
fn ssh_member_destination_warns() {
    for src in [
        r#"["autogroup:member"]"#,
        r#"["alice@example.com"]"#,
        r#"["group:eng"]"#,
    ] {
        let text = format!(
            r#"{{"groups": {{"group:eng": ["alice@example.com"]}}, "ssh": [{{"action": "accept", "src": {src}, "dst": ["autogroup:member"], "users": ["root"]}}]}}"#
        );
        expect_warning_help(
            &text,
            "aclc::ssh_member_destination",
            "\"autogroup:member\" as an SSH destination admits each user only to their own devices",
            "autogroup:member",
            "Tailscale never lets a user SSH into another user's device, so aclc reads this as autogroup:self; write autogroup:self (aclc cannot verify whether Tailscale accepts autogroup:member here)",
        );
    }
    assert!(!codes(&ssh(
        r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}"#
    ))
    .contains(&"aclc::ssh_member_destination"));
}

/// A range outside an IP set, a nodeAttrs target the documentation does not list, an ordering
/// of a non-version string: accepted, each with its warning; a group member that is an
/// address gets help that does not suggest a login made of it.
#[test]
fn documented_limits_warn() {
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["100.64.0.4-100.64.0.12"], "dst": ["*:*"]}"#),
        "aclc::unverified_ip_range",
        "100.64.0.4-100.64.0.12 is an IP address range: Tailscale's documentation lists ranges only in IP sets; aclc cannot verify that Tailscale accepts one here",
        "100.64.0.4-100.64.0.12",
        r#"name it in an IP set, "ipsets": {"ipset:range": ["100.64.0.4-100.64.0.12"]}, and write "ipset:range""#,
    );
    assert!(!codes(r#"{"ipsets": {"ipset:r": ["100.64.0.4-100.64.0.12"]}, "acls": [{"action": "accept", "src": ["ipset:r"], "dst": ["*:*"]}]}"#)
        .contains(&"aclc::unverified_ip_range"));
    for (target, names) in [
        (
            "autogroup:shared",
            "devices shared in from other tailnets, which this tailnet's attributes never reach",
        ),
        (
            "svc:web",
            "a Tailscale Service, not a device, so no device gets these attributes",
        ),
    ] {
        expect_warning_help(
            &format!(r#"{{"nodeAttrs": [{{"target": ["{target}"], "attr": ["funnel"]}}]}}"#),
            "aclc::unverified_target",
            &format!("\"{target}\" as a nodeAttrs target names {names}; aclc cannot verify that Tailscale accepts it"),
            target,
            "Tailscale's documentation names nodeAttrs targets by tag, user, group, autogroup or *",
        );
    }
    expect_warning_help(
        r#"{"postures": {"posture:x": ["node:os < 'macos'"]}, "defaultSrcPosture": ["posture:x"]}"#,
        "aclc::posture_never_holds",
        "\"node:os < 'macos'\" never holds: `<` orders numbers and versions, and \"macos\" is neither",
        "node:os < 'macos'",
        "compare strings with ==, !=, IN or NOT IN; a version is compared part by part ('1.60' > '1.9')",
    );
    assert!(!codes(r#"{"postures": {"posture:x": ["node:tsVersion >= '1.60'"]}, "defaultSrcPosture": ["posture:x"]}"#)
        .contains(&"aclc::posture_never_holds"));
    expect_warning_help(
        r#"{"postures": {"posture:x": ["ip:country IN ['CA', 'us']"]}, "defaultSrcPosture": ["posture:x"]}"#,
        "aclc::posture_country_case",
        "\"ip:country IN ['CA', 'us']\": country codes are upper case, so \"us\" is no device's country",
        "ip:country IN ['CA', 'us']",
        "write \"US\"",
    );
    assert!(!codes(
        r#"{"postures": {"posture:x": ["ip:country == 'US'"]}, "defaultSrcPosture": ["posture:x"]}"#
    )
    .contains(&"aclc::posture_country_case"));
    expect_warning_help(
        r#"{"postures": {"posture:x": ["node:os IN ['macOS', 'windows']"]}, "defaultSrcPosture": ["posture:x"]}"#,
        "aclc::posture_os_case",
        "\"node:os IN ['macOS', 'windows']\": operating systems are lower-case names, so \"macOS\" is no device's node:os",
        "node:os IN ['macOS', 'windows']",
        "write \"macos\"",
    );
    assert!(!codes(
        r#"{"postures": {"posture:x": ["node:os IN ['macos', 'Plan9']"]}, "defaultSrcPosture": ["posture:x"]}"#
    )
    .contains(&"aclc::posture_os_case"));
    expect_warning_help(
        r#"{"groups": {"group:g": ["ipset:corp"]}}"#,
        "aclc::bare_group_member",
        r#"groups["group:g"]: "ipset:corp" is not a login: aclc cannot verify that Tailscale accepts it"#,
        "ipset:corp",
        "a group lists user logins, and \"ipset:corp\" is not one: name it in the rules' src or dst instead",
    );
}

/// `extraDNSRecords` (a support-enabled section Tailscale's own policy combiner carries) is
/// accepted with a warning; another shape than an array is refused.
#[test]
fn extra_dns_records_are_accepted_unverified() {
    expect_warning_help(
        r#"{"extraDNSRecords": [{"Name": "nas.example.ts.net", "Value": "100.64.0.10"}]}"#,
        "aclc::unverified_section",
        "extraDNSRecords is not among the policy file's documented sections; aclc cannot verify that this tailnet accepts it",
        r#"[{"Name": "nas.example.ts.net", "Value": "100.64.0.10"}]"#,
        "Tailscale enables extra DNS records per tailnet (its support does); aclc checks nothing inside it and compiles nothing from it",
    );
    assert!(codes(r#"{"extraDNSRecords": null}"#).is_empty());
    assert!(!errors(r#"{"extraDNSRecords": {}}"#).is_empty());
}

/// `externalTailnets` (declarative node sharing, in alpha) is accepted with one warning, and
/// a rule naming another tailnet's group or tag (`group://alias/name`, `tag://alias/name`)
/// with one more, which says when the alias is not declared. What a tailnet lets the other
/// reference counts as a use of it. Unknown fields and wrong types stay errors. Real
/// policies were refused with `unknown field "externalTailnets"` and `group not found`.
#[test]
fn external_tailnets_are_accepted_unverified() {
    let declared = r#""externalTailnets": {"dev": {"externalID": "T1111CNTRL", "allowIncomingConnections": true, "allowExternalReferencesTo": ["group:eng"]}}"#;
    let policy = format!(
        r#"{{{declared}, "groups": {{"group:eng": ["alice@example.com"]}}, "tagOwners": {{"tag:host": []}},
            "grants": [{{"src": ["tag://dev/controller", "group://dev/all"], "dst": ["tag:host"], "ip": ["8120"]}}]}}"#
    );
    assert!(errors(&policy).is_empty(), "{:?}", errors(&policy));
    let found = codes(&policy);
    assert_eq!(
        found
            .iter()
            .filter(|c| **c == "aclc::external_reference")
            .count(),
        2,
        "{found:?}"
    );
    assert_eq!(
        found
            .iter()
            .filter(|c| **c == "aclc::external_tailnets")
            .count(),
        1,
        "{found:?}"
    );
    assert!(!found.contains(&"aclc::unused_group"), "{found:?}");
    expect_warning_help(
        &format!(
            r#"{{{declared}, "groups": {{"group:eng": ["alice@example.com"]}}, "tagOwners": {{"tag:host": []}},
                "grants": [{{"src": ["tag://dev/controller"], "dst": ["tag:host"], "ip": ["8120"]}}]}}"#
        ),
        "aclc::external_reference",
        r#""tag://dev/controller" names a tag of the external tailnet "dev": aclc does not know that tailnet's devices, so this compiles to nothing here"#,
        "tag://dev/controller",
        "Tailscale applies it only when that tailnet allows the reference (its \"allowExternalReferencesTo\"); aclc's output leaves that tailnet's devices out",
    );
    expect_warning_help(
        r#"{"tagOwners": {"tag:host": []}, "grants": [{"src": ["group://prod/all"], "dst": ["tag:host"], "ip": ["*"]}]}"#,
        "aclc::external_reference",
        r#""group://prod/all" names the external tailnet "prod", which "externalTailnets" does not declare: aclc compiles it to nothing and cannot verify that Tailscale accepts it"#,
        "group://prod/all",
        "declare the tailnet under \"externalTailnets\" with its \"externalID\"",
    );
    expect_warning_help(
        r#"{"externalTailnets": {"partner": {"externalID": "T2222CNTRL"}}}"#,
        "aclc::external_tailnets",
        "externalTailnets (declarative node sharing, in alpha): aclc does not know the other tailnets' users and devices, so nothing granted to them is compiled; aclc cannot verify that this tailnet may use the feature",
        r#"{"partner": {"externalID": "T2222CNTRL"}}"#,
        "Tailscale applies a sharing relationship only when both tailnets declare it; the sharing tailnet must be in the alpha",
    );
    assert!(
        !errors(r#"{"externalTailnets": {"partner": {"externalName": "T2222CNTRL"}}}"#).is_empty()
    );
    assert!(
        !errors(r#"{"externalTailnets": {"partner": {"allowIncomingConnections": "yes"}}}"#)
            .is_empty()
    );
    assert!(!errors(r#"{"externalTailnets": []}"#).is_empty());
}

/// A defined tag written with a port where none belongs: the help says how to write it for
/// the place (an SSH destination, a grant's destination).
#[test]
fn ports_where_none_belong() {
    expect_error_help(
        &ssh(
            r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server:*"], "users": ["root"]}"#,
        ),
        "aclc::undefined_tag",
        r#"tag not found: "tag:server:*""#,
        "tag:server:*",
        Some(r#"SSH destinations take no port (Tailscale SSH listens on 22): write "tag:server""#),
    );
    expect_error_help(
        &grant(r#"{"src": ["tag:server:443"], "dst": ["*"], "ip": ["*"]}"#),
        "aclc::undefined_tag",
        r#"src=tag not found: "tag:server:443""#,
        "tag:server:443",
        Some(
            r#""tag:server" takes no port here: write "tag:server" (in grants, ports go in "ip", e.g. "ip": ["tcp:443"])"#,
        ),
    );
    expect_error_help(
        &format!(
            r#"{{"nodeAttrs": [{{"target": ["tag:server:443"], "attr": ["funnel"]}}], {TAGS}}}"#
        ),
        "aclc::undefined_tag",
        r#"tag not found: "tag:server:443""#,
        "tag:server:443",
        Some(r#""tag:server" takes no port here: write "tag:server""#),
    );
}

/// Two recorder tags in one Kubernetes rule: accepted with a warning (kb/1537 allows one).
#[test]
fn kubernetes_rule_with_two_recorders() {
    let policy = |recorders: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:k8s": [], "tag:rec": [], "tag:rec2": []}}, "grants": [{{"src": ["*"], "dst": ["tag:k8s"], "app": {{"tailscale.com/cap/kubernetes": [{{"recorder": {recorders}}}]}}}}]}}"#
        )
    };
    assert!(
        codes(&policy(r#"["tag:rec", "tag:rec2"]"#)).contains(&"aclc::kubernetes_recorder_count")
    );
    assert!(!codes(&policy(r#"["tag:rec"]"#)).contains(&"aclc::kubernetes_recorder_count"));
}

#[test]
fn ssh_placement() {
    expect_error_help(
        &ssh(
            r#"{"action": "accept", "src": ["tag:client"], "dst": ["autogroup:member"], "users": ["root"]}"#,
        ),
        "aclc::ssh_tag_to_user_devices",
        "tags in SSH source cannot access user-owned devices",
        "autogroup:member",
        Some("tagged devices may only SSH into other tagged devices"),
    );
    expect_error_help(
        &ssh(
            r#"{"action": "accept", "src": ["alice@example.com", "bob@example.com"], "dst": ["alice@example.com"], "users": ["root"]}"#,
        ),
        "aclc::ssh_user_dst",
        r#"invalid dst "alice@example.com""#,
        "alice@example.com",
        Some("a user as SSH destination requires the source to be exactly that user; use autogroup:self"),
    );
    // A user may SSH into their own devices.
    assert!(errors(&ssh(
        r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com"], "users": ["root"]}"#
    ))
    .is_empty());
    // The user repeated as the only source: the same devices, accepted with a warning
    // (whether Tailscale's check counts entries or users is not captured); another user
    // beside the repetition is still refused.
    let repeated = ssh(
        r#"{"action": "accept", "src": ["alice@example.com", "alice@example.com"], "dst": ["alice@example.com"], "users": ["root"]}"#,
    );
    assert!(errors(&repeated).is_empty());
    expect_warning_help(
        &repeated,
        "aclc::unverified_repeated_ssh_source",
        r#""alice@example.com" is repeated in src"#,
        "alice@example.com",
        "list the user once; aclc cannot verify that Tailscale accepts a user destination whose source repeats that user",
    );
    assert!(codes(&ssh(
        r#"{"action": "accept", "src": ["alice@example.com", "alice@example.com", "bob@example.com"], "dst": ["alice@example.com"], "users": ["root"]}"#
    ))
    .contains(&"aclc::ssh_user_dst"));
    expect_error_help(
        &ssh(
            r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"], "recorder": ["alice@example.com"]}"#,
        ),
        "aclc::invalid_recorder",
        r#"invalid recorder "alice@example.com""#,
        "alice@example.com",
        Some("recorders are named by tag"),
    );
}

#[test]
fn ssh_check_mode_warnings() {
    expect_warning_help(
        &ssh(
            r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "12h"}"#,
        ),
        "aclc::check_period_without_check",
        "checkPeriod has no effect on an accept rule",
        "12h",
        r#"use "action": "check", or remove checkPeriod"#,
    );
    // An action that could not be read is not called "accept".
    for action in [r#""action": "Check", "#, r#""action": "", "#, ""] {
        let found = codes(&ssh(&format!(
            r#"{{{action}"src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "12h"}}"#
        )));
        assert!(
            !found.contains(&"aclc::check_period_without_check"),
            "{action}: {found:?}"
        );
    }
    // Tailscale refuses check rules from tagged devices (kb/1193; tailscale/tailscale#5027 and
    // #9660), autogroup:tagged included.
    for src in [
        r#"["tag:client"]"#,
        r#"["autogroup:member", "autogroup:tagged"]"#,
    ] {
        expect_error_help(
            &ssh(&format!(
                r#"{{"action": "check", "src": {src}, "dst": ["tag:server"], "users": ["root"]}}"#
            )),
            "aclc::check_with_tags",
            r#""check" action does not support tags in src"#,
            "check",
            Some(r#"use "accept" for rules from tagged devices: a tag cannot re-authenticate"#),
        );
    }
}

#[test]
fn legacy_spellings() {
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["*"], "users": ["*"], "dst": ["*:*"]}"#),
        "aclc::conflicting_fields",
        r#"acls[0]: "src" and its legacy spelling "users" cannot both be used"#,
        "users",
        Some(r#"merge the entries into "src""#),
    );
    expect_error_help(
        &format!(
            r#"{{"tests": [{{"src": "alice@example.com", "accept": ["tag:server:22"], "allow": ["tag:server:80"]}}], {TAGS}}}"#
        ),
        "aclc::conflicting_fields",
        r#"tests[0]: "accept" and its legacy spelling "allow" cannot both be used"#,
        "allow",
        Some(r#"merge the entries into "accept""#),
    );
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["autogroup:members"], "dst": ["*:*"]}"#),
        "aclc::legacy_autogroup",
        "autogroup:members is a legacy spelling of autogroup:member",
        "autogroup:members",
        "write autogroup:member",
    );
}

#[test]
fn tailnet_settings() {
    expect_error_help(
        r#"{"OneCGNATRoute": "MAC-ALWAYS"}"#,
        "aclc::invalid_setting",
        r#"OneCGNATRoute must be "", "mac-always" or "mac-never", got "MAC-ALWAYS""#,
        "MAC-ALWAYS",
        None,
    );
    assert!(codes(r#"{"OneCGNATRoute": " mac-never "}"#).is_empty());
}

#[test]
fn unused_definitions() {
    let help = "remove it, or refer to it in a rule";
    expect_warning_help(
        r#"{"hosts": {"db": "10.0.0.1"}}"#,
        "aclc::unused_host",
        r#"host "db" is never used"#,
        "db",
        help,
    );
    expect_warning_help(
        r#"{"ipsets": {"ipset:office": ["10.0.0.0/8"]}}"#,
        "aclc::unused_ipset",
        r#"IP set "ipset:office" is never used"#,
        "ipset:office",
        help,
    );
    expect_warning_help(
        r#"{"postures": {"posture:latest": ["node:tsReleaseTrack == 'stable'"]}}"#,
        "aclc::unused_posture",
        r#"posture "posture:latest" is never used"#,
        "posture:latest",
        help,
    );
    expect_warning_help(
        r#"{"tagOwners": {"tag:idle": ["alice@example.com"]}}"#,
        "aclc::unused_tag",
        r#"tag "tag:idle" is never used in a rule"#,
        "tag:idle",
        "a tag nothing refers to can still be applied to devices; remove it if it is not",
    );
    // A rule from or to every device reaches every tag (an ACL's `*` source, a grant's
    // `autogroup:tagged` destination); a rule that names only some devices does not.
    for rules in [
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["alice@example.com:22"]}]"#,
        r#""grants": [{"src": ["alice@example.com"], "dst": ["autogroup:tagged"], "ip": ["*"]}]"#,
    ] {
        let text =
            format!(r#"{{"tagOwners": {{"tag:idle": [], "tag:k8s": ["tag:idle"]}}, {rules}}}"#);
        assert!(!codes(&text).contains(&"aclc::unused_tag"), "{text}");
    }
    assert_eq!(
        codes(
            r#"{"tagOwners": {"tag:idle": []},
                "grants": [{"src": ["alice@example.com"], "dst": ["autogroup:member"], "ip": ["*"]}]}"#
        ),
        ["aclc::unused_tag"]
    );
    // A name used in a rule or mentioned in a test is used.
    assert!(codes(
        r#"{"hosts": {"db": "10.0.0.1"}, "tests": [{"src": "alice@example.com", "accept": ["db:22"]}]}"#
    )
    .is_empty());
    assert!(codes(
        r#"{"postures": {"posture:latest": ["node:tsReleaseTrack == 'stable'"]},
            "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:latest"]}]}"#
    )
    .is_empty());
}

/// The HuJSON layer's codes, seen through the public entry points.
#[test]
fn reading_the_text() {
    expect_error_help(
        r#"{"acls": 'x'}"#,
        "aclc::syntax",
        "invalid character '\\'' at start of value",
        "'x'",
        Some("JSON strings use double quotes"),
    );
    // tailscale/hujson ends a `//` comment only at a newline and refuses one that reaches the
    // end of the input with `parsing comment: unexpected EOF`.
    expect_error_help(
        "{\"acls\": []}\n// no newline after this",
        "aclc::syntax",
        "parsing comment: unexpected EOF",
        "// no newline after this",
        Some(
            "end the file with a newline after the comment: a `//` comment runs to the end of \
             its line, and Tailscale's HuJSON parser refuses one that reaches the end of the file",
        ),
    );
    expect_error_help(
        r#"{"acls": [], "acls": []}"#,
        "aclc::duplicate_key",
        r#"duplicate key "acls""#,
        r#""acls""#,
        Some("remove one of the two members, or merge them"),
    );

    let limits = |max_bytes: usize, max_depth: usize| Options {
        limits: Limits {
            max_bytes,
            max_depth,
        },
        ..Options::default()
    };
    let (source, result) = parse_str("p", r#"{"acls": [[]]}"#, &limits(1000, 2));
    let d = &result.unwrap_err().0[0];
    assert_eq!(d.code, "aclc::too_deep");
    assert_eq!(
        d.message,
        "arrays and objects are nested more than 2 levels deep"
    );
    assert_eq!(source.slice(d.span), "[");
    assert!(d.help.as_deref().unwrap().contains("at most 2 levels"));

    let (source, result) = parse_str("p", r#"{"acls": []}"#, &limits(5, 128));
    let d = &result.unwrap_err().0[0];
    assert_eq!(d.code, "aclc::too_large");
    assert_eq!(
        d.message,
        "the policy is 12 bytes, more than the limit of 5 bytes"
    );
    // Nothing is looked at, so nothing is underlined.
    assert_eq!(source.slice(d.span), "");
    assert_eq!(
        d.help.as_deref(),
        Some("split the policy, or raise the size limit if the file is trusted")
    );

    let (source, found) = source_from_bytes("p", b"\xEF\xBB\xBF{}", &Limits::default());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].code, "aclc::byte_order_mark");
    assert_eq!(
        found[0].message,
        "invalid character '\\ufeff' at start of value"
    );
    assert_eq!(source.slice(found[0].span), "\u{FEFF}");
    assert_eq!(
        found[0].help.as_deref(),
        Some("save the file as UTF-8 without a byte-order mark (BOM)")
    );

    let (source, found) = source_from_bytes("p", b"{\"a\": 1 \xFF}", &Limits::default());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].code, "aclc::invalid_utf8");
    assert_eq!(found[0].message, "the policy is not valid UTF-8");
    assert_eq!(source.slice(found[0].span), "\u{FFFD}");
    assert_eq!(found[0].help.as_deref(), Some("save the file as UTF-8"));
}

/// Codes that need no test here: `aclc::internal` reports a bug in aclc itself ("the parser
/// returned no document without saying why"), which no policy text can trigger.
const UNTESTABLE: &[&str] = &["aclc::internal"];

/// Every `"aclc::..."` string literal in `text`.
fn code_literals(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"aclc::") {
        let after = &rest[at + "\"aclc::".len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('"') {
            found.insert(format!("aclc::{}", &after[..name_len]));
        }
        rest = after;
    }
    found
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Whether some library or CLI source (not a test) uses `Code::<variant>`: a code nothing
/// emits is a dead entry of the list.
fn emitted_somewhere(code: Code, sources: &str) -> bool {
    let needle = format!("Code::{code:?}");
    sources.match_indices(&needle).any(|(at, _)| {
        !sources[at + needle.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The library, embedding API and CLI sources, unit tests left out (`tests.rs` files, a file's inline
/// `#[cfg(test)] mod tests {`, which comes last, and the list of codes itself).
fn library_sources() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut text = String::new();
    for dir in ["policy/src", "compiler/src", "api/src", "cli/src"] {
        for file in rust_files(&root.join(dir)) {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            if name == "tests.rs" || name == "code.rs" {
                continue;
            }
            let body = std::fs::read_to_string(&file).unwrap();
            text.push_str(body.split("#[cfg(test)]\nmod tests {").next().unwrap_or(""));
        }
    }
    text
}

/// The codes the diagnostic test files (`tests/diagnostics*.rs`) mention as string literals,
/// and for codes emitted outside this crate (the test runner's, the compiler's), the CLI's and
/// the compiler's tests (in the compiler's sources, only tests spell codes as text).
fn tested_codes() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut codes = BTreeSet::new();
    for file in rust_files(&root.join("tests")) {
        let name = file.file_name().unwrap().to_string_lossy();
        if name.starts_with("diagnostics") {
            codes.extend(code_literals(&std::fs::read_to_string(&file).unwrap()));
        }
    }
    let others = [
        root.join("../cli/tests"),
        root.join("../compiler/tests"),
        root.join("../compiler/src"),
    ];
    for file in others.iter().flat_map(|dir| rust_files(dir)) {
        codes.extend(code_literals(&std::fs::read_to_string(&file).unwrap()));
    }
    codes
}

#[test]
fn every_code_is_emitted_and_tested() {
    let sources = library_sources();
    // Guard against a scan that finds nothing (wrong directory) and so proves nothing.
    assert!(
        sources.len() > 100_000,
        "only {} bytes of source",
        sources.len()
    );
    let tested = tested_codes();
    let mut dead = Vec::new();
    let mut untested = Vec::new();
    for &code in Code::ALL {
        if !emitted_somewhere(code, &sources) {
            dead.push(code);
        }
        if !tested.contains(code.as_str()) && !UNTESTABLE.contains(&code.as_str()) {
            untested.push(code);
        }
    }
    assert!(dead.is_empty(), "codes nothing emits: {dead:?}");
    assert!(
        untested.is_empty(),
        "diagnostic codes without a test in tests/diagnostics*.rs: {untested:?}"
    );
    // The allow-list holds only codes that still exist.
    for code in UNTESTABLE {
        assert!(code.parse::<Code>().is_ok(), "{code} is no longer a code");
    }
}

#[test]
fn code_literals_are_found() {
    let text = r#"x("aclc::a_b1", "aclc::", "aclc::Up", 'aclc::c', "aclc::d"#;
    let found: Vec<String> = code_literals(text).into_iter().collect();
    assert_eq!(found, ["aclc::a_b1"]);
}

/// Without the tailnet's domains (`aclc check` with no inventory), a `user:*@`/`localpart:*@`
/// domain is taken on trust, except one with `*`, which no tailnet has: Tailscale refuses
/// `localpart:*@*` (captured case `ssh-malformed-user-localpart-multi-glob`).
#[test]
fn a_wildcard_domain_is_refused_without_the_tailnets_domains() {
    let check = |text: &str| {
        let (_, result) = parse_str("policy.hujson", text, &Options::default());
        match result {
            Ok(_) => Vec::new(),
            Err(d) => {
                d.0.into_iter()
                    .filter(|d| d.severity == aclc_policy::Severity::Error)
                    .map(|d| (d.code.as_str(), d.message))
                    .collect()
            }
        }
    };
    assert_eq!(
        check(&ssh(
            r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["localpart:*@*"]}"#
        )),
        vec![(
            "aclc::domain_not_associated",
            "* is not associated with this Tailnet and cannot be used in user:*@<domain> expressions"
                .to_string()
        )]
    );
    assert!(check(&ssh(
        r#"{"action": "accept", "src": ["user:*@example.org"], "dst": ["tag:server"], "users": ["localpart:*@example.org"]}"#
    ))
    .is_empty());
}

/// A known shared email domain is refused in `user:*@` and `localpart:*@`, with the tailnet's
/// domains or without them, and even when the tailnet is a personal one named at it
/// (Tailscale's syntax reference: "The provided domain must not be a known shared domain
/// (such as `gmail.com`)"). Before, `localpart:*@gmail.com` compiled to an SSH login on a
/// `someone@gmail.com` tailnet, and passed `aclc check` without an inventory.
#[test]
fn shared_email_domains_are_no_tailnets_domain() {
    let check = |text: &str, domains: Option<Vec<String>>| {
        let options = Options {
            context: aclc_policy::Context {
                tailnet_domains: domains,
                ..Default::default()
            },
            ..Default::default()
        };
        let (_, result) = parse_str("policy.hujson", text, &options);
        match result {
            Ok(_) => Vec::new(),
            Err(d) => {
                d.0.into_iter()
                    .filter(|d| d.severity == aclc_policy::Severity::Error)
                    .map(|d| (d.code.as_str(), d.message, d.help.unwrap_or_default()))
                    .collect()
            }
        }
    };
    let gmail = Some(vec!["gmail.com".to_string()]);
    let users = ssh(
        r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["localpart:*@gmail.com"]}"#,
    );
    let sources =
        acl(r#"{"action": "accept", "src": ["user:*@GMail.com"], "dst": ["tag:server:22"]}"#);
    for (text, domain) in [(&users, "gmail.com"), (&sources, "GMail.com")] {
        for domains in [None, gmail.clone()] {
            let found = check(text, domains);
            assert_eq!(found.len(), 1, "{found:?}");
            let (code, message, help) = &found[0];
            assert_eq!(*code, "aclc::domain_not_associated");
            assert!(
                message.starts_with(&format!("{domain} is not associated")),
                "{message}"
            );
            assert!(help.contains("shared email domain"), "{help}");
        }
    }
    // A company's domain is taken on trust without the tailnet's domains, as before.
    assert!(check(
        &ssh(
            r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["localpart:*@example.org"]}"#
        ),
        None
    )
    .is_empty());
}

/// `disableIPv4: true` against a tailnet whose nodes have IPv4 addresses warns that aclc
/// compiles those addresses as given (Tailscale would have assigned none). Silent when no
/// node has one, when the tailnet is unknown, and when the flag is off.
#[test]
fn disable_ipv4_on_a_tailnet_with_ipv4_nodes_warns() {
    let warnings = |text: &str, ipv4_nodes: Option<usize>| {
        let options = Options {
            context: aclc_policy::Context {
                ipv4_nodes,
                ..Default::default()
            },
            ..Default::default()
        };
        let (_, result) = parse_str("policy.hujson", text, &options);
        let checked = result.unwrap_or_else(|d| panic!("refused: {:?}", d.0));
        checked
            .warnings
            .into_iter()
            .map(|d| (d.code.as_str(), d.message))
            .collect::<Vec<_>>()
    };
    let on =
        r#"{"disableIPv4": true, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;
    assert_eq!(
        warnings(on, Some(3)),
        [(
            "aclc::disable_ipv4_with_ipv4_nodes",
            "disableIPv4 is set, but 3 nodes have an IPv4 address: aclc compiles the inventory's \
             addresses as given, IPv4 included"
                .to_string()
        )]
    );
    assert!(warnings(on, Some(1))[0]
        .1
        .contains("1 node has an IPv4 address"));
    assert!(warnings(on, Some(0)).is_empty());
    assert!(warnings(on, None).is_empty());
    assert!(warnings(&on.replace("true", "false"), Some(3)).is_empty());
}

/// Brackets around an ACL destination that is not an IPv6 address: read as the text inside,
/// with a warning (Tailscale's documentation brackets only IPv6 addresses; what its parser
/// does with `[tag:x]` is not captured). An IPv6 address in brackets, its length after them or
/// not, is silent.
#[test]
fn bracketed_destinations_other_than_ipv6_are_warned() {
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["[tag:server]:443"]}"#),
        "aclc::unverified_bracketed_host",
        "dst=\"[tag:server]:443\": brackets around a destination that is not an IPv6 address; aclc reads it as \"tag:server\" and cannot verify that Tailscale does",
        "[tag:server]:443",
        "brackets are for IPv6 addresses only: write \"tag:server:443\"",
    );
    // A prefix inside the brackets is no IPv6 address either (headscale refuses it).
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["[fd7a:115c:a1e0::/48]:22"]}"#),
        "aclc::unverified_bracketed_host",
        "dst=\"[fd7a:115c:a1e0::/48]:22\": brackets around a destination that is not an IPv6 address; aclc reads it as \"fd7a:115c:a1e0::/48\" and cannot verify that Tailscale does",
        "[fd7a:115c:a1e0::/48]:22",
        "brackets are for IPv6 addresses only: write \"fd7a:115c:a1e0::/48:22\"",
    );
    for dst in ["[fd7a:115c:a1e0::1]:80,443", "[fd7a:115c:a1e0::]/48:22"] {
        let text = acl(&format!(
            r#"{{"action": "accept", "src": ["*"], "dst": ["{dst}"]}}"#
        ));
        assert!(
            !codes(&text).contains(&"aclc::unverified_bracketed_host"),
            "{dst}"
        );
        assert!(errors(&text).is_empty(), "{dst}");
    }
}

/// An IP set named only in a posture condition's value is used (real policies write
/// `ip:publicAddress NOT IN ['ipset:home']`); one named nowhere is not.
#[test]
fn an_ip_set_named_in_a_posture_condition_is_used() {
    let text = r#"{"ipsets": {"ipset:home": ["192.0.2.1/32"], "ipset:spare": ["192.0.2.2/32"]},
        "postures": {"posture:away": ["custom:net NOT IN ['ipset:home', 'other']"]},
        "defaultSrcPosture": ["posture:away"],
        "grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#;
    let unused: Vec<String> = common::diagnose(text)
        .into_iter()
        .filter(|d| d.1 == "aclc::unused_ipset")
        .map(|d| d.3)
        .collect();
    assert_eq!(unused, vec!["ipset:spare".to_string()]);
}

/// An empty `grants` or `acls` (Tailscale's own template once offered `"grants": []` as
/// unrestricted) lets no device reach another: a warning. No section at all is the
/// allow-all default, and a policy with any rule is what its author wrote.
#[test]
fn an_empty_rule_section_allows_no_traffic() {
    expect_warning(
        r#"{"grants": []}"#,
        "aclc::allows_no_traffic",
        "the policy has no rule: no device can reach another",
        "[]",
    );
    let both = codes(r#"{"acls": [], "grants": [], "ssh": []}"#);
    assert_eq!(both, ["aclc::allows_no_traffic"]);
    assert!(codes("{}").is_empty());
    assert!(codes(
        r#"{"grants": [], "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#
    )
    .is_empty());
    assert!(codes(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"example.com/cap/x": [{}]}}]}"#
    )
    .is_empty());
}

/// `0.0.0.0` (or `::`) in a rule is one address no device has, not every address: a warning
/// with the advice an old Tailscale parser refused it with; a prefix holding it is not.
#[test]
fn the_unspecified_address_is_not_every_address() {
    expect_warning(
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["0.0.0.0:80"]}]}"#,
        "aclc::unspecified_address",
        "0.0.0.0 is a single address that no device has, not every address; aclc cannot verify that Tailscale accepts it",
        "0.0.0.0",
    );
    assert_eq!(
        codes(r#"{"grants": [{"src": ["::"], "dst": ["*"], "ip": ["*"]}]}"#),
        ["aclc::unspecified_address"]
    );
    assert!(
        codes(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["0.0.0.0/0:80"]}]}"#)
            .is_empty()
    );
}

/// An ACL destination whose selector prefix is in another case is read in lower case, as
/// Tailscale's destination parser lower-cases `host:ports` (with a warning: what the control
/// server does is not captured); a source so written is refused, with the lower-case form as
/// the fix. A mixed-case name after a lower-case prefix is matched as written.
#[test]
fn selector_prefixes_in_another_case() {
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["TAG:SERVER:443"]}"#),
        "aclc::uppercase_destination",
        "dst=\"TAG:SERVER:443\": read as \"tag:server:443\", as Tailscale's parser lower-cases a destination; aclc cannot verify that the control server still does",
        "TAG:SERVER:443",
        "selector prefixes are lower case: write \"tag:server:443\"",
    );
    let target = |dst: &str| {
        let text = acl(&format!(
            r#"{{"action": "accept", "src": ["*"], "dst": ["{dst}"]}}"#
        ));
        let (_, parsed) = parse_str("p", &text, &Options::default());
        let policy = parsed.expect("a policy").policy;
        format!(
            "{:?}",
            policy.acls.expect("acls").value[0].dst[0].target.alias
        )
    };
    assert_eq!(target("Tag:Server:443"), target("tag:server:443"));
    assert_eq!(
        target("AUTOGROUP:INTERNET:*"),
        target("autogroup:internet:*")
    );
    expect_error_help(
        &acl(r#"{"action": "accept", "src": ["Group:Eng"], "dst": ["tag:server:443"]}"#),
        "aclc::undefined_host",
        "src=\"Group:Eng\": invalid address",
        "Group:Eng",
        Some("selector prefixes are lower case: did you mean \"group:eng\"?"),
    );
    // A group defined in mixed case, used as written after a lower-case prefix: no warning.
    let mixed = r#"{"groups": {"group:Eng": ["alice@example.com"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["group:Eng:80"]}]}"#;
    assert!(codes(mixed).is_empty(), "{:?}", codes(mixed));
    // Beside a definition of its lower-case name, another group (or host), it warns: the
    // control server may read the destination lower-cased.
    expect_warning_help(
        r#"{"groups": {"group:Eng": ["alice@example.com"], "group:eng": ["bob@example.com"]},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["group:Eng:22"]}]}"#,
        "aclc::uppercase_destination",
        "dst=\"group:Eng:22\": read as the group \"group:Eng\", but Tailscale's parser lower-cases a destination and may read it as the group \"group:eng\", another definition",
        "group:Eng",
        "rename one of the two groups so that their names differ in more than case",
    );
    let hosts = r#"{"hosts": {"DB": "100.64.0.0/10", "db": "100.64.1.2"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["DB:5432"]}]}"#;
    assert!(
        codes(hosts).contains(&"aclc::uppercase_destination"),
        "{:?}",
        codes(hosts)
    );
}

/// A prefix with bits set past its length is read as its network, with a warning wherever a
/// prefix is written: a rule, `hosts`, an IP set, an `autoApprovers` route. A network as
/// written, and a single address, are silent.
#[test]
fn prefixes_with_host_bits_are_read_as_their_network() {
    expect_warning_help(
        &acl(r#"{"action": "accept", "src": ["10.2.3.4/8"], "dst": ["tag:server:22"]}"#),
        "aclc::prefix_host_bits",
        "10.2.3.4/8 has bits set past its length: read as 10.0.0.0/8, the whole network; aclc cannot verify that Tailscale reads it so",
        "10.2.3.4/8",
        "write 10.0.0.0/8 for the network, or 10.2.3.4/32 for the one address",
    );
    expect_warning_help(
        r#"{"hosts": {"db": "fd7a:115c:a1e0::5/64"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["db:5432"]}]}"#,
        "aclc::prefix_host_bits",
        "hosts[\"db\"]: fd7a:115c:a1e0::5/64 has bits set past its length: read as fd7a:115c:a1e0::/64, the whole network; aclc cannot verify that Tailscale reads it so",
        "fd7a:115c:a1e0::5/64",
        "write fd7a:115c:a1e0::/64 for the network, or fd7a:115c:a1e0::5/128 for the one address",
    );
    let route = r#"{"autoApprovers": {"routes": {"10.1.2.3/16": ["autogroup:admin"]}}, "ipsets": {"ipset:x": ["192.168.1.1/24"]}, "grants": [{"src": ["ipset:x"], "dst": ["*"], "ip": ["*"]}]}"#;
    assert_eq!(
        codes(route),
        ["aclc::prefix_host_bits", "aclc::prefix_host_bits"],
        "{route}"
    );
    let clean = r#"{"hosts": {"n": "10.0.0.0/8", "one": "10.1.1.1/32"}, "acls": [{"action": "accept", "src": ["192.168.0.0/16"], "dst": ["n:*", "one:*"]}]}"#;
    assert!(codes(clean).is_empty(), "{:?}", codes(clean));
}

/// A prefix whose length is past its family's most says so in its help (it was "not an IP
/// address, a prefix, or a host"); a length in range that is wrong for another reason (a
/// leading zero) keeps the general help.
#[test]
fn a_prefix_length_out_of_range_is_named() {
    for (src, help) in [
        (
            "10.0.0.0/33",
            "an IPv4 prefix length is 0 to 32: \"33\" is out of range",
        ),
        (
            "fd7a::/999999999999999999999",
            "an IPv6 prefix length is 0 to 128: \"999999999999999999999\" is out of range",
        ),
        (
            "10.0.0.0/08",
            "\"10.0.0.0/08\" is not an IP address, a prefix, or a host defined in \"hosts\"",
        ),
    ] {
        expect_error_help(
            &acl(&format!(
                r#"{{"action": "accept", "src": ["{src}"], "dst": ["*:*"]}}"#
            )),
            "aclc::undefined_host",
            &format!("src=\"{src}\": invalid address"),
            src,
            Some(help),
        );
    }
}

/// SSH `users` entries that look like patterns but are none (`=`, an autogroup other than
/// `autogroup:nonroot`) are local account names to aclc, as other odd names are, with a
/// warning; `root`, `autogroup:nonroot`, `localpart:*@...` and plain names are silent.
#[test]
fn pattern_like_ssh_users_are_warned() {
    let ssh = |user: &str| {
        format!(
            r#"{{"ssh": [{{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["{user}"]}}]}}"#
        )
    };
    expect_warning_help(
        &ssh("autogroup:admin"),
        "aclc::unverified_ssh_user",
        "user \"autogroup:admin\": aclc reads it as a local account of that very name and cannot verify that Tailscale does",
        "autogroup:admin",
        "name a local user, \"root\", \"autogroup:nonroot\" or \"localpart:*@<domain>\"",
    );
    assert!(codes(&ssh("=")).contains(&"aclc::unverified_ssh_user"));
    for user in [
        "root",
        "autogroup:nonroot",
        "localpart:*@example.com",
        "ubuntu",
        "group:foo",
    ] {
        let text = ssh(user);
        assert!(
            !codes(&text).contains(&"aclc::unverified_ssh_user"),
            "{user}"
        );
        assert!(errors(&text).is_empty(), "{user}");
    }
}
