// The render spec, version 1: the one schema the API validates, the CLI checks
// before sending and the worker trusts. Later versions extend it; they never
// change the meaning of a field that exists here.
import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler';
import { isColor } from './colors.js';
import { VgenError } from './errors.js';
import { hostRefusal, STRICT_POLICY, type OutboundPolicy } from './outbound-policy.js';
import { findBadString } from './strings.js';
import { planTimeline, sceneTooShort } from './timeline.js';

export { isPublicAddress } from './address.js';

export const LIMITS = {
  minSide: 64,
  maxSide: 1920,
  maxFps: 60,
  maxScenes: 30,
  minSceneSeconds: 0.5,
  maxSceneSeconds: 60,
  maxTotalSeconds: 300,
  maxCaptionChars: 200,
  maxTransitionSeconds: 5,
  maxUrlChars: 2048,
  maxTexts: 8,
  maxOverlays: 8,
  maxAudioSeconds: 3600,
  maxAudioFadeSeconds: 10,
  /** Where a clip's trim may start or end, in seconds into its file. */
  maxClipSeconds: 3600,
  minPreviewSeconds: 1,
  maxPreviewSeconds: 6,
  maxPreviewWidth: 640,
} as const;

export const TRANSITIONS = [
  'fade', 'dissolve', 'wipeleft', 'wiperight', 'wipeup', 'wipedown',
  'slideleft', 'slideright', 'slideup', 'slidedown', 'circleopen', 'circleclose', 'radial', 'pixelize',
] as const;

/** Named output sizes: `output.preset` instead of width and height. */
export const OUTPUT_PRESETS = {
  '720p': { width: 1280, height: 720 },
  '1080p': { width: 1920, height: 1080 },
  vertical: { width: 1080, height: 1920 },
  square: { width: 1080, height: 1080 },
} as const;

export const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'] as const;

/** Fonts a text layer may name; each has Chinese, Japanese and Korean glyphs (Noto CJK, worker/fonts.ts). */
export const FONTS = ['sans', 'sans-bold', 'serif', 'serif-bold'] as const;
export type FontName = (typeof FONTS)[number];

export const POSITIONS = ['top-left', 'top', 'top-right', 'left', 'center', 'right', 'bottom-left', 'bottom', 'bottom-right'] as const;

/** `https://…`, a file bundled in the repo's `assets/` folder, or `upload://<id>`: one of the caller's own uploads (engine/uploads.ts). */
export const ASSET_PATTERN = '^(https://[^\\s]+|assets/[A-Za-z0-9][A-Za-z0-9._-]{0,127}|upload://upl_[0-9a-z]{25})$';

const Asset = Type.String({
  minLength: 1,
  maxLength: LIMITS.maxUrlChars,
  pattern: ASSET_PATTERN,
  description: 'An https:// URL, assets/<name> for a file bundled with vgen, or upload://<id> for one of your own uploads (POST /v1/uploads).',
});

// The pattern is the shape; the `color` format checks the name against the
// list ffmpeg knows (engine/colors.ts), so a typo is a 400, not a failed render.
FormatRegistry.Set('color', isColor);
const Color = Type.String({
  pattern: '^(#[0-9a-fA-F]{6}|[A-Za-z]{3,20})$',
  format: 'color',
  description: '#rrggbb, or a color name ffmpeg knows (any case) such as black or navy.',
  examples: ['#1e3a8a', 'black'],
});

const Side = (name: string) =>
  Type.Integer({ minimum: LIMITS.minSide, maximum: LIMITS.maxSide, multipleOf: 2, description: `${name} in pixels (even: H.264 yuv420p needs it).` });

const Fraction = (description: string) => Type.Number({ minimum: 0, maximum: 1, description });
const Literals = <T extends string>(values: readonly T[], description?: string) =>
  Type.Union(values.map((v) => Type.Literal(v)), description ? { description } : {});

/** A short looping animated WebP of the video's start (`output.previewUrl`), made from the main run's own frames. */
export const Preview = Type.Object(
  {
    seconds: Type.Optional(Type.Number({ minimum: LIMITS.minPreviewSeconds, maximum: LIMITS.maxPreviewSeconds, description: 'How much of the start it shows; default 3 (the whole video if shorter).' })),
    width: Type.Optional(Type.Integer({ minimum: LIMITS.minSide, maximum: LIMITS.maxPreviewWidth, multipleOf: 2, description: "Pixels, even, at most the video's width; default 320 (or the video's width if narrower). The height keeps the video's aspect." })),
  },
  { additionalProperties: false, description: 'Also make a short animated WebP preview (about 12 fps, looping).' },
);

