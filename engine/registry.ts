// The worker registry in Redis: who is running, doing what, and who has been
// asked to drain. Workers register at start, beat every HEARTBEAT_MS and
// deregister on a clean exit; a worker that stops beating for HEARTBEAT_TTL_MS
// is pruned by the next list(). The API's ops routes, the autoscaler and the
// workers themselves all use this one module.
//
// Keys (one Redis Cluster slot, thanks to the `{vgen}` hash tag):
//   {vgen}:<queue>:workers           sorted set: worker id → last heartbeat (ms)
//   {vgen}:<queue>:worker:<id>       hash: the record's fields (lastHeartbeat is the score above)
//   {vgen}:<queue>:drain:<id>        pub/sub channel: drain wishes, also kept in the hash's `drain` field
//   {vgen}:<queue>:cancels           pub/sub channel: canceled video ids (engine/cancel.ts), on the same subscriber
//
// A beat is one pipelined round trip of two commands (ZADD, HMGET), plus an
// HSET only when the state, current job or job count changed since the last beat.
import { Redis } from 'ioredis';
import { cancelKeys } from './cancel.js';
import { QUEUE_PREFIX } from './queue.js';

export type WorkerState = 'starting' | 'idle' | 'busy' | 'draining';
export interface WorkerRecord {
  id: string;
  provider: 'local' | 'ec2';
  instanceId?: string;
  host: string;
  pid: number;
  version: string;
  state: WorkerState;
  currentJob?: string;
  jobsDone: number;
  /** ms epoch */
  startedAt: number;
  /** ms epoch */
  lastHeartbeat: number;
  metricsUrl?: string;
  /** The latest spot notice this worker received (the autoscaler counts interruptions from it). */
  spot?: 'termination' | 'rebalance';
  /** deadline: ms epoch */
  drain?: { requestedAt: number; deadline?: number };
}

/** Workers beat every 5 s. */
export const HEARTBEAT_MS = 5_000;
/** A worker that missed ~4 beats is pruned. */
export const HEARTBEAT_TTL_MS = 20_000;

type Drain = NonNullable<WorkerRecord['drain']>;
type Patch = Partial<Pick<WorkerRecord, 'state' | 'currentJob' | 'jobsDone' | 'spot'>>;

export interface Registry {
  register(rec: Omit<WorkerRecord, 'lastHeartbeat' | 'drain'>): Promise<void>;
  /** Returns the persisted drain wish, so a missed pub/sub message is caught at the next beat. */
  heartbeat(id: string, patch: Patch): Promise<{ drain?: WorkerRecord['drain'] }>;
  deregister(id: string): Promise<void>;
  /** Live workers, pruning any whose lastHeartbeat is older than HEARTBEAT_TTL_MS. */
  list(): Promise<WorkerRecord[]>;
  get(id: string): Promise<WorkerRecord | null>;
  /**
   * false when no such live worker; persists the wish in Redis, then publishes it.
   * deadlineMs is a duration from now (the stored deadline is an ms epoch). Asked
   * again, a drain keeps its first requestedAt and the earliest deadline.
   */
  requestDrain(id: string, opts?: { deadlineMs?: number }): Promise<boolean>;
  /** Subscribe (on a connection of its own); returns unsubscribe. */
  onDrain(id: string, fn: (drain: Drain) => void): Promise<() => Promise<void>>;
  /** Video ids canceled from now on (engine/cancel.ts), on the same subscriber connection; returns unsubscribe. */
  onCancel(fn: (videoId: string) => void): Promise<() => Promise<void>>;
  /** Closes the subscriber connection, if one was opened. The main connection is the caller's. */
  close(): Promise<void>;
}

// Removes workers whose last beat is older than ARGV[1], with their hashes, atomically.
const PRUNE = `
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[2] .. id)
end
return #stale`;

// Persists a drain wish on a live worker and publishes it. A repeated request
// keeps the first requestedAt and the earliest deadline (no deadline = none).
// Returns the stored wish as JSON, or false when the worker is not live.
const REQUEST_DRAIN = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < tonumber(ARGV[2]) then return false end
if redis.call('HEXISTS', KEYS[2], 'id') == 0 then return false end
local now = tonumber(ARGV[3])
local requestedAt = now
local deadline = nil
if ARGV[4] ~= '' then deadline = tonumber(ARGV[4]) end
local old = redis.call('HGET', KEYS[2], 'drain')
if old then
  local prev = cjson.decode(old)
  requestedAt = tonumber(prev.requestedAt) or now
  if prev.deadline and (not deadline or tonumber(prev.deadline) < deadline) then deadline = tonumber(prev.deadline) end
