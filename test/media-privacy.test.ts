// Private videos are reachable only through short-lived signed URLs, answered
// with Cache-Control: private; anything else about a private file answers
// exactly like a missing file. Public videos keep immutable URLs. PATCH
// changes visibility at once, moving files to new keys under the other prefix.
// Against real Postgres, Redis, a local media folder and s3rver; settled videos
// are made by writing files through the storage driver and settling the row,
// so no ffmpeg runs here.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { UnrecoverableError } from 'bullmq';
import { startApi, type RunningApi } from '../api/server.js';
import { markSucceeded } from '../api/video-store.js';
import { VgenClient } from '../cli/client.js';
import { type Config } from '../engine/config.js';
import { createLogger } from '../engine/log.js';
import { mediaSigningKey, signMediaKey } from '../engine/media-url.js';
import type { RenderSpec } from '../engine/spec.js';
import { createStorage, IMMUTABLE_CACHE, outputKey, type Storage } from '../engine/storage.js';
import { findFont } from '../worker/ffmpeg.js';
import { renderProcessor } from '../worker/render-job.js';
import { startRuntime } from '../worker/runtime.js';
import { configFrom, registerUser, runCleanups, smallSpec, startS3, tempDir, testEnv } from './helpers.js';

after(runCleanups);

type Output = { url: string; posterUrl: string };
type Video = { id: string; status: string; visibility: string; output: Output | null };
type User = Awaited<ReturnType<typeof registerUser>>;

const UNKNOWN_ID = 'vid_0000000000000000000000000';

function call(base: string, method: string, path: string, token?: string, body?: unknown) {
  return fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Status, headers (less the ones that must differ: date, connection) and body of a GET. */
async function answer(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const kept = [...res.headers].filter(([k]) => !['date', 'connection', 'keep-alive'].includes(k));
  return { status: res.status, headers: Object.fromEntries(kept), body: await res.text() };
}

let renderSeq = 0;

/**
 * A succeeded video of `owner`: submitted through the API, its files written
 * through the storage driver where a worker would (under private/ when
 * private), and its row settled.
 */
async function settledVideo(api: RunningApi, storage: Storage, owner: User, visibility: 'public' | 'private') {
  const res = await call(api.url, 'POST', `/v1/videos?visibility=${visibility}`, owner.token, smallSpec());
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as Video;
  const renderId = `r${Date.now().toString(36)}${renderSeq++}`;
  const dir = tempDir();
  const content = { mp4: `mp4 of ${id}`.repeat(50), jpg: `jpg of ${id}` };
  const keys = { mp4: outputKey(id, renderId, 'mp4', visibility), jpg: outputKey(id, renderId, 'jpg', visibility) };
  for (const ext of ['mp4', 'jpg'] as const) {
    writeFileSync(join(dir, ext), content[ext]);
    await storage.put(keys[ext], join(dir, ext), ext === 'mp4' ? 'video/mp4' : 'image/jpeg');
  }
  assert.ok(await markSucceeded(api.db, id, { videoKey: keys.mp4, posterKey: keys.jpg, durationMs: 2000, width: 320, height: 180, bytes: 1 }));
  return { id, keys, content };
}

/**
 * A worker running the real render pipeline (ffmpeg, worker/render-job.ts) for
 * the videos in `ids` only (jobs of settledVideo's submits are refused at once).
 */
function realWorker(config: Config, storage: Storage, ids: Set<string>) {
  const log = createLogger('silent');
  const processor = renderProcessor({ config, storage, fontFile: findFont(), log });
  return startRuntime({
    queueName: config.queueName, connection: { url: config.redisUrl, maxRetriesPerRequest: null }, concurrency: 1, log,
    processor: async (job, token, signal) => {
      if (!ids.has(job.id!)) throw new UnrecoverableError('render_failed: not this test');
      return processor(job, token, signal);
    },
  });
}

/** Files under a folder of the fs media dir (none if it does not exist). */
const filesIn = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : []);

async function read(api: RunningApi, id: string, token: string): Promise<Video> {
  const res = await call(api.url, 'GET', `/v1/videos/${id}`, token);
  assert.equal(res.status, 200);
  return (await res.json()) as Video;
}

async function patch(api: RunningApi, id: string, token: string | undefined, body: unknown) {
  const res = await call(api.url, 'PATCH', `/v1/videos/${id}`, token, body);
  return { status: res.status, body: (await res.json()) as Video & { error?: { code: string; field?: string } } };
}

