//! The node inventory: the tailnet's users, nodes, routes and settings that a policy is
//! compiled against, read from the corpus' JSON format and validated once on load.
//!
//! Format (the `topology` object of a conformance case plus its `tailnet`):
//!
//! ```json
//! {"users": [{"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["owner"]}],
//!  "nodes": [{"name": "bulbasaur", "user": "odin@example.com", "tags": [],
//!             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
//!             "routable_ips": [], "approved_routes": [],
//!             "posture": {"node:os": "linux", "node:tsVersion": "1.80.0"}}],
//!  "registration_order": ["bulbasaur"],
//!  "tailnet": {"name": "odin@example.com", "dns": {}, "settings": {}}}
//! ```
//!
//! Users and nodes refuse unknown fields (a misspelt `approved_routes` would silently change
//! what gets compiled); the top level and `tailnet` tolerate them, and `tailnet` keeps them so
//! an inventory round-trips.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A validated node inventory. Immutable once built: every constructor checks the invariants
/// listed on [`Inventory::from_json`], so code holding an `Inventory` can rely on them.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawInventory")]
pub struct Inventory {
    /// Shared between inventories that have the same users (an engine's events on nodes).
    users: Arc<[User]>,
    /// Shared between inventories that have the same node (an engine's events copy the
    /// changed nodes' records, not every node's).
    nodes: Vec<Arc<Node>>,
    registration_order: Registration,
    tailnet: Tailnet,
    services: Vec<Service>,
    index: Index,
}

/// The registration order: as listed, or every node in node order (an engine's inventory:
/// no list of every name made per event).
#[derive(Debug, Clone)]
pub(crate) enum Registration {
    /// Node names, oldest first (may omit nodes).
    Listed(Vec<String>),
    /// Every node, in node order.
    NodeOrder,
}

/// As read: `users`, `nodes`, `registration_order` (a list of names), `tailnet`, then
/// `services` when there are some.
impl Serialize for Inventory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let services = !self.services.is_empty();
        let mut out = serializer.serialize_struct("Inventory", 4 + usize::from(services))?;
        out.serialize_field("users", &self.users)?;
        out.serialize_field("nodes", &self.nodes)?;
        out.serialize_field("registration_order", &self.registration_order())?;
        out.serialize_field("tailnet", &self.tailnet)?;
        if services {
            out.serialize_field("services", &self.services)?;
        }
        out.end()
    }
}

/// A Tailscale Service (`svc:name`): virtual addresses served by the nodes that advertise it
/// and are approved to host it (Tailscale KB "Tailscale Services", kb/1552).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `svc:name`.
    pub name: String,
    /// The service's IPv4 virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// The service's IPv6 virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Nodes (by name) that advertise the service.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Hosts an admin approved; `autoApprovers.services` approves others when compiling.
    #[serde(default)]
    pub approved_hosts: Vec<String>,
    /// The service's tags (`tag:name`): an `autoApprovers.services` entry keyed by one of them
    /// approves hosts for the service as an entry keyed by its name does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Service {
    /// The service's virtual addresses as host prefixes (`/32`, `/128`), IPv4 first.
    pub fn vips(&self) -> Vec<IpNet> {
        let v4 = self.ipv4.map(|a| IpNet::from(IpAddr::V4(a)));
        let v6 = self.ipv6.map(|a| IpNet::from(IpAddr::V6(a)));
        v4.into_iter().chain(v6).collect()
    }
}

/// Equal contents (the lookups are derived from them).
impl PartialEq for Inventory {
    fn eq(&self, other: &Inventory) -> bool {
        self.users == other.users
            && self.nodes == other.nodes
            && self.registration_order() == other.registration_order()
            && self.tailnet == other.tailnet
            && self.services == other.services
    }
}

/// Lookups built once on load.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Each node's position in `nodes` and in the registration order (`usize::MAX` when not
    /// listed), by name.
    node_by_name: names::NameIndex,
    /// Shared with the users.
    user_by_email: Arc<crate::hash::Map<String, usize>>,
    /// The registration order lists every node, in node order: a node's rank is its
    /// position.
    ranks_are_positions: bool,
}

/// A user of the tailnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Numeric user id.
    pub id: u64,
    /// Display or login name.
    pub name: String,
    /// Login email; nodes name their owner by it.
    pub email: String,
    /// Tailnet roles (needed for `autogroup:admin`, `autogroup:owner`, ...).
    pub roles: Vec<Role>,
    /// Groups synced from the identity provider (SCIM) the user belongs to, in their full
    /// form `group:eng@example.com` (the inventory may leave out the `group:` prefix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl User {
    /// True if the user holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A Tailscale user role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `owner`
    Owner,
    /// `admin`
    Admin,
    /// `network-admin`
    NetworkAdmin,
    /// `it-admin`
    ItAdmin,
    /// `billing-admin`
    BillingAdmin,
    /// `auditor`
    Auditor,
    /// `member`
    Member,
}

impl Role {
    /// Every role, in the order used in messages.
    pub const ALL: [Role; 7] = [
        Role::Owner,
        Role::Admin,
        Role::NetworkAdmin,
        Role::ItAdmin,
        Role::BillingAdmin,
        Role::Auditor,
        Role::Member,
    ];

