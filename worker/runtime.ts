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
  /** Times a job may lose its worker before it fails (BullMQ maxStalledCount; WORKER_LOST_LIMIT, default 5). */
  lostLimit?: number;
  log: Logger;
  processor: Processor<RenderJobData, RenderResult>;
}

export function startRuntime(opts: RuntimeOptions): Worker<RenderJobData, RenderResult> {
  const lockMs = (opts.lockSeconds ?? 30) * 1000;
  const worker = new Worker<RenderJobData, RenderResult>(opts.queueName, opts.processor, {
    connection: opts.connection,
    prefix: QUEUE_PREFIX,
    concurrency: opts.concurrency,
    // The lock (30 s by default) is renewed every lockDuration/2 while the
    // process lives, so a render of many minutes keeps it as long as its event
    // loop runs (ffmpeg is a child process, so it does). A dead process's lock
    // lapses within lockSeconds, and the stall check that every worker runs
    // each stalledInterval re-queues the job: within about 2 × lockSeconds.
    // A shorter lock re-queues sooner but costs a renewal per job every
    // lockSeconds/2 and risks false stalls on a loaded host.
    // A lost worker is not the job's fault: stalls have their own budget
    // (maxStalledCount, apart from the job's attempts). BullMQ reads it in the
    // stall check of whichever worker runs it, so every worker must use the
    // same value. Past it the job fails with "job stalled more than allowable
    // limit", which the API shows as worker_lost. A clean hand-back (drain,
    // spot notice) is no stall and costs neither budget (worker/lifecycle/drain.ts).
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: opts.lostLimit ?? 5,
  });
  worker.on('error', (err) => opts.log.warn({ err }, 'worker connection error'));
  worker.on('failed', (job, err) =>
    opts.log.warn({ videoId: job?.id, attempt: job?.attemptsMade, err: err.message }, 'render attempt failed'),
  );
  return worker;
}
