import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { signMediaKey } from './media-url.js';
import type { Storage } from './storage.js';

/**
 * A local folder; the API serves it under /media/ with range requests: public
 * keys to anyone, private keys only with a valid signature (api/media.ts).
 * publicBaseUrl is a function: the API's port may only be known once it listens.
 * signingKey (from mediaSigningKey) is needed only to sign URLs, i.e. in the API.
 */
export function fsStorage(opts: { dir: string; publicBaseUrl: () => string; signingKey?: Buffer }): Storage {
  const root = resolve(opts.dir);
  const pathOf = (key: string) => {
    const p = resolve(root, key);
    if (!p.startsWith(root + sep)) throw new Error(`storage key escapes the media folder: ${key}`);
    return p;
  };
  return {
    driver: 'fs',
    async put(key, filePath) {
      const dest = pathOf(key);
      await mkdir(dirname(dest), { recursive: true });
      // Copy beside the destination, then hard-link into place: link() fails if
      // the key exists (keys are immutable) and readers never see half a file.
      const tmp = join(dirname(dest), `.${randomBytes(8).toString('hex')}.tmp`);
      await copyFile(filePath, tmp);
      try {
        await link(tmp, dest);
      } finally {
        await unlink(tmp).catch(() => {});
      }
      return { bytes: (await stat(dest)).size };
    },
    url: (key) => `${opts.publicBaseUrl()}/${key}`,
    async signedUrl(key, ttlSeconds) {
      if (!opts.signingKey) throw new Error('signing media URLs needs JWT_SECRET');
      pathOf(key);
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
      return `${opts.publicBaseUrl()}/${key}?${signMediaKey(opts.signingKey, key, exp)}`;
    },
    async copy(from, to) {
      const dest = pathOf(to);
      await mkdir(dirname(dest), { recursive: true });
      // A hard link: instant, and like put() it fails if the new key exists.
      await link(pathOf(from), dest);
    },
    async remove(key) {
      const p = pathOf(key);
      await unlink(p).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      // Leave no empty folder behind (best effort; fails harmlessly while other files remain).
      await rmdir(dirname(p)).catch(() => {});
    },
  };
}

