//! One fast keyed hash for the compiler's tables and fingerprints: std's SipHash was an eighth
//! of a compile on `large` (interning long address lists, fingerprinting every node).
//!
//! The keys are drawn once per process ([`ahash::RandomState::new`]), so an input cannot be
//! crafted to collide in a table or make two different maps' fingerprints equal, and every
//! snapshot a process computes hashes with the same keys (fingerprints are compared only
//! within one process; nothing hashed here is written out).

use std::hash::BuildHasher;
use std::sync::OnceLock;

/// The hasher builder of the compiler's hash tables.
pub(crate) type BuildHash = ahash::RandomState;
/// A hash map with [`BuildHash`].
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, BuildHash>;
/// A hash set with [`BuildHash`].
pub(crate) type Set<T> = std::collections::HashSet<T, BuildHash>;

static KEYS: OnceLock<ahash::RandomState> = OnceLock::new();

/// A hasher with this process's keys, for hashes that must agree across snapshots.
pub(crate) fn hasher() -> ahash::AHasher {
    KEYS.get_or_init(ahash::RandomState::new).build_hasher()
}

/// The hash of a name, for the tables that find nodes by name without holding the names
/// (the inventory's and the node table's).
pub(crate) fn name(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = hasher();
    name.hash(&mut h);
    h.finish()
}

/// A hash of something a compile holds (an SSH rule's principals),
/// computed on first use by whichever thread fingerprints first and then read by all; a
/// clone carries the value (a list shared with the next compile keeps its hash). Not part
/// of what it caches: two are equal whether computed or not.
#[derive(Debug, Default, Clone)]
pub(crate) struct Memo(OnceLock<u64>);

impl PartialEq for Memo {
    fn eq(&self, _: &Memo) -> bool {
        true
    }
}

impl Memo {
    /// The hash, computed by `hash` the first time.
    pub(crate) fn get_or(&self, hash: impl FnOnce() -> u64) -> u64 {
        *self.0.get_or_init(hash)
    }
}

/// The hash `map` holds for `key`, or `hash`'s, then kept there: for hashes a compile's
/// threads share ([`crate::lower::SpreadCache`], the exit nodes' fingerprints). `hash` runs
/// outside the lock, so two threads may both run it for one key (a hash is a function of
/// the key, so either value is the same); a poisoned lock (a panic elsewhere while it was
/// held) only loses the sharing.
pub(crate) fn memo<K: std::hash::Hash + Eq>(
    map: &std::sync::Mutex<Map<K, u64>>,
    key: K,
    hash: impl FnOnce() -> u64,
) -> u64 {
    if let Some(known) = map.lock().ok().and_then(|m| m.get(&key).copied()) {
        return known;
    }
    let hashed = hash();
    if let Ok(mut m) = map.lock() {
        m.insert(key, hashed);
    }
    hashed
}
