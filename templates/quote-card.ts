// Template: a square (1080×1080) quote card: the quote centred in a serif
// face, its author below, on a colour or a two-colour gradient. The bundled
// fonts carry Chinese, Japanese and Korean glyphs.
import { Type } from '@sinclair/typebox';
import type { Scene } from '../engine/spec.js';
import { AssetField, ColorField, defineTemplate, TextField } from './types.js';

export const quoteCard = defineTemplate({
  name: 'quote-card',
  description: 'A square 1080×1080 quote card: a quote and its author on a colour or gradient background; any script the bundled Noto fonts cover, CJK included.',
  fields: Type.Object(
    {
      quote: TextField(200, 'The quote.'),
      author: Type.Optional(TextField(80, 'Who said it, shown below the quote.')),
      background: Type.Optional(Type.Union([
        ColorField('A plain background.', '#0f172a'),
        Type.Object({ gradient: Type.Tuple([ColorField('From (top left).', '#0f172a'), ColorField('To (bottom right).', '#1e3a8a')]) }, { additionalProperties: false }),
      ], { description: 'A colour, or { gradient: [from, to] }; default a dark blue gradient.' })),
      textColor: Type.Optional(ColorField('The text colour; default white.', 'white')),
      font: Type.Optional(Type.Union([Type.Literal('serif'), Type.Literal('sans')], { description: 'Default serif.' })),
      seconds: Type.Optional(Type.Number({ minimum: 1, maximum: 30, description: 'Length of the video; default 5.' })),
      music: Type.Optional(AssetField('Background music.')),
    },
    { additionalProperties: false },
  ),
  example: {
    quote: '千里之行，始于足下。A journey of a thousand miles begins with a single step.',
    author: '老子 Laozi',
    background: { gradient: ['#0f172a', '#7c3aed'] },
    seconds: 3,
  },
  build(f) {
    const bg = f.background ?? { gradient: ['#0f172a', '#1e3a8a'] };
    const background: Scene['background'] = typeof bg === 'string'
      ? { color: bg }
      : { gradient: { type: 'linear', colors: bg.gradient, angle: 45 } };
    const color = f.textColor ?? 'white';
    const font = f.font ?? 'serif';
    return {
      version: 1,
      output: { preset: 'square', fps: 30 },
      scenes: [{
        duration: f.seconds ?? 5,
        background,
        texts: [
          { text: f.quote, font: `${font}-bold`, size: 64, color, position: 'center', maxWidth: 0.8 },
          ...(f.author ? [{ text: `— ${f.author}`, font, size: 44, color, position: 'bottom' as const, maxWidth: 0.8 }] : []),
        ],
      }],
      ...(f.music && { audio: { src: f.music, fadeOut: 1 } }),
    };
  },
});
