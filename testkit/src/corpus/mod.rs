//! The conformance corpus (`testdata/conformance`): the case files, the inputs a case gives
//! `aclc`, the ratchet lists of passing cases, the known defects, and `check.py`'s way of
//! comparing an output with a capture ([`compare`]).
//!
//! A case is a JSON file `cases/<category>/<id>.json` with `id`, `category`, `policy`
//! (`text`, `format`), `topology`, `tailnet` and `expect`; it is handled as a
//! `serde_json::Value`, so every crate of the workspace can use this module.

pub mod compare;
mod ratchet;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use ratchet::Ratchet;

/// `testdata/conformance` (canonical when it exists).
pub fn conformance_dir() -> PathBuf {
    let path = crate::workspace_root().join("testdata/conformance");
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// `testdata/conformance/cases`, one folder per category.
pub fn cases_dir() -> PathBuf {
    conformance_dir().join("cases")
}

/// Every case file of every category, sorted by path (`<category>/<id>.json`).
pub fn case_files() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for category in std::fs::read_dir(cases_dir()).expect("the cases directory") {
        let category = category.unwrap().path();
        if category.is_dir() {
            paths.extend(json_files(&category));
        }
    }
    paths.sort();
    paths
}

/// One case file, read.
pub fn read_case(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every case, sorted by path (so by category, then id).
pub fn all_cases() -> Vec<Value> {
    case_files().iter().map(|p| read_case(p)).collect()
}

/// Every case of the given categories, sorted by id.
pub fn cases(categories: &[&str]) -> Vec<Value> {
    let mut out: Vec<Value> = categories
        .iter()
        .flat_map(|category| json_files(&cases_dir().join(category)))
        .map(|p| read_case(&p))
        .collect();
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

/// The `.json` files directly in `dir`, unsorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// A case's id.
pub fn id(case: &Value) -> &str {
    case["id"].as_str().expect("every case has an id")
}

/// A case's category.
pub fn category(case: &Value) -> &str {
    case["category"]
        .as_str()
        .expect("every case has a category")
}

/// A case's policy text, as uploaded.
pub fn policy_text(case: &Value) -> &str {
    case["policy"]["text"]
        .as_str()
        .expect("every case has a policy text")
}

/// The inventory a case gives `aclc` (`--inventory`): its `topology` with its `tailnet`
/// (`{}` when the case has none), as `check.py` writes it.
pub fn inventory_json(case: &Value) -> Value {
    let mut inventory = case["topology"].clone();
    inventory["tailnet"] = case
        .get("tailnet")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    inventory
}

/// `category/id` of the cases `DEFECTS.md` lists as defective in `mode` (`compile` or
/// `check`): list items starting with a backticked id, optionally followed by
/// `(compile mode)` or `(check mode)` when the defect shows in one mode only.
pub fn known_defects(mode: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(conformance_dir().join("DEFECTS.md")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- `"))
        .filter_map(|l| l.split_once('`'))
        .filter(|(_, rest)| {
            let rest = rest.trim_start();
            !rest.starts_with("(compile mode)") && !rest.starts_with("(check mode)")
                || rest.starts_with(&format!("({mode} mode)"))
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_found() {
        let files = case_files();
        assert!(files.len() > 600, "only {} case files", files.len());
        let acl = cases(&["acl"]);
        assert!(acl.iter().all(|c| category(c) == "acl"));
        assert!(acl.windows(2).all(|w| id(&w[0]) <= id(&w[1])));
    }

    #[test]
    fn inventory_has_the_tailnet() {
        let case = serde_json::json!({"topology": {"nodes": []}});
        assert_eq!(
            inventory_json(&case),
            serde_json::json!({"nodes": [], "tailnet": {}})
        );
    }

    #[test]
    fn defects_are_read_per_mode() {
        assert!(known_defects("check").contains("ssh/ssh-e1"));
        let compile = known_defects("compile");
        assert!(compile.contains("ssh/ssh-e1"));
        assert!(
            compile.contains("policytest/policytest-allpass-grants-only-tag-src-ipv6-literal-dst")
        );
        assert!(!known_defects("check")
            .contains("policytest/policytest-allpass-grants-only-tag-src-ipv6-literal-dst"));
    }
}
