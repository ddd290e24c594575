// The worker's side of the render cache: once a job's assets are on disk, hash
// their bytes, compute the cache key (engine/render-cache.ts) and look for an
// earlier render of the same thing that this job's owner may reuse. A hit is
// returned as the job's result (the source's keys, `cached: true`) without
// running ffmpeg or uploading; the settler checks it against the database
// before any video points at those files (api/render-cache-settle.ts).
//
// The cache is an optimization only: a hash or lookup that fails, or takes
// longer than LOOKUP_TIMEOUT_MS, is a miss and the job renders as usual.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Redis } from 'ioredis';
import type { Logger } from '../engine/log.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { lookupRenderCache } from '../engine/render-cache-index.js';
import { lookupScopes, renderCacheKey } from '../engine/render-cache.js';
import { assetsOf, type RenderSpec } from '../engine/spec.js';
import type { LocalAsset } from './assets.js';

const LOOKUP_TIMEOUT_MS = 2_000;

export interface RenderCacheOptions {
  redis: Redis;
  queueName: string;
  /** X264_PRESET */
  preset: string;
  /** The caption font file (its name goes into the key). */
  fontFile: string;
  log: Logger;
  /** vgen_render_cache_lookups_total */
  lookups?: { inc(labels: { result: 'hit' | 'miss' }): void };
}

/** SHA-256 (hex) of each asset's bytes, in assetsOf(spec) order: the files ffmpeg would read. */
export async function digestAssets(spec: RenderSpec, assets: ReadonlyMap<string, LocalAsset>, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for (const ref of assetsOf(spec)) {
    const asset = assets.get(ref);
    if (!asset) throw new Error(`asset ${ref} was not fetched`);
    const hash = createHash('sha256');
    await pipeline(createReadStream(asset.path), hash, { signal });
    out.push(hash.digest('hex'));
  }
  return out;
}

/**
 * The job's cache key and, unless the job must render for real (`noCache`, set
 * by the settler after a stale hit), a hit it may use. `key` is undefined when
 * hashing failed: the render then records nothing.
 */
export async function findCachedRender(
  opts: RenderCacheOptions,
  data: RenderJobData,
  spec: RenderSpec,
  assets: ReadonlyMap<string, LocalAsset>,
  signal?: AbortSignal,
): Promise<{ key?: string; hit?: RenderResult }> {
  let key: string;
  try {
    key = renderCacheKey(spec, await digestAssets(spec, assets, signal), { preset: opts.preset, font: basename(opts.fontFile) });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    opts.log.warn({ err }, 'render cache: hashing the assets failed; rendering without the cache');
    return {};
  }
  if (data.noCache) return { key };
  let timer: NodeJS.Timeout | undefined;
  try {
    const found = await Promise.race([
      lookupRenderCache(opts.redis, opts.queueName, key, lookupScopes(data.userId)),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`lookup took over ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS); }),
    ]);
    // A video is never its own source (an operator's retry of a job that once hit).
    if (!found || found.entry.videoId === data.videoId) {
      opts.lookups?.inc({ result: 'miss' });
      return { key };
    }
    opts.lookups?.inc({ result: 'hit' });
    const { entry, scope } = found;
    return {
      key,
      hit: {
        videoKey: entry.videoKey, posterKey: entry.posterKey, ...(entry.previewKey && { previewKey: entry.previewKey }), durationMs: entry.durationMs,
        width: entry.width, height: entry.height, bytes: entry.bytes,
        cacheKey: key, cached: true, sourceVideoId: entry.videoId, cacheScope: scope,
      },
    };
  } catch (err) {
    opts.log.warn({ err }, 'render cache: lookup failed; rendering');
    opts.lookups?.inc({ result: 'miss' });
    return { key };
  } finally {
    clearTimeout(timer);
  }
}
