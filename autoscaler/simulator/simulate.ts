// The fleet simulator: a job stream (traces.ts) through a queue and a fleet of
// one-worker spot instances, sized by a controller that sees what the real
// autoscaler sees, on a simulated clock. Event-driven and seeded, so a run is
// exact and repeatable: the same seed gives the same figures to the last digit.
//
// The fleet is the same for every controller, so runs differ only in sizing:
// - A launch is ready after `bootSeconds`; an instance is billed per second
//   from launch to exit (60 s minimum), within the trace's window.
// - The provider holds the fleet at the controller's last desired count, as an
//   Auto Scaling group does: it replaces interrupted instances at once, and
//   when over the count it retires idle workers (then booting ones). A busy
//   worker is never stopped; it is retired when it finishes with the queue
//   empty (an ASG with scale-in protection behaves the same).
// - Spot: each instance gets a notice at a Poisson rate; the worker drains
//   against the 2-minute deadline: a render that ends in time finishes, any
//   other is handed back to the head of the queue at once (`handBack`). With
//   `handBack: false` the job dies with the instance and counts as lost.
// - A job's wait is the time from its arrival to the start of the attempt that
//   completed it: queueing plus any work lost to an interruption.
import type { QueueDepth, WorkerState, WorkerView } from '../policy.js';
import { EventHeap } from './heap.js';
import { Random } from './random.js';
import type { Workload } from './traces.js';

/** What a controller sees at each of its ticks. Cumulative counters let each one derive its own metric. */
export interface Observation {
  readonly now: number;
  readonly queue: QueueDepth;
  readonly workers: readonly WorkerView[];
  /** The provider's current desired count (the controller's last decision). */
  readonly target: number;
  readonly arrivals: number;
  readonly completions: number;
  readonly renderSeconds: number;
  readonly renderSquares: number;
  /** ∫ busy workers dt and ∫ ready workers dt: average CPU utilisation between two ticks is their ratio of differences. */
  readonly busySeconds: number;
  readonly readySeconds: number;
}

export interface ControllerDecision {
  readonly desired: number;
  /** Workers to retire now; the provider refuses (and counts) any that is busy. */
  readonly retire?: readonly string[];
  readonly reason?: string;
}

export interface Controller {
  readonly name: string;
  readonly intervalSeconds: number;
  decide(obs: Observation): ControllerDecision;
}

export interface Prices {
  /** USD per instance-hour. */
  readonly spot: number;
  readonly onDemand: number;
}

/** c6i.2xlarge-like, us-east-1, as assumed in docs/autoscaling.md: one worker per instance. */
export const PRICES: Prices = { spot: 0.12, onDemand: 0.34 };

export interface SimOptions {
  readonly seed?: number;
  readonly waitTargetSeconds?: number;
  readonly bootSeconds?: number;
  /** Expected spot notices per instance-hour (0.05: 5 % of instances an hour). */
  readonly spotInterruptionsPerHour?: number;
  readonly noticeSeconds?: number;
  readonly handBack?: boolean;
  /** A render that ends this long before the deadline is finished rather than handed back. */
  readonly handBackMarginSeconds?: number;
  readonly prices?: Prices;
  /** Workers ready at t = 0. */
  readonly initialWorkers: number;
  /** How long past the trace's end queued jobs may take to finish. */
  readonly drainSeconds?: number;
}

