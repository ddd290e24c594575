// Video clips as a scene's background: the trimmed part of the file, at the
// output's fps, fitted like an image (cover, contain, contain-blur), then
// frozen on its last frame or looped to fill the scene. A clip that fills its
// scene is decoded by the main run itself (input seeking: only the trimmed
// part is read). A clip that must loop is first cut and fitted once in a pass
// of its own (a FitPass writing a small intermediate file) that the main run
// reads with the demuxer looping it: looping decoded frames in the graph
// would hold the whole segment in memory. Its sound, when kept, is returned
// as a ClipAudio for worker/planner/audio.ts to mix under the music.
import { join } from 'node:path';
import { RenderError } from '../../engine/errors.js';
import type { ClipLayer } from '../../engine/spec.js';
import type { Slot } from '../../engine/timeline.js';
import { lookChain } from './fit.js';
import { WHITELIST, type Graph } from './graph.js';
import type { FfmpegInput, FitPass, PlanAssets } from './types.js';

/** A kept clip's sound: where it sits on the timeline and how to read it. */
export type ClipAudio = {
  /** The clip's trimmed part as an audio input (for the loudness pass, and the main run when the video came from a pass). */
  input: FfmpegInput;
  /** The main run's label carrying this sound already (the clip's own input), if any. */
  mainLabel?: string;
  /** Seconds of the trimmed part (it loops when shorter than `plays` and the clip loops). */
  segment: number;
  loop: boolean;
  /** When it starts on the timeline, and for how long it sounds (the scene's slot). */
  start: number;
  plays: number;
};

/** The intermediate of a looped clip: near-lossless and fast to write. */
const LOOP_PASS_OPTIONS = ['-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '12', '-pix_fmt', 'yuv420p', '-f', 'matroska'];

export type ClipContext = { g: Graph; width: number; height: number; fps: number; workDir: string; maxPixels: number; assets: PlanAssets };

/**
 * The scene's frames (exactly slot.frames of them, at fps) from `clip`; adds
 * any pass it needs to `passes` and its kept sound to `sounds`.
 */
export function clipFrames(i: number, clip: ClipLayer, slot: Slot, ctx: ClipContext, passes: FitPass[], sounds: ClipAudio[]): string {
  const { g, fps, width, height } = ctx;
  const asset = ctx.assets.get(clip.video);
  if (!asset) throw new Error(`asset ${clip.video} was not fetched before rendering`);
  if (asset.kind !== 'video') throw new RenderError('asset_invalid', `${clip.video} is not a video`, false);
  const length = asset.seconds ?? 0;
  const from = clip.trim?.from ?? 0;
  const end = Math.min(clip.trim?.to ?? Infinity, length);
  // At least one frame must be left to show: an empty segment would loop forever.
  if (!(end - from >= 1 / fps))
    throw new RenderError('asset_invalid', `${clip.video} lasts ${length} s: scenes[${i}].background.trim leaves nothing of it to show`, false);
  const segment = end - from;
  const plays = slot.frames / fps;
  const loop = (clip.fill ?? 'loop') === 'loop' && segment * fps < slot.frames;
  const decoder = (seconds: number, sound = false): FfmpegInput => ({
    path: asset.path,
    ref: clip.video,
    options: [
      ...WHITELIST, '-f', asset.format, ...(sound ? ['-vn'] : ['-max_pixels', String(ctx.maxPixels)]),
      ...(from > 0 ? ['-ss', String(from)] : []), '-t', String(+seconds.toFixed(6)),
    ],
  });
  const look = { kind: 'frame' as const, fit: clip.fit ?? 'cover', width, height };
  // tpad clones the last frame for ever (freeze, or a clip a frame short of
  // its scene after rounding); trim then ends the stream at the scene's frames.
  const fill = `tpad=stop=-1:stop_mode=clone,trim=end_frame=${slot.frames}`;
  const out = g.label(`clip${i}_`);
  let mainLabel: string | undefined;
  if (!loop) {
    const input = decoder(Math.min(segment, plays));
    const k = g.inputs.length;
    const video = g.input(input, 'v');
    if (clip.audio === 'keep' && asset.hasAudio) mainLabel = `[${k}:a]`;
    const pre = g.label('cf');
    const fitted = g.label('cf');
    g.add(`${video}fps=${fps},setsar=1${pre}`);
    for (const c of lookChain(look, pre, fitted, g)) g.add(c);
    g.add(`${fitted}setsar=1,${fill}${out}`);
  } else {
    // Cut and fit the segment once; the main run's demuxer loops the result.
    let count = 0;
    const local = { label: (p: string) => `[${p}${count++}]` };
    const chains = [`[0:v]fps=${fps},setsar=1[pre]`, ...lookChain(look, '[pre]', '[o0]', local)];
    const path = join(ctx.workDir, `clip-${i}.mkv`);
    passes.push({ input: decoder(segment), filter: chains.join(';'), outputs: [{ label: '[o0]', path, options: LOOP_PASS_OPTIONS }] });
    const looped = g.input({ path, ref: clip.video, options: [...WHITELIST, '-f', 'matroska', '-stream_loop', '-1', '-t', String(+(plays + 1 / fps).toFixed(6))] }, 'v');
    g.add(`${looped}setsar=1,fps=${fps},${fill}${out}`);
  }
  if (clip.audio === 'keep' && asset.hasAudio) {
    sounds.push({ input: decoder(segment, true), ...(mainLabel && { mainLabel }), segment, loop, start: slot.start / fps, plays });
  }
  return out;
}
