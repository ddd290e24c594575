// Video clips as scene backgrounds, rendered by the real ffmpeg: trim, loop,
// freeze, kept or muted sound, the music ducked under the clip's sound, the
// bundled sample clip and a WebM; and hostile clips (a playlist or concat
// list disguised as an MP4, a truncated MP4, a huge video, a video used as
// music) refused before rendering. Small sizes and short videos.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RenderError } from '../engine/errors.js';
import { outputSize, parseSpec, totalSeconds, type RenderSpec } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { checkFfmpeg, findFont, planRender, probe, renderVideo } from '../worker/ffmpeg.js';
import { plan } from '../worker/planner/index.js';
import { assertMatches } from './render-helpers.js';

const bundled = fileURLToPath(new URL('../assets/', import.meta.url));
const exec = promisify(execFile);
let dir: string;
let fontFile: string;

const ff = (args: string[]) => exec('ffmpeg', ['-v', 'error', '-y', ...args]);

before(async () => {
  await checkFfmpeg();
  fontFile = findFont();
  dir = await mkdtemp(join(tmpdir(), 'vgen-clips-'));
  for (const f of ['photo.jpg', 'music.mp3', 'clip.mp4']) await copyFile(join(bundled, f), join(dir, f));
  // 2 s of a moving test pattern with a 200 Hz tone; and music that is a 3 kHz tone:
  // a high-pass filter then hears the music alone.
  await ff(['-f', 'lavfi', '-i', 'testsrc2=s=320x180:r=30:d=2', '-f', 'lavfi', '-i', 'sine=f=200:d=2:sample_rate=48000,volume=0.5',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '15', '-c:a', 'aac', '-shortest', '-movflags', '+faststart', join(dir, 'moving.mp4')]);
  await ff(['-f', 'lavfi', '-i', 'sine=f=3000:d=10:sample_rate=48000,volume=0.3', join(dir, 'tone.wav')]);
  await ff(['-f', 'lavfi', '-i', 'testsrc2=s=320x180:r=25:d=1', '-c:v', 'libvpx', '-b:v', '200k', '-deadline', 'realtime', join(dir, 'moving.webm')]);
  await ff(['-f', 'lavfi', '-i', 'testsrc2=s=320x180:r=30:d=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'mov', join(dir, 'moving.mov')]);
});
after(() => rm(dir, { recursive: true, force: true }));

async function render(raw: unknown) {
  const spec = parseSpec(raw);
  const workDir = await mkdtemp(join(dir, 'job-'));
  const assets = await fetchAssets(spec, workDir, { assetsDir: dir });
  const result = await renderVideo({ spec, assets, workDir, fontFile, preset: 'ultrafast' });
  await assertMatches(result.videoPath, spec);
  return { spec, result, assets, workDir };
}


/** One frame as gray bytes (64×36), at `t` seconds. */
async function grayFrame(path: string, t: number): Promise<Buffer> {
  const { stdout } = await exec('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', path, '-frames:v', '1', '-vf', 'scale=64:36,format=gray', '-f', 'rawvideo', '-'], { encoding: 'buffer' });
  return stdout;
}
const difference = (a: Buffer, b: Buffer) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]!), 0) / a.length;

/** Mean volume (dB) of `path` between `from` and `from + seconds`, after an optional filter. */
async function meanVolume(path: string, from: number, seconds: number, filter = ''): Promise<number> {
  const { stderr } = await exec('ffmpeg', ['-hide_banner', '-ss', String(from), '-t', String(seconds), '-i', path, '-af', `${filter}${filter ? ',' : ''}volumedetect`, '-f', 'null', '-']);
  return Number(/mean_volume: (-?[\d.]+|-inf) dB/.exec(stderr)?.[1] ?? NaN);
}

const scene = (background: Record<string, unknown>, duration = 1) => ({ duration, background });
const clipSpec = (background: Record<string, unknown>, duration = 1, extra: Record<string, unknown> = {}) =>
  ({ version: 1, output: { width: 160, height: 90, fps: 30 }, scenes: [scene(background, duration)], ...extra });

