//! `sshTests`: SSH login assertions, judged the way each destination device judges a login:
//! its SSH rules in order, the first whose principals include the source address and whose
//! user map gives a local user for the login decides (accept or check); none means denied.
//!
//! `accept` users must be allowed (by an accept or a check rule) from every source device to
//! every destination device, `check` users allowed by a check rule, `deny` users allowed
//! nowhere. Network rules do not count, nor do `acceptEnv` and `checkPeriod`.
//!
//! A test with `srcPostureAttrs` is judged against the SSH rules lowered again with those
//! attributes for its source devices (kb/1288), by the same code that compiles them.

use std::net::IpAddr;

use aclc_policy::model::{Alias, Autogroup, Policy, SshTest};
use aclc_policy::Span;

use super::endpoint::{quote, Device, Endpoints, Side};
use super::{Expectation, TestError, TestKind, TestResult, Verdict};
use crate::compiled::Compiled;
use crate::nodes::NodeId;
use crate::posture::gate_of;
use crate::ssh::{NodeSshRule, SshLowered};

/// Run the `sshTests` block.
pub(super) fn run(policy: &Policy, compiled: &Compiled) -> Vec<TestResult> {
    if policy.ssh_tests.is_empty() {
        return Vec::new();
    }
    let rule_spans: Vec<Span> = policy
        .ssh
        .iter()
        .flat_map(|s| s.value.iter().map(|r| r.span))
        .collect();
    let gated = policy
        .ssh
        .iter()
        .flat_map(|s| s.value.iter())
        .any(|r| gate_of(policy, &r.src_posture).is_some());
    let mut runner = Runner {
        policy,
        gated,
        compiled,
        endpoints: Endpoints::new(policy, compiled),
        rule_spans,
        rules: std::collections::HashMap::new(),
        assumed: None,
    };
    let mut out = Vec::new();
    for (i, test) in policy.ssh_tests.iter().enumerate() {
        runner.run_test(i, test, &mut out);
    }
    out
}

struct Runner<'a> {
    policy: &'a Policy,
    /// True when some `ssh` rule has a posture gate.
    gated: bool,
    compiled: &'a Compiled,
    endpoints: Endpoints<'a>,
    /// Span of each `ssh` rule.
    rule_spans: Vec<Span>,
    /// SSH rules of the nodes looked at so far.
    rules: std::collections::HashMap<NodeId, Vec<NodeSshRule>>,
    /// For the current test when it assumes posture attributes: the rules lowered under
    /// them, and the nodes looked at so far.
    assumed: Option<(
        SshLowered,
        std::collections::HashMap<NodeId, Vec<NodeSshRule>>,
    )>,
}

