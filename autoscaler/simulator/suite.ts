// The bench's matrix: every controller on every scenario, same seed, same
// fleet. Scenarios are the traces; the headline one is the diurnal
// day with a flash burst under spot interruptions.
import { cpuThreshold, kedaListLength, staticPool, targetTracking, type Bounds } from './baselines.js';
import { simulate, type Controller, type SimResult } from './simulate.js';
import { diurnal, flashBurst, growth, workload, type Trace } from './traces.js';
import { vgenController } from './vgen.js';

export const WAIT_TARGET_SECONDS = 60;
export const BOUNDS: Bounds = { min: 1, max: 300 };
export const STATIC_POOL = 300;
export const SPOT_INTERRUPTIONS_PER_HOUR = 0.05;
export const HEADLINE = 'diurnal+burst';

export interface Scenario {
  readonly trace: Trace;
  readonly spotInterruptionsPerHour: number;
}

export function scenarios(seed: number): Scenario[] {
  const weather = 0.08;
  return [
    { trace: diurnal({ seed, weather }), spotInterruptionsPerHour: 0 },
    { trace: flashBurst({ seed, weather }), spotInterruptionsPerHour: 0 },
    { trace: growth({ seed, weather }), spotInterruptionsPerHour: 0 },
    { trace: diurnal({ seed, weather, burst: { at: 4 * 3600, seconds: 600, factor: 10 } }), spotInterruptionsPerHour: SPOT_INTERRUPTIONS_PER_HOUR },
  ];
}

/** Fresh controllers for one run (they keep state). */
export function lineup(trace: Trace, waitTargetSeconds = WAIT_TARGET_SECONDS, bounds = BOUNDS): Controller[] {
  const S = trace.meanRenderSeconds;
  return [
    vgenController({
      policy: { min: bounds.min, max: bounds.max },
      waitTargetSeconds,
      prior: { rate: trace.load(0) / S, meanSeconds: S, stddevSeconds: S * Math.sqrt(Math.exp(trace.renderSigma ** 2) - 1) },
    }),
    staticPool(STATIC_POOL),
    targetTracking({ ...bounds, acceptableLatencySeconds: waitTargetSeconds, meanProcessingSeconds: S }),
    kedaListLength(bounds),
    cpuThreshold(bounds),
  ];
}

/** Autoscalers start from a fleet sized to the trace's opening load; the static pool from its size. */
export function initialWorkers(controller: Controller, trace: Trace): number {
  return controller.name === `static-${STATIC_POOL}` ? STATIC_POOL : Math.ceil(trace.load(0) * 1.1);
}

export function runScenario(scenario: Scenario, seed: number, only?: (name: string) => boolean): SimResult[] {
  const jobs = workload(scenario.trace, seed);
  return lineup(scenario.trace)
    .filter((c) => !only || only(c.name))
    .map((c) => simulate(jobs, c, { seed, spotInterruptionsPerHour: scenario.spotInterruptionsPerHour, initialWorkers: initialWorkers(c, scenario.trace), waitTargetSeconds: WAIT_TARGET_SECONDS }));
}

/**
 * Target tracking configured for the SLO rather than by the guide's rule:
 * the largest acceptable latency (the cheapest setting) whose p95 wait on the
 * scenario is within the wait target, if any of the candidates gets there.
 */
export function targetTrackingMeetingSlo(scenario: Scenario, seed: number, latencies = [45, 30, 20, 15, 10, 5]): { latencySeconds: number; result: SimResult } | undefined {
  const jobs = workload(scenario.trace, seed);
  for (const latencySeconds of latencies) {
    const c = targetTracking({ ...BOUNDS, acceptableLatencySeconds: latencySeconds, meanProcessingSeconds: scenario.trace.meanRenderSeconds });
    const result = simulate(jobs, c, { seed, spotInterruptionsPerHour: scenario.spotInterruptionsPerHour, initialWorkers: initialWorkers(c, scenario.trace), waitTargetSeconds: WAIT_TARGET_SECONDS });
    if (result.wait.p95 <= WAIT_TARGET_SECONDS) return { latencySeconds, result };
  }
  return undefined;
}
