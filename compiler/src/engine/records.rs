//! What a control server feeds the engine: users and nodes keyed by the stable ids of its
//! database (not by name), the events that change them, and an inventory format that carries
//! those ids so a server can load its rows without inventing data.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use aclc_policy::model::Policy;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::inventory::{Role, Service, Tailnet};

/// A user of the tailnet, by stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// The stable user id (the server's primary key).
    pub id: u64,
    /// The login policies name the user by: an e-mail address (`alice@example.com`) or, for
    /// users without one (self-hosted servers), a bare login with a trailing `@` (`alice@`).
    /// Empty for a user no policy can name (and who can own no node).
    pub login: String,
    /// Display name.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub name: String,
    /// Tailnet roles (for `autogroup:admin`, `autogroup:owner`, ...).
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub roles: Vec<Role>,
    /// Groups synced from the identity provider (`group:eng@example.com`).
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub groups: Vec<String>,
}

/// A node (device), by stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// The stable node id (the server's primary key). Ids also give the registration order:
    /// the lowest id among a route's servers is its primary.
    pub id: u64,
    /// The node's name, unique in the tailnet (it keys the peers of the wire form).
    pub name: String,
    /// The OS hostname, when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The owning user's id, for a user-owned node; `None` for a tagged node.
    #[serde(default)]
    pub user: Option<u64>,
    /// Tags (`tag:...`); empty for a user-owned node.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub tags: Vec<String>,
    /// Tailscale IPv4 address; `None` on an IPv6-only pool. A node has at least one address
    /// (an event leaving a node with neither is refused as an invalid inventory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// Tailscale IPv6 address; `None` on an IPv4-only pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Routes the node advertises.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub advertised_routes: Vec<IpNet>,
    /// Routes approved for the node (by an admin, or stored auto-approvals).
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub approved_routes: Vec<IpNet>,
    /// Device posture attributes (`node:os` -> `"linux"`, ...).
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub posture: BTreeMap<String, serde_json::Value>,
    /// Connected to the control server. An offline router is a route's primary only when no
    /// other server of the route is online (HA failover).
    #[serde(default = "online_default")]
    pub online: bool,
}

fn online_default() -> bool {
    true
}

impl NodeRecord {
    /// A user-owned node with no routes, online.
    pub fn owned(id: u64, name: &str, user: u64, ipv4: Ipv4Addr, ipv6: Ipv6Addr) -> NodeRecord {
        NodeRecord {
            id,
            name: name.to_string(),
            hostname: None,
            user: Some(user),
            tags: Vec::new(),
            ipv4: Some(ipv4),
            ipv6: Some(ipv6),
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
            posture: BTreeMap::new(),
            online: true,
        }
    }

    /// The same node with these addresses (`None` for a family it has no address of).
    pub fn with_addresses(self, ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> NodeRecord {
        NodeRecord { ipv4, ipv6, ..self }
    }

    /// A tagged node with no routes, online.
    pub fn tagged(
        id: u64,
        name: &str,
        tags: &[&str],
        ipv4: Ipv4Addr,
        ipv6: Ipv6Addr,
    ) -> NodeRecord {
        NodeRecord {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            user: None,
            ..NodeRecord::owned(id, name, 0, ipv4, ipv6)
        }
    }
}

/// Something that happened to the tailnet or its policy.
#[derive(Debug, Clone)]
pub enum Event {
    /// A node joined, or changed (renamed, retagged, re-addressed, new posture ...).
    UpsertNode(NodeRecord),
    /// A node left (by id). Unknown ids are ignored.
    RemoveNode(u64),
    /// A user was added or changed (login, roles, synced groups).
    UpsertUser(UserRecord),
    /// A user was deleted, with the nodes they own (by id). Unknown ids are ignored.
    RemoveUser(u64),
    /// The routes a node advertises now (replacing what it advertised).
    AdvertiseRoutes {
        /// The node's id.
        node: u64,
        /// Every route it advertises.
        routes: Vec<IpNet>,
    },
    /// The routes approved for a node now (replacing its approvals).
    ApproveRoutes {
        /// The node's id.
        node: u64,
        /// Every approved route.
        routes: Vec<IpNet>,
    },
    /// A node connected or disconnected.
    SetOnline {
        /// The node's id.
        node: u64,
        /// Connected.
        online: bool,
    },
    /// A new policy (already parsed and validated by the caller).
    ReplacePolicy(Arc<Policy>),
    /// A Tailscale Service was added or changed (addresses, hosts, approvals, tags).
    UpsertService(ServiceRecord),
    /// A Tailscale Service was deleted (by name). Unknown names are ignored.
    RemoveService(String),
}

/// The tailnet in the engine's inventory format: users and nodes with their stable ids.
///
/// ```json
/// {"users": [{"id": 1, "login": "alice@", "name": "Alice", "roles": ["admin"]}],
///  "nodes": [{"id": 10, "name": "laptop", "user": 1,
///             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
///            {"id": 11, "name": "router", "tags": ["tag:router"],
///             "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
///             "advertised_routes": ["10.0.0.0/16"], "online": false}],
///  "tailnet": {"name": "example.com"}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailnetState {
    /// The users.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub users: Vec<UserRecord>,
    /// The nodes.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub nodes: Vec<NodeRecord>,
    /// The tailnet's name, DNS and settings (as in the corpus inventory).
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub tailnet: Tailnet,
    /// Tailscale Services (`svc:name`), with their hosts by node id.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_as_default"
    )]
    pub services: Vec<ServiceRecord>,
}

