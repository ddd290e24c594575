// The submit-time check of a callbackUrl: the assets' rules (https, no
// credentials, no private IP literal or internal name, unless OUTBOUND_ALLOW
// names it), then one DNS lookup (at most 2 s), so a name that resolves to a
// private address is refused now with a 400 rather than failing every
// delivery for a day.
// Delivery vets the address again at each connect (engine/outbound.ts): DNS
// can change in between.
import { VgenError } from '../engine/errors.js';
import { hostOf, OutboundRefused, vettedAddress, type OutboundOptions } from '../engine/outbound.js';
import { hostRefusal, normalizeHost, STRICT_POLICY } from '../engine/outbound-policy.js';

const FIELD = 'callbackUrl';
/** A lookup slower than this is not held against the URL; delivery checks again. */
const LOOKUP_TIMEOUT_MS = 2_000;

export async function checkCallbackUrl(raw: string, outbound: OutboundOptions = {}): Promise<void> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new VgenError('invalid_request', `${FIELD} is not a valid URL`, FIELD);
  }
  if (url.protocol !== 'https:') throw new VgenError('invalid_request', `${FIELD} must be an https:// URL`, FIELD);
  if (url.username || url.password) throw new VgenError('callback_forbidden', `${FIELD} must not carry credentials`, FIELD);
  const policy = outbound.policy ?? STRICT_POLICY;
  const refused = hostRefusal(policy, url.hostname);
  if (refused) throw new VgenError('callback_forbidden', `${FIELD} points to ${refused}`, FIELD);
  // Named in OUTBOUND_ALLOW: admitted whatever it resolves to.
  if (policy.hosts.has(normalizeHost(url.hostname))) return;

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      vettedAddress(hostOf(url), outbound),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, LOOKUP_TIMEOUT_MS); }),
    ]);
  } catch (err) {
    if (!(err instanceof OutboundRefused)) throw err;
    if (err.reason === 'forbidden') throw new VgenError('callback_forbidden', `${FIELD} points to a private or internal address`, FIELD);
    // A name that does not resolve (yet) is left to delivery: each attempt
    // records the failure where the owner can read it, and a resolver having
    // a bad moment on this API host is no reason to refuse the video.
  } finally {
    clearTimeout(timer);
  }
}
