// One error shape for every failure: { error: { code, message, field? } },
// with codes from engine/errors.ts. Unknown errors become a logged 500 that
// tells the client nothing internal.
import type { FastifyError, FastifyInstance } from 'fastify';
import { VgenError } from '../engine/errors.js';

function toVgenError(err: FastifyError): VgenError {
  if (err instanceof VgenError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new VgenError('body_too_large', 'request body is larger than the limit', 'body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new VgenError('invalid_json', 'body is not valid JSON', 'body');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new VgenError('unsupported_media_type', 'send the body as application/json', 'content-type');
  }
  // Parser errors (malformed JSON) arrive as a SyntaxError with status 400.
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message)))
    return new VgenError('invalid_json', 'body is not valid JSON', 'body');
  if (err.statusCode === 429) return new VgenError('rate_limited', 'too many requests, slow down');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new VgenError('invalid_request', err.message);
  return new VgenError('internal', 'internal error');
}

export function registerErrorHandling(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toVgenError(err);
    if (e.code === 'internal') req.log.error({ err }, 'request failed');
    else if (e.statusCode >= 500) req.log.warn({ code: e.code, url: req.url }, e.message);
    return reply.status(e.statusCode).send({ error: e.toJSON() });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: new VgenError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON() }),
  );
}
