//! `aclc diff --inventory` after compiling: the access diff between a workload's policy and the
//! same policy with one rule added (`group:sre` to a tag on 5432), on `medium` (10,000 nodes)
//! and, when `ACLC_BENCH_LARGE` is set, `large` (100,000 nodes; slow: tens of seconds per
//! iteration). Both policies are parsed and compiled outside the timing.
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator of the `aclc` binary, so the figures are what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aclc_compiler::diff::{access_diff, DiffOptions, Side};
use aclc_compiler::{Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_policy::Source;
use aclc_testkit::workloads;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

// The workloads are read here; the benches share the options they compile them with.
#[allow(dead_code)]
mod support;
use support::compile;

fn load(text: String, inventory: &Inventory) -> (Source, Policy) {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", text);
    let policy = aclc_policy::parse(&source, &options).unwrap().policy;
    (source, policy)
}

fn side<'a>(policy: &'a Policy, source: &'a Source, compiled: &'a Compiled) -> Side<'a> {
    Side {
        policy,
        source,
        compiled,
    }
}

fn bench_preset(c: &mut Criterion, preset: &str) {
    let Some(dir) = workloads::workload_dir(preset, 10, &["inventory.json", "policy.hujson"])
    else {
        return;
    };
    let inventory =
        Inventory::from_json(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let text = std::fs::read_to_string(dir.join("policy.hujson")).unwrap();
    // A tag the workload's policy owns, as the destination of the added rule.
    let tag = text
        .split('"')
        .find(|s| s.starts_with("tag:") && !s.contains(' '))
        .unwrap()
        .to_string();
    let added = text.replacen(
        "\"acls\": [",
        &format!("\"acls\": [\n\t\t{{\"action\": \"accept\", \"src\": [\"group:sre\"], \"dst\": [\"{tag}:5432\"]}},"),
        1,
    );
    let (old_source, old_policy) = load(text, &inventory);
    let (new_source, new_policy) = load(added, &inventory);
    let old = compile(&old_policy, &inventory);
    let new = compile(&new_policy, &inventory);
    let options = DiffOptions::default();
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    group.bench_function(format!("add_rule/{preset}"), |b| {
        b.iter(|| {
            access_diff(
                side(&old_policy, &old_source, &old),
                side(&new_policy, &new_source, &new),
                &options,
            )
        })
    });
    group.finish();
}

/// The rule diff (`aclc diff` without `--inventory`) of two policies of 10,000 ACL rules
/// each, no rule of one sharing sources or destinations with one of the other: pairing the
/// removed with the added rules walked every added rule per removed one (quadratic: 30 s at
/// 20,000 rules).
fn bench_unpaired(c: &mut Criterion) {
    let policy = |a: u32| {
        let rules: Vec<String> = (0..10_000u32)
            .map(|i| {
                format!(
                    r#"{{"action": "accept", "src": ["10.{a}.{}.{}"], "dst": ["10.{}.{}.{}:22"]}}"#,
                    i >> 8 & 255,
                    i & 255,
                    a + 100,
                    i >> 8 & 255,
                    i & 255
                )
            })
            .collect();
        format!("{{\"acls\": [{}]}}", rules.join(",\n"))
    };
    let parse = |text: String| {
        let source = Source::new("policy.hujson", text);
        let (doc, _) = aclc_policy::hujson::parse(&source, &aclc_policy::Limits::default());
        (source, doc.unwrap())
    };
    let (old_source, old) = parse(policy(1));
    let (new_source, new) = parse(policy(2));
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    group.bench_function("unpaired_rules_1e4", |b| {
        b.iter(|| {
            aclc_policy::diff::diff(&old, &old_source, &new, &new_source)
                .sections
                .len()
        })
    });
    group.finish();
}

/// The access diff when one rule of 3,000 source and 3,000 destination addresses is removed
/// (10 nodes): every item of the rule holds the rule's source list, and it was hashed,
/// compared and marked once per item, and the rules were resolved again for every change
/// explained (quadratic: 10 s at 5,000 x 5,000, 40 s at 10,000 x 10,000).
fn bench_wide_rule(c: &mut Criterion) {
    const N: u32 = 3_000;
    let ip = |i: u32| format!("100.{}.{}.{}", 64 + (i >> 16), i >> 8 & 255, i & 255);
    let src: Vec<String> = (0..N).map(|i| format!("\"{}\"", ip(i))).collect();
    let dst: Vec<String> = (0..N).map(|i| format!("\"{}:*\"", ip(i))).collect();
    let wide = format!(
        r#"{{"acls": [{{"action": "accept", "src": [{}], "dst": [{}]}}]}}"#,
        src.join(","),
        dst.join(",")
    );
    let narrow =
        r#"{"acls": [{"action": "accept", "src": ["100.64.0.1"], "dst": ["100.64.0.2:22"]}]}"#;
    let nodes: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                r#"{{"name": "n{i}", "user": "a@example.com", "tags": [], "ipv4": "100.64.0.{i}", "routable_ips": [], "approved_routes": []}}"#
            )
        })
        .collect();
    let inventory = Inventory::from_json(&format!(
        r#"{{"users": [{{"id": 1, "name": "a", "email": "a@example.com", "roles": []}}], "nodes": [{}], "registration_order": [], "tailnet": {{"name": "example.com", "dns": {{}}, "settings": {{}}}}}}"#,
        nodes.join(",")
    ))
    .unwrap();
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    bench_pair(
        &mut group,
        "wide_rule_removed_3e3",
        (wide, narrow.to_string()),
        &inventory,
    );
    group.finish();
}

