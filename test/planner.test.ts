// The render planner alone (worker/planner/): specs in, ffmpeg runs out, no
// ffmpeg started. Pins the graph's structure (each image decoded once, still
// scenes drawn once, blends only where scenes overlap), its frame arithmetic
// and its option lists; test/render*.test.ts check what ffmpeg makes of them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSpec, totalSeconds, type RenderSpec } from '../engine/spec.js';
import { ownFrames, planTimeline } from '../engine/timeline.js';
import type { LocalAsset } from '../worker/assets.js';
import { loudnessGain, parseLoudness, plan, type PlanOptions } from '../worker/planner/index.js';

const opts: PlanOptions = { workDir: '/w', fontFile: '/fonts/sans.ttc', fonts: { serif: '/fonts/serif.ttc' } };
const assets = new Map<string, LocalAsset>([
  ['assets/photo.jpg', { path: '/w/assets/0.jpg', kind: 'image', format: 'image2', width: 1280, height: 720 }],
  ['assets/photo2.jpg', { path: '/w/assets/1.jpg', kind: 'image', format: 'image2', width: 1280, height: 720 }],
  ['assets/logo.png', { path: '/w/assets/2.png', kind: 'image', format: 'image2', width: 400, height: 160 }],
  ['assets/music.mp3', { path: '/w/assets/3.mp3', kind: 'audio', format: 'mp3', seconds: 10 }],
]);

const spec = (s: Partial<RenderSpec> & Pick<RenderSpec, 'scenes'>): RenderSpec => parseSpec({ version: 1, output: { width: 320, height: 180, fps: 30 }, ...s });
const count = (haystack: string, needle: RegExp) => [...haystack.matchAll(new RegExp(needle, 'g'))].length;
const chains = (filter: string) => filter.split(';');

const slideshow = spec({
  scenes: [
    { duration: 2, background: { image: 'assets/photo.jpg' }, caption: { text: 'one' } },
    { duration: 2, background: { image: 'assets/photo2.jpg' }, caption: { text: 'two' }, transition: { type: 'fade', duration: 0.5 } },
    { duration: 2, background: { color: 'navy' }, transition: { type: 'wipeleft', duration: 0.3 } },
    { duration: 1, background: { image: 'assets/photo.jpg' } },
  ],
  audio: { src: 'assets/music.mp3' },
});

