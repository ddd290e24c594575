// Webhook signatures, Stripe's scheme: `Vgen-Signature: t=<unix seconds>,v1=<hex>`
// where hex = HMAC-SHA256(secret, "<t>.<raw body>"). The timestamp is signed
// with the body, so a captured request cannot be replayed later than the
// receiver's tolerance. Pure: the sender signs with it, receivers (and tests)
// verify with it; docs/api.md shows the same check for receivers.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'vgen-signature';

/** Default tolerance between the signed timestamp and the receiver's clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A new signing secret: `whsec_` and 32 random bytes, base64url. The whole string is the HMAC key. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

const hmac = (secret: string, t: number, body: string | Buffer) =>
  createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');

/** The header value for `body` signed at `t` (unix seconds). */
export function sign(secret: string, body: string | Buffer, t: number = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${hmac(secret, t, body)}`;
}

/**
 * True when `header` carries a v1 signature of `body` by `secret` made within
 * `toleranceSeconds` of `now`. Anything malformed is simply false.
 */
export function verify(secret: string, header: string | undefined, body: string | Buffer, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = Date.now() / 1000): boolean {
  if (typeof header !== 'string' || header.length > 4096) return false;
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const [key, value = ''] = part.trim().split('=', 2);
    if (key === 't' && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) candidates.push(value);
  }
  if (t === undefined || candidates.length === 0 || Math.abs(now - t) > toleranceSeconds) return false;
  const expected = Buffer.from(hmac(secret, t, body), 'hex');
  return candidates.some((c) => timingSafeEqual(Buffer.from(c, 'hex'), expected));
}
