//! The semantic diff of two policy files (`aclc diff` without an inventory): per section,
//! the rules and definitions added, removed and changed, ignoring comments, formatting, key
//! case and every order that carries no meaning (all lists but the `ssh` rules, which a node
//! evaluates in order, so reordering them is reported; an IP set's entries when it removes
//! addresses; and capability values, which applications receive as written). A policy that
//! drops its last `acls` or `grants` key falls back to Tailscale's allow-all default: that is
//! reported as a change of its own (`default policy`), though no rule changed.
//!
//! Works on the HuJSON documents, so it needs no inventory and no valid references; values
//! are compared in a canonical form (object keys sorted, unordered lists sorted). Cost:
//! O(n log n) in the size of both documents.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::hujson::{Document, Value, ValueKind};
use crate::source::{Source, Span};

/// Entry text longer than this is cut (with `…`).
const MAX_TEXT: usize = 160;

/// What changed between two policies, section by section (sections in NEW's order, then
/// the ones only OLD has).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyDiff {
    /// The sections that changed.
    pub sections: Vec<SectionDiff>,
}

impl PolicyDiff {
    /// True when the two policies mean the same.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// The changes of one top-level section.
#[derive(Debug, Clone, Serialize)]
pub struct SectionDiff {
    /// The section's key (as NEW writes it, else OLD).
    pub section: String,
    /// Entries only NEW has (rules, or definitions by name).
    pub added: Vec<Entry>,
    /// Entries only OLD has.
    pub removed: Vec<Entry>,
    /// Entries both have, changed.
    pub changed: Vec<Changed>,
    /// For the `ssh` rules: the same rules in a different order (which changes which rule
    /// decides).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reordered: bool,
}

/// A rule or definition.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The definition's name (`group:eng`, `tag:db` ...); absent for a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1-based line in its file (NEW for an addition, OLD for a removal).
    pub line: usize,
    /// The entry, canonical compact JSON (long ones cut with `…`).
    pub text: String,
    /// Where it is (not serialised).
    #[serde(skip)]
    pub span: Span,
}

/// An entry both sides have, changed.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    /// The definition's name; absent for a rule (paired by its sources or destinations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1-based line in OLD.
    pub old_line: usize,
    /// 1-based line in NEW.
    pub new_line: usize,
    /// OLD's entry (canonical compact JSON).
    pub old: String,
    /// NEW's entry.
    pub new: String,
    /// Per field (`src`, `dst`, `members` ...), the list items added.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub items_added: BTreeMap<String, Vec<String>>,
    /// Per field, the list items removed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub items_removed: BTreeMap<String, Vec<String>>,
    /// Where it is in NEW (not serialised).
    #[serde(skip)]
    pub span: Span,
    /// Where it was in OLD (not serialised).
    #[serde(skip)]
    pub old_span: Span,
}

/// Top-level sections whose list order carries meaning.
const ORDERED: [&str; 1] = ["ssh"];

