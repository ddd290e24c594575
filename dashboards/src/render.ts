// Render: what the workers spend their time on and why jobs fail. Stage
// durations, the real-time factor, failure reasons, bytes uploaded, the cache.
import { board, graph, row } from './panels.js';
import { RATE, quantile } from './promql.js';

export const render = () =>
  board('vgen-render', 'vgen / Render', 'Job stages, render speed, failure reasons and uploads across the workers.')
    .withRow(row('Stages'))
    .withPanel(graph({ title: 'Stage duration p50', description: 'Median time of each stage: queue_wait, download, render, upload.', unit: 's' },
      { expr: quantile(0.5, 'vgen_job_stage_duration_seconds', ['stage']), legend: '{{stage}}' }))
    .withPanel(graph({ title: 'Stage duration p95', description: '95th percentile of each stage.', unit: 's' },
      { expr: quantile(0.95, 'vgen_job_stage_duration_seconds', ['stage']), legend: '{{stage}}' }))
    .withPanel(graph({ title: 'Stage errors', description: 'Stages that ended in an error, per second.', unit: 'ops', stack: true },
      { expr: `sum by (stage) (rate(vgen_job_stage_duration_seconds_count{outcome="error"}[${RATE}]))`, legend: '{{stage}}' }))
    .withPanel(graph({ title: 'Real-time factor', description: 'Seconds of video per second of render: above 1 renders faster than real time. p10 is the slow tail.', min: 0, thresholds: [[1, 'green']] },
      { expr: quantile(0.5, 'vgen_render_realtime_factor'), legend: 'p50' },
      { expr: quantile(0.1, 'vgen_render_realtime_factor'), legend: 'p10' }))
    .withRow(row('Outcomes'))
    .withPanel(graph({ title: 'Failures by reason', description: 'Failed job attempts by error code (engine/errors.ts RENDER_ERRORS).', stack: true },
      { expr: `sum by (reason) (increase(vgen_job_failures_total[${RATE}]))`, legend: '{{reason}}' }))
    .withPanel(graph({ title: 'Uploaded', description: 'Bytes uploaded by the workers (MP4s and posters).', unit: 'Bps' },
      { expr: `sum(rate(vgen_uploaded_bytes_total[${RATE}]))`, legend: 'uploaded' }))
    .withPanel(graph({ title: 'Busy workers', description: 'Workers rendering a job now, out of those scraped.', min: 0 },
      { expr: 'sum(vgen_worker_busy)', legend: 'busy' },
      { expr: 'count(vgen_worker_busy)', legend: 'running' }))
    .withPanel(graph({ title: 'Render cache hit ratio', description: 'Share of render cache lookups that found a finished render.', unit: 'percentunit', min: 0 },
      { expr: `sum(rate(vgen_render_cache_lookups_total{result="hit"}[${RATE}])) / sum(rate(vgen_render_cache_lookups_total[${RATE}]))`, legend: 'hit ratio' }))
    .withPanel(graph({ title: 'Worker memory', description: 'Resident memory of each worker process (ffmpeg is a child and is not included).', unit: 'bytes' },
      { expr: 'vgen_process_resident_memory_bytes{role="worker"}', legend: '{{instance}}' }));
