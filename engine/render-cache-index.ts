// The render cache's index in Redis, so workers (which hold no database
// connection) can find an earlier render of the same thing. Keys, in the
// `{vgen}` hash tag's slot:
//   {vgen}:<queue>:render-cache:<scope>:<cache key>   JSON CacheEntry, expiring
// The settler writes an entry when a render (not itself a hit) settles and
// drops one that proved stale; workers only read. An entry is a hint, never
// the truth: the settler checks every hit against the source video's row
// before settling a video with it (api/render-cache-settle.ts).
import type { Redis } from 'ioredis';
import { QUEUE_PREFIX } from './queue.js';
import { CACHE_ENTRY_TTL_SECONDS, parseCacheEntry, type CacheEntry, type CacheScope } from './render-cache.js';

export const cacheEntryKey = (queueName: string, scope: CacheScope, key: string) =>
  `${QUEUE_PREFIX}:${queueName}:render-cache:${scope}:${key}`;

/** The first entry found for `key`, trying `scopes` in order. */
export async function lookupRenderCache(
  redis: Redis,
  queueName: string,
  key: string,
  scopes: readonly CacheScope[],
): Promise<{ scope: CacheScope; entry: CacheEntry } | null> {
  if (!scopes.length) return null;
  const values = await redis.mget(...scopes.map((s) => cacheEntryKey(queueName, s, key)));
  for (let i = 0; i < scopes.length; i++) {
    const entry = parseCacheEntry(values[i] ?? null);
    if (entry) return { scope: scopes[i]!, entry };
  }
  return null;
}

/** Record (or replace) the entry for `key` in `scope`. */
export async function recordRenderCache(redis: Redis, queueName: string, scope: CacheScope, key: string, entry: CacheEntry): Promise<void> {
  await redis.set(cacheEntryKey(queueName, scope, key), JSON.stringify(entry), 'EX', CACHE_ENTRY_TTL_SECONDS);
}

// Delete only if the entry still names that source: a newer, valid entry for
// the same key (recorded by another render meanwhile) survives.
const DROP_IF_SOURCE = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if (not ok) or type(e) ~= 'table' or e.videoId == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Drop the entry for `key` in `scope` if it still points at `videoId` (or is unreadable). Returns whether it was dropped. */
export async function dropRenderCacheEntry(redis: Redis, queueName: string, scope: CacheScope, key: string, videoId: string): Promise<boolean> {
  return Number(await redis.eval(DROP_IF_SOURCE, 1, cacheEntryKey(queueName, scope, key), videoId)) === 1;
}
