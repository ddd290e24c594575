// The worker's heartbeat: every HEARTBEAT_MS (and at once when its state
// changes) it writes its state to the registry, which answers with any drain
// wish stored for it. That answer is how a drain reaches a worker that missed
// the pub/sub message (it was reconnecting, or subscribed late).
import type { Logger } from '../../engine/log.js';
import { HEARTBEAT_MS, type Registry, type WorkerRecord } from '../../engine/registry.js';

export type BeatPatch = Partial<Pick<WorkerRecord, 'state' | 'currentJob' | 'jobsDone' | 'spot'>>;

export interface Heartbeat {
  /** Beat now (coalesced with one in flight). */
  beat(): Promise<void>;
  /** Stop beating; waits for a beat in flight. */
  stop(): Promise<void>;
}

export function startHeartbeat(opts: {
  registry: Registry;
  id: string;
  snapshot: () => BeatPatch;
  onDrain: (drain: NonNullable<WorkerRecord['drain']>) => void;
  log: Logger;
  intervalMs?: number;
}): Heartbeat {
  let inFlight: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let failing = false;

  const once = async () => {
    try {
      const { drain } = await opts.registry.heartbeat(opts.id, opts.snapshot());
      if (failing) opts.log.info('registry heartbeat works again');
      failing = false;
      if (drain) opts.onDrain(drain);
    } catch (err) {
      // Redis is down or slow: the job's BullMQ lock has its own renewal; keep trying.
      if (!failing) opts.log.warn({ err }, 'registry heartbeat failed; retrying');
      failing = true;
    }
  };
  const beat = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (inFlight) {
      again = true;
      return inFlight;
    }
    inFlight = once().finally(() => {
      inFlight = undefined;
      if (again && !stopped) {
        again = false;
        void beat();
      }
    });
    return inFlight;
  };

  const timer = setInterval(() => void beat(), opts.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    beat,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}
