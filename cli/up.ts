// `vgen up`: the whole system on one machine — the API (with its settler) and
// the autoscaler in this process, render workers as child processes (the local
// provider; a fixed N, or sized between a min and a max from queue depth),
// PGlite and local media under the data dir unless DATABASE_URL / S3 settings
// say otherwise.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApi, type RunningApi } from '../api/server.js';
import { createApiKey, createUser, findUserByApiKey, findUserByEmail, revokeApiKeys } from '../api/users.js';
import { startAutoscaler, type RunningAutoscaler } from '../autoscaler/main.js';
import { LocalProvider } from '../autoscaler/providers/local.js';
import { loadConfig } from '../engine/config.js';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { createLogger } from '../engine/log.js';
import { connectRedis, whenReady } from '../engine/redis.js';

export const OPERATOR_EMAIL = 'operator@vgen.local';

/** A JWT secret kept in the data dir, so tokens survive a restart of `vgen up`. */
function localSecret(dir: string): string {
  const file = join(dir, 'jwt-secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
}

/**
 * The operator's API key in <data-dir>/token: the operator account is created
 * on first start, and the key there is kept across restarts while it is still
 * valid for that account. Otherwise (first start, file gone or edited, another
 * database) a new key is minted and every older operator key is revoked, so
 * restarts never pile up valid keys.
 */
export async function writeOperatorToken(db: Db, dir: string): Promise<string> {
  const user = (await findUserByEmail(db, OPERATOR_EMAIL)) ??
    (await createUser(db, OPERATOR_EMAIL, randomBytes(24).toString('base64url'), 'operator'));
  const file = join(dir, 'token');
  const existing = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  if (existing.startsWith('vgk_')) {
    const owner = await findUserByApiKey(db, existing);
    if (owner?.id === user!.id && owner.role === 'operator') return existing;
  }
  const token = await createApiKey(db, user!.id);
  await revokeApiKeys(db, user!.id, token);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** One machine means one Redis we depend on: say so plainly if it is not there. */
async function requireRedis(url: string): Promise<void> {
  const redis = connectRedis(url, 'producer');
  try {
    await whenReady(redis, 3_000);
  } catch {
    throw new VgenError('unavailable', `no Redis answers at ${url}; start one (\`redis-server --daemonize yes\`, or \`npm start\` does it) or set REDIS_URL`);
  } finally {
    redis.disconnect();
  }
}

export interface UpOptions {
  port?: number;
  dataDir: string;
  /** Workers the autoscaler keeps between (a fixed count when equal). */
  minWorkers: number;
  maxWorkers: number;
  /** The policy's scale-in window; default AUTOSCALER_SCALE_IN_SECONDS. */
  scaleInSeconds?: number;
}

export interface RunningSystem {
  api: RunningApi;
  /** The local worker processes. */
  pool: LocalProvider;
  autoscaler: RunningAutoscaler;
  token: string;
  config: ReturnType<typeof loadConfig>;
  stop(): Promise<void>;
}

export async function up(opts: UpOptions): Promise<RunningSystem> {
  mkdirSync(opts.dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Several workers on one machine: each takes a free port for /metrics, and
    // the autoscaler too unless told one; GET /v1/ops/prometheus-targets lists them all.
    WORKER_METRICS_PORT: '0',
    AUTOSCALER_METRICS_PORT: process.env.AUTOSCALER_METRICS_PORT ?? '0',
    DATA_DIR: opts.dataDir,
    JWT_SECRET: process.env.JWT_SECRET || localSecret(opts.dataDir),
    ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}),
  };
  const config = loadConfig({
    ...env,
    AUTOSCALER_PROVIDER: 'local',
    AUTOSCALER_MIN_WORKERS: String(opts.minWorkers),
    AUTOSCALER_MAX_WORKERS: String(opts.maxWorkers),
    ...(opts.scaleInSeconds !== undefined ? { AUTOSCALER_SCALE_IN_SECONDS: String(opts.scaleInSeconds) } : {}),
  });
  await requireRedis(config.redisUrl);
  const api = await startApi(config);
  const token = await writeOperatorToken(api.db, opts.dataDir);
  const log = createLogger(config.logLevel, { role: 'autoscaler' });
  const pool = new LocalProvider({
    env,
    // The autoscaler replaces a worker that exits unasked at its next round.
    onExit: (id, code, signal) => log[code === 0 ? 'info' : 'warn']({ workerId: id, code, signal }, 'local worker exited'),
  });
  // The API's registry already collects the process's default metrics.
  const autoscaler = await startAutoscaler(config, { log, provider: pool, defaultMetrics: false });
  return {
    api, pool, autoscaler, token, config,
    async stop() {
      await autoscaler.close({ stopWorkers: true });
      await api.close();
    },
  };
}
