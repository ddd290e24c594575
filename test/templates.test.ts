// Templates: GET /v1/templates lists the shipped ones with their fields as
// JSON Schema; POST /v1/videos expands `{ template, fields }` on the server
// and validates the result like a raw spec (a bad field is a 400 naming
// fields.<name>, an unknown template one naming template); the submissions
// metric counts them by template name; and every template's example renders
// (the 1080-line ones at a quarter of their size, a test-only override, so
// the suite stays fast; the quote card at full size), checked with ffprobe.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startApi, type RunningApi } from '../api/server.js';
import { outputSize, parseSpec, totalSeconds, type RenderSpec } from '../engine/spec.js';
import { expandTemplate, TEMPLATES } from '../templates/index.js';
import { fetchAssets } from '../worker/assets.js';
import { checkFfmpeg, findFont, probe, renderVideo } from '../worker/ffmpeg.js';
import { configFrom, openQueue, registerUser, runCleanups, testEnv } from './helpers.js';

const assetsDir = fileURLToPath(new URL('../assets/', import.meta.url));
let api: RunningApi;
let base: string;
let token: string;
let dir: string;

before(async () => {
  const env = await testEnv();
  api = await startApi(configFrom(env));
  base = api.url;
  openQueue(env);
  token = (await registerUser(base)).token;
  dir = await mkdtemp(join(tmpdir(), 'vgen-templates-'));
});
after(async () => {
  await api.close();
  await runCleanups();
  await rm(dir, { recursive: true, force: true });
});

