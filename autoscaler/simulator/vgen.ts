// vgen's policy as a simulator controller: the observer a real autoscaler
// loop runs (arrival rate and render-time moments smoothed over time, the
// policy's memory carried from one decision to the next) around the very
// same decide() that production calls.
import { EMPTY_MEMORY, decide, policyConfig, renderStats, smoothMoments, smoothRate, type PolicyConfig, type PolicyMemory, type RenderMoments } from '../policy.js';
import type { Controller, Observation } from './simulate.js';

export interface VgenControllerOptions {
  readonly policy?: Partial<PolicyConfig>;
  readonly waitTargetSeconds: number;
  /** How often the loop observes and decides. */
  readonly intervalSeconds?: number;
  /** Time constant of the render-time averages. */
  readonly renderWindowSeconds?: number;
  /** What a loop that has been running for a while already knows: the current arrival rate and render times. */
  readonly prior: { readonly rate: number; readonly meanSeconds: number; readonly stddevSeconds: number };
  readonly manualFloor?: { readonly workers: number; readonly until: number };
}

export function vgenController(opts: VgenControllerOptions): Controller {
  const config = policyConfig(opts.policy);
  const renderWindow = opts.renderWindowSeconds ?? 600;
  const priorWeight = 50; // jobs' worth of belief in the prior render times
  let memory: PolicyMemory = EMPTY_MEMORY;
  let rate = opts.prior.rate;
  let recent = opts.prior.rate;
  let moments: RenderMoments = {
    n: priorWeight,
    sum: priorWeight * opts.prior.meanSeconds,
    squares: priorWeight * (opts.prior.stddevSeconds ** 2 + opts.prior.meanSeconds ** 2),
  };
  let last: Observation | undefined;
  return {
    name: 'vgen',
    intervalSeconds: opts.intervalSeconds ?? 5,
    decide(obs) {
      if (last) {
        const dt = obs.now - last.now;
        rate = smoothRate(rate, obs.arrivals - last.arrivals, dt, config.rateWindowSeconds);
        recent = smoothRate(recent, obs.arrivals - last.arrivals, dt, config.surgeWindowSeconds);
        moments = smoothMoments(moments, {
          n: obs.completions - last.completions,
          sum: obs.renderSeconds - last.renderSeconds,
          squares: obs.renderSquares - last.renderSquares,
        }, dt, renderWindow);
      }
      last = obs;
      const d = decide({
        now: obs.now,
        queue: obs.queue,
        arrivalRate: rate,
        recentArrivalRate: recent,
        render: renderStats(moments, opts.prior),
        workers: obs.workers,
        waitTargetSeconds: opts.waitTargetSeconds,
        ...(opts.manualFloor && { manualFloor: opts.manualFloor }),
      }, config, memory);
      memory = d.memory;
      return { desired: d.desired, retire: d.retire, reason: d.reason };
    },
  };
}