describe('clips', () => {
  test('trim: the scene starts at trim.from of the clip', async () => {
    const { result } = await render(clipSpec({ video: 'assets/moving.mp4', trim: { from: 1, to: 1.5 } }, 0.5));
    const first = await grayFrame(result.videoPath, 0);
    const source = (t: number) => exec('ffmpeg', ['-v', 'error', '-ss', String(t), '-i', join(dir, 'moving.mp4'), '-frames:v', '1', '-vf', 'scale=64:36,format=gray', '-f', 'rawvideo', '-'], { encoding: 'buffer' }).then((r) => r.stdout);
    const [at1, at0] = [await source(1), await source(0)];
    assert.ok(difference(first, at1) < difference(first, at0) / 2, `first frame is the clip at 1 s (${difference(first, at1)} vs ${difference(first, at0)} from 0 s)`);
  });

  test('loop fills the scene with the trimmed part again and again; freeze holds its last frame', async () => {
    // A 0.5 s part in a 1.6 s scene: frames 0.1 s and 0.6 s apart are the same picture when looping.
    const looped = await render(clipSpec({ video: 'assets/moving.mp4', trim: { from: 0.2, to: 0.7 }, fill: 'loop' }, 1.6));
    const l = await Promise.all([0.1, 0.6, 1.1, 0.35].map((t) => grayFrame(looped.result.videoPath, t)));
    assert.ok(difference(l[0]!, l[1]!) < 2 && difference(l[1]!, l[2]!) < 2, 'the loop repeats');
    assert.ok(difference(l[0]!, l[3]!) > 2 * Math.max(difference(l[0]!, l[1]!), 0.5), 'and moves within a loop');
    // The loop was cut once in a pass of its own, then looped by the demuxer.
    assert.equal(looped.result.durationMs, 1600);

    const frozen = await render(clipSpec({ video: 'assets/moving.mp4', trim: { from: 0.2, to: 0.7 }, fill: 'freeze' }, 1.6));
    const f = await Promise.all([0.8, 1.2, 1.55, 0.1].map((t) => grayFrame(frozen.result.videoPath, t)));
    assert.ok(difference(f[0]!, f[1]!) < 1 && difference(f[1]!, f[2]!) < 1, 'frozen after the clip ends');
    assert.ok(difference(f[3]!, f[0]!) > 3, 'and moving before');
  });

  test('fit: contain shows the whole 16:9 clip on black in a square', async () => {
    const { result } = await render({ ...clipSpec({ video: 'assets/moving.mp4', fit: 'contain' }, 0.5), output: { width: 160, height: 160, fps: 30 } });
    const { stdout } = await exec('ffmpeg', ['-v', 'error', '-i', result.videoPath, '-frames:v', '1', '-vf', 'crop=160:20:0:0,format=gray', '-f', 'rawvideo', '-'], { encoding: 'buffer' });
    assert.ok(stdout.every((v) => v < 24), 'the band above the clip is black');
  });

  test('audio: keep mixes the clip\'s sound in, mute (the default) leaves it out', async () => {
    const kept = await render(clipSpec({ video: 'assets/moving.mp4', audio: 'keep' }, 1.5));
    const muted = await render(clipSpec({ video: 'assets/moving.mp4' }, 1.5));
    const [k, m] = [await meanVolume(kept.result.videoPath, 0.2, 0.6), await meanVolume(muted.result.videoPath, 0.2, 0.6)];
    assert.ok(k > -40, `kept sound is audible (${k} dB)`);
    assert.ok(m < -80, `muted is silent (${m} dB)`);
    // A looped clip's sound loops with it: still sounding after the 2 s file ends... and a frozen one stops.
    const loopSound = await render(clipSpec({ video: 'assets/moving.mp4', audio: 'keep', trim: { from: 0, to: 0.8 } }, 2));
    const freezeSound = await render(clipSpec({ video: 'assets/moving.mp4', audio: 'keep', trim: { from: 0, to: 0.8 }, fill: 'freeze' }, 2));
    assert.ok((await meanVolume(loopSound.result.videoPath, 1.1, 0.6)) > -40);
    assert.ok((await meanVolume(freezeSound.result.videoPath, 1.1, 0.6)) < -80);
  });

  test('ducking: the music is lower where the clip\'s sound plays, and only there', async () => {
    const spec = (audio: 'keep' | 'mute') => ({
      version: 1,
      output: { width: 160, height: 90, fps: 30 },
      scenes: [scene({ color: 'navy' }, 1.5), scene({ video: 'assets/moving.mp4', audio }, 1.5), scene({ color: 'teal' }, 1.5)],
      audio: { src: 'assets/tone.wav', fadeOut: 0 },
    });
    const music = 'highpass=f=1500,highpass=f=1500,highpass=f=1500'; // the 3 kHz music, not the 200 Hz clip
    const levels = async (path: string) => Promise.all([0.3, 1.8, 3.6].map((t) => meanVolume(path, t, 0.9, music)));
    const ducked = await levels((await render(spec('keep'))).result.videoPath);
    const control = await levels((await render(spec('mute'))).result.videoPath);
    const drop = ducked[0]! - ducked[1]!;
    assert.ok(drop >= 6, `music ducked by ${drop.toFixed(1)} dB under the clip (${ducked.join(', ')})`);
    assert.ok(Math.abs(ducked[2]! - ducked[0]!) < 1.5, `and back up after it (${ducked.join(', ')})`);
    assert.ok(Math.abs(control[0]! - control[1]!) < 1, `no ducking with the clip muted (${control.join(', ')})`);
  });

  test('loudness: music and clip sound together are brought to -16 LUFS', async () => {
    const { result } = await render({ ...clipSpec({ video: 'assets/moving.mp4', audio: 'keep' }, 2), audio: { src: 'assets/music.mp3', fadeOut: 0 } });
    const { stderr } = await exec('ffmpeg', ['-hide_banner', '-nostats', '-i', result.videoPath, '-af', 'ebur128', '-f', 'null', '-']);
    const lufs = Number([...stderr.matchAll(/I:\s+(-?[\d.]+) LUFS/g)].at(-1)?.[1]);
    assert.ok(Math.abs(lufs - -16) <= 1, `integrated loudness ${lufs} LUFS`);
  });

  test('the bundled sample clip, a WebM and a MOV render; a clip with layers and a transition', async () => {
    await render({
      version: 1, output: { width: 192, height: 108, fps: 25 },
      scenes: [
        { duration: 1, background: { video: 'assets/clip.mp4', fit: 'contain-blur' }, texts: [{ text: 'clip 你好', position: 'top' }] },
        { duration: 1, background: { video: 'assets/moving.webm' }, transition: { type: 'wipeleft', duration: 0.4 } },
        { duration: 1, background: { video: 'assets/moving.mov', audio: 'keep' }, transition: { type: 'fade', duration: 0.4 } },
      ],
    });
    assert.ok((await stat(join(bundled, 'clip.mp4'))).size < 400_000, 'the bundled clip stays small');
  });

  test('the plan: a clip that fills its scene is decoded by the main run from trim.from, bounded by -t', async () => {
    const spec = parseSpec(clipSpec({ video: 'assets/moving.mp4', trim: { from: 0.5 } }, 1));
    const workDir = await mkdtemp(join(dir, 'plan-'));
    const assets = await fetchAssets(spec, workDir, { assetsDir: dir });
    const p = planRender({ spec, assets, workDir, fontFile });
    assert.equal(p.fits.length, 0);
    const input = p.inputs.find((i) => i.ref === 'assets/moving.mp4')!;
    assert.deepEqual(input.options.slice(0, 4), ['-protocol_whitelist', 'file,pipe', '-f', 'mov']);
    assert.ok(input.options.join(' ').includes('-ss 0.5 -t 1'));
  });
});

