//! Lowering of the rule sections: `acls`, `grants`, `ssh`, `nodeAttrs`, `tests`, `sshTests`.

use super::{quote, Lowerer};
use crate::code::Code;
use crate::hujson::Value;
use crate::model::{parse_port_list, PortError};
use crate::model::{
    Acl, AclAction, AclDestination, Alias, AppCapability, CheckPeriod, GoDuration, Grant,
    IpProtoPorts, NetworkTest, NodeAttr, Protocol, Selector, Spanned, SshAction, SshRule, SshTest,
    SshUser,
};

/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const ACL_KEYS: &[&str] = &[
    "action",
    "src",
    "dst",
    "proto",
    "users",
    "ports",
    "srcPosture",
];
/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const GRANT_KEYS: &[&str] = &["src", "dst", "ip", "app", "via", "srcPosture"];
/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const SSH_KEYS: &[&str] = &[
    "action",
    "src",
    "dst",
    "users",
    "checkPeriod",
    "acceptEnv",
    "srcPosture",
    "recorder",
    "enforceRecorder",
];
/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const NODE_ATTR_KEYS: &[&str] = &["target", "attr", "app", "ipPool"];
/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const TEST_KEYS: &[&str] = &[
    "src",
    "user",
    "srcPostureAttrs",
    "proto",
    "accept",
    "allow",
    "deny",
];
/// The fields the lowering reads (also the policy schema's properties).
pub(crate) const SSH_TEST_KEYS: &[&str] =
    &["src", "dst", "accept", "check", "deny", "srcPostureAttrs"];

