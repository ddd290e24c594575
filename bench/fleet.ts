// fleet: 300 workers on this machine against one Redis, each a real worker
// lifecycle (worker/lifecycle/managed.ts: the production BullMQ runtime,
// registry, heartbeat and drain code) with the render stubbed to a short
// sleep. Workers are packed into child processes (default 10 × 30): 300 Node
// processes would need ~30 GB, more than this machine has. Each worker keeps
// the connections a `vgen worker` process opens (its own Redis connection,
// shared by BullMQ and its registry, BullMQ's blocking connection and the
// registry's pub/sub subscriber), so Redis sees 300 workers' worth of clients.
//
// The same packing of bare BullMQ workers (no registry, heartbeat or drain)
// runs first on the same queue and Redis as the baseline. Then:
//   1. registration: spawn → every worker listed in the registry as idle
//      (baseline: spawn → every bare BullMQ worker ready);
//   2. connections to Redis held by the worker processes (/proc, exact);
//   3. RSS of the worker processes ÷ workers, and an empty worker process's RSS;
//   4. a quiet window with the whole fleet idle. Commands are counted on the
//      client side (MONITOR-free): each child subscribes to ioredis'
//      `ioredis:command` tracing channel and counts what its connections send,
//      and which of it touches registry keys. That is exact and blind to the
//      other clients of a shared Redis. INFO commandstats deltas over the same
//      window are printed beside it (server side: every client, and the
//      commands BullMQ's Lua scripts run), with a window before any fleet
//      for the other traffic; on a busy shared Redis they are not usable;
//   5. a burst of jobs (jobs/s, commands sent per job);
//   6. `vgen workers drain --all` through the real API route
//      (POST /v1/ops/workers/drain, called with drainWorkers(), the function
//      the CLI command runs) until the registry is empty; every worker
//      process must then exit 0;
//   7. lost = jobs added − jobs completed (must be 0; otherwise it throws).
//
// The same file is the child process: `bench/fleet.ts child <json>`.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type { RenderResult } from '../engine/queue.js';
import type { Figure } from './run.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_DB_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
const RESULT: RenderResult = { videoKey: 'videos/b/a.mp4', posterKey: 'videos/b/a.jpg', durationMs: 1000, width: 320, height: 180, bytes: 1 };
const SPEC = { version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: 1, background: { color: 'black' } }] };
/** Redis connections per worker: its own (BullMQ and the registry), BullMQ's blocking one, the registry's subscriber. */
const CONNS_PER_WORKER = 3;
const HERE = fileURLToPath(import.meta.url);

type Mode = 'vgen' | 'bare';
interface ChildConfig { mode: Mode; queueName: string; redisUrl: string; index: number; count: number; sleepMs: number }
/** Commands the fleet's connections sent while counting: all of them, and those on registry keys. */
interface Sent { total: number; registry: number; registryByCommand: Record<string, number> }
type ChildMessage = { type: 'ready' } | { type: 'error'; message: string } | { type: 'counting' } | ({ type: 'counts' } & Sent);

// ---------------------------------------------------------------- child side

