//! The names of the `tracing` spans around a compile's and an engine event's phases, so a host
//! can see where an event's time goes (which phase, on which core) without a profiler.
//!
//! Every span is at `DEBUG` level. Without a subscriber (or with one that does not want
//! them) a span costs an atomic load. With one, the spans nest as below; times are wall
//! time on the thread that entered them:
//!
//! | span | fields | covers |
//! |---|---|---|
//! | [`EVENT`] | `version`, `path` (`node`, `routes`, `policy` or `everything`: how far the event can reach; `steps` for an event applied in narrow steps, each with its own spans below: a router's join, leave or change as its routes' and its node's steps, a policy or Service change beside other changes as a step of its own), `changed` (nodes in the change set) | one [`Engine::apply`](crate::engine::Engine::apply) or `apply_batch`, a refused or unchanged one included |
//! | [`INPUTS`] | | the inventory patched or rebuilt, with the node table patched beside it on a node event |
//! | [`COMPILE`] | `nodes` | a whole compile (the engine's, or [`compile`](crate::compile)'s) |
//! | [`TABLE`] | | the node table (unless the engine patched it), IP sets, route approvals |
//! | [`LOWER`] | | the rules lowered, until the other core's phases are done too |
//! | [`SIDE`] | | SSH rules and capabilities, on the other core when the tailnet is worth two |
//! | [`PEERS`] | | the route table and the peer index |
//! | [`FINGERPRINTS`] | `every` (`true` when every node was fingerprinted: the event's reach could not be bounded) | the fingerprints of the nodes the event can reach (every node's otherwise) |
//! | [`CHANGE_SET`] | | the change set, from the fingerprints |
//!
//! `cargo run --release -p aclc-compiler --example engine_server -- --timings` prints them.

/// One engine event (or batch).
pub const EVENT: &str = "engine.event";
/// The event's inventory and node table.
pub const INPUTS: &str = "engine.inputs";
/// A compile.
pub const COMPILE: &str = "compile";
/// The compile's node table, IP sets and route approvals.
pub const TABLE: &str = "compile.table";
/// The rules lowered.
pub const LOWER: &str = "compile.lower";
/// SSH rules and capabilities, beside the lowering.
pub const SIDE: &str = "compile.side";
/// The route table and peer index.
pub const PEERS: &str = "compile.peers";
/// The event's fingerprints.
pub const FINGERPRINTS: &str = "engine.fingerprints";
/// The event's change set.
pub const CHANGE_SET: &str = "engine.change_set";
