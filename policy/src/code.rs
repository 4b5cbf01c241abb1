//! Diagnostic codes: the closed list of what aclc can say about a policy, each with its stable
//! name (`aclc::undefined_tag`), its meaning and an example that triggers it, so the codes are
//! typed at every call site, documented once (`docs/diagnostics.md` is generated from this
//! list) and tested each (`policy/tests/codes.rs` runs every example).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What makes a code appear: a policy (checked against the documentation's example tailnet:
/// domain `example.com`, users `alice@example.com` and `bob@example.com`, no synced group
/// members, two nodes with IPv4 addresses), raw bytes, or something outside the policy crate
/// (described).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// Policy text.
    Policy(&'static str),
    /// Raw bytes (for encoding problems).
    Bytes(&'static [u8]),
    /// Emitted by another part of aclc (the test runner, the CLI); how to see it.
    Described(&'static str),
}

/// The documentation of one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeDoc {
    /// What the code means, and what to do about it.
    pub meaning: &'static str,
    /// How to make aclc say it.
    pub example: Example,
}

macro_rules! codes {
    ($( $variant:ident = $name:literal, $meaning:literal, $example:expr; )*) => {
        /// A diagnostic's stable code. Its text form (`aclc::<name>`, [`Code::as_str`]) is
        /// what JSON output and `serde` use; new codes may be added in any release.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $(
                #[doc = $meaning]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable text form, `aclc::<name>`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!("aclc::", $name),)*
                }
            }

            /// Its documentation.
            pub fn doc(self) -> CodeDoc {
                match self {
                    $(Code::$variant => CodeDoc { meaning: $meaning, example: $example },)*
                }
            }
        }
    };
}

use Example::{Bytes, Described, Policy};

