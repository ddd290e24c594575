// API: how the HTTP side behaves. Request rate and errors, duration per route,
// rate-limit refusals, submissions, event streams and webhooks.
import { board, graph, row } from './panels.js';
import { RATE, quantile, statusRatio } from './promql.js';

export const api = () =>
  board('vgen-api', 'vgen / API', 'Request rate, errors, duration per route, rate-limit refusals, event streams and webhooks.')
    .withRow(row('Traffic'))
    .withPanel(graph({ title: 'Requests by route', description: 'Requests per second by route template ("unmatched": 404s with no route).', unit: 'reqps' },
      { expr: `sum by (route) (rate(vgen_http_request_duration_seconds_count[${RATE}]))`, legend: '{{route}}' }))
    .withPanel(graph({ title: 'Responses by status class', description: '2xx, 4xx and 5xx per second.', unit: 'reqps', stack: true },
      { expr: `sum by (status_class) (rate(vgen_http_request_duration_seconds_count[${RATE}]))`, legend: '{{status_class}}' }))
    .withPanel(graph({ title: 'Error ratio', description: 'Share of requests answered 5xx (server) and 4xx (client).', unit: 'percentunit', min: 0 },
      { expr: statusRatio('5xx', RATE), legend: '5xx' },
      { expr: statusRatio('4xx', RATE), legend: '4xx' }))
    .withPanel(graph({ title: 'Duration p95 by route', description: '95th percentile of request duration per route template (event streams excluded: they last as long as the client stays).', unit: 's' },
      { expr: quantile(0.95, 'vgen_http_request_duration_seconds', ['route'], 'route!~".*/events"'), legend: '{{route}}' }))
    .withRow(row('Limits and streams'))
    .withPanel(graph({ title: 'Rate-limit refusals', description: 'Requests refused by a limit: auth (sign-in), submit (submits a minute), active_videos (queued + rendering at once).', unit: 'reqps', stack: true },
      { expr: `sum by (limit) (rate(vgen_rate_limit_refusals_total[${RATE}]))`, legend: '{{limit}}' }))
    .withPanel(graph({ title: 'Submissions by outcome', description: 'POST /v1/videos by outcome.', unit: 'reqps', stack: true },
      { expr: `sum by (outcome) (rate(vgen_submissions_total[${RATE}]))`, legend: '{{outcome}}' }))
    .withPanel(graph({ title: 'Open event streams', description: 'SSE connections open on GET /v1/videos/:id/events, per API process.' },
      { expr: 'sum by (instance) (vgen_sse_connections)', legend: '{{instance}}' }))
    .withPanel(graph({ title: 'Webhook deliveries', description: 'Webhook delivery attempts by outcome.', unit: 'ops', stack: true },
      { expr: `sum by (outcome) (rate(vgen_webhook_deliveries_total[${RATE}]))`, legend: '{{outcome}}' }))
    .withPanel(graph({ title: 'Event loop lag p99', description: "Each API process's event loop lag: above ~100 ms requests queue behind CPU work.", unit: 's' },
      { expr: 'max by (instance) (vgen_nodejs_eventloop_lag_p99_seconds{role="api"})', legend: '{{instance}}' }));
