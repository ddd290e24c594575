// Which hosts vgen may connect to on a user's behalf (asset downloads,
// webhooks): public unicast addresses only (engine/address.ts), unless
// OUTBOUND_ALLOW names a host or range. That list is for development and tests
// (a local https server on 127.0.0.1); nothing else loosens the rule. Pure:
// config.ts parses it, the submit-time checks and engine/outbound.ts apply it.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { isPublicAddress } from './address.js';

type Range = readonly [ipaddr.IPv4 | ipaddr.IPv6, number];

export interface OutboundPolicy {
  /** The entries as configured, for the start-up warning; empty for the strict policy. */
  readonly entries: readonly string[];
  /** Host names admitted whatever they resolve to: lower case, no trailing dot. */
  readonly hosts: ReadonlySet<string>;
  /** Addresses admitted under any name. */
  readonly ranges: readonly Range[];
}

/** No exceptions: the policy of every production process. */
export const STRICT_POLICY: OutboundPolicy = Object.freeze({ entries: [], hosts: new Set<string>(), ranges: [] });

const LABEL = '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';
const HOST_NAME = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/** `Localhost.` → `localhost`; `[::1]` → `::1`. */
export function normalizeHost(host: string): string {
  return host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

/**
 * Parse OUTBOUND_ALLOW: entries separated by commas or spaces, each a host
 * name (matched exactly, any case), an IP address or a CIDR range (IPv4 or
 * IPv6). Throws an Error naming the first bad entry.
 */
export function parseOutboundAllow(raw: string | undefined): OutboundPolicy {
  const entries = (raw ?? '').split(/[\s,]+/).filter(Boolean);
  if (entries.length === 0) return STRICT_POLICY;
  const hosts = new Set<string>();
  const ranges: Range[] = [];
  for (const entry of entries) {
    const bad = (why: string) => new Error(`entry "${entry}" ${why}`);
    if (entry.includes('/')) {
      if (!/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(entry)) throw bad('is not a CIDR range (e.g. 127.0.0.0/8 or fd00::/8)');
      let range: Range;
      try {
        range = ipaddr.parseCIDR(entry);
      } catch {
        throw bad('is not a CIDR range (e.g. 127.0.0.0/8 or fd00::/8)');
      }
      ranges.push(range);
    } else if (isIP(entry)) {
      if (entry.includes('%')) throw bad('must not carry a zone');
      const ip = ipaddr.parse(entry);
      ranges.push([ip, ip.kind() === 'ipv4' ? 32 : 128]);
    } else {
      const host = normalizeHost(entry);
      // A last label of digits is an IPv4 address to the URL parser, never a name (300.1.1.1, 127.1).
      if (host.length > 253 || !HOST_NAME.test(host) || /(^|\.)\d+$/.test(host) || /^0x[0-9a-f]+$/.test(host.split('.').at(-1)!))
        throw bad('is neither a host name, an IP address nor a CIDR range (wildcards and URLs are not accepted)');
      hosts.add(host);
    }
  }
  return Object.freeze({ entries, hosts, ranges });
}

/** The address as ipaddr.js reads it, IPv4-mapped IPv6 as the IPv4 address it carries. */
function parsed(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!isIP(ip)) return undefined;
  const addr = ipaddr.parse(ip.split('%')[0]!);
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? (addr as ipaddr.IPv6).toIPv4Address() : addr;
}

/** True when `ip` falls in one of the policy's ranges. */
export function inAllowedRange(policy: OutboundPolicy, ip: string): boolean {
  if (policy.ranges.length === 0) return false;
  const addr = parsed(ip);
  return addr !== undefined && policy.ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match([net, bits] as never));
}

/** May a connection to `ip`, reached as `host`, be opened? Public addresses always; others only if OUTBOUND_ALLOW names the host or the address. */
export function admitsAddress(policy: OutboundPolicy, host: string, ip: string): boolean {
  return isPublicAddress(ip) || policy.hosts.has(normalizeHost(host)) || inAllowedRange(policy, ip);
}

/**
 * The check a URL's host gets before any DNS lookup (at submit): why it is
 * refused, or undefined. An IP literal must be public, a name must look like
 * a public DNS name (a dot, no empty label, not .local/.internal/.localhost),
 * unless OUTBOUND_ALLOW names the host or the address.
 */
export function hostRefusal(policy: OutboundPolicy, rawHost: string): string | undefined {
  const host = normalizeHost(rawHost);
  if (policy.hosts.has(host)) return undefined;
  if (isIP(host)) return isPublicAddress(host) || inAllowedRange(policy, host) ? undefined : 'a private or internal address';
  // A trailing dot names the same host (`localhost.`); one was dropped above, an empty label left (`localhost..`) is no public name either.
  if (!host.includes('.') || host.split('.').includes('') || /\.(local|internal|localhost)$/.test(host)) return 'a private or internal address';
  return undefined;
}

/** The start-up warning every role that reads OUTBOUND_ALLOW logs when it is set. */
export function warnIfOutboundAllowed(policy: OutboundPolicy, log: { warn(obj: object, msg: string): void }): void {
  if (policy.entries.length === 0) return;
  log.warn(
    { outboundAllow: policy.entries },
    'OUTBOUND_ALLOW is set: asset downloads and webhooks may reach these private hosts and addresses. For development and tests only; never set it in production',
  );
}
