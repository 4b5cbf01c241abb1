//! Policy features Tailscale accepts that real GitOps policies use (issue 8): app connectors,
//! groups synced from the identity provider, `attrConfig`, the API client's spellings,
//! session recorders, Tailscale Services, `ipPool`. Each accepted form checks clean; each
//! mistake has its code, message and underline. Evidence is cited per test.

mod common;

use aclc_policy::{parse_str, Context, Options, Severity};
use common::{
    codes, diagnose, expect_error, expect_error_help, expect_warning, expect_warning_help,
};

/// Errors and warnings of `text`, as codes, asserting there is no error.
#[track_caller]
fn clean(text: &str) -> Vec<&'static str> {
    let all = diagnose(text);
    assert!(
        all.iter().all(|d| d.0 == Severity::Warning),
        "unexpected errors: {all:?}"
    );
    all.into_iter().map(|d| d.1).collect()
}

// --- App connectors: Tailscale KB "App connectors" (kb/1281); the API client's
// `NodeAttrGrantApp {name, connectors, domains, presetAppID}`.

/// The configuration the admin console writes itself, verbatim from issue 8.
const APP_CONNECTOR: &str = r#"{"tagOwners": {"tag:connector": ["autogroup:admin"]},
 "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [
   {"name": "github", "connectors": ["tag:connector"], "domains": ["github.com", "*.github.com"]}]}}]}"#;

#[test]
fn app_connector_checks_clean_and_uses_its_tag() {
    // No `invalid_capability` (the grant allow-list is not for nodeAttrs) and no
    // `unused_tag` (the connector's tag counts as used).
    assert_eq!(clean(APP_CONNECTOR), Vec::<&str>::new());
    let with_routes = r#"{"tagOwners": {"tag:connector": []},
      "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [
        {"name": "aws", "connectors": ["tag:connector"], "routes": ["192.0.2.0/24", "2001:db8::/32"],
         "presetAppID": "aws"}]}}]}"#;
    assert_eq!(clean(with_routes), Vec::<&str>::new());
    // A preset app takes its domains and routes from the preset: the admin console writes
    // `presetAppID` alone (Tailscale docs "Set up an app connector", "Edit preset apps").
    let preset = r#"{"tagOwners": {"tag:code": [], "tag:ci-cd": []},
      "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [
        {"name": "github app", "connectors": ["tag:code", "tag:ci-cd"], "presetAppID": "github"}]}}]}"#;
    assert_eq!(clean(preset), Vec::<&str>::new());
}

