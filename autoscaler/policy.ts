// The scaling policy: observed state in, decision out. It is pure (no clock,
// no I/O, no randomness), so the autoscaler loop, the trace-driven simulator
// and the tests call this very function, and its memory goes in and comes back
// out as plain JSON that a new leader can pick up from Redis and carry on with.
//
// How many workers (docs/autoscaling.md works through the numbers), with S the
// mean render time, W the wait target, T the boot time, B the jobs waiting:
//   λ       = the smoothed arrival rate (time constant τ = 10 min), or the
//             recent one (30 s) when that is 6 standard errors above it: a
//             flash crowd is believed within seconds, noise is not. When the
//             recent rate rules the smoothed one out from below (3 standard
//             errors), λ is the highest rate it does not rule out: the end of
//             a crowd is believed within a minute, not after ten.
//   flow    = the fewest workers c with P(wait > W) ≤ 1 − q (q = 0.95) at load
//             a = λS: Erlang C, its tail stretched by Allen–Cunneen's
//             (1 + cv²)/2 for render times that are not exponential.
//   backlog = B_T = B + λT − what ready and booting workers start before T is
//             the queue when a worker launched now is ready; it must start
//             within W. The c workers there by then start c·W/S of it (a fresh
//             one 1 + W/S), so c = present + ⌈(B_T − present·W/S) / (1 + W/S)⌉.
//   need    = max(flow, backlog), within [max(min, manual floor), max].
// Out at once, to the need plus a margin of 2 standard errors of the load
// estimate (at most maxStepOut a decision). In slowly, the way Kubernetes' HPA
// does it: to the largest need of the last 300 s, and only when that frees
// more than 6 standard errors, so a steady load's noise seldom moves the fleet.
// That band is there against noise, which goes both ways. When the smoothed
// rate has fallen over the last 20 minutes by more than 3 standard errors of
// such a fall, and had already fallen a window ago, the load is falling, not
// wobbling: the target then follows the window's largest need down with no
// band and no margin.
// Retire idle workers first (longest idle), then booting ones (newest), never
// a busy or draining one.

export type WorkerState = 'booting' | 'idle' | 'busy' | 'draining';

export interface WorkerView {
  readonly id: string;
  readonly state: WorkerState;
  /** When the worker entered this state, on the same clock as `now` (a booting worker: when it was launched). */
  readonly since: number;
}

/** BullMQ's own counts (`getJobCounts('wait', 'prioritized', 'delayed', 'active')`). */
export interface QueueDepth {
  readonly waiting: number;
  readonly prioritized: number;
  /** Retries waiting out their backoff: not counted as backlog, they come back as arrivals. */
  readonly delayed: number;
  readonly active: number;
}

export interface ObservedState {
  /** Seconds, any epoch; only differences matter. */
  readonly now: number;
  readonly queue: QueueDepth;
  /** Jobs per second, smoothed with `smoothRate` and a time constant of `config.rateWindowSeconds`. */
  readonly arrivalRate: number;
  /** The same over `config.surgeWindowSeconds`: lets a flash crowd be believed within seconds. */
  readonly recentArrivalRate?: number;
  /** Measured render time of recent jobs. */
  readonly render: { readonly meanSeconds: number; readonly stddevSeconds: number };
  /** Every worker the provider knows of, with its state. */
  readonly workers: readonly WorkerView[];
  /** A job should start within this many seconds of being queued. */
  readonly waitTargetSeconds: number;
  /** `vgen workers scale <n> --for <d>`: at least `workers` until `until` (same clock as `now`). */
  readonly manualFloor?: { readonly workers: number; readonly until: number };
}

