// The worker role: check ffmpeg, then consume render jobs until told to stop.
// SIGTERM drains: no new jobs are taken and active ones finish first.
import { createServer, type Server } from 'node:http';
import type { Config } from '../engine/config.js';
import { createLogger, type Logger } from '../engine/log.js';
import { createMetrics } from '../engine/metrics.js';
import { checkEvictionPolicy, connectRedis } from '../engine/redis.js';
import { createStorage } from '../engine/storage.js';
import { checkFfmpeg, findFont } from './ffmpeg.js';
import { renderProcessor } from './render-job.js';
import { startRuntime } from './runtime.js';

export async function startWorker(config: Config, opts: { log?: Logger } = {}) {
  const log = opts.log ?? createLogger(config.logLevel, { role: 'worker', workerId: config.worker.id });
  const { version } = await checkFfmpeg();
  const fontFile = await findFont();
  const connection = connectRedis(config.redisUrl, 'worker');
  void checkEvictionPolicy(connection, log);
  const metrics = createMetrics('worker');
  const worker = startRuntime({
    queueName: config.queueName,
    connection,
    concurrency: config.worker.concurrency,
    lockSeconds: config.worker.lockSeconds,
    log,
    processor: renderProcessor({ config, storage: createStorage(config), fontFile, log, metrics }),
  });

  let metricsServer: Server | undefined;
  if (config.worker.metricsPort) {
    metricsServer = createServer(async (_req, res) => {
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
    }).listen(config.worker.metricsPort);
    metricsServer.on('error', (err) => log.error({ err, port: config.worker.metricsPort }, 'worker metrics server failed; rendering goes on'));
  }
  log.info({ ffmpeg: version, concurrency: config.worker.concurrency, queue: config.queueName }, 'worker started');

  return {
    worker,
    /** Stop taking jobs, let active ones finish, then disconnect. */
    async close() {
      await worker.close();
      metricsServer?.close();
      connection.disconnect();
    },
  };
}
