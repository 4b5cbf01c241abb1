// Timings of the npm package on a generated workload (testdata/bench/gen_workload.py), for
// the overhead table in docs/embedding.md: `node bench.js DIR` where DIR holds policy.hujson
// and inventory.json. Check (best of 10), compile (load, three times in one instance), and
// one node map (best of 10).
import { readFileSync } from 'node:fs';
import { init } from './index.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bench.js WORKLOAD_DIR');
  process.exit(1);
}
const policy = readFileSync(`${dir}/policy.hujson`, 'utf8');
const inventory = readFileSync(`${dir}/inventory.json`, 'utf8');
const aclc = await init();
const ms = (start) => `${(performance.now() - start).toFixed(1)} ms`;

// V8 compiles WebAssembly in two tiers (a quick baseline first, optimised code later): the
// best of 10 is the steady state, as it is in a long-lived server or page.
let best = Infinity;
for (let i = 0; i < 10; i++) {
  const start = performance.now();
  aclc.check(policy);
  best = Math.min(best, performance.now() - start);
}
console.log(`check: ${best.toFixed(1)} ms (best of 10)`);
for (let i = 1; i <= 3; i++) {
  const start = performance.now();
  // Exit nodes given only the internet's destinations, as the Rust and Go benches do: with
  // Tailscale's exit filters (the default) the workloads' exit nodes hold most of the policy,
  // past the compile's entry limit on large (ARCHITECTURE.md, "Exit nodes receive every
  // rule's destinations").
  const p = aclc.load(policy, inventory, { exitNodeFilters: 'internet' });
  const took = ms(start);
  if (i === 1) {
    let fastest = Infinity;
    for (let j = 0; j < 10; j++) {
      const at = performance.now();
      aclc.request({ op: 'node_map', handle: p.handle, node: p.nodes[Math.floor(p.nodes.length / 2)] });
      fastest = Math.min(fastest, performance.now() - at);
    }
    console.log(`node_map: ${fastest.toFixed(1)} ms (best of 10)`);
  }
  console.log(`compile #${i}: ${took}`);
  p.free();
}
