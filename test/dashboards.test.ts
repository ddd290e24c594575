// dashboards/: the checked-in Grafana JSON and alert rules are what
// dashboards/src generates (else `npm run dashboards` was forgotten); every
// PromQL expression parses (promtool) and reads only metrics the code
// registers; the Prometheus config and rules pass promtool, and the rules'
// unit tests (dashboards/alerts.test.yml) pass; every runbook link lands on a
// heading of docs/operations.md.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';
import { createAutoscalerMetrics } from '../autoscaler/metrics.js';
import { ALERTS, RUNBOOK_BASE } from '../dashboards/src/alerts.js';
import { dashboards, expressions, renderAll } from '../dashboards/src/index.js';
import { metricNames } from '../dashboards/src/metric-names.js';
import { createMetrics } from '../engine/metrics.js';
import { queueMetricsCatalogue } from '../engine/queue-metrics.js';

const run = promisify(execFile);
const DIR = new URL('../dashboards/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, DIR), 'utf8');
const work = mkdtempSync(join(tmpdir(), 'vgen-dashboards-'));
after(() => rmSync(work, { recursive: true, force: true }));

const hasPromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const needsPromtool = hasPromtool ? {} : { skip: 'promtool is not installed (Debian package `prometheus`; `bash scripts/setup.sh --test` installs it)' };

/** promtool's exit code and output; a non-zero exit is returned, not thrown. */
async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('promtool', args, { cwd: work });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout + err.stderr };
  }
}

/** Grafana's rate window is no PromQL: the checks use a fixed one. */
export const concrete = (expr: string, window = '1m') => expr.replaceAll('$__rate_interval', window);

/** Every series name the metrics code can export (histograms as _bucket, _sum, _count). */
export async function registeredNames(): Promise<Set<string>> {
  const registries: Registry[] = [createMetrics('api').registry, createMetrics('worker').registry, createAutoscalerMetrics('none').registry, queueMetricsCatalogue()];
  const names = new Set<string>();
  for (const r of registries) {
    for (const m of await r.getMetricsAsJSON()) {
      const type = String(m.type);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
      else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(m.name + s);
      else names.add(m.name);
    }
  }
  return names;
}