    /// The role's name as written in the inventory (`network-admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::NetworkAdmin => "network-admin",
            Role::ItAdmin => "it-admin",
            Role::BillingAdmin => "billing-admin",
            Role::Auditor => "auditor",
            Role::Member => "member",
        }
    }

    fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A node (device) of the tailnet: either owned by a user or tagged, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The node's name, unique in the inventory.
    pub name: String,
    /// The OS hostname, only when it differs from `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Owner's email for a user-owned node; `None` for a tagged node.
    pub user: Option<String>,
    /// Tags (`tag:...`); empty for a user-owned node.
    pub tags: Vec<String>,
    /// Tailscale IPv4 address; `None` for a node of an IPv6-only pool (self-hosted control
    /// servers). A node has at least one address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// Tailscale IPv6 address; `None` for a node of an IPv4-only pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Routes the node advertises.
    pub routable_ips: Vec<IpNet>,
    /// Routes the control plane approved for the node.
    pub approved_routes: Vec<IpNet>,
    /// Device posture attributes (Tailscale KB "Device posture management", kb/1288):
    /// namespaced keys (`node:os`, `node:tsVersion`, `custom:tier`, `falcon:ztaScore`, ...)
    /// to a string, number or boolean, as the control plane holds them for the device. Optional
    /// (`"posture": {...}` on a node); rules with `srcPosture` or the policy's
    /// `defaultSrcPosture` only take as sources the devices whose attributes satisfy one of
    /// their postures, so a node without posture data passes no posture gate (except
    /// conditions that are all `NOT SET`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub posture: BTreeMap<String, serde_json::Value>,
}

impl Node {
    /// The OS hostname (the name when no separate hostname is recorded).
    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }

    /// True for a tagged node.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The node's own addresses, IPv4 first: the ones it has (one or two).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let v4 = self.ipv4.map(IpAddr::V4);
        let v6 = self.ipv6.map(IpAddr::V6);
        v4.into_iter().chain(v6).collect()
    }

    /// Approved routes the node also advertises: the routes it can actually serve. An approval
    /// for a route the node does not advertise takes effect only once it advertises it.
    pub fn served_routes(&self) -> impl Iterator<Item = &IpNet> + '_ {
        let advertised = crate::routes::RouteSet::new(&self.routable_ips);
        self.approved_routes
            .iter()
            .filter(move |r| advertised.contains(r))
    }
}

/// Tailnet-wide facts: its name, DNS configuration and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tailnet {
    /// The tailnet's name: the owner's email for a personal tailnet, else usually a domain.
    pub name: String,
    /// DNS configuration.
    pub dns: Dns,
    /// Tailnet settings.
    pub settings: Settings,
    /// Fields this version does not model, kept so the inventory round-trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Tailnet {
    /// The domain associated with the tailnet, lowercased: the domain of the name when the name
    /// is an email (`odin@example.com` -> `example.com`), the name itself when it looks like a
    /// domain, else `None`. A `*.ts.net` name is a DNS name, not a login domain, so `None`.
    pub fn domain(&self) -> Option<String> {
        let name = self.name.trim();
        let domain = match name.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => domain,
            Some(_) => return None,
            None => name,
        };
        let looks_like_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        let domain = domain.to_lowercase();
        (looks_like_domain && !domain.ends_with(".ts.net")).then_some(domain)
    }
}