export interface PolicyConfig {
  readonly min: number;
  readonly max: number;
  /** Most workers added by one decision. */
  readonly maxStepOut: number;
  /** Most workers removed by one decision. */
  readonly maxStepIn: number;
  /** Scale in to the largest need seen this long (HPA's default: 300 s). */
  readonly scaleInWindowSeconds: number;
  /** Launch to ready, as the provider measures it. */
  readonly bootSeconds: number;
  /** Share of jobs that should start within the wait target under a steady load. */
  readonly quantile: number;
  /** Time constant of the arrival-rate smoothing; sizes the margin for its noise. */
  readonly rateWindowSeconds: number;
  /** Standard errors of that noise to plan for. */
  readonly rateConfidence: number;
  /** Time constant of `recentArrivalRate`. */
  readonly surgeWindowSeconds: number;
  /** The recent rate replaces the smoothed one when it is this many of its standard errors above it. */
  readonly surgeConfidence: number;
  /**
   * When the recent rate is this many standard errors below the smoothed one, λ is the
   * highest rate the recent one does not rule out at this confidence: the end of a flash
   * crowd, whose arrivals the smoothed rate remembers for half an hour. Lower than
   * `surgeConfidence` because a false alarm is cheap: it lowers one decision's need,
   * and the scale-in window holds the fleet up to the window's largest need anyway.
   */
  readonly dropConfidence: number;
  /** Span over which a fall of the smoothed rate is measured (`trendConfidence`). */
  readonly trendSeconds: number;
  /**
   * A fall of the smoothed rate over `trendSeconds` by more than this many standard errors
   * of such a fall is a falling load, not noise: scale in without the tolerance band and
   * without the margin (a falling load does not reverse on the next uptick of noise).
   */
  readonly trendConfidence: number;
  /**
   * Hysteresis: scale in only when the fleet exceeds the need by more than
   * this many standard errors of the rate estimate (in workers), and at least
   * one worker. A steady load's noise then seldom moves the fleet back and forth.
   */
  readonly scaleInTolerance: number;
  /** Scale out this many standard errors past the need (when the rate, not a backlog, asks), so the next uptick of noise does not ask again. */
  readonly scaleOutMargin: number;
}

export const DEFAULT_POLICY: PolicyConfig = {
  min: 0,
  max: 300,
  maxStepOut: 100,
  maxStepIn: 50,
  scaleInWindowSeconds: 300,
  bootSeconds: 90,
  quantile: 0.95,
  rateWindowSeconds: 600,
  rateConfidence: 0,
  surgeWindowSeconds: 30,
  surgeConfidence: 6,
  dropConfidence: 3,
  trendSeconds: 1200,
  trendConfidence: 3,
  scaleInTolerance: 6,
  scaleOutMargin: 2,
};

export function policyConfig(overrides: Partial<PolicyConfig> = {}): PolicyConfig {
  const config = { ...DEFAULT_POLICY, ...overrides };
  if (!(config.min >= 0 && config.max >= config.min)) throw new RangeError(`policy: need 0 ≤ min ≤ max, got min ${config.min}, max ${config.max}`);
  if (!(config.maxStepOut >= 1 && config.maxStepIn >= 1)) throw new RangeError('policy: maxStepOut and maxStepIn must be at least 1');
  if (!(config.quantile > 0 && config.quantile < 1)) throw new RangeError('policy: quantile must be between 0 and 1');
  return config;
}

/** What the policy remembers between decisions: JSON, owned by the caller. */
export interface PolicyMemory {
  /** Needs computed within the last scale-in window, oldest first. */
  readonly needs: readonly { readonly at: number; readonly need: number }[];
  /** The last decision's desired count: the target the next one moves from. */
  readonly desired?: number;
  /** When the target was last raised. */
  readonly lastScaleOutAt?: number;
  /** The smoothed arrival rate, one sample a minute over the last `trendSeconds`, oldest first. */
  readonly rates?: readonly { readonly at: number; readonly rate: number }[];
}

export const EMPTY_MEMORY: PolicyMemory = { needs: [] };

/** Why the desired count is what it is: a low-cardinality label for logs and metrics. */
export type ScalingReason =
  | 'backlog' // out: jobs already queued would wait past the target
  | 'arrival_rate' // out: the arrival rate needs more workers
  | 'min' // held up by config.min
  | 'max' // held down by config.max
  | 'manual_floor' // held up by an operator's `workers scale --for`
  | 'step_limit' // moving, but by at most maxStepOut / maxStepIn
  | 'scale_in' // in: the window's largest need is below the fleet
  | 'scale_in_stabilizing' // would scale in, but a larger need is still within the window
  | 'steady'; // the fleet matches the need, within the tolerance

export const SCALING_REASONS: readonly ScalingReason[] = [
  'backlog', 'arrival_rate', 'min', 'max', 'manual_floor', 'step_limit', 'scale_in', 'scale_in_stabilizing', 'steady',
];

export interface ScalingDecision {
  /** Workers wanted, booting included, draining ones not. */
  readonly desired: number;
  readonly reason: ScalingReason;
  /** Workers counted now: ready (idle or busy) and booting, not draining. */
  readonly current: number;
  /** Workers to launch now: desired − current when positive. */
  readonly launch: number;
  /** Ids to retire now: idle ones first (longest idle), then booting ones (newest); never busy. */
  readonly retire: readonly string[];
  /** This decision's need before stabilization and step limits, and its parts. */
  readonly need: number;
  readonly terms: { readonly flow: number; readonly backlog: number; readonly projectedBacklog: number };
  readonly memory: PolicyMemory;
}

