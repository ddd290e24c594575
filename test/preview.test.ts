// The animated WebP preview (output.preview), end to end against real Redis,
// Postgres, ffmpeg and a real worker process: a spec that asks for one gets a
// looping animated WebP of its start, uploaded beside the MP4 under the same
// render id and shown as output.previewUrl (signed for a private video, the
// unsigned URL refused); a visibility change moves it with the MP4 and the
// poster and deletes the old file; a render-cache hit shares it; a spec
// without one has previewUrl null and no .webp anywhere. Bad values are a 400
// naming the field. Plus the planner's and the WebP reader's pure parts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startApi, type RunningApi } from '../api/server.js';
import type { VideoBody } from '../api/schemas.js';
import type { Config } from '../engine/config.js';
import { newId } from '../engine/ids.js';
import { estimateRender } from '../engine/render-budget.js';
import { parseSpec, type RenderSpec } from '../engine/spec.js';
import { createStorage, movedKey, outputKey } from '../engine/storage.js';
import { insertVideo, markSucceeded, misplacedMedia } from '../api/video-store.js';
import { plan } from '../worker/planner/index.js';
import { readWebp } from '../worker/webp.js';
import { startRuntime } from '../worker/runtime.js';
import { createLogger } from '../engine/log.js';
import { until, spawnWorker } from './lifecycle-helpers.js';
import { configFrom, registerUser, runCleanups, smallSpec, startS3, tempDir, testEnv } from './helpers.js';

after(runCleanups);

type Output = NonNullable<VideoBody['output']>;
type User = Awaited<ReturnType<typeof registerUser>>;

/** 2.5 s at 320×180, 24 fps: a colour scene, a photo zooming in after a fade, music. */
const previewSpec = (preview: Record<string, unknown>, overrides: Record<string, unknown> = {}) =>
  smallSpec({
    output: { width: 320, height: 180, fps: 24, preview },
    scenes: [
      { duration: 1, background: { color: '#203040' }, caption: { text: 'one' } },
      { duration: 2, background: { image: 'assets/photo.jpg', kenBurns: { zoom: 'in' } }, transition: { type: 'fade', duration: 0.5 } },
    ],
    ...overrides,
  });

function call(base: string, method: string, path: string, token?: string, body?: unknown) {
  return fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** ffprobe's codec name of a file's first stream. */
async function probedCodec(path: string): Promise<string> {
  const { stdout } = await promisify(execFile)('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', path]);
  return stdout.trim();
}

describe('planner: the preview is a third output of the main run', () => {
  const assets = new Map();
  const opts = { workDir: '/tmp/x', fontFile: '/f.ttf', loudness: -16 };
  const specOf = (preview?: Record<string, unknown>, output: Record<string, unknown> = {}) =>
    parseSpec({ version: 1, output: { width: 320, height: 180, fps: 24, ...output, ...(preview && { preview }) }, scenes: [{ duration: 4, background: { color: 'navy' } }] });

  test('asked for: a trimmed, resampled, scaled branch mapped to its own WebP output', () => {
    const p = plan(specOf({ seconds: 2, width: 160 }), assets, opts);
    assert.match(p.filter, /split=3/);
    assert.match(p.filter, /trim=end_frame=48,fps=12,scale=160:-2:flags=bicubic,format=yuv420p\[preview\]/);
    assert.ok(p.preview);
    assert.deepEqual({ frames: p.preview.frames, fps: p.preview.fps, width: p.preview.width, sourceFrames: p.preview.sourceFrames }, { frames: 24, fps: 12, width: 160, sourceFrames: 48 });
    const o = p.preview.options;
    assert.deepEqual(o.slice(0, 4), ['-map', '[preview]', '-frames:v', '25']);
    assert.equal(o[o.indexOf('-c:v') + 1], 'libwebp_anim');
    assert.equal(o[o.indexOf('-loop') + 1], '0');
  });

  test('defaults: 3 s, 320 px; never longer than the video, never wider, never above the video\'s fps', () => {
    const d = plan(specOf({}), assets, opts).preview!;
    assert.deepEqual([d.seconds, d.width, d.fps, d.frames], [3, 320, 12, 36]);
    const short = plan(parseSpec({ version: 1, output: { width: 320, height: 180, fps: 10, preview: { seconds: 6 } }, scenes: [{ duration: 1.5, background: { color: 'navy' } }] }), assets, opts).preview!;
    assert.deepEqual([short.sourceFrames, short.fps, short.frames], [15, 10, 15]);
    const narrow = plan(specOf({}, { width: 128, height: 72 }), assets, opts).preview!;
    assert.equal(narrow.width, 128);
    const oneFrame = plan(parseSpec({ version: 1, output: { width: 320, height: 180, fps: 2, preview: {} }, scenes: [{ duration: 0.5, background: { color: 'navy' } }] }), assets, opts).preview!;
    assert.deepEqual([oneFrame.sourceFrames, oneFrame.fps, oneFrame.frames], [1, 2, 1]);
  });

  test('not asked for: two outputs as before, no preview', () => {
    const p = plan(specOf(), assets, opts);
    assert.equal(p.preview, undefined);
    assert.doesNotMatch(p.filter, /preview|split=3/);
  });
});

