// Property tests over random valid specs at the bounds (fps 1–60, the
// shortest scenes, transitions as long as the rules allow), from a seeded PRNG
// so every run checks the same specs. Set VGEN_PROPERTY_SEED to explore others.
// - planTimeline alone, over thousands of specs: every scene owns ≥ 1 frame,
//   the slots chain up, and the total is within half a frame of the spec;
// - real renders (tiny, ~20, with gradients, fits, Ken Burns and text layers
//   among them): the file has exactly the planned frames, and lasts the
//   spec's length within one frame.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { VgenError } from '../engine/errors.js';
import { LIMITS, parseSpec, totalSeconds, TRANSITIONS, type RenderSpec } from '../engine/spec.js';
import { ownFrames, planTimeline, totalFrames } from '../engine/timeline.js';
import { fetchAssets } from '../worker/assets.js';
import { checkFfmpeg, findFont, planRender, probe, renderVideo } from '../worker/ffmpeg.js';

const SEED = Number(process.env.VGEN_PROPERTY_SEED ?? 20240605);
const assetsDir = fileURLToPath(new URL('../assets/', import.meta.url));

/** mulberry32: a tiny seeded PRNG, good enough to pick test cases. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rand = ReturnType<typeof prng>;

const round = (x: number, places: number) => Math.round(x * 10 ** places) / 10 ** places;
const floorTo = (x: number, places: number) => Math.floor(x * 10 ** places) / 10 ** places;

/**
 * A spec near the bounds. Most are valid by construction; some are not (a
 * 0.5 s scene at 1 fps, a transition rounded past its limit): parseSpec
 * decides, and the caller counts the refused ones.
 */
function randomSpec(rand: Rand, maxScenes: number, maxSceneSeconds: number, media: boolean): RenderSpec {
  const fps = rand.chance(0.4) ? rand.pick([1, 2, 3, 59, 60]) : rand.int(1, LIMITS.maxFps);
  const frame = 1 / fps;
  const n = rand.int(1, maxScenes);
  const scenes: RenderSpec['scenes'] = [];
  let prevIn = 0;
  for (let i = 0; i < n; i++) {
    const shortest = Math.max(LIMITS.minSceneSeconds, frame);
    const duration = rand.chance(0.1)
      ? LIMITS.minSceneSeconds // refused at 1 fps: it holds no whole frame
      : rand.pick([shortest, round(shortest + rand.next() * 0.2, 3), round(LIMITS.minSceneSeconds + rand.next() * (maxSceneSeconds - LIMITS.minSceneSeconds), 2)]);
    const scene: RenderSpec['scenes'][number] = {
      duration,
      background: randomBackground(rand, media),
      ...(media && rand.chance(0.2) ? { caption: { text: rand.pick(['Hello', '你好，世界', 'a b c d e f g h i j']) } } : {}),
      ...(media && rand.chance(0.15) ? { texts: [{ text: rand.pick(['Top', '上']), position: rand.pick(['top', 'center', 'bottom-right'] as const), size: rand.int(8, 30) }] } : {}),
    };
    const prev = scenes[i - 1];
    if (prev && rand.chance(0.7)) {
      // As long as allowed: the previous scene and this one each keep one frame of their own.
      const longest = Math.min(LIMITS.maxTransitionSeconds, prev.duration - prevIn - frame, duration - frame);
      // Now and then rounded up past the limit, which parseSpec must refuse.
      const t = rand.chance(0.02) ? round(longest, 2) : rand.pick([longest, floorTo(longest, 3), floorTo(rand.next() * longest, 3)]);
      if (t > 0) scene.transition = { type: rand.pick(TRANSITIONS), duration: t };
    }
    prevIn = scene.transition?.duration ?? 0;
    scenes.push(scene);
  }
  return {
    version: 1,
    output: { width: rand.pick([64, 96]), height: 64, fps },
    scenes,
    ...(media && rand.chance(0.3) ? { audio: { src: 'assets/music.mp3' } } : {}),
  };
}

/** Colours always; with media, images (some fitted otherwise, some with Ken Burns) and gradients too. */
function randomBackground(rand: Rand, media: boolean): RenderSpec['scenes'][number]['background'] {
  const color = { color: rand.pick(['navy', 'black', '#1e3a8a', 'darkred']) };
  if (!media || rand.chance(0.4)) return color;
  if (rand.chance(0.15)) return { gradient: { type: rand.pick(['linear', 'radial'] as const), colors: ['navy', 'gold'] } };
  return {
    image: rand.pick(['assets/photo.jpg', 'assets/photo2.jpg']),
    ...(rand.chance(0.2) && { fit: rand.pick(['contain', 'contain-blur'] as const) }),
    ...(rand.chance(0.25) && { kenBurns: { zoom: rand.pick(['in', 'out'] as const), ...(rand.chance(0.5) && { pan: rand.pick(['left', 'right', 'up', 'down'] as const) }) } }),
  };
}

