// Joining scenes. A transition blends only where two scenes overlap: the
// overlap is its own short segment (xfade over the outgoing scene's tail and
// the incoming scene's head), and everything else is concatenated as it is.
// Chaining xfade over whole scenes (as version 1 did) blended nothing more
// but pushed every frame of the video through every xfade before it.
//
// Pixel formats: xfade in ffmpeg 5.1 takes only unsubsampled formats
// (yuv444p or gray), and one filter's format spreads through every
// format-agnostic filter linked to it (split, loop, trim, concat…). Left
// alone, that made the whole graph yuv444p and added a 444→420 conversion of
// every output frame before x264 (a third of a static slideshow's render
// time). Most transitions treat each plane alone, by its own size, so they
// run on the yuv420p frames' planes split apart (three xfades on gray planes,
// merged back): no conversion at all, and half the chroma to blend (the
// static slideshow's graph: 0.78 → 0.41 s of CPU). The rest (dissolve's
// per-pixel noise, pixelize's blocks) would pick different pixels in the
// half-size chroma planes than in luma, so their overlap frames alone are
// converted, explicitly (scale), into and out of yuv444p.
import type { RenderSpec } from '../../engine/spec.js';
import type { Slot } from '../../engine/timeline.js';
import type { Graph } from './graph.js';
import { renumber, type SceneParts } from './scene.js';

/** xfade's pixel format for transitions not run plane by plane; everything else in the graph stays yuv420p. */
export const XFADE_FORMAT = 'yuv444p';

/**
 * Transitions that give the same frames plane by plane: each pixel depends on
 * its position relative to its plane's size and the progress only (fades,
 * wipes, slides, circles, the radial sweep), so on a half-size chroma plane
 * they draw the luma plane's picture at half size. Checked on 1280×720 test
 * patterns: luma identical to the yuv444p route, chroma within what the
 * 420→444→420 round trip itself loses.
 */
export const PLANEWISE: ReadonlySet<string> = new Set([
  'fade', 'wipeleft', 'wiperight', 'wipeup', 'wipedown',
  'slideleft', 'slideright', 'slideup', 'slidedown', 'circleopen', 'circleclose', 'radial',
]);

/** A conversion to `format` that keeps the filters before it out of the choice (format= alone would pull them to `format`). */
export const convertTo = (format: string) => `scale,format=${format}`;

/**
 * The segments in order (own frames of scene 0, the blend into scene 1, own
 * frames of scene 1, …), concatenated and renumbered. A transition that rounds
 * to no frame is a cut, as before.
 */
export function joinScenes(spec: RenderSpec, timeline: Slot[], parts: SceneParts[], g: Graph): string {
  const { fps } = spec.output;
  const segments: string[] = [];
  spec.scenes.forEach((scene, i) => {
    const { overlap } = timeline[i]!;
    if (i > 0 && overlap > 0) {
      segments.push(blend(scene.transition!.type, overlap, fps, parts[i - 1]!.tail!, parts[i]!.head!, i, g));
    }
    segments.push(parts[i]!.own);
  });
  if (segments.length === 1) return segments[0]!;
  const out = g.label('joined');
  g.add(`${segments.join('')}concat=n=${segments.length}:v=1:a=0,${renumber(fps)}${out}`);
  return out;
}

/**
 * The overlap's `overlap` frames, yuv420p, from the outgoing scene's tail and
 * the incoming one's head. Frame k of the blend is xfade's frame k from
 * offset 0: progress 1 − k/overlap, the frames the same transition produced
 * over whole scenes. `planewise` chooses the route (tests compare the two).
 */
export function blend(type: string, overlap: number, fps: number, tail: string, head: string, i: number, g: Graph, planewise = PLANEWISE.has(type)): string {
  const out = g.label(`xf${i}_`);
  const xfade = `xfade=transition=${type}:duration=${overlap / fps}:offset=0`;
  const trim = `trim=end_frame=${overlap}`;
  if (planewise) {
    const planes = (from: string, prefix: string) => {
      const labels = ['y', 'u', 'v'].map((p) => g.label(`${prefix}${p}${i}_`));
      g.add(`${from}extractplanes=y+u+v${labels.join('')}`);
      return labels;
    };
    const [a, b] = [planes(tail, 'xa'), planes(head, 'xb')];
    const blended = a.map((pa, k) => {
      const o = g.label(`xo${i}_`);
      g.add(`${pa}${b[k]!}${xfade}${o}`);
      return o;
    });
    // Input 0's plane 0, input 1's plane 0, input 2's plane 0: Y, U, V.
    g.add(`${blended.join('')}mergeplanes=mapping=0x001020:format=yuv420p,${trim},${renumber(fps)}${out}`);
    return out;
  }
  const [a, b] = [g.label(`xa${i}_`), g.label(`xb${i}_`)];
  g.add(`${tail}${convertTo(XFADE_FORMAT)}${a}`);
  g.add(`${head}${convertTo(XFADE_FORMAT)}${b}`);
  g.add(`${a}${b}${xfade},${trim},${convertTo('yuv420p')},${renumber(fps)}${out}`);
  return out;
}

/** Frames of scene i's end that the next scene's transition covers. */
export const overlapOut = (timeline: Slot[], i: number): number => timeline[i + 1]?.overlap ?? 0;
