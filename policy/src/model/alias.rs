//! Selectors ("aliases"): the strings that name devices in `src`, `dst`, `target`, owners and
//! approvers, parsed into one enum so later stages match on kinds instead of string prefixes.

use crate::source::Span;
use std::net::IpAddr;

/// A selector as written, what it means, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Selector {
    /// What it selects.
    pub alias: Alias,
    /// The text as written, surrounding whitespace trimmed (wire output may need it verbatim,
    /// e.g. prefixes are "kept as written").
    pub text: String,
    /// The selector text (inside the quotes when that can be pointed at exactly).
    #[serde(serialize_with = "super::serialize_span")]
    pub span: Span,
}

/// The kinds of selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Alias {
    /// `*`.
    Wildcard,
    /// A user login such as `alice@example.com` (as written).
    User(String),
    /// `user:*@domain`: every user whose login is in the domain.
    UserDomain(String),
    /// `group:name` (full text, prefix included).
    Group(String),
    /// `tag:name` (full text, prefix included).
    Tag(String),
    /// `autogroup:...`.
    Autogroup(Autogroup),
    /// A host alias name (from `hosts`); `host:name` is stored as `name`.
    Host(String),
    /// A single IP address.
    Ip(IpAddr),
    /// A CIDR prefix; host bits are kept as written.
    Prefix(#[serde(serialize_with = "super::serialize_display")] ipnet::IpNet),
    /// An address range `first-last`, both ends included.
    Range(IpAddr, IpAddr),
    /// `ipset:name` (full text).
    IpSet(String),
    /// `svc:name` (full text): a Tailscale Service.
    Service(String),
}

/// The autogroups Tailscale knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Autogroup {
    /// `autogroup:internet`: the public internet through exit nodes (dst only).
    Internet,
    /// `autogroup:self`: the source user's own devices (dst only).
    SelfDevices,
    /// `autogroup:member`: devices of direct members of the tailnet.
    Member,
    /// `autogroup:members`: legacy spelling of `member`.
    Members,
    /// `autogroup:tagged`: every tagged device.
    Tagged,
    /// `autogroup:danger-all`: every address, inside the tailnet or not (src only).
    DangerAll,
    /// `autogroup:shared`: users who accepted a device share (src only).
    Shared,
    /// `autogroup:nonroot`: SSH `users` only, any local user but root.
    Nonroot,
    /// `autogroup:admin`.
    Admin,
    /// `autogroup:owner`.
    Owner,
    /// `autogroup:network-admin`.
    NetworkAdmin,
    /// `autogroup:it-admin`.
    ItAdmin,
    /// `autogroup:billing-admin`.
    BillingAdmin,
    /// `autogroup:auditor`.
    Auditor,
}

impl Autogroup {
    /// Every autogroup, in the order of the docs.
    pub const ALL: [Autogroup; 14] = [
        Autogroup::Internet,
        Autogroup::SelfDevices,
        Autogroup::Member,
        Autogroup::Members,
        Autogroup::Tagged,
        Autogroup::DangerAll,
        Autogroup::Shared,
        Autogroup::Nonroot,
        Autogroup::Admin,
        Autogroup::Owner,
        Autogroup::NetworkAdmin,
        Autogroup::ItAdmin,
        Autogroup::BillingAdmin,
        Autogroup::Auditor,
    ];

    /// The full selector text, `autogroup:...`.
    pub fn as_str(self) -> &'static str {
        match self {
            Autogroup::Internet => "autogroup:internet",
            Autogroup::SelfDevices => "autogroup:self",
            Autogroup::Member => "autogroup:member",
            Autogroup::Members => "autogroup:members",
            Autogroup::Tagged => "autogroup:tagged",
            Autogroup::DangerAll => "autogroup:danger-all",
            Autogroup::Shared => "autogroup:shared",
            Autogroup::Nonroot => "autogroup:nonroot",
            Autogroup::Admin => "autogroup:admin",
            Autogroup::Owner => "autogroup:owner",
            Autogroup::NetworkAdmin => "autogroup:network-admin",
            Autogroup::ItAdmin => "autogroup:it-admin",
            Autogroup::BillingAdmin => "autogroup:billing-admin",
            Autogroup::Auditor => "autogroup:auditor",
        }
    }

    /// The autogroup named by `text` (the full `autogroup:...` form).
    pub fn from_name(text: &str) -> Option<Autogroup> {
        Autogroup::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// True for the role autogroups (admin, owner, network-admin, it-admin, billing-admin,
    /// auditor): the devices of users holding that role.
    pub fn is_role(self) -> bool {
        matches!(
            self,
            Autogroup::Admin
                | Autogroup::Owner
                | Autogroup::NetworkAdmin
                | Autogroup::ItAdmin
                | Autogroup::BillingAdmin
                | Autogroup::Auditor
        )
    }

    /// True for autogroups that stand for a set of users (member, members, shared, roles).
    pub fn is_user_set(self) -> bool {
        matches!(
            self,
            Autogroup::Member | Autogroup::Members | Autogroup::Shared
        ) || self.is_role()
    }
}

