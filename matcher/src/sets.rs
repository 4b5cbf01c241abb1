//! Interned sets of rule indices, and the intersection the fast matcher's lookups end with.
//!
//! Every distinct set of rules (the rules whose sources contain some address, the rules open on
//! some port of some destination, the rules listing some protocol) is stored once in one arena
//! of `u32`s and named by its offset there (`SetId`): a header word (length, and a flag for a
//! dense set), then for a dense set the offset of its bitset, then the rule indices in
//! ascending order. A set is dense when at least one rule in 32 is in it; its bitset makes
//! membership one load. Keeping the header beside the indices means reading a set costs one
//! cache line or two, never a separate table.
//!
//! A lookup asks for the lowest rule index common to two or three sets: it walks the smallest
//! set in order and tests each index against the others, so its cost follows the smallest set,
//! not the number of rules.

/// Names an interned set: its offset in the arena.
pub(crate) type SetId = u32;

/// The empty set.
pub(crate) const EMPTY: SetId = 0;

const DENSE: u32 = 1 << 31;

/// The interned sets of one matcher.
#[derive(Debug, Clone)]
pub(crate) struct RuleSets {
    arena: Box<[u32]>,
    words: Box<[u64]>,
    /// Words per bitset.
    width: usize,
    count: usize,
}

/// A set as read from the arena.
#[derive(Debug, Clone, Copy)]
#[must_use]
struct View<'a> {
    elems: &'a [u32],
    /// The bitset, for a dense set.
    bits: Option<&'a [u64]>,
}

impl View<'_> {
    #[inline]
    fn has(&self, rule: u32) -> bool {
        match self.bits {
            Some(bits) => bits
                .get((rule / 64) as usize)
                .is_some_and(|w| w & (1u64 << (rule % 64)) != 0),
            None => self.elems.binary_search(&rule).is_ok(),
        }
    }
}

impl RuleSets {
    #[inline]
    fn view(&self, id: SetId) -> View<'_> {
        read(&self.arena, &self.words, self.width, id)
    }

    /// The rule indices of a set, ascending.
    pub(crate) fn elems(&self, id: SetId) -> &[u32] {
        self.view(id).elems
    }

    /// Whether `rule` is in set `id`.
    #[inline]
    pub(crate) fn contains(&self, id: SetId, rule: u32) -> bool {
        self.view(id).has(rule)
    }

    /// The lowest rule index in both sets.
    #[inline]
    pub(crate) fn first_common2(&self, a: SetId, b: SetId) -> Option<u32> {
        let (a, b) = (self.view(a), self.view(b));
        let (driver, other) = if a.elems.len() <= b.elems.len() {
            (a, b)
        } else {
            (b, a)
        };
        if let (Some(x), Some(y)) = (driver.bits, other.bits) {
            return first_common_bits(x, y, &[]);
        }
        driver.elems.iter().copied().find(|&rule| other.has(rule))
    }

    /// The lowest rule index in all three sets.
    #[inline]
    pub(crate) fn first_common3(&self, a: SetId, b: SetId, c: SetId) -> Option<u32> {
        let (a, b, c) = (self.view(a), self.view(b), self.view(c));
        // Drive with the smallest set; test each of its rules against the other two.
        let (driver, x, y) = if a.elems.len() <= b.elems.len() && a.elems.len() <= c.elems.len() {
            (a, b, c)
        } else if b.elems.len() <= c.elems.len() {
            (b, a, c)
        } else {
            (c, a, b)
        };
        if let (Some(d), Some(xb), Some(yb)) = (driver.bits, x.bits, y.bits) {
            return first_common_bits(d, xb, yb);
        }
        driver
            .elems
            .iter()
            .copied()
            .find(|&rule| x.has(rule) && y.has(rule))
    }

    /// The number of distinct sets.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Heap bytes used.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.arena) + std::mem::size_of_val(&*self.words)
    }
}

#[inline]
fn read<'a>(arena: &'a [u32], words: &'a [u64], width: usize, id: SetId) -> View<'a> {
    let at = id as usize;
    let header = arena.get(at).copied().unwrap_or(0);
    let len = (header & !DENSE) as usize;
    if header & DENSE == 0 {
        View {
            elems: arena.get(at + 1..at + 1 + len).unwrap_or(&[]),
            bits: None,
        }
    } else {
        let bits_at = arena.get(at + 1).copied().unwrap_or(0) as usize;
        View {
            elems: arena.get(at + 2..at + 2 + len).unwrap_or(&[]),
            bits: words.get(bits_at..bits_at + width),
        }
    }
}

/// Dense sets: AND their bitsets word by word, up to the shortest (`z` empty means two sets).
fn first_common_bits(x: &[u64], y: &[u64], z: &[u64]) -> Option<u32> {
    for (w, (a, b)) in x.iter().zip(y).enumerate() {
        let mut word = a & b;
        if !z.is_empty() {
            word &= z.get(w).copied().unwrap_or(0);
        }
        if word != 0 {
            return u32::try_from(w * 64)
                .ok()
                .map(|b| b + word.trailing_zeros());
        }
    }
    None
}

