// The video row moves queued → rendering → succeeded | failed exactly once,
// whichever path (event stream or reconciler) brings the result, however often.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'bullmq';
import { startApi, type RunningApi } from '../api/server.js';
import { getVideo, markFailed, markSucceeded } from '../api/video-store.js';
import { RenderError } from '../engine/errors.js';
import { createLogger } from '../engine/log.js';
import type { RenderResult } from '../engine/queue.js';
import { VgenClient } from '../cli/client.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, openQueue, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';
import type { RenderSpec } from '../engine/spec.js';

let api: RunningApi;
let env: Record<string, string>;
let client: VgenClient;
let queue: ReturnType<typeof openQueue>;
const log = createLogger('silent');
const fakeResult: RenderResult = { videoKey: 'videos/x/a.mp4', posterKey: 'videos/x/a.jpg', durationMs: 2000, width: 320, height: 180, bytes: 1 };

before(async () => {
  env = await testEnv({ RENDER_ATTEMPTS: '2' });
  api = await startApi(configFrom(env), { settleIntervalMs: 60_000 });
  client = new VgenClient(api.url, (await registerUser(api.url)).token);
  queue = openQueue(env);
});
after(async () => {
  await api.close();
  await runCleanups();
});

/** The production worker runtime with a chosen processor in place of ffmpeg. */
function runtime(processor: Parameters<typeof startRuntime>[0]['processor']): Worker {
  return startRuntime({ queueName: env.QUEUE_NAME!, connection: { url: env.REDIS_URL!, maxRetriesPerRequest: null }, concurrency: 1, log, processor });
}

const waitSettled = (id: string) => client.waitFor(id, undefined, 100);

test('a repeated or late result changes nothing', async () => {
  const worker = runtime(async () => fakeResult);
  try {
    const video = await waitSettled((await client.submit(smallSpec() as RenderSpec)).id);
    assert.equal(video.status, 'succeeded');
    const before = await getVideo(api.db, video.id);
    // A replayed success, a late failure, and a reconciler pass: all no-ops.
    assert.equal(await markSucceeded(api.db, video.id, { ...fakeResult, videoKey: 'videos/x/other.mp4' }), false);
    assert.equal(await markFailed(api.db, video.id, 'render_failed', 'late'), false);
    await api.db.query(`UPDATE videos SET updated_at = now() - interval '1 hour' WHERE id = $1`, [video.id]);
    assert.equal(await api.settler.reconcile(), 0);
    const afterRow = await getVideo(api.db, video.id);
    assert.deepEqual({ ...afterRow, updated_at: null }, { ...before, updated_at: null });
  } finally {
    await worker.close();
  }
});

test('a job that fails all its attempts ends failed with a readable reason', async () => {
  let attempts = 0;
  const worker = runtime(async () => {
    attempts++;
    throw new Error(`asset_unavailable: ${new RenderError('asset_unavailable').message}`);
  });
  try {
    const video = await waitSettled((await client.submit(smallSpec() as RenderSpec)).id);
    assert.equal(attempts, 2, 'retried once before failing');
    assert.equal(video.status, 'failed');
    assert.deepEqual(video.error, { code: 'asset_unavailable', message: 'An asset could not be downloaded.' });
  } finally {
    await worker.close();
  }
});

test('an internal error is shown to the user as a generic render failure', async () => {
  const worker = runtime(async () => {
    throw new Error('ENOSPC: /tmp/secret/path is full');
  });
  try {
    const video = await waitSettled((await client.submit(smallSpec() as RenderSpec)).id);
    assert.equal(video.status, 'failed');
    assert.equal(video.error?.code, 'render_failed');
    assert.doesNotMatch(video.error?.message ?? '', /secret/);
  } finally {
    await worker.close();
  }
});

test('the reconciler settles results that arrived while no API was listening, and jobs that were lost', async () => {
  await api.settler.close(); // stop the event stream: as if every API process were down
  const done = (await client.submit(smallSpec() as RenderSpec)).id;
  const worker = runtime(async () => fakeResult);
  for (let i = 0; i < 100 && (await queue.getJobState(done)) !== 'completed'; i++) await sleep(50);
  await worker.close();
  assert.equal((await getVideo(api.db, done))?.status, 'queued', 'no listener moved it');

  // A row whose job vanished from Redis (never enqueued, or evicted).
  const lost = (await client.submit(smallSpec() as RenderSpec)).id;
  await (await queue.getJob(lost))!.remove();

  await api.db.query(`UPDATE videos SET updated_at = now() - interval '1 hour', created_at = now() - interval '1 hour' WHERE id = ANY($1)`, [[done, lost]]);
  assert.equal(await api.settler.reconcile(), 2);
  assert.equal((await getVideo(api.db, done))?.status, 'succeeded');
  const row = await getVideo(api.db, lost);
  assert.deepEqual([row?.status, row?.error_code], ['failed', 'lost']);
});

