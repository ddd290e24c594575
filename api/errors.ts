// One error shape for every failure: { error: { code, message, field? } },
// with codes from engine/errors.ts. Unknown errors become a logged 500 that
// tells the client nothing internal.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { poolExhausted } from '../engine/db.js';
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
    case 'FST_ERR_BAD_URL':
      return new VgenError('invalid_request', 'the URL path is not valid: a percent-escape does not decode to UTF-8', 'url');
    case 'FST_ERR_MAX_PARAM_LENGTH': // longer than any id: names nothing, like a malformed id
      return new VgenError('not_found', 'no such resource: a path parameter is longer than any id');
  }
  // Parser errors (malformed JSON) arrive as a SyntaxError with status 400.
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message)))
    return new VgenError('invalid_json', 'body is not valid JSON', 'body');
  if (err.statusCode === 429) return new VgenError('rate_limited', 'too many requests, slow down');
  // A database pool with no free connection in time (engine/db.ts maps its own calls; this catches the rest).
  const busy = poolExhausted(err);
  if (busy) return busy;
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

/**
 * Errors Fastify raises before routing (a URL that does not percent-decode,
 * an over-long path parameter): the factory option `frameworkErrors`, so they
 * answer in the one error shape too.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const e = toVgenError(err);
  void reply.status(e.statusCode).send({ error: e.toJSON() });
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (a malformed
 * header, request line and headers over 16 KiB, as a URL with thousands of
 * query parameters makes, a timeout): the factory option
 * `clientErrorHandler`, written on the raw socket in the one error shape.
 */
export function clientErrorHandler(err: ConnectionError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new VgenError('request_timeout', 'the request did not arrive in time')
    : err.code === 'HPE_HEADER_OVERFLOW' ? new VgenError('headers_too_large', 'the URL and headers are larger than the limit (16 KiB by default)', 'headers')
    : new VgenError('invalid_request', 'the request is not valid HTTP/1.1', /HEADER|TOKEN/.test(err.code ?? '') ? 'headers' : undefined);
  if (socket.writable) {
    const body = JSON.stringify({ error: e.toJSON() });
    socket.write(
      `HTTP/1.1 ${e.statusCode} ${STATUS_CODES[e.statusCode]}\r\n` +
        `Connection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
