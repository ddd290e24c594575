// What the renderer refuses, and the bounds it keeps: scenes too short to own
// a frame, decompression bombs, media ffmpeg cannot decode, one decoder per
// distinct image, and a hard frame cap on every render.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';
import { UnrecoverableError, type Job } from 'bullmq';
import { loadConfig } from '../engine/config.js';
import { RenderError, VgenError } from '../engine/errors.js';
import { createLogger } from '../engine/log.js';
import type { Storage } from '../engine/storage.js';
import { parseSpec, totalSeconds, type RenderSpec } from '../engine/spec.js';
import { fetchAssets, type FetchAssetsOptions } from '../worker/assets.js';
import { checkFfmpeg, findFont, planRender, posterSeconds, probe, renderVideo } from '../worker/ffmpeg.js';
import { PNG_CHUNK_LIMITS, pngChunkProblem } from '../worker/probe.js';
import { renderProcessor } from '../worker/render-job.js';

const bundled = fileURLToPath(new URL('../assets/', import.meta.url));
let dir: string; // an assets folder holding the bundled files and the bad ones made below
let fontFile: string;
const ffmpegRun = (args: string[]) => promisify(execFile)('ffmpeg', ['-v', 'error', '-y', ...args]);

before(async () => {
  await checkFfmpeg();
  fontFile = findFont();
  dir = await mkdtemp(join(tmpdir(), 'vgen-limits-'));
  for (const f of ['photo.jpg', 'photo2.jpg', 'music.mp3']) await copyFile(join(bundled, f), join(dir, f));
  // A decompression bomb: one flat colour compresses to a few hundred KB.
  await ffmpegRun(['-f', 'lavfi', '-i', 'color=c=red:s=10000x10000', '-frames:v', '1', join(dir, 'bomb.png')]);
  // Few pixels, but a side longer than MAX_ASSET_SIDE.
  await ffmpegRun(['-f', 'lavfi', '-i', 'color=c=red:s=9000x64', '-frames:v', '1', join(dir, 'long.png')]);
  // PNG magic bytes, then junk.
  await writeFile(join(dir, 'garbage.png'), Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(4000, 'junk')]));
  // A real PNG cut off half way: the header is fine, the pixels are not.
  await ffmpegRun(['-f', 'lavfi', '-i', 'testsrc2=s=640x480', '-frames:v', '1', join(dir, 'whole.png')]);
  const whole = await readFile(join(dir, 'whole.png'));
  await writeFile(join(dir, 'cut.png'), whole.subarray(0, whole.length >> 1));
  // A zTXt bomb: 16×16 pixels, a 64 KB text chunk inflating to 64 MiB.
  await ffmpegRun(['-f', 'lavfi', '-i', 'color=c=red:s=16x16', '-frames:v', '1', join(dir, 'small.png')]);
  const small = await readFile(join(dir, 'small.png'));
  await writeFile(join(dir, 'ztxt.png'), withChunkBeforeIdat(small, 'zTXt', Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync(Buffer.alloc(64 << 20, 'A'), { level: 9 })])));
  // Audio files with a header and not one sample.
  await ffmpegRun(['-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', '0', join(dir, 'empty.wav')]);
  await ffmpegRun(['-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', '0', join(dir, 'empty.flac')]);
});

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

function withChunkBeforeIdat(png: Buffer, type: string, data: Buffer): Buffer {
  const at = png.indexOf('IDAT', 0, 'latin1') - 4;
  return Buffer.concat([png.subarray(0, at), pngChunk(type, data), png.subarray(at)]);
}
after(() => rm(dir, { recursive: true, force: true }));

const spec = (scenes: RenderSpec['scenes'], fps = 10, extra: Partial<RenderSpec> = {}): RenderSpec => ({
  version: 1,
  output: { width: 64, height: 64, fps },
  scenes,
  ...extra,
});
const image = (name: string, duration = 1) => ({ duration, background: { image: `assets/${name}` } });

async function fetchInto(s: RenderSpec, opts: Partial<FetchAssetsOptions> = {}) {
  const workDir = await mkdtemp(join(dir, 'job-'));
  return { workDir, assets: await fetchAssets(s, workDir, { assetsDir: dir, ...opts }) };
}

function assetInvalid(ref: string, why?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RenderError, String(err));
    assert.equal(err.code, 'asset_invalid', err.message);
    assert.equal(err.retryable, false);
    assert.ok(err.message.startsWith(`${ref} `), `the message names ${ref}: ${err.message}`);
    if (why) assert.match(err.message, why);
    return true;
  };
}

