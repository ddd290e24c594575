// The render pipeline for one job: fetch assets → ffmpeg → upload → result.
// Each job works in its own temp folder, removed whatever happens.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { UnrecoverableError, type Job, type Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobCanceledError } from '../engine/cancel.js';
import type { Config } from '../engine/config.js';
import { RENDER_ERRORS, RenderError, type RenderErrorCode } from '../engine/errors.js';
import type { Logger } from '../engine/log.js';
import type { JobStage, WorkerMetrics } from '../engine/metrics.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import type { OutboundPolicy } from '../engine/outbound-policy.js';
import { parseSpec, type RenderSpec } from '../engine/spec.js';
import { renderTimeLimitSeconds, stageWeights } from '../engine/render-budget.js';
import { outputKey, type Storage } from '../engine/storage.js';
import { publishVideoNotice } from '../engine/video-events.js';
import { fetchAssets } from './assets.js';
import { renderVideo } from './ffmpeg.js';
import { findCachedRender } from './render-cache.js';
import { makeWorkDir } from './work-dir.js';

export interface RenderJobDeps {
  config: Config;
  storage: Storage;
  fontFile: string;
  log: Logger;
  metrics?: WorkerMetrics;
  /** The worker's connection: progress notices for the event streams (engine/video-events.ts). Without it, job progress only. */
  events?: Redis;
  /** With it and RENDER_CACHE on, a job whose spec and asset bytes match an earlier render reuses it (worker/render-cache.ts). */
  cacheRedis?: Redis;
}

/**
 * The job's progress, 0–100, across its stages: each stage maps its own 0–1
 * onto its share of the whole, weighted by the spec's cost estimate
 * (engine/render-budget.ts). Never goes back: a retry (or a job handed back by
 * a draining worker) continues from what the job last showed and spreads its
 * own work over the rest. Writes to Redis at most once a second, and always
 * at a stage's start and end; each write is also published for event streams.
 */
function progressReporter(job: Job, publish?: (fraction: number) => void) {
  const base = typeof job.progress === 'number' ? Math.min(100, Math.max(0, job.progress)) : 0;
  let last = base;
  let lastAt = 0;
  const write = (pct: number, force: boolean): Promise<void> => {
    const now = Date.now();
    if (pct <= last || (!force && now - lastAt < 1000)) return Promise.resolve();
    last = pct;
    lastAt = now;
    publish?.(pct / 100);
    return job.updateProgress(pct).catch(() => {});
  };
  return {
    /** A reporter for one stage spanning [from, to] of the whole (0–1). */
    stage(from: number, to: number) {
      const at = (fraction: number) => Math.floor(base + (100 - base) * (from + (to - from) * Math.min(1, Math.max(0, fraction))));
      void write(at(0), true);
      return (fraction: number) => void write(at(fraction), fraction >= 1);
    },
    /** 100 %, written before the job completes. */
    done: () => write(100, true),
  };
}

/**
 * Failure reasons travel as `code: message` (the API shows them to users).
 * Errors that retrying cannot fix skip the remaining attempts. A job past its
 * time limit is retried once (a stuck ffmpeg or a sick host may be transient);
 * a retry past it too fails as render_timeout.
 */
function jobError(err: unknown, timedOut: boolean, firstAttempt: boolean): Error {
  if (timedOut) {
    const reason = `render_timeout: ${RENDER_ERRORS.render_timeout}`;
    return firstAttempt ? new Error(reason) : new UnrecoverableError(reason);
  }
  if (err instanceof RenderError) {
    const reason = `${err.code}: ${err.message}`;
    return err.retryable ? new Error(reason) : new UnrecoverableError(reason);
  }
  return new Error(`render_failed: ${RENDER_ERRORS.render_failed}`);
}

/** The code a failure carries (`code: message`), for vgen_job_failures_total: always one of RENDER_ERRORS. */
function failureReason(err: Error): RenderErrorCode {
  const code = err.message.slice(0, err.message.indexOf(':'));
  return code in RENDER_ERRORS ? (code as RenderErrorCode) : 'render_failed';
}

function checkedSpec(input: unknown, outbound: OutboundPolicy): RenderSpec {
  try {
    return parseSpec(input, outbound);
  } catch (err) {
    throw new RenderError('spec_invalid', `${RENDER_ERRORS.spec_invalid} ${(err as Error).message}`, false);
  }
}

