//! Validation: the rules Tailscale enforces that the policy text (plus the tailnet's domains)
//! decides — references resolve, selectors are used where they are allowed, values are in
//! range — and warnings for things Tailscale accepts but that are probably mistakes.
//!
//! Messages reproduce Tailscale's text where it is known (see the conformance corpus), so they
//! can be searched for; the code, span and help add what Tailscale lacks.

mod rules;

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::model::{quote_go as quote, Alias, Autogroup, Policy, Selector, Spanned};
use crate::source::Span;
use crate::Context;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Validate a lowered policy; returns errors and warnings (unsorted).
///
/// `earlier` are the diagnostics of the previous stages: a rule with an error there is not
/// also reported for what the error left out of it (a grant whose only `ip` entry was
/// refused is not "empty").
pub(crate) fn validate(
    policy: &Policy,
    context: &Context,
    earlier: &[Diagnostic],
) -> Vec<Diagnostic> {
    let broken: Vec<Span> = earlier
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.span)
        .collect();
    let index = Index {
        tags: policy
            .tag_owners
            .iter()
            .map(|t| t.tag.value.as_str())
            .collect(),
        groups: policy
            .groups
            .iter()
            .map(|g| (g.name.value.as_str(), g.members.is_empty()))
            .collect(),
        hosts: policy.hosts.iter().map(|h| h.name.value.as_str()).collect(),
        ipsets: policy
            .ipsets
            .iter()
            .map(|s| s.name.value.as_str())
            .collect(),
        postures: policy
            .postures
            .iter()
            .map(|p| p.name.value.as_str())
            .collect(),
        logins: context
            .user_logins
            .as_ref()
            .map(|logins| logins.iter().map(|l| l.to_lowercase()).collect()),
    };
    let mut v = Validator {
        policy,
        context,
        index,
        broken,
        diags: Vec::new(),
        used: BTreeSet::new(),
        saw_member: None,
        saw_members: None,
        warned_synced: BTreeSet::new(),
    };
    v.definitions();
    v.rules();
    v.member_spellings();
    v.unused();
    v.diags
}

/// Where a selector is used; decides what is allowed and how messages are worded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    /// ACL or grant `src`.
    Src,
    /// ACL or grant `dst`; `host` is the destination text before the ports.
    Dst { host: &'a str },
    /// Grant `via`.
    Via,
    /// SSH `src`.
    SshSrc,
    /// SSH `dst`.
    SshDst,
    /// SSH `recorder`.
    Recorder,
    /// `nodeAttrs` `target`.
    Target,
    /// A `tagOwners` owner of `tag`.
    Owner { tag: &'a str },
    /// An `autoApprovers` approver.
    Approver,
    /// An entry of the IP set `name`.
    IpSet { name: &'a str },
    /// An app connector's `connectors`.
    Connector,
}

impl Place<'_> {
    /// Wrap an inner message the way Tailscale does for this place.
    fn wrap(self, inner: &str) -> String {
        match self {
            Place::Src => format!("src={inner}"),
            Place::Dst { host } => format!("dst={}: {inner}", quote(host)),
            Place::Owner { tag } => format!("tagOwners[{}]: {inner}", quote(tag)),
            Place::IpSet { name } => format!("ipsets[{}]: {inner}", quote(name)),
            _ => inner.to_string(),
        }
    }
}

/// Names defined by the policy, for lookups in constant time.
struct Index<'p> {
    tags: HashSet<&'p str>,
    /// Group name -> "has no members".
    groups: HashMap<&'p str, bool>,
    hosts: HashSet<&'p str>,
    ipsets: HashSet<&'p str>,
    postures: HashSet<&'p str>,
    /// Lower-cased user logins, when known.
    logins: Option<HashSet<String>>,
}

/// State of one validation run.
pub(crate) struct Validator<'p> {
    policy: &'p Policy,
    context: &'p Context,
    index: Index<'p>,
    /// Spans of errors found while lowering.
    broken: Vec<Span>,
    diags: Vec<Diagnostic>,
    /// Names of groups, tags, hosts, IP sets and postures referenced anywhere.
    used: BTreeSet<String>,
    /// First use of `autogroup:member` / `autogroup:members`.
    saw_member: Option<Span>,
    saw_members: Option<Span>,
    /// Synced groups already warned about.
    warned_synced: BTreeSet<String>,
}

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

