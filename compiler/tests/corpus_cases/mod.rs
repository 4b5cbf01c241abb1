//! Loading conformance cases for the library-level corpus tests: each case's inventory, and
//! its policy parsed and compiled the way `check.py` has `aclc` do it. Finding the cases and
//! comparing outputs is `aclc_testkit::corpus`'s job; this is the part that needs the compiler.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use aclc_compiler::{compile, Compiled, Inventory};
use aclc_policy::model::Policy;
use aclc_policy::{Checked, Diagnostics, Source};
use aclc_testkit::corpus;
use serde_json::Value;

/// The case's inventory (its `topology` and `tailnet`), validated.
pub fn inventory(case: &Value) -> Inventory {
    Inventory::from_json(&corpus::inventory_json(case).to_string()).unwrap()
}

/// The case's policy parsed in the inventory's context, as `policy.hujson`.
pub fn parse(case: &Value, inventory: &Inventory) -> (Source, Result<Checked, Diagnostics>) {
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let source = Source::new("policy.hujson", corpus::policy_text(case));
    let parsed = aclc_policy::parse(&source, &options);
    (source, parsed)
}

/// A case's policy and compiled tailnet, or `None` when the policy crate refuses it.
pub struct Loaded {
    pub source: Source,
    pub policy: Policy,
    pub compiled: Compiled,
}

pub fn load(case: &Value) -> Option<Loaded> {
    let inventory = inventory(case);
    let (source, parsed) = parse(case, &inventory);
    let checked = parsed.ok()?;
    let compiled = compile(&checked.policy, &inventory);
    Some(Loaded {
        source,
        policy: checked.policy,
        compiled,
    })
}