export function renderProcessor(deps: RenderJobDeps): Processor<RenderJobData, RenderResult> {
  const { config, storage } = deps;
  return async (job, _token, jobSignal) => {
    const log = deps.log.child({ videoId: job.data.videoId, jobId: job.id, attempt: job.attemptsMade + 1 });
    // The spec decides the limit (a broken spec gets the floor: it fails at once anyway).
    let limitSeconds = config.worker.timeLimit.minSeconds;
    let weights: ReturnType<typeof stageWeights> | undefined;
    try {
      limitSeconds = renderTimeLimitSeconds(job.data.spec, config.worker.timeLimit);
      weights = stageWeights(job.data.spec);
    } catch {
      // checkedSpec below says what is wrong
    }
    const timeout = AbortSignal.timeout(limitSeconds * 1000);
    const signal = jobSignal ? AbortSignal.any([jobSignal, timeout]) : timeout;
    const events = deps.events;
    const progress = progressReporter(job, events && ((fraction) =>
      void publishVideoNotice(events, config.queueName, job.data.videoId, { kind: 'progress', progress: fraction }).catch(() => {})));
    // Named after this process, so a worker starting after a crash can tell it is stale.
    const dir = await makeWorkDir(config.worker.tmpDir ?? tmpdir(), String(job.data.videoId));
    const metrics = deps.metrics;
    // Queued → taken, on the job's first start only: a retry's or a hand-back's
    // timestamp is still the first add, so its "wait" would include earlier attempts.
    if (metrics && job.attemptsMade === 0 && (job.attemptsStarted ?? 1) <= 1 && job.processedOn && job.timestamp)
      metrics.stageDuration.observe({ stage: 'queue_wait', outcome: 'ok' }, Math.max(0, job.processedOn - job.timestamp) / 1000);
    let stage: JobStage = 'download';
    let renderSeconds = 0;
    const timed = async <T>(name: JobStage, fn: () => Promise<T>): Promise<T> => {
      stage = name;
      const started = performance.now();
      const end = metrics?.stageDuration.startTimer({ stage: name });
      try {
        const out = await fn();
        end?.({ outcome: 'ok' });
        if (name === 'render') renderSeconds = (performance.now() - started) / 1000;
        return out;
      } catch (err) {
        end?.({ outcome: 'error' });
        throw err;
      }
    };
    try {
      // The queue is an API boundary too: anything could have enqueued this.
      const spec = checkedSpec(job.data.spec, config.outboundAllow);
      const limits = { maxPixels: config.worker.maxAssetPixels, maxSide: config.worker.maxAssetSide, maxSeconds: config.worker.maxAssetSeconds };
      const w = weights ?? stageWeights(spec);
      const fetched = progress.stage(...w.fetch);
      const assets = await timed('download', () => fetchAssets(spec, dir, {
        assetsDir: config.worker.assetsDir, policy: config.outboundAllow, limits, signal, onProgress: fetched,
        uploads: { storage, userId: job.data.userId, maxBytes: config.uploads.maxBytes },
      }));
      // An earlier render of the same spec and asset bytes this video may reuse: no ffmpeg, no upload.
      const cache = deps.cacheRedis && config.renderCache
        ? await findCachedRender({ redis: deps.cacheRedis, queueName: config.queueName, preset: config.worker.x264Preset, fontFile: deps.fontFile, log, lookups: metrics?.renderCacheLookups }, job.data, spec, assets, signal)
        : {};
      if (cache.hit) {
        log.info({ videoKey: cache.hit.videoKey, sourceVideoId: cache.hit.sourceVideoId }, 'render cache hit: nothing rendered');
        return cache.hit;
      }
      const out = await timed('render', () => renderVideo({
        spec,
        assets,
        workDir: dir,
        fontFile: deps.fontFile,
        preset: config.worker.x264Preset,
        maxPixels: limits.maxPixels,
        onProgress: progress.stage(...w.render),
        signal,
      }));
      // A fresh render id per attempt: a re-render never overwrites a key a CDN may hold.
      const renderId = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
      // Always under private/, whatever the job says (job.data.visibility is
      // ignored): the API copies them to public keys at settle only if the
      // video is public then, so a video made private mid-render never has a public key.
      const videoKey = outputKey(job.data.videoId, renderId, 'mp4', 'private');
      const posterKey = outputKey(job.data.videoId, renderId, 'jpg', 'private');
      // The animated preview, when the spec asked for one, beside them under the same render id.
      const previewKey = out.previewPath ? outputKey(job.data.videoId, renderId, 'webp', 'private') : undefined;
      progress.stage(...w.upload);
      const [{ bytes }, { bytes: posterBytes }, preview] = await timed('upload', () => Promise.all([
        storage.put(videoKey, out.videoPath, 'video/mp4'),
        storage.put(posterKey, out.posterPath, 'image/jpeg'),
        previewKey && out.previewPath ? storage.put(previewKey, out.previewPath, 'image/webp') : undefined,
      ]).catch((err) => {
        throw new RenderError('upload_failed', RENDER_ERRORS.upload_failed, true, { cause: err });
      }));
      await progress.done();
      if (metrics) {
        metrics.uploadedBytes.inc(bytes + posterBytes + (preview?.bytes ?? 0));
        if (renderSeconds > 0) metrics.realtimeFactor.observe(out.durationMs / 1000 / renderSeconds);
      }
      log.info({ videoKey, bytes, durationMs: out.durationMs }, 'render succeeded');
      return { videoKey, posterKey, ...(previewKey && { previewKey }), durationMs: out.durationMs, width: out.width, height: out.height, bytes, ...(cache.key ? { cacheKey: cache.key } : {}) };
    } catch (err) {
      if (jobSignal?.reason instanceof JobCanceledError) {
        log.info({ stage }, 'render stopped: the video was canceled');
        throw jobSignal.reason; // the job gate ends the job (worker/lifecycle/drain.ts)
      }
      log.warn({ err, stage, limitSeconds, timedOut: timeout.aborted }, 'render failed');
      const failure = jobError(err, timeout.aborted, job.attemptsMade === 0);
      metrics?.jobFailures.inc({ reason: failureReason(failure) });
      throw failure;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
