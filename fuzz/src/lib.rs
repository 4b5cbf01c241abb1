//! Shared input handling of the fuzz targets: one fuzz input carries a policy and, optionally,
//! an inventory, so that the targets reaching the compiler mutate both.
//!
//! Layout: the policy text, then a NUL byte, then the inventory JSON. Without a NUL the whole
//! input is the policy and the inventory is `testdata/examples/inventory.json`, so that plain
//! policy seeds (and mutations that lose the separator) still compile against real nodes.
//! `seed.sh` writes the conformance cases in this layout.

use aclc_compiler::Inventory;
use aclc_policy::model::Policy;
use aclc_policy::{source_from_bytes, Limits, Options, Source};

/// The inventory used when the input carries none.
pub const DEFAULT_INVENTORY: &str = include_str!("../../testdata/examples/inventory.json");

/// The policy bytes and the inventory text of an input (`None` when the inventory part is not
/// UTF-8).
pub fn split(data: &[u8]) -> (&[u8], Option<&str>) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], std::str::from_utf8(&data[at + 1..]).ok()),
        None => (data, Some(DEFAULT_INVENTORY)),
    }
}

/// A policy the policy crate accepts, with its source and the inventory it was checked
/// against; `None` when either is refused (refusing is fine, crashing is not).
pub fn load(data: &[u8]) -> Option<(Source, Policy, Inventory)> {
    let (policy, inventory) = split(data);
    let inventory = Inventory::from_json(inventory?).ok()?;
    let limits = Limits::default();
    let (source, _) = source_from_bytes("fuzz.hujson", policy, &limits);
    let options = Options {
        limits,
        context: inventory.policy_context(),
    };
    let checked = aclc_policy::parse(&source, &options).ok()?;
    Some((source, checked.policy, inventory))
}
