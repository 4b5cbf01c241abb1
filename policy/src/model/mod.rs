//! The typed policy: every section of a Tailscale policy file as Rust types, each field keeping
//! the span of the text it came from, so later stages (validation, the compiler, `aclc explain`)
//! can point back at the policy.
//!
//! Built by the lowering pass from the HuJSON value tree and checked by validation. A model
//! that came out of [`crate::parse`] has passed validation: every reference resolves, every
//! placement rule holds. Entries keep the order they have in the source.

mod alias;
mod index;
mod ports;
mod posture;
mod proto;
mod ssh;

pub(crate) use crate::text::quote as quote_go;
pub(crate) use alias::mapped_v4_warning;
pub(crate) use alias::parse_ip as parse_ip_text;
pub use alias::{
    canonical_tag, is_shared_email_domain, is_synced_group, parse_prefix, Alias, AliasError,
    Autogroup, Selector, SHARED_DOMAINS,
};
pub(crate) use alias::{cased_selector, host_bits_warning};
pub use index::PolicyIndex;
pub use ports::{parse_port_list, PortError, PortRange};
pub use posture::{
    attribute_status, compare_versions, parse_condition as parse_posture_condition,
    AttributeStatus, PostureCondition, PostureOperator, PostureSyntaxError, PostureValue,
    IP_ATTRIBUTES, NODE_ATTRIBUTES, OPEN_NAMESPACES,
};
pub use proto::{IpProtoPorts, Protocol};
pub use ssh::{CheckPeriod, GoDuration, SshAction, SshUser};

use crate::source::Span;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// A value and the span of the text it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written (for strings, the quotes included).
    pub span: Span,
}

impl<T> Spanned<T> {
    /// A value with its span.
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }

    /// Apply `f` to the value, keeping the span.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned {
            value: f(self.value),
            span: self.span,
        }
    }

    /// A reference to the value with the same span.
    pub fn as_ref(&self) -> Spanned<&T> {
        Spanned {
            value: &self.value,
            span: self.span,
        }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Spanned", 2)?;
        s.serialize_field("value", &self.value)?;
        s.serialize_field("span", &[self.span.start, self.span.end])?;
        s.end()
    }
}

/// Serialize a [`Span`] as `[start, end]`.
pub(crate) fn serialize_span<S: Serializer>(span: &Span, s: S) -> Result<S::Ok, S::Error> {
    [span.start, span.end].serialize(s)
}

/// Serialize anything with `Display` as its text (for `IpNet`, which has no serde impl here).
pub(crate) fn serialize_display<T: std::fmt::Display, S: Serializer>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A whole policy file.
///
/// Optional sections whose absence means something different from an empty list (`acls`,
/// `grants`, `ssh`) are `Option`; for the others an absent section is an empty list.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Policy {
    /// `acls`: legacy network rules. `None` when the key is absent (or `null`).
    pub acls: Option<Spanned<Vec<Acl>>>,
    /// `grants`: network and application grants. `None` when absent. A policy with neither
    /// `acls` nor `grants` allows all traffic; an empty list allows none.
    pub grants: Option<Spanned<Vec<Grant>>>,
    /// `groups`, in source order.
    pub groups: Vec<GroupDef>,
    /// `hosts`, in source order.
    pub hosts: Vec<HostDef>,
    /// `tagOwners`, in source order. Defining a tag here is what makes it usable.
    pub tag_owners: Vec<TagOwnerDef>,
    /// `autoApprovers`.
    pub auto_approvers: AutoApprovers,
    /// `ssh`: Tailscale SSH rules. `None` when absent.
    pub ssh: Option<Spanned<Vec<SshRule>>>,
    /// `nodeAttrs`.
    pub node_attrs: Vec<NodeAttr>,
    /// `tests`: network assertions (kept as written; evaluated by the test runner).
    pub tests: Vec<NetworkTest>,
    /// `sshTests`: SSH assertions.
    pub ssh_tests: Vec<SshTest>,
    /// `postures`.
    pub postures: Vec<PostureDef>,
    /// `defaultSrcPosture`: posture names applied to rules without their own `srcPosture`.
    pub default_src_posture: Vec<Spanned<String>>,
    /// `ipsets`.
    pub ipsets: Vec<IpSetDef>,
    /// `derpMap`, kept as raw JSON.
    pub derp_map: Option<Spanned<serde_json::Value>>,
    /// `disableIPv4`.
    pub disable_ipv4: Option<Spanned<bool>>,
    /// `OneCGNATRoute`: `""`, `"mac-always"` or `"mac-never"`.
    pub one_cgnat_route: Option<Spanned<String>>,
    /// `randomizeClientPort`.
    pub randomize_client_port: Option<Spanned<bool>>,
    /// `attrConfig`: custom device attributes, in source order.
    pub attr_config: Vec<AttrConfigDef>,
    /// `externalTailnets`: the tailnets this one shares with (declarative node sharing), in
    /// source order.
    pub external_tailnets: Vec<ExternalTailnetDef>,
    /// The whole document.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

