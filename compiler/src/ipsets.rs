//! `ipset:` definitions resolved to addresses once per compile, before any rule: exactly, at
//! any depth, or not at all.
//!
//! One depth-first walk with an explicit stack (no recursion on input) visits each set once and
//! memoises it, so a wide DAG of sets costs its size, not its number of paths. A set that
//! reaches itself, or an entry whose addresses cannot be known (an undefined set, host or
//! group; `*`), is an error at that entry: an empty stand-in would widen every `remove` it
//! took part in. Each set is computed with one sweep over its entries' ranges
//! ([`AddrSet::from_steps`]), and every range read or produced is charged to the budget
//! ([`crate::CompileLimits::max_address_ranges`]). A set becomes wire pieces
//! ([`Literal`]) only when something outside `ipsets` names it: a chain of sets each
//! including the next holds O(depth^2) ranges in all, and writing every one of them out
//! (a text and a set per range) took gigabytes within the range budget.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use aclc_policy::model::{Alias, IpSetDef, IpSetOp, Policy};

use crate::addrset::AddrSet;
use crate::error::{Budget, CompileError, CompileErrorKind, CompileLimits};
use crate::nodes::NodeTable;
use crate::resolve::{Literal, Resolver};

/// Every IP set of a policy, resolved: its addresses, and its wire pieces once asked for.
#[derive(Debug, Default)]
pub(crate) struct IpSets {
    by_name: HashMap<String, (AddrSet, OnceLock<Arc<Literal>>)>,
    /// `autogroup:internet`, which tells a piece's `public` flag.
    internet: AddrSet,
}

impl IpSets {
    /// The set named `name` (`ipset:x`), if the policy defines it: its pieces made on the
    /// first look (O(ranges)), shared after.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Literal>> {
        let (set, pieces) = self.by_name.get(name)?;
        Some(pieces.get_or_init(|| Arc::new(Literal::from_set(set.clone(), &self.internet))))
    }

    /// How many sets were made into pieces (for tests).
    #[cfg(test)]
    pub(crate) fn made(&self) -> usize {
        self.by_name
            .values()
            .filter(|(_, p)| p.get().is_some())
            .count()
    }
}

/// `"text"`, escaped.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.escape_debug())
}

/// Resolve every IP set `policy` defines against the node table (whose own `ipsets` are not
/// read). Linear in the sets and entries, plus O(n log n) in the ranges each set combines.
pub(crate) fn resolve(
    policy: &Policy,
    table: &NodeTable,
    limits: &CompileLimits,
) -> Result<IpSets, CompileError> {
    let index = policy.index();
    let resolver = Resolver::compiling(policy, table);
    let mut budget = Budget::new(limits.max_address_ranges, "address ranges in IP sets");
    let mut done: HashMap<&str, Arc<AddrSet>> = HashMap::new();
    // Sets on the walk's current path: meeting one again closes a cycle.
    let mut on_path: HashSet<&str> = HashSet::new();
    for root in &policy.ipsets {
        let root_name = root.name.value.as_str();
        if done.contains_key(root_name) {
            continue;
        }
        // A name defined twice resolves to its first definition, as lookups do.
        let Some(root) = index.ipset(root_name) else {
            continue;
        };
        on_path.insert(root_name);
        // (set, index of the next entry to look at)
        let mut stack: Vec<(&IpSetDef, usize)> = vec![(root, 0)];
        while let Some((def, next)) = stack.last_mut() {
            let def: &IpSetDef = def;
            let name = def.name.value.as_str();
            if let Some(entry) = def.entries.get(*next) {
                *next += 1;
                let Alias::IpSet(other) = &entry.target.alias else {
                    continue;
                };
                if done.contains_key(other.as_str()) {
                    continue;
                }
                if on_path.contains(other.as_str()) {
                    return Err(CompileError::new(
                        CompileErrorKind::RecursiveIpSet,
                        Some(entry.target.span),
                        format!("ipsets[{}]: IP sets cannot be recursive", quote(name)),
                    )
                    .with_help(format!(
                        "{} includes {}, which includes it back",
                        quote(name),
                        quote(other)
                    )));
                }
                let Some(child) = index.ipset(other) else {
                    return Err(unresolved(name, &entry.target.text, entry.target.span));
                };
                on_path.insert(child.name.value.as_str());
                stack.push((child, 0));
                continue;
            }
            // Every set this one includes is done: combine its entries in order.
            stack.pop();
            let mut parts: Vec<(bool, Arc<AddrSet>)> = Vec::with_capacity(def.entries.len());
            for entry in &def.entries {
                let part = match &entry.target.alias {
                    Alias::IpSet(other) => done.get(other.as_str()).cloned(),
                    alias => resolver.entry_addresses(alias).map(Arc::new),
                };
                let Some(part) = part else {
                    return Err(unresolved(name, &entry.target.text, entry.target.span));
                };
                budget.spend(part.range_count(), entry.target.span)?;
                parts.push((entry.op == IpSetOp::Add, part));
            }
            let set = AddrSet::from_steps(parts.iter().map(|(add, set)| (*add, &**set)));
            budget.spend(set.range_count(), def.name.span)?;
            on_path.remove(name);
            done.insert(name, Arc::new(set));
        }
    }
    let internet = resolver.internet().clone();
    let by_name = done
        .into_iter()
        .map(|(name, set)| {
            let set = Arc::try_unwrap(set).unwrap_or_else(|shared| (*shared).clone());
            (name.to_string(), (set, OnceLock::new()))
        })
        .collect();
    Ok(IpSets { by_name, internet })
}

/// An entry of set `name` whose addresses cannot be known.
fn unresolved(name: &str, entry: &str, span: aclc_policy::Span) -> CompileError {
    CompileError::new(
        CompileErrorKind::UnresolvedIpSetEntry,
        Some(span),
        format!(
            "ipsets[{}]: the addresses of {} are unknown",
            quote(name),
            quote(entry)
        ),
    )
    .with_help(
        "an IP set entry must be an address, prefix, range, defined host, defined IP set or \
         autogroup:internet; an unknown one would silently change what the set holds",
    )
}
