// PromQL fragments the dashboards and the alert rules share, so a panel and the
// alert that watches the same thing cannot drift apart.

/** Grafana's rate window; tests and alert rules substitute a fixed one. */
export const RATE = '$__rate_interval';

/** An autoscaler gauge as the leader reports it (a standby's copy is stale). */
export const leader = (gauge: string) => `max(${gauge} * on (instance, job) group_left vgen_autoscaler_leader)`;

/** Success ratio of settled videos over a window (canceled ones are neither). */
export const successRatio = (window: string) =>
  `sum(rate(vgen_videos_settled_total{outcome="succeeded"}[${window}])) / sum(rate(vgen_videos_settled_total{outcome=~"succeeded|failed"}[${window}]))`;

/** Failure ratio of settled videos over a window. */
export const failureRatio = (window: string) =>
  `sum(rate(vgen_videos_settled_total{outcome="failed"}[${window}])) / sum(rate(vgen_videos_settled_total{outcome=~"succeeded|failed"}[${window}]))`;

/** Jobs waiting for a worker (both lanes). */
export const WAITING = 'sum(vgen_queue_jobs{state="waiting"})';

/** Worker processes Prometheus scrapes (each exports vgen_worker_busy, 0 or 1). */
export const LIVE_WORKERS = 'count(vgen_worker_busy)';

/** A quantile of a histogram, aggregated over every label but `by`. */
export const quantile = (q: number, histogram: string, by: string[] = [], filter = '', window = RATE) =>
  `histogram_quantile(${q}, sum by (${['le', ...by].join(', ')}) (rate(${histogram}_bucket${filter ? `{${filter}}` : ''}[${window}])))`;

/**
 * Share of API answers in a status class. A class with no answer yet has no
 * series (histogram labels appear on first use): count it as 0, not as no data.
 */
export const statusRatio = (statusClass: string, window: string) =>
  `(sum(rate(vgen_http_request_duration_seconds_count{status_class="${statusClass}"}[${window}])) or vector(0)) / sum(rate(vgen_http_request_duration_seconds_count[${window}]))`;
