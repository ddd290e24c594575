// Direct uploads end to end: POST /v1/uploads → the form sent straight to the
// store (s3rver's bucket, or the API's own /uploads/<token> with fs storage) →
// `upload://<id>` in a spec → rendered by a real worker. And the refusals:
// another user's upload at submit, a wrong type or an oversized file (by the
// store where it enforces its policy, by the submit check where it does not),
// replays, bad or expired tokens, malformed forms and bad request bodies.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { openAsBlob, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import { VgenClient } from '../cli/client.js';
import type { Config } from '../engine/config.js';
import { renderQueue } from '../engine/queue.js';
import type { RenderSpec } from '../engine/spec.js';
import { fsStorage } from '../engine/storage-fs.js';
import { s3Storage } from '../engine/storage-s3.js';
import { StoredObjectError, type Storage } from '../engine/storage.js';
import { signUpload, uploadSigningKey } from '../engine/upload-token.js';
import { probe } from '../worker/ffmpeg.js';
import { startWorker } from '../worker/main.js';
import { configFrom, download, registerUser, runCleanups, startS3, tempDir, testEnv } from './helpers.js';

after(runCleanups);

const ASSETS = join(import.meta.dirname, '..', 'assets');
const PHOTO = readFileSync(join(ASSETS, 'photo.jpg'));
const MUSIC = readFileSync(join(ASSETS, 'music.mp3'));

interface Upload {
  object: 'upload';
  id: string;
  ref: string;
  method: 'POST';
  url: string;
  fields: Record<string, string>;
  contentType: string;
  maxBytes: number;
  expiresAt: string;
}
type ErrorJson = { error: { code: string; message: string; field?: string } };

async function createUploadRaw(base: string, token: string | undefined, body: unknown, contentType = 'application/json') {
  const res = await fetch(`${base}/v1/uploads`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Upload & ErrorJson };
}

async function createUpload(base: string, token: string, contentType: string, bytes: number): Promise<Upload> {
  const { status, body } = await createUploadRaw(base, token, { contentType, bytes });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** The form a browser would send: every field, in order, then the file as `file`. */
function form(upload: Upload, file: Buffer, override: Record<string, string> = {}): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries({ ...upload.fields, ...override })) fd.append(k, v);
  fd.append('file', new Blob([new Uint8Array(file)], { type: override['Content-Type'] ?? upload.contentType }), 'upload.bin');
  return fd;
}

async function send(url: string, body: FormData | string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', body, headers });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as ErrorJson };
}

const specWith = (image: string, audio = 'assets/music.mp3'): RenderSpec => ({
  version: 1,
  output: { width: 320, height: 180, fps: 24 },
  scenes: [
    { duration: 1, background: { color: '#203040' }, caption: { text: 'one' } },
    { duration: 1.5, background: { image }, transition: { type: 'fade', duration: 0.5 } },
  ],
  audio: { src: audio },
});