describe('dashboards/', () => {
  test('the checked-in files are what dashboards/src generates (run `npm run dashboards`)', () => {
    const files = renderAll();
    assert.deepEqual(Object.keys(files).sort(), ['alerts.yml', 'api.json', 'overview.json', 'queue-fleet.json', 'render.json']);
    for (const [name, text] of Object.entries(files)) assert.equal(read(name), text, `dashboards/${name} is stale: run \`npm run dashboards\``);
  });

  test('each dashboard has its panels, and every query names the datasource variable', () => {
    const want: Record<string, string[]> = {
      'overview.json': ['Submissions accepted /s', 'Success rate', 'p95 end to end', 'Waiting jobs', 'Queue depth', 'Workers'],
      'queue-fleet.json': ['Waiting by lane', 'Oldest waiting job', 'Desired vs running workers', 'Spot interruptions', 'Fleet cost'],
      'render.json': ['Stage duration p95', 'Real-time factor', 'Failures by reason'],
      'api.json': ['Requests by route', 'Responses by status class', 'Duration p95 by route', 'Rate-limit refusals'],
    };
    for (const [name, d] of Object.entries(dashboards())) {
      const titles = (d.panels ?? []).map((p) => p.title);
      for (const t of want[name]!) assert.ok(titles.includes(t), `${name} has "${t}"`);
      assert.ok(d.uid?.startsWith('vgen-'), name);
      assert.deepEqual(d.templating?.list?.map((v) => [v.type, v.name]), [['datasource', 'datasource']]);
      for (const p of d.panels ?? []) {
        if (!('targets' in p)) continue;
        assert.ok((p.targets ?? []).length > 0, `${name}: ${p.title} has a query`);
        assert.equal(p.datasource?.uid, '${datasource}', `${name}: ${p.title}`);
        for (const t of (p.targets ?? []) as { datasource?: { uid?: string } }[]) assert.equal(t.datasource?.uid, '${datasource}', `${name}: ${p.title}`);
      }
    }
  });

  test('metricNames finds selectors and skips functions, labels, keywords and strings', () => {
    assert.deepEqual(
      metricNames('sum by (le) (rate(a_b{x="}{[", y=~"a|b"}[5m] offset 1h)) / on (instance) group_left (foo) b:rec + up bool > 1e3 and absent(c) or vector(0) * -inf'),
      ['a_b', 'b:rec', 'c', 'up'],
    );
    assert.deepEqual(metricNames('histogram_quantile(0.9, sum without (pod) (rate(x_bucket[$__rate_interval])))'), ['x_bucket']);
  });

  test('every expression reads only metrics the code registers (a renamed metric fails here)', async () => {
    const known = await registeredNames();
    for (const builtin of ['up', 'ALERTS']) known.add(builtin);
    const unknown: string[] = [];
    for (const { where, expr } of expressions()) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where} reads some metric`);
      for (const n of names) if (!known.has(n)) unknown.push(`${n} (${where})`);
    }
    assert.deepEqual([...new Set(unknown)], [], 'metrics no registry (engine/metrics.ts, engine/queue-metrics.ts, autoscaler/metrics.ts) exports');
  });

  test('every expression parses (promtool check rules)', needsPromtool, async () => {
    const exprs = expressions();
    const rules = exprs.map((e, i) => `      - record: vgen:check_${i}\n        expr: '${concrete(e.expr).replace(/'/g, "''")}'`);
    writeFileSync(join(work, 'exprs.yml'), `groups:\n  - name: check\n    rules:\n${rules.join('\n')}\n`);
    const r = await promtool('check', 'rules', 'exprs.yml');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    // The check can fail: a broken expression is refused.
    writeFileSync(join(work, 'broken.yml'), "groups:\n  - name: check\n    rules:\n      - record: vgen:broken\n        expr: 'sum(rate(x[1m])'\n");
    assert.notEqual((await promtool('check', 'rules', 'broken.yml')).code, 0);
  });

  test('prometheus.yml and alerts.yml pass promtool, the commented EC2 discovery too', needsPromtool, async () => {
    for (const f of ['prometheus.yml', 'alerts.yml', 'alerts.test.yml']) copyFileSync(new URL(f, DIR), join(work, f));
    const config = await promtool('check', 'config', 'prometheus.yml');
    assert.equal(config.code, 0, config.out);
    assert.match(config.out, /SUCCESS: 1 rule files found/);
    const rules = await promtool('check', 'rules', 'alerts.yml');
    assert.equal(rules.code, 0, rules.out);
    assert.match(rules.out, new RegExp(`SUCCESS: ${ALERTS.length} rules found`));

    const text = read('prometheus.yml');
    const i = text.indexOf('  # - job_name: vgen-ec2-workers');
    assert.ok(i > 0, 'prometheus.yml has the EC2 discovery job, commented');
    const enabled = text.slice(0, i) + text.slice(i).replace(/^  # /gm, '  ');
    assert.match(enabled, /^ {2}- job_name: vgen-ec2-workers/m);
    writeFileSync(join(work, 'prometheus-ec2.yml'), enabled);
    const ec2 = await promtool('check', 'config', 'prometheus-ec2.yml');
    assert.equal(ec2.code, 0, ec2.out);
  });

  test('the alert rules pass their unit tests (dashboards/alerts.test.yml)', needsPromtool, async () => {
    const r = await promtool('test', 'rules', 'alerts.test.yml');
    assert.equal(r.code, 0, r.out);
    // Every alert is tested.
    const tests = read('alerts.test.yml');
    for (const a of ALERTS) assert.match(tests, new RegExp(`alertname: ${a.alert}\\n`), a.alert);
  });

  test('every alert has a summary, a description and a runbook link to a heading of docs/operations.md', () => {
    const ops = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');
    // GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens.
    const anchors = new Set([...ops.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')));
    const yaml = read('alerts.yml');
    for (const a of ALERTS) {
      assert.ok(a.summary && a.description, a.alert);
      assert.ok(anchors.has(a.runbook), `docs/operations.md has a heading for #${a.runbook}`);
      assert.ok(yaml.includes(`runbook_url: '${RUNBOOK_BASE}#${a.runbook}'`), a.alert);
    }
  });
});
