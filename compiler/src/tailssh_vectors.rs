//! Tailscale's own test vectors for SSH policy evaluation, run through aclc's evaluators.
//!
//! Each vector is a node's SSH rules in the wire shape (`tailcfg.SSHRule` JSON), a connection
//! (source address, the source user's Tailscale login, the source node's stable id, the
//! requested SSH user) and what Tailscale's SSH server (`ssh/tailssh`) does with it, as its
//! tests assert. Sources (Go test function and case):
//!
//! - `ssh/tailssh/tailssh_test.go`: `TestMatchRule`, `TestEvalSSHPolicy`, `TestSSHAuthFlow`;
//! - Tailscale's `rsh` package (a copy of tailssh's `evalSSHPolicy`/`matchRule`/
//!   `mapLocalUser` "without depending on the SSH connection type"): `TestEvalSSHPolicy`,
//!   `TestMapLocalUser`, `TestEvalSSHPolicyHoldAndDelegate`;
//! - `derived:` vectors follow from tailssh's code (`mapLocalUser`, `setInfo`, `doPolicyAuth`,
//!   the `tailcfg.SSHRule` comments), not from an assertion of its tests.
//!
//! `TestMatchRule`'s rules carry an empty action (`new(tailcfg.SSHAction)`): the test asserts
//! only that the rule matches and the local user. A node then refuses the login
//! (`doPolicyAuth`: neither accept nor hold; `tailcfg.SSHRule.Action`: "A nil or invalid
//! action means to deny"), which is the verdict [`Want::Invalid`] stands for.
//!
//! aclc's evaluators take a source address and the requested login only, so vectors that
//! depend on the source user's Tailscale login (`userLogin` principals) or node id (`node`
//! principals), or on the clock (`ruleExpires`), are run as aclc would see them; each known
//! divergence is listed with the vector ([`Vector::known`]) and asserted to still diverge, so
//! a fix shows up here.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use crate::wire::SshRule;

