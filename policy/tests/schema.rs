//! The policy schema (`aclc schema policy`): every policy in testdata that aclc accepts
//! validates against it, wrong shapes do not, and every field the lowering reads is described.

use aclc_policy::schema::policy_schema;
use aclc_policy::{Code, Options, Source};
use aclc_testkit::corpus;
use aclc_testkit::hujson::strip;
use serde_json::{json, Value};

fn validator() -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::new(&policy_schema()).map_err(|e| e.to_string())
}

/// The policy as JSON when aclc accepts it without a key-case warning (the schema is strict on
/// the spelling of keys), else `None`; `Err` when accepted HuJSON does not strip to JSON.
fn accepted(name: &str, text: &str) -> Result<Option<Value>, String> {
    let Ok(checked) = aclc_policy::parse(&Source::new(name, text), &Options::default()) else {
        return Ok(None);
    };
    if checked.warnings.iter().any(|w| w.code == Code::KeyCase) {
        return Ok(None);
    }
    serde_json::from_str(&strip(text))
        .map(Some)
        .map_err(|e| format!("{name}: {e}"))
}

fn errors(validator: &jsonschema::Validator, policy: &Value) -> Vec<String> {
    validator
        .iter_errors(policy)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn accepted_testdata_policies_validate() {
    let validator = validator().unwrap();
    let root = aclc_testkit::workspace_root().join("testdata");
    let mut inputs: Vec<(String, String)> = Vec::new();
    for dir in ["examples", "features"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "hujson") {
                let text = std::fs::read_to_string(&path).unwrap();
                inputs.push((path.display().to_string(), text));
            }
        }
    }
    for case in corpus::all_cases() {
        let name = format!("{}/{}", corpus::category(&case), corpus::id(&case));
        inputs.push((name, corpus::policy_text(&case).to_string()));
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, text) in &inputs {
        let Some(policy) = accepted(name, text).unwrap() else {
            continue;
        };
        checked += 1;
        let errs = errors(&validator, &policy);
        if !errs.is_empty() {
            failures.push(format!("{name}: {}", errs.join("; ")));
        }
    }
    assert!(checked > 100, "only {checked} accepted policies found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wrong_policies_do_not_validate() {
    let validator = validator().unwrap();
    for bad in [
        json!({"acls": {}}),
        json!({"aclz": []}),
        json!({"acls": [{"action": "drop", "src": ["*"], "dst": ["*:*"]}]}),
        json!({"grants": [{"src": ["*"], "dst": ["*"], "ipp": ["*"]}]}),
        json!({"groups": {"eng": ["a@example.com"]}}),
        json!({"ssh": [{"action": "accept", "enforceRecorder": "yes"}]}),
        json!({"OneCGNATRoute": "sometimes"}),
        json!({"attrConfig": {"custom:tier": {"type": "float"}}}),
        json!({"disableIPv4": 1}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} validates");
    }
    assert!(validator.is_valid(&json!({})));
}

/// Every property of every object in the schema has a description (a key added to the
/// lowering's lists without a shape in the schema gets an empty one and fails here).
#[test]
fn every_property_is_described() {
    fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    if k == "properties" || k == "patternProperties" {
                        if let Some(props) = child.as_object() {
                            for (name, shape) in props {
                                if shape.get("description").is_none() {
                                    missing.push(format!("{path}.{name}"));
                                }
                            }
                        }
                    }
                    walk(&format!("{path}/{k}"), child, missing);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{path}/{i}"), item, missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk("", &policy_schema(), &mut missing);
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}
