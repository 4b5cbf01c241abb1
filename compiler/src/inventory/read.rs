//! Reading an inventory's JSON: the raw shapes serde fills, converted field by field with a
//! located error for each problem (all of them, not the first).

use super::*;

/// The inventory as written, before validation.
#[derive(Deserialize)]
pub(super) struct RawInventory {
    pub(super) users: Vec<RawUser>,
    pub(super) nodes: Vec<RawNode>,
    #[serde(default)]
    pub(super) registration_order: Vec<String>,
    #[serde(default)]
    pub(super) tailnet: Tailnet,
    #[serde(default)]
    pub(super) services: Vec<Service>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) email: String,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: String,
    #[serde(default)]
    pub(super) hostname: Option<String>,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) ipv4: Option<String>,
    #[serde(default)]
    pub(super) ipv6: Option<String>,
    #[serde(default)]
    pub(super) routable_ips: Vec<String>,
    #[serde(default)]
    pub(super) approved_routes: Vec<String>,
    #[serde(default)]
    pub(super) posture: BTreeMap<String, serde_json::Value>,
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

pub(super) fn first_of(mut errors: Vec<InventoryError>) -> InventoryError {
    let more = errors.len().saturating_sub(1);
    let mut first = errors.swap_remove(0);
    first.more = more;
    first
}

pub(super) fn convert_user(i: usize, raw: RawUser, errors: &mut Vec<InventoryError>) -> User {
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

pub(super) fn convert_node(
    i: usize,
    raw: RawNode,
    errors: &mut Vec<InventoryError>,
) -> Option<Node> {
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
pub(super) fn check_posture(
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

pub(super) fn invalid_address(path: &str, text: &str) -> InventoryError {
    InventoryError::new(
        InventoryErrorKind::InvalidAddress,
        format!("{path}: invalid IP address \"{text}\""),
    )
}

pub(super) fn convert_prefixes(
    path: &str,
    texts: &[String],
    errors: &mut Vec<InventoryError>,
) -> Vec<IpNet> {
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
pub(super) fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let Some(net) = aclc_policy::model::parse_prefix(text) else {
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
