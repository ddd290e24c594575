// /v1/videos: submit a render spec, read one video, list your own, change its visibility.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../engine/db.js';
import type { ApiMetrics } from '../engine/metrics.js';
import { VgenError } from '../engine/errors.js';
import { newId } from '../engine/ids.js';
import { PARK_DELAY_MS, type RenderJobData, type RenderResult } from '../engine/queue.js';
import { checkSpecRules, type RenderSpec } from '../engine/spec.js';
import { checkCallbackUrl } from './callback-url.js';
import type { OutboundOptions } from '../engine/outbound.js';
import type { Storage } from '../engine/storage.js';
import type { Lane } from '../engine/fairness.js';
import { claimKey, requestHash, storeResponse } from './idempotency.js';
import { placeVideoMedia } from './media-sync.js';
import { queueBreaker } from './queue-health.js';
import { expandTemplateSubmission, templateUsed } from './templates.js';
import { checkUploadRefs } from './upload-refs.js';
import { admitVideo, submitLane, submitRateLimit, type UserQuotas } from './quotas.js';
import { ErrorBody, VideoBody, VideoSubmission } from './schemas.js';
import { videoCancelRoutes } from './video-cancel.js';
import { videoEventRoutes } from './video-events.js';
import { videoPresenter } from './video-present.js';
import { getVideo, insertVideo, listVideos, setVisibility, type VideoRow, type Visibility } from './video-store.js';

export interface VideoDeps {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  storage: Storage;
  /**
   * The queue's producer connection: while it is not ready, or after an
   * enqueue timed out until it answers a PING again (api/queue-health.ts), a
   * submit answers 503 at once.
   */
  redis?: { readonly status: string; ping(): Promise<unknown> };
  /** Lifetime of the signed URLs of private videos, minted on each read. */
  mediaUrlTtlSeconds?: number;
  /** Redis pub/sub for GET /v1/videos/:id/events and POST /v1/videos/:id/cancel; without it those routes are absent. */
  control?: { redis: Redis; eventsMaxConnections?: number; heartbeatMs?: number };
  /** Per-user limits on submits (api/quotas.ts); without it, none. */
  quotas?: UserQuotas;
  /** Open event streams and canceled videos are counted here (engine/metrics.ts). */
  metrics?: ApiMetrics;
  /** OUTBOUND_ALLOW (asset and callbackUrl checks at submit); tests add a resolver for callbackUrl host names. */
  outbound?: OutboundOptions;
  /** Told when a cancel makes a video terminal, so its webhook is queued (api/webhook-delivery.ts). */
  webhooks?: { settled(videoId: string): void };
}

const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' })),
});
const VisibilityField = Type.Union([Type.Literal('public'), Type.Literal('private')]);
const VisibilityBody = Type.Object({ visibility: VisibilityField }, { additionalProperties: false });
const VisibilityQuery = Type.Object(
  {
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
    priority: Type.Optional(Type.Union([Type.Literal('normal'), Type.Literal('high')], {
      description: '`high` (operator tokens only; anyone else gets 403 naming this field) puts the job in the operator lane, ahead of every user\'s queue.',
    })),
  },
  { additionalProperties: false },
);
const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ pattern: '^vid_[0-9a-z]{25}$' })),
  },
  { additionalProperties: false },
);
// A malformed id answers 404 like an unknown one (api/validation.ts), never reaching the database.
const IdParams = Type.Object({ id: Type.String({ pattern: '^vid_[0-9a-z]{25}$', description: 'A video id, vid_ and 25 characters [0-9a-z].' }) });

// BullMQ waits for a connection that has never been ready instead of failing,
// so a submit bounds the wait itself and answers 503 past it.
const ENQUEUE_TIMEOUT_MS = 3_000;
const PROMOTE_TIMEOUT_MS = 1_000;

class EnqueueTimeout extends Error {}

/**
 * Add the job *parked* (delayed by PARK_DELAY_MS, so no worker takes it), within
 * `ms`. An add that lands after the timeout stays parked: its transaction has
 * rolled back, so no row will ever exist for it and nothing promotes it; the
 * settler removes it (settleParked in api/settler.ts).
 */
