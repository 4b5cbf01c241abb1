//! Unit tests of the inventory: loading, validation messages, round trips, the corpus.

use super::*;

const VALID: &str = r#"{
  "users": [
    {"id": 1, "name": "odin", "email": "odin@example.com", "roles": ["admin", "owner"]},
    {"id": 2, "name": "thor", "email": "thor@example.org", "roles": []}
  ],
  "nodes": [
    {"name": "bulbasaur", "user": "odin@example.com", "tags": [],
     "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1",
     "routable_ips": [], "approved_routes": []},
    {"name": "squirtle", "hostname": "squirtle-host", "user": null, "tags": ["tag:router"],
     "ipv4": "100.64.0.2", "ipv6": "fd7a:115c:a1e0::2",
     "routable_ips": ["10.33.0.0/16", "0.0.0.0/0", "::/0"],
     "approved_routes": ["10.33.0.0/16"]}
  ],
  "registration_order": ["squirtle", "bulbasaur"],
  "tailnet": {"name": "odin@example.com",
              "dns": {"magic_dns": false, "nameservers": [], "search_paths": [], "split_dns": {}},
              "settings": {}, "future": 1}
}"#;

fn with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(VALID).unwrap();
    edit(&mut v);
    v.to_string()
}

fn error(text: &str) -> InventoryError {
    Inventory::from_json(text).unwrap_err()
}

#[test]
fn loads_valid_inventory() {
    let inv = Inventory::from_json(VALID).unwrap();
    assert_eq!(inv.users().len(), 2);
    assert_eq!(inv.nodes().len(), 2);
    let squirtle = inv.node("squirtle").unwrap();
    assert!(squirtle.is_tagged());
    assert_eq!(squirtle.hostname(), "squirtle-host");
    assert_eq!(inv.node("bulbasaur").unwrap().hostname(), "bulbasaur");
    assert_eq!(
        squirtle.addresses(),
        [
            "100.64.0.2".parse::<IpAddr>().unwrap(),
            "fd7a:115c:a1e0::2".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(squirtle.routable_ips.len(), 3);
    assert_eq!(squirtle.served_routes().count(), 1);
    assert_eq!(inv.registration_rank("squirtle"), Some(0));
    assert_eq!(inv.registration_rank("bulbasaur"), Some(1));
    let owner = inv.owner(inv.node("bulbasaur").unwrap()).unwrap();
    assert!(owner.has_role(Role::Owner) && owner.has_role(Role::Admin));
    assert!(inv.user("thor@example.org").unwrap().roles.is_empty());
    assert!(inv.warnings().is_empty());
    assert_eq!(
        inv.tailnet().extra.get("future"),
        Some(&serde_json::json!(1))
    );
}

#[test]
fn round_trips_through_serde() {
    let inv = Inventory::from_json(VALID).unwrap();
    let text = serde_json::to_string(&inv).unwrap();
    let again: Inventory = serde_json::from_str(&text).unwrap();
    assert_eq!(inv, again);
    let a: serde_json::Value = serde_json::from_str(VALID).unwrap();
    let b: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b);
}

#[test]
fn serde_deserialize_also_validates() {
    let text = with(|v| v["nodes"][1]["name"] = "bulbasaur".into());
    let err = serde_json::from_str::<Inventory>(&text).unwrap_err();
    assert!(err.to_string().contains("duplicate node name"), "{err}");
}

#[test]
fn minimal_inventory_defaults_optional_fields() {
    let inv = Inventory::from_json(
        r#"{"users": [], "nodes": [{"name": "a", "tags": ["tag:x"],
            "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"}]}"#,
    )
    .unwrap();
    assert!(inv.registration_order().is_empty());
    assert_eq!(inv.tailnet().name, "");
    assert_eq!(inv.policy_context().tailnet_domains, None);
}

