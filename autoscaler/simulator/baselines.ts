// The baselines vgen's policy is measured against, each configured the way its
// own documentation says to, on the same fleet, traces and seed:
// - a static pool (the 300 workers of the phase-5 plan);
// - AWS target tracking on backlog per instance, as in EC2 Auto Scaling's
//   "scaling based on Amazon SQS" guide;
// - a KEDA-style list-length scaler, with the HPA's defaults behind it;
// - a CPU-threshold scaler (simple scaling: out above 70 %, in below 30 %).
// None of them picks which worker to stop: the simulated provider retires idle
// ones and never a busy one, for them as for vgen, so the comparison is about
// how many workers each asks for, not about how safely they are stopped.
import type { Controller, Observation } from './simulate.js';

export interface Bounds {
  readonly min: number;
  readonly max: number;
}

const clamp = (n: number, b: Bounds) => Math.min(b.max, Math.max(b.min, n));
const ready = (obs: Observation) => obs.workers.reduce((n, w) => n + (w.state === 'idle' || w.state === 'busy' || w.state === 'draining' ? 1 : 0), 0);

/** A fixed pool: the provider only replaces what spot takes away. */
export function staticPool(size: number): Controller {
  return { name: `static-${size}`, intervalSeconds: 3600, decide: () => ({ desired: size, reason: 'static' }) };
}

export interface TargetTrackingOptions extends Bounds {
  /** The latency a job may wait (the same wait target vgen gets). */
  readonly acceptableLatencySeconds: number;
  /** Mean time to process one job, as the operator measured it. */
  readonly meanProcessingSeconds: number;
  /** Period of the published metric (the guide publishes it every minute). */
  readonly periodSeconds?: number;
  /** Datapoints above the target before scaling out: 3 of 3 one-minute periods. */
  readonly highPeriods?: number;
  /** Datapoints below 90 % of the target before scaling in: 15 of 15. */
  readonly lowPeriods?: number;
  readonly lowThreshold?: number;
  /** Largest share of capacity removed by one scale-in (AWS scales in "gradually" without saying how; 10 % is assumed). */
  readonly scaleInShare?: number;
}

/**
 * EC2 Auto Scaling target tracking on a custom metric, backlog per instance =
 * jobs waiting ÷ InService instances, with target value = acceptable latency ÷
 * mean processing time. The alarms it creates: out after 3 one-minute
 * datapoints above the target, in after 15 below 90 % of it. Out is
 * proportional (capacity × metric ÷ target, rounded up, never counting an
 * instance that is still warming up twice); in is gradual.
 */
export function targetTracking(opts: TargetTrackingOptions): Controller {
  const target = opts.acceptableLatencySeconds / opts.meanProcessingSeconds;
  const highPeriods = opts.highPeriods ?? 3;
  const lowPeriods = opts.lowPeriods ?? 15;
  const lowThreshold = (opts.lowThreshold ?? 0.9) * target;
  const scaleInShare = opts.scaleInShare ?? 0.1;
  let high = 0;
  let low = 0;
  return {
    name: 'target-tracking',
    intervalSeconds: opts.periodSeconds ?? 60,
    decide(obs) {
      const inService = ready(obs);
      const backlog = obs.queue.waiting + obs.queue.prioritized;
      const metric = inService > 0 ? backlog / inService : backlog > 0 ? Infinity : 0;
      high = metric > target ? high + 1 : 0;
      low = metric < lowThreshold ? low + 1 : 0;
      const proportional = Math.ceil(backlog / target - 1e-9); // inService × metric ÷ target
      const capacity = obs.target;
      if (high >= highPeriods && proportional > capacity) return { desired: clamp(proportional, opts), reason: 'alarm_high' };
      if (low >= lowPeriods && proportional < capacity) {
        const step = Math.max(1, Math.floor(scaleInShare * capacity));
        return { desired: clamp(Math.max(proportional, capacity - step), opts), reason: 'alarm_low' };
      }
      return { desired: clamp(capacity, opts), reason: 'ok' };
    },
  };
}

export interface KedaOptions extends Bounds {
  /** Jobs per replica: 1, as each worker renders one job at a time. */
  readonly targetValue?: number;
  readonly pollingSeconds?: number;
  /** HPA's scale-down stabilization window (default 300 s). */
  readonly stabilizationSeconds?: number;
  /** HPA's tolerance (default 10 %). */
  readonly tolerance?: number;
}

