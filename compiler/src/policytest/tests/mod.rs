//! Unit tests of the test runner: every way an assertion can pass or fail, with the exact line
//! each one prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aclc_policy::Source;

use super::*;
use crate::inventory::Inventory;

/// alice (owner) has a laptop, bob a laptop, dave nothing; prod-1 and web-1 are tagged;
/// `tag:empty` is defined but on no device.
const INVENTORY: &str = r#"{
    "users": [
        {"id": 1, "name": "alice", "email": "alice@example.com", "roles": ["owner", "admin"]},
        {"id": 2, "name": "bob", "email": "bob@example.com", "roles": []},
        {"id": 3, "name": "dave", "email": "dave@example.com", "roles": []}
    ],
    "nodes": [
        {"name": "alice-laptop", "user": "alice@example.com", "tags": [],
         "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1", "routable_ips": [], "approved_routes": []},
        {"name": "bob-laptop", "user": "bob@example.com", "tags": [],
         "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2", "routable_ips": [], "approved_routes": []},
        {"name": "prod-1", "user": null, "tags": ["tag:prod"],
         "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3", "routable_ips": [], "approved_routes": []},
        {"name": "web-1", "user": null, "tags": ["tag:web"],
         "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4", "routable_ips": [], "approved_routes": []}
    ],
    "registration_order": ["alice-laptop", "bob-laptop", "prod-1", "web-1"],
    "tailnet": {"name": "example.com"}
}"#;

/// The preamble every test policy shares (lines 1-4), so rule line numbers are stable.
const HEAD: &str = r#"{"groups": {"group:eng": ["alice@example.com", "bob@example.com"], "group:none": []},
"tagOwners": {"tag:prod": ["alice@example.com"], "tag:web": ["alice@example.com"], "tag:empty": ["alice@example.com"]},
"hosts": {"db": "100.64.0.3", "lan": "10.0.0.0/8", "outside": "192.0.2.7"},
"#;

fn run(body: &str) -> (Source, TestReport) {
    run_with(INVENTORY, body)
}

fn run_with(inventory: &str, body: &str) -> (Source, TestReport) {
    let inventory = Inventory::from_json(inventory).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", format!("{HEAD}{body}}}"));
    let checked = match aclc_policy::parse(&source, &options) {
        Ok(checked) => checked,
        Err(found) => panic!("policy refused: {:?}", found.0),
    };
    let compiled = crate::compile(&checked.policy, &inventory);
    let report = run_tests(&checked.policy, &compiled);
    (source, report)
}

/// Every assertion's line, `PASS`/`FAIL` first.
fn lines(body: &str) -> Vec<String> {
    lines_with(INVENTORY, body)
}

fn lines_with(inventory: &str, body: &str) -> Vec<String> {
    let (source, report) = run_with(inventory, body);
    report
        .results
        .iter()
        .map(|r| {
            let mark = if r.passed { "PASS" } else { "FAIL" };
            match &r.warning {
                None => format!("{mark} {}", r.message(&source)),
                Some(warning) => format!("{mark} {} [warning: {warning}]", r.message(&source)),
            }
        })
        .collect()
}

const ACLS: &str = r#""acls": [
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443"]},
  {"action": "accept", "src": ["alice@example.com"], "dst": ["tag:prod:22", "outside:25"], "proto": "tcp"},
  {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}
],
"#;