/// Bench `name`: the access diff from policy `texts.0` to `texts.1` on `inventory`, both
/// parsed and compiled outside the timing.
fn bench_pair(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    texts: (String, String),
    inventory: &Inventory,
) {
    let (old_source, old_policy) = load(texts.0, inventory);
    let (new_source, new_policy) = load(texts.1, inventory);
    let old = compile(&old_policy, inventory);
    let new = compile(&new_policy, inventory);
    let options = DiffOptions::default();
    group.bench_function(name, |b| {
        b.iter(|| {
            access_diff(
                side(&old_policy, &old_source, &old),
                side(&new_policy, &new_source, &new),
                &options,
            )
            .network
            .lost
            .len()
        })
    });
}

/// An inventory of `users` users with a device each and `tagged` nodes tagged `tag`, each
/// serving `route` (approved) when one is given.
fn small_inventory(users: usize, tagged: usize, tag: &str, route: Option<&str>) -> Inventory {
    let ip = |i: usize| format!("100.{}.{}.{}", 64 + (i >> 16), i >> 8 & 255, i & 255);
    let user_list: Vec<String> = (0..users)
        .map(|i| {
            format!(
                r#"{{"id": {}, "name": "u{i}", "email": "u{i}@example.com", "roles": []}}"#,
                i + 1
            )
        })
        .collect();
    let routes = route.map_or(String::new(), |r| format!("\"{r}\""));
    let mut nodes: Vec<String> = (0..users)
        .map(|i| format!(r#"{{"name": "n{i}", "user": "u{i}@example.com", "tags": [], "ipv4": "{}", "routable_ips": [], "approved_routes": []}}"#, ip(i)))
        .collect();
    nodes.extend((0..tagged).map(|j| {
        format!(r#"{{"name": "t{j}", "user": null, "tags": ["{tag}"], "ipv4": "{}", "routable_ips": [{routes}], "approved_routes": [{routes}]}}"#, ip(users + j))
    }));
    Inventory::from_json(&format!(
        r#"{{"users": [{}], "nodes": [{}], "registration_order": [], "tailnet": {{"name": "example.com", "dns": {{}}, "settings": {{}}}}}}"#,
        user_list.join(","),
        nodes.join(",")
    ))
    .unwrap()
}

/// Access diffs that were quadratic or worse in one dimension of the policy (found by a
/// sweep of hostile inputs, stop 39): 8,000 SSH rules of one login each, one removed (each
/// login's first rule was found by a scan of the rules: 12 s at 16,000); 8,000 grants whose
/// app capabilities differ only in value (hashed by name only, compared pair by pair: 35 s
/// at 16,000); 2,000 routers of one route, each a `via` grant's, the policy against itself
/// (each router's route compared afresh: 15 s at 8,000).
fn bench_hostile_diffs(c: &mut Criterion) {
    const N: usize = 8_000;
    let owners = r#""tagOwners": {"tag:t0": ["autogroup:admin"], "tag:r": ["autogroup:admin"]}"#;
    let ssh = |from: usize| {
        let rules: Vec<String> = (from..N)
            .map(|i| format!(r#"{{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:t0"], "users": ["user{i}"]}}"#))
            .collect();
        format!("{{{owners}, \"ssh\": [{}]}}", rules.join(","))
    };
    let caps = |offset: usize| {
        let grants: Vec<String> = (0..N)
            .map(|i| format!(r#"{{"src": ["*"], "dst": ["tag:t0"], "app": {{"example.com/cap/c": [{{"i": {}}}]}}}}"#, i + offset))
            .collect();
        format!("{{{owners}, \"grants\": [{}]}}", grants.join(","))
    };
    const ROUTERS: usize = 2_000;
    let via: Vec<String> = (0..ROUTERS)
        .map(|_| {
            r#"{"src": ["*"], "dst": ["192.168.0.0/24"], "ip": ["*"], "via": ["tag:r"]}"#
                .to_string()
        })
        .collect();
    let via = format!("{{{owners}, \"grants\": [{}]}}", via.join(","));
    let cases = [
        (
            "ssh_logins_8e3",
            ssh(0),
            ssh(1),
            small_inventory(1, 1, "tag:t0", None),
        ),
        (
            "app_cap_values_8e3",
            caps(0),
            caps(N),
            small_inventory(1, 1, "tag:t0", None),
        ),
        (
            "via_routers_2e3",
            via.clone(),
            via,
            small_inventory(3, ROUTERS, "tag:r", Some("192.168.0.0/24")),
        ),
    ];
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    for (name, old_text, new_text, inventory) in cases {
        bench_pair(&mut group, name, (old_text, new_text), &inventory);
    }
    group.finish();
}

/// [`aclc_testkit::hostile::exit_nodes_ipset`], its inventory read.
fn exit_nodes_case(nodes: usize, addrs: usize) -> (Inventory, String, String) {
    let (inventory, old, new) = aclc_testkit::hostile::exit_nodes_ipset(nodes, addrs);
    (Inventory::from_json(&inventory).unwrap(), old, new)
}

/// 64 exit nodes reached through one rule to an IP set of 10,000 addresses, one address
/// added: every exit node's filter holds every address, and each node's was swept afresh
/// (0.17 s a node at 20,000 addresses: 150 nodes 25 s, against a compile of 0.4 s); equal
/// filters now share one comparison per thread.
fn bench_exit_nodes(c: &mut Criterion) {
    let (inventory, old, new) = exit_nodes_case(64, 10_000);
    let mut group = c.benchmark_group("diff");
    group.sample_size(10);
    bench_pair(
        &mut group,
        "exit_nodes_ipset_64x1e4",
        (old, new),
        &inventory,
    );
    group.finish();
}

fn bench_diff(c: &mut Criterion) {
    bench_unpaired(c);
    bench_wide_rule(c);
    bench_hostile_diffs(c);
    bench_exit_nodes(c);
    bench_preset(c, "medium");
    if std::env::var_os("ACLC_BENCH_LARGE").is_some() {
        bench_preset(c, "large");
    }
}

criterion_group!(benches, bench_diff);
criterion_main!(benches);
