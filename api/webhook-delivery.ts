// Webhook delivery, in every API process (it has the database to record
// attempts). A video with a callbackUrl that reaches a terminal state
// (succeeded, failed, canceled) gets one job on its own BullMQ queue,
// `<QUEUE_NAME>-webhooks`:
//  - `settled(id)` enqueues it right after the transition (settler, cancel
//    route), then marks the row (`webhook_queued_at`); the job id is derived
//    from the video and its terminal moment, so the settler's fast path, the
//    reconciler and the outbox sweep collapse into one job;
//  - `sweep()` (the maintenance pass) enqueues terminal videos left unmarked,
//    so a crash between the transition and the enqueue loses nothing;
//  - the worker POSTs the video object, as GET /v1/videos/:id answers it,
//    signed with the owner's secret; each attempt is recorded; a 2xx ends it,
//    anything else is retried with exponential backoff (12 attempts, about a
//    day at the default WEBHOOK_BACKOFF_MS).
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type ConnectionOptions, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../engine/db.js';
import type { Logger } from '../engine/log.js';
import type { OutboundOptions } from '../engine/outbound.js';
import { QUEUE_PREFIX } from '../engine/queue.js';
import type { Present } from './video-present.js';
import { sendWebhook } from './webhook-sender.js';
import { markWebhookQueued, recordDelivery, videoForWebhook, webhookSecret, webhooksOwed } from './webhook-store.js';
import type { Metrics } from '../engine/metrics.js';

export interface WebhookJobData {
  videoId: string;
  /** finished_at of the terminal state this webhook announces (ms); a video retried since has another. */
  finishedAt: number;
}

/** First attempt + 11 retries: 45 s × (1 + 2 + … + 1024) ≈ 25.6 h from the first attempt to the last. */
export const WEBHOOK_ATTEMPTS = 12;
/** Deliveries one API process runs at once; each holds a socket, not a database connection. */
const CONCURRENCY = 8;
const ENQUEUE_TIMEOUT_MS = 2_000;

export const webhookQueueName = (queueName: string) => `${queueName}-webhooks`;

export function webhookJobOptions(backoffMs: number): JobsOptions {
  return {
    attempts: WEBHOOK_ATTEMPTS,
    backoff: { type: 'exponential', delay: backoffMs },
    // The attempts themselves are in webhook_deliveries; the jobs are kept a
    // while only so that a late duplicate enqueue still finds its id taken.
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  };
}

export function webhookQueue(queueName: string, connection: ConnectionOptions, backoffMs: number): Queue<WebhookJobData> {
  return new Queue<WebhookJobData>(webhookQueueName(queueName), { connection, prefix: QUEUE_PREFIX, defaultJobOptions: webhookJobOptions(backoffMs) });
}

export interface WebhookOptions {
  db: Db;
  queue: Queue<WebhookJobData>;
  /** The API's producer connection: adds fail fast while Redis is down; the worker starts once it is ready. */
  producer: Redis;
  /** For the worker's blocking connection. */
  connection: ConnectionOptions;
  present: Present;
  log: Logger;
  /** OUTBOUND_ALLOW and, in tests, a resolver and a CA. */
  outbound?: OutboundOptions;
  /** Per attempt; default 10 s. */
  timeoutMs?: number;
  /** Terminal videos younger than this are left to `settled()` by the sweep; default 10 s. */
  outboxGraceSeconds?: number;
  /** vgen_webhook_deliveries_total{outcome}: one count per attempt. */
  metrics?: Pick<Metrics, 'webhookDeliveries'>;
}

export type Webhooks = ReturnType<typeof startWebhooks>;

