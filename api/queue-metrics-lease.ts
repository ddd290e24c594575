// Which API replica exports the queue metrics (engine/queue-metrics.ts) when
// no autoscaler runs: the one holding a short Redis lease (the autoscaler's
// LeaderLease class, under a key of its own). While an autoscaler leader holds
// its lease, it exports and every API replica stands aside: the replica
// holding this lease releases it, and the queue metrics' own read checks the
// autoscaler's lease key at each scrape (yieldToKey), so the two never both
// show samples.
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { LeaderLease } from '../autoscaler/leader.js';
import { autoscalerKeys } from '../autoscaler/state.js';
import { QUEUE_PREFIX } from '../engine/queue.js';

export function queueMetricsLeaseKey(queueName: string): string {
  return `${QUEUE_PREFIX}:${queueName}:queue-metrics:lease`;
}

export interface QueueMetricsLease {
  isExporter(): boolean;
  /** The key whose existence means the autoscaler exports instead. */
  yieldToKey: string;
  stop(): Promise<void>;
}

export function startQueueMetricsLease(redis: Redis, queueName: string, opts: { ttlMs?: number } = {}): QueueMetricsLease {
  const ttlMs = opts.ttlMs ?? 15_000;
  const yieldToKey = autoscalerKeys(queueName).leader;
  const lease = new LeaderLease({ redis, key: queueMetricsLeaseKey(queueName), ttlMs, name: `api-${hostname()}-${process.pid}` });
  let autoscalerLeads = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const round = async () => {
    let next = Math.floor(ttlMs / 3);
    try {
      autoscalerLeads = (await redis.exists(yieldToKey)) === 1;
    } catch {
      // Redis is unreachable: the lease below fails too, and runs out on its own clock.
    }
    if (autoscalerLeads) {
      if (lease.isLeader()) await lease.stop({ release: true });
    } else {
      next = (await lease.attempt()).nextMs;
    }
    if (!stopped) {
      timer = setTimeout(() => void round(), next);
      timer.unref();
    }
  };
  void round();
  return {
    yieldToKey,
    isExporter: () => !stopped && !autoscalerLeads && lease.isLeader(),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await lease.stop({ release: true });
    },
  };
}
