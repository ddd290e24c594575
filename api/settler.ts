// Moves video rows as render jobs move. Two paths reach the same idempotent
// transitions (video-store.ts):
//  - the fast path listens to the queue's event stream (active, completed,
//    failed — BullMQ emits `failed` only once no retry is left);
//  - the reconciler asks Redis about rows left unsettled for a while, which
//    covers events missed while no API process was listening.
// Every API replica runs both; duplicates match no row and change nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import { QueueEvents, type ConnectionOptions, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../engine/db.js';
import { RENDER_ERRORS } from '../engine/errors.js';
import type { Logger } from '../engine/log.js';
import type { Metrics } from '../engine/metrics.js';
import { isParked, PARK_DELAY_MS, QUEUE_PREFIX, type RenderJobData, type RenderResult } from '../engine/queue.js';
import type { Storage } from '../engine/storage.js';
import { publishVideoNotice } from '../engine/video-events.js';
import { cancelJob } from './video-cancel.js';
import { commitVideoMedia, purgeMedia, purgeVideoMedia } from './media-sync.js';
import { recordSettledRender, settleCachedResult } from './render-cache-settle.js';
import { discardCanceledOutputs, getVideo, markFailed, markRendering, markSucceeded, settleSucceeded, staleUnsettled, touch } from './video-store.js';

/** Worker failure reasons are `code: message`; anything else is shown generically. */
export function userError(failedReason: string | undefined): { code: string; message: string } {
  const m = /^([a-z_]+): (.+)$/s.exec(failedReason ?? '');
  if (m && m[1]! in RENDER_ERRORS) return { code: m[1]!, message: m[2]! };
  // BullMQ's "job stalled more than allowable limit": the job outlived WORKER_LOST_LIMIT workers.
  if (failedReason?.includes('stalled')) return { code: 'worker_lost', message: RENDER_ERRORS.worker_lost };
  return { code: 'render_failed', message: RENDER_ERRORS.render_failed };
}

export interface SettlerOptions {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  connection: ConnectionOptions;
  /** The API's producer connection: the settler starts listening once it is ready. */
  producer: Redis;
  log: Logger;
  metrics?: Metrics;
  /** How long a row may sit unsettled before the reconciler asks Redis about it. */
  staleSeconds?: number;
  /** How long a job may stay parked before the reconciler promotes it (row exists) or removes it (no row). */
  parkedGraceSeconds?: number;
  intervalMs?: number;
  /** With it, a succeeded render's files (written under private/) are moved to the public prefix if the video is public when it settles. */
  storage?: Storage;
  /** Told when this process settles a video, so its webhook is queued (api/webhook-delivery.ts). */
  webhooks?: { settled(videoId: string): void };
  /** RENDER_CACHE (default on): record fresh renders in the render cache's index. Cache hits are checked and settled either way. */
  renderCache?: boolean;
}

