//! Device posture gates (Tailscale KB "Device posture management", kb/1288): a rule with
//! `srcPosture` (or, lacking one, the policy's `defaultSrcPosture`) takes as sources only the
//! devices that satisfy at least one of its postures, so this decides, once per (gate, device),
//! which devices pass.
//!
//! Fail closed throughout: a device without an attribute fails every condition on it but
//! `NOT SET`; an undefined posture admits nobody; address-only sources (IPs, prefixes, hosts,
//! the non-device part of `*`) have no device and so no posture, and never pass a gate (the
//! callers drop them).

use std::collections::HashMap;
use std::sync::Arc;

use aclc_policy::model::{Policy, PolicyIndex, PostureDef, Spanned};
use serde_json::{Map, Value};

use crate::nodes::{NodeId, NodeTable};

/// The postures a rule requires, any one of which admits a device: sorted, distinct names.
pub(crate) type Gate = Arc<[String]>;

/// The gate of a rule whose own `srcPosture` is `own` (an empty list defers to
/// `defaultSrcPosture`, which it would otherwise replace); `None` when the rule is ungated.
pub(crate) fn gate_of(policy: &Policy, own: &[Spanned<String>]) -> Option<Gate> {
    let names = if own.is_empty() {
        &policy.default_src_posture
    } else {
        own
    };
    if names.is_empty() {
        return None;
    }
    let mut names: Vec<String> = names.iter().map(|n| n.value.trim().to_string()).collect();
    names.sort_unstable();
    names.dedup();
    Some(Arc::from(names))
}

/// True if a device whose attributes `lookup` reads satisfies one of the gate's postures (OR
/// across the list, AND within a posture).
/// An undefined posture admits nobody (fail closed).
pub(crate) fn admits<'v, 'p>(
    postures: impl Fn(&str) -> Option<&'p PostureDef>,
    gate: &[String],
    lookup: impl Fn(&str) -> Option<&'v Value> + Copy,
) -> bool {
    gate.iter()
        .any(|name| postures(name).is_some_and(|p| p.holds(lookup)))
}

/// The verdicts of one compile (or one test run): each gate is evaluated at most once per
/// device, and only for devices some gated rule names as a source.
pub(crate) struct Gates<'a> {
    /// The policy's postures by name.
    index: PolicyIndex<'a>,
    table: &'a NodeTable,
    /// Devices whose attributes are taken from elsewhere (a test's `srcPostureAttrs`).
    assumed: Option<(&'a [NodeId], &'a Map<String, Value>)>,
    /// Per gate, per device: 0 not yet known, 1 admitted, 2 refused.
    verdicts: HashMap<Gate, Vec<u8>>,
}

impl<'a> Gates<'a> {
    /// Verdicts from the inventory's attributes.
    pub(crate) fn new(policy: &'a Policy, table: &'a NodeTable) -> Gates<'a> {
        Gates {
            index: policy.index(),
            table,
            assumed: None,
            verdicts: HashMap::new(),
        }
    }

    /// Verdicts that take `attrs` as the attributes of `nodes` (sorted) instead of the
    /// inventory's.
    pub(crate) fn assuming(
        policy: &'a Policy,
        table: &'a NodeTable,
        nodes: &'a [NodeId],
        attrs: &'a Map<String, Value>,
    ) -> Gates<'a> {
        Gates {
            assumed: Some((nodes, attrs)),
            ..Gates::new(policy, table)
        }
    }

    /// True if the gate admits device `id`.
    pub(crate) fn admits(&mut self, gate: &Gate, id: NodeId) -> bool {
        let Gates {
            index,
            table,
            assumed,
            verdicts,
        } = self;
        let verdicts = verdicts
            .entry(gate.clone())
            .or_insert_with(|| vec![0; table.len()]);
        let Some(slot) = verdicts.get_mut(id.index()) else {
            return false;
        };
        if *slot == 0 {
            let passes = match assumed {
                Some((nodes, attrs)) if nodes.binary_search(&id).is_ok() => {
                    admits(|n| index.posture(n), gate, |k| attrs.get(k))
                }
                _ => table.get(id).is_some_and(|node| {
                    admits(|n| index.posture(n), gate, |k| node.posture.get(k))
                }),
            };
            *slot = if passes { 1 } else { 2 };
        }
        *slot == 1
    }

    /// The devices of `ids` the gate admits, in their order.
    pub(crate) fn filter(
        &mut self,
        gate: &Gate,
        ids: impl IntoIterator<Item = NodeId>,
    ) -> Vec<NodeId> {
        ids.into_iter()
            .filter(|&id| self.admits(gate, id))
            .collect()
    }

    /// Every device the gate admits, sorted.
    pub(crate) fn all(&mut self, gate: &Gate) -> Vec<NodeId> {
        let count = self.table.len();
        self.filter(gate, (0..count).map(NodeId::new))
    }
}

#[cfg(test)]
mod tests;
