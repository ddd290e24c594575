// The autoscaler loop: observe → decide → act, every few seconds, on the
// replica that holds the leader lease (leader.ts). decide() (policy.ts) is the
// whole of the judgement; this file only gathers what it needs, carries its
// memory, and does what it says:
//
// - queue depth: BullMQ's counts (waiting, prioritized, delayed, active);
// - arrivals: BullMQ's job id counter (`<queue>:id`), which its add scripts
//   INCR on every add, a custom job id (ours: the video id) included. One GET a
//   tick, exact across restarts and leader changes, and no API involvement. A
//   retry is not an arrival (it is back in `waiting` and the backlog term sees it);
// - render time: the completions since the last tick (the `completed` set is
//   scored by finish time), processedOn → finishedOn, smoothed over 10 minutes;
// - workers: the registry (engine/registry.ts) for registered ones and their
//   state; the provider's list for those launched and not registered yet
//   (booting), and for those that left the registry and must be reaped.
//
// Acting: launch what decide() asks; retire by asking an idle worker to drain
// (it finishes, deregisters and exits 0 by itself); never touch a busy one.
// The provider terminates only what has left the registry: drained, or lost
// (missed heartbeats), after a grace period, or launched and never registered.
//
// The loop's memory (the policy's, the smoothed rates, where it left off) is
// JSON in Redis beside the lease, written only while the lease is ours, so a
// standby that takes over carries on where the dead leader stopped.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../engine/log.js';
import { LeaderLease } from './leader.js';
import type { AutoscalerMetrics } from './metrics.js';
import {
  EMPTY_MEMORY, decide, renderStats, smoothMoments, smoothRate,
  type PolicyConfig, type PolicyMemory, type QueueDepth, type RenderMoments, type ScalingDecision, type WorkerView,
} from './policy.js';
import type { WorkerProvider } from './providers/types.js';
import { autoscalerKeys, readManualFloor, type ScalingSnapshot } from './state.js';

/** What the loop reads from the worker registry (engine/registry.ts provides it). */
export interface FleetWorker {
  id: string;
  state: 'starting' | 'idle' | 'busy' | 'draining';
  /** The latest spot notice the worker received. */
  spot?: 'termination' | 'rebalance';
  /** Epoch ms. */
  startedAt: number;
  drain?: unknown;
}

export interface FleetRegistry {
  list(): Promise<FleetWorker[]>;
  requestDrain(id: string, opts?: { deadlineMs?: number }): Promise<boolean>;
}

export interface LoopOptions {
  redis: Redis;
  queue: Queue;
  queueName: string;
  registry: FleetRegistry;
  /** null: decide and publish only (KEDA sizes the Deployment from GET /v1/ops/scaling). */
  provider: WorkerProvider | null;
  policy: PolicyConfig;
  intervalMs: number;
  leaseMs: number;
  waitTargetSeconds: number;
  /** Render time assumed until completions are measured. */
  renderPrior: { meanSeconds: number; stddevSeconds: number };
  /** A worker launched this long ago that never registered is terminated. */
  bootTimeoutSeconds: number;
  /** A worker gone from the registry this long is terminated (a drained one has exited by then). */
  reapGraceSeconds?: number;
  log: Logger;
  metrics?: AutoscalerMetrics;
  /** Epoch ms; tests may pass their own. */
  clock?: () => number;
  name?: string;
}

/** What one round saw and did. */
export interface TickResult {
  decision: ScalingDecision;
  workers: WorkerView[];
  launched: string[];
  drained: string[];
  reaped: string[];
}

