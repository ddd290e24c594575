// The Fastify application, built from plugins: a route group per resource.
// It validates, persists, enqueues and answers; it never renders.
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../engine/config.js';
import type { Db } from '../engine/db.js';
import type { Logger } from '../engine/log.js';
import type { Metrics } from '../engine/metrics.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import type { Storage } from '../engine/storage.js';
import { authPlugin } from './auth.js';
import { registerErrorHandling } from './errors.js';
import { healthRoutes, observeRequests } from './health.js';
import { validatorCompiler } from './validation.js';
import { videoRoutes } from './videos.js';

export interface AppDeps {
  config: Config;
  db: Db;
  redis: Redis;
  queue: Queue<RenderJobData, RenderResult>;
  storage: Storage;
  metrics: Metrics;
  log: Logger;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // Per-request log lines would dwarf everything else; the metrics histogram covers requests.
    logController: new LogController({ disableRequestLogging: true }),
    // Behind a load balancer, set TRUST_PROXY to its address range, never `true`.
    trustProxy: config.trustProxy ?? false,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only: any other body is a 415, not a string the schema then refuses.
  app.removeContentTypeParser('text/plain');
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
  });
  await app.register(healthRoutes, { db: deps.db, redis: deps.redis, metrics: deps.metrics });
  await app.register(videoRoutes, { db: deps.db, queue: deps.queue, storage: deps.storage });

  if (deps.storage.driver === 'fs') {
    // Local media with range requests; keys never change, so caches may keep them forever.
    await app.register(fastifyStatic, {
      root: config.storage.mediaDir,
      prefix: '/media/',
      index: false,
      immutable: true,
      maxAge: '365d',
      decorateReply: false,
      schemaHide: true,
    });
  }
  return app;
}
