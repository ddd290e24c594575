// bull-board at /admin/queues: the render queue's jobs in a browser, for
// operators only. Read-only, because every change to a job must go through the
// routes that keep its video row in step (`vgen queue retry-failed`, cancel,
// clean): a retry, edit, add or obliterate from here would run or drop jobs
// behind the settler's back. A browser cannot send an Authorization header, so
// `/admin/queues?token=<operator token>` checks the token once, puts it in an
// HttpOnly, SameSite=Strict cookie scoped to this path and redirects to the
// same page without it; every request is then checked again (a revoked key
// stops working at once). curl and scripts send the bearer header as usual.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VgenError } from '../engine/errors.js';

export const ADMIN_QUEUES_PATH = '/admin/queues';
export const ADMIN_COOKIE = 'vgen_admin';

/** Characters of a JWT or a vgk_ key: anything else never reaches a Set-Cookie header. */
const TOKEN_SHAPE = /^[A-Za-z0-9._~-]{1,4096}$/;

function cookieToken(header: string | undefined): string | undefined {
  if (!header || header.length > 16_384) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === ADMIN_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return TOKEN_SHAPE.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** The URL's own query without `token`: where the browser goes once the cookie is set. */
function withoutToken(url: string): string {
  const q = url.indexOf('?');
  const path = url.slice(0, q < 0 ? undefined : q);
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  params.delete('token');
  const rest = params.toString();
  return rest ? `${path}?${rest}` : path;
}

export async function adminQueuesRoutes(app: FastifyInstance, deps: { queue: Queue; authenticate: (req: FastifyRequest) => Promise<void> }) {
  // Answered here, not thrown: bull-board's own error handler would turn a 401 into its 500 shape.
  const refuse = (reply: FastifyReply, err: unknown) => {
    const e = err instanceof VgenError ? err : new VgenError('unauthorized', 'token is invalid');
    return reply.status(e.statusCode).header('cache-control', 'no-store').send({ error: e.toJSON() });
  };

  app.addHook('onRequest', async (req, reply) => {
    const query = new URLSearchParams(req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '');
    const fromQuery = query.get('token');
    const fromCookie = cookieToken(req.headers.cookie);
    if (fromQuery !== null) {
      if (!TOKEN_SHAPE.test(fromQuery)) return refuse(reply, new VgenError('unauthorized', 'token is not a vgen token', 'token'));
      req.headers.authorization = `Bearer ${fromQuery}`;
    } else if (!req.headers.authorization && fromCookie) {
      // The cookie stands in for the header app.authenticate reads.
      req.headers.authorization = `Bearer ${fromCookie}`;
    }
    try {
      await deps.authenticate(req);
    } catch (err) {
      return refuse(reply, err);
    }
    if (req.auth?.role !== 'operator') return refuse(reply, new VgenError('forbidden', 'the queue board needs an operator token'));
    reply.header('cache-control', 'no-store');
    if (fromQuery !== null) {
      const secure = req.protocol === 'https' ? '; Secure' : '';
      return reply
        .status(303)
        .header('set-cookie', `${ADMIN_COOKIE}=${fromQuery}; Path=${ADMIN_QUEUES_PATH}; HttpOnly; SameSite=Strict${secure}`)
        .header('referrer-policy', 'no-referrer')
        .header('location', withoutToken(req.url))
        .send();
    }
  });

  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(deps.queue, { readOnlyMode: true })],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'vgen queues' } },
  });
  await app.register(serverAdapter.registerPlugin());
}
