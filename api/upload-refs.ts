// At submit: every `upload://<id>` a spec names must be the caller's own
// upload, and its file must be in the store and match what was declared when
// it was created. One database query for all of them (by primary key, filtered
// by owner), then one HEAD per distinct upload, in parallel and bounded in
// time. Another user's upload answers exactly like an unknown id.
//
// The store's own checks (S3 POST policy: exact content type, 1…max bytes;
// fs: api/upload-receive.ts) are the first line; the HEAD here is the second,
// for S3-compatible stores that do not enforce POST policies (s3rver does
// not), and the worker's byte limit and content sniffing the third.
import { VgenError } from '../engine/errors.js';
import type { Queryable } from '../engine/db.js';
import type { RenderSpec } from '../engine/spec.js';
import type { Storage } from '../engine/storage.js';
import { uploadRefsOf } from '../engine/uploads.js';
import { uploadsOwnedBy } from './upload-store.js';

/** A store that does not answer a HEAD in this long makes the submit a 503, never a hang. */
const STORE_TIMEOUT_MS = 5_000;

/** Which upload families each place in a spec takes (the worker sniffs the content again). */
const FAMILIES_FOR = (field: string): readonly string[] => (field === 'audio.src' ? ['audio', 'video'] : ['image']);

export async function checkUploadRefs(db: Queryable, storage: Storage, userId: string, spec: RenderSpec): Promise<void> {
  const refs = uploadRefsOf(spec);
  if (refs.length === 0) return;
  const rows = new Map((await uploadsOwnedBy(db, userId, refs.map((r) => r.id))).map((r) => [r.id, r]));
  for (const ref of refs) {
    const row = rows.get(ref.id);
    if (!row) throw new VgenError('asset_forbidden', `${ref.field} names ${ref.ref}, which is not an upload of yours`, ref.field);
    const family = row.content_type.split('/')[0]!;
    if (!FAMILIES_FOR(ref.field).includes(family))
      throw new VgenError('spec_invalid', `${ref.field} names ${ref.ref}, a ${row.content_type} upload; it needs ${FAMILIES_FOR(ref.field).join(' or ')}`, ref.field);
  }

  const signal = AbortSignal.timeout(STORE_TIMEOUT_MS);
  let heads: Awaited<ReturnType<Storage['head']>>[];
  try {
    heads = await Promise.all(refs.map((ref) => storage.head(rows.get(ref.id)!.key, signal)));
  } catch {
    throw new VgenError('unavailable', 'storage is unavailable, so the uploads this spec names could not be checked; nothing was created, retry');
  }
  refs.forEach((ref, i) => {
    const row = rows.get(ref.id)!;
    const head = heads[i];
    if (!head) throw new VgenError('invalid_request', `${ref.field} names ${ref.ref}, which has no file yet: send it to the upload's URL first`, ref.field);
    if (head.bytes < 1 || head.bytes > row.max_bytes)
      throw new VgenError('invalid_request', `${ref.field} names ${ref.ref}, whose file is ${head.bytes} bytes; it was declared at most ${row.max_bytes}`, ref.field);
    if (head.contentType !== undefined && head.contentType !== row.content_type)
      throw new VgenError('invalid_request', `${ref.field} names ${ref.ref}, whose file was stored as ${head.contentType.slice(0, 100)}; it was declared ${row.content_type}`, ref.field);
  });
}