/// The tailnet's DNS configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    /// MagicDNS on or off.
    pub magic_dns: bool,
    /// Global nameservers.
    pub nameservers: Vec<String>,
    /// Search domains.
    pub search_paths: Vec<String>,
    /// Split DNS: domain -> nameservers.
    pub split_dns: BTreeMap<String, Vec<String>>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Tailnet settings that show up in what nodes receive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Whether new devices update automatically (sent as `default-auto-update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices_auto_updates_on: Option<bool>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Why an inventory was refused (or, from [`Inventory::warnings`], what looks wrong in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    /// What kind of problem.
    pub kind: InventoryErrorKind,
    /// One line with the path of the offending value: `nodes[3].ipv4: invalid IP address "x"`.
    pub message: String,
    /// How many further problems were found after this one.
    more: usize,
}

impl InventoryError {
    fn new(kind: InventoryErrorKind, message: impl Into<String>) -> InventoryError {
        InventoryError {
            kind,
            message: message.into(),
            more: 0,
        }
    }

    /// How many further problems were found after this one.
    pub fn more(&self) -> usize {
        self.more
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.more > 0 {
            write!(f, " (+{} more)", self.more)?;
        }
        Ok(())
    }
}

impl std::error::Error for InventoryError {}

/// The kinds of [`InventoryError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InventoryErrorKind {
    /// Not JSON, or not the inventory's shape (wrong type, missing or unknown field).
    Syntax,
    /// A node address that does not parse or is of the wrong family.
    InvalidAddress,
    /// A route that is not a canonical `address/length` prefix.
    InvalidPrefix,
    /// A node tag that does not start with `tag:`, or a tag listed twice.
    InvalidTag,
    /// A role that Tailscale does not have.
    UnknownRole,
    /// A user's synced group that is not of the form `name@domain`.
    InvalidGroup,
    /// A service whose name is not `svc:name`, or listed twice.
    InvalidService,
    /// An empty node name.
    EmptyName,
    /// Two users with the same email or id.
    DuplicateUser,
    /// Two nodes with the same name.
    DuplicateNodeName,
    /// Two nodes with the same address.
    DuplicateAddress,
    /// A node with neither an IPv4 nor an IPv6 address.
    NoAddress,
    /// A node owned by an email that is not among the users.
    UnknownOwner,
    /// A node that is both user-owned and tagged, or neither.
    Ownership,
    /// `registration_order` names a node that is not in `nodes`.
    UnknownNode,
    /// `registration_order` names a node twice.
    DuplicateRegistration,
    /// A posture attribute without a namespace (`os` for `node:os`), or whose value is not a
    /// string, number or boolean.
    InvalidPosture,
    /// (Warning) an approved route the node does not advertise.
    ApprovedRouteNotAdvertised,
}

/// The inventory as written, before validation.
#[derive(Deserialize)]
struct RawInventory {
    users: Vec<RawUser>,
    nodes: Vec<RawNode>,
    #[serde(default)]
    registration_order: Vec<String>,
    #[serde(default)]
    tailnet: Tailnet,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: u64,
    name: String,
    email: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
    #[serde(default)]
    routable_ips: Vec<String>,
    #[serde(default)]
    approved_routes: Vec<String>,
    #[serde(default)]
    posture: BTreeMap<String, serde_json::Value>,
}

impl TryFrom<RawInventory> for Inventory {
    type Error = InventoryError;

    fn try_from(raw: RawInventory) -> Result<Inventory, InventoryError> {
        let mut errors = Vec::new();
        let users = raw
            .users
            .into_iter()
            .enumerate()
            .map(|(i, u)| convert_user(i, u, &mut errors))
            .collect();
        let nodes = raw
            .nodes
            .into_iter()
            .enumerate()
            .filter_map(|(i, n)| convert_node(i, n, &mut errors))
            .collect();
        if !errors.is_empty() {
            return Err(first_of(errors));
        }
        Inventory::new(users, nodes, raw.registration_order, raw.tailnet)?
            .with_services(raw.services)
    }
}

fn first_of(mut errors: Vec<InventoryError>) -> InventoryError {
    let more = errors.len().saturating_sub(1);
    let mut first = errors.swap_remove(0);
    first.more = more;
    first
}

fn convert_user(i: usize, raw: RawUser, errors: &mut Vec<InventoryError>) -> User {
    let roles = raw
        .roles
        .iter()
        .enumerate()
        .filter_map(|(j, name)| {
            let role = Role::from_name(name);
            if role.is_none() {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                errors.push(InventoryError::new(
                    InventoryErrorKind::UnknownRole,
                    format!(
                        "users[{i}].roles[{j}]: unknown role \"{name}\" (expected one of: {})",
                        known.join(", ")
                    ),
                ));
            }
            role
        })
        .collect();
    let groups = raw
        .groups
        .iter()
        .enumerate()
        .filter_map(|(j, name)| {
            // Synced group names are lowercase at Tailscale (docs, "ACL policy examples"),
            // as the policy reads them.
            let full = if name.starts_with("group:") {
                name.to_lowercase()
            } else {
                format!("group:{}", name.to_lowercase())
            };
            if aclc_policy::model::is_synced_group(&full) {
                Some(full)
            } else {
                errors.push(InventoryError::new(
                    InventoryErrorKind::InvalidGroup,
                    format!(
                        "users[{i}].groups[{j}]: \"{name}\" is not a synced group (expected name@domain)"
                    ),
                ));
                None
            }
        })
        .collect();
    User {
        id: raw.id,
        name: raw.name,
        email: raw.email,
        roles,
        groups,
    }
}

/// True for an address a device can have: not unspecified, loopback, multicast, broadcast
/// or IPv4-mapped.
pub(crate) fn device_address(address: IpAddr) -> bool {
    let mapped = matches!(address, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
    let broadcast = address == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || mapped
        || broadcast)
}

fn convert_node(i: usize, raw: RawNode, errors: &mut Vec<InventoryError>) -> Option<Node> {
    let ipv4 = match raw.ipv4.as_deref().map(str::parse::<IpAddr>) {
        None => Some(None),
        Some(Ok(IpAddr::V4(a))) => Some(Some(a)),
        Some(Ok(IpAddr::V6(_))) => {
            errors.push(InventoryError::new(
                InventoryErrorKind::InvalidAddress,
                format!(
                    "nodes[{i}].ipv4: \"{}\" is not an IPv4 address",
                    raw.ipv4.as_deref().unwrap_or_default()
                ),
            ));
            None
        }
        Some(Err(_)) => {
            errors.push(invalid_address(
                &format!("nodes[{i}].ipv4"),
                raw.ipv4.as_deref().unwrap_or_default(),
            ));
            None
        }
    };
    let ipv6 = match raw.ipv6.as_deref().map(str::parse::<IpAddr>) {
        None => Some(None),
        Some(Ok(IpAddr::V6(a))) => Some(Some(a)),
        Some(Ok(IpAddr::V4(_))) => {
            errors.push(InventoryError::new(
                InventoryErrorKind::InvalidAddress,
                format!(
                    "nodes[{i}].ipv6: \"{}\" is not an IPv6 address",
                    raw.ipv6.as_deref().unwrap_or_default()
                ),
            ));
            None
        }
        Some(Err(_)) => {
            errors.push(invalid_address(
                &format!("nodes[{i}].ipv6"),
                raw.ipv6.as_deref().unwrap_or_default(),
            ));
            None
        }
    };
    let routable_ips = convert_prefixes(
        &format!("nodes[{i}].routable_ips"),
        &raw.routable_ips,
        errors,
    );
    let approved_routes = convert_prefixes(
        &format!("nodes[{i}].approved_routes"),
        &raw.approved_routes,
        errors,
    );
    check_posture(i, &raw.posture, errors);
    Some(Node {
        name: raw.name,
        hostname: raw.hostname,
        user: raw.user,
        tags: raw.tags,
        ipv4: ipv4?,
        ipv6: ipv6?,
        routable_ips,
        approved_routes,
        posture: raw.posture,
    })
}

/// Posture attributes are `namespace:name` keys with string, number or boolean values.
fn check_posture(
    i: usize,
    posture: &BTreeMap<String, serde_json::Value>,
    errors: &mut Vec<InventoryError>,
) {
    for (key, value) in posture {
        let namespaced = key
            .split_once(':')
            .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty());
        if !namespaced {
            errors.push(InventoryError::new(
                InventoryErrorKind::InvalidPosture,
                format!(
                    "nodes[{i}].posture: attribute \"{key}\" has no namespace (write it as namespace:name, e.g. \"node:os\" or \"custom:tier\")"
                ),
            ));
        }
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            errors.push(InventoryError::new(
                InventoryErrorKind::InvalidPosture,
                format!(
                    "nodes[{i}].posture[\"{key}\"]: {value} is not a string, number or boolean"
                ),
            ));
        }
    }
}

