//! Hostile inputs for the compiler (issue 9): policies whose size is modest but whose naive
//! resolution or compile is exponential or quadratic, each with an inventory to compile against.
//! Shared by `compiler/tests/hostile.rs` (must finish, must be right) and
//! `compiler/benches/hostile.rs` (how fast).

use serde_json::{json, Value};

/// One hostile case: a name, the policy text (JSON, which is HuJSON) and the inventory (JSON).
pub struct Case {
    /// Short name, also the bench id.
    pub name: &'static str,
    /// The policy.
    pub policy: String,
    /// The inventory.
    pub inventory: String,
}

/// An inventory of `nodes` nodes (`100.64.x.y`), the first `routers` of them tagged
/// `tag:router` and serving `10.<hi>.<lo>.0/24` (approved), the rest owned by `nodes / 4`
/// users.
pub fn inventory(nodes: usize, routers: usize) -> String {
    let users: Vec<Value> = (0..(nodes / 4).max(1))
        .map(|i| json!({"id": i + 1, "name": format!("u{i}"), "email": format!("u{i}@example.com"), "roles": []}))
        .collect();
    let user_count = users.len();
    let nodes: Vec<Value> = (0..nodes)
        .map(|i| {
            let router = i < routers;
            let routes: Vec<String> = if router {
                vec![format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255)]
            } else {
                Vec::new()
            };
            json!({
                "name": format!("n{i:06}"),
                "user": if router { Value::Null } else { json!(format!("u{}@example.com", i % user_count)) },
                "tags": if router { json!(["tag:router"]) } else { json!([]) },
                "ipv4": format!("100.{}.{}.{}", 64 + (i >> 16), (i >> 8) & 255, i & 255),
                "ipv6": format!("fd7a:115c:a1e0::{i:x}"),
                "routable_ips": routes,
                "approved_routes": routes,
            })
        })
        .collect();
    let order: Vec<Value> = nodes.iter().map(|n| n["name"].clone()).collect();
    json!({
        "users": users,
        "nodes": nodes,
        "registration_order": order,
        "tailnet": {"name": "example.com"},
    })
    .to_string()
}

/// `defined` tags, groups and hosts, and `refs` rules each naming a tag, a group, a host and
/// a user that are not defined (a user the inventory of `refs` users does not have): every
/// reference an error or warning whose "did you mean" looks among thousands of names.
pub fn many_undefined_names(refs: usize, defined: usize) -> Case {
    let tags: serde_json::Map<String, Value> = (0..defined)
        .map(|i| (format!("tag:t{i}"), json!(["autogroup:admin"])))
        .collect();
    let groups: serde_json::Map<String, Value> = (0..defined)
        .map(|i| (format!("group:g{i}"), json!([format!("u{i}@example.com")])))
        .collect();
    let hosts: serde_json::Map<String, Value> = (0..defined)
        .map(|i| {
            let ip = format!("10.{}.{}.1", (i >> 8) & 255, i & 255);
            (format!("host{i}"), json!(ip))
        })
        .collect();
    let acls: Vec<Value> = (0..refs)
        .map(|i| {
            let n = defined + i;
            json!({
                "action": "accept",
                "src": [format!("group:g{n}"), format!("v{n}@example.com")],
                "dst": [format!("tag:t{n}:22"), format!("host{n}:80")],
            })
        })
        .collect();
    let mut body = json!({"tagOwners": tags, "groups": groups, "hosts": hosts, "acls": acls});
    body["tagOwners"]["tag:router"] = json!(["autogroup:admin"]);
    Case {
        name: "undefined_names_1e4_x_2e3",
        policy: body.to_string(),
        inventory: inventory(4 * refs, 0),
    }
}

fn policy(body: Value) -> String {
    let mut body = body;
    body["tagOwners"] = json!({"tag:router": ["autogroup:admin"]});
    body.to_string()
}