interface LoopState {
  memory: PolicyMemory;
  /** Seconds: when the last round observed. */
  at?: number;
  /** BullMQ's job id counter then. */
  idCounter?: number;
  rate: number;
  recent: number;
  lastArrivalAt?: number;
  moments: RenderMoments;
  /** Finish time (ms) of the newest completion already counted. */
  finishedCursor?: number;
  /** Worker id → [state, since]: how long each has been idle (longest idle retires first). */
  seen: Record<string, [WorkerView['state'], number]>;
  /** Ids the provider launched or lists: a registry record among them whose instance is gone is dead. */
  owned: string[];
  /** Owned ids seen in the registry: once they leave it, their instance is reaped. */
  registered: string[];
  /** Registered ids that left the registry, and when; with their last state. */
  gone: Record<string, [number, WorkerView['state']]>;
  /**
   * Launched ids the provider's list does not show yet (EC2's DescribeInstances
   * is eventually consistent), with when: counted as booting meanwhile, or the
   * next round would launch them again.
   */
  launched: Record<string, number>;
  /** Worker id → spot notice kinds already counted (vgen_autoscaler_spot_interruptions_total), while it is registered. */
  interrupted?: Record<string, ('termination' | 'rebalance')[]>;
}

const RENDER_WINDOW_SECONDS = 600;
/** Completions ingested a round at most; a sample is enough for a mean. */
const MAX_COMPLETIONS = 200;
const STATE_TTL_MS = 24 * 3600 * 1000;
/** How long a launched worker may be missing from the provider's list before it is given up on. */
const LIST_LAG_SECONDS = 120;

