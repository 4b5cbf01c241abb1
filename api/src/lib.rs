//! The embeddable API of aclc: one versioned JSON request in, one JSON response out, with
//! compiled policies kept between calls by handle. The WebAssembly module, the C ABI
//! (`aclc-ffi`) and through them the Go and npm packages all call [`Engine::call`]; the
//! request and response shapes are documented once, in `docs/embedding.md`.
//!
//! Responses reuse the command line's JSON (see [`shape`]): `check` answers what
//! `aclc check --format json` prints, `compile` what `aclc compile` prints, `explain` what
//! `aclc explain --format json` prints, `test` what `aclc test --format json` prints, each with
//! a `version` field in front.

mod request;
mod server;
pub mod shape;
mod stateless;

use stateless::*;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use aclc_compiler::policytest::{explain, explain_ssh, NetworkQuery};
use aclc_compiler::{try_compile_with_options, CompileOptions, Compiled, Inventory};
use aclc_policy::diag::Located;
use aclc_policy::model::Policy;
use aclc_policy::{Diagnostic, Options, Source};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::shape::{check_policy, parse_policy, ExplanationJson, JsonError};

/// The version of the request and response shapes this build speaks.
pub const API_VERSION: u64 = 1;

/// The operations [`Engine::call`] knows, in the order `docs/embedding.md` lists them.
pub const OPS: &[&str] = &[
    "info",
    "check",
    "fmt",
    "compile",
    "load",
    "node_map",
    "explain",
    "test",
    "diff",
    "engine_new",
    "engine_apply",
    "engine_map",
    "engine_query",
    "free",
];

pub use server::QUESTIONS;

/// The name a policy's diagnostics carry when the request gives none.
pub const DEFAULT_POLICY_NAME: &str = "policy.hujson";

/// A policy compiled against an inventory, kept for later calls under a handle.
struct Loaded {
    source: Source,
    policy: aclc_policy::model::Policy,
    compiled: Compiled,
}

/// The state of one embedding: the loaded policies, by handle. Each host instance (a
/// WebAssembly instance, a C process) holds one.
#[derive(Default)]
pub struct Engine {
    loaded: BTreeMap<u64, Loaded>,
    engines: BTreeMap<u64, server::Running>,
    next_handle: u64,
}

/// A failed request: `{"error": {"kind", "message", "diagnostics"?}}`.
#[derive(Debug, Serialize)]
struct Failure {
    kind: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnostics: Option<Vec<Located>>,
}

impl Failure {
    fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            diagnostics: None,
        }
    }

    /// A refused policy, with `aclc`'s error object (message and diagnostics).
    fn refused(error: JsonError) -> Failure {
        Failure {
            kind: "refused",
            message: error.message,
            diagnostics: Some(error.diagnostics),
        }
    }
}

