//! Golden-corpus harness for `aclc check`: runs the binary on every conformance case the way
//! `check.py --mode check --skip-tests` does, and holds the result to the ratchet in
//! `testdata/conformance/check.passing` (cases listed there must keep passing; the list only
//! grows). `ACLC_UPDATE_RATCHET=1 cargo test -p aclc --test conformance` adds newly passing cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

fn testdata() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance");
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Every case file, sorted by path.
fn case_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for category in std::fs::read_dir(testdata().join("cases")).unwrap() {
        let category = category.unwrap().path();
        if !category.is_dir() {
            continue;
        }
        for case in std::fs::read_dir(&category).unwrap() {
            let path = case.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}

/// Outcome of one case: `Ok` when it passed, else why not.
struct Outcome {
    id: String,
    category: String,
    result: Result<(), String>,
}

/// Run `aclc check` on one case and judge it as `check.py --mode check` does.
fn run_case(case: &Value, scratch: &Path) -> Result<(), String> {
    let id = case["id"].as_str().unwrap();
    let dir = scratch.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let suffix = if case["policy"]["format"] == "hujson" {
        "hujson"
    } else {
        "json"
    };
    let policy = dir.join(format!("policy.{suffix}"));
    std::fs::write(&policy, case["policy"]["text"].as_str().unwrap()).unwrap();
    let mut inventory = case["topology"].clone();
    inventory["tailnet"] = case
        .get("tailnet")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let inventory_path = dir.join("inventory.json");
    std::fs::write(&inventory_path, inventory.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aclc"))
        .arg("check")
        .arg(&policy)
        .arg("--inventory")
        .arg(&inventory_path)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let code = output.status.code();
    let out: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let messages: Vec<&str> = out["diagnostics"]
        .as_array()
        .map(|ds| ds.iter().filter_map(|d| d["message"].as_str()).collect())
        .unwrap_or_default();
    let expect = &case["expect"];
    if expect["outcome"] == "rejected" {
        let want = expect["error"].as_str().unwrap();
        if code != Some(2) {
            return Err(format!("expected exit 2 with {want:?}, got exit {code:?}"));
        }
        if !messages.iter().any(|m| m.contains(want)) {
            let first: Vec<_> = messages.iter().take(3).collect();
            return Err(format!("expected error {want:?}, got {first:?}"));
        }
        return Ok(());
    }
    if code != Some(0) {
        let first: Vec<_> = messages.iter().take(3).collect();
        return Err(format!("expected exit 0, got exit {code:?}: {first:?}"));
    }
    Ok(())
}

/// Run every case (except those refused because their tests failed, like `--skip-tests`) on
/// all cores.
fn run_all() -> Vec<Outcome> {
    let cases: Vec<Value> = case_paths()
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .filter(|c: &Value| c["expect"]["tests"] != "fail")
        .collect();
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-check");
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(cases.len()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = Outcome {
                    id: case["id"].as_str().unwrap().to_string(),
                    category: case["category"].as_str().unwrap().to_string(),
                    result: run_case(case, &scratch),
                };
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    outcomes
}

/// Case ids in a ratchet file: one per line; blank lines and `#` comments ignored.
fn read_ratchet(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// `category/id` of the cases listed in DEFECTS.md (list items starting with a backticked id).
fn known_defects() -> BTreeSet<String> {
    let text = std::fs::read_to_string(testdata().join("DEFECTS.md")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- `"))
        .filter_map(|l| l.split_once('`').map(|(id, _)| id.to_string()))
        .collect()
}

#[test]
fn check_mode_ratchet() {
    let outcomes = run_all();
    assert!(outcomes.len() > 600, "only {} cases found", outcomes.len());
    let ratchet_path = testdata().join("check.passing");
    let listed = read_ratchet(&ratchet_path);
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        listed,
        sorted,
        "{} must be sorted, without duplicates",
        ratchet_path.display()
    );
    let listed: BTreeSet<String> = listed.into_iter().collect();

    let mut per_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let entry = per_category.entry(&o.category).or_default();
        entry.1 += 1;
        entry.0 += usize::from(o.result.is_ok());
    }
    for (category, (ok, total)) in &per_category {
        println!("{category:12} {ok:4}/{total:<4} passed");
    }
    let passing: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.id.clone())
        .collect();
    println!(
        "conformance (check): {}/{} passed",
        passing.len(),
        outcomes.len()
    );

    let defects = known_defects();
    for o in &outcomes {
        let key = format!("{}/{}", o.category, o.id);
        if defects.contains(&key) && o.result.is_ok() {
            println!("known defect {key} passes now: update DEFECTS.md");
        }
    }

    let by_id: BTreeMap<&str, &Outcome> = outcomes.iter().map(|o| (o.id.as_str(), o)).collect();
    let regressions: Vec<String> = listed
        .iter()
        .filter(|id| !passing.contains(*id))
        .map(|id| match by_id.get(id.as_str()) {
            Some(o) => format!(
                "{}/{}: {}",
                o.category,
                id,
                o.result.as_ref().err().map_or("", String::as_str)
            ),
            None => format!("{id}: no such case"),
        })
        .collect();
    let new: Vec<&String> = passing.difference(&listed).collect();
    if !new.is_empty() {
        println!(
            "{} newly passing case(s), not yet in {}:",
            new.len(),
            ratchet_path.display()
        );
        for id in &new {
            println!("    {id}");
        }
    }
    if std::env::var_os("ACLC_UPDATE_RATCHET").is_some_and(|v| v == "1") {
        // Only ever add: a listed case that fails stays listed (and fails the test).
        let updated: BTreeSet<&String> = listed.iter().chain(passing.iter()).collect();
        assert!(listed.iter().all(|id| updated.contains(id)));
        let mut text = String::new();
        for id in &updated {
            text.push_str(id);
            text.push('\n');
        }
        std::fs::write(&ratchet_path, text).unwrap();
        println!("wrote {} ids to {}", updated.len(), ratchet_path.display());
    } else if !new.is_empty() {
        println!("rerun with ACLC_UPDATE_RATCHET=1 to add them");
    }
    assert!(
        regressions.is_empty(),
        "{} case(s) listed in {} no longer pass:\n    {}",
        regressions.len(),
        ratchet_path.display(),
        regressions.join("\n    ")
    );
}
