// Draining real `vgen worker` processes: an idle worker exits 0 and leaves the
// registry; a busy one finishes its job first; a drain whose deadline comes
// first (registry request, SIGTERM) hands the job back to the queue without
// using an attempt, and another worker renders it, once.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { RenderSpec } from '../engine/spec.js';
import { openQueue, runCleanups, testEnv } from './helpers.js';
import { openRegistry, slowSpec, spawnWorker, until } from './lifecycle-helpers.js';

after(runCleanups);

// 1280x720 for 10 s: several seconds with the medium preset, under two with ultrafast.
const bigSpec = { ...slowSpec, output: { width: 1280, height: 720, fps: 30 } } as RenderSpec;

/** MP4s of a video under either prefix: workers upload under private/ and the API (not running here) places public ones at settle. */
const mp4sOf = (env: Record<string, string>, id: string) =>
  [join('private', 'videos', id), join('videos', id)].flatMap((dir) => {
    try {
      return readdirSync(join(env.DATA_DIR!, 'media', dir)).filter((f) => f.endsWith('.mp4'));
    } catch {
      return [];
    }
  });

async function oneWorker(env: Record<string, string>, extra: Record<string, string> = {}) {
  const { registry } = await openRegistry(env);
  const proc = spawnWorker(env, extra);
  const rec = await until('the worker registered and idle', async () => (await registry.list()).find((w) => w.pid === proc.child.pid && w.state === 'idle'), 30_000);
  return { registry, proc, rec };
}

test('an idle worker told to drain deregisters and exits 0', { timeout: 60_000 }, async () => {
  const env = await testEnv();
  const { registry, proc, rec } = await oneWorker(env);
  assert.equal(rec.provider, 'local');
  assert.equal(rec.instanceId, undefined);
  assert.equal(rec.version, '0.1.0');
  assert.equal(rec.jobsDone, 0);
  assert.ok(rec.startedAt <= rec.lastHeartbeat && rec.lastHeartbeat <= Date.now());

  assert.equal(await registry.requestDrain(rec.id), true);
  assert.equal(await proc.exited, 0, proc.output.join('\n'));
  assert.equal(await registry.get(rec.id), null);
  assert.deepEqual(await registry.list(), []);
});

test('a busy worker told to drain finishes its job, then exits 0', { timeout: 60_000 }, async () => {
  const env = await testEnv({ X264_PRESET: 'medium' });
  const queue = openQueue(env);
  const { registry, proc, rec } = await oneWorker(env);
  const id = 'vid_drainbusy';
  await queue.add('render', { videoId: id, spec: slowSpec }, { jobId: id });
  await until('the worker busy with the job', async () => {
    const w = await registry.get(rec.id);
    return w?.state === 'busy' && w.currentJob === id;
  });
  assert.equal(await registry.requestDrain(rec.id), true);
  await until('the worker draining', async () => (await registry.get(rec.id))?.state === 'draining');
  assert.equal(await proc.exited, 0, proc.output.join('\n'));
  const job = await queue.getJob(id);
  assert.equal(await job!.getState(), 'completed');
  assert.equal(job!.attemptsMade, 1);
  assert.equal(mp4sOf(env, id).length, 1);
  assert.equal(await registry.get(rec.id), null);
});

test('a drain with a deadline hands the job back at once: no attempt used, another worker renders it once', { timeout: 90_000 }, async () => {
  const env = await testEnv({ X264_PRESET: 'medium', LOG_LEVEL: 'info' });
  const queue = openQueue(env);
  const { registry, proc, rec } = await oneWorker(env);
  const id = 'vid_handback';
  await queue.add('render', { videoId: id, spec: bigSpec }, { jobId: id });
  await until('the worker busy with the job', async () => (await registry.get(rec.id))?.currentJob === id);
  assert.equal(await registry.requestDrain(rec.id, { deadlineMs: 500 }), true);
  assert.equal(await proc.exited, 0, proc.output.join('\n'));

  // Back in wait, not delayed, not failed, no attempt and no stall counted.
  let job = (await queue.getJob(id))!;
  assert.equal(await job.getState(), 'waiting');
  assert.equal(job.attemptsMade, 0);
  assert.equal(job.stalledCounter, 0);
  assert.equal(job.failedReason, undefined);
  assert.equal(job.attemptsStarted, 1);
  assert.deepEqual(mp4sOf(env, id), []);
  assert.ok(proc.output.some((l) => l.includes('job handed back')), 'the worker logged the hand-back');
  assert.equal(await registry.get(rec.id), null);

  // Another worker takes it right away (not after a stall timeout).
  const t0 = Date.now();
  spawnWorker(env, { X264_PRESET: 'ultrafast' });
  await until('the job completed elsewhere', async () => (await queue.getJobState(id)) === 'completed', 60_000);
  job = (await queue.getJob(id))!;
  assert.equal(job.attemptsMade, 1, 'only the attempt that completed counts');
  assert.equal(job.attemptsStarted, 2);
  assert.equal(mp4sOf(env, id).length, 1, 'rendered to completion once');
  assert.ok(Date.now() - t0 < 30_000);
});

test('SIGTERM drains against WORKER_DRAIN_DEADLINE_SECONDS: the job goes back to the queue and the worker exits 0', { timeout: 60_000 }, async () => {
  const env = await testEnv({ X264_PRESET: 'medium', WORKER_DRAIN_DEADLINE_SECONDS: '1' });
  const queue = openQueue(env);
  const { registry, proc, rec } = await oneWorker(env);
  const id = 'vid_sigterm';
  await queue.add('render', { videoId: id, spec: bigSpec }, { jobId: id });
  await until('the worker busy with the job', async () => (await registry.get(rec.id))?.currentJob === id);
  const t0 = Date.now();
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0, proc.output.join('\n'));
  assert.ok(Date.now() - t0 < 5_000, `exited ${Date.now() - t0} ms after SIGTERM`);
  const job = (await queue.getJob(id))!;
  assert.equal(await job.getState(), 'waiting');
  assert.equal(job.attemptsMade, 0);
  assert.deepEqual(await registry.list(), []);
});
