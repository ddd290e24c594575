// The spec's layers and options rendered by the real ffmpeg and checked in
// the file: output presets, quality, gradients, image fits, Ken Burns, text
// layers (CJK glyphs), overlays, every transition, and music brought to
// -16 LUFS. Plus the 400s for bad values, naming the field. Small sizes and
// short videos: the suite must stay fast.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { VgenError } from '../engine/errors.js';
import { outputSize, parseSpec, totalSeconds, TRANSITIONS, type RenderSpec } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { checkFfmpeg, findFont, probe, renderVideo } from '../worker/ffmpeg.js';
import { assertMatches } from './render-helpers.js';

const bundled = fileURLToPath(new URL('../assets/', import.meta.url));
const exec = promisify(execFile);
let dir: string;
let fontFile: string;

before(async () => {
  await checkFfmpeg();
  fontFile = findFont();
  dir = await mkdtemp(join(tmpdir(), 'vgen-layers-'));
  for (const f of ['photo.jpg', 'photo2.jpg', 'music.mp3']) await copyFile(join(bundled, f), join(dir, f));
  // A logo with transparent corners: alpha must survive into the overlay.
  await exec('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=red:s=200x80,format=rgba,geq=r=255:g=0:b=0:a=if(between(X\\,20\\,179)*between(Y\\,20\\,59)\\,255\\,0)', '-frames:v', '1', join(dir, 'logo.png')]);
  // A tall portrait photo: contain leaves bars beside it.
  await exec('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=yellow:s=300x600', '-frames:v', '1', join(dir, 'tall.jpg')]);
});
after(() => rm(dir, { recursive: true, force: true }));

async function render(raw: unknown, preset = 'ultrafast') {
  const spec = parseSpec(raw);
  const workDir = await mkdtemp(join(dir, 'job-'));
  const assets = await fetchAssets(spec, workDir, { assetsDir: dir });
  const result = await renderVideo({ spec, assets, workDir, fontFile, preset });
  return { spec, result };
}


/** One frame as gray bytes (width × height), at `t` seconds. */
async function grayFrame(path: string, t: number, scale = '64:36'): Promise<Buffer> {
  const { stdout } = await exec('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', path, '-frames:v', '1', '-vf', `scale=${scale},format=gray`, '-f', 'rawvideo', '-'], { encoding: 'buffer' });
  return stdout;
}

/** Mean absolute difference of two gray frames, 0–255. */
const difference = (a: Buffer, b: Buffer) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]!), 0) / a.length;

/** A pixel's RGB at (x, y) of the frame at `t`. */
async function pixel(path: string, t: number, x: number, y: number): Promise<number[]> {
  const { stdout } = await exec('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', path, '-frames:v', '1', '-vf', `crop=1:1:${x}:${y},format=rgb24`, '-f', 'rawvideo', '-'], { encoding: 'buffer' });
  return [...stdout];
}

describe('output', () => {
  test('presets give their sizes; quality and x264Preset are honoured', async () => {
    const { spec, result } = await render({ version: 1, output: { preset: 'vertical', fps: 24, quality: 32, x264Preset: 'superfast' }, scenes: [{ duration: 0.5, background: { color: 'teal' } }] });
    await assertMatches(result.videoPath, spec);
    assert.deepEqual([result.width, result.height], [1080, 1920]);
    const { stdout } = await exec('ffprobe', ['-v', 'error', '-show_entries', 'format_tags=encoder:stream_tags', '-show_entries', 'stream=codec_name', '-of', 'json', result.videoPath]);
    assert.ok(stdout.includes('h264'));
    // x264 writes its settings into the stream: the CRF and the preset's subme show up there.
    const { stdout: sei } = await exec('bash', ['-c', `strings '${result.videoPath}' | grep -m1 'x264 - core'`]);
    assert.match(sei, /crf=32\.0/);
    assert.match(sei, /subme=1 /, 'superfast uses subme=1');
  });
});

