-- Users, their API keys, videos and the idempotency keys that guard video creation.
CREATE TABLE users (
  id text PRIMARY KEY,
  email text NOT NULL,
  password_hash text NOT NULL,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator')),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Long-lived tokens (the operator token `vgen up` writes); only a SHA-256 is stored.
CREATE TABLE api_keys (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE videos (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users (id),
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'rendering', 'succeeded', 'failed', 'canceled')),
  visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
  spec jsonb NOT NULL,
  progress real NOT NULL DEFAULT 0,
  video_key text,
  poster_key text,
  duration_ms integer,
  width integer,
  height integer,
  error_code text,
  error_message text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
-- Ids sort by creation time, so a user's list pages by id alone.
CREATE INDEX videos_user_id_id ON videos (user_id, id DESC);
-- The reconciler's scan: unsettled videos, oldest first.
CREATE INDEX videos_unsettled ON videos (updated_at) WHERE status IN ('queued', 'rendering');

CREATE TABLE idempotency_keys (
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key text NOT NULL,
  request_hash text NOT NULL,
  response_status integer,
  response_body jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