async function child(cfg: ChildConfig): Promise<void> {
  const send = (m: ChildMessage) => process.send?.(m);
  // Parent gone (crashed, killed): do not linger.
  process.on('disconnect', () => process.exit(1));
  const { connectRedis } = await import('../engine/redis.js');
  const { QUEUE_PREFIX } = await import('../engine/queue.js');
  const processor = async () => {
    await sleep(cfg.sleepMs);
    return RESULT;
  };
  const conns: Redis[] = [];
  let close: () => Promise<void>;
  if (cfg.mode === 'bare') {
    const { Worker } = await import('bullmq');
    const workers = Array.from({ length: cfg.count }, () => {
      const c = connectRedis(cfg.redisUrl, 'worker');
      conns.push(c);
      const w = new Worker(cfg.queueName, processor, { connection: c, prefix: QUEUE_PREFIX, concurrency: 1 });
      w.on('error', () => {});
      return w;
    });
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    close = async () => void (await Promise.all(workers.map((w) => w.close())));
  } else {
    const { createLogger } = await import('../engine/log.js');
    const { startManagedWorker } = await import('../worker/lifecycle/managed.js');
    const log = createLogger('silent');
    const host = hostname();
    const managed = Array.from({ length: cfg.count }, (_, i) => {
      const c = connectRedis(cfg.redisUrl, 'worker');
      conns.push(c);
      // Each with a registry of its own (the default), as in a `vgen worker` process.
      return startManagedWorker({
        queueName: cfg.queueName,
        connection: c,
        concurrency: 1,
        log,
        processor,
        identity: { id: `fleet-${cfg.index}-${i}`, provider: 'local', host, pid: process.pid, version: 'bench' },
      });
    });
    await Promise.all(managed.map((m) => m.worker.waitUntilReady()));
    // Drained through the registry (`vgen workers drain --all`), like `vgen worker`: then exit 0.
    if (managed.length > 0) void Promise.all(managed.map((m) => m.drained)).then(() => {
      for (const c of conns) c.disconnect();
      process.exit(0);
    });
    close = async () => void (await Promise.all(managed.map((m) => m.close())));
  }
  // Client-side command counts, MONITOR-free and blind to other clients of
  // this Redis: ioredis publishes every command it writes on this tracing
  // channel (once per command, pipelined ones included). Subscribed only
  // while the parent counts.
  const channel = diagnostics.tracingChannel('ioredis:command');
  const registryKeys = ['workers', 'worker:', 'drain:'].map((k) => `${QUEUE_PREFIX}:${cfg.queueName}:${k}`);
  let sent: Sent = { total: 0, registry: 0, registryByCommand: {} };
  const noop = () => {};
  const handlers = {
    end: noop, asyncStart: noop, asyncEnd: noop, error: noop,
    start(ctx: unknown) {
      const { command, args } = ctx as { command: string; args: string[] };
      sent.total++;
      if (args.some((a) => registryKeys.some((k) => a.startsWith(k)))) {
        sent.registry++;
        sent.registryByCommand[command] = (sent.registryByCommand[command] ?? 0) + 1;
      }
    },
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'count-start') {
      sent = { total: 0, registry: 0, registryByCommand: {} };
      channel.subscribe(handlers);
      send({ type: 'counting' });
      return;
    }
    if (m?.type === 'count-stop') {
      channel.unsubscribe(handlers);
      send({ type: 'counts', ...sent });
      return;
    }
    if (m?.type !== 'close') return;
    void close().finally(() => {
      for (const c of conns) c.disconnect();
      process.exit(0);
    });
  });
  send({ type: 'ready' });
}

if (process.argv[1] === HERE && process.argv[2] === 'child') {
  child(JSON.parse(process.argv[3]!) as ChildConfig).catch((err: Error) => {
    process.send?.({ type: 'error', message: err.stack ?? String(err) });
    process.exit(1);
  });
}

// --------------------------------------------------------------- parent side

interface Proc {
  child: ChildProcess;
  ready: Promise<number>;
  exited: Promise<number | null>;
  /** Send a message, resolve with the child's next message of type `reply`. */
  request<T extends ChildMessage['type']>(type: string, reply: T): Promise<Extract<ChildMessage, { type: T }>>;
}

function spawnChild(cfg: ChildConfig): Proc {
  const c = fork(HERE, ['child', JSON.stringify(cfg)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
  const ready = new Promise<number>((resolve, reject) => {
    c.on('message', (m: ChildMessage) => {
      if (m.type === 'ready') resolve(performance.now());
      else if (m.type === 'error') reject(new Error(`fleet child ${cfg.index}: ${m.message}`));
    });
    void exited.then((code) => reject(new Error(`fleet child ${cfg.index} exited (${code}) before it was ready`)));
  });
  ready.catch(() => {});
  const request: Proc['request'] = (type, reply) => new Promise((resolve) => {
    const on = (m: ChildMessage) => {
      if (m.type !== reply) return;
      c.off('message', on);
      resolve(m as never);
    };
    c.on('message', on);
    c.send({ type });
  });
  return { child: c, ready, exited, request };
}

/** Resident set size of a live process, bytes (Linux /proc). */
function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) * 1024;
}

