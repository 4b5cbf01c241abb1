//! Fuzz target: the control-server engine on any accepted policy and inventory never panics;
//! removing each node (or Tailscale Service) and adding it back restores every node's map
//! exactly; every change set names only nodes of the tailnet.
//!
//! Input: as `compile` (policy text, NUL, inventory JSON; the example inventory without a NUL).
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aclc_compiler::engine::{Engine, EngineOptions, Event, Snapshot, TailnetState};
use libfuzzer_sys::fuzz_target;

/// Every node's wire output, by id.
fn maps(snapshot: &Snapshot) -> BTreeMap<u64, String> {
    snapshot
        .node_ids()
        .filter_map(|id| {
            let view = snapshot.node(id)?;
            Some((id, serde_json::to_string(&view.to_wire()).unwrap()))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((_, policy, inventory)) = aclc_fuzz::load(data) else {
        return;
    };
    let state = TailnetState::from_inventory(&inventory);
    let Ok(mut engine) = Engine::new(Arc::new(policy), state.clone(), EngineOptions::default())
    else {
        return;
    };
    let before = maps(&engine.snapshot());
    let ids: BTreeSet<u64> = before.keys().copied().collect();
    // A few nodes at most: each event may recompile.
    for record in state.nodes.iter().take(3) {
        let Ok(gone) = engine.apply(Event::RemoveNode(record.id)) else {
            continue;
        };
        assert!(
            gone.changed_ids().all(|id| ids.contains(&id)),
            "change set names a stranger"
        );
        let back = engine
            .apply(Event::UpsertNode(record.clone()))
            .expect("a node that was there can come back");
        assert!(
            back.changed_ids().all(|id| ids.contains(&id)),
            "change set names a stranger"
        );
        assert_eq!(
            maps(&engine.snapshot()),
            before,
            "remove then re-add changed a map"
        );
    }
    for service in state.services.iter().take(2) {
        if engine
            .apply(Event::RemoveService(service.name.clone()))
            .is_err()
        {
            continue;
        }
        engine
            .apply(Event::UpsertService(service.clone()))
            .expect("a service that was there can come back");
        assert_eq!(
            maps(&engine.snapshot()),
            before,
            "remove then re-add of a service changed a map"
        );
    }
});
