// Looks inside each downloaded asset with ffprobe before anything renders it.
// A small file can hold a huge picture (a 389 KB PNG of 10000×10000 pixels
// decodes to ~400 MB), and a file that starts like a PNG can be garbage: both
// are refused here as asset_invalid, naming the asset, instead of failing
// (and being retried) inside the render.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ASSET_LIMIT_DEFAULTS } from '../engine/config.js';
import { RenderError } from '../engine/errors.js';
import type { LocalAsset } from './assets.js';
import { ExifBudget, jpegProblem, webpProblem } from './exif.js';
import { GUARDED_FFPROBE } from './ffmpeg-guard.js';

export type AssetLimits = {
  /** Largest width × height of an image (MAX_ASSET_PIXELS). */
  maxPixels: number;
  /** Longest side of an image in pixels (MAX_ASSET_SIDE). */
  maxSide: number;
  /** Longest video clip in seconds (MAX_ASSET_SECONDS); default ASSET_LIMIT_DEFAULTS.maxSeconds. */
  maxSeconds?: number;
};

/**
 * A clip's frame may be at most UHD (3840×2160 pixels, either way round): every
 * frame of it is decoded, so the image limit (one picture) is far too lax.
 */
export const MAX_VIDEO_PIXELS = 3840 * 2160;

const PROBE_TIMEOUT_MS = 15_000;

/**
 * PNG chunks ffmpeg inflates or copies whole before it decodes a pixel, and
 * neither ffprobe nor -max_pixels looks at: a 522 KB zTXt inflating to
 * 0.5 GiB made the fit pass peak at 2 GiB. Deflate inflates at most ~1032:1,
 * so 32 KiB of compressed chunks inflate to at most ~33 MiB (measured: about
 * four bytes of peak memory per inflated byte, ~190 MiB for one fit pass).
 */
export const PNG_CHUNK_LIMITS = {
  /** zTXt, iTXt and iCCP data together. */
  compressedBytes: 32 * 1024,
  /** Every chunk other than IHDR, PLTE, IDAT, IEND and APNG's frame data, together. */
  ancillaryBytes: 1024 * 1024,
} as const;

const PNG_SIGNATURE = Buffer.from('\x89PNG\r\n\x1a\n', 'latin1');
const COMPRESSED_CHUNKS = new Set(['zTXt', 'iTXt', 'iCCP']);
// fdAT holds APNG's later frames: the png decoder (image2 forces it, not apng)
// skips them unread and shows the default image, so they count for nothing.
const UNCOUNTED_CHUNKS = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND', 'fdAT']);

/**
 * Why a PNG's chunk structure is refused, or undefined if it is fine. Pure:
 * reads the chunk headers (length, type) only and trusts no length beyond the
 * bytes there are. The file must be the signature, IHDR first, chunks whose
 * lengths fit the file, and IEND (bytes after IEND are ignored, as decoders do).
 */
export function pngChunkProblem(bytes: Uint8Array, limits: typeof PNG_CHUNK_LIMITS = PNG_CHUNK_LIMITS): string | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) return 'is not a PNG file';
  let compressed = 0;
  let ancillary = 0;
  const exif = new ExifBudget(); // eXIf chunks: the same rule as a JPEG's or WebP's EXIF
  for (let at = 8, first = true; ; first = false) {
    if (at + 12 > buf.length) return 'is a damaged PNG (it ends before its IEND chunk)';
    const length = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) return 'is a damaged PNG (a chunk has an invalid type)';
    // 12 = length, type and CRC around the data; PNG caps a length at 2^31 − 1.
    if (length > 0x7fffffff || length > buf.length - at - 12) return `is a damaged PNG (its ${type} chunk runs past the end of the file)`;
    if (first && (type !== 'IHDR' || length !== 13)) return 'is a damaged PNG (it does not start with an IHDR chunk)';
    if (type === 'IEND') return undefined;
    if (COMPRESSED_CHUNKS.has(type) && (compressed += length) > limits.compressedBytes)
      return `has ${compressed}+ bytes of compressed metadata (zTXt, iTXt, iCCP chunks); PNG images may have at most ${limits.compressedBytes}`;
    if (!UNCOUNTED_CHUNKS.has(type) && (ancillary += length) > limits.ancillaryBytes)
      return `has ${ancillary}+ bytes of metadata chunks; PNG images may have at most ${limits.ancillaryBytes}`;
    if (type === 'eXIf') {
      const problem = exif.add(buf.subarray(at + 8, at + 8 + length));
      if (problem) return problem;
    }
    at += 12 + length;
  }
}

/** What the probe read: an image's size, an audio file's length (0 when ffprobe could not tell). */
export type AssetFacts = { width: number; height: number } | { seconds: number } | { width: number; height: number; seconds: number; hasAudio: boolean };

/**
 * Throws asset_invalid (not retryable) unless ffprobe reads `asset` as the kind
 * it claims, within the limits; returns its size or length.
 */