// KEYS: lease, state, decision. ARGV: token, state, state ttl, decision, decision ttl.
const SAVE = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1`;

export class AutoscalerLoop {
  readonly lease: LeaderLease;
  private readonly keys: ReturnType<typeof autoscalerKeys>;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;
  private stopped = true;
  private lastLogged = '';

  constructor(private readonly opts: LoopOptions) {
    this.keys = autoscalerKeys(opts.queueName);
    this.clock = opts.clock ?? Date.now;
    this.lease = new LeaderLease({
      redis: opts.redis,
      key: this.keys.leader,
      ttlMs: opts.leaseMs,
      name: opts.name,
      log: opts.log,
      onChange: (leader) => {
        opts.metrics?.leader.set(leader ? 1 : 0);
        if (leader) this.schedule(0); // act at once: a new leader (or `vgen up` starting) must not wait a whole interval
      },
    });
  }

  start(): void {
    this.stopped = false;
    this.lease.start();
    this.schedule(this.opts.intervalMs);
  }

  /** Stop; with release (a clean shutdown) a standby takes over at once, without it (a crash) when the lease expires. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight?.catch(() => {});
    await this.lease.stop(opts);
  }

  isLeader(): boolean {
    return this.lease.isLeader();
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.round(), ms);
  }

  private async round() {
    if (this.inFlight) return; // the running round reschedules
    this.inFlight = this.tick().catch((err: unknown) => {
      this.opts.metrics?.errors.inc();
      this.opts.log.warn({ err: (err as Error).message }, 'autoscaler round failed; trying again next interval');
    });
    await this.inFlight;
    this.inFlight = undefined;
    this.schedule(this.opts.intervalMs);
  }

  /** One observe → decide → act round; null when this replica is not the leader. */
  async tick(): Promise<TickResult | null> {
    if (!this.lease.isLeader()) return null;
    const { redis, queue, registry, provider, policy, log, metrics } = this.opts;
    const nowMs = this.clock();
    const now = nowMs / 1000;
    const [state, counts, paused, idRaw, records, instances, floor] = await Promise.all([
      this.load(),
      queue.getJobCounts('wait', 'prioritized', 'delayed', 'active'),
      queue.isPaused(),
      redis.get(queue.toKey('id')),
      registry.list(),
      provider ? provider.list() : Promise.resolve([]),
      readManualFloor(redis, this.opts.queueName),
    ]);

    // ── Arrivals and render times ────────────────────────────────────────────
    const counter = Number(idRaw ?? 0);
    const dt = state.at === undefined ? 0 : now - state.at;
    // The counter only grows; a smaller one means the queue was obliterated and begun again.
    const arrivals = state.idCounter === undefined ? 0 : Math.max(0, counter - state.idCounter);
    let rate = smoothRate(state.rate, arrivals, dt, policy.rateWindowSeconds);
    let recent = smoothRate(state.recent, arrivals, dt, policy.surgeWindowSeconds);
    const lastArrivalAt = arrivals > 0 ? now : state.lastArrivalAt;
    const { batch, cursor } = await this.completions(state.finishedCursor);
    const moments = smoothMoments(state.moments, batch, dt, RENDER_WINDOW_SECONDS);

    // A paused queue hands no job to a worker: its backlog asks for none.
    const depth: QueueDepth = {
      waiting: paused ? 0 : counts.wait ?? 0,
      prioritized: paused ? 0 : counts.prioritized ?? 0,
      delayed: counts.delayed ?? 0,
      active: counts.active ?? 0,
    };
    // Scale to zero: a smoothed rate decays but never reaches 0, and any rate
    // above 0 keeps one worker. Nothing queued or running and no arrival for a
    // whole scale-in window is an idle queue: its rate is 0.
    if (depth.waiting + depth.prioritized + depth.active === 0 && (lastArrivalAt === undefined || now - lastArrivalAt >= policy.scaleInWindowSeconds)) {
      rate = 0;
      recent = 0;
    }

    // ── Workers ──────────────────────────────────────────────────────────────
    const byRecord = new Map(records.map((r) => [r.id, r]));
    const byInstance = new Map(instances.map((i) => [i.id, i]));
    const owned = new Set([...state.owned.filter((id) => byInstance.has(id) || byRecord.has(id)), ...byInstance.keys()]);
    const registered = new Set([...state.registered, ...records.map((r) => r.id)].filter((id) => byInstance.has(id)));
    const workers: WorkerView[] = [];
    const seen: LoopState['seen'] = {};
    const view = (id: string, s: WorkerView['state'], since: number) => {
      const prev = state.seen[id];
      const w = { id, state: s, since: prev && prev[0] === s ? prev[1] : since };
      seen[id] = [w.state, w.since];
      workers.push(w);
    };
    for (const r of records) {
      // Its process or instance is gone (crashed, terminated): the registry prunes the record soon.
      if (owned.has(r.id) && !byInstance.has(r.id)) continue;
      const s = r.drain || r.state === 'draining' ? 'draining' : r.state === 'starting' ? 'booting' : r.state;
      const launchedAt = byInstance.get(r.id)?.launchedAt.getTime() ?? r.startedAt;
      view(r.id, s, s === 'booting' ? launchedAt / 1000 : now);
    }
    const gone: LoopState['gone'] = {};
    const reap = new Map<string, 'drained' | 'lost' | 'boot_timeout'>();
    const reapGrace = this.opts.reapGraceSeconds ?? 30;
    for (const inst of instances) {
      if (byRecord.has(inst.id) || inst.state === 'stopping' || inst.state === 'terminated') continue;
      if (registered.has(inst.id)) {
        // It was registered and has left: drained (and exited), or lost its heartbeat.
        const [since, last] = state.gone[inst.id] ?? [now, state.seen[inst.id]?.[0] ?? 'idle'];
        gone[inst.id] = [since, last];
        if (now - since >= reapGrace) reap.set(inst.id, last === 'draining' ? 'drained' : 'lost');
      } else if (now - inst.launchedAt.getTime() / 1000 > this.opts.bootTimeoutSeconds) {
        reap.set(inst.id, 'boot_timeout');
      } else {
        view(inst.id, 'booting', inst.launchedAt.getTime() / 1000);
      }
    }

    const launchedEarlier: LoopState['launched'] = {};
    for (const [id, at] of Object.entries(state.launched)) {
      if (byInstance.has(id) || byRecord.has(id) || now - at > LIST_LAG_SECONDS) continue;
      launchedEarlier[id] = at;
      view(id, 'booting', at);
    }

    // Spot notices: each worker counted once per kind, across rounds and leaders.
    const interrupted: NonNullable<LoopState['interrupted']> = {};
    for (const r of records) {
      const kinds = [...(state.interrupted?.[r.id] ?? [])];
      if (r.spot && !kinds.includes(r.spot)) {
        kinds.push(r.spot);
        metrics?.spotInterruptions.inc({ kind: r.spot });
      }
      if (kinds.length > 0) interrupted[r.id] = kinds;
    }
    if (provider?.hourlyCost) {
      metrics?.fleetCost.set(provider.hourlyCost(instances.filter((i) => i.state === 'pending' || i.state === 'running')));
    }

    // ── Decide ───────────────────────────────────────────────────────────────
    const decision = decide({
      now,
      queue: depth,
      arrivalRate: rate,
      recentArrivalRate: recent,
      render: renderStats(moments, this.opts.renderPrior),
      workers,
      waitTargetSeconds: this.opts.waitTargetSeconds,
      ...(floor && { manualFloor: { workers: floor.workers, until: floor.until / 1000 } }),
    }, policy, state.memory);

    // ── Act (only with a provider, and only while the lease is still ours) ───
    const launched: string[] = [];
    const drained: string[] = [];
    const reaped: string[] = [];
    if (provider && this.lease.isLeader()) {
      if (reap.size > 0) {
        const res = await provider.terminate([...reap.keys()]);
        for (const id of res.terminated) {
          reaped.push(id);
          registered.delete(id);
          delete gone[id];
          metrics?.terminated.inc({ why: reap.get(id)! });
        }
        if (res.refused.length > 0) log.warn({ refused: res.refused }, 'autoscaler: provider refused to terminate workers it does not own');
        log.info({ reaped: Object.fromEntries([...reap].filter(([id]) => res.terminated.includes(id))) }, 'autoscaler: terminated workers that left the registry');
      }
      if (decision.launch > 0) {
        const res = await provider.launch(decision.launch);
        for (const inst of res.instances) {
          launched.push(inst.id);
          owned.add(inst.id);
          launchedEarlier[inst.id] = now;
        }
        metrics?.launched.inc(res.instances.length);
        if (res.shortfall > 0) {
          metrics?.launchShortfall.inc(res.shortfall);
          log.warn({ requested: res.requested, shortfall: res.shortfall, errors: res.errors }, 'autoscaler: provider could not launch every worker asked for; asking again next round');
        }
      }
      const byId = new Map(workers.map((w) => [w.id, w]));
      for (const id of decision.retire) {
        // Idle ones drain (they have no job, and a drained worker takes none). A
        // booting one is left to register first: it is retired as idle next round.
        if (byId.get(id)?.state !== 'idle') continue;
        if (await registry.requestDrain(id)) {
          drained.push(id);
          seen[id] = ['draining', now];
        }
      }
      metrics?.drains.inc(drained.length);
    }

    // ── Remember, publish, report ────────────────────────────────────────────
    const next: LoopState = {
      memory: decision.memory, at: now, idCounter: counter, rate, recent, lastArrivalAt, moments, finishedCursor: cursor,
      seen, owned: [...owned], registered: [...registered], gone, launched: launchedEarlier, interrupted,
    };
    const count = (s: WorkerView['state']) => workers.filter((w) => w.state === s).length;
    const render = renderStats(moments, this.opts.renderPrior);
    const snapshot: ScalingSnapshot = {
      desiredWorkers: decision.desired,
      reason: decision.reason,
      running: count('idle') + count('busy') - drained.length,
      busy: count('busy'),
      booting: count('booting') + launched.length,
      draining: count('draining') + drained.length,
      need: decision.need,
      queue: depth,
      arrivalRate: rate,
      renderSeconds: { mean: render.meanSeconds, stddev: render.stddevSeconds },
      min: policy.min,
      max: policy.max,
      manualFloor: floor ? { workers: floor.workers, until: new Date(floor.until).toISOString() } : null,
      provider: provider?.name ?? 'none',
      leader: this.lease.name,
      at: new Date(nowMs).toISOString(),
    };
    const decisionTtl = Math.max(4 * this.opts.intervalMs, 2 * this.opts.leaseMs);
    const saved = await redis.eval(SAVE, 3, this.keys.leader, this.keys.state, this.keys.decision,
      this.lease.token, JSON.stringify(next), String(STATE_TTL_MS), JSON.stringify(snapshot), String(decisionTtl));
    if (saved !== 1) log.warn('autoscaler: lost the lease during a round; its memory was not saved');

    metrics?.desired.set(decision.desired);
    metrics?.running.set(snapshot.running);
    metrics?.busy.set(snapshot.busy);
    metrics?.booting.set(snapshot.booting);
    metrics?.draining.set(snapshot.draining);
    metrics?.decisions.inc({ reason: decision.reason });
    // Every decision is logged with its reason; at info when it changes something, else at debug.
    const line = {
      desired: decision.desired, reason: decision.reason, current: decision.current, need: decision.need,
      running: snapshot.running, busy: snapshot.busy, booting: snapshot.booting, draining: snapshot.draining,
      queue: depth, arrivalRate: round(rate), recentArrivalRate: round(recent), renderSeconds: round(render.meanSeconds),
      terms: { flow: decision.terms.flow, backlog: decision.terms.backlog, projectedBacklog: round(decision.terms.projectedBacklog) },
      ...(launched.length && { launched }), ...(drained.length && { drained }), ...(floor && { manualFloor: floor.workers }),
    };
    const key = `${decision.desired}/${decision.reason}`;
    const changed = key !== this.lastLogged || launched.length > 0 || drained.length > 0 || reaped.length > 0;
    this.lastLogged = key;
    log[changed ? 'info' : 'debug'](line, `autoscaler: ${decision.desired} workers (${decision.reason})`);
    return { decision, workers, launched, drained, reaped };
  }

  private async load(): Promise<LoopState> {
    const raw = await this.opts.redis.get(this.keys.state);
    const prior = this.opts.renderPrior;
    const empty: LoopState = {
      memory: EMPTY_MEMORY, rate: 0, recent: 0, seen: {}, owned: [], registered: [], gone: {}, launched: {},
      // Two jobs' worth of belief in the assumed render time, until measured ones outweigh it.
      moments: { n: 2, sum: 2 * prior.meanSeconds, squares: 2 * (prior.stddevSeconds ** 2 + prior.meanSeconds ** 2) },
    };
    if (!raw) return empty;
    try {
      return { ...empty, ...(JSON.parse(raw) as Partial<LoopState>) };
    } catch {
      return empty;
    }
  }

  /** Render times of the jobs completed after `cursor` (on the first round, a sample of the latest). */
  private async completions(cursor: number | undefined): Promise<{ batch: RenderMoments; cursor: number | undefined }> {
    const { redis, queue } = this.opts;
    const key = queue.toKey('completed');
    const flat = cursor === undefined
      ? await redis.zrevrange(key, 0, 49, 'WITHSCORES')
      : await redis.zrevrangebyscore(key, '+inf', `(${cursor}`, 'WITHSCORES', 'LIMIT', 0, MAX_COMPLETIONS);
    const ids: string[] = [];
    let newest = cursor;
    for (let i = 0; i < flat.length; i += 2) {
      ids.push(flat[i]!);
      newest = Math.max(newest ?? 0, Number(flat[i + 1]));
    }
    const batch = { n: 0, sum: 0, squares: 0 };
    if (ids.length > 0) {
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hmget(queue.toKey(id), 'processedOn', 'finishedOn');
      for (const [err, value] of (await pipeline.exec()) ?? []) {
        const [processedOn, finishedOn] = (err ? [] : (value as (string | null)[])).map(Number);
        const seconds = (finishedOn! - processedOn!) / 1000;
        if (!(seconds >= 0)) continue; // removed meanwhile, or no timestamps
        batch.n++;
        batch.sum += seconds;
        batch.squares += seconds * seconds;
      }
    }
    return { batch, cursor: newest ?? this.clock() };
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
