//! IP protocols (`proto` of ACLs, the protocol part of grant `ip` entries) and grant `ip`
//! entries, read the way Tailscale's own parser (`ipproto.ResolveProtoName`,
//! `tailcfg.parseProtoPortRange`) reads them, with its error texts.

use super::ports::{parse_port_list, PortRange};
use crate::text::quote;

/// An IP protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Protocol(pub u8);

/// Protocol names Tailscale accepts (case-insensitively), from the IANA keywords.
const NAMES: [(&str, u8); 13] = [
    ("ah", 51),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("igmp", 2),
    ("igp", 9),
    ("ip-in-ip", 4),
    ("ipv4", 4),
    ("ipv6-icmp", 58),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
];

/// Names only Tailscale's newer parser knows (`ipproto.Proto.UnmarshalText`, beside the
/// ones above); the captured error texts are its older parser's (`ResolveProtoName`), which
/// refuses them. Accepted, with a warning that aclc cannot verify them.
const NEWER_NAMES: [(&str, u8); 3] = [("dccp", 33), ("icmpv4", 1), ("icmpv6", 58)];

impl Protocol {
    /// ICMP (for IPv4; Tailscale also sends it for IPv6 destinations).
    pub const ICMP: Protocol = Protocol(1);
    /// IGMP.
    pub const IGMP: Protocol = Protocol(2);
    /// TCP.
    pub const TCP: Protocol = Protocol(6);
    /// UDP.
    pub const UDP: Protocol = Protocol(17);
    /// ICMPv6.
    pub const ICMPV6: Protocol = Protocol(58);
    /// TSMP, reserved by Tailscale.
    pub const TSMP: Protocol = Protocol(99);
    /// SCTP.
    pub const SCTP: Protocol = Protocol(132);

    /// Read a protocol name or decimal number. Errors carry Tailscale's text.
    pub fn parse(text: &str) -> Result<Protocol, String> {
        if text.is_empty() {
            return Err("empty protocol".to_string());
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = text.parse::<u8>() {
                if n == Protocol::TSMP.0 {
                    return Err("IP protocol 99 is reserved for use by Tailscale".to_string());
                }
                if text.starts_with('0') {
                    return Err(format!(
                        "leading 0 not permitted in protocol number {}",
                        quote(text)
                    ));
                }
                return Ok(Protocol(n));
            }
        }
        NAMES
            .iter()
            .chain(NEWER_NAMES.iter())
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|&(_, n)| Protocol(n))
            .ok_or_else(|| {
                format!(
                    "proto name {} not known; use protocol number 0-255",
                    quote(text)
                )
            })
    }

    /// True when `text` is a protocol name only Tailscale's newer parser knows
    /// (`icmpv4`, `icmpv6`, `dccp`): accepted, aclc cannot verify it.
    pub fn unverified_name(text: &str) -> bool {
        NEWER_NAMES
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
    }

    /// True for the protocols that have ports (TCP, UDP, SCTP); the others may only be used
    /// with `*`.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::TCP | Protocol::UDP | Protocol::SCTP)
    }

    /// The lower-case name, if the protocol has one.
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            4 => Some("ipv4"),
            n => NAMES.iter().find(|&&(_, m)| m == n).map(|&(name, _)| name),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// One grant `ip` entry: `*`, `<ports>`, `<proto>:*` or `<proto>:<port|range>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IpProtoPorts {
    /// The protocol; `None` means the default set (TCP, UDP, ICMP).
    pub proto: Option<Protocol>,
    /// The ports.
    pub ports: PortRange,
}

