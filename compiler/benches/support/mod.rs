//! What the compiler's benches share: reading a generated workload's policy and inventory,
//! and the options they compile it with.

use std::path::Path;

use aclc_compiler::{CompileOptions, Compiled, ExitNodeFilters, Inventory};
use aclc_policy::model::Policy;

/// The options the benches compile the workloads with: exit nodes given only the internet's
/// destinations. The workloads approve exit routes on 0.2% of the nodes and have broad
/// rules, so with Tailscale's exit filters (the default) each exit node holds most of the
/// policy: 782,000 entries on `medium`, past the 4,194,304-entry limit on `large` (refused).
/// ARCHITECTURE.md, "Exit nodes receive every rule's destinations".
pub fn options() -> CompileOptions {
    let mut options = CompileOptions::default();
    options.exit_node_filters = ExitNodeFilters::InternetOnly;
    options
}

/// [`aclc_compiler::compile_with_options`] with [`options`].
pub fn compile(policy: &Policy, inventory: &Inventory) -> Compiled {
    aclc_compiler::compile_with_options(policy, inventory, &options())
}

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
