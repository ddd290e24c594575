// The worker role: check ffmpeg, then consume render jobs until drained.
// Registered in the worker registry with a heartbeat (worker/lifecycle/). A
// drain (registry wish, SIGTERM, spot notice) takes no new job and finishes
// the current one, or hands it back to the queue if its deadline comes first.
import { readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import type { Config } from '../engine/config.js';
import { createLogger, type Logger } from '../engine/log.js';
import { createWorkerMetrics } from '../engine/metrics.js';
import { serveMetrics, type MetricsServer } from '../engine/metrics-server.js';
import { warnIfOutboundAllowed } from '../engine/outbound-policy.js';
import { checkEvictionPolicy, connectRedis } from '../engine/redis.js';
import { createStorage } from '../engine/storage.js';
import { checkFfmpeg, findFont } from './ffmpeg.js';
import { startManagedWorker, type DrainRequest } from './lifecycle/managed.js';
import { renderProcessor } from './render-job.js';
import { sweepWorkDirs } from './work-dir.js';

export async function startWorker(config: Config, opts: { log?: Logger } = {}) {
  const log = opts.log ?? createLogger(config.logLevel, { role: 'worker', workerId: config.worker.id });
  warnIfOutboundAllowed(config.outboundAllow, log);
  const { version } = await checkFfmpeg();
  const fontFile = await findFont();
  // Work folders of workers that died without cleaning up (their ffmpeg died with them).
  const workRoot = config.worker.tmpDir ?? tmpdir();
  const swept = await sweepWorkDirs(workRoot);
  if (swept.length > 0) log.info({ workRoot, folders: swept }, 'removed work folders of dead workers');
  const connection = connectRedis(config.redisUrl, 'worker');
  void checkEvictionPolicy(connection, log);
  const metrics = createWorkerMetrics();
  // /metrics first, so the registry record carries the port really bound (0 = a free one).
  let metricsServer: MetricsServer | undefined;
  try {
    metricsServer = await serveMetrics(metrics.registry, { host: config.host, port: config.worker.metricsPort, advertiseHost: config.metricsAdvertiseHost });
  } catch (err) {
    log.error({ err, host: config.host, port: config.worker.metricsPort }, 'worker /metrics could not listen; rendering goes on without it');
  }
  const render = renderProcessor({ config, storage: createStorage(config), fontFile, log, metrics, events: connection, cacheRedis: connection });
  let rendering = 0;
  metrics.busy.set(0);
  const processor: typeof render = async (job, token, signal) => {
    metrics.busy.set(++rendering > 0 ? 1 : 0);
    try {
      return await render(job, token, signal);
    } finally {
      metrics.busy.set(--rendering > 0 ? 1 : 0);
    }
  };
  const host = hostname();
  const managed = startManagedWorker({
    queueName: config.queueName,
    connection,
    concurrency: config.worker.concurrency,
    lockSeconds: config.worker.lockSeconds,
    lostLimit: config.worker.lostLimit,
    log,
    processor,
    identity: {
      id: config.worker.id,
      provider: config.worker.provider,
      // On EC2 the user data sets WORKER_ID to the instance id.
      ...(config.worker.provider === 'ec2' ? { instanceId: config.worker.id } : {}),
      host,
      pid: process.pid,
      version: VERSION,
      ...(metricsServer && { metricsUrl: metricsServer.url }),
    },
    onSpotNotice: (n) => metrics.spotInterruptions.inc({ kind: n.kind === 'interruption' ? 'termination' : 'rebalance' }),
    imds: config.worker.imdsEnabled ? { endpoint: config.worker.imdsEndpoint, intervalMs: config.worker.imdsPollSeconds * 1000 } : undefined,
  });
  const { worker } = managed;

  log.info({ ffmpeg: version, concurrency: config.worker.concurrency, queue: config.queueName, metricsUrl: metricsServer?.url }, 'worker started');

  const drained = managed.drained.then(async () => {
    await metricsServer?.close();
    connection.disconnect();
  });
  return {
    worker,
    id: managed.id,
    /** Start draining (or move its deadline earlier). */
    drain: (req: DrainRequest) => managed.drain(req),
    /** Where Prometheus scrapes this worker (absent when the port could not be bound). */
    metricsUrl: metricsServer?.url,
    /** Resolves once drained: no job left, deregistered, disconnected. `vgen worker` then exits 0. */
    drained,
    /** Stop taking jobs, let active ones finish, then disconnect. */
    async close() {
      managed.drain({ reason: 'close' });
      await drained;
    },
  };
}

export type RunningWorker = Awaited<ReturnType<typeof startWorker>>;

const VERSION = (() => {
  try {
    return String(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

/**
 * SIGTERM or SIGINT: drain with a deadline (WORKER_DRAIN_DEADLINE_SECONDS);
 * a job that cannot finish by then goes back to the queue. A second signal
 * exits at once (130); the job's lock then lapses and a stall check re-queues it.
 */
export function drainOnSignals(w: RunningWorker, deadlineSeconds: number, log?: Logger): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log?.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    w.drain({ deadline: Date.now() + deadlineSeconds * 1000, reason: signal });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
