//! Caps on input size and nesting, so hostile input costs bounded time and memory.

/// Limits applied while reading a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted file, in bytes (default 16 MiB).
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (default 128).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 128,
        }
    }
}
