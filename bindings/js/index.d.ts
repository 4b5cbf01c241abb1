// Types of the aclc npm package (index.js). The JSON shapes are documented in
// docs/embedding.md of the aclc repository.

/** The version of the embedding API's JSON this package speaks. */
export const API_VERSION: 1;

/** One problem found in a policy, located (1-based lines; columns count characters). */
export interface Diagnostic {
  severity: 'error' | 'warning';
  /** A stable code such as `aclc::unknown_group`. */
  code: string;
  message: string;
  help: string | null;
  file: string;
  line: number;
  column: number;
  end_line: number;
  end_column: number;
}

/** What `aclc check --format json` prints for one policy. */
export interface CheckResult {
  valid: boolean;
  diagnostics: Diagnostic[];
}

/** A node inventory: JSON text, or the object itself. */
export type Inventory = string | Record<string, unknown>;

/** A node's map as Tailscale's wire JSON: packet filter, SSH rules, addresses, peers. */
export interface NodeMap {
  packet_filter_rules: unknown[];
  ssh_rules: unknown[];
  addresses: string[];
  allowed_ips: string[];
  primary_routes?: string[];
  cap_map?: Record<string, unknown>;
  peers: Record<string, { allowed_ips: string[]; primary_routes?: string[]; [key: string]: unknown }>;
  [key: string]: unknown;
}

/** Network traffic (`dst` is `host:port`, a bare host for ICMP) or, with `user`, an SSH login. */
export interface Query {
  src: string;
  dst: string;
  proto?: string;
  user?: string;
}

export interface Rule {
  file: string;
  line: number;
  column: number;
  text: string;
}

export interface Explanation {
  allowed: boolean;
  reason: string;
  rules: Rule[];
  misses: (Rule & { why: string })[];
  /** For an allowed flow, the other rules that let some of it through as well: removing only `rules` would not deny it (empty for SSH logins). */
  also: Rule[];
  /** What the verdict cannot show: a closed TCP port 22 under an allowed SSH login, an endpoint that is an IPv4 address `disable-ipv4` takes away. */
  notes: string[];
}

/** A place in the policy. */
export interface Place {
  file: string;
  line: number;
  column: number;
}

/** One assertion of the policy's tests or sshTests. */
export interface TestResult extends Place {
  kind: 'network' | 'ssh';
  /** Index in `tests` / `sshTests`. */
  test: number;
  passed: boolean;
  subject: string;
  expected: 'allowed' | 'allowed_by_check' | 'denied' | null;
  got: 'denied' | 'allowed' | 'allowed_by_accept' | 'allowed_by_check' | null;
  error: string | null;
  allowed_by: Place[];
  message: string;
  warning?: string;
}

/** What `aclc test --format json` prints. */
export interface TestReport {
  passed: boolean;
  total: number;
  failed: number;
  warnings: number;
  results: TestResult[];
}

export interface Info {
  aclc: string;
  ops: string[];
}

/** The `error` member of a failed response. */
export interface ErrorBody {
  kind:
    | 'bad_request'
    | 'unsupported_version'
    | 'unknown_op'
    | 'unknown_handle'
    | 'unknown_node'
    | 'unknown_user'
    | 'invalid_tailnet'
    | 'invalid_inventory'
    | 'too_large'
    | 'refused'
    | 'invalid'
    | 'query'
    | 'panic'
    | 'internal'
    | string;
  message: string;
  diagnostics?: Diagnostic[];
}

export class AclcError extends Error {
  readonly kind: ErrorBody['kind'];
  readonly diagnostics: Diagnostic[];
  constructor(error: ErrorBody);
}

export type ModuleSource = URL | string | Response | ArrayBuffer | ArrayBufferView | WebAssembly.Module;

export interface NameOption {
  /** The file name diagnostics carry (default `policy.hujson`). */
  name?: string;
}

