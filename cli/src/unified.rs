//! A line-based unified diff, for `aclc fmt --diff`: small enough to own, so the CLI takes no
//! diff crate for one output format.
//!
//! Lines are compared with Myers' O(ND) algorithm in its linear-space form (find the middle
//! snake, recurse on both sides). A search that passes a cost limit proportional to the
//! inverse of the input size gives up on that stretch and reports it as replaced, so time
//! stays near linear on huge, thoroughly different files; the diff is still correct, only not
//! minimal there.

use std::collections::HashMap;
use std::fmt::Write;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Roughly how many steps one middle-snake search may take (times the input's line count).
const WORK_BUDGET: usize = 50_000_000;

/// Searches may always go this many edits deep, however large the input.
const MIN_COST_LIMIT: usize = 512;

/// The unified diff turning `old` into `new`, headed `--- old_name` / `+++ new_name`; empty if
/// they are equal.
pub(crate) fn unified(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let (deleted, inserted) = changes(&old_lines, &new_lines);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    for hunk in hunks(&deleted, &inserted) {
        write_hunk(&mut out, &hunk, &old_lines, &new_lines, &deleted, &inserted);
    }
    out
}

/// Which old lines are deleted and which new lines inserted.
fn changes(old: &[&str], new: &[&str]) -> (Vec<bool>, Vec<bool>) {
    let limit = (WORK_BUDGET / (old.len() + new.len()).max(1)).max(MIN_COST_LIMIT);
    changes_within(old, new, limit)
}

/// [`changes`], giving up on any stretch that needs more than `cost_limit` search rounds.
fn changes_within<'t>(
    old: &[&'t str],
    new: &[&'t str],
    cost_limit: usize,
) -> (Vec<bool>, Vec<bool>) {
    // Lines become numbers, so comparing two is one integer comparison.
    let mut ids: HashMap<&'t str, u32> = HashMap::new();
    let mut intern = |line: &'t str| -> u32 {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(line).or_insert(next)
    };
    let a: Vec<u32> = old.iter().map(|l| intern(l)).collect();
    let b: Vec<u32> = new.iter().map(|l| intern(l)).collect();
    let mut myers = Myers {
        a: &a,
        b: &b,
        deleted: vec![false; a.len()],
        inserted: vec![false; b.len()],
        forward: Vec::new(),
        backward: Vec::new(),
        cost_limit,
    };
    myers.compare(0, a.len(), 0, b.len());
    (myers.deleted, myers.inserted)
}

struct Myers<'a> {
    a: &'a [u32],
    b: &'a [u32],
    deleted: Vec<bool>,
    inserted: Vec<bool>,
    /// Furthest x reached on each diagonal, forward and backward (scratch space of
    /// [`Myers::split`]).
    forward: Vec<isize>,
    backward: Vec<isize>,
    cost_limit: usize,
}

/// Where a stretch splits in two along a shortest edit path, or that the search gave up.
enum Split {
    At { x: usize, y: usize },
    TooCostly,
}

