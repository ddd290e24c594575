// render: examples/hello.json through vgen's render pipeline (asset fetch +
// compositing + encode + poster + probe) against raw ffmpeg encoding the same
// number of frames of a synthetic source with the same settings: the encode
// floor. The ratio says what the compositing costs on top.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseSpec, totalSeconds } from '../engine/spec.js';
import { fetchAssets } from '../worker/assets.js';
import { findFont, renderVideo } from '../worker/ffmpeg.js';
import type { Figure } from './run.js';

const ROOT = resolve(import.meta.dirname, '..');

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function* renderBench(): AsyncGenerator<Figure> {
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
}
