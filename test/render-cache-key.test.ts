// The render cache's pure rules (engine/render-cache.ts) and the worker's asset
// digests (worker/render-cache.ts): no Redis, Postgres or ffmpeg.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { canonicalJson } from '../engine/canonical-json.js';
import { lookupScopes, parseCacheEntry, recordScope, renderCacheKey, RENDER_ENGINE_VERSION } from '../engine/render-cache.js';
import type { RenderSpec } from '../engine/spec.js';
import { digestAssets } from '../worker/render-cache.js';

const spec = {
  version: 1,
  output: { width: 320, height: 180, fps: 24 },
  scenes: [
    { duration: 1, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 1.5, background: { image: 'https://cdn.example.com/b.png' }, transition: { type: 'fade', duration: 0.5 } },
  ],
  audio: { src: 'assets/music.mp3' },
} as RenderSpec;
const d = (c: string) => c.repeat(64);
const digests = [d('a'), d('b'), d('c')];
const renderer = { preset: 'veryfast', font: 'NotoSansCJK-Regular.ttc' };

/** The same value with every object's keys in reverse order. */
const reversed = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(reversed) : v && typeof v === 'object'
    ? Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed((v as Record<string, unknown>)[k])])) : v;

test('the key is a SHA-256 that ignores key order but nothing else', () => {
  const key = renderCacheKey(spec, digests, renderer);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(renderCacheKey(reversed(spec) as RenderSpec, digests, renderer), key, 'key order does not matter');
  assert.equal(renderCacheKey(JSON.parse(JSON.stringify(spec)), digests, renderer), key, 'a JSON round trip (the queue) does not matter');

  const changed = [
    renderCacheKey(spec, [d('a'), d('b'), d('d')], renderer), // one asset's bytes
    renderCacheKey(spec, [d('b'), d('a'), d('c')], renderer), // the same bytes, other assets
    renderCacheKey({ ...spec, scenes: [{ ...spec.scenes[0]!, caption: { text: 'One' } }, spec.scenes[1]!] }, digests, renderer),
    renderCacheKey({ ...spec, output: { ...spec.output, fps: 25 } }, digests, renderer),
    renderCacheKey(spec, digests, { ...renderer, preset: 'medium' }),
    renderCacheKey(spec, digests, { ...renderer, font: 'Other.ttf' }),
  ];
  assert.equal(new Set([key, ...changed]).size, changed.length + 1, 'every change gives a new key');
});

test('the engine version is part of what is hashed', () => {
  // Recompute the documented input by hand: a version bump must change every key.
  const input = (v: number) => canonicalJson({
    engine: v, renderer, spec,
    assets: ['assets/photo.jpg', 'https://cdn.example.com/b.png', 'assets/music.mp3'].map((ref, i) => ({ ref, sha256: digests[i] })),
  });
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  assert.equal(renderCacheKey(spec, digests, renderer), sha(input(RENDER_ENGINE_VERSION)));
  assert.notEqual(sha(input(RENDER_ENGINE_VERSION + 1)), sha(input(RENDER_ENGINE_VERSION)));
});

test('digests must match the assets one to one', () => {
  assert.throws(() => renderCacheKey(spec, digests.slice(0, 2), renderer), /3 assets but 2 digests/);
  assert.throws(() => renderCacheKey(spec, [...digests, d('e')], renderer), /3 assets but 4 digests/);
  assert.throws(() => renderCacheKey(spec, [d('a'), d('b'), 'C'.repeat(64)], renderer), /not a SHA-256/);
  assert.throws(() => renderCacheKey(spec, [d('a'), d('b'), 'c'], renderer), /not a SHA-256/);
});

test('lookup scopes: the owner\'s own renders first, then public ones; a strange user id looks up public only', () => {
  assert.deepEqual(lookupScopes('usr_0abc'), ['user:usr_0abc', 'public']);
  assert.deepEqual(lookupScopes(undefined), ['public']);
  assert.deepEqual(lookupScopes(''), ['public']);
  assert.deepEqual(lookupScopes('a:b'), ['public']);
  assert.deepEqual(lookupScopes('x'.repeat(65)), ['public']);
});

test('record scope: public only for a public video whose files are at public keys', () => {
  const row = { user_id: 'usr_1', video_key: 'videos/vid_a/r.mp4', poster_key: 'videos/vid_a/r.jpg' };
  assert.equal(recordScope({ ...row, visibility: 'public' }), 'public');
  assert.equal(recordScope({ ...row, visibility: 'private' }), 'user:usr_1');
  assert.equal(recordScope({ ...row, visibility: 'public', video_key: 'private/videos/vid_a/r.mp4' }), 'user:usr_1');
  assert.equal(recordScope({ ...row, visibility: 'public', poster_key: 'private/videos/vid_a/r.jpg' }), 'user:usr_1');
  assert.throws(() => recordScope({ ...row, visibility: 'private', user_id: 'a:b' }), /not a user id/);
});

test('index entries are parsed defensively', () => {
  const entry = { videoId: 'vid_a', videoKey: 'videos/vid_a/r.mp4', posterKey: 'videos/vid_a/r.jpg', durationMs: 2000, width: 320, height: 180, bytes: 1234 };
  assert.deepEqual(parseCacheEntry(JSON.stringify(entry)), entry);
  assert.deepEqual(parseCacheEntry(JSON.stringify({ ...entry, extra: 1 })), entry, 'extra fields are dropped');
  for (const bad of [null, '', 'not json', '[]', 'null', '42', JSON.stringify({ ...entry, videoId: '' }), JSON.stringify({ ...entry, width: -1 }),
    JSON.stringify({ ...entry, bytes: '12' }), JSON.stringify({ ...entry, videoKey: 'x'.repeat(513) }), JSON.stringify({ ...entry, durationMs: null })])
    assert.equal(parseCacheEntry(bad), null, String(bad));
});

test('asset digests are the SHA-256 of each file, in the spec\'s asset order', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vgen-digest-'));
  try {
    const files = { 'assets/photo.jpg': 'first', 'https://cdn.example.com/b.png': 'second', 'assets/music.mp3': 'third' };
    const assets = new Map<string, { path: string; kind: 'image' | 'audio'; format: string }>();
    let i = 0;
    // Inserted in another order than assetsOf: the map's order must not matter.
    for (const [ref, text] of Object.entries(files).reverse()) {
      const path = join(dir, String(i++));
      await writeFile(path, text);
      assets.set(ref, { path, kind: 'image', format: 'x' });
    }
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    assert.deepEqual(await digestAssets(spec, assets), [sha('first'), sha('second'), sha('third')]);
    assets.delete('assets/music.mp3');
    await assert.rejects(digestAssets(spec, assets), /was not fetched/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
