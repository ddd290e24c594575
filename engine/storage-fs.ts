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
  /**
   * Run `write` (which creates `dest`) after making its folder. A concurrent
   * remove() of another key may rmdir the folder while it is still empty: on
   * ENOENT, make it again and retry (a few times; a missing source stays ENOENT).
   */
  const inFolder = async <T>(dest: string, write: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dirname(dest), { recursive: true });
        return await write();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
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
      // Leave no empty folder behind: rmdir removes only an empty one (ENOTEMPTY
      // otherwise). A put() or copy() that made the folder just before, and
      // links into it just after, sees ENOENT and makes it again (inFolder).
      await rmdir(dirname(p)).catch(() => {});
    },
  };
}