describe('still scenes', () => {
  const p = plan(slideshow, assets, opts);

  test('each image file is decoded once, by the main run when it is small, with -max_pixels', () => {
    assert.deepEqual(p.fits, []);
    assert.deepEqual(p.inputs.map((i) => i.ref), ['assets/photo.jpg', 'assets/photo2.jpg', 'assets/music.mp3']);
    assert.ok(p.inputs.slice(0, 2).every((i) => i.options.includes('-max_pixels') && i.options.includes('image2')));
    // photo.jpg is shown by two scenes: one scale, then split to both.
    const scale = chains(p.filter).filter((c) => c.startsWith('[0:v]'));
    assert.equal(scale.length, 1);
    assert.equal(count(p.filter, /scale=320:180:force_original_aspect_ratio=increase,crop=320:180/), 2, 'one scale per file');
  });

  test('text is drawn once per scene, before the frame is repeated', () => {
    assert.equal(count(p.filter, /drawtext=/), 2);
    for (const chain of chains(p.filter).filter((c) => c.includes('drawtext')))
      assert.doesNotMatch(chain, /loop=/, 'drawtext runs on the single frame, not after the loop');
    assert.ok(p.textFiles.every((f) => f.path.startsWith('/w/')));
    assert.deepEqual(p.textFiles.map((f) => f.text), ['one', 'two']);
  });

  test('blends only where scenes overlap; own frames and blends add up to the timeline', () => {
    const slots = planTimeline(slideshow);
    // fade and wipeleft run plane by plane on the yuv420p frames: three xfades each, merged back, no conversion.
    assert.equal(count(p.filter, /xfade=transition=fade:duration=0\.5:offset=0\[/), 3);
    assert.equal(count(p.filter, /xfade=transition=wipeleft:duration=0\.3:offset=0\[/), 3);
    assert.equal(count(p.filter, /extractplanes=y\+u\+v/), 4);
    assert.match(p.filter, /mergeplanes=mapping=0x001020:format=yuv420p,trim=end_frame=15,/);
    assert.match(p.filter, /mergeplanes=mapping=0x001020:format=yuv420p,trim=end_frame=9,/);
    assert.doesNotMatch(p.filter, /yuv444p/);
    // Own parts: loop=loop=K gives K + 1 frames.
    const own = chains(p.filter).filter((c) => /\[own\d+_\d+\]$/.test(c)).map((c) => Number(/loop=loop=(\d+)/.exec(c)![1]) + 1);
    assert.deepEqual(own, slots.map((_, i) => ownFrames(slots, i)));
    assert.equal(own.reduce((a, b) => a + b, 0) + 15 + 9, p.frames);
    assert.equal(p.frames, Math.round(totalSeconds(slideshow) * 30));
    assert.match(p.filter, /concat=n=6:v=1:a=0/);
  });

  test('the video stops at the timeline; the poster is its frame at 1 s', () => {
    assert.ok(p.filter.includes(`trim=end_frame=${p.frames}[vout]`));
    assert.ok(p.filter.includes('trim=start_frame=30:end_frame=31,scale,format=yuvj420p[poster]'));
    assert.deepEqual(p.posterOptions.slice(0, 4), ['-map', '[poster]', '-frames:v', '1']);
  });

  test('output options: the spec’s cap, H.264 high, CRF 23 and the given preset unless the spec says otherwise', () => {
    const o = p.outputOptions;
    const at = (flag: string) => o[o.indexOf(flag) + 1];
    assert.equal(at('-frames:v'), String(Math.ceil(totalSeconds(slideshow) * 30) + 1));
    assert.deepEqual([at('-c:v'), at('-preset'), at('-crf'), at('-profile:v'), at('-pix_fmt'), at('-c:a')], ['libx264', 'veryfast', '23', 'high', 'yuv420p', 'aac']);
    const tuned = plan(spec({ output: { preset: 'square', fps: 24, quality: 28, x264Preset: 'fast' }, scenes: [{ duration: 1, background: { color: 'red' } }] }), assets, { ...opts, preset: 'ultrafast' });
    assert.deepEqual([tuned.width, tuned.height], [1080, 1080]);
    assert.equal(tuned.outputOptions[tuned.outputOptions.indexOf('-crf') + 1], '28');
    assert.equal(tuned.outputOptions[tuned.outputOptions.indexOf('-preset') + 1], 'fast');
    assert.match(tuned.filter, /color=c=red:s=1080x1080:r=24/);
  });
});

describe('fit passes', () => {
  test('with no inline budget, each file is decoded once in its own run, in every look it is used in', () => {
    const s = spec({
      scenes: [
        { duration: 1, background: { image: 'assets/photo.jpg' } },
        { duration: 1, background: { image: 'assets/photo.jpg', fit: 'contain' } },
        { duration: 1, background: { image: 'assets/photo2.jpg' }, overlays: [{ image: 'assets/photo.jpg', width: 0.25 }] },
      ],
    });
    const p = plan(s, assets, { ...opts, inlinePixels: 0 });
    assert.deepEqual(p.fits.map((f) => f.input.ref), ['assets/photo.jpg', 'assets/photo2.jpg']);
    const [photo] = p.fits;
    assert.ok(photo!.input.options.includes('-max_pixels'));
    assert.equal(photo!.outputs.length, 3, 'cover, contain and the overlay, from one decode');
    assert.match(photo!.filter, /^\[0:v\]split=3/);
    assert.deepEqual(photo!.outputs.map((o) => o.path.split('.').pop()), ['yuv', 'yuv', 'png']);
    // The main run reads the fitted files, never the asset itself.
    assert.ok(p.inputs.every((i) => i.path.includes('fitted-')));
    assert.equal(p.inputs.filter((i) => i.options.includes('rawvideo')).length, 3);
  });

  test('an image whose size the probe did not give goes through a fit pass', () => {
    const unknown = new Map(assets);
    unknown.set('assets/photo.jpg', { path: '/w/assets/0.jpg', kind: 'image', format: 'image2' });
    const p = plan(spec({ scenes: [{ duration: 1, background: { image: 'assets/photo.jpg' } }, { duration: 1, background: { image: 'assets/photo2.jpg' } }] }), unknown, opts);
    assert.deepEqual(p.fits.map((f) => f.input.ref), ['assets/photo.jpg']);
  });
});

describe('layers', () => {
  test('Ken Burns: zoompan over an image twice the output size, exactly the scene’s frames, then split at the overlaps', () => {
    const s = spec({
      scenes: [
        { duration: 2, background: { image: 'assets/photo.jpg', kenBurns: { zoom: 'in' } }, caption: { text: 'moving' } },
        { duration: 2, background: { image: 'assets/photo2.jpg', kenBurns: { zoom: 'out', pan: 'left' } }, transition: { type: 'dissolve', duration: 0.5 } },
      ],
    });
    const p = plan(s, assets, opts);
    const slots = planTimeline(s);
    assert.match(p.filter, /scale=640:360:force_original_aspect_ratio=increase,crop=640:360/);
    assert.match(p.filter, new RegExp(`zoompan=z='1\\+0\\.25\\*\\(on/${slots[0]!.frames - 1}\\)'[^,]*:d=${slots[0]!.frames}:s=320x180:fps=30`));
    assert.match(p.filter, /zoompan=z='1\.35-0\.2\*[^']*':x='\(iw-iw\/zoom\)\*\(1-/);
    // The moving scene's text is drawn on its frames (after zoompan).
    assert.match(p.filter, /zoompan[^;]*\[kb\d+_\d+\];\[kb\d+_\d+\]drawtext/);
    assert.match(p.filter, /trim=start_frame=0:end_frame=15,settb=1\/30,setpts=N,fps=30,tpad=stop=2:stop_mode=clone/);
    // dissolve's noise would differ between the planes: it blends in yuv444p, only over the overlap.
    assert.equal(count(p.filter, /xfade=transition=dissolve/), 1);
    assert.match(p.filter, /scale,format=yuv444p\[xa\d+_\d+\];\[[a-z0-9_]+\]scale,format=yuv444p\[xb\d+_\d+\];\[xa\d+_\d+\]\[xb\d+_\d+\]xfade=transition=dissolve:duration=0\.5:offset=0,trim=end_frame=15,scale,format=yuv420p,/);
  });

  test('gradients, contain-blur and text layers with fonts, stroke, box and positions', () => {
    const p = plan(spec({
      scenes: [
        {
          duration: 1,
          background: { gradient: { type: 'linear', colors: ['#ff0000', 'navy'], angle: 0 } },
          texts: [
            { text: 'Top', font: 'serif', size: 40, color: '#ffcc00', stroke: { color: 'black', width: 3 }, position: 'top' },
            { text: '敏捷的棕色狐狸跳过了懒狗', maxWidth: 0.3, size: 20, box: { color: 'white', opacity: 0.3, padding: 6 }, position: { x: 0.1, y: 0.5 } },
          ],
        },
        { duration: 1, background: { gradient: { type: 'radial', colors: ['white', 'black'] } } },
        { duration: 1, background: { image: 'assets/photo.jpg', fit: 'contain-blur' } },
      ],
    }), assets, opts);
    assert.match(p.filter, /gradients=s=320x180:r=30:c0=0xff0000:c1=navy:x0=0:y0=90:x1=319:y1=90:nb_colors=2:type=linear/);
    assert.match(p.filter, /gradients=[^,]*type=radial/);
    // A point at x = width or y = height is placed at random by gradients (flaky colours): every point is inside the frame.
    const points = [...p.filter.matchAll(/gradients=s=320x180[^,]*:x0=(\d+):y0=(\d+):x1=(\d+):y1=(\d+)/g)];
    assert.equal(points.length, 2);
    for (const [, x0, y0, x1, y1] of points)
      assert.ok([x0, x1].every((x) => Number(x) < 320) && [y0, y1].every((y) => Number(y) < 180), `${x0},${y0} ${x1},${y1}`);
    assert.match(p.filter, /boxblur=/);
    assert.match(p.filter, /drawtext=fontfile=\\'\/fonts\/serif\.ttc\\'[^,]*fontsize=40:fontcolor=0xffcc00[^,]*:borderw=3:bordercolor=black:x=\(w-text_w\)\/2:y=h\/12/);
    assert.match(p.filter, /drawtext=fontfile=\\'\/fonts\/sans\.ttc\\'[^,]*:box=1:boxcolor=white@0\.3:boxborderw=6:x=w\*0\.1:y=h\*0\.5/);
    // 0.3 × 320 px at 20 px a character: four CJK characters a line.
    assert.deepEqual(p.textFiles[1]!.text.split('\n').map((l) => [...l].length), [4, 4, 4]);
  });

  test('overlays: a scene’s composed once into its frame, the video’s over every frame after the join', () => {
    const p = plan(spec({
      scenes: [
        { duration: 1, background: { color: 'black' }, overlays: [{ image: 'assets/logo.png', position: 'center', width: 0.5, opacity: 0.5 }] },
        { duration: 1, background: { color: 'white' }, transition: { type: 'slideup', duration: 0.2 } },
      ],
      overlays: [{ image: 'assets/logo.png', position: 'top-left', width: 0.1 }],
    }), assets, opts);
    assert.deepEqual(p.inputs.map((i) => i.ref), ['assets/logo.png'], 'one decode for both uses');
    assert.match(p.filter, /scale=w=160:h=180:force_original_aspect_ratio=decrease,format=rgba,colorchannelmixer=aa=0\.5/);
    assert.match(p.filter, /scale=w=32:h=180:force_original_aspect_ratio=decrease,format=rgba\[/);
    assert.match(p.filter, /overlay=x=\(W-w\)\/2:y=\(H-h\)\/2:eof_action=repeat[^;]*;\[[a-z0-9_]+\]split=\d/, 'the scene overlay comes before its frame is repeated');
    assert.match(p.filter, /\[joined\d+\]\[img\d+\]overlay=x=7:y=7:eof_action=repeat/);
  });
});

describe('audio', () => {
  test('music: measured first, then brought to -16 LUFS, limited, looped by the demuxer, faded out', () => {
    const first = plan(slideshow, assets, opts);
    assert.ok(first.loudness);
    assert.ok(!first.loudness.inputs[0]!.options.includes('-stream_loop'), 'the measure plays the file once');
    assert.match(first.loudness.filter, /ebur128/);
    const p = plan(slideshow, assets, { ...opts, loudness: -20 });
    assert.equal(p.loudness, undefined);
    assert.ok(p.inputs.at(-1)!.options.includes('-stream_loop'));
    assert.match(p.filter, /volume=4\.00dB,alimiter=limit=0\.891:level=0:latency=1/);
    assert.match(p.filter, new RegExp(`afade=t=out:st=${p.seconds - 1}:d=1`));
    assert.match(p.filter, new RegExp(`atrim=duration=${p.seconds}\\[aout\\]`));
  });

  test('start, trim, volume and fades', () => {
    const s = spec({ scenes: [{ duration: 12, background: { color: 'black' } }], audio: { src: 'assets/music.mp3', start: 2, trim: { from: 1, to: 4 }, volume: 0.5, fadeIn: 1.5, fadeOut: 2 } });
    const p = plan(s, assets, { ...opts, loudness: -16 });
    assert.ok(!p.inputs[0]!.options.includes('-stream_loop'), 'a trimmed part loops in the graph');
    assert.match(p.filter, /atrim=start=1:end=4,asetpts=N\/SR\/TB,aloop=loop=-1:size=144000,atrim=duration=10,adelay=delays=2000:all=1/);
    assert.match(p.filter, /afade=t=in:st=2:d=1\.5/);
    assert.match(p.filter, /afade=t=out:st=10:d=2/);
    assert.match(p.filter, /volume=0\.00dB,[^;]*volume=0\.5/);
  });

  test('no music: silence of the video’s length; no measuring', () => {
    const p = plan(spec({ scenes: [{ duration: 1, background: { color: 'black' } }] }), assets, opts);
    assert.equal(p.loudness, undefined);
    assert.match(p.filter, /anullsrc=r=48000:cl=stereo,[^;]*atrim=duration=1\[aout\]/);
  });

  test('ebur128’s summary is read; silence and extremes get no runaway gain', () => {
    assert.equal(parseLoudness('[Parsed_ebur128_0 @ 0x1] Summary:\n\n  Integrated loudness:\n    I:         -19.3 LUFS\n'), -19.3);
    assert.equal(parseLoudness('I: -inf LUFS'), -Infinity);
    assert.equal(parseLoudness('nothing here'), undefined);
    assert.equal(loudnessGain(-19.3), 3.3000000000000007);
    assert.equal(loudnessGain(-Infinity), 0);
    assert.equal(loudnessGain(-70.5), 0);
    assert.equal(loudnessGain(-65), 30);
  });
});
