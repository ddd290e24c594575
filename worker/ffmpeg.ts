// The one adapter around fluent-ffmpeg (archived upstream): if it has to be
// replaced, only this file changes. It runs what the planner (worker/planner/)
// decided: fit passes, the loudness pass, the main run, then checks the file.
// Formats and codecs are passed as raw options because fluent-ffmpeg's own
// format check breaks on newer ffmpeg builds.
//
// Deliberately unused: fluent-ffmpeg's 'progress' event. Attaching it makes
// the library ffprobe input 0 with no protocol whitelist and no forced format;
// we parse ffmpeg's `time=` stats ourselves instead.
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ffmpeg from 'fluent-ffmpeg';
import type { FfmpegCommand, FfprobeData } from 'fluent-ffmpeg';
import { RenderError, VgenError } from '../engine/errors.js';
import type { FontName, RenderSpec } from '../engine/spec.js';
import type { LocalAsset } from './assets.js';
import { checkGuard, useGuardedTools } from './ffmpeg-guard.js';
import { findFonts } from './fonts.js';
import { parseLoudness, plan, type FfmpegInput, type LoudnessPass, type PlanOptions, type RenderPlan } from './planner/index.js';
import { readWebp } from './webp.js';

export { findFont } from './fonts.js';
export { filterValue, posterSeconds, wrapCaption, type FfmpegInput, type FitPass, type RenderPlan } from './planner/index.js';
export { planTimeline, type Slot } from '../engine/timeline.js';

// Every ffmpeg and ffprobe this process starts dies with it (see ffmpeg-guard.ts).
useGuardedTools(ffmpeg);

const REQUIRED_FILTERS = ['xfade', 'drawtext', 'zoompan', 'gradients', 'tpad', 'boxblur', 'alimiter', 'sidechaincompress'];
const REQUIRED_ENCODERS = ['libx264', 'aac', 'libwebp_anim'];
const INSTALL_HINT = 'install it with `apt-get install ffmpeg` (or set FFMPEG_PATH/FFPROBE_PATH)';

/** Run at worker start: a missing filter should fail the deploy, not the 1000th job. */
export async function checkFfmpeg(): Promise<{ version: string }> {
  const version = await toolVersion(process.env.FFMPEG_PATH ?? 'ffmpeg', 'ffmpeg');
  await toolVersion(process.env.FFPROBE_PATH ?? 'ffprobe', 'ffprobe');
  await checkGuard();
  const major = /^n?(\d+)\./.exec(version)?.[1];
  // Git snapshots ("N-11xxxx-g…") carry no number and are newer than any release.
  if (major !== undefined && Number(major) < 5) throw new Error(`ffmpeg ${version} is too old: vgen needs ffmpeg >= 5; ${INSTALL_HINT}`);

  const [filters, encoders] = await Promise.all([
    promisify(ffmpeg.getAvailableFilters)(),
    promisify(ffmpeg.getAvailableEncoders)(),
  ]);
  const missing = [
    ...REQUIRED_FILTERS.filter((f) => !(f in filters)).map((f) => `filter ${f}`),
    ...REQUIRED_ENCODERS.filter((e) => !(e in encoders)).map((e) => `encoder ${e}`),
  ];
  if (missing.length > 0) throw new Error(`ffmpeg ${version} lacks ${missing.join(', ')}; ${INSTALL_HINT}`);
  return { version };
}

async function toolVersion(bin: string, name: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(bin, ['-hide_banner', '-version']);
    return new RegExp(`^${name} version (\\S+)`).exec(stdout)?.[1] ?? 'unknown';
  } catch {
    throw new Error(`${name} not found or not runnable (${bin}); ${INSTALL_HINT}`);
  }
}

