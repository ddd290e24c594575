// Periodic upkeep in every API process, independent of Redis:
//  - delete storage objects a video no longer uses (a move whose deletion failed),
//  - move the files of succeeded videos that sit under the wrong prefix for their
//    visibility (a public video whose copy out of private/ failed at settle, or
//    a render by an older worker that wrote under videos/),
//  - delete Idempotency-Keys older than 24 hours,
//  - queue the webhooks owed by terminal videos whose enqueue was missed (the
//    outbox, api/webhook-delivery.ts; skipped while Redis is down).
// Every step is idempotent, so replicas running it at once only repeat work.
import type { Db } from '../engine/db.js';
import type { Logger } from '../engine/log.js';
import type { Storage } from '../engine/storage.js';
import { sweepExpiredKeys } from './idempotency.js';
import { placeVideoMedia, purgeMedia } from './media-sync.js';
import { misplacedMedia, pendingMediaDeletions } from './video-store.js';

export interface MaintenanceOptions {
  db: Db;
  storage: Storage;
  log: Logger;
  intervalMs?: number;
  webhooks?: { sweep(): Promise<number> };
}

export function startMaintenance(opts: MaintenanceOptions) {
  const { db, storage, log } = opts;

  async function runOnce(): Promise<{ deleted: number; moved: number; keysExpired: number; webhooksQueued: number }> {
    const keys = await pendingMediaDeletions(db, { limit: 100 });
    let deleted = 0;
    for (const key of keys) {
      try {
        await purgeMedia(db, storage, [key]);
        deleted++;
      } catch (err) {
        log.warn({ err, key }, 'maintenance: deleting an unused media object failed; will retry');
      }
    }
    let moved = 0;
    for (const id of await misplacedMedia(db, 100)) {
      try {
        await placeVideoMedia(db, storage, id);
        moved++;
      } catch (err) {
        log.warn({ err, videoId: id }, 'maintenance: moving media to match visibility failed; will retry');
      }
    }
    const keysExpired = await sweepExpiredKeys(db);
    const webhooksQueued = (await opts.webhooks?.sweep().catch((err) => {
      log.warn({ err }, 'maintenance: the webhook outbox sweep failed; will retry');
      return 0;
    })) ?? 0;
    return { deleted, moved, keysExpired, webhooksQueued };
  }

  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = runOnce()
      .then(() => {}, (err) => log.warn({ err }, 'maintenance pass failed'))
      .finally(() => { running = undefined; });
  }, opts.intervalMs ?? 60_000);
  timer.unref();

  return {
    runOnce,
    /** Stop the timer and wait for a pass in progress. */
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
