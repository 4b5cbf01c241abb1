//! What the compiler's benches share: reading a generated workload's policy and inventory.

use std::path::Path;

use aclc_compiler::Inventory;
use aclc_policy::model::Policy;

/// The validated policy and the inventory of a `gen_workload.py` output folder.
pub fn load_workload(dir: &Path) -> (Policy, Inventory) {
    let inventory =
        Inventory::from_json(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let options = aclc_policy::Options {
        context: inventory.policy_context(),
        ..Default::default()
    };
    let text = std::fs::read_to_string(dir.join("policy.hujson")).unwrap();
    let (_, parsed) = aclc_policy::parse_str("policy.hujson", &text, &options);
    (parsed.unwrap().policy, inventory)
}
