// fetchAssets against a real local HTTPS server (self-signed certificate made
// here with openssl). The test hostnames resolve through an injected lookup;
// only the download tests allow loopback, everything else runs the strict policy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RenderError, type RenderErrorCode } from '../engine/errors.js';
import type { RenderSpec } from '../engine/spec.js';
import { parseOutboundAllow } from '../engine/outbound-policy.js';
import { fetchAssets, sniff, type FetchAssetsOptions } from '../worker/assets.js';

const assetsDir = fileURLToPath(new URL('../assets/', import.meta.url));
let root: string;
let ca: Buffer;
let server: Server;
let port: number;
const seen: { path: string; host?: string; servername?: string }[] = [];

const photo = () => readFile(join(assetsDir, 'photo2.jpg'));
const music = () => readFile(join(assetsDir, 'music.mp3'));

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vgen-assets-'));
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=assets.test', '-addext', 'subjectAltName=DNS:assets.test',
    '-keyout', join(root, 'key.pem'), '-out', join(root, 'cert.pem'),
  ]);
  ca = await readFile(join(root, 'cert.pem'));
  const [photoBytes, musicBytes] = await Promise.all([photo(), music()]);

  server = createServer({ key: await readFile(join(root, 'key.pem')), cert: ca }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://assets.test');
    seen.push({ path: url.pathname, host: req.headers.host, servername: (req.socket as { servername?: string }).servername });
    const redirect = (to: string) => res.writeHead(302, { location: to }).end();
    switch (url.pathname) {
      case '/photo.jpg': return res.end(photoBytes);
      case '/music': return res.end(musicBytes); // no extension, no content type: content decides
      case '/big': return res.writeHead(200, { 'content-length': 2_000_000 }).end(Buffer.alloc(2_000_000, 0xff));
      case '/big-chunked': { // no Content-Length: the limit must count bytes
        const chunk = Buffer.alloc(64 * 1024, 0xff);
        const send = (left: number): void => { if (left === 0) res.end(); else if (res.write(chunk)) send(left - 1); else res.once('drain', () => send(left - 1)); };
        return send(40);
      }
      case '/playlist.m3u8': return res.end('#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n');
      case '/concat.txt': return res.end("ffconcat version 1.0\nfile '/etc/passwd'\n");
      case '/busy': return res.writeHead(503).end();
      case '/throttled': return res.writeHead(429).end();
      case '/slow': return; // never answers
      case '/hop': return redirect('/photo.jpg');
      case '/to-http': return redirect(`http://assets.test:${port}/photo.jpg`);
      case '/to-internal': return redirect(`https://internal.test:${port}/photo.jpg`);
      case '/loop': return redirect('/loop');
      default: return res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

const dns: Record<string, string[]> = {
  'assets.test': ['127.0.0.1'],
  'internal.test': ['10.0.0.7'],
};
const resolve = async (host: string) => dns[host] ?? [];

/** Options for downloads from the local test server: loopback is allowed, nothing else is relaxed. */
const local = (extra: Partial<FetchAssetsOptions> = {}): FetchAssetsOptions => ({
  assetsDir, resolve, ca, policy: parseOutboundAllow('127.0.0.1'), ...extra,
});

function specWith(image?: string, audio?: string): RenderSpec {
  return {
    version: 1,
    output: { width: 64, height: 64, fps: 10 },
    scenes: [{ duration: 1, background: image ? { image } : { color: 'black' } }],
    ...(audio ? { audio: { src: audio } } : {}),
  };
}

async function fetchInto(spec: RenderSpec, opts: FetchAssetsOptions) {
  return fetchAssets(spec, await mkdtemp(join(root, 'job-')), opts);
}

async function rejectsWith(promise: Promise<unknown>, code: RenderErrorCode, retryable: boolean, message?: RegExp) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof RenderError, `expected a RenderError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.retryable, retryable, `retryable for: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('bundled assets', () => {
  test('are copied into the work dir and identified by content', async () => {
    const assets = await fetchInto(specWith('assets/photo2.jpg', 'assets/music.mp3'), { assetsDir });
    const image = assets.get('assets/photo2.jpg');
    const audio = assets.get('assets/music.mp3');
    assert.deepEqual([image?.kind, image?.format], ['image', 'image2']);
    assert.deepEqual([audio?.kind, audio?.format], ['audio', 'mp3']);
    assert.ok(image!.path.endsWith('.jpg') && audio!.path.endsWith('.mp3'));
    assert.deepEqual(await readFile(image!.path), await photo());
  });

  test('names that leave the assets folder are refused', async () => {
    for (const name of ['assets/../package.json', 'assets/../../etc/passwd', 'assets//etc/passwd'])
      await rejectsWith(fetchInto(specWith(name), { assetsDir }), 'asset_forbidden', false);
  });

  test('a symlink pointing out of the assets folder is refused', async () => {
    const dir = join(root, 'bundled');
    await mkdir(dir);
    await symlink(fileURLToPath(new URL('../package.json', import.meta.url)), join(dir, 'escape.jpg'));
    await rejectsWith(fetchInto(specWith('assets/escape.jpg'), { assetsDir: dir }), 'asset_forbidden', false);
  });

  test('a missing bundled file is unavailable for good', async () => {
    await rejectsWith(fetchInto(specWith('assets/nope.jpg'), { assetsDir }), 'asset_unavailable', false);
  });

  test('an image used as audio is invalid', async () => {
    await rejectsWith(fetchInto(specWith(undefined, 'assets/photo.jpg'), { assetsDir }), 'asset_invalid', false);
    await rejectsWith(fetchInto(specWith('assets/music.mp3'), { assetsDir }), 'asset_invalid', false);
  });
});

describe('https assets: address policy', () => {
  const blocked = ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254'];

  for (const ip of blocked)
    test(`a host resolving to ${ip} is forbidden`, async () => {
      await rejectsWith(fetchInto(specWith('https://evil.example/x.jpg'), { assetsDir, resolve: async () => [ip] }), 'asset_forbidden', false);
    });

  test('one private address among public ones is enough to refuse', async () => {
    await rejectsWith(fetchInto(specWith('https://evil.example/x.jpg'), { assetsDir, resolve: async () => ['93.184.216.34', '10.0.0.1'] }), 'asset_forbidden', false);
  });

  test('IP literals in the URL are vetted too', async () => {
    for (const url of ['https://127.0.0.1/x.jpg', 'https://[::1]/x.jpg', 'https://169.254.169.254/latest/meta-data/'])
      await rejectsWith(fetchInto(specWith(url), { assetsDir }), 'asset_forbidden', false);
  });

  test('without OUTBOUND_ALLOW the local server is never contacted', async () => {
    const before = seen.length;
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/photo.jpg`), { assetsDir, resolve, ca }), 'asset_forbidden', false);
    assert.equal(seen.length, before, 'no request reached the server');
  });
});

describe('https assets: downloads', () => {
  test('downloads over TLS from the vetted address, with SNI and Host naming the host', async () => {
    const photoUrl = `https://assets.test:${port}/photo.jpg`;
    const musicUrl = `https://assets.test:${port}/music`;
    const assets = await fetchInto(specWith(photoUrl, musicUrl), local());
    assert.deepEqual(await readFile(assets.get(photoUrl)!.path), await photo());
    assert.deepEqual([assets.get(musicUrl)?.kind, assets.get(musicUrl)?.format], ['audio', 'mp3']);
    const hit = seen.find((s) => s.path === '/photo.jpg');
    assert.deepEqual([hit?.host, hit?.servername], [`assets.test:${port}`, 'assets.test']);
  });

  test('certificates are still verified', async () => {
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/photo.jpg`), local({ ca: undefined })), 'asset_unavailable', false);
  });

  test('an https redirect is followed and re-vetted', async () => {
    const url = `https://assets.test:${port}/hop`;
    const assets = await fetchInto(specWith(url), local());
    assert.equal(assets.get(url)?.kind, 'image');
  });

  test('a redirect to http:// is refused', async () => {
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/to-http`), local()), 'asset_forbidden', false);
  });

  test('a redirect to a private address is refused', async () => {
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/to-internal`), local()), 'asset_forbidden', false);
  });

  test('redirect loops stop after 3 hops', async () => {
    const before = seen.filter((s) => s.path === '/loop').length;
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/loop`), local()), 'asset_unavailable', false, /redirects/);
    assert.equal(seen.filter((s) => s.path === '/loop').length - before, 4);
  });

  test('bodies over maxBytes are cut off, with or without Content-Length', async () => {
    for (const path of ['/big', '/big-chunked'])
      await rejectsWith(fetchInto(specWith(`https://assets.test:${port}${path}`), local({ maxBytes: 1_000_000 })), 'asset_invalid', false, /too large/);
  });

  test('HTTP errors: 404 is final, 503 and 429 may be retried', async () => {
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/missing.jpg`), local()), 'asset_unavailable', false, /404/);
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/busy`), local()), 'asset_unavailable', true, /503/);
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/throttled`), local()), 'asset_unavailable', true, /429/);
  });

  test('a server that never answers times out (retryable)', async () => {
    const started = Date.now();
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/slow`), local({ timeoutMs: 300 })), 'asset_unavailable', true, /timed out/);
    assert.ok(Date.now() - started < 3000);
  });

  test('HLS playlists and concat lists are not media', async () => {
    await rejectsWith(fetchInto(specWith(`https://assets.test:${port}/playlist.m3u8`), local()), 'asset_invalid', false);
    await rejectsWith(fetchInto(specWith(undefined, `https://assets.test:${port}/concat.txt`), local()), 'asset_invalid', false);
  });

  test('the caller’s abort reason wins over our own errors', async () => {
    const reason = new Error('worker shutting down');
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(fetchInto(specWith(`https://assets.test:${port}/slow`), local({ signal: controller.signal })), (err) => err === reason);
  });
});