describe('the plan (pure)', () => {
  const assets = new Map([
    ['assets/a.mp4', { path: '/w/a.mp4', kind: 'video' as const, format: 'mov', width: 640, height: 360, seconds: 3, hasAudio: true }],
    ['assets/m.mp3', { path: '/w/m.mp3', kind: 'audio' as const, format: 'mp3', seconds: 10 }],
  ]);
  const planOf = (raw: unknown, loudness?: number) => plan(parseSpec(raw), assets, { workDir: '/w', fontFile: '/f.ttf', ...(loudness !== undefined && { loudness }) });

  test('a clip shorter than its scene that loops is cut once in a pass, then looped by the demuxer', () => {
    const p = planOf(clipSpec({ video: 'assets/a.mp4', trim: { from: 1, to: 1.5 } }, 2));
    assert.equal(p.fits.length, 1);
    assert.deepEqual(p.fits[0]!.input.options.slice(-4), ['-ss', '1', '-t', '0.5']);
    const looped = p.inputs.find((i) => i.path === '/w/clip-0.mkv')!;
    assert.deepEqual(looped.options.slice(0, 6), ['-protocol_whitelist', 'file,pipe', '-f', 'matroska', '-stream_loop', '-1']);
    // Frozen instead: no pass, the last frame cloned.
    const frozen = planOf(clipSpec({ video: 'assets/a.mp4', trim: { from: 1, to: 1.5 }, fill: 'freeze' }, 2));
    assert.equal(frozen.fits.length, 0);
    assert.match(frozen.filter, /tpad=stop=-1:stop_mode=clone,trim=end_frame=60/);
  });

  test('kept sound is measured with the music and ducks it; muted sound is not read at all', () => {
    const spec = { ...clipSpec({ video: 'assets/a.mp4', audio: 'keep' }, 2), audio: { src: 'assets/m.mp3', volume: 0.5 } };
    const first = planOf(spec);
    assert.ok(first.loudness, 'a loudness pass');
    assert.equal(first.loudness.inputs.length, 2);
    assert.match(first.loudness.filter, /sidechaincompress/);
    assert.doesNotMatch(first.loudness.filter, /volume=0.5/, 'the music volume is applied after measuring');
    const main = planOf(spec, -20);
    assert.match(main.filter, /\[0:a\]aformat/);
    assert.match(main.filter, /volume=0.5,asetpts=N\/SR\/TB\[mv\d+\];\[mv\d+\]\[cs\d+\]sidechaincompress/);
    assert.match(main.filter, /volume=4.00dB,alimiter/);
    const muted = planOf({ ...spec, scenes: [scene({ video: 'assets/a.mp4' }, 2)] }, -20);
    assert.doesNotMatch(muted.filter, /sidechaincompress|\[0:a\]/);
  });
});

