// Idempotency keys, as in Stripe's API: the first request with a key stores
// its response; a retry with the same key and body gets that response back and
// creates nothing; the same key with another body is refused.
import { createHash } from 'node:crypto';
import type { Queryable } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';

export const requestHash = (request: unknown) => createHash('sha256').update(JSON.stringify(request)).digest('hex');

/**
 * Claim a key inside the caller's transaction. Returns null when the claim is
 * new, or the stored response of the first request. A concurrent first request
 * holds the row lock, so this waits for it to commit and then replays it.
 */
export async function claimKey<T>(q: Queryable, userId: string, key: string, hash: string): Promise<T | null> {
  const claimed = await q.query(
    'INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING key',
    [userId, key, hash],
  );
  if (claimed.length === 1) return null;
  const [prior] = await q.query<{ request_hash: string; response_body: T }>(
    'SELECT request_hash, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2',
    [userId, key],
  );
  if (prior!.request_hash !== hash)
    throw new VgenError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', 'idempotency-key');
  return prior!.response_body;
}

export async function storeResponse(q: Queryable, userId: string, key: string, status: number, body: unknown): Promise<void> {
  await q.query('UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2', [userId, key, status, JSON.stringify(body)]);
}

/** Forget a claim whose request did not go through, so a retry can run it. */
export async function releaseKey(q: Queryable, userId: string, key: string): Promise<void> {
  await q.query('DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2', [userId, key]);
}
