// Sign-in rate limits: attempts on register and login per client address and
// per email, counted in Redis by @fastify/rate-limit's RedisStore so every API
// process on the same Redis and QUEUE_NAME shares one count.
//
// When Redis does not answer (down, or slower than 500 ms), the count falls
// back to this process's memory (the plugin's LocalStore): sign-in keeps
// working, still limited, just per process until Redis is back. Failing
// closed would lock every user out with Redis; skipping the limit (the
// plugin's skipOnError) would leave a flood unchecked exactly then.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { VgenError } from '../engine/errors.js';
import { whenReady } from '../engine/redis.js';

type Incr = FastifyRateLimitStore['incr'];
type StoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, ...rest: unknown[]) => { incr: Incr };
const require = createRequire(import.meta.url);
const RedisStore = require('@fastify/rate-limit/store/RedisStore') as StoreCtor;
const LocalStore = require('@fastify/rate-limit/store/LocalStore') as StoreCtor;

export interface AuthRateLimits {
  windowSeconds: number;
  perIp: number;
  perAccount: number;
  /** POST /v1/auth/refresh per address (it hashes no password, so its limit is its own). */
  refreshPerIp: number;
}

/** Redis first, this process's memory when Redis fails; the same keys in both. */
function fallbackStore(redis: Redis, prefix: string, log: FastifyBaseLogger) {
  const remote = new RedisStore(false, false, redis, prefix);
  const local = new LocalStore(false, false, 10_000);
  let degraded = false;
  // Until the connection has been up once, a sign-in waits up to 500 ms for it
  // (the first ones may come right after start); that is no outage yet.
  let startupOver = false;
  redis.on('ready', () => (startupOver = true));
  const store: FastifyRateLimitStore = {
    incr(key, cb, timeWindow, max) {
      const useLocal = () => local.incr(key, cb, timeWindow, max);
      if (redis.status !== 'ready') {
        if (!startupOver && ['wait', 'connecting', 'connect'].includes(redis.status)) {
          whenReady(redis, 500).then(() => store.incr(key, cb, timeWindow, max), () => {
            startupOver = true; // waited once; from now on, not ready means down
            store.incr(key, cb, timeWindow, max);
          });
          return;
        }
        if (!degraded) log.warn('rate limits (sign-in, submits) are counted per process: Redis is not reachable');
        degraded = true;
        return useLocal();
      }
      remote.incr(key, (err, res) => {
        if (!err) {
          if (degraded) log.info('rate limits (sign-in, submits) are shared through Redis again');
          degraded = false;
          return cb(null, res);
        }
        if (!degraded) log.warn({ err: err.message }, 'rate limits (sign-in, submits) are counted per process: Redis failed');
        degraded = true;
        useLocal();
      }, timeWindow, max);
    },
    child: () => store,
  };
  return store;
}

const hashed = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 22);

/**
 * Registers the plugin and returns the hooks for the auth routes:
 * `perIp` (onRequest, before the body is read), `perAccount(req, email)`
 * (once the email is known and normalized), and `refreshPerIp` (onRequest
 * on /v1/auth/refresh).
 */
export async function authRateLimits(app: FastifyInstance, opts: {
  redisUrl: string;
  namespace: string;
  limits: AuthRateLimits;
  log: FastifyBaseLogger;
}) {
  // Its own connection: commands time out after 500 ms (then the local count
  // takes over) and fail at once while disconnected (no offline queue). It
  // connects when the server starts listening, so an app built only for its
  // OpenAPI document (scripts/openapi.ts) never dials Redis.
  const redis = new Redis(opts.redisUrl, {
    lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, connectTimeout: 5_000,
  });
  redis.on('error', () => {});
  app.addHook('onListen', async () => void redis.connect().catch(() => {}));
  app.addHook('onClose', async () => void redis.disconnect());

  const store = fallbackStore(redis, `{vgen}:rl:${opts.namespace}:`, opts.log);
  await app.register(fastifyRateLimit, { global: false, store: function Store() { return store; } as never });

  const timeWindow = opts.limits.windowSeconds * 1000;
  // Email hashes, not addresses, become Redis keys.
  const byIp = app.createRateLimit({ max: opts.limits.perIp, timeWindow, keyGenerator: (req) => `ip:${normalizeIP(req.ip)}` });
  const byAccount = app.createRateLimit({
    max: opts.limits.perAccount, timeWindow,
    keyGenerator: (req) => `acct:${hashed((req as FastifyRequest & { rateLimitEmail: string }).rateLimitEmail)}`,
  });

  const refreshByIp = app.createRateLimit({ max: opts.limits.refreshPerIp, timeWindow, keyGenerator: (req) => `refresh-ip:${normalizeIP(req.ip)}` });

  const enforce = (result: Awaited<ReturnType<typeof byIp>>, reply: FastifyReply, what: string) => {
    if (result.isAllowed || !result.isExceeded) return;
    const after = Math.max(1, result.ttlInSeconds);
    reply.header('retry-after', String(after));
    throw new VgenError('rate_limited', `too many ${what}; retry in ${after} s`);
  };

  return {
    perIp: async (req: FastifyRequest, reply: FastifyReply) => enforce(await byIp(req), reply, 'sign-in attempts from this address'),
    perAccount: async (req: FastifyRequest, reply: FastifyReply, email: string) => {
      (req as FastifyRequest & { rateLimitEmail: string }).rateLimitEmail = email.toLowerCase();
      enforce(await byAccount(req), reply, 'sign-in attempts for this email');
    },
    /** onRequest on /v1/auth/refresh: counted before the body is read. */
    refreshPerIp: async (req: FastifyRequest, reply: FastifyReply) => enforce(await refreshByIp(req), reply, 'token refreshes from this address'),
  };
}