/// What tailssh does with the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A rule with an accept action matched; the session runs as this local user.
    Accept(&'static str),
    /// A rule with a hold-and-delegate (check) action matched, mapping to this local user.
    Check(&'static str),
    /// A rule with a reject action matched (no user map read): refused.
    Reject,
    /// A rule with neither accept, reject nor hold matched (mapping to this local user): the
    /// search ends there and the node refuses.
    Invalid(&'static str),
    /// No rule matched (`rejected`, or `rejectedUser` when a rule's principals matched but
    /// its user map did not): refused.
    NoMatch,
}

/// aclc's answer, in the same terms (a refusal is `NoMatch`: aclc does not tell them apart).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Accept(String),
    Check(String),
    Denied,
}

impl Want {
    fn as_got(self) -> Got {
        match self {
            Want::Accept(u) => Got::Accept(u.to_string()),
            Want::Check(u) => Got::Check(u.to_string()),
            Want::Reject | Want::Invalid(_) | Want::NoMatch => Got::Denied,
        }
    }
}

struct Vector {
    /// Source file, test function and case.
    id: &'static str,
    /// The node's SSH rules (`tailcfg.SSHRule` JSON, aclc's wire shape), in order.
    rules: &'static str,
    /// The source address (`192.0.2.1` where the Go test leaves it unset: no `nodeIP` of the
    /// vectors names it).
    src: &'static str,
    /// The source user's Tailscale login (`UserProfile.LoginName`); aclc cannot take it.
    user_login: &'static str,
    /// The source node's stable id; aclc cannot take it.
    node_id: &'static str,
    /// The requested SSH user.
    login: &'static str,
    want: Want,
    /// The deciding rule's `acceptEnv` as tailssh returns it (`wantAcceptEnv`), when the
    /// test asserts it.
    accept_env: Option<&'static [&'static str]>,
    /// A known divergence of sshTests / `explain --ssh`: what they answer instead, and why.
    known: Option<(Got, &'static str)>,
    /// A known divergence of `aclc diff` (its own evaluator): what it answers instead.
    known_diff: Option<Got>,
    /// A known divergence in whether a rule matches at all, where the verdict agrees.
    known_match: Option<&'static str>,
}

const SRC_UNSET: &str = "192.0.2.1";

fn vectors() -> Vec<Vector> {
    let v = |id, rules, src, login, want| Vector {
        id,
        rules,
        src,
        user_login: "",
        node_id: "",
        login,
        want,
        accept_env: None,
        known: None,
        known_diff: None,
        known_match: None,
    };
    vec![
        // ---- ssh/tailssh/tailssh_test.go TestMatchRule ----
        // invalid-conn, nil-rule, nil-action, ok-wildcard-and-nil-principal: not expressible
        // (no connection, a null rule, a null action, a null principal: FINDINGS.md).
        // Expired; aclc ignores ruleExpires, but the rule has no principals either, so aclc
        // finds no match for that reason alone (see rsh expired_rule_skipped).
        v(
            "tailssh_test.go TestMatchRule/expired",
            r#"[{"ruleExpires":"1970-01-01T00:01:40Z","principals":[],"sshUsers":{},"action":{}}]"#,
            SRC_UNSET,
            "",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestMatchRule/no-principal",
            r#"[{"principals":[],"sshUsers":{"*":"ubuntu"},"action":{}}]"#,
            SRC_UNSET,
            "",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestMatchRule/no-user-match",
            r#"[{"principals":[{"any":true}],"sshUsers":{},"action":{}}]"#,
            SRC_UNSET,
            "alice",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestMatchRule/ok-wildcard",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"ubuntu"},"action":{}}]"#,
            SRC_UNSET,
            "alice",
            Want::Invalid("ubuntu"),
        ),
        v(
            "tailssh_test.go TestMatchRule/ok-exact",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"ubuntu","alice":"thealice"},"action":{}}]"#,
            SRC_UNSET,
            "alice",
            Want::Invalid("thealice"),
        ),
        Vector {
            accept_env: Some(&["EXAMPLE", "?_?", "TEST_*"]),
            ..v(
                "tailssh_test.go TestMatchRule/ok-with-accept-env",
                r#"[{"principals":[{"any":true}],"sshUsers":{"*":"ubuntu","alice":"thealice"},"action":{},"acceptEnv":["EXAMPLE","?_?","TEST_*"]}]"#,
                SRC_UNSET,
                "alice",
                Want::Invalid("thealice"),
            )
        },
        v(
            "tailssh_test.go TestMatchRule/no-users-for-reject",
            r#"[{"principals":[{"any":true}],"sshUsers":{},"action":{"reject":true}}]"#,
            SRC_UNSET,
            "alice",
            Want::Reject,
        ),
        v(
            "tailssh_test.go TestMatchRule/match-principal-node-ip",
            r#"[{"principals":[{"nodeIP":"1.2.3.4"}],"sshUsers":{"*":"ubuntu"},"action":{}}]"#,
            "1.2.3.4",
            "",
            Want::Invalid("ubuntu"),
        ),
        Vector {
            node_id: "some-node-ID",
            known_match: Some(
                "node principal: aclc's evaluators read no node id (aclc never emits one); the \
                 verdict agrees only because the action is empty",
            ),
            ..v(
                "tailssh_test.go TestMatchRule/match-principal-node-id",
                r#"[{"principals":[{"node":"some-node-ID"}],"sshUsers":{"*":"ubuntu"},"action":{}}]"#,
                SRC_UNSET,
                "",
                Want::Invalid("ubuntu"),
            )
        },
        Vector {
            user_login: "foo@bar.com",
            known_match: Some(
                "userLogin principal: aclc compares it with the requested SSH user, not the \
                 source user's login (aclc never emits one); the verdict agrees only because \
                 the action is empty",
            ),
            ..v(
                "tailssh_test.go TestMatchRule/match-principal-userlogin",
                r#"[{"principals":[{"userLogin":"foo@bar.com"}],"sshUsers":{"*":"ubuntu"},"action":{}}]"#,
                SRC_UNSET,
                "",
                Want::Invalid("ubuntu"),
            )
        },
        v(
            "tailssh_test.go TestMatchRule/ssh-user-equal",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{}}]"#,
            SRC_UNSET,
            "alice",
            Want::Invalid("alice"),
        ),
        // ---- ssh/tailssh/tailssh_test.go TestEvalSSHPolicy ----
        Vector {
            accept_env: Some(&["EXAMPLE", "?_?", "TEST_*"]),
            ..v(
                "tailssh_test.go TestEvalSSHPolicy/multiple-matches-picks-first-match",
                r#"[
                  {"principals":[{"any":true}],"sshUsers":{"other":"other1"},"action":{}},
                  {"principals":[{"any":true}],"sshUsers":{"*":"ubuntu","alice":"thealice"},"action":{},"acceptEnv":["EXAMPLE","?_?","TEST_*"]},
                  {"principals":[{"any":true}],"sshUsers":{"other2":"other3"},"action":{}},
                  {"principals":[{"any":true}],"sshUsers":{"*":"ubuntu","alice":"thealice","mark":"markthe"},"action":{},"acceptEnv":["*"]}
                ]"#,
                SRC_UNSET,
                "alice",
                Want::Invalid("thealice"),
            )
        },
        v(
            "tailssh_test.go TestEvalSSHPolicy/no-matches-returns-rejected",
            "[]",
            SRC_UNSET,
            "alice",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestEvalSSHPolicy/no-user-matches-returns-rejected-user",
            r#"[
              {"principals":[{"any":true}],"sshUsers":{"other":"other1"},"action":{}},
              {"principals":[{"any":true}],"sshUsers":{"fedora":"ubuntu"},"action":{},"acceptEnv":["EXAMPLE","?_?","TEST_*"]},
              {"principals":[{"any":true}],"sshUsers":{"other2":"other3"},"action":{}},
              {"principals":[{"any":true}],"sshUsers":{"mark":"markthe"},"action":{},"acceptEnv":["*"]}
            ]"#,
            SRC_UNSET,
            "alice",
            Want::NoMatch,
        ),
        // ---- ssh/tailssh/tailssh_test.go TestSSHAuthFlow (newSSHRule: any, {alice: user}) ----
        v(
            "tailssh_test.go TestSSHAuthFlow/no-policy",
            "[]",
            "100.100.100.101",
            "alice",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestSSHAuthFlow/user-mismatch",
            r#"[{"principals":[{"any":true}],"sshUsers":{"bob":"bob"},"action":{"accept":true,"message":"Welcome to Tailscale SSH!"}}]"#,
            "100.100.100.101",
            "alice",
            Want::NoMatch,
        ),
        v(
            "tailssh_test.go TestSSHAuthFlow/accept",
            r#"[{"principals":[{"any":true}],"sshUsers":{"alice":"testuser"},"action":{"accept":true,"message":"Welcome to Tailscale SSH!"}}]"#,
            "100.100.100.101",
            "alice",
            Want::Accept("testuser"),
        ),
        v(
            "tailssh_test.go TestSSHAuthFlow/reject",
            r#"[{"principals":[{"any":true}],"sshUsers":{"alice":"testuser"},"action":{"reject":true,"message":"Go Away!"}}]"#,
            "100.100.100.101",
            "alice",
            Want::Reject,
        ),
        // simple-check, multi-check, check-reject: the first action holds; what follows is the
        // control server's answer, which aclc does not model (it says "check").
        v(
            "tailssh_test.go TestSSHAuthFlow/simple-check (first action)",
            r#"[{"principals":[{"any":true}],"sshUsers":{"alice":"testuser"},"action":{"holdAndDelegate":"https://unused/ssh-action/accept"}}]"#,
            "100.100.100.101",
            "alice",
            Want::Check("testuser"),
        ),
        v(
            "tailssh_test.go TestSSHAuthFlow/check-reject (first action)",
            r#"[{"principals":[{"any":true}],"sshUsers":{"alice":"testuser"},"action":{"message":"First","holdAndDelegate":"https://unused/ssh-action/reject"}}]"#,
            "100.100.100.101",
            "alice",
            Want::Check("testuser"),
        ),
        Vector {
            known_diff: Some(Got::Denied),
            ..v(
                "tailssh_test.go TestSSHAuthFlow/force-password-auth",
                r#"[{"principals":[{"any":true}],"sshUsers":{"alice":"testuser"},"action":{"accept":true,"message":"Welcome to Tailscale SSH!"}}]"#,
                "100.100.100.101",
                "alice+password",
                Want::Accept("testuser"),
            )
        },
        // ---- rsh TestEvalSSHPolicy (node stable1, alice@example.com, 100.64.1.2, now 2025-01-01) ----
        v(
            "rsh TestEvalSSHPolicy/empty_policy (and nil_policy)",
            "[]",
            "100.64.1.2",
            "root",
            Want::NoMatch,
        ),
        v(
            "rsh TestEvalSSHPolicy/accept_any_wildcard_user",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
            "100.64.1.2",
            "alice",
            Want::Accept("alice"),
        ),
        v(
            "rsh TestEvalSSHPolicy/accept_specific_user_mapping",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin"},"action":{"accept":true}}]"#,
            "100.64.1.2",
            "root",
            Want::Accept("admin"),
        ),
        v(
            "rsh TestEvalSSHPolicy/reject_unmapped_user",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin"},"action":{"accept":true}}]"#,
            "100.64.1.2",
            "unknown",
            Want::NoMatch,
        ),
        Vector {
            node_id: "stable1",
            user_login: "alice@example.com",
            known_diff: Some(Got::Denied),
            known: Some((
                Got::Denied,
                "node principal: aclc's evaluators read no node id",
            )),
            ..v(
                "rsh TestEvalSSHPolicy/match_by_node_stable_id",
                r#"[{"principals":[{"node":"stable1"}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
                "100.64.1.2",
                "bob",
                Want::Accept("bob"),
            )
        },
        Vector {
            node_id: "stable1",
            ..v(
                "rsh TestEvalSSHPolicy/reject_wrong_node",
                r#"[{"principals":[{"node":"other-node"}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
                "100.64.1.2",
                "bob",
                Want::NoMatch,
            )
        },
        v(
            "rsh TestEvalSSHPolicy/match_by_node_ip",
            r#"[{"principals":[{"nodeIP":"100.64.1.2"}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
            "100.64.1.2",
            "alice",
            Want::Accept("alice"),
        ),
        Vector {
            user_login: "alice@example.com",
            known_diff: Some(Got::Denied),
            known: Some((
                Got::Denied,
                "userLogin principal compared with the SSH user \"alice\", not the source \
                 user's login",
            )),
            ..v(
                "rsh TestEvalSSHPolicy/match_by_user_login",
                r#"[{"principals":[{"userLogin":"alice@example.com"}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
                "100.64.1.2",
                "alice",
                Want::Accept("alice"),
            )
        },
        v(
            "rsh TestEvalSSHPolicy/hold_and_delegate_returns_eval_hold",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"holdAndDelegate":"https://example.com/approve"}}]"#,
            "100.64.1.2",
            "alice",
            Want::Check("alice"),
        ),
        v(
            "rsh TestEvalSSHPolicy/explicit_reject_action",
            r#"[{"principals":[{"any":true}],"sshUsers":{},"action":{"reject":true}}]"#,
            "100.64.1.2",
            "alice",
            Want::Reject,
        ),
        Vector {
            known_diff: Some(Got::Accept("alice".into())),
            known: Some((
                Got::Accept("alice".into()),
                "aclc ignores ruleExpires: an expired rule still admits (aclc never emits one)",
            )),
            ..v(
                "rsh TestEvalSSHPolicy/expired_rule_skipped",
                r#"[{"ruleExpires":"2024-12-31T23:00:00Z","principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
                "100.64.1.2",
                "alice",
                Want::NoMatch,
            )
        },
        v(
            "rsh TestEvalSSHPolicy/first_matching_rule_wins",
            r#"[
              {"principals":[{"nodeIP":"100.64.1.2"}],"sshUsers":{"alice":"localice"},"action":{"accept":true}},
              {"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}
            ]"#,
            "100.64.1.2",
            "alice",
            Want::Accept("localice"),
        ),
        // ---- rsh TestEvalSSHPolicyHoldAndDelegate ----
        v(
            "rsh TestEvalSSHPolicyHoldAndDelegate/hold_and_delegate_with_message",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"holdAndDelegate":"https://control.example.com/approve?user=$SSH_USER","message":"Please approve in the admin panel"}}]"#,
            "100.64.1.2",
            "alice",
            Want::Check("alice"),
        ),
        Vector {
            user_login: "alice@example.com",
            known_diff: Some(Got::Denied),
            known: Some((
                Got::Denied,
                "userLogin principal compared with the SSH user \"root\"",
            )),
            ..v(
                "rsh TestEvalSSHPolicyHoldAndDelegate/hold_with_specific_user_mapping",
                r#"[{"principals":[{"userLogin":"alice@example.com"}],"sshUsers":{"root":"admin"},"action":{"holdAndDelegate":"https://control.example.com/check"}}]"#,
                "100.64.1.2",
                "root",
                Want::Check("admin"),
            )
        },
        v(
            "rsh TestEvalSSHPolicyHoldAndDelegate/hold_rejects_unmapped_user",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin"},"action":{"holdAndDelegate":"https://control.example.com/check"}}]"#,
            "100.64.1.2",
            "unknown",
            Want::NoMatch,
        ),
        // ---- rsh TestMapLocalUser (run as one accept rule from any device) ----
        v(
            "rsh TestMapLocalUser/exact_match",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin"},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "root",
            Want::Accept("admin"),
        ),
        v(
            "rsh TestMapLocalUser/wildcard_match",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"defaultuser"},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "anyone",
            Want::Accept("defaultuser"),
        ),
        v(
            "rsh TestMapLocalUser/identity_match",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "alice",
            Want::Accept("alice"),
        ),
        v(
            "rsh TestMapLocalUser/no_match",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin"},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "unknown",
            Want::NoMatch,
        ),
        v(
            "rsh TestMapLocalUser/exact_over_wildcard",
            r#"[{"principals":[{"any":true}],"sshUsers":{"root":"admin","*":"default"},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "root",
            Want::Accept("admin"),
        ),
        v(
            "rsh TestMapLocalUser/nil_map (as an empty map)",
            r#"[{"principals":[{"any":true}],"sshUsers":{},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "alice",
            Want::NoMatch,
        ),
        // ---- derived from tailssh's code ----
        v(
            "derived: mapLocalUser, \"=\" maps root too",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "root",
            Want::Accept("root"),
        ),
        v(
            "derived: tailcfg.SSHRule \"If the map value is the empty string (for either the requested SSH user or \\\"*\\\"), the rule doesn't match\"",
            r#"[
              {"principals":[{"any":true}],"sshUsers":{"*":"=","root":""},"action":{"accept":true}},
              {"principals":[{"any":true}],"sshUsers":{"root":"root"},"action":{"holdAndDelegate":"https://unused/check"}}
            ]"#,
            SRC_UNSET,
            "root",
            Want::Check("root"),
        ),
        v(
            "derived: an empty exact entry does not fall back to \"*\"",
            r#"[{"principals":[{"any":true}],"sshUsers":{"*":"ubuntu","bob":""},"action":{"accept":true}}]"#,
            SRC_UNSET,
            "bob",
            Want::NoMatch,
        ),
        v(
            "derived: a reject rule refuses logins its user map does not name (no map read)",
            r#"[
              {"principals":[{"any":true}],"sshUsers":{"root":"root"},"action":{"reject":true}},
              {"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}
            ]"#,
            SRC_UNSET,
            "alice",
            Want::Reject,
        ),
        Vector {
            known_diff: Some(Got::Accept("alice+password".into())),
            ..v(
                "derived: setInfo strips +password before matching a user map naming it",
                r#"[{"principals":[{"any":true}],"sshUsers":{"alice+password":"alice+password","root":""},"action":{"accept":true}}]"#,
                SRC_UNSET,
                "alice+password",
                Want::NoMatch,
            )
        },
        Vector {
            user_login: "mallory@example.com",
            known: Some((
                Got::Accept("ubuntu".into()),
                "userLogin principal compared with the requested SSH user: a login named like \
                 the principal's user is admitted from any device (aclc never emits userLogin)",
            )),
            ..v(
                "derived: userLogin matches the source user's login, not the SSH user",
                r#"[{"principals":[{"userLogin":"alice@example.com"}],"sshUsers":{"*":"ubuntu"},"action":{"accept":true}}]"#,
                "100.64.1.9",
                "alice@example.com",
                Want::NoMatch,
            )
        },
        v(
            "derived: doPolicyAuth / tailcfg \"A nil or invalid action means to deny\" stops the search",
            r#"[
              {"principals":[{"any":true}],"sshUsers":{"*":"ubuntu"},"action":{"message":"hi"}},
              {"principals":[{"any":true}],"sshUsers":{"*":"other"},"action":{"accept":true}}
            ]"#,
            SRC_UNSET,
            "alice",
            Want::Invalid("ubuntu"),
        ),
    ]
}

