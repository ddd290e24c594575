// Idempotency keys, as in Stripe's API: the first request with a key stores
// its response; a retry with the same key and body gets that response back and
// creates nothing; the same key with another body is refused. A key lasts 24
// hours: after that it may be used as new, and the maintenance pass deletes it.
//
// The claim, the video row and the stored response commit in ONE transaction,
// after the job is enqueued (api/videos.ts). A concurrent retry blocks on the
// uncommitted claim, so it sees either the committed response (a replay) or,
// if the first request failed and rolled back, no claim at all: it then runs as
// a first request itself. A retry never sees a response for a video that will
// not exist.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../engine/canonical-json.js';
import type { Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';

export const IDEMPOTENCY_KEY_TTL_HOURS = 24;

export { canonicalJson };

export const requestHash = (request: unknown) => createHash('sha256').update(canonicalJson(request)).digest('hex');

/**
 * Claim a key inside the caller's transaction. Returns null when the claim is
 * new (or replaces an expired one), or the stored response of the first
 * request. A concurrent first request holds the row lock, so this waits for it
 * to commit (then replays it) or roll back (then claims the key itself).
 */
export async function claimKey<T>(q: Queryable, userId: string, key: string, hash: string): Promise<T | null> {
  const claimed = await q.query(
    `INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
     ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL, created_at = now()
       WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_KEY_TTL_HOURS})
     RETURNING key`,
    [userId, key, hash],
  );
  if (claimed.length === 1) return null;
  const [prior] = await q.query<{ request_hash: string; response_body: T | null }>(
    'SELECT request_hash, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2',
    [userId, key],
  );
  if (prior!.request_hash !== hash)
    throw new VgenError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', 'idempotency-key');
  // Claims commit only with their response; kept as a guard should that ever change.
  if (prior!.response_body === null)
    throw new VgenError('conflict', 'a request with this Idempotency-Key is still in progress; retry it later', 'idempotency-key');
  return prior!.response_body;
}

export async function storeResponse(q: Queryable, userId: string, key: string, status: number, body: unknown): Promise<void> {
  await q.query('UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2', [userId, key, status, JSON.stringify(body)]);
}

/** Delete keys older than the TTL, in batches; returns how many went. */
export async function sweepExpiredKeys(q: Queryable, batch = 10_000): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await q.query(
      `DELETE FROM idempotency_keys WHERE (user_id, key) IN (
         SELECT user_id, key FROM idempotency_keys
         WHERE created_at < now() - make_interval(hours => ${IDEMPOTENCY_KEY_TTL_HOURS}) LIMIT $1)
       RETURNING 1`,
      [batch],
    );
    total += rows.length;
    if (rows.length < batch) return total;
  }
}