export interface SimResult {
  readonly trace: string;
  readonly policy: string;
  readonly jobs: number;
  readonly completed: number;
  /** Jobs that died with an instance, plus any still unfinished when the run stopped. */
  readonly lost: number;
  readonly unfinished: number;
  readonly workerHours: number;
  readonly costUsd: number;
  readonly onDemandCostUsd: number;
  readonly wait: { readonly mean: number; readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  /** Jobs whose wait exceeded the target, and their share. */
  readonly sloViolations: number;
  readonly sloViolationShare: number;
  /** Spot notices received, and jobs handed back because of one. */
  readonly interruptions: number;
  readonly interrupted: number;
  readonly launches: number;
  readonly peakWorkers: number;
  /** (time, desired) each time the desired count changed. */
  readonly changes: readonly (readonly [number, number])[];
  readonly reasons: Readonly<Record<string, number>>;
  /** Busy workers a controller asked to retire (refused); must be 0 for vgen's policy. */
  readonly busyRetireRequests: number;
}

interface SimWorker {
  readonly id: string;
  state: WorkerState;
  since: number;
  gone: boolean;
  readonly launchedAt: number;
  job: number;
  endsAt: number;
  epoch: number;
}

const enum Kind { Boot, Complete, Notice, Kill, Tick }

interface SimEvent {
  readonly t: number;
  readonly kind: Kind;
  readonly w?: SimWorker;
  readonly epoch?: number;
}

export function simulate(load: Workload, controller: Controller, options: SimOptions): SimResult {
  const o = {
    seed: 1, waitTargetSeconds: 60, bootSeconds: 90, spotInterruptionsPerHour: 0.05, noticeSeconds: 120,
    handBack: true, handBackMarginSeconds: 10, prices: PRICES, drainSeconds: 7200, ...options,
  };
  const { arrivals, renders } = load;
  const n = arrivals.length;
  const duration = load.trace.durationSeconds;
  const stopAt = duration + o.drainSeconds;
  const spotRng = new Random(o.seed ^ 0x5b07);
  const spotRate = o.spotInterruptionsPerHour / 3600;

  const started = new Float64Array(n);
  const waits = new Float64Array(n).fill(NaN);
  const heap = new EventHeap<SimEvent>();
  const live: SimWorker[] = [];
  const byId = new Map<string, SimWorker>();
  const idleStack: SimWorker[] = [];
  const requeued: number[] = [];
  let rqHead = 0;
  let arrived = 0;
  let qHead = 0;

  const count: Record<WorkerState, number> = { booting: 0, idle: 0, busy: 0, draining: 0 };
  let now = 0;
  let lastT = 0;
  let busySeconds = 0;
  let readySeconds = 0;
  let billedSeconds = 0;
  let completed = 0;
  let lost = 0;
  let renderSeconds = 0;
  let renderSquares = 0;
  let interruptions = 0;
  let interrupted = 0;
  let launches = 0;
  let peakWorkers = 0;
  let busyRetireRequests = 0;
  let target = o.initialWorkers;
  let nextId = 0;
  const changes: [number, number][] = [];
  const reasons: Record<string, number> = {};

  const current = () => count.idle + count.busy + count.booting;
  const waiting = () => arrived - qHead + requeued.length - rqHead;

  const setState = (w: SimWorker, s: WorkerState) => {
    count[w.state]--;
    count[s]++;
    w.state = s;
    w.since = now;
  };

  const launch = (ready: boolean) => {
    const w: SimWorker = { id: `w${++nextId}`, state: ready ? 'idle' : 'booting', since: now, gone: false, launchedAt: now, job: -1, endsAt: 0, epoch: 0 };
    count[w.state]++;
    live.push(w);
    byId.set(w.id, w);
    launches++;
    peakWorkers = Math.max(peakWorkers, current() + count.draining);
    if (ready) idleStack.push(w);
    else heap.push({ t: now + o.bootSeconds, kind: Kind.Boot, w });
    if (spotRate > 0) {
      const at = now + spotRng.exponential(spotRate);
      if (at < stopAt) heap.push({ t: at, kind: Kind.Notice, w });
    }
  };

  const terminate = (w: SimWorker) => {
    count[w.state]--;
    w.gone = true;
    w.epoch++;
    byId.delete(w.id);
    const end = Math.min(now, duration);
    if (end > w.launchedAt) billedSeconds += now <= duration ? Math.max(60, now - w.launchedAt) : end - w.launchedAt;
  };

  const nextJob = (): number => {
    if (rqHead < requeued.length) return requeued[rqHead++]!;
    if (qHead < arrived) return qHead++;
    return -1;
  };

  const start = (w: SimWorker, job: number) => {
    setState(w, 'busy');
    w.epoch++;
    w.job = job;
    w.endsAt = now + renders[job]!;
    started[job] = now;
    heap.push({ t: w.endsAt, kind: Kind.Complete, w, epoch: w.epoch });
  };

  const dispatch = () => {
    while (waiting() > 0 && idleStack.length) {
      const w = idleStack.pop()!;
      if (w.gone || w.state !== 'idle') continue;
      start(w, nextJob());
    }
  };

  const becomeIdle = (w: SimWorker) => {
    setState(w, 'idle');
    idleStack.push(w);
  };

  /** Launch up to the target; over it, retire idle workers (longest idle first), then booting ones (newest first). */
  const reconcile = () => {
    for (let k = target - current(); k > 0; k--) launch(false);
    let excess = current() - target;
    if (excess <= 0) return;
    const idle = live.filter((w) => !w.gone && w.state === 'idle').sort((a, b) => a.since - b.since);
    const booting = live.filter((w) => !w.gone && w.state === 'booting').sort((a, b) => b.since - a.since);
    for (const w of [...idle, ...booting]) {
      if (excess-- <= 0) break;
      terminate(w);
    }
  };

  const observe = (): Observation => {
    let j = 0;
    for (const w of live) if (!w.gone) live[j++] = w;
    live.length = j;
    return {
      now, target, arrivals: arrived, completions: completed, renderSeconds, renderSquares, busySeconds, readySeconds,
      queue: { waiting: waiting(), prioritized: 0, delayed: 0, active: count.busy + count.draining },
      workers: live,
    };
  };

  const handle = (e: SimEvent) => {
    const w = e.w!;
    switch (e.kind) {
      case Kind.Tick: {
        const d = controller.decide(observe());
        if (d.reason) reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
        const desired = Math.max(0, Math.round(d.desired));
        if (desired !== target) changes.push([now, desired]);
        target = desired;
        for (const id of d.retire ?? []) {
          const r = byId.get(id);
          if (!r) continue;
          if (r.state === 'idle' || r.state === 'booting') {
            if (current() > target) terminate(r);
          } else busyRetireRequests++;
        }
        reconcile();
        dispatch();
        heap.push({ t: now + controller.intervalSeconds, kind: Kind.Tick });
        return;
      }
      case Kind.Boot:
        if (w.gone || w.state !== 'booting') return;
        becomeIdle(w);
        dispatch();
        return;
      case Kind.Complete: {
        if (w.gone || w.epoch !== e.epoch) return;
        const job = w.job;
        waits[job] = started[job]! - arrivals[job]!;
        completed++;
        renderSeconds += renders[job]!;
        renderSquares += renders[job]! ** 2;
        w.job = -1;
        if (w.state === 'draining') return terminate(w);
        const next = nextJob();
        if (next >= 0) start(w, next);
        else if (current() > target) terminate(w);
        else becomeIdle(w);
        return;
      }
      case Kind.Notice: {
        if (w.gone) return;
        interruptions++;
        if (w.state === 'busy') {
          if (w.endsAt - now <= o.noticeSeconds - o.handBackMarginSeconds) setState(w, 'draining');
          else if (o.handBack) {
            requeued.push(w.job);
            interrupted++;
            terminate(w);
          } else {
            setState(w, 'draining');
            interrupted++;
            heap.push({ t: now + o.noticeSeconds, kind: Kind.Kill, w, epoch: w.epoch });
          }
        } else if (w.state !== 'draining') terminate(w);
        reconcile();
        dispatch();
        return;
      }
      case Kind.Kill:
        if (w.gone || w.epoch !== e.epoch) return;
        lost++;
        terminate(w);
        return;
    }
  };

  for (let i = 0; i < o.initialWorkers; i++) launch(true);
  heap.push({ t: 0, kind: Kind.Tick });
  while (now < stopAt) {
    const tA = arrived < n ? arrivals[arrived]! : Infinity;
    const tE = heap.peekTime();
    const t = Math.min(tA, tE);
    if (t === Infinity || t > stopAt) break;
    now = t;
    const dt = now - lastT;
    busySeconds += (count.busy + count.draining) * dt;
    readySeconds += (count.idle + count.busy + count.draining) * dt;
    lastT = now;
    if (tA <= tE) {
      arrived++;
      dispatch();
    } else handle(heap.pop()!);
    if (arrived === n && completed + lost === n && now >= duration) break;
  }
  for (const w of live) if (!w.gone) terminate(w);

  const done = waits.filter((x) => !Number.isNaN(x)).sort();
  const pct = (p: number) => (done.length ? done[Math.min(done.length - 1, Math.ceil(p * done.length) - 1)]! : 0);
  let sum = 0;
  let over = 0;
  for (const x of done) {
    sum += x;
    if (x > o.waitTargetSeconds) over++;
  }
  const workerHours = billedSeconds / 3600;
  const unfinished = n - completed - lost;
  return {
    trace: load.trace.name,
    policy: controller.name,
    jobs: n,
    completed,
    lost: lost + unfinished,
    unfinished,
    workerHours,
    costUsd: workerHours * o.prices.spot,
    onDemandCostUsd: workerHours * o.prices.onDemand,
    wait: { mean: done.length ? sum / done.length : 0, p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: done.length ? done[done.length - 1]! : 0 },
    sloViolations: over,
    sloViolationShare: n ? over / n : 0,
    interruptions,
    interrupted,
    launches,
    peakWorkers,
    changes,
    reasons,
    busyRetireRequests,
  };
}
