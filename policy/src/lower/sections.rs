//! Lowering of the top level and the definition sections: the policy object itself, `groups`,
//! `hosts`, `tagOwners`, `autoApprovers`, `postures`, `attrConfig`, `ipsets` and the tailnet
//! settings. The rule sections are in `rules.rs`.

use crate::code::Code;
use crate::hujson::Value;
use crate::model::{
    attribute_status, parse_posture_condition, AttributeStatus, IP_ATTRIBUTES, NODE_ATTRIBUTES,
    OPEN_NAMESPACES,
};
use crate::model::{
    AttrConfigDef, AttrType, AutoApprovers, ExternalTailnetDef, GroupDef, HostAddress, HostDef,
    IpSetDef, IpSetEntry, IpSetOp, Policy, PostureCondition, PostureDef, RouteApprover,
    ServiceApprover, Spanned, TagOwnerDef,
};

use super::{key_path, quote, Lowerer, TOP_LEVEL};

/// The fields of `autoApprovers`.
pub(crate) const AUTO_APPROVER_KEYS: &[&str] = &["routes", "exitNode", "services"];
/// The fields of one `attrConfig` entry.
pub(crate) const ATTR_CONFIG_KEYS: &[&str] = &["type", "allowSetByNode", "broadcastToPeers"];
pub(crate) const EXTERNAL_TAILNET_KEYS: &[&str] = &[
    "externalID",
    "allowIncomingConnections",
    "allowExternalReferencesTo",
];