impl Policy {
    /// Every definition by name, for many lookups: the `group`, `host`, `tag_owner`, `ipset`
    /// and `posture` methods below scan their section, which suits a one-off lookup only.
    pub fn index(&self) -> PolicyIndex<'_> {
        PolicyIndex::new(self)
    }

    /// The group definition named `name` (`group:x`), if any (a linear scan; see
    /// [`Policy::index`]).
    pub fn group(&self, name: &str) -> Option<&GroupDef> {
        self.groups.iter().find(|g| g.name.value == name)
    }

    /// The host definition named `name`, if any.
    pub fn host(&self, name: &str) -> Option<&HostDef> {
        self.hosts.iter().find(|h| h.name.value == name)
    }

    /// The `tagOwners` entry of `tag` (`tag:x`), if any.
    pub fn tag_owner(&self, tag: &str) -> Option<&TagOwnerDef> {
        self.tag_owners.iter().find(|t| t.tag.value == tag)
    }

    /// The IP set named `name` (`ipset:x`), if any.
    pub fn ipset(&self, name: &str) -> Option<&IpSetDef> {
        self.ipsets.iter().find(|s| s.name.value == name)
    }

    /// The posture named `name` (`posture:x`), if any.
    pub fn posture(&self, name: &str) -> Option<&PostureDef> {
        self.postures.iter().find(|p| p.name.value == name)
    }

    /// True when the policy has neither `acls` nor `grants`, which Tailscale reads as
    /// "allow all traffic between tailnet devices".
    pub fn is_default_allow(&self) -> bool {
        self.acls.is_none() && self.grants.is_none()
    }
}

/// One entry of `acls`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Acl {
    /// `action`; only `accept` exists.
    pub action: Spanned<AclAction>,
    /// `src` (or legacy `users`).
    pub src: Vec<Selector>,
    /// `dst` (or legacy `ports`): `host:ports` entries.
    pub dst: Vec<AclDestination>,
    /// `proto`: `None` means the default set (TCP, UDP, ICMP).
    pub proto: Option<Spanned<Protocol>>,
    /// `srcPosture`: posture names (`posture:x`).
    pub src_posture: Vec<Spanned<String>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// The action of an ACL entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AclAction {
    /// `accept`, the only action Tailscale supports.
    Accept,
}

/// One `dst` entry of an ACL: a selector and the ports on it (`tag:server:22,80-90`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AclDestination {
    /// The part before the last colon (IPv6 brackets removed).
    pub target: Selector,
    /// The port list after the last colon; `*` is `[0-65535]`.
    pub ports: Vec<PortRange>,
    /// The whole entry as written (trimmed).
    pub text: String,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One entry of `grants`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Grant {
    /// `src`.
    pub src: Vec<Selector>,
    /// `dst`.
    pub dst: Vec<Selector>,
    /// `ip`: network capabilities; empty when absent.
    pub ip: Vec<Spanned<IpProtoPorts>>,
    /// `app`: application capabilities, in source order; empty when absent.
    pub app: Vec<AppCapability>,
    /// `via`: tags of the routers this grant must go through; empty = any.
    pub via: Vec<Selector>,
    /// `srcPosture`: posture names.
    pub src_posture: Vec<Spanned<String>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One capability of a grant's (or nodeAttr's) `app` object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppCapability {
    /// The capability name (`example.com/cap/foo`), key span.
    pub name: Spanned<String>,
    /// The values: a JSON array of objects, passed to apps unchanged (but for the
    /// Kubernetes operator's session recorders, [`AppCapability::KUBERNETES`]).
    pub values: Spanned<serde_json::Value>,
}