#[test]
fn invalid_address_names_the_path() {
    let e = error(&with(|v| v["nodes"][1]["ipv4"] = "x".into()));
    assert_eq!(e.kind, InventoryErrorKind::InvalidAddress);
    assert_eq!(e.message, r#"nodes[1].ipv4: invalid IP address "x""#);
    let e = error(&with(|v| v["nodes"][0]["ipv4"] = "fd7a::1".into()));
    assert_eq!(
        e.message,
        r#"nodes[0].ipv4: "fd7a::1" is not an IPv4 address"#
    );
    let e = error(&with(|v| v["nodes"][0]["ipv6"] = "100.64.0.9".into()));
    assert_eq!(
        e.message,
        r#"nodes[0].ipv6: "100.64.0.9" is not an IPv6 address"#
    );
}

#[test]
fn invalid_prefixes() {
    let e = error(&with(|v| {
        v["nodes"][1]["routable_ips"][0] = "10.33.0.0/33".into()
    }));
    assert_eq!(e.kind, InventoryErrorKind::InvalidPrefix);
    assert_eq!(
        e.message,
        r#"nodes[1].routable_ips[0]: invalid prefix "10.33.0.0/33""#
    );
    let e = error(&with(|v| {
        v["nodes"][1]["approved_routes"][0] = "10.33.0.1/16".into()
    }));
    assert_eq!(
        e.message,
        r#"nodes[1].approved_routes[0]: prefix "10.33.0.1/16" has host bits set (did you mean "10.33.0.0/16"?)"#
    );
    let e = error(&with(|v| {
        v["nodes"][1]["routable_ips"][1] = "10.1.2.3".into()
    }));
    assert!(e.message.contains("needs a length"), "{}", e.message);
}

#[test]
fn duplicates_are_refused() {
    let e = error(&with(|v| v["nodes"][1]["name"] = "bulbasaur".into()));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateNodeName);
    assert_eq!(
        e.message,
        r#"nodes[1].name: duplicate node name "bulbasaur" (also nodes[0])"#
    );
    let e = error(&with(|v| {
        v["nodes"][1]["ipv6"] = "fd7a:115c:a1e0::1".into()
    }));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateAddress);
    assert_eq!(
        e.message,
        r#"nodes[1].ipv6: address fd7a:115c:a1e0::1 is already used by node "bulbasaur" (nodes[0])"#
    );
    let e = error(&with(|v| {
        v["users"][1]["email"] = "odin@example.com".into()
    }));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateUser);
    for (field, address) in [
        ("ipv4", "0.0.0.0"),
        ("ipv6", "::"),
        ("ipv6", "::ffff:100.64.0.2"),
        ("ipv4", "127.0.0.1"),
        ("ipv6", "ff02::1"),
        ("ipv4", "255.255.255.255"),
    ] {
        let e = error(&with(|v| v["nodes"][0][field] = address.into()));
        assert_eq!(e.kind, InventoryErrorKind::InvalidAddress, "{address}");
        assert!(e.message.contains("cannot be a device's address"), "{e}");
    }
    // Emails differing only in case are one login to the policy: refused too.
    let e = error(&with(|v| {
        v["users"][1]["email"] = "Odin@Example.com".into()
    }));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateUser);
    assert_eq!(
        e.message,
        r#"users[1].email: duplicate user "Odin@Example.com" (also users[0])"#
    );
    let e = error(&with(|v| v["users"][1]["id"] = 1.into()));
    assert_eq!(
        e.message,
        "users[1].id: duplicate user id 1 (also users[0])"
    );
}

