// The API role: open every dependency, build the app, start the settler, listen.
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { ConfigError, type Config } from '../engine/config.js';
import { openDb, type Db } from '../engine/db.js';
import { createLogger, type Logger } from '../engine/log.js';
import { createMetrics } from '../engine/metrics.js';
import { renderQueue } from '../engine/queue.js';
import { checkEvictionPolicy, connectRedis, whenReady } from '../engine/redis.js';
import { createStorage } from '../engine/storage.js';
import { buildApp } from './app.js';
import { startMaintenance } from './maintenance.js';
import { startSettler } from './settler.js';

export interface RunningApi {
  app: FastifyInstance;
  db: Db;
  url: string;
  log: Logger;
  settler: ReturnType<typeof startSettler>;
  maintenance: ReturnType<typeof startMaintenance>;
  close(): Promise<void>;
}

/** settle* options tune the reconciler (tests shorten them; production keeps the defaults). */
export async function startApi(
  config: Config,
  opts: { log?: Logger; settleIntervalMs?: number; settleStaleSeconds?: number; settleParkedGraceSeconds?: number } = {},
): Promise<RunningApi> {
  if (!config.jwtSecret) throw new ConfigError('JWT_SECRET', 'is required for the API (at least 32 random characters)');
  const log = opts.log ?? createLogger(config.logLevel, { role: 'api' });
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const redis = connectRedis(config.redisUrl, 'producer');
  const queue = renderQueue(config.queueName, redis, config.renderAttempts);
  queue.on('error', (err) => log.debug({ err: err.message }, 'render queue connection error'));
  void whenReady(redis).then(() => checkEvictionPolicy(redis, log), () => log.warn('Redis is not reachable yet; submits answer 503 until it is'));
  const metrics = createMetrics('api');
  // Without PUBLIC_URL, media URLs use the address the API really listens on
  // (PORT=0 picks a free port at listen time).
  let listenUrl = config.publicUrl;
  const storage = createStorage(config, () => (config.publicUrlSet ? config.publicUrl : listenUrl));
  if (storage.driver === 'fs') mkdirSync(config.storage.mediaDir, { recursive: true });
  const app = await buildApp({ config, db, redis, queue, storage, metrics, log });
  const settler = startSettler({
    db, queue, log, metrics, producer: redis,
    // QueueEvents blocks on XREAD, so it needs its own connection that may wait.
    connection: { url: config.redisUrl, maxRetriesPerRequest: null },
    intervalMs: opts.settleIntervalMs,
    staleSeconds: opts.settleStaleSeconds,
    parkedGraceSeconds: opts.settleParkedGraceSeconds,
    storage,
  });
  const maintenance = startMaintenance({ db, storage, log });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  listenUrl = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  log.info({ port, db: db.kind, storage: storage.driver, queue: config.queueName }, 'api listening');
  return {
    app, db, log, settler, maintenance,
    url: listenUrl,
    async close() {
      await app.close();
      await maintenance.close();
      await settler.close();
      redis.disconnect();
      await Promise.race([queue.close(), sleep(2_000)]);
      await db.close();
    },
  };
}