impl AppCapability {
    /// The Kubernetes operator's capability. A value's `recorder` names session recorders
    /// by tag; the control server resolves them into `recorderAddrs`, which is all the
    /// operator reads (`kube/kubetypes.KubernetesCapRule`).
    pub const KUBERNETES: &'static str = "tailscale.com/cap/kubernetes";

    /// The key of a Kubernetes capability value naming its session recorders' tags
    /// (`KubernetesCapRule.Recorders`, `json:"recorder"`).
    pub const RECORDER: &'static str = "recorder";

    /// The tags one Kubernetes capability value names as its session recorders (`"recorder":
    /// ["tag:k8s-recorder"]`), as written; nothing for another value or capability.
    pub fn recorder_tags(value: &serde_json::Value) -> impl Iterator<Item = &str> {
        Self::tags_under(value, Self::RECORDER)
    }

    /// The tags a capability value lists under `key`, as written.
    pub fn tags_under<'v>(
        value: &'v serde_json::Value,
        key: &str,
    ) -> impl Iterator<Item = &'v str> {
        value
            .get(key)
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .filter(|t| t.starts_with("tag:"))
    }
}

/// One entry of `groups`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupDef {
    /// `group:name` (key span).
    pub name: Spanned<String>,
    /// Member logins, as written (trimmed).
    pub members: Vec<Spanned<String>>,
    /// The member list.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One entry of `hosts`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostDef {
    /// The alias name (key span).
    pub name: Spanned<String>,
    /// The address or prefix.
    pub address: Spanned<HostAddress>,
    /// The value as written (trimmed), for wire output where the text matters.
    pub text: String,
}

/// What a host alias stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HostAddress {
    /// A single address written without a prefix length.
    Ip(std::net::IpAddr),
    /// A prefix (host bits as written).
    Prefix(#[serde(serialize_with = "serialize_display")] ipnet::IpNet),
}

impl HostAddress {
    /// The address as a prefix (`/32` or `/128` for a single address).
    pub fn to_net(self) -> ipnet::IpNet {
        match self {
            HostAddress::Ip(ip) => ipnet::IpNet::from(ip),
            HostAddress::Prefix(net) => net,
        }
    }
}

/// One entry of `tagOwners`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TagOwnerDef {
    /// `tag:name` (key span).
    pub tag: Spanned<String>,
    /// Owners: users, groups, tags, autogroups. Empty = only admins may apply the tag.
    pub owners: Vec<Selector>,
    /// The owner list.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// The `autoApprovers` section.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct AutoApprovers {
    /// `routes`: prefix -> approvers, in source order.
    pub routes: Vec<RouteApprover>,
    /// `exitNode`: who may approve exit routes.
    pub exit_node: Vec<Selector>,
    /// `services`: service name -> approvers.
    pub services: Vec<ServiceApprover>,
    /// The section (zero-length when absent).
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One `autoApprovers.routes` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteApprover {
    /// The prefix (key span).
    #[serde(serialize_with = "serialize_spanned_net")]
    pub prefix: Spanned<ipnet::IpNet>,
    /// The key as written.
    pub text: String,
    /// Who may approve routes equal to or inside the prefix.
    pub approvers: Vec<Selector>,
}

pub(crate) fn serialize_spanned_net<S: Serializer>(
    v: &Spanned<ipnet::IpNet>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.as_ref().map(ToString::to_string).serialize(s)
}

