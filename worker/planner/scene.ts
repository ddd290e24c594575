// One scene as layers: a background (color, gradient, image), then text, then
// overlays. A still scene is composed once, as a single frame, and repeated by
// the loop filter: its text is drawn and its overlays blended once, not on
// every frame. A Ken Burns scene is drawn every frame (zoompan on an image
// twice the output size, so the crop moves in half-pixel steps and does not
// jitter), with its layers drawn on each frame; so is a video clip scene
// (worker/planner/clip.ts). A layer is either still or moving.
import type { Scene } from '../../engine/spec.js';
import type { Slot } from '../../engine/timeline.js';
import type { Graph } from './graph.js';
import type { ImageLooks } from './fit.js';
import { clipFrames, type ClipAudio, type ClipContext } from './clip.js';
import type { FitPass } from './types.js';
import { captionLayer, drawText, ffmpegColor, type TextFile } from './text.js';
import { overlayAt } from './overlay.js';
import type { PlanOptions } from './types.js';

export type SceneContext = {
  g: Graph;
  looks: ImageLooks;
  width: number;
  height: number;
  fps: number;
  opts: PlanOptions;
  textFiles: TextFile[];
  /** What video clip scenes need: their assets, and where their passes and kept sound go. */
  clips: ClipContext & { passes: FitPass[]; sounds: ClipAudio[] };
};

/**
 * The pieces of a scene the joiner needs, each renumbered from 0 in 1/fps:
 * `own` (its frames no transition covers), and, where a transition overlaps
 * it, `head` (its first `overlapIn` frames) and `tail` (its last `overlapOut`),
 * each padded with two copies of its last frame (xfade in ffmpeg 5.1 ends a
 * blend early when an input's end is already in sight; the joiner trims the
 * padding off).
 */
export type SceneParts = { own: string; head?: string; tail?: string };

/** Renumber frames 0, 1, 2… in 1/fps (concat and loop leave other timebases; xfade needs equal ones). */
export const renumber = (fps: number) => `settb=1/${fps},setpts=N,fps=${fps}`;

const KEN_BURNS_SCALE = 2;

export function composeScene(i: number, scene: Scene, slot: Slot, overlapOut: number, ctx: SceneContext): SceneParts {
  const { g, fps } = ctx;
  const overlapIn = slot.overlap;
  const own = slot.frames - overlapIn - overlapOut;
  const parts: ('head' | 'own' | 'tail')[] = [...(overlapIn > 0 ? ['head' as const] : []), 'own', ...(overlapOut > 0 ? ['tail' as const] : [])];
  const bg = scene.background;
  const clip = 'video' in bg;
  const moving = clip || ('image' in bg && bg.kenBurns !== undefined);
  const source = clip
    ? drawLayers(i, scene, clipFrames(i, bg, slot, ctx.clips, ctx.clips.passes, ctx.clips.sounds), ctx)
    : moving ? movingScene(i, scene, slot.frames, ctx) : stillScene(i, scene, ctx);
  const outs = g.fanOut(source, parts.length, `sc${i}_`);
  const result: Partial<SceneParts> = {};
  parts.forEach((part, k) => {
    const label = g.label(`${part}${i}_`);
    const count = part === 'own' ? own : part === 'head' ? overlapIn : overlapOut;
    const pad = part === 'own' ? '' : ',tpad=stop=2:stop_mode=clone';
    if (!moving) {
      // One frame repeated: an exact frame count, and nothing that could run on unbounded.
      const repeat = count - 1 + (part === 'own' ? 0 : 2);
      g.add(`${outs[k]}loop=loop=${repeat}:size=1,${renumber(fps)}${label}`);
    } else {
      const from = part === 'head' ? 0 : part === 'own' ? overlapIn : slot.frames - overlapOut;
      g.add(`${outs[k]}trim=start_frame=${from}:end_frame=${from + count},${renumber(fps)}${pad}${label}`);
    }
    result[part] = label;
  });
  return result as SceneParts;
}

/** The scene's one frame: background, text layers, overlays. */
function stillScene(i: number, scene: Scene, ctx: SceneContext): string {
  let label = background(scene, ctx, 1);
  label = drawLayers(i, scene, label, ctx);
  return label;
}

/** The scene's frames, every one drawn: a Ken Burns zoom over the image, then its layers. */
function movingScene(i: number, scene: Scene, frames: number, ctx: SceneContext): string {
  const bg = scene.background as Extract<Scene['background'], { image: string }>;
  const { width, height, fps, g } = ctx;
  const look = ctx.looks.use(bg.image, { kind: 'frame', fit: bg.fit ?? 'cover', width: width * KEN_BURNS_SCALE, height: height * KEN_BURNS_SCALE });
  const out = g.label(`kb${i}_`);
  g.add(`${look}${kenBurns(bg.kenBurns!, frames, width, height, fps)},setsar=1${out}`);
  return drawLayers(i, scene, out, ctx);
}

