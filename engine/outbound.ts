// The one way vgen opens a connection a user chose (asset downloads in
// worker/assets.ts, webhooks in api/webhook-sender.ts): https only, the host
// resolved once and refused if ANY address is not public (OUTBOUND_ALLOW
// aside, engine/outbound-policy.ts), then the connection made to that vetted
// address itself, so a second DNS answer (rebinding) can never change where it
// goes. TLS still checks the certificate against the host name. Redirects,
// byte limits and deadlines are the caller's: each use has its own.
import { lookup, Resolver } from 'node:dns/promises';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { admitsAddress, normalizeHost, STRICT_POLICY, type OutboundPolicy } from './outbound-policy.js';

export type Resolve = (host: string) => Promise<string[]>;

export interface OutboundOptions {
  /** OUTBOUND_ALLOW, parsed (config.outboundAllow); default the strict policy. */
  policy?: OutboundPolicy;
  /** DNS lookup; injectable so tests can point names at a local server. */
  resolve?: Resolve;
  /** Extra trusted CA certificates (PEM), for a test server's self-signed certificate. */
  ca?: string | Buffer;
}

/**
 * Why a connection was not opened. `forbidden`: the URL or the addresses its
 * host resolves to are not allowed; `dns`: the name did not resolve.
 */
export class OutboundRefused extends Error {
  constructor(
    readonly reason: 'forbidden' | 'dns',
    message: string,
    /** false when trying again cannot help (a forbidden address, a name that does not exist). */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'OutboundRefused';
  }
}

/** A URL for messages and logs: no credentials or query string (signed URLs carry tokens there). */
export const shownUrl = (url: URL) => `${url.origin}${url.pathname}`;

/** The URL's host without IPv6 brackets. */
export const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '');

/**
 * Resolve the host once and refuse it if ANY address is not allowed: a name
 * with one public and one private record could otherwise be steered inward.
 * Returns the address to connect to.
 */
export async function vettedAddress(host: string, opts: OutboundOptions = {}): Promise<string> {
  let addresses: string[];
  const policy = opts.policy ?? STRICT_POLICY;
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await (opts.resolve ?? ((h: string) => defaultResolve(h, policy)))(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new OutboundRefused('dns', `${host}: DNS lookup failed (${code ?? (err as Error).message})`, code !== 'ENOTFOUND');
    }
  }
  if (addresses.length === 0) throw new OutboundRefused('dns', `${host}: DNS lookup returned no address`, true);
  // The message leaves out the addresses: they would tell users about internal DNS.
  if (!addresses.every((ip) => admitsAddress(policy, host, ip)))
    throw new OutboundRefused('forbidden', `${host} resolves to a private or internal address`, false);
  return addresses[0]!;
}

// Names are resolved with c-ares (DNS only, on the event loop) rather than
// getaddrinfo, which blocks one of libuv's 4 threads for as long as a slow or
// black-holed name server takes: a user choosing such names for webhooks or
// assets could otherwise stall the API's file serving and password hashing,
// which share those threads. Bounded: 2 s a try, 2 tries. Only a host named in
// OUTBOUND_ALLOW (development: `localhost`, a name in /etc/hosts) goes through
// the system resolver.
const dns = new Resolver({ timeout: 2_000, tries: 2 });

async function defaultResolve(host: string, policy: OutboundPolicy): Promise<string[]> {
  if (policy.hosts.has(normalizeHost(host))) return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  const [v4, v6] = await Promise.allSettled([dns.resolve4(host), dns.resolve6(host)]);
  const found = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (found.length > 0) return found;
  const errors = [v4, v6].map((r) => (r.status === 'rejected' ? (r.reason as NodeJS.ErrnoException) : undefined));
  // No such name (NXDOMAIN) is final; no record of either family, or a failed lookup, may change.
  throw errors.find((e) => e?.code === 'ENOTFOUND') ?? errors.find((e) => e?.code !== 'ENODATA') ?? errors[0] ?? new Error('no address');
}

export interface PinnedRequest {
  method: 'GET' | 'POST';
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Aborts the connection (the caller's deadline, a cancel). */
  signal: AbortSignal;
}

/**
 * The https URL's checks (scheme, no credentials), then vet its host and send
 * the request to the vetted address. Resolves with the response head; the
 * caller reads (and bounds) the body. Throws OutboundRefused before any
 * connection when the URL or its addresses are not allowed.
 */
export async function outboundRequest(url: URL, req: PinnedRequest, opts: OutboundOptions = {}): Promise<IncomingMessage> {
  if (url.protocol !== 'https:') throw new OutboundRefused('forbidden', `${shownUrl(url)}: only https:// URLs are allowed`, false);
  if (url.username || url.password) throw new OutboundRefused('forbidden', `${shownUrl(url)}: URLs must not carry credentials`, false);
  // A lookup cannot be aborted; the caller's deadline still ends the wait for it.
  // Checked before the lookup starts: one started for an aborted request
  // would have nobody to hear its failure (an unhandled rejection, which
  // ends the process).
  req.signal.throwIfAborted();
  const address = await untilAborted(vettedAddress(hostOf(url), opts), req.signal);
  return pinnedRequest(url, address, req, opts.ca);
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      work.catch(() => {}); // its outcome no longer matters, its failure must not go unheard
      return reject(signal.reason);
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Send the request to `address`, never to a new lookup of the name. SNI and
 * the Host header name the host, so virtual hosting and certificate checks
 * work as for a plain request.
 */
function pinnedRequest(url: URL, address: string, req: PinnedRequest, ca?: string | Buffer): Promise<IncomingMessage> {
  const hostname = hostOf(url);
  return new Promise((resolve, reject) => {
    const out = request(
      {
        host: address,
        port: url.port || 443,
        path: `${url.pathname}${url.search}`,
        method: req.method,
        // SNI must not carry an IP literal (RFC 6066); TLS then checks the cert against the IP.
        servername: isIP(hostname) ? '' : hostname,
        headers: { ...req.headers, host: url.host },
        ...(ca ? { ca } : {}),
        agent: false, // no pooled socket from another host or a former address
        signal: req.signal,
      },
      resolve,
    );
    out.on('error', reject);
    out.end(req.body);
  });
}
