//! `check.py`'s comparison of a node's output with its capture, transcribed function by
//! function (`compare_node`, `norm_rule`, `norm_ssh_rule`, `norm_caps`, ...) so that every
//! harness passes exactly the cases `check.py` passes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A mismatch: the part that failed (`check.py`'s tally key) and a message.
pub type Problem = (&'static str, String);

/// Capabilities the control plane stamps on every node from tailnet state, not from the
/// policy (`TAILNET_STATE_CAPS`); dropped from both sides before comparing cap maps.
pub const TAILNET_STATE_CAPS: [&str; 12] = [
    "default-auto-update",
    "https://tailscale.com/cap/file-sharing",
    "https://tailscale.com/cap/is-admin",
    "https://tailscale.com/cap/is-owner",
    "https://tailscale.com/cap/ssh",
    "https://tailscale.com/cap/tailnet-lock",
    "https://tailscale.com/cap/warn-funnel-no-https",
    "probe-udp-lifetime",
    "ssh-behavior-v1",
    "ssh-env-vars",
    "store-appc-routes",
    "tailnet-display-name",
];
/// `TAILNET_STATE_CAP_PREFIXES`.
pub const TAILNET_STATE_CAP_PREFIXES: [&str; 1] = ["https://tailscale.com/cap/funnel-ports?"];

/// The recorded nodes of an accepted case's `expect`, as (name, capture), without its
/// `uncaptured_nodes`.
pub fn captured_nodes(expect: &Value) -> impl Iterator<Item = (&String, &Value)> {
    let skip: BTreeSet<&str> = expect["uncaptured_nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    expect["nodes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(move |(name, _)| !skip.contains(name.as_str()))
}

/// The node half of `run_case`: every captured node (except `uncaptured_nodes`) compared with
/// what `got` gives for its name (`None`: missing from the output), only the filter and SSH
/// rules when `route_state_inconsistent` is set.
pub fn compare_nodes<V: Borrow<Value>>(
    category: &str,
    expect: &Value,
    mut got: impl FnMut(&str) -> Option<V>,
) -> Vec<Problem> {
    let filters_only = truthy(&expect["route_state_inconsistent"]);
    let mut problems = Vec::new();
    for (name, want) in captured_nodes(expect) {
        let node = got(name);
        problems.extend(compare_node(
            category,
            name,
            want,
            node.as_ref().map(Borrow::borrow),
            filters_only,
        ));
    }
    problems
}

/// `compare_node`: the mismatches of one node.
pub fn compare_node(
    category: &str,
    name: &str,
    want: &Value,
    got: Option<&Value>,
    filters_only: bool,
) -> Vec<Problem> {
    let Some(got) = got else {
        return vec![("node", format!("{name}: missing from output"))];
    };
    let mut bad = Vec::new();
    if rules(want, "packet_filter_rules", norm_rule) != rules(got, "packet_filter_rules", norm_rule)
    {
        bad.push((
            "packet_filter_rules",
            format!("{name}: packet_filter_rules differ"),
        ));
    }
    if rules(want, "ssh_rules", norm_ssh_rule) != rules(got, "ssh_rules", norm_ssh_rule) {
        bad.push(("ssh_rules", format!("{name}: ssh_rules differ")));
    }
    if filters_only {
        return bad;
    }
    for key in ["addresses", "allowed_ips", "primary_routes"] {
        if sorted_list(&want[key]) != sorted_list(&got[key]) {
            bad.push((key, format!("{name}: {key} differ")));
        }
    }
    let none = Map::new();
    let want_peers = or_empty_object(&want["peers"], &none);
    let got_peers = or_empty_object(&got["peers"], &none);
    let w: BTreeSet<&String> = want_peers.keys().collect();
    let g: BTreeSet<&String> = got_peers.keys().collect();
    if w == g {
        for (peer, wp) in want_peers {
            let gp = &got_peers[peer];
            for key in ["allowed_ips", "primary_routes"] {
                if sorted_list(&wp[key]) != sorted_list(&gp[key]) {
                    bad.push(("peers", format!("{name}: peer {peer} {key} differ")));
                }
            }
            if norm_caps(&wp["cap_map"]) != norm_caps(&gp["cap_map"]) {
                bad.push((
                    "peer_cap_map",
                    format!("{name}: peer {peer} cap_map differs"),
                ));
            }
        }
    } else {
        let missing: Vec<&&String> = w.difference(&g).collect();
        let extra: Vec<&&String> = g.difference(&w).collect();
        bad.push((
            "peers",
            format!("{name}: peers differ (missing {missing:?}, extra {extra:?})"),
        ));
    }
    if category == "nodeattrs" && norm_caps(&want["cap_map"]) != norm_caps(&got["cap_map"]) {
        bad.push(("cap_map", format!("{name}: cap_map differs")));
    }
    bad
}

/// `empty`: `null`, `[]` and `{}` (a missing key reads as `null`).
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Python's truth value of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `x or {}` for an object.
fn or_empty_object<'a>(v: &'a Value, none: &'a Map<String, Value>) -> &'a Map<String, Value> {
    v.as_object().unwrap_or(none)
}

/// A total order on JSON values that agrees with Python's `sorted` on lists of strings or of
/// numbers (the only lists it sorts here); anything else is ordered by its JSON text.
fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `sorted(v or [])`.
pub fn sorted_list(v: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = v.as_array().cloned().unwrap_or_default();
    out.sort_by(cmp_values);
    out
}

/// `[norm(r) for r in node.get(key) or []]`.
fn rules(node: &Value, key: &str, norm: fn(&Value) -> Value) -> Vec<Value> {
    norm_list(&node[key], norm)
}

/// `[norm(r) for r in list or []]`: a list of rules, each normalised.
pub fn norm_list(list: &Value, norm: fn(&Value) -> Value) -> Vec<Value> {
    list.as_array()
        .map(|a| a.iter().map(norm).collect())
        .unwrap_or_default()
}

/// The non-empty entries of an object, each passed through `f`.
fn non_empty(v: &Value, f: impl Fn(&str, &Value) -> Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    Value::Object(
        o.iter()
            .filter(|(_, v)| !is_empty(v))
            .map(|(k, v)| (k.clone(), f(k, v)))
            .collect(),
    )
}

/// `norm_rule`: a `FilterRule` with empty fields dropped and `SrcIPs`, `DstPorts` (by IP,
/// First, Last; a stable sort, duplicates kept), `IPProto` and each `CapGrant`'s `Dsts` sorted.
pub fn norm_rule(rule: &Value) -> Value {
    non_empty(rule, |key, val| match key {
        "SrcIPs" | "IPProto" => Value::Array(sorted_list(val)),
        "DstPorts" => {
            let mut list: Vec<Value> = val.as_array().cloned().unwrap_or_default();
            let port = |d: &Value, k: &str| d["Ports"][k].as_f64().unwrap_or(0.0);
            list.sort_by(|a, b| {
                let ip = |d: &Value| d["IP"].as_str().unwrap_or_default().to_string();
                ip(a)
                    .cmp(&ip(b))
                    .then(port(a, "First").total_cmp(&port(b, "First")))
                    .then(port(a, "Last").total_cmp(&port(b, "Last")))
            });
            Value::Array(
                list.iter()
                    .map(|d| non_empty(d, |_, v| v.clone()))
                    .collect(),
            )
        }
        "CapGrant" => Value::Array(
            val.as_array()
                .map(|gs| {
                    gs.iter()
                        .map(|g| {
                            non_empty(g, |k, v| {
                                if k == "Dsts" {
                                    Value::Array(sorted_list(v))
                                } else {
                                    v.clone()
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => val.clone(),
    })
}

/// `norm_ssh_rule`: empty fields dropped, `principals` in a canonical order (`check.py` sorts
/// them by their JSON text; any total order gives the same equality).
pub fn norm_ssh_rule(rule: &Value) -> Value {
    non_empty(rule, |key, val| {
        if key == "principals" {
            let mut list: Vec<Value> = val.as_array().cloned().unwrap_or_default();
            list.sort_by_cached_key(Value::to_string);
            Value::Array(list)
        } else {
            val.clone()
        }
    })
}

/// `norm_caps`: a cap map without the tailnet-state capabilities, with empty values as `null`.
pub fn norm_caps(cap_map: &Value) -> Map<String, Value> {
    caps_where(cap_map, |k| {
        !TAILNET_STATE_CAPS.contains(&k)
            && !TAILNET_STATE_CAP_PREFIXES.iter().any(|p| k.starts_with(p))
    })
}

/// A whole cap map, the tailnet-state capabilities included, with empty values as `null`
/// (for harnesses that check what the compiler models beyond `check.py`).
pub fn all_caps(cap_map: &Value) -> Map<String, Value> {
    caps_where(cap_map, |_| true)
}

/// The capabilities of `cap_map` whose name `keep` accepts, empty values as `null`.
fn caps_where(cap_map: &Value, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    let Some(caps) = cap_map.as_object() else {
        return Map::new();
    };
    caps.iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| {
            let v = if is_empty(v) { Value::Null } else { v.clone() };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_rules_compare_as_check_py_does() {
        let want = json!({"SrcIPs": ["b", "a"], "IPProto": [], "DstPorts": [
            {"IP": "y", "Ports": {"First": 2, "Last": 2}},
            {"IP": "x", "Ports": {"First": 1, "Last": 1}}]});
        let got = json!({"DstPorts": [
            {"IP": "x", "Ports": {"First": 1, "Last": 1}},
            {"IP": "y", "Ports": {"First": 2, "Last": 2}}], "SrcIPs": ["a", "b"]});
        assert_eq!(norm_rule(&want), norm_rule(&got));
        // Duplicates are kept, addresses are not rewritten.
        let dup = json!({"SrcIPs": ["a", "a"]});
        assert_ne!(norm_rule(&dup), norm_rule(&json!({"SrcIPs": ["a"]})));
        assert_ne!(
            norm_rule(&json!({"SrcIPs": ["100.64.0.1"]})),
            norm_rule(&json!({"SrcIPs": ["100.64.0.1/32"]}))
        );
    }

    #[test]
    fn nodes_compare_as_check_py_does() {
        let want = json!({"packet_filter_rules": null, "ssh_rules": [],
            "addresses": ["b", "a"], "allowed_ips": ["a", "b"],
            "cap_map": {"tailnet-display-name": ["x"], "funnel": null},
            "peers": {"p": {"allowed_ips": ["c"], "cap_map": {"k": []}}}});
        let got = json!({"addresses": ["a", "b"], "allowed_ips": ["b", "a"],
            "primary_routes": [], "cap_map": {"funnel": []},
            "peers": {"p": {"allowed_ips": ["c"], "cap_map": {"k": null}}}});
        assert!(compare_node("nodeattrs", "n", &want, Some(&got), false).is_empty());
        let other = json!({"addresses": ["a", "b"], "allowed_ips": ["b", "a"],
            "peers": {"p": {"allowed_ips": ["c"]}}});
        let parts: Vec<&str> = compare_node("nodeattrs", "n", &want, Some(&other), false)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(parts, ["peer_cap_map", "cap_map"]);
        // Outside nodeattrs the node's own cap_map is not compared; filters_only stops early.
        assert_eq!(
            compare_node("acl", "n", &want, Some(&other), false).len(),
            1
        );
        assert!(compare_node("acl", "n", &want, Some(&json!({})), true).is_empty());
    }
}
