// `upload://<id>` assets: a caller's own file (POST /v1/uploads), read from
// storage under `uploads/<userId>/<id>` with the job owner's id, so a job can
// only ever read its own owner's uploads whatever its spec names. The API
// checked ownership at submit (api/upload-refs.ts); this is the second lock.
// The file is then sniffed and probed like every other asset (worker/assets.ts).
import { RenderError } from '../engine/errors.js';
import { StoredObjectError, type Storage } from '../engine/storage.js';
import { uploadIdOf, uploadKey } from '../engine/uploads.js';

export interface UploadSource {
  storage: Storage;
  /** The job's owner (RenderJobData.userId); a job queued without one cannot read uploads. */
  userId?: string;
  /** UPLOAD_MAX_BYTES: refused past it while streaming. */
  maxBytes: number;
}

/** As long as an https:// asset may take (worker/assets.ts): a store that stalls fails the attempt, which is retried. */
const READ_TIMEOUT_MS = 30_000;

export async function fetchUpload(ref: string, dest: string, source: UploadSource | undefined, signal: AbortSignal): Promise<void> {
  const id = uploadIdOf(ref);
  if (!id) throw new RenderError('asset_forbidden', `${ref} is not a valid upload reference`, false);
  if (!source?.userId) throw new RenderError('asset_forbidden', `${ref}: this job has no owner, so it cannot read uploads`, false);
  const deadline = AbortSignal.timeout(READ_TIMEOUT_MS);
  try {
    await source.storage.download(uploadKey(source.userId, id), dest, source.maxBytes, AbortSignal.any([signal, deadline]));
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    if (deadline.aborted) throw new RenderError('asset_unavailable', `${ref}: reading the upload from storage timed out`, true);
    if (err instanceof StoredObjectError) {
      throw err.reason === 'missing'
        ? new RenderError('asset_unavailable', `${ref} has no file (it was never uploaded, or was deleted)`, false)
        : new RenderError('asset_invalid', `${ref}: asset too large (over ${source.maxBytes} bytes)`, false);
    }
    // The store itself failed (a network error, a 5xx): another attempt may succeed.
    throw new RenderError('asset_unavailable', `${ref}: reading the upload from storage failed`, true, { cause: err });
  }
}
