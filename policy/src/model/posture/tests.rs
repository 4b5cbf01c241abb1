//! Posture grammar and evaluator tests. Examples are from Tailscale's KB "Device posture
//! management" (kb/1288) unless noted.

use super::*;
use serde_json::json;

fn ok(text: &str) -> PostureCondition {
    match parse_condition(text) {
        Ok(c) => c,
        Err(e) => panic!("{text:?} refused: {e:?}"),
    }
}

/// The help and the offending part of a refused condition.
fn err(text: &str) -> (String, String) {
    match parse_condition(text) {
        Ok(c) => panic!("{text:?} accepted: {c:?}"),
        Err(e) => (e.help, text.get(e.start..e.end).unwrap_or("?").to_string()),
    }
}

fn s(v: &str) -> Option<PostureValue> {
    Some(PostureValue::Str(v.to_string()))
}

#[test]
fn every_operator() {
    let cases = [
        ("node:os == 'macos'", PostureOperator::Eq, s("macos")),
        ("node:os != 'windows'", PostureOperator::Ne, s("windows")),
        ("node:tsVersion < '1.60'", PostureOperator::Lt, s("1.60")),
        ("node:tsVersion <= '1.60'", PostureOperator::Le, s("1.60")),
        ("node:tsVersion > '1.60'", PostureOperator::Gt, s("1.60")),
        ("node:tsVersion >= '1.60'", PostureOperator::Ge, s("1.60")),
        ("custom:tier IS SET", PostureOperator::IsSet, None),
        ("custom:tier NOT SET", PostureOperator::NotSet, None),
        (
            "node:os IN ['macos', 'linux']",
            PostureOperator::In,
            Some(PostureValue::List(vec![
                PostureValue::Str("macos".into()),
                PostureValue::Str("linux".into()),
            ])),
        ),
        (
            "node:os NOT IN ['windows']",
            PostureOperator::NotIn,
            Some(PostureValue::List(vec![PostureValue::Str(
                "windows".into(),
            )])),
        ),
    ];
    for (text, operator, value) in cases {
        let c = ok(text);
        assert_eq!((c.operator, &c.value), (operator, &value), "{text}");
        assert_eq!(c.text, text);
    }
    // Word operators in any case, any spacing; symbols without spaces.
    assert_eq!(ok("custom:x  is   set").operator, PostureOperator::IsSet);
    assert_eq!(ok("node:os not in ['a']").operator, PostureOperator::NotIn);
    assert_eq!(ok("falcon:ztaScore>=80").operator, PostureOperator::Ge);
}

#[test]
fn bare_attribute_is_a_boolean_test() {
    // Tailscale's default policy for new tailnets: "posture:latestMac" ends with the bare
    // "node:tsAutoUpdate".
    let c = ok("node:tsAutoUpdate");
    assert_eq!(c.operator, PostureOperator::IsTrue);
    assert_eq!((c.attribute.as_str(), c.value), ("node:tsAutoUpdate", None));
    assert_eq!(
        ok("  node:tsStateEncrypted  ").text,
        "node:tsStateEncrypted"
    );
}

#[test]
fn values_keep_their_type_and_text() {
    let c = ok("node:os == \"macos\"");
    assert_eq!((c.value, c.value_text.as_str()), (s("macos"), "\"macos\""));
    let c = ok("falcon:ztaScore >= 80");
    assert_eq!(c.value, Some(PostureValue::Num(80.0)));
    assert_eq!(c.value_text, "80");
    assert_eq!(ok("custom:x == -1.5").value, Some(PostureValue::Num(-1.5)));
    assert_eq!(
        ok("node:tsAutoUpdate == true").value,
        Some(PostureValue::Bool(true))
    );
    assert_eq!(
        ok("node:tsAutoUpdate != false").value,
        Some(PostureValue::Bool(false))
    );
    // Quotes of the other kind, spaces and brackets are plain text inside a string.
    assert_eq!(ok("custom:x == 'it\"s [a, b]'").value, s("it\"s [a, b]"));
    // Mixed lists, trailing comma, empty list.
    assert_eq!(
        ok("custom:x IN ['a', 2, true,]").value,
        Some(PostureValue::List(vec![
            PostureValue::Str("a".into()),
            PostureValue::Num(2.0),
            PostureValue::Bool(true),
        ]))
    );
    assert_eq!(
        ok("custom:x NOT IN []").value,
        Some(PostureValue::List(vec![]))
    );
}