/// One `autoApprovers.services` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceApprover {
    /// The service (`svc:name`), key span.
    pub service: Spanned<String>,
    /// Who may approve it.
    pub approvers: Vec<Selector>,
}

/// One entry of `ssh`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SshRule {
    /// `accept` or `check`.
    pub action: Spanned<SshAction>,
    /// Who connects.
    pub src: Vec<Selector>,
    /// Which devices.
    pub dst: Vec<Selector>,
    /// As which local users.
    pub users: Vec<Spanned<SshUser>>,
    /// `checkPeriod` (check rules only; default 12h).
    pub check_period: Option<Spanned<CheckPeriod>>,
    /// `acceptEnv` globs.
    pub accept_env: Vec<Spanned<String>>,
    /// `srcPosture`.
    pub src_posture: Vec<Spanned<String>>,
    /// `recorder`: tags of session recorders.
    pub recorder: Vec<Selector>,
    /// `enforceRecorder`.
    pub enforce_recorder: Option<Spanned<bool>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One entry of `nodeAttrs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeAttr {
    /// Which devices.
    pub target: Vec<Selector>,
    /// Plain attributes (`funnel`, `nextdns:abc`, capability URLs ...).
    pub attr: Vec<Spanned<String>>,
    /// Capabilities with values.
    pub app: Vec<AppCapability>,
    /// The entries of `app["tailscale.com/app-connectors"]`, read into their documented
    /// shape (the values also stay in `app`, which is what nodes receive).
    pub app_connectors: Vec<AppConnector>,
    /// `ipPool`: prefixes to allocate addresses from.
    #[serde(serialize_with = "serialize_nets")]
    pub ip_pool: Vec<Spanned<ipnet::IpNet>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One app connector configuration: an entry of the `tailscale.com/app-connectors` node
/// attribute (Tailscale KB "App connectors", kb/1281; `NodeAttrGrantApp` in Tailscale's API
/// client; `appctype.AppConnectorAttr` in the client).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppConnector {
    /// `name`: the app's name in the admin console.
    pub name: Option<Spanned<String>>,
    /// `connectors`: the devices that serve the app, normally tags.
    pub connectors: Vec<Selector>,
    /// `domains`: `example.com` or `*.example.com`.
    pub domains: Vec<Spanned<String>>,
    /// `routes`: prefixes the connectors advertise for the app.
    #[serde(serialize_with = "serialize_nets")]
    pub routes: Vec<Spanned<ipnet::IpNet>>,
    /// `presetAppID`: the preset the admin console created it from.
    pub preset_app_id: Option<Spanned<String>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

fn serialize_nets<S: Serializer>(v: &[Spanned<ipnet::IpNet>], s: S) -> Result<S::Ok, S::Error> {
    let texts: Vec<Spanned<String>> = v
        .iter()
        .map(|n| n.as_ref().map(ToString::to_string))
        .collect();
    texts.serialize(s)
}

/// One entry of `tests`, kept as written: Tailscale answers a malformed test with the same
/// `test(s) failed` as a failing one, so judging the entries is the test runner's job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NetworkTest {
    /// `src` (or legacy `user`).
    pub src: Option<Spanned<String>>,
    /// `srcPostureAttrs`: attribute values assumed for the source device.
    pub src_posture_attrs: Option<Spanned<serde_json::Value>>,
    /// `proto`, as written.
    pub proto: Option<Spanned<String>>,
    /// `accept` (or legacy `allow`): `host:port` entries that must be reachable.
    pub accept: Vec<Spanned<String>>,
    /// `deny`: `host:port` entries that must not be reachable.
    pub deny: Vec<Spanned<String>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One entry of `sshTests`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SshTest {
    /// `src`, as written.
    pub src: Option<Spanned<String>>,
    /// `dst` entries, as written.
    pub dst: Vec<Spanned<String>>,
    /// Users that must be allowed (by accept or check rules).
    pub accept: Vec<Spanned<String>>,
    /// Users that must be allowed by a check rule.
    pub check: Vec<Spanned<String>>,
    /// Users that must be denied.
    pub deny: Vec<Spanned<String>>,
    /// `srcPostureAttrs`.
    pub src_posture_attrs: Option<Spanned<serde_json::Value>>,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// One entry of `postures`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PostureDef {
    /// `posture:name` (key span).
    pub name: Spanned<String>,
    /// The conditions, all of which must hold.
    pub conditions: Vec<Spanned<PostureCondition>>,
}

impl PostureDef {
    /// True if a device whose attribute values `attribute` looks up satisfies every condition
    /// (kb/1288: the conditions of a posture are ANDed).
    pub fn holds<'v>(&self, attribute: impl Fn(&str) -> Option<&'v serde_json::Value>) -> bool {
        self.conditions
            .iter()
            .all(|c| c.value.holds(attribute(&c.value.attribute)))
    }
}

/// One entry of `externalTailnets` (declarative node sharing, in alpha: Tailscale's
/// "Declarative node sharing" page): another tailnet, by the alias this policy's rules name
/// its groups and tags with (`group://alias/name`, `tag://alias/name`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExternalTailnetDef {
    /// The alias (key span).
    pub alias: Spanned<String>,
    /// `externalID`: the other tailnet's ID.
    pub external_id: Option<Spanned<String>>,
    /// `allowIncomingConnections`: the other tailnet's users and devices may be granted access
    /// here (through rules naming them).
    pub allow_incoming_connections: Option<Spanned<bool>>,
    /// `allowExternalReferencesTo`: this tailnet's groups and tags the other one's rules may
    /// name.
    pub allow_external_references_to: Vec<Selector>,
    /// The entry's value.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// `(alias, name)` of a reference to another tailnet's group or tag (`group://alias/name`,
