// Direct uploads, the pure part: which content types a caller may upload, the
// storage key an upload lives under, and the `upload://<id>` references a
// spec may carry. The API (api/uploads.ts, api/upload-refs.ts), the storage
// drivers and the worker (worker/uploaded.ts) all read these, so a key is
// built in one place only.
import type { RenderSpec } from './spec.js';

/**
 * Types a caller may declare, by family. An explicit list, not `image/*`: a
 * prefix would let `image/svg+xml` (script in a picture) or types no decoder
 * here reads into the bucket. The worker sniffs every file by its content
 * anyway; the declared type only decides what the store accepts.
 */
export const UPLOAD_TYPES = {
  image: ['image/jpeg', 'image/png', 'image/webp'],
  audio: ['audio/mpeg', 'audio/wav', 'audio/ogg', 'audio/flac', 'audio/mp4', 'audio/aac'],
  video: ['video/mp4', 'video/quicktime', 'video/webm'],
} as const;

export type UploadFamily = keyof typeof UPLOAD_TYPES;
export type UploadContentType = (typeof UPLOAD_TYPES)[UploadFamily][number];
export const UPLOAD_CONTENT_TYPES: readonly UploadContentType[] = Object.values(UPLOAD_TYPES).flat();

export const isUploadContentType = (t: string): t is UploadContentType => (UPLOAD_CONTENT_TYPES as readonly string[]).includes(t);

/** `upl_` and 25 characters [0-9a-z] (engine/ids.ts). */
export const UPLOAD_ID = /^upl_[0-9a-z]{25}$/;
export const UPLOAD_REF_PREFIX = 'upload://';
const UPLOAD_REF = /^upload:\/\/(upl_[0-9a-z]{25})$/;

/**
 * Every upload lives under its owner's folder: `uploads/<userId>/<id>`. The
 * prefix is neither `videos/` (the only one a CDN or unsigned /media serves)
 * nor `private/`, so an upload is never served back by URL.
 */
export const UPLOAD_PREFIX = 'uploads/';
export const uploadKey = (userId: string, uploadId: string) => `${UPLOAD_PREFIX}${userId}/${uploadId}`;

/** The upload id of an `upload://upl_…` reference, or undefined for any other asset. */
export function uploadIdOf(ref: string): string | undefined {
  return UPLOAD_REF.exec(ref)?.[1];
}

export type UploadRef = { id: string; ref: string; field: string };

/** Each distinct upload a spec references, with the first field naming it (for error messages). */
export function uploadRefsOf(spec: RenderSpec): UploadRef[] {
  const found = new Map<string, UploadRef>();
  const visit = (ref: string, field: string) => {
    const id = uploadIdOf(ref);
    if (id && !found.has(id)) found.set(id, { id, ref, field });
  };
  spec.scenes.forEach((scene, i) => {
    if ('image' in scene.background) visit(scene.background.image, `scenes[${i}].background.image`);
  });
  if (spec.audio) visit(spec.audio.src, 'audio.src');
  return [...found.values()];
}
