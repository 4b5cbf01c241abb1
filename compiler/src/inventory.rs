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

mod check;
mod read;

pub(crate) use read::device_address;
use read::*;

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
        vips(self.ipv4, self.ipv6)
    }
}

/// A Service's virtual addresses as host prefixes, IPv4 first ([`Service::vips`], and the
/// engine's records of Services).
pub(crate) fn vips(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> Vec<IpNet> {
    let v4 = ipv4.map(|a| IpNet::from(IpAddr::V4(a)));
    let v6 = ipv6.map(|a| IpNet::from(IpAddr::V6(a)));
    v4.into_iter().chain(v6).collect()
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
    pub(crate) fn new(kind: InventoryErrorKind, message: impl Into<String>) -> InventoryError {
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
    /// Two nodes with the same stable id (an engine's starting state).
    DuplicateNodeId,
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

    /// An inventory of `earlier`'s users and Services (`services` must be `earlier`'s, or the
    /// patch does not apply), registration in node order, with
    /// these `nodes`: `earlier`'s node at position `p` is now at `to_new[p]` (`usize::MAX`
    /// when gone), and the nodes at positions `fresh` are new or changed. Only those are
    /// checked (their owner, tags, name and addresses against every node's and every
    /// Service's, and each Service's hosts are still nodes), and `earlier`'s
    /// lookups are taken with positions moved: O(nodes) integer copies and address
    /// comparisons, no string or hash per node. `None` when `earlier` is not such an
    /// inventory or a changed node has a problem: the full check ([`Inventory::sharing_users`])
    /// then reports it as it would.
    pub(crate) fn patched<'h>(
        earlier: &Inventory,
        nodes: Vec<Arc<Node>>,
        to_new: &[usize],
        fresh: &[usize],
        (tailnet, services): (Tailnet, &[Service]),
        holder: &dyn Fn(IpAddr) -> Option<&'h str>,
    ) -> Option<Inventory> {
        if !matches!(earlier.registration_order, Registration::NodeOrder)
            || earlier.services != services
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
        // A Service's address is no changed node's, and its hosts are nodes still.
        let vips: Vec<IpAddr> = services
            .iter()
            .flat_map(|s| s.vips())
            .map(|v| v.addr())
            .collect();
        let hosts_known = services.iter().all(|s| {
            s.hosts
                .iter()
                .chain(&s.approved_hosts)
                .all(|h| node_by_name.get(h, name_of).is_some())
        });
        if !hosts_known || addresses.keys().any(|a| vips.contains(a)) {
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
            services: services.to_vec(),
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
            ipv4_nodes: Some(self.nodes.iter().filter(|n| n.ipv4.is_some()).count()),
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
