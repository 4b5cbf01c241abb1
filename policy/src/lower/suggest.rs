//! "Did you mean": the known name closest to a misspelt one, for keys, groups, tags, hosts,
//! logins and autogroups. A validation may ask for thousands of suggestions among thousands
//! of names (every undefined tag of a generated policy, every unknown login against a
//! tailnet's users), so the names are prepared once ([`Names`]), a key asked again is not
//! searched again, and the search work of one validation is bounded ([`Budget`]): past it,
//! only a name differing in case is suggested. Suggestions are help text; a name left
//! unsuggested changes no verdict.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Distance-table cells (and names looked at) one validation may spend on its suggestions,
/// each a few nanoseconds: tens of milliseconds in all. Asking 18,000 undefined tags among
/// 2,000 defined ones took 17.7 s before there was a bound, and 5,000 unknown users among a
/// tailnet's 25,000 logins over two minutes.
pub(crate) const VALIDATION_CELLS: u64 = 1 << 24;

/// Search work left to spend on suggestions. Shared by the lookups of one validation (a
/// `Cell`: lookups are made from methods that only read the validator).
#[derive(Debug)]
pub(crate) struct Budget(Cell<u64>);

impl Budget {
    /// A budget of `cells` distance-table cells.
    pub(crate) fn new(cells: u64) -> Budget {
        Budget(Cell::new(cells))
    }

    /// Spend `cells`: false (and nothing spent) when fewer are left.
    fn spend(&self, cells: u64) -> bool {
        match self.0.get().checked_sub(cells) {
            Some(rest) => {
                self.0.set(rest);
                true
            }
            None => false,
        }
    }

    /// True when `cells` are left.
    fn covers(&self, cells: u64) -> bool {
        self.0.get() >= cells
    }

    #[cfg(test)]
    fn left(&self) -> u64 {
        self.0.get()
    }
}

/// Known names prepared for lookups: each lowered once, the first of each lowered form found
/// by hashing.
#[derive(Debug, Default)]
pub(crate) struct Names<'k> {
    exact: HashMap<String, &'k str>,
    /// Lookups made, by lowered key (a generated policy names one undefined tag thousands
    /// of times).
    asked: RefCell<HashMap<String, Option<&'k str>>>,
    /// Each name lowered, as characters, with the name, in the order given.
    entries: Vec<(Vec<char>, &'k str)>,
}

impl<'k> Names<'k> {
    /// The names, in order (the first of several equally close names is suggested).
    pub(crate) fn new(known: impl IntoIterator<Item = &'k str>) -> Names<'k> {
        let mut names = Names::default();
        for name in known {
            let lower = name.to_lowercase();
            names.entries.push((lower.chars().collect(), name));
            names.exact.entry(lower).or_insert(name);
        }
        names
    }

    /// The known name closest to `key`, if one is close enough to be a likely typo: one
    /// equal but for case first, else the nearest within a third of the key's length (at
    /// least 2 edits), found while `budget` lasts (each name looked at is charged a cell,
    /// and each distance the cells it computed).
    pub(crate) fn closest(&self, key: &str, budget: &Budget) -> Option<&'k str> {
        let lower = key.to_lowercase();
        if let Some(name) = self.exact.get(&lower) {
            return Some(name);
        }
        if let Some(found) = self.asked.borrow().get(&lower) {
            return *found;
        }
        let found = self.nearest(&lower, budget);
        self.asked.borrow_mut().insert(lower, found);
        found
    }

    /// The nearest name to `lower` within its limit, the search charged to `budget`. A
    /// search the budget cuts short suggests nothing (the nearest name may be unseen).
    fn nearest(&self, lower: &str, budget: &Budget) -> Option<&'k str> {
        let key: Vec<char> = lower.chars().collect();
        let limit = (key.len() / 3).max(2);
        let mut best: Option<(usize, &'k str)> = None;
        let mut rows = Rows::default();
        for (chars, name) in &self.entries {
            if !budget.spend(1) {
                return None;
            }
            // Only a nearer name than the best so far is taken; the distance is at least
            // the difference in length.
            let bound = best.map_or(limit, |(d, _)| d.saturating_sub(1));
            if key.len().abs_diff(chars.len()) > bound {
                continue;
            }
            // Begun only when the budget covers the whole band; the rows set up and the cells
            // computed are charged after (most distances stop after a row or two).
            let band = 2 * bound as u64 + 1;
            let most = (key.len() as u64).saturating_mul(band);
            if !budget.covers(most.saturating_add(chars.len() as u64)) {
                return None;
            }
            let (distance, computed) = within(&key, chars, bound, &mut rows);
            budget.spend((computed as u64).saturating_mul(band) + chars.len() as u64);
            if let Some(d) = distance {
                best = Some((d, name));
                if d == 0 {
                    break;
                }
            }
        }
        best.map(|(_, name)| name)
    }
}

/// The known key closest to `key` among a few fixed names (a section's fields, the
/// autogroups), with a budget of its own.
pub(crate) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    Names::new(known.iter().copied()).closest(key, &Budget::new(VALIDATION_CELLS))
}

/// Two rows of a distance table, kept across the distances of one lookup (made afresh for
/// each name, they were most of a lookup's time).
#[derive(Default)]
struct Rows {
    prev: Vec<usize>,
    cur: Vec<usize>,
}