#[test]
fn errors_say_which_part_is_wrong() {
    let (help, part) = err("node:os IN");
    assert_eq!(
        (help.as_str(), part.as_str()),
        (
            "`IN` needs a value after it, e.g. `node:os IN ['macos', 'linux']`",
            "IN"
        )
    );
    let (help, part) = err("node:os = 'macos'");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("unknown operator `=`: did you mean `==`?", "=")
    );
    let (help, part) = err("node:os LIKE 'mac%'");
    assert!(
        help.starts_with("unknown operator `LIKE`: operators are =="),
        "{help}"
    );
    assert_eq!(part, "LIKE");
    let (help, part) = err("node:os IS 'macos'");
    assert!(
        help.starts_with("unknown operator: `IS` goes with `SET`"),
        "{help}"
    );
    assert_eq!(part, "IS");
    let (help, part) = err("node:os IN 'macos'");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("`IN` takes a list, e.g. ['macos', 'linux']", "'macos'")
    );
    let (help, part) = err("node:os == ['macos']");
    assert_eq!(
        (help.as_str(), part.as_str()),
        (
            "a list only goes with IN or NOT IN, not with `==`",
            "['macos']"
        )
    );
    let (help, part) = err("node:os == 'macos");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("unterminated string: add the closing '", "'macos")
    );
    let (help, part) = err("node:os IN ['macos', 'linux'");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("unterminated list: add the closing ]", "['macos', 'linux'")
    );
    let (help, part) = err("node:os IN ['a' 'b']");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("expected `,` or `]` after a list item", "'")
    );
    let (help, _) = err("node:os IN [['a']]");
    assert!(help.starts_with("lists do not nest"), "{help}");
    let (help, part) = err("node:os == macos");
    assert_eq!(
        (help.as_str(), part.as_str()),
        (
            "unquoted value `macos`: strings are quoted, e.g. 'macos'",
            "macos"
        )
    );
    let (help, part) = err("node:tsVersion >= 1.60.0");
    assert_eq!(
        (help.as_str(), part.as_str()),
        (
            "`1.60.0` is not a number; versions are strings: '1.60.0'",
            "1.60.0"
        )
    );
    let (help, part) = err("custom:x IS SET 'yes'");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("`IS SET` takes no value", "'yes'")
    );
    let (help, part) = err("node:os == 'a' 'b'");
    assert!(
        help.starts_with("unexpected text after the value"),
        "{help}"
    );
    assert_eq!(part, "'b'");
    let (help, _) = err("node:tsAutoUpdate > true");
    assert!(help.starts_with("booleans have no order"), "{help}");
    let (help, _) = err("   ");
    assert_eq!(help, "a condition cannot be empty");
    let (help, part) = err("== 'macos'");
    assert!(
        help.starts_with("a condition starts with an attribute"),
        "{help}"
    );
    assert_eq!(part, "== 'macos'");
}

#[test]
fn attributes_need_a_namespace() {
    let (help, part) = err("os == 'linux'");
    assert_eq!(
        (help.as_str(), part.as_str()),
        ("attribute `os` has no namespace: write `node:os`", "os")
    );
    let (help, part) = err("tier == 'prod'");
    assert!(help.contains("namespace:name"), "{help}");
    assert_eq!(part, "tier");
    let (_, part) = err(":os == 'linux'");
    assert_eq!(part, ":os");
    let (_, part) = err("node: == 'linux'");
    assert_eq!(part, "node:");
}

#[test]
fn attribute_namespaces() {
    assert_eq!(attribute_status("node:os"), AttributeStatus::Known);
    assert_eq!(
        attribute_status("node:tsStateEncrypted"),
        AttributeStatus::Known
    );
    assert_eq!(
        attribute_status("node:color"),
        AttributeStatus::UnknownAttribute
    );
    assert_eq!(attribute_status("ip:country"), AttributeStatus::Known);
    assert_eq!(attribute_status("custom:anything"), AttributeStatus::Known);
    // Integration namespaces: CrowdStrike (kb/1289), SentinelOne (kb/1390), ...
    assert_eq!(attribute_status("falcon:ztaScore"), AttributeStatus::Known);
    assert_eq!(
        attribute_status("sentinelOne:infected"),
        AttributeStatus::Known
    );
    assert_eq!(attribute_status("googleChrome:x"), AttributeStatus::Known);
    // Fleet writes `fleet:present` and one `fleetPolicy:{name}` per passing Fleet policy
    // (Tailscale docs "Restrict device access with Fleet").
    assert_eq!(attribute_status("fleet:present"), AttributeStatus::Known);
    assert_eq!(
        attribute_status("fleetPolicy:diskEncryption"),
        AttributeStatus::Known
    );
    assert_eq!(
        attribute_status("sentinelone:infected"),
        AttributeStatus::UnknownNamespace(Some("sentinelOne"))
    );
    assert_eq!(
        attribute_status("acme:score"),
        AttributeStatus::UnknownNamespace(None)
    );
}

