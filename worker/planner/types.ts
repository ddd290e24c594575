// The shapes the planner hands to the runner (worker/ffmpeg.ts): ffmpeg runs
// described as data, decided without running anything.
import type { Slot } from '../../engine/timeline.js';
import type { FontName, RenderSpec } from '../../engine/spec.js';
import type { LocalAsset } from '../assets.js';
import type { PreviewPlan } from './output.js';

export type FfmpegInput = { path: string; options: string[]; /** the spec's asset reference */ ref: string };

/**
 * One image decoded once, in a run of its own, and written in every form the
 * main run needs (a raw frame at the output size, a PNG for an overlay…).
 */
export type FitPass = {
  input: FfmpegInput;
  /** The graph turning input 0 into the outputs' labels. */
  filter: string;
  outputs: { label: string; options: string[]; path: string }[];
};

/** The audio measured alone first (EBU R128 integrated loudness), so the main run can bring it to the target. */
export type LoudnessPass = { inputs: FfmpegInput[]; filter: string; outputOptions: string[] };

export type PlanOptions = {
  workDir: string;
  /** The default font (sans), a CJK font found by findFont(). */
  fontFile: string;
  /** Files of the other bundled fonts; a font missing here is drawn with fontFile. */
  fonts?: Partial<Record<FontName, string>>;
  /** x264 preset when the spec names none; default veryfast. */
  preset?: string;
  /** Largest image (width × height) a decoder may accept, the second guard after the asset probe. */
  maxPixels?: number;
  /**
   * Images whose probed pixels add up to at most this many are decoded by the
   * main run itself (one decoder each); the rest in fit passes of their own.
   */
  inlinePixels?: number;
  /** The music's integrated loudness (LUFS) measured by the loudness pass; absent: plan that pass. */
  loudness?: number;
};

export type PlanAssets = Map<string, LocalAsset>;

export type RenderPlan = {
  width: number;
  height: number;
  fps: number;
  /** Run first, two at a time. */
  fits: FitPass[];
  /** Run first when present; its result goes back into plan() as options.loudness. */
  loudness?: LoudnessPass;
  /** The main run's inputs. */
  inputs: FfmpegInput[];
  filter: string;
  /** Options of the MP4 output (maps [vout] and [aout]). */
  outputOptions: string[];
  /** Options of the second output, the JPEG poster (maps [poster]). */
  posterOptions: string[];
  /** The third output when the spec asks for it: the animated WebP preview (options map [preview]). */
  preview?: PreviewPlan & { options: string[] };
  /** Files drawtext reads its text from; write them before running. */
  textFiles: { path: string; text: string }[];
  timeline: Slot[];
  frames: number;
  seconds: number;
  spec: RenderSpec;
};
