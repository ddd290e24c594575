// The MP4's encoding options, the poster and the animated preview. Web-safe:
// H.264 high, yuv420p, AAC, faststart. The poster and the preview are cut from
// the graph's own frames (more outputs of the main run) instead of decoding the
// finished file again: measured, the preview as a third output costs about half
// the CPU of a second pass over the MP4 (docs/render-spec.md).
import { totalSeconds, type RenderSpec } from '../../engine/spec.js';

/** CRF when the spec gives no quality: x264's own default. */
export const DEFAULT_QUALITY = 23;

export function mp4Options(spec: RenderSpec, preset: string): string[] {
  const { fps } = spec.output;
  return [
    // Global options may sit anywhere. -loglevel error hides the stats line
    // unless -stats asks for it; every 0.25 s gives progress on short renders too.
    '-hide_banner', '-loglevel', 'error', '-stats', '-stats_period', '0.25',
    '-map', '[vout]', '-map', '[aout]',
    // A second stop, computed from the spec alone, not from the planner: even a
    // wrong plan cannot run past the spec's length (the frame check after the
    // render then fails it). Not the planned count itself: ffmpeg 5.1 closes
    // every stream of the file once one reaches its -frames, cutting the audio tail.
    '-frames:v', String(Math.ceil(totalSeconds(spec) * fps) + 1),
    '-c:v', 'libx264', '-preset', spec.output.x264Preset ?? preset, '-crf', String(spec.output.quality ?? DEFAULT_QUALITY),
    '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-r', String(fps),
    '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
    '-movflags', '+faststart', '-f', 'mp4',
  ];
}

export const posterOptions = (): string[] => ['-map', '[poster]', '-frames:v', '1', '-q:v', '3', '-update', '1', '-f', 'image2'];

/**
 * Which frame is the poster: the one at 1 s, or the middle frame of a shorter
 * video; always a frame that exists (a one-frame video has only frame 0).
 */
export function posterFrame(frames: number, fps: number): number {
  return Math.min(fps, Math.floor((frames - 1) / 2));
}

/** posterFrame in seconds. */
export function posterSeconds(frames: number, fps: number): number {
  return posterFrame(frames, fps) / fps;
}

/** output.preview's defaults, and the preview's frame rate (or the video's, if lower). */
export const PREVIEW_DEFAULTS = { seconds: 3, width: 320, fps: 12 } as const;

/** What the preview shows: the video's first `sourceFrames` frames at `fps`, `width` wide (height keeps the aspect). */
export type PreviewPlan = { sourceFrames: number; fps: number; width: number; frames: number; seconds: number };

/** The preview the spec asks for (undefined: none), for a video of `frames` frames `width` wide. */
export function previewPlan(spec: RenderSpec, frames: number, width: number): PreviewPlan | undefined {
  const asked = spec.output.preview;
  if (!asked) return undefined;
  const videoFps = spec.output.fps;
  const sourceFrames = Math.max(1, Math.min(frames, Math.round((asked.seconds ?? PREVIEW_DEFAULTS.seconds) * videoFps)));
  const fps = Math.min(PREVIEW_DEFAULTS.fps, videoFps);
  const seconds = sourceFrames / videoFps;
  return {
    sourceFrames,
    fps,
    // Never wider than the video (the schema checks an explicit width; the default follows a narrow video).
    width: Math.min(asked.width ?? PREVIEW_DEFAULTS.width, width),
    // What the fps filter leaves: one frame per 1/fps started.
    frames: Math.max(1, Math.ceil(seconds * fps - 1e-9)),
    seconds,
  };
}

/** The preview's chain from `from` to [preview]: the start trimmed, resampled to its fps, scaled down. */
export function previewChain(from: string, p: PreviewPlan): string {
  return `${from}trim=end_frame=${p.sourceFrames},fps=${p.fps},scale=${p.width}:-2:flags=bicubic,format=yuv420p[preview]`;
}

/**
 * A looping animated WebP (libwebp_anim). -frames:v is a second stop beside the
 * trim; compression level 3 of 6 is most of level 4's size at about 2/3 of its time.
 */
export const previewOptions = (p: PreviewPlan): string[] => [
  '-map', '[preview]', '-frames:v', String(p.frames + 1),
  '-c:v', 'libwebp_anim', '-loop', '0', '-q:v', '70', '-compression_level', '3', '-f', 'webp',
];