export const Output = Type.Object(
  {
    width: Type.Optional(Side('Width')),
    height: Type.Optional(Side('Height')),
    preset: Type.Optional(Literals(Object.keys(OUTPUT_PRESETS) as (keyof typeof OUTPUT_PRESETS)[], 'A named size instead of width and height: 720p (1280×720), 1080p (1920×1080), vertical (1080×1920), square (1080×1080).')),
    fps: Type.Integer({ minimum: 1, maximum: LIMITS.maxFps }),
    quality: Type.Optional(Type.Integer({ minimum: 18, maximum: 32, description: 'x264 CRF: lower is better and larger; default 23.' })),
    x264Preset: Type.Optional(Literals(X264_PRESETS, "x264 speed preset; default the worker's X264_PRESET (veryfast).")),
    preview: Type.Optional(Preview),
  },
  { additionalProperties: false },
);

export const KenBurns = Type.Object(
  {
    zoom: Literals(['in', 'out'] as const),
    pan: Type.Optional(Literals(['left', 'right', 'up', 'down'] as const)),
  },
  { additionalProperties: false, description: 'A slow zoom (and pan) across the scene.' },
);

/** A video clip as a scene's background: trimmed, fitted like an image, looped or frozen to fill the scene. */
export const Clip = Type.Object(
  {
    video: Asset,
    trim: Type.Optional(
      Type.Object(
        { from: Type.Number({ minimum: 0, maximum: LIMITS.maxClipSeconds }), to: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: LIMITS.maxClipSeconds })) },
        { additionalProperties: false, description: 'The part of the clip to show (seconds into the file); default all of it.' },
      ),
    ),
    audio: Type.Optional(Literals(['keep', 'mute'] as const, 'keep mixes the clip\'s own sound into the soundtrack (the music ducks under it); mute (default) drops it.')),
    fill: Type.Optional(Literals(['loop', 'freeze'] as const, 'When the clip is shorter than the scene: loop it (default) or hold its last frame.')),
    fit: Type.Optional(Literals(['cover', 'contain', 'contain-blur'] as const, 'As for an image; default cover.')),
  },
  { additionalProperties: false },
);

export const Background = Type.Union([
  Type.Object({ color: Color }, { additionalProperties: false }),
  Type.Object(
    {
      gradient: Type.Object(
        {
          type: Literals(['linear', 'radial'] as const),
          colors: Type.Tuple([Color, Color]),
          angle: Type.Optional(Type.Number({ minimum: 0, maximum: 360, description: 'Degrees, linear only: 0 runs left to right, 90 top to bottom; default 90.' })),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      image: Asset,
      fit: Type.Optional(Literals(['cover', 'contain', 'contain-blur'] as const, 'cover (default) fills the frame and crops; contain shows the whole image on black; contain-blur on a blurred copy of itself.')),
      kenBurns: Type.Optional(KenBurns),
    },
    { additionalProperties: false },
  ),
  Clip,
]);

const Position = Type.Union([
  Literals(POSITIONS),
  Type.Object({ x: Fraction('From the left edge, a fraction of the width.'), y: Fraction('From the top edge, a fraction of the height.') }, { additionalProperties: false }),
]);

export const Text = Type.Object(
  {
    text: Type.String({ minLength: 1, maxLength: LIMITS.maxCaptionChars }),
    font: Type.Optional(Literals(FONTS)),
    size: Type.Optional(Type.Integer({ minimum: 8, maximum: 300, description: 'Pixels; default 1/13 of the output height.' })),
    color: Type.Optional(Color),
    stroke: Type.Optional(Type.Object({ color: Color, width: Type.Integer({ minimum: 1, maximum: 20 }) }, { additionalProperties: false })),
    box: Type.Optional(
      Type.Object(
        { color: Color, opacity: Type.Optional(Fraction('Default 0.55.')), padding: Type.Optional(Type.Integer({ minimum: 0, maximum: 200 })) },
        { additionalProperties: false },
      ),
    ),
    position: Type.Optional(Position),
    maxWidth: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1, description: 'Lines wrap at this fraction of the width; default 0.9.' })),
  },
  { additionalProperties: false },
);

