// The worker runtime: a BullMQ Worker on the render queue with the settings
// render jobs need. The processor is passed in, so production runs the render
// pipeline and the queue benchmark runs the same runtime with a no-op.
import { Worker, type ConnectionOptions, type Processor } from 'bullmq';
import type { Logger } from '../engine/log.js';
import { QUEUE_PREFIX, type RenderJobData, type RenderResult } from '../engine/queue.js';

export interface RuntimeOptions {
  queueName: string;
  connection: ConnectionOptions;
  concurrency: number;
  /** How soon a dead worker's job is noticed and re-queued. */
  lockSeconds?: number;
  log: Logger;
  processor: Processor<RenderJobData, RenderResult>;
}

export function startRuntime(opts: RuntimeOptions): Worker<RenderJobData, RenderResult> {
  const lockMs = (opts.lockSeconds ?? 30) * 1000;
  const worker = new Worker<RenderJobData, RenderResult>(opts.queueName, opts.processor, {
    connection: opts.connection,
    prefix: QUEUE_PREFIX,
    concurrency: opts.concurrency,
    // The lock is renewed every lockDuration/2 while the process lives, so a
    // long render keeps it; a dead process loses it within lockSeconds and the
    // job is re-queued. Two stalls are allowed before failing the job, because
    // a spot interruption can take a job's worker away through no fault of the job.
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 2,
  });
  worker.on('error', (err) => opts.log.warn({ err }, 'worker connection error'));
  worker.on('failed', (job, err) =>
    opts.log.warn({ videoId: job?.id, attempt: job?.attemptsMade, err: err.message }, 'render attempt failed'),
  );
  return worker;
}
