// Load traces for the simulator, in workers' worth of load (arrival rate ×
// mean render time, so 100 means a hundred workers kept busy on average),
// and the job stream each one gives for a seed: Poisson arrivals at that
// rate, lognormal render times around the template's mean.
import { Random } from './random.js';

export interface Trace {
  readonly name: string;
  readonly durationSeconds: number;
  /** Workers' worth of load at time t (seconds from the trace's start). */
  load(t: number): number;
  /** An upper bound of load(t) over the trace. */
  readonly peakLoad: number;
  readonly meanRenderSeconds: number;
  /** Log-space sigma of render times; 0.5 gives a coefficient of variation of 0.53. */
  readonly renderSigma: number;
}

export interface Workload {
  readonly trace: Trace;
  /** Arrival times, ascending. */
  readonly arrivals: Float64Array;
  /** Render time of each job (the same on every attempt). */
  readonly renders: Float64Array;
}

const HOUR = 3600;
export const RENDER_MEAN_SECONDS = 60;
export const RENDER_SIGMA = 0.5;

interface Shape {
  seed: number;
  /** ±share of slow, unpredictable drift on top of the shape (knots every 15 minutes). */
  weather?: number;
  /** The template's render times: mean seconds and log-space sigma (default 60 s, 0.5). */
  render?: { meanSeconds: number; sigma: number };
}

interface Burst {
  /** Seconds from the trace's start. */
  at: number;
  seconds: number;
  /** Arrivals are multiplied by this during the burst. */
  factor: number;
}

/** A day: cosine from `trough` (at `troughHour`) to `peak` twelve hours later, optionally with a flash burst. */
export function diurnal(opts: Shape & { trough?: number; peak?: number; troughHour?: number; burst?: Burst; name?: string }): Trace {
  const trough = opts.trough ?? 50;
  const peak = opts.peak ?? 200;
  const troughAt = (opts.troughHour ?? 4) * HOUR;
  const day = 24 * HOUR;
  const base = (t: number) => trough + ((peak - trough) * (1 - Math.cos((2 * Math.PI * (t - troughAt)) / day))) / 2;
  return shaped(opts.name ?? (opts.burst ? 'diurnal+burst' : 'diurnal'), day, base, peak, opts, opts.burst);
}

/** A quiet service hit by a flash crowd: `factor`× its arrivals for `seconds`. */
export function flashBurst(opts: Shape & { base?: number; factor?: number; at?: number; seconds?: number; hours?: number }): Trace {
  const base = opts.base ?? 25;
  const burst = { at: opts.at ?? HOUR, seconds: opts.seconds ?? 600, factor: opts.factor ?? 10 };
  return shaped('burst', (opts.hours ?? 3) * HOUR, () => base, base, opts, burst);
}

/** The growth path: load climbing steadily from `from` to `to` workers' worth over the trace. */
export function growth(opts: Shape & { from?: number; to?: number; hours?: number }): Trace {
  const from = opts.from ?? 50;
  const to = opts.to ?? 200;
  const duration = (opts.hours ?? 12) * HOUR;
  return shaped('growth', duration, (t) => from + ((to - from) * t) / duration, Math.max(from, to), opts);
}

/** A constant load, for checking that the policy settles and stays put. */
export function steady(opts: Shape & { load: number; hours?: number }): Trace {
  return shaped('steady', (opts.hours ?? 6) * HOUR, () => opts.load, opts.load, opts);
}

function shaped(name: string, durationSeconds: number, base: (t: number) => number, basePeak: number, shape: Shape, burst?: Burst): Trace {
  const amp = shape.weather ?? 0;
  const step = 900;
  const rng = new Random(shape.seed ^ 0x5eed);
  const knots = Array.from({ length: Math.ceil(durationSeconds / step) + 2 }, () => 1 + amp * (2 * rng.uniform() - 1));
  const drift = (t: number) => {
    const i = Math.min(Math.floor(t / step), knots.length - 2);
    const f = t / step - i;
    return knots[i]! * (1 - f) + knots[i + 1]! * f;
  };
  const inBurst = (t: number) => burst !== undefined && t >= burst.at && t < burst.at + burst.seconds;
  return {
    name,
    durationSeconds,
    load: (t) => base(t) * drift(t) * (inBurst(t) ? burst!.factor : 1),
    peakLoad: basePeak * (1 + amp) * (burst?.factor ?? 1),
    meanRenderSeconds: shape.render?.meanSeconds ?? RENDER_MEAN_SECONDS,
    renderSigma: shape.render?.sigma ?? RENDER_SIGMA,
  };
}

/** The job stream of a trace for a seed: a non-homogeneous Poisson process by thinning. */
export function workload(trace: Trace, seed: number): Workload {
  const rng = new Random(seed);
  const rMax = trace.peakLoad / trace.meanRenderSeconds;
  const arrivals: number[] = [];
  const renders: number[] = [];
  for (let t = rng.exponential(rMax); t < trace.durationSeconds; t += rng.exponential(rMax)) {
    const accept = rng.uniform() * rMax < trace.load(t) / trace.meanRenderSeconds;
    if (!accept) continue;
    arrivals.push(t);
    renders.push(rng.lognormal(trace.meanRenderSeconds, trace.renderSigma));
  }
  return { trace, arrivals: Float64Array.from(arrivals), renders: Float64Array.from(renders) };
}
