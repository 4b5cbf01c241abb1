//! The nodes whose packet filter a node event can reorder or merge differently when it
//! changes how the rules merge (a rule's items appear or vanish because its only source
//! device joined or left, or two items' sources become equal or different): the engine's
//! narrowed path assembles those nodes' filters beside the dependents it decides, instead of
//! assembling every node's (12 s on `large`).
//!
//! The two lowerings are of the same policy on node tables that differ in a few nodes, so
//! their items are paired rule by rule (a rule's items are all kept or all left out, and
//! each knows its rule). A node reached by no flagged item, and not a dependent of a changed
//! node, receives the same items in the same order, their sources the same lists, merged
//! into the same slots: its filter is the one it had.

// Looked up once per run of items (thousands per event): the fast hash.
use crate::hash::Map as HashMap;

use super::Lowered;
use crate::bits::set_bit;
use crate::nodes::NodeTable;

/// Each old item's partner in `new`: the items of a rule pair in order when the rule has as
/// many in both (its runs of items paired in the order they come); `None` otherwise.
pub(crate) fn pair_by_rule(old: &Lowered, new: &Lowered) -> Vec<Option<u32>> {
    // Runs of items of one rule, by rule, in order.
    let runs = |l: &Lowered| {
        let mut runs: HashMap<u32, Vec<(usize, usize)>> = HashMap::default();
        let mut start = 0;
        while let Some(first) = l.items.get(start) {
            let len = l
                .items
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|i| i.origin == first.origin)
                .count();
            runs.entry(first.origin).or_default().push((start, len));
            start += len.max(1);
        }
        runs
    };
    let (old_runs, new_runs) = (runs(old), runs(new));
    let mut pair = vec![None; old.items.len()];
    for (origin, runs) in &old_runs {
        let Some(partners) = new_runs.get(origin) else {
            continue;
        };
        for (&(a, n), &(b, m)) in runs.iter().zip(partners) {
            if n != m {
                continue;
            }
            for k in 0..n {
                if let Some(slot) = pair.get_mut(a + k) {
                    *slot = Some(crate::nodes::index(b + k));
                }
            }
        }
    }
    pair
}

/// The nodes (one bit each, ids of `new_table`) whose filters the regrouping can change,
/// beyond the changed nodes' dependents: those reached by an item with no partner, or whose
/// merge slot or first slot is not its partner's (through the pairing), or of another kind;
/// with `autogroup:self` items, the devices of the user whose devices an item's sources
/// were or are (a self rule merges into the first item with exactly those sources); and for
/// `via` items, the nodes carrying their tags. `to_new` maps `old_table`'s ids; `pair` is
/// [`pair_by_rule`].
pub(crate) fn regrouped(
    (old, old_table): (&Lowered, &NodeTable),
    (new, new_table): (&Lowered, &NodeTable),
    to_new: &[u32],
    pair: &[Option<u32>],
) -> Vec<u64> {
    let partner = |s: u32| match s {
        u32::MAX => Some(u32::MAX),
        s => pair.get(s as usize).copied().flatten(),
    };
    let mut flag_old = Vec::with_capacity(old.items.len());
    let mut flag_new = vec![true; new.items.len()];
    // Items whose sources moved (the self-claim owners of their lists, before and after).
    let mut moved_old = Vec::with_capacity(old.items.len());
    let mut moved_new = vec![false; new.items.len()];
    for (i, a) in old.items.iter().enumerate() {
        let paired = pair
            .get(i)
            .copied()
            .flatten()
            .and_then(|j| Some((j, new.items.get(j as usize)?)));
        let Some((j, b)) = paired else {
            flag_old.push(true);
            moved_old.push(false);
            continue;
        };
        let same = partner(a.slot) == Some(b.slot)
            && partner(old.global_slot(a)) == Some(new.global_slot(b))
            && std::mem::discriminant(&a.body) == std::mem::discriminant(&b.body)
            && a.via == b.via;
        let moved = !super::same_strings(old.srcs.slice(a.src), new.srcs.slice(b.src));
        flag_old.push(!same);
        moved_old.push(moved);
        if let Some(f) = flag_new.get_mut(j as usize) {
            *f = !same;
        }
        if let Some(m) = moved_new.get_mut(j as usize) {
            *m = moved;
        }
    }
    // The nodes the flagged items reach and claim, and with self items the claims of the
    // items whose sources moved, in one lowering's ids.
    let marked = |l: &Lowered, table: &NodeTable, flags: &[bool], moved: &[bool]| {
        let mut bits = vec![0u64; table.len().div_ceil(64)];
        l.mark_reached(table, flags, &mut bits);
        let selves = l.has_self_items();
        let claims: Vec<bool> = flags
            .iter()
            .zip(moved)
            .map(|(&f, &m)| f || (selves && m))
            .collect();
        l.mark_claims(table, &claims, &mut bits);
        bits
    };
    let mut bits = marked(new, new_table, &flag_new, &moved_new);
    for v in crate::bits::iter_bits(&marked(old, old_table, &flag_old, &moved_old)) {
        if let Some(w) = crate::nodes::translated(to_new, v) {
            set_bit(&mut bits, w);
        }
    }
    bits
}
