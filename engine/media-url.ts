// Expiring HMAC-signed URLs for private files served by the API under /media/
// (fs storage; S3 uses presigned GETs instead). A URL is
//   <base>/media/<key>?exp=<unix seconds>&sig=<base64url HMAC-SHA256(key "\n" exp)>
// and is valid until `exp`. The key is derived from JWT_SECRET with a domain
// label, so it is the same on every API replica and never equals a JWT key.
import { createHmac, timingSafeEqual } from 'node:crypto';

const LABEL = 'vgen media URL signing v1';

export const mediaSigningKey = (jwtSecret: string): Buffer => createHmac('sha256', jwtSecret).update(LABEL).digest();

const mac = (signingKey: Buffer, key: string, exp: number) =>
  createHmac('sha256', signingKey).update(`${key}\n${exp}`).digest();

/** The query string (`exp=…&sig=…`) that makes `key` readable until `exp` (unix seconds). */
export function signMediaKey(signingKey: Buffer, key: string, exp: number): string {
  return `exp=${exp}&sig=${mac(signingKey, key, exp).toString('base64url')}`;
}

/** True when exp/sig are well formed, unexpired and made with this signing key for this very key. */
export function verifyMediaKey(signingKey: Buffer, key: string, exp: unknown, sig: unknown, nowSeconds = Date.now() / 1000): boolean {
  if (typeof exp !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return false;
  const expiry = Number(exp);
  if (expiry <= nowSeconds) return false;
  const given = Buffer.from(sig, 'base64url');
  const expected = mac(signingKey, key, expiry);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
