//! The wire format: Tailscale's SSH rules and the per-node document of the conformance corpus,
//! as serde types that round-trip; the packet filter types come from `aclc-matcher`, the node
//! side, and are re-exported here.
//!
//! Strings are `Text` so a compiled policy can hand the same address strings and source
//! lists to every node without copying them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Text;

use serde::{Deserialize, Serialize};

pub use aclc_matcher::wire::{CapGrant, CapMap, FilterRule, NetPortRange, Ports, Strings};

/// A JSON `null` read as the field's default (Go writes a nil slice or map as `null`).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One Tailscale SSH rule (`tailcfg.SSHRule`, lowerCamel JSON keys): who may log in
/// (`principals`), as which local users (`sshUsers`), and what happens then (`action`).
///
/// Lists and maps are shared (`Arc`): one policy rule usually becomes the same SSH rule on
/// many nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRule {
    /// When the rule stops applying (RFC 3339), if ever.
    #[serde(
        rename = "ruleExpires",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rule_expires: Option<String>,
    /// Connecting devices, one entry per address; any entry matching admits the connection.
    /// (`null`, as Go writes a nil list, reads as none.)
    #[serde(deserialize_with = "null_as_default")]
    pub principals: Arc<[SshPrincipal]>,
    /// Requested login -> local user: `*` is any other login, `=` means the same name, and
    /// `""` refuses that login. (`null`, which `tailcfg` allows on a reject rule, reads as
    /// none.)
    #[serde(rename = "sshUsers", deserialize_with = "null_as_default")]
    pub ssh_users: Arc<BTreeMap<String, String>>,
    /// What to do with a matching connection. (`null` reads as an action that neither
    /// accepts nor refuses, which a node reads as a refusal: "a nil or invalid action means
    /// to deny", `tailcfg.SSHRule`.)
    #[serde(deserialize_with = "null_as_default")]
    pub action: SshAction,
    /// Environment variables the client may send (`*` and `?` globs), in policy order.
    #[serde(
        rename = "acceptEnv",
        default = "empty_env",
        skip_serializing_if = "is_empty_env",
        deserialize_with = "null_env"
    )]
    pub accept_env: Arc<[String]>,
}

fn empty_env() -> Arc<[String]> {
    Arc::from(Vec::new())
}

fn is_empty_env(env: &Arc<[String]>) -> bool {
    env.is_empty()
}

fn null_env<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Arc<[String]>, D::Error> {
    Ok(Option::<Arc<[String]>>::deserialize(deserializer)?.unwrap_or_else(empty_env))
}

/// Who an SSH rule admits (`tailcfg.SSHPrincipal`): a principal matches when any of its set
/// fields does. Tailscale's control plane names devices by address (`nodeIP`), which is what
/// aclc emits; the other forms are read and written back unchanged.
///
/// 16 bytes: the address inline (a [`Text`], one pointer), the rarer fields behind one more
/// pointer. A lowered policy holds millions of principals (every source address of every SSH
/// rule); with every field inline (80 bytes each) they were a sixth of the engine's memory on
/// `large` (71 MB of principal lists), and a batch of node events copied those lists whole.
/// With the address an `Arc<str>` (two pointers) they were 24 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(from = "PrincipalFields")]
pub struct SshPrincipal {
    node_ip: Option<Text>,
    other: Option<Box<OtherFields>>,
}

/// The fields of [`SshPrincipal`] besides the address, set only on principals read from
/// elsewhere (aclc writes `nodeIP` alone).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct OtherFields {
    node: Option<Text>,
    user_login: Option<Text>,
    any: bool,
    pub_keys: Vec<String>,
}

/// The wire form of [`SshPrincipal`], field by field, as it is read.
#[derive(Deserialize)]
struct PrincipalFields {
    #[serde(default)]
    node: Option<Text>,
    #[serde(rename = "nodeIP", default)]
    node_ip: Option<Text>,
    #[serde(rename = "userLogin", default)]
    user_login: Option<Text>,
    #[serde(default)]
    any: bool,
    #[serde(rename = "pubKeys", default)]
    pub_keys: Vec<String>,
}