describe('backgrounds', () => {
  test('a linear gradient runs from its first colour to its second along the angle', async () => {
    const { spec, result } = await render({
      version: 1, output: { width: 160, height: 90, fps: 10 },
      scenes: [{ duration: 0.5, background: { gradient: { type: 'linear', colors: ['#ff0000', '#0000ff'], angle: 0 } } }],
    });
    await assertMatches(result.videoPath, spec);
    const [left, right] = [await pixel(result.videoPath, 0, 4, 45), await pixel(result.videoPath, 0, 155, 45)];
    assert.ok(left[0]! > 180 && left[2]! < 80, `left is red: ${left}`);
    assert.ok(right[2]! > 180 && right[0]! < 80, `right is blue: ${right}`);
    const radial = await render({ version: 1, output: { width: 160, height: 90, fps: 10 }, scenes: [{ duration: 0.5, background: { gradient: { type: 'radial', colors: ['white', 'black'] } } }] });
    const [centre, corner] = [await pixel(radial.result.videoPath, 0, 80, 45), await pixel(radial.result.videoPath, 0, 2, 2)];
    assert.ok(centre[0]! > 200 && corner[0]! < 60, `radial: centre ${centre}, corner ${corner}`);
  });

  test('contain shows the whole image on black; contain-blur fills the sides with the image; cover fills the frame', async () => {
    const scenes = (['cover', 'contain', 'contain-blur'] as const).map((fit) => ({ duration: 0.5, background: { image: 'assets/tall.jpg', fit } }));
    const { spec, result } = await render({ version: 1, output: { width: 160, height: 90, fps: 10 }, scenes });
    await assertMatches(result.videoPath, spec);
    const side = (t: number) => pixel(result.videoPath, t, 5, 45);
    const [cover, contain, blur] = [await side(0.2), await side(0.7), await side(1.2)];
    assert.ok(cover[0]! > 200 && cover[1]! > 200, `cover: yellow everywhere ${cover}`);
    assert.ok(contain.every((v) => v < 30), `contain: black bars ${contain}`);
    assert.ok(blur[0]! > 120 && blur[1]! > 120 && blur[2]! < 100, `contain-blur: a (darkened) yellow ${blur}`);
  });

  test('Ken Burns: the first and last frames of a scene differ as a zoom does; the length is exact', async () => {
    const { spec, result } = await render({
      version: 1, output: { width: 192, height: 108, fps: 24 },
      scenes: [
        { duration: 1.5, background: { image: 'assets/photo.jpg', kenBurns: { zoom: 'in' } } },
        { duration: 1.5, background: { image: 'assets/photo2.jpg', kenBurns: { zoom: 'out', pan: 'right' } }, transition: { type: 'fade', duration: 0.5 } },
      ],
      audio: { src: 'assets/music.mp3' },
    });
    await assertMatches(result.videoPath, spec);
    const first = await grayFrame(result.videoPath, 0);
    const last = await grayFrame(result.videoPath, 0.95); // the last frame before the fade starts
    assert.ok(difference(first, last) > 4, `a zoom changes the picture: ${difference(first, last).toFixed(2)}`);
    // A zoom in keeps the centre and pushes the edges out: the centre moves least.
    const centre = (f: Buffer) => Buffer.from([...f].filter((_, i) => Math.abs((i % 64) - 32) < 6 && Math.abs(Math.floor(i / 64) - 18) < 4));
    assert.ok(difference(centre(first), centre(last)) < difference(first, last), 'the centre changes less than the whole');
  });
});

describe('text and overlays', () => {
  test('Chinese text draws glyphs: the frame differs from the same frame without it, in the text’s place', async () => {
    const base = { duration: 0.5, background: { color: '#102040' } };
    const { spec, result } = await render({
      version: 1, output: { width: 320, height: 180, fps: 10 },
      scenes: [
        { ...base, texts: [{ text: '敏捷的棕色狐狸', size: 28, font: 'serif-bold', color: 'yellow', stroke: { color: 'black', width: 2 }, position: 'center' }] },
        { ...base },
        { ...base, texts: [{ text: '左上角', size: 20, position: 'top-left', box: { color: 'white', opacity: 0.8, padding: 4 } }, { text: 'x/y', position: { x: 0.6, y: 0.7 }, size: 16 }] },
      ],
    });
    await assertMatches(result.videoPath, spec);
    const withText = await grayFrame(result.videoPath, 0.2, '320:180');
    const without = await grayFrame(result.videoPath, 0.7, '320:180');
    const band = (f: Buffer, y0: number, y1: number, x0 = 0, x1 = 320) => Buffer.from([...f].filter((_, i) => i % 320 >= x0 && i % 320 < x1 && Math.floor(i / 320) >= y0 && Math.floor(i / 320) < y1));
    assert.ok(difference(band(withText, 75, 105), band(without, 75, 105)) > 10, 'glyphs in the middle band');
    assert.equal(difference(band(withText, 0, 40), band(without, 0, 40)), 0, 'nothing drawn elsewhere');
    // Glyphs, not tofu: the serif-bold font has every character.
    const codepoints = [...'敏捷的棕色狐狸'].map((c) => c.codePointAt(0)!.toString(16)).join(' ');
    const { stdout: covering } = await exec('fc-list', [`:charset=${codepoints}`, 'file']);
    assert.match(covering, /NotoSerifCJK-Bold|NotoSansCJK/);
    const third = await grayFrame(result.videoPath, 1.2, '320:180');
    assert.ok(difference(band(third, 10, 40, 10, 90), band(without, 10, 40, 10, 90)) > 30, 'a white box top left');
  });

  test('overlays: a logo with its transparency, at its position and opacity, on every frame, transitions included', async () => {
    const { spec, result } = await render({
      version: 1, output: { width: 320, height: 180, fps: 10 },
      scenes: [
        { duration: 1, background: { color: 'black' }, overlays: [{ image: 'assets/logo.png', position: 'center', width: 0.5, opacity: 0.5 }] },
        { duration: 1, background: { color: 'white' }, transition: { type: 'slideleft', duration: 0.4 } },
      ],
      overlays: [{ image: 'assets/logo.png', position: 'top-left', width: 0.25 }],
    });
    await assertMatches(result.videoPath, spec);
    // The global logo (80×32 at (7, 7)): red inside its box, background at its transparent corner.
    for (const t of [0.1, 0.8, 1.4]) {
      const [r, g, b] = await pixel(result.videoPath, t, 7 + 40, 7 + 16);
      assert.ok(r! > 180 && g! < 80 && b! < 80, `logo at ${t} s: ${[r, g, b]}`);
    }
    const corner = await pixel(result.videoPath, 1.4, 8, 8);
    assert.ok(corner.every((v) => v > 200), `transparent corner shows white: ${corner}`);
    // The scene's logo at half opacity over black: a dark red.
    const [r, g] = await pixel(result.videoPath, 0.2, 160, 90);
    assert.ok(r! > 80 && r! < 170 && g! < 50, `half-opaque red: ${r}`);
  });
});

