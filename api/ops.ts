// /v1/ops/*: the operator's routes behind `vgen workers …` and `vgen queue …`,
// and the autoscaler's decision for KEDA. Each needs an operator token; a user
// token gets 403 forbidden. They read and write Redis only (the registry, the
// queue, the autoscaler's keys), except retry-failed, which reopens the video
// rows it retries.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { readManualFloor, readScaling, setManualFloor } from '../autoscaler/state.js';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { PARK_DELAY_MS, type RenderJobData, type RenderResult } from '../engine/queue.js';
import { listProcesses } from '../engine/process-registry.js';
import { createRegistry } from '../engine/registry.js';
import { TargetGroups, targetGroups } from './prometheus-targets.js';
import { ErrorBody } from './schemas.js';
import { getVideo, reopenFailed } from './video-store.js';

export interface OpsDeps {
  db: Db;
  redis: Redis;
  queue: Queue<RenderJobData, RenderResult>;
  queueName: string;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const ScalingBody = Type.Object({
  desiredWorkers: Type.Integer({ description: "The policy's desired worker count: KEDA's metrics-api scaler reads this (valueLocation desiredWorkers, targetValue 1)." }),
  reason: Type.String({ description: 'Why: backlog, arrival_rate, min, max, manual_floor, step_limit, scale_in, scale_in_stabilizing or steady.' }),
  running: Type.Integer({ description: 'Registered workers, idle or busy.' }),
  busy: Type.Integer(),
  booting: Type.Integer({ description: 'Launched, not registered yet.' }),
  draining: Type.Integer(),
  need: Type.Integer({ description: "This decision's need, before the scale-in window and step limits." }),
  queue: Type.Object({ waiting: Type.Integer(), prioritized: Type.Integer(), delayed: Type.Integer(), active: Type.Integer() }),
  arrivalRate: Type.Number({ description: 'Jobs per second, smoothed.' }),
  renderSeconds: Type.Object({ mean: Type.Number(), stddev: Type.Number() }),
  min: Type.Integer(),
  max: Type.Integer(),
  manualFloor: Nullable(Type.Object({ workers: Type.Integer(), until: Type.String({ format: 'date-time' }) })),
  provider: Type.String({ description: 'local, ec2, or none (decide only, e.g. for KEDA).' }),
  leader: Type.String({ description: 'The autoscaler replica that decided.' }),
  at: Type.String({ format: 'date-time' }),
}, { $id: 'Scaling', title: 'Scaling' });

const WorkerBody = Type.Object({
  id: Type.String(),
  provider: Type.String(),
  instanceId: Type.Optional(Type.String()),
  host: Type.String(),
  pid: Type.Integer(),
  version: Type.String(),
  state: Type.String({ description: 'starting, idle, busy or draining.' }),
  currentJob: Type.Optional(Type.String()),
  jobsDone: Type.Integer(),
  startedAt: Type.String({ format: 'date-time' }),
  lastHeartbeat: Type.String({ format: 'date-time' }),
  metricsUrl: Type.Optional(Type.String()),
  drain: Type.Optional(Type.Object({ requestedAt: Type.String({ format: 'date-time' }), deadline: Type.Optional(Type.String({ format: 'date-time' })) })),
}, { $id: 'Worker', title: 'Worker' });
type WorkerBody = Static<typeof WorkerBody>;

const ScaleRequest = Type.Object({
  workers: Type.Integer({ minimum: 0, maximum: 10_000, description: 'Keep at least this many workers (0 clears the floor).' }),
  forSeconds: Type.Integer({ minimum: 1, maximum: 7 * 86_400, default: 3600, description: 'The floor expires after this long.' }),
}, { additionalProperties: false });
const FloorBody = Type.Object({ manualFloor: Nullable(Type.Object({ workers: Type.Integer(), until: Type.String({ format: 'date-time' }) })) });

const DrainRequest = Type.Object({
  ids: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 1000 })),
  idle: Type.Optional(Type.Boolean({ description: 'Every idle worker.' })),
  all: Type.Optional(Type.Boolean({ description: 'Every worker: busy ones finish their job first.' })),
  deadlineSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'A job not finished by then goes back to the queue for another worker.' })),
}, { additionalProperties: false });
const DrainBody = Type.Object({
  draining: Type.Array(Type.String(), { description: 'Workers told to drain.' }),
  notFound: Type.Array(Type.String(), { description: 'Ids with no live worker.' }),
});

