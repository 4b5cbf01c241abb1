//! The control-server engine's operations (`engine_new`, `engine_apply`, `engine_map`,
//! `engine_query`): an [`aclc_compiler::engine::Engine`] kept under a handle, fed events as
//! JSON, answering change sets, node maps and the server's questions. Shapes in
//! `docs/embedding.md`, "The engine".

use std::sync::Arc;

use aclc_compiler::engine::questions::{PeerReason, SshOutcome, Tagger};
use aclc_compiler::engine::{
    self, ApprovalMode, ChangeSet, EngineError, EngineOptions, Event, NodeChange, NodeRecord,
    ServiceRecord, Snapshot, TailnetState, UserRecord,
};
use aclc_policy::diag::Located;
use aclc_policy::model::CheckPeriod;
use aclc_policy::Source;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::shape::{rule_json, ExplanationJson, RuleJson};
use crate::{parse, read_inventory, to_text, vet, Failure, Reply};

/// An engine kept under a handle, with the source of its current policy (for rule locations).
pub(crate) struct Running {
    engine: engine::Engine,
    source: Source,
}

/// Where route approvals come from (`ApprovalMode`).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Approvals {
    Derived,
    Stored,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewArgs {
    policy: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default)]
    inventory: Option<Value>,
    #[serde(default)]
    approvals: Option<Approvals>,
    #[serde(default)]
    control_url: Option<String>,
    #[serde(default)]
    exit_node_filters: Option<aclc_compiler::ExitNodeFilters>,
}

