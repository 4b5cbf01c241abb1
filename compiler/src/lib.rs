//! Compiles a Tailscale policy and a node inventory into what each node receives.
//!
//! For now this crate holds the [`Inventory`]: the tailnet's users, nodes and routes, read from
//! JSON and validated once on load.

mod inventory;

pub use inventory::{
    Dns, Inventory, InventoryError, InventoryErrorKind, Node, Role, Settings, Tailnet, User,
};
