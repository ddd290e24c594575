// api: how much a login flood slows an unrelated read. The API runs as its own
// process (`vgen api` on a fresh Postgres database), so the load generator
// does not share its event loop. First the p99 of GET /v1/videos/:id alone,
// then the same while 200 clients send wrong passwords non-stop, and their
// ratio. Each flooding login uses a new email from a new client address
// (X-Forwarded-For, with TRUST_PROXY set to the loopback address), as a
// botnet spraying many accounts would: the rate limiter never trips on a
// key, so every attempt reaches the password check and the bound on
// concurrent hashing is what is measured. The default limits stay in force.
// A client turned away (503 or 429) waits for Retry-After before its next
// attempt, as an HTTP client library does; one that ignored it would make
// this a plain request flood, which only a proxy in front can absorb.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Figure } from './run.js';

const ROOT = resolve(import.meta.dirname, '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_DB_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';

interface Res { status: number; body: string; headers: Record<string, string | string[] | undefined> }

function call(agent: Agent, port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolveRes, reject) => {
    const req = request({
      host: '127.0.0.1', port, method, path, agent,
      headers: { ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolveRes({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * Sequential GETs of each path in turn on one keep-alive connection, for at
 * least `n` rounds and `minMs`, stopping after 60 s whatever the count;
 * latencies in ms, one array per path.
 */
async function sample(agent: Agent, port: number, paths: string[], token: string, n: number, minMs = 0): Promise<number[][]> {
  const out = paths.map(() => [] as number[]);
  const t0 = performance.now();
  for (let i = 0; (i < n || performance.now() - t0 < minMs) && performance.now() - t0 < 60_000; i++) {
    for (const [k, path] of paths.entries()) {
      const t = performance.now();
      const res = await call(agent, port, 'GET', path, undefined, { authorization: `Bearer ${token}` });
      out[k]!.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body}`);
    }
  }
  return out;
}

async function startApiProcess(env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/vgen.js'), 'api'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const agent = new Agent();
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`vgen api exited with ${child.exitCode}: ${stderr}`);
    const up = await call(agent, port, 'GET', '/healthz').then((r) => r.status === 200, () => false);
    if (up) return child;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('vgen api did not start in 20 s');
}

export async function* apiBench(args: Record<string, string | boolean | undefined>): AsyncGenerator<Figure> {
  const flooders = Number(args.concurrency ?? 200);
  const samples = 400;
  const dbName = `vgen_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(ADMIN_DB_URL);
  dbUrl.pathname = `/${dbName}`;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  let child: ChildProcess | undefined;
  try {
    child = await startApiProcess({
      REDIS_URL, DATABASE_URL: dbUrl.toString(), QUEUE_NAME: `bench-${randomBytes(4).toString('hex')}`,
      PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'error', JWT_SECRET: randomBytes(32).toString('hex'),
      DATA_DIR: `/tmp/${dbName}`, TRUST_PROXY: '127.0.0.1',
    }, port);
    const reader = new Agent({ keepAlive: true, maxSockets: 1 });
    const reg = await call(reader, port, 'POST', '/v1/auth/register', { email: 'bench@example.com', password: 'bench-password' });
    if (reg.status !== 201) throw new Error(`register: ${reg.status} ${reg.body}`);
    const token = (JSON.parse(reg.body) as { accessToken: string }).accessToken;
    const spec = { version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: 1, background: { color: 'black' } }] };
    const sub = await call(reader, port, 'POST', '/v1/videos', spec, { authorization: `Bearer ${token}` });
    if (sub.status !== 202) throw new Error(`submit: ${sub.status} ${sub.body}`);
    const path = `/v1/videos/${(JSON.parse(sub.body) as { id: string }).id}`;

    // A file served from disk goes through libuv's thread pool, as scrypt does.
    const file = '/docs/static/logo.svg';
    await sample(reader, port, [path, file], token, 100); // warm-up
    const [alone, fileAlone] = (await sample(reader, port, [path, file], token, samples)).map((xs) => percentile(xs, 99)) as [number, number];

    // The flood: `flooders` clients, each sending one wrong login after another.
    const floodAgent = new Agent({ keepAlive: true, maxSockets: flooders });
    const statuses = new Map<number, number>();
    const counting = new Map<number, number>();
    let stop = false;
    let measuring = false;
    let n = 0;
    const flood = Array.from({ length: flooders }, async (_, c) => {
      while (!stop) {
        const i = n++;
        const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
        const res = await call(floodAgent, port, 'POST', '/v1/auth/login',
          { email: `flood-${c}-${i}@example.com`, password: 'wrong-password' }, { 'x-forwarded-for': ip });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (measuring) counting.set(res.status, (counting.get(res.status) ?? 0) + 1);
        if (res.status === 503 || res.status === 429) await sleep(Number(res.headers['retry-after'] ?? 1) * 1000);
      }
    });
    await sleep(500); // let the flood fill every queue first
    const t0 = performance.now();
    measuring = true;
    const [during, fileDuring] = (await sample(reader, port, [path, file], token, samples, 5_000)).map((xs) => percentile(xs, 99)) as [number, number];
    const seconds = (performance.now() - t0) / 1000;
    measuring = false;
    stop = true;
    await Promise.all(flood);
    floodAgent.destroy();
    reader.destroy();

    yield { bench: 'api', metric: 'GET /v1/videos/:id p99, alone', value: alone, unit: 'ms' };
    yield { bench: 'api', metric: `GET /v1/videos/:id p99, ${flooders} wrong logins`, value: during, unit: 'ms', baseline: alone, ratio: during / alone };
    yield { bench: 'api', metric: 'GET /docs/static/logo.svg p99, alone', value: fileAlone, unit: 'ms' };
    yield { bench: 'api', metric: `GET /docs/static/logo.svg p99, ${flooders} wrong logins`, value: fileDuring, unit: 'ms', baseline: fileAlone, ratio: fileDuring / fileAlone };
    yield { bench: 'api', metric: 'wrong logins checked during the reads', value: (counting.get(401) ?? 0) / seconds, unit: 'logins/s' };
    const checked = statuses.get(401) ?? 0;
    const rest = [...statuses].filter(([s]) => s !== 401).map(([s, c]) => `${c}×${s}`).join(', ');
    process.stderr.write(`api: flood outcomes over the whole flood: ${checked}×401${rest ? `, ${rest}` : ''}\n`);
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    rmSync(`/tmp/${dbName}`, { recursive: true, force: true });
  }
}
