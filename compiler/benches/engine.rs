//! The control-server engine on the seeded workloads (`medium`: 10,000 nodes, 1,000 rules;
//! `large`: 100,000 nodes, 10,000 rules): the time of one event including its change set
//! (`engine/<event>/<preset>`), and of one node's map from a snapshot (`engine/map/large` on
//! the engine as built, `engine/map_after_events/large` after the event runs), and of building
//! the engine from scratch (`engine/build/medium`).
//!
//! Each iteration applies a different event of the kind measured (a new node joins, another
//! leaves, a node's tags flip between two values, a router's advertised routes flip, a rule is
//! added to and then removed from the policy; `engine/node_batch_x100/large` and
//! `engine/node_batch_x1000/medium`: that many new nodes join in one batch, then leave in the
//! next; `engine/leave_only_device/large`: the only device of a user the policy names leaves
//! and returns, which makes that user's rule items vanish and come back;
//! `engine/router_leave_join/large`: a subnet router leaves and joins again;
//! `engine/router_retag/large`: its tags flip; `engine/node_batch_x100_router/large`: the
//! batches of `node_batch_x100` with the router's tags flipping in each;
//! `engine/service_batch/large`: a Service's address changes in a batch with a member's join
//! or leave; `engine/policy_add_tag_rule/large`: the rule added names the servers of the
//! least common tag, where `policy_add_rule`'s names the most common), so no event is a no-op. The workloads are compiled with exit nodes given only
//! the internet's destinations (`support::options`), except in
//! `engine/node_join_tailscale_exits/medium`: joins under Tailscale's exit filters, the
//! default. `engine/self_devices_join/4000`: one user's 4,000 devices under `autogroup:self`,
//! one more joining and leaving in turn (synthetic). Workloads come from
//! `testdata/bench/gen_workload.py` (see `aclc_testkit::workloads`); without the generator the
//! bench says so and skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

/// The allocator of the `aclc` binary, so the figures are what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aclc_compiler::engine::{
    Engine, EngineOptions, Event, NodeRecord, ServiceRecord, TailnetState,
};
use aclc_compiler::Inventory;
use aclc_policy::model::Policy;
use aclc_testkit::workloads;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};

// The workloads are read here; the benches share the options they compile them with.
#[allow(dead_code)]
mod support;

/// Resident memory of this process now (Linux `VmRSS`), in MiB.
fn rss_mib() -> u64 {
    status_mib("VmRSS:")
}

/// Report the peak resident memory after the bench `name` ran: the peak is a high-water mark,
/// so a rise from one line to the next is that bench's (its events' transient compiles).
fn peak_after(name: &str) {
    eprintln!("peak RSS after {name}: {} MiB", peak_rss_mib());
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        / 1024
}

struct Loaded {
    engine: Engine,
    policy_text: String,
    inventory: Inventory,
    /// Addresses in use, so joining nodes get fresh ones.
    used: HashSet<IpAddr>,
}

fn load(preset: &str) -> Option<Loaded> {
    load_with(preset, bench_options())
}

/// [`load`] with these engine options.
fn load_with(preset: &str, options: EngineOptions) -> Option<Loaded> {
    let dir = workloads::workload_dir(preset, 10, &["inventory.json", "policy.hujson"])?;
    let inventory =
        Inventory::from_json(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let policy_text = std::fs::read_to_string(dir.join("policy.hujson")).unwrap();
    let policy = parse(&policy_text, &inventory);
    let used = inventory
        .nodes()
        .iter()
        .flat_map(|n| n.addresses())
        .collect();
    // What the harness holds before the engine (its own inventory, policy text, address set).
    let before = rss_mib();
    let t = Instant::now();
    let engine = Engine::new(policy, TailnetState::from_inventory(&inventory), options).unwrap();
    eprintln!(
        "{preset}: engine built in {:.2?}; peak RSS {} MiB, resident {} MiB of which {} MiB \
         before the engine",
        t.elapsed(),
        peak_rss_mib(),
        rss_mib(),
        before
    );
    Some(Loaded {
        engine,
        policy_text,
        inventory,
        used,
    })
}

fn parse(text: &str, inventory: &Inventory) -> Arc<Policy> {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &options);
    Arc::new(parsed.unwrap().policy)
}

