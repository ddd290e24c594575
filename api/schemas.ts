// Request and response schemas shared by routes and the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox';

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
        durationMs: Type.Integer(),
        width: Type.Integer(),
        height: Type.Integer(),
      }),
      Type.Null(),
    ]),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  },
  { $id: 'Video', title: 'Video' },
);
export type VideoBody = Static<typeof VideoBody>;