describe('every scene owns at least one frame', () => {
  test('two 0.5 s scenes at 1 fps are a 400 naming the scene', () => {
    const s = spec([image('photo.jpg', 0.5), image('photo2.jpg', 0.5)], 1);
    assert.throws(() => parseSpec(s), (err) => {
      assert.ok(err instanceof VgenError);
      assert.equal(err.code, 'spec_invalid');
      assert.equal(err.statusCode, 400);
      assert.equal(err.field, 'scenes[0].duration');
      assert.match(err.message, /at least one frame/);
      return true;
    });
  });

  test('transitions may not cover the whole of a scene', () => {
    const fade = { type: 'fade' as const, duration: 0.5 };
    const s = spec([image('photo.jpg'), { ...image('photo2.jpg'), transition: fade }, { ...image('photo.jpg'), transition: fade }]);
    assert.throws(() => parseSpec(s), (err) => err instanceof VgenError && err.field === 'scenes[1].duration');
    // Exactly one frame of its own (0.1 s at 10 fps) is enough.
    const tight = { type: 'fade' as const, duration: 0.45 };
    parseSpec(spec([image('photo.jpg'), { ...image('photo2.jpg'), transition: tight }, { ...image('photo.jpg'), transition: tight }]));
  });

  test('renderVideo refuses such a spec at once instead of rendering forever', async () => {
    const s = spec([image('photo.jpg', 0.5), image('photo2.jpg', 0.5)], 1);
    const { workDir, assets } = await fetchInto(s);
    // Before the fix this ffmpeg ran until the job's timeout; here the signal ends it.
    const signal = AbortSignal.timeout(10_000);
    await assert.rejects(renderVideo({ spec: s, assets, workDir, fontFile, signal }), (err) => err instanceof RenderError && err.code === 'spec_invalid' && !err.retryable);
    assert.equal(signal.aborted, false);
  });

  test('the graph ends the video at the timeline, and the output stops at the spec length whatever the graph does', async () => {
    const s = spec([image('photo.jpg'), { ...image('photo2.jpg', 1.25), transition: { type: 'fade', duration: 0.3 } }, { duration: 1, background: { color: 'navy' } }], 1);
    const { workDir, assets } = await fetchInto(s);
    const plan = planRender({ spec: s, assets, workDir, fontFile });
    assert.equal(plan.frames, 3); // 1 + 1.25 - 0.3 + 1 = 2.95 s at 1 fps
    assert.ok(plan.filter.includes(`trim=end_frame=${plan.frames}[vout]`), plan.filter);
    const cap = plan.outputOptions.indexOf('-frames:v');
    assert.equal(plan.outputOptions[cap + 1], String(Math.ceil(totalSeconds(s) * 1) + 1));
    assert.doesNotMatch(plan.filter, /loop=loop=-/);
    assert.ok(plan.timeline.every((slot) => slot.frames >= 1));
  });
});

describe('one decoder per distinct image', () => {
  test('an image shown by three scenes is one input, split three ways; the video is frame-exact', async () => {
    const s = spec([image('photo.jpg'), image('photo2.jpg'), { ...image('photo.jpg'), transition: { type: 'fade', duration: 0.3 } }, image('photo.jpg')], 10, {
      audio: { src: 'assets/music.mp3' },
    });
    const { workDir, assets } = await fetchInto(s);
    // inlinePixels 0: every image through a fit pass (what large images get; planner tests cover the inline path).
    const plan = planRender({ spec: s, assets, workDir, fontFile, inlinePixels: 0 });
    // Each image is decoded once, in its own run, with -max_pixels...
    assert.deepEqual(plan.fits.map((f) => f.input.ref), ['assets/photo.jpg', 'assets/photo2.jpg']);
    assert.ok(plan.fits.every((f) => f.input.options.includes('-max_pixels')), 'image decoders get -max_pixels');
    // ...and its fitted frame is one input of the main run, split to the scenes.
    assert.deepEqual(plan.inputs.map((i) => i.ref), ['assets/photo.jpg', 'assets/photo2.jpg', 'assets/music.mp3']);
    assert.match(plan.filter, /\[0:v\][^;]*split=3(\[img\d+\]){3}/);

    const result = await renderVideo({ spec: s, assets, workDir, fontFile, inlinePixels: 0 });
    const info = await probe(result.videoPath);
    assert.equal(info.video?.frames, plan.frames);
    assert.equal(plan.frames, Math.round(totalSeconds(s) * 10));
  });
});

