// GET /v1/videos/:id/events: the video object as Server-Sent Events, on every
// change of status, progress or output, until a terminal state.
//
// Fan-out goes through Redis, so a client may be connected to any replica:
// the settler and the cancel route publish a `status` notice when their UPDATE
// moves the row, the worker publishes `progress` notices (engine/video-events.ts).
// Each API process holds one subscriber connection and one *feed* per video
// that has clients here: a feed turns notices into video objects (a status
// notice re-reads the row, once per process; a progress notice patches the
// last object) and hands them to its clients, one after another in the order
// of their event ids.
//
// A new stream always starts with the current object (its id: the video's last
// event id), then the changes. With Last-Event-ID a client therefore resumes
// where it left off: whatever it missed is summed up by the first event. Every
// heartbeat (a comment line) also re-reads the row of each feed, so a notice
// lost by pub/sub (at most once) delays a state change, never loses it.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { currentVideoSeq, parseVideoNotice, videoEventKeys, type VideoNotice } from '../engine/video-events.js';
import { ErrorBody, type VideoBody } from './schemas.js';
import { getVideo, type VideoRow } from './video-store.js';

export interface VideoStreamDeps {
  db: Db;
  queue: Queue<RenderJobData, RenderResult>;
  /** The API's producer connection; the subscriber is a duplicate of it, opened with the first stream. */
  redis: Redis;
  /** The video object as GET /v1/videos/:id answers it. */
  present: (row: VideoRow) => Promise<VideoBody>;
  /** Streams this process holds open at once (EVENTS_MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Heartbeat comments and the row re-check, this often (default 15 s). */
  heartbeatMs?: number;
  /** Counts the open streams (vgen_sse_connections). */
  streams?: { inc(): void; dec(value?: number): void };
}

// Same as videos.ts: a malformed id answers 404 like an unknown one.
export const VideoIdParams = Type.Object({ id: Type.String({ pattern: '^vid_[0-9a-z]{25}$', description: 'A video id, vid_ and 25 characters [0-9a-z].' }) });

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const isTerminal = (v: VideoBody) => TERMINAL.has(v.status);
/** A client this far behind (bytes not yet taken by its socket) is cut off; it can resume. */
const MAX_BUFFERED = 64 * 1024;
const SUBSCRIBE_TIMEOUT_MS = 2_000;
/** Sent first: how long an EventSource waits before reconnecting. */
const RETRY_MS = 2_000;

type Listener = (id: number, video: VideoBody) => void;

interface Feed {
  videoId: string;
  channel: string;
  listeners: Set<Listener>;
  /** Streams using this feed, those still starting included; at 0 it is dropped. */
  holders: number;
  /** Every change of this feed runs on this chain, one at a time. */
  chain: Promise<void>;
  subscribed: Promise<void>;
  /** Id and object of the last state. */
  seq: number;
  video?: VideoBody;
}

/** Progress never goes back while the video is unsettled. */
function monotonic(prev: VideoBody | undefined, next: VideoBody): VideoBody {
  if (!prev || isTerminal(next)) return next;
  return next.progress < prev.progress ? { ...next, progress: prev.progress } : next;
}

