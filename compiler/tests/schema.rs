//! The inventory schema (`aclc schema inventory`): every inventory in testdata validates
//! against it, and inventories aclc refuses for their shape do not.

use aclc_compiler::{inventory_schema, Inventory};
use aclc_testkit::corpus;
use serde_json::{json, Value};

fn validator() -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::new(&inventory_schema()).map_err(|e| e.to_string())
}

fn errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn testdata_inventories_validate() {
    let validator = validator().unwrap();
    let root = aclc_testkit::workspace_root().join("testdata");
    let mut inputs: Vec<(String, Value)> = Vec::new();
    let mut files = vec![root.join("examples/inventory.json")];
    for entry in std::fs::read_dir(root.join("features")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        // tailnet.json is a tailnet, not an inventory: check it as one.
        let value = if value.get("nodes").is_none() {
            json!({"users": [], "nodes": [], "tailnet": value})
        } else {
            value
        };
        inputs.push((path.display().to_string(), value));
    }
    for case in corpus::all_cases() {
        let name = format!("{}/{}", corpus::category(&case), corpus::id(&case));
        inputs.push((name, corpus::inventory_json(&case)));
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, value) in &inputs {
        // Only what aclc reads: an inventory it refuses need not validate.
        if serde_json::from_value::<Inventory>(value.clone()).is_err() {
            continue;
        }
        checked += 1;
        let errs = errors(&validator, value);
        if !errs.is_empty() {
            failures.push(format!("{name}: {}", errs.join("; ")));
        }
    }
    assert!(checked > 100, "only {checked} inventories read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wrong_inventories_do_not_validate() {
    let validator = validator().unwrap();
    let node = json!({"name": "a", "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1", "user": "a@example.com"});
    let user = json!({"id": 1, "name": "a", "email": "a@example.com", "roles": ["admin"]});
    assert!(validator.is_valid(&json!({"users": [user], "nodes": [node]})));
    let v4_only = json!({"name": "b", "ipv4": "100.64.0.2", "user": "a@example.com"});
    let v6_only = json!({"name": "c", "ipv6": "fd7a:115c:a1e0::3", "user": "a@example.com"});
    let mixed = json!({"users": [user], "nodes": [node, v4_only, v6_only]});
    assert!(validator.is_valid(&mixed));
    assert!(serde_json::from_value::<Inventory>(mixed).is_ok());
    let no_address = json!({"name": "d", "user": "a@example.com"});
    let null_addresses = json!({"name": "d", "ipv4": null, "ipv6": null, "user": "a@example.com"});
    let mut bad_node = node.clone();
    bad_node["tagz"] = json!([]);
    let mut bad_user = user.clone();
    bad_user["roles"] = json!(["boss"]);
    for bad in [
        json!({"users": [], "nodes": {}}),
        json!({"nodes": []}),
        json!({"users": [], "nodes": [bad_node]}),
        json!({"users": [bad_user], "nodes": []}),
        json!({"users": [user], "nodes": [no_address]}),
        json!({"users": [user], "nodes": [null_addresses]}),
        json!({"users": [], "nodes": [], "services": [{"name": "svc:a", "hostz": []}]}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} validates");
        assert!(
            serde_json::from_value::<Inventory>(bad.clone()).is_err(),
            "{bad} is read"
        );
    }
}
