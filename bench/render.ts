// render: examples/hello.json through vgen's render pipeline (asset fetch +
// compositing + encode + poster + probe) against raw ffmpeg encoding the same
// number of frames of a synthetic source with the same settings: the encode
// floor. The ratio says what the compositing costs on top. Then the memory
// figure: ffmpeg's peak RSS for the largest spec with distinct 8 MP photos.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { LIMITS, parseSpec, totalSeconds, TRANSITIONS } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { findFont, renderVideo } from '../worker/ffmpeg.js';
import type { Figure } from './run.js';

const ROOT = resolve(import.meta.dirname, '..');

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

type BenchArgs = Record<string, string | boolean | undefined>;

export async function* renderBench(args: BenchArgs = {}): AsyncGenerator<Figure> {
  const spec = parseSpec(JSON.parse(await readFile(join(ROOT, 'examples/hello.json'), 'utf8')));
  const { width, height, fps } = spec.output;
  const seconds = totalSeconds(spec);
  const frames = Math.round(seconds * fps);
  const fontFile = findFont();

  const vgen = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vgen-bench-'));
    try {
      const assets = await fetchAssets(spec, dir, { assetsDir: join(ROOT, 'assets') });
      await renderVideo({ spec, assets, workDir: dir, fontFile, preset: 'veryfast' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  const raw = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vgen-bench-'));
    try {
      await promisify(execFile)('ffmpeg', [
        '-hide_banner', '-loglevel', 'error',
        '-f', 'lavfi', '-i', `testsrc2=s=${width}x${height}:r=${fps}:d=${seconds}`,
        '-f', 'lavfi', '-i', `anullsrc=r=48000:cl=stereo:d=${seconds}`,
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
        '-c:a', 'aac', '-b:a', '128k', '-movflags', '+faststart', '-f', 'mp4', join(dir, 'raw.mp4'),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  const vgenRuns: number[] = [];
  const rawRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    rawRuns.push(await timed(raw));
    vgenRuns.push(await timed(vgen));
  }
  const value = frames / Math.min(...vgenRuns);
  const baseline = frames / Math.min(...rawRuns);
  yield { bench: 'render', metric: `hello.json ${width}x${height}, ${frames} frames`, value, unit: 'frames/s', baseline, ratio: value / baseline };
  yield* memoryBench(args);
}

/**
 * Peak RSS of ffmpeg while rendering the largest spec the schema allows with
 * distinct 8 MP photos: 30 scenes, each its own photo (30 decoders), a
 * 200-character caption and a transition, 1920x1080 at 60 fps, music, and as
 * close to the 300 s limit as those transitions leave. Baseline: ffmpeg's
 * peak encoding the same frame size and rate from a synthetic source (the
 * encoder's own share). `--memory-seconds S` makes the video S seconds long
 * instead (the peak does not depend on the length; docs/operations.md).
 */
async function* memoryBench(args: BenchArgs): AsyncGenerator<Figure> {
  const dir = await mkdtemp(join(tmpdir(), 'vgen-bench-memory-'));
  try {
    const photos = join(dir, 'photos');
    await mkdir(photos);
    // 30 distinct 3264x2448 (8 MP) JPEGs of camera-like entropy, made here rather than stored.
    await run('ffmpeg', ['-f', 'lavfi', '-i', 'testsrc2=s=3264x2448:r=1', '-vf', 'noise=alls=12:allf=t', '-frames:v', String(LIMITS.maxScenes), '-q:v', '3', join(photos, 'p%02d.jpg')]);
    await copyFile(join(ROOT, 'assets/music.mp3'), join(photos, 'music.mp3'));

    const n = LIMITS.maxScenes;
    const seconds = Number(args['memory-seconds'] ?? LIMITS.maxTotalSeconds - 0.2);
    const transition = Math.min(1, Math.floor((seconds / (2 * n)) * 100) / 100);
    const duration = Math.floor(((seconds + (n - 1) * transition) / n) * 100) / 100;
    const caption = 'Le vif renard brun saute par-dessus le chien paresseux. 敏捷的棕色狐狸跳过了懒狗。'.repeat(4).slice(0, LIMITS.maxCaptionChars);
    const spec = parseSpec({
      version: 1,
      output: { width: LIMITS.maxSide, height: 1080, fps: LIMITS.maxFps },
      scenes: Array.from({ length: n }, (_, i) => ({
        duration,
        background: { image: `assets/p${String(i + 1).padStart(2, '0')}.jpg` },
        caption: { text: caption },
        ...(i > 0 ? { transition: { type: TRANSITIONS[i % TRANSITIONS.length], duration: transition } } : {}),
      })),
      audio: { src: 'assets/music.mp3' },
    });
    const { width, height, fps } = spec.output;
    const total = totalSeconds(spec);

    const work = join(dir, 'render');
    await mkdir(work);
    const vgen = await peakRssOf(work, async () => {
      const assets = await fetchAssets(spec, work, { assetsDir: photos });
      await renderVideo({ spec, assets, workDir: work, fontFile: findFont(), preset: 'veryfast' });
    });
    const raw = join(dir, 'raw');
    await mkdir(raw);
    const floor = await peakRssOf(raw, () =>
      run('ffmpeg', [
        '-f', 'lavfi', '-i', `testsrc2=s=${width}x${height}:r=${fps}:d=${Math.min(total, 10)}`,
        '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-f', 'mp4', join(raw, 'raw.mp4'),
      ]),
    );
    yield {
      bench: 'render',
      metric: `ffmpeg peak RSS, ${n} distinct 8 MP photos, ${width}x${height}@${fps}, ${+total.toFixed(1)} s`,
      value: vgen / 1024,
      unit: 'MiB',
      baseline: floor / 1024,
      ratio: vgen / floor,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const run = (bin: string, args: string[]) => promisify(execFile)(bin, ['-hide_banner', '-loglevel', 'error', '-y', ...args]);

/**
 * The largest VmHWM (peak resident set, kB) of any ffmpeg whose command line
 * names `dir`, polled from /proc while `fn` runs. VmHWM is the kernel's own
 * high-water mark, so polling misses at most what grows in the last 20 ms of a
 * process; checked against `/usr/bin/time -f %M` (docs/operations.md).
 */
async function peakRssOf(dir: string, fn: () => Promise<unknown>): Promise<number> {
  const peaks = new Map<string, number>();
  const poll = async () => {
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const [argv0 = '', ...rest] = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (!/(^|\/)ffmpeg$/.test(argv0) || !rest.some((a) => a.includes(dir))) continue;
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      peaks.set(pid, Math.max(peaks.get(pid) ?? 0, kb));
    }
  };
  let done = false;
  const polling = (async () => {
    while (!done) {
      await poll();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await fn();
  } finally {
    done = true;
    await polling;
  }
  const peak = Math.max(0, ...peaks.values());
  if (peak === 0) throw new Error(`no ffmpeg process naming ${dir} was seen`);
  return peak;
}
