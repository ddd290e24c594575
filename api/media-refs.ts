// Storage objects shared by several videos. A render-cache hit settles a video
// pointing at the very files of an earlier render (no copy), so "the video
// moved away from this key" no longer means "nobody uses this key".
//
// The rule that keeps a referenced object from being deleted:
//  1. An object is deleted only by purgeMedia (api/media-sync.ts), and only
//     after a check, under the key's lock (below), that no videos row
//     references it (video_key, poster_key or preview_key). A key still referenced has its
//     media_deletions entry forgotten instead: whichever row lets go of it
//     last records it again (2).
//  2. Every transaction that makes a row let go of keys (placeMedia: a
//     visibility change, a settle's copy to public keys, the maintenance move)
//     takes the same per-key locks before updating the row and recording the
//     keys in media_deletions, and holds them to its commit. So a purge's check
//     runs either wholly before that transaction (it then sees the reference
//     and forgets the entry; the transaction records it anew) or wholly after
//     (it sees the row gone from the key, and deletes it).
//  3. A new reference to an existing key is made only by settling a cache hit
//     (api/render-cache-settle.ts), and only while the source row, locked
//     FOR SHARE, still references the key and the key is not pending deletion.
//     So once no row references a key, none ever will again: the purge's
//     check cannot be outdated between the check and the delete.
import type { Queryable } from '../engine/db.js';

/** First key of the two-key advisory lock space for per-storage-key locks (api/quotas.ts uses 7340005). */
const MEDIA_KEY_LOCK_CLASS = 7340007;

/** Lock storage keys for the rest of the caller's transaction, in a fixed order (no deadlock between two such transactions). */
export async function lockMediaKeys(q: Queryable, keys: readonly string[]): Promise<void> {
  for (const key of [...new Set(keys)].sort())
    await q.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MEDIA_KEY_LOCK_CLASS, key]);
}

/** The keys among `keys` some video row still points at (uses videos_video_key / videos_poster_key / videos_preview_key). */
export async function referencedKeys(q: Queryable, keys: readonly string[]): Promise<Set<string>> {
  if (!keys.length) return new Set();
  const rows = await q.query<{ key: string }>(
    `SELECT k AS key FROM unnest($1::text[]) AS k
     WHERE EXISTS (SELECT 1 FROM videos WHERE video_key = k) OR EXISTS (SELECT 1 FROM videos WHERE poster_key = k)
        OR EXISTS (SELECT 1 FROM videos WHERE preview_key = k)`,
    [keys],
  );
  return new Set(rows.map((r) => r.key));
}

/** True when any of `keys` is recorded for deletion. */
export async function pendingDeletion(q: Queryable, keys: readonly string[]): Promise<boolean> {
  if (!keys.length) return false;
  return (await q.query('SELECT 1 FROM media_deletions WHERE key = ANY($1) LIMIT 1', [keys])).length > 0;
}
