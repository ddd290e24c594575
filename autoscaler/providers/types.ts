// What the autoscaler needs from whatever runs workers: start some, stop some,
// and say what is running now. The policy decides how many; the loop decides
// which workers to retire (idle or drained ones, from the worker registry); a
// provider only acts, and refuses to touch anything it did not launch.

export type InstanceState = 'pending' | 'running' | 'stopping' | 'terminated';
export type Lifecycle = 'spot' | 'on-demand';

export interface ProviderInstance {
  /** The provider's id: an EC2 instance id (`i-…`), or a local worker's id. */
  id: string;
  /** `pending` is booting; `stopping` is on its way out and no longer capacity. */
  state: InstanceState;
  lifecycle: Lifecycle;
  instanceType: string;
  launchedAt: Date;
  privateIp?: string;
}

/** Why some capacity was not launched, as the provider reported it. */
export interface LaunchError {
  /** The provider's code, e.g. `InsufficientInstanceCapacity`. */
  code: string;
  message: string;
  lifecycle: Lifecycle;
  instanceType?: string;
  subnetId?: string;
}

export interface LaunchResult {
  requested: number;
  /** What was started (state `pending`), spot first. */
  instances: ProviderInstance[];
  /** requested − instances.length: capacity no market could supply now. The loop asks again on a later tick. */
  shortfall: number;
  errors: LaunchError[];
}

export interface TerminateResult {
  /** Ids now shutting down (or already gone), all carrying this provider's tags. */
  terminated: string[];
  /** Ids left alone because they are not this provider's (unknown, foreign or untagged). */
  refused: string[];
}

export interface WorkerProvider {
  readonly name: 'local' | 'ec2';
  /** Start `count` more workers. Partial capacity is a result, not an error. */
  launch(count: number): Promise<LaunchResult>;
  /**
   * Stop these workers. The caller passes only workers that have drained
   * (told to drain and gone from the registry, or idle and draining): a provider
   * cannot see the registry, so it checks ownership only, never busyness.
   */
  terminate(drainedIds: readonly string[]): Promise<TerminateResult>;
  /** Every worker this provider owns that is not yet terminated: what a restarted autoscaler reconciles from. */
  list(): Promise<ProviderInstance[]>;
  /** Estimated dollars an hour for these instances (their prices); absent means free (local workers). */
  hourlyCost?(instances: readonly ProviderInstance[]): number;
}

/** The provider's API kept refusing us (rate limits) after every retry it was allowed. */
export class ProviderThrottledError extends Error {
  readonly code = 'provider_throttled';
  constructor(
    readonly provider: WorkerProvider['name'],
    readonly action: string,
    /** Requests sent, the SDK's own retries included. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(`${provider} ${action} still throttled after ${attempts} attempts`, options);
    this.name = 'ProviderThrottledError';
  }
}
