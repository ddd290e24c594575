// Render speed guards that can be checked without timing: the main run's
// graph keeps frames in yuv420p from the composed scenes to x264, so ffmpeg
// inserts no pixel-format conversion of its own. One did (xfade takes only
// yuv444p, the poster's JPEG encoder yuvj*), and its format then spread through
// every format-agnostic filter: the whole video was composed in yuv444p and
// every frame converted back before x264, a third of a static slideshow's
// render time (docs/operations.md, "Render speed"). Most transitions now
// blend the yuv420p planes apart, with no conversion at all: checked against
// the yuv444p route they replace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseSpec, TRANSITIONS } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { findFont, planRender, probe, renderVideo } from '../worker/ffmpeg.js';
import { Graph } from '../worker/planner/graph.js';
import { blend, PLANEWISE } from '../worker/planner/transitions.js';

const bundled = fileURLToPath(new URL('../assets/', import.meta.url));
const exec = promisify(execFile);
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vgen-speed-'));
  for (const f of ['photo.jpg', 'photo2.jpg', 'music.mp3']) await copyFile(join(bundled, f), join(dir, f));
  await exec('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=red:s=200x80,format=rgba', '-frames:v', '1', join(dir, 'logo.png')]);
});
after(() => rm(dir, { recursive: true, force: true }));

/** Still and Ken Burns scenes, a colour scene, captions, several transitions, an overlay, music. */
const spec = parseSpec({
  version: 1,
  output: { width: 320, height: 180, fps: 15 },
  scenes: [
    { duration: 1, background: { image: 'assets/photo.jpg' }, caption: { text: 'still 你好' } },
    { duration: 1, background: { image: 'assets/photo2.jpg', kenBurns: { zoom: 'in' } }, caption: { text: 'moving' }, transition: { type: 'fade', duration: 0.4 } },
    { duration: 1, background: { color: '#224488' }, texts: [{ text: 'colour', position: 'top' }], transition: { type: TRANSITIONS[1]!, duration: 0.4 } },
    { duration: 1, background: { image: 'assets/photo.jpg', fit: 'contain-blur' }, transition: { type: 'slideup', duration: 0.4 } },
  ],
  overlays: [{ image: 'assets/logo.png', position: 'top-right', width: 0.2, opacity: 0.8 }],
  audio: { src: 'assets/music.mp3' },
});

test('the main run inserts no pixel-format conversion: frames stay yuv420p from the scenes to x264', async () => {
  const workDir = await mkdtemp(join(dir, 'job-'));
  const assets = await fetchAssets(spec, workDir, { assetsDir: dir });
  const p = planRender({ spec, assets, workDir, fontFile: findFont(), preset: 'ultrafast' });
  await Promise.all(p.textFiles.map((f) => writeFile(f.path, f.text)));
  assert.equal(p.fits.length, 0, 'this spec is decoded by the main run alone');
  const args = [
    '-hide_banner', '-nostdin', '-y',
    ...p.inputs.flatMap((i) => [...i.options, '-i', i.path]),
    '-filter_complex', p.filter,
    ...p.outputOptions, join(workDir, 'video.mp4'),
    ...p.posterOptions, join(workDir, 'poster.jpg'),
    // After the plan's own -loglevel: ffmpeg prints the filters it inserts at verbose.
    '-loglevel', 'verbose',
  ];
  const { stderr } = await exec('ffmpeg', args, { maxBuffer: 64 << 20 });
  assert.match(stderr, /Parsed_scale_\d+/, 'the log is verbose enough to show inserted filters');
  // The one exception: an overlay's single frame (rgba with its opacity), which
  // the overlay filter takes as yuva420p: converted once, not per frame.
  const inserted = stderr.split('\n').filter((l) => /auto-inserting filter 'auto_scale/.test(l) && !/between the filter 'Parsed_colorchannelmixer_/.test(l));
  assert.deepEqual(inserted, [], `ffmpeg converted frames on its own:\n${inserted.join('\n')}`);
  // The output is what the plan says: yuv420p H.264, the timeline's frames; a JPEG poster.
  const info = await probe(join(workDir, 'video.mp4'));
  assert.equal(info.video?.pixFmt, 'yuv420p');
  assert.equal(info.video?.frames, p.frames);
  const poster = await probe(join(workDir, 'poster.jpg'));
  assert.equal(poster.video?.codec, 'mjpeg');
});

