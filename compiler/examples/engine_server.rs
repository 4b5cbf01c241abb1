//! A tiny control-server loop on the engine: a writer applies events (a node joins, is
//! retagged, advertises a route, goes offline; the policy gains a rule; a burst of nodes joins
//! and leaves, each burst one batch) and pushes new maps only to the nodes each change set names, while a reader thread keeps serving maps from
//! whatever snapshot is current (it never waits for an event being applied).
//!
//! ```text
//! cargo run --release -p aclc-compiler --example engine_server
//! cargo run --release -p aclc-compiler --example engine_server -- target/bench-workloads/large
//! cargo run --release -p aclc-compiler --example engine_server -- --timings --exit-node-filters internet target/bench-workloads/large
//! ```
//!
//! Without an argument it runs on a four-node tailnet; with a `gen_workload.py` folder it runs
//! the same events on that workload and reports each event's time and the peak memory.
//! With `--timings`, each event's phases too (the engine's `tracing` spans,
//! [`aclc_compiler::phases`], gathered by a small `tracing-subscriber` layer below).
//! `--exit-node-filters internet` gives exit nodes only the internet's destinations (the
//! benches' setting): with Tailscale's exit filters (`all`, the default) an exit node of
//! `large` receives most of its 10,000 rules, past the compiler's filter-entry limit, so the
//! engine holds the policy refused (it says so, and grants nothing) and every event compiles
//! in full.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aclc_compiler::engine::questions::{SshOutcome, Tagger};
use aclc_compiler::engine::{
    ChangeSet, Engine, EngineOptions, Event, NodeRecord, TailnetState, UserRecord,
};
use aclc_compiler::{ExitNodeFilters, Inventory};
use aclc_policy::model::{CheckPeriod, Policy};

const POLICY: &str = r#"{
  "groups": {"group:eng": ["alice@example.com", "bob@"]},
  "tagOwners": {"tag:web": ["group:eng"], "tag:router": ["alice@example.com"]},
  "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "10.1.0.0/16:*"]},
    {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}
  ],
  "ssh": [{"action": "check", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"],
           "checkPeriod": "2h"}]
}"#;

fn parse(text: &str, inventory: Option<&Inventory>) -> Arc<Policy> {
    let options = aclc_policy::Options {
        context: inventory.map(Inventory::policy_context).unwrap_or_default(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", text, &options);
    Arc::new(parsed.expect("the policy is valid").policy)
}

fn v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 127, 0, 0)) + i)
}

fn v6(i: u32) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd7a,
        0x115c,
        0xa1e0,
        0x7f,
        0,
        0,
        (i >> 16) as u16,
        i as u16,
    )
}

fn tiny() -> (Arc<Policy>, TailnetState, String) {
    let user = |id, login: &str| UserRecord {
        id,
        login: login.to_string(),
        name: login.trim_end_matches('@').to_string(),
        roles: Vec::new(),
        groups: Vec::new(),
    };
    let state = TailnetState {
        users: vec![user(1, "alice@example.com"), user(2, "bob@")],
        nodes: vec![
            NodeRecord::owned(1, "alice-laptop", 1, v4(1), v6(1)),
            NodeRecord::owned(2, "bob-laptop", 2, v4(2), v6(2)),
            NodeRecord::tagged(3, "web-1", &["tag:web"], v4(3), v6(3)),
            NodeRecord::tagged(4, "router-1", &["tag:router"], v4(4), v6(4)),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    (parse(POLICY, None), state, POLICY.to_string())
}

/// Reads `name` in the workload folder `dir`, or exits with a message saying what is
/// missing (an example, but a mistyped folder deserves better than a panic).
fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
        eprintln!(
            "engine_server: cannot read {}: {e}\n{USAGE}",
            dir.join(name).display()
        );
        std::process::exit(2)
    })
}

const USAGE: &str = "usage: engine_server [--timings] [--exit-node-filters all|internet] [WORKLOAD]
  WORKLOAD: a folder with inventory.json and policy.hujson, as
  testdata/bench/gen_workload.py writes them (the benches keep theirs in
  target/bench-workloads/{small,medium,large}); without it, a four-node tailnet";

fn workload(dir: &Path) -> (Arc<Policy>, TailnetState, String) {
    let inventory = Inventory::from_json(&read(dir, "inventory.json")).unwrap_or_else(|e| {
        eprintln!(
            "engine_server: {}: {e}",
            dir.join("inventory.json").display()
        );
        std::process::exit(2)
    });
    let text = read(dir, "policy.hujson");
    (
        parse(&text, Some(&inventory)),
        TailnetState::from_inventory(&inventory),
        text,
    )
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        / 1024
}