/// Compare two parsed policies.
pub fn diff(
    old: &Document,
    old_source: &Source,
    new: &Document,
    new_source: &Source,
) -> PolicyDiff {
    let sections = |doc: &Document| -> Vec<(String, Value)> {
        doc.root
            .as_object()
            .map(|members| {
                members
                    .iter()
                    .map(|m| (m.key.name.clone(), m.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_sections, new_sections) = (sections(old), sections(new));
    let lookup = |list: &[(String, Value)]| -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for (i, (k, _)) in list.iter().enumerate() {
            // The last duplicate wins, as in Go's decoder.
            map.insert(k.to_ascii_lowercase(), i);
        }
        map
    };
    let (old_index, new_index) = (lookup(&old_sections), lookup(&new_sections));
    let ctx = Ctx {
        old: old_source,
        new: new_source,
    };
    let mut out = PolicyDiff::default();
    let mut seen = std::collections::HashSet::new();
    let empty = Value {
        kind: ValueKind::Null,
        span: Span::new(0, 0),
    };
    let names = new_sections
        .iter()
        .map(|(k, _)| k)
        .chain(old_sections.iter().map(|(k, _)| k));
    for name in names {
        let key = name.to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            continue;
        }
        let o = old_index
            .get(&key)
            .and_then(|&i| old_sections.get(i))
            .map(|(_, v)| v);
        let n = new_index
            .get(&key)
            .and_then(|&i| new_sections.get(i))
            .map(|(_, v)| v);
        let ordered = ORDERED.contains(&key.as_str());
        let section = ctx.section(name, o.unwrap_or(&empty), n.unwrap_or(&empty), ordered);
        if let Some(section) = section {
            out.sections.push(section);
        }
    }
    // A policy without `acls` and `grants` (absent or null) allows everything, one with
    // an empty list of either allows what its rules say: the same rules, another meaning.
    let rules = |list: &[(String, Value)], index: &HashMap<String, usize>| {
        ["acls", "grants"]
            .iter()
            .filter_map(|k| list.get(*index.get(*k)?).map(|(_, v)| v))
            .find(|v| !matches!(v.kind, ValueKind::Null))
            .map(|v| v.span)
    };
    let (was, is) = (
        rules(&old_sections, &old_index),
        rules(&new_sections, &new_index),
    );
    if was.is_some() != is.is_some() {
        let what = |rules: Option<Span>| -> serde_json::Value {
            match rules {
                Some(_) => "the acls and grants as written".into(),
                None => "no acls or grants: every device may reach every other \
                         (Tailscale's default policy)"
                    .into(),
            }
        };
        let (old_span, new_span) = (was.unwrap_or(old.root.span), is.unwrap_or(new.root.span));
        out.sections.insert(
            0,
            SectionDiff {
                section: "default policy".into(),
                added: Vec::new(),
                removed: Vec::new(),
                changed: vec![changed(
                    None,
                    (Ctx::line(old_source, old_span), old_span, &what(was)),
                    (Ctx::line(new_source, new_span), new_span, &what(is)),
                )],
                reordered: false,
            },
        );
    }
    out
}

/// The canonical form of a value: keys sorted (serde_json's map), lists sorted unless
/// `ordered`, recursively; the lists under an `app` key (capability values, handed to
/// applications as written) keep their order.
fn canonical(value: &Value, ordered: bool) -> serde_json::Value {
    canonical_in(value, ordered, false)
}

/// [`canonical`]; `keep` keeps the order of every list below.
fn canonical_in(value: &Value, ordered: bool, keep: bool) -> serde_json::Value {
    match &value.kind {
        ValueKind::Array(items) => {
            let mut items: Vec<serde_json::Value> =
                items.iter().map(|v| canonical_in(v, false, keep)).collect();
            if !ordered && !keep {
                items.sort_by_cached_key(|v| v.to_string());
            }
            serde_json::Value::Array(items)
        }
        ValueKind::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|m| {
                    let keep = keep || m.key.name.eq_ignore_ascii_case("app");
                    (m.key.name.clone(), canonical_in(&m.value, false, keep))
                })
                .collect(),
        ),
        _ => value.to_json(),
    }
}

/// True for an IP set's list that removes addresses: its entries apply in order (`remove`
/// takes from what the entries before it added), so the order is part of its meaning.
fn removes(value: &Value) -> bool {
    let entries = match &value.kind {
        ValueKind::Array(items) => items.as_slice(),
        _ => return false,
    };
    entries
        .iter()
        .any(|e| matches!(&e.kind, ValueKind::String(s) if s.starts_with("remove ")))
}

fn text(value: &serde_json::Value) -> String {
    crate::text::truncate(&value.to_string(), MAX_TEXT).into_owned()
}

struct Ctx<'a> {
    old: &'a Source,
    new: &'a Source,
}

