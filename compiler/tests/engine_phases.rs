//! The engine's phase spans ([`aclc_compiler::phases`]) as a host's `tracing` subscriber sees
//! them, and what they say about an event's path: a sole router going offline (which changes
//! no map) must not make the next policy event fingerprint every node.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use aclc_compiler::engine::{Event, NodeRecord};
use aclc_compiler::phases;
use tracing::field::{Field, Visit};

mod phases_tailnet;
use phases_tailnet::{addresses, engine, policy};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What a span said: its name, and each field recorded on it (at creation or later).
#[derive(Debug, Default, Clone)]
struct Seen {
    name: &'static str,
    fields: Vec<(String, String)>,
}

/// Every span created, in order, with its fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
}

/// The index of a span in [`Spans`], kept in the span's extensions.
struct At(usize);

thread_local! {
    /// The spans of the test running on this thread, while it looks ([`Spans::during`]).
    static CURRENT: std::cell::RefCell<Option<Spans>> = const { std::cell::RefCell::new(None) };
}

/// The process's subscriber: each span goes to the [`Spans`] of the test on the thread that
/// opens it (or of its parent span, on another thread). One global subscriber, not one scoped subscriber per test: `tracing` keeps the
/// level filter and each callsite's interest process-wide, and a test's scoped subscriber
/// dropped while another test ran could leave them off, so a phase span went unseen (about
/// 3 runs in 100 with the tests in parallel).
struct Routed;

impl<S> tracing_subscriber::Layer<S> for Routed
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        // The test on this thread, or, for a span opened on another thread (the side phases
        // run beside the lowering), the test of its parent.
        let of_parent = || {
            let parent = ctx.span(id)?.parent()?;
            let extensions = parent.extensions();
            extensions
                .get::<(At, Spans)>()
                .map(|(_, spans)| spans.clone())
        };
        let Some(spans) = CURRENT.with(|c| c.borrow().clone()).or_else(of_parent) else {
            return;
        };
        let mut seen = Seen {
            name: attrs.metadata().name(),
            fields: Vec::new(),
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let mut list = spans.0.lock().unwrap();
        list.push(seen);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert((At(list.len() - 1), spans.clone()));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let found = span
            .extensions()
            .get::<(At, Spans)>()
            .map(|(At(at), spans)| (*at, spans.clone()));
        let Some((at, spans)) = found else { return };
        let mut list = spans.0.lock().unwrap();
        if let Some(seen) = list.get_mut(at) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

impl Spans {
    /// The spans seen while `f` ran (on this thread), and `f`'s result.
    fn during<T>(f: impl FnOnce() -> T) -> (Vec<Seen>, T) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Routed))
                .unwrap();
        });
        let spans = Spans::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(spans.clone()));
        let out = f();
        CURRENT.with(|c| *c.borrow_mut() = None);
        let seen = spans.0.lock().unwrap().clone();
        (seen, out)
    }
}

/// The value last recorded for field `name` of `span`.
fn field<'a>(span: &'a Seen, name: &str) -> Option<&'a str> {
    span.fields
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_event_opens_each_phase_span_under_its_own() {
    let mut engine = engine();
    let (a, b) = addresses(4);
    let (seen, changes) = Spans::during(|| {
        engine
            .apply(Event::UpsertNode(NodeRecord::owned(
                4,
                "alice-phone",
                1,
                a,
                b,
            )))
            .unwrap()
    });
    assert!(!changes.is_empty());
    let names: Vec<&str> = seen.iter().map(|s| s.name).collect();
    // The side phases run on this thread on a tailnet this small.
    for phase in [
        phases::EVENT,
        phases::INPUTS,
        phases::COMPILE,
        phases::TABLE,
        phases::LOWER,
        phases::SIDE,
        phases::PEERS,
        phases::FINGERPRINTS,
        phases::CHANGE_SET,
    ] {
        assert!(names.contains(&phase), "{phase} not in {names:?}");
    }
    let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
    assert_eq!(field(event, "path"), Some("\"node\""), "{event:?}");
    let changed = changes.changed.len() + changes.removed.len();
    assert_eq!(field(event, "changed"), Some(changed.to_string().as_str()));
}