function createHub(deps: VideoStreamDeps) {
  const { db, redis, present } = deps;
  const queueName = deps.queue.name;
  const feeds = new Map<string, Feed>(); // by channel
  let sub: Redis | undefined;

  const subscriber = (): Redis => {
    if (sub) return sub;
    sub = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: false });
    sub.on('error', () => {}); // reconnects by itself
    sub.on('message', (channel: string, message: string) => {
      const feed = feeds.get(channel);
      const parsed = parseVideoNotice(message);
      if (feed && parsed) void run(feed, () => apply(feed, parsed.seq, parsed.notice));
    });
    // Back after a disconnection (ioredis resubscribes): notices sent meanwhile are lost, so look again.
    sub.on('ready', () => {
      for (const feed of feeds.values()) void run(feed, () => refresh(feed));
    });
    return sub;
  };

  const run = (feed: Feed, step: () => Promise<void>) => {
    feed.chain = feed.chain.then(step).catch(() => {}); // a failed step is retried by the next refresh
    return feed.chain;
  };

  const emit = (feed: Feed, seq: number, video: VideoBody) => {
    feed.seq = seq;
    feed.video = video;
    for (const fn of feed.listeners) fn(seq, video);
  };

  /** The current object, read from the row (and Redis, for progress). */
  const read = async (feed: Feed): Promise<{ seq: number; video: VideoBody } | undefined> => {
    // The id first: a notice numbered after it is either in the row read next or arrives later.
    const seq = await currentVideoSeq(redis, queueName, feed.videoId).catch(() => feed.seq);
    const row = await getVideo(db, feed.videoId);
    if (!row) return undefined;
    return { seq: Math.max(seq, feed.seq), video: monotonic(feed.video, await present(row)) };
  };

  const apply = async (feed: Feed, seq: number, notice: VideoNotice) => {
    if (seq <= feed.seq || !feed.video || isTerminal(feed.video)) return;
    if (notice.kind === 'progress') {
      // A worker reporting progress has the job, whether or not the settler has moved the row yet.
      const status = feed.video.status === 'queued' ? 'rendering' : feed.video.status;
      emit(feed, seq, { ...feed.video, status, progress: Math.max(feed.video.progress, notice.progress) });
    } else {
      const row = await getVideo(db, feed.videoId);
      if (row) emit(feed, seq, monotonic(feed.video, await present(row)));
    }
  };

  /** Re-read the row; tell the listeners if its status moved without a notice. */
  const refresh = async (feed: Feed) => {
    if (!feed.video || isTerminal(feed.video) || feed.listeners.size === 0) return;
    const now = await read(feed);
    if (now && now.video.status !== feed.video.status) emit(feed, now.seq, now.video);
  };

  return {
    /**
     * Join a video's feed: `listener` gets the current object first, then every
     * change. Rejects if Redis does not confirm the subscription in time.
     */
    async watch(videoId: string, listener: Listener): Promise<() => void> {
      const { channel } = videoEventKeys(queueName, videoId);
      let feed = feeds.get(channel);
      if (!feed) {
        const subscribed = subscriber().subscribe(channel).then(() => {});
        subscribed.catch(() => {});
        feed = { videoId, channel, listeners: new Set(), holders: 0, chain: Promise.resolve(), subscribed, seq: 0 };
        feeds.set(channel, feed);
      }
      const f = feed;
      f.holders++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        f.listeners.delete(listener);
        if (--f.holders === 0 && feeds.get(f.channel) === f) {
          feeds.delete(f.channel);
          sub?.unsubscribe(f.channel).catch(() => {});
        }
      };
      let timer: NodeJS.Timeout | undefined;
      let failed: unknown;
      try {
        await Promise.race([
          f.subscribed,
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('subscribing timed out')), SUBSCRIBE_TIMEOUT_MS))),
        ]);
        // Subscribed before reading: nothing published from here on is missed.
        await run(f, async () => {
          try {
            const now = await read(f);
            if (!now) throw new Error('the video disappeared');
            if (!f.video || now.seq > f.seq || now.video.status !== f.video.status) emit(f, now.seq, now.video);
            listener(f.seq, f.video!);
            if (!released) f.listeners.add(listener);
          } catch (err) {
            failed = err;
          }
        });
      } catch (err) {
        failed = err;
      } finally {
        clearTimeout(timer);
      }
      if (failed) {
        release();
        throw failed;
      }
      return release;
    },
    /** Run on each heartbeat: re-read every feed's row. */
    refreshAll() {
      for (const feed of feeds.values()) void run(feed, () => refresh(feed));
    },
    async close() {
      feeds.clear();
      const s = sub;
      sub = undefined;
      if (s) await s.quit().catch(() => s.disconnect());
    },
  };
}

