//! Fingerprints of what each node receives (per part: filter, SSH rules, peers, cap map,
//! own routes), so the engine's change set compares hashes, not maps.

use super::*;
use crate::Text;

/// Hashes of the parts of what one node receives, so that two compiles can be compared node
/// by node without building either's wire form (the engine's change sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fingerprint {
    /// The packet filter.
    pub(crate) filter: u64,
    /// The SSH rules.
    pub(crate) ssh: u64,
    /// The peers, each with its AllowedIPs, routes and capabilities.
    pub(crate) peers: u64,
    /// The capability map.
    pub(crate) caps: u64,
    /// The node's own addresses, AllowedIPs and primary routes.
    pub(crate) own: u64,
}

/// Feeds what serde writes into a hasher (no intermediate string).
pub(super) struct HashWriter(ahash::AHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash of `value`'s JSON form (with this process's keys: [`crate::hash::hasher`]).
pub(crate) fn json_hash<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    let mut writer = HashWriter(crate::hash::hasher());
    // Writing to a hasher cannot fail; a value serde cannot write hashes as what was written.
    if serde_json::to_writer(&mut writer, value).is_err() {
        std::hash::Hasher::write_u8(&mut writer.0, 0xff);
    }
    std::hash::Hasher::finish(&writer.0)
}

/// The fingerprint hash of a `SrcIPs` list: its length and content hash
/// ([`crate::lower::SrcTable::hash`], a sum over its strings, which are sorted without
/// repeats, so the sum loses nothing an ordered hash would keep), mixed.
pub(super) fn strings_hash(len: usize, content: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_usize(len);
    h.write_u64(content);
    h.finish()
}

/// The hash of an SSH rule's fields besides its principals (`null`: policy rules have no
/// expiry).
pub(super) fn ssh_rest_hash(rule: &crate::ssh::SshRuleRef<'_>) -> u64 {
    json_hash(&((), rule.users, rule.action, rule.accept_env))
}

/// The hash of an SSH principals list, field by field (every field of the wire form; each
/// field tagged, each string ended by a byte UTF-8 never holds).
pub(super) fn principals_hash(list: &[crate::wire::SshPrincipal]) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_usize(list.len());
    let text = |h: &mut ahash::AHasher, tag: u8, s: Option<&str>| {
        if let Some(s) = s {
            h.write_u8(tag);
            h.write(s.as_bytes());
            h.write_u8(0xff);
        }
    };
    for p in list {
        text(&mut h, 1, p.node());
        text(&mut h, 2, p.node_ip());
        text(&mut h, 3, p.user_login());
        h.write_u8(if p.any() { 4 } else { 5 });
        h.write_usize(p.pub_keys().len());
        for key in p.pub_keys() {
            text(&mut h, 6, Some(key));
        }
    }
    h.finish()
}

/// Hashes of the shared `SrcIPs` lists in rules, by address, for one pass over a compile's
/// nodes: most nodes' rules share a few interned lists, so each is hashed once. Only lists
/// something else also holds are remembered, and the cache keeps a clone of each, so an
/// address is never reused for another list while it is cached. (SSH rules keep their
/// hashes themselves: [`crate::ssh::Memo`].)
#[derive(Default)]
pub(crate) struct HashCache {
    // Keyed by addresses, looked up once per rule a node receives (tens of millions on
    // `large`): the fast hash, not SipHash.
    pub(super) sources: crate::hash::Map<usize, (crate::wire::Strings, u64)>,
}

impl HashCache {
    pub(super) fn sources(
        &mut self,
        list: &crate::wire::Strings,
        srcs: &crate::lower::SrcTable,
    ) -> u64 {
        // A list of the compile's table: its content hash, known since it was interned.
        if let Some(content) = srcs.content_hash(list) {
            return strings_hash(list.len(), content);
        }
        let key = std::sync::Arc::as_ptr(list) as *const u8 as usize;
        if let Some((_, h)) = self.sources.get(&key) {
            return *h;
        }
        let h = strings_hash(list.len(), crate::lower::SrcTable::hash(list));
        if std::sync::Arc::strong_count(list) > 1 {
            self.sources.insert(key, (list.clone(), h));
        }
        h
    }

