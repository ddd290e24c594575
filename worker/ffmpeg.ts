// The one adapter around fluent-ffmpeg (archived upstream): if it has to be
// replaced, only this file changes. Formats and codecs are passed as raw
// options because its own format check breaks on newer ffmpeg builds.
//
// Deliberately unused: fluent-ffmpeg's 'progress' event. Attaching it makes
// the library ffprobe input 0 with no protocol whitelist and no forced format;
// we parse ffmpeg's `time=` stats ourselves instead.
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ffmpeg from 'fluent-ffmpeg';
import type { FfmpegCommand, FfprobeData } from 'fluent-ffmpeg';
import { ASSET_LIMIT_DEFAULTS } from '../engine/config.js';
import { RenderError, VgenError } from '../engine/errors.js';
import { totalSeconds, type RenderSpec } from '../engine/spec.js';
import { planTimeline, totalFrames, type Slot } from '../engine/timeline.js';
import type { LocalAsset } from './assets.js';
import { checkGuard, useGuardedTools } from './ffmpeg-guard.js';

// Every ffmpeg and ffprobe this process starts dies with it (see ffmpeg-guard.ts).
useGuardedTools(ffmpeg);

const REQUIRED_FILTERS = ['xfade', 'drawtext', 'zoompan'];
const REQUIRED_ENCODERS = ['libx264', 'aac'];
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

/**
 * A font with Chinese glyphs. fc-match never says "not found" (it falls back to
 * any font), so the match is accepted only if fontconfig says it covers zh-cn.
 */
export function findFont(): string {
  const override = process.env.FONT_FILE;
  if (override) {
    try {
      accessSync(override, constants.R_OK);
    } catch {
      throw new Error(`FONT_FILE=${override} is not a readable file`);
    }
    return override;
  }
  const hint = 'install one with `apt-get install fonts-noto-cjk fontconfig`, or set FONT_FILE';
  let out: string;
  try {
    out = execFileSync('fc-match', ['-f', '%{file}|%{lang}', 'Noto Sans CJK SC:lang=zh-cn'], { encoding: 'utf8' });
  } catch {
    throw new Error(`fc-match (fontconfig) is not available to find a CJK font; ${hint}`);
  }
  const [file, ...langs] = out.split('|');
  if (!file || !langs.includes('zh-cn')) throw new Error(`no font with Chinese glyphs found; ${hint}`);
  return file;
}

export type RenderOptions = {
  spec: RenderSpec;
  assets: Map<string, LocalAsset>;
  workDir: string;
  fontFile: string;
  /** x264 preset; veryfast is about 2x faster than medium for a small size cost. */
  preset?: string;
  /** Largest image (width × height) a decoder may accept, the second guard after the asset probe; default MAX_ASSET_PIXELS's. */
  maxPixels?: number;
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
};

export type RenderResult = { videoPath: string; posterPath: string; durationMs: number; width: number; height: number };

export async function renderVideo(opts: RenderOptions): Promise<RenderResult> {
  const { spec, workDir, signal } = opts;
  signal?.throwIfAborted();
  let plan: RenderPlan;
  try {
    plan = planRender(opts);
  } catch (err) {
    // The worker validated the spec already; this is the planner's own guard.
    if (err instanceof VgenError) throw new RenderError('spec_invalid', err.message, false);
    throw err;
  }
  const { frames, seconds } = plan;
  await Promise.all(plan.captions.map((c) => writeFile(c.path, c.text)));
  // Two images at a time (ffmpeg's start-up dominates for small ones): at most
  // two full-size pictures in memory, far less than the main run holds.
  await twoAtATime(plan.fits, async (fit) => {
    const cmd = ffmpeg(fit.input.path).inputOptions(fit.input.options).outputOptions(fit.outputOptions).output(fit.output);
    await run(cmd, signal).catch((err: unknown) => {
      throw inputFailure(err, [fit.input]) ?? err;
    });
  });

  const videoPath = join(workDir, 'video.mp4');
  const cmd = ffmpeg();
  for (const input of plan.inputs) cmd.input(input.path).inputOptions(input.options);
  cmd.complexFilter(plan.filter).outputOptions(plan.outputOptions).output(videoPath);

  let reported = 0;
  await run(cmd, signal, (t) => {
    // Monotonic and below 1 until the poster and probe are done too.
    const fraction = Math.min(0.99, t / seconds);
    if (fraction > reported) opts.onProgress?.((reported = fraction));
  }).catch((err: unknown) => {
    throw inputFailure(err, plan.inputs) ?? err;
  });

  const posterPath = join(workDir, 'poster.jpg');
  await run(
    ffmpeg(videoPath)
      .inputOptions(['-protocol_whitelist', 'file,pipe', '-f', 'mov', '-ss', String(posterSeconds(frames, spec.output.fps))])
      .outputOptions(['-hide_banner', '-loglevel', 'error', '-frames:v', '1', '-q:v', '3', '-update', '1', '-f', 'image2'])
      .output(posterPath),
    signal,
  );
  // ffmpeg exits 0 having written nothing when -ss lands past the last frame:
  // that is a render failure here, not a storage error at upload.
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
  opts.onProgress?.(1);
  return { videoPath, posterPath, durationMs: probed.durationMs, width: probed.video.width, height: probed.video.height };
}

