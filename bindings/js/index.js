// aclc for JavaScript: the WebAssembly build of aclc's embedding API (docs/embedding.md in the
// aclc repository) behind a small synchronous API, for Node and browsers. Types: index.d.ts.

/** The version of the embedding API's JSON this package speaks. */
export const API_VERSION = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A failed request: `kind` (see docs/embedding.md), `message`, and for a refused or
 * invalid policy every `diagnostics` entry. */
export class AclcError extends Error {
  constructor(error) {
    super(error.message);
    this.name = 'AclcError';
    this.kind = error.kind;
    this.diagnostics = error.diagnostics ?? [];
  }
}

// Ids are 64-bit (a server's database rows): JavaScript numbers hold integers exactly only up
// to 2^53 - 1, past which two ids round to one and a call would act on another node. Requests
// take such ids as BigInt (written as JSON integers) and refuse an integer number past that
// bound; responses give an integer past it as a BigInt, every other number as a number.
/** A marker no string of `text` holds (written as JSON writes U+0000): a BigInt's digits
 * travel inside a string that starts with it. */
function marker(text) {
  for (;;) {
    const mark = `\u0000aclc-bigint-${Math.random().toString(36).slice(2)}:`;
    if (!text.includes(mark.replace('\u0000', '\\u0000'))) return mark;
  }
}

/** JSON text of `value` with BigInt values written as JSON integers; `check(key, value)` may
 * throw on a value or return it (or a replacement). */
function writeJSON(value, check, space) {
  for (;;) {
    const mark = marker('');
    let bigs = 0;
    const text = JSON.stringify(
      value,
      (key, value) => {
        if (typeof value === 'bigint') {
          bigs += 1;
          return mark + value.toString();
        }
        return check(key, value);
      },
      space,
    );
    if (bigs === 0) return text;
    // JSON.stringify writes U+0000 as \u0000. A string of the value that held the marker
    // (never, but for a one in 36^10 draw) makes the counts differ: another marker then.
    const escaped = mark.replace('\u0000', '\\u0000').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const found = new RegExp(`"${escaped}(-?\\d+)"`, 'g');
    if ((text.match(found) ?? []).length !== bigs) continue;
    return text.replace(found, '$1');
  }
}

/** JSON text of a request: BigInt values as integers; an integer number too large to be exact
 * refused (RangeError) rather than sent rounded. */
function stringify(request) {
  return writeJSON(request, (key, value) => {
    // A lone surrogate has no UTF-8 form: read as U+FFFD, as the Go package's strings are
    // (a policy then gets its diagnostic, not a request error).
    if (typeof value === 'string' && value.isWellFormed && !value.isWellFormed()) {
      return value.toWellFormed();
    }
    // So is one in an object's key (a posture attribute's name): the key was sent as written,
    // and the request refused as not JSON.
    if (
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      ''.isWellFormed &&
      Object.keys(value).some((k) => !k.isWellFormed())
    ) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toWellFormed(), v]));
    }
    if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new RangeError(
        `aclc: ${key || 'a value'} = ${value} is past 2^53 - 1, where numbers are not exact: pass it as a BigInt`,
      );
    }
    return value;
  });
}

/** JSON text of a response (or any value) with its BigInt values written as JSON integers, as
 * the module wrote them: `JSON.stringify` throws on a BigInt, and a node map holds one when
 * the policy writes an integer past 2^53 - 1 in a capability's value. `space` as
 * `JSON.stringify`'s. */
export function toJSON(value, space) {
  return writeJSON(value, (_key, value) => value, space);
}

/** A response: integers past 2^53 - 1 as BigInt (found outside strings), the rest as
 * JSON.parse reads it. */
function parse(text) {
  // Fast path: no run of 16 digits anywhere, so no integer past 2^53 - 1.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  const mark = marker(text);
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash: skip the escaped character
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) {
      inString = true;
      continue;
    }
    // A number token, whole (sign, digits, fraction, exponent): only a plain integer past
    // 2^53 - 1 is rewritten.
    if (!((c >= 48 && c <= 57) || c === 45)) continue;
    let j = i + 1;
    while (j < text.length && /[0-9.eE+-]/.test(text[j])) j++;
    const literal = text.slice(i, j);
    if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(Number(literal))) {
      out += text.slice(last, i) + '"' + mark.replace('\u0000', '\\u0000') + literal + '"';
      last = j;
    }
    i = j - 1;
  }
  if (last === 0) return JSON.parse(text);
  out += text.slice(last);
  // The marker is in no string of `text`: only the rewritten integers start with it.
  return JSON.parse(out, (key, value) =>
    typeof value === 'string' && value.startsWith(mark) ? BigInt(value.slice(mark.length)) : value,
  );
}