test('transitions still blend: the middle of a fade differs from both scenes, in the rendered file', async () => {
  const fade = parseSpec({
    version: 1,
    output: { width: 160, height: 90, fps: 10 },
    scenes: [
      { duration: 1, background: { color: 'black' } },
      { duration: 1, background: { color: 'white' }, transition: { type: 'fade', duration: 0.6 } },
    ],
  });
  const workDir = await mkdtemp(join(dir, 'job-'));
  const out = await renderVideo({ spec: fade, assets: new Map(), workDir, fontFile: findFont(), preset: 'ultrafast' });
  const { stdout } = await exec('ffmpeg', ['-v', 'error', '-i', out.videoPath, '-vf', 'scale=1:1,format=gray', '-f', 'rawvideo', '-'], { encoding: 'buffer' });
  const luma = [...stdout];
  assert.equal(luma.length, 14);
  // Black (16) for the first scene's own frames, white (235) at the end, a ramp between.
  assert.ok(luma[0]! < 30 && luma.at(-1)! > 220, `ends: ${luma}`);
  const middle = luma[7]!;
  assert.ok(middle > 60 && middle < 190, `the blend's middle frame is grey: ${luma}`);
  for (let k = 1; k < luma.length; k++) assert.ok(luma[k]! >= luma[k - 1]! - 2, `monotonic: ${luma}`);
});

/** One transition's 8 blended frames (320×180, 10 fps) from a red scene into a green one, by one route; PSNR of the two routes per plane. */
async function compareRoutes(type: string): Promise<{ y: number; u: number; v: number; frames: number }> {
  const files = await Promise.all([true, false].map(async (planewise) => {
    const g = new Graph();
    const out = blend(type, 8, 10, '[0:v]', '[1:v]', 1, g, planewise);
    const file = join(dir, `${type}-${planewise}.y4m`);
    await exec('ffmpeg', [
      '-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'color=c=red:s=320x180:r=10:d=1,format=yuv420p',
      '-f', 'lavfi', '-i', 'color=c=0x40ff80:s=320x180:r=10:d=1,format=yuv420p',
      '-filter_complex', g.toString(), '-map', out, '-f', 'yuv4mpegpipe', file,
    ]);
    return file;
  }));
  const { stderr } = await exec('ffmpeg', ['-hide_banner', '-i', files[0]!, '-i', files[1]!, '-lavfi', '[0][1]psnr', '-f', 'null', '-']);
  const m = /PSNR y:(\S+) u:(\S+) v:(\S+)/.exec(stderr);
  assert.ok(m, stderr);
  const frames = Number([...stderr.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1]);
  const db = (s: string) => (s === 'inf' ? Infinity : Number(s));
  return { y: db(m[1]!), u: db(m[2]!), v: db(m[3]!), frames };
}

test('transitions run plane by plane on yuv420p give the yuv444p route\'s frames; dissolve would not', async () => {
  for (const t of PLANEWISE) assert.ok((TRANSITIONS as readonly string[]).includes(t), t);
  for (const t of PLANEWISE) {
    const r = await compareRoutes(t);
    assert.equal(r.frames, 8, `${t}: the overlap's frames`);
    // Luma is the same blend (one frame of slideup may place its edge a row apart);
    // chroma differs only by what the 420→444→420 round trip loses along the edge.
    assert.ok(r.y >= 40 && r.u >= 28 && r.v >= 28, `${t}: ${JSON.stringify(r)}`);
  }
  // The check tells a wrong picture apart: dissolve's per-pixel noise, drawn
  // per plane, picks other pixels for chroma than for luma.
  const d = await compareRoutes('dissolve');
  assert.ok(Math.min(d.u, d.v) < 20, `dissolve: ${JSON.stringify(d)}`);
  assert.ok(!PLANEWISE.has('dissolve') && !PLANEWISE.has('pixelize'));
});