/**
 * When the poster is taken: 1 s in, or the middle frame of a shorter video;
 * always the start of a frame that exists. A one-frame video (1 fps, 1 s) has only the
 * frame at 0 s; `-ss` past the last frame makes ffmpeg write nothing.
 */
export function posterSeconds(frames: number, fps: number): number {
  return Math.min(1, Math.floor((frames - 1) / 2) / fps);
}

export type FfmpegInput = { path: string; options: string[]; /** the spec's asset reference */ ref: string };

/** One image decoded and fitted to the output size, written as one raw frame. */
export type FitPass = { input: FfmpegInput; outputOptions: string[]; output: string };

/** Every ffmpeg run of a render, decided without running anything. */
export type RenderPlan = {
  /** Run first, two at a time: each distinct image, fitted to the output size. */
  fits: FitPass[];
  /** The main run's inputs: fitted frames and the music. */
  inputs: FfmpegInput[];
  filter: string;
  outputOptions: string[];
  /** Files the filter reads caption text from; write them before running. */
  captions: { path: string; text: string }[];
  timeline: Slot[];
  frames: number;
  seconds: number;
};

/**
 * The ffmpeg runs for a spec. Pure (tests read the plan):
 * - every distinct image is decoded once, in a run of its own that scales and
 *   crops it to the output size and writes one raw frame (with -max_pixels,
 *   the decoder's own guard). ffmpeg 5.1 starts a filter graph only once every
 *   input has delivered a frame, so images decoded by the main run are all in
 *   memory at once: 30 distinct 8 MP photos took 1.5 GB that way, and four
 *   inputs of one 10000×10000 PNG 1.75 GB;
 * - the main run reads each fitted frame once and `split`s it to the scenes
 *   that show it;
 * - every scene is an exact frame count, the video is trimmed to the
 *   timeline's frames and the audio to its seconds: no graph can run past
 *   the spec's length.
 */
