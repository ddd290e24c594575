// Cancel requests from the API to whichever worker holds a job.
//
// The API moves the row to `canceled` first (api/video-store.ts markCanceled),
// then calls requestCancel: it records the wish in a key (a day) and publishes
// the video id on one channel every worker subscribes to (Registry.onCancel,
// on the registry's subscriber connection, engine/registry.ts). The
// worker holding the job aborts it (worker/lifecycle/drain.ts), which kills
// its ffmpeg; a worker taking the job later (a stall, a hand-back) finds the
// key at the job's start. Either way the job ends without retries.
//
// Keys (in the `{vgen}` hash tag's slot):
//   {vgen}:<queue>:cancel:<id>   "1" while a cancel of that job is wished
//   {vgen}:<queue>:cancels       pub/sub channel: video ids
import type { Redis } from 'ioredis';
import { QUEUE_PREFIX } from './queue.js';

export const CANCEL_TTL_SECONDS = 24 * 3600;

/** The abort reason of a canceled job; the failure reason BullMQ records starts with `canceled:`. */
export class JobCanceledError extends Error {
  constructor(videoId: string) {
    super(`canceled: video ${videoId} was canceled`);
    this.name = 'JobCanceledError';
  }
}

export function cancelKeys(queueName: string) {
  const base = `${QUEUE_PREFIX}:${queueName}`;
  return { wish: (videoId: string) => `${base}:cancel:${videoId}`, channel: `${base}:cancels` };
}

/** Record the wish, then tell every worker. */
export async function requestCancel(redis: Redis, queueName: string, videoId: string): Promise<void> {
  const k = cancelKeys(queueName);
  const res = await redis.multi().set(k.wish(videoId), '1', 'EX', CANCEL_TTL_SECONDS).publish(k.channel, videoId).exec();
  for (const [err] of res ?? []) if (err) throw err;
}

export async function isCancelRequested(redis: Redis, queueName: string, videoId: string): Promise<boolean> {
  return (await redis.exists(cancelKeys(queueName).wish(videoId))) === 1;
}
