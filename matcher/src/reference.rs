//! The reference matcher: the client's filter transcribed as plainly as possible.
//!
//! Each function follows its Go original in `wgengine/filter` (`New`, `matchesFamily`,
//! `capMatchesFunc`, `runIn4`/`runIn6`, `match`, `matchIPsOnly`,
//! `matchProtoAndIPsOnlyIfAllPorts`, `CapsWithValues`): lists scanned in order, first hit
//! wins. It is slow on purpose; the fast [`super::Matcher`] must give the same verdicts.

use std::net::IpAddr;

use super::parse::{CapEntry, DstRange, ParsedRules, Rule};
use super::{
    path, pre_check, Addr, Allow, AppCapabilities, CapabilityLookup, FilterProblem, Flow,
    FlowFilter, LocalNetworks, MatcherError, Net, Path, Refusal, RuleMatch, Verdict,
};

/// The reference matcher: a linear scan over the rules, with the same API as
/// [`super::Matcher`].
#[derive(Debug, Clone)]
pub struct ReferenceMatcher {
    matches4: Vec<Match>,
    matches6: Vec<Match>,
    caps4: Vec<CapMatch>,
    caps6: Vec<CapMatch>,
    local: Vec<Net>,
    rule_count: usize,
    problems: Vec<FilterProblem>,
}

/// A rule restricted to one family (`filtertype.Match` after `matchesFamily`).
#[derive(Debug, Clone)]
struct Match {
    rule: usize,
    protos: Vec<u8>,
    srcs: Vec<Net>,
    src_caps: Vec<Box<str>>,
    dsts: Vec<DstRange>,
}

/// A rule's grants with its sources of one family (after `capMatchesFunc`).
#[derive(Debug, Clone)]
struct CapMatch {
    srcs: Vec<Net>,
    caps: Vec<CapEntry>,
}

impl ReferenceMatcher {
    /// Builds the matcher for a node's rules and local networks.
    pub fn new(rules: &ParsedRules, local: &LocalNetworks) -> ReferenceMatcher {
        let mut nets: Vec<Net> = local
            .addresses
            .iter()
            .map(|&ip| {
                let a = Addr::from(ip);
                Net {
                    v6: a.v6,
                    lo: a.bits,
                    hi: a.bits,
                }
            })
            .collect();
        nets.extend(local.routes.iter().map(Net::from_ipnet));
        ReferenceMatcher {
            matches4: matches_family(&rules.rules, false),
            matches6: matches_family(&rules.rules, true),
            caps4: cap_matches(&rules.rules, false),
            caps6: cap_matches(&rules.rules, true),
            local: nets,
            rule_count: rules.rules.len(),
            problems: rules.problems.clone(),
        }
    }

    /// Reads the rules from JSON and builds the matcher; see [`ParsedRules::from_json`].
    pub fn from_json(json: &str, local: &LocalNetworks) -> Result<ReferenceMatcher, MatcherError> {
        Ok(ReferenceMatcher::new(&ParsedRules::from_json(json)?, local))
    }

    /// Verdict for a flow, with no source holding any capability.
    pub fn check(&self, flow: &Flow) -> Verdict {
        self.check_with(flow, &super::NoCapabilities)
    }

    /// Verdict for a flow, with `cap:` sources resolved through `capabilities` (`RunIn`).
    pub fn check_with<C: CapabilityLookup + ?Sized>(
        &self,
        flow: &Flow,
        capabilities: &C,
    ) -> Verdict {
        if let Some(refusal) = pre_check(flow) {
            return Verdict::Refuse(refusal);
        }
        let (src, dst) = (Addr::from(flow.src), Addr::from(flow.dst));
        let matches = if src.v6 {
            &self.matches6
        } else {
            &self.matches4
        };
        if !self.local.iter().any(|net| net.contains(dst)) {
            return Verdict::Refuse(Refusal::NotLocal);
        }
        let found = match path(flow) {
            Path::Stateless(allow) => return Verdict::Allow(allow),
            Path::Full => full_match(matches, flow, src, dst, capabilities),
            Path::Icmp => match_ips_only(matches, flow.src, src, dst, capabilities),
            Path::Other => match_all_ports(matches, flow.proto, src, dst),
        };
        match found {
            Some((rule, how)) => Verdict::Allow(Allow::Rule { rule, how }),
            None => Verdict::Refuse(Refusal::NoRule),
        }
    }

    /// The application capabilities `src` holds towards `dst` (`CapsWithValues`).
    pub fn app_capabilities(&self, src: IpAddr, dst: IpAddr) -> AppCapabilities {
        let mut out = AppCapabilities::new();
        for entry in self.grants(src, dst) {
            out.entry(entry.cap.to_string())
                .or_default()
                .extend(entry.values.iter().cloned());
        }
        out
    }

    /// Whether `src` holds application capability `capability` towards `dst`.
    pub fn has_app_capability(&self, src: IpAddr, dst: IpAddr, capability: &str) -> bool {
        self.grants(src, dst).any(|entry| &*entry.cap == capability)
    }

