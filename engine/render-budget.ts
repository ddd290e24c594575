// How long a render should take, from its spec alone. Pure: the worker uses it
// for each job's time limit and to weight the progress of its stages; the
// tests call the same functions.
//
// The cost model, in seconds on a reference worker (one core's share of a small
// instance, x264 preset veryfast; measured rates are 2-3x these on an idle
// 2-core machine, so the estimate already leans slow):
//   fetch  = 0.1 per bundled asset + 2 per downloaded one (plus its probe)
//   render = 0.3 per ffmpeg run (one per distinct image, the main run, the poster, the probe)
//          + layer-frames × width × height / 50 Mpx/s
//            where layer-frames = frames + ½ × captioned frames + transition frames (xfade blends two)
//          + preview frames × preview pixels / 4 Mpx/s (output.preview: WebP encodes ~10x slower than x264)
//   upload = frames × width × height × 0.1 bit / 8, at 20 MB/s
// The time limit is SAFETY × that estimate plus a fixed slack (start-up and
// upload latency; another 30 s when an asset is downloaded: one download may
// use its whole 30 s allowance), clamped to [min, max] from the config.
import { planTimeline, totalFrames } from './timeline.js';
import { imagesOf, outputSize, type RenderSpec } from './spec.js';

export const BUDGET = {
  pixelRate: 50e6,
  runSeconds: 0.3,
  bundledAssetSeconds: 0.1,
  downloadedAssetSeconds: 2,
  bitsPerPixel: 0.1,
  uploadBytesPerSecond: 20e6,
  safety: 4,
  slackSeconds: 30,
  downloadSlackSeconds: 30,
  previewPixelRate: 4e6,
  previewFps: 12,
} as const;

export interface RenderEstimate {
  /** Seconds per stage on the reference worker. */
  fetch: number;
  render: number;
  upload: number;
  total: number;
  downloads: number;
}

export function estimateRender(spec: RenderSpec): RenderEstimate {
  const { width, height } = outputSize(spec.output);
  const slots = planTimeline(spec);
  const frames = totalFrames(slots);
  const pixels = width * height;

  const assets = new Set<string>();
  const images = new Set<string>();
  for (const { ref } of imagesOf(spec)) {
    assets.add(ref);
    images.add(ref);
  }
  if (spec.audio) assets.add(spec.audio.src);
  const downloads = [...assets].filter((ref) => !ref.startsWith('assets/')).length;
  const fetch = (assets.size - downloads) * BUDGET.bundledAssetSeconds + downloads * BUDGET.downloadedAssetSeconds;

  let layerFrames = frames;
  spec.scenes.forEach((scene, i) => {
    const slot = slots[i]!;
    if (scene.caption) layerFrames += slot.frames / 2;
    // A Ken Burns scene is drawn anew every frame, from an image twice the output size.
    if ('kenBurns' in scene.background && scene.background.kenBurns) layerFrames += slot.frames * 3;
    layerFrames += slot.overlap;
  });
  const runs = images.size + 3;
  const render = runs * BUDGET.runSeconds + (layerFrames * pixels) / BUDGET.pixelRate + previewSeconds(spec, width, height, frames);
  const upload = (frames * pixels * BUDGET.bitsPerPixel) / 8 / BUDGET.uploadBytesPerSecond;
  return { fetch, render, upload, total: fetch + render + upload, downloads };
}

/** The preview's encode (output.preview), at its largest: its seconds (default 3) at 12 fps, its width (default 320) at the video's aspect. */
function previewSeconds(spec: RenderSpec, width: number, height: number, frames: number): number {
  const preview = spec.output.preview;
  if (!preview) return 0;
  const seconds = Math.min(preview.seconds ?? 3, frames / spec.output.fps);
  const w = Math.min(preview.width ?? 320, width);
  return (seconds * BUDGET.previewFps * w * ((w * height) / width)) / BUDGET.previewPixelRate;
}

export interface TimeLimitBounds {
  minSeconds: number;
  maxSeconds: number;
}

/** A job's time limit in whole seconds: SAFETY × estimate + slack, within [min, max]. */
export function renderTimeLimitSeconds(spec: RenderSpec, bounds: TimeLimitBounds): number {
  const e = estimateRender(spec);
  const raw = BUDGET.safety * e.total + BUDGET.slackSeconds + (e.downloads > 0 ? BUDGET.downloadSlackSeconds : 0);
  return Math.min(bounds.maxSeconds, Math.max(bounds.minSeconds, Math.ceil(raw)));
}

/**
 * Where each stage's progress sits in 0–1, in proportion to its estimate:
 * fetch [0, a], render [a, b], upload [b, 1].
 */
export function stageWeights(spec: RenderSpec): { fetch: [number, number]; render: [number, number]; upload: [number, number] } {
  const e = estimateRender(spec);
  const a = e.fetch / e.total;
  const b = (e.fetch + e.render) / e.total;
  return { fetch: [0, a], render: [a, b], upload: [b, 1] };
}