export async function checkAsset(ref: string, asset: LocalAsset, limits: AssetLimits, signal?: AbortSignal): Promise<AssetFacts> {
  const invalid = (why: string) => new RenderError('asset_invalid', `${ref} ${why}`, false);
  // Before any ffmpeg sees it (assets are at most 50 MB, two probed at a time).
  // Its metadata is read by its extension (the sniffed type): PNG chunks,
  // JPEG segments and WebP chunks, with their EXIF (worker/exif.ts).
  const metadataProblem = asset.kind !== 'image' ? undefined
    : asset.path.endsWith('.png') ? pngChunkProblem
    : asset.path.endsWith('.jpg') ? jpegProblem
    : asset.path.endsWith('.webp') ? webpProblem
    : undefined;
  if (metadataProblem) {
    const bytes = await readFile(asset.path, { signal }).catch((err: unknown) => {
      throw signal?.aborted ? signal.reason : err;
    });
    const problem = metadataProblem(bytes);
    if (problem) throw invalid(problem);
  }
  // Probing is itself decoding: the same whitelist and forced format as the
  // render, -max_pixels so the probe cannot be the bomb's victim, and a deadline.
  const format = asset.kind === 'image' ? ['-f', 'image2', '-pattern_type', 'none'] : ['-f', asset.format];
  // Audio and video: count the packets (a demux of the whole file, no
  // decoding): a WAV or FLAC with a header and no samples has an audio stream
  // and none; a cut-off MP4 has fewer packets than its index promises.
  const count = asset.kind !== 'image' ? ['-count_packets'] : [];
  const args = [
    '-v', 'error', '-protocol_whitelist', 'file,pipe', ...format, '-max_pixels', String(limits.maxPixels), ...count,
    '-show_entries', 'stream=codec_type,width,height,nb_frames,nb_read_packets:stream_disposition=attached_pic:format=duration', '-of', 'json', asset.path,
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

  const parsed = JSON.parse(stdout || '{}') as { streams?: ProbedStream[]; format?: { duration?: string } };
  const streams = parsed.streams ?? [];
  // A cover picture in an M4A is a video stream that is not a video.
  const moving = streams.filter((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  if (asset.kind === 'video') return videoFacts(moving, streams, Number(parsed.format?.duration) || 0, stderr, limits, invalid);
  if (asset.kind === 'audio' && moving.length > 0) throw invalid('is a video file but is used as audio (give it as a scene\'s background.video with audio: \'keep\')');
  if (asset.kind === 'audio') {
    const audio = streams.filter((s) => s.codec_type === 'audio');
    if (audio.length === 0) throw invalid('has no audio stream');
    // ffprobe leaves nb_read_packets out when it counted none.
    if (!audio.some((s) => Number(s.nb_read_packets) > 0)) throw invalid('has no audio samples (the file is empty)');
    return { seconds: Number(parsed.format?.duration) || 0 };
  }
  const size = /Picture size (\d+)x(\d+) exceeds specified max pixel count/.exec(stderr);
  if (size) throw invalid(`is ${size[1]}×${size[2]} pixels; images may have at most ${limits.maxPixels} pixels`);
  const video = streams.find((s) => s.codec_type === 'video');
  const [width, height] = [video?.width ?? 0, video?.height ?? 0];
  // The probe decodes the picture: any error means a damaged image (or none).
  if (width === 0 || height === 0 || stderr.trim() !== '') throw invalid(`could not be decoded as an image (${stderr.trim() ? firstLine(stderr) : 'no picture found'})`);
  if (width > limits.maxSide || height > limits.maxSide) throw invalid(`is ${width}×${height} pixels; an image side may be at most ${limits.maxSide} pixels`);
  if (width * height > limits.maxPixels) throw invalid(`is ${width}×${height} pixels; images may have at most ${limits.maxPixels} pixels`);
  return { width, height };
}

type ProbedStream = { codec_type?: string; width?: number; height?: number; nb_frames?: string; nb_read_packets?: string; disposition?: { attached_pic?: number } };

/**
 * A clip: one readable video stream within the size and length limits, every
 * packet its index promises present (a truncated upload is refused here, not
 * halfway through a render), and no complaint from the demuxer.
 */
function videoFacts(video: ProbedStream[], streams: ProbedStream[], seconds: number, stderr: string, limits: AssetLimits, invalid: (why: string) => RenderError) {
  const v = video[0];
  if (!v) throw invalid('has no video stream');
  const [width, height] = [v.width ?? 0, v.height ?? 0];
  if (width === 0 || height === 0) throw invalid('has a video stream of unknown size');
  if (width * height > MAX_VIDEO_PIXELS || Math.max(width, height) > 3840)
    throw invalid(`is a ${width}×${height} video; a clip may be at most 3840×2160 pixels`);
  const maxSeconds = limits.maxSeconds ?? ASSET_LIMIT_DEFAULTS.maxSeconds;
  if (!(seconds > 0)) throw invalid('is a video of unknown length');
  if (seconds > maxSeconds) throw invalid(`lasts ${Math.round(seconds)} s; a clip may last at most ${maxSeconds} s`);
  const read = Number(v.nb_read_packets ?? 0);
  if (read === 0) throw invalid('has no video frames');
  const promised = Number(v.nb_frames ?? 0);
  if (promised > read || /partial file|Invalid NAL|corrupt|truncat/i.test(stderr))
    throw invalid(`is truncated or damaged (${promised > read ? `${read} of ${promised} frames present` : firstLine(stderr)})`);
  if (stderr.trim() !== '') throw invalid(`could not be read as a video (${firstLine(stderr)})`);
  const hasAudio = streams.some((s) => s.codec_type === 'audio' && Number(s.nb_read_packets) > 0);
  return { width, height, seconds, hasAudio };
}

/** ffprobe's first complaint, without the `[png @ 0x…]` prefix or our own paths. */
function firstLine(stderr = ''): string {
  const line = stderr.split('\n').find((l) => l.trim()) ?? 'ffprobe failed';
  return line.replace(/^\[[^\]]*\]\s*/, '').replace(/\/\S+/g, '…').slice(0, 200);
}
