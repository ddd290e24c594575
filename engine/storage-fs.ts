import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, stat, unlink } from 'node:fs/promises';
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
  /** Run `write` (which creates `dest`) after making its folder; folders are never removed (see remove()). */
  const inFolder = async <T>(dest: string, write: () => Promise<T>): Promise<T> => {
    await mkdir(dirname(dest), { recursive: true });
    return write();
  };
  return {
    driver: 'fs',
    async put(key, filePath) {
      const dest = pathOf(key);
      // Copy beside the destination, then hard-link into place: link() fails if
      // the key exists (keys are immutable) and readers never see half a file.
      const tmp = join(dirname(dest), `.${randomBytes(8).toString('hex')}.tmp`);
      await inFolder(dest, () => copyFile(filePath, tmp));
      try {
        await inFolder(dest, () => link(tmp, dest));
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
      const src = pathOf(from);
      const dest = pathOf(to);
      // A hard link: instant, and like put() it fails if the new key exists.
      await inFolder(dest, () => link(src, dest));
    },
    async remove(key) {
      const p = pathOf(key);
      await unlink(p).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      // The video's folder stays, even empty: removing it would race a put()
      // or copy() linking into it between their mkdir and link (concurrent
      // visibility changes do exactly that). /media answers a folder as it
      // answers a missing file, so an empty one tells nobody anything.
    },
  };
}

