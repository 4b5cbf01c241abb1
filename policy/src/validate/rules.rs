//! Validation of the network rule sections, `acls` and `grants`, and the dispatch of every
//! rule section (SSH in `ssh.rs`, node attributes in `node_attrs.rs`).

use super::{quote, Place, Validator};
use crate::code::Code;
use crate::diag::Diagnostic;
use crate::model::{Alias, AppCapability, Autogroup, Protocol, Selector};
use crate::source::Span;

/// Capabilities in the `tailscale.com` domain that policies may grant.
const TAILSCALE_CAPS: &[&str] = &[
    "tailscale.com/cap/drive",
    "tailscale.com/cap/relay",
    "tailscale.com/cap/webui",
    "tailscale.com/cap/kubernetes",
    "tailscale.com/cap/tsidp",
    "tailscale.com/cap/secrets",
    "tailscale.com/cap/tailsql",
    "tailscale.com/cap/golink",
    "tailscale.com/cap/aperture",
    "tailscale.com/cap/pam",
    "tailscale.com/cap/databases",
];

/// `tailscale.com` capabilities Tailscale refuses in a grant (captured: `funnel`, `ingress`,
/// `relay-target`; `service-proxy`: a public write-up of a Services setup quotes the admin
/// console's "capability name must not be in the tailscale.com domain" for it, January
/// 2026; `drive-sharer` is `relay-target`'s kind, a companion the control plane
/// derives itself, and the app connectors' attribute is a node attribute as `funnel` is). Any other `tailscale.com` name aclc does not know (other spellings of
/// these included) is accepted with a warning: Tailscale adds grantable capabilities over
/// time (`tailscale.com/cap/databases` came after the captures).
const TAILSCALE_CAPS_REFUSED: &[&str] = &[
    "tailscale.com/cap/funnel",
    "tailscale.com/cap/ingress",
    "tailscale.com/cap/relay-target",
    "tailscale.com/cap/service-proxy",
    "tailscale.com/cap/drive-sharer",
    crate::lower::APP_CONNECTORS,
];

/// `tailscale.com` node attributes with values (nodeAttrs `app`) aclc knows.
const TAILSCALE_NODE_ATTRS: &[&str] = &[crate::lower::APP_CONNECTORS, VISIBLE_GROUPS];

/// The node attribute naming the groups an app (Aperture) may show (Tailscale's "Visible
/// groups" page): each value's `groups` lists group names (or `*`), uses of those groups.
const VISIBLE_GROUPS: &str = "tailscale.com/visible-groups";

pub(super) const SELF_SOURCES: &str =
    "autogroup:self can only be used with users, groups, or supported autogroups";