impl Ctx<'_> {
    fn line(source: &Source, span: Span) -> usize {
        source.line_col(span.start as usize).line
    }

    fn section(&self, name: &str, old: &Value, new: &Value, ordered: bool) -> Option<SectionDiff> {
        let mut section = SectionDiff {
            section: name.to_string(),
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            reordered: false,
        };
        match (&old.kind, &new.kind) {
            (ValueKind::Array(o), ValueKind::Array(n)) => self.lists(&mut section, o, n, ordered),
            (ValueKind::Array(o), ValueKind::Null) => self.lists(&mut section, o, &[], ordered),
            (ValueKind::Null, ValueKind::Array(n)) => self.lists(&mut section, &[], n, ordered),
            (ValueKind::Object(_), ValueKind::Object(_) | ValueKind::Null)
            | (ValueKind::Null, ValueKind::Object(_)) => {
                self.objects(&mut section, "", old, new);
            }
            _ => {
                let (o, n) = (canonical(old, ordered), canonical(new, ordered));
                if o != n {
                    self.scalar(&mut section, None, old, new, &o, &n);
                }
            }
        }
        let empty = section.added.is_empty()
            && section.removed.is_empty()
            && section.changed.is_empty()
            && !section.reordered;
        (!empty).then_some(section)
    }

    fn scalar(
        &self,
        section: &mut SectionDiff,
        name: Option<String>,
        old: &Value,
        new: &Value,
        o: &serde_json::Value,
        n: &serde_json::Value,
    ) {
        match (o.is_null(), n.is_null()) {
            (true, _) => section.added.push(Entry {
                name,
                line: Ctx::line(self.new, new.span),
                text: text(n),
                span: new.span,
            }),
            (_, true) => section.removed.push(Entry {
                name,
                line: Ctx::line(self.old, old.span),
                text: text(o),
                span: old.span,
            }),
            _ => section.changed.push(changed(
                name,
                (Ctx::line(self.old, old.span), old.span, o),
                (Ctx::line(self.new, new.span), new.span, n),
            )),
        }
    }

    /// Definitions by name (`groups`, `tagOwners`, `hosts` ...): a nested object (as in
    /// `autoApprovers`) is compared by its own names, joined with `/`.
    fn objects(&self, section: &mut SectionDiff, prefix: &str, old: &Value, new: &Value) {
        let members = |v: &Value| -> Vec<(String, Value)> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|m| (m.key.name.clone(), m.value.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (o, n) = (members(old), members(new));
        let o_map: HashMap<&str, &Value> = o.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let n_map: HashMap<&str, &Value> = n.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let null = Value {
            kind: ValueKind::Null,
            span: Span::new(0, 0),
        };
        let mut seen = std::collections::HashSet::new();
        for (key, _) in n.iter().chain(o.iter()) {
            if !seen.insert(key.as_str()) {
                continue;
            }
            let name = format!("{prefix}{key}");
            let ov = o_map.get(key.as_str()).copied().unwrap_or(&null);
            let nv = n_map.get(key.as_str()).copied().unwrap_or(&null);
            let nested = matches!(ov.kind, ValueKind::Object(_) | ValueKind::Null)
                && matches!(nv.kind, ValueKind::Object(_) | ValueKind::Null)
                && (matches!(ov.kind, ValueKind::Object(_))
                    || matches!(nv.kind, ValueKind::Object(_)))
                && prefix.is_empty()
                && is_nested_section(&section.section);
            if nested {
                self.objects(section, &format!("{name}/"), ov, nv);
                continue;
            }
            // An IP set that removes is read in order.
            let ordered =
                section.section.eq_ignore_ascii_case("ipsets") && (removes(ov) || removes(nv));
            let (oc, nc) = (canonical(ov, ordered), canonical(nv, ordered));
            if oc != nc {
                self.scalar(section, Some(name), ov, nv, &oc, &nc);
            }
        }
    }

    /// Rules (`acls`, `grants`, `ssh`, `nodeAttrs`, `tests` ...): a multiset difference of
    /// their canonical forms, then removed and added rules with the same sources (or the
    /// same destinations) are paired as changed.
    fn lists(&self, section: &mut SectionDiff, old: &[Value], new: &[Value], ordered: bool) {
        let o: Vec<(serde_json::Value, &Value)> =
            old.iter().map(|v| (canonical(v, false), v)).collect();
        let n: Vec<(serde_json::Value, &Value)> =
            new.iter().map(|v| (canonical(v, false), v)).collect();
        let mut counts: HashMap<String, isize> = HashMap::new();
        for (c, _) in &o {
            *counts.entry(c.to_string()).or_insert(0) += 1;
        }
        let mut added = Vec::new();
        for (c, v) in &n {
            let k = c.to_string();
            match counts.get_mut(&k) {
                Some(count) if *count > 0 => *count -= 1,
                _ => added.push((c.clone(), *v)),
            }
        }
        let mut counts_new: HashMap<String, isize> = HashMap::new();
        for (c, _) in &n {
            *counts_new.entry(c.to_string()).or_insert(0) += 1;
        }
        let mut removed = Vec::new();
        for (c, v) in &o {
            let k = c.to_string();
            match counts_new.get_mut(&k) {
                Some(count) if *count > 0 => *count -= 1,
                _ => removed.push((c.clone(), *v)),
            }
        }
        if ordered && added.is_empty() && removed.is_empty() {
            let same_order = o.iter().map(|x| &x.0).eq(n.iter().map(|x| &x.0));
            section.reordered = !same_order;
        }
        // Pair by equal sources, then by equal destinations: each removed rule, in order,
        // with the first added rule left whose field is equal. The added rules are found by
        // the field's text (equal values, equal texts: objects' keys are sorted), not by a
        // walk over all of them per removed rule, which made a diff of two policies whose
        // rules do not pair quadratic (30 s at 1.4 MB each).
        for field in ["src", "dst", "target"] {
            let mut by_key: HashMap<String, std::collections::VecDeque<usize>> = HashMap::new();
            for (j, (c, _)) in added.iter().enumerate() {
                if let Some(key) = c.get(field) {
                    by_key.entry(key.to_string()).or_default().push_back(j);
                }
            }
            let mut taken = vec![false; added.len()];
            let mut kept = Vec::with_capacity(removed.len());
            for (oc, ov) in std::mem::take(&mut removed) {
                let found = oc
                    .get(field)
                    .and_then(|key| by_key.get_mut(&key.to_string())?.pop_front());
                let pair = found.and_then(|j| Some((j, added.get(j)?)));
                match pair {
                    Some((j, (nc, nv))) => {
                        if let Some(t) = taken.get_mut(j) {
                            *t = true;
                        }
                        section.changed.push(changed(
                            None,
                            (Ctx::line(self.old, ov.span), ov.span, &oc),
                            (Ctx::line(self.new, nv.span), nv.span, nc),
                        ));
                    }
                    None => kept.push((oc, ov)),
                }
            }
            removed = kept;
            let mut flags = taken.into_iter();
            added.retain(|_| !flags.next().unwrap_or(false));
        }
        section.added.extend(added.into_iter().map(|(c, v)| Entry {
            name: None,
            line: Ctx::line(self.new, v.span),
            text: text(&c),
            span: v.span,
        }));
        section
            .removed
            .extend(removed.into_iter().map(|(c, v)| Entry {
                name: None,
                line: Ctx::line(self.old, v.span),
                text: text(&c),
                span: v.span,
            }));
    }
}

