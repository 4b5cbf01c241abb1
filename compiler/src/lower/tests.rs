//! Unit tests of the lowering: source lists, their reuse and patching, items and slots.

use super::{same_strings, KeyRef, SourceKey, SourceMap};
use crate::Text;
use aclc_policy::model::{Alias, Autogroup, Selector};
use std::sync::Arc;

/// A source list looked up as written finds the entry of its key, and only that one: it
/// hashes as the key does (else no lookup would ever hit) and compares by every alias
/// and the gate.
#[test]
fn source_lists_are_found_as_written() {
    let selector = |alias: Alias| Selector {
        alias,
        text: String::new(),
        span: aclc_policy::Span::default(),
    };
    let lists = [
        vec![],
        vec![selector(Alias::Wildcard)],
        vec![
            selector(Alias::Group("group:eng".into())),
            selector(Alias::Tag("tag:ci".into())),
        ],
        vec![
            selector(Alias::Tag("tag:ci".into())),
            selector(Alias::Group("group:eng".into())),
        ],
        vec![selector(Alias::Autogroup(Autogroup::Member))],
    ];
    let gates = [None, Some(Arc::from(vec!["posture:a".to_string()]))];
    let mut map = SourceMap::default();
    let mut keys = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        for (j, gate) in gates.iter().enumerate() {
            let key: SourceKey =
                Arc::new((list.iter().map(|s| s.alias.clone()).collect(), gate.clone()));
            let probe = KeyRef {
                selectors: list,
                gate: gate.as_ref(),
            };
            assert_eq!(map.hasher().hash_one(&probe), map.hasher().hash_one(&key));
            map.insert(key, ((Arc::from(Vec::new()), (i * 2 + j) as u32, 0), 0));
            keys.push((list, gate));
        }
    }
    for (n, (list, gate)) in keys.iter().enumerate() {
        let probe = KeyRef {
            selectors: list,
            gate: gate.as_ref(),
        };
        assert_eq!(map.get(&probe).map(|e| e.0 .1), Some(n as u32));
    }
}

fn list(items: &[&str]) -> Vec<Text> {
    items.iter().map(|s| Text::from(*s)).collect()
}

#[test]
fn string_lists_compare_by_content_whatever_their_memory() {
    let a = list(&["100.64.0.1", "fd7a:115c:a1e0::1"]);
    assert!(same_strings(&a, &a));
    assert!(same_strings(
        &a,
        &list(&["100.64.0.1", "fd7a:115c:a1e0::1"])
    ));
    assert!(!same_strings(
        &a,
        &list(&["100.64.0.1", "fd7a:115c:a1e0::2"])
    ));
    assert!(!same_strings(&a, &a[..1]));
    assert!(!same_strings(&a[..1], &a));
    // The same start, not the same length.
    assert!(!same_strings(&a[..0], &a));
    let shared: Vec<Text> = vec![a[0].clone(), Text::from("100.64.0.9")];
    assert!(!same_strings(&a, &shared));
}
