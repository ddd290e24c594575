// The operator routes (/v1/ops/*) and the `vgen workers` / `vgen queue`
// commands over them: a user token gets 403, the routes are documented under
// the `ops` tag, GET /v1/ops/scaling serves the autoscaler's decision in the
// shape KEDA reads, and the commands drive the registry, the manual floor
// and the queue.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'bullmq';
import { startApi, type RunningApi } from '../api/server.js';
import { getVideo, insertVideo, markFailed } from '../api/video-store.js';
import { AutoscalerLoop } from '../autoscaler/loop.js';
import { policyConfig } from '../autoscaler/policy.js';
import { writeOperatorToken } from '../cli/up.js';
import { createLogger } from '../engine/log.js';
import { QUEUE_PREFIX, renderQueue } from '../engine/queue.js';
import { connectRedis, whenReady } from '../engine/redis.js';
import { createRegistry } from '../engine/registry.js';
import { configFrom, onCleanup, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

let api: RunningApi;
let env: Record<string, string>;
let operator: string;
let user: string;

const redis = connectRedis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', 'producer');

before(async () => {
  env = await testEnv();
  api = await startApi(configFrom(env));
  operator = await writeOperatorToken(api.db, tempDir());
  user = (await registerUser(api.url)).token;
  await whenReady(redis);
});
after(async () => {
  await runCleanups();
  await api.close();
  const keys = await redis.keys(`${QUEUE_PREFIX}:${env.QUEUE_NAME}:autoscaler:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

const call = (method: string, path: string, token?: string, body?: unknown) =>
  fetch(`${api.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });

const run = promisify(execFile);
const vgen = (...args: string[]) =>
  run(process.execPath, ['bin/vgen.js', ...args, '--api', api.url, '--token', operator], { env: { ...process.env, LOG_LEVEL: 'silent' } }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

const ROUTES: [string, string, unknown?][] = [
  ['GET', '/v1/ops/scaling'],
  ['GET', '/v1/ops/workers'],
  ['POST', '/v1/ops/workers/scale', { workers: 1 }],
  ['POST', '/v1/ops/workers/drain', { idle: true }],
  ['GET', '/v1/ops/queue'],
  ['POST', '/v1/ops/queue/pause'],
  ['POST', '/v1/ops/queue/resume'],
  ['POST', '/v1/ops/queue/retry-failed', {}],
  ['POST', '/v1/ops/queue/clean', {}],
];

describe('operator routes', () => {
  test('refuse a user token with 403 and no token with 401, and change nothing', async () => {
    for (const [method, path, body] of ROUTES) {
      const denied = await call(method, path, user, body);
      assert.equal(denied.status, 403, `${method} ${path}`);
      assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'forbidden');
      assert.equal((await call(method, path, undefined, body)).status, 401, `${method} ${path}`);
    }
    const queue = renderQueue(env.QUEUE_NAME!, redis, 1);
    assert.equal(await queue.isPaused(), false, 'the refused pause did nothing');
    assert.equal(await redis.exists(`${QUEUE_PREFIX}:${env.QUEUE_NAME}:autoscaler:floor`), 0, 'nor the refused scale');
  });

  test('are listed in the OpenAPI document under the ops tag', async () => {
    const doc = (await (await call('GET', '/docs/json')).json()) as { paths: Record<string, Record<string, { tags?: string[]; security?: unknown[] }>> };
    for (const [method, path] of ROUTES) {
      const op = doc.paths[path]?.[method.toLowerCase()];
      assert.deepEqual(op?.tags, ['ops'], `${method} ${path}`);
      assert.ok(op?.security?.length, `${method} ${path} declares its bearer auth`);
    }
  });

  test("GET /v1/ops/scaling: 503 until an autoscaler decides, then the decision in KEDA's shape", async () => {
    const none = await call('GET', '/v1/ops/scaling', operator);
    assert.equal(none.status, 503);
    // A decide-only autoscaler (AUTOSCALER_PROVIDER=none, as beside KEDA) with a backlog of 3.
    const queue = renderQueue(env.QUEUE_NAME!, redis, 1);
    await queue.addBulk([1, 2, 3].map((i) => ({ name: 'render', data: { videoId: `x${i}` } as never })));
    const loop = new AutoscalerLoop({
      redis, queue, queueName: env.QUEUE_NAME!, registry: createRegistry(redis, { queueName: env.QUEUE_NAME! }), provider: null,
      policy: policyConfig({ min: 0, max: 10, bootSeconds: 5 }), intervalMs: 1000, leaseMs: 5000, waitTargetSeconds: 60,
      renderPrior: { meanSeconds: 60, stddevSeconds: 30 }, bootTimeoutSeconds: 120, log: createLogger('silent'),
    });
    assert.equal((await loop.lease.attempt()).leader, true);
    const tick = await loop.tick();
    await loop.stop();
    const res = await call('GET', '/v1/ops/scaling', operator);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { desiredWorkers: number; reason: string; provider: string; queue: { waiting: number } };
    assert.equal(body.desiredWorkers, tick!.decision.desired);
    assert.ok(body.desiredWorkers >= 1, 'a backlog asks for workers');
    assert.equal(body.reason, 'backlog');
    assert.equal(body.provider, 'none');
    assert.equal(body.queue.waiting, 3);
    await queue.drain(true);
  });
});

describe('vgen workers / vgen queue', () => {
  test('workers ls, scale --for and drain --idle', async () => {
    const registry = createRegistry(redis, { queueName: env.QUEUE_NAME! });
    const base = { provider: 'local' as const, host: 'test', pid: 1, version: '0', jobsDone: 0, startedAt: Date.now() };
    await registry.register({ ...base, id: 'w-idle', state: 'idle' });
    await registry.register({ ...base, id: 'w-busy', state: 'busy', currentJob: 'vid_x' });
    // Beat like live workers: each CLI call is a process start, and under load
    // the test outlasts HEARTBEAT_TTL_MS, after which silent workers are pruned.
    const beating = setInterval(() => {
      void registry.heartbeat('w-idle', { state: 'idle' }).catch(() => {});
      void registry.heartbeat('w-busy', { state: 'busy', currentJob: 'vid_x' }).catch(() => {});
    }, 2_000);
    onCleanup(async () => {
      clearInterval(beating);
      await registry.deregister('w-idle');
      await registry.deregister('w-busy');
    });

    const ls = await vgen('workers', 'ls');
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^ID\s+STATE\s+JOB/m);
    assert.match(ls.stdout, /w-busy\s+busy\s+vid_x/);
    assert.match(ls.stdout, /w-idle\s+idle\s+-/);

    const scale = await vgen('workers', 'scale', '4', '--for', '10m', '--json');
    assert.equal(scale.code, 0, scale.stderr);
    const floor = JSON.parse(scale.stdout).manualFloor;
    assert.equal(floor.workers, 4);
    assert.ok(Math.abs(Date.parse(floor.until) - Date.now() - 600_000) < 5_000);
    const listed = JSON.parse((await vgen('workers', 'ls', '--json')).stdout);
    assert.equal(listed.manualFloor.workers, 4);
    assert.deepEqual(listed.workers.map((w: { id: string }) => w.id).sort(), ['w-busy', 'w-idle']);

    const drain = await vgen('workers', 'drain', '--idle', '--deadline', '30s');
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, /draining 1: w-idle/);
    const idle = await registry.get('w-idle');
    assert.ok(idle?.drain?.deadline && Math.abs(idle.drain.deadline - Date.now() - 30_000) < 5_000);
    assert.equal((await registry.get('w-busy'))?.drain, undefined, 'the busy one is left alone');

    const none = await vgen('workers', 'drain', 'w-nope');
    assert.equal(none.code, 1);
    assert.match(none.stdout, /not found.*w-nope/);
    assert.equal((await vgen('workers', 'scale', '0')).stdout.trim(), 'manual floor cleared');
    const bad = await vgen('workers', 'drain', '--idle', '--all');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /usage: vgen workers drain/);
  });

  test('queue stats, pause/resume and retry-failed', async () => {
    const queue = renderQueue(env.QUEUE_NAME!, redis, 1);
    // A failed render: its row failed, its job in the failed set.
    const u = (await api.db.query<{ id: string }>('SELECT id FROM users LIMIT 1'))[0]!;
    const id = 'vid_0opsretry00000000000000a';
    await insertVideo(api.db, { id, userId: u.id, spec: smallSpec() as never, visibility: 'public' });
    await queue.add('render', { videoId: id, spec: smallSpec() as never }, { jobId: id, attempts: 1 });
    await queue.pause(); // so the worker below takes only the job that must fail... after resume
    const worker = new Worker(env.QUEUE_NAME!, async () => {
      throw new Error('render_failed: boom');
    }, { connection: { url: env.REDIS_URL! }, prefix: QUEUE_PREFIX, autorun: false });
    onCleanup(() => worker.close());

    const paused = await vgen('queue', 'stats', '--json');
    assert.equal(paused.code, 0, paused.stderr);
    const s = JSON.parse(paused.stdout);
    assert.equal(s.paused, true);
    assert.equal(s.counts.waiting, 1);
    assert.ok(s.oldestWaitingSeconds >= 0);
    assert.match((await vgen('queue', 'stats')).stdout, /PAUSED/);

    assert.match((await vgen('queue', 'resume')).stdout, /queue resumed/);
    void worker.run();
    await new Promise<void>((resolve) => worker.once('failed', () => resolve()));
    await worker.close();
    await markFailed(api.db, id, 'render_failed', 'boom'); // what the settler does on the failed event
    assert.equal((await getVideo(api.db, id))?.status, 'failed');

    const retry = await vgen('queue', 'retry-failed', '--since', '1h', '--json');
    assert.equal(retry.code, 0, retry.stderr);
    assert.deepEqual(JSON.parse(retry.stdout).retried, [id]);
    assert.equal((await getVideo(api.db, id))?.status, 'queued', 'the row is reopened');
    const job = await queue.getJob(id);
    assert.equal(await job!.getState(), 'waiting');
    assert.equal(job!.attemptsMade, 0, 'with a fresh set of attempts');

    assert.match((await vgen('queue', 'pause')).stdout, /queue paused/);
    assert.equal(await queue.isPaused(), true);
    await vgen('queue', 'resume');
    const clean = await vgen('queue', 'clean', '--older-than', '1m');
    assert.equal(clean.code, 1);
    assert.match(clean.stderr, /olderThanSeconds/);
  });
});
