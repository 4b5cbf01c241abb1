//! What an engine event's lowering takes from the previous one: source lists whose targets
//! are equal, shared; lists naming a changed node, patched by the few strings that moved.

use super::*;
use crate::Text;

/// [`Prior`], with what `*` means compared.
pub(super) struct Reuse<'a> {
    pub(super) prior: &'a Prior<'a>,
    /// The same policy (`same_ids` false) with its requests recorded: the earlier
    /// lowering's request at each place is this one's ([`Lowered::calls`]).
    pub(super) by_place: bool,
    /// `*` means what it meant (it lists every subnet route).
    pub(super) star_same: bool,
}

impl Reuse<'_> {
    /// The earlier lowering's `SrcIPs` for the source list `key`, now resolved to `targets`,
    /// when the list is the same: no changed node in it before or after, the same kinds of
    /// target, and the same addresses written in the policy. Unchanged nodes are in the same
    /// lists (the policy is the same, and membership is a property of the node and its
    /// owner, both unchanged), and have the same addresses.
    pub(super) fn same(&self, earlier: &Sources, targets: &[Target]) -> Option<(u32, usize)> {
        let p = self.prior;
        let (old_targets, id, spent) = earlier;
        if old_targets.len() != targets.len() {
            return None;
        }
        let names = |t: &Target, changed: &[NodeId]| match t {
            Target::Nodes(ids) => crate::nodes::holds_any(ids, changed),
            _ => false,
        };
        for (old, new) in old_targets.iter().zip(targets) {
            let alike = match (old, new) {
                (Target::Nodes(x), Target::Nodes(y)) if p.same_ids => x == y,
                (Target::Nodes(x), Target::Nodes(y)) => x.len() == y.len(),
                (Target::Literal(x), Target::Literal(y)) => x == y,
                (Target::Wildcard, Target::Wildcard) => self.star_same,
                _ => std::mem::discriminant(old) == std::mem::discriminant(new),
            };
            if !alike || names(old, p.before) || names(new, p.after) {
                return None;
            }
        }
        Some((*id, *spent))
    }

    /// The `SrcIPs` of the source list `key`, now resolved to `targets`, from the earlier
    /// lowering's list when only the changed nodes moved in or out of it (a node event,
    /// `kept` known): the earlier list without the texts of the changed nodes it held, with
    /// those of the changed nodes it holds now; its hash and work from the earlier ones.
    /// O(list + changed x log list), where building it sorted every node's texts again (30
    /// ms of a member's join on `large`, in the half dozen lists of 25,000 devices that
    /// hold the member). Only lists of nodes alone (and `autogroup:internet`, `autogroup:self`,
    /// which put nothing in `SrcIPs`): a literal address or `*` may name a changed node's
    /// address as well, and must keep it when the node leaves. Unchanged nodes are in the
    /// same lists, as [`Reuse::same`] says; each target's count is checked against it.
    /// `None` when the list cannot be patched: it is built.
    pub(super) fn patched(
        &self,
        earlier: &Sources,
        targets: &[Target],
        table: &NodeTable,
    ) -> Option<(Made, u64, usize)> {
        let p = self.prior;
        p.kept?;
        let (old_targets, id, spent) = earlier;
        if old_targets.len() != targets.len() {
            return None;
        }
        let (mut gone, mut came): (Vec<&Text>, Vec<&Text>) = (Vec::new(), Vec::new());
        let (mut taken, mut added) = (0usize, 0usize);
        for (old, new) in old_targets.iter().zip(targets) {
            match (old, new) {
                (Target::Nodes(x), Target::Nodes(y)) => {
                    let (was, out) = held_texts(p.table, p.before, x, &mut gone)?;
                    let (is, into) = held_texts(table, p.after, y, &mut came)?;
                    if x.len() - was != y.len() - is {
                        return None;
                    }
                    taken += out;
                    added += into;
                }
                (Target::Internet, Target::Internet)
                | (Target::SelfDevices, Target::SelfDevices) => {}
                _ => return None,
            }
        }
        let spent = spent.checked_sub(taken)?.checked_add(added)?;
        let (list, mut hash) = p.lowered.srcs.list(*id)?;
        // Where the texts go and come, by binary search (strings compared O(changed x log
        // list) times, not once per text listed); then the runs between copied.
        let find = |t: &Text| list.binary_search_by(|x| (**x).cmp(&**t));
        let mut cuts: Vec<(usize, Option<&Text>)> = Vec::new();
        gone.sort_unstable();
        gone.dedup();
        for text in gone {
            if let Ok(at) = find(text) {
                hash = hash.wrapping_sub(SrcTable::string_hash(text));
                cuts.push((at, None));
            }
        }
        // The removed places, ascending (the texts were): looked up by binary search below,
        // so a batch of many changed nodes costs O(changed x log changed) here.
        let removed: Vec<usize> = cuts.iter().map(|&(at, _)| at).collect();
        came.sort_unstable();
        came.dedup();
        // Texts put back where they were taken out (a node retagged, or whose routes
        // changed, staying in the list): when every cut is such a pair, the list is the
        // earlier one, shared, not copied (a retag copied every list holding the node).
        let mut put_back = 0usize;
        for text in came {
            match find(text) {
                Err(at) => cuts.push((at, Some(text))),
                // Node addresses are unique: a text listed now is this changed node's
                // (taken out above, put back here), or the list is not what it seems.
                Ok(at) if removed.binary_search(&at).is_ok() => {
                    put_back += 1;
                    cuts.push((at, Some(text)));
                }
                Ok(_) => return None,
            }
            hash = hash.wrapping_add(SrcTable::string_hash(text));
        }
        if put_back == removed.len() && cuts.len() == 2 * put_back {
            return Some((Made::Shared(list.clone()), hash, spent));
        }
        // At one place, the new text before the removed one (both sort there).
        cuts.sort_unstable_by_key(|&(at, text)| (at, text.is_none()));
        // The runs of the earlier list kept between the cuts, and what each cut puts in.
        let mut runs: Vec<(usize, usize)> = Vec::with_capacity(cuts.len() + 1);
        let mut texts: Vec<Option<&Text>> = Vec::with_capacity(cuts.len());
        let mut from = 0;
        for &(at, text) in &cuts {
            // Cuts ascend within the list (checked: a run out of order or out of range
            // would drop strings unseen).
            if at < from || at > list.len() {
                return None;
            }
            runs.push((from, at));
            texts.push(text);
            from = if text.is_some() { at } else { at + 1 };
        }
        runs.push((from, list.len()));
        let run = |k: usize| {
            let (a, b) = runs.get(k).copied().unwrap_or((0, 0));
            list.get(a..b).unwrap_or_default().iter().cloned()
        };
        let text = |k: usize| texts.get(k).copied().flatten().cloned();
        // Up to four cuts (a node's two addresses joining or leaving, or moving within the
        // list): the list made in place from slices of the earlier one, whose exact length
        // the standard library sees, not gathered in a vector and copied (the copy was 4% of
        // a retag's samples on `large`). Cuts past the last are empty.
        if cuts.len() <= 4 {
            let out: Strings = run(0)
                .chain(text(0))
                .chain(run(1))
                .chain(text(1))
                .chain(run(2))
                .chain(text(2))
                .chain(run(3))
                .chain(text(3))
                .chain(run(4))
                .collect();
            return Some((Made::Shared(out), hash, spent));
        }
        let mut out: Vec<Text> = Vec::with_capacity(list.len() + cuts.len());
        for k in 0..cuts.len() {
            out.extend(run(k));
            out.extend(text(k));
        }
        out.extend(run(cuts.len()));
        Some((Made::Gathered(out), hash, spent))
    }
}

/// A patched source list ([`Reuse::patched`]): made in place, or gathered in a vector.
pub(super) enum Made {
    Shared(Strings),
    Gathered(Vec<Text>),
}

impl Made {
    #[cfg(debug_assertions)]
    pub(super) fn strings(&self) -> &[Text] {
        match self {
            Made::Shared(s) => s,
            Made::Gathered(s) => s,
        }
    }
}

/// The address texts of the nodes of `changed` that `list` (sorted) holds, put in `into`: how
/// many nodes those are, and how many texts ([`Reuse::patched`], before and after a change).
pub(super) fn held_texts<'t>(
    table: &'t NodeTable,
    changed: &[NodeId],
    list: &[NodeId],
    into: &mut Vec<&'t Text>,
) -> Option<(usize, usize)> {
    let (mut nodes, mut texts) = (0, 0);
    for &id in changed.iter().filter(|id| list.binary_search(id).is_ok()) {
        let own = &table.get(id)?.texts;
        nodes += 1;
        texts += own.len();
        into.extend(own.iter());
    }
    Some((nodes, texts))
}