    /// The hash of a packet filter: each rule's sources (cached) and the rest of it, field by
    /// field (every field of the wire form; `CapGrant`s, rare and holding JSON values,
    /// through their JSON form).
    pub(super) fn filter_hash(
        &mut self,
        rules: &[FilterRule],
        srcs: &crate::lower::SrcTable,
    ) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::hash::hasher();
        for rule in rules {
            let mut r = crate::hash::hasher();
            self.rule_into(&mut r, rule, srcs);
            h.write_u64(r.finish());
        }
        h.write_usize(rules.len());
        h.finish()
    }

    /// [`HashCache::filter_hash`] of the filter `rules` are the parts of
    /// ([`crate::lower::Lowered::filter_parts`]), without building its wire form: every
    /// `DstPorts` entry written to the hash as the wire rule's would be. A filter's hash is
    /// one of its rules' hashes, so a rule made of the destination lists every exit node
    /// shares ([`crate::lower::Dsts::Shared`]) is hashed once per compile (`spread`).
    pub(super) fn parts_hash(
        &mut self,
        rules: &[crate::lower::MergedRule<'_>],
        srcs: &crate::lower::SrcTable,
        spread: Option<&crate::lower::SpreadCache>,
    ) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::hash::hasher();
        let mut kept = 0usize;
        for rule in rules.iter().filter(|r| r.kept()) {
            kept += 1;
            // The items of a rule made of shared exit node destinations alone.
            let shared = match (spread, rule) {
                (Some(spread), crate::lower::MergedRule::Net { dsts, .. }) => dsts
                    .iter()
                    .map(|(d, _)| match d {
                        crate::lower::Dsts::Shared(chunk) => Some(chunk.item),
                        _ => None,
                    })
                    .collect::<Option<Vec<u32>>>()
                    .map(|items| (spread, items)),
                _ => None,
            };
            let hash = match shared {
                Some((spread, items)) => {
                    spread.rule_hash(items, || self.merged_rule_hash(rule, srcs))
                }
                None => self.merged_rule_hash(rule, srcs),
            };
            h.write_u64(hash);
        }
        h.write_usize(kept);
        h.finish()
    }

    /// The hash of one rule of [`HashCache::parts_hash`], as [`HashCache::rule_into`] writes
    /// its wire form.
    fn merged_rule_hash(
        &mut self,
        rule: &crate::lower::MergedRule<'_>,
        srcs: &crate::lower::SrcTable,
    ) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::hash::hasher();
        match rule {
            crate::lower::MergedRule::Whole(rule) => self.rule_into(&mut h, rule, srcs),
            crate::lower::MergedRule::Net { src, proto, dsts } => {
                h.write_u64(self.sources(src, srcs));
                // The wire rule's `SrcBits`, always empty.
                <[i64]>::hash(&[], &mut h);
                h.write_usize(rule.entries());
                for (d, ports) in dsts {
                    for ip in d.ips() {
                        for &ports in *ports {
                            dst_into(&mut h, ip, None, ports);
                        }
                    }
                }
                proto.as_slice().hash(&mut h);
                h.write_u8(0);
            }
        }
        h.finish()
    }

    /// One wire rule, written to `h`.
    fn rule_into(
        &mut self,
        h: &mut ahash::AHasher,
        rule: &FilterRule,
        srcs: &crate::lower::SrcTable,
    ) {
        use std::hash::{Hash, Hasher};
        h.write_u64(self.sources(&rule.src_ips, srcs));
        rule.src_bits.hash(h);
        h.write_usize(rule.dst_ports.len());
        for d in &rule.dst_ports {
            dst_into(h, &d.ip, d.bits, d.ports);
        }
        rule.ip_proto.hash(h);
        match rule.cap_grant.is_empty() {
            true => h.write_u8(0),
            false => h.write_u64(json_hash(&rule.cap_grant)),
        }
    }
}

/// One `DstPorts` entry, written to `h`.
fn dst_into(h: &mut ahash::AHasher, ip: &str, bits: Option<i64>, ports: crate::wire::Ports) {
    use std::hash::{Hash, Hasher};
    h.write(ip.as_bytes());
    // Never in UTF-8: ends the string.
    h.write_u8(0xff);
    bits.hash(h);
    h.write_u16(ports.first);
    h.write_u16(ports.last);
}

/// The hash of node `id`'s SSH rules in `ssh` (as [`SshLowered::node_rules`] would give
/// them, without building them): the sum of one hash per piece, of the piece's rule, its
/// place among that rule's pieces, its principals and the rest of it (their hashes kept with
/// the lowered rule). The order of the rules follows from them (check rules first, policy
/// order otherwise), and a sum lets an event move a node's hash by the pieces that changed
/// ([`Compiled::ssh_moves`]) without visiting its other rules.
pub(super) fn ssh_hash(ssh: &SshLowered, table: &NodeTable, id: NodeId) -> u64 {
    let mut sink = SshHashSink::new(ssh);
    ssh.visit_node_rules(table, id, &mut sink);
    sink.sum
}

/// [`Compiled::ssh_moves`]: what the moved pieces add to each node's SSH fingerprint, and
/// the nodes to hash again.
pub(crate) struct SshMoves {
    /// Per node (by id), the sum of its moved pieces' changes.
    pub(crate) sums: Vec<u64>,
    /// The nodes some moved piece reaches (a bit per node id): their `sums` apply.
    pub(crate) summed: Vec<u64>,
    /// The nodes whose SSH part is hashed again.
    pub(crate) again: Vec<NodeId>,
    /// The nodes a moved piece reaches whose SSH rules may be what they were although their
    /// sum moved: a piece that left one rule for another with the same content
    /// ([`Compiled::ssh_unchanged`] decides them). Most often none.
    pub(crate) doubtful: Vec<NodeId>,
}

/// One piece's part of [`ssh_hash`].
pub(super) fn ssh_piece_hash(label: u64, place: usize, principals: u64, rest: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::hasher();
    h.write_u64(label);
    h.write_usize(place);
    h.write_u64(principals);
    h.write_u64(rest);
    h.finish()
}

/// Hashes a node's SSH rules as [`SshLowered::visit_node_rules`] hands them over (a rule's
/// pieces one after the other), each piece by its rule's label
/// ([`crate::ssh::Labels`]), its place in the rule and its content.
pub(super) struct SshHashSink<'a> {
    pub(super) labels: &'a crate::ssh::Labels,
    /// The last piece's rule and place.
    pub(super) last: Option<(usize, usize)>,
    pub(super) sum: u64,
    /// The pieces' contents (principals and the rest) and nothing else, in policy order,
    /// each with whether it is a check rule (a node puts those first).
    pub(super) contents: Option<Vec<(bool, (u64, u64))>>,
}

impl<'a> SshHashSink<'a> {
    pub(super) fn new(ssh: &'a SshLowered) -> SshHashSink<'a> {
        SshHashSink {
            labels: ssh.labels(),
            last: None,
            sum: 0,
            contents: None,
        }
    }

    /// A sink that lists the pieces' contents as well.
    fn listing(ssh: &'a SshLowered) -> SshHashSink<'a> {
        SshHashSink {
            contents: Some(Vec::new()),
            ..SshHashSink::new(ssh)
        }
    }
}

impl crate::ssh::SshSink for SshHashSink<'_> {
    fn rule(&mut self, rule: crate::ssh::SshRuleRef<'_>) {
        let list = || principals_hash(rule.principals);
        let principals = match rule.principals_hash {
            // Kept with the lowered rule, computed once per compile for all threads.
            Some(memo) => memo.get_or(list),
            None => list(),
        };
        let rest = rule.rest_hash.get_or(|| ssh_rest_hash(&rule));
        let place = match self.last {
            Some((index, place)) if index == rule.policy_index => place + 1,
            _ => 0,
        };
        self.last = Some((rule.policy_index, place));
        if let Some(contents) = &mut self.contents {
            contents.push((rule.check_first, (principals, rest)));
        }
        let label = self.labels.get(rule.policy_index);
        self.sum = self
            .sum
            .wrapping_add(ssh_piece_hash(label, place, principals, rest));
    }
}

impl Compiled {
    /// The nodes whose SSH rules have node `id` as a source; `None` when that may be any
    /// node.
    pub(crate) fn ssh_dependents_at(&self, id: NodeId) -> Option<Vec<NodeId>> {
        self.ssh.naming_source(&self.table, id)
    }

