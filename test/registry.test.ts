// The worker registry against the real Redis: records, beats, pruning, and
// drain wishes that survive a missed pub/sub message.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectRedis, whenReady } from '../engine/redis.js';
import { createRegistry, HEARTBEAT_TTL_MS, registryKeys, type WorkerRecord } from '../engine/registry.js';
import { onCleanup, REDIS_URL, runCleanups, uniqueName } from './helpers.js';

after(runCleanups);

async function setup() {
  const redis = connectRedis(REDIS_URL, 'worker');
  await whenReady(redis);
  const queueName = uniqueName('reg');
  const keys = registryKeys(queueName);
  onCleanup(async () => {
    const ks = await redis.keys(`{vgen}:${queueName}:*`);
    if (ks.length) await redis.del(...ks);
    redis.disconnect();
  });
  const registry = createRegistry(redis, { queueName });
  onCleanup(() => registry.close());
  return { redis, registry, keys, queueName };
}

const record = (id: string): Omit<WorkerRecord, 'lastHeartbeat' | 'drain'> => ({
  id, provider: 'ec2', instanceId: 'i-0abc', host: 'ip-10-0-0-1', pid: 4242, version: '1.2.3',
  state: 'starting', jobsDone: 0, startedAt: Date.now(), metricsUrl: 'http://10.0.0.1:9100/metrics',
});

test('register, heartbeat, get, list and deregister', async () => {
  const { registry, redis, keys } = await setup();
  await registry.register(record('w1'));
  await registry.register({ ...record('w2'), provider: 'local', instanceId: undefined, metricsUrl: undefined });
  const w1 = await registry.get('w1');
  assert.equal(w1?.state, 'starting');
  assert.equal(w1?.instanceId, 'i-0abc');
  assert.equal(w1?.pid, 4242);
  assert.ok(Math.abs(w1!.lastHeartbeat - Date.now()) < 1000);

  assert.deepEqual(await registry.heartbeat('w1', { state: 'busy', currentJob: 'vid_1', jobsDone: 0 }), {});
  let got = await registry.get('w1');
  assert.equal(got?.state, 'busy');
  assert.equal(got?.currentJob, 'vid_1');
  await registry.heartbeat('w1', { state: 'idle', currentJob: undefined, jobsDone: 1 });
  got = await registry.get('w1');
  assert.equal(got?.state, 'idle');
  assert.equal(got?.currentJob, undefined);
  assert.equal(got?.jobsDone, 1);

  const listed = await registry.list();
  assert.deepEqual(listed.map((w) => w.id).sort(), ['w1', 'w2']);
  assert.equal(listed.find((w) => w.id === 'w2')?.provider, 'local');
  assert.equal(listed.find((w) => w.id === 'w2')?.instanceId, undefined);

  await registry.deregister('w2');
  assert.deepEqual((await registry.list()).map((w) => w.id), ['w1']);
  assert.equal(await registry.get('w2'), null);
  assert.equal(await redis.exists(keys.worker('w2')), 0);
});

test('an unchanged beat is two commands in one round trip', async () => {
  const { registry, redis, queueName } = await setup();
  await registry.register(record('w1'));
  await registry.heartbeat('w1', { state: 'idle', currentJob: undefined, jobsDone: 0 });
  const monitor = await redis.monitor();
  const seen: string[] = [];
  // MONITOR sees every client of the shared Redis: count only commands on this registry's keys.
  monitor.on('monitor', (_t: string, args: string[]) => {
    if (args.slice(1).some((a) => String(a).includes(`{vgen}:${queueName}:`))) seen.push(String(args[0]).toLowerCase());
  });
  await registry.heartbeat('w1', { state: 'idle', currentJob: undefined, jobsDone: 0 });
  await sleep(100);
  monitor.disconnect();
  assert.deepEqual(seen, ['zadd', 'hmget']);
});

test('a worker that stops beating is pruned after the TTL; a pruned worker re-registers at its next beat', async () => {
  const { registry, redis, keys } = await setup();
  await registry.register(record('w1'));
  await registry.register(record('w2'));
  // w2's last beat was longer ago than the TTL (as if it died).
  await redis.zadd(keys.workers, Date.now() - HEARTBEAT_TTL_MS - 1, 'w2');
  assert.equal(await registry.get('w2'), null);
  assert.deepEqual((await registry.list()).map((w) => w.id), ['w1']);
  assert.equal(await redis.exists(keys.worker('w2')), 0, 'its hash is gone');
  assert.equal(await registry.requestDrain('w2'), false, 'no drain for a dead worker');
  assert.equal(await registry.requestDrain('nobody'), false);

  // w2 was only partitioned away: its next beat puts it back, whole.
  await registry.heartbeat('w2', { state: 'busy', currentJob: 'vid_9', jobsDone: 3 });
  const back = await registry.get('w2');
  assert.equal(back?.host, 'ip-10-0-0-1');
  assert.equal(back?.state, 'busy');
  assert.equal(back?.currentJob, 'vid_9');
  assert.equal(back?.jobsDone, 3);
});

test('a drain wish is published, persisted, and returned by the next beat even if pub/sub missed it', async () => {
  const { registry, queueName, redis } = await setup();
  await registry.register(record('w1'));
  await registry.register(record('w2'));

  const got: NonNullable<WorkerRecord['drain']>[] = [];
  const unsubscribe = await registry.onDrain('w1', (d) => got.push(d));
  const before = Date.now();
  assert.equal(await registry.requestDrain('w1', { deadlineMs: 30_000 }), true);
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(20);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.requestedAt >= before);
  assert.ok(Math.abs(got[0]!.deadline! - (got[0]!.requestedAt + 30_000)) < 5);
  // A later request without a deadline keeps the earlier one.
  assert.equal(await registry.requestDrain('w1'), true);
  assert.deepEqual((await registry.get('w1'))?.drain, got[0]);
  await unsubscribe();

  // w2 is not subscribed (its message is lost), and its process restarts its
  // registry client: the beat still carries the wish.
  assert.equal(await registry.requestDrain('w2'), true);
  const fresh = createRegistry(redis, { queueName });
  const beat = await fresh.heartbeat('w2', { state: 'idle' });
  assert.ok(beat.drain?.requestedAt);
  assert.equal(beat.drain?.deadline, undefined);
  assert.equal((await registry.list()).find((w) => w.id === 'w2')?.drain?.requestedAt, beat.drain?.requestedAt);
  // A deadline added later is taken.
  await registry.requestDrain('w2', { deadlineMs: 1000 });
  assert.ok((await fresh.heartbeat('w2', {})).drain?.deadline);
  await fresh.close();
});
