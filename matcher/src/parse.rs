//! Reads a node's `FilterRule` list (wire JSON) the way the Tailscale client does.
//!
//! The client (`wgengine/filter/tailcfg.go:MatchesFromFilterRules`, `parseIPSet`) decodes the
//! JSON with Go's `encoding/json` (field names matched without regard to case, unknown fields
//! ignored), then converts each rule: `*` is every IPv4 and every IPv6 address, `cap:X` a
//! capability source, `a/n` a CIDR that must have no host bits, `a-b` an inclusive range of one
//! family, anything else a single address. An entry that does not parse is skipped and the rest
//! of the filter stays in force; `SrcBits` or `Bits` (pre-2020 encodings) abort the whole
//! conversion, leaving no rule at all. We keep those semantics and report every skipped entry.
//!
//! These serde types are private to the matcher on purpose: the compiler's `wire` module owns
//! the output side, and the matcher must accept whatever a control server sends, not only
//! what our compiler writes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv6Addr};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::{proto, Addr, FilterProblem, MatcherError, Net};

/// A node's packet filter, read and checked: the input of both matchers.
///
/// Reading is separate from building so the same rules can feed the fast and the reference
/// matcher, and so the cost of JSON decoding is not mistaken for the cost of building.
#[derive(Debug, Clone, Default)]
pub struct ParsedRules {
    pub(crate) rules: Vec<Rule>,
    pub(crate) problems: Vec<FilterProblem>,
}

/// One rule after conversion (the client's `filtertype.Match`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rule {
    /// Protocols (`IPProto`, or the default set when absent); may be empty.
    pub(crate) protos: Vec<u8>,
    /// Source networks of both families.
    pub(crate) srcs: Vec<Net>,
    /// `cap:` sources, without the prefix.
    pub(crate) src_caps: Vec<Box<str>>,
    /// Destinations with their ports.
    pub(crate) dsts: Vec<DstRange>,
    /// Application capability grants, one per (destination, capability).
    pub(crate) caps: Vec<CapEntry>,
}

/// A `DstPorts` entry (one per network when the entry was `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DstRange {
    pub(crate) net: Net,
    pub(crate) first: u16,
    pub(crate) last: u16,
}

impl DstRange {
    pub(crate) fn all_ports(&self) -> bool {
        self.first == 0 && self.last == u16::MAX
    }
}

/// One application capability granted towards one destination network.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CapEntry {
    pub(crate) dst: Net,
    pub(crate) cap: Box<str>,
    pub(crate) values: Vec<serde_json::Value>,
}

impl ParsedRules {
    /// Reads a `FilterRule` list from JSON text (`null` is an empty list).
    ///
    /// Fails only if the text is not JSON of that shape; entries that do not parse (an address
    /// with host bits set after the slash, a reversed range, ...) are skipped and listed in
    /// [`ParsedRules::problems`], as the client skips them.
    ///
    /// A `null` where the client's types hold no pointer is read as Go reads it: a `null` rule
    /// or list entry is its zero value (an empty rule, an empty address that is then skipped,
    /// protocol 0), a `null` field leaves the field as it was. Half a surrogate pair escaped
    /// in a string (`"\ud800"`) is U+FFFD, as Go decodes it, not an error.
    pub fn from_json(json: &str) -> Result<Self, MatcherError> {
        let parse = |text: &str| {
            let wire: Option<Vec<GoNull<WireRule<'_>>>> =
                serde_json::from_str(text).map_err(|e| MatcherError::json(&e))?;
            convert(wire.unwrap_or_default())
        };
        match parse(json) {
            // serde_json refuses half a pair; Go's decoder reads it as U+FFFD.
            Err(error) => match lone_surrogates_replaced(json) {
                Some(fixed) => parse(&fixed),
                None => Err(error),
            },
            parsed => parsed,
        }
    }