/// The Levenshtein distance between `a` and `b` (in characters) when it is at most `bound`,
/// computed in the band of cells within `bound` of the diagonal (a cell outside it is more
/// than `bound` away), and how many rows of `a` it computed: it stops at the first row whose
/// cells are all past `bound`. O(len(b) + len(a) x bound).
fn within(a: &[char], b: &[char], bound: usize, rows: &mut Rows) -> (Option<usize>, usize) {
    let over = bound + 1;
    let Rows { prev, cur } = rows;
    // prev[j]: the distance between a[..i] and b[..j], capped at `over`.
    prev.clear();
    prev.extend((0..=b.len()).map(|j| j.min(over)));
    cur.clear();
    cur.resize(b.len() + 1, over);
    for (i, ca) in a.iter().enumerate() {
        let row = i + 1;
        let (lo, hi) = (row.saturating_sub(bound), (row + bound).min(b.len()));
        // Only the band is written: the cell left of it (which the first cell reads) is
        // set here, the one right of it (which the next row reads) after, not the whole
        // row (a row of a long name for a band of one cell).
        if let Some(c) = cur.get_mut(lo.saturating_sub(1)) {
            *c = if lo == 0 { row.min(over) } else { over };
        }
        let mut smallest = cur.first().copied().filter(|_| lo == 0).unwrap_or(over);
        for j in lo.max(1)..=hi {
            let cb = b.get(j - 1).copied();
            let substitute =
                prev.get(j - 1).copied().unwrap_or(over) + usize::from(cb != Some(*ca));
            let delete = prev.get(j).copied().unwrap_or(over) + 1;
            let insert = cur.get(j - 1).copied().unwrap_or(over) + 1;
            let d = substitute.min(delete).min(insert).min(over);
            if let Some(c) = cur.get_mut(j) {
                *c = d;
            }
            smallest = smallest.min(d);
        }
        if let Some(c) = cur.get_mut(hi + 1) {
            *c = over;
        }
        if smallest > bound {
            return (None, row);
        }
        std::mem::swap(prev, cur);
    }
    let distance = prev.get(b.len()).copied().filter(|&d| d <= bound);
    (distance, a.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain distance, for comparison.
    fn levenshtein(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let d = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
                cur.push(d);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    #[test]
    fn closest_prefers_case_then_distance() {
        let known = ["acls", "grants", "tagOwners"];
        assert_eq!(closest("ACLS", &known), Some("acls"));
        assert_eq!(closest("acl", &known), Some("acls"));
        assert_eq!(closest("tagowner", &known), Some("tagOwners"));
        assert_eq!(closest("zzzzzzzz", &known), None);
    }

    #[test]
    fn the_first_of_equally_close_names_is_suggested() {
        let known = ["tag:web2", "tag:web1", "tag:web"];
        assert_eq!(closest("tag:web3", &known), Some("tag:web2"));
        assert_eq!(closest("tag:wbe", &known), Some("tag:web2"), "both 2 away");
        assert_eq!(closest("tag:we", &known), Some("tag:web"));
    }

    #[test]
    fn the_banded_distance_is_the_distance_within_its_bound() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "tag:web",
            "tag:wbe",
            "group:eng",
            "grp:eng",
            "kitten",
            "sitting",
            "flaw",
            "lawn",
            "héllo",
            "hello",
            "aaaaaaaa",
            "b",
        ];
        let mut scratch = Rows::default();
        for a in words {
            for b in words {
                let a_chars: Vec<char> = a.chars().collect();
                let b_chars: Vec<char> = b.chars().collect();
                let d = levenshtein(a, b);
                for bound in 0..6 {
                    let expected = (d <= bound).then_some(d);
                    let (got, rows) = within(&a_chars, &b_chars, bound, &mut scratch);
                    assert_eq!(got, expected, "{a:?} {b:?} {bound}");
                    assert!(rows <= a_chars.len(), "{a:?} {b:?} {bound}");
                }
            }
        }
    }

    #[test]
    fn suggestions_stop_when_the_budget_is_spent_but_case_matches_do_not() {
        let known: Vec<String> = (0..1000).map(|i| format!("tag:t{i}")).collect();
        let names = Names::new(known.iter().map(String::as_str));
        let budget = Budget::new(30_000);
        assert_eq!(names.closest("tag:t5x", &budget), Some("tag:t5"));
        let spent = budget.left();
        assert_eq!(
            names.closest("tag:t5x", &budget),
            Some("tag:t5"),
            "asked again"
        );
        assert_eq!(budget.left(), spent, "a lookup asked again spends nothing");
        let mut asked = 0;
        while names.closest(&format!("tag:z{asked}"), &budget).is_some() {
            asked += 1;
            assert!(asked < 1000, "the budget never ran out");
        }
        assert!(asked > 3, "{asked} lookups");
        assert_eq!(names.closest("tag:t6x", &budget), None, "past the budget");
        let left = budget.left();
        assert_eq!(
            names.closest("TAG:T7", &budget),
            Some("tag:t7"),
            "case only"
        );
        assert_eq!(budget.left(), left, "case-only lookups spend nothing");
    }
}