impl Myers<'_> {
    fn same(&self, x: usize, y: usize) -> bool {
        matches!((self.a.get(x), self.b.get(y)), (Some(p), Some(q)) if p == q)
    }

    /// Marks the changes between `a[a0..a1]` and `b[b0..b1]`.
    fn compare(&mut self, mut a0: usize, mut a1: usize, mut b0: usize, mut b1: usize) {
        while a0 < a1 && b0 < b1 && self.same(a0, b0) {
            a0 += 1;
            b0 += 1;
        }
        while a0 < a1 && b0 < b1 && self.same(a1 - 1, b1 - 1) {
            a1 -= 1;
            b1 -= 1;
        }
        if a0 == a1 || b0 == b1 {
            self.mark(a0, a1, b0, b1);
            return;
        }
        match self.split(a0, a1, b0, b1) {
            Split::At { x, y } => {
                self.compare(a0, x, b0, y);
                self.compare(x, a1, y, b1);
            }
            Split::TooCostly => self.mark(a0, a1, b0, b1),
        }
    }

    /// Marks all of `a[a0..a1]` deleted and `b[b0..b1]` inserted.
    fn mark(&mut self, a0: usize, a1: usize, b0: usize, b1: usize) {
        for d in self.deleted.get_mut(a0..a1).unwrap_or_default() {
            *d = true;
        }
        for i in self.inserted.get_mut(b0..b1).unwrap_or_default() {
            *i = true;
        }
    }

    /// A point on a shortest edit path between `a[a0..a1]` and `b[b0..b1]` (both non-empty,
    /// first and last lines different) where the forward and backward searches meet, in
    /// absolute positions. The searches run from both ends at once; paths leaving the grid
    /// narrow the range of diagonals searched.
    fn split(&mut self, a0: usize, a1: usize, b0: usize, b1: usize) -> Split {
        let (n, m) = ((a1 - a0) as isize, (b1 - b0) as isize);
        let max_d = (n + m + 1) / 2;
        let offset = max_d;
        let len = 2 * max_d + 2;
        // x reached on each diagonal k (stored at offset + k); -1: not reached. The backward
        // search runs on the reversed sequences.
        self.forward.clear();
        self.forward.resize(len as usize, -1);
        self.backward.clear();
        self.backward.resize(len as usize, -1);
        set(&mut self.forward, offset + 1, 0);
        set(&mut self.backward, offset + 1, 0);
        let delta = n - m;
        // With an odd delta the paths meet on a forward step, otherwise on a backward one.
        let front = delta % 2 != 0;
        let (mut k1_start, mut k1_end, mut k2_start, mut k2_end) = (0, 0, 0, 0);
        let rounds = max_d.min(self.cost_limit as isize);
        for d in 0..rounds {
            let mut k1 = -d + k1_start;
            while k1 <= d - k1_end {
                let i = offset + k1;
                let mut x1 = if k1 == -d
                    || (k1 != d && get(&self.forward, i - 1) < get(&self.forward, i + 1))
                {
                    get(&self.forward, i + 1)
                } else {
                    get(&self.forward, i - 1) + 1
                };
                let mut y1 = x1 - k1;
                while x1 < n && y1 < m && self.same(a0 + x1 as usize, b0 + y1 as usize) {
                    x1 += 1;
                    y1 += 1;
                }
                set(&mut self.forward, i, x1);
                if x1 > n {
                    k1_end += 2;
                } else if y1 > m {
                    k1_start += 2;
                } else if front {
                    let j = offset + delta - k1;
                    let x2 = get(&self.backward, j);
                    if x2 != -1 && x1 >= n - x2 {
                        return split_at(a0, b0, x1, y1);
                    }
                }
                k1 += 2;
            }
            let mut k2 = -d + k2_start;
            while k2 <= d - k2_end {
                let i = offset + k2;
                let mut x2 = if k2 == -d
                    || (k2 != d && get(&self.backward, i - 1) < get(&self.backward, i + 1))
                {
                    get(&self.backward, i + 1)
                } else {
                    get(&self.backward, i - 1) + 1
                };
                let mut y2 = x2 - k2;
                while x2 < n
                    && y2 < m
                    && self.same(a0 + (n - x2 - 1) as usize, b0 + (m - y2 - 1) as usize)
                {
                    x2 += 1;
                    y2 += 1;
                }
                set(&mut self.backward, i, x2);
                if x2 > n {
                    k2_end += 2;
                } else if y2 > m {
                    k2_start += 2;
                } else if !front {
                    let j = offset + delta - k2;
                    let x1 = get(&self.forward, j);
                    if x1 != -1 {
                        let y1 = offset + x1 - j;
                        if x1 >= n - x2 {
                            return split_at(a0, b0, x1, y1);
                        }
                    }
                }
                k2 += 2;
            }
        }
        if rounds < max_d {
            Split::TooCostly
        } else {
            // The searches never met: nothing in common.
            Split::At { x: a1, y: b0 }
        }
    }
}

fn get(v: &[isize], i: isize) -> isize {
    usize::try_from(i)
        .ok()
        .and_then(|i| v.get(i).copied())
        .unwrap_or(-1)
}

fn set(v: &mut [isize], i: isize, value: isize) {
    if let Some(slot) = usize::try_from(i).ok().and_then(|i| v.get_mut(i)) {
        *slot = value;
    }
}

fn split_at(a0: usize, b0: usize, x: isize, y: isize) -> Split {
    Split::At {
        x: a0 + x as usize,
        y: b0 + y as usize,
    }
}

