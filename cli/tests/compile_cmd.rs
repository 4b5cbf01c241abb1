//! Drives `aclc compile` on the bundled example: the JSON contract, `--node`, exit codes, the
//! refusal document, standard input and the human table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::{aclc_in, examples, json, scratch, stderr, stdout};
use serde_json::{json, Value};

/// `aclc compile POLICY --inventory inventory.json EXTRA...` in the examples folder.
fn compile_example(policy: &str, extra: &[&str]) -> Output {
    let mut args = vec!["compile", policy, "--inventory", "inventory.json"];
    args.extend_from_slice(extra);
    aclc_in(&examples(), &args, None)
}

/// The example compiled, as JSON (`{"nodes": {...}}`), with the exit status checked.
fn compiled_example(extra: &[&str]) -> Value {
    let o = compile_example("policy.hujson", extra);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json(&o)
}

/// The node names of a `{"nodes": {...}}` document.
fn node_names(out: &Value) -> Vec<&str> {
    out["nodes"]
        .as_object()
        .unwrap_or_else(|| panic!("no nodes object: {out}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// The `DstPorts` entry for `ip` and one port range.
fn dst(ip: &str, first: u16, last: u16) -> Value {
    json!({"IP": ip, "Ports": {"First": first, "Last": last}})
}

const INVENTORY_NODES: [&str; 7] = [
    "alice-laptop",
    "bob-laptop",
    "carol-desktop",
    "db-1",
    "exit-1",
    "office-router",
    "web-1",
];

#[test]
fn json_has_the_corpus_shape() {
    let out = compiled_example(&["--format", "json"]);
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["nodes"],
        "{out}"
    );
    let mut names = node_names(&out);
    names.sort_unstable();
    assert_eq!(names, INVENTORY_NODES);
    let known: BTreeSet<&str> = [
        "packet_filter_rules",
        "ssh_rules",
        "addresses",
        "allowed_ips",
        "primary_routes",
        "cap_map",
        "peers",
    ]
    .into();
    for (name, node) in out["nodes"].as_object().unwrap() {
        let node = node.as_object().unwrap();
        for key in [
            "packet_filter_rules",
            "ssh_rules",
            "addresses",
            "allowed_ips",
        ] {
            assert!(node[key].is_array(), "{name}.{key}: {}", node[key]);
        }
        assert!(node["peers"].is_object(), "{name}.peers");
        for key in node.keys() {
            assert!(known.contains(key.as_str()), "{name}: unexpected key {key}");
        }
        if let Some(primary) = node.get("primary_routes") {
            assert!(primary.is_array(), "{name}.primary_routes: {primary}");
        }
        for (peer, info) in node["peers"].as_object().unwrap() {
            assert!(info["allowed_ips"].is_array(), "{name} -> {peer}: {info}");
        }
    }
}

#[test]
fn json_holds_the_known_rules_of_the_example() {
    let out = compiled_example(&[]);
    let nodes = &out["nodes"];
    let carol = ["100.64.0.3", "fd7a:115c:a1e0::3"];
    let eng = [
        "100.64.0.1",
        "100.64.0.2",
        "fd7a:115c:a1e0::1",
        "fd7a:115c:a1e0::2",
    ];
    let ops_everywhere = json!({"SrcIPs": carol, "DstPorts": [dst("*", 0, 65535)]});

    // db-1: the web servers' grant on tcp:5432, then operations' `*:*`.
    assert_eq!(
        nodes["db-1"]["packet_filter_rules"],
        json!([
            {"SrcIPs": ["100.64.1.1", "fd7a:115c:a1e0::101"],
             "DstPorts": [dst("100.64.1.2", 5432, 5432), dst("fd7a:115c:a1e0::102", 5432, 5432)],
             "IPProto": [6]},
            ops_everywhere,
        ])
    );
    assert_eq!(
        nodes["db-1"]["addresses"],
        json!(["100.64.1.2/32", "fd7a:115c:a1e0::102/128"])
    );
    let mut db_peers: Vec<&String> = nodes["db-1"]["peers"].as_object().unwrap().keys().collect();
    db_peers.sort_unstable();
    assert_eq!(db_peers, ["carol-desktop", "web-1"]);

    // web-1: the dashboard capability for operations (an app grant) and HTTP(S) for eng.
    let web_rules = nodes["web-1"]["packet_filter_rules"].as_array().unwrap();
    assert!(
        web_rules.contains(&json!({
            "SrcIPs": carol,
            "CapGrant": [{"Dsts": ["100.64.1.1/32", "fd7a:115c:a1e0::101/128"],
                          "CapMap": {"example.com/cap/dashboard": [{"role": "admin"}]}}],
        })),
        "{web_rules:#?}"
    );
    assert!(
        web_rules.contains(&json!({
            "SrcIPs": eng,
            "DstPorts": [dst("100.64.1.1", 80, 80), dst("100.64.1.1", 443, 443),
                         dst("fd7a:115c:a1e0::101", 80, 80), dst("fd7a:115c:a1e0::101", 443, 443)],
        })),
        "{web_rules:#?}"
    );

    // office-router: serves the office LAN (approved by autoApprovers) and is its primary;
    // engineers reach the LAN on tcp:443 and icmp, and the build server on 22.
    let router = &nodes["office-router"];
    assert_eq!(
        router["allowed_ips"],
        json!([
            "100.64.2.1/32",
            "fd7a:115c:a1e0::201/128",
            "192.168.10.0/24"
        ])
    );
    assert_eq!(router["primary_routes"], json!(["192.168.10.0/24"]));
    let router_rules = router["packet_filter_rules"].as_array().unwrap();
    for rule in [
        json!({"SrcIPs": eng, "DstPorts": [dst("192.168.10.0/24", 443, 443)], "IPProto": [6]}),
        json!({"SrcIPs": eng, "DstPorts": [dst("192.168.10.0/24", 0, 65535)], "IPProto": [1]}),
        json!({"SrcIPs": eng, "DstPorts": [dst("192.168.10.20", 22, 22)]}),
        ops_everywhere.clone(),
    ] {
        assert!(
            router_rules.contains(&rule),
            "{rule} not in {router_rules:#?}"
        );
    }

    // alice sees the router with the route it is primary for.
    assert_eq!(
        nodes["alice-laptop"]["peers"]["office-router"],
        json!({"allowed_ips": ["100.64.2.1/32", "fd7a:115c:a1e0::201/128", "192.168.10.0/24"],
               "primary_routes": ["192.168.10.0/24"]})
    );
    // alice reaches her own devices (autogroup:self).
    assert!(nodes["alice-laptop"]["packet_filter_rules"]
        .as_array()
        .unwrap()
        .contains(&json!({"SrcIPs": ["100.64.0.1", "fd7a:115c:a1e0::1"],
                          "DstPorts": [dst("100.64.0.1", 0, 65535),
                                       dst("fd7a:115c:a1e0::1", 0, 65535)]})));

    // exit-1: exit routes in its allowed_ips, never primary routes; it receives every rule's
    // destinations (as Tailscale's control server sends an approved exit node), not only
    // ops' rule to it.
    let exit = &nodes["exit-1"];
    assert_eq!(
        exit["allowed_ips"],
        json!([
            "100.64.2.2/32",
            "fd7a:115c:a1e0::202/128",
            "0.0.0.0/0",
            "::/0"
        ])
    );
    assert!(exit.get("primary_routes").is_none(), "{exit}");
    let rules = exit["packet_filter_rules"].as_array().unwrap();
    assert!(rules.contains(&ops_everywhere), "{exit}");
    let entries: Vec<&Value> = rules
        .iter()
        .flat_map(|r| r["DstPorts"].as_array().unwrap())
        .collect();
    // db-1's port 5432, on both of its addresses, and the office subnet's 443.
    for want in [
        dst("100.64.1.2", 5432, 5432),
        dst("fd7a:115c:a1e0::102", 5432, 5432),
        dst("192.168.10.0/24", 443, 443),
    ] {
        assert!(entries.contains(&&want), "{want} not in {exit}");
    }
}

#[test]
fn default_format_is_json() {
    let default = compile_example("policy.hujson", &[]);
    let explicit = compile_example("policy.hujson", &["--format", "json"]);
    assert_eq!(default.status.code(), Some(0), "{}", stderr(&default));
    assert_eq!(stdout(&default), stdout(&explicit));
    assert!(stdout(&default).starts_with("{\"nodes\":"));
}

#[test]
fn node_flag_restricts_the_output() {
    let all = compiled_example(&[]);
    let one = compiled_example(&["--node", "db-1"]);
    assert_eq!(node_names(&one), ["db-1"]);
    assert_eq!(one["nodes"]["db-1"], all["nodes"]["db-1"]);

    let two = compiled_example(&["--node", "web-1", "--node", "office-router"]);
    let mut names = node_names(&two);
    names.sort_unstable();
    assert_eq!(names, ["office-router", "web-1"]);
    for name in names {
        assert_eq!(two["nodes"][name], all["nodes"][name], "{name}");
    }

    // A node asked for twice is written once (a JSON object names a key once).
    let o = compile_example("policy.hujson", &["--node", "db-1", "--node", "db-1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("\"db-1\":").count(), 1, "{}", stdout(&o));

    let o = compile_example("policy.hujson", &["--node", "exit-1", "--format", "human"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("node exit-1  "), "{text}");
    assert_eq!(text.matches("\nnode ").count(), 0, "{text}");
}

#[test]
fn unknown_node_exits_1() {
    let o = compile_example(
        "policy.hujson",
        &["--node", "db-1", "--node", "no-such-node"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("unknown node \"no-such-node\""),
        "{}",
        stderr(&o)
    );
    let out = json(&o);
    assert!(out.get("nodes").is_none(), "{out}");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-node"));

    let o = compile_example(
        "policy.hujson",
        &["--node", "no-such-node", "--format", "human"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("unknown node \"no-such-node\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn refused_policy_exits_2_with_the_error_object() {
    let o = compile_example("invalid.hujson", &["--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = json(&o);
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["error"],
        "{out}"
    );
    let error = &out["error"];
    // Tailscale's own words for the first mistake.
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("action=\"deny\" is not supported"),
        "{message}"
    );
    let diagnostics = error["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 5, "{out}");
    let messages: Vec<&str> = diagnostics
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(
            &"[ssh] example.org is not associated with this Tailnet and cannot be used in \
              user:*@<domain> expressions"
        ),
        "{messages:?}"
    );
    for d in diagnostics {
        assert_eq!(d["severity"], "error", "{d}");
        assert_eq!(d["file"], "invalid.hujson", "{d}");
        assert!(d["line"].as_u64().unwrap() > 0, "{d}");
    }
    assert_eq!(diagnostics[0]["line"], 12);

    let o = compile_example("invalid.hujson", &["--format", "human"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(err.contains("action=\"deny\" is not supported"), "{err}");
    assert!(err.contains("invalid.hujson:12:"), "{err}");
    assert!(
        err.ends_with("invalid.hujson: policy refused, nothing compiled\n"),
        "{err}"
    );
}

#[test]
fn unreadable_inputs_exit_1() {
    let examples = examples();
    let policy = examples.join("policy.hujson");
    let policy = policy.to_str().unwrap();
    let dir = scratch();
    std::fs::write(dir.join("broken.json"), "{\"users\": [").unwrap();
    let inventory = std::fs::read_to_string(examples.join("inventory.json")).unwrap();
    std::fs::write(
        dir.join("bad-ip.json"),
        inventory.replace("\"100.64.1.2\"", "\"100.64.1.300\""),
    )
    .unwrap();
    std::fs::write(
        dir.join("duplicate.json"),
        inventory.replace("\"name\": \"db-1\"", "\"name\": \"web-1\""),
    )
    .unwrap();
    for (inventory, says) in [
        ("missing.json", "missing.json"),
        ("broken.json", "broken.json"),
        ("bad-ip.json", "invalid IP address \"100.64.1.300\""),
        ("duplicate.json", "duplicate node name \"web-1\""),
    ] {
        for format in ["json", "human"] {
            let args = [
                "compile",
                policy,
                "--inventory",
                inventory,
                "--format",
                format,
            ];
            let o = aclc_in(&dir, &args, None);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
            assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
            if format == "json" {
                let out = json(&o);
                assert!(out.get("nodes").is_none(), "{out}");
                assert!(out["error"]["message"].as_str().unwrap().contains(says));
            } else {
                assert_eq!(stdout(&o), "");
            }
        }
    }
    // A missing policy file, and a missing --inventory (a usage error).
    let o = compile_example("no-such-policy.hujson", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no-such-policy.hujson"),
        "{}",
        stderr(&o)
    );
    let o = aclc_in(&examples, &["compile", "policy.hujson"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--inventory"), "{}", stderr(&o));
}

#[test]
fn human_format_prints_a_table_per_node() {
    let o = compile_example("policy.hujson", &["--format", "human"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.trim_start().starts_with('{'), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    for name in INVENTORY_NODES {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("node {name}  "))),
            "no block for {name}:\n{text}"
        );
    }
    for line in [
        "node db-1  100.64.1.2  fd7a:115c:a1e0::102",
        "  packet filter: 2 rules",
        "    #1 from 100.64.1.1, fd7a:115c:a1e0::101 [tcp]",
        "        to 100.64.1.2 port 5432",
        "        to fd7a:115c:a1e0::102 port 5432",
        "  routes:  192.168.10.0/24 (primary: 192.168.10.0/24)",
        "  routes:  0.0.0.0/0, ::/0 (primary: none)",
        "        to 192.168.10.20 port 22",
        "        grant example.com/cap/dashboard on 100.64.1.1/32, fd7a:115c:a1e0::101/128",
        "    office-router  via 192.168.10.0/24",
        "    exit-1  via 0.0.0.0/0, ::/0",
    ] {
        assert!(lines.contains(&line), "missing line {line:?} in:\n{text}");
    }
}

#[test]
fn policy_from_standard_input() {
    let text = std::fs::read_to_string(examples().join("policy.hujson")).unwrap();
    let o = aclc_in(
        &examples(),
        &["compile", "-", "--inventory", "inventory.json"],
        Some(&text),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o), compiled_example(&[]));

    let invalid = std::fs::read_to_string(examples().join("invalid.hujson")).unwrap();
    let o = aclc_in(
        &examples(),
        &["compile", "-", "--inventory", "inventory.json"],
        Some(&invalid),
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json(&o)["error"]["diagnostics"][0]["file"], "<stdin>");
}

#[test]
fn help_lists_the_flags() {
    let o = aclc_in(&examples(), &["compile", "--help"], None);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    for flag in ["--inventory", "--node", "--format"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

/// A policy the compiler refuses (here: IP sets needing more work than the default budget, a
/// set of 5,000 addresses included 4,000 times) exits 2 like an invalid one, with the place
/// to blame; `check --inventory` and `test` refuse it too.
#[test]
fn compile_budget_refusal_exits_2_with_a_located_diagnostic() {
    let dir = scratch();
    let addresses: Vec<String> = (0..5_000)
        .map(|i| format!("10.{}.{}.{}", i >> 14, (i >> 6) & 255, (i & 63) * 4))
        .collect();
    let policy = json!({
        "ipsets": {
            "ipset:big": addresses,
            "ipset:many": vec!["ipset:big"; 4_000],
        },
        "grants": [{"src": ["*"], "dst": ["ipset:many"], "ip": ["*"]}],
    });
    // Pretty-printed: one line per entry.
    let text = serde_json::to_string_pretty(&policy).unwrap();
    std::fs::write(dir.join("budget.json"), text).unwrap();
    std::fs::copy(
        examples().join("inventory.json"),
        dir.join("inventory.json"),
    )
    .unwrap();
    let o = aclc_in(
        &dir,
        &[
            "compile",
            "budget.json",
            "--inventory",
            "inventory.json",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = json(&o);
    let diagnostics = out["error"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{out}");
    assert_eq!(
        diagnostics[0]["code"], "aclc::compile_budget_exceeded",
        "{out}"
    );
    assert!(diagnostics[0]["line"].as_u64().unwrap() > 0, "{out}");

    let o = aclc_in(
        &dir,
        &["check", "budget.json", "--inventory", "inventory.json"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("compile_budget_exceeded"),
        "{}",
        stderr(&o)
    );
    let o = aclc_in(
        &dir,
        &["test", "budget.json", "--inventory", "inventory.json"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn exit_node_filters_internet_keeps_only_the_internet() {
    let all = compiled_example(&[]);
    let internet = compiled_example(&["--exit-node-filters", "internet"]);
    // Operations' `*:*` is all exit-1 keeps; every other node's filter is the same.
    let rules = internet["nodes"]["exit-1"]["packet_filter_rules"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    assert_eq!(rules[0]["DstPorts"], json!([dst("*", 0, 65535)]));
    for (name, node) in internet["nodes"].as_object().unwrap() {
        if name != "exit-1" {
            assert_eq!(node, &all["nodes"][name], "{name}");
        }
    }
    let bad = compile_example("policy.hujson", &["--exit-node-filters", "some"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
}