impl IpProtoPorts {
    /// Read a grant `ip` entry. A bare word is a port (`icmp` -> `port range "icmp": invalid
    /// first integer`), a bare number is a port, not a protocol.
    pub fn parse(text: &str) -> Result<IpProtoPorts, String> {
        if text.is_empty() {
            return Err("empty string".to_string());
        }
        if text == "*" {
            return Ok(IpProtoPorts {
                proto: None,
                ports: PortRange::ANY,
            });
        }
        let lowered = text.to_lowercase();
        let (proto_text, port_text) = match lowered.rfind(':') {
            Some(i) => (
                lowered.get(..i).unwrap_or(""),
                lowered.get(i + 1..).unwrap_or(""),
            ),
            None => ("*", lowered.as_str()),
        };
        if proto_text.contains(',') {
            return Err("host cannot contain a comma (\",\")".to_string());
        }
        let ports = parse_port_list(port_text).map_err(|e| e.to_string())?;
        if proto_text.is_empty() {
            return Err("empty protocol".to_string());
        }
        let ports = match ports.as_slice() {
            [] => return Err("empty port range".to_string()),
            [one] => *one,
            _ => return Err("only one port range allowed".to_string()),
        };
        let proto = match proto_text {
            "*" => None,
            p => Some(Protocol::parse(p)?),
        };
        Ok(IpProtoPorts { proto, ports })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn protocol_names_and_numbers() {
        assert_eq!(Protocol::parse("tcp"), Ok(Protocol::TCP));
        assert_eq!(Protocol::parse("UDP"), Ok(Protocol::UDP));
        assert_eq!(Protocol::parse("icmp"), Ok(Protocol::ICMP));
        assert_eq!(Protocol::parse("ipv6-icmp"), Ok(Protocol::ICMPV6));
        assert_eq!(Protocol::parse("ip-in-ip"), Ok(Protocol(4)));
        assert_eq!(Protocol::parse("6"), Ok(Protocol::TCP));
        assert_eq!(Protocol::parse("255"), Ok(Protocol(255)));
        assert_eq!(Protocol::parse("sctp"), Ok(Protocol::SCTP));
        // The newer parser's names: accepted (callers warn), named as the older names them.
        assert_eq!(Protocol::parse("ICMPv6"), Ok(Protocol::ICMPV6));
        assert_eq!(Protocol::parse("icmpv4"), Ok(Protocol::ICMP));
        assert_eq!(Protocol::parse("dccp"), Ok(Protocol(33)));
        assert_eq!(Protocol::ICMPV6.to_string(), "ipv6-icmp");
        assert_eq!(Protocol(33).to_string(), "33");
        assert!(Protocol::unverified_name("IcmpV6") && !Protocol::unverified_name("icmp"));
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            Protocol::parse("06").unwrap_err(),
            r#"leading 0 not permitted in protocol number "06""#
        );
        assert_eq!(
            Protocol::parse("99").unwrap_err(),
            "IP protocol 99 is reserved for use by Tailscale"
        );
        assert_eq!(
            Protocol::parse("256").unwrap_err(),
            r#"proto name "256" not known; use protocol number 0-255"#
        );
        assert_eq!(
            Protocol::parse("*").unwrap_err(),
            r#"proto name "*" not known; use protocol number 0-255"#
        );
    }

    #[test]
    fn grant_ip_entries() {
        let any = IpProtoPorts {
            proto: None,
            ports: PortRange::ANY,
        };
        assert_eq!(IpProtoPorts::parse("*"), Ok(any));
        assert_eq!(
            IpProtoPorts::parse("22"),
            Ok(IpProtoPorts {
                proto: None,
                ports: PortRange::single(22)
            })
        );
        assert_eq!(
            IpProtoPorts::parse("47").unwrap().proto,
            None,
            "a bare number is a port"
        );
        assert_eq!(
            IpProtoPorts::parse("tcp:80-443"),
            Ok(IpProtoPorts {
                proto: Some(Protocol::TCP),
                ports: PortRange {
                    first: 80,
                    last: 443
                }
            })
        );
        assert_eq!(
            IpProtoPorts::parse("icmp:*"),
            Ok(IpProtoPorts {
                proto: Some(Protocol::ICMP),
                ports: PortRange::ANY
            })
        );
        assert_eq!(IpProtoPorts::parse("*:*"), Ok(any));
    }

    #[test]
    fn grant_ip_errors() {
        let e = |s: &str| IpProtoPorts::parse(s).unwrap_err();
        assert_eq!(e("icmp"), r#"port range "icmp": invalid first integer"#);
        assert_eq!(
            e("tcp:0"),
            r#"port range "0": first port must be >0, or use '*' for wildcard"#
        );
        assert_eq!(e("tcp:80,443"), "only one port range allowed");
        assert_eq!(e(":80"), "empty protocol");
        assert_eq!(
            e("bogus:80"),
            r#"proto name "bogus" not known; use protocol number 0-255"#
        );
        assert_eq!(e(""), "empty string");
    }
}
