// Writes docs/openapi.json from the route schemas, without listening and
// without needing Redis: the app is built with real dependencies (PGlite in a
// temp dir, a Redis client that never has to connect) and only asked for its
// OpenAPI document.  Run: npm run openapi
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { buildApp } from '../api/app.js';
import { loadConfig } from '../engine/config.js';
import { openDb } from '../engine/db.js';
import { createLogger } from '../engine/log.js';
import { createMetrics } from '../engine/metrics.js';
import { renderQueue } from '../engine/queue.js';
import { createStorage } from '../engine/storage.js';

const OUT = join(import.meta.dirname, '..', 'docs', 'openapi.json');
const dataDir = mkdtempSync(join(tmpdir(), 'vgen-openapi-'));

// A fixed environment, so the document does not depend on the caller's.
const config = loadConfig({ DATA_DIR: dataDir, JWT_SECRET: randomBytes(32).toString('hex'), STORAGE: 'fs', LOG_LEVEL: 'silent' });
const db = await openDb({ dataDir });
const redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
redis.on('error', () => {});
const queue = renderQueue(config.queueName, redis, config.renderAttempts);
queue.on('error', () => {});

try {
  const app = await buildApp({
    config, db, redis, queue,
    storage: createStorage(config),
    metrics: createMetrics('api'),
    log: createLogger('silent'),
  });
  await app.ready();
  writeFileSync(OUT, `${JSON.stringify(app.swagger(), null, 2)}\n`);
  await app.close();
  process.stdout.write(`wrote ${OUT}\n`);
} finally {
  redis.disconnect();
  await Promise.race([queue.close().catch(() => {}), sleep(1_000)]);
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
}