impl From<PrincipalFields> for SshPrincipal {
    fn from(f: PrincipalFields) -> SshPrincipal {
        SshPrincipal::new(f.node, f.node_ip, f.user_login, f.any, f.pub_keys)
    }
}

impl Serialize for SshPrincipal {
    /// The fields that are set, in `tailcfg.SSHPrincipal`'s order (Go's `omitempty`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = usize::from(self.node().is_some())
            + usize::from(self.node_ip.is_some())
            + usize::from(self.user_login().is_some())
            + usize::from(self.any())
            + usize::from(!self.pub_keys().is_empty());
        let mut out = serializer.serialize_struct("SshPrincipal", fields)?;
        if let Some(node) = self.node() {
            out.serialize_field("node", node)?;
        }
        if let Some(ip) = self.node_ip() {
            out.serialize_field("nodeIP", ip)?;
        }
        if let Some(login) = self.user_login() {
            out.serialize_field("userLogin", login)?;
        }
        if self.any() {
            out.serialize_field("any", &true)?;
        }
        if !self.pub_keys().is_empty() {
            out.serialize_field("pubKeys", self.pub_keys())?;
        }
        out.end()
    }
}

impl PartialOrd for SshPrincipal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SshPrincipal {
    /// Field by field, in the wire order: `node`, `nodeIP`, `userLogin`, `any`, `pubKeys`.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (
            self.node(),
            self.node_ip(),
            self.user_login(),
            self.any(),
            self.pub_keys(),
        )
            .cmp(&(
                other.node(),
                other.node_ip(),
                other.user_login(),
                other.any(),
                other.pub_keys(),
            ))
    }
}

impl SshPrincipal {
    /// The principal naming a device by one of its addresses.
    pub fn from_node_ip(ip: Text) -> SshPrincipal {
        SshPrincipal {
            node_ip: Some(ip),
            other: None,
        }
    }

    /// A principal with every wire field given.
    pub fn new(
        node: Option<Text>,
        node_ip: Option<Text>,
        user_login: Option<Text>,
        any: bool,
        pub_keys: Vec<String>,
    ) -> SshPrincipal {
        let rare = node.is_some() || user_login.is_some() || any || !pub_keys.is_empty();
        SshPrincipal {
            node_ip,
            other: rare.then(|| {
                Box::new(OtherFields {
                    node,
                    user_login,
                    any,
                    pub_keys,
                })
            }),
        }
    }

    /// A node's stable id (`node`).
    pub fn node(&self) -> Option<&str> {
        self.other.as_ref()?.node.as_deref()
    }

    /// A Tailscale address of the connecting device (`nodeIP`).
    pub fn node_ip(&self) -> Option<&str> {
        self.node_ip.as_deref()
    }

    /// The login of the connecting user (`userLogin`).
    pub fn user_login(&self) -> Option<&str> {
        self.other.as_ref()?.user_login.as_deref()
    }

    /// Any connecting device (`any`).
    pub fn any(&self) -> bool {
        self.other.as_ref().is_some_and(|o| o.any)
    }

    /// Public keys (`pubKeys`); unused by clients since Tailscale 1.x, kept so a rule
    /// round-trips.
    pub fn pub_keys(&self) -> &[String] {
        self.other.as_ref().map_or(&[], |o| &o.pub_keys[..])
    }

    /// True if a connection from `ip`, by `login` when known, matches.
    pub fn admits(&self, ip: std::net::IpAddr, login: Option<&str>) -> bool {
        self.any()
            || self
                .node_ip()
                .and_then(|t| t.parse::<std::net::IpAddr>().ok())
                .is_some_and(|p| p == ip)
            || login.is_some_and(|l| self.user_login() == Some(l))
    }
}

