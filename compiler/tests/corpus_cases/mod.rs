//! Loading conformance cases for the library-level corpus tests: the case files, and each
//! case's policy parsed and compiled the way `check.py` has `aclc` do it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::path::{Path, PathBuf};

use aclc_compiler::{compile, Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_policy::Source;
use serde_json::Value;

fn testdata() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance");
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Every case of the given categories, sorted by id.
pub fn cases(categories: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for category in categories {
        let dir = testdata().join("cases").join(category);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
            }
        }
    }
    out.sort_by(|a: &Value, b: &Value| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

/// A case's policy and compiled tailnet, or `None` when the policy crate refuses it.
pub struct Loaded {
    pub source: Source,
    pub policy: Policy,
    pub compiled: Compiled,
}

pub fn load(case: &Value) -> Option<Loaded> {
    let mut inventory = case["topology"].clone();
    inventory["tailnet"] = case
        .get("tailnet")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let inventory = Inventory::from_json(&inventory.to_string()).unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", case["policy"]["text"].as_str().unwrap());
    let checked = aclc_policy::parse(&source, &options).ok()?;
    let compiled = compile(&checked.policy, &inventory);
    Some(Loaded {
        source,
        policy: checked.policy,
        compiled,
    })
}

/// Null, `[]` and `{}` are the same thing to the corpus comparison.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}
