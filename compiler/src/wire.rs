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

/// Who an SSH rule admits (`tailcfg.SSHPrincipal`); the control plane names devices by
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SshPrincipal {
    /// A Tailscale address of the connecting device.
    #[serde(rename = "nodeIP")]
    pub node_ip: Arc<str>,
}

/// What an SSH rule does (`tailcfg.SSHAction`); flags that are off are left out, as Go's
/// `omitempty` does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SshAction {
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
    /// Visible peers by name.
    #[serde(default)]
    pub peers: BTreeMap<String, PeerOutput>,
}

/// How a node sees one peer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PeerOutput {
    /// The peer's AllowedIPs as this node gets them: addresses, routes it carries for this
    /// node, exit routes.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// The subnet routes among `allowed_ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_routes: Vec<String>,
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