export type RenderOptions = {
  spec: RenderSpec;
  assets: Map<string, LocalAsset>;
  workDir: string;
  /** The default font (findFont()); the other bundled fonts are found with fontconfig unless `fonts` names them. */
  fontFile: string;
  fonts?: Partial<Record<FontName, string>>;
  /** x264 preset when the spec names none; veryfast is about 2x faster than medium for a small size cost. */
  preset?: string;
  /** Largest image (width × height) a decoder may accept, the second guard after the asset probe; default MAX_ASSET_PIXELS's. */
  maxPixels?: number;
  /** Images up to this many pixels in all are decoded by the main run (planner/fit.ts); 0 sends every image through a fit pass. */
  inlinePixels?: number;
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
};

/** previewPath: the animated WebP, when the spec asked for one. */
export type RenderResult = { videoPath: string; posterPath: string; previewPath?: string; durationMs: number; width: number; height: number };

/** The planner's options from the runner's. */
function planOptions(opts: RenderOptions, loudness?: number): PlanOptions {
  return {
    workDir: opts.workDir,
    fontFile: opts.fontFile,
    fonts: opts.fonts ?? (usesFonts(opts.spec) ? findFonts() : {}),
    ...(opts.preset !== undefined && { preset: opts.preset }),
    ...(opts.maxPixels !== undefined && { maxPixels: opts.maxPixels }),
    ...(opts.inlinePixels !== undefined && { inlinePixels: opts.inlinePixels }),
    ...(loudness !== undefined && { loudness }),
  };
}

const usesFonts = (spec: RenderSpec) => spec.scenes.some((s) => s.texts?.some((t) => t.font && t.font !== 'sans'));

/** The plan for a spec, as the runner will run it (tests read it). */
export function planRender(opts: Pick<RenderOptions, 'spec' | 'assets' | 'workDir' | 'fontFile' | 'fonts' | 'preset' | 'maxPixels' | 'inlinePixels'>): RenderPlan {
  return plan(opts.spec, opts.assets, planOptions(opts as RenderOptions));
}

export async function renderVideo(opts: RenderOptions): Promise<RenderResult> {
  const { workDir, signal } = opts;
  signal?.throwIfAborted();
  const planned = (loudness?: number) => {
    try {
      return plan(opts.spec, opts.assets, planOptions(opts, loudness));
    } catch (err) {
      // The worker validated the spec already; this is the planner's own guard.
      if (err instanceof VgenError) throw new RenderError('spec_invalid', err.message, false);
      throw err;
    }
  };
  let current = planned();
  const { frames, seconds } = current;
  await Promise.all(current.textFiles.map((f) => writeFile(f.path, f.text)));
  // Two runs at a time (ffmpeg's start-up dominates for small images): at most
  // two full-size pictures in memory, far less than the main run holds. The
  // loudness pass (audio only) is one of them.
  const first = current;
  const measured: { lufs?: number } = {};
  const loudness = first.loudness;
  await twoAtATime<(() => Promise<void>)>([
    ...(loudness ? [async () => void (measured.lufs = await measureLoudness(loudness, signal))] : []),
    ...first.fits.map((fit) => async () => {
      const cmd = ffmpeg(fit.input.path).inputOptions(fit.input.options).outputOptions(['-hide_banner', '-loglevel', 'error', '-filter_complex', fit.filter]);
      for (const out of fit.outputs) cmd.output(out.path).outputOptions(['-map', out.label, ...out.options]);
      await run(cmd, signal).catch((err: unknown) => {
        throw inputFailure(err, [fit.input]) ?? err;
      });
    }),
  ], (step) => step());
  if (loudness) current = planned(measured.lufs ?? -Infinity);

  const videoPath = join(workDir, 'video.mp4');
  const posterPath = join(workDir, 'poster.jpg');
  const cmd = ffmpeg();
  for (const input of current.inputs) cmd.input(input.path).inputOptions(input.options);
  cmd.complexFilter(current.filter).output(videoPath).outputOptions(current.outputOptions).output(posterPath).outputOptions(current.posterOptions);
  const previewPath = current.preview && join(workDir, 'preview.webp');
  if (previewPath) cmd.output(previewPath).outputOptions(current.preview!.options);

  let reported = 0;
  await run(cmd, signal, (t) => {
    // Monotonic and below 1 until the probe is done too.
    const fraction = Math.min(0.99, t / seconds);
    if (fraction > reported) opts.onProgress?.((reported = fraction));
  }).catch((err: unknown) => {
    throw inputFailure(err, current.inputs) ?? err;
  });

  // The poster is the main run's second output; a run that wrote none failed,
  // which is a render failure here, not a storage error at upload.
  const poster = await stat(posterPath).catch(() => undefined);
  if (!poster?.size) throw new RenderError('render_failed', 'ffmpeg wrote no poster frame');

  const probed = await probe(videoPath, 'mov');
  if (!probed.video) throw new RenderError('render_failed', 'ffmpeg produced no video stream');
  // Every video has an AAC track, silent if need be (the graph pads the audio
  // to the video's length); a file without one is not what the plan made.
  if (probed.audio?.codec !== 'aac') throw new RenderError('render_failed', 'ffmpeg produced no AAC audio stream');
  // The plan and the file must agree (field notes: verify every output). A
  // mismatch is a bug in the plan or the graph: no retry renders it differently.
  if (probed.video.frames !== frames)
    throw new RenderError('render_failed', `ffmpeg produced ${probed.video.frames} frames; the timeline has ${frames}`, false);
  if (previewPath) await checkPreview(previewPath, current.preview!);
  opts.onProgress?.(1);
  return { videoPath, posterPath, ...(previewPath && { previewPath }), durationMs: probed.durationMs, width: probed.video.width, height: probed.video.height };
}