    /// Whether exit nodes receive every network item ([`crate::ExitNodeFilters`]).
    pub(crate) fn spreads_exits(&self) -> bool {
        self.lowered.spread_exits
    }

    /// The nodes whose packet filter may change when node `id` (serving no route) joins,
    /// leaves or changes ([`crate::lower::Lowered::filter_dependents`]); `None` when that may
    /// be every node.
    pub(crate) fn filter_dependents_at(&self, id: NodeId) -> Option<Vec<NodeId>> {
        let peers = || crate::bits::iter_bits(&self.peers.peer_bits(&self.table, id)).collect();
        self.lowered.filter_dependents(&self.table, id, peers)
    }

    /// Node ids of `old` (a compile of another node table) translated to this compile's, by
    /// name; `u32::MAX` for a node this compile does not have. O(nodes): both tables are
    /// sorted by name.
    pub(crate) fn ids_from(&self, old: &Compiled) -> Vec<u32> {
        crate::nodes::translate_ids(&old.table, &self.table)
    }

    /// Whether two compiles merge network rules the same way
    /// ([`crate::lower::Lowered::merge_signature`]).
    pub(crate) fn merges_like(&self, other: &Compiled) -> bool {
        self.lowered.merge_signature() == other.lowered.merge_signature()
    }

    /// The nodes (one bit each) whose filters may change beyond a node event's dependents
    /// when the rules do not merge as in `old` ([`crate::lower::regrouped`]); `None` when
    /// what `*` means differs too. `to_new` maps `old`'s node ids to this compile's.
    /// With them, each of `old`'s rule items' partner here ([`crate::lower::pair_by_rule`]).
    pub(crate) fn regrouped(
        &self,
        old: &Compiled,
        to_new: &[u32],
    ) -> Option<(Vec<u64>, Vec<Option<u32>>)> {
        if !self.lowered.same_star(&old.lowered) {
            return None;
        }
        let pair = crate::lower::pair_by_rule(&old.lowered, &self.lowered);
        let bits = crate::lower::regrouped(
            (&old.lowered, &old.table),
            (&self.lowered, &self.table),
            to_new,
            &pair,
        );
        Some((bits, pair))
    }

    /// [`Compiled::merges_like`], except what `*` means (which lists every subnet route).
    pub(crate) fn slots_like(&self, other: &Compiled) -> bool {
        self.lowered.merge_signature().0 == other.lowered.merge_signature().0
    }

    /// The nodes (one bit each) that an item of `moves` may reach, here or in `old` (a compile
    /// of the same nodes, so node ids agree).
    pub(crate) fn moved_reach(
        &self,
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
    ) -> Vec<u64> {
        let flags = moves.any_moved();
        let mut bits = vec![0u64; self.table.len().div_ceil(64)];
        old.lowered.mark_reached(&old.table, &flags, &mut bits);
        self.lowered.mark_reached(&self.table, &flags, &mut bits);
        bits
    }

    /// The devices (by name) whose `autogroup:self` rule may claim another slot after the
    /// change `moves` describes: with self rules, the devices of every owner in
    /// [`crate::lower::SourceMoves`] (the changed nodes' owners, and the owners of the first
    /// address of every moved list, before and after). A self rule merges into the first
    /// item whose sources are exactly its owner's devices, so a list that becomes (or stops
    /// being) equal to a user's devices moves that user's self rule, wherever the list's
    /// item reaches.
    pub(crate) fn self_claimants(&self, moves: &crate::lower::SourceMoves) -> Vec<Text> {
        if !self.lowered.has_self_items() {
            return Vec::new();
        }
        moves
            .owners()
            .filter_map(|login| self.table.devices.get(self.table.user(login)?.index()))
            .flatten()
            .filter_map(|&id| self.table.get(id).map(|n| n.name.clone()))
            .collect()
    }

    /// Node `name`'s [`PeerBases`] entry: how it looks as a peer without subnet routes.
    pub(crate) fn peer_base(&self, name: &str) -> Option<[u64; 4]> {
        self.peer_base_at(self.table.id(name)?)
    }

    /// Node `id`'s [`PeerBases`] entry.
    pub(crate) fn peer_base_at(&self, id: NodeId) -> Option<[u64; 4]> {
        Some(self.base_of(id, self.table.get(id)?))
    }

    /// Node `id`'s [`PeerBases`] entry.
    pub(super) fn base_of(&self, id: NodeId, node: &NodeInfo) -> [u64; 4] {
        let own = self.families_missing(id);
        let wire = |viewer: u8| {
            let view = PeerView {
                node,
                routes: Vec::new(),
                hide: own | viewer,
            };
            json_hash(&(&*node.name, view.to_wire()))
        };
        bases_of(own, wire)
    }

    /// True when node `id` is the only server of every subnet route it serves.
    pub(crate) fn sole_server(&self, id: NodeId) -> bool {
        self.table.get(id).is_some_and(|node| {
            node.subnet_routes
                .iter()
                .all(|r| self.routes.get(r).is_some_and(|(_, e)| e.servers == [id]))
        })
    }

    /// The name of node `id`.
    pub(crate) fn name_of(&self, id: NodeId) -> Option<&Text> {
        self.table.get(id).map(|n| &n.name)
    }

    /// The id of node `name` in this compile.
    pub(crate) fn id_of(&self, name: &str) -> Option<NodeId> {
        self.table.id(name)
    }

