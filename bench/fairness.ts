// fair_wait_ratio: does one user's backlog hold up everyone else?
//
// Two workers (vgen's worker runtime, the code production runs, with a render
// that sleeps 1 s) and ten users: one "heavy" user submits 100 videos, then
// nine "light" users submit 5 each. The figure is the light users' mean wait
// (job added → job started) divided by their mean wait when the heavy user
// submits nothing. Goal: ≤ 1.5. The baseline is the same figure for plain FIFO
// (jobs without a priority, as vgen queued them before fair scheduling).
//
// Driven at the queue level, not through HTTP: each job is added parked and
// promoted like the API does (api/videos.ts), with the priority from the same
// pure function the API uses (engine/fairness.ts, renderPriority). The inputs
// the API reads from Postgres (the user's unsettled videos, the highest
// priority among their queued ones) are kept here from the workers' events.
//
// Run once each: no heavy user (≈ 23 s: with equal render times the mean wait
// over all jobs does not depend on their order, so FIFO's figure without the
// heavy user is the same), fair with the heavy user (≈ 25 s), FIFO with the
// heavy user (≈ 73 s: the light users wait behind all 100). A run stops as
// soon as every light job has started.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderPriority } from '../engine/fairness.js';
import { createLogger } from '../engine/log.js';
import { PARK_DELAY_MS, renderQueue, type RenderJobData, type RenderResult } from '../engine/queue.js';
import { startRuntime } from '../worker/runtime.js';
import type { Figure } from './run.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
const RESULT: RenderResult = { videoKey: 'videos/b/a.mp4', posterKey: 'videos/b/a.jpg', durationMs: 1000, width: 320, height: 180, bytes: 1 };
const SPEC: RenderJobData['spec'] = { version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: 1, background: { color: 'black' } }] };

export interface FairnessScenario {
  policy: 'fair' | 'fifo';
  heavyJobs: number;
  lightUsers: number;
  lightJobs: number;
  workers: number;
  renderMs: number;
}

/** One run on a fresh queue; the light users' mean wait in seconds. */
export async function lightMeanWait(s: FairnessScenario): Promise<number> {
  const queueName = `bench-fair-${randomBytes(4).toString('hex')}`;
  const queue = renderQueue(queueName, connection, 1);
  const log = createLogger('silent');

  // What the API would read from Postgres for each user at submit time.
  const owner = new Map<string, string>();
  const unsettled = new Map<string, number>();
  const queued = new Map<string, Map<string, number>>(); // user → job id → priority, until the job starts
  const waits = new Map<string, number>(); // light job id → seconds from add to start
  let lightLeft = s.lightUsers * s.lightJobs;
  let allStarted!: () => void;
  const done = new Promise<void>((resolve) => (allStarted = resolve));

  const workers = Array.from({ length: s.workers }, () => {
    const w = startRuntime({
      queueName, connection, concurrency: 1, log,
      processor: async () => {
        await sleep(s.renderMs);
        return RESULT;
      },
    });
    w.on('active', (job) => {
      const user = owner.get(job.id!)!;
      queued.get(user)?.delete(job.id!);
      if (user !== 'heavy') {
        waits.set(job.id!, (job.processedOn! - job.timestamp) / 1000);
        if (--lightLeft === 0) allStarted();
      }
    });
    w.on('completed', (job) => {
      const user = owner.get(job.id!)!;
      unsettled.set(user, unsettled.get(user)! - 1);
    });
    return w;
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  const submit = async (user: string) => {
    const videoId = `vid_${randomBytes(12).toString('hex')}`;
    const mine = queued.get(user) ?? new Map<string, number>();
    queued.set(user, mine);
    const priority = s.policy === 'fair'
      ? renderPriority({ lane: 'normal', active: unsettled.get(user) ?? 0, highestQueued: Math.max(0, ...mine.values()) })
      : undefined;
    owner.set(videoId, user);
    unsettled.set(user, (unsettled.get(user) ?? 0) + 1);
    if (priority !== undefined) mine.set(videoId, priority);
    const job = await queue.add('render', { videoId, spec: SPEC }, { jobId: videoId, delay: PARK_DELAY_MS, priority });
    await job.promote();
  };
  try {
    for (let i = 0; i < s.heavyJobs; i++) await submit('heavy');
    for (let u = 0; u < s.lightUsers; u++) for (let i = 0; i < s.lightJobs; i++) await submit(`light-${u}`);
    await done;
  } finally {
    await Promise.all(workers.map((w) => w.close(true)));
    await queue.obliterate({ force: true });
    await queue.close();
  }
  return [...waits.values()].reduce((a, b) => a + b, 0) / waits.size;
}

export async function* fairnessBench(): AsyncGenerator<Figure & Record<string, unknown>> {
  const scenario = { heavyJobs: 100, lightUsers: 9, lightJobs: 5, workers: 2, renderMs: 1_000 };
  const alone = await lightMeanWait({ ...scenario, policy: 'fair', heavyJobs: 0 });
  const fair = await lightMeanWait({ ...scenario, policy: 'fair' });
  const fifo = await lightMeanWait({ ...scenario, policy: 'fifo' });
  const value = fair / alone;
  const baseline = fifo / alone;
  yield {
    bench: 'queue', metric: 'fair_wait_ratio', value, unit: '×', baseline, ratio: value / baseline, goal: 1.5,
    lightMeanWaitSeconds: { alone, fair, fifo },
  };
}
