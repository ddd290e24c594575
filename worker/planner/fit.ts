// Images: each distinct file is decoded once, then shaped into every form the
// spec uses it in (a "look": cover, contain or contain-blur at the output size,
// twice that for a Ken Burns scene, an overlay's size and opacity). Small
// images are decoded by the main run; the rest in fit passes of their own,
// which bound memory: ffmpeg 5.1 configures a graph only once every input has
// delivered a frame, so images decoded by the main run are all in memory at
// once (30 distinct 8 MP photos took 1.5 GB that way).
import { join } from 'node:path';
import { RenderError } from '../../engine/errors.js';
import { WHITELIST, type Graph } from './graph.js';
import type { FitPass, PlanAssets } from './types.js';

export type Fit = 'cover' | 'contain' | 'contain-blur';

/** A form of an image: a frame of `width`×`height` (yuv420p), or an overlay at most `width` wide with alpha. */
export type Look =
  | { kind: 'frame'; fit: Fit; width: number; height: number }
  | { kind: 'overlay'; width: number; maxHeight: number; opacity: number };

/** Images up to this many pixels in all are decoded by the main run (five 1600×900 photos are 7.2 MP). */
export const INLINE_PIXELS_DEFAULT = 16e6;

const lookKey = (look: Look) => JSON.stringify(look);

/**
 * The filters turning one decoded image into `look`, ending in its pixel
 * format. cover is exactly the chain every spec of version 1 rendered with.
 */
export function lookChain(look: Look, from: string, to: string, g: { label(p: string): string }): string[] {
  if (look.kind === 'overlay') {
    const fade = look.opacity < 1 ? `,colorchannelmixer=aa=${+look.opacity.toFixed(3)}` : '';
    return [`${from}scale=w=${look.width}:h=${look.maxHeight}:force_original_aspect_ratio=decrease,format=rgba${fade}${to}`];
  }
  const { width: w, height: h } = look;
  const cover = `scale=${w}:${h}:force_original_aspect_ratio=increase,crop=${w}:${h}`;
  const contain = `scale=${w}:${h}:force_original_aspect_ratio=decrease:force_divisible_by=2`;
  if (look.fit === 'cover') return [`${from}${cover},format=yuv420p${to}`];
  if (look.fit === 'contain') return [`${from}${contain},pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:black,format=yuv420p${to}`];
  // contain-blur: the image over a blurred, darkened copy of itself that covers the frame.
  // The blur runs on a quarter-size copy: the same look for a sixteenth of the work.
  const [a, b, bg, fg] = [g.label('cb'), g.label('cb'), g.label('cb'), g.label('cb')];
  const small = `scale=${Math.max(2, Math.round(w / 8) * 2)}:${Math.max(2, Math.round(h / 8) * 2)}`;
  return [
    `${from}split=2${a}${b}`,
    `${a}${cover},${small},boxblur=lr='min(8,min(w,h)/2-1)':lp=2:cr='min(8,min(cw,ch)/2-1)':cp=2,eq=brightness=-0.08,scale=${w}:${h},format=yuv420p${bg}`,
    `${b}${contain}${fg}`,
    `${bg}${fg}overlay=(W-w)/2:(H-h)/2:format=yuv420,format=yuv420p${to}`,
  ];
}

/** Where each use of an image gets its frame from. */
export class ImageLooks {
  private readonly wanted = new Map<string, Map<string, { look: Look; uses: string[] }>>();

  constructor(private readonly g: Graph) {}

  /** A label that will carry one frame of `ref` in `look` (one label per use). */
  use(ref: string, look: Look): string {
    const looks = this.wanted.get(ref) ?? new Map<string, { look: Look; uses: string[] }>();
    this.wanted.set(ref, looks);
    const entry = looks.get(lookKey(look)) ?? { look, uses: [] };
    looks.set(lookKey(look), entry);
    const label = this.g.label('img');
    entry.uses.push(label);
    return label;
  }

  /**
   * Decodes every image used: images in order while their probed pixels fit
   * in `inlinePixels` as inputs of the main run, the others (and any whose
   * size the probe did not give) in fit passes whose outputs the main run reads.
   */
  resolve(assets: PlanAssets, opts: { workDir: string; maxPixels: number; inlinePixels: number }): FitPass[] {
    const fits: FitPass[] = [];
    let inlined = 0;
    for (const [ref, looks] of this.wanted) {
      const asset = assets.get(ref);
      if (!asset) throw new Error(`asset ${ref} was not fetched before rendering`);
      if (asset.kind !== 'image') throw new RenderError('asset_invalid', `${ref} is not an image`, false);
      const decoder = { path: asset.path, ref, options: [...WHITELIST, '-f', 'image2', '-pattern_type', 'none', '-max_pixels', String(opts.maxPixels)] };
      const pixels = asset.width && asset.height ? asset.width * asset.height : Infinity;
      const entries = [...looks.values()];
      if (inlined + pixels <= opts.inlinePixels) {
        inlined += pixels;
        // setsar=1 first: what a fit pass's raw frame (which has no aspect ratio) comes back with.
        const decoded = this.g.input(decoder, 'v');
        const forms = this.g.fanOut(decoded, entries.length, 'dec');
        entries.forEach((e, k) => {
          const shaped = this.g.label('look');
          for (const c of lookChain(e.look, forms[k]!, shaped, this.g)) this.g.add(c);
          this.g.add(`${shaped}setsar=1${e.uses.length > 1 ? `,split=${e.uses.length}` : ''}${e.uses.join('')}`);
        });
        continue;
      }
      const n = fits.length;
      let count = 0;
      const local = { label: (p: string) => `[${p}${count++}]` };
      const chains: string[] = [];
      const outputs: FitPass['outputs'] = [];
      const forms = entries.length > 1 ? entries.map((_, k) => `[f${k}]`) : ['[0:v]'];
      if (entries.length > 1) chains.push(`[0:v]split=${entries.length}${forms.join('')}`);
      entries.forEach((e, k) => {
        const out = `[o${k}]`;
        chains.push(...lookChain(e.look, forms[k]!, out, local));
        // A frame goes back raw (no header: its size and format are given to the main run's input);
        // an overlay as a PNG, whose size the image's own aspect ratio decides.
        const frame = e.look.kind === 'frame';
        const path = join(opts.workDir, `fitted-${n}-${k}.${frame ? 'yuv' : 'png'}`);
        outputs.push({ label: out, path, options: ['-frames:v', '1', ...(frame ? ['-f', 'rawvideo'] : ['-c:v', 'png', '-f', 'image2', '-update', '1'])] });
        const input = frame
          ? { path, ref, options: [...WHITELIST, '-f', 'rawvideo', '-pixel_format', 'yuv420p', '-video_size', `${e.look.width}x${(e.look as { height: number }).height}`] }
          : { path, ref, options: [...WHITELIST, '-f', 'image2', '-pattern_type', 'none'] };
        const label = this.g.input(input, 'v');
        this.g.add(`${label}setsar=1${e.uses.length > 1 ? `,split=${e.uses.length}` : ''}${e.uses.join('')}`);
      });
      fits.push({ input: decoder, filter: chains.join(';'), outputs });
    }
    return fits;
  }
}
