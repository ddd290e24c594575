// `npm run bench -- <name> [--json]`: each figure beside its baseline measured
// in the same run on the same Redis, as a ratio.
import { parseArgs } from 'node:util';
import { apiBench } from './api.js';
import { queueBench } from './queue.js';
import { renderBench } from './render.js';

export interface Figure {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  floor?: number;
}

const BENCHES: Record<string, (args: Record<string, string | boolean | undefined>) => AsyncGenerator<Figure>> = {
  queue: queueBench,
  render: renderBench,
  api: apiBench,
  autoscaler: async function* (args) { yield* (await import('./autoscaler.js')).autoscalerBench(args); },
  fleet: async function* (args) { yield* (await import('./fleet.js')).fleetBench(args); },
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { json: { type: 'boolean' }, jobs: { type: 'string' }, concurrency: { type: 'string' }, videos: { type: 'string' }, 'memory-seconds': { type: 'string' }, workers: { type: 'string' }, 'per-process': { type: 'string' }, burst: { type: 'string' }, 'sleep-ms': { type: 'string' }, window: { type: 'string' }, 'skip-baseline': { type: 'boolean' }, 'skip-memory': { type: 'boolean' } },
});
const names = positionals.length ? positionals : Object.keys(BENCHES);
let belowFloor = false;
for (const name of names) {
  const bench = BENCHES[name];
  if (!bench) {
    process.stderr.write(`unknown bench "${name}"; known: ${Object.keys(BENCHES).join(', ')}\n`);
    process.exit(2);
  }
  for await (const f of bench(values)) {
    if (f.floor !== undefined && f.ratio !== undefined && f.ratio < f.floor) belowFloor = true;
    if (values.json) process.stdout.write(`${JSON.stringify(f)}\n`);
    else {
      const base = f.baseline !== undefined ? `  baseline ${f.baseline.toFixed(Math.abs(f.baseline) < 10 ? 2 : 0)} ${f.unit}  ratio ${f.ratio!.toFixed(2)}${f.floor ? ` (floor ${f.floor})` : ''}` : '';
      process.stdout.write(`${f.bench.padEnd(6)} ${f.metric.padEnd(34)} ${f.value.toFixed(Math.abs(f.value) < 10 ? 2 : 0).padStart(7)} ${f.unit}${base}\n`);
    }
  }
}
process.exit(belowFloor ? 1 : 0);
