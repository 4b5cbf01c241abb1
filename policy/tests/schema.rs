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

/// The policy as JSON when aclc accepts it, else `None`; `Err` when accepted HuJSON does not
/// strip to JSON.
fn accepted(name: &str, text: &str) -> Result<Option<Value>, String> {
    if aclc_policy::parse(&Source::new(name, text), &Options::default()).is_err() {
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

/// Keys in another case (which aclc accepts with `aclc::key_case`, as Tailscale's decoder
/// matches field names without case) validate, and with the shape of the key they spell; a
/// key that is no field in any case does not. Real policies write them so (Tailscale's own Go
/// client writes `ACLs` and `TagOwners`; two documentation examples write `TagOwners`).
#[test]
fn keys_in_another_case_validate_with_their_shape() {
    let validator = validator().unwrap();
    let good = json!({
        "TagOwners": {"tag:web": ["autogroup:admin"]},
        "ACLs": [{"Action": "accept", "Users": ["*"], "Ports": ["tag:web:*"]}],
        "Grants": [{"SRC": ["*"], "Dst": ["*"], "IP": ["*"]}],
        "oneCgnatRoute": "mac-always",
    });
    let text = good.to_string();
    let checked = aclc_policy::parse(&Source::new("p", &text), &Options::default()).unwrap();
    assert!(checked.warnings.iter().any(|w| w.code == Code::KeyCase));
    assert_eq!(errors(&validator, &good), Vec::<String>::new());
    for bad in [
        json!({"ACLS": {}}),
        json!({"ACLs": [{"ACTION": "drop", "src": ["*"], "dst": ["*:*"]}]}),
        json!({"TagOwnerz": {}}),
        json!({"DisableIPv4": 1}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} validates");
    }
    // The documented spelling is not marked deprecated, another one is.
    let schema = policy_schema();
    assert!(schema["properties"]["acls"].get("deprecated").is_none());
    let patterns = schema["patternProperties"].as_object().unwrap();
    let acls = patterns
        .iter()
        .find(|(p, _)| p.contains("[aA][cC][lL][sS]$"))
        .unwrap();
    assert_eq!(acls.1["deprecated"], json!(true));
    assert!(!pattern_matches(acls.0, "acls"));
    assert!(pattern_matches(acls.0, "ACLs"));
}

/// Whether the validator's regex engine matches `key` with `pattern` (a lookahead, which
/// engines without one would refuse or misread; a pattern it refuses matches nothing).
fn pattern_matches(pattern: &str, key: &str) -> bool {
    jsonschema::draft202012::new(&json!({
        "type": "object",
        "patternProperties": {pattern: false},
    }))
    .is_ok_and(|validator| !validator.is_valid(&json!({key: 1})))
}

/// `null` for a field is the field absent, as aclc reads it: every optional field may be
/// `null` in the schema exactly when aclc accepts it so (`action` and a test's `src` must be
/// there). Terraform's `jsonencode` writes such nulls.
#[test]
fn null_fields_validate_where_aclc_accepts_them() {
    let validator = validator().unwrap();
    let schema = policy_schema();
    let grant = json!({"src": ["*"], "dst": ["*"], "ip": ["*"]});
    let bases = [
        (
            "acls",
            json!({"action": "accept", "src": ["*"], "dst": ["*:*"]}),
        ),
        ("grants", grant.clone()),
        (
            "ssh",
            json!({"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}),
        ),
        ("nodeAttrs", json!({"target": ["*"], "attr": ["funnel"]})),
    ];
    let accepts = |policy: &Value| {
        let text = policy.to_string();
        aclc_policy::parse(&Source::new("p", &text), &Options::default()).is_ok()
    };
    let mut disagree = Vec::new();
    let mut tried = 0;
    for key in schema["properties"].as_object().unwrap().keys() {
        let policy = json!({key.as_str(): null, "grants": [grant.clone()]});
        let policy = if key == "grants" {
            json!({"grants": null})
        } else {
            policy
        };
        tried += 1;
        if accepts(&policy) != validator.is_valid(&policy) {
            disagree.push(policy.to_string());
        }
    }
    for (section, base) in &bases {
        let fields = schema["properties"][section]["items"]["properties"]
            .as_object()
            .unwrap();
        for key in fields.keys() {
            let mut item = base.clone();
            item[key.as_str()] = Value::Null;
            let policy = json!({*section: [item]});
            tried += 1;
            // Fields whose absence aclc refuses for what the rule then lacks (a grant
            // without `ip` or `app`, an SSH rule without `users`), which the schema, having
            // no `required`, does not say.
            let lacking = matches!(
                (*section, key.as_str()),
                ("grants", "ip") | ("ssh", "users")
            );
            if !lacking && accepts(&policy) != validator.is_valid(&policy) {
                disagree.push(policy.to_string());
            }
        }
    }
    assert!(tried > 40, "only {tried} fields tried");
    assert!(
        disagree.is_empty(),
        "schema and aclc disagree on: {disagree:#?}"
    );
    // A capability's values are any JSON, as aclc passes them on.
    let app = json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {"example.com/cap/x": ["read", 1, null, {"a": 1}]}}]});
    assert!(accepts(&app));
    assert_eq!(errors(&validator, &app), Vec::<String>::new());
}