/// A sole router going offline changes no map, so the engine makes no snapshot; the node
/// table it kept still had the router online. The next policy event compared the tables'
/// online flags, found them different and fingerprinted every node (15 s on `large`, where
/// adding the rule takes 0.4 s otherwise). A route's servers in the same order are what
/// matter; the event keeps to the nodes the new rule reaches.
#[test]
fn a_sole_router_offline_leaves_the_next_policy_event_narrow() {
    let mut engine = engine();
    let offline = engine
        .apply(Event::SetOnline {
            node: 3,
            online: false,
        })
        .unwrap();
    assert!(offline.is_empty(), "{offline:?}");
    let (seen, changes) =
        Spans::during(|| engine.apply(Event::ReplacePolicy(policy(true))).unwrap());
    let prints = seen
        .iter()
        .find(|s| s.name == phases::FINGERPRINTS)
        .expect("the policy event fingerprints");
    assert_eq!(field(prints, "every"), None, "{prints:?}");
    let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
    assert_eq!(field(event, "path"), Some("\"policy\""), "{event:?}");
    // The rule reaches web-1 only.
    assert_eq!(changes.changed_ids().collect::<Vec<_>>(), vec![2]);
    // And the router's offline state reached this compile: back online, nothing changes
    // (it is the route's only server either way).
    let online = engine
        .apply(Event::SetOnline {
            node: 3,
            online: true,
        })
        .unwrap();
    assert!(online.is_empty(), "{online:?}");
}

/// A router joining or leaving took the every-node path (12 s on `large`): it is applied as
/// two narrow steps, its node and its routes, and its change set is still the difference
/// from before the first step to after the second (the property tests compare it with a
/// full recompile's; here, what the router's peers see).
#[test]
fn a_router_joins_and_leaves_in_two_narrow_steps() {
    let mut engine = engine();
    let (a, b) = addresses(5);
    let mut router = NodeRecord::tagged(5, "router-2", &["tag:router"], a, b);
    router.advertised_routes = vec!["10.1.1.0/24".parse().unwrap()];
    router.approved_routes = router.advertised_routes.clone();
    let (seen, joined) = Spans::during(|| engine.apply(Event::UpsertNode(router)).unwrap());
    let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
    assert_eq!(field(event, "path"), Some("\"steps\""), "{event:?}");
    let prints: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.name == phases::FINGERPRINTS)
        .collect();
    assert_eq!(prints.len(), 2, "{seen:?}");
    assert!(
        prints.iter().all(|p| field(p, "every").is_none()),
        "{prints:?}"
    );
    // The member sees the new route (10.1.0.0/16 is in its rules), the router is new.
    let mut ids: Vec<u64> = joined.changed_ids().collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 5], "{joined:?}");
    let view = engine.snapshot().node(1).unwrap().to_wire();
    let text = serde_json::to_string(&view).unwrap();
    assert!(text.contains("10.1.1.0/24"), "{text}");

    let (seen, left) = Spans::during(|| engine.apply(Event::RemoveNode(5)).unwrap());
    let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
    assert_eq!(field(event, "path"), Some("\"steps\""), "{event:?}");
    assert_eq!(left.removed.iter().copied().collect::<Vec<_>>(), vec![5]);
    assert_eq!(left.changed_ids().collect::<Vec<_>>(), vec![1], "{left:?}");
    let text = serde_json::to_string(&engine.snapshot().node(1).unwrap().to_wire()).unwrap();
    assert!(!text.contains("10.1.1.0/24"), "{text}");
}

/// The nodes of `ids` whose map (wire JSON) differs between `before` and `after` (a node in
/// one of them only included), in the order of `ids`.
fn differing(
    before: &aclc_compiler::engine::Snapshot,
    after: &aclc_compiler::engine::Snapshot,
    ids: &[u64],
) -> Vec<u64> {
    let map = |snapshot: &aclc_compiler::engine::Snapshot, id: u64| {
        snapshot
            .node(id)
            .map(|v| serde_json::to_string(&v.to_wire()).unwrap())
    };
    ids.iter()
        .copied()
        .filter(|&id| map(before, id) != map(after, id))
        .collect()
}