/// `ipset:deep` = `100.64.0.0/10` and `10.0.0.0/8`, minus `ipset:l<depth-1>`, the end of a
/// chain of `depth` sets that each include the one before, down to `ipset:l0` = `10.0.0.0/8`:
/// the whole `10.0.0.0/8` must be removed, at any depth.
pub fn deep_ipset(depth: usize) -> Case {
    let mut sets = serde_json::Map::new();
    sets.insert("ipset:l0".into(), json!(["10.0.0.0/8"]));
    for i in 1..depth {
        sets.insert(format!("ipset:l{i}"), json!([format!("ipset:l{}", i - 1)]));
    }
    sets.insert(
        "ipset:deep".into(),
        json!([
            "100.64.0.0/10",
            "10.0.0.0/8",
            format!("remove ipset:l{}", depth.saturating_sub(1))
        ]),
    );
    Case {
        name: "ipset_deep",
        policy: policy(json!({
            "ipsets": sets,
            "grants": [{"src": ["*"], "dst": ["ipset:deep"], "ip": ["*"]}],
        })),
        inventory: inventory(64, 4),
    }
}

/// `levels` levels of `width` IP sets, each set the union of every set of the level below
/// (`width^levels` paths from the top; `ipset:l0_j` = `10.j.0.0/16`); a grant to `ipset:top`,
/// the last level's first set.
pub fn ipset_dag(levels: usize, width: usize) -> Case {
    let mut sets = serde_json::Map::new();
    for j in 0..width {
        sets.insert(format!("ipset:l0_{j}"), json!([format!("10.{j}.0.0/16")]));
    }
    for level in 1..levels {
        for j in 0..width {
            let below: Vec<String> = (0..width)
                .map(|k| format!("ipset:l{}_{k}", level - 1))
                .collect();
            sets.insert(format!("ipset:l{level}_{j}"), json!(below));
        }
    }
    sets.insert(
        "ipset:top".into(),
        json!([format!("ipset:l{}_0", levels.saturating_sub(1))]),
    );
    Case {
        name: "ipset_dag",
        policy: policy(json!({
            "ipsets": sets,
            "grants": [{"src": ["*"], "dst": ["ipset:top"], "ip": ["*"]}],
        })),
        inventory: inventory(64, 4),
    }
}

/// `count` distinct addresses in `10.0.0.0/8`, none adjacent to another, in a scrambled order.
fn scattered_addresses(count: usize) -> Vec<String> {
    // Multiplying by an odd constant permutes the indexes modulo 2^23.
    (0..count)
        .map(|i| {
            let k = (i.wrapping_mul(0x9E37_79B1) & 0x7F_FFFF) * 2;
            format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)
        })
        .collect()
}

/// `count` hosts, and one grant naming every one of them as a destination.
pub fn many_hosts(count: usize) -> Case {
    let addresses = scattered_addresses(count);
    let hosts: serde_json::Map<String, Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("h{i}"), json!(a)))
        .collect();
    let names: Vec<&String> = hosts.keys().collect();
    Case {
        name: "hosts_1e5",
        policy: policy(json!({
            "hosts": hosts,
            "grants": [{"src": ["*"], "dst": names, "ip": ["tcp:22"]}],
        })),
        inventory: inventory(64, 4),
    }
}

/// One IP set of `count` scattered addresses, and a grant to it.
pub fn big_ipset(count: usize) -> Case {
    Case {
        name: "ipset_1e5_entries",
        policy: policy(json!({
            "ipsets": {"ipset:big": scattered_addresses(count)},
            "grants": [{"src": ["*"], "dst": ["ipset:big"], "ip": ["tcp:22"]}],
        })),
        inventory: inventory(64, 4),
    }
}

/// One ACL with `count` destinations, each an address inside some router's route, compiled
/// against `nodes` nodes of which a tenth are routers.
pub fn many_destinations(count: usize, nodes: usize) -> Case {
    let routers = nodes / 10;
    let dst: Vec<String> = (0..count)
        .map(|i| {
            let r = i % routers.max(1);
            format!(
                "10.{}.{}.{}:22",
                (r >> 8) & 255,
                r & 255,
                1 + (i / routers.max(1)) % 250
            )
        })
        .collect();
    Case {
        name: "destinations_1e4",
        policy: policy(json!({
            "acls": [{"action": "accept", "src": ["*"], "dst": dst}],
        })),
        inventory: inventory(nodes, routers),
    }
}

