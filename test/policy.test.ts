// The scaling policy's properties, on the pure function alone (no Redis, no
// clock): bounds, monotonic in depth, steps, HPA-style stabilization, the
// manual floor, and which workers it retires.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EMPTY_MEMORY, SCALING_REASONS, decide, policyConfig, staffing,
  type ObservedState, type PolicyConfig, type PolicyMemory, type WorkerState, type WorkerView,
} from '../autoscaler/policy.js';

const S = 60;
const config = policyConfig({ min: 1, max: 300 });

function workers(counts: Partial<Record<WorkerState, number>>, now = 1000): WorkerView[] {
  const list: WorkerView[] = [];
  for (const state of ['busy', 'idle', 'booting', 'draining'] as const)
    for (let i = 0; i < (counts[state] ?? 0); i++) list.push({ id: `${state}-${i}`, state, since: now - 10 - i });
  return list;
}

function observed(over: Partial<ObservedState> & { load?: number; waiting?: number } = {}): ObservedState {
  const { load = 100, waiting = 0, ...rest } = over;
  return {
    now: 1000,
    queue: { waiting, prioritized: 0, delayed: 0, active: 0 },
    arrivalRate: load / S,
    render: { meanSeconds: S, stddevSeconds: 32 },
    workers: workers({ busy: load, idle: 8 }),
    waitTargetSeconds: 60,
    ...rest,
  };
}

/** Decide repeatedly on states produced by `at(t)`, every `step` seconds, carrying the memory. */
function run(at: (t: number) => ObservedState, from: number, to: number, step = 5, cfg: PolicyConfig = config, memory: PolicyMemory = EMPTY_MEMORY) {
  const decisions = [];
  for (let t = from; t <= to; t += step) {
    const d = decide(at(t), cfg, memory);
    memory = d.memory;
    decisions.push({ t, ...d });
  }
  return { decisions, memory };
}

test('bounds: min ≤ desired ≤ max for any depth, rate and fleet', () => {
  const cfg = policyConfig({ min: 3, max: 40, maxStepOut: 1000, maxStepIn: 1000 });
  for (const load of [0, 0.5, 5, 39, 400])
    for (const waiting of [0, 1, 30, 5000])
      for (const fleet of [0, 2, 20, 60])
        for (const previous of [undefined, 0, 10, 80]) {
          const d = decide(observed({ load, waiting, workers: workers({ busy: Math.floor(fleet / 2), idle: Math.ceil(fleet / 2) }) }), cfg, { needs: [], ...(previous !== undefined && { desired: previous }) });
          assert.ok(d.desired >= cfg.min && d.desired <= cfg.max, `load ${load} waiting ${waiting} fleet ${fleet} previous ${previous}: desired ${d.desired}`);
          assert.ok(SCALING_REASONS.includes(d.reason), d.reason);
        }
});

test('monotonic in depth: more waiting or prioritized jobs never give fewer workers', () => {
  const memory: PolicyMemory = { needs: [{ at: 900, need: 90 }, { at: 990, need: 120 }], desired: 110 };
  for (const fleet of [{ busy: 40 }, { busy: 100, idle: 5 }, { busy: 100, booting: 30 }]) {
    for (const load of [20, 100, 250]) {
      let last = -1;
      for (let waiting = 0; waiting <= 3000; waiting += 7) {
        const base = observed({ load, workers: workers(fleet) });
        const a = decide({ ...base, queue: { ...base.queue, waiting } }, config, memory).desired;
        const b = decide({ ...base, queue: { ...base.queue, waiting: 0, prioritized: waiting } }, config, memory).desired;
        assert.equal(a, b, 'waiting and prioritized jobs count alike');
        assert.ok(a >= last, `load ${load}: ${waiting} waiting gave ${a} < ${last}`);
        last = a;
      }
      assert.equal(last, Math.min(config.max, 110 + config.maxStepOut), 'up to the step limit');
    }
  }
});

