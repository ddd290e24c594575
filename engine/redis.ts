import { Redis } from 'ioredis';
import type { Logger } from './log.js';

/**
 * `producer` connections (API) fail fast while Redis is down, so a submit gets
 * a 503 instead of hanging; `worker` connections retry forever, as BullMQ
 * workers require (maxRetriesPerRequest: null).
 */
export function connectRedis(url: string, role: 'producer' | 'worker'): Redis {
  const redis = new Redis(url, role === 'producer'
    ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5_000 }
    : { maxRetriesPerRequest: null, enableReadyCheck: true });
  // ioredis reconnects by itself; without a listener an error event would crash the process.
  redis.on('error', () => {});
  return redis;
}

/** Wait until a connection is ready (enableOfflineQueue=false rejects commands before that). */
export async function whenReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`Redis not ready after ${timeoutMs} ms`)), timeoutMs);
    const onReady = () => done();
    function done(err?: Error) {
      clearTimeout(timer);
      redis.off('ready', onReady);
      if (err) reject(err);
      else resolve();
    }
    redis.on('ready', onReady);
  });
}

/** BullMQ loses jobs if Redis evicts keys: warn loudly unless the policy is noeviction. */
export async function checkEvictionPolicy(redis: Redis, log: Logger): Promise<string | undefined> {
  try {
    // INFO works where CONFIG is disabled (managed Redis such as ElastiCache).
    const info = await redis.info('memory');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    if (policy && policy !== 'noeviction')
      log.warn({ policy }, `Redis maxmemory-policy is "${policy}"; set it to "noeviction" or queued jobs can be evicted and lost`);
    return policy;
  } catch (err) {
    log.warn({ err }, 'could not read Redis maxmemory-policy');
    return undefined;
  }
}