#[test]
fn ownership_rules() {
    let e = error(&with(|v| v["nodes"][0]["user"] = "loki@example.com".into()));
    assert_eq!(e.kind, InventoryErrorKind::UnknownOwner);
    assert_eq!(
        e.message,
        r#"nodes[0].user: unknown user "loki@example.com" (not among users)"#
    );
    let e = error(&with(|v| {
        v["nodes"][0]["tags"] = serde_json::json!(["tag:x"])
    }));
    assert_eq!(e.kind, InventoryErrorKind::Ownership);
    assert!(
        e.message
            .starts_with(r#"nodes[0]: node "bulbasaur" is owned by"#),
        "{}",
        e.message
    );
    let e = error(&with(|v| v["nodes"][1]["tags"] = serde_json::json!([])));
    assert_eq!(
        e.message,
        r#"nodes[1]: node "squirtle" has neither an owner ("user") nor tags"#
    );
}

#[test]
fn tags_and_roles_are_checked() {
    let e = error(&with(|v| {
        v["nodes"][1]["tags"] = serde_json::json!(["router"])
    }));
    assert_eq!(e.kind, InventoryErrorKind::InvalidTag);
    assert!(e
        .message
        .starts_with(r#"nodes[1].tags[0]: invalid tag "router""#));
    // Another tailnet's tag: a node here carrying it would take what rules give that tailnet.
    let e = error(&with(|v| {
        v["nodes"][1]["tags"] = serde_json::json!(["tag://dev/ctl"])
    }));
    assert_eq!(e.kind, InventoryErrorKind::InvalidTag);
    assert!(
        e.message.contains("names another tailnet's tag"),
        "{}",
        e.message
    );
    let e = error(&with(|v| v["users"][0]["roles"][1] = "superuser".into()));
    assert_eq!(e.kind, InventoryErrorKind::UnknownRole);
    assert!(e
        .message
        .starts_with(r#"users[0].roles[1]: unknown role "superuser""#));
}

#[test]
fn registration_order_must_name_known_nodes_once() {
    let e = error(&with(|v| v["registration_order"][1] = "mew".into()));
    assert_eq!(e.kind, InventoryErrorKind::UnknownNode);
    assert_eq!(
        e.message,
        r#"registration_order[1]: unknown node "mew" (not among nodes)"#
    );
    let e = error(&with(|v| v["registration_order"][1] = "squirtle".into()));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateRegistration);
}

#[test]
fn unadvertised_approved_route_is_a_warning() {
    let inv = Inventory::from_json(&with(|v| {
        v["nodes"][1]["approved_routes"] = serde_json::json!(["10.33.0.0/16", "10.44.0.0/16"]);
    }))
    .unwrap();
    let w = inv.warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].kind, InventoryErrorKind::ApprovedRouteNotAdvertised);
    assert_eq!(
        w[0].message,
        r#"nodes[1].approved_routes[1]: route 10.44.0.0/16 is approved but node "squirtle" does not advertise it"#
    );
    assert_eq!(inv.node("squirtle").unwrap().served_routes().count(), 1);
}

#[test]
fn shape_errors_have_a_position_and_unknown_node_fields_are_refused() {
    let e = error("{\"users\": [], \"nodes\": 3}");
    assert_eq!(e.kind, InventoryErrorKind::Syntax);
    assert!(e.message.starts_with("line 1, column "), "{}", e.message);
    assert!(e.message.contains("invalid type"), "{}", e.message);
    let e = error(&with(|v| {
        v["nodes"][0]["aproved_routes"] = serde_json::json!([])
    }));
    assert!(
        e.message.contains("unknown field `aproved_routes`"),
        "{}",
        e.message
    );
    let e = error("not json");
    assert_eq!(e.kind, InventoryErrorKind::Syntax);
}

#[test]
fn all_problems_are_counted() {
    let e = error(&with(|v| {
        v["nodes"][0]["ipv4"] = "x".into();
        v["nodes"][1]["ipv4"] = "y".into();
    }));
    assert_eq!(e.more(), 1);
    assert_eq!(
        e.to_string(),
        r#"nodes[0].ipv4: invalid IP address "x" (+1 more)"#
    );
}

#[test]
fn policy_context_from_tailnet_and_users() {
    let inv = Inventory::from_json(VALID).unwrap();
    let ctx = inv.policy_context();
    assert_eq!(ctx.tailnet_domains, Some(vec!["example.com".to_string()]));
    assert_eq!(
        ctx.user_logins,
        Some(vec![
            "odin@example.com".to_string(),
            "thor@example.org".to_string()
        ])
    );
}

#[test]
fn tailnet_domain() {
    let domain = |name: &str| {
        Tailnet {
            name: name.into(),
            ..Tailnet::default()
        }
        .domain()
    };
    assert_eq!(domain("odin@example.com").as_deref(), Some("example.com"));
    assert_eq!(domain("Example.COM").as_deref(), Some("example.com"));
    assert_eq!(domain("tail1234.ts.net"), None);
    assert_eq!(domain("odin"), None);
    assert_eq!(domain(""), None);
    assert_eq!(domain("@example.com"), None);
    assert_eq!(domain("my tailnet.com"), None);
}

#[test]
fn loads_every_corpus_topology() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance/cases");
    let mut count = 0;
    for category in std::fs::read_dir(&dir).unwrap() {
        for case in std::fs::read_dir(category.unwrap().path()).unwrap() {
            let path = case.unwrap().path();
            let case: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut inventory = case["topology"].clone();
            inventory["tailnet"] = case["tailnet"].clone();
            let inv = Inventory::from_json(&inventory.to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(inv.warnings().is_empty(), "{}", path.display());
            assert_eq!(
                inv.policy_context().tailnet_domains,
                Some(vec!["example.com".to_string()])
            );
            count += 1;
        }
    }
    assert!(count > 600, "only {count} cases found");
}

#[test]
fn posture_attributes_are_optional_and_checked() {
    // Values are strings, numbers or booleans (kb/1288); keys are namespaced.
    let text = with(|v| {
        v["nodes"][0]["posture"] = serde_json::json!({
            "node:os": "linux", "node:tsVersion": "1.80.0",
            "custom:tier": "prod", "node:tsAutoUpdate": true, "falcon:ztaScore": 85
        })
    });
    let inv = Inventory::from_json(&text).unwrap();
    let node = inv.node("bulbasaur").unwrap();
    assert_eq!(node.posture.len(), 5);
    assert_eq!(
        node.posture.get("node:tsAutoUpdate"),
        Some(&serde_json::json!(true))
    );
    assert!(inv.node("squirtle").unwrap().posture.is_empty());
    // Round trip: posture kept, and absent where there was none.
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&inv).unwrap()).unwrap();
    assert_eq!(
        again,
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    );

    let e = error(&with(|v| {
        v["nodes"][1]["posture"] = serde_json::json!({"os": "linux"})
    }));
    assert_eq!(e.kind, InventoryErrorKind::InvalidPosture);
    assert_eq!(
        e.message,
        r#"nodes[1].posture: attribute "os" has no namespace (write it as namespace:name, e.g. "node:os" or "custom:tier")"#
    );
    let e = error(&with(|v| {
        v["nodes"][0]["posture"] = serde_json::json!({"custom:x": ["a"]})
    }));
    assert_eq!(e.kind, InventoryErrorKind::InvalidPosture);
    assert_eq!(
        e.message,
        r#"nodes[0].posture["custom:x"]: ["a"] is not a string, number or boolean"#
    );
}

