//! Unit tests of the JSON API's entry points.

#![allow(clippy::panic)]
use super::*;

/// A node asked for twice is written once; past its bound the document is refused as
/// `too_large` (as a WebAssembly build bounds it) instead of growing on.
#[test]
#[allow(clippy::unwrap_used)]
fn nodes_documents_are_bounded_and_name_each_node_once() {
    let example = |name: &str| {
        let path = format!("{}/../testdata/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    };
    let mut api = Engine::default();
    let request = serde_json::json!({"version": 1, "op": "load",
            "policy": example("policy.hujson"), "inventory": example("inventory.json")});
    let loaded: Value = serde_json::from_str(&api.call(request.to_string().as_bytes())).unwrap();
    let handle = loaded["handle"].as_u64().unwrap();
    let compiled = &api.loaded.get(&handle).unwrap().compiled;
    let twice = nodes_document(compiled, ["web-1", "web-1"].into_iter(), usize::MAX).unwrap();
    let doc: Value = serde_json::from_str(&twice).unwrap();
    assert_eq!(doc["nodes"].as_object().unwrap().len(), 1);
    assert_eq!(twice.matches("\"web-1\":").count(), 1, "{twice}");
    let whole = nodes_document(compiled, compiled.node_names(), usize::MAX).unwrap();
    let failure = nodes_document(compiled, compiled.node_names(), whole.len() / 2).unwrap_err();
    assert_eq!(failure.kind, "too_large");
    assert!(nodes_document(compiled, compiled.node_names(), whole.len()).is_ok());
    // What the peers take at least is a lower bound of the document (every limit from it
    // up builds maps before refusing), and a limit below it is refused before any map.
    let shortest = compiled.node_names().map(str::len).min().unwrap();
    let least: usize = compiled
        .node_names()
        .map(|n| compiled.peer_count(n).unwrap() * (shortest + PEER_LEAST))
        .sum();
    assert!(least > 0 && least <= whole.len(), "{least} {}", whole.len());
    let early = nodes_document(compiled, compiled.node_names(), least - 1).unwrap_err();
    assert!(
        early.message.contains("before any map"),
        "{}",
        early.message
    );
    let late = nodes_document(compiled, compiled.node_names(), least).unwrap_err();
    assert!(late.message.contains("after"), "{}", late.message);
    let unknown = nodes_document(compiled, ["web-1", "nope"].into_iter(), 0).unwrap_err();
    assert_eq!(unknown.kind, "unknown_node");
}

#[test]
fn a_panic_is_an_error_of_kind_panic() {
    let text = guarded(|| panic!("boom"));
    assert_eq!(
        text,
        r#"{"version":1,"error":{"kind":"panic","message":"aclc panicked (this is a bug): boom"}}"#
    );
    let text = guarded(|| panic!("{}", String::from("formatted")));
    assert!(text.contains("formatted"), "{text}");
}
