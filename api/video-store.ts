// The video state machine: queued → rendering → succeeded | failed | canceled
// (canceled from queued or rendering, by markCanceled).
// Each transition is one conditional UPDATE, so a repeated or late result
// (a retried job, a replayed event, the reconciler racing the event stream)
// matches no row and changes nothing.
import type { Queryable } from '../engine/db.js';
import type { RenderResult } from '../engine/queue.js';
import type { RenderSpec } from '../engine/spec.js';

export type VideoStatus = 'queued' | 'rendering' | 'succeeded' | 'failed' | 'canceled';
export type Visibility = 'public' | 'private';

export interface VideoRow {
  id: string;
  user_id: string;
  status: VideoStatus;
  visibility: Visibility;
  spec: RenderSpec;
  progress: number;
  video_key: string | null;
  poster_key: string | null;
  /** The animated WebP preview (output.preview); null when the spec asked for none. */
  preview_key: string | null;
  duration_ms: number | null;
  width: number | null;
  height: number | null;
  error_code: string | null;
  error_message: string | null;
  /** Settled from an earlier render's files (a render-cache hit): its keys may be shared with other rows. */
  cached: boolean;
  created_at: Date;
  updated_at: Date;
  /** When it reached its terminal state (null while queued or rendering). */
  finished_at: Date | null;
}

const UNSETTLED = `status IN ('queued', 'rendering')`;

/**
 * `priority` is the BullMQ priority its job gets (engine/fairness.ts); later submits of the same user read it.
 * `callbackUrl` receives a webhook at the terminal state (api/webhook-delivery.ts).
 */
export async function insertVideo(q: Queryable, v: { id: string; userId: string; spec: RenderSpec; visibility: Visibility; priority?: number; callbackUrl?: string }): Promise<VideoRow> {
  const rows = await q.query<VideoRow>(
    'INSERT INTO videos (id, user_id, spec, visibility, priority, callback_url) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
    [v.id, v.userId, JSON.stringify(v.spec), v.visibility, v.priority ?? null, v.callbackUrl ?? null],
  );
  return rows[0]!;
}

export async function getVideo(q: Queryable, id: string): Promise<VideoRow | null> {
  return (await q.query<VideoRow>('SELECT * FROM videos WHERE id = $1', [id]))[0] ?? null;
}

/** A user's videos, newest first; `before` is the last id of the previous page. */
export async function listVideos(q: Queryable, userId: string, limit: number, before?: string): Promise<VideoRow[]> {
  return before
    ? q.query<VideoRow>('SELECT * FROM videos WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3', [userId, before, limit])
    : q.query<VideoRow>('SELECT * FROM videos WHERE user_id = $1 ORDER BY id DESC LIMIT $2', [userId, limit]);
}

export async function markRendering(q: Queryable, id: string): Promise<boolean> {
  const rows = await q.query(
    `UPDATE videos SET status = 'rendering', updated_at = now() WHERE id = $1 AND status = 'queued' RETURNING id`,
    [id],
  );
  return rows.length === 1;
}

export async function markSucceeded(q: Queryable, id: string, r: RenderResult): Promise<boolean> {
  return (await settleSucceeded(q, id, r)) !== null;
}

/** markSucceeded returning the settled row, or null when it was not unsettled. */
export async function settleSucceeded(q: Queryable, id: string, r: RenderResult): Promise<VideoRow | null> {
  const rows = await q.query<VideoRow>(
    `UPDATE videos SET status = 'succeeded', progress = 1, video_key = $2, poster_key = $3, duration_ms = $4,
       width = $5, height = $6, cached = $7, preview_key = $8, updated_at = now(), finished_at = now()
     WHERE id = $1 AND ${UNSETTLED} RETURNING *`,
    [id, r.videoKey, r.posterKey, Math.round(r.durationMs), r.width, r.height, r.cached === true, r.previewKey ?? null],
  );
  return rows[0] ?? null;
}

export async function markFailed(q: Queryable, id: string, code: string, message: string): Promise<boolean> {
  const rows = await q.query(
    `UPDATE videos SET status = 'failed', error_code = $2, error_message = $3, updated_at = now(), finished_at = now()
     WHERE id = $1 AND ${UNSETTLED} RETURNING id`,
    [id, code, message],
  );
  return rows.length === 1;
}

/**
 * queued | rendering → canceled (POST /v1/videos/:id/cancel). Returns the
 * canceled row, or null when the video had already settled: a result that
 * lands later matches no row (markSucceeded, markFailed), so it ends canceled once.
 */
export async function markCanceled(q: Queryable, id: string): Promise<VideoRow | null> {
  const rows = await q.query<VideoRow>(
    `UPDATE videos SET status = 'canceled', updated_at = now(), finished_at = now()
     WHERE id = $1 AND ${UNSETTLED} RETURNING *`,
    [id],
  );
  return rows[0] ?? null;
}

