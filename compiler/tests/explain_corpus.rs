//! `explain` against the test runner on every conformance case with `tests` or `sshTests`:
//! for every assertion the runner could evaluate, explain's verdict for the same source,
//! destination and protocol (and posture attributes) must be the runner's, except where
//! explain judges traffic as the nodes let it through by design: a `via` grant only through
//! its routers (the runner counts it like one without), ICMP to an address any rule opens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod corpus_cases;

use aclc_compiler::policytest::{explain, explain_ssh, Expectation, NetworkQuery, TestKind};
use aclc_compiler::{compile, run_tests, Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_testkit::corpus;

#[test]
fn explain_agrees_with_the_test_runner() {
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for path in corpus::case_files() {
        let case = corpus::read_case(&path);
        let id = corpus::id(&case);
        let Some(loaded) = corpus_cases::load(&case) else {
            continue;
        };
        compare(
            id,
            &loaded.policy,
            &loaded.compiled,
            &mut counts,
            &mut failures,
        );
    }
    // The example and feature policies with tests, against their inventories.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let mut files = vec![(
        "examples/policy.hujson".to_string(),
        "examples/inventory.json",
    )];
    for entry in std::fs::read_dir(root.join("features")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".hujson") {
            let inventory = if stem == "postures" {
                "features/posture-inventory.json"
            } else {
                "features/inventory.json"
            };
            files.push((format!("features/{name}"), inventory));
        }
    }
    for (policy, inventory) in files {
        let inventory =
            Inventory::from_json(&std::fs::read_to_string(root.join(inventory)).unwrap()).unwrap();
        let options = aclc_policy::Options {
            context: inventory.policy_context(),
            ..Default::default()
        };
        let text = std::fs::read_to_string(root.join(&policy)).unwrap();
        let (_, parsed) = aclc_policy::parse_str(&policy, &text, &options);
        let Ok(checked) = parsed else {
            continue;
        };
        let compiled = compile(&checked.policy, &inventory);
        compare(
            &policy,
            &checked.policy,
            &compiled,
            &mut counts,
            &mut failures,
        );
    }
    let Counts {
        network,
        ssh,
        by_design,
    } = counts;
    eprintln!(
        "compared {network} network and {ssh} ssh assertions ({by_design} judged differently \
         by design)"
    );
    // `features/tests-via.hujson`: two assertions only `via` grants allow, with no router.
    assert!(
        by_design >= 2,
        "only {by_design} by-design differences seen"
    );
    assert!(network >= 25, "only {network} network assertions compared");
    assert!(ssh >= 25, "only {ssh} ssh assertions compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(Default)]
struct Counts {
    network: usize,
    ssh: usize,
    by_design: usize,
}

/// Compare explain with the runner on every evaluated assertion of `policy`.
fn compare(
    id: &str,
    policy: &Policy,
    compiled: &Compiled,
    counts: &mut Counts,
    failures: &mut Vec<String>,
) {
    if policy.tests.is_empty() && policy.ssh_tests.is_empty() {
        return;
    }
    let network = &mut counts.network;
    let ssh = &mut counts.ssh;
    let by_design = &mut counts.by_design;
    let via: Vec<_> = policy
        .grants
        .iter()
        .flat_map(|g| g.value.iter())
        .filter(|g| !g.via.is_empty())
        .map(|g| g.span)
        .collect();
    let report = run_tests(policy, compiled);
    for result in &report.results {
        let (Ok(verdict), Some(expected)) = (&result.outcome, result.expected) else {
            continue;
        };
        match result.kind {
            TestKind::Network => {
                let test = &policy.tests[result.test];
                let entry = test
                    .accept
                    .iter()
                    .chain(&test.deny)
                    .find(|e| e.span == result.span)
                    .expect("the assertion's entry");
                let query = NetworkQuery {
                    src: &test.src.as_ref().unwrap().value,
                    dst: &entry.value,
                    proto: test.proto.as_ref().map(|p| p.value.as_str()),
                    src_posture_attrs: test
                        .src_posture_attrs
                        .as_ref()
                        .and_then(|a| a.value.as_object()),
                };
                *network += 1;
                match explain(policy, compiled, &query) {
                    Ok(e) if e.allowed() == verdict.is_allowed() => {}
                    // Allowed only by `via` grants, which no router here carries.
                    Ok(e)
                        if !e.allowed()
                            && !verdict.rules().is_empty()
                            && verdict.rules().iter().all(|s| via.contains(s)) =>
                    {
                        *by_design += 1;
                    }
                    Ok(e) if e.allowed() && e.reason.contains("lets ICMP through") => {
                        *by_design += 1;
                    }
                    got => failures.push(format!(
                        "{id}: {}: runner {verdict:?}, explain {got:?}",
                        result.subject
                    )),
                }
            }
            TestKind::Ssh => {
                let test = &policy.ssh_tests[result.test];
                if test.src_posture_attrs.is_some() {
                    continue;
                }
                let src = test.src.as_ref().unwrap().value.trim();
                let rest = result
                    .subject
                    .strip_prefix(&format!("{src} -> "))
                    .expect("subject");
                let (dst, user) = rest.rsplit_once(" as ").expect("subject");
                *ssh += 1;
                let got = match explain_ssh(policy, compiled, src, dst, user) {
                    Ok(e) => e,
                    Err(error) => {
                        failures.push(format!("{id}: {}: explain {error}", result.subject));
                        continue;
                    }
                };
                // An accept (or check) assertion asks what explain answers: every
                // source device to every destination. A deny holds only if no pair is
                // allowed, so explain (all pairs allowed) can only bound it.
                let agrees = match expected {
                    Expectation::Denied => !(got.allowed() && verdict.meets(Expectation::Denied)),
                    _ => got.verdict.meets(expected) == verdict.meets(expected),
                };
                if !agrees {
                    failures.push(format!(
                        "{id}: {}: runner {verdict:?}, explain {:?}",
                        result.subject, got.verdict
                    ));
                }
            }
        }
    }
}
