//! Node capabilities: what `nodeAttrs`, `randomizeClientPort` and the tailnet's own state put
//! in each node's `CapMap`, and which nodes lose their IPv4 address to `disable-ipv4`.
//!
//! Attributes become keys with a `null` value, `app` capabilities keys with their JSON values;
//! `funnel` brings its two companions (the allowed ports and the HTTPS warning). The
//! tailnet-state capabilities (file sharing, SSH, admin and owner marks, the tailnet's name,
//! auto-updates ...) are stamped on every node by the control plane whatever the policy says;
//! they are modelled when [`crate::CompileOptions::tailnet_state_caps`] is on.

use aclc_policy::model::Policy;
use serde_json::Value;

use crate::inventory::{Inventory, Role};
use crate::nodes::{NodeId, NodeTable};
use crate::resolve::{Resolver, Target};
use crate::wire::CapMap;

/// The attribute that takes a node's IPv4 address away.
pub(crate) const DISABLE_IPV4: &str = "disable-ipv4";

/// What `randomizeClientPort: true` gives every node.
const RANDOMIZE_CLIENT_PORT: &str = "randomize-client-port";

/// Capabilities the `funnel` attribute brings with it.
const FUNNEL_COMPANIONS: [&str; 2] = [
    "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000",
    "https://tailscale.com/cap/warn-funnel-no-https",
];

/// Capabilities every node carries, `null`-valued, from tailnet state.
const STATE_CAPS: [&str; 7] = [
    "https://tailscale.com/cap/file-sharing",
    "https://tailscale.com/cap/ssh",
    "https://tailscale.com/cap/tailnet-lock",
    "probe-udp-lifetime",
    "ssh-behavior-v1",
    "ssh-env-vars",
    "store-appc-routes",
];

const IS_ADMIN: &str = "https://tailscale.com/cap/is-admin";
const IS_OWNER: &str = "https://tailscale.com/cap/is-owner";

/// One `nodeAttrs` entry, resolved.
#[derive(Debug, PartialEq)]
struct Entry {
    targets: Vec<Target>,
    /// Capability name and value (`None` for a plain attribute).
    caps: Vec<(String, Option<Value>)>,
}

/// The tailnet state the control plane turns into capabilities.
#[derive(Debug, PartialEq)]
struct TailnetState {
    /// `tailnet-display-name`.
    name: String,
    /// `default-auto-update`.
    auto_update: bool,
}

/// Every node's capabilities, derived on demand.
#[derive(Debug)]
pub(crate) struct NodeCaps {
    entries: Vec<Entry>,
    randomize_client_port: bool,
    state: Option<TailnetState>,
    /// One bit per node: its IPv4 address is disabled.
    no_ipv4: Vec<bool>,
    /// Some node's IPv4 address is disabled (a node's families are read per peer of every
    /// changed node: with none, no node need be looked up).
    any_no_ipv4: bool,
}

impl NodeCaps {
    /// Resolve the policy's node attributes against a node table.
    pub(crate) fn new(
        policy: &Policy,
        inventory: &Inventory,
        table: &NodeTable,
        state_caps: bool,
    ) -> NodeCaps {
        let mut resolver = Resolver::compiling(policy, table);
        let entries: Vec<Entry> = policy
            .node_attrs
            .iter()
            .map(|attr| {
                let mut caps: Vec<(String, Option<Value>)> = attr
                    .attr
                    .iter()
                    .map(|a| (a.value.trim().to_string(), None))
                    .collect();
                caps.extend(
                    attr.app
                        .iter()
                        .map(|c| (c.name.value.clone(), Some(c.values.value.clone()))),
                );
                Entry {
                    targets: attr.target.iter().map(|t| resolver.resolve(t)).collect(),
                    caps,
                }
            })
            .collect();
        let state = state_caps.then(|| TailnetState {
            name: inventory.tailnet().name.clone(),
            auto_update: inventory
                .tailnet()
                .settings
                .devices_auto_updates_on
                .unwrap_or(false),
        });
        let mut caps = NodeCaps {
            entries,
            randomize_client_port: policy
                .randomize_client_port
                .as_ref()
                .is_some_and(|r| r.value),
            state,
            no_ipv4: Vec::new(),
            any_no_ipv4: false,
        };
        // Only the entries granting `disable-ipv4` are tested per node: listing every node's
        // attributes to look for it was 5% of a member's join on `large`.
        let disabling: Vec<&Entry> = caps
            .entries
            .iter()
            .filter(|e| e.caps.iter().any(|(name, _)| name == DISABLE_IPV4))
            .collect();
        caps.no_ipv4 = match disabling.is_empty() {
            true => vec![false; table.len()],
            false => (0..table.len())
                .map(|i| {
                    let id = NodeId::new(i);
                    table.get(id).is_some_and(|node| {
                        disabling
                            .iter()
                            .any(|e| e.targets.iter().any(|t| t.contains_node(id, node)))
                    })
                })
                .collect(),
        };
        caps.any_no_ipv4 = caps.no_ipv4.contains(&true);
        debug_assert!((0..table.len()).all(|i| {
            let id = NodeId::new(i);
            caps.no_ipv4.get(i).copied()
                == Some(
                    caps.attributes(table, id)
                        .iter()
                        .any(|(name, _)| name == DISABLE_IPV4),
                )
        }));
        caps
    }

