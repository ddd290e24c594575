// Template: a photo slideshow, each photo slowly zooming (Ken Burns, in and
// out by turns), optional captions under each, cross-fades, optional music.
import { Type } from '@sinclair/typebox';
import { VgenError } from '../engine/errors.js';
import { LIMITS, type Scene } from '../engine/spec.js';
import { AssetField, defineTemplate } from './types.js';

const FADE = 0.5;

export const photoSlideshow = defineTemplate({
  name: 'photo-slideshow',
  description: 'Photos one after another (720p, 30 fps), each slowly zooming in or out, with optional captions, cross-fades and music.',
  fields: Type.Object(
    {
      photos: Type.Array(AssetField('A photo.'), { minItems: 1, maxItems: 20, description: 'The photos, in order.' }),
      captions: Type.Optional(Type.Array(Type.String({ maxLength: LIMITS.maxCaptionChars }), { maxItems: 20, description: 'A caption for each photo, in the same order; an empty string for none.' })),
      music: Type.Optional(AssetField('Background music (MP3, WAV, OGG, FLAC, M4A), looped and faded out at the end.')),
      secondsPerPhoto: Type.Optional(Type.Number({ minimum: 1.5, maximum: 10, description: 'How long each photo shows; default 3.' })),
      kenBurns: Type.Optional(Type.Boolean({ description: 'Zoom each photo slowly; default true.' })),
    },
    { additionalProperties: false },
  ),
  example: {
    photos: ['assets/photo.jpg', 'assets/photo2.jpg'],
    captions: ['Morning on the lake', 'And the evening after'],
    music: 'assets/music.mp3',
    secondsPerPhoto: 2,
  },
  build(f) {
    if (f.captions && f.captions.length > f.photos.length)
      throw new VgenError('invalid_request', `fields.captions has ${f.captions.length} captions for ${f.photos.length} photos`, 'fields.captions');
    if (f.music && f.photos.includes(f.music)) throw new VgenError('invalid_request', 'fields.music is also one of fields.photos', 'fields.music');
    const seconds = f.secondsPerPhoto ?? 3;
    const scenes = f.photos.map((photo, i): Scene => {
      const caption = f.captions?.[i]?.trim();
      return {
        duration: seconds,
        background: { image: photo, ...(f.kenBurns !== false && { kenBurns: { zoom: i % 2 === 0 ? 'in' : 'out' } }) },
        ...(caption && { caption: { text: caption } }),
        ...(i > 0 && { transition: { type: 'fade', duration: FADE } }),
      };
    });
    return {
      version: 1,
      output: { preset: '720p', fps: 30 },
      scenes,
      ...(f.music && { audio: { src: f.music, fadeOut: 1 } }),
    };
  },
});