impl Validator<'_> {
    /// An ACL destination naming a group or host in mixed case when another definition has
    /// its lower-case name (`group:Eng:22` beside `group:eng`): aclc reads it as written, but
    /// Tailscale's destination parser lower-cases the whole `host:ports` text, so the control
    /// server may give the other definition's devices that access. A warning: which reading
    /// Tailscale's control server makes is not captured.
    fn cased_twin(&mut self, target: &Selector, whole: &str) {
        let (name, kind) = match &target.alias {
            Alias::Group(name) => (name.as_str(), "group"),
            Alias::Host(name) => (name.as_str(), "host"),
            _ => return,
        };
        let lowered = name.to_ascii_lowercase();
        let twin = match &target.alias {
            Alias::Group(_) => self.index.groups.contains_key(lowered.as_str()),
            _ => self.index.hosts.contains(lowered.as_str()),
        };
        if lowered == name || !twin {
            return;
        }
        self.warning(
            Code::UppercaseDestination,
            target.span,
            format!(
                "dst={}: read as the {kind} {}, but Tailscale's parser lower-cases a destination and may read it as the {kind} {}, another definition",
                quote(whole),
                quote(name),
                quote(&lowered)
            ),
            &format!(
                "rename one of the two {kind}s so that their names differ in more than case"
            ),
        );
    }

    /// Every rule section.
    pub(super) fn rules(&mut self) {
        let policy = self.policy;
        if let Some(acls) = &policy.acls {
            for acl in &acls.value {
                self.sources(&acl.src);
                for d in &acl.dst {
                    self.destination(&d.target, &d.target.text);
                    self.cased_twin(&d.target, &d.text);
                }
                let self_dst = acl
                    .dst
                    .iter()
                    .find(|d| d.target.alias == Alias::Autogroup(Autogroup::SelfDevices));
                if let Some(d) = self_dst {
                    self.self_sources(&acl.src, d.target.span, true);
                }
                if let Some(proto) = &acl.proto {
                    for d in &acl.dst {
                        if !proto.value.has_ports() && d.ports.iter().any(|p| !p.is_any()) {
                            self.portless(proto.value, d.span, proto.span);
                        }
                    }
                }
                for p in &acl.src_posture {
                    self.posture_ref(p);
                }
                self.never_matches(&acl.src, acl.span);
                self.no_destinations(acl.dst.is_empty(), acl.span);
            }
        }
        if let Some(grants) = &policy.grants {
            for grant in &grants.value {
                self.grant(grant);
            }
        }
        self.allows_no_traffic();
        if let Some(rules) = &policy.ssh {
            for rule in &rules.value {
                self.ssh_rule(rule);
            }
        }
        for attr in &policy.node_attrs {
            self.node_attr(attr);
        }
        for test in &policy.ssh_tests {
            if let Some(src) = test
                .src
                .as_ref()
                .filter(|s| s.value.trim().starts_with("autogroup:"))
            {
                self.error(
                    Code::SshTestSrc,
                    src.span,
                    format!(
                        "SSH tests src contains disallowed element {}",
                        quote(src.value.trim())
                    ),
                    "an SSH test's src is a user, group, tag or host: name one member of the autogroup",
                );
            }
            for dst in &test.dst {
                self.ssh_test_dst(&dst.value, dst.span);
            }
        }
    }

    /// An IP set holding `autogroup:internet`, where the autogroup itself is refused.
    fn internet_through_ipset(&mut self, sel: &Selector, place: &str) {
        let Alias::IpSet(name) = &sel.alias else {
            return;
        };
        if !self.internet_sets.contains(name.as_str()) {
            return;
        }
        let d = Diagnostic::warning(
            Code::IpsetInternet,
            sel.span,
            format!(
                "{} holds autogroup:internet, which is not valid {place}",
                quote(name)
            ),
        )
        .with_help(
            "aclc uses the internet's addresses here; Tailscale refuses autogroup:internet \
             written directly, and whether it accepts it through an IP set is not verified",
        );
        self.push(d);
    }

    /// ACL / grant sources.
    fn sources(&mut self, src: &[Selector]) {
        for sel in src {
            self.internet_through_ipset(sel, "on the src side of a rule");
            match &sel.alias {
                Alias::Autogroup(
                    a @ (Autogroup::SelfDevices | Autogroup::Internet | Autogroup::Nonroot),
                ) => {
                    let help = match a {
                        Autogroup::SelfDevices => "autogroup:self is a destination: it means the source user's own devices",
                        Autogroup::Internet => "autogroup:internet can only be a destination (traffic through exit nodes)",
                        _ => "autogroup:nonroot is only valid in SSH \"users\"",
                    };
                    let d = Diagnostic::error(
                        Code::InvalidSrc,
                        sel.span,
                        format!("{} not valid on the src side of a rule", quote(a.as_str())),
                    )
                    .with_help(help);
                    let d = if *a == Autogroup::SelfDevices {
                        Diagnostic {
                            code: Code::SelfInSrc,
                            ..d
                        }
                    } else {
                        d
                    };
                    self.push(d);
                }
                Alias::Service(_) => self.error(
                    Code::InvalidSrc,
                    sel.span,
                    format!("{} not valid on the src side of a rule", quote(&sel.text)),
                    "a Tailscale Service can only be a destination",
                ),
                _ => self.reference(sel, Place::Src),
            }
        }
    }

    /// One ACL / grant destination.
    fn destination(&mut self, sel: &Selector, host: &str) {
        match &sel.alias {
            Alias::Autogroup(
                a @ (Autogroup::DangerAll | Autogroup::Shared | Autogroup::Nonroot),
            ) => {
                let help = match a {
                    Autogroup::DangerAll => "use \"*\" for every destination",
                    Autogroup::Shared => "autogroup:shared can only be a source",
                    _ => "autogroup:nonroot is only valid in SSH \"users\"",
                };
                self.error(
                    if *a == Autogroup::DangerAll {
                        Code::DangerAllInDst
                    } else {
                        Code::InvalidDst
                    },
                    sel.span,
                    format!("cannot use {a} as a dst"),
                    help,
                );
            }
            _ => self.reference(sel, Place::Dst { host }),
        }
    }

    /// With an `autogroup:self` destination, every source must be a set of users.
    fn self_sources(&mut self, src: &[Selector], self_span: Span, allow_wildcard: bool) {
        let bad = src.iter().find(|s| match &s.alias {
            Alias::User(_) | Alias::UserDomain(_) | Alias::Group(_) => false,
            Alias::Wildcard => !allow_wildcard,
            Alias::Autogroup(a) => {
                !(a.is_role() || matches!(a, Autogroup::Member | Autogroup::Members))
            }
            _ => true,
        });
        if let Some(bad) = bad {
            let help = if bad.alias == Alias::Wildcard {
                "in grants, \"*\" cannot be combined with autogroup:self: use autogroup:member"
            } else {
                "autogroup:self means \"the source user's own devices\", so the sources must be users, groups or autogroup:member"
            };
            let d = Diagnostic::error(Code::SelfWithInvalidSrc, bad.span, SELF_SOURCES)
                .with_label("not a set of users")
                .with_related(self_span, "autogroup:self destination")
                .with_help(help);
            self.push(d);
        }
    }

    /// Ports on a protocol that has none.
    fn portless(&mut self, proto: Protocol, span: Span, proto_span: Span) {
        let d = Diagnostic::error(
            Code::PortsOnPortlessProtocol,
            span,
            format!(
                "protocol does not support specific ports: {}, only \"*\" is allowed",
                quote(&proto.to_string())
            ),
        )
        .with_related(proto_span, "protocol without ports")
        .with_help("only tcp, udp and sctp have ports; use \"*\" for the others");
        self.push(d);
    }

    /// One grant.
    fn grant(&mut self, grant: &crate::model::Grant) {
        self.sources(&grant.src);
        for d in &grant.dst {
            if let Alias::Prefix(net) = &d.alias {
                if net.prefix_len() == 0 {
                    self.error(
                        Code::AllAddressesDst,
                        d.span,
                        format!(
                            "dst {}: to allow all IP addresses, use \"*\" or \"autogroup:internet\"",
                            quote(&d.text)
                        ),
                        "\"*\" means every destination; autogroup:internet means the internet through exit nodes",
                    );
                    continue;
                }
            }
            self.destination(d, &d.text);
        }
        if let Some(d) = grant
            .dst
            .iter()
            .find(|d| d.alias == Alias::Autogroup(Autogroup::SelfDevices))
        {
            self.self_sources(&grant.src, d.span, false);
        }
        if grant.ip.is_empty() && grant.app.is_empty() && !self.has_earlier_error(grant.span) {
            self.error(
                Code::EmptyGrant,
                grant.span,
                "ip and app can not both be empty",
                "add \"ip\": [\"*\"] (network access) or \"app\": {...} (application capabilities)",
            );
        }
        if !grant.app.is_empty() {
            if let Some(d) = grant
                .dst
                .iter()
                .find(|d| d.alias == Alias::Autogroup(Autogroup::Internet))
            {
                self.error(
                    Code::AppWithInternet,
                    d.span,
                    "cannot use app grants with autogroup:internet",
                    "application capabilities go to tailnet devices; grant the internet with \"ip\" only",
                );
            }
            for d in &grant.dst {
                self.internet_through_ipset(d, "as an app grant's destination");
            }
            // Tailscale's documentation (app capabilities): app grants "cannot target
            // autogroup:internet destinations, nor can they use administrative autogroups such
            // as autogroup:admin as destinations".
            for d in &grant.dst {
                if let Alias::Autogroup(group) = &d.alias {
                    if group.is_role() {
                        self.error(
                            Code::AppWithRoleAutogroup,
                            d.span,
                            format!("cannot use app grants with {group}"),
                            "app grants go to devices: name them with tags, users, groups or autogroup:member",
                        );
                    }
                }
            }
        }
        self.capabilities(&grant.app, true);
        // Ports on a protocol without ports (`icmp:22`): Tailscale reads a grant's `ip` with
        // tailcfg.ProtoPortRange (the captured ip errors are its messages), which takes any
        // protocol with any port, and its Kubernetes multi-cluster ingress guide writes
        // "ip": ["icmp:22"]. Whether the control server refuses it later is not recorded: a
        // warning (in ACLs, where the docs say only "*" is allowed, it stays an error).
        for ip in &grant.ip {
            if let Some(proto) = ip.value.proto {
                if !proto.has_ports() && !ip.value.ports.is_any() {
                    self.warning(
                        Code::GrantPortlessPorts,
                        ip.span,
                        format!(
                            "protocol {} has no ports: aclc cannot verify that Tailscale accepts ports on it in a grant",
                            quote(&proto.to_string())
                        ),
                        &format!(
                            "only tcp, udp and sctp have ports; write \"{proto}:*\""
                        ),
                    );
                }
            }
        }
        if !grant.via.is_empty() {
            for d in &grant.dst {
                if matches!(d.alias, Alias::Autogroup(Autogroup::SelfDevices)) {
                    self.warning(
                        Code::ViaSelfUnrouted,
                        d.span,
                        "autogroup:self is not routed through via: this grant gives it nothing",
                        "a user's own devices are reached directly; grant autogroup:self in a grant without via",
                    );
                }
            }
        }
        for via in &grant.via {
            if let Alias::Tag(_) = via.alias {
                self.reference(via, Place::Via);
            } else {
                // What it names is in use all the same: one error, not a second warning
                // that the host or group is never used.
                self.mark_used(via);
                self.error(
                    Code::ViaNotTag,
                    via.span,
                    "via can only be a tag",
                    "via names the tags of the subnet routers or exit nodes to route through",
                );
            }
        }
        for p in &grant.src_posture {
            self.posture_ref(p);
        }
        self.never_matches(&grant.src, grant.span);
        self.no_destinations(grant.dst.is_empty(), grant.span);
    }

    /// Capability names of `app` (grants and nodeAttrs). The allow-list of `tailscale.com`
    /// names is for grants (peer capabilities); node attributes in that domain configure
    /// Tailscale features (`tailscale.com/app-connectors`), and one aclc does not know is
    /// accepted with a warning.
    /// The groups a `tailscale.com/visible-groups` value lists count as used.
    fn visible_groups(&mut self, cap: &AppCapability) {
        let values = cap
            .values
            .value
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for value in values {
            let groups = value.get("groups").and_then(|g| g.as_array());
            for group in groups.into_iter().flatten().filter_map(|g| g.as_str()) {
                if group.starts_with("group:") {
                    self.used.insert(group.to_string());
                }
            }
        }
    }

    pub(super) fn capabilities(&mut self, caps: &[AppCapability], grant: bool) {
        for cap in caps {
            let name = cap.name.value.as_str();
            let form_ok = !name.contains("://")
                && name
                    .split_once('/')
                    .is_some_and(|(domain, path)| !domain.is_empty() && !path.is_empty());
            if !form_ok {
                self.error(
                    Code::InvalidCapability,
                    cap.name.span,
                    "capability name must have the form {domain}/{path}",
                    "write the capability without a scheme, e.g. \"example.com/cap/my-app\"",
                );
                continue;
            }
            if grant && name == AppCapability::KUBERNETES {
                self.recorder_tags(cap);
            }
            if !grant && name == VISIBLE_GROUPS {
                self.visible_groups(cap);
            }
            let domain = name.split('/').next().unwrap_or("");
            // "Capabilities under `tailscale.com` and `tailscale.io` domains are reserved for
            // Tailscale's use" (Tailscale's application capabilities page); no capture shows
            // what the control server answers for a `tailscale.io` one.
            if domain.eq_ignore_ascii_case("tailscale.io") {
                self.warning(
                    Code::UnverifiedCapability,
                    cap.name.span,
                    format!(
                        "{} is in the tailscale.io domain, which Tailscale reserves for its own use: aclc cannot verify that Tailscale accepts it",
                        quote(name)
                    ),
                    "name your own capabilities under a domain you control, e.g. \"example.com/cap/my-app\"",
                );
                continue;
            }
            let tailscale = domain.eq_ignore_ascii_case("tailscale.com");
            if tailscale && !grant && !TAILSCALE_NODE_ATTRS.contains(&name) {
                self.warning(
                    Code::UnverifiedNodeAttr,
                    cap.name.span,
                    format!(
                        "aclc does not know the node attribute {}: it cannot verify it",
                        quote(name)
                    ),
                    &format!(
                        "the tailscale.com node attributes aclc knows: {}",
                        TAILSCALE_NODE_ATTRS.join(", ")
                    ),
                );
            } else if tailscale && grant && !TAILSCALE_CAPS.contains(&name) {
                if !TAILSCALE_CAPS_REFUSED.contains(&name) {
                    self.warning(
                        Code::UnverifiedCapability,
                        cap.name.span,
                        format!(
                            "aclc does not know the capability {}: Tailscale refuses the \
                             tailscale.com capabilities it does not grant, and aclc cannot verify \
                             this one",
                            quote(name)
                        ),
                        &format!(
                            "the tailscale.com capabilities aclc knows a policy may grant: {}",
                            TAILSCALE_CAPS.join(", ")
                        ),
                    );
                    continue;
                }
                self.error(
                    Code::InvalidCapability,
                    cap.name.span,
                    "capability name must not be in the tailscale.com domain",
                    &format!(
                        "the tailscale.com capabilities a policy may grant: {}",
                        TAILSCALE_CAPS.join(", ")
                    ),
                );
            }
        }
    }

    /// The tags a Kubernetes capability names as session recorders (`"recorder":
    /// ["tag:k8s-recorder"]`): they count as used, and one `tagOwners` does not define is a
    /// warning (Tailscale's documentation says the tag must be defined; its check is not
    /// recorded). Recorders under `recorders`, which the operator does not read, are a
    /// warning of their own.
    fn recorder_tags(&mut self, cap: &AppCapability) {
        let values: Vec<&serde_json::Value> =
            cap.values.value.as_array().into_iter().flatten().collect();
        if values.iter().any(|v| v.get("recorders").is_some()) {
            self.warning(
                Code::KubernetesRecordersKey,
                cap.values.span,
                "the Kubernetes operator reads session recorders from \"recorder\", not \"recorders\": these sessions would not be recorded",
                "rename the key: \"recorder\": [\"tag:k8s-recorder\"]",
            );
        }
        // "Only one recorder tag is allowed per rule" (kb/1537); Tailscale's check is not
        // recorded, and the operator reads the list as written.
        if values.iter().any(|v| {
            AppCapability::tags_under(v, AppCapability::RECORDER)
                .nth(1)
                .is_some()
        }) {
            self.warning(
                Code::KubernetesRecorderCount,
                cap.values.span,
                "a Kubernetes rule names more than one recorder tag: Tailscale's documentation allows one per rule; aclc cannot verify that Tailscale accepts more",
                "give each rule one recorder tag, \"recorder\": [\"tag:k8s-recorder\"], and tag every recorder with it",
            );
        }
        let tags: Vec<String> = values
            .iter()
            .flat_map(|v| {
                AppCapability::tags_under(v, AppCapability::RECORDER)
                    .chain(AppCapability::tags_under(v, "recorders"))
            })
            .map(|t| crate::model::canonical_tag(t).into_owned())
            .collect();
        for tag in tags {
            if !self.index.tags.contains(tag.as_str()) {
                self.warning(
                    Code::UndefinedRecorderTag,
                    cap.values.span,
                    format!(
                        "recorder tag {} is not defined in tagOwners; aclc cannot verify that Tailscale accepts it",
                        quote(&tag)
                    ),
                    &format!(
                        "define it, e.g. \"tagOwners\": {{{}: [\"autogroup:admin\"]}}",
                        quote(&tag)
                    ),
                );
            }
            self.used.insert(tag);
        }
    }

    /// A policy whose `acls` or `grants` is present but empty, and holds no rule: no device
    /// can reach another (Tailscale's allow-all default applies only when both are absent).
    /// Tailscale's own template, `"grants": []` with "unrestricted" in its comment, cut a
    /// tailnet off (tailscale/tailscale#19595). (A policy of `app` grants alone opens no
    /// traffic either, but is written by someone who knows grants: not warned.)
    fn allows_no_traffic(&mut self) {
        let policy = self.policy;
        let acls = policy.acls.as_ref();
        let grants = policy.grants.as_ref();
        let Some(span) = grants.map(|g| g.span).or(acls.map(|a| a.span)) else {
            return;
        };
        let rules = acls.is_some_and(|a| !a.value.is_empty())
            || grants.is_some_and(|g| !g.value.is_empty());
        if !rules {
            self.warning(
                Code::AllowsNoTraffic,
                span,
                "the policy has no rule: no device can reach another",
                "Tailscale allows all traffic only when \"acls\" and \"grants\" are both absent; add a rule, e.g. {\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}",
            );
        }
    }

    /// A rule whose sources can never match anything.
    pub(super) fn never_matches(&mut self, src: &[Selector], span: Span) {
        if self.has_earlier_error(span) {
            return;
        }
        if src.is_empty() {
            self.warning(
                Code::NeverMatches,
                span,
                "this rule has no sources and never matches",
                "add sources, or remove the rule",
            );
            return;
        }
        let all_empty = src.iter().all(|s| match &s.alias {
            Alias::Group(g) => self.index.groups.get(g.as_str()).copied().unwrap_or(false),
            _ => false,
        });
        if all_empty {
            let first = src.first().map_or(span, |s| s.span);
            self.warning(
                Code::NeverMatches,
                first,
                "this rule never matches: its sources are all empty groups",
                "add members to the group, or remove the rule",
            );
        }
    }

    /// A rule without destinations.
    pub(super) fn no_destinations(&mut self, empty: bool, span: Span) {
        if empty && !self.has_earlier_error(span) {
            self.warning(
                Code::NeverMatches,
                span,
                "this rule has no destinations and never matches",
                "add destinations, or remove the rule",
            );
        }
    }
}
