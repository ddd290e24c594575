// GET /v1/ops/prometheus-targets: every live process's /metrics in Prometheus
// HTTP service-discovery format, from the worker registry (engine/registry.ts)
// and the process registry (engine/process-registry.ts: API replicas,
// autoscalers). A target group per process:
//   { "targets": ["host:port"], "labels": { "role": "worker", "provider": "ec2", "__metrics_path__": "/metrics", "__meta_vgen_worker_id": "i-…" } }
// Ids travel only as __meta_ labels: available to relabel rules, dropped from
// the series by default, so a fleet of spot workers churning through ids adds
// no label values beyond Prometheus's own `instance` (host:port).
import { Type, type Static } from '@sinclair/typebox';
import type { ProcessRecord } from '../engine/process-registry.js';
import type { WorkerRecord } from '../engine/registry.js';

export const TargetGroups = Type.Array(Type.Object({
  targets: Type.Array(Type.String(), { description: 'One `host:port`.' }),
  labels: Type.Record(Type.String(), Type.String(), { description: '`role` (api, worker, autoscaler), `provider` for workers, `__metrics_path__`, `__scheme__`, and `__meta_vgen_*` ids for relabelling.' }),
}), { $id: 'PrometheusTargets', title: 'PrometheusTargets' });
export type TargetGroups = Static<typeof TargetGroups>;

/** host:port, path and scheme of a metrics URL a process registered; null for anything else. */
export function parseMetricsUrl(raw: string): { target: string; path: string; scheme: 'http' | 'https' } | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || u.username || u.password) return null;
  return { target: u.host, path: u.pathname || '/metrics', scheme: u.protocol === 'https:' ? 'https' : 'http' };
}

export function targetGroups(workers: WorkerRecord[], processes: ProcessRecord[]): TargetGroups {
  const out: TargetGroups = [];
  const seen = new Set<string>();
  const add = (url: string | undefined, labels: Record<string, string>) => {
    const parsed = url ? parseMetricsUrl(url) : null;
    if (!parsed || seen.has(`${parsed.scheme}://${parsed.target}${parsed.path}`)) return;
    seen.add(`${parsed.scheme}://${parsed.target}${parsed.path}`);
    out.push({
      targets: [parsed.target],
      labels: { ...labels, __metrics_path__: parsed.path, ...(parsed.scheme === 'https' && { __scheme__: 'https' }) },
    });
  };
  const byRole = { api: 0, autoscaler: 1 } as const;
  for (const p of [...processes].sort((a, b) => byRole[a.role] - byRole[b.role] || a.startedAt - b.startedAt))
    add(p.metricsUrl, { role: p.role, __meta_vgen_process_id: p.id });
  for (const w of [...workers].sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1)))
    add(w.metricsUrl, { role: 'worker', provider: w.provider, __meta_vgen_worker_id: w.id, ...(w.instanceId && { __meta_vgen_instance_id: w.instanceId }) });
  return out;
}
