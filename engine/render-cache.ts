// The render cache's rules, as pure functions: what makes two renders the same
// (the cache key), who may reuse a finished render (its scope), and the shape
// of an index entry. The Redis side is engine/render-cache-index.ts; the
// worker computes keys and looks them up (worker/render-job.ts), the settler
// verifies hits and records entries (api/render-cache-settle.ts).
//
// Two renders are the same when the spec (as stored, keys sorted), the bytes of
// every asset (SHA-256 after download, in assetsOf order) and the renderer
// (RENDER_ENGINE_VERSION, the x264 preset, the caption font) are the same. An
// asset URL whose content changed gives a new key; a renderer change gives new
// keys for everything, so old entries are never read again and expire.
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { assetsOf, type RenderSpec } from './spec.js';
import type { RenderResult } from './queue.js';

/**
 * Bump whenever a change to the render pipeline (worker/ffmpeg.ts, the timeline,
 * the poster) changes the output for the same spec and assets: every earlier
 * cache entry then stops matching.
 */
export const RENDER_ENGINE_VERSION = 2; // 2: the planner (worker/planner/): music at -16 LUFS, poster from the graph

/** Index entries live this long after their render settled; a hit does not extend it. */
export const CACHE_ENTRY_TTL_SECONDS = 30 * 24 * 3600;

/** What besides the spec and the assets decides the output bytes. */
export interface Renderer {
  /** X264_PRESET */
  preset: string;
  /** The caption font file the worker found (worker/ffmpeg.ts findFont). */
  font: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The cache key of a render: SHA-256 (hex) over the canonical form of the
 * engine version, the renderer, the spec and the assets' digests. `assetDigests`
 * are the SHA-256 (hex) of each asset's bytes in assetsOf(spec) order.
 */
export function renderCacheKey(spec: RenderSpec, assetDigests: readonly string[], renderer: Renderer): string {
  const refs = assetsOf(spec);
  if (assetDigests.length !== refs.length) throw new Error(`render cache key: ${refs.length} assets but ${assetDigests.length} digests`);
  for (const d of assetDigests) if (!SHA256_HEX.test(d)) throw new Error(`render cache key: not a SHA-256 digest: ${d}`);
  const text = canonicalJson({
    engine: RENDER_ENGINE_VERSION,
    renderer: { preset: renderer.preset, font: renderer.font },
    spec,
    assets: refs.map((ref, i) => ({ ref, sha256: assetDigests[i] })),
  });
  return createHash('sha256').update(text).digest('hex');
}

export const isCacheKey = (s: unknown): s is string => typeof s === 'string' && SHA256_HEX.test(s);

/**
 * Who may reuse a render: `public` (its files are public, so anyone: another
 * user, or the owner for a private video, whose settle then copies them to
 * private keys), or `user:<id>` (private files: only their owner).
 */
export type CacheScope = 'public' | `user:${string}`;

const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const userScope = (userId: string): CacheScope => {
  if (!USER_ID.test(userId)) throw new Error(`render cache: not a user id: ${userId}`);
  return `user:${userId}`;
};

/** Scopes a job looks up, most specific first: its owner's own renders, then public ones. */
export function lookupScopes(userId: string | undefined): CacheScope[] {
  return userId && USER_ID.test(userId) ? [userScope(userId), 'public'] : ['public'];
}

/**
 * The scope a settled video's render is recorded under: `public` only when the
 * video is public and both files already sit at public keys; otherwise its
 * owner's (a private video, or a public one whose files have not moved yet).
 */
export function recordScope(row: { visibility: 'public' | 'private'; user_id: string; video_key: string; poster_key: string; preview_key?: string | null }): CacheScope {
  const publicKeys = [row.video_key, row.poster_key, row.preview_key].every((k) => !k?.startsWith('private/'));
  return row.visibility === 'public' && publicKeys ? 'public' : userScope(row.user_id);
}

/** One index entry: the source video and what its render result was. */
/** An index entry: the source video and the result fields a hit returns (engine/queue.ts RenderResult). */
export type CacheEntry = { videoId: string } & Pick<RenderResult, 'videoKey' | 'posterKey' | 'previewKey' | 'durationMs' | 'width' | 'height' | 'bytes'>;

/** An entry read back from Redis, or null if it is not one (never trusted blindly: the settler checks the source row). */
export function parseCacheEntry(text: string | null): CacheEntry | null {
  if (!text) return null;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const str = (k: string) => typeof v[k] === 'string' && (v[k] as string).length > 0 && (v[k] as string).length <= 512;
  const num = (k: string) => typeof v[k] === 'number' && Number.isFinite(v[k]) && (v[k] as number) >= 0;
  if (!str('videoId') || !str('videoKey') || !str('posterKey')) return null;
  if (!num('durationMs') || !num('width') || !num('height') || !num('bytes')) return null;
  if (v.previewKey !== undefined && !str('previewKey')) return null;
  return {
    videoId: v.videoId as string, videoKey: v.videoKey as string, posterKey: v.posterKey as string,
    ...(v.previewKey !== undefined && { previewKey: v.previewKey as string }),
    durationMs: v.durationMs as number, width: v.width as number, height: v.height as number, bytes: v.bytes as number,
  };
}