/**
 * The preview the main run wrote is the animated WebP the plan made: its width
 * and its length (within a frame). Not its frame count: the WebP encoder
 * merges identical consecutive frames (a still scene is one long frame).
 */
async function checkPreview(path: string, planned: NonNullable<RenderPlan['preview']>): Promise<void> {
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes?.length) throw new RenderError('render_failed', 'ffmpeg wrote no preview');
  let info;
  try {
    info = readWebp(bytes);
  } catch (err) {
    throw new RenderError('render_failed', `ffmpeg wrote a broken preview (${(err as Error).message})`, false);
  }
  const frameMs = 1000 / planned.fps;
  const plannedMs = (planned.frames * 1000) / planned.fps;
  // One frame is written as a still WebP, which carries no duration.
  const length = info.animated ? Math.abs(info.durationMs - plannedMs) <= frameMs : info.frames === 1 && planned.frames === 1;
  if (info.width !== planned.width || !length)
    throw new RenderError('render_failed', `ffmpeg wrote a ${info.width}px preview of ${info.durationMs} ms; the plan has ${planned.width}px and ${Math.round(plannedMs)} ms`, false);
}

/** Runs the loudness pass; its integrated loudness in LUFS (-Infinity for silence). */
async function measureLoudness(pass: LoudnessPass, signal?: AbortSignal): Promise<number> {
  const cmd = ffmpeg();
  for (const input of pass.inputs) cmd.input(input.path).inputOptions(input.options);
  let stderr = '';
  cmd.complexFilter(pass.filter).output('/dev/null').outputOptions(pass.outputOptions);
  cmd.on('stderr', (line: string) => (stderr += `${line}\n`));
  await run(cmd, signal).catch((err: unknown) => {
    throw inputFailure(err, pass.inputs) ?? err;
  });
  return parseLoudness(stderr) ?? -Infinity;
}

