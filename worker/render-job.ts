// The render pipeline for one job: fetch assets → ffmpeg → upload → result.
// Each job works in its own temp folder, removed whatever happens.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { UnrecoverableError, type Job, type Processor } from 'bullmq';
import type { Config } from '../engine/config.js';
import { RENDER_ERRORS, RenderError } from '../engine/errors.js';
import type { Logger } from '../engine/log.js';
import type { Metrics } from '../engine/metrics.js';
import type { RenderJobData, RenderResult } from '../engine/queue.js';
import { parseSpec, type RenderSpec } from '../engine/spec.js';
import { outputKey, type Storage } from '../engine/storage.js';
import { fetchAssets } from './assets.js';
import { renderVideo } from './ffmpeg.js';
import { makeWorkDir } from './work-dir.js';

export interface RenderJobDeps {
  config: Config;
  storage: Storage;
  fontFile: string;
  log: Logger;
  metrics?: Metrics;
}

/** Throttle progress writes to Redis: at most one a second, and only on change. */
function progressReporter(job: Job, from: number, to: number) {
  let last = -1;
  let lastAt = 0;
  return (fraction: number) => {
    const pct = Math.round(from + (to - from) * Math.min(1, Math.max(0, fraction)));
    const now = Date.now();
    if (pct === last || now - lastAt < 1000) return;
    last = pct;
    lastAt = now;
    job.updateProgress(pct).catch(() => {});
  };
}

/**
 * Failure reasons travel as `code: message` (the API shows them to users).
 * Errors that retrying cannot fix skip the remaining attempts.
 */
function jobError(err: unknown, timedOut: boolean): Error {
  if (timedOut) return new UnrecoverableError(`render_timeout: ${RENDER_ERRORS.render_timeout}`);
  if (err instanceof RenderError) {
    const reason = `${err.code}: ${err.message}`;
    return err.retryable ? new Error(reason) : new UnrecoverableError(reason);
  }
  return new Error(`render_failed: ${RENDER_ERRORS.render_failed}`);
}

function checkedSpec(input: unknown): RenderSpec {
  try {
    return parseSpec(input);
  } catch (err) {
    throw new RenderError('spec_invalid', `${RENDER_ERRORS.spec_invalid} ${(err as Error).message}`, false);
  }
}

export function renderProcessor(deps: RenderJobDeps): Processor<RenderJobData, RenderResult> {
  const { config, storage } = deps;
  return async (job, _token, jobSignal) => {
    const log = deps.log.child({ videoId: job.data.videoId, jobId: job.id, attempt: job.attemptsMade + 1 });
    const timeout = AbortSignal.timeout(config.worker.timeoutSeconds * 1000);
    const signal = jobSignal ? AbortSignal.any([jobSignal, timeout]) : timeout;
    // Named after this process, so a worker starting after a crash can tell it is stale.
    const dir = await makeWorkDir(config.worker.tmpDir ?? tmpdir(), String(job.data.videoId));
    let stage = 'fetch';
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      stage = name;
      const end = deps.metrics?.renderDuration.startTimer({ stage: name });
      try {
        const out = await fn();
        end?.({ outcome: 'ok' });
        return out;
      } catch (err) {
        end?.({ outcome: 'error' });
        throw err;
      }
    };
    try {
      // The queue is an API boundary too: anything could have enqueued this.
      const spec = checkedSpec(job.data.spec);
      const limits = { maxPixels: config.worker.maxAssetPixels, maxSide: config.worker.maxAssetSide };
      const assets = await timed('fetch', () => fetchAssets(spec, dir, { assetsDir: config.worker.assetsDir, limits, signal }));
      const out = await timed('render', () => renderVideo({
        spec,
        assets,
        workDir: dir,
        fontFile: deps.fontFile,
        preset: config.worker.x264Preset,
        maxPixels: limits.maxPixels,
        onProgress: progressReporter(job, 2, 95),
        signal,
      }));
      // A fresh render id per attempt: a re-render never overwrites a key a CDN may hold.
      const renderId = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
      // Private outputs go under private/, which only signed URLs reach.
      const visibility = job.data.visibility === 'private' ? 'private' : 'public';
      const videoKey = outputKey(job.data.videoId, renderId, 'mp4', visibility);
      const posterKey = outputKey(job.data.videoId, renderId, 'jpg', visibility);
      const [{ bytes }] = await timed('upload', () => Promise.all([
        storage.put(videoKey, out.videoPath, 'video/mp4'),
        storage.put(posterKey, out.posterPath, 'image/jpeg'),
      ]).catch((err) => {
        throw new RenderError('upload_failed', RENDER_ERRORS.upload_failed, true, { cause: err });
      }));
      await job.updateProgress(100);
      log.info({ videoKey, bytes, durationMs: out.durationMs }, 'render succeeded');
      return { videoKey, posterKey, durationMs: out.durationMs, width: out.width, height: out.height, bytes };
    } catch (err) {
      log.warn({ err, stage }, 'render failed');
      throw jobError(err, timeout.aborted);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