describe('transitions', () => {
  test('every transition renders frame-exact', async () => {
    const scenes = TRANSITIONS.map((type, i) => ({
      duration: 0.6,
      background: i % 2 ? { image: 'assets/photo.jpg' } : { color: i % 4 ? 'navy' : 'darkred' },
      ...(i > 0 && { transition: { type, duration: 0.2 } }),
    }));
    const { spec, result } = await render({ version: 1, output: { width: 96, height: 64, fps: 10 }, scenes });
    await assertMatches(result.videoPath, spec);
  });
});

describe('audio', () => {
  /** Integrated loudness (LUFS) of the file's audio, by ffmpeg's ebur128. */
  async function loudness(path: string): Promise<number> {
    const { stderr } = await exec('ffmpeg', ['-hide_banner', '-nostats', '-i', path, '-map', '0:a', '-af', 'ebur128=framelog=verbose', '-f', 'null', '-']);
    return Number([...stderr.matchAll(/I:\s+(-?[\d.]+) LUFS/g)].at(-1)![1]);
  }

  test('music is normalized to -16 LUFS (±1 LU)', async () => {
    const { spec, result } = await render({ version: 1, output: { width: 96, height: 64, fps: 10 }, scenes: [{ duration: 8, background: { color: 'black' } }], audio: { src: 'assets/music.mp3' } });
    await assertMatches(result.videoPath, spec);
    const lufs = await loudness(result.videoPath);
    assert.ok(Math.abs(lufs - -16) <= 1, `integrated loudness ${lufs} LUFS`);
  });

  test('start, trim (looped), volume and fades', async () => {
    const { spec, result } = await render({
      version: 1, output: { width: 96, height: 64, fps: 10 },
      scenes: [{ duration: 6, background: { color: 'black' } }],
      audio: { src: 'assets/music.mp3', start: 1.5, trim: { from: 2, to: 3.5 }, volume: 0.5, fadeIn: 0.5, fadeOut: 0.5 },
    });
    await assertMatches(result.videoPath, spec);
    const volume = async (from: number, seconds: number) => {
      const { stderr } = await exec('ffmpeg', ['-hide_banner', '-nostats', '-ss', String(from), '-t', String(seconds), '-i', result.videoPath, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-']);
      const m = /max_volume: (-?[\d.]+|-inf) dB/.exec(stderr)!;
      return m[1] === '-inf' ? -Infinity : Number(m[1]);
    };
    assert.ok((await volume(0, 1.4)) < -60, 'silent before the start');
    assert.ok((await volume(2.5, 1)) > -40, 'plays after it');
    assert.ok((await volume(4.5, 1)) > -40, 'the 1.5 s part loops to the end');
    // Half the volume: about 6 dB under -16 LUFS.
    const lufs = await loudness(result.videoPath);
    assert.ok(lufs < -19 && lufs > -26, `volume 0.5 lowers the loudness: ${lufs}`);
  });
});

describe('bad values are a 400 naming the field', () => {
  const ok = { version: 1, output: { width: 64, height: 64, fps: 10 }, scenes: [{ duration: 1, background: { color: 'black' } }] };
  const cases: [string, unknown, string][] = [
    ['unknown preset', { ...ok, output: { preset: '4k', fps: 30 } }, 'output.preset'],
    ['preset and width', { ...ok, output: { preset: '720p', width: 640, height: 360, fps: 30 } }, 'output.preset'],
    ['no size', { ...ok, output: { fps: 30 } }, 'output.width'],
    ['width without height', { ...ok, output: { width: 640, fps: 30 } }, 'output.height'],
    ['quality too low', { ...ok, output: { ...ok.output, quality: 10 } }, 'output.quality'],
    ['unknown x264 preset', { ...ok, output: { ...ok.output, x264Preset: 'placebo' } }, 'output.x264Preset'],
    ['gradient with one colour', { ...ok, scenes: [{ duration: 1, background: { gradient: { type: 'linear', colors: ['red'] } } }] }, 'scenes[0].background.gradient.colors'],
    ['gradient angle', { ...ok, scenes: [{ duration: 1, background: { gradient: { type: 'linear', colors: ['red', 'blue'], angle: 400 } } }] }, 'scenes[0].background.gradient.angle'],
    ['unknown fit', { ...ok, scenes: [{ duration: 1, background: { image: 'assets/photo.jpg', fit: 'stretch' } }] }, 'scenes[0].background.fit'],
    ['ken burns zoom', { ...ok, scenes: [{ duration: 1, background: { image: 'assets/photo.jpg', kenBurns: { zoom: 'sideways' } } }] }, 'scenes[0].background.kenBurns.zoom'],
    ['ken burns on a colour', { ...ok, scenes: [{ duration: 1, background: { color: 'red', kenBurns: { zoom: 'in' } } }] }, 'scenes[0].background.kenBurns'],
    ['unknown font', { ...ok, scenes: [{ ...ok.scenes[0], texts: [{ text: 'a', font: 'comic' }] }] }, 'scenes[0].texts[0].font'],
    ['empty text', { ...ok, scenes: [{ ...ok.scenes[0], texts: [{ text: '' }] }] }, 'scenes[0].texts[0].text'],
    ['huge text', { ...ok, scenes: [{ ...ok.scenes[0], texts: [{ text: 'a', size: 5000 }] }] }, 'scenes[0].texts[0].size'],
    ['bad stroke colour', { ...ok, scenes: [{ ...ok.scenes[0], texts: [{ text: 'a', stroke: { color: 'notacolour', width: 2 } }] }] }, 'scenes[0].texts[0].stroke.color'],
    ['position off the frame', { ...ok, scenes: [{ ...ok.scenes[0], texts: [{ text: 'a', position: { x: 1.5, y: 0 } }] }] }, 'scenes[0].texts[0].position.x'],
    ['too many texts', { ...ok, scenes: [{ ...ok.scenes[0], texts: Array.from({ length: 9 }, () => ({ text: 'a' })) }] }, 'scenes[0].texts'],
    ['overlay opacity', { ...ok, overlays: [{ image: 'assets/logo.png', opacity: 2 }] }, 'overlays[0].opacity'],
    ['overlay from a private host', { ...ok, overlays: [{ image: 'https://10.0.0.1/logo.png' }] }, 'overlays[0].image'],
    ['scene overlay not an asset', { ...ok, scenes: [{ ...ok.scenes[0], overlays: [{ image: 'file:///etc/passwd' }] }] }, 'scenes[0].overlays[0].image'],
    ['audio is an overlay image', { ...ok, overlays: [{ image: 'assets/music.mp3' }], audio: { src: 'assets/music.mp3' } }, 'audio.src'],
    ['trim backwards', { ...ok, audio: { src: 'assets/music.mp3', trim: { from: 3, to: 2 } } }, 'audio.trim.to'],
    ['start after the end', { ...ok, audio: { src: 'assets/music.mp3', start: 5 } }, 'audio.start'],
    ['negative volume', { ...ok, audio: { src: 'assets/music.mp3', volume: -1 } }, 'audio.volume'],
    ['long fade', { ...ok, audio: { src: 'assets/music.mp3', fadeIn: 60 } }, 'audio.fadeIn'],
    ['unknown transition', { ...ok, scenes: [ok.scenes[0], { ...ok.scenes[0], transition: { type: 'zoomin', duration: 0.2 } }] }, 'scenes[1].transition.type'],
  ];
  for (const [name, body, field] of cases)
    test(name, () => {
      assert.throws(() => parseSpec(body), (err) => {
        assert.ok(err instanceof VgenError, String(err));
        assert.equal(err.statusCode, 400);
        assert.equal(err.field, field, err.message);
        return true;
      });
    });

  test('version-1 specs are still valid as they were', () => {
    parseSpec({ ...ok, scenes: [{ duration: 1, background: { image: 'assets/photo.jpg' }, caption: { text: 'hi' } }], audio: { src: 'assets/music.mp3' } });
  });
});
