//! The node-by-node scan of a diff: each node's filter, peers, SSH rules and capabilities in
//! both compiles compared, and what differs gathered as atoms.

use super::*;

/// What one thread found, before grouping.
#[derive(Default)]
pub(super) struct Partial {
    pub(super) net: NetAtoms,
    pub(super) ssh: SshAtoms,
    pub(super) peers: BTreeMap<(bool, String, Option<String>), Vec<u32>>,
    pub(super) caps: BTreeMap<(bool, String, String), (serde_json::Value, Vec<u32>)>,
    pub(super) apps: AppAtoms,
}

/// Application capability changes by (gained, sources, capability, value): the value and
/// the destinations.
pub(super) type AppAtoms =
    BTreeMap<(bool, network::Source, String, String), (serde_json::Value, Vec<(u32, Dest)>)>;

/// The inputs of the per-node comparison, shared by the threads.
pub(super) struct Scan<'a> {
    pub(super) old: Side<'a>,
    pub(super) new: Side<'a>,
    pub(super) names: &'a [&'a str],
    pub(super) table: &'a AddrTable,
    pub(super) routers: &'a [crate::nodes::NodeId],
    /// Per node, what may differ ([`touched`]).
    pub(super) flags: &'a [u8],
    pub(super) len: u32,
    /// [`DiffOptions::route_piece_budget`].
    pub(super) piece_budget: usize,
}

impl Scan<'_> {
    /// Compare nodes `work` (indices into `names`, which are node ids), each in the parts its
    /// flags name.
    pub(super) fn run(&self, work: &[u32]) -> Partial {
        let (old, new, table, len) = (self.old, self.new, self.table, self.len);
        let mut out = Partial::default();
        let mut memo = SameMemo::default();
        let mut placements = network::Placements::default();
        let mut shared = network::SharedComparisons::default();
        let mut ssh_placements = ssh::SshPlacements::default();
        for &i in work {
            let (Some(&name), Some(&flags)) =
                (self.names.get(i as usize), self.flags.get(i as usize))
            else {
                continue;
            };
            let id = crate::nodes::NodeId::new(i as usize);
            if flags & touched::NET != 0 {
                let (of, nf) = (old.compiled.filter_at(id), new.compiled.filter_at(id));
                if !same_rules(&of, &nf, &mut memo) {
                    let addresses = new
                        .compiled
                        .node_addresses(name)
                        .unwrap_or([unspecified(); 2]);
                    let compared = shared.compare(
                        (&of, &nf),
                        addresses,
                        (&zones_of(old.compiled, new.compiled, id), self.piece_budget),
                        table,
                        &mut placements,
                    );
                    let (atoms, apps) = &*compared;
                    for Atom {
                        gained,
                        src,
                        dst,
                        proto,
                        ports,
                    } in atoms.iter().cloned()
                    {
                        out.net
                            .entry((gained, src, proto, ports))
                            .or_default()
                            .push((i, dst));
                    }
                    for atom in apps.iter().cloned() {
                        let key = (
                            atom.gained,
                            atom.src,
                            atom.capability,
                            atom.value.to_string(),
                        );
                        out.apps
                            .entry(key)
                            .or_insert_with(|| (atom.value, Vec::new()))
                            .1
                            .push((i, atom.dst));
                    }
                }
            }
            if flags & touched::SSH != 0 {
                let (os, ns) = (
                    old.compiled.indexed_ssh_rules(name),
                    new.compiled.indexed_ssh_rules(name),
                );
                for atom in ssh::diff_node(&os, &ns, table, len, &mut ssh_placements) {
                    out.ssh
                        .entry((atom.gained, atom.src, atom.login, atom.outcome))
                        .or_default()
                        .push(i);
                }
            }
            if flags & touched::PEERS != 0 {
                let sides = [old.compiled, new.compiled];
                diff_peers(sides, id, i, self.routers, self.names, &mut out.peers);
            }
            if flags & touched::CAPS != 0 {
                let (oc, nc) = (old.compiled.cap_map_at(id), new.compiled.cap_map_at(id));
                if oc != nc {
                    for (gained, from, to) in [(false, &oc, &nc), (true, &nc, &oc)] {
                        for (cap, value) in from {
                            if to.get(cap) != Some(value) {
                                out.caps
                                    .entry((gained, cap.clone(), value.to_string()))
                                    .or_insert_with(|| (value.clone(), Vec::new()))
                                    .1
                                    .push(i);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
