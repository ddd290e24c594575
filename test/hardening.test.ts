// Request hardening on the API's edges: small bodies and a per-address limit
// on the auth routes, the password-hashing gate checked before any body is
// read, a deadline on receiving a request (not on streams that follow it),
// and JSON bodies that must be valid UTF-8.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import { limitPasswordHashing } from '../api/users.js';
import { configFrom, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';

let api: RunningApi;
let port: number;
before(async () => {
  api = await startApi(configFrom(await testEnv({
    AUTH_REFRESH_RATE_LIMIT_PER_IP: '3', TRUST_PROXY: '127.0.0.1', HTTP_REQUEST_TIMEOUT_SECONDS: '1',
  })));
  port = Number(new URL(api.url).port);
});
after(async () => {
  await api.close();
  await runCleanups();
});

type ErrorJson = { error: { code: string; field?: string; message: string } };
const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
  fetch(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

/** Write `head` (and more later) on a raw socket; resolves with everything the server sent once it closes or `ms` pass. */
function raw(head: string) {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d.toString('utf8')));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(head);
  return {
    socket,
    get received() { return received; },
    until: async (ms: number) => {
      await Promise.race([closed, sleep(ms)]);
      return received;
    },
  };
}
const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
const errorIn = (response: string) => (JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as ErrorJson).error;

describe('auth routes', () => {
  test('a body over 16 KiB is a 413 naming body on register, login and refresh', async () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`; // 20 KB
    for (const path of ['/v1/auth/register', '/v1/auth/login', '/v1/auth/refresh']) {
      const res = await post(path, `{"refreshToken":${deep}}`, { 'x-forwarded-for': '192.0.2.200' });
      assert.equal(res.status, 413, path);
      const { error } = (await res.json()) as ErrorJson;
      assert.deepEqual([error.code, error.field], ['body_too_large', 'body'], path);
    }
  });

  test('refresh is rate-limited per address: 429 with Retry-After', async () => {
    const from = (ip: string) => post('/v1/auth/refresh', JSON.stringify({ refreshToken: 'not.a.token' }), { 'x-forwarded-for': ip });
    for (let i = 0; i < 3; i++) assert.equal((await from('192.0.2.1')).status, 401);
    const limited = await from('192.0.2.1');
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal(((await limited.json()) as ErrorJson).error.code, 'rate_limited');
    assert.equal((await from('192.0.2.2')).status, 401, 'another address is not limited');
  });
});

describe('password hashing gate', () => {
  test('when it is full, sign-ins get 503 with Retry-After before their body is read', async () => {
    limitPasswordHashing({ concurrency: 0, queue: 0 }); // no slot, no room to wait: full
    try {
      for (const path of ['/v1/auth/register', '/v1/auth/login']) {
        // Not JSON: parsed, it would be a 400.
        const res = await post(path, '{not json', { 'x-forwarded-for': '192.0.2.50' });
        assert.equal(res.status, 503, path);
        assert.equal(res.headers.get('retry-after'), '1');
        assert.equal(((await res.json()) as ErrorJson).error.code, 'unavailable');
      }
      // A body that never finishes arriving is answered all the same.
      const c = raw('POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email"');
      const t0 = performance.now();
      while (!c.received.includes('\r\n\r\n') && performance.now() - t0 < 900) await sleep(10);
      c.socket.destroy();
      assert.equal(statusOf(c.received), 503, c.received);
    } finally {
      limitPasswordHashing({ concurrency: 2, queue: 32 });
    }
  });
});

describe('request timeout', () => {
  test('a body dripping slower than HTTP_REQUEST_TIMEOUT_SECONDS is cut with a 408 in the error shape', async () => {
    const c = raw('POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
    const drip = setInterval(() => c.socket.writable && c.socket.write(' '), 200);
    const t0 = performance.now();
    try {
      const response = await c.until(4_000);
      assert.ok(performance.now() - t0 < 3_500, `took ${(performance.now() - t0).toFixed(0)} ms`);
      assert.equal(statusOf(response), 408, response);
      assert.equal(errorIn(response).code, 'request_timeout');
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  test('an event stream outlives the request timeout', async () => {
    const u = await registerUser(api.url);
    const submitted = await post('/v1/videos', JSON.stringify(smallSpec()), { authorization: `Bearer ${u.token}` });
    assert.equal(submitted.status, 202);
    const { id } = (await submitted.json()) as { id: string };
    const abort = new AbortController();
    const res = await fetch(`${api.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${u.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    let ended = false;
    const reading = (async () => {
      for await (const _ of res.body!) { /* drain */ }
      ended = true;
    })().catch(() => {});
    await sleep(2_500);
    assert.equal(ended, false, 'the stream was cut');
    abort.abort();
    await reading;
  });
});

describe('JSON bodies', () => {
  test('a body that is not valid UTF-8 is a 400 invalid_json, never U+FFFD in the data', async () => {
    const email = Buffer.concat([Buffer.from('{"email":"a'), Buffer.from([0xc0, 0xaf]), Buffer.from(`${Date.now()}@example.com","password":"long enough password"}`)]);
    const res = await post('/v1/auth/register', email, { 'x-forwarded-for': '192.0.2.60' });
    assert.equal(res.status, 400);
    const { error } = (await res.json()) as ErrorJson;
    assert.deepEqual([error.code, error.field], ['invalid_json', 'body']);
    const [{ n }] = (await api.db.query<{ n: number }>("SELECT count(*)::int AS n FROM users WHERE email LIKE '%\uFFFD%'")) as [{ n: number }];
    assert.equal(n, 0);

    // Valid UTF-8 still parses, and prototype poisoning is still refused.
    const ok = await post('/v1/auth/register', JSON.stringify({ email: `é${Date.now()}@example.com`, password: 'long enough password' }), { 'x-forwarded-for': '192.0.2.61' });
    assert.equal(ok.status, 201);
    const poisoned = await post('/v1/auth/login', '{"__proto__":{"x":1},"email":"a@example.com","password":"long enough password"}', { 'x-forwarded-for': '192.0.2.62' });
    assert.equal(poisoned.status, 400);
  });
});
