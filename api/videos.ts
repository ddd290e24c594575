// /v1/videos: submit a render spec, read one video, list your own.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Queue } from 'bullmq';
import type { Db, Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { newId } from '../engine/ids.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { RenderSpec, checkSpecRules } from '../engine/spec.js';
import type { Storage } from '../engine/storage.js';
import { claimKey, releaseKey, requestHash, storeResponse } from './idempotency.js';
import { ErrorBody, VideoBody } from './schemas.js';
import { deleteQueuedVideo, getVideo, insertVideo, listVideos, type VideoRow, type Visibility } from './video-store.js';

export interface VideoDeps {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  storage: Storage;
}

const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' })),
});
const VisibilityQuery = Type.Object(
  { visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])) },
  { additionalProperties: false },
);
const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ pattern: '^vid_[0-9a-z]{25}$' })),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

// BullMQ waits for a connection that has never been ready instead of failing,
// so a submit bounds the wait itself and answers 503 past it.
const ENQUEUE_TIMEOUT_MS = 3_000;

async function enqueueWithin(queue: VideoDeps['queue'], data: RenderJobData, ms: number): Promise<void> {
  const add = queue.add('render', data, { jobId: data.videoId });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`enqueue timed out after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([add, timeout]);
  } catch (err) {
    // If the add lands after we gave up, take the job back out: its row is gone.
    add.then((job) => job.remove(), () => {}).catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export async function videoRoutes(app: FastifyInstance, deps: VideoDeps) {
  const { db, queue, storage } = deps;

  /** Progress of unsettled videos lives in Redis (workers hold no DB connection). */
  async function liveProgress(row: VideoRow): Promise<number> {
    if (row.status !== 'rendering') return row.progress;
    try {
      // Bounded: BullMQ waits for a connection that is down instead of failing.
      const job = await Promise.race([queue.getJob(row.id), sleep(250).then(() => undefined)]);
      const p = job?.progress;
      return typeof p === 'number' ? Math.min(1, Math.max(0, p / 100)) : row.progress;
    } catch {
      return row.progress; // Redis down: the row's last known value still answers.
    }
  }

  const present = async (row: VideoRow): Promise<VideoBody> => ({
    id: row.id,
    object: 'video',
    status: row.status,
    progress: await liveProgress(row),
    visibility: row.visibility,
    createdAt: row.created_at.toISOString(),
    output: row.status === 'succeeded' && row.video_key && row.poster_key
      ? { url: storage.url(row.video_key), posterUrl: storage.url(row.poster_key), durationMs: row.duration_ms!, width: row.width!, height: row.height! }
      : null,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
  });

  const auth = { onRequest: app.authenticate, schema: { security: [{ bearer: [] }] } };

  app.post('/v1/videos', {
    onRequest: app.authenticate,
    bodyLimit: 256 * 1024,
    schema: {
      tags: ['videos'],
      summary: 'Submit a render spec',
      description: 'Accepts the spec and queues a render. With an Idempotency-Key header, a retry returns the first response and creates nothing.',
      security: [{ bearer: [] }],
      body: RenderSpec,
      headers: IdempotencyHeaders,
      querystring: VisibilityQuery,
      response: { 202: VideoBody, 400: ErrorBody, 401: ErrorBody, 409: ErrorBody, 413: ErrorBody, 503: ErrorBody },
    },
  }, async (req, reply) => {
    const spec = req.body as RenderSpec;
    checkSpecRules(spec);
    const userId = req.auth!.id;
    const visibility: Visibility = (req.query as { visibility?: Visibility }).visibility ?? 'public';
    const key = (req.headers as { 'idempotency-key'?: string })['idempotency-key'];
    const id = newId('vid');
    const create = async (q: Queryable) => present(await insertVideo(q, { id, userId, spec, visibility }));

    // With a key, the claim, the row and the stored response commit together;
    // without one, a single INSERT is the whole write.
    let body: VideoBody;
    if (key) {
      const outcome = await db.tx(async (q) => {
        const prior = await claimKey<VideoBody>(q, userId, key, requestHash([spec, visibility]));
        if (prior) return { body: prior, replayed: true };
        const created = await create(q);
        await storeResponse(q, userId, key, 202, created);
        return { body: created, replayed: false };
      });
      // Only accepted submissions store a response, so a replay is always a 202.
      if (outcome.replayed) return reply.status(202).header('idempotent-replayed', 'true').send(outcome.body);
      body = outcome.body;
    } else {
      body = await create(db);
    }

    try {
      await enqueueWithin(queue, { videoId: id, spec }, ENQUEUE_TIMEOUT_MS);
    } catch (err) {
      req.log.warn({ err, videoId: id }, 'enqueue failed; removing the video row');
      // Nothing may wait for a job that does not exist: undo the row and the key.
      await db.tx(async (q) => {
        await deleteQueuedVideo(q, id);
        if (key) await releaseKey(q, userId, key);
      });
      throw new VgenError('unavailable', 'the render queue is unavailable; nothing was created, retry later');
    }
    return reply.status(202).send(body);
  });

  app.get('/v1/videos/:id', {
    ...auth,
    schema: { ...auth.schema, tags: ['videos'], summary: 'Get a video', params: IdParams, response: { 200: VideoBody, 401: ErrorBody, 404: ErrorBody } },
  }, async (req) => {
    const row = await getVideo(db, (req.params as { id: string }).id);
    // Someone else's private video does not exist, as far as this caller knows.
    if (!row || (row.visibility === 'private' && row.user_id !== req.auth!.id))
      throw new VgenError('not_found', 'no such video', 'id');
    return present(row);
  });

  app.get('/v1/videos', {
    ...auth,
    schema: {
      ...auth.schema, tags: ['videos'], summary: 'List your videos, newest first', querystring: ListQuery,
      response: {
        200: Type.Object({ object: Type.Literal('list'), data: Type.Array(VideoBody), hasMore: Type.Boolean(), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
        400: ErrorBody, 401: ErrorBody,
      },
    },
  }, async (req) => {
    const { limit = 20, cursor } = req.query as { limit?: number; cursor?: string };
    const rows = await listVideos(db, req.auth!.id, limit + 1, cursor);
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return { object: 'list', data: await Promise.all(page.map(present)), hasMore, nextCursor: hasMore ? page.at(-1)!.id : null };
  });
}