/// Serialize `body` (an object) with `"version"` in front.
#[derive(Serialize)]
struct Versioned<T> {
    version: u64,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct ErrorBody {
    error: Failure,
}

/// The response text of a failure.
fn failure_text(failure: Failure) -> String {
    to_text(&ErrorBody { error: failure })
}

/// The response text of an object `body`.
fn to_text<T: Serialize>(body: &T) -> String {
    match serde_json::to_string(&Versioned {
        version: API_VERSION,
        body,
    }) {
        Ok(text) => text,
        // Only strings, numbers and the shapes above are serialised: this cannot fail.
        Err(e) => format!(
            "{{\"version\":{API_VERSION},\"error\":{{\"kind\":\"internal\",\"message\":{}}}}}",
            Value::String(format!("cannot write the response: {e}"))
        ),
    }
}

type Reply = Result<String, Failure>;

/// The inputs of a policy compiled against an inventory.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyInputs {
    policy: String,
    #[serde(default)]
    name: Option<String>,
    inventory: Value,
    #[serde(default)]
    control_url: Option<String>,
    #[serde(default)]
    exit_node_filters: Option<aclc_compiler::ExitNodeFilters>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompileArgs {
    #[serde(default)]
    handle: Option<u64>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    inventory: Option<Value>,
    #[serde(default)]
    control_url: Option<String>,
    #[serde(default)]
    exit_node_filters: Option<aclc_compiler::ExitNodeFilters>,
    #[serde(default)]
    nodes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandleArgs {
    handle: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeMapArgs {
    handle: u64,
    node: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainArgs {
    #[serde(default)]
    handle: Option<u64>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    inventory: Option<Value>,
    src: String,
    dst: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    proto: Option<String>,
}

/// Read an op's arguments: what is left of the request once `version` and `op` are taken.
fn args<T: DeserializeOwned>(op: &str, rest: Map<String, Value>) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(rest))
        .map_err(|e| Failure::new("bad_request", format!("bad arguments for `{op}`: {e}")))
}

/// An inventory given as a JSON object or as its text.
fn read_inventory(inventory: &Value) -> Result<Inventory, Failure> {
    let parsed = match inventory {
        Value::String(text) => Inventory::from_json(text),
        other => Inventory::from_json(&other.to_string()),
    };
    parsed.map_err(|e| Failure::new("invalid_inventory", format!("invalid inventory: {e}")))
}

fn policy_name(name: Option<&str>) -> &str {
    name.unwrap_or(DEFAULT_POLICY_NAME)
}

/// The longest response `compile` builds. In WebAssembly the instance's whole memory is
/// 4 GiB, and a host's JavaScript string at most 2^29 - 24 characters (V8): a whole-tailnet
/// compile past that trapped (a 6,000-node allow-all tailnet prints 1.7 GB) where a bounded
/// one answers `too_large`. Native builds have no such bound.
#[cfg(target_arch = "wasm32")]
const MAX_NODES_DOCUMENT: usize = 512 << 20;
#[cfg(not(target_arch = "wasm32"))]
const MAX_NODES_DOCUMENT: usize = usize::MAX;

/// `{"version":1,"nodes":{name: map, ...}}`, as `aclc compile` prints it; a node named twice
/// is written once. Longer than `limit` bytes: `too_large`, before the rest is built.
fn nodes_document<'a>(
    compiled: &Compiled,
    names: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Result<String, Failure> {
    let names: Vec<&str> = names.collect();
    // What the maps take at least (each peer `"name":{"allowed_ips":[...]}`, the name at
    // least the shortest): past `limit`, refused before any map is built (a 6,000-node
    // allow-all tailnet took 20-29 s in WebAssembly to pass it map by map).
    if limit < usize::MAX {
        let shortest = compiled.node_names().map(str::len).min().unwrap_or(0);
        let mut seen = std::collections::HashSet::new();
        let mut least = 0usize;
        for name in names.iter().filter(|n| seen.insert(**n)) {
            let peers = compiled
                .peer_count(name)
                .ok_or_else(|| unknown_node(name))?;
            least = least.saturating_add(peers.saturating_mul(shortest + PEER_LEAST));
        }
        if least > limit {
            return Err(too_large(limit, 0));
        }
    }
    let mut out = format!("{{\"version\":{API_VERSION},\"nodes\":{{");
    let mut written: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for name in names {
        let view = compiled.node(name).ok_or_else(|| unknown_node(name))?;
        if !written.insert(name) {
            continue;
        }
        if written.len() > 1 {
            out.push(',');
        }
        let map = serde_json::to_string(&view.to_wire())
            .map_err(|e| Failure::new("internal", format!("cannot write node {name}: {e}")))?;
        let _ = write!(out, "{}:{map}", Value::String(view.name().to_string()));
        if out.len() > limit {
            return Err(too_large(limit, written.len()));
        }
    }
    out.push_str("}}");
    Ok(out)
}

/// The fewest bytes one peer takes in a map beside its name: `"":{"allowed_ips":[]}`.
const PEER_LEAST: usize = 21;

/// The maps pass `limit` bytes (after `nodes` maps, or, with 0, by what they take at least).
fn too_large(limit: usize, nodes: usize) -> Failure {
    let after = match nodes {
        0 => "before any map is built, by the peers alone".to_string(),
        n => format!("after {n} nodes"),
    };
    Failure::new(
        "too_large",
        format!(
            "the maps pass {limit} bytes {after}: ask for fewer at a time (`nodes`), or load \
             the policy and ask `node_map` per node"
        ),
    )
}

fn unknown_node(name: &str) -> Failure {
    Failure::new(
        "unknown_node",
        format!("unknown node \"{name}\" (not in the inventory)"),
    )
}

/// Parse `policy` in the inventory's context and compile it, as `aclc compile` does,
/// refusing it as `aclc compile --format json` does (invalid, not computable, tests failed).
fn load(inputs: PolicyInputs) -> Result<(Loaded, Vec<Diagnostic>), Failure> {
    let inventory = read_inventory(&inputs.inventory)?;
    let (policy, source, mut warnings) = parse(
        &inputs.policy,
        inputs.name.as_deref(),
        inventory.policy_context(),
    )?;
    let mut compile_options = CompileOptions::default();
    if let Some(url) = inputs.control_url {
        compile_options.control_url = url;
    }
    if let Some(exits) = inputs.exit_node_filters {
        compile_options.exit_node_filters = exits;
    }
    let compiled = try_compile_with_options(&policy, &inventory, &compile_options)
        .map_err(|error| compile_refused(&error, &source))?;
    warnings.extend(vet(&policy, &compiled, &source)?);
    Ok((
        Loaded {
            source,
            policy,
            compiled,
        },
        warnings,
    ))
}

/// Parse `text` as a policy in `context`, refusing it when it is invalid;
/// the policy, its source and its warnings.
pub(crate) fn parse(
    text: &str,
    name: Option<&str>,
    context: aclc_policy::Context,
) -> Result<(Policy, Source, Vec<Diagnostic>), Failure> {
    let options = Options {
        context,
        ..Options::default()
    };
    let parsed = parse_policy(policy_name(name), text.as_bytes(), &options);
    let source = parsed.source;
    let Some(checked) = parsed.checked else {
        let message = shape::compile_refusal_message(&parsed.diagnostics);
        return Err(Failure::refused(JsonError::new(
            message,
            &parsed.diagnostics,
            &source,
        )));
    };
    Ok((checked.policy, source, checked.warnings))
}

/// Refuse a compiled policy (not computable, its tests fail); its tests'
/// warnings otherwise.
pub(crate) fn vet(
    policy: &Policy,
    compiled: &Compiled,
    source: &Source,
) -> Result<Vec<Diagnostic>, Failure> {
    if let Some(error) = compiled.refusal() {
        return Err(compile_refused(error, source));
    }
    let report = aclc_compiler::run_tests(policy, compiled);
    if !report.passed() {
        let diagnostics = shape::failure_diagnostics(&report, source);
        let message = report.refusal_message(source);
        return Err(Failure::refused(JsonError::new(
            message,
            &diagnostics,
            source,
        )));
    }
    Ok(shape::warning_diagnostics(&report).into_iter().collect())
}

/// The refusal of a policy that cannot be computed.
pub(crate) fn compile_refused(error: &aclc_compiler::CompileError, source: &Source) -> Failure {
    let found = [error.to_diagnostic()];
    let message = shape::compile_refusal_message(&found);
    Failure::refused(JsonError::new(message, &found, source))
}

impl Engine {
    /// An engine with nothing loaded.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// How many policies are loaded (not yet freed).
    pub fn loaded(&self) -> usize {
        self.loaded.len()
    }

    /// How many control-server engines are running (not yet freed).
    pub fn engines(&self) -> usize {
        self.engines.len()
    }

    /// Answer one request (UTF-8 JSON): always a JSON document with `version`, and
    /// `error` on failure. A panic is caught and reported as an error of kind `panic` (where
    /// the target unwinds; a WebAssembly build aborts instead, see `docs/embedding.md`).
    pub fn call(&mut self, request: &[u8]) -> String {
        guarded(|| self.dispatch(request))
    }

    fn dispatch(&mut self, request: &[u8]) -> Reply {
        let value = request::read(request)
            .map_err(|e| Failure::new("bad_request", format!("the request is not JSON: {e}")))?;
        let Value::Object(mut rest) = value else {
            return Err(Failure::new(
                "bad_request",
                "the request is not a JSON object",
            ));
        };
        match rest.remove("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(API_VERSION) => {}
            Some(other) => {
                return Err(Failure::new(
                    "unsupported_version",
                    format!("this build speaks version {API_VERSION}, not {other}"),
                ))
            }
            None => {
                return Err(Failure::new(
                    "bad_request",
                    format!("the request has no \"version\" (use {API_VERSION})"),
                ))
            }
        }
        let op = match rest.remove("op") {
            Some(Value::String(op)) => op,
            _ => {
                return Err(Failure::new(
                    "bad_request",
                    "the request has no \"op\" string",
                ))
            }
        };
        // One arm per operation: a new one is an arm and a function.
        match op.as_str() {
            "info" => Ok(info()),
            "check" => check(args(&op, rest)?),
            "fmt" => fmt(args(&op, rest)?),
            "compile" => self.compile(args(&op, rest)?),
            "load" => self.load(args(&op, rest)?),
            "node_map" => self.node_map(args(&op, rest)?),
            "explain" => self.explain(args(&op, rest)?),
            "test" => test(args(&op, rest)?),
            "diff" => diff(args(&op, rest)?),
            "engine_new" => self.engine_new(args(&op, rest)?),
            "engine_apply" => self.engine_apply(args(&op, rest)?),
            "engine_map" => self.engine_map(args(&op, rest)?),
            "engine_query" => self.engine_query(args(&op, rest)?),
            "free" => self.free(args(&op, rest)?),
            other => Err(Failure::new(
                "unknown_op",
                format!("unknown op `{other}` (known: {})", OPS.join(", ")),
            )),
        }
    }

    fn get(&self, handle: u64) -> Result<&Loaded, Failure> {
        self.loaded.get(&handle).ok_or_else(|| {
            Failure::new(
                "unknown_handle",
                format!("no policy is loaded under handle {handle}"),
            )
        })
    }

    fn load(&mut self, inputs: PolicyInputs) -> Reply {
        let (loaded, warnings) = load(inputs)?;
        self.next_handle += 1;
        let handle = self.next_handle;
        #[derive(Serialize)]
        struct Answer<'a> {
            handle: u64,
            nodes: Vec<&'a str>,
            warnings: Vec<Located>,
        }
        let text = to_text(&Answer {
            handle,
            nodes: loaded.compiled.node_names().collect(),
            warnings: warnings.iter().map(|d| d.locate(&loaded.source)).collect(),
        });
        self.loaded.insert(handle, loaded);
        Ok(text)
    }

    fn compile(&mut self, args: CompileArgs) -> Reply {
        let owned;
        let loaded = match (args.handle, args.policy, args.inventory) {
            (Some(handle), None, None)
                if args.name.is_none()
                    && args.control_url.is_none()
                    && args.exit_node_filters.is_none() =>
            {
                self.get(handle)?
            }
            (None, Some(policy), Some(inventory)) => {
                owned = load(PolicyInputs {
                    policy,
                    name: args.name,
                    inventory,
                    control_url: args.control_url,
                    exit_node_filters: args.exit_node_filters,
                })?
                .0;
                &owned
            }
            _ => {
                return Err(Failure::new(
                    "bad_request",
                    "`compile` takes either `handle` or `policy` and `inventory`",
                ))
            }
        };
        match &args.nodes {
            Some(names) => nodes_document(
                &loaded.compiled,
                names.iter().map(String::as_str),
                MAX_NODES_DOCUMENT,
            ),
            None => nodes_document(
                &loaded.compiled,
                loaded.compiled.node_names(),
                MAX_NODES_DOCUMENT,
            ),
        }
    }

    fn node_map(&self, args: NodeMapArgs) -> Reply {
        let loaded = self.get(args.handle)?;
        let view = loaded
            .compiled
            .node(&args.node)
            .ok_or_else(|| unknown_node(&args.node))?;
        #[derive(Serialize)]
        struct Answer<'a, M> {
            node: &'a str,
            map: M,
        }
        Ok(to_text(&Answer {
            node: view.name(),
            map: view.to_wire(),
        }))
    }

