// The other processes Prometheus scrapes: API replicas and autoscalers, each
// with its /metrics URL, kept in Redis beside the worker registry
// (engine/registry.ts) with the same heartbeat and TTL, so
// GET /v1/ops/prometheus-targets lists every live process of the cluster.
// Workers stay in their own registry, which already carries their metricsUrl.
//
// Keys (the queue's `{vgen}` slot):
//   {vgen}:<queue>:processes        sorted set: process id → last beat (ms)
//   {vgen}:<queue>:process:<id>     hash: role, metricsUrl, host, pid, startedAt (expires if beats stop)
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from './log.js';
import { QUEUE_PREFIX } from './queue.js';
import { HEARTBEAT_MS, HEARTBEAT_TTL_MS } from './registry.js';

export type ProcessRole = 'api' | 'autoscaler';
export interface ProcessRecord {
  id: string;
  role: ProcessRole;
  metricsUrl: string;
  host: string;
  pid: number;
  /** ms epoch */
  startedAt: number;
  /** ms epoch */
  lastHeartbeat: number;
}

export function processKeys(queueName: string) {
  const base = `${QUEUE_PREFIX}:${queueName}`;
  return { processes: `${base}:processes`, process: (id: string) => `${base}:process:${id}`, prefix: `${base}:process:` };
}

// Removes processes whose last beat is older than ARGV[1], with their hashes.
const PRUNE = `
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[2] .. id)
end
return #stale`;

/** Live processes, pruning those that stopped beating. */
export async function listProcesses(redis: Redis, queueName: string): Promise<ProcessRecord[]> {
  const keys = processKeys(queueName);
  const cutoff = Date.now() - HEARTBEAT_TTL_MS;
  await redis.eval(PRUNE, 1, keys.processes, String(cutoff), keys.prefix);
  const flat = await redis.zrangebyscore(keys.processes, cutoff, '+inf', 'WITHSCORES');
  if (flat.length === 0) return [];
  const p = redis.pipeline();
  for (let i = 0; i < flat.length; i += 2) p.hgetall(keys.process(flat[i]!));
  const out: ProcessRecord[] = [];
  ((await p.exec()) ?? []).forEach(([err, raw], i) => {
    const h = raw as Record<string, string> | undefined;
    if (err || !h?.id || (h.role !== 'api' && h.role !== 'autoscaler') || !h.metricsUrl) return;
    out.push({
      id: h.id, role: h.role, metricsUrl: h.metricsUrl, host: h.host ?? '', pid: Number(h.pid ?? 0),
      startedAt: Number(h.startedAt ?? 0), lastHeartbeat: Number(flat[i * 2 + 1]),
    });
  });
  return out;
}

export interface ProcessBeacon {
  id: string;
  /** Stop beating and remove the record (a clean exit; a crash is pruned after the TTL). */
  stop(): Promise<void>;
}

/**
 * Register this process and beat every HEARTBEAT_MS: one MULTI that rewrites
 * the hash (so a record lost to a Redis restart comes back) and the score.
 * Failures are logged once per outage and retried at the next beat.
 */
export function startProcessBeacon(redis: Redis, opts: {
  queueName: string;
  role: ProcessRole;
  metricsUrl: string;
  log?: Logger;
  intervalMs?: number;
}): ProcessBeacon {
  const keys = processKeys(opts.queueName);
  const id = `${opts.role}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const fields = { id, role: opts.role, metricsUrl: opts.metricsUrl, host: hostname(), pid: String(process.pid), startedAt: String(Date.now()) };
  let failing = false;
  let stopped = false;
  let inFlight: Promise<void> | undefined;
  const beat = async () => {
    try {
      await redis.multi().hset(keys.process(id), fields).pexpire(keys.process(id), 3 * HEARTBEAT_TTL_MS)
        .zadd(keys.processes, Date.now(), id).exec();
      if (failing) opts.log?.info({ processId: id }, 'process registry: beating again');
      failing = false;
    } catch (err) {
      if (!failing) opts.log?.warn({ err: (err as Error).message, processId: id }, 'process registry: beat failed; retrying');
      failing = true;
    }
  };
  const run = () => {
    if (stopped || inFlight) return;
    inFlight = beat().finally(() => (inFlight = undefined));
  };
  run();
  const timer = setInterval(run, opts.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    id,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await inFlight;
      await Promise.race([
        redis.multi().zrem(keys.processes, id).del(keys.process(id)).exec().catch(() => {}),
        new Promise((resolve) => setTimeout(resolve, 1_000)),
      ]);
    },
  };
}
