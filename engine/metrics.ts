// One prom-client registry a process. Names start with vgen_, use seconds and
// bytes, and carry only low-cardinality labels (never a user or video id).
import { Registry, collectDefaultMetrics, Histogram, Counter } from 'prom-client';

export function createMetrics(role: 'api' | 'worker') {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: 'vgen_' });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'vgen_http_request_duration_seconds',
      help: 'HTTP request duration by route template and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    renderDuration: new Histogram({
      name: 'vgen_render_stage_duration_seconds',
      help: 'Time spent in each render stage.',
      labelNames: ['stage', 'outcome'] as const,
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    videosSettled: new Counter({
      name: 'vgen_videos_settled_total',
      help: 'Videos that reached a terminal state, by outcome.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
