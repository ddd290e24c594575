// Everything dashboards/ ships, rendered in memory: file name → contents.
// `npm run dashboards` writes them; test/dashboards.test.ts compares them with
// the checked-in files and checks every PromQL expression in them.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { ALERTS, alertsYaml } from './alerts.js';
import { api } from './api.js';
import { overview } from './overview.js';
import { queueFleet } from './queue-fleet.js';
import { render } from './render.js';

export const dashboards = (): Record<string, Dashboard> => ({
  'overview.json': overview().build(),
  'queue-fleet.json': queueFleet().build(),
  'render.json': render().build(),
  'api.json': api().build(),
});

export function renderAll(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [name, d] of Object.entries(dashboards())) files[name] = `${JSON.stringify(d, null, 2)}\n`;
  files['alerts.yml'] = alertsYaml();
  return files;
}

/** Every PromQL expression: each panel target's, and each alert rule's expr and signal. */
export function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const [name, d] of Object.entries(dashboards())) {
    for (const p of d.panels ?? []) {
      if (!('targets' in p)) continue;
      for (const t of (p.targets ?? []) as { expr?: string; refId?: string }[]) {
        if (t.expr) out.push({ where: `${name}: ${p.title} (${t.refId})`, expr: t.expr });
      }
    }
  }
  for (const r of ALERTS) {
    out.push({ where: `alerts.yml: ${r.alert}`, expr: r.expr });
    out.push({ where: `alerts.yml: ${r.alert} (signal)`, expr: r.signal });
  }
  return out;
}