async function submitRaw(base: string, token: string, spec: unknown) {
  const res = await fetch(`${base}/v1/videos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(spec),
  });
  return { status: res.status, body: (await res.json()) as ErrorJson & { id: string } };
}

/** Render the spec through the worker and check the MP4 plays at the spec's size. */
async function renderOk(base: string, token: string, spec: RenderSpec) {
  const client = new VgenClient(base, token);
  const video = await client.waitFor((await client.submit(spec)).id, undefined, 200);
  assert.equal(video.status, 'succeeded', JSON.stringify(video.error));
  const mp4 = join(tempDir(), 'out.mp4');
  await download(video.output!.url, mp4);
  const info = await probe(mp4);
  assert.equal(info.video?.width, 320);
  assert.equal(info.audio?.codec, 'aac');
}

interface System { api: RunningApi; config: Config; base: string; close(): Promise<void> }

async function startSystem(extra: Record<string, string>): Promise<System> {
  // WORKER_METRICS_PORT=0: an in-process worker must not take a fixed port other suites use.
  const config = configFrom(await testEnv({ WORK_DIR: tempDir(), WORKER_METRICS_PORT: '0', ...extra }));
  const api = await startApi(config);
  const worker = await startWorker(config);
  return {
    api, config, base: api.url,
    async close() {
      await worker.close();
      await api.close();
    },
  };
}

describe('s3 storage (s3rver)', () => {
  let sys: System;
  before(async () => {
    const s3 = await startS3();
    // The S3 SDK reads credentials from process.env (its default chain).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    sys = await startSystem(s3.env);
  });
  after(() => sys?.close());

  test('a presigned POST accepted by the store, used in a spec, rendered', async () => {
    const user = await registerUser(sys.base);
    const photo = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    assert.match(photo.id, /^upl_[0-9a-z]{25}$/);
    assert.equal(photo.ref, `upload://${photo.id}`);
    assert.equal(photo.method, 'POST');
    assert.equal(photo.fields.key, `uploads/${user.id}/${photo.id}`);
    assert.equal(photo.fields['Content-Type'], 'image/jpeg');
    const music = await createUpload(sys.base, user.token, 'audio/mpeg', MUSIC.length + 10);
    for (const [upload, file] of [[photo, PHOTO], [music, MUSIC]] as const) {
      const res = await send(upload.url, form(upload, file));
      assert.equal(res.status, 204, res.text);
    }
    await renderOk(sys.base, user.token, specWith(photo.ref, music.ref));
  });

  test('the POST policy binds the key, the exact content type, 1…bytes and a ~15 min expiry', async () => {
    const user = await registerUser(sys.base);
    const before = Date.now();
    const up = await createUpload(sys.base, user.token, 'image/png', 12345);
    const policy = JSON.parse(Buffer.from(up.fields.Policy!, 'base64').toString('utf8')) as { expiration: string; conditions: unknown[] };
    assert.deepEqual(policy.conditions.filter((c) => !Array.isArray(c) && ('key' in (c as object) || 'Content-Type' in (c as object))), [
      { 'Content-Type': 'image/png' },
      { key: `uploads/${user.id}/${up.id}` },
    ]);
    assert.deepEqual(policy.conditions.find((c) => Array.isArray(c) && c[0] === 'content-length-range'), ['content-length-range', 1, 12345]);
    assert.ok(!policy.conditions.some((c) => Array.isArray(c) && c[0] === 'starts-with'), 'no starts-with condition: the key and type are exact');
    const expires = Date.parse(policy.expiration);
    assert.ok(Math.abs(expires - (before + 900_000)) < 5_000, policy.expiration);
    assert.ok(Math.abs(Date.parse(up.expiresAt) - expires) < 2_000);
    assert.match(up.fields['X-Amz-Signature'] ?? '', /^[0-9a-f]{64}$/);
  });

  test("another user's upload is refused at submit, 400 naming the field, like an unknown one", async () => {
    const alice = await registerUser(sys.base);
    const bob = await registerUser(sys.base);
    const photo = await createUpload(sys.base, alice.token, 'image/jpeg', PHOTO.length);
    assert.equal((await send(photo.url, form(photo, PHOTO))).status, 204);
    const theirs = await submitRaw(sys.base, bob.token, specWith(photo.ref));
    assert.equal(theirs.status, 400);
    assert.equal(theirs.body.error.code, 'asset_forbidden');
    assert.equal(theirs.body.error.field, 'scenes[1].background.image');
    const unknownRef = `upload://upl_${'0'.repeat(25)}`;
    const unknown = await submitRaw(sys.base, bob.token, specWith(unknownRef));
    assert.deepEqual(unknown.body, { error: { ...theirs.body.error, message: theirs.body.error.message.replace(photo.ref, unknownRef) } },
      'the answer is the same whether the upload is someone else\'s or does not exist');
    // As audio too, and the owner's own submit passes the check.
    const asAudio = await submitRaw(sys.base, bob.token, specWith('assets/photo.jpg', photo.ref));
    assert.equal(asAudio.body.error.field, 'audio.src');
    assert.equal((await submitRaw(sys.base, alice.token, specWith(photo.ref))).status, 202);
  });

  test('an upload with no file yet, or of the wrong family for its place, is refused at submit', async () => {
    const user = await registerUser(sys.base);
    const pending = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    const res = await submitRaw(sys.base, user.token, specWith(pending.ref));
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_request');
    assert.equal(res.body.error.field, 'scenes[1].background.image');
    assert.match(res.body.error.message, /no file yet/);

    const music = await createUpload(sys.base, user.token, 'audio/mpeg', MUSIC.length);
    assert.equal((await send(music.url, form(music, MUSIC))).status, 204);
    const wrong = await submitRaw(sys.base, user.token, specWith(music.ref));
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, 'spec_invalid');
    assert.equal(wrong.body.error.field, 'scenes[1].background.image');
  });

  // s3rver does not evaluate POST policies (its postObject skips the `policy`
  // field: node_modules/s3rver/lib/controllers/object.js), so against it the
  // store accepts; real S3 and MinIO answer 403/400. Either way the file never
  // reaches a render: the submit's HEAD check refuses it, naming the field.
  const storeCases: { name: string; declared: string; file: Buffer; override: Record<string, string>; bytes: number; why: RegExp }[] = [
    { name: 'a wrong content type', declared: 'image/jpeg', file: PHOTO, override: { 'Content-Type': 'image/png' }, bytes: PHOTO.length, why: /stored as image\/png/ },
    { name: 'an oversized file', declared: 'image/jpeg', file: PHOTO, override: {}, bytes: 1000, why: new RegExp(`${PHOTO.length} bytes; it was declared at most 1000`) },
  ];
  for (const c of storeCases) {
    test(`${c.name} is refused: by the store where it enforces the policy, else at submit`, async (t) => {
      const user = await registerUser(sys.base);
      const up = await createUpload(sys.base, user.token, c.declared, c.bytes);
      const stored = await send(up.url, form(up, c.file, c.override));
      if (stored.status >= 400 && stored.status < 500) {
        t.diagnostic(`refused by the store: ${stored.status}`);
        return;
      }
      assert.equal(stored.status, 204, stored.text);
      t.diagnostic('the store accepted it (s3rver does not enforce POST policies); the submit must refuse it');
      const res = await submitRaw(sys.base, user.token, specWith(up.ref));
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.equal(res.body.error.field, 'scenes[1].background.image');
      assert.match(res.body.error.message, c.why);
    });
  }
});