    /// Reads a `FilterRule` list from JSON bytes; see [`ParsedRules::from_json`]. Bytes
    /// that are not UTF-8 are read as Go's `encoding/json` reads them (the client's decoder):
    /// each invalid byte is U+FFFD, not an error. An address holding one is then skipped
    /// like any address that does not parse, and a field the client ignores stays ignored.
    /// (Refusing them made the whole filter fail when the byte was in a field read, and
    /// pass when it was in one skipped.)
    pub fn from_slice(json: &[u8]) -> Result<Self, MatcherError> {
        match std::str::from_utf8(json) {
            Ok(text) => Self::from_json(text),
            Err(_) => Self::from_json(&go_lossy(json)),
        }
    }

    /// The entries that were skipped.
    pub fn problems(&self) -> &[FilterProblem] {
        &self.problems
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule (everything but the stateless allowances is refused).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The number of source networks over all rules (`*` counts as two: one per family).
    pub fn source_entries(&self) -> usize {
        self.rules.iter().map(|r| r.srcs.len()).sum()
    }
}

fn convert(wire: Vec<GoNull<WireRule<'_>>>) -> Result<ParsedRules, MatcherError> {
    undecodable_dsts(&wire)?;
    let mut out = ParsedRules::default();
    for (index, GoNull(wire_rule)) in wire.into_iter().enumerate() {
        if wire_rule.src_bits {
            return Ok(abort(out.problems, index, "SrcBits"));
        }
        let mut rule = Rule {
            protos: match &wire_rule.ip_proto {
                None => proto::DEFAULT.to_vec(),
                Some(list) if list.is_empty() => proto::DEFAULT.to_vec(),
                // Numbers outside 0..=255 are ignored, as by the client; a list of only such
                // numbers leaves a rule that no packet's protocol matches.
                Some(list) => list.iter().filter_map(|&n| u8::try_from(n).ok()).collect(),
            },
            ..Rule::default()
        };
        for (i, text) in wire_rule.src_ips.iter().enumerate() {
            match parse_ip_set(text.as_str()) {
                Ok(IpSet::Nets(nets)) => rule.srcs.extend(nets),
                Ok(IpSet::Cap(cap)) => {
                    if !cap.is_empty() {
                        rule.src_caps.push(cap.into());
                    }
                }
                Err(message) => out.problems.push(problem(
                    index,
                    format!("SrcIPs[{i}]"),
                    text.as_str(),
                    message,
                )),
            }
        }
        for (i, dst) in wire_rule.dst_ports.iter().enumerate() {
            if dst.bits {
                return Ok(abort(out.problems, index, &format!("DstPorts[{i}].Bits")));
            }
            match parse_ip_set(dst.ip.as_str()) {
                Ok(IpSet::Nets(nets)) => rule.dsts.extend(nets.map(|net| DstRange {
                    net,
                    first: dst.first,
                    last: dst.last,
                })),
                Ok(IpSet::Cap(cap)) => {
                    if !cap.is_empty() {
                        out.problems.push(problem(
                            index,
                            format!("DstPorts[{i}].IP"),
                            dst.ip.as_str(),
                            format!("unexpected capability {cap:?} in DstPorts"),
                        ));
                    }
                }
                Err(message) => out.problems.push(problem(
                    index,
                    format!("DstPorts[{i}].IP"),
                    dst.ip.as_str(),
                    message,
                )),
            }
        }
        for (g, grant) in wire_rule.cap_grant.iter().enumerate() {
            for (d, text) in grant.dsts.iter().enumerate() {
                let dst = match parse_prefix(text.as_str(), false) {
                    Ok(net) => net,
                    // Only an empty one is left here ([`undecodable_dsts`]).
                    Err(message) => {
                        out.problems.push(problem(
                            index,
                            format!("CapGrant[{g}].Dsts[{d}]"),
                            text.as_str(),
                            message,
                        ));
                        continue;
                    }
                };
                for cap in &grant.caps {
                    rule.caps.push(CapEntry {
                        dst,
                        cap: cap.as_str().into(),
                        values: Vec::new(),
                    });
                }
                for (cap, values) in &grant.cap_map {
                    rule.caps.push(CapEntry {
                        dst,
                        cap: cap.as_str().into(),
                        values: values.clone(),
                    });
                }
            }
        }
        out.rules.push(rule);
    }
    Ok(out)
}

/// The first `CapGrant.Dsts` entry Go's decoder refuses, as an error. `Dsts` are
/// `netip.Prefix` values, which the decoder parses itself: one that does not parse fails the
/// whole document, wherever it is, and the client applies none of it. An empty one (or
/// `null`) is the zero prefix, which holds no address: skipped with the other entries.
fn undecodable_dsts(wire: &[GoNull<WireRule<'_>>]) -> Result<(), MatcherError> {
    for (index, GoNull(rule)) in wire.iter().enumerate() {
        for (g, grant) in rule.cap_grant.iter().enumerate() {
            for (d, text) in grant.dsts.iter().enumerate() {
                if text.as_str().is_empty() {
                    continue;
                }
                if let Err(message) = parse_prefix(text.as_str(), false) {
                    return Err(MatcherError::undecodable(&format!(
                        "rule {index}, CapGrant[{g}].Dsts[{d}]: {message}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `SrcBits`/`Bits`: the client refuses the whole filter, which leaves no rule.
fn abort(mut problems: Vec<FilterProblem>, rule: usize, field: &str) -> ParsedRules {
    problems.push(problem(
        rule,
        field.to_string(),
        "",
        "unexpected legacy prefix-length field; the whole filter is ignored".to_string(),
    ));
    ParsedRules {
        rules: Vec::new(),
        problems,
    }
}

fn problem(rule: usize, field: String, entry: &str, message: String) -> FilterProblem {
    FilterProblem {
        rule,
        field,
        entry: entry.to_string(),
        message,
    }
}

/// What one `SrcIPs` or `DstPorts[].IP` entry denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpSet<'a> {
    /// One or two networks (`*` is both families).
    Nets(NetIter),
    /// A `cap:` entry: the capability name (possibly empty).
    Cap(&'a str),
}

/// At most two networks, without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetIter {
    first: Option<Net>,
    second: Option<Net>,
}

impl Iterator for NetIter {
    type Item = Net;

    fn next(&mut self) -> Option<Net> {
        self.first.take().or_else(|| self.second.take())
    }
}

impl NetIter {
    fn one(net: Net) -> Self {
        NetIter {
            first: Some(net),
            second: None,
        }
    }
}

/// The client's `parseIPSet`, with ranges kept as one interval (the client splits them into
/// covering prefixes, which denote the same addresses).
pub(crate) fn parse_ip_set(text: &str) -> Result<IpSet<'_>, String> {
    if text == "*" {
        return Ok(IpSet::Nets(NetIter {
            first: Some(Net::ALL_V4),
            second: Some(Net::ALL_V6),
        }));
    }
    if let Some(cap) = text.strip_prefix("cap:") {
        return Ok(IpSet::Cap(cap));
    }
    if text.contains('/') {
        return parse_prefix(text, true).map(|net| IpSet::Nets(NetIter::one(net)));
    }
    if text.matches('-').count() == 1 {
        let (a, b) = text.split_once('-').unwrap_or((text, ""));
        let lo = parse_addr(a)?;
        let hi = parse_addr(b)?;
        if lo.v6 != hi.v6 || hi.bits < lo.bits {
            return Err(format!("invalid IP range {text:?}"));
        }
        return Ok(IpSet::Nets(NetIter::one(Net {
            v6: lo.v6,
            lo: lo.bits,
            hi: hi.bits,
        })));
    }
    let addr = parse_addr(text).map_err(|_| format!("invalid IP address {text:?}"))?;
    Ok(IpSet::Nets(NetIter::one(Net {
        v6: addr.v6,
        lo: addr.bits,
        hi: addr.bits,
    })))
}

/// Go's `netip.ParseAddr`, with an IPv6 zone dropped the way `netip.PrefixFrom` and
/// `netipx.IPRangeFrom` drop it.
fn parse_addr(text: &str) -> Result<Addr, String> {
    if let Some((ip, zone)) = text.split_once('%') {
        if zone.is_empty() {
            return Err(format!("{text:?}: zone must be a non-empty string"));
        }
        return ip
            .parse::<Ipv6Addr>()
            .map(|v6| Addr::from(IpAddr::V6(v6)))
            .map_err(|_| format!("{text:?}: invalid IPv6 address with zone"));
    }
    text.parse::<IpAddr>()
        .map(Addr::from)
        .map_err(|_| format!("{text:?}: invalid IP address"))
}

/// Go's `netip.ParsePrefix`; with `masked`, host bits must be zero (as `parseIPSet` demands),
/// otherwise they are ignored (as `Prefix.Contains` ignores them in `CapGrant.Dsts`).
fn parse_prefix(text: &str, masked: bool) -> Result<Net, String> {
    let Some((ip, bits)) = text.rsplit_once('/') else {
        return Err(format!("{text:?}: no '/'"));
    };
    if ip.contains('%') {
        return Err(format!(
            "{text:?}: IPv6 zones cannot be present in a prefix"
        ));
    }
    let addr = ip
        .parse::<IpAddr>()
        .map(Addr::from)
        .map_err(|_| format!("{text:?}: invalid IP address"))?;
    let width: u32 = if addr.v6 { 128 } else { 32 };
    let leading_zero = bits.len() > 1 && bits.starts_with('0');
    let bits: u32 = match bits.parse::<u32>() {
        Ok(n) if !leading_zero && bits.bytes().all(|b| b.is_ascii_digit()) && n <= width => n,
        _ => return Err(format!("{text:?}: bad bits after slash: {bits:?}")),
    };
    // Host part of the address: the low (width - bits) bits.
    let host_mask: u128 = match (width - bits).cmp(&128) {
        std::cmp::Ordering::Less => (1u128 << (width - bits)) - 1,
        _ => u128::MAX,
    };
    if masked && addr.bits & host_mask != 0 {
        return Err(format!("{text} contains non-network bits set"));
    }
    let lo = addr.bits & !host_mask;
    Ok(Net {
        v6: addr.v6,
        lo,
        hi: lo | host_mask,
    })
}

// ---------------------------------------------------------------------------------------------
// Wire types. Go's decoder matches field names case-insensitively and ignores unknown fields;
// the visitors below do the same (ASCII case only), and borrow strings from the input.

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// Which of `names` (ASCII) a JSON key is, ignoring case as Go's decoder does
/// (`bytes.EqualFold`): ASCII case, and the two other letters that fold to ASCII ones, the
/// long s (U+017F, `s`) and the Kelvin sign (U+212A, `k`).
fn field(key: &str, names: &[&str]) -> Option<usize> {
    let folded = |c: char| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    names.iter().position(|n| {
        key.chars()
            .map(folded)
            .eq(n.chars().map(|c| c.to_ascii_lowercase()))
    })
}

/// `null` or absent is the same as empty, as for Go slices; a `null` entry is the entry's
/// zero value, as Go stores it.
fn list<'de, A, T>(map: &mut A) -> Result<Vec<T>, A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(map
        .next_value::<Option<Vec<GoNull<T>>>>()?
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.0)
        .collect())
}

/// A value Go's decoder stores into a type without pointers: `null` leaves its zero value.
struct GoNull<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for GoNull<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(GoNull(
            Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
        ))
    }
}

impl Default for Text<'_> {
    fn default() -> Self {
        Text(Cow::Borrowed(""))
    }
}

/// `json` with each escaped half of a surrogate pair (`\ud800` without its other half) in a
/// string replaced by `\ufffd`, as Go's decoder reads it; `None` if it holds none. Linear
/// in the text.
fn lone_surrogates_replaced(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let escaped_unit = |at: usize| -> Option<u16> {
        if bytes.get(at..at + 2)? != b"\\u" {
            return None;
        }
        let hex = std::str::from_utf8(bytes.get(at + 2..at + 6)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut out = String::new();
    let (mut copied, mut i, mut in_string) = (0, 0, false);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                let Some(unit) = escaped_unit(i) else {
                    i += 2; // a two-character escape (or `\u` with bad hex: serde's error)
                    continue;
                };
                let paired = (0xd800..0xdc00).contains(&unit)
                    && escaped_unit(i + 6).is_some_and(|low| (0xdc00..0xe000).contains(&low));
                if paired {
                    i += 12;
                    continue;
                }
                if (0xd800..0xe000).contains(&unit) {
                    out.push_str(json.get(copied..i)?);
                    out.push_str("\\ufffd");
                    copied = i + 6;
                }
                i += 6;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(json.get(copied..)?);
    Some(out)
}

#[derive(Default)]
struct WireRule<'a> {
    src_ips: Vec<Text<'a>>,
    src_bits: bool,
    dst_ports: Vec<WireDst<'a>>,
    ip_proto: Option<Vec<i64>>,
    cap_grant: Vec<WireCapGrant<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireRule<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for RuleVisitor<'a> {
            type Value = WireRule<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a FilterRule object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireRule<'a>, A::Error> {
                let mut rule = WireRule::default();
                const NAMES: &[&str] = &["SrcIPs", "SrcBits", "DstPorts", "IPProto", "CapGrant"];
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match field(key.as_str(), NAMES) {
                        Some(0) => rule.src_ips = list(&mut map)?,
                        Some(1) => rule.src_bits = !list::<_, IgnoredAny>(&mut map)?.is_empty(),
                        Some(2) => rule.dst_ports = list(&mut map)?,
                        Some(3) => {
                            rule.ip_proto = map
                                .next_value::<Option<Vec<GoNull<i64>>>>()?
                                .map(|list| list.into_iter().map(|n| n.0).collect());
                        }
                        Some(4) => rule.cap_grant = list(&mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(rule)
            }
        }
        deserializer.deserialize_map(RuleVisitor(PhantomData))
    }
}

/// `NetPortRange`.
#[derive(Default)]
struct WireDst<'a> {
    ip: Text<'a>,
    bits: bool,
    first: u16,
    last: u16,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireDst<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DstVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for DstVisitor<'a> {
            type Value = WireDst<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NetPortRange object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireDst<'a>, A::Error> {
                let mut dst = WireDst {
                    ip: Text(Cow::Borrowed("")),
                    bits: false,
                    first: 0,
                    last: 0,
                };
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match field(key.as_str(), &["IP", "Bits", "Ports"]) {
                        Some(0) => {
                            if let Some(ip) = map.next_value::<Option<Text<'de>>>()? {
                                dst.ip = ip;
                            }
                        }
                        Some(1) => dst.bits = map.next_value::<Option<IgnoredAny>>()?.is_some(),
                        Some(2) => {
                            if let Some(ports) = map.next_value::<Option<WirePorts>>()? {
                                dst.first = ports.first;
                                dst.last = ports.last;
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(dst)
            }
        }
        deserializer.deserialize_map(DstVisitor(PhantomData))
    }
}

