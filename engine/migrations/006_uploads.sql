-- Direct uploads (api/uploads.ts): one row per upload a user asked for. The
-- file itself lives in storage under `key` (uploads/<user_id>/<id>); the row
-- says who owns it and what the store was told to accept: exactly
-- content_type, 1…max_bytes bytes, until expires_at (the upload window; the
-- file stays usable afterwards). A submit that references upload://<id> reads
-- its rows through the primary key, filtered by owner, in one query.
CREATE TABLE uploads (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key text NOT NULL UNIQUE,
  content_type text NOT NULL,
  max_bytes bigint NOT NULL CHECK (max_bytes > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