export function startWebhooks(opts: WebhookOptions) {
  const { db, queue, log } = opts;

  /** Queue the webhook the video's current terminal state owes, then mark it queued. False when none is owed. */
  async function enqueue(videoId: string): Promise<boolean> {
    const row = await videoForWebhook(db, videoId);
    if (!row?.callback_url || row.finished_ms === null || row.webhook_queued_at || !isTerminal(row.status)) return false;
    const finishedAt = row.finished_ms;
    const add = queue.add('deliver', { videoId, finishedAt }, { jobId: `${videoId}-${finishedAt}` });
    add.catch(() => {});
    // A producer connection that never came up makes BullMQ wait instead of failing.
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([add, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('webhook enqueue timed out')), ENQUEUE_TIMEOUT_MS); })]);
    } finally {
      clearTimeout(timer);
    }
    await markWebhookQueued(db, videoId, finishedAt);
    return true;
  }

  /** Called by whoever moved a video to a terminal state; a failure is left to the sweep. */
  const settled = (videoId: string) =>
    void enqueue(videoId).catch((err) => log.warn({ err: (err as Error).message, videoId }, 'webhooks: enqueue failed; the maintenance pass will retry'));

  /** The outbox: webhooks owed by videos settled a while ago and never queued. Returns how many it queued. */
  async function sweep(): Promise<number> {
    if (opts.producer.status !== 'ready') return 0;
    let queued = 0;
    for (const id of await webhooksOwed(db, opts.outboxGraceSeconds ?? 10, 100)) {
      try {
        queued += Number(await enqueue(id));
      } catch (err) {
        // Redis down or hung (each enqueue waits up to ENQUEUE_TIMEOUT_MS):
        // the rest would fail alike, one timeout after another, holding up the
        // maintenance pass and a shutdown waiting on it. The next pass retries.
        log.warn({ err: (err as Error).message, videoId: id }, 'webhooks: outbox enqueue failed; the next pass will retry');
        break;
      }
    }
    return queued;
  }

  const shutdown = new AbortController();
  const inFlight = new Set<Promise<unknown>>();

  async function deliver(job: Job<WebhookJobData>): Promise<string> {
    const { videoId, finishedAt } = job.data;
    const row = await videoForWebhook(db, videoId);
    // The state it announces is gone (a failed video retried since; that one owes its own).
    if (!row?.callback_url || !isTerminal(row.status) || row.finished_ms !== finishedAt) return 'superseded';
    const { secret } = await webhookSecret(db, row.user_id);
    const body = JSON.stringify(await opts.present(row));
    const event = `video.${row.status}`;
    const outcome = await sendWebhook({
      url: row.callback_url, body, secret, event, deliveryId: job.id!,
      timeoutMs: opts.timeoutMs, outbound: opts.outbound, signal: shutdown.signal,
    });
    await recordDelivery(db, {
      video_id: videoId, attempt: job.attemptsMade + 1, url: row.callback_url, event,
      outcome: outcome.ok ? 'succeeded' : 'failed', http_status: outcome.httpStatus, error: outcome.error, duration_ms: outcome.durationMs,
    });
    opts.metrics?.webhookDeliveries.inc({ outcome: outcome.ok ? 'delivered' : 'failed' });
    // Thrown, so BullMQ retries it after its backoff.
    if (!outcome.ok) throw new Error(outcome.error ?? 'failed');
    return 'delivered';
  }

  // Like the settler's QueueEvents: a Worker whose connection never came up cannot be closed cleanly.
  let worker: Worker<WebhookJobData> | undefined;
  let closed = false;
  const listen = () => {
    if (worker || closed) return;
    const tracked = (job: Job<WebhookJobData>) => {
      const p = deliver(job);
      inFlight.add(p);
      void p.catch(() => {}).finally(() => inFlight.delete(p));
      return p;
    };
    worker = new Worker<WebhookJobData>(queue.name, tracked, { connection: opts.connection, prefix: QUEUE_PREFIX, concurrency: CONCURRENCY });
    worker.on('error', (err) => log.debug({ err: err.message }, 'webhooks: worker connection error'));
    worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1))
        log.warn({ videoId: job.data.videoId, attempts: job.attemptsMade, err: err.message }, 'webhooks: giving up on a webhook after its last attempt');
    });
  };
  if (opts.producer.status === 'ready') listen();
  else opts.producer.once('ready', listen);

  return {
    settled,
    enqueue,
    sweep,
    /**
     * Stop taking deliveries: attempts in flight are cut short and recorded as
     * failures (retried later, by another process if this one is gone), then
     * the worker closes without waiting on Redis, which may be down.
     */
    async close() {
      closed = true;
      opts.producer.off('ready', listen);
      shutdown.abort();
      await Promise.race([Promise.allSettled([...inFlight]), sleep(2_000)]);
      if (worker) await Promise.race([worker.close(true), sleep(2_000)]);
    },
  };
}

const isTerminal = (status: string) => status === 'succeeded' || status === 'failed' || status === 'canceled';