/**
 * A render that finished after its video was canceled left files no row points
 * at: record them for the maintenance pass to delete. Does nothing unless the
 * video is canceled. Returns how many keys were recorded.
 */
export async function discardCanceledOutputs(q: Queryable, id: string, keys: string[]): Promise<number> {
  const rows = await q.query(
    `INSERT INTO media_deletions (key, video_id)
     SELECT k, $1 FROM unnest($2::text[]) AS k WHERE EXISTS (SELECT 1 FROM videos WHERE id = $1 AND status = 'canceled')
     ON CONFLICT DO NOTHING RETURNING key`,
    [id, keys],
  );
  return rows.length;
}

/**
 * failed → queued: an operator retries a failed render (`vgen queue retry-failed`).
 * The row is reopened before the job is retried, so the job's next result
 * always finds an unsettled row to settle.
 */
export async function reopenFailed(q: Queryable, id: string): Promise<boolean> {
  const rows = await q.query(
    `UPDATE videos SET status = 'queued', progress = 0, error_code = NULL, error_message = NULL, finished_at = NULL,
       webhook_queued_at = NULL, updated_at = now()
     WHERE id = $1 AND status = 'failed' RETURNING id`,
    [id],
  );
  return rows.length === 1;
}

/** Unsettled videos not touched for a while: the reconciler's work list. */
export async function staleUnsettled(q: Queryable, olderThanSeconds: number, limit: number): Promise<Pick<VideoRow, 'id' | 'status' | 'created_at'>[]> {
  return q.query(
    `SELECT id, status, created_at FROM videos
     WHERE ${UNSETTLED} AND updated_at < now() - make_interval(secs => $1)
     ORDER BY updated_at LIMIT $2`,
    [olderThanSeconds, limit],
  );
}

/** Push a row to the back of the reconciler's list after it was checked. */
export async function touch(q: Queryable, ids: string[]): Promise<void> {
  if (ids.length) await q.query(`UPDATE videos SET updated_at = now() WHERE id = ANY($1) AND ${UNSETTLED}`, [ids]);
}

/** Lock a video's row for the rest of the caller's transaction (visibility changes and file moves are serialized). */
export async function lockVideo(q: Queryable, id: string): Promise<VideoRow | null> {
  return (await q.query<VideoRow>('SELECT * FROM videos WHERE id = $1 FOR UPDATE', [id]))[0] ?? null;
}

export async function setVisibility(q: Queryable, id: string, visibility: Visibility): Promise<VideoRow> {
  return (await q.query<VideoRow>('UPDATE videos SET visibility = $2 WHERE id = $1 RETURNING *', [id, visibility]))[0]!;
}

/**
 * Point a video at its moved files and record the old keys for deletion, in the
 * caller's transaction. A key already recorded by another video (a shared
 * render, api/media-refs.ts) becomes this one's, so this video's own purge deletes it.
 */
export async function replaceMediaKeys(q: Queryable, id: string, keys: { videoKey: string; posterKey: string; previewKey?: string | null }, oldKeys: string[]): Promise<VideoRow> {
  const [row] = await q.query<VideoRow>('UPDATE videos SET video_key = $2, poster_key = $3, preview_key = $4 WHERE id = $1 RETURNING *', [id, keys.videoKey, keys.posterKey, keys.previewKey ?? null]);
  if (oldKeys.length) await q.query('INSERT INTO media_deletions (key, video_id) SELECT unnest($2::text[]), $1 ON CONFLICT (key) DO UPDATE SET video_id = EXCLUDED.video_id', [id, oldKeys]);
  return row!;
}

/** Succeeded videos with a file (MP4, poster or preview) under the wrong prefix for their visibility (uses the partial index of migration 008). */
export async function misplacedMedia(q: Queryable, limit: number): Promise<string[]> {
  const rows = await q.query<{ id: string }>(
    `SELECT id FROM videos WHERE status = 'succeeded' AND ((visibility = 'private') <> (video_key LIKE 'private/%')
       OR (visibility = 'private') <> (poster_key LIKE 'private/%')
       OR (visibility = 'private') <> (preview_key LIKE 'private/%')) LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/** Keys still to delete from storage: the oldest `limit`, or those of one video. */
export async function pendingMediaDeletions(q: Queryable, opts: { limit: number; videoId?: string }): Promise<string[]> {
  const rows = opts.videoId
    ? await q.query<{ key: string }>('SELECT key FROM media_deletions WHERE video_id = $1 LIMIT $2', [opts.videoId, opts.limit])
    : await q.query<{ key: string }>('SELECT key FROM media_deletions ORDER BY created_at LIMIT $1', [opts.limit]);
  return rows.map((r) => r.key);
}

export async function forgetMediaDeletions(q: Queryable, keys: string[]): Promise<void> {
  if (keys.length) await q.query('DELETE FROM media_deletions WHERE key = ANY($1)', [keys]);
}