describe('decompression bombs and broken media are asset_invalid, naming the asset', () => {
  test('a 10000×10000 PNG is refused by the probe', async () => {
    await assert.rejects(fetchInto(spec([image('photo.jpg'), image('bomb.png')])), assetInvalid('assets/bomb.png', /10000×10000/));
  });

  test('an image with a side over the limit is refused', async () => {
    await assert.rejects(fetchInto(spec([image('long.png')])), assetInvalid('assets/long.png', /9000×64.*8192/));
  });

  test('the limits come from the options (MAX_ASSET_PIXELS / MAX_ASSET_SIDE)', async () => {
    // photo.jpg is 1280×720.
    await assert.rejects(fetchInto(spec([image('photo.jpg')]), { limits: { maxPixels: 900_000, maxSide: 8192 } }), assetInvalid('assets/photo.jpg', /900000/));
    await assert.rejects(fetchInto(spec([image('photo.jpg')]), { limits: { maxPixels: 40_000_000, maxSide: 1000 } }), assetInvalid('assets/photo.jpg', /1000/));
    await fetchInto(spec([image('photo.jpg')]), { limits: { maxPixels: 921_600, maxSide: 1280 } });
  });

  test('a PNG that is junk after its magic bytes, or cut in half, is refused', async () => {
    await assert.rejects(fetchInto(spec([image('garbage.png')])), assetInvalid('assets/garbage.png'));
    await assert.rejects(fetchInto(spec([image('cut.png')])), assetInvalid('assets/cut.png'));
  });

  test('past the probe, -max_pixels still stops the decoder, and the failure names the asset', async () => {
    const s = spec([image('photo.jpg'), image('bomb.png')]);
    const workDir = await mkdtemp(join(dir, 'job-'));
    // Hand the files straight to the renderer, as if the probe had let them through.
    const assets = new Map([
      ['assets/photo.jpg', { path: join(dir, 'photo.jpg'), kind: 'image' as const, format: 'image2' }],
      ['assets/bomb.png', { path: join(dir, 'bomb.png'), kind: 'image' as const, format: 'image2' }],
    ]);
    await assert.rejects(renderVideo({ spec: s, assets, workDir, fontFile }), assetInvalid('assets/bomb.png', /too large/));
  });

  test('media ffmpeg refuses while rendering is asset_invalid too', async () => {
    const s = spec([image('photo.jpg'), image('garbage.png')]);
    const workDir = await mkdtemp(join(dir, 'job-'));
    const assets = new Map([
      ['assets/photo.jpg', { path: join(dir, 'photo.jpg'), kind: 'image' as const, format: 'image2' }],
      ['assets/garbage.png', { path: join(dir, 'garbage.png'), kind: 'image' as const, format: 'image2' }],
    ]);
    await assert.rejects(renderVideo({ spec: s, assets, workDir, fontFile }), assetInvalid('assets/garbage.png'));
  });

  test('a render job with a broken asset fails without retries', async () => {
    const config = loadConfig({ ASSETS_DIR: dir, WORK_DIR: dir, MAX_ASSET_PIXELS: '50000000' });
    const processor = renderProcessor({ config, storage: {} as Storage, fontFile, log: createLogger('silent') });
    const job = { id: 'vid_limits', data: { videoId: 'vid_limits', spec: spec([image('garbage.png')]) }, attemptsMade: 0, updateProgress: async () => {} };
    await assert.rejects(processor(job as unknown as Job, undefined), (err) => {
      assert.ok(err instanceof UnrecoverableError, String(err));
      assert.match(err.message, /^asset_invalid: assets\/garbage\.png /);
      return true;
    });
  });
});