    /// The filter part of node `name`'s fingerprint.
    pub(crate) fn filter_fingerprint(&self, name: &str, cache: &mut HashCache) -> Option<u64> {
        Some(self.filter_print(self.table.id(name)?, cache))
    }

    /// The filter part of node `id`'s fingerprint, hashed from the filter's parts without
    /// building its wire form (the lists of `DstPorts` entries, each with a shared string,
    /// were a third of fingerprinting every node on `large`). Debug builds compare it with
    /// the hash of the wire form.
    pub(super) fn filter_print(&self, id: NodeId, cache: &mut HashCache) -> u64 {
        let Some(key) = self.lowered.exit_filter_key(&self.table, id) else {
            return self.assembled_print(id, cache);
        };
        let print = crate::hash::memo(&self.exit_prints, key, || self.assembled_print(id, cache));
        debug_assert_eq!(
            print,
            self.assembled_print(id, &mut HashCache::default()),
            "exit nodes with one key have different filters"
        );
        print
    }

    /// [`Compiled::filter_print`], the filter's parts assembled for node `id`.
    pub(super) fn assembled_print(&self, id: NodeId, cache: &mut HashCache) -> u64 {
        let print = cache.parts_hash(
            &self
                .lowered
                .filter_parts(&self.table, id, Some(&self.spread)),
            &self.lowered.srcs,
            Some(&self.spread),
        );
        debug_assert_eq!(
            print,
            cache.filter_hash(
                &self.lowered.filter_rules(&self.table, id, None),
                &self.lowered.srcs
            ),
            "a filter hashed from its parts differs from its wire form's hash"
        );
        print
    }

    /// What this compile's SSH rules, patched from `old`'s (a node event), changed for the
    /// nodes that did not change: per node (ids here), the sum to add to its SSH
    /// fingerprint, and the nodes whose SSH fingerprint must be computed again
    /// ([`SshLowered::moves`]). `None` when the rules were not patched.
    pub(crate) fn ssh_moves(&self, old: &Compiled) -> Option<SshMoves> {
        let (simple, again) = self.ssh.moves(&old.ssh, &self.table)?;
        // A piece's hash, and its content when it has one.
        let piece = |ssh: &SshLowered, i: u32| {
            let mut sink = SshHashSink::listing(ssh);
            ssh.visit_piece(i, &mut sink);
            let content = sink.contents.and_then(|c| c.first().map(|&(_, c)| c));
            (sink.sum, content)
        };
        // Summed into one array by node id as they are found: a list of (node, change)
        // pairs held 2.4 million entries (38 MiB) for a batch of 100 joins on `large`.
        let n = self.table.len();
        let (mut sums, mut summed) = (vec![0u64; n], vec![0u64; n.div_ceil(64)]);
        // The moved pieces' contents before and after, by rule.
        // The rule of each earlier content, and whether more than one rule had it.
        let mut before: crate::hash::Map<(u64, u64), (u32, bool)> = crate::hash::Map::default();
        let mut after: Vec<((u64, u64), u32)> = Vec::new();
        for i in simple {
            let (new, now) = piece(&self.ssh, i);
            let (was, then) = piece(&old.ssh, i);
            let delta = new.wrapping_sub(was);
            if delta != 0 {
                if let Some(c) = then {
                    before
                        .entry(c)
                        .and_modify(|(_, many)| *many = true)
                        .or_insert((i, false));
                }
                after.extend(now.map(|c| (c, i)));
                for &v in self.ssh.destinations(i) {
                    if let Some(sum) = sums.get_mut(v.index()) {
                        *sum = sum.wrapping_add(delta);
                        crate::bits::set_bit(&mut summed, v);
                    }
                }
            }
        }
        // A node's rules can be what they were only if the contents its moved pieces had are
        // the contents they have: some piece took another's earlier content. The nodes such
        // a piece reaches are decided by their lists (one lookup per moved piece otherwise;
        // no more nodes than the sums above reached).
        let mut doubtful = Vec::new();
        for (content, j) in after {
            if before
                .get(&content)
                .is_some_and(|&(i, many)| many || i != j)
            {
                doubtful.extend_from_slice(self.ssh.destinations(j));
            }
        }
        doubtful.sort_unstable();
        doubtful.dedup();
        Some(SshMoves {
            sums,
            summed,
            again,
            doubtful,
        })
    }

    /// Label the SSH rules as `old`, the compile this one follows (of the same policy when
    /// `same_policy`), labels them ([`SshLowered::continue_labels`]); before any
    /// fingerprint.
    pub(crate) fn continue_ssh_labels(&mut self, old: &Compiled, same_policy: bool) {
        self.ssh.continue_labels(&old.ssh, same_policy);
    }

    /// Whether node `id`'s SSH rules here are node `was`'s in `old`, piece by piece (their
    /// principals and the rest compared by hash, the rules' labels left out): for a node
    /// whose SSH fingerprint changed only because a piece moved between two rules of equal
    /// content.
    pub(crate) fn ssh_unchanged(&self, id: NodeId, old: &Compiled, was: NodeId) -> bool {
        let contents = |c: &Compiled, v: NodeId| {
            let mut sink = SshHashSink::listing(&c.ssh);
            c.ssh.visit_node_rules(&c.table, v, &mut sink);
            // In the order the node receives them ([`SshLowered::node_rules`]): check
            // rules first, policy order otherwise (a check rule and an accept rule swapped
            // in the policy leave the node's rules as they were).
            let mut listed = sink.contents.unwrap_or_default();
            listed.sort_by_key(|&(check, _)| !check);
            listed
        };
        contents(self, id) == contents(old, was)
    }

    /// The SSH part of node `name`'s fingerprint.
    pub(crate) fn ssh_fingerprint(&self, name: &str) -> Option<u64> {
        let id = self.table.id(name)?;
        Some(ssh_hash(&self.ssh, &self.table, id))
    }

