// render: examples/hello.json through vgen's render pipeline (asset fetch +
// compositing + encode + poster + probe) against raw ffmpeg encoding the same
// number of frames of a synthetic source with the same settings. Then the
// issue's cases (slideshow-static, slideshow-kenburns, vertical-promo), each
// against its encode floor: x264 encoding that render's own frames, decoded to
// a raw file beforehand, with the same size, fps, preset and CRF. Then the
// memory figure: ffmpeg's peak RSS for the largest spec with distinct 8 MP photos.
// "overhead": the whole worker path for slideshow-kenburns (assets downloaded
// from an S3-protocol server, render, upload) ÷ the render alone.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { LIMITS, outputSize, parseSpec, totalSeconds, TRANSITIONS, type RenderSpec } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { findFont, renderVideo } from '../worker/ffmpeg.js';
import S3rver from 's3rver';
import { loadConfig } from '../engine/config.js';
import { newId } from '../engine/ids.js';
import { createLogger } from '../engine/log.js';
import type { RenderJobData } from '../engine/queue.js';
import { createStorage } from '../engine/storage.js';
import { uploadKey } from '../engine/uploads.js';
import { renderProcessor } from '../worker/render-job.js';
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
  const { width, height } = outputSize(spec.output);
  const { fps } = spec.output;
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
  yield* casesBench(fontFile);
  yield* overheadBench(fontFile);
  if (!args['skip-memory']) yield* memoryBench(args);
}

/**
 * The cases. Five 1600×900 photos of camera-like detail (made here),
 * a caption each, 0.5 s fades, music; 15 s at 720p30: still, then with
 * alternating Ken Burns zoom in and out. vertical-promo: 1080×1920 with text
 * layers and a logo overlay (video clips are not in the spec yet).
 */
export function benchCases(): { name: string; spec: RenderSpec }[] {
  const captions = ['Morning light over the bay', 'The market opens at eight', '你好，世界！用照片做短视频', 'Lunch by the river', 'Home again'];
  const slideshow = (kenBurns: boolean): RenderSpec => ({
    version: 1,
    output: { preset: '720p', fps: 30 },
    scenes: captions.map((text, i) => ({
      duration: 3.4,
      background: { image: `assets/p${i + 1}.jpg`, ...(kenBurns && { kenBurns: { zoom: i % 2 ? ('out' as const) : ('in' as const) } }) },
      caption: { text },
      ...(i > 0 && { transition: { type: 'fade' as const, duration: 0.5 } }),
    })),
    audio: { src: 'assets/music.mp3' },
  });
  const promo: RenderSpec = {
    version: 1,
    output: { preset: 'vertical', fps: 30 },
    scenes: [0, 1, 2].map((i) => ({
      duration: 3,
      background: { image: `assets/p${i + 1}.jpg`, fit: 'contain-blur' as const },
      texts: [
        { text: ['New season', 'Fresh picks', 'Order today'][i]!, font: 'sans-bold' as const, size: 110, position: 'top' as const, stroke: { color: 'black', width: 4 } },
        { text: '限时优惠 · limited offer', position: 'bottom' as const, box: { color: '#1e3a8a', opacity: 0.8 } },
      ],
      ...(i > 0 && { transition: { type: 'slideup' as const, duration: 0.4 } }),
    })),
    overlays: [{ image: 'assets/logo.png', position: 'top-right', width: 0.2, opacity: 0.85 }],
    audio: { src: 'assets/music.mp3', fadeIn: 0.5 },
  };
  return [
    { name: 'slideshow-static', spec: slideshow(false) },
    { name: 'slideshow-kenburns', spec: slideshow(true) },
    { name: 'vertical-promo', spec: promo },
  ];
}

