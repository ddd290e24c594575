// POST /v1/videos/:id/cancel: a queued job is removed, a render in progress
// loses its ffmpeg within 2 s, the video ends canceled exactly once and a late
// result changes nothing. And each job's time limit, from its spec.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Worker } from 'bullmq';
import { startApi, type RunningApi } from '../api/server.js';
import { getVideo } from '../api/video-store.js';
import { ApiError, VgenClient } from '../cli/client.js';
import { writeOperatorToken } from '../cli/up.js';
import { loadConfig } from '../engine/config.js';
import { createLogger } from '../engine/log.js';
import type { RenderResult } from '../engine/queue.js';
import { estimateRender, renderTimeLimitSeconds, stageWeights } from '../engine/render-budget.js';
import type { RenderSpec } from '../engine/spec.js';
import { startWorker } from '../worker/main.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, onCleanup, openQueue, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

after(runCleanups);

// Long enough that ffmpeg still runs when we cancel it (1280x720, 60 s, preset medium).
const longSpec = smallSpec({
  output: { width: 1280, height: 720, fps: 30 },
  scenes: [
    { duration: 30, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 30.5, background: { image: 'assets/photo2.jpg' }, caption: { text: '二' }, transition: { type: 'dissolve', duration: 0.5 } },
  ],
}) as RenderSpec;

/** ffmpeg processes whose command line names the video (its work folder does). */
function ffmpegOf(videoId: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)ffmpeg$/.test(argv[0]!) && argv.some((a) => a.includes(videoId))) found.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs: number): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

const code = (p: Promise<unknown>) => p.then(() => 200, (e: ApiError) => `${e.status} ${e.code}`);

