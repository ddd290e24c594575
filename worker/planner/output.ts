// The MP4's encoding options and the poster. Web-safe: H.264 high, yuv420p,
// AAC, faststart. The poster is cut from the graph's own frames (a second
// output of the main run) instead of decoding the finished file again.
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
