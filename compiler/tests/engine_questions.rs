//! The engine and its questions against the conformance corpus:
//! - every accepted case loaded into an engine (`TailnetState::from_inventory`) gives every
//!   node the same map as `compile` (ids, registration order and owners carried over);
//! - `auto_approves` / `auto_approved` reproduce the approvals Tailscale recorded (the routes
//!   and acl captures), as `auto_approved_routes` does;
//! - `ssh_decision` agrees with `aclc explain --ssh` on every pair of nodes of the ssh
//!   captures, and a check rule's period is its `checkPeriod` (12 hours by default);
//! - tag ownership: groups, tags owning tags, admins, undefined tags.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod corpus_cases;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use aclc_compiler::engine::questions::{PeerReason, SshOutcome, Tagger};
use aclc_compiler::engine::{Engine, EngineOptions, NodeRecord, TailnetState, UserRecord};
use aclc_compiler::policytest::{explain_ssh, Verdict};
use aclc_compiler::{compile, Role};
use aclc_policy::model::{CheckPeriod, GoDuration};
use aclc_testkit::corpus::{self, compare};
use serde_json::Value;

fn accepted(categories: &[&str]) -> Vec<Value> {
    corpus::cases(categories)
        .into_iter()
        .filter(|case| case["expect"]["outcome"] == "accepted")
        .collect()
}

fn engine_of(case: &Value) -> Option<(Engine, aclc_compiler::Compiled)> {
    let inventory = corpus_cases::inventory(case);
    if !inventory.services().is_empty() {
        return None;
    }
    let (_, parsed) = corpus_cases::parse(case, &inventory);
    let policy = parsed.ok()?.policy;
    let compiled = compile(&policy, &inventory);
    let engine = Engine::new(
        Arc::new(policy),
        TailnetState::from_inventory(&inventory),
        EngineOptions::default(),
    )
    .unwrap();
    Some((engine, compiled))
}