    fn explain(&self, args: ExplainArgs) -> Reply {
        let owned;
        let loaded = match (args.handle, args.policy, args.inventory) {
            (Some(handle), None, None) if args.name.is_none() => self.get(handle)?,
            (None, Some(policy), Some(inventory)) => {
                owned = load_for_explain(&policy, args.name.as_deref(), &inventory)?;
                &owned
            }
            _ => {
                return Err(Failure::new(
                    "bad_request",
                    "`explain` takes either `handle` or `policy` and `inventory`",
                ))
            }
        };
        let answer = match &args.user {
            Some(user) => explain_ssh(&loaded.policy, &loaded.compiled, &args.src, &args.dst, user),
            None => explain(
                &loaded.policy,
                &loaded.compiled,
                &NetworkQuery {
                    src: &args.src,
                    dst: &args.dst,
                    proto: args.proto.as_deref(),
                    src_posture_attrs: None,
                },
            ),
        };
        let explanation = answer.map_err(|e| Failure::new("query", e.to_string()))?;
        Ok(to_text(&ExplanationJson::new(&explanation, &loaded.source)))
    }

    fn running(&mut self, handle: u64) -> Result<&mut server::Running, Failure> {
        self.engines.get_mut(&handle).ok_or_else(|| {
            Failure::new(
                "unknown_handle",
                format!("no engine is running under handle {handle}"),
            )
        })
    }