export const QueueStatsBody = Type.Object({
  name: Type.String(),
  paused: Type.Boolean(),
  counts: Type.Object({
    waiting: Type.Integer(),
    prioritized: Type.Integer(),
    delayed: Type.Integer({ description: 'Retries waiting out their backoff.' }),
    parked: Type.Integer({ description: 'Submits not yet promoted by the API (normally seconds at most).' }),
    active: Type.Integer(),
    completed: Type.Integer(),
    failed: Type.Integer(),
  }),
  byPriority: Type.Array(Type.Object({ priority: Type.Integer(), waiting: Type.Integer() }), { description: 'Jobs waiting, by priority (0 = none).' }),
  oldestWaitingSeconds: Nullable(Type.Number()),
  throughput: Type.Object({
    completedPerMinute: Type.Number({ description: 'Over the last 5 minutes.' }),
    failedPerMinute: Type.Number(),
  }),
  renderSeconds: Nullable(Type.Object({ mean: Type.Number(), stddev: Type.Number(), sample: Type.Integer() })),
  at: Type.String({ format: 'date-time' }),
}, { $id: 'QueueStats', title: 'QueueStats' });
type QueueStatsBody = Static<typeof QueueStatsBody>;

const RetryRequest = Type.Object({
  sinceSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86_400, description: 'Only jobs that failed this recently; default all kept (7 days).' })),
}, { additionalProperties: false });
const RetryBody = Type.Object({
  retried: Type.Array(Type.String(), { description: 'Videos reopened (failed → queued) and their jobs queued again.' }),
  skipped: Type.Integer({ description: 'Failed jobs whose video is not failed (or has no row); left alone.' }),
});
/** Finished jobs younger than this stay: the settler may still need a result that no API process was up to read. */
const MIN_CLEAN_SECONDS = 3600;
const CleanRequest = Type.Object({
  olderThanSeconds: Type.Integer({ minimum: MIN_CLEAN_SECONDS, maximum: 365 * 86_400, default: 86_400, description: 'Remove completed and failed jobs that finished longer ago than this (at least an hour).' }),
}, { additionalProperties: false });
const CleanBody = Type.Object({ completed: Type.Integer(), failed: Type.Integer() });

/** Batch size of retry-failed and clean: one call does at most this much, and says so. */
const BATCH = 1000;

const iso = (ms: number) => new Date(ms).toISOString();

export function toWorkerBody(w: Awaited<ReturnType<ReturnType<typeof createRegistry>['list']>>[number]): WorkerBody {
  return {
    id: w.id, provider: w.provider, host: w.host, pid: w.pid, version: w.version, state: w.state, jobsDone: w.jobsDone,
    startedAt: iso(w.startedAt), lastHeartbeat: iso(w.lastHeartbeat),
    ...(w.instanceId && { instanceId: w.instanceId }),
    ...(w.currentJob && { currentJob: w.currentJob }),
    ...(w.metricsUrl && { metricsUrl: w.metricsUrl }),
    ...(w.drain && { drain: { requestedAt: iso(w.drain.requestedAt), ...(w.drain.deadline !== undefined && { deadline: iso(w.drain.deadline) }) } }),
  };
}

