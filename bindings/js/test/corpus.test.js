// On every conformance case, check, compile and test through WebAssembly give what the
// native `aclc check`, `aclc compile` and `aclc test` print: the fixture bindings/build.sh records
// (target/bindings/corpus.jsonl, or $ACLC_CORPUS_FIXTURE).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { init } from '../index.js';

const fixture = process.env.ACLC_CORPUS_FIXTURE
  ?? new URL('../../../target/bindings/corpus.jsonl', import.meta.url);

/** What the API and the command line both say: without `version`, and of a failure only the
 * error's message and diagnostics (the command line adds its verdict, `"valid": false` or
 * `"passed": false`, and the API the error's `kind`). */
function normalise(doc) {
  if (doc === null) return null;
  const { version, ...rest } = doc;
  if (rest.error) {
    const { kind, ...error } = rest.error;
    return { error };
  }
  return rest;
}

test('the conformance corpus: check, compile and test as the native aclc', async () => {
  const text = readFileSync(fixture, 'utf8');
  const cases = text.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
  assert.ok(cases.length > 600, `only ${cases.length} cases`);
  const aclc = await init();
  const differing = [];
  for (const c of cases) {
    for (const op of ['check', 'compile', 'test']) {
      const got = normalise(aclc.call({ op, policy: c.policy, name: c.name, inventory: c.inventory }));
      try {
        assert.deepStrictEqual(got, normalise(c[op]));
      } catch {
        differing.push(`${c.id} ${op}`);
      }
    }
  }
  assert.deepEqual(differing, [], `${differing.length} of ${3 * cases.length} calls differ from the native aclc`);
});
