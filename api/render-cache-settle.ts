// The settler's side of the render cache (engine/render-cache.ts).
//
// A worker's cache hit is only a claim read from Redis: "video S already
// rendered this; here are its keys". Before any row points at those files, the
// settle transaction checks the claim against the database, with this video's
// row locked FOR UPDATE and the source's FOR SHARE (so the source cannot move
// its files until this transaction ends):
//   - the source row is succeeded and still points at exactly those keys
//     (its preview's too: none, or the same one),
//   - this video may see them: same owner, or a public source whose files are
//     at public keys (a private render is never shared across users),
//   - its spec is the same (canonical form), and
//   - no key is pending deletion (api/media-refs.ts).
// Then this video settles succeeded with `cached = true`: on the shared keys
// when the source is the same user's (and, if its visibility wants the other
// prefix, copies of its own, as any settle); on server-side copies of its own
// when the source is another user's public render, so that user making theirs
// private retracts its public URL, as the PATCH promises. If the check fails the video must still end with a real render:
// the stale entry is dropped and the job goes back to the queue flagged
// `noCache` (Job.retry on the completed job), the row staying unsettled. A
// result that arrives for a job already flagged is old news and is ignored,
// so replicas and the reconciler racing on one result requeue it once.
//
// A fresh render (not a hit) that settles is recorded in the index: scope
// `public` if the video is public with public keys, else its owner's.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { canonicalJson } from '../engine/canonical-json.js';
import type { Db, Queryable } from '../engine/db.js';
import type { Logger } from '../engine/log.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { dropRenderCacheEntry, recordRenderCache } from '../engine/render-cache-index.js';
import { isCacheKey, recordScope, type CacheScope } from '../engine/render-cache.js';
import { isPrivateKey, movedKey, newRenderId, type Storage } from '../engine/storage.js';
import { pendingDeletion } from './media-refs.js';
import { commitVideoMedia, purgeVideoMedia } from './media-sync.js';
import { getVideo, lockVideo, settleSucceeded, type VideoRow } from './video-store.js';

export interface RenderCacheSettleDeps {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  /** The API's producer connection (index writes). */
  redis: Redis;
  storage?: Storage;
  log: Logger;
  /** RENDER_CACHE: off stops recording new entries; hits that arrive are still checked and settled. */
  record: boolean;
}

const SCOPE = /^(public|user:[A-Za-z0-9_-]{1,64})$/;

/**
 * In the caller's transaction, with `video` locked: the source row of a cache
 * hit if the hit may be used (the rules above), else null. Locks the source FOR SHARE.
 */
export async function verifiedSource(q: Queryable, video: VideoRow, result: RenderResult): Promise<VideoRow | null> {
  const sourceId = result.sourceVideoId;
  if (typeof sourceId !== 'string' || sourceId === video.id) return null;
  const [source] = await q.query<VideoRow>('SELECT * FROM videos WHERE id = $1 FOR SHARE', [sourceId]);
  if (!source || source.status !== 'succeeded' || !source.video_key || !source.poster_key) return null;
  if (source.video_key !== result.videoKey || source.poster_key !== result.posterKey) return null;
  if ((source.preview_key ?? undefined) !== result.previewKey) return null;
  const publicFiles = sourceKeys(source).every((k) => !isPrivateKey(k));
  if (source.user_id !== video.user_id && !(source.visibility === 'public' && publicFiles)) return null;
  if (canonicalJson(source.spec) !== canonicalJson(video.spec)) return null;
  // Belt and braces: the spec is part of the cache key, so a spec with a preview never finds an entry without one.
  if (video.spec.output.preview && !source.preview_key) return null;
  if (await pendingDeletion(q, sourceKeys(source))) return null;
  return source;
}

/** A settled row's files: the MP4, the poster and the preview if it has one. */
const sourceKeys = (row: VideoRow): string[] => [row.video_key!, row.poster_key!, ...(row.preview_key ? [row.preview_key] : [])];

/**
 * Settle a video from a cache hit, or send its job back to render for real.
 * Returns true when this call moved the row to succeeded.
 */
