// GET /v1/videos/:id/events: the video object as Server-Sent Events, in order,
// resumable with Last-Event-ID, and fanned out through Redis: the client here
// talks to API B, which runs no settler, so every status change it sees was
// published by API A (and every progress by the worker).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import type { VideoBody } from '../api/schemas.js';
import { VgenClient } from '../cli/client.js';
import { readSse } from '../cli/sse.js';
import type { RenderSpec } from '../engine/spec.js';
import { startWorker, type RunningWorker } from '../worker/main.js';
import { configFrom, openQueue, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

let a: RunningApi;
let b: RunningApi;
let worker: RunningWorker;
let queue: ReturnType<typeof openQueue>;
let user: { token: string };

before(async () => {
  const env = await testEnv({ WORK_DIR: tempDir() });
  a = await startApi(configFrom(env));
  b = await startApi(configFrom({ ...env, EVENTS_MAX_CONNECTIONS: '3' }));
  await b.settler.close();
  queue = openQueue(env);
  // Jobs wait until a test has its stream open.
  await queue.pause();
  worker = await startWorker(configFrom(env));
  user = await registerUser(a.url);
});
after(async () => {
  await worker?.close();
  await b?.close();
  await a?.close();
  await runCleanups();
});

type Received = { id: string | undefined; video: VideoBody };

/** Open a stream; `events` fills as they come, `done` resolves when the server ends it. */
function stream(base: string, videoId: string, token: string, lastEventId?: string) {
  const abort = new AbortController();
  const events: Received[] = [];
  const opened = fetch(`${base}/v1/videos/${videoId}/events`, {
    headers: { authorization: `Bearer ${token}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: abort.signal,
  });
  const done = opened.then(async (res) => {
    if (res.status !== 200) assert.fail(`${res.status}: ${await res.text()}`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    for await (const e of readSse(res.body!)) events.push({ id: e.id, video: JSON.parse(e.data) as VideoBody });
  }).catch((err) => {
    if (!abort.signal.aborted) throw err;
  });
  return { events, done, close: () => abort.abort(), opened };
}

async function until(what: string, fn: () => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const statuses = (events: Received[]) => events.map((e) => e.video.status).filter((s, i, all) => s !== all[i - 1]);

test('a client sees queued → rendering → progress → succeeded, in order, then the stream ends', { timeout: 40_000 }, async () => {
  const client = new VgenClient(a.url, user.token);
  const video = await client.submit(smallSpec() as RenderSpec);
  const s = stream(b.url, video.id, user.token);
  await until('the first event', () => s.events.length > 0);
  assert.equal(s.events[0]!.video.status, 'queued');
  assert.deepEqual({ ...s.events[0]!.video }, { ...(await client.video(video.id)) }, 'the first event is the video as GET shows it');

  await queue.resume();
  await s.done; // the server ends the stream after the terminal state
  await queue.pause();

  assert.deepEqual(statuses(s.events), ['queued', 'rendering', 'succeeded']);
  const rendering = s.events.filter((e) => e.video.status === 'rendering');
  assert.ok(rendering.some((e) => e.video.progress > 0 && e.video.progress < 1), `progress while rendering: ${rendering.map((e) => e.video.progress)}`);
  const progress = s.events.map((e) => e.video.progress);
  assert.deepEqual(progress, [...progress].sort((x, y) => x - y), 'progress never goes back');
  const ids = s.events.map((e) => Number(e.id));
  assert.ok(ids.every((id, i) => Number.isInteger(id) && (i === 0 || id > ids[i - 1]!)), `ids increase: ${ids}`);
  const last = s.events.at(-1)!.video;
  assert.equal(last.progress, 1);
  assert.match(last.output?.url ?? '', /\.mp4$/);
  // (Media URLs name the API that answers: compare with B's.)
  assert.deepEqual(last, await new VgenClient(b.url, user.token).video(video.id));
});

test('a reconnect with Last-Event-ID resumes: the current state first, then the changes', { timeout: 40_000 }, async () => {
  const client = new VgenClient(a.url, user.token);
  const video = await client.submit(smallSpec() as RenderSpec);
  const first = stream(b.url, video.id, user.token);
  await until('the first event', () => first.events.length > 0);
  first.close();
  await first.done;
  const lastId = first.events.at(-1)!.id!;

  // Changes happen while no stream is open.
  await queue.resume();
  for (let i = 0; i < 400 && (await client.video(video.id)).status === 'queued'; i++) await sleep(25);
  const resumed = stream(b.url, video.id, user.token, lastId);
  await resumed.done;
  await queue.pause();

  const ids = resumed.events.map((e) => Number(e.id));
  assert.ok(ids.every((id) => id > Number(lastId)), `every id after ${lastId}: ${ids}`);
  assert.notEqual(resumed.events[0]!.video.status, 'queued', 'the first event sums up what was missed');
  assert.equal(resumed.events.at(-1)!.video.status, 'succeeded');
});

test('an event published by one API process reaches a client of another; the stream is the owner\'s only', { timeout: 20_000 }, async () => {
  const client = new VgenClient(a.url, user.token);
  const video = await client.submit(smallSpec() as RenderSpec);
  const s = stream(b.url, video.id, user.token);
  await until('the first event', () => s.events.length > 0);
  // Canceled through A: A's route publishes, B's client hears it.
  await client.cancel(video.id);
  await s.done;
  assert.deepEqual(statuses(s.events), ['queued', 'canceled']);

  // Someone else, public video or not: 404, like an unknown id.
  const other = await registerUser(a.url);
  for (const id of [video.id, 'vid_0000000000000000000000000', 'nope']) {
    const res = await fetch(`${b.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${other.token}` } });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
  }
  assert.equal((await fetch(`${b.url}/v1/videos/${video.id}/events`)).status, 401);
  // A settled video: its final state, then the end.
  const again = stream(b.url, video.id, user.token);
  await again.done;
  assert.deepEqual(again.events.map((e) => e.video.status), ['canceled']);
});

test('streams per process are bounded; a client that leaves frees its place', { timeout: 20_000 }, async () => {
  const client = new VgenClient(a.url, user.token);
  const video = await client.submit(smallSpec() as RenderSpec);
  const held = [stream(b.url, video.id, user.token), stream(b.url, video.id, user.token), stream(b.url, video.id, user.token)];
  await until('three streams open', () => held.every((s) => s.events.length > 0));
  const refused = await fetch(`${b.url}/v1/videos/${video.id}/events`, { headers: { authorization: `Bearer ${user.token}` } });
  assert.equal(refused.status, 503);
  assert.ok(Number(refused.headers.get('retry-after')) > 0);
  held[0]!.close();
  await held[0]!.done;
  // The server notices the disconnection and frees the place.
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    const res = await fetch(`${b.url}/v1/videos/${video.id}/events`, { headers: { authorization: `Bearer ${user.token}` } });
    status = res.status;
    await res.body?.cancel();
    if (status !== 200) await sleep(50);
  }
  assert.equal(status, 200);
  await client.cancel(video.id);
  await Promise.all([held[1]!.done, held[2]!.done]);
});
