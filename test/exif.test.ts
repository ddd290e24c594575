// EXIF metadata bombs in JPEG, WebP and PNG: refused as asset_invalid before
// any ffmpeg or ffprobe opens the file (worker/exif.ts, worker/probe.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { RenderError } from '../engine/errors.js';
import type { RenderSpec } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { EXIF_LIMITS, exifProblem, jpegProblem, webpProblem } from '../worker/exif.js';
import { checkFfmpeg } from '../worker/ffmpeg.js';
import { pngChunkProblem } from '../worker/probe.js';

const bundled = fileURLToPath(new URL('../assets/', import.meta.url));
const run = promisify(execFile);
const ffmpegRun = (args: string[]) => run('ffmpeg', ['-v', 'error', '-y', ...args]);
let dir: string;
let hasLibwebp = false;

type Entry = { tag: number; type: number; count: number; value: number };

/** A TIFF payload: IFDs laid out one after another from offset 8, then `tail` bytes. */
function tiff(le: boolean, ifds: { entries: Entry[]; next?: number }[], tail = Buffer.alloc(0), ifd0 = 8): Buffer {
  const size = ifds.reduce((n, i) => n + 2 + 12 * i.entries.length + 4, 8);
  const buf = Buffer.alloc(size);
  const u16 = (v: number, at: number) => (le ? buf.writeUInt16LE(v, at) : buf.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (le ? buf.writeUInt32LE(v, at) : buf.writeUInt32BE(v, at));
  buf.write(le ? 'II' : 'MM', 0, 'latin1');
  u16(42, 2);
  u32(ifd0, 4);
  let at = 8;
  for (const ifd of ifds) {
    u16(ifd.entries.length, at);
    at += 2;
    for (const e of ifd.entries) {
      u16(e.tag, at);
      u16(e.type, at + 2);
      u32(e.count, at + 4);
      u32(e.value, at + 8);
      at += 12;
    }
    u32(ifd.next ?? 0, at);
    at += 4;
  }
  return Buffer.concat([buf, tail]);
}

/** The bomb: one IFD of `n` BYTE entries, all pointing at one block of `r` bytes. */
function bombTiff(n: number, r: number, firstTag = 0x1000, le = true): Buffer {
  const block = 8 + 2 + 12 * n + 4;
  const entries = Array.from({ length: n }, (_, i) => ({ tag: firstTag + i, type: 1, count: r, value: block }));
  return tiff(le, [{ entries }], Buffer.alloc(r, 0x41));
}

/** A camera-like EXIF: IFD0 → Exif IFD (→ Interop), GPS IFD, IFD1 with a thumbnail by offset; a 40 KB MakerNote. */
function cameraTiff(le: boolean): Buffer {
  // Offsets: IFD0 at 8 (6 entries) = 8..86, Exif IFD (4) at 86..140, Interop (1) at 140..158,
  // GPS (2) at 158..188, IFD1 (2) at 188..218, then the data.
  const data = 218;
  const strings = Buffer.from('Canon\0Canon EOS 5D\0\0', 'latin1'); // 20 bytes at 218
  const makerNote = Buffer.alloc(40_000, 7); // at 238
  const thumb = Buffer.alloc(6_000, 0xff); // at 40238
  return tiff(
    le,
    [
      { entries: [
        { tag: 0x010f, type: 2, count: 6, value: data },
        { tag: 0x0110, type: 2, count: 14, value: data + 6 },
        { tag: 0x0112, type: 3, count: 1, value: 1 },
        { tag: 0x011a, type: 5, count: 1, value: data }, // a RATIONAL (8 bytes) somewhere in the data
        { tag: 0x8769, type: 4, count: 1, value: 86 },
        { tag: 0x8825, type: 4, count: 1, value: 158 },
      ], next: 188 },
      { entries: [
        { tag: 0x829a, type: 5, count: 1, value: data },
        { tag: 0x9000, type: 7, count: 4, value: 0x30323330 },
        { tag: 0x927c, type: 7, count: makerNote.length, value: data + 20 },
        { tag: 0xa005, type: 4, count: 1, value: 140 },
      ] },
      { entries: [{ tag: 0x0001, type: 2, count: 4, value: 0x00383952 }] },
      { entries: [
        { tag: 0x0000, type: 1, count: 4, value: 0x00000302 },
        { tag: 0x0002, type: 5, count: 3, value: data },
      ] },
      { entries: [
        { tag: 0x0201, type: 4, count: 1, value: data + 20 + makerNote.length },
        { tag: 0x0202, type: 4, count: 1, value: thumb.length },
      ] },
    ],
    Buffer.concat([strings, makerNote, thumb]),
  );
}

/** A JPEG with APP1 `Exif\0\0` segments holding `payloads`, right after SOI. */
function jpegWithExif(jpeg: Buffer, ...payloads: Buffer[]): Buffer {
  const segments = payloads.map((p) => {
    const head = Buffer.from([0xff, 0xe1, 0, 0]);
    head.writeUInt16BE(2 + 6 + p.length, 2);
    return Buffer.concat([head, Buffer.from('Exif\0\0', 'latin1'), p]);
  });
  return Buffer.concat([jpeg.subarray(0, 2), ...segments, jpeg.subarray(2)]);
}

function riffChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, Buffer.alloc(data.length & 1)]);
}