export const Overlay = Type.Object(
  {
    image: Asset,
    position: Type.Optional(Position),
    width: Type.Optional(Type.Number({ minimum: 0.01, maximum: 1, description: 'Fraction of the output width; default 0.2.' })),
    opacity: Type.Optional(Fraction('Default 1.')),
  },
  { additionalProperties: false },
);

export const Caption = Type.Object(
  { text: Type.String({ minLength: 1, maxLength: LIMITS.maxCaptionChars }) },
  { additionalProperties: false },
);

export const Transition = Type.Object(
  {
    type: Type.Union(TRANSITIONS.map((t) => Type.Literal(t))),
    duration: Type.Number({ exclusiveMinimum: 0, maximum: LIMITS.maxTransitionSeconds }),
  },
  { additionalProperties: false, description: 'How this scene enters from the previous one; both overlap for `duration` seconds.' },
);

export const Scene = Type.Object(
  {
    duration: Type.Number({ minimum: LIMITS.minSceneSeconds, maximum: LIMITS.maxSceneSeconds, description: 'Seconds.' }),
    background: Background,
    caption: Type.Optional(Caption),
    texts: Type.Optional(Type.Array(Text, { maxItems: LIMITS.maxTexts })),
    overlays: Type.Optional(Type.Array(Overlay, { maxItems: LIMITS.maxOverlays })),
    transition: Type.Optional(Transition),
  },
  { additionalProperties: false },
);

export const RenderSpec = Type.Object(
  {
    version: Type.Literal(1),
    output: Output,
    scenes: Type.Array(Scene, { minItems: 1, maxItems: LIMITS.maxScenes }),
    audio: Type.Optional(
      Type.Object(
        {
          src: Asset,
          start: Type.Optional(Type.Number({ minimum: 0, maximum: LIMITS.maxTotalSeconds, description: 'Seconds into the video at which the music starts; default 0.' })),
          trim: Type.Optional(
            Type.Object(
              { from: Type.Number({ minimum: 0, maximum: LIMITS.maxAudioSeconds }), to: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: LIMITS.maxAudioSeconds })) },
              { additionalProperties: false, description: 'The part of the file to play (seconds); it loops if shorter than the rest of the video.' },
            ),
          ),
          volume: Type.Optional(Type.Number({ minimum: 0, maximum: 2, description: 'Gain after loudness normalization (-16 LUFS); default 1.' })),
          fadeIn: Type.Optional(Type.Number({ minimum: 0, maximum: LIMITS.maxAudioFadeSeconds })),
          fadeOut: Type.Optional(Type.Number({ minimum: 0, maximum: LIMITS.maxAudioFadeSeconds, description: 'Default 1 s (a quarter of a video shorter than 4 s).' })),
        },
        { additionalProperties: false },
      ),
    ),
    overlays: Type.Optional(Type.Array(Overlay, { maxItems: LIMITS.maxOverlays, description: 'Drawn over every frame, transitions included (a logo or watermark).' })),
  },
  { additionalProperties: false, $id: 'RenderSpec', title: 'RenderSpec' },
);

export type RenderSpec = Static<typeof RenderSpec>;
export type Scene = Static<typeof Scene>;
export type TextLayer = Static<typeof Text>;
export type OverlayLayer = Static<typeof Overlay>;
export type ClipLayer = Static<typeof Clip>;

/** The output's size in pixels: its preset's, or its width and height (checkSpecRules makes sure there is exactly one). */
export function outputSize(output: RenderSpec['output']): { width: number; height: number } {
  if (output.preset) return OUTPUT_PRESETS[output.preset];
  return { width: output.width ?? 0, height: output.height ?? 0 };
}

/** Every image a spec shows, with the field that names it (backgrounds, scene overlays, overlays). */
export function imagesOf(spec: RenderSpec): { ref: string; field: string }[] {
  const images: { ref: string; field: string }[] = [];
  spec.scenes.forEach((s, i) => {
    if ('image' in s.background) images.push({ ref: s.background.image, field: `scenes[${i}].background.image` });
    s.overlays?.forEach((o, k) => images.push({ ref: o.image, field: `scenes[${i}].overlays[${k}].image` }));
  });
  spec.overlays?.forEach((o, k) => images.push({ ref: o.image, field: `overlays[${k}].image` }));
  return images;
}

