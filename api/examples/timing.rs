//! Native timings of the embedding API on a generated workload, the baseline the Go and npm
//! packages' figures are compared with (docs/embedding.md): `cargo run --release -p aclc-api
//! --example timing -- target/bench-workloads/medium`. Same requests, same engine, no
//! WebAssembly.

use std::time::{Duration, Instant};

use aclc_api::Engine;
use serde_json::{json, Value};

fn timed(engine: &mut Engine, request: &Value) -> (Duration, Value) {
    let text = request.to_string();
    let start = Instant::now();
    let response = engine.call(text.as_bytes());
    let elapsed = start.elapsed();
    (
        elapsed,
        serde_json::from_str(&response).unwrap_or(Value::Null),
    )
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: timing WORKLOAD_DIR (e.g. target/bench-workloads/medium)");
        std::process::exit(1);
    };
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}"));
    let (Ok(policy), Ok(inventory)) = (read("policy.hujson"), read("inventory.json")) else {
        eprintln!("no policy.hujson and inventory.json in {dir}");
        std::process::exit(1);
    };
    let mut engine = Engine::new();
    let check = json!({"version": 1, "op": "check", "policy": policy});
    let mut best = Duration::MAX;
    for _ in 0..10 {
        best = best.min(timed(&mut engine, &check).0);
    }
    println!("check: {best:?} (best of 10)");
    let load = json!({"version": 1, "op": "load", "policy": policy, "inventory": inventory});
    for i in 1..=3 {
        let (elapsed, response) = timed(&mut engine, &load);
        let handle = response.get("handle").cloned().unwrap_or(Value::Null);
        if i == 1 {
            let node = response
                .get("nodes")
                .and_then(Value::as_array)
                .and_then(|nodes| nodes.get(nodes.len() / 2))
                .cloned()
                .unwrap_or(Value::Null);
            let map = json!({"version": 1, "op": "node_map", "handle": handle, "node": node});
            let mut best = Duration::MAX;
            for _ in 0..10 {
                best = best.min(timed(&mut engine, &map).0);
            }
            println!("node_map: {best:?} (best of 10)");
        }
        println!("compile #{i}: {elapsed:?}");
        timed(
            &mut engine,
            &json!({"version": 1, "op": "free", "handle": handle}),
        );
    }
}