/// What an SSH rule does (`tailcfg.SSHAction`); flags that are off are left out, as Go's
/// `omitempty` does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SshAction {
    /// How long an admitted session may last, in nanoseconds (Go's `time.Duration`); 0: no
    /// limit.
    #[serde(rename = "sessionDuration", default, skip_serializing_if = "is_zero")]
    pub session_duration: i64,
    /// Admit the session.
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept: bool,
    /// Allow SSH agent forwarding.
    #[serde(
        rename = "allowAgentForwarding",
        default,
        skip_serializing_if = "is_false"
    )]
    pub allow_agent_forwarding: bool,
    /// Allow local port forwarding.
    #[serde(
        rename = "allowLocalPortForwarding",
        default,
        skip_serializing_if = "is_false"
    )]
    pub allow_local_port_forwarding: bool,
    /// Allow remote port forwarding.
    #[serde(
        rename = "allowRemotePortForwarding",
        default,
        skip_serializing_if = "is_false"
    )]
    pub allow_remote_port_forwarding: bool,
    /// Check mode: the URL the client asks before admitting the session (its `$VARIABLES`
    /// are expanded by the client).
    #[serde(
        rename = "holdAndDelegate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hold_and_delegate: Option<String>,
    /// Refuse the session (with `message`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject: bool,
    /// Shown to the user when the session is refused or admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Session recorders (`ip:port`) the session is recorded to (`ssh[].recorder`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorders: Vec<String>,
    /// What to do when recording fails (`ssh[].enforceRecorder`); absent: the session goes on.
    #[serde(
        rename = "onRecordingFailure",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_recording_failure: Option<RecorderFailureAction>,
}

/// What a node does when session recording fails (`tailcfg.SSHRecorderFailureAction`, whose
/// fields marshal in Go's PascalCase).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecorderFailureAction {
    /// Refuse a session whose recording cannot start, with this message.
    #[serde(
        rename = "RejectSessionWithMessage",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub reject_session_with_message: String,
    /// End a session whose recording breaks off, with this message.
    #[serde(
        rename = "TerminateSessionWithMessage",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub terminate_session_with_message: String,
    /// Where the node reports recording failures.
    #[serde(
        rename = "NotifyURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub notify_url: String,
}

impl SshAction {
    /// What an `accept` rule sends: admit, with every kind of forwarding.
    pub fn accept() -> SshAction {
        SshAction {
            accept: true,
            allow_agent_forwarding: true,
            allow_local_port_forwarding: true,
            allow_remote_port_forwarding: true,
            ..SshAction::default()
        }
    }

    /// What a `check` rule sends: hold the session and ask the control server at
    /// `control_url` (as Tailscale's control plane does, nothing else is set).
    pub fn check(control_url: &str) -> SshAction {
        SshAction {
            hold_and_delegate: Some(format!(
                "{}/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER",
                control_url.trim_end_matches('/')
            )),
            ..SshAction::default()
        }
    }

    /// True for a check-mode action.
    pub fn is_check(&self) -> bool {
        self.hold_and_delegate.is_some()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// What one node receives, in the shape of the conformance corpus' `expect.nodes.<name>`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeOutput {
    /// The packet filter.
    #[serde(default)]
    pub packet_filter_rules: Vec<FilterRule>,
    /// SSH rules (`tailcfg.SSHRule` JSON), in the order the node evaluates them.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ssh_rules: Vec<SshRule>,
    /// The node's own addresses (`a/32`, `a/128`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The node's own AllowedIPs: its addresses and the routes it serves.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// Routes the node is the primary router for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_routes: Vec<String>,
    /// The node's capability map, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_map: Option<CapMap>,
    /// Visible peers by name (names shared with the compiled policy: a map holds tens of
    /// thousands of peers, so none is copied).
    #[serde(default)]
    pub peers: BTreeMap<Text, PeerOutput>,
}

/// How a node sees one peer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeerOutput {
    /// The peer's AllowedIPs as this node gets them: addresses, routes it carries for this
    /// node, exit routes.
    /// (Shared strings: the peer's own addresses are the compiled policy's.)
    #[serde(default)]
    pub allowed_ips: Vec<Text>,
    /// The subnet routes among `allowed_ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_routes: Vec<Text>,
    /// The peer's capability map as sent to this node, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_map: Option<CapMap>,
}