/** Every video clip a spec shows, with the field that names it. */
export function clipsOf(spec: RenderSpec): { ref: string; field: string; clip: ClipLayer }[] {
  const clips: { ref: string; field: string; clip: ClipLayer }[] = [];
  spec.scenes.forEach((s, i) => {
    if ('video' in s.background) clips.push({ ref: s.background.video, field: `scenes[${i}].background.video`, clip: s.background });
  });
  return clips;
}

const checker = TypeCompiler.Compile(RenderSpec);

/** `/scenes/0/duration` → `scenes[0].duration`, the form error messages use. */
export function fieldName(pointer: string): string {
  return pointer
    .split('/')
    .filter(Boolean)
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
}

/** One clear sentence for the first schema error; unions report their closest branch. */
export function describeError(error: ValueError): { field: string; message: string } {
  // A union error (background) hides the useful detail in its branches:
  // report the first error of the branch that came closest to matching.
  const branches = (error.errors ?? []).map((iter) => [...iter]).filter((b) => b.length > 0);
  if (branches.length > 0) {
    // Fewest errors wins; on a tie, the branch that got deeper into the input
    // (`position.x` out of range says more than "not one of the keywords").
    const depth = (b: ValueError[]) => b[0]!.path.split('/').length;
    const closest = branches.reduce((a, b) => (b.length < a.length || (b.length === a.length && depth(b) > depth(a)) ? b : a));
    return describeError(closest[0]!);
  }
  const field = fieldName(error.path) || 'body';
  const schema = error.schema as { pattern?: string; description?: string };
  let message = error.message;
  if (schema.pattern === ASSET_PATTERN) message = 'must be an https:// URL, assets/<name> or upload://<upload id>';
  else if (schema.pattern) message = `must match ${schema.description ?? schema.pattern}`;
  return { field, message: `${field} ${message.charAt(0).toLowerCase()}${message.slice(1)}` };
}

/** Duration of the finished video: scenes overlap by their transitions. */
export function totalSeconds(spec: RenderSpec): number {
  return spec.scenes.reduce((sum, s) => sum + s.duration - (s.transition?.duration ?? 0), 0);
}

/** Every asset reference in the spec, in a stable order. */
export function assetsOf(spec: RenderSpec): string[] {
  const refs = [...imagesOf(spec), ...clipsOf(spec)].map((i) => i.ref);
  if (spec.audio) refs.push(spec.audio.src);
  return [...new Set(refs)];
}

/**
 * Rules the schema cannot express. Throws a VgenError naming the field.
 * `outbound` is OUTBOUND_ALLOW (config.outboundAllow): private asset hosts it
 * names pass; every other caller keeps the strict default.
 */
export function checkSpecRules(spec: RenderSpec, outbound: OutboundPolicy = STRICT_POLICY): void {
  checkOutputSize(spec.output);
  spec.scenes.forEach((scene, i) => {
    const t = scene.transition;
    if (!t) return;
    const field = `scenes[${i}].transition`;
    if (i === 0) throw new VgenError('spec_invalid', `${field} is not allowed on the first scene: there is nothing to transition from`, field);
    const prev = spec.scenes[i - 1]!;
    if (t.duration >= scene.duration || t.duration >= prev.duration)
      throw new VgenError('spec_invalid', `${field}.duration must be shorter than this scene and the one before it`, `${field}.duration`);
  });
  const total = totalSeconds(spec);
  if (total > LIMITS.maxTotalSeconds)
    throw new VgenError('spec_invalid', `scenes add up to ${total}s; the most a video may last is ${LIMITS.maxTotalSeconds}s`, 'scenes');
  checkEveryFrameOwned(spec);
  const images = imagesOf(spec);
  for (const { ref, field } of images) checkAssetAddress(ref, field, outbound);
  const clips = clipsOf(spec);
  for (const { ref, field, clip } of clips) {
    checkAssetAddress(ref, field, outbound);
    const image = images.find((i) => i.ref === ref);
    if (image) throw new VgenError('spec_invalid', `${field} is also ${image.field}: one file cannot be both an image and a video`, field);
    const base = field.slice(0, -'.video'.length);
    if (clip.trim?.to !== undefined && clip.trim.to <= clip.trim.from) throw new VgenError('spec_invalid', `${base}.trim.to must be later than ${base}.trim.from`, `${base}.trim.to`);
  }
  if (spec.audio) {
    checkAssetAddress(spec.audio.src, 'audio.src', outbound);
    // The worker takes a file by its content: one file cannot be both.
    const src = spec.audio.src;
    const image = images.find((i) => i.ref === src);
    if (image) throw new VgenError('spec_invalid', `audio.src is also ${image.field}: one file cannot be both an image and audio`, 'audio.src');
    const clip = clips.find((c) => c.ref === src);
    if (clip) throw new VgenError('spec_invalid', `audio.src is also ${clip.field}: use the clip's audio: 'keep' to hear its sound`, 'audio.src');
    const { trim, start = 0 } = spec.audio;
    if (trim?.to !== undefined && trim.to <= trim.from) throw new VgenError('spec_invalid', 'audio.trim.to must be later than audio.trim.from', 'audio.trim.to');
    if (start >= total) throw new VgenError('spec_invalid', `audio.start must be earlier than the end of the video (${total} s)`, 'audio.start');
  }
}

