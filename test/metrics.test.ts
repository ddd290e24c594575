// The metric catalogue (docs/operations.md, "Metrics") against a real small
// cluster: two API replicas, a worker, Redis and Postgres. Each catalogue
// metric appears on the right role's /metrics after a workload; every label
// value comes from its bounded set and no id appears anywhere; the queue
// metrics come from exactly one process; GET /v1/ops/prometheus-targets lists
// every role of a `vgen up` system and drops a worker that exits; /metrics
// answers quickly while Redis is paused.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis as IORedis } from 'ioredis';
import { Registry } from 'prom-client';
import { startApi, type RunningApi } from '../api/server.js';
import { AutoscalerLoop, type FleetWorker } from '../autoscaler/loop.js';
import { startAutoscaler } from '../autoscaler/main.js';
import { createAutoscalerMetrics } from '../autoscaler/metrics.js';
import { policyConfig } from '../autoscaler/policy.js';
import { Ec2Provider, ec2OptionsFromEnv } from '../autoscaler/providers/ec2.js';
import type { WorkerProvider } from '../autoscaler/providers/types.js';
import { targetGroups, parseMetricsUrl } from '../api/prometheus-targets.js';
import { ConfigError } from '../engine/config.js';
import { createLogger } from '../engine/log.js';
import { VgenClient } from '../cli/client.js';
import { up, type RunningSystem } from '../cli/up.js';
import { RENDER_ERRORS } from '../engine/errors.js';
import { PARK_DELAY_MS, QUEUE_PREFIX } from '../engine/queue.js';
import { registerQueueMetrics } from '../engine/queue-metrics.js';
import { connectRedis, whenReady } from '../engine/redis.js';
import { startWorker, type RunningWorker } from '../worker/main.js';
import { until } from './lifecycle-helpers.js';
import { configFrom, onCleanup, ownRedis, registerUser, runCleanups, smallSpec, tempDir, testEnv, uniqueQueue, REDIS_URL } from './helpers.js';
import { TEMPLATE_NAMES } from '../templates/index.js';

after(runCleanups);

// ── Reading the exposition format ─────────────────────────────────────────────