export class Aclc {
  static create(source?: ModuleSource): Promise<Aclc>;
  call(request: { op: string; [key: string]: unknown }): { version: number; error?: ErrorBody; [key: string]: unknown };
  request(request: { op: string; [key: string]: unknown }): { version: number; [key: string]: unknown };
  info(): Info;
  check(policy: string, options?: NameOption & { inventory?: Inventory }): CheckResult;
  format(policy: string): string;
  compile(
    policy: string,
    inventory: Inventory,
    options?: NameOption & { controlUrl?: string; exitNodeFilters?: ExitNodeFilters; nodes?: string[] },
  ): Record<string, NodeMap>;
  load(
    policy: string,
    inventory: Inventory,
    options?: NameOption & { controlUrl?: string; exitNodeFilters?: ExitNodeFilters },
  ): Policy;
  explain(policy: string, inventory: Inventory, query: Query, options?: NameOption): Explanation;
  test(policy: string, inventory: Inventory, options?: NameOption): TestReport;
  diff(
    oldPolicy: string,
    newPolicy: string,
    options?: { inventory?: Inventory; oldName?: string; newName?: string },
  ): DiffResult;
  /** Start a control-server engine; give `state` or `inventory`. */
  engine(policy: string, options: EngineOptions): Engine;
}

/** A stable id (a database row's): a number up to 2^53 - 1, past it a BigInt (JavaScript
 * numbers are not exact there; responses give such ids as BigInt, and an integer number past
 * 2^53 - 1 in a request is refused with a RangeError). */
export type Id = number | bigint;

/** A user of the tailnet, by stable id. */
export interface UserRecord {
  id: Id;
  /** An e-mail address, or a bare login with a trailing `@` (`carol@`). */
  login: string;
  name?: string;
  roles?: string[];
  groups?: string[];
}

/** A node, by stable id (also its registration order). */
export interface NodeRecord {
  id: Id;
  name: string;
  hostname?: string;
  /** The owner's id; absent or null for a tagged node. */
  user?: Id | null;
  tags?: string[];
  ipv4: string;
  ipv6: string;
  advertised_routes?: string[];
  approved_routes?: string[];
  posture?: Record<string, unknown>;
  /** Default true. */
  online?: boolean;
}

/** The engine's tailnet format. */
export interface TailnetState {
  users?: UserRecord[];
  nodes?: NodeRecord[];
  tailnet?: Record<string, unknown>;
  services?: ServiceRecord[];
}

/** A Tailscale Service (`svc:name`): its virtual addresses and its hosts by node id. */
export interface ServiceRecord {
  name: string;
  ipv4?: string;
  ipv6?: string;
  hosts: Id[];
  approved_hosts?: Id[];
  tags?: string[];
}

export interface EngineOptions extends NameOption {
  /** The tailnet in the engine's format (object or JSON text). */
  state?: TailnetState | string;
  /** Or in the corpus inventory format (nodes numbered 1, 2, ... in registration order). */
  inventory?: Inventory;
  /** `derived` (default) or `stored` (auto-approvals written into the records). */
  approvals?: 'derived' | 'stored';
  controlUrl?: string;
  /** What an approved exit node's packet filter holds (default `"all"`, as Tailscale sends it). */
  exitNodeFilters?: ExitNodeFilters;
}

/** Something that happened to the tailnet or its policy. */
export type EngineEvent =
  | { type: 'upsert_node'; node: NodeRecord }
  | { type: 'remove_node'; node: Id }
  | { type: 'upsert_user'; user: UserRecord }
  | { type: 'remove_user'; user: Id }
  | { type: 'advertise_routes'; node: Id; routes: string[] }
  | { type: 'approve_routes'; node: Id; routes: string[] }
  | { type: 'set_online'; node: Id; online: boolean }
  | { type: 'replace_policy'; policy: string; name?: string }
  | { type: 'upsert_service'; service: ServiceRecord }
  | { type: 'remove_service'; service: string };

export type MapPart = 'packet_filter' | 'ssh_rules' | 'peers' | 'cap_map' | 'own';