describe('cancel', () => {
  let api: RunningApi;
  let env: Record<string, string>;
  let client: VgenClient;
  let queue: ReturnType<typeof openQueue>;
  const fakeResult: RenderResult = { videoKey: 'videos/x/late.mp4', posterKey: 'videos/x/late.jpg', durationMs: 2000, width: 320, height: 180, bytes: 1 };

  before(async () => {
    env = await testEnv({ RENDER_ATTEMPTS: '3', X264_PRESET: 'medium' });
    api = await startApi(configFrom(env));
    client = new VgenClient(api.url, (await registerUser(api.url)).token);
    queue = openQueue(env);
  });
  after(() => api.close());

  /** The production runtime with a stand-in processor (no cancel subscription: it finishes whatever happens). */
  function runtime(processor: Parameters<typeof startRuntime>[0]['processor']): Worker {
    const w = startRuntime({ queueName: env.QUEUE_NAME!, connection: { url: env.REDIS_URL!, maxRetriesPerRequest: null }, concurrency: 1, log: createLogger('silent'), processor });
    onCleanup(() => w.close());
    return w;
  }

  test('while queued: the job is removed and nothing renders it', async () => {
    const video = await client.submit(smallSpec() as RenderSpec);
    const canceled = await client.cancel(video.id);
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.output, null);
    assert.equal(await queue.getJob(video.id), undefined, 'the job is gone from Redis');
    let ran = false;
    const w = runtime(async () => {
      ran = true;
      return fakeResult;
    });
    await sleep(500);
    await w.close();
    assert.equal(ran, false);
    assert.equal((await client.video(video.id)).status, 'canceled');
    assert.equal(await code(client.cancel(video.id)), '409 conflict', 'canceling twice is a conflict');
  });

  test('while rendering: its ffmpeg is gone within 2 s, no retry, temp files removed, canceled once', { timeout: 60_000 }, async () => {
    const workDir = tempDir();
    const worker = await startWorker(configFrom({ ...env, WORK_DIR: workDir }));
    onCleanup(() => worker.close());
    try {
    const video = await client.submit(longSpec);
    await until('ffmpeg rendering the video', () => ffmpegOf(video.id).length > 0, 30_000);
    assert.equal((await client.video(video.id)).status, 'rendering');

    const t0 = Date.now();
    const canceled = await client.cancel(video.id);
    assert.equal(canceled.status, 'canceled');
    await until('no ffmpeg of the video', () => ffmpegOf(video.id).length === 0, 2_000);
    assert.ok(Date.now() - t0 <= 2_000, `ffmpeg lived ${Date.now() - t0} ms after the cancel`);

    // The job ends failed for BullMQ, once, with no attempt left to retry it.
    const job = await until('the job to fail', async () => ((await queue.getJob(video.id))?.finishedOn ? queue.getJob(video.id) : undefined), 10_000);
    assert.match(job.failedReason, /^canceled: /);
    assert.equal(job.attemptsMade, 1);
    await until('the work folder removed', () => readdirSync(workDir).length === 0, 5_000);
    const row = await getVideo(api.db, video.id);
    assert.equal(row?.status, 'canceled');
    assert.equal(row?.error_code, null, 'the worker\'s failure did not touch the row');
    assert.equal(await code(client.cancel(video.id)), '409 conflict');
    } finally {
      await worker.close();
    }
  });

  test('a late worker result changes nothing; its files are discarded', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let started = false;
    const w = runtime(async () => {
      started = true;
      await released; // ignores the cancel, like a render already uploading
      return fakeResult;
    });
    const video = await client.submit(smallSpec() as RenderSpec);
    await until('the render to start', () => started && client.video(video.id).then((v) => v.status === 'rendering'), 10_000);
    await client.cancel(video.id);
    const before = await getVideo(api.db, video.id);
    release();
    await until('the job to complete', async () => (await queue.getJob(video.id))?.returnvalue, 10_000);
    // The settler saw the result: the late files are recorded for deletion (or already deleted), the row is as it was.
    await sleep(300);
    const after = await getVideo(api.db, video.id);
    assert.deepEqual(after, before);
    assert.equal(after?.video_key, null);
    assert.equal((await client.video(video.id)).status, 'canceled');
    await w.close();
  });

  test('after success it is a 409; someone else\'s is a 404; an operator may cancel anyone\'s', async () => {
    const w = runtime(async () => fakeResult);
    const done = await client.waitFor((await client.submit(smallSpec() as RenderSpec)).id, undefined, 50);
    await w.close();
    assert.equal(done.status, 'succeeded');
    assert.equal(await code(client.cancel(done.id)), '409 conflict');

    await queue.pause();
    try {
      const queued = await client.submit(smallSpec() as RenderSpec);
      const stranger = new VgenClient(api.url, (await registerUser(api.url)).token);
      assert.equal(await code(stranger.cancel(queued.id)), '404 not_found');
      assert.equal(await code(stranger.cancel('vid_0000000000000000000000000')), '404 not_found');
      assert.equal((await client.video(queued.id)).status, 'queued', 'a refused cancel changes nothing');
      // `vgen cancel` with an operator token.
      const token = await writeOperatorToken(api.db, tempDir());
      const { stdout } = await promisify(execFile)(process.execPath, ['bin/vgen.js', 'cancel', queued.id, '--api', api.url, '--token', token]);
      assert.match(stdout, new RegExp(`^${queued.id} canceled`));
      assert.equal((await client.video(queued.id)).status, 'canceled');
    } finally {
      await queue.resume();
    }
  });
});