export function startSettler(opts: SettlerOptions) {
  const { db, queue, log } = opts;
  const staleSeconds = opts.staleSeconds ?? 30;

  const parkedGraceSeconds = opts.parkedGraceSeconds ?? 60;

  /** vgen_video_turnaround_seconds: the settled row's created_at → finished_at (one primary-key read). */
  const observeTurnaround = (id: string, outcome: 'succeeded' | 'failed') => {
    const histogram = opts.metrics?.videoTurnaround;
    if (!histogram) return;
    void getVideo(db, id).then((row) => {
      if (row?.finished_at) histogram.observe({ outcome }, Math.max(0, (row.finished_at.getTime() - row.created_at.getTime()) / 1000));
    }).catch(() => {});
  };

  // Only the process whose UPDATE moved the row tells the event streams (api/video-events.ts).
  const notify = (id: string) =>
    void publishVideoNotice(opts.producer, queue.name, id, { kind: 'status' })
      .catch((err) => log.warn({ err: err.message, videoId: id }, 'settler: publishing a status event failed; streams catch up on their next check'));

  const rendering = async (id: string): Promise<boolean> => {
    const moved = await markRendering(db, id);
    if (moved) notify(id);
    // A worker took the job of a canceled video (the cancel's message was lost,
    // or the job was waiting when its removal failed): ask again.
    else if ((await getVideo(db, id))?.status === 'canceled') await cancelJob({ queue, redis: opts.producer, log }, id);
    return moved;
  };

  const cacheDeps = { db, queue, redis: opts.producer, storage: opts.storage, log, record: opts.renderCache ?? true };
  const succeeded = async (id: string, result: RenderResult): Promise<boolean> => {
    let moved = false;
    if (result.cached) {
      // A render-cache hit: another video's files, checked before this row points at them (api/render-cache-settle.ts).
      moved = await settleCachedResult(cacheDeps, id, result);
    } else if (opts.storage) {
      // Workers always write under private/ (worker/render-job.ts). One
      // transaction settles the row and, under its lock, copies the files to
      // new public keys if the row is public at that moment, so a public
      // video's first URL is already its immutable public one and a video made
      // private while it rendered never has a file under a public key.
      // Idempotent: a second settle (fast path vs reconciler) matches no
      // unsettled row and finds the files placed.
      const storage = opts.storage;
      let committed = false;
      try {
        await commitVideoMedia(db, storage, id, async (q, row) => {
          const settled = await settleSucceeded(q, id, result);
          moved = settled !== null;
          return settled ?? row;
        });
        committed = true;
      } catch (err) {
        // Placement failed and rolled back: settle anyway. The row keeps its
        // private keys (presented as signed URLs) until the maintenance pass
        // moves them (misplacedMedia).
        log.warn({ err, videoId: id }, 'settler: placing media failed; settling with private keys, maintenance will retry');
        moved = await markSucceeded(db, id, result);
      }
      if (committed) {
        await purgeVideoMedia(db, storage, id)
          .catch((err) => log.warn({ err, videoId: id }, 'settler: deleting a moved render\'s old files failed; maintenance will retry'));
      }
    } else {
      moved = await markSucceeded(db, id, result);
    }
    if (!moved && !result.cached) {
      // Canceled while its last stage ran: its files belong to no video. (A
      // cache hit's files are its source's: never discarded here.)
      const keys = [result.videoKey, result.posterKey, result.previewKey].filter((k): k is string => typeof k === 'string' && k.length > 0);
      if (keys.length && (await discardCanceledOutputs(db, id, keys)) > 0 && opts.storage)
        await purgeMedia(db, opts.storage, keys).catch((err) => log.warn({ err, videoId: id }, 'settler: deleting a canceled render\'s files failed; maintenance will retry'));
    }
    if (moved) {
      notify(id);
      opts.webhooks?.settled(id);
      opts.metrics?.videosSettled.inc({ outcome: 'succeeded' });
      observeTurnaround(id, 'succeeded');
      if (!result.cached) await recordSettledRender(cacheDeps, id, result)
        .catch((err) => log.warn({ err, videoId: id }, 'settler: recording a render in the render cache failed; the next identical render renders again'));
    }
    return moved;
  };
  const failed = async (id: string, reason: string | undefined): Promise<boolean> => {
    const { code, message } = userError(reason);
    const moved = await markFailed(db, id, code, message);
    if (moved) {
      notify(id);
      opts.webhooks?.settled(id);
      opts.metrics?.videosSettled.inc({ outcome: 'failed' });
      observeTurnaround(id, 'failed');
    }
    return moved;
  };
  const guard = (what: string, id: string, p: Promise<unknown>) =>
    p.catch((err) => log.error({ err, videoId: id }, `settler: ${what} failed; the reconciler will retry`));

  // The event stream is opened once Redis is first reachable: BullMQ's
  // QueueEvents cannot be closed cleanly if its connection never came up.
  let events: QueueEvents | undefined;
  let closed = false;
  const listen = () => {
    if (events || closed) return;
    events = new QueueEvents(queue.name, { connection: opts.connection, prefix: QUEUE_PREFIX });
    events.on('error', (err) => log.warn({ err: err.message }, 'settler: queue events connection error'));
    events.on('active', ({ jobId }) => void guard('markRendering', jobId, rendering(jobId)));
    events.on('completed', ({ jobId, returnvalue }) => {
      const result = (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as RenderResult;
      void guard('markSucceeded', jobId, succeeded(jobId, result));
    });
    events.on('failed', ({ jobId, failedReason }) => void guard('markFailed', jobId, failed(jobId, failedReason)));
  };
  if (opts.producer.status === 'ready') listen();
  else opts.producer.once('ready', listen);

  /**
   * Parked jobs (engine/queue.ts) older than the grace period: promote those
   * whose row exists (the submit committed, but its promote failed or its
   * process died), remove those without one (the add landed after the submit
   * had rolled back). A parked job cannot be taken by a worker, and a row is
   * never created for an id after its transaction rolled back, so neither
   * action races a render. Returns how many jobs it promoted or removed.
   */
  async function settleParked(): Promise<number> {
    // BullMQ scores a delayed job (timestamp + delay) * 0x1000 + n: parked jobs
    // old enough are a score range of their own, far above retries' backoffs.
    const now = Date.now();
    const ids = await opts.producer.zrangebyscore(
      queue.keys.delayed!,
      (now + PARK_DELAY_MS / 2) * 0x1000,
      (now - parkedGraceSeconds * 1000 + PARK_DELAY_MS + 1) * 0x1000 - 1,
      'LIMIT', 0, 500,
    );
    let done = 0;
    for (const id of ids) {
      const job = await queue.getJob(id);
      if (!job || !isParked(job) || now - job.timestamp < parkedGraceSeconds * 1000) continue;
      const row = await getVideo(db, job.id!);
      try {
        if (row && (row.status === 'queued' || row.status === 'rendering')) await job.promote();
        else await job.remove();
        done++;
      } catch (err) {
        log.warn({ err, videoId: job.id }, 'settler: a parked job could not be promoted or removed');
      }
    }
    return done;
  }

  /** One pass over stale rows; returns how many it settled or moved. */
  async function reconcile(): Promise<number> {
    await settleParked();
    let moved = 0;
    const rows = await staleUnsettled(db, staleSeconds, 500);
    const checked: string[] = [];
    for (const row of rows) {
      const state = await queue.getJobState(row.id);
      if (state === 'completed') {
        const job = await queue.getJob(row.id);
        if (job?.returnvalue) moved += Number(await succeeded(row.id, job.returnvalue));
      } else if (state === 'failed') {
        moved += Number(await failed(row.id, (await queue.getJob(row.id))?.failedReason));
      } else if (state === 'active' && row.status === 'queued') {
        moved += Number(await rendering(row.id));
      } else if (state === 'unknown' && Date.now() - row.created_at.getTime() > 120_000) {
        // The job is gone (never enqueued, or removed): nothing will ever settle it.
        moved += Number(await failed(row.id, `lost: ${RENDER_ERRORS.lost}`));
      } else {
        checked.push(row.id);
      }
    }
    await touch(db, checked);
    return moved;
  }

  let running = false;
  const timer = setInterval(async () => {
    // Skip while Redis is down: BullMQ calls would wait instead of failing.
    if (running || opts.producer.status !== 'ready') return;
    running = true;
    try {
      await reconcile();
    } catch (err) {
      log.warn({ err }, 'settler: reconcile pass failed');
    } finally {
      running = false;
    }
  }, opts.intervalMs ?? 15_000);
  timer.unref();

  return {
    reconcile,
    settleParked,
    async close() {
      closed = true;
      clearInterval(timer);
      opts.producer.off('ready', listen);
      // close() waits for Redis while it is down; don't let that block a shutdown.
      if (events) await Promise.race([events.close(), sleep(2_000)]);
    },
  };
}