async function enqueueParked(queue: VideoDeps['queue'], data: RenderJobData, ms: number, priority?: number): Promise<Job<RenderJobData, RenderResult>> {
  // A parked job keeps its priority: promoting it puts it in BullMQ's `prioritized` set.
  const add = queue.add('render', data, { jobId: data.videoId, delay: PARK_DELAY_MS, priority });
  add.catch(() => {}); // a failure after the timeout changes nothing
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EnqueueTimeout(`enqueue timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([add, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function videoRoutes(app: FastifyInstance, deps: VideoDeps) {
  const { db, queue, storage } = deps;
  const breaker = deps.redis && queueBreaker(deps.redis, { log: app.log });
  if (breaker) app.addHook('onClose', async () => breaker.close());

  // The same object for every route, the event streams and webhooks (api/video-present.ts).
  const present = videoPresenter({ queue, storage, mediaUrlTtlSeconds: deps.mediaUrlTtlSeconds });

  const auth = { onRequest: app.authenticate, schema: { security: [{ bearer: [] }] } };

  const perUserRate = deps.quotas && submitRateLimit(app, deps.quotas.submitsPerMinute);

  app.post('/v1/videos', {
    onRequest: perUserRate ? [app.authenticate, perUserRate] : app.authenticate,
    // `{ template, fields }` becomes the spec it makes before the body is validated (api/templates.ts).
    preValidation: expandTemplateSubmission,
    bodyLimit: 256 * 1024,
    schema: {
      tags: ['videos'],
      summary: 'Submit a render spec',
      description: 'Accepts the spec and queues a render. With an Idempotency-Key header, a retry returns the first response and creates nothing. '
        + 'Instead of a spec, the body may name a template and its merge fields, `{ "template": "<name>", "fields": { … } }` (GET /v1/templates lists them): it is expanded on the server and validated like a spec; a bad field is a 400 naming it as fields.<name>, an unknown template a 400 naming template. '
        + 'An optional top-level callbackUrl (https) receives a signed POST of the video object when it succeeds, fails or is canceled (see the webhooks routes). '
        + 'Per user: at most USER_SUBMITS_PER_MINUTE submissions a minute (429 rate_limited) and USER_MAX_ACTIVE_VIDEOS videos queued or rendering at once (429 too_many_active_videos); both answer with Retry-After.',
      security: [{ bearer: [] }],
      body: VideoSubmission,
      headers: IdempotencyHeaders,
      querystring: VisibilityQuery,
      response: { 202: VideoBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody },
    },
  }, async (req, reply) => {
    // callbackUrl is about delivery, not rendering: it is kept out of the stored spec and the job.
    const { callbackUrl, ...spec } = req.body as RenderSpec & { callbackUrl?: string };
    checkSpecRules(spec, deps.outbound?.policy);
    if (callbackUrl !== undefined) await checkCallbackUrl(callbackUrl, deps.outbound);
    const userId = req.auth!.id;
    // upload://<id> assets: the caller's own, with their file in the store (one query, one HEAD each).
    await checkUploadRefs(db, storage, userId, spec);
    const query = req.query as { visibility?: Visibility; priority?: Lane };
    const visibility: Visibility = query.visibility ?? 'public';
    const lane = submitLane(req, query.priority);
    const key = (req.headers as { 'idempotency-key'?: string })['idempotency-key'];
    const id = newId('vid');
    const unavailable = () => new VgenError('unavailable', 'the render queue is unavailable; nothing was created, retry later');
    // While Redis is down, or hung (an enqueue timed out and no PING has been
    // answered since), answer at once: no transaction waits on it.
    if (deps.redis && deps.redis.status !== 'ready') throw unavailable();
    if (breaker?.open) throw unavailable();

    // One transaction: claim the key, insert the row, add the job parked, store
    // the response. If the add fails or times out, everything rolls back: no
    // row, no key, and a late-landing job stays parked forever (then removed).
    // A concurrent retry with the same key waits on the claim and then sees
    // either this committed response or no claim at all.
    let job: Job<RenderJobData, RenderResult> | undefined;
    const outcome = await db.tx(async (q) => {
      if (key) {
        // The lane is part of the request only when asked for, so keys stored before it existed still replay.
        // So is the callbackUrl: the same spec sent to another URL is another request.
        const request: unknown[] = lane === 'high' ? [spec, visibility, lane] : [spec, visibility];
        if (callbackUrl !== undefined) request.push({ callbackUrl });
        // A template submission hashes the spec it expanded to and the template's name.
        const template = templateUsed.get(req);
        if (template !== undefined) request.push({ template });
        const prior = await claimKey<VideoBody>(q, userId, key, requestHash(request));
        if (prior) return { body: prior, replayed: true };
      }
      // A replay above is never refused by the limit; a refusal here rolls the key claim back.
      const priority = deps.quotas ? await admitVideo(q, reply, { userId, lane, maxActiveVideos: deps.quotas.maxActiveVideos }) : undefined;
      const row = await insertVideo(q, { id, userId, spec, visibility, priority, callbackUrl });
      // Waited for a connection while another submit's enqueue timed out: do not wait 3 s more.
      if (breaker?.open) throw unavailable();
      try {
        job = await enqueueParked(queue, { videoId: id, spec, visibility, userId }, ENQUEUE_TIMEOUT_MS, priority);
      } catch (err) {
        if (err instanceof EnqueueTimeout) breaker?.trip();
        req.log.warn({ err, videoId: id }, 'enqueue failed; nothing was created');
        throw unavailable();
      }
      const body = await present(row);
      if (key) await storeResponse(q, userId, key, 202, body);
      return { body, replayed: false };
    });
    // Only accepted submissions store a response, so a replay is always a 202.
    if (outcome.replayed) return reply.status(202).header('idempotent-replayed', 'true').send(outcome.body);

    // The row is committed: let workers take the job. Should this fail, the
    // job stays parked and the settler promotes it (its row exists), so the
    // video is accepted either way.
    const promoted = job!.promote();
    const ok = await Promise.race([promoted.then(() => true), sleep(PROMOTE_TIMEOUT_MS).then(() => false)]).catch((err) => {
      req.log.warn({ err, videoId: id }, 'promoting the job failed; the settler will');
      return true;
    });
    if (!ok) {
      promoted.catch(() => {});
      req.log.warn({ videoId: id }, 'promoting the job timed out; the settler will');
    }
    return reply.status(202).send(outcome.body);
  });

  app.patch('/v1/videos/:id', {
    ...auth,
    schema: {
      ...auth.schema, tags: ['videos'], summary: 'Change a video\'s visibility',
      description: 'Owner only. Making a video private takes effect before the answer: its files move to new keys under a prefix the CDN does not serve, the old public objects are deleted, and from then on its URLs are short-lived signed URLs. Making it public moves them back under new public keys.',
      params: IdParams, body: VisibilityBody,
      response: { 200: VideoBody, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const { visibility } = req.body as { visibility: Visibility };
    const userId = req.auth!.id;
    let row: VideoRow | null;
    try {
      row = await placeVideoMedia(db, storage, id, async (q, current) => {
        // Someone else's video, public or not, cannot be changed: it does not exist for them.
        if (current.user_id !== userId) throw new VgenError('not_found', 'no such video', 'id');
        return current.visibility === visibility ? current : setVisibility(q, id, visibility);
      });
    } catch (err) {
      if (err instanceof VgenError) throw err;
      req.log.warn({ err, videoId: id }, 'moving media for a visibility change failed');
      throw new VgenError('unavailable', 'storage is unavailable, so the change could not be completed; retry');
    }
    if (!row) throw new VgenError('not_found', 'no such video', 'id');
    return present(row);
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

  // Live events and cancel (api/video-events.ts, api/video-cancel.ts) answer with the same video object.
  if (deps.control) await app.register(videoEventRoutes, { db, queue, present, redis: deps.control.redis, maxConnections: deps.control.eventsMaxConnections, heartbeatMs: deps.control.heartbeatMs, streams: deps.metrics?.sseConnections });
  if (deps.control) await app.register(videoCancelRoutes, { db, queue, present, redis: deps.control.redis, settled: deps.metrics?.videosSettled, webhooks: deps.webhooks });
}
