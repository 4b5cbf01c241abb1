//! CI-native output and editor support: `aclc check --format github|sarif`, `aclc test --format
//! junit|github`, on the examples and features policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{aclc, aclc_in, examples, features, file, json, stdout};

#[test]
fn check_as_github_annotations() {
    let invalid = examples().join("invalid.hujson");
    let o = aclc(&["check", invalid.to_str().unwrap(), "--format", "github"]);
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("::error file="), "{first}");
    assert!(
        first.contains(",line=12,col=15,endLine=12,endColumn=19,title=aclc%3A%3Ainvalid_action::action=\"deny\" is not supported%0Ahelp: "),
        "{first}"
    );
    // Every diagnostic is one line; a valid policy with warnings gives `::warning` lines.
    assert!(out
        .lines()
        .all(|l| l.starts_with("::error ") || l.starts_with("::warning ")));
    let o = aclc_in(
        &features(),
        &["check", "ip-pool.hujson", "--format", "github"],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("::warning file=ip-pool.hujson,"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_as_sarif() {
    let invalid = examples().join("invalid.hujson");
    let o = aclc(&["check", invalid.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(o.status.code(), Some(2));
    let log = json(&o);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "aclc");
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for result in results {
        // Each result points at its rule, which carries the code's meaning.
        let rule = &rules[result["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], result["ruleId"]);
        assert!(rule["shortDescription"]["text"].as_str().unwrap().len() > 10);
        assert!(matches!(
            result["level"].as_str(),
            Some("error" | "warning")
        ));
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
    }
    assert_eq!(results[0]["ruleId"], "aclc::invalid_action");
}

#[test]
fn test_as_junit_and_github() {
    let o = aclc_in(
        &features(),
        &[
            "test",
            "synced-groups.hujson",
            "--inventory",
            "tailnet.json",
            "--format",
            "junit",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let xml = stdout(&o);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"aclc test\" tests=\"7\" failures=\"0\">"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 7);
    // The vacuous deny keeps its warning.
    assert!(
        xml.contains("<system-out>warning: src &quot;group:ops@example.com&quot; has no devices")
    );

    let (dir, _) = file(
        "policy.hujson",
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
            "tests": [{"src": "alice@example.com", "accept": ["100.64.0.2:22"], "deny": ["100.64.0.2:80"]}]}"#,
    );
    let inventory = examples().join("inventory.json");
    let inventory = inventory.to_str().unwrap();
    let run = |format: &str| {
        aclc_in(
            &dir,
            &[
                "test",
                "policy.hujson",
                "--inventory",
                inventory,
                "--format",
                format,
            ],
            None,
        )
    };
    let o = run("junit");
    assert_eq!(o.status.code(), Some(3));
    let xml = stdout(&o);
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\"alice@example.com -&gt; 100.64.0.2:80 (tcp/udp): expected denied, got allowed"), "{xml}");
    let o = run("github");
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("::error file=policy.hujson,line=2,"),
        "{out}"
    );
    assert!(out.contains("title=aclc%3A%3Atest_failed::"), "{out}");
}

/// `aclc schema` prints the two JSON Schemas (their validation is tested in the library).
#[test]
fn schema_command() {
    for (args, title_word) in [
        (&["schema"][..], "policy"),
        (&["schema", "inventory"][..], "inventory"),
    ] {
        let o = aclc(args);
        assert_eq!(o.status.code(), Some(0));
        let schema = json(&o);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object");
        let text = serde_json::to_string(&schema).unwrap().to_lowercase();
        assert!(text.contains(title_word), "{title_word}");
    }
}
