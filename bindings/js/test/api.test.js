// Every call of the npm package on the repository's example policy and inventory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Aclc, AclcError, init, API_VERSION } from '../index.js';

const examples = new URL('../../../testdata/examples/', import.meta.url);
const policy = readFileSync(new URL('policy.hujson', examples), 'utf8');
const broken = readFileSync(new URL('invalid.hujson', examples), 'utf8');
const inventory = readFileSync(new URL('inventory.json', examples), 'utf8');
const aclc = await init();

function throwsKind(fn, kind) {
  assert.throws(fn, (e) => e instanceof AclcError && e.kind === kind);
}

test('info', () => {
  const info = aclc.info();
  assert.equal(API_VERSION, 1);
  assert.ok(info.aclc.length > 0);
  assert.ok(info.ops.includes('explain'));
});

test('check: valid, invalid, with an inventory', () => {
  assert.equal(aclc.check(policy).valid, true);
  const found = aclc.check(broken, { name: 'broken.hujson', inventory });
  assert.equal(found.valid, false);
  const errors = found.diagnostics.filter((d) => d.severity === 'error');
  assert.ok(errors.length >= 3);
  for (const d of errors) {
    assert.equal(d.file, 'broken.hujson');
    assert.ok(d.line > 0 && d.column > 0 && d.code.startsWith('aclc::'));
  }
  // The inventory may also be given as an object.
  assert.deepEqual(aclc.check(broken, { name: 'broken.hujson', inventory: JSON.parse(inventory) }), found);
});

test('format', () => {
  const out = aclc.format('{"acls":[{"action":"accept",\n"src":["*"],"dst":["*:*"]}]}');
  assert.ok(out.includes('\n'));
  assert.equal(aclc.format(out), out);
  throwsKind(() => aclc.format('{"acls": ['), 'invalid');
});

