//! The lowering's walk over `grants` and `acls`: each rule's sources resolved and interned
//! once per distinct list, each destination's nodes found once, and the rule items pushed in
//! policy order.

use super::*;
use crate::Text;

pub(super) struct Builder<'a> {
    /// An earlier lowering whose source lists may be reused.
    pub(super) reuse: Option<Reuse<'a>>,
    pub(super) policy: &'a Policy,
    pub(super) resolver: Resolver<'a>,
    /// Which devices pass which posture gates.
    pub(super) gates: Gates<'a>,
    pub(super) table: &'a NodeTable,
    pub(super) lowered: Lowered,
    /// Each destination's nodes, per `via` list: resolved once however many rules name it.
    /// Keyed by the resolved target's identity ([`target_key`]; the resolver hands out one
    /// target per alias), which the entry keeps alive so that no other target takes its
    /// address: the alias was copied and hashed for every destination of every rule.
    pub(super) dst_cache: crate::hash::Map<(usize, Option<Via>), (Target, Reach)>,
    /// Rule entries emitted so far.
    pub(super) budget: Budget,
    /// Items made so far ([`CompileLimits::max_rule_items`]).
    pub(super) items_budget: Budget,
    /// The most `DstPorts` entries (and `CapGrant` destinations) the items so far may put in
    /// one node's filter, summed ([`Lowered::node_entries_bound`]); at most one node's
    /// addresses (`max_texts`) per node destination.
    pub(super) filter_bound: u64,
    pub(super) max_texts: usize,
    /// The rule being lowered (what a budget error points at).
    pub(super) span: Span,
    /// Each item's nodes (those not on every node), indexed per node once lowering ends.
    pub(super) reaches: Vec<(u32, Arc<[NodeId]>)>,
    /// The source lists requested so far, by key, when they are not found by place.
    pub(super) own: SourceMap,
    /// Where the items' lists go to have their peer sets prepared while lowering goes on
    /// ([`crate::peers::prepared_beside`]).
    pub(super) lists: Option<crate::peers::Lists<'a>>,
}

/// A grant's `via` tags.
pub(super) type Via = Arc<[Text]>;

/// A rule's sources as written and its posture gate: rules with equal keys share targets.
/// Shared with the lowerings that take it from an earlier one, not copied.
pub(super) type SourceKey = Arc<(Vec<Alias>, Option<Gate>)>;

/// The source lists of a lowering, with each one's first request ([`Lowered::calls`]),
/// looked up by [`KeyRef`] (hashbrown's map: std's takes no borrowed form of a tuple).
pub(super) type SourceMap = hashbrown::HashMap<SourceKey, (Sources, u32), crate::hash::BuildHash>;

/// A source list as a rule writes it, looked up without copying its aliases: it hashes as
/// its [`SourceKey`] does. Copying every rule's aliases to look it up, then hashing them
/// three times (in this lowering, and twice in the earlier one), was a tenth of a member's
/// join on `large`.
pub(super) struct KeyRef<'a> {
    pub(super) selectors: &'a [Selector],
    pub(super) gate: Option<&'a Gate>,
}

impl std::hash::Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `(Vec<Alias>, Option<Gate>)` hashes: a slice writes its length, then each
        // element; an `Option` of a reference hashes as the `Option` of the value.
        state.write_usize(self.selectors.len());
        for selector in self.selectors {
            selector.alias.hash(state);
        }
        self.gate.hash(state);
    }
}

impl hashbrown::Equivalent<SourceKey> for KeyRef<'_> {
    fn equivalent(&self, key: &SourceKey) -> bool {
        let (aliases, gate) = &**key;
        aliases.len() == self.selectors.len()
            && aliases
                .iter()
                .zip(self.selectors)
                .all(|(alias, selector)| *alias == selector.alias)
            && gate.as_ref() == self.gate
    }
}

