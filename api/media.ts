// /media/<key>: local media (fs storage) with range requests.
//  - `videos/…` (public videos): served to anyone, cacheable forever (keys never change).
//  - `private/videos/…`: served only with a valid, unexpired signature
//    (engine/media-url.ts), with `Cache-Control: private`.
// Anything else — an unsigned, tampered or expired private URL, a missing
// file, a folder, a malformed path — gets the very same 404 (status, body and
// headers), so a response never tells whether a private video exists.
import { stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { verifyMediaKey } from '../engine/media-url.js';
import { IMMUTABLE_CACHE, isPrivateKey, signedCacheControl } from '../engine/storage.js';

export interface MediaOptions {
  mediaDir: string;
  /** From mediaSigningKey(JWT_SECRET): the key fs storage signs private URLs with. */
  signingKey: Buffer;
}

/** Only keys the storage layer writes (MP4, JPEG poster, WebP preview; the type follows the extension): no folders, dot files or other names. */
const KEY = /^(?:private\/)?videos\/[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_-]{1,64}\.(?:mp4|jpg|webp)$/;

const NOT_FOUND = JSON.stringify({ error: { code: 'not_found', message: 'no such file' } });

function notFound(reply: FastifyReply) {
  return reply
    .code(404)
    .header('cache-control', 'no-store')
    .header('content-type', 'application/json; charset=utf-8')
    .send(NOT_FOUND);
}

/** Register with `{ prefix: '/media' }`. */
export async function mediaRoutes(app: FastifyInstance, opts: MediaOptions) {
  const root = resolve(opts.mediaDir);
  // reply.sendFile only; this plugin's route decides what may be served.
  await app.register(fastifyStatic, { root, serve: false, decorateReply: true, index: false, dotfiles: 'deny' });
  // Paths under /media that match no route, and a file that vanishes mid-request, answer the same 404.
  app.setNotFoundHandler((_req, reply) => notFound(reply));

  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    const key = (req.params as { '*': string })['*'];
    if (!KEY.test(key)) return notFound(reply);
    let cacheControl = IMMUTABLE_CACHE;
    if (isPrivateKey(key)) {
      const { exp, sig } = req.query as Record<string, unknown>;
      if (!verifyMediaKey(opts.signingKey, key, exp, sig)) return notFound(reply);
      cacheControl = signedCacheControl(Number(exp) - Date.now() / 1000);
    }
    const path = resolve(root, key);
    if (!path.startsWith(root + sep)) return notFound(reply);
    const isFile = await stat(path).then((s) => s.isFile(), () => false);
    if (!isFile) return notFound(reply);
    reply.header('cache-control', cacheControl);
    return reply.sendFile(key, root, { cacheControl: false });
  });
}