describe('readWebp', () => {
  test('refuses what is not a well-formed WebP', () => {
    assert.throws(() => readWebp(Buffer.from('not a webp at all')), /not a WebP/);
    const lying = Buffer.alloc(40);
    lying.write('RIFF', 0, 'latin1');
    lying.writeUInt32LE(32, 4);
    lying.write('WEBPANMF', 8, 'latin1');
    lying.writeUInt32LE(1_000_000, 16); // a chunk claiming far more than the file holds
    assert.throws(() => readWebp(lying), /past the end/);
  });

  test('reads an animated file, and the still file the encoder writes for one frame (lossy or lossless)', async () => {
    const dir = tempDir();
    const encode = async (name: string, source: string, extra: string[] = []) => {
      const path = join(dir, name);
      await promisify(execFile)('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', source, '-c:v', 'libwebp_anim', '-loop', '0', ...extra, '-f', 'webp', path]);
      return readWebp(await readFile(path));
    };
    const moving = await encode('a.webp', 'testsrc2=s=200x100:r=10:d=1');
    assert.deepEqual([moving.width, moving.height, moving.animated, moving.loop, moving.frames, moving.durationMs], [200, 100, true, 0, 10, 1000]);
    for (const extra of [[], ['-lossless', '1']]) {
      const still = await encode(`s${extra.length}.webp`, 'testsrc2=s=322x182:r=2:d=0.5', extra);
      assert.deepEqual([still.width, still.height, still.animated, still.frames], [322, 182, false, 1], extra.join(' '));
    }
  });
});

describe('movedKey', () => {
  test('moves a preview key like the others, and refuses other extensions', () => {
    assert.equal(movedKey('private/videos/vid_a/r1.webp', 'public', 'r2'), 'videos/vid_a/r2.webp');
    assert.equal(movedKey('videos/vid_a/r1.webp', 'private', 'r3', 'vid_b'), 'private/videos/vid_b/r3.webp');
    assert.throws(() => movedKey('videos/vid_a/r1.gif', 'public', 'r2'), /not an output key/);
  });
});