fn invalid_address(path: &str, text: &str) -> InventoryError {
    InventoryError::new(
        InventoryErrorKind::InvalidAddress,
        format!("{path}: invalid IP address \"{text}\""),
    )
}

fn convert_prefixes(path: &str, texts: &[String], errors: &mut Vec<InventoryError>) -> Vec<IpNet> {
    texts
        .iter()
        .enumerate()
        .filter_map(|(j, text)| match parse_prefix(text) {
            Ok(net) => Some(net),
            Err(why) => {
                errors.push(InventoryError::new(
                    InventoryErrorKind::InvalidPrefix,
                    format!("{path}[{j}]: {why}"),
                ));
                None
            }
        })
        .collect()
}

/// A canonical `address/length` prefix.
fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let Ok(net) = text.parse::<IpNet>() else {
        return Err(if text.parse::<IpAddr>().is_ok() {
            format!("invalid prefix \"{text}\" (a route needs a length, as in \"{text}/32\")")
        } else {
            format!("invalid prefix \"{text}\"")
        });
    };
    if net.trunc() != net {
        return Err(format!(
            "prefix \"{text}\" has host bits set (did you mean \"{}\"?)",
            net.trunc()
        ));
    }
    Ok(net)
}

impl Inventory {
    /// Read and validate an inventory from JSON.
    ///
    /// Refused (with the path of the offending value in the message): malformed JSON or a wrong
    /// shape, unknown fields in a user or node, an empty node name, a node with neither `ipv4` nor
    /// `ipv6` (either may be left out, for IPv4-only or IPv6-only pools), duplicate user
    /// emails or ids, an unknown role, duplicate node names, an address used twice, an invalid
    /// address or an IPv6 address in `ipv4` (and the reverse), a route that is not a canonical
    /// prefix, a tag not starting with `tag:`, a node owned by an email that is not among the
    /// users, a node both user-owned and tagged or neither, `registration_order` naming an
    /// unknown node or a node twice, and a posture attribute without a namespace or with a
    /// value that is not a string, number or boolean. The first problem is returned; [`InventoryError::more`]
    /// counts the others.
    ///
    /// Accepted with a warning ([`Inventory::warnings`]): an approved route that the node does
    /// not advertise (Tailscale keeps such approvals; they take effect once advertised).
    pub fn from_json(text: &str) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            InventoryError::new(
                InventoryErrorKind::Syntax,
                format!("line {}, column {}: {message}", e.line(), e.column()),
            )
        })?;
        Inventory::try_from(raw)
    }

    /// Build and validate an inventory from its parts (same checks as [`Inventory::from_json`]).
    pub fn new(
        users: Vec<User>,
        nodes: Vec<Node>,
        registration_order: Vec<String>,
        tailnet: Tailnet,
    ) -> Result<Inventory, InventoryError> {
        Inventory::sharing_users(
            users.into(),
            None,
            nodes.into_iter().map(Arc::new).collect(),
            Registration::Listed(registration_order),
            tailnet,
        )
    }

    /// [`Inventory::new`] with users held elsewhere too; when they are `earlier`'s (the same
    /// list, not an equal one), its checks and lookups of them are taken, not made again.
    pub(crate) fn sharing_users(
        users: Arc<[User]>,
        earlier: Option<&Inventory>,
        nodes: Vec<Arc<Node>>,
        registration_order: Registration,
        tailnet: Tailnet,
    ) -> Result<Inventory, InventoryError> {
        let known = earlier
            .filter(|e| Arc::ptr_eq(&e.users, &users))
            .map(|e| e.index.user_by_email.clone());
        let inventory = Inventory {
            users,
            nodes,
            registration_order,
            tailnet,
            services: Vec::new(),
            index: Index::default(),
        };
        let (index, errors) = inventory.check(known);
        if errors.is_empty() {
            Ok(Inventory { index, ..inventory })
        } else {
            Err(first_of(errors))
        }
    }

    /// The same inventory with these Tailscale Services. Their names are `svc:` names, unique;
    /// their hosts are nodes of the inventory; their addresses belong to no node.
    pub fn with_services(self, services: Vec<Service>) -> Result<Inventory, InventoryError> {
        let inventory = Inventory { services, ..self };
        let (index, mut errors) = inventory.check(Some(inventory.index.user_by_email.clone()));
        errors.extend(inventory.check_services(&index));
        if errors.is_empty() {
            Ok(Inventory { index, ..inventory })
        } else {
            Err(first_of(errors))
        }
    }

    fn check_services(&self, index: &Index) -> Vec<InventoryError> {
        use InventoryErrorKind as K;
        let mut errors = Vec::new();
        let mut err = |kind, message: String| errors.push(InventoryError::new(kind, message));
        let node_addresses: HashSet<IpAddr> =
            self.nodes.iter().flat_map(|n| n.addresses()).collect();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut vips: HashMap<IpAddr, usize> = HashMap::new();
        for (i, svc) in self.services.iter().enumerate() {
            if svc.name.strip_prefix("svc:").is_none_or(str::is_empty) {
                err(
                    K::InvalidService,
                    format!("services[{i}].name: invalid service name \"{}\" (services look like \"svc:name\")", svc.name),
                );
            } else if let Some(first) = names.insert(&svc.name, i) {
                err(
                    K::InvalidService,
                    format!(
                        "services[{i}].name: duplicate service \"{}\" (also services[{first}])",
                        svc.name
                    ),
                );
            }
            for vip in svc.vips() {
                let addr = vip.addr();
                if node_addresses.contains(&addr) {
                    err(
                        K::DuplicateAddress,
                        format!(
                            "services[{i}]: address {addr} of \"{}\" is a node's address",
                            svc.name
                        ),
                    );
                } else if let Some(first) = vips.insert(addr, i) {
                    err(
                        K::DuplicateAddress,
                        format!(
                            "services[{i}]: address {addr} is already used by services[{first}]"
                        ),
                    );
                }
            }
            for (field, list) in [
                ("hosts", &svc.hosts),
                ("approved_hosts", &svc.approved_hosts),
            ] {
                for (j, host) in list.iter().enumerate() {
                    if index.node_by_name.get(host, self.name_of()).is_none() {
                        err(
                            K::UnknownNode,
                            format!("services[{i}].{field}[{j}]: unknown node \"{host}\" (not among nodes)"),
                        );
                    }
                }
            }
        }
        errors
    }

    /// Every problem, in document order, and the lookups (valid only when there is none).
    /// The nodes' addresses are checked beside the rest of each node (on a second core for
    /// a large inventory), their problems merged back in node order.
    /// `users`: the users' lookup when they were checked already.
    fn check(
        &self,
        users: Option<Arc<crate::hash::Map<String, usize>>>,
    ) -> (Index, Vec<InventoryError>) {
        let mut errors = Vec::new();
        let user_by_email = match users {
            Some(known) => known,
            None => Arc::new(self.check_users(&mut errors)),
        };
        let ((mut node_by_name, nodes), addresses) = match self.nodes.len() > 4096 {
            true => crate::par::join(
                || self.check_nodes(&user_by_email),
                || self.check_addresses(),
            ),
            false => (self.check_nodes(&user_by_email), self.check_addresses()),
        };
        // Both lists are in node order; a node's own problems come before its addresses'.
        let mut addresses = addresses.into_iter().peekable();
        for (i, error) in nodes {
            while let Some((_, e)) = addresses.next_if(|(j, _)| *j < i) {
                errors.push(e);
            }
            errors.push(error);
        }
        errors.extend(addresses.map(|(_, e)| e));
        let ranks_are_positions = self.check_order(&mut node_by_name, &mut errors);
        let index = Index {
            node_by_name,
            user_by_email,
            ranks_are_positions,
        };
        (index, errors)
    }

    /// A node's name, by position (what [`names::NameIndex`] compares against).
    fn name_of<'a>(&'a self) -> impl Fn(usize) -> &'a str + Copy + 'a {
        |p| self.nodes.get(p).map_or("", |n| n.name.as_str())
    }

    fn check_users(&self, errors: &mut Vec<InventoryError>) -> crate::hash::Map<String, usize> {
        use InventoryErrorKind as K;
        let mut err = |kind, message: String| errors.push(InventoryError::new(kind, message));
        let mut user_by_email =
            crate::hash::Map::with_capacity_and_hasher(self.users.len(), Default::default());
        let mut user_ids: crate::hash::Map<u64, usize> = crate::hash::Map::default();
        // Logins compared as the policy compares them, without case: two users whose emails
        // differ only in case would be one user to every rule naming either (a grant to
        // alice@ reached Alice@'s devices).
        let mut folded: crate::hash::Map<String, usize> = crate::hash::Map::default();
        for (i, user) in self.users.iter().enumerate() {
            // Some recorded users have no login (an empty email); no node can name them as its
            // owner, but they are not an error.
            let duplicate = match user.email.is_empty() {
                true => None,
                false => {
                    let exact = user_by_email.insert(user.email.clone(), i);
                    let first = folded.entry(user.email.to_lowercase()).or_insert(i);
                    exact.or((*first != i).then_some(*first))
                }
            };
            if let Some(first) = duplicate {
                user_by_email.insert(user.email.clone(), first);
                err(
                    K::DuplicateUser,
                    format!(
                        "users[{i}].email: duplicate user \"{}\" (also users[{first}])",
                        user.email
                    ),
                );
            }
            if let Some(first) = user_ids.insert(user.id, i) {
                user_ids.insert(user.id, first);
                err(
                    K::DuplicateUser,
                    format!(
                        "users[{i}].id: duplicate user id {} (also users[{first}])",
                        user.id
                    ),
                );
            }
        }
        user_by_email
    }

    /// Each node's name, owner and tags: the nodes by name, and the problems with the
    /// position of the node they are about.
    fn check_nodes(
        &self,
        user_by_email: &crate::hash::Map<String, usize>,
    ) -> (names::NameIndex, Vec<(usize, InventoryError)>) {
        use InventoryErrorKind as K;
        let mut errors = Vec::new();
        let mut node_by_name = names::NameIndex::with_capacity(self.nodes.len());
        let name_of = self.name_of();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut err =
                |kind, message: String| errors.push((i, InventoryError::new(kind, message)));
            let name = &node.name;
            if name.trim().is_empty() {
                err(K::EmptyName, format!("nodes[{i}].name: empty node name"));
            } else if let Some((first, _)) = node_by_name.insert(name, i, name_of) {
                err(
                    K::DuplicateNodeName,
                    format!(
                        "nodes[{i}].name: duplicate node name \"{name}\" (also nodes[{first}])"
                    ),
                );
            }
            Self::check_node(i, node, user_by_email, &mut err);
        }
        (node_by_name, errors)
    }

    /// Node `i`'s owner, tags and addresses (its name is checked against the others'
    /// by the caller).
    fn check_node(
        i: usize,
        node: &Node,
        user_by_email: &crate::hash::Map<String, usize>,
        err: &mut dyn FnMut(InventoryErrorKind, String),
    ) {
        use InventoryErrorKind as K;
        let name = &node.name;
        match (&node.user, node.tags.is_empty()) {
            (Some(owner), false) => err(
                K::Ownership,
                format!(
                    "nodes[{i}]: node \"{name}\" is owned by \"{owner}\" and also tagged; \
                     a tagged node has no owner (set \"user\" to null)"
                ),
            ),
            (None, true) => err(
                K::Ownership,
                format!("nodes[{i}]: node \"{name}\" has neither an owner (\"user\") nor tags"),
            ),
            (Some(owner), true) if !user_by_email.contains_key(owner) => err(
                K::UnknownOwner,
                format!("nodes[{i}].user: unknown user \"{owner}\" (not among users)"),
            ),
            _ => {}
        }
        // A few tags are compared pairwise; a long list (hostile) through a set, so the
        // check stays linear.
        let mut seen_tags = (node.tags.len() > 16).then(HashSet::new);
        for (j, tag) in node.tags.iter().enumerate() {
            if tag.strip_prefix("tag:").is_none_or(str::is_empty) {
                err(
                    K::InvalidTag,
                    format!(
                        "nodes[{i}].tags[{j}]: invalid tag \"{tag}\" (tags look like \"tag:name\")"
                    ),
                );
            } else if match &mut seen_tags {
                Some(seen) => !seen.insert(tag),
                None => node.tags.iter().take(j).any(|t| t == tag),
            } {
                err(
                    K::InvalidTag,
                    format!("nodes[{i}].tags[{j}]: tag \"{tag}\" listed twice"),
                );
            }
        }
        // Addresses no device can have: as a node's, they would enter packet filters (`::`
        // and `0.0.0.0` mean "any" to many programs) or alias another node's IPv4 address
        // (an IPv4-mapped IPv6 address).
        let addresses = [
            ("ipv4", node.ipv4.map(IpAddr::V4)),
            ("ipv6", node.ipv6.map(IpAddr::V6)),
        ];
        for (field, address) in addresses {
            let Some(address) = address else { continue };
            if !device_address(address) {
                err(
                    K::InvalidAddress,
                    format!(
                        "nodes[{i}].{field}: {address} cannot be a device's address \
                         (unspecified, loopback, multicast, broadcast or IPv4-mapped)"
                    ),
                );
            }
        }
        if node.ipv4.is_none() && node.ipv6.is_none() {
            err(
                K::NoAddress,
                format!(
                    "nodes[{i}]: node \"{name}\" has no address (give it \"ipv4\", \"ipv6\" or both)"
                ),
            );
        }
    }

    /// An inventory of `earlier`'s users, registration in node order and no Services, with
    /// these `nodes`: `earlier`'s node at position `p` is now at `to_new[p]` (`usize::MAX`
    /// when gone), and the nodes at positions `fresh` are new or changed. Only those are
    /// checked (their owner, tags, name and addresses against every node's), and `earlier`'s
    /// lookups are taken with positions moved: O(nodes) integer copies and address
    /// comparisons, no string or hash per node. `None` when `earlier` is not such an
    /// inventory or a changed node has a problem: the full check ([`Inventory::sharing_users`])
    /// then reports it as it would.
    pub(crate) fn patched<'h>(
        earlier: &Inventory,
        nodes: Vec<Arc<Node>>,
        to_new: &[usize],
        fresh: &[usize],
        tailnet: Tailnet,
        holder: &dyn Fn(IpAddr) -> Option<&'h str>,
    ) -> Option<Inventory> {
        if !matches!(earlier.registration_order, Registration::NodeOrder)
            || !earlier.services.is_empty()
        {
            return None;
        }
        let mut node_by_name = earlier.index.node_by_name.moved(to_new);
        let user_by_email = earlier.index.user_by_email.clone();
        let mut ok = true;
        let mut addresses: crate::hash::Map<IpAddr, usize> = crate::hash::Map::default();
        {
            let name_of = |p: usize| nodes.get(p).map_or("", |n| n.name.as_str());
            for &i in fresh {
                let node = nodes.get(i)?;
                Self::check_node(i, node, &user_by_email, &mut |_, _| ok = false);
                if node.name.trim().is_empty()
                    || node_by_name.insert(&node.name, i, name_of).is_some()
                {
                    return None;
                }
                for address in node.addresses() {
                    if addresses.insert(address, i).is_some() {
                        return None;
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        // The changed nodes' addresses are no kept node's: the earlier node that held one
        // (`holder`, by the earlier inventory's address index) is gone, changed (it is then
        // one of the changed nodes, checked above), or a clash. Walking every node for its
        // addresses was 100,000 records and 200,000 lookups per event on `large`.
        let name_of = |p: usize| nodes.get(p).map_or("", |n| n.name.as_str());
        let clash = addresses.iter().any(|(&a, &i)| {
            holder(a).is_some_and(|name| {
                node_by_name
                    .get(name, name_of)
                    .is_some_and(|(p, _)| p != i && fresh.binary_search(&p).is_err())
            })
        });
        #[cfg(debug_assertions)]
        {
            let scanned = nodes.iter().enumerate().any(|(i, n)| {
                let taken = |a: IpAddr| addresses.get(&a).is_some_and(|&j| j != i);
                n.ipv4.is_some_and(|a| taken(IpAddr::V4(a)))
                    || n.ipv6.is_some_and(|a| taken(IpAddr::V6(a)))
            });
            debug_assert_eq!(clash, scanned, "an address clash found by the index");
        }
        if clash || node_by_name.len() != nodes.len() {
            return None;
        }
        // The kept nodes' ranks were moved with them; the changed ones' are their positions.
        for &i in fresh {
            let name = name_of(i);
            if let Some(entry) = node_by_name.get_mut(name, name_of) {
                entry.1 = entry.0;
            }
        }
        #[cfg(debug_assertions)]
        {
            let mut ranked = node_by_name.clone();
            ranked.rank_by_position();
            debug_assert!(
                nodes.iter().all(|n| {
                    ranked.get(&n.name, name_of) == node_by_name.get(&n.name, name_of)
                }),
                "a patched inventory's registration ranks"
            );
        }
        Some(Inventory {
            users: earlier.users.clone(),
            nodes,
            registration_order: Registration::NodeOrder,
            tailnet,
            services: Vec::new(),
            index: Index {
                node_by_name,
                user_by_email,
                ranks_are_positions: true,
            },
        })
    }

    /// True when `other` has the same contents and lookups: what [`Inventory::patched`]
    /// must give.
    #[cfg(debug_assertions)]
    pub(crate) fn agrees_with(&self, other: &Inventory) -> bool {
        self == other
            && self.index.ranks_are_positions == other.index.ranks_are_positions
            && self.index.node_by_name.len() == other.index.node_by_name.len()
            && self.nodes.iter().all(|n| {
                let at = |inv: &Inventory| inv.index.node_by_name.get(&n.name, inv.name_of());
                at(self) == at(other)
            })
    }

    /// Addresses used twice, with the position of the node reusing one.
    fn check_addresses(&self) -> Vec<(usize, InventoryError)> {
        let mut errors = Vec::new();
        let mut addresses: crate::hash::Map<IpAddr, usize> =
            crate::hash::Map::with_capacity_and_hasher(2 * self.nodes.len(), Default::default());
        for (i, node) in self.nodes.iter().enumerate() {
            let v4 = node.ipv4.map(|a| ("ipv4", IpAddr::V4(a)));
            let v6 = node.ipv6.map(|a| ("ipv6", IpAddr::V6(a)));
            for (field, address) in v4.into_iter().chain(v6) {
                if let Some(first) = addresses.insert(address, i) {
                    addresses.insert(address, first);
                    let other = self.nodes.get(first).map_or("", |n| n.name.as_str());
                    errors.push((
                        i,
                        InventoryError::new(
                            InventoryErrorKind::DuplicateAddress,
                            format!(
                                "nodes[{i}].{field}: address {address} is already used by node \"{other}\" (nodes[{first}])"
                            ),
                        ),
                    ));
                }
            }
        }
        errors
    }

    /// Each node's rank in the registration order.
    /// True when every node is listed, in node order (each rank is the node's position).
    fn check_order(
        &self,
        node_by_name: &mut names::NameIndex,
        errors: &mut Vec<InventoryError>,
    ) -> bool {
        use InventoryErrorKind as K;
        // Every node listed, in node order (as the engine builds them): each rank is the
        // position, without a lookup per name.
        let listed = match &self.registration_order {
            Registration::NodeOrder => {
                node_by_name.rank_by_position();
                return true;
            }
            Registration::Listed(listed) => listed,
        };
        if node_by_name.len() == self.nodes.len()
            && listed.len() == self.nodes.len()
            && listed
                .iter()
                .zip(&self.nodes)
                .all(|(listed, node)| *listed == node.name)
        {
            node_by_name.rank_by_position();
            return true;
        }
        let name_of = self.name_of();
        for (i, name) in listed.iter().enumerate() {
            let Some((_, rank)) = node_by_name.get_mut(name, name_of) else {
                errors.push(InventoryError::new(
                    K::UnknownNode,
                    format!("registration_order[{i}]: unknown node \"{name}\" (not among nodes)"),
                ));
                continue;
            };
            if *rank == usize::MAX {
                *rank = i;
            } else {
                let first = *rank;
                errors.push(InventoryError::new(
                    K::DuplicateRegistration,
                    format!(
                        "registration_order[{i}]: node \"{name}\" listed twice (also registration_order[{first}])"
                    ),
                ));
            }
        }
        false
    }

    /// Things that look wrong but do not stop the inventory from loading: approved routes the
    /// node does not advertise.
    pub fn warnings(&self) -> Vec<InventoryError> {
        let mut warnings = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let advertised = crate::routes::RouteSet::new(&node.routable_ips);
            for (j, route) in node.approved_routes.iter().enumerate() {
                if !advertised.contains(route) {
                    warnings.push(InventoryError::new(
                        InventoryErrorKind::ApprovedRouteNotAdvertised,
                        format!(
                            "nodes[{i}].approved_routes[{j}]: route {route} is approved but node \"{}\" does not advertise it",
                            node.name
                        ),
                    ));
                }
            }
        }
        warnings
    }

    /// The users, in inventory order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The users, shared.
    pub(crate) fn shared_users(&self) -> &Arc<[User]> {
        &self.users
    }

    /// The nodes, in inventory order.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Node names, oldest registration first (may omit nodes).
    pub fn registration_order(&self) -> Vec<&str> {
        match &self.registration_order {
            Registration::Listed(names) => names.iter().map(String::as_str).collect(),
            Registration::NodeOrder => self.nodes.iter().map(|n| n.name.as_str()).collect(),
        }
    }

    /// The tailnet's name, DNS and settings.
    pub fn tailnet(&self) -> &Tailnet {
        &self.tailnet
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.index
            .node_by_name
            .get(name, self.name_of())
            .and_then(|(i, _)| self.nodes.get(i))
            .map(|n| &**n)
    }

    /// The user whose email is `email`.
    pub fn user(&self, email: &str) -> Option<&User> {
        self.index
            .user_by_email
            .get(email)
            .and_then(|&i| self.users.get(i))
    }

    /// The owner of a user-owned node.
    pub fn owner(&self, node: &Node) -> Option<&User> {
        node.user.as_deref().and_then(|email| self.user(email))
    }

    /// [`Inventory::registration_rank`] of the node at `position` in [`Inventory::nodes`],
    /// called `name`: without a lookup when the order lists every node in node order.
    pub(crate) fn registration_rank_at(&self, position: usize, name: &str) -> Option<usize> {
        match self.index.ranks_are_positions {
            true => Some(position),
            false => self.registration_rank(name),
        }
    }

    /// True when the registration order lists every node in node order (a node's rank is
    /// its position).
    pub(crate) fn ranks_are_positions(&self) -> bool {
        self.index.ranks_are_positions
    }

    /// Position of the node in `registration_order` (0 = oldest); `None` when not listed.
    pub fn registration_rank(&self, name: &str) -> Option<usize> {
        self.index
            .node_by_name
            .get(name, self.name_of())
            .map(|(_, rank)| rank)
            .filter(|&rank| rank != usize::MAX)
    }

    /// What the policy checker needs to know about this tailnet: its domain (see
    /// [`Tailnet::domain`]) and its users' logins.
    pub fn policy_context(&self) -> aclc_policy::Context {
        aclc_policy::Context {
            tailnet_domains: self.tailnet.domain().map(|d| vec![d]),
            user_logins: Some(
                self.users
                    .iter()
                    .filter(|u| !u.email.is_empty())
                    .map(|u| u.email.clone())
                    .collect(),
            ),
            synced_groups: Some(self.synced_groups()),
        }
    }

    /// The Tailscale Services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The synced groups at least one user belongs to, sorted.
    pub fn synced_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .users
            .iter()
            .flat_map(|u| u.groups.iter().cloned())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }
}

// Inventories are built once and shared between threads (a control server compiles for many
// nodes at once).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Inventory>();
    assert_send_sync::<InventoryError>();
};

mod names;
#[cfg(test)]
mod tests;