    /// What a change to nodes that serve no route (called `old_names` in `old`, the compile
    /// before it, and `new_names` here) did to the rule items; `None` when the items do not
    /// pair ([`crate::lower::SourceMoves`]). `pair` pairs them through their rules when the
    /// event changed how rules merge ([`Compiled::regrouped`]).
    pub(crate) fn source_moves(
        &self,
        old: &Compiled,
        (old_names, new_names): (&[&str], &[&str]),
        pair: Option<&[Option<u32>]>,
    ) -> Option<crate::lower::SourceMoves> {
        let ids = |c: &Compiled, names: &[&str]| {
            let mut ids: Vec<NodeId> = names.iter().filter_map(|n| c.table.id(n)).collect();
            ids.sort_unstable();
            ids
        };
        let (before, after) = (ids(old, old_names), ids(self, new_names));
        let owners = |c: &Compiled, ids: &[NodeId]| -> Vec<String> {
            ids.iter()
                .filter_map(|&id| crate::lower::login(&c.table, c.table.get(id)?.owner))
                .map(str::to_string)
                .collect()
        };
        let mut all = owners(old, &before);
        all.extend(owners(self, &after));
        crate::lower::SourceMoves::new(
            (&old.lowered, &old.table),
            (&self.lowered, &self.table),
            crate::lower::ChangedNode { before, after },
            all,
            pair,
        )
    }

    /// After a policy change (records unchanged: `old` compiled the same node table), whether
    /// node `id`'s packet filter changed, as far as the items paired by content tell
    /// ([`crate::lower::Lowered::entry_count_verdict`]).
    pub(crate) fn entry_count_verdict(
        &self,
        id: NodeId,
        old: &Compiled,
        unpaired: &crate::lower::ChangedItems,
    ) -> crate::lower::Verdict {
        self.lowered
            .entry_count_verdict(&self.table, id, (&old.lowered, &old.table), unpaired)
    }

    /// Whether node `name`'s packet filter changed from `old` (the compile before) to this
    /// one, as far as `moves` tells.
    pub(crate) fn filter_verdict(
        &self,
        name: &str,
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
    ) -> crate::lower::Verdict {
        match (self.table.id(name), old.table.id(name)) {
            (Some(id), Some(old_id)) => self.filter_verdict_at((id, old_id), old, moves, false),
            _ => crate::lower::Verdict::Assemble,
        }
    }

    /// [`Compiled::filter_verdict`] of the node `id` here, `old_id` in `old` (the same node);
    /// for a node the regrouping reaches (`regrouped`), as far as the items without a partner
    /// tell ([`crate::lower::Lowered::regrouped_verdict`]).
    pub(crate) fn filter_verdict_at(
        &self,
        (id, old_id): (NodeId, NodeId),
        old: &Compiled,
        moves: &crate::lower::SourceMoves,
        regrouped: bool,
    ) -> crate::lower::Verdict {
        let old = (&old.lowered, &old.table, old_id);
        match regrouped {
            true => self.lowered.regrouped_verdict(&self.table, id, old, moves),
            false => self.lowered.filter_verdict(&self.table, id, old, moves),
        }
    }
}

/// Per node, the hash of how it looks as a peer without subnet routes, indexed by the
/// families the viewer has no address of ([`Compiled::families_missing`]): 0 to a dual-stack
/// viewer, 1 to a viewer without IPv4 (the peer's IPv4 address hidden), 2 without IPv6, 3
/// neither.
pub(crate) type PeerBases = Vec<[u64; 4]>;

/// A node's [`PeerBases`] entry from `wire` (its hash as seen by a viewer missing these
/// families), computing each distinct view once.
pub(super) fn bases_of(own: u8, wire: impl Fn(u8) -> u64) -> [u64; 4] {
    let mut out = [0; 4];
    let mut done: [Option<u64>; 4] = [None; 4];
    for (viewer, slot) in out.iter_mut().enumerate() {
        let key = usize::from(own) | viewer;
        let hash = match done.get(key).copied().flatten() {
            Some(h) => h,
            None => {
                let h = wire(u8::try_from(viewer).unwrap_or(0));
                if let Some(d) = done.get_mut(key) {
                    *d = Some(h);
                }
                h
            }
        };
        *slot = hash;
    }
    out
}

impl Compiled {
    /// A router's entry in `viewer`'s peers' part when it carries routes for the viewer: its
    /// entry differs from its base (`base`, the viewer's variant) only by those routes (the
    /// wire form is its base plus the routes, in its order). `None` when it carries none.
    pub(super) fn carried(&self, viewer: NodeId, r: NodeId, base: u64) -> Option<u64> {
        let node = self.table.get(r)?;
        let numbered = node
            .subnet_routes
            .iter()
            .filter_map(|net| Some((self.routes.get(net)?.0, net)));
        self.carried_of(viewer, r, base, numbered)
    }

    /// [`Compiled::carried`], router `r`'s routes given with their numbers in the route
    /// table (`numbered`, in the router's order; a route the table lacks is shown to nobody).
    fn carried_of<'n>(
        &self,
        viewer: NodeId,
        r: NodeId,
        base: u64,
        numbered: impl Iterator<Item = (usize, &'n IpNet)>,
    ) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut carried = crate::hash::hasher();
        let mut any = false;
        for (i, net) in numbered {
            let shown = self.peers.route_visible(i, viewer)
                && self.peers.carrier(&self.table, &self.routes, i, viewer) == Some(r);
            if shown {
                any = true;
                net.hash(&mut carried);
            }
        }
        any.then(|| {
            carried.write_u64(base);
            carried.finish()
        })
    }

    /// Every router's routes with their numbers in the route table ([`RouterRoutes`]).
    pub(crate) fn router_routes(&self) -> RouterRoutes {
        RouterRoutes(
            self.table
                .routers
                .iter()
                .map(|&r| {
                    let numbered = self.table.get(r).map_or_else(Vec::new, |node| {
                        node.subnet_routes
                            .iter()
                            .filter_map(|net| Some((self.routes.get(net)?.0, *net)))
                            .collect()
                    });
                    (r, numbered)
                })
                .collect(),
        )
    }

