// Signed upload tokens for fs storage: the local equivalent of an S3 presigned
// POST policy. A token is `<payload>.<sig>` (both base64url), the payload the
// JSON of what the upload may be: its key, its exact content type, its largest
// size in bytes and its expiry (unix seconds); the signature an HMAC-SHA256 of
// the payload with a key derived from JWT_SECRET under a label of its own, so
// it is the same on every API replica and never equals a JWT or /media key.
import { createHmac, timingSafeEqual } from 'node:crypto';

const LABEL = 'vgen upload signing v1';

export const uploadSigningKey = (jwtSecret: string): Buffer => createHmac('sha256', jwtSecret).update(LABEL).digest();

export interface UploadGrant {
  key: string;
  contentType: string;
  maxBytes: number;
  /** Unix seconds. */
  exp: number;
}

const mac = (signingKey: Buffer, payload: string) => createHmac('sha256', signingKey).update(payload).digest();

export function signUpload(signingKey: Buffer, grant: UploadGrant): string {
  const payload = Buffer.from(JSON.stringify({ k: grant.key, t: grant.contentType, n: grant.maxBytes, e: grant.exp })).toString('base64url');
  return `${payload}.${mac(signingKey, payload).toString('base64url')}`;
}

/** Longer than any token signUpload makes: refused before any work. */
const MAX_TOKEN_CHARS = 1024;

export type UploadTokenCheck = { ok: true; grant: UploadGrant } | { ok: false; reason: 'malformed' | 'signature' | 'expired' };

/** The grant, if the token is well formed, made with this key and unexpired. */
export function verifyUpload(signingKey: Buffer, token: unknown, nowSeconds = Date.now() / 1000): UploadTokenCheck {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) return { ok: false, reason: 'malformed' };
  const m = /^([A-Za-z0-9_-]{1,1000})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const [, payload, sig] = m as unknown as [string, string, string];
  const given = Buffer.from(sig, 'base64url');
  const expected = mac(signingKey, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature' };
  // Signed by us, so the JSON is ours; still checked field by field.
  let body: { k?: unknown; t?: unknown; n?: unknown; e?: unknown };
  try {
    body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof body;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const { k, t, n, e } = body;
  if (typeof k !== 'string' || typeof t !== 'string' || !Number.isSafeInteger(n) || !Number.isSafeInteger(e)) return { ok: false, reason: 'malformed' };
  if ((e as number) <= nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, grant: { key: k, contentType: t, maxBytes: n as number, exp: e as number } };
}
