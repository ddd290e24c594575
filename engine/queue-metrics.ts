// The queue's own metrics, read from Redis at scrape time: jobs by state and
// lane, the oldest waiting job's age, and completed and failed throughput.
// They describe the cluster, not a process, so exactly one process exports
// them (the autoscaler leader, or else one API replica holding a short lease:
// api/queue-metrics-lease.ts); every other process's /metrics has none of
// their samples. Workers never do: 300 of them would each say the same.
//
// One Lua script reads everything in one round trip. The read is bounded: a
// hung Redis must not hang /metrics, so past `timeoutMs` the gauges are left
// out of that scrape (Prometheus marks them stale) and the counters keep their
// last values. One read is in flight at a time, whatever the scrape rate.
//
// Lanes: priority 1 is the operator lane, anything else (2 and up, or none)
// a user's. BullMQ keeps the priority in each job's hash, so the lane of a job
// is one HGET; the script looks up at most `lookupLimit` jobs per state (the
// head of the wait list, the active list, the delayed retries, the newest
// completed and failed) and counts the rest as user jobs. Prioritized jobs
// need no lookup: their score is priority·2³² + n. Parked jobs (a submit's job
// before its row commits, engine/queue.ts) are an internal detail and left
// out of `delayed`.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Registry as PromRegistry, type Metric, type Registry } from 'prom-client';
import { PARK_DELAY_MS } from './queue.js';

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
export const LANES = ['operator', 'user'] as const;

// KEYS: wait, prioritized, active, delayed, completed, failed, [a key whose existence means "someone else exports"].
// ARGV: job key prefix, lookup limit, parked threshold (delayed score), priority levels walked at most,
//       throughput window from (exclusive), to (inclusive), both ms.
const READ = `
local prefix, limit = ARGV[1], tonumber(ARGV[2])
if KEYS[7] and redis.call('EXISTS', KEYS[7]) == 1 then return {-1} end
local function operators(ids)
  local n = 0
  for _, id in ipairs(ids) do
    if redis.call('HGET', prefix .. id, 'priority') == '1' then n = n + 1 end
  end
  return n
end
local LEVEL = 4294967296
local out = {}
-- waiting: the wait list (stalled jobs, unprioritized ones) and the prioritized set
local waitLen = redis.call('LLEN', KEYS[1])
local prio = redis.call('ZCARD', KEYS[2])
local prioOp = redis.call('ZCOUNT', KEYS[2], LEVEL, 2 * LEVEL - 1)
local waitOp = operators(redis.call('LRANGE', KEYS[1], -limit, -1)) + prioOp
out[1] = waitOp; out[2] = waitLen + prio - waitOp
local activeLen = redis.call('LLEN', KEYS[3])
local activeOp = operators(redis.call('LRANGE', KEYS[3], 0, limit - 1))
out[3] = activeOp; out[4] = activeLen - activeOp
local parked = '(' .. ARGV[3]
local delayedLen = redis.call('ZCOUNT', KEYS[4], '-inf', parked)
local delayedOp = operators(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', parked, 'LIMIT', 0, limit))
out[5] = delayedOp; out[6] = delayedLen - delayedOp
local failedLen = redis.call('ZCARD', KEYS[6])
local failedOp = operators(redis.call('ZREVRANGE', KEYS[6], 0, limit - 1))
out[7] = failedOp; out[8] = failedLen - failedOp
local completedLen = redis.call('ZCARD', KEYS[5])
local completedOp = operators(redis.call('ZREVRANGE', KEYS[5], 0, limit - 1))
out[9] = completedOp; out[10] = completedLen - completedOp
-- the oldest waiting job: the wait list's tail (taken next), or the first job of some priority level
local oldest = -1
local function consider(id)
  local ts = tonumber(redis.call('HGET', prefix .. id, 'timestamp'))
  if ts and ts > 0 and (oldest < 0 or ts < oldest) then oldest = ts end
end
local tail = redis.call('LINDEX', KEYS[1], -1)
if tail then consider(tail) end
local from = 0
for _ = 1, tonumber(ARGV[4]) do
  local r = redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #r == 0 then break end
  consider(r[1])
  from = (math.floor(tonumber(r[2]) / LEVEL) + 1) * LEVEL
end
out[11] = oldest
-- throughput since the last read
out[12] = redis.call('ZCOUNT', KEYS[5], '(' .. ARGV[5], ARGV[6])
out[13] = redis.call('ZCOUNT', KEYS[6], '(' .. ARGV[5], ARGV[6])
return out`;