/// The `k`-th fresh address pair.
fn fresh(used: &HashSet<IpAddr>, k: &mut u32) -> (Ipv4Addr, Ipv6Addr) {
    loop {
        *k += 1;
        let v4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 100, 0, 0)) + *k);
        let v6 = Ipv6Addr::new(
            0xfd7a,
            0x115c,
            0xa1e0,
            0xbe,
            0,
            0,
            (*k >> 16) as u16,
            *k as u16,
        );
        if !used.contains(&IpAddr::V4(v4)) && !used.contains(&IpAddr::V6(v6)) {
            return (v4, v6);
        }
    }
}

/// Time `event(i)` for the `iters` iterations criterion asks for.
fn timed(
    engine: &mut Engine,
    iters: u64,
    next: &mut u64,
    mut event: impl FnMut(&Engine, u64) -> Event,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        *next += 1;
        let e = event(engine, *next);
        let t = Instant::now();
        let changes = engine.apply(e).unwrap();
        total += t.elapsed();
        assert!(!changes.is_empty(), "an event changed nothing");
    }
    total
}

fn node_join(c: &mut Criterion, preset: &str, loaded: &mut Loaded) {
    node_join_as(c, "node_join", preset, loaded);
}

/// [`node_join`], measured under the bench id `name`.
fn node_join_as(c: &mut Criterion, name: &str, preset: &str, loaded: &mut Loaded) {
    let owner = loaded.engine.state().users[0].id;
    let base = loaded.engine.snapshot().node_ids().last().unwrap_or(0) + 1_000_000;
    let mut k = 0;
    let mut next = 0;
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    // Events take long on `large`: the same small number of iterations in every sample.
    group.sampling_mode(SamplingMode::Flat);
    // Each joined node leaves again, untimed, so every join meets the same tailnet: joins
    // that piled up on one owner made each later join slower, and a faster engine, running
    // more of them in criterion's fixed time, was measured on a bigger tailnet.
    group.bench_function(BenchmarkId::new(name, preset), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let (v4, v6) = fresh(&loaded.used, &mut k);
                let id = base + next;
                let joined = Event::UpsertNode(NodeRecord::owned(
                    id,
                    &format!("bench-join-{next}"),
                    owner,
                    v4,
                    v6,
                ));
                let t = Instant::now();
                let changes = loaded.engine.apply(joined).unwrap();
                total += t.elapsed();
                assert!(!changes.is_empty(), "an event changed nothing");
                loaded.engine.apply(Event::RemoveNode(id)).unwrap();
            }
            total
        })
    });
    group.finish();
}

/// A batch of `size` node events per iteration (`Engine::apply_batch`): `size` new nodes join
/// in one batch, and leave in the next. Criterion's time is per batch. Two sizes on two
/// tailnets (100 on `large`, 1,000 on `medium`): work that grew with the batch size times the
/// changed nodes' peers, not with their sum, would show in the second. With `router` (a
/// router and other tags), each batch also retags the router, back and forth: the batch is
/// applied in steps (the router's routes away, the nodes changed, the routes back); as one
/// change it took the every-node path (6 s on `large`).
fn node_batch(
    c: &mut Criterion,
    preset: &str,
    size: u64,
    loaded: &mut Loaded,
    router: Option<(&NodeRecord, &[String])>,
) {
    let users: Vec<u64> = loaded.engine.state().users.iter().map(|u| u.id).collect();
    let base = loaded.engine.snapshot().node_ids().last().unwrap_or(0) + 2_000_000;
    let mut k = 1_000_000;
    let mut next = 0u64;
    let mut joined: Vec<u64> = Vec::new();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(criterion::Throughput::Elements(size));
    let id = match router {
        Some(_) => format!("node_batch_x{size}_router"),
        None => format!("node_batch_x{size}"),
    };
    group.bench_function(BenchmarkId::new(id, preset), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let mut batch: Vec<Event> = if joined.is_empty() {
                    (0..size)
                        .map(|j| {
                            let (v4, v6) = fresh(&loaded.used, &mut k);
                            let id = base + next * size + j;
                            joined.push(id);
                            let owner = users[(id as usize * 7919) % users.len()];
                            Event::UpsertNode(NodeRecord::owned(
                                id,
                                &format!("bench-batch-{id}"),
                                owner,
                                v4,
                                v6,
                            ))
                        })
                        .collect()
                } else {
                    joined.drain(..).map(Event::RemoveNode).collect()
                };
                if let Some((router, tags)) = router {
                    batch.push(retagged(router, tags, next));
                }
                let t = Instant::now();
                let changes = loaded.engine.apply_batch(batch).unwrap();
                total += t.elapsed();
                assert!(!changes.is_empty(), "a batch changed nothing");
            }
            total
        })
    });
    group.finish();
    // The tailnet as it was, untimed, for the benches after this one: the nodes of a last
    // batch of joins leave, and the router has its own tags.
    let mut back: Vec<Event> = joined.drain(..).map(Event::RemoveNode).collect();
    if let Some((router, _)) = router {
        back.push(Event::UpsertNode(router.clone()));
    }
    loaded.engine.apply_batch(back).unwrap();
}