/// A `HashMap` with rustc-hash's Fx hasher: the keys come from the filter the control server
/// sent, which the node trusts anyway, and it hashes the interning keys about 5x faster than
/// the hand-written hasher it replaced (`cargo bench -p aclc-matcher --bench hashers`).
pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

fn hash_of(rules: &[u32]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(rules)
}

/// Interns sets while a matcher is built.
pub(crate) struct SetBuilder {
    rule_count: usize,
    width: usize,
    arena: Vec<u32>,
    words: Vec<u64>,
    count: usize,
    /// Hash of a set's indices -> the first set with that hash; collisions chain through
    /// `next`, keyed by set id. No set is copied out of the arena to serve as a key.
    by_hash: FastMap<u64, SetId>,
    next: FastMap<SetId, SetId>,
}

impl SetBuilder {
    pub(crate) fn new(rule_count: usize) -> Self {
        let mut builder = SetBuilder {
            rule_count,
            width: rule_count.div_ceil(64),
            arena: Vec::new(),
            words: Vec::new(),
            count: 0,
            by_hash: FastMap::default(),
            next: FastMap::default(),
        };
        // INVARIANT: the empty set is EMPTY (offset 0).
        builder.intern(&[]);
        builder
    }

    /// The id of a set given as ascending, distinct rule indices (all below the rule count).
    pub(crate) fn intern(&mut self, rules: &[u32]) -> SetId {
        let hash = hash_of(rules);
        let mut candidate = self.by_hash.get(&hash).copied();
        while let Some(id) = candidate {
            if self.elems(id) == rules {
                return id;
            }
            candidate = self.next.get(&id).copied();
        }
        let id = SetId::try_from(self.arena.len()).unwrap_or(SetId::MAX);
        let len = u32::try_from(rules.len()).unwrap_or(0) & !DENSE;
        let dense = !rules.is_empty() && rules.len() * 32 >= self.rule_count;
        if dense {
            let offset = self.words.len();
            self.words.resize(offset + self.width, 0);
            for &rule in rules {
                if let Some(w) = self.words.get_mut(offset + (rule / 64) as usize) {
                    *w |= 1u64 << (rule % 64);
                }
            }
            self.arena.push(len | DENSE);
            self.arena.push(u32::try_from(offset).unwrap_or(0));
        } else {
            self.arena.push(len);
        }
        self.arena.extend_from_slice(rules);
        if let Some(first) = self.by_hash.insert(hash, id) {
            self.next.insert(id, first);
        }
        self.count += 1;
        id
    }

    /// The rule indices of an interned set.
    pub(crate) fn elems(&self, id: SetId) -> &[u32] {
        read(&self.arena, &self.words, self.width, id).elems
    }

    pub(crate) fn finish(self) -> RuleSets {
        RuleSets {
            arena: self.arena.into_boxed_slice(),
            words: self.words.into_boxed_slice(),
            width: self.width,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn interning() {
        let mut b = SetBuilder::new(10);
        let a = b.intern(&[1, 3]);
        assert_eq!(b.intern(&[1, 3]), a);
        let c = b.intern(&[1, 2, 3]);
        assert_ne!(a, c);
        assert_eq!(b.elems(c), &[1, 2, 3]);
        assert_eq!(b.intern(&[]), EMPTY);
        // Dense: 1 rule in 10.
        assert_eq!(b.elems(a), &[1, 3]);
        let sets = b.finish();
        assert!(sets.contains(c, 2) && !sets.contains(a, 2));
        assert_eq!(sets.count(), 3);
    }

    proptest! {
        #[test]
        fn first_common_is_the_minimum_of_the_intersection(
            rule_count in 1usize..300,
            sets in proptest::collection::vec(proptest::collection::btree_set(0u32..300, 0..120), 3),
        ) {
            let sets: Vec<Vec<u32>> = sets.into_iter()
                .map(|s| s.into_iter().filter(|&r| (r as usize) < rule_count).collect())
                .collect();
            let mut b = SetBuilder::new(rule_count);
            let ids: Vec<SetId> = sets.iter().map(|s| b.intern(s)).collect();
            for (id, set) in ids.iter().zip(&sets) {
                prop_assert_eq!(b.elems(*id), &set[..]);
            }
            let rs = b.finish();
            let expect3 = sets[0].iter().copied().find(|r| sets[1].contains(r) && sets[2].contains(r));
            prop_assert_eq!(rs.first_common3(ids[0], ids[1], ids[2]), expect3);
            prop_assert_eq!(rs.first_common3(ids[2], ids[0], ids[1]), expect3);
            prop_assert_eq!(rs.first_common3(ids[1], ids[2], ids[0]), expect3);
            let expect2 = sets[0].iter().copied().find(|r| sets[1].contains(r));
            prop_assert_eq!(rs.first_common2(ids[0], ids[1]), expect2);
            prop_assert_eq!(rs.first_common2(ids[1], ids[0]), expect2);
            for r in 0..rule_count as u32 {
                prop_assert_eq!(rs.contains(ids[0], r), sets[0].contains(&r));
            }
        }
    }
}
