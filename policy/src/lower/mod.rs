//! Lowering: the HuJSON value tree to the typed [`Policy`], checking shapes (unknown keys,
//! JSON types) and reading every value (selectors, ports, protocols, durations) on the way.
//!
//! Every error is collected; a broken entry is kept with what could be read (or dropped when
//! nothing could), so validation still finds the problems in the rest of the policy.

mod appconnector;
mod rules;

pub(crate) use appconnector::APP_CONNECTORS;

use crate::code::Code;
use crate::diag::Diagnostic;
use crate::hujson::{Key, Member, Value};
use crate::model::{
    attribute_status, parse_posture_condition, AttributeStatus, IP_ATTRIBUTES, NODE_ATTRIBUTES,
    OPEN_NAMESPACES,
};
use crate::model::{
    Alias, AttrConfigDef, AttrType, AutoApprovers, GroupDef, HostAddress, HostDef, IpSetDef,
    IpSetEntry, IpSetOp, Policy, PostureCondition, PostureDef, RouteApprover, Selector,
    ServiceApprover, Spanned, TagOwnerDef,
};
use crate::model::{AliasError, Autogroup};
use crate::source::{Source, Span};

/// Lower a document's root value. Returns the model (as much of it as could be read) and
/// every diagnostic found.
pub(crate) fn lower(source: &Source, root: &Value) -> (Policy, Vec<Diagnostic>) {
    let mut lowerer = Lowerer {
        source,
        diags: Vec::new(),
    };
    let policy = lowerer.policy(root);
    (policy, lowerer.diags)
}

/// The top-level keys of a policy file.
const TOP_LEVEL: &[&str] = &[
    "acls",
    "grants",
    "groups",
    "hosts",
    "tagOwners",
    "autoApprovers",
    "ssh",
    "nodeAttrs",
    "tests",
    "sshTests",
    "postures",
    "defaultSrcPosture",
    "ipsets",
    "derpMap",
    "disableIPv4",
    "OneCGNATRoute",
    // The API client's JSON spelling (Terraform and other tools write it).
    "oneCGNATRoute",
    "randomizeClientPort",
    "attrConfig",
];

/// State of one lowering run.
pub(crate) struct Lowerer<'s> {
    source: &'s Source,
    diags: Vec<Diagnostic>,
}

/// The members of an object whose keys were checked against a list of known keys.
pub(crate) struct Fields<'v> {
    /// (canonical key, member), in source order.
    members: Vec<(&'static str, &'v Member)>,
}

impl<'v> Fields<'v> {
    /// The value of `key` (the last one if repeated); `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.member(key).map(|m| &m.value)
    }

    /// The member of `key` (the last one if repeated); `null` counts as absent.
    pub(crate) fn member(&self, key: &str) -> Option<&'v Member> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| *m)
            .filter(|m| !m.value.is_null())
    }
}

