// One video from the API to a playable MP4: register → submit → wait →
// download → ffprobe, with API and worker in one process and as separate
// processes, storing to a local folder and to an S3-protocol server.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi } from '../api/server.js';
import { renderQueue } from '../engine/queue.js';
import { totalSeconds, type RenderSpec } from '../engine/spec.js';
import { VgenClient } from '../cli/client.js';
import { probe } from '../worker/ffmpeg.js';
import { startWorker } from '../worker/main.js';
import { configFrom, download, freePort, onCleanup, registerUser, runCleanups, smallSpec, startS3, tempDir, testEnv } from './helpers.js';

after(runCleanups);

const spec = smallSpec({
  output: { width: 320, height: 240, fps: 25 },
  scenes: [
    { duration: 1.2, background: { color: '#203040' }, caption: { text: 'Hello' } },
    { duration: 1.5, background: { image: 'assets/photo.jpg' }, caption: { text: '你好，世界' }, transition: { type: 'fade', duration: 0.4 } },
    { duration: 1, background: { image: 'assets/photo2.jpg' }, transition: { type: 'slideleft', duration: 0.3 } },
  ],
}) as RenderSpec;

/** Submit, wait, download both outputs and check them against the spec. */
async function renderAndCheck(baseUrl: string, s3: boolean) {
  const user = await registerUser(baseUrl);
  const client = new VgenClient(baseUrl, user.token);
  const queued = await client.submit(spec);
  assert.equal(queued.status, 'queued');
  const seen = new Set<string>();
  const video = await client.waitFor(queued.id, (v) => seen.add(v.status), 200);
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
  assert.equal(video.progress, 1);
  assert.ok(video.output);
  assert.match(video.output.url, /^http:\/\/127\.0\.0\.1:\d+\/.+\.mp4$/);

  const dir = tempDir();
  const mp4 = join(dir, 'out.mp4');
  const headers = await download(video.output.url, mp4);
  if (s3) assert.equal(headers.get('cache-control'), 'public, max-age=31536000, immutable');
  else {
    // Local media is served with range requests, so players can seek.
    const part = await fetch(video.output.url, { headers: { range: 'bytes=0-99' } });
    assert.equal(part.status, 206);
    assert.match(part.headers.get('content-range') ?? '', /^bytes 0-99\/\d+$/);
    assert.equal((await part.arrayBuffer()).byteLength, 100);
    assert.match(headers.get('cache-control') ?? '', /immutable/);
  }
  const info = await probe(mp4);
  assert.equal(info.video?.codec, 'h264');
  assert.equal(info.video?.pixFmt, 'yuv420p');
  assert.equal(info.audio?.codec, 'aac');
  assert.equal(info.video?.width, spec.output.width);
  assert.equal(info.video?.height, spec.output.height);
  assert.equal(info.video?.fps, spec.output.fps);
  const expectedMs = totalSeconds(spec) * 1000;
  const frameMs = 1000 / spec.output.fps;
  assert.ok(Math.abs(info.video!.durationMs - expectedMs) <= frameMs, `video lasts ${info.video!.durationMs} ms, spec says ${expectedMs} ms`);
  assert.ok(Math.abs(video.output.durationMs - expectedMs) <= frameMs + 30, `reported ${video.output.durationMs} ms`);

  const poster = join(dir, 'poster.jpg');
  await download(video.output.posterUrl, poster);
  const p = await probe(poster);
  assert.equal(p.video?.width, spec.output.width);
  assert.match(p.video?.codec ?? '', /mjpeg/);
  return video;
}

for (const storage of ['fs', 's3'] as const) {
  describe(`${storage} storage`, () => {
    test('single process: API and worker in one process', async () => {
      const s3 = storage === 's3' ? await startS3() : undefined;
      // The S3 SDK reads credentials from process.env (its default chain).
      if (s3) Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
      const workDir = tempDir();
      const config = configFrom(await testEnv({ ...s3?.env, WORK_DIR: workDir }));
      const api = await startApi(config);
      const worker = await startWorker(config);
      try {
        await renderAndCheck(api.url, !!s3);
        assert.deepEqual(readdirSync(workDir), [], 'the job removed its temp folder');
      } finally {
        await worker.close();
        await api.close();
      }
    });

    test('split: API and worker as separate processes', async () => {
      const s3 = storage === 's3' ? await startS3() : undefined;
      const port = await freePort();
      const env = { ...process.env, ...(await testEnv(s3?.env)), PORT: String(port) };
      const children: ChildProcess[] = [];
      const run = (role: string) => {
        const child = spawn(process.execPath, ['bin/vgen.js', role], { env, stdio: ['ignore', 'ignore', 'inherit'] });
        children.push(child);
        onCleanup(() => void child.kill('SIGKILL'));
      };
      run('api');
      run('worker');
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 100; i++) {
        if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break;
        await sleep(100);
      }
      await renderAndCheck(base, !!s3);
      // SIGTERM stops both cleanly.
      await Promise.all(children.map((c) => new Promise((resolve) => { c.once('exit', resolve); c.kill('SIGTERM'); })));
      assert.deepEqual(children.map((c) => c.exitCode), [0, 0]);
    });
  });
}

test('a render that cannot succeed ends failed with a reason a user can read', async () => {
  const workDir = tempDir();
  const config = configFrom(await testEnv({ RENDER_ATTEMPTS: '1', WORK_DIR: workDir }));
  const api = await startApi(config);
  const worker = await startWorker(config);
  try {
    const user = await registerUser(api.url);
    const client = new VgenClient(api.url, user.token);
    const bad = { ...spec, audio: { src: 'https://assets.invalid/missing.mp3' } };
    const video = await client.waitFor((await client.submit(bad)).id, undefined, 200);
    assert.equal(video.status, 'failed');
    assert.equal(video.output, null);
    assert.equal(video.error?.code, 'asset_unavailable');
    assert.match(video.error?.message ?? '', /assets\.invalid/);
    assert.deepEqual(readdirSync(workDir), [], 'the failed job removed its temp folder too');

    // A job enqueued by something other than the API is checked again: a bad
    // spec fails at once, without retries, and nothing is fetched or rendered.
    const queue = renderQueue(config.queueName, { url: config.redisUrl }, 3);
    try {
      const job = await queue.add('render', { videoId: 'vid_direct', spec: { ...spec, scenes: [] } }, { jobId: 'vid_direct' });
      for (let i = 0; i < 100 && !(await job.isFailed()); i++) await sleep(50);
      const failed = await queue.getJob('vid_direct');
      assert.match(failed?.failedReason ?? '', /^spec_invalid: .*scenes/);
      assert.equal(failed?.attemptsMade, 1);
    } finally {
      await queue.close();
    }
  } finally {
    await worker.close();
    await api.close();
  }
});