#[test]
fn single_family_nodes() {
    let text = with(|v| {
        v["nodes"][0].as_object_mut().unwrap().remove("ipv6");
        v["nodes"][1]["ipv4"] = serde_json::Value::Null;
    });
    let inv = Inventory::from_json(&text).unwrap();
    let v4_only = inv.node("bulbasaur").unwrap();
    assert_eq!(v4_only.ipv4, Some("100.64.0.1".parse().unwrap()));
    assert_eq!(v4_only.ipv6, None);
    assert_eq!(
        v4_only.addresses(),
        ["100.64.0.1".parse::<IpAddr>().unwrap()]
    );
    let v6_only = inv.node("squirtle").unwrap();
    assert_eq!(v6_only.ipv4, None);
    assert_eq!(
        v6_only.addresses(),
        ["fd7a:115c:a1e0::2".parse::<IpAddr>().unwrap()]
    );
    // The missing family is left out of the JSON, and reads back the same.
    let json = serde_json::to_value(v6_only).unwrap();
    assert!(json.get("ipv4").is_none());
    assert_eq!(json["ipv6"], "fd7a:115c:a1e0::2");
    let again = Inventory::from_json(&serde_json::to_string(&inv).unwrap()).unwrap();
    assert_eq!(again.nodes(), inv.nodes());
}

#[test]
fn a_node_needs_an_address() {
    let e = error(&with(|v| {
        let node = v["nodes"][1].as_object_mut().unwrap();
        node.remove("ipv4");
        node.remove("ipv6");
    }));
    assert_eq!(e.kind, InventoryErrorKind::NoAddress);
    assert_eq!(
        e.message,
        r#"nodes[1]: node "squirtle" has no address (give it "ipv4", "ipv6" or both)"#
    );
    let e = error(&with(|v| {
        v["nodes"][0]["ipv4"] = serde_json::Value::Null;
        v["nodes"][0]["ipv6"] = serde_json::Value::Null;
    }));
    assert_eq!(e.kind, InventoryErrorKind::NoAddress);
    // Built from parts, the same check.
    let inv = Inventory::from_json(VALID).unwrap();
    let mut nodes: Vec<Node> = inv.nodes().iter().map(|n| Node::clone(n)).collect();
    nodes[0].ipv4 = None;
    nodes[0].ipv6 = None;
    let e = Inventory::new(
        inv.users().to_vec(),
        nodes,
        Vec::new(),
        inv.tailnet().clone(),
    )
    .unwrap_err();
    assert_eq!(e.kind, InventoryErrorKind::NoAddress);
}

#[test]
fn duplicate_addresses_across_single_family_nodes() {
    let e = error(&with(|v| {
        v["nodes"][0].as_object_mut().unwrap().remove("ipv4");
        v["nodes"][1].as_object_mut().unwrap().remove("ipv4");
        v["nodes"][1]["ipv6"] = "fd7a:115c:a1e0::1".into();
    }));
    assert_eq!(e.kind, InventoryErrorKind::DuplicateAddress);
    assert_eq!(
        e.message,
        r#"nodes[1].ipv6: address fd7a:115c:a1e0::1 is already used by node "bulbasaur" (nodes[0])"#
    );
}

#[test]
fn synced_group_names_are_lowercased() {
    // "Tailscale treats synced group names as lowercase" (docs, "ACL policy examples"): an
    // inventory naming one in capitals holds it as the policy reads it.
    let text = with(|v| {
        v["users"][0]["groups"] =
            serde_json::json!(["Finance Team@Example.com", "group:Eng@example.com"]);
    });
    let inv = Inventory::from_json(&text).unwrap();
    assert_eq!(
        inv.synced_groups(),
        ["group:eng@example.com", "group:finance team@example.com"]
    );
}
