//! Shared test and bench support for the aclc workspace, and nothing else: loading the
//! conformance corpus and judging outputs as `check.py` does ([`corpus`]), the ratchet lists
//! ([`corpus::Ratchet`]), the seeded bench workloads ([`workloads`]) and a HuJSON-to-JSON
//! stripper written apart from the parser ([`hujson`]).
//!
//! It is a dev-dependency only (`publish = false`) and depends on none of aclc's crates: it
//! works on `serde_json::Value` and paths, so `aclc-policy` can use it without a cycle.
// Test-only code: a missing corpus file or a malformed case should stop the test run loudly,
// so panicking helpers are the point here (the workspace denies these lints for library code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod corpus;
pub mod hostile;
pub mod hujson;
pub mod workloads;

use std::path::{Path, PathBuf};

/// The workspace root (the folder of the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate is in the workspace")
        .to_path_buf()
}