/** Depth by state and priority, oldest wait, throughput and render time, from Redis alone. */
export async function queueStats(redis: Redis, queue: Queue, now = Date.now()): Promise<QueueStatsBody> {
  const [counts, paused] = await Promise.all([
    queue.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed'),
    queue.isPaused(),
  ]);
  // Parked jobs are delayed by PARK_DELAY_MS (engine/queue.ts): a score range of their own, far above any backoff.
  const parked = await redis.zcount(queue.toKey('delayed'), (now + PARK_DELAY_MS / 2) * 0x1000, '+inf');
  const waiting = counts.wait ?? 0; // a paused queue keeps its jobs in wait (BullMQ 5+)

  // Prioritized jobs are scored priority·2³² + n: walk the distinct priorities, one ZCOUNT each.
  const byPriority = waiting > 0 ? [{ priority: 0, waiting }] : [];
  const prioritizedKey = queue.toKey('prioritized');
  // Each priority's first job is its oldest (FIFO within a priority); with fair
  // scheduling (engine/fairness.ts) the overall next job is often not the oldest.
  const levelHeads: string[] = [];
  for (let from = 0; ;) {
    const next = await redis.zrangebyscore(prioritizedKey, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1);
    if (next.length < 2) break;
    levelHeads.push(next[0]!);
    const priority = Math.floor(Number(next[1]) / 0x100000000);
    const n = await redis.zcount(prioritizedKey, priority * 0x100000000, (priority + 1) * 0x100000000 - 1);
    byPriority.push({ priority, waiting: n });
    from = (priority + 1) * 0x100000000;
  }

  // The oldest waiting job: the wait list's tail (BullMQ takes from the right), or the first job of some priority.
  const heads = [(await redis.lindex(queue.toKey('wait'), -1)), ...levelHeads].filter((id): id is string => !!id);
  const stamps = await Promise.all(heads.map((id) => redis.hget(queue.toKey(id), 'timestamp')));
  const oldest = Math.min(...stamps.map(Number).filter((t) => t > 0));

  const completedKey = queue.toKey('completed');
  const [done5, failed5, recent] = await Promise.all([
    redis.zcount(completedKey, now - 300_000, '+inf'),
    redis.zcount(queue.toKey('failed'), now - 300_000, '+inf'),
    redis.zrevrange(completedKey, 0, 49),
  ]);
  const pipeline = redis.pipeline();
  for (const id of recent) pipeline.hmget(queue.toKey(id), 'processedOn', 'finishedOn');
  const times = ((await pipeline.exec()) ?? [])
    .map(([err, v]) => (err ? NaN : (Number((v as string[])[1]) - Number((v as string[])[0])) / 1000))
    .filter((s) => s >= 0);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const stddev = Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / times.length);

  return {
    name: queue.name,
    paused,
    counts: {
      waiting,
      prioritized: counts.prioritized ?? 0,
      delayed: Math.max(0, (counts.delayed ?? 0) - parked),
      parked,
      active: counts.active ?? 0,
      completed: counts.completed ?? 0,
      failed: counts.failed ?? 0,
    },
    byPriority,
    oldestWaitingSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : null,
    throughput: { completedPerMinute: done5 / 5, failedPerMinute: failed5 / 5 },
    renderSeconds: times.length ? { mean, stddev, sample: times.length } : null,
    at: iso(now),
  };
}