test('scale out: straight to the need, at most maxStepOut a decision, with the backlog as its reason', () => {
  const cfg = policyConfig({ min: 1, max: 300, maxStepOut: 40 });
  const state = observed({ load: 10, waiting: 150, workers: workers({ busy: 10 }) });
  const free = decide(state, policyConfig({ min: 1, max: 300, maxStepOut: 1000 }), { needs: [], desired: 10 });
  assert.equal(free.reason, 'backlog');
  assert.equal(free.desired, free.need);
  assert.equal(free.launch, free.desired - 10);
  assert.ok(free.need > 60, `need ${free.need}`);
  const steps = run(() => state, 0, 30, 5, cfg, { needs: [], desired: 10 }).decisions;
  let previous = 10;
  for (const d of steps) {
    assert.ok(d.desired - previous <= 40, `step ${previous} → ${d.desired}`);
    assert.equal(d.reason, d.desired < free.need ? 'step_limit' : previous < free.need ? 'backlog' : 'steady');
    previous = d.desired;
  }
  assert.equal(previous, free.need);
});

test('scale in: held by the largest need of the last 300 s, then down by at most maxStepIn', () => {
  const cfg = policyConfig({ min: 1, max: 300, maxStepIn: 30 });
  const busyAt = (load: number) => observed({ load, workers: workers({ busy: Math.min(load, 150), idle: Math.max(0, 150 - load) }) });
  const high = run((t) => ({ ...busyAt(140), now: t }), 0, 60, 5, cfg);
  const top = high.decisions.at(-1)!.desired;
  const low = run((t) => ({ ...busyAt(40), now: t }), 65, 1200, 5, cfg, high.memory).decisions;
  const held = low.filter((d) => d.t < 60 + cfg.scaleInWindowSeconds);
  assert.ok(held.length > 40 && held.every((d) => d.desired === top && d.reason === 'scale_in_stabilizing'), 'no scale-in within the window');
  const firstIn = low.find((d) => d.desired < top)!;
  assert.ok(firstIn.t >= 60 + cfg.scaleInWindowSeconds, `scaled in at ${firstIn.t}`);
  for (let i = 1; i < low.length; i++) assert.ok(low[i - 1]!.desired - low[i]!.desired <= 30, 'maxStepIn');
  const final = low.at(-1)!;
  assert.ok(final.desired < 60 && final.desired >= final.need, `settled at ${final.desired}`);
});

test('no flapping: the same observation again and again leaves the fleet where it is', () => {
  const state = observed({ load: 100, workers: workers({ busy: 100, idle: 9 }) });
  const { decisions } = run((t) => ({ ...state, now: t }), 0, 3600, 5, config, { needs: [], desired: 109 });
  assert.ok(decisions.every((d) => d.desired === 109 && d.reason === 'steady'), 'steady');
});

test('hysteresis: a dip within the noise of the rate estimate retires nobody; a real drop does, after the window', () => {
  const noise = S * Math.sqrt(100 / S / (2 * config.rateWindowSeconds)); // one standard error of the load estimate, in workers
  const at = (load: number, size: number) => (t: number) => ({ ...observed({ load, workers: workers({ busy: Math.round(load), idle: size - Math.round(load) }) }), now: t });
  const warm = run(at(100, 100), 0, 600, 5, config, { needs: [], desired: 100 });
  const settled = warm.decisions.at(-1)!.desired;
  assert.ok(settled > 100 && settled <= 112, `sized at ${settled} for 100 workers' worth`);
  const dip = run(at(100 - 2 * noise, settled), 605, 3600, 5, config, warm.memory).decisions;
  assert.ok(dip.every((x) => x.desired === settled), 'a 2σ dip moves nothing');
  const drop = run(at(100 - 10 * noise, settled), 605, 3600, 5, config, warm.memory).decisions;
  assert.ok(drop.filter((x) => x.t < 600 + config.scaleInWindowSeconds).every((x) => x.desired === settled), 'held for the window');
  assert.ok(drop.at(-1)!.desired < settled, 'a 10σ drop is followed');
});

