// Brings every asset a spec names onto local disk, so ffmpeg never opens a URL
// itself (its protocol handlers and playlist demuxers are a known way to read
// local files or reach internal services). Each file is sniffed after download,
// probed (worker/probe.ts: readable, and not a decompression bomb) and handed
// to ffmpeg with a forced demuxer. Connections go through engine/outbound.ts
// (vetted addresses only); this file adds redirects, byte limits and the deadline.
import { setMaxListeners } from 'node:events';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, realpath, rename, stat } from 'node:fs/promises';
import { join, resolve as resolvePath, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ASSET_LIMIT_DEFAULTS } from '../engine/config.js';
import { RenderError } from '../engine/errors.js';
import { outboundRequest, OutboundRefused, shownUrl as shown, type OutboundOptions } from '../engine/outbound.js';
import { assetsOf, clipsOf, imagesOf, type RenderSpec } from '../engine/spec.js';
import { checkAsset, type AssetLimits } from './probe.js';
import { fetchUpload, type UploadSource } from './uploaded.js';

/**
 * A fetched, probed asset. `width`/`height` (images) and `seconds` (audio)
 * are what the probe read; the render planner uses them (worker/planner/).
 */
export type LocalAsset = {
  path: string;
  kind: 'image' | 'audio' | 'video';
  format: string;
  width?: number;
  height?: number;
  seconds?: number;
  /** Video: whether the clip has a sound track (worker/probe.ts). */
  hasAudio?: boolean;
};

/** Containers that hold either sound alone or a video: what they are is decided by their streams (worker/probe.ts). */
const AV_CONTAINERS = new Set(['mov', 'matroska']);

/**
 * `policy` (OUTBOUND_ALLOW, config.outboundAllow) is the only way to admit a
 * private address; `resolve` and `ca` let tests point names at a local server
 * with a self-signed certificate.
 */
export type FetchAssetsOptions = OutboundOptions & {
  /** The folder `assets/<name>` refers to. */
  assetsDir: string;
  signal?: AbortSignal;
  /** Called with the fraction of assets fetched and probed so far. */
  onProgress?: (fraction: number) => void;
  /** Per asset; default 50 MB. */
  maxBytes?: number;
  /** Per asset, redirects included; default 30 s. */
  timeoutMs?: number;
  /** Largest image accepted; default ASSET_LIMIT_DEFAULTS (MAX_ASSET_PIXELS, MAX_ASSET_SIDE). */
  limits?: AssetLimits;
  /** Where `upload://<id>` assets are read from (worker/uploaded.ts); without it they are refused. */
  uploads?: UploadSource;
};

const MAX_REDIRECTS = 3;

/**
 * ffprobe runs at once. Its start-up dominates for a photo (six bench assets:
 * 1.18 s one at a time, 0.68 s two at a time), and two decoded pictures of
 * at most MAX_ASSET_PIXELS (~200 MiB each at 40 MP) stay far under the main
 * run's peak, which comes later. The fit runs take two at a time too.
 */
const PROBES_AT_ONCE = 2;

/** Runs at most `n` of the functions given to it at once, the others waiting in call order. */
function slots(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let free = n;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

export async function fetchAssets(spec: RenderSpec, workDir: string, opts: FetchAssetsOptions): Promise<Map<string, LocalAsset>> {
  const wanted = kindsWanted(spec);
  const dir = join(workDir, 'assets');
  await mkdir(dir, { recursive: true });

  // One failed asset fails the render: cancel the other downloads, then wait
  // for them to settle so nothing is still writing into workDir when we return.
  const cancel = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, cancel.signal]) : cancel.signal;
  // Each asset's download and probe listen on it at once (up to 31): not a leak.
  setMaxListeners(0, signal);
  let firstError: unknown;
  const probeSlot = slots(PROBES_AT_ONCE);
  const refs = assetsOf(spec);
  let ready = 0;
  const results = await Promise.allSettled(
    refs.map(async (ref, i) => {
      try {
        const asset = await fetchOne(ref, join(dir, String(i)), { ...opts, signal });
        const kind = wanted.get(ref);
        // An MP4, MOV or WebM used as a clip is probed as a video: the probe
        // refuses it if it has no video stream; used as music, if it has one.
        if (kind === 'video' && AV_CONTAINERS.has(asset.format)) asset.kind = 'video';
        if (asset.kind !== kind) throw new RenderError('asset_invalid', `${ref} is ${article(asset.kind)} file but is used as ${kind}`, false);
        // Its first bytes said what it is; ffprobe checks the rest and the picture size.
        // Two probes at a time: each may hold a decoded picture of up to MAX_ASSET_PIXELS.
        const facts = await probeSlot(() => checkAsset(ref, asset, opts.limits ?? ASSET_LIMIT_DEFAULTS, signal));
        opts.onProgress?.(++ready / refs.length);
        return [ref, { ...asset, ...facts }] as const;
      } catch (err) {
        firstError ??= err;
        cancel.abort(err);
        throw err;
      }
    }),
  );
  if (firstError !== undefined) throw firstError;
  return new Map(results.map((r) => (r as PromiseFulfilledResult<readonly [string, LocalAsset]>).value));
}