/// The output of `aclc compile --format json`: every requested node by name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CompileOutput {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeOutput>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An SSH policy in the shape Tailscale's Go types marshal (`tailcfg.SSHRule`,
    /// `SSHPrincipal`, `SSHAction`, `SSHRecorderFailureAction`), every field set: it reads and
    /// writes back unchanged.
    /// Every principal field, written in `tailcfg.SSHPrincipal`'s order and read back; unset
    /// fields left out, as Go's `omitempty` does; an explicit `false` or empty list read as
    /// unset (equal to the principal without it).
    #[test]
    fn principals_keep_every_field_in_wire_order() {
        let text =
            r#"{"node":"n1","nodeIP":"100.64.0.1","userLogin":"a@b.c","any":true,"pubKeys":["k"]}"#;
        let p: SshPrincipal = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), text);
        assert_eq!(
            (p.node(), p.node_ip(), p.user_login(), p.any(), p.pub_keys()),
            (
                Some("n1"),
                Some("100.64.0.1"),
                Some("a@b.c"),
                true,
                &["k".to_string()][..]
            )
        );
        let plain: SshPrincipal =
            serde_json::from_str(r#"{"nodeIP":"100.64.0.1","any":false,"pubKeys":[]}"#).unwrap();
        assert_eq!(plain, SshPrincipal::from_node_ip(Text::from("100.64.0.1")));
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"nodeIP":"100.64.0.1"}"#
        );
        // Ordered field by field in wire order, as the derived order of the full form was.
        let login = SshPrincipal::new(None, None, Some(Text::from("a@b.c")), false, Vec::new());
        let node = SshPrincipal::new(Some(Text::from("n1")), None, None, false, Vec::new());
        assert!(login < plain && plain < node);
        // The size the lowered lists are measured in (ARCHITECTURE.md, "Decisions").
        assert_eq!(std::mem::size_of::<SshPrincipal>(), 16);
    }

    #[test]
    fn ssh_rules_round_trip_every_field() {
        let go = serde_json::json!([
            {
                "ruleExpires": "2026-12-31T23:59:59Z",
                "principals": [
                    {"node": "nStable1CNTRL"},
                    {"nodeIP": "100.64.0.1"},
                    {"userLogin": "alice@example.com"},
                    {"any": true},
                    {"nodeIP": "fd7a:115c:a1e0::1", "pubKeys": ["ssh-ed25519 AAAA"]}
                ],
                "sshUsers": {"*": "=", "root": ""},
                "action": {
                    "message": "Session recording is required",
                    "reject": true,
                    "accept": true,
                    "sessionDuration": 3600000000000i64,
                    "allowAgentForwarding": true,
                    "holdAndDelegate": "https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID",
                    "allowLocalPortForwarding": true,
                    "allowRemotePortForwarding": true,
                    "recorders": ["100.64.1.9:80", "[fd7a:115c:a1e0::9]:80"],
                    "onRecordingFailure": {
                        "RejectSessionWithMessage": "cannot record",
                        "TerminateSessionWithMessage": "recording stopped",
                        "NotifyURL": "https://unused/notify"
                    }
                },
                "acceptEnv": ["GIT_*", "LANG"]
            }
        ]);
        let rules: Vec<SshRule> = serde_json::from_value(go.clone()).unwrap();
        assert_eq!(serde_json::to_value(&rules).unwrap(), go);
        let rule = &rules[0];
        let ip = "100.64.0.1".parse().unwrap();
        assert!(rule.principals[1].admits(ip, None));
        assert!(!rule.principals[0].admits(ip, None));
        assert!(rule.principals[2].admits(ip, Some("alice@example.com")));
        assert!(rule.principals[3].admits("10.0.0.1".parse().unwrap(), None));
        assert_eq!(rule.action.session_duration, 3_600_000_000_000);
    }

    /// What aclc emits leaves out every field Go's `omitempty` would.
    #[test]
    fn emitted_ssh_rule_is_minimal() {
        let rule = SshRule {
            rule_expires: None,
            principals: Arc::from(vec![SshPrincipal::from_node_ip(Text::from("100.64.0.1"))]),
            ssh_users: Arc::new(BTreeMap::from([("root".to_string(), "root".to_string())])),
            action: SshAction::accept(),
            accept_env: Arc::from(Vec::new()),
        };
        assert_eq!(
            serde_json::to_string(&rule).unwrap(),
            r#"{"principals":[{"nodeIP":"100.64.0.1"}],"sshUsers":{"root":"root"},"action":{"accept":true,"allowAgentForwarding":true,"allowLocalPortForwarding":true,"allowRemotePortForwarding":true}}"#
        );
    }
}
