// The render cache end to end, against real Redis, Postgres, ffmpeg and a real
// worker process: an identical spec with identical asset bytes reuses the
// earlier render (no ffmpeg run: the worker's own render-stage count does not
// move), a changed asset renders again, private renders are reused only by
// their owner, shared files outlive either video's move and are deleted once
// no row references them, a stale or forged index entry ends in a real
// render, and RENDER_CACHE=off renders every time.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startApi, type RunningApi } from '../api/server.js';
import { VgenClient } from '../cli/client.js';
import type { Config } from '../engine/config.js';
import { newId } from '../engine/ids.js';
import { QUEUE_PREFIX } from '../engine/queue.js';
import { cacheEntryKey } from '../engine/render-cache-index.js';
import { renderCacheKey } from '../engine/render-cache.js';
import type { RenderSpec } from '../engine/spec.js';
import { createStorage } from '../engine/storage.js';
import { findFont } from '../worker/ffmpeg.js';
import type { VideoBody } from '../api/schemas.js';
import { configFrom, freePort, onCleanup, REDIS_URL, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

after(runCleanups);

const ASSETS = join(import.meta.dirname, '..', 'assets');
let certPath: string;
let server: Server;
let assetPort: number;
/** What the test server answers for /photo.jpg right now. */
let photoBytes: Buffer;

before(async () => {
  const dir = tempDir('vgen-cache-tls-');
  certPath = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', certPath,
  ]);
  photoBytes = await readFile(join(ASSETS, 'photo.jpg'));
  server = createServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(certPath) }, (req, res) => {
    if (req.url === '/photo.jpg') return res.end(photoBytes);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  assetPort = (server.address() as AddressInfo).port;
  onCleanup(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
});

interface System {
  api: RunningApi;
  config: Config;
  /** The worker's own counters, read from its /metrics. */
  counts(): Promise<{ renders: number; hits: number; misses: number }>;
}

/**
 * API in this process, one worker in its own (it must trust the test server's
 * certificate, and NODE_EXTRA_CA_CERTS is read at start), sharing queue,
 * database and media folder.
 */
async function startSystem(extra: Record<string, string> = {}): Promise<System> {
  const metricsPort = await freePort();
  const env = await testEnv({ OUTBOUND_ALLOW: '127.0.0.1', WORKER_METRICS_PORT: String(metricsPort), ...extra });
  const config = configFrom(env);
  const api = await startApi(config, { settleIntervalMs: 500, settleStaleSeconds: 2 });
  onCleanup(() => api.close());
  const child = spawn(process.execPath, ['bin/vgen.js', 'worker'], {
    env: { ...process.env, ...env, NODE_EXTRA_CA_CERTS: certPath },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  onCleanup(async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const scrape = async () => {
    const text = await (await fetch(metricsUrl)).text();
    const value = (name: string, labels: string[]) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    };
    return {
      renders: value('vgen_job_stage_duration_seconds_count', ['stage="render"', 'outcome="ok"']),
      hits: value('vgen_render_cache_lookups_total', ['result="hit"']),
      misses: value('vgen_render_cache_lookups_total', ['result="miss"']),
    };
  };
  for (let i = 0; ; i++) {
    if (await fetch(metricsUrl).then((r) => r.ok, () => false)) break;
    if (i > 200) throw new Error('the worker did not start');
    await sleep(100);
  }
  return { api, config, counts: scrape };
}

/** A small spec of its own: the caption tells tests' specs apart, so their cache entries never meet. */
const specFor = (tag: string, image = 'assets/photo.jpg') => smallSpec({
  scenes: [
    { duration: 1, background: { color: '#203040' }, caption: { text: tag } },
    { duration: 1.5, background: { image }, transition: { type: 'fade', duration: 0.5 } },
  ],
}) as RenderSpec;

/** The same value with every object's keys in reverse order. */
const reversed = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(reversed) : v && typeof v === 'object'
    ? Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed((v as Record<string, unknown>)[k])])) : v;

async function render(client: VgenClient, spec: RenderSpec, visibility: 'public' | 'private' = 'public'): Promise<VideoBody> {
  const queued = await client.submit(spec, { visibility });
  assert.equal(queued.status, 'queued');
  const seen: string[] = [];
  // Through the event stream: a cached video still goes through it like any other.
  const video = await client.follow(queued.id, (v) => seen.push(v.status));
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
  assert.equal(video.progress, 1);
  assert.equal(seen.at(-1), 'succeeded');
  return video;
}

async function row(sys: System, id: string) {
  const [r] = await sys.api.db.query<{ video_key: string; poster_key: string; cached: boolean; visibility: string }>(
    'SELECT video_key, poster_key, cached, visibility FROM videos WHERE id = $1', [id]);
  return r!;
}

