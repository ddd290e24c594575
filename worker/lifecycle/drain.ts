// Draining: a worker told to drain takes no new job and finishes the ones it
// holds. A drain with a deadline (SIGTERM, a spot notice, `--deadline`) hands
// a job it cannot finish in time back to the queue instead:
//
//   1. the render is aborted (the processor's AbortSignal), and
//   2. the job goes from active straight back to the head of `wait` with
//      Job.moveToWait(token) (BullMQ's moveJobFromActiveToWait script: it
//      checks our lock token, removes the lock, RPUSHes the id where the next
//      worker pops it). That script touches neither attemptsMade (`atm`) nor the
//      stall counter (`stc`), so the hand-back costs the job no attempt and no
//      part of its lost-worker budget;
//   3. the processor then throws BullMQ's WaitingError, which tells the worker
//      the job was moved on purpose: no moveToFailed (which would count an
//      attempt) and no `failed` event.
//
// Another worker picks the job up at once, not after a stall timeout. Only
// BullMQ's own `attemptsStarted` counter grows (we set no maxStartedAttempts).
// A render that still completes (it was past the point of no abort: upload)
// completes normally; it is never both handed back and completed.
//
// Canceling (engine/cancel.ts) also aborts the job's signal, but the job then
// ends: it fails with UnrecoverableError('canceled: …'), so no attempt is left
// to retry it, and is never handed back. The API has already moved the video
// to `canceled`, so that failure changes no row.
import { UnrecoverableError, WaitingError, type Job, type Processor } from 'bullmq';
import { JobCanceledError } from '../../engine/cancel.js';
import type { Logger } from '../../engine/log.js';

export interface ActiveJob {
  job: Job;
  startedAt: number;
  handBack: boolean;
  canceled?: boolean;
  abort: AbortController;
}

export interface JobGate<D, R> {
  /** The processor to give BullMQ: the inner one, made drainable. */
  processor: Processor<D, R>;
  active: ReadonlyMap<string, ActiveJob>;
  /** Jobs this worker finished (completed or failed an attempt); hand-backs are not counted. */
  readonly jobsDone: number;
  /** Hand back every active job now, and any job that starts from now on. */
  handBackAll(reason: string): void;
  /** Hand back the active jobs that, at their current pace, would not finish by the deadline. */
  handBackLate(deadline: number): void;
  /** How many jobs were handed back. */
  readonly handedBack: number;
  /** Abort a job this worker holds because its video was canceled; false if it holds no such job. */
  cancel(jobId: string): boolean;
}

export interface JobGateOptions {
  log: Logger;
  onChange?: () => void;
  /** Asked as each job starts: was it canceled before this worker took it? */
  isCanceled?: (jobId: string) => Promise<boolean>;
}

export function createJobGate<D, R>(inner: Processor<D, R>, opts: JobGateOptions): JobGate<D, R> {
  const active = new Map<string, ActiveJob>();
  let jobsDone = 0;
  let handedBack = 0;
  let refuseAll: string | undefined;

  const handBack = (entry: ActiveJob, reason: string) => {
    if (entry.handBack || entry.canceled) return;
    entry.handBack = true;
    opts.log.info({ videoId: entry.job.id, jobId: entry.job.id, reason }, 'handing the job back to the queue');
    entry.abort.abort(new Error(`drain: ${reason}`));
  };

  const cancel = (entry: ActiveJob) => {
    if (entry.canceled) return;
    entry.canceled = true;
    opts.log.info({ videoId: entry.job.id, jobId: entry.job.id }, 'video canceled: stopping its render');
    entry.abort.abort(new JobCanceledError(entry.job.id!));
  };

  const processor: Processor<D, R> = async (job, token, signal) => {
    const entry: ActiveJob = { job, startedAt: Date.now(), handBack: false, abort: new AbortController() };
    const id = job.id!;
    active.set(id, entry);
    opts.onChange?.();
    try {
      // In the map first, then asked: a cancel from now on finds the entry, one before it left the wish.
      if (opts.isCanceled && (await opts.isCanceled(id).catch(() => false))) cancel(entry);
      if (refuseAll) handBack(entry, refuseAll); // fetched in the instant the deadline passed
      entry.abort.signal.throwIfAborted();
      const result = await inner(job, token, signal ? AbortSignal.any([signal, entry.abort.signal]) : entry.abort.signal);
      jobsDone++;
      return result;
    } catch (err) {
      if (entry.canceled) {
        jobsDone++;
        throw new UnrecoverableError(new JobCanceledError(id).message);
      }
      if (!entry.handBack) {
        jobsDone++;
        throw err;
      }
      try {
        await job.moveToWait(token);
        handedBack++;
        opts.log.info({ videoId: id, jobId: id, attemptsMade: job.attemptsMade }, 'job handed back; it runs next on another worker');
      } catch (moveErr) {
        // The lock was already gone (the job stalled meanwhile and was re-queued): nothing to hand back.
        opts.log.warn({ videoId: id, jobId: id, err: (moveErr as Error).message }, 'could not hand the job back; the stall check re-queues it');
      }
      throw new WaitingError();
    } finally {
      active.delete(id);
      opts.onChange?.();
    }
  };

  return {
    processor,
    active,
    get jobsDone() {
      return jobsDone;
    },
    get handedBack() {
      return handedBack;
    },
    cancel(jobId) {
      const entry = active.get(jobId);
      if (!entry) return false;
      cancel(entry);
      return true;
    },
    handBackAll(reason) {
      refuseAll = reason;
      for (const entry of active.values()) handBack(entry, reason);
    },
    handBackLate(deadline) {
      const now = Date.now();
      const left = deadline - now;
      for (const entry of active.values()) {
        const p = typeof entry.job.progress === 'number' ? entry.job.progress : 0;
        // Too early to judge below 5 %; otherwise extrapolate, giving the render a 25 % benefit of the doubt.
        if (p < 5 || p >= 100) continue;
        const remaining = ((now - entry.startedAt) * (100 - p)) / p;
        if (remaining > left * 1.25) handBack(entry, `would not finish before the drain deadline (about ${Math.round(remaining / 1000)} s left at ${p} %)`);
      }
    },
  };
}