impl std::fmt::Display for Autogroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a selector could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasError {
    /// The empty string.
    Empty,
    /// `autogroup:` followed by a name Tailscale does not know.
    UnknownAutogroup(String),
    /// A `user:` form other than `user:*@domain`, or with an empty domain.
    BadUserDomain(String),
}

/// A login after `user:`: `name@domain` with both parts present and no wildcard.
fn is_prefixed_login(rest: &str) -> bool {
    rest.split_once('@')
        .is_some_and(|(name, domain)| !name.is_empty() && !domain.is_empty() && !rest.contains('*'))
}

/// True for a group synced from the identity provider by SCIM, `group:<name>@<domain>`
/// (Tailscale KB "User & group provisioning", kb/1290 and kb/1249): the identity provider
/// defines it, so it needs no entry in `groups`.
pub fn is_synced_group(group: &str) -> bool {
    group
        .strip_prefix("group:")
        .is_some_and(|name| name.contains('@'))
}

/// Email domains anyone can have an address at, which Tailscale refuses in `user:*@domain`
/// and `localpart:*@domain` ("must not be a known shared domain (such as `gmail.com`)"). Kept
/// to the consumer domains of the identity providers Tailscale signs in with (Google,
/// Microsoft, Apple) and the largest others; Tailscale's own list is not published, so a
/// domain missing here is checked against the tailnet's domains as any other.
pub const SHARED_DOMAINS: &[&str] = &[
    "aol.com",
    "gmail.com",
    "googlemail.com",
    "hotmail.com",
    "icloud.com",
    "live.com",
    "mac.com",
    "me.com",
    "msn.com",
    "outlook.com",
    "yahoo.com",
];

/// True for a known shared email domain ([`SHARED_DOMAINS`]), in any letter case.
pub fn is_shared_email_domain(domain: &str) -> bool {
    SHARED_DOMAINS.contains(&domain.to_ascii_lowercase().as_str())
}

/// A tag name as Tailscale reads it: "Tailscale ignores tag name case and parses all tags in
/// the tailnet policy file as lowercase" (Tailscale docs "Group devices with tags", kb/1068).
/// Only the name after `tag:` is lowered (ASCII letters; a non-ASCII name stays as it is, for
/// the tag name check to refuse).
pub fn canonical_tag(text: &str) -> std::borrow::Cow<'_, str> {
    match text.strip_prefix("tag:") {
        Some(name) if name.bytes().any(|b| b.is_ascii_uppercase()) => {
            std::borrow::Cow::Owned(format!("tag:{}", name.to_ascii_lowercase()))
        }
        _ => std::borrow::Cow::Borrowed(text),
    }
}