fn rules(v: &Vector) -> Vec<SshRule> {
    serde_json::from_str(v.rules).unwrap_or_else(|e| panic!("{}: {e}", v.id))
}

/// aclc's sshTests / `explain --ssh` evaluator (`policytest::ssh::judge`), with the local
/// user `policytest::local_user` gives (what `engine` `ssh_decision` reports).
fn policytest_answer(v: &Vector) -> (Got, bool) {
    let rules = rules(v);
    let src: IpAddr = v.src.parse().unwrap();
    match crate::policytest::judge_wire(&rules, &[src], v.login) {
        None => (Got::Denied, false),
        Some(("refused", _)) => (Got::Denied, true),
        Some((kind, i)) => {
            let user = crate::policytest::local_user(
                &rules[i].ssh_users,
                crate::policytest::ssh_user(v.login),
            )
            .unwrap_or_default();
            match kind {
                "check" => (Got::Check(user), true),
                _ => (Got::Accept(user), true),
            }
        }
    }
}

/// aclc diff's evaluator (`diff::ssh::diff_node` against no rules before).
fn diff_answer(v: &Vector) -> (Got, String) {
    let rules = rules(v);
    let src: IpAddr = v.src.parse().unwrap();
    match crate::diff::decide_wire(&rules, src, v.login) {
        None => (Got::Denied, String::new()),
        Some(o) => {
            // The `*` atom names the login `*`: `=` then maps to it.
            let user = if o.local_user == "*" {
                v.login.to_string()
            } else {
                o.local_user.clone()
            };
            let got = match o.action {
                "check" => Got::Check(user),
                _ => Got::Accept(user),
            };
            (got, o.terms.to_string())
        }
    }
}