#[test]
fn engine_maps_equal_compile_on_the_corpus() {
    let mut checked = 0;
    for case in accepted(&["acl", "routes", "grant", "ssh", "nodeattrs"]) {
        let Some((engine, compiled)) = engine_of(&case) else {
            continue;
        };
        let snapshot = engine.snapshot();
        for id in snapshot.node_ids() {
            let name = snapshot.name(id).unwrap();
            assert_eq!(
                snapshot.node(id).unwrap().to_wire(),
                compiled.node(name).unwrap().to_wire(),
                "{} {name}",
                corpus::id(&case)
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} nodes");
}

#[test]
fn auto_approval_questions_reproduce_recorded_approvals() {
    let mut checked = 0;
    for case in accepted(&["acl", "routes"]) {
        if !compare::is_empty(&case["expect"]["route_state_inconsistent"]) {
            continue;
        }
        let Some((engine, _)) = engine_of(&case) else {
            continue;
        };
        let snapshot = engine.snapshot();
        let inventory = corpus_cases::inventory(&case);
        for node in inventory.nodes() {
            let id = snapshot.id(&node.name).unwrap();
            let mut got = snapshot.auto_approved(id);
            let mut want = node.approved_routes.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{} {}", corpus::id(&case), node.name);
            for route in &node.routable_ips {
                assert_eq!(
                    snapshot.auto_approves(id, route),
                    node.approved_routes.contains(route),
                    "{} {} {route}",
                    corpus::id(&case),
                    node.name
                );
                checked += 1;
            }
        }
        // Nothing is lost when the policy stays the same.
        assert!(snapshot.approvals_lost(snapshot.policy()).is_empty());
    }
    assert!(checked > 100, "only {checked} routes");
}

#[test]
fn ssh_decisions_agree_with_explain() {
    let mut checked = 0;
    let mut checks = 0;
    for case in accepted(&["ssh", "sshtest"]) {
        let Some((engine, _)) = engine_of(&case) else {
            continue;
        };
        let snapshot = engine.snapshot();
        let ids: Vec<u64> = snapshot.node_ids().collect();
        for login in ["root", "odin", "ubuntu"] {
            for &src in &ids {
                for &dst in &ids {
                    let decision = snapshot.ssh_decision(src, dst, login).unwrap();
                    let src_name = snapshot.name(src).unwrap();
                    let dst_name = snapshot.name(dst).unwrap();
                    let Ok(explained) = explain_ssh(
                        snapshot.policy(),
                        snapshot.compiled(),
                        src_name,
                        dst_name,
                        login,
                    ) else {
                        continue;
                    };
                    let agree = matches!(
                        (&decision.action, &explained.verdict),
                        (SshOutcome::Denied, Verdict::Denied)
                            | (SshOutcome::Accept, Verdict::AllowedByAccept { .. })
                            | (SshOutcome::Check { .. }, Verdict::AllowedByCheck { .. })
                    );
                    assert!(
                        agree,
                        "{} {src_name} -> {dst_name} as {login}: {decision:?} vs {:?}",
                        corpus::id(&case),
                        explained.verdict
                    );
                    if let (Some((index, span)), SshOutcome::Check { period }) =
                        (decision.rule, decision.action)
                    {
                        let rule = &snapshot.policy().ssh.as_ref().unwrap().value[index];
                        assert_eq!(rule.span, span);
                        let want = rule.check_period.as_ref().map_or(
                            CheckPeriod::Every(GoDuration(12 * 3600 * 1_000_000_000)),
                            |p| p.value,
                        );
                        assert_eq!(period, want);
                        assert_eq!(explained.verdict.rules(), [span]);
                        checks += 1;
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} logins");
    assert!(checks > 10, "only {checks} check decisions");
}

fn addr(i: u8) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(100, 64, 0, i),
        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i)),
    )
}

/// The README's example.
#[test]
fn tag_ownership_and_peer_impact() {
    let text = r#"{"groups": {"group:eng": ["alice@example.com", "bob@"]},
        "tagOwners": {"tag:web": ["group:eng"], "tag:db": ["tag:web"],
                      "tag:router": ["alice@example.com"], "tag:exit": []},
        "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}, "exitNode": ["tag:exit"]},
        "grants": [{"src": ["group:eng"], "dst": ["10.1.0.0/16"], "ip": ["*"], "via": ["tag:router"]}],
        "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]}]}"#;
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &Default::default());
    let policy = Arc::new(parsed.unwrap().policy);
    let user = |id, login: &str, roles| UserRecord {
        id,
        login: login.to_string(),
        name: String::new(),
        roles,
        groups: Vec::new(),
    };
    let (a4, a6) = addr(1);
    let (b4, b6) = addr(2);
    let (c4, c6) = addr(3);
    let (d4, d6) = addr(4);
    let mut router = NodeRecord::tagged(4, "router-1", &["tag:router"], d4, d6);
    router.advertised_routes = vec!["10.1.0.0/16".parse().unwrap()];
    let state = TailnetState {
        users: vec![
            user(1, "alice@example.com", Vec::new()),
            user(2, "bob@", Vec::new()),
            user(3, "eve@example.com", Vec::new()),
            user(4, "root@example.com", vec![Role::Admin]),
        ],
        nodes: vec![
            NodeRecord::owned(1, "bob-laptop", 2, a4, a6),
            NodeRecord::tagged(2, "web-1", &["tag:web"], b4, b6),
            NodeRecord::owned(3, "eve-laptop", 3, c4, c6),
            router.clone(),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let s = engine.snapshot();
    assert!(s.may_apply_tag(Tagger::User(2), "tag:web"));
    // Tag names are read in lowercase, as Tailscale does.
    assert!(s.may_apply_tag(Tagger::User(2), "tag:Web"));
    assert!(s.may_apply_tag(Tagger::Node(1), "tag:web"));
    assert!(!s.may_apply_tag(Tagger::User(3), "tag:web"));
    assert!(!s.may_apply_tag(Tagger::Node(3), "tag:web"));
    assert!(s.may_apply_tag(Tagger::Node(2), "tag:db"));
    assert!(!s.may_apply_tag(Tagger::Node(2), "tag:router"));
    assert!(s.may_apply_tag(Tagger::User(1), "tag:router"));
    assert!(!s.may_apply_tag(Tagger::User(2), "tag:exit"));
    assert!(s.may_apply_tag(Tagger::User(4), "tag:exit"));
    assert!(!s.may_apply_tag(Tagger::User(4), "tag:undefined"));

    assert!(s.auto_approves(4, &"10.1.0.0/16".parse().unwrap()));
    assert!(!s.auto_approves(4, &"0.0.0.0/0".parse().unwrap()));
    assert!(!s.auto_approves(1, &"10.1.0.0/16".parse().unwrap()));
    assert_eq!(s.auto_approved(4), ["10.1.0.0/16".parse().unwrap()]);
    let (_, stricter) = aclc_policy::parse_str(
        "policy.hujson",
        &text.replace(
            r#""10.0.0.0/8": ["tag:router"]"#,
            r#""10.0.0.0/8": ["tag:web"]"#,
        ),
        &Default::default(),
    );
    let lost = s.approvals_lost(&stricter.unwrap().policy);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[&4], ["10.1.0.0/16".parse().unwrap()]);

    let mut offline = router.clone();
    offline.online = false;
    assert!(s
        .peer_impact(Some(&router), Some(&offline))
        .contains(&PeerReason::Router));
    let laptop = engine.node(3).unwrap().clone();
    let mut renamed = laptop.clone();
    renamed.hostname = Some("eve-mbp".to_string());
    assert!(s.peer_impact(Some(&laptop), Some(&renamed)).is_empty());
    let mut offline_laptop = laptop.clone();
    offline_laptop.online = false;
    assert!(s
        .peer_impact(Some(&laptop), Some(&offline_laptop))
        .is_empty());
    assert_eq!(s.peer_impact(None, Some(&laptop)), [PeerReason::Membership]);
    let mut retagged = router.clone();
    retagged.tags = vec!["tag:web".to_string()];
    let reasons = s.peer_impact(Some(&router), Some(&retagged));
    assert!(reasons.contains(&PeerReason::Selectors));
    assert!(reasons.contains(&PeerReason::ViaTarget));
    // An exit node that stops serving one family: its peers' AllowedIPs lose that route (it
    // was answered "own map only", as the node stayed an exit node).
    let (e4, e6) = addr(9);
    let mut exit = NodeRecord::tagged(9, "exit-1", &["tag:exit"], e4, e6);
    let both: Vec<ipnet::IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
    exit.advertised_routes = both.clone();
    exit.approved_routes = both;
    let mut v6_only = exit.clone();
    v6_only.advertised_routes = vec!["::/0".parse().unwrap()];
    assert_eq!(
        s.peer_impact(Some(&exit), Some(&v6_only)),
        [PeerReason::Exit]
    );
    let mut reordered = exit.clone();
    reordered.advertised_routes.reverse();
    assert!(s.peer_impact(Some(&exit), Some(&reordered)).is_empty());

    let why = s.explain_flow(1, 2, 443, None).unwrap().unwrap();
    assert!(why.allowed());
    assert_eq!(why.verdict.rules().len(), 1);
    assert!(!s.explain_flow(3, 2, 443, None).unwrap().unwrap().allowed());
}

/// Found by a sweep of the questions against Tailscale's documentation and the engine's own
/// change sets: who besides a tag's owners may apply it, and a route advertised for the
/// first time under `autoApprovers`.
#[test]
fn network_admins_tagged_owners_and_routes_approved_as_advertised() {
    let text = r#"{"tagOwners": {"tag:prod": [], "tag:x": ["autogroup:tagged"],
                      "tag:router": []},
        "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}, "exitNode": ["tag:router"]},
        "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &Default::default());
    let policy = Arc::new(parsed.unwrap().policy);
    let user = |id, login: &str, roles| UserRecord {
        id,
        login: login.to_string(),
        name: String::new(),
        roles,
        groups: Vec::new(),
    };
    let (a4, a6) = addr(1);
    let (b4, b6) = addr(2);
    let router = NodeRecord::tagged(2, "router", &["tag:router"], b4, b6);
    let state = TailnetState {
        users: vec![
            user(1, "alice@example.com", Vec::new()),
            user(2, "dave@example.com", vec![Role::NetworkAdmin]),
            user(3, "ivy@example.com", vec![Role::ItAdmin]),
        ],
        nodes: vec![NodeRecord::owned(1, "laptop", 1, a4, a6), router.clone()],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    for mode in [
        aclc_compiler::engine::ApprovalMode::Derived,
        aclc_compiler::engine::ApprovalMode::Stored,
    ] {
        let mut engine = Engine::new(
            policy.clone(),
            state.clone(),
            EngineOptions::with_approvals(mode),
        )
        .unwrap();
        let s = engine.snapshot();
        // "Owner, Admin, or Network admin can apply any tag, even if they don't own the tag"
        // (Tailscale's tags documentation); an IT admin may not.
        assert!(s.may_apply_tag(Tagger::User(2), "tag:prod"));
        assert!(!s.may_apply_tag(Tagger::User(3), "tag:prod"));
        assert!(!s.may_apply_tag(Tagger::User(1), "tag:prod"));
        // autogroup:tagged owns tag:x: any tagged device, not a user or a user's device.
        assert!(s.may_apply_tag(Tagger::Node(2), "tag:x"));
        assert!(!s.may_apply_tag(Tagger::Node(1), "tag:x"));
        assert!(!s.may_apply_tag(Tagger::User(1), "tag:x"));

        // A route advertised for the first time, which autoApprovers approves at once: every
        // peer gains it (it was answered "own map only").
        let mut subnet = router.clone();
        subnet.advertised_routes = vec!["10.1.0.0/16".parse().unwrap()];
        assert_eq!(
            s.peer_impact(Some(&router), Some(&subnet)),
            [PeerReason::Router]
        );
        let mut exit = router.clone();
        exit.advertised_routes = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        assert_eq!(
            s.peer_impact(Some(&router), Some(&exit)),
            [PeerReason::Exit]
        );
        // A route nobody approves changes no peer.
        let mut unapproved = router.clone();
        unapproved.advertised_routes = vec!["192.168.0.0/24".parse().unwrap()];
        assert!(s.peer_impact(Some(&router), Some(&unapproved)).is_empty());
        let changes = engine
            .apply(aclc_compiler::engine::Event::UpsertNode(subnet.clone()))
            .unwrap();
        assert!(changes.changed_ids().any(|id| id == 1), "{mode:?}");

        // Derived approvals are lost under a policy without autoApprovers; stored ones are
        // in the record, as in Tailscale, and no policy takes them back.
        let (_, plain) = aclc_policy::parse_str(
            "policy.hujson",
            r#"{"tagOwners": {"tag:router": []},
                "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
            &Default::default(),
        );
        let lost = engine.snapshot().approvals_lost(&plain.unwrap().policy);
        match mode {
            aclc_compiler::engine::ApprovalMode::Derived => {
                assert_eq!(lost[&2], ["10.1.0.0/16".parse().unwrap()]);
            }
            aclc_compiler::engine::ApprovalMode::Stored => assert!(lost.is_empty()),
        }
    }
}