describe('output.preview end to end', () => {
  let api: RunningApi;
  let config: Config;
  let owner: User;

  before(async () => {
    const env = await testEnv();
    config = configFrom(env);
    api = await startApi(config, { settleIntervalMs: 500, settleStaleSeconds: 2 });
    owner = await registerUser(api.url);
    spawnWorker({ ...env, WORKER_CONCURRENCY: '1' });
  });
  after(() => api.close());

  const media = () => config.storage.mediaDir;
  const files = (...parts: string[]) => {
    const dir = join(media(), ...parts);
    return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')).sort() : [];
  };
  const keyOf = (url: string) => new URL(url).pathname.replace(/^\/media\//, '');

  async function submit(spec: unknown, visibility: 'public' | 'private', user = owner): Promise<string> {
    const res = await call(api.url, 'POST', `/v1/videos?visibility=${visibility}`, user.token, spec);
    assert.equal(res.status, 202, await res.clone().text());
    return ((await res.json()) as VideoBody).id;
  }
  async function read(id: string, user = owner): Promise<VideoBody> {
    const res = await call(api.url, 'GET', `/v1/videos/${id}`, user.token);
    assert.equal(res.status, 200);
    return (await res.json()) as VideoBody;
  }
  const settled = (id: string) => until(`${id} settled`, async () => {
    const v = await read(id);
    return v.status === 'queued' || v.status === 'rendering' ? false : v;
  }, 120_000, 200);

  test('bad preview values are a 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ seconds: 0 }, 'output.preview.seconds'],
      [{ seconds: 0.5 }, 'output.preview.seconds'],
      [{ seconds: 7 }, 'output.preview.seconds'],
      [{ seconds: '3' }, 'output.preview.seconds'],
      [{ seconds: 1e308 * 10 }, 'output.preview.seconds'], // JSON null after stringify: not a number
      [{ width: 63 }, 'output.preview.width'],
      [{ width: 642 }, 'output.preview.width'],
      [{ width: 161 }, 'output.preview.width'],
      [{ width: 160.5 }, 'output.preview.width'],
      [{ width: -320 }, 'output.preview.width'],
      [{ width: 480 }, 'output.preview.width'], // wider than the 320 px video
      [{ fps: 30 }, 'output.preview.fps'],
      [{ seconds: 2, format: 'gif' }, 'output.preview.format'],
      ['yes', 'output.preview'],
      [[], 'output.preview'],
      [null, 'output.preview'],
      [true, 'output.preview'],
    ];
    for (const [preview, field] of cases) {
      const res = await call(api.url, 'POST', '/v1/videos', owner.token, previewSpec(preview as Record<string, unknown>));
      const body = (await res.json()) as { error?: { code: string; field?: string; message: string } };
      assert.equal(res.status, 400, `${JSON.stringify(preview)}: ${JSON.stringify(body)}`);
      assert.equal(body.error?.field, field, `${JSON.stringify(preview)}: ${JSON.stringify(body)}`);
    }
    // The bounds themselves pass (checked without rendering), a preset's width counts.
    for (const preview of [{ seconds: 1, width: 64 }, { seconds: 6, width: 320 }, {}])
      assert.doesNotThrow(() => parseSpec(previewSpec(preview)));
    assert.doesNotThrow(() => parseSpec({ ...smallSpec(), output: { preset: '720p', fps: 24, preview: { width: 640 } } }));
    const wide = await call(api.url, 'POST', '/v1/videos', owner.token, { ...smallSpec(), output: { width: 128, height: 72, fps: 24, preview: { width: 320 } } });
    assert.equal(wide.status, 400);
    assert.equal(((await wide.json()) as { error: { field: string } }).error.field, 'output.preview.width');
  });

  let privateId: string;
  let first: Output;

  test('a private render makes an animated WebP beside the MP4, reached only by its signed URL', async () => {
    privateId = await submit(previewSpec({ seconds: 2, width: 160 }), 'private');
    const video = await settled(privateId);
    assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
    first = video.output!;
    assert.ok(first.previewUrl, 'previewUrl is set');
    const [mp4, jpg, webp] = [first.url, first.posterUrl, first.previewUrl].map(keyOf);
    assert.match(webp!, new RegExp(`^private/videos/${privateId}/[0-9a-z]+\\.webp$`));
    assert.equal(webp!.replace(/\.webp$/, ''), mp4!.replace(/\.mp4$/, ''), 'same render id as the MP4');
    assert.equal(jpg!.replace(/\.jpg$/, ''), mp4!.replace(/\.mp4$/, ''));
    assert.match(first.previewUrl, /\?exp=\d+&sig=[\w-]+$/);

    const res = await fetch(first.previewUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/webp');
    assert.match(res.headers.get('cache-control') ?? '', /^private, max-age=\d+$/);
    const bytes = Buffer.from(await res.arrayBuffer());
    const info = readWebp(bytes);
    assert.equal(info.animated, true);
    assert.equal(info.loop, 0, 'loops forever');
    assert.equal(info.width, 160);
    assert.equal(info.height, 90, 'the video\'s aspect');
    // 2 s at 12 fps is 24 frames; the encoder merges identical ones (the still first second is one long frame).
    assert.ok(info.frames >= 10 && info.frames <= 25, `${info.frames} frames`);
    assert.ok(Math.abs(info.durationMs - 2000) <= 100, `${info.durationMs} ms`);
    const local = join(tempDir(), 'p.webp');
    await writeFile(local, bytes);
    assert.equal(await probedCodec(local), 'webp');

    // The unsigned URL, and a signature of another key, answer like a missing file.
    const unsigned = await fetch(`${api.url}/media/${webp}`);
    assert.equal(unsigned.status, 404);
    await unsigned.arrayBuffer();
    const borrowed = new URL(first.url).search;
    const swapped = await fetch(`${api.url}/media/${webp}${borrowed}`);
    assert.equal(swapped.status, 404);
    await swapped.arrayBuffer();
    assert.deepEqual(files('videos', privateId), [], 'nothing under the public prefix');
    assert.equal(files('private', 'videos', privateId).length, 3);
  });

  test('PATCH visibility moves the preview with the MP4 and poster and deletes the old one', async () => {
    const oldKey = keyOf(first.previewUrl!);
    const res = await call(api.url, 'PATCH', `/v1/videos/${privateId}`, owner.token, { visibility: 'public' });
    assert.equal(res.status, 200);
    const moved = ((await res.json()) as VideoBody).output!;
    const newKey = keyOf(moved.previewUrl!);
    assert.match(newKey, new RegExp(`^videos/${privateId}/[0-9a-z]+\\.webp$`));
    assert.doesNotMatch(moved.previewUrl!, /sig=/, 'a public URL, unsigned');
    const got = await fetch(moved.previewUrl!);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'image/webp');
    assert.equal(readWebp(Buffer.from(await got.arrayBuffer())).width, 160);
    await until('the old files deleted', () => files('private', 'videos', privateId).length === 0, 10_000);
    assert.equal(existsSync(join(media(), oldKey)), false);
    const old = await fetch(first.previewUrl!);
    assert.equal(old.status, 404, 'the old signed URL no longer serves');
    await old.arrayBuffer();
    assert.equal(files('videos', privateId).length, 3);
    const [row] = await api.db.query<{ preview_key: string }>('SELECT preview_key FROM videos WHERE id = $1', [privateId]);
    assert.equal(row!.preview_key, newKey);

    // And back: private again, a new signed preview, the public file gone.
    const back = await call(api.url, 'PATCH', `/v1/videos/${privateId}`, owner.token, { visibility: 'private' });
    assert.equal(back.status, 200);
    const again = ((await back.json()) as VideoBody).output!;
    assert.match(keyOf(again.previewUrl!), new RegExp(`^private/videos/${privateId}/[0-9a-z]+\\.webp$`));
    assert.match(again.previewUrl!, /sig=/);
    await until('the public files deleted', () => files('videos', privateId).length === 0, 10_000);
    first = again;
  });

  test('a render-cache hit shares the preview; the source moving away keeps it for the hit', async () => {
    const spec = previewSpec({ seconds: 1.5, width: 128 });
    const sourceId = await submit(spec, 'private');
    const source = await settled(sourceId);
    assert.equal(source.status, 'succeeded', JSON.stringify(source.error));
    assert.equal(source.output!.cached, false);
    const id = await submit(spec, 'private');
    const video = await settled(id);
    assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
    assert.equal(video.output!.cached, true);
    assert.equal(keyOf(video.output!.previewUrl!), keyOf(source.output!.previewUrl!), 'the same file, not a copy');
    // The source moves to public keys: the shared private preview stays for the hit.
    const res = await call(api.url, 'PATCH', `/v1/videos/${sourceId}`, owner.token, { visibility: 'public' });
    assert.equal(res.status, 200);
    await until('the source\'s deletions done', async () => (await api.db.query('SELECT 1 FROM media_deletions')).length === 0, 10_000);
    const kept = await fetch((await read(id)).output!.previewUrl!);
    assert.equal(kept.status, 200, 'still served: another row references it');
    const info = readWebp(Buffer.from(await kept.arrayBuffer()));
    assert.deepEqual([info.animated, info.width, info.height], [true, 128, 72]);
    // The hit moves too: now nothing references the old private files, and they go.
    assert.equal((await call(api.url, 'PATCH', `/v1/videos/${id}`, owner.token, { visibility: 'public' })).status, 200);
    await until('the shared private files deleted', () => files('private', 'videos', sourceId).length === 0, 10_000);
  });

  test('maintenance moves a preview left under the wrong prefix, even when the MP4 and poster are placed', async () => {
    // A settled row written directly (no job: nothing renders it): MP4 and poster public, the preview still private.
    const id = newId('vid');
    await insertVideo(api.db, { id, userId: owner.id, spec: parseSpec(previewSpec({})), visibility: 'public' });
    const storage = createStorage(config, () => api.url);
    const dir = tempDir();
    const keys = { mp4: outputKey(id, 'r1', 'mp4'), jpg: outputKey(id, 'r1', 'jpg'), webp: outputKey(id, 'r1', 'webp', 'private') };
    for (const [ext, key] of Object.entries(keys)) {
      await writeFile(join(dir, ext), `${ext} of ${id}`);
      await storage.put(key, join(dir, ext), ext === 'webp' ? 'image/webp' : 'application/octet-stream');
    }
    assert.ok(await markSucceeded(api.db, id, { videoKey: keys.mp4, posterKey: keys.jpg, previewKey: keys.webp, durationMs: 2500, width: 320, height: 180, bytes: 1 }));
    const before = (await read(id)).output!;
    assert.match(before.previewUrl!, /\/media\/private\/videos\/.+\.webp\?exp=\d+&sig=/, 'still reachable, signed, until moved');
    assert.equal((await api.maintenance.runOnce()).moved >= 1, true);
    const after = (await read(id)).output!;
    assert.match(keyOf(after.previewUrl!), new RegExp(`^videos/${id}/[0-9a-z]+\\.webp$`));
    assert.equal(keyOf(after.url), keys.mp4, 'the placed files stay where they are');
    const got = await fetch(after.previewUrl!);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'image/webp');
    assert.equal(await got.text(), `webp of ${id}`);
    await until('the misplaced preview deleted', () => !existsSync(join(media(), keys.webp)), 10_000);
    assert.deepEqual(await misplacedMedia(api.db, 100), []);
  });

  test('a spec without preview has previewUrl null and writes no .webp', async () => {
    const id = await submit(smallSpec({ output: { width: 256, height: 144, fps: 24 } }), 'public');
    const video = await settled(id);
    assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
    assert.equal(video.output!.previewUrl, null);
    assert.equal(video.output!.cached, false);
    const all = [...files('videos', id), ...files('private', 'videos', id)];
    assert.equal(all.length, 2, all.join());
    assert.ok(all.every((f) => !f.endsWith('.webp')));
    const [row] = await api.db.query<{ preview_key: string | null }>('SELECT preview_key FROM videos WHERE id = $1', [id]);
    assert.equal(row!.preview_key, null);
  });
});

