//! Validation: the rules Tailscale enforces that the policy text (plus the tailnet's domains)
//! decides — references resolve, selectors are used where they are allowed, values are in
//! range — and warnings for things Tailscale accepts but that are probably mistakes.
//!
//! Messages reproduce Tailscale's text where it is known (see the conformance corpus), so they
//! can be searched for; the code, span and help add what Tailscale lacks.

mod definitions;
mod node_attrs;
mod rules;
mod ssh;
mod unused;

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::model::{quote_go as quote, Alias, Autogroup, Policy, Selector, Spanned};
use crate::source::Span;
use crate::Context;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::lower::suggest::Names;

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
    let mut broken: Vec<Span> = earlier
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.span)
        .collect();
    // By start, for [`Validator::has_earlier_error`]'s binary search.
    broken.sort_unstable_by_key(|b| (b.start, b.end));
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
        synced_groups: context
            .synced_groups
            .as_ref()
            .map(|groups| groups.iter().map(String::as_str).collect()),
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
        internet_sets: BTreeSet::new(),
        suggest: Suggest {
            budget: crate::lower::suggest::Budget::new(crate::lower::suggest::VALIDATION_CELLS),
            groups: std::cell::OnceCell::new(),
            hosts: std::cell::OnceCell::new(),
            tags: std::cell::OnceCell::new(),
            logins: std::cell::OnceCell::new(),
        },
    };
    v.definitions();
    v.rules();
    v.member_spellings();
    v.disabled_ipv4();
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
    /// Synced groups with members, when known.
    synced_groups: Option<HashSet<&'p str>>,
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
    /// IP sets that hold `autogroup:internet`, directly or through other sets.
    internet_sets: BTreeSet<&'p str>,
    /// The names "did you mean" looks among, each prepared on first use, and the work its
    /// lookups may do in all ([`crate::lower::suggest`]).
    suggest: Suggest<'p>,
}

