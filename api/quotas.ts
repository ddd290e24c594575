// Per-user quotas and fair scheduling on POST /v1/videos:
//  - submissions per minute per user, counted by @fastify/rate-limit in the
//    same Redis store as the sign-in limits (api/rate-limit.ts), so every API
//    replica shares one count (per process while Redis is down);
//  - videos queued + rendering at once per user, checked inside the submit's
//    transaction;
//  - the job's BullMQ priority (engine/fairness.ts) from the same read.
//
// Race safety: a submit takes a transaction-scoped advisory lock on its user
// before it counts, and holds it until it commits (with the row it inserted)
// or rolls back, so two submits of one user never both see room for one more
// video, and never get the same round. Submits of different users never wait
// on each other. The count uses the partial index videos_user_unsettled
// (engine/migrations/005_fair_scheduling.sql): one entry per unsettled video.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { renderPriority, type Lane } from '../engine/fairness.js';

export interface UserQuotas {
  /** Videos one user may have queued or rendering at once (USER_MAX_ACTIVE_VIDEOS). */
  maxActiveVideos: number;
  /** Submissions one user may make per minute (USER_SUBMITS_PER_MINUTE). */
  submitsPerMinute: number;
}

/**
 * How long a caller at the active-video limit is told to wait. A slot frees
 * when one of their videos settles, which this cannot predict; following a
 * video (GET, or its event stream) tells exactly.
 */
export const ACTIVE_LIMIT_RETRY_AFTER_SECONDS = 15;

/** First key of the two-key advisory lock space for per-user submit locks (migrations use the one-key space). */
const SUBMIT_LOCK_CLASS = 7340005;

/**
 * Inside the submit's transaction, before the row is inserted: refuse the
 * video if the user is at the limit (429 too_many_active_videos with
 * Retry-After), else return the priority its job gets.
 */
export async function admitVideo(
  q: Queryable,
  reply: FastifyReply,
  opts: { userId: string; lane: Lane; maxActiveVideos: number },
): Promise<number> {
  await q.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [SUBMIT_LOCK_CLASS, opts.userId]);
  const [row] = await q.query<{ active: number; highest: number | null }>(
    `SELECT count(*)::int AS active, max(priority) FILTER (WHERE status = 'queued') AS highest
     FROM videos WHERE user_id = $1 AND status IN ('queued', 'rendering')`,
    [opts.userId],
  );
  const { active, highest } = row!;
  if (active >= opts.maxActiveVideos) {
    reply.header('retry-after', String(ACTIVE_LIMIT_RETRY_AFTER_SECONDS));
    throw new VgenError(
      'too_many_active_videos',
      `you have ${active} videos queued or rendering, the most allowed at once (${opts.maxActiveVideos}); submit more once some finish`,
    );
  }
  return renderPriority({ lane: opts.lane, active, highestQueued: highest });
}

/**
 * The per-user submission rate limit, as an onRequest hook to run after
 * authentication. Needs @fastify/rate-limit registered (the auth plugin does).
 */
export function submitRateLimit(app: FastifyInstance, perMinute: number) {
  return perUserRateLimit(app, { name: 'submit', perMinute, what: 'video submissions' });
}

/** The same per-user, per-minute limit for another action (`name` keys its count; `what` names it in the 429). */
export function perUserRateLimit(app: FastifyInstance, opts: { name: string; perMinute: number; what: string }) {
  const { perMinute } = opts;
  const limit = app.createRateLimit({
    max: perMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => `${opts.name}:${req.auth!.id}`,
  });
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const result = await limit(req);
    if (result.isAllowed || !result.isExceeded) return;
    const after = Math.max(1, result.ttlInSeconds);
    reply.header('retry-after', String(after));
    throw new VgenError('rate_limited', `more than ${perMinute} ${opts.what} in a minute; retry in ${after} s`);
  };
}

/** `?priority=high` is the operator lane; anyone else asking for it is refused, naming the field. */
export function submitLane(req: FastifyRequest, asked: Lane | undefined): Lane {
  if (asked === 'high' && req.auth?.role !== 'operator')
    throw new VgenError('forbidden', 'priority=high is reserved for operator tokens', 'priority');
  return asked ?? 'normal';
}