/// An event, as JSON: `{"type": "upsert_node", "node": {...}}` and so on.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum EventJson {
    UpsertNode {
        node: NodeRecord,
    },
    RemoveNode {
        node: u64,
    },
    UpsertUser {
        user: UserRecord,
    },
    RemoveUser {
        user: u64,
    },
    AdvertiseRoutes {
        node: u64,
        routes: Vec<IpNet>,
    },
    ApproveRoutes {
        node: u64,
        routes: Vec<IpNet>,
    },
    SetOnline {
        node: u64,
        online: bool,
    },
    ReplacePolicy {
        policy: String,
        #[serde(default)]
        name: Option<String>,
    },
    UpsertService {
        service: ServiceRecord,
    },
    RemoveService {
        service: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyArgs {
    handle: u64,
    /// One event.
    #[serde(default)]
    event: Option<EventJson>,
    /// Several, applied as one batch ([`engine::Engine::apply_batch`]).
    #[serde(default)]
    events: Option<Vec<EventJson>>,
}

/// A node by stable id (a number) or by name (a string).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum NodeRef {
    Id(u64),
    Name(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MapArgs {
    handle: u64,
    node: NodeRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryArgs {
    handle: u64,
    question: String,
    #[serde(default)]
    args: Option<Value>,
}

/// The questions `engine_query` answers, in the order `docs/embedding.md` lists them.
pub const QUESTIONS: &[&str] = &[
    "may_apply_tag",
    "auto_approves",
    "auto_approved",
    "approvals_lost",
    "ssh_decision",
    "explain_flow",
    "peer_impact",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MayApplyTag {
    tag: String,
    #[serde(default)]
    user: Option<u64>,
    #[serde(default)]
    node: Option<NodeRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoApproves {
    node: NodeRef,
    route: IpNet,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneNode {
    node: NodeRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsLost {
    policy: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SshDecisionArgs {
    src: NodeRef,
    dst: NodeRef,
    login: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainFlow {
    src: NodeRef,
    dst: NodeRef,
    port: u16,
    #[serde(default)]
    proto: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerImpact {
    #[serde(default)]
    node: Option<u64>,
    #[serde(default)]
    before: Option<NodeRecord>,
    #[serde(default)]
    after: Option<NodeRecord>,
}

/// `{"id", "name"}` of a node.
#[derive(Serialize)]
struct NodeJson<'a> {
    id: u64,
    name: &'a str,
}

/// One node of a change set: which parts of its map changed.
#[derive(Serialize)]
struct ChangedJson<'a> {
    id: u64,
    name: &'a str,
    added: bool,
    parts: Vec<&'static str>,
}

/// A change set: push a new map to each of `changed`, drop `removed`.
#[derive(Serialize)]
struct ChangeSetJson<'a> {
    snapshot: u64,
    changed: Vec<ChangedJson<'a>>,
    removed: Vec<NodeJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Located>,
}

fn parts(change: &NodeChange) -> Vec<&'static str> {
    [
        (change.packet_filter, "packet_filter"),
        (change.ssh_rules, "ssh_rules"),
        (change.peers, "peers"),
        (change.cap_map, "cap_map"),
        (change.own, "own"),
    ]
    .into_iter()
    .filter(|(changed, _)| *changed)
    .map(|(_, part)| part)
    .collect()
}

fn change_set_json<'a>(
    changes: &ChangeSet,
    before: &'a Snapshot,
    after: &'a Snapshot,
    warnings: Vec<Located>,
) -> ChangeSetJson<'a> {
    ChangeSetJson {
        snapshot: after.version(),
        changed: changes
            .changed
            .iter()
            .map(|(&id, change)| ChangedJson {
                id,
                name: after.name(id).unwrap_or_default(),
                added: change.added,
                parts: parts(change),
            })
            .collect(),
        removed: changes
            .removed
            .iter()
            .map(|&id| NodeJson {
                id,
                name: before.name(id).unwrap_or_default(),
            })
            .collect(),
        warnings,
    }
}

/// The failure for an engine's refusal of an event (or of the initial state, `initial`);
/// a compile refusal is located in `source`, the policy the event would have compiled.
fn engine_failure(error: EngineError, initial: bool, source: &Source) -> Failure {
    match error {
        EngineError::Compile(error) => crate::compile_refused(&error, source),
        EngineError::UnknownNode(id) => {
            Failure::new("unknown_node", format!("unknown node id {id}"))
        }
        EngineError::UnknownUser(id) => {
            Failure::new("unknown_user", format!("unknown user id {id}"))
        }
        other if initial => {
            Failure::new("invalid_inventory", format!("invalid inventory: {other}"))
        }
        other => Failure::new(
            "invalid_tailnet",
            format!("the event would leave an invalid tailnet: {other}"),
        ),
    }
}

/// The policy context (domains, logins, synced groups) of a tailnet in the engine's format,
/// as the engine's own inventory would give it.
fn state_context(state: &TailnetState) -> aclc_policy::Context {
    let mut groups: Vec<String> = state
        .users
        .iter()
        .flat_map(|u| u.groups.iter())
        .map(|g| match g.starts_with("group:") {
            true => g.clone(),
            false => format!("group:{g}"),
        })
        .collect();
    groups.sort_unstable();
    groups.dedup();
    aclc_policy::Context {
        tailnet_domains: state.tailnet.domain().map(|d| vec![d]),
        user_logins: Some(
            state
                .users
                .iter()
                .filter(|u| !u.login.is_empty())
                .map(|u| u.login.clone())
                .collect(),
        ),
        synced_groups: Some(groups),
        ipv4_nodes: Some(state.nodes.iter().filter(|n| n.ipv4.is_some()).count()),
    }
}

/// `engine_new`: an engine for the policy and the tailnet; `(running, response body)`.
pub(crate) fn new_engine(args: NewArgs, handle: u64) -> Result<(Running, String), Failure> {
    let state = match (&args.state, &args.inventory) {
        (Some(state), None) => {
            let parsed = match state {
                Value::String(text) => TailnetState::from_json(text),
                other => serde_json::from_value(other.clone()),
            };
            parsed.map_err(|e| Failure::new("invalid_inventory", format!("invalid state: {e}")))?
        }
        (None, Some(inventory)) => TailnetState::from_inventory(&read_inventory(inventory)?),
        _ => {
            return Err(Failure::new(
                "bad_request",
                "`engine_new` takes either `state` or `inventory`",
            ))
        }
    };
    let (policy, source, mut warnings) =
        parse(&args.policy, args.name.as_deref(), state_context(&state))?;
    let mut options = EngineOptions::with_approvals(match args.approvals {
        Some(Approvals::Stored) => ApprovalMode::Stored,
        Some(Approvals::Derived) | None => ApprovalMode::Derived,
    });
    if let Some(url) = args.control_url {
        options.compile.control_url = url;
    }
    if let Some(exits) = args.exit_node_filters {
        options.compile.exit_node_filters = exits;
    }
    let engine = engine::Engine::new(Arc::new(policy), state, options)
        .map_err(|e| engine_failure(e, true, &source))?;
    let snapshot = engine.snapshot();
    warnings.extend(vet(snapshot.policy(), snapshot.compiled(), &source)?);
    #[derive(Serialize)]
    struct Answer<'a> {
        handle: u64,
        snapshot: u64,
        nodes: Vec<NodeJson<'a>>,
        warnings: Vec<Located>,
    }
    let text = to_text(&Answer {
        handle,
        snapshot: snapshot.version(),
        nodes: snapshot
            .node_ids()
            .map(|id| NodeJson {
                id,
                name: snapshot.name(id).unwrap_or_default(),
            })
            .collect(),
        warnings: warnings.iter().map(|d| d.locate(&source)).collect(),
    });
    Ok((Running { engine, source }, text))
}

impl Running {
    /// `engine_apply`: apply the event, answer its change set. A refused event (or policy)
    /// changes nothing.
    /// `engine_apply` with `events`: one batch ([`engine::Engine::apply_batch`]), one change
    /// set. A policy is replaced on its own (its tests are run and a refused one is taken
    /// back), never inside a batch.
    pub(crate) fn apply_batch(&mut self, events: Vec<EventJson>) -> Reply {
        let before = self.engine.snapshot();
        let mut batch = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            batch.push(event.into_event().map_err(|_| {
                Failure::new(
                    "bad_request",
                    format!(
                        "events[{index}]: replace_policy is applied on its own (\"event\"), not \
                         in a batch"
                    ),
                )
            })?);
        }
        let changes = self.engine.apply_batch(batch).map_err(|e| {
            let mut failure = engine_failure(e.error, false, &self.source);
            if let Some(index) = e.event {
                failure.message = format!("events[{index}]: {}", failure.message);
            }
            failure
        })?;
        let after = self.engine.snapshot();
        Ok(to_text(&change_set_json(
            &changes,
            &before,
            &after,
            Vec::new(),
        )))
    }

    pub(crate) fn apply(&mut self, event: EventJson) -> Reply {
        let before = self.engine.snapshot();
        let mut replaced = None;
        let event = match event.into_event() {
            Ok(event) => event,
            Err((policy, name)) => {
                let name = name.unwrap_or_else(|| self.source.name().to_string());
                let context = before.inventory().policy_context();
                let (policy, source, warnings) = parse(&policy, Some(&name), context)?;
                let policy = Arc::new(policy);
                if self.engine.options().approvals == ApprovalMode::Stored {
                    // Vet it on a copy first: stored approvals are never taken back, so a
                    // refused policy must not get to write any.
                    let candidate = engine::Engine::new(
                        policy.clone(),
                        self.engine.state(),
                        self.engine.options().clone(),
                    )
                    .map_err(|e| engine_failure(e, false, &source))?;
                    let snapshot = candidate.snapshot();
                    vet(snapshot.policy(), snapshot.compiled(), &source)?;
                }
                replaced = Some((source, warnings));
                Event::ReplacePolicy(policy)
            }
        };
        let old_policy = self.engine.policy().clone();
        let changes = self.engine.apply(event).map_err(|e| {
            let source = replaced.as_ref().map_or(&self.source, |(source, _)| source);
            engine_failure(e, false, source)
        })?;
        let after = self.engine.snapshot();
        let mut warnings = Vec::new();
        if let Some((source, mut found)) = replaced {
            match vet(after.policy(), after.compiled(), &source) {
                Ok(tests) => found.extend(tests),
                Err(failure) => {
                    // Take the refused policy back: every map is again what it was (with
                    // derived approvals; stored ones were vetted above).
                    let _ = self.engine.apply(Event::ReplacePolicy(old_policy));
                    return Err(failure);
                }
            }
            warnings = found.iter().map(|d| d.locate(&source)).collect();
            self.source = source;
        }
        Ok(to_text(&change_set_json(
            &changes, &before, &after, warnings,
        )))
    }

    fn resolve(snapshot: &Snapshot, node: &NodeRef) -> Result<u64, Failure> {
        let found = match node {
            NodeRef::Id(id) => snapshot.name(*id).map(|_| *id),
            NodeRef::Name(name) => snapshot.id(name),
        };
        found.ok_or_else(|| match node {
            NodeRef::Id(id) => Failure::new("unknown_node", format!("unknown node id {id}")),
            NodeRef::Name(name) => crate::unknown_node(name),
        })
    }

    /// `engine_map`: a node's map in the current snapshot.
    pub(crate) fn map(&self, node: &NodeRef) -> Reply {
        let snapshot = self.engine.snapshot();
        let id = Self::resolve(&snapshot, node)?;
        let view = snapshot
            .node(id)
            .ok_or_else(|| Failure::new("unknown_node", format!("unknown node id {id}")))?;
        #[derive(Serialize)]
        struct Answer<'a, M> {
            id: u64,
            node: &'a str,
            snapshot: u64,
            map: M,
        }
        Ok(to_text(&Answer {
            id,
            node: view.name(),
            snapshot: snapshot.version(),
            map: view.to_wire(),
        }))
    }

    /// `engine_query`: one of [`QUESTIONS`], answered by the current snapshot as
    /// `{"question", "answer"}`.
    pub(crate) fn query(&self, question: &str, args: Option<Value>) -> Reply {
        let snapshot = self.engine.snapshot();
        let args = args.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        let answer = match question {
            "may_apply_tag" => {
                let a: MayApplyTag = question_args(question, args)?;
                let who = match (a.user, &a.node) {
                    (Some(user), None) => {
                        if self.engine.user(user).is_none() {
                            return Err(Failure::new(
                                "unknown_user",
                                format!("unknown user id {user}"),
                            ));
                        }
                        Tagger::User(user)
                    }
                    (None, Some(node)) => Tagger::Node(Self::resolve(&snapshot, node)?),
                    _ => {
                        return Err(Failure::new(
                            "bad_request",
                            "`may_apply_tag` takes either `user` or `node`",
                        ))
                    }
                };
                Value::Bool(snapshot.may_apply_tag(who, &a.tag))
            }
            "auto_approves" => {
                let a: AutoApproves = question_args(question, args)?;
                let id = Self::resolve(&snapshot, &a.node)?;
                Value::Bool(snapshot.auto_approves(id, &a.route))
            }
            "auto_approved" => {
                let a: OneNode = question_args(question, args)?;
                let id = Self::resolve(&snapshot, &a.node)?;
                json_value(&snapshot.auto_approved(id))?
            }
            "approvals_lost" => {
                let a: ApprovalsLost = question_args(question, args)?;
                let name = a.name.unwrap_or_else(|| self.source.name().to_string());
                let context = snapshot.inventory().policy_context();
                let (policy, _, _) = parse(&a.policy, Some(&name), context)?;
                #[derive(Serialize)]
                struct Lost<'a> {
                    id: u64,
                    name: &'a str,
                    routes: Vec<IpNet>,
                }
                let lost: Vec<Lost<'_>> = snapshot
                    .approvals_lost(&policy)
                    .into_iter()
                    .map(|(id, routes)| Lost {
                        id,
                        name: snapshot.name(id).unwrap_or_default(),
                        routes,
                    })
                    .collect();
                json_value(&lost)?
            }
            "ssh_decision" => {
                let a: SshDecisionArgs = question_args(question, args)?;
                let src = Self::resolve(&snapshot, &a.src)?;
                let dst = Self::resolve(&snapshot, &a.dst)?;
                let decision = snapshot
                    .ssh_decision(src, dst, &a.login)
                    .ok_or_else(|| Failure::new("unknown_node", "unknown source or destination"))?;
                #[derive(Serialize)]
                struct Decision {
                    action: &'static str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    check_period: Option<String>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    rule: Option<IndexedRule>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    local_user: Option<String>,
                }
                #[derive(Serialize)]
                struct IndexedRule {
                    index: usize,
                    #[serde(flatten)]
                    rule: RuleJson,
                }
                let (action, check_period) = match decision.action {
                    SshOutcome::Denied => ("denied", None),
                    SshOutcome::Accept => ("accept", None),
                    SshOutcome::Check { period } => (
                        "check",
                        Some(match period {
                            CheckPeriod::Always => "always".to_string(),
                            CheckPeriod::Every(d) => d.to_string(),
                        }),
                    ),
                };
                json_value(&Decision {
                    action,
                    check_period,
                    rule: decision.rule.map(|(index, span)| IndexedRule {
                        index,
                        rule: rule_json(&self.source, span),
                    }),
                    local_user: decision.local_user,
                })?
            }
            "explain_flow" => {
                let a: ExplainFlow = question_args(question, args)?;
                let src = Self::resolve(&snapshot, &a.src)?;
                let dst = Self::resolve(&snapshot, &a.dst)?;
                let explanation = snapshot
                    .explain_flow(src, dst, a.port, a.proto.as_deref())
                    .ok_or_else(|| Failure::new("unknown_node", "unknown source or destination"))?
                    .map_err(|e| Failure::new("query", e.to_string()))?;
                json_value(&ExplanationJson::new(&explanation, &self.source))?
            }
            "peer_impact" => {
                let a: PeerImpact = question_args(question, args)?;
                let before = match (a.node, a.before) {
                    (Some(id), None) => Some(self.engine.node(id).cloned().ok_or_else(|| {
                        Failure::new("unknown_node", format!("unknown node id {id}"))
                    })?),
                    (None, before) => before,
                    (Some(_), Some(_)) => {
                        return Err(Failure::new(
                            "bad_request",
                            "`peer_impact` takes `node` or `before`, not both",
                        ))
                    }
                };
                let reasons: Vec<&str> = snapshot
                    .peer_impact(before.as_ref(), a.after.as_ref())
                    .into_iter()
                    .map(|r| match r {
                        PeerReason::Membership => "membership",
                        PeerReason::Identity => "identity",
                        PeerReason::Selectors => "selectors",
                        PeerReason::Router => "router",
                        PeerReason::Exit => "exit",
                        PeerReason::ViaTarget => "via_target",
                        PeerReason::Posture => "posture",
                    })
                    .collect();
                json_value(&reasons)?
            }
            other => {
                return Err(Failure::new(
                    "bad_request",
                    format!(
                        "unknown question `{other}` (known: {})",
                        QUESTIONS.join(", ")
                    ),
                ))
            }
        };
        #[derive(Serialize)]
        struct Answer<'a> {
            question: &'a str,
            snapshot: u64,
            answer: Value,
        }
        Ok(to_text(&Answer {
            question,
            snapshot: snapshot.version(),
            answer,
        }))
    }
}

