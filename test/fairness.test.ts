// Fair scheduling and per-user quotas (engine/fairness.ts, api/quotas.ts):
// the priority rule; one user's backlog does not hold up another user's video
// (one worker, the real runtime with a sleeping render); the operator lane;
// the active-video limit (429 + Retry-After, then room again once videos
// settle) and the per-user submit rate limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import { getVideo } from '../api/video-store.js';
import { writeOperatorToken } from '../cli/up.js';
import { FIRST_ROUND_PRIORITY, HIGH_LANE_PRIORITY, MAX_PRIORITY, renderPriority } from '../engine/fairness.js';
import { createLogger } from '../engine/log.js';
import { queueDepth, type RenderResult } from '../engine/queue.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, onCleanup, openQueue, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

after(runCleanups);

const RESULT: RenderResult = { videoKey: 'videos/t/a.mp4', posterKey: 'videos/t/a.jpg', durationMs: 1000, width: 320, height: 180, bytes: 1 };
type Answer = { status: number; body: { id?: string; error?: { code: string; field?: string } }; retryAfter: string | null };

async function submit(base: string, token: string, query = '', headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}/v1/videos${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify(smallSpec()),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'], retryAfter: res.headers.get('retry-after') };
}

function startWorker(env: Record<string, string>, processor: () => Promise<RenderResult>) {
  const worker = startRuntime({
    queueName: env.QUEUE_NAME!, connection: { url: env.REDIS_URL!, maxRetriesPerRequest: null }, concurrency: 1,
    log: createLogger('silent'), processor,
  });
  onCleanup(() => worker.close(true));
  return worker;
}

describe('renderPriority', () => {
  test('a user\'s n-th outstanding video is round n; the operator lane is ahead of every round', () => {
    assert.equal(renderPriority({ lane: 'normal', active: 0 }), FIRST_ROUND_PRIORITY);
    assert.equal(renderPriority({ lane: 'normal', active: 29 }), FIRST_ROUND_PRIORITY + 29);
    assert.equal(renderPriority({ lane: 'high', active: 500, highestQueued: 40 }), HIGH_LANE_PRIORITY);
    assert.ok(HIGH_LANE_PRIORITY < FIRST_ROUND_PRIORITY && HIGH_LANE_PRIORITY >= 1, 'never 0: BullMQ would put it in `wait`, ahead of every prioritized job');
  });

  test('never ahead of the same user\'s queued videos; capped at BullMQ\'s limit', () => {
    // Three of ten settled meanwhile, but the user's queued videos reach 11: the new one goes after them.
    assert.equal(renderPriority({ lane: 'normal', active: 7, highestQueued: 11 }), 11);
    assert.equal(renderPriority({ lane: 'normal', active: 7, highestQueued: 4 }), 9);
    // A queued operator-lane video (priority 1) does not pull the next normal one forward.
    assert.equal(renderPriority({ lane: 'normal', active: 0, highestQueued: HIGH_LANE_PRIORITY }), FIRST_ROUND_PRIORITY);
    assert.equal(renderPriority({ lane: 'normal', active: 10 ** 9 }), MAX_PRIORITY);
    assert.equal(renderPriority({ lane: 'normal', active: -3 }), FIRST_ROUND_PRIORITY);
  });
});

describe('one worker, user A submits 30 videos, then user B one', () => {
  let api: RunningApi;
  let env: Record<string, string>;
  before(async () => {
    env = await testEnv({ USER_MAX_ACTIVE_VIDEOS: '30' });
    api = await startApi(configFrom(env));
  });
  after(() => api.close());

  test('B\'s video starts before A\'s fourth; an operator\'s ?priority=high starts next; A\'s 31st is refused', async () => {
    const queue = openQueue(env);
    const [a, b] = [await registerUser(api.url), await registerUser(api.url)];
    const operator = await writeOperatorToken(api.db, tempDir());
    startWorker(env, async () => {
      await sleep(1_000);
      return RESULT;
    });

    const aIds: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await submit(api.url, a.token);
      assert.equal(r.status, 202);
      aIds.push(r.body.id!);
    }
    const bAnswer = await submit(api.url, b.token);
    assert.equal(bAnswer.status, 202);
    const bId = bAnswer.body.id!;

    // A has 30 videos queued or rendering: the most allowed. The refusal says when to try again.
    const refused = await submit(api.url, a.token);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'too_many_active_videos');
    assert.equal(refused.retryAfter, '15');

    // Promoted parked jobs land in `prioritized`, which queueDepth (and the autoscaler) counts.
    const counts = await queue.getJobCounts('wait', 'prioritized');
    assert.equal(counts.wait, 0, 'every render job has a priority');
    assert.ok(counts.prioritized! >= 25, `prioritized: ${counts.prioritized}`);
    assert.ok((await queueDepth(queue)) >= counts.prioritized!);

    // Priorities as stored on the jobs: A's rise with A's backlog, B's first is round one.
    const prio = async (id: string) => (await queue.getJob(id))!.opts.priority!;
    const aPrio = await Promise.all(aIds.map(prio));
    for (let i = 1; i < aPrio.length; i++) assert.ok(aPrio[i]! >= aPrio[i - 1]!, `A's priorities never fall: ${aPrio}`);
    assert.ok(aPrio.at(-1)! >= 20, `A's last is far back: ${aPrio}`);
    assert.equal(await prio(bId), FIRST_ROUND_PRIORITY);
    assert.equal((await getVideo(api.db, bId))!.status, 'queued');

    // The operator lane: the next job to start once accepted, ahead of every waiting one.
    const op = await submit(api.url, operator, '?priority=high');
    const opAccepted = Date.now();
    assert.equal(op.status, 202);
    assert.equal(await prio(op.body.id!), HIGH_LANE_PRIORITY);

    const started = async (id: string) => (await queue.getJob(id))?.processedOn;
    for (let i = 0; i < 150 && !(await started(aIds[3]!)); i++) await sleep(100);
    const [aFourth, bStart, opStart] = [await started(aIds[3]!), await started(bId), await started(op.body.id!)];
    assert.ok(aFourth && bStart && opStart, 'A\'s fourth, B\'s and the operator\'s videos all started');
    assert.ok(bStart < aFourth, `B started at ${bStart}, A's fourth at ${aFourth}`);
    for (const id of [...aIds, bId]) {
      const t = await started(id);
      assert.ok(!t || t < opAccepted || t > opStart, `${id} started at ${t}, after the operator's job was accepted (${opAccepted}) and before it started (${opStart})`);
    }

    // A's first video has settled: A has room for one more again.
    for (let i = 0; i < 50 && (await getVideo(api.db, aIds[0]!))!.status !== 'succeeded'; i++) await sleep(100);
    assert.equal((await submit(api.url, a.token)).status, 202);
  });
});

