// Idempotency-Key semantics against real Postgres and Redis: canonical request
// hashing, concurrent replays, 24-hour expiry and its sweep, and what replays
// see while the first request's enqueue hangs or fails (a Redis paused with
// SIGSTOP), including jobs whose add lands after the API gave up.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJson, requestHash } from '../api/idempotency.js';
import { startApi, type RunningApi } from '../api/server.js';
import { insertVideo } from '../api/video-store.js';
import { createLogger } from '../engine/log.js';
import { isParked, PARK_DELAY_MS, renderQueue } from '../engine/queue.js';
import type { RenderSpec } from '../engine/spec.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, onCleanup, ownRedis, openQueue, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';

after(runCleanups);

type Video = { id: string; status: string };

function submit(base: string, token: string, body: unknown, key?: string) {
  return fetch(`${base}/v1/videos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...(key ? { 'idempotency-key': key } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The same object with every key order reversed, recursively. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversed(v)]));
  return value;
}

test('the request hash ignores key order at every depth, and nothing else', () => {
  const spec = smallSpec();
  assert.notEqual(JSON.stringify(reversed(spec)), JSON.stringify(spec), 'the reordering really reorders');
  assert.equal(canonicalJson(reversed(spec)), canonicalJson(spec));
  assert.equal(requestHash([reversed(spec), 'public']), requestHash([spec, 'public']));
  assert.notEqual(requestHash([spec, 'private']), requestHash([spec, 'public']));
  assert.notEqual(requestHash([smallSpec({ version: 2 }), 'public']), requestHash([spec, 'public']));
  // Array order is meaning, not formatting.
  const swapped = { ...spec, scenes: [...(spec.scenes as unknown[])].reverse() };
  assert.notEqual(requestHash([swapped, 'public']), requestHash([spec, 'public']));
  assert.equal(canonicalJson({ b: [1, { d: 'x', c: null }], a: true }), '{"a":true,"b":[1,{"c":null,"d":"x"}]}');
});

describe('with a healthy queue', () => {
  let api: RunningApi;
  let queue: ReturnType<typeof openQueue>;
  let token: string;
  before(async () => {
    const env = await testEnv();
    api = await startApi(configFrom(env), { settleIntervalMs: 60_000 });
    queue = openQueue(env);
    token = (await registerUser(api.url)).token;
  });
  after(() => api.close());

  const count = async (sql: string, params: unknown[] = []) => (await api.db.query<{ n: number }>(sql, params))[0]!.n;

  test('the same spec with its keys reordered is a replay, not idempotency_key_reused', async () => {
    const first = await submit(api.url, token, smallSpec(), 'reorder-1');
    assert.equal(first.status, 202);
    const firstBody = (await first.json()) as Video;
    // Sent as text, so the JSON on the wire really has the other key order.
    const second = await submit(api.url, token, JSON.stringify(reversed(smallSpec())), 'reorder-1');
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await second.json(), firstBody);
  });

  test('20 concurrent requests with one key make one video and one job', async () => {
    const before = await count('SELECT count(*)::int AS n FROM videos');
    const answers = await Promise.all(Array.from({ length: 20 }, () => submit(api.url, token, smallSpec(), 'burst-1')));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as Video[];
    assert.deepEqual(answers.map((r) => r.status), Array(20).fill(202));
    assert.equal(new Set(bodies.map((b) => b.id)).size, 1);
    assert.equal(answers.filter((r) => r.headers.get('idempotent-replayed') === 'true').length, 19);
    assert.equal(await count('SELECT count(*)::int AS n FROM videos'), before + 1);
    // The job is runnable: promoted from parked once the row committed.
    // Promoted: waiting for a worker, in BullMQ's `prioritized` set as every API job has a priority (engine/fairness.ts).
    assert.equal(await queue.getJobState(bodies[0]!.id), 'prioritized');
  });

  test('a key expires after 24 hours: it may then be used as new, and the sweep deletes old keys', async () => {
    const first = (await (await submit(api.url, token, smallSpec(), 'daily-1')).json()) as Video;
    // Within 24 hours a different request with the key is refused.
    const other = smallSpec({ output: { width: 640, height: 360, fps: 24 } });
    assert.equal((await submit(api.url, token, other, 'daily-1')).status, 400);
    await api.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE key = 'daily-1'`);
    const reused = await submit(api.url, token, other, 'daily-1');
    assert.equal(reused.status, 202);
    assert.equal(reused.headers.get('idempotent-replayed'), null);
    const second = (await reused.json()) as Video;
    assert.notEqual(second.id, first.id);
    // …and the new claim replays from now on.
    const replay = await submit(api.url, token, other, 'daily-1');
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await replay.json()) as Video).id, second.id);

    // The sweep deletes keys older than 24 hours and keeps younger ones.
    await submit(api.url, token, smallSpec(), 'old-1');
    await submit(api.url, token, smallSpec(), 'young-1');
    await api.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old-1'`);
    await api.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'young-1'`);
    const { keysExpired } = await api.maintenance.runOnce();
    assert.ok(keysExpired >= 1);
    const left = await api.db.query<{ key: string }>(`SELECT key FROM idempotency_keys WHERE key IN ('old-1', 'young-1')`);
    assert.deepEqual(left.map((r) => r.key), ['young-1']);
  });

  test('parked jobs: promoted when their row exists, removed when it does not', async () => {
    const u = (await api.db.query<{ id: string }>('SELECT id FROM users LIMIT 1'))[0]!;
    const spec = smallSpec() as RenderSpec;
    const longAgo = Date.now() - 120_000; // past the settler's 60 s grace period
    // A committed row whose promote never happened (the API died, or Redis dropped the promote).
    const kept = 'vid_parkedwithrow0000000001';
    await insertVideo(api.db, { id: kept, userId: u.id, spec, visibility: 'public' });
    await queue.add('render', { videoId: kept, spec }, { jobId: kept, delay: PARK_DELAY_MS, timestamp: longAgo });
    // An add that landed after its submit rolled back: no row will ever exist.
    const orphan = 'vid_parkedorphan0000000001';
    await queue.add('render', { videoId: orphan, spec }, { jobId: orphan, delay: PARK_DELAY_MS, timestamp: longAgo });
    // A young parked job is left alone: its submit may still be committing.
    const young = 'vid_parkedyoung00000000001';
    await queue.add('render', { videoId: young, spec }, { jobId: young, delay: PARK_DELAY_MS });
    // A retry's backoff also sits in `delayed`, but it is not parked.
    assert.equal(isParked({ delay: 5_000, attemptsMade: 1 }), false);

    assert.equal(await api.settler.settleParked(), 2);
    assert.equal(await queue.getJobState(kept), 'waiting');
    assert.equal(await queue.getJobState(orphan), 'unknown');
    assert.equal(await queue.getJobState(young), 'delayed');
    await (await queue.getJob(young))!.remove();
  });
});

describe('while Redis hangs (SIGSTOP) or fails', () => {
  let redis: ChildProcess;
  let port: number;
  let api: RunningApi;
  let env: Record<string, string>;
  let token: string;

  before(async () => {
    ({ proc: redis, port } = await ownRedis());
    env = await testEnv({ REDIS_URL: `redis://127.0.0.1:${port}` });
    api = await startApi(configFrom(env), { settleIntervalMs: 3_600_000, settleParkedGraceSeconds: 0 });
    token = (await registerUser(api.url)).token;
    // Warm the queue's connection and scripts. Until the API's Redis
    // connection is ready a submit answers 503 (by design), so wait for it.
    let warm = 0;
    for (let i = 0; i < 50 && (warm = (await submit(api.url, token, smallSpec())).status) === 503; i++) await sleep(100);
    assert.equal(warm, 202);
  });
  after(async () => {
    redis.kill('SIGCONT');
    await api.close();
  });

  const keyRows = async (key: string) => (await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1', [key]))[0]!.n;
  const videoRows = async () => (await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM videos'))[0]!.n;

  test('a replay during a slow enqueue gets the final 202 of the first request', async () => {
    redis.kill('SIGSTOP');
    const first = submit(api.url, token, smallSpec(), 'slow-1');
    await sleep(300);
    const replay = submit(api.url, token, smallSpec(), 'slow-1');
    await sleep(700);
    redis.kill('SIGCONT');
    const [a, b] = await Promise.all([first, replay]);
    assert.deepEqual([a.status, b.status], [202, 202]);
    // One of them (normally the second) is the replay of the other.
    assert.deepEqual([a, b].map((r) => r.headers.get('idempotent-replayed')).sort(), ['true', null].sort());
    const id = ((await a.json()) as Video).id;
    assert.equal(((await b.json()) as Video).id, id);
    const queue = openQueue(env);
    assert.equal(await queue.getJobState(id), 'prioritized'); // promoted (every API job has a priority)
  });

  test('a failed enqueue answers 503 to the first request and to replays in flight; a late add never runs', async () => {
    const rowsBefore = await videoRows();
    redis.kill('SIGSTOP');
    const t0 = Date.now();
    const first = submit(api.url, token, smallSpec(), 'down-1');
    await sleep(500);
    // Arrives while the first request is still waiting for Redis.
    const replay = submit(api.url, token, smallSpec(), 'down-1');
    const a = await first;
    assert.equal(a.status, 503);
    assert.equal(((await a.json()) as { error: { code: string } }).error.code, 'unavailable');
    assert.ok(Date.now() - t0 < 8_000, 'bounded by the 3 s enqueue timeout');
    // The replay was never answered 202 for a video that does not exist: it
    // waited for the first request's outcome, then found the queue's breaker
    // open (the first enqueue timed out: api/queue-health.ts) and answered 503 without enqueueing.
    const b = await replay;
    assert.equal(b.status, 503);
    assert.equal(b.headers.get('idempotent-replayed'), null);
    assert.equal(await keyRows('down-1'), 0, 'no key is left to replay');
    assert.equal(await videoRows(), rowsBefore, 'no row is left');

    // Redis comes back: the first request's add, sent before the API gave up, lands now.
    redis.kill('SIGCONT');
    const queue = renderQueue(env.QUEUE_NAME!, { url: env.REDIS_URL! }, 1);
    onCleanup(() => queue.close());
    let parked: Awaited<ReturnType<typeof queue.getJobs>> = [];
    for (let i = 0; i < 100; i++) {
      parked = (await queue.getJobs(['delayed'])).filter(isParked);
      if (parked.length === 1) break;
      await sleep(100);
    }
    assert.equal(parked.length, 1, 'the late add landed, parked');
    // They cannot run: a worker on this queue never takes them (it only takes
    // the videos accepted earlier in this suite).
    const lateIds = new Set(parked.map((job) => job.id));
    let rendered = 0;
    const worker = startRuntime({
      queueName: env.QUEUE_NAME!, connection: { url: env.REDIS_URL!, maxRetriesPerRequest: null }, concurrency: 4,
      log: createLogger('silent'),
      processor: async (job) => {
        if (lateIds.has(job.id)) rendered++;
        throw new Error('render_failed: not rendered in this test');
      },
    });
    try {
      await worker.waitUntilReady();
      await sleep(1_000);
      // The settler finds them without a row and removes them.
      assert.equal(await api.settler.settleParked(), 1);
      await sleep(300);
      for (const job of parked) assert.equal(await queue.getJobState(job.id!), 'unknown');
      assert.equal(rendered, 0, 'no late job rendered');
    } finally {
      await worker.close();
    }
    // The key is free: a retry now creates the video.
    const retry = await submit(api.url, token, smallSpec(), 'down-1');
    assert.equal(retry.status, 202);
    assert.equal(retry.headers.get('idempotent-replayed'), null);
    const created = (await retry.json()) as Video;
    assert.ok(!parked.some((job) => job.id === created.id));
  });
});
