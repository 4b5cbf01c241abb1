//! Validation of the definition sections: `groups`, `tagOwners`, `postures`,
//! `defaultSrcPosture`, `ipsets` (with their cycles, found in one pass), `autoApprovers` and
//! `attrConfig`. References from the rules are checked by the parent module's `reference`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{quote, Place, Validator};
use crate::code::Code;
use crate::diag::Diagnostic;
use crate::model::{Alias, Autogroup};
use crate::source::Span;

/// Tarjan's bookkeeping for one name.
#[derive(Clone, Copy, Default)]
struct Visit {
    /// Discovery order, once visited.
    order: Option<usize>,
    /// Lowest discovery order reachable through the name's subtree and back edges.
    low: usize,
    on_stack: bool,
}

/// The names that lie on a cycle of the "includes" edges: those in a strongly connected
/// component of more than one name, or with an edge to themselves. Tarjan's algorithm with an
/// explicit stack (no recursion on input), linear in names and edges.
fn on_cycles<'a>(edges: &BTreeMap<&'a str, Vec<(&'a str, Span)>>) -> HashSet<&'a str> {
    let mut ids: HashMap<&'a str, usize> = HashMap::new();
    let mut names: Vec<&'a str> = Vec::new();
    let mut id_of = |name: &'a str, names: &mut Vec<&'a str>| {
        *ids.entry(name).or_insert_with(|| {
            names.push(name);
            names.len() - 1
        })
    };
    let mut adjacency: Vec<Vec<usize>> = Vec::new();
    for (from, tos) in edges {
        let from = id_of(from, &mut names);
        let tos: Vec<usize> = tos.iter().map(|(to, _)| id_of(to, &mut names)).collect();
        adjacency.resize(names.len(), Vec::new());
        if let Some(list) = adjacency.get_mut(from) {
            list.extend(tos);
        }
    }
    adjacency.resize(names.len(), Vec::new());
    let successors = |v: usize| adjacency.get(v).map_or(&[][..], Vec::as_slice);
    let mut visits = vec![Visit::default(); names.len()];
    let mut counter = 0;
    let mut stack: Vec<usize> = Vec::new();
    let mut out = HashSet::new();
    let mut discover = |v: usize, visits: &mut [Visit], stack: &mut Vec<usize>| {
        if let Some(visit) = visits.get_mut(v) {
            *visit = Visit {
                order: Some(counter),
                low: counter,
                on_stack: true,
            };
        }
        counter += 1;
        stack.push(v);
    };
    for root in 0..names.len() {
        if visits.get(root).is_some_and(|v| v.order.is_some()) {
            continue;
        }
        discover(root, &mut visits, &mut stack);
        // (name, position of the next successor to look at)
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some((v, pos)) = calls.last_mut() {
            let v = *v;
            if let Some(&w) = successors(v).get(*pos) {
                *pos += 1;
                let Some(&seen) = visits.get(w) else { continue };
                match seen.order {
                    None => {
                        discover(w, &mut visits, &mut stack);
                        calls.push((w, 0));
                    }
                    Some(order) if seen.on_stack => {
                        if let Some(visit) = visits.get_mut(v) {
                            visit.low = visit.low.min(order);
                        }
                    }
                    Some(_) => {}
                }
                continue;
            }
            calls.pop();
            let Some(&Visit { order, low, .. }) = visits.get(v) else {
                continue;
            };
            if let Some(parent) = calls.last().and_then(|&(p, _)| visits.get_mut(p)) {
                parent.low = parent.low.min(low);
            }
            if order != Some(low) {
                continue;
            }
            // `v` roots a component: everything above it on the stack.
            let mut component = Vec::new();
            while let Some(w) = stack.pop() {
                if let Some(visit) = visits.get_mut(w) {
                    visit.on_stack = false;
                }
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 || successors(v).contains(&v) {
                out.extend(component.into_iter().filter_map(|w| names.get(w).copied()));
            }
        }
    }
    out
}

/// What `CheckTag` in Tailscale says about a tag name, if anything is wrong.
pub(crate) fn tag_name_problem(tag: &str) -> Option<&'static str> {
    let Some(name) = tag.strip_prefix("tag:") else {
        return Some("tags must start with 'tag:'");
    };
    let Some(first) = name.bytes().next() else {
        return Some("tag names must not be empty");
    };
    if !first.is_ascii_alphabetic() {
        return Some("tag names must start with a letter, after 'tag:'");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Some("tag names can only contain numbers, letters, or dashes");
    }
    None
}

impl Validator<'_> {
    /// Checks on the definition sections.
    pub(super) fn definitions(&mut self) {
        let policy = self.policy;
        for group in &policy.groups {
            let name = &group.name.value;
            if !name.starts_with("group:") || name.len() == "group:".len() {
                self.error(
                    Code::InvalidGroupName,
                    group.name.span,
                    format!(
                        "groups[{}]: group names must start with 'group:'",
                        quote(name)
                    ),
                    &if name == "group:" {
                        "add a name after 'group:', e.g. \"group:eng\"".to_string()
                    } else {
                        format!("rename it to {}", quote(&format!("group:{name}")))
                    },
                );
            }
            for member in &group.members {
                let m = member.value.as_str();
                if m.starts_with("group:") {
                    self.used.insert(m.to_string());
                    let d = Diagnostic::error(
                        Code::RecursiveGroup,
                        member.span,
                        format!(
                            "groups[{}]: {}: group members cannot be recursive",
                            quote(name),
                            quote(m)
                        ),
                    )
                    .with_label("a group inside a group")
                    .with_help(format!(
                        "list the members of {} here instead: groups cannot contain groups",
                        quote(m)
                    ));
                    self.push(d);
                } else if m.is_empty()
                    || m == "*"
                    || m.starts_with("tag:")
                    || m.starts_with("autogroup:")
                {
                    self.error(
                        Code::InvalidGroupMember,
                        member.span,
                        format!(
                            "groups[{}]: {}: group members must be users",
                            quote(name),
                            quote(m)
                        ),
                        "a group lists user logins such as \"alice@example.com\"",
                    );
                } else if let Some(domain) =
                    m.strip_prefix("user:").and_then(|r| r.strip_prefix("*@"))
                {
                    self.domain(domain, member.span, Place::Approver);
                } else if !m.contains('@') {
                    self.warning(
                        Code::BareGroupMember,
                        member.span,
                        format!(
                            "groups[{}]: {} is not a login: aclc cannot verify that Tailscale \
                             accepts it",
                            quote(name),
                            quote(m)
                        ),
                        &match names_addresses_or_more(m) {
                            true => format!(
                                "a group lists user logins, and {} is not one: name it in the rules' src or dst instead",
                                quote(m)
                            ),
                            false => format!(
                                "users are named by login: {} (or {} on a self-hosted server)",
                                quote(&format!("{m}@example.com")),
                                quote(&format!("{m}@"))
                            ),
                        },
                    );
                } else {
                    self.known_user(m, member.span);
                }
            }
        }
        for owner in &policy.tag_owners {
            let tag = owner.tag.value.as_str();
            if let Some(problem) = tag_name_problem(tag) {
                self.error(
                    Code::InvalidTagName,
                    owner.tag.span,
                    format!("tagOwners[{}]: {problem}", quote(tag)),
                    "tag names are `tag:` followed by an ASCII letter, then letters, digits or dashes",
                );
            }
            for sel in &owner.owners {
                if may_own_or_approve(&sel.alias) {
                    self.reference(sel, Place::Owner { tag });
                } else {
                    self.error(
                        Code::InvalidTagOwner,
                        sel.span,
                        format!(
                            "tagOwners[{}]: {} cannot own a tag",
                            quote(tag),
                            quote(&sel.text)
                        ),
                        "tag owners are users, groups, tags or autogroups such as autogroup:admin",
                    );
                }
            }
        }
        for posture in &policy.postures {
            if !posture.name.value.starts_with("posture:") {
                self.error(
                    Code::InvalidPostureName,
                    posture.name.span,
                    format!(
                        "postures[{}]: posture names must start with 'posture:'",
                        quote(&posture.name.value)
                    ),
                    "",
                );
            }
        }
        for name in &policy.default_src_posture {
            self.posture_ref(name);
        }
        self.ipsets();
        self.auto_approvers();
        self.attr_config();
        self.external_tailnets();
    }

    /// `attrConfig`: custom attributes (`custom:` names), and who receives their values.
    /// `externalTailnets`: what each may reference here counts as a use of it.
    fn external_tailnets(&mut self) {
        for def in &self.policy.external_tailnets {
            for sel in &def.allow_external_references_to {
                self.mark_used(sel);
            }
        }
    }

    fn attr_config(&mut self) {
        for def in &self.policy.attr_config {
            let name = def.name.value.as_str();
            let custom = name
                .strip_prefix("custom:")
                .is_some_and(|rest| !rest.is_empty());
            if !custom {
                self.warning(
                    Code::AttrConfigNotCustom,
                    def.name.span,
                    format!(
                        "attrConfig[{}]: attrConfig configures custom attributes (custom:name); aclc cannot verify this one",
                        quote(name)
                    ),
                    &format!("rename it to {}", quote(&format!("custom:{}", name.rsplit(':').next().unwrap_or(name)))),
                );
            }
            for sel in &def.broadcast_to_peers {
                match &sel.alias {
                    Alias::Autogroup(
                        a @ (Autogroup::SelfDevices | Autogroup::Internet | Autogroup::Nonroot | Autogroup::DangerAll),
                    ) => self.error(
                        Code::InvalidBroadcastTarget,
                        sel.span,
                        format!("attrConfig[{}]: {a} cannot receive attribute values", quote(name)),
                        "name the receiving devices with tags, users, groups or autogroups such as autogroup:member",
                    ),
                    _ => self.reference(sel, Place::Target),
                }
            }
        }
    }

    /// `ipsets`: names, allowed entries, no cycles.
    fn ipsets(&mut self) {
        let policy = self.policy;
        let mut edges: BTreeMap<&str, Vec<(&str, Span)>> = BTreeMap::new();
        // Who includes each set, and the sets holding autogroup:internet themselves.
        let mut included_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut internet: Vec<&str> = Vec::new();
        for set in &policy.ipsets {
            let name = set.name.value.as_str();
            if !name.starts_with("ipset:") {
                self.error(
                    Code::InvalidIpsetName,
                    set.name.span,
                    format!(
                        "ipsets[{}]: IP set names must start with 'ipset:'",
                        quote(name)
                    ),
                    "",
                );
            }
            for entry in &set.entries {
                let ok = match &entry.target.alias {
                    Alias::Ip(_) | Alias::Prefix(_) | Alias::Range(..) | Alias::Host(_) => true,
                    Alias::IpSet(other) => {
                        edges
                            .entry(name)
                            .or_default()
                            .push((other, entry.target.span));
                        included_by.entry(other).or_default().push(name);
                        true
                    }
                    Alias::Autogroup(Autogroup::Internet) => {
                        internet.push(name);
                        true
                    }
                    _ => false,
                };
                if ok {
                    self.reference(&entry.target, Place::IpSet { name });
                } else {
                    self.error(
                        Code::InvalidIpsetEntry,
                        entry.target.span,
                        format!(
                            "ipsets[{}]: {} cannot be used in an IP set",
                            quote(name),
                            quote(&entry.target.text)
                        ),
                        "IP sets hold IP addresses, prefixes, ranges, hosts, other IP sets and autogroup:internet",
                    );
                }
            }
        }
        // The sets that hold the internet through others: one walk up the inclusions,
        // O(sets + inclusions).
        while let Some(set) = internet.pop() {
            if self.internet_sets.insert(set) {
                internet.extend(included_by.get(set).into_iter().flatten().copied());
            }
        }
        // Cycles: a set that reaches itself (one linear pass over the whole graph).
        let cyclic = on_cycles(&edges);
        for set in &policy.ipsets {
            let start = set.name.value.as_str();
            if cyclic.contains(start) {
                self.error(
                    Code::RecursiveIpset,
                    set.name.span,
                    format!("ipsets[{}]: IP sets cannot be recursive", quote(start)),
                    "an IP set cannot include itself, directly or through other sets",
                );
            }
        }
    }

    /// `autoApprovers`.
    fn auto_approvers(&mut self) {
        let policy = self.policy;
        let approvers = policy
            .auto_approvers
            .routes
            .iter()
            .flat_map(|r| r.approvers.iter())
            .chain(policy.auto_approvers.exit_node.iter())
            .chain(
                policy
                    .auto_approvers
                    .services
                    .iter()
                    .flat_map(|s| s.approvers.iter()),
            );
        for sel in approvers {
            if may_own_or_approve(&sel.alias) {
                self.reference(sel, Place::Approver);
            } else {
                self.error(
                    Code::InvalidApprover,
                    sel.span,
                    format!("autoApprovers: {} cannot approve routes", quote(&sel.text)),
                    "approvers are users, groups, tags or autogroups such as autogroup:admin",
                );
            }
        }
        for svc in &policy.auto_approvers.services {
            let key = &svc.service.value;
            // A key is a service name or a tag that services carry (Tailscale Services can be
            // tagged; real policies key approvers by tag, e.g. `"tag:k8s": ["tag:k8s"]`).
            match key.strip_prefix("tag:") {
                Some(_) => self.service_tag(key, svc.service.span),
                None => self.service_name(key, svc.service.span),
            }
        }
        // Tags that serve app connectors: a `/0` route approved for them is the app connector
        // setup's way to approve every route a connector discovers (Tailscale docs "Set up an
        // app connector"), not a misplaced exit node approval.
        let connector_tags: HashSet<&str> = policy
            .node_attrs
            .iter()
            .flat_map(|n| &n.app_connectors)
            .flat_map(|c| &c.connectors)
            .filter_map(|sel| match &sel.alias {
                Alias::Tag(tag) => Some(tag.as_str()),
                _ => None,
            })
            .collect();
        // A policy that approves exit nodes under `exitNode` shows its author knows where
        // exit nodes are approved; the `/0` key then approves every subnet route of its
        // family (a prefix approves the routes inside it), which is what it is for (public
        // policies rajsinghtech/kubernetes-manifests, regulad: the latter says so in a
        // comment, with other approvers under `exitNode`): nothing to warn about.
        if !policy.auto_approvers.exit_node.is_empty() {
            return;
        }
        for route in &policy.auto_approvers.routes {
            if route.prefix.value.prefix_len() != 0 {
                continue;
            }
            let for_connectors = !route.approvers.is_empty()
                && route.approvers.iter().all(
                    |sel| matches!(&sel.alias, Alias::Tag(tag) if connector_tags.contains(tag.as_str())),
                );
            if !for_connectors {
                let family = match route.prefix.value {
                    ipnet::IpNet::V4(_) => "IPv4",
                    ipnet::IpNet::V6(_) => "IPv6",
                };
                self.warning(
                    Code::ExitRouteInRoutes,
                    route.prefix.span,
                    format!(
                        "{} under autoApprovers.routes does not approve exit nodes",
                        route.text
                    ),
                    &format!(
                        "to approve exit nodes, list the approvers under autoApprovers.exitNode \
                         (here {} approves every {family} subnet route they advertise)",
                        route.text
                    ),
                );
            }
        }
    }
}