/// Names to suggest from, by kind, and the work left for suggestions.
struct Suggest<'p> {
    budget: crate::lower::suggest::Budget,
    groups: std::cell::OnceCell<Names<'p>>,
    hosts: std::cell::OnceCell<Names<'p>>,
    tags: std::cell::OnceCell<Names<'p>>,
    logins: std::cell::OnceCell<Names<'p>>,
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

    /// True if an earlier stage reported an error inside `span`: the errors starting in it,
    /// found by binary search (a scan of every earlier error per rule was O(rules x errors):
    /// 200,000 rules each with an error took 16 s to check).
    fn has_earlier_error(&self, span: Span) -> bool {
        let first = self.broken.partition_point(|b| b.start < span.start);
        self.broken
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.start <= span.end)
            .any(|b| b.end <= span.end)
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
        if let Alias::Tag(name) | Alias::Group(name) = &sel.alias {
            if let Some((alias, _)) = crate::model::external_reference(name) {
                self.external_reference(name, alias, sel.span);
                return;
            }
        }
        match &sel.alias {
            Alias::Tag(tag) => {
                self.used.insert(tag.clone());
                if !self.index.tags.contains(tag.as_str()) {
                    let message = match place {
                        Place::Via => format!("tag {} not found", quote(tag)),
                        _ => place.wrap(&format!("tag not found: {}", quote(tag))),
                    };
                    // `tag:web:443` where no port belongs (a grant's `dst`): say so.
                    let help = match without_ports(tag) {
                        Some(bare) if self.index.tags.contains(bare) => {
                            self.used.insert(bare.to_string());
                            no_port_help(bare, place)
                        }
                        _ => self.suggest_tag(tag),
                    };
                    let d = Diagnostic::error(Code::UndefinedTag, sel.span, message)
                        .with_label("not defined in tagOwners")
                        .with_help(help);
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
                    let policy = self.policy;
                    let names = self.suggest.groups.get_or_init(|| {
                        Names::new(policy.groups.iter().map(|g| g.name.value.as_str()))
                    });
                    let help = match names.closest(group, &self.suggest.budget) {
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
                    let policy = self.policy;
                    let names = self.suggest.hosts.get_or_init(|| {
                        Names::new(policy.hosts.iter().map(|h| h.name.value.as_str()))
                    });
                    let suggested = names.closest(host, &self.suggest.budget);
                    let bare = without_ports(host).filter(|b| {
                        self.index.hosts.contains(*b)
                            || b.parse::<std::net::IpAddr>().is_ok()
                            || crate::model::parse_prefix(b).is_some()
                    });
                    // A source is matched as written (only destinations are known to be lower-cased
                    // by Tailscale's parser), so one in another case is refused with this fix.
                    let cased = crate::model::cased_selector(host);
                    let help = match (cased, bare, suggested) {
                        (Some(cased), ..) => format!(
                            "selector prefixes are lower case: did you mean {}?",
                            quote(&cased)
                        ),
                        (None, Some(bare), _) => {
                            self.used.insert(format!("host {bare}"));
                            no_port_help(bare, place)
                        }
                        (None, None, Some(n)) => format!("did you mean the host {}?", quote(n)),
                        (None, None, None) => match bad_prefix_length(host) {
                            Some(help) => help,
                            None => format!(
                                "{} is not an IP address, a prefix, or a host defined in \"hosts\"",
                                quote(host)
                            ),
                        },
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
            Alias::Prefix(net) => {
                if let Some((message, help)) = crate::model::host_bits_warning(net) {
                    self.warning(Code::PrefixHostBits, sel.span, message, &help);
                }
                if let Some((message, help)) =
                    crate::model::mapped_v4_warning(net.addr(), net.prefix_len())
                {
                    self.warning(Code::Ipv4Mapped, sel.span, message, &help);
                }
            }
            // Documented as IP set entries only (kb/1396); what Tailscale does elsewhere is
            // not captured.
            Alias::Range(first, last) if !matches!(place, Place::IpSet { .. }) => self.warning(
                Code::UnverifiedIpRange,
                sel.span,
                format!("{first}-{last} is an IP address range: Tailscale's documentation lists ranges only in IP sets; aclc cannot verify that Tailscale accepts one here"),
                &format!("name it in an IP set, \"ipsets\": {{\"ipset:range\": [\"{first}-{last}\"]}}, and write \"ipset:range\""),
            ),
            // `0.0.0.0` (or `::`) is one address no device has, not every address: an old
            // Tailscale parser refused it with this advice; whether the control server still
            // does is not known (a warning).
            Alias::Ip(ip) if ip.is_unspecified() => self.warning(
                Code::UnspecifiedAddress,
                sel.span,
                format!("{ip} is a single address that no device has, not every address; aclc cannot verify that Tailscale accepts it"),
                &format!("to allow all IP addresses, use *:port, not {ip}:port"),
            ),
            Alias::Ip(ip) => {
                if let Some((message, help)) = crate::model::mapped_v4_warning(*ip, 128) {
                    self.warning(Code::Ipv4Mapped, sel.span, message, &help);
                }
            }
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

    /// An `autoApprovers.services` key that is a tag: services carrying it are approved.
    /// Whether Tailscale requires the tag in `tagOwners` is not recorded, so an undefined one
    /// is a warning.
    pub(crate) fn service_tag(&mut self, tag: &str, span: Span) {
        self.used.insert(tag.to_string());
        if self.policy.tag_owners.iter().any(|t| t.tag.value == tag) {
            return;
        }
        self.warning(
            Code::UnverifiedServiceName,
            span,
            format!(
                "services tagged {} are auto-approved, but the tag is not in \"tagOwners\"; aclc cannot verify that Tailscale accepts it",
                quote(tag)
            ),
            &self.suggest_tag(tag),
        );
    }

    fn suggest_tag(&self, tag: &str) -> String {
        let policy = self.policy;
        let names = self
            .suggest
            .tags
            .get_or_init(|| Names::new(policy.tag_owners.iter().map(|t| t.tag.value.as_str())));
        match names.closest(tag, &self.suggest.budget) {
            Some(n) => format!("did you mean {}?", quote(n)),
            None => format!(
                "define it in \"tagOwners\", e.g. \"tagOwners\": {{{}: [\"autogroup:admin\"]}}",
                quote(tag)
            ),
        }
    }

    /// `disableIPv4: true` on a tailnet whose nodes have IPv4 addresses. Tailscale "stops
    /// assigning Tailscale IPv4 addresses" then, so a control server's inventory of such a
    /// tailnet holds IPv6 addresses only, and aclc compiles the addresses it is given: an
    /// inventory that still holds IPv4 ones compiles as if the flag were not set. Said, not
    /// modelled: stripping the addresses would leave the IPv4-only nodes with none, and no
    /// capture shows what Tailscale sends for them.
    fn disabled_ipv4(&mut self) {
        let Some(flag) = self.policy.disable_ipv4.as_ref().filter(|d| d.value) else {
            return;
        };
        let Some(nodes) = self.context.ipv4_nodes.filter(|&n| n > 0) else {
            return;
        };
        let node_s = if nodes == 1 { "node has" } else { "nodes have" };
        self.warning(
            Code::DisableIpv4WithIpv4Nodes,
            flag.span,
            format!(
                "disableIPv4 is set, but {nodes} {node_s} an IPv4 address: aclc compiles the \
                 inventory's addresses as given, IPv4 included"
            ),
            "Tailscale assigns no IPv4 address under disableIPv4: give the nodes their IPv6 \
             addresses only (such an inventory compiles as that tailnet does), or remove \
             disableIPv4",
        );
    }

    /// `user:*@domain` / `localpart:*@domain`: the domain must be one of the tailnet's.
    /// Without the tailnet's domains, only a domain no tailnet can have (one with `*`, as in
    /// `localpart:*@*`, which Tailscale refuses with this message) is refused.
    /// A known shared email domain ([`crate::model::SHARED_DOMAINS`]) is no tailnet's, with
    /// or without the tailnet's domains: Tailscale's syntax reference says "The provided
    /// domain must not be a known shared domain (such as `gmail.com`)" (a personal tailnet's
    /// name, `someone@gmail.com`, does not associate the domain).
    pub(crate) fn domain(&mut self, domain: &str, span: Span, place: Place<'_>) {
        let shared = crate::model::is_shared_email_domain(domain);
        let domains = match &self.context.tailnet_domains {
            Some(domains) => domains.as_slice(),
            None if domain.contains('*') || shared => &[],
            None => return,
        };
        if !shared && domains.iter().any(|d| d == domain) {
            return;
        }
        let prefix = if matches!(place, Place::SshSrc) {
            "[ssh] "
        } else {
            ""
        };
        let help = if shared {
            format!(
                "{} is a shared email domain, which Tailscale refuses here: name its users one by one",
                quote(domain)
            )
        } else if self.context.tailnet_domains.is_none() {
            "a domain with `*` is no tailnet's domain: name the tailnet's domain, e.g. \"localpart:*@example.com\"".to_string()
        } else if domains.is_empty() {
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
    /// A group or tag of another tailnet (`group://alias/name`, `tag://alias/name`):
    /// accepted with a warning, as it compiles to nothing here.
    fn external_reference(&mut self, text: &str, alias: &str, span: Span) {
        let declared = self
            .policy
            .external_tailnets
            .iter()
            .any(|t| t.alias.value == alias);
        let kind = match text.starts_with("group://") {
            true => "a group",
            false => "a tag",
        };
        let message = match declared {
            true => format!(
                "{} names {kind} of the external tailnet {}: aclc does not know that tailnet's devices, so this compiles to nothing here",
                quote(text),
                quote(alias)
            ),
            false => format!(
                "{} names the external tailnet {}, which \"externalTailnets\" does not declare: aclc compiles it to nothing and cannot verify that Tailscale accepts it",
                quote(text),
                quote(alias)
            ),
        };
        let help = match declared {
            true => "Tailscale applies it only when that tailnet allows the reference (its \"allowExternalReferencesTo\"); aclc's output leaves that tailnet's devices out",
            false => "declare the tailnet under \"externalTailnets\" with its \"externalID\"",
        };
        self.warning(Code::ExternalReference, span, message, help);
    }

    fn synced_group(&mut self, group: &str, span: Span) {
        let Some(known) = &self.index.synced_groups else {
            return;
        };
        if known.contains(group) || !self.warned_synced.insert(group.to_string()) {
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
        let names = self
            .suggest
            .logins
            .get_or_init(|| Names::new(logins.iter().map(String::as_str)));
        let help = match names.closest(login, &self.suggest.budget) {
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

    /// `autogroup:member` and its legacy spelling in one policy: said to be refused, but real
    /// policies deployed through Tailscale's GitOps action hold both (an old template's
    /// `ssh` and `nodeAttrs` with a newer rule), and no capture decides it: accepted, warned.
    fn member_spellings(&mut self) {
        if let (Some(member), Some(members)) = (self.saw_member, self.saw_members) {
            let d = Diagnostic::warning(
                Code::MixedMemberAutogroups,
                members,
                "autogroup:members and autogroup:member are both used: aclc cannot verify \
                 that Tailscale accepts the two spellings in one policy",
            )
            .with_related(member, "autogroup:member used here")
            .with_help("replace autogroup:members with autogroup:member (they mean the same)");
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
}

/// `selector:ports` (`tag:web:443`, `10.0.0.0/24:*`): the selector, when what follows the
/// last colon is a port list.
fn without_ports(text: &str) -> Option<&str> {
    let (bare, ports) = text.rsplit_once(':')?;
    let ports_like = !ports.is_empty()
        && ports
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b',' || b == b'-');
    (ports_like && !bare.is_empty()).then_some(bare)
}

/// The help for a selector written with ports where none belong.
fn no_port_help(bare: &str, place: Place<'_>) -> String {
    match place {
        Place::SshDst => format!(
            "SSH destinations take no port (Tailscale SSH listens on 22): write {}",
            quote(bare)
        ),
        Place::Src | Place::Dst { .. } => format!(
            "{} takes no port here: write {} (in grants, ports go in \"ip\", e.g. \"ip\": [\"tcp:443\"])",
            quote(bare),
            quote(bare)
        ),
        _ => format!("{} takes no port here: write {}", quote(bare), quote(bare)),
    }
}

/// The help for an address whose prefix length is out of its family's range
/// (`10.0.0.0/33`, `fd7a::/999`); `None` for any other text.
fn bad_prefix_length(host: &str) -> Option<String> {
    let (addr, len) = host.split_once('/')?;
    let most = match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => 32,
        std::net::IpAddr::V6(_) => 128,
    };
    let family = if most == 32 { "IPv4" } else { "IPv6" };
    // Digits only, and more than the family's most (a length in range is wrong for
    // another reason, a leading zero say).
    let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
    let over = len.parse::<u32>().map_or(true, |n| n > most);
    (digits && over).then(|| {
        format!(
            "an {family} prefix length is 0 to {most}: {} is out of range",
            quote(len)
        )
    })
}
