//! Tailscale's packet filter on the wire: `tailcfg.FilterRule` and its parts as serde types
//! that round-trip Go's JSON (PascalCase keys, empty fields left out, `null` read as empty).
//! The control server side (`aclc-compiler`) writes them; a node reads them back, or hands the
//! JSON straight to [`crate::Matcher::from_json`].
//!
//! Strings are [`Text`] (shared, one pointer wide) so a compiler can hand the same address
//! strings and source lists to every node without copying them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A shared string: one pointer (a reference count and the length sit before the bytes), where
/// `Arc<str>` is two. A compiler holds millions of these in its `SrcIPs` lists and SSH
/// principals (one per source address per list), so the width halves those lists.
pub type Text = arcstr::ArcStr;

/// A list of shared strings, e.g. the `SrcIPs` of a rule, shared by every node that gets it.
pub type Strings = Arc<[Text]>;

/// A capability map: capability name -> JSON values (`null` for the companion capabilities).
pub type CapMap = BTreeMap<String, serde_json::Value>;

/// One packet filter rule (`tailcfg.FilterRule`). Every field of Go's type is here, the
/// deprecated ones included, so a rule read from any control server writes back unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FilterRule {
    /// Source addresses: bare IPs, CIDRs, `first-last` ranges or `*`.
    #[serde(rename = "SrcIPs", default = "empty_strings")]
    pub src_ips: Strings,
    /// Deprecated prefix lengths of `SrcIPs` (clients older than capability version 7);
    /// a client refuses a filter that still carries them. Never written by aclc.
    #[serde(
        rename = "SrcBits",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub src_bits: Vec<i64>,
    /// Destinations with port ranges (network rules).
    #[serde(
        rename = "DstPorts",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub dst_ports: Vec<NetPortRange>,
    /// IP protocol numbers; empty means Tailscale's default set (TCP, UDP, ICMP).
    #[serde(
        rename = "IPProto",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ip_proto: Vec<u8>,
    /// Application capabilities granted (application rules).
    #[serde(
        rename = "CapGrant",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub cap_grant: Vec<CapGrant>,
}

fn empty_strings() -> Strings {
    Arc::from(Vec::new())
}

pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A destination and its ports (`tailcfg.NetPortRange`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetPortRange {
    /// Bare IP, CIDR, `first-last` range or `*`.
    #[serde(rename = "IP")]
    pub ip: Text,
    /// Deprecated prefix length of `IP`; a client refuses a filter that still carries it.
    /// Never written by aclc.
    #[serde(rename = "Bits", default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<i64>,
    /// The ports.
    #[serde(rename = "Ports")]
    pub ports: Ports,
}

/// An inclusive port range (`tailcfg.PortRange`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Ports {
    /// First port.
    #[serde(rename = "First")]
    pub first: u16,
    /// Last port.
    #[serde(rename = "Last")]
    pub last: u16,
}

/// Capabilities granted on some destinations (`tailcfg.CapGrant`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CapGrant {
    /// Destination prefixes (`a/32`, `a/128`, or a route prefix).
    #[serde(rename = "Dsts")]
    pub dsts: Vec<Text>,
    /// Legacy capability names without values (`tailcfg.PeerCapability`, before `CapMap`).
    #[serde(
        rename = "Caps",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub caps: Vec<String>,
    /// The capabilities.
    #[serde(rename = "CapMap", default, skip_serializing_if = "is_empty_map")]
    pub cap_map: Arc<CapMap>,
}

fn is_empty_map(map: &Arc<CapMap>) -> bool {
    map.is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_text_is_one_pointer_wide() {
        // What the compiler's `SrcIPs` lists are measured in (ARCHITECTURE.md, "Decisions").
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Option<Text>>(),
            std::mem::size_of::<usize>()
        );
        let text = Text::from("100.64.0.1");
        assert_eq!(serde_json::to_string(&text).unwrap(), r#""100.64.0.1""#);
        assert_eq!(
            serde_json::from_str::<Text>(r#""100.64.0.1""#).unwrap(),
            text
        );
    }

    #[test]
    fn filter_rule_json_matches_tailscale() {
        let rule = FilterRule {
            src_bits: Vec::new(),
            src_ips: Arc::from(vec![Text::from("100.64.0.1")]),
            dst_ports: vec![NetPortRange {
                bits: None,
                ip: Text::from("*"),
                ports: Ports {
                    first: 0,
                    last: 65535,
                },
            }],
            ip_proto: vec![6],
            cap_grant: Vec::new(),
        };
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            json,
            r#"{"SrcIPs":["100.64.0.1"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6]}"#
        );
        let back: FilterRule = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rule);
        let with_nulls: FilterRule =
            serde_json::from_str(r#"{"SrcIPs":["*"],"DstPorts":null,"IPProto":null}"#).unwrap();
        assert!(with_nulls.dst_ports.is_empty() && with_nulls.ip_proto.is_empty());
    }

    /// A filter in the shape Tailscale's Go types marshal, every field set (the deprecated
    /// `SrcBits`, `Bits` and `Caps` included): it reads and writes back unchanged.
    #[test]
    fn filter_rules_round_trip_every_field() {
        let go = serde_json::json!([
            {
                "SrcIPs": ["100.64.0.1", "10.0.0.0/8", "100.64.0.1-100.64.0.9", "*"],
                "SrcBits": [32, 8],
                "DstPorts": [
                    {"IP": "100.64.0.2", "Bits": 32, "Ports": {"First": 22, "Last": 22}},
                    {"IP": "*", "Ports": {"First": 0, "Last": 65535}}
                ],
                "IPProto": [6, 17]
            },
            {
                "SrcIPs": ["100.64.0.1"],
                "CapGrant": [{
                    "Dsts": ["100.64.0.2/32"],
                    "Caps": ["https://tailscale.com/cap/file-sharing-target"],
                    "CapMap": {"example.com/cap/x": [{"k": 1}], "tailscale.com/cap/drive-sharer": null}
                }]
            }
        ]);
        let rules: Vec<FilterRule> = serde_json::from_value(go.clone()).unwrap();
        assert_eq!(serde_json::to_value(&rules).unwrap(), go);
        assert_eq!(rules[0].src_bits, [32, 8]);
        assert_eq!(rules[0].dst_ports[0].bits, Some(32));
        assert_eq!(rules[1].cap_grant[0].caps.len(), 1);
    }
}
