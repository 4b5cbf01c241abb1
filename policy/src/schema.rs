//! A JSON Schema (draft 2020-12) of the policy file, built from the key lists the lowering
//! reads, so a field the lowering knows is a property of the schema (a test checks that every
//! property has a shape and a description). For editors: hover text and completion.
//!
//! The schema is strict on spelling where the lowering refuses unknown fields; a field written
//! in another case, which aclc accepts with a warning, is accepted and marked deprecated.

use serde_json::{json, Map, Value};

use crate::lower::{
    ACL_KEYS, APP_CONNECTORS, APP_CONNECTOR_KEYS, ATTR_CONFIG_KEYS, AUTO_APPROVER_KEYS,
    EXTERNAL_TAILNET_KEYS, GRANT_KEYS, NODE_ATTR_KEYS, SSH_KEYS, SSH_TEST_KEYS, TEST_KEYS,
    TOP_LEVEL,
};

/// The `$id` of the policy schema.
pub const POLICY_SCHEMA_ID: &str = "https://aclc.invalid/schema/policy.json";

/// The JSON Schema of a Tailscale policy file (HuJSON: comments and trailing commas are not
/// part of the schema; editors that read `jsonc` handle them).
pub fn policy_schema() -> Value {
    let mut schema = object(TOP_LEVEL, top_level);
    if let Some(o) = schema.as_object_mut() {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert("$id".into(), json!(POLICY_SCHEMA_ID));
        o.insert("title".into(), json!("Tailscale policy file"));
        o.insert(
            "description".into(),
            json!("A Tailscale policy file (tailnet policy / ACLs), as aclc reads it."),
        );
    }
    schema
}

/// An object whose properties are exactly `keys`, each shaped by `shape` (a key `shape` does
/// not know gets an empty, description-less schema, which the tests refuse).
///
/// As the lowering reads them: `null` is an absent field (but for the ones that must be
/// there: `action` and a test's `src`), and a key in another case is the key (Tailscale's
/// decoder matches field names without case; aclc warns, `aclc::key_case`), marked deprecated
/// so an editor strikes it through instead of calling the policy wrong.
fn object(keys: &[&str], shape: fn(&str) -> Option<Value>) -> Value {
    let mut properties = Map::new();
    let mut cased = Map::new();
    for k in keys {
        let mut s = shape(k).unwrap_or_else(|| json!({}));
        if !matches!(*k, "action" | "src") {
            nullable(&mut s);
        }
        let spelled: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|o| o.eq_ignore_ascii_case(k))
            .collect();
        let mut other = s.clone();
        if let Some(o) = other.as_object_mut() {
            let written: Vec<String> = spelled.iter().map(|w| format!("\"{w}\"")).collect();
            o.insert("deprecated".into(), json!(true));
            o.insert(
                "deprecationMessage".into(),
                json!(format!(
                    "Tailscale accepts it, but write {} as documented",
                    written.join(" or ")
                )),
            );
        }
        cased.insert(any_case(k, &spelled), other);
        properties.insert(k.to_string(), s);
    }
    json!({
        "type": "object",
        "properties": properties,
        "patternProperties": cased,
        "additionalProperties": false,
    })
}

/// A pattern matching `key` in any case but the `spelled` ones (the documented spellings:
/// `^(?!(?:acls)$)[aA][cC][lL][sS]$`).
fn any_case(key: &str, spelled: &[&str]) -> String {
    let mut pattern = format!("^(?!(?:{})$)", spelled.join("|"));
    for c in key.chars() {
        if c.is_ascii_alphabetic() {
            pattern.push('[');
            pattern.push(c.to_ascii_lowercase());
            pattern.push(c.to_ascii_uppercase());
            pattern.push(']');
        } else {
            pattern.push(c);
        }
    }
    pattern.push('$');
    pattern
}