impl Runner<'_> {
    fn run_test(&mut self, index: usize, test: &SshTest, out: &mut Vec<TestResult>) {
        let malformed = |error| TestResult::malformed(TestKind::Ssh, index, test.span, error);
        let src_text = match super::source_text(test.src.as_ref()) {
            Ok(text) => text,
            Err(error) => return out.push(malformed(error)),
        };
        if test.dst.is_empty() {
            out.push(malformed(TestError::NoDestinations));
            return;
        }
        if test.accept.is_empty() && test.check.is_empty() && test.deny.is_empty() {
            out.push(malformed(TestError::NoAssertions));
            return;
        }
        let sources = match self.endpoints.resolve(src_text, Side::Source) {
            Ok(devices) => devices,
            Err(error) => {
                out.push(malformed(error));
                return;
            }
        };
        self.assumed = None;
        if let Some(attrs) = super::network::assumed_attrs(test.src_posture_attrs.as_ref()) {
            if self.gated {
                let mut nodes: Vec<NodeId> = sources.iter().filter_map(|d| d.node).collect();
                nodes.sort_unstable();
                nodes.dedup();
                let lowered = self.compiled.ssh_assuming(self.policy, &nodes, attrs);
                self.assumed = Some((lowered, std::collections::HashMap::new()));
            }
        }
        for dst in &test.dst {
            let dst_text = dst.value.trim();
            let destinations = self.destinations(dst_text, &sources);
            let users = test
                .accept
                .iter()
                .map(|u| (u, Expectation::Allowed))
                .chain(test.check.iter().map(|u| (u, Expectation::AllowedByCheck)))
                .chain(test.deny.iter().map(|u| (u, Expectation::Denied)));
            for (user, expected) in users {
                let login = user.value.as_str();
                let shown = if login.is_empty() {
                    "\"\"".to_string()
                } else {
                    login.to_string()
                };
                let subject = format!("{src_text} -> {dst_text} as {shown}");
                let outcome = match &destinations {
                    Err(error) => Err(error.clone()),
                    Ok(_) if login.is_empty() => Err(TestError::EmptyUser),
                    Ok(nodes) => Ok(self.verdict(&sources, nodes, login, expected)),
                };
                out.push(TestResult::evaluated(
                    TestKind::Ssh,
                    index,
                    user.span,
                    subject,
                    expected,
                    outcome,
                ));
            }
        }
    }

    /// The destination devices of a `dst` entry (nodes only: SSH logins land on devices).
    fn destinations(&mut self, text: &str, sources: &[Device]) -> Result<Vec<NodeId>, TestError> {
        let nodes: Vec<NodeId> = match Alias::parse(text) {
            Ok(Alias::Autogroup(Autogroup::SelfDevices)) => {
                // The source users' own devices.
                let table = self.endpoints.table();
                let mut owners: Vec<crate::nodes::UserId> = sources
                    .iter()
                    .filter_map(|d| table.get(d.node?))
                    .filter(|n| !n.is_tagged())
                    .filter_map(|n| n.owner)
                    .collect();
                owners.sort_unstable();
                owners.dedup();
                owners
                    .iter()
                    .filter_map(|&u| table.devices.get(u.index()))
                    .flatten()
                    .copied()
                    .collect()
            }
            Ok(Alias::Ip(IpAddr::V6(_))) => {
                return Err(TestError::InvalidDestination(format!(
                    "dst {}: SSH tests name devices by IPv4 address, not IPv6",
                    quote(text)
                )))
            }
            _ => self
                .endpoints
                .resolve(text, Side::Destination)?
                .into_iter()
                .filter_map(|d| d.node)
                .collect(),
        };
        if nodes.is_empty() {
            return Err(TestError::NoDestinationDevices(format!(
                "dst {} has no devices",
                quote(text)
            )));
        }
        Ok(nodes)
    }

    /// The verdict over every (source, destination) pair: the first pair that does not meet
    /// the expectation, or (all meeting it) the verdict with every allowing rule.
    fn verdict(
        &mut self,
        sources: &[Device],
        destinations: &[NodeId],
        login: &str,
        expected: Expectation,
    ) -> Verdict {
        let mut combined: Option<Verdict> = None;
        for &dst in destinations {
            for source in sources {
                let verdict = self.login(dst, &source.addrs, login);
                if !verdict.meets(expected) {
                    return verdict;
                }
                combined = Some(match combined {
                    None => verdict,
                    Some(so_far) => merge(so_far, verdict),
                });
            }
        }
        combined.unwrap_or(Verdict::Denied)
    }

    /// How node `dst` answers a login as `login` from a device with `addrs`.
    fn login(&mut self, dst: NodeId, addrs: &[IpAddr], login: &str) -> Verdict {
        let compiled = self.compiled;
        let rules = match &mut self.assumed {
            Some((lowered, rules)) => rules
                .entry(dst)
                .or_insert_with(|| lowered.node_rules(compiled.table(), dst)),
            None => self
                .rules
                .entry(dst)
                .or_insert_with(|| compiled.node_ssh_rules(dst)),
        };
        for rule in rules.iter() {
            let admits_source = rule
                .rule
                .principals
                .iter()
                .any(|p| addrs.iter().any(|&ip| p.admits(ip, Some(login))));
            if !admits_source || local_user(&rule.rule.ssh_users, login).is_none() {
                continue;
            }
            let by = self
                .rule_spans
                .get(rule.policy_index)
                .copied()
                .into_iter()
                .collect();
            // A refusing rule (recording enforced without a recorder) ends the search.
            if rule.rule.action.reject {
                return Verdict::Denied;
            }
            return if rule.rule.action.is_check() {
                Verdict::AllowedByCheck { by }
            } else {
                Verdict::AllowedByAccept { by }
            };
        }
        Verdict::Denied
    }
}

/// The local user a rule's user map gives a login: the exact entry, else `*`; `=` means the
/// same name (never root: that is how `autogroup:nonroot` keeps root out); `""` refuses.
pub(crate) fn local_user(
    users: &std::collections::BTreeMap<String, String>,
    login: &str,
) -> Option<String> {
    let mapped = users.get(login).or_else(|| users.get("*"))?;
    match mapped.as_str() {
        "" => None,
        "=" if login == "root" => None,
        "=" => Some(login.to_string()),
        other => Some(other.to_string()),
    }
}

/// Two allowing verdicts together: a check anywhere does not make the whole a check unless
/// both are; the rules are united.
fn merge(a: Verdict, b: Verdict) -> Verdict {
    let both_check = matches!(
        (&a, &b),
        (
            Verdict::AllowedByCheck { .. },
            Verdict::AllowedByCheck { .. }
        )
    );
    let mut by: Vec<Span> = a.rules().iter().chain(b.rules()).copied().collect();
    by.sort_unstable();
    by.dedup();
    match (a, both_check) {
        (Verdict::Denied, _) => Verdict::Denied,
        (_, true) => Verdict::AllowedByCheck { by },
        (Verdict::Allowed { .. }, false) => Verdict::Allowed { by },
        _ => Verdict::AllowedByAccept { by },
    }
}
