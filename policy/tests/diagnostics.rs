//! Diagnostic tests: for each kind of mistake, the message (Tailscale's text where known), the
//! stable code, the help and the underlined text — never raw offsets.

mod common;

use aclc_policy::parse_str;
use common::{acl, diagnose, errors, expect_error, expect_warning, grant, options, ssh, TAGS};

#[test]
fn unknown_key_suggests_the_closest() {
    let d = diagnose(r#"{"acl": []}"#);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, "aclc::unknown_key");
    assert_eq!(d[0].2, r#"unknown field "acl""#);
    assert_eq!(d[0].3, "acl");
    assert_eq!(d[0].4.as_deref(), Some(r#"did you mean "acls"?"#));

    let d = errors(&acl(
        r#"{"action": "accept", "src": ["*"], "dts": ["*:*"]}"#,
    ));
    assert_eq!(
        d,
        vec![(
            "aclc::unknown_key",
            r#"unknown field "dts""#.into(),
            "dts".into()
        )]
    );
}

#[test]
fn key_in_other_case_is_a_warning() {
    expect_warning(
        &acl(r#"{"Action": "accept", "src": ["*"], "dst": ["*:*"]}"#),
        "aclc::key_case",
        r#"field "Action" is spelled "action""#,
        "Action",
    );
}

/// A field written twice in two cases: the last one is used, and the warning says so at the
/// one that replaces the other (in either order).
#[test]
fn key_repeated_in_another_case_says_which_is_used() {
    expect_warning(
        &acl(r#"{"action": "accept", "src": ["alice@example.com"], "dst": ["*:*"], "Src": ["*"]}"#),
        "aclc::key_case",
        r#"field "Src" repeats "src" in another case: this one replaces it"#,
        "Src",
    );
    expect_warning(
        &acl(r#"{"action": "accept", "SRC": ["*"], "dst": ["*:*"], "src": ["alice@example.com"]}"#),
        "aclc::key_case",
        r#"field "src" repeats "SRC" in another case: this one replaces it"#,
        "src",
    );
    // The same spelling twice is the duplicate key error alone, not also "another case".
    let rule = r#"{"action": "accept", "src": ["*"], "dst": ["*:*"]}"#;
    let twice = diagnose(&format!(r#"{{"acls": [{rule}], "acls": [{rule}]}}"#));
    let codes: Vec<&str> = twice.iter().map(|d| d.1).collect();
    assert_eq!(codes, ["aclc::duplicate_key"], "{twice:?}");
}

/// `autogroup:internet` is refused as a source and as an app grant's destination; through an
/// IP set (directly or through another set) it is warned about, where it is used.
#[test]
fn internet_through_an_ip_set_is_warned_where_the_autogroup_is_refused() {
    let sets = r#""ipsets": {"ipset:net": ["autogroup:internet"], "ipset:wide": ["ipset:net", "10.0.0.0/8"]}"#;
    expect_warning(
        &format!(r#"{{{sets}, "grants": [{{"src": ["ipset:wide"], "dst": ["*"], "ip": ["*"]}}]}}"#),
        "aclc::ipset_internet",
        r#""ipset:wide" holds autogroup:internet, which is not valid on the src side of a rule"#,
        "ipset:wide",
    );
    expect_warning(
        &format!(
            r#"{{{sets}, "grants": [{{"src": ["*"], "dst": ["ipset:net"], "app": {{"example.com/cap/x": [{{}}]}}}}]}}"#
        ),
        "aclc::ipset_internet",
        r#""ipset:net" holds autogroup:internet, which is not valid as an app grant's destination"#,
        "ipset:net",
    );
    // As a network destination it is what the autogroup is for: nothing to say.
    let fine =
        format!(r#"{{{sets}, "grants": [{{"src": ["*"], "dst": ["ipset:wide"], "ip": ["*"]}}]}}"#);
    assert!(common::diagnose(&fine)
        .iter()
        .all(|d| d.1 != "aclc::ipset_internet"));
}

#[test]
fn wrong_json_type_names_path_and_types() {
    expect_error(
        r#"{"groups": {"group:eng": "alice@example.com"}}"#,
        "aclc::wrong_type",
        r#"groups["group:eng"] must be an array of users, got a string"#,
        r#""alice@example.com""#,
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": "*", "dst": ["*:*"]}"#),
        "aclc::wrong_type",
        "acls[0].src must be an array of strings, got a string",
        r#""*""#,
    );
}

#[test]
fn undefined_references() {
    expect_error(
        &acl(r#"{"action": "accept", "src": ["tag:nope"], "dst": ["*:*"]}"#),
        "aclc::undefined_tag",
        r#"src=tag not found: "tag:nope""#,
        "tag:nope",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["tag:nope:22"]}"#),
        "aclc::undefined_tag",
        r#"dst="tag:nope": tag not found: "tag:nope""#,
        "tag:nope",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:nope"]}"#),
        "aclc::undefined_tag",
        r#"tag "tag:nope" not found"#,
        "tag:nope",
    );
    expect_error(
        r#"{"nodeAttrs": [{"target": ["tag:nope"], "attr": ["funnel"]}]}"#,
        "aclc::undefined_tag",
        r#"tag not found: "tag:nope""#,
        "tag:nope",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}"#),
        "aclc::undefined_group",
        r#"src=group not found: "group:nope""#,
        "group:nope",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["nohost"], "dst": ["*:*"]}"#),
        "aclc::undefined_host",
        r#"src="nohost": invalid address"#,
        "nohost",
    );
    expect_error(
        r#"{"nodeAttrs": [{"target": ["%bogus%"], "attr": ["funnel"]}]}"#,
        "aclc::undefined_host",
        r#""%bogus%": invalid address"#,
        "%bogus%",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["ipset:nope"], "dst": ["*:*"]}"#),
        "aclc::undefined_ipset",
        r#"src=ipset not found: "ipset:nope""#,
        "ipset:nope",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["*"], "ip": ["*"], "srcPosture": ["posture:nope"]}"#),
        "aclc::undefined_posture",
        r#"posture not found: "posture:nope""#,
        "posture:nope",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["autogroup:everyone"], "dst": ["*:*"]}"#),
        "aclc::unknown_autogroup",
        r#"unknown autogroup "autogroup:everyone""#,
        "autogroup:everyone",
    );
}

#[test]
fn undefined_tag_suggests_a_defined_one() {
    let d = diagnose(&acl(
        r#"{"action": "accept", "src": ["tag:servr"], "dst": ["*:*"]}"#,
    ));
    let e = d.iter().find(|d| d.1 == "aclc::undefined_tag").unwrap();
    assert_eq!(e.4.as_deref(), Some(r#"did you mean "tag:server"?"#));
}

#[test]
fn placement_rules() {
    expect_error(
        &acl(r#"{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}"#),
        "aclc::self_in_src",
        r#""autogroup:self" not valid on the src side of a rule"#,
        "autogroup:self",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["tag:client"], "dst": ["autogroup:self:*"]}"#),
        "aclc::self_with_invalid_src",
        "autogroup:self can only be used with users, groups, or supported autogroups",
        "tag:client",
    );
    // ACLs accept `*` with autogroup:self, grants do not.
    assert!(errors(&acl(
        r#"{"action": "accept", "src": ["*"], "dst": ["autogroup:self:*"]}"#
    ))
    .is_empty());
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["autogroup:self"], "ip": ["*"]}"#),
        "aclc::self_with_invalid_src",
        "autogroup:self can only be used with users, groups, or supported autogroups",
        "*",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["autogroup:danger-all"], "ip": ["*"]}"#),
        "aclc::danger_all_in_dst",
        "cannot use autogroup:danger-all as a dst",
        "autogroup:danger-all",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["::/0"], "ip": ["*"]}"#),
        "aclc::all_addresses_dst",
        r#"dst "::/0": to allow all IP addresses, use "*" or "autogroup:internet""#,
        "::/0",
    );
    expect_error(
        &grant(
            r#"{"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}}"#,
        ),
        "aclc::app_with_internet",
        "cannot use app grants with autogroup:internet",
        "autogroup:internet",
    );
    expect_error(
        &grant(
            r#"{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["autogroup:tagged"]}"#,
        ),
        "aclc::via_not_tag",
        "via can only be a tag",
        "autogroup:tagged",
    );
    // A host named in `via` is refused once, not also reported as never used.
    let host_via = r#"{"hosts": {"vor": "100.64.0.9"}, "grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["vor"]}]}"#;
    let found = common::codes(host_via);
    assert!(found.contains(&"aclc::via_not_tag"), "{found:?}");
    assert!(!found.contains(&"aclc::unused_host"), "{found:?}");
    // `"via": ["*"]`: Tailscale's via announcement says omitting via is equivalent to it
    // (tailscale.com/blog/via); read as no via, with a warning, and never a via_not_tag error.
    let star = grant(r#"{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["*"]}"#);
    expect_warning(
        &star,
        "aclc::via_wildcard",
        r#"via "*" is read as no via (any router): aclc cannot verify that Tailscale accepts it"#,
        "*",
    );
    assert!(errors(&star).is_empty(), "{:?}", errors(&star));
    let (_, checked) = parse_str("p", &star, &options());
    let grants = checked.unwrap().policy.grants.unwrap().value;
    assert!(grants[0].via.is_empty());
    expect_error(
        r#"{"nodeAttrs": [{"target": ["autogroup:self"], "attr": ["funnel"]}]}"#,
        "aclc::invalid_target",
        "autogroup:self cannot be used as a nodeAttrs target (Tailscale answers: internal server error)",
        "autogroup:self",
    );
}

#[test]
fn ports_protocols_and_actions() {
    expect_error(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["tag:server:ssh"]}"#),
        "aclc::invalid_port",
        r#"dst="tag:server:ssh": port range "ssh": invalid first integer"#,
        "ssh",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["autogroup:self"]}"#),
        "aclc::invalid_port",
        r#"dst="autogroup:self": port range "self": invalid first integer"#,
        "self",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["tag:server:90-80"]}"#),
        "aclc::invalid_port",
        r#"dst="tag:server:90-80": port range "90-80": first port must be >= last port"#,
        "90-80",
    );
    expect_error(
        &acl(r#"{"action": "accept", "src": ["*"], "dst": ["100.64.0.1"]}"#),
        "aclc::missing_port",
        r#"dst="100.64.0.1": hostport must contain a colon (":")"#,
        "100.64.0.1",
    );
    expect_error(
        &acl(r#"{"action": "deny", "src": ["*"], "dst": ["*:*"]}"#),
        "aclc::invalid_action",
        r#"action="deny" is not supported"#,
        "deny",
    );
    expect_error(
        &acl(r#"{"action": "accept", "proto": "bogus", "src": ["*"], "dst": ["*:*"]}"#),
        "aclc::invalid_protocol",
        r#"proto name "bogus" not known; use protocol number 0-255"#,
        "bogus",
    );
    expect_error(
        &acl(r#"{"action": "accept", "proto": "icmp", "src": ["*"], "dst": ["tag:server:22"]}"#),
        "aclc::ports_on_portless_protocol",
        r#"protocol does not support specific ports: "icmp", only "*" is allowed"#,
        "tag:server:22",
    );
    // In a grant's ip, Tailscale's parser (tailcfg.ProtoPortRange) takes ports on any protocol
    // and its Kubernetes multi-cluster ingress guide writes "icmp:22": a warning, not an error.
    let icmp = grant(r#"{"src": ["*"], "dst": ["tag:server"], "ip": ["icmp:22"]}"#);
    expect_warning(
        &icmp,
        "aclc::grant_portless_ports",
        r#"protocol "icmp" has no ports: aclc cannot verify that Tailscale accepts ports on it in a grant"#,
        "icmp:22",
    );
    assert!(errors(&icmp).is_empty(), "{:?}", errors(&icmp));
    // A user's own devices are not routed through `via`: the grant gives them nothing.
    let self_via = grant(
        r#"{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:22"], "via": ["tag:server"]}"#,
    );
    expect_warning(
        &self_via,
        "aclc::via_self_unrouted",
        "autogroup:self is not routed through via: this grant gives it nothing",
        "autogroup:self",
    );
    assert!(errors(&self_via).is_empty(), "{:?}", errors(&self_via));
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["tag:server"], "ip": ["tcp:0"]}"#),
        "aclc::invalid_port",
        r#"port range "0": first port must be >0, or use '*' for wildcard"#,
        "tcp:0",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["tag:server"], "ip": ["icmp"]}"#),
        "aclc::invalid_port",
        r#"port range "icmp": invalid first integer"#,
        "icmp",
    );
    // IPv6 destinations with ports are bracketed.
    assert!(errors(&acl(
        r#"{"action": "accept", "src": ["*"], "dst": ["[fd7a::1]:22"]}"#
    ))
    .is_empty());
}

#[test]
fn grant_values() {
    let empty = grant(r#"{"src": ["*"], "dst": ["*"]}"#);
    let found = errors(&empty);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "aclc::empty_grant");
    assert_eq!(found[0].1, "ip and app can not both be empty");
    assert_eq!(found[0].2, r#"{"src": ["*"], "dst": ["*"]}"#);
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["*"], "app": {"https://example.com/cap/x": [{}]}}"#),
        "aclc::invalid_capability",
        "capability name must have the form {domain}/{path}",
        "https://example.com/cap/x",
    );
    expect_error(
        &grant(r#"{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/funnel": [{}]}}"#),
        "aclc::invalid_capability",
        "capability name must not be in the tailscale.com domain",
        "tailscale.com/cap/funnel",
    );
    // Capabilities of Tailscale products documented in policy files (Aperture, PAM).
    for cap in ["tailscale.com/cap/aperture", "tailscale.com/cap/pam"] {
        let text = grant(&format!(
            r#"{{"src": ["*"], "dst": ["*"], "app": {{"{cap}": [{{"role": "user"}}]}}}}"#
        ));
        let errors: Vec<_> = diagnose(&text)
            .into_iter()
            .filter(|d| d.0 == aclc_policy::Severity::Error)
            .collect();
        assert_eq!(errors, vec![], "{cap}");
    }
}

/// A grant destination written with a specific port, as Tailscale's Kubernetes multi-cluster
/// ingress guide does ("dst": ["tag:internal-apps:80", "tag:internal-apps:443"] beside
/// "ip": ["tcp:80", "tcp:443"]): read as the bare selector, the ports left to `ip`, with a
/// warning; the tag counts as used. A tag undefined once the port is gone is still an error.
#[test]
fn grant_destination_with_a_port() {
    let text = r#"{"tagOwners": {"tag:vpc": ["autogroup:admin"]},
        "grants": [{"src": ["autogroup:admin"], "dst": ["tag:vpc:22", "192.0.2.0/24:443"], "ip": ["tcp:22", "tcp:443"]}]}"#;
    let found = diagnose(text);
    let helps: Vec<(&str, Option<&str>)> = found.iter().map(|d| (d.1, d.4.as_deref())).collect();
    assert_eq!(
        helps,
        vec![
            (
                "aclc::grant_dst_port",
                Some(r#"in grants, ports go in "ip" ("ip": ["tcp:22"]); write "tag:vpc""#)
            ),
            (
                "aclc::grant_dst_port",
                Some(r#"in grants, ports go in "ip" ("ip": ["tcp:443"]); write "192.0.2.0/24""#)
            ),
        ],
        "{found:#?}"
    );
    expect_warning(
        text,
        "aclc::grant_dst_port",
        r#"dst "tag:vpc:22" is read as "tag:vpc", its ports left to "ip": aclc cannot verify that Tailscale accepts a port in a grant's dst"#,
        "tag:vpc:22",
    );
    expect_error(
        r#"{"grants": [{"src": ["*"], "dst": ["tag:nope:22"], "ip": ["*"]}]}"#,
        "aclc::undefined_tag",
        r#"dst="tag:nope": tag not found: "tag:nope""#,
        "tag:nope:22",
    );
    // Not a port list: the text stays a (missing) tag.
    assert!(!errors(r#"{"tagOwners": {"tag:vpc": []}, "grants": [{"src": ["*"], "dst": ["tag:vpc:ssh"], "ip": ["*"]}]}"#).is_empty());
}

/// A grant destination with every port, `selector:*`, as Tailscale's grant examples write it
/// ("VPC access": "dst": ["tag:vpc-peering:*"], ["192.0.2.0/24:*", "198.51.100.0/24:*"]): read
/// as the bare selector, with a warning (whether Tailscale accepts it is not recorded).
#[test]
fn grant_destination_with_every_port() {
    let text = r#"{"tagOwners": {"tag:vpc-peering": ["autogroup:admin"]},
        "grants": [{"src": ["autogroup:admin"], "dst": ["tag:vpc-peering:*", "192.0.2.0/24:*"], "ip": ["*"]}]}"#;
    let found = diagnose(text);
    let codes: Vec<&str> = found.iter().map(|d| d.1).collect();
    assert_eq!(
        codes,
        ["aclc::grant_dst_port", "aclc::grant_dst_port"],
        "{found:#?}"
    );
    expect_warning(
        text,
        "aclc::grant_dst_port",
        r#"dst "tag:vpc-peering:*" is read as "tag:vpc-peering": aclc cannot verify that Tailscale accepts a port in a grant's dst"#,
        "tag:vpc-peering:*",
    );
    let (_, checked) = parse_str("p", text, &options());
    let grants = checked.unwrap().policy.grants.unwrap().value;
    let dst: Vec<&str> = grants[0].dst.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(dst, ["tag:vpc-peering", "192.0.2.0/24"]);
    // Not a selector once the port is gone: still an error.
    assert!(
        !errors(r#"{"grants": [{"src": ["*"], "dst": ["nohost:*"], "ip": ["*"]}]}"#).is_empty()
    );
}

/// Tags a Kubernetes capability names as session recorders (`recorder`, the key the operator
/// reads) are used (no "never used" warning); an undefined one is a warning, not a refusal.
/// Recorders under `recorders` (one documentation page's spelling, which the operator does
/// not read) are a warning of their own, and their tags still count as used.
#[test]
fn kubernetes_recorder_tags() {
    let text = |key: &str, recorder: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:k8s": [], "tag:rec": []}},
                "grants": [{{"src": ["autogroup:admin"], "dst": ["tag:k8s"], "ip": ["tcp:443"],
                  "app": {{"tailscale.com/cap/kubernetes": [{{"{key}": ["{recorder}"], "enforceRecorder": true}}]}}}}]}}"#
        )
    };
    assert_eq!(diagnose(&text("recorder", "tag:rec")), vec![]);
    let codes = |text: &str| -> Vec<&'static str> { diagnose(text).iter().map(|d| d.1).collect() };
    assert_eq!(
        codes(&text("recorder", "tag:nope")),
        vec!["aclc::unused_tag", "aclc::undefined_recorder_tag"]
    );
    assert_eq!(
        codes(&text("recorders", "tag:rec")),
        vec!["aclc::kubernetes_recorders_key"]
    );
    assert_eq!(
        codes(&text("recorders", "tag:nope")),
        vec![
            "aclc::unused_tag",
            "aclc::kubernetes_recorders_key",
            "aclc::undefined_recorder_tag"
        ]
    );
}

/// `autoApprovers.services` keys are service names or tags services carry: a defined tag is
/// accepted silently (and counts as used), an undefined one with a warning (never refused).
#[test]
fn service_approver_keys_may_be_tags() {
    let defined = r#"{"tagOwners": {"tag:k8s": ["autogroup:admin"]},
        "autoApprovers": {"services": {"tag:k8s": ["tag:k8s"], "svc:web": ["tag:k8s"]}}}"#;
    assert_eq!(diagnose(defined), vec![]);
    expect_warning(
        r#"{"tagOwners": {"tag:k8s": ["autogroup:admin"]},
            "autoApprovers": {"services": {"tag:k8z": ["tag:k8s"]}}}"#,
        "aclc::unverified_service_name",
        r#"services tagged "tag:k8z" are auto-approved, but the tag is not in "tagOwners"; aclc cannot verify that Tailscale accepts it"#,
        "tag:k8z",
    );
}

#[test]
fn definitions() {
    expect_error(
        r#"{"groups": {"group:a": ["group:b"], "group:b": ["bob@example.com"]},
            "acls": [{"action": "accept", "src": ["group:a"], "dst": ["*:*"]}]}"#,
        "aclc::recursive_group",
        r#"groups["group:a"]: "group:b": group members cannot be recursive"#,
        "group:b",
    );
    expect_error(
        r#"{"tagOwners": {"tag:1x": []}}"#,
        "aclc::invalid_tag_name",
        r#"tagOwners["tag:1x"]: tag names must start with a letter, after 'tag:'"#,
        "tag:1x",
    );
    expect_error(
        r#"{"hosts": {"db": "10.0.0.300"}}"#,
        "aclc::invalid_host",
        r#"hosts["db"]: "10.0.0.300": invalid address"#,
        "10.0.0.300",
    );
    expect_error(
        r#"{"hosts": {"db@corp": "10.0.0.1"},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["db@corp:22"]}]}"#,
        "aclc::invalid_host_name",
        r#"host names cannot include an @, please change the name for "db@corp""#,
        "db@corp",
    );
    expect_error(
        r#"{"hosts": {"derp:merp": "10.0.0.1"}}"#,
        "aclc::invalid_host_name",
        "host name must not contain colon (:)",
        "derp:merp",
    );
    expect_error(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.100.100.0/24"]}]}"#,
        "aclc::reserved_ip_pool",
        "IPPool(100.100.100.0/24): network within reserved range",
        "100.100.100.0/24",
    );
    expect_warning(
        r#"{"acls": [{"action": "accept", "src": ["autogroup:member", "autogroup:members"], "dst": ["*:*"]}]}"#,
        "aclc::mixed_member_autogroups",
        "autogroup:members and autogroup:member are both used: aclc cannot verify that Tailscale accepts the two spellings in one policy",
        "autogroup:members",
    );
}

