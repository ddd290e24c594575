// EXIF (and other metadata) in JPEG and WebP files, read before any ffmpeg
// opens them. ffmpeg 5.1's JPEG and WebP decoders hand EXIF to
// ff_exif_decode_ifd, which turns every IFD entry into text of up to ~5 bytes
// per value byte; entries may all point at the same data, so a 110 KB WebP
// (800 entries × one 100 KB block) made a decode pass peak at 1.6 GB. Pure
// functions: they trust no offset or length beyond the bytes there are.

export const EXIF_LIMITS = {
  /** Value bytes (count × type size) of every IFD entry in the file, together: ~5 MiB of text at most. */
  valueBytes: 1024 * 1024,
  /** IFDs walked per EXIF payload (IFD0, its next-IFD chain, Exif, GPS and Interop IFDs). */
  ifds: 16,
  /** Entries of one IFD (cameras write a few dozen). */
  entriesPerIfd: 1000,
  /** JPEG APPn segments together (EXIF ≤ 64 KB, ICC, XMP, Photoshop's IRB). */
  jpegAppBytes: 4 * 1024 * 1024,
  /** A WebP's ICCP chunks together, and its XMP chunks together. */
  webpChunkBytes: 1024 * 1024,
} as const;

export type ExifLimits = typeof EXIF_LIMITS;

// Bytes per value of TIFF types 1–12 (BYTE … DOUBLE). Other types (0, 13 =
// IFD, unknown ones) count 0: ffmpeg 5.1 stores nothing for them.
const TYPE_SIZE = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8];
// Entries whose value is the offset of another IFD: Exif, GPS, Interop.
const SUB_IFD_TAGS = new Set([0x8769, 0x8825, 0xa005]);
const EXIF_HEADER = Buffer.from('Exif\0\0', 'latin1');

/** Adds up the EXIF value bytes of several payloads (all of one file's). */
export class ExifBudget {
  used = 0;
  constructor(readonly limits: ExifLimits = EXIF_LIMITS) {}

