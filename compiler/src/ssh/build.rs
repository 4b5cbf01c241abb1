//! Lowering the `ssh` rules: each rule's sources and destinations resolved once, its
//! principals and user map made once per distinct list, the per-node index built (or an
//! engine event's moved from the previous lowering).

use super::*;

impl SshLowered {
    /// Lower the `ssh` section against a node table. `control_url` is the base of check-mode
    /// links; `gates` decides which source devices pass the rules' posture gates.
    pub(crate) fn new(
        policy: &Policy,
        users: &[User],
        table: &NodeTable,
        control_url: &str,
        gates: &mut Gates<'_>,
        prior: Option<&SshPrior<'_>>,
    ) -> SshLowered {
        let mut lowered = SshLowered {
            rules: Arc::default(),
            by_node: crate::pernode::ItemIndex::empty(table.len()),
            global: Vec::new(),
            self_rules: Vec::new(),
            moved: None,
            moved_users: Vec::new(),
            labels: labels::Labels::fresh(0),
        };
        let Some(section) = &policy.ssh else {
            return lowered;
        };
        let mut resolver = Resolver::compiling(policy, table);
        // After an engine event that changed a few nodes: the earlier rules moved.
        let patch = prior.and_then(|p| patch::Patch::new(p, table, section.value.len()));
        let mut holds = patch::Holds::default();
        let mut moved = patch.as_ref().map(|_| Vec::new());
        // Users are walked in id order, as the control plane does; inventory order breaks ties.
        let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
        let user_key = |u: UserId| (ids.get(u.index()).copied().unwrap_or(u64::MAX), u);
        let logins: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
        let mut rules: Vec<LoweredRule> = Vec::with_capacity(section.value.len());
        let mut lists = Lists::default();
        // Rules with the same sources share one principal list.
        let mut shared: crate::hash::Map<Vec<(NodeId, usize)>, Arc<[SshPrincipal]>> =
            crate::hash::Map::default();
        // A moved rule's principals by its source list's address (lists are shared among
        // rules, [`Lists`]) and whether it counts tags: its counts depend on nothing else,
        // so rules sharing a moved list share its principals without listing, hashing and
        // comparing its counts again (4% of a retag on `large`). And whether an earlier
        // rule's principals equal a moved rule's, by the two lists' addresses. Every list
        // keyed is held until the lowering ends (by `rules` or by the earlier lowering), so
        // its address is not another's meanwhile.
        let mut by_list: crate::hash::Map<(usize, bool), Arc<[SshPrincipal]>> =
            crate::hash::Map::default();
        let mut alike_lists: crate::hash::Map<(usize, usize), bool> = crate::hash::Map::default();
        for (i, rule) in section.value.iter().enumerate() {
            let domains: Vec<String> = rule
                .users
                .iter()
                .filter_map(|u| match &u.value {
                    SshUser::Localpart { domain } => Some(domain.to_lowercase()),
                    _ => None,
                })
                .collect();
            let localpart = !domains.is_empty();
            let earlier = patch
                .as_ref()
                .and_then(|p| p.old.rules.get(i).map(|o| (p, o)));
            let Shape {
                dst,
                self_dst,
                sources,
                counts,
            } = match earlier {
                Some((p, o)) => {
                    let gate = gate_of(policy, &rule.src_posture);
                    let mut admits = |id: NodeId| {
                        rule.src
                            .iter()
                            .any(|s| holds.test(&mut resolver, table, s, id))
                            && gate.as_ref().is_none_or(|g| gates.admits(g, id))
                    };
                    let sources = lists.moved(p, &o.sources, &mut admits);
                    let dst = match &o.dst {
                        Destinations::Some(ids) => Destinations::Some(lists.moved(p, ids, |id| {
                            rule.dst
                                .iter()
                                .filter(|s| !own_devices_only(&s.alias))
                                .any(|s| holds.test(&mut resolver, table, s, id))
                        })),
                        Destinations::All => Destinations::All,
                        Destinations::None => Destinations::None,
                    };
                    Shape {
                        dst,
                        self_dst: o.self_dst,
                        sources,
                        counts: None,
                    }
                }
                None => Shape::resolved(
                    &mut resolver,
                    table,
                    rule,
                    gate_of(policy, &rule.src_posture),
                    gates,
                    &mut lists,
                ),
            };
            // The sources' counts, found from the sources when a patch did not list them.
            let per_tag = rule
                .src
                .iter()
                .any(|s| s.alias == Alias::Autogroup(Autogroup::Tagged));
            // Counts found with the sources (a rule resolved, not moved) depend on its
            // selectors, not on its list alone.
            let moved_list = counts.is_none();
            let counts = || {
                counts.clone().unwrap_or_else(|| {
                    sources
                        .iter()
                        .map(|&id| (id, tag_count(table, per_tag, id)))
                        .collect()
                })
            };
            // With a patch, the earlier rule when its sources are the same devices.
            let same = earlier.filter(|(p, o)| p.same_devices(&o.sources, &sources));
            // Only what the rule's shape uses is built: one list of every source, or the
            // sources per user (localpart rules, `autogroup:self`) and the tagged ones.
            let (all, all_hash) = if !localpart && !dst.is_none() {
                if let Some((_, o)) = same {
                    (o.all.clone(), o.all_hash.clone())
                } else {
                    let reused = match earlier {
                        Some(_) => None,
                        None => prior.and_then(|p| p.same_sources(i, &sources)),
                    };
                    let list_key = (Arc::as_ptr(&sources).cast::<NodeId>() as usize, per_tag);
                    let known = match moved_list {
                        true => by_list.get(&list_key).cloned(),
                        false => None,
                    };
                    let all = match known {
                        Some(all) => all,
                        None => {
                            let counts = counts();
                            let all = shared
                                .entry(counts.clone())
                                .or_insert_with(|| {
                                    if let Some((all, _)) = &reused {
                                        return all.clone();
                                    }
                                    counts
                                        .iter()
                                        .filter_map(|&(id, count)| Some((table.get(id)?, count)))
                                        .flat_map(|(node, count)| {
                                            std::iter::repeat_n(principals_of(node), count)
                                                .flatten()
                                        })
                                        .collect()
                                })
                                .clone();
                            if moved_list {
                                by_list.insert(list_key, all.clone());
                            }
                            all
                        }
                    };
                    // The earlier list's hash, when this is that list.
                    let hash = reused
                        .filter(|(earlier, _)| Arc::ptr_eq(earlier, &all))
                        .map(|(_, hash)| hash)
                        .unwrap_or_default();
                    (all, hash)
                }
            } else {
                (Arc::from(Vec::new()), Memo::default())
            };
            let (tagged, tagged_hash, by_user) = if !(localpart || self_dst) {
                (Arc::from(Vec::new()), Memo::default(), None)
            } else if let Some((p, o)) = earlier {
                // Untouched users' lists are the earlier ones; the touched users' are found
                // from their devices among the sources.
                let mut touched: Vec<UserSources> = Vec::new();
                for &user in &p.touched {
                    let devices = table.devices.get(user.index()).unwrap_or_default();
                    let mut held = devices
                        .iter()
                        .filter(|d| sources.binary_search(d).is_ok())
                        .filter_map(|&d| table.get(d))
                        .peekable();
                    if held.peek().is_none() {
                        continue;
                    }
                    let principals: Vec<SshPrincipal> = held.flat_map(principals_of).collect();
                    let login = logins.get(user.index()).copied().unwrap_or_default();
                    touched.push(UserSources {
                        user,
                        principals: Arc::from(principals),
                        localpart: if localpart {
                            localpart_map(login, &domains)
                        } else {
                            None
                        },
                        principals_hash: Memo::default(),
                        localpart_rest: Memo::default(),
                    });
                }
                // When every touched user's list is as it was (the changed nodes are not this
                // rule's sources), the earlier lists and their index are shared, hashes and
                // all: cloning every user's list of every such rule, and indexing them again,
                // was 4 % of a member join on `large`.
                let lists_same = p.touched.iter().all(|&user| {
                    same_user_lists(
                        o.user_sources(user),
                        touched.iter().find(|s| s.user == user),
                    )
                });
                // The same users have lists (a touched user's changed, none came or went):
                // the earlier lists with the touched ones replaced in place, in the same
                // order, so the index is shared.
                let same_users = p.touched.iter().all(|&user| {
                    o.user_sources(user).is_some() == touched.iter().any(|s| s.user == user)
                });
                let by_user = if lists_same {
                    (o.by_user.clone(), o.user_index.clone())
                } else if same_users {
                    // Only the chunks holding a touched user's list are copied.
                    let changes: Vec<(usize, UserSources)> = touched
                        .into_iter()
                        .filter_map(|list| Some((*o.user_index.get(&list.user)?, list)))
                        .collect();
                    (o.by_user.replaced(changes), o.user_index.clone())
                } else {
                    let mut by_user: Vec<UserSources> = o
                        .by_user
                        .iter()
                        .filter(|s| p.touched.binary_search(&s.user).is_err())
                        .cloned()
                        .collect();
                    by_user.extend(touched);
                    by_user.sort_by_key(|s| user_key(s.user));
                    let index = index_users(&by_user);
                    (Chunked::new(by_user), Arc::new(index))
                };
                let (tagged, tagged_hash) = match (localpart, same) {
                    (false, _) => (Arc::from(Vec::new()), Memo::default()),
                    (true, Some(_)) => (o.tagged.clone(), o.tagged_hash.clone()),
                    (true, None) => (
                        Arc::from(tagged_principals(table, &counts())),
                        Memo::default(),
                    ),
                };
                (tagged, tagged_hash, Some(by_user))
            } else {
                let counts = counts();
                let sources = |earlier| {
                    per_user_sources(table, &counts, localpart, earlier, |user| {
                        let login = logins.get(user.index()).copied().unwrap_or_default();
                        localpart_map(login, &domains)
                    })
                };
                // Taking the earlier lists fails only if a taken list does not hold as many
                // principals as the user's devices have now: then every list is rebuilt.
                let earlier = prior.and_then(|p| p.user_lists(i));
                let (tagged, mut by_user) = match sources(earlier) {
                    Some(built) => built,
                    None => sources(None).unwrap_or_default(),
                };
                by_user.sort_by_key(|s| user_key(s.user));
                let index = index_users(&by_user);
                (
                    Arc::from(tagged),
                    Memo::default(),
                    Some((Chunked::new(by_user), Arc::new(index))),
                )
            };
            let (by_user, user_index) = by_user.unwrap_or_default();
            let check_first = rule.action.value == PolicyAction::Check;
            let (action, recorders) = recording(
                match rule.action.value {
                    PolicyAction::Accept => SshAction::accept(),
                    PolicyAction::Check => SshAction::check(control_url),
                },
                rule,
                &mut resolver,
                table,
            );
            if let (Some(moved), Some((_, o))) = (&mut moved, earlier) {
                let alike = o.sources.is_empty() == sources.is_empty()
                    && o.action == action
                    && *alike_lists
                        .entry((
                            Arc::as_ptr(&o.all).cast::<SshPrincipal>() as usize,
                            Arc::as_ptr(&all).cast::<SshPrincipal>() as usize,
                        ))
                        .or_insert_with(|| same_principals(&o.all, &all))
                    && same_principals(&o.tagged, &tagged)
                    && o.by_user.alike(&by_user, UserSources::alike);
                if !alike {
                    moved.push(index(i));
                }
            }
            lowered.record(index(rules.len()), (&dst, self_dst), &sources);
            rules.push(LoweredRule {
                index: i,
                action,
                check_first,
                recorders,
                // The same policy rule as the earlier one: its user map and environment,
                // shared (1,400 maps made and freed per event on `large`).
                users: match earlier {
                    Some((_, o)) => o.users.clone(),
                    None => Arc::new(user_map(rule.users.iter().map(|u| &u.value))),
                },
                accept_env: match earlier {
                    Some((_, o)) => o.accept_env.clone(),
                    None => rule.accept_env.iter().map(|e| e.value.clone()).collect(),
                },
                localpart,
                all,
                by_user,
                user_index,
                tagged,
                all_hash,
                tagged_hash,
                rest_hash: Memo::default(),
                sources,
                dst,
                self_dst,
            });
        }
        // A patched lowering has the earlier one's rules, in place: their labels too.
        lowered.labels = match &patch {
            Some(p) => p.old.labels.kept(),
            None => labels::Labels::fresh(rules.len()),
        };
        lowered.rules = Arc::new(rules);
        lowered.moved = moved;
        lowered.moved_users = patch
            .as_ref()
            .map(|p| p.touched.clone())
            .unwrap_or_default();
        let patched = prior
            .and_then(|p| Some((p.lowered, p.kept?)))
            .and_then(|(old, kept)| old.patched_index(&lowered.rules, kept));
        lowered.by_node = match patched {
            Some(index) => index,
            None => crate::pernode::ItemIndex::from_pairs(
                table.len(),
                lowered
                    .rules
                    .iter()
                    .enumerate()
                    .flat_map(|(i, rule)| rule.index_pairs(index(i))),
            ),
        };
        // Debug builds compare a patched lowering with one built afresh.
        #[cfg(debug_assertions)]
        if patch.is_some() {
            let built = SshLowered::new(
                policy,
                users,
                table,
                control_url,
                &mut Gates::new(policy, table),
                None,
            );
            debug_assert!(
                lowered.agrees_with(&built),
                "a patched SSH lowering differs from one built"
            );
        }
        lowered
    }