/// Every vector through aclc's sshTests/explain evaluator: equal to tailssh's verdict, or the
/// known divergence (which must still be what aclc answers).
#[test]
fn tailssh_vectors_policytest() {
    let mut report = Vec::new();
    for v in vectors() {
        let (got, matched) = policytest_answer(&v);
        let want = v.want.as_got();
        let want_matched = v.want != Want::NoMatch;
        match v.known_match {
            // A verdict divergence (`known`) implies its match divergence.
            _ if v.known.is_some() => {}
            None if matched != want_matched => report.push(format!(
                "UNEXPECTED {}: tailssh matched {want_matched}, aclc matched {matched}",
                v.id
            )),
            Some(why) if matched == want_matched => report.push(format!(
                "FIXED {}: aclc now matches as tailssh ({why}); drop `known_match`",
                v.id
            )),
            _ => {}
        }
        match &v.known {
            None if got != want => report.push(format!(
                "UNEXPECTED {}: tailssh {:?}, aclc {:?}",
                v.id, v.want, got
            )),
            Some((expected, why)) if *expected != got && got != want => report.push(format!(
                "CHANGED {}: aclc {:?} (known: {:?}, {why})",
                v.id, got, expected
            )),
            Some((_, _)) if got == want => report.push(format!(
                "FIXED {}: aclc now answers as tailssh ({:?}); drop `known`",
                v.id, got
            )),
            _ => {}
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// Every vector through aclc diff's evaluator. It reads no `userLogin`, `node` or
/// `ruleExpires` either, but refuses invalid actions and maps root through `=` as tailssh
/// does; where the sweep differs from sshTests it is said here.
#[test]
fn tailssh_vectors_diff() {
    let mut report = Vec::new();
    for v in vectors() {
        let (got, terms) = diff_answer(&v);
        let want = v.want.as_got();
        let expected = v.known_diff.clone().unwrap_or(want.clone());
        if got != expected {
            report.push(format!(
                "{}: tailssh {:?}, aclc diff {:?} (expected {:?})",
                v.id, v.want, got, expected
            ));
        }
        // The deciding rule's acceptEnv, as the diff shows a session's terms.
        if let (Some(env), Got::Accept(_) | Got::Check(_)) = (v.accept_env, &got) {
            let mut names: Vec<&str> = env.to_vec();
            names.sort_unstable();
            let shown = format!("environment {}", names.join(" "));
            if !terms.contains(&shown) {
                report.push(format!("{}: terms {terms:?}, want {shown:?}", v.id));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// The deciding rule's `acceptEnv` (`TestMatchRule/ok-with-accept-env`,
/// `TestEvalSSHPolicy/multiple-matches-picks-first-match`) with the empty action replaced by
/// accept, so that the diff (which refuses empty actions) shows the session's terms.
#[test]
fn tailssh_vectors_deciding_rule_accept_env() {
    for v in vectors().into_iter().filter(|v| v.accept_env.is_some()) {
        let text = v
            .rules
            .replace(r#""action":{}"#, r#""action":{"accept":true}"#);
        let rules: Vec<SshRule> = serde_json::from_str(&text).unwrap();
        let src: IpAddr = v.src.parse().unwrap();
        let outcome = crate::diff::decide_wire(&rules, src, v.login).expect(v.id);
        let mut names: Vec<&str> = v.accept_env.unwrap().to_vec();
        names.sort_unstable();
        assert_eq!(
            &*outcome.terms,
            format!("environment {}", names.join(" ")),
            "{}",
            v.id
        );
        let _ = (v.user_login, v.node_id);
    }
}

/// `tailcfg.SSHRule` as Go marshals the rules of `TestMatchRule` (`principals`, `sshUsers`
/// and `action` have no `omitempty`: nil is `null`; "It [sshUsers] may be nil if the Action
/// is reject"; "A nil or invalid action means to deny"). aclc's wire types read a `null`
/// field as empty (an empty action refuses); a `null` inside the principals is not read.
#[test]
fn tailcfg_json_nulls() {
    let cases: [(&str, &str, bool); 6] = [
        (
            "TestMatchRule/no-principal",
            r#"{"principals":null,"sshUsers":{"*":"ubuntu"},"action":{}}"#,
            true,
        ),
        (
            "TestMatchRule/no-user-match",
            r#"{"principals":[{"any":true}],"sshUsers":null,"action":{}}"#,
            true,
        ),
        (
            "TestMatchRule/no-users-for-reject",
            r#"{"principals":[{"any":true}],"sshUsers":null,"action":{"reject":true}}"#,
            true,
        ),
        (
            "TestMatchRule/nil-action",
            r#"{"principals":null,"sshUsers":null,"action":null}"#,
            true,
        ),
        (
            "TestMatchRule/ok-wildcard-and-nil-principal",
            r#"{"principals":[null,{"any":true}],"sshUsers":{"*":"ubuntu"},"action":{}}"#,
            false,
        ),
        (
            "acceptEnv null",
            r#"{"principals":[{"any":true}],"sshUsers":{"*":"ubuntu"},"action":{"accept":true},"acceptEnv":null}"#,
            true,
        ),
    ];
    for (id, text, reads) in cases {
        assert_eq!(
            serde_json::from_str::<SshRule>(text).is_ok(),
            reads,
            "{id}: {text}"
        );
    }
}
