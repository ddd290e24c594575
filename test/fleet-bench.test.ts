// The fleet benchmark (bench/fleet.ts) at a small size: 20 real worker
// lifecycles in 2 processes register, run a burst and drain through the API's
// drain-all route to an empty registry, with no job lost.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fleetBench } from '../bench/fleet.js';
import type { Figure } from '../bench/run.js';

test('fleet bench: 20 workers register, run a burst, drain --all, lose nothing', { timeout: 60_000 }, async () => {
  const figures: (Figure & Record<string, unknown>)[] = [];
  for await (const f of fleetBench({ workers: '20', 'per-process': '10', burst: '200', 'sleep-ms': '20', window: '1', 'skip-baseline': true }))
    figures.push(f as Figure & Record<string, unknown>);
  const by = (prefix: string) => figures.find((f) => f.metric.startsWith(prefix))!;
  assert.ok(by('registration').value > 0 && by('registration').value < 30, JSON.stringify(figures));
  assert.equal(by('Redis connections').per_worker, 3);
  assert.equal(by('drain --all').draining, 20);
  assert.equal(by('lost').value, 0);
  assert.equal(by('lost').completed, 200);
});