/**
 * KEDA polling a list length every 15 s into an HPA with its defaults:
 * desired = ⌈listLength ÷ targetValue⌉ unless within 10 % of the current
 * count; up by at most max(100 %, 4 pods) per period; down to the highest
 * recommendation of the last 300 s. The list counted is waiting + active
 * jobs (the query an operator writes for BullMQ: the wait list alone reads
 * zero whenever the workers keep up, and the HPA would then scale a busy fleet
 * to its minimum).
 */
export function kedaListLength(opts: KedaOptions): Controller {
  const targetValue = opts.targetValue ?? 1;
  const window = opts.stabilizationSeconds ?? 300;
  const tolerance = opts.tolerance ?? 0.1;
  let recommendations: { at: number; n: number }[] = [];
  return {
    name: 'keda',
    intervalSeconds: opts.pollingSeconds ?? 15,
    decide(obs) {
      const current = obs.target;
      const length = obs.queue.waiting + obs.queue.prioritized + obs.queue.active;
      const ratio = current > 0 ? length / (current * targetValue) : Infinity;
      const raw = Math.abs(ratio - 1) <= tolerance ? current : Math.ceil(length / targetValue - 1e-9);
      const rec = clamp(length === 0 && current === 0 ? 0 : raw, opts);
      recommendations = [...recommendations.filter((r) => r.at > obs.now - window), { at: obs.now, n: rec }];
      if (rec > current) return { desired: Math.min(rec, Math.max(2 * current, current + 4)), reason: 'scale_up' };
      const stabilized = Math.max(...recommendations.map((r) => r.n));
      return stabilized < current ? { desired: stabilized, reason: 'scale_down' } : { desired: current, reason: rec < current ? 'stabilizing' : 'steady' };
    },
  };
}

export interface CpuThresholdOptions extends Bounds {
  readonly high?: number;
  readonly low?: number;
  /** One-minute datapoints above `high` before scaling out. */
  readonly highPeriods?: number;
  /** One-minute datapoints below `low` before scaling in. */
  readonly lowPeriods?: number;
  /** Capacity added by one scale-out, and removed by one scale-in. */
  readonly outShare?: number;
  readonly inShare?: number;
  /** Simple scaling's cooldown after any activity (boot time + time for the metric to show the change). */
  readonly cooldownSeconds?: number;
}

/**
 * Simple scaling on average CPU of the ready instances (a rendering worker
 * runs its cores flat out, an idle one near zero): +25 % when above 70 % for
 * 2 minutes, −10 % when below 30 % for 10 minutes, with a 180 s cooldown.
 */
export function cpuThreshold(opts: CpuThresholdOptions): Controller {
  const highAt = opts.high ?? 0.7;
  const lowAt = opts.low ?? 0.3;
  const highPeriods = opts.highPeriods ?? 2;
  const lowPeriods = opts.lowPeriods ?? 10;
  const outShare = opts.outShare ?? 0.25;
  const inShare = opts.inShare ?? 0.1;
  const cooldown = opts.cooldownSeconds ?? 180;
  let last: Observation | undefined;
  let high = 0;
  let low = 0;
  let quietUntil = -Infinity;
  return {
    name: 'cpu-threshold',
    intervalSeconds: 60,
    decide(obs) {
      const readyDelta = last ? obs.readySeconds - last.readySeconds : 0;
      const util = readyDelta > 0 ? (obs.busySeconds - last!.busySeconds) / readyDelta : obs.queue.waiting > 0 ? 1 : 0;
      last = obs;
      high = util > highAt ? high + 1 : 0;
      low = util < lowAt ? low + 1 : 0;
      const capacity = obs.target;
      if (obs.now < quietUntil) return { desired: capacity, reason: 'cooldown' };
      if (high >= highPeriods) {
        quietUntil = obs.now + cooldown;
        high = 0;
        return { desired: clamp(capacity + Math.max(1, Math.ceil(outShare * capacity)), opts), reason: 'alarm_high' };
      }
      if (low >= lowPeriods) {
        quietUntil = obs.now + cooldown;
        low = 0;
        return { desired: clamp(capacity - Math.max(1, Math.floor(inShare * capacity)), opts), reason: 'alarm_low' };
      }
      return { desired: clamp(capacity, opts), reason: 'ok' };
    },
  };
}
