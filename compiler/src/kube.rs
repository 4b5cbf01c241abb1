//! The Kubernetes operator's session recorders: the tags a `tailscale.com/cap/kubernetes`
//! value names under `recorder`, resolved into the `recorderAddrs` the operator reads, as
//! Tailscale's control server does (`kube/kubetypes.KubernetesCapRule`).
//!
//! The operator records `kubectl exec` sessions only to `recorderAddrs`: left unresolved,
//! sessions a grant asks to record ran unrecorded, and with `enforceRecorder` were refused.
//! What Tailscale sends is not captured; the shape follows the operator's type (the value as
//! written, with the addresses beside it) and the addresses follow SSH's recorders (each
//! recorder node's IPv4 address, or IPv6 without one, on the recorder's port).

use aclc_policy::model::{canonical_tag, AppCapability};

use crate::nodes::{NodeId, NodeTable};
use crate::wire::CapMap;

/// The key the operator reads the recorders' addresses from.
const RECORDER_ADDRS: &str = "recorderAddrs";

/// `caps` with each Kubernetes value that names recorders given their addresses; `None`
/// when no value names one (the map is used as written).
pub(crate) fn with_recorders(caps: &CapMap, table: &NodeTable) -> Option<CapMap> {
    let values = caps.get(AppCapability::KUBERNETES)?.as_array()?;
    if !values
        .iter()
        .any(|v| AppCapability::recorder_tags(v).next().is_some())
    {
        return None;
    }
    let resolved: Vec<serde_json::Value> = values
        .iter()
        .map(|value| match recorder_addrs(value, table) {
            Some(addrs) => {
                let mut value = value.clone();
                if let Some(object) = value.as_object_mut() {
                    object.insert(RECORDER_ADDRS.to_string(), addrs.into());
                }
                value
            }
            None => value.clone(),
        })
        .collect();
    let mut caps = caps.clone();
    caps.insert(AppCapability::KUBERNETES.to_string(), resolved.into());
    Some(caps)
}

/// The addresses of the recorders a value names, in node order; `None` when it names no
/// recorder tag or no node carries one (the value is passed on as written: with
/// `enforceRecorder`, the operator then refuses the session).
fn recorder_addrs(value: &serde_json::Value, table: &NodeTable) -> Option<Vec<String>> {
    let mut ids: Vec<NodeId> = AppCapability::recorder_tags(value)
        .flat_map(|tag| table.with_tag(&canonical_tag(tag)).iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let addrs: Vec<String> = ids
        .into_iter()
        .filter_map(|id| crate::ssh::recorder_addr(table.get(id)?))
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

/// The tags the policy's Kubernetes grants name as recorders (canonical, sorted): a node
/// carrying one before or after an event moves those grants' capability values.
pub(crate) fn policy_recorder_tags(policy: &aclc_policy::model::Policy) -> Vec<String> {
    let mut tags: Vec<String> = policy
        .grants
        .iter()
        .flat_map(|g| g.value.iter())
        .flat_map(|g| g.app.iter())
        .filter(|cap| cap.name.value == AppCapability::KUBERNETES)
        .flat_map(|cap| cap.values.value.as_array().into_iter().flatten())
        .flat_map(AppCapability::recorder_tags)
        .map(|tag| canonical_tag(tag).into_owned())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}