const submit = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/videos`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(body) });

type ErrorBody = { error: { code: string; field?: string; message: string } };

async function refusal(body: unknown): Promise<ErrorBody['error'] & { status: number }> {
  const res = await submit(body);
  return { status: res.status, ...((await res.json()) as ErrorBody).error };
}

describe('GET /v1/templates', () => {
  test('lists the three templates with JSON Schema fields and an example; needs a token', async () => {
    assert.equal((await fetch(`${base}/v1/templates`)).status, 401);
    const res = await fetch(`${base}/v1/templates`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { object: string; data: { name: string; description: string; fields: { type: string; properties: Record<string, unknown>; required?: string[] }; example: Record<string, unknown> }[] };
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((t) => t.name), ['photo-slideshow', 'vertical-promo', 'quote-card']);
    for (const t of body.data) {
      assert.ok(t.description.length > 20);
      assert.equal(t.fields.type, 'object');
      assert.ok(Object.keys(t.fields.properties).length >= 3);
      for (const key of Object.keys(t.example)) assert.ok(key in t.fields.properties, `${t.name}: example field ${key} is declared`);
    }
    const slideshow = body.data[0]!;
    assert.deepEqual(slideshow.fields.required, ['photos']);
    assert.deepEqual(slideshow.fields.properties.photos, { ...slideshow.fields.properties.photos as object, type: 'array' });
    assert.ok(JSON.stringify(body.data[1]!.fields.properties.clip).includes('pattern'));
  });
});

describe('POST /v1/videos with a template', () => {
  test('an example is accepted and stored as the spec it expands to; callbackUrl stays out of it', async () => {
    const res = await submit({ template: 'quote-card', fields: TEMPLATES[2]!.example, callbackUrl: 'https://hooks.example.com/vgen' });
    assert.equal(res.status, 202, await res.clone().text());
    const video = (await res.json()) as { id: string };
    const { rows } = await api.db.query<{ spec: RenderSpec; callback_url: string }>('SELECT spec, callback_url FROM videos WHERE id = $1', [video.id]).then((r) => ({ rows: r }));
    const row = rows[0]!;
    assert.deepEqual(row.spec, expandTemplate('quote-card', TEMPLATES[2]!.example));
    assert.equal(row.spec.output.preset, 'square');
  });

  test('a missing or wrong field is a 400 naming fields.<name>', async () => {
    const missing = await refusal({ template: 'photo-slideshow', fields: {} });
    assert.deepEqual([missing.status, missing.code, missing.field], [400, 'invalid_request', 'fields.photos']);
    const wrong = await refusal({ template: 'photo-slideshow', fields: { photos: ['assets/photo.jpg'], secondsPerPhoto: 'long' } });
    assert.deepEqual([wrong.status, wrong.field], [400, 'fields.secondsPerPhoto']);
    const badRef = await refusal({ template: 'photo-slideshow', fields: { photos: ['assets/photo.jpg', 'file:///etc/passwd'] } });
    assert.deepEqual([badRef.status, badRef.field], [400, 'fields.photos[1]']);
    const extra = await refusal({ template: 'quote-card', fields: { quote: 'hi', colour: 'red' } });
    assert.deepEqual([extra.status, extra.field], [400, 'fields.colour']);
    const tooLong = await refusal({ template: 'quote-card', fields: { quote: 'x'.repeat(201) } });
    assert.deepEqual([tooLong.status, tooLong.field], [400, 'fields.quote']);
    const badColor = await refusal({ template: 'quote-card', fields: { quote: 'hi', textColor: 'notacolor' } });
    assert.deepEqual([badColor.status, badColor.field], [400, 'fields.textColor']);
    const captions = await refusal({ template: 'photo-slideshow', fields: { photos: ['assets/photo.jpg'], captions: ['a', 'b'] } });
    assert.deepEqual([captions.status, captions.field], [400, 'fields.captions']);
    const privateHost = await refusal({ template: 'vertical-promo', fields: { clip: 'https://10.0.0.1/a.mp4', headline: 'x' } });
    assert.equal(privateHost.status, 400);
    assert.equal(privateHost.code, 'asset_forbidden');
    for (const fields of [undefined, null, 'text', [1, 2]]) {
      const r = await refusal({ template: 'quote-card', ...(fields !== undefined && { fields }) });
      assert.deepEqual([r.status, r.field], [400, 'fields'], JSON.stringify(fields));
    }
  });

  test('an unknown template is a 400 naming template; a spec field beside a template too', async () => {
    for (const template of ['nope', '', 42, null, '__proto__', 'constructor']) {
      const r = await refusal({ template, fields: {} });
      assert.deepEqual([r.status, r.code, r.field], [400, 'invalid_request', 'template'], String(template));
    }
    const mixed = await refusal({ template: 'quote-card', fields: { quote: 'hi' }, scenes: [] });
    assert.deepEqual([mixed.status, mixed.field], [400, 'scenes']);
    const badCallback = await refusal({ template: 'quote-card', fields: { quote: 'hi' }, callbackUrl: 'http://x' });
    assert.deepEqual([badCallback.status, badCallback.field], [400, 'callbackUrl']);
  });

  test('idempotency: the same key replays; other fields, or the expanded spec sent raw, under it are refused', async () => {
    const key = `tpl-${Date.now()}`;
    const body = { template: 'quote-card', fields: { quote: 'Same words' } };
    const first = await submit(body, { 'idempotency-key': key });
    assert.equal(first.status, 202);
    const again = await submit(body, { 'idempotency-key': key });
    assert.equal(again.status, 202);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await again.json()) as { id: string }).id, ((await first.json()) as { id: string }).id);
    const reused = async (b: unknown) => {
      const res = await submit(b, { 'idempotency-key': key });
      return [res.status, ((await res.json()) as ErrorBody).error.code];
    };
    assert.deepEqual(await reused({ template: 'quote-card', fields: { quote: 'Other words' } }), [400, 'idempotency_key_reused']);
    // The raw spec the template expands to is another request: the template's name is part of the hash.
    assert.deepEqual(await reused(expandTemplate('quote-card', body.fields)), [400, 'idempotency_key_reused']);
  });

  test('the submissions metric counts template submissions by name', async () => {
    await submit({ template: 'quote-card', fields: { quote: 'Counted' } });
    await submit({ template: 'quote-card', fields: {} });
    await submit({ template: 'made-up', fields: {} });
    const text = await (await fetch(api.metricsUrl)).text();
    const value = (template: string, outcome: string) =>
      text.split('\n').filter((l) => l.startsWith('vgen_submissions_total{') && l.includes(`template="${template}"`) && l.includes(`outcome="${outcome}"`))
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    assert.ok(value('quote-card', 'accepted') >= 2, text.split('\n').filter((l) => l.startsWith('vgen_submissions_total')).join('\n'));
    assert.ok(value('quote-card', 'invalid') >= 1);
    assert.ok(value('none', 'invalid') >= 1, 'an unknown template counts as none');
    assert.doesNotMatch(text, /template="made-up"/);
  });
});

describe('every example renders', () => {
  let fontFile: string;
  before(async () => {
    await checkFfmpeg();
    fontFile = findFont();
  });

  for (const t of TEMPLATES)
    test(t.name, async () => {
      const full = parseSpec(expandTemplate(t.name, t.example));
      const { width, height } = outputSize(full.output);
      // Test-only: the 1080-line outputs at a quarter of their size (the quote card, one still scene, at full size).
      const scale = t.name === 'quote-card' ? 1 : 4;
      const spec = scale === 1 ? full : parseSpec({ ...full, output: { width: width / scale, height: height / scale, fps: full.output.fps } });
      const workDir = await mkdtemp(join(dir, `${t.name}-`));
      const assets = await fetchAssets(spec, workDir, { assetsDir });
      const result = await renderVideo({ spec, assets, workDir, fontFile, preset: 'ultrafast' });
      const info = await probe(result.videoPath);
      assert.deepEqual([info.video?.codec, info.video?.width, info.video?.height, info.video?.fps, info.audio?.codec], ['h264', width / scale, height / scale, full.output.fps, 'aac']);
      const ms = totalSeconds(spec) * 1000;
      const frame = 1000 / spec.output.fps;
      for (const [what, got] of [['file', info.durationMs], ['video', info.video?.durationMs ?? 0], ['audio', info.audio?.durationMs ?? 0]] as const)
        assert.ok(Math.abs(got - ms) <= frame + 1, `${what} lasts ${got} ms, spec ${ms} ms`);
      assert.equal(info.video?.frames, Math.round(totalSeconds(spec) * spec.output.fps));
      assert.ok(totalSeconds(spec) <= 4, 'examples stay short');
    });
});
