// The control-server engine through the npm package: events on the repository's examples
// (a node joins, is retagged, leaves, the policy is replaced), maps and questions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { AclcError, init } from '../index.js';

const examples = new URL('../../../testdata/examples/', import.meta.url);
const policy = readFileSync(new URL('policy.hujson', examples), 'utf8');
const broken = readFileSync(new URL('invalid.hujson', examples), 'utf8');
const inventory = readFileSync(new URL('inventory.json', examples), 'utf8');
const aclc = await init();

function throwsKind(fn, kind) {
  assert.throws(fn, (e) => e instanceof AclcError && e.kind === kind);
}

const byName = (changes) => Object.fromEntries(changes.changed.map((c) => [c.name, c]));

test('engine: events, change sets, maps', () => {
  throwsKind(() => aclc.engine(broken, { inventory }), 'refused');
  const engine = aclc.engine(policy, { inventory });
  assert.deepEqual(engine.nodes[0], { id: 1, name: 'alice-laptop' });
  assert.equal(engine.nodes.length, 7);

  const dave = { id: 100, name: 'dave-laptop', user: 2, ipv4: '100.64.3.1', ipv6: 'fd7a:115c:a1e0::3:1' };
  let changes = engine.apply({ type: 'upsert_node', node: dave });
  assert.equal(changes.snapshot, 1);
  assert.equal(byName(changes)['dave-laptop'].added, true);
  assert.deepEqual(byName(changes)['dave-laptop'].parts, ['packet_filter', 'ssh_rules', 'peers', 'cap_map', 'own']);
  assert.ok(byName(changes)['bob-laptop']);
  // Nothing changes on a repeated upsert.
  assert.deepEqual(engine.apply({ type: 'upsert_node', node: dave }), { snapshot: 1, changed: [], removed: [] });

  changes = engine.apply({ type: 'upsert_node', node: { ...dave, user: null, tags: ['tag:web'] } });
  assert.equal(byName(changes)['dave-laptop'].added, false);
  assert.deepEqual(engine.map(100), engine.map('dave-laptop'));
  assert.ok(Array.isArray(engine.map(100).packet_filter_rules));

  throwsKind(() => engine.apply({ type: 'upsert_node', node: { ...dave, id: 101, ipv4: '100.64.3.2', ipv6: 'fd7a:115c:a1e0::3:2' } }), 'invalid_tailnet');
  throwsKind(() => engine.apply({ type: 'set_online', node: 999, online: false }), 'unknown_node');
  throwsKind(() => engine.apply({ type: 'explode' }), 'bad_request');

  // A batch: erin joins and leaves within it (no change names her); a refused event refuses it all.
  const erin = { id: 102, name: 'erin-laptop', user: 2, ipv4: '100.64.3.3', ipv6: 'fd7a:115c:a1e0::3:3' };
  changes = engine.applyBatch([{ type: 'upsert_node', node: erin }, { type: 'remove_node', node: 102 }]);
  assert.ok(!byName(changes)['erin-laptop']);
  assert.deepEqual(changes.removed, []);
  assert.throws(
    () => engine.applyBatch([{ type: 'remove_node', node: 100 }, { type: 'upsert_node', node: { ...erin, user: 99 } }]),
    (e) => e instanceof AclcError && e.kind === 'unknown_user' && e.message.startsWith('events[1]: '),
  );
  assert.deepEqual(engine.map(100), engine.map('dave-laptop'));

  changes = engine.apply({ type: 'remove_node', node: 100 });
  assert.deepEqual(changes.removed, [{ id: 100, name: 'dave-laptop' }]);
  throwsKind(() => engine.map(100), 'unknown_node');

  changes = engine.apply({ type: 'replace_policy', policy: policy.replace('"tag:web:80,443"', '"tag:web:443"') });
  assert.equal(byName(changes)['web-1'].parts[0], 'packet_filter');
  const before = engine.map('db-1');
  const failing = policy.replace('{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},', '');
  throwsKind(() => engine.apply({ type: 'replace_policy', policy: failing }), 'refused');
  assert.deepEqual(engine.map('db-1'), before);

  engine.free();
  throwsKind(() => engine.map(1), 'unknown_handle');
});