#[test]
fn app_connector_mistakes() {
    expect_error(
        r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [
          {"name": "x", "connectors": ["tag:nope"], "domains": ["example.com"]}]}}]}"#,
        "aclc::undefined_tag",
        r#"tag not found: "tag:nope""#,
        "tag:nope",
    );
    expect_error(
        r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": ["github"]}}]}"#,
        "aclc::wrong_type",
        r#"nodeAttrs[0].app["tailscale.com/app-connectors"][0] must be an object (name, connectors, domains), got a string"#,
        r#""github""#,
    );
    let policy = |entry: &str| {
        format!(
            r#"{{"tagOwners": {{"tag:c": []}}, "nodeAttrs": [{{"target": ["*"], "app": {{"tailscale.com/app-connectors": [{entry}]}}}}]}}"#
        )
    };
    expect_warning_help(
        &policy(r#"{"name": "x", "connectors": ["tag:c"], "domain": ["example.com"]}"#),
        "aclc::unknown_app_connector_field",
        r#"unknown app connector field "domain": aclc cannot verify it"#,
        "domain",
        r#"did you mean "domains"?"#,
    );
    expect_warning(
        &policy(r#"{"name": "x", "connectors": ["tag:c"], "domains": ["https://example.com"]}"#),
        "aclc::invalid_app_domain",
        r#"app connector domain "https://example.com" is a URL, not a domain: no traffic will match it"#,
        "https://example.com",
    );
    expect_warning(
        &policy(r#"{"name": "x", "connectors": ["tag:c"], "routes": ["10.0.0.0/33"]}"#),
        "aclc::invalid_app_route",
        r#"nodeAttrs[0].app["tailscale.com/app-connectors"][0].routes: "10.0.0.0/33": invalid prefix"#,
        "10.0.0.0/33",
    );
    expect_warning_help(
        &policy(r#"{"name": "x", "connectors": ["tag:c"]}"#),
        "aclc::app_connector_incomplete",
        "this app connector has neither \"domains\" nor \"routes\": it routes nothing",
        r#"{"name": "x", "connectors": ["tag:c"]}"#,
        r#"add "domains": ["example.com", "*.example.com"], or a preset's "presetAppID""#,
    );
    expect_warning(
        &policy(r#"{"connectors": ["tag:c"], "domains": ["example.com"]}"#),
        "aclc::app_connector_incomplete",
        "this app connector has no \"name\"",
        r#"{"connectors": ["tag:c"], "domains": ["example.com"]}"#,
    );
    expect_warning(
        &policy(
            r#"{"name": "x", "domains": ["example.com"], "connectors": ["tag:c"], "routes": []}"#,
        )
        .replace(
            r#""connectors": ["tag:c"], "routes": []"#,
            r#""routes": []"#,
        ),
        "aclc::app_connector_incomplete",
        "this app connector has no \"connectors\": no device serves it",
        r#"{"name": "x", "domains": ["example.com"], "routes": []}"#,
    );
}

#[test]
fn tailscale_node_attributes_are_not_grant_capabilities() {
    // The allow-list of grantable tailscale.com capabilities stays on grants.
    assert_eq!(
        codes(
            r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/app-connectors": [{}]}}]}"#
        ),
        ["aclc::invalid_capability"]
    );
    // A grantable capability added after the captures (real GitOps-applied policies grant it).
    assert!(codes(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/databases": [{}]}}]}"#
    )
    .is_empty());
    // Captured refusals stay errors (`service-proxy`: a user's notes quote the console's
    // refusal, January 2026); an unknown tailscale.com capability is accepted, with a
    // warning (Tailscale adds grantable ones over time).
    for refused in ["funnel", "ingress", "relay-target", "service-proxy"] {
        assert_eq!(
            codes(&format!(
                r#"{{"grants": [{{"src": ["*"], "dst": ["*"], "app": {{"tailscale.com/cap/{refused}": [{{}}]}}}}]}}"#
            )),
            ["aclc::invalid_capability"]
        );
    }
    expect_warning(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/future-thing": [{}]}}]}"#,
        "aclc::unverified_capability",
        r#"aclc does not know the capability "tailscale.com/cap/future-thing": Tailscale refuses the tailscale.com capabilities it does not grant, and aclc cannot verify this one"#,
        "tailscale.com/cap/future-thing",
    );
    // An unknown tailscale.com node attribute is accepted, with a warning.
    expect_warning(
        r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/future-thing": [{}]}}]}"#,
        "aclc::unverified_node_attr",
        r#"aclc does not know the node attribute "tailscale.com/future-thing": it cannot verify it"#,
        "tailscale.com/future-thing",
    );
    // tailscale.io is reserved too ("Capabilities under tailscale.com and tailscale.io
    // domains are reserved for Tailscale's use"): accepted silently before.
    expect_warning(
        r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.io/cap/foo": [{}]}}]}"#,
        "aclc::unverified_capability",
        r#""tailscale.io/cap/foo" is in the tailscale.io domain, which Tailscale reserves for its own use: aclc cannot verify that Tailscale accepts it"#,
        "tailscale.io/cap/foo",
    );
    // Aperture's visible groups (Tailscale's "Visible groups" page): a known node attribute
    // whose groups count as used.
    let visible = r#"{"groups": {"group:engineering": ["alice@example.com"]}, "tagOwners": {"tag:aperture": []},
        "nodeAttrs": [{"target": ["tag:aperture"], "app": {"tailscale.com/visible-groups": [{"groups": ["group:engineering", "group:sales@example.com"]}]}}]}"#;
    assert_eq!(clean(visible), Vec::<&str>::new());
}

// --- Groups synced from the identity provider: Tailscale KB "User & group provisioning"
// (kb/1290): `group:<name>@<domain>` is defined by the IdP.

const SYNCED: &str = r#"{
  "tagOwners": {"tag:web": ["group:eng@example.com"]},
  "autoApprovers": {"routes": {"10.0.0.0/8": ["group:eng@example.com"]}, "exitNode": ["group:eng@example.com"]},
  "acls": [{"action": "accept", "src": ["group:eng@example.com"], "dst": ["tag:web:443", "group:eng@example.com:22"]}],
  "grants": [{"src": ["group:eng@example.com"], "dst": ["autogroup:self"], "ip": ["*"]}],
  "ssh": [{"action": "accept", "src": ["group:eng@example.com"], "dst": ["tag:web"], "users": ["autogroup:nonroot"]}],
  "nodeAttrs": [{"target": ["group:eng@example.com"], "attr": ["funnel"]}],
  "tests": [{"src": "group:eng@example.com", "accept": ["tag:web:443"]}]
}"#;

fn with_synced(groups: Option<Vec<String>>) -> Options {
    Options {
        context: Context {
            tailnet_domains: Some(vec!["example.com".into()]),
            user_logins: Some(vec!["alice@example.com".into()]),
            synced_groups: groups,
            ipv4_nodes: None,
        },
        ..Options::default()
    }
}

#[test]
fn synced_groups_need_no_definition() {
    assert_eq!(clean(SYNCED), Vec::<&str>::new());
    // A plain group still has to be defined.
    assert_eq!(
        codes(r#"{"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["*:*"]}]}"#),
        ["aclc::undefined_group"]
    );
}

#[test]
fn synced_group_without_members_in_the_inventory() {
    let (source, result) = parse_str("p.hujson", SYNCED, &with_synced(Some(vec![])));
    let warnings = result.expect("valid").warnings;
    let synced: Vec<_> = warnings
        .iter()
        .filter(|w| w.code == "aclc::synced_group_without_members")
        .collect();
    // Once per group, at its first use.
    assert_eq!(synced.len(), 1, "{warnings:?}");
    assert_eq!(
        synced[0].message,
        "\"group:eng@example.com\" is synced from the identity provider and no user of the inventory is in it: it resolves to no one"
    );
    assert_eq!(source.slice(synced[0].span), "group:eng@example.com");
    // With a member, no warning.
    let (_, result) = parse_str(
        "p.hujson",
        SYNCED,
        &with_synced(Some(vec!["group:eng@example.com".into()])),
    );
    assert!(result.expect("valid").warnings.is_empty());
}

// --- attrConfig: the API client's `ACLAttrConfig {type, allowSetByNode, broadcastToPeers}`.

#[test]
fn attr_config_is_validated() {
    assert_eq!(
        clean(
            r#"{"tagOwners": {"tag:admin": []},
                "attrConfig": {"custom:tier": {"type": "string", "allowSetByNode": true, "broadcastToPeers": ["tag:admin"]},
                               "custom:score": {"type": "number"}, "custom:ok": {"type": "bool"}}}"#
        ),
        Vec::<&str>::new()
    );
    expect_error(
        r#"{"attrConfig": {"custom:tier": {"type": "text"}}}"#,
        "aclc::invalid_attr_type",
        r#"attrConfig["custom:tier"].type: "text" is not a type: use "string", "bool" or "number""#,
        "text",
    );
    expect_error(
        r#"{"attrConfig": {"custom:tier": {"type": "string", "broadcast": []}}}"#,
        "aclc::unknown_key",
        r#"unknown field "broadcast""#,
        "broadcast",
    );
    expect_error(
        r#"{"attrConfig": {"custom:tier": {"broadcastToPeers": ["tag:nope"]}}}"#,
        "aclc::undefined_tag",
        r#"tag not found: "tag:nope""#,
        "tag:nope",
    );
    expect_error(
        r#"{"attrConfig": {"custom:tier": {"broadcastToPeers": ["autogroup:internet"]}}}"#,
        "aclc::invalid_broadcast_target",
        r#"attrConfig["custom:tier"]: autogroup:internet cannot receive attribute values"#,
        "autogroup:internet",
    );
    expect_warning(
        r#"{"attrConfig": {"tier": {"type": "string"}}}"#,
        "aclc::attr_config_not_custom",
        r#"attrConfig["tier"]: attrConfig configures custom attributes (custom:name); aclc cannot verify this one"#,
        "tier",
    );
}

#[test]
fn api_client_spelling_of_one_cgnat_route() {
    // The API client (and Terraform) write `oneCGNATRoute`.
    assert_eq!(
        clean(r#"{"oneCGNATRoute": "mac-always"}"#),
        Vec::<&str>::new()
    );
    expect_error(
        r#"{"oneCGNATRoute": "sometimes"}"#,
        "aclc::invalid_setting",
        r#"oneCGNATRoute must be "", "mac-always" or "mac-never", got "sometimes""#,
        "sometimes",
    );
}

// --- SSH session recording: KB "Tailscale SSH session recording" (kb/1246); the API
// client's `ACLSSH.Recorder`, `EnforceRecorder`.

#[test]
fn recorders() {
    assert_eq!(
        clean(
            r#"{"tagOwners": {"tag:rec": [], "tag:web": []}, "ssh": [{"action": "accept", "src": ["autogroup:member"],
                "dst": ["tag:web"], "users": ["root"], "recorder": ["tag:rec"], "enforceRecorder": true}]}"#
        ),
        Vec::<&str>::new()
    );
    expect_warning(
        r#"{"tagOwners": {"tag:web": []}, "ssh": [{"action": "accept", "src": ["autogroup:member"],
            "dst": ["tag:web"], "users": ["root"], "enforceRecorder": true}]}"#,
        "aclc::enforce_recorder_without_recorder",
        "enforceRecorder without a recorder does nothing: the sessions this rule admits are not recorded",
        "true",
    );
}

