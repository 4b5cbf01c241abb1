//! A host's scoped subscriber (`tracing::subscriber::with_default`) sees every phase of an
//! event, the side phases' too, which run on another thread: the engine carries the
//! subscriber there. The only test of its binary, because `tracing` keeps its level filter
//! and callsite interest process-wide, and scoped subscribers of tests running side by side
//! can leave them off for one another (`engine_phases.rs` uses one global subscriber).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use aclc_compiler::engine::{Engine, EngineOptions, Event, NodeRecord, TailnetState, UserRecord};
use aclc_compiler::phases;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The names of the spans opened, on any thread.
#[derive(Clone, Default)]
struct Names(Arc<Mutex<Vec<&'static str>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Names {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        self.0.lock().unwrap().push(attrs.metadata().name());
    }
}

#[test]
fn a_scoped_subscriber_sees_the_side_phases() {
    let text = r#"{"tagOwners": {"tag:web": ["alice@example.com"]},
        "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443"]}],
        "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web"], "users": ["root"]}]}"#;
    let (_, parsed) =
        aclc_policy::parse_str("policy.hujson", text, &aclc_policy::Options::default());
    let policy = Arc::new(parsed.unwrap().policy);
    let at = |i: u8| {
        (
            Ipv4Addr::new(100, 64, 0, i),
            Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i)),
        )
    };
    let (a1, b1) = at(1);
    let (a2, b2) = at(2);
    let state = TailnetState {
        users: vec![UserRecord {
            id: 1,
            login: "alice@example.com".to_string(),
            name: "alice".to_string(),
            roles: Vec::new(),
            groups: Vec::new(),
        }],
        nodes: vec![
            NodeRecord::owned(1, "alice-laptop", 1, a1, b1),
            NodeRecord::tagged(2, "web-1", &["tag:web"], a2, b2),
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    let mut engine = Engine::new(policy, state, EngineOptions::default()).unwrap();
    let names = Names::default();
    let subscriber = tracing_subscriber::registry().with(names.clone());
    let (a3, b3) = at(3);
    tracing::subscriber::with_default(subscriber, || {
        engine
            .apply(Event::UpsertNode(NodeRecord::owned(
                3,
                "alice-phone",
                1,
                a3,
                b3,
            )))
            .unwrap()
    });
    let seen = names.0.lock().unwrap().clone();
    for phase in [
        phases::EVENT,
        phases::LOWER,
        phases::SIDE,
        phases::FINGERPRINTS,
    ] {
        assert!(seen.contains(&phase), "{phase} not in {seen:?}");
    }
}
