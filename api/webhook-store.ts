// Webhook queries, one named function each: users' signing secrets, the
// outbox (terminal videos still owed a webhook job), and the record of every
// delivery attempt.
import type { Queryable } from '../engine/db.js';
import { newId } from '../engine/ids.js';
import { newWebhookSecret } from '../engine/webhook-signature.js';
import type { VideoRow } from './video-store.js';

export interface WebhookSecretRow {
  user_id: string;
  secret: string;
  created_at: Date;
}

export interface WebhookDeliveryRow {
  id: string;
  video_id: string;
  attempt: number;
  url: string;
  event: string;
  outcome: 'succeeded' | 'failed';
  http_status: number | null;
  error: string | null;
  duration_ms: number;
  created_at: Date;
}

const TERMINAL = `status IN ('succeeded', 'failed', 'canceled')`;

/** The user's secret, made on first use. Concurrent first calls agree: the losing INSERT does nothing and both read the winner. */
export async function webhookSecret(q: Queryable, userId: string): Promise<WebhookSecretRow> {
  await q.query('INSERT INTO webhook_secrets (user_id, secret) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING', [userId, newWebhookSecret()]);
  return (await q.query<WebhookSecretRow>('SELECT * FROM webhook_secrets WHERE user_id = $1', [userId]))[0]!;
}

/** Replace the user's secret; every webhook signed from now on uses the new one. */
export async function rotateWebhookSecret(q: Queryable, userId: string): Promise<WebhookSecretRow> {
  const rows = await q.query<WebhookSecretRow>(
    `INSERT INTO webhook_secrets (user_id, secret) VALUES ($1, $2)
     ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now() RETURNING *`,
    [userId, newWebhookSecret()],
  );
  return rows[0]!;
}

/**
 * A video row with the columns webhooks use. `finished_ms` (finished_at in
 * whole milliseconds, computed here so no driver's date parsing matters)
 * names the terminal state: a failed video retried later ends with another.
 */
export type WebhookVideoRow = VideoRow & { callback_url: string | null; webhook_queued_at: Date | null; finished_ms: number | null };

const FINISHED_MS = 'floor(extract(epoch FROM finished_at) * 1000)::float8';

export async function videoForWebhook(q: Queryable, id: string): Promise<WebhookVideoRow | null> {
  return (await q.query<WebhookVideoRow>(`SELECT *, ${FINISHED_MS} AS finished_ms FROM videos WHERE id = $1`, [id]))[0] ?? null;
}

/** The webhook job of the terminal state that ended at `finishedMs` is in the queue (a state since replaced is left alone). */
export async function markWebhookQueued(q: Queryable, videoId: string, finishedMs: number): Promise<void> {
  await q.query(
    `UPDATE videos SET webhook_queued_at = now() WHERE id = $1 AND ${FINISHED_MS} = $2 AND webhook_queued_at IS NULL AND ${TERMINAL}`,
    [videoId, finishedMs],
  );
}

/** Terminal videos with a callback URL whose webhook was never queued, settled at least `graceSeconds` ago (uses videos_webhook_outbox). */
export async function webhooksOwed(q: Queryable, graceSeconds: number, limit: number): Promise<string[]> {
  const rows = await q.query<{ id: string }>(
    `SELECT id FROM videos
     WHERE callback_url IS NOT NULL AND webhook_queued_at IS NULL AND ${TERMINAL} AND finished_at <= now() - make_interval(secs => $1)
     ORDER BY finished_at LIMIT $2`,
    [graceSeconds, limit],
  );
  return rows.map((r) => r.id);
}

export async function recordDelivery(q: Queryable, d: Omit<WebhookDeliveryRow, 'id' | 'created_at'>): Promise<void> {
  await q.query(
    `INSERT INTO webhook_deliveries (id, video_id, attempt, url, event, outcome, http_status, error, duration_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [newId('whd'), d.video_id, d.attempt, d.url, d.event, d.outcome, d.http_status, d.error, d.duration_ms],
  );
}

/** A video's delivery attempts, newest first. */
export async function listDeliveries(q: Queryable, videoId: string, limit: number): Promise<WebhookDeliveryRow[]> {
  return q.query<WebhookDeliveryRow>(
    'SELECT * FROM webhook_deliveries WHERE video_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2',
    [videoId, limit],
  );
}