describe('output.preview with S3 storage', () => {
  test('the preview is stored as image/webp, its public URL serves it, and a move keeps the type', async () => {
    const s3 = await startS3();
    // The S3 SDK reads credentials from process.env (its default chain).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const env = await testEnv(s3.env);
    const api = await startApi(configFrom(env), { settleIntervalMs: 500, settleStaleSeconds: 2 });
    try {
      const user = await registerUser(api.url);
      spawnWorker({ ...env, WORKER_CONCURRENCY: '1' });
      const res = await call(api.url, 'POST', '/v1/videos?visibility=public', user.token, previewSpec({ seconds: 1, width: 96 }));
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as VideoBody;
      const video = await until('settled', async () => {
        const v = (await (await call(api.url, 'GET', `/v1/videos/${id}`, user.token)).json()) as VideoBody;
        return v.status === 'queued' || v.status === 'rendering' ? false : v;
      }, 120_000, 200);
      assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
      const url = video.output!.previewUrl!;
      assert.ok(url.startsWith(`${s3.endpoint}/${s3.bucket}/videos/${id}/`) && url.endsWith('.webp'), url);
      const got = await fetch(url);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), 'image/webp');
      const info = readWebp(Buffer.from(await got.arrayBuffer()));
      assert.deepEqual([info.width, info.height, info.animated], [96, 54, true]);
      assert.ok(Math.abs(info.durationMs - 1000) <= 90, `${info.durationMs} ms`);
      // Made private: copied to a new private key (S3 CopyObject) with the same type, the public object gone.
      const patched = await call(api.url, 'PATCH', `/v1/videos/${id}`, user.token, { visibility: 'private' });
      assert.equal(patched.status, 200);
      const signed = ((await patched.json()) as VideoBody).output!.previewUrl!;
      assert.match(new URL(signed).pathname, new RegExp(`/private/videos/${id}/[0-9a-z]+\\.webp$`));
      const moved = await fetch(signed);
      assert.equal(moved.status, 200);
      assert.equal(moved.headers.get('content-type'), 'image/webp');
      await moved.arrayBuffer();
      const old = await fetch(url);
      assert.notEqual(old.status, 200, 'the public object was deleted');
      await old.arrayBuffer();
    } finally {
      await api.close();
    }
  });
});