impl Lowerer<'_> {
    /// The warning for a prefix at `path` with bits set past its length, if it has some.
    fn host_bits(&mut self, net: &ipnet::IpNet, span: crate::Span, path: &str) {
        if let Some((message, help)) = crate::model::host_bits_warning(net) {
            self.warning(Code::PrefixHostBits, span, format!("{path}: {message}"))
                .help = Some(help);
        }
    }

    /// The warning for an IPv4-mapped IPv6 host at `path` (it matches no IPv4 address).
    fn mapped_v4(&mut self, addr: std::net::IpAddr, len: u8, span: crate::Span, path: &str) {
        if let Some((message, help)) = crate::model::mapped_v4_warning(addr, len) {
            self.warning(Code::Ipv4Mapped, span, format!("{path}: {message}"))
                .help = Some(help);
        }
    }

    /// The whole policy.
    pub(super) fn policy(&mut self, root: &Value) -> Policy {
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
                self.derp_map(v);
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
        if let Some(v) = top.get("externalTailnets") {
            policy.external_tailnets = self.external_tailnets(v);
        }
        if let Some(v) = top.get("extraDNSRecords").filter(|v| !v.is_null()) {
            if v.as_array().is_none() {
                self.wrong_type(v, "extraDNSRecords", "an array of records");
            } else {
                self.warning(
                    Code::UnverifiedSection,
                    v.span,
                    "extraDNSRecords is not among the policy file's documented sections; aclc cannot verify that this tailnet accepts it",
                )
                .help = Some(
                    "Tailscale enables extra DNS records per tailnet (its support does); aclc checks nothing inside it and compiles nothing from it"
                        .to_string(),
                );
            }
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
            // A group named like a synced one (`group:name@domain`) is read in lowercase, as
            // its references are (`Alias::parse`).
            let name = match crate::model::is_synced_group(&m.key.name) {
                true => m.key.name.to_lowercase(),
                false => m.key.name.clone(),
            };
            let name = Spanned::new(name, self.key_span(&m.key));
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
            self.host_name(&name);
            let Some(text) = m.value.as_str() else {
                self.wrong_type(&m.value, &path, "a string (an IP address or prefix)");
                continue;
            };
            let span = self.text_span(m.value.span, text);
            let text = text.trim();
            let address = if let Some(ip) = crate::model::parse_ip_text(text) {
                self.mapped_v4(ip, 128, span, &path);
                HostAddress::Ip(ip)
            } else if let Some(net) = crate::model::parse_prefix(text) {
                self.host_bits(&net, span, &path);
                self.mapped_v4(net.addr(), net.prefix_len(), span, &path);
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

    /// A host's name: Tailscale refuses one with an `@` (it would read as a user; its
    /// message, as the admin console shows it, tailscale/tailscale#7886) or a `:` (it would
    /// read as an address and port; tailscale/tailscale#16614). The host is still defined,
    /// so its uses are not reported as undefined as well.
    fn host_name(&mut self, name: &Spanned<String>) {
        let problem = if name.value.contains('@') {
            format!(
                "host names cannot include an @, please change the name for {}",
                quote(&name.value)
            )
        } else if name.value.contains(':') {
            "host name must not contain colon (:)".to_string()
        } else {
            return;
        };
        self.error(Code::InvalidHostName, name.span, problem).help = Some(
            "host names are plain words such as \"db\" or \"db.corp\": rename it, and its uses"
                .into(),
        );
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
            let span = self.key_span(&m.key);
            let tag = crate::model::canonical_tag(&m.key.name).into_owned();
            self.tag_case(&m.key.name, &tag, span);
            out.push(TagOwnerDef {
                tag: Spanned::new(tag, span),
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
        let Some(fields) = self.object(v, "autoApprovers", "an object", AUTO_APPROVER_KEYS) else {
            return out;
        };
        if let Some(routes) = fields.get("routes") {
            if let Some(members) = routes.as_object() {
                for m in members {
                    let path = key_path("autoApprovers.routes", &m.key.name);
                    let span = self.key_span(&m.key);
                    let text = m.key.name.trim();
                    let approvers = self.selectors(Some(&m.value), &path);
                    match crate::model::parse_prefix(text).ok_or(()) {
                        Ok(net) => {
                            self.host_bits(&net, span, &path);
                            out.routes.push(RouteApprover {
                                prefix: Spanned::new(net, span),
                                text: text.to_string(),
                                approvers,
                            });
                        }
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
                    let span = self.key_span(&m.key);
                    // A key is a service name or a tag the services carry.
                    let service = crate::model::canonical_tag(&m.key.name).into_owned();
                    self.tag_case(&m.key.name, &service, span);
                    out.services.push(ServiceApprover {
                        service: Spanned::new(service, span),
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
            // Null or `[]`: no condition, so every device passes (the gate disappears).
            if texts.is_empty() && (m.value.is_null() || m.value.as_array().is_some()) {
                self.warning(
                    Code::EmptyPosture,
                    self.key_span(&m.key),
                    format!(
                        "{path} has no conditions: every device satisfies it; aclc cannot verify how Tailscale reads an empty posture"
                    ),
                )
                .help = Some(
                    "a rule gated on this posture admits all its sources; give the posture its conditions, or remove it and its uses"
                        .to_string(),
                );
            }
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

    /// `externalTailnets`: alias -> `{externalID, allowIncomingConnections,
    /// allowExternalReferencesTo}`, with one warning for the section: aclc knows nothing of
    /// the other tailnets.
    fn external_tailnets(&mut self, v: &Value) -> Vec<ExternalTailnetDef> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, "externalTailnets", "an object");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let path = key_path("externalTailnets", &m.key.name);
            let Some(fields) = self.object(&m.value, &path, "an object", EXTERNAL_TAILNET_KEYS)
            else {
                continue;
            };
            out.push(ExternalTailnetDef {
                alias: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                external_id: fields
                    .get("externalID")
                    .and_then(|id| self.trimmed(id, &format!("{path}.externalID"))),
                allow_incoming_connections: self.boolean(
                    fields.get("allowIncomingConnections"),
                    &format!("{path}.allowIncomingConnections"),
                ),
                allow_external_references_to: self.selectors(
                    fields.get("allowExternalReferencesTo"),
                    &format!("{path}.allowExternalReferencesTo"),
                ),
                span: m.value.span,
            });
        }
        if !out.is_empty() {
            self.warning(
                Code::ExternalTailnets,
                v.span,
                "externalTailnets (declarative node sharing, in alpha): aclc does not know the other tailnets' users and devices, so nothing granted to them is compiled; aclc cannot verify that this tailnet may use the feature",
            )
            .help = Some(
                "Tailscale applies a sharing relationship only when both tailnets declare it; the sharing tailnet must be in the alpha"
                    .to_string(),
            );
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
            let Some(fields) = self.object(&m.value, &path, "an object", ATTR_CONFIG_KEYS) else {
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
        // Ordering compares numbers and versions (`1.60` > `1.9`); any other string orders
        // with nothing, so the condition holds for no device (fail closed), which is said.
        if let (true, Some(crate::model::PostureValue::Str(value))) =
            (condition.operator.is_ordering(), &condition.value)
        {
            if crate::model::compare_versions(value, value).is_none() {
                self.warning(
                    Code::PostureNeverHolds,
                    t.span,
                    format!(
                        "{} never holds: `{}` orders numbers and versions, and {} is neither",
                        quote(&condition.text),
                        condition.operator.as_str(),
                        quote(value)
                    ),
                )
                .help = Some(
                    "compare strings with ==, !=, IN or NOT IN; a version is compared part by part ('1.60' > '1.9')"
                        .to_string(),
                );
            }
        }
        // Country codes are ISO 3166 codes in upper case (kb/1288 writes
        // `ip:country IN ['CA', 'US']`); values are compared as written, so a lower-case
        // code equals no device's country.
        if condition.attribute == "ip:country" {
            let values = condition
                .value
                .as_ref()
                .map(crate::model::PostureValue::strings)
                .unwrap_or_default();
            let lower = values
                .into_iter()
                .find(|v| v.len() == 2 && v.bytes().all(|b| b.is_ascii_lowercase()));
            if let Some(code) = lower {
                let upper = code.to_ascii_uppercase();
                self.warning(
                    Code::PostureCountryCase,
                    t.span,
                    format!(
                        "{}: country codes are upper case, so {} is no device's country",
                        quote(&condition.text),
                        quote(code)
                    ),
                )
                .help = Some(format!("write {}", quote(&upper)));
            }
        }
        // Operating systems are lower-case names (the posture page lists `macos`, `windows`,
        // `linux`, `ios`, `android`, ...): `'macOS'` equals no device's `node:os`.
        if condition.attribute == "node:os" {
            let values = condition
                .value
                .as_ref()
                .map(crate::model::PostureValue::strings)
                .unwrap_or_default();
            const SYSTEMS: [&str; 7] = [
                "android", "freebsd", "ios", "linux", "macos", "openbsd", "windows",
            ];
            let cased = values.into_iter().find(|v| {
                let lower = v.to_ascii_lowercase();
                lower != *v && SYSTEMS.contains(&lower.as_str())
            });
            if let Some(os) = cased {
                self.warning(
                    Code::PostureOsCase,
                    t.span,
                    format!(
                        "{}: operating systems are lower-case names, so {} is no device's node:os",
                        quote(&condition.text),
                        quote(os)
                    ),
                )
                .help = Some(format!("write {}", quote(&os.to_ascii_lowercase())));
            }
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
            // Tailscale's documentation (IP sets): "You must include the operation type before
            // the target unless the named IP set only uses add operations."
            let removes = texts.iter().any(|t| t.value.starts_with("remove "));
            if removes {
                for t in texts
                    .iter()
                    .filter(|t| !t.value.starts_with("add ") && !t.value.starts_with("remove "))
                {
                    self.warning(
                        Code::IpsetBareEntry,
                        t.span,
                        format!(
                            "{path}: {} has no operation: Tailscale's documentation asks for \
                             \"add <target>\" in an IP set that removes; aclc reads it as add \
                             and cannot verify that Tailscale accepts it",
                            quote(&t.value)
                        ),
                    )
                    .help = Some(format!(
                        "write {}",
                        quote(&format!("add {}", t.value.trim()))
                    ));
                }
            }
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
