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

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aclc_policy::model::{Alias, Autogroup, Policy, SshTest};
use aclc_policy::Span;

use super::endpoint::{quote, Device, Endpoints, Side};
use super::{Expectation, TestError, TestKind, TestResult, Verdict};
use crate::compiled::Compiled;
use crate::nodes::NodeId;
use crate::posture::gate_of;
use crate::ssh::{NodeSshRule, SshLowered};

/// Run the `sshTests` block.
pub(super) fn run(policy: &Policy, compiled: &Compiled, policy_only: bool) -> Vec<TestResult> {
    if policy.ssh_tests.is_empty() {
        return Vec::new();
    }
    let mut runner = Runner::new(policy, compiled);
    runner.endpoints = Endpoints::new(policy, compiled).policy_only(policy_only);
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
    /// The `ssh` rules as written, by index (their spans; their destinations, for misses).
    written: Vec<&'a aclc_policy::model::SshRule>,
    /// SSH rules of the nodes looked at so far.
    rules: Kinds,
    /// For the current test when it assumes posture attributes: the rules lowered under
    /// them, and the nodes looked at so far.
    assumed: Option<(SshLowered, Kinds)>,
    /// The principal lists read so far.
    admissions: Admissions,
}

/// One node's SSH rules, with the rules that can map each login: those naming it in their
/// user map and those with `*` (entries mapping to "", which refuse, left out). A login is
/// judged from those alone, in rule order, so an assertion costs the rules that could admit
/// its login, not every rule of the node (8,000 SSH tests of a login each against 8,000
/// one-login rules took 36 s).
#[derive(Default)]
struct NodeRules {
    rules: Vec<NodeSshRule>,
    /// Positions in `rules` of the rules naming each login, ascending.
    by_login: std::collections::HashMap<String, Vec<usize>>,
    /// Positions of the rules mapping `*` (every other login), ascending.
    star: Vec<usize>,
    /// A hash of what judging reads of each rule, by the identity of its shared lists: nodes
    /// with equal signatures are compared in full ([`NodeRules::alike`]).
    signature: u64,
}

impl NodeRules {
    fn new(rules: Vec<NodeSshRule>) -> NodeRules {
        let mut by_login: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        let mut star = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            // A refusing rule (recording enforced, no recorder) refuses every login from its
            // principals: the client reads no user map on a reject action (tailssh's
            // `matchRule`), so it is a candidate for every login.
            if rule.rule.action.reject {
                star.push(i);
                continue;
            }
            // A login mapped to "" is refused by the rule, whatever `*` maps (every rule
            // written with `users` refuses `root` so): the rule is no candidate for it.
            for (login, _) in rule.rule.ssh_users.iter().filter(|(_, l)| !l.is_empty()) {
                if login == "*" {
                    star.push(i);
                } else {
                    by_login.entry(login.clone()).or_default().push(i);
                }
            }
        }
        let signature = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for rule in &rules {
                rule.policy_index.hash(&mut h);
                Arc::as_ptr(&rule.rule.principals).cast::<()>().hash(&mut h);
                rule.rule.ssh_users.len().hash(&mut h);
            }
            h.finish()
        };
        NodeRules {
            rules,
            by_login,
            star,
            signature,
        }
    }

    /// True when every login from every source is judged alike by `self` and `other`: the
    /// same rules in the same order, each from the same policy rule, with the same
    /// principals, user map and action (what [`judge`] reads). `autogroup:self` rules,
    /// whose principals are each user's own devices, are alike only on one user's devices.
    fn alike(&self, other: &NodeRules) -> bool {
        self.rules.len() == other.rules.len()
            && self.rules.iter().zip(&other.rules).all(|(a, b)| {
                a.policy_index == b.policy_index
                    && (Arc::ptr_eq(&a.rule.principals, &b.rule.principals)
                        || a.rule.principals == b.rule.principals)
                    && a.rule.ssh_users == b.rule.ssh_users
                    && a.rule.action == b.rule.action
            })
    }

    /// The rules that may map `login`, in rule order (a rule naming neither it nor `*` maps
    /// it to nothing: [`local_user`]).
    fn candidates<'r>(&'r self, login: &str) -> impl Iterator<Item = &'r NodeSshRule> + 'r {
        let named: &[usize] = self.by_login.get(login).map_or(&[], Vec::as_slice);
        super::in_order(named, &self.star).filter_map(|i| self.rules.get(i))
    }
}

