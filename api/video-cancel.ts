// POST /v1/videos/:id/cancel. The flow, top-down:
//   route (owner or operator) → store transition (markCanceled: one conditional
//   UPDATE from queued/rendering, so the video ends canceled exactly once) →
//   event streams (a status notice) → queue (cancelJob: the wish in Redis, a
//   message to every worker, the job removed if no worker holds it) → worker
//   (the one holding it aborts the job's signal, ffmpeg is SIGKILLed, the job
//   fails without retries: worker/lifecycle/drain.ts) → settler (the late
//   result matches no row; a canceled render's files are deleted).
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { requestCancel } from '../engine/cancel.js';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import type { Logger } from '../engine/log.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { publishVideoNotice } from '../engine/video-events.js';
import { ErrorBody, VideoBody } from './schemas.js';
import { VideoIdParams } from './video-events.js';
import { getVideo, markCanceled, type VideoRow } from './video-store.js';

const CANCEL_JOB_TIMEOUT_MS = 2_000;

/**
 * Stop a canceled video's job wherever it is: record the wish and tell every
 * worker (the one holding it aborts it; one taking it later finds the wish),
 * then remove the job if it is not held (waiting, parked, backing off).
 * Returns whether the job was removed.
 */
export async function cancelJob(deps: { queue: Queue<RenderJobData, RenderResult>; redis: Redis; log: Pick<Logger, 'info'> }, videoId: string): Promise<boolean> {
  await requestCancel(deps.redis, deps.queue.name, videoId);
  // 0 when a worker holds the job (or it is gone): the message above stops it.
  const removed = (await deps.queue.remove(videoId)) === 1;
  deps.log.info({ videoId, removed }, removed ? 'cancel: job removed from the queue' : 'cancel: workers told to stop the job');
  return removed;
}

export interface VideoCancelDeps {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  redis: Redis;
  present: (row: VideoRow) => Promise<VideoBody>;
  /** vgen_videos_settled_total: a cancel is a terminal state too. */
  settled?: { inc(labels: { outcome: 'canceled' }): void };
  /** Queues the canceled video's webhook, if it has a callbackUrl (api/webhook-delivery.ts). */
  webhooks?: { settled(videoId: string): void };
}

export async function videoCancelRoutes(app: FastifyInstance, deps: VideoCancelDeps) {
  const { db, queue, redis } = deps;

  app.post('/v1/videos/:id/cancel', {
    onRequest: app.authenticate,
    schema: {
      tags: ['videos'],
      summary: 'Cancel a video',
      description:
        'The owner (or an operator) cancels a queued or rendering video: it ends `canceled` at once, a queued job is removed, and a render '
        + 'in progress is stopped within about 2 s on whichever worker holds it; a result that still arrives later changes nothing. '
        + 'A video already succeeded, failed or canceled is 409 conflict; anyone else\'s video is 404.',
      security: [{ bearer: [] }],
      params: VideoIdParams,
      response: { 200: VideoBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const caller = req.auth!;
    const row = await getVideo(db, id);
    // Someone else's video, public or not, cannot be canceled: it does not exist for them.
    if (!row || (row.user_id !== caller.id && caller.role !== 'operator')) throw new VgenError('not_found', 'no such video', 'id');
    const settled = (status: string) => new VgenError('conflict', `the video is already ${status}; only a queued or rendering video can be canceled`);
    if (row.status !== 'queued' && row.status !== 'rendering') throw settled(row.status);

    const canceled = await markCanceled(db, id);
    // It settled between the read and the UPDATE.
    if (!canceled) throw settled((await getVideo(db, id))?.status ?? 'settled');
    deps.settled?.inc({ outcome: 'canceled' });
    deps.webhooks?.settled(id);
    req.log.info({ videoId: id, from: row.status, by: caller.id }, 'video canceled');

    // The row is the truth from here on; Redis trouble only delays the stop
    // (the settler asks again when a worker takes a canceled video's job).
    void publishVideoNotice(redis, queue.name, id, { kind: 'status' }).catch((err) =>
      req.log.warn({ err: err.message, videoId: id }, 'cancel: publishing the status event failed'));
    const stopped = cancelJob({ queue, redis, log: req.log }, id);
    stopped.catch(() => {});
    const outcome = await Promise.race([stopped.then(() => 'done'), sleep(CANCEL_JOB_TIMEOUT_MS).then(() => 'timeout')]).catch((err: Error) => err.message);
    if (outcome !== 'done') req.log.warn({ videoId: id, outcome }, 'cancel: the job could not be stopped yet; the settler retries when a worker takes it');
    return deps.present(canceled);
  });
}