#[test]
fn network_assertions_that_hold() {
    let got = lines(&format!(
        r#"{ACLS}"tests": [
  {{"src": "bob@example.com", "accept": ["tag:web:443", "bob@example.com:8080"], "deny": ["tag:prod:22", "tag:web:22"]}},
  {{"src": "alice@example.com", "proto": "tcp", "accept": ["db:22", "outside:25", "[fd7a:115c:a1e0::3]:22"]}},
  {{"src": "100.64.0.2", "proto": "udp", "accept": ["tag:web:80"], "deny": ["alice@example.com:80"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "PASS bob@example.com -> tag:web:443 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS bob@example.com -> bob@example.com:8080 (tcp/udp): allowed (allowed by policy.hujson:7)",
            "PASS bob@example.com -> tag:prod:22 (tcp/udp): denied",
            "PASS bob@example.com -> tag:web:22 (tcp/udp): denied",
            "PASS alice@example.com -> db:22 (tcp): allowed (allowed by policy.hujson:6)",
            "PASS alice@example.com -> outside:25 (tcp): allowed (allowed by policy.hujson:6)",
            "PASS alice@example.com -> [fd7a:115c:a1e0::3]:22 (tcp): allowed (allowed by policy.hujson:6)",
            "PASS 100.64.0.2 -> tag:web:80 (udp): allowed (allowed by policy.hujson:5)",
            "PASS 100.64.0.2 -> alice@example.com:80 (udp): denied",
        ]
    );
}

#[test]
fn network_mismatches_name_the_allowing_rules() {
    let got = lines(&format!(
        r#"{ACLS}"tests": [
  {{"src": "group:eng", "proto": "tcp", "accept": ["tag:prod:22"], "deny": ["tag:web:80"]}},
  {{"src": "alice@example.com", "proto": "udp", "accept": ["db:22"]}},
  {{"src": "alice@example.com", "deny": ["alice@example.com:22"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "FAIL group:eng -> tag:prod:22 (tcp): expected allowed, got denied",
            "FAIL group:eng -> tag:web:80 (tcp): expected denied, got allowed (allowed by policy.hujson:5)",
            "FAIL alice@example.com -> db:22 (udp): expected allowed, got denied",
            "FAIL alice@example.com -> alice@example.com:22 (tcp/udp): expected denied, got allowed (allowed by policy.hujson:7)",
        ]
    );
}

#[test]
fn every_source_address_must_be_allowed_and_all_rules_are_named() {
    // bob reaches prod only through the second rule; alice through the first.
    let got = lines(
        r#""grants": [
  {"src": ["alice@example.com"], "dst": ["tag:prod"], "ip": ["tcp:22"]},
  {"src": ["bob@example.com"], "dst": ["db"], "ip": ["22"]}
],
"tests": [{"src": "group:eng", "proto": "6", "deny": ["tag:prod:22"], "accept": ["tag:prod:23"]}]"#,
    );
    assert_eq!(
        got,
        [
            "FAIL group:eng -> tag:prod:23 (tcp): expected allowed, got denied",
            "FAIL group:eng -> tag:prod:22 (tcp): expected denied, got allowed (allowed by policy.hujson:5, policy.hujson:6)",
        ]
    );
}

/// A `deny` from a group holds when one member's devices do not get through, even though
/// another member's do, and over one family only when the other family is refused: both pass
/// (every source address must be let through) with a warning naming the address that is.
#[test]
fn a_deny_that_holds_for_part_of_the_source_warns() {
    let got = lines(
        r#""acls": [
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:prod:22"]},
  {"action": "accept", "src": ["100.64.0.1"], "dst": ["tag:prod:23"]}
],
"tests": [{"src": "group:eng", "deny": ["tag:prod:22", "tag:web:22"]},
          {"src": "alice@example.com", "deny": ["tag:prod:23"]},
          {"src": "bob@example.com", "deny": ["tag:prod:23"]}]"#,
    );
    let partly = |src: &str, addr: &str, device: &str| {
        format!(
            "[warning: the deny holds only because some addresses of src \"{src}\" do not get \
             through: {addr} of {device} does; aclc judges a source allowed when every address \
             of its devices is (as headscale does), and cannot verify that Tailscale judges it so]"
        )
    };
    assert_eq!(
        got,
        [
            format!(
                "PASS group:eng -> tag:prod:22 (tcp/udp): denied {}",
                partly("group:eng", "100.64.0.2", "bob-laptop")
            ),
            "PASS group:eng -> tag:web:22 (tcp/udp): denied".to_string(),
            format!(
                "PASS alice@example.com -> tag:prod:23 (tcp/udp): denied {}",
                partly("alice@example.com", "100.64.0.1", "alice-laptop")
            ),
            "PASS bob@example.com -> tag:prod:23 (tcp/udp): denied".to_string(),
        ]
    );
}

#[test]
fn default_policy_allows_everything() {
    let got = lines(r#""tests": [{"src": "tag:web", "deny": ["tag:prod:5432"]}]"#);
    assert_eq!(
        got,
        ["FAIL tag:web -> tag:prod:5432 (tcp/udp): expected denied, got allowed (allowed by the default policy: no acls or grants)"]
    );
}

#[test]
fn app_rules_do_not_count() {
    let got = lines(
        r#""grants": [
  {"src": ["alice@example.com"], "dst": ["tag:prod"], "app": {"example.com/cap/x": [{}]}}
],
"tests": [{"src": "alice@example.com", "deny": ["tag:prod:443"]}]"#,
    );
    assert_eq!(
        got,
        ["PASS alice@example.com -> tag:prod:443 (tcp/udp): denied"]
    );
}

/// A grant with `via` lets its sources reach its destinations like one without: `via` only
/// picks the routers that carry the traffic, whether or not the inventory has one. Evidence:
/// keiretsu-labs/kubernetes-manifests applies `tailscale/policy.hujson` through
/// gitops-acl-action (tests run on every apply); its tests `accept` subnet addresses
/// (`192.168.50.1:443`) that only `via` grants allow and `deny` those the `via` grants leave
/// out for that source.
#[test]
fn via_rules_count_as_their_ip_rule() {
    let got = lines(
        r#""grants": [
  {"src": ["alice@example.com"], "dst": ["lan"], "ip": ["tcp:443"], "via": ["tag:web"]},
  {"src": ["bob@example.com"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:web"]}
],
"tests": [
  {"src": "alice@example.com", "accept": ["10.1.2.3:443"], "deny": ["10.1.2.3:22", "1.1.1.1:443"]},
  {"src": "bob@example.com", "accept": ["1.1.1.1:443"], "deny": ["10.1.2.3:443"]}
]"#,
    );
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> 10.1.2.3:443 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> 10.1.2.3:22 (tcp/udp): denied",
            "PASS alice@example.com -> 1.1.1.1:443 (tcp/udp): denied",
            "PASS bob@example.com -> 1.1.1.1:443 (tcp/udp): allowed (allowed by policy.hujson:6)",
            "PASS bob@example.com -> 10.1.2.3:443 (tcp/udp): denied",
        ]
    );
}

/// A test aimed at a public address is judged by the rules to `autogroup:internet`, the set
/// exit nodes carry traffic for. Evidence: Tailscale's policy syntax reference (kb/1337,
/// "tests": `accept`/`deny` name `host:port` destinations, an IP among them; "autogroup:
/// internet": access to the internet through exit nodes) and the exit node guide (kb/1103:
/// users reach the internet through an exit node when the policy grants them
/// `autogroup:internet`). Tailscale accepts a policy whose test accepts `1.1.1.1:53` from a
/// source granted `autogroup:internet`. The internet set leaves out private, CGNAT and
/// link-local blocks, so `10.1.2.3` and tailnet devices are not covered.
#[test]
fn internet_rules_cover_public_addresses() {
    let got = lines(
        r#""grants": [
  {"src": ["alice@example.com"], "dst": ["autogroup:internet"], "ip": ["*"]}
],
"acls": [
  {"action": "accept", "src": ["bob@example.com"], "dst": ["autogroup:internet:53"], "proto": "udp"}
],
"tests": [
  {"src": "alice@example.com", "accept": ["1.1.1.1:53", "[2606:4700:4700::1111]:443", "outside:25"], "deny": ["10.1.2.3:53", "tag:prod:22", "100.100.100.100:53"]},
  {"src": "bob@example.com", "proto": "udp", "accept": ["8.8.8.8:53"], "deny": ["8.8.8.8:443"]},
  {"src": "tag:web", "deny": ["1.1.1.1:53"]},
  {"src": "bob@example.com", "proto": "tcp", "accept": ["8.8.8.8:53"]}
]"#,
    );
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> 1.1.1.1:53 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> [2606:4700:4700::1111]:443 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> outside:25 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> 10.1.2.3:53 (tcp/udp): denied",
            "PASS alice@example.com -> tag:prod:22 (tcp/udp): denied",
            "PASS alice@example.com -> 100.100.100.100:53 (tcp/udp): denied",
            "PASS bob@example.com -> 8.8.8.8:53 (udp): allowed (allowed by policy.hujson:8)",
            "PASS bob@example.com -> 8.8.8.8:443 (udp): denied",
            "PASS tag:web -> 1.1.1.1:53 (tcp/udp): denied",
            "FAIL bob@example.com -> 8.8.8.8:53 (tcp): expected allowed, got denied",
        ]
    );
}