describe('fs storage', () => {
  let sys: System;
  before(async () => {
    sys = await startSystem({});
  });
  after(() => sys?.close());

  test('a signed local upload, used in a spec, rendered', async () => {
    const user = await registerUser(sys.base);
    const photo = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    assert.match(photo.url, new RegExp(`^${sys.base}/uploads/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$`));
    assert.deepEqual(photo.fields, { key: `uploads/${user.id}/${photo.id}`, 'Content-Type': 'image/jpeg' });
    const music = await createUpload(sys.base, user.token, 'audio/mpeg', MUSIC.length);
    for (const [upload, file] of [[photo, PHOTO], [music, MUSIC]] as const) {
      const res = await send(upload.url, form(upload, file));
      assert.equal(res.status, 204, res.text);
    }
    assert.ok(readFileSync(join(sys.config.storage.mediaDir, photo.fields.key!)).equals(PHOTO));
    await renderOk(sys.base, user.token, specWith(photo.ref, music.ref));

    // An upload is never served back by URL: /media serves videos/ and signed private/ keys only.
    assert.equal((await fetch(`${sys.base}/media/${photo.fields.key}`)).status, 404);
    assert.equal((await fetch(`${sys.base}/media/uploads/${user.id}/${photo.id}?exp=9999999999&sig=${'A'.repeat(43)}`)).status, 404);
  });

  test('a wrong content type is refused by the store (415 naming Content-Type) and nothing is stored', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    for (const override of [{ 'Content-Type': 'image/png' }, { 'Content-Type': 'image/svg+xml' }, { 'Content-Type': 'IMAGE/JPEG ' }]) {
      const res = await send(up.url, form(up, PHOTO, override));
      assert.equal(res.status, 415, res.text);
      assert.deepEqual([res.json().error.code, res.json().error.field], ['unsupported_media_type', 'Content-Type']);
    }
    // Without the field at all.
    const fd = new FormData();
    fd.append('key', up.fields.key!);
    fd.append('file', new Blob([PHOTO]), 'a.jpg');
    assert.equal((await send(up.url, fd)).status, 415);
    assert.match((await submitRaw(sys.base, user.token, specWith(up.ref))).body.error.message, /no file yet/);
    // The right form still works afterwards: the refusals left nothing behind.
    assert.equal((await send(up.url, form(up, PHOTO))).status, 204);
  });

  test('an oversized or empty file is refused (413 / 400 naming file) and nothing is stored', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', 1000);
    const over = await send(up.url, form(up, PHOTO.subarray(0, 1001)));
    assert.equal(over.status, 413, over.text);
    assert.deepEqual([over.json().error.code, over.json().error.field], ['body_too_large', 'file']);
    // Far over: the answer still reaches a client that is still sending (fetch), not a reset connection.
    const big = join(tempDir(), 'big.bin');
    writeFileSync(big, Buffer.alloc(45_000_000, 7));
    const farForm = new FormData();
    for (const [k, v] of Object.entries(up.fields)) farForm.append(k, v);
    farForm.append('file', await openAsBlob(big), 'big.jpg'); // streamed from disk, as a browser sends a file
    const farOver = await send(up.url, farForm);
    assert.equal(farOver.status, 413, farOver.text);
    const empty = await send(up.url, form(up, Buffer.alloc(0)));
    assert.equal(empty.status, 400, empty.text);
    assert.equal(empty.json().error.field, 'file');
    assert.match((await submitRaw(sys.base, user.token, specWith(up.ref))).body.error.message, /no file yet/);
    // Exactly the declared size is accepted.
    assert.equal((await send(up.url, form(up, PHOTO.subarray(0, 1000)))).status, 204);
  });

  test('the byte limit is enforced while the file streams in: the API answers 413 before the body ends', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', 64 * 1024);
    const url = new URL(up.url);
    const boundary = 'vgenboundary1234';
    const head = Object.entries(up.fields)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('') + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
    // Sends 200 KiB of the file, then holds the request open without ending it.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
        req.destroy();
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.write(head);
      for (let i = 0; i < 50; i++) req.write(Buffer.alloc(4096, 1));
      setTimeout(() => {
        req.destroy();
        reject(new Error('no answer while the body was still open: the upload is buffered, not streamed'));
      }, 5_000).unref();
    });
    assert.equal(status, 413);
  });

  test('a second upload to the same id is refused (409) and the first file stays', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    assert.equal((await send(up.url, form(up, PHOTO))).status, 204);
    const again = await send(up.url, form(up, PHOTO.subarray(0, 5000)));
    assert.equal(again.status, 409, again.text);
    assert.deepEqual([again.json().error.code, again.json().error.field], ['conflict', 'key']);
    assert.ok(readFileSync(join(sys.config.storage.mediaDir, up.fields.key!)).equals(PHOTO), 'the first file is unchanged');
  });

  test('bad, expired and tampered tokens and a token used for another key are refused (403)', async () => {
    const alice = await registerUser(sys.base);
    const bob = await registerUser(sys.base);
    const mine = await createUpload(sys.base, alice.token, 'image/jpeg', PHOTO.length);
    const theirs = await createUpload(sys.base, bob.token, 'image/jpeg', PHOTO.length);
    const [payload, sig] = mine.url.slice(`${sys.base}/uploads/`.length).split('.') as [string, string];
    const key = uploadSigningKey(sys.config.jwtSecret!);
    const forged = (p: object) => Buffer.from(JSON.stringify(p)).toString('base64url');
    const cases: [string, string, Record<string, string>?][] = [
      ['garbage', `${sys.base}/uploads/not-a-token`],
      ['no token', `${sys.base}/uploads/`],
      ['a flipped signature', `${sys.base}/uploads/${payload}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`],
      ["the payload swapped for bob's key, old signature", `${sys.base}/uploads/${forged({ k: theirs.fields.key, t: 'image/jpeg', n: 1e9, e: 9_999_999_999 })}.${sig}`],
      ['signed with another secret', `${sys.base}/uploads/${signUpload(uploadSigningKey('x'.repeat(40)), { key: mine.fields.key!, contentType: 'image/jpeg', maxBytes: 1e6, exp: 9_999_999_999 })}`],
      ['expired', `${sys.base}/uploads/${signUpload(key, { key: mine.fields.key!, contentType: 'image/jpeg', maxBytes: 1e6, exp: Math.floor(Date.now() / 1000) - 1 })}`],
      ['a key outside uploads/', `${sys.base}/uploads/${signUpload(key, { key: 'videos/vid_x/a.mp4', contentType: 'image/jpeg', maxBytes: 1e6, exp: 9_999_999_999 })}`, { key: 'videos/vid_x/a.mp4' }],
    ];
    for (const [name, url, override] of cases) {
      const res = await send(url, form(mine, PHOTO, override));
      assert.equal(res.status, 403, `${name}: ${res.text}`);
      assert.equal(res.json().error.field, 'url', name);
      if (name === 'expired') assert.match(res.json().error.message, /expired/);
    }
    // A valid token, but the form names bob's key: refused, naming key.
    const other = await send(mine.url, form(mine, PHOTO, { key: theirs.fields.key! }));
    assert.equal(other.status, 403, other.text);
    assert.equal(other.json().error.field, 'key');
    // Nothing was written for either user.
    for (const [u, up] of [[alice, mine], [bob, theirs]] as const)
      assert.match((await submitRaw(sys.base, u.token, specWith(up.ref))).body.error.message, /no file yet/);
  });

  test('malformed forms answer 4xx naming what is wrong, never 5xx', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    const json = await send(up.url, JSON.stringify({ file: 'x' }), { 'content-type': 'application/json' });
    assert.deepEqual([json.status, json.json().error.field], [415, 'content-type']);
    const raw = await send(up.url, 'just bytes', { 'content-type': 'application/octet-stream' });
    assert.equal(raw.status, 415);
    const noFile = new FormData();
    for (const [k, v] of Object.entries(up.fields)) noFile.append(k, v);
    const r1 = await send(up.url, noFile);
    assert.deepEqual([r1.status, r1.json().error.field], [400, 'file']);
    const noBoundary = await send(up.url, 'x', { 'content-type': 'multipart/form-data' });
    assert.equal(noBoundary.status, 400, noBoundary.text);
    const truncated = await send(up.url, `--b\r\nContent-Disposition: form-data; name="key"\r\n\r\n${up.fields.key}\r\n--b\r\nContent-Disposition: form-data; name="Content-Type"\r\n\r\nimage/jpeg\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc`, { 'content-type': 'multipart/form-data; boundary=b' });
    assert.ok(truncated.status >= 400 && truncated.status < 500, `${truncated.status} ${truncated.text}`);
    const manyParts = new FormData();
    for (let i = 0; i < 20; i++) manyParts.append(`f${i}`, 'x');
    manyParts.append('file', new Blob([PHOTO]), 'a.jpg');
    const r2 = await send(up.url, manyParts);
    assert.equal(r2.status, 413, r2.text);
    const wrongPart = new FormData();
    for (const [k, v] of Object.entries(up.fields)) wrongPart.append(k, v);
    wrongPart.append('photo', new Blob([PHOTO]), 'a.jpg');
    assert.deepEqual([(await send(up.url, wrongPart)).status], [400]);
    // After all that, the upload still works.
    assert.equal((await send(up.url, form(up, PHOTO))).status, 204);
  });

  test('a job with no owner that names an upload fails asset_forbidden, without retries', async () => {
    const user = await registerUser(sys.base);
    const up = await createUpload(sys.base, user.token, 'image/jpeg', PHOTO.length);
    assert.equal((await send(up.url, form(up, PHOTO))).status, 204);
    const queue = renderQueue(sys.config.queueName, { url: sys.config.redisUrl }, 3);
    try {
      const id = 'vid_noowner';
      const job = await queue.add('render', { videoId: id, spec: specWith(up.ref) }, { jobId: id });
      for (let i = 0; i < 200 && !(await job.isFailed()); i++) await sleep(50);
      const failed = await queue.getJob(id);
      assert.match(failed?.failedReason ?? '', /^asset_forbidden: .*no owner/);
      assert.equal(failed?.attemptsMade, 1);
      // With the owner's id (as the API enqueues it), another user's id reads nothing.
      const other = await queue.add('render', { videoId: 'vid_otherowner', spec: specWith(up.ref), userId: 'usr_someoneelse' }, { jobId: 'vid_otherowner' });
      for (let i = 0; i < 200 && !(await other.isFailed()); i++) await sleep(50);
      assert.match((await queue.getJob('vid_otherowner'))?.failedReason ?? '', /^asset_unavailable: .*has no file/);
    } finally {
      await queue.close();
    }
  });
});