    fn engine_new(&mut self, args: server::NewArgs) -> Reply {
        let handle = self.next_handle + 1;
        let (running, text) = server::new_engine(args, handle)?;
        self.next_handle = handle;
        self.engines.insert(handle, running);
        Ok(text)
    }

    fn engine_apply(&mut self, args: server::ApplyArgs) -> Reply {
        let (handle, applied) = args.into_parts()?;
        let running = self.running(handle)?;
        match applied {
            server::Applied::One(event) => running.apply(event),
            server::Applied::Batch(events) => running.apply_batch(events),
        }
    }

    fn engine_map(&mut self, args: server::MapArgs) -> Reply {
        let (handle, node) = args.into_parts();
        self.running(handle)?.map(&node)
    }

    fn engine_query(&mut self, args: server::QueryArgs) -> Reply {
        let (handle, question, args) = args.into_parts();
        self.running(handle)?.query(&question, args)
    }

    fn free(&mut self, args: HandleArgs) -> Reply {
        if self.engines.remove(&args.handle).is_none() && self.loaded.remove(&args.handle).is_none()
        {
            // Either kind may be freed here: the message names neither (a second free of an
            // engine said "no policy is loaded").
            return Err(Failure::new(
                "unknown_handle",
                format!(
                    "nothing is loaded under handle {} (no policy or engine: never loaded, or freed)",
                    args.handle
                ),
            ));
        }
        #[derive(Serialize)]
        struct Answer {
            freed: u64,
        }
        Ok(to_text(&Answer { freed: args.handle }))
    }
}

