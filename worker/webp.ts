// Reads the header facts of an animated WebP (RIFF container: VP8X canvas,
// ANIM loop count, one ANMF chunk per frame; or a still image: a bare VP8 /
// VP8L chunk, which is what the encoder writes for one frame). ffprobe of ffmpeg 5.1 names the
// codec but cannot decode animated WebP (no size, no frames), so the worker
// checks the preview it made with this instead (field notes: verify every
// output). Pure: bytes in, facts out.

export type WebpInfo = {
  width: number;
  height: number;
  animated: boolean;
  /** 0 loops forever. */
  loop: number;
  frames: number;
  /** The frames' durations added up. */
  durationMs: number;
};

const u24 = (b: Buffer, at: number) => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);

/** The facts of a WebP file's bytes; throws on anything that is not a well-formed RIFF WebP. */
export function readWebp(bytes: Buffer): WebpInfo {
  if (bytes.length < 12 || bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WEBP')
    throw new Error('not a WebP file');
  const end = Math.min(bytes.length, 8 + bytes.readUInt32LE(4));
  const info: WebpInfo = { width: 0, height: 0, animated: false, loop: 0, frames: 0, durationMs: 0 };
  let still = false;
  for (let at = 12; at + 8 <= end;) {
    const fourcc = bytes.toString('latin1', at, at + 4);
    const size = bytes.readUInt32LE(at + 4);
    const data = at + 8;
    if (data + size > end) throw new Error(`WebP chunk ${fourcc} runs past the end of the file`);
    if (fourcc === 'VP8X' && size >= 10) {
      info.animated = (bytes[data]! & 0x02) !== 0;
      info.width = u24(bytes, data + 4) + 1;
      info.height = u24(bytes, data + 7) + 1;
    } else if (fourcc === 'ANIM' && size >= 6) {
      info.loop = bytes.readUInt16LE(data + 4);
    } else if (fourcc === 'ANMF' && size >= 16) {
      info.frames++;
      info.durationMs += u24(bytes, data + 12);
    } else if (fourcc === 'VP8 ' && size >= 10) {
      // Lossy key frame: 3-byte tag, start code 9d 01 2a, then 14-bit width and height.
      still = true;
      if (!info.width) [info.width, info.height] = [bytes.readUInt16LE(data + 6) & 0x3fff, bytes.readUInt16LE(data + 8) & 0x3fff];
    } else if (fourcc === 'VP8L' && size >= 5) {
      // Lossless: signature 0x2f, then 14 bits width − 1 and 14 bits height − 1.
      still = true;
      const bits = bytes.readUInt32LE(data + 1);
      if (!info.width) [info.width, info.height] = [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
    }
    at = data + size + (size & 1); // chunks are padded to an even size
  }
  if (!info.animated && still) info.frames = 1;
  return info;
}