#[test]
fn domains() {
    expect_error(
        &ssh(r#"{"action": "accept", "src": ["user:*@example.org"], "dst": ["tag:server"], "users": ["root"]}"#),
        "aclc::domain_not_associated",
        "[ssh] example.org is not associated with this Tailnet and cannot be used in user:*@<domain> expressions",
        "user:*@example.org",
    );
    expect_error(
        &ssh(
            r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["localpart:*@*"]}"#,
        ),
        "aclc::domain_not_associated",
        "* is not associated with this Tailnet and cannot be used in user:*@<domain> expressions",
        "localpart:*@*",
    );
    expect_error(
        &grant(r#"{"src": ["user:*@example.org"], "dst": ["*"], "ip": ["*"]}"#),
        "aclc::domain_not_associated",
        "example.org is not associated with this Tailnet and cannot be used in user:*@<domain> expressions",
        "user:*@example.org",
    );
    assert!(errors(&grant(
        r#"{"src": ["user:*@example.com"], "dst": ["*"], "ip": ["*"]}"#
    ))
    .is_empty());
}

#[test]
fn ssh_rules() {
    let rule = |fields: &str| {
        ssh(&format!(
            r#"{{"src": ["autogroup:member"], "dst": ["tag:server"], {fields}}}"#
        ))
    };
    expect_error(
        &rule(r#""users": ["root"]"#),
        "aclc::missing_action",
        "action must be specified",
        r#"{"src": ["autogroup:member"], "dst": ["tag:server"], "users": ["root"]}"#,
    );
    expect_error(
        &rule(r#""action": "ACCEPT", "users": ["root"]"#),
        "aclc::invalid_action",
        r#""ACCEPT" is not a valid action"#,
        "ACCEPT",
    );
    expect_error(
        &rule(r#""action": "accept", "users": []"#),
        "aclc::missing_users",
        "users must be specified",
        "[]",
    );
    expect_error(
        &rule(r#""action": "accept", "users": ["root", "*"]"#),
        "aclc::invalid_ssh_user",
        r#"user "*" is not valid"#,
        "*",
    );
    expect_error(
        &rule(r#""action": "accept", "users": [""]"#),
        "aclc::invalid_ssh_user",
        r#"user "" is not valid"#,
        r#""""#,
    );
    expect_error(
        &rule(r#""action": "accept", "users": ["root"], "acceptEnv": [""]"#),
        "aclc::empty_accept_env",
        "acceptEnv values cannot be empty",
        r#""""#,
    );
    expect_error(
        &rule(r#""action": "check", "users": ["root"], "checkPeriod": "abc""#),
        "aclc::invalid_check_period",
        r#"time: invalid duration "abc""#,
        "abc",
    );
    expect_error(
        &rule(r#""action": "check", "users": ["root"], "checkPeriod": "-1m""#),
        "aclc::invalid_check_period",
        "checkPeriod -1m0s must be a positive duration",
        "-1m",
    );
    expect_error(
        &rule(r#""action": "check", "users": ["root"], "checkPeriod": "168h0m1s""#),
        "aclc::invalid_check_period",
        "checkPeriod 168h0m1s is above the max (168h)",
        "168h0m1s",
    );
    expect_error(
        r#"{"hosts": {"srv": "100.64.0.16"}, "ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["srv"], "users": ["root"]}]}"#,
        "aclc::ssh_invalid_dst",
        r#"invalid dst "srv""#,
        "srv",
    );
    expect_error(
        &ssh(r#"{"action": "accept", "src": ["*"], "dst": ["tag:server"], "users": ["root"]}"#),
        "aclc::ssh_invalid_src",
        r#"invalid src "*""#,
        "*",
    );
    // Whitespace around values is trimmed, as Tailscale does.
    assert!(errors(&ssh(
        r#"{"action": " accept", "src": [" alice@example.com"], "dst": ["tag:server "], "users": ["root"]}"#
    ))
    .is_empty());
}

#[test]
fn ssh_test_shapes() {
    let policy = |dst: &str| {
        format!(
            r#"{{"ssh": [{{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:server"], "users": ["root"]}}],
                "sshTests": [{{"src": "alice@example.com", "dst": ["{dst}"], "accept": ["root"]}}], {TAGS}}}"#
        )
    };
    expect_error(
        &policy("100.64.0.0/24"),
        "aclc::ssh_test_dst",
        r#"SSH tests dst contains disallowed element "100.64.0.0/24""#,
        "100.64.0.0/24",
    );
    expect_error(
        &policy("tag:server:22"),
        "aclc::ssh_test_dst",
        r#"SSH tests dst contains unknown tag "tag:server:22""#,
        "tag:server:22",
    );
    assert!(errors(&policy("tag:server")).is_empty());
    // An autogroup as src (tailscale/tailscale#14102).
    expect_error(
        &policy("tag:server").replace(
            r#""src": "alice@example.com", "dst""#,
            r#""src": "autogroup:admin", "dst""#,
        ),
        "aclc::ssh_test_src",
        r#"SSH tests src contains disallowed element "autogroup:admin""#,
        "autogroup:admin",
    );
}

#[test]
fn documented_refusals() {
    // App capabilities (Tailscale KB): app grants cannot use administrative autogroups as
    // destinations.
    expect_error(
        r#"{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:admin"], "app": {"example.com/cap/x": [{}]}}]}"#,
        "aclc::app_with_role_autogroup",
        "cannot use app grants with autogroup:admin",
        "autogroup:admin",
    );
    // A network grant to the same autogroup stays valid.
    assert!(errors(
        r#"{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:admin"], "ip": ["*"]}]}"#
    )
    .is_empty());
    // IP sets (Tailscale KB): the operation before every target unless the set only adds;
    // whether Tailscale refuses a bare one is not known, so a warning.
    expect_warning(
        r#"{"ipsets": {"ipset:a": ["10.0.0.0/8", "remove 10.1.0.0/16"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["ipset:a:*"]}]}"#,
        "aclc::ipset_bare_entry",
        r#"ipsets["ipset:a"]: "10.0.0.0/8" has no operation: Tailscale's documentation asks for "add <target>" in an IP set that removes; aclc reads it as add and cannot verify that Tailscale accepts it"#,
        "10.0.0.0/8",
    );
    assert!(errors(
        r#"{"ipsets": {"ipset:a": ["10.0.0.0/8", "10.2.0.0/16"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["ipset:a:*"]}]}"#
    )
    .is_empty());
}

#[test]
fn warnings() {
    expect_warning(
        r#"{"nodeAttrs": [{"target": ["*"]}]}"#,
        "aclc::node_attr_gives_nothing",
        "this nodeAttrs entry gives its targets nothing: its attr, app and ipPool are empty or missing",
        r#"{"target": ["*"]}"#,
    );
    expect_warning(
        r#"{"groups": {"group:eng": ["bob"]}, "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["*:*"]}]}"#,
        "aclc::bare_group_member",
        r#"groups["group:eng"]: "bob" is not a login: aclc cannot verify that Tailscale accepts it"#,
        "bob",
    );
    expect_warning(
        r#"{"groups": {"group:unused": ["alice@example.com"]}}"#,
        "aclc::unused_group",
        r#"group "group:unused" is never used"#,
        "group:unused",
    );
    expect_warning(
        &acl(r#"{"action": "accept", "src": ["carol@example.com"], "dst": ["tag:server:22"]}"#),
        "aclc::unknown_user",
        r#"user "carol@example.com" is not a member of the tailnet"#,
        "carol@example.com",
    );
    expect_warning(
        &acl(r#"{"action": "accept", "users": ["*"], "ports": ["tag:server:22"]}"#),
        "aclc::legacy_field",
        r#""users" is a legacy spelling of "src""#,
        "users",
    );
    expect_warning(
        r#"{"groups": {"group:empty": []}, "acls": [{"action": "accept", "src": ["group:empty"], "dst": ["*:*"]}]}"#,
        "aclc::never_matches",
        "this rule never matches: its sources are all empty groups",
        "group:empty",
    );
}

#[test]
fn five_independent_mistakes_are_all_reported_in_order() {
    let text = r#"{
  "acls": [
    {"action": "deny", "src": ["*"], "dst": ["*:*"]},
    {"action": "accept", "src": ["tag:missing"], "dst": ["*:*"]},
    {"action": "accept", "src": ["*"], "dst": ["tag:server:http"]},
  ],
  "ssh": [
    {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["*"]},
  ],
  "tagOwners": {"tag:server": ["alice@example.com"]},
  "grants": [{"src": ["*"], "dst": ["*"], "colour": "blue", "ip": ["*"]}],
}"#;
    let found = errors(text);
    let codes: Vec<&str> = found.iter().map(|e| e.0).collect();
    assert_eq!(
        codes,
        vec![
            "aclc::invalid_action",
            "aclc::undefined_tag",
            "aclc::invalid_port",
            "aclc::invalid_ssh_user",
            "aclc::unknown_key",
        ],
        "{found:#?}"
    );
    let underlined: Vec<&str> = found.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        underlined,
        vec!["deny", "tag:missing", "http", "*", "colour"]
    );
    // The error list's display names the first and counts the rest.
    let (_, result) = parse_str("p", text, &options());
    assert_eq!(
        result.unwrap_err().to_string(),
        r#"action="deny" is not supported (+4 more)"#
    );
}

#[test]
fn selector_without_ports_gets_a_fix_in_the_help() {
    let d = diagnose(&acl(
        r#"{"action": "accept", "src": ["*"], "dst": ["autogroup:self"]}"#,
    ));
    let e = d.iter().find(|d| d.1 == "aclc::invalid_port").unwrap();
    assert_eq!(
        e.4.as_deref(),
        Some(r#"an ACL destination needs ports after the selector: write "autogroup:self:*""#)
    );
}

#[test]
fn newer_protocol_names_are_accepted_with_a_warning() {
    expect_warning(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["icmpv6:*"]}]}"#,
        "aclc::unverified_protocol_name",
        r#"proto name "icmpv6": aclc cannot verify that Tailscale accepts it (its newer parser knows it, its older one does not)"#,
        "icmpv6:*",
    );
    expect_warning(
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "proto": "DCCP"}]}"#,
        "aclc::unverified_protocol_name",
        r#"proto name "DCCP": aclc cannot verify that Tailscale accepts it (its newer parser knows it, its older one does not)"#,
        "DCCP",
    );
}