describe('a canceled render with a preview', () => {
  test('a result that lands after the cancel has all three files deleted, the preview too', async () => {
    const env = await testEnv();
    const config = configFrom(env);
    const api = await startApi(config, { settleIntervalMs: 500, settleStaleSeconds: 2 });
    const storage = createStorage(config, () => api.url);
    const user = await registerUser(api.url);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let started = false;
    // Writes real files where a worker would, then returns only after the cancel (a render already uploading).
    const worker = startRuntime({
      queueName: config.queueName, connection: { url: config.redisUrl, maxRetriesPerRequest: null }, concurrency: 1, log: createLogger('silent'),
      processor: async (job) => {
        const dir = tempDir();
        const keys = { mp4: outputKey(job.data.videoId, 'late', 'mp4', 'private'), jpg: outputKey(job.data.videoId, 'late', 'jpg', 'private'), webp: outputKey(job.data.videoId, 'late', 'webp', 'private') };
        for (const [ext, key] of Object.entries(keys)) {
          await writeFile(join(dir, ext), ext);
          await storage.put(key, join(dir, ext), 'application/octet-stream');
        }
        started = true;
        await released;
        return { videoKey: keys.mp4, posterKey: keys.jpg, previewKey: keys.webp, durationMs: 2500, width: 320, height: 180, bytes: 1 };
      },
    });
    try {
      const res = await call(api.url, 'POST', '/v1/videos?visibility=private', user.token, previewSpec({}));
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as VideoBody;
      await until('the files written', () => started, 20_000);
      assert.equal((await call(api.url, 'POST', `/v1/videos/${id}/cancel`, user.token)).status, 200);
      const dir = join(config.storage.mediaDir, 'private', 'videos', id);
      const left = () => (existsSync(dir) ? readdirSync(dir) : []);
      assert.equal(left().length, 3);
      release();
      await until('the late files deleted', () => left().length === 0, 20_000);
      const [row] = await api.db.query<{ status: string; preview_key: string | null }>('SELECT status, preview_key FROM videos WHERE id = $1', [id]);
      assert.deepEqual({ ...row }, { status: 'canceled', preview_key: null });
    } finally {
      release();
      await worker.close();
      await api.close();
    }
  });
});

describe('render budget', () => {
  test('a preview adds its encode to the estimate, more for a wider one', () => {
    const spec = (preview?: Record<string, unknown>) => parseSpec(smallSpec({ output: { preset: 'vertical', fps: 30, ...(preview && { preview }) } }));
    const none = estimateRender(spec()).render;
    const small = estimateRender(spec({ seconds: 1, width: 128 })).render;
    const big = estimateRender(spec({ seconds: 6, width: 640 })).render;
    assert.ok(none < small && small < big, `${none} < ${small} < ${big}`);
  });
});

// The type the spec exports carries the field (a compile-time check as much as a test).
const _typed: RenderSpec['output']['preview'] = { seconds: 3, width: 320 };
void _typed;
