//! The SSH rules' labels in nodes' fingerprints: a rule keeps its label across a policy edit
//! that leaves everything a node receives from it as it was, so a node whose rules only moved
//! in the policy's list keeps its fingerprint, and a fingerprint kept from before the edit is
//! the one its rules now hash to.

use std::sync::Arc;

use super::SshLowered;

/// One label per rule of a lowering (distinct, not necessarily in rule order).
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    /// By rule index.
    of: Arc<[u64]>,
    /// Above every label this lowering, or one it continues, has given.
    next: u64,
    /// Numbered afresh (0, 1, ...), not continued from an earlier lowering.
    fresh: bool,
}

impl Labels {
    /// Rules `0..n` labelled `0..n`.
    pub(crate) fn fresh(n: usize) -> Labels {
        Labels {
            of: (0..n as u64).collect(),
            next: n as u64,
            fresh: true,
        }
    }

    /// These labels, for a lowering that has the same rules in place (patched from this
    /// one, or taken whole).
    pub(crate) fn kept(&self) -> Labels {
        Labels {
            fresh: false,
            ..self.clone()
        }
    }

    /// Rule `rule`'s label.
    pub(crate) fn get(&self, rule: usize) -> u64 {
        // Every rule has one; past the end (never) a label no rule has.
        self.of.get(rule).copied().unwrap_or(u64::MAX - rule as u64)
    }
}

impl SshLowered {
    /// The rules' labels.
    pub(crate) fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Label the rules of this lowering, made afresh for a compile that follows `old`'s: of
    /// the same policy, as `old` labels the rule in the same place; of another policy, as
    /// `old` labels the rules it has with the same content, in the same order
    /// ([`SshLowered::changed_rules`]), and between those each changed rule as the changed
    /// rule of `old` in the same place there, if any, else with a label `old` never gave.
    /// A lowering patched from `old` or taken from it has its labels already.
    ///
    /// A node's SSH fingerprint sums its rules' pieces by label: where the labels were the
    /// rules' positions, a rule added above a node's rules changed its fingerprint (the
    /// change set named it though its rules were the same), and a fingerprint kept for a node
    /// no changed rule reaches was no longer what its rules hash to.
    pub(crate) fn continue_labels(&mut self, old: &SshLowered, same_policy: bool) {
        if !self.labels.fresh {
            return;
        }
        // The same rules in place (a node event's lowering made afresh): each keeps its
        // label, whatever its sources now are, as a patched lowering's do (the nodes its
        // change does not reach keep their fingerprints).
        if same_policy && old.rules.len() == self.rules.len() {
            self.labels = old.labels.kept();
            return;
        }
        let mut next = old.labels.next;
        // The rules of equal content, paired in order ([`SshLowered::changed_rules`]; none
        // when their order changed), then the end of both lists.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        if let Some((old_changed, new_changed)) = old.changed_rules(self) {
            let kept = |changed: &[bool]| -> Vec<usize> {
                changed
                    .iter()
                    .enumerate()
                    .filter(|(_, changed)| !**changed)
                    .map(|(i, _)| i)
                    .collect()
            };
            pairs = kept(&old_changed)
                .into_iter()
                .zip(kept(&new_changed))
                .collect();
        }
        pairs.push((old.rules.len(), self.rules.len()));
        // Between two pairs, the changed rules of both sides are paired by position (a rule
        // edited in place keeps its label: a node that receives the same pieces from it keeps
        // its fingerprint); the new side's rest get labels `old` never gave. Pairs never
        // cross, so the labels are in the same relative order on both sides: equal sums of
        // pieces are equal lists of pieces.
        let mut of = Vec::with_capacity(self.rules.len());
        let (mut from_old, mut from_new) = (0, 0);
        for (i, j) in pairs {
            for k in 0..j.saturating_sub(from_new) {
                let label = match from_old + k < i {
                    true => old.labels.get(from_old + k),
                    false => {
                        next += 1;
                        next - 1
                    }
                };
                of.push(label);
            }
            if j < self.rules.len() {
                of.push(old.labels.get(i));
            }
            (from_old, from_new) = (i + 1, j + 1);
        }
        self.labels = Labels {
            of: of.into(),
            next,
            fresh: false,
        };
    }
}
