// One prom-client registry a process, per role. Names start with vgen_, use
// seconds and bytes, and carry only low-cardinality labels (never a user,
// video or job id): every label below takes a fixed, small set of values, and
// each value appears at 0 from the start, so rate() and alerts see it before
// the first event. The catalogue is in docs/operations.md ("Metrics").
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RENDER_ERRORS } from './errors.js';

export const SUBMISSION_OUTCOMES = ['accepted', 'replayed', 'invalid', 'rate_limited', 'quota_exceeded', 'unavailable'] as const;
export type SubmissionOutcome = (typeof SUBMISSION_OUTCOMES)[number];
export const RATE_LIMITS = ['auth', 'submit', 'active_videos'] as const;
export const SETTLE_OUTCOMES = ['succeeded', 'failed', 'canceled'] as const;
export const JOB_STAGES = ['queue_wait', 'download', 'render', 'upload'] as const;
export type JobStage = (typeof JOB_STAGES)[number];
/** Seconds: a queue wait of a tenth of a second to a render of an hour. */
export const JOB_STAGE_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
export const REALTIME_FACTOR_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32];

/** `vgen_` plus Node's process metrics, with `role` on every series. */
function baseRegistry(role: 'api' | 'worker', defaultMetrics: boolean): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  if (defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'vgen_' });
  return registry;
}

export function createApiMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = baseRegistry('api', opts.defaultMetrics !== false);
  const registers = [registry];
  const m = {
    registry,
    httpDuration: new Histogram({
      name: 'vgen_http_request_duration_seconds',
      help: 'HTTP request duration by method, route template ("unmatched" when no route) and status class (2xx, 3xx, 4xx, 5xx).',
      labelNames: ['method', 'route', 'status_class'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    submissions: new Counter({
      name: 'vgen_submissions_total',
      help: 'POST /v1/videos answers, by template (its name for a template submission, "none" for a raw spec) and outcome.',
      labelNames: ['template', 'outcome'] as const,
      registers,
    }),
    sseConnections: new Gauge({
      name: 'vgen_sse_connections',
      help: 'Open event streams (GET /v1/videos/:id/events) in this process.',
      registers,
    }),
    rateLimitRefusals: new Counter({
      name: 'vgen_rate_limit_refusals_total',
      help: 'Requests refused by a rate limit or quota: auth (sign-in), submit (submits a minute), active_videos (videos queued or rendering).',
      labelNames: ['limit'] as const,
      registers,
    }),
    videosSettled: new Counter({
      name: 'vgen_videos_settled_total',
      help: 'Videos that reached a terminal state in this process, by outcome.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    videoTurnaround: new Histogram({
      name: 'vgen_video_turnaround_seconds',
      help: 'Submit to terminal state (created_at to finished_at of the row), by outcome: what a user waits, end to end.',
      labelNames: ['outcome'] as const,
      buckets: [1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'vgen_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome.',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
  for (const outcome of SUBMISSION_OUTCOMES) m.submissions.inc({ template: 'none', outcome }, 0);
  for (const limit of RATE_LIMITS) m.rateLimitRefusals.inc({ limit }, 0);
  for (const outcome of SETTLE_OUTCOMES) m.videosSettled.inc({ outcome }, 0);
  for (const outcome of ['delivered', 'failed'] as const) m.webhookDeliveries.inc({ outcome }, 0);
  return m;
}

export function createWorkerMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = baseRegistry('worker', opts.defaultMetrics !== false);
  const registers = [registry];
  const m = {
    registry,
    stageDuration: new Histogram({
      name: 'vgen_job_stage_duration_seconds',
      help: 'Time a job spent in each stage: queue_wait (queued → taken, first attempts only), download, render, upload; by outcome (ok, error).',
      labelNames: ['stage', 'outcome'] as const,
      buckets: JOB_STAGE_BUCKETS,
      registers,
    }),
    realtimeFactor: new Histogram({
      name: 'vgen_render_realtime_factor',
      help: 'Seconds of video rendered per second of render wall time (the render stage), per successful render.',
      buckets: REALTIME_FACTOR_BUCKETS,
      registers,
    }),
    uploadedBytes: new Counter({
      name: 'vgen_uploaded_bytes_total',
      help: 'Bytes of rendered output (video, poster and animated preview) uploaded to storage.',
      registers,
    }),
    jobFailures: new Counter({
      name: 'vgen_job_failures_total',
      help: 'Render attempts that failed, by reason (a render error code).',
      labelNames: ['reason'] as const,
      registers,
    }),
    busy: new Gauge({
      name: 'vgen_worker_busy',
      help: '1 while this worker renders a job, else 0; sum() is the busy workers.',
      registers,
    }),
    renderCacheLookups: new Counter({
      name: 'vgen_render_cache_lookups_total',
      help: 'Render cache lookups, by result (hit, miss).',
      labelNames: ['result'] as const,
      registers,
    }),
    spotInterruptions: new Counter({
      name: 'vgen_spot_interruptions_total',
      help: 'Spot notices this worker received: termination (the 2-minute notice) or rebalance (a recommendation).',
      labelNames: ['kind'] as const,
      registers,
    }),
  };
  for (const reason of Object.keys(RENDER_ERRORS)) m.jobFailures.inc({ reason }, 0);
  for (const result of ['hit', 'miss'] as const) m.renderCacheLookups.inc({ result }, 0);
  for (const kind of ['termination', 'rebalance'] as const) m.spotInterruptions.inc({ kind }, 0);
  return m;
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
/** The API's metrics (the name most API modules import). */
export type Metrics = ApiMetrics;

/** Kept for callers that name the role. */
export function createMetrics(role: 'api'): ApiMetrics;
export function createMetrics(role: 'worker'): WorkerMetrics;
export function createMetrics(role: 'api' | 'worker'): ApiMetrics | WorkerMetrics {
  return role === 'api' ? createApiMetrics() : createWorkerMetrics();
}