/// A destination whose devices disagree (one reached, one not): an `accept` holds (one
/// reached device is enough, as headscale's evaluator has it), and a `deny` that holds on the
/// reading that every device must be reached passes with a warning instead of refusing the
/// policy (abl030/nixosconfig, applied by Tailscale with its tests, denies such a tag).
#[test]
fn a_destination_whose_devices_disagree_passes_a_deny_with_a_warning() {
    let inventory = INVENTORY.replace(
        r#""tags": ["tag:web"]"#,
        r#""tags": ["tag:web", "tag:prod"]"#,
    );
    assert_ne!(inventory, INVENTORY);
    let got = lines_with(
        &inventory,
        r#""acls": [
  {"action": "accept", "src": ["alice@example.com"], "dst": ["db:22"]},
  {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:prod:22"]}
],
"tests": [
  {"src": "alice@example.com", "accept": ["db:22", "tag:prod:22"], "deny": ["tag:prod:22"]},
  {"src": "bob@example.com", "accept": ["tag:prod:22"], "deny": ["tag:prod:22"]}
]"#,
    );
    let warned = "[warning: dst \"tag:prod:22\" stands for 2 devices and only some of them are \
                  reached: the deny holds if Tailscale requires every device to be reached (as a \
                  policy Tailscale applies with its tests suggests), not if one is enough; aclc \
                  cannot verify which Tailscale does]";
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> db:22 (tcp/udp): allowed (allowed by policy.hujson:5)"
                .to_string(),
            "PASS alice@example.com -> tag:prod:22 (tcp/udp): allowed (allowed by policy.hujson:5)"
                .to_string(),
            format!("PASS alice@example.com -> tag:prod:22 (tcp/udp): denied {warned}"),
            "PASS bob@example.com -> tag:prod:22 (tcp/udp): allowed (allowed by policy.hujson:6)"
                .to_string(),
            "FAIL bob@example.com -> tag:prod:22 (tcp/udp): expected denied, got allowed (allowed by policy.hujson:6)"
                .to_string(),
        ]
    );
}