export function planRender(opts: Pick<RenderOptions, 'spec' | 'assets' | 'workDir' | 'fontFile' | 'preset' | 'maxPixels'>): RenderPlan {
  const { spec, workDir } = opts;
  const { width, height, fps } = spec.output;
  const timeline = planTimeline(spec); // throws if a scene would own no frame
  const frames = totalFrames(timeline);
  const seconds = frames / fps;

  // Every file input is whitelisted to local files and has its format forced
  // (WHITELIST, then -f): ffmpeg must never guess a playlist or concat list out of an asset.
  const inputs: FfmpegInput[] = [];
  const graph: string[] = [];

  // Each distinct image: fitted in its own run, then one input of the main run, split to its scenes.
  const showing = new Map<string, number[]>();
  for (const [i, scene] of spec.scenes.entries())
    if ('image' in scene.background) showing.set(scene.background.image, [...(showing.get(scene.background.image) ?? []), i]);
  const fits: FitPass[] = [];
  for (const [ref, scenes] of showing) {
    const asset = assetOf(opts.assets, ref, 'image');
    const fitted = join(workDir, `fitted-${fits.length}.yuv`);
    fits.push({
      input: { path: asset.path, ref, options: [...WHITELIST, '-f', 'image2', '-pattern_type', 'none', '-max_pixels', String(opts.maxPixels ?? ASSET_LIMIT_DEFAULTS.maxPixels)] },
      outputOptions: [
        '-hide_banner', '-loglevel', 'error',
        '-vf', `scale=${width}:${height}:force_original_aspect_ratio=increase,crop=${width}:${height},format=yuv420p`,
        '-frames:v', '1', '-f', 'rawvideo',
      ],
      output: fitted,
    });
    // A raw frame has no header: its size and pixel format are given here.
    inputs.push({ path: fitted, ref, options: [...WHITELIST, '-f', 'rawvideo', '-pixel_format', 'yuv420p', '-video_size', `${width}x${height}`] });
    const split = scenes.length > 1 ? `,split=${scenes.length}` : '';
    graph.push(`[${inputs.length - 1}:v]setsar=1${split}${scenes.map((i) => `[img${i}]`).join('')}`);
  }

  const captions: RenderPlan['captions'] = [];
  const fontSize = Math.max(10, Math.round(height / 13));
  for (const [i, scene] of spec.scenes.entries()) {
    const { frames: n } = timeline[i]!;
    let chain: string;
    if ('image' in scene.background) {
      // One decoded frame repeated by the loop filter: an exact frame count
      // with no `-loop 1` input that could run on unbounded. n ≥ 1 (planTimeline).
      chain = `[img${i}]loop=loop=${n - 1}:size=1,settb=1/${fps},setpts=N,fps=${fps}`;
    } else {
      chain = `color=c=${ffmpegColor(scene.background.color)}:s=${width}x${height}:r=${fps},format=yuv420p,setsar=1,trim=end_frame=${n}`;
    }
    if (scene.caption) {
      // The text goes through a file: no filtergraph escaping of user text.
      // expansion=none stops drawtext from evaluating %{...} sequences in it.
      const textFile = join(workDir, `caption-${i}.txt`);
      captions.push({ path: textFile, text: wrapCaption(scene.caption.text, width * 0.9, fontSize) });
      chain +=
        `,drawtext=fontfile=${filterValue(opts.fontFile)}:textfile=${filterValue(textFile)}:expansion=none` +
        `:fontsize=${fontSize}:fontcolor=white:line_spacing=${Math.round(fontSize / 4)}` +
        `:box=1:boxcolor=black@0.55:boxborderw=${Math.round(fontSize / 2)}:x=(w-text_w)/2:y=h-text_h-h/12`;
    }
    graph.push(`${chain}[s${i}]`);
  }

  // Join scenes left to right: xfade where a scene has a transition, concat otherwise.
  // Every join then renumbers its frames (0, 1, 2… in 1/fps), for two reasons:
  // - concat outputs a microsecond timebase, and xfade refuses mismatched ones;
  // - ffmpeg 5.1's xfade ends the transition early when its first input's EOF
  //   is already visible (image scenes deliver frames and EOF together): it
  //   drops that input's last frame and leaves a one-frame timestamp gap,
  //   which the encoder fills with a duplicate. The frame count is still right,
  //   so renumbering restores the exact length (one near-invisible blend frame is lost).
  const renumber = `settb=1/${fps},setpts=N`;
  let joined = 's0';
  for (const [i, scene] of spec.scenes.entries()) {
    if (i === 0) continue;
    const { start, overlap } = timeline[i]!;
    const out = `j${i}`;
    if (scene.transition && overlap > 0)
      graph.push(`[${joined}][s${i}]xfade=transition=${scene.transition.type}:duration=${overlap / fps}:offset=${start / fps},${renumber}[${out}]`);
    else graph.push(`[${joined}][s${i}]concat=n=2:v=1:a=0,${renumber}[${out}]`);
    joined = out;
  }

  // The hard stop: at most the timeline's frames leave the graph, whatever
  // runs upstream; trim then ends the stream, so nothing pulls an endless source.
  graph.push(`[${joined}]trim=end_frame=${frames}[vout]`);

  // Audio is rendered once for the whole timeline (no pops at scene borders).
  const fade = Math.min(1, seconds / 4);
  const normalize = 'aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo';
  if (spec.audio) {
    const music = assetOf(opts.assets, spec.audio.src, 'audio');
    inputs.push({ path: music.path, ref: spec.audio.src, options: [...WHITELIST, '-f', music.format, '-stream_loop', '-1', '-t', String(seconds)] });
    // apad: silence after the music's last sample, so the track always spans
    // the video (and exists at all when the file decodes to nothing; the probe
    // refuses files with no audio packets, this covers packets that decode to
    // no samples). atrim ends it.
    graph.push(`[${inputs.length - 1}:a]${normalize},apad=packet_size=1024,atrim=duration=${seconds},afade=t=out:st=${seconds - fade}:d=${fade}[aout]`);
  } else {
    graph.push(`anullsrc=r=48000:cl=stereo,${normalize},atrim=duration=${seconds}[aout]`);
  }

  const outputOptions = [
    // Global options may sit anywhere. -loglevel error hides the stats line
    // unless -stats asks for it; every 0.25 s gives progress on short renders too.
    '-hide_banner', '-loglevel', 'error', '-stats', '-stats_period', '0.25',
    '-map', '[vout]', '-map', '[aout]',
    // A second stop, computed from the spec alone, not from the planner: even a
    // wrong plan cannot run past the spec's length (the frame check after the
    // render then fails it). Not the planned count itself: ffmpeg 5.1 closes
    // every stream of the file once one reaches its -frames, cutting the audio tail.
    '-frames:v', String(Math.ceil(totalSeconds(spec) * fps) + 1),
    '-c:v', 'libx264', '-preset', opts.preset ?? 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-r', String(fps),
    '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
    '-movflags', '+faststart', '-f', 'mp4',
  ];
  return { fits, inputs, filter: graph.join(';'), outputOptions, captions, timeline, frames, seconds };
}