describe('per-user limits', () => {
  let api: RunningApi;
  let env: Record<string, string>;
  before(async () => {
    env = await testEnv({ USER_MAX_ACTIVE_VIDEOS: '2', USER_SUBMITS_PER_MINUTE: '8' });
    api = await startApi(configFrom(env));
  });
  after(() => api.close());

  test('videos queued + rendering: 429 too_many_active_videos with Retry-After, a replay still answers, room again once they settle', async () => {
    const u = await registerUser(api.url);
    const first = await submit(api.url, u.token, '', { 'idempotency-key': 'limit-1' });
    assert.equal(first.status, 202);
    assert.equal((await submit(api.url, u.token)).status, 202);
    const refused = await submit(api.url, u.token, '', { 'idempotency-key': 'limit-3' });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error!.code, 'too_many_active_videos');
    assert.ok(Number(refused.retryAfter) >= 1, `Retry-After: ${refused.retryAfter}`);
    // The refusal stored nothing: the key is free. A replay of an accepted request is no new video.
    const replay = await submit(api.url, u.token, '', { 'idempotency-key': 'limit-1' });
    assert.deepEqual([replay.status, replay.body.id], [202, first.body.id]);
    // Another user is not affected.
    assert.equal((await submit(api.url, (await registerUser(api.url)).token)).status, 202);

    // A worker settles the videos; the same request with the same key now goes through.
    const worker = startWorker(env, async () => RESULT);
    const settled = async () => (await api.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM videos WHERE user_id = $1 AND status IN ('queued', 'rendering')`, [u.id]))[0]!.n === 0;
    for (let i = 0; i < 100 && !(await settled()); i++) await sleep(100);
    assert.ok(await settled());
    await worker.close();
    assert.equal((await submit(api.url, u.token, '', { 'idempotency-key': 'limit-3' })).status, 202);
  });

  test('submissions per minute: 429 rate_limited with Retry-After, counted per user', async () => {
    const u = await registerUser(api.url);
    const statuses: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await submit(api.url, u.token);
      statuses.push(r.status === 202 ? '202' : `${r.status} ${r.body.error!.code}`);
    }
    // Refused submissions count too: the limit is on attempts.
    assert.deepEqual(statuses, ['202', '202', ...Array(6).fill('429 too_many_active_videos')]);
    const limited = await submit(api.url, u.token);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error!.code, 'rate_limited');
    const after = Number(limited.retryAfter);
    assert.ok(after >= 1 && after <= 60, `Retry-After: ${limited.retryAfter}`);
    // Someone else still submits.
    assert.equal((await submit(api.url, (await registerUser(api.url)).token)).status, 202);
  });

  test('?priority=high is for operators only: a user asking for it is refused, naming the field', async () => {
    const u = await registerUser(api.url);
    const refused = await submit(api.url, u.token, '?priority=high');
    assert.equal(refused.status, 403);
    assert.deepEqual([refused.body.error!.code, refused.body.error!.field], ['forbidden', 'priority']);
    assert.equal((await submit(api.url, u.token, '?priority=normal')).status, 202);
    const bad = await submit(api.url, u.token, '?priority=urgent');
    assert.deepEqual([bad.status, bad.body.error!.code, bad.body.error!.field], [400, 'invalid_request', 'priority']);
    const count = await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM videos WHERE user_id = $1', [u.id]);
    assert.equal(count[0]!.n, 1, 'only the normal-lane video was created');
  });
});
