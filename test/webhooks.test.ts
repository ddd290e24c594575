// Webhooks end to end against real Postgres and Redis and a local https
// receiver (self-signed certificate made here with openssl, trusted through
// the `ca` option): signatures, retries recorded attempt by attempt, the
// outbox sweep, the submit-time refusal of private callback URLs, the
// per-attempt timeout, redirects not followed, and OUTBOUND_ALLOW itself
// (parsing, what it admits, the start-up warning). Names other than localhost
// resolve through an injected lookup (no DNS here); the addresses they resolve
// to are vetted exactly as in production.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { startApi, type RunningApi } from '../api/server.js';
import { markCanceled } from '../api/video-store.js';
import { webhookQueueName } from '../api/webhook-delivery.js';
import { sendWebhook } from '../api/webhook-sender.js';
import { ConfigError, loadConfig } from '../engine/config.js';
import { parseOutboundAllow, admitsAddress, hostRefusal, STRICT_POLICY } from '../engine/outbound-policy.js';
import { QUEUE_PREFIX } from '../engine/queue.js';
import { sign, verify } from '../engine/webhook-signature.js';
import { startWorker } from '../worker/main.js';
import { configFrom, onCleanup, openQueue, ownRedis, REDIS_URL, registerUser, runCleanups, smallSpec, testEnv } from './helpers.js';

after(runCleanups);

// ── the receiver ──────────────────────────────────────────────────────────────

interface Hit { path: string; headers: IncomingHttpHeaders; body: string; at: number }
const hits: Hit[] = [];
const hitsOf = (path: string) => hits.filter((h) => h.path === path);
const answered = new Map<string, number>();
const sockets = new Set<Socket>();
let root: string;
let ca: Buffer;
let receiver: Server;
let port: number;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vgen-webhooks-'));
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=hooks.test', '-addext', 'subjectAltName=DNS:hooks.test,DNS:localhost,IP:127.0.0.1',
    '-keyout', join(root, 'key.pem'), '-out', join(root, 'cert.pem'),
  ]);
  ca = await readFile(join(root, 'cert.pem'));
  receiver = createServer({ key: await readFile(join(root, 'key.pem')), cert: ca }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://hooks.test');
      hits.push({ path: url.pathname + url.search, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const n = (answered.get(url.pathname + url.search) ?? 0) + 1;
      answered.set(url.pathname + url.search, n);
      switch (url.pathname) {
        case '/ok': return res.writeHead(204).end();
        case '/flaky': return res.writeHead(n <= 2 ? 500 : 200).end(n <= 2 ? 'not yet' : 'ok'); // 500, 500, then 200
        case '/hang': return; // never answers
        case '/dribble': { // a status line, then header bytes one at a time, forever
          const sock = req.socket;
          sock.write('HTTP/1.1 200 OK\r\nx-slow: ');
          const t = setInterval(() => (sock.destroyed ? clearInterval(t) : sock.write('a')), 50);
          return;
        }
        case '/stream': { // 200, then a body that never ends
          res.writeHead(200, { 'content-type': 'text/plain' });
          const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(Buffer.alloc(1024, 0x61))), 5);
          return;
        }
        case '/redirect': return res.writeHead(302, { location: '/ok?redirected' }).end();
        default: return res.writeHead(404).end();
      }
    });
  });
  receiver.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  port = (receiver.address() as AddressInfo).port;
  onCleanup(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => receiver.close(resolve));
    await rm(root, { recursive: true, force: true });
  });
});

const DNS: Record<string, string[]> = {
  localhost: ['127.0.0.1', '::1'],
  'hooks.test': ['127.0.0.1'],
  'private.test': ['10.0.0.5'],
  'mixed.test': ['93.184.216.34', '192.168.1.20'],
  'public.test': ['93.184.216.34'],
};
const resolve = async (host: string) => {
  if (DNS[host]) return DNS[host];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
};

async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** A small HTTP client for one user of one API. */
function client(baseUrl: string, token: string) {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return {
    call,
    submit: (callbackUrl: unknown, extra: Record<string, unknown> = {}, headers?: Record<string, string>) =>
      call('POST', '/v1/videos', { ...smallSpec(), ...(callbackUrl === undefined ? {} : { callbackUrl }), ...extra }, headers),
    cancel: (id: string) => call('POST', `/v1/videos/${id}/cancel`),
    video: (id: string) => call('GET', `/v1/videos/${id}`),
    deliveries: (id: string) => call('GET', `/v1/videos/${id}/webhook-deliveries`),
    secret: () => call('GET', '/v1/account/webhook-secret'),
    rotate: () => call('POST', '/v1/account/webhook-secret/rotate'),
  };
}
type Client = ReturnType<typeof client>;

