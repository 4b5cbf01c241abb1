//! A JSON Schema (draft 2020-12) of the node inventory, matching the serde types the inventory
//! is read into (`RawInventory`, `RawUser`, `RawNode`, [`Service`](crate::Service),
//! [`Tailnet`](crate::Tailnet)); a test checks it against every inventory in testdata.

use serde_json::{json, Value};

/// The `$id` of the inventory schema.
pub const INVENTORY_SCHEMA_ID: &str = "https://aclc.invalid/schema/inventory.json";

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// The JSON Schema of a node inventory (`--inventory`).
pub fn inventory_schema() -> Value {
    let roles: Vec<&str> = crate::Role::ALL.iter().map(|r| r.as_str()).collect();
    let user = json!({
        "type": "object",
        "description": "A user of the tailnet.",
        "required": ["id", "name", "email"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "integer", "minimum": 0, "description": "Numeric user id."},
            "name": string("Display or login name."),
            "email": string("Login email; nodes name their owner by it."),
            "roles": {
                "type": "array",
                "items": {"enum": roles},
                "description": "Tailnet roles (needed for autogroup:admin, autogroup:owner, ...).",
            },
            "groups": strings("Groups synced from the identity provider (group:eng@example.com)."),
        },
    });
    let node = json!({
        "type": "object",
        "description": "A node (device): owned by a user or tagged, never both; with an IPv4 address, an IPv6 address or both (IPv4-only and IPv6-only pools of self-hosted control servers).",
        "required": ["name"],
        "anyOf": [
            {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
            {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
        ],
        "additionalProperties": false,
        "properties": {
            "name": string("The node's name, unique in the inventory."),
            "hostname": {"type": ["string", "null"], "description": "The OS hostname, only when it differs from name."},
            "user": {"type": ["string", "null"], "description": "Owner's email for a user-owned node; null for a tagged node."},
            "tags": strings("Tags (tag:...); empty for a user-owned node."),
            "ipv4": {"type": ["string", "null"], "description": "Tailscale IPv4 address; absent (or null) for a node of an IPv6-only pool."},
            "ipv6": {"type": ["string", "null"], "description": "Tailscale IPv6 address; absent (or null) for a node of an IPv4-only pool."},
            "routable_ips": strings("Routes the node advertises."),
            "approved_routes": strings("Routes the control plane approved for the node."),
            "posture": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "Device posture attributes (node:os, custom:tier, ...) to a string, number or boolean.",
            },
        },
    });
    let service = json!({
        "type": "object",
        "description": "A Tailscale Service (svc:name).",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": string("svc:name."),
            "ipv4": {"type": ["string", "null"], "description": "The service's IPv4 virtual address."},
            "ipv6": {"type": ["string", "null"], "description": "The service's IPv6 virtual address."},
            "hosts": strings("Nodes (by name) that advertise the service."),
            "approved_hosts": strings("Hosts an admin approved; autoApprovers.services approves others."),
            "tags": strings("The service's tags: an autoApprovers.services entry keyed by one approves hosts for it."),
        },
    });
    let tailnet = json!({
        "type": "object",
        "description": "Tailnet-wide facts: its name, DNS configuration and settings (other fields are kept).",
        "properties": {
            "name": string("The tailnet's name: the owner's email for a personal tailnet, else usually a domain."),
            "dns": {
                "type": "object",
                "description": "The tailnet's DNS configuration.",
                "properties": {
                    "magic_dns": {"type": "boolean", "description": "MagicDNS on or off."},
                    "nameservers": strings("Global nameservers."),
                    "search_paths": strings("Search domains."),
                    "split_dns": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        "description": "Split DNS: domain -> nameservers.",
                    },
                },
            },
            "settings": {
                "type": "object",
                "description": "Tailnet settings that show up in what nodes receive.",
                "properties": {
                    "devices_auto_updates_on": {"type": ["boolean", "null"], "description": "Whether new devices update automatically."},
                },
            },
        },
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": INVENTORY_SCHEMA_ID,
        "title": "aclc node inventory",
        "description": "The tailnet's users and nodes, as aclc reads them (--inventory).",
        "type": "object",
        "required": ["users", "nodes"],
        "properties": {
            "users": {"type": "array", "items": user, "description": "The tailnet's users."},
            "nodes": {"type": "array", "items": node, "description": "The tailnet's nodes."},
            "registration_order": strings("Node names in the order they joined the tailnet."),
            "tailnet": tailnet,
            "services": {"type": "array", "items": service, "description": "Tailscale Services."},
        },
    })
}