// --- Tailscale Services: KB "Tailscale Services" (kb/1552); the API client's
// `ACLAutoApprovers.Services`.

#[test]
fn services() {
    assert_eq!(
        clean(
            r#"{"tagOwners": {"tag:web": []}, "autoApprovers": {"services": {"svc:web": ["tag:web"]}},
                "grants": [{"src": ["autogroup:member"], "dst": ["svc:web"], "ip": ["tcp:443"]}],
                "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["svc:web:80"]}]}"#
        ),
        Vec::<&str>::new()
    );
    expect_warning(
        r#"{"grants": [{"src": ["*"], "dst": ["svc:Web_Server"], "ip": ["*"]}]}"#,
        "aclc::unverified_service_name",
        r#""svc:Web_Server" is not a DNS label after svc: as Tailscale Service names are; aclc cannot verify it"#,
        "svc:Web_Server",
    );
    assert_eq!(
        codes(r#"{"grants": [{"src": ["svc:web"], "dst": ["*"], "ip": ["*"]}]}"#),
        ["aclc::invalid_src"]
    );
}

// --- ipPool: Tailscale's message for a pool inside a reserved range (corpus
// nodeattrs-error-e4); a pool that only contains one is accepted.

#[test]
fn ip_pool_containing_a_reserved_range_is_a_warning() {
    expect_error(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.115.92.0/24"]}]}"#,
        "aclc::reserved_ip_pool",
        "IPPool(100.115.92.0/24): network within reserved range",
        "100.115.92.0/24",
    );
    // 100.100.0.0/24 too: "The following IP ranges are reserved by Tailscale, and cannot be
    // used in IP pools: 100.100.0.0/24, 100.100.100.0/24, 100.115.92.0/23" (docs, "IP pool";
    // "Reserved IP addresses").
    expect_error(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.100.0.0/24"]}]}"#,
        "aclc::reserved_ip_pool",
        "IPPool(100.100.0.0/24): network within reserved range",
        "100.100.0.0/24",
    );
    expect_warning(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.100.0.0/16"]}]}"#,
        "aclc::ip_pool_contains_reserved",
        "ipPool 100.100.0.0/16 contains the reserved ranges 100.100.0.0/24 and 100.100.100.0/24: aclc cannot verify that Tailscale accepts it",
        "100.100.0.0/16",
    );
    expect_warning(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.64.0.0/10"]}]}"#,
        "aclc::ip_pool_contains_reserved",
        "ipPool 100.64.0.0/10 contains the reserved ranges 100.100.0.0/24, 100.100.100.0/24 and 100.115.92.0/23: aclc cannot verify that Tailscale accepts it",
        "100.64.0.0/10",
    );
    expect_warning(
        r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.115.0.0/16"]}]}"#,
        "aclc::ip_pool_contains_reserved",
        "ipPool 100.115.0.0/16 contains the reserved range 100.115.92.0/23: aclc cannot verify that Tailscale accepts it",
        "100.115.0.0/16",
    );
    // Outside the CGNAT range, or IPv6: accepted silently before (a sweep of real policies).
    for (pool, text) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("fd7a:115c:a1e0:ab12::/64", "fd7a:115c:a1e0:ab12::/64"),
    ] {
        expect_warning(
            &format!(r#"{{"nodeAttrs": [{{"target": ["*"], "ipPool": ["{pool}"]}}]}}"#),
            "aclc::ip_pool_outside_cgnat",
            &format!("ipPool {text} is outside 100.64.0.0/10, the CGNAT range Tailscale assigns node addresses from: aclc cannot verify that Tailscale accepts it"),
            pool,
        );
    }
    assert!(clean(r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.80.0.0/16"]}]}"#).is_empty());
}

// --- Tag names in any case: Tailscale docs "Group devices with tags" (kb/1068): "Tailscale
// ignores tag name case and parses all tags in the tailnet policy file as lowercase".

#[test]
fn tags_are_read_in_lowercase() {
    // Defined as tag:Server, used as tag:server and tag:SERVER: one tag, valid, with a
    // `tag_case` warning on each capitalised spelling.
    let text = r#"{"tagOwners": {"tag:Server": ["autogroup:admin"], "tag:db": []},
      "grants": [{"src": ["tag:server"], "dst": ["tag:DB"], "ip": ["tcp:5432"]}],
      "acls": [{"action": "accept", "src": ["tag:SERVER"], "dst": ["tag:db:5432"]}]}"#;
    assert_eq!(clean(text), vec!["aclc::tag_case"; 3]);
    expect_warning_help(
        text,
        "aclc::tag_case",
        r#"tag "tag:DB" is read as "tag:db""#,
        "tag:DB",
        r#"Tailscale ignores tag name case and reads tags as lowercase; write "tag:db""#,
    );
    expect_warning(
        text,
        "aclc::tag_case",
        r#"tag "tag:Server" is read as "tag:server""#,
        "tag:Server",
    );
    // A tag that is undefined in every case is still an error, named in lowercase.
    expect_error(
        r#"{"acls": [{"action": "accept", "src": ["tag:Nope"], "dst": ["*:*"]}]}"#,
        "aclc::undefined_tag",
        r#"src=tag not found: "tag:nope""#,
        "tag:Nope",
    );
    // Service approver keys and Kubernetes recorder tags are tags too.
    assert_eq!(
        clean(
            r#"{"tagOwners": {"tag:k8s": [], "tag:Rec": []},
              "autoApprovers": {"services": {"tag:K8s": ["tag:k8s"]}},
              "grants": [{"src": ["*"], "dst": ["tag:k8s"], "app": {"tailscale.com/cap/kubernetes": [{"recorder": ["tag:REC"]}]}}]}"#
        ),
        vec!["aclc::tag_case"; 2]
    );
}

#[test]
fn derp_map_shapes() {
    // A value of the wrong type where the control server decodes a typed field.
    expect_error(
        r#"{"derpMap": {"Regions": {"900": {"RegionID": "900"}}}}"#,
        "aclc::wrong_type",
        r#"derpMap.Regions["900"].RegionID must be an integer, got a string"#,
        r#""900""#,
    );
    expect_error(
        r#"{"derpMap": {"Regions": {"900": {"Nodes": [{"DERPPort": 4.5}]}}}}"#,
        "aclc::wrong_type",
        r#"derpMap.Regions["900"].Nodes[0].DERPPort must be an integer, got 4.5"#,
        "4.5",
    );
    expect_error_help(
        r#"{"derpMap": {"Regions": {"myderp": {}}}}"#,
        "aclc::wrong_type",
        r#"derpMap.Regions: key "myderp" is not a region ID (an integer)"#,
        "myderp",
        Some(r#"DERP regions are keyed by their numeric region ID, such as "900""#),
    );
    // A field aclc does not know: the DERP map gains fields, so only a warning.
    expect_warning_help(
        r#"{"derpMap": {"Regions": {"900": {"RegionID": 900, "Nodez": []}}}}"#,
        "aclc::unknown_derp_field",
        r#"unknown field "Nodez" in derpMap.Regions["900"]; aclc could not verify that Tailscale accepts it"#,
        "Nodez",
        r#"did you mean "Nodes"?"#,
    );
}
