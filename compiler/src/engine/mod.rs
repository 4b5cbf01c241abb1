//! The control-server engine: owns the policy and the tailnet (users and nodes by stable id),
//! applies events, and says after each which nodes' maps changed, so a server pushes only
//! those. Readers take an immutable [`Snapshot`] (`Arc`-swapped: a reader never waits for an
//! event being applied) and ask it for node maps or the questions of [`questions`].
//!
//! How an event is applied (see ARCHITECTURE.md, "The engine"): events that cannot change any
//! output are recognised and cost nothing (a repeated upsert, a node that is no route's only
//! alternative going on- or offline); every other event recompiles the new inputs and compares
//! each node's fingerprint (hashes of its filter, SSH rules, peers with their AllowedIPs and
//! routes, cap map and own addresses/routes) with the previous snapshot's, recomputing only
//! the fingerprints a change to one node without routes can reach.

mod changeset;
mod freer;
mod names;
mod nodeset;
pub mod questions;
mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use aclc_policy::model::Policy;

pub use changeset::{ChangeSet, NodeChange};
pub use records::{Event, NodeRecord, ServiceRecord, TailnetState, UserRecord};

use crate::compiled::{compile_marked, CompileOptions, Compiled, Fingerprint, HashCache, NodeView};
use crate::inventory::{Inventory, InventoryError, Node, Registration, Tailnet, User};
use crate::nodes::NodeId;

/// Where a node's route approvals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApprovalMode {
    /// Derived on every compile: the node's stored approvals plus what the current policy's
    /// `autoApprovers` approves, so a policy edit can take an approval away.
    #[default]
    Derived,
    /// Stored, as Tailscale does: when an event lets `autoApprovers` approve an advertised
    /// route, the approval is added to the node's record and stays (the policy never takes it
    /// back; only [`Event::ApproveRoutes`] or the node no longer advertising the route does).
    Stored,
}

/// How the engine compiles.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EngineOptions {
    /// The compile options (`auto_approve` is set from `approvals`).
    pub compile: CompileOptions,
    /// Where route approvals come from.
    pub approvals: ApprovalMode,
    /// Free each replaced snapshot on the thread applying the event (default: on a thread of
    /// the engine's own, beside the next event). Measured on `large` (member joins): with
    /// mimalloc, which `docs/embedding.md` recommends, the thread takes the freeing (about
    /// 8 ms) off an event that does not follow another at once, and back to back it was
    /// within the noise; with glibc's malloc events were about 5% slower (frees from
    /// another thread contend for its arenas), so a host on the system allocator may set
    /// this.
    pub free_in_place: bool,
}

impl EngineOptions {
    /// Options with this approval mode, the rest default.
    pub fn with_approvals(approvals: ApprovalMode) -> EngineOptions {
        EngineOptions {
            approvals,
            ..EngineOptions::default()
        }
    }
}

/// Why an event (or the initial state) was refused; the engine's state is then unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// The resulting tailnet is not a valid inventory (duplicate name or address, a tagged node
    /// with an owner, ...).
    Inventory(InventoryError),
    /// The event names a node the engine does not know.
    UnknownNode(u64),
    /// A node names an owner the engine does not know.
    UnknownUser(u64),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Inventory(e) => write!(f, "{e}"),
            EngineError::UnknownNode(id) => write!(f, "unknown node id {id}"),
            EngineError::UnknownUser(id) => write!(f, "unknown user id {id}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why a batch ([`Engine::apply_batch`]) was refused; the engine's state is then unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchError {
    /// The position in the batch of the event refused; `None` when the state after the last
    /// event was (an invalid tailnet).
    pub event: Option<usize>,
    /// Why.
    pub error: EngineError,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event {
            Some(i) => write!(f, "event {i} of the batch: {}", self.error),
            None => write!(f, "after the batch: {}", self.error),
        }
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The tailnet and its compiled policy at one point of the event stream. Immutable; share it
/// between threads (`Send + Sync`).
#[derive(Debug)]
pub struct Snapshot {
    version: u64,
    policy: Arc<Policy>,
    /// Shared with the next snapshot when an event leaves the records as they were.
    inventory: Arc<Inventory>,
    compiled: Compiled,
    /// Node names by stable id, and the reverse: shared with the next snapshot when an
    /// event renames, adds or removes no node, patched when it does.
    names: names::NodeNames,
    /// Each node's fingerprint, by node id of this snapshot's compile: an event moves them
    /// to the next compile's ids (one pass in id order) and patches the nodes it touched,
    /// each found at its place, not hashed (a retag on `large` patches 50,000, and the
    /// change set compares them: by stable id, every lookup missed the cache).
    fingerprints: Vec<Fingerprint>,
    /// Nodes (one bit each, by node id) whose fingerprint's filter part was not computed (an
    /// event found their filter changed without assembling it; see
    /// [`crate::lower::SourceMoves`]): it is computed from this snapshot's compile when a
    /// later event needs it.
    stale: Vec<u64>,
    /// Each node's [`crate::compiled::PeerBases`] entry, by node id of this snapshot's
    /// compile (what peers' fingerprints read; shared with the next snapshot when a policy
    /// event keeps the node table).
    node_bases: Arc<Vec<[u64; 4]>>,
    /// Each node's stable id ([`NO_NODE`] for none), by node id of this snapshot's compile:
    /// moved to the next snapshot's ids by a node event, else found by name on first use.
    /// A node event's fingerprints look up each of the nodes they touch (25,000 on a member
    /// join on `large`), which was a hash of its name each.
    stable: std::sync::OnceLock<Arc<Vec<u64>>>,
}

/// [`Snapshot::stable`] of a node id no node has.
const NO_NODE: u64 = u64::MAX;

const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Snapshot>();
    assert_send_sync::<SharedSnapshot>();
    assert_send_sync::<Engine>();
};

impl Snapshot {
    /// How many events changed the state before this snapshot (0 for the first).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The tailnet as a (corpus-format) inventory: what was compiled.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The compiled policy.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The map of node `id`: packet filter, SSH rules, peers, cap map, routes.
    pub fn node(&self, id: u64) -> Option<NodeView<'_>> {
        self.compiled.node(self.names.name(id)?)
    }

    /// The name of node `id`.
    pub fn name(&self, id: u64) -> Option<&str> {
        self.names.name(id).map(|n| &**n)
    }

    /// The id of the node called `name`.
    pub fn id(&self, name: &str) -> Option<u64> {
        self.names.id(name)
    }

    /// Node ids, ascending.
    pub fn node_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.names.ids()
    }
}

/// The current snapshot, swapped by the writer and loaded by readers: a load clones an `Arc`
/// under a lock held for that clone only, so readers never wait for an event's compile.
#[derive(Debug)]
pub struct SharedSnapshot {
    current: RwLock<Arc<Snapshot>>,
}

impl SharedSnapshot {
    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replace the current snapshot; the previous one is returned, so that the caller frees
    /// it after the lock is released (freeing a large snapshot takes a tenth of a second on
    /// `large`, and readers would wait for it).
    fn store(&self, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
        match self.current.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, snapshot),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), snapshot),
        }
    }
}

/// The engine: the inputs (policy, users, nodes) and the current snapshot compiled from them.
#[derive(Debug)]
pub struct Engine {
    inputs: Inputs,
    current: Arc<Snapshot>,
    shared: Arc<SharedSnapshot>,
    freer: freer::Freer,
}

/// What the snapshots are compiled from.
#[derive(Debug)]
struct Inputs {
    policy: Arc<Policy>,
    tailnet: Tailnet,
    users: BTreeMap<u64, UserRecord>,
    /// The users as the inventory lists them, made again only after the users changed
    /// ([`Inputs::refresh_users`]): shared by the inventories of events on nodes, which then
    /// take the users' checks and lookups from the previous one.
    user_list: Arc<[User]>,
    /// The users changed since `user_list` was made.
    users_changed: bool,
    nodes: nodeset::NodeRecords,
    /// Tailscale Services by name.
    services: BTreeMap<String, ServiceRecord>,
    options: EngineOptions,
}