/// A hunk: old lines `a0..a1` against new lines `b0..b1`.
struct Hunk {
    a0: usize,
    a1: usize,
    b0: usize,
    b1: usize,
}

/// The hunks: each change with up to [`CONTEXT`] unchanged lines around it, changes closer
/// than twice that merged into one hunk.
fn hunks(deleted: &[bool], inserted: &[bool]) -> Vec<Hunk> {
    let mut hunks: Vec<Hunk> = Vec::new();
    let (mut i, mut j) = (0, 0);
    let flag = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
    while i < deleted.len() || j < inserted.len() {
        if !flag(deleted, i) && !flag(inserted, j) {
            i += 1;
            j += 1;
            continue;
        }
        // A change starts at (i, j): find where it ends.
        let (start_i, start_j) = (i, j);
        while flag(deleted, i) {
            i += 1;
        }
        while flag(inserted, j) {
            j += 1;
        }
        let a0 = start_i.saturating_sub(CONTEXT);
        let b0 = start_j.saturating_sub(CONTEXT);
        let a1 = (i + CONTEXT).min(deleted.len());
        let b1 = (j + CONTEXT).min(inserted.len());
        match hunks.last_mut() {
            // Overlapping or touching contexts make one hunk.
            Some(last) if a0 <= last.a1 => {
                last.a1 = a1;
                last.b1 = b1;
            }
            _ => hunks.push(Hunk { a0, a1, b0, b1 }),
        }
    }
    hunks
}

/// `start,count` of a hunk header (`start` alone for one line; the line before for none).
fn range(start: usize, count: usize) -> String {
    match count {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{count}", start + 1),
    }
}

