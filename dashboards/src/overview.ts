// Overview: is vgen doing its job right now? Submissions, how many renders
// succeed, how long a video takes, how deep the queue is, how many workers.
import { board, graph, row, single } from './panels.js';
import { LIVE_WORKERS, RATE, WAITING, leader, quantile, successRatio } from './promql.js';

/** End-to-end p95: submit to succeeded, as the user waits it (the settler's created_at → finished_at). */
export const END_TO_END_P95 = quantile(0.95, 'vgen_video_turnaround_seconds', [], 'outcome="succeeded"');

export const overview = () =>
  board('vgen-overview', 'vgen / Overview', 'Submissions, success rate, latency, queue depth and workers at a glance.')
    .withRow(row('Now'))
    .withPanel(single({ title: 'Submissions accepted /s', description: 'Videos accepted (and replayed idempotent submits) per second.', unit: 'reqps' },
      { expr: `sum(rate(vgen_submissions_total{outcome=~"accepted|replayed"}[${RATE}]))` }))
    .withPanel(single({ title: 'Success rate', description: 'Share of settled videos that succeeded (canceled ones excluded).', unit: 'percentunit', thresholds: [[0, 'red'], [0.9, 'orange'], [0.98, 'green']] },
      { expr: successRatio(RATE) }))
    .withPanel(single({ title: 'p95 end to end', description: '95th percentile of submit → succeeded, from vgen_video_turnaround_seconds (what a user waits).', unit: 's', thresholds: [[120, 'orange'], [300, 'red']] },
      { expr: END_TO_END_P95 }))
    .withPanel(single({ title: 'Waiting jobs', description: 'Jobs waiting for a worker, both lanes.', thresholds: [[50, 'orange'], [500, 'red']] },
      { expr: WAITING }))
    .withRow(row('Trends'))
    .withPanel(graph({ title: 'Submissions by outcome', description: 'POST /v1/videos per second by what happened: accepted, replayed, invalid, rate_limited, quota_exceeded, unavailable.', unit: 'reqps', stack: true },
      { expr: `sum by (outcome) (rate(vgen_submissions_total[${RATE}]))`, legend: '{{outcome}}' }))
    .withPanel(graph({ title: 'Videos settled by outcome', description: 'Videos reaching succeeded, failed or canceled per second.', unit: 'ops', stack: true },
      { expr: `sum by (outcome) (rate(vgen_videos_settled_total[${RATE}]))`, legend: '{{outcome}}' }))
    .withPanel(graph({ title: 'Latency by stage (p95)', description: 'p95 of each job stage for successful jobs: where the end-to-end time goes.', unit: 's', stack: true },
      { expr: quantile(0.95, 'vgen_job_stage_duration_seconds', ['stage'], 'outcome="ok"'), legend: '{{stage}}' }))
    .withPanel(graph({ title: 'Queue depth', description: 'Jobs waiting, active and delayed (retries backing off).', stack: true },
      { expr: 'sum by (state) (vgen_queue_jobs{state=~"waiting|active|delayed"})', legend: '{{state}}' }))
    .withPanel(graph({ title: 'Workers', description: 'Worker processes scraped, how many are rendering, and what the autoscaler leader wants.', min: 0 },
      { expr: LIVE_WORKERS, legend: 'running' },
      { expr: 'sum(vgen_worker_busy)', legend: 'busy' },
      { expr: leader('vgen_autoscaler_desired_workers'), legend: 'desired' }))
    .withPanel(graph({ title: 'Oldest waiting job', description: 'Age of the oldest job waiting for a worker; the alert fires past the SLO line.', unit: 's', thresholds: [[300, 'red']] },
      { expr: 'max(vgen_queue_oldest_waiting_seconds)', legend: 'oldest' }));