/// A public address inside a subnet route a router serves is sent to that router, which
/// never receives the rules to `autogroup:internet` (exit nodes do), so such a rule does not
/// cover it; a router that is also an exit node does carry them. Evidence:
/// regulad/tailscale-acls, applied through gitops-acl-action with its tests, grants `*` the
/// internet and asserts `deny` of `[2603:c020:4016:ae50:ffff:ffff:ffff:ffff]:22`, inside its
/// approved subnet route `2603:c020:4016:ae50::/64`.
#[test]
fn internet_rules_do_not_cover_subnet_routes() {
    let inventory = INVENTORY
        .replace(
            r#""tags": ["tag:web"],
         "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4", "routable_ips": [], "approved_routes": []"#,
            r#""tags": ["tag:web"],
         "ipv4": "100.64.0.4", "ipv6": "fd7a:115c:a1e0::4", "routable_ips": ["198.51.100.0/24", "2001:db8:5::/64"], "approved_routes": ["198.51.100.0/24", "2001:db8:5::/64"]"#,
        )
        .replace(
            r#""tags": ["tag:prod"],
         "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3", "routable_ips": [], "approved_routes": []"#,
            r#""tags": ["tag:prod"],
         "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3", "routable_ips": ["203.0.113.0/24", "0.0.0.0/0", "::/0"], "approved_routes": ["203.0.113.0/24", "0.0.0.0/0", "::/0"]"#,
        );
    assert_ne!(inventory, INVENTORY);
    let got = lines_with(
        &inventory,
        r#""grants": [
  {"src": ["alice@example.com"], "dst": ["autogroup:internet"], "ip": ["*"]}
],
"tests": [
  {"src": "alice@example.com", "accept": ["1.1.1.1:53", "203.0.113.9:22"], "deny": ["198.51.100.7:22", "[2001:db8:5::7]:22"]}
]"#,
    );
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> 1.1.1.1:53 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> 203.0.113.9:22 (tcp/udp): allowed (allowed by policy.hujson:5)",
            "PASS alice@example.com -> 198.51.100.7:22 (tcp/udp): denied",
            "PASS alice@example.com -> [2001:db8:5::7]:22 (tcp/udp): denied",
        ]
    );
}

/// `*` as a destination is every address (Tailscale sends it as `IP: "*"`, and the capture
/// `routes-ea1-exitnode-field-basic` shows a lone `*:*` ACL offering exit nodes to every
/// device), so it covers public addresses too; the default policy does as well.
#[test]
fn wildcard_destination_covers_public_addresses() {
    let got = lines(
        r#""acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*:443"]}],
"tests": [{"src": "alice@example.com", "accept": ["1.1.1.1:443"], "deny": ["1.1.1.1:80"]}]"#,
    );
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> 1.1.1.1:443 (tcp/udp): allowed (allowed by policy.hujson:4)",
            "PASS alice@example.com -> 1.1.1.1:80 (tcp/udp): denied",
        ]
    );
}

