// queue: the same no-op jobs through vgen's worker runtime (the code
// production runs, with the render stubbed out) and through a bare BullMQ
// worker, on the same Redis in the same run. Then accepted→settled videos
// per second end to end through the API (HTTP submit → Postgres row →
// BullMQ → runtime → settler → Postgres). Last, fair_wait_ratio
// (bench/fairness.ts): one user's backlog against nine light users, fair
// priorities vs plain FIFO.
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import Fastify from 'fastify';
import pg from 'pg';
import { startApi } from '../api/server.js';
import { loadConfig } from '../engine/config.js';
import { createLogger } from '../engine/log.js';
import { QUEUE_PREFIX, type RenderJobData, type RenderResult } from '../engine/queue.js';
import { startRuntime } from '../worker/runtime.js';
import { fairnessBench } from './fairness.js';
import type { Figure } from './run.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_DB_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
const RESULT: RenderResult = { videoKey: 'videos/b/a.mp4', posterKey: 'videos/b/a.jpg', durationMs: 1000, width: 320, height: 180, bytes: 1 };
const DATA: RenderJobData = {
  videoId: 'vid_bench',
  spec: { version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: 1, background: { color: 'black' } }] },
};
const connection = { url: REDIS_URL, maxRetriesPerRequest: null };

/** Fill a fresh queue with n jobs, run one consumer until all complete; jobs/s. */
async function drain(n: number, start: (name: string) => Worker): Promise<number> {
  const name = `bench-${randomBytes(4).toString('hex')}`;
  const queue = new Queue(name, { connection, prefix: QUEUE_PREFIX });
  for (let i = 0; i < n; i += 1000)
    await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'render', data: DATA, opts: { removeOnComplete: true } })));
  let done = 0;
  const t0 = performance.now();
  const worker = start(name);
  await new Promise<void>((resolve) => worker.on('completed', () => ++done === n && resolve()));
  const seconds = (performance.now() - t0) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return n / seconds;
}

export async function* queueBench(args: Record<string, string | boolean | undefined>): AsyncGenerator<Figure> {
  const n = Number(args.jobs ?? 20_000);
  const concurrency = Number(args.concurrency ?? 50);
  const log = createLogger('silent');
  const bare = (name: string) => new Worker(name, async () => RESULT, { connection, prefix: QUEUE_PREFIX, concurrency });
  const vgen = (name: string) => startRuntime({ queueName: name, connection, concurrency, log, processor: async () => RESULT });

  // Interleave and keep each side's best of three, so a noisy moment on this
  // shared machine does not decide the ratio.
  await drain(2_000, bare); // warm-up: Lua scripts loaded, JIT warm
  const bareRuns: number[] = [];
  const vgenRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    bareRuns.push(await drain(n, bare));
    vgenRuns.push(await drain(n, vgen));
  }
  const baseline = Math.max(...bareRuns);
  const value = Math.max(...vgenRuns);
  yield { bench: 'queue', metric: `worker runtime, no-op (c=${concurrency})`, value, unit: 'jobs/s', baseline, ratio: value / baseline, floor: 0.8 };
  yield* endToEnd(Number(args.videos ?? 2_000));
  yield* fairnessBench();
}

/** POST the same spec `n` times from 32 concurrent clients (client i sends as clients[i % length]); seconds taken. */
async function submitAll(base: string, n: number, clients: Record<string, string>[]): Promise<number> {
  const body = JSON.stringify(DATA.spec);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async (_, i) => {
    const headers = clients[i % clients.length]!;
    while (next++ < n) {
      const res = await fetch(`${base}/v1/videos`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
    }
  }));
  return (performance.now() - t0) / 1000;
}

/**
 * The baseline: what a hand-written bare Fastify route does for a submit, with
 * no auth, validation, idempotency or video object: INSERT the spec, enqueue.
 */
