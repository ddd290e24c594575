// Where each scene sits on the output timeline, in whole frames. Pure, so the
// API (checkSpecRules), the worker (the filter graph) and the tests all use the
// same arithmetic.
import { VgenError } from './errors.js';
import type { RenderSpec } from './spec.js';

/**
 * One scene on the timeline, in frames: it covers [start, end) and its first
 * `overlap` frames blend with the end of the previous scene (its transition).
 */
export type Slot = { start: number; end: number; frames: number; overlap: number };

/**
 * Every boundary (a scene's end, a transition's start) is rounded from its
 * exact time, so rounding never adds up across scenes: the total stays within
 * half a frame of totalSeconds(spec). Rounding is monotonic, so a stretch that
 * lasts at least one frame in seconds keeps at least one whole frame; that is
 * why the spec rule "a scene lasts at least one frame beyond its transitions"
 * (checkSpecRules) guarantees every scene frames of its own.
 *
 * Throws spec_invalid if a scene would still own no frame: such a scene once
 * became a 0-frame segment, `loop=-1` in the graph, and a render that never ended.
 */
export function planTimeline(spec: RenderSpec): Slot[] {
  const fps = spec.output.fps;
  // The epsilon makes a boundary that lands on half a frame round the same way
  // whatever floating-point noise the additions left in it.
  const frameAt = (seconds: number) => Math.round(seconds * fps + 1e-9);
  let seconds = 0;
  const slots = spec.scenes.map((scene, i): Slot => {
    // The first scene has nothing to transition from (checkSpecRules refuses it).
    const t = i > 0 ? (scene.transition?.duration ?? 0) : 0;
    const prevEnd = frameAt(seconds);
    const start = frameAt(seconds - t);
    // Same association as totalSeconds(), so a total landing on half a frame rounds the same way.
    seconds = seconds + scene.duration - t;
    const end = frameAt(seconds);
    return { start, end, frames: end - start, overlap: prevEnd - start };
  });
  slots.forEach((_, i) => {
    if (ownFrames(slots, i) < 1) throw sceneTooShort(spec, i);
  });
  return slots;
}

/** The refusal of a scene that would own no frame, naming its duration. */
export function sceneTooShort(spec: RenderSpec, i: number): VgenError {
  const { fps } = spec.output;
  const field = `scenes[${i}].duration`;
  const tIn = i > 0 ? (spec.scenes[i]!.transition?.duration ?? 0) : 0;
  const tOut = spec.scenes[i + 1]?.transition?.duration ?? 0;
  return new VgenError(
    'spec_invalid',
    `${field} is too short: at ${fps} fps every scene must last at least one frame (${+(1 / fps).toFixed(4)} s) longer than its transitions (${tIn} s in, ${tOut} s out)`,
    field,
  );
}

/** Frames of scene i that no transition covers. */
export function ownFrames(slots: Slot[], i: number): number {
  return slots[i]!.frames - slots[i]!.overlap - (slots[i + 1]?.overlap ?? 0);
}

/** Frames in the whole video. */
export const totalFrames = (slots: Slot[]): number => slots.at(-1)?.end ?? 0;