/// The principal lists read so far ([`Admitted`]), by list: rules written with the same
/// sources share one list, on every node, so each is read once (read per rule and node, 8,000
/// rules from `autogroup:member` on 20 nodes parsed 30 million addresses). Each entry holds
/// its list, so the address it is known by is not reused while it is here.
#[derive(Default)]
struct Admissions {
    by_list: std::collections::HashMap<usize, (Arc<[crate::wire::SshPrincipal]>, Admitted)>,
}

impl Admissions {
    /// True if `rule` admits a connection from one of `addrs` by `login`, as
    /// [`crate::wire::SshPrincipal::admits`] decides for some principal.
    fn admits(&mut self, rule: &crate::wire::SshRule, addrs: &[IpAddr], login: &str) -> bool {
        let key = Arc::as_ptr(&rule.principals).cast::<()>() as usize;
        let (_, admitted) = self
            .by_list
            .entry(key)
            .or_insert_with(|| (rule.principals.clone(), Admitted::new(rule)));
        admitted.admits(addrs, login)
    }
}

/// Who an SSH rule's principals admit, read once from their text: any device, the sorted
/// addresses, the logins ([`crate::wire::SshPrincipal::admits`] parses an address per call,
/// per principal, per question).
#[derive(Default)]
struct Admitted {
    any: bool,
    ips: Vec<IpAddr>,
    logins: Vec<String>,
}

impl Admitted {
    fn new(rule: &crate::wire::SshRule) -> Admitted {
        let mut admitted = Admitted::default();
        for p in rule.principals.iter() {
            admitted.any |= p.any();
            if let Some(ip) = p.node_ip().and_then(|t| t.parse::<IpAddr>().ok()) {
                admitted.ips.push(ip);
            }
            if let Some(login) = p.user_login() {
                admitted.logins.push(login.to_string());
            }
        }
        admitted.ips.sort_unstable();
        admitted
    }

    fn admits(&self, addrs: &[IpAddr], login: &str) -> bool {
        self.any
            || addrs.iter().any(|a| self.ips.binary_search(a).is_ok())
            || self.logins.iter().any(|l| l == login)
    }
}

