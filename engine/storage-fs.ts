import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Storage } from './storage.js';

/** A local folder; the API serves it under /media/ with range requests. */
/** publicBaseUrl is a function: the API's port may only be known once it listens. */
export function fsStorage(opts: { dir: string; publicBaseUrl: () => string }): Storage {
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
  };
}

