//! Compiles a Tailscale policy and a node inventory into what each node receives.
//!
//! The [`Inventory`] holds the tailnet's users, nodes and routes, read from JSON and validated
//! once on load. [`compile`] resolves every alias of a validated policy once, against the
//! inventory, into shared address sets; the resulting [`Compiled`] is immutable and
//! `Send + Sync`, and [`Compiled::node`] derives one node's packet filter, routes and peers on
//! demand, in Tailscale's wire format ([`wire`]). A control server runs the [`engine`]: it
//! applies events (nodes, users, routes, policy) and says which nodes' maps each changed.

mod inventory;

pub use inventory::{
    Dns, Inventory, InventoryError, InventoryErrorKind, Node, Role, Service, Settings, Tailnet,
    User,
};

mod addrset;
mod bits;
mod schema;
pub use schema::{inventory_schema, INVENTORY_SCHEMA_ID};
mod compiled;
mod error;
mod hash;
mod ipsets;
mod kube;
mod lower;
mod nodes;
mod par;
mod peers;
mod pernode;
mod posture;
mod resolve;
mod routehits;
mod routes;
pub mod wire;

pub use compiled::{
    compile, compile_with_options, try_compile, try_compile_with_options, CompileOptions, Compiled,
    ExitNodeFilters, NodeView, PeerView,
};
pub use error::{CompileError, CompileErrorKind, CompileLimits};
pub use routes::auto_approved_routes;

mod capmap;
mod devices;
pub mod diff;
pub mod engine;
pub mod phases;
pub mod policytest;
mod ssh;
#[cfg(test)]
mod tailssh_vectors;

pub use compiled::DEFAULT_CONTROL_URL;
pub use policytest::{check_test_shapes, run_tests, TestReport};

/// The node-side matcher, its own crate (`aclc-matcher`) so a node that only enforces filters
/// needs nothing of the policy language; re-exported for callers of the compiler.
pub use aclc_matcher as matcher;
/// A shared address or name text, one pointer wide ([`aclc_matcher::wire::Text`]).
pub use aclc_matcher::wire::Text;
pub use aclc_matcher::{Matcher, ReferenceMatcher};
