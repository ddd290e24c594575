// POST /uploads/<token>: the fs-storage stand-in for an S3 presigned POST
// (the form POST /v1/uploads hands out). Outside /v1 and its bearer auth, like
// a bucket: the token is the credential (engine/upload-token.ts), binding the
// key, the exact content type, the largest size and the expiry. The body is
// the same multipart/form-data a client sends to S3: the fields (`key`,
// `Content-Type`), then the file as the part `file`; fields after it are
// ignored, as S3 does. The file streams to disk with the byte limit enforced
// while it arrives (engine/storage-fs.ts receiveUpload), is linked into place
// only when whole, and never replaces a file already received (409).
import fastifyMultipart, { type MultipartFile } from '@fastify/multipart';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { VgenError } from '../engine/errors.js';
import { receiveUpload } from '../engine/storage-fs.js';
import { StoredObjectError } from '../engine/storage.js';
import { verifyUpload } from '../engine/upload-token.js';
import { UPLOAD_PREFIX } from '../engine/uploads.js';

export interface UploadReceiveOptions {
  mediaDir: string;
  /** From uploadSigningKey(JWT_SECRET): the key fs storage signs upload URLs with. */
  signingKey: Buffer;
}

/** Busboy's limits: a form is two short fields and one file. */
const FORM_LIMITS = { fields: 8, fieldSize: 1024, fieldNameSize: 100, files: 1, parts: 10, headerPairs: 20 };

/** A form field by name, compared without case (S3 does too); undefined if absent or sent twice. */
function formField(file: MultipartFile, name: string): string | undefined {
  const found = Object.entries(file.fields).filter(([k]) => k.toLowerCase() === name.toLowerCase());
  if (found.length !== 1) return undefined;
  const value = found[0]![1];
  return value && !Array.isArray(value) && value.type === 'field' ? String(value.value) : undefined;
}

/** Errors from @fastify/multipart and busboy, in the API's error shape. */
function formError(err: unknown): VgenError {
  if (err instanceof VgenError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (code === 'FST_REQ_FILE_TOO_LARGE') return new VgenError('body_too_large', 'the file is larger than this upload allows', 'file');
  if (/^FST_(PARTS|FILES|FIELDS)_LIMIT$/.test(code)) return new VgenError('body_too_large', 'the form has more parts than an upload needs (its fields, then one file)', 'body');
  return new VgenError('invalid_request', 'the body is not a valid multipart/form-data form', 'body');
}

/** Register with `{ prefix: '/uploads' }`; only when storage is fs. */
export async function uploadReceiveRoutes(app: FastifyInstance, opts: UploadReceiveOptions) {
  // Encapsulated: multipart bodies are parsed in this plugin's routes only.
  await app.register(fastifyMultipart, { limits: FORM_LIMITS });
  // Any other body is left unread here and refused below with a 415 naming the form.
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  app.post('/*', { schema: { hide: true } }, async (req, reply) => {
    // A refusal may come before the rest of the form has arrived: stop
    // parsing it and discard what is still coming (up to the request timeout),
    // so the client, still sending, reads this answer instead of a reset
    // connection (closing at once made fetch() fail with EPIPE, not a 413).
    const refused = (err: VgenError): VgenError => {
      req.raw.unpipe();
      req.raw.resume();
      return err;
    };
    const token = (req.params as { '*': string })['*'];
    const check = verifyUpload(opts.signingKey, token);
    if (!check.ok)
      throw refused(new VgenError('forbidden', check.reason === 'expired' ? 'this upload URL has expired: create a new upload' : 'this upload URL is not valid', 'url'));
    const { grant } = check;
    if (!grant.key.startsWith(UPLOAD_PREFIX)) throw refused(new VgenError('forbidden', 'this upload URL is not valid', 'url'));
    if (!req.isMultipart())
      throw refused(new VgenError('unsupported_media_type', 'send the upload as multipart/form-data: the fields, then the file as the part `file`', 'content-type'));

    let file: MultipartFile | undefined;
    try {
      // One byte over the limit is let through busboy so receiveUpload sees it and refuses the file (busboy would cut it silently).
      file = await req.file({ limits: { ...FORM_LIMITS, fileSize: grant.maxBytes + 1 } });
    } catch (err) {
      throw refused(formError(err));
    }
    if (!file || file.fieldname !== 'file')
      throw refused(new VgenError('invalid_request', 'the form has no file: send it as the last part, named `file`', 'file'));
    if (formField(file, 'key') !== grant.key)
      throw refused(new VgenError('forbidden', 'the key field must be the key this upload URL was made for', 'key'));
    const contentType = formField(file, 'Content-Type');
    if (contentType !== grant.contentType)
      throw refused(new VgenError('unsupported_media_type', `this upload accepts only Content-Type ${grant.contentType}`, 'Content-Type'));

    try {
      await receiveUpload(opts.mediaDir, grant.key, file.file, grant.maxBytes);
    } catch (err) {
      if (err instanceof StoredObjectError && err.reason === 'too_large') throw refused(new VgenError('body_too_large', `the file is larger than this upload allows (${grant.maxBytes} bytes)`, 'file'));
      if (err instanceof StoredObjectError && err.reason === 'empty') throw refused(new VgenError('invalid_request', 'the file is empty', 'file'));
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw refused(new VgenError('conflict', 'this upload has already been received; an upload never changes', 'key'));
      // A disk error is ours (500); anything else broke while parsing the sender's form.
      if ((err as NodeJS.ErrnoException).syscall) throw err;
      throw refused(formError(err));
    }
    return noContent(reply);
  });
}

/** S3 answers a POST upload 204 by default; so does this. */
const noContent = (reply: FastifyReply) => reply.code(204).send();
