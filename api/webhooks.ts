// Webhook routes: the caller's signing secret (made on first read, rotated on
// request) and a video's delivery attempts. Delivery itself is
// api/webhook-delivery.ts; the signature scheme is engine/webhook-signature.ts.
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { ErrorBody } from './schemas.js';
import { VideoIdParams } from './video-events.js';
import { getVideo } from './video-store.js';
import { listDeliveries, rotateWebhookSecret, webhookSecret, type WebhookSecretRow } from './webhook-store.js';

const SecretBody = Type.Object(
  {
    object: Type.Literal('webhook_secret'),
    secret: Type.String({ description: 'whsec_…: the HMAC-SHA256 key of the Vgen-Signature header on every webhook this account receives (docs/api.md, "Webhooks").' }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'WebhookSecret', title: 'WebhookSecret' },
);

const DeliveryBody = Type.Object(
  {
    object: Type.Literal('webhook_delivery'),
    id: Type.String(),
    videoId: Type.String(),
    attempt: Type.Integer({ description: '1 for the first attempt of a webhook, then 2, 3, … for its retries.' }),
    url: Type.String(),
    event: Type.String({ description: 'video.succeeded, video.failed or video.canceled.' }),
    outcome: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')], { description: 'succeeded: the receiver answered 2xx; nothing is sent again.' }),
    httpStatus: Type.Union([Type.Integer(), Type.Null()], { description: 'The receiver\'s status code; null when it never answered.' }),
    error: Type.Union([Type.String(), Type.Null()]),
    durationMs: Type.Integer(),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'WebhookDelivery', title: 'WebhookDelivery' },
);

/** Newest first; one webhook makes at most 12 attempts, so this covers several. */
const DELIVERIES_SHOWN = 100;

const presentSecret = (row: WebhookSecretRow) => ({ object: 'webhook_secret' as const, secret: row.secret, createdAt: row.created_at.toISOString() });

export async function webhookRoutes(app: FastifyInstance, deps: { db: Db }) {
  const { db } = deps;
  const schema = (summary: string, description: string, extra: Record<string, unknown>) =>
    ({ tags: ['webhooks'], summary, description, security: [{ bearer: [] }], ...extra });

  app.get('/v1/account/webhook-secret', {
    onRequest: app.authenticate,
    schema: schema('Get your webhook signing secret',
      'Made on the first call, then the same until rotated. Every webhook to your callback URLs is signed with it (header Vgen-Signature).',
      { response: { 200: SecretBody, 401: ErrorBody } }),
  }, async (req) => presentSecret(await webhookSecret(db, req.auth!.id)));

  app.post('/v1/account/webhook-secret/rotate', {
    onRequest: app.authenticate,
    schema: schema('Rotate your webhook signing secret',
      'Replaces the secret at once: every attempt from now on, retries of earlier webhooks included, is signed with the new one.',
      { response: { 200: SecretBody, 401: ErrorBody } }),
  }, async (req) => presentSecret(await rotateWebhookSecret(db, req.auth!.id)));

  app.get('/v1/videos/:id/webhook-deliveries', {
    onRequest: app.authenticate,
    schema: schema('List a video\'s webhook attempts, newest first',
      `Owner only (anyone else gets 404). Every attempt to POST the video to its callbackUrl, the last ${DELIVERIES_SHOWN} at most.`,
      {
        params: VideoIdParams,
        response: { 200: Type.Object({ object: Type.Literal('list'), data: Type.Array(DeliveryBody) }), 401: ErrorBody, 404: ErrorBody },
      }),
  }, async (req) => {
    const { id } = req.params as { id: string };
    const video = await getVideo(db, id);
    if (!video || video.user_id !== req.auth!.id) throw new VgenError('not_found', 'no such video', 'id');
    const rows = await listDeliveries(db, id, DELIVERIES_SHOWN);
    return {
      object: 'list',
      data: rows.map((r) => ({
        object: 'webhook_delivery', id: r.id, videoId: r.video_id, attempt: r.attempt, url: r.url, event: r.event, outcome: r.outcome,
        httpStatus: r.http_status, error: r.error, durationMs: r.duration_ms, createdAt: r.created_at.toISOString(),
      })),
    };
  });
}