describe('POST /v1/uploads refuses bad bodies with 400 naming the field', () => {
  let base: string;
  let api: RunningApi | undefined;
  before(async () => {
    const config = configFrom(await testEnv({ UPLOAD_MAX_BYTES: '1000000', USER_UPLOADS_PER_MINUTE: '25' }));
    api = await startApi(config);
    base = api.url;
  });
  after(() => api?.close());

  test('bad bodies', async () => {
    const user = await registerUser(base);
    const cases: [unknown, string][] = [
      [{ contentType: 'image/svg+xml', bytes: 10 }, 'contentType'],
      [{ contentType: 'image/*', bytes: 10 }, 'contentType'],
      [{ contentType: 'text/html', bytes: 10 }, 'contentType'],
      [{ contentType: 'IMAGE/JPEG', bytes: 10 }, 'contentType'],
      [{ contentType: 'image/jpeg; charset=x', bytes: 10 }, 'contentType'],
      [{ contentType: 42, bytes: 10 }, 'contentType'],
      [{ bytes: 10 }, 'contentType'],
      [{ contentType: 'image/jpeg' }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: 0 }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: -5 }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: 1.5 }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: '10' }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: 1_000_001 }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: 1e300 }, 'bytes'],
      [{ contentType: 'image/jpeg', bytes: 10, key: 'uploads/x' }, 'key'],
      [[], 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await createUploadRaw(base, user.token, body);
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.field, field, JSON.stringify(body));
    }
    const badJson = await createUploadRaw(base, user.token, '{"contentType":');
    assert.equal(badJson.status, 400);
    assert.equal((await createUploadRaw(base, user.token, 'contentType=image/jpeg', 'text/plain')).status, 415);
    assert.equal((await createUploadRaw(base, undefined, { contentType: 'image/jpeg', bytes: 10 })).status, 401);
    const huge = await createUploadRaw(base, user.token, { contentType: 'image/jpeg', bytes: 10, pad: 'x'.repeat(10_000) });
    assert.equal(huge.status, 413);
    // And the limits themselves are accepted.
    assert.equal((await createUploadRaw(base, user.token, { contentType: 'video/webm', bytes: 1_000_000 })).status, 201);
    assert.equal((await createUploadRaw(base, user.token, { contentType: 'audio/flac', bytes: 1 })).status, 201);
  });

  test('each user may create USER_UPLOADS_PER_MINUTE uploads a minute; then 429 with Retry-After', async () => {
    const user = await registerUser(base);
    for (let i = 0; i < 25; i++) assert.equal((await createUploadRaw(base, user.token, { contentType: 'image/png', bytes: 100 })).status, 201);
    const res = await fetch(`${base}/v1/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ contentType: 'image/png', bytes: 100 }),
    });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(((await res.json()) as ErrorJson).error.code, 'rate_limited');
    // Another user is not held back by it.
    assert.equal((await createUploadRaw(base, (await registerUser(base)).token, { contentType: 'image/png', bytes: 100 })).status, 201);
  });

  test('upload refs in a spec: a malformed one is 400 naming the field, mentioning upload://', async () => {
    const user = await registerUser(base);
    for (const ref of ['upload://', 'upload://upl_short', `upload://UPL_${'a'.repeat(25)}`, `upload://upl_${'a'.repeat(25)}/x`, `upload://../upl_${'a'.repeat(25)}`]) {
      const res = await submitRaw(base, user.token, specWith(ref));
      assert.equal(res.status, 400, ref);
      assert.equal(res.body.error.field, 'scenes[1].background.image', ref);
      assert.match(res.body.error.message, /upload:\/\//, ref);
    }
  });
});