/** Exactly one of output.preset or output.width + output.height. */
function checkOutputSize(output: RenderSpec['output']): void {
  const explicit = output.width !== undefined || output.height !== undefined;
  if (output.preset && explicit)
    throw new VgenError('spec_invalid', 'output.preset names a size: give either output.preset or output.width and output.height, not both', 'output.preset');
  if (!output.preset)
    for (const side of ['width', 'height'] as const)
      if (output[side] === undefined) throw new VgenError('invalid_request', `output.${side} is required (or give output.preset)`, `output.${side}`);
  const previewWidth = output.preview?.width;
  const { width } = outputSize(output);
  if (previewWidth !== undefined && previewWidth > width)
    throw new VgenError('spec_invalid', `output.preview.width must be at most the video's width (${width})`, 'output.preview.width');
}

/**
 * Every scene must show at least one frame that no transition covers:
 * duration − incoming transition − outgoing transition ≥ 1/fps. A scene with
 * no frame of its own once planned as 0 frames and made the filter graph
 * loop forever (docs/render-spec.md).
 */
function checkEveryFrameOwned(spec: RenderSpec): void {
  const { fps } = spec.output;
  spec.scenes.forEach((scene, i) => {
    const tIn = i > 0 ? (scene.transition?.duration ?? 0) : 0;
    const tOut = spec.scenes[i + 1]?.transition?.duration ?? 0;
    // The tolerance lets 0.1 s at 10 fps count as the one frame it is.
    if ((scene.duration - tIn - tOut) * fps < 1 - 1e-9) throw sceneTooShort(spec, i);
  });
  // The rule above guarantees every scene frames in the plan; planning here
  // too (it throws the same error) means no spec the API accepts can reach a
  // worker with a scene the planner refuses.
  planTimeline(spec);
}

/**
 * Early refusal of URLs whose host is an IP literal in a private range or a
 * bare internal name. The worker checks again after DNS resolution; this only
 * lets the API answer 400 instead of a failed render.
 */
function checkAssetAddress(ref: string, field: string, outbound: OutboundPolicy): void {
  if (!ref.startsWith('https://')) return;
  let url: URL;
  try {
    url = new URL(ref);
  } catch {
    throw new VgenError('invalid_request', `${field} is not a valid URL`, field);
  }
  if (url.username || url.password) throw new VgenError('asset_forbidden', `${field} must not carry credentials`, field);
  // A trailing dot names the same host (`localhost.`, `vm.`, an IDN that maps to `localhost.`): hostRefusal drops one.
  const refused = hostRefusal(outbound, url.hostname);
  if (refused) throw new VgenError('asset_forbidden', `${field} points to ${refused}`, field);
}

/** Validate unknown input as a spec: returns it typed, or throws VgenError naming the field. */
export function parseSpec(input: unknown, outbound: OutboundPolicy = STRICT_POLICY): RenderSpec {
  const bad = findBadString(input);
  if (bad) throw new VgenError('invalid_request', bad.message, bad.field);
  if (!checker.Check(input)) {
    const first = checker.Errors(input).First();
    const { field, message } = first ? describeError(first) : { field: 'body', message: 'body is not a valid render spec' };
    throw new VgenError('invalid_request', message, field);
  }
  checkSpecRules(input, outbound);
  return input;
}