const WHITELIST = ['-protocol_whitelist', 'file,pipe'];

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

export { planTimeline, type Slot } from '../engine/timeline.js';

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

function assetOf(assets: Map<string, LocalAsset>, ref: string, kind: LocalAsset['kind']): LocalAsset {
  const asset = assets.get(ref);
  if (!asset) throw new Error(`asset ${ref} was not fetched before rendering`);
  if (asset.kind !== kind) throw new RenderError('asset_invalid', `${ref} is not ${kind === 'image' ? 'an image' : 'audio'}`, false);
  return asset;
}

/** `#rrggbb` → `0xrrggbb`, which needs no quoting in a filtergraph; names pass through. */
const ffmpegColor = (color: string) => color.replace(/^#/, '0x');

/**
 * Quote a value (a path) for a filter option. Two parsers read it: the filter's
 * option parser (splits on `:`, honours '…') and, before it, the graph parser
 * (splits on `[],;`, honours '…' and \): quote for the first, escape for the second.
 */
export function filterValue(value: string): string {
  const quoted = `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/[\\'[\],;]/g, '\\$&');
}

/**
 * drawtext does not wrap. Break greedily at spaces (or anywhere in CJK text),
 * counting a CJK character as one em and other characters as about half.
 */
export function wrapCaption(text: string, maxWidthPx: number, fontSize: number): string {
  const maxEm = maxWidthPx / fontSize;
  const em = (ch: string) => (/[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 1 : 0.55);
  const lines: string[] = [];
  // eslint-disable-next-line no-control-regex
  for (const paragraph of text.replace(/[\x00-\x09\x0b-\x1f\x7f]/g, ' ').split('\n')) {
    let line = '';
    let width = 0;
    let lastSpace = -1;
    for (const ch of paragraph) {
      if (width + em(ch) > maxEm && line.length > 0) {
        // Prefer breaking at the last space; otherwise break right here.
        const cut = lastSpace > 0 ? lastSpace : line.length;
        lines.push(line.slice(0, cut).trimEnd());
        line = line.slice(cut).trimStart();
        width = [...line].reduce((w, c) => w + em(c), 0);
        lastSpace = -1;
      }
      if (ch === ' ') lastSpace = line.length;
      line += ch;
      width += em(ch);
    }
    lines.push(line.trimEnd());
  }
  return lines.join('\n');
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