const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null;

/** Compile the module from `source` (a URL, a Response, bytes or a WebAssembly.Module);
 * by default `aclc.wasm` beside this file. */
async function compileModule(source) {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return WebAssembly.compile(source);
  if (typeof Response !== 'undefined' && source instanceof Response) {
    return WebAssembly.compile(await source.arrayBuffer());
  }
  const url = source ?? new URL('./aclc.wasm', import.meta.url);
  if (isNode && String(url).startsWith('file:')) {
    const { readFile } = await import('node:fs/promises');
    return WebAssembly.compile(await readFile(new URL(url)));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`aclc: cannot fetch ${url}: ${response.status}`);
  return WebAssembly.compile(await response.arrayBuffer());
}

/** One instance of aclc: its memory and the policies loaded into it. Calls are synchronous. */
export class Aclc {
  /** Start an instance; `source` as for the module (default: aclc.wasm beside index.js). */
  static async create(source) {
    return new Aclc(await compileModule(source));
  }

  constructor(module) {
    this.module = module;
    this.generation = 0;
    this.instance = null;
  }

  #start() {
    this.instance = new WebAssembly.Instance(this.module, {});
    this.generation += 1;
  }

  /** Send one raw request object (`op` and its arguments; `version` is added) and return the
   * response object, `error` and all. Throws only when the instance traps (a bug in aclc,
   * or memory exhausted): the instance is then replaced and loaded policies are lost. */
  call(request) {
    if (this.instance === null) this.#start();
    const bytes = encoder.encode(stringify({ version: API_VERSION, ...request }));
    const ex = this.instance.exports;
    try {
      // WebAssembly's i32 and i64 arrive signed: an address at or past 2 GiB would be
      // negative. Both are read unsigned (the module may use its whole 4 GiB).
      const ptr = bytes.length > 0 ? ex.aclc_alloc(bytes.length) >>> 0 : 0;
      new Uint8Array(ex.memory.buffer, ptr, bytes.length).set(bytes);
      const packed = BigInt.asUintN(64, ex.aclc_call(ptr, bytes.length));
      if (bytes.length > 0) ex.aclc_free(ptr, bytes.length);
      const outPtr = Number(packed >> 32n);
      const outLen = Number(packed & 0xffffffffn);
      const text = decoder.decode(new Uint8Array(ex.memory.buffer, outPtr, outLen));
      ex.aclc_free(outPtr, outLen);
      return parse(text);
    } catch (error) {
      // A trap, or a JavaScript error thrown while the module ran (a stack overflow is a
      // RangeError): the module's own state (its stack pointer, a half-done call) cannot be
      // trusted after either, so the instance is dropped. Errors of the response's JSON are
      // not the module's, but a fresh instance costs only the loaded policies.
      if (error instanceof WebAssembly.RuntimeError || error instanceof RangeError) {
        this.instance = null;
        throw new Error(`aclc: the WebAssembly call failed (loaded policies are lost): ${error.message}`);
      }
      throw error;
    }
  }

  /** `call`, throwing an AclcError for a response with `error`. */
  request(request) {
    const response = this.call(request);
    if (response.error) throw new AclcError(response.error);
    return response;
  }

  /** What the embedded build is: `{aclc, ops}`. */
  info() {
    const { aclc, ops } = this.request({ op: 'info' });
    return { aclc, ops };
  }

  /** Validate a policy as `aclc check` does: `{valid, diagnostics}`. */
  check(policy, { name, inventory } = {}) {
    const { valid, diagnostics } = this.request({ op: 'check', policy, name, inventory });
    return { valid, diagnostics };
  }

  /** Lay a policy out as `aclc fmt` does; throws AclcError (kind `invalid`) on a syntax error. */
  format(policy) {
    return this.request({ op: 'fmt', policy }).formatted;
  }

  /** Each node's map, as `aclc compile` prints them; throws AclcError (kind `refused`). */
  compile(policy, inventory, { name, controlUrl, exitNodeFilters, nodes } = {}) {
    return this.request({
      op: 'compile', policy, inventory, name, control_url: controlUrl,
      exit_node_filters: exitNodeFilters, nodes,
    }).nodes;
  }

  /** Compile and keep a policy, for node maps and explanations without recompiling. */
  load(policy, inventory, { name, controlUrl, exitNodeFilters } = {}) {
    const response = this.request({
      op: 'load', policy, inventory, name, control_url: controlUrl,
      exit_node_filters: exitNodeFilters,
    });
    return new Policy(this, response);
  }

  /** Run the policy's tests and sshTests as `aclc test` does: every assertion. Throws
   * AclcError (kind `refused`) only when the policy is invalid or cannot be compiled. */
  test(policy, inventory, { name } = {}) {
    const { version, ...report } = this.request({ op: 'test', policy, inventory, name });
    return report;
  }

  /** Compare two policies as `aclc diff --format json` does: with an inventory, the access
   * gained and lost per node; always, the semantic diff per section. */
  diff(oldPolicy, newPolicy, { inventory, oldName, newName } = {}) {
    const { version, ...result } = this.request({
      op: 'diff', old: oldPolicy, new: newPolicy, inventory, old_name: oldName, new_name: newName,
    });
    return result;
  }

  /** Can `src` reach `dst` (`host:port`), or with `user`, log in over SSH; and why. */
  explain(policy, inventory, query, { name } = {}) {
    return explanation(this.request({ op: 'explain', policy, inventory, name, ...query }));
  }

  /** Start a control-server engine for a policy and a tailnet: `state` in the engine's
   * format (users and nodes by stable id), or `inventory` in the corpus format. Throws
   * AclcError (kind `refused`) for a policy Tailscale would refuse. */
  engine(policy, { state, inventory, name, approvals, controlUrl, exitNodeFilters } = {}) {
    const response = this.request({
      op: 'engine_new', policy, state, inventory, name, approvals, control_url: controlUrl,
      exit_node_filters: exitNodeFilters,
    });
    return new Engine(this, response);
  }
}