/// A Tailscale Service: its virtual addresses and the nodes, by stable id, that host it. A host
/// id naming no node is left out (a node removed leaves the service's rows behind).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// `svc:name`.
    pub name: String,
    /// The service's IPv4 virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// The service's IPv6 virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Nodes that advertise the service.
    #[serde(default, deserialize_with = "crate::wire::null_as_default")]
    pub hosts: Vec<u64>,
    /// Hosts an admin approved (`autoApprovers.services` approves others).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_as_default"
    )]
    pub approved_hosts: Vec<u64>,
    /// The service's tags, which `autoApprovers.services` may key on.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::wire::null_as_default"
    )]
    pub tags: Vec<String>,
}

impl ServiceRecord {
    /// The corpus-format service, hosts named by `name_of` (an id it does not know is left
    /// out).
    pub(crate) fn to_service(&self, name_of: impl Fn(u64) -> Option<String>) -> Service {
        let names = |ids: &[u64]| ids.iter().filter_map(|&id| name_of(id)).collect();
        Service {
            name: self.name.clone(),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            hosts: names(&self.hosts),
            approved_hosts: names(&self.approved_hosts),
            tags: self.tags.clone(),
        }
    }

    /// The record of a corpus-format service, hosts by `id_of` (a name it does not know is
    /// left out).
    fn from_service(s: &Service, id_of: impl Fn(&str) -> Option<u64>) -> ServiceRecord {
        let ids = |names: &[String]| names.iter().filter_map(|n| id_of(n)).collect();
        ServiceRecord {
            name: s.name.clone(),
            ipv4: s.ipv4,
            ipv6: s.ipv6,
            hosts: ids(&s.hosts),
            approved_hosts: ids(&s.approved_hosts),
            tags: s.tags.clone(),
        }
    }
}

impl TailnetState {
    /// Read the engine's inventory format.
    pub fn from_json(text: &str) -> Result<TailnetState, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The same tailnet from a corpus-format [`crate::Inventory`]: users and nodes numbered
    /// in inventory order (users from their own ids), nodes' ids following the registration
    /// order (then name order for nodes it leaves out), all online.
    pub fn from_inventory(inventory: &crate::Inventory) -> TailnetState {
        let users: Vec<UserRecord> = inventory
            .users()
            .iter()
            .map(|u| UserRecord {
                id: u.id,
                login: u.email.clone(),
                name: u.name.clone(),
                roles: u.roles.clone(),
                groups: u.groups.clone(),
            })
            .collect();
        let mut order: Vec<&crate::Node> = inventory.nodes().iter().map(|n| &**n).collect();
        // Unlisted nodes come last, by name: the compiler's order of route servers.
        order.sort_by(|a, b| {
            let rank = |n: &crate::Node| inventory.registration_rank(&n.name).unwrap_or(usize::MAX);
            (rank(a), &a.name).cmp(&(rank(b), &b.name))
        });
        let nodes: Vec<NodeRecord> = order
            .into_iter()
            .zip(1u64..)
            .map(|(n, id)| NodeRecord {
                id,
                name: n.name.clone(),
                hostname: n.hostname.clone(),
                user: n
                    .user
                    .as_deref()
                    .and_then(|login| inventory.user(login))
                    .map(|u| u.id),
                tags: n.tags.clone(),
                ipv4: n.ipv4,
                ipv6: n.ipv6,
                advertised_routes: n.routable_ips.clone(),
                approved_routes: n.approved_routes.clone(),
                posture: n.posture.clone(),
                online: true,
            })
            .collect();
        let id_of: BTreeMap<&str, u64> = nodes.iter().map(|n| (n.name.as_str(), n.id)).collect();
        let services = inventory
            .services()
            .iter()
            .map(|s| ServiceRecord::from_service(s, |name| id_of.get(name).copied()))
            .collect();
        TailnetState {
            users,
            nodes,
            tailnet: inventory.tailnet().clone(),
            services,
        }
    }
}

/// The first record of `state` whose key an earlier one has: a user's or node's stable id,
/// or a Service's name. The engine keeps its records by those keys, so a second record
/// replaced the first without a word (two users with id 1: the first user's devices became
/// the second's, found by a hostile sweep of the bindings); an inventory read from JSON is
/// refused for the same (`Inventory::from_json`).
pub(super) fn check_unique(state: &TailnetState) -> Result<(), crate::inventory::InventoryError> {
    use crate::inventory::{InventoryError, InventoryErrorKind as K};
    /// The first item whose key an earlier one has: its place, the earlier one's, the key.
    fn first_repeat<'a, T, K: std::hash::Hash + Eq + Copy>(
        items: &'a [T],
        key: impl Fn(&'a T) -> K,
    ) -> Option<(usize, usize, K)> {
        let mut seen = std::collections::HashMap::with_capacity(items.len());
        items.iter().enumerate().find_map(|(i, item)| {
            let k = key(item);
            seen.insert(k, i).map(|first| (i, first, k))
        })
    }
    let repeated = first_repeat(&state.users, |u| u.id)
        .map(|(i, first, id)| {
            let message = format!("users[{i}].id: duplicate user id {id} (also users[{first}])");
            (K::DuplicateUser, message)
        })
        .or_else(|| {
            let (i, first, id) = first_repeat(&state.nodes, |n| n.id)?;
            let message = format!("nodes[{i}].id: duplicate node id {id} (also nodes[{first}])");
            Some((K::DuplicateNodeId, message))
        })
        .or_else(|| {
            let (i, first, name) = first_repeat(&state.services, |s| s.name.as_str())?;
            let message = format!(
                "services[{i}].name: duplicate service \"{name}\" (also services[{first}])"
            );
            Some((K::InvalidService, message))
        });
    match repeated {
        Some((kind, message)) => Err(InventoryError::new(kind, message)),
        None => Ok(()),
    }
}