describe('fs storage: /media', () => {
  let api: RunningApi;
  let config: Config;
  let storage: Storage;
  let owner: User;
  let other: User;
  let missing: (path: string) => Promise<Awaited<ReturnType<typeof answer>>>;

  before(async () => {
    config = configFrom(await testEnv());
    api = await startApi(config, { settleIntervalMs: 3_600_000 });
    storage = createStorage(config, () => api.url);
    owner = await registerUser(api.url);
    other = await registerUser(api.url);
    missing = (path) => answer(`${api.url}/media/${path}`);
  });
  after(() => api.close());

  const mediaPath = (url: string) => new URL(url).pathname.replace(/^\/media\//, '');

  test('a private video is served only through its signed URL, with Cache-Control: private', async () => {
    const v = await settledVideo(api, storage, owner, 'private');
    const { output } = await read(api, v.id, owner.token);
    assert.ok(output);
    assert.match(output.url, new RegExp(`^${api.url}/media/private/videos/${v.id}/[^/?]+\\.mp4\\?exp=\\d+&sig=[\\w-]+$`));
    assert.match(output.posterUrl, /\/media\/private\/videos\/.+\.jpg\?exp=\d+&sig=/);

    const ok = await fetch(output.url);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('cache-control') ?? '', /^private, max-age=(3[56]\d\d)$/);
    assert.equal(await ok.text(), v.content.mp4);
    const part = await fetch(output.url, { headers: { range: 'bytes=0-9' } });
    assert.equal(part.status, 206);
    assert.equal((await part.text()).length, 10);
    const poster = await fetch(output.posterUrl);
    assert.equal(poster.status, 200);
    assert.equal(await poster.text(), v.content.jpg);

    // Everything short of a valid signature answers exactly like a missing file.
    const gone = await missing(`private/videos/${UNKNOWN_ID}/nothing.mp4`);
    assert.equal(gone.status, 404);
    assert.equal(gone.headers['cache-control'], 'no-store');
    const url = new URL(output.url);
    const exp = url.searchParams.get('exp')!;
    const sig = url.searchParams.get('sig')!;
    const flipped = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    const signingKey = mediaSigningKey(config.jwtSecret!);
    const expired = signMediaKey(signingKey, v.keys.mp4, Math.floor(Date.now() / 1000) - 1);
    const posterSig = new URL(output.posterUrl).searchParams.get('sig')!;
    const foreign = signMediaKey(mediaSigningKey('another secret that is long enough!!'), v.keys.mp4, Number(exp));
    const variants = {
      unsigned: `${url.origin}${url.pathname}`,
      'tampered signature': `${url.origin}${url.pathname}?exp=${exp}&sig=${flipped}`,
      'extended expiry': `${url.origin}${url.pathname}?exp=${Number(exp) + 1}&sig=${sig}`,
      'signature of another file': `${url.origin}${url.pathname}?exp=${exp}&sig=${posterSig}`,
      'signed with another secret': `${url.origin}${url.pathname}?${foreign}`,
      expired: `${url.origin}${url.pathname}?${expired}`,
      'only exp': `${url.origin}${url.pathname}?exp=${exp}`,
      'the same id under the public prefix': `${api.url}/media/videos/${v.id}/${mediaPath(output.url).split('/').pop()!.split('?')[0]}`,
    };
    for (const [name, variant] of Object.entries(variants)) {
      for (const range of [{}, { range: 'bytes=0-9' }] as Record<string, string>[]) {
        assert.deepEqual(await answer(variant, range), gone, name);
      }
    }
    // Folders answer the same for a real private video's id and an unknown one.
    for (const shape of ['videos/ID/', 'videos/ID', 'private/videos/ID/', 'private/videos/ID', 'private/', 'videos/', '']) {
      assert.deepEqual(await missing(shape.replace('ID', v.id)), await missing(shape.replace('ID', UNKNOWN_ID)), shape);
      assert.deepEqual(await missing(shape.replace('ID', v.id)), gone, shape);
    }
    // Only the owner gets the video, so only the owner gets its signed URLs.
    assert.equal((await call(api.url, 'GET', `/v1/videos/${v.id}`, other.token)).status, 404);
  });

  test('a public video keeps its unsigned, immutable URL', async () => {
    const v = await settledVideo(api, storage, owner, 'public');
    const { output } = await read(api, v.id, other.token);
    assert.equal(output?.url, `${api.url}/media/${v.keys.mp4}`);
    const res = await fetch(output!.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);
    assert.equal(await res.text(), v.content.mp4);
  });

  test('PATCH private takes effect at once; PATCH public again writes new keys', async () => {
    const v = await settledVideo(api, storage, owner, 'public');
    const publicUrl = (await read(api, v.id, owner.token)).output!.url;
    assert.equal((await fetch(publicUrl)).status, 200);

    const made = await patch(api, v.id, owner.token, { visibility: 'private' });
    assert.equal(made.status, 200);
    assert.equal(made.body.visibility, 'private');
    // The old public URL is dead the moment the PATCH answered, like a file that never was.
    const oldPath = mediaPath(publicUrl);
    assert.deepEqual(await answer(publicUrl), await missing(oldPath.replace(v.id, UNKNOWN_ID)));
    assert.equal(existsSync(join(config.storage.mediaDir, v.keys.mp4)), false);
    assert.equal(existsSync(join(config.storage.mediaDir, v.keys.jpg)), false);
    const signed = made.body.output!.url;
    assert.match(mediaPath(signed), /^private\/videos\//);
    const res = await fetch(signed);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-control') ?? '', /^private/);
    assert.equal(await res.text(), v.content.mp4);
    assert.equal((await call(api.url, 'GET', `/v1/videos/${v.id}`, other.token)).status, 404);

    const back = await patch(api, v.id, owner.token, { visibility: 'public' });
    assert.equal(back.status, 200);
    const newUrl = back.body.output!.url;
    assert.match(newUrl, new RegExp(`^${api.url}/media/videos/${v.id}/[^/?]+\\.mp4$`));
    assert.notEqual(newUrl, publicUrl, 'keys are never reused');
    const again = await fetch(newUrl);
    assert.equal(again.headers.get('cache-control'), IMMUTABLE_CACHE);
    assert.equal(await again.text(), v.content.mp4);
    assert.equal((await fetch(signed)).status, 404, 'the private copy is gone');
    // Asking for the visibility it already has changes nothing.
    const same = await patch(api, v.id, owner.token, { visibility: 'public' });
    assert.equal(same.body.output!.url, newUrl);
    const rows = await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM media_deletions');
    assert.equal(rows[0]!.n, 0);
  });

  test('PATCH by anyone but the owner is 404; a bad body is 400 naming the field', async () => {
    const pub = await settledVideo(api, storage, owner, 'public');
    const priv = await settledVideo(api, storage, owner, 'private');
    for (const id of [pub.id, priv.id, UNKNOWN_ID]) {
      const res = await patch(api, id, other.token, { visibility: 'private' });
      assert.equal(res.status, 404, id);
      assert.equal(res.body.error?.code, 'not_found');
    }
    assert.equal((await patch(api, pub.id, undefined, { visibility: 'private' })).status, 401);
    const cases: [unknown, string][] = [
      [{}, 'visibility'],
      [{ visibility: 'secret' }, 'visibility'],
      [{ visibility: 'private', extra: 1 }, 'extra'],
      ['{"visibility":', 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await patch(api, pub.id, owner.token, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error?.field, field, JSON.stringify(body));
    }
    assert.equal((await read(api, pub.id, owner.token)).visibility, 'public');
    assert.equal((await read(api, priv.id, owner.token)).visibility, 'private');
  });

  test('a video made private while it renders settles with its files under private/ (a worker of an older version, writing where the job said)', async () => {
    const env = { url: config.redisUrl, maxRetriesPerRequest: null };
    const client = new VgenClient(api.url, owner.token);
    const queued = await client.submit(smallSpec() as RenderSpec); // public
    assert.equal((await patch(api, queued.id, owner.token, { visibility: 'private' })).status, 200);
    const written: string[] = [];
    // A worker that, like the real one, writes where the job (submitted public) says.
    const worker = startRuntime({
      queueName: config.queueName, connection: env, concurrency: 1, log: createLogger('silent'),
      processor: async (job) => {
        if (job.id !== queued.id) throw new Error('render_failed: not this test');
        const dir = tempDir();
        writeFileSync(join(dir, 'f'), 'rendered');
        const vis = job.data.visibility === 'private' ? 'private' : 'public';
        const videoKey = outputKey(job.data.videoId, 'w1', 'mp4', vis);
        const posterKey = outputKey(job.data.videoId, 'w1', 'jpg', vis);
        await storage.put(videoKey, join(dir, 'f'), 'video/mp4');
        await storage.put(posterKey, join(dir, 'f'), 'image/jpeg');
        written.push(videoKey, posterKey);
        return { videoKey, posterKey, durationMs: 2000, width: 320, height: 180, bytes: 8 };
      },
    });
    try {
      const video = (await client.waitFor(queued.id, undefined, 100)) as unknown as Video;
      assert.equal(video.status, 'succeeded');
      assert.deepEqual(written.map((k) => k.startsWith('videos/')), [true, true], 'the job still said public');
      // The settler moves the files right after settling; wait for it.
      let output = (await read(api, queued.id, owner.token)).output!;
      for (let i = 0; i < 50 && !mediaPath(output.url).startsWith('private/'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        output = (await read(api, queued.id, owner.token)).output!;
      }
      assert.match(mediaPath(output.url), /^private\/videos\//);
      assert.equal((await fetch(output.url)).status, 200);
      for (let i = 0; i < 50 && written.some((k) => existsSync(join(config.storage.mediaDir, k))); i++) await new Promise((r) => setTimeout(r, 50));
      for (const k of written) assert.equal(existsSync(join(config.storage.mediaDir, k)), false, `${k} was removed`);
      assert.equal((await fetch(`${api.url}/media/${written[0]}`)).status, 404);
    } finally {
      await worker.close();
    }
  });

  test('made private while the real worker renders: never a file under a public key, never an unsigned 200', async () => {
    const client = new VgenClient(api.url, owner.token);
    const queued = await client.submit(smallSpec() as RenderSpec); // public: the job says public
    let reached!: () => void;
    const atUpload = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const putKeys: string[] = [];
    // The real storage, held at the upload until the PATCH answered.
    const gated: Storage = { ...storage, put: async (key, path, type) => { putKeys.push(key); reached(); await gate; return storage.put(key, path, type); } };
    const worker = realWorker(config, gated, new Set([queued.id]));
    const publicDir = join(config.storage.mediaDir, 'videos', queued.id);
    const seen: string[] = [];
    let polling = true;
    // Watch the public folder and the unsigned /media URLs of every key the worker writes, all along.
    const poller = (async () => {
      while (polling) {
        seen.push(...filesIn(publicDir).map((f) => `file videos/${queued.id}/${f}`));
        for (const key of putKeys) {
          const name = key.split('/').pop();
          for (const path of [`videos/${queued.id}/${name}`, key]) {
            const res = await fetch(`${api.url}/media/${path}`);
            await res.arrayBuffer();
            if (res.status !== 404) seen.push(`GET ${path} ${res.status}`);
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await atUpload;
      for (let i = 0; i < 100 && (await read(api, queued.id, owner.token)).status !== 'rendering'; i++) await new Promise((r) => setTimeout(r, 20));
      const made = await patch(api, queued.id, owner.token, { visibility: 'private' });
      assert.equal(made.status, 200);
      assert.equal(made.body.status, 'rendering');
      release();
      const video = (await client.waitFor(queued.id, undefined, 50)) as unknown as Video;
      assert.equal(video.status, 'succeeded');
      await new Promise((r) => setTimeout(r, 100)); // a few more polls after settling
    } finally {
      release();
      polling = false;
      await poller;
      await worker.close();
    }
    assert.deepEqual(seen, [], 'nothing was ever reachable under a public key');
    assert.ok(putKeys.length === 2 && putKeys.every((k) => k.startsWith(`private/videos/${queued.id}/`)), putKeys.join());
    const { output } = await read(api, queued.id, owner.token);
    assert.match(mediaPath(output!.url), new RegExp(`^private/videos/${queued.id}/[^/]+\\.mp4$`));
    assert.match(output!.url, /\?exp=\d+&sig=/);
    const res = await fetch(output!.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-control') ?? '', /^private/);
  });

  test('a public render settles with a public immutable URL under a new key; the private upload is deleted', async () => {
    const client = new VgenClient(api.url, owner.token);
    const queued = await client.submit(smallSpec() as RenderSpec);
    const putKeys: string[] = [];
    const watched: Storage = { ...storage, put: async (key, path, type) => { putKeys.push(key); return storage.put(key, path, type); } };
    const worker = realWorker(config, watched, new Set([queued.id]));
    let video: Video;
    try {
      video = (await client.waitFor(queued.id, undefined, 50)) as unknown as Video;
    } finally {
      await worker.close();
    }
    assert.equal(video.status, 'succeeded');
    assert.ok(putKeys.every((k) => k.startsWith('private/')), 'the worker wrote under private/');
    // The first succeeded answer already carries the public URL: placement is part of settling.
    const { url, posterUrl } = video.output!;
    assert.match(url, new RegExp(`^${api.url}/media/videos/${queued.id}/[^/?]+\\.mp4$`));
    assert.match(posterUrl, new RegExp(`^${api.url}/media/videos/${queued.id}/[^/?]+\\.jpg$`));
    assert.ok(!putKeys.some((k) => k.endsWith(url.split('/').pop()!)), 'a new key, not the upload\'s name');
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);
    assert.equal((await read(api, queued.id, other.token)).output!.url, url, 'stable across reads');
    const privateDir = join(config.storage.mediaDir, 'private', 'videos', queued.id);
    for (let i = 0; i < 50 && filesIn(privateDir).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(filesIn(privateDir), []);
  });

  test('20 concurrent PATCHes alternating public/private all answer 200 and leave one consistent state', async () => {
    const v = await settledVideo(api, storage, owner, 'public');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      patch(api, v.id, owner.token, { visibility: i % 2 ? 'public' : 'private' })));
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200), JSON.stringify(results.find((r) => r.status !== 200)?.body));
    const final = await read(api, v.id, owner.token);
    const row = (await api.db.query<{ video_key: string; poster_key: string; visibility: string }>('SELECT * FROM videos WHERE id = $1', [v.id]))[0]!;
    assert.equal(row.visibility, final.visibility);
    const pub = filesIn(join(config.storage.mediaDir, 'videos', v.id)).map((f) => `videos/${v.id}/${f}`);
    const priv = filesIn(join(config.storage.mediaDir, 'private', 'videos', v.id)).map((f) => `private/videos/${v.id}/${f}`);
    assert.deepEqual([...pub, ...priv].sort(), [row.video_key, row.poster_key].sort(), 'only the row\'s two files remain');
    assert.ok([row.video_key, row.poster_key].every((k) => k.startsWith('private/') === (row.visibility === 'private')));
    assert.deepEqual(await api.db.query('SELECT key FROM media_deletions'), []);
    const res = await fetch(final.output!.url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), v.content.mp4);
    if (final.visibility === 'public') assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);
  });

  test('maintenance moves misplaced files and finishes deletions that failed', async () => {
    // A private row whose files are still public (the settler's move failed).
    const v = await settledVideo(api, storage, owner, 'public');
    await api.db.query(`UPDATE videos SET visibility = 'private' WHERE id = $1`, [v.id]);
    // A deletion recorded but not done (an old key no row uses any more).
    const leftover = await settledVideo(api, storage, owner, 'public');
    const stale = `videos/${leftover.id}/stale.jpg`;
    copyFileSync(join(config.storage.mediaDir, leftover.keys.jpg), join(config.storage.mediaDir, stale));
    await api.db.query('INSERT INTO media_deletions (key, video_id) VALUES ($1, $2)', [stale, leftover.id]);
    // A deletion recorded for a key a row still uses (a shared render-cache file) is dropped, not done.
    await api.db.query('INSERT INTO media_deletions (key, video_id) VALUES ($1, $2)', [leftover.keys.jpg, leftover.id]);
    const { moved, deleted } = await api.maintenance.runOnce();
    assert.ok(moved >= 1 && deleted >= 1);
    const row = (await api.db.query<{ video_key: string }>('SELECT video_key FROM videos WHERE id = $1', [v.id]))[0]!;
    assert.match(row.video_key, /^private\//);
    assert.equal(existsSync(join(config.storage.mediaDir, v.keys.mp4)), false);
    assert.equal(existsSync(join(config.storage.mediaDir, stale)), false);
    assert.equal(existsSync(join(config.storage.mediaDir, leftover.keys.jpg)), true, 'still referenced by its row');
    assert.deepEqual(await api.db.query('SELECT key FROM media_deletions'), []);
  });
});

describe('s3 storage', () => {
  let api: RunningApi;
  let storage: Storage;
  let s3: Awaited<ReturnType<typeof startS3>>;
  let owner: User;
  let config: Config;

  before(async () => {
    s3 = await startS3();
    // The S3 SDK reads credentials from process.env (its default chain).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    config = configFrom(await testEnv(s3.env));
    api = await startApi(config, { settleIntervalMs: 3_600_000 });
    storage = createStorage(config);
    owner = await registerUser(api.url);
  });
  after(() => api.close());

  /** The object itself, read anonymously from s3rver (no CDN rules apply there). */
  const raw = (key: string) => fetch(`${s3.endpoint}/${s3.bucket}/${key}`);

  test('a private video gets presigned URLs with Cache-Control: private; its objects are marked private', async () => {
    const v = await settledVideo(api, storage, owner, 'private');
    const { output } = await read(api, v.id, owner.token);
    const url = new URL(output!.url);
    assert.equal(url.origin, s3.endpoint);
    assert.equal(url.pathname, `/${s3.bucket}/${v.keys.mp4}`);
    assert.match(v.keys.mp4, /^private\/videos\//);
    assert.ok(url.searchParams.get('X-Amz-Signature'));
    assert.equal(url.searchParams.get('X-Amz-Expires'), '3600');
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'private, max-age=3600');
    assert.equal(await res.text(), v.content.mp4);
    assert.equal((await fetch(output!.posterUrl)).status, 200);
    // An expired presigned URL is refused. (s3rver does not check V4 signatures,
    // so a tampered one cannot be tested here; S3 refuses it with the same 403.)
    const client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true });
    const expired = await getSignedUrl(client, new GetObjectCommand({ Bucket: s3.bucket, Key: v.keys.mp4 }), {
      expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000),
    });
    assert.equal((await fetch(expired)).status, 403);
    // Stored with a private Cache-Control too, should anything ever serve the object directly.
    assert.equal((await raw(v.keys.mp4)).headers.get('cache-control'), 'private, no-cache');
  });

  test('a public video keeps its immutable CDN URL; PATCH moves its objects between prefixes under new keys', async () => {
    const v = await settledVideo(api, storage, owner, 'public');
    const publicUrl = (await read(api, v.id, owner.token)).output!.url;
    assert.equal(publicUrl, `${s3.env.CDN_BASE_URL}/${v.keys.mp4}`);
    const res = await fetch(publicUrl);
    assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);

    const made = await patch(api, v.id, owner.token, { visibility: 'private' });
    assert.equal(made.status, 200);
    // Not readable at its public key any more: the object is gone from the bucket.
    assert.equal((await fetch(publicUrl)).status, 404);
    assert.equal((await raw(v.keys.jpg)).status, 404);
    const signed = new URL(made.body.output!.url);
    assert.match(signed.pathname, new RegExp(`^/${s3.bucket}/private/videos/${v.id}/`));
    const priv = await fetch(signed);
    assert.equal(priv.status, 200);
    assert.equal(priv.headers.get('cache-control'), 'private, max-age=3600');
    assert.equal(await priv.text(), v.content.mp4);
    assert.equal(priv.headers.get('content-type'), 'video/mp4');

    const back = await patch(api, v.id, owner.token, { visibility: 'public' });
    assert.equal(back.status, 200);
    const newUrl = back.body.output!.url;
    assert.match(newUrl, new RegExp(`^${s3.env.CDN_BASE_URL}/videos/${v.id}/`));
    assert.notEqual(newUrl, publicUrl, 'keys are never reused');
    const again = await fetch(newUrl);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('cache-control'), IMMUTABLE_CACHE);
    assert.equal((await raw(signed.pathname.slice(`/${s3.bucket}/`.length))).status, 404, 'the private copy is gone');
  });

  test('a real render settles public with an immutable CDN URL (server-side copy); the private upload is deleted', async () => {
    const client = new VgenClient(api.url, owner.token);
    const queued = await client.submit(smallSpec() as RenderSpec);
    const putKeys: string[] = [];
    const watched: Storage = { ...storage, put: async (key, path, type) => { putKeys.push(key); return storage.put(key, path, type); } };
    const worker = realWorker(config, watched, new Set([queued.id]));
    let video: Video;
    try {
      video = (await client.waitFor(queued.id, undefined, 50)) as unknown as Video;
    } finally {
      await worker.close();
    }
    assert.equal(video.status, 'succeeded');
    assert.equal(putKeys.length, 2);
    assert.ok(putKeys.every((k) => k.startsWith(`private/videos/${queued.id}/`)), putKeys.join());
    assert.match(video.output!.url, new RegExp(`^${s3.env.CDN_BASE_URL}/videos/${queued.id}/[^/?]+\\.mp4$`));
    const res = await fetch(video.output!.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), IMMUTABLE_CACHE);
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    // Deleted right after the settling transaction commits.
    const present = async () => (await Promise.all(putKeys.map(async (k) => (await raw(k)).status))).filter((st) => st !== 404);
    for (let i = 0; i < 50 && (await present()).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await present(), [], 'the private uploads were deleted');
  });
});