test('retire: idle workers first, longest idle first, then booting ones, never a busy or draining one', () => {
  const now = 5000;
  const fleet: WorkerView[] = [
    { id: 'b1', state: 'busy', since: 10 },
    { id: 'i-new', state: 'idle', since: 4990 },
    { id: 'd1', state: 'draining', since: 4000 },
    { id: 'boot-old', state: 'booting', since: 4950 },
    { id: 'i-old', state: 'idle', since: 4000 },
    { id: 'b2', state: 'busy', since: 4999 },
    { id: 'boot-new', state: 'booting', since: 4995 },
  ];
  const quiet = { ...observed({ load: 0, workers: fleet }), now, arrivalRate: 0 };
  const d = decide(quiet, policyConfig({ min: 0, max: 300 }), { needs: [], desired: 6 });
  assert.equal(d.desired, 0);
  assert.deepEqual(d.retire, ['i-old', 'i-new', 'boot-new', 'boot-old']);
  // Busy workers stay until they are idle; the next decisions retire nothing more while they work.
  const next = decide({ ...quiet, now: now + 5, workers: fleet.filter((w) => w.state === 'busy' || w.state === 'draining') }, policyConfig({ min: 0, max: 300 }), d.memory);
  assert.deepEqual(next.retire, []);
  assert.equal(next.desired, 0);
});

test('a busy fleet never offers a busy worker, however far it is asked to shrink', () => {
  for (const idle of [0, 1, 5]) {
    const fleet = workers({ busy: 50, idle, draining: 3, booting: 2 });
    const d = decide(observed({ load: 1, workers: fleet }), policyConfig({ min: 0, max: 300, maxStepIn: 1000 }), { needs: [], desired: 300 });
    const states = new Map(fleet.map((w) => [w.id, w.state]));
    assert.ok(d.retire.every((id) => states.get(id) === 'idle' || states.get(id) === 'booting'), `retired ${d.retire.join(', ')}`);
    assert.equal(d.retire.length, idle + 2);
  }
});

test('manual floor: holds the fleet up until it expires, then the window lets it down', () => {
  const floor = { workers: 150, until: 2000 };
  const quiet = (t: number) => observed({ load: 10, workers: workers({ busy: 10, idle: 140 }), now: t, manualFloor: floor });
  const on = run(quiet, 1000, 1995, 5, config, { needs: [], desired: 150 });
  assert.ok(on.decisions.every((d) => d.desired === 150), 'held by the floor');
  assert.equal(decide(observed({ load: 10, now: 1000, manualFloor: floor }), config, { needs: [], desired: 20 }).reason, 'manual_floor');
  const off = run(quiet, 2000, 2600, 5, config, on.memory).decisions;
  assert.ok(off.filter((d) => d.t < 2000 + config.scaleInWindowSeconds - 5).every((d) => d.desired === 150), 'stabilized after expiry');
  assert.ok(off.at(-1)!.desired < 150, 'let down after the window');
});

test('scale from zero: one waiting job gets a worker; nothing waiting and no arrivals keep none', () => {
  const cfg = policyConfig({ min: 0, max: 3 });
  const empty = { ...observed({ load: 0, workers: [] }), arrivalRate: 0 };
  assert.equal(decide(empty, cfg).desired, 0);
  const one = decide({ ...empty, queue: { ...empty.queue, waiting: 1 } }, cfg);
  assert.ok(one.desired >= 1 && one.launch === one.desired, `desired ${one.desired}, launch ${one.launch}`);
});

test('a flash crowd is believed at once; the same jump in the smoothed rate alone would take minutes', () => {
  const base = observed({ load: 25, workers: workers({ busy: 25, idle: 3 }) });
  const calm = decide({ ...base, recentArrivalRate: 26 / S }, config, { needs: [], desired: 28 });
  assert.equal(calm.desired, 28);
  const crowd = decide({ ...base, recentArrivalRate: 250 / S }, policyConfig({ min: 1, max: 300, maxStepOut: 1000 }), { needs: [], desired: 28 });
  assert.ok(crowd.desired >= 250, `desired ${crowd.desired}`);
  assert.ok(crowd.reason === 'arrival_rate' || crowd.reason === 'backlog', crowd.reason);
  const smoothedOnly = decide({ ...base, recentArrivalRate: 25 / S, arrivalRate: (25 + 225 * (1 - Math.exp(-30 / config.rateWindowSeconds))) / S }, config, { needs: [], desired: 28 });
  assert.ok(smoothedOnly.desired < 50, `30 s into the crowd the smoothed rate alone asks for ${smoothedOnly.desired}`);
});

