// Joining scenes. A transition blends only where two scenes overlap: the
// overlap is its own short segment (xfade over the outgoing scene's tail and
// the incoming scene's head), and everything else is concatenated as it is.
// Chaining xfade over whole scenes (as version 1 did) blended nothing more
// but pushed every frame of the video through every xfade before it.
//
// Pixel formats: xfade in ffmpeg 5.1 takes only unsubsampled formats
// (yuv444p), and one filter's format spreads through every format-agnostic
// filter linked to it (split, loop, trim, concat…). Left alone, that made the
// whole graph yuv444p and added a 444→420 conversion of every output frame
// before x264 (a third of a static slideshow's render time). So the overlap
// frames alone are converted, explicitly (scale), into and out of xfade.
import type { RenderSpec } from '../../engine/spec.js';
import type { Slot } from '../../engine/timeline.js';
import type { Graph } from './graph.js';
import { renumber, type SceneParts } from './scene.js';

/** xfade's pixel format; everything else in the graph stays yuv420p. */
export const XFADE_FORMAT = 'yuv444p';

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
      const out = g.label(`xf${i}_`);
      const [a, b] = [g.label(`xa${i}_`), g.label(`xb${i}_`)];
      g.add(`${parts[i - 1]!.tail!}${convertTo(XFADE_FORMAT)}${a}`);
      g.add(`${parts[i]!.head!}${convertTo(XFADE_FORMAT)}${b}`);
      // Frame k of the blend is xfade's frame k from offset 0: progress 1 − k/overlap,
      // the frames the same transition produced over whole scenes.
      g.add(`${a}${b}xfade=transition=${scene.transition!.type}:duration=${overlap / fps}:offset=0,trim=end_frame=${overlap},${convertTo('yuv420p')},${renumber(fps)}${out}`);
      segments.push(out);
    }
    segments.push(parts[i]!.own);
  });
  if (segments.length === 1) return segments[0]!;
  const out = g.label('joined');
  g.add(`${segments.join('')}concat=n=${segments.length}:v=1:a=0,${renumber(fps)}${out}`);
  return out;
}

/** Frames of scene i's end that the next scene's transition covers. */
export const overlapOut = (timeline: Slot[], i: number): number => timeline[i + 1]?.overlap ?? 0;