fn write_hunk(
    out: &mut String,
    hunk: &Hunk,
    old: &[&str],
    new: &[&str],
    deleted: &[bool],
    inserted: &[bool],
) {
    let _ = writeln!(
        out,
        "@@ -{} +{} @@",
        range(hunk.a0, hunk.a1 - hunk.a0),
        range(hunk.b0, hunk.b1 - hunk.b0)
    );
    let line = |out: &mut String, mark: char, text: &str| {
        out.push(mark);
        match text.strip_suffix('\n') {
            Some(text) => {
                out.push_str(text);
                out.push('\n');
            }
            None => {
                out.push_str(text);
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    };
    let flag = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
    let (mut i, mut j) = (hunk.a0, hunk.b0);
    while i < hunk.a1 || j < hunk.b1 {
        if i < hunk.a1 && flag(deleted, i) {
            line(out, '-', old.get(i).copied().unwrap_or_default());
            i += 1;
        } else if j < hunk.b1 && flag(inserted, j) {
            line(out, '+', new.get(j).copied().unwrap_or_default());
            j += 1;
        } else {
            line(out, ' ', old.get(i).copied().unwrap_or_default());
            i += 1;
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a unified diff made by [`unified`] to `old`.
    fn apply(old: &str, diff: &str) -> String {
        let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
        let mut out = String::new();
        let mut next = 0;
        let mut lines = diff.split_inclusive('\n').skip(2).peekable();
        while let Some(header) = lines.next() {
            let minus = header.split(' ').nth(1).unwrap().trim_start_matches('-');
            let mut parts = minus.split(',');
            let start: usize = parts.next().unwrap().parse().unwrap();
            let count: usize = parts.next().map_or(1, |c| c.parse().unwrap());
            let start = if count == 0 { start } else { start - 1 };
            for line in &old_lines[next..start] {
                out.push_str(line);
            }
            next = start;
            while let Some(line) = lines.peek().copied() {
                if line.starts_with("@@") {
                    break;
                }
                lines.next();
                let no_newline = lines.peek().is_some_and(|l| l.starts_with('\\'));
                if no_newline {
                    lines.next();
                }
                let text = &line[1..];
                let text = if no_newline {
                    text.strip_suffix('\n').unwrap()
                } else {
                    text
                };
                match line.as_bytes()[0] {
                    b' ' => {
                        out.push_str(text);
                        next += 1;
                    }
                    b'-' => next += 1,
                    b'+' => out.push_str(text),
                    other => panic!("unexpected line kind {other}"),
                }
            }
        }
        for line in &old_lines[next..] {
            out.push_str(line);
        }
        out
    }

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a", "b", "x\ny\n", "x\ny\n"), "");
    }

    #[test]
    fn a_change_in_the_middle_has_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified("p.orig", "p", old, new),
            "--- p.orig\n+++ p\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_make_separate_hunks_and_near_ones_merge() {
        let lines = |changed: [usize; 2]| -> String {
            (1..=30)
                .map(|i| {
                    if changed.contains(&i) {
                        format!("changed {i}\n")
                    } else {
                        format!("{i}\n")
                    }
                })
                .collect()
        };
        let old = lines([0, 0]);
        let new = lines([2, 20]);
        let diff = unified("a", "b", &old, &new);
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert_eq!(apply(&old, &diff), new);
        let new = lines([5, 11]);
        let diff = unified("a", "b", &old, &new);
        assert_eq!(diff.matches("@@ -").count(), 1, "{diff}");
        assert_eq!(apply(&old, &diff), new);
    }

    #[test]
    fn a_missing_final_newline_is_marked() {
        let diff = unified("a", "b", "{}", "{}\n");
        assert_eq!(
            diff,
            "--- a\n+++ b\n@@ -1 +1 @@\n-{}\n\\ No newline at end of file\n+{}\n"
        );
        assert_eq!(apply("{}", &diff), "{}\n");
    }

    #[test]
    fn insertions_into_an_empty_text() {
        let diff = unified("a", "b", "", "x\ny\n");
        assert_eq!(diff, "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n");
    }

    #[test]
    fn diffs_apply_back_and_are_minimal_on_small_inputs() {
        // A small deterministic generator: texts over a 3-line alphabet.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let mut text = |len: u64| -> String {
                let n = next() % len;
                (0..n)
                    .map(|_| ["a\n", "b\n", "c\n"][(next() % 3) as usize])
                    .collect()
            };
            let (old, new) = (text(12), text(12));
            let diff = unified("a", "b", &old, &new);
            assert_eq!(apply(&old, &diff), new, "{old:?} -> {new:?}:\n{diff}");
            // The edit count equals n + m - 2 * LCS.
            let a: Vec<&str> = old.split_inclusive('\n').collect();
            let b: Vec<&str> = new.split_inclusive('\n').collect();
            let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for i in (0..a.len()).rev() {
                for j in (0..b.len()).rev() {
                    lcs[i][j] = if a[i] == b[j] {
                        lcs[i + 1][j + 1] + 1
                    } else {
                        lcs[i + 1][j].max(lcs[i][j + 1])
                    };
                }
            }
            let (deleted, inserted) = changes(&a, &b);
            let edits = deleted.iter().chain(&inserted).filter(|&&c| c).count();
            assert_eq!(
                edits,
                a.len() + b.len() - 2 * lcs[0][0],
                "{old:?} -> {new:?}"
            );
        }
    }

    #[test]
    fn a_costly_stretch_is_replaced_whole_and_still_applies() {
        let old: String = (0..3000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..3000)
            .map(|i| {
                if i % 2 == 0 {
                    format!("old {i}\n")
                } else {
                    format!("new {i}\n")
                }
            })
            .collect();
        let a: Vec<&str> = old.split_inclusive('\n').collect();
        let b: Vec<&str> = new.split_inclusive('\n').collect();
        let diff = unified("a", "b", &old, &new);
        assert_eq!(apply(&old, &diff), new);
        // Small enough for an exact answer: every other line replaced.
        let (deleted, inserted) = changes(&a, &b);
        assert_eq!(deleted.iter().filter(|&&d| d).count(), 1500);
        assert_eq!(inserted.iter().filter(|&&d| d).count(), 1500);
        // With a tight limit, the stretch between the first and last change is replaced whole:
        // not minimal, still a correct diff.
        let (deleted, inserted) = changes_within(&a, &b, 8);
        // (Lines 1 to 2999: line 0 is kept, line 2999 is changed.)
        assert_eq!(deleted.iter().filter(|&&d| d).count(), 2999);
        assert_eq!(inserted.iter().filter(|&&d| d).count(), 2999);
        assert!(!deleted[0] && deleted[1] && !inserted[0] && inserted[2999]);
    }
}
