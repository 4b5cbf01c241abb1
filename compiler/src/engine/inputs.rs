//! The engine's inputs (records, users, policy) and how an event's snapshot is built from
//! them: the inventory and node table patched, the compile lent the previous one's parts.

use super::*;
use crate::Text;

impl Inputs {
    pub(super) fn undo(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Node(id, record) => self.set_record(id, record),
                Undo::User(id, record) => {
                    self.set_user(id, record);
                    self.users_changed = true;
                }
                Undo::Policy(p) => self.policy = p,
                Undo::Service(name, record) => self.set_service(&name, record),
            }
        }
    }

    /// Put Service `name`'s record in (or take it out).
    pub(super) fn set_service(&mut self, name: &str, record: Option<ServiceRecord>) {
        match record {
            Some(record) => {
                self.services.insert(name.to_string(), record);
            }
            None => {
                self.services.remove(name);
            }
        }
    }

    /// Put node `id`'s record in (or take it out).
    pub(super) fn set_record(&mut self, id: u64, record: Option<NodeRecord>) {
        match record {
            Some(record) => {
                self.nodes.insert(id, record);
            }
            None => {
                self.nodes.remove(&id);
            }
        }
    }

    /// Put user `id`'s record in (or take it out); the caller says whether the users' list
    /// is to be made again ([`Inputs::users_changed`]).
    pub(super) fn set_user(&mut self, id: u64, record: Option<UserRecord>) {
        match record {
            Some(record) => {
                self.users.insert(id, record);
            }
            None => {
                self.users.remove(&id);
            }
        }
    }

    /// Change the inputs; false when the event changes nothing.
    pub(super) fn mutate(
        &mut self,
        event: Event,
        undo: &mut Vec<Undo>,
    ) -> Result<bool, EngineError> {
        match event {
            Event::UpsertNode(node) => {
                if let Some(owner) = node.user {
                    if !self.users.contains_key(&owner) {
                        return Err(EngineError::UnknownUser(owner));
                    }
                }
                if self.nodes.get(&node.id) == Some(&node) {
                    return Ok(false);
                }
                let id = node.id;
                undo.push(Undo::Node(id, self.nodes.insert(id, node)));
            }
            Event::RemoveNode(id) => match self.nodes.remove(&id) {
                Some(old) => undo.push(Undo::Node(id, Some(old))),
                None => return Ok(false),
            },
            Event::UpsertUser(user) => {
                if self.users.get(&user.id) == Some(&user) {
                    return Ok(false);
                }
                let id = user.id;
                undo.push(Undo::User(id, self.users.insert(id, user)));
                self.users_changed = true;
            }
            Event::RemoveUser(id) => {
                let Some(old) = self.users.remove(&id) else {
                    return Ok(false);
                };
                undo.push(Undo::User(id, Some(old)));
                self.users_changed = true;
                let owned: Vec<u64> = self
                    .nodes
                    .values()
                    .filter(|n| n.user == Some(id))
                    .map(|n| n.id)
                    .collect();
                for node in owned {
                    undo.push(Undo::Node(node, self.nodes.remove(&node)));
                }
            }
            Event::AdvertiseRoutes { node, routes } => {
                return self.edit_node(node, undo, |n| n.advertised_routes = routes)
            }
            Event::ApproveRoutes { node, routes } => {
                return self.edit_node(node, undo, |n| n.approved_routes = routes)
            }
            Event::SetOnline { node, online } => {
                return self.edit_node(node, undo, |n| n.online = online)
            }
            Event::ReplacePolicy(policy) => {
                if Arc::ptr_eq(&policy, &self.policy) || *policy == *self.policy {
                    return Ok(false);
                }
                undo.push(Undo::Policy(std::mem::replace(&mut self.policy, policy)));
            }
            Event::UpsertService(svc) => {
                if self.services.get(&svc.name) == Some(&svc) {
                    return Ok(false);
                }
                let name = svc.name.clone();
                undo.push(Undo::Service(name.clone(), self.services.insert(name, svc)));
            }
            Event::RemoveService(name) => {
                let Some(old) = self.services.remove(&name) else {
                    return Ok(false);
                };
                undo.push(Undo::Service(name, Some(old)));
            }
        }
        Ok(true)
    }

    pub(super) fn edit_node(
        &mut self,
        id: u64,
        undo: &mut Vec<Undo>,
        edit: impl FnOnce(&mut NodeRecord),
    ) -> Result<bool, EngineError> {
        let Some((before, ())) = self.nodes.edit(id, edit) else {
            return Err(EngineError::UnknownNode(id));
        };
        if self.nodes.get(&id) == Some(&before) {
            return Ok(false);
        }
        undo.push(Undo::Node(id, Some(before)));
        Ok(true)
    }

    /// In [`ApprovalMode::Stored`], add what `autoApprovers` now approves to the records;
    /// the ids of the nodes that gained an approval. Each record's earlier value goes to
    /// `undo`, for a batch refused after its approvals were stored.
    pub(super) fn store_approvals(
        &mut self,
        undo: &mut Vec<Undo>,
    ) -> Result<Vec<u64>, EngineError> {
        if self.options.approvals != ApprovalMode::Stored {
            return Ok(Vec::new());
        }
        let inventory = self.inventory(None)?;
        let approved = crate::routes::auto_approved_routes(&self.policy, &inventory);
        let by_name: HashMap<&str, u64> = self
            .nodes
            .values()
            .map(|n| (n.name.as_str(), n.id))
            .collect();
        let mut updates = Vec::new();
        for (name, routes) in &approved {
            if let Some(&id) = by_name.get(name.as_str()) {
                updates.push((id, routes.clone()));
            }
        }
        let mut changed = Vec::new();
        for (id, routes) in updates {
            let edited = self.nodes.edit(id, |node| {
                let mut gained = false;
                for route in routes {
                    if !node.approved_routes.contains(&route) {
                        node.approved_routes.push(route);
                        gained = true;
                    }
                }
                gained
            });
            if let Some((before, true)) = edited {
                undo.push(Undo::Node(id, Some(before)));
                changed.push(id);
            }
        }
        Ok(changed)
    }

    /// Every node's name by stable id, and the reverse.
    pub(super) fn names(&self) -> names::NodeNames {
        names::NodeNames::new(
            self.nodes
                .values()
                .map(|n| (n.id, Text::from(n.name.as_str()))),
        )
    }

    /// [`Inputs::names`] after a change to the nodes of `narrow` only: the previous maps
    /// (shared when no name changed), patched with every changed node's entries removed,
    /// then its present ones added (so a batch may swap names). O(changed log n) but for
    /// an occasional fold ([`names::NodeNames::patched`]).
    pub(super) fn patched_names(&self, narrow: &Narrow<'_>) -> names::NodeNames {
        let old = narrow.old;
        let now = |id: &u64| self.nodes.get(id).map(|n| n.name.as_str());
        if narrow
            .nodes
            .iter()
            .all(|(id, before)| before.as_deref() == now(id))
        {
            return old.names.clone();
        }
        let present: Vec<(u64, Text)> = narrow
            .nodes
            .iter()
            .filter_map(|(id, _)| Some((*id, Text::from(now(id)?))))
            .collect();
        old.names.patched(&narrow.nodes, &present)
    }

    /// Make [`Inputs::user_list`] again if the users changed.
    pub(super) fn refresh_users(&mut self) {
        if !self.users_changed {
            return;
        }
        self.user_list = Arc::from(self.listed_users());
        self.users_changed = false;
    }

    /// The users as the inventory lists them.
    pub(super) fn listed_users(&self) -> Vec<User> {
        self.users
            .values()
            .map(|u| User {
                id: u.id,
                name: u.name.clone(),
                email: u.login.clone(),
                roles: u.roles.clone(),
                groups: u
                    .groups
                    .iter()
                    .map(|g| match g.starts_with("group:") {
                        true => g.clone(),
                        false => format!("group:{g}"),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The records as an inventory (registration order: ascending node ids). With `earlier`,
    /// the previous snapshot's inventory, whose users' checks are taken when the users are
    /// the same list.
    pub(super) fn inventory(&self, earlier: Option<&Inventory>) -> Result<Inventory, EngineError> {
        // Each record copied on every core (a tenth of an event on `large`).
        let records: Vec<&NodeRecord> = self.nodes.values().collect();
        let nodes = crate::par::map_parts(&records, 4096, |part| {
            part.iter().map(|n| self.node(n).map(Arc::new)).collect()
        })
        .into_iter()
        .collect::<Result<Vec<Arc<Node>>, EngineError>>()?;
        let inventory = Inventory::sharing_users(
            self.user_list.clone(),
            earlier,
            nodes,
            Registration::NodeOrder,
            self.tailnet.clone(),
        )
        .map_err(EngineError::Inventory)?;
        self.with_services(inventory)
    }

    /// [`Inputs::inventory`] after a change to the nodes `changed` (ids) only, the users
    /// and Services as they were in `old`: `old`'s inventory with the changed nodes' records
    /// made again, every other node's shared, and only the changed nodes checked
    /// ([`Inventory::patched`]); `services` are the records' ([`Inputs::service_list`]).
    /// `None` when that does not apply (the users or the Services changed, or the patch
    /// finds a problem, whose exact report the full check makes).
    pub(super) fn patched_inventory(
        &self,
        old: &Snapshot,
        changed: &Ranked,
        fresh_nodes: &[(u64, Arc<Node>)],
        services: &[crate::inventory::Service],
    ) -> Option<Inventory> {
        let earlier = &*old.inventory;
        if !Arc::ptr_eq(earlier.shared_users(), &self.user_list)
            || old.names.len() != earlier.nodes().len()
        {
            return None;
        }
        let sorted = &changed.ids;
        let (nodes, to_new, fresh) = match &changed.ranks {
            Some(ranks) => self.spliced_nodes(old, sorted, ranks, fresh_nodes)?,
            None => self.walked_nodes(old, sorted, fresh_nodes)?,
        };
        // Debug builds walk every record as well: the same nodes, and no record the change
        // does not name is new or gone.
        #[cfg(debug_assertions)]
        if changed.ranks.is_some() {
            let walked = self.walked_nodes(old, sorted, fresh_nodes);
            debug_assert!(
                walked.is_some_and(|(n, t, f)| n.len() == nodes.len()
                    && n.iter().zip(&nodes).all(|(a, b)| a == b)
                    && (t, f) == (to_new.clone(), fresh.clone())),
                "the spliced nodes differ from the walked ones"
            );
        }
        // Which earlier node holds an address, by the earlier compile's address index.
        let table = old.compiled.table();
        let holder = |a: std::net::IpAddr| {
            let id = table.by_address(a)?;
            table.get(id).map(|n| &*n.name)
        };
        let patched = Inventory::patched(
            earlier,
            nodes,
            &to_new,
            &fresh,
            (self.tailnet.clone(), services),
            &holder,
        )?;
        #[cfg(debug_assertions)]
        if let Ok(built) = self.inventory(Some(earlier)) {
            debug_assert!(
                patched.agrees_with(&built),
                "a patched inventory differs from one built"
            );
        }
        Some(patched)
    }

    /// The nodes of the inventory after a change to the nodes `sorted` (ids, ascending) only,
    /// by a walk over every record beside `old`'s nodes: the nodes (the changed ones from
    /// `fresh_nodes`, or made from their records), each earlier position's new one
    /// (`usize::MAX`: gone), and the changed nodes' positions. `None` when a record is neither
    /// kept nor changed (not the change described).
    pub(super) fn walked_nodes(
        &self,
        old: &Snapshot,
        sorted: &[u64],
        fresh_nodes: &[(u64, Arc<Node>)],
    ) -> Option<Spliced> {
        let earlier = &*old.inventory;
        let is_changed = |id: &u64| sorted.binary_search(id).is_ok();
        // `old`'s nodes are in the order of their ids, as these records are.
        let mut before = old.names.ids().zip(earlier.nodes()).enumerate().peekable();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut to_new = vec![usize::MAX; earlier.nodes().len()];
        let mut fresh = Vec::new();
        for (id, record) in self.nodes.iter() {
            while before.next_if(|(_, (old_id, _))| old_id < id).is_some() {}
            let kept = before
                .next_if(|(_, (old_id, _))| old_id == id)
                .filter(|_| !is_changed(id));
            match kept {
                Some((position, (_, node))) => {
                    *to_new.get_mut(position)? = nodes.len();
                    nodes.push(node.clone());
                }
                None if is_changed(id) => {
                    fresh.push(nodes.len());
                    nodes.push(self.fresh_node(*id, record, fresh_nodes)?);
                }
                // A node neither kept nor changed: not the change described.
                None => return None,
            }
        }
        Some((nodes, to_new, fresh))
    }

    /// [`Inputs::walked_nodes`] for a few changed nodes, without the walk: each changed
    /// node's place now is its rank among the records (`ranks`, in the order of `sorted`), its
    /// place before that rank less the changed nodes below it that came, plus those that
    /// went; every other node keeps its order, so `old`'s nodes are copied around those
    /// places. The walk over 100,000 records beside the earlier snapshot's ids took about 4
    /// ms of a member join on `large`, this 1. It trusts that no other record came or went
    /// (the engine's undo records name every changed node; debug builds walk as well).
    /// `None` when the places do not fit `old` (a changed node's earlier place holds another
    /// node, or the counts differ): the caller then makes the inventory in full.
    pub(super) fn spliced_nodes(
        &self,
        old: &Snapshot,
        sorted: &[u64],
        ranks: &[usize],
        fresh_nodes: &[(u64, Arc<Node>)],
    ) -> Option<Spliced> {
        let earlier = old.inventory.nodes();
        // Per changed node: its place before (if it was there) and now (if it is).
        let (mut came, mut went) = (0usize, 0usize);
        let mut gone = Vec::with_capacity(sorted.len());
        let mut put = Vec::with_capacity(sorted.len());
        for (&id, &below) in sorted.iter().zip(ranks) {
            let was = old.names.name(id);
            let is = self.nodes.get(&id);
            if let Some(name) = was {
                let at = (below + went).checked_sub(came)?;
                // The earlier node at that place is this one (by name: names are unique).
                if earlier.get(at).map(|n| n.name.as_str()) != Some(&**name) {
                    return None;
                }
                gone.push(at);
            }
            if let Some(record) = is {
                put.push((below, self.fresh_node(id, record, fresh_nodes)?));
            }
            match (was.is_some(), is.is_some()) {
                (false, true) => came += 1,
                (true, false) => went += 1,
                _ => {}
            }
        }
        if earlier.len() + came != self.nodes.len() + went {
            return None;
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut to_new = vec![usize::MAX; earlier.len()];
        let mut fresh = Vec::with_capacity(put.len());
        let mut put = put.into_iter().peekable();
        let mut gone = gone.into_iter().peekable();
        for (i, node) in earlier.iter().enumerate() {
            while let Some((_, made)) = put.next_if(|(at, _)| *at == nodes.len()) {
                fresh.push(nodes.len());
                nodes.push(made);
            }
            if gone.next_if(|&at| at == i).is_some() {
                continue;
            }
            *to_new.get_mut(i)? = nodes.len();
            nodes.push(node.clone());
        }
        for (at, made) in put {
            if at != nodes.len() {
                return None;
            }
            fresh.push(nodes.len());
            nodes.push(made);
        }
        (nodes.len() == self.nodes.len() && gone.next().is_none()).then_some((nodes, to_new, fresh))
    }

    /// Changed node `id`'s inventory node: made already (`fresh_nodes`, by id), or from its
    /// record.
    pub(super) fn fresh_node(
        &self,
        id: u64,
        record: &NodeRecord,
        fresh_nodes: &[(u64, Arc<Node>)],
    ) -> Option<Arc<Node>> {
        let made = fresh_nodes.binary_search_by_key(&id, |(made, _)| *made);
        match made.ok().and_then(|at| fresh_nodes.get(at)) {
            Some((_, node)) => Some(node.clone()),
            None => self.node(record).ok().map(Arc::new),
        }
    }

    /// The changed nodes `ids`, ascending and each once, with their ranks among the records
    /// when there are at most [`SPLICED`] of them (each counted from the nearer end,
    /// [`nodeset::NodeRecords::rank`]).
    pub(super) fn ranked(&self, mut ids: Vec<u64>) -> Ranked {
        ids.sort_unstable();
        ids.dedup();
        let ranks =
            (ids.len() <= SPLICED).then(|| ids.iter().map(|&id| self.nodes.rank(id)).collect());
        Ranked { ids, ranks }
    }

    /// The node table after the node event `narrow`, patched from the earlier one with the
    /// changed nodes `fresh` (made from their records), for a few changed nodes: what
    /// [`crate::nodes::NodeTable::patched_from`] reads of the new inventory, known without making it. Each
    /// changed node's registration rank is its position among the records (`changed`'s
    /// ranks). `None` when it cannot be patched so.
    pub(super) fn patched_table(
        &self,
        narrow: &Narrow<'_>,
        fresh: &[(u64, Arc<Node>)],
        changed: &Ranked,
        services: &[crate::inventory::Service],
    ) -> Option<crate::nodes::NodeTable> {
        if narrow.nodes.len() > SIDE_TABLE {
            return None;
        }
        let named = fresh
            .iter()
            .map(|(id, node)| Some((&**node, changed.rank(*id)?)))
            .collect::<Option<_>>()?;
        let change = crate::nodes::Change {
            users: &self.user_list,
            nodes: self.nodes.len(),
            named,
            services,
        };
        let before: Vec<&str> = narrow
            .nodes
            .iter()
            .filter_map(|(_, b)| b.as_deref())
            .collect();
        crate::nodes::NodeTable::patched_from(change, narrow.old.compiled.table(), &before)
    }

    /// A record as an inventory node (its owner by login).
    pub(super) fn node(&self, n: &NodeRecord) -> Result<Node, EngineError> {
        let user = match n.user {
            Some(id) => Some(
                self.users
                    .get(&id)
                    .map(|u| u.login.clone())
                    .ok_or(EngineError::UnknownUser(id))?,
            ),
            None => None,
        };
        Ok(Node {
            name: n.name.clone(),
            hostname: n.hostname.clone(),
            user,
            tags: n.tags.clone(),
            ipv4: n.ipv4,
            ipv6: n.ipv6,
            routable_ips: n.advertised_routes.clone(),
            approved_routes: n.approved_routes.clone(),
            posture: n.posture.clone(),
        })
    }

    /// `inventory` with the Services of the records.
    pub(super) fn with_services(&self, inventory: Inventory) -> Result<Inventory, EngineError> {
        if self.services.is_empty() {
            return Ok(inventory);
        }
        inventory
            .with_services(self.service_list())
            .map_err(EngineError::Inventory)
    }

    /// The Services as the inventory lists them: hosts by name, ids naming no node left
    /// out.
    pub(super) fn service_list(&self) -> Vec<crate::inventory::Service> {
        self.services
            .values()
            .map(|s| s.to_service(|id| self.nodes.get(&id).map(|n| n.name.clone())))
            .collect()
    }

    /// Compile the records into a snapshot; fingerprint only the nodes the change in `scope`
    /// can reach (or every node when that cannot be bounded). With it, the nodes whose filter
    /// the change is known to have changed while their filter part was left uncomputed.
    pub(super) fn build(
        &self,
        version: u64,
        scope: Scope<'_>,
        previous: Option<&Snapshot>,
    ) -> Result<Built, EngineError> {
        // On a node event, the changed nodes' records made once (by id), for the inventory
        // and for the node table, which is patched beside the inventory (below).
        let mut fresh: Vec<(u64, Arc<Node>)> = match &scope {
            Scope::Node(n) => n
                .nodes
                .iter()
                .filter_map(|(id, _)| Some((*id, Arc::new(self.node(self.nodes.get(id)?).ok()?))))
                .collect(),
            _ => Vec::new(),
        };
        fresh.sort_unstable_by_key(|(id, _)| *id);
        // The changed nodes, ranked once for the inventory's splice and the table beside it.
        let changed = self.ranked(match &scope {
            Scope::Node(n) => n.nodes.iter().map(|(id, _)| *id).collect(),
            Scope::Routes(r) => r.nodes.clone(),
            _ => Vec::new(),
        });
        // The Services as the inventory lists them, made once for the patched inventory and
        // the table beside it (both keep them when they are the earlier ones).
        let services = match &scope {
            Scope::Node(_) | Scope::Routes(_) => self.service_list(),
            _ => Vec::new(),
        };
        // The inventory, and whether it was patched (the only case the table is used in).
        let inventory = || -> Result<(Arc<Inventory>, bool), EngineError> {
            // `fresh` is empty but on a node event.
            let patched = |old: &Snapshot| {
                Ok(
                    match self.patched_inventory(old, &changed, &fresh, &services) {
                        Some(inventory) => (Arc::new(inventory), true),
                        None => (Arc::new(self.inventory(Some(&old.inventory))?), false),
                    },
                )
            };
            match &scope {
                // The records are as they were: the same inventory.
                Scope::Policy(old) => Ok((old.inventory.clone(), false)),
                Scope::Node(n) => patched(n.old),
                Scope::Routes(r) => patched(r.old),
                Scope::Everything => Ok((Arc::new(self.inventory(None)?), false)),
            }
        };
        // The offline nodes are kept by name beside the records ([`nodeset::NodeRecords`]).
        #[cfg(debug_assertions)]
        debug_assert!(
            self.nodes.offline_agrees(),
            "the offline names differ from the records'"
        );
        // A node or route event: the inventory patched on one core, then the compile beside
        // the name maps (2 ms of a member join on `large`, off the event's path). On a node
        // event the node table is patched on the other core meanwhile, from the records (4-5
        // ms of a member join on `large`, which waited for the inventory); it is used only
        // when the inventory was patched too (else the compile makes it from the inventory).
        let narrow = matches!(scope, Scope::Node(_) | Scope::Routes(_));
        let table = || match &scope {
            Scope::Node(n) => self.patched_table(n, &fresh, &changed, &services),
            _ => None,
        };
        let big = crate::par::event_worth_threads(self.nodes.len());
        let (table, inventory) = tracing::debug_span!(crate::phases::INPUTS)
            .in_scope(|| crate::par::join_if(narrow && big, table, inventory));
        let (inventory, patched) = inventory?;
        let table = table.filter(|_| patched);
        let mut options = self.options.compile.clone();
        options.auto_approve = self.options.approvals == ApprovalMode::Derived;
        // What the previous compile can lend this one: for a change to nodes without routes,
        // the source lists that name none of them; for a change to routes, those not from
        // `*`; for a policy change (same inventory, so the same node ids), those whose
        // targets are equal.
        let (before, after): (Vec<&str>, Vec<&str>) = match &scope {
            Scope::Node(n) => (
                n.nodes.iter().filter_map(|(_, b)| b.as_deref()).collect(),
                n.nodes
                    .iter()
                    .filter_map(|(id, _)| Some(self.nodes.get(id)?.name.as_str()))
                    .collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let earlier = match &scope {
            Scope::Node(n) => Some(n.old),
            Scope::Routes(r) => Some(r.old),
            Scope::Policy(old) => Some(*old),
            Scope::Everything => None,
        };
        // A route change's nodes, by name (the same before and after).
        let router: Vec<&str> = match &scope {
            Scope::Routes(r) => r
                .nodes
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .map(|n| n.name.as_str())
                .collect(),
            _ => Vec::new(),
        };
        let prior = earlier.map(|old| crate::compiled::Prior {
            compiled: &old.compiled,
            before: &before,
            after: &after,
            old_policy: &old.policy,
            policy_changed: matches!(scope, Scope::Policy(_)),
            routes_changed: matches!(scope, Scope::Routes(_)),
            records: matches!(scope, Scope::Routes(_)).then_some((&router[..], &router[..])),
        });
        let compile = || {
            compile_marked(
                &self.policy,
                &inventory,
                &options,
                &|name| self.nodes.offline(name),
                (prior.as_ref(), table),
            )
        };
        let names = || match &scope {
            Scope::Node(n) => self.patched_names(n),
            Scope::Routes(r) => r.old.names.clone(),
            Scope::Policy(old) => old.names.clone(),
            Scope::Everything => self.names(),
        };
        let (mut compiled, names) =
            crate::par::join_if(matches!(scope, Scope::Node(_)) && big, compile, names);
        // The SSH rules labelled as the previous snapshot's, for their fingerprints.
        if let Some(old) = earlier.or(previous) {
            compiled.continue_ssh_labels(&old.compiled, Arc::ptr_eq(&old.policy, &self.policy));
        }
        let fingerprints =
            tracing::debug_span!(crate::phases::FINGERPRINTS, every = tracing::field::Empty);
        let _entered = fingerprints.enter();
        let narrowed = match scope {
            Scope::Node(n) => n.fingerprints(&compiled, &names),
            Scope::Routes(r) => r.fingerprints(&compiled, &names),
            Scope::Policy(old) => policy_fingerprints(old, &compiled, &names),
            Scope::Everything => None,
        };
        let prints = match narrowed {
            Some(done) => done,
            None => {
                fingerprints.record("every", true);
                let (out, all) = every_fingerprint(&compiled);
                let n = out.len();
                Prints {
                    fingerprints: out,
                    node_bases: Arc::new(all),
                    stale: vec![0; n.div_ceil(64)],
                    changed: vec![0; n.div_ceil(64)],
                    touched: None,
                    stable: None,
                    ssh_same: None,
                }
            }
        };
        // Debug builds on small tailnets (the property tests') compare every fingerprint an
        // event patched, moved or decided with one computed in full (the filter part where
        // it is not left stale): a wrong patch would otherwise show only as a later event's
        // extra change.
        #[cfg(debug_assertions)]
        if prints.touched.is_some() && compiled.table().len() <= 64 {
            let (every, all) = every_fingerprint(&compiled);
            debug_assert_eq!(*prints.node_bases, all, "peers' entries after an event");
            for (i, full) in every.into_iter().enumerate() {
                let mut got = prints.fingerprints.get(i).copied();
                let stale = crate::bits::bit(&prints.stale, NodeId::new(i));
                if let Some(got) = got.as_mut().filter(|_| stale) {
                    got.filter = full.filter;
                }
                debug_assert_eq!(got, Some(full), "node {i}'s fingerprint after an event");
            }
        }
        let snapshot = Snapshot {
            version,
            policy: self.policy.clone(),
            inventory,
            compiled,
            names,
            fingerprints: prints.fingerprints,
            stale: prints.stale,
            ssh_same: prints.ssh_same,
            node_bases: prints.node_bases,
            stable: match prints.stable {
                Some(stable) => std::sync::OnceLock::from(stable),
                None => std::sync::OnceLock::new(),
            },
        };
        Ok((snapshot, prints.changed, prints.touched))
    }
}

/// The most changed nodes whose node table is patched beside the inventory
/// ([`Inputs::patched_table`]; at most [`SPLICED`], so each one is ranked).
pub(super) const SIDE_TABLE: usize = 4;