/// `tag://alias/name`; declarative node sharing), `None` for any other text.
pub fn external_reference(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("group://")
        .or_else(|| text.strip_prefix("tag://"))?;
    rest.split_once('/')
}

/// One entry of `attrConfig`: how a custom device attribute (`custom:name`) may be set and
/// who sees it (the API's `ACLAttrConfig`; Tailscale KB "Device posture", kb/1288).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttrConfigDef {
    /// The attribute (`custom:name`), key span.
    pub name: Spanned<String>,
    /// `type`: the type of the attribute's values.
    pub kind: Option<Spanned<AttrType>>,
    /// `allowSetByNode`: the device itself may set the attribute (through its LocalAPI).
    pub allow_set_by_node: Option<Spanned<bool>>,
    /// `broadcastToPeers`: the devices that receive the attribute's value.
    pub broadcast_to_peers: Vec<Selector>,
    /// The entry's value.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// The type of a custom device attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AttrType {
    /// `"string"`.
    String,
    /// `"bool"`.
    Bool,
    /// `"number"`.
    Number,
}

impl AttrType {
    /// The type named `name` as written in `attrConfig`.
    pub fn from_name(name: &str) -> Option<AttrType> {
        match name {
            "string" => Some(AttrType::String),
            "bool" => Some(AttrType::Bool),
            "number" => Some(AttrType::Number),
            _ => None,
        }
    }
}

/// One entry of `ipsets`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IpSetDef {
    /// `ipset:name` (key span).
    pub name: Spanned<String>,
    /// The operations, applied in order.
    pub entries: Vec<IpSetEntry>,
}

/// One `add X` / `remove X` / bare `X` line of an IP set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IpSetEntry {
    /// Add or remove.
    pub op: IpSetOp,
    /// What is added or removed: an IP, prefix, range, host, ipset or `autogroup:internet`.
    pub target: Selector,
    /// The whole entry.
    #[serde(serialize_with = "serialize_span")]
    pub span: Span,
}

/// The operation of an IP set entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum IpSetOp {
    /// `add X` or bare `X`.
    Add,
    /// `remove X`.
    Remove,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Policy>();
        assert_send_sync::<crate::Checked>();
    }
}
