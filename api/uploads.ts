// POST /v1/uploads: a caller asks to upload one file (declaring its content
// type and largest size) and gets a form POST to send straight to the store,
// never through the API: an S3 presigned POST, or with fs storage the API's
// own signed /uploads/<token> (api/upload-receive.ts). Either way the store
// accepts only the key `uploads/<userId>/<id>`, exactly the declared type and
// 1…bytes bytes, until expiresAt. The caller then names the file in a spec as
// `upload://<id>` (checked at submit by api/upload-refs.ts).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../engine/db.js';
import { VgenError } from '../engine/errors.js';
import { newId } from '../engine/ids.js';
import type { Storage } from '../engine/storage.js';
import { UPLOAD_CONTENT_TYPES, UPLOAD_REF_PREFIX, uploadKey } from '../engine/uploads.js';
import { perUserRateLimit } from './quotas.js';
import { insertUpload } from './upload-store.js';
import { ErrorBody } from './schemas.js';

export interface UploadDeps {
  db: Db;
  storage: Storage;
  /** UPLOAD_MAX_BYTES: the most `bytes` may be. */
  maxBytes: number;
  /** UPLOAD_URL_TTL_SECONDS: how long the form may be used. */
  urlTtlSeconds: number;
  /** USER_UPLOADS_PER_MINUTE; without it, no limit. */
  perMinute?: number;
}

const TYPE_LIST = UPLOAD_CONTENT_TYPES.join(', ');

export const UploadBody = Type.Object(
  {
    object: Type.Literal('upload'),
    id: Type.String({ description: 'upl_ and 25 characters [0-9a-z].' }),
    ref: Type.String({ description: 'What a render spec names this file by: upload://<id>.' }),
    method: Type.Literal('POST'),
    url: Type.String({ description: 'Where to send the form: the S3 bucket, or this API\'s /uploads/<token> with local storage.' }),
    fields: Type.Record(Type.String(), Type.String(), {
      description: 'Form fields to send as multipart/form-data, in this order, followed by the file as a part named `file` (last).',
    }),
    contentType: Type.String(),
    maxBytes: Type.Integer(),
    expiresAt: Type.String({ format: 'date-time', description: 'The form is refused after this; the uploaded file stays usable.' }),
  },
  { $id: 'Upload', title: 'Upload' },
);

export async function uploadRoutes(app: FastifyInstance, deps: UploadDeps) {
  const { db, storage } = deps;
  const CreateUpload = Type.Object(
    {
      contentType: Type.String({ pattern: `^(${UPLOAD_CONTENT_TYPES.join('|')})$`, description: `one of ${TYPE_LIST}` }),
      bytes: Type.Integer({ minimum: 1, maximum: deps.maxBytes, description: `The largest the file may be, in bytes (1 to ${deps.maxBytes}); the store refuses a larger one.` }),
    },
    { additionalProperties: false },
  );
  const rate = deps.perMinute ? perUserRateLimit(app, { name: 'upload', perMinute: deps.perMinute, what: 'uploads created' }) : undefined;

  app.post('/v1/uploads', {
    onRequest: rate ? [app.authenticate, rate] : app.authenticate,
    bodyLimit: 4 * 1024,
    schema: {
      tags: ['uploads'],
      summary: 'Upload a file for your specs',
      description: 'Answers a form POST to send the file to, straight to storage: the fields, then the file as the part `file`. '
        + 'The store accepts only the declared content type and at most `bytes` bytes, once, until expiresAt. Then name the file in a spec as `ref` '
        + '(upload://<id>); only your own uploads are accepted there, and each is checked like any asset before rendering.',
      security: [{ bearer: [] }],
      body: CreateUpload,
      response: { 201: UploadBody, 400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 415: ErrorBody, 429: ErrorBody, 503: ErrorBody },
    },
  }, async (req, reply) => {
    const { contentType, bytes } = req.body as { contentType: string; bytes: number };
    const userId = req.auth!.id;
    const id = newId('upl');
    const key = uploadKey(userId, id);
    let form: Awaited<ReturnType<Storage['presignPost']>>;
    try {
      // Signed locally (no request to the store), before the row: a failure leaves nothing behind.
      form = await storage.presignPost(key, { contentType, maxBytes: bytes, ttlSeconds: deps.urlTtlSeconds });
    } catch (err) {
      req.log.warn({ err }, 'signing an upload form failed');
      throw new VgenError('unavailable', 'storage credentials are unavailable, so no upload form could be signed; retry later');
    }
    await insertUpload(db, { id, userId, key, contentType, maxBytes: bytes, expiresAt: form.expiresAt });
    return reply.status(201).send({
      object: 'upload',
      id,
      ref: `${UPLOAD_REF_PREFIX}${id}`,
      method: 'POST',
      url: form.url,
      fields: form.fields,
      contentType,
      maxBytes: bytes,
      expiresAt: form.expiresAt.toISOString(),
    });
  });
}
