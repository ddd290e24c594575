// The address policy as a table: one or more addresses in every special-purpose
// range of the IANA IPv4 and IPv6 registries, each refused by the row that
// names it, and public controls that pass. Pure functions, no I/O.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IPV4_SPECIAL, IPV6_EMBEDDING_V4, IPV6_SPECIAL, isPublicAddress, specialRange } from '../engine/address.js';
import { VgenError } from '../engine/errors.js';
import { parseSpec } from '../engine/spec.js';

// [address, the CIDR of the row that must refuse it]
const refused: [string, string][] = [
  ['0.0.0.0', '0.0.0.0/8'],
  ['0.255.255.255', '0.0.0.0/8'],
  ['10.0.0.1', '10.0.0.0/8'],
  ['10.255.255.255', '10.0.0.0/8'],
  ['100.64.0.1', '100.64.0.0/10'],
  ['100.127.255.254', '100.64.0.0/10'],
  ['127.0.0.1', '127.0.0.0/8'],
  ['127.255.255.254', '127.0.0.0/8'],
  ['169.254.169.254', '169.254.0.0/16'],
  ['172.16.0.1', '172.16.0.0/12'],
  ['172.31.255.255', '172.16.0.0/12'],
  ['192.0.0.1', '192.0.0.0/24'],
  ['192.0.0.9', '192.0.0.0/24'],
  ['192.0.0.170', '192.0.0.0/24'],
  ['192.0.2.1', '192.0.2.0/24'],
  ['192.31.196.1', '192.31.196.0/24'],
  ['192.52.193.1', '192.52.193.0/24'],
  ['192.88.99.1', '192.88.99.0/24'],
  ['192.168.1.1', '192.168.0.0/16'],
  ['192.175.48.1', '192.175.48.0/24'],
  ['198.18.0.1', '198.18.0.0/15'],
  ['198.19.255.255', '198.18.0.0/15'],
  ['198.51.100.7', '198.51.100.0/24'],
  ['203.0.113.9', '203.0.113.0/24'],
  ['224.0.0.1', '224.0.0.0/4'],
  ['239.255.255.250', '224.0.0.0/4'],
  ['240.0.0.1', '240.0.0.0/4'],
  ['255.255.255.254', '240.0.0.0/4'],
  ['255.255.255.255', '255.255.255.255/32'],

  ['::', '::/128'],
  ['::1', '::1/128'],
  ['::7f00:1', '::/96'], // ::127.0.0.1, IPv4-compatible
  ['::127.0.0.1', '::/96'],
  ['::8.8.8.8', '::/96'], // deprecated whatever it embeds
  ['::ffff:127.0.0.1', '::ffff:0:0/96'],
  ['::ffff:7f00:1', '::ffff:0:0/96'],
  ['::ffff:169.254.169.254', '::ffff:0:0/96'],
  ['::ffff:10.0.0.1', '::ffff:0:0/96'],
  ['::ffff:0:127.0.0.1', '::ffff:0:0:0/96'],
  ['64:ff9b::127.0.0.1', '64:ff9b::/96'],
  ['64:ff9b::a9fe:a9fe', '64:ff9b::/96'], // 169.254.169.254
  ['64:ff9b:1::1', '64:ff9b:1::/48'],
  ['64:ff9b:1::8.8.8.8', '64:ff9b:1::/48'],
  ['100::1', '100::/64'],
  ['100:0:0:1::1', '100:0:0:1::/64'],
  ['2001::1', '2001::/32'], // Teredo
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001::/32'],
  ['2001:1::1', '2001::/23'], // PCP anycast
  ['2001:1::2', '2001::/23'], // TURN anycast
  ['2001:2::1', '2001:2::/48'],
  ['2001:3::1', '2001::/23'], // AMT
  ['2001:4:112::1', '2001::/23'], // AS112-v6
  ['2001:10::1', '2001::/23'], // ORCHID (deprecated)
  ['2001:20::1', '2001:20::/28'],
  ['2001:30::1', '2001::/23'], // DRIP
  ['2001:1ff:ffff::1', '2001::/23'],
  ['2001:db8::1', '2001:db8::/32'],
  ['2001:db8:ffff::ffff', '2001:db8::/32'],
  ['2002::1', '2002::/16'],
  ['2002:7f00:1::1', '2002::/16'],
  ['2002:808:808::1', '2002::/16'], // 6to4 of a public address: refused all the same
  ['2620:4f:8000::1', '2620:4f:8000::/48'],
  ['3fff::1', '3fff::/20'],
  ['3fff:fff:ffff::1', '3fff::/20'],
  ['5f00::1', '5f00::/16'],
  ['fc00::1', 'fc00::/7'],
  ['fd00::1', 'fc00::/7'],
  ['fe80::1', 'fe80::/10'],
  ['fe80::1%eth0', 'fe80::/10'],
  ['febf::1', 'fe80::/10'],
  ['fec0::1', 'fec0::/10'],
  ['ff02::1', 'ff00::/8'],
  ['ff0e::1', 'ff00::/8'],
  // Outside 2000::/3 and in no named row: reserved by the IETF.
  ['4000::1', 'outside 2000::/3'],
  ['1::1', 'outside 2000::/3'],
  ['e000::1', 'outside 2000::/3'],
  // Not an address in a form net.isIP accepts: never treated as public.
  ['0177.0.0.1', 'not an IP address'],
  ['2130706433', 'not an IP address'],
  ['0x7f.1', 'not an IP address'],
  ['127.1', 'not an IP address'],
  ['localhost', 'not an IP address'],
  ['', 'not an IP address'],
];

