//! Rules naming another tailnet's groups or tags (declarative node sharing) that one policy
//! has and the other does not: aclc does not know that tailnet's devices, so their access
//! cannot be listed node by node, but Tailscale gives it; without this, adding a grant to a
//! partner tailnet was "access unchanged" to a CI gate.

use std::collections::BTreeSet;

use aclc_policy::model::{external_reference, Policy, Selector};
use aclc_policy::Span;

use super::{rule_ref, Changes, ExternalChange, Side};

/// Each rule (ACL, grant, SSH rule) naming another tailnet: (reference, the rule's text
/// without whitespace, its span). O(rules x selectors).
fn external_rules(policy: &Policy, source: &aclc_policy::Source) -> Vec<(String, String, Span)> {
    let mut out = Vec::new();
    let mut add = |selectors: &mut dyn Iterator<Item = &Selector>, span: Span| {
        let names: BTreeSet<String> = selectors
            .filter_map(|s| match &s.alias {
                aclc_policy::model::Alias::Group(n) | aclc_policy::model::Alias::Tag(n)
                    if external_reference(n).is_some() =>
                {
                    Some(n.clone())
                }
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return;
        }
        let text: String = source
            .slice(span)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for name in names {
            out.push((name, text.clone(), span));
        }
    };
    for acl in policy.acls.iter().flat_map(|a| a.value.iter()) {
        add(
            &mut acl.src.iter().chain(acl.dst.iter().map(|d| &d.target)),
            acl.span,
        );
    }
    for grant in policy.grants.iter().flat_map(|g| g.value.iter()) {
        add(&mut grant.src.iter().chain(grant.dst.iter()), grant.span);
    }
    for rule in policy.ssh.iter().flat_map(|s| s.value.iter()) {
        add(&mut rule.src.iter().chain(rule.dst.iter()), rule.span);
    }
    out
}

/// The rules naming another tailnet in NEW and not (as written, but for whitespace) in OLD,
/// and the other way round.
pub(super) fn external_changes(old: Side<'_>, new: Side<'_>) -> Changes<ExternalChange> {
    let before = external_rules(old.policy, old.source);
    let after = external_rules(new.policy, new.source);
    type Rules = [(String, String, Span)];
    fn keys(rules: &Rules) -> BTreeSet<(&str, &str)> {
        rules
            .iter()
            .map(|(n, t, _)| (n.as_str(), t.as_str()))
            .collect()
    }
    let (had, has) = (keys(&before), keys(&after));
    // The rules of `rules` whose (reference, text) `other` lacks, as changes of `side`.
    let changes = |rules: &Rules, other: &BTreeSet<(&str, &str)>, side: Side<'_>| {
        rules
            .iter()
            .filter(|(n, t, _)| !other.contains(&(n.as_str(), t.as_str())))
            .map(|(n, _, span)| ExternalChange {
                reference: n.clone(),
                rules: vec![rule_ref(side.source, *span)],
            })
            .collect::<Vec<_>>()
    };
    Changes {
        gained: changes(&after, &had, new),
        lost: changes(&before, &has, old),
        gained_omitted: 0,
        lost_omitted: 0,
    }
}
