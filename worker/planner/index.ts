// The render planner: a spec and what the probe learnt about its assets in,
// every ffmpeg run of the render out (fit passes, the loudness pass, the main
// run's inputs, filter graph and output options). Pure: no processes, no I/O,
// so it is tested in milliseconds (test/planner.test.ts); worker/ffmpeg.ts
// runs what it returns.
//
// The main graph, for each scene: its layers composed (once, for a still
// scene), split into the frames a transition covers and its own; the own
// parts and the blended overlaps concatenated; overlays for the whole video;
// then the hard stop at the timeline's frames, and the poster frame (and the
// preview, when the spec asks for one) split off.
import { ASSET_LIMIT_DEFAULTS } from '../../engine/config.js';
import { outputSize, type RenderSpec } from '../../engine/spec.js';
import { planTimeline, totalFrames } from '../../engine/timeline.js';
import { addAudio, loudnessPass } from './audio.js';
import { ImageLooks, INLINE_PIXELS_DEFAULT } from './fit.js';
import { Graph } from './graph.js';
import { mp4Options, posterFrame, posterOptions, previewChain, previewOptions, previewPlan } from './output.js';
import { overlayAt } from './overlay.js';
import { composeScene } from './scene.js';
import type { TextFile } from './text.js';
import { convertTo, joinScenes, overlapOut } from './transitions.js';
import type { ClipAudio } from './clip.js';
import type { FitPass, PlanAssets, PlanOptions, RenderPlan } from './types.js';

export type { FfmpegInput, FitPass, LoudnessPass, PlanOptions, RenderPlan } from './types.js';
export { filterValue, wrapCaption } from './text.js';
export { posterSeconds, PREVIEW_DEFAULTS, type PreviewPlan } from './output.js';
export { parseLoudness, loudnessGain, TARGET_LUFS } from './audio.js';

export function plan(spec: RenderSpec, assets: PlanAssets, opts: PlanOptions): RenderPlan {
  const { width, height } = outputSize(spec.output);
  const { fps } = spec.output;
  const timeline = planTimeline(spec); // throws if a scene would own no frame
  const frames = totalFrames(timeline);
  const seconds = frames / fps;

  const g = new Graph();
  const looks = new ImageLooks(g);
  const textFiles: TextFile[] = [];
  const maxPixels = opts.maxPixels ?? ASSET_LIMIT_DEFAULTS.maxPixels;
  const clips = { g, width, height, fps, workDir: opts.workDir, maxPixels, assets, passes: [] as FitPass[], sounds: [] as ClipAudio[] };
  const ctx = { g, looks, width, height, fps, opts, textFiles, clips };

  const parts = spec.scenes.map((scene, i) => composeScene(i, scene, timeline[i]!, overlapOut(timeline, i), ctx));
  let video = joinScenes(spec, timeline, parts, g);
  for (const overlay of spec.overlays ?? []) video = overlayAt(video, overlay, ctx);

  // The hard stop: at most the timeline's frames leave the graph, whatever
  // runs upstream; trim then ends the stream, so nothing pulls an endless source.
  // The poster is the same stream's frame at 1 s (or the middle frame).
  // The preview, when asked for, is a third copy of the same stream.
  const preview = previewPlan(spec, frames, width);
  const [main, still, moving] = g.fanOut(video, preview ? 3 : 2, 'out');
  if (preview) g.add(previewChain(moving!, preview));
  const p = posterFrame(frames, fps);
  g.add(`${main}trim=end_frame=${frames}[vout]`);
  // The JPEG encoder wants yuvj420p: converted here, after the trim, so the
  // poster costs one frame's conversion and does not pull the graph's format.
  g.add(`${still}trim=start_frame=${p}:end_frame=${p + 1},${convertTo('yuvj420p')}[poster]`);

  // Images once every use is known, so each file is decoded once; then the music.
  const fits = looks.resolve(assets, {
    workDir: opts.workDir,
    maxPixels,
    inlinePixels: opts.inlinePixels ?? INLINE_PIXELS_DEFAULT,
  });
  const measure = opts.loudness === undefined ? loudnessPass(spec, assets, seconds, clips.sounds) : undefined;
  addAudio(spec, assets, seconds, opts.loudness, g, clips.sounds);

  return {
    width, height, fps,
    fits: [...fits, ...clips.passes],
    ...(measure && { loudness: measure }),
    inputs: g.inputs,
    filter: g.toString(),
    outputOptions: mp4Options(spec, opts.preset ?? 'veryfast'),
    posterOptions: posterOptions(),
    ...(preview && { preview: { ...preview, options: previewOptions(preview) } }),
    textFiles,
    timeline, frames, seconds, spec,
  };
}
