// The autoscaler loop against the real Redis and a real `vgen up`: it sizes the
// local fleet from the backlog (0 → 3 → 0), exactly one of two replicas acts
// and the other takes over within a lease period when the leader dies, it
// drains only idle workers, and it reaps what left the registry.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { AutoscalerLoop, type FleetRegistry, type FleetWorker } from '../autoscaler/loop.js';
import { createAutoscalerMetrics } from '../autoscaler/metrics.js';
import { policyConfig } from '../autoscaler/policy.js';
import type { LaunchResult, ProviderInstance, WorkerProvider } from '../autoscaler/providers/types.js';
import { autoscalerKeys, readScaling, setManualFloor } from '../autoscaler/state.js';
import { createLogger } from '../engine/log.js';
import { QUEUE_PREFIX } from '../engine/queue.js';
import { connectRedis, whenReady } from '../engine/redis.js';
import { createRegistry } from '../engine/registry.js';
import { freePort, onCleanup, REDIS_URL, runCleanups, smallSpec, tempDir, uniqueQueue } from './helpers.js';

after(runCleanups);
const log = createLogger('silent');

async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function redisFor(queueName: string) {
  const redis = connectRedis(REDIS_URL, 'producer');
  await whenReady(redis);
  onCleanup(async () => {
    const keys = await redis.keys(`${QUEUE_PREFIX}:${queueName}:autoscaler:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });
  return redis;
}

/** One fleet both replicas see (as two autoscalers see one EC2 account), with each launch recorded by who asked. */
class FakeFleet {
  readonly instances = new Map<string, ProviderInstance>();
  readonly launches: { by: string; count: number }[] = [];
  readonly terminated: string[] = [];
  private n = 0;
  provider(by: string): WorkerProvider {
    return {
      name: 'local',
      launch: async (count): Promise<LaunchResult> => {
        this.launches.push({ by, count });
        const instances = Array.from({ length: count }, () => {
          const inst: ProviderInstance = { id: `w${++this.n}`, state: 'pending', lifecycle: 'spot', instanceType: 'fake', launchedAt: new Date() };
          this.instances.set(inst.id, inst);
          return inst;
        });
        return { requested: count, instances, shortfall: 0, errors: [] };
      },
      terminate: async (ids) => {
        const terminated = ids.filter((id) => this.instances.delete(id));
        this.terminated.push(...terminated);
        return { terminated, refused: ids.filter((id) => !terminated.includes(id)) };
      },
      list: async () => [...this.instances.values()],
    };
  }
}

class FakeRegistry implements FleetRegistry {
  readonly workers = new Map<string, FleetWorker>();
  readonly drainRequests: string[] = [];
  async list() {
    return [...this.workers.values()];
  }
  async requestDrain(id: string) {
    const w = this.workers.get(id);
    if (!w) return false;
    this.drainRequests.push(id);
    w.state = 'draining';
    w.drain = { requestedAt: Date.now() };
    return true;
  }
}

function loop(opts: { queue: Queue; queueName: string; redis: Awaited<ReturnType<typeof redisFor>>; registry: FleetRegistry; provider: WorkerProvider; name: string; leaseMs?: number; min?: number; max?: number; reapGraceSeconds?: number }) {
  return new AutoscalerLoop({
    redis: opts.redis, queue: opts.queue, queueName: opts.queueName, registry: opts.registry, provider: opts.provider,
    policy: policyConfig({ min: opts.min ?? 0, max: opts.max ?? 5, scaleInWindowSeconds: 0, bootSeconds: 5 }),
    intervalMs: 100, leaseMs: opts.leaseMs ?? 1500, waitTargetSeconds: 60,
    renderPrior: { meanSeconds: 10, stddevSeconds: 5 }, bootTimeoutSeconds: 120, reapGraceSeconds: opts.reapGraceSeconds,
    log, name: opts.name, metrics: createAutoscalerMetrics('fake', { defaultMetrics: false }),
  });
}

function openQueue(name: string) {
  const queue = new Queue(name, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
  onCleanup(() => queue.close());
  return queue;
}

test('two autoscalers: exactly one acts; when it dies the other takes over within a lease period and carries on', { timeout: 30_000 }, async () => {
  const queueName = uniqueQueue('as-lead');
  const queue = openQueue(queueName);
  const redis = await redisFor(queueName);
  await queue.addBulk(Array.from({ length: 4 }, (_, i) => ({ name: 'render', data: { i } })));
  const fleet = new FakeFleet();
  const registry = new FakeRegistry();
  const leaseMs = 1500;
  const a = loop({ queue, queueName, redis, registry, provider: fleet.provider('a'), name: 'a', leaseMs });
  const b = loop({ queue, queueName, redis, registry, provider: fleet.provider('b'), name: 'b', leaseMs });
  onCleanup(() => a.stop());
  onCleanup(() => b.stop());
  a.start();
  b.start();

  await until('a launch', () => fleet.launches.length > 0, 5_000);
  await sleep(600); // several rounds of both
  const leaders = [a, b].filter((l) => l.isLeader());
  assert.equal(leaders.length, 1, 'exactly one replica leads');
  const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
  const leaderName = leader === a ? 'a' : 'b';
  assert.ok(fleet.launches.every((l) => l.by === leaderName), `only the leader launched: ${JSON.stringify(fleet.launches)}`);
  const launchedBefore = fleet.instances.size;
  assert.ok(launchedBefore >= 1);
  // Launched but not registered: both replicas' view is the same booting fleet, so nobody launches twice.
  assert.equal(fleet.launches.length, 1, 'one launch for the backlog, not one per round');
  assert.equal((await readScaling(redis, queueName))?.leader, leaderName);

  // A crash: the leader stops without releasing the lease.
  const crashedAt = Date.now();
  await leader.stop({ release: false });
  await until('the standby leads', () => standby.isLeader(), leaseMs + 1_000, 10);
  const takeover = Date.now() - crashedAt;
  assert.ok(takeover <= leaseMs + 400, `took over in ${takeover} ms (lease ${leaseMs} ms)`);
  await until('the new leader publishes', async () => (await readScaling(redis, queueName))?.leader === (leader === a ? 'b' : 'a'), 2_000);
  // It carried on from the stored memory and the provider's list: nothing was launched again.
  assert.equal(fleet.instances.size, launchedBefore);
  assert.equal(fleet.launches.length, 1);
  const state = JSON.parse((await redis.get(autoscalerKeys(queueName).state))!);
  assert.equal(state.memory.desired, launchedBefore);

  // A clean stop hands the lease over at once.
  await standby.stop();
  assert.equal(await redis.exists(autoscalerKeys(queueName).leader), 0);
});

test('scale-in drains only idle workers, and terminates them once they have left the registry', { timeout: 20_000 }, async () => {
  const queueName = uniqueQueue('as-in');
  const queue = openQueue(queueName);
  const redis = await redisFor(queueName);
  const fleet = new FakeFleet();
  const provider = fleet.provider('a');
  const registry = new FakeRegistry();
  await provider.launch(4);
  const now = Date.now();
  for (const [id, state] of [['w1', 'busy'], ['w2', 'idle'], ['w3', 'busy'], ['w4', 'idle']] as const)
    registry.workers.set(id, { id, state, startedAt: now });
  // One job running per busy worker; nothing waiting and no arrivals: the need is 0, but busy workers stay.
  const l = loop({ queue, queueName, redis, registry, provider, name: 'a', reapGraceSeconds: 0 });
  onCleanup(() => l.stop());
  assert.equal(await l.lease.attempt().then((r) => r.leader), true);
  const first = (await l.tick())!;
  assert.equal(first.decision.desired, 0);
  assert.deepEqual(first.drained.sort(), ['w2', 'w4']);
  assert.deepEqual(registry.drainRequests.sort(), ['w2', 'w4'], 'never a busy one');

  // The drained ones finish, deregister and exit; their instances are reaped.
  registry.workers.delete('w2');
  registry.workers.delete('w4');
  const second = (await l.tick())!;
  assert.deepEqual(second.reaped.sort(), ['w2', 'w4']);
  assert.deepEqual(fleet.terminated.sort(), ['w2', 'w4']);
  assert.deepEqual([...fleet.instances.keys()].sort(), ['w1', 'w3']);
  // The busy ones finish their jobs, become idle, and are drained in turn.
  registry.workers.get('w1')!.state = 'idle';
  const third = (await l.tick())!;
  assert.deepEqual(third.drained, ['w1']);
  assert.deepEqual(registry.drainRequests.sort(), ['w1', 'w2', 'w4']);
});

test('a manual floor (`vgen workers scale n --for d`) holds the fleet up until it expires', { timeout: 10_000 }, async () => {
  const queueName = uniqueQueue('as-floor');
  const queue = openQueue(queueName);
  const redis = await redisFor(queueName);
  const fleet = new FakeFleet();
  const l = loop({ queue, queueName, redis, registry: new FakeRegistry(), provider: fleet.provider('a'), name: 'a', max: 3 });
  onCleanup(() => l.stop());
  assert.equal((await l.lease.attempt()).leader, true);
  assert.equal((await l.tick())!.decision.desired, 0, 'an empty queue wants nothing');
  await setManualFloor(redis, queueName, 5, 1);
  const held = (await l.tick())!;
  assert.deepEqual([held.decision.desired, held.decision.reason, held.launched.length], [3, 'manual_floor', 3], 'the floor, within max');
  await sleep(1_100);
  const after = (await l.tick())!;
  assert.equal(after.decision.desired, 0, 'expired: back to the need');
  assert.equal(after.decision.reason, 'scale_in');
});

/** Process ids of the `vgen worker` children of a process. */
function workerChildren(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n').filter((l) => / worker$/.test(l.trim())).map((l) => Number(l.trim().split(/\s+/)[0]));
  } catch {
    return []; // ps exits 1 when there are none
  }
}

test('vgen up --min-workers 0 --max-workers 3 scales 0 → 3 under a backlog and back to 0 when idle', { timeout: 90_000 }, async () => {
  const dataDir = tempDir();
  const port = await freePort();
  const queueName = uniqueQueue('as-up');
  const env = {
    ...process.env, QUEUE_NAME: queueName, LOG_LEVEL: 'warn', JWT_SECRET: '', DATABASE_URL: '',
    AUTOSCALER_INTERVAL_SECONDS: '1', X264_PRESET: 'ultrafast',
  };
  const up = spawn(process.execPath, ['bin/vgen.js', 'up', '--port', String(port), '--data-dir', dataDir, '--min-workers', '0', '--max-workers', '3', '--scale-in-after', '5'], { env });
  onCleanup(() => void up.kill('SIGKILL'));
  let out = '';
  up.stdout.on('data', (d) => (out += d));
  up.stderr.on('data', (d) => (out += d));
  await until('vgen up', () => {
    if (up.exitCode !== null) throw new Error(`vgen up exited: ${out}`);
    return /Press Ctrl-C/.test(out);
  }, 60_000);
  assert.match(out, /0–3 workers \(autoscaled\)/);

  const redis = await redisFor(queueName);
  const registry = createRegistry(redis, { queueName });
  await sleep(1_500);
  assert.equal((await registry.list()).length, 0, 'no worker while the queue is empty');
  assert.deepEqual(workerChildren(up.pid!), []);

  // A backlog: six small renders through the API.
  const { readFileSync } = await import('node:fs');
  const token = readFileSync(`${dataDir}/token`, 'utf8').trim();
  const api = `http://127.0.0.1:${port}`;
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await fetch(`${api}/v1/videos`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(smallSpec({ scenes: [{ duration: 1, background: { color: '#203040' }, caption: { text: `n${i}` } }], audio: undefined })),
    });
    const body = await res.text();
    assert.ok(res.ok, body);
    ids.push((JSON.parse(body) as { id: string }).id);
  }
  let most = 0;
  await until('3 workers registered', async () => {
    most = Math.max(most, workerChildren(up.pid!).length);
    return (await registry.list()).length === 3;
  }, 30_000, 200);
  assert.equal(workerChildren(up.pid!).length, 3);
  const scaling = await readScaling(redis, queueName);
  assert.equal(scaling?.desiredWorkers, 3);

  await until('every video rendered', async () => {
    most = Math.max(most, workerChildren(up.pid!).length);
    const states = await Promise.all(ids.map(async (id) => {
      const r = await fetch(`${api}/v1/videos/${id}`, { headers: { authorization: `Bearer ${token}` } });
      return ((await r.json()) as { status: string }).status;
    }));
    assert.ok(!states.includes('failed'), states.join());
    return states.every((s) => s === 'succeeded');
  }, 45_000, 300);
  assert.equal(most, 3, 'never more than --max-workers');

  // Idle: after the 5 s window the workers drain, deregister and exit.
  await until('back to 0 workers', async () => (await registry.list()).length === 0 && workerChildren(up.pid!).length === 0, 30_000, 250);
  const idle = await readScaling(redis, queueName);
  assert.equal(idle?.desiredWorkers, 0);

  up.kill('SIGINT');
  assert.equal(await new Promise((resolve) => up.once('exit', resolve)), 0);
});
