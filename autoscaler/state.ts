// What the autoscaler keeps in Redis, and what the API's operator routes read
// and write there: the leader lease, the loop's memory (so a new leader carries
// on), the latest decision (served to KEDA at GET /v1/ops/scaling) and the
// operator's manual floor (`vgen workers scale n --for d`). The keys sit under
// the queue's `{vgen}` hash tag, so they share the queue's Redis Cluster slot,
// and each has a TTL: an autoscaler that stops leaves nothing behind for long.
// This file imports nothing heavy, so the API can use it without the providers.
import type { Redis } from 'ioredis';
import { QUEUE_PREFIX } from '../engine/queue.js';

export function autoscalerKeys(queueName: string) {
  const base = `${QUEUE_PREFIX}:${queueName}:autoscaler`;
  return {
    leader: `${base}:leader`,
    state: `${base}:state`,
    decision: `${base}:decision`,
    floor: `${base}:floor`,
  };
}

/** The leader's latest decision, as GET /v1/ops/scaling serves it (KEDA's metrics-api reads `desiredWorkers`). */
export interface ScalingSnapshot {
  desiredWorkers: number;
  reason: string;
  /** Ready workers (idle + busy). */
  running: number;
  busy: number;
  booting: number;
  draining: number;
  /** This decision's need before the scale-in window and step limits. */
  need: number;
  queue: { waiting: number; prioritized: number; delayed: number; active: number };
  /** Jobs per second, smoothed (the policy's λ). */
  arrivalRate: number;
  renderSeconds: { mean: number; stddev: number };
  min: number;
  max: number;
  manualFloor: { workers: number; until: string } | null;
  provider: string;
  /** The leader's id (host and pid). */
  leader: string;
  /** When the decision was made (ISO 8601). */
  at: string;
}

/** The latest decision, or null when no autoscaler leader has decided recently (the key expires). */
export async function readScaling(redis: Redis, queueName: string): Promise<ScalingSnapshot | null> {
  const raw = await redis.get(autoscalerKeys(queueName).decision);
  return raw ? (JSON.parse(raw) as ScalingSnapshot) : null;
}

export interface ManualFloor {
  workers: number;
  /** Epoch milliseconds. */
  until: number;
}

/** At least `workers` until `forSeconds` from now; 0 workers clears the floor. */
export async function setManualFloor(redis: Redis, queueName: string, workers: number, forSeconds: number, now = Date.now()): Promise<ManualFloor | null> {
  const key = autoscalerKeys(queueName).floor;
  if (workers <= 0 || forSeconds <= 0) {
    await redis.del(key);
    return null;
  }
  const floor = { workers, until: now + forSeconds * 1000 };
  await redis.set(key, JSON.stringify(floor), 'PX', forSeconds * 1000);
  return floor;
}

export async function readManualFloor(redis: Redis, queueName: string): Promise<ManualFloor | null> {
  const raw = await redis.get(autoscalerKeys(queueName).floor);
  if (!raw) return null;
  const floor = JSON.parse(raw) as ManualFloor;
  return floor.until > Date.now() ? floor : null;
}
