// On every conformance case, check and compile through WebAssembly give what the native
// `aclc check` and `aclc compile` print: the fixture bindings/build.sh records
// (target/bindings/corpus.jsonl, or $ACLC_CORPUS_FIXTURE).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { init } from '../index.js';

const fixture = process.env.ACLC_CORPUS_FIXTURE
  ?? new URL('../../../target/bindings/corpus.jsonl', import.meta.url);

/** A response as the command line prints it: without `version` and the error's `kind`. */
function normalise(response) {
  const { version, ...rest } = response;
  assert.equal(version, 1);
  if (rest.error) {
    const { kind, ...error } = rest.error;
    rest.error = error;
  }
  return rest;
}

test('the conformance corpus: check and compile as the native aclc', async () => {
  const text = readFileSync(fixture, 'utf8');
  const cases = text.split('\n').filter((line) => line.length > 0).map((line) => JSON.parse(line));
  assert.ok(cases.length > 600, `only ${cases.length} cases`);
  const aclc = await init();
  const differing = [];
  for (const c of cases) {
    for (const op of ['check', 'compile']) {
      const got = normalise(aclc.call({ op, policy: c.policy, name: c.name, inventory: c.inventory }));
      try {
        assert.deepStrictEqual(got, c[op]);
      } catch {
        differing.push(`${c.id} ${op}`);
      }
    }
  }
  assert.deepEqual(differing, [], `${differing.length} of ${2 * cases.length} calls differ from the native aclc`);
});