/// Sections whose values are themselves maps of definitions.
fn is_nested_section(name: &str) -> bool {
    name.eq_ignore_ascii_case("autoApprovers")
}

/// A changed entry, with the list items each field gained and lost.
fn changed(
    name: Option<String>,
    (old_line, old_span, o): (usize, Span, &serde_json::Value),
    (new_line, span, n): (usize, Span, &serde_json::Value),
) -> Changed {
    let mut items_added = BTreeMap::new();
    let mut items_removed = BTreeMap::new();
    let mut fields: Vec<(
        String,
        Option<&serde_json::Value>,
        Option<&serde_json::Value>,
    )> = Vec::new();
    match (o, n) {
        (serde_json::Value::Array(_), serde_json::Value::Array(_)) => {
            fields.push(("members".into(), Some(o), Some(n)));
        }
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                fields.push((key.clone(), a.get(key), b.get(key)));
            }
        }
        _ => {}
    }
    for (field, a, b) in fields {
        let items = |v: Option<&serde_json::Value>| -> Vec<String> {
            match v {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        if !matches!(a, Some(serde_json::Value::Array(_)) | None)
            || !matches!(b, Some(serde_json::Value::Array(_)) | None)
        {
            continue;
        }
        let (ia, ib) = (items(a), items(b));
        // Membership by hash: a group of 80,000 members losing half of them took 10 s
        // item by item through the other list.
        let (sa, sb): (HashSet<&String>, HashSet<&String>) =
            (ia.iter().collect(), ib.iter().collect());
        let plus: Vec<String> = ib.iter().filter(|x| !sa.contains(x)).cloned().collect();
        let minus: Vec<String> = ia.iter().filter(|x| !sb.contains(x)).cloned().collect();
        if !plus.is_empty() {
            items_added.insert(field.clone(), plus);
        }
        if !minus.is_empty() {
            items_removed.insert(field, minus);
        }
    }
    Changed {
        name,
        old_line,
        new_line,
        old: text(o),
        new: text(n),
        items_added,
        items_removed,
        span,
        old_span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hujson;
    use crate::limits::Limits;

    fn run(old: &str, new: &str) -> PolicyDiff {
        let (os, ns) = (Source::new("old", old), Source::new("new", new));
        let limits = Limits::default();
        let (Some(od), _) = hujson::parse(&os, &limits) else {
            return PolicyDiff::default();
        };
        let (Some(nd), _) = hujson::parse(&ns, &limits) else {
            return PolicyDiff::default();
        };
        diff(&od, &os, &nd, &ns)
    }

    #[test]
    fn comments_formatting_order_and_key_case_are_not_changes() {
        let old = r#"{"groups": {"group:a": ["x@", "y@"]}, "acls": [
            {"action": "accept", "src": ["group:a"], "dst": ["*:22"]},
            {"action": "accept", "src": ["tag:b"], "dst": ["*:80"]}]}"#;
        let new = "{\n  // comment\n  \"ACLs\": [\n    {\"src\": [\"tag:b\"], \"action\": \"accept\", \"dst\": [\"*:80\"]},\n    {\"action\": \"accept\", \"src\": [\"group:a\"], \"dst\": [\"*:22\"],},\n  ],\n  \"groups\": {\"group:a\": [\"y@\", \"x@\"]},\n}\n";
        assert!(run(old, new).is_empty(), "{:?}", run(old, new));
    }

    #[test]
    fn falling_back_to_allow_all_is_a_change() {
        let section = |d: &PolicyDiff| d.sections.first().map(|s| s.section.clone());
        for (old, new) in [
            (r#"{"acls": []}"#, "{}"),
            (r#"{"acls": []}"#, r#"{"acls": null}"#),
            (r#"{"grants": []}"#, r#"{"hosts": {}}"#),
            ("{}", r#"{"ACLs": []}"#),
        ] {
            let d = run(old, new);
            assert_eq!(
                section(&d).as_deref(),
                Some("default policy"),
                "{old} -> {new}"
            );
        }
        // Both allow everything, or neither does.
        for (old, new) in [
            ("{}", r#"{"acls": null}"#),
            (r#"{"acls": []}"#, r#"{"grants": []}"#),
            (r#"{"acls": [], "grants": null}"#, r#"{"acls": []}"#),
        ] {
            let d = run(old, new);
            assert!(
                d.sections.iter().all(|s| s.section != "default policy"),
                "{old} -> {new}: {d:?}"
            );
        }
    }

    #[test]
    fn order_that_carries_meaning_is_a_change() {
        // An IP set that removes applies its entries in order.
        let set = |a: &str, b: &str| format!(r#"{{"ipsets": {{"ipset:c": ["{a}", "{b}"]}}}}"#);
        let (add, remove) = ("add 10.0.0.0/8", "remove 10.1.0.0/16");
        assert!(!run(&set(add, remove), &set(remove, add)).is_empty());
        let (a, b) = ("add 10.0.0.0/8", "add 10.1.0.0/16");
        assert!(run(&set(a, b), &set(b, a)).is_empty());
        // Capability values reach the application as written.
        let grant = |v: &str| {
            format!(
                r#"{{"grants": [{{"src": ["*"], "dst": ["*"], "app": {{"example.com/cap/x": [{v}]}}}}]}}"#
            )
        };
        assert!(!run(&grant(r#"{"o": [1, 2]}"#), &grant(r#"{"o": [2, 1]}"#)).is_empty());
        assert!(!run(
            &grant(r#"{"a": 1}, {"b": 2}"#),
            &grant(r#"{"b": 2}, {"a": 1}"#)
        )
        .is_empty());
        // Sources are a set.
        let rule =
            |s: &str| format!(r#"{{"grants": [{{"src": [{s}], "dst": ["*"], "ip": ["*"]}}]}}"#);
        assert!(run(&rule(r#""a@", "b@""#), &rule(r#""b@", "a@""#)).is_empty());
    }

    /// Removed rules pair, in order, with the first added rule left whose sources (then
    /// destinations) are equal; the rest stay added or removed.
    #[test]
    fn rules_pair_in_order_by_sources_then_destinations() {
        let rule = |src: &str, dst: &str| {
            format!(r#"{{"action": "accept", "src": ["{src}"], "dst": ["{dst}"]}}"#)
        };
        let old = format!(
            r#"{{"acls": [{}, {}, {}, {}]}}"#,
            rule("tag:x", "*:1"),
            rule("tag:x", "*:2"),
            rule("tag:z", "*:9"),
            rule("tag:q", "*:7"),
        );
        let new = format!(
            r#"{{"acls": [{}, {}, {}, {}, {}]}}"#,
            rule("tag:x", "*:3"),
            rule("tag:y", "*:9"),
            rule("tag:x", "*:4"),
            rule("tag:w", "*:5"),
            rule("tag:x", "*:6"),
        );
        let d = run(&old, &new);
        let acls = d.sections.first().unwrap();
        let pairs: Vec<(usize, usize)> = acls
            .changed
            .iter()
            .map(|c| (c.old_line, c.new_line))
            .collect();
        let texts: Vec<(String, String)> = acls
            .changed
            .iter()
            .map(|c| (c.old.clone(), c.new.clone()))
            .collect();
        assert_eq!(pairs.len(), 3, "{texts:?}");
        assert!(
            texts[0].0.contains("*:1") && texts[0].1.contains("*:3"),
            "{texts:?}"
        );
        assert!(
            texts[1].0.contains("*:2") && texts[1].1.contains("*:4"),
            "{texts:?}"
        );
        assert!(
            texts[2].0.contains("*:9") && texts[2].1.contains("tag:y"),
            "{texts:?}"
        );
        let added: Vec<&str> = acls.added.iter().map(|e| e.text.as_str()).collect();
        assert!(
            added.len() == 2 && added[0].contains("*:5") && added[1].contains("*:6"),
            "{added:?}"
        );
        let removed: Vec<&str> = acls.removed.iter().map(|e| e.text.as_str()).collect();
        assert!(
            removed.len() == 1 && removed[0].contains("tag:q"),
            "{removed:?}"
        );
    }

    #[test]
    fn ssh_order_matters() {
        let a = r#"{"action": "accept", "src": ["group:a"], "dst": ["tag:x"], "users": ["root"]}"#;
        let b = r#"{"action": "check", "src": ["group:a"], "dst": ["tag:x"], "users": ["root"]}"#;
        let d = run(
            &format!(r#"{{"ssh": [{a}, {b}]}}"#),
            &format!(r#"{{"ssh": [{b}, {a}]}}"#),
        );
        assert_eq!(d.sections.len(), 1);
        assert!(d.sections.first().is_some_and(|s| s.reordered));
    }

    #[test]
    fn members_and_rules_added_removed_and_changed() {
        let old = r#"{"groups": {"group:a": ["x@", "y@"], "group:gone": []},
            "acls": [{"action": "accept", "src": ["group:a"], "dst": ["tag:db:5432"]}]}"#;
        let new = r#"{"groups": {"group:a": ["x@", "z@"], "group:new": ["q@"]},
            "acls": [{"action": "accept", "src": ["group:a"], "dst": ["tag:db:5432-5433"]},
                     {"action": "accept", "src": ["tag:ci"], "dst": ["tag:db:22"]}]}"#;
        let d = run(old, new);
        let groups = d.sections.iter().find(|s| s.section == "groups");
        let acls = d.sections.iter().find(|s| s.section == "acls");
        let (Some(groups), Some(acls)) = (groups, acls) else {
            unreachable!("both sections changed: {d:?}");
        };
        assert_eq!(groups.added.len(), 1);
        assert_eq!(groups.removed.len(), 1);
        let change = groups.changed.first();
        assert_eq!(change.and_then(|c| c.name.as_deref()), Some("group:a"));
        assert_eq!(
            change.map(|c| (c.items_added.clone(), c.items_removed.clone())),
            Some((
                BTreeMap::from([("members".to_string(), vec!["z@".to_string()])]),
                BTreeMap::from([("members".to_string(), vec!["y@".to_string()])])
            ))
        );
        assert_eq!(acls.added.len(), 1);
        assert_eq!(acls.changed.len(), 1);
        assert!(acls.removed.is_empty());
    }
}