fn large_events(c: &mut Criterion, loaded: &mut Loaded) {
    let state = loaded.engine.state();
    let tagged: Vec<NodeRecord> = state
        .nodes
        .iter()
        .filter(|n| !n.tags.is_empty() && n.advertised_routes.is_empty())
        .cloned()
        .collect();
    let other_tags = tagged
        .iter()
        .find(|n| n.tags != tagged[0].tags)
        .map(|n| n.tags.clone())
        .unwrap();
    let (router, _) = router_and_tags(&loaded.engine);
    let leaving: Vec<u64> = state
        .nodes
        .iter()
        .filter(|n| n.advertised_routes.is_empty())
        .map(|n| n.id)
        .step_by(97)
        .collect();
    // The only device of a user the policy names: its leave makes that user's rules' items
    // vanish (the rules merge otherwise), its return brings them back.
    let mut devices: std::collections::HashMap<u64, Vec<&NodeRecord>> = Default::default();
    for n in state.nodes.iter().filter(|n| n.tags.is_empty()) {
        devices.entry(n.user.unwrap_or(0)).or_default().push(n);
    }
    let only_device = state
        .users
        .iter()
        .filter(|u| {
            let src = format!("\"src\": [\"{}\"]", u.login);
            loaded.policy_text.contains(&src)
        })
        .filter_map(|u| match devices.get(&u.id).map(Vec::as_slice) {
            Some([only]) if only.advertised_routes.is_empty() => Some((*only).clone()),
            _ => None,
        })
        .next()
        .unwrap();
    drop(devices);
    // The least common tag, for `policy_add_tag_rule`.
    let mut per_tag: HashMap<&str, usize> = HashMap::new();
    for n in &state.nodes {
        for t in &n.tags {
            *per_tag.entry(t.as_str()).or_default() += 1;
        }
    }
    let rare = per_tag
        .iter()
        .min_by_key(|(t, n)| (**n, **t))
        .map(|(t, _)| t.to_string())
        .unwrap();
    drop(per_tag);
    drop(state);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    // Events take long on `large`: the same small number of iterations in every sample.
    group.sampling_mode(SamplingMode::Flat);
    let mut next = 0;
    group.bench_function(BenchmarkId::new("leave_only_device", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| match i % 2 {
                1 => Event::RemoveNode(only_device.id),
                _ => Event::UpsertNode(only_device.clone()),
            })
        })
    });
    peak_after("leave_only_device/large");
    let mut next = 0;
    group.bench_function(BenchmarkId::new("node_leave", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| {
                Event::RemoveNode(leaving[i as usize % leaving.len()])
            })
        })
    });
    peak_after("node_leave/large");
    let mut next = 0;
    let target = tagged[0].clone();
    group.bench_function(BenchmarkId::new("retag", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| {
                retagged(&target, &other_tags, i)
            })
        })
    });
    peak_after("retag/large");
    let mut next = 0;
    // The router stops and starts advertising one of its approved routes: the route leaves
    // and re-enters filters and peers.
    let flipped = *router
        .approved_routes
        .iter()
        .find(|r| r.prefix_len() > 0 && router.advertised_routes.contains(r))
        .unwrap();
    group.bench_function(BenchmarkId::new("route_advertise", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| {
                let mut routes = router.advertised_routes.clone();
                if i % 2 == 1 {
                    routes.retain(|r| *r != flipped);
                }
                Event::AdvertiseRoutes {
                    node: router.id,
                    routes,
                }
            })
        })
    });
    peak_after("route_advertise/large");
    // The router leaves and joins again, alternately: a node serving routes, which the
    // engine applies as two narrow steps (its node, its routes); as one event it took the
    // every-node path (12 s each on `large`).
    let mut next = 0;
    group.bench_function(BenchmarkId::new("router_leave_join", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| match i % 2 {
                1 => Event::RemoveNode(router.id),
                _ => Event::UpsertNode(router.clone()),
            })
        })
    });
    peak_after("router_leave_join/large");
    // The router retagged, back and forth: in three narrow steps (its routes away, the node
    // retagged, the routes back), each filter a step marked decided between the first and
    // the last compile; as one event it took the every-node path (5 s on `large`).
    let mut next = 0;
    group.bench_function(BenchmarkId::new("router_retag", "large"), |b| {
        b.iter_custom(|iters| {
            timed(&mut loaded.engine, iters, &mut next, |_, i| {
                retagged(&router, &other_tags, i)
            })
        })
    });
    peak_after("router_retag/large");
    // A Tailscale Service's address changing in the same batch as a member's join or leave:
    // narrow steps (the Service's hosts' routes, then the member), where such a batch took
    // the every-node path (about 5 s on `large`) before stop 54. The Service is set up and
    // taken away untimed.
    let hosts: Vec<u64> = tagged.iter().map(|n| n.id).take(2).collect();
    let mut k = 2_000_000;
    // Three addresses no node has.
    let vips: Vec<Ipv4Addr> = (0..3).map(|_| fresh(&loaded.used, &mut k).0).collect();
    let service = |vip: Ipv4Addr| {
        Event::UpsertService(ServiceRecord {
            name: "svc:bench".to_string(),
            ipv4: Some(vip),
            ipv6: None,
            hosts: hosts.clone(),
            approved_hosts: hosts.clone(),
            tags: Vec::new(),
        })
    };
    loaded.engine.apply(service(vips[0])).unwrap();
    let owner = loaded.engine.state().users[0].id;
    let member = loaded.engine.snapshot().node_ids().last().unwrap_or(0) + 3_000_000;
    let mut next = 0u64;
    group.bench_function(BenchmarkId::new("service_batch", "large"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let node = match next % 2 {
                    1 => {
                        let (v4, v6) = fresh(&loaded.used, &mut k);
                        Event::UpsertNode(NodeRecord::owned(
                            member,
                            "bench-svc-member",
                            owner,
                            v4,
                            v6,
                        ))
                    }
                    _ => Event::RemoveNode(member),
                };
                let batch = vec![service(vips[1 + (next % 2) as usize]), node];
                let t = Instant::now();
                let changes = loaded.engine.apply_batch(batch).unwrap();
                total += t.elapsed();
                assert!(!changes.is_empty(), "a batch changed nothing");
            }
            total
        })
    });
    loaded
        .engine
        .apply_batch([
            Event::RemoveNode(member),
            Event::RemoveService("svc:bench".to_string()),
        ])
        .unwrap();
    peak_after("service_batch/large");
    let original = loaded.engine.policy().clone();
    // The workload's policy with `autogroup:member` given `tag`'s port 8443 at the top.
    let with_rule = |tag: &str| {
        let rule = format!(
            "\"acls\": [{{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"{tag}:8443\"]}},"
        );
        parse(
            &loaded.policy_text.replacen("\"acls\": [", &rule, 1),
            &loaded.inventory,
        )
    };
    // The same rule for the servers of the tag fewest nodes carry (57 on `large`, where the
    // rule below names the 6,082 of the most common): it reaches few nodes' lists, so the
    // event remaps the per-node index (its arrays kept, read through a map of item numbers)
    // where the rule below, reaching lists that hold most entries, renumbers every list.
    // One parsed policy beside the engine's at a time (the harness's share of the peak).
    let narrow = with_rule(&rare);
    policy_edits(
        &mut group,
        "policy_add_tag_rule",
        &mut loaded.engine,
        &original,
        &narrow,
    );
    let _ = loaded.engine.apply(Event::ReplacePolicy(original.clone()));
    peak_after("policy_add_tag_rule/large");
    drop(narrow);
    let added = with_rule(&other_tags[0]);
    policy_edits(
        &mut group,
        "policy_add_rule",
        &mut loaded.engine,
        &original,
        &added,
    );
    peak_after("policy_add_rule/large");
    // The map again after the runs (the workload's own policy restored): the heap the events
    // left behind makes the same map slower with the system allocator.
    let _ = loaded.engine.apply(Event::ReplacePolicy(original.clone()));
    let snapshot = loaded.engine.snapshot();
    let typical = typical_node(&loaded.engine);
    group.bench_function(BenchmarkId::new("map_after_events", "large"), |b| {
        b.iter(|| snapshot.node(typical).map(|v| v.to_wire()))
    });
    group.finish();
    eprintln!("large: peak RSS after the runs: {} MiB", peak_rss_mib());
}