/// A source with no devices reaches nothing, so a `deny` from it holds; Tailscale accepts
/// such a policy (kb/1337, "tests": an assertion is about the source's devices). aclc passes
/// it with a warning, since the inventory may simply be missing the user's devices. An
/// `accept` from it fails, as on Tailscale; unknown groups and tags are policy mistakes and
/// fail too.
#[test]
fn deny_from_a_source_without_devices_holds_with_a_warning() {
    let got = lines(&format!(
        r#"{ACLS}"tests": [
  {{"src": "dave@example.com", "deny": ["tag:prod:22", "1.1.1.1:53"]}},
  {{"src": "newcomer@example.com", "deny": ["tag:web:80"]}},
  {{"src": "group:none", "proto": "tcp", "deny": ["tag:web:80"]}},
  {{"src": "tag:empty", "deny": ["tag:web:80"]}},
  {{"src": "dave@example.com", "deny": ["tag:web:*", "tag:phantom:80"]}},
  {{"src": "dave@example.com", "accept": ["tag:web:80"], "deny": ["tag:prod:22"]}},
  {{"src": "group:phantom", "deny": ["tag:web:80"]}},
  {{"src": "tag:phantom", "deny": ["tag:web:80"]}},
  {{"src": "dave@example.com", "proto": "bogus", "deny": ["tag:web:80"]}}
]"#
    ));
    let vacuous = |src: &str| {
        format!("[warning: src \"{src}\" has no devices in the inventory, so this deny holds vacuously]")
    };
    assert_eq!(
        got,
        [
            format!("PASS dave@example.com -> tag:prod:22 (tcp/udp): denied {}", vacuous("dave@example.com")),
            format!("PASS dave@example.com -> 1.1.1.1:53 (tcp/udp): denied {}", vacuous("dave@example.com")),
            format!("PASS newcomer@example.com -> tag:web:80 (tcp/udp): denied {}", vacuous("newcomer@example.com")),
            format!("PASS group:none -> tag:web:80 (tcp): denied {}", vacuous("group:none")),
            format!("PASS tag:empty -> tag:web:80 (tcp/udp): denied {}", vacuous("tag:empty")),
            "FAIL dave@example.com -> tag:web:* (tcp/udp): dst \"tag:web:*\": a test names one port (a number from 0 to 65535), not \"*\"".to_string(),
            "FAIL dave@example.com -> tag:phantom:80 (tcp/udp): tag \"tag:phantom\" is not defined in tagOwners".to_string(),
            "FAIL tests[5]: src \"dave@example.com\" has no devices".to_string(),
            "FAIL tests[6]: group \"group:phantom\" is not defined".to_string(),
            "FAIL tests[7]: tag \"tag:phantom\" is not defined in tagOwners".to_string(),
            "FAIL tests[8]: proto \"bogus\": proto name \"bogus\" not known; use protocol number 0-255".to_string(),
        ]
    );
    let (_, report) = run(&format!(
        r#"{ACLS}"tests": [{{"src": "dave@example.com", "deny": ["tag:prod:22"]}}]"#
    ));
    assert!(report.passed());
    assert_eq!(report.warnings().count(), 1);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["results"][0]["warning"],
        "src \"dave@example.com\" has no devices in the inventory, so this deny holds vacuously"
    );
}

#[test]
fn malformed_network_tests() {
    let got = lines(&format!(
        r#"{ACLS}"tests": [
  {{"accept": ["tag:web:80"]}},
  {{"src": " ", "accept": ["tag:web:80"]}},
  {{"src": "bob@example.com"}},
  {{"src": "ghost@example.com", "accept": ["tag:web:80"]}},
  {{"src": "group:phantom", "accept": ["tag:web:80"]}},
  {{"src": "tag:phantom", "accept": ["tag:web:80"]}},
  {{"src": "phantom", "accept": ["tag:web:80"]}},
  {{"src": "10.0.0.0/8", "accept": ["tag:web:80"]}},
  {{"src": "*", "accept": ["tag:web:80"]}},
  {{"src": "dave@example.com", "accept": ["tag:web:80"]}},
  {{"src": "group:none", "accept": ["tag:web:80"]}},
  {{"src": "lan", "accept": ["tag:web:80"]}},
  {{"src": "autogroup:internet", "accept": ["tag:web:80"]}},
  {{"src": "bob@example.com", "proto": "bogus", "accept": ["tag:web:80"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "FAIL tests[0]: the test has no src",
            "FAIL tests[1]: src is empty",
            "FAIL tests[2]: the test asserts nothing",
            "FAIL tests[3]: src \"ghost@example.com\" is not a user of the tailnet",
            "FAIL tests[4]: group \"group:phantom\" is not defined",
            "FAIL tests[5]: tag \"tag:phantom\" is not defined in tagOwners",
            "FAIL tests[6]: src \"phantom\" is not a user, group, tag or host alias",
            "FAIL tests[7]: src \"10.0.0.0/8\" is a range of addresses: a test needs a single address",
            "FAIL tests[8]: src \"*\" is not a device: name a user, group, tag, host or address",
            "FAIL tests[9]: src \"dave@example.com\" has no devices",
            "FAIL tests[10]: src \"group:none\" has no devices",
            "FAIL tests[11]: host \"lan\" stands for the prefix 10.0.0.0/8: a test needs a single address",
            "FAIL tests[12]: src \"autogroup:internet\" cannot be tested: tests cover the tailnet, not exit-node traffic",
            "FAIL tests[13]: proto \"bogus\": proto name \"bogus\" not known; use protocol number 0-255",
        ]
    );
}

#[test]
fn malformed_network_destinations() {
    let got = lines(&format!(
        r#"{ACLS}"tests": [{{"src": "bob@example.com", "accept": [
  "tag:web", "web-1", "tag:web:*", "tag:web:80,443", "tag:web:80-90", "tag:web:-1", "tag:web:99999",
  "tag:web:0", "tag:web:http", "10.0.0.0/8:22", "100.64.0.4/32:80", "lan:22", "*:80",
  "autogroup:internet:443", "autogroup:self:22", "autogroup:nonroot:22", "tag:phantom:80",
  "group:phantom:80", "ghost@example.com:80", "phantom:80", "tag:empty:80", "dave@example.com:80"
]}}]"#
    ));
    let bob = "FAIL bob@example.com -> ";
    let expected = [
        "tag:web (tcp/udp): dst \"tag:web\" has no port: write host:port",
        "web-1 (tcp/udp): dst \"web-1\" has no port: write host:port",
        "tag:web:* (tcp/udp): dst \"tag:web:*\": a test names one port (a number from 0 to 65535), not \"*\"",
        "tag:web:80,443 (tcp/udp): dst \"tag:web:80,443\": a test names one port (a number from 0 to 65535), not \"80,443\"",
        "tag:web:80-90 (tcp/udp): dst \"tag:web:80-90\": a test names one port (a number from 0 to 65535), not \"80-90\"",
        "tag:web:-1 (tcp/udp): dst \"tag:web:-1\": a test names one port (a number from 0 to 65535), not \"-1\"",
        "tag:web:99999 (tcp/udp): dst \"tag:web:99999\": a test names one port (a number from 0 to 65535), not \"99999\"",
        "tag:web:0 (tcp/udp): expected allowed, got denied",
        "tag:web:http (tcp/udp): dst \"tag:web:http\": a test names one port (a number from 0 to 65535), not \"http\"",
        "10.0.0.0/8:22 (tcp/udp): dst \"10.0.0.0/8\" is a range of addresses: a test needs a single address",
        "100.64.0.4/32:80 (tcp/udp): dst \"100.64.0.4/32\" is a range of addresses: a test needs a single address",
        "lan:22 (tcp/udp): host \"lan\" stands for the prefix 10.0.0.0/8: a test needs a single address",
        "*:80 (tcp/udp): dst \"*\" is not a device: name a user, group, tag, host or address",
        "autogroup:internet:443 (tcp/udp): dst \"autogroup:internet\" cannot be tested: tests cover the tailnet, not exit-node traffic",
        "autogroup:self:22 (tcp/udp): dst \"autogroup:self\" is not allowed in network tests",
        "autogroup:nonroot:22 (tcp/udp): dst \"autogroup:nonroot\" is not a set of devices",
        "tag:phantom:80 (tcp/udp): tag \"tag:phantom\" is not defined in tagOwners",
        "group:phantom:80 (tcp/udp): group \"group:phantom\" is not defined",
        "ghost@example.com:80 (tcp/udp): dst \"ghost@example.com\" is not a user of the tailnet",
        "phantom:80 (tcp/udp): dst \"phantom\" is not a user, group, tag or host alias",
        "tag:empty:80 (tcp/udp): dst \"tag:empty\" has no devices",
        "dave@example.com:80 (tcp/udp): dst \"dave@example.com\" has no devices",
    ];
    let expected: Vec<String> = expected.iter().map(|e| format!("{bob}{e}")).collect();
    assert_eq!(got, expected);
}