/// `PortRange`.
struct WirePorts {
    first: u16,
    last: u16,
}

impl<'de> Deserialize<'de> for WirePorts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortsVisitor;
        impl<'de> Visitor<'de> for PortsVisitor {
            type Value = WirePorts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a PortRange object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WirePorts, A::Error> {
                let mut ports = WirePorts { first: 0, last: 0 };
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match field(key.as_str(), &["First", "Last"]) {
                        Some(0) => {
                            if let Some(first) = map.next_value()? {
                                ports.first = first;
                            }
                        }
                        Some(1) => {
                            if let Some(last) = map.next_value()? {
                                ports.last = last;
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ports)
            }
        }
        deserializer.deserialize_map(PortsVisitor)
    }
}

/// `CapGrant`.
#[derive(Default)]
struct WireCapGrant<'a> {
    dsts: Vec<Text<'a>>,
    caps: Vec<Text<'a>>,
    cap_map: BTreeMap<String, Vec<serde_json::Value>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireCapGrant<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GrantVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for GrantVisitor<'a> {
            type Value = WireCapGrant<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CapGrant object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireCapGrant<'a>, A::Error> {
                let mut grant = WireCapGrant::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match field(key.as_str(), &["Dsts", "Caps", "CapMap"]) {
                        Some(0) => grant.dsts = list(&mut map)?,
                        Some(1) => grant.caps = list(&mut map)?,
                        Some(2) => {
                            let raw: Option<BTreeMap<String, Option<Vec<serde_json::Value>>>> =
                                map.next_value()?;
                            grant.cap_map = raw
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, v.unwrap_or_default()))
                                .collect();
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(grant)
            }
        }
        deserializer.deserialize_map(GrantVisitor(PhantomData))
    }
}