/// Levenshtein distance between two strings, in characters.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let delete = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let insert = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(substitute.min(delete).min(insert));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The known key closest to `key`, if one is close enough to be a likely typo.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_lowercase();
    if let Some(k) = known.iter().find(|k| k.to_lowercase() == lower) {
        return Some(k);
    }
    let limit = (key.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (levenshtein(&lower, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `groups["group:eng"]`-style path element for an object key.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    format!("{parent}[{}]", crate::model::quote_go(key))
}

impl<'s> Lowerer<'s> {
    /// Record an error and return it for decoration.
    pub(crate) fn error(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::error(code, span, message))
    }

    /// Record a warning and return it for decoration.
    pub(crate) fn warning(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.push(Diagnostic::warning(code, span, message))
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "the element was pushed just before"
    )]
    fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// The span of a string's text: inside the quotes, surrounding whitespace trimmed, when
    /// the text is written without escapes; the whole value otherwise.
    pub(crate) fn text_span(&self, span: Span, decoded: &str) -> Span {
        let raw = self.source.slice(span);
        let inner = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .filter(|inner| *inner == decoded);
        match inner {
            // Empty text has nothing to underline: keep the quotes.
            Some(inner) if !inner.trim().is_empty() => {
                let lead = inner.len() - inner.trim_start().len();
                span.sub(1 + lead, 1 + lead + inner.trim().len())
            }
            _ => span,
        }
    }

    /// The span of a key's text, without the quotes when written without escapes.
    pub(crate) fn key_span(&self, key: &Key) -> Span {
        self.text_span(key.span, &key.name)
    }

    /// Report a value of the wrong JSON type.
    pub(crate) fn wrong_type(&mut self, value: &Value, path: &str, expected: &str) {
        let message = format!("{path} must be {expected}, got {}", value.kind_name());
        self.error(Code::WrongType, value.span, message);
    }

    /// Check that `value` is an object and that its keys are known. Unknown keys are errors
    /// (with a suggestion); keys that differ only in case are accepted with a warning, as
    /// Tailscale matches field names case-insensitively.
    pub(crate) fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        expected: &str,
        known: &[&'static str],
    ) -> Option<Fields<'v>> {
        let Some(members) = value.as_object() else {
            self.wrong_type(value, path, expected);
            return None;
        };
        let mut fields = Fields {
            members: Vec::new(),
        };
        for member in members {
            let name = member.key.name.as_str();
            if let Some(k) = known.iter().find(|k| **k == name) {
                fields.members.push((k, member));
                continue;
            }
            let span = self.key_span(&member.key);
            if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                self.warning(
                    Code::KeyCase,
                    span,
                    format!("field {} is spelled {}", quote(name), quote(k)),
                )
                .help = Some(format!(
                    "Tailscale accepts it, but write {} as documented",
                    quote(k)
                ));
                fields.members.push((k, member));
                continue;
            }
            let what = if path.is_empty() {
                String::new()
            } else {
                format!(" in {path}")
            };
            let help = match closest(name, known) {
                Some(k) => format!("did you mean {}?", quote(k)),
                None => format!(
                    "known fields here: {}",
                    known
                        .iter()
                        .map(|k| quote(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let d = self.error(
                Code::UnknownKey,
                span,
                format!("unknown field {}", quote(name)),
            );
            d.label = format!("not a known field{what}");
            d.help = Some(help);
        }
        Some(fields)
    }

    /// The elements of an array (`null`/absent: none).
    pub(crate) fn array<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
        expected: &str,
    ) -> &'v [Value] {
        match value {
            None => &[],
            Some(v) if v.is_null() => &[],
            Some(v) => match v.as_array() {
                Some(items) => items,
                None => {
                    self.wrong_type(v, path, expected);
                    &[]
                }
            },
        }
    }

    /// A string value, whitespace trimmed, with the span of its text.
    pub(crate) fn trimmed(&mut self, value: &Value, path: &str) -> Option<Spanned<String>> {
        match value.as_str() {
            Some(s) => Some(Spanned::new(
                s.trim().to_string(),
                self.text_span(value.span, s),
            )),
            None => {
                self.wrong_type(value, path, "a string");
                None
            }
        }
    }

    /// A string value exactly as written, with the span of its text.
    pub(crate) fn raw_string(&mut self, value: &Value, path: &str) -> Option<Spanned<String>> {
        match value.as_str() {
            Some(s) => {
                let raw = self.source.slice(value.span);
                let span = if raw.len() == s.len() + 2 {
                    value.span.sub(1, 1 + s.len())
                } else {
                    value.span
                };
                Some(Spanned::new(s.to_string(), span))
            }
            None => {
                self.wrong_type(value, path, "a string");
                None
            }
        }
    }

    /// A list of trimmed strings.
    pub(crate) fn strings(
        &mut self,
        value: Option<&Value>,
        path: &str,
        expected: &str,
    ) -> Vec<Spanned<String>> {
        let items = self.array(value, path, expected);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.trimmed(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, value: Option<&Value>, path: &str) -> Option<Spanned<bool>> {
        let v = value?;
        match v.as_bool() {
            Some(b) => Some(Spanned::new(b, v.span)),
            None => {
                self.wrong_type(v, path, "true or false");
                None
            }
        }
    }

    /// A selector read from its (trimmed) text.
    pub(crate) fn selector_from(&mut self, text: Spanned<String>) -> Option<Selector> {
        match Alias::parse(&text.value) {
            Ok(alias) => Some(Selector {
                alias,
                text: text.value,
                span: text.span,
            }),
            Err(AliasError::Empty) => {
                self.error(Code::EmptySelector, text.span, "empty selector")
                    .help = Some(
                    "write a user, group:, tag:, autogroup:, host alias, IP or prefix, or remove the entry"
                        .to_string(),
                );
                None
            }
            Err(AliasError::UnknownAutogroup(name)) => {
                let known: Vec<&str> = Autogroup::ALL.iter().map(|a| a.as_str()).collect();
                let help = match closest(&name, &known) {
                    Some(k) => format!("did you mean {}?", quote(k)),
                    None => format!("known autogroups: {}", known.join(", ")),
                };
                self.error(
                    Code::UnknownAutogroup,
                    text.span,
                    format!("unknown autogroup {}", quote(&name)),
                )
                .help = Some(help);
                None
            }
            Err(AliasError::BadUserDomain(name)) => {
                self.error(
                    Code::InvalidUserDomain,
                    text.span,
                    format!("invalid selector {}", quote(&name)),
                )
                .help = Some("the `user:` form is `user:*@domain`".to_string());
                None
            }
        }
    }

    /// A selector from a JSON string.
    pub(crate) fn selector(&mut self, value: &Value, path: &str) -> Option<Selector> {
        let text = self.trimmed(value, path)?;
        self.selector_from(text)
    }

    /// A list of selectors.
    pub(crate) fn selectors(&mut self, value: Option<&Value>, path: &str) -> Vec<Selector> {
        let items = self.array(value, path, "an array of strings");
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.selector(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }

    /// The whole policy.
    fn policy(&mut self, root: &Value) -> Policy {
        let mut policy = Policy {
            span: root.span,
            ..Policy::default()
        };
        let Some(top) = self.object(root, "the policy", "a JSON object", TOP_LEVEL) else {
            return policy;
        };
        if let Some(v) = top.get("acls") {
            let items = self.array(Some(v), "acls", "an array of rules");
            let acls = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.acl(item, &format!("acls[{i}]")))
                .collect();
            policy.acls = Some(Spanned::new(acls, v.span));
        }
        if let Some(v) = top.get("grants") {
            let items = self.array(Some(v), "grants", "an array of grants");
            let grants = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.grant(item, &format!("grants[{i}]")))
                .collect();
            policy.grants = Some(Spanned::new(grants, v.span));
        }
        if let Some(v) = top.get("groups") {
            policy.groups = self.groups(v);
        }
        if let Some(v) = top.get("hosts") {
            policy.hosts = self.hosts(v);
        }
        if let Some(v) = top.get("tagOwners") {
            policy.tag_owners = self.tag_owners(v);
        }
        if let Some(v) = top.get("autoApprovers") {
            policy.auto_approvers = self.auto_approvers(v);
        }
        if let Some(v) = top.get("ssh") {
            let items = self.array(Some(v), "ssh", "an array of SSH rules");
            let rules = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.ssh_rule(item, &format!("ssh[{i}]")))
                .collect();
            policy.ssh = Some(Spanned::new(rules, v.span));
        }
        let items = self.array(top.get("nodeAttrs"), "nodeAttrs", "an array");
        policy.node_attrs = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.node_attr(item, &format!("nodeAttrs[{i}]")))
            .collect();
        let items = self.array(top.get("tests"), "tests", "an array of tests");
        policy.tests = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.network_test(item, &format!("tests[{i}]")))
            .collect();
        let items = self.array(top.get("sshTests"), "sshTests", "an array of SSH tests");
        policy.ssh_tests = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.ssh_test(item, &format!("sshTests[{i}]")))
            .collect();
        if let Some(v) = top.get("postures") {
            policy.postures = self.postures(v);
        }
        policy.default_src_posture = self.strings(
            top.get("defaultSrcPosture"),
            "defaultSrcPosture",
            "an array of posture names",
        );
        if let Some(v) = top.get("ipsets") {
            policy.ipsets = self.ipsets(v);
        }
        if let Some(v) = top.get("derpMap") {
            if v.as_object().is_some() {
                policy.derp_map = Some(Spanned::new(v.to_json(), v.span));
            } else {
                self.wrong_type(v, "derpMap", "an object");
            }
        }
        policy.disable_ipv4 = self.boolean(top.get("disableIPv4"), "disableIPv4");
        policy.randomize_client_port =
            self.boolean(top.get("randomizeClientPort"), "randomizeClientPort");
        if let Some(v) = top.get("attrConfig") {
            policy.attr_config = self.attr_config(v);
        }
        let cgnat = top
            .get("OneCGNATRoute")
            .map(|v| (v, "OneCGNATRoute"))
            .or_else(|| top.get("oneCGNATRoute").map(|v| (v, "oneCGNATRoute")));
        if let Some((v, key)) = cgnat {
            if let Some(s) = self.trimmed(v, key) {
                if matches!(s.value.as_str(), "" | "mac-always" | "mac-never") {
                    policy.one_cgnat_route = Some(s);
                } else {
                    self.error(
                        Code::InvalidSetting,
                        s.span,
                        format!(
                            "{key} must be \"\", \"mac-always\" or \"mac-never\", got {}",
                            quote(&s.value)
                        ),
                    );
                }
            }
        }
        policy
    }

    /// `groups`.
    fn groups(&mut self, v: &Value) -> Vec<GroupDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "groups", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("groups", &m.key.name);
            let name = Spanned::new(m.key.name.clone(), self.key_span(&m.key));
            let list = if m.value.is_null() {
                Vec::new()
            } else if m.value.as_array().is_some() {
                self.strings(Some(&m.value), &path, "an array of users")
            } else {
                self.wrong_type(&m.value, &path, "an array of users");
                continue;
            };
            out.push(GroupDef {
                name,
                members: list,
                span: m.value.span,
            });
        }
        out
    }

    /// `hosts`.
    fn hosts(&mut self, v: &Value) -> Vec<HostDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "hosts", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("hosts", &m.key.name);
            let name = Spanned::new(m.key.name.clone(), self.key_span(&m.key));
            let Some(text) = m.value.as_str() else {
                self.wrong_type(&m.value, &path, "a string (an IP address or prefix)");
                continue;
            };
            let span = self.text_span(m.value.span, text);
            let text = text.trim();
            let address = if let Some(ip) = crate::model::parse_ip_text(text) {
                HostAddress::Ip(ip)
            } else if let Ok(net) = text.parse::<ipnet::IpNet>() {
                HostAddress::Prefix(net)
            } else {
                self.error(
                    Code::InvalidHost,
                    span,
                    format!("{path}: {}: invalid address", quote(text)),
                )
                .help =
                    Some("a host is an IP address (100.64.0.1) or a prefix (10.0.0.0/8)".into());
                continue;
            };
            out.push(HostDef {
                name,
                address: Spanned::new(address, span),
                text: text.to_string(),
            });
        }
        out
    }

    /// `tagOwners`.
    fn tag_owners(&mut self, v: &Value) -> Vec<TagOwnerDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "tagOwners", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("tagOwners", &m.key.name);
            if !m.value.is_null() && m.value.as_array().is_none() {
                self.wrong_type(&m.value, &path, "an array of owners");
                continue;
            }
            let owners = self.selectors(Some(&m.value), &path);
            out.push(TagOwnerDef {
                tag: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                owners,
                span: m.value.span,
            });
        }
        out
    }

    /// `autoApprovers`.
    fn auto_approvers(&mut self, v: &Value) -> AutoApprovers {
        let mut out = AutoApprovers {
            span: v.span,
            ..AutoApprovers::default()
        };
        let Some(fields) = self.object(
            v,
            "autoApprovers",
            "an object",
            &["routes", "exitNode", "services"],
        ) else {
            return out;
        };
        if let Some(routes) = fields.get("routes") {
            if let Some(members) = routes.as_object() {
                for m in members {
                    let path = key_path("autoApprovers.routes", &m.key.name);
                    let span = self.key_span(&m.key);
                    let text = m.key.name.trim();
                    let approvers = self.selectors(Some(&m.value), &path);
                    match text.parse::<ipnet::IpNet>() {
                        Ok(net) => out.routes.push(RouteApprover {
                            prefix: Spanned::new(net, span),
                            text: text.to_string(),
                            approvers,
                        }),
                        Err(_) => {
                            self.error(
                                Code::InvalidPrefix,
                                span,
                                format!("autoApprovers.routes: {}: invalid prefix", quote(text)),
                            )
                            .help = Some(
                                "route keys are prefixes such as 10.0.0.0/8 or fd00::/64".into(),
                            );
                        }
                    }
                }
            } else {
                self.wrong_type(routes, "autoApprovers.routes", "an object");
            }
        }
        out.exit_node = self.selectors(fields.get("exitNode"), "autoApprovers.exitNode");
        if let Some(services) = fields.get("services") {
            if let Some(members) = services.as_object() {
                for m in members {
                    let path = key_path("autoApprovers.services", &m.key.name);
                    let approvers = self.selectors(Some(&m.value), &path);
                    out.services.push(ServiceApprover {
                        service: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                        approvers,
                    });
                }
            } else {
                self.wrong_type(services, "autoApprovers.services", "an object");
            }
        }
        out
    }

    /// `postures`.
    fn postures(&mut self, v: &Value) -> Vec<PostureDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "postures", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("postures", &m.key.name);
            let texts = self.strings(Some(&m.value), &path, "an array of conditions");
            let conditions = texts
                .into_iter()
                .filter_map(|t| self.posture_condition(t))
                .collect();
            out.push(PostureDef {
                name: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                conditions,
            });
        }
        out
    }

    /// `attrConfig`: attribute name -> `{type, allowSetByNode, broadcastToPeers}`.
    fn attr_config(&mut self, v: &Value) -> Vec<AttrConfigDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "attrConfig", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("attrConfig", &m.key.name);
            let Some(fields) = self.object(
                &m.value,
                &path,
                "an object",
                &["type", "allowSetByNode", "broadcastToPeers"],
            ) else {
                continue;
            };
            let kind = match fields.get("type") {
                Some(t) => self.trimmed(t, &format!("{path}.type")).and_then(|t| {
                    match AttrType::from_name(&t.value) {
                        Some(kind) => Some(Spanned::new(kind, t.span)),
                        None => {
                            self.error(
                                Code::InvalidAttrType,
                                t.span,
                                format!(
                                    "{path}.type: {} is not a type: use \"string\", \"bool\" or \"number\"",
                                    quote(&t.value)
                                ),
                            )
                            .help = Some("custom attributes are strings, booleans or numbers".into());
                            None
                        }
                    }
                }),
                None => None,
            };
            out.push(AttrConfigDef {
                name: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                kind,
                allow_set_by_node: self.boolean(
                    fields.get("allowSetByNode"),
                    &format!("{path}.allowSetByNode"),
                ),
                broadcast_to_peers: self.selectors(
                    fields.get("broadcastToPeers"),
                    &format!("{path}.broadcastToPeers"),
                ),
                span: m.value.span,
            });
        }
        out
    }

    /// One condition of a posture: parsed, and its attribute checked against the namespaces
    /// aclc knows (an unknown one is accepted with a warning: aclc cannot verify it).
    fn posture_condition(&mut self, t: Spanned<String>) -> Option<Spanned<PostureCondition>> {
        // The part of the condition a message points at (the whole string when it has escapes
        // and offsets into the text would be off).
        let exact = t.span.len() == t.value.len();
        let part = |from: usize, to: usize| if exact { t.span.sub(from, to) } else { t.span };
        let condition = match parse_posture_condition(&t.value) {
            Ok(c) => c,
            Err(e) => {
                self.error(
                    Code::InvalidPosture,
                    part(e.start, e.end),
                    format!("invalid posture condition {}", quote(&t.value)),
                )
                .help = Some(e.help);
                return None;
            }
        };
        let lead = t.value.len() - t.value.trim_start().len();
        let attribute_span = part(lead, lead + condition.attribute.len());
        let (namespace, name) = condition
            .attribute
            .split_once(':')
            .unwrap_or(("", condition.attribute.as_str()));
        let help = match attribute_status(&condition.attribute) {
            AttributeStatus::Known => None,
            AttributeStatus::UnknownAttribute => Some(format!(
                "the `{namespace}:` attributes aclc knows are {}; aclc cannot verify `{name}`, so check its spelling",
                known_attributes(namespace)
            )),
            AttributeStatus::UnknownNamespace(Some(like)) => Some(format!(
                "aclc does not know the namespace `{namespace}:` and cannot verify it; did you mean `{like}:`?"
            )),
            AttributeStatus::UnknownNamespace(None) => Some(format!(
                "aclc does not know the namespace `{namespace}:` and cannot verify it; known namespaces are node, ip, {}",
                OPEN_NAMESPACES.join(", ")
            )),
        };
        if let Some(help) = help {
            self.warning(
                Code::UnknownPostureAttribute,
                attribute_span,
                format!("unknown posture attribute {}", quote(&condition.attribute)),
            )
            .help = Some(help);
        }
        Some(Spanned::new(condition, t.span))
    }

    /// `ipsets`.
    fn ipsets(&mut self, v: &Value) -> Vec<IpSetDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "ipsets", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("ipsets", &m.key.name);
            let texts = self.strings(Some(&m.value), &path, "an array of entries");
            let mut entries = Vec::new();
            for t in texts {
                let (op, rest, offset) = if let Some(r) = t.value.strip_prefix("add ") {
                    (IpSetOp::Add, r, 4)
                } else if let Some(r) = t.value.strip_prefix("remove ") {
                    (IpSetOp::Remove, r, 7)
                } else {
                    (IpSetOp::Add, t.value.as_str(), 0)
                };
                let lead = rest.len() - rest.trim_start().len();
                let target_text = rest.trim();
                let span = if t.span.len() == t.value.len() {
                    t.span.sub(offset + lead, offset + lead + target_text.len())
                } else {
                    t.span
                };
                if let Some(target) =
                    self.selector_from(Spanned::new(target_text.to_string(), span))
                {
                    entries.push(IpSetEntry {
                        op,
                        target,
                        span: t.span,
                    });
                }
            }
            out.push(IpSetDef {
                name: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                entries,
            });
        }
        out
    }
}

/// The documented attributes of a namespace, for a warning's help.
fn known_attributes(namespace: &str) -> String {
    let list = match namespace {
        "node" => NODE_ATTRIBUTES,
        _ => IP_ATTRIBUTES,
    };
    list.join(", ")
}

/// A string in double quotes, escaped as Go's `%q` does for the common cases.
pub(crate) fn quote(s: &str) -> String {
    crate::model::quote_go(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_prefers_case_then_distance() {
        let known = ["acls", "grants", "tagOwners"];
        assert_eq!(closest("ACLS", &known), Some("acls"));
        assert_eq!(closest("acl", &known), Some("acls"));
        assert_eq!(closest("tagowner", &known), Some("tagOwners"));
        assert_eq!(closest("zzzzzzzz", &known), None);
    }
}
