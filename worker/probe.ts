// Looks inside each downloaded asset with ffprobe before anything renders it.
// A small file can hold a huge picture (a 389 KB PNG of 10000×10000 pixels
// decodes to ~400 MB), and a file that starts like a PNG can be garbage: both
// are refused here as asset_invalid, naming the asset, instead of failing
// (and being retried) inside the render.
import { execFile } from 'node:child_process';
import { RenderError } from '../engine/errors.js';
import type { LocalAsset } from './assets.js';
import { GUARDED_FFPROBE } from './ffmpeg-guard.js';

export type AssetLimits = {
  /** Largest width × height of an image (MAX_ASSET_PIXELS). */
  maxPixels: number;
  /** Longest side of an image in pixels (MAX_ASSET_SIDE). */
  maxSide: number;
};

const PROBE_TIMEOUT_MS = 15_000;

/** Throws asset_invalid (not retryable) unless ffprobe reads `asset` as the kind it claims, within the limits. */
export async function checkAsset(ref: string, asset: LocalAsset, limits: AssetLimits, signal?: AbortSignal): Promise<void> {
  const invalid = (why: string) => new RenderError('asset_invalid', `${ref} ${why}`, false);
  // Probing is itself decoding: the same whitelist and forced format as the
  // render, -max_pixels so the probe cannot be the bomb's victim, and a deadline.
  const format = asset.kind === 'image' ? ['-f', 'image2', '-pattern_type', 'none'] : ['-f', asset.format];
  const args = [
    '-v', 'error', '-protocol_whitelist', 'file,pipe', ...format, '-max_pixels', String(limits.maxPixels),
    '-show_entries', 'stream=codec_type,width,height', '-of', 'json', asset.path,
  ];
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile(GUARDED_FFPROBE, args, { timeout: PROBE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20, signal }, (err, out, errOut) =>
        err ? reject(Object.assign(err, { stderr: errOut })) : resolve({ stdout: out, stderr: errOut }),
      ),
    ));
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const e = err as Omit<NodeJS.ErrnoException, 'code'> & { code?: string | number; killed?: boolean; stderr?: string };
    // No ffprobe or setpriv (worker/bin/ffmpeg exits 127, or 137 if its parent
    // died meanwhile): the worker's problem, not the asset's.
    if (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 127 || e.code === 137) throw err;
    if (e.killed) throw invalid(`could not be read within ${PROBE_TIMEOUT_MS / 1000} s`);
    throw invalid(`is not a readable ${asset.kind} file (${firstLine(e.stderr)})`);
  }

  const streams = (JSON.parse(stdout || '{}') as { streams?: { codec_type?: string; width?: number; height?: number }[] }).streams ?? [];
  if (asset.kind === 'audio') {
    if (!streams.some((s) => s.codec_type === 'audio')) throw invalid('has no audio stream');
    return;
  }
  const size = /Picture size (\d+)x(\d+) exceeds specified max pixel count/.exec(stderr);
  if (size) throw invalid(`is ${size[1]}×${size[2]} pixels; images may have at most ${limits.maxPixels} pixels`);
  const video = streams.find((s) => s.codec_type === 'video');
  const [width, height] = [video?.width ?? 0, video?.height ?? 0];
  // The probe decodes the picture: any error means a damaged image (or none).
  if (width === 0 || height === 0 || stderr.trim() !== '') throw invalid(`could not be decoded as an image (${stderr.trim() ? firstLine(stderr) : 'no picture found'})`);
  if (width > limits.maxSide || height > limits.maxSide) throw invalid(`is ${width}×${height} pixels; an image side may be at most ${limits.maxSide} pixels`);
  if (width * height > limits.maxPixels) throw invalid(`is ${width}×${height} pixels; images may have at most ${limits.maxPixels} pixels`);
}

/** ffprobe's first complaint, without the `[png @ 0x…]` prefix or our own paths. */
function firstLine(stderr = ''): string {
  const line = stderr.split('\n').find((l) => l.trim()) ?? 'ffprobe failed';
  return line.replace(/^\[[^\]]*\]\s*/, '').replace(/\/\S+/g, '…').slice(0, 200);
}
