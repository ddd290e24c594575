// Checks shared by the render suites (test/render-layers.test.ts, test/clips.test.ts).
import assert from 'node:assert/strict';
import { outputSize, totalSeconds, type RenderSpec } from '../engine/spec.js';
import { probe } from '../worker/ffmpeg.js';

/** Size, fps, H.264 + AAC, and every stream within one frame of the spec's length. */
export async function assertMatches(path: string, spec: RenderSpec) {
  const { width, height } = outputSize(spec.output);
  const info = await probe(path);
  assert.deepEqual([info.video?.codec, info.video?.width, info.video?.height, info.video?.fps, info.audio?.codec], ['h264', width, height, spec.output.fps, 'aac']);
  const ms = totalSeconds(spec) * 1000;
  const frame = 1000 / spec.output.fps;
  for (const [what, got] of [['file', info.durationMs], ['video', info.video?.durationMs ?? 0], ['audio', info.audio?.durationMs ?? 0]] as const)
    assert.ok(Math.abs(got - ms) <= frame + 1, `${what} lasts ${got} ms, spec ${ms} ms`);
  assert.equal(info.video?.frames, Math.round(totalSeconds(spec) * spec.output.fps));
}