/// `engine/<name>/large`: the policy replaced by `edited`, then back by `original`, in turn.
fn policy_edits(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &mut Engine,
    original: &Arc<Policy>,
    edited: &Arc<Policy>,
) {
    let mut next = 0;
    group.bench_function(BenchmarkId::new(name, "large"), |b| {
        b.iter_custom(|iters| {
            timed(engine, iters, &mut next, |_, i| {
                Event::ReplacePolicy(match i % 2 {
                    1 => edited.clone(),
                    _ => original.clone(),
                })
            })
        })
    });
}

/// A user's device: the first node (by id) with an owner.
fn typical_node(engine: &Engine) -> u64 {
    engine
        .snapshot()
        .node_ids()
        .find(|&id| engine.node(id).is_some_and(|n| n.user.is_some()))
        .unwrap()
}

/// The engine built from scratch (`Engine::new`): a whole compile and every node's
/// fingerprint, what a server's start costs and what an event on the every-node path (a
/// Service changed, a router retagged) costs beside its compile. On `medium` only: a second
/// engine of `large` beside the first would double the peaks reported after it.
fn build(c: &mut Criterion, preset: &str, loaded: &Loaded) {
    let policy = parse(&loaded.policy_text, &loaded.inventory);
    let state = TailnetState::from_inventory(&loaded.inventory);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("build", preset), |b| {
        b.iter_with_large_drop(|| {
            Engine::new(policy.clone(), state.clone(), bench_options()).unwrap()
        })
    });
    group.finish();
}

