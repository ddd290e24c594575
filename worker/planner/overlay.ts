// Overlays: an image (a logo, a watermark) placed over the frame at a
// position, a width and an opacity. Its look (size, opacity) is made once
// (worker/planner/fit.ts); the overlay filter keeps its one frame for the
// whole stream (eof_action=repeat).
import type { OverlayLayer } from '../../engine/spec.js';
import type { Graph } from './graph.js';
import type { ImageLooks } from './fit.js';

/** overlay's x and y: keywords keep a margin of 4 % of the shorter side. */
export function overlayPlacement(position: OverlayLayer['position'], margin: number): { x: string; y: string } {
  if (position === undefined) return overlayPlacement('bottom-right', margin);
  if (typeof position === 'object') return { x: `W*${position.x}`, y: `H*${position.y}` };
  const x = position.endsWith('left') ? `${margin}` : position.endsWith('right') ? `W-w-${margin}` : '(W-w)/2';
  const y = position.startsWith('top') ? `${margin}` : position.startsWith('bottom') ? `H-h-${margin}` : '(H-h)/2';
  return { x, y };
}

export function overlayAt(label: string, overlay: OverlayLayer, ctx: { g: Graph; looks: ImageLooks; width: number; height: number }): string {
  const { g, width, height } = ctx;
  const look = ctx.looks.use(overlay.image, {
    kind: 'overlay',
    width: Math.max(2, Math.round(width * (overlay.width ?? 0.2))),
    maxHeight: height,
    opacity: overlay.opacity ?? 1,
  });
  const { x, y } = overlayPlacement(overlay.position, Math.round(Math.min(width, height) * 0.04));
  const out = g.label('ov');
  g.add(`${label}${look}overlay=x=${x}:y=${y}:eof_action=repeat:format=yuv420,format=yuv420p${out}`);
  return out;
}
