//! Which nodes an access diff must look at: those a changed rule item, SSH rule, route or
//! node attribute reaches, found by comparing the two lowerings by content, never by
//! assembling a node's output. Every other node receives the same access from both policies
//! and is skipped, so the diff costs what the change touches, not what the tailnet holds.
//!
//! Why skipping is exact, part by part (both compiles share the inventory, so node ids agree):
//! - packet filter: read as access it is the union over the items reaching the node, each a
//!   function of the item's content and the node; a node no changed item reaches is the same;
//! - SSH rules: a node's list is its reaching rules in policy order; when the rules both
//!   policies have keep their relative order, a node no changed rule reaches gets the same
//!   list (a reorder marks every node);
//! - peers: a peer relation comes from one item's source and destination sides, so only nodes
//!   on a side of a changed item can gain or lose one; who is shown a route, and through
//!   which router, is decided by the items to and from it (their sides again) and by the
//!   route's servers (the node table);
//! - capabilities: `nodeAttrs` resolved the same way give every node the same map.
//!
//! When the node tables differ (an `autoApprovers` change moved a route) or `*` means
//! something else, every node is looked at.

use crate::bits::bit;
use crate::compiled::Compiled;
use crate::nodes::NodeId;

/// The packet filter may differ.
pub(super) const NET: u8 = 1;
/// The SSH rules may differ.
pub(super) const SSH: u8 = 2;
/// The peers or the routes shown through them may differ.
pub(super) const PEERS: u8 = 4;
/// The capability map may differ.
pub(super) const CAPS: u8 = 8;
/// Everything.
const ALL: u8 = NET | SSH | PEERS | CAPS;

/// Per node (by id), what may differ.
#[derive(Debug)]
pub(super) struct Touched {
    pub(super) flags: Vec<u8>,
}

impl Touched {
    /// Every part of every node of a tailnet of `len` nodes.
    pub(super) fn all(len: usize) -> Touched {
        Touched {
            flags: vec![ALL; len],
        }
    }

    fn add(&mut self, part: u8, bits: &[u64]) {
        for (n, flag) in self.flags.iter_mut().enumerate() {
            if bit(bits, NodeId::new(n)) {
                *flag |= part;
            }
        }
    }
}

/// What may differ per node between two compiles of the same inventory.
/// O(items + SSH rules + index entries + nodes).
pub(super) fn touched(old: &Compiled, new: &Compiled) -> Touched {
    let (o, n) = (old.parts(), new.parts());
    let len = n.table.len();
    if !o.same_routes(&n) || !o.lowered.same_star(n.lowered) {
        return Touched::all(len);
    }
    let words = len.div_ceil(64);
    let mut touched = Touched {
        flags: vec![0; len],
    };
    // Packet filters and peers.
    let items = crate::lower::changed_items(o.lowered, n.lowered);
    if !items.is_empty() {
        let mut bits = vec![0u64; words];
        o.lowered.mark_reached(o.table, &items.old, &mut bits);
        n.lowered.mark_reached(n.table, &items.new, &mut bits);
        touched.add(NET, &bits);
        let mut bits = vec![0u64; words];
        o.lowered.mark_peer_sides(o.table, &items.old, &mut bits);
        n.lowered.mark_peer_sides(n.table, &items.new, &mut bits);
        touched.add(PEERS, &bits);
    }
    // SSH rules.
    match o.ssh.changed_rules(n.ssh) {
        None => touched.add(SSH, &vec![u64::MAX; words]),
        Some((co, cn)) => {
            if co.iter().chain(&cn).any(|&c| c) {
                let mut bits = vec![0u64; words];
                o.ssh.mark_reached(o.table, &co, &mut bits);
                n.ssh.mark_reached(n.table, &cn, &mut bits);
                touched.add(SSH, &bits);
            }
        }
    }
    // Capabilities.
    if !o.caps.same_as(n.caps) {
        touched.add(CAPS, &vec![u64::MAX; words]);
    }
    touched
}

/// [`map_touched`]: the node's packet filter may differ.
pub(crate) const MAP_RULES: u8 = 1;
/// [`map_touched`]: the node's SSH rules may differ.
pub(crate) const MAP_SSH: u8 = 4;
/// [`map_touched`]: the node's peers may differ (it is on a side of a changed item).
pub(crate) const MAP_PEERS: u8 = 2;

/// For the engine: per node, what of its map (the wire output) may differ between two
/// compiles of the same inventory ([`MAP_RULES`], [`MAP_PEERS`], [`MAP_SSH`]; 0: nothing), with
/// the changed items it found; `None` when
/// that may be every node (the node tables differ, `*` means something else, or `nodeAttrs`
/// changed, which can hide a node's IPv4 address from every peer). Stricter than
/// [`touched`]: order and merging count, so items are paired in order with their merge slots
/// ([`crate::lower::changed_items_wire`]). Nothing else of a node's map can differ: its
/// capabilities, own addresses and routes come from the unchanged node table and
/// `nodeAttrs`.
pub(crate) fn map_touched(
    old: &Compiled,
    new: &Compiled,
) -> Option<(Vec<u8>, crate::lower::WireComparison)> {
    let (o, n) = (old.parts(), new.parts());
    if !o.same_routes(&n) || !o.lowered.same_star(n.lowered) || !o.caps.same_as(n.caps) {
        return None;
    }
    let len = n.table.len();
    let words = len.div_ceil(64);
    let (mut rules, mut peers, mut ssh) = (vec![0u64; words], vec![0u64; words], vec![0u64; words]);
    let items = crate::lower::changed_items_wire(o.lowered, n.lowered);
    for (side, changed) in [(&o, &items.changed.old), (&n, &items.changed.new)] {
        side.lowered.mark_reached(side.table, changed, &mut rules);
        side.lowered.mark_claims(side.table, changed, &mut rules);
        side.lowered
            .mark_peer_sides(side.table, changed, &mut peers);
    }
    let (co, cn) = o.ssh.changed_rules(n.ssh)?;
    o.ssh.mark_reached(o.table, &co, &mut ssh);
    n.ssh.mark_reached(n.table, &cn, &mut ssh);
    let flags = (0..len)
        .map(|i| {
            let mut flags = 0;
            if bit(&rules, NodeId::new(i)) {
                flags |= MAP_RULES;
            }
            if bit(&peers, NodeId::new(i)) {
                flags |= MAP_PEERS;
            }
            if bit(&ssh, NodeId::new(i)) {
                flags |= MAP_SSH;
            }
            flags
        })
        .collect();
    Some((flags, items))
}