/// Whether `alias` may own a tag or approve routes: users, groups, tags, and the role and
/// membership autogroups.
fn may_own_or_approve(alias: &Alias) -> bool {
    match alias {
        Alias::User(_) | Alias::UserDomain(_) | Alias::Group(_) | Alias::Tag(_) => true,
        Alias::Autogroup(a) => {
            a.is_role()
                || matches!(
                    a,
                    Autogroup::Member | Autogroup::Members | Autogroup::Tagged
                )
        }
        _ => false,
    }
}

/// A group member written as a selector other than a user: an IP address, prefix or range, a
/// `host:` reference, an IP set or a Service (suggesting a login made of it would be
/// nonsense). A bare word also reads as a host, but may be a login: not one of these.
fn names_addresses_or_more(member: &str) -> bool {
    member.starts_with("host:")
        || Alias::parse(member)
            .is_ok_and(|a| a.is_address() || matches!(a, Alias::IpSet(_) | Alias::Service(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names() {
        assert_eq!(tag_name_problem("tag:server"), None);
        assert_eq!(tag_name_problem("tag:group-a1"), None);
        assert_eq!(
            tag_name_problem("tag:сервер"),
            Some("tag names must start with a letter, after 'tag:'")
        );
        assert_eq!(
            tag_name_problem("tag:1abc"),
            Some("tag names must start with a letter, after 'tag:'")
        );
        assert_eq!(
            tag_name_problem("tag:a_b"),
            Some("tag names can only contain numbers, letters, or dashes")
        );
        assert_eq!(
            tag_name_problem("server"),
            Some("tags must start with 'tag:'")
        );
    }

    fn graph<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, Vec<(&'a str, Span)>> {
        let mut edges: BTreeMap<&str, Vec<(&str, Span)>> = BTreeMap::new();
        for &(a, b) in pairs {
            edges.entry(a).or_default().push((b, Span::default()));
        }
        edges
    }

    fn sorted(set: HashSet<&str>) -> Vec<&str> {
        let mut v: Vec<&str> = set.into_iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn cycles_found_in_one_pass() {
        assert!(on_cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
        assert_eq!(sorted(on_cycles(&graph(&[("a", "a"), ("b", "a")]))), ["a"]);
        // Two cycles joined by a bridge, and a tail hanging off one of them.
        let edges = graph(&[
            ("a", "b"),
            ("b", "a"),
            ("b", "c"),
            ("c", "d"),
            ("d", "e"),
            ("e", "c"),
            ("e", "f"),
        ]);
        assert_eq!(sorted(on_cycles(&edges)), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn long_chains_and_wide_dags_do_not_recurse() {
        let names: Vec<String> = (0..200_000).map(|i| format!("ipset:s{i}")).collect();
        let chain: Vec<(&str, &str)> = names
            .windows(2)
            .filter_map(|w| Some((w.first()?.as_str(), w.get(1)?.as_str())))
            .collect();
        assert!(on_cycles(&graph(&chain)).is_empty());
        let mut closed = chain.clone();
        if let (Some(first), Some(last)) = (names.first(), names.last()) {
            closed.push((last.as_str(), first.as_str()));
        }
        assert_eq!(on_cycles(&graph(&closed)).len(), names.len());
        // 16 levels of 4 sets, each including the 4 below: 64 names, no cycle.
        let level: Vec<Vec<String>> = (0..16)
            .map(|l| (0..4).map(|j| format!("ipset:l{l}_{j}")).collect())
            .collect();
        let mut dag = Vec::new();
        for pair in level.windows(2) {
            if let [below, above] = pair {
                for a in above {
                    for b in below {
                        dag.push((a.as_str(), b.as_str()));
                    }
                }
            }
        }
        assert!(on_cycles(&graph(&dag)).is_empty());
    }
}