impl<'p> Validator<'p> {
    fn error(&mut self, code: Code, span: Span, message: impl Into<String>, help: &str) {
        let mut d = Diagnostic::error(code, span, message);
        if !help.is_empty() {
            d.help = Some(help.to_string());
        }
        self.diags.push(d);
    }

    fn warning(&mut self, code: Code, span: Span, message: impl Into<String>, help: &str) {
        let mut d = Diagnostic::warning(code, span, message);
        if !help.is_empty() {
            d.help = Some(help.to_string());
        }
        self.diags.push(d);
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// True if an earlier stage reported an error inside `span`.
    fn has_earlier_error(&self, span: Span) -> bool {
        self.broken
            .iter()
            .any(|b| span.start <= b.start && b.end <= span.end)
    }

    /// Count a selector as a use of what it names, without checking anything.
    pub(crate) fn mark_used(&mut self, sel: &Selector) {
        match &sel.alias {
            Alias::Tag(n) | Alias::Group(n) | Alias::IpSet(n) => {
                self.used.insert(n.clone());
            }
            Alias::Host(h) => {
                self.used.insert(format!("host {h}"));
            }
            _ => {}
        }
    }

    /// Check a selector used at `place`: is it allowed there, does what it names exist, is
    /// its domain the tailnet's. Placement rules specific to a section are checked by the
    /// caller before this; this handles the references.
    pub(crate) fn reference(&mut self, sel: &Selector, place: Place<'_>) {
        match &sel.alias {
            Alias::Tag(tag) => {
                self.used.insert(tag.clone());
                if !self.index.tags.contains(tag.as_str()) {
                    let message = match place {
                        Place::Via => format!("tag {} not found", quote(tag)),
                        _ => place.wrap(&format!("tag not found: {}", quote(tag))),
                    };
                    let d = Diagnostic::error(Code::UndefinedTag, sel.span, message)
                        .with_label("not defined in tagOwners")
                        .with_help(self.suggest_tag(tag));
                    self.push(d);
                }
            }
            Alias::Group(group) => {
                self.used.insert(group.clone());
                if !self.index.groups.contains_key(group.as_str())
                    && crate::model::is_synced_group(group)
                {
                    self.synced_group(group, sel.span);
                } else if !self.index.groups.contains_key(group.as_str()) {
                    let names: Vec<&str> = self
                        .policy
                        .groups
                        .iter()
                        .map(|g| g.name.value.as_str())
                        .collect();
                    let help = match crate::lower::closest(group, &names) {
                        Some(n) => format!("did you mean {}?", quote(n)),
                        None => format!("define {} in \"groups\"", quote(group)),
                    };
                    let d = Diagnostic::error(
                        Code::UndefinedGroup,
                        sel.span,
                        place.wrap(&format!("group not found: {}", quote(group))),
                    )
                    .with_label("not defined in groups")
                    .with_help(help);
                    self.push(d);
                }
            }
            Alias::Host(host) => {
                self.used.insert(format!("host {host}"));
                if !self.index.hosts.contains(host.as_str()) {
                    let names: Vec<&str> = self
                        .policy
                        .hosts
                        .iter()
                        .map(|h| h.name.value.as_str())
                        .collect();
                    let help = match crate::lower::closest(host, &names) {
                        Some(n) => format!("did you mean the host {}?", quote(n)),
                        None => format!(
                            "{} is not an IP address, a prefix, or a host defined in \"hosts\"",
                            quote(host)
                        ),
                    };
                    let d = Diagnostic::error(
                        Code::UndefinedHost,
                        sel.span,
                        place.wrap(&format!("{}: invalid address", quote(host))),
                    )
                    .with_label("not a host, IP address or prefix")
                    .with_help(help);
                    self.push(d);
                }
            }
            Alias::IpSet(name) => {
                self.used.insert(name.clone());
                if !self.index.ipsets.contains(name.as_str()) {
                    self.error(
                        Code::UndefinedIpset,
                        sel.span,
                        place.wrap(&format!("ipset not found: {}", quote(name))),
                        &format!("define {} in \"ipsets\"", quote(name)),
                    );
                }
            }
            Alias::Service(name) => self.service_name(name, sel.span),
            Alias::UserDomain(domain) => self.domain(domain, sel.span, place),
            Alias::User(login) => self.known_user(login, sel.span),
            Alias::Autogroup(a) => self.autogroup_seen(*a, sel.span),
            _ => {}
        }
    }

    /// A Tailscale Service name: `svc:` and a DNS label (Tailscale KB "Tailscale Services",
    /// kb/1552). Tailscale's exact rule is not recorded, so an odd name is a warning.
    pub(crate) fn service_name(&mut self, name: &str, span: Span) {
        let label = name.strip_prefix("svc:").unwrap_or("");
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            self.warning(
                Code::UnverifiedServiceName,
                span,
                format!(
                    "{} is not a DNS label after svc: as Tailscale Service names are; aclc cannot verify it",
                    quote(name)
                ),
                "service names are svc: followed by lowercase letters, digits and dashes, e.g. svc:web-server",
            );
        }
    }

