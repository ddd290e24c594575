// The autoscaler role: wire Redis, the queue, the worker registry, a provider
// and the metrics to the loop, and run it. `vgen autoscaler` calls this alone;
// `vgen up` calls it inside its own process with the local provider.
import { ConfigError, type Config } from '../engine/config.js';
import { createLogger, type Logger } from '../engine/log.js';
import { renderQueue } from '../engine/queue.js';
import { checkEvictionPolicy, connectRedis, whenReady } from '../engine/redis.js';
import { serveMetrics } from '../engine/metrics-server.js';
import { startProcessBeacon } from '../engine/process-registry.js';
import { registerQueueMetrics } from '../engine/queue-metrics.js';
import { createRegistry } from '../engine/registry.js';
import { AutoscalerLoop } from './loop.js';
import { createAutoscalerMetrics, type AutoscalerMetrics } from './metrics.js';
import { policyConfig } from './policy.js';
import { Ec2Provider, ec2OptionsFromEnv } from './providers/ec2.js';
import { LocalProvider } from './providers/local.js';
import type { WorkerProvider } from './providers/types.js';

export interface AutoscalerRunOptions {
  log?: Logger;
  /** Environment for local workers and for the EC2_* settings; default process.env. */
  env?: Record<string, string | undefined>;
  /** Use this provider instead of the one AUTOSCALER_PROVIDER names (null: decide only). */
  provider?: WorkerProvider | null;
  /** Collect Node's default metrics too (off when another registry in the process already does). */
  defaultMetrics?: boolean;
  /** Rounds' clock, for tests. */
  clock?: () => number;
}

export interface RunningAutoscaler {
  loop: AutoscalerLoop;
  provider: WorkerProvider | null;
  metrics: AutoscalerMetrics;
  /** Where /metrics is served (AUTOSCALER_METRICS_PORT on HOST, advertised as METRICS_ADVERTISE_HOST). */
  metricsUrl?: string;
  /** Hand the lease over and stop; local workers drain and exit too (stopWorkers: false keeps them). */
  close(opts?: { stopWorkers?: boolean }): Promise<void>;
}

export function providerFromConfig(config: Config, env: Record<string, string | undefined>, log: Logger): WorkerProvider | null {
  switch (config.autoscaler.provider) {
    case 'none':
      return null;
    case 'ec2':
      return new Ec2Provider({
        ...ec2OptionsFromEnv(env),
        onThrottled: (e) => log.warn(e, 'ec2 provider: throttled; backing off'),
      });
    case 'local':
      return new LocalProvider({
        env: env as NodeJS.ProcessEnv,
        onExit: (id, code, signal) => log[code === 0 ? 'info' : 'warn']({ workerId: id, code, signal }, 'local worker exited'),
      });
  }
}

export async function startAutoscaler(config: Config, opts: AutoscalerRunOptions = {}): Promise<RunningAutoscaler> {
  const a = config.autoscaler;
  const log = opts.log ?? createLogger(config.logLevel, { role: 'autoscaler' });
  const provider = opts.provider !== undefined ? opts.provider : providerFromConfig(config, opts.env ?? process.env, log);
  const redis = connectRedis(config.redisUrl, 'producer');
  // The first round waits for Redis (briefly): `vgen up` should launch its workers at once, not a retry later.
  await whenReady(redis).then(() => checkEvictionPolicy(redis, log), () => log.warn('Redis is not reachable yet; the autoscaler keeps trying'));
  const queue = renderQueue(config.queueName, redis, config.renderAttempts);
  queue.on('error', (err) => log.debug({ err: err.message }, 'render queue connection error'));
  const registry = createRegistry(redis, { queueName: config.queueName });
  const metrics = createAutoscalerMetrics(provider?.name ?? 'none', { defaultMetrics: opts.defaultMetrics });

  const loop = new AutoscalerLoop({
    redis, queue, registry, provider, metrics, log,
    queueName: config.queueName,
    policy: policyConfig({ min: a.minWorkers, max: a.maxWorkers, scaleInWindowSeconds: a.scaleInSeconds, bootSeconds: a.bootSeconds }),
    intervalMs: a.intervalSeconds * 1000,
    leaseMs: a.leaseSeconds * 1000,
    waitTargetSeconds: a.waitTargetSeconds,
    // Render times spread with cv ≈ 0.5 until measured (docs/autoscaling.md).
    renderPrior: { meanSeconds: a.renderSeconds, stddevSeconds: a.renderSeconds / 2 },
    // Ten boots' time, and at least two minutes: a worker that has not registered by then never will.
    bootTimeoutSeconds: Math.max(120, 10 * a.bootSeconds),
    clock: opts.clock,
  });
  // The queue's metrics are the leader's to export (engine/queue-metrics.ts); API replicas stand aside meanwhile.
  registerQueueMetrics({ registry: metrics.registry, redis, queue, isExporter: () => loop.isLeader() });
  loop.start();

  let server: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    server = await serveMetrics(metrics.registry, { host: config.host, port: a.metricsPort, advertiseHost: config.metricsAdvertiseHost });
  } catch (err) {
    await loop.stop({ release: true });
    const code = (err as NodeJS.ErrnoException).code;
    await registry.close();
    await queue.close().catch(() => {});
    redis.disconnect();
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')
      throw new ConfigError('AUTOSCALER_METRICS_PORT', `cannot listen on ${config.host}:${a.metricsPort} (${code}); choose another port, or 0 for a free one`);
    throw err;
  }
  const metricsUrl = server.url;
  // Listed by GET /v1/ops/prometheus-targets.
  const beacon = startProcessBeacon(redis, { queueName: config.queueName, role: 'autoscaler', metricsUrl, log });
  log.info({ provider: provider?.name ?? 'none', min: a.minWorkers, max: a.maxWorkers, intervalSeconds: a.intervalSeconds, leaseSeconds: a.leaseSeconds, queue: config.queueName, metricsUrl }, 'autoscaler started');

  return {
    loop, provider, metrics, metricsUrl,
    async close(o = {}) {
      await beacon.stop();
      await loop.stop({ release: true });
      await server?.close();
      if (o.stopWorkers !== false && provider instanceof LocalProvider) await provider.stopAll();
      await registry.close();
      await queue.close().catch(() => {});
      redis.disconnect();
    },
  };
}
