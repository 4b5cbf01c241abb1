//! The wire format: Tailscale's SSH rules and the per-node document of the conformance corpus,
//! as serde types that round-trip; the packet filter types come from `aclc-matcher`, the node
//! side, and are re-exported here.
//!
//! Strings are `Arc<str>` so a compiled policy can hand the same address strings and source
//! lists to every node without copying them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use aclc_matcher::wire::{CapGrant, CapMap, FilterRule, NetPortRange, Ports, Strings};

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
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
    pub principals: Arc<[SshPrincipal]>,
    /// Requested login -> local user: `*` is any other login, `=` means the same name, and
    /// `""` refuses that login.
    #[serde(rename = "sshUsers")]
    pub ssh_users: Arc<BTreeMap<String, String>>,
    /// What to do with a matching connection.
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct SshPrincipal {
    /// A node's stable id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Arc<str>>,
    /// A Tailscale address of the connecting device.
    #[serde(rename = "nodeIP", default, skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<Arc<str>>,
    /// The login of the connecting user.
    #[serde(rename = "userLogin", default, skip_serializing_if = "Option::is_none")]
    pub user_login: Option<Arc<str>>,
    /// Any connecting device.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any: bool,
    /// Unused by clients since Tailscale 1.x; kept so a rule round-trips.
    #[serde(rename = "pubKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub pub_keys: Vec<String>,
}

impl SshPrincipal {
    /// The principal naming a device by one of its addresses.
    pub fn node_ip(ip: Arc<str>) -> SshPrincipal {
        SshPrincipal {
            node_ip: Some(ip),
            ..SshPrincipal::default()
        }
    }

    /// True if a connection from `ip`, by `login` when known, matches.
    pub fn admits(&self, ip: std::net::IpAddr, login: Option<&str>) -> bool {
        self.any
            || self
                .node_ip
                .as_deref()
                .and_then(|t| t.parse::<std::net::IpAddr>().ok())
                .is_some_and(|p| p == ip)
            || login.is_some_and(|l| self.user_login.as_deref() == Some(l))
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
    pub peers: BTreeMap<std::sync::Arc<str>, PeerOutput>,
}

/// How a node sees one peer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeerOutput {
    /// The peer's AllowedIPs as this node gets them: addresses, routes it carries for this
    /// node, exit routes.
    /// (Shared strings: the peer's own addresses are the compiled policy's.)
    #[serde(default)]
    pub allowed_ips: Vec<std::sync::Arc<str>>,
    /// The subnet routes among `allowed_ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_routes: Vec<std::sync::Arc<str>>,
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
            principals: Arc::from(vec![SshPrincipal::node_ip(Arc::from("100.64.0.1"))]),
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