const allowed = [
  '8.8.8.8', '1.1.1.1', '93.184.216.34', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0',
  '172.15.255.255', '172.32.0.0', '192.0.1.1', '192.0.3.1', '192.167.255.255', '192.169.0.0', '198.17.255.255',
  '198.20.0.0', '223.255.255.255',
  '2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001::1', '2001:200::1', '2003::1', '2620:4f:8001::1',
  '3ffe::1', '3fff:1000::1', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '64:ff9b::101:101',
];

describe('isPublicAddress: the IANA special-purpose registries, as a table', () => {
  for (const [ip, row] of refused) {
    test(`${ip || '(empty)'} is refused by ${row}`, () => {
      assert.equal(isPublicAddress(ip), false);
      assert.ok(specialRange(ip)?.startsWith(row), `${ip}: got ${specialRange(ip)}`);
    });
  }

  for (const ip of allowed) {
    test(`${ip} is public`, () => {
      assert.equal(specialRange(ip), undefined);
      assert.equal(isPublicAddress(ip), true);
    });
  }

  test('every row of the tables has at least one address above', () => {
    const rows = [...IPV4_SPECIAL, ...IPV6_EMBEDDING_V4, ...IPV6_SPECIAL].map(([cidr]) => cidr);
    const hit = new Set(refused.map(([, row]) => row));
    assert.deepEqual(rows.filter((cidr) => !hit.has(cidr)), []);
  });
});

describe('asset URLs with IP literals are refused at validation, naming the field', () => {
  const spec = (image: string) => ({ version: 1, output: { width: 320, height: 180, fps: 24 }, scenes: [{ duration: 1, background: { image } }] });
  const forbidden = [
    'https://[::127.0.0.1]/x.jpg', 'https://[::7f00:1]/x.jpg', 'https://[::ffff:127.0.0.1]/x.jpg', 'https://[64:ff9b::a9fe:a9fe]/x.jpg',
    'https://[2002:7f00:1::1]/x.jpg', 'https://[2001:db8::1]/x.jpg', 'https://[fe80::1]/x.jpg', 'https://[::]/x.jpg',
    // Odd IPv4 forms the URL parser normalises to dotted decimal.
    'https://0x7f.1/x.jpg', 'https://2130706433/x.jpg', 'https://0177.0.0.1/x.jpg', 'https://127.1/x.jpg', 'https://192.0.0.170/x.jpg',
  ];
  for (const url of forbidden) {
    test(url, () => {
      assert.throws(() => parseSpec(spec(url)), (err: unknown) => {
        assert.ok(err instanceof VgenError);
        assert.deepEqual([err.code, err.field], ['asset_forbidden', 'scenes[0].background.image']);
        return true;
      });
    });
  }
  test('a public IPv6 literal passes', () => {
    assert.doesNotThrow(() => parseSpec(spec('https://[2606:4700:4700::1111]/x.jpg')));
  });
});
