// The Fastify application, built from plugins: a route group per resource.
// It validates, persists, enqueues and answers; it never renders.
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../engine/config.js';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import type { Logger } from '../engine/log.js';
import { mediaSigningKey } from '../engine/media-url.js';
import { uploadSigningKey } from '../engine/upload-token.js';
import type { Metrics } from '../engine/metrics.js';
import type { OutboundOptions } from '../engine/outbound.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import type { Storage } from '../engine/storage.js';
import { ADMIN_QUEUES_PATH, adminQueuesRoutes } from './admin-queues.js';
import { authPlugin } from './auth.js';
import { clientErrorHandler, frameworkErrors, registerErrorHandling } from './errors.js';
import { healthRoutes, observeRequests } from './health.js';
import { mediaRoutes } from './media.js';
import { opsRoutes } from './ops.js';
import { uploadReceiveRoutes } from './upload-receive.js';
import { uploadRoutes } from './uploads.js';
import { guardStrings, validatorCompiler } from './validation.js';
import { templateRoutes } from './templates.js';
import { videoRoutes } from './videos.js';
import { webhookRoutes } from './webhooks.js';

export interface AppDeps {
  config: Config;
  db: Db;
  redis: Redis;
  queue: Queue<RenderJobData, RenderResult>;
  storage: Storage;
  metrics: Metrics;
  log: Logger;
  /** OUTBOUND_ALLOW for the submit-time URL checks (default config.outboundAllow), plus a test resolver. */
  outbound?: OutboundOptions;
  /** Webhook delivery (api/webhook-delivery.ts): told when a cancel makes a video terminal. */
  webhooks?: { settled(videoId: string): void };
}

/**
 * JSON bodies must be valid UTF-8: Fastify's own parser decodes with
 * replacement, so `a\xC0\xAF@…` was stored as `a\uFFFD\uFFFD@…`. This one
 * takes the bytes, refuses a malformed sequence as 400 invalid_json, and hands
 * the text to Fastify's default parser (secure-json-parse: `__proto__` and
 * `constructor.prototype` keys are still refused). bodyLimit still applies.
 */
function strictJsonParser(app: FastifyInstance) {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new VgenError('invalid_json', 'body is not valid UTF-8', 'body'), undefined);
      return;
    }
    parseJson(req, text, done);
  });
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // A request must arrive whole (headers and body) within this, or it gets a
    // 408 (clientErrorHandler): a body dripped a byte at a time no longer holds
    // a connection forever. Node's requestTimeout covers receiving the request
    // only, so event streams and downloads that follow it are not cut.
    requestTimeout: config.httpRequestTimeoutSeconds * 1000,
    // Given to the server's constructor too: Node enforces requestTimeout only
    // when headersTimeout is not above it, and derives that there (set later,
    // headersTimeout stays 60 s and a 30 s requestTimeout never fires). How
    // often Node checks (its default, 30 s) bounds the overshoot.
    http: {
      requestTimeout: config.httpRequestTimeoutSeconds * 1000,
      headersTimeout: Math.min(60_000, config.httpRequestTimeoutSeconds * 1000),
      connectionsCheckingInterval: Math.min(1_000, config.httpRequestTimeoutSeconds * 500),
    },
    // Per-request log lines would dwarf everything else; the metrics histogram covers requests.
    logController: new LogController({ disableRequestLogging: true }),
    // Behind a load balancer, set TRUST_PROXY to its address range, never `true`.
    trustProxy: config.trustProxy ?? false,
    // Errors raised before routing, or by Node's HTTP parser, answer in the API's error shape too.
    frameworkErrors,
    clientErrorHandler,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  guardStrings(app);
  // The API speaks JSON only: any other body is a 415, not a string the schema then refuses.
  app.removeContentTypeParser('text/plain');
  strictJsonParser(app);
  registerErrorHandling(app);
  observeRequests(app, deps.metrics);

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'vgen API', version: '1', description: 'Submit video render specs and follow them to a playable MP4.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An access token from /v1/auth/login, or a vgk_ API key.' } } },
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  await app.register(authPlugin, {
    db: deps.db,
    secret: config.jwtSecret!,
    accessTtl: config.accessTokenTtlSeconds,
    refreshTtl: config.refreshTokenTtlSeconds,
    redisUrl: config.redisUrl,
    namespace: config.queueName,
    rateLimits: config.authRateLimit,
    passwordHashing: config.passwordHashing,
  });
  await app.register(healthRoutes, { db: deps.db, redis: deps.redis, metrics: deps.metrics });
  await app.register(videoRoutes, {
    db: deps.db, queue: deps.queue, storage: deps.storage, redis: deps.redis,
    mediaUrlTtlSeconds: config.storage.mediaUrlTtlSeconds,
    control: { redis: deps.redis, eventsMaxConnections: config.eventsMaxConnections },
    quotas: config.userQuotas,
    metrics: deps.metrics,
    outbound: deps.outbound ?? { policy: config.outboundAllow },
    webhooks: deps.webhooks,
  });
  await app.register(webhookRoutes, { db: deps.db });
  await app.register(templateRoutes);

  await app.register(opsRoutes, { db: deps.db, redis: deps.redis, queue: deps.queue, queueName: config.queueName });
  await app.register(uploadRoutes, {
    db: deps.db, storage: deps.storage,
    maxBytes: config.uploads.maxBytes, urlTtlSeconds: config.uploads.urlTtlSeconds, perMinute: config.uploads.perMinute,
  });
  // bull-board, read-only, behind the operator token (api/admin-queues.ts).
  await app.register(adminQueuesRoutes, { prefix: ADMIN_QUEUES_PATH, queue: deps.queue, authenticate: app.authenticate });

  if (deps.storage.driver === 'fs') {
    // Local media with range requests: public keys to anyone, private keys only through signed URLs.
    await app.register(mediaRoutes, { prefix: '/media', mediaDir: config.storage.mediaDir, signingKey: mediaSigningKey(config.jwtSecret!) });
    // Direct uploads' local stand-in for an S3 presigned POST (POST /v1/uploads hands out its signed URLs).
    await app.register(uploadReceiveRoutes, { prefix: '/uploads', mediaDir: config.storage.mediaDir, signingKey: uploadSigningKey(config.jwtSecret!) });
  }
  return app;
}
