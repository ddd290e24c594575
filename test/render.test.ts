// Renders real (tiny) videos with the installed ffmpeg and checks the files
// with ffprobe: a spec is only honoured if the output says so.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RenderError } from '../engine/errors.js';
import { totalSeconds, type RenderSpec } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { checkFfmpeg, findFont, planTimeline, probe, renderVideo, type RenderResult } from '../worker/ffmpeg.js';

const assetsDir = fileURLToPath(new URL('../assets/', import.meta.url));
let root: string;
let fontFile: string;

before(async () => {
  await checkFfmpeg();
  fontFile = findFont();
  // Quotes, colons and brackets in the path exercise the filtergraph escaping.
  root = await mkdtemp(join(tmpdir(), "vgen-render it's:[a],b;"));
});
after(() => rm(root, { recursive: true, force: true }));

const newWorkDir = () => mkdtemp(join(root, 'job-'));

async function render(spec: RenderSpec, extra: { onProgress?: (f: number) => void; signal?: AbortSignal } = {}, workDir?: string) {
  workDir ??= await newWorkDir();
  const assets = await fetchAssets(spec, workDir, { assetsDir });
  const result = await renderVideo({ spec, assets, workDir, fontFile, ...extra });
  return { workDir, result };
}

/** Top-level MP4 box types in file order. */
async function topLevelBoxes(path: string): Promise<string[]> {
  const buf = await readFile(path);
  const types: string[] = [];
  for (let at = 0; at + 8 <= buf.length; ) {
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (size === 1) size = Number(buf.readBigUInt64BE(at + 8));
    else if (size === 0) size = buf.length - at;
    assert.ok(size >= 8, `box ${type} has a bad size`);
    types.push(type);
    at += size;
  }
  return types;
}