const onDisk = (sys: System, key: string) => existsSync(join(sys.config.storage.mediaDir, key));
const status = async (url: string) => (await fetch(url)).status;

async function patch(sys: System, token: string, id: string, visibility: 'public' | 'private'): Promise<VideoBody> {
  const res = await fetch(`${sys.api.url}/v1/videos/${id}`, {
    method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ visibility }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as VideoBody;
}

/** The counters moved by exactly this much since `before`. */
async function assertCounts(sys: System, before: { renders: number; hits: number }, delta: { renders: number; hits: number }) {
  // The counters are bumped before the job completes, so they are final by the time the video settled.
  const now = await sys.counts();
  assert.deepEqual({ renders: now.renders - before.renders, hits: now.hits - before.hits }, delta);
}

describe('render cache on (the default)', () => {
  let sys: System;
  before(async () => { sys = await startSystem(); });

  test('hit: an identical spec succeeds at once with its own id, the same files and no ffmpeg run', async () => {
    const owner = await registerUser(sys.api.url);
    const other = await registerUser(sys.api.url);
    const a = new VgenClient(sys.api.url, owner.token);
    const b = new VgenClient(sys.api.url, other.token);
    const spec = specFor('hit');

    let before = await sys.counts();
    const first = await render(a, spec);
    assert.equal(first.output?.cached, false);
    await assertCounts(sys, before, { renders: 1, hits: 0 });

    before = await sys.counts();
    const started = Date.now();
    // The same spec with its keys in another order is the same render.
    const second = await render(a, reversed(spec) as RenderSpec);
    const took = Date.now() - started;
    assert.notEqual(second.id, first.id);
    assert.equal(second.output?.cached, true);
    assert.equal(second.output?.url, first.output?.url);
    assert.equal(second.output?.posterUrl, first.output?.posterUrl);
    assert.equal(second.output?.durationMs, first.output?.durationMs);
    await assertCounts(sys, before, { renders: 0, hits: 1 });
    const [r1, r2] = [await row(sys, first.id), await row(sys, second.id)];
    assert.deepEqual([r2.video_key, r2.poster_key], [r1.video_key, r1.poster_key], 'the same objects, not copies');
    assert.equal(r2.cached, true);
    assert.equal(r1.cached, false);
    assert.equal(await status(second.output!.url), 200);
    assert.ok(took < 10_000, `a hit took ${took} ms`);
    // GET answers the same.
    assert.equal((await a.video(second.id)).output?.cached, true);

    // A public render is reused by another user too, as server-side copies of
    // their own: the owner making theirs private must retract its public URL.
    before = await sys.counts();
    const theirs = await render(b, spec);
    assert.equal(theirs.output?.cached, true);
    assert.notEqual(theirs.output?.url, first.output?.url);
    assert.match((await row(sys, theirs.id)).video_key, new RegExp(`^videos/${theirs.id}/`));
    assert.equal(await status(theirs.output!.url), 200);
    // … and for their private video: a copy under a private key of its own, signed URL.
    const theirsPrivate = await render(b, spec, 'private');
    assert.equal(theirsPrivate.output?.cached, true);
    const rp = await row(sys, theirsPrivate.id);
    assert.match(rp.video_key, new RegExp(`^private/videos/${theirsPrivate.id}/`));
    assert.equal(await status(theirsPrivate.output!.url), 200);
    await assertCounts(sys, before, { renders: 0, hits: 2 });
    // The source kept its files.
    assert.ok(onDisk(sys, r1.video_key) && onDisk(sys, r1.poster_key));
  });

  test('miss: an asset whose bytes changed behind the same URL renders again', async () => {
    const user = await registerUser(sys.api.url);
    const client = new VgenClient(sys.api.url, user.token);
    const spec = specFor('miss', `https://127.0.0.1:${assetPort}/photo.jpg`);
    let before = await sys.counts();
    const first = await render(client, spec);
    await assertCounts(sys, before, { renders: 1, hits: 0 });

    photoBytes = await readFile(join(ASSETS, 'photo2.jpg'));
    before = await sys.counts();
    const second = await render(client, spec);
    assert.equal(second.output?.cached, false);
    assert.notEqual(second.output?.url, first.output?.url);
    await assertCounts(sys, before, { renders: 1, hits: 0 });

    // The bytes stay: the newest render is the one reused.
    before = await sys.counts();
    const third = await render(client, spec);
    assert.equal(third.output?.cached, true);
    assert.equal(third.output?.url, second.output?.url);
    await assertCounts(sys, before, { renders: 0, hits: 1 });
  });

  test('private renders: reused by their owner, never by another user', async () => {
    const alice = await registerUser(sys.api.url);
    const bob = await registerUser(sys.api.url);
    const a = new VgenClient(sys.api.url, alice.token);
    const b = new VgenClient(sys.api.url, bob.token);
    const spec = specFor('private');

    let before = await sys.counts();
    const a1 = await render(a, spec, 'private');
    const b1 = await render(b, spec, 'private');
    assert.equal(b1.output?.cached, false, 'another user\'s private render is not reused');
    await assertCounts(sys, before, { renders: 2, hits: 0 });
    assert.notEqual((await row(sys, b1.id)).video_key, (await row(sys, a1.id)).video_key);

    before = await sys.counts();
    const a2 = await render(a, spec, 'private');
    assert.equal(a2.output?.cached, true);
    assert.equal((await row(sys, a2.id)).video_key, (await row(sys, a1.id)).video_key);
    assert.equal(await status(a2.output!.url), 200);
    // Alice's public video from her private render: copied to public keys of its own.
    const a3 = await render(a, spec, 'public');
    assert.equal(a3.output?.cached, true);
    assert.match((await row(sys, a3.id)).video_key, new RegExp(`^videos/${a3.id}/`));
    assert.equal(await status(a3.output!.url), 200);
    await assertCounts(sys, before, { renders: 0, hits: 2 });
    assert.equal(await status((await a.video(a1.id)).output!.url), 200, 'the private source still plays');
  });

  test('shared files survive either video\'s move; another user\'s copy is their own; a stale entry renders for real; files go once no row references them', async () => {
    const owner = await registerUser(sys.api.url);
    const other = await registerUser(sys.api.url);
    const a = new VgenClient(sys.api.url, owner.token);
    const b = new VgenClient(sys.api.url, other.token);
    const spec = specFor('moves');

    const source = await render(a, spec);
    const shared = await render(a, spec); // the owner's second video: the same objects
    const copy = await render(b, spec); // another user's: copies of their own
    assert.equal(shared.output?.cached, true);
    assert.equal(copy.output?.cached, true);
    const keys = await row(sys, source.id);
    assert.equal((await row(sys, shared.id)).video_key, keys.video_key);
    assert.notEqual((await row(sys, copy.id)).video_key, keys.video_key);

    // The source goes private: its files move to new keys, the shared ones stay for the owner's other public video.
    const moved = await patch(sys, owner.token, source.id, 'private');
    assert.notEqual((await row(sys, source.id)).video_key, keys.video_key);
    assert.equal(await status(moved.output!.url), 200);
    assert.ok(onDisk(sys, keys.video_key) && onDisk(sys, keys.poster_key), 'still referenced by the owner\'s cached video');
    assert.equal(await status((await a.video(shared.id)).output!.url), 200);
    assert.equal((await sys.api.maintenance.runOnce()).deleted, 0);
    assert.ok(onDisk(sys, keys.video_key));

    // The public entry now names a source that let go of those keys: the next
    // identical render is settled only after a real render.
    let before = await sys.counts();
    const fresh = await render(b, spec);
    assert.equal(fresh.output?.cached, false);
    assert.notEqual(fresh.output?.url, shared.output?.url);
    await assertCounts(sys, before, { renders: 1, hits: 1 });
    // … and that render is what the cache offers next (to its own user: the same objects).
    before = await sys.counts();
    const next = await render(b, spec);
    assert.equal(next.output?.cached, true);
    assert.equal(next.output?.url, fresh.output?.url);
    await assertCounts(sys, before, { renders: 0, hits: 1 });

    // The last row holding the first render's files lets go: they are deleted,
    // and the old public URL is retracted even though another user reused the render.
    await patch(sys, owner.token, shared.id, 'private');
    assert.ok(!onDisk(sys, keys.video_key) && !onDisk(sys, keys.poster_key), 'no row references them any more');
    assert.equal(await status(source.output!.url), 404);
    assert.equal(await status(shared.output!.url), 404);
    assert.equal(await status((await a.video(shared.id)).output!.url), 200);
    assert.equal(await status((await b.video(copy.id)).output!.url), 200, 'the other user\'s copy is untouched');
    assert.deepEqual(await sys.api.db.query('SELECT key FROM media_deletions'), []);
  });

  test('a forged index entry naming another user\'s private render is never settled: the video renders for real', async () => {
    const victim = await registerUser(sys.api.url);
    const attacker = await registerUser(sys.api.url);
    const spec = specFor('forged');
    const secret = await render(new VgenClient(sys.api.url, victim.token), spec, 'private');
    const secretRow = await row(sys, secret.id);

    // Write a public entry for this very render key pointing at the victim's private files.
    const digests = await Promise.all(['photo.jpg', 'music.mp3'].map(async (f) => createHash('sha256').update(await readFile(join(ASSETS, f))).digest('hex')));
    const key = renderCacheKey(spec, digests, { preset: sys.config.worker.x264Preset, font: basename(findFont()) });
    const redis = new Redis(REDIS_URL);
    onCleanup(() => void redis.disconnect());
    const entryKey = cacheEntryKey(sys.config.queueName, 'public', key);
    await redis.set(entryKey, JSON.stringify({ videoId: secret.id, videoKey: secretRow.video_key, posterKey: secretRow.poster_key, durationMs: 2000, width: 320, height: 180, bytes: 1 }));

    const before = await sys.counts();
    const theirs = await render(new VgenClient(sys.api.url, attacker.token), spec);
    await assertCounts(sys, before, { renders: 1, hits: 1 });
    assert.equal(theirs.output?.cached, false);
    const theirsRow = await row(sys, theirs.id);
    assert.notEqual(theirsRow.video_key, secretRow.video_key);
    assert.match(theirsRow.video_key, new RegExp(`^videos/${theirs.id}/`));
    // The forged entry is gone; the real render took its place.
    assert.match(JSON.parse((await redis.get(entryKey)) ?? '{}').videoId ?? '', new RegExp(theirs.id));
  });
});

describe('RENDER_CACHE=off', () => {
  test('renders every time and records nothing', async () => {
    const sys = await startSystem({ RENDER_CACHE: 'off' });
    const user = await registerUser(sys.api.url);
    const client = new VgenClient(sys.api.url, user.token);
    const spec = specFor('off');
    const before = await sys.counts();
    const first = await render(client, spec);
    const second = await render(client, spec);
    assert.equal(first.output?.cached, false);
    assert.equal(second.output?.cached, false);
    assert.notEqual(second.output?.url, first.output?.url);
    await assertCounts(sys, before, { renders: 2, hits: 0 });
    assert.equal((await sys.counts()).misses, 0, 'no lookups at all');
    const redis = new Redis(REDIS_URL);
    try {
      assert.deepEqual(await redis.keys(`{vgen}:${sys.config.queueName}:render-cache:*`), []);
    } finally {
      redis.disconnect();
    }
  });
});

describe('settling a hit that arrives late', () => {
  test('a hit for a video canceled meanwhile changes nothing and deletes none of the source\'s files', async () => {
    // No vgen worker here: a bare BullMQ worker takes the job, waits for the
    // cancel, then reports a hit naming a real source's files.
    const env = await testEnv();
    const config = configFrom(env);
    const api = await startApi(config, { settleIntervalMs: 500, settleStaleSeconds: 2 });
    onCleanup(() => api.close());
    const storage = createStorage(config);
    const user = await registerUser(api.url);
    const file = join(tempDir(), 'f');
    await writeFile(file, 'source bytes');
    const source = newId('vid');
    const keys = { videoKey: `videos/${source}/r.mp4`, posterKey: `videos/${source}/r.jpg` };
    await storage.put(keys.videoKey, file, 'video/mp4');
    await storage.put(keys.posterKey, file, 'image/jpeg');
    await api.db.query(
      `INSERT INTO videos (id, user_id, spec, visibility, status, video_key, poster_key, duration_ms, width, height)
       VALUES ($1, $2, $3, 'public', 'succeeded', $4, $5, 2000, 320, 180)`,
      [source, user.id, JSON.stringify(specFor('late')), keys.videoKey, keys.posterKey]);

    const client = new VgenClient(api.url, user.token);
    let returned = false;
    const worker = new Worker(config.queueName, async (job) => {
      for (let i = 0; i < 200 && (await client.video(job.id!)).status !== 'canceled'; i++) await sleep(50);
      returned = true;
      return { ...keys, durationMs: 2000, width: 320, height: 180, bytes: 12, cached: true, sourceVideoId: source, cacheScope: 'public', cacheKey: 'a'.repeat(64) };
    }, { connection: { url: REDIS_URL, maxRetriesPerRequest: null }, prefix: QUEUE_PREFIX });
    onCleanup(() => worker.close());

    const video = await client.submit(specFor('late'));
    for (let i = 0; i < 100 && (await client.video(video.id)).status !== 'rendering'; i++) await sleep(50);
    assert.equal((await client.cancel(video.id)).status, 'canceled');
    for (let i = 0; i < 100 && !returned; i++) await sleep(50);
    assert.ok(returned);
    await sleep(1_000); // the completed event, then a reconcile pass
    await api.settler.reconcile();
    const after = await client.video(video.id);
    assert.equal(after.status, 'canceled');
    assert.equal(after.output, null);
    assert.deepEqual(await api.db.query('SELECT key FROM media_deletions'), []);
    await api.maintenance.runOnce();
    assert.ok(existsSync(join(config.storage.mediaDir, keys.videoKey)) && existsSync(join(config.storage.mediaDir, keys.posterKey)));
  });
});