const SSH: &str = r#""ssh": [
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["ubuntu", "autogroup:nonroot"]},
  {"action": "check", "src": ["alice@example.com"], "dst": ["tag:prod"], "users": ["root"]},
  {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["localpart:*@example.com"]}
],
"#;

/// A destination of several devices is judged on every kind of SSH rules its devices have
/// (devices with alike rules are judged once): a device without the rule the others have
/// fails an `accept`; `autogroup:self` rules differ per user in their principals alone, so
/// each user's devices count.
#[test]
fn ssh_destinations_of_several_kinds_are_each_judged() {
    let got = lines(
        r#""ssh": [
  {"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["ubuntu"]},
  {"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"]}
],
"sshTests": [
  {"src": "bob@example.com", "dst": ["autogroup:tagged"], "accept": ["ubuntu"]},
  {"src": "bob@example.com", "dst": ["autogroup:member"], "deny": ["root", "alice"]},
  {"src": "group:eng", "dst": ["autogroup:member"], "accept": ["root"], "deny": ["carol"]}
]"#,
    );
    assert_eq!(
        got,
        [
            "FAIL bob@example.com -> autogroup:tagged as ubuntu: expected allowed, got denied",
            "FAIL bob@example.com -> autogroup:member as root: expected denied, got allowed by an accept rule (policy.hujson:6)",
            "PASS bob@example.com -> autogroup:member as alice: denied",
            "FAIL group:eng -> autogroup:member as root: expected allowed, got denied",
            "PASS group:eng -> autogroup:member as carol: denied",
        ]
    );
}

