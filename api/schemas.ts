// Request and response schemas shared by routes and the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox';
import { LIMITS, RenderSpec } from '../engine/spec.js';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable code from the error catalogue, e.g. invalid_request.' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'The field at fault, e.g. scenes[0].duration.' })),
    }),
  },
  { $id: 'Error', title: 'Error' },
);

export const Credentials = Type.Object(
  {
    email: Type.String({ pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$', maxLength: 254, description: 'an email address' }),
    password: Type.String({ minLength: 8, maxLength: 200 }),
  },
  { additionalProperties: false },
);
export type Credentials = Static<typeof Credentials>;

export const UserBody = Type.Object({ id: Type.String(), email: Type.String(), role: Type.String() });

export const Tokens = Type.Object({
  user: UserBody,
  accessToken: Type.String(),
  refreshToken: Type.String(),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires.' }),
});

export const VideoBody = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('video'),
    status: Type.Union(['queued', 'rendering', 'succeeded', 'failed', 'canceled'].map((s) => Type.Literal(s))),
    progress: Type.Number({ minimum: 0, maximum: 1, description: 'Fraction rendered, 0 to 1.' }),
    visibility: Type.Union([Type.Literal('public'), Type.Literal('private')]),
    createdAt: Type.String({ format: 'date-time' }),
    output: Type.Union([
      Type.Object({
        url: Type.String({ description: 'Absolute URL of the MP4 (H.264 + AAC): permanent for a public video; for a private one a signed URL, minted on each read, that expires (MEDIA_URL_TTL_SECONDS).' }),
        posterUrl: Type.String({ description: 'Absolute URL of a JPEG poster frame (signed and expiring, like url, for a private video).' }),
        previewUrl: Type.Union([Type.String(), Type.Null()], { description: 'Absolute URL of the short looping animated WebP preview the spec asked for (output.preview), signed and expiring like url for a private video; null when the spec asked for none.' }),
        durationMs: Type.Integer(),
        width: Type.Integer(),
        height: Type.Integer(),
        cached: Type.Boolean({ description: 'true when this video reused the files of an earlier render of the same spec and asset bytes (the render cache) instead of rendering again.' }),
      }),
      Type.Null(),
    ]),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  },
  { $id: 'Video', title: 'Video' },
);
export type VideoBody = Static<typeof VideoBody>;

/**
 * The body of POST /v1/videos: the render spec's fields, plus an optional
 * callbackUrl that is not part of the spec (api/webhook-delivery.ts).
 */
export const VideoSubmission = Type.Object(
  {
    ...RenderSpec.properties,
    callbackUrl: Type.Optional(Type.String({
      minLength: 1,
      maxLength: LIMITS.maxUrlChars,
      pattern: '^https://[^\\s]+$',
      description: 'an https:// URL that receives a signed POST of the video object when it succeeds, fails or is canceled',
    })),
  },
  { additionalProperties: false, $id: 'VideoSubmission', title: 'VideoSubmission' },
);