test('the end of a flash crowd is believed within a minute; a dip of the recent rate within its noise changes nothing', () => {
  const cfg = policyConfig({ min: 1, max: 300, maxStepIn: 1000 });
  // Ten minutes of a crowd left the smoothed rate at 200 workers' worth; the last 30 s say 25.
  const after = observed({ load: 25, arrivalRate: 200 / S, recentArrivalRate: 25 / S, workers: workers({ busy: 25, idle: 200 }) });
  const memory: PolicyMemory = { needs: [{ at: 990, need: 225 }], desired: 225 };
  const remembered = decide({ ...after, recentArrivalRate: 200 / S }, cfg, memory);
  const believed = decide(after, cfg, memory);
  assert.ok(remembered.need > 200, `need ${remembered.need} from the smoothed rate`);
  assert.ok(believed.need < 60, `need ${believed.need} once the recent rate rules the smoothed one out`);
  assert.equal(believed.desired, 225, 'the scale-in window still holds the fleet');
  // Two standard errors of the 30 s rate below the smoothed one: noise, not an end.
  const dip = observed({ load: 100, recentArrivalRate: (100 - 2 * Math.sqrt(100 * S / (2 * cfg.surgeWindowSeconds))) / S });
  assert.equal(decide(dip, cfg, { needs: [], desired: 109 }).need, decide({ ...dip, recentArrivalRate: undefined }, cfg, { needs: [], desired: 109 }).need);
});

test('a falling load is followed without the band, never below the window\'s largest need; a steady one keeps the band', () => {
  const loadAt = (t: number) => (t < 1200 ? 150 : Math.max(60, 150 - (60 * (t - 1200)) / 3600)); // −60 workers' worth an hour
  const at = (t: number) => ({ ...observed({ load: loadAt(t), workers: workers({ busy: Math.round(loadAt(t)), idle: 20 }) }), now: t });
  const { decisions } = run(at, 0, 1200 + 3600, 5, config, { needs: [], desired: 160 });
  let excess = 0;
  let n = 0;
  for (const d of decisions) {
    const windowMax = Math.max(...d.memory.needs.map((x) => x.need));
    assert.ok(d.desired >= windowMax, `t ${d.t}: desired ${d.desired} below the window's largest need ${windowMax}`);
    if (d.t >= 1200 + 900) {
      excess += d.desired - windowMax;
      n++;
    }
  }
  assert.ok(excess / n < 1.5, `on average ${(excess / n).toFixed(1)} workers above the window's largest need while falling`);
  // The same hour at a steady 120: the band holds the fleet where it is.
  const flat = run((t) => ({ ...observed({ load: 120, workers: workers({ busy: 120, idle: 10 }) }), now: t }), 0, 3600, 5, config, { needs: [], desired: 130 }).decisions;
  assert.ok(flat.every((d) => d.desired === 130), 'steady');
});

test('the memory is plain JSON: a new leader reading it back decides the same', () => {
  const { memory } = run((t) => ({ ...observed({ load: 80 + (t % 40), waiting: t % 17 }), now: t }), 0, 400);
  const state = observed({ load: 50, now: 405 });
  assert.deepEqual(decide(state, config, JSON.parse(JSON.stringify(memory)) as PolicyMemory), decide(state, config, memory));
});

test('staffing: Erlang C sizing grows with load and render-time spread, shrinks with a looser wait target', () => {
  const c = staffing(100, 60, 60, 0.28, 0.95, 1000);
  assert.ok(c > 100 && c <= 106, `c = ${c}`);
  assert.ok(staffing(200, 60, 60, 0.28, 0.95, 1000) > c, 'more load');
  assert.ok(staffing(100, 60, 60, 2, 0.95, 1000) >= c, 'more spread');
  assert.ok(staffing(100, 60, 5, 0.28, 0.95, 1000) > c, 'tighter target');
  assert.equal(staffing(0, 60, 60, 0.28, 0.95, 1000), 0);
  assert.equal(staffing(5000, 60, 60, 0.28, 0.95, 300), 301, 'stops past the cap');
});

test('policyConfig refuses impossible bounds', () => {
  assert.throws(() => policyConfig({ min: 5, max: 2 }), RangeError);
  assert.throws(() => policyConfig({ maxStepOut: 0 }), RangeError);
});