function kindsWanted(spec: RenderSpec): Map<string, LocalAsset['kind']> {
  const kinds = new Map<string, LocalAsset['kind']>();
  for (const { ref } of imagesOf(spec)) kinds.set(ref, 'image');
  for (const { ref } of clipsOf(spec)) {
    if (kinds.get(ref) === 'image') throw new RenderError('asset_invalid', `${ref} is used both as an image and as a video`, false);
    kinds.set(ref, 'video');
  }
  if (spec.audio) {
    if (kinds.has(spec.audio.src)) throw new RenderError('asset_invalid', `${spec.audio.src} is used both as ${article(kinds.get(spec.audio.src)!)} and as audio`, false);
    kinds.set(spec.audio.src, 'audio');
  }
  return kinds;
}

const article = (kind: string) => (kind === 'image' ? 'an image' : kind === 'video' ? 'a video' : 'an audio');

type Opts = FetchAssetsOptions & { signal: AbortSignal };

/** Fetch one asset to `<base>.<ext>`, the extension matching its sniffed content. */
async function fetchOne(ref: string, base: string, opts: Opts): Promise<LocalAsset> {
  const part = `${base}.part`;
  if (ref.startsWith('assets/')) await copyBundled(ref.slice('assets/'.length), part, opts);
  else if (ref.startsWith('upload://')) await fetchUpload(ref, part, opts.uploads, opts.signal);
  else if (URL.canParse(ref) && ref.startsWith('https://')) await downloadWithin(new URL(ref), part, opts);
  else throw new RenderError('asset_forbidden', `${ref} is neither an https:// URL, assets/<name> nor upload://<id>`, false);

  const sniffed = sniff(await readHead(part));
  if (!sniffed) throw new RenderError('asset_invalid', `${ref} is not a supported image (JPEG, PNG, WebP), audio (MP3, WAV, OGG, FLAC, M4A) or video (MP4, MOV, WebM) file`, false);
  // image2 picks its decoder from the file extension, so the name must match the content.
  const path = `${base}.${sniffed.ext}`;
  await rename(part, path);
  return { path, kind: sniffed.kind, format: sniffed.format };
}

async function copyBundled(name: string, dest: string, opts: Opts): Promise<void> {
  const forbidden = () => new RenderError('asset_forbidden', `assets/${name} is outside the bundled assets folder`, false);
  const root = await realpath(opts.assetsDir);
  // Check the name as written, then again after symlinks are followed.
  const lexical = resolvePath(root, name);
  if (!lexical.startsWith(root + sep)) throw forbidden();
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new RenderError('asset_unavailable', `assets/${name} does not exist`, false);
  }
  if (!real.startsWith(root + sep)) throw forbidden();
  const info = await stat(real);
  if (!info.isFile()) throw forbidden();
  if (info.size > (opts.maxBytes ?? 50e6)) throw new RenderError('asset_invalid', `assets/${name}: asset too large`, false);
  await copyFile(real, dest);
}

/** Download with one deadline covering every redirect, mapping failures to render errors. */
async function downloadWithin(url: URL, dest: string, opts: Opts): Promise<void> {
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
  const signal = AbortSignal.any([opts.signal, deadline]);
  try {
    await download(url, dest, { ...opts, signal }, MAX_REDIRECTS);
  } catch (err) {
    if (err instanceof RenderError) throw err;
    if (opts.signal.aborted) throw opts.signal.reason;
    if (err instanceof OutboundRefused)
      throw err.reason === 'forbidden' ? new RenderError('asset_forbidden', err.message, false) : new RenderError('asset_unavailable', err.message, err.retryable);
    if (deadline.aborted) throw new RenderError('asset_unavailable', `${shown(url)}: download timed out`, true);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // A certificate problem will not fix itself by retrying; a reset connection may.
    const tlsFailure = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code);
    throw new RenderError('asset_unavailable', `${shown(url)}: download failed (${code || (err as Error).message})`, !tlsFailure);
  }
}