#[test]
fn evaluation() {
    let holds = |cond: &str, value: Option<serde_json::Value>| ok(cond).holds(value.as_ref());
    // Strings, numbers, booleans; types never mix.
    assert!(holds("node:os == 'macos'", Some(json!("macos"))));
    assert!(!holds("node:os == 'macos'", Some(json!("linux"))));
    assert!(holds("node:os != 'macos'", Some(json!("linux"))));
    assert!(!holds("custom:n == '80'", Some(json!(80))));
    assert!(holds("custom:n == 80", Some(json!(80))));
    assert!(holds("custom:n == 80", Some(json!(80.0))));
    assert!(holds("falcon:ztaScore >= 80", Some(json!(85))));
    assert!(!holds("falcon:ztaScore >= 80", Some(json!(79.5))));
    assert!(holds("falcon:ztaScore < 80", Some(json!(79.5))));
    assert!(!holds("falcon:ztaScore >= 80", Some(json!("85"))));
    assert!(holds("node:tsAutoUpdate == true", Some(json!(true))));
    assert!(holds("node:tsAutoUpdate != true", Some(json!(false))));
    // Lists.
    assert!(holds("node:os IN ['macos', 'linux']", Some(json!("linux"))));
    assert!(!holds(
        "node:os IN ['macos', 'linux']",
        Some(json!("windows"))
    ));
    assert!(holds("node:os NOT IN ['windows']", Some(json!("linux"))));
    assert!(!holds("node:os NOT IN ['windows']", Some(json!("windows"))));
    // Bare attribute: only the boolean true.
    assert!(holds("node:tsAutoUpdate", Some(json!(true))));
    assert!(!holds("node:tsAutoUpdate", Some(json!(false))));
    assert!(!holds("node:tsAutoUpdate", Some(json!("true"))));
    // IS SET / NOT SET.
    assert!(holds("custom:tier IS SET", Some(json!("prod"))));
    assert!(holds("custom:tier IS SET", Some(json!(false))));
    assert!(!holds("custom:tier NOT SET", Some(json!("prod"))));
}

#[test]
fn unset_attributes_fail_closed() {
    // Only NOT SET holds for a device without the attribute (null counts as unset).
    for cond in [
        "node:tsAutoUpdate",
        "node:os == 'macos'",
        "node:os != 'macos'",
        "node:os IN ['macos']",
        "node:os NOT IN ['windows']",
        "node:tsVersion >= '1.0'",
        "node:tsVersion < '99.0'",
        "custom:tier IS SET",
    ] {
        let c = ok(cond);
        assert!(!c.holds(None), "{cond} held for an unset attribute");
        assert!(
            !c.holds(Some(&serde_json::Value::Null)),
            "{cond} held for null"
        );
    }
    assert!(ok("custom:tier NOT SET").holds(None));
    // Values that are neither strings, numbers nor booleans compare with nothing.
    assert!(!ok("custom:x != 'a'").holds(Some(&json!(["a"]))));
    assert!(!ok("custom:x NOT IN ['a']").holds(Some(&json!({"a": 1}))));
}

#[test]
fn versions_compare_component_wise() {
    use std::cmp::Ordering::*;
    // kb/1288's example `node:tsVersion >= '1.60'`: 1.60 is later than 1.9.
    assert_eq!(compare_versions("1.60", "1.9"), Some(Greater));
    assert_eq!(compare_versions("1.9", "1.60"), Some(Less));
    assert_eq!(compare_versions("1.60", "1.60.0"), Some(Equal));
    assert_eq!(
        compare_versions("1.80.0-t1a2b3c4d5-g6e7f", "1.80"),
        Some(Equal)
    );
    assert_eq!(compare_versions("v13.4.1", "13.4"), Some(Greater));
    assert_eq!(compare_versions("macos", "1.0"), None);
    assert_eq!(compare_versions("1..2", "1.0"), None);
    assert_eq!(compare_versions("", "1.0"), None);
    let ge = ok("node:tsVersion >= '1.60'");
    assert!(ge.holds(Some(&json!("1.80.0"))));
    assert!(ge.holds(Some(&json!("1.60.0"))));
    assert!(!ge.holds(Some(&json!("1.9.4"))));
    assert!(!ge.holds(Some(&json!("unknown"))));
    assert!(ok("node:osVersion < '14'").holds(Some(&json!("13.6.1"))));
    assert!(ok("node:osVersion <= '13.6.1'").holds(Some(&json!("13.6.1"))));
    assert!(ok("node:osVersion > '13.6'").holds(Some(&json!("13.6.1"))));
}