export async function opsRoutes(app: FastifyInstance, deps: OpsDeps) {
  const { db, redis, queue, queueName } = deps;
  const registry = createRegistry(redis, { queueName });
  app.addHook('onClose', () => registry.close());

  const operatorOnly = async (req: FastifyRequest) => {
    if (req.auth?.role !== 'operator') throw new VgenError('forbidden', 'this route needs an operator token');
  };
  const errors = { 401: ErrorBody, 403: ErrorBody };
  const route = { onRequest: [app.authenticate, operatorOnly] };
  const schema = (summary: string, extra: Record<string, unknown>) => ({ tags: ['ops'], summary, security: [{ bearer: [] }], ...extra });

  app.get('/v1/ops/scaling', {
    ...route,
    schema: schema("The autoscaler's latest decision (KEDA metrics-api)", {
      description: 'The desired worker count the autoscaler leader decided last, with its reason and inputs. 503 when no autoscaler has decided recently (none running, or none holding the lease).',
      response: { 200: ScalingBody, ...errors, 503: ErrorBody },
    }),
  }, async () => {
    const s = await readScaling(redis, queueName);
    if (!s) throw new VgenError('unavailable', 'no autoscaler has decided recently; is `vgen autoscaler` (or `vgen up`) running on this queue?');
    return s;
  });

  app.get('/v1/ops/workers', {
    ...route,
    schema: schema('List live workers', { response: { 200: Type.Intersect([Type.Object({ workers: Type.Array(WorkerBody) }), FloorBody]), ...errors } }),
  }, async () => {
    const [workers, floor] = await Promise.all([registry.list(), readManualFloor(redis, queueName)]);
    return {
      workers: workers.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1)).map(toWorkerBody),
      manualFloor: floor && { workers: floor.workers, until: iso(floor.until) },
    };
  });

  app.get('/v1/ops/prometheus-targets', {
    ...route,
    schema: schema('Prometheus targets (HTTP service discovery)', {
      description: 'Every live process of this cluster with its /metrics endpoint, in Prometheus HTTP-SD format: API replicas and autoscalers '
        + '(process registry) and workers (worker registry), one target group each, labelled `role` (and `provider` for workers). '
        + 'A process leaves the list when it exits, or within 20 s of its last heartbeat. Point `http_sd_configs` here with an operator token.',
      response: { 200: TargetGroups, ...errors },
    }),
  }, async () => {
    const [workers, processes] = await Promise.all([registry.list(), listProcesses(redis, queueName)]);
    return targetGroups(workers, processes);
  });

  app.post('/v1/ops/workers/scale', {
    ...route,
    schema: schema('Set a manual floor on the worker count', {
      description: 'The autoscaler keeps at least this many workers (within its max) until the floor expires. 0 clears it.',
      body: ScaleRequest,
      response: { 200: FloorBody, ...errors, 400: ErrorBody },
    }),
  }, async (req) => {
    const body = req.body as Static<typeof ScaleRequest>;
    const floor = await setManualFloor(redis, queueName, body.workers, body.forSeconds);
    req.log.info({ floor }, 'ops: manual floor set');
    return { manualFloor: floor && { workers: floor.workers, until: iso(floor.until) } };
  });

  app.post('/v1/ops/workers/drain', {
    ...route,
    schema: schema('Drain workers', {
      description: 'A drained worker takes no new job, finishes its current one (or hands it back at the deadline), deregisters and exits. Give exactly one of ids, idle or all. An autoscaler replaces drained workers it still wants.',
      body: DrainRequest,
      response: { 200: DrainBody, ...errors, 400: ErrorBody },
    }),
  }, async (req) => {
    const body = req.body as Static<typeof DrainRequest>;
    if ([body.ids !== undefined, body.idle === true, body.all === true].filter(Boolean).length !== 1)
      throw new VgenError('invalid_request', 'give exactly one of ids, idle: true or all: true');
    const ids = body.ids ?? (await registry.list()).filter((w) => body.all || w.state === 'idle').map((w) => w.id);
    const opts = body.deadlineSeconds !== undefined ? { deadlineMs: body.deadlineSeconds * 1000 } : {};
    const draining: string[] = [];
    const notFound: string[] = [];
    for (const id of ids) ((await registry.requestDrain(id, opts)) ? draining : notFound).push(id);
    req.log.info({ draining, notFound }, 'ops: drain requested');
    return { draining, notFound };
  });

  app.get('/v1/ops/queue', {
    ...route,
    schema: schema('Queue statistics', { response: { 200: QueueStatsBody, ...errors } }),
  }, async () => queueStats(redis, queue));

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/v1/ops/queue/${action}`, {
      ...route,
      schema: schema(action === 'pause' ? 'Pause the queue: workers take no new job' : 'Resume the queue', {
        response: { 200: Type.Object({ paused: Type.Boolean() }), ...errors },
      }),
    }, async (req) => {
      await (action === 'pause' ? queue.pause() : queue.resume());
      req.log.info(`ops: queue ${action}d`);
      return { paused: await queue.isPaused() };
    });
  }

  app.post('/v1/ops/queue/retry-failed', {
    ...route,
    schema: schema('Retry failed renders', {
      description: `Reopens each failed video (failed → queued) and queues its job again with a fresh set of attempts. At most ${BATCH} a call, oldest first.`,
      body: RetryRequest,
      response: { 200: RetryBody, ...errors, 400: ErrorBody },
    }),
  }, async (req) => {
    const since = (req.body as Static<typeof RetryRequest>).sinceSeconds;
    const ids = await redis.zrangebyscore(queue.toKey('failed'), since ? Date.now() - since * 1000 : '-inf', '+inf', 'LIMIT', 0, BATCH);
    const retried: string[] = [];
    let skipped = 0;
    for (const id of ids) {
      const job = await queue.getJob(id);
      // The row first: the job's next result must find an unsettled row to settle.
      if (!job || (await getVideo(db, id))?.status !== 'failed' || !(await reopenFailed(db, id))) {
        skipped++;
        continue;
      }
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      retried.push(id);
    }
    req.log.info({ retried: retried.length, skipped }, 'ops: failed renders retried');
    return { retried, skipped };
  });

  app.post('/v1/ops/queue/clean', {
    ...route,
    schema: schema('Remove old finished jobs from Redis', {
      description: `Completed and failed jobs that finished longer ago than olderThanSeconds (at least ${MIN_CLEAN_SECONDS}; the video rows keep their results). At most ${BATCH} of each a call.`,
      body: CleanRequest,
      response: { 200: CleanBody, ...errors, 400: ErrorBody },
    }),
  }, async (req) => {
    const olderThan = (req.body as Static<typeof CleanRequest>).olderThanSeconds;
    const completed = await queue.clean(olderThan * 1000, BATCH, 'completed');
    const failed = await queue.clean(olderThan * 1000, BATCH, 'failed');
    req.log.info({ completed: completed.length, failed: failed.length, olderThan }, 'ops: finished jobs removed');
    return { completed: completed.length, failed: failed.length };
  });
}
