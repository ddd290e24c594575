// Liveness, readiness and metrics: what load balancers and Prometheus call.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Db } from '../engine/db.js';
import type { Metrics } from '../engine/metrics.js';

export { observeRequests } from './request-metrics.js';

const READY_TIMEOUT_MS = 1_000;

export async function healthRoutes(app: FastifyInstance, deps: { db: Db; redis: Redis; metrics: Metrics }) {
  const hide = { hide: true };

  app.get('/healthz', { schema: { ...hide } }, async () => ({ status: 'ok' }));

  // Each check gets READY_TIMEOUT_MS: a hung Redis accepts a PING and never
  // answers it, and a load balancer must hear `unavailable`, not nothing.
  app.get('/readyz', { schema: { ...hide } }, async (_req, reply) => {
    const check = async (p: Promise<unknown>) => {
      p.catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'down'>((resolve) => (timer = setTimeout(resolve, READY_TIMEOUT_MS, 'down')));
      return Promise.race([p.then(() => 'ok' as const, () => 'down' as const), late]).finally(() => clearTimeout(timer));
    };
    const [redis, db] = await Promise.all([check(deps.redis.ping()), check(deps.db.ping())]);
    const ready = redis === 'ok' && db === 'ok';
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', redis, db });
  });

  app.get('/metrics', { schema: { ...hide } }, async (_req, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
}
