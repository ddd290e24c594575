// The trace-driven simulator: repeatable to the last digit for a seed, spot
// interruptions that hand jobs back lose none, and the policy it drives holds
// a steady load without flapping and never asks to stop a busy worker.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuThreshold, kedaListLength, staticPool, targetTracking } from '../autoscaler/simulator/baselines.js';
import { simulate, type Controller } from '../autoscaler/simulator/simulate.js';
import { flashBurst, steady, workload, type Trace } from '../autoscaler/simulator/traces.js';
import { vgenController } from '../autoscaler/simulator/vgen.js';

const bounds = { min: 1, max: 300 };

function vgen(trace: Trace): Controller {
  const S = trace.meanRenderSeconds;
  return vgenController({
    policy: bounds,
    waitTargetSeconds: 60,
    prior: { rate: trace.load(0) / S, meanSeconds: S, stddevSeconds: S * Math.sqrt(Math.exp(trace.renderSigma ** 2) - 1) },
  });
}

test('determinism: the same seed gives identical results, another seed other ones', () => {
  const trace = flashBurst({ seed: 7, base: 10, hours: 1, at: 1200, weather: 0.08 });
  const runOnce = (seed: number) => {
    const jobs = workload(trace, seed);
    return [vgen(trace), targetTracking({ ...bounds, acceptableLatencySeconds: 60, meanProcessingSeconds: 60 }), kedaListLength(bounds), cpuThreshold(bounds)]
      .map((c) => simulate(jobs, c, { seed, initialWorkers: 11, spotInterruptionsPerHour: 0.5 }));
  };
  const a = runOnce(3);
  assert.deepEqual(runOnce(3), a);
  assert.ok(a.every((r) => r.jobs > 500 && r.completed + r.lost === r.jobs), 'every job accounted for');
  assert.ok(a.some((r) => r.interruptions > 0), 'interruptions happened');
  assert.notDeepEqual(runOnce(4).map((r) => r.workerHours), a.map((r) => r.workerHours));
});

test('spot interruptions hand jobs back: none lost; without the hand-back they are', () => {
  // Long renders and a high interruption rate, so notices often land mid-render.
  const trace = steady({ seed: 2, load: 30, hours: 2, render: { meanSeconds: 300, sigma: 0.4 } });
  const jobs = workload(trace, 2);
  const options = { seed: 2, initialWorkers: 34, spotInterruptionsPerHour: 1 };
  const kept = simulate(jobs, vgen(trace), options);
  assert.ok(kept.interrupted > 20, `${kept.interrupted} jobs handed back`);
  assert.equal(kept.lost, 0);
  assert.equal(kept.completed, kept.jobs);
  const dropped = simulate(jobs, vgen(trace), { ...options, handBack: false });
  assert.ok(dropped.lost > 20, `${dropped.lost} lost without the hand-back`);
  assert.equal(dropped.completed + dropped.lost, dropped.jobs);
});

test('no oscillation: over six steady hours the fleet settles and barely moves after warm-up', () => {
  const changes: number[] = [];
  for (const seed of [1, 2, 3]) {
    const trace = steady({ seed, load: 100, hours: 6 });
    const r = simulate(workload(trace, seed), vgen(trace), { seed, initialWorkers: 110, spotInterruptionsPerHour: 0 });
    const late = r.changes.filter(([t]) => t > 1800);
    changes.push(late.length);
    assert.ok(late.length <= 5, `seed ${seed}: ${late.length} changes after warm-up: ${JSON.stringify(late)}`);
    // Never back and forth within the scale-in window.
    for (let i = 2; i < late.length; i++) {
      const [t0, a] = late[i - 2]!;
      const [, b] = late[i - 1]!;
      const [t2, c] = late[i]!;
      if ((b - a) * (c - b) < 0) assert.ok(t2 - t0 > 300, `flap at ${t0}–${t2}: ${a} → ${b} → ${c}`);
    }
    const sizes = late.map(([, n]) => n);
    assert.ok(sizes.every((n) => n >= 100 && n <= 120), `sizes ${sizes.join(', ')}`);
    assert.ok(r.wait.p95 <= 60, `p95 ${r.wait.p95}`);
    assert.equal(r.busyRetireRequests, 0);
  }
  assert.ok(changes.reduce((a, b) => a + b, 0) <= 9, `changes per seed: ${changes.join(', ')}`);
});

test('a flash burst: vgen scales out within seconds, back in after it, and never asks to stop a busy worker', () => {
  const trace = flashBurst({ seed: 5, base: 20, factor: 10, at: 1800, seconds: 600, hours: 2 });
  const r = simulate(workload(trace, 5), vgen(trace), { seed: 5, initialWorkers: 22, spotInterruptionsPerHour: 0.05 });
  const firstBig = r.changes.find(([, n]) => n >= 150);
  assert.ok(firstBig && firstBig[0] < 1800 + 30, `reached 150 at ${firstBig?.[0]}`);
  assert.ok(r.changes.at(-1)![1] < 40, `ended at ${r.changes.at(-1)![1]}`);
  // The crowd's end is believed within a minute, not after the smoothed rate forgets it:
  // ten minutes after the crowd (and its backlog) the fleet is down to a third of its peak.
  const tenMinutesAfter = r.changes.filter(([t]) => t <= 2400 + 600).at(-1)![1];
  assert.ok(tenMinutesAfter < 80, `${tenMinutesAfter} workers ten minutes after the crowd`);
  assert.equal(r.busyRetireRequests, 0);
  assert.equal(r.lost, 0);
  assert.ok(r.wait.p99 < 180, `p99 ${r.wait.p99}`);
});

test('billing: a static pool of n for h hours costs n·h worker-hours, at the spot price', () => {
  const trace = steady({ seed: 1, load: 5, hours: 1 });
  const r = simulate(workload(trace, 1), staticPool(10), { seed: 1, initialWorkers: 10, spotInterruptionsPerHour: 0 });
  assert.ok(Math.abs(r.workerHours - 10) < 1e-9, `${r.workerHours}`);
  assert.ok(Math.abs(r.costUsd - 1.2) < 1e-9, `${r.costUsd}`);
  assert.equal(r.wait.p95, 0);
});
