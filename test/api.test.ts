// The API against real Postgres and Redis (no worker runs here): accounts,
// tokens, submit and read, idempotency, privacy, and bad input of every kind.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:net';
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startApi, type RunningApi } from '../api/server.js';
import { configFrom, openQueue, ownRedis, onCleanup, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';

let api: RunningApi;
let base: string;
let env: Record<string, string>;
let queue: ReturnType<typeof openQueue>;

before(async () => {
  env = await testEnv();
  api = await startApi(configFrom(env));
  base = api.url;
  queue = openQueue(env);
});
after(async () => {
  await api.close();
  await runCleanups();
});

const post = (path: string, body: unknown, token?: string, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
const get = (path: string, token?: string) => fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

async function counts() {
  const [{ n }] = (await api.db.query<{ n: number }>('SELECT count(*)::int AS n FROM videos')) as [{ n: number }];
  const jobs = Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0);
  return { rows: n, jobs };
}

describe('accounts', () => {
  test('register returns 201 with tokens; login returns 200; refresh trades tokens', async () => {
    const u = await registerUser(base);
    assert.match(u.id, /^usr_/);
    const login = await post('/v1/auth/login', { email: u.email.toUpperCase(), password: u.password });
    assert.equal(login.status, 200);
    const tokens = (await login.json()) as { accessToken: string; refreshToken: string; user: { email: string } };
    assert.equal(tokens.user.email, u.email);
    const refreshed = await post('/v1/auth/refresh', { refreshToken: tokens.refreshToken });
    assert.equal(refreshed.status, 200);
    // An access token is not a refresh token.
    assert.equal((await post('/v1/auth/refresh', { refreshToken: tokens.accessToken })).status, 401);
  });

  test('duplicate email is 409; wrong password and unknown email are 401', async () => {
    const u = await registerUser(base);
    const dup = await post('/v1/auth/register', { email: u.email, password: 'another password' });
    assert.equal(dup.status, 409);
    assert.equal(((await dup.json()) as { error: { field: string } }).error.field, 'email');
    assert.equal((await post('/v1/auth/login', { email: u.email, password: 'wrong password' })).status, 401);
    assert.equal((await post('/v1/auth/login', { email: 'nobody@example.com', password: 'whatever123' })).status, 401);
  });

  test('missing, garbage, unsigned (alg none) and foreign-secret tokens are 401', async () => {
    const u = await registerUser(base);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = { sub: u.id, role: 'operator', typ: 'access', exp: Math.floor(Date.now() / 1000) + 600 };
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    const head = b64({ alg: 'HS256', typ: 'JWT' });
    const forged = `${head}.${b64(claims)}.${createHmac('sha256', 'x'.repeat(32)).update(`${head}.${b64(claims)}`).digest('base64url')}`;
    const expiredClaims = b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 });
    const expired = `${head}.${expiredClaims}.${createHmac('sha256', env.JWT_SECRET!).update(`${head}.${expiredClaims}`).digest('base64url')}`;
    for (const token of [undefined, 'garbage', none, forged, expired, 'vgk_notakey']) {
      const res = await get('/v1/videos', token);
      assert.equal(res.status, 401, `token ${token}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
    }
  });
});

describe('videos', () => {
  test('submit is 202 with a queued video and a job whose id is the video id', async () => {
    const u = await registerUser(base);
    const res = await post('/v1/videos', smallSpec(), u.token);
    assert.equal(res.status, 202);
    const video = (await res.json()) as { id: string; status: string; output: unknown; visibility: string; progress: number };
    assert.equal(video.status, 'queued');
    assert.equal(video.visibility, 'public');
    assert.equal(video.output, null);
    const job = await queue.getJob(video.id);
    assert.equal(job?.data.videoId, video.id);
    const read = (await (await get(`/v1/videos/${video.id}`, u.token)).json()) as { id: string };
    assert.equal(read.id, video.id);
  });

  test('an Idempotency-Key replay returns the first response and creates nothing', async () => {
    const u = await registerUser(base);
    const headers = { 'idempotency-key': 'order-42' };
    const first = await post('/v1/videos', smallSpec(), u.token, headers);
    const firstBody = (await first.json()) as { id: string };
    const before = await counts();
    const second = await post('/v1/videos', smallSpec(), u.token, headers);
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await second.json(), firstBody);
    assert.deepEqual(await counts(), before);
    // The same key with a different body is refused, naming the header.
    const other = await post('/v1/videos', smallSpec({ output: { width: 640, height: 360, fps: 24 } }), u.token, headers);
    assert.equal(other.status, 400);
    const err = ((await other.json()) as { error: { code: string; field: string } }).error;
    assert.deepEqual([err.code, err.field], ['idempotency_key_reused', 'idempotency-key']);
    // Keys belong to their user: another user's same key is a new video.
    const v = await registerUser(base);
    const theirs = await post('/v1/videos', smallSpec(), v.token, headers);
    assert.equal(theirs.status, 202);
    assert.notEqual(((await theirs.json()) as { id: string }).id, firstBody.id);
  });

  test("another user's private video is 404; a public one is readable", async () => {
    const owner = await registerUser(base);
    const other = await registerUser(base);
    const priv = (await (await post('/v1/videos?visibility=private', smallSpec(), owner.token)).json()) as { id: string; visibility: string };
    const pub = (await (await post('/v1/videos', smallSpec(), owner.token)).json()) as { id: string };
    assert.equal(priv.visibility, 'private');
    assert.equal((await get(`/v1/videos/${priv.id}`, owner.token)).status, 200);
    const hidden = await get(`/v1/videos/${priv.id}`, other.token);
    assert.equal(hidden.status, 404);
    assert.equal((await get(`/v1/videos/${pub.id}`, other.token)).status, 200);
    assert.equal((await get('/v1/videos/vid_doesnotexist', owner.token)).status, 404);
    // Lists show only one's own videos.
    const list = (await (await get('/v1/videos', other.token)).json()) as { data: unknown[] };
    assert.equal(list.data.length, 0);
  });

  test('GET /v1/videos pages newest first with a cursor', async () => {
    const u = await registerUser(base);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await (await post('/v1/videos', smallSpec(), u.token)).json()) as { id: string }).id);
    const seen: string[] = [];
    let cursor = '';
    for (;;) {
      const page = (await (await get(`/v1/videos?limit=2${cursor ? `&cursor=${cursor}` : ''}`, u.token)).json()) as {
        data: { id: string }[]; hasMore: boolean; nextCursor: string | null;
      };
      seen.push(...page.data.map((v) => v.id));
      if (!page.hasMore) break;
      cursor = page.nextCursor!;
    }
    assert.deepEqual(seen, [...ids].reverse());
  });
});

describe('bad input is a 400 naming the field, and nothing is stored or enqueued', () => {
  const spec = smallSpec;
  const scene = { duration: 1, background: { color: 'black' } };
  const cases: [string, unknown, string, number?][] = [
    ['negative duration', spec({ scenes: [{ ...scene, duration: -1 }] }), 'scenes[0].duration'],
    ['huge duration', spec({ scenes: [{ ...scene, duration: 1e9 }] }), 'scenes[0].duration'],
    ['zero width', spec({ output: { width: 0, height: 180, fps: 24 } }), 'output.width'],
    ['huge height', spec({ output: { width: 320, height: 100000, fps: 24 } }), 'output.height'],
    ['odd width', spec({ output: { width: 321, height: 180, fps: 24 } }), 'output.width'],
    ['fps too high', spec({ output: { width: 320, height: 180, fps: 240 } }), 'output.fps'],
    ['fractional fps', spec({ output: { width: 320, height: 180, fps: 29.97 } }), 'output.fps'],
    ['missing output', (({ output: _o, ...rest }) => rest)(spec()), 'output'],
    ['missing scenes', (({ scenes: _s, ...rest }) => rest)(spec()), 'scenes'],
    ['no scenes', spec({ scenes: [] }), 'scenes'],
    ['too many scenes', spec({ scenes: Array.from({ length: 31 }, () => scene) }), 'scenes'],
    ['unknown top-level field', spec({ watermark: true }), 'watermark'],
    ['unknown scene field', spec({ scenes: [{ ...scene, zoom: 2 }] }), 'scenes[0].zoom'],
    ['wrong version', spec({ version: 2 }), 'version'],
    ['string duration', spec({ scenes: [{ ...scene, duration: '3' }] }), 'scenes[0].duration'],
    ['caption too long', spec({ scenes: [{ ...scene, caption: { text: 'x'.repeat(201) } }] }), 'scenes[0].caption.text'],
    ['empty caption', spec({ scenes: [{ ...scene, caption: { text: '' } }] }), 'scenes[0].caption.text'],
    ['http asset', spec({ scenes: [{ ...scene, background: { image: 'http://example.com/a.jpg' } }] }), 'scenes[0].background.image'],
    ['file asset', spec({ audio: { src: 'file:///etc/passwd' } }), 'audio.src'],
    ['traversal asset', spec({ audio: { src: 'assets/../package.json' } }), 'audio.src'],
    ['loopback asset', spec({ audio: { src: 'https://127.0.0.1/a.mp3' } }), 'audio.src'],
    ['metadata asset', spec({ scenes: [{ ...scene, background: { image: 'https://169.254.169.254/latest/meta-data' } }] }), 'scenes[0].background.image'],
    ['bad color', spec({ scenes: [{ ...scene, background: { color: 'rgb(1,2,3)' } }] }), 'scenes[0].background.color'],
    ['color name ffmpeg does not know', spec({ scenes: [{ ...scene, background: { color: 'notacolor' } }] }), 'scenes[0].background.color'],
    ['color name ffmpeg spells otherwise', spec({ scenes: [{ ...scene, background: { color: 'lightgray' } }] }), 'scenes[0].background.color'],
    ['#rrggbbaa color', spec({ scenes: [{ ...scene, background: { color: '#ffffff80' } }] }), 'scenes[0].background.color'],
    ['0xrrggbb color', spec({ scenes: [{ ...scene, background: { color: '0xffffff' } }] }), 'scenes[0].background.color'],
    ['NUL in a caption', spec({ scenes: [{ ...scene, caption: { text: 'a\u0000b' } }] }), 'scenes[0].caption.text'],
    ['lone surrogate in a caption', spec({ scenes: [{ ...scene, caption: { text: 'a\ud800b' } }] }), 'scenes[0].caption.text'],
    ['lone low surrogate in a caption', spec({ scenes: [scene, { ...scene, caption: { text: '\udc00' } }] }), 'scenes[1].caption.text'],
    ['NUL in a property name', spec({ 'k\u0000': 1 }), 'body'],
    ['NUL in a nested property name', spec({ scenes: [{ ...scene, background: { 'color\u0000': 'black' } }] }), 'scenes[0].background'],
    ['NUL in an asset URL', spec({ audio: { src: 'https://example.com/a\u0000.mp3' } }), 'audio.src'],
    ['IPv4-compatible IPv6 asset', spec({ scenes: [{ ...scene, background: { image: 'https://[::127.0.0.1]/x.jpg' } }] }), 'scenes[0].background.image'],
    ['NAT64 metadata asset', spec({ audio: { src: 'https://[64:ff9b::a9fe:a9fe]/a.mp3' } }), 'audio.src'],
    ['6to4 asset', spec({ audio: { src: 'https://[2002:7f00:1::1]/a.mp3' } }), 'audio.src'],
    ['documentation-range asset', spec({ audio: { src: 'https://[2001:db8::1]/a.mp3' } }), 'audio.src'],
    ['localhost. asset (trailing dot)', spec({ scenes: [{ ...scene, background: { image: 'https://localhost./x.png' } }] }), 'scenes[0].background.image'],
    ['.internal. asset', spec({ audio: { src: 'https://foo.internal./a.mp3' } }), 'audio.src'],
    ['.local. asset', spec({ audio: { src: 'https://foo.local./a.mp3' } }), 'audio.src'],
    ['single-label asset with a trailing dot', spec({ audio: { src: 'https://vm./a.mp3' } }), 'audio.src'],
    ['IDN that maps to localhost.', spec({ audio: { src: 'https://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3./a.mp3' } }), 'audio.src'],
    ['one file as an image and as audio', spec({ scenes: [scene, { ...scene, background: { image: 'assets/photo.jpg' } }], audio: { src: 'assets/photo.jpg' } }), 'audio.src'],
    ['unknown transition', spec({ scenes: [scene, { ...scene, transition: { type: 'spin', duration: 0.5 } }] }), 'scenes[1].transition.type'],
    ['transition on first scene', spec({ scenes: [{ ...scene, transition: { type: 'fade', duration: 0.5 } }] }), 'scenes[0].transition'],
    ['transition longer than scene', spec({ scenes: [scene, { ...scene, transition: { type: 'fade', duration: 2 } }] }), 'scenes[1].transition.duration'],
    ['scene shorter than one frame', spec({ output: { width: 320, height: 180, fps: 1 }, scenes: [scene, { ...scene, duration: 0.5 }, scene] }), 'scenes[1].duration'],
    ['transitions cover a whole scene', spec({ scenes: [scene, { ...scene, transition: { type: 'fade', duration: 0.5 } }, { ...scene, transition: { type: 'fade', duration: 0.5 } }] }), 'scenes[1].duration'],
    ['total too long', spec({ scenes: Array.from({ length: 6 }, () => ({ ...scene, duration: 60 })) }), 'scenes'],
    ['array body', [spec()], 'body'],
    ['invalid JSON', '{"version": 1,', 'body'],
    ['10 MB body', JSON.stringify({ ...spec(), pad: 'x'.repeat(10 * 1024 * 1024) }), 'body', 413],
  ];

  for (const [name, body, field, status = 400] of cases) {
    test(name, async () => {
      const u = await registerUser(base);
      const before = await counts();
      const res = await post('/v1/videos', body, u.token);
      assert.equal(res.status, status);
      const { error } = (await res.json()) as { error: { code: string; field: string; message: string } };
      assert.equal(error.field, field, error.message);
      assert.ok(error.message.length > 10, 'message says why');
      assert.deepEqual(await counts(), before);
    });
  }

  test('bad query and header values are 400 too', async () => {
    const u = await registerUser(base);
    const res = await post('/v1/videos?visibility=secret', smallSpec(), u.token);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { field: string } }).error.field, 'visibility');
    const list = await get('/v1/videos?limit=1000', u.token);
    assert.equal(list.status, 400);
    assert.equal(((await list.json()) as { error: { field: string } }).error.field, 'limit');
    const key = await post('/v1/videos', smallSpec(), u.token, { 'idempotency-key': 'x'.repeat(300) });
    assert.equal(key.status, 400);
    const text = await fetch(`${base}/v1/videos`, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${u.token}` }, body: 'hello' });
    assert.equal(text.status, 415);
    assert.equal(((await text.json()) as { error: { code: string } }).error.code, 'unsupported_media_type');
    const short = await post('/v1/auth/register', { email: 'not-an-email', password: 'short' });
    assert.equal(short.status, 400);
    assert.equal(((await short.json()) as { error: { field: string } }).error.field, 'email');
  });

  test('colors: #rrggbb and the names ffmpeg knows, in any case, are accepted', async () => {
    const u = await registerUser(base);
    for (const color of ['black', 'navy', 'white', 'Navy', 'LIGHTGREY', 'lightgoldenrodyellow', '#1e3a8a', '#FFFFFF']) {
      const res = await post('/v1/videos', spec({ scenes: [{ ...scene, background: { color } }] }), u.token);
      assert.equal(res.status, 202, color);
    }
  });

  // Bad paths, ids, URLs, query strings, headers and bodies of other routes:
  // never a 500, always the one error shape. A malformed id answers as an
  // unknown one does (404), like Stripe.
  test('malformed ids, URLs, query strings, headers and other bodies answer in the error shape', async () => {
    const u = await registerUser(base);
    const expect = async (what: string, res: Response | Promise<Response>, status: number, code: string, field?: string) => {
      const r = await res;
      assert.equal(r.status, status, what);
      const { error } = (await r.json()) as { error: { code: string; field?: string; message: string } };
      assert.equal(error.code, code, what);
      assert.equal(error.field, field, what);
      assert.ok(error.message.length > 10, what);
    };
    await expect('NUL id', get('/v1/videos/%00', u.token), 404, 'not_found', 'id');
    await expect('NUL in an id', get(`/v1/videos/vid_0mwwdhgm18c0d7ea886f7fca%00`, u.token), 404, 'not_found', 'id');
    await expect('upper-case id', get(`/v1/videos/vid_${'A'.repeat(25)}`, u.token), 404, 'not_found', 'id');
    await expect('surrogate id', get('/v1/videos/%ED%A0%80', u.token), 400, 'invalid_request', 'url');
    await expect('well-formed unknown id', get(`/v1/videos/vid_${'0'.repeat(25)}`, u.token), 404, 'not_found', 'id');
    await expect('malformed URL', get('/v1/videos/%E0%A4%A', u.token), 400, 'invalid_request', 'url');
    await expect('over-long id', get(`/v1/videos/${'a'.repeat(500)}`, u.token), 404, 'not_found');
    await expect('NUL in the query', get('/v1/videos?cursor=%00', u.token), 400, 'invalid_request', 'cursor');
    await expect('surrogate in the query', get('/v1/videos?cursor=%ED%A0%80', u.token), 400, 'invalid_request', 'cursor');
    await expect('unknown query parameters', get(`/v1/videos?${Array.from({ length: 500 }, (_, i) => `p${i}=1`).join('&')}`, u.token), 400, 'invalid_request', 'p0');
    await expect('too many query parameters', get(`/v1/videos?${Array.from({ length: 3000 }, (_, i) => `p${i}=1`).join('&')}`, u.token), 431, 'headers_too_large', 'headers');
    await expect('NUL in a refresh token', post('/v1/auth/refresh', { refreshToken: 'a\u0000' }), 400, 'invalid_request', 'refreshToken');
    await expect('surrogate in a password', post('/v1/auth/login', { email: u.email, password: '\ud800password' }), 400, 'invalid_request', 'password');
    await expect('NUL in a login property name', post('/v1/auth/login', { email: u.email, password: u.password, '\u0000': 1 }), 400, 'invalid_request', 'body');

    // What Node's HTTP parser refuses never reaches a route: raw bytes on a socket.
    const raw = (request: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const { hostname, port } = new URL(base);
      const socket = connect(Number(port), hostname, () => socket.write(request));
      let out = '';
      socket.on('data', (d) => (out += d));
      socket.on('error', reject);
      socket.on('close', () => resolve({ status: Number(out.split(' ')[1]), body: out.slice(out.indexOf('\r\n\r\n') + 4) }));
    });
    const auth = `authorization: Bearer ${u.token}\r\n`;
    for (const [what, request, status, code] of [
      ['bad header name', `GET /v1/videos HTTP/1.1\r\nhost: x\r\n${auth}x bad: 1\r\n\r\n`, 400, 'invalid_request'],
      ['control character in a header', `GET /v1/videos HTTP/1.1\r\nhost: x\r\n${auth}x-a: a\x01b\r\n\r\n`, 400, 'invalid_request'],
      ['headers over 16 KiB', `GET /v1/videos HTTP/1.1\r\nhost: x\r\n${auth}x-a: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
      ['not HTTP', 'HELLO\r\n\r\n', 400, 'invalid_request'],
    ] as const) {
      const res = await raw(request);
      assert.equal(res.status, status, what);
      assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, code, what);
    }
  });
});

describe('service endpoints', () => {
  test('healthz, readyz, metrics and the OpenAPI document', async () => {
    assert.equal((await get('/healthz')).status, 200);
    const ready = await get('/readyz');
    assert.deepEqual(await ready.json(), { status: 'ok', redis: 'ok', db: 'ok' });
    const metrics = await (await get('/metrics')).text();
    assert.match(metrics, /vgen_http_request_duration_seconds_bucket\{.*route="\/v1\/videos"/);
    assert.match(metrics, /vgen_process_cpu_seconds_total/);
    const doc = (await (await get('/docs/json')).json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/v1/auth/register', '/v1/auth/login', '/v1/videos', '/v1/videos/{id}']) assert.ok(doc.paths[p], p);
  });
});

describe('Redis down', () => {
  test('submit answers 503 and leaves no row behind, whether Redis never came up or went away', async () => {
    const { port, proc: redis } = await ownRedis();

    for (const redisUrl of [`redis://127.0.0.1:${port}`, 'redis://127.0.0.1:1']) {
      const down = await startApi(configFrom({ ...(await testEnv()), REDIS_URL: redisUrl }));
      try {
        const u = await registerUser(down.url);
        if (redisUrl.endsWith(String(port))) {
          redis.kill('SIGKILL'); // it was up when the API started; now it is gone
          await sleep(200);
        }
        const res = await fetch(`${down.url}/v1/videos`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${u.token}`, 'idempotency-key': 'k1' },
          body: JSON.stringify(smallSpec()),
        });
        assert.equal(res.status, 503, redisUrl);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unavailable');
        const rows = await down.db.query<{ n: number }>('SELECT (SELECT count(*) FROM videos)::int + (SELECT count(*) FROM idempotency_keys)::int AS n');
        assert.equal(rows[0]!.n, 0);
        assert.equal((await fetch(`${down.url}/readyz`)).status, 503);
      } finally {
        await down.close();
      }
    }
  });
});