describe('PNG metadata chunks are read before any ffmpeg inflates them', () => {
  test('a zTXt bomb (64 KB inflating to 64 MiB) is asset_invalid, and no ffmpeg or ffprobe ever opens it', async () => {
    // Log every tool worker/bin/ffmpeg starts (it runs $FFPROBE_PATH / $FFMPEG_PATH).
    const log = join(dir, 'tools.log');
    const shim = join(dir, 'tool-shim');
    await writeFile(shim, `#!/bin/sh\necho "$0 $*" >> '${log}'\nexec "$REAL_TOOL" "$@"\n`);
    await chmod(shim, 0o755);
    const saved = { ...process.env };
    Object.assign(process.env, { FFPROBE_PATH: shim, FFMPEG_PATH: shim, REAL_TOOL: 'ffprobe' });
    try {
      await fetchInto(spec([image('small.png')])); // the shim is in the path: this one is probed
      assert.match(await readFile(log, 'utf8'), /small|\.png/);
      await writeFile(log, '');
      await assert.rejects(fetchInto(spec([image('ztxt.png')])), assetInvalid('assets/ztxt.png', /compressed metadata.*32768/));
      assert.equal(await readFile(log, 'utf8'), '', 'no tool ran for the bomb');
    } finally {
      for (const k of ['FFPROBE_PATH', 'FFMPEG_PATH', 'REAL_TOOL']) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
  });

  test('pngChunkProblem: several chunks add up; structure is checked; APNG frames are not counted', async () => {
    const small = await readFile(join(dir, 'small.png'));
    assert.equal(pngChunkProblem(small), undefined);
    const meta = (type: string, bytes: number) => (png: Buffer) => withChunkBeforeIdat(png, type, Buffer.alloc(bytes, 1));
    const apply = (...fns: ((b: Buffer) => Buffer)[]) => fns.reduce<Buffer>((png, f) => f(png), small);
    // An ICC profile of 20 KB is fine; with 20 KB of zTXt the two are over 32 KiB.
    assert.equal(pngChunkProblem(apply(meta('iCCP', 20_000))), undefined);
    assert.match(pngChunkProblem(apply(meta('iCCP', 20_000), meta('zTXt', 20_000))) ?? '', /compressed metadata/);
    assert.match(pngChunkProblem(apply(meta('iTXt', PNG_CHUNK_LIMITS.compressedBytes + 1))) ?? '', /compressed metadata/);
    // Plain text counts towards 1 MiB of metadata.
    assert.equal(pngChunkProblem(apply(meta('tEXt', 600_000))), undefined);
    assert.match(pngChunkProblem(apply(meta('tEXt', 600_000), meta('tEXt', 600_000))) ?? '', /metadata chunks/);
    // APNG: acTL and fcTL are tiny metadata; fdAT (later frames, never decoded) is not counted.
    assert.equal(pngChunkProblem(apply(meta('acTL', 8), meta('fcTL', 26), meta('fdAT', 2_000_000))), undefined);
    // Structure: lengths past the end, a missing IEND, no IHDR first, bad types.
    const lying = Buffer.from(small);
    lying.writeUInt32BE(0x7fffffff, 8 + 13 + 12); // the chunk after IHDR claims 2 GiB
    assert.match(pngChunkProblem(lying) ?? '', /past the end/);
    assert.match(pngChunkProblem(small.subarray(0, small.length - 12)) ?? '', /IEND/);
    assert.match(pngChunkProblem(Buffer.concat([small.subarray(0, 8), pngChunk('tEXt', Buffer.from('a\0b')), small.subarray(8)])) ?? '', /IHDR/);
    assert.match(pngChunkProblem(withChunkBeforeIdat(small, 'a\0b!', Buffer.alloc(1))) ?? '', /invalid type/);
    assert.equal(pngChunkProblem(Buffer.concat([small, Buffer.from('trailing')])), undefined);
  });
});

describe('one-frame videos', () => {
  const cases: [number, number][] = [[1, 1], [2, 0.5], [1, 1.4]];
  for (const [fps, duration] of cases) {
    test(`${duration} s at ${fps} fps renders, with a poster`, async () => {
      const s = spec([{ duration, background: { color: 'red' } }], fps);
      const workDir = await mkdtemp(join(dir, 'job-'));
      const result = await renderVideo({ spec: s, assets: new Map(), workDir, fontFile });
      assert.ok((await stat(result.posterPath)).size > 0);
      assert.equal((await probe(result.videoPath)).video?.frames, 1);
    });
  }

  test('the poster time is always a frame of the video', () => {
    assert.equal(posterSeconds(1, 1), 0);
    assert.equal(posterSeconds(2, 1), 0);
    assert.equal(posterSeconds(3, 1), 1);
    assert.equal(posterSeconds(10, 30), 4 / 30);
    assert.equal(posterSeconds(9000, 30), 1);
  });
});

describe('audio with no samples', () => {
  test('an empty WAV or FLAC is asset_invalid, naming it', async () => {
    for (const name of ['empty.wav', 'empty.flac'])
      await assert.rejects(fetchInto(spec([image('photo.jpg')], 10, { audio: { src: `assets/${name}` } })), assetInvalid(`assets/${name}`, /no audio samples/));
  });

  test('past the probe, the video still gets a silent AAC track of its length', async () => {
    const s = spec([{ duration: 1, background: { color: 'red' } }], 10, { audio: { src: 'assets/empty.wav' } });
    const workDir = await mkdtemp(join(dir, 'job-'));
    const assets = new Map([['assets/empty.wav', { path: join(dir, 'empty.wav'), kind: 'audio' as const, format: 'wav' }]]);
    const result = await renderVideo({ spec: s, assets, workDir, fontFile });
    const info = await probe(result.videoPath);
    assert.equal(info.audio?.codec, 'aac');
    assert.ok(Math.abs((info.audio?.durationMs ?? 0) - 1000) < 50, String(info.audio?.durationMs));
  });
});