export async function* casesBench(fontFile: string): AsyncGenerator<Figure> {
  const dir = await mkdtemp(join(tmpdir(), 'vgen-bench-cases-'));
  try {
    const photos = join(dir, 'assets');
    await makeCaseAssets(photos);

    for (const { name, spec: raw } of benchCases()) {
      const spec = parseSpec(raw);
      const { width, height } = outputSize(spec.output);
      const seconds = totalSeconds(spec);
      const renders: number[] = [];
      const floors: number[] = [];
      for (let k = 0; k < 3; k++) {
        const work = await mkdtemp(join(dir, 'job-'));
        const assets = await fetchAssets(spec, work, { assetsDir: photos });
        const t0 = performance.now();
        const out = await renderVideo({ spec, assets, workDir: work, fontFile, preset: 'veryfast' });
        renders.push((performance.now() - t0) / 1000);
        // The floor: the same frames, decoded beforehand, encoded alone with the same settings.
        const frames = join(work, 'frames.y4m');
        await run('ffmpeg', ['-i', out.videoPath, '-f', 'yuv4mpegpipe', frames]);
        floors.push(await timed(() => run('ffmpeg', [
          '-i', frames, '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
          '-movflags', '+faststart', '-f', 'mp4', join(work, 'floor.mp4'),
        ])));
        await rm(work, { recursive: true, force: true });
      }
      const render = Math.min(...renders);
      const floor = Math.min(...floors);
      const what = `${name} ${width}x${height}@${spec.output.fps}, ${seconds} s`;
      yield { bench: 'render', metric: `${what} vs_encode_floor`, value: render, unit: 's', baseline: floor, ratio: render / floor };
      yield { bench: 'render', metric: `${what} realtime_factor`, value: seconds / render, unit: 'x' };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The photos and logo (camera-like detail, made here) and the music, in `photos`. */
async function makeCaseAssets(photos: string): Promise<void> {
  await mkdir(photos, { recursive: true });
  for (let i = 1; i <= 5; i++)
    await run('ffmpeg', ['-f', 'lavfi', '-i', `testsrc2=s=1600x900:r=1,hue=h=${i * 60},noise=alls=10:allf=u`, '-frames:v', '1', '-q:v', '3', join(photos, `p${i}.jpg`)]);
  await run('ffmpeg', ['-f', 'lavfi', '-i', 'color=c=orange:s=400x160,format=rgba,geq=r=255:g=165:b=0:a=if(between(X\\,10\\,389)*between(Y\\,10\\,149)\\,230\\,0)', '-frames:v', '1', join(photos, 'logo.png')]);
  await copyFile(join(ROOT, 'assets/music.mp3'), join(photos, 'music.mp3'));
}

/**
 * "overhead": slideshow-kenburns through the worker's own job processor
 * (worker/render-job.ts) with S3 storage on a local s3rver: its photos and
 * music are the owner's uploads (upload://…), downloaded from the server;
 * then the render; then the MP4 and poster uploaded. Against renderVideo
 * alone on the same files already on disk, runs interleaved, best of three each.
 */
export async function* overheadBench(fontFile: string): AsyncGenerator<Figure> {
  const dir = await mkdtemp(join(tmpdir(), 'vgen-bench-overhead-'));
  const bucket = 'vgen-bench';
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(dir, 's3'), configureBuckets: [{ name: bucket }] });
  try {
    const { port } = await server.run();
    const endpoint = `http://127.0.0.1:${port}`;
    const config = loadConfig({
      ...process.env,
      STORAGE: 's3', S3_BUCKET: bucket, S3_ENDPOINT: endpoint, S3_FORCE_PATH_STYLE: 'true', S3_REGION: 'us-east-1',
      CDN_BASE_URL: `${endpoint}/${bucket}`, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER',
      WORK_DIR: dir, X264_PRESET: 'veryfast',
    });
    // The AWS SDK reads its credentials from the environment (s3rver accepts these).
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const storage = createStorage(config);
    const photos = join(dir, 'assets');
    await makeCaseAssets(photos);
    const { spec: local } = benchCases().find((c) => c.name === 'slideshow-kenburns')!;
    // The same spec with every asset an upload of its owner's.
    const userId = newId('usr');
    const refs = new Map<string, string>();
    for (const [file, type] of [...[1, 2, 3, 4, 5].map((i) => [`p${i}.jpg`, 'image/jpeg'] as const), ['music.mp3', 'audio/mpeg'] as const]) {
      const id = newId('upl');
      await storage.put(uploadKey(userId, id), join(photos, file), type);
      refs.set(`assets/${file}`, `upload://${id}`);
    }
    const remote = JSON.parse(JSON.stringify(local), (key, value) => (typeof value === 'string' && refs.has(value) ? refs.get(value) : value)) as RenderSpec;
    const spec = parseSpec(local);
    const processor = renderProcessor({ config, storage, fontFile, log: createLogger('silent') });
    const job = (videoId: string) => ({
      id: videoId, data: { videoId, spec: remote, userId } as unknown as RenderJobData, progress: 0, attemptsMade: 0,
      attemptsStarted: 1, updateProgress: async () => {},
    });
    const whole: number[] = [];
    const alone: number[] = [];
    for (let k = 0; k < 3; k++) {
      whole.push(await timed(() => processor(job(newId('vid')) as never, undefined)));
      const work = await mkdtemp(join(dir, 'job-'));
      const assets = await fetchAssets(spec, work, { assetsDir: photos });
      alone.push(await timed(() => renderVideo({ spec, assets, workDir: work, fontFile, preset: 'veryfast' })));
      await rm(work, { recursive: true, force: true });
    }
    const [w, r] = [Math.min(...whole), Math.min(...alone)];
    yield { bench: 'render', metric: 'slideshow-kenburns overhead (download from S3 + render + upload ÷ render)', value: w, unit: 's', baseline: r, ratio: w / r };
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
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
    const { width, height } = outputSize(spec.output);
    const { fps } = spec.output;
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
