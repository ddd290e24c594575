// The render spec, version 1: the one schema the API validates, the CLI checks
// before sending and the worker trusts. Later versions extend it; they never
// change the meaning of a field that exists here.
import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler';
import { isIP } from 'node:net';
import { isPublicAddress } from './address.js';
import { isColor } from './colors.js';
import { VgenError } from './errors.js';
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
} as const;

export const TRANSITIONS = [
  'fade', 'dissolve', 'wipeleft', 'wiperight', 'wipeup', 'wipedown',
  'slideleft', 'slideright', 'circleopen', 'circleclose', 'radial', 'pixelize',
] as const;

/** `https://…` or a file bundled in the repo's `assets/` folder. */
export const ASSET_PATTERN = '^(https://[^\\s]+|assets/[A-Za-z0-9][A-Za-z0-9._-]{0,127})$';

const Asset = Type.String({
  minLength: 1,
  maxLength: LIMITS.maxUrlChars,
  pattern: ASSET_PATTERN,
  description: 'An https:// URL, or assets/<name> for a file bundled with vgen.',
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

export const Output = Type.Object(
  {
    width: Side('Width'),
    height: Side('Height'),
    fps: Type.Integer({ minimum: 1, maximum: LIMITS.maxFps }),
  },
  { additionalProperties: false },
);

export const Background = Type.Union([
  Type.Object({ color: Color }, { additionalProperties: false }),
  Type.Object({ image: Asset }, { additionalProperties: false }),
]);

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
    transition: Type.Optional(Transition),
  },
  { additionalProperties: false },
);

export const RenderSpec = Type.Object(
  {
    version: Type.Literal(1),
    output: Output,
    scenes: Type.Array(Scene, { minItems: 1, maxItems: LIMITS.maxScenes }),
    audio: Type.Optional(Type.Object({ src: Asset }, { additionalProperties: false })),
  },
  { additionalProperties: false, $id: 'RenderSpec', title: 'RenderSpec' },
);

export type RenderSpec = Static<typeof RenderSpec>;
export type Scene = Static<typeof Scene>;

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
    const closest = branches.reduce((a, b) => (b.length < a.length ? b : a));
    return describeError(closest[0]!);
  }
  const field = fieldName(error.path) || 'body';
  const schema = error.schema as { pattern?: string; description?: string };
  let message = error.message;
  if (schema.pattern === ASSET_PATTERN) message = 'must be an https:// URL or assets/<name>';
  else if (schema.pattern) message = `must match ${schema.description ?? schema.pattern}`;
  return { field, message: `${field} ${message.charAt(0).toLowerCase()}${message.slice(1)}` };
}

/** Duration of the finished video: scenes overlap by their transitions. */
export function totalSeconds(spec: RenderSpec): number {
  return spec.scenes.reduce((sum, s) => sum + s.duration - (s.transition?.duration ?? 0), 0);
}

/** Every asset reference in the spec, in a stable order. */
export function assetsOf(spec: RenderSpec): string[] {
  const refs = spec.scenes.flatMap((s) => ('image' in s.background ? [s.background.image] : []));
  if (spec.audio) refs.push(spec.audio.src);
  return [...new Set(refs)];
}

/** Rules the schema cannot express. Throws a VgenError naming the field. */
export function checkSpecRules(spec: RenderSpec): void {
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
  spec.scenes.forEach((scene, i) => {
    if ('image' in scene.background) checkAssetAddress(scene.background.image, `scenes[${i}].background.image`);
  });
  if (spec.audio) {
    checkAssetAddress(spec.audio.src, 'audio.src');
    // The worker takes a file by its content: one file cannot be both.
    const src = spec.audio.src;
    const scene = spec.scenes.findIndex((s) => 'image' in s.background && s.background.image === src);
    if (scene >= 0) throw new VgenError('spec_invalid', `audio.src is also the image of scenes[${scene}]: one file cannot be both an image and audio`, 'audio.src');
  }
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
function checkAssetAddress(ref: string, field: string): void {
  if (!ref.startsWith('https://')) return;
  let url: URL;
  try {
    url = new URL(ref);
  } catch {
    throw new VgenError('invalid_request', `${field} is not a valid URL`, field);
  }
  if (url.username || url.password) throw new VgenError('asset_forbidden', `${field} must not carry credentials`, field);
  // A trailing dot names the same host (`localhost.`, `vm.`, an IDN that
  // maps to `localhost.`): drop one before the checks; an empty label left
  // (`localhost..`) is no public name either.
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (isIP(host) ? !isPublicAddress(host) : !host.includes('.') || host.split('.').includes('') || /\.(local|internal|localhost)$/i.test(host))
    throw new VgenError('asset_forbidden', `${field} points to a private or internal address`, field);
}

/** Validate unknown input as a spec: returns it typed, or throws VgenError naming the field. */
export function parseSpec(input: unknown): RenderSpec {
  const bad = findBadString(input);
  if (bad) throw new VgenError('invalid_request', bad.message, bad.field);
  if (!checker.Check(input)) {
    const first = checker.Errors(input).First();
    const { field, message } = first ? describeError(first) : { field: 'body', message: 'body is not a valid render spec' };
    throw new VgenError('invalid_request', message, field);
  }
  checkSpecRules(input);
  return input;
}