/// The response of `answer`: its text, its failure's, or a panic's (never unwinding on).
fn guarded(answer: impl FnOnce() -> Reply) -> String {
    match catch_unwind(AssertUnwindSafe(answer)) {
        Ok(Ok(text)) => text,
        Ok(Err(failure)) => failure_text(failure),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            failure_text(Failure::new(
                "panic",
                format!("aclc panicked (this is a bug): {message}"),
            ))
        }
    }
}

/// What this build is: `{"version", "aclc", "ops"}`.
fn info() -> String {
    #[derive(Serialize)]
    struct Answer {
        aclc: &'static str,
        ops: &'static [&'static str],
    }
    to_text(&Answer {
        aclc: env!("CARGO_PKG_VERSION"),
        ops: OPS,
    })
}

/// A policy compiled for `explain` as `aclc explain` does: default options, its assertions
/// not run.
fn load_for_explain(
    policy: &str,
    name: Option<&str>,
    inventory: &Value,
) -> Result<Loaded, Failure> {
    let inventory = read_inventory(inventory)?;
    let options = Options {
        context: inventory.policy_context(),
        ..Options::default()
    };
    let parsed = parse_policy(policy_name(name), policy.as_bytes(), &options);
    let source = parsed.source;
    let refused = |found: &[Diagnostic], source: &Source| {
        Failure::refused(JsonError::new(
            shape::first_error_message(found),
            found,
            source,
        ))
    };
    let Some(checked) = parsed.checked else {
        return Err(refused(&parsed.diagnostics, &source));
    };
    match try_compile_with_options(&checked.policy, &inventory, &CompileOptions::default()) {
        Ok(compiled) => Ok(Loaded {
            source,
            policy: checked.policy,
            compiled,
        }),
        Err(error) => Err(refused(&[error.to_diagnostic()], &source)),
    }
}

#[cfg(test)]
mod tests;