impl Alias {
    /// Read a selector (already trimmed). A tag is read in lowercase, as Tailscale does
    /// ([`canonical_tag`]). Anything that is not another kind of selector is a
    /// host alias name; whether that host exists is for validation to say.
    pub fn parse(text: &str) -> Result<Alias, AliasError> {
        if text.is_empty() {
            return Err(AliasError::Empty);
        }
        if text == "*" {
            return Ok(Alias::Wildcard);
        }
        if text.starts_with("autogroup:") {
            return Autogroup::from_name(text)
                .map(Alias::Autogroup)
                .ok_or_else(|| AliasError::UnknownAutogroup(text.to_string()));
        }
        if text.starts_with("group:") {
            // "Tailscale treats synced group names as lowercase" (docs, "ACL policy examples",
            // synced groups): `group:Legal@example.com` is `group:legal@example.com`.
            if is_synced_group(text) {
                return Ok(Alias::Group(text.to_lowercase()));
            }
            return Ok(Alias::Group(text.to_string()));
        }
        if text.starts_with("tag:") {
            return Ok(Alias::Tag(canonical_tag(text).into_owned()));
        }
        if text.starts_with("ipset:") {
            return Ok(Alias::IpSet(text.to_string()));
        }
        if text.starts_with("svc:") {
            return Ok(Alias::Service(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("user:") {
            return match rest.strip_prefix("*@") {
                Some(domain) if !domain.is_empty() => Ok(Alias::UserDomain(domain.to_string())),
                // `user:alice@example.com`: one user, written with the `user:` prefix
                // (Tailscale's app capabilities announcement uses it in a grant's `src`; the
                // reference only documents `user:*@domain`). Read as the user; lowering warns
                // that aclc cannot verify Tailscale accepts the prefix.
                None if is_prefixed_login(rest) => Ok(Alias::User(rest.to_string())),
                _ => Err(AliasError::BadUserDomain(text.to_string())),
            };
        }
        if let Some(name) = text.strip_prefix("host:") {
            return Ok(Alias::Host(name.to_string()));
        }
        if text.contains('@') {
            return Ok(Alias::User(text.to_string()));
        }
        if let Some(addr) = parse_ip(text) {
            return Ok(Alias::Ip(addr));
        }
        if let Some(net) = parse_prefix(text) {
            return Ok(Alias::Prefix(net));
        }
        if let Some((a, b)) = text.split_once('-') {
            if let (Some(first), Some(last)) = (parse_ip(a), parse_ip(b)) {
                if first.is_ipv4() == last.is_ipv4() && first <= last {
                    return Ok(Alias::Range(first, last));
                }
            }
        }
        Ok(Alias::Host(text.to_string()))
    }

    /// True for the aliases that only name addresses (IP, prefix, range).
    pub fn is_address(&self) -> bool {
        matches!(self, Alias::Ip(_) | Alias::Prefix(_) | Alias::Range(..))
    }

    /// The autogroup, if this is one.
    pub fn autogroup(&self) -> Option<Autogroup> {
        match self {
            Alias::Autogroup(a) => Some(*a),
            _ => None,
        }
    }
}

/// An IP address, IPv6 possibly in brackets. Zone suffixes are refused.
/// The warning for a prefix with bits set past its length (`10.2.3.4/8`), which aclc reads
/// as its network (`10.0.0.0/8`, as Go's `netip.Prefix.Masked` would): the message and the
/// help; `None` for a prefix written as its network. A typo for one address (`/32`) would
/// otherwise widen a rule to the whole network without a word.
/// An IPv4-mapped IPv6 address or prefix (`::ffff:192.168.10.20`, `::ffff:10.0.0.0/104`):
/// Go's `netip`, and so Tailscale, keeps it IPv6, so it matches no IPv4 address (and an IP
/// set's `remove` of it removes nothing). The message and help naming the IPv4 form, or
/// `None`.
pub(crate) fn mapped_v4_warning(addr: IpAddr, len: u8) -> Option<(String, String)> {
    let IpAddr::V6(v6) = addr else { return None };
    let v4 = v6.to_ipv4_mapped()?;
    let (written, four) = match len {
        128 => (v6.to_string(), v4.to_string()),
        96..=127 => (format!("{v6}/{len}"), format!("{v4}/{}", len - 96)),
        _ => return None,
    };
    Some((
        format!("{written} is an IPv4-mapped IPv6 address: Tailscale reads it as IPv6, so it matches no IPv4 address"),
        format!("write {four} for the IPv4 address"),
    ))
}

pub(crate) fn host_bits_warning(net: &ipnet::IpNet) -> Option<(String, String)> {
    if net.trunc() == *net {
        return None;
    }
    let one = match net.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    Some((
        format!(
            "{net} has bits set past its length: read as {}, the whole network; aclc cannot verify that Tailscale reads it so",
            net.trunc()
        ),
        format!(
            "write {} for the network, or {}/{one} for the one address",
            net.trunc(),
            net.addr()
        ),
    ))
}

/// `text` in lower case when its prefix names a kind of selector in another case
/// (`GROUP:eng`, `Tag:web`); `None` otherwise (a mixed-case name after a lower-case prefix
/// is matched as written).
pub(crate) fn cased_selector(text: &str) -> Option<String> {
    let (prefix, _) = text.split_once(':')?;
    let known = ["tag", "group", "autogroup", "ipset", "svc", "user"];
    (prefix.bytes().any(|b| b.is_ascii_uppercase())
        && known.iter().any(|k| prefix.eq_ignore_ascii_case(k)))
    .then(|| text.to_ascii_lowercase())
}

/// An `address/length` prefix as Go's `netip.ParsePrefix` (Tailscale's parser) reads it:
/// the length in decimal digits without a leading zero. `ipnet` also takes `/00`, `/08` and
/// `/048`, which Go refuses; read that way, `0.0.0.0/00` was every address.
pub fn parse_prefix(text: &str) -> Option<ipnet::IpNet> {
    let (_, bits) = text.rsplit_once('/')?;
    let digits = !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit());
    if !digits || (bits.len() > 1 && bits.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let addr: IpAddr = inner.parse().ok()?;
    if inner.len() != text.len() && addr.is_ipv4() {
        return None;
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn p(s: &str) -> Alias {
        Alias::parse(s).unwrap()
    }

    /// Prefix lengths are read as Go's `netip.ParsePrefix` reads them: `ipnet` took `/00`
    /// (every address) and `/08`, which Tailscale refuses.
    #[test]
    fn prefix_lengths_with_leading_zeros_are_not_prefixes() {
        for bad in [
            "0.0.0.0/00",
            "192.168.10.0/08",
            "fd7a:115c:a1e0::/048",
            "::/00",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "10.0.0.0/8 ",
        ] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
            assert_eq!(p(bad), Alias::Host(bad.to_string()), "{bad}");
        }
        for good in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "::/0",
            "fd7a::/48",
        ] {
            assert_eq!(parse_prefix(good), good.parse().ok(), "{good}");
            assert!(matches!(p(good), Alias::Prefix(_)), "{good}");
        }
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(p("*"), Alias::Wildcard);
        assert_eq!(
            p("alice@example.com"),
            Alias::User("alice@example.com".into())
        );
        assert_eq!(p("alice@github"), Alias::User("alice@github".into()));
        assert_eq!(
            p("user:*@example.com"),
            Alias::UserDomain("example.com".into())
        );
        assert_eq!(p("group:eng"), Alias::Group("group:eng".into()));
        assert_eq!(p("tag:server"), Alias::Tag("tag:server".into()));
        // Tailscale reads tag names in lowercase (KB "Group devices with tags").
        assert_eq!(p("tag:Web-Server"), Alias::Tag("tag:web-server".into()));
        assert_eq!(canonical_tag("tag:db"), "tag:db");
        assert_eq!(canonical_tag("tag:DB"), "tag:db");
        assert_eq!(canonical_tag("group:ENG"), "group:ENG");
        // Synced groups are read in lowercase (docs, "ACL policy examples"); groups defined
        // in the policy keep their case.
        assert_eq!(
            p("group:Finance Team@Example.com"),
            Alias::Group("group:finance team@example.com".into())
        );
        assert_eq!(p("group:Eng"), Alias::Group("group:Eng".into()));
        assert_eq!(
            p("autogroup:self"),
            Alias::Autogroup(Autogroup::SelfDevices)
        );
        assert_eq!(
            p("autogroup:danger-all"),
            Alias::Autogroup(Autogroup::DangerAll)
        );
        assert_eq!(p("webserver"), Alias::Host("webserver".into()));
        assert_eq!(p("host:webserver"), Alias::Host("webserver".into()));
        assert_eq!(p("100.64.0.1"), Alias::Ip("100.64.0.1".parse().unwrap()));
        assert_eq!(p("fd7a::1"), Alias::Ip("fd7a::1".parse().unwrap()));
        assert_eq!(p("[fd7a::1]"), Alias::Ip("fd7a::1".parse().unwrap()));
        assert_eq!(
            p("10.0.0.0/8"),
            Alias::Prefix("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            p("10.33.0.100/32"),
            Alias::Prefix("10.33.0.100/32".parse().unwrap())
        );
        assert_eq!(
            p("10.0.0.1-10.0.0.9"),
            Alias::Range("10.0.0.1".parse().unwrap(), "10.0.0.9".parse().unwrap())
        );
        assert_eq!(p("ipset:office"), Alias::IpSet("ipset:office".into()));
        assert_eq!(p("svc:web"), Alias::Service("svc:web".into()));
    }

    #[test]
    fn odd_text_is_a_host_name() {
        assert_eq!(p("%bogus%"), Alias::Host("%bogus%".into()));
        assert_eq!(p("10.0.0.0/33"), Alias::Host("10.0.0.0/33".into()));
        assert_eq!(
            p("10.0.0.9-10.0.0.1"),
            Alias::Host("10.0.0.9-10.0.0.1".into())
        );
        assert_eq!(p("[10.0.0.1]"), Alias::Host("[10.0.0.1]".into()));
    }

    #[test]
    fn refuses_unknown_autogroups_and_bad_user_forms() {
        assert_eq!(
            Alias::parse("autogroup:everyone"),
            Err(AliasError::UnknownAutogroup("autogroup:everyone".into()))
        );
        assert!(matches!(
            Alias::parse("user:*@"),
            Err(AliasError::BadUserDomain(_))
        ));
        for bad in [
            "user:alice",
            "user:@example.com",
            "user:alice@",
            "user:a*b@example.com",
        ] {
            assert!(
                matches!(Alias::parse(bad), Err(AliasError::BadUserDomain(_))),
                "{bad}"
            );
        }
        // One user with the `user:` prefix is read as that user (lowering warns).
        assert_eq!(
            Alias::parse("user:alice@example.com"),
            Ok(Alias::User("alice@example.com".into()))
        );
        assert_eq!(Alias::parse(""), Err(AliasError::Empty));
    }

    #[test]
    fn autogroup_names_round_trip() {
        for a in Autogroup::ALL {
            assert_eq!(Autogroup::from_name(a.as_str()), Some(a));
        }
    }
}
