// Real dependencies for tests: a fresh Postgres database per suite, a unique
// queue name on the local Redis, an s3rver bucket, temp data dirs.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import S3rver from 's3rver';
import { loadConfig } from '../engine/config.js';
import { renderQueue } from '../engine/queue.js';

export const ADMIN_DB_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const cleanups: (() => Promise<void> | void)[] = [];
/** Register cleanup to run from an `after` hook via runCleanups(). */
export const onCleanup = (fn: () => Promise<void> | void) => void cleanups.unshift(fn);
export async function runCleanups() {
  for (const fn of cleanups.splice(0)) await fn();
}

export function tempDir(prefix = 'vgen-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** A new empty database, dropped at cleanup. */
export async function freshDatabase(): Promise<string> {
  const name = uniqueName('vgen_test').replace(/-/g, '_');
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  onCleanup(async () => {
    const c = new pg.Client({ connectionString: ADMIN_DB_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(ADMIN_DB_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** An S3-protocol server (s3rver) with one bucket; objects are readable anonymously. */
export async function startS3(): Promise<{ endpoint: string; bucket: string; env: Record<string, string> }> {
  const bucket = 'vgen-media';
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: tempDir('vgen-s3-'), configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  onCleanup(() => server.close());
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    env: {
      STORAGE: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_REGION: 'us-east-1',
      CDN_BASE_URL: `${endpoint}/${bucket}`,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    },
  };
}

/**
 * A queue name of this test's own. Its cleanup is registered first, so it runs
 * last: the keys leave Redis after every process using them has closed.
 */
export function uniqueQueue(prefix: string): string {
  const name = uniqueName(prefix);
  onCleanup(async () => {
    const queue = renderQueue(name, { url: REDIS_URL }, 1);
    await queue.obliterate({ force: true });
    await queue.close();
  });
  return name;
}

/** Environment for one test system: its own queue, data dir and database. */
export async function testEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const queueName = uniqueQueue('t');
  return {
    REDIS_URL,
    QUEUE_NAME: queueName,
    DATA_DIR: tempDir(),
    DATABASE_URL: await freshDatabase(),
    JWT_SECRET: randomBytes(32).toString('hex'),
    PORT: '0',
    LOG_LEVEL: 'warn',
    RENDER_ATTEMPTS: '2',
    // Every test signs up from 127.0.0.1; test/rate-limit.test.ts sets its own limits.
    AUTH_RATE_LIMIT_PER_IP: '100000',
    AUTH_REFRESH_RATE_LIMIT_PER_IP: '100000',
    // Suites submit many videos as one user with no worker running; test/fairness.test.ts sets its own limits.
    USER_MAX_ACTIVE_VIDEOS: '100000',
    USER_SUBMITS_PER_MINUTE: '100000',
    // Suites run many workers and autoscalers on one machine: each /metrics on a free port.
    WORKER_METRICS_PORT: '0',
    AUTOSCALER_METRICS_PORT: '0',
    ...extra,
  };
}

export const configFrom = (env: Record<string, string>) => loadConfig(env);

/** A handle on a test system's render queue, closed at cleanup. */
export function openQueue(env: Record<string, string>) {
  const queue = renderQueue(env.QUEUE_NAME!, { url: env.REDIS_URL! }, 1);
  onCleanup(() => queue.close());
  return queue;
}

/** Register a fresh user through the API; returns its access token and id. */
export async function registerUser(baseUrl: string): Promise<{ token: string; id: string; email: string; password: string }> {
  const email = `${uniqueName('user')}@example.com`;
  const password = 'correct horse battery';
  const res = await fetch(`${baseUrl}/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { accessToken: string; user: { id: string } };
  return { token: body.accessToken, id: body.user.id, email, password };
}

export const smallSpec = (overrides: Record<string, unknown> = {}) => ({
  version: 1,
  output: { width: 320, height: 180, fps: 24 },
  scenes: [
    { duration: 1, background: { color: '#203040' }, caption: { text: 'one' } },
    { duration: 1.5, background: { image: 'assets/photo.jpg' }, caption: { text: '你好' }, transition: { type: 'fade', duration: 0.5 } },
  ],
  audio: { src: 'assets/music.mp3' },
  ...overrides,
});

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Download a URL to a file; returns the response headers. */
export async function download(url: string, dest: string): Promise<Headers> {
  const { writeFile } = await import('node:fs/promises');
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  await writeFile(dest, Buffer.from(await res.arrayBuffer()));
  return res.headers;
}

/**
 * A redis-server of the test's own on a free port (for tests that stop or
 * kill it; never the shared one), killed at cleanup. Resolves once it answers PING.
 */
export async function ownRedis(): Promise<{ url: string; port: number; proc: import('node:child_process').ChildProcess }> {
  const { spawn } = await import('node:child_process');
  const { connect } = await import('node:net');
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  onCleanup(() => {
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
  });
  for (let i = 0; ; i++) {
    const answered = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => c.write('PING\r\n'));
      c.on('data', (d) => { c.destroy(); resolve(d.toString().startsWith('+PONG')); });
      c.on('error', () => resolve(false));
    });
    if (answered) break;
    if (i > 100) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, port, proc };
}