describe('storage drivers: head and a download bounded while it streams', () => {
  async function check(storage: Storage, put: (key: string, data: Buffer) => Promise<void>) {
    const key = `uploads/usr_test/upl_${'1'.repeat(25)}`;
    assert.equal(await storage.head(key), undefined);
    const dir = tempDir();
    await assert.rejects(storage.download(key, join(dir, 'a'), 1e6), (err) => err instanceof StoredObjectError && err.reason === 'missing');
    await put(key, PHOTO);
    assert.equal((await storage.head(key))?.bytes, PHOTO.length);
    assert.deepEqual(await storage.download(key, join(dir, 'b'), PHOTO.length), { bytes: PHOTO.length });
    assert.ok(readFileSync(join(dir, 'b')).equals(PHOTO));
    await assert.rejects(storage.download(key, join(dir, 'c'), PHOTO.length - 1), (err) => err instanceof StoredObjectError && err.reason === 'too_large');
  }

  test('fs', async () => {
    const dir = tempDir();
    const storage = fsStorage({ dir, publicBaseUrl: () => 'http://x/media' });
    await check(storage, async (key, data) => {
      const file = join(tempDir(), 'f');
      writeFileSync(file, data);
      await storage.put(key, file, 'image/jpeg');
    });
  });

  test('s3', async () => {
    const s3 = await startS3();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const storage = s3Storage({ bucket: s3.bucket, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, publicBaseUrl: s3.env.CDN_BASE_URL! });
    await check(storage, async (key, data) => {
      const form = await storage.presignPost(key, { contentType: 'image/jpeg', maxBytes: data.length, ttlSeconds: 60 });
      const fd = new FormData();
      for (const [k, v] of Object.entries(form.fields)) fd.append(k, v);
      fd.append('file', new Blob([new Uint8Array(data)]), 'f.jpg');
      assert.equal((await fetch(form.url, { method: 'POST', body: fd })).status, 204);
    });
    assert.equal((await storage.head(`uploads/usr_test/upl_${'1'.repeat(25)}`))?.contentType, 'image/jpeg');
  });
});
