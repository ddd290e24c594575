// Where rendered files go. Keys are immutable: a re-render, or a visibility
// change, writes a new key, so the content behind a URL never changes and a
// CDN may cache it forever. Public outputs live under `videos/`, private ones
// under `private/videos/`. Workers always write under `private/`; the API
// copies a video's files to `videos/` at settle only if it is public then
// (api/settler.ts). The CDN (or /media without a signature) serves only
// the public prefix, and a private file is reachable only through a
// short-lived signed URL. (A CDN edge may still hold a copy of a file made
// private after it was public, until its TTL ends: docs/operations.md.)
// Callers' own files (direct uploads, engine/uploads.ts) live under
// `uploads/<userId>/<id>`, are written by the caller through presignPost(),
// and are read only by workers (download()): never served by URL.
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import { mediaSigningKey } from './media-url.js';
import { fsStorage } from './storage-fs.js';
import { s3Storage } from './storage-s3.js';
import { uploadSigningKey } from './upload-token.js';

export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';
/** Stored on private objects, so no shared cache keeps one even if it were reached by mistake. */
export const PRIVATE_CACHE = 'private, no-cache';
/** Cache-Control of a response to a signed URL: the browser may keep it until the URL expires. */
export const signedCacheControl = (ttlSeconds: number) => `private, max-age=${Math.max(0, Math.floor(ttlSeconds))}`;

export type KeyVisibility = 'public' | 'private';
export const PRIVATE_PREFIX = 'private/';
export const isPrivateKey = (key: string) => key.startsWith(PRIVATE_PREFIX);
export const cacheControlFor = (key: string) => (isPrivateKey(key) ? PRIVATE_CACHE : IMMUTABLE_CACHE);

export interface Storage {
  readonly driver: 'fs' | 's3';
  /** Store a local file under key; fails if the key exists. Returns its size. */
  put(key: string, filePath: string, contentType: string): Promise<{ bytes: number }>;
  /** The absolute public URL of a key (meaningful for public keys only). */
  url(key: string): string;
  /** A URL that serves the key without credentials until it expires, answered with `Cache-Control: private`. */
  signedUrl(key: string, ttlSeconds: number): Promise<string>;
  /** Copy an object to a new, never used key; its cache policy follows the new key's prefix. */
  copy(from: string, to: string): Promise<void>;
  /** Delete a key; a missing key is not an error. */
  remove(key: string): Promise<void>;
  /** Size (and stored content type, where the store keeps one) of a key, or undefined if it does not exist. */
  head(key: string, signal?: AbortSignal): Promise<{ bytes: number; contentType?: string } | undefined>;
  /**
   * Stream a key to a local file, refusing it past maxBytes while streaming
   * (StoredObjectError 'too_large'); a missing key is StoredObjectError 'missing'.
   */
  download(key: string, dest: string, maxBytes: number, signal?: AbortSignal): Promise<{ bytes: number }>;
  /**
   * A form POST a client sends straight to the store (S3 presigned POST, or
   * the API's signed /uploads/<token> with fs) that can only create `key`,
   * with exactly `contentType`, of 1…maxBytes bytes, until `expiresAt`.
   */
  presignPost(key: string, opts: { contentType: string; maxBytes: number; ttlSeconds: number }): Promise<PresignedPost>;
}

export interface PresignedPost {
  url: string;
  /** Form fields to send, in this order, before the file part (named `file`). */
  fields: Record<string, string>;
  expiresAt: Date;
}

/** Why a stored object could not be read or written: gone, larger than allowed, or empty. */
export class StoredObjectError extends Error {
  constructor(readonly reason: 'missing' | 'too_large' | 'empty', message: string) {
    super(message);
    this.name = 'StoredObjectError';
  }
}

/** publicUrl overrides config.publicUrl (the API passes its real address when PORT=0). */
export function createStorage(config: Config, publicUrl: () => string = () => config.publicUrl): Storage {
  const { storage } = config;
  if (storage.driver === 's3') {
    return s3Storage({ ...storage.s3, publicBaseUrl: storage.cdnBaseUrl! });
  }
  // Workers never sign URLs and may run without JWT_SECRET.
  const signingKey = config.jwtSecret ? mediaSigningKey(config.jwtSecret) : undefined;
  const uploadKey = config.jwtSecret ? uploadSigningKey(config.jwtSecret) : undefined;
  return fsStorage({ dir: storage.mediaDir, publicBaseUrl: () => `${publicUrl()}/media`, signingKey, uploadBaseUrl: () => `${publicUrl()}/uploads`, uploadSigningKey: uploadKey });
}

/**
 * `videos/vid_…/<render id>.mp4`, or under `private/` for a private video: the
 * render id makes every attempt's key new.
 */
/** The extensions of a render's files: the MP4, the JPEG poster, the animated WebP preview. */
export type OutputExt = 'mp4' | 'jpg' | 'webp';

export function outputKey(videoId: string, renderId: string, ext: OutputExt, visibility: KeyVisibility = 'public'): string {
  return `${visibility === 'private' ? PRIVATE_PREFIX : ''}videos/${videoId}/${renderId}.${ext}`;
}

/** A fresh, unguessable name part for keys written when a video changes visibility. */
export const newRenderId = () => `${Date.now().toString(36)}${randomBytes(8).toString('hex')}`;

/**
 * The key a file moves to when its video becomes `visibility`: same video (or
 * `videoId`, for a copy of a file shared with another video) and extension, a
 * new name (keys are never reused), under the matching prefix.
 */
export function movedKey(key: string, visibility: KeyVisibility, renderId: string, videoId?: string): string {
  const m = /^(?:private\/)?videos\/([^/]+)\/[^/]+\.(mp4|jpg|webp)$/.exec(key);
  if (!m) throw new Error(`not an output key: ${key}`);
  return outputKey(videoId ?? m[1]!, renderId, m[2] as OutputExt, visibility);
}