async function download(url: URL, dest: string, opts: Opts, redirectsLeft: number): Promise<void> {
  if (url.protocol !== 'https:') throw new RenderError('asset_forbidden', `${shown(url)}: only https:// assets are allowed`, false);
  if (url.username || url.password) throw new RenderError('asset_forbidden', `${shown(url)}: URLs must not carry credentials`, false);
  const res = await outboundRequest(url, { method: 'GET', headers: { 'user-agent': 'vgen-worker/1', accept: '*/*' }, signal: opts.signal }, opts);
  const status = res.statusCode ?? 0;

  if (status >= 300 && status < 400 && res.headers.location) {
    res.resume();
    if (redirectsLeft === 0) throw new RenderError('asset_unavailable', `${shown(url)}: too many redirects`, false);
    const next = new URL(res.headers.location, url);
    if (next.protocol !== 'https:') throw new RenderError('asset_forbidden', `${shown(url)} redirects to a non-https URL`, false);
    return download(next, dest, opts, redirectsLeft - 1);
  }
  if (status < 200 || status >= 300) {
    res.resume();
    throw new RenderError('asset_unavailable', `${shown(url)}: server answered HTTP ${status}`, status >= 500 || status === 429);
  }

  const maxBytes = opts.maxBytes ?? 50e6;
  const tooLarge = () => new RenderError('asset_invalid', `${shown(url)}: asset too large (over ${maxBytes} bytes)`, false);
  if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
    res.destroy();
    throw tooLarge();
  }
  // Content-Length may be absent or lie: count what actually arrives.
  let received = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      done(received > maxBytes ? tooLarge() : null, chunk);
    },
  });
  await pipeline(res, limit, createWriteStream(dest), { signal: opts.signal });
}

async function readHead(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64);
    const { bytesRead } = await file.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

type Sniffed = { kind: LocalAsset['kind']; format: string; ext: string };

// ISO-BMFF brands of audio/video files; HEIF/AVIF images share the ftyp box
// and are left out on purpose. An ftyp file (and a WebM) is audio until used
// as a clip: then the probe decides by its streams (fetchAssets).
const MP4_BRANDS = new Set(['M4A ', 'M4B ', 'M4V ', 'mp41', 'mp42', 'isom', 'iso2', 'iso4', 'iso5', 'iso6', 'dash', 'qt  ']);

/**
 * Identify a file by its first bytes, never by its name or Content-Type (both
 * are the sender's claim). Playlists, concat lists, SVG and text fall through.
 */
export function sniff(head: Buffer): Sniffed | undefined {
  const ascii = (from: number, to: number) => head.subarray(from, to).toString('latin1');
  if (head.length < 12) return undefined;
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return { kind: 'image', format: 'image2', ext: 'jpg' };
  if (ascii(0, 8) === '\x89PNG\r\n\x1a\n') return { kind: 'image', format: 'image2', ext: 'png' };
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return { kind: 'image', format: 'image2', ext: 'webp' };
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WAVE') return { kind: 'audio', format: 'wav', ext: 'wav' };
  if (ascii(0, 4) === 'OggS') return { kind: 'audio', format: 'ogg', ext: 'ogg' };
  if (ascii(0, 4) === 'fLaC') return { kind: 'audio', format: 'flac', ext: 'flac' };
  if (ascii(4, 8) === 'ftyp' && MP4_BRANDS.has(ascii(8, 12))) return { kind: 'audio', format: 'mov', ext: 'm4a' };
  if (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return { kind: 'audio', format: 'matroska', ext: 'webm' };
  if (ascii(0, 3) === 'ID3' || isMp3FrameHeader(head)) return { kind: 'audio', format: 'mp3', ext: 'mp3' };
  return undefined;
}

/** 11 sync bits, then a version and a layer that are not "reserved" (ADTS AAC uses layer 0). */
function isMp3FrameHeader(head: Buffer): boolean {
  const [b0 = 0, b1 = 0] = head;
  return b0 === 0xff && (b1 & 0xe0) === 0xe0 && ((b1 >> 3) & 0b11) !== 0b01 && ((b1 >> 1) & 0b11) !== 0;
}