/// Each closed span's name and how long it was open, in the order they closed.
type Closed = Arc<Mutex<Vec<(&'static str, Duration)>>>;

/// A `tracing-subscriber` layer that times every span from its creation to its close.
struct Timings(Closed);

impl<S> tracing_subscriber::Layer<S> for Timings
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Instant::now());
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if let Some(start) = span.extensions().get::<Instant>() {
                self.0.lock().unwrap().push((span.name(), start.elapsed()));
            }
        }
    }
}

/// The spans closed since the last call, when `--timings` installed the layer.
static TIMINGS: std::sync::OnceLock<Closed> = std::sync::OnceLock::new();

/// With `--timings`, the phases of what ran since the last call, on one line.
fn print_phases() {
    if let Some(closed) = TIMINGS.get() {
        use aclc_compiler::phases::*;
        let closed = std::mem::take(&mut *closed.lock().unwrap());
        let phases: Vec<String> = [INPUTS, TABLE, LOWER, SIDE, PEERS, FINGERPRINTS, CHANGE_SET]
            .iter()
            .filter_map(|&name| {
                let took: Duration = closed.iter().filter(|c| c.0 == name).map(|c| c.1).sum();
                let seen = closed.iter().any(|c| c.0 == name);
                seen.then(|| format!("{name} {:.2} ms", took.as_secs_f64() * 1e3))
            })
            .collect();
        if !phases.is_empty() {
            println!("{:<32} {}", "", phases.join(", "));
        }
    }
}

