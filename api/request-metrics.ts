// What every HTTP answer tells the metrics: its duration by route template
// (never the raw URL: ids would explode cardinality) and status class, and, on
// the routes that have them, the submission outcome and rate-limit refusals.
// One onResponse hook classifies them all, from the status and the catalogue
// code of the error (captured by onError), so the routes stay free of metrics.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiMetrics, SubmissionOutcome } from '../engine/metrics.js';
import { templateUsed } from './templates.js';

const errorCodes = new WeakMap<FastifyRequest, string>();
const SUBMIT_ROUTE = '/v1/videos';

/** The submission's outcome, or undefined for answers that are no submission at all (401, 500). */
export function submissionOutcome(status: number, code: string | undefined, replayed: boolean): SubmissionOutcome | undefined {
  if (status === 202) return replayed ? 'replayed' : 'accepted';
  if (status === 429) return code === 'too_many_active_videos' ? 'quota_exceeded' : 'rate_limited';
  if (status === 503) return 'unavailable';
  if (status >= 400 && status < 500 && status !== 401) return 'invalid';
  return undefined;
}

/** Which limit refused a 429, by route and code. */
export function refusingLimit(route: string, code: string | undefined): 'auth' | 'submit' | 'active_videos' | undefined {
  if (code === 'too_many_active_videos') return 'active_videos';
  if (route.startsWith('/v1/auth/')) return 'auth';
  if (route === SUBMIT_ROUTE) return 'submit';
  return undefined;
}

export function observeRequests(app: FastifyInstance, metrics: ApiMetrics) {
  app.addHook('onError', async (req, _reply, err) => {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') errorCodes.set(req, code);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.httpDuration.observe(
      { method: req.method, route, status_class: `${Math.floor(status / 100)}xx` },
      reply.elapsedTime / 1000,
    );
    const code = errorCodes.get(req);
    if (req.method === 'POST' && route === SUBMIT_ROUTE) {
      const outcome = submissionOutcome(status, code, reply.getHeader('idempotent-replayed') === 'true');
      // A shipped template's name (set only once its name was recognised), or none: the label stays bounded.
      if (outcome) metrics.submissions.inc({ template: templateUsed.get(req) ?? 'none', outcome });
    }
    if (status === 429) {
      const limit = refusingLimit(route, code);
      if (limit) metrics.rateLimitRefusals.inc({ limit });
    }
  });
}
