//! Whether a policy event left every input of the SSH lowering as it was, so the new compile
//! takes the earlier lowering whole: adding a rule to `acls` lowered every SSH rule again
//! (on `large`, a quarter of the event's CPU time, and the longer of the two halves a
//! compile runs in parallel), then compared every principal list with the earlier ones.
//!
//! The policy's sections are compared as JSON without their spans: an edit above a section
//! moves every span in it and nothing else. The tailnet is the caller's to check (a policy
//! event keeps it).

use aclc_policy::model::Policy;

/// Every span the policy model serializes is a field named `span` holding `[start,end]`.
const SPAN_KEY: &[u8] = b"\"span\":[";

/// True when `old` and `new` agree, spans aside, on everything the SSH lowering reads of a
/// policy: the `ssh` rules and every definition their selectors and postures resolve
/// through (groups, hosts, tag owners, IP sets, postures, the default source posture), and,
/// to be safe, the sections that change the node table's routes and attributes
/// (`autoApprovers`, `attrConfig`). False when either cannot be serialized (then the rules
/// are lowered again: never a stale lowering).
pub(crate) fn same_inputs(old: &Policy, new: &Policy) -> bool {
    match (inputs_json(old), inputs_json(new)) {
        (Some(a), Some(b)) => equal_without_spans(&a, &b),
        _ => false,
    }
}

/// The sections [`same_inputs`] compares, as JSON (spans included).
fn inputs_json(p: &Policy) -> Option<Vec<u8>> {
    let inputs = (
        &p.ssh,
        &p.groups,
        &p.hosts,
        &p.tag_owners,
        &p.ipsets,
        &p.postures,
        &p.default_src_posture,
        &p.auto_approvers,
        &p.attr_config,
    );
    serde_json::to_vec(&inputs).ok()
}

/// True when `a` and `b` are the same JSON text once the offsets inside every
/// `"span":[...]` are left out. One pass over both. The key cannot occur inside a JSON
/// string (a quote there is escaped), so it is always a field name.
fn equal_without_spans(a: &[u8], b: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
                // Both texts agree up to here, so both end with the key or neither does.
                if *x == b'[' && a.get(..i).is_some_and(|seen| seen.ends_with(SPAN_KEY)) {
                    i += offsets_len(a.get(i..).unwrap_or_default());
                    j += offsets_len(b.get(j..).unwrap_or_default());
                }
            }
            _ => return false,
        }
    }
}

/// The length of the offsets that start `text` (digits and the comma between them).
fn offsets_len(text: &[u8]) -> usize {
    text.iter()
        .take_while(|b| b.is_ascii_digit() || **b == b',')
        .count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn policy(text: &str) -> Policy {
        let (_, parsed) =
            aclc_policy::parse_str("p.hujson", text, &aclc_policy::Options::default());
        parsed.expect("a valid policy").policy
    }

    const SSH: &str = r#"
        "groups": {"group:eng": ["alice@example.com"]},
        "tagOwners": {"tag:prod": ["group:eng"]},
        "ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}]"#;

    #[test]
    fn an_edit_elsewhere_moves_spans_but_keeps_the_inputs() {
        let before = policy(&format!(
            r#"{{"acls": [{{"action": "accept", "src": ["*"], "dst": ["*:22"]}}], {SSH}}}"#
        ));
        let after = policy(&format!(
            r#"{{"acls": [{{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod:443"]}},
                {{"action": "accept", "src": ["*"], "dst": ["*:22"]}}], {SSH}}}"#
        ));
        assert_ne!(
            before.ssh, after.ssh,
            "the edit moved the ssh section's spans"
        );
        assert!(same_inputs(&before, &after));
    }

    #[test]
    fn a_change_to_anything_the_ssh_rules_read_is_seen() {
        let base = format!(r#"{{{SSH}}}"#);
        let before = policy(&base);
        for (from, to) in [
            ("alice@example.com", "bob@example.com"),
            (r#""users": ["root"]"#, r#""users": ["root", "ubuntu"]"#),
            (r#""action": "accept""#, r#""action": "check""#),
            (
                r#""tag:prod": ["group:eng"]"#,
                r#""tag:prod": ["autogroup:admin"]"#,
            ),
        ] {
            assert!(base.contains(from), "{from}");
            let after = policy(&base.replace(from, to));
            assert!(!same_inputs(&before, &after), "{from} -> {to}");
        }
        let hosts = policy(&format!(r#"{{"hosts": {{"db": "100.64.0.1"}}, {SSH}}}"#));
        assert!(!same_inputs(&before, &hosts));
        let ipsets = policy(&format!(r#"{{"hosts": {{"db": "100.64.0.2"}}, {SSH}}}"#));
        assert!(!same_inputs(&hosts, &ipsets));
    }

    #[test]
    fn span_offsets_alone_are_skipped() {
        let a = br#"{"value":"x","span":[1,20]}"#;
        let b = br#"{"value":"x","span":[300,4000]}"#;
        let c = br#"{"value":"y","span":[1,20]}"#;
        assert!(equal_without_spans(a, b));
        assert!(!equal_without_spans(a, c));
        assert!(!equal_without_spans(
            br#"{"span":[1,2]}"#,
            br#"{"span":[1,2],"x":1}"#
        ));
        // Not a span: the text inside a string is compared.
        assert!(!equal_without_spans(
            br#"["span\":[1]"]"#,
            br#"["span\":[2]"]"#
        ));
    }
}
