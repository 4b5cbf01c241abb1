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

use std::sync::{Arc, Mutex};

use aclc_compiler::engine::{Event, NodeRecord};
use aclc_compiler::phases;
use tracing_subscriber::layer::{Context, SubscriberExt};

mod phases_tailnet;
use phases_tailnet::{addresses, engine};

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
    let mut engine = engine();
    let names = Names::default();
    let subscriber = tracing_subscriber::registry().with(names.clone());
    let (a, b) = addresses(4);
    tracing::subscriber::with_default(subscriber, || {
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
