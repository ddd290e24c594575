// Invariant 1: an accepted job is never lost. A worker killed mid-render
// leaves its job to another worker; a worker told to stop finishes its job
// first; a Redis that evicts keys is reported at start.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { startApi, type RunningApi } from '../api/server.js';
import { getVideo } from '../api/video-store.js';
import { openDb } from '../engine/db.js';
import { checkEvictionPolicy, connectRedis, whenReady } from '../engine/redis.js';
import type { RenderSpec } from '../engine/spec.js';
import { VgenClient } from '../cli/client.js';
import { configFrom, freePort, onCleanup, openQueue, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

after(runCleanups);

// Long enough (12 s of 640x360) that a worker is still rendering when we act.
const longSpec = smallSpec({
  output: { width: 640, height: 360, fps: 30 },
  scenes: [
    { duration: 6, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 6.5, background: { image: 'assets/photo2.jpg' }, caption: { text: '二' }, transition: { type: 'dissolve', duration: 0.5 } },
  ],
}) as RenderSpec;

async function system(): Promise<{ api: RunningApi; client: VgenClient; worker: () => ChildProcess }> {
  const env = await testEnv({ WORKER_LOCK_SECONDS: '5', X264_PRESET: 'medium' });
  const api = await startApi(configFrom(env), { settleIntervalMs: 1000 });
  onCleanup(() => api.close());
  const client = new VgenClient(api.url, (await registerUser(api.url)).token);
  const worker = () => {
    const child = spawn(process.execPath, ['bin/vgen.js', 'worker'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    onCleanup(() => void child.kill('SIGKILL'));
    return child;
  };
  return { api, client, worker };
}

async function untilStatus(api: RunningApi, id: string, status: string) {
  for (let i = 0; i < 600; i++) {
    if ((await getVideo(api.db, id))?.status === status) return;
    await sleep(50);
  }
  throw new Error(`${id} never reached ${status}`);
}

test('a worker killed mid-render: another worker picks the job up and the video succeeds', { timeout: 120_000 }, async () => {
  const { api, client, worker } = await system();
  const first = worker();
  const { id } = await client.submit(longSpec);
  await untilStatus(api, id, 'rendering');
  first.kill('SIGKILL');
  worker();
  const video = await client.waitFor(id, undefined, 200);
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
  assert.ok(Math.abs(video.output!.durationMs - 12_000) <= 34);
});

test('SIGTERM drains: the worker finishes the job it holds, then exits 0', { timeout: 120_000 }, async () => {
  const { api, client, worker } = await system();
  const w = worker();
  const { id } = await client.submit(longSpec);
  await untilStatus(api, id, 'rendering');
  const exited = new Promise<number | null>((resolve) => w.once('exit', resolve));
  w.kill('SIGTERM');
  assert.equal(await exited, 0);
  // The job finished before the process exited; the settler records it.
  await untilStatus(api, id, 'succeeded');
});

test('Redis restarts (AOF every second): the accepted job survives and renders', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const dir = tempDir();
  const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''];
  const startRedis = async () => {
    const server = spawn('redis-server', redisArgs, { stdio: 'ignore' });
    onCleanup(() => void server.kill('SIGKILL'));
    const probe = connectRedis(`redis://127.0.0.1:${port}`, 'worker');
    await whenReady(probe, 10_000);
    probe.disconnect();
    return server;
  };
  let redis = await startRedis();
  const env = await testEnv({ REDIS_URL: `redis://127.0.0.1:${port}`, WORKER_LOCK_SECONDS: '5' });
  const api = await startApi(configFrom(env), { settleIntervalMs: 500, settleStaleSeconds: 1 });
  onCleanup(() => api.close());
  const client = new VgenClient(api.url, (await registerUser(api.url)).token);

  const { id } = await client.submit(smallSpec() as RenderSpec); // accepted, no worker yet
  await sleep(1_500); // past one AOF fsync
  redis.kill('SIGKILL'); // a crash, not a clean shutdown
  await new Promise((resolve) => redis.once('exit', resolve));
  redis = await startRedis();

  const worker = spawn(process.execPath, ['bin/vgen.js', 'worker'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  onCleanup(() => void worker.kill('SIGKILL'));
  const video = await client.waitFor(id, undefined, 200);
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
});

test('the API restarts while a job renders: the new API settles the result', { timeout: 120_000 }, async () => {
  const env = await testEnv({ WORKER_LOCK_SECONDS: '5', X264_PRESET: 'medium' });
  const first = await startApi(configFrom(env));
  const client = new VgenClient(first.url, (await registerUser(first.url)).token);
  const worker = spawn(process.execPath, ['bin/vgen.js', 'worker'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  onCleanup(() => void worker.kill('SIGKILL'));
  const { id } = await client.submit(longSpec);
  await untilStatus(first, id, 'rendering');
  await first.close(); // no API listens while the job finishes

  const queue = openQueue(env);
  for (let i = 0; i < 600 && (await queue.getJobState(id)) !== 'completed'; i++) await sleep(100);
  assert.equal(await queue.getJobState(id), 'completed');
  const db = await openDb({ databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR! });
  assert.equal((await getVideo(db, id))?.status, 'rendering', 'nothing settled it while no API ran');
  await db.close();

  const second = await startApi(configFrom(env), { settleIntervalMs: 500, settleStaleSeconds: 1 });
  onCleanup(() => second.close());
  await untilStatus(second, id, 'succeeded');
  const row = await getVideo(second.db, id);
  assert.ok(row?.video_key?.endsWith('.mp4'));
});

test('a Redis whose maxmemory-policy is not noeviction is reported at start', async () => {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--maxmemory-policy', 'allkeys-lru'], { stdio: 'ignore' });
  onCleanup(() => void server.kill('SIGKILL'));
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _e, cb) => cb(void lines.push(String(chunk))) }));

  const evicting = connectRedis(`redis://127.0.0.1:${port}`, 'worker');
  onCleanup(() => evicting.disconnect());
  await whenReady(evicting, 5000);
  assert.equal(await checkEvictionPolicy(evicting, log), 'allkeys-lru');
  assert.equal(lines.length, 1);
  assert.match(JSON.parse(lines[0]!).msg, /maxmemory-policy is "allkeys-lru".*noeviction/);

  const fine = connectRedis('redis://127.0.0.1:6379', 'worker');
  onCleanup(() => fine.disconnect());
  await whenReady(fine);
  assert.equal(await checkEvictionPolicy(fine, log), 'noeviction');
  assert.equal(lines.length, 1, 'no warning for noeviction');
});