    /// This lowering for a compile of another policy with the same SSH inputs on the same
    /// node table ([`reuse::same_inputs`]): the rules and their index shared, nothing moved.
    pub(crate) fn reused(&self) -> SshLowered {
        SshLowered {
            rules: self.rules.clone(),
            by_node: self.by_node.clone(),
            global: self.global.clone(),
            self_rules: self.self_rules.clone(),
            moved: Some(Vec::new()),
            moved_users: Vec::new(),
            labels: self.labels.kept(),
        }
    }

    /// True when `other` lowers the same rules to the same nodes (debug comparisons).
    #[cfg(debug_assertions)]
    pub(crate) fn agrees_with(&self, other: &SshLowered) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(other.rules.iter())
                .all(|(a, b)| a.index == b.index && a.same_content(b))
            && self.global == other.global
            && self.self_rules == other.self_rules
            && self.by_node.len() == other.by_node.len()
            && (0..self.by_node.len()).all(|n| self.by_node.get(n) == other.by_node.get(n))
    }

    /// Record where rule `i` may apply on every node, or on every user-owned one.
    pub(super) fn record(
        &mut self,
        i: u32,
        (dst, self_dst): (&Destinations, bool),
        sources: &[NodeId],
    ) {
        if sources.is_empty() {
            return;
        }
        if matches!(dst, Destinations::All) {
            self.global.push(i);
        }
        if self_dst {
            self.self_rules.push(i);
        }
    }

    /// This lowering's index from node to rules with the lists of the changed nodes (those
    /// `kept` has no earlier id for) replaced by their lists among `rules` (a lowering of the
    /// same policy), when every rule indexes the same kind of nodes: each has sources in both
    /// or in neither, the same kind of destinations and the same users' kind. An unchanged
    /// device is a destination or source of the same rules (membership is a property of the
    /// device and its owner). `None` otherwise, or when many nodes changed (each changed
    /// node's list is found by a binary search in every rule).
    pub(super) fn patched_index(
        &self,
        rules: &[LoweredRule],
        kept: &[Option<NodeId>],
    ) -> Option<crate::pernode::ItemIndex> {
        let alike = self.rules.len() == rules.len()
            && self.rules.iter().zip(rules).all(|(a, b)| {
                a.sources.is_empty() == b.sources.is_empty()
                    && a.localpart == b.localpart
                    && std::mem::discriminant(&a.dst) == std::mem::discriminant(&b.dst)
            });
        if !alike {
            return None;
        }
        self.by_node.patched_with(kept, |id| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.indexes(id))
                .map(|(i, _)| index(i))
                .collect()
        })
    }

    /// The nodes whose SSH rules name node `id` among their principals (it is a source of
    /// the rule) or among their session recorders, or `None` when that may be any node (a
    /// rule to every node, or with `localpart:` users, whose sources also receive it).
    pub(crate) fn naming_source(&self, table: &NodeTable, id: NodeId) -> Option<Vec<NodeId>> {
        let node = table.get(id)?;
        let mut out = Vec::new();
        for rule in self.rules.iter() {
            let source = rule.sources.binary_search(&id).is_ok();
            // A session recorder's address is in the action of every rule recording to it,
            // on every node the rule reaches.
            let records = !rule.sources.is_empty() && rule.recorders.binary_search(&id).is_ok();
            if !source && !records {
                continue;
            }
            if rule.localpart {
                return None;
            }
            match &rule.dst {
                Destinations::All => return None,
                Destinations::Some(ids) => out.extend_from_slice(ids),
                Destinations::None => {}
            }
            if rule.self_dst {
                // Recording to it: every source user's devices.
                if records {
                    return None;
                }
                if let Some(devices) = node.owner.and_then(|u| table.devices.get(u.index())) {
                    out.extend_from_slice(devices);
                }
            }
        }
        Some(out)
    }

    /// What this lowering, patched from `old` ([`patch::Patch`]), changed for the nodes
    /// that did not change: the moved rules that give each destination one piece, the same
    /// for all (neither `localpart:` users nor `autogroup:self`; a node's SSH fingerprint
    /// moves by that piece's change, [`SshLowered::visit_piece`]), and the nodes whose rules
    /// must be hashed again (those other moved rules reach: destinations, with `localpart:`
    /// users the sources, with `autogroup:self` the devices of the users whose list changed).
    /// `None` when not patched, or when a moved rule reaches every node.
    pub(crate) fn moves(
        &self,
        old: &SshLowered,
        table: &NodeTable,
    ) -> Option<(Vec<u32>, Vec<NodeId>)> {
        let moved = self.moved.as_ref()?;
        let (mut simple, mut again) = (Vec::new(), Vec::new());
        for &i in moved {
            let rule = self.rules.get(i as usize)?;
            let was = old.rules.get(i as usize)?;
            let dst = match &rule.dst {
                Destinations::All => return None,
                Destinations::Some(ids) => &ids[..],
                Destinations::None => &[],
            };
            if !rule.localpart && !rule.self_dst {
                simple.push(i);
                continue;
            }
            again.extend_from_slice(dst);
            if rule.localpart {
                again.extend_from_slice(&rule.sources);
            }
            if rule.self_dst {
                // Only the users whose lists were built again can differ: the others' were
                // taken (walking every user's list of every moved self rule, by hash, was
                // 3 % of a member join on `large`).
                let alike =
                    |user: UserId| same_user_lists(rule.user_sources(user), was.user_sources(user));
                debug_assert!(
                    rule.by_user
                        .iter()
                        .chain(was.by_user.iter())
                        .map(|s| s.user)
                        .filter(|u| self.moved_users.binary_search(u).is_err())
                        .all(alike),
                    "an SSH rule's list of an untouched user moved"
                );
                for &user in &self.moved_users {
                    if !alike(user) {
                        if let Some(devices) = table.devices.get(user.index()) {
                            again.extend_from_slice(devices);
                        }
                    }
                }
            }
        }
        again.sort_unstable();
        again.dedup();
        Some((simple, again))
    }

    /// The piece rule `i` (neither `localpart:` users nor `autogroup:self`) gives each of
    /// its destinations, when it has sources.
    pub(crate) fn visit_piece(&self, i: u32, out: &mut impl SshSink) {
        if let Some(rule) = self.rules.get(i as usize).filter(|r| !r.sources.is_empty()) {
            rule.push(
                out,
                (&rule.all, Some(&rule.all_hash)),
                (&rule.users, &rule.rest_hash),
            );
        }
    }

    /// Rule `i`'s destinations other than `autogroup:self`'s, when they are some nodes.
    pub(crate) fn destinations(&self, i: u32) -> &[NodeId] {
        match self.rules.get(i as usize).map(|r| &r.dst) {
            Some(Destinations::Some(ids)) => ids,
            _ => &[],
        }
    }

    /// Node `id`'s SSH rules, in the order the node evaluates them.
    pub(crate) fn node_rules(&self, table: &NodeTable, id: NodeId) -> Vec<NodeSshRule> {
        let mut out: Vec<NodeSshRule> = Vec::new();
        self.visit_node_rules(table, id, &mut out);
        // Check rules first; the sort is stable, so policy order holds otherwise.
        out.sort_by_key(|r| !r.check_first);
        out
    }

    /// Node `id`'s SSH rules, each handed to `sink` in policy order (before the check rules
    /// are put first): built by [`SshLowered::node_rules`], only hashed by the engine's
    /// fingerprints (no rule is copied).
    pub(crate) fn visit_node_rules(&self, table: &NodeTable, id: NodeId, out: &mut impl SshSink) {
        let Some(node) = table.get(id) else {
            return;
        };
        let listed = self.by_node.get(id.index());
        let mut candidates: Vec<u32> = listed.to_vec();
        candidates.extend_from_slice(&self.global);
        if !node.is_tagged() {
            candidates.extend_from_slice(&self.self_rules);
        }
        candidates.sort_unstable();
        candidates.dedup();
        for (i, rule) in candidates
            .iter()
            .filter_map(|&i| Some((i, self.rules.get(i as usize)?)))
        {
            if rule.sources.is_empty() {
                continue;
            }
            if rule.self_dst && !node.is_tagged() {
                if let Some(sources) = node.owner.and_then(|u| rule.user_sources(u)) {
                    rule.push_user(out, sources);
                }
            }
            if rule.dst.is_none() {
                continue;
            }
            // A node is listed under every rule it is a destination of (and, for `localpart:`
            // rules, every rule it is a source of): only those need the destinations searched.
            let is_dst = match &rule.dst {
                Destinations::Some(_) => {
                    listed.contains(i) && (!rule.localpart || rule.dst.contains(id))
                }
                other => other.contains(id),
            };
            if is_dst {
                if rule.localpart {
                    for sources in rule.by_user.iter() {
                        rule.push_user(out, sources);
                    }
                    if !rule.tagged.is_empty() {
                        rule.push(
                            out,
                            (&rule.tagged, Some(&rule.tagged_hash)),
                            (&rule.users, &rule.rest_hash),
                        );
                    }
                } else {
                    rule.push(
                        out,
                        (&rule.all, Some(&rule.all_hash)),
                        (&rule.users, &rule.rest_hash),
                    );
                }
            } else if rule.localpart && rule.sources.binary_search(&id).is_ok() {
                // A source device outside the destinations still gets the rule, scoped to
                // its own user (or, for a tagged device, to itself).
                if node.is_tagged() {
                    let own: Arc<[SshPrincipal]> = Arc::from(principals_of(node));
                    rule.push(out, (&own, None), (&rule.users, &rule.rest_hash));
                } else if let Some(sources) = node.owner.and_then(|u| rule.user_sources(u)) {
                    rule.push_user(out, sources);
                }
            }
        }
    }
}