describe('sniff', () => {
  const pad = (s: string | Buffer) => Buffer.concat([Buffer.from(s as string, 'latin1'), Buffer.alloc(32)]);
  const cases: [string, Buffer, string | undefined][] = [
    ['JPEG', pad(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'image/image2'],
    ['PNG', pad('\x89PNG\r\n\x1a\n'), 'image/image2'],
    ['WebP', pad('RIFF\0\0\0\0WEBPVP8 '), 'image/image2'],
    ['WAV', pad('RIFF\0\0\0\0WAVEfmt '), 'audio/wav'],
    ['OGG', pad('OggS\0\x02'), 'audio/ogg'],
    ['FLAC', pad('fLaC\0\0\0\x22'), 'audio/flac'],
    ['M4A', pad('\0\0\0\x20ftypM4A \0\0\0\0'), 'audio/mov'],
    ['MP3 with ID3', pad('ID3\x04\0\0\0\0\0\0'), 'audio/mp3'],
    ['MP3 frame', pad(Buffer.from([0xff, 0xfb, 0x90, 0x64])), 'audio/mp3'],
    ['ADTS AAC', pad(Buffer.from([0xff, 0xf1, 0x50, 0x80])), undefined],
    ['HEIF image', pad('\0\0\0\x18ftypheic\0\0\0\0'), undefined],
    ['HLS', pad('#EXTM3U\n#EXT-X-VERSION:3\n'), undefined],
    ['SVG', pad('<svg xmlns="http://www.w3.org/2000/svg">'), undefined],
    ['text', pad('hello world, not media'), undefined],
    ['empty', Buffer.alloc(0), undefined],
  ];
  for (const [name, head, expected] of cases)
    test(name, () => {
      const s = sniff(head);
      assert.equal(s && `${s.kind}/${s.format}`, expected);
    });
});
