// Which IP addresses a worker may fetch from: globally routable unicast only.
// The tables follow IANA's IPv4 and IPv6 Special-Purpose Address Registries
// (plus multicast and the reserved blocks from the address space registries).
// Every entry is refused, even the few the registry marks "globally
// reachable" (AS112, AMT, anycast relays): none of them serves images.
// IPv6 is an allow-list first (2000::/3, global unicast), then the deny table.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Row = readonly [cidr: string, name: string];

export const IPV4_SPECIAL: readonly Row[] = [
  ['0.0.0.0/8', 'this network (RFC 791)'],
  ['10.0.0.0/8', 'private use (RFC 1918)'],
  ['100.64.0.0/10', 'shared address space, carrier-grade NAT (RFC 6598)'],
  ['127.0.0.0/8', 'loopback (RFC 1122)'],
  ['169.254.0.0/16', 'link local, cloud metadata (RFC 3927)'],
  ['172.16.0.0/12', 'private use (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments: DS-Lite, PCP/TURN anycast, NAT64 discovery (RFC 6890)'],
  ['192.0.2.0/24', 'documentation, TEST-NET-1 (RFC 5737)'],
  ['192.31.196.0/24', 'AS112-v4 (RFC 7535)'],
  ['192.52.193.0/24', 'AMT (RFC 7450)'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast (RFC 7526)'],
  ['192.168.0.0/16', 'private use (RFC 1918)'],
  ['192.175.48.0/24', 'direct delegation AS112 service (RFC 7534)'],
  ['198.18.0.0/15', 'benchmarking (RFC 2544)'],
  ['198.51.100.0/24', 'documentation, TEST-NET-2 (RFC 5737)'],
  ['203.0.113.0/24', 'documentation, TEST-NET-3 (RFC 5737)'],
  ['224.0.0.0/4', 'multicast (RFC 5771)'],
  ['255.255.255.255/32', 'limited broadcast (RFC 919)'],
  ['240.0.0.0/4', 'reserved (RFC 1112)'],
];

/** IPv4 embedded in IPv6: refused or allowed as the embedded IPv4 address is. */
export const IPV6_EMBEDDING_V4: readonly Row[] = [
  ['::ffff:0:0/96', 'IPv4-mapped (RFC 4291)'],
  ['64:ff9b::/96', 'NAT64 well-known prefix (RFC 6052)'],
];

export const IPV6_SPECIAL: readonly Row[] = [
  ['::/128', 'unspecified (RFC 4291)'],
  ['::1/128', 'loopback (RFC 4291)'],
  ['::/96', 'IPv4-compatible, deprecated (RFC 4291)'],
  ['::ffff:0:0:0/96', 'IPv4-translated (RFC 2765)'],
  ['64:ff9b:1::/48', 'local-use IPv4/IPv6 translation (RFC 8215)'],
  ['100::/64', 'discard-only (RFC 6666)'],
  ['100:0:0:1::/64', 'dummy prefix (RFC 9780)'],
  ['2001::/32', 'Teredo (RFC 4380)'],
  ['2001:2::/48', 'benchmarking (RFC 5180)'],
  ['2001:20::/28', 'ORCHIDv2 (RFC 7343)'],
  ['2001::/23', 'IETF protocol assignments: PCP/TURN anycast, AMT, AS112-v6, ORCHID, DRIP (RFC 2928)'],
  ['2001:db8::/32', 'documentation (RFC 3849)'],
  ['2002::/16', '6to4 (RFC 3056)'],
  ['2620:4f:8000::/48', 'direct delegation AS112 service (RFC 7534)'],
  ['3fff::/20', 'documentation (RFC 9637)'],
  ['5f00::/16', 'SRv6 SIDs (RFC 9602)'],
  ['fc00::/7', 'unique local (RFC 4193)'],
  ['fe80::/10', 'link-local unicast (RFC 4291)'],
  ['fec0::/10', 'site-local, deprecated (RFC 3879)'],
  ['ff00::/8', 'multicast (RFC 4291)'],
];

const GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');

const compile = <T extends ipaddr.IPv4 | ipaddr.IPv6>(rows: readonly Row[], parse: (cidr: string) => [T, number]) =>
  rows.map(([cidr, name]) => ({ range: parse(cidr), name: `${cidr} ${name}` }));
const v4Rows = compile(IPV4_SPECIAL, (c) => ipaddr.IPv4.parseCIDR(c));
const v6Embedding = compile(IPV6_EMBEDDING_V4, (c) => ipaddr.IPv6.parseCIDR(c));
const v6Rows = compile(IPV6_SPECIAL, (c) => ipaddr.IPv6.parseCIDR(c));

/**
 * Why an address may not be fetched: the special-purpose range it falls in
 * (`127.0.0.0/8 loopback (RFC 1122)`), or undefined for a globally routable
 * unicast address. Only the textual forms `net.isIP` accepts count as
 * addresses (no `0177.1`, `2130706433` or other inet_aton forms).
 */
export function specialRange(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 0) return 'not an IP address';
  if (family === 4) {
    const v4 = ipaddr.IPv4.parse(ip);
    return v4Rows.find((r) => v4.match(r.range))?.name;
  }
  const v6 = ipaddr.IPv6.parse(hexOnly(ip));
  const embedding = v6Embedding.find((r) => v6.match(r.range));
  if (embedding) {
    const [hi, lo] = [v6.parts[6]!, v6.parts[7]!];
    const v4 = new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
    const inner = v4Rows.find((r) => v4.match(r.range));
    return inner ? `${embedding.name} of ${inner.name}` : undefined;
  }
  const row = v6Rows.find((r) => v6.match(r.range));
  if (row) return row.name;
  return v6.match(GLOBAL_UNICAST) ? undefined : 'outside 2000::/3 global unicast (RFC 4291)';
}

/**
 * The IPv6 text with its zone dropped and a trailing dotted quad written as two
 * hex groups. ipaddr.js reads `::1.2.3.4` as `::ffff:1.2.3.4` (mapped), where
 * inet_pton and the URL parser read `::102:304` (IPv4-compatible); after this
 * ipaddr.js parses only plain hex, which every parser reads alike.
 */
function hexOnly(ip: string): string {
  const addr = ip.split('%')[0]!;
  return addr.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
}

/** True only for globally routable unicast addresses. */
export function isPublicAddress(ip: string): boolean {
  return specialRange(ip) === undefined;
}