test('compile, load, node maps, explain, free', () => {
  const nodes = aclc.compile(policy, inventory);
  assert.equal(Object.keys(nodes).length, 7);
  const p = aclc.load(policy, inventory);
  assert.deepEqual(p.nodes, Object.keys(nodes));
  for (const name of p.nodes) assert.deepEqual(p.nodeMap(name), nodes[name]);
  assert.deepEqual(Object.keys(p.compile(['db-1'])), ['db-1']);
  assert.deepEqual(aclc.compile(policy, inventory, { nodes: ['web-1'] }), { 'web-1': nodes['web-1'] });
  // The exit node receives every rule's destinations, or with `internet` only the internet's.
  const exitAll = JSON.stringify(nodes['exit-1'].packet_filter_rules);
  const exitInternet = JSON.stringify(
    aclc.compile(policy, inventory, { exitNodeFilters: 'internet', nodes: ['exit-1'] })['exit-1'].packet_filter_rules);
  assert.ok(exitAll.includes('"100.64.1.2"') && !exitInternet.includes('"100.64.1.2"'), `${exitAll} / ${exitInternet}`);
  throwsKind(() => p.nodeMap('nope'), 'unknown_node');
  const allowed = p.explain({ src: 'bob@example.com', dst: 'web-1:443' });
  assert.equal(allowed.allowed, true);
  assert.equal(allowed.rules[0].line, 27);
  assert.deepEqual(allowed.also, []);
  // The other rules that let a flow through as well are named (removing the first alone
  // would not deny it).
  const twice = p.explain({ src: 'carol-desktop', dst: 'carol-desktop:22' });
  assert.deepEqual([twice.rules.map((r) => r.line), twice.also.map((r) => r.line)], [[29], [31]]);
  const denied = aclc.explain(policy, inventory, { src: 'bob@example.com', dst: 'db-1:5432' });
  assert.equal(denied.allowed, false);
  assert.ok(denied.reason.length > 0);
  assert.ok(p.explain({ src: 'carol@example.com', dst: 'web-1', user: 'root' }).reason.length > 0);
  throwsKind(() => p.explain({ src: 'nobody-at-all', dst: 'web-1:443' }), 'query');
  // An SSH login the packet filter keeps closed on TCP port 22 is allowed, with a note.
  const closed = aclc.explain(JSON.stringify({
    tagOwners: { 'tag:web': [], 'tag:db': [], 'tag:router': [], 'tag:exit': [] },
    acls: [{ action: 'accept', src: ['*'], dst: ['*:443'] }],
    ssh: [{ action: 'accept', src: ['autogroup:member'], dst: ['tag:web'], users: ['root'] }],
  }), inventory, { src: 'bob@example.com', dst: 'web-1', user: 'root' });
  assert.equal(closed.allowed, true);
  assert.ok(closed.notes.some((n) => n.includes('22')), JSON.stringify(closed));
  p.free();
  throwsKind(() => aclc.request({ op: 'node_map', handle: p.handle, node: 'web-1' }), 'unknown_handle');
  const report = aclc.test(policy, inventory);
  assert.equal(report.passed, true);
  assert.ok(report.total > 0 && report.results[0].line > 0);
  throwsKind(() => aclc.test(broken, inventory), 'refused');
  const refused = (() => {
    try {
      aclc.compile(broken, inventory);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(refused instanceof AclcError && refused.kind === 'refused' && refused.diagnostics.length > 0);
});

test('raw requests and their errors', async () => {
  const other = await Aclc.create(readFileSync(new URL('../aclc.wasm', import.meta.url)));
  const kinds = {
    unsupported_version: { op: 'info', version: 2 },
    unknown_op: { op: 'nope' },
    bad_request: { op: 'check' },
    unknown_handle: { op: 'free', handle: 99 },
    invalid_inventory: { op: 'compile', policy: '{}', inventory: '[]' },
  };
  for (const [kind, request] of Object.entries(kinds)) {
    assert.equal(other.call(request).error.kind, kind, JSON.stringify(request));
  }
  assert.equal(other.call({ op: 'check', policy: '{}', extra: 1 }).error.kind, 'bad_request');
  // Instances are separate: a handle of one is unknown to the other.
  const p = aclc.load(policy, inventory);
  const q = other.load(policy, inventory);
  assert.equal(q.handle, 1);
  assert.notEqual(p.handle, undefined);
  p.free();
  q.free();
});

test('a trap drops the instance, and the next call starts a fresh one', async () => {
  const a = await Aclc.create();
  const p = a.load(policy, inventory);
  // A real trap: allocating 4 GiB panics (capacity overflow), and a panic traps.
  const real = a.instance.exports;
  a.instance = { exports: { ...real, aclc_call: () => real.aclc_alloc(0xfffffff0) } };
  assert.throws(() => a.info(), /WebAssembly call failed/);
  assert.ok(a.info().ops.length > 0, 'a fresh instance answers');
  assert.throws(() => p.nodeMap('web-1'), (e) => e instanceof AclcError && e.kind === 'unknown_handle');
  assert.equal(a.load(policy, inventory).nodeMap('web-1').addresses.length, 2);
});

test('diff', () => {
  const widened = policy.replace('"ip": ["tcp:5432"]', '"ip": ["tcp:5432-5433"]');
  assert.notEqual(widened, policy);
  const d = aclc.diff(policy, widened, { inventory });
  assert.equal(d.changed, true);
  assert.equal(d.network.gained.length, 1);
  assert.equal(d.network.gained[0].ports, '5433');
  assert.deepEqual(d.network.lost, []);
  const same = aclc.diff(policy, policy);
  assert.equal(same.changed, false);
  assert.equal(same.network, undefined);
  throwsKind(() => aclc.diff(policy, '{"acls": ['), 'refused');
});

test('a lone surrogate in a policy is read as U+FFFD (a diagnostic, not a bad request)', () => {
  const result = aclc.check('{"groups": {"group:a\uD800": []}} \uDC00');
  assert.equal(result.valid, false);
  assert.ok(result.diagnostics.length > 0);
});

test('a whole-tailnet compile past 512 MiB is refused before any map is built', () => {
  // 6,000 devices allowed to reach each other: 36 million peers, 1.7 GB of maps.
  const users = Array.from({ length: 50 }, (_, j) => ({ id: j + 1, name: `u${j}`, email: `u${j}@example.com` }));
  const nodes = Array.from({ length: 6000 }, (_, i) => ({
    name: `n${String(i).padStart(5, '0')}`,
    user: `u${i % 50}@example.com`,
    ipv4: `100.64.${i >> 8}.${i & 255}`,
    ipv6: `fd7a:115c:a1e0::${(i + 1).toString(16)}`,
  }));
  const open = '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}';
  assert.throws(
    () => aclc.compile(open, JSON.stringify({ users, nodes })),
    (e) => e instanceof AclcError && e.kind === 'too_large' && e.message.includes('before any map'),
  );
});

test('a module memory past 2 GiB: addresses read unsigned', async () => {
  const a = await Aclc.create();
  a.info();
  // Grown past 2 GiB (untouched pages cost no memory): the allocator's next block, for a
  // request larger than anything it has free, lies above it, at an address JavaScript
  // received as negative.
  const memory = a.instance.exports.memory;
  const pages = memory.buffer.byteLength / 65536;
  memory.grow(32768 + 16 - Math.min(pages, 32768));
  const big = policy + ' '.repeat(4 << 20);
  assert.equal(a.check(big).valid, true);
  assert.ok(memory.buffer.byteLength > 2 ** 31);
  assert.equal(a.load(policy, inventory).nodeMap('web-1').addresses.length, 2);
});