impl Builder<'_> {
    /// Resolve a source list, keep only what passes the rule's posture gate (if any), and
    /// intern its `SrcIPs`. Everything downstream (`SrcIPs`, `autogroup:self` narrowing,
    /// companion rules, peers) reads these targets, so a gated rule is gated everywhere.
    pub(super) fn sources(
        &mut self,
        selectors: &[Selector],
        gate: Option<Gate>,
    ) -> Result<(Arc<[Target]>, u32), CompileError> {
        let probe = KeyRef {
            selectors,
            gate: gate.as_ref(),
        };
        let place = self.lowered.calls.len();
        // The same policy: the earlier lowering's request at this place is this one.
        let by_place = self
            .reuse
            .as_ref()
            .filter(|r| r.by_place)
            .and_then(|r| r.prior.lowered.calls.get(place));
        debug_assert!(
            by_place.is_none_or(|c| hashbrown::Equivalent::equivalent(&probe, &c.key)),
            "a request found by place is for another list"
        );
        // A list requested earlier in this lowering: its entry, shared.
        let first = match by_place {
            Some(c) => (c.first as usize != place).then_some(c.first),
            None => self.own.get(&probe).map(|(_, first)| *first),
        };
        if let Some(first) = first {
            let c = self.lowered.calls.get(first as usize);
            if let Some((key, entry)) = c.map(|c| (c.key.clone(), c.entry.clone())) {
                let (targets, id) = (entry.0.clone(), entry.1);
                self.lowered.calls.push(Call { key, entry, first });
                return Ok((targets, id));
            }
        }
        // The earlier lowering's entry for the same list, and its key (taken, not copied).
        let earlier: Option<(&SourceKey, &Sources)> = match by_place {
            Some(c) => Some((&c.key, &c.entry)),
            None => self
                .reuse
                .as_ref()
                .map(|r| r.prior.lowered)
                .and_then(|lowered| lowered.sources_map().get_key_value(&probe))
                .map(|(key, (entry, _))| (key, entry)),
        };
        let resolved: Vec<Target> = selectors.iter().map(|s| self.resolver.resolve(s)).collect();
        let targets: Arc<[Target]> = match &gate {
            None => Arc::from(resolved),
            Some(gate) => resolved
                .into_iter()
                .map(|target| self.gated(target, gate))
                .collect(),
        };
        let reused = match (&self.reuse, earlier) {
            (Some(r), Some((_, entry))) => r
                .same(entry, &targets)
                .map(|(old, spent)| (r.prior.lowered, old, spent)),
            _ => None,
        };
        let patched = match (&reused, &self.reuse, earlier) {
            (None, Some(r), Some((_, entry))) => r.patched(entry, &targets, self.table),
            _ => None,
        };
        #[cfg(debug_assertions)]
        if let Some((strings, _, spent)) = &patched {
            debug_assert_eq!(
                (strings.strings().to_vec(), *spent),
                self.strings_of(&targets),
                "a patched source list differs from one built"
            );
        }
        let (id, spent) = match (reused, patched) {
            (Some((earlier, old, spent)), _) => {
                self.budget.spend(spent, self.span)?;
                let id = self.lowered.srcs.intern_from(&earlier.srcs, old);
                match id {
                    Some(id) => (id, spent),
                    None => self.build_sources(&targets)?,
                }
            }
            (None, Some((strings, hash, spent))) => {
                self.budget.spend(spent, self.span)?;
                let id = match strings {
                    Made::Shared(strings) => self.lowered.srcs.intern_hashed(strings, hash),
                    Made::Gathered(strings) => self.lowered.srcs.intern_hashed(strings, hash),
                };
                (id, spent)
            }
            (None, None) => self.build_sources(&targets)?,
        };
        let key = match earlier {
            Some((key, _)) => key.clone(),
            None => Arc::new((selectors.iter().map(|s| s.alias.clone()).collect(), gate)),
        };
        let entry = (targets.clone(), id, spent);
        let first = crate::nodes::index(place);
        if by_place.is_none() {
            self.own.insert(key.clone(), (entry.clone(), first));
        }
        self.lowered.calls.push(Call { key, entry, first });
        Ok((targets, id))
    }

    /// Build and intern the `SrcIPs` of `targets`, charged to the budget: their id and cost.
    pub(super) fn build_sources(
        &mut self,
        targets: &[Target],
    ) -> Result<(u32, usize), CompileError> {
        let (strings, spent) = self.strings_of(targets);
        self.budget.spend(spent, self.span)?;
        Ok((self.lowered.srcs.intern_sorted(strings), spent))
    }

    /// A source target narrowed to the devices that pass `gate` (kb/1288: a posture is a
    /// property of a device). `*` and `autogroup:danger-all` become the passing devices;
    /// address-only sources have no device, hence no posture, and fail (fail closed).
    pub(super) fn gated(&mut self, target: Target, gate: &Gate) -> Target {
        match target {
            Target::Wildcard | Target::DangerAll => Target::nodes(self.gates.all(gate)),
            Target::Nodes(ids) => Target::nodes(self.gates.filter(gate, ids.iter().copied())),
            Target::Literal(_) => Target::empty(),
            Target::Internet | Target::SelfDevices => target,
        }
    }

    /// The wire strings of targets used as sources, sorted and de-duplicated, and how many
    /// strings the targets name before de-duplication (the work spent). Node addresses are
    /// sorted by their ranks in the table ([`NodeTable::texts`]), the few other strings by
    /// content, and the two merged.
    pub(super) fn strings_of(&self, targets: &[Target]) -> (Vec<Text>, usize) {
        // `autogroup:danger-all` covers every address; nothing else is listed beside it.
        if targets.iter().any(|t| matches!(t, Target::DangerAll)) {
            return (vec![Text::from("*")], 1);
        }
        let mut ranks: Vec<u32> = Vec::new();
        let mut others: Vec<Text> = Vec::new();
        for target in targets {
            match target {
                Target::Wildcard => others.extend(self.lowered.star.iter().cloned()),
                Target::DangerAll => {}
                Target::Nodes(ids) => {
                    for &id in ids.iter() {
                        ranks.extend(self.table.text_ranks(id).iter().copied());
                    }
                }
                Target::Literal(lit) => others.extend(lit.pieces.iter().map(|p| p.text.clone())),
                Target::Internet | Target::SelfDevices => {}
            }
        }
        let spent = ranks.len() + others.len();
        ranks.sort_unstable();
        ranks.dedup();
        others.sort_unstable();
        let texts = ranks.iter().filter_map(|&r| self.table.text_at(r).cloned());
        let mut out = Vec::with_capacity(ranks.len() + others.len());
        let mut others = others.into_iter().peekable();
        for text in texts {
            while let Some(other) = others.next_if(|o| *o < text) {
                out.push(other);
            }
            out.push(text);
        }
        out.extend(others);
        // A literal equal to a node's address sorts beside it.
        out.dedup();
        (out, spent)
    }

    pub(super) fn grant(&mut self, grant: &aclc_policy::model::Grant) -> Result<(), CompileError> {
        if grant.src.is_empty() || grant.dst.is_empty() {
            return Ok(());
        }
        let gate = gate_of(self.policy, &grant.src_posture);
        let gated = gate.is_some();
        let (src_targets, src) = self.sources(&grant.src, gate)?;
        // A posture-gated grant that no source device passes grants nothing (not even an
        // app capability with empty `SrcIPs`).
        if gated && self.lowered.srcs.slice(src).is_empty() {
            return Ok(());
        }
        let via: Option<Via> = (!grant.via.is_empty()).then(|| {
            grant
                .via
                .iter()
                .map(|v| Text::from(v.text.as_str()))
                .collect()
        });
        // Its network items (a destination with an `ip` entry each), refused before any is
        // made when they are more than the budget left: 6,000 x 6,000 of them held 7 GB.
        let pairs = grant.dst.len().saturating_mul(grant.ip.len());
        self.items_budget.ensure(pairs, self.span)?;
        // Each destination resolved, and its nodes found, once for every `ip` entry.
        let mut others: Vec<(Target, Reach)> = Vec::new();
        let mut has_self = false;
        for dst in &grant.dst {
            match self.resolver.resolve(dst) {
                // A user's own devices are reached directly, never through a `via` router:
                // such a grant gives them nothing (`aclc::via_self_unrouted`). Without this,
                // the self items ignored `via` and opened every device to its owner's others.
                Target::SelfDevices if via.is_some() => {}
                Target::SelfDevices => has_self = true,
                target => {
                    let reach = self.dst_reach(&target, via.as_ref());
                    others.push((target, reach));
                }
            }
        }
        for ip in &grant.ip {
            let proto = ip.value.proto.map(|p| p.0);
            for (dst, reach) in &others {
                self.push_net(
                    &src_targets,
                    src,
                    via.clone(),
                    proto,
                    dst.clone(),
                    reach.clone(),
                    &[ip.value.ports],
                )?;
            }
            if has_self {
                self.push_self_net(&src_targets, src, proto, &[ip.value.ports])?;
            }
        }
        if grant.app.is_empty() {
            return Ok(());
        }
        let caps: CapMap = grant
            .app
            .iter()
            .map(|c| (c.name.value.clone(), c.values.value.clone()))
            .collect();
        // The Kubernetes operator's recorders, as addresses ([`crate::kube`]).
        let caps = Arc::new(crate::kube::with_recorders(&caps, self.table).unwrap_or(caps));
        let dst_nodes = union_reach(others.iter().map(|(_, reach)| reach.clone()));
        let dsts: Arc<[Target]> = others.into_iter().map(|(target, _)| target).collect();
        if via.is_some() {
            // Application grants routed through `via` produce no filter rules, but they still
            // make their sources and routers peers: the item is kept, on no node.
            let body = Body::App { dsts, caps };
            return self.push(src_targets, src, via, body, Reach::none(), dst_nodes);
        }
        let companions: Vec<Arc<CapMap>> = COMPANIONS
            .iter()
            .filter(|(name, _)| caps.contains_key(*name))
            .map(|(_, companion)| {
                Arc::new(CapMap::from([(
                    companion.to_string(),
                    serde_json::Value::Null,
                )]))
            })
            .collect();
        if !dsts.is_empty() {
            let body = Body::App {
                dsts: dsts.clone(),
                caps: caps.clone(),
            };
            self.push(
                src_targets.clone(),
                src,
                None,
                body,
                dst_nodes.clone(),
                dst_nodes,
            )?;
            if !companions.is_empty() {
                let (reversed, spent) = self.strings_of(&dsts);
                self.budget.spend(spent, self.span)?;
                let src_ips = self.lowered.srcs.intern_sorted(reversed);
                let reach = union_reach(src_targets.iter().map(|t| self.src_reach(t)));
                for caps in &companions {
                    let body = Body::Companion {
                        caps: caps.clone(),
                        src_ips,
                    };
                    self.push(
                        src_targets.clone(),
                        src,
                        None,
                        body,
                        reach.clone(),
                        Reach::none(),
                    )?;
                }
            }
        }
        if has_self {
            self.push_self(src_targets.clone(), src, Body::SelfApp { caps })?;
            for caps in companions {
                self.push_self(src_targets.clone(), src, Body::SelfCompanion { caps })?;
            }
        }
        Ok(())
    }

    pub(super) fn acl(&mut self, acl: &aclc_policy::model::Acl) -> Result<(), CompileError> {
        let gate = gate_of(self.policy, &acl.src_posture);
        let (src_targets, src) = self.sources(&acl.src, gate)?;
        let proto = acl.proto.as_ref().map(|p| p.value.0);
        // Observed ordering: an ACL naming anything but autogroups lists its `autogroup:self`
        // destinations after the others; an all-autogroup ACL keeps the written order.
        let is_self = |d: &&aclc_policy::model::AclDestination| {
            d.target.alias == Alias::Autogroup(Autogroup::SelfDevices)
        };
        let reorder = acl
            .dst
            .iter()
            .any(|d| !matches!(d.target.alias, Alias::Autogroup(_)));
        let ordered: Vec<&aclc_policy::model::AclDestination> = if reorder {
            let (selfs, others): (Vec<_>, Vec<_>) = acl.dst.iter().partition(is_self);
            others.into_iter().chain(selfs).collect()
        } else {
            acl.dst.iter().collect()
        };
        for dst in ordered {
            match self.resolver.resolve(&dst.target) {
                Target::SelfDevices => {
                    self.push_self_net(&src_targets, src, proto, &dst.ports)?;
                }
                target => {
                    let reach = self.dst_reach(&target, None);
                    self.push_net(&src_targets, src, None, proto, target, reach, &dst.ports)?;
                }
            }
        }
        Ok(())
    }

    /// Every SSH rule's [`Builder::recorder_access`], each at its `recorder` field. Rules with
    /// the same servers and recorders (a `check` and an `accept` rule for the same hosts, say)
    /// give that access once.
    pub(super) fn recorder_accesses(
        &mut self,
        rules: &[aclc_policy::model::SshRule],
    ) -> Result<(), CompileError> {
        let texts = |list: &[Selector]| {
            let mut texts: Vec<String> = list.iter().map(|s| s.text.clone()).collect();
            texts.sort_unstable();
            texts.dedup();
            texts
        };
        let mut recorded: crate::hash::Set<(Vec<String>, Vec<String>)> = Default::default();
        for rule in rules {
            let Some(first) = rule.recorder.first() else {
                continue;
            };
            let servers = recording_servers(rule);
            if recorded.insert((texts(&servers), texts(&rule.recorder))) {
                self.span = first.span;
                self.recorder_access(&servers, &rule.recorder)?;
            }
        }
        Ok(())
    }

    /// The access an SSH rule's session recording needs: its SSH servers (the rule's
    /// destinations; for `autogroup:self`, and `autogroup:member` read as it, the devices of
    /// its user-like sources) reach each recorder device on TCP port 80, where they send the
    /// recordings. Tailscale's session-recording page: "Tailscale will automatically ensure
    /// that traffic is permitted between Tailscale SSH servers and the recorder nodes to which
    /// they send sessions. You don't need to make any changes in access control policies to
    /// allow this." Lowered as a network rule from those servers to the recorders (so the
    /// recorders' filters admit them and the two become peers); the wire form Tailscale
    /// gives it is not captured. `servers` are [`recording_servers`].
    pub(super) fn recorder_access(
        &mut self,
        servers: &[Selector],
        recorders: &[Selector],
    ) -> Result<(), CompileError> {
        let (src_targets, src) = self.sources(servers, None)?;
        // TCP (IANA protocol 6): the recordings go over HTTP.
        const TCP: u8 = 6;
        let port = crate::ssh::RECORDER_PORT;
        let ports = [PortRange {
            first: port,
            last: port,
        }];
        for recorder in recorders {
            let target = match self.resolver.resolve(recorder) {
                target @ Target::Nodes(_) => target,
                _ => continue,
            };
            let reach = self.dst_reach(&target, None);
            self.push_net(&src_targets, src, None, Some(TCP), target, reach, &ports)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_net(
        &mut self,
        src_targets: &Arc<[Target]>,
        src: u32,
        via: Option<Via>,
        proto: Option<u8>,
        dst: Target,
        reach: Reach,
        ports: &[PortRange],
    ) -> Result<(), CompileError> {
        // A network rule whose sources resolve to nothing allows nothing, but keeps its item
        // (vacant: no filter entry, no peer, [`Lowered::is_vacant`]), so that the items'
        // numbers do not shift when a rule's only source device leaves or joins: such a node
        // event then patches the per-node index like any other, where renumbering it copied
        // all of it (92 MB and half the event on `large`).
        let body = Body::Net {
            proto,
            dst,
            ports: self.ports_like_prior(ports),
        };
        self.push(src_targets.clone(), src, via, body, reach.clone(), reach)
    }

    pub(super) fn push_self_net(
        &mut self,
        src_targets: &Arc<[Target]>,
        src: u32,
        proto: Option<u8>,
        ports: &[PortRange],
    ) -> Result<(), CompileError> {
        let body = Body::SelfNet {
            proto,
            ports: self.ports_like_prior(ports),
        };
        self.push_self(src_targets.clone(), src, body)
    }

    /// The wire ports of the item about to be pushed: the earlier lowering's item at the same
    /// place shares its list when it holds the same ports (on a node event, every item's; an
    /// allocation per item saved, and one free of the earlier snapshot's).
    fn ports_like_prior(&self, ports: &[PortRange]) -> Arc<[Ports]> {
        let earlier = self.reuse.as_ref().and_then(|r| {
            match &r.prior.lowered.items.get(self.lowered.items.len())?.body {
                Body::Net { ports, .. } | Body::SelfNet { ports, .. } => Some(ports),
                _ => None,
            }
        });
        match earlier {
            Some(old)
                if old.len() == ports.len()
                    && old
                        .iter()
                        .zip(ports)
                        .all(|(o, p)| (o.first, o.last) == (p.first, p.last)) =>
            {
                old.clone()
            }
            _ => wire_ports(ports),
        }
    }

    /// Charge one more item, of `body`, to the item budget and the filter-entry bound: every
    /// item, plain or `autogroup:self` (a self item uncharged let four 16 MB grants to
    /// `autogroup:self` make 4 million items and 8 million entries per device).
    fn charge_item(&mut self, body: &Body, src_targets: &[Target]) -> Result<(), CompileError> {
        self.items_budget.spend(1, self.span)?;
        self.filter_bound = self
            .filter_bound
            .saturating_add(
                self.lowered
                    .node_entries_bound(body, src_targets, self.max_texts),
            );
        Ok(())
    }

    pub(super) fn push_self(
        &mut self,
        src_targets: Arc<[Target]>,
        src: u32,
        body: Body,
    ) -> Result<(), CompileError> {
        // A self item may reach every untagged node.
        self.budget
            .spend(self.table.untagged.len().max(1), self.span)?;
        self.charge_item(&body, &src_targets)?;
        let i = crate::nodes::index(self.lowered.items.len());
        self.lowered.self_items.push(i);
        self.lowered.items.push(Item {
            src_targets,
            src,
            via: None,
            body,
            slot: i,
            dst_nodes: Reach::none(),
            origin: self.span.start,
        });
        Ok(())
    }

    pub(super) fn push(
        &mut self,
        src_targets: Arc<[Target]>,
        src: u32,
        via: Option<Via>,
        body: Body,
        reach: Reach,
        dst_nodes: Reach,
    ) -> Result<(), CompileError> {
        self.budget
            .spend(reach.count(self.table).max(1), self.span)?;
        self.charge_item(&body, &src_targets)?;
        let lowered = &mut self.lowered;
        let i = crate::nodes::index(lowered.items.len());
        // `via` items count for merging only on the routers they apply to (per node).
        let slot = match &body {
            Body::Net { proto, .. } if via.is_none() => {
                *lowered.first_slot.entry((src, *proto)).or_insert(i)
            }
            Body::Net { .. } => {
                lowered.via_items.push(i);
                i
            }
            _ => i,
        };
        match &reach {
            Reach::All => lowered.global.push(i),
            Reach::Some(ids) => self.reaches.push((i, ids.clone())),
        }
        let item = Item {
            src_targets,
            src,
            via,
            body,
            slot,
            dst_nodes,
            origin: self.span.start,
        };
        if let Some(lists) = self.lists.as_mut().filter(|_| !lowered.is_vacant(&item)) {
            lists.item(&item.src_targets, &item.body, &item.dst_nodes);
        }
        lowered.items.push(item);
        Ok(())
    }

    /// The nodes a destination (resolved to `target`) may put a rule on, narrowed to the
    /// routers carrying a `via` tag: computed once per (target, via) per compile.
    pub(super) fn dst_reach(&mut self, target: &Target, via: Option<&Via>) -> Reach {
        let key = (target_key(target), via.cloned());
        if let Some((_, hit)) = self.dst_cache.get(&key) {
            #[cfg(debug_assertions)]
            {
                let again = self.compute_dst_reach(target, via.map(|v| &v[..]));
                debug_assert!(
                    match (hit, &again) {
                        (Reach::All, Reach::All) => true,
                        (Reach::Some(a), Reach::Some(b)) => a == b,
                        _ => false,
                    },
                    "a cached reach differs from the one computed again"
                );
            }
            return hit.clone();
        }
        let reach = self.compute_dst_reach(target, via.map(|v| &v[..]));
        self.dst_cache.insert(key, (target.clone(), reach.clone()));
        reach
    }

    pub(super) fn compute_dst_reach(&self, target: &Target, via: Option<&[Text]>) -> Reach {
        if let Some(tags) = via {
            return Reach::Some(Arc::from(self.carriers(target, tags)));
        }
        let ids: Vec<NodeId> = match target {
            Target::Wildcard | Target::DangerAll => return Reach::All,
            // The target's own list, shared (copying it was a tenth of a node event's
            // lowering on `large`).
            Target::Nodes(ids) => return Reach::Some(ids.clone()),
            Target::Internet => self.table.exits.clone(),
            Target::Literal(lit) => self.table.destination_nodes(&lit.set, &lit.public_part()),
            Target::SelfDevices => Vec::new(),
        };
        Reach::Some(Arc::from(ids))
    }

    /// The nodes a `via` rule to `target` lands on: those carrying one of `tags` that serve
    /// a route (subnet or exit) overlapping the destination, sorted. A router carries what
    /// its approved routes reach, not its own addresses: traffic to a device's own address
    /// (a tag, a tailnet prefix holding the carrier) is not routed; the carrier's own
    /// addresses in the destination opened the router itself (found by a hostile sweep), as
    /// did `*` on a carrier serving no route. The routers a destination's routes reach are
    /// found through the route index, not by testing each carrier's routes (every router
    /// of `large` tested against 200 `via` destinations was a tenth of a retag's lowering).
    pub(super) fn carriers(&self, target: &Target, tags: &[Text]) -> Vec<NodeId> {
        let table = self.table;
        let serving: Vec<NodeId> = match target {
            Target::Wildcard | Target::DangerAll => {
                crate::peers::merge_unique(&table.routers, &table.exits)
            }
            Target::Internet => table.exits.clone(),
            Target::Literal(lit) => {
                let mut out = table.routers_over(&lit.set);
                let public = lit.public_part();
                if !public.is_empty() {
                    let before = out.len();
                    out.extend(
                        table
                            .exits
                            .iter()
                            .copied()
                            .filter(|&id| table.get(id).is_some_and(|n| n.exits_for(&public))),
                    );
                    if out.len() > before {
                        out.sort_unstable();
                        out.dedup();
                    }
                }
                out
            }
            Target::Nodes(_) | Target::SelfDevices => Vec::new(),
        };
        if serving.is_empty() {
            return serving;
        }
        let mut carriers = self.carrying(tags);
        carriers.retain(|id| serving.binary_search(id).is_ok());
        debug_assert_eq!(carriers, self.carriers_tested(target, tags));
        carriers
    }

    /// The nodes carrying one of `tags`, sorted, each once.
    fn carrying(&self, tags: &[Text]) -> Vec<NodeId> {
        let mut carriers: Vec<NodeId> = tags
            .iter()
            .flat_map(|t| self.table.with_tag(t).iter().copied())
            .collect();
        carriers.sort_unstable();
        carriers.dedup();
        carriers
    }

    /// [`Builder::carriers`] by testing each carrier's routes (the definition it is checked
    /// against in debug builds).
    fn carriers_tested(&self, target: &Target, tags: &[Text]) -> Vec<NodeId> {
        let table = self.table;
        let mut carriers = self.carrying(tags);
        let public = match target {
            Target::Literal(lit) => Some(lit.public_part()),
            _ => None,
        };
        carriers.retain(|&id| {
            let Some(node) = table.get(id) else {
                return false;
            };
            match target {
                Target::Wildcard | Target::DangerAll => !node.served.is_empty(),
                Target::Internet => node.exit,
                Target::Literal(lit) => {
                    node.routes_overlap(&lit.set)
                        || public.as_ref().is_some_and(|p| node.exits_for(p))
                }
                Target::Nodes(_) | Target::SelfDevices => false,
            }
        });
        carriers
    }

    /// The nodes a source target may narrow a companion rule to.
    pub(super) fn src_reach(&self, target: &Target) -> Reach {
        match target {
            Target::Wildcard | Target::DangerAll => Reach::All,
            Target::Nodes(ids) => Reach::Some(ids.clone()),
            Target::Literal(lit) => Reach::Some(Arc::from(self.table.source_nodes(&lit.set))),
            Target::Internet | Target::SelfDevices => Reach::none(),
        }
    }
}

/// A resolved target's identity within one lowering: its shared list's address, or its kind
/// for the targets that carry none (no allocation has an address below 4).
pub(super) fn target_key(target: &Target) -> usize {
    match target {
        Target::Wildcard => 0,
        Target::DangerAll => 1,
        Target::Internet => 2,
        Target::SelfDevices => 3,
        Target::Nodes(ids) => Arc::as_ptr(ids).cast::<NodeId>() as usize,
        Target::Literal(lit) => Arc::as_ptr(lit) as usize,
    }
}

/// Every node of some reaches, sorted.
pub(super) fn union_reach(parts: impl IntoIterator<Item = Reach>) -> Reach {
    let mut parts = parts.into_iter().peekable();
    let first = parts.next();
    // One part (a grant's single destination, most often) is its own union, shared.
    if parts.peek().is_none() {
        return first.unwrap_or_else(Reach::none);
    }
    let mut ids = Vec::new();
    for part in first.into_iter().chain(parts) {
        match part {
            Reach::All => return Reach::All,
            Reach::Some(more) => ids.extend_from_slice(&more),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Reach::Some(Arc::from(ids))
}

pub(super) fn wire_ports(ports: &[PortRange]) -> Arc<[Ports]> {
    ports
        .iter()
        .map(|p| Ports {
            first: p.first,
            last: p.last,
        })
        .collect()
}

/// The SSH servers of `rule` as selectors, for [`Builder::recorder_access`]: its
/// destinations, with `autogroup:self` (and `autogroup:member`, read as it) standing for the
/// devices of its user-like sources.
fn recording_servers(rule: &aclc_policy::model::SshRule) -> Vec<Selector> {
    let (own, mut servers): (Vec<&Selector>, Vec<&Selector>) = rule
        .dst
        .iter()
        .partition(|dst| crate::ssh::own_devices_only(&dst.alias));
    if !own.is_empty() {
        servers.extend(
            rule.src
                .iter()
                .filter(|s| !matches!(s.alias, Alias::Tag(_))),
        );
    }
    servers.into_iter().cloned().collect()
}