/** What an event changed: push a new map to each of `changed`, drop `removed`. */
export interface ChangeSet {
  /** How many events changed the state. */
  snapshot: number;
  changed: { id: Id; name: string; added: boolean; parts: MapPart[] }[];
  removed: { id: Id; name: string }[];
  /** A replaced policy's warnings. */
  warnings?: Diagnostic[];
}

/** A node by stable id or by name. */
export type NodeRef = Id | string;

export type PeerReason =
  | 'membership'
  | 'identity'
  | 'selectors'
  | 'router'
  | 'exit'
  | 'via_target'
  | 'posture';

export interface SshDecision {
  action: 'accept' | 'check' | 'denied';
  /** `12h0m0s` (as Go prints durations) or `always`. */
  check_period?: string;
  rule?: Rule & { index: number };
  local_user?: string;
}

/** The questions of `Engine.query`: arguments and answer. */
export interface EngineQuestions {
  may_apply_tag: { args: { tag: string; user?: number; node?: NodeRef }; answer: boolean };
  auto_approves: { args: { node: NodeRef; route: string }; answer: boolean };
  auto_approved: { args: { node: NodeRef }; answer: string[] };
  approvals_lost: {
    args: { policy: string; name?: string };
    answer: { id: Id; name: string; routes: string[] }[];
  };
  ssh_decision: { args: { src: NodeRef; dst: NodeRef; login: string }; answer: SshDecision };
  explain_flow: { args: { src: NodeRef; dst: NodeRef; port: number; proto?: string }; answer: Explanation };
  peer_impact: {
    args: { node?: number; before?: NodeRecord | null; after?: NodeRecord | null };
    answer: PeerReason[];
  };
}

export class Engine {
  readonly handle: number;
  readonly nodes: { id: Id; name: string }[];
  readonly warnings: Diagnostic[];
  apply(event: EngineEvent): ChangeSet;
  /** Several events as one change (one compile, one change set); atomic. */
  applyBatch(events: EngineEvent[]): ChangeSet;
  map(node: NodeRef): NodeMap;
  query<Q extends keyof EngineQuestions>(question: Q, args: EngineQuestions[Q]['args']): EngineQuestions[Q]['answer'];
  free(): void;
}

/** Gains and losses of one kind (entries as `aclc diff --format json` prints them). */
export interface Changes {
  gained: Record<string, unknown>[];
  lost: Record<string, unknown>[];
  gained_omitted?: number;
  lost_omitted?: number;
}

/** What `aclc diff --format json` prints. */
export interface DiffResult {
  changed: boolean;
  old: string;
  new: string;
  policy: { sections: Record<string, unknown>[] };
  network?: Changes;
  ssh?: Changes;
  peers?: Changes;
  capabilities?: Changes;
  /** Application capabilities app grants give sources on destinations. */
  apps?: Changes;
  /** Rules naming another tailnet's groups or tags (declarative node sharing), added or removed. */
  external?: Changes;
}

export class Policy {
  readonly handle: number;
  readonly nodes: string[];
  readonly warnings: Diagnostic[];
  nodeMap(node: string): NodeMap;
  compile(nodes?: string[]): Record<string, NodeMap>;
  explain(query: Query): Explanation;
  free(): void;
}

export function init(source?: ModuleSource): Promise<Aclc>;

/** JSON text of a response (or any value) with its BigInt values written as JSON integers.
 * `JSON.stringify` throws on a BigInt, and a node map holds one where the policy writes an
 * integer past 2^53 - 1 in a capability's value; `space` as `JSON.stringify`'s. */
export function toJSON(value: unknown, space?: string | number): string;

/**
 * What an approved exit node's packet filter holds: `"all"`, every rule's destinations of the
 * families it exits to (as Tailscale's control server sends it), or `"internet"`, only the
 * internet's (smaller filters that admit less than Tailscale's).
 */
export type ExitNodeFilters = 'all' | 'internet';