/** Remove the test's webhook queue from Redis at cleanup (uniqueQueue only knows the render queue). */
function dropWebhookQueue(env: Record<string, string>) {
  onCleanup(async () => {
    const q = new Queue(webhookQueueName(env.QUEUE_NAME!), { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
    await q.obliterate({ force: true });
    await q.close();
  });
}

// ── signatures ────────────────────────────────────────────────────────────────

describe('signature', () => {
  const body = '{"id":"vid_x","object":"video","status":"succeeded"}';
  const now = 1_750_000_000;

  test('verifies with the secret and fails with another, a changed body or an old timestamp', () => {
    const header = sign('whsec_one', body, now);
    assert.match(header, /^t=1750000000,v1=[0-9a-f]{64}$/);
    assert.equal(verify('whsec_one', header, body, 300, now + 10), true);
    assert.equal(verify('whsec_two', header, body, 300, now + 10), false);
    assert.equal(verify('whsec_one', header, body.replace('succeeded', 'failed'), 300, now + 10), false);
    assert.equal(verify('whsec_one', header, body, 300, now + 301), false, 'older than the tolerance');
    assert.equal(verify('whsec_one', header, body, 300, now - 301), false, 'from the future');
  });

  test('a malformed header is false, never an exception', () => {
    const good = sign('whsec_one', body, now);
    for (const header of [undefined, '', 'garbage', 't=abc,v1=00', `t=${now}`, good.replace(/v1=/, 'v0='), `${good.slice(0, -2)}zz`, `t=${now},v1=${'0'.repeat(64)}`, 'x'.repeat(10_000)])
      assert.equal(verify('whsec_one', header, body, 300, now), false, String(header).slice(0, 40));
  });
});

// ── OUTBOUND_ALLOW ────────────────────────────────────────────────────────────

describe('OUTBOUND_ALLOW', () => {
  test('parses host names (any case, a trailing dot), addresses and IPv4/IPv6 ranges', () => {
    const p = parseOutboundAllow(' LocalHost., 127.0.0.1 10.0.0.0/8,fd00::/8 , ::1 my-box_1.lan ');
    assert.deepEqual([...p.hosts].sort(), ['localhost', 'my-box_1.lan']);
    assert.equal(p.ranges.length, 4);
    assert.equal(p.entries.length, 6);
    assert.ok(admitsAddress(p, 'whatever.test', '10.9.8.7'), 'inside 10.0.0.0/8');
    assert.ok(admitsAddress(p, 'whatever.test', 'fd12::1'), 'inside fd00::/8');
    assert.ok(admitsAddress(p, 'whatever.test', '::ffff:127.0.0.1'), 'IPv4-mapped counts as the IPv4 address');
    assert.ok(admitsAddress(p, 'LOCALHOST', '127.0.0.2'), 'a named host, whatever it resolves to');
    assert.ok(!admitsAddress(p, 'whatever.test', '127.0.0.2'), 'a single address admits only itself');
    assert.ok(!admitsAddress(p, 'whatever.test', '169.254.169.254'));
    assert.ok(!admitsAddress(p, 'whatever.test', 'fe80::1'));
    assert.ok(admitsAddress(STRICT_POLICY, 'example.com', '93.184.216.34'), 'public addresses need no entry');
    assert.ok(!admitsAddress(STRICT_POLICY, 'localhost', '127.0.0.1'));
    assert.equal(hostRefusal(p, '127.0.0.1'), undefined);
    assert.equal(hostRefusal(p, 'my-box_1.lan.'), undefined);
    assert.equal(hostRefusal(p, '[fd00::5]'), undefined);
    assert.ok(hostRefusal(p, '127.0.0.3'));
    assert.ok(hostRefusal(STRICT_POLICY, 'localhost'));
  });

  test('empty or unset is the strict policy', () => {
    assert.equal(parseOutboundAllow(undefined), STRICT_POLICY);
    assert.equal(loadConfig({ OUTBOUND_ALLOW: ' , ' }).outboundAllow, STRICT_POLICY);
  });

  for (const bad of ['10.0.0.0/33', '::1/129', '10.0.0.0/8/8', '300.1.1.1', '127.1', '*.example.com', 'https://localhost', 'fe80::1%eth0', 'a..b', '-bad.example', '10.0.0.0/x', 'gg::1/64'])
    test(`a bad entry stops the process: ${bad}`, () => {
      assert.throws(() => loadConfig({ OUTBOUND_ALLOW: `localhost,${bad}` }), (err: unknown) =>
        err instanceof ConfigError && err.variable === 'OUTBOUND_ALLOW' && err.message.startsWith('OUTBOUND_ALLOW ') && err.message.includes(bad));
    });

  test('the API and the worker warn at start when it is set, and only then', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _e, cb) => cb(void lines.push(String(chunk))) }));
    const warned = () => lines.filter((l) => l.includes('OUTBOUND_ALLOW is set')).map((l) => JSON.parse(l) as { level: number; outboundAllow: string[] });

    const strictEnv = await testEnv();
    dropWebhookQueue(strictEnv);
    await (await startApi(configFrom(strictEnv), { log })).close();
    await (await startWorker(configFrom(strictEnv), { log })).close();
    assert.deepEqual(warned(), []);

    const devEnv = await testEnv({ OUTBOUND_ALLOW: 'localhost,127.0.0.0/8' });
    dropWebhookQueue(devEnv);
    await (await startApi(configFrom(devEnv), { log })).close();
    await (await startWorker(configFrom(devEnv), { log })).close();
    const w = warned();
    assert.equal(w.length, 2, 'one warning from each role');
    for (const line of w) {
      assert.equal(line.level, 40);
      assert.deepEqual(line.outboundAllow, ['localhost', '127.0.0.0/8']);
    }
  });
});

