// Where rendered files go. Keys are immutable: a re-render writes a new key,
// so a CDN can cache every URL forever and never needs an invalidation.
import type { Config } from './config.js';
import { fsStorage } from './storage-fs.js';
import { s3Storage } from './storage-s3.js';

export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

export interface Storage {
  readonly driver: 'fs' | 's3';
  /** Store a local file under key; fails if the key exists. Returns its size. */
  put(key: string, filePath: string, contentType: string): Promise<{ bytes: number }>;
  /** The absolute public URL of a key. */
  url(key: string): string;
}

/** publicUrl overrides config.publicUrl (the API passes its real address when PORT=0). */
export function createStorage(config: Config, publicUrl: () => string = () => config.publicUrl): Storage {
  const { storage } = config;
  if (storage.driver === 's3') {
    return s3Storage({ ...storage.s3, publicBaseUrl: storage.cdnBaseUrl! });
  }
  return fsStorage({ dir: storage.mediaDir, publicBaseUrl: () => `${publicUrl()}/media` });
}

/** `videos/vid_…/<render id>.mp4`: the render id makes every attempt's key new. */
export function outputKey(videoId: string, renderId: string, ext: 'mp4' | 'jpg'): string {
  return `videos/${videoId}/${renderId}.${ext}`;
}