test('engine: state format and questions', () => {
  const state = {
    users: [{ id: 1, login: 'alice@', roles: ['admin'] }, { id: 2, login: 'bob@' }],
    nodes: [
      { id: 10, name: 'laptop', user: 1, ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1' },
      { id: 11, name: 'router', tags: ['tag:router'], ipv4: '100.64.0.2', ipv6: 'fd7a:115c:a1e0::2',
        advertised_routes: ['10.0.0.0/16'] },
    ],
    tailnet: { name: 'example.com' },
  };
  const engine = aclc.engine(
    `{"tagOwners": {"tag:router": ["bob@"]},
      "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
      "acls": [{"action": "accept", "src": ["alice@"], "dst": ["10.0.0.0/8:*"]}],
      "ssh": [{"action": "accept", "src": ["alice@"], "dst": ["tag:router"], "users": ["root"]}]}`,
    { state },
  );
  assert.equal(engine.query('may_apply_tag', { user: 2, tag: 'tag:router' }), true);
  assert.equal(engine.query('auto_approves', { node: 'router', route: '10.1.0.0/16' }), true);
  assert.deepEqual(engine.query('auto_approved', { node: 11 }), ['10.0.0.0/16']);
  const ssh = engine.query('ssh_decision', { src: 'laptop', dst: 'router', login: 'root' });
  assert.equal(ssh.action, 'accept');
  assert.equal(ssh.local_user, 'root');
  assert.equal(ssh.rule.index, 0);
  const flow = engine.query('explain_flow', { src: 10, dst: 11, port: 22 });
  assert.equal(flow.allowed, false);
  assert.deepEqual(engine.query('peer_impact', { node: 11, after: { ...state.nodes[1], online: false } }), ['router']);
  assert.deepEqual(engine.query('approvals_lost', { policy: '{}' }), [{ id: 11, name: 'router', routes: ['10.0.0.0/16'] }]);
  throwsKind(() => engine.query('nonsense', {}), 'bad_request');
  engine.free();
});

test('engine: 64-bit ids stay exact (BigInt past 2^53 - 1), and a rounded number is refused', () => {
  const engine = aclc.engine(policy, { inventory });
  const big = 2n ** 53n; // 2^53 and 2^53 + 1 are one JavaScript number
  const a = { id: big, name: 'big-a', user: 2, ipv4: '100.64.3.1', ipv6: 'fd7a:115c:a1e0::3:1' };
  const b = { id: big + 1n, name: 'big-b', user: 2, ipv4: '100.64.3.2', ipv6: 'fd7a:115c:a1e0::3:2' };
  const changes = engine.applyBatch([{ type: 'upsert_node', node: a }, { type: 'upsert_node', node: b }]);
  const ids = Object.fromEntries(changes.changed.map((c) => [c.name, c.id]));
  assert.equal(ids['big-a'], big);
  assert.equal(ids['big-b'], big + 1n);
  // Small ids stay numbers.
  assert.equal(typeof engine.nodes[0].id, 'number');
  assert.ok(changes.changed.some((c) => !c.name.startsWith('big-') && typeof c.id === 'number'));
  assert.deepEqual(engine.map(big + 1n), engine.map('big-b'));
  assert.notDeepEqual(engine.map(big), engine.map(big + 1n));
  // A number past 2^53 - 1 is already rounded: refused before it is sent.
  assert.throws(() => engine.map(Number(big) + 2), RangeError);
  assert.throws(() => engine.apply({ type: 'set_online', node: 2 ** 60, online: false }), RangeError);
  engine.apply({ type: 'remove_node', node: big });
  assert.deepEqual(engine.map(big + 1n), engine.map('big-b'));
  engine.free();
});

test('engine: a lone surrogate in an object key is read as U+FFFD, as in a value', () => {
  const policy = '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}';
  const state = (posture) => ({
    users: [{ id: 1, login: 'alice@example.com' }],
    nodes: [{ id: 10, name: 'laptop', user: 1, ipv4: '100.64.0.1', posture }],
    tailnet: { name: 'example.com' },
  });
  // The key was sent as written and the request refused as not JSON.
  const engine = aclc.engine(policy, { state: state({ 'custom:a\uD800': 'x' }) });
  assert.equal(engine.nodes.length, 1);
  engine.free();
});

test('toJSON writes a response holding a BigInt (a capability value past 2^53 - 1)', async () => {
  const { toJSON } = await import('../index.js');
  const policy = `{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"],
    "app": {"example.com/cap/quota": [{"bytes": 10000000000000001}]}}]}`;
  const state = {
    users: [{ id: 1, login: 'alice@example.com' }],
    nodes: [
      { id: 10, name: 'a', user: 1, ipv4: '100.64.0.1' },
      { id: 11, name: 'b', user: 1, ipv4: '100.64.0.2' },
    ],
    tailnet: { name: 'example.com' },
  };
  const engine = aclc.engine(policy, { state });
  const map = engine.map(10);
  // JSON.stringify cannot write the BigInt the exact value needs.
  assert.throws(() => JSON.stringify(map), TypeError);
  const text = toJSON(map);
  assert.ok(text.includes('{"bytes":10000000000000001}'), text);
  // Everything else as JSON.stringify writes it.
  const plain = (v) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? 1 : x));
  assert.equal(text.replace('10000000000000001', '1'), plain(map));
  assert.equal(toJSON(map, 2), JSON.stringify(JSON.parse(text), null, 2).replace('10000000000000000', '10000000000000001'));
  engine.free();
});
