// Template: a vertical (1080×1920) promo for stories and reels: a video clip
// with a headline and a subline over it, then a call-to-action card on the
// brand colour. The clip's own sound plays (music, if any, ducks under it).
import { Type } from '@sinclair/typebox';
import { VgenError } from '../engine/errors.js';
import type { RenderSpec, Scene } from '../engine/spec.js';
import { AssetField, ColorField, defineTemplate, TextField } from './types.js';

export const verticalPromo = defineTemplate({
  name: 'vertical-promo',
  description: 'A vertical 1080×1920 promo: a video clip with a headline and a subline, then a call-to-action card; optional music ducked under the clip\'s sound, optional logo.',
  fields: Type.Object(
    {
      clip: AssetField('The video clip (MP4, MOV, WebM).'),
      headline: TextField(80, 'Large text at the top of the clip.'),
      subline: Type.Optional(TextField(120, 'Smaller text on a band at the bottom of the clip.')),
      cta: Type.Optional(TextField(60, 'A call to action shown on a closing card (1.5 s).')),
      clipSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 30, description: 'How long the clip shows (it loops if shorter); default 3.' })),
      clipStart: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, description: 'Seconds into the clip to start from; default 0.' })),
      clipAudio: Type.Optional(Type.Boolean({ description: 'Keep the clip\'s own sound; default true.' })),
      brandColor: Type.Optional(ColorField('The closing card\'s colour.', '#1e3a8a')),
      music: Type.Optional(AssetField('Background music.')),
      logo: Type.Optional(AssetField('A logo (PNG with transparency works best) in the top right corner throughout.')),
    },
    { additionalProperties: false },
  ),
  example: {
    clip: 'assets/clip.mp4',
    headline: 'Summer sale',
    subline: 'Everything up to 50% off, this week only',
    cta: 'Shop now',
    clipSeconds: 2.5,
    music: 'assets/music.mp3',
  },
  build(f) {
    if (f.music && (f.music === f.clip || f.music === f.logo)) throw new VgenError('invalid_request', 'fields.music must be another file than the clip and the logo', 'fields.music');
    if (f.logo && f.logo === f.clip) throw new VgenError('invalid_request', 'fields.logo must be another file than the clip', 'fields.logo');
    const start = f.clipStart ?? 0;
    const scenes: Scene[] = [{
      duration: f.clipSeconds ?? 3,
      background: { video: f.clip, audio: f.clipAudio === false ? 'mute' : 'keep', fill: 'loop', ...(start > 0 && { trim: { from: start } }) },
      texts: [
        { text: f.headline, font: 'sans-bold', size: 110, color: 'white', stroke: { color: 'black', width: 4 }, position: 'top', maxWidth: 0.85 },
        ...(f.subline ? [{ text: f.subline, size: 60, color: 'white', box: { color: 'black', opacity: 0.55, padding: 24 }, position: 'bottom' as const, maxWidth: 0.85 }] : []),
      ],
    }];
    if (f.cta)
      scenes.push({
        duration: 1.5,
        background: { gradient: { type: 'linear', colors: [f.brandColor ?? '#1e3a8a', 'black'], angle: 90 } },
        texts: [{ text: f.cta, font: 'sans-bold', size: 120, color: 'white', position: 'center', maxWidth: 0.85 }],
        transition: { type: 'slideup', duration: 0.5 },
      });
    const spec: RenderSpec = { version: 1, output: { preset: 'vertical', fps: 30 }, scenes };
    if (f.music) spec.audio = { src: f.music, fadeOut: 0.5 };
    if (f.logo) spec.overlays = [{ image: f.logo, position: 'top-right', width: 0.25 }];
    return spec;
  },
});