fn question_args<T: DeserializeOwned>(question: &str, args: Value) -> Result<T, Failure> {
    serde_json::from_value(args).map_err(|e| {
        Failure::new(
            "bad_request",
            format!("bad arguments for question `{question}`: {e}"),
        )
    })
}

fn json_value<T: Serialize>(value: &T) -> Result<Value, Failure> {
    serde_json::to_value(value)
        .map_err(|e| Failure::new("internal", format!("cannot write the answer: {e}")))
}

impl EventJson {
    /// The engine's event; a `replace_policy` (its text and name), which needs parsing and
    /// vetting first, as it is.
    fn into_event(self) -> Result<Event, (String, Option<String>)> {
        Ok(match self {
            EventJson::UpsertNode { node } => Event::UpsertNode(node),
            EventJson::RemoveNode { node } => Event::RemoveNode(node),
            EventJson::UpsertUser { user } => Event::UpsertUser(user),
            EventJson::RemoveUser { user } => Event::RemoveUser(user),
            EventJson::AdvertiseRoutes { node, routes } => Event::AdvertiseRoutes { node, routes },
            EventJson::ApproveRoutes { node, routes } => Event::ApproveRoutes { node, routes },
            EventJson::SetOnline { node, online } => Event::SetOnline { node, online },
            EventJson::UpsertService { service } => Event::UpsertService(service),
            EventJson::RemoveService { service } => Event::RemoveService(service),
            EventJson::ReplacePolicy { policy, name } => return Err((policy, name)),
        })
    }
}

impl ApplyArgs {
    /// The handle and the events: `event` or `events`, not both, not neither.
    pub(crate) fn into_parts(self) -> Result<(u64, Applied), Failure> {
        let applied =
            match (self.event, self.events) {
                (Some(event), None) => Applied::One(event),
                (None, Some(events)) => Applied::Batch(events),
                _ => return Err(Failure::new(
                    "bad_request",
                    "engine_apply takes \"event\" (one event) or \"events\" (a batch), not both \
                     or neither",
                )),
            };
        Ok((self.handle, applied))
    }
}

/// What an `engine_apply` request applies.
pub(crate) enum Applied {
    One(EventJson),
    Batch(Vec<EventJson>),
}

impl MapArgs {
    pub(crate) fn into_parts(self) -> (u64, NodeRef) {
        (self.handle, self.node)
    }
}

impl QueryArgs {
    pub(crate) fn into_parts(self) -> (u64, String, Option<Value>) {
        (self.handle, self.question, self.args)
    }
}
