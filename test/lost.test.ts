// Lost workers are not the job's fault. A job whose worker dies is re-queued by
// the stall check and has its own budget of such losses (WORKER_LOST_LIMIT,
// BullMQ's maxStalledCount), apart from its attempts; past the budget it
// fails as worker_lost. And, as an operator would try it: renders through a
// dozen SIGKILLs of real workers all end succeeded.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Processor } from 'bullmq';
import { pino } from 'pino';
import { startApi } from '../api/server.js';
import { userError } from '../api/settler.js';
import { VgenClient } from '../cli/client.js';
import { renderQueue, type RenderJobData, type RenderResult } from '../engine/queue.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, onCleanup, REDIS_URL, registerUser, runCleanups, testEnv, uniqueQueue } from './helpers.js';
import { openRegistry, slowSpec, spawnWorker, until, type WorkerProc } from './lifecycle-helpers.js';

after(runCleanups);

const log = pino({ level: 'silent' });
const RESULT: RenderResult = { videoKey: 'k.mp4', posterKey: 'k.jpg', durationMs: 1000, width: 320, height: 180, bytes: 1 };

/** The production runtime with a short lock, on a queue of the test's own; jobs get ONE attempt. */
function lab(lostLimit: number) {
  const queueName = uniqueQueue('t');
  const queue = renderQueue(queueName, { url: REDIS_URL }, 1);
  onCleanup(() => queue.close());
  const runtime = (processor: Processor<RenderJobData, RenderResult>) => {
    const worker = startRuntime({ queueName, connection: { url: REDIS_URL, maxRetriesPerRequest: null }, concurrency: 1, lockSeconds: 0.5, lostLimit, log, processor });
    onCleanup(() => worker.close(true));
    return worker;
  };
  /** A worker takes the job and dies with it (its lock is no longer renewed, nothing is reported). */
  const loseWorker = async (jobId: string) => {
    let took = false;
    const worker = runtime(async (job) => {
      if (job.id === jobId) took = true;
      return new Promise<RenderResult>(() => {});
    });
    await until(`a worker holding ${jobId}`, () => took, 15_000, 20);
    await worker.close(true); // a SIGKILL, as far as Redis can tell
  };
  const rendered: string[] = [];
  const healthy = () => runtime(async (job) => {
    rendered.push(job.id!);
    return RESULT;
  });
  return { queue, loseWorker, healthy, rendered };
}

test('lost workers have their own budget: within it the job still completes on its one attempt; past it, it fails as worker_lost', { timeout: 60_000 }, async () => {
  const within = lab(2);
  await within.queue.add('render', { videoId: 'vid_a', spec: slowSpec }, { jobId: 'vid_a' });
  await within.loseWorker('vid_a');
  await within.loseWorker('vid_a');
  within.healthy();
  await until('vid_a completed', async () => (await within.queue.getJobState('vid_a')) === 'completed', 15_000);
  const a = (await within.queue.getJob('vid_a'))!;
  assert.equal(a.stalledCounter, 2, 'two workers lost');
  assert.equal(a.attemptsMade, 1, 'no attempt used by the losses (the job had one)');

  const past = lab(2);
  await past.queue.add('render', { videoId: 'vid_b', spec: slowSpec }, { jobId: 'vid_b' });
  for (let i = 0; i < 3; i++) await past.loseWorker('vid_b');
  past.healthy();
  await until('vid_b failed', async () => (await past.queue.getJobState('vid_b')) === 'failed', 15_000);
  const b = (await past.queue.getJob('vid_b'))!;
  assert.equal(b.failedReason, 'job stalled more than allowable limit');
  assert.deepEqual(past.rendered, [], 'failed without running again');
  assert.deepEqual(userError(b.failedReason), { code: 'worker_lost', message: userError('stalled').message });
  assert.equal(userError(b.failedReason).code, 'worker_lost');
});

// The operator's full run (40 renders, 89 SIGKILLs) is the same test at scale:
//   VGEN_CHAOS_RENDERS=40 VGEN_CHAOS_KILLS=89 node --import tsx --test test/lost.test.ts
const CHAOS_RENDERS = Number(process.env.VGEN_CHAOS_RENDERS ?? 8);
const CHAOS_KILLS = Number(process.env.VGEN_CHAOS_KILLS ?? 12);
const CHAOS_SECONDS = 60 + 6 * CHAOS_KILLS;

test(`chaos: ${CHAOS_RENDERS} renders through ${CHAOS_KILLS} SIGKILLs of three workers all succeed`, { timeout: (CHAOS_SECONDS + 60 + 4 * CHAOS_RENDERS) * 1000 }, async (t) => {
  const env = await testEnv({ WORKER_LOCK_SECONDS: '5', X264_PRESET: 'medium', RENDER_ATTEMPTS: '1' });
  const api = await startApi(configFrom(env), { settleIntervalMs: 1000 });
  onCleanup(() => api.close());
  const client = new VgenClient(api.url, (await registerUser(api.url)).token);
  const { registry } = await openRegistry(env);

  const live = new Set<WorkerProc>();
  const spawnOne = () => {
    const w = spawnWorker(env);
    live.add(w);
    void w.exited.then(() => live.delete(w));
  };
  for (let i = 0; i < 3; i++) spawnOne();

  const ids = await Promise.all(Array.from({ length: CHAOS_RENDERS }, () => client.submit(slowSpec).then((v) => v.id)));
  const lostLimit = 5; // WORKER_LOST_LIMIT's default
  const lossesOf = new Map<string, number>();
  let kills = 0;
  const done = async () => (await Promise.all(ids.map((id) => client.video(id)))).every((v) => v.status === 'succeeded' || v.status === 'failed');

  const t0 = Date.now();
  while (kills < CHAOS_KILLS && Date.now() - t0 < CHAOS_SECONDS * 1000) {
    await sleep(400);
    // Kill a worker that is rendering (one whose job still has losses to spare), and start another.
    const busy = (await registry.list()).filter((r) => r.state === 'busy' && r.currentJob && (lossesOf.get(r.currentJob) ?? 0) < lostLimit);
    const victim = busy.map((r) => ({ r, w: [...live].find((w) => w.child.pid === r.pid) })).find((x) => x.w);
    if (!victim) {
      if (await done()) break;
      continue;
    }
    victim.w!.child.kill('SIGKILL');
    live.delete(victim.w!);
    lossesOf.set(victim.r.currentJob!, (lossesOf.get(victim.r.currentJob!) ?? 0) + 1);
    kills++;
    spawnOne();
  }
  const videos = await Promise.all(ids.map((id) => client.waitFor(id, undefined, 250)));
  assert.deepEqual(videos.map((v) => [v.id, v.status, v.error?.code]).filter(([, s]) => s !== 'succeeded'), []);
  assert.ok(kills >= Math.ceil(CHAOS_KILLS * 2 / 3), `only ${kills} kills landed on busy workers`);
  t.diagnostic(`${kills} SIGKILLs, losses per job ${JSON.stringify([...lossesOf.values()])}, ${Date.now() - t0} ms`);
});