/// `schema` accepting `null` as well (its `type` widened, or `null` added to its `enum`).
fn nullable(schema: &mut Value) {
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    if let Some(t) = o.get_mut("type") {
        match t {
            Value::String(one) => *t = json!([one.clone(), "null"]),
            Value::Array(types) if !types.contains(&json!("null")) => types.push(json!("null")),
            _ => {}
        }
    } else if let Some(Value::Array(values)) = o.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
}

/// `schema` with a description.
fn described(mut schema: Value, description: &str) -> Value {
    if let Some(o) = schema.as_object_mut() {
        o.insert("description".into(), json!(description));
    }
    schema
}

/// An array of strings (`null` reads as empty).
fn strings(description: &str) -> Value {
    json!({
        "type": ["array", "null"],
        "items": {"type": "string"},
        "description": description,
    })
}

/// A string.
fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A boolean.
fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

/// An array of `item` (`null` reads as empty).
fn array_of(item: Value, description: &str) -> Value {
    json!({"type": ["array", "null"], "items": item, "description": description})
}

/// A map whose keys match `pattern` and whose values are lists of strings.
fn named_lists(pattern: &str, description: &str, value: &str) -> Value {
    json!({
        "type": "object",
        "patternProperties": {pattern: strings(value)},
        "additionalProperties": false,
        "description": description,
    })
}

/// A rule's action: one of `names` (the lowering trims whitespace around it; editors offer the
/// examples as completions).
fn action(names: &[&str], description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^\\s*({})\\s*$", names.join("|")),
        "examples": names,
        "description": description,
    })
}

/// A protocol: a name or number as a string, or a bare number.
fn protocol(description: &str) -> Value {
    json!({"type": ["string", "integer"], "description": description})
}

fn top_level(key: &str) -> Option<Value> {
    Some(match key {
        "acls" => array_of(
            described(object(ACL_KEYS, acl), "An ACL rule."),
            "Legacy access rules: sources may reach destination host:port pairs.",
        ),
        "grants" => array_of(
            described(object(GRANT_KEYS, grant), "A grant."),
            "Access rules: network access (ip) and application capabilities (app) from src to dst.",
        ),
        "groups" => named_lists(
            "^group:",
            "Groups of users: group:name -> members.",
            "The group's members (users, other groups are not allowed).",
        ),
        "hosts" => json!({
            "type": "object",
            "additionalProperties": string("An IP address or prefix."),
            "description": "Named addresses: name -> IP address or prefix.",
        }),
        "tagOwners" => named_lists(
            "^tag:",
            "Tags and who may apply them: tag:name -> owners.",
            "Who may apply the tag (users, groups, tags, autogroups).",
        ),
        "autoApprovers" => described(
            object(AUTO_APPROVER_KEYS, auto_approvers),
            "Who may advertise routes, exit nodes and services without manual approval.",
        ),
        "ssh" => array_of(
            described(object(SSH_KEYS, ssh), "An SSH rule."),
            "Tailscale SSH rules: who may log in to which nodes as which users.",
        ),
        "nodeAttrs" => array_of(
            described(object(NODE_ATTR_KEYS, node_attr), "A node attribute rule."),
            "Attributes (capabilities) applied to nodes.",
        ),
        "tests" => array_of(
            described(object(TEST_KEYS, network_test), "A network access test."),
            "Access tests run when the policy is saved.",
        ),
        "sshTests" => array_of(
            described(object(SSH_TEST_KEYS, ssh_test), "An SSH access test."),
            "SSH access tests run when the policy is saved.",
        ),
        "postures" => named_lists(
            "^posture:",
            "Device postures: posture:name -> conditions.",
            "Conditions such as `node:os == 'macos'`, all of which must hold.",
        ),
        "defaultSrcPosture" => strings("Postures applied to rules without their own srcPosture."),
        "ipsets" => named_lists(
            "^ipset:",
            "Named sets of addresses: ipset:name -> entries.",
            "Entries: a host, prefix or alias, optionally prefixed with `add ` or `remove `.",
        ),
        "derpMap" => json!({
            "type": "object",
            "description": "A custom DERP map (passed to nodes; aclc checks its fields' types).",
        }),
        "disableIPv4" => boolean("Stop assigning Tailscale IPv4 addresses."),
        "OneCGNATRoute" | "oneCGNATRoute" => json!({
            "enum": ["", "mac-always", "mac-never"],
            "description": "Whether macOS nodes route the whole CGNAT range (100.64.0.0/10) to Tailscale.",
        }),
        "randomizeClientPort" => boolean("Have nodes use a random UDP port instead of 41641."),
        "extraDNSRecords" => array_of(
            json!({
                "type": "object",
                "properties": {
                    "Name": {"type": "string", "description": "The record's name."},
                    "Type": {"type": "string", "description": "The record type (A or AAAA when omitted)."},
                    "Value": {"type": "string", "description": "The record's value, an IP address."},
                },
            }),
            "Extra MagicDNS records (a section Tailscale enables per tailnet; aclc does not verify it).",
        ),
        "externalTailnets" => json!({
            "type": "object",
            "additionalProperties": described(
                object(EXTERNAL_TAILNET_KEYS, external_tailnet),
                "Another tailnet, by the alias rules use (`group://alias/name`, `tag://alias/name`).",
            ),
            "description": "Declarative node sharing (alpha): the tailnets this one shares with.",
        }),
        "attrConfig" => json!({
            "type": "object",
            "additionalProperties": described(
                object(ATTR_CONFIG_KEYS, attr_config),
                "How a custom posture attribute is typed and shared.",
            ),
            "description": "Custom posture attributes: name -> configuration.",
        }),
        _ => return None,
    })
}

