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
    | 'invalid_inventory'
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
    options?: NameOption & { controlUrl?: string; nodes?: string[] },
  ): Record<string, NodeMap>;
  load(policy: string, inventory: Inventory, options?: NameOption & { controlUrl?: string }): Policy;
  explain(policy: string, inventory: Inventory, query: Query, options?: NameOption): Explanation;
  test(policy: string, inventory: Inventory, options?: NameOption): TestReport;
  diff(
    oldPolicy: string,
    newPolicy: string,
    options?: { inventory?: Inventory; oldName?: string; newName?: string },
  ): DiffResult;
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
