// The API role: open every dependency, build the app, start the settler, listen.
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { ConfigError, type Config } from '../engine/config.js';
import { openDb, type Db } from '../engine/db.js';
import { createLogger, type Logger } from '../engine/log.js';
import { createApiMetrics } from '../engine/metrics.js';
import type { OutboundOptions } from '../engine/outbound.js';
import { warnIfOutboundAllowed } from '../engine/outbound-policy.js';
import { startProcessBeacon } from '../engine/process-registry.js';
import { registerQueueMetrics } from '../engine/queue-metrics.js';
import { renderQueue } from '../engine/queue.js';
import { checkEvictionPolicy, connectRedis, whenReady } from '../engine/redis.js';
import { createStorage } from '../engine/storage.js';
import { buildApp } from './app.js';
import { startMaintenance } from './maintenance.js';
import { startQueueMetricsLease } from './queue-metrics-lease.js';
import { startSettler } from './settler.js';
import { videoPresenter } from './video-present.js';
import { startWebhooks, webhookQueue, type Webhooks } from './webhook-delivery.js';

export interface RunningApi {
  app: FastifyInstance;
  db: Db;
  url: string;
  log: Logger;
  settler: ReturnType<typeof startSettler>;
  maintenance: ReturnType<typeof startMaintenance>;
  webhooks: Webhooks;
  /** Where Prometheus scrapes this replica (advertised host, bound port). */
  metricsUrl: string;
  close(): Promise<void>;
}

/** settle* options tune the reconciler (tests shorten them; production keeps the defaults). */
export async function startApi(
  config: Config,
  opts: {
    log?: Logger; settleIntervalMs?: number; settleStaleSeconds?: number; settleParkedGraceSeconds?: number;
    /** Collect Node's process metrics (default true). */
    defaultMetrics?: boolean;
    /** Tests: a DNS resolver and a CA for callbackUrls on a local https server (OUTBOUND_ALLOW still decides what is admitted). */
    outbound?: Pick<OutboundOptions, 'resolve' | 'ca'>;
    /** Tests: per-attempt webhook timeout (default 10 s) and the outbox sweep's grace (default 10 s). */
    webhookTimeoutMs?: number;
    webhookOutboxGraceSeconds?: number;
  } = {},
): Promise<RunningApi> {
  if (!config.jwtSecret) throw new ConfigError('JWT_SECRET', 'is required for the API (at least 32 random characters)');
  const log = opts.log ?? createLogger(config.logLevel, { role: 'api' });
  warnIfOutboundAllowed(config.outboundAllow, log);
  const outbound: OutboundOptions = { ...opts.outbound, policy: config.outboundAllow };
  const db = await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const redis = connectRedis(config.redisUrl, 'producer');
  const queue = renderQueue(config.queueName, redis, config.renderAttempts);
  queue.on('error', (err) => log.debug({ err: err.message }, 'render queue connection error'));
  void whenReady(redis).then(() => checkEvictionPolicy(redis, log), () => log.warn('Redis is not reachable yet; submits answer 503 until it is'));
  const metrics = createApiMetrics({ defaultMetrics: opts.defaultMetrics });
  // The queue's metrics, on one replica per cluster, and only while no autoscaler leader exports them.
  const queueMetricsLease = startQueueMetricsLease(redis, config.queueName);
  registerQueueMetrics({ registry: metrics.registry, redis, queue, isExporter: queueMetricsLease.isExporter, yieldToKey: queueMetricsLease.yieldToKey });
  // Without PUBLIC_URL, media URLs use the address the API really listens on
  // (PORT=0 picks a free port at listen time).
  let listenUrl = config.publicUrl;
  const storage = createStorage(config, () => (config.publicUrlSet ? config.publicUrl : listenUrl));
  if (storage.driver === 'fs') mkdirSync(config.storage.mediaDir, { recursive: true });
  // Webhooks: their own queue on the producer connection, delivered from this process (api/webhook-delivery.ts).
  const hooksQueue = webhookQueue(config.queueName, redis, config.webhooks.backoffMs);
  hooksQueue.on('error', (err) => log.debug({ err: err.message }, 'webhook queue connection error'));
  const webhooks = startWebhooks({
    db, queue: hooksQueue, producer: redis, log, outbound,
    connection: { url: config.redisUrl, maxRetriesPerRequest: null },
    present: videoPresenter({ queue, storage, mediaUrlTtlSeconds: config.storage.mediaUrlTtlSeconds }),
    timeoutMs: opts.webhookTimeoutMs,
    outboxGraceSeconds: opts.webhookOutboxGraceSeconds,
    metrics,
  });
  const app = await buildApp({ config, db, redis, queue, storage, metrics, log, outbound, webhooks });
  const settler = startSettler({
    db, queue, log, metrics, producer: redis,
    // QueueEvents blocks on XREAD, so it needs its own connection that may wait.
    connection: { url: config.redisUrl, maxRetriesPerRequest: null },
    intervalMs: opts.settleIntervalMs,
    staleSeconds: opts.settleStaleSeconds,
    parkedGraceSeconds: opts.settleParkedGraceSeconds,
    storage,
    renderCache: config.renderCache,
    webhooks,
  });
  const maintenance = startMaintenance({ db, storage, log, webhooks });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  listenUrl = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  // Listed by GET /v1/ops/prometheus-targets.
  const beacon = startProcessBeacon(redis, { queueName: config.queueName, role: 'api', metricsUrl: `http://${config.metricsAdvertiseHost}:${port}/metrics`, log });
  log.info({ port, db: db.kind, storage: storage.driver, queue: config.queueName }, 'api listening');
  return {
    app, db, log, settler, maintenance, webhooks,
    url: listenUrl,
    metricsUrl: `http://${config.metricsAdvertiseHost}:${port}/metrics`,
    async close() {
      await beacon.stop();
      await queueMetricsLease.stop();
      await app.close();
      await maintenance.close();
      await settler.close();
      await webhooks.close();
      redis.disconnect();
      await Promise.race([queue.close(), sleep(2_000)]);
      await Promise.race([hooksQueue.close(), sleep(2_000)]);
      await db.close();
    },
  };
}
