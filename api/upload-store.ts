// The uploads table (engine/migrations/006_uploads.sql): one named query per
// thing the API does with it.
import type { Queryable } from '../engine/db.js';

export interface UploadRow {
  id: string;
  user_id: string;
  key: string;
  content_type: string;
  max_bytes: number;
  created_at: Date;
  expires_at: Date;
}

const COLUMNS = 'id, user_id, key, content_type, max_bytes::float8 AS max_bytes, created_at, expires_at';

export async function insertUpload(
  q: Queryable,
  u: { id: string; userId: string; key: string; contentType: string; maxBytes: number; expiresAt: Date },
): Promise<UploadRow> {
  const [row] = await q.query<UploadRow>(
    `INSERT INTO uploads (id, user_id, key, content_type, max_bytes, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [u.id, u.userId, u.key, u.contentType, u.maxBytes, u.expiresAt],
  );
  return row!;
}

/**
 * The caller's uploads among `ids`, in one query: another user's upload is
 * simply not returned, so it looks exactly like one that does not exist.
 */
export async function uploadsOwnedBy(q: Queryable, userId: string, ids: string[]): Promise<UploadRow[]> {
  return q.query<UploadRow>(`SELECT ${COLUMNS} FROM uploads WHERE id = ANY($1::text[]) AND user_id = $2`, [ids, userId]);
}
