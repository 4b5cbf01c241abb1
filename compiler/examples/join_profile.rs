#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use aclc_compiler::engine::{Engine, EngineOptions, Event, NodeRecord, TailnetState};
use aclc_compiler::Inventory;
use aclc_testkit::workloads;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let kind = std::env::args().nth(1).unwrap_or("join".into());
    let n: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(10);
    let dir = workloads::workload_dir("large", 10, &["inventory.json", "policy.hujson"]).unwrap();
    let inventory =
        Inventory::from_json(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let text = std::fs::read_to_string(dir.join("policy.hujson")).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &text, &options);
    let policy = Arc::new(parsed.unwrap().policy);
    let used: HashSet<IpAddr> = inventory
        .nodes()
        .iter()
        .flat_map(|n| n.addresses())
        .collect();
    let mut engine = Engine::new(
        policy,
        TailnetState::from_inventory(&inventory),
        EngineOptions::default(),
    )
    .unwrap();
    let owner = engine.state().users[0].id;
    let base = engine.snapshot().node_ids().last().unwrap_or(0) + 1_000_000;
    let mut k = 0u32;
    for i in 0..n {
        let e = match kind.as_str() {
            "join" => {
                let (v4, v6) = loop {
                    k += 1;
                    let v4 = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 100, 0, 0)) + k);
                    let v6 = Ipv6Addr::new(
                        0xfd7a,
                        0x115c,
                        0xa1e0,
                        0xbe,
                        0,
                        0,
                        (k >> 16) as u16,
                        k as u16,
                    );
                    if !used.contains(&IpAddr::V4(v4)) && !used.contains(&IpAddr::V6(v6)) {
                        break (v4, v6);
                    }
                };
                Event::UpsertNode(NodeRecord::owned(
                    base + i,
                    &format!("bench-join-{i}"),
                    owner,
                    v4,
                    v6,
                ))
            }
            _ => panic!(),
        };
        let t = Instant::now();
        let c = engine.apply(e).unwrap();
        eprintln!(
            "{kind} {i}: {:.1?} changed {}",
            t.elapsed(),
            c.changed.len()
        );
    }
}