impl<'a> Runner<'a> {
    fn new(policy: &'a Policy, compiled: &'a Compiled) -> Runner<'a> {
        let written = policy.ssh.iter().flat_map(|s| s.value.iter()).collect();
        let gated = policy
            .ssh
            .iter()
            .flat_map(|s| s.value.iter())
            .any(|r| gate_of(policy, &r.src_posture).is_some());
        Runner {
            policy,
            gated,
            compiled,
            endpoints: Endpoints::new(policy, compiled),
            written,
            rules: Kinds::default(),
            assumed: None,
            admissions: Admissions::default(),
        }
    }
    fn run_test(&mut self, index: usize, test: &SshTest, out: &mut Vec<TestResult>) {
        let malformed = |error| TestResult::malformed(TestKind::Ssh, index, test.span, error);
        let src_text = match super::source_text(test.src.as_ref()) {
            Ok(text) => text,
            Err(error) => return out.push(malformed(error)),
        };
        // Nothing to assert. Tailscale's documentation asks for a dst; whether Tailscale
        // refuses a test without one is not known (real policies applied through GitOps have
        // them), so the test passes with a warning.
        if test.dst.is_empty() {
            let mut result = malformed(TestError::NoDestinations);
            result.passed = true;
            result.warning = Some(
                "the test has no dst, so it asserts nothing; aclc cannot verify that Tailscale \
                 accepts it"
                    .to_string(),
            );
            out.push(result);
            return;
        }
        if test.accept.is_empty() && test.check.is_empty() && test.deny.is_empty() {
            out.push(malformed(TestError::NoAssertions));
            return;
        }
        let sources = match self.endpoints.resolve(src_text, Side::Source) {
            Ok(devices) => devices,
            // Judging the policy alone, the destinations and users are still checked.
            Err(TestError::NoSourceDevices(_)) if self.endpoints.is_policy_only() => Vec::new(),
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
                self.assumed = Some((lowered, Kinds::default()));
            }
        }
        for dst in &test.dst {
            let dst_text = dst.value.trim();
            let pairs = self.pairs(dst_text, &sources, false);
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
                let outcome = match &pairs {
                    _ if login.is_empty() => Err(TestError::EmptyUser),
                    Err(error) => Err(error.clone()),
                    Ok(pairs) => Ok(self.verdict(pairs, login, expected)),
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

    /// The source and destination devices a `dst` entry pairs, in groups: every source with
    /// every destination device, or, for `autogroup:self`, each source owner's untagged
    /// devices with that owner's devices (a source's "self" is its own user's devices: with
    /// a group of several users as the source, every member was judged against every other
    /// member's devices, so neither `accept` nor `deny` could pass; found by a differential
    /// of SSH answers against the compiled rules).
    fn pairs<'s>(
        &mut self,
        text: &str,
        sources: &'s [Device],
        ipv6: bool,
    ) -> Result<Pairs<'s>, TestError> {
        if !matches!(
            Alias::parse(text),
            Ok(Alias::Autogroup(Autogroup::SelfDevices))
        ) {
            let nodes = self.destinations(text, ipv6)?;
            return Ok(vec![(Cow::Borrowed(sources), nodes)]);
        }
        let table = self.endpoints.table();
        let mut by_owner: std::collections::BTreeMap<crate::nodes::UserId, Vec<Device>> =
            std::collections::BTreeMap::new();
        for device in sources {
            let owner = device
                .node
                .and_then(|id| table.get(id))
                .filter(|n| !n.is_tagged())
                .and_then(|n| n.owner);
            if let Some(owner) = owner {
                by_owner.entry(owner).or_default().push(device.clone());
            }
        }
        let pairs: Pairs<'s> = by_owner
            .into_iter()
            .filter_map(|(owner, sources)| {
                let devices = table.devices.get(owner.index())?;
                (!devices.is_empty()).then(|| (Cow::Owned(sources), devices.to_vec()))
            })
            .collect();
        if pairs.is_empty() {
            return Err(TestError::NoDestinationDevices(format!(
                "dst {} has no devices",
                quote(text)
            )));
        }
        Ok(pairs)
    }

    /// The destination devices of a `dst` entry other than `autogroup:self` (nodes only: SSH
    /// logins land on devices). An IPv6 address is refused for a test (`sshTests` name
    /// devices by IPv4 address; Tailscale refuses IPv6 there), not for a question (`ipv6`),
    /// where it names its device as well.
    fn destinations(&mut self, text: &str, ipv6: bool) -> Result<Vec<NodeId>, TestError> {
        let nodes: Vec<NodeId> = match Alias::parse(text) {
            Ok(Alias::Ip(IpAddr::V6(_))) if !ipv6 => {
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

    /// The verdict over every (source, destination) pair of every group of [`Runner::pairs`]:
    /// the first pair that does not meet the expectation, or (all meeting it) the verdict
    /// with every allowing rule. Destinations whose SSH rules are alike
    /// ([`NodeRules::alike`]) answer every source alike, so each kind is judged once per
    /// group: O(sources x kinds of destination), where every pair cost O(sources x
    /// destinations) (one test from 8,000 devices to 4,000 took 1.5 s, at twice that 6 s).
    fn verdict(&mut self, pairs: &Pairs<'_>, login: &str, expected: Expectation) -> Verdict {
        let mut combined: Option<Verdict> = None;
        for (sources, destinations) in pairs {
            for dst in self.kinds(destinations) {
                for source in sources.iter() {
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
        }
        combined.unwrap_or(Verdict::Denied)
    }

    /// One device of each kind among `destinations` (devices whose SSH rules are alike, which
    /// answer every login from every source alike), the first of its kind, in their order.
    fn kinds(&mut self, destinations: &[NodeId]) -> Vec<NodeId> {
        let mut seen = std::collections::HashSet::new();
        let mut first = Vec::new();
        for &dst in destinations {
            if seen.insert(self.kind(dst)) {
                first.push(dst);
            }
        }
        first
    }

    /// The first node of `dst`'s kind ([`Kinds::kind`]), under the test's assumed posture
    /// attributes when it gives them.
    fn kind(&mut self, dst: NodeId) -> NodeId {
        let compiled = self.compiled;
        match &mut self.assumed {
            Some((lowered, kinds)) => kinds.kind(dst, || lowered.node_rules(compiled.table(), dst)),
            None => self.rules.kind(dst, || compiled.node_ssh_rules(dst)),
        }
    }

    /// The SSH rules of node `dst` (lowered under the test's assumed posture attributes, when
    /// it gives them), when [`Runner::kinds`] has looked at it.
    fn known_rules(&self, dst: NodeId) -> Option<&NodeRules> {
        current(&self.assumed, &self.rules).rules_of(dst)
    }

    /// How node `dst` answers a login as `login` from a device with `addrs`.
    fn login(&mut self, dst: NodeId, addrs: &[IpAddr], login: &str) -> Verdict {
        self.kind(dst);
        // The fields, not `known_rules`: `judge` takes the admissions mutably beside them.
        let Some(rules) = current(&self.assumed, &self.rules).rules_of(dst) else {
            return Verdict::Denied;
        };
        let span = |policy_index: usize| -> Vec<Span> {
            self.written
                .get(policy_index)
                .map(|r| r.span)
                .into_iter()
                .collect()
        };
        match judge(rules, &mut self.admissions, addrs, login) {
            Judged::Denied | Judged::Refused(_) => Verdict::Denied,
            Judged::Check(rule) => Verdict::AllowedByCheck {
                by: span(rule.policy_index),
            },
            Judged::Accept(rule) => Verdict::AllowedByAccept {
                by: span(rule.policy_index),
            },
        }
    }
}

/// Groups of source devices, each with the destination devices it is judged against
/// ([`Runner::pairs`]): the test's own sources, borrowed, unless the destination is
/// `autogroup:self`.
type Pairs<'s> = Vec<(Cow<'s, [Device]>, Vec<NodeId>)>;

/// The kinds the current test reads: those lowered under its assumed posture attributes, when
/// it gives them, else the compile's.
fn current<'k>(assumed: &'k Option<(SshLowered, Kinds)>, rules: &'k Kinds) -> &'k Kinds {
    match assumed {
        Some((_, kinds)) => kinds,
        None => rules,
    }
}

/// The SSH rules of the nodes looked at, one copy per kind: a node whose rules are alike
/// ([`NodeRules::alike`]) to an earlier node's shares that node's, so the memory is O(kinds x
/// rules), not O(nodes x rules) (one test over 4,000 devices under 4,000 rules held 3.9 GB
/// and aborted).
#[derive(Default)]
struct Kinds {
    /// The rules of the first node of each kind.
    rules: std::collections::HashMap<NodeId, NodeRules>,
    /// Each node looked at, with the first node of its kind.
    kind_of: std::collections::HashMap<NodeId, NodeId>,
    /// The first nodes of the kinds, by [`NodeRules::signature`].
    by_signature: std::collections::HashMap<u64, Vec<NodeId>>,
}

impl Kinds {
    /// The first node of `dst`'s kind, its rules made by `make` on the first look (and kept
    /// only when they are of a new kind).
    fn kind(&mut self, dst: NodeId, make: impl FnOnce() -> Vec<NodeSshRule>) -> NodeId {
        if let Some(&kind) = self.kind_of.get(&dst) {
            return kind;
        }
        let made = NodeRules::new(make());
        let firsts = self.by_signature.entry(made.signature).or_default();
        let kind = firsts
            .iter()
            .copied()
            .find(|first| self.rules.get(first).is_some_and(|r| r.alike(&made)));
        let kind = match kind {
            Some(kind) => kind,
            None => {
                firsts.push(dst);
                self.rules.insert(dst, made);
                dst
            }
        };
        self.kind_of.insert(dst, kind);
        kind
    }

    /// The rules of `dst`'s kind, once [`Kinds::kind`] has looked at it.
    fn rules_of(&self, dst: NodeId) -> Option<&NodeRules> {
        self.rules.get(self.kind_of.get(&dst)?)
    }
}

/// How a node answers a login (the loop [`Runner::login`] runs): the first rule that admits
/// the source and takes the login decides.
#[derive(Debug)]
enum Judged<'r> {
    /// No rule takes the login from the source.
    Denied,
    /// A refusing rule does (which one is read by test vectors only).
    Refused(#[cfg_attr(not(test), allow(dead_code))] &'r NodeSshRule),
    Check(&'r NodeSshRule),
    Accept(&'r NodeSshRule),
}

fn judge<'r>(
    rules: &'r NodeRules,
    admissions: &mut Admissions,
    addrs: &[IpAddr],
    login: &str,
) -> Judged<'r> {
    let login = ssh_user(login);
    for rule in rules.candidates(login) {
        if !maps_login(&rule.rule, login) || !admissions.admits(&rule.rule, addrs, login) {
            continue;
        }
        // A refusing rule (recording enforced without a recorder) ends the search.
        if rule.rule.action.reject {
            return Judged::Refused(rule);
        }
        return if rule.rule.action.is_check() {
            Judged::Check(rule)
        } else if rule.rule.action.accept {
            Judged::Accept(rule)
        } else {
            // Neither accept, reject nor check: the node stops there and refuses ("a nil or
            // invalid action means to deny", `tailcfg.SSHRule`; tailssh's `TestMatchRule`).
            Judged::Refused(rule)
        };
    }
    Judged::Denied
}

/// The local user a node's SSH server looks up for a requested login: the login without a
/// `+password` suffix (tailssh strips it before the policy is read: `ssh root+password@host`
/// asks for root with a password prompt; tailssh's `TestSSHAuthFlow/force-password-auth`).
pub(crate) fn ssh_user(login: &str) -> &str {
    login.strip_suffix("+password").unwrap_or(login)
}

/// What [`judge`] answers for a node given `rules` (wire SSH rules, in order) when a device
/// with `addrs` logs in as `login`: `None` when no rule takes it, else the deciding rule's
/// kind (`"refused"`, `"check"`, `"accept"`) and position (for test vectors:
/// `tailssh_vectors`).
#[cfg(test)]
pub(crate) fn judge_wire(
    rules: &[crate::wire::SshRule],
    addrs: &[IpAddr],
    login: &str,
) -> Option<(&'static str, usize)> {
    let rules = NodeRules::new(
        rules
            .iter()
            .enumerate()
            .map(|(i, rule)| NodeSshRule {
                policy_index: i,
                check_first: rule.action.is_check(),
                rule: rule.clone(),
            })
            .collect(),
    );
    let mut admissions = Admissions::default();
    match judge(&rules, &mut admissions, addrs, login) {
        Judged::Denied => None,
        Judged::Refused(rule) => Some(("refused", rule.policy_index)),
        Judged::Check(rule) => Some(("check", rule.policy_index)),
        Judged::Accept(rule) => Some(("accept", rule.policy_index)),
    }
}

/// Whether `rule` takes a login as `login` (what tailssh's `matchRule` checks beside the
/// principals): a refusing rule takes every login (the client reads no user map on a reject
/// action), any other rule the logins its user map gives a local user.
pub(crate) fn maps_login(rule: &crate::wire::SshRule, login: &str) -> bool {
    rule.action.reject || local_user(&rule.ssh_users, login).is_some()
}

/// The local user a rule's user map gives a login: the exact entry, else `*`; `=` means the
/// same name (root too, as tailssh's `mapLocalUser` reads it: `autogroup:nonroot` keeps root
/// out by the `"root": ""` entry every compiled map has); `""` refuses.
pub(crate) fn local_user(
    users: &std::collections::BTreeMap<String, String>,
    login: &str,
) -> Option<String> {
    let mapped = users.get(login).or_else(|| users.get("*"))?;
    match mapped.as_str() {
        "" => None,
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

/// `aclc explain --ssh`: the login judged by [`Runner::verdict`] (as an `accept` assertion:
/// every source device to every destination device it pairs with); on a denial, the near
/// misses are the first refusing destination's SSH rules that admit the source but not the
/// login, or the login but not the source.
pub(super) fn explain(
    policy: &Policy,
    compiled: &Compiled,
    src: &str,
    dst: &str,
    login: &str,
) -> Result<super::explain::Explanation, TestError> {
    use super::explain::{resolve_named, Explanation, Miss};
    if login.is_empty() {
        return Err(TestError::EmptyUser);
    }
    // In a rule's user map `*` is every other user and `=` the login's own name: asked as a
    // local user, either would read as an answer about every account.
    if login == "*" || login == "=" {
        return Err(TestError::PatternUser(login.to_string()));
    }
    let mut runner = Runner::new(policy, compiled);
    let sources = resolve_named(&mut runner.endpoints, src, Side::Source)?;
    let pairs = match runner.pairs(dst, &sources, true) {
        Ok(pairs) => pairs,
        Err(error) => match runner.endpoints.table().id(dst) {
            Some(id) => vec![(Cow::Borrowed(&sources[..]), vec![id])],
            None => return Err(error),
        },
    };
    let verdict = runner.verdict(&pairs, login, Expectation::Allowed);
    if verdict.is_allowed() {
        // Every pair is allowed; a check from some source devices and an accept from others
        // is said as such (the combined verdict counts it as an accept, as `sshTests` do).
        let (mut checks, mut accepts) = (0usize, 0usize);
        for (sources, destinations) in &pairs {
            for node in runner.kinds(destinations) {
                for source in sources.iter() {
                    match runner.login(node, &source.addrs, login) {
                        Verdict::AllowedByCheck { .. } => checks += 1,
                        _ => accepts += 1,
                    }
                }
            }
        }
        let how = match (checks, accepts) {
            (0, _) => "by an accept rule",
            (_, 0) => "by a check rule (the login needs a recent check)",
            _ => "by a check rule for some of the source and destination devices (those logins need a recent check) and an accept rule for the rest",
        };
        return Ok(Explanation {
            reason: format!("{src} may log in to {dst} as {login} {how}"),
            verdict,
            misses: Vec::new(),
            also: Vec::new(),
            notes: Vec::new(),
        });
    }
    // The first refused (destination, source) pair (the first device of a kind is the first
    // to refuse what its kind refuses).
    let mut refused = None;
    'pairs: for (sources, destinations) in &pairs {
        for node in runner.kinds(destinations) {
            for source in sources.iter() {
                if !runner.login(node, &source.addrs, login).is_allowed() {
                    refused = Some((node, source.addrs.clone()));
                    break 'pairs;
                }
            }
        }
    }
    let mut misses: Vec<Miss> = Vec::new();
    let mut reason = format!("no ssh rule lets {src} log in to {dst} as {login}");
    if let Some((node, addrs)) = refused {
        let name = runner
            .endpoints
            .table()
            .get(node)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        reason = format!("no ssh rule of {name} lets {src} log in as {login}");
        let rules = runner
            .known_rules(node)
            .map(|r| r.rules.clone())
            .unwrap_or_default();
        for rule in &rules {
            let Some(&written) = runner.written.get(rule.policy_index) else {
                continue;
            };
            let span = written.span;
            let admits_source = rule
                .rule
                .principals
                .iter()
                .any(|p| addrs.iter().any(|&ip| p.admits(ip, Some(login))));
            // The account the server looks up: `root+password` is root.
            let maps = maps_login(&rule.rule, ssh_user(login));
            let why = match (admits_source, maps) {
                (true, false) => {
                    let users: Vec<&str> = rule
                        .rule
                        .ssh_users
                        .iter()
                        .filter(|(_, local)| !local.is_empty())
                        // `*` to `=` is how `autogroup:nonroot` compiles: say it as written.
                        .map(|(login, local)| match (login.as_str(), local.as_str()) {
                            ("*", "=") => "autogroup:nonroot (any user but root)",
                            (login, _) => login,
                        })
                        .collect();
                    format!(
                        "the rule does not let {} log in as {} (its users: {})",
                        quote(src),
                        quote(login),
                        users.join(", ")
                    )
                }
                // A miss on a rule admitting sources only to their own user's devices may be
                // another user's device, not a source outside the rule.
                (false, true) => match written
                    .dst
                    .iter()
                    .find(|d| crate::ssh::own_devices_only(&d.alias))
                    .map(|d| &d.text)
                {
                    Some(dst) => format!(
                        "src {} is not in the rule's src, fails its posture gate, or is not a device of {name}'s user ({} admits each user only to their own devices)",
                        quote(src),
                        quote(dst)
                    ),
                    None => format!(
                        "src {} is not in the rule's src (or fails its posture gate)",
                        quote(src)
                    ),
                },
                (true, true) if rule.rule.action.reject => {
                    "the rule refuses every login from its sources (session recording enforced, no device carries a recorder tag; a node reads no user map on a refusing rule)"
                        .to_string()
                }
                _ => continue,
            };
            if !misses.iter().any(|m| m.span == span && m.why == why) {
                misses.push(Miss { span, why });
            }
        }
    }
    misses.sort_by_key(|m| m.span);
    Ok(Explanation {
        verdict,
        reason,
        misses,
        also: Vec::new(),
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn rule(users: serde_json::Value) -> NodeSshRule {
        let rule = serde_json::from_value(serde_json::json!({
            "principals": [],
            "sshUsers": users,
            "action": {"accept": true},
        }))
        .unwrap();
        NodeSshRule {
            policy_index: 0,
            check_first: false,
            rule,
        }
    }

    /// The candidates of a login are the rules naming it and the rules with `*`, merged in
    /// rule order (a rule naming both once), and no other rule: the first of them that
    /// admits the login is the first rule of the node that does.
    #[test]
    fn candidates_are_the_rules_that_may_map_a_login_in_order() {
        let rules = NodeRules::new(vec![
            rule(serde_json::json!({"*": "="})),
            rule(serde_json::json!({"alice": "alice"})),
            rule(serde_json::json!({"*": "x", "bob": "bob"})),
            rule(serde_json::json!({"carol": ""})),
            rule(serde_json::json!({"alice": "root", "*": "="})),
        ]);
        let order = |login: &str| -> Vec<usize> {
            rules
                .candidates(login)
                .map(|c| rules.rules.iter().position(|r| std::ptr::eq(r, c)).unwrap())
                .collect()
        };
        assert_eq!(order("alice"), [0, 1, 2, 4]);
        assert_eq!(order("bob"), [0, 2, 4]);
        assert_eq!(order("carol"), [0, 2, 4]);
        assert_eq!(order("dave"), [0, 2, 4]);
        // Against the plain scan: the rules local_user maps the login with are among them.
        for login in ["alice", "bob", "carol", "dave", "root"] {
            let mapped: Vec<usize> = (0..rules.rules.len())
                .filter(|&i| local_user(&rules.rules[i].rule.ssh_users, login).is_some())
                .collect();
            assert!(mapped.iter().all(|i| order(login).contains(i)), "{login}");
        }
    }
}