/** fn over items, two running at once; the first failure stops new starts and is thrown once both lanes settled. */
async function twoAtATime<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled([lane(), lane()]);
  const failure = settled.find((r) => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/**
 * ffmpeg failed because of what an input holds (a decoder or demuxer refused
 * it, or it is larger than -max_pixels): an asset_invalid naming the asset,
 * which no retry can fix. Anything else is left as it was (render_failed).
 */
export function inputFailure(err: unknown, inputs: FfmpegInput[]): RenderError | undefined {
  const words = err instanceof RenderError && err.code === 'render_failed' ? String((err.cause as Error | undefined)?.message ?? '') : '';
  // "Error while decoding stream #1:0: …", "Cannot determine format of input stream 1:0 …"
  // or "<path>: Invalid data found when processing input" (opening it).
  const k = /(?:Error while decoding stream #|input stream )(\d+):\d+/.exec(words)?.[1];
  const input = k !== undefined ? inputs[Number(k)] : inputs.find((i) => words.includes(`${i.path}: `));
  if (!input) return undefined;
  const size = /Picture size (\d+x\d+) exceeds specified max pixel count (\d+)/.exec(words);
  const reason = size ? `is too large to decode (${size[1]}, more than ${size[2]} pixels)` : 'could not be decoded (the file is damaged or not what it claims to be)';
  return new RenderError('asset_invalid', `${input.ref} ${reason}`, false, { cause: err });
}

/**
 * Run a command; on abort SIGKILL ffmpeg and reject with the abort reason once
 * the process has exited (so no ffmpeg outlives the promise).
 */
function run(cmd: FfmpegCommand, signal?: AbortSignal, onTime?: (seconds: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const kill = () => cmd.kill('SIGKILL');
    signal?.addEventListener('abort', kill, { once: true });
    // The process is spawned asynchronously: an abort before 'start' found nothing to kill.
    cmd.on('start', () => signal?.aborted && kill());
    if (onTime)
      cmd.on('stderr', (line: string) => {
        const m = /time=(-?)(\d+):(\d+):(\d+(?:\.\d+)?)/.exec(line);
        if (m && !m[1]) onTime(Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]));
      });
    cmd.on('end', () => {
      signal?.removeEventListener('abort', kill);
      resolve();
    });
    cmd.on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
      signal?.removeEventListener('abort', kill);
      if (signal?.aborted) return reject(signal.reason);
      const detail = (stderr ?? '').split('\n').filter((l) => l.trim() && !/^(frame|size)=/.test(l.trim())).slice(-5).join('\n');
      const failure = new RenderError('render_failed');
      failure.cause = new Error(`${err.message}${detail ? `\n${detail}` : ''}`);
      reject(failure);
    });
    cmd.run();
  });
}

export type ProbeResult = {
  format: string;
  durationMs: number;
  video?: { codec: string; profile: string; pixFmt: string; width: number; height: number; fps: number; frames: number; durationMs: number };
  audio?: { codec: string; sampleRate: number; channels: number; durationMs: number };
};

/** ffprobe a local file: format, duration and the first video and audio stream. */
export async function probe(path: string, format?: string): Promise<ProbeResult> {
  const options = ['-protocol_whitelist', 'file,pipe', ...(format ? ['-f', format] : [])];
  const data = await new Promise<FfprobeData>((resolve, reject) =>
    ffmpeg.ffprobe(path, options, (err: Error | null, d: FfprobeData) => (err ? reject(err) : resolve(d))),
  );
  const ms = (s: unknown) => Math.round(Number(s) * 1000) || 0;
  const v = data.streams.find((s) => s.codec_type === 'video');
  const a = data.streams.find((s) => s.codec_type === 'audio');
  const [num = 0, den = 1] = (v?.r_frame_rate ?? '0/1').split('/').map(Number);
  return {
    format: data.format.format_name ?? '',
    durationMs: ms(data.format.duration),
    ...(v && {
      video: {
        codec: v.codec_name ?? '', profile: String(v.profile ?? ''), pixFmt: v.pix_fmt ?? '',
        width: v.width ?? 0, height: v.height ?? 0, fps: den ? num / den : 0,
        frames: Number(v.nb_frames) || 0, durationMs: ms(v.duration),
      },
    }),
    ...(a && { audio: { codec: a.codec_name ?? '', sampleRate: Number(a.sample_rate) || 0, channels: a.channels ?? 0, durationMs: ms(a.duration) } }),
  };
}