/** Valid specs from the generator, counting those parseSpec refused. */
function validSpecs(rand: Rand, count: number, gen: () => RenderSpec): { specs: RenderSpec[]; refused: number } {
  const specs: RenderSpec[] = [];
  let refused = 0;
  while (specs.length < count) {
    const spec = gen();
    try {
      specs.push(parseSpec(JSON.parse(JSON.stringify(spec))));
    } catch (err) {
      assert.ok(err instanceof VgenError, String(err));
      refused++;
    }
  }
  return { specs, refused };
}

describe('planTimeline over random valid specs', () => {
  test('every scene owns a frame, slots chain up, the total is within half a frame', (t) => {
    const rand = prng(SEED);
    const { specs, refused } = validSpecs(rand, 5000, () => randomSpec(rand, LIMITS.maxScenes, 3, false));
    t.diagnostic(`seed ${SEED}: ${specs.length} specs, ${refused} refused; ${countOneFrameScenes(specs)} scenes own exactly one frame`);
    // The generator aims at the edges, so some fall off; most must not.
    assert.ok(refused < specs.length, `${refused} refused for ${specs.length} accepted`);
    for (const spec of specs) {
      const fps = spec.output.fps;
      const slots = planTimeline(spec);
      const where = () => JSON.stringify(spec);
      for (const [i, s] of slots.entries()) {
        assert.ok(s.frames >= 1 && ownFrames(slots, i) >= 1, `scene ${i} owns no frame: ${where()}`);
        assert.equal(s.frames, s.end - s.start);
        assert.equal(s.start, i === 0 ? 0 : slots[i - 1]!.end - s.overlap, where());
        assert.ok(s.overlap >= 0 && (i > 0 || s.overlap === 0), where());
      }
      assert.ok(Math.abs(totalFrames(slots) - totalSeconds(spec) * fps) <= 0.5 + 1e-9, `total ${totalFrames(slots)} frames: ${where()}`);
    }
  });
});

describe('rendered files match the plan', () => {
  let root: string;
  let fontFile: string;
  before(async () => {
    await checkFfmpeg();
    fontFile = findFont();
    root = await mkdtemp(join(tmpdir(), 'vgen-property-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('planned frames = rendered frames, and the length is the spec’s within one frame', async (t) => {
    const rand = prng(SEED + 1);
    const { specs, refused } = validSpecs(rand, 20, () => randomSpec(rand, 4, 1.2, true));
    const transitions = specs.flatMap((s) => s.scenes.filter((sc) => sc.transition)).length;
    t.diagnostic(`seed ${SEED + 1}: ${specs.length} specs, ${refused} refused; fps ${specs.map((s) => s.output.fps).join(' ')}; ${transitions} transitions; ${countOneFrameScenes(specs)} scenes own exactly one frame`);
    assert.ok(refused < specs.length, `${refused} refused for ${specs.length} accepted`);
    const fpsSeen = new Set(specs.map((s) => s.output.fps));
    assert.ok(fpsSeen.has(1) || fpsSeen.has(2), 'the run covers low frame rates');
    assert.ok([...fpsSeen].some((f) => f >= 50), 'the run covers high frame rates');

    for (const spec of specs) {
      const where = JSON.stringify(spec);
      const workDir = await mkdtemp(join(root, 'job-'));
      const assets = await fetchAssets(spec, workDir, { assetsDir });
      const planned = planRender({ spec, assets, workDir, fontFile }).frames;
      const result = await renderVideo({ spec, assets, workDir, fontFile, preset: 'ultrafast' });
      const frameMs = 1000 / spec.output.fps;
      const specMs = totalSeconds(spec) * 1000;

      assert.equal(await countFrames(result.videoPath), planned, where);
      const info = await probe(result.videoPath);
      // Durations come back rounded to the millisecond.
      assert.ok(Math.abs((info.video?.durationMs ?? 0) - specMs) <= frameMs + 1, `video lasts ${info.video?.durationMs} ms, spec ${specMs} ms: ${where}`);
      assert.ok(Math.abs((info.audio?.durationMs ?? 0) - specMs) <= frameMs + 1, `audio lasts ${info.audio?.durationMs} ms, spec ${specMs} ms: ${where}`);
      await rm(workDir, { recursive: true, force: true });
    }
  });
});

function countOneFrameScenes(specs: RenderSpec[]): number {
  return specs.reduce((n, spec) => {
    const slots = planTimeline(spec);
    return n + slots.filter((_, i) => ownFrames(slots, i) === 1).length;
  }, 0);
}

/** Frames actually decodable in the file (not the container's own count). */
async function countFrames(path: string): Promise<number> {
  const { stdout } = await promisify(execFile)('ffprobe', [
    '-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path,
  ]);
  return Number(stdout.trim());
}