fn acl(key: &str) -> Option<Value> {
    Some(match key {
        "action" => action(&["accept"], "Always \"accept\"."),
        "src" => strings("Sources: users, groups, tags, hosts, IPs, autogroups."),
        "dst" => strings("Destinations as host:ports (`tag:web:443`, `*:*`)."),
        "users" => strings("Legacy spelling of src."),
        "ports" => strings("Legacy spelling of dst."),
        "proto" => protocol(
            "IP protocol: a name (tcp, udp, icmp, ...) or number; default TCP, UDP and ICMP.",
        ),
        "srcPosture" => strings("Postures a source must satisfy."),
        _ => return None,
    })
}

fn grant(key: &str) -> Option<Value> {
    Some(match key {
        "src" => strings("Sources: users, groups, tags, hosts, IPs, autogroups."),
        "dst" => strings("Destinations: tags, hosts, IPs, autogroups, services."),
        "ip" => strings("Network access: `*`, ports, or proto:ports (`tcp:443`, `icmp:*`)."),
        "app" => json!({
            "type": "object",
            "additionalProperties": array_of(json!({}), "The capability's values (any JSON; Tailscale passes them on as written)."),
            "description": "Application capabilities: capability name -> array of values.",
        }),
        "via" => {
            strings("Tags of the routers (exit nodes, subnet routers) the access goes through.")
        }
        "srcPosture" => strings("Postures a source must satisfy."),
        _ => return None,
    })
}

fn auto_approvers(key: &str) -> Option<Value> {
    Some(match key {
        "routes" => json!({
            "type": "object",
            "additionalProperties": strings("Who may advertise the route."),
            "description": "Subnet routes: prefix -> who may advertise it.",
        }),
        "exitNode" => strings("Who may advertise an exit node."),
        "services" => json!({
            "type": "object",
            "additionalProperties": strings("Who may host the service."),
            "description": "Services: svc:name -> who may host it.",
        }),
        _ => return None,
    })
}