impl Lowerer<'_> {
    /// Pick between a field and its legacy spelling, warning about the legacy one.
    fn legacy<'v>(
        &mut self,
        fields: &super::Fields<'v>,
        current: &str,
        legacy: &str,
        path: &str,
    ) -> Option<&'v Value> {
        let new = fields.member(current);
        let old = fields.member(legacy);
        if let Some(old) = old {
            let span = self.key_span(&old.key);
            if new.is_some() {
                self.error(
                    Code::ConflictingFields,
                    span,
                    format!(
                        "{path}: {} and its legacy spelling {} cannot both be used",
                        quote(current),
                        quote(legacy)
                    ),
                )
                .help = Some(format!("merge the entries into {}", quote(current)));
            } else {
                self.warning(
                    Code::LegacyField,
                    span,
                    format!(
                        "{} is a legacy spelling of {}",
                        quote(legacy),
                        quote(current)
                    ),
                )
                .help = Some(format!("rename it to {}", quote(current)));
            }
        }
        new.or(old).map(|m| &m.value)
    }

    /// One `acls` entry.
    pub(super) fn acl(&mut self, v: &Value, path: &str) -> Option<Acl> {
        let fields = self.object(v, path, "an object", ACL_KEYS)?;
        let action = match fields.get("action") {
            Some(a) => self.trimmed(a, &format!("{path}.action")),
            None => None,
        };
        let action_span = action.as_ref().map_or(v.span, |a| a.span);
        let action_text = action.as_ref().map_or("", |a| a.value.as_str());
        if action_text != "accept" {
            self.error(
                Code::InvalidAction,
                action_span,
                format!("action={} is not supported", quote(action_text)),
            )
            .help = Some(
                "ACL rules only allow traffic: the only action is \"accept\"; traffic no rule allows is denied"
                    .into(),
            );
        }
        let src_value = self.legacy(&fields, "src", "users", path);
        let src = self.selectors(src_value, &format!("{path}.src"));
        let dst_value = self.legacy(&fields, "dst", "ports", path);
        let dst_items = self.array(dst_value, &format!("{path}.dst"), "an array of strings");
        let mut dst = Vec::new();
        for (i, item) in dst_items.iter().enumerate() {
            if let Some(d) = self.acl_destination(item, &format!("{path}.dst[{i}]")) {
                dst.push(d);
            }
        }
        let proto = match fields.get("proto") {
            None => None,
            Some(p) => self.protocol(p, &format!("{path}.proto")),
        };
        let src_posture = self.strings(
            fields.get("srcPosture"),
            &format!("{path}.srcPosture"),
            "an array of posture names",
        );
        Some(Acl {
            action: Spanned::new(AclAction::Accept, action_span),
            src,
            dst,
            proto,
            src_posture,
            span: v.span,
        })
    }

    /// An ACL `proto`: a name or number, as a string (or a bare JSON number).
    fn protocol(&mut self, v: &Value, path: &str) -> Option<Spanned<Protocol>> {
        let text = match &v.kind {
            crate::hujson::ValueKind::Number(n) => Spanned::new(n.0.clone(), v.span),
            _ => self.trimmed(v, path)?,
        };
        if text.value.is_empty() {
            // An empty proto is the same as none.
            return None;
        }
        match Protocol::parse(&text.value) {
            Ok(p) => {
                self.unverified_protocol(&text.value, text.span);
                Some(Spanned::new(p, text.span))
            }
            Err(message) => {
                self.error(Code::InvalidProtocol, text.span, message).help = Some(
                    "use a protocol name (tcp, udp, icmp, sctp, gre, esp, ah, igmp, ...) or a number 1-255"
                        .into(),
                );
                None
            }
        }
    }

    /// Warn when `name` is a protocol name only Tailscale's newer parser knows.
    fn unverified_protocol(&mut self, name: &str, span: crate::Span) {
        if Protocol::unverified_name(name) {
            self.warning(
                Code::UnverifiedProtocolName,
                span,
                format!(
                    "proto name {}: aclc cannot verify that Tailscale accepts it (its newer \
                     parser knows it, its older one does not)",
                    quote(name.trim())
                ),
            )
            .help = Some(
                "for a protocol Tailscale surely accepts, use its number or an older name \
                 (\"icmp\" for ICMPv4, \"ipv6-icmp\" for ICMPv6, 33 for DCCP)"
                    .into(),
            );
        }
    }

    /// One ACL `dst` entry: `host:ports`, split at the last colon (`[v6]:ports` bracketed).
    fn acl_destination(&mut self, v: &Value, path: &str) -> Option<AclDestination> {
        let text = self.trimmed(v, path)?;
        let exact = text.span.len() == text.value.len();
        let sub = |from: usize, to: usize| {
            if exact {
                text.span.sub(from, to)
            } else {
                text.span
            }
        };
        let whole = text.value.as_str();
        // Host part text, its offset in `whole`, and the port list with its offset.
        let split = if let Some(rest) = whole.strip_prefix('[') {
            // `[addr]:ports` or `[addr]/len:ports`.
            rest.find(']').and_then(|close| {
                let addr = rest.get(..close).unwrap_or("");
                let after = rest.get(close + 1..).unwrap_or("");
                let (suffix, ports) = after.rsplit_once(':')?;
                let host = format!("{addr}{suffix}");
                let port_offset = whole.len() - ports.len();
                Some((host, 1, ports.to_string(), port_offset))
            })
        } else {
            whole.rfind(':').map(|i| {
                (
                    whole.get(..i).unwrap_or("").to_string(),
                    0,
                    whole.get(i + 1..).unwrap_or("").to_string(),
                    i + 1,
                )
            })
        };
        if let Some((host, ..)) = split.as_ref().filter(|_| whole.starts_with('[')) {
            // Only an IPv6 address goes inside the brackets (`[fd7a::1]:22`, or with its
            // length after them, `[fd7a::]/48:22`); a prefix inside them
            // (`[fd7a::/48]:22`) is read as that prefix, unverified like any other text.
            let inside = whole
                .get(1..)
                .and_then(|rest| rest.split_once(']'))
                .map_or("", |(inside, _)| inside);
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                self.warning(
                    Code::UnverifiedBracketedHost,
                    text.span,
                    format!(
                        "dst={}: brackets around a destination that is not an IPv6 address; aclc reads it as {} and cannot verify that Tailscale does",
                        quote(whole),
                        quote(host)
                    ),
                )
                .help = Some(format!(
                    "brackets are for IPv6 addresses only: write {}",
                    quote(&whole.replacen('[', "", 1).replacen(']', "", 1))
                ));
            }
        }
        let Some((host, host_offset, ports_text, port_offset)) = split else {
            self.error(
                Code::MissingPort,
                text.span,
                format!(
                    "dst={}: hostport must contain a colon (\":\")",
                    quote(whole)
                ),
            )
            .help = Some(format!(
                "add the ports, e.g. {}",
                quote(&format!("{whole}:*"))
            ));
            return None;
        };
        if host.contains(',') {
            self.error(
                Code::InvalidPort,
                text.span,
                format!("dst={}: host cannot contain a comma (\",\")", quote(whole)),
            )
            .help = Some("write one destination per entry".into());
            return None;
        }
        let ports_span = sub(port_offset, whole.len());
        let ports = match parse_port_list(&ports_text) {
            Ok(p) => p,
            Err(e) => {
                let help = port_help(&e, &host);
                self.error(
                    Code::InvalidPort,
                    ports_span,
                    format!("dst={}: {e}", quote(whole)),
                )
                .help = Some(help);
                return None;
            }
        };
        // An empty host has no text to underline: point at the whole destination.
        let host_span = if host.is_empty() {
            text.span
        } else {
            sub(host_offset, host_offset + host.len())
        };
        let host = self.lowercased_prefix(whole, host, text.span);
        let target = self.selector_from(Spanned::new(host, host_span))?;
        Some(AclDestination {
            target,
            ports,
            text: text.value.clone(),
            span: text.span,
        })
    }

    /// An ACL destination whose selector prefix is not lower case (`TAG:WEB:80`,
    /// `Group:eng:22`), read in lower case as Tailscale's destination parser reads it (it
    /// lower-cases the whole `host:ports` text; `tailcfg`'s copy of it says so), with a
    /// warning: the capture of what the control server does with it is missing. Any other
    /// destination is returned as written (a host or tag named in mixed case matches its
    /// definition as written).
    fn lowercased_prefix(&mut self, whole: &str, host: String, span: crate::Span) -> String {
        let Some(lowered_host) = crate::model::cased_selector(&host) else {
            return host;
        };
        let lowered = whole.to_ascii_lowercase();
        self.warning(
            Code::UppercaseDestination,
            span,
            format!(
                "dst={}: read as {}, as Tailscale's parser lower-cases a destination; aclc cannot verify that the control server still does",
                quote(whole),
                quote(&lowered)
            ),
        )
        .help = Some(format!("selector prefixes are lower case: write {}", quote(&lowered)));
        lowered_host
    }

    /// One `grants` entry.
    pub(super) fn grant(&mut self, v: &Value, path: &str) -> Option<Grant> {
        let fields = self.object(v, path, "an object", GRANT_KEYS)?;
        let src = self.selectors(fields.get("src"), &format!("{path}.src"));
        let dst = self.selectors(fields.get("dst"), &format!("{path}.dst"));
        let dst = dst
            .into_iter()
            .map(|sel| self.grant_dst_any_port(sel))
            .collect();
        let ip_items = self.array(
            fields.get("ip"),
            &format!("{path}.ip"),
            "an array of strings",
        );
        let mut ip = Vec::new();
        for (i, item) in ip_items.iter().enumerate() {
            let Some(text) = self.trimmed(item, &format!("{path}.ip[{i}]")) else {
                continue;
            };
            match IpProtoPorts::parse(&text.value) {
                Ok(p) => {
                    if let Some((proto, _)) = text.value.rsplit_once(':') {
                        self.unverified_protocol(proto, text.span);
                    }
                    ip.push(Spanned::new(p, text.span));
                }
                Err(message) => {
                    let code = if message.starts_with("proto name")
                        || message.starts_with("leading 0")
                        || message.starts_with("IP protocol")
                        || message == "empty protocol"
                    {
                        Code::InvalidProtocol
                    } else {
                        Code::InvalidPort
                    };
                    self.error(code, text.span, message).help = Some(
                        "an ip entry is \"*\", a port or range (\"443\", \"80-90\"), or protocol:ports (\"tcp:443\", \"icmp:*\")"
                            .into(),
                    );
                }
            }
        }
        let app = match fields.get("app") {
            Some(a) => self.app_capabilities(a, &format!("{path}.app")),
            None => Vec::new(),
        };
        let mut via = self.selectors(fields.get("via"), &format!("{path}.via"));
        // `"via": ["*"]`: any router, which is no via at all. Tailscale's announcement of via
        // says so ("Omitting via is equivalent to \"via\":[\"*\"]", tailscale.com/blog/via);
        // its reference now says only tags go in via, so aclc cannot verify it is still
        // accepted: a warning, and the grant is read without via.
        if let Some(star) = via.iter().find(|s| matches!(s.alias, Alias::Wildcard)) {
            self.warning(
                Code::ViaWildcard,
                star.span,
                "via \"*\" is read as no via (any router): aclc cannot verify that Tailscale accepts it",
            )
            .help = Some(
                "Tailscale's via announcement says omitting via is equivalent to \"via\": [\"*\"]; remove via, or name the routers' tags"
                    .into(),
            );
            via.clear();
        }
        let src_posture = self.strings(
            fields.get("srcPosture"),
            &format!("{path}.srcPosture"),
            "an array of posture names",
        );
        Some(Grant {
            src,
            dst,
            ip,
            app,
            via,
            src_posture,
            span: v.span,
        })
    }

    /// A grant destination written as an ACL one, `selector:ports`: Tailscale's grant
    /// examples write `"dst": ["tag:vpc-peering:*", "192.0.2.0/24:*"]` ("VPC access") and its
    /// Kubernetes multi-cluster ingress guide `"dst": ["tag:internal-apps:80",
    /// "tag:internal-apps:443"]` beside `"ip": ["tcp:80", "tcp:443"]`. Grants take their
    /// ports from `ip`, and how Tailscale treats the suffix is not recorded, so it is read as
    /// the bare selector (the ports left to `ip`), with a warning. Anything that is not a
    /// selector once a valid port list is removed stays what it was.
    fn grant_dst_any_port(&mut self, sel: Selector) -> Selector {
        let written_as_port = matches!(&sel.alias, Alias::Tag(t) if t.contains(':'))
            || matches!(&sel.alias, Alias::Host(h) if h.contains(':'));
        let Some((bare, ports)) = sel.text.rsplit_once(':') else {
            return sel;
        };
        if !written_as_port || parse_port_list(ports).is_err() {
            return sel;
        }
        let alias = match Alias::parse(bare) {
            Ok(Alias::Host(h)) if h.contains(':') => return sel,
            Ok(alias) => alias,
            Err(_) => return sel,
        };
        // Every port (`*`) is what `"ip": ["*"]` gives; specific ones are `ip`'s to say.
        let (left, ip) = match ports {
            "*" => (String::new(), "\"*\"] for every port".to_string()),
            _ => (
                ", its ports left to \"ip\"".to_string(),
                format!("\"tcp:{ports}\"]"),
            ),
        };
        let message = format!(
            "dst {} is read as {}{left}: aclc cannot verify that Tailscale accepts a port in a grant's dst",
            quote(&sel.text),
            quote(bare)
        );
        let help = format!(
            "in grants, ports go in \"ip\" (\"ip\": [{ip}); write {}",
            quote(bare)
        );
        self.warning(Code::GrantDstPort, sel.span, message).help = Some(help);
        Selector {
            alias,
            text: bare.to_string(),
            span: sel.span,
        }
    }

    /// An `app` object: capability name -> array of values.
    fn app_capabilities(&mut self, v: &Value, path: &str) -> Vec<AppCapability> {
        let Some(members) = v.as_object() else {
            self.wrong_type(v, path, "an object of capabilities");
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in members {
            let cap_path = super::key_path(path, &m.key.name);
            if m.value.as_array().is_none() && !m.value.is_null() {
                self.wrong_type(&m.value, &cap_path, "an array of values");
                continue;
            }
            let values = if m.value.is_null() {
                serde_json::Value::Array(Vec::new())
            } else {
                m.value.to_json()
            };
            out.push(AppCapability {
                name: Spanned::new(m.key.name.clone(), self.key_span(&m.key)),
                values: Spanned::new(values, m.value.span),
            });
        }
        out
    }

    /// One `ssh` entry.
    pub(super) fn ssh_rule(&mut self, v: &Value, path: &str) -> Option<SshRule> {
        let fields = self.object(v, path, "an object", SSH_KEYS)?;
        let action_text = match fields.get("action") {
            Some(a) => self.trimmed(a, &format!("{path}.action")),
            None => None,
        };
        let action = match &action_text {
            None => {
                self.error(Code::MissingAction, v.span, "action must be specified")
                    .help = Some("add \"action\": \"accept\" or \"action\": \"check\"".into());
                Spanned::new(SshAction::Accept, v.span)
            }
            Some(t) => match SshAction::parse(&t.value) {
                Ok(a) => Spanned::new(a, t.span),
                Err(message) => {
                    let code = if t.value.is_empty() {
                        Code::MissingAction
                    } else {
                        Code::InvalidAction
                    };
                    self.error(code, t.span, message).help =
                        Some("the SSH actions are \"accept\" and \"check\" (lower case)".into());
                    Spanned::new(SshAction::Accept, t.span)
                }
            },
        };
        let src = self.selectors(fields.get("src"), &format!("{path}.src"));
        let dst = self.selectors(fields.get("dst"), &format!("{path}.dst"));
        let user_items = self.array(
            fields.get("users"),
            &format!("{path}.users"),
            "an array of strings",
        );
        if user_items.is_empty() {
            let span = fields.member("users").map_or(v.span, |m| m.value.span);
            let span = if fields.member("users").is_none() {
                v.span
            } else {
                span
            };
            self.error(Code::MissingUsers, span, "users must be specified")
                .help = Some(
                "list the local users, e.g. [\"root\"], [\"autogroup:nonroot\"] or [\"localpart:*@example.com\"]"
                    .into(),
            );
        }
        let mut users = Vec::new();
        for (i, item) in user_items.iter().enumerate() {
            let Some(text) = self.trimmed(item, &format!("{path}.users[{i}]")) else {
                continue;
            };
            match SshUser::parse(&text.value) {
                Ok(u) => {
                    if let SshUser::Literal(name) = &u {
                        if name == "=" || name.starts_with("autogroup:") {
                            self.warning(
                                Code::UnverifiedSshUser,
                                text.span,
                                format!(
                                    "user {}: aclc reads it as a local account of that very name and cannot verify that Tailscale does",
                                    quote(name)
                                ),
                            )
                            .help = Some(
                                "name a local user, \"root\", \"autogroup:nonroot\" or \"localpart:*@<domain>\""
                                    .into(),
                            );
                        }
                    }
                    users.push(Spanned::new(u, text.span))
                }
                Err(message) => {
                    // An empty string has no text to underline: point at the quotes.
                    let span = if text.span.is_empty() {
                        item.span
                    } else {
                        text.span
                    };
                    self.error(Code::InvalidSshUser, span, message).help = Some(
                        "name a local user, \"root\", \"autogroup:nonroot\" or \"localpart:*@<domain>\""
                            .into(),
                    );
                }
            }
        }
        let check_period = match fields.get("checkPeriod") {
            None => None,
            Some(c) => self.check_period(c, &format!("{path}.checkPeriod")),
        };
        let env_items = self.array(
            fields.get("acceptEnv"),
            &format!("{path}.acceptEnv"),
            "an array of strings",
        );
        let mut accept_env = Vec::new();
        for (i, item) in env_items.iter().enumerate() {
            let Some(s) = self.raw_string(item, &format!("{path}.acceptEnv[{i}]")) else {
                continue;
            };
            if s.value.is_empty() {
                self.error(
                    Code::EmptyAcceptEnv,
                    item.span,
                    "acceptEnv values cannot be empty",
                )
                .help = Some("name an environment variable or a glob such as \"GIT_*\"".into());
                continue;
            }
            accept_env.push(s);
        }
        let src_posture = self.strings(
            fields.get("srcPosture"),
            &format!("{path}.srcPosture"),
            "an array of posture names",
        );
        let recorder = self.selectors(fields.get("recorder"), &format!("{path}.recorder"));
        let enforce_recorder = self.boolean(
            fields.get("enforceRecorder"),
            &format!("{path}.enforceRecorder"),
        );
        Some(SshRule {
            action,
            src,
            dst,
            users,
            check_period,
            accept_env,
            src_posture,
            recorder,
            enforce_recorder,
            span: v.span,
        })
    }

    /// `checkPeriod`: `always` or a Go duration. The range is checked by validation.
    fn check_period(&mut self, v: &Value, path: &str) -> Option<Spanned<CheckPeriod>> {
        let text = self.trimmed(v, path)?;
        if text.value == "always" {
            return Some(Spanned::new(CheckPeriod::Always, text.span));
        }
        match GoDuration::parse(&text.value) {
            Ok(d) => Some(Spanned::new(CheckPeriod::Every(d), text.span)),
            Err(message) => {
                let span = if text.span.is_empty() {
                    v.span
                } else {
                    text.span
                };
                self.error(Code::InvalidCheckPeriod, span, message).help = Some(
                    "write a duration such as \"12h\", \"30m\" or \"1h30m\", or \"always\"".into(),
                );
                None
            }
        }
    }

    /// One `nodeAttrs` entry.
    pub(super) fn node_attr(&mut self, v: &Value, path: &str) -> Option<NodeAttr> {
        let fields = self.object(v, path, "an object", NODE_ATTR_KEYS)?;
        let target = self.selectors(fields.get("target"), &format!("{path}.target"));
        let attr = self.strings(
            fields.get("attr"),
            &format!("{path}.attr"),
            "an array of strings",
        );
        let (app, app_connectors) = match fields.get("app") {
            Some(a) => {
                let app_path = format!("{path}.app");
                let caps = self.app_capabilities(a, &app_path);
                (caps, self.app_connectors(a, &app_path))
            }
            None => (Vec::new(), Vec::new()),
        };
        let pool_texts = self.strings(
            fields.get("ipPool"),
            &format!("{path}.ipPool"),
            "an array of prefixes",
        );
        let mut ip_pool = Vec::new();
        for t in pool_texts {
            match crate::model::parse_prefix(&t.value).ok_or(()) {
                Ok(net) => ip_pool.push(Spanned::new(net, t.span)),
                Err(_) => {
                    self.error(
                        Code::InvalidPrefix,
                        t.span,
                        format!("IPPool({}): invalid prefix", t.value),
                    )
                    .help = Some("an ipPool entry is a prefix such as 100.80.0.0/16".into());
                }
            }
        }
        Some(NodeAttr {
            target,
            attr,
            app,
            app_connectors,
            ip_pool,
            span: v.span,
        })
    }

    /// One `tests` entry, kept as written.
    pub(super) fn network_test(&mut self, v: &Value, path: &str) -> Option<NetworkTest> {
        let fields = self.object(v, path, "an object", TEST_KEYS)?;
        let src = match self.legacy(&fields, "src", "user", path) {
            Some(s) => self.raw_string(s, &format!("{path}.src")),
            None => None,
        };
        let src_posture_attrs = self.posture_attrs(fields.get("srcPostureAttrs"), path);
        let proto = match fields.get("proto") {
            None => None,
            Some(p) => match &p.kind {
                crate::hujson::ValueKind::Number(n) => Some(Spanned::new(n.0.clone(), p.span)),
                _ => self.raw_string(p, &format!("{path}.proto")),
            },
        };
        let accept_value = self.legacy(&fields, "accept", "allow", path);
        let accept = self.raw_strings(accept_value, &format!("{path}.accept"));
        let deny = self.raw_strings(fields.get("deny"), &format!("{path}.deny"));
        Some(NetworkTest {
            src,
            src_posture_attrs,
            proto,
            accept,
            deny,
            span: v.span,
        })
    }

    /// One `sshTests` entry, kept as written.
    pub(super) fn ssh_test(&mut self, v: &Value, path: &str) -> Option<SshTest> {
        let fields = self.object(v, path, "an object", SSH_TEST_KEYS)?;
        let src = match fields.get("src") {
            Some(s) => self.raw_string(s, &format!("{path}.src")),
            None => None,
        };
        let dst = self.raw_strings(fields.get("dst"), &format!("{path}.dst"));
        let accept = self.raw_strings(fields.get("accept"), &format!("{path}.accept"));
        let check = self.raw_strings(fields.get("check"), &format!("{path}.check"));
        let deny = self.raw_strings(fields.get("deny"), &format!("{path}.deny"));
        let src_posture_attrs = self.posture_attrs(fields.get("srcPostureAttrs"), path);
        Some(SshTest {
            src,
            dst,
            accept,
            check,
            deny,
            src_posture_attrs,
            span: v.span,
        })
    }

    fn posture_attrs(
        &mut self,
        v: Option<&Value>,
        path: &str,
    ) -> Option<Spanned<serde_json::Value>> {
        let v = v?;
        if v.as_object().is_none() {
            self.wrong_type(v, &format!("{path}.srcPostureAttrs"), "an object");
            return None;
        }
        Some(Spanned::new(v.to_json(), v.span))
    }

    fn raw_strings(&mut self, v: Option<&Value>, path: &str) -> Vec<Spanned<String>> {
        let items = self.array(v, path, "an array of strings");
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.raw_string(item, &format!("{path}[{i}]")) {
                out.push(s);
            }
        }
        out
    }
}

/// Help for a port list error; `host` is the destination before the colon.
fn port_help(error: &PortError, host: &str) -> String {
    match error {
        PortError::InvalidFirst { range } if !host.contains(':') => {
            // `autogroup:self` alone splits into host `autogroup` and ports `self`.
            match Alias::parse(&format!("{host}:{range}")) {
                Ok(Alias::Autogroup(_) | Alias::Tag(_) | Alias::Group(_)) => format!(
                    "an ACL destination needs ports after the selector: write \"{host}:{range}:*\""
                ),
                _ => "ports are numbers (22), ranges (80-90), comma lists (22,443) or *".into(),
            }
        }
        PortError::Zero { .. } => "port 0 is not a port; use * for every port".into(),
        PortError::Inverted { .. } => "write the lower port first (80-90)".into(),
        _ => "ports are numbers (22), ranges (80-90), comma lists (22,443) or *".into(),
    }
}