codes! {
    // --- Reading the text.
    Syntax = "syntax",
        "The text is not HuJSON (JSON with comments and trailing commas); the message gives Tailscale's wording.",
        Policy(r#"{"acls": [}"#);
    DuplicateKey = "duplicate_key",
        "A key appears twice in one object. Tailscale once kept the last one silently (tailscale/tailscale#2807, 2021, since closed); its present behaviour is not captured, and JSON decoders of its kind refuse repeated names. aclc refuses it: which copy counts would change what the policy allows.",
        Policy(r#"{"groups": {}, "groups": {}}"#);
    TooDeep = "too_deep",
        "Arrays and objects nest deeper than the limit (128).",
        Described("a policy nesting arrays 200 deep: [[[[...]]]]");
    TooLarge = "too_large",
        "The policy is larger than the size limit (16 MiB); the CLI refuses such input before reading it.",
        Described("a policy of 17 MiB (`aclc check` says so and exits 1)");
    ByteOrderMark = "byte_order_mark",
        "The file starts with a UTF-8 byte order mark, which Tailscale refuses.",
        Bytes(b"\xEF\xBB\xBF{}");
    InvalidUtf8 = "invalid_utf8",
        "The text is not UTF-8. Inside strings only, a warning: each bad byte is read as U+FFFD, as Tailscale's parser reads it (`aclc fmt` keeps the bytes, as `hujsonfmt` does). Elsewhere an error, in Tailscale's parser's words where they do not depend on the enclosing structure (`invalid UTF-8 in comment`).",
        Bytes(b"{\"groups\": {\"group:\xFF\": []}}");
    BidiControl = "bidi_control",
        "A bidirectional control character can make the text read differently from what it is (Trojan Source); remove it.",
        Policy("{\"groups\": {\"group:eng\u{202E}\": [\"alice@example.com\"]}, \"acls\": [{\"action\": \"accept\", \"src\": [\"group:eng\u{202E}\"], \"dst\": [\"*:*\"]}]}");
    InvisibleCharacter = "invisible_character",
        "A character that shows as nothing (a zero-width space, a soft hyphen, a Hangul filler ...) makes two different names look the same; remove it.",
        Policy("{\"groups\": {\"group:eng\u{200B}\": [\"alice@example.com\"]}, \"acls\": [{\"action\": \"accept\", \"src\": [\"group:eng\u{200B}\"], \"dst\": [\"*:*\"]}]}");
    Internal = "internal",
        "aclc failed where it should not have; the policy is refused to be safe. Please report it.",
        Described("never expected; emitted when a check cannot complete");

    // --- Shapes and types.
    UnknownKey = "unknown_key",
        "A key Tailscale does not know; the help suggests the closest known one.",
        Policy(r#"{"acl": []}"#);
    KeyCase = "key_case",
        "A known key written in another case; Tailscale accepts it, the documented spelling is clearer.",
        Policy(r#"{"Acls": []}"#);
    WrongType = "wrong_type",
        "A value of the wrong JSON type for its place.",
        Policy(r#"{"groups": {"group:eng": "alice@example.com"}}"#);
    LegacyField = "legacy_field",
        "A legacy spelling (`users`/`ports` in ACLs, `user`/`allow` in tests); accepted, the current one is preferred.",
        Policy(r#"{"acls": [{"action": "accept", "users": ["*"], "ports": ["*:*"]}]}"#);
    ConflictingFields = "conflicting_fields",
        "A field and its legacy spelling in the same entry.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "users": ["*"], "dst": ["*:*"]}]}"#);
    InvalidSetting = "invalid_setting",
        "A tailnet setting with a value Tailscale does not accept.",
        Policy(r#"{"OneCGNATRoute": "sometimes"}"#);

    // --- Selectors and references.
    EmptySelector = "empty_selector",
        "An empty string where a user, group, tag, host or address is expected.",
        Policy(r#"{"acls": [{"action": "accept", "src": [""], "dst": ["*:*"]}]}"#);
    UnknownAutogroup = "unknown_autogroup",
        "An autogroup Tailscale does not have.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["autogroup:members-only"], "dst": ["*:*"]}]}"#);
    InvalidUserDomain = "invalid_user_domain",
        "A `user:` selector other than `user:*@domain`.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["user:alice"], "dst": ["*:*"]}]}"#);
    UserPrefix = "user_prefix",
        "A single user written with the `user:` prefix (`user:alice@example.com`), as a Tailscale blog post does; the reference documents `user:` only as `user:*@domain`. aclc reads it as the user and cannot verify that Tailscale accepts it.",
        Policy(r#"{"grants": [{"src": ["user:alice@example.com"], "dst": ["*"], "ip": ["*"]}]}"#);
    UndefinedTag = "undefined_tag",
        "A tag that `tagOwners` does not define.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["tag:web"], "dst": ["*:*"]}]}"#);
    TagCase = "tag_case",
        "A tag written with capital letters; Tailscale ignores tag name case and reads every tag as lowercase, so `tag:Web` and `tag:web` are the same tag.",
        Policy(r#"{"tagOwners": {"tag:Web": []}, "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["*:*"]}]}"#);
    UndefinedGroup = "undefined_group",
        "A group that `groups` does not define (groups synced from the identity provider, `group:name@domain`, need no definition).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["*:*"]}]}"#);
    UndefinedHost = "undefined_host",
        "A name that is neither a host alias, an IP address nor a prefix.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["webserver:443"]}]}"#);
    UndefinedIpset = "undefined_ipset",
        "An IP set that `ipsets` does not define.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["ipset:prod:443"]}]}"#);
    UndefinedPosture = "undefined_posture",
        "A posture that `postures` does not define.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "srcPosture": ["posture:mac"]}]}"#);
    DomainNotAssociated = "domain_not_associated",
        "A `user:*@domain` or `localpart:*@domain` domain that is not the tailnet's.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["user:*@other.org"], "dst": ["*:*"]}]}"#);
    UnknownUser = "unknown_user",
        "A user who is not (yet) in the tailnet; Tailscale accepts it, the rule matches nothing until they join.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["carol@example.com"], "dst": ["*:*"]}]}"#);
    SyncedGroupWithoutMembers = "synced_group_without_members",
        "A group synced from the identity provider that no user of the inventory belongs to: it resolves to no one.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["group:eng@example.com"], "dst": ["*:*"]}]}"#);
    LegacyAutogroup = "legacy_autogroup",
        "`autogroup:members`, the legacy spelling of `autogroup:member`.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["autogroup:members"], "dst": ["*:*"]}]}"#);
    MixedMemberAutogroups = "mixed_member_autogroups",
        "`autogroup:member` and `autogroup:members` (its legacy spelling, the same devices) in one policy. Tailscale is said to refuse the mix, but real policies applied through its GitOps action hold both (an older template's `ssh` and `nodeAttrs` beside newer rules) and no capture decides it: accepted with this warning, which says aclc cannot verify it.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["autogroup:member", "autogroup:members"], "dst": ["*:*"]}]}"#);

    // --- Definitions.
    InvalidGroupName = "invalid_group_name",
        "A group name that does not start with `group:`.",
        Policy(r#"{"groups": {"eng": ["alice@example.com"]}}"#);
    InvalidGroupMember = "invalid_group_member",
        "A group member that is not a user.",
        Policy(r#"{"groups": {"group:eng": ["tag:web"]}}"#);
    BareGroupMember = "bare_group_member",
        "A group member that is not a login (no `@`): Tailscale names users `user@domain` (self-hosted servers `user@`); accepted, aclc cannot verify it.",
        Policy(r#"{"groups": {"group:eng": ["bob"]}}"#);
    RecursiveGroup = "recursive_group",
        "A group inside a group, which Tailscale does not allow.",
        Policy(r#"{"groups": {"group:a": ["group:b"], "group:b": ["alice@example.com"]}}"#);
    InvalidTagName = "invalid_tag_name",
        "A tag name Tailscale refuses (`tag:` then a letter, then letters, digits or dashes).",
        Policy(r#"{"tagOwners": {"tag:1web": []}}"#);
    InvalidTagOwner = "invalid_tag_owner",
        "A tag owner that cannot own tags (an address, a host, `*`).",
        Policy(r#"{"tagOwners": {"tag:web": ["*"]}}"#);
    InvalidHost = "invalid_host",
        "A host alias whose value is not an IP address or prefix.",
        Policy(r#"{"hosts": {"db": "10.0.0.300"}}"#);
    InvalidHostName = "invalid_host_name",
        "A host alias whose name holds an `@` or a `:`, which Tailscale refuses (an alias with either reads as a user or as an address with a port).",
        Policy(r#"{"hosts": {"db@corp": "10.0.0.1"}}"#);
    InvalidIpsetName = "invalid_ipset_name",
        "An IP set name that does not start with `ipset:`.",
        Policy(r#"{"ipsets": {"prod": ["10.0.0.0/8"]}}"#);
    InvalidIpsetEntry = "invalid_ipset_entry",
        "An IP set entry that is not an address, prefix, range, host, IP set or `autogroup:internet`.",
        Policy(r#"{"ipsets": {"ipset:prod": ["tag:web"]}, "tagOwners": {"tag:web": []}}"#);
    IpsetBareEntry = "ipset_bare_entry",
        "A bare entry in an IP set that also removes: Tailscale's documentation asks for `add` before every target unless the set only adds; read as `add`, accepted, aclc cannot verify it.",
        Policy(r#"{"ipsets": {"ipset:prod": ["10.0.0.0/8", "remove 10.1.0.0/16"]}}"#);
    RecursiveIpset = "recursive_ipset",
        "An IP set that includes itself, directly or through others.",
        Policy(r#"{"ipsets": {"ipset:a": ["ipset:b"], "ipset:b": ["ipset:a"]}}"#);
    InvalidPostureName = "invalid_posture_name",
        "A posture name that does not start with `posture:`.",
        Policy(r#"{"postures": {"mac": ["node:os == 'macos'"]}}"#);
    InvalidPosture = "invalid_posture",
        "A posture condition that cannot be read; the help says which part.",
        Policy(r#"{"postures": {"posture:mac": ["node:os === 'macos'"]}}"#);
    UnknownPostureAttribute = "unknown_posture_attribute",
        "A posture attribute or namespace aclc does not know; accepted, aclc cannot verify it.",
        Policy(r#"{"postures": {"posture:x": ["acme:score > 5"]}, "defaultSrcPosture": ["posture:x"]}"#);
    EmptyPosture = "empty_posture",
        "A posture with no conditions (`[]` or `null`): every device satisfies it, so a rule gated on it admits all its sources. Tailscale's handling of an empty posture is not known; aclc reads it as no condition and warns.",
        Policy(r#"{"postures": {"posture:mac": []}, "defaultSrcPosture": ["posture:mac"]}"#);
    InvalidAttrType = "invalid_attr_type",
        "An `attrConfig` type other than string, bool or number.",
        Policy(r#"{"attrConfig": {"custom:tier": {"type": "text"}}}"#);
    AttrConfigNotCustom = "attr_config_not_custom",
        "An `attrConfig` entry that is not a `custom:` attribute; accepted, aclc cannot verify it.",
        Policy(r#"{"attrConfig": {"tier": {"type": "string"}}}"#);
    InvalidBroadcastTarget = "invalid_broadcast_target",
        "An `attrConfig` `broadcastToPeers` entry that names no devices.",
        Policy(r#"{"attrConfig": {"custom:tier": {"broadcastToPeers": ["autogroup:internet"]}}}"#);
    UnverifiedServiceName = "unverified_service_name",
        "A Tailscale Service name that is not a DNS label after `svc:`; accepted, aclc cannot verify it.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["svc:Web_Server"], "ip": ["*"]}]}"#);
    InvalidApprover = "invalid_approver",
        "An `autoApprovers` entry that cannot approve (an address, a host, `*`).",
        Policy(r#"{"autoApprovers": {"routes": {"10.0.0.0/8": ["*"]}}}"#);
    ExitRouteInRoutes = "exit_route_in_routes",
        "`0.0.0.0/0` or `::/0` under `autoApprovers.routes`, which does not approve exit nodes (it approves every subnet route of its family); not reported when `autoApprovers.exitNode` approves exit nodes (the author knows where they are approved), or when all its approvers are app connector tags.",
        Policy(r#"{"autoApprovers": {"routes": {"0.0.0.0/0": ["alice@example.com"]}}}"#);
    InvalidPrefix = "invalid_prefix",
        "A route or pool that is not a prefix.",
        Policy(r#"{"autoApprovers": {"routes": {"10.0.0.0/33": ["alice@example.com"]}}}"#);

    // --- Rules.
    MissingAction = "missing_action",
        "An SSH rule without `action` (an ACL without one gets Tailscale's `invalid_action` text).",
        Policy(r#"{"ssh": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}]}"#);
    InvalidAction = "invalid_action",
        "An action other than `accept` (ACLs) or `accept`/`check` (SSH).",
        Policy(r#"{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}"#);
    MissingPort = "missing_port",
        "An ACL destination without `:port`.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["100.64.0.1"]}]}"#);
    InvalidPort = "invalid_port",
        "A port or port range Tailscale cannot read.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:80-70000"]}]}"#);
    InvalidProtocol = "invalid_protocol",
        "A protocol name or number Tailscale does not accept.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"], "proto": "quic"}]}"#);
    PortsOnPortlessProtocol = "ports_on_portless_protocol",
        "Ports on a protocol that has none (only tcp, udp and sctp have ports).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"], "proto": "icmp"}]}"#);
    GrantPortlessPorts = "grant_portless_ports",
        "Ports on a protocol that has none in a grant's `ip` (`icmp:22`, as Tailscale's Kubernetes multi-cluster ingress guide writes); Tailscale's `ip` parser reads it, and whether Tailscale refuses it later is not recorded. Accepted; only tcp, udp and sctp have ports.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["icmp:22"]}]}"#);
    ViaSelfUnrouted = "via_self_unrouted",
        "`autogroup:self` as a destination of a grant with `via`: a user's own devices are reached directly, never through a subnet router or exit node, so the grant gives that destination nothing (aclc compiles no rule for it; Tailscale's behaviour is not recorded).",
        Policy(r#"{"tagOwners": {"tag:router": []}, "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:22"], "via": ["tag:router"]}]}"#);
    InvalidSrc = "invalid_src",
        "A selector that cannot be a source (`autogroup:internet`, a Service ...).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}]}"#);
    SelfInSrc = "self_in_src",
        "`autogroup:self` as a source; it is a destination (the source user's own devices).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["autogroup:self"], "dst": ["*:*"]}]}"#);
    InvalidDst = "invalid_dst",
        "A selector that cannot be a destination (`autogroup:shared` ...).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:shared:*"]}]}"#);
    DangerAllInDst = "danger_all_in_dst",
        "`autogroup:danger-all` as a destination; use `*`.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:danger-all:*"]}]}"#);
    AllAddressesDst = "all_addresses_dst",
        "A grant destination of `0.0.0.0/0` or `::/0`; use `*` or `autogroup:internet`.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]}]}"#);
    SelfWithInvalidSrc = "self_with_invalid_src",
        "An `autogroup:self` destination with sources that are not sets of users.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["autogroup:self"], "ip": ["*"]}]}"#);
    EmptyGrant = "empty_grant",
        "A grant with neither `ip` nor `app`.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["*"]}]}"#);
    AppWithInternet = "app_with_internet",
        "An `app` grant to `autogroup:internet`.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}}]}"#);
    IpsetInternet = "ipset_internet",
        "An IP set holding `autogroup:internet` used where `autogroup:internet` itself is refused (a rule's source, an `app` grant's destination): accepted with its addresses, aclc cannot verify that Tailscale accepts it.",
        Policy(r#"{"ipsets": {"ipset:net": ["autogroup:internet"]}, "grants": [{"src": ["ipset:net"], "dst": ["*"], "ip": ["*"]}]}"#);
    AppWithRoleAutogroup = "app_with_role_autogroup",
        "An `app` grant to an administrative autogroup (`autogroup:admin` ...), which Tailscale's documentation says app grants cannot target.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["autogroup:admin"], "app": {"example.com/cap/x": [{}]}}]}"#);
    InvalidCapability = "invalid_capability",
        "A capability name that is not `domain/path`, or a `tailscale.com` capability policies may not grant.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/funnel": [{}]}}]}"#);
    GrantDstPort = "grant_dst_port",
        "A grant destination written with ports, `selector:*` or `selector:443` (as Tailscale's grant examples and Kubernetes multi-cluster ingress guide do); grants take ports from `ip`. Read as the bare selector, the ports left to `ip`; aclc cannot verify that Tailscale accepts it.",
        Policy(r#"{"tagOwners": {"tag:vpc": []}, "grants": [{"src": ["*"], "dst": ["tag:vpc:*"], "ip": ["*"]}]}"#);
    ViaNotTag = "via_not_tag",
        "A grant `via` entry that is not a tag.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["alice@example.com"]}]}"#);
    ViaWildcard = "via_wildcard",
        "`\"via\": [\"*\"]` in a grant: Tailscale's announcement of via says it equals omitting via (any router); its reference now says only tags go in via. Read as no via; aclc cannot verify that Tailscale accepts it.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["*"]}]}"#);
    NeverMatches = "never_matches",
        "A rule with no sources, no destinations, or only empty groups: it never matches.",
        Policy(r#"{"acls": [{"action": "accept", "src": [], "dst": ["*:*"]}]}"#);
    Ipv4Mapped = "ipv4_mapped",
        "An IPv4-mapped IPv6 address or prefix (`::ffff:192.168.10.20`): Tailscale, like Go's `netip`, reads it as IPv6, so it matches no IPv4 address, and an IP set's `remove` of it removes nothing. The help names the IPv4 form.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["::ffff:100.64.0.1"], "dst": ["*:22"]}]}"#);
    UnspecifiedAddress = "unspecified_address",
        "A rule naming `0.0.0.0` or `::`: one address no device has, not every address (`*` is every address). An old Tailscale parser refused it (`to allow all IP addresses, use *:port, not 0.0.0.0:port`); whether the control server still does is not known, so aclc accepts it with a warning.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["0.0.0.0:80"]}]}"#);
    AllowsNoTraffic = "allows_no_traffic",
        "`acls` or `grants` is present but empty, and the policy has no other rule (`\"grants\": []`): no device can reach another. Tailscale's allow-all default applies only when both sections are absent; its own policy template once offered `\"grants\": []` as \"unrestricted\" and cut a tailnet off (tailscale/tailscale#19595). Accepted: the policy means exactly that.",
        Policy(r#"{"grants": []}"#);

    // --- SSH.
    SshInvalidSrc = "ssh_invalid_src",
        "An SSH source that is not a user, group, tag or user autogroup.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["*"], "dst": ["autogroup:self"], "users": ["root"]}]}"#);
    SshInvalidDst = "ssh_invalid_dst",
        "An SSH destination that is not a tag, `autogroup:self`, `autogroup:member` or `autogroup:tagged`.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["100.64.0.1"], "users": ["root"]}]}"#);
    SshTagToUserDevices = "ssh_tag_to_user_devices",
        "Tagged sources reaching user-owned devices over SSH, which Tailscale refuses.",
        Policy(r#"{"tagOwners": {"tag:ci": []}, "ssh": [{"action": "accept", "src": ["tag:ci"], "dst": ["autogroup:member"], "users": ["root"]}]}"#);
    SshUserDst = "ssh_user_dst",
        "A user as SSH destination with sources other than that user alone.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["alice@example.com"], "users": ["root"]}]}"#);
    MissingUsers = "missing_users",
        "An SSH rule without `users`.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"]}]}"#);
    InvalidSshUser = "invalid_ssh_user",
        "An SSH `users` entry Tailscale refuses (`*`, the empty string ...).",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["*"]}]}"#);
    EmptyAcceptEnv = "empty_accept_env",
        "An empty `acceptEnv` pattern.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "acceptEnv": [""]}]}"#);
    InvalidCheckPeriod = "invalid_check_period",
        "A `checkPeriod` that is not a duration from 0s to 168h, or `always`.",
        Policy(r#"{"ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "200h"}]}"#);
    CheckPeriodWithoutCheck = "check_period_without_check",
        "`checkPeriod` on an accept rule, where it has no effect.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "1h"}]}"#);
    CheckWithTags = "check_with_tags",
        "A check rule from tagged sources, which Tailscale refuses: a tag cannot re-authenticate.",
        Policy(r#"{"tagOwners": {"tag:ci": [], "tag:web": []}, "ssh": [{"action": "check", "src": ["tag:ci"], "dst": ["tag:web"], "users": ["root"]}]}"#);
    InvalidRecorder = "invalid_recorder",
        "An SSH `recorder` entry that is not a tag.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "recorder": ["100.64.0.9"]}]}"#);
    EnforceRecorderWithoutRecorder = "enforce_recorder_without_recorder",
        "`enforceRecorder` on a rule with no `recorder` (absent or `[]`): nothing is recorded and nothing is enforced, as Tailscale's documentation says (\"If no recorder is specified, the session is not recorded\"); the sessions are admitted unrecorded.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"], "enforceRecorder": true}]}"#);

    // --- Node attributes.
    InvalidTarget = "invalid_target",
        "A `nodeAttrs` target that names no devices (`autogroup:self`, `autogroup:internet` ...).",
        Policy(r#"{"nodeAttrs": [{"target": ["autogroup:self"], "attr": ["funnel"]}]}"#);
    NodeAttrGivesNothing = "node_attr_gives_nothing",
        "A `nodeAttrs` entry whose `attr`, `app` and `ipPool` are empty or missing: it gives its targets nothing (real policies applied through GitOps have one, with every attribute commented out); accepted.",
        Policy(r#"{"nodeAttrs": [{"target": ["*"]}]}"#);
    ReservedIpPool = "reserved_ip_pool",
        "An `ipPool` inside a range Tailscale reserves.",
        Policy(r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.100.100.0/24"]}]}"#);
    IpPoolContainsReserved = "ip_pool_contains_reserved",
        "An `ipPool` that contains a reserved range; accepted, though whether Tailscale accepts it is not known (it refuses a pool within one).",
        Policy(r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["100.64.0.0/10"]}]}"#);
    IpPoolOutsideCgnat = "ip_pool_outside_cgnat",
        "An `ipPool` outside the CGNAT range 100.64.0.0/10, or an IPv6 one: Tailscale assigns node addresses from the CGNAT range (its \"Choose your own IP\" announcement, the reserved-addresses page), and headscale refuses other pools. Accepted, as Tailscale's answer is not captured.",
        Policy(r#"{"nodeAttrs": [{"target": ["*"], "ipPool": ["10.0.0.0/8"]}]}"#);
    UndefinedRecorderTag = "undefined_recorder_tag",
        "A `tailscale.com/cap/kubernetes` `recorder` tag that `tagOwners` does not define (Tailscale's documentation says it must be); accepted, aclc cannot verify it.",
        Policy(r#"{"tagOwners": {"tag:k8s": []}, "grants": [{"src": ["*"], "dst": ["tag:k8s"], "app": {"tailscale.com/cap/kubernetes": [{"recorder": ["tag:rec"]}]}}]}"#);
    KubernetesRecordersKey = "kubernetes_recorders_key",
        "A `tailscale.com/cap/kubernetes` value names its session recorders under `recorders`: the Kubernetes operator reads `recorder` (`kube/kubetypes.KubernetesCapRule`, `json:\"recorder\"`; one page of Tailscale's documentation writes the plural), so those sessions would not be recorded. Accepted (the value is passed on as written); rename the key.",
        Policy(r#"{"tagOwners": {"tag:k8s": [], "tag:rec": []}, "grants": [{"src": ["*"], "dst": ["tag:k8s"], "app": {"tailscale.com/cap/kubernetes": [{"recorders": ["tag:rec"]}]}}]}"#);
    PostureCountryCase = "posture_country_case",
        "An `ip:country` condition naming a country code in lower case (`'us'`): country codes are ISO 3166 codes in upper case (kb/1288 writes `ip:country IN ['CA', 'US']`) and values are compared as written, so the code equals no device's country (`==` and `IN` then admit no device, `!=` and `NOT IN` every one).",
        Policy(r#"{"postures": {"posture:us": ["ip:country == 'us'"]}, "defaultSrcPosture": ["posture:us"]}"#);
    PostureOsCase = "posture_os_case",
        "A `node:os` condition naming an operating system in another case (`'macOS'`): the posture page lists the values in lower case (`macos`, `windows`, `linux`, `ios`, `android` ...) and values are compared as written, so it equals no device's `node:os`.",
        Policy(r#"{"postures": {"posture:mac": ["node:os == 'macOS'"]}, "defaultSrcPosture": ["posture:mac"]}"#);
    KubernetesRecorderCount = "kubernetes_recorder_count",
        "A `tailscale.com/cap/kubernetes` value naming more than one `recorder` tag: Tailscale's documentation allows one recorder tag per rule (kb/1537); accepted (passed on as written), aclc cannot verify it.",
        Policy(r#"{"tagOwners": {"tag:k8s": [], "tag:rec": [], "tag:rec2": []}, "grants": [{"src": ["*"], "dst": ["tag:k8s"], "app": {"tailscale.com/cap/kubernetes": [{"recorder": ["tag:rec", "tag:rec2"]}]}}]}"#);
    UnverifiedCapability = "unverified_capability",
        "A `tailscale.com` capability aclc does not know in a grant's `app`; accepted, aclc cannot verify it (Tailscale refuses the ones it does not grant, and adds grantable ones over time).",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/future-thing": [{}]}}]}"#);
    DisableIpv4WithIpv4Nodes = "disable_ipv4_with_ipv4_nodes",
        "`disableIPv4: true` checked against a tailnet whose nodes have IPv4 addresses. Tailscale assigns no IPv4 address under it, so a control server's inventory of such a tailnet holds IPv6 addresses only; aclc compiles the addresses it is given and does not take the IPv4 ones away.",
        Policy(r#"{"disableIPv4": true, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#);
    UnverifiedNodeAttr = "unverified_node_attr",
        "A `tailscale.com/...` node attribute aclc does not know; accepted, aclc cannot verify it.",
        Policy(r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/future-thing": [{}]}}]}"#);
    UnverifiedProtocolName = "unverified_protocol_name",
        "A protocol name Tailscale's newer parser knows (`icmpv4`, `icmpv6`, `dccp`) but its older one, which the captured messages come from, does not; accepted, aclc cannot verify it.",
        Policy(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["icmpv6:*"]}]}"#);
    UnverifiedRepeatedSshSource = "unverified_repeated_ssh_source",
        "An SSH rule whose destination is a user and whose `src` names that user more than once and nothing else: accepted as the rule with one source (the same devices), aclc cannot verify that Tailscale's check (the source must be exactly that user) accepts the repetition.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["alice@example.com", "alice@example.com"], "dst": ["alice@example.com"], "users": ["root"]}]}"#);
    UnverifiedSshUser = "unverified_ssh_user",
        "An SSH `users` entry that looks like a pattern but is none: `=` (the client's user map writes \"the same name\" so, but the policy language has no such entry) or an autogroup other than `autogroup:nonroot` (`autogroup:admin`). Accepted as a local account of that very name, as Tailscale reads other odd names (`group:foo`), aclc cannot verify that Tailscale accepts it; no host is likely to have such an account.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:admin"]}]}"#);
    UnverifiedBracketedHost = "unverified_bracketed_host",
        "An ACL destination in brackets that is not an IPv6 address (`[tag:web]:443`, `[10.0.0.1]:80`, a prefix `[fd7a::/48]:22`); accepted as the text inside the brackets, aclc cannot verify that Tailscale reads it so (its documentation brackets only IPv6 addresses).",
        Policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["[10.0.0.1]:80"]}]}"#);
    PrefixHostBits = "prefix_host_bits",
        "A prefix with bits set past its length (`10.2.3.4/8`) in a rule, `hosts`, an IP set or an `autoApprovers` route: read as its network (`10.0.0.0/8`), as Go's `netip.Prefix.Masked` would; aclc cannot verify that Tailscale reads it so (a typo for one address, `/32`, would widen the rule to the whole network). The client refuses such a prefix on the wire, so aclc never sends one.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["10.2.3.4/8"], "dst": ["*:*"]}]}"#);
    SshMemberDestination = "ssh_member_destination",
        "`autogroup:member` as an SSH destination. Tailscale's documentation lists tags, `autogroup:self` and the source user as SSH destinations, and says Tailscale never lets a user start an SSH session on another user's device (kb/1337, kb/1396). aclc admits each source only to its own user's devices, as `autogroup:self` does, so the rule never reaches further than Tailscale allows; it cannot verify whether Tailscale accepts the rule or refuses it. Write `autogroup:self`.",
        Policy(r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member"], "users": ["root"]}]}"#);
    UnverifiedIpRange = "unverified_ip_range",
        "An IP address range (`100.64.0.4-100.64.0.12`) outside an IP set: Tailscale's documentation (kb/1396) lists ranges as IP set entries only; accepted as the addresses it spans, aclc cannot verify that Tailscale accepts it here. Name the range in an IP set and use `ipset:name`.",
        Policy(r#"{"acls": [{"action": "accept", "src": ["100.64.0.4-100.64.0.12"], "dst": ["*:*"]}]}"#);
    UnverifiedTarget = "unverified_target",
        "A `nodeAttrs` target Tailscale's documentation does not list (kb/1337 and kb/1396 name tags, users, groups, autogroups and `*`): `autogroup:shared` (devices of other tailnets, which this tailnet's attributes never reach), a Tailscale Service (not a device) or an IP set; accepted, aclc cannot verify it.",
        Policy(r#"{"nodeAttrs": [{"target": ["autogroup:shared"], "attr": ["funnel"]}]}"#);
    PostureNeverHolds = "posture_never_holds",
        "A posture condition that orders (`<`, `<=`, `>`, `>=`) a string that is not a version (`node:os < 'macos'`): ordering compares numbers and versions (kb/1288), so the condition holds for no device and every rule gated by it admits nobody.",
        Policy(r#"{"postures": {"posture:x": ["node:os < 'macos'"]}, "defaultSrcPosture": ["posture:x"]}"#);
    UnverifiedSection = "unverified_section",
        "`extraDNSRecords`, a top-level section Tailscale's policy syntax reference does not list but its own policy combiner (`tailscale-dev/tailscale-acl-combiner`) carries: extra MagicDNS records, enabled per tailnet. Accepted and not compiled; aclc cannot verify that a tailnet accepts it.",
        Policy(r#"{"extraDNSRecords": [{"Name": "nas.example.ts.net", "Value": "100.64.0.10"}]}"#);
    ExternalTailnets = "external_tailnets",
        "`externalTailnets`, declarative node sharing (Tailscale's \"Declarative node sharing\" page, in alpha): the tailnets this one shares with, by alias, and what each may reference here. Accepted and checked for its fields; aclc does not know the other tailnets' users and devices, so nothing granted to them is compiled, and cannot verify that the tailnet is in the alpha.",
        Policy(r#"{"groups": {"group:eng": ["alice@example.com"]}, "externalTailnets": {"partner": {"externalID": "T2222CNTRL", "allowExternalReferencesTo": ["group:eng"]}}}"#);
    ExternalReference = "external_reference",
        "A group or tag of another tailnet, `group://alias/name` or `tag://alias/name` (declarative node sharing): aclc does not know that tailnet's devices, so the reference compiles to nothing here (fail closed); Tailscale applies it only when that tailnet allows the reference. When the alias is not in `externalTailnets`, the warning says so.",
        Policy(r#"{"externalTailnets": {"dev": {"externalID": "T1111CNTRL", "allowIncomingConnections": true}}, "tagOwners": {"tag:host": []}, "grants": [{"src": ["tag://dev/controller"], "dst": ["tag:host"], "ip": ["8120"]}]}"#);
    UppercaseDestination = "uppercase_destination",
        "An ACL destination whose selector prefix is not lower case (`TAG:WEB:80`, `Group:eng:22`): read in lower case (`tag:web:80`), as Tailscale's destination parser lower-cases the whole `host:ports` text (its copy in `tailcfg` does); aclc cannot verify that the control server still does. A source in another case is refused, with the lower-case form as help. A group or host named in mixed case (`group:Eng:22`) is read as written, and warned about when another definition has its lower-case name (the control server may read that one).",
        Policy(r#"{"tagOwners": {"tag:web": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["TAG:WEB:80"]}]}"#);
    UnknownDerpField = "unknown_derp_field",
        "A field of `derpMap` (its regions, nodes, home parameters) aclc does not know; accepted, aclc cannot verify it (Tailscale's DERP map gains fields over time).",
        Policy(r#"{"derpMap": {"Regions": {"900": {"RegionID": 900, "Weight": 2}}}}"#);
    UnknownAppConnectorField = "unknown_app_connector_field",
        "A field of an app connector aclc does not know; accepted, aclc cannot verify it.",
        Policy(r#"{"tagOwners": {"tag:c": []}, "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [{"name": "x", "connectors": ["tag:c"], "domains": ["example.com"], "domain": ["x.com"]}]}}]}"#);
    AppConnectorIncomplete = "app_connector_incomplete",
        "An app connector without a name, connectors, or any domain or route.",
        Policy(r#"{"nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [{"name": "x"}]}}]}"#);
    InvalidAppDomain = "invalid_app_domain",
        "An app connector domain that no traffic can match (a URL, a misplaced wildcard ...).",
        Policy(r#"{"tagOwners": {"tag:c": []}, "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [{"name": "x", "connectors": ["tag:c"], "domains": ["https://example.com"]}]}}]}"#);
    InvalidAppRoute = "invalid_app_route",
        "An app connector route that is not a prefix; a connector ignores it.",
        Policy(r#"{"tagOwners": {"tag:c": []}, "nodeAttrs": [{"target": ["*"], "app": {"tailscale.com/app-connectors": [{"name": "x", "connectors": ["tag:c"], "routes": ["10.0.0.0/33"]}]}}]}"#);

    // --- Compiling (the compiler refuses what it cannot compute exactly).
    UnresolvedIpsetEntry = "unresolved_ipset_entry",
        "An IP set entry whose addresses cannot be known at compile time (an undefined set, host or group, or `*`); an empty stand-in would widen every `remove` it feeds, so the policy is refused.",
        Described("`aclc compile` on a policy that skipped validation, with `\"remove ipset:undefined\"`");
    CompileBudgetExceeded = "compile_budget_exceeded",
        "The policy needs more work or memory than the compile budget allows (address ranges in IP sets, rule entries, rule items: a grant's destinations times its `ip` entries, the entries of one node's packet filter); the message names the rule or definition, or the node.",
        Described("`aclc compile` on an IP set of 2^24 ranges or more");

    // --- Tests.
    SshTestDst = "ssh_test_dst",
        "An `sshTests` destination Tailscale refuses before running the test.",
        Policy(r#"{"sshTests": [{"src": "alice@example.com", "dst": ["autogroup:internet"], "accept": ["root"]}]}"#);
    SshTestSrc = "ssh_test_src",
        "An `sshTests` `src` Tailscale refuses: an autogroup (tailscale/tailscale#14102: Tailscale takes a user, group, tag or host there).",
        Policy(r#"{"tagOwners": {"tag:prod": []}, "ssh": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:prod"], "users": ["root"]}], "sshTests": [{"src": "autogroup:admin", "dst": ["tag:prod"], "accept": ["root"]}]}"#);
    TestsFailed = "tests_failed",
        "Some of the policy's `tests` or `sshTests` fail (Tailscale's `test(s) failed`); the policy is refused.",
        Described("`aclc check --inventory`, `compile` or `test` on a policy whose tests fail");
    TestFailed = "test_failed",
        "One failing assertion of the policy's tests, with the reason.",
        Described("follows `aclc::tests_failed`, one per failing assertion");
    TestVacuous = "test_vacuous",
        "An assertion that passes but proves less than it seems: a `deny` from a source with no devices in the inventory, a `deny` that holds only because some addresses of the source do not get through while others do (a group one of whose members has the access), or only some devices of the destination are reached, or a destination without a port.",
        Described("`aclc check --inventory` on a test whose `src` user has no devices, or whose `src` group has a member the `deny` does not hold for");

    // --- Unused definitions.
    UnusedGroup = "unused_group",
        "A group no rule refers to.",
        Policy(r#"{"groups": {"group:eng": ["alice@example.com"]}}"#);
    UnusedTag = "unused_tag",
        "A tag no rule refers to (it can still be applied to devices); not reported when a rule's sources or destinations are every device (`*`, `autogroup:tagged`).",
        Policy(r#"{"tagOwners": {"tag:web": []}}"#);
    UnusedHost = "unused_host",
        "A host alias no rule refers to.",
        Policy(r#"{"hosts": {"db": "10.0.0.5"}}"#);
    UnusedIpset = "unused_ipset",
        "An IP set no rule refers to.",
        Policy(r#"{"ipsets": {"ipset:prod": ["10.0.0.0/8"]}}"#);
    UnusedPosture = "unused_posture",
        "A posture no rule refers to.",
        Policy(r#"{"postures": {"posture:mac": ["node:os == 'macos'"]}}"#);
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    /// The code whose text form is `s` (`aclc::undefined_tag`).
    fn from_str(s: &str) -> Result<Code, UnknownCode> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

/// A text that names no code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode(pub String);

impl std::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown diagnostic code {:?}", self.0)
    }
}

impl std::error::Error for UnknownCode {}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Code> for &str {
    fn eq(&self, other: &Code) -> bool {
        *self == other.as_str()
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