/** INFO commandstats: calls per command, as Redis counts them (commands run by Lua scripts included). */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}
function callsDelta(a: Map<string, number>, b: Map<string, number>): { total: number; by: Record<string, number> } {
  const by: Record<string, number> = {};
  let total = 0;
  for (const [cmd, n] of b) {
    const d = n - (a.get(cmd) ?? 0);
    if (d > 0) {
      by[cmd] = d;
      total += d;
    }
  }
  return { total, by };
}
const perSecond = (by: Record<string, number>, s: number) =>
  Object.fromEntries(Object.entries(by).sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, round(v / s, 1)]));

/** Start counting what the fleet's connections send; returns the function that stops and sums. */
async function countSent(procs: Proc[]): Promise<() => Promise<Sent>> {
  await Promise.all(procs.map((p) => p.request('count-start', 'counting')));
  return async () => {
    const all = await Promise.all(procs.map((p) => p.request('count-stop', 'counts')));
    const sum: Sent = { total: 0, registry: 0, registryByCommand: {} };
    for (const c of all) {
      sum.total += c.total;
      sum.registry += c.registry;
      for (const [k, v] of Object.entries(c.registryByCommand)) sum.registryByCommand[k] = (sum.registryByCommand[k] ?? 0) + v;
    }
    return sum;
  };
}

/**
 * A window with the fleet idle and this process sending nothing but two INFOs:
 * server-side commands/s (INFO commandstats: every client of this Redis, and
 * the commands BullMQ's Lua scripts run), and client-side what the fleet sent.
 */
async function quietWindow(redis: Redis, seconds: number, procs: Proc[] = []) {
  const stop = await countSent(procs);
  const a = await commandCalls(redis);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const b = await commandCalls(redis);
  const s = (performance.now() - t0) / 1000;
  const sent = await stop();
  const d = callsDelta(a, b);
  d.by.info = (d.by.info ?? 0) - 1; // our own first INFO
  if (d.by.info <= 0) delete d.by.info;
  return {
    server: (d.total - 1) / s,
    serverByCommand: perSecond(d.by, s),
    sent: sent.total / s,
    registry: sent.registry / s,
    registryByCommand: perSecond(sent.registryByCommand, s),
  };
}
/**
 * TCP connections to Redis held by these processes (Linux /proc): their
 * sockets' inodes matched against /proc/net/tcp{,6} entries whose remote port
 * is Redis's. Exact, unlike connected_clients, which counts every client.
 */
