//! Routers with equal packet filters share one comparison: exit nodes given the same rules
//! are swept once, not once each.
//!
//! A node's network and application changes ([`diff_node`], [`diff_apps`]) are a function
//! of its two filters, the routes it serves and its own addresses, and the own addresses
//! count only where a destination range holds one (a destination on the node itself, or a
//! route piece cut around it). So the comparison is kept per (old filter, new filter,
//! routes), found again by content, and reused for every node whose own addresses no
//! destination range holds. 150 exit nodes reached through one rule to an IP set of 20,000
//! addresses swept each node's 160,000 entries again (0.17 s a node); now once per thread,
//! and each further node costs hashing and comparing its filters.
//!
//! Only nodes serving routes are kept (another node's filter names its own addresses, so
//! no two share a comparison), and no more than [`KEPT_ENTRIES`] filter entries in all.

use super::*;

/// A node's network changes and application capability changes, shared.
pub(crate) type Compared = Rc<(Vec<Atom>, Vec<AppAtom>)>;

/// The most `DstPorts` entries the kept filters hold together (past it, further comparisons
/// are computed but not kept).
pub(crate) const KEPT_ENTRIES: usize = 4_000_000;

/// One comparison kept: its inputs, and its result for the nodes it holds for.
struct Kept {
    old: Vec<FilterRule>,
    new: Vec<FilterRule>,
    zones: Vec<ipnet::IpNet>,
    /// Every destination range of both filters (network and capability grants), merged:
    /// a node with an own address in one is compared on its own.
    ranges: Vec<(Addr, Addr)>,
    /// The result for a node with no own address in `ranges`, once one was compared.
    done: Option<Compared>,
}

/// The comparisons kept by one thread, by a hash of their inputs.
#[derive(Default)]
pub(crate) struct SharedComparisons {
    kept: HashMap<u64, Vec<Kept>>,
    entries: usize,
    /// Comparisons computed (not found kept): the work the scan did.
    pub(crate) computed: usize,
}

impl SharedComparisons {
    /// What changed on the node whose filter was `old` and is `new`: [`diff_node`] and
    /// [`diff_apps`], or their result for an earlier node with the same filters and routes
    /// when no destination range holds one of this node's addresses.
    pub(crate) fn compare(
        &mut self,
        (old, new): (&[FilterRule], &[FilterRule]),
        own: [IpAddr; 2],
        (zones, budget): (&[ipnet::IpNet], usize),
        table: &AddrTable,
        placements: &mut Placements,
    ) -> Compared {
        let mut run = |placements: &mut Placements| -> Compared {
            self.computed = self.computed.saturating_add(1);
            Rc::new((
                diff_node((old, new), own, (zones, budget), table, placements),
                diff_apps(old, new, own, table, placements),
            ))
        };
        if zones.is_empty() {
            return run(placements);
        }
        let hash = fingerprint(old, new, zones);
        let found = self.kept.get(&hash).and_then(|list| {
            list.iter()
                .position(|k| k.old == old && k.new == new && k.zones == zones)
        });
        let Some(at) = found else {
            let ranges = all_ranges(old, new, placements);
            let own_held = holds(&ranges, own);
            let done = run(placements);
            let size = entry_count(old).saturating_add(entry_count(new));
            if self.entries.saturating_add(size) <= KEPT_ENTRIES {
                self.entries = self.entries.saturating_add(size);
                self.kept.entry(hash).or_default().push(Kept {
                    old: old.to_vec(),
                    new: new.to_vec(),
                    zones: zones.to_vec(),
                    ranges,
                    done: (!own_held).then(|| done.clone()),
                });
            }
            return done;
        };
        let slot = self.kept.get(&hash).and_then(|list| list.get(at));
        let own_held = slot.is_none_or(|k| holds(&k.ranges, own));
        if let Some(done) = slot.and_then(|k| k.done.as_ref()).filter(|_| !own_held) {
            return done.clone();
        }
        let done = run(placements);
        if !own_held {
            if let Some(k) = self.kept.get_mut(&hash).and_then(|list| list.get_mut(at)) {
                k.done = Some(done.clone());
            }
        }
        done
    }
}

/// A hash of the filters' and routes' contents (capability grants by count only: equality
/// decides).
fn fingerprint(old: &[FilterRule], new: &[FilterRule], zones: &[ipnet::IpNet]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::hash::hasher();
    zones.hash(&mut h);
    for rules in [old, new] {
        rules.len().hash(&mut h);
        for rule in rules {
            rule.src_ips.hash(&mut h);
            rule.src_bits.hash(&mut h);
            rule.ip_proto.hash(&mut h);
            rule.cap_grant.len().hash(&mut h);
            rule.dst_ports.len().hash(&mut h);
            for dst in &rule.dst_ports {
                dst.ip.hash(&mut h);
                dst.bits.hash(&mut h);
                dst.ports.hash(&mut h);
            }
        }
    }
    h.finish()
}

/// Every destination range of both filters: their `DstPorts` and their grants' `Dsts`,
/// merged. O(entries log entries), once per comparison kept.
fn all_ranges(
    old: &[FilterRule],
    new: &[FilterRule],
    placements: &mut Placements,
) -> Vec<(Addr, Addr)> {
    let mut out = Vec::new();
    for rule in old.iter().chain(new) {
        let texts = rule
            .dst_ports
            .iter()
            .map(|d| &d.ip)
            .chain(rule.cap_grant.iter().flat_map(|g| g.dsts.iter()));
        for text in texts {
            out.extend(
                placements
                    .ranges(text)
                    .iter()
                    .map(|&(lo, hi)| (addr_key(lo), addr_key(hi))),
            );
        }
    }
    merge_addr_ranges(out)
}

/// Whether one of the node's own addresses is in `ranges` (sorted, disjoint).
fn holds(ranges: &[(Addr, Addr)], own: [IpAddr; 2]) -> bool {
    own.iter().filter(|a| !a.is_unspecified()).any(|&a| {
        let k = addr_key(a);
        let i = ranges.partition_point(|r| r.1 < k);
        ranges.get(i).is_some_and(|r| r.0 <= k)
    })
}

/// A filter's `DstPorts` entries.
fn entry_count(rules: &[FilterRule]) -> usize {
    rules.iter().map(|r| r.dst_ports.len().max(1)).sum()
}
