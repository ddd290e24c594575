// Spot interruptions through a protocol-level fake of the instance metadata
// service (IMDSv2, token enforced): the poller itself, then a real worker that
// gets a notice mid-render, hands its job back and exits, while the video
// still succeeds on another worker.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { startApi } from '../api/server.js';
import { getVideo } from '../api/video-store.js';
import { VgenClient } from '../cli/client.js';
import type { RenderSpec } from '../engine/spec.js';
import { startSpotWatch, type SpotNotice } from '../worker/lifecycle/spot.js';
import { FakeImds } from './fakes/imds.js';
import { configFrom, freePort, onCleanup, openQueue, registerUser, runCleanups, testEnv } from './helpers.js';
import { openRegistry, slowSpec, spawnWorker, until } from './lifecycle-helpers.js';

after(runCleanups);

async function fakeImds() {
  const imds = await new FakeImds().start();
  onCleanup(() => imds.stop());
  return imds;
}

test('the poller: token first, 404 means no notice, each notice reported once, an expired token renewed, a dead endpoint survived', async () => {
  const imds = await fakeImds();
  const notices: SpotNotice[] = [];
  const watch = startSpotWatch({ endpoint: imds.url, intervalMs: 60_000, log: pino({ level: 'silent' }), onNotice: (n) => notices.push(n) });
  onCleanup(() => watch.stop());
  await watch.poll();
  assert.deepEqual(notices, []);
  assert.equal(imds.requests[0]?.method, 'PUT', 'a token comes first');
  assert.ok(imds.requests.slice(1).every((r) => r.method === 'GET' && r.status === 404), JSON.stringify(imds.requests));

  imds.rebalance = { noticeTime: '2026-03-01T10:00:00Z' };
  await watch.poll();
  await watch.poll();
  assert.deepEqual(notices, [{ kind: 'rebalance', noticeTime: Date.parse('2026-03-01T10:00:00Z') }]);

  imds.expireTokens();
  imds.instanceAction = { action: 'terminate', time: '2026-03-01T10:02:00Z' };
  await watch.poll();
  await watch.poll();
  assert.deepEqual(notices[1], { kind: 'interruption', action: 'terminate', time: Date.parse('2026-03-01T10:02:00Z') });
  assert.equal(notices.length, 2);
  assert.equal(imds.requests.filter((r) => r.method === 'PUT').length, 2, 'one new token after the 401');
  assert.equal(imds.requests.filter((r) => r.status === 401).length, 1);

  // Nothing listens there: logged, not thrown.
  const dead = startSpotWatch({ endpoint: `http://127.0.0.1:${await freePort()}`, intervalMs: 60_000, timeoutMs: 300, log: pino({ level: 'silent' }), onNotice: () => assert.fail() });
  await dead.poll();
  dead.stop();
});

test('a spot notice mid-render: the worker hands the job back before the deadline and exits 0; the video succeeds on another worker', { timeout: 90_000 }, async () => {
  const imds = await fakeImds();
  const env = await testEnv({ X264_PRESET: 'medium' });
  const api = await startApi(configFrom(env), { settleIntervalMs: 1000 });
  onCleanup(() => api.close());
  const client = new VgenClient(api.url, (await registerUser(api.url)).token);
  const { registry } = await openRegistry(env);

  const spotted = spawnWorker(env, { WORKER_PROVIDER: 'ec2', WORKER_ID: 'i-0123456789abcdef0', IMDS_ENDPOINT: imds.url, IMDS_POLL_SECONDS: '1' });
  const rec = await until('the ec2 worker registered', () => registry.get('i-0123456789abcdef0'), 30_000);
  assert.equal(rec.provider, 'ec2');
  assert.equal(rec.instanceId, 'i-0123456789abcdef0');

  const spec = { ...slowSpec, output: { width: 1280, height: 720, fps: 30 } } as RenderSpec;
  const { id } = await client.submit(spec);
  await until('the worker rendering it', async () => (await registry.get(rec.id))?.currentJob === id);
  // Two minutes' notice on AWS; here 11.5 s, so the 10 s margin leaves 1.5 s.
  imds.instanceAction = { action: 'terminate', time: new Date(Date.now() + 11_500).toISOString() };
  const t0 = Date.now();
  assert.equal(await spotted.exited, 0, spotted.output.join('\n'));
  assert.ok(Date.now() - t0 < 8_000, `exited ${Date.now() - t0} ms after the notice`);
  const queue = openQueue(env);
  const job = (await queue.getJob(id))!;
  assert.equal(await job.getState(), 'prioritized'); // back waiting for a worker, with its priority (engine/fairness.ts)
  assert.equal(job.attemptsMade, 0, 'a spot interruption is not the job\'s fault');
  assert.equal(await registry.get(rec.id), null);
  assert.ok(imds.requests.length > 0 && imds.requests.every((r) => r.status !== 401), 'every read carried a valid token');

  spawnWorker(env, { X264_PRESET: 'ultrafast' });
  const video = await client.waitFor(id, undefined, 200);
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
  assert.equal((await queue.getJob(id))!.attemptsMade, 1);
  for (let i = 0; i < 20 && (await getVideo(api.db, id))?.status !== 'succeeded'; i++) await sleep(100);
});