    /// Node `peer`'s entry (base `base`, [`PeerBases`]) in the peers' part of node `viewer`'s
    /// fingerprint.
    pub(crate) fn peer_entry_at(&self, viewer: NodeId, peer: NodeId, base: [u64; 4]) -> u64 {
        self.entry_in(viewer, peer, &base)
    }

    /// [`Compiled::peer_entry_at`].
    pub(super) fn entry_in(&self, viewer: NodeId, peer: NodeId, base: &[u64; 4]) -> u64 {
        let column = usize::from(self.families_missing(viewer));
        let plain = base.get(column).copied().unwrap_or(0);
        self.carried(viewer, peer, plain).unwrap_or(plain)
    }

    /// Node `id`'s peers' part after a change that left every route shown alike
    /// ([`Compiled::routes_shown_alike`]) and every peer's entry as it was (same node table,
    /// same `nodeAttrs`), from its part `before` in `old`: the entries of the peers it lost
    /// are taken out and those of the peers it gained put in. O(words of the peer sets +
    /// peers that changed), instead of a sum over every peer.
    pub(crate) fn patched_peers(
        &self,
        old: &Compiled,
        id: NodeId,
        bases: &[[u64; 4]],
        before: u64,
    ) -> Option<u64> {
        let (now, was) = (
            self.peers.peer_bits(&self.table, id),
            old.peers.peer_bits(&old.table, id),
        );
        if now.len() != was.len() || self.table.len() != old.table.len() {
            return None;
        }
        let entry = |p: NodeId| Some(self.entry_in(id, p, bases.get(p.index())?));
        let mut peers = before;
        for (i, (&n, &w)) in now.iter().zip(&was).enumerate() {
            for (mut bits, gained) in [(n & !w, true), (w & !n, false)] {
                while bits != 0 {
                    let p = NodeId::new(i * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                    let e = entry(p)?;
                    peers = match gained {
                        true => peers.wrapping_add(e),
                        false => peers.wrapping_sub(e),
                    };
                }
            }
        }
        Some(peers)
    }

    /// [`Compiled::patched_peers`] for a node among many whose peers an event patches:
    /// nodes holding the same peer sets here and in `old` ([`crate::peers::PeerIndex::member_of`])
    /// have the same peers but for their owner's devices and themselves, so the sets'
    /// reaches and the words where they differ are found once per such group (`group`, the
    /// last one found: give the nodes grouped by their sets) and each node adds the entries
    /// of the peers its group gained, less those it lost, with its own devices and itself
    /// looked at alone. A rule added for `autogroup:member` on `large` patches 66,000 nodes
    /// whose two peer bit sets (12.5 KB each, made from the sets' reaches) were built and
    /// compared word by word per node: 1.7 s, most of the event.
    pub(crate) fn patched_peers_grouped(
        &self,
        old: &Compiled,
        id: NodeId,
        bases: &[[u64; 4]],
        before: u64,
        group: &mut Option<PeerGroup>,
    ) -> Option<u64> {
        let len = self.table.len();
        if len != old.table.len() {
            return None;
        }
        let (now_sets, was_sets) = (self.peers.member_of(id), old.peers.member_of(id));
        let fits = group
            .as_ref()
            .is_some_and(|g| g.now_sets[..] == now_sets[..] && g.was_sets[..] == was_sets[..]);
        if !fits {
            let reach_now = self.peers.reach_of(&now_sets);
            let reach_was = old.peers.reach_of(&was_sets);
            if reach_now.len() != reach_was.len() {
                return None;
            }
            let diffs = reach_now
                .iter()
                .zip(&reach_was)
                .enumerate()
                .filter(|(_, (n, w))| n != w)
                .map(|(i, (&n, &w))| (i, n & !w, w & !n))
                .collect();
            *group = Some(PeerGroup {
                now_sets: now_sets.into_owned(),
                was_sets: was_sets.into_owned(),
                reach_now,
                reach_was,
                diffs,
            });
        }
        let g = group.as_ref()?;
        let mut sum = PeerSum::new(
            (self, id, bases, before),
            self.peers.own_peers(&self.table, id, &g.reach_now),
            old.peers.own_peers(&old.table, id, &g.reach_was),
        );
        for &(i, gained, lost) in &g.diffs {
            for (mut bits, gain) in [(gained, true), (lost, false)] {
                while bits != 0 {
                    let p = NodeId::new(i * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                    if p.index() < len && !sum.alone(p) {
                        sum.step(p, gain)?;
                    }
                }
            }
        }
        sum.settle_own(
            len,
            |p| crate::bits::bit(&g.reach_now, p),
            |p| crate::bits::bit(&g.reach_was, p),
        )?;
        let peers = sum.peers;
        debug_assert_eq!(
            Some(peers),
            self.patched_peers(old, id, bases, before),
            "a peers' part patched by its group differs from one patched alone"
        );
        Some(peers)
    }

    /// [`Compiled::patched_peers`] from the peers node `id` gained and lost through its
    /// sets' reaches (`flips`, [`crate::peers::PeerIndex::flips`]), without building either
    /// side's peers: O(the peers it gained and lost + compared groups), where a node's two
    /// peer bit sets are 12.5 KB each on `large`. Its owner's devices that `autogroup:self`
    /// pairs with it, and itself, are looked at alone (a device is in a side's peers when
    /// paired so or in the side's reach, a test per set). `None` when the flips disagree.
    pub(crate) fn patched_peers_flipped(
        &self,
        old: &Compiled,
        id: NodeId,
        bases: &[[u64; 4]],
        before: u64,
        flips: &crate::peers::Flips,
    ) -> Option<u64> {
        let len = self.table.len();
        if len != old.table.len() {
            return None;
        }
        let pairs = flips.of(id, len)?;
        // Every device `autogroup:self` pairs with it, whatever the reach.
        let mut sum = PeerSum::new(
            (self, id, bases, before),
            self.peers.own_peers(&self.table, id, &[]),
            old.peers.own_peers(&old.table, id, &[]),
        );
        for (p, gained) in pairs {
            if !sum.alone(p) {
                sum.step(p, gained)?;
            }
        }
        if sum.has_own() {
            let (now_sets, was_sets) = (self.peers.member_of(id), old.peers.member_of(id));
            sum.settle_own(
                len,
                |p| self.peers.reaches(&now_sets, p),
                |p| old.peers.reaches(&was_sets, p),
            )?;
        }
        let peers = sum.peers;
        debug_assert_eq!(
            Some(peers),
            self.patched_peers(old, id, bases, before),
            "a peers' part patched from the flips differs from one patched alone"
        );
        Some(peers)
    }

    /// The names of the servers of the routes that hold an address of `set` (sorted, each
    /// once).
    pub(crate) fn servers_over(&self, set: &crate::addrset::AddrSet) -> Vec<Text> {
        let mut out: Vec<Text> = routes_over(&self.routes, set)
            .flat_map(|entry| entry.servers.iter())
            .filter_map(|&s| self.table.get(s).map(|n| n.name.clone()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The servers of every subnet route the nodes `names` serve, by name (the nodes
    /// included), sorted. Each distinct route's servers are listed once: the hosts of one
    /// Service all serve its addresses, and listing each host's routes' servers was
    /// O(hosts²).
    pub(crate) fn route_servers(&self, names: &[&Text]) -> Vec<Text> {
        let nodes: Vec<&crate::nodes::NodeInfo> = names
            .iter()
            .filter_map(|name| self.table.id(name).and_then(|id| self.table.get(id)))
            .collect();
        let mut routes: Vec<&ipnet::IpNet> = nodes.iter().flat_map(|n| &n.subnet_routes).collect();
        routes.sort_unstable();
        routes.dedup();
        let mut out: Vec<Text> = routes
            .into_iter()
            .filter_map(|net| self.routes.get(net))
            .flat_map(|(_, entry)| entry.servers.iter())
            .filter_map(|&s| self.table.get(s).map(|n| n.name.clone()))
            .chain(nodes.iter().map(|n| n.name.clone()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// [`PeerBases`] of every node, by node id.
    pub(crate) fn peer_bases(&self) -> PeerBases {
        self.table
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| self.base_of(NodeId::new(i), node))
            .collect()
    }

    /// The fingerprint of node `name` (`bases`: each node's [`PeerBases`] entry in this
    /// compile).
    ///
    /// The peers' part is a sum of one hash per peer (its name and wire form), so it does not
    /// depend on node ids (which shift when nodes join or leave) and costs one addition per
    /// peer; routers, whose routes depend on the viewer, are hashed one by one.
    pub(crate) fn fingerprint(
        &self,
        name: &str,
        bases: &[[u64; 4]],
        cache: &mut HashCache,
    ) -> Option<Fingerprint> {
        self.fingerprint_parts(name, bases, cache, true)
    }

    /// [`Compiled::fingerprint`], the filter part left 0 (not computed) unless `filter`.
    pub(crate) fn fingerprint_parts(
        &self,
        name: &str,
        bases: &[[u64; 4]],
        cache: &mut HashCache,
        filter: bool,
    ) -> Option<Fingerprint> {
        let view = self.view(name, false)?;
        let column = usize::from(self.families_missing(view.id));
        let peers = self.routers_carried(
            view.id,
            column,
            bases,
            peer_sum(&view.peers, bases, column),
            |r| crate::bits::bit(&view.peers, r),
            None,
        );
        Some(self.print_of(&view, cache, filter, peers))
    }

    /// The fingerprints of `nodes` (node ids with their names), which all hold the peer sets
    /// `sets` ([`crate::peers::PeerIndex::member_of`]), as [`Compiled::fingerprint`] gives them:
    /// the peers they share are found once and summed once per family column (nodes of one
    /// group differ only by their own devices and themselves), not once per node. On
    /// `large`, 100,000 nodes hold 17,545 distinct lists of sets.
    pub(crate) fn fingerprints_sharing(
        &self,
        sets: &[u32],
        nodes: &[(NodeId, &Text)],
        bases: &[[u64; 4]],
        routers: &RouterRoutes,
        cache: &mut HashCache,
    ) -> Vec<(NodeId, Fingerprint)> {
        let reach = self.peers.reach_of(sets);
        let mut sums: [Option<u64>; 4] = [None; 4];
        let mut out = Vec::with_capacity(nodes.len());
        for &(v, name) in nodes {
            let Some(view) = self.view_with(name, false, false) else {
                continue;
            };
            let viewer = view.id;
            let column = usize::from(self.families_missing(viewer));
            let base = |p: NodeId| base_at(bases, p, column);
            let shared = match sums.get_mut(column) {
                Some(slot) => *slot.get_or_insert_with(|| peer_sum(&reach, bases, column)),
                None => peer_sum(&reach, bases, column),
            };
            let mut own = self.peers.own_peers(&self.table, viewer, &reach);
            own.sort_unstable();
            let mut peers = own.iter().fold(shared, |sum, &m| sum.wrapping_add(base(m)));
            if crate::bits::bit(&reach, viewer) {
                peers = peers.wrapping_sub(base(viewer));
            }
            let is_peer = |r: NodeId| {
                r != viewer && (crate::bits::bit(&reach, r) || own.binary_search(&r).is_ok())
            };
            let peers = self.routers_carried(viewer, column, bases, peers, is_peer, Some(routers));
            let print = self.print_of(&view, cache, true, peers);
            debug_assert_eq!(
                Some(print),
                self.fingerprint(name, bases, cache),
                "a fingerprint from its group's shared peers differs from one made alone"
            );
            out.push((v, print));
        }
        out
    }

    /// The peers' part `sum` (each peer's base in `column`) with each router among the
    /// viewer's peers (`is_peer`) that carries routes for it moved to its entry with them;
    /// the routers' routes looked up in the route table unless `numbered` has them.
    fn routers_carried(
        &self,
        viewer: NodeId,
        column: usize,
        bases: &[[u64; 4]],
        mut sum: u64,
        is_peer: impl Fn(NodeId) -> bool,
        numbered: Option<&RouterRoutes>,
    ) -> u64 {
        let mut carry = |carried: Option<u64>, base: u64| {
            if let Some(carried) = carried {
                sum = sum.wrapping_sub(base).wrapping_add(carried);
            }
        };
        match numbered {
            Some(RouterRoutes(routers)) => {
                for (r, routes) in routers {
                    if is_peer(*r) {
                        let base = base_at(bases, *r, column);
                        let routes = routes.iter().map(|(i, net)| (*i, net));
                        carry(self.carried_of(viewer, *r, base, routes), base);
                    }
                }
            }
            None => {
                for &r in &self.table.routers {
                    if is_peer(r) {
                        let base = base_at(bases, r, column);
                        carry(self.carried(viewer, r, base), base);
                    }
                }
            }
        }
        sum
    }

    /// A fingerprint from `view`'s other parts and its peers' part `peers`.
    fn print_of(
        &self,
        view: &super::NodeView<'_>,
        cache: &mut HashCache,
        filter: bool,
        peers: u64,
    ) -> Fingerprint {
        Fingerprint {
            filter: match filter {
                true => self.filter_print(view.id, cache),
                false => 0,
            },
            ssh: ssh_hash(&self.ssh, &self.table, view.id),
            peers,
            caps: json_hash(&view.cap_map()),
            own: json_hash(&view.own_wire()),
        }
    }
}

/// Each router (of [`NodeTable::routers`], in order) with its served routes and their
/// numbers in the route table: found once for many viewers' fingerprints, where
/// [`Compiled::carried`] looks each route up per viewer.
pub(crate) struct RouterRoutes(Vec<(NodeId, Vec<(usize, IpNet)>)>);

/// Node `p`'s base ([`PeerBases`]) in `column`, 0 past the table.
fn base_at(bases: &[[u64; 4]], p: NodeId, column: usize) -> u64 {
    bases
        .get(p.index())
        .and_then(|b| b.get(column))
        .copied()
        .unwrap_or(0)
}

/// The sum of the bases in `column` of the nodes in `bits` (one bit per node id; bits past
/// the table add nothing): one addition per peer, tens of thousands per node on `large`,
/// indexed directly.
fn peer_sum(bits: &[u64], bases: &[[u64; 4]], column: usize) -> u64 {
    let mut sum: u64 = 0;
    for (word, chunk) in bits.iter().zip(bases.chunks(64)) {
        let mut w = *word;
        while w != 0 {
            let b = w.trailing_zeros() as usize;
            w &= w - 1;
            let entry = chunk.get(b).and_then(|e| e.get(column)).copied();
            sum = sum.wrapping_add(entry.unwrap_or(0));
        }
    }
    sum
}

/// What [`Compiled::patched_peers_grouped`] finds once for the nodes holding the same peer
/// sets in two compiles: the sets, their reaches and the words where the reaches differ
/// (word index, bits gained, bits lost).
pub(crate) struct PeerGroup {
    now_sets: Vec<u32>,
    was_sets: Vec<u32>,
    reach_now: Vec<u64>,
    reach_was: Vec<u64>,
    diffs: Vec<(usize, u64, u64)>,
}

/// A node's peers' part patched peer by peer ([`Compiled::patched_peers_grouped`],
/// [`Compiled::patched_peers_flipped`]): the sum so far, and the node's own devices that
/// `autogroup:self` pairs with it on each side (sorted), which with the node itself are
/// looked at alone, as their place in its peers does not follow the sets' reaches.
struct PeerSum<'c> {
    compiled: &'c Compiled,
    id: NodeId,
    bases: &'c [[u64; 4]],
    own_now: Vec<NodeId>,
    own_was: Vec<NodeId>,
    peers: u64,
}

impl<'c> PeerSum<'c> {
    /// The sum starting at `before`, the node's part in the earlier snapshot.
    fn new(
        (compiled, id, bases, before): (&'c Compiled, NodeId, &'c [[u64; 4]], u64),
        mut own_now: Vec<NodeId>,
        mut own_was: Vec<NodeId>,
    ) -> Self {
        own_now.sort_unstable();
        own_was.sort_unstable();
        PeerSum {
            compiled,
            id,
            bases,
            own_now,
            own_was,
            peers: before,
        }
    }

    /// Peer `p` is the node or one of its own devices.
    #[inline]
    fn alone(&self, p: NodeId) -> bool {
        p == self.id
            || self.own_now.binary_search(&p).is_ok()
            || self.own_was.binary_search(&p).is_ok()
    }

    /// Peer `p`'s entry added (gained) or taken out (lost).
    #[inline]
    fn step(&mut self, p: NodeId, gained: bool) -> Option<()> {
        let base = self.bases.get(p.index())?;
        let e = self.compiled.entry_in(self.id, p, base);
        self.peers = match gained {
            true => self.peers.wrapping_add(e),
            false => self.peers.wrapping_sub(e),
        };
        Some(())
    }

    /// The node has own devices on either side.
    fn has_own(&self) -> bool {
        !(self.own_now.is_empty() && self.own_was.is_empty())
    }

    /// Each own device once (among the first `len` nodes): in a side's peers when paired
    /// there or in that side's reach (`reach_now`, `reach_was`), stepped when the sides differ.
    fn settle_own(
        &mut self,
        len: usize,
        reach_now: impl Fn(NodeId) -> bool,
        reach_was: impl Fn(NodeId) -> bool,
    ) -> Option<()> {
        let mut own: Vec<NodeId> = self.own_now.iter().chain(&self.own_was).copied().collect();
        own.sort_unstable();
        own.dedup();
        let id = self.id;
        for p in own.into_iter().filter(|&p| p != id && p.index() < len) {
            let now = self.own_now.binary_search(&p).is_ok() || reach_now(p);
            let was = self.own_was.binary_search(&p).is_ok() || reach_was(p);
            if now != was {
                self.step(p, now)?;
            }
        }
        Some(())
    }
}