/// One typical node's map (wire form) from the engine as built.
fn map(c: &mut Criterion, loaded: &Loaded) {
    let snapshot = loaded.engine.snapshot();
    let typical = typical_node(&loaded.engine);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("map", "large"), |b| {
        b.iter(|| snapshot.node(typical).map(|v| v.to_wire()))
    });
    group.finish();
}

/// `node` with `tags` on odd iterations `i`, as it is on even ones.
fn retagged(node: &NodeRecord, tags: &[String], i: u64) -> Event {
    let mut node = node.clone();
    if i % 2 == 1 {
        node.tags = tags.to_vec();
    }
    Event::UpsertNode(node)
}

/// A tagged router of the workload serving an approved route, and the tags of a tagged node
/// with other tags.
fn router_and_tags(engine: &Engine) -> (NodeRecord, Vec<String>) {
    let state = engine.state();
    let router = state
        .nodes
        .iter()
        .find(|n| {
            !n.tags.is_empty()
                && n.approved_routes
                    .iter()
                    .any(|r| r.prefix_len() > 0 && n.advertised_routes.contains(r))
        })
        .cloned()
        .unwrap();
    let tags = state
        .nodes
        .iter()
        .find(|n| !n.tags.is_empty() && n.advertised_routes.is_empty() && n.tags != router.tags)
        .map(|n| n.tags.clone())
        .unwrap();
    (router, tags)
}

