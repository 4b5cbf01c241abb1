//! Fuzz target: the embedding API, the entry point of the C ABI, Go and npm. Any bytes as a
//! raw request, or, after a NUL, a policy and an inventory put in well-formed requests of
//! every operation on them (load, then node maps, compile, explain, test, diff, an engine
//! and its events): every response is a JSON object with the API's version, and no request
//! makes aclc panic (`Engine::call` would report it as an error of kind `panic`).
#![no_main]

use aclc_api::{Engine, API_VERSION};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn call(api: &mut Engine, request: &[u8]) -> Value {
    let text = api.call(request);
    assert!(
        text.starts_with(&format!("{{\"version\":{API_VERSION},")),
        "{text}"
    );
    let value: Value = serde_json::from_str(&text).expect("a response is JSON");
    assert_ne!(value["error"]["kind"], "panic", "{text}");
    value
}

fn request(api: &mut Engine, value: Value) -> Value {
    call(api, value.to_string().as_bytes())
}

/// The first `n` entries of a response's list that `each` reads.
fn first<T>(list: &Value, n: usize, each: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(each)
        .take(n)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut api = Engine::default();
    let Some(cut) = data.iter().position(|&b| b == 0) else {
        call(&mut api, data);
        return;
    };
    let (Ok(policy), Ok(inventory)) = (
        std::str::from_utf8(&data[..cut]),
        std::str::from_utf8(&data[cut + 1..]),
    ) else {
        return;
    };
    request(
        &mut api,
        json!({"version": 1, "op": "check", "policy": policy, "inventory": inventory}),
    );
    request(
        &mut api,
        json!({"version": 1, "op": "fmt", "policy": policy}),
    );
    let loaded = request(
        &mut api,
        json!({"version": 1, "op": "load", "policy": policy, "inventory": inventory}),
    );
    if let Some(handle) = loaded["handle"].as_u64() {
        let names: Vec<String> = first(&loaded["nodes"], 4, |n| n.as_str().map(str::to_string));
        for name in &names {
            request(
                &mut api,
                json!({"version": 1, "op": "node_map", "handle": handle, "node": name}),
            );
        }
        if let [a, b, ..] = &names[..] {
            request(
                &mut api,
                json!({"version": 1, "op": "explain", "handle": handle,
                "src": a, "dst": format!("{b}:22")}),
            );
        }
        request(
            &mut api,
            json!({"version": 1, "op": "free", "handle": handle}),
        );
    }
    request(
        &mut api,
        json!({"version": 1, "op": "test", "policy": policy, "inventory": inventory}),
    );
    request(
        &mut api,
        json!({"version": 1, "op": "diff", "old": policy, "new": policy, "inventory": inventory}),
    );
    let engine = request(
        &mut api,
        json!({"version": 1, "op": "engine_new", "policy": policy, "inventory": inventory}),
    );
    if let Some(handle) = engine["handle"].as_u64() {
        let ids: Vec<u64> = first(&engine["nodes"], 3, |n| n["id"].as_u64());
        for id in &ids {
            request(
                &mut api,
                json!({"version": 1, "op": "engine_map", "handle": handle, "node": id}),
            );
            request(
                &mut api,
                json!({"version": 1, "op": "engine_apply", "handle": handle,
                "event": {"type": "set_online", "node": id, "online": false}}),
            );
        }
        if let Some(id) = ids.first() {
            request(
                &mut api,
                json!({"version": 1, "op": "engine_apply", "handle": handle,
                "event": {"type": "remove_node", "node": id}}),
            );
        }
        request(
            &mut api,
            json!({"version": 1, "op": "engine_apply", "handle": handle,
            "event": {"type": "replace_policy", "policy": policy}}),
        );
    }
});
