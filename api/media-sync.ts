// Keeps a video's files under the prefix its visibility asks for: public ones
// under `videos/` (served by the CDN / unsigned /media), private ones under
// `private/videos/` (signed URLs only). A visibility change copies the files to
// NEW keys under the other prefix (keys are never reused, so a cached URL never
// changes meaning), points the row at them and deletes the old objects.
//
// Workers always upload under `private/`; the settler places a render's files
// with commitVideoMedia in the same transaction that marks it succeeded.
//
// Every move holds the row lock (SELECT … FOR UPDATE) from the check to the
// commit, so a PATCH, the settler and the maintenance pass never move the same
// files twice at once. The old keys are written to `media_deletions` in the same
// transaction and deleted once it commits; a deletion that fails is retried by
// the maintenance pass until it succeeds, so no formerly public object is left
// behind at its public key.
//
// Objects may be shared by several rows (render-cache hits point at an earlier
// render's files): a key is deleted only once no row references it, and a
// move locks the keys it lets go of. The rule is in api/media-refs.ts.
import type { Db, Queryable } from '../engine/db.js';
import { isPrivateKey, movedKey, newRenderId, type Storage } from '../engine/storage.js';
import { lockMediaKeys, referencedKeys } from './media-refs.js';
import { forgetMediaDeletions, lockVideo, pendingMediaDeletions, replaceMediaKeys, type VideoRow } from './video-store.js';

/** True when the row's files (MP4, poster, preview if any) are where its visibility wants them (or it has none yet). */
export function mediaPlaced(row: VideoRow): boolean {
  if (!row.video_key || !row.poster_key) return true;
  const wantPrivate = row.visibility === 'private';
  return [row.video_key, row.poster_key, row.preview_key].every((k) => k === null || isPrivateKey(k) === wantPrivate);
}

/**
 * In the caller's transaction, with the row locked: copy misplaced files to new
 * keys, point the row at them and record the old keys for deletion. `copied`
 * collects the new keys, so the caller can remove them if the transaction fails.
 */
async function placeMedia(q: Queryable, storage: Storage, row: VideoRow, copied: string[]): Promise<VideoRow> {
  if (mediaPlaced(row)) return row;
  const renderId = newRenderId();
  const wantPrivate = row.visibility === 'private';
  const from = [row.video_key!, row.poster_key!, ...(row.preview_key ? [row.preview_key] : [])];
  // Named after this row, not the key's video: a shared file (a cache hit) may be another video's.
  const to = from.map((k) => (isPrivateKey(k) === wantPrivate ? k : movedKey(k, row.visibility, renderId, row.id)));
  for (let i = 0; i < from.length; i++) {
    if (to[i] === from[i]) continue;
    await storage.copy(from[i]!, to[i]!);
    copied.push(to[i]!);
  }
  const oldKeys = from.filter((k, i) => to[i] !== k);
  // Held to the commit, so a purge checking these keys runs wholly before or after this move (api/media-refs.ts).
  await lockMediaKeys(q, oldKeys);
  return replaceMediaKeys(q, row.id, { videoKey: to[0]!, posterKey: to[1]!, previewKey: to[2] ?? null }, oldKeys);
}

/**
 * Delete objects a video no longer uses, then forget them. A key another row
 * still references (a shared render) is not deleted, only forgotten: the last
 * row to let go of it records it again (api/media-refs.ts). Throws if an
 * object could not be deleted.
 */
export async function purgeMedia(db: Db, storage: Storage, keys: string[]): Promise<void> {
  if (!keys.length) return;
  await Promise.all([...new Set(keys)].map(async (key) => {
    const inUse = await db.tx(async (q) => {
      await lockMediaKeys(q, [key]);
      if (!(await referencedKeys(q, [key])).has(key)) return false;
      await forgetMediaDeletions(q, [key]);
      return true;
    });
    if (inUse) return;
    await storage.remove(key);
    await forgetMediaDeletions(db, [key]);
  }));
}

/**
 * Lock the video's row, apply `change` to it (a new visibility, or settling a
 * render; it may throw to roll back), move its files if they are now
 * misplaced, and commit. Does not delete the old files: the caller purges them
 * (placeVideoMedia does). Returns null when there is no such row.
 */
export async function commitVideoMedia(
  db: Db,
  storage: Storage,
  id: string,
  change?: (q: Queryable, row: VideoRow) => Promise<VideoRow>,
): Promise<VideoRow | null> {
  const copied: string[] = [];
  try {
    return await db.tx(async (q) => {
      let row = await lockVideo(q, id);
      if (!row) return null;
      if (change) row = await change(q, row);
      return placeMedia(q, storage, row, copied);
    });
  } catch (err) {
    // Nothing committed: the copies are unreferenced.
    await Promise.all(copied.map((k) => storage.remove(k).catch(() => {})));
    throw err;
  }
}

/** Delete a video's old files (this move's, and any an earlier failed attempt left). Throws if one could not be deleted. */
export async function purgeVideoMedia(db: Db, storage: Storage, id: string): Promise<void> {
  await purgeMedia(db, storage, await pendingMediaDeletions(db, { videoId: id, limit: 100 }));
}

/**
 * commitVideoMedia, then delete the video's old files. Resolves once they are
 * gone; rejects if any step failed (before the commit nothing changed; after
 * it, a retry or the maintenance pass finishes the deletion). Returns null
 * when there is no such row.
 */
export async function placeVideoMedia(
  db: Db,
  storage: Storage,
  id: string,
  change?: (q: Queryable, row: VideoRow) => Promise<VideoRow>,
): Promise<VideoRow | null> {
  const result = await commitVideoMedia(db, storage, id, change);
  if (!result) return null;
  await purgeVideoMedia(db, storage, id);
  return result;
}