    fn grants(&self, src: IpAddr, dst: IpAddr) -> impl Iterator<Item = &CapEntry> + '_ {
        let (src, dst) = (Addr::from(src), Addr::from(dst));
        let caps = if src.v6 { &self.caps6 } else { &self.caps4 };
        caps.iter()
            .filter(move |m| m.srcs.iter().any(|net| net.contains(src)))
            .flat_map(|m| m.caps.iter())
            .filter(move |entry| !entry.cap.is_empty() && entry.dst.contains(dst))
    }

    /// The entries skipped while reading the rules.
    pub fn problems(&self) -> &[FilterProblem] {
        &self.problems
    }

    /// The number of rules.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }
}

/// `matchesFamily`: keep same-family sources and destinations; drop rules left without a
/// source (address or capability) or without a destination.
fn matches_family(rules: &[Rule], v6: bool) -> Vec<Match> {
    let mut out = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let m = Match {
            rule: index,
            protos: rule.protos.clone(),
            srcs: rule.srcs.iter().copied().filter(|n| n.v6 == v6).collect(),
            src_caps: rule.src_caps.clone(),
            dsts: rule
                .dsts
                .iter()
                .copied()
                .filter(|d| d.net.v6 == v6)
                .collect(),
        };
        if (!m.srcs.is_empty() || !m.src_caps.is_empty()) && !m.dsts.is_empty() {
            out.push(m);
        }
    }
    out
}

/// `capMatchesFunc`: rules with grants, with their same-family sources (at least one).
fn cap_matches(rules: &[Rule], v6: bool) -> Vec<CapMatch> {
    let mut out = Vec::new();
    for rule in rules {
        if rule.caps.is_empty() {
            continue;
        }
        let srcs: Vec<Net> = rule.srcs.iter().copied().filter(|n| n.v6 == v6).collect();
        if !srcs.is_empty() {
            out.push(CapMatch {
                srcs,
                caps: rule.caps.clone(),
            });
        }
    }
    out
}

/// `srcMatches`: by address, else by a held capability.
fn src_matches<C: CapabilityLookup + ?Sized>(
    m: &Match,
    ip: IpAddr,
    src: Addr,
    capabilities: &C,
) -> Option<RuleMatch> {
    if m.srcs.iter().any(|net| net.contains(src)) {
        return Some(RuleMatch::Address);
    }
    if m.src_caps
        .iter()
        .any(|cap| capabilities.has_capability(ip, cap))
    {
        return Some(RuleMatch::Capability);
    }
    None
}

/// `match`: protocol, source, and a destination with the port.
fn full_match<C: CapabilityLookup + ?Sized>(
    matches: &[Match],
    flow: &Flow,
    src: Addr,
    dst: Addr,
    capabilities: &C,
) -> Option<(usize, RuleMatch)> {
    for m in matches {
        if !m.protos.contains(&flow.proto) {
            continue;
        }
        let Some(how) = src_matches(m, flow.src, src, capabilities) else {
            continue;
        };
        for d in &m.dsts {
            if d.net.contains(dst) && d.first <= flow.dst_port && flow.dst_port <= d.last {
                return Some((m.rule, how));
            }
        }
    }
    None
}

/// `matchIPsOnly`: the source by address and any destination containing the address; then,
/// failing that, any held capability of any rule of the family.
fn match_ips_only<C: CapabilityLookup + ?Sized>(
    matches: &[Match],
    ip: IpAddr,
    src: Addr,
    dst: Addr,
    capabilities: &C,
) -> Option<(usize, RuleMatch)> {
    for m in matches {
        if !m.srcs.iter().any(|net| net.contains(src)) {
            continue;
        }
        if m.dsts.iter().any(|d| d.net.contains(dst)) {
            return Some((m.rule, RuleMatch::IcmpAnyPort));
        }
    }
    for m in matches {
        if m.src_caps
            .iter()
            .any(|cap| capabilities.has_capability(ip, cap))
        {
            return Some((m.rule, RuleMatch::IcmpCapability));
        }
    }
    None
}

/// `matchProtoAndIPsOnlyIfAllPorts`: protocol, source by address, and a destination with
/// exactly all ports.
fn match_all_ports(
    matches: &[Match],
    proto: u8,
    src: Addr,
    dst: Addr,
) -> Option<(usize, RuleMatch)> {
    for m in matches {
        if !m.protos.contains(&proto) {
            continue;
        }
        if !m.srcs.iter().any(|net| net.contains(src)) {
            continue;
        }
        for d in &m.dsts {
            if !d.all_ports() {
                continue;
            }
            if d.net.contains(dst) {
                return Some((m.rule, RuleMatch::AllPorts));
            }
        }
    }
    None
}

impl FlowFilter for ReferenceMatcher {
    fn check_with<C: CapabilityLookup + ?Sized>(&self, flow: &Flow, capabilities: &C) -> Verdict {
        ReferenceMatcher::check_with(self, flow, capabilities)
    }

    fn app_capabilities(&self, src: IpAddr, dst: IpAddr) -> AppCapabilities {
        ReferenceMatcher::app_capabilities(self, src, dst)
    }

    fn has_app_capability(&self, src: IpAddr, dst: IpAddr, capability: &str) -> bool {
        ReferenceMatcher::has_app_capability(self, src, dst, capability)
    }

    fn problems(&self) -> &[FilterProblem] {
        ReferenceMatcher::problems(self)
    }

    fn rule_count(&self) -> usize {
        ReferenceMatcher::rule_count(self)
    }
}