fn ssh(key: &str) -> Option<Value> {
    Some(match key {
        "action" => action(
            &["accept", "check"],
            "accept, or check (re-authenticate every checkPeriod).",
        ),
        "src" => strings("Sources: users, groups, tags, autogroups."),
        "dst" => strings("Destination nodes: tags, autogroup:self, users, hosts."),
        "users" => strings("Local users: names, root, autogroup:nonroot, localpart:*@domain."),
        "checkPeriod" => string("For check: `always` or a duration such as `12h`."),
        "acceptEnv" => strings("Environment variables (globs allowed) the client may send."),
        "srcPosture" => strings("Postures a source must satisfy."),
        "recorder" => strings("Tags of the session recorders."),
        "enforceRecorder" => boolean("Refuse the session when no recorder is reachable."),
        _ => return None,
    })
}

fn node_attr(key: &str) -> Option<Value> {
    Some(match key {
        "target" => strings("Nodes the attributes apply to."),
        "attr" => strings("Node attributes (capabilities)."),
        "app" => json!({
            "type": "object",
            "properties": {
                APP_CONNECTORS: array_of(
                    described(app_connector(), "An app connector."),
                    "App connectors: domains routed through connector nodes.",
                ),
            },
            "additionalProperties": array_of(json!({}), "The capability's values."),
            "description": "Application capabilities: capability name -> array of values.",
        }),
        "ipPool" => strings("Prefixes nodes take their Tailscale addresses from."),
        _ => return None,
    })
}

/// An entry of `tailscale.com/app-connectors` (unknown fields are warnings, not errors).
fn app_connector() -> Value {
    let properties: Map<String, Value> = APP_CONNECTOR_KEYS
        .iter()
        .map(|k| {
            let shape = match *k {
                "name" => string("The app's name."),
                "connectors" => strings("Tags of the connector nodes."),
                "domains" => {
                    strings("Domains (`*.example.com` allowed) routed via the connectors.")
                }
                "routes" => strings("Prefixes routed via the connectors."),
                "presetAppID" => string("The admin console's preset app."),
                _ => json!({}),
            };
            (k.to_string(), shape)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

fn network_test(key: &str) -> Option<Value> {
    Some(match key {
        "src" => string("The source: a user, tag, host or IP."),
        "user" => string("Legacy spelling of src."),
        "srcPostureAttrs" => json!({
            "type": "object",
            "description": "Posture attributes of the source device.",
        }),
        "proto" => protocol("IP protocol of the tested packets."),
        "accept" => strings("Destinations (host:port) that must be allowed."),
        "allow" => strings("Legacy spelling of accept."),
        "deny" => strings("Destinations (host:port) that must be denied."),
        _ => return None,
    })
}

fn ssh_test(key: &str) -> Option<Value> {
    Some(match key {
        "src" => string("The source: a user or tag."),
        "dst" => strings("Destination nodes."),
        "accept" => strings("Local users the source may log in as, by an accept or a check rule, on every destination."),
        "check" => strings("Local users the source may log in as by a check rule (an accept rule does not satisfy it)."),
        "deny" => strings("Local users the source may not log in as."),
        "srcPostureAttrs" => json!({
            "type": "object",
            "description": "Posture attributes of the source device.",
        }),
        _ => return None,
    })
}

fn external_tailnet(key: &str) -> Option<Value> {
    Some(match key {
        "externalID" => json!({"type": "string", "description": "The other tailnet's ID."}),
        "allowIncomingConnections" => {
            boolean("Whether rules here may grant the other tailnet's users and devices access.")
        }
        "allowExternalReferencesTo" => {
            strings("This tailnet's groups and tags the other tailnet's rules may name.")
        }
        _ => return None,
    })
}

fn attr_config(key: &str) -> Option<Value> {
    Some(match key {
        "type" => json!({
            "enum": ["string", "bool", "number"],
            "description": "The attribute's type.",
        }),
        "allowSetByNode" => boolean("Whether the node itself may set the attribute."),
        "broadcastToPeers" => strings("Peers the attribute is sent to."),
        _ => return None,
    })
}