export function decide(state: ObservedState, config: PolicyConfig, memory: PolicyMemory = EMPTY_MEMORY): ScalingDecision {
  const { now, workers } = state;
  const S = Math.max(state.render.meanSeconds, 1e-3);
  const W = Math.max(state.waitTargetSeconds, 0);
  const T = config.bootSeconds;
  const smoothed = Math.max(state.arrivalRate, 0);
  // A surge: the recent rate is far above what the smoothed one's noise explains.
  const recent = state.recentArrivalRate ?? 0;
  const surgeWindow = 2 * Math.max(config.surgeWindowSeconds, 1);
  const surge = recent > smoothed + config.surgeConfidence * Math.sqrt(smoothed / surgeWindow);
  // The end of a surge: the highest rate r with recent ≥ r − k·√(r / 2τ), i.e. √r = (k' + √(k'² + 4·recent)) / 2.
  const k = config.dropConfidence / Math.sqrt(surgeWindow);
  const plausible = state.recentArrivalRate === undefined ? Infinity : ((k + Math.sqrt(k * k + 4 * Math.max(recent, 0))) / 2) ** 2;
  const lambda = surge ? recent : Math.min(smoothed, plausible);
  const cv2 = (Math.max(state.render.stddevSeconds, 0) / S) ** 2;

  let idle = 0;
  let busy = 0;
  let bootingSupply = 0; // jobs the booting workers start before T
  let booting = 0;
  for (const w of workers) {
    if (w.state === 'idle') idle++;
    else if (w.state === 'busy') busy++;
    else if (w.state === 'booting') {
      booting++;
      const left = Math.min(T, Math.max(0, T - (now - w.since)));
      bootingSupply += (T - left) / S;
    }
  }
  const current = idle + busy + booting;

  // Flow: enough workers for the arrivals we cannot rule out.
  const lambdaError = Math.sqrt(smoothed / (2 * Math.max(config.rateWindowSeconds, 1))); // Poisson noise of the smoothed rate
  const lambdaHigh = lambda + config.rateConfidence * lambdaError;
  const flow = staffing(lambdaHigh * S, S, W, cv2, config.quantile, config.max);
  const noise = lambdaError * S; // one standard error of the load estimate, in workers

  // A falling load: the smoothed rate now against the oldest sample within trendSeconds.
  // Two values of an exponential average of Poisson arrivals Δ apart differ by noise of
  // standard error √(2(1 − e^(−Δ/τ)))·lambdaError. The fall must also have begun before
  // the scale-in window (the rate a window ago is already lower), so that the window's
  // largest need is one from the fall: a sudden drop is still held for the whole window.
  let rates = (memory.rates ?? []).filter((r) => r.at >= now - config.trendSeconds && r.at <= now);
  if (!rates.length || now - rates[rates.length - 1]!.at >= 60) rates = [...rates, { at: now, rate: smoothed }];
  const fell = (from: { at: number; rate: number }, to: { at: number; rate: number }) =>
    to.rate - from.rate < -config.trendConfidence * Math.sqrt(2 * (1 - Math.exp(-(to.at - from.at) / Math.max(config.rateWindowSeconds, 1)))) * lambdaError;
  const windowAgo = [...rates].reverse().find((r) => r.at <= now - config.scaleInWindowSeconds);
  const falling = now - rates[0]!.at >= config.trendSeconds / 2 && windowAgo !== undefined && windowAgo.at > rates[0]!.at &&
    fell(rates[0]!, { at: now, rate: smoothed }) && windowAgo.rate < rates[0]!.rate;

  // Backlog: the queue when a worker launched now is ready, B_T, must start
  // within W. Workers already there (or wanted for the flow) start W/S jobs
  // each in that time, a fresh one 1 + W/S. Jobs arriving later queue behind
  // a shrinking line (c > λS), so they wait less.
  const B = Math.max(0, state.queue.waiting) + Math.max(0, state.queue.prioritized);
  const supply = ((idle + busy) * T) / S + idle + bootingSupply;
  const projectedBacklog = Math.max(0, B + lambda * T - supply);
  const present = Math.max(current, flow);
  const short = projectedBacklog - (present * W) / S;
  const backlog = short > 0 ? present + Math.ceil(short / (1 + W / S) - 1e-9) : 0;

  const floorActive = state.manualFloor !== undefined && state.manualFloor.until > now && state.manualFloor.workers > config.min;
  const lo = Math.min(config.max, floorActive ? state.manualFloor!.workers : config.min);
  const raw = Math.max(flow, backlog);
  const need = Math.min(config.max, Math.max(lo, raw));
  const bound: ScalingReason | undefined = raw < lo ? (floorActive ? 'manual_floor' : 'min') : raw > config.max ? 'max' : undefined;

  const needs = [...memory.needs.filter((n) => n.at > now - config.scaleInWindowSeconds && n.at <= now), { at: now, need }];
  const stabilized = Math.min(config.max, Math.max(lo, ...needs.map((n) => n.need)));

  // Decisions are relative to the last desired count, not to the workers
  // counted now: a busy worker the last decision could not retire yet, or an
  // interrupted one not yet replaced, must not move the target.
  const previous = memory.desired ?? current;
  let desired: number;
  let reason: ScalingReason;
  // Land inside the band, not on its edge: the next uptick of noise then asks for nothing.
  const pad = Math.ceil(config.scaleOutMargin * noise - 1e-9);
  if (need > previous) {
    desired = Math.max(lo, Math.min(need + (bound || backlog > flow ? 0 : pad), config.max, previous + config.maxStepOut));
    reason = desired < need ? 'step_limit' : bound ?? (backlog > flow ? 'backlog' : 'arrival_rate');
  } else if (previous > config.max) {
    desired = config.max; // a lowered ceiling applies at once
    reason = 'max';
  } else {
    const tolerance = falling ? 1 : Math.max(1, Math.floor(config.scaleInTolerance * noise));
    if (previous - need <= tolerance) {
      desired = previous;
      reason = 'steady';
    } else if (previous - stabilized <= tolerance) {
      desired = previous;
      reason = 'scale_in_stabilizing';
    } else {
      const floor = Math.min(config.max, stabilized + (falling ? 0 : pad));
      desired = Math.max(floor, previous - config.maxStepIn);
      reason = desired > floor ? 'step_limit' : 'scale_in';
    }
  }

  return {
    desired,
    reason,
    current,
    launch: Math.max(0, desired - current),
    retire: desired < current ? pickRetirees(workers, current - desired) : [],
    need,
    terms: { flow, backlog, projectedBacklog },
    memory: { needs, desired, lastScaleOutAt: desired > previous ? now : memory.lastScaleOutAt, rates },
  };
}