async function bareApi(dbUrl: string): Promise<string> {
  const pool = new pg.Pool({ connectionString: dbUrl, max: 10 });
  await pool.query('CREATE TABLE IF NOT EXISTS bare_videos (id text PRIMARY KEY, spec jsonb NOT NULL)');
  const queue = new Queue(`bare-${randomBytes(4).toString('hex')}`, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
  const app = Fastify();
  app.post('/v1/videos', async (req, reply) => {
    const id = `vid_${randomBytes(12).toString('hex')}`;
    await pool.query('INSERT INTO bare_videos (id, spec) VALUES ($1, $2)', [id, JSON.stringify(req.body)]);
    await queue.add('render', { videoId: id, spec: req.body }, { jobId: id });
    return reply.status(202).send({ id });
  });
  app.addHook('onClose', async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await pool.end();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  bareApps.push(app);
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}
const bareApps: { close(): Promise<unknown> }[] = [];

/** Videos accepted by the API and settled in Postgres per second. */
async function* endToEnd(videos: number): AsyncGenerator<Figure> {
  const dbName = `vgen_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(ADMIN_DB_URL);
  dbUrl.pathname = `/${dbName}`;
  const queueName = `bench-${randomBytes(4).toString('hex')}`;
  const config = loadConfig({
    REDIS_URL, DATABASE_URL: dbUrl.toString(), QUEUE_NAME: queueName, PORT: '0', LOG_LEVEL: 'silent',
    JWT_SECRET: randomBytes(32).toString('hex'), DATA_DIR: `/tmp/${dbName}`,
    // Clients submit as fast as they can: lift the per-user quotas.
    USER_MAX_ACTIVE_VIDEOS: '1000000', USER_SUBMITS_PER_MINUTE: '1000000',
  });
  const api = await startApi(config);
  let worker: ReturnType<typeof startRuntime> | undefined;
  const settled = async (n: number) => {
    for (;;) {
      const [{ c }] = (await api.db.query<{ c: number }>(`SELECT count(*)::int AS c FROM videos WHERE status = 'succeeded'`)) as [{ c: number }];
      if (c >= n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    // 32 clients, each signed in as a user of its own: an app's many users.
    const users = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
      const reg = await fetch(`${api.url}/v1/auth/register`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `bench${i}@example.com`, password: 'bench-password' }),
      });
      const { accessToken } = (await reg.json()) as { accessToken: string };
      return { authorization: `Bearer ${accessToken}` };
    }));

    // Submits alone (no worker yet), against the bare route on the same Postgres and Redis.
    const baseline = videos / (await submitAll(await bareApi(dbUrl.toString()), videos, [{}]));
    const accepted = videos / (await submitAll(api.url, videos, users));
    yield { bench: 'queue', metric: 'API submits accepted (32 users)', value: accepted, unit: 'videos/s', baseline, ratio: accepted / baseline };
    // One user's ceiling: its submits take a per-user lock (the active-video
    // count must not race), so they queue behind each other.
    const oneUser = videos / (await submitAll(api.url, videos, [users[0]!]));
    yield { bench: 'queue', metric: 'API submits accepted (1 user, 32 clients)', value: oneUser, unit: 'videos/s', baseline, ratio: oneUser / baseline };

    // Then the whole path with a worker running: HTTP → row → job → runtime → settler → row.
    worker = startRuntime({ queueName, connection, concurrency: 50, log: api.log, processor: async () => RESULT });
    await settled(2 * videos);
    const t0 = performance.now();
    await submitAll(api.url, videos, users);
    await settled(3 * videos);
    yield { bench: 'queue', metric: 'API accepted→settled, end to end', value: videos / ((performance.now() - t0) / 1000), unit: 'videos/s' };
  } finally {
    for (const app of bareApps.splice(0)) await app.close();
    await worker?.close();
    const queue = new Queue(queueName, { connection, prefix: QUEUE_PREFIX });
    await queue.obliterate({ force: true });
    await queue.close();
    await api.close();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}
