// Text layers as drawtext filters. Text always reaches ffmpeg through a file
// (no filtergraph escaping of user text) with expansion=none (no %{…}
// evaluation), and is wrapped here, since drawtext does not wrap.
import { join } from 'node:path';
import type { FontName, TextLayer } from '../../engine/spec.js';
import type { PlanOptions } from './types.js';

/**
 * Quote a value (a path) for a filter option. Two parsers read it: the filter's
 * option parser (splits on `:`, honours '…') and, before it, the graph parser
 * (splits on `[],;`, honours '…' and \): quote for the first, escape for the second.
 */
export function filterValue(value: string): string {
  const quoted = `'${value.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/[\\'[\],;]/g, '\\$&');
}

/** `#rrggbb` → `0xrrggbb`, which needs no quoting in a filtergraph; names pass through. */
export const ffmpegColor = (color: string) => color.replace(/^#/, '0x');

/**
 * drawtext does not wrap. Break greedily at spaces (or anywhere in CJK text),
 * counting a CJK character as one em and other characters as about half.
 */
export function wrapCaption(text: string, maxWidthPx: number, fontSize: number): string {
  const maxEm = maxWidthPx / fontSize;
  const em = (ch: string) => (/[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 1 : 0.55);
  const lines: string[] = [];
  // eslint-disable-next-line no-control-regex
  for (const paragraph of text.replace(/[\x00-\x09\x0b-\x1f\x7f]/g, ' ').split('\n')) {
    let line = '';
    let width = 0;
    let lastSpace = -1;
    for (const ch of paragraph) {
      if (width + em(ch) > maxEm && line.length > 0) {
        // Prefer breaking at the last space; otherwise break right here.
        const cut = lastSpace > 0 ? lastSpace : line.length;
        lines.push(line.slice(0, cut).trimEnd());
        line = line.slice(cut).trimStart();
        width = [...line].reduce((w, c) => w + em(c), 0);
        lastSpace = -1;
      }
      if (ch === ' ') lastSpace = line.length;
      line += ch;
      width += em(ch);
    }
    lines.push(line.trimEnd());
  }
  return lines.join('\n');
}

/** The default text size: 1/13 of the frame height (a caption of version 1). */
export const defaultFontSize = (height: number) => Math.max(10, Math.round(height / 13));

/** A scene's caption is a text layer: bottom, white on a translucent black box. */
export function captionLayer(text: string, height: number): TextLayer {
  return { text, position: 'bottom', box: { color: 'black', opacity: 0.55, padding: Math.round(defaultFontSize(height) / 2) } };
}

/** drawtext's x and y for a position: keywords keep a margin (1/20 of the width, 1/12 of the height). */
function placement(position: TextLayer['position']): { x: string; y: string } {
  if (position === undefined) return placement('bottom');
  if (typeof position === 'object') return { x: `w*${position.x}`, y: `h*${position.y}` };
  const x = position.endsWith('left') ? 'w/20' : position.endsWith('right') ? 'w-text_w-w/20' : '(w-text_w)/2';
  const y = position.startsWith('top') ? 'h/12' : position.startsWith('bottom') ? 'h-text_h-h/12' : '(h-text_h)/2';
  return { x, y };
}

export type TextFile = { path: string; text: string };

/**
 * One drawtext filter for a layer; its text goes to a file in workDir
 * (returned, for the runner to write). `key` names the file uniquely.
 */
export function drawText(layer: TextLayer, key: string, frame: { width: number; height: number }, opts: Pick<PlanOptions, 'workDir' | 'fontFile' | 'fonts'>): { filter: string; file: TextFile } {
  const size = layer.size ?? defaultFontSize(frame.height);
  const path = join(opts.workDir, `text-${key}.txt`);
  const file = { path, text: wrapCaption(layer.text, frame.width * (layer.maxWidth ?? 0.9), size) };
  const font = fontFile(layer.font, opts);
  const { x, y } = placement(layer.position);
  let filter =
    `drawtext=fontfile=${filterValue(font)}:textfile=${filterValue(path)}:expansion=none` +
    `:fontsize=${size}:fontcolor=${ffmpegColor(layer.color ?? 'white')}:line_spacing=${Math.round(size / 4)}`;
  if (layer.stroke) filter += `:borderw=${layer.stroke.width}:bordercolor=${ffmpegColor(layer.stroke.color)}`;
  if (layer.box)
    filter += `:box=1:boxcolor=${ffmpegColor(layer.box.color)}@${layer.box.opacity ?? 0.55}:boxborderw=${layer.box.padding ?? Math.round(size / 2)}`;
  filter += `:x=${x}:y=${y}`;
  return { filter, file };
}

function fontFile(font: FontName | undefined, opts: Pick<PlanOptions, 'fontFile' | 'fonts'>): string {
  return (font && opts.fonts?.[font]) || opts.fontFile;
}
