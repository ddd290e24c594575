// The video object every route, event stream and webhook answers with, made
// from a row: URLs minted per call (a private video's are signed and expire),
// progress read live from the job while it renders. One function, so a
// webhook body is exactly what GET /v1/videos/:id would have answered.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { isPrivateKey, type Storage } from '../engine/storage.js';
import type { VideoBody } from './schemas.js';
import type { VideoRow } from './video-store.js';

export type Present = (row: VideoRow) => Promise<VideoBody>;

export function videoPresenter(deps: { queue: Queue<RenderJobData, RenderResult>; storage: Storage; mediaUrlTtlSeconds?: number }): Present {
  const { queue, storage } = deps;
  const mediaUrlTtl = deps.mediaUrlTtlSeconds ?? 3600;

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

  /**
   * A private video's files (and any file still under the private prefix) are
   * reached only through a signed URL minted now; a public one keeps its
   * immutable CDN or /media URL.
   */
  const mediaUrl = (row: VideoRow, key: string): Promise<string> =>
    row.visibility === 'private' || isPrivateKey(key) ? storage.signedUrl(key, mediaUrlTtl) : Promise.resolve(storage.url(key));

  return async (row) => ({
    id: row.id,
    object: 'video',
    status: row.status,
    progress: await liveProgress(row),
    visibility: row.visibility,
    createdAt: row.created_at.toISOString(),
    output: row.status === 'succeeded' && row.video_key && row.poster_key
      ? {
          url: await mediaUrl(row, row.video_key),
          posterUrl: await mediaUrl(row, row.poster_key),
          previewUrl: row.preview_key ? await mediaUrl(row, row.preview_key) : null,
          durationMs: row.duration_ms!, width: row.width!, height: row.height!,
          cached: row.cached === true,
        }
      : null,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
  });
}