end
local json = string.format('{"requestedAt":%d}', requestedAt)
if deadline then json = string.format('{"requestedAt":%d,"deadline":%d}', requestedAt, deadline) end
redis.call('HSET', KEYS[2], 'drain', json)
redis.call('PUBLISH', ARGV[5], json)
return json`;

const FIELDS = ['id', 'provider', 'instanceId', 'host', 'pid', 'version', 'state', 'currentJob', 'jobsDone', 'startedAt', 'metricsUrl', 'spot', 'drain'] as const;

function parseDrain(raw: string | null | undefined): Drain | undefined {
  if (!raw) return undefined;
  try {
    const d = JSON.parse(raw) as { requestedAt?: unknown; deadline?: unknown };
    if (typeof d.requestedAt !== 'number') return undefined;
    return typeof d.deadline === 'number' ? { requestedAt: d.requestedAt, deadline: d.deadline } : { requestedAt: d.requestedAt };
  } catch {
    return undefined;
  }
}

function toRecord(h: Record<string, string>, lastHeartbeat: number): WorkerRecord | null {
  if (!h.id) return null;
  const rec: WorkerRecord = {
    id: h.id,
    provider: h.provider === 'ec2' ? 'ec2' : 'local',
    host: h.host ?? '',
    pid: Number(h.pid ?? 0),
    version: h.version ?? '',
    state: (['starting', 'idle', 'busy', 'draining'] as const).find((s) => s === h.state) ?? 'starting',
    jobsDone: Number(h.jobsDone ?? 0),
    startedAt: Number(h.startedAt ?? 0),
    lastHeartbeat,
  };
  if (h.instanceId) rec.instanceId = h.instanceId;
  if (h.currentJob) rec.currentJob = h.currentJob;
  if (h.metricsUrl) rec.metricsUrl = h.metricsUrl;
  if (h.spot === 'termination' || h.spot === 'rebalance') rec.spot = h.spot;
  const drain = parseDrain(h.drain);
  if (drain) rec.drain = drain;
  return rec;
}

/** Hash fields for a patch; an absent currentJob is stored as '' (one HSET, no HDEL). */
function patchFields(patch: Patch): string[] {
  const out: string[] = [];
  if (patch.state !== undefined) out.push('state', patch.state);
  if ('currentJob' in patch) out.push('currentJob', patch.currentJob ?? '');
  if (patch.jobsDone !== undefined) out.push('jobsDone', String(patch.jobsDone));
  if (patch.spot !== undefined) out.push('spot', patch.spot);
  return out;
}

export function registryKeys(queueName: string) {
  const base = `${QUEUE_PREFIX}:${queueName}`;
  return {
    workers: `${base}:workers`,
    workerPrefix: `${base}:worker:`,
    worker: (id: string) => `${base}:worker:${id}`,
    drainChannel: (id: string) => `${base}:drain:${id}`,
  };
}

export function createRegistry(redis: Redis, opts: { queueName: string; subscriberUrl?: string }): Registry {
  const keys = registryKeys(opts.queueName);
  // What this process registered, so a worker pruned during a partition (its
  // hash deleted) re-registers itself at its next beat.
  const mine = new Map<string, { rec: Omit<WorkerRecord, 'lastHeartbeat' | 'drain'>; sent: Record<string, string> }>();

  let subscriber: Redis | undefined;
  const handlers = new Map<string, Set<(d: Drain) => void>>();
  const cancelChannel = cancelKeys(opts.queueName).channel;
  const cancelHandlers = new Set<(videoId: string) => void>();
  const getSubscriber = (): Redis => {
    if (subscriber) return subscriber;
    subscriber = opts.subscriberUrl
      ? new Redis(opts.subscriberUrl, { maxRetriesPerRequest: null })
      : redis.duplicate({ maxRetriesPerRequest: null, enableOfflineQueue: true });
    subscriber.on('error', () => {}); // reconnects by itself; the persisted wish covers the gap
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === cancelChannel) {
        for (const fn of cancelHandlers) {
          try {
            fn(message);
          } catch {
            // a handler's error is its own
          }
        }
        return;
      }
      const set = handlers.get(channel);
      const drain = parseDrain(message);
      if (!set || !drain) return;
      for (const fn of set) {
        try {
          fn(drain);
        } catch {
          // a handler's error is its own; the others still run
        }
      }
    });
    return subscriber;
  };

  const writeRecord = async (rec: Omit<WorkerRecord, 'lastHeartbeat' | 'drain'>, now: number) => {
    const fields: string[] = [];
    for (const f of FIELDS) {
      const v = (rec as Record<string, unknown>)[f];
      if (f === 'drain' || v === undefined) continue;
      fields.push(f, String(v));
    }
    await redis.multi().del(keys.worker(rec.id)).hset(keys.worker(rec.id), ...fields).zadd(keys.workers, now, rec.id).exec();
  };

  return {
    async register(rec) {
      mine.set(rec.id, { rec: { ...rec }, sent: {} });
      await writeRecord(rec, Date.now());
    },

    async heartbeat(id, patch) {
      const now = Date.now();
      const fields = patchFields(patch);
      const own = mine.get(id);
      // Send only what changed since the last beat.
      const changed: string[] = [];
      for (let i = 0; i < fields.length; i += 2) {
        if (own?.sent[fields[i]!] !== fields[i + 1]) changed.push(fields[i]!, fields[i + 1]!);
      }
      const p = redis.pipeline().zadd(keys.workers, now, id);
      if (changed.length > 0) p.hset(keys.worker(id), ...changed);
      p.hmget(keys.worker(id), 'id', 'drain');
      const res = await p.exec();
      if (!res) throw new Error('registry heartbeat: no reply');
      for (const [err] of res) if (err) throw err;
      const [hasId, drainRaw] = res[res.length - 1]![1] as [string | null, string | null];
      if (own) {
        for (let i = 0; i < changed.length; i += 2) own.sent[changed[i]!] = changed[i + 1]!;
        Object.assign(own.rec, patch);
        if (!hasId) {
          // Pruned while we were away (or Redis lost the hash): register again, keeping the state.
          await writeRecord(own.rec, now);
          for (let i = 0; i < fields.length; i += 2) own.sent[fields[i]!] = fields[i + 1]!;
          return {};
        }
      }
      const drain = parseDrain(drainRaw);
      return drain ? { drain } : {};
    },

    async deregister(id) {
      mine.delete(id);
      await redis.multi().zrem(keys.workers, id).del(keys.worker(id)).exec();
    },

    async list() {
      const cutoff = Date.now() - HEARTBEAT_TTL_MS;
      await redis.eval(PRUNE, 1, keys.workers, String(cutoff), keys.workerPrefix);
      const flat = await redis.zrangebyscore(keys.workers, cutoff, '+inf', 'WITHSCORES');
      if (flat.length === 0) return [];
      const p = redis.pipeline();
      for (let i = 0; i < flat.length; i += 2) p.hgetall(keys.worker(flat[i]!));
      const res = (await p.exec()) ?? [];
      const out: WorkerRecord[] = [];
      res.forEach(([err, h], i) => {
        if (err) return;
        const rec = toRecord(h as Record<string, string>, Number(flat[i * 2 + 1]));
        if (rec) out.push(rec);
      });
      return out;
    },

    async get(id) {
      const res = await redis.pipeline().zscore(keys.workers, id).hgetall(keys.worker(id)).exec();
      const score = res?.[0]?.[1] as string | null;
      if (!score || Number(score) < Date.now() - HEARTBEAT_TTL_MS) return null;
      return toRecord((res?.[1]?.[1] ?? {}) as Record<string, string>, Number(score));
    },

    async requestDrain(id, o = {}) {
      const now = Date.now();
      const deadline = o.deadlineMs === undefined ? '' : String(Math.round(now + o.deadlineMs));
      const json = await redis.eval(REQUEST_DRAIN, 2, keys.workers, keys.worker(id), id, String(now - HEARTBEAT_TTL_MS), String(now), deadline, keys.drainChannel(id));
      return typeof json === 'string';
    },

    async onDrain(id, fn) {
      const channel = keys.drainChannel(id);
      const sub = getSubscriber();
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await sub.subscribe(channel);
      }
      set.add(fn);
      return async () => {
        const s = handlers.get(channel);
        if (!s?.delete(fn) || s.size > 0) return;
        handlers.delete(channel);
        await sub.unsubscribe(channel).catch(() => {});
      };
    },

    async onCancel(fn) {
      const sub = getSubscriber();
      if (cancelHandlers.size === 0) await sub.subscribe(cancelChannel);
      cancelHandlers.add(fn);
      return async () => {
        if (!cancelHandlers.delete(fn) || cancelHandlers.size > 0) return;
        await sub.unsubscribe(cancelChannel).catch(() => {});
      };
    },

    async close() {
      handlers.clear();
      cancelHandlers.clear();
      const s = subscriber;
      subscriber = undefined;
      if (s) await s.quit().catch(() => s.disconnect());
    },
  };
}