interface Sample { name: string; labels: Record<string, string>; value: number }

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of m[2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const metricsText = async (url: string) => {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.text();
};
const samples = async (url: string) => parse(await metricsText(url));
const find = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
  s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
const total = (s: Sample[], name: string, labels: Record<string, string> = {}) => find(s, name, labels).reduce((a, x) => a + x.value, 0);

// Every label of every vgen_ metric of the catalogue, with the values it may take.
const STAGES = ['queue_wait', 'download', 'render', 'upload'];
const ALLOWED: Record<string, Record<string, (v: string) => boolean>> = {
  vgen_http_request_duration_seconds: {
    method: (v) => /^[A-Z]+$/.test(v),
    route: (v) => v === 'unmatched' || /^\/[A-Za-z0-9_/:.*-]*$/.test(v),
    status_class: (v) => /^[1-5]xx$/.test(v),
  },
  vgen_submissions_total: { template: (v) => v === 'none' || TEMPLATE_NAMES.includes(v), outcome: (v) => ['accepted', 'replayed', 'invalid', 'rate_limited', 'quota_exceeded', 'unavailable'].includes(v) },
  vgen_sse_connections: {},
  vgen_rate_limit_refusals_total: { limit: (v) => ['auth', 'submit', 'active_videos'].includes(v) },
  vgen_videos_settled_total: { outcome: (v) => ['succeeded', 'failed', 'canceled'].includes(v) },
  vgen_webhook_deliveries_total: { outcome: (v) => ['delivered', 'failed'].includes(v) },
  vgen_video_turnaround_seconds: { outcome: (v) => v === 'succeeded' || v === 'failed' },
  vgen_job_stage_duration_seconds: { stage: (v) => STAGES.includes(v), outcome: (v) => v === 'ok' || v === 'error' },
  vgen_render_realtime_factor: {},
  vgen_uploaded_bytes_total: {},
  vgen_job_failures_total: { reason: (v) => v in RENDER_ERRORS },
  vgen_worker_busy: {},
  vgen_render_cache_lookups_total: { result: (v) => v === 'hit' || v === 'miss' },
  vgen_spot_interruptions_total: { kind: (v) => v === 'termination' || v === 'rebalance' },
  vgen_queue_jobs: { state: (v) => ['waiting', 'active', 'delayed', 'failed', 'completed'].includes(v), lane: (v) => v === 'operator' || v === 'user' },
  vgen_queue_oldest_waiting_seconds: {},
  vgen_queue_completed_total: {},
  vgen_queue_failed_total: {},
  vgen_redis_maxmemory_policy_ok: {},
  vgen_fleet_cost_per_hour_dollars: {},
  vgen_autoscaler_spot_interruptions_total: { kind: (v) => v === 'termination' || v === 'rebalance' },
};

/** No id anywhere, `role` on every series, and every catalogue label within its set. */
function checkLabels(text: string, role: string) {
  assert.doesNotMatch(text, /vid_|usr_|vgk_/, `no id in ${role}'s /metrics`);
  for (const s of parse(text)) {
    assert.equal(s.labels.role, role, `${s.name} carries role="${role}"`);
    const base = s.name.replace(/_(bucket|sum|count)$/, '');
    const allowed = ALLOWED[base] ?? ALLOWED[s.name];
    if (!allowed) continue;
    for (const [k, v] of Object.entries(s.labels)) {
      if (k === 'role' || k === 'le' || (k === 'provider' && role === 'autoscaler')) continue;
      assert.ok(allowed[k], `${s.name} has no label ${k}`);
      assert.ok(allowed[k]!(v), `${s.name}{${k}="${v}"} is outside its set`);
    }
  }
}

const HELLO = smallSpec();
const EC2_ENV = { EC2_LAUNCH_TEMPLATE: 'lt-1', EC2_INSTANCE_TYPES: 'c7i.xlarge', EC2_SUBNETS: 'subnet-1' };

// ── A cluster of two API replicas and one worker ──────────────────────────────

describe('metrics of a running cluster', () => {
  let env: Record<string, string>;
  let a: RunningApi;
  let b: RunningApi;
  let worker: RunningWorker;

  before(async () => {
    env = await testEnv();
    a = await startApi(configFrom(env));
    onCleanup(() => a.close());
    // Replica B counts quotas and sign-in attempts tightly; both share one Redis store.
    b = await startApi(configFrom({
      ...env, USER_SUBMITS_PER_MINUTE: '3', USER_MAX_ACTIVE_VIDEOS: '1', AUTH_RATE_LIMIT_PER_ACCOUNT: '2',
    }));
    onCleanup(() => b.close());
    worker = await startWorker(configFrom(env));
    onCleanup(() => worker.close());
    assert.match(worker.metricsUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  });

  test('the queue metrics come from exactly one API replica', async () => {
    const exporters = await until('one replica exporting the queue metrics', async () => {
      const seen = [];
      for (const api of [a, b]) if (find(await samples(`${api.url}/metrics`), 'vgen_queue_jobs').length > 0) seen.push(api);
      return seen.length > 0 && seen;
    }, 20_000, 200);
    assert.equal(exporters.length, 1);
    // It stays one across scrapes, and the other shows none of the four.
    for (let i = 0; i < 3; i++) {
      const [sa, sb] = [await samples(`${a.url}/metrics`), await samples(`${b.url}/metrics`)];
      for (const name of ['vgen_queue_jobs', 'vgen_queue_oldest_waiting_seconds', 'vgen_queue_completed_total', 'vgen_queue_failed_total', 'vgen_redis_maxmemory_policy_ok']) {
        assert.equal([sa, sb].filter((s) => find(s, name).length > 0).length, 1, name);
      }
      await sleep(200);
    }
    const s = await samples(`${exporters[0]!.url}/metrics`);
    for (const state of ['waiting', 'active', 'delayed', 'failed', 'completed'])
      for (const lane of ['operator', 'user']) assert.equal(find(s, 'vgen_queue_jobs', { state, lane }).length, 1, `${state}/${lane}`);
  });

  test('after a workload, each catalogue metric is on its role\'s /metrics, with bounded labels and no ids', async () => {
    // Successes, one failure (a missing asset), a replay, a bad spec, a cancel, a live stream.
    const user = await registerUser(a.url);
    const client = new VgenClient(a.url, user.token);
    const post = (base: string, token: string, body: unknown, headers: Record<string, string> = {}) => fetch(`${base}/v1/videos`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
    });
    const first = await post(a.url, user.token, HELLO, { 'idempotency-key': 'k1' });
    assert.equal(first.status, 202);
    const { id } = (await first.json()) as { id: string };
    const stream = await fetch(`${a.url}/v1/videos/${id}/events`, { headers: { authorization: `Bearer ${user.token}` } });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    await reader.read();
    const during = await samples(`${a.url}/metrics`);
    assert.ok(total(during, 'vgen_sse_connections') >= 1, 'an open stream is counted');
    assert.equal((await post(a.url, user.token, HELLO, { 'idempotency-key': 'k1' })).status, 202);
    assert.equal((await post(a.url, user.token, { ...HELLO, scenes: [] })).status, 400);
    const broken = await post(a.url, user.token, smallSpec({ scenes: [{ duration: 1, background: { image: 'assets/no-such-file.jpg' } }] }));
    assert.equal(broken.status, 202);
    const brokenId = ((await broken.json()) as { id: string }).id;
    assert.equal((await client.waitFor(id, () => {}, 200)).status, 'succeeded');
    assert.equal((await client.waitFor(brokenId, () => {}, 200)).status, 'failed');
    await until('the stream ended and was uncounted', async () => total(await samples(`${a.url}/metrics`), 'vgen_sse_connections') === 0, 10_000, 100);
    await reader.cancel().catch(() => {});

    // Quotas and rate limits, on replica B: one active video, three submits a minute, two sign-ins per account.
    const limited = await registerUser(b.url);
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await post(b.url, limited.token, HELLO)).status);
    assert.deepEqual(codes, [202, 429, 429, 429]);
    const canceled = await fetch(`${b.url}/v1/videos`, { headers: { authorization: `Bearer ${limited.token}` } });
    const [mine] = ((await canceled.json()) as { data: { id: string }[] }).data;
    const cancel = await fetch(`${b.url}/v1/videos/${mine!.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${limited.token}` } });
    assert.ok([200, 409].includes(cancel.status), `cancel: ${cancel.status}`);
    for (let i = 0; i < 3; i++) {
      await fetch(`${b.url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: limited.email, password: 'wrong password!' }) });
    }
    assert.equal((await fetch(`${a.url}/no/such/route`)).status, 404);

    // ── API ──
    const [ta, tb] = [await metricsText(`${a.url}/metrics`), await metricsText(`${b.url}/metrics`)];
    checkLabels(ta, 'api');
    checkLabels(tb, 'api');
    const sa = parse(ta);
    const sb = parse(tb);
    const both = [...sa, ...sb];
    assert.ok(find(sa, 'vgen_http_request_duration_seconds_count', { method: 'POST', route: '/v1/videos', status_class: '2xx' }).length === 1);
    assert.ok(find(sa, 'vgen_http_request_duration_seconds_count', { route: 'unmatched', status_class: '4xx' }).length === 1);
    assert.doesNotMatch(ta, /status_code=/);
    assert.ok(total(sa, 'vgen_submissions_total', { template: 'none', outcome: 'accepted' }) >= 2);
    assert.equal(total(sa, 'vgen_submissions_total', { outcome: 'replayed' }), 1);
    assert.equal(total(sa, 'vgen_submissions_total', { outcome: 'invalid' }), 1);
    assert.equal(find(sa, 'vgen_submissions_total', { outcome: 'unavailable' }).length, 1, 'every outcome is there from the start');
    assert.equal(total(sb, 'vgen_submissions_total', { outcome: 'quota_exceeded' }) + total(sb, 'vgen_submissions_total', { outcome: 'rate_limited' }), 3);
    assert.ok(total(sb, 'vgen_submissions_total', { outcome: 'quota_exceeded' }) >= 1);
    assert.ok(total(sb, 'vgen_submissions_total', { outcome: 'rate_limited' }) >= 1);
    assert.ok(total(sb, 'vgen_rate_limit_refusals_total', { limit: 'active_videos' }) >= 1);
    assert.ok(total(sb, 'vgen_rate_limit_refusals_total', { limit: 'submit' }) >= 1);
    assert.ok(total(sb, 'vgen_rate_limit_refusals_total', { limit: 'auth' }) >= 1);
    assert.ok(total(both, 'vgen_videos_settled_total', { outcome: 'succeeded' }) >= 1);
    assert.ok(total(both, 'vgen_videos_settled_total', { outcome: 'failed' }) >= 1);
    if (cancel.status === 200) assert.equal(total(sb, 'vgen_videos_settled_total', { outcome: 'canceled' }), 1);
    assert.equal(find(sa, 'vgen_sse_connections').length, 1);
    assert.equal(find(sa, 'vgen_webhook_deliveries_total').length, 2);

    // ── Worker ──
    const tw = await metricsText(worker.metricsUrl!);
    checkLabels(tw, 'worker');
    const sw = parse(tw);
    for (const stage of STAGES) assert.ok(total(sw, 'vgen_job_stage_duration_seconds_count', { stage, outcome: 'ok' }) >= 1, `stage ${stage}`);
    assert.ok(total(sw, 'vgen_job_stage_duration_seconds_count', { stage: 'download', outcome: 'error' }) >= 1, 'the missing asset failed its download');
    const bucket = find(sw, 'vgen_job_stage_duration_seconds_bucket', { stage: 'render', outcome: 'ok' }).map((x) => x.labels.le);
    assert.deepEqual(bucket, ['0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '60', '120', '300', '600', '1200', '1800', '3600', '+Inf']);
    assert.ok(total(sw, 'vgen_render_realtime_factor_count') >= 1);
    assert.ok(total(sw, 'vgen_render_realtime_factor_sum') > 0);
    assert.ok(total(sw, 'vgen_uploaded_bytes_total') > 1000);
    assert.ok(total(sw, 'vgen_job_failures_total', { reason: 'asset_unavailable' }) >= 1);
    assert.equal(find(sw, 'vgen_job_failures_total').length, Object.keys(RENDER_ERRORS).length);
    assert.equal(total(sw, 'vgen_worker_busy'), 0);
    assert.equal(find(sw, 'vgen_render_cache_lookups_total').length, 2);
    assert.equal(find(sw, 'vgen_spot_interruptions_total').length, 2);
    assert.equal(find(sw, 'vgen_http_request_duration_seconds_count').length, 0, 'no API metric on a worker');
    assert.equal(find(sw, 'vgen_queue_jobs').length, 0, 'workers never export the queue');

    // ── Queue (the one exporter) ──
    const exporterUrl = `${find(sa, 'vgen_queue_jobs').length > 0 ? a.url : b.url}/metrics`;
    // Finished jobs are counted once a second old (a job finishing as the script reads is never skipped).
    const exporter = await until('completions counted since export began', async () => {
      const s = await samples(exporterUrl);
      return total(s, 'vgen_queue_completed_total') >= 1 && total(s, 'vgen_queue_failed_total') >= 1 && s;
    }, 10_000, 200);
    assert.ok(total(exporter, 'vgen_queue_jobs', { state: 'completed' }) >= 1);
    assert.ok(total(exporter, 'vgen_queue_jobs', { state: 'failed' }) >= 1);
    assert.ok(find(exporter, 'vgen_queue_oldest_waiting_seconds').length === 1);
    // What the test Redis really runs with (scripts/setup.sh starts it with noeviction, as BullMQ requires).
    const probe = new IORedis(REDIS_URL);
    const [, policy] = (await probe.config('GET', 'maxmemory-policy')) as string[];
    await probe.quit();
    assert.equal(total(exporter, 'vgen_redis_maxmemory_policy_ok'), policy === 'noeviction' ? 1 : 0);

    // A worker busy with a job says so.
    const slow = await post(a.url, user.token, smallSpec({ output: { width: 480, height: 270, fps: 25 }, scenes: [{ duration: 8, background: { image: 'assets/photo.jpg' } }] }));
    assert.equal(slow.status, 202);
    await until('the worker busy', async () => total(await samples(worker.metricsUrl!), 'vgen_worker_busy') === 1, 20_000, 100);
    await client.waitFor(((await slow.json()) as { id: string }).id, () => {}, 200);
    assert.equal(total(await samples(worker.metricsUrl!), 'vgen_worker_busy'), 0);
  });
});

// ── The queue reader against jobs placed by hand ──────────────────────────────

describe('queue metrics', () => {
  test('count jobs by state and lane, the oldest wait, and throughput; parked jobs are left out', async () => {
    const queueName = uniqueQueue('qm');
    const redis = connectRedis(REDIS_URL, 'producer');
    await whenReady(redis);
    onCleanup(() => void redis.disconnect());
    const queue = new Queue(queueName, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
    onCleanup(() => queue.close());
    const registry = new Registry();
    let exporting = true;
    const qm = registerQueueMetrics({ registry, redis, queue, isExporter: () => exporting, lagMs: 0 });
    assert.ok(await qm.read(), 'a first read starts the throughput count');

    await queue.add('render', {}, { jobId: 'op1', priority: 1 });
    await queue.add('render', {}, { jobId: 'u1', priority: 2 });
    await queue.add('render', {}, { jobId: 'u2', priority: 7 });
    await queue.add('render', {}, { jobId: 'plain' }); // the wait list
    await queue.add('render', {}, { jobId: 'retry', delay: 60_000, priority: 1 });
    await queue.add('render', {}, { jobId: 'parked', delay: PARK_DELAY_MS, priority: 3 });
    await sleep(1100);
    const snap = (await qm.read())!;
    assert.deepEqual(snap.jobs.waiting, { operator: 1, user: 3 });
    assert.deepEqual(snap.jobs.delayed, { operator: 1, user: 0 }, 'the parked job is not counted');
    assert.deepEqual(snap.jobs.active, { operator: 0, user: 0 });
    assert.ok(snap.oldestWaitingAt !== null && Date.now() - snap.oldestWaitingAt >= 1000);

    // The four waiting jobs run: three complete, one fails for good.
    const { Worker } = await import('bullmq');
    const w = new Worker(queueName, async (job) => {
      if (job.id === 'u2') throw new Error('asset_invalid: no');
      return {};
    }, { connection: { url: REDIS_URL, maxRetriesPerRequest: null }, prefix: QUEUE_PREFIX, autorun: false });
    onCleanup(() => w.close());
    const done = new Promise<void>((resolve) => { let n = 0; w.on('completed', () => ++n === 4 && resolve()); w.on('failed', () => ++n === 4 && resolve()); });
    void w.run();
    await done;
    await w.close();
    await sleep(50);
    await registry.metrics(); // a scrape counts what finished since the last one
    const text = await registry.metrics();
    const s = parse(text);
    assert.equal(total(s, 'vgen_queue_completed_total'), 3);
    assert.equal(total(s, 'vgen_queue_failed_total'), 1);
    assert.equal(total(s, 'vgen_queue_jobs', { state: 'completed', lane: 'operator' }), 1);
    assert.equal(total(s, 'vgen_queue_jobs', { state: 'completed', lane: 'user' }), 2);
    assert.equal(total(s, 'vgen_queue_jobs', { state: 'failed', lane: 'user' }), 1);
    assert.equal(total(s, 'vgen_queue_jobs', { state: 'waiting' }), 0);
    assert.equal(total(s, 'vgen_queue_jobs', { state: 'delayed', lane: 'operator' }), 1);
    assert.equal(total(s, 'vgen_queue_oldest_waiting_seconds'), 0);

    exporting = false;
    assert.equal(parse(await registry.metrics()).length, 0, 'not the exporter: no samples at all');
  });

  test('/metrics answers within its bound while Redis is paused, leaving the queue gauges out', async () => {
    const own = await ownRedis();
    const env = await testEnv({ REDIS_URL: own.url });
    const api = await startApi(configFrom(env));
    onCleanup(async () => {
      own.proc.kill('SIGCONT');
      await api.close();
    });
    await until('the API exporting the queue metrics', async () => find(await samples(`${api.url}/metrics`), 'vgen_queue_jobs').length > 0, 20_000, 200);
    own.proc.kill('SIGSTOP');
    try {
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const res = await fetch(`${api.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
        const ms = performance.now() - t0;
        assert.equal(res.status, 200);
        const s = parse(await res.text());
        assert.ok(ms < 2_000, `answered in ${Math.round(ms)} ms`);
        assert.equal(find(s, 'vgen_queue_jobs').length, 0, 'no stale depth while Redis does not answer');
        assert.ok(find(s, 'vgen_http_request_duration_seconds_count').length > 0, 'the rest is there');
      }
    } finally {
      own.proc.kill('SIGCONT');
    }
    await until('the queue gauges back', async () => find(await samples(`${api.url}/metrics`), 'vgen_queue_jobs').length > 0, 20_000, 200);
  });
});