export interface QueueSnapshot {
  jobs: Record<(typeof QUEUE_STATES)[number], Record<(typeof LANES)[number], number>>;
  /** Epoch ms of the oldest waiting job, or null when none waits. */
  oldestWaitingAt: number | null;
  /** Redis's maxmemory-policy (INFO memory; CONFIG may be disabled on managed Redis). */
  maxmemoryPolicy: string | undefined;
  at: number;
}

export interface QueueMetricsOptions {
  registry: Registry;
  redis: Redis;
  queue: Queue;
  /** Whether this process exports right now (checked at each scrape, without Redis). */
  isExporter: () => boolean;
  /** If this key exists, another process exports: this one's scrape shows none (the autoscaler leader's lease, for an API replica). */
  yieldToKey?: string;
  timeoutMs?: number;
  lookupLimit?: number;
  /** Finished jobs are counted once they are this old, so one finishing as we read is not skipped. */
  lagMs?: number;
  clock?: () => number;
}

export interface QueueMetrics {
  /** One read, as a scrape would do it; undefined when not exporting, yielding, or Redis failed or was too slow. */
  read(): Promise<QueueSnapshot | undefined>;
}

export function registerQueueMetrics(opts: QueueMetricsOptions): QueueMetrics {
  const { redis, queue } = opts;
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const lookupLimit = opts.lookupLimit ?? 500;
  const lagMs = opts.lagMs ?? 1_000;
  const clock = opts.clock ?? Date.now;
  const lanes: (typeof LANES)[number][] = [...LANES];

  const jobs = new Gauge({ name: 'vgen_queue_jobs', help: 'Render jobs by state and lane (operator: priority 1; user: the rest). Exported by one process per cluster.', labelNames: ['state', 'lane'] as const, registers: [] });
  const oldest = new Gauge({ name: 'vgen_queue_oldest_waiting_seconds', help: 'Age of the oldest job waiting for a worker; 0 when none waits. Exported by one process per cluster.', registers: [] });
  const completed = new Counter({ name: 'vgen_queue_completed_total', help: 'Render jobs completed, counted by the exporting process since it began exporting.', registers: [] });
  const policyOk = new Gauge({ name: 'vgen_redis_maxmemory_policy_ok', help: '1 when the queue\'s Redis runs with maxmemory-policy noeviction (BullMQ requires it), else 0. Exported by one process per cluster.', registers: [] });
  const failed = new Counter({ name: 'vgen_queue_failed_total', help: 'Render jobs failed for good (no attempt left), counted by the exporting process since it began exporting.', registers: [] });

  let cursor: number | undefined; // finish times up to here are counted
  // The metrics of one scrape ask in the same tick and share this read;
  // a read still hanging from an earlier scrape is waited on again, never doubled.
  let inFlight: Promise<QueueSnapshot | 'yield'> | undefined;

  const readRedis = async (): Promise<QueueSnapshot | 'yield'> => {
    const now = clock();
    const to = now - lagMs;
    const from = cursor ?? to;
    const keys = ['wait', 'prioritized', 'active', 'delayed', 'completed', 'failed'].map((k) => queue.toKey(k));
    if (opts.yieldToKey) keys.push(opts.yieldToKey);
    const res = (await redis.eval(READ, keys.length, ...keys, queue.toKey(''), String(lookupLimit),
      String((now + PARK_DELAY_MS / 2) * 0x1000), '200', String(from), String(to))) as number[];
    if (res[0] === -1) {
      cursor = undefined; // someone else counts; start afresh if this process exports again
      return 'yield';
    }
    const pair = (i: number) => ({ operator: Number(res[i]), user: Number(res[i + 1]) });
    if (cursor !== undefined) {
      completed.inc(Number(res[11]));
      failed.inc(Number(res[12]));
    }
    cursor = to;
    // BullMQ loses jobs silently if Redis evicts keys: anything but noeviction is an alert.
    const policy = /^maxmemory_policy:(\S+)/m.exec(await redis.info('memory'))?.[1];
    return {
      maxmemoryPolicy: policy,
      jobs: { waiting: pair(0), active: pair(2), delayed: pair(4), failed: pair(6), completed: pair(8) },
      oldestWaitingAt: Number(res[10]) >= 0 ? Number(res[10]) : null,
      at: now,
    };
  };

  /** The snapshot for this scrape: shared by the metrics, bounded by timeoutMs. */
  const snapshot = async (): Promise<QueueSnapshot | 'yield' | undefined> => {
    if (!opts.isExporter()) {
      cursor = undefined;
      return undefined;
    }
    if (!inFlight) {
      inFlight = readRedis().finally(() => (inFlight = undefined));
      inFlight.catch(() => {});
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
    try {
      return await Promise.race([inFlight.catch(() => undefined), late]);
    } finally {
      clearTimeout(timer);
    }
  };

  const empty = (name: string, help: string, type: string) => ({ name, help, type, values: [], aggregator: 'sum' });
  const register = (inner: { get(): Promise<unknown> }, name: string, help: string, type: string, fill: (snap: QueueSnapshot | undefined) => boolean) => {
    const proxy = {
      name, help, type, aggregator: 'sum',
      async get() {
        const snap = await snapshot();
        if (snap === 'yield' || !opts.isExporter()) return empty(name, help, type);
        return fill(snap) ? inner.get() : empty(name, help, type);
      },
    };
    opts.registry.registerMetric(proxy as unknown as Metric);
  };

  register(jobs, 'vgen_queue_jobs', 'Render jobs by state and lane (operator: priority 1; user: the rest). Exported by one process per cluster.', 'gauge', (snap) => {
    if (!snap) return false;
    for (const state of QUEUE_STATES) for (const lane of lanes) jobs.set({ state, lane }, snap.jobs[state][lane]);
    return true;
  });
  register(oldest, 'vgen_queue_oldest_waiting_seconds', 'Age of the oldest job waiting for a worker; 0 when none waits. Exported by one process per cluster.', 'gauge', (snap) => {
    if (!snap) return false;
    oldest.set(snap.oldestWaitingAt === null ? 0 : Math.max(0, (snap.at - snap.oldestWaitingAt) / 1000));
    return true;
  });
  register(policyOk, 'vgen_redis_maxmemory_policy_ok', '1 when the queue\'s Redis runs with maxmemory-policy noeviction (BullMQ requires it), else 0. Exported by one process per cluster.', 'gauge', (snap) => {
    if (!snap?.maxmemoryPolicy) return false;
    policyOk.set(snap.maxmemoryPolicy === 'noeviction' ? 1 : 0);
    return true;
  });
  // Counters are this process's own counts: shown even when this scrape's read failed.
  register(completed, 'vgen_queue_completed_total', 'Render jobs completed, counted by the exporting process since it began exporting.', 'counter', () => true);
  register(failed, 'vgen_queue_failed_total', 'Render jobs failed for good (no attempt left), counted by the exporting process since it began exporting.', 'counter', () => true);

  return {
    async read() {
      const snap = await snapshot();
      return snap === 'yield' ? undefined : snap;
    },
  };
}

/**
 * The queue metrics' names, help and types with no Redis behind them and no
 * samples: for checks that hold dashboards and alert rules against the catalogue.
 */
export function queueMetricsCatalogue(): Registry {
  const registry = new PromRegistry();
  registerQueueMetrics({ registry, redis: null as never, queue: null as never, isExporter: () => false });
  return registry;
}