/** A handle kept in one instance (a loaded policy, an engine): its requests carry it, and
 * fail with `unknown_handle` once that instance was restarted. */
class Handle {
  #what;

  constructor(aclc, { handle, nodes, warnings }, what) {
    this.aclc = aclc;
    this.handle = handle;
    this.generation = aclc.generation;
    this.#what = what;
    /** The nodes at the start (an engine: `{id, name}` by ascending id). */
    this.nodes = nodes;
    /** The policy's warnings. */
    this.warnings = warnings;
  }

  /** A request on this handle. */
  request(request) {
    if (this.aclc.generation !== this.generation || this.aclc.instance === null) {
      throw new AclcError({
        kind: 'unknown_handle',
        message: `the ${this.#what} was lost when its instance restarted`,
      });
    }
    return this.aclc.request({ handle: this.handle, ...request });
  }

  /** Release it (nothing to do once its instance was restarted). */
  free() {
    if (this.aclc.generation === this.generation && this.aclc.instance !== null) {
      this.request({ op: 'free' });
    }
  }
}

/** A control-server engine (docs/embedding.md, "The engine"), kept in its instance until
 * `free()`: events in, change sets out. */
export class Engine extends Handle {
  constructor(aclc, response) {
    super(aclc, response, 'engine');
  }

  /** Apply an event (`{type: 'upsert_node', node: {...}}` ...) and return its change set
   * `{snapshot, changed, removed, warnings?}`. A refused event throws and changes nothing. */
  apply(event) {
    const { version, ...changes } = this.request({ op: 'engine_apply', event });
    return changes;
  }

  /** Apply `events` in order as one change (one compile, one change set: the nodes whose map
   * differs between before the first and after the last). Atomic: a refused event (the error's
   * message starts `events[i]: `) refuses the whole batch. `replace_policy` goes through
   * `apply`, not a batch. */
  applyBatch(events) {
    const { version, ...changes } = this.request({ op: 'engine_apply', events });
    return changes;
  }

  /** The map of a node (by id or name) in the current snapshot. */
  map(node) {
    return this.request({ op: 'engine_map', node }).map;
  }

  /** Ask the current snapshot a question (`may_apply_tag`, `ssh_decision`, ...): its answer. */
  query(question, args = {}) {
    return this.request({ op: 'engine_query', question, args }).answer;
  }

}

function explanation({ allowed, reason, rules, misses, also, notes }) {
  return { allowed, reason, rules, misses, also: also ?? [], notes: notes ?? [] };
}

/** A policy compiled against an inventory, kept in its instance until `free()`. */
export class Policy extends Handle {
  constructor(aclc, response) {
    super(aclc, response, 'policy');
  }

  /** One node's map. */
  nodeMap(node) {
    return this.request({ op: 'node_map', node }).map;
  }

  /** The maps of `nodes` (all when omitted). */
  compile(nodes) {
    return this.request({ op: 'compile', nodes }).nodes;
  }

  /** Explain a query on this policy. */
  explain(query) {
    return explanation(this.request({ op: 'explain', ...query }));
  }

}

/** Start an instance (see Aclc.create). */
export function init(source) {
  return Aclc.create(source);
}