function redisConnectionsOf(pids: number[], port: number): number {
  const inodes = new Set<string>();
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[2] remote address:port, f[3] state (01 established), f[9] inode
      if (f.length > 9 && f[2]!.endsWith(`:${hexPort}`) && f[3] === '01' && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}
const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const MiB = 1024 * 1024;

async function until<T>(what: string, fn: () => Promise<T | false | null | undefined>, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`fleet bench: timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface FleetOptions { workers: number; perProcess: number; burst: number; sleepMs: number; window: number; baseline: boolean }

export async function* fleetBench(args: Record<string, string | boolean | undefined>): AsyncGenerator<Figure> {
  const opts: FleetOptions = {
    workers: Number(args.workers ?? 300),
    perProcess: Number(args['per-process'] ?? 30),
    burst: Number(args.burst ?? 6_000),
    sleepMs: Number(args['sleep-ms'] ?? 100),
    window: Number(args.window ?? 30),
    baseline: args['skip-baseline'] !== true,
  };
  const { Queue } = await import('bullmq');
  const { connectRedis, whenReady } = await import('../engine/redis.js');
  const { QUEUE_PREFIX } = await import('../engine/queue.js');
  const { createRegistry, registryKeys, HEARTBEAT_MS } = await import('../engine/registry.js');

  const { workers: W, perProcess } = opts;
  const nProcs = Math.ceil(W / perProcess);
  const packing = `${nProcs} processes × ${perProcess} workers`;
  const queueName = `bench-fleet-${randomBytes(4).toString('hex')}`;
  const keys = registryKeys(queueName);
  const redis = connectRedis(REDIS_URL, 'worker');
  await whenReady(redis);
  const queue = new Queue(queueName, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
  const registry = createRegistry(redis, { queueName });
  const procs: Proc[] = [];
  let api: Awaited<ReturnType<typeof import('../api/server.js')['startApi']>> | undefined;
  let dbName: string | undefined;
  let dataDir: string | undefined;

  // Redis refuses clients past maxclients: 300 workers need 900 connections.
  const maxclients = Number(/maxclients:(\d+)/.exec(await redis.info('clients'))?.[1] ?? 10_000);
  const before = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1] ?? 0);
  const redisPort = Number(new URL(REDIS_URL).port || 6379);
  const connections = (mine: Proc[]) => redisConnectionsOf(mine.map((p) => p.child.pid!), redisPort);
  if (before + W * CONNS_PER_WORKER + 50 > maxclients)
    throw new Error(`fleet bench: ${W} workers need ~${W * CONNS_PER_WORKER} Redis connections; ${before} are open and maxclients is ${maxclients}`);

  const startFleet = (mode: Mode, count = W) => {
    const mine: Proc[] = [];
    for (let i = 0, left = count; left > 0; i++, left -= perProcess) {
      const p = spawnChild({ mode, queueName, redisUrl: REDIS_URL, index: i, count: Math.min(perProcess, left), sleepMs: opts.sleepMs });
      procs.push(p);
      mine.push(p);
    }
    return mine;
  };
  const stopFleet = async (mine: Proc[]) => {
    for (const p of mine) if (p.child.connected) p.child.send({ type: 'close' });
    const codes = await Promise.race([Promise.all(mine.map((p) => p.exited)), sleep(20_000, null, { ref: false })]);
    for (const p of mine) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    return codes;
  };
  const rss = (mine: Proc[]) => mine.reduce((sum, p) => sum + rssOf(p.child.pid!), 0);
  const counts = async () => {
    const c = await queue.getJobCounts('completed', 'failed', 'wait', 'active', 'delayed', 'prioritized');
    return { completed: c.completed ?? 0, failed: c.failed ?? 0, pending: (c.wait ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) };
  };
  /** Add `n` jobs at once (while every worker is idle), wait until all finished; jobs/s and commands per job. */
  const burst = async (n: number, fleet: Proc[]) => {
    const start = await counts();
    const stop = await countSent(fleet);
    const t0 = performance.now();
    for (let i = 0; i < n; i += 1000)
      await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'render', data: { videoId: 'vid_bench', spec: SPEC } })));
    const end = await until('the burst to finish', async () => {
      const c = await counts();
      return c.completed + c.failed - start.completed - start.failed >= n && c.pending === 0 ? c : false;
    }, 10 * 60_000, 20);
    const seconds = (performance.now() - t0) / 1000;
    const sent = await stop();
    return { rate: n / seconds, sentPerJob: sent.total / n, registryPerJob: sent.registry / n, completed: end.completed - start.completed, failed: end.failed - start.failed };
  };

  try {
    // 0. Nothing of ours running: other clients' traffic on this Redis.
    const noise = await quietWindow(redis, Math.min(opts.window, 10));

    // 1. Baseline: the same packing of bare BullMQ workers.
    let bare: { ready: number; conns: number; idle: Awaited<ReturnType<typeof quietWindow>>; rss: number; burst: Awaited<ReturnType<typeof burst>> } | undefined;
    if (opts.baseline) {
      const t0 = performance.now();
      const fleet = startFleet('bare');
      const ready = (Math.max(...(await Promise.all(fleet.map((p) => p.ready)))) - t0) / 1000;
      await sleep(2_000);
      const conns = connections(fleet);
      const memory = rss(fleet);
      const idle = await quietWindow(redis, opts.window, fleet);
      const b = await burst(opts.burst, fleet);
      const codes = await stopFleet(fleet);
      if (!codes || codes.some((c) => c !== 0)) throw new Error(`fleet bench: bare workers did not close cleanly (${JSON.stringify(codes)})`);
      bare = { ready, conns, idle, rss: memory, burst: b };
    }

    // What a worker process costs before it has any worker: the modules alone.
    const empty = [spawnChild({ mode: 'vgen', queueName, redisUrl: REDIS_URL, index: -1, count: 0, sleepMs: 0 })];
    procs.push(...empty);
    await empty[0]!.ready;
    await sleep(1_000);
    const processBase = rss(empty);
    await stopFleet(empty);

    // 2. The vgen fleet: spawn → all registered and idle.
    const t0 = performance.now();
    const fleet = startFleet('vgen');
    await until('all workers registered', async () => (await redis.zcard(keys.workers)) >= W, 120_000);
    const listed = (performance.now() - t0) / 1000;
    await until('all workers idle', async () => {
      const list = await registry.list();
      return list.length === W && list.every((w) => w.state === 'idle');
    }, 60_000, 100);
    const registration = (performance.now() - t0) / 1000;
    const ready = (Math.max(...(await Promise.all(fleet.map((p) => p.ready)))) - t0) / 1000;
    yield {
      bench: 'fleet', metric: `registration, ${W} workers`, value: round(registration), unit: 's',
      ...(bare && { baseline: round(bare.ready), ratio: round(registration / bare.ready) }),
      packing, measured: 'spawn → every worker listed idle in the registry; baseline: spawn → every bare BullMQ worker ready',
      all_listed_s: round(listed), bullmq_ready_s: round(ready),
    } as Figure;

    await sleep(2_000);
    const conns = connections(fleet);
    yield {
      bench: 'fleet', metric: 'Redis connections', value: conns, unit: 'clients',
      ...(bare && { baseline: bare.conns, ratio: round(conns / bare.conns) }),
      per_worker: round(conns / W), maxclients, measured: "TCP connections to Redis's port held by the worker processes (/proc)",
    } as Figure;

    const memory = rss(fleet);
    const perWorker = memory / W / MiB;
    yield {
      bench: 'fleet', metric: 'memory per worker (RSS ÷ workers)', value: round(perWorker), unit: 'MiB',
      ...(bare && { baseline: round(bare.rss / W / MiB), ratio: round(memory / bare.rss) }),
      packing, process_rss_mib: round(memory / fleet.length / MiB, 1), empty_process_rss_mib: round(processBase / MiB, 1),
      marginal_per_worker_mib: round((memory - processBase * fleet.length) / W / MiB),
    } as Figure;

    // 3. The whole fleet idle: Redis commands/s.
    const idle = await quietWindow(redis, opts.window, fleet);
    yield {
      bench: 'fleet', metric: 'idle fleet, Redis commands/s', value: round(idle.sent, 1), unit: 'cmd/s',
      ...(bare && { baseline: round(bare.idle.sent, 1), ratio: round(idle.sent / bare.idle.sent) }),
      measured: `sent by the fleet's connections over ${opts.window} s (ioredis tracing channel); server_side: INFO commandstats, all clients, Lua-internal commands included`,
      server_side_cmd_s: round(idle.server, 1), ...(bare && { baseline_server_side_cmd_s: round(bare.idle.server, 1) }),
      other_traffic_before_cmd_s: round(noise.server, 1),
    } as Figure;
    // What heartbeats and the registry cost: a beat is ZADD + HMGET, W per HEARTBEAT_MS.
    const beatsPerSecond = W / (HEARTBEAT_MS / 1000);
    yield {
      bench: 'fleet', metric: 'heartbeat+registry, Redis commands/s', value: round(idle.registry, 1), unit: 'cmd/s',
      measured: 'commands on registry keys sent by the idle fleet (client side)',
      by_command: idle.registryByCommand, beats_per_s: beatsPerSecond, cmds_per_beat: round(idle.registry / beatsPerSecond), expected: 2 * beatsPerSecond,
      ...(bare && { server_side_difference: round(idle.server - bare.idle.server, 1) }),
    } as Figure;

    // 4. A burst of jobs.
    const b = await burst(opts.burst, fleet);
    yield {
      bench: 'fleet', metric: `burst, ${opts.burst} jobs of ${opts.sleepMs} ms`, value: round(b.rate, 0), unit: 'jobs/s',
      ...(bare && { baseline: round(bare.burst.rate, 0), ratio: round(b.rate / bare.burst.rate) }),
      cmds_sent_per_job: round(b.sentPerJob, 1), registry_cmds_per_job: round(b.registryPerJob, 1),
      ...(bare && { baseline_cmds_sent_per_job: round(bare.burst.sentPerJob, 1) }),
    } as Figure;

    // 5. `vgen workers drain --all`: the real API route through drainWorkers(), the function the CLI runs.
    const pg = (await import('pg')).default;
    const { startApi } = await import('../api/server.js');
    const { loadConfig } = await import('../engine/config.js');
    const { writeOperatorToken } = await import('../cli/up.js');
    const { drainWorkers } = await import('../cli/commands/workers.js');
    dbName = `vgen_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    await admin.end();
    const dbUrl = new URL(ADMIN_DB_URL);
    dbUrl.pathname = `/${dbName}`;
    dataDir = mkdtempSync(join(tmpdir(), 'vgen-fleet-'));
    api = await startApi(loadConfig({
      REDIS_URL, DATABASE_URL: dbUrl.toString(), QUEUE_NAME: queueName, PORT: '0', LOG_LEVEL: 'silent',
      JWT_SECRET: randomBytes(32).toString('hex'), DATA_DIR: dataDir,
    }));
    const token = await writeOperatorToken(api.db, dataDir);
    const d0 = performance.now();
    const res = await drainWorkers({ all: true }, undefined, { api: api.url, token });
    const called = (performance.now() - d0) / 1000;
    if (res.draining.length !== W) throw new Error(`fleet bench: drain --all reached ${res.draining.length} of ${W} workers`);
    await until('an empty registry', async () => (await redis.zcard(keys.workers)) === 0, 120_000, 20);
    const drained = (performance.now() - d0) / 1000;
    const codes = await Promise.race([Promise.all(fleet.map((p) => p.exited)), sleep(30_000, null, { ref: false })]);
    const exited = (performance.now() - d0) / 1000;
    if (!codes || codes.some((c) => c !== 0)) throw new Error(`fleet bench: worker processes did not exit 0 after the drain (${JSON.stringify(codes)})`);
    yield {
      bench: 'fleet', metric: 'drain --all → empty registry', value: round(drained), unit: 's',
      api_call_s: round(called), processes_exited_s: round(exited), draining: res.draining.length,
    } as Figure;

    // 6. Lost: every job added must have completed (a failed one counts as lost too).
    const end = await counts();
    const lost = opts.burst - b.completed;
    yield {
      bench: 'fleet', metric: 'lost', value: lost, unit: 'jobs',
      added: opts.burst, completed: b.completed, failed: b.failed, left_in_queue: end.pending,
      ...(bare && { baseline_lost: opts.burst - bare.burst.completed }),
    } as Figure;
    if (lost !== 0 || (bare && bare.burst.completed !== opts.burst)) throw new Error(`fleet bench: ${lost} jobs lost`);
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await api?.close();
    if (dbName) {
      const pg = (await import('pg')).default;
      const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    // Registry keys of workers that did not deregister (a failed run), then the queue.
    const left = await redis.keys(`${keys.workers}*`);
    const hashes = await redis.keys(`${keys.workerPrefix}*`);
    if (left.length + hashes.length) await redis.del(...left, ...hashes);
    await queue.obliterate({ force: true });
    await queue.close();
    await registry.close();
    redis.disconnect();
  }
}
