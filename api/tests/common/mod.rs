//! What the API's test files share: the repository's examples and one call through the API.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use aclc_api::{Engine, API_VERSION};
use serde_json::Value;

/// A file of `testdata/examples`.
pub fn example(name: &str) -> String {
    let path = format!("{}/../testdata/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One request: the response, checked to start with its version.
pub fn call(engine: &mut Engine, request: Value) -> Value {
    let text = engine.call(request.to_string().as_bytes());
    assert!(
        text.starts_with(&format!("{{\"version\":{API_VERSION},")),
        "{text}"
    );
    serde_json::from_str(&text).unwrap()
}

/// The error kind of a response (empty when it is not an error).
pub fn kind(response: &Value) -> &str {
    response["error"]["kind"].as_str().unwrap_or("")
}