/** An extended WebP (VP8X, flag 0x08 = EXIF) of a simple one's VP8 chunk, with `extra` chunks after it. */
function webpWith(simple: Buffer, width: number, height: number, flags: number, ...extra: Buffer[]): Buffer {
  const vp8x = Buffer.alloc(10);
  vp8x[0] = flags;
  vp8x.writeUIntLE(width - 1, 4, 3);
  vp8x.writeUIntLE(height - 1, 7, 3);
  const body = Buffer.concat([Buffer.from('WEBP', 'latin1'), riffChunk('VP8X', vp8x), simple.subarray(12), ...extra]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

before(async () => {
  await checkFfmpeg();
  dir = await mkdtemp(join(tmpdir(), 'vgen-exif-'));
  await copyFile(join(bundled, 'photo.jpg'), join(dir, 'photo.jpg'));
  await ffmpegRun(['-f', 'lavfi', '-i', 'testsrc2=s=64x64', '-frames:v', '1', join(dir, 'base.jpg')]);
  await ffmpegRun(['-f', 'lavfi', '-i', 'testsrc2=s=64x64', '-frames:v', '1', join(dir, 'base.png')]);
  hasLibwebp = (await run('ffmpeg', ['-hide_banner', '-encoders'])).stdout.includes('libwebp');
  if (hasLibwebp) await ffmpegRun(['-f', 'lavfi', '-i', 'testsrc2=s=64x64', '-frames:v', '1', '-c:v', 'libwebp', join(dir, 'base.webp')]);
});
after(() => rm(dir, { recursive: true, force: true }));

const spec = (name: string): RenderSpec => ({
  version: 1,
  output: { width: 64, height: 64, fps: 10 },
  scenes: [{ duration: 1, background: { image: `assets/${name}` } }],
});

/** Fetches `name` with FFPROBE_PATH/FFMPEG_PATH a logging shim; returns what ran. */
async function fetchLogged(name: string): Promise<{ error?: unknown; log: string }> {
  const log = join(dir, 'tools.log');
  const shim = join(dir, 'tool-shim');
  await writeFile(shim, `#!/bin/sh\necho "$0 $*" >> '${log}'\nexec "$REAL_TOOL" "$@"\n`);
  await chmod(shim, 0o755);
  await writeFile(log, '');
  const saved = { ...process.env };
  Object.assign(process.env, { FFPROBE_PATH: shim, FFMPEG_PATH: shim, REAL_TOOL: 'ffprobe' });
  try {
    const workDir = await mkdtemp(join(dir, 'job-'));
    await fetchAssets(spec(name), workDir, { assetsDir: dir });
    return { log: await readFile(log, 'utf8') };
  } catch (error) {
    return { error, log: await readFile(log, 'utf8') };
  } finally {
    for (const k of ['FFPROBE_PATH', 'FFMPEG_PATH', 'REAL_TOOL']) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
}

async function assertRefusedUnopened(name: string, why: RegExp) {
  const { error, log } = await fetchLogged(name);
  assert.ok(error instanceof RenderError, String(error));
  assert.equal(error.code, 'asset_invalid', error.message);
  assert.equal(error.retryable, false);
  assert.ok(error.message.startsWith(`assets/${name} `), `the message names the asset: ${error.message}`);
  assert.match(error.message, why);
  assert.equal(log, '', 'no ffmpeg or ffprobe ran');
}

describe('EXIF bombs are asset_invalid before any ffmpeg opens them', () => {
  test('a JPEG with two APP1 Exif segments whose entries share one block (over 1 MiB together)', async () => {
    const base = await readFile(join(dir, 'base.jpg'));
    // 2 × 300 entries × 2,000 bytes = 1.2 MB of values in a 13 KB file; each segment alone is under the limit.
    const one = bombTiff(300, 2_000, 0x1000);
    assert.equal(exifProblem(one), undefined);
    await writeFile(join(dir, 'exif-bomb.jpg'), jpegWithExif(base, one, bombTiff(300, 2_000, 0x2000)));
    await assertRefusedUnopened('exif-bomb.jpg', /EXIF values; images may have at most 1048576/);
    // The repro's shape (2,000 entries in one IFD) is refused by its entry count.
    await writeFile(join(dir, 'exif-wide.jpg'), jpegWithExif(base, bombTiff(2_000, 20)));
    await assertRefusedUnopened('exif-wide.jpg', /IFD of 2000 entries/);
  });

  test('a WebP (VP8X + VP8 + EXIF) whose entries share one block', async (t) => {
    if (!hasLibwebp) return t.skip('this ffmpeg has no libwebp encoder to make the base WebP');
    const base = await readFile(join(dir, 'base.webp'));
    assert.equal(base.toString('latin1', 12, 16), 'VP8 ', 'libwebp wrote a simple lossy WebP');
    // 200 entries × 20,000 bytes = 4 MB of values in a 23 KB file.
    await writeFile(join(dir, 'exif-bomb.webp'), webpWith(base, 64, 64, 0x08, riffChunk('EXIF', bombTiff(200, 20_000))));
    await assertRefusedUnopened('exif-bomb.webp', /EXIF values/);
  });

  test('a PNG eXIf chunk gets the same rule', async () => {
    const base = await readFile(join(dir, 'base.png'));
    const at = base.indexOf('IDAT', 0, 'latin1') - 4;
    await writeFile(join(dir, 'exif-bomb.png'), Buffer.concat([base.subarray(0, at), pngChunk('eXIf', bombTiff(200, 20_000)), base.subarray(at)]));
    await assertRefusedUnopened('exif-bomb.png', /EXIF values/);
  });

  test('images with a camera-like EXIF are probed and accepted', async (t) => {
    for (const le of [true, false]) assert.equal(exifProblem(cameraTiff(le)), undefined);
    const ok = async (name: string) => {
      const { error, log } = await fetchLogged(name);
      assert.equal(error, undefined, String(error));
      assert.match(log, /-show_entries/, 'ffprobe ran');
    };
    await ok('photo.jpg');
    assert.equal(jpegProblem(await readFile(join(bundled, 'photo2.jpg'))), undefined);
    await writeFile(join(dir, 'camera.jpg'), jpegWithExif(await readFile(join(dir, 'base.jpg')), cameraTiff(false)));
    await ok('camera.jpg');
    if (!hasLibwebp) return t.skip('no libwebp: the WebP half is skipped');
    await writeFile(join(dir, 'camera.webp'), webpWith(await readFile(join(dir, 'base.webp')), 64, 64, 0x08, riffChunk('EXIF', cameraTiff(true))));
    await ok('camera.webp');
  });
});

describe('exifProblem', () => {
  test('both byte orders; the budget counts count × type size of every entry', () => {
    for (const le of [true, false]) {
      // 1,048,576 bytes exactly is fine; one more is not.
      assert.equal(exifProblem(bombTiff(16, 65_536, 0x1000, le)), undefined);
      const over = tiff(le, [{ entries: [...Array(16)].map((_, i) => ({ tag: 0x1000 + i, type: 1, count: 65_536, value: 8 + 2 + 12 * 17 + 4 })).concat({ tag: 0x2000, type: 1, count: 1, value: 0 }) }], Buffer.alloc(65_536));
      assert.match(exifProblem(over) ?? '', /1048577\+ bytes of EXIF values/);
      // DOUBLE counts 8 bytes per value: 131,073 of them over a 1 MiB block.
      const doubles = tiff(le, [{ entries: [{ tag: 1, type: 12, count: 131_073, value: 26 }] }], Buffer.alloc(8 * 131_073));
      assert.match(exifProblem(doubles) ?? '', /EXIF values/);
    }
  });

  test('sub-IFDs (Exif, GPS, Interop) and the next-IFD chain are walked', () => {
    // IFD0 (1 entry) at 8..26 → Exif IFD at 26 (1 entry: 1 MiB + 1 over one block at 44).
    const block = 8 + 18 + 18;
    const sub = (tag: number) => tiff(true, [{ entries: [{ tag, type: 4, count: 1, value: 26 }] }, { entries: [{ tag: 1, type: 7, count: 1024 * 1024 + 1, value: block }] }], Buffer.alloc(1024 * 1024 + 1));
    for (const tag of [0x8769, 0x8825, 0xa005]) assert.match(exifProblem(sub(tag)) ?? '', /EXIF values/, `tag 0x${tag.toString(16)}`);
    assert.equal(exifProblem(sub(0x0100)), undefined, 'another tag is not an IFD pointer (and its LONG value is 4 bytes)');
    const chained = tiff(true, [{ entries: [{ tag: 1, type: 1, count: 1, value: 0 }], next: 26 }, { entries: [{ tag: 1, type: 7, count: 1024 * 1024 + 1, value: block }] }], Buffer.alloc(1024 * 1024 + 1));
    assert.match(exifProblem(chained) ?? '', /EXIF values/);
  });

  test('loops terminate; too many IFDs or entries are refused', () => {
    // IFD0 → next 26 → next 8 (a loop), and IFD0's Exif pointer at itself.
    const loop = tiff(false, [{ entries: [{ tag: 0x8769, type: 4, count: 1, value: 8 }], next: 26 }, { entries: [{ tag: 1, type: 1, count: 4, value: 0 }], next: 8 }]);
    assert.equal(exifProblem(loop), undefined);
    // A chain of 17 distinct IFDs.
    const chain = (k: number) => tiff(true, [...Array(k)].map((_, i) => ({ entries: [{ tag: 1, type: 1, count: 1, value: 0 }], next: i < k - 1 ? 8 + 18 * (i + 1) : 0 })));
    assert.match(exifProblem(chain(17)) ?? '', /more than 16 IFDs/);
    assert.equal(exifProblem(chain(16)), undefined);
    assert.equal(exifProblem(chain(16).subarray(0, 8 + 18 * 16 - 4)), undefined, 'the last IFD may leave out its next link');
    assert.match(exifProblem(bombTiff(EXIF_LIMITS.entriesPerIfd + 1, 1)) ?? '', /IFD of 1001 entries/);
    assert.equal(exifProblem(bombTiff(EXIF_LIMITS.entriesPerIfd, 1)), undefined);
  });

  test('bad headers are refused; damaged offsets are skipped, but a value past the end still counts in full', () => {
    assert.match(exifProblem(Buffer.from('II*\0', 'latin1')) ?? '', /no TIFF header/);
    assert.match(exifProblem(Buffer.from('XX*\0\x08\0\0\0', 'latin1')) ?? '', /no TIFF header/);
    assert.match(exifProblem(Buffer.from('II+\0\x08\0\0\0', 'latin1')) ?? '', /no TIFF header/);
    // Real photos carry truncated MakerNotes and stray offsets: ffmpeg skips what is not there.
    assert.equal(exifProblem(tiff(true, [{ entries: [] }], undefined, 0xfffffff0)), undefined);
    const cut = bombTiff(10, 100);
    assert.equal(exifProblem(cut.subarray(0, 8 + 2 + 12 * 5)), undefined, 'only whole entries are read');
    assert.equal(exifProblem(cut.subarray(0, cut.length - 1)), undefined, 'a slightly short value is fine');
    // ffmpeg loops over the declared count even past the end: a huge count is a bomb.
    const huge = tiff(false, [{ entries: [{ tag: 0x10f, type: 2, count: 0xffffffff, value: 8 }] }]);
    assert.match(exifProblem(huge) ?? '', /bytes of EXIF values/);
    assert.equal(exifProblem(tiff(true, [{ entries: [], next: 0x7fffffff }])), undefined);
    assert.equal(exifProblem(tiff(true, [{ entries: [{ tag: 0x8825, type: 4, count: 1, value: 999 }] }])), undefined);
    // Unknown types count nothing (ffmpeg stores nothing for them).
    assert.equal(exifProblem(tiff(true, [{ entries: [{ tag: 1, type: 99, count: 0xffffffff, value: 0xffffffff }] }])), undefined);
  });
});

describe('jpegProblem and webpProblem', () => {
  test('JPEG segment structure; APPn segments together; EXIF between progressive scans counts', async () => {
    const base = await readFile(join(dir, 'base.jpg'));
    assert.equal(jpegProblem(base), undefined);
    assert.match(jpegProblem(Buffer.from('not a jpeg')) ?? '', /not a JPEG/);
    const lying = jpegWithExif(base, bombTiff(1, 1));
    lying.writeUInt16BE(0xfff0, 4); // the APP1 claims 64 KB
    assert.match(jpegProblem(lying) ?? '', /0xFFE1 segment runs past the end/);
    const app2 = (n: number) => Buffer.concat([Buffer.from([0xff, 0xe2, 0xff, 0xff]), Buffer.alloc(0xfffd, n)]);
    const many = (k: number) => Buffer.concat([base.subarray(0, 2), ...[...Array(k)].map((_, i) => app2(i)), base.subarray(2)]);
    assert.equal(jpegProblem(many(64)), undefined, '4 MiB of APPn is fine');
    assert.match(jpegProblem(many(65)) ?? '', /APPn metadata segments/);
    // An APP1 Exif after the entropy-coded data of the first scan (before EOI) still counts.
    const eoi = base.lastIndexOf(Buffer.from([0xff, 0xd9]));
    const seg = jpegWithExif(Buffer.from([0xff, 0xd8]), bombTiff(300, 4_000)).subarray(2);
    assert.match(jpegProblem(Buffer.concat([base.subarray(0, eoi), seg, base.subarray(eoi)])) ?? '', /EXIF values/);
    assert.equal(jpegProblem(Buffer.concat([base, seg])), undefined, 'bytes after EOI are not read');
  });

  test('WebP chunk structure and ICCP/XMP sizes', async (t) => {
    if (!hasLibwebp) return t.skip('this ffmpeg has no libwebp encoder to make the base WebP');
    const base = await readFile(join(dir, 'base.webp'));
    assert.equal(webpProblem(base), undefined);
    const withExif = webpWith(base, 64, 64, 0x08, riffChunk('EXIF', Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), bombTiff(200, 20_000)])));
    assert.match(webpProblem(withExif) ?? '', /EXIF values/, 'an `Exif\\0\\0` prefix is skipped');
    assert.equal(webpProblem(webpWith(base, 64, 64, 0x20, riffChunk('ICCP', Buffer.alloc(1024 * 1024)))), undefined);
    assert.match(webpProblem(webpWith(base, 64, 64, 0x20, riffChunk('ICCP', Buffer.alloc(1024 * 1024 + 1)))) ?? '', /ICCP metadata/);
    assert.match(webpProblem(webpWith(base, 64, 64, 0x04, riffChunk('XMP ', Buffer.alloc(600_000)), riffChunk('XMP ', Buffer.alloc(600_000)))) ?? '', /XMP metadata/);
    const riffLies = Buffer.from(base);
    riffLies.writeUInt32LE(base.length, 4);
    assert.match(webpProblem(riffLies) ?? '', /RIFF size/);
    const small = bombTiff(1, 2); // 28 bytes: no padding byte
    const chunkLies = webpWith(base, 64, 64, 0x08, riffChunk('EXIF', small));
    chunkLies.writeUInt32LE(0x7fffffff, chunkLies.length - small.length - 4);
    assert.match(webpProblem(chunkLies) ?? '', /"EXIF" chunk runs past the end/);
  });

  test('pngChunkProblem applies the EXIF rule to eXIf chunks, all of them together', async () => {
    const base = await readFile(join(dir, 'base.png'));
    const at = base.indexOf('IDAT', 0, 'latin1') - 4;
    const withChunks = (...c: Buffer[]) => Buffer.concat([base.subarray(0, at), ...c, base.subarray(at)]);
    assert.equal(pngChunkProblem(withChunks(pngChunk('eXIf', cameraTiff(false)))), undefined);
    const half = bombTiff(300, 2_000);
    assert.equal(pngChunkProblem(withChunks(pngChunk('eXIf', half))), undefined);
    assert.match(pngChunkProblem(withChunks(pngChunk('eXIf', half), pngChunk('eXIf', half))) ?? '', /EXIF values/);
    assert.match(pngChunkProblem(withChunks(pngChunk('eXIf', Buffer.from('junk')))) ?? '', /damaged EXIF/);
  });
});