/// One ACL from `count` source addresses to `count` destination addresses (each inside some
/// router's route), against `nodes` nodes of which a tenth are routers: the routes a rule's
/// sources overlap were found once per destination, O(sources x destinations) (19 s at
/// 40,000 each).
pub fn many_sources_and_destinations(count: usize, nodes: usize) -> Case {
    let routers = (nodes / 10).max(1);
    let address = |i: usize| {
        let r = i % routers;
        format!(
            "10.{}.{}.{}",
            (r >> 8) & 255,
            r & 255,
            1 + (i / routers) % 250
        )
    };
    let src: Vec<String> = (0..count)
        .map(|i| format!("100.{}.{}.{}", 96 + (i >> 16), (i >> 8) & 255, i & 255))
        .collect();
    let dst: Vec<String> = (0..count).map(|i| format!("{}:22", address(i))).collect();
    Case {
        name: "sources_x_destinations_1e4",
        policy: policy(json!({
            "acls": [{"action": "accept", "src": src, "dst": dst}],
        })),
        inventory: inventory(nodes, routers),
    }
}

/// One ACL to one tag on `count` ports, and a test of each port: each test looked for its
/// port through every destination entry was O(tests x entries) (3.8 s at 32,000).
pub fn many_port_tests(count: usize, nodes: usize) -> Case {
    let ports: Vec<String> = (0..count)
        .map(|k| format!("tag:router:{}", 2 * k + 1))
        .collect();
    Case {
        name: "port_tests_1e4",
        policy: policy(json!({
            "tagOwners": {"tag:router": []},
            "acls": [{"action": "accept", "src": ["*"], "dst": ports}],
            "tests": [{"src": "100.64.0.200", "accept": ports}],
        })),
        inventory: inventory(nodes, nodes / 10),
    }
}

/// `count` SSH rules from every member to `tag:router`, each letting in one login of its
/// own, and an SSH test of each login: each login judged against every rule of the
/// destination was O(tests x rules) (36 s at 8,000).
pub fn many_ssh_tests(count: usize, nodes: usize) -> Case {
    let rules: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "action": "accept",
                "src": ["autogroup:member"],
                "dst": ["tag:router"],
                "users": [format!("l{i}")],
            })
        })
        .collect();
    let users = (nodes / 4).max(1);
    let tests: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "src": format!("u{}@example.com", i % users),
                "dst": ["tag:router"],
                "accept": [format!("l{i}")],
                "deny": ["root"],
            })
        })
        .collect();
    Case {
        name: "ssh_tests_8e3",
        policy: policy(json!({"ssh": rules, "sshTests": tests})),
        inventory: inventory(nodes, 20),
    }
}

/// `count` ACL entries, each opening one port of `tag:router`, and a test of each port from
/// the last: each test scanned the rules in order until one opened its port, O(count^2)
/// (40,000 one-port rules under 4,000 tests of 10 ports each took 12.5 s).
pub fn many_one_port_rules(count: usize, nodes: usize) -> Case {
    let rules: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "action": "accept",
                "src": ["*"],
                "dst": [format!("tag:router:{}", i + 1)],
            })
        })
        .collect();
    let accept: Vec<String> = (0..count)
        .rev()
        .map(|i| format!("tag:router:{}", i + 1))
        .collect();
    Case {
        name: "one_port_rules_3e4",
        policy: policy(json!({
            "acls": rules,
            "tests": [{"src": "100.64.0.200", "accept": accept}],
        })),
        inventory: inventory(nodes, nodes / 10),
    }
}

