// A render worker with its lifecycle: the BullMQ runtime, registered in the
// worker registry with a heartbeat, drainable (registry wish, pub/sub, signal,
// spot notice), and handing jobs back when a drain's deadline comes first.
// worker/main.ts runs it with the render pipeline; the fleet benchmark runs the
// same code with a stubbed processor.
//
// States: starting → idle ↔ busy → draining; once drained (no job left) the
// worker deregisters and `drained` resolves.
import type { Processor, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../engine/log.js';
import type { RenderJobData, RenderResult } from '../../engine/queue.js';
import { createRegistry, type Registry, type WorkerRecord, type WorkerState } from '../../engine/registry.js';
import { isCancelRequested } from '../../engine/cancel.js';
import { startRuntime } from '../runtime.js';
import { createJobGate } from './drain.js';
import { startHeartbeat } from './heartbeat.js';
import { startSpotWatch, type SpotNotice } from './spot.js';

/** A spot notice's deadline is the instance's end minus this: time to abort, hand back and deregister. */
export const SPOT_MARGIN_MS = 10_000;

export interface DrainRequest {
  /** ms epoch; past it, jobs still running are handed back to the queue. Absent: jobs finish, however long. */
  deadline?: number;
  reason: string;
}

export interface ManagedWorkerOptions {
  queueName: string;
  /** A worker connection (maxRetriesPerRequest: null); the registry uses it too. Closing it is the caller's. */
  connection: Redis;
  concurrency: number;
  lockSeconds?: number;
  lostLimit?: number;
  log: Logger;
  processor: Processor<RenderJobData, RenderResult>;
  identity: Omit<WorkerRecord, 'state' | 'currentJob' | 'jobsDone' | 'startedAt' | 'lastHeartbeat' | 'drain'>;
  /** Shared by many workers in one process (the fleet benchmark); default one of its own. */
  registry?: Registry;
  heartbeatMs?: number;
  /** Poll the instance metadata service for spot notices. */
  imds?: { endpoint: string; intervalMs: number };
  /** Told of each spot notice (once per kind), for metrics. */
  onSpotNotice?: (notice: SpotNotice) => void;
}

export interface ManagedWorker {
  id: string;
  worker: Worker<RenderJobData, RenderResult>;
  registry: Registry;
  state(): WorkerState;
  /** Start draining, or tighten a drain's deadline (the earliest one wins). */
  drain(req: DrainRequest): void;
  /** Resolves once the worker drained: no job left, closed and deregistered. */
  drained: Promise<void>;
  /** Drain without a deadline and wait for it. */
  close(): Promise<void>;
  /** Jobs handed back so far. */
  handedBack(): number;
}

export function startManagedWorker(opts: ManagedWorkerOptions): ManagedWorker {
  const { log } = opts;
  const id = opts.identity.id;
  const ownRegistry = !opts.registry;
  const registry = opts.registry ?? createRegistry(opts.connection, { queueName: opts.queueName });
  const startedAt = Date.now();

  let ready = false;
  let drainReq: DrainRequest | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let lateCheck: NodeJS.Timeout | undefined;

  const gate = createJobGate(opts.processor, {
    log,
    onChange: () => void heartbeat.beat(),
    isCanceled: (jobId) => isCancelRequested(opts.connection, opts.queueName, jobId),
  });
  // Canceled videos (POST /v1/videos/:id/cancel): the worker holding the job stops it.
  // On the registry's subscriber: no connection of its own.
  const unsubscribeCancels = registry.onCancel((videoId) => void gate.cancel(videoId)).catch((err) => {
    log.warn({ err }, 'could not subscribe to cancels; a canceled job is still stopped when it next starts');
    return async () => {};
  });
  const state = (): WorkerState => (drainReq ? 'draining' : !ready ? 'starting' : gate.active.size > 0 ? 'busy' : 'idle');
  // The latest spot notice goes into the registry record: the autoscaler counts interruptions from it.
  let spotNotice: 'termination' | 'rebalance' | undefined;
  const snapshot = () => ({ state: state(), currentJob: gate.active.keys().next().value, jobsDone: gate.jobsDone, ...(spotNotice && { spot: spotNotice }) });

  const registered = registry
    .register({ ...opts.identity, state: 'starting', jobsDone: 0, startedAt })
    .catch((err) => log.warn({ err }, 'could not register in the worker registry; the heartbeat will retry'));

  const worker = startRuntime({
    queueName: opts.queueName,
    connection: opts.connection,
    concurrency: opts.concurrency,
    lockSeconds: opts.lockSeconds,
    lostLimit: opts.lostLimit,
    log,
    processor: gate.processor,
  });
  void worker.waitUntilReady().then(() => {
    ready = true;
    void heartbeat.beat();
  }, () => {});

  const heartbeat = startHeartbeat({
    registry,
    id,
    snapshot,
    intervalMs: opts.heartbeatMs,
    log,
    onDrain: (d) => drain({ deadline: d.deadline, reason: 'requested through the registry' }),
  });
  const unsubscribe = registry
    .onDrain(id, (d) => drain({ deadline: d.deadline, reason: 'requested through the registry' }))
    .catch((err) => {
      log.warn({ err }, 'could not subscribe to drain requests; the heartbeat still carries them');
      return async () => {};
    });

  const spot = opts.imds
    ? startSpotWatch({
        endpoint: opts.imds.endpoint,
        intervalMs: opts.imds.intervalMs,
        log,
        onNotice: (n: SpotNotice) => {
          // A termination notice outranks a rebalance recommendation.
          if (n.kind === 'interruption' || !spotNotice) spotNotice = n.kind === 'interruption' ? 'termination' : 'rebalance';
          try {
            opts.onSpotNotice?.(n);
          } catch {
            // a metrics hook never stops a drain
          }
          if (n.kind === 'interruption') {
            log.warn({ action: n.action, time: new Date(n.time).toISOString() }, 'spot interruption notice: draining');
            drain({ deadline: n.time - SPOT_MARGIN_MS, reason: `spot ${n.action} at ${new Date(n.time).toISOString()}` });
          } else {
            // Elevated risk, no deadline yet: take no new job, finish this one. A
            // later interruption notice sets the deadline.
            log.warn({ noticeTime: new Date(n.noticeTime).toISOString() }, 'spot rebalance recommendation: draining');
            drain({ reason: 'spot rebalance recommendation' });
          }
        },
      })
    : undefined;

  let resolveDrained!: () => void;
  const drained = new Promise<void>((resolve) => (resolveDrained = resolve));

  const finish = async () => {
    clearTimeout(deadlineTimer);
    clearInterval(lateCheck);
    spot?.stop();
    await heartbeat.stop();
    await (await unsubscribeCancels)().catch(() => {});
    await (await unsubscribe)().catch(() => {});
    await registered;
    await registry.deregister(id).catch((err) => log.warn({ err }, 'could not deregister; the registry prunes this worker after its TTL'));
    if (ownRegistry) await registry.close();
    log.info({ handedBack: gate.handedBack, jobsDone: gate.jobsDone }, 'worker drained');
    resolveDrained();
  };

  function drain(req: DrainRequest) {
    const first = !drainReq;
    if (first) {
      drainReq = { ...req };
      log.info({ reason: req.reason, deadline: req.deadline && new Date(req.deadline).toISOString(), active: [...gate.active.keys()] }, 'draining: no new jobs');
      void heartbeat.beat();
      // close() stops fetching at once and waits for the active jobs (no time limit of its own).
      void worker.close().then(finish, (err) => {
        log.error({ err }, 'worker close failed');
        return finish();
      });
    } else if (req.deadline !== undefined && (drainReq!.deadline === undefined || req.deadline < drainReq!.deadline)) {
      drainReq!.deadline = req.deadline;
      log.info({ reason: req.reason, deadline: new Date(req.deadline).toISOString() }, 'drain deadline moved earlier');
    } else {
      return;
    }
    const deadline = drainReq!.deadline;
    if (deadline === undefined) return;
    clearTimeout(deadlineTimer);
    deadlineTimer = setTimeout(() => gate.handBackAll('drain deadline reached'), Math.max(0, deadline - Date.now()));
    deadlineTimer.unref();
    if (!lateCheck) {
      lateCheck = setInterval(() => drainReq?.deadline !== undefined && gate.handBackLate(drainReq.deadline), 1_000);
      lateCheck.unref();
    }
  }

  return {
    id,
    worker,
    registry,
    state,
    drain,
    drained,
    async close() {
      drain({ reason: 'close' });
      await drained;
    },
    handedBack: () => gate.handedBack,
  };
}