/// `svc:web` at `v4`, hosted by `hosts`, each approved.
fn service(v4: std::net::Ipv4Addr, hosts: &[u64]) -> Event {
    Event::UpsertService(aclc_compiler::engine::ServiceRecord {
        name: "svc:web".to_string(),
        ipv4: Some(v4),
        ipv6: None,
        hosts: hosts.to_vec(),
        approved_hosts: hosts.to_vec(),
        tags: Vec::new(),
    })
}

/// A batch that replaces the policy or changes a Service beside node events took the
/// every-node path (about 5 s on `large`): it runs in narrow steps, the policy or Service
/// first, and its change set is exactly the nodes whose map differs. A batch where a
/// Service takes the address a leaving node frees cannot run Service first (the state
/// between the steps is invalid): it is accepted on the every-node path, not refused.
#[test]
fn policy_and_service_changes_in_a_batch_take_narrow_steps() {
    let ids = [1, 2, 3, 4, 5];
    let (a4, b4) = addresses(4);
    let (a5, b5) = addresses(5);
    let batches: Vec<(Vec<Event>, &str)> = vec![
        (
            vec![
                Event::ReplacePolicy(policy(true)),
                Event::UpsertNode(NodeRecord::owned(4, "bob-laptop", 1, a4, b4)),
            ],
            "steps",
        ),
        (
            vec![
                Event::UpsertNode(NodeRecord::owned(5, "carol-laptop", 1, a5, b5)),
                service(std::net::Ipv4Addr::new(100, 100, 0, 9), &[2]),
                Event::RemoveNode(4),
            ],
            "steps",
        ),
        (
            vec![
                Event::ReplacePolicy(policy(false)),
                service(std::net::Ipv4Addr::new(100, 100, 0, 10), &[2]),
                Event::UpsertNode(NodeRecord::owned(4, "bob-laptop", 1, a4, b4)),
            ],
            "steps",
        ),
        (vec![Event::RemoveNode(5), service(a5, &[2])], "everything"),
    ];
    let mut engine = engine();
    for (batch, path) in batches {
        let before = engine.snapshot();
        let (seen, changes) = Spans::during(|| engine.apply_batch(batch).unwrap());
        let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
        assert_eq!(
            field(event, "path"),
            Some(format!("\"{path}\"").as_str()),
            "{event:?}"
        );
        if path == "steps" {
            let prints: Vec<&Seen> = seen
                .iter()
                .filter(|s| s.name == phases::FINGERPRINTS)
                .collect();
            assert!(prints.len() >= 2, "{seen:?}");
            assert!(
                prints.iter().all(|p| field(p, "every").is_none()),
                "{prints:?}"
            );
        }
        let mut differ = differing(&before, &engine.snapshot(), &ids);
        let mut listed: Vec<u64> = changes
            .changed_ids()
            .chain(changes.removed.iter().copied())
            .collect();
        differ.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, differ, "{changes:?}");
        assert!(!listed.is_empty());
    }
}

/// Each step costs a compile: a batch of many routers (a route step each way) cost about
/// 0.12 s a router on `large` (1,000 routers retagged at once would have taken two
/// minutes), where the every-node path costs one compile and every fingerprint, 5-7 s. A
/// batch needing more than 64 steps takes the every-node path.
#[test]
fn a_batch_of_many_routers_takes_the_every_node_path() {
    let router = |i: u8| {
        let (a, b) = addresses(10 + i);
        let mut r = NodeRecord::tagged(
            10 + u64::from(i),
            &format!("router-x{i}"),
            &["tag:router"],
            a,
            b,
        );
        r.advertised_routes = vec![format!("10.2.{i}.0/24").parse().unwrap()];
        r.approved_routes = r.advertised_routes.clone();
        r
    };
    let mut engine = engine();
    for (count, path) in [(3u8, "steps"), (40, "steps"), (70, "everything")] {
        let joins: Vec<Event> = (0..count).map(|i| Event::UpsertNode(router(i))).collect();
        let (seen, _) = Spans::during(|| engine.apply_batch(joins).unwrap());
        let event = seen.iter().find(|s| s.name == phases::EVENT).unwrap();
        assert_eq!(
            field(event, "path"),
            Some(format!("\"{path}\"").as_str()),
            "{count}"
        );
        let leaves: Vec<Event> = (0..count)
            .map(|i| Event::RemoveNode(10 + u64::from(i)))
            .collect();
        engine.apply_batch(leaves).unwrap();
    }
}