/// One node advertising `count` routes, each approved in the inventory and under an
/// `autoApprovers` prefix of its own: each route tested against every approver prefix, and
/// looked up in the approved list by a scan, was O(count^2) (25 s and 6.5 s at 80,000).
pub fn many_advertised_routes(count: usize) -> Case {
    let routes: Vec<String> = (0..count)
        .map(|i| format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255))
        .collect();
    let approvers: serde_json::Map<String, Value> = routes
        .iter()
        .map(|r| (r.clone(), json!(["tag:router"])))
        .collect();
    let mut inventory: Value = serde_json::from_str(&inventory(4, 1)).unwrap_or_default();
    if let Some(node) = inventory.get_mut("nodes").and_then(|n| n.get_mut(0)) {
        node["routable_ips"] = json!(routes);
        node["approved_routes"] = json!(routes);
    }
    Case {
        name: "advertised_routes_6e4",
        policy: policy(json!({
            "autoApprovers": {"routes": approvers},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        })),
        inventory: inventory.to_string(),
    }
}

/// `count` ACL entries, each with an action Tailscale refuses: every later check asked
/// whether its rule held an earlier error by a scan of all of them, O(count^2) (16 s at
/// 200,000).
pub fn many_broken_rules(count: usize) -> String {
    let rules = vec![r#"{"action":"a","src":["*"],"dst":["*:*"]}"#; count];
    format!(r#"{{"acls":[{}]}}"#, rules.join(","))
}

/// `routes` routers, each serving its own `/24`, and `rules` rules, each from one user to one
/// of those subnets: every rule item is weighed against every route by a naive peer index
/// (which items may show which route to whom), O(routes x rules).
pub fn many_routes_and_rules(routes: usize, rules: usize) -> Case {
    let nodes = routes * 2;
    let users = (nodes / 4).max(1);
    let acls: Vec<Value> = (0..rules)
        .map(|i| {
            let r = i % routes.max(1);
            json!({
                "action": "accept",
                "src": [format!("u{}@example.com", i % users)],
                "dst": [format!("10.{}.{}.0/24:443", (r >> 8) & 255, r & 255)],
            })
        })
        .collect();
    Case {
        name: "routes_1e4_x_rules_1e4",
        policy: policy(json!({ "acls": acls })),
        inventory: inventory(nodes, routes),
    }
}

/// `nodes` exit nodes (`0.0.0.0/0` and `::/0` approved) beside one client, and one rule from
/// the client's user to an IP set of `addrs` single addresses: the inventory, the policy, and
/// the policy with one address added to the set. Every exit node's filter holds every
/// address, and all are equal: the access diff's shared comparison
/// (`compiler/tests/diff_alloc.rs`, the `diff/exit_nodes_ipset_*` bench).
pub fn exit_nodes_ipset(nodes: usize, addrs: usize) -> (String, String, String) {
    let mut list = vec![
        r#"{"name": "client", "user": "a@example.com", "tags": [], "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1", "routable_ips": [], "approved_routes": []}"#.to_string(),
    ];
    list.extend((0..nodes).map(|i| {
        let a = i + 2;
        format!(
            r#"{{"name": "x{i}", "user": null, "tags": ["tag:exit"], "ipv4": "100.64.{}.{}", "ipv6": "fd7a:115c:a1e0::{a:x}", "routable_ips": ["0.0.0.0/0", "::/0"], "approved_routes": ["0.0.0.0/0", "::/0"]}}"#,
            a >> 8,
            a & 255
        )
    }));
    let inventory = format!(
        r#"{{"users": [{{"id": 1, "name": "a", "email": "a@example.com", "roles": []}}], "nodes": [{}], "registration_order": [], "tailnet": {{"name": "example.com", "dns": {{}}, "settings": {{}}}}}}"#,
        list.join(",")
    );
    let entries: Vec<String> = (0..addrs)
        .map(|i| {
            let i = 2 * i;
            format!("\"add 8.{}.{}.{}\"", i >> 16 & 255, i >> 8 & 255, i & 255)
        })
        .collect();
    let policy = |set: &[String]| {
        format!(
            r#"{{"tagOwners": {{"tag:exit": []}}, "ipsets": {{"ipset:big": [{}]}}, "acls": [{{"action": "accept", "src": ["a@example.com"], "dst": ["ipset:big:*"]}}]}}"#,
            set.join(",")
        )
    };
    let old = policy(&entries);
    let mut added = entries;
    added.push("\"add 9.9.9.9\"".to_string());
    (inventory, old, policy(&added))
}