export async function videoEventRoutes(app: FastifyInstance, deps: VideoStreamDeps) {
  const hub = createHub(deps);
  const maxConnections = deps.maxConnections ?? 1000;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const open = new Set<FastifyReply>();
  let reserved = 0;

  const heartbeat = setInterval(() => {
    for (const reply of open) reply.raw.write(': ping\n\n');
    hub.refreshAll();
  }, heartbeatMs);
  heartbeat.unref();

  // Open streams would hold app.close() (server.close waits for them): end them first.
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    for (const reply of open) reply.raw.end();
    if (open.size > 0) deps.streams?.dec(open.size);
    open.clear();
  });
  app.addHook('onClose', async () => hub.close());

  app.get('/v1/videos/:id/events', {
    onRequest: app.authenticate,
    schema: {
      tags: ['videos'],
      summary: 'Follow a video as Server-Sent Events',
      description:
        'Owner only. A `text/event-stream` of the video object: first its current state, then one event per change of status, progress or output; '
        + 'the stream ends after a terminal state (succeeded, failed, canceled). Each event has an `id` that grows with every change of that video; '
        + 'reconnecting with `Last-Event-ID` resumes (the first event is the current state, so nothing is missed). A comment line every 15 s keeps '
        + 'the connection alive. 503 with Retry-After when this API process holds its maximum of open streams or cannot reach Redis.',
      security: [{ bearer: [] }],
      params: VideoIdParams,
      headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ maxLength: 20, description: 'The id of the last event received; the stream resumes after it.' })) }),
      response: {
        200: { description: 'A text/event-stream; each event\'s data is a Video (JSON).', content: { 'text/event-stream': { schema: Type.String() } } },
        401: ErrorBody, 404: ErrorBody, 503: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const row = await getVideo(deps.db, id);
    // Owner only: anyone else's video, public or private, does not exist here.
    if (!row || row.user_id !== req.auth!.id) throw new VgenError('not_found', 'no such video', 'id');
    if (open.size + reserved >= maxConnections) {
      reply.header('retry-after', '5');
      throw new VgenError('unavailable', 'this API process holds its maximum of open event streams; retry later or poll GET /v1/videos/:id');
    }

    const res = reply.raw;
    let sentId = -1;
    let started = false;
    let ended = false;
    let stop: (() => void) | undefined;
    let waiting: { seq: number; video: VideoBody } | undefined;
    const end = () => {
      if (ended) return;
      ended = true;
      stop?.();
      if (open.delete(reply)) deps.streams?.dec();
      if (!res.writableEnded) res.end();
    };
    const send = (seq: number, video: VideoBody) => {
      if (ended) return;
      if (!started) return void (waiting = { seq, video }); // each event is the whole object: the latest suffices
      sentId = Math.max(seq, sentId);
      res.write(`id: ${sentId}\ndata: ${JSON.stringify(video)}\n\n`);
      // Terminal: done. Too far behind: cut off (it resumes with Last-Event-ID).
      if (isTerminal(video) || res.writableLength > MAX_BUFFERED) end();
    };

    reserved++;
    try {
      stop = await hub.watch(id, send);
    } catch (err) {
      req.log.warn({ err: (err as Error).message, videoId: id }, 'events: could not follow the video');
      reply.header('retry-after', '2');
      throw new VgenError('unavailable', 'the event stream is unavailable right now; retry later or poll GET /v1/videos/:id');
    } finally {
      reserved--;
    }

    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
    open.add(reply);
    deps.streams?.inc();
    res.on('close', end);
    if (res.socket?.destroyed ?? true) return end(); // the client left while we subscribed
    res.write(`retry: ${RETRY_MS}\n\n`);
    started = true;
    // The current state (or a newer one that came while the headers went out).
    if (waiting) send(waiting.seq, waiting.video);
  });
}