/// An inventory's nodes after a change to a few of them, each earlier node's new position
/// (`usize::MAX`: gone), and the changed nodes' positions ([`Inputs::walked_nodes`]).
type Spliced = (Vec<Arc<Node>>, Vec<usize>, Vec<usize>);

/// Up to this many changed nodes, the inventory's nodes are spliced by rank
/// ([`Inputs::spliced_nodes`]); more are walked (each rank counts records from the nearer
/// end).
const SPLICED: usize = 16;

/// A node or route event's changed nodes by id (ascending), with their ranks among the
/// records (how many have a lower id) when they are few ([`Inputs::ranked`]).
struct Ranked {
    ids: Vec<u64>,
    ranks: Option<Vec<usize>>,
}

impl Ranked {
    /// Changed node `id`'s rank, if ranked.
    fn rank(&self, id: u64) -> Option<usize> {
        let at = self.ids.binary_search(&id).ok()?;
        self.ranks.as_ref()?.get(at).copied()
    }
}

/// How to take back an event that left an invalid tailnet.
enum Undo {
    Node(u64, Option<NodeRecord>),
    User(u64, Option<UserRecord>),
    Policy(Arc<Policy>),
    Service(String, Option<ServiceRecord>),
}

impl Engine {
    /// An engine for `policy` (parsed and validated by the caller) and the tailnet `state`.
    pub fn new(
        policy: Arc<Policy>,
        state: TailnetState,
        options: EngineOptions,
    ) -> Result<Engine, EngineError> {
        let mut inputs = Inputs {
            policy,
            tailnet: state.tailnet,
            users: state.users.into_iter().map(|u| (u.id, u)).collect(),
            user_list: Arc::from(Vec::new()),
            users_changed: true,
            nodes: state.nodes.into_iter().collect(),
            services: state
                .services
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            options,
        };
        inputs.refresh_users();
        inputs.store_approvals()?;
        let current = Arc::new(inputs.build(0, Scope::Everything)?.0);
        Ok(Engine {
            freer: freer::Freer::new(inputs.options.free_in_place),
            inputs,
            shared: Arc::new(SharedSnapshot {
                current: RwLock::new(current.clone()),
            }),
            current,
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    /// The handle reader threads load snapshots from.
    pub fn shared(&self) -> Arc<SharedSnapshot> {
        self.shared.clone()
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.inputs.policy
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.inputs.options
    }

    /// The node with id `id`.
    pub fn node(&self, id: u64) -> Option<&NodeRecord> {
        self.inputs.nodes.get(&id)
    }

    /// The user with id `id`.
    pub fn user(&self, id: u64) -> Option<&UserRecord> {
        self.inputs.users.get(&id)
    }

    /// The tailnet's current state (with stored approvals), e.g. to start another engine.
    pub fn state(&self) -> TailnetState {
        TailnetState {
            users: self.inputs.users.values().cloned().collect(),
            nodes: self.inputs.nodes.values().cloned().collect(),
            tailnet: self.inputs.tailnet.clone(),
            services: self.inputs.services.values().cloned().collect(),
        }
    }

    /// Apply `event` and say which nodes' maps changed. A refused event changes nothing.
    pub fn apply(&mut self, event: Event) -> Result<ChangeSet, EngineError> {
        self.apply_batch([event]).map_err(|e| e.error)
    }

    /// Apply `events` in order as one change: one compile, and one change set, the nodes whose
    /// map differs between before the first event and after the last (a node changed and
    /// changed back is not in it). A server that receives events faster than it compiles
    /// (a burst of devices joining) applies what queued up as one batch.
    ///
    /// The batch is atomic: when an event is refused (it names an unknown node or user), or
    /// the tailnet after the last event is not valid (two nodes with one name or address),
    /// nothing of the batch is applied. Only the state after the last event is validated, so
    /// a batch can swap two nodes' names or addresses. In [`ApprovalMode::Stored`], what
    /// `autoApprovers` approves is stored once, for the state after the last event.
    pub fn apply_batch(
        &mut self,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<ChangeSet, BatchError> {
        let mut undo = Vec::new();
        let mut changed = false;
        for (index, event) in events.into_iter().enumerate() {
            match self.inputs.mutate(event, &mut undo) {
                Ok(c) => changed |= c,
                Err(error) => {
                    self.inputs.undo(undo);
                    self.inputs.refresh_users();
                    return Err(BatchError {
                        event: Some(index),
                        error,
                    });
                }
            }
        }
        self.inputs.refresh_users();
        if !changed || self.output_unchanged(&undo) {
            return Ok(ChangeSet::default());
        }
        let version = self.current.version + 1;
        let mut scope = scope(&self.inputs, &self.current, &undo);
        let result = self.inputs.store_approvals().and_then(|stored| {
            let keeps = |id: &u64| match &scope {
                Scope::Node(n) => n.nodes.iter().any(|(node, _)| node == id),
                Scope::Routes(r) => r.node == *id,
                _ => false,
            };
            if !stored.iter().all(keeps) {
                scope = Scope::Everything;
            }
            self.inputs.build(version, scope)
        });
        match result {
            Ok((snapshot, filters_changed, touched)) => {
                let changes = changeset::diff(
                    &self.current,
                    &snapshot,
                    &filters_changed,
                    touched.as_deref(),
                );
                let old = std::mem::replace(&mut self.current, Arc::new(snapshot));
                let previous = self.shared.store(self.current.clone());
                // Freed outside the readers' lock (by a reader, if one still holds it), on
                // the engine's freeing thread unless `EngineOptions::free_in_place`.
                self.freer.free((old, previous));
                Ok(changes)
            }
            Err(error) => {
                self.inputs.undo(undo);
                self.inputs.refresh_users();
                Err(BatchError { event: None, error })
            }
        }
    }

    /// True when the change (one node's online flag, nothing else) cannot show in any output:
    /// the node is the only server of every subnet route it serves (or serves none), so no
    /// route's primary depends on it. The snapshot is kept (its copy of the flag is read only
    /// to order a route's servers).
    fn output_unchanged(&self, undo: &[Undo]) -> bool {
        let [Undo::Node(id, Some(before))] = undo else {
            return false;
        };
        let Some(after) = self.inputs.nodes.get(id) else {
            return false;
        };
        let only_online = NodeRecord {
            online: after.online,
            ..before.clone()
        } == *after;
        only_online
            && self
                .current
                .names
                .name(*id)
                .and_then(|name| self.current.compiled.table().id(name))
                .is_some_and(|nid| self.current.compiled.sole_server(nid))
    }
}

impl Inputs {
    fn undo(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Node(id, Some(n)) => {
                    self.nodes.insert(id, n);
                }
                Undo::Node(id, None) => {
                    self.nodes.remove(&id);
                }
                Undo::User(id, Some(u)) => {
                    self.users.insert(id, u);
                    self.users_changed = true;
                }
                Undo::User(id, None) => {
                    self.users.remove(&id);
                    self.users_changed = true;
                }
                Undo::Policy(p) => self.policy = p,
                Undo::Service(name, Some(svc)) => {
                    self.services.insert(name, svc);
                }
                Undo::Service(name, None) => {
                    self.services.remove(&name);
                }
            }
        }
    }

    /// Change the inputs; false when the event changes nothing.
    fn mutate(&mut self, event: Event, undo: &mut Vec<Undo>) -> Result<bool, EngineError> {
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

    fn edit_node(
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
    /// the ids of the nodes that gained an approval.
    fn store_approvals(&mut self) -> Result<Vec<u64>, EngineError> {
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
            self.nodes.edit(id, |node| {
                for route in routes {
                    if !node.approved_routes.contains(&route) {
                        node.approved_routes.push(route);
                        changed.push(id);
                    }
                }
            });
        }
        Ok(changed)
    }

    /// Every node's name by stable id, and the reverse.
    fn names(&self) -> names::NodeNames {
        names::NodeNames::new(
            self.nodes
                .values()
                .map(|n| (n.id, Arc::from(n.name.as_str()))),
        )
    }

    /// [`Inputs::names`] after a change to the nodes of `narrow` only: the previous maps
    /// (shared when no name changed), patched with every changed node's entries removed,
    /// then its present ones added (so a batch may swap names). O(changed log n) but for
    /// an occasional fold ([`names::NodeNames::patched`]).
    fn patched_names(&self, narrow: &Narrow<'_>) -> names::NodeNames {
        let old = narrow.old;
        let now = |id: &u64| self.nodes.get(id).map(|n| n.name.as_str());
        if narrow
            .nodes
            .iter()
            .all(|(id, before)| before.as_deref() == now(id))
        {
            return old.names.clone();
        }
        let present: Vec<(u64, Arc<str>)> = narrow
            .nodes
            .iter()
            .filter_map(|(id, _)| Some((*id, Arc::from(now(id)?))))
            .collect();
        old.names.patched(&narrow.nodes, &present)
    }

    /// Make [`Inputs::user_list`] again if the users changed.
    fn refresh_users(&mut self) {
        if !self.users_changed {
            return;
        }
        let users: Vec<User> = self
            .users
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
            .collect();
        self.user_list = Arc::from(users);
        self.users_changed = false;
    }

    /// The records as an inventory (registration order: ascending node ids). With `earlier`,
    /// the previous snapshot's inventory, whose users' checks are taken when the users are
    /// the same list.
    fn inventory(&self, earlier: Option<&Inventory>) -> Result<Inventory, EngineError> {
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
    /// ([`Inventory::patched`]). `None` when that does not apply (the users changed, there
    /// are Services, or the patch finds a problem, whose exact report the full check makes).
    fn patched_inventory(
        &self,
        old: &Snapshot,
        changed: &Ranked,
        fresh_nodes: &[(u64, Arc<Node>)],
    ) -> Option<Inventory> {
        let earlier = &*old.inventory;
        if !Arc::ptr_eq(earlier.shared_users(), &self.user_list)
            || !self.services.is_empty()
            || !earlier.services().is_empty()
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
            self.tailnet.clone(),
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
    fn walked_nodes(
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
    fn spliced_nodes(
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
    fn fresh_node(
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
    fn ranked(&self, mut ids: Vec<u64>) -> Ranked {
        ids.sort_unstable();
        ids.dedup();
        let ranks =
            (ids.len() <= SPLICED).then(|| ids.iter().map(|&id| self.nodes.rank(id)).collect());
        Ranked { ids, ranks }
    }

    /// The node table after the node event `narrow`, patched from the earlier one with the
    /// changed nodes `fresh` (made from their records), for a few changed nodes: what
    /// [`NodeTable::patched_from`] reads of the new inventory, known without making it. Each
    /// changed node's registration rank is its position among the records (`changed`'s
    /// ranks). `None` when it cannot be patched so.
    fn patched_table(
        &self,
        narrow: &Narrow<'_>,
        fresh: &[(u64, Arc<Node>)],
        changed: &Ranked,
    ) -> Option<crate::nodes::NodeTable> {
        // Services: the inventory is not patched, so neither table would be used.
        if narrow.nodes.len() > SIDE_TABLE || !self.services.is_empty() {
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
        };
        let before: Vec<&str> = narrow
            .nodes
            .iter()
            .filter_map(|(_, b)| b.as_deref())
            .collect();
        crate::nodes::NodeTable::patched_from(change, narrow.old.compiled.table(), &before)
    }

    /// A record as an inventory node (its owner by login).
    fn node(&self, n: &NodeRecord) -> Result<Node, EngineError> {
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
    fn with_services(&self, inventory: Inventory) -> Result<Inventory, EngineError> {
        if self.services.is_empty() {
            return Ok(inventory);
        }
        let services = self
            .services
            .values()
            .map(|s| s.to_service(|id| self.nodes.get(&id).map(|n| n.name.clone())))
            .collect();
        inventory
            .with_services(services)
            .map_err(EngineError::Inventory)
    }

    /// Compile the records into a snapshot; fingerprint only the nodes the change in `scope`
    /// can reach (or every node when that cannot be bounded). With it, the nodes whose filter
    /// the change is known to have changed while their filter part was left uncomputed.
    fn build(&self, version: u64, scope: Scope<'_>) -> Result<Built, EngineError> {
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
            Scope::Routes(r) => vec![r.node],
            _ => Vec::new(),
        });
        // The inventory, and whether it was patched (the only case the table is used in).
        let inventory = || -> Result<(Arc<Inventory>, bool), EngineError> {
            // `fresh` is empty but on a node event.
            let patched = |old: &Snapshot| {
                Ok(match self.patched_inventory(old, &changed, &fresh) {
                    Some(inventory) => (Arc::new(inventory), true),
                    None => (Arc::new(self.inventory(Some(&old.inventory))?), false),
                })
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
            Scope::Node(n) => self.patched_table(n, &fresh, &changed),
            _ => None,
        };
        let big = crate::par::event_worth_threads(self.nodes.len());
        let (table, inventory) = crate::par::join_if(narrow && big, table, inventory);
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
        // A route change's node, by its name (the same before and after).
        let router: Vec<&str> = match &scope {
            Scope::Routes(r) => self
                .nodes
                .get(&r.node)
                .map(|n| n.name.as_str())
                .into_iter()
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
        let (compiled, names) =
            crate::par::join_if(matches!(scope, Scope::Node(_)) && big, compile, names);
        let narrowed = match scope {
            Scope::Node(n) => n.fingerprints(&compiled, &names),
            Scope::Routes(r) => r.fingerprints(&compiled, &names),
            Scope::Policy(old) => policy_fingerprints(old, &compiled, &names),
            Scope::Everything => None,
        };
        let prints = match narrowed {
            Some(done) => done,
            None => {
                let (out, all) = every_fingerprint(&compiled);
                let n = out.len();
                Prints {
                    fingerprints: out,
                    node_bases: Arc::new(all),
                    stale: vec![0; n.div_ceil(64)],
                    changed: vec![0; n.div_ceil(64)],
                    touched: None,
                    stable: None,
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
const SIDE_TABLE: usize = 4;

/// How far the changes `undo` records can reach. Nodes that serve no route (before and
/// after), users whose devices serve none: only those nodes and the nodes naming them
/// need new fingerprints (a user's login, roles or synced groups move its devices'
/// selectors, as if each device changed; a new user has no device yet). One node's routes
/// or online flag: the servers of its routes. The policy alone: the nodes a changed rule
/// reaches. A Service's host serves its addresses as routes.
fn scope<'a>(inputs: &Inputs, current: &'a Snapshot, undo: &[Undo]) -> Scope<'a> {
    // Only a node's routes (advertised, approved) or online flag changed.
    let only_routes = |before: &NodeRecord, after: &NodeRecord| {
        NodeRecord {
            advertised_routes: after.advertised_routes.clone(),
            approved_routes: after.approved_routes.clone(),
            online: after.online,
            ..before.clone()
        } == *after
    };
    if let Some(nodes) = routeless_nodes(inputs, current, undo) {
        return Scope::Node(Narrow {
            old: current,
            nodes,
        });
    }
    match undo {
        [Undo::Node(id, Some(before))]
            if inputs
                .nodes
                .get(id)
                .is_some_and(|after| only_routes(before, after)) =>
        {
            Scope::Routes(RouteNarrow {
                old: current,
                node: *id,
            })
        }
        [Undo::Policy(_)] => Scope::Policy(current),
        _ => Scope::Everything,
    }
}

/// The nodes `undo`'s changes moved, each with its name before them, when every change is
/// to a node or a user and none of those nodes serves a route before or after; `None`
/// otherwise.
fn routeless_nodes(
    inputs: &Inputs,
    current: &Snapshot,
    undo: &[Undo],
) -> Option<Vec<(u64, Option<String>)>> {
    if undo
        .iter()
        .any(|u| !matches!(u, Undo::Node(..) | Undo::User(..)))
    {
        return None;
    }
    let hosts: HashSet<u64> = inputs
        .services
        .values()
        .flat_map(|s| s.hosts.iter().copied())
        .collect();
    let serves_nothing = |n: &NodeRecord| n.advertised_routes.is_empty() && !hosts.contains(&n.id);
    let users: HashSet<u64> = undo
        .iter()
        .filter_map(|u| match u {
            Undo::User(id, _) => Some(*id),
            _ => None,
        })
        .collect();
    // A node carrying a tag the policy's Kubernetes grants name as a session recorder
    // (before or after) moves those grants' capability values on every node they reach
    // ([`crate::kube`]): not narrowed.
    // The policy is read only for a changed node that carries a tag (not on a member's
    // join), once.
    let recorder_tags = std::cell::OnceCell::new();
    let records = |n: &NodeRecord| {
        n.tags.iter().any(|t| {
            recorder_tags
                .get_or_init(|| crate::kube::policy_recorder_tags(&inputs.policy))
                .binary_search_by(|r| r.as_str().cmp(&aclc_policy::model::canonical_tag(t)))
                .is_ok()
        })
    };
    let mut ids: Vec<u64> = Vec::new();
    for u in undo {
        if let Undo::Node(id, before) = u {
            if !before.as_ref().is_none_or(serves_nothing) || before.as_ref().is_some_and(records) {
                return None;
            }
            ids.push(*id);
        }
    }
    // A changed user's devices (a removed user's left with it: their records are in
    // `undo`).
    if !users.is_empty() {
        ids.extend(
            inputs
                .nodes
                .values()
                .filter(|n| n.user.is_some_and(|u| users.contains(&u)))
                .map(|n| n.id),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    let mut nodes = Vec::with_capacity(ids.len());
    for id in ids {
        let after = inputs.nodes.get(&id);
        if !after.is_none_or(serves_nothing) || after.is_some_and(records) {
            return None;
        }
        let before = current.names.name(id).map(|n| n.to_string());
        nodes.push((id, before));
    }
    Some(nodes)
}

/// A set of stable node ids.
pub(super) type IdSet = crate::hash::Set<u64>;

/// A new snapshot, the nodes (one bit each, by its node ids) whose filter the change is
/// known to have changed while their filter part was left uncomputed, and
/// [`Prints::touched`].
type Built = (Snapshot, Vec<u64>, Option<Vec<u64>>);

/// A snapshot's fingerprints, as an event leaves them (by node id of its compile).
struct Prints {
    fingerprints: Vec<Fingerprint>,
    /// [`Snapshot::node_bases`].
    node_bases: Arc<Vec<[u64; 4]>>,
    /// [`Snapshot::stale`].
    stale: Vec<u64>,
    /// The nodes this event left stale (one bit each): their filter changed.
    changed: Vec<u64>,
    /// The nodes (one bit each) whose fingerprints (or stale flags) may differ from the
    /// previous snapshot's; `None`: any node's may. Removed nodes are found by the change
    /// set.
    touched: Option<Vec<u64>>,
    /// [`Snapshot::stable`], when the event moved it.
    stable: Option<Arc<Vec<u64>>>,
}

impl Snapshot {
    /// The filter parts of the fingerprints of the nodes `nodes` (node ids of this snapshot)
    /// this snapshot left uncomputed, computed from its compile (on every core).
    fn stale_filters(&self, nodes: &[NodeId]) -> Vec<(NodeId, u64)> {
        let work: Vec<(NodeId, &Arc<str>)> = nodes
            .iter()
            .filter(|&&v| crate::bits::bit(&self.stale, v))
            .filter_map(|&v| Some((v, self.compiled.name_of(v)?)))
            .collect();
        parallel(&work, |part| {
            let mut cache = HashCache::default();
            part.iter()
                .filter_map(|&(v, name)| {
                    Some((v, self.compiled.filter_fingerprint(name, &mut cache)?))
                })
                .collect()
        })
    }

    /// Whether any node's filter part was left uncomputed.
    fn has_stale(&self) -> bool {
        self.stale.iter().any(|&w| w != 0)
    }

    /// [`Snapshot::stable`], found by name if no event moved it here.
    fn stable_by_node(&self) -> &Arc<Vec<u64>> {
        self.stable
            .get_or_init(|| Arc::new(stable_by_node(&self.compiled, &self.names)))
    }

    /// Its fingerprints and stale flags moved to the node ids of a later compile (`to_new`:
    /// [`Compiled::ids_from`], `len` nodes), in one pass in id order; a node new there
    /// gets a zero fingerprint (the caller computes it).
    fn moved_prints(&self, to_new: &[u32], len: usize) -> (Vec<Fingerprint>, Vec<u64>) {
        let mut out = vec![Fingerprint::default(); len];
        let mut stale = vec![0u64; len.div_ceil(64)];
        for (i, (&j, fp)) in to_new.iter().zip(self.fingerprints.iter()).enumerate() {
            if let Some(slot) = out.get_mut(j as usize) {
                *slot = *fp;
                if crate::bits::bit(&self.stale, NodeId::new(i)) {
                    crate::bits::set_bit(&mut stale, NodeId::new(j as usize));
                }
            }
        }
        (out, stale)
    }

    /// Its peers' entries moved to the node ids of a later compile (`to_new`:
    /// [`Compiled::ids_from`], `len` nodes), then the entries of `changed` (new ids) put in: a
    /// node taking a changed node's old name is itself changed.
    fn moved_bases(
        &self,
        to_new: &[u32],
        len: usize,
        changed: impl IntoIterator<Item = (NodeId, [u64; 4])>,
    ) -> Vec<[u64; 4]> {
        let mut by_node = vec![[0u64; 4]; len];
        for (&j, base) in to_new.iter().zip(self.node_bases.iter()) {
            if let Some(slot) = by_node.get_mut(j as usize) {
                *slot = *base;
            }
        }
        for (id, base) in changed {
            if let Some(slot) = by_node.get_mut(id.index()) {
                *slot = base;
            }
        }
        by_node
    }
}

/// How far an event's change can reach.
enum Scope<'a> {
    /// Anywhere: fingerprint every node.
    Everything,
    /// One node without routes (see [`Narrow`]).
    Node(Narrow<'a>),
    /// One node's routes or online flag (see [`RouteNarrow`]).
    Routes(RouteNarrow<'a>),
    /// The policy, records unchanged: the snapshot before.
    Policy(&'a Snapshot),
}

/// The fingerprints after a policy change that left the records (so the node table, ids and
/// peers' entries) as they were: the old ones, recomputed for the nodes whose map may differ
/// ([`crate::diff::map_touched`]: those a changed rule item or SSH rule reaches, the nodes
/// whose rules merge differently, the two sides of a changed item). A node only on a side of
/// a changed item keeps its fingerprint when its peer set is the same bit for bit and every
/// route is shown as before (then so is every peer's entry and its routes). `None` when the
/// change may reach every node, or the policy went from compiling to refused or back.
/// What a policy event did to a node's filter part.
#[derive(Clone, Copy)]
enum Filter {
    /// Recomputed.
    Computed,
    /// Proven changed (only entries added, or only removed): left uncomputed.
    Grew,
    /// The node's rules are unchanged: the part (computed or not) is the old one.
    Inherited,
}

fn policy_fingerprints(
    old: &Snapshot,
    compiled: &Compiled,
    names: &names::NodeNames,
) -> Option<Prints> {
    if compiled.refusal().is_some() != old.compiled.refusal().is_some() {
        return None;
    }
    let (touched, items) = crate::diff::map_touched(&old.compiled, compiled)?;
    let routes_alike = compiled.routes_shown_alike(&old.compiled);
    // In node id order (the same table: the fingerprints' order).
    let work: Vec<(&Arc<str>, NodeId, u8)> = (0..compiled.table().len())
        .map(NodeId::new)
        .filter_map(|node| {
            let flags = touched.get(node.index()).copied().unwrap_or(u8::MAX);
            (flags != 0).then_some((compiled.name_of(node)?, node, flags))
        })
        .collect();
    // The same node table: the same entries under the same ids.
    let by_node = &old.node_bases;
    // A node keeps the peers' part of its fingerprint when every route is shown as before and
    // it is on no side of a changed item, or its peers are the same bit for bit (compared
    // on the smaller side of each changed item: `Compiled::peers_flipped`).
    let mut peers_kept = vec![routes_alike; names.len()];
    if routes_alike {
        let flipped = compiled.peers_flipped(&old.compiled, &items.changed);
        for &(_, node, flags) in &work {
            if flags & crate::diff::MAP_PEERS == 0 {
                continue;
            }
            if let Some(kept) = peers_kept.get_mut(node.index()) {
                *kept =
                    !crate::bits::bit(&flipped, node) && compiled.self_alike(&old.compiled, node);
            }
        }
    }
    // Rules unchanged and peers kept: nothing to do. Rules changed, peers kept: only the
    // filter and SSH parts. Otherwise the whole fingerprint. A filter that only gained
    // entries (`entry_count_verdict`) is known to have changed: its part is left uncomputed.
    let unpaired = items.unpaired;
    let again = |part: &[(&Arc<str>, NodeId, u8)]| -> Vec<(NodeId, (Fingerprint, Filter))> {
        let mut cache = HashCache::default();
        part.iter()
            .filter_map(|&(name, node, flags)| {
                let kept = peers_kept.get(node.index()).copied().unwrap_or(false);
                let rules = flags & crate::diff::MAP_RULES != 0;
                let ssh = flags & crate::diff::MAP_SSH != 0;
                let grew = rules
                    && compiled.entry_count_verdict(node, &old.compiled, &unpaired)
                        == crate::lower::Verdict::Changed;
                if !rules && !ssh && kept {
                    return None;
                }
                if !routes_alike {
                    let fp = compiled.fingerprint_parts(name, by_node, &mut cache, !grew)?;
                    let filter = if grew { Filter::Grew } else { Filter::Computed };
                    return Some((node, (fp, filter)));
                }
                // Every route shown alike: capabilities and own part are as before (same
                // node table and `nodeAttrs`), every peer's entry too; the peers' part is
                // patched by the peers gained and lost, the rules' parts recomputed.
                let mut fp = old.fingerprints.get(node.index()).copied()?;
                if !kept {
                    fp.peers = compiled.patched_peers(&old.compiled, node, by_node, fp.peers)?;
                }
                if ssh {
                    fp.ssh = compiled.ssh_fingerprint(name)?;
                }
                let filter = match (rules, grew) {
                    (false, _) => Filter::Inherited,
                    (true, true) => Filter::Grew,
                    (true, false) => {
                        fp.filter = compiled.filter_fingerprint(name, &mut cache)?;
                        Filter::Computed
                    }
                };
                Some((node, (fp, filter)))
            })
            .collect()
    };
    let fresh = parallel(&work, again);
    // Only the nodes of `work` can have another fingerprint or stale flag: every other node's
    // are the old ones, copied (the change set compared all 100,000 nodes of `large`). The
    // same node table: the same node ids.
    let words = compiled.table().len().div_ceil(64);
    let mut touched = vec![0u64; words];
    for &(_, node, _) in &work {
        crate::bits::set_bit(&mut touched, node);
    }
    let mut stale = old.stale.clone();
    let mut changed = vec![0u64; words];
    let mut out = old.fingerprints.clone();
    if out.len() != compiled.table().len() || stale.len() != words {
        return None;
    }
    for (node, (fp, filter)) in fresh {
        match filter {
            Filter::Computed => crate::bits::clear_bit(&mut stale, node),
            Filter::Grew => {
                crate::bits::set_bit(&mut stale, node);
                crate::bits::set_bit(&mut changed, node);
            }
            Filter::Inherited => {}
        }
        *out.get_mut(node.index())? = fp;
    }
    Some(Prints {
        fingerprints: out,
        node_bases: old.node_bases.clone(),
        stale,
        changed,
        touched: Some(touched),
        // The same node table.
        stable: old.stable.get().cloned(),
    })
}

/// A change to nodes without routes (the policy unchanged): one node's record, or one
/// user's (its devices' selectors moved).
struct Narrow<'a> {
    /// The snapshot before the change.
    old: &'a Snapshot,
    /// The changed nodes' ids, each with its name before the change (if it existed).
    nodes: Vec<(u64, Option<String>)>,
}

impl Narrow<'_> {
    /// The servers (old id, new id, name) of the subnet routes holding an address of a
    /// changed node (`ends`: each one's ids before and after), the changed nodes left out.
    /// `None` when a server is missing from a compile.
    fn servers_over<'c>(
        &self,
        compiled: &'c Compiled,
        ends: &[(u64, Option<NodeId>, Option<NodeId>)],
    ) -> Option<Vec<(NodeId, NodeId, &'c Arc<str>)>> {
        let old = &self.old.compiled;
        let before: Vec<NodeId> = ends.iter().filter_map(|e| e.1).collect();
        let after: Vec<NodeId> = ends.iter().filter_map(|e| e.2).collect();
        let held =
            crate::compiled::addresses_of([(old.table(), &before), (compiled.table(), &after)])?;
        let mut names = old.servers_over(&held);
        names.extend(compiled.servers_over(&held));
        names.sort_unstable();
        names.dedup();
        // The changed nodes' names, sorted: each server looked up once (O(servers x log
        // changed), not servers x changed).
        let mut changed: Vec<&str> = before
            .iter()
            .filter_map(|&b| old.name_of(b))
            .chain(after.iter().filter_map(|&a| compiled.name_of(a)))
            .map(|n| &**n)
            .collect();
        changed.sort_unstable();
        names
            .iter()
            .filter(|name| changed.binary_search(&&***name).is_err())
            .map(|name| {
                let sv = compiled.id_of(name)?;
                Some((old.id_of(name)?, sv, compiled.name_of(sv)?))
            })
            .collect()
    }

    /// The new compile's fingerprints: the old ones, with the changed nodes' recomputed; the
    /// SSH part recomputed for the nodes whose SSH rules may name one before or after the
    /// change (the destinations of SSH rules it is a source of); the filter part of the nodes
    /// whose filter may name one ([`Compiled::filter_dependents`]) decided from the rule items
    /// ([`crate::lower::SourceMoves`]: unchanged, changed and left uncomputed, or assembled
    /// and hashed where the items cannot tell); and the peers' part of their peers patched: a
    /// peers' fingerprint is a sum over peers, and only the changed nodes' entries changed (no
    /// other node's selectors, routes or attributes did). When the rules merge differently (an
    /// item came or went, or two items' sources became equal or different), the items are
    /// paired through their rules, and the nodes the regrouping reaches
    /// ([`Compiled::regrouped`]) are decided from the items without a partner
    /// ([`crate::lower::Lowered::regrouped_verdict`]) or assembled. `None` when those sets
    /// cannot be bounded, when what `*` means
    /// changed with the merging, or when the policy went from compiling to refused or back
    /// (the work budget counts nodes).
    fn fingerprints(&self, compiled: &Compiled, names: &names::NodeNames) -> Option<Prints> {
        let old = &self.old.compiled;
        if compiled.refusal().is_some() != old.refusal().is_some() {
            return None;
        }
        // Rules that merge otherwise than before (an item came or went, two items' sources
        // became equal or different): the items are paired through their rules, not index
        // for index, and the nodes the regrouping reaches are decided apart.
        let merges = compiled.merges_like(old);
        let (n, words) = (compiled.table().len(), compiled.table().len().div_ceil(64));
        // Each changed node's id before (in the old compile) and after.
        let mut ends: Vec<(u64, Option<NodeId>, Option<NodeId>)> = Vec::new();
        for (node, old_name) in &self.nodes {
            let before = match old_name {
                Some(name) => Some(old.id_of(name)?),
                None => None,
            };
            let after = match names.name(*node) {
                Some(name) => Some(compiled.id_of(name)?),
                None => None,
            };
            ends.push((*node, before, after));
        }
        // A changed node with an address inside a subnet route: a viewer is shown a route
        // its items' addresses reach into, and the node's address entered or left those
        // items, so the route's servers' entries in their peers' parts may change too. Those
        // servers are fingerprinted in full and their entries patched (taken away as they
        // were, added as they are), as for a route event. Each with its old and new id.
        let servers = self.servers_over(compiled, &ends)?;
        // Their dependents before and after, on every core.
        let work: Vec<(bool, NodeId)> = ends
            .iter()
            .flat_map(|&(_, b, a)| {
                let before = b.map(|b| (false, b));
                before.into_iter().chain(a.map(|a| (true, a)))
            })
            .collect();
        // Old node ids translated to new ones by name (an unchanged node keeps its name).
        let to_new = compiled.ids_from(old);
        let translate = |i: NodeId| crate::nodes::translated(&to_new, i);
        // Per node (new ids): the nodes whose SSH rules or filter may name a changed node.
        // Each core marks its share's in bits of its own as it finds them, so one changed
        // node's lists are held at a time (all of them held until the marking were 37 MiB
        // for a batch of 100 joins on `large`).
        let min = crate::par::min_items(crate::par::event_worth_threads(n), 2);
        let parts = crate::par::map_parts(&work, min, |part| {
            let (mut ssh, mut filter) = (vec![0u64; words], vec![0u64; words]);
            let reaches: Vec<Option<Reach>> = part
                .iter()
                .map(|&(after, id)| {
                    let d = Dependents::at(if after { compiled } else { old }, id)?;
                    let to = |v: NodeId| if after { Some(v) } else { translate(v) };
                    for v in d.ssh.iter().copied().filter_map(to) {
                        crate::bits::set_bit(&mut ssh, v);
                    }
                    for v in d.filter.iter().copied().filter_map(to) {
                        crate::bits::set_bit(&mut filter, v);
                    }
                    Some(Reach {
                        peers: d.peers,
                        base: d.base,
                    })
                })
                .collect();
            vec![(reaches, ssh, filter)]
        });
        let (mut ssh_bits, mut filter_bits) = (vec![0u64; words], vec![0u64; words]);
        let mut deps = Vec::with_capacity(work.len());
        for (reaches, ssh, filter) in parts {
            ssh_bits.iter_mut().zip(&ssh).for_each(|(w, s)| *w |= s);
            filter_bits
                .iter_mut()
                .zip(&filter)
                .for_each(|(w, f)| *w |= f);
            deps.extend(reaches);
        }
        let mut deps = deps.into_iter();
        // The nodes fingerprinted in full, by new id: the changed ones and the servers above
        // (none of whose parts is patched or decided apart).
        let mut full_bits = vec![0u64; words];
        for &(_, _, after) in &ends {
            if let Some(a) = after {
                crate::bits::set_bit(&mut full_bits, a);
            }
        }
        for &(_, sv, _) in &servers {
            crate::bits::set_bit(&mut full_bits, sv);
        }
        // Per node (new ids): the sum to add to each peer's peers' part (a changed node's
        // entry subtracted as it was, added as it is).
        let (mut patch, mut patched) = (vec![0u64; n], vec![0u64; words]);
        let column = |v: NodeId| usize::from(compiled.families_missing(v));
        let (mut out, mut stale) = self.old.moved_prints(&to_new, n);
        let mut present: Vec<(NodeId, &Arc<str>)> = Vec::new();
        let mut new_bases = Vec::new();
        // Puts a changed node's entry in its peers' sums, in new ids (`to` maps the ids of the
        // compile its peers were found in): taken away as it was (`add` false, the old
        // compile), added as it is.
        let mut mark = |d: &Reach, to: &dyn Fn(NodeId) -> Option<NodeId>, add: bool| {
            for v in crate::bits::iter_bits(&d.peers).filter_map(to) {
                let entry = d.base.get(column(v)).copied().unwrap_or(0);
                if let Some(sum) = patch.get_mut(v.index()) {
                    *sum = match add {
                        true => sum.wrapping_add(entry),
                        false => sum.wrapping_sub(entry),
                    };
                }
                crate::bits::set_bit(&mut patched, v);
            }
        };
        for &(node, before, after) in &ends {
            if before.is_some() {
                mark(&deps.next()??, &translate, false);
            }
            if let Some(a) = after {
                let d = deps.next()??;
                mark(&d, &Some, true);
                new_bases.push((a, d.base));
                crate::bits::clear_bit(&mut stale, a);
                present.push((a, names.name(node)?));
            }
        }
        // Each node's stable id, moved from the old snapshot's by the translation, the
        // changed nodes' put in (a node taking a changed node's old name is changed).
        let mut stable_of = vec![NO_NODE; n];
        for (&j, &id) in to_new.iter().zip(self.old.stable_by_node().iter()) {
            if let Some(slot) = stable_of.get_mut(j as usize) {
                *slot = id;
            }
        }
        for &(node, _, after) in &ends {
            if let Some(slot) = after.and_then(|a| stable_of.get_mut(a.index())) {
                *slot = node;
            }
        }
        debug_assert_eq!(
            stable_of,
            stable_by_node(compiled, names),
            "stable ids moved by the translation"
        );
        // Peers' entries by new node id.
        let by_node = self.old.moved_bases(&to_new, n, new_bases);
        for &(so, sv, _) in &servers {
            crate::bits::clear_bit(&mut stale, sv);
            let old_base = *self.old.node_bases.get(so.index())?;
            for w in crate::bits::iter_bits(&old.peer_bits_at(so)) {
                let Some(v) = translate(w) else { continue };
                let sum = patch.get_mut(v.index())?;
                *sum = sum.wrapping_sub(old.peer_entry_at(w, so, old_base));
                crate::bits::set_bit(&mut patched, v);
            }
            let base = *by_node.get(sv.index())?;
            for v in crate::bits::iter_bits(&compiled.peer_bits_at(sv)) {
                let sum = patch.get_mut(v.index())?;
                *sum = sum.wrapping_add(compiled.peer_entry_at(v, sv, base));
                crate::bits::set_bit(&mut patched, v);
            }
        }
        let old_names: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|(_, n)| n.as_deref())
            .collect();
        let new_names: Vec<&str> = present.iter().map(|(_, n)| &***n).collect();
        // The changed nodes fingerprinted in full on one core (a retagged server's filter,
        // peers and SSH rules: 7 ms on `large`) while the other pairs the two lowerings'
        // items. Filters: decided from the items where they can be; the rest assembled. When
        // the rules merge otherwise, the items are paired through their rules and the nodes
        // the regrouping reaches (`forced`) are decided from the items without a partner.
        let in_full: Vec<(NodeId, &Arc<str>)> = present
            .iter()
            .copied()
            .chain(servers.iter().map(|&(_, sv, name)| (sv, name)))
            .collect();
        let (full, paired) = crate::par::join_if(
            crate::par::event_worth_threads(n),
            || fingerprints(compiled, &in_full, &by_node),
            || -> Option<_> {
                let (moves, forced) = match merges {
                    true => (
                        compiled.source_moves(old, (&old_names, &new_names), None),
                        None,
                    ),
                    false => {
                        let (regrouped, pair) = compiled.regrouped(old, &to_new)?;
                        let moves =
                            compiled.source_moves(old, (&old_names, &new_names), Some(&pair));
                        (moves, Some(regrouped))
                    }
                };
                // A list that became (or stopped being) some user's devices moves that
                // user's self rule to another slot, on devices the node's items do not
                // reach.
                let claimants = moves
                    .as_ref()
                    .map(|moves| compiled.self_claimants(moves))
                    .unwrap_or_default();
                Some((moves, forced, claimants))
            },
        );
        for (v, fp) in full {
            *out.get_mut(v.index())? = fp;
        }
        let (moves, forced, claimants) = paired?;
        for (w, r) in filter_bits.iter_mut().zip(forced.iter().flatten()) {
            *w |= r;
        }
        for name in claimants {
            if let Some(v) = compiled.id_of(&name) {
                crate::bits::set_bit(&mut filter_bits, v);
            }
        }
        // The changed nodes were fingerprinted in full.
        let unchanged = |bits: &[u64]| -> Vec<(NodeId, &Arc<str>)> {
            crate::bits::iter_bits(bits)
                .filter(|&v| !crate::bits::bit(&full_bits, v))
                .filter_map(|v| Some((v, compiled.name_of(v)?)))
                .collect()
        };
        // Each node's old id, from the translation's inverse (a node not named by the change
        // kept its name; the changed nodes are left out above).
        let to_old = crate::nodes::inverse_ids(&to_new, n);
        let to_decide: Vec<ToDecide<'_>> = crate::bits::iter_bits(&filter_bits)
            .filter(|&v| !crate::bits::bit(&full_bits, v))
            .filter_map(|v| {
                let name = compiled.name_of(v)?;
                Some((v, name, crate::nodes::translated(&to_old, v)))
            })
            .collect();
        let mut changed = vec![0u64; words];
        decide_filters(
            (compiled, old),
            (moves.as_ref(), forced.as_deref()),
            &to_decide,
            (&mut out, &mut stale, &mut changed),
        )?;
        // SSH parts. When the SSH rules were patched, each node a moved rule's piece reaches
        // has its part moved by that piece's change, and only the nodes other moved rules
        // reach are hashed again (a retag's 19,716 SSH dependents on `large` were each
        // hashed again, a fifth of the event). Otherwise every node whose rules may name a
        // changed node is hashed again.
        let (ssh_again, ssh_moved) = match compiled.ssh_moves(old) {
            Some(moves) => {
                let mut again_bits = vec![0u64; words];
                moves
                    .again
                    .iter()
                    .for_each(|&v| crate::bits::set_bit(&mut again_bits, v));
                // Each node's sum is in a dense array (a tree of 25,000 sums took 1.5 ms);
                // the nodes hashed again or in full take no sum.
                let moved: Vec<(NodeId, u64)> = crate::bits::iter_bits(&moves.summed)
                    .filter(|&v| {
                        !crate::bits::bit(&again_bits, v) && !crate::bits::bit(&full_bits, v)
                    })
                    .filter_map(|v| Some((v, *moves.sums.get(v.index())?)))
                    .collect();
                (unchanged(&again_bits), moved)
            }
            None => (unchanged(&ssh_bits), Vec::new()),
        };
        for (v, ssh) in part_fingerprints(&ssh_again, |name| compiled.ssh_fingerprint(name)) {
            out.get_mut(v.index())?.ssh = ssh;
        }
        for &(v, delta) in &ssh_moved {
            let fp = out.get_mut(v.index())?;
            fp.ssh = fp.ssh.wrapping_add(delta);
        }
        // Debug builds hash every node whose rules may name a changed node, and every node
        // moved, again and compare.
        #[cfg(debug_assertions)]
        for (v, name) in unchanged(&ssh_bits).into_iter().chain(
            ssh_moved
                .iter()
                .filter_map(|&(v, _)| Some((v, compiled.name_of(v)?))),
        ) {
            debug_assert_eq!(
                out.get(v.index()).map(|f| f.ssh),
                compiled.ssh_fingerprint(name),
                "a node's SSH part moved by the changed pieces differs from its hash"
            );
        }
        // What this may have changed: the changed nodes (the removed ones the change set
        // finds), the filters decided, the SSH parts recomputed, the peers' parts patched.
        let mut touched = full_bits.clone();
        for &(v, _, _) in &to_decide {
            crate::bits::set_bit(&mut touched, v);
        }
        for &(v, _) in &ssh_again {
            crate::bits::set_bit(&mut touched, v);
        }
        for &(v, _) in &ssh_moved {
            crate::bits::set_bit(&mut touched, v);
        }
        for v in crate::bits::iter_bits(&patched) {
            if crate::bits::bit(&full_bits, v) {
                continue;
            }
            crate::bits::set_bit(&mut touched, v);
            let fp = out.get_mut(v.index())?;
            fp.peers = fp
                .peers
                .wrapping_add(patch.get(v.index()).copied().unwrap_or(0));
        }
        Some(Prints {
            fingerprints: out,
            node_bases: Arc::new(by_node),
            stale,
            changed,
            touched: Some(touched),
            stable: Some(Arc::new(stable_of)),
        })
    }
}

/// What a changed node's map reaches in one compile (that compile's node ids): its peers (one
/// bit per node), the nodes whose SSH rules or packet filter may name it, and its entry in its
/// peers' fingerprints.
struct Dependents {
    peers: Vec<u64>,
    ssh: Vec<NodeId>,
    filter: Vec<NodeId>,
    base: [u64; 4],
}

/// The part of [`Dependents`] kept until a changed node's entry is put in its peers' sums.
struct Reach {
    peers: Vec<u64>,
    base: [u64; 4],
}

impl Dependents {
    /// Node `id`'s dependents in `compiled`; `None` when they cannot be bounded.
    fn at(compiled: &Compiled, id: NodeId) -> Option<Dependents> {
        Some(Dependents {
            peers: compiled.peer_bits_at(id),
            ssh: compiled.ssh_dependents_at(id)?,
            filter: compiled.filter_dependents_at(id)?,
            base: compiled.peer_base_at(id)?,
        })
    }
}

/// A change to one node's routes (advertised, approved) or online flag, nothing else.
struct RouteNarrow<'a> {
    /// The snapshot before the change.
    old: &'a Snapshot,
    /// The node's id.
    node: u64,
}

impl RouteNarrow<'_> {
    /// The new compile's fingerprints. Only the servers of the routes the node serves, before
    /// or after (it among them), can look different as peers: their routes, primaries and
    /// `via` carriers moved; they are fingerprinted in full. Every other node's filter, SSH
    /// rules, cap map and own part are as before (its `DstPorts` come from its own routes,
    /// `SrcIPs` from addresses and policy text, except `*`: see below), so for the
    /// peers of those servers, before or after, only the servers' entries in the peers' part
    /// are patched (subtracted as they were, added as they are). `None` (fingerprint every
    /// node) when the rules merge differently (what `*` means aside), or the policy went
    /// from compiling to refused or back.
    fn fingerprints(&self, compiled: &Compiled, names: &names::NodeNames) -> Option<Prints> {
        let old = &self.old.compiled;
        if compiled.refusal().is_some() != old.refusal().is_some() || !compiled.slots_like(old) {
            return None;
        }
        let name = names.name(self.node)?;
        let mut servers = stable_ids(old.route_servers(name), &self.old.names);
        servers.extend(stable_ids(compiled.route_servers(name), names));
        servers.insert(self.node);
        let n = compiled.table().len();
        let to_new = compiled.ids_from(old);
        let (mut out, mut stale) = self.old.moved_prints(&to_new, n);
        let mut all: Vec<(NodeId, &Arc<str>)> = Vec::with_capacity(servers.len());
        let mut server_bases = Vec::with_capacity(servers.len());
        for &s in &servers {
            let s_name = names.name(s)?;
            let v = compiled.id_of(s_name)?;
            server_bases.push((v, compiled.peer_base(s_name)?));
            all.push((v, s_name));
            crate::bits::clear_bit(&mut stale, v);
        }
        let by_node = Arc::new(self.old.moved_bases(&to_new, n, server_bases));
        for (v, fp) in fingerprints(compiled, &all, &by_node) {
            *out.get_mut(v.index())? = fp;
        }
        // Everything below is by node id: the servers' (new ids) as bits, each node's old id
        // from the translation's inverse. What it changes is `touched`, for the change set.
        let words = n.div_ceil(64);
        let mut server_bits = vec![0u64; words];
        for &(v, _) in &all {
            crate::bits::set_bit(&mut server_bits, v);
        }
        let mut touched = server_bits.clone();
        let to_old = crate::nodes::inverse_ids(&to_new, n);
        let translated = crate::nodes::translated;
        // `*` lists every subnet route: a route that appeared or vanished moves the sources
        // of every rule from `*`. Those filters are decided from the items, as for a node
        // event (`SourceMoves`), the rest assembled.
        let mut changed = vec![0u64; words];
        if !compiled.merges_like(old) {
            let moves = compiled.source_moves(old, (&[name], &[name]), None)?;
            let mut reach = compiled.moved_reach(old, &moves);
            for claimant in compiled.self_claimants(&moves) {
                if let Some(v) = compiled.id_of(&claimant) {
                    crate::bits::set_bit(&mut reach, v);
                }
            }
            let reached: Vec<ToDecide<'_>> = crate::bits::iter_bits(&reach)
                .filter(|&v| !crate::bits::bit(&server_bits, v))
                .filter_map(|v| Some((v, compiled.name_of(v)?, translated(&to_old, v))))
                .collect();
            for &(v, _, _) in &reached {
                crate::bits::set_bit(&mut touched, v);
            }
            decide_filters(
                (compiled, old),
                (Some(&moves), None),
                &reached,
                (&mut out, &mut stale, &mut changed),
            )?;
        }
        // Each server's entry in its peers' parts: taken away as it was (its peers in the old
        // compile, its old entry), added as it is.
        for &(sv, s_name) in &all {
            if let Some(so) = old.id_of(s_name) {
                let base = *self.old.node_bases.get(so.index())?;
                for w in crate::bits::iter_bits(&old.peer_bits_at(so)) {
                    let v = translated(&to_new, w)?;
                    if crate::bits::bit(&server_bits, v) {
                        continue;
                    }
                    crate::bits::set_bit(&mut touched, v);
                    let fp = out.get_mut(v.index())?;
                    fp.peers = fp.peers.wrapping_sub(old.peer_entry_at(w, so, base));
                }
            }
            let base = *by_node.get(sv.index())?;
            for v in crate::bits::iter_bits(&compiled.peer_bits_at(sv)) {
                if crate::bits::bit(&server_bits, v) {
                    continue;
                }
                crate::bits::set_bit(&mut touched, v);
                let fp = out.get_mut(v.index())?;
                fp.peers = fp.peers.wrapping_add(compiled.peer_entry_at(v, sv, base));
            }
        }
        Some(Prints {
            fingerprints: out,
            node_bases: by_node,
            stale,
            changed,
            touched: Some(touched),
            // The same names (a route event renames no node): the same node ids.
            stable: (to_new.len() == n && to_new.iter().enumerate().all(|(i, &j)| j as usize == i))
                .then(|| self.old.stable.get().cloned())
                .flatten(),
        })
    }
}

/// Each node's stable id by node id of `compiled` ([`NO_NODE`] for none), found by name.
fn stable_by_node(compiled: &Compiled, names: &names::NodeNames) -> Vec<u64> {
    (0..compiled.table().len())
        .map(|v| {
            compiled
                .name_of(NodeId::new(v))
                .and_then(|name| names.id(name))
                .unwrap_or(NO_NODE)
        })
        .collect()
}

/// The ids of the nodes named in `list` (stable ids through `map`).
fn stable_ids(list: Vec<Arc<str>>, names: &names::NodeNames) -> IdSet {
    list.iter().filter_map(|n| names.id(n)).collect()
}

/// A node whose filter part an event decides: its id in the new compile, its name, and its id
/// in the old one, when known.
type ToDecide<'a> = (NodeId, &'a Arc<str>, Option<NodeId>);

/// The filter parts of `nodes` after an event, on every core: each node's verdict from the
/// rule items (`moves`; without them every node is assembled), the nodes in `forced` (one bit
/// each: the regrouping reaches them) from the items without a partner alone
/// ([`crate::lower::Lowered::regrouped_verdict`]). `Same` keeps the part,
/// `Changed` leaves it uncomputed (stale, and in `changed`), `Assemble` hashes the new
/// filter. `None` when a node has no fingerprint to update. A node comes with its ids in
/// the two compiles when the caller has them (else they are looked up by name).
fn decide_filters(
    (compiled, old): (&Compiled, &Compiled),
    (moves, forced): (Option<&crate::lower::SourceMoves>, Option<&[u64]>),
    nodes: &[ToDecide<'_>],
    (out, stale, changed): (&mut [Fingerprint], &mut [u64], &mut [u64]),
) -> Option<()> {
    let decided = parallel(nodes, |part| {
        let mut cache = HashCache::default();
        part.iter()
            .filter_map(|&(v, name, was)| {
                debug_assert!(
                    compiled.id_of(name) == Some(v)
                        && was.is_none_or(|w| old.id_of(name) == Some(w))
                );
                let regrouped = forced.is_some_and(|f| crate::bits::bit(f, v));
                let verdict = match (moves, was) {
                    (Some(moves), Some(w)) => {
                        compiled.filter_verdict_at((v, w), old, moves, regrouped)
                    }
                    (Some(moves), None) if !regrouped => compiled.filter_verdict(name, old, moves),
                    _ => crate::lower::Verdict::Assemble,
                };
                let filter = match verdict {
                    crate::lower::Verdict::Same => return None,
                    crate::lower::Verdict::Changed => None,
                    crate::lower::Verdict::Assemble => {
                        Some(compiled.filter_fingerprint(name, &mut cache)?)
                    }
                };
                Some((v, filter))
            })
            .collect()
    });
    for (v, filter) in decided {
        match filter {
            Some(hash) => {
                out.get_mut(v.index())?.filter = hash;
                crate::bits::clear_bit(stale, v);
            }
            None => {
                crate::bits::set_bit(changed, v);
                crate::bits::set_bit(stale, v);
            }
        }
    }
    Some(())
}

/// One part of the fingerprints of nodes `nodes` (`part` of a node's name), on every core.
fn part_fingerprints(
    nodes: &[(NodeId, &Arc<str>)],
    part: impl Fn(&str) -> Option<u64> + Sync,
) -> Vec<(NodeId, u64)> {
    let work = |chunk: &[(NodeId, &Arc<str>)]| -> Vec<(NodeId, u64)> {
        chunk
            .iter()
            .filter_map(|&(v, name)| Some((v, part(name)?)))
            .collect()
    };
    parallel(nodes, work)
}

/// `work` over `items` (nodes to fingerprint or decide) split across the machine's cores (at
/// most 8), results in order, when they are a thousand or more (fewer take about a
/// millisecond: less than a thread may wait for a core on a busy host).
fn parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    crate::par::map_parts(items, 1024, work)
}

/// Every node's fingerprint (by node id; a node without a name keeps the default) and
/// every node's peers' entries, computed in full from `compiled`.
fn every_fingerprint(compiled: &Compiled) -> (Vec<Fingerprint>, Vec<[u64; 4]>) {
    let all = compiled.peer_bases();
    let n = compiled.table().len();
    let nodes: Vec<(NodeId, &Arc<str>)> = (0..n)
        .map(NodeId::new)
        .filter_map(|v| Some((v, compiled.name_of(v)?)))
        .collect();
    let mut out = vec![Fingerprint::default(); n];
    for (v, fp) in fingerprints(compiled, &nodes, &all) {
        if let Some(slot) = out.get_mut(v.index()) {
            *slot = fp;
        }
    }
    (out, all)
}

/// The fingerprints of the nodes `nodes` (node ids of `compiled`, with their names), on
/// every core.
fn fingerprints(
    compiled: &Compiled,
    nodes: &[(NodeId, &Arc<str>)],
    bases: &[[u64; 4]],
) -> Vec<(NodeId, Fingerprint)> {
    let work = |part: &[(NodeId, &Arc<str>)]| -> Vec<(NodeId, Fingerprint)> {
        let mut cache = HashCache::default();
        part.iter()
            .filter_map(|&(v, name)| Some((v, compiled.fingerprint(name, bases, &mut cache)?)))
            .collect()
    };
    parallel(nodes, work)
}