/// `bytes` as text with each byte that is not part of valid UTF-8 replaced by U+FFFD, one per
/// byte, as Go's `encoding/json` decodes strings (`utf8.DecodeRune` consumes one byte of an
/// invalid sequence at a time).
fn go_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n(
            char::REPLACEMENT_CHARACTER,
            chunk.invalid().len(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;

    fn net(text: &str) -> Net {
        match parse_ip_set(text).unwrap() {
            IpSet::Nets(mut nets) => nets.next().unwrap(),
            IpSet::Cap(_) => panic!("a capability"),
        }
    }

    #[test]
    fn ip_set_forms() {
        assert_eq!(
            net("100.64.0.1"),
            Net {
                v6: false,
                lo: 0x6440_0001,
                hi: 0x6440_0001
            }
        );
        assert_eq!(
            net("10.0.0.0/8"),
            Net {
                v6: false,
                lo: 0x0a00_0000,
                hi: 0x0aff_ffff
            }
        );
        assert_eq!(net("0.0.0.0/0"), Net::ALL_V4);
        assert_eq!(net("::/0"), Net::ALL_V6);
        assert_eq!(
            net("10.0.0.5-10.0.0.9"),
            Net {
                v6: false,
                lo: 0x0a00_0005,
                hi: 0x0a00_0009
            }
        );
        assert_eq!(net("fe80::1%eth0"), net("fe80::1"));
        let star: Vec<Net> = match parse_ip_set("*").unwrap() {
            IpSet::Nets(nets) => nets.collect(),
            IpSet::Cap(_) => panic!(),
        };
        assert_eq!(star, vec![Net::ALL_V4, Net::ALL_V6]);
        assert_eq!(parse_ip_set("cap:foo").unwrap(), IpSet::Cap("foo"));
        // A mapped IPv4 address is an IPv6 address, as in Go.
        assert!(net("::ffff:1.2.3.4").v6);
    }

    #[test]
    fn ip_set_errors() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "fe80::%eth0/64",
            "10.0.0.9-10.0.0.5",
            "10.0.0.1-::1",
            "10.0.0.1-10.0.0.2-10.0.0.3",
            "01.2.3.4",
            "1.2.3.4%eth0",
            "fe80::1%",
            "",
            " 1.2.3.4",
            "host.example",
            "**",
        ] {
            assert!(parse_ip_set(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn bad_entries_are_skipped_and_reported() {
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["10.0.0.1/8","10.0.0.2"],"DstPorts":[{"IP":"cap:x","Ports":{"First":1,"Last":2}},{"IP":"*","Ports":{"First":1,"Last":2}}]}]"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules.rules[0].srcs.len(), 1);
        assert_eq!(rules.rules[0].dsts.len(), 2);
        let fields: Vec<&str> = rules.problems().iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["SrcIPs[0]", "DstPorts[0].IP"]);
    }

    #[test]
    fn legacy_bits_abort_everything() {
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]},
                {"SrcIPs":["1.2.3.4"],"SrcBits":[32],"DstPorts":[]}]"#,
        )
        .unwrap();
        assert!(rules.is_empty());
        assert_eq!(rules.problems()[0].field, "SrcBits");
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Bits":32,"Ports":{"First":0,"Last":65535}}]}]"#,
        )
        .unwrap();
        assert!(rules.is_empty());
        // `null` is absent.
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"],"SrcBits":null,"DstPorts":[{"IP":"*","Bits":null,"Ports":{"First":0,"Last":65535}}]}]"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn field_names_ignore_case_and_unknown_fields() {
        let rules = ParsedRules::from_json(
            r#"[{"srcips":["*"],"dstPorts":[{"ip":"*","ports":{"first":22,"LAST":23}}],"ipproto":[6,300,-1],"Extra":{"a":[1]}}]"#,
        )
        .unwrap();
        let rule = &rules.rules[0];
        assert_eq!(rule.srcs.len(), 2);
        assert_eq!((rule.dsts[0].first, rule.dsts[0].last), (22, 23));
        assert_eq!(rule.protos, vec![6]);
        // Go's folding also takes the long s and the Kelvin sign to ASCII letters.
        let rules = ParsedRules::from_json(
            r#"[{"ſrcIPs":["*"],"DSTPORTS":[{"IP":"*","Ports":{"First":1,"Last":2}}]}]"#,
        )
        .unwrap();
        assert_eq!(rules.rules[0].srcs.len(), 2);
        assert_eq!(field("\u{212a}ey", &["Key"]), Some(0));
        assert_eq!(field("srcip", &["SrcIPs"]), None);
    }

    #[test]
    fn protocols() {
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"]},{"SrcIPs":["*"],"IPProto":[]},{"SrcIPs":["*"],"IPProto":null},{"SrcIPs":["*"],"IPProto":[256]}]"#,
        )
        .unwrap();
        assert_eq!(rules.rules[0].protos, proto::DEFAULT);
        assert_eq!(rules.rules[1].protos, proto::DEFAULT);
        assert_eq!(rules.rules[2].protos, proto::DEFAULT);
        assert!(rules.rules[3].protos.is_empty());
    }

    /// Bytes that are not UTF-8 are read as the client's decoder reads them: each one
    /// U+FFFD. In an address the entry does not parse and is skipped (the filter stays); in
    /// a field the client ignores, nothing changes; outside a string, the JSON is invalid.
    /// Fails if `from_slice` refuses invalid UTF-8 again (the first two), or accepts it
    /// outside strings.
    #[test]
    fn bytes_that_are_not_utf8_read_as_go_reads_them() {
        let bytes = |before: &str, bad: &[u8], after: &str| -> Vec<u8> {
            [before.as_bytes(), bad, after.as_bytes()].concat()
        };
        let in_address = bytes(
            r#"[{"SrcIPs":["10.0.0.1"#,
            &[0xaf],
            r#"","10.0.0.2"],"DstPorts":[{"IP":"*","Ports":{"First":1,"Last":2}}]}]"#,
        );
        let rules = ParsedRules::from_slice(&in_address).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules.rules[0].srcs.len(), 1);
        let fields: Vec<&str> = rules.problems().iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["SrcIPs[0]"]);
        let ignored = bytes(
            r#"[{"SrcIPs":["*"],"Extra":"x"#,
            &[0xe2, 0x82],
            r#"y","DstPorts":[{"IP":"*","Ports":{"First":1,"Last":2}}]}]"#,
        );
        let rules = ParsedRules::from_slice(&ignored).unwrap();
        assert_eq!(rules.len(), 1);
        assert!(rules.problems().is_empty());
        // One U+FFFD per invalid byte, as Go's `utf8.DecodeRune` steps.
        assert_eq!(go_lossy(&[b'a', 0xe2, 0x82, b'b']), "a\u{FFFD}\u{FFFD}b");
        assert!(ParsedRules::from_slice(&bytes("[", &[0xff], "]")).is_err());
    }

    #[test]
    fn whole_input_errors() {
        assert!(ParsedRules::from_json("{").is_err());
        assert!(ParsedRules::from_json(r#"{"SrcIPs":[]}"#).is_err());
        assert!(ParsedRules::from_json(r#"[{"SrcIPs":[1]}]"#).is_err());
        assert!(ParsedRules::from_json(
            r#"[{"DstPorts":[{"IP":"*","Ports":{"First":70000,"Last":1}}]}]"#
        )
        .is_err());
        assert!(ParsedRules::from_json(r#"[{"IPProto":[6.5]}]"#).is_err());
        assert!(ParsedRules::from_json("null").unwrap().is_empty());
        assert!(ParsedRules::from_json("[]").unwrap().is_empty());
    }

    /// Go's decoder stores `null` as the zero value where its types hold no pointer, and
    /// reads half a surrogate pair as U+FFFD; the client then skips the empty entries and
    /// keeps the rest of the filter (checked against `tailscale.com` v1.102.5's decoding).
    /// Fails if any of these refuses the whole filter again.
    #[test]
    fn nulls_and_lone_surrogates_read_as_go_reads_them() {
        let keep =
            r#"{"SrcIPs":["100.64.0.1"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}"#;
        let all = r#""DstPorts":[{"IP":"*","Ports":{"First":1,"Last":2}}]"#;
        for (filter, rules, problems) in [
            (format!("[null,{keep}]"), 2, 0),
            (format!(r#"[{{"SrcIPs":[null,"100.64.0.1"],{all}}}]"#), 1, 1),
            (
                format!(r#"[{{"SrcIPs":["\ud800","\udc00x","\ud800\u0041"],{all}}},{keep}]"#),
                2,
                3,
            ),
            (
                format!(r#"[{{"SrcIPs":["*"],"IPProto":[null,17],{all}}},{keep}]"#),
                2,
                0,
            ),
            (
                format!(r#"[{{"SrcIPs":["*"],"DstPorts":[null,{{"IP":null}}]}},{keep}]"#),
                2,
                2,
            ),
            (
                format!(
                    r#"[{{"SrcIPs":["*"],"CapGrant":[null,{{"Dsts":[null],"Caps":[null]}}]}},{keep}]"#
                ),
                2,
                1,
            ),
        ] {
            let parsed =
                ParsedRules::from_json(&filter).unwrap_or_else(|e| panic!("{filter}: {e:?}"));
            assert_eq!(parsed.len(), rules, "{filter}");
            assert_eq!(
                parsed.problems().len(),
                problems,
                "{filter}: {:?}",
                parsed.problems()
            );
        }
        // A `null` protocol is protocol 0; a `null` port or address leaves what was there.
        let parsed = ParsedRules::from_json(
            r#"[{"SrcIPs":["*"],"IPProto":[null,17],"DstPorts":[{"IP":"10.0.0.1","IP":null,"Ports":{"First":3,"First":null,"Last":5}}]}]"#,
        )
        .unwrap();
        assert_eq!(parsed.rules[0].protos, [0, 17]);
        let dst = parsed.rules[0].dsts[0];
        assert_eq!((dst.net, dst.first, dst.last), (net("10.0.0.1/32"), 3, 5));
        // A whole pair stays one character; an escaped backslash before `u` is no escape.
        assert_eq!(lone_surrogates_replaced(r#"["\ud83d\ude00"]"#), None);
        assert_eq!(lone_surrogates_replaced(r#"["\\ud800"]"#), None);
        assert_eq!(
            lone_surrogates_replaced(r#"["a\udc00b","\ud800\ud800\udc00"]"#).as_deref(),
            Some(r#"["a\ufffdb","\ufffd\ud800\udc00"]"#)
        );
        // Still refused: JSON that is not a filter.
        assert!(ParsedRules::from_json(r#"[{"SrcIPs":"\ud800"}]"#).is_err());
    }

    #[test]
    fn cap_grants() {
        let rules = ParsedRules::from_json(
            r#"[{"SrcIPs":["100.64.0.1"],"CapGrant":[{"Dsts":["100.64.0.2/32","100.64.0.3/24",""],
                "Caps":["legacy"],"CapMap":{"example.com/cap/a":[{"x":1}],"example.com/cap/b":null}}]}]"#,
        )
        .unwrap();
        let rule = &rules.rules[0];
        // Two good destinations, three capabilities each; host bits in CapGrant.Dsts are
        // ignored (netip.Prefix keeps them, Contains masks them).
        assert_eq!(rule.caps.len(), 6);
        assert_eq!(rule.caps[3].dst, net("100.64.0.0/24"));
        assert_eq!(rules.problems().len(), 1);
        assert_eq!(rules.problems()[0].field, "CapGrant[0].Dsts[2]");
        // A destination that is not a prefix fails Go's decoding of the whole document,
        // wherever it is: after a rule that aborts the conversion too.
        for bad in ["100.64.0.1", "fe80::1%eth0/64", "10.0.0.0/024", "bad"] {
            let filter = format!(
                r#"[{{"SrcIPs":["*"],"SrcBits":[1]}},{{"SrcIPs":["*"],"CapGrant":[{{"Dsts":["{bad}"],"Caps":["x"]}}]}}]"#
            );
            let err = ParsedRules::from_json(&filter).unwrap_err();
            assert!(
                err.to_string().contains("rule 1, CapGrant[0].Dsts[0]"),
                "{err}"
            );
        }
    }
}