export async function settleCachedResult(deps: RenderCacheSettleDeps, id: string, result: RenderResult): Promise<boolean> {
  const { db, storage, log } = deps;
  let moved = false;
  const copied: string[] = [];
  const change = async (q: Queryable, row: VideoRow): Promise<VideoRow> => {
    moved = false;
    if (row.status !== 'queued' && row.status !== 'rendering') return row; // settled or canceled: nothing to do, and the files are not ours
    const source = await verifiedSource(q, row, result);
    if (!source) {
      // Under this row's lock, so two settlers handling the same result requeue once.
      await renderForReal(deps, row, result);
      return row;
    }
    // Another user's public render is copied to keys of this video's own, not
    // shared: otherwise, once its owner made it private, its old public URL
    // would keep serving for as long as this video lives. A user's own renders
    // are shared (the files stay public only while one of their videos is).
    const keys = source.user_id === row.user_id || !storage
      ? { videoKey: source.video_key!, posterKey: source.poster_key!, ...(source.preview_key && { previewKey: source.preview_key }) }
      : await ownCopies(storage, row, sourceKeys(source), copied);
    const settled = await settleSucceeded(q, row.id, {
      ...keys,
      durationMs: source.duration_ms ?? result.durationMs, width: source.width ?? result.width, height: source.height ?? result.height,
      bytes: result.bytes, cached: true,
    });
    moved = settled !== null;
    return settled ?? row;
  };
  const withoutPlacement = () => db.tx(async (q) => {
    const row = await lockVideo(q, id);
    if (row) await change(q, row);
  });
  if (!storage) {
    await withoutPlacement();
    return moved;
  }
  const dropCopies = () => Promise.all(copied.splice(0).map((k) => storage.remove(k).catch(() => {})));
  try {
    await commitVideoMedia(db, storage, id, change);
  } catch (err) {
    await dropCopies(); // nothing committed references them
    // The copy to this video's own keys failed (or the requeue did): settle on
    // the shared keys, checked the same way; maintenance moves them later.
    log.warn({ err, videoId: id }, 'settler: settling a cache hit with its files placed failed; retrying without moving them');
    try {
      await withoutPlacement();
    } catch (retryErr) {
      await dropCopies();
      throw retryErr; // the reconciler settles it later
    }
    return moved;
  }
  if (moved) {
    await purgeVideoMedia(db, storage, id)
      .catch((err) => log.warn({ err, videoId: id }, 'settler: deleting a cached video\'s replaced keys failed; maintenance will retry'));
  }
  return moved;
}

/** Copies of another user's files under new keys of this video (prefix per its visibility); `copied` lists them for cleanup. */
async function ownCopies(storage: Storage, row: VideoRow, from: string[], copied: string[]): Promise<{ videoKey: string; posterKey: string; previewKey?: string }> {
  const renderId = newRenderId();
  const to = from.map((k) => movedKey(k, row.visibility, renderId, row.id));
  for (let i = 0; i < from.length; i++) {
    await storage.copy(from[i]!, to[i]!);
    copied.push(to[i]!);
  }
  const [videoKey, posterKey, previewKey] = to as [string, string, string | undefined];
  return { videoKey, posterKey, ...(previewKey && { previewKey }) };
}

/** Drop the stale entry and put the job back in the queue to render without the cache. */
async function renderForReal(deps: RenderCacheSettleDeps, row: VideoRow, result: RenderResult): Promise<void> {
  const { queue, redis, log } = deps;
  const job = await queue.getJob(row.id);
  // Already sent back (this result is old news), or the job holds another result by now.
  if (job && (job.data.noCache || !job.returnvalue?.cached)) return;
  if (isCacheKey(result.cacheKey) && typeof result.cacheScope === 'string' && SCOPE.test(result.cacheScope) && result.sourceVideoId)
    await dropRenderCacheEntry(redis, queue.name, result.cacheScope as CacheScope, result.cacheKey, result.sourceVideoId);
  log.info({ videoId: row.id, sourceVideoId: result.sourceVideoId }, 'settler: a render-cache hit was stale; rendering the video for real');
  if (!job) {
    // Gone from Redis (finished jobs are kept a day): a new job under the same id.
    await queue.add('render', { videoId: row.id, spec: row.spec, visibility: row.visibility, userId: row.user_id, noCache: true }, { jobId: row.id });
    return;
  }
  await job.updateData({ ...job.data, noCache: true });
  // Completed → waiting, keeping its priority; a fresh set of attempts for the real render.
  await job.retry('completed', { resetAttemptsMade: true, resetAttemptsStarted: true });
}

/** After a fresh render settled: record it in the index so the next identical render reuses it. */
export async function recordSettledRender(deps: RenderCacheSettleDeps, id: string, result: RenderResult): Promise<void> {
  if (!deps.record || result.cached || !isCacheKey(result.cacheKey)) return;
  const row = await getVideo(deps.db, id);
  if (!row || row.status !== 'succeeded' || row.cached || !row.video_key || !row.poster_key) return;
  await recordRenderCache(deps.redis, deps.queue.name, recordScope({ ...row, video_key: row.video_key, poster_key: row.poster_key }), result.cacheKey, {
    videoId: row.id, videoKey: row.video_key, posterKey: row.poster_key, ...(row.preview_key && { previewKey: row.preview_key }),
    durationMs: row.duration_ms ?? result.durationMs, width: row.width ?? result.width, height: row.height ?? result.height, bytes: result.bytes,
  });
}
