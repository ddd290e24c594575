// No dead panels: the system (`vgen api`, `vgen autoscaler` with the local
// provider and the `vgen worker` children it starts, each on free ports) runs
// a small workload — renders, one failure, some 4xx, sign-in refusals — while
// a real Prometheus, configured from the shipped dashboards/prometheus.yml,
// finds every process through GET /v1/ops/prometheus-targets and loads the
// shipped alert rules. Then every panel expression and every alert rule's
// signal, evaluated through Prometheus's HTTP API, returns at least one series.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { writeOperatorToken } from '../cli/up.js';
import { ALERTS } from '../dashboards/src/alerts.js';
import { expressions } from '../dashboards/src/index.js';
import { openDb } from '../engine/db.js';
import { until } from './lifecycle-helpers.js';
import { freePort, onCleanup, registerUser, runCleanups, smallSpec, tempDir, testEnv } from './helpers.js';

after(runCleanups);

const hasPrometheus = (() => {
  try {
    execFileSync('prometheus', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A long-running child, killed at cleanup; its output kept for diagnosis. */
function start(cmd: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => void (out = (out + d).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    child.kill('SIGKILL');
  });
  return { child, output: () => out };
}

/** The shipped prometheus.yml, pointed at this test's API and token, scraping every second. */
function prometheusConfig(shipped: string, apiUrl: string, tokenFile: string): string {
  const replace = (text: string, from: RegExp, to: string) => {
    assert.match(text, from, `dashboards/prometheus.yml has ${from}`);
    return text.replace(from, to);
  };
  let c = shipped;
  c = replace(c, /scrape_interval: \S+/, 'scrape_interval: 1s');
  c = replace(c, /evaluation_interval: \S+/, 'evaluation_interval: 1s');
  c = replace(c, /url: http:\/\/api:3000\/v1\/ops\/prometheus-targets/, `url: ${apiUrl}/v1/ops/prometheus-targets`);
  c = replace(c, /refresh_interval: 30s/, 'refresh_interval: 1s');
  c = replace(c, /credentials_file: \S+/, `credentials_file: ${tokenFile}`);
  return c;
}

test('every panel and alert rule returns series from a real Prometheus scraping the running system', {
  skip: hasPrometheus ? false : 'prometheus is not installed (Debian package `prometheus`; `bash scripts/setup.sh --test` installs it)',
  timeout: 240_000,
}, async () => {
  const env = await testEnv({
    RENDER_ATTEMPTS: '1',
    X264_PRESET: 'ultrafast',
    HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    AUTOSCALER_METRICS_PORT: '0',
    AUTOSCALER_PROVIDER: 'local',
    AUTOSCALER_MIN_WORKERS: '1',
    AUTOSCALER_MAX_WORKERS: '2',
    AUTOSCALER_INTERVAL_SECONDS: '1',
    // A few wrong passwords for one email are refused: the `auth` limit's series moves.
    AUTH_RATE_LIMIT_PER_ACCOUNT: '2',
  });
  const port = await freePort();
  const procEnv = { ...process.env, ...env, PORT: String(port) };
  const apiUrl = `http://127.0.0.1:${port}`;

  const api = start(process.execPath, ['bin/vgen.js', 'api'], procEnv);
  await until('the API is ready', async () => {
    if (api.child.exitCode !== null) throw new Error(`vgen api exited: ${api.output()}`);
    return fetch(`${apiUrl}/readyz`).then((r) => r.ok, () => false);
  }, 60_000, 100);
  const autoscaler = start(process.execPath, ['bin/vgen.js', 'autoscaler'], procEnv);

  // An operator key for Prometheus, as `vgen operator-token` writes it.
  const dir = tempDir('vgen-prom-');
  const db = await openDb({ databaseUrl: env.DATABASE_URL, dataDir: env.DATA_DIR! });
  await writeOperatorToken(db, dir).finally(() => db.close());

  const promPort = await freePort();
  const promUrl = `http://127.0.0.1:${promPort}`;
  copyFileSync(new URL('../dashboards/alerts.yml', import.meta.url), join(dir, 'alerts.yml'));
  writeFileSync(join(dir, 'prometheus.yml'), prometheusConfig(readFileSync(new URL('../dashboards/prometheus.yml', import.meta.url), 'utf8'), apiUrl, join(dir, 'token')));
  const prom = start('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], process.env);
  await until('prometheus is ready', async () => {
    if (prom.child.exitCode !== null) throw new Error(`prometheus exited: ${prom.output()}`);
    return fetch(`${promUrl}/-/ready`).then((r) => r.ok, () => false);
  }, 60_000, 200);

  // Prometheus finds every role through the API, and scrapes each.
  const targets = async () =>
    ((await (await fetch(`${promUrl}/api/v1/targets?state=active`)).json()) as { data: { activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] } }).data.activeTargets;
  await until('api, autoscaler and worker targets up', async () => {
    if (autoscaler.child.exitCode !== null) throw new Error(`vgen autoscaler exited: ${autoscaler.output()}`);
    const up = new Set((await targets()).filter((t) => t.health === 'up').map((t) => t.labels.role));
    return up.has('api') && up.has('autoscaler') && up.has('worker');
  }, 60_000, 500);

  // The workload: renders (one fails), 4xx answers, refused sign-ins, an event stream.
  const user = await registerUser(apiUrl);
  const auth = { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' };
  const submit = async (spec: unknown) => {
    const res = await fetch(`${apiUrl}/v1/videos`, { method: 'POST', headers: auth, body: JSON.stringify(spec) });
    return { status: res.status, body: (await res.json()) as { id: string } };
  };
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await submit(smallSpec({ scenes: [{ duration: 1, background: { color: '#203040' }, caption: { text: `n${i}` } }] }));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  const bad = await submit(smallSpec({ audio: { src: 'https://assets.invalid/missing.mp3' } }));
  assert.equal(bad.status, 202);
  ids.push(bad.body.id);
  assert.equal((await submit({ version: 1, scenes: 'no' })).status, 400);
  assert.equal((await fetch(`${apiUrl}/v1/videos/vid_nope`, { headers: auth })).status, 404);
  assert.equal((await fetch(`${apiUrl}/v1/videos`, { method: 'POST' })).status, 401);
  assert.equal((await fetch(`${apiUrl}/no/such/route`)).status, 404);
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${apiUrl}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: user.email, password: 'wrong password!' }) });
    statuses.push(res.status);
  }
  assert.ok(statuses.includes(429), `sign-ins refused: ${statuses}`);
  const events = new AbortController();
  const stream = await fetch(`${apiUrl}/v1/videos/${ids[0]}/events`, { headers: auth, signal: events.signal });
  assert.equal(stream.status, 200);
  events.abort();

  const settled: Record<string, string> = {};
  await until('every video settled', async () => {
    for (const id of ids) {
      const v = (await (await fetch(`${apiUrl}/v1/videos/${id}`, { headers: auth })).json()) as { status: string };
      settled[id] = v.status;
    }
    return Object.values(settled).every((s) => s === 'succeeded' || s === 'failed');
  }, 120_000, 500);
  assert.deepEqual(Object.values(settled).sort(), ['failed', 'succeeded', 'succeeded', 'succeeded']);

  // Let Prometheus scrape the settled state a few times (rate() needs two samples after it).
  const query = async (expr: string) => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data!.result;
  };
  await until('prometheus has the completed renders', async () => (await query('sum(vgen_queue_completed_total) >= 3')).length > 0, 30_000, 500);
  await sleep(3_000);

  // Every panel's expression, and each alert's signal, returns a series; each alert expression evaluates.
  const dead: string[] = [];
  for (const { where, expr } of expressions()) {
    const concrete = expr.replaceAll('$__rate_interval', '1m');
    if (where.startsWith('alerts.yml') && !where.endsWith('(signal)')) {
      await query(concrete); // throws on an evaluation error; firing or not depends on the state
      continue;
    }
    if ((await query(concrete)).length === 0) dead.push(`${where}: ${concrete}`);
  }
  // The rule groups loaded and evaluated without error.
  const rules = ((await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }).data.groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.map((r) => r.name).sort(), ALERTS.map((a) => a.alert).sort());
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  assert.deepEqual(dead, [], `expressions that return no series:\n${dead.join('\n')}`);
});