/// "Push" the new maps: render the first few changed nodes' maps from the new snapshot (a
/// real server would send every one).
fn push(engine: &Engine, what: &str, changes: &ChangeSet, took: std::time::Duration) {
    println!(
        "{what:<32} {took:>10.2?}  {} nodes changed, {} removed",
        changes.changed.len(),
        changes.removed.len(),
    );
    print_phases();
    let snapshot = engine.snapshot();
    let t = Instant::now();
    let mut bytes = 0;
    for id in changes.changed_ids().take(10) {
        if let Some(view) = snapshot.node(id) {
            bytes += serde_json::to_vec(&view.to_wire()).unwrap().len();
        }
    }
    println!(
        "{:<32} first 10 maps rendered ({bytes} bytes) in {:.2?}",
        "",
        t.elapsed()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let timings = args.iter().any(|a| a == "--timings");
    let mut options = EngineOptions::default();
    let mut arg = None;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--timings" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            "--exit-node-filters" => {
                options.compile.exit_node_filters = match rest.next().map(String::as_str) {
                    Some("internet") => ExitNodeFilters::InternetOnly,
                    Some("all") => ExitNodeFilters::AllDestinations,
                    other => {
                        eprintln!("engine_server: --exit-node-filters takes all or internet, not {}\n{USAGE}", other.unwrap_or("nothing"));
                        std::process::exit(2)
                    }
                }
            }
            _ => arg = Some(a.clone()),
        }
    }
    if timings {
        use tracing_subscriber::layer::SubscriberExt;
        let closed = TIMINGS.get_or_init(Closed::default).clone();
        let subscriber = tracing_subscriber::registry().with(Timings(closed));
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }
    let t = Instant::now();
    let (policy, state, policy_text) = match &arg {
        Some(dir) => workload(Path::new(dir)),
        None => tiny(),
    };
    println!("inputs read in {:.2?}", t.elapsed());
    let t = Instant::now();
    let mut engine = Engine::new(policy, state, options).unwrap();
    println!(
        "engine ready: {} nodes in {:.2?}, peak RSS {} MiB",
        engine.snapshot().node_ids().count(),
        t.elapsed(),
        peak_rss_mib()
    );
    if let Some(refusal) = engine.snapshot().compiled().refusal() {
        println!(
            "the policy is refused, so every node is granted nothing and each event below \
             compiles in full: {refusal}"
        );
    }
    print_phases();

    // The reader: serves maps from the current snapshot while events are applied.
    let shared = engine.shared();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let snapshot = shared.load();
                if let Some(id) = snapshot.node_ids().next() {
                    let _ = snapshot.node(id).map(|v| v.to_wire());
                    served.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };

    let snapshot = engine.snapshot();
    let owner = engine.state().users.first().map_or(1, |u| u.id);
    let next_id = snapshot.node_ids().last().unwrap_or(0) + 1;
    let tagged = engine
        .state()
        .nodes
        .into_iter()
        .find(|n| !n.tags.is_empty())
        .unwrap();
    let router = engine
        .state()
        .nodes
        .into_iter()
        .find(|n| n.tags.iter().any(|t| t.contains("router")))
        .unwrap_or_else(|| tagged.clone());

    // Questions, before the events change the tailnet.
    let snapshot = engine.snapshot();
    println!(
        "may node {} apply tag:web? {}",
        tagged.name,
        snapshot.may_apply_tag(Tagger::Node(tagged.id), "tag:web")
    );
    println!(
        "is 10.1.2.0/24 auto-approved for {}? {}",
        router.name,
        snapshot.auto_approves(router.id, &"10.1.2.0/24".parse().unwrap())
    );
    if arg.is_none() {
        let decision = snapshot.ssh_decision(1, 3, "root").unwrap();
        if let SshOutcome::Check { period } = decision.action {
            match period {
                CheckPeriod::Every(d) => {
                    println!("alice-laptop -> web-1 as root: check every {d}");
                }
                CheckPeriod::Always => {
                    println!("alice-laptop -> web-1 as root: check on every login");
                }
            }
        }
        let why = snapshot.explain_flow(1, 3, 443, None).unwrap().unwrap();
        println!("alice-laptop -> web-1:443: {}", why.reason);
    }
    let other_tags = engine
        .state()
        .nodes
        .into_iter()
        .find(|n| !n.tags.is_empty() && n.tags != tagged.tags)
        .map_or_else(|| vec!["tag:router".to_string()], |n| n.tags);
    let inventory = engine.snapshot().inventory().clone();
    // Addresses for the nodes that join, past those in use (a workload's tailnet fills much
    // of the range: a fixed choice collided with one of its nodes).
    let nodes = engine.state().nodes;
    let used4: std::collections::HashSet<Ipv4Addr> = nodes.iter().filter_map(|n| n.ipv4).collect();
    let used6: std::collections::HashSet<Ipv6Addr> = nodes.iter().filter_map(|n| n.ipv6).collect();
    let fresh: Vec<u32> = (60_000u32..)
        .filter(|&i| !used4.contains(&v4(i)) && !used6.contains(&v6(i)))
        .take(51)
        .collect();
    let mut run = |what: &str, event: Event| {
        let t = Instant::now();
        let changes = engine.apply(event).unwrap();
        let took = t.elapsed();
        push(&engine, what, &changes, took);
    };
    run(
        "node joins",
        Event::UpsertNode(NodeRecord::owned(
            next_id,
            "new-laptop",
            owner,
            v4(fresh[0]),
            v6(fresh[0]),
        )),
    );
    let mut retagged = tagged.clone();
    retagged.tags = other_tags;
    let retagged_to = retagged.tags.clone();
    run("node retagged", Event::UpsertNode(retagged));
    run(
        "router advertises 10.1.2.0/24",
        Event::AdvertiseRoutes {
            node: router.id,
            routes: vec!["10.1.2.0/24".parse().unwrap()],
        },
    );
    run(
        "router goes offline",
        Event::SetOnline {
            node: router.id,
            online: false,
        },
    );
    let added = policy_text.replacen(
        "\"acls\": [",
        &format!(
            "\"acls\": [{{\"action\": \"accept\", \"src\": [\"autogroup:member\"], \"dst\": [\"{}:8443\"]}},",
            retagged_to[0]
        ),
        1,
    );
    run(
        "policy gains a rule",
        Event::ReplacePolicy(parse(&added, Some(&inventory))),
    );
    run("node leaves", Event::RemoveNode(next_id));

    // A burst: events that queued up while the server was busy are applied as one batch (one
    // compile, one change set for the lot).
    let burst: Vec<Event> = (1..=50u32)
        .map(|i| {
            Event::UpsertNode(NodeRecord::owned(
                next_id + u64::from(i),
                &format!("burst-{i}"),
                owner,
                v4(fresh[i as usize]),
                v6(fresh[i as usize]),
            ))
        })
        .collect();
    let t = Instant::now();
    let changes = engine.apply_batch(burst).unwrap();
    push(&engine, "50 nodes join (one batch)", &changes, t.elapsed());
    let t = Instant::now();
    let changes = engine
        .apply_batch((1..=50).map(|i| Event::RemoveNode(next_id + i)))
        .unwrap();
    push(&engine, "50 nodes leave (one batch)", &changes, t.elapsed());

    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    println!(
        "reader served {} maps meanwhile; peak RSS {} MiB",
        served.load(Ordering::Relaxed),
        peak_rss_mib()
    );
}