/**
 * zoompan over one input frame: `frames` output frames, zooming between 1
 * and 1.25 (1.15 and 1.35 when it also pans, so there is room to move), the
 * crop centred or sliding from one edge to the other.
 */
export function kenBurns(kb: NonNullable<Extract<Scene['background'], { image: string }>['kenBurns']>, frames: number, width: number, height: number, fps: number): string {
  const p = `(on/${Math.max(1, frames - 1)})`;
  const [lo, hi] = kb.pan ? [1.15, 1.35] : [1, 1.25];
  const z = kb.zoom === 'in' ? `${lo}+${+(hi - lo).toFixed(2)}*${p}` : `${hi}-${+(hi - lo).toFixed(2)}*${p}`;
  const free = { x: '(iw-iw/zoom)', y: '(ih-ih/zoom)' };
  const x = kb.pan === 'left' ? `${free.x}*(1-${p})` : kb.pan === 'right' ? `${free.x}*${p}` : `${free.x}/2`;
  const y = kb.pan === 'up' ? `${free.y}*(1-${p})` : kb.pan === 'down' ? `${free.y}*${p}` : `${free.y}/2`;
  return `zoompan=z='${z}':x='${x}':y='${y}':d=${frames}:s=${width}x${height}:fps=${fps},format=yuv420p`;
}

/** A background as frames (`count` of them: 1 for a still scene). */
function background(scene: Scene, ctx: SceneContext, count: number): string {
  const { g, width, height, fps } = ctx;
  const bg = scene.background;
  const out = g.label('bg');
  if ('color' in bg) {
    g.add(`color=c=${ffmpegColor(bg.color)}:s=${width}x${height}:r=${fps},format=yuv420p,setsar=1,trim=end_frame=${count}${out}`);
  } else if ('gradient' in bg) {
    g.add(`${gradient(bg.gradient, width, height, fps)},format=yuv420p,setsar=1,trim=end_frame=${count}${out}`);
  } else if ('image' in bg) {
    return ctx.looks.use(bg.image, { kind: 'frame', fit: bg.fit ?? 'cover', width, height });
  } else {
    throw new Error('a clip scene is not still');
  }
  return out;
}

/** The gradients source, its first frame (later ones rotate). Linear: along `angle` (90 = top to bottom); radial: from the centre out. */
export function gradient(gr: Extract<Scene['background'], { gradient: unknown }>['gradient'], width: number, height: number, fps: number): string {
  const [c0, c1] = gr.colors.map(ffmpegColor);
  let points: number[];
  if (gr.type === 'radial') {
    points = [width / 2, height / 2, width, height];
  } else {
    const a = ((gr.angle ?? 90) * Math.PI) / 180;
    // The line through the centre along the angle, long enough to reach the corners.
    const r = (Math.abs(Math.cos(a)) * width + Math.abs(Math.sin(a)) * height) / 2;
    points = [width / 2 - r * Math.cos(a), height / 2 - r * Math.sin(a), width / 2 + r * Math.cos(a), height / 2 + r * Math.sin(a)];
  }
  // gradients takes whole pixels inside the frame: it places a point at x ≥ width
  // or y ≥ height (or below 0) at random, so points past the frame clamp to its edge.
  const [x0, y0, x1, y1] = points.map((v, k) => Math.min(Math.max(0, Math.round(v)), (k % 2 === 0 ? width : height) - 1));
  return `gradients=s=${width}x${height}:r=${fps}:c0=${c0}:c1=${c1}:x0=${x0}:y0=${y0}:x1=${x1}:y1=${y1}:nb_colors=2:type=${gr.type}:speed=0.00001`;
}

/** Text layers (the caption first), then the scene's overlays, over `label`. */
function drawLayers(i: number, scene: Scene, label: string, ctx: SceneContext): string {
  const { g, width, height } = ctx;
  const texts = [...(scene.caption ? [captionLayer(scene.caption.text, height)] : []), ...(scene.texts ?? [])];
  if (texts.length > 0) {
    const filters = texts.map((layer, k) => {
      const { filter, file } = drawText(layer, `${i}-${k}`, { width, height }, ctx.opts);
      ctx.textFiles.push(file);
      return filter;
    });
    const out = g.label(`tx${i}_`);
    g.add(`${label}${filters.join(',')}${out}`);
    label = out;
  }
  for (const overlay of scene.overlays ?? []) label = overlayAt(label, overlay, ctx);
  return label;
}
