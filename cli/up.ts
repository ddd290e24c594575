// `vgen up`: the whole system on one machine — the API (with its settler) in
// this process, N render workers as child processes, PGlite and local media
// under the data dir unless DATABASE_URL / S3 settings say otherwise.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApi, type RunningApi } from '../api/server.js';
import { createApiKey, createUser, findUserByEmail } from '../api/users.js';
import { LocalWorkerPool } from '../autoscaler/local.js';
import { loadConfig } from '../engine/config.js';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { connectRedis, whenReady } from '../engine/redis.js';

export const OPERATOR_EMAIL = 'operator@vgen.local';

/** A JWT secret kept in the data dir, so tokens survive a restart of `vgen up`. */
function localSecret(dir: string): string {
  const file = join(dir, 'jwt-secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
}

/** Create the operator account on first start and write a fresh API key to <data-dir>/token. */
export async function writeOperatorToken(db: Db, dir: string): Promise<string> {
  const user = (await findUserByEmail(db, OPERATOR_EMAIL)) ??
    (await createUser(db, OPERATOR_EMAIL, randomBytes(24).toString('base64url'), 'operator'));
  const token = await createApiKey(db, user!.id);
  writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
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
  workers: number;
}

export interface RunningSystem {
  api: RunningApi;
  pool: LocalWorkerPool;
  token: string;
  config: ReturnType<typeof loadConfig>;
  stop(): Promise<void>;
}

export async function up(opts: UpOptions): Promise<RunningSystem> {
  mkdirSync(opts.dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATA_DIR: opts.dataDir,
    JWT_SECRET: process.env.JWT_SECRET || localSecret(opts.dataDir),
    ...(opts.port !== undefined ? { PORT: String(opts.port) } : {}),
  };
  const config = loadConfig(env);
  await requireRedis(config.redisUrl);
  const api = await startApi(config);
  const token = await writeOperatorToken(api.db, opts.dataDir);
  const pool = new LocalWorkerPool({
    env,
    onExit: (pid, code, signal) => api.log.warn({ pid, code, signal }, 'worker exited; starting another'),
  });
  pool.scaleTo(opts.workers);
  return {
    api, pool, token, config,
    async stop() {
      await pool.stopAll();
      await api.close();
    },
  };
}