  /** Why this TIFF/EXIF payload is refused (damaged, or over the file's budget), or undefined. */
  add(tiff: Uint8Array): string | undefined {
    const buf = Buffer.from(tiff.buffer, tiff.byteOffset, tiff.byteLength);
    const damaged = (why: string) => `has damaged EXIF metadata (${why})`;
    if (buf.length < 8) return damaged('no TIFF header');
    const order = buf.toString('latin1', 0, 2);
    if (order !== 'II' && order !== 'MM') return damaged('no TIFF header');
    const le = order === 'II';
    const u16 = (at: number) => (le ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
    const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
    if (u16(2) !== 42) return damaged('no TIFF header');
    const queue = [u32(4)];
    const visited = new Set<number>();
    for (let off; (off = queue.shift()) !== undefined; ) {
      if (visited.has(off)) continue; // a loop in the links: each IFD counts once
      if (visited.size >= this.limits.ifds) return damaged(`more than ${this.limits.ifds} IFDs`);
      visited.add(off);
      // Damaged offsets are common in real photos (truncated MakerNotes) and
      // cost ffmpeg nothing it would not read: skip, never refuse, for them.
      if (off + 2 > buf.length) continue;
      const entries = u16(off);
      if (entries > this.limits.entriesPerIfd) return `has an EXIF IFD of ${entries} entries; images may have at most ${this.limits.entriesPerIfd}`;
      // Entries past the end of the payload cannot be read: only whole ones count.
      const end = off + 2 + 12 * Math.min(entries, Math.floor((buf.length - off - 2) / 12));
      for (let e = off + 2; e < end; e += 12) {
        const tag = u16(e);
        if (SUB_IFD_TAGS.has(tag)) {
          const sub = u32(e + 8);
          if (sub !== 0) queue.push(sub);
          continue;
        }
        const bytes = u32(e + 4) * (TYPE_SIZE[u16(e + 2)] ?? 0);
        // A value running past the end still counts in full: ffmpeg's reader
        // loops over the declared count (reading zeros past the end), so the
        // declared size is what its text costs.
        if ((this.used += bytes) > this.limits.valueBytes)
          return `has ${this.used}+ bytes of EXIF values; images may have at most ${this.limits.valueBytes}`;
      }
      // The next-IFD link; a writer may leave it out after the last IFD.
      if (end + 4 <= buf.length) {
        const next = u32(end);
        if (next !== 0) queue.push(next);
      }
    }
    return undefined;
  }
}

/** Why one TIFF/EXIF payload (a PNG's eXIf, a WebP's EXIF) is refused, or undefined. */
export function exifProblem(tiff: Uint8Array, limits: ExifLimits = EXIF_LIMITS): string | undefined {
  return new ExifBudget(limits).add(tiff);
}

/**
 * Why a JPEG's segments are refused, or undefined. Walks the markers from SOI
 * to EOI, skipping the entropy-coded data after each SOS (a progressive JPEG
 * has more segments between its scans, and ffmpeg reads them too): every APP1
 * `Exif\0\0` segment's EXIF counts towards one budget, and APPn segments
 * together may hold at most `jpegAppBytes`. A file that ends early is left to
 * ffprobe. Bytes after EOI are not read.
 */
export function jpegProblem(bytes: Uint8Array, limits: ExifLimits = EXIF_LIMITS): string | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 2 || buf[0] !== 0xff || buf[1] !== 0xd8) return 'is not a JPEG file';
  const exif = new ExifBudget(limits);
  let app = 0;
  for (let at = 2; at < buf.length; ) {
    if (buf[at] !== 0xff) return 'is a damaged JPEG (a segment does not start with a marker)';
    while (buf[at] === 0xff) at++; // fill bytes
    if (at >= buf.length) return undefined;
    const marker = buf[at++]!;
    if (marker === 0xd9) return undefined; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (at + 2 > buf.length) return undefined;
    const length = buf.readUInt16BE(at);
    if (length < 2 || at + length > buf.length) return `is a damaged JPEG (its 0xFF${marker.toString(16).toUpperCase()} segment runs past the end of the file)`;
    const data = buf.subarray(at + 2, at + length);
    at += length;
    if (marker >= 0xe0 && marker <= 0xef) {
      if ((app += length) > limits.jpegAppBytes) return `has ${app}+ bytes of APPn metadata segments; JPEG images may have at most ${limits.jpegAppBytes}`;
      if (marker === 0xe1 && data.subarray(0, 6).equals(EXIF_HEADER)) {
        const problem = exif.add(data.subarray(6));
        if (problem) return problem;
      }
    }
    if (marker === 0xda) {
      // Entropy-coded data: up to the next 0xFF that is not 0xFF00 (a stuffed byte) or a restart marker.
      for (;;) {
        at = buf.indexOf(0xff, at);
        if (at < 0 || at + 1 >= buf.length) return undefined;
        const next = buf[at + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) at += 2;
        else break;
      }
    }
  }
  return undefined;
}

/**
 * Why a WebP's RIFF chunks are refused, or undefined: the RIFF size and every
 * chunk must fit the file; EXIF chunks go through the EXIF budget; ICCP and
 * XMP chunks may each hold at most `webpChunkBytes` together.
 */
export function webpProblem(bytes: Uint8Array, limits: ExifLimits = EXIF_LIMITS): string | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WEBP') return 'is not a WebP file';
  const riff = buf.readUInt32LE(4);
  if (riff < 4 || riff > buf.length - 8) return 'is a damaged WebP (its RIFF size runs past the end of the file)';
  const end = 8 + riff; // bytes after the RIFF are ignored, as decoders do
  const exif = new ExifBudget(limits);
  const other = new Map<string, number>();
  for (let at = 12; at + 8 <= end; ) {
    const type = buf.toString('latin1', at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    if (size > end - at - 8) return `is a damaged WebP (its ${JSON.stringify(type)} chunk runs past the end of the file)`;
    const data = buf.subarray(at + 8, at + 8 + size);
    if (type === 'EXIF') {
      // Some writers keep JPEG's `Exif\0\0` in front of the TIFF data.
      const problem = exif.add(data.subarray(0, 6).equals(EXIF_HEADER) ? data.subarray(6) : data);
      if (problem) return problem;
    } else if (type === 'ICCP' || type === 'XMP ') {
      const total = (other.get(type) ?? 0) + size;
      other.set(type, total);
      if (total > limits.webpChunkBytes) return `has ${total}+ bytes of ${type.trim()} metadata; WebP images may have at most ${limits.webpChunkBytes}`;
    }
    at += 8 + size + (size & 1);
  }
  return undefined;
}
