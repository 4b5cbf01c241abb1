//! `aclc explain`: why the policy allows or denies one flow or one SSH login, judged by the
//! same code as the policy's `tests` and `sshTests`, with the allowing rules or, on a denial,
//! the nearest misses. Where Tailscale's tests and the nodes' filters differ (a `via` grant,
//! ICMP, a protocol without ports), explain answers for the traffic
//! (`network::explain_with`).
//!
//! A source or destination is anything a test's `src` / `dst` accepts (user, group, tag,
//! host, address, autogroup, service as a destination) or, failing that, an inventory node
//! name.

use aclc_policy::model::Policy;
use aclc_policy::Span;

use super::endpoint::{Device, Endpoints, Side};
use super::{TestError, Verdict};
use crate::compiled::Compiled;

/// One flow to explain.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkQuery<'a> {
    /// The source, as a test's `src` (or a node name).
    pub src: &'a str,
    /// The destination: `host:port`, or a bare host when `proto` is ICMP.
    pub dst: &'a str,
    /// The protocol (a test's `proto`); `None` is TCP or UDP, as in tests.
    pub proto: Option<&'a str>,
    /// Posture attributes assumed for the source devices (a test's `srcPostureAttrs`).
    pub src_posture_attrs: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// The answer: the verdict (with the allowing rules), a sentence, and the near misses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// What the policy does; its rules are the allowing `acls` / `grants` / `ssh` entries.
    pub verdict: Verdict,
    /// One sentence: why.
    pub reason: String,
    /// On a denial, the rules that come closest, in policy order.
    pub misses: Vec<Miss>,
    /// On an allowed flow, the other rules that let some of it through as well, in policy
    /// order: removing only the verdict's rules would not deny it (network traffic; empty
    /// for SSH logins, where the first matching rule decides).
    pub also: Vec<Span>,
    /// What the verdict, judged on the policy as `tests` and `sshTests` are, cannot show,
    /// said beside it: an SSH login allowed through a packet filter that keeps TCP port 22
    /// closed, an endpoint written as a node's IPv4 address that `disable-ipv4` takes away,
    /// a denied SSH server's access to its session recorder that the recorder's packet filter
    /// admits all the same.
    pub notes: Vec<String>,
}

impl Explanation {
    /// True unless denied.
    pub fn allowed(&self) -> bool {
        self.verdict.is_allowed()
    }
}

/// A rule that almost matches, and what it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The rule (the whole `acls` / `grants` / `ssh` entry).
    pub span: Span,
    /// What it lacks: the source is not in its `src`, its ports or protocols, its posture
    /// gate, its users.
    pub why: String,
}

/// Explain traffic from `query.src` to `query.dst`. An error is what a test with those
/// endpoints would fail with (unknown names, a range, a missing port ...).
pub fn explain(
    policy: &Policy,
    compiled: &Compiled,
    query: &NetworkQuery<'_>,
) -> Result<Explanation, TestError> {
    let mut explanation = super::network::explain(policy, compiled, query)?;
    // The destination's host, read as the explanation read it.
    let dst = query.dst.trim();
    let host = super::network::split_port(dst).map_or(dst, |(host, _)| host);
    explanation
        .notes
        .extend(ipv4_notes(compiled, query.src.trim(), host));
    Ok(explanation)
}