/// A route event patches each route server's entry at each of its peers; past 256 servers
/// (a Service with that many hosts) that cost more than fingerprinting every node (a Service
/// of 3,000 hosts on `large` took 20-37 s): the event fingerprints every node instead, and
/// its change set is still exactly the nodes whose map differs.
#[test]
fn a_service_with_many_hosts_fingerprints_every_node() {
    let mut engine = engine();
    let hosts: Vec<u64> = (0..260u64).map(|i| 100 + i).collect();
    let joins: Vec<Event> = hosts
        .iter()
        .map(|&id| {
            let n = u32::try_from(id).unwrap();
            let a = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 65, 0, 0)) + n);
            let b = std::net::Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 1, n as u16);
            Event::UpsertNode(NodeRecord::tagged(
                id,
                &format!("web-h{id}"),
                &["tag:web"],
                a,
                b,
            ))
        })
        .collect();
    engine.apply_batch(joins).unwrap();
    let vip = std::net::Ipv4Addr::new(100, 100, 0, 9);
    let ids: Vec<u64> = [1, 2, 3].into_iter().chain(hosts.iter().copied()).collect();
    for (event, every) in [
        (service(vip, &hosts[..10]), false),
        (service(vip, &hosts), true),
    ] {
        let before = engine.snapshot();
        let (seen, changes) = Spans::during(|| engine.apply(event).unwrap());
        let prints = seen
            .iter()
            .find(|s| s.name == phases::FINGERPRINTS)
            .unwrap();
        assert_eq!(field(prints, "every").is_some(), every, "{prints:?}");
        let differ = differing(&before, &engine.snapshot(), &ids);
        let mut listed: Vec<u64> = changes.changed_ids().collect();
        listed.sort_unstable();
        assert_eq!(listed, differ);
    }
}

/// The node path costs about 0.6 ms per changed node on `large` (20,000 joins in one batch
/// took 13 s, where fingerprinting every node takes 5.5-8.2 s): past 64 changed nodes and an
/// eighth of the tailnet, an event fingerprints every node, its change set still exact.
#[test]
fn a_batch_of_many_joins_fingerprints_every_node() {
    let mut engine = engine();
    let device = |id: u64| {
        let n = u32::try_from(id).unwrap();
        let a = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 66, 0, 0)) + n);
        let b = std::net::Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 2, n as u16);
        NodeRecord::owned(id, &format!("laptop-{id}"), 1, a, b)
    };
    for (count, every) in [(60u64, false), (70, true)] {
        let ids: Vec<u64> = (1..=3).chain((0..count).map(|i| 1000 + i)).collect();
        let before = engine.snapshot();
        let joins: Vec<Event> = (0..count)
            .map(|i| Event::UpsertNode(device(1000 + i)))
            .collect();
        let (seen, changes) = Spans::during(|| engine.apply_batch(joins).unwrap());
        let prints = seen
            .iter()
            .find(|s| s.name == phases::FINGERPRINTS)
            .unwrap();
        assert_eq!(
            field(prints, "every").is_some(),
            every,
            "{count}: {prints:?}"
        );
        let differ = differing(&before, &engine.snapshot(), &ids);
        let mut listed: Vec<u64> = changes.changed_ids().collect();
        listed.sort_unstable();
        assert_eq!(listed, differ);
        let leaves: Vec<Event> = (0..count).map(|i| Event::RemoveNode(1000 + i)).collect();
        engine.apply_batch(leaves).unwrap();
    }
}
