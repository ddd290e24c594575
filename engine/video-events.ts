// Change notices for one video, fanned out through Redis to every API replica
// (GET /v1/videos/:id/events, api/video-events.ts). Publishers: the API process
// whose conditional UPDATE moved the row (settler, cancel route) publishes a
// `status` notice; the worker holding the job publishes `progress` notices.
//
// Keys (in the `{vgen}` hash tag's slot):
//   {vgen}:<queue>:video-seq:<id>      a per-video counter: each notice's event id
//   {vgen}:<queue>:video-events:<id>   pub/sub channel: "<seq> <json notice>"
//
// Numbering and publishing happen in one script, so notices reach subscribers
// in the order of their numbers whoever publishes them. The counter lives a day
// past the last notice. Pub/sub delivers at most once: subscribers re-read the
// row periodically and after a reconnect, so a lost notice delays, never loses,
// a state.
import type { Redis } from 'ioredis';
import { QUEUE_PREFIX } from './queue.js';

export type VideoNotice = { kind: 'status' } | { kind: 'progress'; progress: number };

export const VIDEO_SEQ_TTL_SECONDS = 24 * 3600;

export function videoEventKeys(queueName: string, videoId: string) {
  const base = `${QUEUE_PREFIX}:${queueName}`;
  return { seq: `${base}:video-seq:${videoId}`, channel: `${base}:video-events:${videoId}` };
}

const PUBLISH = `
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], n .. ' ' .. ARGV[2])
return n`;

/** Number and publish one notice; returns its event id. */
export async function publishVideoNotice(redis: Redis, queueName: string, videoId: string, notice: VideoNotice): Promise<number> {
  const k = videoEventKeys(queueName, videoId);
  return Number(await redis.eval(PUBLISH, 1, k.seq, k.channel, JSON.stringify(notice), String(VIDEO_SEQ_TTL_SECONDS)));
}

/** The last event id given to a video's notices (0 before the first). */
export async function currentVideoSeq(redis: Redis, queueName: string, videoId: string): Promise<number> {
  return Number((await redis.get(videoEventKeys(queueName, videoId).seq)) ?? 0);
}

/** "<seq> <json>" → the notice, or undefined for anything else. */
export function parseVideoNotice(message: string): { seq: number; notice: VideoNotice } | undefined {
  const space = message.indexOf(' ');
  const seq = Number(message.slice(0, space));
  if (space < 1 || !Number.isSafeInteger(seq)) return undefined;
  try {
    const n = JSON.parse(message.slice(space + 1)) as { kind?: unknown; progress?: unknown };
    if (n.kind === 'status') return { seq, notice: { kind: 'status' } };
    if (n.kind === 'progress' && typeof n.progress === 'number' && n.progress >= 0 && n.progress <= 1)
      return { seq, notice: { kind: 'progress', progress: n.progress } };
  } catch {
    // not ours
  }
  return undefined;
}