describe('time limit', () => {
  const bounds = { minSeconds: 60, maxSeconds: 900 };
  const spec = (output: object, seconds: number, extra: object = {}) =>
    smallSpec({ output, scenes: [{ duration: seconds, background: { color: 'navy' } }], audio: undefined, ...extra }) as RenderSpec;

  test('grows with frames, size and layers; floor and ceiling from the config', () => {
    const small = spec({ width: 320, height: 180, fps: 24 }, 2);
    assert.equal(renderTimeLimitSeconds(small, bounds), 60, 'a tiny render gets the floor');
    const hd = spec({ width: 1920, height: 1080, fps: 30 }, 120);
    const hdLimit = renderTimeLimitSeconds(hd, bounds);
    assert.ok(hdLimit > 60 && hdLimit < 900, `2 min of 1080p: ${hdLimit} s`);
    assert.ok(renderTimeLimitSeconds(spec({ width: 1920, height: 1080, fps: 30 }, 60), bounds) < hdLimit, 'fewer frames, less time');
    assert.ok(renderTimeLimitSeconds(spec({ width: 1280, height: 720, fps: 30 }, 120), bounds) < hdLimit, 'fewer pixels, less time');
    const layered = smallSpec({
      output: { width: 1920, height: 1080, fps: 30 },
      scenes: Array.from({ length: 4 }, (_, i) => ({ duration: 30.5, background: { color: 'navy' }, caption: { text: 'x' }, ...(i ? { transition: { type: 'fade', duration: 0.5 } } : {}) })),
      audio: undefined,
    }) as RenderSpec;
    assert.ok(estimateRender(layered).render > estimateRender(hd).render, 'captions and transitions cost more per frame');
    assert.equal(renderTimeLimitSeconds(spec({ width: 1920, height: 1080, fps: 60 }, 300), bounds), 900, 'the ceiling');
    assert.equal(renderTimeLimitSeconds(hd, { minSeconds: 1, maxSeconds: 5 }), 5);
    // A downloaded asset adds its allowance.
    const remote = smallSpec({ audio: { src: 'https://example.com/a.mp3' } }) as RenderSpec;
    assert.ok(renderTimeLimitSeconds(remote, { minSeconds: 1, maxSeconds: 900 }) > renderTimeLimitSeconds(smallSpec() as RenderSpec, { minSeconds: 1, maxSeconds: 900 }));
  });

  test('stage weights cover 0–1 in order', () => {
    const w = stageWeights(smallSpec() as RenderSpec);
    assert.equal(w.fetch[0], 0);
    assert.equal(w.upload[1], 1);
    assert.ok(w.fetch[1] === w.render[0] && w.render[1] === w.upload[0] && w.fetch[1] < w.render[1]);
  });

  test('config: the ceiling defaults to RENDER_TIMEOUT_SECONDS and may not exceed it', () => {
    assert.deepEqual(loadConfig({}).worker.timeLimit, { minSeconds: 60, maxSeconds: 900 });
    assert.deepEqual(loadConfig({ RENDER_TIMEOUT_SECONDS: '30' }).worker.timeLimit, { minSeconds: 30, maxSeconds: 30 });
    assert.throws(() => loadConfig({ RENDER_TIME_LIMIT_MAX_SECONDS: '901' }), /RENDER_TIME_LIMIT_MAX_SECONDS/);
    assert.throws(() => loadConfig({ RENDER_TIME_LIMIT_MIN_SECONDS: '100', RENDER_TIME_LIMIT_MAX_SECONDS: '50' }), /RENDER_TIME_LIMIT_MIN_SECONDS/);
  });

  test('a stuck render is killed at its limit, retried once, then failed as render_timeout', { timeout: 60_000 }, async () => {
    const workDir = tempDir();
    const env = await testEnv({ RENDER_ATTEMPTS: '3', X264_PRESET: 'medium', WORK_DIR: workDir, RENDER_TIME_LIMIT_MIN_SECONDS: '1', RENDER_TIME_LIMIT_MAX_SECONDS: '2' });
    const api = await startApi(configFrom(env));
    onCleanup(() => api.close());
    const worker = await startWorker(configFrom(env));
    onCleanup(() => worker.close());
    const client = new VgenClient(api.url, (await registerUser(api.url)).token);
    const t0 = Date.now();
    const video = await client.waitFor((await client.submit(longSpec)).id, undefined, 100);
    assert.equal(video.status, 'failed');
    assert.equal(video.error?.code, 'render_timeout');
    const job = await openQueue(env).getJob(video.id);
    assert.equal(job?.attemptsMade, 2, 'the first time-out was retried, the second was final (of 3 attempts)');
    assert.ok(Date.now() - t0 < 30_000, 'killed long before RENDER_TIMEOUT_SECONDS');
    assert.deepEqual(ffmpegOf(video.id), []);
    await until('the work folder removed', () => readdirSync(workDir).length === 0, 5_000);
  });
});