    /// True when every node gets the same capabilities from `other` (a derivation for the
    /// same node table): the same resolved entries in the same order and the same settings.
    pub(crate) fn same_as(&self, other: &NodeCaps) -> bool {
        self.entries == other.entries
            && self.randomize_client_port == other.randomize_client_port
            && self.state == other.state
    }

    /// True when some node's IPv4 address is disabled.
    pub(crate) fn any_ipv4_disabled(&self) -> bool {
        self.any_no_ipv4
    }

    /// True when node `id` has no IPv4 address (`disable-ipv4`).
    pub(crate) fn ipv4_disabled(&self, id: NodeId) -> bool {
        self.no_ipv4.get(id.index()).copied().unwrap_or(false)
    }

    /// The policy's capabilities for node `id`, in policy order (duplicates possible).
    fn attributes(&self, table: &NodeTable, id: NodeId) -> Vec<(String, Option<Value>)> {
        let Some(node) = table.get(id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in &self.entries {
            if entry.targets.iter().any(|t| t.contains_node(id, node)) {
                out.extend(entry.caps.iter().cloned());
            }
        }
        out
    }

    /// Node `id`'s capability map.
    pub(crate) fn cap_map(&self, table: &NodeTable, id: NodeId) -> CapMap {
        let mut map = CapMap::new();
        let Some(node) = table.get(id) else {
            return map;
        };
        if let Some(state) = &self.state {
            for cap in STATE_CAPS {
                map.insert(cap.to_string(), Value::Null);
            }
            map.insert(
                "default-auto-update".to_string(),
                Value::Array(vec![Value::Bool(state.auto_update)]),
            );
            map.insert(
                "tailnet-display-name".to_string(),
                Value::Array(vec![Value::String(state.name.clone())]),
            );
            let roles: &[Role] = node
                .owner
                .and_then(|u| table.users.get(u.index()))
                .map_or(&[], |u| u.roles.as_slice());
            if roles.contains(&Role::Admin) {
                map.insert(IS_ADMIN.to_string(), Value::Null);
            }
            if roles.contains(&Role::Owner) || node.is_tagged() {
                map.insert(IS_OWNER.to_string(), Value::Null);
            }
        }
        if self.randomize_client_port {
            map.insert(RANDOMIZE_CLIENT_PORT.to_string(), Value::Null);
        }
        for (name, value) in self.attributes(table, id) {
            if name == "funnel" {
                for companion in FUNNEL_COMPANIONS {
                    map.insert(companion.to_string(), Value::Null);
                }
            }
            add_cap(&mut map, name, value);
        }
        if let Some(hosted) = service_host(table, node) {
            map.insert(SERVICE_HOST.to_string(), hosted);
        }
        map
    }
}

/// The capability that tells a Tailscale Service host which services it is approved to
/// host and at which addresses (`tailcfg.NodeAttrServiceHost`, one `ServiceIPMappings`
/// value: service name -> addresses). The client treats a service's addresses as its own,
/// and so lets the packet filter accept traffic to them, only with it: without it every
/// packet to the service is dropped at the host, although its AllowedIPs and filter name
/// the addresses.
pub(crate) const SERVICE_HOST: &str = "service-host";

/// Node `node`'s [`SERVICE_HOST`] value: the services whose addresses it serves (advertised
/// and approved), in the inventory's order, each with every address of the service; `None`
/// for a node hosting none.
fn service_host(table: &NodeTable, node: &crate::nodes::NodeInfo) -> Option<Value> {
    let hosted: serde_json::Map<String, Value> = table
        .services_served_by(node)
        .into_iter()
        .map(|s| {
            let addrs = s.vips.iter().map(|v| Value::String(v.addr().to_string()));
            (s.name.clone(), Value::Array(addrs.collect()))
        })
        .collect();
    (!hosted.is_empty()).then(|| Value::Array(vec![Value::Object(hosted)]))
}

/// Add one capability: values of the same capability are concatenated; a plain attribute
/// does not erase values given elsewhere.
fn add_cap(map: &mut CapMap, name: String, value: Option<Value>) {
    let new: Vec<Value> = match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
    };
    match map.get_mut(&name) {
        Some(Value::Array(items)) => items.extend(new),
        Some(slot) => {
            if !new.is_empty() {
                *slot = Value::Array(new);
            }
        }
        None => {
            let value = if new.is_empty() {
                Value::Null
            } else {
                Value::Array(new)
            };
            map.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use serde_json::json;

    use super::*;
    use crate::compiled::{compile_with_options, CompileOptions};

    fn strs(list: &[crate::Text]) -> Vec<&str> {
        list.iter().map(|s| &**s).collect()
    }

    const INVENTORY: &str = r#"{
        "users": [{"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["owner", "admin"]},
                  {"id": 2, "name": "thor", "email": "thor@example.com", "roles": []}],
        "nodes": [
            {"name": "laptop", "user": "odin@example.com", "tags": [],
             "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1", "routable_ips": [], "approved_routes": []},
            {"name": "phone", "user": "thor@example.com", "tags": [],
             "ipv4": "100.64.0.3", "ipv6": "fd7a:115c:a1e0::3", "routable_ips": [], "approved_routes": []},
            {"name": "server", "user": null, "tags": ["tag:server"],
             "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2", "routable_ips": [], "approved_routes": []}
        ],
        "registration_order": ["laptop", "phone", "server"],
        "tailnet": {"name": "example.com", "settings": {"devices_auto_updates_on": true}}
    }"#;

    fn caps(policy: &str, state: bool) -> Vec<(String, serde_json::Value)> {
        let inventory = Inventory::from_json(INVENTORY).unwrap();
        let (_, parsed) = aclc_policy::parse_str("p", policy, &Default::default());
        let options = CompileOptions {
            tailnet_state_caps: state,
            ..CompileOptions::default()
        };
        let compiled = compile_with_options(&parsed.unwrap().policy, &inventory, &options);
        ["laptop", "phone", "server"]
            .iter()
            .map(|n| {
                let map = compiled.node(n).unwrap().cap_map();
                (n.to_string(), serde_json::to_value(map).unwrap())
            })
            .collect()
    }

    #[test]
    fn attributes_app_values_and_options() {
        let got = caps(
            r#"{"tagOwners": {"tag:server": ["odin@example.com"]},
                "randomizeClientPort": true,
                "nodeAttrs": [
                    {"target": ["tag:server"], "attr": ["funnel", "example.com/cap/x"]},
                    {"target": ["*"], "app": {"example.com/cap/x": [{"a": 1}]}},
                    {"target": ["100.64.0.1"], "app": {"example.com/cap/x": [{"b": 2}]}}
                ]}"#,
            false,
        );
        assert_eq!(
            got[0].1,
            json!({"randomize-client-port": null, "example.com/cap/x": [{"a": 1}, {"b": 2}]})
        );
        assert_eq!(
            got[1].1,
            json!({"randomize-client-port": null, "example.com/cap/x": [{"a": 1}]})
        );
        assert_eq!(
            got[2].1,
            json!({
                "randomize-client-port": null,
                "funnel": null,
                "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000": null,
                "https://tailscale.com/cap/warn-funnel-no-https": null,
                "example.com/cap/x": [{"a": 1}]
            })
        );
    }

    #[test]
    fn tailnet_state_capabilities() {
        let got = caps(
            r#"{"tagOwners": {"tag:server": ["odin@example.com"]}}"#,
            true,
        );
        let state = |extra: &[&str]| {
            let mut map = serde_json::Map::new();
            for cap in STATE_CAPS.iter().chain(extra) {
                map.insert(cap.to_string(), serde_json::Value::Null);
            }
            map.insert("default-auto-update".into(), json!([true]));
            map.insert("tailnet-display-name".into(), json!(["example.com"]));
            serde_json::Value::Object(map)
        };
        // The owner's devices are admin and owner, tagged devices owner, others neither.
        assert_eq!(got[0].1, state(&[IS_ADMIN, IS_OWNER]));
        assert_eq!(got[1].1, state(&[]));
        assert_eq!(got[2].1, state(&[IS_OWNER]));
    }

    #[test]
    fn disable_ipv4_hides_the_address_on_both_sides() {
        let inventory = Inventory::from_json(INVENTORY).unwrap();
        let (_, parsed) = aclc_policy::parse_str(
            "p",
            r#"{"nodeAttrs": [{"target": ["thor@example.com"], "attr": ["disable-ipv4"]}]}"#,
            &Default::default(),
        );
        let compiled = crate::compile(&parsed.unwrap().policy, &inventory);
        let phone = compiled.node("phone").unwrap();
        assert!(phone.ipv4_disabled());
        let wire = phone.to_wire();
        assert_eq!(wire.addresses, ["fd7a:115c:a1e0::3/128"]);
        assert_eq!(wire.allowed_ips, ["fd7a:115c:a1e0::3/128"]);
        assert_eq!(
            strs(&wire.peers["laptop"].allowed_ips),
            ["fd7a:115c:a1e0::1/128"]
        );
        let laptop = compiled.node("laptop").unwrap().to_wire();
        assert_eq!(laptop.addresses.len(), 2);
        assert_eq!(
            strs(&laptop.peers["phone"].allowed_ips),
            ["fd7a:115c:a1e0::3/128"]
        );
        assert_eq!(
            strs(&laptop.peers["server"].allowed_ips),
            ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"]
        );
    }
}