    fn suggest_tag(&self, tag: &str) -> String {
        let names: Vec<&str> = self
            .policy
            .tag_owners
            .iter()
            .map(|t| t.tag.value.as_str())
            .collect();
        match crate::lower::closest(tag, &names) {
            Some(n) => format!("did you mean {}?", quote(n)),
            None => format!(
                "define it in \"tagOwners\", e.g. \"tagOwners\": {{{}: [\"autogroup:admin\"]}}",
                quote(tag)
            ),
        }
    }

    /// `user:*@domain` / `localpart:*@domain`: the domain must be one of the tailnet's.
    pub(crate) fn domain(&mut self, domain: &str, span: Span, place: Place<'_>) {
        let Some(domains) = &self.context.tailnet_domains else {
            return;
        };
        if domains.iter().any(|d| d == domain) {
            return;
        }
        let prefix = if matches!(place, Place::SshSrc) {
            "[ssh] "
        } else {
            ""
        };
        let help = if domains.is_empty() {
            "the tailnet has no associated domain".to_string()
        } else {
            format!(
                "the tailnet's domains: {}",
                domains
                    .iter()
                    .map(|d| quote(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.error(
            Code::DomainNotAssociated,
            span,
            format!(
                "{prefix}{domain} is not associated with this Tailnet and cannot be used in user:*@<domain> expressions"
            ),
            &help,
        );
    }

    /// A group synced from the identity provider: defined there, not in `groups`. When the
    /// tailnet's synced groups are known and this one has no member, say that it resolves to
    /// no one (once per group).
    fn synced_group(&mut self, group: &str, span: Span) {
        let Some(known) = &self.context.synced_groups else {
            return;
        };
        if known.iter().any(|g| g == group) || !self.warned_synced.insert(group.to_string()) {
            return;
        }
        self.warning(
            Code::SyncedGroupWithoutMembers,
            span,
            format!(
                "{} is synced from the identity provider and no user of the inventory is in it: it resolves to no one",
                quote(group)
            ),
            "list the group on its members in the inventory (\"groups\": [\"name@domain\"] on each user)",
        );
    }

    /// A user login: warn when the tailnet's users are known and it is not one of them.
    pub(crate) fn known_user(&mut self, login: &str, span: Span) {
        let (Some(known), Some(logins)) = (&self.index.logins, &self.context.user_logins) else {
            return;
        };
        if known.contains(&login.to_lowercase()) {
            return;
        }
        let names: Vec<&str> = logins.iter().map(String::as_str).collect();
        let help = match crate::lower::closest(login, &names) {
            Some(n) => format!("did you mean {}? (Tailscale accepts users who have not joined yet)", quote(n)),
            None => "Tailscale accepts users who have not joined yet; the rule matches nothing until they do".to_string(),
        };
        self.warning(
            Code::UnknownUser,
            span,
            format!("user {} is not a member of the tailnet", quote(login)),
            &help,
        );
    }

    fn autogroup_seen(&mut self, a: Autogroup, span: Span) {
        match a {
            Autogroup::Member => {
                self.saw_member.get_or_insert(span);
            }
            Autogroup::Members => {
                if self.saw_members.is_none() {
                    self.warning(
                        Code::LegacyAutogroup,
                        span,
                        "autogroup:members is a legacy spelling of autogroup:member",
                        "write autogroup:member",
                    );
                }
                self.saw_members.get_or_insert(span);
            }
            _ => {}
        }
    }

    /// `autogroup:member` and its legacy spelling may not be mixed.
    fn member_spellings(&mut self) {
        if let (Some(member), Some(members)) = (self.saw_member, self.saw_members) {
            let d = Diagnostic::error(
                Code::MixedMemberAutogroups,
                members,
                "autogroup:members and autogroup:member cannot be used in the same policy",
            )
            .with_related(member, "autogroup:member used here")
            .with_help("replace autogroup:members with autogroup:member");
            self.push(d);
        }
    }

    /// A posture reference (`srcPosture`, `defaultSrcPosture`).
    pub(crate) fn posture_ref(&mut self, name: &Spanned<String>) {
        self.used.insert(name.value.clone());
        if !self.index.postures.contains(name.value.as_str()) {
            self.error(
                Code::UndefinedPosture,
                name.span,
                format!("posture not found: {}", quote(&name.value)),
                &format!("define {} in \"postures\"", quote(&name.value)),
            );
        }
    }

    /// Checks on the definition sections.
    fn definitions(&mut self) {
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
    }

    /// `attrConfig`: custom attributes (`custom:` names), and who receives their values.
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
                        true
                    }
                    Alias::Autogroup(Autogroup::Internet) => true,
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
            self.service_name(&svc.service.value, svc.service.span);
        }
        for route in &policy.auto_approvers.routes {
            if route.prefix.value.prefix_len() == 0 {
                self.warning(
                    Code::ExitRouteInRoutes,
                    route.prefix.span,
                    format!(
                        "{} under autoApprovers.routes does not approve exit nodes",
                        route.text
                    ),
                    "list exit node approvers under autoApprovers.exitNode",
                );
            }
        }
    }

    /// Warnings for definitions nothing refers to.
    fn unused(&mut self) {
        if !self.broken.is_empty() {
            // A reference inside an entry that could not be read was never seen.
            return;
        }
        let policy = self.policy;
        // Names mentioned in tests count as uses.
        let mut mentioned: BTreeSet<String> = BTreeSet::new();
        let mut mention = |text: &str| {
            let t = text.trim();
            mentioned.insert(t.to_string());
            if let Some((host, _)) = t.rsplit_once(':') {
                mentioned.insert(host.to_string());
            }
        };
        for test in &policy.tests {
            test.src.iter().for_each(|s| mention(&s.value));
            test.accept
                .iter()
                .chain(&test.deny)
                .for_each(|s| mention(&s.value));
        }
        for test in &policy.ssh_tests {
            test.src.iter().for_each(|s| mention(&s.value));
            test.dst.iter().for_each(|s| mention(&s.value));
        }
        // Every definition with its kind, in the order the warnings come out.
        let definitions = (policy.groups.iter().map(|g| (&UNUSED_GROUP, &g.name)))
            .chain(policy.tag_owners.iter().map(|t| (&UNUSED_TAG, &t.tag)))
            .chain(policy.hosts.iter().map(|h| (&UNUSED_HOST, &h.name)))
            .chain(policy.ipsets.iter().map(|s| (&UNUSED_IPSET, &s.name)))
            .chain(policy.postures.iter().map(|p| (&UNUSED_POSTURE, &p.name)));
        for (kind, name) in definitions {
            let referred = match kind.key_prefix {
                "" => self.used.contains(name.value.as_str()),
                prefix => self.used.contains(&format!("{prefix}{}", name.value)),
            };
            if referred || mentioned.contains(&name.value) {
                continue;
            }
            let message = format!("{} {} {}", kind.noun, quote(&name.value), kind.never);
            self.warning(kind.code, name.span, message, kind.help);
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

/// A kind of definition that gets a warning when nothing refers to it.
struct Unused {
    code: Code,
    /// What the message calls it.
    noun: &'static str,
    /// The message after the quoted name.
    never: &'static str,
    /// What a reference to it is recorded under in `used`: this prefix and the name.
    key_prefix: &'static str,
    help: &'static str,
}

const REMOVE_OR_REFER: &str = "remove it, or refer to it in a rule";

const UNUSED_GROUP: Unused = Unused {
    code: Code::UnusedGroup,
    noun: "group",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};

const UNUSED_TAG: Unused = Unused {
    code: Code::UnusedTag,
    noun: "tag",
    never: "is never used in a rule",
    key_prefix: "",
    help: "a tag nothing refers to can still be applied to devices; remove it if it is not",
};

const UNUSED_HOST: Unused = Unused {
    code: Code::UnusedHost,
    noun: "host",
    never: "is never used",
    key_prefix: "host ",
    help: REMOVE_OR_REFER,
};

const UNUSED_IPSET: Unused = Unused {
    code: Code::UnusedIpset,
    noun: "IP set",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};

const UNUSED_POSTURE: Unused = Unused {
    code: Code::UnusedPosture,
    noun: "posture",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};

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