// ── Service discovery under `vgen up` ─────────────────────────────────────────

describe('GET /v1/ops/prometheus-targets', () => {
  let system: RunningSystem;
  type Group = { targets: string[]; labels: Record<string, string> };
  const targets = async (token?: string) => fetch(`${system.api.url}/v1/ops/prometheus-targets`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  before(async () => {
    const env = await testEnv();
    // up() reads the environment, as `vgen up` does.
    const saved = { ...process.env };
    Object.assign(process.env, env);
    onCleanup(() => {
      for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    });
    system = await up({ port: 0, dataDir: tempDir(), minWorkers: 1, maxWorkers: 1 });
    onCleanup(() => system.stop());
  });

  test('lists the API, the autoscaler and the workers, each scrapable, and drops a worker that exits', async () => {
    const groups = await until('every role listed', async () => {
      const res = await targets(system.token);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as Group[];
      const roles = body.map((g) => g.labels.role);
      return roles.includes('api') && roles.includes('autoscaler') && roles.includes('worker') && body;
    }, 30_000, 200);
    const worker = groups.find((g) => g.labels.role === 'worker')!;
    for (const g of groups) {
      assert.equal(g.targets.length, 1);
      assert.match(g.targets[0]!, /^127\.0\.0\.1:\d+$/);
      assert.equal(g.labels.__metrics_path__, '/metrics');
      for (const v of Object.values(g.labels)) assert.equal(typeof v, 'string');
      // Ids only as __meta_ labels, which Prometheus drops after relabelling.
      for (const k of Object.keys(g.labels)) assert.ok(['role', 'provider', '__metrics_path__'].includes(k) || k.startsWith('__meta_vgen_'), k);
      const text = await metricsText(`http://${g.targets[0]}${g.labels.__metrics_path__}`);
      checkLabels(text, g.labels.role!);
    }
    assert.equal(worker.labels.provider, 'local');
    assert.equal(groups.filter((g) => g.labels.role === 'api').length, 1);
    assert.equal(new Set(groups.map((g) => g.targets[0])).size, groups.length, 'every process on its own port');

    // Under an autoscaler, its leader exports the queue metrics and the API does not.
    const auto = groups.find((g) => g.labels.role === 'autoscaler')!;
    await until('the autoscaler exporting the queue', async () => find(await samples(`http://${auto.targets[0]}/metrics`), 'vgen_queue_jobs').length > 0, 20_000, 200);
    assert.equal(find(await samples(`${system.api.url}/metrics`), 'vgen_queue_jobs').length, 0);
    const sAuto = await samples(`http://${auto.targets[0]}/metrics`);
    assert.equal(total(sAuto, 'vgen_fleet_cost_per_hour_dollars'), 0, 'local workers cost nothing');
    assert.equal(find(sAuto, 'vgen_autoscaler_spot_interruptions_total').length, 2);

    // A worker that exits (drained: it finishes, deregisters and exits) leaves the list.
    const id = worker.labels.__meta_vgen_worker_id!;
    const drain = await fetch(`${system.api.url}/v1/ops/workers/drain`, {
      method: 'POST', headers: { authorization: `Bearer ${system.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: [id] }),
    });
    assert.equal(drain.status, 200);
    await until('the drained worker gone from the targets', async () => {
      const body = (await (await targets(system.token)).json()) as Group[];
      return !body.some((g) => g.labels.__meta_vgen_worker_id === id);
    }, 30_000, 200);
    await until('its /metrics gone too', async () => fetch(`http://${worker.targets[0]}/metrics`).then(() => false, () => true), 10_000, 100);
  });

  test('refuses a user token (403) and no token (401)', async () => {
    assert.equal((await targets()).status, 401);
    const user = await registerUser(system.api.url);
    const res = await targets(user.token);
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'forbidden');
    assert.equal((await targets('vgk_not-a-real-key')).status, 401);
  });

  test('a second autoscaler replica stands by: one queue exporter still', async () => {
    const config = configFrom({ ...(process.env as Record<string, string>) });
    const standby = await startAutoscaler(config, { provider: null, defaultMetrics: false });
    onCleanup(() => standby.close({ stopWorkers: false }));
    await sleep(1500);
    const res = await targets(system.token);
    const body = (await res.json()) as Group[];
    const autos = body.filter((g) => g.labels.role === 'autoscaler');
    assert.equal(autos.length, 2);
    let exporting = 0;
    for (const g of [...autos, ...body.filter((x) => x.labels.role === 'api')])
      if (find(await samples(`http://${g.targets[0]}/metrics`), 'vgen_queue_jobs').length > 0) exporting++;
    assert.equal(exporting, 1);
  });
});


// ── The autoscaler's own: spot interruptions seen among workers, fleet cost ───

describe('autoscaler metrics', () => {
  test('counts each worker\'s spot notice once per kind, across rounds and a new leader; prices the fleet', async () => {
    const queueName = uniqueQueue('as-spot');
    const redis = connectRedis(REDIS_URL, 'producer');
    await whenReady(redis);
    onCleanup(() => void redis.disconnect());
    const queue = new Queue(queueName, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
    onCleanup(() => queue.close());
    const workers: FleetWorker[] = [
      { id: 'i-1', state: 'busy', startedAt: Date.now(), spot: 'rebalance' },
      { id: 'i-2', state: 'idle', startedAt: Date.now() },
    ];
    const launchedAt = new Date();
    const provider: WorkerProvider = {
      name: 'ec2',
      launch: async (n) => ({ requested: n, instances: [], shortfall: n, errors: [] }),
      terminate: async () => ({ terminated: [], refused: [] }),
      list: async () => [
        { id: 'i-1', state: 'running', lifecycle: 'spot', instanceType: 'c7i.xlarge', launchedAt },
        { id: 'i-2', state: 'running', lifecycle: 'on-demand', instanceType: 'c7i.xlarge', launchedAt },
        { id: 'i-3', state: 'terminated', lifecycle: 'spot', instanceType: 'c7i.xlarge', launchedAt },
      ],
      hourlyCost: (instances) => new Ec2Provider({
        region: 'us-east-1', cluster: 't', launchTemplate: 'lt-1', launchTemplateVersion: '$Default', instanceTypes: ['c7i.xlarge'], subnets: ['subnet-1'],
        onDemandFallback: true, prices: ec2OptionsFromEnv({ ...EC2_ENV, EC2_SPOT_PRICES: 'c7i.xlarge=0.07', EC2_ON_DEMAND_PRICES: 'c7i.xlarge=0.18' }).prices,
      }).hourlyCost(instances),
    };
    const make = (name: string, metrics = createAutoscalerMetrics('ec2', { defaultMetrics: false })) => Object.assign(new AutoscalerLoop({
      redis, queue, queueName, provider, name, log: createLogger('silent'),
      registry: { list: async () => workers.map((w) => ({ ...w })), requestDrain: async () => false },
      policy: policyConfig({ min: 2, max: 2, scaleInWindowSeconds: 0, bootSeconds: 5 }),
      intervalMs: 60_000, leaseMs: 5_000, waitTargetSeconds: 60, renderPrior: { meanSeconds: 10, stddevSeconds: 5 }, bootTimeoutSeconds: 120,
      metrics,
    }), { metrics });
    const first = make('a');
    assert.ok((await first.lease.attempt()).leader);
    await first.tick();
    await first.tick();
    workers[0]!.spot = 'termination';
    workers[1]!.spot = 'rebalance';
    await first.tick();
    const s1 = parse(await first.metrics.registry.metrics());
    assert.equal(total(s1, 'vgen_autoscaler_spot_interruptions_total', { kind: 'rebalance' }), 2);
    assert.equal(total(s1, 'vgen_autoscaler_spot_interruptions_total', { kind: 'termination' }), 1);
    assert.equal(total(s1, 'vgen_fleet_cost_per_hour_dollars'), 0.25, 'one spot (0.07) and one On-Demand (0.18); the terminated one is free');
    // A new leader carries the memory: nothing is counted twice.
    await first.lease.stop({ release: true });
    const second = make('b');
    assert.ok((await second.lease.attempt()).leader);
    await second.tick();
    const s2 = parse(await second.metrics.registry.metrics());
    assert.equal(total(s2, 'vgen_autoscaler_spot_interruptions_total'), 0);
    await second.lease.stop({ release: true });
  });

  test('bad prices and a bad advertised host are refused, naming the variable', () => {
    assert.throws(() => ec2OptionsFromEnv({ ...EC2_ENV, EC2_SPOT_PRICES: 'c7i.xlarge=abc' }), (e: Error) => e instanceof ConfigError && e.variable === 'EC2_SPOT_PRICES');
    assert.throws(() => ec2OptionsFromEnv({ ...EC2_ENV, EC2_ON_DEMAND_PRICES: 'c7i.xlarge=1,=2' }), (e: Error) => e instanceof ConfigError && e.variable === 'EC2_ON_DEMAND_PRICES');
    for (const bad of ['two words', 'a:1', 'http://x', 'x/y', '-lead', 'a'.repeat(70)])
      assert.throws(() => configFrom({ METRICS_ADVERTISE_HOST: bad }), (e: Error) => e instanceof ConfigError && e.variable === 'METRICS_ADVERTISE_HOST', bad);
    assert.equal(configFrom({ HOST: '0.0.0.0' }).metricsAdvertiseHost, hostname());
    assert.equal(configFrom({ HOST: '::1' }).metricsAdvertiseHost, '[::1]');
    assert.equal(configFrom({ METRICS_ADVERTISE_HOST: '10.1.2.3' }).metricsAdvertiseHost, '10.1.2.3');
  });

  test('target groups skip what a registry record could hold that is no metrics URL', () => {
    for (const bad of ['', 'not a url', 'file:///etc/passwd', 'javascript:alert(1)', 'http://user:pw@h:1/metrics', 'gopher://h:70/'])
      assert.equal(parseMetricsUrl(bad), null, bad);
    assert.deepEqual(parseMetricsUrl('https://h.example:9464/m'), { target: 'h.example:9464', path: '/m', scheme: 'https' });
    const worker = (id: string, metricsUrl?: string) => ({ id, provider: 'local' as const, host: 'h', pid: 1, version: '1', state: 'idle' as const, jobsDone: 0, startedAt: 1, lastHeartbeat: 1, ...(metricsUrl && { metricsUrl }) });
    const groups = targetGroups([worker('w1', 'http://10.0.0.1:9464/metrics'), worker('w2'), worker('w3', 'javascript:x'), worker('w4', 'http://10.0.0.1:9464/metrics')], []);
    assert.deepEqual(groups, [{ targets: ['10.0.0.1:9464'], labels: { role: 'worker', provider: 'local', __meta_vgen_worker_id: 'w1', __metrics_path__: '/metrics' } }]);
  });
});
