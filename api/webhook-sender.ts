// One webhook attempt: POST the signed body to the callback URL through the
// vetted-address path (engine/outbound.ts), within a deadline, following no
// redirect, reading at most a few KB of the answer and discarding them. It
// never throws: every way an attempt can end is an outcome to record.
import type { IncomingMessage } from 'node:http';
import { outboundRequest, OutboundRefused, type OutboundOptions } from '../engine/outbound.js';
import { sign } from '../engine/webhook-signature.js';

export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Bytes of a receiver's answer read before the connection is closed; the rest is never read. */
const MAX_RESPONSE_BYTES = 4096;

export interface WebhookAttempt {
  url: string;
  /** The exact bytes sent and signed. */
  body: string;
  secret: string;
  /** `video.succeeded`, `video.failed`, `video.canceled`. */
  event: string;
  /** The same on every attempt of one webhook, so receivers can drop repeats. */
  deliveryId: string;
  timeoutMs?: number;
  outbound?: OutboundOptions;
  /** Cuts the attempt short (the API shutting down). */
  signal?: AbortSignal;
}

export interface AttemptOutcome {
  ok: boolean;
  httpStatus: number | null;
  /** Why it failed, in words safe to show the video's owner (no internal addresses). */
  error: string | null;
  durationMs: number;
}

export async function sendWebhook(a: WebhookAttempt): Promise<AttemptOutcome> {
  const started = performance.now();
  const timeoutMs = a.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = a.signal ? AbortSignal.any([a.signal, deadline]) : deadline;
  const done = (httpStatus: number | null, error: string | null): AttemptOutcome =>
    ({ ok: error === null, httpStatus, error, durationMs: Math.round(performance.now() - started) });
  let res: IncomingMessage | undefined;
  try {
    res = await outboundRequest(new URL(a.url), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(a.body),
        'user-agent': 'vgen-webhooks/1',
        'vgen-signature': sign(a.secret, a.body),
        'vgen-event': a.event,
        'vgen-delivery': a.deliveryId,
      },
      body: a.body,
      signal,
    }, a.outbound);
    const status = res.statusCode ?? 0;
    await readSome(res, signal);
    if (status >= 200 && status < 300) return done(status, null);
    if (status >= 300 && status < 400) return done(status, `HTTP ${status}: redirects are not followed; give the final URL as callbackUrl`);
    return done(status, `HTTP ${status}`);
  } catch (err) {
    if (err instanceof OutboundRefused) return done(null, err.message);
    if (deadline.aborted) return done(res?.statusCode ?? null, `no answer within ${timeoutMs / 1000} s`);
    if (a.signal?.aborted) return done(null, 'stopped: the API process shut down');
    // Node's own messages name the address connected to; the code alone says enough.
    const code = (err as NodeJS.ErrnoException).code;
    return done(null, `connection failed (${code ?? 'error'})`);
  } finally {
    res?.destroy();
  }
}

/** Read up to MAX_RESPONSE_BYTES of the body (or its end), then stop; an answer already given stands if the body is slow. */
async function readSome(res: IncomingMessage, signal: AbortSignal): Promise<void> {
  let seen = 0;
  await new Promise<void>((resolve) => {
    const finish = () => {
      res.off('data', onData);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen >= MAX_RESPONSE_BYTES) finish();
    };
    res.on('error', () => {}); // a receiver hanging up after its answer changes nothing
    res.on('data', onData);
    res.once('end', finish);
    res.once('error', finish);
    res.once('close', finish);
    if (signal.aborted) finish();
    else signal.addEventListener('abort', finish, { once: true });
  });
}