/// `engine/self_devices_join/4000`: one user owns 4,000 devices under `autogroup:self`
/// rules (network and SSH) and a device of theirs joins or leaves, in turn. Each of the
/// user's devices listed the same sources again (every device's addresses, sorted and
/// hashed): O(devices^2 log devices) per event, 4 s at 4,000 devices; the sources are now
/// made once per owner and compile. Synthetic: no workload needed.
fn self_devices_join(c: &mut Criterion) {
    const DEVICES: u32 = 4000;
    let text = r#"{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}],
        "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot", "root"]}]}"#;
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &Default::default());
    let policy = Arc::new(parsed.unwrap().policy);
    let addr = |i: u32| {
        (
            Ipv4Addr::from(0x6440_0000u32 + i + 1),
            Ipv6Addr::from(0xfd7a_115c_a1e0_0000_0000_0000_0000_0000u128 + u128::from(i) + 1),
        )
    };
    let device = |i: u32| {
        let (a, b) = addr(i);
        NodeRecord::owned(u64::from(i) + 10, &format!("dev-{i:05}"), 1, a, b)
    };
    let user = aclc_compiler::engine::UserRecord {
        id: 1,
        login: "alice@example.com".into(),
        name: "alice".into(),
        roles: Vec::new(),
        groups: Vec::new(),
    };
    let state = TailnetState {
        users: vec![user],
        nodes: (0..DEVICES).map(device).collect(),
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let mut engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let mut group = c.benchmark_group("engine");
    group.sample_size(20);
    let mut joined = false;
    group.bench_function(BenchmarkId::new("self_devices_join", DEVICES), |b| {
        b.iter(|| {
            let event = match joined {
                false => Event::UpsertNode(device(DEVICES)),
                true => Event::RemoveNode(u64::from(DEVICES) + 10),
            };
            joined = !joined;
            engine.apply(event).unwrap()
        });
    });
    group.finish();
}

fn bench_engine(c: &mut Criterion) {
    self_devices_join(c);
    // A tailnet of a hundred nodes, where an event is a fraction of a millisecond: threads
    // spawned for it would show here (they cost more than such an event's work, and wait
    // for a core on a busy host).
    if let Some(mut small) = load("small") {
        node_join(c, "small", &mut small);
    }
    if let Some(mut medium) = load("medium") {
        build(c, "medium", &medium);
        node_join(c, "medium", &mut medium);
        node_batch(c, "medium", 1000, &mut medium, None);
    }
    if let Some(mut large) = load("large") {
        map(c, &large);
        node_join(c, "large", &mut large);
        peak_after("node_join/large");
        node_batch(c, "large", 100, &mut large, None);
        peak_after("node_batch_x100/large");
        let (router, tags) = router_and_tags(&large.engine);
        node_batch(c, "large", 100, &mut large, Some((&router, &tags)));
        peak_after("node_batch_x100_router/large");
        large_events(c, &mut large);
    }
    // With Tailscale's exit filters (the default options): each of the 20 exit nodes holds
    // 782,000 entries, and every join changes them all. Exit nodes that carry the same `via`
    // tags share one filter, hashed once (ARCHITECTURE.md, "Exit nodes receive every
    // rule's destinations"). After `large`, so its engine is not part of the memory
    // reported there.
    if let Some(mut medium) = load_with("medium", EngineOptions::default()) {
        node_join_as(c, "node_join_tailscale_exits", "medium", &mut medium);
    }
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);

/// The engine's options in these benches: the workloads compiled as every compiler bench
/// compiles them ([`support::options`] says why).
fn bench_options() -> EngineOptions {
    let mut options = EngineOptions::default();
    options.compile = support::options();
    options
}