/** Loudest sample in dB (of the whole file, or `seconds` from `from`), measured by ffmpeg itself. */
async function maxVolume(path: string, from = 0, seconds = 1e6): Promise<number> {
  const { stderr } = await promisify(execFile)('ffmpeg', ['-hide_banner', '-nostats', '-ss', String(from), '-t', String(seconds), '-i', path, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-']);
  const m = /max_volume: (-?[\d.]+|-inf) dB/.exec(stderr);
  assert.ok(m, 'volumedetect printed no max_volume');
  return m[1] === '-inf' ? -Infinity : Number(m[1]);
}

/** How many pixels of a region of the frame at `t` seconds are near-white. */
async function whitePixels(path: string, t: number, crop: string): Promise<number> {
  const { stdout } = await promisify(execFile)(
    'ffmpeg',
    ['-v', 'error', '-ss', String(t), '-i', path, '-frames:v', '1', '-vf', `crop=${crop},format=gray`, '-f', 'rawvideo', '-'],
    { encoding: 'buffer' },
  );
  assert.ok(stdout.length > 0);
  return stdout.filter((v) => v > 200).length;
}

async function assertWebReady(result: RenderResult, spec: RenderSpec) {
  const { width, height, fps } = spec.output;
  const info = await probe(result.videoPath);
  assert.equal(info.video?.codec, 'h264');
  assert.equal(info.video?.profile, 'High');
  assert.equal(info.video?.pixFmt, 'yuv420p');
  assert.equal(info.video?.width, width);
  assert.equal(info.video?.height, height);
  assert.equal(info.video?.fps, fps);
  assert.equal(info.audio?.codec, 'aac');
  const expectedMs = totalSeconds(spec) * 1000;
  const frameMs = 1000 / fps;
  for (const [what, ms] of [['file', info.durationMs], ['video stream', info.video?.durationMs ?? 0], ['audio stream', info.audio?.durationMs ?? 0]] as const)
    assert.ok(Math.abs(ms - expectedMs) <= frameMs, `${what} lasts ${ms} ms, spec says ${expectedMs} ms`);
  assert.ok(Math.abs((info.video?.frames ?? 0) - totalSeconds(spec) * fps) <= 0.5 + 1e-9, `${info.video?.frames} frames`);
  assert.deepEqual(result, { ...result, durationMs: info.durationMs, width, height });

  const boxes = await topLevelBoxes(result.videoPath);
  assert.ok(boxes.includes('moov') && boxes.indexOf('moov') < boxes.indexOf('mdat'), `moov must precede mdat (faststart): ${boxes.join(' ')}`);

  const poster = await readFile(result.posterPath);
  assert.deepEqual([...poster.subarray(0, 3)], [0xff, 0xd8, 0xff], 'poster is a JPEG');
  const posterInfo = await probe(result.posterPath);
  assert.deepEqual([posterInfo.video?.width, posterInfo.video?.height], [width, height]);
}

describe('renderVideo', () => {
  test('colour + images, Chinese caption, concat then xfade then concat, music', async () => {
    const spec: RenderSpec = {
      version: 1,
      output: { width: 320, height: 180, fps: 24 },
      scenes: [
        { duration: 1.5, background: { color: '#102040' }, caption: { text: '你好，世界' } },
        { duration: 1.1, background: { image: 'assets/photo.jpg' } },
        // Durations that are not whole frames: the total must still be frame-exact.
        { duration: 1.3, background: { image: 'assets/photo2.jpg' }, transition: { type: 'wipeleft', duration: 0.45 } },
        { duration: 0.9, background: { color: 'darkred' } },
      ],
      audio: { src: 'assets/music.mp3' },
    };
    const progress: number[] = [];
    const { result } = await render(spec, { onProgress: (f) => progress.push(f) });
    await assertWebReady(result, spec);

    // White caption glyphs at the bottom centre of the dark first scene, none elsewhere.
    const captionBand = await whitePixels(result.videoPath, 0.5, '160:30:80:140');
    const plainBand = await whitePixels(result.videoPath, 0.5, '160:30:80:20');
    assert.ok(captionBand > 100 && plainBand === 0, `white pixels: caption band ${captionBand}, plain band ${plainBand}`);
    // ...and they are glyphs, not tofu boxes: the font has every character of the caption.
    const codepoints = [...'你好，世界'].map((c) => c.codePointAt(0)!.toString(16)).join(' ');
    const { stdout: covering } = await promisify(execFile)('fc-list', [`:charset=${codepoints}`, 'file']);
    assert.ok(covering.includes(`${fontFile}:`), `${fontFile} lacks glyphs for the caption`);

    assert.ok((await maxVolume(result.videoPath)) > -30, 'the music is audible');

    assert.ok(progress.length >= 2, `progress reported ${progress.length} time(s)`);
    assert.ok(progress.every((f, i) => f > 0 && f <= 1 && (i === 0 || f > progress[i - 1]!)), `progress must increase: ${progress}`);
    assert.equal(progress.at(-1), 1);
  });

  test('scenes without transitions are concatenated, and no audio means silent AAC', async () => {
    const spec: RenderSpec = {
      version: 1,
      output: { width: 160, height: 96, fps: 30 },
      scenes: [
        { duration: 1, background: { color: 'navy' } },
        { duration: 0.7, background: { image: 'assets/photo2.jpg' }, caption: { text: 'Hello %{pts} world' } },
      ],
    };
    const { result } = await render(spec);
    await assertWebReady(result, spec);
    assert.ok((await maxVolume(result.videoPath)) <= -90, 'the soundtrack is silent');
  });

  test('music shorter than the video loops to the end', async () => {
    const spec: RenderSpec = {
      version: 1,
      output: { width: 64, height: 64, fps: 10 },
      scenes: [{ duration: 7, background: { color: 'teal' } }, { duration: 7, background: { color: 'olive' } }],
      audio: { src: 'assets/music.mp3' }, // about 10 s
    };
    const { result } = await render(spec);
    await assertWebReady(result, spec);
    assert.ok((await maxVolume(result.videoPath, 11, 1.5)) > -30, 'music plays again after its first 10 s');
  });

  test('an aborted render rejects with the reason and leaves no ffmpeg behind', async () => {
    const spec: RenderSpec = {
      version: 1,
      output: { width: 640, height: 360, fps: 30 },
      scenes: [
        { duration: 30, background: { image: 'assets/photo.jpg' } },
        { duration: 30, background: { image: 'assets/photo2.jpg' }, transition: { type: 'fade', duration: 1 } },
      ],
      audio: { src: 'assets/music.mp3' },
    };
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const workDir = await newWorkDir();
    const started = Date.now();
    const rendering = render(spec, {
      signal: controller.signal,
      // Abort once ffmpeg has demonstrably started encoding.
      onProgress: () => controller.abort(reason),
    }, workDir);
    await assert.rejects(rendering, (err) => err === reason);
    assert.ok(Date.now() - started < 10_000, 'abort took effect promptly');

    assert.deepEqual(await ffmpegProcessesUsing(workDir), [], 'no ffmpeg process is left running');
    await assert.rejects(stat(join(workDir, 'poster.jpg')), 'no poster after an abort');
  });

  test('an already aborted signal renders nothing', async () => {
    const spec: RenderSpec = { version: 1, output: { width: 64, height: 64, fps: 10 }, scenes: [{ duration: 1, background: { color: 'red' } }] };
    const reason = new Error('too late');
    await assert.rejects(render(spec, { signal: AbortSignal.abort(reason) }), (err) => err === reason);
  });

  test('an ffmpeg failure becomes render_failed with ffmpeg’s words as the cause', async () => {
    const spec: RenderSpec = { version: 1, output: { width: 64, height: 64, fps: 10 }, scenes: [{ duration: 1, background: { color: 'notacolour' } }] };
    await assert.rejects(render(spec), (err) => {
      assert.ok(err instanceof RenderError);
      assert.equal(err.code, 'render_failed');
      assert.match(String((err.cause as Error).message), /notacolour|color/i);
      return true;
    });
  });
});

describe('planTimeline', () => {
  test('awkward durations still add up to totalSeconds within half a frame', () => {
    const spec: RenderSpec = {
      version: 1,
      output: { width: 64, height: 64, fps: 24 },
      scenes: Array.from({ length: 12 }, (_, i) => ({
        duration: 1.31 + i * 0.07,
        background: { color: 'black' },
        ...(i % 2 ? { transition: { type: 'fade' as const, duration: 0.27 } } : {}),
      })),
    };
    const slots = planTimeline(spec);
    assert.ok(Math.abs(slots.at(-1)!.end - totalSeconds(spec) * 24) <= 0.5);
    for (const [i, s] of slots.entries()) {
      assert.equal(s.frames, s.end - s.start);
      if (i > 0) assert.equal(s.start, slots[i - 1]!.end - s.overlap);
      assert.ok(s.overlap < s.frames);
    }
  });
});

/** PIDs of ffmpeg processes whose command line mentions `dir`, from /proc. */
async function ffmpegProcessesUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const [exe = '', ...args] = cmdline.split('\0');
    if (/ffmpeg$/.test(exe) && args.some((a) => a.includes(dir))) pids.push(Number(entry));
  }
  return pids;
}
