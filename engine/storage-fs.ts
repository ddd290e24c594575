import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { signMediaKey } from './media-url.js';
import { StoredObjectError, type Storage } from './storage.js';
import { signUpload } from './upload-token.js';

/**
 * A local folder; the API serves it under /media/ with range requests: public
 * keys to anyone, private keys only with a valid signature (api/media.ts).
 * publicBaseUrl is a function: the API's port may only be known once it listens.
 * signingKey (from mediaSigningKey) is needed only to sign URLs, i.e. in the API;
 * so are uploadBaseUrl and uploadSigningKey (engine/upload-token.ts), for
 * presignPost: the API's /uploads/<token> route (api/upload-receive.ts)
 * receives the file with receiveUpload() below.
 */
export function fsStorage(opts: {
  dir: string;
  publicBaseUrl: () => string;
  signingKey?: Buffer;
  uploadBaseUrl?: () => string;
  uploadSigningKey?: Buffer;
}): Storage {
  const root = resolve(opts.dir);
  const pathOf = (key: string) => keyPath(root, key);
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
    async head(key) {
      // A local file keeps no content type: receiveUpload() checked it on the way in.
      const info = await stat(pathOf(key)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
        throw err;
      });
      return info?.isFile() ? { bytes: info.size } : undefined;
    },
    async download(key, dest, maxBytes, signal) {
      const src = pathOf(key);
      const info = await stat(src).catch(() => undefined);
      if (!info?.isFile()) throw new StoredObjectError('missing', `${key} does not exist`);
      if (info.size > maxBytes) throw new StoredObjectError('too_large', `${key} is larger than ${maxBytes} bytes`);
      // Counted again while copying: the size may change between stat and read.
      await pipeline(createReadStream(src), byteLimit(maxBytes, key), createWriteStream(dest), { signal });
      return { bytes: (await stat(dest)).size };
    },
    async presignPost(key, { contentType, maxBytes, ttlSeconds }) {
      if (!opts.uploadSigningKey || !opts.uploadBaseUrl) throw new Error('signing upload URLs needs JWT_SECRET');
      pathOf(key);
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
      const token = signUpload(opts.uploadSigningKey, { key, contentType, maxBytes, exp });
      // The same form an S3 presigned POST takes: fields first, then `file`.
      return { url: `${opts.uploadBaseUrl()}/${token}`, fields: { key, 'Content-Type': contentType }, expiresAt: new Date(exp * 1000) };
    },
  };
}

function keyPath(root: string, key: string): string {
  const p = resolve(root, key);
  if (!p.startsWith(root + sep)) throw new Error(`storage key escapes the media folder: ${key}`);
  return p;
}

/** Passes bytes through until more than maxBytes have gone by, then fails with StoredObjectError 'too_large'. */
export function byteLimit(maxBytes: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      done(seen > maxBytes ? new StoredObjectError('too_large', `${what} is larger than ${maxBytes} bytes`) : null, chunk);
    },
  });
}

/**
 * Write a stream under `key` in the media folder `dir`, at most maxBytes
 * (counted while streaming: nothing is buffered whole, and the write stops at
 * the first byte over; an empty file is refused too, as S3's
 * content-length-range [1, max] does), then link it into place: like put(), it fails with
 * EEXIST if the key exists (an upload happens once), and nobody ever sees
 * half a file. The partial file is removed on every failure.
 */
export async function receiveUpload(dir: string, key: string, source: Readable, maxBytes: number): Promise<{ bytes: number }> {
  const root = resolve(dir);
  const dest = keyPath(root, key);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${randomBytes(8).toString('hex')}.tmp`);
  try {
    await pipeline(source, byteLimit(maxBytes, 'the file'), createWriteStream(tmp, { flags: 'wx' }));
    if ((await stat(tmp)).size === 0) throw new StoredObjectError('empty', 'the file is empty');
    await link(tmp, dest);
    return { bytes: (await stat(dest)).size };
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

