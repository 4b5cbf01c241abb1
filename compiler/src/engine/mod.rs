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
mod extent;
mod freer;
mod inputs;
mod names;
mod narrow;
mod nodeset;
mod prints;
pub mod questions;
mod records;
mod steps;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use aclc_policy::model::Policy;

pub use changeset::{ChangeSet, NodeChange};
pub use records::{Event, NodeRecord, ServiceRecord, TailnetState, UserRecord};

use crate::compiled::{compile_marked, CompileOptions, Compiled, Fingerprint, HashCache, NodeView};
use crate::inventory::{Inventory, InventoryError, Node, Registration, Tailnet, User};
use crate::nodes::NodeId;
use extent::*;
use narrow::*;
use prints::*;

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
    /// The compiler refuses the tailnet the event would make (the policy needs more work
    /// than [`crate::CompileLimits`] allows, or an IP set cannot be resolved). The engine
    /// keeps serving the previous state; a state refused already (an engine created with a
    /// policy the compiler refuses) stays refused, granting nothing, until an event makes
    /// it compile.
    Compile(crate::CompileError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Inventory(e) => write!(f, "{e}"),
            EngineError::UnknownNode(id) => write!(f, "unknown node id {id}"),
            EngineError::UnknownUser(id) => write!(f, "unknown user id {id}"),
            EngineError::Compile(e) => write!(f, "{e}"),
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
    /// Nodes (one bit each, by node id) whose SSH rules are those of the snapshot this one
    /// was built from, although their fingerprint's SSH part differs: a piece moved between
    /// two rules of equal content, or a rule's label changed ([`crate::ssh::Labels`]). Read
    /// by that event's change set only. `None` when the event did not decide them (every
    /// node fingerprinted, or a batch in steps, whose change set compares with the snapshot
    /// before the first step): the change set compares each node whose SSH part differs.
    ssh_same: Option<Vec<u64>>,
    /// Each node's `PeerBases` entry, by node id of this snapshot's
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
        records::check_unique(&state).map_err(EngineError::Inventory)?;
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
        inputs.store_approvals(&mut Vec::new())?;
        let current = Arc::new(inputs.build(0, Scope::Everything, None)?.0);
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
        // The event's phases are spans under this one ([`crate::phases`]).
        let span = tracing::debug_span!(
            crate::phases::EVENT,
            version = self.current.version + 1,
            path = tracing::field::Empty,
            changed = tracing::field::Empty
        );
        let _entered = span.enter();
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
        span.record("path", scope.path());
        // The records as they were before the approvals stored, for a refused batch.
        let mut stored_undo = Vec::new();
        let result = self
            .inputs
            .store_approvals(&mut stored_undo)
            .and_then(|stored| {
                // Sets, not scans: a batch may change many nodes and store many approvals.
                let scoped: HashSet<u64> = match &scope {
                    Scope::Node(n) => n.nodes.iter().map(|(node, _)| *node).collect(),
                    Scope::Routes(r) => r.nodes.iter().copied().collect(),
                    _ => HashSet::new(),
                };
                if !stored.iter().all(|id| scoped.contains(id)) {
                    scope = Scope::Everything;
                }
                // Node events with a router among them, or a policy or Service change beside
                // other changes: in steps that each take a narrow path (the steps see only the
                // changed nodes' records, so not when an approval was stored for another node).
                let changed: HashSet<u64> = undo
                    .iter()
                    .filter_map(|u| match u {
                        Undo::Node(id, _) => Some(*id),
                        _ => None,
                    })
                    .collect();
                let stored_elsewhere = stored.iter().any(|s| !changed.contains(s));
                if matches!(scope, Scope::Everything) && !stored_elsewhere {
                    if let Some(built) = self.inputs.build_in_steps(version, &self.current, &undo) {
                        span.record("path", "steps");
                        return built;
                    }
                }
                self.inputs.build(version, scope, Some(&self.current))
            });
        // A batch whose tailnet the compiler refuses (work beyond its limits, an IP set it
        // cannot resolve) is refused, not served as a tailnet with no access: the previous
        // snapshot stays (only a state that was refused already may stay refused).
        let result = result.and_then(|built| {
            match (self.current.compiled.refusal(), built.0.compiled.refusal()) {
                (None, Some(error)) => Err(EngineError::Compile(error.clone())),
                _ => Ok(built),
            }
        });
        match result {
            Ok((snapshot, filters_changed, touched)) => {
                let changes = tracing::debug_span!(crate::phases::CHANGE_SET).in_scope(|| {
                    changeset::diff(
                        &self.current,
                        &snapshot,
                        &filters_changed,
                        touched.as_deref(),
                    )
                });
                span.record("changed", changes.changed.len() + changes.removed.len());
                let old = std::mem::replace(&mut self.current, Arc::new(snapshot));
                let previous = self.shared.store(self.current.clone());
                // Freed outside the readers' lock (by a reader, if one still holds it), on
                // the engine's freeing thread unless `EngineOptions::free_in_place`.
                self.freer.free((old, previous));
                Ok(changes)
            }
            Err(error) => {
                self.inputs.undo(stored_undo);
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