#[test]
fn ssh_assertions_that_hold() {
    let got = lines(&format!(
        r#"{SSH}"sshTests": [
  {{"src": "alice@example.com", "dst": ["tag:prod", "db"], "accept": ["ubuntu", "alice2"], "check": ["root"]}},
  {{"src": "bob@example.com", "dst": ["tag:prod"], "deny": ["root"]}},
  {{"src": "bob@example.com", "dst": ["autogroup:self", "100.64.0.2"], "accept": ["bob"], "deny": ["alice", "root"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> tag:prod as ubuntu: allowed by an accept rule (policy.hujson:5)",
            "PASS alice@example.com -> tag:prod as alice2: allowed by an accept rule (policy.hujson:5)",
            "PASS alice@example.com -> tag:prod as root: allowed by a check rule (policy.hujson:6)",
            "PASS alice@example.com -> db as ubuntu: allowed by an accept rule (policy.hujson:5)",
            "PASS alice@example.com -> db as alice2: allowed by an accept rule (policy.hujson:5)",
            "PASS alice@example.com -> db as root: allowed by a check rule (policy.hujson:6)",
            "PASS bob@example.com -> tag:prod as root: denied",
            "PASS bob@example.com -> autogroup:self as bob: allowed by an accept rule (policy.hujson:7)",
            "PASS bob@example.com -> autogroup:self as alice: denied",
            "PASS bob@example.com -> autogroup:self as root: denied",
            "PASS bob@example.com -> 100.64.0.2 as bob: allowed by an accept rule (policy.hujson:7)",
            "PASS bob@example.com -> 100.64.0.2 as alice: denied",
            "PASS bob@example.com -> 100.64.0.2 as root: denied",
        ]
    );
}

/// `autogroup:self` pairs each source with its own user's devices: a group of several users
/// as the source is judged member by member. Every member was judged against every other
/// member's devices, so both the `accept` and the `deny` below failed (found by a
/// differential of SSH answers against the compiled rules).
#[test]
fn ssh_self_pairs_each_source_with_its_own_devices() {
    let got = lines(
        r#""ssh": [
  {"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"]}
],
"sshTests": [
  {"src": "group:eng", "dst": ["autogroup:self"], "accept": ["root"]},
  {"src": "group:eng", "dst": ["autogroup:self"], "deny": ["root"]}
]"#,
    );
    assert_eq!(
        got,
        [
            "PASS group:eng -> autogroup:self as root: allowed by an accept rule (policy.hujson:5)",
            "FAIL group:eng -> autogroup:self as root: expected denied, got allowed by an accept rule (policy.hujson:5)",
        ]
    );
}

#[test]
fn ssh_mismatches() {
    let got = lines(&format!(
        r#"{SSH}"sshTests": [
  {{"src": "bob@example.com", "dst": ["tag:prod"], "accept": ["root"], "check": ["ubuntu", "root"], "deny": ["ubuntu"]}},
  {{"src": "alice@example.com", "dst": ["tag:prod"], "deny": ["root"]}},
  {{"src": "tag:web", "dst": ["tag:prod"], "accept": ["ubuntu"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "FAIL bob@example.com -> tag:prod as root: expected allowed, got denied",
            "FAIL bob@example.com -> tag:prod as ubuntu: expected allowed by a check rule, got allowed by an accept rule (policy.hujson:5)",
            "FAIL bob@example.com -> tag:prod as root: expected allowed by a check rule, got denied",
            "FAIL bob@example.com -> tag:prod as ubuntu: expected denied, got allowed by an accept rule (policy.hujson:5)",
            "FAIL alice@example.com -> tag:prod as root: expected denied, got allowed by a check rule (policy.hujson:6)",
            "FAIL tag:web -> tag:prod as ubuntu: expected allowed, got denied",
        ]
    );
}

/// `ssh root+password@host` asks the node for root, with a password prompt: tailssh strips the
/// `+password` suffix before it reads the policy (`TestSSHAuthFlow/force-password-auth`). A
/// `deny` of `root+password` where root is allowed does not hold.
#[test]
fn a_password_suffix_is_the_login_without_it() {
    let got = lines(&format!(
        r#"{SSH}"sshTests": [
  {{"src": "alice@example.com", "dst": ["tag:prod"], "check": ["root+password"], "accept": ["ubuntu+password"]}},
  {{"src": "alice@example.com", "dst": ["tag:prod"], "deny": ["root+password"]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "PASS alice@example.com -> tag:prod as ubuntu+password: allowed by an accept rule (policy.hujson:5)",
            "PASS alice@example.com -> tag:prod as root+password: allowed by a check rule (policy.hujson:6)",
            "FAIL alice@example.com -> tag:prod as root+password: expected denied, got allowed by a check rule (policy.hujson:6)",
        ]
    );
}

#[test]
fn malformed_ssh_tests() {
    let got = lines(&format!(
        r#"{SSH}"sshTests": [
  {{"dst": ["tag:prod"], "accept": ["root"]}},
  {{"src": "", "dst": ["tag:prod"], "accept": ["root"]}},
  {{"src": "bob@example.com", "accept": ["root"]}},
  {{"src": "bob@example.com", "dst": ["tag:prod"]}},
  {{"src": "ghost@example.com", "dst": ["tag:prod"], "accept": ["root"]}},
  {{"src": "dave@example.com", "dst": ["tag:prod"], "accept": ["root"]}},
  {{"src": "bob@example.com", "dst": ["tag:empty", "fd7a:115c:a1e0::3", "192.0.2.9", "phantom"], "accept": ["ubuntu"]}},
  {{"src": "tag:web", "dst": ["autogroup:self"], "deny": ["root"]}},
  {{"src": "bob@example.com", "dst": ["tag:prod"], "accept": [""]}}
]"#
    ));
    assert_eq!(
        got,
        [
            "FAIL sshTests[0]: the test has no src",
            "FAIL sshTests[1]: src is empty",
            "PASS sshTests[2]: the test has no dst [warning: the test has no dst, so it asserts nothing; aclc cannot verify that Tailscale accepts it]",
            "FAIL sshTests[3]: the test asserts nothing",
            "FAIL sshTests[4]: src \"ghost@example.com\" is not a user of the tailnet",
            "FAIL sshTests[5]: src \"dave@example.com\" has no devices",
            "FAIL bob@example.com -> tag:empty as ubuntu: dst \"tag:empty\" has no devices",
            "FAIL bob@example.com -> fd7a:115c:a1e0::3 as ubuntu: dst \"fd7a:115c:a1e0::3\": SSH tests name devices by IPv4 address, not IPv6",
            "FAIL bob@example.com -> 192.0.2.9 as ubuntu: dst \"192.0.2.9\" has no devices",
            "FAIL bob@example.com -> phantom as ubuntu: dst \"phantom\" is not a user, group, tag or host alias",
            "FAIL tag:web -> autogroup:self as root: dst \"autogroup:self\" has no devices",
            "FAIL bob@example.com -> tag:prod as \"\": user \"\" is not valid",
        ]
    );
}

#[test]
fn refusal_message_and_report_shape() {
    let (source, report) = run(&format!(
        r#"{ACLS}"tests": [
  {{"src": "bob@example.com", "accept": ["tag:web:443", "tag:prod:22"]}}
]"#
    ));
    assert!(!report.passed());
    assert!(!report.is_empty());
    assert_eq!(report.failures().count(), 1);
    assert_eq!(
        report.refusal_message(&source),
        "test(s) failed\nbob@example.com -> tag:prod:22 (tcp/udp): expected allowed, got denied"
    );
    let failure = report.failures().next().unwrap();
    assert_eq!(source.slice(failure.span), "tag:prod:22");
    assert_eq!(failure.kind, TestKind::Network);
    assert_eq!(failure.expected, Some(Expectation::Allowed));
    assert_eq!(failure.outcome, Ok(Verdict::Denied));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["results"][1]["outcome"]["Ok"]["verdict"], "denied");
    assert_eq!(json["results"][0]["outcome"]["Ok"]["verdict"], "allowed");

    let (_, empty) = run(r#""acls": []"#);
    assert!(empty.passed() && empty.is_empty());
}

#[test]
fn user_maps_as_a_device_reads_them() {
    use std::collections::BTreeMap;
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let local = super::ssh::local_user;
    let nonroot = map(&[("*", "="), ("root", "")]);
    assert_eq!(local(&nonroot, "alice").as_deref(), Some("alice"));
    assert_eq!(local(&nonroot, "root"), None);
    // `=` is the login itself, root too (tailssh's `mapLocalUser`): only the explicit
    // `"root": ""` entry, which every compiled map has, keeps root out.
    assert_eq!(local(&map(&[("*", "=")]), "root").as_deref(), Some("root"));
    let listed = map(&[("root", "root"), ("deploy", "deploy")]);
    assert_eq!(local(&listed, "root").as_deref(), Some("root"));
    assert_eq!(local(&listed, "deploy").as_deref(), Some("deploy"));
    assert_eq!(local(&listed, "alice"), None);
    assert_eq!(
        local(&map(&[("alice", "admin")]), "alice").as_deref(),
        Some("admin")
    );
}

mod explain;

/// A known shared email domain names no tailnet's users in a test's `src` either, as in the
/// policy's own sections: the assertion fails, where `user:*@gmail.com` used to pass (a
/// review found `sshTests` and `explain` took it).
#[test]
fn shared_email_domains_name_no_test_source() {
    let got = lines(&format!(
        r#"{ACLS}{SSH}"tests": [
  {{"src": "user:*@gmail.com", "deny": ["tag:prod:22"]}},
  {{"src": "user:*@example.com", "accept": ["tag:web:80"]}}
],
"sshTests": [
  {{"src": "user:*@GMAIL.com", "dst": ["tag:prod"], "deny": ["root"]}}
]"#
    ));
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("FAIL") && got[0].contains("gmail.com is a shared email domain"),
        "{got:?}"
    );
    assert!(got[1].starts_with("PASS"), "{got:?}");
    assert!(
        got[2].starts_with("FAIL") && got[2].contains("GMAIL.com is a shared email domain"),
        "{got:?}"
    );
}
