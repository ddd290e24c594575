// Queue names, options and job payloads shared by the API (producer) and the
// workers (consumers). The `{vgen}` prefix is a Redis Cluster hash tag: all of
// a queue's keys land in one slot, which BullMQ's Lua scripts require.
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import type { RenderSpec } from './spec.js';

export const QUEUE_PREFIX = '{vgen}';

export interface RenderJobData {
  videoId: string;
  spec: RenderSpec;
  /** Ignored (accepted for jobs queued before it was): workers always write under `private/`, and the API moves the files to public keys at settle if the row is public then. */
  visibility?: 'public' | 'private';
  /** The video's owner (set at submit): the render cache looks up this user's own private renders, and `upload://<id>` assets are read from `uploads/<userId>/<id>` (engine/uploads.ts). Absent on older jobs: they cannot use uploads. */
  userId?: string;
  /** Set by the settler when a cache hit proved stale: render for real, skip the lookup (engine/render-cache.ts). */
  noCache?: boolean;
}

/**
 * The API adds every job *parked*: delayed this long, so no worker can take it
 * until the API promotes it, which it does only once the video row is
 * committed. A job whose add lands after the API gave up (503, row rolled back)
 * stays parked and is removed by the settler; nothing ever renders it.
 */
export const PARK_DELAY_MS = 30 * 24 * 3600 * 1000;

/** A job still waiting for its promotion (not a retry's backoff, which also sits in `delayed`). */
export const isParked = (job: { delay: number; attemptsMade: number }) => job.delay === PARK_DELAY_MS && job.attemptsMade === 0;

/** What a worker returns; the API turns keys into URLs when it answers. */
export interface RenderResult {
  videoKey: string;
  posterKey: string;
  /** The animated WebP preview, when the spec asked for one (output.preview). */
  previewKey?: string;
  durationMs: number;
  width: number;
  height: number;
  bytes: number;
  /** The render cache key the worker computed (absent when RENDER_CACHE=off): the settler records a fresh render under it. */
  cacheKey?: string;
  /** A cache hit: the keys are another video's (`sourceVideoId`), found under `cacheScope`; nothing was rendered or uploaded. */
  cached?: boolean;
  sourceVideoId?: string;
  cacheScope?: string;
}

export function renderJobOptions(attempts: number): JobsOptions {
  return {
    attempts,
    backoff: { type: 'exponential', delay: 5_000 },
    // Finished jobs are kept a day (the API reads results and failure reasons
    // from them) and then dropped, so Redis memory stays flat.
    removeOnComplete: { age: 24 * 3600, count: 50_000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 50_000 },
  };
}

export function renderQueue(name: string, connection: ConnectionOptions, attempts: number): Queue<RenderJobData, RenderResult> {
  return new Queue<RenderJobData, RenderResult>(name, {
    connection,
    prefix: QUEUE_PREFIX,
    defaultJobOptions: renderJobOptions(attempts),
  });
}

/** Jobs waiting for a worker: `LLEN wait` alone would miss prioritized ones. */
export async function queueDepth(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts('wait', 'prioritized', 'delayed');
  return (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
}