// ── one attempt ───────────────────────────────────────────────────────────────

describe('sendWebhook: one attempt', () => {
  const policy = parseOutboundAllow('localhost');
  const attempt = (path: string, extra: Partial<Parameters<typeof sendWebhook>[0]> = {}) =>
    sendWebhook({ url: `https://localhost:${port}${path}`, body: '{"a":1}', secret: 'whsec_t', event: 'video.succeeded', deliveryId: 'd1', outbound: { policy, ca }, timeoutMs: 800, ...extra });

  test('a 2xx is a success; the body and signature arrive as sent', async () => {
    const out = await attempt('/ok?single');
    assert.deepEqual([out.ok, out.httpStatus, out.error], [true, 204, null]);
    const hit = hitsOf('/ok?single')[0]!;
    assert.equal(hit.body, '{"a":1}');
    assert.ok(verify('whsec_t', hit.headers['vgen-signature'] as string, hit.body));
    assert.deepEqual([hit.headers['content-type'], hit.headers['vgen-event'], hit.headers['vgen-delivery'], hit.headers.host], ['application/json', 'video.succeeded', 'd1', `localhost:${port}`]);
  });

  for (const path of ['/hang', '/dribble'])
    test(`a receiver that ${path === '/hang' ? 'never answers' : 'dribbles its headers forever'} is cut by the timeout`, async () => {
      const out = await attempt(path);
      assert.equal(out.ok, false);
      assert.match(out.error!, /no answer within 0.8 s/);
      assert.ok(out.durationMs >= 750 && out.durationMs < 2_000, `took ${out.durationMs} ms`);
    });

  test('a body that never ends is not read past a few KB: the answer stands, the connection is closed', async () => {
    const out = await attempt('/stream');
    assert.deepEqual([out.ok, out.httpStatus], [true, 200]);
    assert.ok(out.durationMs < 800, `took ${out.durationMs} ms`);
  });

  test('a redirect is not followed', async () => {
    const out = await attempt('/redirect');
    assert.deepEqual([out.ok, out.httpStatus], [false, 302]);
    assert.match(out.error!, /redirects are not followed/);
    await sleep(100);
    assert.equal(hitsOf('/ok?redirected').length, 0);
  });

  test('a certificate the CA list does not vouch for fails', async () => {
    const out = await attempt('/ok?no-ca', { outbound: { policy } });
    assert.equal(out.ok, false);
    assert.match(out.error!, /connection failed \(.*(CERT|SELF_SIGNED).*\)/);
    assert.equal(hitsOf('/ok?no-ca').length, 0);
  });

  test('without OUTBOUND_ALLOW the receiver is never contacted, whatever the name resolves to', async () => {
    const before = hits.length;
    for (const url of [`https://localhost:${port}/ok`, `https://127.0.0.1:${port}/ok`, `https://hooks.test:${port}/ok`, `https://mixed.test:${port}/ok`, 'https://[::1]/ok']) {
      const out = await sendWebhook({ url, body: '{}', secret: 's', event: 'video.failed', deliveryId: 'd', outbound: { resolve, ca }, timeoutMs: 800 });
      assert.equal(out.ok, false, url);
      assert.match(out.error!, /resolves to a private or internal address/, url);
      if (!/\/\/(\d|\[)/.test(url)) assert.doesNotMatch(out.error!, /127\.0\.0\.1|192\.168|::1/, 'the message names no address a name resolved to');
    }
    assert.equal(hits.length, before);
  });

  test('an attempt whose signal is already aborted (the API shutting down) starts no lookup, so a failing one cannot crash the process', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      let lookups = 0;
      const failingDns = async () => {
        lookups++;
        await sleep(20);
        throw Object.assign(new Error('queryA ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' });
      };
      const out = await sendWebhook({
        url: 'https://nowhere.test/hook', body: '{}', secret: 's', event: 'video.failed', deliveryId: 'd',
        outbound: { resolve: failingDns }, signal: AbortSignal.abort(), timeoutMs: 800,
      });
      assert.deepEqual([out.ok, out.error], [false, 'stopped: the API process shut down']);
      await sleep(100);
      assert.equal(lookups, 0, 'no lookup for an aborted attempt');
      assert.deepEqual(unhandled, [], 'no unhandled rejection (the process would have ended)');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

// ── through the API ───────────────────────────────────────────────────────────

describe('webhooks through the API', () => {
  let dev: RunningApi;
  let strict: RunningApi;
  let devEnv: Record<string, string>;
  let alice: Client;
  let bob: Client;
  let strictUser: Client;
  const hook = (path: string) => `https://hooks.test:${port}${path}`;

  before(async () => {
    devEnv = await testEnv({ OUTBOUND_ALLOW: 'hooks.test, localhost', WEBHOOK_BACKOFF_MS: '100' });
    dropWebhookQueue(devEnv);
    // Its OUTBOUND_ALLOW warning is tested above; here it would only clutter the output.
    dev = await startApi(configFrom(devEnv), { log: pino({ level: 'silent' }), outbound: { resolve, ca }, webhookTimeoutMs: 1000, webhookOutboxGraceSeconds: 0 });
    onCleanup(() => dev.close());
    const strictEnv = await testEnv();
    dropWebhookQueue(strictEnv);
    strict = await startApi(configFrom(strictEnv), { outbound: { resolve, ca } });
    onCleanup(() => strict.close());
    alice = client(dev.url, (await registerUser(dev.url)).token);
    bob = client(dev.url, (await registerUser(dev.url)).token);
    strictUser = client(strict.url, (await registerUser(strict.url)).token);
  });

  test('the signing secret is made on first read, kept, rotated, and per user', async () => {
    const first = await alice.secret();
    assert.equal(first.status, 200);
    assert.equal(first.body.object, 'webhook_secret');
    assert.match(first.body.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.equal((await alice.secret()).body.secret, first.body.secret);
    assert.notEqual((await bob.secret()).body.secret, first.body.secret);
    const rotated = await alice.rotate();
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, first.body.secret);
    assert.equal((await alice.secret()).body.secret, rotated.body.secret);
    const anonymous = await fetch(`${dev.url}/v1/account/webhook-secret`);
    assert.equal(anonymous.status, 401);
  });

  test('a receiver answering 500, 500, 200 gets exactly three attempts, each signed and all listed', async () => {
    const path = '/flaky?n=1';
    const submitted = await alice.submit(hook(path));
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id = submitted.body.id as string;
    assert.equal('callbackUrl' in submitted.body, false, 'the video object does not show the URL (public videos are readable by anyone)');
    const job = await openQueue(devEnv).getJob(id);
    assert.equal('callbackUrl' in job!.data.spec, false, 'the render job carries the spec only');

    assert.equal((await alice.cancel(id)).status, 200);
    await until('three attempts', () => hitsOf(path).length >= 3);
    await until('three recorded attempts', async () => (await alice.deliveries(id)).body.data.length >= 3);
    await sleep(600); // a fourth would have come by now (backoff 100 ms, 200 ms, …)
    assert.equal(hitsOf(path).length, 3);

    const secret = (await alice.secret()).body.secret as string;
    const video = (await alice.video(id)).body;
    for (const hit of hitsOf(path)) {
      assert.ok(verify(secret, hit.headers['vgen-signature'] as string, hit.body), 'verifies with the secret');
      assert.equal(verify(`${secret}x`, hit.headers['vgen-signature'] as string, hit.body), false, 'fails with another');
      assert.deepEqual(JSON.parse(hit.body), video, 'the body is the video object as GET answers it');
      assert.equal(hit.headers['vgen-event'], 'video.canceled');
      assert.equal(hit.headers['vgen-delivery'], hitsOf(path)[0]!.headers['vgen-delivery'], 'one delivery id across retries');
    }
    const list = (await alice.deliveries(id)).body;
    assert.equal(list.object, 'list');
    assert.deepEqual(list.data.map((d: { attempt: number }) => d.attempt), [3, 2, 1], 'newest first');
    assert.deepEqual(list.data.map((d: { outcome: string; httpStatus: number }) => `${d.outcome} ${d.httpStatus}`), ['succeeded 200', 'failed 500', 'failed 500']);
    for (const d of list.data) {
      assert.deepEqual([d.object, d.videoId, d.url, d.event], ['webhook_delivery', id, hook(path), 'video.canceled']);
      assert.ok(Number.isInteger(d.durationMs) && d.durationMs >= 0);
    }
    assert.equal(list.data[1].error, 'HTTP 500');
  });

  test('after rotation the new secret signs and the old one no longer verifies', async () => {
    const old = (await alice.secret()).body.secret as string;
    const fresh = (await alice.rotate()).body.secret as string;
    const id = (await alice.submit(hook('/ok?rotated'))).body.id as string;
    await alice.cancel(id);
    const hit = await until('the webhook', () => hitsOf('/ok?rotated')[0]);
    assert.ok(verify(fresh, hit.headers['vgen-signature'] as string, hit.body));
    assert.equal(verify(old, hit.headers['vgen-signature'] as string, hit.body), false);
  });

  test('webhook deliveries are the owner\'s only', async () => {
    const id = (await alice.submit(hook('/ok?owner'))).body.id as string;
    await alice.cancel(id);
    await until('a recorded attempt', async () => (await alice.deliveries(id)).body.data.length === 1);
    assert.equal((await bob.deliveries(id)).status, 404);
    assert.equal((await bob.deliveries('vid_notarealid')).status, 404);
    assert.equal((await fetch(`${dev.url}/v1/videos/${id}/webhook-deliveries`)).status, 401);
  });

  test('a receiver that hangs: the attempt is cut at the timeout, recorded, and retried', async () => {
    const id = (await alice.submit(hook('/hang?api'))).body.id as string;
    await alice.cancel(id);
    const [first] = await until('a recorded attempt', async () => (await alice.deliveries(id)).body.data.length >= 1 && (await alice.deliveries(id)).body.data);
    assert.equal(first.outcome, 'failed');
    assert.equal(first.httpStatus, null);
    assert.match(first.error, /no answer within 1 s/);
    assert.ok(first.durationMs >= 950 && first.durationMs < 3_000, `took ${first.durationMs} ms`);
    await until('a retry', () => hitsOf('/hang?api').length >= 2, 10_000);
  });

  test('a redirect is recorded as a failure and not followed', async () => {
    const id = (await alice.submit(hook('/redirect?api'))).body.id as string;
    await alice.cancel(id);
    const [first] = await until('a recorded attempt', async () => (await alice.deliveries(id)).body.data.length >= 1 && (await alice.deliveries(id)).body.data);
    assert.deepEqual([first.outcome, first.httpStatus], ['failed', 302]);
    assert.equal(hitsOf('/ok?redirected').length, 0);
  });

  test('outbox: a terminal video whose enqueue was skipped is delivered by the maintenance sweep, once', async () => {
    const id = (await alice.submit(hook('/ok?outbox'))).body.id as string;
    // Settled as a crash right after the UPDATE would leave it: no webhook queued.
    await markCanceled(dev.db, id);
    await sleep(300);
    assert.equal(hitsOf('/ok?outbox').length, 0);
    assert.equal((await dev.maintenance.runOnce()).webhooksQueued, 1);
    await until('the swept webhook', () => hitsOf('/ok?outbox').length === 1);
    assert.equal((await dev.maintenance.runOnce()).webhooksQueued, 0, 'marked: not queued again');
    // A duplicate enqueue (the mark lost, another replica racing) collapses into the same job.
    await dev.db.query('UPDATE videos SET webhook_queued_at = NULL WHERE id = $1', [id]);
    assert.equal(await dev.webhooks.enqueue(id), true);
    await sleep(500);
    assert.equal(hitsOf('/ok?outbox').length, 1, 'delivered once');
  });

  test('outbox: while Redis hangs, a sweep gives up after one timed-out enqueue instead of one per owed webhook', { timeout: 60_000 }, async () => {
    const redis = await ownRedis();
    const env = await testEnv({ REDIS_URL: redis.url });
    const api = await startApi(configFrom(env), { log: pino({ level: 'silent' }), outbound: { resolve, ca }, webhookOutboxGraceSeconds: 0 });
    onCleanup(() => api.close());
    const user = client(api.url, (await registerUser(api.url)).token);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = (await user.submit('https://nowhere.test/hook')).body.id as string; // never resolves: nothing is sent anywhere
      await markCanceled(api.db, id); // settled, its webhook never queued: owed by the outbox
      ids.push(id);
    }
    await until('every row owed', async () => (await api.db.query(`SELECT 1 FROM videos WHERE id = ANY($1) AND webhook_queued_at IS NULL`, [ids])).length === 6);
    redis.proc.kill('SIGSTOP'); // the connection stays "ready"; nothing answers
    try {
      const started = Date.now();
      assert.equal((await api.maintenance.runOnce()).webhooksQueued, 0);
      // One enqueue timeout (2 s), not one per owed webhook (6 × 2 s): the pass, and a shutdown waiting on it, are not held up.
      assert.ok(Date.now() - started < 5_000, `the pass took ${Date.now() - started} ms`);
    } finally {
      redis.proc.kill('SIGCONT');
    }
    await until('all six queued once Redis answers', async () => (await api.maintenance.runOnce()).webhooksQueued === 0
      && (await api.db.query(`SELECT 1 FROM videos WHERE id = ANY($1) AND webhook_queued_at IS NOT NULL`, [ids])).length === 6, 30_000);
  });

  test('a callbackUrl counts in the Idempotency-Key\'s request', async () => {
    const headers = { 'idempotency-key': `k-${Date.now()}` };
    assert.equal((await alice.submit(hook('/ok?idem-a'), {}, headers)).status, 202);
    const replay = await alice.submit(hook('/ok?idem-a'), {}, headers);
    assert.equal(replay.status, 202);
    const other = await alice.submit(hook('/ok?idem-b'), {}, headers);
    assert.deepEqual([other.status, other.body.error.code], [400, 'idempotency_key_reused']);
  });

  test('private callback URLs are refused at submit with 400 naming callbackUrl; nothing is created', async () => {
    const refused: [unknown, string][] = [
      [`https://127.0.0.1:${port}/ok`, 'callback_forbidden'],
      [`https://localhost:${port}/ok`, 'callback_forbidden'],
      [`https://hooks.test:${port}/ok`, 'callback_forbidden'], // resolves to 127.0.0.1
      ['https://10.1.2.3/hook', 'callback_forbidden'],
      ['https://[::1]/hook', 'callback_forbidden'],
      ['https://[::ffff:169.254.169.254]/latest', 'callback_forbidden'],
      ['https://169.254.169.254/latest/meta-data/', 'callback_forbidden'],
      ['https://private.test/hook', 'callback_forbidden'],
      ['https://mixed.test/hook', 'callback_forbidden'], // one private address among public ones
      ['https://metadata.google.internal/hook', 'callback_forbidden'],
      ['https://vm/hook', 'callback_forbidden'],
      ['https://0x7f.1/hook', 'callback_forbidden'],
      ['https://user:pw@public.test/hook', 'callback_forbidden'],
      ['http://public.test/hook', 'invalid_request'],
      ['ftp://public.test/hook', 'invalid_request'],
      ['https://', 'invalid_request'],
      [`https://public.test/${'a'.repeat(2048)}`, 'invalid_request'],
      ['https://public.test/a b', 'invalid_request'],
      ['', 'invalid_request'],
      [123, 'invalid_request'],
      [null, 'invalid_request'],
      [['https://public.test/hook'], 'invalid_request'],
    ];
    for (const [url, code] of refused) {
      const res = await strictUser.submit(url);
      assert.equal(res.status, 400, `${String(url).slice(0, 60)}: ${JSON.stringify(res.body)}`);
      assert.deepEqual([res.body.error.code, res.body.error.field], [code, 'callbackUrl'], String(url).slice(0, 60));
      assert.doesNotMatch(res.body.error.message, /10\.0\.0\.5|192\.168/, 'no resolved address in the message');
    }
    assert.equal((await strictUser.call('GET', '/v1/videos')).body.data.length, 0);
    // The dev API admits what OUTBOUND_ALLOW names, and nothing else.
    assert.equal((await alice.submit(`https://localhost:${port}/ok`)).status, 202);
    assert.equal((await alice.submit(hook('/ok'))).status, 202);
    for (const url of [`https://127.0.0.1:${port}/ok`, 'https://10.1.2.3/hook', 'https://private.test/hook'])
      assert.equal((await alice.submit(url)).body.error?.code, 'callback_forbidden', url);
    // A public name is accepted, and one that does not resolve (yet) is left to delivery.
    assert.equal((await strictUser.submit('https://public.test/hook')).status, 202);
    assert.equal((await strictUser.submit('https://nowhere.test/hook')).status, 202);
  });

  test('asset URLs on a private host pass the submit check only where OUTBOUND_ALLOW names them', async () => {
    const spec = { scenes: [{ duration: 1, background: { image: `https://localhost:${port}/photo.jpg` } }] };
    const s = await strictUser.submit(undefined, spec);
    assert.deepEqual([s.status, s.body.error?.code, s.body.error?.field], [400, 'asset_forbidden', 'scenes[0].background.image']);
    assert.equal((await alice.submit(undefined, spec)).status, 202);
    assert.equal((await alice.submit(undefined, { scenes: [{ duration: 1, background: { image: `https://127.0.0.1:${port}/photo.jpg` } }] })).body.error?.code, 'asset_forbidden');
  });

  test('succeeded and failed renders reach the callback through the settler, from a real worker', { timeout: 120_000 }, async () => {
    // Cancel what earlier tests left queued, so the worker takes only these two.
    for (const v of (await alice.call('GET', '/v1/videos?limit=100')).body.data) if (v.status === 'queued') await alice.cancel(v.id);
    const ok = (await alice.submit(hook('/ok?rendered'))).body.id as string;
    // The worker's own spec check honours OUTBOUND_ALLOW too; then the download fails (404): failed, asset_unavailable.
    const bad = (await alice.submit(hook('/ok?render-failed'), { scenes: [{ duration: 1, background: { image: `https://localhost:${port}/missing.jpg` } }] })).body.id as string;
    const worker = await startWorker(configFrom(devEnv), { log: pino({ level: 'silent' }) });
    onCleanup(() => worker.close());
    const done = await until('the success webhook', () => hitsOf('/ok?rendered')[0], 90_000);
    const failed = await until('the failure webhook', () => hitsOf('/ok?render-failed')[0], 90_000);
    const secret = (await alice.secret()).body.secret as string;
    const body = JSON.parse(done.body);
    assert.ok(verify(secret, done.headers['vgen-signature'] as string, done.body));
    assert.deepEqual([body.id, body.status, done.headers['vgen-event']], [ok, 'succeeded', 'video.succeeded']);
    assert.ok(body.output?.url && body.output.durationMs > 0);
    for (const [id, hit] of [[ok, done], [bad, failed]] as const) {
      const [row] = await dev.db.query<{ finished_at: Date }>('SELECT finished_at FROM videos WHERE id = $1', [id]);
      assert.ok(hit.at - row!.finished_at.getTime() < 5_000, 'queued by the settler at the transition, not by a later sweep');
    }
    const fb = JSON.parse(failed.body);
    assert.deepEqual([fb.id, fb.status, fb.error?.code, failed.headers['vgen-event']], [bad, 'failed', 'asset_unavailable', 'video.failed']);
  });
});