describe('hostile clips', () => {
  async function refused(name: string, bytes: Buffer | string, code: 'asset_invalid' | 'asset_forbidden', message?: RegExp, usedAs: 'video' | 'music' = 'video') {
    await writeFile(join(dir, name), bytes);
    const raw = usedAs === 'video' ? clipSpec({ video: `assets/${name}` }) : { ...clipSpec({ color: 'black' }), audio: { src: `assets/${name}` } };
    const spec = parseSpec(raw);
    const workDir = await mkdtemp(join(dir, 'bad-'));
    await assert.rejects(fetchAssets(spec, workDir, { assetsDir: dir }), (err: unknown) => {
      assert.ok(err instanceof RenderError, String(err));
      assert.equal(err.code, code, err.message);
      assert.equal(err.retryable, false);
      if (message) assert.match(err.message, message);
      return true;
    });
  }

  test('an HLS playlist renamed .mp4 is refused, with or without an ftyp box in front', async () => {
    const playlist = '#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n';
    await refused('playlist.mp4', playlist, 'asset_invalid', /not a supported/);
    const box = Buffer.alloc(24);
    box.writeUInt32BE(24, 0);
    box.write('ftypisom', 4, 'latin1');
    await refused('boxed-playlist.mp4', Buffer.concat([box, Buffer.from(playlist)]), 'asset_invalid');
  });

  test('a concat list renamed .mp4 is refused', async () => {
    await refused('list.mp4', `ffconcat version 1.0\nfile '${join(dir, 'moving.mp4')}'\nfile '/etc/passwd'\n`, 'asset_invalid', /not a supported/);
  });

  test('a truncated MP4 is refused (its moov at the end, or its frames cut off)', async () => {
    const whole = await readFile(join(dir, 'moving.mp4')); // faststart: the index first, frames after
    await refused('cut.mp4', whole.subarray(0, Math.floor(whole.length * 0.6)), 'asset_invalid', /truncated|damaged|could not|not a readable/);
    await ff(['-f', 'lavfi', '-i', 'testsrc2=s=160x90:r=30:d=1', '-c:v', 'libx264', '-preset', 'ultrafast', join(dir, 'tail-moov.mp4')]);
    const tail = await readFile(join(dir, 'tail-moov.mp4'));
    await refused('cut-tail.mp4', tail.subarray(0, Math.floor(tail.length * 0.6)), 'asset_invalid');
  });

  test('a video larger than UHD is refused before it is decoded', async () => {
    await ff(['-f', 'lavfi', '-i', 'color=c=red:s=4096x2304:r=1:d=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-frames:v', '1', join(dir, 'huge-src.mp4')]);
    await refused('huge.mp4', await readFile(join(dir, 'huge-src.mp4')), 'asset_invalid', /4096×2304 video/);
  });

  test('a clip longer than MAX_ASSET_SECONDS is refused', async () => {
    const spec = parseSpec(clipSpec({ video: 'assets/moving.mp4' }));
    const workDir = await mkdtemp(join(dir, 'long-'));
    await assert.rejects(fetchAssets(spec, workDir, { assetsDir: dir, limits: { maxPixels: 40e6, maxSide: 8192, maxSeconds: 1 } }), /lasts 2 s; a clip may last at most 1 s/);
  });

  test('a still image, an MP3 or a file with no video used as a clip, and a video used as music, are refused', async () => {
    await refused('still.mp4', await readFile(join(dir, 'photo.jpg')), 'asset_invalid', /image file but is used as video/);
    await refused('song.mp4', await readFile(join(dir, 'music.mp3')), 'asset_invalid', /audio file but is used as video/);
    await ff(['-f', 'lavfi', '-i', 'sine=d=1', '-c:a', 'aac', join(dir, 'voice.m4a')]);
    await refused('voice-as-clip.mp4', await readFile(join(dir, 'voice.m4a')), 'asset_invalid', /no video stream/);
    await refused('clip-as-music.m4a', await readFile(join(dir, 'moving.mp4')), 'asset_invalid', /video file but is used as audio/, 'music');
  });

  test('a clip outside the bundled assets folder is forbidden; trim rules are 400s naming the field', async () => {
    await symlink('/etc/passwd', join(dir, 'link.mp4'));
    await assert.rejects(fetchAssets(parseSpec(clipSpec({ video: 'assets/link.mp4' })), await mkdtemp(join(dir, 'f-')), { assetsDir: dir }), (e: { code?: string }) => e.code === 'asset_forbidden');
    assert.throws(() => parseSpec(clipSpec({ video: 'assets/moving.mp4', trim: { from: 1, to: 0.5 } })), (e: { field?: string }) => e.field === 'scenes[0].background.trim.to');
    assert.throws(() => parseSpec(clipSpec({ video: 'assets/moving.mp4', fill: 'bounce' })), (e: { field?: string }) => e.field === 'scenes[0].background.fill');
    assert.throws(() => parseSpec(clipSpec({ video: 'assets/moving.mp4', audio: 'loud' })), (e: { field?: string }) => e.field === 'scenes[0].background.audio');
    assert.throws(() => parseSpec(clipSpec({ video: 'file:///etc/passwd' })), (e: { field?: string }) => e.field === 'scenes[0].background.video');
    assert.throws(() => parseSpec(clipSpec({ video: 'https://127.0.0.1/a.mp4' })), (e: { code?: string; field?: string }) => e.code === 'asset_forbidden' && e.field === 'scenes[0].background.video');
    assert.throws(() => parseSpec({ ...clipSpec({ video: 'assets/moving.mp4' }), audio: { src: 'assets/moving.mp4' } }), (e: { field?: string }) => e.field === 'audio.src');
    // A trim past the end of the file leaves nothing to show: refused, not an endless loop.
    const spec = parseSpec(clipSpec({ video: 'assets/moving.mp4', trim: { from: 5 } }));
    const workDir = await mkdtemp(join(dir, 'past-'));
    const assets = await fetchAssets(spec, workDir, { assetsDir: dir });
    await assert.rejects(renderVideo({ spec, assets, workDir, fontFile }), /leaves nothing of it to show/);
  });
});
