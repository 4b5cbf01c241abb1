//! A router joining or leaving, applied as two narrow steps (the node without its routes, and
//! its routes), because the engine's narrow paths take one or the other and the event as a
//! whole took the every-node path: 12 s for one router's join on `large`, every node's map
//! fingerprinted.
//!
//! A join is the node joining without routes (the node path), then its routes added (the
//! route path); a leave is its routes taken away, then the node leaving. Readers never see
//! the step between: the snapshot is published after the second step, and the change set is
//! the difference between the snapshot before the first step and the one after the second.
//! A filter either step proved changed without assembling it is changed from the start:
//! both steps of a join only add (the node's addresses to the source lists that name it,
//! then its routes to those that reach them), both of a leave only take away, so no list
//! the first step changed is as it was after the second, and no filter either. The
//! engine's property tests compare every such change set with a full recompile's.

use super::*;

impl Inputs {
    /// The event of `undo` in two steps when it is a router's join or leave and each step
    /// takes a narrow path; `None` (the records as they were) otherwise. On success the
    /// records are the event's, and the snapshot, the filters known changed and the nodes
    /// touched are relative to `current`, as [`Inputs::build`]'s are.
    pub(super) fn build_in_steps(
        &mut self,
        version: u64,
        current: &Snapshot,
        undo: &[Undo],
    ) -> Option<Result<Built, EngineError>> {
        let [Undo::Node(id, before)] = undo else {
            return None;
        };
        let id = *id;
        let after = self.nodes.get(&id).cloned();
        let serves =
            |n: &NodeRecord| !n.advertised_routes.is_empty() || !n.approved_routes.is_empty();
        let stripped = |n: &NodeRecord| NodeRecord {
            advertised_routes: Vec::new(),
            approved_routes: Vec::new(),
            ..n.clone()
        };
        // Each step's record of the node (`None`: absent), and the record before it.
        type Step = (Option<NodeRecord>, Option<NodeRecord>);
        let [first, second]: [Step; 2] = match (before, &after) {
            (None, Some(a)) if serves(a) => [
                (Some(stripped(a)), None),
                (Some(a.clone()), Some(stripped(a))),
            ],
            (Some(b), None) if serves(b) => [
                (Some(stripped(b)), Some(b.clone())),
                (None, Some(stripped(b))),
            ],
            _ => return None,
        };
        let narrow = |s: &Scope<'_>| matches!(s, Scope::Node(_) | Scope::Routes(_));
        self.set_record(id, first.0);
        let scope1 = scope(self, current, &[Undo::Node(id, first.1)]);
        if !narrow(&scope1) {
            self.set_record(id, after);
            return None;
        }
        let built = self.build(version, scope1);
        self.set_record(id, second.0);
        let (middle, f1, t1) = match built {
            Ok(built) => built,
            Err(error) => return Some(Err(error)),
        };
        let scope2 = scope(self, &middle, &[Undo::Node(id, second.1)]);
        if !narrow(&scope2) {
            return Some(self.build(version, Scope::Everything));
        }
        let (last, f2, t2) = match self.build(version, scope2) {
            Ok(built) => built,
            Err(error) => return Some(Err(error)),
        };
        // The first step's marks in the last snapshot's ids.
        let to_new = last.compiled.ids_from(&middle.compiled);
        let n = last.fingerprints.len();
        let moved = |bits: &[u64]| {
            let mut out = vec![0u64; n.div_ceil(64)];
            for v in crate::bits::iter_bits(bits) {
                if let Some(w) = crate::nodes::translated(&to_new, v) {
                    crate::bits::set_bit(&mut out, w);
                }
            }
            out
        };
        let f1 = moved(&f1);
        let t1 = t1.as_deref().map(moved);
        let touched = match (&t1, &t2) {
            (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(x, y)| x | y).collect()),
            _ => None,
        };
        // Marked by either step, and left uncomputed at the end (a filter computed at the end
        // is compared as it is).
        let filters = f1
            .iter()
            .zip(&f2)
            .zip(&last.stale)
            .map(|((a, b), stale)| (a | b) & stale)
            .collect();
        Some(Ok((last, filters, touched)))
    }
}
