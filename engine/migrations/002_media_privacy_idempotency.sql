-- Private media and idempotency-key expiry.

-- Idempotency keys expire after 24 hours; the API's maintenance pass deletes expired ones.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- A succeeded video whose files sit under the wrong prefix for its visibility
-- (made private or public while it rendered, or a move that failed): the
-- maintenance pass moves them. The index holds only such rows, so the scan is cheap.
CREATE INDEX videos_media_misplaced ON videos (id)
  WHERE status = 'succeeded' AND (visibility = 'private') <> (video_key LIKE 'private/%');

-- Storage keys a video no longer uses (its files were copied to the other
-- prefix under new keys). Written in the same transaction as the new keys,
-- deleted from storage right after, and retried by the maintenance pass until gone.
CREATE TABLE media_deletions (
  key text PRIMARY KEY,
  video_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_deletions_video_id ON media_deletions (video_id);