/**
 * The fewest workers c (up to cap + 1) for which a job waits more than W
 * seconds with probability at most 1 − q, at offered load a = λS.
 * M/M/c: P(wait > t) = C(c, a)·e^(−(c − a)t/S), C being Erlang's C formula;
 * for other render-time spreads the wait scales by (1 + cv²)/2 (Allen–Cunneen).
 */
export function staffing(a: number, S: number, W: number, cv2: number, q: number, cap: number): number {
  if (!(a > 0)) return 0;
  const k = (1 + cv2) / 2;
  let erlangB = 1;
  for (let c = 1; ; c++) {
    erlangB = (a * erlangB) / (c + a * erlangB);
    if (c > cap) return c;
    if (c <= a) continue;
    const erlangC = (c * erlangB) / (c - a * (1 - erlangB));
    if (erlangC * Math.exp(-((c - a) * W) / (S * k)) <= 1 - q) return c;
  }
}

/** Exponential smoothing of an arrival rate from a count over `dtSeconds`, time constant `tauSeconds`. */
export function smoothRate(previous: number, count: number, dtSeconds: number, tauSeconds: number): number {
  if (!(dtSeconds > 0)) return previous;
  const alpha = 1 - Math.exp(-dtSeconds / tauSeconds);
  return previous + alpha * (count / dtSeconds - previous);
}

/**
 * Exponentially weighted count, sum and sum of squares of render times, for
 * the mean and spread the policy takes. Feed it the completions since the
 * last call; older jobs fade with time constant `tauSeconds`.
 */
export interface RenderMoments {
  readonly n: number;
  readonly sum: number;
  readonly squares: number;
}

export function smoothMoments(previous: RenderMoments, batch: RenderMoments, dtSeconds: number, tauSeconds: number): RenderMoments {
  const keep = dtSeconds > 0 ? Math.exp(-dtSeconds / tauSeconds) : 1;
  return { n: previous.n * keep + batch.n, sum: previous.sum * keep + batch.sum, squares: previous.squares * keep + batch.squares };
}

export function renderStats(m: RenderMoments, fallback: { meanSeconds: number; stddevSeconds: number }): { meanSeconds: number; stddevSeconds: number } {
  if (!(m.n > 1e-9)) return fallback;
  const meanSeconds = m.sum / m.n;
  return { meanSeconds, stddevSeconds: Math.sqrt(Math.max(0, m.squares / m.n - meanSeconds ** 2)) };
}

function pickRetirees(workers: readonly WorkerView[], count: number): string[] {
  const byId = (a: WorkerView, b: WorkerView) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const idle = workers.filter((w) => w.state === 'idle').sort((a, b) => a.since - b.since || byId(a, b));
  const booting = workers.filter((w) => w.state === 'booting').sort((a, b) => b.since - a.since || byId(a, b));
  return [...idle, ...booting].slice(0, count).map((w) => w.id);
}