/// Explain an SSH login as `user` from `src` to `dst` (every source device to every
/// destination device must be allowed).
pub fn explain_ssh(
    policy: &Policy,
    compiled: &Compiled,
    src: &str,
    dst: &str,
    user: &str,
) -> Result<Explanation, TestError> {
    let (src, dst) = (src.trim(), dst.trim());
    let mut explanation = match super::ssh::explain(policy, compiled, src, dst, user) {
        // `web-1:22`: an SSH login's destination is a device; say so.
        Err(TestError::UnknownDestination(message)) => {
            return Err(TestError::UnknownDestination(
                match super::network::split_port(dst) {
                    Ok((host, Some(_))) => format!(
                        "{message} (an SSH login's destination is a device, without a port: \
                         `{host}`)"
                    ),
                    _ => message,
                },
            ))
        }
        other => other?,
    };
    // A login the SSH rules allow still needs TCP port 22 open in the packet filter to reach
    // the node's SSH server; `sshTests` (and this verdict) judge the SSH rules alone, as
    // Tailscale does, so a closed port is said beside the verdict, not in it.
    let closed = explanation.allowed()
        && super::network::explain(
            policy,
            compiled,
            &NetworkQuery {
                src,
                dst: &format!("{dst}:22"),
                proto: Some("tcp"),
                src_posture_attrs: None,
            },
        )
        .is_ok_and(|network| !network.allowed());
    if closed {
        explanation.notes.push(format!(
            "the packet filter does not open TCP port 22 from {src} to {dst}: the connection \
             would not reach the SSH server"
        ));
    }
    explanation.notes.extend(ipv4_notes(compiled, src, dst));
    Ok(explanation)
}

/// Endpoints (a source, a destination host) written as a node's IPv4 address that
/// `disable-ipv4` takes away (the node has no IPv4 address on the tailnet, so no packet
/// crosses it from or to that address), or naming a node left with no address at all: a
/// note for each. O(log nodes) per endpoint.
fn ipv4_notes(compiled: &Compiled, src: &str, dst: &str) -> Vec<String> {
    let mut notes = Vec::new();
    for (text, is_src) in [(src, true), (dst, false)] {
        if let Ok(ip) = text.parse::<std::net::Ipv4Addr>() {
            let Some(name) = compiled.node_name_at(ip.into()) else {
                continue;
            };
            if compiled.node_ipv4_disabled(name) {
                let what = match is_src {
                    true => "the node sends nothing from that address over Tailscale",
                    false => "nothing reaches that address over Tailscale",
                };
                notes.push(format!(
                    "{ip} is {name}'s IPv4 address, which `disable-ipv4` takes away: {what}"
                ));
            }
        } else if compiled.node_ipv4_disabled(text) && compiled.node_ipv6(text).is_none() {
            notes.push(format!(
                "{text} has no address on the tailnet: `disable-ipv4` took its only one"
            ));
        }
    }
    notes
}

/// [`Endpoints::resolve`], then an inventory node name when that fails.
pub(super) fn resolve_named(
    endpoints: &mut Endpoints<'_>,
    text: &str,
    side: Side,
) -> Result<Vec<Device>, TestError> {
    let text = text.trim();
    match endpoints.resolve(text, side) {
        Ok(devices) => Ok(devices),
        Err(error) => match endpoints.table().id(text) {
            Some(id) => endpoints.device(id).map(|d| vec![d]).ok_or(error),
            // Nor a node: say so of a bare name (a node's name has no `:` or `@`), as
            // explain takes node names where tests do not.
            None if text.contains([':', '@']) => Err(error),
            None => Err(match error {
                TestError::UnknownSource(m) => TestError::UnknownSource(nor_a_node(m)),
                TestError::UnknownDestination(m) => TestError::UnknownDestination(nor_a_node(m)),
                other => other,
            }),
        },
    }
}

/// An unknown name's message, saying it names no node of the inventory either.
fn nor_a_node(message: String) -> String {
    format!("{message}, nor a node of the inventory")
}

/// When `text` names an inventory node that is not among `devices` (the policy reads it as
/// one of its own names, a `hosts` entry or a group, before any node name), a note saying
/// so, for the end of the answer: naming `hosts` entries after the machines is common, and
/// the answer is then about the entry's address, not the node's. Empty otherwise.
pub(super) fn shadowed(endpoints: &Endpoints<'_>, text: &str, devices: &[Device]) -> String {
    let text = text.trim();
    let table = endpoints.table();
    let Some(id) = table.id(text) else {
        return String::new();
    };
    if devices.iter().any(|d| d.node == Some(id)) {
        return String::new();
    }
    let addr = table
        .get(id)
        .and_then(|n| n.addrs().next())
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    format!(
        " (\"{text}\" is read as the policy's name, not as the node {text}{addr}: ask by the \
         node's address for the node)"
    )
}
